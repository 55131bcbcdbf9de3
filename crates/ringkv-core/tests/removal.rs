//! Removing and replacing a dead member, on the deterministic network: its
//! ranges come back to N copies from the survivors, a replacement takes
//! exactly its share, an up member is not removed without force, and a
//! removed member that comes back is fenced.

mod common;

use common::*;
use ringkv_core::gossip::{MemberState, MemberStatus, Membership, RemoveRefusal};
use ringkv_core::message::ClientOp;
use ringkv_core::node::Node;
use ringkv_core::settings::Settings;
use ringkv_core::version::CausalContext;

const KEYS: usize = 300;

use common::numbered as key;

fn status(net: &Net, viewer: &str, of: &str) -> Option<MemberStatus> {
    net.nodes[&id(viewer)]
        .membership()
        .member(&id(of))
        .map(|m| m.status)
}

/// Copies of `key` among `nodes`' stores.
fn copies(net: &Net, nodes: &[&str], key: &str) -> usize {
    nodes
        .iter()
        .filter(|n| !net.local(n, key).is_empty())
        .count()
}

/// Four members without anti-entropy (only the handoff moves data here):
/// the first half of the keys on three replicas; each key of the second
/// half whose replicas include `dead` and `lone` only on those two (the
/// others were down when it was written, and hints are off here, so no
/// copy went elsewhere). Then `dead` dies for good and the others see it
/// down.
fn cluster_with_dead(dead: &str, lone: &str) -> Net {
    let mut settings = Settings::default();
    settings.anti_entropy.enabled = false;
    settings.hints.max_hints = 0;
    let names = ["n1", "n2", "n3", "n4"];
    let mut net = Net::build(&names, settings, |_| MemoryStore::default());
    for i in 0..KEYS / 2 {
        let put = net.put("n1", &key(i), "v", CausalContext::new(), Some(3));
        assert!(put.is_ok(), "{put:?}");
    }
    let others: Vec<&str> = names
        .into_iter()
        .filter(|n| ![dead, lone].contains(n))
        .collect();
    for i in KEYS / 2..KEYS {
        let pair = net.nodes[&id(lone)]
            .ring()
            .preference_list(key(i).as_bytes(), 3);
        let only_pair = pair.contains(&id(dead)) && pair.contains(&id(lone));
        if only_pair {
            net.down.extend(others.iter().map(|n| id(n)));
        }
        let put = net.put(lone, &key(i), "v", CausalContext::new(), Some(2));
        assert!(put.is_ok(), "{put:?}");
        if only_pair {
            net.down.retain(|n| !others.contains(&n.as_str()));
            // Until the coordinator tries the others again (it skips a
            // peer it could not reach for a second).
            net.run_for(1_500, 50);
        }
    }
    net.down.insert(id(dead));
    // Suspected after `suspect_after_ms` (5 s), then down by agreement.
    net.run_for(12_000, 50);
    net
}

/// Keys held by fewer than two of `nodes`: a W=2 write is acknowledged
/// by two replicas, so after a removal two of the key's replicas in the
/// new ring must hold it (a third that missed the write is anti-entropy's
/// business, disabled here).
fn scarce(net: &Net, nodes: &[&str]) -> Vec<String> {
    (0..KEYS)
        .map(key)
        .filter(|k| copies(net, nodes, k) < 2)
        .collect()
}

#[test]
fn a_removed_dead_node_s_keys_are_back_on_two_replicas_fetched_from_the_survivors() {
    let mut net = cluster_with_dead("n4", "n1");
    let survivors = ["n1", "n2", "n3"];
    assert!(
        scarce(&net, &survivors).len() > 10,
        "keys with one surviving copy"
    );
    let now = net.now;
    assert_eq!(
        net.node("n1").remove(now, &id("n4"), false),
        Ok(MemberStatus::Removing)
    );
    net.run_for(20_000, 50);
    for viewer in survivors {
        assert_eq!(status(&net, viewer, "n4"), Some(MemberStatus::Removed));
        assert!(!net.nodes[&id(viewer)].ring().contains(&id("n4")));
    }
    assert_eq!(scarce(&net, &survivors), Vec::<String>::new());
    for i in 0..KEYS {
        assert_eq!(values(&net.get("n2", &key(i), Some(2))), vec!["v"]);
    }
}

