//! `OrMap`: a Redis hash as an observed-remove map of fields (the map of
//! Almeida, Shoker, Baquero, "Delta State Replicated Data Types", 2018,
//! §7.4, as `DotMap⟨field, DotFun⟨FieldValue⟩⟩`).
//!
//! Each write of a field (`HSET`, `HINCRBY`) replaces the field's dots it
//! observed with one fresh dot — the write's own — holding the field's new
//! value; `HDEL` drops the observed dots, and the map's causal context
//! remembers them, so a removed field stays removed while a concurrent
//! write (a dot the remover never saw) survives. Concurrent writes of one
//! field leave several dots: the field reads as the latest by `(timestamp,
//! dot)` (last-write-wins per field), except that counters written by
//! `HINCRBY` are joined, so concurrent increments all count — each dot's
//! counter was computed on top of the ones its writer observed, and the
//! PN-counter join is idempotent. A `HSET` later than an increment resets
//! the field, as at the top level (see [`super::PnCounter`]).

use super::dots::{join_map, witness, DotFun};
use super::{CrdtError, PnCounter};
use crate::version::{CausalContext, Dot};
use crate::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What one write put in a field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldValue {
    Bytes(Millis, Vec<u8>),
    Counter(Millis, PnCounter),
}

impl FieldValue {
    fn timestamp(&self) -> Millis {
        match self {
            FieldValue::Bytes(t, _) | FieldValue::Counter(t, _) => *t,
        }
    }
}

/// A field as it reads: bytes, or a counter (joined over its dots), with
/// the version `(timestamp, dot)` that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Bytes(Vec<u8>),
    Counter(PnCounter),
}

impl Field {
    /// The bytes `HGET` answers.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Field::Bytes(b) => b.clone(),
            Field::Counter(c) => c.value().to_string().into_bytes(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrMap {
    fields: BTreeMap<Vec<u8>, DotFun<FieldValue>>,
    context: CausalContext,
}

impl OrMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The field's value, and the `(timestamp, dot)` of the version that
    /// decided it.
    pub fn get(&self, field: &[u8]) -> Option<(Field, Millis, Dot)> {
        let dots = self.fields.get(field)?;
        let (dot, winner) = dots
            .iter()
            .max_by(|a, b| (a.1.timestamp(), a.0).cmp(&(b.1.timestamp(), b.0)))?;
        let read = match winner {
            FieldValue::Bytes(_, bytes) => Field::Bytes(bytes.clone()),
            FieldValue::Counter(_, first) => {
                let mut counter = first.clone();
                for value in dots.values() {
                    if let FieldValue::Counter(_, other) = value {
                        counter.merge(other);
                    }
                }
                Field::Counter(counter)
            }
        };
        Some((read, winner.timestamp(), dot.clone()))
    }

    /// Every field, in byte order, as it reads.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Field)> {
        self.fields.keys().filter_map(|f| {
            let (value, _, _) = self.get(f)?;
            Some((f.as_slice(), value))
        })
    }

    /// Write each field as the one event `dot` (fresh: the write's own
    /// dot), replacing the dots observed here. Returns how many fields
    /// were new.
    pub fn put(
        &mut self,
        dot: &Dot,
        writes: Vec<(Vec<u8>, FieldValue)>,
    ) -> Result<usize, CrdtError> {
        self.witness(dot)?;
        let mut added = 0;
        for (field, value) in writes {
            let old = self
                .fields
                .insert(field, DotFun::from([(dot.clone(), value)]));
            added += usize::from(old.is_none());
        }
        Ok(added)
    }

    /// Record `dot`, the write that carries a removal, in the context (see
    /// [`super::OrSet::witness`]: without it each `HDEL` opens a gap).
    pub fn witness(&mut self, dot: &Dot) -> Result<(), CrdtError> {
        witness(&mut self.context, dot)
    }

    /// Intervals in the causal context.
    pub fn context_size(&self) -> usize {
        self.context.size()
    }

    /// Remove `field` as observed here; true when it was present.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        self.fields.remove(field).is_some()
    }

    /// Remove every field observed here (`DEL`).
    pub fn clear(&mut self) {
        self.fields.clear();
    }

    /// The dot-store join, and the union of the contexts.
    pub fn merge(&mut self, other: &OrMap) {
        self.fields = join_map(&self.fields, &self.context, &other.fields, &other.context);
        self.context.merge(&other.context);
    }
}
