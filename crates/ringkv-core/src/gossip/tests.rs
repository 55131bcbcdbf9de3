use super::*;
use std::collections::VecDeque;

/// Memberships wired directly to each other: every message arrives within
/// the same tick unless its link is cut or its receiver is dead.
struct Cluster {
    nodes: BTreeMap<NodeId, Membership>,
    dead: BTreeSet<NodeId>,
    cut: BTreeSet<(NodeId, NodeId)>,
    now: Millis,
    random: u64,
}

fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

fn fast() -> MembershipSettings {
    MembershipSettings {
        gossip_interval_ms: 100,
        probe_interval_ms: 100,
        suspect_after_ms: 500,
        down_quorum: 2,
    }
}

impl Cluster {
    /// `names[0]` is the seed; every other node knows only its address.
    fn from_one_seed(names: &[&str]) -> Cluster {
        let mut nodes = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            let me = MemberState {
                addr: Some(format!("addr-{name}")),
                generation: 1,
                ..MemberState::new(id(name), MemberStatus::Member)
            };
            let seeds = if i == 0 {
                Vec::new()
            } else {
                vec![format!("addr-{}", names[0])]
            };
            nodes.insert(id(name), Membership::new(me, [], seeds, fast()));
        }
        Cluster {
            nodes,
            dead: BTreeSet::new(),
            cut: BTreeSet::new(),
            now: 0,
            random: 7,
        }
    }

    /// Who a seed pseudo-id stands for in this test network.
    fn resolve(&self, to: NodeId) -> NodeId {
        match to.0.strip_prefix("seed:addr-") {
            Some(name) => id(name),
            None => to,
        }
    }

    fn linked(&self, a: &NodeId, b: &NodeId) -> bool {
        !self.dead.contains(b)
            && !self.cut.contains(&(a.clone(), b.clone()))
            && !self.cut.contains(&(b.clone(), a.clone()))
    }

    fn step(&mut self, ms: Millis) {
        self.now += ms;
        let mut queue = VecDeque::new();
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for from in ids.iter().filter(|n| !self.dead.contains(*n)) {
            self.random = self
                .random
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let out = self
                .nodes
                .get_mut(from)
                .unwrap()
                .tick(self.now, self.random >> 33);
            queue.extend(out.into_iter().map(|(to, m)| (from.clone(), to, m)));
        }
        while let Some((from, to, msg)) = queue.pop_front() {
            let to = self.resolve(to);
            if !self.linked(&from, &to) {
                continue;
            }
            let node = self.nodes.get_mut(&to).unwrap();
            node.heard_from(self.now, &from);
            let out = node.on_gossip(self.now, from, msg);
            queue.extend(out.into_iter().map(|(next, m)| (to.clone(), next, m)));
        }
    }

    fn run(&mut self, ms: Millis) {
        for _ in 0..ms / 50 {
            self.step(50);
        }
    }

    fn liveness(&self, viewer: &str, of: &str) -> Liveness {
        self.nodes[&id(viewer)].liveness(&id(of))
    }
}

#[test]
fn five_nodes_from_one_seed_converge_on_one_ring() {
    let mut c = Cluster::from_one_seed(&["a", "b", "c", "d", "e"]);
    c.run(2_000);
    let rings: BTreeSet<u64> = c
        .nodes
        .values()
        .map(|m| m.current_ring(16).fingerprint())
        .collect();
    assert_eq!(rings.len(), 1, "every node sees the same ring");
    assert_eq!(c.nodes[&id("c")].current_ring(16).len(), 5);
}

#[test]
fn down_needs_two_suspicions() {
    let mut c = Cluster::from_one_seed(&["a", "b", "c", "d"]);
    c.run(1_000);
    c.dead.insert(id("d"));
    c.run(2_000);
    for viewer in ["a", "b", "c"] {
        assert_eq!(
            c.liveness(viewer, "d"),
            Liveness::Down,
            "{viewer} sees d down"
        );
        assert!(c.nodes[&id(viewer)].suspecters(&id("d")).len() >= 2);
    }
}

#[test]
fn a_cut_link_alone_marks_nobody_down() {
    let mut c = Cluster::from_one_seed(&["a", "b", "c", "d"]);
    c.run(1_000);
    c.cut.insert((id("a"), id("b")));
    c.run(3_000);
    for viewer in ["a", "b", "c", "d"] {
        for of in ["a", "b"] {
            assert_ne!(
                c.liveness(viewer, of),
                Liveness::Down,
                "{viewer} about {of}"
            );
        }
    }
    assert_eq!(
        c.liveness("a", "b"),
        Liveness::Suspect,
        "a does suspect b itself"
    );
}

#[test]
fn a_down_node_comes_back_up_when_heard_again() {
    let mut c = Cluster::from_one_seed(&["a", "b", "c"]);
    c.run(1_000);
    c.dead.insert(id("c"));
    c.run(2_000);
    assert_eq!(c.liveness("a", "c"), Liveness::Down);
    c.dead.remove(&id("c"));
    c.run(1_000);
    assert_eq!(c.liveness("a", "c"), Liveness::Up);
    assert_eq!(c.liveness("b", "c"), Liveness::Up);
}

