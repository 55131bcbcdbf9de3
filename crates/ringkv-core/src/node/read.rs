//! Reads as coordinator: ask every replica, answer after R replies, then
//! repair the replicas that were behind.
//!
//! Sloppy reads (Dynamo reads from "the first N healthy nodes"): when too
//! few replicas can answer for R — down, unreachable, or silent past their
//! hedge deadline — stand-ins past the preference list are asked in their
//! place and answer with the hints they keep for the key; their replies
//! count towards R and merge like any other. Only the real replicas are
//! read-repaired (stand-ins hand their hints back themselves). PR demands
//! replies from the real list, for readers that must meet every strict
//! write (PR + PW > N).

use super::{unavailable, Lost, Node};
use crate::coordinator::{GetOp, InFlight, OpState, Origin, Quorum, ReadPurpose, Verdict};
use crate::latency::RequestKind;
use crate::message::{ClientReply, Message, RequestId};
use crate::siblings::SiblingSet;
use crate::store::Store;
use crate::{Millis, NodeId};
use std::collections::BTreeMap;

impl<S: Store> Node<S> {
    /// GET as coordinator: read locally, ask the other replicas, answer after
    /// R replies, and keep listening so stale replicas can be repaired.
    pub(super) fn start_read(
        &mut self,
        now: Millis,
        origin: Origin,
        key: Vec<u8>,
        quorum: (Option<usize>, Option<usize>),
        purpose: ReadPurpose,
    ) {
        let (r, pr) = quorum;
        let replicas = self.ring.preference_list(&key, self.n_of(&key));
        let mut quorum = Quorum::new(r.unwrap_or(self.default_r(&key)), replicas.iter().cloned())
            .with_primaries_needed(pr.unwrap_or(0));
        if !replicas.contains(&self.id) {
            // No replica was healthy: this node stands in for the first.
            quorum.add_stand_in(
                &self.first_unhealthy(now, &replicas, false),
                self.id.clone(),
            );
            self.stats.sloppy_coordinated += 1;
        }
        let others: Vec<NodeId> = replicas
            .iter()
            .filter(|r| **r != self.id)
            .cloned()
            .collect();
        let get = GetOp {
            origin,
            key: key.clone(),
            purpose,
            quorum,
            replies: BTreeMap::new(),
            silent_after: Some(now + self.latency.slowest(&others, RequestKind::Replica)),
        };
        let req = self.next_request();
        let deadline = now + self.settings.request_timeout_ms;
        self.track(now, deadline, req, OpState::Get(get));
        let local = self.local_state(&key).ok();
        self.on_read_reply(now, req, &self.id.clone(), local);
        // A replica whose cluster settings differ is not asked: it counts
        // as failed at once. The others are all asked — a node believed
        // down may be back already — and one that is not usable (down,
        // unreachable) gets a stand-in at once when R needs it.
        let (refused, asked): (Vec<NodeId>, Vec<NodeId>) =
            others.into_iter().partition(|n| self.is_incompatible(n));
        let msg = Message::Read {
            req,
            key: key.clone(),
        };
        self.send_to_others(&asked, msg);
        for peer in &refused {
            self.on_read_reply(now, req, peer, None);
        }
        let (usable, gone): (Vec<NodeId>, Vec<NodeId>) = asked
            .into_iter()
            .partition(|p| self.is_usable(now, p, false));
        self.cover_gone_readers(now, req, usable.len(), &gone);
    }

    /// Ask stand-ins for replicas that cannot answer (`gone`) while the
    /// answers to expect — those in, and `usable` replicas still asked —
    /// fall short of R.
    fn cover_gone_readers(&mut self, now: Millis, req: RequestId, usable: usize, gone: &[NodeId]) {
        let Some(OpState::Get(get)) = self.ops.get(&req).map(|op| &op.state) else {
            return;
        };
        let mut expected = get.quorum.succeeded() + usable;
        let needed = get.quorum.needed;
        for peer in gone {
            let uncovered = matches!(
                self.ops.get(&req).map(|op| &op.state),
                Some(OpState::Get(get)) if get.quorum.needs_stand_in(peer)
            );
            if expected < needed && uncovered && self.add_read_stand_in(now, req, peer) {
                expected += 1;
            }
        }
    }

