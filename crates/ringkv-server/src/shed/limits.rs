//! The `[limits]` section of a node's config: how much each queue may
//! hold before the node sheds load.
//!
//! The defaults are sized from what this kind of machine does (2 cores: a
//! 3-node cluster serves ~25,000 replicated SETs a second, about seven
//! events each, so some 60,000 events a second pass each node thread — an
//! estimate from the README's figures) and from the request timeout (2 s):
//! a queue longer than what the node can serve well within the timeout
//! only holds requests whose clients have given up by the time they are
//! served (the reasoning of CoDel and of Cassandra's native transport
//! limits), so queues are kept to a fraction of a second of work, and byte
//! limits keep a few dozen of the largest values (1 MiB), not thousands.

use super::Bound;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const MIB: usize = 1 << 20;
/// No queue needs more items than this: a million is already tens of
/// seconds of work for a node. Larger values are typos.
const MAX_COUNT: usize = 1_000_000;
/// Byte limits start at a kilobyte (below, every item would travel alone)
/// and end at 64 GiB (more than the machine's memory is no limit).
const MIN_BYTES: usize = 1024;
const MAX_BYTES: usize = 64 << 30;
/// Timeouts start at 100 ms (below, a client across a slow link could not
/// send a request's head in time) and end at an hour (longer is no bound).
const MIN_TIMEOUT_MS: u64 = 100;
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// Per-node load limits. Every one must be at least 1 (bytes: 1 KiB);
/// what exceeds one is refused, dropped or paused as its doc says, and
/// counted in `/status` under `load.shed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Events waiting for the node thread (client requests, peer messages).
    /// A client request beyond it is refused at once (HTTP 503, RESP
    /// `-BUSY`), a peer's request dropped (the protocol retries); answers
    /// to this node's own requests may use twice as much. Default 10,000:
    /// about a sixth of a second of the node thread's work.
    pub node_queue_events: usize,
    /// Bytes of those events (encoded). Default 64 MiB.
    pub node_queue_bytes: usize,
    /// Client operations the node takes on at once, as coordinator or
    /// forwarder; beyond it a new one is refused at once (see
    /// `ringkv_core::settings::Settings::max_in_flight`). Default 10,000:
    /// a healthy node has a few hundred in flight, but each waits up to the
    /// request timeout for a silent replica, and this leaves room for ~5,000
    /// operations a second to do so before shedding starts.
    pub in_flight_ops: usize,
    /// Frames queued for one peer (its writer sends them in order).
    /// Beyond it a frame is dropped and counted; the protocol's timeouts,
    /// stand-ins, hints and anti-entropy cover what it carried. Default
    /// 10,000: a live peer drains far faster; a slow or dead one cannot
    /// make the queue (and memory) grow past it.
    pub peer_queue_frames: usize,
    /// Bytes queued for one peer. Default 64 MiB: about half a second of a
    /// gigabit link, so a burst fits and a stalled peer costs at most this.
    pub peer_queue_bytes: usize,
    /// Redis protocol connections at once; one more is answered `-ERR max
    /// number of clients reached` and closed. Default 10,000 (Redis's
    /// `maxclients`).
    pub resp_connections: usize,
    /// Commands one RESP connection may have read ahead and not yet
    /// answered; beyond it the connection stops reading until replies go
    /// out (backpressure through TCP). Default 1,024.
    pub resp_pipeline_commands: usize,
    /// Bytes of those commands. Default 4 MiB: a pipeline of 1,024 SETs of
    /// 4 KiB; a single larger command still gets in alone.
    pub resp_pipeline_bytes: usize,
    /// HTTP connections at once; one more is answered `503` and closed.
    /// Default 4,096: idle keep-alive connections of many clients fit, and
    /// each costs a task and its buffers.
    pub http_connections: usize,
    /// `/kv` requests served at once; one more is answered `503` with
    /// `Retry-After: 1` at once. Default 1,024: some twenty times what
    /// 25,000 operations a second at 2 ms each keep in flight (Little's
    /// law: 50), and a bound on request bodies held (each at most
    /// `max_value_bytes`).
    pub http_requests: usize,
    /// Milliseconds an HTTP connection has to send a request's whole head
    /// (request line and headers), counted from when it opens or its
    /// previous answer went out; a connection that has not is closed
    /// (hyper's `header_read_timeout`, nginx's `client_header_timeout`).
    /// It is the idle keep-alive timeout too: without it, connections that
    /// say nothing — or a slow header a byte at a time (slowloris) — hold
    /// their `http_connections` slots for ever and lock every client out.
    /// Default 10,000 (10 s): a client anywhere sends a head well within
    /// it, and a keep-alive pool reconnects when its idle connection goes.
    pub http_header_timeout_ms: u64,
    /// Milliseconds a request's body has to arrive whole, counted from
    /// when its head did; a request whose body has not gets `408` and its
    /// connection is closed. Without it a body that stalls held its
    /// request for ever — 1,024 of them locked every client out of `/kv`
    /// (a fresh-eyes test). Bodies are read before a request takes an
    /// `http_requests` slot. Default 30,000 (30 s: a 1 MiB value at
    /// 35 KB/s), in the spirit of nginx's `client_body_timeout`.
    pub http_body_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            node_queue_events: 10_000,
            node_queue_bytes: 64 * MIB,
            in_flight_ops: ringkv_core::settings::DEFAULT_MAX_IN_FLIGHT,
            peer_queue_frames: 10_000,
            peer_queue_bytes: 64 * MIB,
            resp_connections: 10_000,
            resp_pipeline_commands: 1024,
            resp_pipeline_bytes: 4 * MIB,
            http_connections: 4096,
            http_requests: 1024,
            http_header_timeout_ms: 10_000,
            http_body_timeout_ms: 30_000,
        }
    }
}

