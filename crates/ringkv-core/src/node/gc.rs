//! The node's side of tombstone collection (see [`crate::gc`]): noting
//! dead keys it leads, probe rounds, votes, deletes and fences.

use super::Node;
use crate::gc::{Collectable, Fence, Round, SWEEP_KEYS_PER_STEP};
use crate::gossip::MemberStatus;
use crate::keyspace;
use crate::merkle::item_hash;
use crate::message::{encoded_len, Message, RequestId};
use crate::ring::{Ring, Token};
use crate::siblings::SiblingSet;
use crate::store::Store;
use crate::version::CausalContext;
use crate::{Millis, NodeId};
use std::collections::BTreeMap;

/// What the leader knows of a candidate key, at the start of a round.
enum GcState {
    /// Dead here, in the state of this digest and context, and no hint of
    /// it kept.
    Dead(u64, CausalContext),
    /// Written again: no longer a candidate.
    Live,
    /// Dead, but a hint of it is kept here (or the store failed to read):
    /// asked about again later.
    NotYet,
}

impl<S: Store> Node<S> {
    /// Whether this node is `key`'s GC leader: the first of its preference
    /// list in the current ring.
    fn leads(&self, key: &[u8]) -> bool {
        self.ring.preference_list(key, 1).first() == Some(&self.id)
    }

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
        if self.leads(key) {
            self.gc.note(key, keyspace::dies_at(key, set), self.now);
        }
    }

    /// Versions of `key` a collected tombstone superseded are dropped (see
    /// the fences of [`crate::gc`]).
    /// When a fence drops some of what a peer sent, that peer kept what
    /// was collected everywhere else (its delete was lost): it is told to
    /// drop it too ([`Self::tell_fenced`]) — safe, since the collected
    /// state superseded every version the fence covers.
    pub(super) fn gc_fenced(&mut self, key: &[u8], incoming: &SiblingSet) -> Option<SiblingSet> {
        let fence = self.gc.fence(key, self.now)?.clone();
        let kept = uncovered(incoming, &fence);
        if kept.len() < incoming.len() && self.gc.tell.len() < crate::gc::MAX_FENCES {
            self.gc.tell.push((key.to_vec(), fence));
        }
        Some(kept)
    }

    /// Send `to` the deletes of what it sent that fences dropped.
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
        self.sweep_step(now);
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

    /// One step of the dead-key sweep (see [`crate::gc::Gc`]): up to
    /// [`SWEEP_KEYS_PER_STEP`] keys past the cursor, in token order, once
    /// per collection interval; the dead ones this node leads are noted,
    /// and those that will expire. A sweep runs after a start, a ring
    /// change, an overflow, and when a key expires that was too far off to
    /// note ([`crate::gc::EXPIRY_HORIZON_MS`]).
    fn sweep_step(&mut self, now: Millis) {
        let ring = self.ring.fingerprint();
        if self.gc.swept_ring != ring {
            self.gc.swept_ring = ring;
            self.gc.sweep = Some((0, None));
        }
        if now < self.gc.next_sweep_at {
            return;
        }
        if self.gc.sweep.is_none() && self.gc.next_expiry.is_some_and(|at| at <= now) {
            // A key expired that was too far off to note: find it.
            self.gc.next_expiry = None;
            self.gc.sweep = Some((0, None));
        }
        let Some((from, after)) = self.gc.sweep.clone() else {
            return;
        };
        self.gc.next_sweep_at = now + self.settings.gc.interval_ms;
        let (mut dead, mut seen, mut last) = (Vec::new(), 0, None);
        let scanned = self.store.scan(from, Token::MAX, &mut |key, set| {
            let token = Ring::key_token(key);
            if token == from && after.as_deref().is_some_and(|a| key <= a) {
                return true;
            }
            seen += 1;
            if let Some(at) = keyspace::dies_at(key, set) {
                dead.push((key.to_vec(), at));
            }
            last = Some((token, Some(key.to_vec())));
            seen < SWEEP_KEYS_PER_STEP
        });
        if scanned.is_err() {
            return; // Tried again next interval.
        }
        for (key, at) in dead {
            if self.leads(&key) {
                self.gc.note(&key, Some(at), now);
            }
        }
        self.gc.sweep = match seen < SWEEP_KEYS_PER_STEP {
            true if std::mem::take(&mut self.gc.overflowed) => Some((0, None)),
            true => None,
            false => last,
        };
    }

    fn start_gc_round(&mut self, now: Millis) {
        let Some(others) = self.gc_voters(now) else {
            return;
        };
        let ripe = now.saturating_sub(self.settings.gc.grace_ms);
        let mut keys: Vec<Collectable> = Vec::new();
        let mut bytes = 0;
        for key in self.gc.ripe(ripe, self.settings.gc.batch) {
            match self.gc_state(&key) {
                GcState::Dead(digest, context) => {
                    let size = key.len() + 16 + encoded_len(&context);
                    if bytes + size > self.settings.max_batch_bytes() {
                        break;
                    }
                    bytes += size;
                    keys.push((key, digest, context));
                }
                // Noted again when it dies again here (`gc_note`), or by
                // a sweep.
                GcState::Live => {
                    self.gc.candidates.remove(&key);
                }
                // A hint kept here is delivered, a read retried: dropping
                // the key would leave its tombstone forever (CI: a
                // coordinator's hint for a node that was down).
                GcState::NotYet => self.gc.retry_later(&key, now),
            }
        }
        if keys.is_empty() {
            return;
        }
        let yes = keys.iter().map(|k| self.gc_vote(k)).collect();
        let req = self.next_request();
        self.gc.round = Some(Round {
            req,
            keys: keys.iter().map(|(k, d, _)| (k.clone(), *d)).collect(),
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

    /// Whether `key` may be collected now, as far as this node (its
    /// leader) knows.
    fn gc_state(&self, key: &[u8]) -> GcState {
        if !self.leads(key) {
            return GcState::Live; // Led by another node since a ring change.
        }
        let (Ok(set), Ok(hints)) = (self.read_local(key), self.hints_of(key)) else {
            return GcState::NotYet;
        };
        match (keyspace::is_dead(key, &set, self.now), hints.is_empty()) {
            (false, _) => GcState::Live,
            (true, false) => GcState::NotYet,
            (true, true) => GcState::Dead(item_hash(key, &set), set.context()),
        }
    }

    /// Whether this node holds exactly the state `digest` of `key` (or, not
    /// being a replica of it, nothing), no hint of it, and no ring change
    /// is under way. A non-replica's stray copy is dealt with first (see
    /// [`Self::clear_stray_copy`]).
    fn gc_vote(&mut self, (key, digest, context): &Collectable) -> bool {
        if !self.ring_is_settled() || self.hints_of(key).map_or(true, |h| !h.is_empty()) {
            return false;
        }
        let Ok(set) = self.read_local(key) else {
            return false;
        };
        let replica = self
            .ring
            .preference_list(key, self.n_of(key))
            .contains(&self.id);
        match (set.is_empty(), replica) {
            // A replica holding nothing may yet get a copy the state
            // superseded (the simulator resurrected values when it voted
            // yes having collected the key before): no. A peer left
            // holding the state after everyone else collected it is told
            // to delete it when it sends it (see `gc_fenced`).
            (true, replica) => !replica,
            (false, true) => item_hash(key, &set) == *digest,
            (false, false) => self.clear_stray_copy(key, &set, context),
        }
    }

    /// A copy of `key` on this node, which is not its replica in a settled
    /// ring, is deleted when the state to collect (of `context`)
    /// supersedes it — true — and otherwise sent to the replicas, which
    /// lack some of it: the next round asks again (false).
    fn clear_stray_copy(&mut self, key: &[u8], set: &SiblingSet, context: &CausalContext) -> bool {
        if set.iter().all(|s| context.covers(&s.dot)) {
            let deleted = self.delete_local(key, set).is_ok();
            // As a handoff drop: new dots start above every counter issued.
            self.lease.floor = self.lease.until;
            return deleted;
        }
        for replica in self.ring.preference_list(key, self.n_of(key)) {
            let msg = Message::Repair {
                key: key.to_vec(),
                siblings: set.clone(),
            };
            self.send(replica, msg);
        }
        false
    }

    /// Remove `key` (holding `old`) from the store and the counts.
    fn delete_local(&mut self, key: &[u8], old: &SiblingSet) -> Result<(), ()> {
        if let Err(e) = self.store.delete(key) {
            self.store_failed(self.now, &e);
            return Err(());
        }
        self.track_write(key, old, &SiblingSet::new());
        self.counts.remove(key, old);
        Ok(())
    }

    pub(super) fn on_gc_probe(&mut self, from: NodeId, req: RequestId, keys: Vec<Collectable>) {
        let yes = keys.iter().map(|k| self.gc_vote(k)).collect();
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
        let mut per_replica: BTreeMap<NodeId, Vec<Fence>> = BTreeMap::new();
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
            for replica in self.ring.preference_list(&key, self.n_of(&key)) {
                let entry = (key.clone(), context.clone());
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

    /// Drop every version of each key its collected context covers (the
    /// key goes when nothing is left); fence it.
    pub(super) fn on_gc_delete(&mut self, keys: Vec<Fence>) {
        if self.writable().is_err() || self.gc.fences.len() + keys.len() > crate::gc::MAX_FENCES {
            return;
        }
        let mut dropped = false;
        for (key, context) in keys {
            let Ok(old) = self.read_local(&key) else {
                continue;
            };
            let kept = uncovered(&old, &context);
            if kept.len() == old.len() {
                continue;
            }
            let written = match kept.is_empty() {
                true => self.delete_local(&key, &old),
                false => self.write_local(&key, &old, &kept).map_err(|_| ()),
            };
            if written.is_err() {
                return;
            }
            dropped = true;
            if kept.is_empty() {
                self.gc.candidates.remove(&key);
                self.stats.gc_collected += 1;
            }
            let until = self.now + self.settings.gc.fence_ms;
            self.gc.fences.insert(key, (context, until));
        }
        if dropped {
            // As a handoff drop: the dropped dots are gone from the store,
            // so new ones start above every counter issued.
            self.lease.floor = self.lease.until;
        }
        debug_assert!(self.gc.fences.len() <= crate::gc::MAX_FENCES);
    }
}

/// The versions of `set` whose dots `context` does not cover.
fn uncovered(set: &SiblingSet, context: &CausalContext) -> SiblingSet {
    set.iter()
        .filter(|s| !context.covers(&s.dot))
        .cloned()
        .collect()
}
