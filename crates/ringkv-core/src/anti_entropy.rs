//! Active anti-entropy: replicas of a token range compare Merkle trees in
//! the background and exchange only the keys that differ, so divergence
//! that hinted handoff and read repair never see (a lost message, a key
//! never read again, a disk restored from backup) still heals.
//!
//! This module holds the bookkeeping — per-range trees, the schedule, the
//! rate limit, counters. The exchange itself, which reads and merges the
//! store, lives with the node (`node/exchange.rs`).
//!
//! An exchange, started by the *initiator* on one of its ranges with one
//! other replica of that range (both sides alternate; each answer descends
//! one level, only below nodes whose hashes differ):
//! 1. `Hashes { level: 0, root }` → `Hashes { level: 1, children of differing }` → …
//! 2. at the leaves: `Digests` — the sender's (key, digest) pairs in the differing leaves;
//! 3. `Keys` — the receiver's sibling sets for keys that differ, plus the
//!    keys it wants; the other side merges them and answers with what was wanted;
//! 4. `Done` tells the initiator it is over. Both sides merge with the normal
//!    sibling rules, so concurrent versions become siblings on both.
//!
//! Every step is one batch (see [`crate::message::BatchLimits`]): digests of
//! whole leaves while they fit, and keys while they fit. What does not fit
//! is left for the next exchange of the range, whose trees still differ
//! there. A leaf whose digests alone exceed a batch is compared one
//! [`TokenWindow`] at a time, a different window each exchange. A forced
//! repair runs exchanges of a range back to back until one finds it in sync.

use crate::merkle::{Level, MerkleTree};
use crate::range::TokenRange;
use crate::ring::{Ring, Token};
use crate::siblings::SiblingSet;
use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The `[anti_entropy]` section of a node's config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AntiEntropySettings {
    pub enabled: bool,
    /// How often a node starts an exchange of one of its ranges.
    pub interval_ms: u64,
    /// Rate limit on keys sent by periodic exchanges (a token bucket).
    pub keys_per_second: u32,
    /// Leaves per range tree are `2^tree_depth`.
    pub tree_depth: Level,
    /// An exchange that has not finished by then is abandoned.
    pub exchange_timeout_ms: u64,
    /// An exchange whose partner sends no step for this long is abandoned
    /// too: a node runs one exchange at a time, and one lost step would
    /// otherwise stop all its anti-entropy for `exchange_timeout_ms` (the
    /// simulator lost writes whose only copy sat on a node stalled so).
    pub step_timeout_ms: u64,
}

impl Default for AntiEntropySettings {
    fn default() -> Self {
        AntiEntropySettings {
            enabled: true,
            interval_ms: 1_000,
            keys_per_second: 10_000,
            tree_depth: 8,
            exchange_timeout_ms: 10_000,
            step_timeout_ms: 2_000,
        }
    }
}

/// Names one exchange on both sides, and says which keys it compares.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExchangeId {
    pub initiator: NodeId,
    pub seq: u64,
    /// The exchange compares the keys whose N (see
    /// [`crate::keyspace::n_of`]) is at least this: those both partners
    /// hold. The partners at positions `p` and `q` of the range's
    /// preference list hold the keys of N above `max(p, q)`.
    pub min_n: u8,
}

/// One step of an exchange (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AeStep {
    /// Hashes of tree nodes at `level`, as (index, hash).
    Hashes {
        level: Level,
        nodes: Vec<(u32, u64)>,
    },
    /// The sender's key digests in the leaves that differ (those that fit
    /// one batch). With a `window`, `leaves` is one leaf and only its keys
    /// within the window are compared.
    Digests {
        leaves: Vec<u32>,
        digests: Vec<(Vec<u8>, u64)>,
        window: Option<TokenWindow>,
    },
    /// Sibling sets for the receiver to merge, and keys the sender wants.
    Keys {
        entries: Vec<(Vec<u8>, SiblingSet)>,
        want: Vec<Vec<u8>>,
    },
    Done,
}

/// Part of a leaf too large for one batch of digests: the keys whose tokens
/// lie after `after` (from the leaf's start when `None`) up to and
/// including `through` (to its end when `None`), in the range's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenWindow {
    pub after: Option<Token>,
    pub through: Option<Token>,
}

