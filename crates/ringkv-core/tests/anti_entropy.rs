//! Merkle-tree anti-entropy, driven through the deterministic test network.

mod common;

use common::{id, values, MemoryStore, Net};
use proptest::prelude::*;
use ringkv_core::anti_entropy::AeStep;
use ringkv_core::message::Message;
use ringkv_core::settings::Settings;
use ringkv_core::siblings::{SiblingSet, WriteLimits};
use ringkv_core::store::Store;
use ringkv_core::version::CausalContext;
use std::collections::BTreeSet;

const LIMITS: WriteLimits = WriteLimits {
    max_siblings: 8,
    max_clock_entries: 8,
    young_clock_ms: 20_000,
    min_counter: 0,
};

fn settings(n: usize, periodic: bool) -> Settings {
    let mut s = Settings {
        n,
        r: 1,
        w: 1,
        ..Settings::default()
    };
    s.anti_entropy.enabled = periodic;
    s.anti_entropy.interval_ms = 50;
    // Only anti-entropy moves data here: coordinators keep no hints for
    // the replicas they could not reach.
    s.hints.max_hints = 0;
    s
}

/// A sibling set holding one version of `value` written by `node`.
fn version(node: &str, value: &str) -> SiblingSet {
    let mut set = SiblingSet::new();
    set.write(
        &id(node),
        &CausalContext::new(),
        Some(value.into()),
        7,
        LIMITS,
    )
    .unwrap();
    set
}

fn store_with(entries: impl IntoIterator<Item = (String, SiblingSet)>) -> MemoryStore {
    let mut store = MemoryStore::default();
    for (key, set) in entries {
        store.put(key.as_bytes(), &set).unwrap();
    }
    store
}

fn same_data(net: &Net, a: &str, b: &str) -> bool {
    net.nodes[&id(a)].store() == net.nodes[&id(b)].store()
}

/// Run a forced repair from `node` until it is over (bounded).
fn repair(net: &mut Net, node: &str) {
    net.node(node).start_repair(None);
    repair_until_finished(net, node);
}

fn repair_until_finished(net: &mut Net, node: &str) {
    for _ in 0..100_000 {
        net.advance(10);
        if net
            .node(node)
            .repair_progress()
            .is_some_and(|p| p.finished())
        {
            return;
        }
    }
    panic!("repair did not finish");
}

#[test]
fn a_replica_that_missed_writes_converges_without_any_read() {
    let mut net = Net::build(&["n1", "n2", "n3"], settings(3, true), |_| {
        MemoryStore::default()
    });
    net.cut_link("n1", "n3");
    net.cut_link("n2", "n3");
    for i in 0..200 {
        let key = format!("k{i}");
        net.put("n1", &key, "v", CausalContext::new(), Some(2))
            .unwrap();
    }
    net.cut.clear();
    assert!(net.nodes[&id("n3")].store().len() < 200, "n3 missed writes");
    // 3 nodes x 3 * 128 ranges, one exchange per node every 50 ms: a full
    // cycle is ~20 simulated seconds; allow five.
    let mut waited = 0;
    while !(same_data(&net, "n1", "n3") && same_data(&net, "n2", "n3")) {
        assert!(waited < 100_000, "replicas did not converge in 100 s");
        net.run_for(1_000, 10);
        waited += 1_000;
    }
    assert_eq!(net.nodes[&id("n3")].store().len(), 200);
    let repaired: u64 = net
        .nodes
        .values()
        .map(|n| n.anti_entropy_stats().keys_repaired)
        .sum();
    assert!(repaired >= 1);
    assert!(
        net.nodes.values().all(|n| n.stats().read_repairs == 0),
        "no reads were involved"
    );
}

#[test]
fn concurrent_versions_become_siblings_on_both_replicas() {
    let stores = |n: &str| match n {
        "n1" => store_with([("cart".to_string(), version("n1", "apple"))]),
        _ => store_with([("cart".to_string(), version("n2", "pear"))]),
    };
    let mut net = Net::build(&["n1", "n2"], settings(2, false), stores);
    repair(&mut net, "n1");
    for n in ["n1", "n2"] {
        let set = net.nodes[&id(n)].store().get(b"cart").unwrap().unwrap();
        assert_eq!(values(&set), ["apple", "pear"], "on {n}");
    }
    assert!(same_data(&net, "n1", "n2"));
}

