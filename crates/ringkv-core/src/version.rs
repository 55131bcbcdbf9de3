//! Version vectors and dots: the causal bookkeeping behind siblings.
//!
//! ringkv uses *dotted* version vectors (Preguiça et al., the scheme Riak
//! adopted to end sibling explosion). Every write event gets a [`Dot`] — the
//! coordinating node and a per-key counter — and remembers the
//! [`VersionVector`] it was written *against* (the client's causal context).
//! A stored version is made obsolete only by a write whose context
//! [`covers`](VersionVector::covers) its dot. That is what lets two blind
//! writes through the same coordinator both survive: their dots differ and
//! neither context covers the other's dot, where a plain per-node vector
//! clock would have made the second dominate the first.

use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// One write event: the `counter`-th event coordinated by `node` for a key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub node: NodeId,
    pub counter: u64,
}

impl Dot {
    pub fn new(node: impl Into<NodeId>, counter: u64) -> Self {
        Dot {
            node: node.into(),
            counter,
        }
    }
}

/// One vector entry: the highest counter seen from a node, and the wall-clock
/// time of that event. The time exists only so that pruning can drop the
/// entries that have been quiet the longest, as Riak's vclock pruning does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub counter: u64,
    pub timestamp: Millis,
}

/// How two version vectors relate in the causal partial order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    Equal,
    /// `self` has seen everything `other` has, and more.
    Descends,
    /// `other` has seen everything `self` has, and more.
    Precedes,
    Concurrent,
}

/// A map node → (counter, timestamp). Absent nodes count as zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionVector {
    entries: BTreeMap<NodeId, Entry>,
}

impl VersionVector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The counter recorded for `node` (0 when absent).
    pub fn counter(&self, node: &NodeId) -> u64 {
        self.entries.get(node).map_or(0, |e| e.counter)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&NodeId, &Entry)> {
        self.entries.iter()
    }

    /// True when the event `dot` is part of this vector's history.
    pub fn covers(&self, dot: &Dot) -> bool {
        self.counter(&dot.node) >= dot.counter
    }

    /// Record event `dot` (which happened at `timestamp`) in this history.
    pub fn add(&mut self, dot: &Dot, timestamp: Millis) {
        self.merge_entry(
            &dot.node,
            Entry {
                counter: dot.counter,
                timestamp,
            },
        );
    }

    /// The least upper bound of both histories (pointwise maximum).
    pub fn merge(&mut self, other: &VersionVector) {
        for (node, entry) in &other.entries {
            self.merge_entry(node, *entry);
        }
    }

    fn merge_entry(&mut self, node: &NodeId, entry: Entry) {
        match self.entries.get_mut(node) {
            Some(mine) if mine.counter > entry.counter => {}
            Some(mine) if mine.counter == entry.counter => {
                mine.timestamp = mine.timestamp.max(entry.timestamp)
            }
            _ => {
                self.entries.insert(node.clone(), entry);
            }
        }
    }

    /// True when every event of `other` is in `self` (`self` ≥ `other`).
    pub fn descends(&self, other: &VersionVector) -> bool {
        other
            .entries
            .iter()
            .all(|(node, e)| self.counter(node) >= e.counter)
    }

    pub fn compare(&self, other: &VersionVector) -> Causality {
        match (self.descends(other), other.descends(self)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Descends,
            (false, true) => Causality::Precedes,
            (false, false) => Causality::Concurrent,
        }
    }

    /// Bound the vector to `max_entries` by dropping the entries whose last
    /// event is oldest, never the entry of `keep` (the node writing now).
    ///
    /// Pruning forgets history, so it can only make versions look concurrent
    /// that were not (a spurious sibling, which the client resolves) — it can
    /// never make an unseen version look superseded. That is the safe
    /// direction, and the reason Riak prunes the same way.
    pub fn prune(&mut self, max_entries: usize, keep: &NodeId) {
        while self.entries.len() > max_entries.max(1) {
            let oldest = self
                .entries
                .iter()
                .filter(|(node, _)| *node != keep)
                .min_by_key(|(node, e)| (e.timestamp, e.counter, (*node).clone()))
                .map(|(node, _)| node.clone());
            match oldest {
                Some(node) => self.entries.remove(&node),
                None => break,
            };
        }
    }
}