#[test]
fn a_restart_that_lost_its_generation_outruns_its_old_entry() {
    let mut c = Cluster::from_one_seed(&["a", "b", "c"]);
    c.run(1_000);
    let old = c.nodes[&id("c")].me().clone();
    let fresh = MemberState {
        generation: 0,
        ..MemberState::new(id("c"), MemberStatus::Member)
    };
    let known: Vec<MemberState> = c.nodes[&id("a")].members().cloned().collect();
    c.nodes.insert(
        id("c"),
        Membership::new(
            fresh,
            known.into_iter().filter(|m| m.id != id("c")),
            Vec::new(),
            fast(),
        ),
    );
    c.run(1_000);
    let seen = c.nodes[&id("a")].member(&id("c")).unwrap();
    assert!(
        seen.generation > old.generation,
        "{} > {}",
        seen.generation,
        old.generation
    );
    assert_eq!(seen, c.nodes[&id("c")].me());
}

#[test]
fn rings_follow_join_and_leave_statuses() {
    let mut c = Cluster::from_one_seed(&["a", "b", "c"]);
    c.nodes
        .get_mut(&id("c"))
        .unwrap()
        .update_me(|me| me.status = MemberStatus::Joining);
    c.run(1_000);
    let a = &c.nodes[&id("a")];
    assert!(!a.current_ring(8).contains(&id("c")));
    assert!(a.future_ring(8).contains(&id("c")));
    c.nodes
        .get_mut(&id("b"))
        .unwrap()
        .update_me(|me| me.status = MemberStatus::Leaving);
    c.run(1_000);
    let a = &c.nodes[&id("a")];
    assert!(a.current_ring(8).contains(&id("b")));
    assert!(!a.future_ring(8).contains(&id("b")));
}

#[test]
fn heartbeats_alone_do_not_count_as_changes() {
    let mut c = Cluster::from_one_seed(&["a", "b", "c"]);
    c.run(1_000);
    for m in c.nodes.values_mut() {
        m.take_changed();
    }
    c.run(1_000);
    assert!(c.nodes.values_mut().all(|m| !m.take_changed()));
}

#[test]
fn a_syn_introducing_another_node_than_its_sender_is_ignored() {
    let mut c = Cluster::from_one_seed(&["a", "b", "c"]);
    for _ in 0..50 {
        c.step(100);
    }
    let forged = MemberState {
        addr: Some("addr-mallory".into()),
        generation: 99,
        ..MemberState::new(id("b"), MemberStatus::Member)
    };
    let a = c.nodes.get_mut(&id("a")).unwrap();
    let msg = GossipMsg::Syn {
        digests: Vec::new(),
        sender: forged.clone(),
        buckets: 0,
    };
    assert!(a.on_gossip(c.now, id("c"), msg).is_empty());
    assert_eq!(
        a.members.get(&id("b")).unwrap().addr.as_deref(),
        Some("addr-b")
    );
    // The same entry from b itself is taken.
    let msg = GossipMsg::Syn {
        digests: Vec::new(),
        sender: forged,
        buckets: 0,
    };
    assert!(!a.on_gossip(c.now, id("b"), msg).is_empty());
    assert_eq!(
        a.members.get(&id("b")).unwrap().addr.as_deref(),
        Some("addr-mallory")
    );
}

#[test]
fn buckets_defined_on_different_nodes_reach_every_node_and_agree() {
    use crate::bucket::{BucketProps, Limits};
    use crate::keyspace::ConflictPolicy;
    let mut c = Cluster::from_one_seed(&["a", "b", "c", "d"]);
    for _ in 0..30 {
        c.step(100);
    }
    let limits = Limits {
        cluster_n: 3,
        max_value_bytes: 1024,
        default_w: 2,
    };
    let lww = BucketProps::new(3, ConflictPolicy::Lww);
    let carts = BucketProps::new(3, ConflictPolicy::Siblings);
    let a = c.nodes.get_mut(&id("a")).unwrap();
    a.define_bucket(c.now, "sessions", lww.clone(), &limits)
        .unwrap();
    let d = c.nodes.get_mut(&id("d")).unwrap();
    d.define_bucket(c.now, "carts", carts.clone(), &limits)
        .unwrap();
    // A later change on c of the bucket a created wins everywhere.
    let faster = BucketProps { w: Some(1), ..lww };
    c.step(100);
    let cn = c.nodes.get_mut(&id("c")).unwrap();
    cn.define_bucket(c.now + 1, "sessions", faster, &limits)
        .unwrap();
    for _ in 0..40 {
        c.step(100);
    }
    let tables: Vec<&crate::bucket::BucketTable> = c.nodes.values().map(|m| m.buckets()).collect();
    for table in &tables {
        assert_eq!(*table, tables[0]);
        assert_eq!(table.get("sessions", 3).unwrap().w, Some(1));
        assert_eq!(table.get("carts", 3), Some(carts.clone()));
    }
}