#[test]
fn exchange_traffic_is_proportional_to_the_difference() {
    const KEYS: usize = 100_000;
    const DIFFERENT: usize = 100;
    let key = |i: usize| format!("user:{i:06}");
    let stores = |n: &str| {
        store_with((0..KEYS).map(|i| {
            let value = if n == "n2" && i % (KEYS / DIFFERENT) == 0 {
                "changed"
            } else {
                "original value of about forty bytes...."
            };
            (key(i), version("n1", value))
        }))
    };
    let mut net = Net::build(&["n1", "n2"], settings(2, false), stores);
    let mut whole_range = 0;
    let sizes = &mut |key: &[u8], set: &SiblingSet| {
        whole_range += postcard::to_stdvec(&(key, set)).unwrap().len();
        true
    };
    net.nodes[&id("n1")]
        .store()
        .scan(0, u64::MAX, sizes)
        .unwrap();
    repair(&mut net, "n1");
    assert!(same_data(&net, "n1", "n2"));
    let sent: u64 = net
        .nodes
        .values()
        .map(|n| n.anti_entropy_stats().bytes_sent)
        .sum();
    let ratio = sent as f64 / whole_range as f64;
    println!("anti-entropy: {sent} bytes exchanged for {DIFFERENT} of {KEYS} keys differing; the whole range is {whole_range} bytes; ratio {ratio:.4}");
    assert!(ratio < 0.05, "ratio {ratio}");
    let stats = net.nodes[&id("n1")].anti_entropy_stats().clone();
    let ranges = 2 * 128;
    assert_eq!(
        stats.exchanges_in_sync, ranges,
        "every range ends found in sync"
    );
    let differing = stats.exchanges_completed - ranges;
    assert!(
        differing <= DIFFERENT as u64,
        "one exchange per range, and one more to find each range that differed in sync: {stats:?}"
    );
}

/// The keys an exchange carried: sent sibling sets and requested keys.
fn keys_carried(log: &[(ringkv_core::NodeId, ringkv_core::NodeId, Message)]) -> BTreeSet<Vec<u8>> {
    let mut keys = BTreeSet::new();
    for (_, _, msg) in log {
        if let Message::AntiEntropy {
            step: AeStep::Keys { entries, want },
            ..
        } = msg
        {
            keys.extend(entries.iter().map(|(k, _)| k.clone()));
            keys.extend(want.iter().cloned());
        }
    }
    keys
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn an_exchange_finds_exactly_the_differing_keys(
        a in proptest::collection::btree_map(0u16..400, 0u8..3, 0..150),
        b in proptest::collection::btree_map(0u16..400, 0u8..3, 0..150),
    ) {
        let side = |m: &std::collections::BTreeMap<u16, u8>| {
            store_with(m.iter().map(|(k, v)| (format!("k{k}"), version("n1", &format!("v{v}")))))
        };
        let (sa, sb) = (side(&a), side(&b));
        let differing: BTreeSet<Vec<u8>> = a.keys().chain(b.keys())
            .filter(|k| a.get(k) != b.get(k))
            .map(|k| format!("k{k}").into_bytes())
            .collect();
        let mut stores = [Some(sa), Some(sb)].into_iter();
        let mut net = Net::build(&["n1", "n2"], settings(2, false), |_| stores.next().flatten().unwrap());
        net.recording = true;
        repair(&mut net, "n1");
        prop_assert_eq!(keys_carried(&net.log), differing);
        prop_assert!(same_data(&net, "n1", "n2"));
    }
}

#[test]
fn a_repair_with_a_dead_peer_ends_quickly_and_counts_its_failures() {
    let mut net = Net::build(&["n1", "n2", "n3"], settings(3, false), |_| {
        MemoryStore::default()
    });
    net.down.insert(id("n3"));
    let queued = net.node("n1").start_repair(None);
    let started = net.now;
    repair_until_finished(&mut net, "n1");
    let progress = net.node("n1").repair_progress().cloned().unwrap();
    assert_eq!(progress.total, queued);
    assert_eq!(progress.failed, queued / 2, "every exchange with n3 failed");
    assert_eq!(
        progress.done,
        queued / 2,
        "every exchange with n2 completed"
    );
    let timeout = settings(3, false).anti_entropy.exchange_timeout_ms;
    assert!(
        net.now - started < timeout,
        "did not wait out exchange timeouts ({} simulated ms)",
        net.now - started
    );
}

