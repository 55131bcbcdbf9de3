//! One ringkv node as a sans-IO state machine.
//!
//! Inputs: client operations, messages from peers, "peer unreachable"
//! reports from the transport, and ticks — each with the current time.
//! Outputs: [`Effect`]s, drained by the caller after each batch of inputs.
//! The node owns its [`Store`] and reads/writes it synchronously; the caller
//! must call [`Store::sync`] (group commit) before it releases the effects of
//! a batch, so no write is acknowledged before it is durable.

mod agreement;
mod counts;
mod dedup;
mod exchange;
mod forward;
pub use forward::{FORWARD_FENCE_SKEW_MS, FORWARD_START_WITHIN_MS};
mod gc;
mod handoff;
mod hints;
mod membership;
mod observations;
mod read;
mod readiness;
mod ready;
mod removal;
mod scan;
pub use scan::MAX_COUNT as SCAN_MAX_COUNT;
mod update;
mod write;

pub use counts::StoreCounts;
pub use handoff::HandoffProgress;
use handoff::Part;
pub use observations::{Observations, MAX_OBSERVATIONS};
pub use ready::{Persisted, Ready, StoreFault};

use crate::anti_entropy::AntiEntropy;
use crate::coordinator::{ClientId, InFlight, OpState, Origin, Quorum, ReadPurpose, WriteAcks};
use crate::crdt::Update;
use crate::gossip::Membership;
use crate::keyspace;
use crate::latency::Latency;
use crate::message::{
    encoded_len, ClientError, ClientOp, ClientReply, ClientResult, Message, RequestId,
};
use crate::ring::Ring;
use crate::settings::Settings;
use crate::siblings::{NewVersion, SiblingSet};
use crate::store::{Store, StoreError};
use crate::version::CausalContext;
use crate::{Millis, NodeId};
use std::collections::BTreeMap;

/// Something the caller must do on the node's behalf (see [`Ready`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    Send {
        to: NodeId,
        msg: Message,
    },
    Reply {
        client: ClientId,
        result: ClientResult,
    },
    /// Reach `node` at inter-node address `addr` from now on (a member
    /// learned by gossip, or a seed's pseudo-id).
    Connect {
        node: NodeId,
        addr: String,
    },
}

/// Counters for status pages, metrics and tests: each only ever grows
/// (from zero at start-up), so a scraper can take rates of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Keys whose tombstone (or emptied collection) this node deleted once
    /// every member held it (see [`crate::gc`]).
    pub gc_collected: u64,
    /// Client requests this node sent on to a coordinator (one hop).
    pub forwarded: u64,
    /// Operations this node coordinated.
    pub coordinated: u64,
    /// Stale replicas sent a newer state after a read.
    pub read_repairs: u64,
    /// Operations answered with a quorum error.
    pub unavailable: u64,
    /// Stand-ins this node sent a replica to as coordinator (sloppy quorum).
    pub hinted_writes: u64,
    /// Hints this node kept as coordinator for replicas no stand-in could
    /// cover (they do not count towards W).
    pub last_resort_hints: u64,
    /// New hints this node stored as a stand-in (merges into a hint it
    /// already keeps are not counted again).
    pub hints_stored: u64,
    /// Hints handed back to their owner and deleted.
    pub hints_delivered: u64,
    /// Hints of a member that left or was removed, sent to the key's
    /// replicas instead and forgotten.
    pub hints_rehomed: u64,
    /// Hints refused because `max_hints` were kept, or dropped because they
    /// outlived `max_age_ms`.
    pub hints_dropped: u64,
    /// Messages not sent because they encoded larger than `max_frame_bytes`
    /// (the byte budgets should keep this at zero).
    pub messages_too_large: u64,
    /// Forwards also sent to the next candidate because the first was
    /// later than its recent answers (hedged requests).
    pub hedged_forwards: u64,
    /// Forwards of increments received twice and dropped (see `dedup`).
    pub duplicate_forwards: u64,
    /// Forwarded writes refused unapplied: read past their start-by time
    /// (see [`FORWARD_START_WITHIN_MS`]).
    pub late_forwards: u64,
    /// Operations this node coordinated although it is not in the key's
    /// preference list (no replica was healthy: sloppy quorum).
    pub sloppy_coordinated: u64,
    /// Keys (and their encoded bytes) this node received in transfer
    /// pages of ownership handoffs, over every handoff since start-up.
    pub handoff_keys_received: u64,
    pub handoff_bytes_received: u64,
    /// Ranges whose handoff completed here.
    pub handoff_ranges_fetched: u64,
    /// Keys (and bytes) this node sent in transfer pages to new owners.
    pub handoff_keys_sent: u64,
    pub handoff_bytes_sent: u64,
    /// Keys dropped after their new owners reported holding them.
    pub handoff_keys_dropped: u64,
    /// Client operations (its own clients' and forwarded ones) refused
    /// because [`Settings::max_in_flight`] were in flight.
    pub shed_ops: u64,
}

/// Counters are leased in blocks this large: one fsync per block, and a
/// restart skips at most one block.
const LEASE_BLOCK: u64 = 10_000;

