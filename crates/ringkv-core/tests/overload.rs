//! Load shedding in the node: at most `max_in_flight` client operations
//! are taken on at once; a new one beyond is refused at once, and what is
//! in flight and unanswered is never touched (an answered one waiting for
//! a late replica yields its place).

mod common;

use common::Net;
use ringkv_core::coordinator::ClientId;
use ringkv_core::keyspace::lww_key;
use ringkv_core::message::{ClientError, ClientOp};
use ringkv_core::settings::Settings;
use ringkv_core::version::CausalContext;

/// Three nodes whose n1 takes on at most `limit` operations.
fn net(limit: usize) -> Net {
    let settings = Settings {
        max_in_flight: limit,
        ..Settings::default()
    };
    Net::build(&["n1", "n2", "n3"], settings, |_| Default::default())
}

/// The first `count` keys `key-{i}` that n1 coordinates.
fn keys_of_n1(net: &Net, count: usize) -> Vec<String> {
    keys_of_n1_named(net, count, |i| format!("key-{i}"))
}

/// The first `count` keys named `name(i)` that n1 coordinates.
fn keys_of_n1_named(net: &Net, count: usize, name: impl Fn(usize) -> String) -> Vec<String> {
    (0..10_000)
        .map(name)
        .filter(|k| net.coordinator_of(k)[0] == "n1")
        .take(count)
        .collect()
}

fn put(key: &str) -> ClientOp {
    ClientOp::Put {
        key: key.into(),
        value: b"v".to_vec(),
        context: CausalContext::new(),
        w: Some(3),
        pw: None,
        ttl_ms: None,
    }
}

/// The client's answer is n1's refusal at its limit of 2 operations.
#[track_caller]
fn assert_overloaded(net: &Net, client: ClientId) {
    let answer = net.replies.get(&client);
    assert!(
        matches!(answer, Some(Err(ClientError::Overloaded { node, what, limit: 2 }))
            if node == "n1" && what == "operations in flight"),
        "{answer:?}"
    );
}

#[test]
fn operations_beyond_the_in_flight_limit_are_refused_at_once_and_the_node_recovers() {
    let mut net = net(2);
    let keys = keys_of_n1(&net, 4);
    // A silent replica keeps n1's writes (W = 3) waiting.
    net.cut_link("n1", "n3");
    let first = net.submit("n1", put(&keys[0]));
    let second = net.submit("n1", put(&keys[1]));
    assert_eq!(net.node("n1").in_flight(), 2);
    assert!(net.replies.is_empty(), "both wait for their quorum");

    let refused = net.submit("n1", put(&keys[2]));
    assert_overloaded(&net, refused);
    assert_eq!(net.node("n1").stats().shed_ops, 1);
    assert!(net.local("n1", &keys[2]).is_empty(), "nothing was written");

    // A forward reaching n1 at its limit is refused too, and n2 relays it
    // (a last-write-wins key's write goes to its first replica).
    let lww = keys_of_n1_named(&net, 1, |i| {
        String::from_utf8(lww_key(format!("key-{i}").as_bytes())).unwrap()
    });
    let forwarded = net.submit("n2", put(&lww[0]));
    assert_overloaded(&net, forwarded);
    assert_eq!(net.node("n1").stats().shed_ops, 2);

    // What was in flight ends as it would have, and then n1 takes work again.
    net.cut.clear();
    net.advance(10_000);
    assert!(net.replies.contains_key(&first) && net.replies.contains_key(&second));
    assert_eq!(net.node("n1").in_flight(), 0);
    let again = net.put("n1", &keys[2], "v", CausalContext::new(), Some(3));
    assert!(again.is_ok(), "{again:?}");
}

/// A delete without a context reads, then writes while its read waits for
/// the last replica: two entries for one operation, which is why the bound
/// asserted on the node's operations is twice the limit.
#[test]
fn a_delete_after_read_holds_two_entries_within_the_asserted_bound() {
    let mut net = net(1);
    let key = keys_of_n1(&net, 1).remove(0);
    net.put("n1", &key, "v", CausalContext::new(), Some(3))
        .unwrap();
    net.cut_link("n1", "n3");
    let delete = ClientOp::Delete {
        key: key.clone().into_bytes(),
        context: None,
        r: None,
        pr: None,
        w: Some(2),
        pw: None,
    };
    let client = net.submit("n1", delete);
    assert!(net.replies[&client].is_ok(), "{:?}", net.replies);
    assert_eq!(net.node("n1").in_flight(), 2, "the read and the write");
    let refused = net.submit("n1", put(&key));
    assert!(matches!(
        net.replies.get(&refused),
        Some(Err(ClientError::Overloaded { limit: 1, .. }))
    ));
    assert_eq!(net.node("n1").stats().shed_ops, 1);
}

/// One client, one request at a time, with a replica that never answers:
/// each write reaches W = 2 and answers, then waits for the silent replica.
/// Those answered operations yield their places, so the client is never
/// shed as if n1 were overloaded.
#[test]
fn answered_operations_waiting_for_a_slow_replica_yield_to_new_ones() {
    let mut net = net(2);
    let keys = keys_of_n1(&net, 10);
    net.cut_link("n1", "n3");
    for key in &keys {
        let written = net.put("n1", key, "v", CausalContext::new(), Some(2));
        assert!(written.is_ok(), "{key}: {written:?}");
        assert!(net.node("n1").in_flight() <= 2);
    }
    assert_eq!(net.node("n1").stats().shed_ops, 0);
}
