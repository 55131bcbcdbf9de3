//! The node's side of removing and replacing dead members (see
//! [`crate::gossip::removal`] for the membership rules).
//!
//! - Any node takes an operator's `remove`; the handoff it triggers is the
//!   ordinary one (a removing member sits in the current ring but not in
//!   the future one), whose sources fall back to the surviving replicas
//!   because a removed member is never available.
//! - A replacing node removes the member it replaces as soon as that one is
//!   down by agreement, and gives up with one sentence if it stays up.
//! - A removed member is fenced: others take nothing from it but gossip
//!   (whose answer tells it it was removed), and it stops itself when it
//!   learns of its removal.

use super::Node;
use crate::gossip::{MemberStatus, RemoveRefusal};
use crate::store::Store;
use crate::{Millis, NodeId};

/// How long a replacing node waits, in units of `suspect_after_ms` after it
/// first learns of the member it replaces, for that member to be down by
/// agreement before giving up: enough for it to suspect the member itself
/// and to learn the others' suspicions.
const REPLACE_PATIENCE: u64 = 3;

impl<S: Store> Node<S> {
    /// An operator removes member `id` for good (see
    /// [`Membership::remove`](crate::gossip::Membership::remove)): refused
    /// when it is up unless `force`. Returns its new status.
    pub fn remove(
        &mut self,
        now: Millis,
        id: &NodeId,
        force: bool,
    ) -> Result<MemberStatus, RemoveRefusal> {
        let status = self.members.remove(id, force)?;
        tracing::warn!("node {}: removed member {id} ({status:?})", self.id);
        self.follow_membership(now);
        Ok(status)
    }

    /// Whether `peer` was removed by an operator: nothing is sent to it and
    /// nothing but gossip is taken from it.
    pub(super) fn is_removed_member(&self, peer: &NodeId) -> bool {
        self.members
            .member(peer)
            .is_some_and(|m| m.status.is_removed())
    }

    /// A replacing node removes the member it replaces once it may; a
    /// removed node gives up. Either ends in [`Node::refusal`].
    pub(super) fn tick_removal(&mut self, now: Millis) {
        if self.refusal.is_some() {
            return;
        }
        if let Some(conflict) = self.members.identity_conflict() {
            self.refusal = Some(format!("refusing to start: {conflict}"));
            return;
        }
        if self.members.me().status.is_removed() {
            self.refusal = Some(format!(
                "node {} was removed from the cluster (ringkv remove); it may not serve its \
                 old data again: start a new node with a new id and an empty data directory, \
                 or one that replaces it (--replace {})",
                self.id, self.id
            ));
            return;
        }
        if self.members.me().status != MemberStatus::Joining {
            return;
        }
        match self.members.remove_replaced() {
            Ok(true) => self.replace_pending_since = None,
            // Not known yet: wait for the seed's member list, then as long
            // as for a member that is up (gossip may still be on its way).
            Ok(false) if !self.knows_cluster() || now < self.replace_give_up_at(now) => {}
            Ok(false) => {
                let dead = self.members.me().replaces.clone();
                let refusal = RemoveRefusal::Unknown(dead.expect("a replacement names its member"));
                tracing::error!("node {}: cannot replace: {refusal}", self.id);
                self.refusal = Some(format!(
                    "cannot replace: {refusal} (check the id with ringkv status)"
                ));
            }
            Err(RemoveRefusal::Up { .. }) if now < self.replace_give_up_at(now) => {}
            Err(refusal) => {
                let why = match &refusal {
                    // Not the removal's sentence: `--force` is no way out here.
                    RemoveRefusal::Up { id, liveness } => format!(
                        "{id} is {liveness} to this node, not down: a replacement takes over \
                         a dead member only; stop {id} first, or join with a new id"
                    ),
                    refusal => refusal.to_string(),
                };
                tracing::error!("node {}: cannot replace: {why}", self.id);
                self.refusal = Some(format!("cannot replace: {why}"));
            }
        }
        self.follow_membership(now);
    }

    /// Whether this node has heard of any other member (a joining node
    /// knows only itself until its seed answers).
    fn knows_cluster(&self) -> bool {
        self.members.members().any(|m| m.id != self.id)
    }

    /// When a replacing node stops waiting for the replaced member to be
    /// down (the clock starts at the first call).
    fn replace_give_up_at(&mut self, now: Millis) -> Millis {
        let patience = REPLACE_PATIENCE * self.members.settings().suspect_after_ms;
        *self.replace_pending_since.get_or_insert(now) + patience
    }

    /// The live members that do not yet report holding their share of the
    /// ring in progress (empty when none is): what a removal, a leave or
    /// an old owner's drop waits for. A member down meanwhile is waited
    /// for, not skipped (see `handoff`), so an operator must see it.
    pub fn ring_change_waits_for(&self) -> Vec<NodeId> {
        self.members.behind(self.future.fingerprint())
    }
}