impl TokenWindow {
    /// Whether `token` of `range` lies in the window.
    pub fn contains(&self, range: &TokenRange, token: Token) -> bool {
        let at = range.offset(token);
        self.after.is_none_or(|t| at > range.offset(t))
            && self.through.is_none_or(|t| at <= range.offset(t))
    }
}

/// Rounds in a row a forced repair runs a range that differs without
/// finding a key to exchange (each looks at another window of a large
/// leaf) before it reports the range as stuck.
const MAX_IDLE_ROUNDS: u32 = 64;
/// Rounds a forced repair runs one range at most (each moves up to a batch
/// of keys): a range written to all the time may never be found in sync.
const MAX_REPAIR_ROUNDS: u32 = 10_000;

/// Counters for `/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AeStats {
    pub exchanges_started: u64,
    pub exchanges_completed: u64,
    /// Completed exchanges whose roots were equal from the start.
    pub exchanges_in_sync: u64,
    pub exchanges_timed_out: u64,
    /// Exchanges ended early: timed out or their peer was unreachable.
    pub exchanges_failed: u64,
    pub differing_leaves: u64,
    pub keys_sent: u64,
    /// Keys whose local state changed by merging a partner's version.
    pub keys_repaired: u64,
    pub bytes_sent: u64,
}

/// A range this node replicates, with its trees and its peers.
///
/// Keys of a bucket with a smaller N than the cluster's live on a prefix
/// of the range's preference list only, so replicas compare only the keys
/// both hold: one tree per `min_n` this node exchanges with (the keys of
/// N at least that), e.g. at position 0 of three, `min_n` 2 with the
/// second replica and 3 with the third. A write updates the trees of every
/// `min_n` up to its key's N.
#[derive(Clone, Debug)]
pub struct RangeTree {
    pub trees: BTreeMap<u8, MerkleTree>,
    /// The other replicas of the range, each with the `min_n` of an
    /// exchange with it.
    pub peers: Vec<(NodeId, u8)>,
    pub last_sync: Option<Millis>,
}

impl RangeTree {
    pub fn range(&self) -> TokenRange {
        self.trees
            .values()
            .next()
            .expect("a replicated range has a tree")
            .range()
    }

    /// Account for `key` of N `n` changing from `old` to `new`.
    pub fn update(&mut self, key: &[u8], n: usize, old: &SiblingSet, new: &SiblingSet) {
        let change = crate::merkle::change_hash(key, old, new);
        for (_, tree) in self.trees.range_mut(..=n.min(255) as u8) {
            tree.apply(key, change);
        }
    }
}

/// An exchange this node initiated and is waiting on.
#[derive(Clone, Debug)]
pub struct Running {
    pub range: Token,
    pub peer: NodeId,
    /// When it started; it ends by `started + exchange_timeout_ms`.
    pub started: Millis,
    /// When it is abandoned unless a step arrives (see `step_timeout_ms`).
    pub deadline: Millis,
    /// Whether any hash differed (so completion is not "in sync").
    pub diverged: bool,
    /// Whether keys were exchanged (sent, asked for or received).
    pub progressed: bool,
    /// The forced-repair job this exchange is a round of, if any.
    pub repair: Option<RepairJob>,
}

/// One (range, peer) of a forced repair: exchanged round after round until
/// a round finds the range in sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairJob {
    pub range: Token,
    pub peer: NodeId,
    /// Rounds run so far.
    pub rounds: u32,
    /// Rounds in a row that found differences but exchanged no key.
    pub idle: u32,
}

/// An exchange to start now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub range: Token,
    pub peer: NodeId,
    pub repair: Option<RepairJob>,
    /// See [`ExchangeId::min_n`].
    pub min_n: u8,
}

/// Progress of a forced repair (`ringkv repair`): every queued (range, peer)
/// ends `done` (found in sync) or `failed`, and the last failure's cause is
/// kept to tell the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairProgress {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    /// Why the last failed (range, peer) failed, in one sentence.
    #[serde(default)]
    pub last_failure: Option<String>,
}

impl RepairProgress {
    pub fn finished(&self) -> bool {
        self.done + self.failed >= self.total
    }
}