#[test]
fn removal_waits_for_every_surviving_replica_not_the_first_available() {
    let mut net = cluster_with_dead("n4", "n3");
    let survivors = ["n1", "n2", "n3"];
    assert!(
        scarce(&net, &survivors).len() > 10,
        "keys with one surviving copy"
    );
    // The one survivor holding those keys is away while n4's ranges move:
    // they must be waited for, not skipped.
    net.down.insert(id("n3"));
    let now = net.now;
    net.node("n1").remove(now, &id("n4"), false).unwrap();
    net.run_for(20_000, 50);
    assert_eq!(status(&net, "n1", "n4"), Some(MemberStatus::Removing));
    let waits = net.nodes[&id("n1")].ring_change_waits_for();
    assert!(!waits.is_empty(), "what the removal waits for is shown");
    net.down.remove(&id("n3"));
    net.run_for(20_000, 50);
    for viewer in survivors {
        assert_eq!(status(&net, viewer, "n4"), Some(MemberStatus::Removed));
        let waits = net.nodes[&id(viewer)].ring_change_waits_for();
        assert_eq!(waits, Vec::<ringkv_core::NodeId>::new(), "{viewer}");
    }
    assert_eq!(scarce(&net, &survivors), Vec::<String>::new());
}

#[test]
fn a_member_that_is_up_is_removed_only_with_force() {
    let mut net = Net::loaded(&["n1", "n2", "n3", "n4"], 10);
    net.run_for(500, 50);
    let now = net.now;
    let refused = net.node("n1").remove(now, &id("n4"), false);
    assert!(
        matches!(refused, Err(RemoveRefusal::Up { .. })),
        "{refused:?}"
    );
    assert!(refused.unwrap_err().to_string().contains("--force"));
    assert_eq!(
        net.node("n1").remove(now, &id("n1"), true),
        Err(RemoveRefusal::Myself(id("n1")))
    );
    assert_eq!(
        net.node("n1").remove(now, &id("n9"), true),
        Err(RemoveRefusal::Unknown(id("n9")))
    );
    net.run_for(1_000, 50);
    assert_eq!(status(&net, "n2", "n4"), Some(MemberStatus::Member));
    // Forced: the live member learns it was removed and gives up.
    let now = net.now;
    net.node("n1").remove(now, &id("n4"), true).unwrap();
    net.run_for(20_000, 50);
    assert_eq!(status(&net, "n2", "n4"), Some(MemberStatus::Removed));
    let refusal = net.nodes[&id("n4")].refusal().expect("n4 gives up");
    assert!(refusal.contains("was removed"), "{refusal}");
}

#[test]
fn a_removed_node_that_comes_back_changes_nothing() {
    let mut net = cluster_with_dead("n4", "n1");
    let now = net.now;
    net.node("n2").remove(now, &id("n4"), false).unwrap();
    net.run_for(20_000, 50);
    // n4 comes back with its old state (it never heard of its removal)
    // and writes through itself before it learns.
    net.down.remove(&id("n4"));
    let write = ClientOp::Put {
        key: b"ghost".to_vec(),
        value: b"boo".to_vec(),
        context: CausalContext::new(),
        w: Some(2),
        pw: None,
        ttl_ms: None,
    };
    let client = net.submit("n4", write);
    net.run_for(15_000, 50);
    let stale = net.replies.remove(&client).expect("answered");
    assert!(stale.is_err(), "{stale:?}");
    assert!(net.nodes[&id("n4")].refusal().is_some());
    for viewer in ["n1", "n2", "n3"] {
        assert_eq!(status(&net, viewer, "n4"), Some(MemberStatus::Removed));
        assert!(net.local(viewer, "ghost").is_empty(), "{viewer}");
    }
    // Its generation is fenced: no restart outruns the removal.
    let entry = net.nodes[&id("n1")].membership().member(&id("n4")).unwrap();
    assert_eq!(entry.generation, u64::MAX);
}

fn replacement(name: &str, dead: &str, seed: &str) -> Node<MemoryStore> {
    let me = MemberState {
        replaces: Some(id(dead)),
        ..MemberState::new(id(name), MemberStatus::Joining)
    };
    let settings = Settings::default();
    let members = Membership::new(me, [], vec![seed.to_string()], settings.membership.clone());
    Node::with_membership(settings, members, MemoryStore::default(), 7).unwrap()
}

