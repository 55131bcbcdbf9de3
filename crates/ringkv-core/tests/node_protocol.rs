//! The coordinator's rules, driven through the deterministic test network.

mod common;

use common::{context_of, id, values, Net};
use ringkv_core::keyspace::lww_key;
use ringkv_core::message::{ClientError, ClientOp};
use ringkv_core::version::CausalContext;

#[test]
fn put_then_get_from_any_node() {
    let mut net = Net::new(&["n1", "n2", "n3", "n4"]);
    assert!(net.put("n1", "k", "v", CausalContext::new(), None).is_ok());
    for n in ["n1", "n2", "n3", "n4"] {
        assert_eq!(values(&net.get(n, "k", Some(2))), ["v"], "via {n}");
    }
    // A write goes to the key's first replica; a replica coordinates a
    // read where it lands, so only the node outside the list forwards one.
    let pref = net.coordinator_of("k");
    let outside = |n: &str| !pref.iter().any(|p| p == n);
    let reads = ["n1", "n2", "n3", "n4"].into_iter().filter(|n| outside(n));
    let expected = reads.count() as u64 + u64::from(pref[0] != "n1");
    let forwarded: u64 = net.nodes.values().map(|n| n.stats().forwarded).sum();
    assert_eq!(forwarded, expected, "forwarded only from outside the list");
}

#[test]
fn blind_writes_through_one_node_become_siblings_and_a_context_write_resolves_them() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    net.put("n2", "cart", "a", CausalContext::new(), None)
        .unwrap();
    net.put("n2", "cart", "b", CausalContext::new(), None)
        .unwrap();
    let read = net.get("n3", "cart", None);
    assert_eq!(values(&read), ["a", "b"]);
    net.put("n1", "cart", "ab", read.context(), None).unwrap();
    let read = net.get("n1", "cart", None);
    assert_eq!(values(&read), ["ab"]);
    for n in ["n1", "n2", "n3"] {
        assert_eq!(values(&net.local(n, "cart")), ["ab"], "replica {n}");
    }
}

/// A last-write-wins key (the Redis keyspace) has no client context: each
/// write overwrites what its coordinator holds, so blind writes through one
/// node replace each other where a sibling key would keep them all.
#[test]
fn blind_writes_to_a_lww_key_replace_each_other() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let key = String::from_utf8(lww_key(b"cart")).unwrap();
    for value in ["a", "b", "c"] {
        net.put("n2", &key, value, CausalContext::new(), None)
            .unwrap();
    }
    assert_eq!(values(&net.get("n3", &key, None)), ["c"]);
    for n in ["n1", "n2", "n3"] {
        assert_eq!(net.local(n, &key).len(), 1, "replica {n}");
    }
}

#[test]
fn w3_fails_clearly_with_a_node_down_and_w2_r2_still_work() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let pref = net.coordinator_of("k");
    net.down.insert(id(&pref[2]));
    let via = pref[0].clone();
    assert!(net
        .put(&via, "k", "v", CausalContext::new(), Some(2))
        .is_ok());
    assert_eq!(values(&net.get(&via, "k", Some(2))), ["v"]);
    let err = net
        .put(&via, "k", "w", CausalContext::new(), Some(3))
        .unwrap_err();
    // Lost as soon as the dead replica is reported, without waiting out the
    // timeout; the count is what had answered by then.
    assert!(
        matches!(&err, ClientError::Unavailable { needed: 3, replicas: 3, answered, .. } if *answered < 3),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("put needed 3 of 3 replicas but only"),
        "{err}"
    );
}

#[test]
fn a_dead_coordinator_is_skipped_by_the_forwarder() {
    let mut net = Net::new(&["n1", "n2", "n3", "n4"]);
    let pref = net.coordinator_of("k");
    let outsider = ["n1", "n2", "n3", "n4"]
        .into_iter()
        .find(|n| !pref.iter().any(|p| p == n))
        .unwrap();
    net.down.insert(id(&pref[0]));
    assert!(net
        .put(outsider, "k", "v", CausalContext::new(), None)
        .is_ok());
    assert_eq!(values(&net.get(outsider, "k", None)), ["v"]);
}

