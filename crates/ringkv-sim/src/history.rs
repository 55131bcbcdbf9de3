//! What clients did and saw: the input of the checker. Recorded by the
//! simulator, and equally by a test driving real processes.

use ringkv_core::siblings::SiblingSet;
use ringkv_core::version::{CausalContext, Dot};
use ringkv_core::Millis;
use std::collections::BTreeMap;

/// How a write ended, as far as its client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Acknowledged by W replicas: the new version's dot, and the context
    /// the coordinator handed back for a follow-up write.
    Acked { dot: Dot, context: CausalContext },
    /// An error, a timeout or a lost coordinator: it may or may not have
    /// been applied somewhere.
    Indeterminate(String),
    /// Still waiting when the history was closed (also indeterminate).
    Pending,
}

/// One PUT (value) or DELETE (tombstone, `value: None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The workload client that made it.
    pub client: usize,
    pub key: String,
    pub value: Option<Vec<u8>>,
    /// The causal context the client sent (empty for a blind write).
    pub context: CausalContext,
    pub invoked_at: Millis,
    /// When the client got its answer (acknowledged or not).
    pub completed_at: Option<Millis>,
    pub outcome: WriteOutcome,
    /// Acknowledged only by the key's real preference list (`pw = w`). Only
    /// such writes promise that a later quorum read sees them (R + W > N);
    /// a sloppy write may sit on stand-ins until hinted handoff.
    pub strict: bool,
}

impl WriteOutcome {
    /// An acknowledged write as a client sees it over HTTP: only the
    /// receipt — the context it `sent` plus the new version's dot, which is
    /// therefore the receipt's one event above what was sent for its node.
    pub fn from_receipt(sent: &CausalContext, receipt: CausalContext) -> WriteOutcome {
        let dot = receipt
            .entries()
            .find(|(node, e)| e.max() > sent.max_counter(node))
            .map(|(node, e)| Dot::new(node.clone(), e.max()));
        match dot {
            Some(dot) => WriteOutcome::Acked {
                dot,
                context: receipt,
            },
            None => WriteOutcome::Indeterminate(format!(
                "a receipt {receipt:?} with no new dot beyond {sent:?}"
            )),
        }
    }
}

impl Write {
    /// The dot of the version an acknowledged write created.
    pub fn dot(&self) -> Option<Dot> {
        match &self.outcome {
            WriteOutcome::Acked { dot, .. } => Some(dot.clone()),
            _ => None,
        }
    }
}

/// One GET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    /// The workload client that made it.
    pub client: usize,
    pub key: String,
    pub invoked_at: Millis,
    /// When the answer came: from then on its client was shown it.
    pub completed_at: Millis,
    /// The causal context the answer handed its client (everything the
    /// versions it returned had seen; empty for a failed read).
    pub context: CausalContext,
    pub result: Result<SiblingSet, String>,
    /// Read with PR = R from the real preference list: with strict writes
    /// (PW + PR > N) it must see every write acknowledged before it
    /// (checker rule 4); other reads may be answered by stand-ins.
    pub strict: bool,
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
