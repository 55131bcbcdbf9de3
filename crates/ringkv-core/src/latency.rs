//! How long a peer usually takes to answer, and so when a request has
//! waited for it long enough to be sent to the next candidate too.
//!
//! A request stuck on one slow or silent node (paused, partitioned, losing
//! packets, its disk stalling) must not wait out the request timeout: the
//! coordinator *hedges* — asks the next candidate as well once the first
//! is later than its recent behaviour says it should be, and takes the
//! first answer (Dean and Barroso, "The Tail at Scale", CACM 2013;
//! Cassandra's `speculative_retry`). The estimate per peer and kind of
//! request is TCP's retransmission timer (Jacobson and Karels; RFC 6298):
//! a smoothed round trip plus four times its mean deviation, so a peer
//! with steady answers gets a tight deadline and an erratic one a loose
//! one. The deadline is clamped: never below [`MIN_HEDGE_MS`] (the node
//! ticks every 10 ms, and one fsync is a few ms), never above the
//! configured maximum (a peer never heard from gets the maximum).

use crate::{Millis, NodeId};
use std::collections::BTreeMap;

/// The shortest hedge deadline, ms.
pub const MIN_HEDGE_MS: Millis = 30;

/// Peers × kinds tracked at most; a cluster larger than this shares the
/// maximum deadline for the peers left out.
const MAX_TRACKED: usize = 4096;

/// What was asked: a forwarded client operation (the peer coordinates a
/// whole quorum, fsync included) or one replica's read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RequestKind {
    Forward,
    Replica,
}

/// Smoothed round trip and its mean deviation, in ms × 8 (RFC 6298's
/// fixed-point form, so integer updates lose little).
#[derive(Clone, Copy, Debug)]
struct Estimate {
    srtt8: u64,
    rttvar8: u64,
}

/// Round-trip estimates per peer and kind of request.
#[derive(Clone, Debug)]
pub struct Latency {
    estimates: BTreeMap<(NodeId, RequestKind), Estimate>,
    max_ms: Millis,
}

impl Latency {
    /// Deadlines between [`MIN_HEDGE_MS`] and `max_ms` (at least the min).
    pub fn new(max_ms: Millis) -> Self {
        Latency {
            estimates: BTreeMap::new(),
            max_ms: max_ms.max(MIN_HEDGE_MS),
        }
    }

    /// `peer` answered a `kind` request after `rtt_ms`.
    pub fn observe(&mut self, peer: &NodeId, kind: RequestKind, rtt_ms: Millis) {
        let sample8 = rtt_ms.min(self.max_ms).saturating_mul(8);
        let key = (peer.clone(), kind);
        if let Some(e) = self.estimates.get_mut(&key) {
            // rttvar = 3/4 rttvar + 1/4 |srtt - r|; srtt = 7/8 srtt + 1/8 r.
            let dev = e.srtt8.abs_diff(sample8);
            e.rttvar8 = e.rttvar8 - e.rttvar8 / 4 + dev / 4;
            e.srtt8 = e.srtt8 - e.srtt8 / 8 + sample8 / 8;
        } else if self.estimates.len() < MAX_TRACKED {
            let first = Estimate {
                srtt8: sample8,
                rttvar8: sample8 / 2,
            };
            self.estimates.insert(key, first);
        }
    }

    /// How long to wait for `peer` before hedging, ms.
    pub fn deadline(&self, peer: &NodeId, kind: RequestKind) -> Millis {
        match self.estimates.get(&(peer.clone(), kind)) {
            None => self.max_ms,
            Some(e) => ((e.srtt8 + 4 * e.rttvar8) / 8).clamp(MIN_HEDGE_MS, self.max_ms),
        }
    }

    /// The longest deadline among `peers` (the maximum when there are none).
    pub fn slowest(&self, peers: &[NodeId], kind: RequestKind) -> Millis {
        peers
            .iter()
            .map(|p| self.deadline(p, kind))
            .max()
            .unwrap_or(self.max_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_peer_gets_the_maximum() {
        let l = Latency::new(250);
        assert_eq!(l.deadline(&"a".into(), RequestKind::Forward), 250);
    }

    #[test]
    fn steady_answers_give_a_tight_deadline_and_erratic_ones_a_loose_one() {
        let mut steady = Latency::new(250);
        let mut erratic = Latency::new(250);
        for i in 0..50 {
            steady.observe(&"a".into(), RequestKind::Replica, 5);
            erratic.observe(
                &"a".into(),
                RequestKind::Replica,
                if i % 2 == 0 { 2 } else { 40 },
            );
        }
        let tight = steady.deadline(&"a".into(), RequestKind::Replica);
        let loose = erratic.deadline(&"a".into(), RequestKind::Replica);
        assert_eq!(tight, MIN_HEDGE_MS, "5 ms answers: the floor");
        assert!(loose > 60 && loose < 250, "{loose}");
    }

    #[test]
    fn kinds_are_apart_and_a_stall_is_capped() {
        let mut l = Latency::new(200);
        l.observe(&"a".into(), RequestKind::Forward, 10_000);
        assert_eq!(l.deadline(&"a".into(), RequestKind::Forward), 200);
        assert_eq!(l.deadline(&"a".into(), RequestKind::Replica), 200);
        assert_eq!(l.slowest(&[], RequestKind::Replica), 200);
    }
}