/// A coordinator cut off silently (no connection errors, just silence) is
/// skipped at once once gossip agrees it is down: no forward timeout.
#[test]
fn a_coordinator_down_by_agreement_is_skipped_without_waiting() {
    let names = ["n1", "n2", "n3", "n4"];
    let mut net = Net::new(&names);
    let pref = net.coordinator_of("k");
    let silent = pref[0].clone();
    let outsider = names.into_iter().find(|n| !pref.iter().any(|p| p == n));
    let via = outsider.unwrap();
    for other in names.iter().filter(|n| **n != silent) {
        net.cut_link(&silent, other);
    }
    net.run_for(8_000, 100);
    let op = ClientOp::Put {
        key: "k".into(),
        value: "v".into(),
        context: CausalContext::new(),
        w: None,
        pw: None,
        ttl_ms: None,
    };
    let client = net.submit(via, op);
    let reply = net
        .replies
        .remove(&client)
        .expect("answered without time passing");
    assert!(reply.is_ok(), "{reply:?}");
}

#[test]
fn a_silent_replica_makes_the_quorum_time_out_with_a_count() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let pref = net.coordinator_of("k");
    net.cut_link(&pref[0], &pref[1]);
    net.cut_link(&pref[0], &pref[2]);
    let before = net.now;
    let err = net
        .put(&pref[0], "k", "v", CausalContext::new(), None)
        .unwrap_err();
    assert!(net.now > before, "answered only after the deadline");
    assert!(
        matches!(
            err,
            ClientError::Unavailable {
                needed: 2,
                answered: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        net.node(&pref[0]).in_flight(),
        0,
        "expired ops are forgotten"
    );
}

#[test]
fn read_repair_brings_a_stale_replica_up_to_date() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let pref = net.coordinator_of("k");
    net.cut_link(&pref[0], &pref[2]);
    net.put(&pref[0], "k", "v", CausalContext::new(), None)
        .unwrap();
    assert!(net.local(&pref[2], "k").is_empty());
    net.cut.clear();
    assert_eq!(values(&net.get(&pref[0], "k", Some(2))), ["v"]);
    assert_eq!(values(&net.local(&pref[2], "k")), ["v"]);
    assert!(net.node(&pref[0]).stats().read_repairs >= 1);
}

#[test]
fn delete_without_context_removes_what_it_read() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    net.put("n1", "k", "v", CausalContext::new(), None).unwrap();
    let op = ClientOp::Delete {
        key: "k".into(),
        context: None,
        r: None,
        pr: None,
        w: None,
        pw: None,
    };
    assert!(net.request("n2", op).is_ok());
    let read = net.get("n3", "k", Some(3));
    assert_eq!(read.live().count(), 0);
    assert_eq!(read.len(), 1, "the tombstone is kept");
}

#[test]
fn the_seeds_versioning_story() {
    let mut net = Net::new(&["S1", "S2", "S3"]);
    // Make S1 the coordinator by choosing a key it coordinates.
    let key = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| net.coordinator_of(k)[0] == "S1")
        .unwrap();
    let k = key.as_str();
    let ctx = context_of(net.put("S1", k, "CAR", CausalContext::new(), None));
    let ctx = context_of(net.put("S1", k, "CART", ctx, None));
    assert_eq!(ctx.max_counter(&id("S1")), 2);
    assert_eq!(ctx.len(), 1, "clock [S1:2]");
    net.down.insert(id("S1"));
    net.cut_link("S2", "S3");
    net.put("S2", k, "CARM", ctx.clone(), Some(1)).unwrap();
    net.put("S3", k, "CARR", ctx, Some(1)).unwrap();
    net.cut.clear();
    let read = net.get("S2", k, Some(2));
    assert_eq!(values(&read), ["CARM", "CARR"]);
    let winner = read
        .live()
        .max_by_key(|s| s.timestamp)
        .unwrap()
        .value
        .clone()
        .unwrap();
    assert_eq!(winner, b"CARR");
    net.put("S2", k, "CARR", read.context(), None).unwrap();
    let read = net.get("S3", k, None);
    assert_eq!(values(&read), ["CARR"]);
    let clock = read.iter().next().unwrap().clock();
    for s in ["S1", "S2", "S3"] {
        assert!(clock.max_counter(&id(s)) >= 1, "{s} in {clock:?}");
    }
}

