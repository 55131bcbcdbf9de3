//! The node's side of settings agreement: which members run with other
//! cluster settings ([`crate::settings::ClusterSettings`]), and what follows
//! from it. The shell's handshake refuses such peers; this is the defence
//! in depth behind it, and the only check in the simulator:
//!
//! - a member whose gossip entry carries another settings fingerprint, or
//!   that the transport refused for its settings, is never used as a
//!   replica, stand-in, coordinator or transfer source;
//! - keys are dropped after a handoff only while every live member is known
//!   to run with this node's settings, since which keys a node no longer
//!   replicates is computed from them;
//! - a node that has not joined yet gives up when a member refuses it: its
//!   settings are the odd ones out, and retrying cannot fix them.

use super::Node;
use crate::gossip::MemberStatus;
use crate::store::Store;
use crate::{Millis, NodeId};

impl<S: Store> Node<S> {
    /// The transport refused a connection with `peer` because its cluster
    /// settings differ; `reason` says how, in one sentence.
    pub fn on_incompatible(&mut self, _now: Millis, peer: NodeId, reason: String) {
        if self.members.me().status == MemberStatus::Joining && self.refusal.is_none() {
            tracing::error!("node {}: cannot join: {reason}", self.id);
            self.refusal = Some(format!(
                "refusing to join the cluster: {reason}; start this node with the cluster's settings"
            ));
        }
        self.incompatible.insert(peer, reason);
    }

    /// Why this node gave up joining, if it did (the shell then stops it
    /// with this sentence as its error).
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }

    /// Why `peer` is not used, when its settings differ from this node's:
    /// the transport's sentence, or the fingerprints gossip shows.
    pub fn settings_mismatch(&self, peer: &NodeId) -> Option<String> {
        if let Some(reason) = self.incompatible.get(peer) {
            return Some(reason.clone());
        }
        let theirs = self.members.member(peer)?.settings_fingerprint;
        let ours = self.members.me().settings_fingerprint;
        (theirs != 0 && theirs != ours).then(|| {
            format!(
                "member {peer} runs with other cluster settings \
                 (fingerprint {theirs:016x}, this node's {ours:016x})"
            )
        })
    }

    /// Whether `peer`'s settings are known to differ from this node's.
    pub(super) fn is_incompatible(&self, peer: &NodeId) -> bool {
        *peer != self.id && self.settings_mismatch(peer).is_some()
    }

    /// Every live member is known (by gossip) to run with this node's
    /// settings, and none was refused by the transport.
    pub(super) fn settings_agree_everywhere(&self) -> bool {
        let ours = self.members.me().settings_fingerprint;
        self.incompatible.is_empty()
            && self
                .members
                .members()
                .filter(|m| !m.status.is_gone())
                .all(|m| m.settings_fingerprint == ours)
    }

    /// Any message from `peer` means a handshake with it succeeded: its
    /// settings agree now (it was restarted with the cluster's).
    pub(super) fn heard_compatible(&mut self, peer: &NodeId) {
        if self.incompatible.remove(peer).is_some() {
            tracing::info!("node {}: {peer}'s settings agree again", self.id);
        }
    }
}