/// All anti-entropy state of one node.
#[derive(Debug)]
pub struct AntiEntropy {
    pub settings: AntiEntropySettings,
    /// By range end token.
    pub trees: BTreeMap<Token, RangeTree>,
    pub running: BTreeMap<ExchangeId, Running>,
    pub stats: AeStats,
    next_seq: u64,
    cursor: Token,
    round: usize,
    next_start: Millis,
    budget: f64,
    refilled_at: Millis,
    repairs: VecDeque<RepairJob>,
    /// The current (or last) forced repair.
    pub repair: Option<RepairProgress>,
}

impl AntiEntropy {
    pub fn new(settings: AntiEntropySettings) -> Self {
        AntiEntropy {
            budget: settings.keys_per_second as f64,
            settings,
            trees: BTreeMap::new(),
            running: BTreeMap::new(),
            stats: AeStats::default(),
            next_seq: 1,
            cursor: 0,
            round: 0,
            next_start: 0,
            refilled_at: 0,
            repairs: VecDeque::new(),
            repair: None,
        }
    }

    /// Empty trees for every range of `ring` that `me` replicates, `n`
    /// being the cluster's N (the caller then feeds in every stored key).
    pub fn reset(&mut self, ring: &Ring, me: &NodeId, n: usize) {
        self.trees.clear();
        self.running.clear();
        for range in ring.ranges() {
            let replicas = ring.preference_list_for_token(range.end, n);
            let Some(mine) = replicas.iter().position(|p| p == me) else {
                continue;
            };
            let peers: Vec<(NodeId, u8)> = replicas
                .into_iter()
                .enumerate()
                .filter(|(q, _)| *q != mine)
                .map(|(q, p)| (p, (mine.max(q) + 1) as u8))
                .collect();
            let mut trees = BTreeMap::new();
            for &(_, min_n) in &peers {
                trees.insert(min_n, MerkleTree::new(range, self.settings.tree_depth));
            }
            if trees.is_empty() {
                // A lone replica exchanges with nobody; its tree still
                // names the range it replicates.
                trees.insert(1, MerkleTree::new(range, self.settings.tree_depth));
            }
            let tree = RangeTree {
                trees,
                peers,
                last_sync: None,
            };
            self.trees.insert(range.end, tree);
        }
    }

    /// The trees of exactly `range`, if this node replicates it.
    pub fn range_mut(&mut self, range: &TokenRange) -> Option<&mut RangeTree> {
        self.trees
            .get_mut(&range.end)
            .filter(|t| t.range() == *range)
    }

    /// The tree of exactly `range` for keys of N at least `min_n`, if this
    /// node replicates the range and exchanges such keys.
    pub fn tree_mut(&mut self, range: &TokenRange, min_n: u8) -> Option<&mut MerkleTree> {
        self.range_mut(range)?.trees.get_mut(&min_n)
    }

    /// Refill the rate-limit bucket and drop exchanges that timed out.
    pub fn tick(&mut self, now: Millis) {
        let rate = self.settings.keys_per_second as f64;
        let elapsed = now.saturating_sub(self.refilled_at) as f64 / 1000.0;
        self.budget = (self.budget + elapsed * rate).min(rate);
        self.refilled_at = now;
        let expired: Vec<ExchangeId> = self
            .running
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        self.stats.exchanges_timed_out += expired.len() as u64;
        for id in expired {
            let run = &self.running[&id];
            let (peer, took) = (run.peer.clone(), now.saturating_sub(run.started));
            self.fail_with(
                &id,
                format!(
                    "the exchange with {peer} timed out after {took} ms (no step for long enough)"
                ),
            );
        }
    }

    /// `peer` cannot be reached: end the exchanges with it now instead of
    /// waiting out their timeout, and drop queued repairs with it.
    pub fn peer_unreachable(&mut self, peer: &NodeId) {
        let ended: Vec<ExchangeId> = self
            .running
            .iter()
            .filter(|(_, r)| r.peer == *peer)
            .map(|(id, _)| id.clone())
            .collect();
        let cause = format!("{peer} was unreachable");
        for id in ended {
            self.fail_with(&id, cause.clone());
        }
        let queued = self.repairs.len();
        self.repairs.retain(|job| job.peer != *peer);
        for _ in self.repairs.len()..queued {
            self.repair_failed(cause.clone());
        }
    }

