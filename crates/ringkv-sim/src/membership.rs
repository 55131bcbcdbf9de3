//! Membership changes in the fault schedule: one node joins through a seed,
//! one member leaves, one dies for good and is removed by an operator, or
//! one dies for good and a new node replaces it — at a random time of the
//! faulty phase. Also how a
//! node is (re)built from a member list, as the server does from its
//! `members.json`, and whether a change has finished everywhere.

use crate::disk::SimDisk;
use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use ringkv_core::bucket::BucketTable;
use ringkv_core::gossip::{seed_id, MemberState, MemberStatus, Membership};
use ringkv_core::node::Node;
use ringkv_core::settings::Settings;
use ringkv_core::{Millis, NodeId};
use std::fmt;

/// Share of seeds whose schedule holds a membership change.
const CHANGE_CHANCE: f64 = 1.0 / 3.0;
/// A leave needs this many nodes, so that N = 3 replicas remain possible.
const MIN_NODES_TO_LEAVE: usize = 4;

/// The one membership change of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// A new node `node` starts at `at` knowing only the address of `seed`.
    Join {
        node: NodeId,
        seed: NodeId,
        at: Millis,
    },
    /// Member `node` starts leaving at `at`, or as soon after as it is up.
    Leave { node: NodeId, at: Millis },
    /// Member `node` dies for good at `at` and an operator removes it
    /// through another member as soon as it is down there; once removed,
    /// it comes back with its old disk and must be fenced.
    Remove { node: NodeId, at: Millis },
    /// Member `dead` dies for good at `at`, and new node `node` replaces it
    /// through `seed`; `dead` then comes back with its old disk and must be
    /// fenced.
    Replace {
        dead: NodeId,
        node: NodeId,
        seed: NodeId,
        at: Millis,
    },
}

impl MembershipChange {
    /// About a third of seeds get a change, at a time within the faulty
    /// phase: a join through a random node, or (with at least four nodes) a
    /// leave of one, equally likely.
    pub fn draw(rng: &mut ChaCha8Rng, nodes: usize, fault_ms: Millis) -> Option<Self> {
        if !rng.random_bool(CHANGE_CHANCE) {
            return None;
        }
        let at = rng.random_range(fault_ms / 10..=fault_ms * 8 / 10);
        let pick = rng.random_range(1..=nodes);
        let existing = NodeId::new(format!("n{pick}"));
        let leaves = nodes >= MIN_NODES_TO_LEAVE && rng.random_bool(0.5);
        // Half of the departures and arrivals happen the hard way.
        let hard = rng.random_bool(0.5);
        let new = NodeId::new(format!("n{}", nodes + 1));
        Some(match (leaves, hard) {
            (true, false) => MembershipChange::Leave { node: existing, at },
            (true, true) => MembershipChange::Remove { node: existing, at },
            (false, false) => MembershipChange::Join {
                node: new,
                seed: existing,
                at,
            },
            (false, true) => MembershipChange::Replace {
                dead: NodeId::new(format!("n{}", pick % nodes + 1)),
                node: new,
                seed: existing,
                at,
            },
        })
    }

    pub fn at(&self) -> Millis {
        match self {
            MembershipChange::Join { at, .. }
            | MembershipChange::Leave { at, .. }
            | MembershipChange::Remove { at, .. }
            | MembershipChange::Replace { at, .. } => *at,
        }
    }

    /// A node joins (plainly or as a replacement).
    pub fn is_join(&self) -> bool {
        matches!(
            self,
            MembershipChange::Join { .. } | MembershipChange::Replace { .. }
        )
    }

    /// A member goes (leaves or is removed).
    pub fn is_leave(&self) -> bool {
        matches!(
            self,
            MembershipChange::Leave { .. } | MembershipChange::Remove { .. }
        )
    }

    /// The member that dies for good and is removed, if any.
    pub fn removed(&self) -> Option<&NodeId> {
        match self {
            MembershipChange::Remove { node, .. } => Some(node),
            MembershipChange::Replace { dead, .. } => Some(dead),
            _ => None,
        }
    }