/// A value of `max_value_bytes` at the defaults (1 MiB).
const MIB: usize = 1024 * 1024;

/// `count` keys whose tokens all lie in the same range of `net`'s ring.
fn keys_in_one_range(net: &Net, count: usize) -> Vec<String> {
    let ring = net.nodes[&id("n1")].ring().clone();
    let first = ring.range_of(ringkv_core::ring::Ring::key_token(b"r0"));
    (0..)
        .map(|i| format!("r{i}"))
        .filter(|k| ring.range_of(ringkv_core::ring::Ring::key_token(k.as_bytes())) == first)
        .take(count)
        .collect()
}

/// Write `keys` through n1 with W = 2 while n3 is cut off.
fn write_while_n3_is_cut_off(net: &mut Net, keys: &[String], value: impl Fn(usize) -> Vec<u8>) {
    net.cut_link("n1", "n3");
    net.cut_link("n2", "n3");
    for (i, k) in keys.iter().enumerate() {
        let op = ringkv_core::message::ClientOp::Put {
            key: k.as_bytes().to_vec(),
            value: value(i),
            context: CausalContext::new(),
            w: Some(2),
            pw: None,
            ttl_ms: None,
        };
        assert!(net.request("n1", op).is_ok(), "{k}");
    }
    net.cut.clear();
}

/// n2 lacks 70 one-MiB keys of a single range (vnodes = 1) that n1 holds:
/// more than a frame holds at the defaults. A forced repair from n2 moves
/// them a batch at a time and runs the range until it is in sync; nothing
/// is ever too large to send.
#[test]
fn a_replica_that_missed_more_than_a_frame_in_one_range_converges_by_repair() {
    let mut s = settings(2, false);
    s.vnodes = 1;
    let probe = Net::build(&["n1", "n2"], s.clone(), |_| MemoryStore::default());
    let keys = keys_in_one_range(&probe, 70);
    let full = store_with(keys.iter().map(|k| {
        let mut set = SiblingSet::new();
        let value = Some(vec![k.len() as u8; MIB]);
        set.write(&id("n1"), &CausalContext::new(), value, 7, LIMITS)
            .unwrap();
        (k.clone(), set)
    }));
    let mut stores = [Some(full), Some(MemoryStore::default())].into_iter();
    let mut net = Net::build(&["n1", "n2"], s.clone(), |_| {
        stores.next().flatten().unwrap()
    });
    assert!(
        70 * MIB > s.max_frame_bytes(),
        "the range's difference exceeds a frame"
    );

    repair(&mut net, "n2");
    let progress = net.node("n2").repair_progress().cloned().unwrap();
    assert_eq!((progress.failed, progress.last_failure), (0, None));
    assert!(same_data(&net, "n1", "n2"));
    let stats = net.nodes[&id("n2")].anti_entropy_stats();
    println!("repair: {stats:?}; largest message {} bytes", net.largest);
    assert!(
        stats.exchanges_completed > 2,
        "the range took several rounds"
    );
    assert_every_message_fit(&net, &s);
}

/// Periodic anti-entropy alone gets there too: each exchange moves what
/// fits one batch, and the next exchange of the range picks up the rest.
#[test]
fn periodic_exchanges_converge_a_range_that_differs_by_more_than_a_frame() {
    let mut s = settings(3, true);
    s.vnodes = 1;
    s.max_value_bytes = 1_000;
    s.max_siblings = 2;
    let mut net = Net::build(&["n1", "n2", "n3"], s.clone(), |_| MemoryStore::default());
    let keys = keys_in_one_range(&net, 300);
    write_while_n3_is_cut_off(&mut net, &keys, |i| vec![i as u8; 1_000]);
    assert!(300 * 1_000 > s.max_frame_bytes());
    let mut waited = 0;
    while !(same_data(&net, "n1", "n3") && same_data(&net, "n2", "n3")) {
        assert!(waited < 120_000, "replicas did not converge in 120 s");
        net.run_for(1_000, 10);
        waited += 1_000;
    }
    assert_eq!(net.nodes[&id("n3")].store().len(), 300);
    assert_every_message_fit(&net, &s);
}

