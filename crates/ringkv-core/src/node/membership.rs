//! The node's side of membership: running gossip rounds, following the ring
//! as members join and leave, and moving its own status along once its
//! share of the data has been handed over.

use super::{Effect, Node};
use crate::bucket::{BucketProps, Refusal};
use crate::gossip::{seed_id, GossipMsg, Liveness, MemberStatus, Membership, MEMBERS_PER_MESSAGE};
use crate::message::ClientError;
use crate::message::Message;
use crate::store::Store;
use crate::{Millis, NodeId};

/// The longest a node that has left waits for every live member to confirm
/// its departure before it stops anyway.
pub const MAX_LINGER_AFTER_LEAVING_MS: Millis = 60_000;

impl<S: Store> Node<S> {
    pub fn membership(&self) -> &Membership {
        &self.members
    }

    /// Create or change bucket `name` here (see [`crate::bucket`]);
    /// gossip spreads it. Clients go through
    /// [`ClientOp::DefineBucket`](crate::message::ClientOp::DefineBucket),
    /// which one node decides. A change of an existing bucket's N or
    /// policy is a [`ClientError::Conflict`], anything else refused
    /// [`ClientError::Invalid`]: one sentence each.
    pub fn define_bucket(
        &mut self,
        now: Millis,
        name: &str,
        props: BucketProps,
    ) -> Result<(), ClientError> {
        let limits = crate::bucket::Limits {
            cluster_n: self.settings.n,
            max_value_bytes: self.settings.max_value_bytes,
            default_w: self.settings.w,
        };
        let defined = self.members.define_bucket(now, name, props, &limits);
        defined.map_err(|refusal| match refusal {
            Refusal::Invalid(sentence) => ClientError::Invalid(sentence),
            Refusal::Conflict(sentence) => ClientError::Conflict(sentence),
        })
    }

    /// Take the newer entries of a coordinator's bucket table.
    pub(super) fn merge_buckets(&mut self, table: &crate::bucket::BucketTable) {
        self.members.merge_buckets(table);
    }

    /// The properties of bucket `name`, `None` when the cluster has none
    /// by that name (or this node has not heard of it yet).
    pub fn bucket(&self, name: &str) -> Option<BucketProps> {
        self.members.buckets().get(name, self.settings.n)
    }

    /// True when this node has left the cluster for good.
    pub fn has_left(&self) -> bool {
        self.members.me().status == MemberStatus::Left
    }

    /// True once this node has left and every live member is known to hold
    /// its departure (or [`MAX_LINGER_AFTER_LEAVING_MS`] passed): the shell
    /// may stop it. A node stopped earlier could leave a member that missed
    /// the news waiting for it for ever, with every later join, leave and
    /// drop blocked behind it.
    pub fn may_stop(&self, now: Millis) -> bool {
        let Some(left_at) = self.left_at.filter(|_| self.has_left()) else {
            return false;
        };
        let unconfirmed = self.members.departure_unconfirmed();
        if unconfirmed.is_empty() {
            return true;
        }
        let give_up = now >= left_at + MAX_LINGER_AFTER_LEAVING_MS;
        if give_up {
            tracing::warn!(
                "node {}: stopping although {unconfirmed:?} did not confirm its departure",
                self.id
            );
        }
        give_up
    }

    /// Start leaving: the new owners fetch this node's ranges, then it
    /// marks itself left.
    pub fn leave(&mut self, now: Millis) {
        if self.members.me().status == MemberStatus::Member {
            self.members
                .update_me(|me| me.status = MemberStatus::Leaving);
            self.follow_membership(now);
        }
    }

    /// Whether `peer` may be sent work now: not down by agreement *and* by
    /// this node's own silence from it, not recently unreachable for this
    /// node's transport, and running with this node's cluster settings.
    ///
    /// Others' suspicions alone do not count: right after a partition heals
    /// their gossip entries still suspect the nodes they could not reach,
    /// and for a second or two would make nodes this node talks to every
    /// moment look down (the fault benchmark saw W=2 writes refused for a
    /// second after the heal that way). This node's own evidence — its
    /// suspicion, its transport's reports — decides.
    pub(super) fn is_available(&self, now: Millis, peer: &NodeId) -> bool {
        *peer == self.id
            || (!self.is_down_to_me(peer)
                && !self.is_removed_member(peer)
                && self.unreachable.get(peer).is_none_or(|until| *until <= now)
                && !self.is_incompatible(peer))
    }

    /// Whether `peer` is down by agreement and this node agrees: it has
    /// not heard from it for `suspect_after_ms` itself.
    pub(super) fn is_down_to_me(&self, peer: &NodeId) -> bool {
        self.suspected_by_me(peer) && self.members.liveness(peer) == Liveness::Down
    }

    /// Whether this node has not heard from `peer` for `suspect_after_ms`.
    fn suspected_by_me(&self, peer: &NodeId) -> bool {
        self.members.me().suspects.contains(peer)
    }

    /// Whether `peer` may be sent work and expected to answer promptly:
    /// [usable](Self::is_usable) and not suspected by this node (see
    /// [`Self::is_available`] for why others' suspicions do not count).
    /// This node is healthy unless it is read-only and the work writes.
    pub(super) fn is_healthy(&self, now: Millis, peer: &NodeId, write: bool) -> bool {
        self.is_usable(now, peer, write) && !self.suspected_by_me(peer)
    }

