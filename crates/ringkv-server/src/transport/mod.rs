//! Inter-node TCP transport.
//!
//! Every node keeps **one outbound TCP connection per peer** and writes its
//! messages only there; connections accepted from peers carry messages only
//! the other way (Cassandra uses the same split). That keeps each connection
//! a one-way stream of messages: no request/response pairing and no shared
//! ownership of a socket between a reader and a writer, and "who talks to
//! whom" is explicit. The only frames going back are the acceptor's
//! handshake answer and its acks, which keep the connection honest about
//! being alive (see [`liveness`]).
//!
//! Framing is [`LengthDelimitedCodec`] (u32 big-endian length prefix), every
//! payload is postcard. The first frame each way is a [`Hello`] handshake;
//! every later frame is tagged: one message `M` or a ping from the
//! connector, an ack from the acceptor. The transport is generic over `M`,
//! so it knows nothing about the protocol's message enum. The handshake
//! carries the cluster settings, and a peer whose settings differ is refused
//! on both sides of the connection (see [`handshake`]).
//!
//! A connection that stops carrying frames (a silent partition, a paused
//! peer) is dropped within [`liveness::PROGRESS_TIMEOUT`] of the first
//! frame left unacknowledged, or of the next ping when idle, and the peer
//! reported unreachable; the next message reconnects.
//!
//! Delivery is best effort, deliberately: messages to a peer that cannot be
//! reached are dropped and reported once per failure episode as
//! [`Inbound::Unreachable`]. Timeouts and retries belong to the protocol layer
//! (quorums, hinted handoff, read repair), which has to cope with lost
//! messages anyway. A message that encodes larger than `max_frame_bytes` is
//! never sent, and handed back as [`Inbound::TooLarge`] so the protocol can
//! fail what waits on it at once, with the real cause.
//!
//! Each peer's queue is bounded in frames and bytes (`[limits]
//! peer_queue_frames`, `peer_queue_bytes`): a frame beyond is dropped and
//! counted (see [`crate::shed`]), so a slow or dead peer costs at most its
//! bound of memory. Frames are held against the bound until written (or
//! dropped with a failed batch), so the batch being written counts too.

mod handshake;
mod inbound;
mod liveness;
#[cfg(test)]
mod liveness_tests;
mod outbound;
#[cfg(test)]
mod queue_tests;
mod secure;
mod stats;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::shed::{Bound, Budget, Cause, Held, Priority, Queue, Shedding};
use bytes::Bytes;
use ringkv_core::settings::ClusterSettings;
use ringkv_core::NodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_util::codec::LengthDelimitedCodec;
use tokio_util::sync::CancellationToken;
use tracing::{debug, trace, warn};

use handshake::Hello;
use inbound::accept_loop;
use outbound::{PeerWriter, Queued};
use stats::TransportStats;
pub use stats::{DropCause, TransportCounts};

/// Version of the handshake + framing. Bump on any incompatible wire change;
/// nodes refuse peers that speak another version instead of misparsing them.
/// Version 2 (the release with exact causal contexts): the handshake
/// carries the cluster settings and is answered, gossip entries carry a
/// settings fingerprint, anti-entropy digests may cover a window of a
/// leaf, and contexts and write receipts have their new shapes.
/// Version 3: frames past the handshake carry a one-byte tag (message or
/// ping), and the acceptor sends acks back (see `liveness`).
/// Version 4: members may be removed (two more statuses) and gossip
/// entries name the member a replacement replaces.
/// Version 5: a forwarded request may be answered `Overloaded` (a node
/// sheds load at its bounds); gossip entries carry an incarnation.
/// Version 6: CRDT updates (`ClientOp::Update`, `ClientReply::Updated`,
/// two more client errors) and typed Redis values.
/// Version 7: a lost quorum says what became of the write (`after`),
/// counters' entries are `u128`, lists and sorted sets and pop replies,
/// and tombstone collection (`GcProbe`, `GcVotes`, `GcDelete`).
/// Version 8: a delete carries the `r` and `pr` of its read; a GC probe
/// the context of each state it asks about.
/// Version 9: expiry — a sibling's `expires_at`, a PUT's `ttl_ms`, the
/// `Expire` update.
/// Version 10: a forward carries its write's start-by time, and a
/// coordinator may refuse it as too late (`ClientError::TooLate`).
pub const PROTOCOL_VERSION: u16 = 10;

