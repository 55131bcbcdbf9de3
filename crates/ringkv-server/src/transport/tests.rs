//! Tests for the transport, over real loopback sockets.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use ringkv_core::settings::{ClusterSettings, Settings};
use ringkv_core::NodeId;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::timeout;
use tokio_util::codec::Framed;

use super::handshake::{next_hello, Hello};
use super::liveness::{TAG_BYTES, TAG_MESSAGE};
use super::{codec, Inbound, Transport, TransportConfig, HANDSHAKE_MAGIC, PROTOCOL_VERSION};
use crate::shed::Limits;

/// Every test body runs under this bound so a bug cannot hang the suite.
pub(super) const TEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a single expected event may take on loopback.
pub(super) const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait to be reasonably sure something does *not* happen.
const QUIET_PERIOD: Duration = Duration::from_millis(300);
pub(super) const MAX_FRAME: usize = 64 * 1024;
pub(super) const CLUSTER: &str = "test-cluster";

/// Runs a test body under [`TEST_TIMEOUT`], failing the test if it hangs.
pub(super) async fn bounded(body: impl Future<Output = ()>) {
    timeout(TEST_TIMEOUT, body).await.expect("test timed out");
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum TestMsg {
    Ping(u32),
    Text(String),
}

pub(super) type Rx = mpsc::UnboundedReceiver<Inbound<TestMsg>>;

pub(super) fn id(name: &str) -> NodeId {
    NodeId::from(name)
}

pub(super) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The cluster settings test nodes run with unless a test says otherwise.
fn settings() -> ClusterSettings {
    Settings::default().cluster()
}

pub(super) fn config(name: &str, listen: SocketAddr) -> TransportConfig {
    TransportConfig {
        cluster: CLUSTER.to_string(),
        node_id: id(name),
        settings: settings(),
        listen,
        peers: BTreeMap::new(),
        max_frame_bytes: MAX_FRAME,
        connect_timeout: Duration::from_secs(2),
        tls: None,
        queue: Limits::default().peer_queue(),
        shedding: Default::default(),
    }
}

/// Shows the transport's log lines in failing tests (`RUST_LOG=debug`).
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub(super) async fn node(name: &str) -> (Transport<TestMsg>, Rx) {
    node_at(name, loopback()).await
}

async fn node_at(name: &str, listen: SocketAddr) -> (Transport<TestMsg>, Rx) {
    node_with(config(name, listen)).await
}

pub(super) async fn node_with(config: TransportConfig) -> (Transport<TestMsg>, Rx) {
    init_logging();
    let (tx, rx) = mpsc::unbounded_channel();
    let transport = Transport::bind(config, tx).await.expect("bind");
    (transport, rx)
}

pub(super) fn introduce(a: &Transport<TestMsg>, b: &Transport<TestMsg>) {
    a.set_peer(b.node_id().clone(), b.local_addr());
    b.set_peer(a.node_id().clone(), a.local_addr());
}

/// Two nodes "a" and "b" that know each other.
pub(super) async fn pair() -> (Transport<TestMsg>, Rx, Transport<TestMsg>, Rx) {
    let (a, a_rx) = node("a").await;
    let (b, b_rx) = node("b").await;
    introduce(&a, &b);
    (a, a_rx, b, b_rx)
}

pub(super) async fn next_event(rx: &mut Rx) -> Inbound<TestMsg> {
    timeout(EVENT_TIMEOUT, rx.recv())
        .await
        .expect("timed out waiting for an inbound event")
        .expect("inbound channel closed")
}

pub(super) async fn expect_message(rx: &mut Rx, from: &str, msg: TestMsg) {
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

pub(super) fn hello(cluster: &str, node: &str, protocol_version: u16) -> Hello {
    Hello {
        magic: HANDSHAKE_MAGIC,
        protocol_version,
        cluster: cluster.to_string(),
        node: id(node),
        settings: settings(),
    }
}

/// A hand-rolled peer connection: sends `hello`, then `msgs`.
pub(super) async fn raw_peer(addr: SocketAddr, hello: &Hello, msgs: &[TestMsg]) -> TcpStream {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut framed = Framed::new(stream, codec(MAX_FRAME));
    framed
        .send(hello.encode().unwrap())
        .await
        .expect("send hello");
    for msg in msgs {
        let bytes = Bytes::from(postcard::to_extend(msg, vec![TAG_MESSAGE]).unwrap());
        // May fail if the node already rejected the handshake; callers
        // check the outcome on the node's side.
        let _ = framed.send(bytes).await;
    }
    framed.into_inner()
}

/// Waits until the other side closes `stream` (EOF or reset), passing over
/// what it sent before (its handshake).
pub(super) async fn expect_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 256];
    let closed = async { while let Ok(1..) = stream.read(&mut buf).await {} };
    timeout(EVENT_TIMEOUT, closed)
        .await
        .expect("connection was not closed");
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
    bounded(async {
        let (a, mut a_rx, b, mut b_rx) = pair().await;
        a.send(&id("b"), TestMsg::Ping(1));
        expect_message(&mut b_rx, "a", TestMsg::Ping(1)).await;
        b.send(&id("a"), TestMsg::Text("pong".into()));
        expect_message(&mut a_rx, "b", TestMsg::Text("pong".into())).await;
        // Each node accepted exactly the other's outbound connection.
        assert_eq!(a.accepted_connections(), 1);
        assert_eq!(b.accepted_connections(), 1);
    })
    .await;
}

