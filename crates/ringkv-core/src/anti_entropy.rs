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
}

impl Default for AntiEntropySettings {
    fn default() -> Self {
        AntiEntropySettings {
            enabled: true,
            interval_ms: 1_000,
            keys_per_second: 10_000,
            tree_depth: 8,
            exchange_timeout_ms: 10_000,
        }
    }
}

/// Names one exchange on both sides.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExchangeId {
    pub initiator: NodeId,
    pub seq: u64,
}

/// One step of an exchange (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AeStep {
    /// Hashes of tree nodes at `level`, as (index, hash).
    Hashes {
        level: Level,
        nodes: Vec<(u32, u64)>,
    },
    /// The sender's key digests in the leaves that differ.
    Digests {
        leaves: Vec<u32>,
        digests: Vec<(Vec<u8>, u64)>,
    },
    /// Sibling sets for the receiver to merge, and keys the sender wants.
    Keys {
        entries: Vec<(Vec<u8>, SiblingSet)>,
        want: Vec<Vec<u8>>,
    },
    Done,
}

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

/// A range this node replicates, with its tree and its peers.
#[derive(Clone, Debug)]
pub struct RangeTree {
    pub tree: MerkleTree,
    /// The other replicas of the range.
    pub peers: Vec<NodeId>,
    pub last_sync: Option<Millis>,
}

/// An exchange this node initiated and is waiting on.
#[derive(Clone, Debug)]
pub struct Running {
    pub range: Token,
    pub peer: NodeId,
    pub deadline: Millis,
    /// Whether any hash differed (so completion is not "in sync").
    pub diverged: bool,
}

/// Progress of a forced repair (`ringkv repair`): every queued exchange ends
/// `done` or `failed` (timed out, or its peer was unreachable).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairProgress {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
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
    repairs: VecDeque<(Token, NodeId)>,
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

    /// Empty trees for every range of `ring` that `me` replicates (the
    /// caller then feeds in every stored key).
    pub fn reset(&mut self, ring: &Ring, me: &NodeId, n: usize) {
        self.trees.clear();
        self.running.clear();
        for range in ring.ranges() {
            let replicas = ring.preference_list_for_token(range.end, n);
            if replicas.contains(me) {
                let peers = replicas.into_iter().filter(|p| p != me).collect();
                let tree = MerkleTree::new(range, self.settings.tree_depth);
                self.trees.insert(
                    range.end,
                    RangeTree {
                        tree,
                        peers,
                        last_sync: None,
                    },
                );
            }
        }
    }

    /// The tree of exactly `range`, if this node replicates it.
    pub fn tree_mut(&mut self, range: &TokenRange) -> Option<&mut MerkleTree> {
        self.trees
            .get_mut(&range.end)
            .map(|t| &mut t.tree)
            .filter(|t| t.range() == *range)
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
            self.fail(&id);
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
        for id in ended {
            self.fail(&id);
        }
        let queued = self.repairs.len();
        self.repairs.retain(|(_, p)| p != peer);
        if let Some(progress) = &mut self.repair {
            progress.failed += queued - self.repairs.len();
        }
    }

    /// An exchange ended without completing.
    fn fail(&mut self, id: &ExchangeId) {
        if self.running.remove(id).is_some() {
            self.stats.exchanges_failed += 1;
            if let Some(progress) = self.repair.as_mut().filter(|p| !p.finished()) {
                progress.failed += 1;
            }
        }
    }

    /// The next (range, peer) to exchange, if one is due: queued repairs
    /// first, otherwise the next range in token order every `interval_ms`,
    /// with the next of its peers on each full cycle over the ranges.
    pub fn next_exchange(&mut self, now: Millis) -> Option<(Token, NodeId)> {
        if !self.running.is_empty() {
            return None;
        }
        if let Some(job) = self.repairs.pop_front() {
            return Some(job);
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
        let peer = range.peers[cycle % range.peers.len()].clone();
        Some((end, peer))
    }

    /// Register an exchange this node starts now.
    pub fn begin(&mut self, me: &NodeId, range: Token, peer: NodeId, now: Millis) -> ExchangeId {
        let id = ExchangeId {
            initiator: me.clone(),
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.stats.exchanges_started += 1;
        let deadline = now + self.settings.exchange_timeout_ms;
        let running = Running {
            range,
            peer,
            deadline,
            diverged: false,
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
        if let Some(progress) = self.repair.as_mut().filter(|p| !p.finished()) {
            progress.done += 1;
        }
    }

    /// Note that exchange `id` found differences.
    pub fn diverged(&mut self, id: &ExchangeId) {
        if let Some(run) = self.running.get_mut(id) {
            run.diverged = true;
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
        let jobs: Vec<(Token, NodeId)> = self
            .trees
            .iter()
            .filter(|(_, t)| token.is_none_or(|tok| t.tree.range().contains(tok)))
            .flat_map(|(&end, t)| t.peers.iter().map(move |p| (end, p.clone())))
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