/// First field of every handshake ("RKV1"). Lets an acceptor tell a ringkv
/// peer from a stray client (a port scanner, an HTTP request) immediately.
pub const HANDSHAKE_MAGIC: u32 = 0x524B_5631;

/// Minimum time between two connection attempts to the same peer, so a dead
/// peer costs one failed connect per window instead of one per message.
/// Short, because it adds to the time a healed link takes to carry traffic
/// again: at worst a connect attempt begun just before the heal times out
/// (`connect_timeout`, 500 ms in the server), then this backoff, then a
/// connect that succeeds: 750 ms plus a round trip, within the 1 s target.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(250);

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
    /// The settings every node of the cluster must share, presented in the
    /// handshake; a peer presenting others is refused.
    pub settings: ClusterSettings,
    /// Address to listen on (port 0 picks a free port; see
    /// [`Transport::local_addr`]).
    pub listen: SocketAddr,
    /// Known nodes and where to reach them. May include this node; that entry
    /// is ignored.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Largest handshake or message payload sent or accepted. A message's
    /// frame adds a one-byte tag to it (transport overhead, so a message
    /// of exactly `max_frame_bytes` fits): the codec allows one byte more.
    pub max_frame_bytes: usize,
    /// Bound on establishing an outbound connection (TCP connect plus sending
    /// the handshake), and on how long an inbound connection may take to send
    /// its handshake.
    pub connect_timeout: Duration,
    /// Mutual TLS on every connection; `None` only for an `insecure`
    /// node (and transport tests), which speaks plaintext.
    pub tls: Option<crate::tls::PeerTls>,
    /// Bound of each peer's outbound queue.
    pub queue: Bound,
    /// Where dropped frames are counted.
    pub shedding: Arc<Shedding>,
}

/// What the transport hands to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inbound<M> {
    /// A message from a peer (or from this node to itself).
    Message { from: NodeId, msg: M },
    /// Messages to `peer` were dropped because it could not be reached.
    /// Reported once per failure episode, not once per message.
    Unreachable { peer: NodeId },
    /// A handshake with `peer` was refused because its cluster settings
    /// differ; `reason` says how in one sentence. Reported once per peer
    /// (until a handshake with it succeeds), not once per attempt.
    Incompatible { peer: NodeId, reason: String },
    /// `msg` to `peer` was not sent: it encodes to `bytes` bytes, more than
    /// `max_frame_bytes`. The message itself comes back so the node knows
    /// exactly which operation failed (its kind, request or exchange).
    TooLarge { peer: NodeId, msg: M, bytes: usize },
}

/// The inter-node transport. Cheap to clone; all clones share the same
/// listener and connections. Dropping the last clone shuts it down: the
/// listener, inbound connections and outbound writers all stop.
pub struct Transport<M> {
    inner: Arc<Inner<M>>,
}

/// A handle that does not keep the transport alive (for what the
/// transport itself holds, such as its inbound sink).
pub struct WeakTransport<M> {
    inner: std::sync::Weak<Inner<M>>,
}

impl<M> WeakTransport<M> {
    /// The transport, unless it has shut down.
    pub fn upgrade(&self) -> Option<Transport<M>> {
        self.inner.upgrade().map(|inner| Transport { inner })
    }
}

impl<M> Transport<M> {
    pub fn downgrade(&self) -> WeakTransport<M> {
        WeakTransport {
            inner: Arc::downgrade(&self.inner),
        }
    }
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
    outbound: Mutex<HashMap<NodeId, PeerQueue>>,
    /// Captured at bind time so the synchronous `send` can spawn writer tasks
    /// even when called from outside the runtime (it must never panic).
    runtime: Handle,
}

