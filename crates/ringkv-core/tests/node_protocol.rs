//! The node state machine driven by a tiny deterministic network: messages
//! are delivered in order, down nodes bounce (the transport reports them
//! unreachable), cut links drop silently, and time only moves when a test
//! says so.

use ringkv_core::coordinator::ClientId;
use ringkv_core::message::{ClientError, ClientOp, ClientReply, ClientResult, Message};
use ringkv_core::node::{Effect, Node};
use ringkv_core::ring::{Ring, RingMember, Token};
use ringkv_core::settings::Settings;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::{Store, StoreError};
use ringkv_core::version::VersionVector;
use ringkv_core::{Millis, NodeId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Sibling sets by (ring token, key): the order `Store::scan` visits.
#[derive(Default)]
struct MapStore(BTreeMap<(Token, Vec<u8>), SiblingSet>);

impl Store for MapStore {
    fn get(&self, key: &[u8]) -> Result<Option<SiblingSet>, StoreError> {
        Ok(self.0.get(&(Ring::key_token(key), key.to_vec())).cloned())
    }
    fn put(&mut self, key: &[u8], siblings: &SiblingSet) -> Result<(), StoreError> {
        self.0
            .insert((Ring::key_token(key), key.to_vec()), siblings.clone());
        Ok(())
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    fn scan(
        &self,
        from: Token,
        to: Token,
        visit: &mut dyn FnMut(&[u8], &SiblingSet) -> bool,
    ) -> Result<(), StoreError> {
        if from > to {
            return Err(StoreError(format!("inverted scan range {from}..={to}")));
        }
        let in_range = self.0.range((from, Vec::new())..);
        for ((_, key), set) in in_range.take_while(|((token, _), _)| *token <= to) {
            if !visit(key, set) {
                break;
            }
        }
        Ok(())
    }
}

struct Net {
    nodes: BTreeMap<NodeId, Node<MapStore>>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    replies: BTreeMap<ClientId, ClientResult>,
    down: BTreeSet<NodeId>,
    cut: BTreeSet<(NodeId, NodeId)>,
    now: Millis,
    next_client: ClientId,
}

fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

impl Net {
    fn new(names: &[&str]) -> Net {
        let settings = Settings::default();
        let members = names.iter().map(|n| RingMember {
            id: id(n),
            zone: None,
        });
        let ring = Ring::with_members(members, settings.vnodes);
        let nodes = names
            .iter()
            .map(|n| {
                let node = Node::new(id(n), settings.clone(), ring.clone(), MapStore::default());
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
        }
    }

    fn node(&mut self, n: &str) -> &mut Node<MapStore> {
        self.nodes.get_mut(&id(n)).expect("node")
    }

    fn cut_link(&mut self, a: &str, b: &str) {
        self.cut.insert((id(a), id(b)));
        self.cut.insert((id(b), id(a)));
    }

    fn collect(&mut self, from: &NodeId) {
        for effect in self.nodes.get_mut(from).expect("node").drain_effects() {
            match effect {
                Effect::Send { to, msg } => self.queue.push_back((from.clone(), to, msg)),
                Effect::Reply { client, result } => {
                    assert!(
                        self.replies.insert(client, result).is_none(),
                        "replied twice"
                    );
                }
            }
        }
    }

    /// Deliver messages until the network is quiet.
    fn settle(&mut self) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
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
            let now = self.now;
            self.nodes.get_mut(&to).unwrap().on_message(now, from, msg);
            self.collect(&to);
        }
    }

    fn advance(&mut self, ms: Millis) {
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

    fn request(&mut self, via: &str, op: ClientOp) -> ClientResult {
        let client = self.next_client;
        self.next_client += 1;
        let now = self.now;
        self.node(via).on_client(now, client, op);
        self.collect(&id(via));
        self.settle();
        if !self.replies.contains_key(&client) {
            self.advance(10_000);
        }
        self.replies
            .remove(&client)
            .expect("every request is answered")
    }

    fn put(
        &mut self,
        via: &str,
        key: &str,
        value: &str,
        ctx: VersionVector,
        w: Option<usize>,
    ) -> ClientResult {
        self.now += 1;
        let op = ClientOp::Put {
            key: key.into(),
            value: value.into(),
            context: ctx,
            w,
        };
        self.request(via, op)
    }

    fn get(&mut self, via: &str, key: &str, r: Option<usize>) -> SiblingSet {
        let op = ClientOp::Get { key: key.into(), r };
        match self.request(via, op) {
            Ok(ClientReply::Value(set)) => set,
            other => panic!("get failed: {other:?}"),
        }
    }

    /// A replica's own stored state, bypassing the protocol.
    fn local(&self, n: &str, key: &str) -> SiblingSet {
        let store = self.nodes[&id(n)].store();
        store.get(key.as_bytes()).unwrap().unwrap_or_default()
    }

    fn coordinator_of(&self, key: &str) -> Vec<String> {
        let ring = self.nodes.values().next().unwrap().ring();
        ring.preference_list(key.as_bytes(), 3)
            .into_iter()
            .map(|n| n.0)
            .collect()
    }
}

fn values(set: &SiblingSet) -> Vec<String> {
    let mut v: Vec<String> = set
        .live()
        .map(|s| String::from_utf8(s.value.clone().unwrap_or_default()).unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn put_then_get_from_any_node() {
    let mut net = Net::new(&["n1", "n2", "n3", "n4"]);
    assert!(net.put("n1", "k", "v", VersionVector::new(), None).is_ok());
    for n in ["n1", "n2", "n3", "n4"] {
        assert_eq!(values(&net.get(n, "k", Some(2))), ["v"], "via {n}");
    }
    let forwarded: u64 = net.nodes.values().map(|n| n.stats().forwarded).sum();
    assert!(forwarded >= 3, "non-coordinators forward (saw {forwarded})");
}

fn context_of(result: ClientResult) -> VersionVector {
    match result {
        Ok(ClientReply::Written(ctx)) => ctx,
        other => panic!("write failed: {other:?}"),
    }
}

#[test]
fn blind_writes_through_one_node_become_siblings_and_a_context_write_resolves_them() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    net.put("n2", "cart", "a", VersionVector::new(), None)
        .unwrap();
    net.put("n2", "cart", "b", VersionVector::new(), None)
        .unwrap();
    let read = net.get("n3", "cart", None);
    assert_eq!(values(&read), ["a", "b"]);
    net.put("n1", "cart", "ab", read.context(), None).unwrap();
    let read = net.get("n1", "cart", None);
    assert_eq!(values(&read), ["ab"]);
    for n in ["n1", "n2", "n3"] {
        assert_eq!(values(&net.local(n, "cart")), ["ab"], "replica {n}");
    }
}

#[test]
fn w3_fails_clearly_with_a_node_down_and_w2_r2_still_work() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let pref = net.coordinator_of("k");
    net.down.insert(id(&pref[2]));
    let via = pref[0].clone();
    assert!(net
        .put(&via, "k", "v", VersionVector::new(), Some(2))
        .is_ok());
    assert_eq!(values(&net.get(&via, "k", Some(2))), ["v"]);
    let err = net
        .put(&via, "k", "w", VersionVector::new(), Some(3))
        .unwrap_err();
    // Lost as soon as the dead replica is reported, without waiting out the
    // timeout; the count is what had answered by then.
    assert!(
        matches!(&err, ClientError::Unavailable { needed: 3, replicas: 3, answered, .. } if *answered < 3),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("put needed 3 of 3 replicas but only"),
        "{err}"
    );
}

#[test]
fn a_dead_coordinator_is_skipped_by_the_forwarder() {
    let mut net = Net::new(&["n1", "n2", "n3", "n4"]);
    let pref = net.coordinator_of("k");
    let outsider = ["n1", "n2", "n3", "n4"]
        .into_iter()
        .find(|n| !pref.iter().any(|p| p == n))
        .unwrap();
    net.down.insert(id(&pref[0]));
    assert!(net
        .put(outsider, "k", "v", VersionVector::new(), None)
        .is_ok());
    assert_eq!(values(&net.get(outsider, "k", None)), ["v"]);
}

#[test]
fn a_silent_replica_makes_the_quorum_time_out_with_a_count() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let pref = net.coordinator_of("k");
    net.cut_link(&pref[0], &pref[1]);
    net.cut_link(&pref[0], &pref[2]);
    let before = net.now;
    let err = net
        .put(&pref[0], "k", "v", VersionVector::new(), None)
        .unwrap_err();
    assert!(net.now > before, "answered only after the deadline");
    assert!(
        matches!(
            err,
            ClientError::Unavailable {
                needed: 2,
                answered: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        net.node(&pref[0]).in_flight(),
        0,
        "expired ops are forgotten"
    );
}

#[test]
fn read_repair_brings_a_stale_replica_up_to_date() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let pref = net.coordinator_of("k");
    net.cut_link(&pref[0], &pref[2]);
    net.put(&pref[0], "k", "v", VersionVector::new(), None)
        .unwrap();
    assert!(net.local(&pref[2], "k").is_empty());
    net.cut.clear();
    assert_eq!(values(&net.get(&pref[0], "k", Some(2))), ["v"]);
    assert_eq!(values(&net.local(&pref[2], "k")), ["v"]);
    assert!(net.node(&pref[0]).stats().read_repairs >= 1);
}

#[test]
fn delete_without_context_removes_what_it_read() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    net.put("n1", "k", "v", VersionVector::new(), None).unwrap();
    let op = ClientOp::Delete {
        key: "k".into(),
        context: None,
        w: None,
    };
    assert!(net.request("n2", op).is_ok());
    let read = net.get("n3", "k", Some(3));
    assert_eq!(read.live().count(), 0);
    assert_eq!(read.len(), 1, "the tombstone is kept");
}

#[test]
fn the_seeds_versioning_story() {
    let mut net = Net::new(&["S1", "S2", "S3"]);
    // Make S1 the coordinator by choosing a key it coordinates.
    let key = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| net.coordinator_of(k)[0] == "S1")
        .unwrap();
    let k = key.as_str();
    let ctx = context_of(net.put("S1", k, "CAR", VersionVector::new(), None));
    let ctx = context_of(net.put("S1", k, "CART", ctx, None));
    assert_eq!(ctx.counter(&id("S1")), 2);
    assert_eq!(ctx.len(), 1, "clock [S1:2]");
    net.down.insert(id("S1"));
    net.cut_link("S2", "S3");
    net.put("S2", k, "CARM", ctx.clone(), Some(1)).unwrap();
    net.put("S3", k, "CARR", ctx, Some(1)).unwrap();
    net.cut.clear();
    let read = net.get("S2", k, Some(2));
    assert_eq!(values(&read), ["CARM", "CARR"]);
    let winner = read
        .live()
        .max_by_key(|s| s.timestamp)
        .unwrap()
        .value
        .clone()
        .unwrap();
    assert_eq!(winner, b"CARR");
    net.put("S2", k, "CARR", read.context(), None).unwrap();
    let read = net.get("S3", k, None);
    assert_eq!(values(&read), ["CARR"]);
    let clock = read.iter().next().unwrap().clock();
    for s in ["S1", "S2", "S3"] {
        assert!(clock.counter(&id(s)) >= 1, "{s} in {clock:?}");
    }
}

#[test]
fn bad_requests_get_clear_errors() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let long = "x".repeat(2000);
    let err = net
        .put("n1", &long, "v", VersionVector::new(), None)
        .unwrap_err();
    assert!(
        err.to_string().contains("key must be 1 to 1024 bytes"),
        "{err}"
    );
    let err = net
        .put("n1", "k", "v", VersionVector::new(), Some(4))
        .unwrap_err();
    assert!(err.to_string().contains("w must be within 1..=3"), "{err}");
    let big = "v".repeat(1024 * 1024 + 1);
    let err = net
        .put("n1", "k", &big, VersionVector::new(), None)
        .unwrap_err();
    assert!(err.to_string().contains("value must be at most"), "{err}");
}
