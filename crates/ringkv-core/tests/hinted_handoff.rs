//! Sloppy quorum and hinted handoff on the deterministic network: writes
//! stay available with replicas down or silent, stand-ins keep hints apart
//! from their own data, and hand them back once the owner is up.

mod common;

use common::*;
use ringkv_core::message::{ClientError, ClientOp, ClientResult, Message};
use ringkv_core::node::{Node, StoreCounts};
use ringkv_core::settings::Settings;
use ringkv_core::siblings::{SiblingSet, WriteLimits};
use ringkv_core::store::Store;
use ringkv_core::version::CausalContext;
use ringkv_core::NodeId;

const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];

/// No anti-entropy: only hinted handoff may bring data to a node.
fn settings() -> Settings {
    let mut s = Settings::default();
    s.anti_entropy.enabled = false;
    s
}

fn net_of(names: &[&str], settings: Settings) -> Net {
    Net::build(names, settings, |_| MemoryStore::default())
}

/// `count` keys whose preference list includes `owner` but not `outside`.
fn keys_for(net: &Net, owner: &str, outside: &str, count: usize) -> Vec<String> {
    (0..10_000)
        .map(|i| format!("key-{i}"))
        .filter(|k| {
            let pref = net.coordinator_of(k);
            pref.iter().any(|n| n == owner) && !pref.iter().any(|n| n == outside)
        })
        .take(count)
        .collect()
}

/// The node of a 4-node ring that is not in `key`'s preference list.
fn outsider(net: &Net, key: &str) -> String {
    let pref = net.coordinator_of(key);
    let node = NODES.iter().find(|n| !pref.iter().any(|p| p == *n));
    node.expect("4 nodes, 3 replicas").to_string()
}

fn put_op(key: &str, value: &str, w: Option<usize>, pw: Option<usize>) -> ClientOp {
    ClientOp::Put {
        key: key.into(),
        value: value.into(),
        context: CausalContext::new(),
        w,
        pw,
        ttl_ms: None,
    }
}

fn pending_total(net: &Net) -> usize {
    let nodes = net.nodes.values();
    nodes.flat_map(|n| n.pending_hints().into_values()).sum()
}

fn stat(net: &Net, f: impl Fn(&ringkv_core::node::Stats) -> u64) -> u64 {
    net.nodes.values().map(|n| f(n.stats())).sum()
}

/// Every node's kept hint count and bytes, checked against its store.
fn hint_totals(net: &Net) -> StoreCounts {
    let mut all = StoreCounts::default();
    for node in net.nodes.values() {
        let mut scanned = StoreCounts::default();
        let store = node.store();
        store
            .scan_hints(&mut |_, key, hint| {
                scanned.add(key, &hint.siblings);
                true
            })
            .unwrap();
        assert_eq!(node.pending_hint_totals(), scanned, "{}", node.id());
        all.keys += scanned.keys;
        all.bytes += scanned.bytes;
    }
    all
}

fn is_unavailable(result: &ClientResult) -> bool {
    matches!(result, Err(ClientError::Unavailable { .. }))
}

#[test]
fn with_a_node_down_writes_go_to_stand_ins_and_drain_back_when_it_returns() {
    let mut net = net_of(&NODES, settings());
    net.down.insert(id("n4"));
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    let owned: Vec<&String> = keys
        .iter()
        .filter(|k| net.coordinator_of(k).contains(&"n4".to_string()))
        .collect();
    assert!(owned.len() >= 10, "n4 replicates enough keys");
    for k in &keys {
        let written = net.put("n1", k, k, CausalContext::new(), Some(2));
        assert!(written.is_ok(), "{k}: {written:?}");
    }
    for k in &owned {
        let stand_in = outsider(&net, k);
        let hints = net.nodes[&id(&stand_in)].pending_hints();
        assert!(hints.get(&id("n4")).is_some_and(|n| *n > 0), "{k}");
        assert!(net.local(&stand_in, k).is_empty(), "{k}: hint kept apart");
    }
    assert_eq!(pending_total(&net), owned.len(), "one hint per key");
    let kept = hint_totals(&net);
    assert_eq!(kept.keys, owned.len() as u64);
    assert!(kept.bytes > 0);
    assert_eq!(stat(&net, |s| s.hints_stored), owned.len() as u64);
    assert_eq!(stat(&net, |s| s.hinted_writes), owned.len() as u64);
    // Stand-in acks count towards W: even W = 3 is met.
    let w3 = net.put("n1", owned[0], "w3", CausalContext::new(), Some(3));
    assert!(w3.is_ok(), "{w3:?}");
    assert!(hint_totals(&net).bytes > kept.bytes, "a merged hint grows");

    // Long enough for gossip to agree n4 is down and for deliveries to fail.
    net.run_for(8_000, 100);
    assert_eq!(pending_total(&net), owned.len());
    net.down.remove(&id("n4"));
    net.run_for(15_000, 100);
    assert_eq!(pending_total(&net), 0, "every hint delivered");
    assert_eq!(hint_totals(&net), StoreCounts::default());
    assert_eq!(stat(&net, |s| s.hints_delivered), owned.len() as u64);
    for k in &owned {
        let local = net.local("n4", k);
        assert!(values(&local).contains(&k.to_string()), "{k} on n4");
    }
    assert_eq!(
        values(&net.local("n4", owned[0])),
        [owned[0].as_str(), "w3"]
    );
}

