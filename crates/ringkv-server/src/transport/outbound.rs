//! Outbound side: one writer task per peer, owning the only connection this
//! node writes to that peer, and checking that the peer keeps reading it.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use ringkv_core::NodeId;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, trace, warn};

use super::handshake::{next_hello, Rejection};
use super::liveness::{self, Progress, MAX_ACK_FRAME, PROGRESS_TIMEOUT};
use super::secure::{secure_outbound, PeerStream};
use super::stats::{DropCause, OpenGuard};
use super::{codec, message_codec, Shared, MAX_BATCH, RECONNECT_BACKOFF};
use crate::shed::{Cause, Permit, Queue};

/// A frame in a peer's queue, holding its share of the queue's budget
/// until it is written or dropped.
pub(super) struct Queued {
    frame: Bytes,
    permit: Permit,
}

impl Queued {
    pub(super) fn new(frame: Bytes, permit: Permit) -> Queued {
        Queued { frame, permit }
    }
}

/// An established outbound connection. Past the handshake's answer, the
/// read half carries only the acceptor's acks, which tell whether the peer
/// is still reading (see [`liveness`]); it also reveals the peer closing
/// the connection, so a restarted peer is detected before messages are
/// written into a dead socket.
struct Connection {
    frames: FramedWrite<WriteHalf<PeerStream>, LengthDelimitedCodec>,
    acks: FramedRead<ReadHalf<PeerStream>, LengthDelimitedCodec>,
    progress: Progress,
    /// Counts the connection as open while it lives.
    _open: Option<OpenGuard>,
}

/// What a live connection has to react to besides messages to write.
enum LinkEvent {
    /// The next frame from the acceptor (`None`: it closed the connection).
    Read(Option<io::Result<BytesMut>>),
    /// Frames went unacknowledged too long.
    Overdue,
    /// Nothing was written for a ping interval.
    PingDue,
}

/// Frames up to this many bytes are *small* (acks, gossip, `ForwardAccepted`,
/// writes of small values): they go out ahead of larger frames queued
/// before them, so a few 1 MiB values do not hold up the acknowledgements
/// and small requests behind them (flow control per peer). The protocol
/// takes messages in any order: the simulator delays and reorders them.
pub(super) const SMALL_FRAME_BYTES: usize = 64 * 1024;
/// A batch carries large frames up to about this many bytes (at least one
/// when any waits), so a small frame queued meanwhile waits for about this
/// much at most.
pub(super) const LARGE_BATCH_BYTES: usize = 1024 * 1024;

/// Owns the connection to one peer and writes everything queued for it.
pub(super) struct PeerWriter<M> {
    shared: Arc<Shared<M>>,
    peer: NodeId,
    queue: mpsc::UnboundedReceiver<Queued>,
    conn: Option<Connection>,
    /// While set and in the future, the peer recently failed: hold messages
    /// in the queue until then instead of hammering it with connects.
    retry_at: Option<Instant>,
    /// Whether this writer had a connection before (the next is a reconnect).
    connected_before: bool,
    /// Frames taken off `queue` and not yet written, small and large (see
    /// [`SMALL_FRAME_BYTES`]); bounded with the queue by its budget, whose
    /// permits they hold.
    small: VecDeque<Queued>,
    large: VecDeque<Queued>,
}

impl<M> PeerWriter<M> {
    pub(super) fn new(
        shared: Arc<Shared<M>>,
        peer: NodeId,
        queue: mpsc::UnboundedReceiver<Queued>,
    ) -> Self {
        PeerWriter {
            shared,
            peer,
            queue,
            conn: None,
            retry_at: None,
            connected_before: false,
            small: VecDeque::new(),
            large: VecDeque::new(),
        }
    }