    /// An exchange ended without completing, for `cause` (one sentence).
    pub fn fail_with(&mut self, id: &ExchangeId, cause: String) {
        let Some(run) = self.running.remove(id) else {
            return;
        };
        self.stats.exchanges_failed += 1;
        if run.repair.is_some() {
            self.repair_failed(cause);
        }
    }

    /// One (range, peer) of the forced repair is given up.
    fn repair_failed(&mut self, cause: String) {
        if let Some(progress) = self.repair.as_mut().filter(|p| !p.finished()) {
            progress.failed += 1;
            progress.last_failure = Some(cause);
        }
    }

    /// The next (range, peer) to exchange, if one is due: queued repairs
    /// first, otherwise the next range in token order every `interval_ms`,
    /// with the next of its peers on each full cycle over the ranges.
    pub fn next_exchange(&mut self, now: Millis) -> Option<Planned> {
        if !self.running.is_empty() {
            return None;
        }
        while let Some(job) = self.repairs.pop_front() {
            let (range, peer) = (job.range, job.peer.clone());
            // The ring may have changed since the job was queued.
            let min_n = self
                .trees
                .get(&range)
                .and_then(|t| t.peers.iter().find(|(p, _)| *p == peer))
                .map(|(_, m)| *m);
            let Some(min_n) = min_n else {
                self.repair_failed(format!(
                    "{peer} no longer replicates a range with this node"
                ));
                continue;
            };
            let repair = Some(job);
            return Some(Planned {
                range,
                peer,
                repair,
                min_n,
            });
        }
        if !self.settings.enabled || now < self.next_start || self.budget < 1.0 {
            return None;
        }
        self.next_start = now + self.settings.interval_ms;
        let (&end, range) = self
            .trees
            .range(self.cursor.saturating_add(1)..)
            .next()
            .or_else(|| self.trees.iter().next())?;
        self.cursor = end;
        self.round += 1;
        if range.peers.is_empty() {
            return None;
        }
        let cycle = self.round / self.trees.len().max(1);
        let (peer, min_n) = range.peers[cycle % range.peers.len()].clone();
        Some(Planned {
            range: end,
            peer,
            repair: None,
            min_n,
        })
    }

    /// Register an exchange this node starts now.
    pub fn begin(&mut self, me: &NodeId, planned: Planned, now: Millis) -> ExchangeId {
        let id = ExchangeId {
            initiator: me.clone(),
            seq: self.next_seq,
            min_n: planned.min_n,
        };
        self.next_seq += 1;
        self.stats.exchanges_started += 1;
        let deadline = now + self.step_timeout();
        let running = Running {
            range: planned.range,
            peer: planned.peer,
            started: now,
            deadline,
            diverged: false,
            progressed: false,
            repair: planned.repair,
        };
        self.running.insert(id.clone(), running);
        id
    }

    /// The exchange `id` this node initiated is over.
    pub fn complete(&mut self, id: &ExchangeId, now: Millis) {
        let Some(run) = self.running.remove(id) else {
            return;
        };
        self.stats.exchanges_completed += 1;
        if !run.diverged {
            self.stats.exchanges_in_sync += 1;
        }
        if let Some(t) = self.trees.get_mut(&run.range) {
            t.last_sync = Some(now);
        }
        if let Some(job) = run.repair {
            self.repair_round_over(job, run.diverged, run.progressed);
        }
    }

    /// A forced repair's round of `job` completed: done once a round finds
    /// the range in sync; otherwise run it again at once, unless rounds keep
    /// finding nothing to exchange or never end.
    fn repair_round_over(&mut self, mut job: RepairJob, diverged: bool, progressed: bool) {
        if !diverged {
            if let Some(progress) = self.repair.as_mut().filter(|p| !p.finished()) {
                progress.done += 1;
            }
            return;
        }
        job.rounds += 1;
        job.idle = if progressed { 0 } else { job.idle + 1 };
        let peer = &job.peer;
        if job.idle >= MAX_IDLE_ROUNDS {
            let cause = format!(
                "a range still differs from {peer} after {} exchanges that found no key to \
                 exchange (a Merkle tree out of step with its store? try --rebuild)",
                job.idle
            );
            return self.repair_failed(cause);
        }
        if job.rounds >= MAX_REPAIR_ROUNDS {
            let cause = format!(
                "a range still differs from {peer} after {} exchanges (is it written to all the time?)",
                job.rounds
            );
            return self.repair_failed(cause);
        }
        self.repairs.push_front(job);
    }

