//! The node's side of tombstone collection (see [`crate::gc`]): noting
//! dead keys it leads, probe rounds, votes, deletes and fences.

use super::Node;
use crate::gc::{Round, Target};
use crate::gossip::MemberStatus;
use crate::keyspace;
use crate::merkle::item_hash;
use crate::message::{Message, RequestId};
use crate::siblings::SiblingSet;
use crate::store::Store;
use crate::version::CausalContext;
use crate::{Millis, NodeId};
use std::collections::{BTreeMap, BTreeSet};

impl<S: Store> Node<S> {
    fn gc_enabled(&self) -> bool {
        self.settings.gc.grace_ms > 0
    }

    /// Stop starting collection rounds (a round under way still ends): a
    /// simulation freezes collection before it reads the final state, so
    /// that the replicas it compares do not change between its reads.
    pub fn stop_gc(&mut self) {
        self.settings.gc.grace_ms = 0;
    }

    pub fn gc_report(&self) -> crate::gc::GcReport {
        crate::gc::GcReport {
            candidates: self.gc.candidates.len(),
            fences: self.gc.fences.len(),
            collected: self.stats.gc_collected,
            round_in_flight: self.gc.round.is_some(),
        }
    }

    /// Keys this node has collected so far.
    pub fn gc_collected(&self) -> u64 {
        self.stats.gc_collected
    }

    /// After `key`'s state here became `set`: a leader notes whether it is
    /// dead.
    pub(super) fn gc_note(&mut self, key: &[u8], set: &SiblingSet) {
        if !self.gc_enabled() {
            return;
        }
        let leads = self.ring.preference_list(key, 1).first() == Some(&self.id);
        if leads {
            let dead = keyspace::is_dead(key, set);
            self.gc.note(key, dead, self.now);
        }
    }

    /// Versions of `key` a collected tombstone superseded are dropped (see
    /// the fences of [`crate::gc`]).
    /// When a fence drops all of what a peer sent, that peer kept what
    /// was collected everywhere else (its delete was lost): it is told to
    /// delete it too ([`Self::tell_fenced`]) — safe, since the collected
    /// tombstone superseded every version it holds.
    pub(super) fn gc_fenced(&mut self, key: &[u8], incoming: &SiblingSet) -> Option<SiblingSet> {
        let fence = self.gc.fence(key, self.now)?.clone();
        let kept: SiblingSet = incoming
            .iter()
            .filter(|s| !fence.covers(&s.dot))
            .cloned()
            .collect();
        if kept.is_empty() && !incoming.is_empty() && self.gc.tell.len() < crate::gc::MAX_FENCES {
            self.gc
                .tell
                .push((key.to_vec(), item_hash(key, incoming), fence));
        }
        Some(kept)
    }

    /// Send `to` the deletes of what it sent that fences dropped whole.
    pub(super) fn tell_fenced(&mut self, to: &NodeId) {
        if self.gc.tell.is_empty() || *to == self.id {
            return;
        }
        let keys = std::mem::take(&mut self.gc.tell);
        self.send(to.clone(), Message::GcDelete { keys });
    }

    /// Expire fences; abandon a round past its deadline; start one when
    /// dead keys are ripe and every member can be asked.
    pub(super) fn tick_gc(&mut self, now: Millis) {
        if !self.gc_enabled() {
            return;
        }
        self.gc.expire_fences(now);
        if let Some(round) = &self.gc.round {
            if round.deadline > now {
                return;
            }
            if let Some(round) = self.gc.round.take() {
                for (key, _) in &round.keys {
                    self.gc.retry_later(key, now);
                }
            }
            self.gc.next_round_at = now + self.settings.gc.interval_ms;
        }
        if now < self.gc.next_round_at || self.gc.candidates.is_empty() {
            return;
        }
        self.gc.next_round_at = now + self.settings.gc.interval_ms;
        self.start_gc_round(now);
    }

    fn start_gc_round(&mut self, now: Millis) {
        let Some(others) = self.gc_voters(now) else {
            return;
        };
        let ripe = now.saturating_sub(self.settings.gc.grace_ms);
        let mut keys: Vec<Target> = Vec::new();
        let mut bytes = 0;
        for key in self.gc.ripe(ripe, self.settings.gc.batch) {
            if bytes + key.len() + 16 > self.settings.max_batch_bytes() {
                break;
            }
            match self.gc_state(&key) {
                Some(digest) => {
                    bytes += key.len() + 16;
                    keys.push((key, digest));
                }
                None => {
                    self.gc.candidates.remove(&key);
                }
            }
        }
        if keys.is_empty() {
            return;
        }
        let yes = keys.iter().map(|(k, d)| self.gc_vote(k, *d)).collect();
        let req = self.next_request();
        self.gc.round = Some(Round {
            req,
            keys: keys.clone(),
            waiting: others.iter().cloned().collect(),
            yes,
            deadline: now + self.settings.request_timeout_ms,
        });
        for peer in others {
            let keys = keys.clone();
            self.send(peer, Message::GcProbe { req, keys });
        }
        self.finish_gc_round_if_answered();
    }