#[test]
fn bad_requests_get_clear_errors() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let long = "x".repeat(2000);
    let err = net
        .put("n1", &long, "v", CausalContext::new(), None)
        .unwrap_err();
    assert!(
        err.to_string().contains("key must be 1 to 1024 bytes"),
        "{err}"
    );
    let err = net
        .put("n1", "k", "v", CausalContext::new(), Some(4))
        .unwrap_err();
    assert!(err.to_string().contains("w must be within 1..=3"), "{err}");
    let big = "v".repeat(1024 * 1024 + 1);
    let err = net
        .put("n1", "k", &big, CausalContext::new(), None)
        .unwrap_err();
    assert!(err.to_string().contains("value must be at most"), "{err}");
}

/// A Redis string of exactly `max_value_bytes` fits: its type tag byte is
/// not the client's, and a refusal names the client's bytes.
#[test]
fn the_value_limit_counts_a_redis_value_without_its_type_tag() {
    use ringkv_core::crdt::Value;
    use ringkv_core::keyspace::lww_key;
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let key = String::from_utf8(lww_key(b"k")).unwrap();
    let max = 1024 * 1024;
    for (len, fits) in [(max, true), (max + 1, false)] {
        let value = Value::String(vec![b'v'; len]).encode();
        let value = String::from_utf8(value).unwrap();
        let put = net.put("n1", &key, &value, CausalContext::new(), None);
        match (fits, put) {
            (true, Ok(_)) => {}
            (false, Err(e)) => assert!(e.to_string().ends_with(&format!("got {len}")), "{e}"),
            (_, other) => panic!("{len} bytes: {other:?}"),
        }
    }
}

#[test]
fn a_node_that_lost_its_last_writes_never_reuses_their_dots() {
    use ringkv_core::node::Node;
    use ringkv_core::settings::Settings;
    use ringkv_core::store::Store;
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let key = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| net.coordinator_of(k)[0] == "n1")
        .unwrap();
    let before = net.node("n1").store().clone();
    let first = context_of(net.put("n1", &key, "a", CausalContext::new(), None));
    assert_eq!(first.max_counter(&id("n1")), 1);
    // Power loss on n1: its store is back to before the write, but the
    // counter lease it raised (fsynced at once) survived.
    let mut lost = before;
    let lease = net.node("n1").store().counter_lease().unwrap();
    lost.set_counter_lease(lease).unwrap();
    let ring = net.node("n1").ring().clone();
    let restarted = Node::new(id("n1"), Settings::default(), ring, lost).unwrap();
    net.nodes.insert(id("n1"), restarted);
    let second = context_of(net.put("n1", &key, "b", CausalContext::new(), None));
    assert!(second.max_counter(&id("n1")) > 1, "dot reused: {second:?}");
    // Both blind writes survive as siblings: neither's dot is covered.
    assert_eq!(values(&net.get("n2", &key, Some(3))), ["a", "b"]);
}

/// A forward the transport cannot carry (its frame limit is lower than the
/// node's) fails the client's request at once, with that cause, and is
/// counted — no waiting for the forward timeout.
#[test]
fn a_forward_too_large_for_the_transport_fails_at_once_with_its_cause() {
    let mut net = Net::new(&["n1", "n2", "n3", "n4"]);
    let key = (0..)
        .map(|i| format!("fwd{i}"))
        .find(|k| !net.coordinator_of(k).contains(&"n4".to_string()))
        .unwrap();
    net.frame_limit = 1_000;
    let op = ClientOp::Put {
        key: key.clone().into_bytes(),
        value: vec![7; 2_000],
        context: CausalContext::new(),
        w: None,
        pw: None,
        ttl_ms: None,
    };
    let client = net.submit("n4", op);
    let err = net
        .replies
        .remove(&client)
        .expect("answered without time passing");
    assert!(matches!(err, Err(ClientError::Invalid(_))), "{err:?}");
    let message = err.unwrap_err().to_string();
    assert!(message.starts_with("a message (forward) to n"), "{message}");
    assert!(message.contains("more than max_frame_bytes"), "{message}");
    assert_eq!(net.node("n4").stats().messages_too_large, 1);
}

