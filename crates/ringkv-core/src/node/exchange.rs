//! The node's side of anti-entropy exchanges: building trees from the store,
//! keeping them current on every write, and answering each exchange step
//! (see [`crate::anti_entropy`] for the protocol).

use super::{Effect, Node, StoreCounts};
use crate::anti_entropy::{AeStep, ExchangeId, RepairProgress, TokenWindow};
use crate::merkle::item_hash;
use crate::message::{encoded_len, fill_batch, Batch, BatchLimits, Message};
use crate::range::TokenRange;
use crate::ring::{Ring, Token};
use crate::siblings::SiblingSet;
use crate::store::Store;
use crate::{Millis, NodeId};
use std::collections::BTreeMap;

impl<S: Store> Node<S> {
    /// Fresh trees for the current ring, filled from a full store scan (on
    /// start-up, whenever the ring changes, and when an operator asks);
    /// the store counts are taken afresh from the same scan.
    pub fn rebuild_trees(&mut self) {
        self.ae.reset(&self.ring, &self.id, self.settings.n);
        let (ae, store, ring) = (&mut self.ae, &self.store, &self.ring);
        let cluster_n = self.settings.n;
        let empty = SiblingSet::new();
        let mut counts = StoreCounts::default();
        let scanned = store.scan(0, Token::MAX, &mut |key, set| {
            counts.add(key, set);
            if let Some(range) = ring.range_of(Ring::key_token(key)) {
                if let Some(trees) = ae.range_mut(&range) {
                    trees.update(key, crate::keyspace::n_of(key, cluster_n), &empty, set);
                }
            }
            true
        });
        match scanned {
            Ok(()) => self.counts = counts,
            // Trees stay partial; exchanges then repair more than needed.
            // The counts kept so far are better than a partial count.
            Err(e) => tracing::warn!("anti-entropy tree rebuild stopped early: {e}"),
        }
    }

    /// Keep the key's range tree in step with a store write.
    pub(super) fn track_write(&mut self, key: &[u8], old: &SiblingSet, new: &SiblingSet) {
        let n = self.n_of(key);
        if let Some(range) = self.ring.range_of(Ring::key_token(key)) {
            if let Some(trees) = self.ae.range_mut(&range) {
                trees.update(key, n, old, new);
            }
        }
    }

    /// Periodic work: start the next exchange when one is due.
    pub(super) fn tick_anti_entropy(&mut self, now: Millis) {
        self.ae.tick(now);
        let Some(planned) = self.ae.next_exchange(now) else {
            return;
        };
        let tree = self.ae.trees.get_mut(&planned.range);
        let Some(tree) = tree.and_then(|t| t.trees.get_mut(&planned.min_n)) else {
            return;
        };
        let (range, root) = (tree.range(), tree.root());
        let peer = planned.peer.clone();
        let exchange = self.ae.begin(&self.id, planned, now);
        let step = AeStep::Hashes {
            level: 0,
            nodes: vec![(0, root)],
        };
        self.send_step(peer, exchange, range, step);
    }

    /// Queue a full exchange of every range (or the one holding `token`).
    pub fn start_repair(&mut self, token: Option<Token>) -> usize {
        self.ae.start_repair(token)
    }

    pub fn repair_progress(&self) -> Option<&RepairProgress> {
        self.ae.repair.as_ref()
    }

    /// When each range this node replicates last completed an exchange.
    pub fn range_sync_times(&self) -> Vec<(TokenRange, Option<Millis>)> {
        self.ae
            .trees
            .values()
            .map(|t| (t.range(), t.last_sync))
            .collect()
    }

    pub fn anti_entropy_stats(&self) -> &crate::anti_entropy::AeStats {
        &self.ae.stats
    }

