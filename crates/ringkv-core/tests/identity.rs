//! One id, one node: a node started on a new data directory under an id
//! the cluster already has refuses, instead of taking over the member's
//! entry, address and ranges while holding none of its data.

mod common;

use common::*;
use ringkv_core::gossip::{MemberState, MemberStatus, Membership};
use ringkv_core::node::Node;
use ringkv_core::settings::Settings;

/// A node `name` on an empty store with no saved member list, joining
/// through `seed`.
fn fresh(name: &str, seed: &str) -> Node<MemoryStore> {
    fresh_at(name, seed, 1)
}

/// [`fresh`] with its entry at `generation`.
fn fresh_at(name: &str, seed: &str, generation: u64) -> Node<MemoryStore> {
    let me = MemberState {
        generation,
        incarnation: 42,
        ..MemberState::new(id(name), MemberStatus::Joining)
    };
    let settings = Settings::default();
    let members =
        Membership::new(me, [], vec![seed.to_string()], settings.membership.clone()).first_life();
    Node::with_membership(settings, members, MemoryStore::default(), 7).unwrap()
}

#[test]
fn a_new_node_under_a_member_s_id_refuses_and_changes_nothing() {
    refuses_and_changes_nothing(1);
}

/// A new life's entry may be newer than the old life's by its stamp (the
/// old life was short, the new one's heartbeats ran ahead): CI saw the
/// others take it over, and the new node served on. The incarnation
/// decides, not the stamp.
#[test]
fn a_new_node_whose_entry_outruns_the_member_s_still_refuses() {
    refuses_and_changes_nothing(1_000);
}

fn refuses_and_changes_nothing(new_generation: u64) {
    let mut net = Net::loaded(&["n1", "n2", "n3"], 10);
    net.run_for(2_000, 50);
    let before = net.nodes[&id("n1")].membership().member(&id("n3")).cloned();
    let before = before.expect("n1 knows n3");
    assert!(before.generation < new_generation || new_generation == 1);
    // n3's disk is lost; the operator starts it again on an empty one.
    net.add(fresh_at("n3", "n1", new_generation));
    net.run_for(10_000, 50);
    let refusal = net.nodes[&id("n3")].refusal().expect("the new n3 refuses");
    assert!(
        refusal.contains("the cluster already has a member n3"),
        "{refusal}"
    );
    for viewer in ["n1", "n2"] {
        let entry = net.nodes[&id(viewer)]
            .membership()
            .member(&id("n3"))
            .cloned();
        let entry = entry.expect("still known");
        assert_eq!(entry.generation, before.generation, "{viewer}: {entry:?}");
        assert_eq!(entry.status, MemberStatus::Member, "{viewer}");
    }
}

#[test]
fn a_new_node_under_a_new_id_joins() {
    let mut net = Net::loaded(&["n1", "n2", "n3"], 10);
    net.run_for(2_000, 50);
    net.add(fresh("n4", "n1"));
    net.run_for(30_000, 50);
    assert_eq!(net.nodes[&id("n4")].refusal(), None);
    let n4 = net.nodes[&id("n1")].membership().member(&id("n4")).cloned();
    assert_eq!(n4.map(|m| m.status), Some(MemberStatus::Member));
}
