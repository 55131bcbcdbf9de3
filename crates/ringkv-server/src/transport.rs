//! Inter-node TCP transport.
//!
//! Every node keeps **one outbound TCP connection per peer** and only ever
//! *writes* to it; connections accepted from peers are only ever *read*
//! (Cassandra uses the same split). That keeps each connection a one-way
//! stream of frames: no request/response pairing and no shared ownership of a
//! socket between a reader and a writer, and "who talks to whom" is explicit.
//!
//! Framing is [`LengthDelimitedCodec`] (u32 big-endian length prefix), every
//! payload is postcard. The first frame on a connection is a [`Hello`]
//! handshake; every later frame is one message `M`. The transport is generic
//! over `M`, so it knows nothing about the protocol's message enum.
//!
//! Delivery is best effort, deliberately: messages to a peer that cannot be
//! reached are dropped and reported once per failure episode as
//! [`Inbound::Unreachable`]. Timeouts and retries belong to the protocol layer
//! (quorums, hinted handoff, read repair), which has to cope with lost
//! messages anyway.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use ringkv_core::NodeId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace, warn};

/// Version of the handshake + framing. Bump on any incompatible wire change;
/// nodes refuse peers that speak another version instead of misparsing them.
pub const PROTOCOL_VERSION: u16 = 1;

/// First field of every handshake ("RKV1"). Lets an acceptor tell a ringkv
/// peer from a stray client (a port scanner, an HTTP request) immediately.
pub const HANDSHAKE_MAGIC: u32 = 0x524B_5631;

/// Minimum time between two connection attempts to the same peer, so a dead
/// peer costs one failed connect per window instead of one per message.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

/// A batch write that makes no progress for this long means the peer stopped
/// reading (stuck process, full socket buffers); the link is treated as broken
/// rather than letting the queue grow without bound behind it.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Upper bound on the frames written per flush, so one busy peer cannot make a
/// single batch (and its memory) arbitrarily large.
const MAX_BATCH: usize = 512;

/// Pause after a failed `accept` (e.g. out of file descriptors), so the accept
/// loop does not spin at 100% CPU while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Static configuration of one node's transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Cluster name; peers that present another cluster name are rejected, so
    /// two clusters sharing a network can never exchange messages by accident.
    pub cluster: String,
    /// This node's identity, presented to peers in the handshake.
    pub node_id: NodeId,
    /// Address to listen on (port 0 picks a free port; see
    /// [`Transport::local_addr`]).
    pub listen: SocketAddr,
    /// Known nodes and where to reach them. May include this node; that entry
    /// is ignored.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Largest frame (handshake or message payload) sent or accepted.
    pub max_frame_bytes: usize,
    /// Bound on establishing an outbound connection (TCP connect plus sending
    /// the handshake), and on how long an inbound connection may take to send
    /// its handshake.
    pub connect_timeout: Duration,
}

/// What the transport hands to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound<M> {
    /// A message from a peer (or from this node to itself).
    Message { from: NodeId, msg: M },
    /// Messages to `peer` were dropped because it could not be reached.
    /// Reported once per failure episode, not once per message.
    Unreachable { peer: NodeId },
}

/// The inter-node transport. Cheap to clone; all clones share the same
/// listener and connections. Dropping the last clone shuts it down: the
/// listener, inbound connections and outbound writers all stop.
pub struct Transport<M> {
    inner: Arc<Inner<M>>,
}

