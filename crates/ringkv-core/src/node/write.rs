//! Writes as coordinator: a new version here, shipped to the other
//! replicas, answered after W acknowledgements.

use super::{unavailable, Node};
use crate::coordinator::{InFlight, OpState, Origin, PutOp, Quorum, Verdict};
use crate::message::{ClientError, ClientReply, Message, RequestId};
use crate::siblings::WriteLimits;
use crate::store::Store;
use crate::version::VersionVector;
use crate::{Millis, NodeId};

impl<S: Store> Node<S> {
    /// PUT or DELETE as coordinator: make the new version here (fresh dot,
    /// dropping what the context saw), store it, and ship the resulting
    /// sibling set to the other replicas; answer after W acknowledgements.
    pub(super) fn start_write(
        &mut self,
        now: Millis,
        origin: Origin,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        context: VersionVector,
        w: Option<usize>,
    ) {
        let limits = WriteLimits {
            max_siblings: self.settings.max_siblings,
            max_clock_entries: self.settings.max_clock_entries,
            min_counter: self.lease.floor,
        };
        let written = self.read_local(&key).and_then(|old| {
            let mut set = old.clone();
            let dot = set
                .write(&self.id, &context, value, now, limits)
                .map_err(ClientError::from)?;
            self.cover_counter(dot.counter)?;
            self.write_local(&key, &old, &set)?;
            let clock = set.iter().find(|s| s.dot == dot).map(|s| s.clock());
            Ok((set, clock.unwrap_or_default()))
        });
        let (set, clock) = match written {
            Ok(done) => done,
            Err(e) => return self.finish(origin, Err(e)),
        };
        let replicas = self.ring.preference_list(&key, self.settings.n);
        let mut quorum = Quorum::new(w.unwrap_or(self.settings.w), replicas.iter().cloned());
        let req = self.next_request();
        let msg = Message::Replicate {
            req,
            key,
            siblings: set,
        };
        self.send_to_others(&replicas, msg);
        let verdict = quorum.record(&self.id.clone(), true);
        let op = PutOp {
            origin,
            quorum,
            written: clock,
        };
        self.track(
            now + self.settings.request_timeout_ms,
            req,
            OpState::Put(op),
        );
        if let Some(v) = verdict {
            self.conclude_put(req, v);
        }
    }

    pub(super) fn on_put_ack(&mut self, _now: Millis, req: RequestId, from: &NodeId, ok: bool) {
        let verdict = match self.ops.get_mut(&req).map(|op| &mut op.state) {
            Some(OpState::Put(put)) => put.quorum.record(from, ok),
            _ => return,
        };
        if let Some(v) = verdict {
            self.conclude_put(req, v);
        }
        self.retire_if_complete(req);
    }

    /// Answer a write's origin once its quorum verdict is known; the
    /// operation stays tracked until every replica answered or it expires.
    pub(super) fn conclude_put(&mut self, req: RequestId, verdict: Verdict) {
        let Some(InFlight {
            state: OpState::Put(put),
            ..
        }) = self.ops.get(&req)
        else {
            return;
        };
        let origin = put.origin.clone();
        let result = match verdict {
            Verdict::Reached => Ok(ClientReply::Written(put.written.clone())),
            Verdict::Lost { answered } => Err(unavailable("put", &put.quorum, answered)),
        };
        self.finish(origin, result);
    }
}