    /// The statuses every node must see once the change is done.
    fn outcomes(&self) -> Vec<(&NodeId, MemberStatus)> {
        match self {
            MembershipChange::Join { node, .. } => vec![(node, MemberStatus::Member)],
            MembershipChange::Leave { node, .. } => vec![(node, MemberStatus::Left)],
            MembershipChange::Remove { node, .. } => vec![(node, MemberStatus::Removed)],
            MembershipChange::Replace { dead, node, .. } => {
                vec![(dead, MemberStatus::Removed), (node, MemberStatus::Member)]
            }
        }
    }
}

impl fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipChange::Join { node, seed, at } => {
                write!(f, "join of {node} through {seed} at {at} ms")
            }
            MembershipChange::Leave { node, at } => write!(f, "leave of {node} at {at} ms"),
            MembershipChange::Remove { node, at } => {
                write!(f, "death of {node} at {at} ms, then its removal")
            }
            MembershipChange::Replace {
                dead,
                node,
                seed,
                at,
            } => write!(
                f,
                "death of {dead} at {at} ms, replaced by {node} through {seed}"
            ),
        }
    }
}

/// The simulated network's address of a node is its id, so a seed's
/// pseudo-id `seed:<id>` is that node.
pub fn route(to: NodeId) -> NodeId {
    let prefix = seed_id("");
    match to.as_str().strip_prefix(prefix.as_str()) {
        Some(id) => NodeId::new(id),
        None => to,
    }
}

/// A brand-new node that knows only `seed`'s address (generation 1), and
/// replaces dead member `replaces` if given.
pub fn joiner(
    id: &NodeId,
    seed: &NodeId,
    replaces: Option<&NodeId>,
    settings: &Settings,
    rng_seed: u64,
) -> Node<SimDisk> {
    let me = MemberState {
        generation: 1,
        replaces: replaces.cloned(),
        ..MemberState::new(id.clone(), MemberStatus::Joining)
    };
    let seeds = vec![seed.to_string()];
    let known = (me, Vec::new(), BucketTable::default());
    build(known, seeds, settings, SimDisk::new(), rng_seed)
}

/// A restart, as the server's `members_file::restored` does it: the member
/// list the node last had, its own entry renewed (same status, next
/// generation, version 0, no suspicions, nothing synced yet).
pub fn restored(
    id: &NodeId,
    (remembered, buckets): (Vec<MemberState>, BucketTable),
    seeds: Vec<String>,
    settings: &Settings,
    store: SimDisk,
    rng_seed: u64,
) -> Node<SimDisk> {
    let (mine, others): (Vec<MemberState>, Vec<MemberState>) =
        remembered.into_iter().partition(|m| m.id == *id);
    let before = mine.into_iter().next();
    let me = MemberState {
        generation: before
            .as_ref()
            .map_or(0, |m| m.generation)
            .saturating_add(1),
        replaces: before.as_ref().and_then(|m| m.replaces.clone()),
        ..MemberState::new(
            id.clone(),
            before.map_or(MemberStatus::Member, |m| m.status),
        )
    };
    build((me, others, buckets), seeds, settings, store, rng_seed)
}

fn build(
    (me, known, buckets): (MemberState, Vec<MemberState>, BucketTable),
    seeds: Vec<String>,
    settings: &Settings,
    store: SimDisk,
    rng_seed: u64,
) -> Node<SimDisk> {
    let members =
        Membership::new(me, known, seeds, settings.membership.clone()).with_buckets(buckets);
    Node::with_membership(settings.clone(), members, store, rng_seed)
        .expect("a memory store always has a lease")
}

/// How the running `nodes` that do not yet see `change` done see the nodes
/// it moves (`"n1 sees n4 Joining"`); empty once every one of them sees
/// every outcome. A removed node that came back is not asked.
pub fn lagging_views<'a>(
    change: &MembershipChange,
    nodes: impl Iterator<Item = &'a Node<SimDisk>>,
) -> Vec<String> {
    let outcomes = change.outcomes();
    nodes
        .filter(|node| change.removed() != Some(node.id()))
        .flat_map(|node| {
            outcomes.iter().filter_map(move |(id, outcome)| {
                let status = node.membership().member(id).map(|m| m.status);
                (status != Some(*outcome)).then(|| match status {
                    Some(status) => format!("{} sees {id} {status:?}", node.id()),
                    None => format!("{} does not know {id}", node.id()),
                })
            })
        })
        .collect()
}