/// A write's causal context may be as large as a read of a full sibling
/// set returns, and no larger, so every write fits a frame.
#[test]
fn a_causal_context_larger_than_a_full_sibling_set_has_is_refused() {
    let mut s = ringkv_core::settings::Settings {
        max_siblings: 1,
        max_clock_entries: 1,
        ..Default::default()
    };
    s.anti_entropy.enabled = false;
    let mut net = Net::build(&["n1", "n2", "n3"], s, |_| Default::default());
    let mut context = CausalContext::new();
    for i in 0..20 {
        let node = format!("a-rather-long-node-name-{i}");
        context.add(&ringkv_core::version::Dot::new(node.as_str(), 1), 1);
    }
    let op = ClientOp::Put {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        context,
        w: None,
        pw: None,
        ttl_ms: None,
    };
    let err = net.request("n1", op).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("causal context must encode to at most"),
        "{err}"
    );
}

/// A replica whose store sync fails acknowledges nothing: the write it was
/// asked to store counts as failed there (and is met by the two others),
/// the node turns read-only for good — it refuses writes with one sentence,
/// so a write sent to it is coordinated by the next node, and serves reads.
#[test]
fn a_node_whose_sync_failed_acknowledges_nothing_then_refuses_writes_and_serves_reads() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let key = "disk";
    let [coordinator, sick, _] = <[String; 3]>::try_from(net.coordinator_of(key)).unwrap();
    net.failing_syncs.insert(id(&sick));
    let all = net.put(&coordinator, key, "v1", CausalContext::new(), Some(3));
    assert!(
        matches!(all, Err(ClientError::Unavailable { .. })),
        "w = 3 needs the sick replica's ack: {all:?}"
    );
    let fault = net.nodes[&id(&sick)].store_fault().cloned();
    assert!(fault.is_some_and(|f| f.error.contains("Input/output error")));

    // The disk works again, but the node does not trust it until restarted.
    net.failing_syncs.clear();
    let refused = net.put(&coordinator, key, "v2", CausalContext::new(), Some(3));
    assert!(
        matches!(refused, Err(ClientError::Unavailable { .. })),
        "{refused:?}"
    );
    // Writes of keys it coordinates go to the next node, whether sent to
    // it or forwarded to it by another.
    let own = (0..100)
        .map(|i| format!("own-{i}"))
        .find(|k| net.coordinator_of(k)[0] == sick)
        .expect("a key the sick node coordinates");
    let other = ["n1", "n2", "n3"].into_iter().find(|n| *n != sick).unwrap();
    net.run_for(3_000, 100); // gossip rounds
    for via in [sick.as_str(), other] {
        let written = net.put(via, &own, via, CausalContext::new(), Some(2));
        assert!(written.is_ok(), "via {via}: {written:?}");
    }
    assert!(
        net.nodes[&id(other)]
            .membership()
            .member(&id(&sick))
            .is_some_and(|m| m.read_only),
        "gossip says the sick node is read-only"
    );
    assert!(
        net.nodes[&id(&sick)].stats().coordinated <= 1,
        "at most one forward refused before gossip told"
    );
    let via_sick = net.put(&sick, key, "v3", CausalContext::new(), Some(2));
    assert!(via_sick.is_ok(), "{via_sick:?}");
    let read = net.get(&sick, key, Some(3));
    assert!(values(&read).contains(&"v3".to_string()), "{read:?}");
    assert!(!values(&net.local(&sick, key)).contains(&"v3".to_string()));
}