    /// Every other member that may hold a copy of a key, when all of them
    /// can be asked now and no ring change is under way; `None` otherwise.
    fn gc_voters(&self, now: Millis) -> Option<Vec<NodeId>> {
        if !self.ring_is_settled() {
            return None;
        }
        let mut others = Vec::new();
        for member in self.members.members() {
            let counts = !matches!(member.status, MemberStatus::Left | MemberStatus::Removed);
            if !counts || member.id == self.id {
                continue;
            }
            if !self.is_available(now, &member.id) {
                return None;
            }
            others.push(member.id.clone());
        }
        Some(others)
    }

    /// The digest of `key`'s state here while it is dead, and no hint of
    /// it is kept here.
    fn gc_state(&self, key: &[u8]) -> Option<u64> {
        let set = self.read_local(key).ok()?;
        let hints = self.hints_of(key).ok()?;
        (keyspace::is_dead(key, &set) && hints.is_empty()).then(|| item_hash(key, &set))
    }

    /// Whether this node holds exactly the state `digest` of `key` (or, not
    /// being a replica of it, nothing), no hint of it, and no ring change
    /// is under way.
    fn gc_vote(&self, key: &[u8], digest: u64) -> bool {
        if !self.ring_is_settled() || self.hints_of(key).map_or(true, |h| !h.is_empty()) {
            return false;
        }
        let Ok(set) = self.read_local(key) else {
            return false;
        };
        let replica = self
            .ring
            .preference_list(key, self.settings.n)
            .contains(&self.id);
        match set.is_empty() {
            // A replica holding nothing may yet get a copy the state
            // superseded (the simulator resurrected values when it voted
            // yes having collected the key before): no. A peer left
            // holding the state after everyone else collected it is told
            // to delete it when it sends it (see `gc_fenced`).
            true => !replica,
            false => item_hash(key, &set) == digest,
        }
    }

    pub(super) fn on_gc_probe(&mut self, from: NodeId, req: RequestId, keys: Vec<Target>) {
        let yes = keys.iter().map(|(k, d)| self.gc_vote(k, *d)).collect();
        self.send(from, Message::GcVotes { req, yes });
    }

    pub(super) fn on_gc_votes(&mut self, from: &NodeId, req: RequestId, yes: Vec<bool>) {
        let Some(round) = self.gc.round.as_mut().filter(|r| r.req == req) else {
            return;
        };
        if yes.len() != round.keys.len() || !round.waiting.remove(from) {
            return;
        }
        for (all, vote) in round.yes.iter_mut().zip(yes) {
            *all &= vote;
        }
        self.finish_gc_round_if_answered();
    }

    /// Once every member voted: delete the keys all said yes to, on each
    /// of their replicas.
    fn finish_gc_round_if_answered(&mut self) {
        if self.gc.round.as_ref().is_none_or(|r| !r.waiting.is_empty()) {
            return;
        }
        let round = self.gc.round.take().expect("checked above");
        self.gc.next_round_at = self.now;
        // A key some member said no to waits another grace before it is
        // asked about again, so the next round asks about the next keys
        // rather than the same ones (a member catching up through
        // anti-entropy says yes to them one range at a time).
        for ((key, _), yes) in round.keys.iter().zip(&round.yes) {
            if !yes {
                self.gc.retry_later(key, self.now);
            }
        }
        let mut per_replica: BTreeMap<NodeId, Vec<(Vec<u8>, u64, CausalContext)>> = BTreeMap::new();
        for ((key, digest), yes) in round.keys.into_iter().zip(round.yes) {
            if !yes {
                continue;
            }
            // The fence is the context of the state every member voted for:
            // the leader's own state must still be it (a write landed since
            // would otherwise be fenced out on the replicas).
            let Ok(set) = self.read_local(&key) else {
                continue;
            };
            if item_hash(&key, &set) != digest {
                self.gc.retry_later(&key, self.now);
                continue;
            }
            let context = set.context();
            for replica in self.ring.preference_list(&key, self.settings.n) {
                let entry = (key.clone(), digest, context.clone());
                per_replica.entry(replica).or_default().push(entry);
            }
        }
        for (replica, keys) in per_replica {
            match replica == self.id {
                true => self.on_gc_delete(keys),
                false => self.send(replica, Message::GcDelete { keys }),
            }
        }
    }

    /// Delete each key still in the state its digest names; fence it.
    pub(super) fn on_gc_delete(&mut self, keys: Vec<(Vec<u8>, u64, CausalContext)>) {
        if self.writable().is_err() || self.gc.fences.len() + keys.len() > crate::gc::MAX_FENCES {
            return;
        }
        let mut deleted = BTreeSet::new();
        for (key, digest, context) in keys {
            let Ok(old) = self.read_local(&key) else {
                continue;
            };
            if old.is_empty() || item_hash(&key, &old) != digest {
                continue;
            }
            if let Err(e) = self.store.delete(&key) {
                self.store_failed(self.now, &e);
                return;
            }
            self.track_write(&key, &old, &SiblingSet::new());
            self.counts.remove(&key, &old);
            let until = self.now + self.settings.gc.fence_ms;
            self.gc.fences.insert(key.clone(), (context, until));
            self.gc.candidates.remove(&key);
            self.stats.gc_collected += 1;
            deleted.insert(key);
        }
        if !deleted.is_empty() {
            // As a handoff drop: the dots of the deleted keys are gone from
            // the store, so new ones start above every counter issued.
            self.lease.floor = self.lease.until;
        }
        debug_assert!(self.gc.fences.len() <= crate::gc::MAX_FENCES);
    }
}
