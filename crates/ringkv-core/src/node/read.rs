//! Reads as coordinator: ask every replica, answer after R replies, then
//! repair the replicas that were behind.

use super::{unavailable, Node};
use crate::coordinator::{GetOp, InFlight, OpState, Origin, Quorum, ReadPurpose, Verdict};
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
        r: Option<usize>,
        purpose: ReadPurpose,
    ) {
        let replicas = self.ring.preference_list(&key, self.settings.n);
        // A replica whose cluster settings differ is not asked; it counts
        // as failed at once.
        let (refused, asked): (Vec<NodeId>, Vec<NodeId>) = replicas
            .iter()
            .cloned()
            .partition(|n| self.is_incompatible(n));
        let req = self.next_request();
        self.send_to_others(
            &asked,
            Message::Read {
                req,
                key: key.clone(),
            },
        );
        let get = GetOp {
            origin,
            key: key.clone(),
            purpose,
            quorum: Quorum::new(r.unwrap_or(self.settings.r), replicas.iter().cloned()),
            replies: BTreeMap::new(),
        };
        self.track(
            now + self.settings.request_timeout_ms,
            req,
            OpState::Get(get),
        );
        for peer in &refused {
            self.on_read_reply(now, req, peer, None);
        }
        if replicas.contains(&self.id) {
            let local = self.read_local(&key).ok();
            self.on_read_reply(now, req, &self.id.clone(), local);
        }
    }

    pub(super) fn on_read_reply(
        &mut self,
        now: Millis,
        req: RequestId,
        from: &NodeId,
        reply: Option<SiblingSet>,
    ) {
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
            (Verdict::Lost { answered }, _) => {
                let op = match get.purpose {
                    ReadPurpose::Get => "get",
                    ReadPurpose::DeleteAfterRead(_) => "delete",
                };
                let err = unavailable(op, &get.quorum, answered);
                self.finish(origin, Err(err));
            }
            (Verdict::Reached, ReadPurpose::Get) => {
                let merged = get.merged();
                self.finish(origin, Ok(ClientReply::Value(merged)));
            }
            (Verdict::Reached, ReadPurpose::DeleteAfterRead(acks)) => {
                let (key, context) = (get.key.clone(), get.merged().context());
                self.start_write(now, origin, key, None, context, acks);
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