impl Limits {
    /// Every limit within its range; the error is one sentence naming it.
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("node_queue_events", self.node_queue_events),
            ("in_flight_ops", self.in_flight_ops),
            ("peer_queue_frames", self.peer_queue_frames),
            ("resp_connections", self.resp_connections),
            ("resp_pipeline_commands", self.resp_pipeline_commands),
            ("http_connections", self.http_connections),
            ("http_requests", self.http_requests),
        ];
        for (name, value) in counts {
            if !(1..=MAX_COUNT).contains(&value) {
                return Err(format!(
                    "limits {name} = {value} must be within 1..={MAX_COUNT}"
                ));
            }
        }
        let bytes = [
            ("node_queue_bytes", self.node_queue_bytes),
            ("peer_queue_bytes", self.peer_queue_bytes),
            ("resp_pipeline_bytes", self.resp_pipeline_bytes),
        ];
        for (name, value) in bytes {
            if !(MIN_BYTES..=MAX_BYTES).contains(&value) {
                return Err(format!(
                    "limits {name} = {value} must be within {MIN_BYTES}..={MAX_BYTES} bytes"
                ));
            }
        }
        let timeouts = [
            ("http_header_timeout_ms", self.http_header_timeout_ms),
            ("http_body_timeout_ms", self.http_body_timeout_ms),
        ];
        for (name, timeout) in timeouts {
            if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&timeout) {
                return Err(format!(
                    "limits {name} = {timeout} must be within \
                     {MIN_TIMEOUT_MS}..={MAX_TIMEOUT_MS} ms"
                ));
            }
        }
        Ok(())
    }

    /// How long an HTTP connection may take to send a request's head.
    pub fn http_header_timeout(&self) -> Duration {
        Duration::from_millis(self.http_header_timeout_ms)
    }

    /// How long a request's body may take to arrive after its head.
    pub fn http_body_timeout(&self) -> Duration {
        Duration::from_millis(self.http_body_timeout_ms)
    }

    /// The node thread's queue.
    pub fn node_queue(&self) -> Bound {
        Bound {
            count: self.node_queue_events,
            bytes: self.node_queue_bytes,
        }
    }

    /// Each peer's outbound queue.
    pub fn peer_queue(&self) -> Bound {
        Bound {
            count: self.peer_queue_frames,
            bytes: self.peer_queue_bytes,
        }
    }

    /// Each RESP connection's pipeline.
    pub fn resp_pipeline(&self) -> Bound {
        Bound {
            count: self.resp_pipeline_commands,
            bytes: self.resp_pipeline_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_absurd_limits_are_refused_in_one_sentence() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let zero = Limits {
            http_requests: 0,
            ..Limits::default()
        };
        assert_eq!(
            zero.validate().unwrap_err(),
            "limits http_requests = 0 must be within 1..=1000000"
        );
        let huge = Limits {
            peer_queue_bytes: usize::MAX,
            ..Limits::default()
        };
        assert!(huge.validate().unwrap_err().contains("peer_queue_bytes"));
        let tiny = Limits {
            node_queue_bytes: 10,
            ..Limits::default()
        };
        assert!(tiny.validate().unwrap_err().contains("1024..="));
        let hasty = Limits {
            http_header_timeout_ms: 0,
            ..Limits::default()
        };
        assert_eq!(
            hasty.validate().unwrap_err(),
            "limits http_header_timeout_ms = 0 must be within 100..=3600000 ms"
        );
    }
}
