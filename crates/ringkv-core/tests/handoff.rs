//! Join and leave with ownership handoff, on the deterministic network:
//! ranges move to their new owners, nothing is lost, and old owners drop
//! data only once the new owners hold it.

mod common;

use common::*;
use ringkv_core::gossip::{MemberState, MemberStatus, Membership};
use ringkv_core::node::Node;
use ringkv_core::settings::Settings;
use ringkv_core::version::CausalContext;

const KEYS: usize = 300;

fn key(i: usize) -> String {
    format!("key-{i}")
}

fn loaded(names: &[&str]) -> Net {
    let mut net = Net::new(names);
    for i in 0..KEYS {
        let written = net.put("n1", &key(i), "v", CausalContext::new(), Some(3));
        assert!(written.is_ok(), "{written:?}");
    }
    net
}

/// Keys a node holds in its own store.
fn held(net: &Net, n: &str) -> usize {
    (0..KEYS)
        .filter(|i| !net.local(n, &key(*i)).is_empty())
        .count()
}

fn replicated_by(net: &Net, n: &str) -> usize {
    let ring = net.nodes[&id(n)].ring();
    (0..KEYS)
        .filter(|i| ring.preference_list(key(*i).as_bytes(), 3).contains(&id(n)))
        .count()
}

fn joiner(name: &str, seed: &str) -> Node<MemoryStore> {
    let me = MemberState::new(id(name), MemberStatus::Joining);
    let settings = Settings::default();
    let members = Membership::new(me, [], vec![seed.to_string()], settings.membership.clone());
    Node::with_membership(settings, members, MemoryStore::default(), 4).unwrap()
}

fn status(net: &Net, viewer: &str, of: &str) -> Option<MemberStatus> {
    net.nodes[&id(viewer)]
        .membership()
        .member(&id(of))
        .map(|m| m.status)
}

#[test]
fn a_joining_node_fetches_its_share_before_it_owns_ranges() {
    let mut net = loaded(&["n1", "n2", "n3"]);
    net.add(joiner("n4", "n1"));
    // Until n4 holds its share, the ring that serves requests is unchanged.
    let mut saw_joining = false;
    for _ in 0..200 {
        net.advance(50);
        if status(&net, "n1", "n4") == Some(MemberStatus::Joining) {
            saw_joining = true;
            assert!(!net.nodes[&id("n1")].ring().contains(&id("n4")));
            // Old owners keep everything while the transfer runs.
            assert_eq!(held(&net, "n1"), KEYS);
        }
        // Data is dropped only once its new owner holds it.
        for i in 0..KEYS {
            let copies = ["n1", "n2", "n3", "n4"]
                .iter()
                .filter(|n| !net.local(n, &key(i)).is_empty())
                .count();
            assert!(copies >= 3, "{} has {copies} copies", key(i));
        }
    }
    assert!(saw_joining, "n4 was seen joining");
    for viewer in ["n1", "n2", "n3", "n4"] {
        assert_eq!(
            status(&net, viewer, "n4"),
            Some(MemberStatus::Member),
            "{viewer}"
        );
        assert!(net.nodes[&id(viewer)].ring().contains(&id("n4")));
    }
    let share = replicated_by(&net, "n4");
    assert!(
        share > KEYS / 2 && share < KEYS,
        "n4 replicates {share} keys"
    );
    for n in ["n1", "n2", "n3", "n4"] {
        assert_eq!(
            held(&net, n),
            replicated_by(&net, n),
            "{n} holds exactly its share"
        );
    }
    for i in 0..KEYS {
        assert_eq!(
            values(&net.get("n2", &key(i), Some(2))),
            vec!["v"],
            "{}",
            key(i)
        );
    }
}

#[test]
fn writes_during_a_join_reach_the_joining_node() {
    let mut net = loaded(&["n1", "n2", "n3"]);
    net.add(joiner("n4", "n1"));
    net.run_for(150, 50);
    assert_eq!(status(&net, "n1", "n4"), Some(MemberStatus::Joining));
    for i in 0..KEYS {
        let written = net.put("n2", &key(i), "w", CausalContext::new(), Some(2));
        assert!(written.is_ok());
    }
    net.run_for(10_000, 50);
    assert_eq!(status(&net, "n1", "n4"), Some(MemberStatus::Member));
    let ring = net.nodes[&id("n1")].ring().clone();
    for i in (0..KEYS).filter(|i| {
        ring.preference_list(key(*i).as_bytes(), 3)
            .contains(&id("n4"))
    }) {
        assert_eq!(
            values(&net.local("n4", &key(i))),
            vec!["v", "w"],
            "{}",
            key(i)
        );
    }
}

#[test]
fn a_leaving_node_hands_everything_over_before_it_leaves() {
    let mut net = loaded(&["n1", "n2", "n3", "n4"]);
    net.run_for(500, 50);
    let now = net.now;
    net.node("n4").leave(now);
    net.run_for(10_000, 50);
    assert!(net.nodes[&id("n4")].has_left());
    for viewer in ["n1", "n2", "n3"] {
        assert_eq!(status(&net, viewer, "n4"), Some(MemberStatus::Left));
        assert!(!net.nodes[&id(viewer)].ring().contains(&id("n4")));
        assert_eq!(held(&net, viewer), KEYS, "{viewer} holds every key");
    }
    net.down.insert(id("n4"));
    for i in 0..KEYS {
        assert_eq!(values(&net.get("n1", &key(i), Some(3))), vec!["v"]);
    }
}
