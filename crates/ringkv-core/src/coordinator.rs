//! The state of one client operation in flight on its coordinator: who was
//! asked, who answered, and when the quorum is reached or lost.
//!
//! These are plain data plus counting rules; [`crate::node::Node`] feeds them
//! replies, unreachability reports and ticks, and turns their verdicts into
//! messages.

use crate::message::{ClientOp, RequestId};
use crate::siblings::SiblingSet;
use crate::version::{CausalContext, Dot};
use crate::{Millis, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// A front end's handle for one waiting client request.
pub type ClientId = u64;

/// Who is waiting for an operation's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client of this node's front ends.
    Client(ClientId),
    /// Another node that forwarded the request to us (one hop).
    Peer { node: NodeId, req: RequestId },
}

/// The verdict of a quorum, reached at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Reached,
    /// Too many replicas failed or the deadline passed; `answered` succeeded.
    Lost {
        answered: usize,
    },
}

/// Counts successes and failures among `replicas` until `needed` succeed or
/// so many fail that `needed` can no longer be reached. Each replica's first
/// answer counts; later duplicates are ignored.
///
/// Sloppy quorum: a write may add *stand-ins* for replicas that are down,
/// failed or silent. A stand-in counts like any replica (as in Dynamo), and
/// the replica it stands in for still counts if it answers after all, so the
/// set only grows. `primaries_needed` (Riak's PW) demands that at least that
/// many successes come from the original replicas (the preference list).
#[derive(Clone, Debug)]
pub struct Quorum {
    pub needed: usize,
    /// Of the successes, how many must be primaries (0: no demand).
    pub primaries_needed: usize,
    /// The replicas the operation started with.
    primaries: BTreeSet<NodeId>,
    /// While a join or leave is pending, the key's preference list in the
    /// future ring: PW must be met there too, or a strict read on the new
    /// ring may miss the write (see [`Quorum::with_future_primaries`]).
    future: Option<BTreeSet<NodeId>>,
    /// Primaries, pending future replicas and stand-ins.
    replicas: BTreeSet<NodeId>,
    /// Stand-in → the primary whose copy it keeps.
    stand_ins: BTreeMap<NodeId, NodeId>,
    /// Replicas that have a stand-in already.
    covered: BTreeSet<NodeId>,
    ok: BTreeSet<NodeId>,
    failed: BTreeSet<NodeId>,
    decided: bool,
}

impl Quorum {
    pub fn new(needed: usize, replicas: impl IntoIterator<Item = NodeId>) -> Self {
        let primaries: BTreeSet<NodeId> = replicas.into_iter().collect();
        Quorum {
            needed,
            primaries_needed: 0,
            replicas: primaries.clone(),
            primaries,
            future: None,
            stand_ins: BTreeMap::new(),
            covered: BTreeSet::new(),
            ok: BTreeSet::new(),
            failed: BTreeSet::new(),
            decided: false,
        }
    }

    /// Demand `pw` successes from the primaries (PW).
    pub fn with_primaries_needed(mut self, pw: usize) -> Self {
        self.primaries_needed = pw;
        self
    }

    /// While the ring is changing, demand PW successes from `future` (the
    /// key's preference list in the future ring) as well as from the
    /// current one: the nodes about to replicate the key count only after
    /// they acknowledged (Cassandra counts pending replicas the same way).
    /// A copy sent to a pending replica that already fetched its ranges is
    /// otherwise the only way the write reaches it: if it is lost, a write
    /// that PW current replicas hold may be on one future replica only,
    /// and a strict read on the new ring misses it (simulator seed 831).
    /// Pending replicas get no stand-in: a hint does not count for PW.
    pub fn with_future_primaries(mut self, future: impl IntoIterator<Item = NodeId>) -> Self {
        let future: BTreeSet<NodeId> = future.into_iter().collect();
        if self.primaries_needed == 0 || future == self.primaries {
            return self;
        }
        for pending in future.difference(&self.primaries) {
            self.replicas.insert(pending.clone());
            self.covered.insert(pending.clone());
        }
        self.future = Some(future);
        self
    }

    /// Every replica asked, stand-ins included.
    pub fn replicas(&self) -> &BTreeSet<NodeId> {
        &self.replicas
    }

