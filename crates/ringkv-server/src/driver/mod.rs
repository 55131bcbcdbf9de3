//! Runs one [`Node`] on a dedicated thread, the way Redis or TigerBeetle run
//! their state machine: no locks in the protocol, IO around it.
//!
//! The loop takes a batch of events (client requests, peer messages,
//! transport reports), feeds them to the node, ticks it, then calls
//! [`Store::sync`] once for the whole batch — group commit — and only then
//! releases the batch's effects. No acknowledgement ever leaves before the
//! write it acknowledges is as durable as the fsync policy promises.

mod queue;

pub use queue::{EventQueue, PeerSink};

use crate::members_file;
use crate::metrics::Metrics;
use crate::shed::{Cause, Held, Queue, Shedding};
use crate::status::{self, MembershipReport, VnodeAt};
use crate::transport::{Inbound, Transport};
use queue::{Queued, Sender};
use ringkv_core::anti_entropy::{AeStats, RepairProgress};
use ringkv_core::bucket::{BucketProps, BucketTable};
use ringkv_core::coordinator::ClientId;
use ringkv_core::gossip::{MemberStatus, RemoveRefusal};
use ringkv_core::message::{encoded_len, ClientError, ClientOp, ClientResult, Message};
use ringkv_core::node::{Effect, Node, Ready, Stats, StoreFault};
use ringkv_core::ring_view::RingView;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::Store;
use ringkv_core::{Millis, NodeId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, watch};

/// How often the node is ticked (the resolution of request timeouts).
const TICK: Duration = Duration::from_millis(10);
/// Upper bound on events handled between two syncs, to bound ack latency.
const MAX_BATCH: usize = 1024;

pub type BoxedStore = Box<dyn Store + Send>;

/// What the rest of the server asks of the node thread.
pub enum Event {
    Client {
        op: ClientOp,
        reply: oneshot::Sender<ClientResult>,
    },
    Peer(Inbound<Message>),
    Status(oneshot::Sender<NodeReport>),
    /// The `/ring` document.
    Ring(oneshot::Sender<RingView>),
    /// Every vnode and its owner, for the web console's drawing.
    Vnodes(oneshot::Sender<Vec<VnodeAt>>),
    /// Whether the node is ready, or why not (see [`Node::readiness`]).
    Readiness(oneshot::Sender<Result<(), String>>),
    /// This node's own stored state of a key, bypassing the quorum.
    ReadReplica {
        key: Vec<u8>,
        reply: oneshot::Sender<Result<SiblingSet, String>>,
    },
    /// Force anti-entropy exchanges of every range, or of the one holding
    /// the token; answers how many exchanges were queued.
    Repair {
        token: Option<u64>,
        /// Rebuild every tree from a full store scan first.
        rebuild: bool,
        reply: oneshot::Sender<usize>,
    },
    /// The bucket table as the node holds it now.
    Buckets(oneshot::Sender<BucketTable>),
    /// Start leaving the cluster (the node stops once it has left).
    Leave(oneshot::Sender<()>),
    /// Remove a dead member for good (`force`: even if it is up); answers
    /// its new status, or why not.
    Remove {
        id: NodeId,
        force: bool,
        reply: oneshot::Sender<Result<MemberStatus, RemoveRefusal>>,
    },
    Stop,
}

/// The node's own view for `/status`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub n: usize,
    pub r: usize,
    pub w: usize,
    /// [`ClusterSettings::fingerprint`](ringkv_core::settings::ClusterSettings::fingerprint)
    /// of this node's settings, as 16 hex digits: every node of a cluster
    /// shows the same.
    pub settings_fingerprint: String,
    /// Set when the store failed: the node is read-only until restarted.
    pub store_fault: Option<StoreFault>,
    /// Why the node is not ready (`null` when it is; see `/health/ready`).
    pub not_ready: Option<String>,
    pub in_flight: usize,
    pub stats: Stats,
    /// Peers this node could not reach lately (it skips them as
    /// coordinators for a second).
    pub unreachable_peers: Vec<String>,
    /// Tokens each member's id hashes to: with the members (ids and zones)
    /// all a client needs to compute the ring itself.
    pub vnodes_per_node: u32,
    /// [`Ring::fingerprint`](ringkv_core::ring::Ring::fingerprint) as 16 hex
    /// digits, so a client can check the ring it computed is this one.
    pub ring_fingerprint: String,
    /// Per member: virtual nodes and share of the ring it coordinates.
    pub ring: BTreeMap<String, RingShare>,
    pub anti_entropy: AntiEntropyReport,
    #[serde(flatten)]
    pub membership: MembershipReport,
}