/// With no node left to stand in (three nodes, one down), the coordinator
/// keeps a hint for the missing replica itself, not counted towards W, so
/// the copy reaches it when it is back without anti-entropy (off here).
#[test]
fn a_replica_no_stand_in_covers_gets_its_copy_from_the_coordinator_s_hint() {
    let nodes = ["n1", "n2", "n3"];
    let mut net = net_of(&nodes, settings());
    net.down.insert(id("n3"));
    // Long enough for the others to agree n3 is down.
    net.run_for(8_000, 100);
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        let written = net.put("n1", k, k, CausalContext::new(), Some(2));
        assert!(written.is_ok(), "{k}: {written:?}");
    }
    assert_eq!(pending_total(&net), keys.len(), "one hint per key");
    assert_eq!(stat(&net, |s| s.last_resort_hints), keys.len() as u64);
    assert_eq!(stat(&net, |s| s.hinted_writes), 0, "no stand-in");
    // The hint is no third copy: W = 3 is still refused.
    let w3 = net.put("n1", &keys[0], "w3", CausalContext::new(), Some(3));
    assert!(is_unavailable(&w3), "{w3:?}");
    net.down.remove(&id("n3"));
    net.run_for(15_000, 100);
    assert_eq!(pending_total(&net), 0, "every hint delivered");
    for k in &keys {
        assert!(values(&net.local("n3", k)).contains(k), "{k} on n3");
    }
}

/// A W = 1 write through a node cut off from all of its key's replicas
/// (the minority side of a partition) is answered by that node alone,
/// before any replica could fail: each replica that missed it still gets
/// a hint, kept by the coordinator or a stand-in, so after the heal every
/// replica holds it without anti-entropy (off here). CI saw a replica
/// still without it 30 s after the heal when only the coordinator's own
/// hint was kept.
#[test]
fn every_replica_of_a_w1_write_on_the_minority_side_gets_it_after_the_heal() {
    let nodes = ["n1", "n2", "n3", "n4", "n5"];
    let mut net = net_of(&nodes, settings());
    let key = (0..1000)
        .map(|i| format!("minority-{i}"))
        .find(|k| {
            let list = net.coordinator_of(k);
            list.iter()
                .all(|n| ["n1", "n2", "n3"].contains(&n.as_str()))
        })
        .unwrap();
    for a in ["n4", "n5"] {
        for b in ["n1", "n2", "n3"] {
            net.cut_link(a, b);
        }
    }
    net.run_for(8_000, 100);
    let written = net.put("n4", &key, "minority", CausalContext::new(), Some(1));
    assert!(written.is_ok(), "{written:?}");
    net.cut.clear();
    net.run_for(15_000, 100);
    for replica in net.coordinator_of(&key) {
        assert_eq!(
            values(&net.local(&replica, &key)),
            ["minority"],
            "{replica}"
        );
    }
}