    /// Whether `peer` may be sent work at all: available, and for `write`
    /// work not read-only. A suspected node is usable but not healthy: it
    /// is asked only alongside a healthy one, or as a last resort.
    pub(super) fn is_usable(&self, now: Millis, peer: &NodeId, write: bool) -> bool {
        if *peer == self.id {
            return !write || self.fault.is_none();
        }
        self.is_available(now, peer) && !(write && self.is_read_only(peer))
    }

    /// Whether `peer` says in gossip that its store failed.
    pub(super) fn is_read_only(&self, peer: &NodeId) -> bool {
        self.members.member(peer).is_some_and(|m| m.read_only)
    }

    /// Nodes that will replicate `key` once pending joins and leaves
    /// complete but do not yet: writes go to them too (without counting
    /// towards W), so a transfer in progress misses nothing. A node whose
    /// cluster settings differ gets nothing.
    pub(super) fn pending_replicas(&self, key: &[u8]) -> Vec<NodeId> {
        if self.future.fingerprint() == self.ring.fingerprint() {
            return Vec::new();
        }
        let n = self.n_of(key);
        let now = self.ring.preference_list(key, n);
        self.future
            .preference_list(key, n)
            .into_iter()
            .filter(|n| !now.contains(n) && !self.is_incompatible(n))
            .collect()
    }

    /// Answers go out after the membership is followed, so a sender just
    /// learned is connected before the first message to it.
    pub(super) fn on_gossip(&mut self, now: Millis, from: NodeId, msg: GossipMsg) {
        let answers = self.members.on_gossip(now, from, msg);
        self.follow_membership(now);
        for (to, msg) in answers {
            self.send_gossip(to, msg);
        }
    }

    pub(super) fn tick_membership(&mut self, now: Millis) {
        let random = self.next_random();
        for (to, msg) in self.members.tick(now, random) {
            self.connect_seed(&to);
            self.send_gossip(to, msg);
        }
        self.follow_membership(now);
    }

    /// After the member list changed: connect new members, adopt the new
    /// rings, and move this node's own status along.
    pub(super) fn follow_membership(&mut self, now: Millis) {
        if !self.members.take_changed() {
            return;
        }
        for m in self.members.members() {
            if let (Some(addr), true) = (&m.addr, m.id != self.id) {
                self.effects.push(Effect::Connect {
                    node: m.id.clone(),
                    addr: addr.clone(),
                });
            }
        }
        let vnodes = self.settings.vnodes;
        let current = self.members.current_ring(vnodes);
        if current.fingerprint() != self.ring.fingerprint() {
            tracing::info!("node {}: ring now has {} members", self.id, current.len());
            self.set_ring(current);
        }
        let future = self.members.future_ring(vnodes);
        if future.fingerprint() != self.future.fingerprint() {
            self.future = future;
            self.plan_handoff(now);
        }
        self.advance_status(now);
        if self.members.finish_removals(self.future.fingerprint()) {
            tracing::info!(
                "node {}: every removed member's ranges handed over",
                self.id
            );
            self.follow_membership(now);
        }
    }

    /// Joining → member once this node holds its share; leaving → left once
    /// every other member holds its share of the ring without this node.
    fn advance_status(&mut self, now: Millis) {
        let target = self.future.fingerprint();
        let me = self.members.me();
        match me.status {
            // A replacement is in no ring until the member it replaces is
            // removed: holding its share of a ring without it means nothing.
            MemberStatus::Joining if me.synced == target && self.future.contains(&self.id) => {
                tracing::info!("node {}: joined, now owns ranges", self.id);
                self.members
                    .update_me(|me| me.status = MemberStatus::Member);
            }
            MemberStatus::Leaving if self.others_synced(target) => {
                tracing::info!("node {}: every new owner has its data; left", self.id);
                self.members.update_me(|me| me.status = MemberStatus::Left);
                self.left_at = Some(now);
                for (to, msg) in self.members.announce() {
                    self.send_gossip(to, msg);
                }
            }
            _ => {}
        }
    }

    /// Send a gossip message cut to one batch (a big member list goes over
    /// several rounds rather than in one oversized frame).
    fn send_gossip(&mut self, to: NodeId, msg: GossipMsg) {
        let limits = self.settings.batch_limits(MEMBERS_PER_MESSAGE);
        self.send(to, Message::Gossip(msg.within(limits)));
    }

    /// Every other live member reports holding its share of ring `target`.
    pub(super) fn others_synced(&self, target: u64) -> bool {
        self.members
            .members()
            .filter(|m| m.id != self.id && self.members.owes_share(m))
            .all(|m| m.synced == target)
    }

    /// Before the first message to a seed's pseudo-id, tell the shell where
    /// it is.
    fn connect_seed(&mut self, to: &NodeId) {
        if let Some(addr) = self.members.seeds().iter().find(|a| seed_id(a) == *to) {
            self.effects.push(Effect::Connect {
                node: to.clone(),
                addr: addr.clone(),
            });
        }
    }

    /// splitmix64: deterministic for a given seed, good enough to pick peers.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
