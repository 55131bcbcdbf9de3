//! The node's store counts (keys and bytes) are kept as it writes, never
//! by scanning: after every kind of change they must equal a full scan.

mod common;

use common::*;
use ringkv_core::gossip::{MemberState, MemberStatus, Membership};
use ringkv_core::message::{ClientOp, ClientReply};
use ringkv_core::node::{Node, StoreCounts};
use ringkv_core::ring::Token;
use ringkv_core::settings::Settings;
use ringkv_core::store::Store;
use ringkv_core::version::CausalContext;

/// What a full scan of `n`'s store finds.
fn scanned(net: &Net, n: &str) -> StoreCounts {
    let mut counts = StoreCounts::default();
    net.nodes[&id(n)]
        .store()
        .scan(0, Token::MAX, &mut |key, set| {
            counts.add(key, set);
            true
        })
        .unwrap();
    counts
}

fn assert_counts_match_scans(net: &Net, when: &str) {
    for n in net.nodes.keys() {
        let n = n.as_str();
        assert_eq!(
            net.nodes[&id(n)].store_counts(),
            scanned(net, n),
            "{n} {when}"
        );
    }
}

fn delete(net: &mut Net, key: &str) {
    let op = ClientOp::Delete {
        key: key.into(),
        context: None,
        r: None,
        pr: None,
        w: Some(3),
        pw: None,
    };
    assert!(matches!(
        net.request("n1", op),
        Ok(ClientReply::Written { .. })
    ));
}

#[test]
fn new_keys_overwrites_and_deletes_keep_the_counts_exact() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    assert_eq!(net.nodes[&id("n1")].store_counts(), StoreCounts::default());
    let put = |net: &mut Net, key: &str, value: &str| {
        let written = net.put("n2", key, value, CausalContext::new(), Some(3));
        assert!(written.is_ok(), "{written:?}");
        context_of(written)
    };
    put(&mut net, "a", "1");
    let after_one = net.nodes[&id("n1")].store_counts();
    assert_eq!(after_one.keys, 1);
    assert_counts_match_scans(&net, "after a new key");
    // A blind write adds a sibling: same key, more bytes.
    put(&mut net, "a", "2");
    let siblings = net.nodes[&id("n1")].store_counts();
    assert_eq!(siblings.keys, 1);
    assert!(
        siblings.bytes > after_one.bytes,
        "{siblings:?} {after_one:?}"
    );
    assert_counts_match_scans(&net, "after a sibling");
    // An overwrite with the context replaces both.
    let context = net.get("n1", "a", Some(3)).context();
    let written = net.put("n3", "a", "a much longer value", context, Some(3));
    assert!(written.is_ok());
    assert_counts_match_scans(&net, "after an overwrite");
    put(&mut net, "b", "x");
    assert_eq!(net.nodes[&id("n2")].store_counts().keys, 2);
    // A delete leaves a tombstone: the key stays, its bytes shrink.
    let before = net.nodes[&id("n1")].store_counts();
    delete(&mut net, "a");
    let after = net.nodes[&id("n1")].store_counts();
    assert_eq!(after.keys, 2, "the tombstone is a stored key");
    assert!(after.bytes < before.bytes, "{after:?} {before:?}");
    assert_counts_match_scans(&net, "after a delete");
}

#[test]
fn keys_dropped_after_a_join_leave_the_counts() {
    const KEYS: usize = 200;
    let mut net = Net::loaded(&["n1", "n2", "n3"], KEYS);
    assert_eq!(net.nodes[&id("n1")].store_counts().keys, KEYS as u64);
    let me = MemberState::new(id("n4"), MemberStatus::Joining);
    let settings = Settings::default();
    let members = Membership::new(me, [], vec!["n1".into()], settings.membership.clone());
    net.add(Node::with_membership(settings, members, MemoryStore::default(), 4).unwrap());
    net.run_for(10_000, 50);
    assert!(net.nodes[&id("n1")].ring().contains(&id("n4")));
    let n1 = net.nodes[&id("n1")].store_counts();
    assert!(n1.keys < KEYS as u64, "n1 dropped what n4 took: {n1:?}");
    assert!(net.nodes[&id("n4")].store_counts().keys > 0);
    assert_counts_match_scans(&net, "after the join");
    let dropped = net.nodes[&id("n1")].stats().handoff_keys_dropped;
    assert_eq!(dropped, KEYS as u64 - n1.keys, "dropped keys are counted");
    let received = net.nodes[&id("n4")].stats().handoff_keys_received;
    assert!(received >= net.nodes[&id("n4")].store_counts().keys);
}

#[test]
fn a_restart_counts_the_store_from_its_scan() {
    let mut net = Net::loaded(&["n1", "n2", "n3"], 50);
    let before = net.nodes[&id("n1")].store_counts();
    let node = net.nodes.remove(&id("n1")).unwrap();
    let (settings, ring) = (node.settings().clone(), node.ring().clone());
    let restarted = Node::new(id("n1"), settings, ring, node.into_store()).unwrap();
    assert_eq!(restarted.store_counts(), before);
}
