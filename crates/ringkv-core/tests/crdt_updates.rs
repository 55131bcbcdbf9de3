//! CRDT updates through the node: what a client is told when the write of
//! an update misses its quorum.

mod common;

use common::Net;
use ringkv_core::crdt::{End, Reply, Update};
use ringkv_core::keyspace::lww_key;
use ringkv_core::message::{ClientError, ClientOp, ClientReply};

fn update(key: &[u8], update: Update) -> ClientOp {
    ClientOp::Update {
        key: lww_key(key),
        update,
        w: None,
        pw: None,
    }
}

/// A key n1 coordinates.
fn key_of_n1(net: &Net) -> Vec<u8> {
    (0..10_000)
        .map(|i| format!("list-{i}"))
        .find(|k| net.coordinator_of(&String::from_utf8(lww_key(k.as_bytes())).unwrap())[0] == "n1")
        .unwrap()
        .into_bytes()
}

/// A pop short of W answers what it took: its removal is written on the
/// coordinator and spreads from there, and an error would lose the element
/// (no read can tell which one was taken). A push short of W is an error
/// that warns a retry would push twice.
#[test]
fn a_pop_short_of_its_write_quorum_still_answers_what_it_took() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let key = key_of_n1(&net);
    let push = Update::Push(End::Tail, vec![b"a".to_vec(), b"b".to_vec()]);
    let pushed = net.submit("n1", update(&key, push.clone()));
    assert!(matches!(
        net.replies.get(&pushed),
        Some(Ok(ClientReply::Updated(Reply::Integer(2))))
    ));
    net.cut_link("n1", "n2");
    net.cut_link("n1", "n3");
    let popped = net.submit("n1", update(&key, Update::Pop(End::Head, 1)));
    net.run_for(30_000, 1_000);
    assert_eq!(
        net.replies.get(&popped),
        Some(&Ok(ClientReply::Updated(Reply::Elements(vec![
            b"a".to_vec()
        ]))))
    );
    let again = net.submit("n1", update(&key, push));
    net.run_for(30_000, 1_000);
    match net.replies.get(&again) {
        Some(Err(e @ ClientError::Unavailable { .. })) => {
            assert!(
                e.to_string().ends_with("a retry would apply it twice"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// An increment goes to its key's first coordinator like every write of a
/// Redis key (their stamps are ordered by one coordinator only: see
/// `Node::coordinates_where_it_lands`). While that coordinator has just
/// fallen silent, unnoticed, the forward cannot be retried elsewhere and
/// the client hears "may or may not have been applied"; once the failure
/// detector has marked it down, the next replica coordinates and counts.
#[test]
fn an_increment_waits_for_a_silent_first_coordinator_to_be_marked_down() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let key = key_of_n1(&net);
    net.cut_link("n1", "n2");
    net.cut_link("n1", "n3");
    let incr = net.submit("n2", update(&key, Update::IncrBy(5)));
    net.run_for(30_000, 1_000);
    assert!(
        matches!(
            net.replies.get(&incr),
            Some(Err(ClientError::Indeterminate { node, .. })) if node == "n1"
        ),
        "{:?}",
        net.replies.get(&incr)
    );
    assert_eq!(net.nodes[&common::id("n2")].stats().forwarded, 1);
    let again = net.submit("n2", update(&key, Update::IncrBy(5)));
    net.run_for(30_000, 1_000);
    assert_eq!(
        net.replies.get(&again),
        Some(&Ok(ClientReply::Updated(Reply::Integer(5))))
    );
}
