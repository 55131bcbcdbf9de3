//! Dots and causal contexts: the causal bookkeeping behind siblings.
//!
//! ringkv uses *dotted* version vectors (Preguiça et al., the scheme Riak
//! adopted to end sibling explosion). Every write event gets a [`Dot`] — the
//! coordinating node and a per-key counter — and remembers the
//! [`CausalContext`] it was written *against* (the client's context). A
//! stored version is made obsolete only by a write whose context
//! [`covers`](CausalContext::covers) its dot.
//!
//! A context is an *exact* set of dots, as the causal contexts of
//! delta-state CRDTs are (Almeida, Shoker, Baquero, "Delta State Replicated
//! Data Types", 2018: a compact version vector plus a "dot cloud"): per node
//! the counters it covers, kept as sorted intervals, so the usual history
//! `1..=k` is one interval and a gap stays a gap. A plain version vector
//! cannot say "n2:2 but not n2:1", so handing a writer the clock of its own
//! new version `n2:2` would also hand it the sibling `n2:1` that the same
//! coordinator wrote for somebody else — a write with that context would
//! then silently replace a version its writer was never shown. Exact
//! contexts cover what their holder saw and nothing else.

use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

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

/// The events of one node that a context covers: sorted, disjoint,
/// non-adjacent inclusive intervals of counters (all ≥ 1), and the
/// wall-clock time of the latest event added — kept only so pruning can
/// drop the entries that have been quiet the longest, as Riak's vclock
/// pruning does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub timestamp: Millis,
    intervals: Vec<(u64, u64)>,
}

impl Entry {
    /// The highest counter covered (0 when none).
    pub fn max(&self) -> u64 {
        self.intervals.last().map_or(0, |&(_, hi)| hi)
    }

    /// The covered intervals, ascending.
    pub fn intervals(&self) -> &[(u64, u64)] {
        &self.intervals
    }

    fn covers(&self, counter: u64) -> bool {
        let i = self.intervals.partition_point(|&(_, hi)| hi < counter);
        self.intervals.get(i).is_some_and(|&(lo, _)| lo <= counter)
    }

    /// Add the interval `lo..=hi`, joining whatever it overlaps or touches.
    fn insert(&mut self, lo: u64, hi: u64) {
        debug_assert!(1 <= lo && lo <= hi, "interval {lo}..={hi}");
        let first = self
            .intervals
            .partition_point(|&(_, h)| h.saturating_add(1) < lo);
        let last = self
            .intervals
            .partition_point(|&(l, _)| l <= hi.saturating_add(1));
        let (mut lo, mut hi) = (lo, hi);
        if first < last {
            lo = lo.min(self.intervals[first].0);
            hi = hi.max(self.intervals[last - 1].1);
        }
        self.intervals.splice(first..last, [(lo, hi)]);
        debug_assert!(self.well_formed());
    }

    /// True when every counter `other` covers is covered here.
    fn contains(&self, other: &Entry) -> bool {
        other.intervals.iter().all(|&(lo, hi)| {
            let i = self.intervals.partition_point(|&(_, h)| h < lo);
            self.intervals
                .get(i)
                .is_some_and(|&(l, h)| l <= lo && hi <= h)
        })
    }

    fn well_formed(&self) -> bool {
        self.intervals.iter().all(|&(lo, hi)| 1 <= lo && lo <= hi)
            && self
                .intervals
                .windows(2)
                .all(|w| w[0].1.saturating_add(1) < w[1].0)
    }
}

/// How two contexts relate in the causal partial order (set inclusion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    Equal,
    /// `self` has seen everything `other` has, and more.
    Descends,
    /// `other` has seen everything `self` has, and more.
    Precedes,
    Concurrent,
}

/// An exact set of dots (see the module docs), per node as intervals.
/// Absent nodes cover nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalContext {
    entries: BTreeMap<NodeId, Entry>,
}

impl CausalContext {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Nodes with an entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// What pruning bounds: one per entry plus one per interval beyond an
    /// entry's first (a gap costs about as much as an entry).
    pub fn size(&self) -> usize {
        self.entries.values().map(|e| e.intervals.len()).sum()
    }

    /// The highest counter of `node` covered (0 when none): a coordinator
    /// issues its next dot above it.
    pub fn max_counter(&self, node: &NodeId) -> u64 {
        self.entries.get(node).map_or(0, Entry::max)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&NodeId, &Entry)> {
        self.entries.iter()
    }

