//! Forwarding: a node that cannot coordinate an operation itself sends it
//! one hop to the best candidate and relays the answer. A candidate that is
//! late — later than its recent answers say it should be — gets company:
//! the next candidate is asked too (a hedged request), and the first
//! answer wins, so no request waits on one paused or cut-off node. A write
//! is hedged only while no coordinator asked has confirmed it is at work
//! ([`Message::ForwardAccepted`], sent on receipt): a slow but live
//! coordinator would otherwise apply it too, leaving a duplicate sibling.
//!
//! A last-write-wins write is never hedged either (see
//! [`ClientOp::may_hedge`]), but moves on like any idempotent operation —
//! only once no coordinator asked can still start it. Every forward of a
//! write carries a start-by time ([`FORWARD_START_WITHIN_MS`] past its
//! sending, by the forwarder's clock), and a coordinator that reads it
//! later (a paused process resuming with the forward in its socket) refuses
//! it unapplied ([`ClientError::TooLate`]). A late start would stamp the
//! write after a newer one its client made meanwhile through the next
//! coordinator, and win over it: a fresh-eyes user's `SET A` (moved on
//! after a 1 s pause of its coordinator), then `SET B`, read `A` for ever
//! once the coordinator resumed, in 8 of 11 tries. Cassandra drops
//! messages past their timeout the same way (`cross_node_timeout`).
//!
//! An operation that must not be applied twice (an increment: see
//! [`ClientOp::is_idempotent`]) is never hedged, and once sent it is not
//! retried elsewhere unless its coordinator said it did nothing (a
//! read-only refusal; an overloaded one goes back to the client, as for
//! every operation): when the coordinator falls silent or
//! unreachable the client is told the outcome is unknown
//! ([`ClientError::Indeterminate`]). Increments thus count at most once —
//! never twice — and exactly once when acknowledged.

use super::{no_coordinator, Node};
use crate::coordinator::{ClientId, ForwardOp, InFlight, OpState, Origin};
use crate::latency::RequestKind;
use crate::message::{ClientError, ClientOp, ClientReply, ClientResult, Message, RequestId};
use crate::ring::{Ring, Token};
use crate::store::Store;
use crate::{Millis, NodeId};

/// How long after a forwarder sends a write its coordinator may still
/// start it, ms by the coordinator's clock against the forwarder's: half of
/// the 1 s in which the transport calls a silent peer unreachable.
pub const FORWARD_START_WITHIN_MS: Millis = 500;
/// The clock skew between nodes the start-by fence allows for, ms: a
/// last-write-wins write moves on from a silent coordinator only
/// `FORWARD_START_WITHIN_MS` + this after asking it, so that (with clocks
/// within this of each other) the silent one can no longer start it. The
/// same bound last-write-wins ordering itself rests on.
pub const FORWARD_FENCE_SKEW_MS: Millis = 500;
/// How long after asking a coordinator a fenced write may move on from it.
const MOVE_ON_AFTER_MS: Millis = FORWARD_START_WITHIN_MS + FORWARD_FENCE_SKEW_MS;

/// The shortest wait before a write is hedged, ms (see `hedge_after`).
const MIN_WRITE_HEDGE_MS: Millis = 60;
/// How long a write a coordinator accepted waits for its answer before the
/// next candidate is asked too, ms: past the 250 ms most coordinators need
/// at worst, so a duplicate sibling stays rare, and within the 500 ms a
/// request may wait on a silent node.
const ACCEPTED_WRITE_HEDGE_MS: Millis = 400;

impl<S: Store> Node<S> {
    /// The nodes that may coordinate an operation on `key`, best first:
    /// 1. healthy nodes of the preference list (any of them may coordinate,
    ///    as in Dynamo; dotted versions make that safe);
    /// 2. only when none is healthy, the first healthy nodes past the list
    ///    — Dynamo's sloppy quorum uses "the first N healthy nodes" of the
    ///    extended list, so every side of a partition takes writes (such a
    ///    coordinator keeps its version as a hint);
    /// 3. last resort, list nodes that are suspected but not down.
    ///
    /// Never a node that is down by agreement, recently unreachable, or
    /// runs with other cluster settings (it would give the request another
    /// meaning); for writes, never one that is read-only.
    pub(super) fn coordinator_candidates(
        &self,
        now: Millis,
        key: &[u8],
        write: bool,
    ) -> Vec<NodeId> {
        self.candidates_for_token(now, Ring::key_token(key), self.n_of(key), write)
    }

