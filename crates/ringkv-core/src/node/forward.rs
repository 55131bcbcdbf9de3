//! Forwarding: a node that is not the key's coordinator sends the request
//! one hop to the first reachable node of the preference list and relays
//! the answer, trying the next node when one does not answer.

use super::{no_coordinator, Node};
use crate::coordinator::{ClientId, ForwardOp, InFlight, OpState, Origin};
use crate::message::{ClientError, ClientOp, ClientResult, Message, RequestId};
use crate::store::Store;
use crate::{Millis, NodeId};

impl<S: Store> Node<S> {
    /// The preference list in the order to try as coordinator: available
    /// nodes first (not down by gossip, not recently unreachable), so a
    /// dead or cut-off first choice costs no timeout. A node whose cluster
    /// settings differ is never tried: it would give the request another
    /// meaning (its own N, R, W).
    pub(super) fn coordinator_candidates(&self, now: Millis, key: &[u8]) -> Vec<NodeId> {
        let mut pref = self.ring.preference_list(key, self.settings.n);
        pref.retain(|n| !self.is_incompatible(n));
        let (up, down): (Vec<NodeId>, Vec<NodeId>) =
            pref.into_iter().partition(|n| self.is_available(now, n));
        up.into_iter().chain(down).collect()
    }

    pub(super) fn forward(
        &mut self,
        now: Millis,
        client: ClientId,
        op: ClientOp,
        target: NodeId,
        fallbacks: Vec<NodeId>,
    ) {
        let req = self.next_request();
        self.stats.forwarded += 1;
        self.send(
            target.clone(),
            Message::Forward {
                req,
                op: op.clone(),
            },
        );
        let forward = ForwardOp {
            client,
            op,
            target,
            fallbacks,
        };
        self.track(
            now + self.settings.forward_timeout_ms(),
            req,
            OpState::Forward(forward),
        );
    }

    /// The forward target did not answer: try the next preference-list
    /// node, coordinating locally when that is us. (Riak does the same; a
    /// write may then be applied twice, which at worst yields a duplicate
    /// sibling — never a lost one.)
    pub(super) fn retry_forward(&mut self, now: Millis, req: RequestId) {
        let Some(InFlight {
            state: OpState::Forward(mut fwd),
            ..
        }) = self.ops.remove(&req)
        else {
            return;
        };
        if fwd.fallbacks.is_empty() {
            let err = no_coordinator(&fwd.op, self.settings.n);
            return self.finish(Origin::Client(fwd.client), Err(err));
        }
        let next = fwd.fallbacks.remove(0);
        if next == self.id {
            self.coordinate(now, Origin::Client(fwd.client), fwd.op);
        } else {
            self.forward(now, fwd.client, fwd.op, next, fwd.fallbacks);
        }
    }

    /// The forward `req` cannot reach any coordinator (its message is too
    /// large for a frame): answer the client with `error`.
    pub(super) fn fail_forward(&mut self, req: RequestId, error: ClientError) {
        let client = match self.ops.get(&req).map(|op| &op.state) {
            Some(OpState::Forward(fwd)) => fwd.client,
            _ => return,
        };
        self.ops.remove(&req);
        self.finish(Origin::Client(client), Err(error));
    }

    pub(super) fn on_forward_reply(
        &mut self,
        now: Millis,
        req: RequestId,
        from: &NodeId,
        result: ClientResult,
    ) {
        if let Some(InFlight {
            state: OpState::Forward(fwd),
            ..
        }) = self.ops.get(&req)
        {
            if fwd.target == *from {
                if matches!(result, Err(ClientError::ReadOnly { .. })) {
                    // It refused before writing anything: the next may.
                    return self.retry_forward(now, req);
                }
                let client = fwd.client;
                self.ops.remove(&req);
                self.finish(Origin::Client(client), result);
            }
        }
    }
}
