//! What clients did and saw: the input of the checker. Recorded by the
//! simulator, and equally by a test driving real processes.

use ringkv_core::crdt;
use ringkv_core::message::ClientError;
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

/// How a CRDT update ended, as far as its client knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// Acknowledged (W replicas hold it) with this reply: an increment's
    /// new value, or how many members a `SADD`/`SREM` added or removed.
    Acked(i64),
    /// Refused before anything was written (see [`UpdateOutcome::of_error`]):
    /// it was applied nowhere.
    Failed(String),
    /// A timeout, a lost quorum after the coordinator applied it, a silent
    /// or lost coordinator: applied at most once (an increment is never
    /// retried elsewhere), maybe not at all.
    Indeterminate(String),
    /// Still waiting when the history was closed (also indeterminate).
    Pending,
}

impl UpdateOutcome {
    /// What an error tells of an update (`idempotent`: one that may be
    /// applied twice, see `ClientOp::is_idempotent`). A bad request is a
    /// definite failure: the node the client asked refuses it before
    /// anything. So is a refusal of a node that wrote nothing — shedding
    /// load, read-only, or a CRDT refusal (wrong type, overflow, a value
    /// over the size limit) — for an increment, which is never sent on once
    /// a coordinator may have applied it. But an idempotent update is sent
    /// on after a coordinator fell silent, maybe having applied it, and
    /// such a refusal may then come from the next one. Everything else — a
    /// lost quorum after the local write, a silent coordinator, a failed
    /// sync — may have been applied.
    pub fn of_error(e: &ClientError, idempotent: bool) -> UpdateOutcome {
        let definite = match e {
            ClientError::Invalid(_) => true,
            ClientError::Overloaded { .. }
            | ClientError::ReadOnly { .. }
            | ClientError::TooLate { .. }
            | ClientError::Refused(_) => !idempotent,
            _ => false,
        };
        match definite {
            true => UpdateOutcome::Failed(e.to_string()),
            false => UpdateOutcome::Indeterminate(e.to_string()),
        }
    }

    pub fn is_acked(&self) -> bool {
        matches!(self, UpdateOutcome::Acked(_))
    }

    /// False only for an update that was applied nowhere.
    pub fn may_have_applied(&self) -> bool {
        !matches!(self, UpdateOutcome::Failed(_))
    }
}

/// One CRDT update of a Redis key (`ClientOp::Update`): an increment, or a
/// set's `SADD`/`SREM` with the members the client named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The workload client that made it.
    pub client: usize,
    /// The internal key (Redis keyspace prefix included).
    pub key: String,
    pub update: crdt::Update,
    pub invoked_at: Millis,
    /// When the client got its answer (acknowledged or not).
    pub completed_at: Option<Millis>,
    pub outcome: UpdateOutcome,
}

impl Update {
    /// The members a `SADD` or `SREM` named (none for other updates).
    pub fn members(&self) -> &[Vec<u8>] {
        match &self.update {
            crdt::Update::SAdd(m) | crdt::Update::SRem(m) => m,
            // Hash updates are not in the simulated workload (yet).
            _ => &[],
        }
    }

    /// Acknowledged strictly before `at`: then it was done (read, applied
    /// and written) before anything invoked at `at` began.
    pub fn acked_before(&self, at: Millis) -> bool {
        self.outcome.is_acked() && self.completed_at.is_some_and(|done| done < at)
    }
}

/// Everything one run recorded.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub writes: Vec<Write>,
    pub reads: Vec<Read>,
    /// CRDT updates of the Redis-keyspace keys.
    pub updates: Vec<Update>,
    /// Tombstones collected (see `ringkv_core::gc`): a key and the context
    /// of the dead state a GC leader told the replicas to delete, and when.
    /// What that context covers may be gone from every replica since: a
    /// read may show nothing in its place, and it must never come back.
    pub collected: Vec<(String, CausalContext, Millis)>,
    /// Each node's clock skew, ms ahead of the simulation's true time, and
    /// the most any node may be off: what expiry's rule allows for.
    pub clock_skews: BTreeMap<String, Millis>,
    pub max_clock_skew: Millis,
    /// When a disk lost acknowledged writes: a power loss (its un-fsynced
    /// writes) or a member's death, sim time in ms (see checker rule 1).
    pub disk_losses: Vec<Millis>,
    /// Writes with a TTL (session keys, see the workload), however they
    /// ended: not held to the lost-write rules, since they vanish.
    pub expiring_writes: usize,
}

/// The state after faults healed and the cluster quiesced.
#[derive(Clone, Debug, Default)]
pub struct FinalState {
    /// A quorum read of every key, after convergence.
    pub reads: BTreeMap<String, SiblingSet>,
    /// What each replica of each key holds (its preference list).
    pub replicas: BTreeMap<String, BTreeMap<String, SiblingSet>>,
}