/// With a single leaf per range (tree_depth = 0) and small frames, one
/// leaf holds many batches of digests: it is compared one window at a
/// time, and a forced repair still converges keys missing on either side.
#[test]
fn a_leaf_with_more_digests_than_a_batch_is_compared_window_by_window() {
    let mut s = settings(2, false);
    s.vnodes = 1;
    s.max_key_bytes = 16;
    s.max_value_bytes = 16;
    s.max_siblings = 1;
    s.max_clock_entries = 1;
    s.anti_entropy.tree_depth = 0;
    let key = |i: usize| format!("w{i}");
    let stores = |n: &str| {
        store_with((0..600).filter_map(|i| {
            // n1 lacks every 7th key, n2 every 5th.
            let missing = if n == "n1" { i % 7 == 0 } else { i % 5 == 0 };
            (!missing).then(|| (key(i), version("n1", "v")))
        }))
    };
    let mut net = Net::build(&["n1", "n2"], s.clone(), stores);
    net.recording = true;
    repair(&mut net, "n1");
    let progress = net.node("n1").repair_progress().cloned().unwrap();
    assert_eq!((progress.failed, progress.last_failure), (0, None));
    assert!(same_data(&net, "n1", "n2"));
    let held_somewhere = (0..600).filter(|i| i % 7 != 0 || i % 5 != 0).count();
    assert_eq!(net.nodes[&id("n1")].store().len(), held_somewhere);
    let windows = net
        .log
        .iter()
        .filter(|(_, _, m)| {
            matches!(
                m,
                Message::AntiEntropy {
                    step: AeStep::Digests {
                        window: Some(_),
                        ..
                    },
                    ..
                }
            )
        })
        .count();
    println!(
        "{windows} windowed digest steps; largest message {} bytes",
        net.largest
    );
    assert!(windows > 1, "the leaf was compared in windows");
    assert!(net.largest <= s.max_frame_bytes());
}

/// Periodic exchanges move no more keys than `keys_per_second` allows
/// (forced repairs are not limited): every key n3 gets was asked for by
/// it or offered to it in a rate-limited step.
#[test]
fn periodic_exchanges_keep_to_the_rate_limit() {
    const RATE: usize = 20;
    let mut s = settings(3, true);
    s.anti_entropy.keys_per_second = RATE as u32;
    s.anti_entropy.interval_ms = 10;
    let mut net = Net::build(&["n1", "n2", "n3"], s, |_| MemoryStore::default());
    let keys: Vec<String> = (0..300).map(|i| format!("rate{i}")).collect();
    write_while_n3_is_cut_off(&mut net, &keys, |_| b"v".to_vec());
    net.run_for(2_000, 10);
    let got = net.nodes[&id("n3")].store().len();
    // Each node's bucket starts full and refills RATE a second.
    assert!(got > 0, "exchanges ran");
    assert!(got <= 3 * RATE * 3, "n3 got {got} keys in 2 s");
}

/// A forced repair stops repeating a range whose trees differ while no key
/// does (here a tree out of step with its store) and says why, instead of
/// exchanging it forever.
#[test]
fn a_repair_that_finds_nothing_to_exchange_reports_the_range_instead_of_looping() {
    let stores = |_: &str| store_with([("same".to_string(), version("n1", "v"))]);
    let mut net = Net::build(&["n1", "n2"], settings(2, false), stores);
    // n1's tree learns a key its store then loses behind its back.
    net.node("n1")
        .store_mut()
        .put(b"ghost", &version("n1", "boo"))
        .unwrap();
    net.node("n1").rebuild_trees();
    net.node("n1").store_mut().delete(b"ghost").unwrap();
    repair(&mut net, "n1");
    let progress = net.node("n1").repair_progress().cloned().unwrap();
    assert_eq!(progress.failed, 1, "{progress:?}");
    let cause = progress.last_failure.unwrap_or_default();
    assert!(cause.contains("found no key to exchange"), "{cause}");
    assert!(same_data(&net, "n1", "n2"));
}

/// No message outgrew a frame: the largest sent fits, and no node had one
/// handed back as too large.
fn assert_every_message_fit(net: &Net, s: &Settings) {
    assert!(net.largest <= s.max_frame_bytes());
    assert!(net
        .nodes
        .values()
        .all(|n| n.stats().messages_too_large == 0));
}
