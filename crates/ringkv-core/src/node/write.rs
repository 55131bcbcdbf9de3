//! Writes as coordinator: a new version here, shipped to the other
//! replicas, answered after W acknowledgements.
//!
//! Sloppy quorum: a replica that is down, suspected, read-only, fails, or
//! has not answered by its hedge deadline (see [`crate::latency`]) gets a
//! *stand-in*, the next healthy node past the preference list, which keeps
//! the copy as a hint for it (see [`crate::hints`]) and counts towards W in
//! its place; PW counts only the preference list's own acks.
//!
//! When no replica is healthy, a node past the list coordinates (Dynamo's
//! "first N healthy nodes"): it is then itself the first stand-in and keeps
//! its new version as a hint. Its dot must still be new for the key
//! although it holds no copy: it writes on top of everything it holds of
//! the key (copy and hints), and forgetting a hint with a dot of its own
//! raises the floor of its counters (see `hints::forget_hint`), as
//! forgetting its copy does.

use super::{unavailable, Lost, Node};
use crate::coordinator::{OpState, Origin, PutOp, Quorum, Updated, Verdict, WriteAcks};
use crate::crdt::{Reply, Update};
use crate::keyspace;
use crate::latency::RequestKind;
use crate::message::{ClientError, ClientReply, Message, RequestId};
use crate::siblings::{NewVersion, WriteLimits};
use crate::store::Store;
use crate::version::{CausalContext, Dot};
use crate::{Millis, NodeId};
use std::collections::BTreeSet;

impl<S: Store> Node<S> {
    /// PUT or DELETE as coordinator: make the new version here (fresh dot,
    /// dropping what the context saw — for a last-write-wins key, all this
    /// node holds: see [`keyspace::write_context`]), store it, and ship the resulting
    /// sibling set to the other replicas (or their stand-ins) and to nodes
    /// about to replicate the key; answer after W acknowledgements.
    pub(super) fn start_write(
        &mut self,
        now: Millis,
        origin: Origin,
        key: Vec<u8>,
        version: NewVersion,
        context: CausalContext,
        acks: WriteAcks,
    ) {
        self.write_version(now, origin, key, version, context, acks, None)
    }