    /// True when the event `dot` is part of this context.
    pub fn covers(&self, dot: &Dot) -> bool {
        self.entries
            .get(&dot.node)
            .is_some_and(|e| e.covers(dot.counter))
    }

    /// Record exactly the event `dot` (which happened at `timestamp`).
    pub fn add(&mut self, dot: &Dot, timestamp: Millis) {
        assert!(dot.counter >= 1, "dot counters start at 1");
        let entry = self.entries.entry(dot.node.clone()).or_default();
        entry.insert(dot.counter, dot.counter);
        entry.timestamp = entry.timestamp.max(timestamp);
    }

    /// Record every event `1..=counter` of `node`: the meaning of a plain
    /// version-vector entry (contexts of format 1).
    pub fn add_prefix(&mut self, node: &NodeId, counter: u64, timestamp: Millis) {
        if counter == 0 {
            return;
        }
        let entry = self.entries.entry(node.clone()).or_default();
        entry.insert(1, counter);
        entry.timestamp = entry.timestamp.max(timestamp);
    }

    /// The union of both (every event of either).
    pub fn merge(&mut self, other: &CausalContext) {
        for (node, theirs) in &other.entries {
            let mine = self.entries.entry(node.clone()).or_default();
            for &(lo, hi) in &theirs.intervals {
                mine.insert(lo, hi);
            }
            mine.timestamp = mine.timestamp.max(theirs.timestamp);
        }
    }

    /// True when every event of `other` is in `self` (`self` ⊇ `other`).
    pub fn descends(&self, other: &CausalContext) -> bool {
        other.entries.iter().all(|(node, e)| {
            self.entries
                .get(node)
                .map_or(e.intervals.is_empty(), |m| m.contains(e))
        })
    }

    pub fn compare(&self, other: &CausalContext) -> Causality {
        match (self.descends(other), other.descends(self)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Descends,
            (false, true) => Causality::Precedes,
            (false, false) => Causality::Concurrent,
        }
    }

    /// Bound [`size`](Self::size) to `max_size` by forgetting history —
    /// never a dot in `keep`, nor an entry whose last event is younger than
    /// `young_ms` before `now`.
    ///
    /// The rule: `keep` holds the dots of the versions the write being
    /// made supersedes — what its writer was shown and the coordinator
    /// holds — so a replica that still has one of them sees it superseded;
    /// forgetting one would leave that version beside the new one for good,
    /// a sibling no write could resolve. Other entries go oldest first, but
    /// only when quiet for `young_ms` (Riak's `young_vclock`, 20 s by
    /// default): a write from the last seconds may still be on its way to a
    /// replica, which needs the entry to see it superseded. Then, if still
    /// too large, old gaps: the lowest interval of the entry with the most
    /// gaps that holds no kept dot and is not the entry's latest. When only
    /// kept or young history is left the bound is exceeded rather than broken: kept dots
    /// are at most the siblings a write may resolve, young entries at most
    /// the nodes that wrote in the last seconds.
    ///
    /// Pruning only forgets, so it can make versions look concurrent that
    /// were not (a spurious sibling, which the next resolving write
    /// removes); it never makes an unseen version look superseded.
    pub fn prune(&mut self, max_size: usize, keep: &BTreeSet<Dot>, now: Millis, young_ms: Millis) {
        let quiet_since = now.saturating_sub(young_ms);
        while self.size() > max_size {
            if let Some(oldest) = self.oldest_prunable(keep, quiet_since) {
                self.entries.remove(&oldest);
            } else if let Some((node, i)) = self.old_gap_interval(keep) {
                self.entries
                    .get_mut(&node)
                    .expect("listed above")
                    .intervals
                    .remove(i);
            } else {
                break;
            }
        }
    }

    /// The entry quiet the longest among those holding no kept dot and
    /// quiet since `quiet_since`.
    fn oldest_prunable(&self, keep: &BTreeSet<Dot>, quiet_since: Millis) -> Option<NodeId> {
        self.entries
            .iter()
            .filter(|(node, e)| {
                e.timestamp <= quiet_since
                    && !e.intervals.iter().any(|&i| holds_kept(node, i, keep))
            })
            .min_by_key(|(node, e)| (e.timestamp, e.max(), (*node).clone()))
            .map(|(node, _)| node.clone())
    }