/// The node's dot-counter lease (see [`Store::counter_lease`]).
#[derive(Clone, Copy, Debug)]
struct CounterLease {
    /// The lowest counter a new dot may get: every counter issued before
    /// this node started, or for a key whose history it has since
    /// forgotten, is below it.
    floor: u64,
    /// Counters below this are covered by the durable lease.
    until: u64,
}

/// How long a peer reported unreachable is skipped when picking a
/// coordinator to forward to; afterwards it is tried again.
const UNREACHABLE_FOR_MS: Millis = 1_000;

pub struct Node<S: Store> {
    id: NodeId,
    settings: Settings,
    ring: Ring,
    store: S,
    next_req: RequestId,
    ops: BTreeMap<RequestId, InFlight>,
    /// Non-idempotent forwards taken recently (see `dedup`).
    recent_forwards: dedup::RecentForwards,
    /// Peers the transport could not reach, until when to skip them.
    unreachable: BTreeMap<NodeId, Millis>,
    effects: Vec<Effect>,
    stats: Stats,
    ae: AntiEntropy,
    /// Promises withheld until the store's next sync.
    persisted: Persisted,
    /// Set once the store failed: the node is read-only until restarted.
    fault: Option<StoreFault>,
    /// When this node marked itself left (it then waits to stop).
    left_at: Option<Millis>,
    lease: CounterLease,
    /// Who is in the cluster and who is down (gossip).
    members: Membership,
    /// The ring once pending joins and leaves complete.
    future: Ring,
    /// Ownership handoff: ranges this node is fetching from their owners.
    handoff: handoff::Handoff,
    /// Replicas kept for other nodes and their delivery.
    hints: hints::HintBook,
    /// Tombstone collection (see [`crate::gc`]).
    gc: crate::gc::Gc,
    /// Seeded generator state (splitmix64) for gossip peer choice.
    rng: u64,
    /// Peers the transport refused for their cluster settings, and why.
    incompatible: BTreeMap<NodeId, String>,
    /// Set when this node gave up: joining with settings that differ,
    /// replacing a member that is up, or serving after it was removed.
    refusal: Option<String>,
    /// Since when a replacing node waits for the member it replaces to be
    /// down (see `removal`).
    replace_pending_since: Option<Millis>,
    /// Round trips per peer, for hedging (see [`crate::latency`]).
    latency: Latency,
    /// Keys and bytes in the store, kept on every write (see [`counts`]).
    counts: StoreCounts,
    /// Measurements for the shell's histograms (see [`observations`]).
    observations: Observations,
    /// The time of the latest input, for what happens outside one (a
    /// store failure found deep in a write).
    now: Millis,
}

/// The longest a request waits for one peer before the next candidate is
/// asked too (hedge), ms; at most a quarter of the request timeout.
const MAX_HEDGE_MS: Millis = 250;

impl<S: Store> Node<S> {
    /// A node over `store`, whose anti-entropy trees (and store counts)
    /// are built from a full scan of it. Fails only when the store cannot tell the node's counter
    /// lease: without it the node could reissue a dot.
    pub fn new(id: NodeId, settings: Settings, ring: Ring, store: S) -> Result<Self, StoreError> {
        let members = Membership::bootstrap(&id, &ring, settings.membership.clone());
        let seed = xxhash_rust::xxh3::xxh3_64(id.as_str().as_bytes());
        Node::with_membership(settings, members, store, seed)
    }

    /// A node whose member list comes from gossip state (remembered or
    /// learned from seeds); `rng_seed` drives its random gossip choices.
    /// Its own entry announces the fingerprint of its cluster settings.
    pub fn with_membership(
        settings: Settings,
        mut members: Membership,
        store: S,
        rng_seed: u64,
    ) -> Result<Self, StoreError> {
        assert!(
            settings.max_in_flight >= 1,
            "a node must take on one operation"
        );
        let fingerprint = settings.cluster().fingerprint();
        members.update_me(|me| {
            me.settings_fingerprint = fingerprint;
            // A restart is what ends a read-only state (see `ready`).
            me.read_only = false;
        });
        let id = members.id().clone();
        let ring = members.current_ring(settings.vnodes);
        // Empty until the first tick plans the handoff for the real one.
        let future = Ring::new(settings.vnodes);
        let hints = hints::HintBook::load(&store)?;
        let ae = AntiEntropy::new(settings.anti_entropy.clone());
        let latency = Latency::new(MAX_HEDGE_MS.min(settings.request_timeout_ms / 4));
        let leased = store.counter_lease()?;
        let lease = CounterLease {
            floor: leased,
            until: leased,
        };
        let mut node = Node {
            id,
            settings,
            ring,
            store,
            next_req: first_request_id(rng_seed, leased),
            recent_forwards: Default::default(),
            ops: BTreeMap::new(),
            unreachable: BTreeMap::new(),
            effects: Vec::new(),
            stats: Stats::default(),
            ae,
            persisted: Persisted::default(),
            fault: None,
            left_at: None,
            lease,
            members,
            future,
            handoff: handoff::Handoff::default(),
            gc: crate::gc::Gc::default(),
            hints,
            rng: rng_seed,
            incompatible: BTreeMap::new(),
            refusal: None,
            replace_pending_since: None,
            latency,
            counts: StoreCounts::default(),
            observations: Observations::default(),
            now: 0,
        };
        node.rebuild_trees();
        Ok(node)
    }