    /// The replicas the operation started with.
    pub fn primaries(&self) -> &BTreeSet<NodeId> {
        &self.primaries
    }

    pub fn succeeded(&self) -> usize {
        self.ok.len()
    }

    /// Successes that came from primaries: of the current preference list
    /// and, while the ring changes, of the future one (the lesser count).
    pub fn primary_successes(&self) -> usize {
        let now = self.ok.intersection(&self.primaries).count();
        match &self.future {
            Some(future) => now.min(self.ok.intersection(future).count()),
            None => now,
        }
    }

    /// True once the verdict was given.
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// True once every replica has answered one way or the other.
    pub fn complete(&self) -> bool {
        self.ok.len() + self.failed.len() == self.replicas.len()
    }

    /// True when `node` is a replica that has not answered yet.
    pub fn awaits(&self, node: &NodeId) -> bool {
        self.replicas.contains(node) && !self.ok.contains(node) && !self.failed.contains(node)
    }

    /// Count `stand_in` in place of `replica` (down, failed or silent) from
    /// now on; `replica` may still answer, and a stand-in may need a stand-in
    /// of its own.
    pub fn add_stand_in(&mut self, replica: &NodeId, stand_in: NodeId) {
        let owner = self.owner_of(replica);
        self.covered.insert(replica.clone());
        self.replicas.insert(stand_in.clone());
        self.stand_ins.insert(stand_in, owner);
    }

    /// The primary whose copy `replica` keeps: itself unless a stand-in.
    pub fn owner_of(&self, replica: &NodeId) -> NodeId {
        self.stand_ins.get(replica).unwrap_or(replica).clone()
    }

    /// True when `replica` has a stand-in, or needs none (a pending future
    /// replica, or one whose copy the coordinator already keeps a hint of).
    pub fn is_covered(&self, replica: &NodeId) -> bool {
        self.covered.contains(replica)
    }

    /// `replica`'s copy is taken care of without a stand-in counted for it
    /// (the coordinator keeps a hint of it).
    pub fn mark_covered(&mut self, replica: &NodeId) {
        self.covered.insert(replica.clone());
    }

    /// True when `replica` has not answered, has no stand-in yet and the
    /// verdict is still open: a failure or silence of it calls for one.
    pub fn needs_stand_in(&self, replica: &NodeId) -> bool {
        !self.decided && self.awaits(replica) && !self.covered.contains(replica)
    }

    /// True when a failure of `node` would lose the quorum: too few others
    /// could still succeed. A read then asks a stand-in in its place first
    /// (reads add stand-ins only to make up a shortfall).
    pub fn lost_without(&self, node: &NodeId) -> bool {
        let left = self.possible(&self.replicas) - usize::from(self.awaits(node));
        left < self.needed
    }

    /// Replicas that [need a stand-in](Self::needs_stand_in) if silent.
    pub fn silent(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .filter(|r| self.needs_stand_in(r))
            .cloned()
            .collect()
    }

    /// Record `node`'s answer; returns the verdict the first time it is known.
    pub fn record(&mut self, node: &NodeId, success: bool) -> Option<Verdict> {
        if self.awaits(node) {
            let set = if success {
                &mut self.ok
            } else {
                &mut self.failed
            };
            set.insert(node.clone());
        }
        self.verdict()
    }

    /// The deadline passed: whatever has not been decided is lost.
    pub fn expire(&mut self) -> Option<Verdict> {
        self.verdict().or_else(|| {
            self.decide(Verdict::Lost {
                answered: self.ok.len(),
            })
        })
    }

    /// True when it is the primaries rule (PW) that is not met: W is, or PW
    /// can no longer be.
    pub fn short_of_primaries(&self) -> bool {
        self.primary_successes() < self.primaries_needed
            && (self.ok.len() >= self.needed || self.possible_primaries() < self.primaries_needed)
    }

    fn verdict(&mut self) -> Option<Verdict> {
        if self.ok.len() >= self.needed && self.primary_successes() >= self.primaries_needed {
            self.decide(Verdict::Reached)
        } else if self.possible(&self.replicas) < self.needed
            || self.possible_primaries() < self.primaries_needed
        {
            self.decide(Verdict::Lost {
                answered: self.ok.len(),
            })
        } else {
            None
        }
    }