#[derive(Clone, Debug, Serialize)]
pub struct AntiEntropyReport {
    #[serde(flatten)]
    pub stats: AeStats,
    /// A forced repair in progress: exchanges done of total.
    pub repair: Option<RepairProgress>,
    /// Every range this node replicates and how long ago it was last in
    /// sync with a partner (`null`: not yet since start-up).
    pub ranges: Vec<RangeSync>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RangeSync {
    pub start: u64,
    pub end: u64,
    pub synced_ms_ago: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RingShare {
    pub vnodes: usize,
    pub ownership: f64,
}

/// A cheap, cloneable way to talk to the node thread from async code.
#[derive(Clone)]
pub struct NodeHandle {
    tx: Sender,
    /// The fingerprint of the node's current ring, published by the node
    /// thread after every batch, so HTTP answers can carry it without a
    /// round trip to that thread.
    ring: Arc<AtomicU64>,
    /// The cluster's bucket table, published by the node thread when it
    /// changes, so every request finds its bucket without a round trip.
    buckets: Arc<RwLock<BucketTable>>,
    /// The cluster's replication factor (the built-in buckets' N).
    cluster_n: usize,
    /// Set once the node stops by itself.
    ended: watch::Receiver<Option<Ending>>,
}

/// Why a node stops by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It has left the cluster and told the others.
    Left,
    /// It gave up joining the cluster; the sentence says why.
    Refused(String),
}

/// A ring fingerprint as it appears in `/status` and the `X-Ringkv-Ring`
/// header: 16 lowercase hex digits.
pub fn fingerprint_text(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

impl NodeHandle {
    /// The node's current ring fingerprint.
    pub fn ring_fingerprint(&self) -> u64 {
        self.ring.load(Ordering::Relaxed)
    }

    /// Run a client operation. `limit` is a safety net only: the node
    /// answers every operation itself when its quorum timeout expires.
    /// Refused at once with [`ClientError::Overloaded`] when the node
    /// thread's queue is full.
    pub async fn request(&self, op: ClientOp, limit: Duration) -> ClientResult {
        let name = op.name().to_string();
        let (reply, answer) = oneshot::channel();
        let gone = || ClientError::Storage {
            node: "local".into(),
            message: "the node is shutting down".into(),
        };
        let bytes = encoded_len(&op);
        if !self.tx.client(Event::Client { op, reply }, bytes)? {
            return Err(gone());
        }
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(ClientError::Unavailable {
                op: name,
                needed: 1,
                answered: 0,
                replicas: 0,
                after: String::new(),
            }),
        }
    }

    pub async fn read_replica(&self, key: Vec<u8>) -> Option<Result<SiblingSet, String>> {
        let (reply, answer) = oneshot::channel();
        self.ask(Event::ReadReplica { key, reply }, answer).await
    }

    pub async fn repair(&self, token: Option<u64>, rebuild: bool) -> Option<usize> {
        let (reply, answer) = oneshot::channel();
        let event = Event::Repair {
            token,
            rebuild,
            reply,
        };
        self.ask(event, answer).await
    }

    /// The properties of bucket `name`, as this node knows them now.
    pub fn bucket(&self, name: &str) -> Option<BucketProps> {
        let table = self.buckets.read().unwrap_or_else(|e| e.into_inner());
        table.get(name, self.cluster_n)
    }

    /// The cluster's replication factor.
    pub fn cluster_n(&self) -> usize {
        self.cluster_n
    }

    /// Every bucket this node knows, built-in ones first.
    pub fn buckets(&self) -> Vec<(String, BucketProps)> {
        let table = self.buckets.read().unwrap_or_else(|e| e.into_inner());
        table.list(self.cluster_n)
    }

    /// Publish the node's bucket table now (it is published after every
    /// batch anyway): a client that defines a bucket and then writes to it
    /// must find it at once.
    pub async fn refresh_buckets(&self) {
        let (tx, rx) = oneshot::channel();
        if let Some(table) = self.ask(Event::Buckets(tx), rx).await {
            *self.buckets.write().unwrap_or_else(|e| e.into_inner()) = table;
        }
    }

    pub async fn leave(&self) -> Option<()> {
        let (reply, answer) = oneshot::channel();
        self.ask(Event::Leave(reply), answer).await
    }

    /// See [`Event::Remove`]; `None` when the node is shutting down.
    pub async fn remove(
        &self,
        id: NodeId,
        force: bool,
    ) -> Option<Result<MemberStatus, RemoveRefusal>> {
        let (reply, answer) = oneshot::channel();
        self.ask(Event::Remove { id, force, reply }, answer).await
    }

    /// Resolves once the node stops by itself (never, if it does not).
    pub fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut ended = self.ended.clone();
        async move {
            if ended.wait_for(Option::is_some).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Why the node stopped by itself, once it did.
    pub fn ending(&self) -> Option<Ending> {
        self.ended.borrow().clone()
    }

    pub async fn report(&self) -> Option<NodeReport> {
        let (tx, rx) = oneshot::channel();
        self.ask(Event::Status(tx), rx).await
    }

    /// The `/ring` document: members and ring, nothing computed per key.
    pub async fn ring_view(&self) -> Option<RingView> {
        let (tx, rx) = oneshot::channel();
        self.ask(Event::Ring(tx), rx).await
    }

    /// Every vnode of the node's current ring with its owner (see
    /// [`status::vnodes`]).
    pub async fn vnodes(&self) -> Option<Vec<VnodeAt>> {
        let (tx, rx) = oneshot::channel();
        self.ask(Event::Vnodes(tx), rx).await
    }

    /// `Ok` when the node is ready, otherwise why not (see
    /// [`Node::readiness`]); `None` when the node thread is gone.
    pub async fn readiness(&self) -> Option<Result<(), String>> {
        let (tx, rx) = oneshot::channel();
        self.ask(Event::Readiness(tx), rx).await
    }

    /// Send the control `event` and wait for its answer on `answer`;
    /// `None` when the node thread is gone.
    async fn ask<T>(&self, event: Event, answer: oneshot::Receiver<T>) -> Option<T> {
        self.tx.control(event).then_some(())?;
        answer.await.ok()
    }

    pub fn stop(&self) {
        self.tx.control(Event::Stop);
    }

    /// What the node thread's queue holds now.
    pub fn queued(&self) -> Held {
        self.tx.held()
    }
}

/// Start the node thread on `queue`. It enters `runtime` so the transport
/// can spawn its connection tasks from it. `data_dir` is where the node's
/// member list is saved when it changes; `metrics` gets the node's
/// measurements after every batch.
pub fn spawn(
    node: Node<BoxedStore>,
    transport: Transport<Message>,
    queue: EventQueue,
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    runtime: tokio::runtime::Handle,
) -> std::io::Result<(NodeHandle, JoinHandle<()>)> {
    let EventQueue { sender, rx } = queue;
    let shedding = sender.shedding.clone();
    let ring = Arc::new(AtomicU64::new(node.ring().fingerprint()));
    let (ended_tx, ended) = watch::channel(None);
    let name = format!("node-{}", node.id());
    let published = ring.clone();
    let cluster_n = node.settings().n;
    let buckets = Arc::new(RwLock::new(node.membership().buckets().clone()));
    let published_buckets = buckets.clone();
    let thread = std::thread::Builder::new().name(name).spawn(move || {
        let _guard = runtime.enter();
        Driver {
            saved_changes: node.membership().changes(),
            node,
            transport,
            waiting: BTreeMap::new(),
            next_client: 1,
            ring: published,
            buckets: published_buckets,
            buckets_published: u64::MAX,
            data_dir,
            ended: ended_tx,
            metrics,
            shedding,
        }
        .run(rx)
    })?;
    let handle = NodeHandle {
        tx: sender,
        ring,
        buckets,
        cluster_n,
        ended,
    };
    Ok((handle, thread))
}

struct Driver {
    node: Node<BoxedStore>,
    transport: Transport<Message>,
    waiting: BTreeMap<ClientId, oneshot::Sender<ClientResult>>,
    next_client: ClientId,
    ring: Arc<AtomicU64>,
    buckets: Arc<RwLock<BucketTable>>,
    /// The member-list change count whose bucket table was published.
    buckets_published: u64,
    data_dir: PathBuf,
    /// The member-list change count last saved to disk.
    saved_changes: u64,
    ended: watch::Sender<Option<Ending>>,
    metrics: Arc<Metrics>,
    /// Where the core's count of shed operations is mirrored.
    shedding: Arc<Shedding>,
}

impl Driver {
    fn run(mut self, rx: mpsc::Receiver<Queued>) {
        let mut last_tick = now_ms();
        loop {
            let first = match rx.recv_timeout(TICK) {
                Ok(event) => Some(event),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let batch = first
                .into_iter()
                .chain(std::iter::from_fn(|| rx.try_recv().ok()).take(MAX_BATCH));
            let mut stop = false;
            for queued in batch {
                // Its permit goes back once handled.
                stop |= self.handle(queued.event);
            }
            let now = now_ms();
            if now >= last_tick + TICK.as_millis() as Millis {
                self.node.on_tick(now);
                last_tick = now;
            }
            self.commit_and_release(now);
            self.metrics.observe(self.node.take_observations());
            // The protocol may replace the ring while handling events.
            self.ring
                .store(self.node.ring().fingerprint(), Ordering::Relaxed);
            self.publish_buckets();
            self.save_members();
            self.signal_departure(now);
            let shed = self.node.stats().shed_ops;
            self.shedding.mirror(Queue::InFlight, Cause::Count, shed);
            if stop {
                tracing::info!("node {} stopped", self.node.id());
                return;
            }
        }
    }

    /// Feed one event to the node; true when the node must stop.
    fn handle(&mut self, event: Event) -> bool {
        let now = now_ms();
        match event {
            Event::Client { op, reply } => {
                let client = self.next_client;
                self.next_client += 1;
                self.waiting.insert(client, reply);
                self.node.on_client(now, client, op);
            }
            Event::Peer(Inbound::Message { from, msg }) => self.node.on_message(now, from, msg),
            Event::Peer(Inbound::Unreachable { peer }) => self.node.on_unreachable(now, peer),
            Event::Peer(Inbound::Incompatible { peer, reason }) => {
                self.node.on_incompatible(now, peer, reason)
            }
            Event::Peer(Inbound::TooLarge { peer, msg, bytes }) => {
                self.node.on_too_large(now, peer, msg, bytes)
            }
            Event::Status(tx) => {
                let _ = tx.send(self.report(now));
            }
            Event::Ring(tx) => {
                let _ = tx.send(status::ring_view(&self.node));
            }
            Event::Vnodes(tx) => {
                let _ = tx.send(status::vnodes(&self.node));
            }
            Event::Readiness(tx) => {
                let _ = tx.send(self.node.readiness());
            }
            Event::ReadReplica { key, reply } => {
                let found = self.node.store().get(&key).map_err(|e| e.to_string());
                let _ = reply.send(found.map(Option::unwrap_or_default));
            }
            Event::Repair {
                token,
                rebuild,
                reply,
            } => {
                if rebuild {
                    self.node.rebuild_trees();
                }
                let _ = reply.send(self.node.start_repair(token));
            }
            Event::Buckets(reply) => {
                let _ = reply.send(self.node.membership().buckets().clone());
            }
            Event::Leave(reply) => {
                self.node.leave(now);
                let _ = reply.send(());
            }
            Event::Remove { id, force, reply } => {
                let _ = reply.send(self.node.remove(now, &id, force));
            }
            Event::Stop => return true,
        }
        false
    }

    /// Publish the bucket table when the member list changed (a bucket
    /// change counts as one).
    fn publish_buckets(&mut self) {
        let changes = self.node.membership().changes();
        if changes == self.buckets_published {
            return;
        }
        let table = self.node.membership().buckets().clone();
        *self.buckets.write().unwrap_or_else(|e| e.into_inner()) = table;
        self.buckets_published = changes;
    }

    /// Save the member list when it changed, so a restart remembers it.
    fn save_members(&mut self) {
        let changes = self.node.membership().changes();
        if changes == self.saved_changes {
            return;
        }
        let settings = self.node.settings().cluster();
        match members_file::save(&self.data_dir, self.node.membership(), &settings) {
            Ok(()) => self.saved_changes = changes,
            Err(e) => tracing::error!("cannot save the member list: {e}"),
        }
    }

    /// Once the node has left (and every member knows: see
    /// [`Node::may_stop`]), or gave up joining, tell the server to stop.
    fn signal_departure(&mut self, now: Millis) {
        if let Some(reason) = self.node.refusal() {
            self.ended
                .send_replace(Some(Ending::Refused(reason.to_owned())));
            return;
        }
        if self.node.may_stop(now) {
            self.ended.send_replace(Some(Ending::Left));
        }
    }

    /// Group commit: what promises nothing leaves at once; then one sync
    /// for the batch, and what it made true (acknowledgements) after it.
    /// The node turns the promises of a failed sync into failures itself
    /// (see [`Node::after_sync`]).
    fn commit_and_release(&mut self, now: Millis) {
        let Ready { effects, persisted } = self.node.ready();
        self.release(effects);
        if persisted.is_empty() {
            return;
        }
        let synced = self.node.store_mut().sync();
        let released = self.node.after_sync(now, persisted, synced);
        self.release(released);
    }

    fn release(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => self.transport.send(&to, msg),
                Effect::Connect { node, addr } => match addr.parse() {
                    Ok(addr) => self.transport.set_peer(node, addr),
                    Err(_) => tracing::warn!("member {node} has a bad address {addr:?}"),
                },
                Effect::Reply { client, result } => {
                    if let Some(reply) = self.waiting.remove(&client) {
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }

    fn report(&self, now: Millis) -> NodeReport {
        let settings = self.node.settings();
        let ring = self.node.ring();
        let ownership = ring.ownership();
        let shares = ring
            .members()
            .map(|m| {
                let share = RingShare {
                    vnodes: ring.vnode_count(&m.id),
                    ownership: ownership.get(&m.id).copied().unwrap_or(0.0),
                };
                (m.id.to_string(), share)
            })
            .collect();
        NodeReport {
            node: self.node.id().to_string(),
            n: settings.n,
            r: settings.r,
            w: settings.w,
            settings_fingerprint: fingerprint_text(settings.cluster().fingerprint()),
            store_fault: self.node.store_fault().cloned(),
            not_ready: self.node.readiness().err(),
            in_flight: self.node.in_flight(),
            stats: self.node.stats().clone(),
            unreachable_peers: self
                .node
                .unreachable_peers(now)
                .iter()
                .map(NodeId::to_string)
                .collect(),
            vnodes_per_node: ring.vnodes_per_node(),
            ring_fingerprint: fingerprint_text(ring.fingerprint()),
            ring: shares,
            anti_entropy: AntiEntropyReport {
                stats: self.node.anti_entropy_stats().clone(),
                repair: self.node.repair_progress().cloned(),
                ranges: self
                    .node
                    .range_sync_times()
                    .into_iter()
                    .map(|(range, at)| RangeSync {
                        start: range.start,
                        end: range.end,
                        synced_ms_ago: at.map(|t| now.saturating_sub(t)),
                    })
                    .collect(),
            },
            membership: MembershipReport::of(&self.node),
        }
    }
}

/// Wall-clock milliseconds: request deadlines and sibling timestamps.
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}