impl<M> Clone for Transport<M> {
    fn clone(&self) -> Self {
        Transport {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M> fmt::Debug for Transport<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("node_id", &self.inner.shared.node_id)
            .field("local_addr", &self.inner.shared.local_addr)
            .finish_non_exhaustive()
    }
}

/// Owned only by [`Transport`] handles. Kept apart from [`Shared`] because the
/// background tasks hold `Shared`: if they held the outbound senders too, the
/// writers would keep themselves alive forever.
struct Inner<M> {
    shared: Arc<Shared<M>>,
    /// One queue per peer, drained by that peer's writer task.
    outbound: Mutex<HashMap<NodeId, mpsc::UnboundedSender<Bytes>>>,
    /// Captured at bind time so the synchronous `send` can spawn writer tasks
    /// even when called from outside the runtime (it must never panic).
    runtime: Handle,
}

impl<M> Drop for Inner<M> {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// State shared with the background tasks.
struct Shared<M> {
    cluster: String,
    node_id: NodeId,
    local_addr: SocketAddr,
    max_frame_bytes: usize,
    connect_timeout: Duration,
    /// Known peers, never including this node.
    peers: Mutex<BTreeMap<NodeId, SocketAddr>>,
    /// Peers whose traffic is silently dropped in both directions (test fault).
    blocked: Mutex<HashSet<NodeId>>,
    inbound: mpsc::UnboundedSender<Inbound<M>>,
    accepted: AtomicU64,
    shutdown: CancellationToken,
}

/// The handshake, the first frame on every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Hello {
    magic: u32,
    protocol_version: u16,
    cluster: String,
    node: NodeId,
}

/// Why an inbound connection was closed during the handshake.
#[derive(Debug, thiserror::Error)]
enum Rejection {
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before the handshake")]
    Closed,
    #[error("bad handshake frame: {0}")]
    Frame(io::Error),
    #[error("undecodable handshake: {0}")]
    Decode(postcard::Error),
    #[error("bad magic {0:#010x}")]
    Magic(u32),
    #[error("unsupported protocol version {0} (this node speaks {ours})", ours = PROTOCOL_VERSION)]
    Version(u16),
    #[error("peer belongs to cluster {theirs:?}, not {ours:?}")]
    Cluster { theirs: String, ours: String },
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
}

/// Locks a mutex, ignoring poisoning: every critical section here is a plain
/// map operation that leaves the data consistent, and the transport must
/// never panic because some other thread did.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The codec for both directions, so sender and receiver agree on the limit.
fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

impl<M: Serialize + DeserializeOwned + Send + 'static> Transport<M> {
    /// Binds the listener and starts accepting peers. Messages from peers (and
    /// unreachability reports) are delivered to `inbound`.
    pub async fn bind(
        config: TransportConfig,
        inbound: mpsc::UnboundedSender<Inbound<M>>,
    ) -> io::Result<Self> {
        // The u32 length prefix cannot describe anything larger.
        let max_frame_bytes = config.max_frame_bytes.min(u32::MAX as usize);
        let hello = Hello::new(&config.cluster, &config.node_id);
        if hello.encode()?.len() > max_frame_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("max_frame_bytes {max_frame_bytes} cannot even hold the handshake"),
            ));
        }

        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let mut peers = config.peers;
        peers.remove(&config.node_id);

        let shared = Arc::new(Shared {
            cluster: config.cluster,
            node_id: config.node_id,
            local_addr,
            max_frame_bytes,
            connect_timeout: config.connect_timeout,
            peers: Mutex::new(peers),
            blocked: Mutex::new(HashSet::new()),
            inbound,
            accepted: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
        });
        let runtime = Handle::current();
        runtime.spawn(accept_loop(Arc::clone(&shared), listener));
        debug!(node = %shared.node_id, %local_addr, "transport listening");

        Ok(Transport {
            inner: Arc::new(Inner {
                shared,
                outbound: Mutex::new(HashMap::new()),
                runtime,
            }),
        })
    }

    /// The address actually bound (useful when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.shared.local_addr
    }

    /// This node's identity.
    pub fn node_id(&self) -> &NodeId {
        &self.inner.shared.node_id
    }

    /// Number of TCP connections accepted by the listener so far, including
    /// ones later rejected. Each live peer should account for one.
    pub fn accepted_connections(&self) -> u64 {
        self.inner.shared.accepted.load(Ordering::Relaxed)
    }

    /// Queues `msg` for `to` and returns immediately. Never blocks, never
    /// panics. Delivery is best effort: if `to` is unknown or cannot be
    /// reached the message is dropped and [`Inbound::Unreachable`] reported.
    /// A message to this node itself is handed straight to `inbound`.
    pub fn send(&self, to: &NodeId, msg: M) {
        let shared = &self.inner.shared;
        if *to == shared.node_id {
            let from = to.clone();
            let _ = shared.inbound.send(Inbound::Message { from, msg });
            return;
        }
        if shared.is_blocked(to) {
            trace!(peer = %to, "dropping message to blocked peer");
            return;
        }
        if !shared.is_known_peer(to) {
            warn!(peer = %to, "dropping message to unknown peer");
            shared.report_unreachable(to);
            return;
        }
        let Some(frame) = self.encode_message(to, &msg) else {
            return;
        };
        self.queue_frame(to, frame);
    }

    /// Adds a peer or changes its address. When the address changes, the old
    /// connection is retired (after writing what is already queued) and the
    /// next message opens a connection to the new address. Ignores this node.
    pub fn set_peer(&self, id: NodeId, addr: SocketAddr) {
        let shared = &self.inner.shared;
        if id == shared.node_id {
            return;
        }
        let previous = lock(&shared.peers).insert(id.clone(), addr);
        if previous.is_some_and(|old| old != addr) {
            debug!(peer = %id, %addr, "peer address changed; reconnecting");
            // Dropping the sender lets the writer drain its queue and exit.
            lock(&self.inner.outbound).remove(&id);
        }
    }

    /// Fault injection for tests: while `blocked`, every message to and from
    /// `peer` is silently dropped, like a cut network link. The sender sees
    /// no error (no [`Inbound::Unreachable`]), only silence.
    pub fn set_blocked(&self, peer: &NodeId, blocked: bool) {
        let mut set = lock(&self.inner.shared.blocked);
        if blocked {
            set.insert(peer.clone());
        } else {
            set.remove(peer);
        }
    }

    /// Serializes `msg` into a frame payload, or logs why it cannot be sent.
    /// Checked here rather than in the writer so that an oversized message is
    /// dropped alone instead of failing the encoder and the whole connection.
    fn encode_message(&self, to: &NodeId, msg: &M) -> Option<Bytes> {
        let max = self.inner.shared.max_frame_bytes;
        match postcard::to_stdvec(msg) {
            Ok(bytes) if bytes.len() <= max => Some(Bytes::from(bytes)),
            Ok(bytes) => {
                warn!(peer = %to, size = bytes.len(), max, "dropping message larger than max_frame_bytes");
                None
            }
            Err(err) => {
                warn!(peer = %to, %err, "dropping message that failed to serialize");
                None
            }
        }
    }

    /// Hands a frame to the peer's writer task, starting one if needed.
    fn queue_frame(&self, to: &NodeId, frame: Bytes) {
        let mut outbound = lock(&self.inner.outbound);
        let frame = match outbound.get(to) {
            None => frame,
            Some(tx) => match tx.send(frame) {
                Ok(()) => return,
                // The writer is gone (it can only stop on shutdown); start afresh.
                Err(mpsc::error::SendError(frame)) => frame,
            },
        };
        self.spawn_writer(&mut outbound, to, frame);
    }

    fn spawn_writer(
        &self,
        outbound: &mut HashMap<NodeId, mpsc::UnboundedSender<Bytes>>,
        to: &NodeId,
        first: Bytes,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        // Cannot fail: `rx` is alive right here.
        let _ = tx.send(first);
        outbound.insert(to.clone(), tx);
        let writer = PeerWriter::new(Arc::clone(&self.inner.shared), to.clone(), rx);
        self.inner.runtime.spawn(writer.run());
    }
}