impl PartialOrd for VersionVector {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match self.compare(other) {
            Causality::Equal => Some(Ordering::Equal),
            Causality::Descends => Some(Ordering::Greater),
            Causality::Precedes => Some(Ordering::Less),
            Causality::Concurrent => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vv(entries: &[(&str, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for (node, counter) in entries {
            v.add(&Dot::new(*node, *counter), *counter);
        }
        v
    }

    #[test]
    fn the_seeds_story_orders_as_written() {
        let cart = vv(&[("S1", 2)]);
        let carm = vv(&[("S1", 2), ("S2", 1)]);
        let carr = vv(&[("S1", 2), ("S3", 1)]);
        assert_eq!(carm.compare(&cart), Causality::Descends);
        assert_eq!(cart.compare(&carr), Causality::Precedes);
        assert_eq!(carm.compare(&carr), Causality::Concurrent);
        let mut resolved = carm.clone();
        resolved.merge(&carr);
        resolved.add(&Dot::new("S1", 3), 3);
        assert_eq!(resolved, vv(&[("S1", 3), ("S2", 1), ("S3", 1)]));
        assert!(resolved > carm && resolved > carr);
    }

    #[test]
    fn covers_means_the_event_is_in_the_history() {
        let v = vv(&[("a", 3)]);
        assert!(v.covers(&Dot::new("a", 3)));
        assert!(v.covers(&Dot::new("a", 1)));
        assert!(!v.covers(&Dot::new("a", 4)));
        assert!(!v.covers(&Dot::new("b", 1)));
    }

    #[test]
    fn prune_drops_the_oldest_entries_but_never_the_writer() {
        let mut v = VersionVector::new();
        v.add(&Dot::new("old", 1), 10);
        v.add(&Dot::new("writer", 1), 5);
        v.add(&Dot::new("new", 1), 30);
        v.prune(2, &NodeId::from("writer"));
        assert_eq!(v.len(), 2);
        assert_eq!(v.counter(&"old".into()), 0);
        assert_eq!(v.counter(&"writer".into()), 1);
        assert_eq!(v.counter(&"new".into()), 1);
    }

    fn arb_vv() -> impl Strategy<Value = VersionVector> {
        proptest::collection::btree_map(0u8..5, 0u64..4, 0..5).prop_map(|m| {
            let mut v = VersionVector::new();
            for (node, counter) in m {
                v.add(&Dot::new(format!("n{node}").as_str(), counter), counter);
            }
            v
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(a in arb_vv(), b in arb_vv(), c in arb_vv()) {
            let join = |x: &VersionVector, y: &VersionVector| { let mut z = x.clone(); z.merge(y); z };
            prop_assert_eq!(join(&a, &b), join(&b, &a));
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
            prop_assert_eq!(join(&a, &a), a.clone());
        }

        #[test]
        fn merge_is_the_least_upper_bound(a in arb_vv(), b in arb_vv()) {
            let mut j = a.clone();
            j.merge(&b);
            prop_assert!(j.descends(&a) && j.descends(&b));
        }

        #[test]
        fn compare_is_a_partial_order(a in arb_vv(), b in arb_vv(), c in arb_vv()) {
            // Reflexive.
            prop_assert_eq!(a.compare(&a), Causality::Equal);
            // Antisymmetric: mutual descent means equal histories.
            if a.descends(&b) && b.descends(&a) {
                for (node, e) in a.entries() { prop_assert_eq!(b.counter(node), e.counter); }
            }
            // Transitive.
            if a.descends(&b) && b.descends(&c) { prop_assert!(a.descends(&c)); }
            // compare and its mirror agree.
            let mirrored = match b.compare(&a) {
                Causality::Descends => Causality::Precedes,
                Causality::Precedes => Causality::Descends,
                same => same,
            };
            prop_assert_eq!(a.compare(&b), mirrored);
        }

        #[test]
        fn prune_bounds_size_and_only_forgets(a in arb_vv(), max in 1usize..4) {
            let mut p = a.clone();
            p.prune(max, &NodeId::from("n0"));
            prop_assert!(p.len() <= max);
            prop_assert!(a.descends(&p));
        }
    }
}
