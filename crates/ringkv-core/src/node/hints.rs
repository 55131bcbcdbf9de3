//! The node's side of hinted handoff (see [`crate::hints`]): storing hints
//! as a stand-in and handing them back to their owners.
//!
//! Hints live in the store ([`Store::put_hint`]), apart from the node's own
//! data; [`HintBook`] indexes them in memory (owner → keys) and tracks the
//! deliveries in flight. Every `delivery_interval_ms` each available owner
//! with hints gets a batch — at most `delivery_batch` hints and
//! [`Settings::max_batch_bytes`](crate::settings::Settings::max_batch_bytes)
//! of them, so it always fits a frame (a lone hint larger than that goes
//! alone); once it acknowledges, exactly the hints it was sent are deleted —
//! unless a new hinted write changed one meanwhile, which then waits for the
//! next batch — and the next batch goes at once.

use super::{Node, StoreCounts};
use crate::message::{Batch, Message, RequestId};
use crate::siblings::SiblingSet;
use crate::store::{Hint, Store, StoreError};
use crate::{Millis, NodeId};
use std::collections::BTreeMap;

/// One kept hint, as the index knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    stored_at: Millis,
    /// Bumped on every change of the hint, to tell whether the version a
    /// delivery carried is still the stored one.
    revision: u64,
    /// Its key plus encoded sibling set, as [`StoreCounts::size_of`] counts.
    bytes: u64,
}

/// A batch of hints sent to their owner and not acknowledged yet.
#[derive(Debug)]
struct Delivery {
    owner: NodeId,
    /// The keys sent, with the revision each had.
    sent: Vec<(Vec<u8>, u64)>,
    /// Forgotten (and so retried) when no answer came by then.
    deadline: Millis,
}

/// Hints this node keeps for others (an index over the store's hints).
#[derive(Debug, Default)]
pub(crate) struct HintBook {
    /// Owner → key → the hint kept for it.
    index: BTreeMap<NodeId, BTreeMap<Vec<u8>, Entry>>,
    /// Hints kept, over every owner (bounded by `max_hints`).
    count: usize,
    /// Their bytes, over every owner.
    bytes: u64,
    next_revision: u64,
    /// At most one per owner.
    deliveries: BTreeMap<RequestId, Delivery>,
    /// When the next delivery round is due.
    next_round: Millis,
}

impl HintBook {
    /// The index of every hint `store` holds (at start-up).
    pub(crate) fn load(store: &impl Store) -> Result<Self, StoreError> {
        let mut book = HintBook::default();
        store.scan_hints(&mut |owner, key, hint| {
            book.insert(owner, key, hint);
            true
        })?;
        Ok(book)
    }

    /// Hints kept per owner.
    pub(crate) fn pending(&self) -> BTreeMap<NodeId, usize> {
        self.index
            .iter()
            .map(|(owner, keys)| (owner.clone(), keys.len()))
            .collect()
    }

    /// The transport could not reach `owner`: its delivery failed.
    pub(crate) fn owner_unreachable(&mut self, owner: &NodeId) {
        self.deliveries.retain(|_, d| d.owner != *owner);
    }

    /// Delivery `req` was not sent (`cause`): forget it, so the next round
    /// tries again instead of waiting for its deadline.
    pub(crate) fn delivery_failed(&mut self, req: RequestId, cause: &str) {
        if let Some(d) = self.deliveries.remove(&req) {
            tracing::warn!("hint delivery to {} failed: {cause}", d.owner);
        }
    }

    fn get(&self, owner: &NodeId, key: &[u8]) -> Option<Entry> {
        self.index.get(owner)?.get(key).copied()
    }

    /// Record a new or changed hint (keeping its first `stored_at`).
    fn insert(&mut self, owner: &NodeId, key: &[u8], hint: &Hint) {
        self.next_revision += 1;
        let entry = Entry {
            stored_at: hint.stored_at,
            revision: self.next_revision,
            bytes: StoreCounts::size_of(key, &hint.siblings),
        };
        self.bytes += entry.bytes;
        let keys = self.index.entry(owner.clone()).or_default();
        match keys.insert(key.to_vec(), entry) {
            Some(old) => self.bytes -= old.bytes,
            None => self.count += 1,
        }
    }

    fn remove(&mut self, owner: &NodeId, key: &[u8]) {
        let Some(keys) = self.index.get_mut(owner) else {
            return;
        };
        if let Some(old) = keys.remove(key) {
            self.count -= 1;
            self.bytes -= old.bytes;
        }
        if keys.is_empty() {
            self.index.remove(owner);
        }
    }

    /// The delivery `req`, if it went to `owner` (and so is answered).
    fn take_delivery(&mut self, req: RequestId, owner: &NodeId) -> Option<Delivery> {
        match self.deliveries.get(&req) {
            Some(d) if d.owner == *owner => self.deliveries.remove(&req),
            _ => None,
        }
    }

    fn delivering_to(&self, owner: &NodeId) -> bool {
        self.deliveries.values().any(|d| d.owner == *owner)
    }
}