impl<M> Shared<M> {
    fn is_blocked(&self, peer: &NodeId) -> bool {
        lock(&self.blocked).contains(peer)
    }

    fn is_known_peer(&self, peer: &NodeId) -> bool {
        lock(&self.peers).contains_key(peer)
    }

    fn peer_addr(&self, peer: &NodeId) -> Option<SocketAddr> {
        lock(&self.peers).get(peer).copied()
    }

    fn report_unreachable(&self, peer: &NodeId) {
        let peer = peer.clone();
        // The node may have stopped listening (shutting down); nothing to do.
        let _ = self.inbound.send(Inbound::Unreachable { peer });
    }

    /// Checks a peer's handshake against this node's expectations.
    fn check_hello(&self, hello: &Hello) -> Result<(), Rejection> {
        if hello.magic != HANDSHAKE_MAGIC {
            return Err(Rejection::Magic(hello.magic));
        }
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(Rejection::Version(hello.protocol_version));
        }
        if hello.cluster != self.cluster {
            return Err(Rejection::Cluster {
                theirs: hello.cluster.clone(),
                ours: self.cluster.clone(),
            });
        }
        if !self.is_known_peer(&hello.node) {
            return Err(Rejection::UnknownNode(hello.node.clone()));
        }
        Ok(())
    }
}

impl Hello {
    fn new(cluster: &str, node: &NodeId) -> Self {
        Hello {
            magic: HANDSHAKE_MAGIC,
            protocol_version: PROTOCOL_VERSION,
            cluster: cluster.to_owned(),
            node: node.clone(),
        }
    }

    fn encode(&self) -> io::Result<Bytes> {
        postcard::to_stdvec(self)
            .map(Bytes::from)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
    }
}

// ---------------------------------------------------------------------------
// Inbound side: accept connections, check the handshake, forward messages.
// ---------------------------------------------------------------------------