    /// [`Node::coordinator_candidates`] for the keys of `token`.
    pub(super) fn candidates_for_token(
        &self,
        now: Millis,
        token: Token,
        n: usize,
        write: bool,
    ) -> Vec<NodeId> {
        let extended = self.ring.preference_list_for_token(token, self.ring.len());
        let (pref, beyond) = extended.split_at(n.min(extended.len()));
        let mut candidates: Vec<NodeId> = pref
            .iter()
            .filter(|id| self.is_healthy(now, id, write))
            .cloned()
            .collect();
        if candidates.is_empty() {
            let stand_ins = beyond.iter().filter(|id| self.is_healthy(now, id, write));
            candidates.extend(stand_ins.take(n).cloned());
        }
        let suspects = pref
            .iter()
            .filter(|id| !self.is_healthy(now, id, write) && self.is_usable(now, id, write));
        candidates.extend(suspects.cloned());
        candidates
    }

    /// Send `op` to the first of `candidates` (never this node), keeping
    /// the rest to hedge with or fall back on.
    pub(super) fn forward(
        &mut self,
        now: Millis,
        client: ClientId,
        op: ClientOp,
        mut candidates: Vec<NodeId>,
    ) {
        assert!(!candidates.is_empty(), "a forward needs a target");
        let target = candidates.remove(0);
        assert!(target != self.id, "this node coordinates, not forwards");
        let req = self.next_request();
        self.stats.forwarded += 1;
        let msg = Message::Forward {
            req,
            op: op.clone(),
            start_by: now + FORWARD_START_WITHIN_MS,
        };
        self.send(target.clone(), msg);
        let hedge_at = now + self.hedge_after(&target, &op);
        let forward = ForwardOp {
            client,
            op,
            hedge_at,
            asked: vec![(target, now)],
            fallbacks: candidates,
            accepted: false,
            fenced_until: now + MOVE_ON_AFTER_MS,
        };
        let deadline = now + self.settings.forward_timeout_ms();
        self.track(now, deadline, req, OpState::Forward(forward));
    }

    /// Every forward whose coordinators are all later than their hedge
    /// deadline also goes to the next candidate.
    pub(super) fn hedge_forwards(&mut self, now: Millis) {
        let due: Vec<RequestId> = self
            .ops
            .iter()
            .filter(|(_, op)| match &op.state {
                OpState::Forward(f) => {
                    f.hedge_at <= now
                        && f.op.may_hedge()
                        && f.fallbacks.iter().any(|n| *n != self.id)
                }
                _ => false,
            })
            .map(|(req, _)| *req)
            .collect();
        for req in due {
            let Some(OpState::Forward(f)) = self.ops.get_mut(&req).map(|op| &mut op.state) else {
                continue;
            };
            // This node, if a fallback, stays one for `retry_forward`: it
            // cannot be asked alongside, as its answer has no forward to
            // come back through.
            let Some(i) = f.fallbacks.iter().position(|n| *n != self.id) else {
                continue;
            };
            let next = f.fallbacks.remove(i);
            f.asked.push((next.clone(), now));
            f.fenced_until = now + MOVE_ON_AFTER_MS;
            let op = f.op.clone();
            let wait = self.hedge_after(&next, &op);
            if let Some(OpState::Forward(f)) = self.ops.get_mut(&req).map(|op| &mut op.state) {
                f.hedge_at = now + wait;
            }
            self.stats.hedged_forwards += 1;
            let start_by = now + FORWARD_START_WITHIN_MS;
            self.send(next, Message::Forward { req, op, start_by });
        }
    }