    /// Runs until the queue's sender is dropped (peer retired or transport
    /// dropped) or the transport shuts down.
    pub(super) async fn run(mut self) {
        let shutdown = self.shared.shutdown.clone();
        loop {
            if self.small.is_empty() && self.large.is_empty() {
                let first = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = watch(&mut self.conn) => {
                        self.on_link_event(event).await;
                        continue;
                    }
                    next = self.queue.recv() => match next {
                        Some(queued) => queued,
                        None => return,
                    },
                };
                self.hold(first);
            }
            while let Ok(queued) = self.queue.try_recv() {
                self.hold(queued);
            }
            let batch = compose(&mut self.small, &mut self.large, |q| q.frame.len());
            self.shared.stats.queued(-(batch.len() as i64));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.deliver(batch) => {}
            }
        }
    }

    /// Reacts to an event of the idle connection: an ack, a ping due, or a
    /// failure (which drops the connection).
    async fn on_link_event(&mut self, event: LinkEvent) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let outcome = match event {
            LinkEvent::PingDue => conn.write(vec![liveness::ping()]).await,
            event => apply(&mut conn.progress, event),
        };
        if let Err(cause) = outcome {
            self.fail(&cause, 0);
        }
    }

    /// Keep a frame taken off the queue until it is written.
    fn hold(&mut self, queued: Queued) {
        match queued.frame.len() <= SMALL_FRAME_BYTES {
            true => self.small.push_back(queued),
            false => self.large.push_back(queued),
        }
    }

    /// Writes a batch, connecting first if needed (after the backoff of a
    /// recent failure: the batch waits, it is not dropped). On failure the
    /// batch is dropped and reported, so every message is either delivered
    /// or reported and a quorum waiting on the peer never waits in silence;
    /// the protocol layer decides whether to retry.
    async fn deliver(&mut self, batch: Vec<Queued>) {
        if self.conn.is_none() {
            if let Some(at) = self.retry_at.filter(|at| Instant::now() < *at) {
                trace!(peer = %self.peer, waiting = batch.len(), "peer in reconnect backoff");
                tokio::time::sleep_until(at).await;
            }
            match self.connect().await {
                Ok(mut conn) => {
                    debug!(peer = %self.peer, "outbound connection established");
                    self.shared.agreed(&self.peer);
                    conn._open = Some(self.shared.stats.outbound_opened(self.connected_before));
                    self.connected_before = true;
                    self.conn = Some(conn);
                    self.retry_at = None;
                }
                Err(Rejection::Settings { reason, .. }) => {
                    self.shared.refuse(&self.peer, &reason);
                    self.shared.stats.dropped(DropCause::Refused, batch.len());
                    return self.back_off(batch.len());
                }
                Err(err) => {
                    self.shared.stats.connect_failed();
                    return self.fail(&format!("connect failed: {err}"), batch.len());
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let count = batch.len();
        // The permits go back once the batch is written (or dropped).
        let (frames, _permits): (Vec<Bytes>, Vec<Permit>) =
            batch.into_iter().map(|q| (q.frame, q.permit)).unzip();
        if let Err(cause) = conn.write(frames).await {
            self.fail(&cause, count);
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
            let secured = secure_outbound(self.shared.tls.as_ref(), stream)
                .await
                .map_err(Rejection::Tls)?;
            let (read_half, write_half) = tokio::io::split(secured.stream);
            let mut frames = FramedWrite::new(write_half, message_codec(max_frame_bytes));
            frames.send(hello).await.map_err(Rejection::Connect)?;
            // The peer answers with its own handshake, checked as it
            // checked ours.
            let mut acks = FramedRead::new(read_half, codec(max_frame_bytes));
            let answer = next_hello(&mut acks).await?;
            self.shared.check_hello(&answer, secured.cert.as_ref())?;
            self.check_answered_by_peer(&answer.node)?;
            // Only small acks follow; the reader keeps what it buffered.
            acks.decoder_mut().set_max_frame_length(MAX_ACK_FRAME);
            let progress = Progress::new(Instant::now());
            Ok(Connection {
                frames,
                acks,
                progress,
                _open: None,
            })
        };
        tokio::time::timeout(limit, attempt).await.map_err(|_| {
            Rejection::Connect(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {limit:?}"),
            ))
        })?
    }

    /// The node that answered must be the one dialed (a seed's pseudo-id
    /// stands for whichever node listens there): an address now used by
    /// another node must not receive this peer's messages.
    fn check_answered_by_peer(&self, claimed: &NodeId) -> Result<(), Rejection> {
        if ringkv_core::gossip::is_seed_id(&self.peer) || *claimed == self.peer {
            return Ok(());
        }
        Err(Rejection::WrongPeer {
            expected: self.peer.clone(),
            claimed: claimed.clone(),
        })
    }

    /// Starts a failure episode: log it, then [`back_off`](Self::back_off).
    fn fail(&mut self, reason: &str, dropped: usize) {
        warn!(peer = %self.peer, reason, dropped, "peer unreachable");
        self.shared.stats.dropped(DropCause::Unreachable, dropped);
        self.back_off(dropped);
    }

    /// Drop the connection, report the peer unreachable once, and hold off
    /// reconnecting for a while. The `dropped` frames of the failed batch
    /// are counted.
    fn back_off(&mut self, dropped: usize) {
        trace!(peer = %self.peer, dropped, "backing off");
        let shedding = &self.shared.shedding;
        shedding.record_many(Queue::PeerOutbound, Cause::Unreachable, dropped as u64);
        self.conn = None;
        self.retry_at = Some(Instant::now() + RECONNECT_BACKOFF);
        self.shared.report_unreachable(&self.peer);
    }
}

/// The next batch to write, so a burst of small messages goes with one
/// flush (few syscalls, few TCP segments): every small frame first (up to
/// [`MAX_BATCH`]), then large ones up to [`LARGE_BATCH_BYTES`] — at least
/// one when any waits, so a stream of small frames never starves them.
fn compose<T>(
    small: &mut VecDeque<T>,
    large: &mut VecDeque<T>,
    len: impl Fn(&T) -> usize,
) -> Vec<T> {
    let room = MAX_BATCH - usize::from(!large.is_empty());
    let mut batch: Vec<T> = small.drain(..small.len().min(room)).collect();
    let mut large_bytes = 0;
    while batch.len() < MAX_BATCH && large_bytes < LARGE_BATCH_BYTES {
        let Some(frame) = large.pop_front() else {
            break;
        };
        large_bytes += len(&frame);
        batch.push(frame);
    }
    assert!(
        batch.len() <= MAX_BATCH,
        "a batch is at most MAX_BATCH frames"
    );
    batch
}

/// Feeds every frame into the codec's buffer and flushes once.
async fn write_batch(
    frames: &mut FramedWrite<WriteHalf<PeerStream>, LengthDelimitedCodec>,
    batch: Vec<Bytes>,
) -> io::Result<()> {
    for frame in batch {
        frames.feed(frame).await?;
    }
    SinkExt::<Bytes>::flush(frames).await
}

/// The next event of the connection, if there is one; pends forever when
/// there is none (the writer then waits for messages only).
async fn watch(conn: &mut Option<Connection>) -> LinkEvent {
    match conn.as_mut() {
        Some(conn) => next_event(&mut conn.acks, &conn.progress, true).await,
        None => std::future::pending().await,
    }
}

/// Waits for a frame from the acceptor, the progress deadline, or (with
/// `ping`) the moment a ping is due. Cancel-safe: the reader keeps partial
/// frames in its buffer. Takes the fields rather than the [`Connection`] so
/// a write may run on the other half meanwhile.
async fn next_event(
    acks: &mut FramedRead<ReadHalf<PeerStream>, LengthDelimitedCodec>,
    progress: &Progress,
    ping: bool,
) -> LinkEvent {
    let deadline = progress.deadline();
    tokio::select! {
        frame = acks.next() => LinkEvent::Read(frame),
        _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
            LinkEvent::Overdue
        }
        _ = sleep_until(progress.ping_at()), if ping => LinkEvent::PingDue,
    }
}

