//! `PnCounter`: the positive-negative counter of Shapiro, Preguiça,
//! Baquero, Zawirski, "A comprehensive study of Convergent and Commutative
//! Replicated Data Types" (INRIA RR-7506, 2011, §3.1.3, Specification 7),
//! scoped to an *incarnation* so that a Redis `SET` can reset it.
//!
//! # Actors
//!
//! `P[a]` and `N[a]` are raised only by actor `a`, always on top of a state
//! holding `a`'s latest entry, so each entry is totally ordered and the
//! merge (pointwise maximum) keeps the latest. An actor is a node and the
//! counter of the dot of the write that introduced it ([`Actor`]); a node
//! keeps using its newest actor only while that actor's epoch is at or
//! above the node's dot floor ([`PnCounter::actor_for`]). A node that
//! restarts, or forgets a key (handoff drop, delivered hint), raises that
//! floor, and a node whose counter was replaced (`SET`, `DEL`) has no actor
//! in the new state: either way it starts a new actor at zero instead of
//! restarting an entry that a copy it no longer holds may have raised — the
//! "actor epoch" problem Riak's vnodes solve the same way (riak_kv's vnode
//! epochs).
//!
//! # Incarnations: SET and INCR
//!
//! A counter is born from nothing (value 0: every such birth is the same
//! incarnation, so first `INCR`s on both sides of a partition all count) or
//! from a string holding an integer (`SET k 10; INCR k` → 11): the
//! incarnation is then that string's version `(timestamp, dot)`, so every
//! node that increments the same `SET` joins the same counter. Two states
//! of one incarnation merge pointwise; of two incarnations the later wins
//! whole (last-write-wins, as two concurrent Redis `SET`s). So an `INCR`
//! concurrent with a `SET` is lost to it when the `SET` is later, as it
//! would be to any later `SET`; increments that see the `SET` count on top
//! of its value. The merge is the lexicographic join of a total order and
//! a lattice: commutative, associative, idempotent.
//!
//! # Arithmetic
//!
//! Entries are `u128`, raised with checked addition: each `INCRBY` adds at
//! most 2^63 to its actor's entry, and `P` and `N` only grow, so `u64`
//! entries would refuse a counter that went up and down by `i64::MAX`
//! twice although its value is 0; `u128` takes 2^65 such operations.
//! (postcard writes both as the same varint, so `u64` states decode.)
//! Sums saturate in `i128`.
//! [`PnCounter::apply`] refuses (as Redis does) an operation that would
//! take the value out of `i64`. Concurrent increments can still merge past
//! the range; [`PnCounter::value`] then *saturates*.

use super::CrdtError;
use crate::version::Dot;
use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who raises an entry: a node in one dot-floor epoch (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Actor {
    pub node: NodeId,
    pub epoch: u64,
}

/// Where an incarnation of the counter started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    pub timestamp: Millis,
    pub dot: Dot,
    pub value: i64,
}

