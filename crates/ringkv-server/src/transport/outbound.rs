//! Outbound side: one writer task per peer, owning the only connection this
//! node writes to that peer.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::SinkExt;
use ringkv_core::NodeId;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, trace, warn};

use super::handshake::{next_hello, Rejection};
use super::{codec, Shared, MAX_BATCH, RECONNECT_BACKOFF, WRITE_STALL_TIMEOUT};

/// An established outbound connection. Past the handshake's answer, the
/// read half is kept only to notice the peer closing the connection (it
/// never sends anything more), so a restarted peer is detected before
/// messages are written into a dead socket.
struct Connection {
    frames: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    read_half: OwnedReadHalf,
}

/// Owns the connection to one peer and writes everything queued for it.
pub(super) struct PeerWriter<M> {
    shared: Arc<Shared<M>>,
    peer: NodeId,
    queue: mpsc::UnboundedReceiver<Bytes>,
    conn: Option<Connection>,
    /// While set and in the future, the peer recently failed: hold messages
    /// in the queue until then instead of hammering it with connects.
    retry_at: Option<Instant>,
}

impl<M> PeerWriter<M> {
    pub(super) fn new(
        shared: Arc<Shared<M>>,
        peer: NodeId,
        queue: mpsc::UnboundedReceiver<Bytes>,
    ) -> Self {
        PeerWriter {
            shared,
            peer,
            queue,
            conn: None,
            retry_at: None,
        }
    }

    /// Runs until the queue's sender is dropped (peer retired or transport
    /// dropped) or the transport shuts down.
    pub(super) async fn run(mut self) {
        let shutdown = self.shared.shutdown.clone();
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = peer_closed(&mut self.conn) => {
                    self.fail("connection closed by peer", 0);
                    continue;
                }
                next = self.queue.recv() => match next {
                    Some(frame) => frame,
                    None => return,
                },
            };
            let batch = self.drain_batch(first);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.deliver(batch) => {}
            }
        }
    }

    /// Takes whatever else is already queued, so a burst of small messages is
    /// written with one flush (few syscalls, few TCP segments).
    fn drain_batch(&mut self, first: Bytes) -> Vec<Bytes> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.queue.try_recv() {
                Ok(frame) => batch.push(frame),
                Err(_) => break,
            }
        }
        batch
    }

    /// Writes a batch, connecting first if needed (after the backoff of a
    /// recent failure: the batch waits, it is not dropped). On failure the
    /// batch is dropped and reported, so every message is either delivered
    /// or reported and a quorum waiting on the peer never waits in silence;
    /// the protocol layer decides whether to retry.
    async fn deliver(&mut self, batch: Vec<Bytes>) {
        if self.conn.is_none() {
            if let Some(at) = self.retry_at.filter(|at| Instant::now() < *at) {
                trace!(peer = %self.peer, waiting = batch.len(), "peer in reconnect backoff");
                tokio::time::sleep_until(at).await;
            }
            match self.connect().await {
                Ok(conn) => {
                    debug!(peer = %self.peer, "outbound connection established");
                    self.shared.agreed(&self.peer);
                    self.conn = Some(conn);
                    self.retry_at = None;
                }
                Err(Rejection::Settings { reason, .. }) => {
                    self.shared.refuse(&self.peer, &reason);
                    return self.back_off(batch.len());
                }
                Err(err) => return self.fail(&format!("connect failed: {err}"), batch.len()),
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let count = batch.len();
        match tokio::time::timeout(WRITE_STALL_TIMEOUT, write_batch(&mut conn.frames, batch)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(err)) => self.fail(&format!("write failed: {err}"), count),
            Err(_) => self.fail("write stalled", count),
        }
    }

    /// Opens a connection to the peer's current address, sends the
    /// handshake and checks the peer's answer, all within `connect_timeout`.
    async fn connect(&self) -> Result<Connection, Rejection> {
        let addr = self.shared.peer_addr(&self.peer).ok_or_else(|| {
            Rejection::Connect(io::Error::new(
                io::ErrorKind::NotFound,
                "peer no longer known",
            ))
        })?;
        let hello = self.shared.hello().encode().map_err(Rejection::Connect)?;
        let limit = self.shared.connect_timeout;
        let max_frame_bytes = self.shared.max_frame_bytes;
        let attempt = async {
            let stream = TcpStream::connect(addr).await.map_err(Rejection::Connect)?;
            // Messages are small and latency-bound; batching happens above.
            stream.set_nodelay(true).map_err(Rejection::Connect)?;
            let (read_half, write_half) = stream.into_split();
            let mut frames = FramedWrite::new(write_half, codec(max_frame_bytes));
            frames.send(hello).await.map_err(Rejection::Connect)?;
            // The peer answers with its own handshake, checked as it
            // checked ours.
            let mut answers = FramedRead::new(read_half, codec(max_frame_bytes));
            self.shared.check_hello(&next_hello(&mut answers).await?)?;
            let read_half = answers.into_inner();
            Ok(Connection { frames, read_half })
        };
        tokio::time::timeout(limit, attempt).await.map_err(|_| {
            Rejection::Connect(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {limit:?}"),
            ))
        })?
    }

    /// Starts a failure episode: log it, then [`back_off`](Self::back_off).
    fn fail(&mut self, reason: &str, dropped: usize) {
        warn!(peer = %self.peer, reason, dropped, "peer unreachable");
        self.back_off(dropped);
    }

    /// Drop the connection, report the peer unreachable once, and hold off
    /// reconnecting for a while.
    fn back_off(&mut self, dropped: usize) {
        trace!(peer = %self.peer, dropped, "backing off");
        self.conn = None;
        self.retry_at = Some(Instant::now() + RECONNECT_BACKOFF);
        self.shared.report_unreachable(&self.peer);
    }
}

/// Feeds every frame into the codec's buffer and flushes once.
async fn write_batch(
    frames: &mut FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    batch: Vec<Bytes>,
) -> io::Result<()> {
    for frame in batch {
        frames.feed(frame).await?;
    }
    SinkExt::<Bytes>::flush(frames).await
}

/// Completes when the peer closes (or resets) the connection; pends forever
/// when there is no connection. Peers never send on this connection, so any
/// bytes that do arrive are ignored.
async fn peer_closed(conn: &mut Option<Connection>) {
    let Some(conn) = conn.as_mut() else {
        return std::future::pending().await;
    };
    let mut scratch = [0u8; 64];
    loop {
        match conn.read_half.read(&mut scratch).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}