/// One peer's outbound queue: the channel to its writer (none until the
/// first frame, or after its address changed) and the budget bounding it,
/// kept across writers so a reconnect to a new address does not double it.
struct PeerQueue {
    tx: Option<mpsc::UnboundedSender<Queued>>,
    budget: Arc<Budget>,
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
    settings: ClusterSettings,
    local_addr: SocketAddr,
    max_frame_bytes: usize,
    connect_timeout: Duration,
    tls: Option<crate::tls::PeerTls>,
    /// Known peers, never including this node.
    peers: Mutex<BTreeMap<NodeId, SocketAddr>>,
    /// Peers whose traffic is silently dropped in both directions (test fault).
    blocked: Mutex<HashSet<NodeId>>,
    /// Peers refused for their settings, and the reason last reported.
    refused: Mutex<HashMap<NodeId, String>>,
    inbound: Box<dyn InboundSink<M>>,
    /// Connections, reconnects and dropped frames (see [`stats`]).
    stats: Arc<TransportStats>,
    shutdown: CancellationToken,
    queue: Bound,
    shedding: Arc<Shedding>,
}

/// Locks a mutex, ignoring poisoning: every critical section here is a plain
/// map operation that leaves the data consistent, and the transport must
/// never panic because some other thread did.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The codec of the connector's frames (handshake, tagged messages and
/// pings), the same on both sides so sender and receiver agree on the limit:
/// `max_frame_bytes` of payload plus the tag.
fn message_codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    codec(max_frame_bytes + liveness::TAG_BYTES)
}

/// A length-delimited codec refusing frames over `max_frame_bytes`.
fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

/// Where the transport hands what arrives. The server gives it the node
/// thread's own queue, so a message reaches the protocol without another
/// task hop; tests give it a tokio channel.
pub trait InboundSink<M>: Send + Sync {
    /// Hand over one event; `bytes` is the encoded size of the message it
    /// carries (the frame's payload; 0 for a report without one), so a
    /// bounded sink need not measure it again. False once nobody listens
    /// any more; a sink that drops the event for lack of room still
    /// answers true.
    fn deliver(&self, inbound: Inbound<M>, bytes: usize) -> bool;
}

impl<M: Send + 'static> InboundSink<M> for mpsc::UnboundedSender<Inbound<M>> {
    fn deliver(&self, inbound: Inbound<M>, _bytes: usize) -> bool {
        self.send(inbound).is_ok()
    }
}