#[test]
fn hints_beyond_max_hints_are_refused_and_counted() {
    let mut s = settings();
    s.hints.max_hints = 2;
    let mut net = net_of(&NODES, s);
    // Keys n3 stands in for while n4 is down.
    let keys = keys_for(&net, "n4", "n3", 4);
    net.down.insert(id("n4"));
    for k in &keys[..2] {
        let written = net.put("n1", k, "v", CausalContext::new(), Some(3));
        assert!(written.is_ok(), "{k}: {written:?}");
    }
    // n3 is full: no other stand-in is left, so W = 3 is lost...
    let refused = net.put("n1", &keys[2], "v", CausalContext::new(), Some(3));
    assert!(is_unavailable(&refused), "{refused:?}");
    // ...while W = 2 only needs the live primaries.
    let written = net.put("n1", &keys[3], "v", CausalContext::new(), Some(2));
    assert!(written.is_ok(), "{written:?}");
    let n3 = &net.nodes[&id("n3")];
    assert_eq!(n3.pending_hints().get(&id("n4")), Some(&2));
    assert_eq!(n3.stats().hints_dropped, 2);
    assert_eq!(n3.stats().hints_stored, 2);
}

#[test]
fn pw_counts_only_acks_from_the_real_preference_list() {
    let names = ["n1", "n2", "n3", "n4", "n5"];
    let mut net = net_of(&names, settings());
    let pref = net.coordinator_of("k");
    net.down.insert(id(&pref[1]));
    net.down.insert(id(&pref[2]));
    let via = pref[0].clone();
    let sloppy = net.request(&via, put_op("k", "a", Some(2), None));
    assert!(sloppy.is_ok(), "stand-ins make W = 2: {sloppy:?}");
    let one = net.request(&via, put_op("k", "b", Some(2), Some(1)));
    assert!(one.is_ok(), "the coordinator is a primary: {one:?}");
    let strict = net.request(&via, put_op("k", "c", Some(2), Some(2)));
    let err = strict.unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Unavailable {
                needed: 2,
                answered: 1,
                replicas: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("put (pw) needed 2"), "{err}");
}

#[test]
fn pw_is_validated_like_w() {
    let mut net = net_of(&NODES, settings());
    let cases = [
        (None, Some(0), "pw must be within 1..=3, got 0"),
        (None, Some(4), "pw must be within 1..=3, got 4"),
        (None, Some(3), "pw must not exceed w (2), got 3"),
        (Some(1), Some(2), "pw must not exceed w (1), got 2"),
    ];
    for (w, pw, message) in cases {
        let err = net.request("n1", put_op("k", "v", w, pw)).unwrap_err();
        assert!(matches!(err, ClientError::Invalid(_)), "{err:?}");
        assert_eq!(err.to_string(), message);
    }
    let delete = ClientOp::Delete {
        key: "k".into(),
        context: None,
        r: None,
        pr: None,
        w: Some(2),
        pw: Some(3),
    };
    let err = net.request("n1", delete).unwrap_err();
    assert_eq!(err.to_string(), "pw must not exceed w (2), got 3");
    assert!(net
        .request("n1", put_op("k", "v", Some(3), Some(3)))
        .is_ok());
}

#[test]
fn a_silent_replica_gets_a_stand_in_after_half_the_timeout() {
    let mut net = net_of(&NODES, settings());
    let pref = net.coordinator_of("cart");
    net.cut_link(&pref[0], &pref[1]);
    net.cut_link(&pref[0], &pref[2]);
    let started = net.now;
    let client = net.submit(&pref[0], put_op("cart", "apple", Some(2), None));
    assert!(!net.replies.contains_key(&client), "no quorum yet");
    let timeout = settings().request_timeout_ms;
    net.run_for(timeout / 2 + 100, 100);
    let written = net.replies.remove(&client).expect("answered");
    assert!(written.is_ok(), "{written:?}");
    assert!(net.now - started < timeout, "before the deadline");
    let stand_in = outsider(&net, "cart");
    assert_eq!(net.nodes[&id(&stand_in)].stats().hints_stored, 1);
    // The stand-in reaches the owner (only the coordinator's links are
    // cut); the other owner, which no stand-in covered, has a hint on the
    // coordinator, held while its link is cut.
    net.run_for(3_000, 100);
    let coordinator = net.nodes[&id(&pref[0])].pending_hints();
    assert_eq!(pending_total(&net), 1, "{coordinator:?}");
    assert_eq!(coordinator.values().sum::<usize>(), 1);
    let owners = [&pref[1], &pref[2]];
    let holders = owners.iter().filter(|n| !net.local(n, "cart").is_empty());
    assert_eq!(holders.count(), 1, "the stand-in's owner has the write");
    net.cut.clear();
    net.run_for(3_000, 100);
    assert_eq!(pending_total(&net), 0);
    for owner in owners {
        assert!(!net.local(owner, "cart").is_empty(), "{owner}");
    }
}