impl Base {
    fn key(&self) -> (Millis, &Dot) {
        (self.timestamp, &self.dot)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PnCounter {
    /// `None`: born from nothing, the earliest incarnation.
    base: Option<Base>,
    p: BTreeMap<Actor, u128>,
    n: BTreeMap<Actor, u128>,
}

impl Default for PnCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl PnCounter {
    /// A counter born from nothing: 0.
    pub fn new() -> Self {
        PnCounter {
            base: None,
            p: BTreeMap::new(),
            n: BTreeMap::new(),
        }
    }

    /// A counter born from the string version `(timestamp, dot)` holding
    /// `value`.
    pub fn from_string(timestamp: Millis, dot: Dot, value: i64) -> Self {
        PnCounter {
            base: Some(Base {
                timestamp,
                dot,
                value,
            }),
            ..Self::new()
        }
    }

    fn base_key(&self) -> Option<(Millis, &Dot)> {
        self.base.as_ref().map(Base::key)
    }

    /// The actor `node` increments as: its newest one in this state if
    /// that is at or above `floor`, else a new one named by `dot`, the
    /// write being made (see the module docs).
    pub fn actor_for(&self, node: &NodeId, floor: u64, dot: &Dot) -> Actor {
        debug_assert!(dot.node == *node && dot.counter >= floor);
        let newest = self
            .p
            .keys()
            .chain(self.n.keys())
            .filter(|a| a.node == *node)
            .map(|a| a.epoch)
            .max();
        let epoch = newest.filter(|&e| e >= floor).unwrap_or(dot.counter);
        Actor {
            node: node.clone(),
            epoch,
        }
    }

    fn exact(&self) -> i128 {
        let sum = |m: &BTreeMap<Actor, u128>| {
            m.values().fold(0i128, |acc, &v| {
                acc.saturating_add(i128::try_from(v).unwrap_or(i128::MAX))
            })
        };
        let base = self.base.as_ref().map_or(0, |b| b.value);
        i128::from(base)
            .saturating_add(sum(&self.p))
            .saturating_sub(sum(&self.n))
    }

    /// The counter's value, saturated to the `i64` range.
    pub fn value(&self) -> i64 {
        let v = self.exact();
        i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
    }

    /// Add `delta` as `actor`; the new value, or [`CrdtError::Overflow`]
    /// (state unchanged) when it would leave `i64`.
    pub fn apply(&mut self, actor: &Actor, delta: i64) -> Result<i64, CrdtError> {
        let next = self.exact() + i128::from(delta);
        let value = i64::try_from(next).map_err(|_| CrdtError::Overflow)?;
        let map = if delta >= 0 { &mut self.p } else { &mut self.n };
        let entry = map.entry(actor.clone()).or_insert(0);
        *entry = entry
            .checked_add(u128::from(delta.unsigned_abs()))
            .ok_or(CrdtError::Overflow)?;
        debug_assert_eq!(self.exact(), next);
        Ok(value)
    }

    /// Join with `other`: the later incarnation, or within one the
    /// pointwise maximum of `P` and `N`.
    pub fn merge(&mut self, other: &PnCounter) {
        match other.base_key().cmp(&self.base_key()) {
            std::cmp::Ordering::Greater => return *self = other.clone(),
            std::cmp::Ordering::Less => return,
            std::cmp::Ordering::Equal => {}
        }
        assert_eq!(self.base, other.base, "one dot, one incarnation");
        for (mine, theirs) in [(&mut self.p, &other.p), (&mut self.n, &other.n)] {
            for (actor, &v) in theirs {
                let e = mine.entry(actor.clone()).or_insert(0);
                *e = (*e).max(v);
            }
        }
    }

    /// Actors with an entry: what the state grows with (one per node, and
    /// one more each time a node restarts or forgets the key and then
    /// increments it again).
    pub fn actors(&self) -> usize {
        self.p.len() + self.n.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(node: &str, epoch: u64) -> Actor {
        Actor {
            node: node.into(),
            epoch,
        }
    }

    #[test]
    fn concurrent_increments_through_different_actors_all_count() {
        let base = PnCounter::from_string(1, Dot::new("n1", 1), 10);
        let (mut a, mut b) = (base.clone(), base);
        a.apply(&actor("n1", 0), 3).unwrap();
        b.apply(&actor("n2", 0), -1).unwrap();
        b.apply(&actor("n2", 0), 5).unwrap();
        a.merge(&b);
        assert_eq!(a.value(), 17);
    }

    #[test]
    fn a_later_incarnation_wins_whole() {
        let mut old = PnCounter::new();
        old.apply(&actor("n1", 0), 7).unwrap();
        let mut set = PnCounter::from_string(5, Dot::new("n2", 4), 100);
        set.apply(&actor("n1", 0), 1).unwrap();
        let mut merged = old.clone();
        merged.merge(&set);
        assert_eq!(merged.value(), 101);
        let mut other_way = set;
        other_way.merge(&old);
        assert_eq!(other_way, merged);
    }

    #[test]
    fn overflow_is_refused_and_changes_nothing() {
        let mut c = PnCounter::from_string(1, Dot::new("n1", 1), i64::MAX - 1);
        assert_eq!(c.apply(&actor("n1", 0), 1), Ok(i64::MAX));
        let before = c.clone();
        assert_eq!(c.apply(&actor("n1", 0), 1), Err(CrdtError::Overflow));
        assert_eq!(c, before);
        assert_eq!(c.apply(&actor("n1", 0), i64::MIN), Ok(-1));
    }

    #[test]
    fn going_up_and_down_by_the_whole_range_never_overflows_the_entries() {
        let mut c = PnCounter::new();
        let a = actor("n1", 0);
        for _ in 0..1_000 {
            assert_eq!(c.apply(&a, i64::MAX), Ok(i64::MAX));
            assert_eq!(c.apply(&a, -i64::MAX), Ok(0));
        }
    }

    #[test]
    fn a_u64_state_decodes_as_the_same_counter() {
        #[derive(Serialize)]
        struct Old {
            base: Option<Base>,
            p: BTreeMap<Actor, u64>,
            n: BTreeMap<Actor, u64>,
        }
        let old = Old {
            base: None,
            p: BTreeMap::from([(actor("n1", 3), u64::MAX)]),
            n: BTreeMap::from([(actor("n2", 0), 7)]),
        };
        let bytes = postcard::to_stdvec(&old).unwrap();
        let new: PnCounter = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(new.p[&actor("n1", 3)], u128::from(u64::MAX));
        assert_eq!(new.n[&actor("n2", 0)], 7);
    }
}

#[cfg(test)]
mod actor_tests {
    use super::*;

    #[test]
    fn a_node_keeps_its_actor_until_its_floor_passes_it() {
        let n1: NodeId = "n1".into();
        let mut c = PnCounter::new();
        let first = c.actor_for(&n1, 0, &Dot::new("n1", 5));
        assert_eq!(first.epoch, 5);
        c.apply(&first, 1).unwrap();
        assert_eq!(c.actor_for(&n1, 0, &Dot::new("n1", 6)), first);
        // After a restart (floor 10_000) its old entry may not be its latest.
        let after = c.actor_for(&n1, 10_000, &Dot::new("n1", 10_000));
        assert_eq!(after.epoch, 10_000);
        assert_ne!(after, first);
    }
}