#[test]
fn a_replacement_takes_exactly_the_dead_node_s_share() {
    let mut net = cluster_with_dead("n3", "n1");
    let dead_share: Vec<usize> = (0..KEYS)
        .filter(|i| {
            net.nodes[&id("n1")]
                .ring()
                .preference_list(key(*i).as_bytes(), 3)
                .contains(&id("n3"))
        })
        .collect();
    net.add(replacement("n5", "n3", "n1"));
    net.run_for(30_000, 50);
    for viewer in ["n1", "n2", "n4", "n5"] {
        assert_eq!(status(&net, viewer, "n3"), Some(MemberStatus::Removed));
        assert_eq!(status(&net, viewer, "n5"), Some(MemberStatus::Member));
    }
    let ring = net.nodes[&id("n1")].ring().clone();
    let now_share: Vec<usize> = (0..KEYS)
        .filter(|i| {
            ring.preference_list(key(*i).as_bytes(), 3)
                .contains(&id("n5"))
        })
        .collect();
    assert_eq!(now_share, dead_share, "n5 replicates exactly n3's keys");
    assert_eq!(net.held("n5", KEYS), dead_share.len());
    assert_eq!(
        scarce(&net, &["n1", "n2", "n4", "n5"]),
        Vec::<String>::new()
    );
    for i in 0..KEYS {
        assert_eq!(values(&net.get("n2", &key(i), Some(2))), vec!["v"]);
    }
}

#[test]
fn a_replacement_refuses_to_take_over_a_member_that_is_up() {
    let mut net = Net::loaded(&["n1", "n2", "n3"], 10);
    net.run_for(500, 50);
    net.add(replacement("n5", "n3", "n1"));
    net.run_for(30_000, 50);
    let refusal = net.nodes[&id("n5")].refusal().expect("n5 gives up");
    assert!(refusal.contains("n3 is up"), "{refusal}");
    assert_eq!(status(&net, "n1", "n3"), Some(MemberStatus::Member));
    assert!(!net.nodes[&id("n1")].ring().contains(&id("n5")));
    assert_eq!(values(&net.get("n1", &key(1), Some(3))), vec!["v"]);
}

#[test]
fn a_replacement_of_an_unknown_member_gives_up_and_says_so() {
    let mut net = Net::loaded(&["n1", "n2", "n3"], 10);
    net.run_for(500, 50);
    net.add(replacement("n5", "ghost", "n1"));
    net.run_for(30_000, 50);
    let refusal = net.nodes[&id("n5")].refusal().expect("n5 gives up");
    assert!(
        refusal.contains("ghost is not a member of this cluster"),
        "{refusal}"
    );
    for viewer in ["n1", "n2", "n3"] {
        assert!(!net.nodes[&id(viewer)].ring().contains(&id("n5")));
        assert_eq!(status(&net, viewer, "n3"), Some(MemberStatus::Member));
    }
}

#[test]
fn a_replacement_that_gave_up_blocks_no_later_removal() {
    let mut net = Net::loaded(&["n1", "n2", "n3", "n4"], 10);
    net.run_for(500, 50);
    // n5 tries to replace n3, which is up: it gives up and dies, and stays
    // a joining entry in everyone's list.
    net.add(replacement("n5", "n3", "n1"));
    net.run_for(30_000, 50);
    assert!(net.nodes[&id("n5")].refusal().is_some(), "n5 gives up");
    net.down.insert(id("n5"));
    net.down.insert(id("n4"));
    net.run_for(12_000, 50);
    let now = net.now;
    let removed = net.node("n1").remove(now, &id("n4"), false);
    assert!(removed.is_ok(), "{removed:?}");
    net.run_for(30_000, 50);
    for viewer in ["n1", "n2", "n3"] {
        assert_eq!(
            status(&net, viewer, "n4"),
            Some(MemberStatus::Removed),
            "{viewer}"
        );
        assert_eq!(
            status(&net, viewer, "n5"),
            Some(MemberStatus::Joining),
            "{viewer}"
        );
    }
}

#[test]
fn hints_kept_for_a_removed_member_go_to_the_replicas_and_are_counted() {
    let mut net = Net::loaded(&["n1", "n2", "n3", "n4"], 0);
    net.run_for(500, 50);
    net.down.insert(id("n4"));
    net.run_for(12_000, 50);
    for i in 0..40 {
        let put = net.put("n1", &key(i), "h", CausalContext::new(), Some(2));
        assert!(put.is_ok(), "{put:?}");
    }
    let names = ["n1", "n2", "n3"];
    let stored: u64 = names
        .iter()
        .map(|n| net.nodes[&id(n)].stats().hints_stored)
        .sum();
    assert!(stored > 0, "no write was hinted for n4");
    let now = net.now;
    net.node("n1")
        .remove(now, &id("n4"), false)
        .expect("n4 is down");
    net.run_for(30_000, 50);
    let rehomed: u64 = names
        .iter()
        .map(|n| net.nodes[&id(n)].stats().hints_rehomed)
        .sum();
    assert_eq!(
        rehomed, stored,
        "every hint kept for n4 went to the replicas"
    );
    for n in names {
        assert_eq!(net.nodes[&id(n)].pending_hint_totals().keys, 0, "{n}");
    }
    for i in 0..40 {
        assert_eq!(values(&net.get("n2", &key(i), Some(3))), vec!["h"]);
    }
}