    pub(super) fn on_exchange(
        &mut self,
        now: Millis,
        from: NodeId,
        exchange: ExchangeId,
        range: TokenRange,
        step: AeStep,
    ) {
        if exchange.initiator == self.id {
            self.ae.heard(&exchange, now);
        }
        if matches!(step, AeStep::Digests { .. } | AeStep::Keys { .. }) {
            // Leaves differed (whichever side compared them).
            self.ae.diverged(&exchange);
        }
        match step {
            AeStep::Hashes { level, nodes } => {
                self.on_hashes(now, from, exchange, range, level, nodes)
            }
            AeStep::Digests {
                leaves,
                digests,
                window,
            } => {
                let theirs = Listing {
                    leaves,
                    digests,
                    window,
                };
                self.on_digests(now, from, exchange, range, theirs)
            }
            AeStep::Keys { entries, want } => {
                self.on_keys(now, from, exchange, range, entries, want)
            }
            AeStep::Done => {
                if exchange.initiator == self.id {
                    self.ae.complete(&exchange, now);
                }
            }
        }
    }

    /// Compare the partner's hashes at `level` with ours; descend under the
    /// ones that differ (as many as fit a batch), or at the leaves send our
    /// digests of those leaves.
    fn on_hashes(
        &mut self,
        now: Millis,
        from: NodeId,
        exchange: ExchangeId,
        range: TokenRange,
        level: u8,
        nodes: Vec<(u32, u64)>,
    ) {
        let limits = self.settings.batch_limits(HASHES_PER_STEP);
        let Some(tree) = self.ae.tree_mut(&range, exchange.min_n) else {
            return self.conclude(now, from, exchange, range);
        };
        let depth = tree.depth();
        let differing: Vec<u32> = nodes
            .into_iter()
            .filter(|&(i, h)| tree.hash(level, i) != h)
            .map(|(i, _)| i)
            .collect();
        if differing.is_empty() {
            return self.conclude(now, from, exchange, range);
        }
        let step = if level >= depth {
            self.ae.stats.differing_leaves += differing.len() as u64;
            self.digest_step(&range, &differing, &exchange)
        } else {
            let children = differing
                .iter()
                .flat_map(|&i| [2 * i, 2 * i + 1])
                .map(|c| (c, tree.hash(level + 1, c)));
            AeStep::Hashes {
                level: level + 1,
                nodes: fill_batch(children, limits),
            }
        };
        self.ae.diverged(&exchange);
        self.send_step(from, exchange, range, step);
    }

    /// Our digests of the differing `leaves`: whole leaves, in order, while
    /// they fit one batch; when the first alone does not, one window of it
    /// (the `seq`-th of its windows, spread so that successive exchanges
    /// visit them all).
    fn digest_step(&self, range: &TokenRange, leaves: &[u32], exchange: &ExchangeId) -> AeStep {
        let limits = self.settings.batch_limits(DIGESTS_PER_STEP);
        let (mut listed, mut digests) = (Vec::new(), Vec::new());
        let mut bytes = 0;
        for &leaf in leaves {
            let found = self.leaf_digests(range, exchange.min_n, leaf, None);
            let size = encoded_len(&leaf) + found.iter().map(encoded_len).sum::<usize>();
            let count = digests.len() + found.len();
            if size.saturating_add(bytes) <= limits.bytes && count <= limits.count {
                bytes += size;
                listed.push(leaf);
                digests.extend(found);
            } else if listed.is_empty() {
                return window_of(leaf, found, limits, exchange.seq);
            } else {
                break;
            }
        }
        AeStep::Digests {
            leaves: listed,
            digests,
            window: None,
        }
    }

    /// The partner's digests of differing leaves: send our versions of the
    /// keys that differ and ask for theirs, as many as fit one batch (and
    /// the rate limit allows); the rest waits for the next exchange.
    fn on_digests(
        &mut self,
        now: Millis,
        from: NodeId,
        exchange: ExchangeId,
        range: TokenRange,
        theirs: Listing,
    ) {
        if self.ae.tree_mut(&range, exchange.min_n).is_none() {
            return self.conclude(now, from, exchange, range);
        }
        let min_n = exchange.min_n;
        let mine: BTreeMap<Vec<u8>, u64> = theirs
            .leaves
            .iter()
            .flat_map(|&leaf| self.leaf_digests(&range, min_n, leaf, theirs.window))
            .collect();
        let their_digests: BTreeMap<Vec<u8>, u64> = theirs
            .digests
            .into_iter()
            .filter(|(k, _)| self.compared_in(k, min_n))
            .collect();
        let want = their_digests
            .iter()
            .filter(|(k, d)| mine.get(*k) != Some(*d))
            .map(|(k, _)| k.clone());
        let differ = mine
            .iter()
            .filter(|(k, d)| their_digests.get(*k) != Some(*d))
            .map(|(k, _)| k.clone());
        let (entries, want) = self.keys_batch(differ, want);
        if entries.is_empty() && want.is_empty() {
            return self.conclude(now, from, exchange, range);
        }
        self.ae.progressed(&exchange);
        self.send_step(from, exchange, range, AeStep::Keys { entries, want });
    }