    /// Primary successes still possible, in both lists while the ring
    /// changes.
    fn possible_primaries(&self) -> usize {
        let now = self.possible(&self.primaries);
        match &self.future {
            Some(future) => now.min(self.possible(future)),
            None => now,
        }
    }

    /// Successes still possible among `among`: not failed.
    fn possible(&self, among: &BTreeSet<NodeId>) -> usize {
        among.difference(&self.failed).count()
    }

    fn decide(&mut self, verdict: Verdict) -> Option<Verdict> {
        if self.decided {
            return None;
        }
        self.decided = true;
        Some(verdict)
    }
}

/// The acknowledgements a write asks for: W, and how many of them must come
/// from the key's preference list (PW); `None` takes the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteAcks {
    pub w: Option<usize>,
    pub pw: Option<usize>,
}

/// A write (PUT or tombstone) waiting for W acknowledgements.
#[derive(Debug)]
pub struct PutOp {
    pub origin: Origin,
    pub quorum: Quorum,
    /// The new version's dot, returned to the client.
    pub dot: Dot,
    /// The context returned to the client for its next write.
    pub returned: CausalContext,
    /// What the replicas are sent, kept for stand-ins added later.
    pub key: Vec<u8>,
    pub siblings: SiblingSet,
    /// When replicas that have not answered yet get stand-ins (once).
    pub silent_after: Option<Millis>,
    /// For a CRDT update, what it was and its reply (the write's dot is
    /// not returned).
    pub updated: Option<Updated>,
}

/// A CRDT update being written: its reply once the write's quorum is
/// reached, and what to say when it is not.
#[derive(Clone, Debug)]
pub struct Updated {
    pub name: &'static str,
    /// A retry would count it twice (see [`crate::crdt::Update::counts_twice`]).
    pub applies_twice: bool,
    /// A pop: answered even short of W (see `conclude_put`).
    pub pop: bool,
    pub reply: crate::crdt::Reply,
}

/// What a read is for: answering the client, or finding what a
/// context-less DELETE should delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadPurpose {
    Get,
    DeleteAfterRead(WriteAcks),
    /// What a CRDT update applies to (see [`crate::crdt`]).
    UpdateAfterRead(crate::crdt::Update, WriteAcks),
}

/// A read waiting for R replies; it keeps collecting after answering so that
/// it can repair every stale replica once all have replied.
#[derive(Debug)]
pub struct GetOp {
    pub origin: Origin,
    pub key: Vec<u8>,
    pub purpose: ReadPurpose,
    pub quorum: Quorum,
    pub replies: BTreeMap<NodeId, SiblingSet>,
    /// When replicas that have not answered get stand-ins, if R is still
    /// short then (once).
    pub silent_after: Option<Millis>,
}

impl GetOp {
    /// Everything the replies so far know, reconciled.
    pub fn merged(&self) -> SiblingSet {
        let mut merged = SiblingSet::new();
        for set in self.replies.values() {
            merged.merge(set);
        }
        merged
    }

    /// Replicas of the preference list whose reply lacks something
    /// `merged` has (read repair). Stand-ins are not repaired: they keep
    /// hints, not copies, and hand them back on their own.
    pub fn stale_replicas(&self, merged: &SiblingSet) -> Vec<NodeId> {
        self.replies
            .iter()
            .filter(|(node, set)| *set != merged && self.quorum.primaries().contains(*node))
            .map(|(node, _)| node.clone())
            .collect()
    }
}

/// A request this node forwarded to a coordinator. It may have been sent
/// to several (hedged: the next candidate is asked too once the first is
/// late); the first answer wins.
#[derive(Debug)]
pub struct ForwardOp {
    pub client: ClientId,
    pub op: ClientOp,
    /// Coordinators asked and not yet answered, with when they were asked.
    pub asked: Vec<(NodeId, Millis)>,
    /// Candidates still to try, best first.
    pub fallbacks: Vec<NodeId>,
    /// When the next fallback is asked too, if nobody answered by then.
    pub hedge_at: Millis,
    /// A coordinator asked said it is at work on it (a write is then not
    /// hedged: it would be applied twice).
    pub accepted: bool,
    /// Until when a coordinator asked may still start it, allowing for
    /// clock skew (see `Node::forward`): a last-write-wins write moves on
    /// to another coordinator only after this.
    pub fenced_until: Millis,
}

