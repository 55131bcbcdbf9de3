//! The state of one client operation in flight on its coordinator: who was
//! asked, who answered, and when the quorum is reached or lost.
//!
//! These are plain data plus counting rules; [`crate::node::Node`] feeds them
//! replies, unreachability reports and ticks, and turns their verdicts into
//! messages.

use crate::message::{ClientOp, RequestId};
use crate::siblings::SiblingSet;
use crate::version::VersionVector;
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
#[derive(Clone, Debug)]
pub struct Quorum {
    pub needed: usize,
    replicas: BTreeSet<NodeId>,
    ok: BTreeSet<NodeId>,
    failed: BTreeSet<NodeId>,
    decided: bool,
}

impl Quorum {
    pub fn new(needed: usize, replicas: impl IntoIterator<Item = NodeId>) -> Self {
        Quorum {
            needed,
            replicas: replicas.into_iter().collect(),
            ok: BTreeSet::new(),
            failed: BTreeSet::new(),
            decided: false,
        }
    }

    pub fn replicas(&self) -> &BTreeSet<NodeId> {
        &self.replicas
    }

    pub fn succeeded(&self) -> usize {
        self.ok.len()
    }

    /// True once every replica has answered one way or the other.
    pub fn complete(&self) -> bool {
        self.ok.len() + self.failed.len() == self.replicas.len()
    }

    /// True when `node` is a replica that has not answered yet.
    pub fn awaits(&self, node: &NodeId) -> bool {
        self.replicas.contains(node) && !self.ok.contains(node) && !self.failed.contains(node)
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

    fn verdict(&mut self) -> Option<Verdict> {
        if self.ok.len() >= self.needed {
            self.decide(Verdict::Reached)
        } else if self.replicas.len() - self.failed.len() < self.needed {
            self.decide(Verdict::Lost {
                answered: self.ok.len(),
            })
        } else {
            None
        }
    }

    fn decide(&mut self, verdict: Verdict) -> Option<Verdict> {
        if self.decided {
            return None;
        }
        self.decided = true;
        Some(verdict)
    }
}

/// A write (PUT or tombstone) waiting for W acknowledgements.
#[derive(Debug)]
pub struct PutOp {
    pub origin: Origin,
    pub quorum: Quorum,
    /// The clock of the version written, returned to the client.
    pub written: VersionVector,
}

/// What a read is for: answering the client, or finding what a
/// context-less DELETE should delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadPurpose {
    Get,
    DeleteAfterRead { w: Option<usize> },
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

    /// Replicas whose reply lacks something `merged` has (read repair).
    pub fn stale_replicas(&self, merged: &SiblingSet) -> Vec<NodeId> {
        self.replies
            .iter()
            .filter(|(_, set)| *set != merged)
            .map(|(node, _)| node.clone())
            .collect()
    }
}

/// A request this node forwarded to the key's coordinator.
#[derive(Debug)]
pub struct ForwardOp {
    pub client: ClientId,
    pub op: ClientOp,
    pub target: NodeId,
    /// Preference-list nodes still to try if the target does not answer.
    pub fallbacks: Vec<NodeId>,
}

/// One operation in flight, with the time it gives up.
#[derive(Debug)]
pub struct InFlight {
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
    fn strangers_do_not_count() {
        let mut q = Quorum::new(1, nodes(&["a"]));
        assert_eq!(q.record(&"z".into(), true), None);
        assert_eq!(q.succeeded(), 0);
    }
}
