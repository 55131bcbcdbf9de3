//! What the node shed, by queue and cause: the one place every refusal,
//! drop and pause of a bounded queue is counted. `/status` shows it as
//! `load.shed`; a metrics exporter reads [`Shedding::iter`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where load was shed. What a count means depends on the queue: a
/// client request refused, a peer's message or a frame dropped, or a
/// connection's reading paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Queue {
    /// Client requests refused at the node thread's queue (overload error).
    NodeClients,
    /// Peer messages dropped at the node thread's queue.
    NodePeers,
    /// Client operations refused by the node at `in_flight_ops` (counted
    /// by the protocol core, mirrored here).
    InFlight,
    /// Frames dropped from a peer's outbound queue.
    PeerOutbound,
    /// Times a RESP connection stopped reading because its pipeline was
    /// full (backpressure: nothing is refused).
    RespPipeline,
    /// RESP connections refused at `resp_connections`.
    RespConnections,
    /// HTTP requests answered 503 at `http_requests`.
    HttpRequests,
    /// HTTP connections refused at `http_connections`.
    HttpConnections,
}

/// Why: which limit was reached, or what else made the item go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// The queue held its limit of items.
    Count,
    /// The queue held its limit of bytes.
    Bytes,
    /// Frames of a batch that could not be written: the peer could not be
    /// reached or stopped reading (the transport reports it unreachable).
    Unreachable,
}

impl Queue {
    pub const ALL: [Queue; 8] = [
        Queue::NodeClients,
        Queue::NodePeers,
        Queue::InFlight,
        Queue::PeerOutbound,
        Queue::RespPipeline,
        Queue::RespConnections,
        Queue::HttpRequests,
        Queue::HttpConnections,
    ];

    /// The name in `/status` (and the label a metric would carry).
    pub fn name(self) -> &'static str {
        match self {
            Queue::NodeClients => "node_clients",
            Queue::NodePeers => "node_peers",
            Queue::InFlight => "in_flight",
            Queue::PeerOutbound => "peer_outbound",
            Queue::RespPipeline => "resp_pipeline",
            Queue::RespConnections => "resp_connections",
            Queue::HttpRequests => "http_requests",
            Queue::HttpConnections => "http_connections",
        }
    }

    /// The causes that apply to this queue (the others stay zero).
    pub fn causes(self) -> &'static [Cause] {
        match self {
            Queue::NodeClients | Queue::NodePeers | Queue::RespPipeline => {
                &[Cause::Count, Cause::Bytes]
            }
            Queue::PeerOutbound => &[Cause::Count, Cause::Bytes, Cause::Unreachable],
            Queue::InFlight
            | Queue::RespConnections
            | Queue::HttpRequests
            | Queue::HttpConnections => &[Cause::Count],
        }
    }
}

impl Cause {
    const ALL: usize = 3;

    pub fn name(self) -> &'static str {
        match self {
            Cause::Count => "count",
            Cause::Bytes => "bytes",
            Cause::Unreachable => "unreachable",
        }
    }
}

/// Counters of shed load, shared by every front end, the transport and
/// the node thread. Lock-free; counts only go up.
#[derive(Debug, Default)]
pub struct Shedding {
    counts: [[AtomicU64; Cause::ALL]; Queue::ALL.len()],
}

impl Shedding {
    /// One more item of `queue` shed for `cause`.
    pub fn record(&self, queue: Queue, cause: Cause) {
        self.record_many(queue, cause, 1);
    }

    pub fn record_many(&self, queue: Queue, cause: Cause, n: u64) {
        debug_assert!(
            queue.causes().contains(&cause),
            "{queue:?} has no {cause:?}"
        );
        self.cell(queue, cause).fetch_add(n, Ordering::Relaxed);
    }

    /// Copy a counter kept elsewhere (the core's `shed_ops`), which only
    /// goes up too.
    pub fn mirror(&self, queue: Queue, cause: Cause, total: u64) {
        self.cell(queue, cause).fetch_max(total, Ordering::Relaxed);
    }

    pub fn get(&self, queue: Queue, cause: Cause) -> u64 {
        self.cell(queue, cause).load(Ordering::Relaxed)
    }

    /// Every (queue, cause) that applies, with its count.
    pub fn iter(&self) -> impl Iterator<Item = (Queue, Cause, u64)> + '_ {
        Queue::ALL.into_iter().flat_map(move |queue| {
            queue
                .causes()
                .iter()
                .map(move |cause| (queue, *cause, self.get(queue, *cause)))
        })
    }

    /// As `/status` shows it: `{"node_clients": {"count": 0, "bytes": 0}, …}`.
    pub fn report(&self) -> ShedReport {
        let mut report = ShedReport::new();
        for (queue, cause, n) in self.iter() {
            report
                .entry(queue.name())
                .or_default()
                .insert(cause.name(), n);
        }
        report
    }

    fn cell(&self, queue: Queue, cause: Cause) -> &AtomicU64 {
        &self.counts[queue as usize][cause as usize]
    }
}

/// Queue name → cause name → count.
pub type ShedReport = BTreeMap<&'static str, BTreeMap<&'static str, u64>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_queue_and_cause_and_reported_by_name() {
        let shed = Shedding::default();
        shed.record(Queue::NodeClients, Cause::Bytes);
        shed.record_many(Queue::PeerOutbound, Cause::Unreachable, 5);
        shed.mirror(Queue::InFlight, Cause::Count, 7);
        shed.mirror(Queue::InFlight, Cause::Count, 3);
        let report = shed.report();
        assert_eq!(report["node_clients"]["bytes"], 1);
        assert_eq!(report["node_clients"]["count"], 0);
        assert_eq!(report["peer_outbound"]["unreachable"], 5);
        assert_eq!(report["in_flight"]["count"], 7);
        assert_eq!(report.len(), Queue::ALL.len());
        assert!(!report["http_requests"].contains_key("bytes"));
    }
}