    /// No coordinator asked will answer in time: try the next candidate,
    /// coordinating locally when that is this node. (Riak does the same; a
    /// write may then be applied twice, which at worst yields a duplicate
    /// sibling — never a lost one.)
    /// `maybe_applied`: a coordinator asked may have applied it (it fell
    /// silent or unreachable rather than refusing): an operation that must
    /// not be applied twice then ends with [`ClientError::Indeterminate`].
    pub(super) fn retry_forward(
        &mut self,
        now: Millis,
        req: RequestId,
        maybe_applied: Option<&NodeId>,
    ) {
        let Some(InFlight {
            state: OpState::Forward(mut fwd),
            started,
            ..
        }) = self.ops.remove(&req)
        else {
            return;
        };
        let moves_on = fwd.op.is_fenced() && fwd.op.is_idempotent();
        if maybe_applied.is_some() && moves_on && now < fwd.fenced_until {
            // A silent coordinator may still start it: wait until it
            // cannot (the op's deadline is then this; see the module docs).
            let until = fwd.fenced_until;
            fwd.asked.clear();
            return self.track(started, until, req, OpState::Forward(fwd));
        }
        if let (Some(node), false) = (maybe_applied, fwd.op.is_idempotent()) {
            let err = ClientError::Indeterminate {
                op: fwd.op.name().into(),
                node: node.to_string(),
            };
            return self.finish(Origin::Client(fwd.client), Err(err));
        }
        if fwd.fallbacks.is_empty() {
            let err = no_coordinator(&fwd.op, self.n_of(fwd.op.key()));
            return self.finish(Origin::Client(fwd.client), Err(err));
        }
        if fwd.fallbacks[0] == self.id {
            fwd.fallbacks.remove(0);
            self.coordinate(now, Origin::Client(fwd.client), fwd.op);
        } else {
            self.forward(now, fwd.client, fwd.op, fwd.fallbacks);
        }
    }

    /// `peer`, asked to coordinate `req`, will not answer (unreachable):
    /// wait for the others asked, or try the next candidate.
    /// `refused`: it answered that it did nothing.
    pub(super) fn forward_target_failed(
        &mut self,
        now: Millis,
        req: RequestId,
        peer: &NodeId,
        refused: bool,
    ) {
        let Some(OpState::Forward(f)) = self.ops.get_mut(&req).map(|op| &mut op.state) else {
            return;
        };
        f.drop_target(peer);
        if f.asked.is_empty() {
            self.retry_forward(now, req, (!refused).then_some(peer));
        }
    }

    /// How long a forward of `op` to `target` waits before the next
    /// candidate is asked too: `target`'s usual round trip. A write waits
    /// at least [`MIN_WRITE_HEDGE_MS`] plus 1 ms per 8 KiB it carries, so
    /// that a live coordinator merely slow to receive it or busy (whose
    /// acceptance is on its way) is not doubled by a duplicate sibling.
    fn hedge_after(&self, target: &NodeId, op: &ClientOp) -> Millis {
        let usual = self.latency.deadline(target, RequestKind::Forward);
        if !op.is_write() {
            return usual;
        }
        let size = crate::message::encoded_len(op) as Millis;
        usual.max(MIN_WRITE_HEDGE_MS) + size / 8192
    }

    /// A coordinator asked took `req` up: a write is hedged only if it
    /// stays unanswered for [`ACCEPTED_WRITE_HEDGE_MS`] after it was asked
    /// — it may have been cut off right after accepting (a link that drops
    /// only what reaches it: the fault bench saw one such write wait for
    /// the transport's 1 s progress timeout).
    pub(super) fn on_forward_accepted(&mut self, req: RequestId, from: &NodeId) {
        if let Some(OpState::Forward(f)) = self.ops.get_mut(&req).map(|op| &mut op.state) {
            if let (Some(asked_at), true) = (f.asked_at(from), f.op.is_write()) {
                f.accepted = true;
                f.hedge_at = f.hedge_at.max(asked_at + ACCEPTED_WRITE_HEDGE_MS);
            }
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

    /// A coordinator answered. A success, or the last outstanding answer,
    /// goes to the client; a refusal that wrote nothing (a read-only node,
    /// or a forward read too late to start) moves on to the next
    /// candidate.
    pub(super) fn on_forward_reply(
        &mut self,
        now: Millis,
        req: RequestId,
        from: &NodeId,
        result: ClientResult,
    ) {
        let Some(OpState::Forward(f)) = self.ops.get_mut(&req).map(|op| &mut op.state) else {
            return;
        };
        let Some(asked_at) = f.asked_at(from) else {
            return;
        };
        let others_asked = f.asked.len() > 1;
        let did_nothing = matches!(
            result,
            Err(ClientError::ReadOnly { .. } | ClientError::TooLate { .. })
        );
        self.latency
            .observe(from, RequestKind::Forward, now.saturating_sub(asked_at));
        if did_nothing || (result.is_err() && others_asked) {
            return self.forward_target_failed(now, req, from, did_nothing);
        }
        let client = f.client;
        self.ops.remove(&req);
        if let Ok(ClientReply::BucketDefined(table)) = &result {
            // So the client's next request through this node finds it.
            self.merge_buckets(table);
        }
        self.finish(Origin::Client(client), result);
    }
}
