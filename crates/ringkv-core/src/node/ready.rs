//! What a node hands its shell after a batch of inputs, typed by
//! durability, as raft-rs' `Ready` separates `messages` from
//! `persisted_messages`.
//!
//! Some effects promise that this node's store holds what it wrote: a
//! write's acknowledgement (to a client, or to the coordinator as a
//! replica or stand-in), a hint delivery's acknowledgement (after which the
//! stand-in deletes its hints), and the handoff claim "this node holds its
//! share" (after which the old owners drop theirs). They may leave only
//! after [`Store::sync`] succeeded, so [`Ready`] keeps them apart in an
//! opaque [`Persisted`] that only [`Node::after_sync`] can release.
//!
//! **A failed sync makes the node read-only until it restarts.** After a
//! failed fsync the kernel may already have dropped the dirty pages and
//! will not report it again, so no later sync can be trusted (PostgreSQL's
//! "fsyncgate", 2018): everything withheld becomes a failure, and so does
//! every later promise. The node keeps serving reads — its data is no
//! worse than any replica's — and refuses every write with one sentence,
//! so coordinators give its copies to stand-ins and forwarders try the
//! next node. Crash-stop would give the same safety but take reads away
//! and, on a full disk, loop through restarts; a restart is still what
//! ends the read-only state, once the disk is fixed, replaying the store's
//! journal to what was really made durable.

use super::{Effect, Node};
use crate::coordinator::Origin;
use crate::message::{ClientError, ClientResult, Message};
use crate::store::{Store, StoreError};
use crate::{Millis, NodeId};

/// A batch's effects (see the module docs).
#[derive(Debug)]
pub struct Ready {
    /// May happen at once: they promise nothing about this node's store.
    pub effects: Vec<Effect>,
    /// Promises of durability: sync the store, then hand them back to
    /// [`Node::after_sync`] with the outcome.
    pub persisted: Persisted,
}

/// Effects withheld until the store is synced. Opaque: only
/// [`Node::after_sync`] turns them into effects.
#[derive(Debug, Default)]
#[must_use = "hand persisted effects to Node::after_sync once the store is synced"]
pub struct Persisted {
    effects: Vec<Effect>,
    /// The future ring fingerprint this node now holds all its data for.
    claim: Option<u64>,
}

impl Persisted {
    pub fn is_empty(&self) -> bool {
        self.effects.is_empty() && self.claim.is_none()
    }
}

/// Why a node is read-only.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoreFault {
    /// When the store failed (node time, ms).
    pub since: Millis,
    pub error: String,
}

impl<S: Store> Node<S> {
    /// Everything the caller must now do: `effects` at once, `persisted`
    /// only after [`Store::sync`] (see [`Node::after_sync`]).
    pub fn ready(&mut self) -> Ready {
        Ready {
            effects: std::mem::take(&mut self.effects),
            persisted: std::mem::take(&mut self.persisted),
        }
    }

    /// The store was synced with outcome `synced`: the withheld effects
    /// that may now leave. When the sync failed — now or ever before — the
    /// node is read-only and every withheld promise becomes a failure.
    pub fn after_sync(
        &mut self,
        now: Millis,
        persisted: Persisted,
        synced: Result<(), StoreError>,
    ) -> Vec<Effect> {
        self.now = now;
        if let Err(e) = synced {
            self.store_failed(now, &e);
        }
        let Persisted { effects, claim } = persisted;
        let Some(fault) = self.fault.clone() else {
            if let Some(target) = claim {
                self.members.update_me(|me| me.synced = target);
            }
            return effects;
        };
        let failure = ClientError::Storage {
            node: self.id.to_string(),
            message: format!(
                "sync to disk failed ({}); the write may not be durable here",
                fault.error
            ),
        };
        effects
            .into_iter()
            .filter_map(|e| broken_promise(e, &failure))
            .collect()
    }

    /// Why this node is read-only, if it is.
    pub fn store_fault(&self) -> Option<&StoreFault> {
        self.fault.as_ref()
    }

    /// The store failed (a sync, or a write the node cannot take back):
    /// the node turns read-only until it restarts.
    pub(super) fn store_failed(&mut self, now: Millis, e: &StoreError) {
        if self.fault.is_none() {
            tracing::error!(
                "node {}: the store failed, refusing writes until restarted: {e}",
                self.id
            );
            self.fault = Some(StoreFault {
                since: now,
                error: e.to_string(),
            });
            // Others stop sending it writes once gossip spreads this.
            self.members.update_me(|me| me.read_only = true);
        }
    }

    /// `Ok` while the node may write its store.
    pub(super) fn writable(&self) -> Result<(), ClientError> {
        match &self.fault {
            None => Ok(()),
            Some(fault) => Err(self.read_only_error(fault)),
        }
    }

    fn read_only_error(&self, fault: &StoreFault) -> ClientError {
        ClientError::ReadOnly {
            node: self.id.to_string(),
            reason: fault.error.clone(),
        }
    }

    /// Send `msg` once the store is synced: it acknowledges a write.
    pub(super) fn send_after_sync(&mut self, to: NodeId, msg: Message) {
        self.persisted.effects.push(Effect::Send { to, msg });
    }

    /// Answer a write this node coordinated: a success only once the
    /// store is synced, a failure at once.
    pub(super) fn finish_after_sync(&mut self, origin: Origin, result: ClientResult) {
        if result.is_err() {
            return self.finish(origin, result);
        }
        let effect = match origin {
            Origin::Client(client) => Effect::Reply { client, result },
            Origin::Peer { node, req } => Effect::Send {
                to: node,
                msg: Message::ForwardReply { req, result },
            },
        };
        self.persisted.effects.push(effect);
    }

    /// Claim, once the store is synced, that this node holds its share of
    /// the future ring `target`.
    pub(super) fn claim_after_sync(&mut self, target: u64) {
        self.persisted.claim = Some(target);
    }
}

/// A withheld promise whose sync failed, as the failure it now is; `None`
/// for what only makes sense as a success.
fn broken_promise(effect: Effect, failure: &ClientError) -> Option<Effect> {
    let failed = match effect {
        Effect::Reply { client, result } => Effect::Reply {
            client,
            result: result.and(Err(failure.clone())),
        },
        Effect::Send { to, msg } => Effect::Send {
            to,
            msg: match msg {
                Message::ReplicateAck { req, .. } => Message::ReplicateAck {
                    req,
                    result: Err(failure.to_string()),
                },
                Message::HintDeliveryAck { req, .. } => Message::HintDeliveryAck {
                    req,
                    result: Err(failure.to_string()),
                },
                Message::ForwardReply { req, result } => Message::ForwardReply {
                    req,
                    result: result.and(Err(failure.clone())),
                },
                _ => return None,
            },
        },
        Effect::Connect { .. } => return None,
    };
    Some(failed)
}