/// A sibling set holding one fresh version written by `by`.
fn version(by: &str, value: &str, now: u64) -> SiblingSet {
    let mut set = SiblingSet::new();
    let limits = WriteLimits {
        max_siblings: 64,
        max_clock_entries: 32,
        young_clock_ms: 20_000,
        min_counter: 0,
    };
    let value = Some(value.as_bytes().to_vec());
    set.write(&id(by), &CausalContext::new(), value, now, limits)
        .unwrap();
    set
}

fn hinted(owner: &str, key: &str, siblings: SiblingSet) -> Message {
    Message::HintedReplicate {
        req: 1,
        owner: NodeId::from(owner),
        key: key.into(),
        siblings,
    }
}

#[test]
fn a_hint_changed_during_its_delivery_is_kept_until_delivered_again() {
    let mut net = net_of(&NODES, settings());
    let key = keys_for(&net, "n4", "n3", 1).remove(0);
    let k = key.as_str();
    let now = net.now;
    let stand_in = net.node("n3");
    stand_in.on_message(now, id("n1"), hinted("n4", k, version("n1", "a", now)));
    common::drain(stand_in, now);
    // The delivery leaves; before its ack, another write merges in.
    stand_in.on_tick(now + 1);
    let sent = common::drain(stand_in, now + 1);
    assert!(sent
        .iter()
        .any(|e| format!("{e:?}").contains("HintDelivery")));
    stand_in.on_message(now + 2, id("n2"), hinted("n4", k, version("n2", "b", now)));
    common::drain(stand_in, now + 2);
    for effect in sent {
        if let ringkv_core::node::Effect::Send { to, msg } = effect {
            net.queue.push_back((id("n3"), to, msg));
        }
    }
    net.settle();
    assert_eq!(values(&net.local("n4", k)), ["a"]);
    assert_eq!(
        net.nodes[&id("n3")].pending_hints().get(&id("n4")),
        Some(&1)
    );
    net.run_for(2_000, 100);
    assert!(net.nodes[&id("n3")].pending_hints().is_empty());
    assert_eq!(values(&net.local("n4", k)), ["a", "b"]);
    assert!(net.local("n3", k).is_empty(), "never in n3's own data");
}

#[test]
fn hints_survive_a_restart_of_their_stand_in() {
    let mut net = net_of(&NODES, settings());
    let now = net.now;
    for (i, owner) in ["n1", "n2", "n2"].iter().enumerate() {
        let msg = hinted(owner, &format!("k{i}"), version("n4", "v", now));
        net.node("n3").on_message(now, id("n4"), msg);
    }
    let before = net.nodes[&id("n3")].pending_hints();
    assert_eq!(before.get(&id("n2")), Some(&2));
    let n3 = net.nodes.remove(&id("n3")).unwrap();
    let ring = n3.ring().clone();
    let restarted = Node::new(id("n3"), settings(), ring, n3.into_store()).unwrap();
    assert_eq!(restarted.pending_hints(), before);
}

/// Hints for a member that left can never be handed back: the stand-ins
/// give them to the keys' current replicas instead and forget them.
#[test]
fn hints_for_a_departed_member_go_to_the_current_replicas() {
    use ringkv_core::gossip::{GossipMsg, MemberStatus};
    let mut net = net_of(&NODES, settings());
    net.down.insert(id("n4"));
    let keys = keys_for(&net, "n4", "n1", 10);
    for k in &keys {
        assert!(net.put("n1", k, k, CausalContext::new(), Some(2)).is_ok());
    }
    assert_eq!(pending_total(&net), keys.len());
    // n4's departure reaches the others by gossip (it announced it before
    // going quiet).
    let mut left = net.nodes[&id("n1")]
        .membership()
        .member(&id("n4"))
        .unwrap()
        .clone();
    left.status = MemberStatus::Left;
    left.generation += 10;
    for n in ["n1", "n2", "n3"] {
        let msg = Message::Gossip(GossipMsg::Ack2 {
            states: vec![left.clone()],
            buckets: None,
        });
        net.queue.push_back((id("n4"), id(n), msg));
    }
    net.settle();
    net.run_for(3_000, 100);
    assert_eq!(pending_total(&net), 0, "no hint waits for a departed owner");
    for k in &keys {
        let ring = net.nodes[&id("n1")].ring().clone();
        for replica in ring.preference_list(k.as_bytes(), 3) {
            assert_eq!(
                values(&net.local(replica.as_str(), k)),
                [k.as_str()],
                "{k} on {replica}"
            );
        }
    }
}

