//! Load shedding: every queue in the server is bounded, and what comes in
//! beyond a bound is refused early, dropped or held back — never queued
//! without limit.
//!
//! One design for every queue: a [`Bound`] in items and bytes, a
//! [`Budget`] that each item takes a [`Permit`] from on the way in and
//! gives back when handled, and one [`Shedding`] counter per queue and
//! cause. What happens at the bound depends on who is asking:
//!
//! | queue | limit (`[limits]`) | beyond it |
//! |---|---|---|
//! | node thread's events | `node_queue_events`, `node_queue_bytes` | client request: refused at once (HTTP 503 + `Retry-After`, RESP `-BUSY`); peer request: dropped; an answer to this node's own request: admitted up to twice the bound |
//! | operations in flight (core) | `in_flight_ops` | new client operation refused at once |
//! | each peer's outbound frames | `peer_queue_frames`, `peer_queue_bytes` | frame dropped |
//! | a RESP connection's pipeline | `resp_pipeline_commands`, `resp_pipeline_bytes` | the connection stops reading (backpressure) |
//! | RESP connections | `resp_connections` | refused with `-ERR max number of clients reached` |
//! | HTTP `/kv` requests | `http_requests` | `503`, `Retry-After: 1` |
//! | HTTP connections | `http_connections` | `503` and closed; [`http::OPERATOR_RESERVE`] more for operators' paths only |
//! | an HTTP connection's request head | `http_header_timeout_ms` | closed (see [`crate::http_serve`]) |
//!
//! Nothing already acknowledged is touched: shedding refuses or drops
//! only what has not been taken on (a client request before the node
//! starts it) or what the protocol already tolerates losing (a peer
//! message or frame: quorums time out and try stand-ins, hints and
//! anti-entropy repair replicas that missed a write). A write acknowledged
//! to its client is on W replicas' disks before the acknowledgement, and
//! no queue holds anything those copies depend on.

mod budget;
mod counters;
pub mod http;
mod limits;

pub use budget::{Bound, Budget, Full, Held, Permit, Priority};
pub use counters::{Cause, Queue, ShedReport, Shedding};
pub use limits::Limits;

impl From<Full> for Cause {
    fn from(full: Full) -> Cause {
        match full {
            Full::Count => Cause::Count,
            Full::Bytes => Cause::Bytes,
        }
    }
}