impl ForwardOp {
    /// When `node` was asked, if it was and has not answered.
    pub fn asked_at(&self, node: &NodeId) -> Option<Millis> {
        self.asked
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, at)| *at)
    }

    /// `node` will not answer (it failed or refused): forget it.
    pub fn drop_target(&mut self, node: &NodeId) {
        self.asked.retain(|(n, _)| n != node);
    }
}

/// One operation in flight, with when it started and when it gives up.
#[derive(Debug)]
pub struct InFlight {
    pub started: Millis,
    pub deadline: Millis,
    pub state: OpState,
}

#[derive(Debug)]
pub enum OpState {
    Put(PutOp),
    Get(GetOp),
    Forward(ForwardOp),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<NodeId> {
        ids.iter().map(|&s| s.into()).collect()
    }

    #[test]
    fn quorum_is_reached_once_with_w_successes() {
        let mut q = Quorum::new(2, nodes(&["a", "b", "c"]));
        assert_eq!(q.record(&"a".into(), true), None);
        assert_eq!(q.record(&"a".into(), true), None, "duplicates do not count");
        assert_eq!(q.record(&"b".into(), true), Some(Verdict::Reached));
        assert_eq!(q.record(&"c".into(), true), None, "decided only once");
        assert!(q.complete());
    }

    #[test]
    fn quorum_is_lost_as_soon_as_it_cannot_be_reached() {
        let mut q = Quorum::new(3, nodes(&["a", "b", "c"]));
        assert_eq!(q.record(&"a".into(), true), None);
        assert_eq!(
            q.record(&"b".into(), false),
            Some(Verdict::Lost { answered: 1 })
        );
    }

    #[test]
    fn expiry_loses_an_undecided_quorum_and_names_who_answered() {
        let mut q = Quorum::new(2, nodes(&["a", "b", "c"]));
        q.record(&"a".into(), true);
        assert_eq!(q.expire(), Some(Verdict::Lost { answered: 1 }));
        assert_eq!(q.expire(), None);
    }

    #[test]
    fn stand_in_acks_count_towards_w() {
        let mut q = Quorum::new(2, nodes(&["a", "b", "c"]));
        q.add_stand_in(&"b".into(), "d".into());
        assert_eq!(q.record(&"b".into(), false), None);
        assert_eq!(q.record(&"a".into(), true), None);
        assert_eq!(q.record(&"d".into(), true), Some(Verdict::Reached));
    }

    #[test]
    fn a_replaced_replica_cannot_lose_the_quorum_by_itself() {
        let mut q = Quorum::new(3, nodes(&["a", "b", "c"]));
        q.record(&"a".into(), true);
        q.add_stand_in(&"c".into(), "d".into());
        assert_eq!(q.record(&"c".into(), false), None, "d may still ack");
        assert_eq!(q.record(&"b".into(), true), None);
        assert_eq!(q.record(&"d".into(), true), Some(Verdict::Reached));
    }

    #[test]
    fn a_late_ack_from_a_silent_replica_still_counts() {
        let mut q = Quorum::new(3, nodes(&["a", "b", "c"]));
        q.record(&"a".into(), true);
        q.record(&"b".into(), true);
        q.add_stand_in(&"c".into(), "d".into());
        assert!(!q.needs_stand_in(&"c".into()), "covered once");
        assert_eq!(q.record(&"c".into(), true), Some(Verdict::Reached));
        assert_eq!(q.record(&"d".into(), true), None);
        assert!(q.complete(), "the set grew to four");
    }

    #[test]
    fn a_stand_in_of_a_stand_in_keeps_the_copy_of_the_same_owner() {
        let mut q = Quorum::new(2, nodes(&["a", "b", "c"]));
        q.add_stand_in(&"c".into(), "d".into());
        q.add_stand_in(&"d".into(), "e".into());
        assert_eq!(q.owner_of(&"e".into()), "c".into());
        assert_eq!(q.owner_of(&"a".into()), "a".into());
    }