/// A value of `max_value_bytes` at the defaults (1 MiB).
const MIB: usize = 1024 * 1024;

/// One stand-in keeps 100 one-MiB hints for a dead owner (100 MiB, more
/// than a frame holds at the defaults); once the owner is back they go in
/// deliveries of at most a batch budget each, every one acknowledged before
/// the next, and all drain.
#[test]
fn large_hints_drain_in_byte_budgeted_batches_once_the_owner_returns() {
    let mut net = net_of(&NODES, settings());
    net.down.insert(id("n4"));
    let keys = keys_for(&net, "n4", "n3", 100);
    let now = net.now;
    for (i, k) in keys.iter().enumerate() {
        let mut set = SiblingSet::new();
        let limits = WriteLimits {
            max_siblings: 1,
            max_clock_entries: 1,
            young_clock_ms: 20_000,
            min_counter: 0,
        };
        let value = Some(vec![i as u8; MIB]);
        set.write(&id("n1"), &CausalContext::new(), value, now, limits)
            .unwrap();
        net.node("n3")
            .on_message(now, id("n1"), hinted("n4", k, set));
    }
    net.collect(&id("n3"));
    net.settle();
    let held = net.nodes[&id("n3")].pending_hints();
    assert_eq!(held.get(&id("n4")), Some(&100));
    let frame = settings().max_frame_bytes();
    assert!(100 * MIB > frame, "the hints do not fit one frame");

    net.down.remove(&id("n4"));
    net.recording = true;
    net.run_for(30_000, 100);
    assert!(net.nodes[&id("n3")].pending_hints().is_empty(), "drained");
    let deliveries: Vec<usize> = net
        .log
        .iter()
        .filter_map(|(_, _, msg)| match msg {
            Message::HintDelivery { entries, .. } => Some(entries.len()),
            _ => None,
        })
        .collect();
    let per_batch = settings().max_batch_bytes() / MIB;
    println!(
        "hint deliveries: {deliveries:?} (largest message {} bytes)",
        net.largest
    );
    assert!(
        deliveries.iter().all(|&n| (1..=per_batch).contains(&n)),
        "{deliveries:?}"
    );
    assert_eq!(deliveries.iter().sum::<usize>(), 100);
    assert_eq!(stat(&net, |s| s.messages_too_large), 0);
    for (i, k) in keys.iter().enumerate() {
        let set = net.local("n4", k);
        let value = set.live().next().and_then(|s| s.value.clone());
        assert_eq!(value, Some(vec![i as u8; MIB]), "{k}");
    }
}

/// When the transport cannot carry a delivery (its frame limit is lower
/// than the node's), the stand-in hears so at once, counts it and gives
/// the delivery up instead of waiting for an answer; the hint stays.
#[test]
fn a_hint_delivery_too_large_for_the_transport_is_counted_and_given_up_at_once() {
    let mut net = net_of(&NODES, settings());
    let key = keys_for(&net, "n4", "n3", 1).remove(0);
    let now = net.now;
    let big = version("n1", &"x".repeat(4_000), now);
    net.node("n3")
        .on_message(now, id("n1"), hinted("n4", &key, big));
    net.collect(&id("n3"));
    net.settle();
    net.frame_limit = 2_000;
    let interval = settings().hints.delivery_interval_ms;
    for round in 1..=3 {
        net.advance(interval);
        let n3 = &net.nodes[&id("n3")];
        assert_eq!(
            n3.stats().messages_too_large,
            round,
            "one attempt per round"
        );
    }
    assert_eq!(
        net.nodes[&id("n3")].pending_hints().get(&id("n4")),
        Some(&1)
    );
    assert!(net.local("n4", &key).is_empty());
}