    /// In the entry with the most gaps, its lowest interval (oldest
    /// history) that holds no kept dot, never its last (which holds the
    /// entry's latest event).
    fn old_gap_interval(&self, keep: &BTreeSet<Dot>) -> Option<(NodeId, usize)> {
        self.entries
            .iter()
            .filter_map(|(node, e)| {
                let last = e.intervals.len().checked_sub(1)?;
                let i = e.intervals[..last]
                    .iter()
                    .position(|&i| !holds_kept(node, i, keep))?;
                Some((e.intervals.len(), std::cmp::Reverse(node.clone()), i))
            })
            .max()
            .map(|(_, std::cmp::Reverse(node), i)| (node, i))
    }
}

/// True when the interval `lo..=hi` of `node`'s counters holds a dot in
/// `keep`.
fn holds_kept(node: &NodeId, (lo, hi): (u64, u64), keep: &BTreeSet<Dot>) -> bool {
    keep.range(Dot::new(node.clone(), lo)..=Dot::new(node.clone(), hi))
        .next()
        .is_some()
}

impl PartialOrd for CausalContext {
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

    const YOUNG: Millis = 20_000;

    /// A context holding every event `1..=counter` of each node.
    fn prefixes(entries: &[(&str, u64)]) -> CausalContext {
        let mut c = CausalContext::new();
        for (node, counter) in entries {
            c.add_prefix(&NodeId::from(*node), *counter, *counter);
        }
        c
    }

    fn dots(entries: &[(&str, u64)]) -> CausalContext {
        let mut c = CausalContext::new();
        for (node, counter) in entries {
            c.add(&Dot::new(*node, *counter), *counter);
        }
        c
    }

    #[test]
    fn the_seeds_story_orders_as_written() {
        let cart = prefixes(&[("S1", 2)]);
        let carm = prefixes(&[("S1", 2), ("S2", 1)]);
        let carr = prefixes(&[("S1", 2), ("S3", 1)]);
        assert_eq!(carm.compare(&cart), Causality::Descends);
        assert_eq!(cart.compare(&carr), Causality::Precedes);
        assert_eq!(carm.compare(&carr), Causality::Concurrent);
        let mut resolved = carm.clone();
        resolved.merge(&carr);
        resolved.add(&Dot::new("S1", 3), 3);
        assert_eq!(resolved, prefixes(&[("S1", 3), ("S2", 1), ("S3", 1)]));
        assert!(resolved > carm && resolved > carr);
    }

    #[test]
    fn a_dot_covers_itself_and_nothing_before_it() {
        let c = dots(&[("n2", 2)]);
        assert!(c.covers(&Dot::new("n2", 2)));
        assert!(!c.covers(&Dot::new("n2", 1)), "n2:1 was never seen");
        assert!(!c.covers(&Dot::new("n2", 3)));
        assert_eq!(c.max_counter(&"n2".into()), 2);
    }

    #[test]
    fn contiguous_dots_compact_into_one_interval() {
        let mut c = dots(&[("a", 3), ("a", 1), ("a", 5)]);
        assert_eq!(c.size(), 3);
        c.add(&Dot::new("a", 2), 9);
        c.add(&Dot::new("a", 4), 9);
        assert_eq!(c, prefixes(&[("a", 5)]).with_timestamp("a", 9));
        assert_eq!(c.size(), 1);
    }

    impl CausalContext {
        fn with_timestamp(mut self, node: &str, t: Millis) -> Self {
            self.entries.get_mut(&NodeId::from(node)).unwrap().timestamp = t;
            self
        }
    }

    #[test]
    fn prune_drops_the_oldest_quiet_entries_never_kept_ones() {
        let now = 100_000;
        let mut c = CausalContext::new();
        c.add(&Dot::new("old", 1), 10);
        c.add(&Dot::new("kept", 1), 5);
        c.add(&Dot::new("young", 1), now - 1);
        c.add(&Dot::new("mid", 1), 30);
        let keep = BTreeSet::from([Dot::new("kept", 1)]);
        c.prune(2, &keep, now, YOUNG);
        assert_eq!(c.len(), 2);
        assert!(c.covers(&Dot::new("kept", 1)) && c.covers(&Dot::new("young", 1)));
    }

    #[test]
    fn prune_exceeds_the_bound_rather_than_drop_kept_or_young_entries() {
        let mut c = dots(&[("a", 1), ("b", 1), ("c", 1)]);
        let keep = BTreeSet::from([Dot::new("a", 1), Dot::new("b", 1)]);
        c.prune(1, &keep, YOUNG, YOUNG);
        assert_eq!(c.len(), 3, "c is young");
        c.prune(1, &keep, 1 + YOUNG, YOUNG);
        assert_eq!(c.len(), 2, "a and b are kept");
    }