    /// [`Node::start_write`], for a CRDT update too: `updated` is the dot
    /// the update's value was made with (the write must get exactly it),
    /// the update and its reply.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_version(
        &mut self,
        now: Millis,
        origin: Origin,
        key: Vec<u8>,
        version: NewVersion,
        context: CausalContext,
        acks: WriteAcks,
        updated: Option<(Dot, &Update, Reply)>,
    ) {
        let limits = WriteLimits {
            max_siblings: self.settings.max_siblings,
            max_clock_entries: self.settings.max_clock_entries,
            young_clock_ms: self.settings.young_clock_ms,
            min_counter: self.lease.floor,
        };
        let replicas = self.ring.preference_list(&key, self.n_of(&key));
        // Outside the list, this node keeps its version as a hint for the
        // first replica that is not healthy.
        let keeper =
            (!replicas.contains(&self.id)).then(|| self.first_unhealthy(now, &replicas, true));
        let written = self.read_local(&key).and_then(|old| {
            let mut set = self.local_state(&key)?;
            let stored_context = keyspace::write_context(&key, context.clone(), &set);
            let version = keyspace::stamp_version(&key, version, &set, now);
            let dot = set
                .write_version(&self.id, &stored_context, version, now, limits)
                .map_err(ClientError::from)?;
            if let Some((made_with, ..)) = &updated {
                assert_eq!(
                    &dot, made_with,
                    "an update's value is made with its write's dot"
                );
            }
            self.cover_counter(dot.counter)?;
            match &keeper {
                None => self.write_local(&key, &old, &set)?,
                Some(owner) => self.keep_as_hint(now, owner, &key, &set)?,
            }
            Ok((set, dot))
        });
        let (set, dot) = match written {
            Ok(done) => done,
            Err(e) => return self.finish(origin, Err(e)),
        };
        // What the client sent plus the new dot: not the stored version's
        // context (pruned, or for last-write-wins keys everything stored).
        let mut returned = context;
        returned.add(&dot, now);
        let pending = self.pending_replicas(&key);
        // The future list's PW counts only replicas that hold a copy: this
        // node, if it is only about to replicate the key, keeps a hint.
        // Only while a ring change is pending (a node's future ring is
        // empty until its membership first computes one).
        let changing =
            !self.future.is_empty() && self.future.fingerprint() != self.ring.fingerprint();
        let future = match changing {
            true => self.future.preference_list(&key, self.n_of(&key)),
            false => replicas.clone(),
        };
        let future = future
            .into_iter()
            .filter(|n| replicas.contains(n) || (*n != self.id && pending.contains(n)));
        let mut quorum = Quorum::new(acks.w.unwrap_or(self.default_w(&key)), replicas.clone())
            .with_primaries_needed(acks.pw.unwrap_or(0))
            .with_future_primaries(future);
        if let Some(owner) = &keeper {
            quorum.add_stand_in(owner, self.id.clone());
            self.stats.sloppy_coordinated += 1;
        }
        let req = self.next_request();
        let timeout = self.settings.request_timeout_ms;
        let msg = Message::Replicate {
            req,
            key: key.clone(),
            siblings: set.clone(),
        };
        let others: Vec<NodeId> = replicas
            .iter()
            .filter(|r| **r != self.id)
            .cloned()
            .collect();
        let hedge = self.latency.slowest(&others, RequestKind::Replica);
        let op = PutOp {
            origin,
            quorum,
            dot,
            returned,
            key,
            siblings: set,
            silent_after: Some(now + hedge),
            updated: updated.map(|(_, update, reply)| Updated {
                name: update.name(),
                applies_twice: update.counts_twice(),
                pop: update.is_pop(),
                reply,
            }),
        };
        self.track(now, now + timeout, req, OpState::Put(op));
        self.record_put(req, &self.id.clone(), true);
        for replica in &replicas {
            if *replica != self.id {
                self.replicate(now, req, replica, &msg);
            }
        }
        // Counted towards PW in the future list (see
        // `Quorum::with_future_primaries`); one that cannot be sent work
        // fails at once, so a PW it makes impossible is refused at once.
        self.send_to_others(&pending, msg);
        for peer in &pending {
            if *peer != self.id && !self.is_usable(now, peer, true) {
                self.record_put(req, peer, false);
            }
        }
    }

    /// Send a preference-list replica its copy. A suspected replica is
    /// asked too, but gets a stand-in at once; one that is not usable
    /// (down, unreachable, read-only, other settings) gets a stand-in and
    /// counts as failed at once — so a quorum that cannot be met (PW with
    /// the list cut off) is refused at once, not after the timeout. A down
    /// node that only this node's view calls down is still sent its copy
    /// (it merges it; its ack no longer counts).
    fn replicate(&mut self, now: Millis, req: RequestId, replica: &NodeId, msg: &Message) {
        let covered = self
            .put_op(req)
            .is_some_and(|p| !p.quorum.needs_stand_in(replica));
        let usable = self.is_usable(now, replica, true);
        if usable && (covered || self.is_healthy(now, replica, true)) {
            return self.send(replica.clone(), msg.clone());
        }
        if usable {
            self.send(replica.clone(), msg.clone());
            self.add_stand_in(now, req, replica);
            return;
        }
        let replaced = !covered && self.add_stand_in(now, req, replica);
        let refused = self.is_incompatible(replica) || self.is_read_only(replica);
        if !refused {
            self.send(replica.clone(), msg.clone());
        }
        // Counted as failed when something takes its place, when it would
        // refuse, or when this node itself has long not heard from it (and
        // the cluster agrees it is down). A replica only recently reported
        // unreachable may answer after a reconnect — right after this
        // process was paused, its transport reports every peer so — and is
        // waited for (found by a paused node's first writes after SIGCONT).
        if replaced || covered || refused || self.is_down_to_me(replica) {
            self.hint_missed(now, req, replica);
            self.record_put(req, replica, false);
        }
    }

    /// `replica` missed this write, and no stand-in took its copy — the
    /// verdict was given already (W = 1 is met by the coordinator alone),
    /// or none was free: this node keeps a hint of the copy for its owner,
    /// not counted towards W, as Cassandra's coordinator hints every
    /// replica it could not reach. So the copy reaches the owner when it
    /// is back, not at anti-entropy's next pass over the range (CI: after a
    /// W = 1 write on the minority side of a partition, a replica still
    /// lacked it 30 s after the heal).
    pub(super) fn hint_missed(&mut self, now: Millis, req: RequestId, replica: &NodeId) {
        let Some(put) = self.put_op(req) else {
            return;
        };
        let owner = put.quorum.owner_of(replica);
        if put.quorum.is_covered(replica) || !put.quorum.awaits(replica) || owner == self.id {
            return;
        }
        let (key, siblings) = (put.key.clone(), put.siblings.clone());
        if let Some(OpState::Put(put)) = self.ops.get_mut(&req).map(|op| &mut op.state) {
            put.quorum.mark_covered(replica);
        }
        self.stats.last_resort_hints += 1;
        // A refusal (the hint book full, the store failed) leaves the copy
        // to anti-entropy.
        let _ = self.store_hint(now, &owner, &key, &siblings);
    }

    /// The first of `replicas` that is not healthy for `write` work (the
    /// first one when all are): whom a coordinator outside the list stands
    /// in for — it keeps that replica's copy, or answers a read in its place.
    pub(super) fn first_unhealthy(&self, now: Millis, replicas: &[NodeId], write: bool) -> NodeId {
        replicas
            .iter()
            .find(|r| !self.is_healthy(now, r, write))
            .unwrap_or(&replicas[0])
            .clone()
    }

    /// Keep this coordinator's own new version as a hint for `owner`.
    fn keep_as_hint(
        &mut self,
        now: Millis,
        owner: &NodeId,
        key: &[u8],
        set: &crate::siblings::SiblingSet,
    ) -> Result<(), ClientError> {
        self.writable()?;
        self.store_hint(now, owner, key, set)
            .map_err(|message| ClientError::Storage {
                node: self.id.to_string(),
                message,
            })
    }

    /// A replica answered (or the transport gave up on it). A failure while
    /// the quorum is open sends its copy to a stand-in before it counts.
    pub(super) fn on_put_ack(&mut self, now: Millis, req: RequestId, from: &NodeId, ok: bool) {
        let Some(started) = self.ops.get(&req).map(|op| op.started) else {
            return;
        };
        let Some(put) = self.put_op(req) else {
            return;
        };
        let replace = !ok && put.quorum.needs_stand_in(from);
        if ok && *from != self.id {
            let rtt = now.saturating_sub(started);
            self.latency.observe(from, RequestKind::Replica, rtt);
            self.observe_round_trip(rtt);
        }
        if replace {
            self.add_stand_in(now, req, from);
        } else if !ok {
            self.hint_missed(now, req, from);
        }
        self.record_put(req, from, ok);
    }

    /// Count an answer; answer the origin once the verdict is known.
    fn record_put(&mut self, req: RequestId, from: &NodeId, ok: bool) {
        let verdict = match self.ops.get_mut(&req).map(|op| &mut op.state) {
            Some(OpState::Put(put)) => put.quorum.record(from, ok),
            _ => return,
        };
        if let Some(v) = verdict {
            self.conclude_put(req, v);
        }
        self.retire_if_complete(req);
    }

    /// A write's hedge deadline passed (its replicas' recent round trips):
    /// every write still short of W sends the copies of the replicas it
    /// waits on (silent, perhaps paused or partitioned away) to stand-ins
    /// too, so the write neither fails nor waits.
    pub(super) fn cover_silent_replicas(&mut self, now: Millis) {
        let mut due = Vec::new();
        for (req, op) in &mut self.ops {
            if let OpState::Put(put) = &mut op.state {
                if put.silent_after.is_some_and(|t| t <= now) {
                    put.silent_after = None;
                    due.push((*req, put.quorum.silent()));
                }
            }
        }
        for (req, silent) in due {
            for replica in silent {
                self.add_stand_in(now, req, &replica);
            }
        }
    }

    /// Send `replica`'s copy to the next available node past the preference
    /// list that this write does not use yet, with a hint naming the copy's
    /// owner; this node keeps the hint itself when it is that node. False
    /// when there is none: this node then keeps a hint for the owner
    /// anyway, not counted towards W (as Cassandra's coordinator hints
    /// every replica it could not reach), so the copy reaches the owner
    /// when it is back rather than at anti-entropy's next pass over the
    /// range (CI: with two of five nodes reachable, one replica waited
    /// over 30 s).
    fn add_stand_in(&mut self, now: Millis, req: RequestId, replica: &NodeId) -> bool {
        let Some(put) = self.put_op(req) else {
            return false;
        };
        let owner = put.quorum.owner_of(replica);
        let Some(stand_in) = self.pick_stand_in(now, &put.key, put.quorum.replicas(), true) else {
            self.hint_missed(now, req, replica);
            return false;
        };
        let (key, siblings) = (put.key.clone(), put.siblings.clone());
        if let Some(OpState::Put(put)) = self.ops.get_mut(&req).map(|op| &mut op.state) {
            put.quorum.add_stand_in(replica, stand_in.clone());
        }
        self.stats.hinted_writes += 1;
        if stand_in == self.id {
            let ok = self.store_hint(now, &owner, &key, &siblings).is_ok();
            self.on_put_ack(now, req, &stand_in, ok);
        } else {
            let msg = Message::HintedReplicate {
                req,
                owner,
                key,
                siblings,
            };
            self.send(stand_in, msg);
        }
        true
    }

    /// The first healthy node clockwise past the key's preference list
    /// that is not in `used` (for `write` work, not a read-only one).
    pub(super) fn pick_stand_in(
        &self,
        now: Millis,
        key: &[u8],
        used: &BTreeSet<NodeId>,
        write: bool,
    ) -> Option<NodeId> {
        self.ring
            .preference_list(key, self.ring.len())
            .into_iter()
            .skip(self.n_of(key))
            .find(|c| !used.contains(c) && self.is_healthy(now, c, write))
    }

    fn put_op(&self, req: RequestId) -> Option<&PutOp> {
        match self.ops.get(&req).map(|op| &op.state) {
            Some(OpState::Put(put)) => Some(put),
            _ => None,
        }
    }

    /// Answer a write's origin once its quorum verdict is known; the
    /// operation stays tracked until every replica answered or it expires.
    pub(super) fn conclude_put(&mut self, req: RequestId, verdict: Verdict) {
        let Some(put) = self.put_op(req) else {
            return;
        };
        let origin = put.origin.clone();
        let result = match verdict {
            Verdict::Reached => Ok(match &put.updated {
                Some(u) => ClientReply::Updated(u.reply.clone()),
                None => ClientReply::Written {
                    dot: put.dot.clone(),
                    context: put.returned.clone(),
                },
            }),
            // A pop's removal is written here and spreads from here: an
            // error would lose what it took, since no later read can tell
            // which element that was. So it answers short of W too (at
            // worst, should this copy die before spreading, the element
            // comes back and is popped again: delivered twice, never lost).
            Verdict::Lost { .. } if put.updated.as_ref().is_some_and(|u| u.pop) => {
                let reply = put.updated.as_ref().map(|u| u.reply.clone());
                Ok(ClientReply::Updated(reply.expect("checked above")))
            }
            Verdict::Lost { answered } => {
                // A delete's tombstone is the version with the write's dot.
                let deleted = put
                    .siblings
                    .iter()
                    .any(|s| s.dot == put.dot && s.is_tombstone());
                let lost = match &put.updated {
                    None if deleted => Lost::Write("delete"),
                    None => Lost::Write("put"),
                    Some(u) if u.applies_twice => Lost::Increment(u.name),
                    Some(u) => Lost::Write(u.name),
                };
                Err(unavailable(lost, &put.quorum, answered))
            }
        };
        self.finish_after_sync(origin, result);
    }
}