    pub fn id(&self) -> &NodeId {
        &self.id
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Membership changes replace the ring; operations in flight keep the
    /// replicas they started with.
    pub fn set_ring(&mut self, ring: Ring) {
        self.ring = ring;
        self.rebuild_trees();
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Keys and bytes in the store, without scanning it.
    pub fn store_counts(&self) -> StoreCounts {
        self.counts
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Crash: drop every volatile thing, keep what was stored.
    pub fn into_store(self) -> S {
        self.store
    }

    /// Peers the transport recently failed to reach, which this node skips
    /// as coordinators until the mark expires.
    pub fn unreachable_peers(&self, now: Millis) -> Vec<NodeId> {
        self.unreachable
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(peer, _)| peer.clone())
            .collect()
    }

    /// Operations still in flight (for tests and status).
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// A front end's request. The node coordinates it itself when it is
    /// the best of the [candidates](Self::coordinator_candidates), or one
    /// of them and the operation may be coordinated by any (see
    /// [`Node::coordinates_where_it_lands`]); otherwise it forwards it one
    /// hop and relays the answer. With no candidate at all it answers at
    /// once: waiting on nodes known to be gone helps nobody.
    pub fn on_client(&mut self, now: Millis, client: ClientId, op: ClientOp) {
        self.now = now;
        if let Err(e) = self.admit().and_then(|()| self.validate(&op)) {
            return self.finish(Origin::Client(client), Err(e));
        }
        let candidates = match &op {
            ClientOp::Scan {
                cursor, keyspace, ..
            } => self.scan_candidates(now, *cursor, keyspace.n(self.settings.n)),
            _ => self.coordinator_candidates(now, op.key(), op.is_write()),
        };
        if candidates.first() == Some(&self.id) || self.coordinates_where_it_lands(&op, &candidates)
        {
            self.coordinate(now, Origin::Client(client), op)
        } else if candidates.is_empty() {
            let replicas = match &op {
                ClientOp::Scan { keyspace, .. } => keyspace.n(self.settings.n),
                _ => self.n_of(op.key()),
            };
            self.finish(Origin::Client(client), Err(no_coordinator(&op, replicas)))
        } else {
            self.forward(now, client, op, candidates)
        }
    }

    /// Whether the node coordinates `op` itself because it is one of its
    /// `candidates`, saving the forwarding hop (Dynamo lets any of the top
    /// N coordinate; dotted versions make that safe). That holds for
    /// - a read: it makes no version, and its quorum is the same from any
    ///   replica;
    /// - an operation that must not run twice (see
    ///   [`ClientOp::is_idempotent`]) of a key with siblings: forwarded,
    ///   it could not be retried
    ///   once its coordinator fell silent, and the client would be told
    ///   its outcome is unknown.
    ///
    /// Other writes keep one coordinator per key, and so does *every*
    /// write of a last-write-wins or typed key (a Redis key: `SET`, `DEL`,
    /// `INCR`, `SADD` alike). Such a write is stamped above what its
    /// coordinator holds (see [`crate::keyspace::stamp_version`]), which
    /// orders the writes of one coordinator; two coordinators order theirs
    /// only by their clocks. A write through a node whose clock lags, or
    /// that has not yet received the write acknowledged before it, would
    /// lose to the older one — or tie in the same millisecond and lose on
    /// the dot: a fresh-eyes user's `SET`, acknowledged after a `DEL` (or
    /// an `INCR`) through another node, read as deleted on every node, in
    /// 11 of 1,500 rounds under load, when `DEL` and `INCR` were
    /// coordinated where they landed. A blind write of a key with siblings
    /// is refused beyond `max_siblings` by its coordinator, which bounds a
    /// key's versions
    /// (and the frames that carry them) only while one node coordinates
    /// them: spread over the replicas, concurrent writes each passed the
    /// check and merged into more, and the simulator saw a read reply
    /// outgrow `max_frame_bytes` (seed 3341). A strict (PR/PW)
    /// operation keeps one coordinator too: spread over coordinators whose
    /// rings differed during a join, the simulator found a strict read
    /// missing a strict write (seed 352).
    fn coordinates_where_it_lands(&self, op: &ClientOp, candidates: &[NodeId]) -> bool {
        let anywhere = match op {
            ClientOp::Get { .. } => true,
            _ => !op.is_idempotent() && !op.is_fenced(),
        };
        anywhere && !op.asks_primaries() && candidates.contains(&self.id)
    }

    pub fn on_message(&mut self, now: Millis, from: NodeId, msg: Message) {
        self.now = now;
        self.members.heard_from(now, &from);
        self.heard_compatible(&from);
        if self.is_removed_member(&from) && !matches!(msg, Message::Gossip(_)) {
            // Fenced: whatever it still holds or coordinates must not come
            // back. Its gossip is answered, which tells it it was removed.
            return;
        }
        let peer = from.clone();
        match msg {
            Message::Replicate { req, key, siblings } => {
                let result = self
                    .merge_local(&key, &siblings)
                    .map(drop)
                    .map_err(|e| e.to_string());
                self.acknowledge(from, Message::ReplicateAck { req, result });
            }
            Message::Repair { key, siblings } => {
                // A failed repair is retried by the next read; nothing to answer.
                let _ = self.merge_local(&key, &siblings);
            }
            Message::Read { req, key } => {
                // Hints included: a stand-in answers with what it keeps.
                let result = self.local_state(&key).map_err(|e| e.to_string());
                self.send(from, Message::ReadReply { req, result });
            }
            Message::Forward { req, op, start_by } => {
                if !op.is_idempotent() && !self.recent_forwards.first(&from, req) {
                    self.stats.duplicate_forwards += 1;
                    return;
                }
                let origin = Origin::Peer {
                    node: from.clone(),
                    req,
                };
                if op.is_fenced() && now > start_by {
                    // Its forwarder may have moved on (see `forward`).
                    self.stats.late_forwards += 1;
                    let node = self.id.to_string();
                    return self.finish(origin, Err(ClientError::TooLate { node }));
                }
                if let Err(e) = self.admit() {
                    return self.finish(origin, Err(e));
                }
                if op.is_write() {
                    // Only a write's forwarder uses it (to hold back a
                    // hedge that could duplicate it): one message fewer
                    // per forwarded read.
                    self.send(from, Message::ForwardAccepted { req });
                }
                match self.validate(&op) {
                    Ok(()) => self.coordinate(now, origin, op),
                    Err(e) => self.finish(origin, Err(e)),
                }
            }
            Message::ReplicateAck { req, result } => {
                self.on_put_ack(now, req, &from, result.is_ok())
            }
            Message::ReadReply { req, result } => self.on_read_reply(now, req, &from, result.ok()),
            Message::ForwardReply { req, result } => self.on_forward_reply(now, req, &from, result),
            Message::ForwardAccepted { req } => self.on_forward_accepted(req, &from),
            Message::AntiEntropy {
                exchange,
                range,
                step,
            } => self.on_exchange(now, from, exchange, range, step),
            Message::Gossip(msg) => self.on_gossip(now, from, msg),
            Message::HintedReplicate {
                req,
                owner,
                key,
                siblings,
            } => self.on_hinted_replicate(now, from, req, owner, key, siblings),
            Message::HintDelivery { req, entries } => self.on_hint_delivery(from, req, entries),
            Message::HintDeliveryAck { req, result } => {
                self.on_hint_delivery_ack(now, from, req, result)
            }
            Message::TransferRequest { range, n, after } => {
                self.on_transfer_request(from, Part { range, n }, after)
            }
            Message::TransferPage {
                range,
                n,
                entries,
                next,
            } => self.on_transfer_page(now, from, Part { range, n }, entries, next),
            Message::GcProbe { req, keys } => self.on_gc_probe(from, req, keys),
            Message::GcVotes { req, yes } => self.on_gc_votes(&from, req, yes),
            Message::GcDelete { keys } => self.on_gc_delete(keys),
        }
        self.tell_fenced(&peer);
    }

    /// The transport could not deliver to `peer`: count it as failed in
    /// every operation waiting on it (a write sends its copy to a stand-in),
    /// give up a hint delivery to it, and skip it as a coordinator and write
    /// replica for a while.
    pub fn on_unreachable(&mut self, now: Millis, peer: NodeId) {
        self.now = now;
        self.unreachable
            .insert(peer.clone(), now + UNREACHABLE_FOR_MS);
        self.ae.peer_unreachable(&peer);
        self.hints.owner_unreachable(&peer);
        let waiting: Vec<RequestId> = self
            .ops
            .iter()
            .filter(|(_, op)| match &op.state {
                OpState::Put(p) => p.quorum.awaits(&peer),
                OpState::Get(g) => g.quorum.awaits(&peer),
                OpState::Forward(f) => f.asked_at(&peer).is_some(),
            })
            .map(|(req, _)| *req)
            .collect();
        for req in waiting {
            match self.ops.get(&req).map(|op| &op.state) {
                Some(OpState::Put(_)) => self.on_put_ack(now, req, &peer, false),
                Some(OpState::Get(_)) => self.on_read_reply(now, req, &peer, None),
                _ => self.forward_target_failed(now, req, &peer, false),
            }
        }
    }

    /// The transport did not send `msg` to `peer`: it encodes to `bytes`
    /// bytes, more than a frame. Count it, say so once, and fail what
    /// waits on it now with that cause instead of letting it time out.
    pub fn on_too_large(&mut self, now: Millis, peer: NodeId, msg: Message, bytes: usize) {
        self.stats.messages_too_large += 1;
        let cause = format!(
            "a message ({}) to {peer} encodes to {bytes} bytes, more than max_frame_bytes ({})",
            msg.kind(),
            self.settings.max_frame_bytes()
        );
        tracing::error!("node {}: {cause}; it was not sent", self.id);
        match msg {
            Message::HintDelivery { req, .. } => self.hints.delivery_failed(req, &cause),
            Message::AntiEntropy { exchange, .. } => self.ae.fail_with(&exchange, cause),
            Message::Forward { req, .. } => self.fail_forward(req, ClientError::Invalid(cause)),
            Message::Replicate { req, .. } | Message::HintedReplicate { req, .. } => {
                self.on_put_ack(now, req, &peer, false)
            }
            Message::Read { req, .. } => self.on_read_reply(now, req, &peer, None),
            // Answers, repairs, gossip and transfers: the asker times out or
            // the next round sends again, within budgets.
            _ => {}
        }
    }

    /// Time passed: expire operations whose deadline is over, give writes'
    /// silent replicas stand-ins, and run the periodic protocols (anti-entropy,
    /// gossip, hint delivery, ownership handoff).
    pub fn on_tick(&mut self, now: Millis) {
        self.now = now;
        self.unreachable.retain(|_, until| *until > now);
        let expired: Vec<RequestId> = self
            .ops
            .iter()
            .filter(|(_, op)| op.deadline <= now)
            .map(|(req, _)| *req)
            .collect();
        for req in expired {
            self.expire(now, req);
        }
        self.cover_silent_replicas(now);
        self.cover_silent_reads(now);
        self.hedge_forwards(now);
        self.tick_anti_entropy(now);
        self.tick_membership(now);
        self.tick_removal(now);
        self.tick_hints(now);
        self.tick_handoff(now);
        self.tick_gc(now);
    }

    /// Load shedding: a new client operation (this node's client's, or
    /// one forwarded to it) is refused at once, before anything is done
    /// with it, while [`Settings::max_in_flight`] operations are in
    /// flight. Refusing early is cheap and tells the client to back off;
    /// taking it on would only make every operation in flight slower, and
    /// the node's memory grow with the backlog. What is in flight and has
    /// not answered is never touched (see [`Self::yield_oldest_answered`]
    /// for what has): a continuation (a delete's write after its read, a
    /// forward moving on to the next coordinator) is not a new operation.
    ///
    /// Why this bounds `ops` by twice the limit (asserted in `track`):
    /// every operation taken on holds at least one entry of `ops` until it
    /// ends, so fewer than `max_in_flight` operations are live when one is
    /// admitted, at most `max_in_flight` after; and one holds at most two
    /// entries (a delete without a context keeps its read, for read
    /// repair, while its write runs).
    fn admit(&mut self) -> Result<(), ClientError> {
        let limit = self.settings.max_in_flight;
        if self.ops.len() >= limit {
            self.yield_oldest_answered();
        }
        if self.ops.len() < limit {
            return Ok(());
        }
        self.stats.shed_ops += 1;
        Err(ClientError::Overloaded {
            node: self.id.to_string(),
            what: "operations in flight".into(),
            limit,
        })
    }

    /// An operation whose quorum is decided has answered its client; it
    /// stays only to hear from late replicas (for read repair, or to give
    /// a silent one a stand-in). At the limit, the oldest such yields its
    /// place to a new client operation: otherwise one slow replica would
    /// have a single client, sending one request at a time, shed as if the
    /// node were overloaded. What the late replica misses, anti-entropy
    /// brings it.
    fn yield_oldest_answered(&mut self) {
        let oldest = self
            .ops
            .iter()
            .filter(|(_, op)| match &op.state {
                OpState::Put(p) => p.quorum.decided(),
                OpState::Get(g) => g.quorum.decided(),
                OpState::Forward(_) => false,
            })
            .min_by_key(|(req, op)| (op.started, **req))
            .map(|(req, _)| *req);
        if let Some(req) = oldest {
            self.retire(req);
        }
    }

    /// How many replicas hold `key` (its bucket's N, see [`keyspace::n_of`]).
    pub(crate) fn n_of(&self, key: &[u8]) -> usize {
        keyspace::n_of(key, self.settings.n)
    }

    /// The R a read of `key` waits for without one of its own: the node's,
    /// at most the key's N.
    pub(crate) fn default_r(&self, key: &[u8]) -> usize {
        self.settings.r.min(self.n_of(key))
    }

    /// The W of a write of `key` without one of its own (as [`Node::default_r`]).
    pub(crate) fn default_w(&self, key: &[u8]) -> usize {
        self.settings.w.min(self.n_of(key))
    }

    fn validate(&self, op: &ClientOp) -> Result<(), ClientError> {
        let s = &self.settings;
        if let ClientOp::Scan { count, .. } = op {
            return scan::check_count(*count);
        }
        if let ClientOp::DefineBucket { name, .. } = op {
            return crate::bucket::check_name(name).map_err(ClientError::Invalid);
        }

        let key = op.key();
        if key.is_empty() || key.len() > s.max_key_bytes {
            return Err(ClientError::Invalid(format!(
                "key must be 1 to {} bytes, got {}",
                s.max_key_bytes,
                key.len()
            )));
        }
        let (w, pw) = match op {
            ClientOp::Get { r, pr, .. } => return self.check_read_quorum(key, *r, *pr),
            ClientOp::Put {
                value,
                context,
                w,
                pw,
                ttl_ms,
                ..
            } => {
                check_ttl(*ttl_ms)?;
                let size = payload_len(key, value);
                if size > s.max_value_bytes {
                    return Err(ClientError::Invalid(format!(
                        "value must be at most {} bytes, got {size}",
                        s.max_value_bytes,
                    )));
                }
                check_context(context, s)?;
                (*w, *pw)
            }
            ClientOp::Delete {
                context,
                r,
                pr,
                w,
                pw,
                ..
            } => {
                if let Some(context) = context {
                    check_context(context, s)?;
                }
                self.check_read_quorum(key, *r, *pr)?;
                (*w, *pw)
            }
            ClientOp::Update { update, w, pw, .. } => {
                if let Update::Expire(ttl) = update {
                    check_ttl(*ttl)?;
                }
                check_update(key, update, s)?;
                (*w, *pw)
            }
            // Checked first: a scan has no key.
            ClientOp::Scan { count, .. } => return scan::check_count(*count),
            ClientOp::DefineBucket { .. } => return Ok(()),
        };
        let n = self.n_of(key);
        check_quorum("w", w, n)?;
        check_quorum("pw", pw, n)?;
        let w = w.unwrap_or(self.default_w(key));
        match pw {
            Some(pw) if pw > w => Err(ClientError::Invalid(format!(
                "pw must not exceed w ({w}), got {pw}"
            ))),
            _ => Ok(()),
        }
    }

    fn coordinate(&mut self, now: Millis, origin: Origin, op: ClientOp) {
        self.stats.coordinated += 1;
        match op {
            ClientOp::Get { key, r, pr } => {
                self.start_read(now, origin, key, (r, pr), ReadPurpose::Get)
            }
            ClientOp::Put {
                key,
                value,
                context,
                w,
                pw,
                ttl_ms,
            } => {
                let acks = WriteAcks { w, pw };
                let version =
                    NewVersion::new(Some(value), ttl_ms.map(|ttl| now.saturating_add(ttl)));
                self.start_write(now, origin, key, version, context, acks)
            }
            ClientOp::Delete {
                key,
                context: Some(context),
                w,
                pw,
                ..
            } => {
                let acks = WriteAcks { w, pw };
                self.start_write(now, origin, key, NewVersion::tombstone(), context, acks)
            }
            ClientOp::Delete {
                key,
                context: None,
                r,
                pr,
                w,
                pw,
            } => {
                let purpose = ReadPurpose::DeleteAfterRead(WriteAcks { w, pw });
                self.start_read(now, origin, key, (r, pr), purpose)
            }
            ClientOp::Update { key, update, w, pw } => {
                let purpose = ReadPurpose::UpdateAfterRead(update, WriteAcks { w, pw });
                self.start_read(now, origin, key, (None, None), purpose)
            }
            ClientOp::Scan {
                cursor,
                count,
                keyspace,
            } => {
                let page = self.scan(cursor, count, &keyspace);
                self.finish(origin, page)
            }
            ClientOp::DefineBucket { name, props, .. } => {
                let defined = self.define_bucket(now, &name, props);
                let table = self.members.buckets().clone();
                self.finish(origin, defined.map(|()| ClientReply::BucketDefined(table)))
            }
        }
    }

    /// Once every replica answered, repair the stale ones and forget the op.
    fn retire_if_complete(&mut self, req: RequestId) {
        let complete = match self.ops.get(&req).map(|op| &op.state) {
            Some(OpState::Put(p)) => p.quorum.complete(),
            Some(OpState::Get(g)) => g.quorum.complete(),
            _ => false,
        };
        if complete {
            self.retire(req);
        }
    }

    fn expire(&mut self, now: Millis, req: RequestId) {
        if let Some(OpState::Put(put)) = self.ops.get(&req).map(|op| &op.state) {
            // Replicas still silent: their copies wait here as hints.
            let silent: Vec<NodeId> = put.quorum.replicas().iter().cloned().collect();
            for replica in &silent {
                self.hint_missed(now, req, replica);
            }
        }
        let verdict = match self.ops.get_mut(&req).map(|op| &mut op.state) {
            Some(OpState::Put(p)) => p.quorum.expire(),
            Some(OpState::Get(g)) => g.quorum.expire(),
            Some(OpState::Forward(f)) => {
                let silent = f.asked.first().map(|(n, _)| n.clone());
                return self.retry_forward(now, req, silent.as_ref());
            }
            None => return,
        };
        match (verdict, self.ops.get(&req).map(|op| &op.state)) {
            (Some(v), Some(OpState::Put(_))) => self.conclude_put(req, v),
            (Some(v), Some(OpState::Get(_))) => self.conclude_read(now, req, v),
            _ => {}
        }
        self.retire(req);
    }

    fn retire(&mut self, req: RequestId) {
        if let Some(InFlight {
            state: OpState::Get(get),
            ..
        }) = self.ops.remove(&req)
        {
            self.read_repair(&get);
        }
    }

    fn read_local(&self, key: &[u8]) -> Result<SiblingSet, ClientError> {
        let found = self.store.get(key).map_err(|e| self.storage_error(e))?;
        Ok(found.unwrap_or_default())
    }

    /// Store `key`'s new state (replacing `old`) and keep its Merkle tree
    /// in step; refused while the node is read-only.
    fn write_local(
        &mut self,
        key: &[u8],
        old: &SiblingSet,
        new: &SiblingSet,
    ) -> Result<(), ClientError> {
        self.writable()?;
        if let Err(e) = self.store.put(key, new) {
            // Whatever the engine kept of it cannot be trusted: read-only,
            // and the refusal tells a forwarder nothing was written here.
            self.store_failed(self.now, &e);
            return self.writable();
        }
        self.track_write(key, old, new);
        self.counts.replace(key, old, new);
        self.gc_note(key, new);
        Ok(())
    }

    /// Merge a replica's state into ours; writes only when something
    /// changed, and says whether it did.
    fn merge_local(&mut self, key: &[u8], incoming: &SiblingSet) -> Result<bool, ClientError> {
        let fenced = self.gc_fenced(key, incoming);
        let incoming = fenced.as_ref().unwrap_or(incoming);
        let old = self.read_local(key)?;
        let mut set = old.clone();
        let changed = set.merge(incoming);
        if changed {
            self.write_local(key, &old, &set)?;
            self.keep_counters_above(&old, &set);
            self.note_if_stray(key);
        }
        Ok(changed)
    }

    /// A merge can make this node forget its own latest dot of a key: a
    /// version superseded it, and pruning dropped this node's entry from
    /// the superseding version's context. Its next dot for the key would
    /// then repeat an old one, which a stale context still covers — so
    /// raise the floor of new dots above every counter issued so far.
    fn keep_counters_above(&mut self, old: &SiblingSet, new: &SiblingSet) {
        if new.max_counter(&self.id) < old.max_counter(&self.id) {
            self.lease.floor = self.lease.until;
        }
    }

    /// Make sure the durable lease covers `counter` before it is used.
    fn cover_counter(&mut self, counter: u64) -> Result<(), ClientError> {
        if counter < self.lease.until {
            return Ok(());
        }
        let until = counter + LEASE_BLOCK;
        self.store
            .set_counter_lease(until)
            .map_err(|e| self.storage_error(e))?;
        self.lease.until = until;
        Ok(())
    }

    fn storage_error(&self, e: StoreError) -> ClientError {
        ClientError::Storage {
            node: self.id.to_string(),
            message: e.0,
        }
    }

    fn finish(&mut self, origin: Origin, result: ClientResult) {
        if matches!(result, Err(ClientError::Unavailable { .. })) {
            self.stats.unavailable += 1;
        }
        match origin {
            Origin::Client(client) => self.effects.push(Effect::Reply { client, result }),
            Origin::Peer { node, req } => self.send(node, Message::ForwardReply { req, result }),
        }
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.effects.push(Effect::Send { to, msg });
    }

    /// Answer a replica write (or hint, or delivery): a success promises
    /// the data is stored, so it waits for the sync; a failure goes at once.
    fn acknowledge(&mut self, to: NodeId, msg: Message) {
        let stored = matches!(
            &msg,
            Message::ReplicateAck { result: Ok(()), .. }
                | Message::HintDeliveryAck { result: Ok(()), .. }
        );
        if stored {
            self.send_after_sync(to, msg);
        } else {
            self.send(to, msg);
        }
    }

    /// Send `msg` to every replica except this node.
    fn send_to_others(&mut self, replicas: &[NodeId], msg: Message) {
        for peer in replicas {
            if *peer != self.id {
                self.send(peer.clone(), msg.clone());
            }
        }
    }

    fn track(&mut self, now: Millis, deadline: Millis, req: RequestId, state: OpState) {
        let op = InFlight {
            started: now,
            deadline,
            state,
        };
        self.ops.insert(req, op);
        assert!(
            self.ops.len() <= 2 * self.settings.max_in_flight,
            "{} operations in flight, over twice the limit of {} (see `admit`)",
            self.ops.len(),
            self.settings.max_in_flight
        );
    }

    /// Everything this node holds of `key`: its own copy merged with the
    /// hints it keeps for the key's replicas. A coordinator writes on top
    /// of all of it (so its new dot is above every dot of its it holds),
    /// and a stand-in answers reads with it.
    fn local_state(&self, key: &[u8]) -> Result<SiblingSet, ClientError> {
        let mut set = self.read_local(key)?;
        for hint in self.hints_of(key).map_err(|e| self.storage_error(e))? {
            set.merge(&hint);
        }
        Ok(set)
    }

    fn next_request(&mut self) -> RequestId {
        let req = self.next_req;
        self.next_req += 1;
        req
    }
}

/// Where this life's request ids start: drawn from the start's random seed
/// and counter lease, so a restarted node does not reuse its last life's
/// ids. A peer's late answer to an old request would otherwise be taken
/// for the answer to a new one (a read merged another key's siblings, the
/// simulator found: seed 5845 of a helper session), and a forward would be
/// dropped as a duplicate of an old one.
fn first_request_id(rng_seed: u64, leased: u64) -> RequestId {
    let mut z = rng_seed ^ leased.rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    // Leave room below 2^63 for a life's requests without wrapping.
    ((z ^ (z >> 31)) >> 2).max(1)
}

/// A lost quorum as the client sees it: counted against the preference
/// list, and when the PW rule is what failed, its numbers under "(pw)".
fn unavailable(op: Lost, quorum: &Quorum, answered: usize) -> ClientError {
    let replicas = quorum.primaries().len();
    let (name, after) = match op {
        Lost::Read(name) => (name, String::new()),
        Lost::ReadBeforeDelete => ("the read before the delete", "; a delete without a context reads the key first: lower its r, or send the context of an earlier read".to_string()),
        Lost::Write(name) => (name, "; it was written where acknowledged and will reach the other replicas".to_string()),
        Lost::Increment(name) => (name, "; it was applied where acknowledged and will reach the other replicas: read the key before retrying, a retry would apply it twice".to_string()),
    };
    if quorum.short_of_primaries() {
        let rule = if matches!(op, Lost::Read(_) | Lost::ReadBeforeDelete) {
            "pr"
        } else {
            "pw"
        };
        return ClientError::Unavailable {
            op: format!("{name} ({rule})"),
            needed: quorum.primaries_needed,
            answered: quorum.primary_successes(),
            replicas,
            after,
        };
    }
    ClientError::Unavailable {
        op: name.to_string(),
        needed: quorum.needed,
        answered,
        replicas,
        after,
    }
}

/// What lost its quorum, for [`unavailable`]'s sentence.
#[derive(Clone, Copy)]
enum Lost {
    Read(&'static str),
    /// The read a delete without a context makes (its R, not its W).
    ReadBeforeDelete,
    /// A write that a retry applies once more without harm.
    Write(&'static str),
    /// A write that a retry would apply twice (an increment, an add, a
    /// push or a pop).
    Increment(&'static str),
}

/// The bytes of `value` the client sent: a Redis key's value carries one
/// type tag byte more (see [`crate::crdt::Value`]), which the limit does
/// not count — a `SET` of exactly `max_value_bytes` fits.
pub(crate) fn payload_len(key: &[u8], value: &[u8]) -> usize {
    let tagged = keyspace::policy_of(key) == keyspace::ConflictPolicy::Typed;
    value.len().saturating_sub(usize::from(tagged))
}

/// An optional `r`, `w` or `pw` must be within `1..=n`.
/// A TTL is at least 1 ms (a value that expires as it is written is a
/// delete: front ends send one instead, as Redis deletes on `EXPIRE k 0`).
fn check_ttl(ttl_ms: Option<Millis>) -> Result<(), ClientError> {
    match ttl_ms {
        Some(0) => Err(ClientError::Invalid(
            "ttl must be at least 1 ms; to remove a value now, delete it".into(),
        )),
        Some(ttl) if ttl > crate::siblings::MAX_TTL_MS => Err(ClientError::Invalid(format!(
            "ttl must be at most {} ms (100 years), got {ttl}",
            crate::siblings::MAX_TTL_MS
        ))),
        _ => Ok(()),
    }
}

fn check_quorum(name: &str, quorum: Option<usize>, n: usize) -> Result<(), ClientError> {
    match quorum {
        Some(q) if q == 0 || q > n => Err(ClientError::Invalid(format!(
            "{name} must be within 1..={n}, got {q}"
        ))),
        _ => Ok(()),
    }
}

impl<S: Store> Node<S> {
    /// An optional `r` and `pr` within `1..=n` of `key`, `pr` at most the
    /// `r` used.
    fn check_read_quorum(
        &self,
        key: &[u8],
        r: Option<usize>,
        pr: Option<usize>,
    ) -> Result<(), ClientError> {
        let n = self.n_of(key);
        check_quorum("r", r, n)?;
        check_quorum("pr", pr, n)?;
        let r = r.unwrap_or(self.default_r(key));
        match pr {
            Some(pr) if pr > r => Err(ClientError::Invalid(format!(
                "pr must not exceed r ({r}), got {pr}"
            ))),
            _ => Ok(()),
        }
    }
}

/// A write's causal context may be as large as a read of a full sibling
/// set returns, no larger: so the write, forwarded or replicated, always
/// fits a frame.
fn check_context(context: &CausalContext, s: &Settings) -> Result<(), ClientError> {
    let bytes = encoded_len(context);
    if bytes > s.max_client_context_bytes() {
        return Err(ClientError::Invalid(format!(
            "causal context must encode to at most {} bytes, got {bytes}",
            s.max_client_context_bytes()
        )));
    }
    Ok(())
}

/// No node of the preference list could coordinate the operation.
fn no_coordinator(op: &ClientOp, replicas: usize) -> ClientError {
    ClientError::Unavailable {
        op: op.name().to_string(),
        needed: 1,
        answered: 0,
        replicas,
        after: String::new(),
    }
}

/// An update applies to the Redis keyspace only (sibling keys have no
/// type), and carries at most a value's worth of members.
fn check_update(key: &[u8], update: &Update, s: &Settings) -> Result<(), ClientError> {
    if keyspace::policy_of(key) != keyspace::ConflictPolicy::Typed {
        return Err(ClientError::Invalid(
            "typed updates (counters, sets) apply to keys of typed buckets only".into(),
        ));
    }
    if update.size() > s.max_value_bytes {
        return Err(ClientError::Invalid(format!(
            "members must be at most {} bytes in all, got {}",
            s.max_value_bytes,
            update.size()
        )));
    }
    Ok(())
}