    #[test]
    fn prune_forgets_old_gaps_but_never_a_kept_dot() {
        let mut c = dots(&[("a", 1), ("a", 5), ("a", 9)]);
        c.prune(2, &BTreeSet::from([Dot::new("a", 9)]), 0, YOUNG);
        assert_eq!(c, dots(&[("a", 5), ("a", 9)]));
        assert_eq!(c.max_counter(&"a".into()), 9);
        let mut c = dots(&[("a", 1), ("a", 5), ("a", 9)]);
        c.prune(1, &BTreeSet::from([Dot::new("a", 1)]), 0, YOUNG);
        assert_eq!(
            c,
            dots(&[("a", 1), ("a", 9)]),
            "a:1 is kept, a:9 is the latest"
        );
    }

    fn arb_ctx() -> impl Strategy<Value = CausalContext> {
        proptest::collection::vec((0u8..4, 1u64..12), 0..12).prop_map(|dots| {
            let mut c = CausalContext::new();
            for (node, counter) in dots {
                c.add(&Dot::new(format!("n{node}").as_str(), counter), counter);
            }
            c
        })
    }

    fn all_dots(c: &CausalContext) -> BTreeSet<Dot> {
        c.entries()
            .flat_map(|(n, e)| {
                e.intervals()
                    .iter()
                    .flat_map(move |&(lo, hi)| (lo..=hi).map(move |k| Dot::new(n.clone(), k)))
            })
            .collect()
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(a in arb_ctx(), b in arb_ctx(), c in arb_ctx()) {
            let join = |x: &CausalContext, y: &CausalContext| { let mut z = x.clone(); z.merge(y); z };
            prop_assert_eq!(join(&a, &b), join(&b, &a));
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
            prop_assert_eq!(join(&a, &a), a.clone());
        }

        #[test]
        fn merge_is_the_union_of_the_dots(a in arb_ctx(), b in arb_ctx()) {
            let mut j = a.clone();
            j.merge(&b);
            let union: BTreeSet<Dot> = all_dots(&a).union(&all_dots(&b)).cloned().collect();
            prop_assert_eq!(all_dots(&j), union);
            prop_assert!(j.descends(&a) && j.descends(&b));
            for e in j.entries.values() { prop_assert!(e.well_formed()); }
        }

        #[test]
        fn covers_and_descends_agree_with_the_dot_sets(a in arb_ctx(), b in arb_ctx(), n in 0u8..4, k in 1u64..14) {
            let dot = Dot::new(format!("n{n}").as_str(), k);
            prop_assert_eq!(a.covers(&dot), all_dots(&a).contains(&dot));
            prop_assert_eq!(a.descends(&b), all_dots(&a).is_superset(&all_dots(&b)));
        }

        #[test]
        fn compare_is_a_partial_order(a in arb_ctx(), b in arb_ctx(), c in arb_ctx()) {
            prop_assert_eq!(a.compare(&a), Causality::Equal);
            if a.descends(&b) && b.descends(&a) { prop_assert_eq!(&a, &b); }
            if a.descends(&b) && b.descends(&c) { prop_assert!(a.descends(&c)); }
            let mirrored = match b.compare(&a) {
                Causality::Descends => Causality::Precedes,
                Causality::Precedes => Causality::Descends,
                same => same,
            };
            prop_assert_eq!(a.compare(&b), mirrored);
        }

        #[test]
        fn prune_only_forgets_and_keeps_what_it_must(a in arb_ctx(), max in 1usize..4, kept in proptest::collection::vec((0u8..4, 1u64..12), 0..3), now in 0u64..40_000) {
            let keep: BTreeSet<Dot> = kept
                .into_iter()
                .map(|(n, k)| Dot::new(format!("n{n}").as_str(), k))
                .filter(|d| a.covers(d))
                .collect();
            let mut p = a.clone();
            p.prune(max, &keep, now, YOUNG);
            prop_assert!(a.descends(&p));
            for dot in &keep {
                prop_assert!(p.covers(dot));
            }
            let young = a.entries().filter(|(_, e)| e.timestamp + YOUNG > now).count();
            // Left beyond the bound: entries with a kept dot or young ones,
            // each with its kept intervals and its latest one.
            prop_assert!(p.size() <= max.max(2 * keep.len() + young));
        }
    }
}
