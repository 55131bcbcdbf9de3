//! The node's side of anti-entropy exchanges: building trees from the store,
//! keeping them current on every write, and answering each exchange step
//! (see [`crate::anti_entropy`] for the protocol).

use super::{Effect, Node};
use crate::anti_entropy::{AeStep, ExchangeId, RepairProgress};
use crate::merkle::item_hash;
use crate::message::Message;
use crate::range::TokenRange;
use crate::ring::{Ring, Token};
use crate::siblings::SiblingSet;
use crate::store::Store;
use crate::{Millis, NodeId};
use std::collections::BTreeMap;

impl<S: Store> Node<S> {
    /// Fresh trees for the current ring, filled from a full store scan (on
    /// start-up, whenever the ring changes, and when an operator asks).
    pub fn rebuild_trees(&mut self) {
        self.ae.reset(&self.ring, &self.id, self.settings.n);
        let (ae, store, ring) = (&mut self.ae, &self.store, &self.ring);
        let empty = SiblingSet::new();
        let scanned = store.scan(0, Token::MAX, &mut |key, set| {
            if let Some(range) = ring.range_of(Ring::key_token(key)) {
                if let Some(tree) = ae.tree_mut(&range) {
                    tree.update(key, &empty, set);
                }
            }
            true
        });
        if let Err(e) = scanned {
            // Trees stay partial; exchanges then repair more than needed.
            tracing::warn!("anti-entropy tree rebuild stopped early: {e}");
        }
    }

    /// Keep the key's range tree in step with a store write.
    pub(super) fn track_write(&mut self, key: &[u8], old: &SiblingSet, new: &SiblingSet) {
        if let Some(range) = self.ring.range_of(Ring::key_token(key)) {
            if let Some(tree) = self.ae.tree_mut(&range) {
                tree.update(key, old, new);
            }
        }
    }

    /// Periodic work: start the next exchange when one is due.
    pub(super) fn tick_anti_entropy(&mut self, now: Millis) {
        self.ae.tick(now);
        let Some((end, peer)) = self.ae.next_exchange(now) else {
            return;
        };
        let Some(tree) = self.ae.trees.get_mut(&end).map(|t| &mut t.tree) else {
            return;
        };
        let (range, root) = (tree.range(), tree.root());
        let exchange = self.ae.begin(&self.id, end, peer.clone(), now);
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
            .map(|t| (t.tree.range(), t.last_sync))
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
        match step {
            AeStep::Hashes { level, nodes } => {
                self.on_hashes(now, from, exchange, range, level, nodes)
            }
            AeStep::Digests { leaves, digests } => {
                self.on_digests(now, from, exchange, range, leaves, digests)
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
    /// ones that differ, or at the leaves send our digests of those leaves.
    fn on_hashes(
        &mut self,
        now: Millis,
        from: NodeId,
        exchange: ExchangeId,
        range: TokenRange,
        level: u8,
        nodes: Vec<(u32, u64)>,
    ) {
        let Some(tree) = self.ae.tree_mut(&range) else {
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
            let digests = self
                .leaf_entries(&range, &differing)
                .into_iter()
                .map(|(k, (digest, _))| (k, digest))
                .collect();
            AeStep::Digests {
                leaves: differing,
                digests,
            }
        } else {
            let nodes = differing
                .iter()
                .flat_map(|&i| [2 * i, 2 * i + 1])
                .map(|c| (c, tree.hash(level + 1, c)))
                .collect();
            AeStep::Hashes {
                level: level + 1,
                nodes,
            }
        };
        self.ae.diverged(&exchange);
        self.send_step(from, exchange, range, step);
    }

    /// The partner's digests of differing leaves: send our versions of the
    /// keys that differ and ask for theirs.
    fn on_digests(
        &mut self,
        now: Millis,
        from: NodeId,
        exchange: ExchangeId,
        range: TokenRange,
        leaves: Vec<u32>,
        digests: Vec<(Vec<u8>, u64)>,
    ) {
        if self.ae.tree_mut(&range).is_none() {
            return self.conclude(now, from, exchange, range);
        }
        let mut mine = self.leaf_entries(&range, &leaves);
        let theirs: BTreeMap<Vec<u8>, u64> = digests.into_iter().collect();
        let want: Vec<Vec<u8>> = theirs
            .iter()
            .filter(|(k, d)| mine.get(*k).is_none_or(|(m, _)| m != *d))
            .map(|(k, _)| k.clone())
            .collect();
        mine.retain(|k, (d, _)| theirs.get(k) != Some(d));
        if want.is_empty() && mine.is_empty() {
            return self.conclude(now, from, exchange, range);
        }
        let budget = self.ae.take_budget(mine.len() + want.len());
        let entries: Vec<(Vec<u8>, SiblingSet)> = mine
            .into_iter()
            .map(|(k, (_, set))| (k, set))
            .take(budget)
            .collect();
        let want = want.into_iter().take(budget - entries.len()).collect();
        self.send_step(from, exchange, range, AeStep::Keys { entries, want });
    }

    /// Merge the partner's versions; send back what it asked for.
    fn on_keys(
        &mut self,
        now: Millis,
        from: NodeId,
        exchange: ExchangeId,
        range: TokenRange,
        entries: Vec<(Vec<u8>, SiblingSet)>,
        want: Vec<Vec<u8>>,
    ) {
        for (key, set) in entries
            .iter()
            .filter(|(k, _)| range.contains(Ring::key_token(k)))
        {
            if let Ok(true) = self.merge_local(key, set) {
                self.ae.stats.keys_repaired += 1;
            }
        }
        let back: Vec<(Vec<u8>, SiblingSet)> = want
            .into_iter()
            .filter(|k| range.contains(Ring::key_token(k)))
            .filter_map(|k| match self.store.get(&k) {
                Ok(Some(set)) => Some((k, set)),
                _ => None,
            })
            .collect();
        if back.is_empty() {
            return self.conclude(now, from, exchange, range);
        }
        let step = AeStep::Keys {
            entries: back,
            want: Vec::new(),
        };
        self.send_step(from, exchange, range, step);
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

    /// Our (digest, sibling set) of every key in the given leaves.
    fn leaf_entries(
        &self,
        range: &TokenRange,
        leaves: &[u32],
    ) -> BTreeMap<Vec<u8>, (u64, SiblingSet)> {
        let mut found = BTreeMap::new();
        let Some(tree) = self.ae.trees.get(&range.end).map(|t| &t.tree) else {
            return found;
        };
        for (from, to) in leaves.iter().flat_map(|&leaf| tree.leaf_spans(leaf)) {
            let scanned = self.store.scan(from, to, &mut |key, set| {
                found.insert(key.to_vec(), (item_hash(key, set), set.clone()));
                true
            });
            if let Err(e) = scanned {
                tracing::warn!("anti-entropy scan failed: {e}");
            }
        }
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
        self.ae.stats.bytes_sent += postcard::to_stdvec(&msg).map_or(0, |b| b.len() as u64);
        self.effects.push(Effect::Send { to, msg });
    }
}
