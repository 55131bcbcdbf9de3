//! Forwards of operations that must not be applied twice (increments) are
//! taken once per `(sender, request)`: the transport delivers each message
//! at most once, and this makes the node not depend on it — a duplicated
//! frame (a retransmission bug, a replayed batch) is dropped instead of
//! counting an increment twice. The simulator's network duplicates
//! messages, forwards included, so the rule is exercised on every seed.

use crate::message::RequestId;
use crate::NodeId;
use std::collections::{BTreeSet, VecDeque};

/// How many recent forwards are remembered: far more than can be in flight
/// towards one node (`max_in_flight` per sender), so a duplicate arriving
/// while its original could still matter is always caught.
pub const REMEMBERED: usize = 65_536;

/// The `(sender, request)` of recent non-idempotent forwards, oldest first.
#[derive(Debug, Default)]
pub struct RecentForwards {
    order: VecDeque<(NodeId, RequestId)>,
    seen: BTreeSet<(NodeId, RequestId)>,
}

impl RecentForwards {
    /// True the first time `(from, req)` is offered, false for a duplicate.
    pub fn first(&mut self, from: &NodeId, req: RequestId) -> bool {
        let id = (from.clone(), req);
        if !self.seen.insert(id.clone()) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        assert_eq!(self.order.len(), self.seen.len(), "one entry per forward");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_is_refused_until_it_is_forgotten() {
        let mut recent = RecentForwards::default();
        let n2 = NodeId::new("n2");
        assert!(recent.first(&n2, 7));
        assert!(!recent.first(&n2, 7));
        assert!(recent.first(&NodeId::new("n3"), 7));
        for req in 100..100 + REMEMBERED as u64 {
            recent.first(&n2, req);
        }
        assert!(recent.first(&n2, 7), "forgotten after REMEMBERED others");
    }
}
