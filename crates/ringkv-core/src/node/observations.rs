//! Single measurements the node makes while it works — how long a replica
//! took to answer, how many siblings a read returned — handed to the shell
//! as data, like effects, for its latency and size histograms. The core
//! only collects them; which buckets and which metrics crate is the
//! shell's business.

use super::Node;
use crate::store::Store;
use crate::Millis;

/// Measurements kept between two drains, per kind, at most. The server
/// drains after every batch of events, so this is reached only by a caller
/// that never drains (the simulator); later measurements are then lost,
/// never memory.
pub const MAX_OBSERVATIONS: usize = 16_384;

/// Measurements since the last [`Node::take_observations`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observations {
    /// A replica's answer to a read or write this node coordinated: ms
    /// from the operation's start to the answer (the node's own copy is
    /// not counted).
    pub replica_round_trips_ms: Vec<Millis>,
    /// Live siblings (values, tombstones left out) of each successful read
    /// this node coordinated.
    pub siblings_per_read: Vec<usize>,
}

/// Keep `value` unless `into` holds [`MAX_OBSERVATIONS`] already.
fn keep<T>(into: &mut Vec<T>, value: T) {
    if into.len() < MAX_OBSERVATIONS {
        into.push(value);
    }
}

impl<S: Store> Node<S> {
    /// The measurements since the last call (see [`Observations`]).
    pub fn take_observations(&mut self) -> Observations {
        std::mem::take(&mut self.observations)
    }

    pub(super) fn observe_round_trip(&mut self, ms: Millis) {
        keep(&mut self.observations.replica_round_trips_ms, ms);
    }

    pub(super) fn observe_siblings(&mut self, live: usize) {
        keep(&mut self.observations.siblings_per_read, live);
    }
}