impl Connection {
    /// Writes a batch while still reading acks, so a write blocked by full
    /// buffers (a peer that stopped reading) ends at the progress deadline
    /// instead of hanging, and a long write on a healthy link is not taken
    /// for a dead one. The error is the cause, for the log.
    async fn write(&mut self, batch: Vec<Bytes>) -> Result<(), String> {
        self.progress.wrote(batch.len(), Instant::now());
        let write = write_batch(&mut self.frames, batch);
        tokio::pin!(write);
        loop {
            let event = tokio::select! {
                done = &mut write => return done.map_err(|err| format!("write failed: {err}")),
                event = next_event(&mut self.acks, &self.progress, false) => event,
            };
            apply(&mut self.progress, event)?;
        }
    }
}

/// Applies one event (other than a due ping) to `progress`; an error means
/// the connection is to be dropped, and says why.
fn apply(progress: &mut Progress, event: LinkEvent) -> Result<(), String> {
    match event {
        LinkEvent::Read(Some(Ok(frame))) => liveness::decode_ack(&frame)
            .and_then(|count| progress.acked(count, Instant::now()))
            .map_err(|garbage| format!("garbage from peer: {garbage}")),
        LinkEvent::Read(Some(Err(err))) => Err(format!("bad frame from peer: {err}")),
        LinkEvent::Read(None) => Err("connection closed by peer".into()),
        LinkEvent::Overdue => Err(format!(
            "no acknowledgement for {PROGRESS_TIMEOUT:?} of {} frames (peer stopped reading \
             or link silent)",
            progress.unacked()
        )),
        LinkEvent::PingDue => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames as their sizes, in queue order.
    fn split(sizes: &[usize]) -> (VecDeque<usize>, VecDeque<usize>) {
        sizes.iter().partition(|&&s| s <= SMALL_FRAME_BYTES)
    }

    #[test]
    fn small_frames_go_ahead_of_large_ones_and_large_ones_are_never_starved() {
        let mib = 1024 * 1024;
        // Three 1 MiB values queued before two acks: the acks go first,
        // then one value; the next batch takes the next value.
        let (mut small, mut large) = split(&[mib, mib + 1, mib + 2, 40, 50]);
        let batch = compose(&mut small, &mut large, |s| *s);
        assert_eq!(batch, [40, 50, mib]);
        let batch = compose(&mut small, &mut large, |s| *s);
        assert_eq!(batch, [mib + 1]);
        // Large frames fill a batch up to LARGE_BATCH_BYTES.
        let (mut small, mut large) = split(&[300_000; 5]);
        assert_eq!(compose(&mut small, &mut large, |s| *s).len(), 4);
        // A flood of small frames leaves room for one large frame.
        let mut sizes = vec![10; 2 * MAX_BATCH];
        sizes.insert(0, mib);
        let (mut small, mut large) = split(&sizes);
        let batch = compose(&mut small, &mut large, |s| *s);
        assert_eq!(batch.len(), MAX_BATCH);
        assert_eq!(batch.last(), Some(&mib));
        assert_eq!(small.len(), MAX_BATCH + 1);
    }
}