    /// Our sibling sets of the keys in `differ`, then the keys in `want`,
    /// as many as fit one batch and the rate limit.
    fn keys_batch(
        &mut self,
        differ: impl Iterator<Item = Vec<u8>>,
        want: impl Iterator<Item = Vec<u8>>,
    ) -> (Entries, Vec<Vec<u8>>) {
        let mut batch = Batch::new(self.settings.batch_limits(KEYS_PER_STEP));
        let mut entries = Vec::new();
        for key in differ {
            let Some(set) = self.stored(&key) else {
                continue;
            };
            if !batch.admit_entry(&(&key, &set)) {
                break;
            }
            entries.push((key, set));
        }
        let mut wanted: Vec<Vec<u8>> = want.take_while(|k| batch.admit_entry(k)).collect();
        let allowed = self.ae.take_budget(entries.len() + wanted.len());
        entries.truncate(allowed);
        wanted.truncate(allowed - entries.len());
        (entries, wanted)
    }

    /// Merge the partner's versions; send back what it asked for (as much
    /// as fits one batch: the rest waits for the next exchange).
    fn on_keys(
        &mut self,
        now: Millis,
        from: NodeId,
        exchange: ExchangeId,
        range: TokenRange,
        entries: Vec<(Vec<u8>, SiblingSet)>,
        want: Vec<Vec<u8>>,
    ) {
        if !entries.is_empty() || !want.is_empty() {
            self.ae.progressed(&exchange);
        }
        let min_n = exchange.min_n;
        let ours = |k: &Vec<u8>| range.contains(Ring::key_token(k)) && self.compared_in(k, min_n);
        let entries: Vec<_> = entries.into_iter().filter(|(k, _)| ours(k)).collect();
        let want: Vec<_> = want.into_iter().filter(|k| ours(k)).collect();
        for (key, set) in &entries {
            if let Ok(true) = self.merge_local(key, set) {
                self.ae.stats.keys_repaired += 1;
            }
        }
        let found = want
            .into_iter()
            .filter_map(|k| self.stored(&k).map(|set| (k, set)));
        let back = fill_batch(found, self.settings.batch_limits(KEYS_PER_STEP));
        if back.is_empty() {
            return self.conclude(now, from, exchange, range);
        }
        let step = AeStep::Keys {
            entries: back,
            want: Vec::new(),
        };
        self.send_step(from, exchange, range, step);
    }

    /// Whether an exchange of keys of N at least `min_n` compares `key`.
    fn compared_in(&self, key: &[u8], min_n: u8) -> bool {
        self.n_of(key) >= usize::from(min_n)
    }

    /// This node's stored sibling set of `key`, if it holds one.
    fn stored(&self, key: &[u8]) -> Option<SiblingSet> {
        self.store.get(key).ok().flatten()
    }

    /// The exchange is over from this side: the initiator records it, a
    /// responder tells the initiator.
    fn conclude(&mut self, now: Millis, from: NodeId, exchange: ExchangeId, range: TokenRange) {
        if exchange.initiator == self.id {
            self.ae.complete(&exchange, now);
        } else {
            self.send_step(from, exchange, range, AeStep::Done);
        }
    }

