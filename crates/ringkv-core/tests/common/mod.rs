//! A tiny deterministic network for driving node state machines in tests:
//! messages are delivered in order, down nodes bounce (the transport reports
//! them unreachable), cut links drop silently, a message larger than the
//! frame limit is handed back to its sender (as the transport does), and
//! time only moves when a test says so.

#![allow(dead_code)] // each test file uses a different part

use ringkv_core::coordinator::ClientId;
use ringkv_core::message::{encoded_len, ClientOp, ClientReply, ClientResult, Message};
use ringkv_core::node::{Effect, Node};
use ringkv_core::ring::{Ring, RingMember};
use ringkv_core::settings::Settings;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::{Store, StoreError};
use ringkv_core::version::CausalContext;
use ringkv_core::{Millis, NodeId};
pub use ringkv_store::MemoryStore;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub struct Net {
    pub nodes: BTreeMap<NodeId, Node<MemoryStore>>,
    pub queue: VecDeque<(NodeId, NodeId, Message)>,
    pub replies: BTreeMap<ClientId, ClientResult>,
    pub down: BTreeSet<NodeId>,
    pub cut: BTreeSet<(NodeId, NodeId)>,
    pub now: Millis,
    pub next_client: ClientId,
    /// Every delivered message, when `recording` is on.
    pub recording: bool,
    pub log: Vec<(NodeId, NodeId, Message)>,
    /// Messages that encode larger than this are not delivered but handed
    /// back to the sender (`Node::on_too_large`); the nodes' own
    /// `max_frame_bytes` unless a test lowers it.
    pub frame_limit: usize,
    /// The largest message sent so far, in encoded bytes.
    pub largest: usize,
    /// Nodes whose store syncs fail (an I/O error).
    pub failing_syncs: BTreeSet<NodeId>,
}

pub fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

impl Net {
    /// Members `names` with collection a second after a key dies and
    /// anti-entropy every 100 ms: the tombstone and expiry tests' cluster.
    pub fn fast_gc(names: &[&str]) -> Net {
        let mut settings = Settings::default();
        settings.gc.grace_ms = 1_000;
        settings.gc.interval_ms = 100;
        settings.anti_entropy.interval_ms = 100;
        Net::build(names, settings, |_| Default::default())
    }

    pub fn new(names: &[&str]) -> Net {
        Net::build(names, Settings::default(), |_| MemoryStore::default())
    }