    /// Note that exchange `id` found differences.
    pub fn diverged(&mut self, id: &ExchangeId) {
        if let Some(run) = self.running.get_mut(id) {
            run.diverged = true;
        }
    }

    /// Note that exchange `id` moved keys (so another round may find more).
    fn step_timeout(&self) -> Millis {
        let s = &self.settings;
        s.step_timeout_ms.min(s.exchange_timeout_ms).max(1)
    }

    /// A step of the exchange `id` this node initiated arrived at `now`:
    /// it may wait `step_timeout_ms` for the next, within its overall
    /// `exchange_timeout_ms`.
    pub fn heard(&mut self, id: &ExchangeId, now: Millis) {
        let step = self.step_timeout();
        let whole = self.settings.exchange_timeout_ms;
        if let Some(run) = self.running.get_mut(id) {
            run.deadline = (now + step).min(run.started + whole);
        }
    }

    pub fn progressed(&mut self, id: &ExchangeId) {
        if let Some(run) = self.running.get_mut(id) {
            run.progressed = true;
        }
    }

    /// How many keys an exchange step may send now (at least one, so a
    /// started exchange always progresses). Forced repairs are not limited.
    pub fn take_budget(&mut self, wanted: usize) -> usize {
        if self.repair.as_ref().is_some_and(|p| !p.finished()) {
            return wanted;
        }
        let allowed = wanted.min(self.budget.max(1.0) as usize);
        self.budget -= allowed as f64;
        allowed
    }

    /// Queue an exchange of every range (or the one holding `token`) with
    /// every other replica, run back to back.
    pub fn start_repair(&mut self, token: Option<Token>) -> usize {
        let jobs: Vec<RepairJob> = self
            .trees
            .iter()
            .filter(|(_, t)| token.is_none_or(|tok| t.range().contains(tok)))
            .flat_map(|(&end, t)| {
                t.peers.iter().map(move |(p, _)| RepairJob {
                    range: end,
                    peer: p.clone(),
                    rounds: 0,
                    idle: 0,
                })
            })
            .collect();
        let total = jobs.len();
        self.repairs.extend(jobs);
        let progress = match &mut self.repair {
            Some(p) if !p.finished() => p,
            slot => slot.insert(RepairProgress::default()),
        };
        progress.total += total;
        total
    }
}

#[cfg(test)]
mod step_timeout_tests {
    use super::*;

    fn running_one(settings: AntiEntropySettings) -> (AntiEntropy, ExchangeId) {
        let mut ae = AntiEntropy::new(settings);
        let planned = Planned {
            range: 7,
            peer: NodeId::from("n2"),
            repair: None,
            min_n: 2,
        };
        let id = ae.begin(&NodeId::from("n1"), planned, 0);
        (ae, id)
    }

    #[test]
    fn an_exchange_without_steps_ends_after_the_step_timeout_not_the_whole_one() {
        let (mut ae, id) = running_one(AntiEntropySettings::default());
        ae.tick(1_999);
        assert!(ae.running.contains_key(&id));
        ae.tick(2_000);
        assert!(
            !ae.running.contains_key(&id),
            "one lost step stalls 2 s, not 10"
        );
    }

    #[test]
    fn each_step_buys_another_step_timeout_within_the_whole_one() {
        let (mut ae, id) = running_one(AntiEntropySettings::default());
        for at in (1_500..=7_500).step_by(1_500) {
            ae.heard(&id, at);
            ae.tick(at + 1_999);
            assert!(ae.running.contains_key(&id), "at {at}");
        }
        ae.heard(&id, 9_500);
        ae.tick(10_000);
        assert!(
            !ae.running.contains_key(&id),
            "never past exchange_timeout_ms"
        );
    }
}