#[tokio::test]
async fn send_to_self_is_delivered_locally() {
    bounded(async {
        let (a, mut a_rx) = node("a").await;
        a.send(&id("a"), TestMsg::Ping(7));
        expect_message(&mut a_rx, "a", TestMsg::Ping(7)).await;
        assert_eq!(a.accepted_connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn many_messages_share_one_connection_in_order() {
    bounded(async {
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
    .await;
}

#[tokio::test]
async fn unknown_peer_is_reported_unreachable() {
    bounded(async {
        let (a, mut a_rx) = node("a").await;
        a.send(&id("nobody"), TestMsg::Ping(1));
        assert_eq!(
            next_event(&mut a_rx).await,
            Inbound::Unreachable { peer: id("nobody") }
        );
    })
    .await;
}

#[tokio::test]
async fn garbage_connection_is_closed_and_node_keeps_serving() {
    bounded(async {
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
    .await;
}

#[tokio::test]
async fn oversize_frame_closes_connection_and_node_keeps_serving() {
    bounded(async {
        let (b, mut b_rx) = node("b").await;
        b.set_peer(id("a"), loopback());
        // A valid handshake and message, then a frame over the limit.
        let hello = hello(CLUSTER, "a", PROTOCOL_VERSION);
        let mut stream = raw_peer(b.local_addr(), &hello, &[TestMsg::Ping(1)]).await;
        expect_message(&mut b_rx, "a", TestMsg::Ping(1)).await;
        // The limit is the payload plus the tag byte.
        let too_big = (MAX_FRAME as u32 + TAG_BYTES as u32 + 1).to_be_bytes();
        stream.write_all(&too_big).await.unwrap();
        stream.write_all(&[0u8; 1024]).await.unwrap();
        expect_closed(&mut stream).await;

        assert_eq!(b_rx.try_recv().err(), Some(TryRecvError::Empty));
        expect_still_serving(&b, &mut b_rx).await;
    })
    .await;
}

#[tokio::test]
async fn undecodable_message_closes_connection() {
    bounded(async {
        let (b, mut b_rx) = node("b").await;
        b.set_peer(id("a"), loopback());
        let hello = hello(CLUSTER, "a", PROTOCOL_VERSION);
        let mut stream = raw_peer(b.local_addr(), &hello, &[]).await;
        // A message frame whose variant index 200 does not exist in TestMsg.
        stream
            .write_all(&[0, 0, 0, 3, TAG_MESSAGE, 200, 1])
            .await
            .unwrap();
        expect_closed(&mut stream).await;
        assert_eq!(b_rx.try_recv().err(), Some(TryRecvError::Empty));
        expect_still_serving(&b, &mut b_rx).await;
    })
    .await;
}

#[tokio::test]
async fn oversize_message_is_handed_back_to_the_sender_and_the_link_keeps_working() {
    bounded(async {
        let (a, mut a_rx, b, mut b_rx) = pair().await;
        let oversize = TestMsg::Text("x".repeat(MAX_FRAME + 1));
        let bytes = postcard::to_stdvec(&oversize).unwrap().len();
        a.send(&id("b"), oversize.clone());
        a.send(&id("b"), TestMsg::Ping(2));
        expect_message(&mut b_rx, "a", TestMsg::Ping(2)).await;
        assert_eq!(b.accepted_connections(), 1);
        let report = Inbound::TooLarge {
            peer: id("b"),
            msg: oversize,
            bytes,
        };
        assert_eq!(next_event(&mut a_rx).await, report, "the sender hears why");
    })
    .await;
}

#[tokio::test]
async fn bad_handshakes_are_rejected() {
    bounded(async {
        let (b, mut b_rx) = node("b").await;
        b.set_peer(id("a"), loopback());
        let mut bad_magic = hello(CLUSTER, "a", PROTOCOL_VERSION);
        bad_magic.magic = 0xDEAD_BEEF;
        let cases = [
            (
                "other cluster",
                hello("other-cluster", "a", PROTOCOL_VERSION),
            ),
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
    .await;
}

/// A node not known yet (one joining through gossip) may connect and is
/// heard; the cluster name is what keeps strangers out.
#[tokio::test]
async fn an_unknown_node_of_the_same_cluster_is_heard() {
    bounded(async {
        let (b, mut b_rx) = node("b").await;
        let hello = hello(CLUSTER, "newcomer", PROTOCOL_VERSION);
        let _stream = raw_peer(b.local_addr(), &hello, &[TestMsg::Ping(7)]).await;
        expect_message(&mut b_rx, "newcomer", TestMsg::Ping(7)).await;
    })
    .await;
}

#[tokio::test]
async fn silent_connection_is_closed_after_handshake_timeout() {
    bounded(async {
        let (tx, _rx) = mpsc::unbounded_channel::<Inbound<TestMsg>>();
        let mut cfg = config("b", loopback());
        cfg.connect_timeout = Duration::from_millis(200);
        let b = Transport::bind(cfg, tx).await.unwrap();
        let mut idle = TcpStream::connect(b.local_addr()).await.unwrap();
        expect_closed(&mut idle).await;
    })
    .await;
}

#[tokio::test]
async fn messages_to_a_down_peer_are_reported_and_held_ones_arrive_once_it_is_up() {
    bounded(async {
        // Reserve a loopback port, then free it so nothing listens there.
        let addr = TcpListener::bind(loopback())
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let (a, mut a_rx) = node("a").await;
        a.set_peer(id("b"), addr);

        a.send(&id("b"), TestMsg::Ping(0));
        assert_eq!(
            next_event(&mut a_rx).await,
            Inbound::Unreachable { peer: id("b") }
        );
        // Sent during the reconnect backoff: held until it ends, then
        // reported when the peer is still down — never dropped silently.
        for i in 1..100 {
            a.send(&id("b"), TestMsg::Ping(i));
        }
        assert_eq!(
            next_event(&mut a_rx).await,
            Inbound::Unreachable { peer: id("b") }
        );
        let reports = std::iter::from_fn(|| a_rx.try_recv().ok()).count();
        assert!(
            reports <= 1,
            "one report per attempt, not per message ({reports} more)"
        );

        // The peer comes up during the next backoff: the held message is
        // delivered when it ends.
        let (b, mut b_rx) = node_at("b", addr).await;
        b.set_peer(id("a"), a.local_addr());
        a.send(&id("b"), TestMsg::Ping(1_000));
        expect_message(&mut b_rx, "a", TestMsg::Ping(1_000)).await;
    })
    .await;
}

#[tokio::test]
async fn peer_shutdown_is_reported_without_sending() {
    bounded(async {
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
    .await;
}

#[tokio::test]
async fn set_peer_with_new_address_reconnects_there() {
    bounded(async {
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
    .await;
}

#[tokio::test]
async fn blocked_peer_is_silent_both_ways_until_unblocked() {
    bounded(async {
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
    .await;
}

#[tokio::test]
async fn bind_rejects_max_frame_too_small_for_handshake() {
    bounded(async {
        let (tx, _rx) = mpsc::unbounded_channel::<Inbound<TestMsg>>();
        let mut cfg = config("a", loopback());
        cfg.max_frame_bytes = 4;
        let err = Transport::bind(cfg, tx).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    })
    .await;
}

/// A transport named `name` whose cluster settings differ from the others'
/// in `n` (and, to stay valid, `r` and `w`).
async fn node_with_n(name: &str, n: usize) -> (Transport<TestMsg>, Rx) {
    let mut cfg = config(name, loopback());
    cfg.settings = ClusterSettings {
        n,
        r: 1,
        w: 1,
        ..settings()
    };
    node_with(cfg).await
}

/// Every event that arrives within the quiet period.
async fn events_until_quiet(rx: &mut Rx) -> Vec<Inbound<TestMsg>> {
    tokio::time::sleep(QUIET_PERIOD).await;
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

fn incompatible(events: &[Inbound<TestMsg>]) -> Vec<(NodeId, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Inbound::Incompatible { peer, reason } => Some((peer.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

/// A node restarted with another N must not be heard: both sides refuse
/// the connection, each says why in its own words, once per peer however
/// often the connector retries, and no message gets through.
#[tokio::test]
async fn a_peer_with_other_settings_is_refused_on_both_sides_once_with_the_reason() {
    bounded(async {
        let (a, mut a_rx) = node_with_n("a", 2).await;
        let (b, mut b_rx) = node("b").await;
        introduce(&a, &b);
        // Several connection attempts (each after the reconnect backoff).
        for i in 0..4 {
            a.send(&id("b"), TestMsg::Ping(i));
            tokio::time::sleep(super::RECONNECT_BACKOFF * 2).await;
        }
        let at_a = events_until_quiet(&mut a_rx).await;
        let at_b = events_until_quiet(&mut b_rx).await;
        assert_eq!(
            incompatible(&at_a),
            vec![(
                id("b"),
                "replication n differs: this node has 2, peer b has 3".to_string()
            )],
            "the connector learns why, once: {at_a:?}"
        );
        assert!(
            at_a.contains(&Inbound::Unreachable { peer: id("b") }),
            "{at_a:?}"
        );
        assert_eq!(
            incompatible(&at_b),
            vec![(
                id("a"),
                "replication n differs: this node has 3, peer a has 2".to_string()
            )],
            "the acceptor says why, once: {at_b:?}"
        );
        assert!(
            !at_b.iter().any(|e| matches!(e, Inbound::Message { .. })),
            "{at_b:?}"
        );
        assert!(b.accepted_connections() >= 2, "a retried");
        expect_still_serving(&b, &mut b_rx).await;
    })
    .await;
}

/// The acceptor answers a hello of the right protocol with its own, so a
/// connector with other settings can tell why it is refused, then closes.
#[tokio::test]
async fn a_refused_connector_gets_the_acceptors_hello_before_the_close() {
    bounded(async {
        let (b, mut b_rx) = node("b").await;
        let mut theirs = hello(CLUSTER, "a", PROTOCOL_VERSION);
        theirs.settings.max_siblings += 1;
        let stream = TcpStream::connect(b.local_addr()).await.unwrap();
        let mut framed = Framed::new(stream, codec(MAX_FRAME));
        framed.send(theirs.encode().unwrap()).await.unwrap();
        let answer = next_hello(&mut framed).await.expect("b's hello");
        assert_eq!(answer.node, id("b"));
        assert_eq!(answer.settings, settings());
        assert!(
            matches!(framed.next().await, None | Some(Err(_))),
            "closed after the answer"
        );
        let events = events_until_quiet(&mut b_rx).await;
        let reasons = incompatible(&events);
        assert_eq!(reasons.len(), 1, "{events:?}");
        assert!(
            reasons[0]
                .1
                .starts_with("replication max_siblings differs: this node has 64"),
            "{reasons:?}"
        );
    })
    .await;
}

/// Once the peer comes back with the cluster's settings, it is heard.
#[tokio::test]
async fn a_peer_restarted_with_the_clusters_settings_is_heard_again() {
    bounded(async {
        let (a, a_rx) = node_with_n("a", 2).await;
        let (b, mut b_rx) = node("b").await;
        introduce(&a, &b);
        a.send(&id("b"), TestMsg::Ping(1));
        let refused = next_event(&mut b_rx).await;
        assert!(
            matches!(refused, Inbound::Incompatible { .. }),
            "{refused:?}"
        );
        drop((a, a_rx));
        let (a2, _a2_rx) = node("a").await;
        introduce(&a2, &b);
        a2.send(&id("b"), TestMsg::Ping(2));
        expect_message(&mut b_rx, "a", TestMsg::Ping(2)).await;
    })
    .await;
}