    /// A network of `names` with `settings`, each node starting on the
    /// store `store_for(name)` gives.
    pub fn build(
        names: &[&str],
        settings: Settings,
        mut store_for: impl FnMut(&str) -> MemoryStore,
    ) -> Net {
        let members = names.iter().map(|n| RingMember::new(id(n)));
        let ring = Ring::with_members(members, settings.vnodes);
        let nodes = names
            .iter()
            .map(|n| {
                let node = Node::new(id(n), settings.clone(), ring.clone(), store_for(n))
                    .expect("a memory store has a lease");
                (id(n), node)
            })
            .collect();
        Net {
            nodes,
            queue: VecDeque::new(),
            replies: BTreeMap::new(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            now: 1_000,
            next_client: 1,
            recording: false,
            log: Vec::new(),
            frame_limit: settings.max_frame_bytes(),
            largest: 0,
            failing_syncs: BTreeSet::new(),
        }
    }

    pub fn node(&mut self, n: &str) -> &mut Node<MemoryStore> {
        self.nodes.get_mut(&id(n)).expect("node")
    }

    pub fn cut_link(&mut self, a: &str, b: &str) {
        self.cut.insert((id(a), id(b)));
        self.cut.insert((id(b), id(a)));
    }

    pub fn collect(&mut self, from: &NodeId) {
        let now = self.now;
        let mut too_large = Vec::new();
        let node = self.nodes.get_mut(from).expect("node");
        let effects = if self.failing_syncs.contains(from) {
            let failed = StoreError("Input/output error (os error 5)".into());
            drain_after(node, now, Err(failed))
        } else {
            drain(node, now)
        };
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    let bytes = encoded_len(&msg);
                    if bytes > self.frame_limit {
                        too_large.push((to, msg, bytes));
                        continue;
                    }
                    self.largest = self.largest.max(bytes);
                    self.queue.push_back((from.clone(), to, msg));
                }
                Effect::Reply { client, result } => {
                    assert!(
                        self.replies.insert(client, result).is_none(),
                        "replied twice"
                    );
                }
                // Node ids are the addresses in this network.
                Effect::Connect { .. } => {}
            }
        }
        for (to, msg, bytes) in too_large {
            let now = self.now;
            let node = self.nodes.get_mut(from).expect("node");
            node.on_too_large(now, to, msg, bytes);
            self.collect(from);
        }
    }

    /// Add a node built elsewhere (e.g. one joining through a seed).
    pub fn add(&mut self, node: Node<MemoryStore>) {
        self.nodes.insert(node.id().clone(), node);
    }

    /// Deliver messages until the network is quiet. Seeds are addressed
    /// `seed:<node id>` here.
    pub fn settle(&mut self) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            let to = match to.as_str().strip_prefix("seed:") {
                Some(seed) => id(seed),
                None => to,
            };
            if self.cut.contains(&(from.clone(), to.clone())) {
                continue;
            }
            if self.down.contains(&to) {
                if !self.down.contains(&from) {
                    let now = self.now;
                    self.nodes.get_mut(&from).unwrap().on_unreachable(now, to);
                    self.collect(&from);
                }
                continue;
            }
            if self.recording {
                self.log.push((from.clone(), to.clone(), msg.clone()));
            }
            let now = self.now;
            self.nodes.get_mut(&to).unwrap().on_message(now, from, msg);
            self.collect(&to);
        }
    }

    pub fn advance(&mut self, ms: Millis) {
        self.now += ms;
        let live: Vec<NodeId> = self
            .nodes
            .keys()
            .filter(|n| !self.down.contains(*n))
            .cloned()
            .collect();
        for n in &live {
            let now = self.now;
            self.nodes.get_mut(n).unwrap().on_tick(now);
            self.collect(n);
        }
        self.settle();
    }

    /// Let `ms` of time pass in ticks of `step`, delivering everything.
    pub fn run_for(&mut self, ms: Millis, step: Millis) {
        for _ in 0..ms / step {
            self.advance(step);
        }
    }

    /// Hand `op` to `via` and deliver what follows, without letting time
    /// pass; the reply, if any, is in `replies` under the returned id.
    pub fn submit(&mut self, via: &str, op: ClientOp) -> ClientId {
        let client = self.next_client;
        self.next_client += 1;
        let now = self.now;
        self.node(via).on_client(now, client, op);
        self.collect(&id(via));
        self.settle();
        client
    }

    pub fn request(&mut self, via: &str, op: ClientOp) -> ClientResult {
        let client = self.submit(via, op);
        if !self.replies.contains_key(&client) {
            self.advance(10_000);
        }
        self.replies
            .remove(&client)
            .expect("every request is answered")
    }

    pub fn put(
        &mut self,
        via: &str,
        key: &str,
        value: &str,
        ctx: CausalContext,
        w: Option<usize>,
    ) -> ClientResult {
        self.now += 1;
        let op = ClientOp::Put {
            key: key.into(),
            value: value.into(),
            context: ctx,
            w,
            pw: None,
            ttl_ms: None,
        };
        self.request(via, op)
    }

    pub fn get(&mut self, via: &str, key: &str, r: Option<usize>) -> SiblingSet {
        let op = ClientOp::Get {
            key: key.into(),
            r,
            pr: None,
        };
        match self.request(via, op) {
            Ok(ClientReply::Value(set)) => set,
            other => panic!("get failed: {other:?}"),
        }
    }

    /// A network of `names` holding `keys` keys (`key-0`, …), each written
    /// through n1 with W = 3.
    pub fn loaded(names: &[&str], keys: usize) -> Net {
        let mut net = Net::new(names);
        for i in 0..keys {
            let written = net.put("n1", &numbered(i), "v", CausalContext::new(), Some(3));
            assert!(written.is_ok(), "{written:?}");
        }
        net
    }

    /// How many of the first `keys` numbered keys node `n` holds itself.
    pub fn held(&self, n: &str, keys: usize) -> usize {
        (0..keys)
            .filter(|i| !self.local(n, &numbered(*i)).is_empty())
            .count()
    }

    /// A replica's own stored state, bypassing the protocol.
    pub fn local(&self, n: &str, key: &str) -> SiblingSet {
        let store = self.nodes[&id(n)].store();
        store.get(key.as_bytes()).unwrap().unwrap_or_default()
    }

    pub fn coordinator_of(&self, key: &str) -> Vec<String> {
        let ring = self.nodes.values().next().unwrap().ring();
        ring.preference_list(key.as_bytes(), 3)
            .into_iter()
            .map(|n| n.0)
            .collect()
    }
}

/// The `i`-th key of [`Net::loaded`].
pub fn numbered(i: usize) -> String {
    format!("key-{i}")
}

pub fn values(set: &SiblingSet) -> Vec<String> {
    let mut v: Vec<String> = set
        .live()
        .map(|s| String::from_utf8(s.value.clone().unwrap_or_default()).unwrap())
        .collect();
    v.sort();
    v
}

pub fn context_of(result: ClientResult) -> CausalContext {
    match result {
        Ok(ClientReply::Written { context, .. }) => context,
        other => panic!("write failed: {other:?}"),
    }
}

/// Everything `node` produced, as a shell releases it: its effects, then
/// (the memory store's sync never fails) what it withheld until the sync.
pub fn drain(node: &mut Node<MemoryStore>, now: Millis) -> Vec<Effect> {
    let synced = node.store_mut().sync();
    drain_after(node, now, synced)
}

/// Like [`drain`], with the store's sync ending as `synced`.
pub fn drain_after(
    node: &mut Node<MemoryStore>,
    now: Millis,
    synced: Result<(), StoreError>,
) -> Vec<Effect> {
    let ready = node.ready();
    let mut effects = ready.effects;
    effects.extend(node.after_sync(now, ready.persisted, synced));
    effects
}