type InboundFrames = FramedRead<TcpStream, LengthDelimitedCodec>;

/// Accepts connections until shutdown; each gets its own task so a slow or
/// misbehaving peer cannot hold up the others.
async fn accept_loop<M>(shared: Arc<Shared<M>>, listener: TcpListener)
where
    M: DeserializeOwned + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve_inbound(Arc::clone(&shared), stream, remote));
            }
            Err(err) => {
                warn!(node = %shared.node_id, %err, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Runs one inbound connection: handshake, then forward frames until the
/// peer disconnects, misbehaves, or the transport shuts down. Returning drops
/// (closes) the connection.
async fn serve_inbound<M>(shared: Arc<Shared<M>>, stream: TcpStream, remote: SocketAddr)
where
    M: DeserializeOwned + Send + 'static,
{
    let mut frames = FramedRead::new(stream, codec(shared.max_frame_bytes));
    let shutdown = shared.shutdown.clone();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = async {
            match accept_handshake(&shared, &mut frames).await {
                Ok(peer) => forward_messages(&shared, &mut frames, &peer, remote).await,
                Err(reason) => warn!(%remote, %reason, "rejected inbound connection"),
            }
        } => {}
    }
}

/// Reads and validates the first frame, returning the peer's identity.
async fn accept_handshake<M>(
    shared: &Shared<M>,
    frames: &mut InboundFrames,
) -> Result<NodeId, Rejection> {
    let limit = shared.connect_timeout;
    let frame = match tokio::time::timeout(limit, frames.next()).await {
        Err(_) => return Err(Rejection::Timeout(limit)),
        Ok(None) => return Err(Rejection::Closed),
        Ok(Some(Err(err))) => return Err(Rejection::Frame(err)),
        Ok(Some(Ok(frame))) => frame,
    };
    let hello: Hello = postcard::from_bytes(&frame).map_err(Rejection::Decode)?;
    shared.check_hello(&hello)?;
    Ok(hello.node)
}

/// Forwards decoded messages to the node. Any bad frame ends the connection:
/// after a framing or decoding error the stream position can no longer be
/// trusted, and the peer will reconnect on its next message.
async fn forward_messages<M>(
    shared: &Shared<M>,
    frames: &mut InboundFrames,
    from: &NodeId,
    remote: SocketAddr,
) where
    M: DeserializeOwned,
{
    debug!(peer = %from, %remote, "inbound connection established");
    while let Some(frame) = frames.next().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                warn!(peer = %from, %remote, %err, "closing inbound connection: bad frame");
                return;
            }
        };
        let msg = match postcard::from_bytes::<M>(&frame) {
            Ok(msg) => msg,
            Err(err) => {
                warn!(peer = %from, %remote, %err, "closing inbound connection: undecodable message");
                return;
            }
        };
        if shared.is_blocked(from) {
            trace!(peer = %from, "dropping message from blocked peer");
            continue;
        }
        let from = from.clone();
        if shared.inbound.send(Inbound::Message { from, msg }).is_err() {
            return; // The node is gone; nobody to deliver to.
        }
    }
    debug!(peer = %from, %remote, "inbound connection closed by peer");
}

// ---------------------------------------------------------------------------
// Outbound side: one writer task per peer.
// ---------------------------------------------------------------------------

/// An established outbound connection. The read half is kept only to notice
/// the peer closing the connection (it never sends anything back), so a
/// restarted peer is detected before messages are written into a dead socket.
struct Connection {
    frames: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
    read_half: OwnedReadHalf,
}

/// Owns the connection to one peer and writes everything queued for it.
struct PeerWriter<M> {
    shared: Arc<Shared<M>>,
    peer: NodeId,
    queue: mpsc::UnboundedReceiver<Bytes>,
    conn: Option<Connection>,
    /// While set and in the future, the peer recently failed: drop messages
    /// instead of trying to connect again.
    retry_at: Option<Instant>,
}

