//! The dot store of [`OrSet`](super::OrSet):
//! a map from [`Dot`] to a value plus the
//! [`CausalContext`] of every dot the replica has seen (Almeida, Shoker,
//! Baquero, "Delta State Replicated Data Types", 2018, §5: `DotFun` and
//! `DotMap` with causal context). A dot that is in the context but not in
//! the store was removed; that is why removes leave no tombstones.

use crate::version::{CausalContext, Dot};
use std::collections::BTreeMap;

/// Dot → value. Dots are unique events, so two replicas holding the same
/// dot hold the same value.
pub type DotFun<V> = BTreeMap<Dot, V>;

/// The join of two dot functions (Almeida et al. 2018, §5.1): a dot
/// survives when both hold it, or when one holds it and the other has not
/// seen it (its context does not cover it). A dot one side has seen and
/// dropped was removed there, and stays removed.
pub fn join_fun<V: Clone + PartialEq + std::fmt::Debug>(
    mine: &DotFun<V>,
    my_context: &CausalContext,
    theirs: &DotFun<V>,
    their_context: &CausalContext,
) -> DotFun<V> {
    join_events(mine, my_context, theirs, their_context, |dot| dot)
}

/// [`join_fun`] for maps whose keys are events made by a dot (`dot_of`):
/// a list's elements are `(dot, index)`, several per write.
pub fn join_events<K, V>(
    mine: &BTreeMap<K, V>,
    my_context: &CausalContext,
    theirs: &BTreeMap<K, V>,
    their_context: &CausalContext,
    dot_of: impl Fn(&K) -> &Dot,
) -> BTreeMap<K, V>
where
    K: Ord + Clone + std::fmt::Debug,
    V: Clone + PartialEq + std::fmt::Debug,
{
    let mut out = BTreeMap::new();
    for (event, v) in mine {
        match theirs.get(event) {
            Some(w) => {
                debug_assert_eq!(v, w, "one event, one value: {event:?}");
                out.insert(event.clone(), v.clone());
            }
            None if !their_context.covers(dot_of(event)) => {
                out.insert(event.clone(), v.clone());
            }
            None => {}
        }
    }
    for (event, w) in theirs {
        if !mine.contains_key(event) && !my_context.covers(dot_of(event)) {
            out.insert(event.clone(), w.clone());
        }
    }
    out
}

/// The join of two maps of dot functions (`DotMap`, §5.2): key by key,
/// dropping keys left without dots.
pub fn join_map<V: Clone + PartialEq + std::fmt::Debug>(
    mine: &BTreeMap<Vec<u8>, DotFun<V>>,
    my_context: &CausalContext,
    theirs: &BTreeMap<Vec<u8>, DotFun<V>>,
    their_context: &CausalContext,
) -> BTreeMap<Vec<u8>, DotFun<V>> {
    let empty = DotFun::new();
    let keys = mine.keys().chain(theirs.keys());
    let mut out = BTreeMap::new();
    for key in keys {
        if out.contains_key(key) {
            continue;
        }
        let a = mine.get(key).unwrap_or(&empty);
        let b = theirs.get(key).unwrap_or(&empty);
        let joined = join_fun(a, my_context, b, their_context);
        if !joined.is_empty() {
            out.insert(key.clone(), joined);
        }
    }
    out
}

/// Record the write `dot` in `context` (fresh: see [`fresh`]). A write
/// that only removes still took its coordinator's next counter: left out,
/// every removal would open a gap, and the context of a collection added
/// to and removed from would grow an interval per cycle instead of staying
/// one interval per actor.
pub fn witness(context: &mut CausalContext, dot: &Dot) -> Result<(), super::CrdtError> {
    fresh(context, dot)?;
    context.add(dot, 0);
    Ok(())
}

/// Check that `dot` is a fresh event for `context`: counters start at 1
/// and a dot already seen would break "one dot, one value".
pub fn fresh(context: &CausalContext, dot: &Dot) -> Result<(), super::CrdtError> {
    if dot.counter == 0 || context.covers(dot) {
        return Err(super::CrdtError::StaleDot(dot.clone()));
    }
    Ok(())
}
