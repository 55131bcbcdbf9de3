//! `OrSet`: the add-wins observed-remove set without tombstones — the
//! "optimized OR-set" (Bieniusa et al. 2012, the ORSWOT Riak ships) in the
//! dot-store form of Almeida, Shoker, Baquero, "Delta State Replicated Data
//! Types" (2018, §7.2, the add-wins set `AWSet` as `DotMap⟨E, DotSet⟩`).
//!
//! Each add is a fresh [`Dot`] of its coordinator; the element maps to the
//! dots that added it, and the causal context records every dot the replica
//! has seen. A remove drops the element's dots from the store while they
//! stay in the context, so "seen and gone" is the context minus the store:
//! removes leave no per-element tombstones, and the context of a node's
//! consecutive dots compacts to one interval. An add concurrent with a
//! remove carries a dot the remover never saw, so it survives the merge
//! (add wins); an add after a remove is a new dot, so re-adding works.

use super::dots::{join_map, witness, DotFun};
use super::CrdtError;
use crate::version::{CausalContext, Dot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrSet {
    entries: BTreeMap<Vec<u8>, DotFun<()>>,
    context: CausalContext,
}

impl OrSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `elems` as the one event `dot` (fresh: a dot this set has not
    /// seen; the coordinator gives it the dot of the write that carries
    /// them). Each element's older dots are replaced: the new dot's context
    /// covers them. Returns how many were not present.
    pub fn add(&mut self, dot: &Dot, elems: &[Vec<u8>]) -> Result<usize, CrdtError> {
        self.witness(dot)?;
        let mut added = 0;
        for elem in elems {
            let old = self
                .entries
                .insert(elem.clone(), DotFun::from([(dot.clone(), ())]));
            added += usize::from(old.is_none());
        }
        debug_assert!(self.well_formed());
        Ok(added)
    }

    /// Record `dot`, the write that carries a remove, in the context (see
    /// [`witness`]).
    pub fn witness(&mut self, dot: &Dot) -> Result<(), CrdtError> {
        witness(&mut self.context, dot)
    }

    /// Remove `elem` as observed here: its dots leave the store, stay in
    /// the context. True when it was present.
    pub fn remove(&mut self, elem: &[u8]) -> bool {
        self.entries.remove(elem).is_some()
    }

    /// Remove every element as observed here (Redis `DEL` of a set): an
    /// add this replica has not seen survives the merge.
    pub fn clear(&mut self) -> usize {
        let removed = self.entries.len();
        self.entries.clear();
        removed
    }

    /// The add events that keep `elem` in the set (several after
    /// concurrent adds merged).
    pub fn dots_of(&self, elem: &[u8]) -> Vec<Dot> {
        self.entries
            .get(elem)
            .map_or_else(Vec::new, |dots| dots.keys().cloned().collect())
    }

    pub fn contains(&self, elem: &[u8]) -> bool {
        self.entries.contains_key(elem)
    }

    /// The members, in byte order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.keys().map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The dot-store join, and the union of the contexts.
    pub fn merge(&mut self, other: &OrSet) {
        self.entries = join_map(&self.entries, &self.context, &other.entries, &other.context);
        self.context.merge(&other.context);
        debug_assert!(self.well_formed());
    }

    /// Intervals in the causal context: what removes would cost without
    /// [`Self::witness`].
    pub fn context_size(&self) -> usize {
        self.context.size()
    }

    /// Every stored dot is in the context, no element is dotless.
    fn well_formed(&self) -> bool {
        self.entries
            .values()
            .all(|dots| !dots.is_empty() && dots.keys().all(|d| self.context.covers(d)))
    }
}