impl<M: Serialize + DeserializeOwned + Send + 'static> Transport<M> {
    /// Binds the listener and starts accepting peers. Messages from peers (and
    /// unreachability reports) are delivered to `inbound`.
    pub async fn bind(
        config: TransportConfig,
        inbound: impl InboundSink<M> + 'static,
    ) -> io::Result<Self> {
        // The u32 length prefix cannot describe anything larger (tag included).
        let max_frame_bytes = config
            .max_frame_bytes
            .min(u32::MAX as usize - liveness::TAG_BYTES);
        let hello = Hello::new(&config.cluster, &config.node_id, &config.settings);
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
            settings: config.settings,
            local_addr,
            max_frame_bytes,
            connect_timeout: config.connect_timeout,
            tls: config.tls,
            peers: Mutex::new(peers),
            blocked: Mutex::new(HashSet::new()),
            refused: Mutex::new(HashMap::new()),
            inbound: Box::new(inbound),
            stats: Arc::default(),
            shutdown: CancellationToken::new(),
            queue: config.queue,
            shedding: config.shedding,
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
        self.counts().accepted
    }

    /// Every transport counter and gauge now, for `/metrics`.
    pub fn counts(&self) -> TransportCounts {
        self.inner.shared.stats.snapshot()
    }

    /// Queues `msg` for `to` and returns immediately. Never blocks, never
    /// panics. Delivery is best effort: if `to` is unknown or cannot be
    /// reached the message is dropped and [`Inbound::Unreachable`] reported;
    /// one larger than `max_frame_bytes` comes back as [`Inbound::TooLarge`].
    /// A message to this node itself is handed straight to `inbound`.
    pub fn send(&self, to: &NodeId, msg: M) {
        let shared = &self.inner.shared;
        if *to == shared.node_id {
            let from = to.clone();
            let bytes = postcard::experimental::serialized_size(&msg).unwrap_or(0);
            shared
                .inbound
                .deliver(Inbound::Message { from, msg }, bytes);
            return;
        }
        if shared.is_blocked(to) {
            trace!(peer = %to, "dropping message to blocked peer");
            shared.stats.dropped(DropCause::Blocked, 1);
            return;
        }
        if !shared.is_known_peer(to) {
            warn!(peer = %to, "dropping message to unknown peer");
            shared.stats.dropped(DropCause::UnknownPeer, 1);
            shared.report_unreachable(to);
            return;
        }
        match self.encode_message(to, &msg) {
            Ok(frame) => self.queue_frame(to, frame),
            Err(Some(bytes)) => {
                shared.stats.dropped(DropCause::TooLarge, 1);
                let peer = to.clone();
                let report = Inbound::TooLarge { peer, msg, bytes };
                shared.inbound.deliver(report, bytes);
            }
            Err(None) => shared.stats.dropped(DropCause::Unencodable, 1),
        }
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
            if let Some(queue) = lock(&self.inner.outbound).get_mut(&id) {
                queue.tx = None;
            }
        }
    }

    /// Whether `peer` is a node this transport knows how to reach.
    pub fn knows(&self, peer: &NodeId) -> bool {
        self.inner.shared.is_known_peer(peer)
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

    /// Serializes `msg` into a tagged frame; the error is its encoded size
    /// (without the tag) when that is larger than `max_frame_bytes`, `None`
    /// (logged) when it cannot be serialized at all. Checked here rather
    /// than in the writer so that an oversized message is dropped alone
    /// instead of failing the encoder and the whole connection.
    fn encode_message(&self, to: &NodeId, msg: &M) -> Result<Bytes, Option<usize>> {
        let max = self.inner.shared.max_frame_bytes;
        match postcard::to_extend(msg, vec![liveness::TAG_MESSAGE]) {
            Ok(frame) if frame.len() - liveness::TAG_BYTES <= max => Ok(Bytes::from(frame)),
            Ok(frame) => {
                let size = frame.len() - liveness::TAG_BYTES;
                warn!(peer = %to, size, max, "dropping message larger than max_frame_bytes");
                Err(Some(size))
            }
            Err(err) => {
                warn!(peer = %to, %err, "dropping message that failed to serialize");
                Err(None)
            }
        }
    }

    /// Hands a frame to the peer's writer task, starting one if needed;
    /// drops it (counted) when the peer's queue is at its bound.
    fn queue_frame(&self, to: &NodeId, frame: Bytes) {
        let shared = &self.inner.shared;
        let mut outbound = lock(&self.inner.outbound);
        let queue = outbound.entry(to.clone()).or_insert_with(|| PeerQueue {
            tx: None,
            budget: Budget::new(shared.queue),
        });
        let permit = match queue.budget.try_take(frame.len(), Priority::Normal) {
            Ok(permit) => permit,
            Err(full) => {
                trace!(peer = %to, ?full, "peer queue full; dropping a frame");
                shared.stats.dropped(DropCause::QueueFull, 1);
                return shared
                    .shedding
                    .record(Queue::PeerOutbound, Cause::from(full));
            }
        };
        // Taken off again by the writer (see `PeerWriter::take`).
        shared.stats.queued(1);
        let mut queued = Queued::new(frame, permit);
        if let Some(tx) = &queue.tx {
            match tx.send(queued) {
                Ok(()) => return,
                // The writer is gone (it can only stop on shutdown); start afresh.
                Err(mpsc::error::SendError(back)) => queued = back,
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // Cannot fail: `rx` is alive right here.
        let _ = tx.send(queued);
        queue.tx = Some(tx);
        let writer = PeerWriter::new(Arc::clone(shared), to.clone(), rx);
        self.inner.runtime.spawn(writer.run());
    }

    /// What each peer's outbound queue holds now (frames being written
    /// included).
    pub fn queued(&self) -> BTreeMap<NodeId, Held> {
        lock(&self.inner.outbound)
            .iter()
            .map(|(peer, queue)| (peer.clone(), queue.budget.held()))
            .collect()
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
        self.inbound.deliver(Inbound::Unreachable { peer }, 0);
    }
}