impl<S: Store> Node<S> {
    /// Hints this node keeps, per owner (for the status page).
    pub fn pending_hints(&self) -> BTreeMap<NodeId, usize> {
        self.hints.pending()
    }

    /// Hints this node keeps over every owner, and their bytes (key plus
    /// encoded sibling set each), without reading the store.
    pub fn pending_hint_totals(&self) -> StoreCounts {
        StoreCounts {
            keys: self.hints.count as u64,
            bytes: self.hints.bytes,
        }
    }

    /// The hints this node keeps for any owner's copy of `key`.
    pub(super) fn hints_of(&self, key: &[u8]) -> Result<Vec<SiblingSet>, StoreError> {
        let mut found = Vec::new();
        for (owner, keys) in &self.hints.index {
            if keys.contains_key(key) {
                if let Some(hint) = self.store.get_hint(owner, key)? {
                    found.push(hint.siblings);
                }
            }
        }
        Ok(found)
    }

    /// A coordinator asks this node to stand in for `owner`: keep the copy
    /// as a hint and acknowledge once it is stored (the shell syncs the
    /// store before it releases the acknowledgement).
    pub(super) fn on_hinted_replicate(
        &mut self,
        now: Millis,
        from: NodeId,
        req: RequestId,
        owner: NodeId,
        key: Vec<u8>,
        siblings: SiblingSet,
    ) {
        let result = if owner == self.id {
            // The coordinator's ring is behind: this node is the owner now.
            self.merge_local(&key, &siblings)
                .map(drop)
                .map_err(|e| e.to_string())
        } else {
            self.store_hint(now, &owner, &key, &siblings)
        };
        self.acknowledge(from, Message::ReplicateAck { req, result });
    }

    /// Merge `siblings` into the hint kept for `owner`'s copy of `key`, or
    /// start one; refused (and counted as dropped) when `max_hints` are
    /// kept already.
    pub(super) fn store_hint(
        &mut self,
        now: Millis,
        owner: &NodeId,
        key: &[u8],
        siblings: &SiblingSet,
    ) -> Result<(), String> {
        self.writable().map_err(|e| e.to_string())?;
        let existing = self.hints.get(owner, key);
        if existing.is_none() && self.hints.count >= self.settings.hints.max_hints {
            self.stats.hints_dropped += 1;
            return Err(format!(
                "{} keeps {} hints already, its maximum",
                self.id, self.hints.count
            ));
        }
        let hint = match existing {
            Some(entry) => self.merged_hint(owner, key, entry.stored_at, siblings)?,
            None => Hint {
                stored_at: now,
                siblings: siblings.clone(),
            },
        };
        if let Err(e) = self.store.put_hint(owner, key, &hint) {
            self.store_failed(now, &e);
            return Err(e.to_string());
        }
        if existing.is_none() {
            self.stats.hints_stored += 1;
        }
        self.hints.insert(owner, key, &hint);
        Ok(())
    }

    /// The stored hint for `owner`'s `key` with `siblings` merged in.
    fn merged_hint(
        &self,
        owner: &NodeId,
        key: &[u8],
        stored_at: Millis,
        siblings: &SiblingSet,
    ) -> Result<Hint, String> {
        let stored = self.store.get_hint(owner, key).map_err(|e| e.to_string())?;
        let mut merged = stored.map(|h| h.siblings).unwrap_or_default();
        merged.merge(siblings);
        Ok(Hint {
            stored_at,
            siblings: merged,
        })
    }

    /// A stand-in hands back copies it kept for this node: merge them all,
    /// like replicas.
    pub(super) fn on_hint_delivery(
        &mut self,
        from: NodeId,
        req: RequestId,
        entries: Vec<(Vec<u8>, SiblingSet)>,
    ) {
        let result = entries
            .iter()
            .try_for_each(|(key, siblings)| self.merge_local(key, siblings).map(drop))
            .map_err(|e| e.to_string());
        self.acknowledge(from, Message::HintDeliveryAck { req, result });
    }

    /// The owner has a delivered batch: delete the hints it got, unless they
    /// changed since, and go on with the next batch at once.
    pub(super) fn on_hint_delivery_ack(
        &mut self,
        now: Millis,
        from: NodeId,
        req: RequestId,
        result: Result<(), String>,
    ) {
        let Some(delivery) = self.hints.take_delivery(req, &from) else {
            return;
        };
        if let Err(e) = result {
            tracing::warn!("node {}: {from} refused hints: {e}", self.id);
            return;
        }
        let before = self.stats.hints_delivered;
        for (key, revision) in delivery.sent {
            if self.hints.get(&from, &key).map(|e| e.revision) == Some(revision)
                && self.forget_hint(&from, &key)
            {
                self.stats.hints_delivered += 1;
            }
        }
        if self.stats.hints_delivered > before && self.hints.index.contains_key(&from) {
            self.deliver_hints(now, &from);
        }
    }