    #[test]
    fn silent_replicas_are_the_unanswered_ones_without_a_stand_in() {
        let mut q = Quorum::new(3, nodes(&["a", "b", "c"]));
        q.record(&"a".into(), true);
        q.add_stand_in(&"b".into(), "d".into());
        assert_eq!(q.silent(), nodes(&["c", "d"]));
        q.record(&"c".into(), true);
        q.record(&"d".into(), false);
        assert_eq!(q.record(&"b".into(), true), Some(Verdict::Reached));
        assert!(q.silent().is_empty(), "decided: nothing needs a stand-in");
    }

    #[test]
    fn pw_needs_acks_from_the_real_preference_list() {
        let mut q = Quorum::new(2, nodes(&["a", "b", "c"])).with_primaries_needed(2);
        q.add_stand_in(&"b".into(), "d".into());
        q.add_stand_in(&"c".into(), "e".into());
        q.record(&"a".into(), true);
        assert_eq!(q.record(&"d".into(), true), None, "W met, PW not");
        assert!(q.short_of_primaries());
        assert_eq!(q.record(&"c".into(), true), Some(Verdict::Reached));
        assert_eq!(q.primary_successes(), 2);
    }

    #[test]
    fn pw_is_lost_as_soon_as_too_few_primaries_are_left() {
        let mut q = Quorum::new(2, nodes(&["a", "b", "c"])).with_primaries_needed(2);
        q.add_stand_in(&"b".into(), "d".into());
        q.add_stand_in(&"c".into(), "e".into());
        q.record(&"a".into(), true);
        assert_eq!(q.record(&"b".into(), false), None);
        assert_eq!(
            q.record(&"c".into(), false),
            Some(Verdict::Lost { answered: 1 }),
            "stand-ins can still reach W, never PW"
        );
        assert!(q.short_of_primaries());
    }

    #[test]
    fn a_lost_w_is_not_blamed_on_pw() {
        let mut q = Quorum::new(3, nodes(&["a", "b", "c"])).with_primaries_needed(1);
        q.record(&"a".into(), true);
        assert_eq!(
            q.record(&"b".into(), false),
            Some(Verdict::Lost { answered: 1 })
        );
        assert!(!q.short_of_primaries());
    }

    #[test]
    fn pw_during_a_join_needs_the_future_list_too() {
        // Seed 831: n4 joins, displacing n2 from the key's list. The write
        // is acked by n1 and n2 (current list); the pending copy to n4 is
        // lost. Only n1 of the new list {n1, n3, n4} would hold it.
        let mut q = Quorum::new(2, nodes(&["n1", "n2", "n3"]))
            .with_primaries_needed(2)
            .with_future_primaries(nodes(&["n1", "n3", "n4"]));
        assert!(!q.needs_stand_in(&"n4".into()), "a hint would not count");
        q.record(&"n1".into(), true);
        q.record(&"n3".into(), false);
        assert_eq!(
            q.record(&"n2".into(), true),
            None,
            "PW met in the old list only"
        );
        assert_eq!(q.record(&"n4".into(), true), Some(Verdict::Reached));
        let mut q = Quorum::new(2, nodes(&["n1", "n2", "n3"]))
            .with_primaries_needed(2)
            .with_future_primaries(nodes(&["n1", "n3", "n4"]));
        q.record(&"n1".into(), true);
        q.record(&"n3".into(), false);
        assert_eq!(
            q.record(&"n4".into(), false),
            Some(Verdict::Lost { answered: 1 }),
            "PW can no longer be met in the future list"
        );
        assert!(q.short_of_primaries());
        let mut q = Quorum::new(2, nodes(&["n1", "n2", "n3"]))
            .with_primaries_needed(2)
            .with_future_primaries(nodes(&["n1", "n3", "n4"]));
        q.record(&"n1".into(), true);
        assert_eq!(
            q.record(&"n3".into(), true),
            Some(Verdict::Reached),
            "in both lists"
        );
    }

    #[test]
    fn strangers_do_not_count() {
        let mut q = Quorum::new(1, nodes(&["a"]));
        assert_eq!(q.record(&"z".into(), true), None);
        assert_eq!(q.succeeded(), 0);
    }
}
