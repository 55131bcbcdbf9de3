//! What clients did and saw: the input of the checker. Recorded by the
//! simulator, and equally by a test driving real processes.

use ringkv_core::siblings::SiblingSet;
use ringkv_core::version::{Dot, VersionVector};
use ringkv_core::Millis;
use std::collections::BTreeMap;

/// How a write ended, as far as its client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Acknowledged by W replicas; carries the new version's clock.
    Acked(VersionVector),
    /// An error, a timeout or a lost coordinator: it may or may not have
    /// been applied somewhere.
    Indeterminate(String),
    /// Still waiting when the history was closed (also indeterminate).
    Pending,
}

/// One PUT (value) or DELETE (tombstone, `value: None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub key: String,
    pub value: Option<Vec<u8>>,
    /// The causal context the client sent (empty for a blind write).
    pub context: VersionVector,
    pub invoked_at: Millis,
    /// When the client got its answer (acknowledged or not).
    pub completed_at: Option<Millis>,
    pub outcome: WriteOutcome,
    /// Acknowledged only by the key's real preference list (`pw = w`). Only
    /// such writes promise that a later quorum read sees them (R + W > N);
    /// a sloppy write may sit on stand-ins until hinted handoff.
    pub strict: bool,
}

impl Write {
    /// The dot of the version an acknowledged write created: the one entry
    /// where its clock exceeds the context it was written against.
    pub fn dot(&self) -> Option<Dot> {
        let WriteOutcome::Acked(clock) = &self.outcome else {
            return None;
        };
        clock
            .entries()
            .find(|(node, e)| e.counter > self.context.counter(node))
            .map(|(node, e)| Dot {
                node: node.clone(),
                counter: e.counter,
            })
    }
}

/// One GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub key: String,
    pub invoked_at: Millis,
    pub result: Result<SiblingSet, String>,
}

/// Everything one run recorded.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub writes: Vec<Write>,
    pub reads: Vec<Read>,
}

/// The state after faults healed and the cluster quiesced.
#[derive(Clone, Debug, Default)]
pub struct FinalState {
    /// A quorum read of every key, after convergence.
    pub reads: BTreeMap<String, SiblingSet>,
    /// What each replica of each key holds (its preference list).
    pub replicas: BTreeMap<String, BTreeMap<String, SiblingSet>>,
}