    /// Every `delivery_interval_ms`: forget deliveries that got no answer,
    /// and send a batch to every available owner with none in flight.
    pub(super) fn tick_hints(&mut self, now: Millis) {
        self.hints.deliveries.retain(|_, d| d.deadline > now);
        if now < self.hints.next_round {
            return;
        }
        self.hints.next_round = now + self.settings.hints.delivery_interval_ms;
        self.rehome_hints_of_departed();
        let owners: Vec<NodeId> = self
            .hints
            .index
            .keys()
            .filter(|o| self.is_usable(now, o, true) && !self.hints.delivering_to(o))
            .cloned()
            .collect();
        for owner in owners {
            self.deliver_hints(now, &owner);
        }
    }

    /// Hints for a member that left, was removed (or that no longer exists)
    /// can never be handed back: send each to the key's replicas instead —
    /// current and future ones, the gone member left out — as a
    /// read-repair-style merge, a batch per owner and round, and forget it.
    fn rehome_hints_of_departed(&mut self) {
        let departed: Vec<NodeId> = self
            .hints
            .index
            .keys()
            .filter(|o| self.members.member(o).is_none_or(|m| m.status.is_gone()))
            .cloned()
            .collect();
        for owner in departed {
            for (key, hint) in self.hint_batch(&owner) {
                let replicas = self.heirs(&key);
                if replicas.contains(&self.id) {
                    // A failed merge is left to anti-entropy.
                    let _ = self.merge_local(&key, &hint.siblings);
                }
                let repair = Message::Repair {
                    key: key.clone(),
                    siblings: hint.siblings,
                };
                self.send_to_others(&replicas, repair);
                if self.forget_hint(&owner, &key) {
                    self.stats.hints_rehomed += 1;
                }
            }
        }
    }

    /// The replicas of `key` in the current and the future ring that are
    /// live members: where a departed member's hint goes instead.
    fn heirs(&self, key: &[u8]) -> Vec<NodeId> {
        let n = self.n_of(key);
        let mut heirs = self.ring.preference_list(key, n);
        heirs.extend(self.future.preference_list(key, n));
        heirs.sort();
        heirs.dedup();
        heirs.retain(|m| self.members.member(m).is_some_and(|m| !m.status.is_gone()));
        heirs
    }

    /// Send `owner` the next batch of its hints, dropping (and counting)
    /// those older than `max_age_ms` instead.
    fn deliver_hints(&mut self, now: Millis, owner: &NodeId) {
        let batch = self.hint_batch(owner);
        let max_age = self.settings.hints.max_age_ms;
        let mut entries = Vec::new();
        let mut sent = Vec::new();
        for (key, hint) in batch {
            let Some(entry) = self.hints.get(owner, &key) else {
                continue;
            };
            if now.saturating_sub(entry.stored_at) > max_age {
                if self.forget_hint(owner, &key) {
                    self.stats.hints_dropped += 1;
                }
            } else {
                sent.push((key.clone(), entry.revision));
                entries.push((key, hint.siblings));
            }
        }
        if entries.is_empty() {
            return;
        }
        let req = self.next_request();
        let deadline = now + self.settings.request_timeout_ms;
        let delivery = Delivery {
            owner: owner.clone(),
            sent,
            deadline,
        };
        self.hints.deliveries.insert(req, delivery);
        self.send(owner.clone(), Message::HintDelivery { req, entries });
    }

    /// The first of `owner`'s stored hints, in key order, that one
    /// delivery carries: at most `delivery_batch` and a batch budget of
    /// bytes, counted as the delivery encodes them (key and sibling set).
    fn hint_batch(&self, owner: &NodeId) -> Vec<(Vec<u8>, Hint)> {
        let mut budget = Batch::new(
            self.settings
                .batch_limits(self.settings.hints.delivery_batch),
        );
        let mut batch = Vec::new();
        let scanned = self.store.scan_hints(&mut |o, key, hint| {
            if o != owner {
                // An owner's hints come one after another: stop after them.
                return batch.is_empty();
            }
            if !budget.admit_entry(&(key, &hint.siblings)) {
                return false;
            }
            batch.push((key.to_vec(), hint.clone()));
            true
        });
        if let Err(e) = scanned {
            tracing::warn!("node {}: cannot read hints: {e}", self.id);
        }
        batch
    }

    /// Delete a hint from the store and the index; false if the store
    /// failed (the hint is then tried again later).
    fn forget_hint(&mut self, owner: &NodeId, key: &[u8]) -> bool {
        if self.writable().is_err() {
            // Kept: delivered again after the restart, which is harmless.
            return false;
        }
        let mine = self
            .store
            .get_hint(owner, key)
            .map(|hint| hint.is_some_and(|h| h.siblings.max_counter(&self.id) > 0));
        if let Err(e) = self.store.delete_hint(owner, key) {
            tracing::warn!("node {}: cannot delete a hint: {e}", self.id);
            return false;
        }
        if !matches!(mine, Ok(false)) {
            // It held a dot this node issued as a coordinator outside the
            // preference list, perhaps its only record of it: new dots of
            // the key must go above every one issued so far.
            self.lease.floor = self.lease.until;
        }
        self.hints.remove(owner, key);
        true
    }
}
