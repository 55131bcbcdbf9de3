//! `OrList`: a Redis list as an observed-remove collection of elements,
//! each an event of the write that pushed it, ordered by a position.
//!
//! Redis lists grow and shrink only at their ends (`LPUSH`, `RPUSH`,
//! `LPOP`, `RPOP`), so a position need not be dense as in sequence CRDTs
//! for inserts in the middle (RGA, Logoot): a push at the head takes
//! positions below the lowest one its coordinator sees, a push at the tail
//! above the highest. Concurrent pushes at the same end may take the same
//! position; the element's identity — the write's [`Dot`] and the index
//! among its elements ([`Slot`]) — orders them, the same on every replica.
//! So concurrent pushes through different nodes are all kept, each
//! write's elements stay together and in order, and the two writes'
//! elements are ordered by their coordinators.
//!
//! A pop removes the elements it observed, as an observed-remove set does
//! (Bieniusa et al. 2012; the dot store and causal context of Almeida,
//! Shoker, Baquero, "Delta State Replicated Data Types", 2018, §5): a
//! removed element stays removed, an element pushed concurrently with a
//! pop survives. Two pops through different nodes that neither saw the
//! other may both return the same element — a pop is not a consensus; a
//! queue that must hand each element to exactly one consumer needs one.

use super::dots::{fresh, join_events, witness};
use super::CrdtError;
use crate::version::{CausalContext, Dot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An element's identity: the write that pushed it, and its index among
/// that write's elements.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Slot {
    pub dot: Dot,
    pub index: u32,
}

/// Which end of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum End {
    Head,
    Tail,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrList {
    /// Element → its position and bytes.
    elements: BTreeMap<Slot, (i64, Vec<u8>)>,
    context: CausalContext,
}

impl OrList {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// The elements from head to tail: by position, then identity.
    pub fn ordered(&self) -> Vec<&[u8]> {
        self.in_order()
            .into_iter()
            .map(|(_, _, bytes)| bytes)
            .collect()
    }

    fn in_order(&self) -> Vec<(i64, &Slot, &[u8])> {
        let mut all: Vec<_> = self
            .elements
            .iter()
            .map(|(slot, (pos, bytes))| (*pos, slot, bytes.as_slice()))
            .collect();
        all.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        all
    }

    /// Push `elems` at `end` as the one write `dot` (fresh), in the order
    /// given: `LPUSH k a b` leaves `b a …`, `RPUSH k a b` leaves `… a b`,
    /// as in Redis. Returns the new length.
    pub fn push(&mut self, dot: &Dot, end: End, elems: &[Vec<u8>]) -> Result<usize, CrdtError> {
        fresh(&self.context, dot)?;
        let positions = self.elements.values().map(|(p, _)| *p);
        let (lowest, highest) = (positions.clone().min(), positions.max());
        for (i, elem) in elems.iter().enumerate() {
            let step = i64::try_from(i + 1).map_err(|_| CrdtError::ListEnd)?;
            let position = match end {
                End::Head => lowest.unwrap_or(0).checked_sub(step),
                End::Tail => highest.unwrap_or(0).checked_add(step),
            };
            let slot = Slot {
                dot: dot.clone(),
                index: u32::try_from(i).map_err(|_| CrdtError::ListEnd)?,
            };
            let position = position.ok_or(CrdtError::ListEnd)?;
            self.elements.insert(slot, (position, elem.clone()));
        }
        self.context.add(dot, 0);
        debug_assert!(self.well_formed());
        Ok(self.len())
    }

    /// Remove up to `count` elements at `end` as observed here; them, in
    /// the order popped. The write that carries the pop is then
    /// [`Self::witness`]ed.
    pub fn pop(&mut self, end: End, count: usize) -> Vec<Vec<u8>> {
        let mut order: Vec<Slot> = self
            .in_order()
            .into_iter()
            .map(|(_, slot, _)| slot.clone())
            .collect();
        if end == End::Tail {
            order.reverse();
        }
        order
            .into_iter()
            .take(count)
            .filter_map(|slot| self.elements.remove(&slot).map(|(_, bytes)| bytes))
            .collect()
    }

    /// Record `dot`, the write that carries a pop (see
    /// [`super::OrSet::witness`]).
    pub fn witness(&mut self, dot: &Dot) -> Result<(), CrdtError> {
        witness(&mut self.context, dot)
    }

    /// Intervals in the causal context.
    pub fn context_size(&self) -> usize {
        self.context.size()
    }

    /// Remove every element observed here (`DEL`).
    pub fn clear(&mut self) {
        self.elements.clear();
    }

    /// The join: elements by the dot-store rule, contexts united.
    pub fn merge(&mut self, other: &OrList) {
        self.elements = join_events(
            &self.elements,
            &self.context,
            &other.elements,
            &other.context,
            |slot| &slot.dot,
        );
        self.context.merge(&other.context);
        debug_assert!(self.well_formed());
    }

    fn well_formed(&self) -> bool {
        self.elements.keys().all(|s| self.context.covers(&s.dot))
    }
}

/// Redis's `start`/`stop` (negative: from the tail) over a list of `len`:
/// the inclusive index range, or `None` when it is empty (`LRANGE`).
pub fn index_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let from_end = |i: i64| if i < 0 { len.saturating_add(i) } else { i };
    let (start, stop) = (from_end(start).max(0), from_end(stop).min(len - 1));
    if len == 0 || start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(list: &OrList) -> Vec<String> {
        list.ordered()
            .into_iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    fn v(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn pushes_order_as_redis_does() {
        let mut l = OrList::new();
        l.push(&Dot::new("n1", 1), End::Head, &[v("a"), v("b")])
            .unwrap();
        l.push(&Dot::new("n1", 2), End::Tail, &[v("c"), v("d")])
            .unwrap();
        assert_eq!(bytes(&l), ["b", "a", "c", "d"]);
        assert_eq!(l.pop(End::Head, 1), [v("b")]);
        assert_eq!(l.pop(End::Tail, 2), [v("d"), v("c")]);
        assert_eq!(bytes(&l), ["a"]);
    }

    #[test]
    fn concurrent_pushes_are_all_kept_and_a_pop_removes_only_what_it_saw() {
        let mut base = OrList::new();
        base.push(&Dot::new("n1", 1), End::Tail, &[v("x")]).unwrap();
        let (mut a, mut b) = (base.clone(), base);
        a.push(&Dot::new("n1", 2), End::Tail, &[v("a")]).unwrap();
        b.push(&Dot::new("n2", 1), End::Tail, &[v("b")]).unwrap();
        assert_eq!(b.pop(End::Head, 1), [v("x")]);
        b.witness(&Dot::new("n2", 2)).unwrap();
        let mut ab = a.clone();
        ab.merge(&b);
        b.merge(&a);
        assert_eq!(ab, b);
        assert_eq!(bytes(&ab), ["a", "b"]);
    }

    #[test]
    fn index_ranges_follow_lrange() {
        assert_eq!(index_range(0, -1, 3), Some((0, 2)));
        assert_eq!(index_range(-2, 10, 3), Some((1, 2)));
        assert_eq!(index_range(5, 10, 3), None);
        assert_eq!(index_range(0, -1, 0), None);
        assert_eq!(index_range(-100, 0, 3), Some((0, 0)));
        assert_eq!(index_range(2, 1, 3), None);
    }
}
