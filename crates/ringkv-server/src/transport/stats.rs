//! The transport's counters, kept as plain atomics where things happen and
//! read whole by `/metrics` at scrape time ([`TransportCounts`]): the
//! transport knows nothing of the metrics crate.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// Why a frame queued for a peer, or about to be, was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropCause {
    /// Written to a connection that then failed, or waiting for a
    /// connect that failed: the peer is reported unreachable.
    Unreachable,
    /// The peer was refused for its cluster settings.
    Refused,
    /// No address is known for the peer.
    UnknownPeer,
    /// It encodes larger than `max_frame_bytes`.
    TooLarge,
    /// It could not be serialized at all.
    Unencodable,
    /// The link is cut by fault injection (tests).
    Blocked,
    /// The peer's outbound queue was at its bound (`[limits]`).
    QueueFull,
}

impl DropCause {
    pub const ALL: [DropCause; 7] = [
        DropCause::Unreachable,
        DropCause::Refused,
        DropCause::UnknownPeer,
        DropCause::TooLarge,
        DropCause::Unencodable,
        DropCause::Blocked,
        DropCause::QueueFull,
    ];

    /// The `cause` label of `ringkv_transport_dropped_frames_total`.
    pub fn label(self) -> &'static str {
        match self {
            DropCause::Unreachable => "unreachable",
            DropCause::Refused => "refused",
            DropCause::UnknownPeer => "unknown_peer",
            DropCause::TooLarge => "too_large",
            DropCause::Unencodable => "unencodable",
            DropCause::Blocked => "blocked",
            DropCause::QueueFull => "queue_full",
        }
    }
}

/// Live counters, shared by the transport's tasks.
#[derive(Debug, Default)]
pub(crate) struct TransportStats {
    pub(crate) accepted: AtomicU64,
    inbound_established: AtomicU64,
    inbound_open: AtomicI64,
    outbound_established: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    outbound_open: AtomicI64,
    queued_frames: AtomicI64,
    dropped: [AtomicU64; DropCause::ALL.len()],
}

/// A snapshot of [`TransportStats`]: counters since start-up and gauges now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportCounts {
    /// TCP connections the listener accepted, rejected ones included.
    pub accepted: u64,
    /// Inbound connections that passed their handshake, and those open now.
    pub inbound_established: u64,
    pub inbound_open: u64,
    /// Outbound connections established, and those open now.
    pub outbound_established: u64,
    pub outbound_open: u64,
    /// Outbound connections established to a peer whose writer had a
    /// connection before (it broke, or the peer was unreachable).
    pub reconnects: u64,
    /// Outbound connects that failed (refused, timed out, handshake).
    pub connect_failures: u64,
    /// Frames waiting in the per-peer outbound queues.
    pub queued_frames: u64,
    /// Frames not delivered, per cause.
    pub dropped: Vec<(DropCause, u64)>,
}

impl TransportStats {
    pub(crate) fn dropped(&self, cause: DropCause, frames: usize) {
        let index = DropCause::ALL.iter().position(|c| *c == cause).unwrap_or(0);
        self.dropped[index].fetch_add(frames as u64, Ordering::Relaxed);
    }

    pub(crate) fn connect_failed(&self) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn queued(&self, frames: i64) {
        self.queued_frames.fetch_add(frames, Ordering::Relaxed);
    }

    /// An outbound connection is up; `again` when its writer had one before.
    /// It counts as open until the returned guard drops.
    pub(crate) fn outbound_opened(self: &Arc<Self>, again: bool) -> OpenGuard {
        self.outbound_established.fetch_add(1, Ordering::Relaxed);
        if again {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        OpenGuard::new(self.clone(), |s| &s.outbound_open)
    }

    /// An inbound connection passed its handshake; open until the guard drops.
    pub(crate) fn inbound_opened(self: &Arc<Self>) -> OpenGuard {
        self.inbound_established.fetch_add(1, Ordering::Relaxed);
        OpenGuard::new(self.clone(), |s| &s.inbound_open)
    }

    pub(crate) fn snapshot(&self) -> TransportCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let gauge = |g: &AtomicI64| g.load(Ordering::Relaxed).max(0) as u64;
        TransportCounts {
            accepted: load(&self.accepted),
            inbound_established: load(&self.inbound_established),
            inbound_open: gauge(&self.inbound_open),
            outbound_established: load(&self.outbound_established),
            outbound_open: gauge(&self.outbound_open),
            reconnects: load(&self.reconnects),
            connect_failures: load(&self.connect_failures),
            queued_frames: gauge(&self.queued_frames),
            dropped: DropCause::ALL
                .iter()
                .zip(&self.dropped)
                .map(|(cause, count)| (*cause, load(count)))
                .collect(),
        }
    }
}

/// Counts one connection as open while it lives.
pub(crate) struct OpenGuard {
    stats: Arc<TransportStats>,
    gauge: fn(&TransportStats) -> &AtomicI64,
}

impl OpenGuard {
    fn new(stats: Arc<TransportStats>, gauge: fn(&TransportStats) -> &AtomicI64) -> Self {
        gauge(&stats).fetch_add(1, Ordering::Relaxed);
        OpenGuard { stats, gauge }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        (self.gauge)(&self.stats).fetch_sub(1, Ordering::Relaxed);
    }
}
