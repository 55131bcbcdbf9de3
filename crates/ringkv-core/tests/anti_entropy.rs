//! Merkle-tree anti-entropy, driven through the deterministic test network.

mod common;

use common::{id, values, MemoryStore, Net};
use proptest::prelude::*;
use ringkv_core::anti_entropy::AeStep;
use ringkv_core::message::Message;
use ringkv_core::settings::Settings;
use ringkv_core::siblings::{SiblingSet, WriteLimits};
use ringkv_core::store::Store;
use ringkv_core::version::VersionVector;
use std::collections::BTreeSet;

const LIMITS: WriteLimits = WriteLimits {
    max_siblings: 8,
    max_clock_entries: 8,
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
    s
}

/// A sibling set holding one version of `value` written by `node`.
fn version(node: &str, value: &str) -> SiblingSet {
    let mut set = SiblingSet::new();
    set.write(
        &id(node),
        &VersionVector::new(),
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
        net.put("n1", &key, "v", VersionVector::new(), Some(2))
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