impl<M> PeerWriter<M> {
    fn new(shared: Arc<Shared<M>>, peer: NodeId, queue: mpsc::UnboundedReceiver<Bytes>) -> Self {
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
    async fn run(mut self) {
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

    /// Writes a batch, connecting first if needed. On failure the batch is
    /// dropped and reported; the protocol layer decides whether to retry.
    async fn deliver(&mut self, batch: Vec<Bytes>) {
        if self.conn.is_none() {
            if self.retry_at.is_some_and(|at| Instant::now() < at) {
                // Already reported for this failure episode.
                trace!(peer = %self.peer, dropped = batch.len(), "peer in reconnect backoff");
                return;
            }
            match self.connect().await {
                Ok(conn) => {
                    debug!(peer = %self.peer, "outbound connection established");
                    self.conn = Some(conn);
                    self.retry_at = None;
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

    /// Opens a connection to the peer's current address and sends the
    /// handshake, all within `connect_timeout`.
    async fn connect(&self) -> io::Result<Connection> {
        let addr = self
            .shared
            .peer_addr(&self.peer)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "peer no longer known"))?;
        let hello = Hello::new(&self.shared.cluster, &self.shared.node_id).encode()?;
        let limit = self.shared.connect_timeout;
        let attempt = async {
            let stream = TcpStream::connect(addr).await?;
            // Messages are small and latency-bound; batching happens above.
            stream.set_nodelay(true)?;
            let (read_half, write_half) = stream.into_split();
            let mut frames = FramedWrite::new(write_half, codec(self.shared.max_frame_bytes));
            frames.send(hello).await?;
            Ok(Connection { frames, read_half })
        };
        tokio::time::timeout(limit, attempt).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {limit:?}"),
            )
        })?
    }

    /// Starts a failure episode: drop the connection, report the peer
    /// unreachable once, and hold off reconnecting for a while.
    fn fail(&mut self, reason: &str, dropped: usize) {
        warn!(peer = %self.peer, reason, dropped, "peer unreachable");
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::sync::mpsc::error::TryRecvError;
    use tokio::time::timeout;
    use tokio_util::codec::Framed;

    /// Every test body runs under this bound so a bug cannot hang the suite.
    const TEST_TIMEOUT: Duration = Duration::from_secs(20);
    /// How long a single expected event may take on loopback.
    const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
    /// How long to wait to be reasonably sure something does *not* happen.
    const QUIET_PERIOD: Duration = Duration::from_millis(300);
    const MAX_FRAME: usize = 64 * 1024;
    const CLUSTER: &str = "test-cluster";

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    enum TestMsg {
        Ping(u32),
        Text(String),
    }

    type Rx = mpsc::UnboundedReceiver<Inbound<TestMsg>>;

    fn id(name: &str) -> NodeId {
        NodeId::from(name)
    }

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    fn config(name: &str, listen: SocketAddr) -> TransportConfig {
        TransportConfig {
            cluster: CLUSTER.to_string(),
            node_id: id(name),
            listen,
            peers: BTreeMap::new(),
            max_frame_bytes: MAX_FRAME,
            connect_timeout: Duration::from_secs(2),
        }
    }

    /// Shows the transport's log lines in failing tests (`RUST_LOG=debug`).
    fn init_logging() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }

    async fn node(name: &str) -> (Transport<TestMsg>, Rx) {
        node_at(name, loopback()).await
    }

    async fn node_at(name: &str, listen: SocketAddr) -> (Transport<TestMsg>, Rx) {
        init_logging();
        let (tx, rx) = mpsc::unbounded_channel();
        let transport = Transport::bind(config(name, listen), tx)
            .await
            .expect("bind");
        (transport, rx)
    }

    fn introduce(a: &Transport<TestMsg>, b: &Transport<TestMsg>) {
        a.set_peer(b.node_id().clone(), b.local_addr());
        b.set_peer(a.node_id().clone(), a.local_addr());
    }

    /// Two nodes "a" and "b" that know each other.
    async fn pair() -> (Transport<TestMsg>, Rx, Transport<TestMsg>, Rx) {
        let (a, a_rx) = node("a").await;
        let (b, b_rx) = node("b").await;
        introduce(&a, &b);
        (a, a_rx, b, b_rx)
    }

    async fn next_event(rx: &mut Rx) -> Inbound<TestMsg> {
        timeout(EVENT_TIMEOUT, rx.recv())
            .await
            .expect("timed out waiting for an inbound event")
            .expect("inbound channel closed")
    }

    async fn expect_message(rx: &mut Rx, from: &str, msg: TestMsg) {
        let expected = Inbound::Message {
            from: id(from),
            msg,
        };
        assert_eq!(next_event(rx).await, expected);
    }

    async fn expect_silence(rx: &mut Rx) {
        tokio::time::sleep(QUIET_PERIOD).await;
        assert_eq!(
            rx.try_recv().err(),
            Some(TryRecvError::Empty),
            "expected no event"
        );
    }

    fn hello(cluster: &str, node: &str, protocol_version: u16) -> Hello {
        Hello {
            magic: HANDSHAKE_MAGIC,
            protocol_version,
            cluster: cluster.to_string(),
            node: id(node),
        }
    }

    /// A hand-rolled peer connection: sends `hello`, then `msgs`.
    async fn raw_peer(addr: SocketAddr, hello: &Hello, msgs: &[TestMsg]) -> TcpStream {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut framed = Framed::new(stream, codec(MAX_FRAME));
        framed
            .send(hello.encode().unwrap())
            .await
            .expect("send hello");
        for msg in msgs {
            let bytes = Bytes::from(postcard::to_stdvec(msg).unwrap());
            // May fail if the node already rejected the handshake; callers
            // check the outcome on the node's side.
            let _ = framed.send(bytes).await;
        }
        framed.into_inner()
    }

    /// Waits until the other side closes `stream` (EOF or reset).
    async fn expect_closed(stream: &mut TcpStream) {
        let mut buf = [0u8; 16];
        let read = timeout(EVENT_TIMEOUT, stream.read(&mut buf))
            .await
            .expect("connection was not closed");
        assert!(matches!(read, Ok(0) | Err(_)), "expected EOF, got {read:?}");
    }

    /// Sends a message from a proper peer and checks it arrives: the node is
    /// still healthy.
    async fn expect_still_serving(b: &Transport<TestMsg>, b_rx: &mut Rx) {
        let (c, _c_rx) = node("c").await;
        introduce(&c, b);
        c.send(&id("b"), TestMsg::Text("still alive".into()));
        expect_message(b_rx, "c", TestMsg::Text("still alive".into())).await;
    }

    #[tokio::test]
    async fn messages_flow_both_ways() {
        timeout(TEST_TIMEOUT, async {
            let (a, mut a_rx, b, mut b_rx) = pair().await;
            a.send(&id("b"), TestMsg::Ping(1));
            expect_message(&mut b_rx, "a", TestMsg::Ping(1)).await;
            b.send(&id("a"), TestMsg::Text("pong".into()));
            expect_message(&mut a_rx, "b", TestMsg::Text("pong".into())).await;
            // Each node accepted exactly the other's outbound connection.
            assert_eq!(a.accepted_connections(), 1);
            assert_eq!(b.accepted_connections(), 1);
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn send_to_self_is_delivered_locally() {
        timeout(TEST_TIMEOUT, async {
            let (a, mut a_rx) = node("a").await;
            a.send(&id("a"), TestMsg::Ping(7));
            expect_message(&mut a_rx, "a", TestMsg::Ping(7)).await;
            assert_eq!(a.accepted_connections(), 0);
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn many_messages_share_one_connection_in_order() {
        timeout(TEST_TIMEOUT, async {
            let (a, _a_rx, b, mut b_rx) = pair().await;
            const COUNT: u32 = 2_000;
            for i in 0..COUNT {
                a.send(&id("b"), TestMsg::Ping(i));
            }
            for i in 0..COUNT {
                expect_message(&mut b_rx, "a", TestMsg::Ping(i)).await;
            }
            assert_eq!(b.accepted_connections(), 1);
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn unknown_peer_is_reported_unreachable() {
        timeout(TEST_TIMEOUT, async {
            let (a, mut a_rx) = node("a").await;
            a.send(&id("nobody"), TestMsg::Ping(1));
            assert_eq!(
                next_event(&mut a_rx).await,
                Inbound::Unreachable { peer: id("nobody") }
            );
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn garbage_connection_is_closed_and_node_keeps_serving() {
        timeout(TEST_TIMEOUT, async {
            let (b, mut b_rx) = node("b").await;
            // Something that is not a ringkv peer at all.
            let mut http = TcpStream::connect(b.local_addr()).await.unwrap();
            http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            expect_closed(&mut http).await;
            // Pseudo-random bytes behind a plausible length prefix, so they
            // reach the handshake decoder instead of the size check.
            let mut junk = TcpStream::connect(b.local_addr()).await.unwrap();
            let mut bytes = vec![0, 0, 0, 32];
            let mut x: u32 = 0x9E37_79B9;
            bytes.extend((0..32).map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }));
            junk.write_all(&bytes).await.unwrap();
            expect_closed(&mut junk).await;

            assert_eq!(b_rx.try_recv().err(), Some(TryRecvError::Empty));
            expect_still_serving(&b, &mut b_rx).await;
            assert_eq!(b.accepted_connections(), 3);
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn oversize_frame_closes_connection_and_node_keeps_serving() {
        timeout(TEST_TIMEOUT, async {
            let (b, mut b_rx) = node("b").await;
            b.set_peer(id("a"), loopback());
            // A valid handshake and message, then a frame over the limit.
            let hello = hello(CLUSTER, "a", PROTOCOL_VERSION);
            let mut stream = raw_peer(b.local_addr(), &hello, &[TestMsg::Ping(1)]).await;
            expect_message(&mut b_rx, "a", TestMsg::Ping(1)).await;
            let too_big = (MAX_FRAME as u32 + 1).to_be_bytes();
            stream.write_all(&too_big).await.unwrap();
            stream.write_all(&[0u8; 1024]).await.unwrap();
            expect_closed(&mut stream).await;

            assert_eq!(b_rx.try_recv().err(), Some(TryRecvError::Empty));
            expect_still_serving(&b, &mut b_rx).await;
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn undecodable_message_closes_connection() {
        timeout(TEST_TIMEOUT, async {
            let (b, mut b_rx) = node("b").await;
            b.set_peer(id("a"), loopback());
            let hello = hello(CLUSTER, "a", PROTOCOL_VERSION);
            let mut stream = raw_peer(b.local_addr(), &hello, &[]).await;
            // Variant index 200 does not exist in TestMsg.
            stream.write_all(&[0, 0, 0, 2, 200, 1]).await.unwrap();
            expect_closed(&mut stream).await;
            assert_eq!(b_rx.try_recv().err(), Some(TryRecvError::Empty));
            expect_still_serving(&b, &mut b_rx).await;
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn oversize_message_is_dropped_by_sender_without_breaking_the_link() {
        timeout(TEST_TIMEOUT, async {
            let (a, _a_rx, b, mut b_rx) = pair().await;
            a.send(&id("b"), TestMsg::Text("x".repeat(MAX_FRAME + 1)));
            a.send(&id("b"), TestMsg::Ping(2));
            expect_message(&mut b_rx, "a", TestMsg::Ping(2)).await;
            assert_eq!(b.accepted_connections(), 1);
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn bad_handshakes_are_rejected() {
        timeout(TEST_TIMEOUT, async {
            let (b, mut b_rx) = node("b").await;
            b.set_peer(id("a"), loopback());
            let mut bad_magic = hello(CLUSTER, "a", PROTOCOL_VERSION);
            bad_magic.magic = 0xDEAD_BEEF;
            let cases = [
                (
                    "other cluster",
                    hello("other-cluster", "a", PROTOCOL_VERSION),
                ),
                ("unknown node", hello(CLUSTER, "stranger", PROTOCOL_VERSION)),
                ("self impersonation", hello(CLUSTER, "b", PROTOCOL_VERSION)),
                (
                    "wrong protocol version",
                    hello(CLUSTER, "a", PROTOCOL_VERSION + 1),
                ),
                ("bad magic", bad_magic),
            ];
            for (what, hello) in cases {
                let mut stream = raw_peer(b.local_addr(), &hello, &[TestMsg::Ping(1)]).await;
                expect_closed(&mut stream).await;
                // The server side is done with the connection once it is
                // closed, so a delivered message would already be queued.
                assert_eq!(b_rx.try_recv().err(), Some(TryRecvError::Empty), "{what}");
            }
            expect_still_serving(&b, &mut b_rx).await;
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn silent_connection_is_closed_after_handshake_timeout() {
        timeout(TEST_TIMEOUT, async {
            let (tx, _rx) = mpsc::unbounded_channel::<Inbound<TestMsg>>();
            let mut cfg = config("b", loopback());
            cfg.connect_timeout = Duration::from_millis(200);
            let b = Transport::bind(cfg, tx).await.unwrap();
            let mut idle = TcpStream::connect(b.local_addr()).await.unwrap();
            expect_closed(&mut idle).await;
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn unreachable_peer_is_reported_then_reconnects_when_it_comes_up() {
        timeout(TEST_TIMEOUT, async {
            // Reserve a loopback port, then free it so nothing listens there.
            let addr = TcpListener::bind(loopback())
                .await
                .unwrap()
                .local_addr()
                .unwrap();
            let (a, mut a_rx) = node("a").await;
            a.set_peer(id("b"), addr);

            a.send(&id("b"), TestMsg::Ping(0));
            let started = Instant::now();
            assert_eq!(
                next_event(&mut a_rx).await,
                Inbound::Unreachable { peer: id("b") }
            );
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "report was not prompt"
            );
            // More messages in the same episode are dropped without a report
            // per message.
            for i in 1..100 {
                a.send(&id("b"), TestMsg::Ping(i));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let reports = std::iter::from_fn(|| a_rx.try_recv().ok()).count();
            assert!(reports <= 1, "{reports} reports for one episode");

            let (b, mut b_rx) = node_at("b", addr).await;
            b.set_peer(id("a"), a.local_addr());
            // Retry like the protocol layer would, past the reconnect backoff.
            let mut attempt = 1_000;
            loop {
                a.send(&id("b"), TestMsg::Ping(attempt));
                match timeout(QUIET_PERIOD, b_rx.recv()).await {
                    Ok(Some(event)) => {
                        assert_eq!(
                            event,
                            Inbound::Message {
                                from: id("a"),
                                msg: TestMsg::Ping(attempt)
                            }
                        );
                        break;
                    }
                    Ok(None) => panic!("inbound channel closed"),
                    Err(_) => attempt += 1,
                }
            }
            // Once connected, everything gets through.
            a.send(&id("b"), TestMsg::Ping(9_999));
            expect_message(&mut b_rx, "a", TestMsg::Ping(9_999)).await;
            assert_eq!(b.accepted_connections(), 1);
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn peer_shutdown_is_reported_without_sending() {
        timeout(TEST_TIMEOUT, async {
            let (a, mut a_rx, b, mut b_rx) = pair().await;
            a.send(&id("b"), TestMsg::Ping(1));
            expect_message(&mut b_rx, "a", TestMsg::Ping(1)).await;
            drop(b);
            // a's writer notices the closed connection on its own.
            assert_eq!(
                next_event(&mut a_rx).await,
                Inbound::Unreachable { peer: id("b") }
            );
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn set_peer_with_new_address_reconnects_there() {
        timeout(TEST_TIMEOUT, async {
            let (a, _a_rx, b1, mut b1_rx) = pair().await;
            a.send(&id("b"), TestMsg::Ping(1));
            expect_message(&mut b1_rx, "a", TestMsg::Ping(1)).await;
            // "b" moves to a new address (a fresh process).
            let (b2, mut b2_rx) = node("b").await;
            b2.set_peer(id("a"), a.local_addr());
            a.set_peer(id("b"), b2.local_addr());
            a.send(&id("b"), TestMsg::Ping(2));
            expect_message(&mut b2_rx, "a", TestMsg::Ping(2)).await;
            expect_silence(&mut b1_rx).await;
            drop(b1);
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn blocked_peer_is_silent_both_ways_until_unblocked() {
        timeout(TEST_TIMEOUT, async {
            let (a, mut a_rx, b, mut b_rx) = pair().await;
            // Establish connections both ways first, so blocking is tested on
            // live links rather than on links that do not exist yet.
            a.send(&id("b"), TestMsg::Ping(1));
            b.send(&id("a"), TestMsg::Ping(2));
            expect_message(&mut b_rx, "a", TestMsg::Ping(1)).await;
            expect_message(&mut a_rx, "b", TestMsg::Ping(2)).await;

            a.set_blocked(&id("b"), true);
            a.send(&id("b"), TestMsg::Ping(3));
            b.send(&id("a"), TestMsg::Ping(4));
            expect_silence(&mut b_rx).await;
            // No message, and no Unreachable report either: just silence.
            expect_silence(&mut a_rx).await;

            a.set_blocked(&id("b"), false);
            a.send(&id("b"), TestMsg::Ping(5));
            b.send(&id("a"), TestMsg::Ping(6));
            expect_message(&mut b_rx, "a", TestMsg::Ping(5)).await;
            expect_message(&mut a_rx, "b", TestMsg::Ping(6)).await;
            // The links survived the fault; no reconnects were needed.
            assert_eq!(a.accepted_connections(), 1);
            assert_eq!(b.accepted_connections(), 1);
        })
        .await
        .expect("test timed out");
    }

    #[tokio::test]
    async fn bind_rejects_max_frame_too_small_for_handshake() {
        timeout(TEST_TIMEOUT, async {
            let (tx, _rx) = mpsc::unbounded_channel::<Inbound<TestMsg>>();
            let mut cfg = config("a", loopback());
            cfg.max_frame_bytes = 4;
            let err = Transport::bind(cfg, tx).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        })
        .await
        .expect("test timed out");
    }
}