    /// Our (key, digest) of every key in `leaf` (within `window`, if any),
    /// in the range's order (token offset, then key), the same on every
    /// replica.
    fn leaf_digests(
        &self,
        range: &TokenRange,
        min_n: u8,
        leaf: u32,
        window: Option<TokenWindow>,
    ) -> Vec<(Vec<u8>, u64)> {
        let mut found = Vec::new();
        let tree = self.ae.trees.get(&range.end);
        let Some(tree) = tree.and_then(|t| t.trees.get(&min_n)) else {
            return found;
        };
        for (from, to) in tree.leaf_spans(leaf) {
            let scanned = self.store.scan(from, to, &mut |key, set| {
                let windowed = window.is_none_or(|w| w.contains(range, Ring::key_token(key)));
                if windowed && self.compared_in(key, min_n) {
                    found.push((key.to_vec(), item_hash(key, set)));
                }
                true
            });
            if let Err(e) = scanned {
                tracing::warn!("anti-entropy scan failed: {e}");
            }
        }
        found.sort_by_cached_key(|(key, _)| (range.offset(Ring::key_token(key)), key.clone()));
        found
    }

    fn send_step(&mut self, to: NodeId, exchange: ExchangeId, range: TokenRange, step: AeStep) {
        if let AeStep::Keys { entries, .. } = &step {
            self.ae.stats.keys_sent += entries.len() as u64;
        }
        let msg = Message::AntiEntropy {
            exchange,
            range,
            step,
        };
        self.ae.stats.bytes_sent += encoded_len(&msg) as u64;
        self.effects.push(Effect::Send { to, msg });
    }
}

/// Hash nodes one step carries at most (a level has up to 2^16).
const HASHES_PER_STEP: usize = 1 << 16;
/// Digests one step carries at most.
const DIGESTS_PER_STEP: usize = 65_536;
/// Sibling sets and wanted keys one step carries at most.
const KEYS_PER_STEP: usize = 4_096;

/// Keys with their sibling sets, as a `Keys` step carries them.
type Entries = Vec<(Vec<u8>, SiblingSet)>;

/// A `Digests` step as received.
struct Listing {
    leaves: Vec<u32>,
    digests: Vec<(Vec<u8>, u64)>,
    window: Option<TokenWindow>,
}

/// One window of a leaf whose `digests` (in the range's order) exceed one
/// batch. The leaf is cut into consecutive windows of a batch each, only
/// between different tokens so a window can be named by tokens; the
/// exchange's `seq` picks one, along a golden-ratio sequence, so successive
/// exchanges (of one range, however far apart their numbers) spread evenly
/// over the windows.
fn window_of(leaf: u32, digests: Vec<(Vec<u8>, u64)>, limits: BatchLimits, seq: u64) -> AeStep {
    let windows = cut_windows(digests, limits);
    assert!(!windows.is_empty(), "a leaf too large for a batch has keys");
    let golden = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let pick = ((golden as u128 * windows.len() as u128) >> 64) as usize;
    let last_token = |w: &Vec<(Vec<u8>, u64)>| w.last().map(|(k, _)| Ring::key_token(k));
    let after = pick.checked_sub(1).and_then(|i| last_token(&windows[i]));
    let through = (pick + 1 < windows.len())
        .then(|| last_token(&windows[pick]))
        .flatten();
    let digests = windows.into_iter().nth(pick).unwrap_or_default();
    AeStep::Digests {
        leaves: vec![leaf],
        digests,
        window: Some(TokenWindow { after, through }),
    }
}

/// `digests` cut into consecutive batches, never between two keys of one
/// token.
fn cut_windows(digests: Vec<(Vec<u8>, u64)>, limits: BatchLimits) -> Vec<Vec<(Vec<u8>, u64)>> {
    let mut windows: Vec<Vec<(Vec<u8>, u64)>> = Vec::new();
    let mut batch = Batch::new(limits);
    let mut prev_token = None;
    for digest in digests {
        let token = Ring::key_token(&digest.0);
        let fits = batch.admit_entry(&digest);
        if windows.is_empty() || (!fits && prev_token != Some(token)) {
            windows.push(Vec::new());
            batch = Batch::new(limits);
            batch.admit_entry(&digest);
        }
        prev_token = Some(token);
        windows.last_mut().expect("pushed above").push(digest);
    }
    windows
}