    /// Ask a stand-in in place of `replica` (failed or silent), if one is
    /// healthy: this node answers from what it holds, others are sent a
    /// read. False when there is none.
    fn add_read_stand_in(&mut self, now: Millis, req: RequestId, replica: &NodeId) -> bool {
        let Some(OpState::Get(get)) = self.ops.get(&req).map(|op| &op.state) else {
            return false;
        };
        let key = get.key.clone();
        let Some(stand_in) = self.pick_stand_in(now, &key, get.quorum.replicas(), false) else {
            return false;
        };
        if let Some(OpState::Get(get)) = self.ops.get_mut(&req).map(|op| &mut op.state) {
            get.quorum.add_stand_in(replica, stand_in.clone());
        }
        if stand_in == self.id {
            let local = self.local_state(&key).ok();
            self.on_read_reply(now, req, &stand_in, local);
        } else {
            self.send(stand_in, Message::Read { req, key });
        }
        true
    }

    /// Reads past their hedge deadline and still short of R ask stand-ins
    /// for as many silent replicas as they are short.
    pub(super) fn cover_silent_reads(&mut self, now: Millis) {
        let mut due = Vec::new();
        for (req, op) in &mut self.ops {
            if let OpState::Get(get) = &mut op.state {
                if get.silent_after.is_some_and(|t| t <= now) {
                    get.silent_after = None;
                    let short = get.quorum.needed.saturating_sub(get.quorum.succeeded());
                    let silent = get.quorum.silent();
                    due.push((*req, silent.into_iter().take(short).collect::<Vec<_>>()));
                }
            }
        }
        for (req, silent) in due {
            for replica in silent {
                self.add_read_stand_in(now, req, &replica);
            }
        }
    }

    pub(super) fn on_read_reply(
        &mut self,
        now: Millis,
        req: RequestId,
        from: &NodeId,
        reply: Option<SiblingSet>,
    ) {
        let Some(InFlight {
            started,
            state: OpState::Get(get),
            ..
        }) = self.ops.get(&req)
        else {
            return;
        };
        let replace =
            reply.is_none() && get.quorum.needs_stand_in(from) && get.quorum.lost_without(from);
        if reply.is_some() && *from != self.id && get.quorum.awaits(from) {
            let rtt = now.saturating_sub(*started);
            self.latency.observe(from, RequestKind::Replica, rtt);
            self.observe_round_trip(rtt);
        }
        if replace {
            self.add_read_stand_in(now, req, from);
        }
        let verdict = match self.ops.get_mut(&req).map(|op| &mut op.state) {
            Some(OpState::Get(get)) => {
                if let (Some(set), true) = (&reply, get.quorum.awaits(from)) {
                    get.replies.insert(from.clone(), set.clone());
                }
                get.quorum.record(from, reply.is_some())
            }
            _ => return,
        };
        if let Some(v) = verdict {
            self.conclude_read(now, req, v);
        }
        self.retire_if_complete(req);
    }

    pub(super) fn conclude_read(&mut self, now: Millis, req: RequestId, verdict: Verdict) {
        let Some(InFlight {
            state: OpState::Get(get),
            ..
        }) = self.ops.get(&req)
        else {
            return;
        };
        let origin = get.origin.clone();
        match (verdict, get.purpose.clone()) {
            (_, ReadPurpose::UpdateAfterRead(update, acks)) => {
                // Short of R, an update goes on with what it has: a CRDT
                // needs no quorum to merge right (only a remove may then
                // miss an add it did not observe, and the add survives).
                let (key, read) = (get.key.clone(), get.merged());
                self.apply_update(now, origin, key, read, update, acks);
            }
            (Verdict::Lost { answered }, _) => {
                let op = match get.purpose {
                    ReadPurpose::Get => Lost::Read("get"),
                    ReadPurpose::DeleteAfterRead(_) => Lost::ReadBeforeDelete,
                    ReadPurpose::UpdateAfterRead(..) => unreachable!("matched above"),
                };
                let err = unavailable(op, &get.quorum, answered);
                self.finish(origin, Err(err));
            }
            (Verdict::Reached, ReadPurpose::Get) => {
                let merged = crate::keyspace::visible_at(&get.key, &get.merged(), now);
                self.observe_siblings(merged.live().count());
                self.finish(origin, Ok(ClientReply::Value(merged)));
            }
            (Verdict::Reached, ReadPurpose::DeleteAfterRead(acks)) => {
                let (key, context) = (get.key.clone(), get.merged().context());
                let tombstone = crate::siblings::NewVersion::tombstone();
                self.start_write(now, origin, key, tombstone, context, acks);
            }
        }
    }

    /// Send the reconciled state to every replica whose reply lacked it.
    pub(super) fn read_repair(&mut self, get: &GetOp) {
        let merged = get.merged();
        if merged.is_empty() {
            return;
        }
        for node in get.stale_replicas(&merged) {
            self.stats.read_repairs += 1;
            if node == self.id {
                let _ = self.merge_local(&get.key, &merged);
            } else {
                let msg = Message::Repair {
                    key: get.key.clone(),
                    siblings: merged.clone(),
                };
                self.send(node, msg);
            }
        }
    }
}
