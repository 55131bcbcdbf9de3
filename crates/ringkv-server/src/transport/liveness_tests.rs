//! Tests of connection liveness (see [`super::liveness`]): links that stop
//! carrying frames without closing are replaced, healthy idle links are
//! kept, silent inbound connections are closed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::time::{timeout, Instant};
use tokio_util::codec::Framed;

use super::handshake::next_hello;
use super::liveness::{encode_ack, INBOUND_IDLE_TIMEOUT, PING_INTERVAL, PROGRESS_TIMEOUT};
use super::tests::{
    bounded, expect_message, hello, id, loopback, next_event, node, pair, raw_peer, Rx, TestMsg,
    CLUSTER, EVENT_TIMEOUT, MAX_FRAME,
};
use super::{codec, Inbound, Transport, PROTOCOL_VERSION};

/// An in-process TCP proxy in front of `target`. On command it stops
/// forwarding in both directions without closing either socket, like a
/// silent partition, or only from the target back to the client (the
/// acks): bytes wait in the kernels' buffers (and in the one chunk a pump
/// may hold) until it forwards again.
struct Proxy {
    addr: SocketAddr,
    stalled: watch::Sender<bool>,
    /// Stalls the direction from the target back to the client only.
    back_stalled: watch::Sender<bool>,
    /// Per proxied connection, in accept order: whether the client (the
    /// connector) has closed its side.
    client_closed: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client_closed = Arc::new(Mutex::new(Vec::new()));
        let proxy = Proxy {
            addr,
            stalled: watch::channel(false).0,
            back_stalled: watch::channel(false).0,
            client_closed: Arc::clone(&client_closed),
        };
        let stalls = (proxy.stalled.subscribe(), proxy.back_stalled.subscribe());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let closed = Arc::new(AtomicBool::new(false));
                client_closed.lock().unwrap().push(Arc::clone(&closed));
                tokio::spawn(proxy_connection(client, target, stalls.clone(), closed));
            }
        });
        proxy
    }

    fn set_stalled(&self, stalled: bool) {
        self.stalled.send_replace(stalled);
        self.back_stalled.send_replace(stalled);
    }

    fn set_back_stalled(&self, stalled: bool) {
        self.back_stalled.send_replace(stalled);
    }

    fn connections(&self) -> usize {
        self.client_closed.lock().unwrap().len()
    }

    fn closed_by_client(&self, index: usize) -> bool {
        self.client_closed.lock().unwrap()[index].load(Ordering::SeqCst)
    }
}

/// Forwards one connection both ways, honouring stalls; a connection
/// accepted during a stall reaches the target only once it ends.
async fn proxy_connection(
    client: TcpStream,
    target: SocketAddr,
    (mut stall, back_stall): (watch::Receiver<bool>, watch::Receiver<bool>),
    closed: Arc<AtomicBool>,
) {
    let _ = stall.wait_for(|stalled| !stalled).await;
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::spawn(pump(server_read, client_write, back_stall, None));
    pump(client_read, server_write, stall, Some(closed)).await;
}

/// Copies bytes from `from` to `to` while not stalled; on EOF or error
/// marks `closed` and shuts `to` down.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut stall: watch::Receiver<bool>,
    closed: Option<Arc<AtomicBool>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let _ = stall.wait_for(|stalled| !stalled).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Read just before a stall began: hold the chunk until it ends.
        let _ = stall.wait_for(|stalled| !stalled).await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    if let Some(closed) = closed {
        closed.store(true, Ordering::SeqCst);
    }
    let _ = to.shutdown().await;
}

/// Sends `msg` from `a` to "b" until it arrives (a message sent while a
/// connection attempt fails is dropped, by design), skipping other
/// messages b receives meanwhile (ones held by a stall may arrive late).
async fn deliver_eventually(a: &Transport<TestMsg>, b_rx: &mut Rx, msg: TestMsg) {
    let until = Instant::now() + EVENT_TIMEOUT;
    while Instant::now() < until {
        a.send(&id("b"), msg.clone());
        let round = Instant::now() + Duration::from_millis(300);
        while let Ok(Some(event)) = tokio::time::timeout_at(round, b_rx.recv()).await {
            if event
                == (Inbound::Message {
                    from: id("a"),
                    msg: msg.clone(),
                })
            {
                return;
            }
        }
    }
    panic!("{msg:?} was not delivered within {EVENT_TIMEOUT:?}");
}

/// Waits for the first `Unreachable { peer: "b" }` among `rx`'s events.
async fn expect_unreachable(rx: &mut Rx) {
    loop {
        match next_event(rx).await {
            Inbound::Unreachable { peer } if peer == id("b") => return,
            Inbound::Unreachable { .. } | Inbound::Message { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A silent partition (nothing closed, nothing forwarded) is detected by
/// the missing acks and reported; after the heal a fresh connection
/// carries messages and the stalled one is closed, not reused.
#[tokio::test]
async fn a_stalled_connection_is_reported_and_replaced_after_the_heal() {
    bounded(async {
        let (a, mut a_rx) = node("a").await;
        let (b, mut b_rx) = node("b").await;
        let proxy = Proxy::start(b.local_addr()).await;
        a.set_peer(id("b"), proxy.addr);
        b.set_peer(id("a"), a.local_addr());
        a.send(&id("b"), TestMsg::Ping(1));
        expect_message(&mut b_rx, "a", TestMsg::Ping(1)).await;

        proxy.set_stalled(true);
        a.send(&id("b"), TestMsg::Ping(2));
        // Within PROGRESS_TIMEOUT in theory; the test only bounds it loosely.
        expect_unreachable(&mut a_rx).await;

        proxy.set_stalled(false);
        deliver_eventually(&a, &mut b_rx, TestMsg::Ping(3)).await;
        assert!(proxy.connections() >= 2, "a reconnected");
        let closed = async {
            while !proxy.closed_by_client(0) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        timeout(EVENT_TIMEOUT, closed)
            .await
            .expect("a closed the stalled connection");
    })
    .await;
}

/// How a fake acceptor behaves once it answered the handshake.
pub(super) enum FakePeer {
    /// Never reads again (a paused process: its kernel still acks TCP).
    Paused,
    /// Acknowledges every frame with this absurd count.
    AcksWith(u64),
}

/// Serves one connection on `listener` as peer "b" would, then behaves as
/// `behaviour` says, until `done` fires.
pub(super) async fn fake_peer(
    listener: TcpListener,
    behaviour: FakePeer,
    done: oneshot::Receiver<()>,
) {
    let (stream, _) = listener.accept().await.unwrap();
    let mut framed = Framed::new(stream, codec(MAX_FRAME + 1));
    next_hello(&mut framed).await.expect("a's hello");
    let answer = hello(CLUSTER, "b", PROTOCOL_VERSION).encode().unwrap();
    framed.send(answer).await.unwrap();
    if let FakePeer::AcksWith(count) = behaviour {
        while let Some(Ok(_)) = framed.next().await {
            let _ = framed.send(encode_ack(count)).await;
        }
    }
    let _ = done.await;
}

/// Node "a" with peer "b" played by a fake acceptor behaving as told.
async fn with_fake_peer(behaviour: FakePeer) -> (Transport<TestMsg>, Rx, oneshot::Sender<()>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let (a, a_rx) = node("a").await;
    a.set_peer(id("b"), listener.local_addr().unwrap());
    let (done, until) = oneshot::channel();
    tokio::spawn(fake_peer(listener, behaviour, until));
    (a, a_rx, done)
}

/// A peer that accepted the connection but no longer reads it (SIGSTOP):
/// its kernel takes the frames, yet it is reported unreachable.
#[tokio::test]
async fn a_peer_that_stops_reading_is_reported_unreachable() {
    bounded(async {
        let (a, mut a_rx, _done) = with_fake_peer(FakePeer::Paused).await;
        a.send(&id("b"), TestMsg::Ping(1));
        expect_unreachable(&mut a_rx).await;
    })
    .await;
}

/// Frames get through but the acks do not (a one-way partition, or a
/// peer whose answers are lost): no evidence the peer reads, so the link
/// is reported and dropped all the same.
#[tokio::test]
async fn a_link_whose_acks_are_lost_is_reported_unreachable() {
    bounded(async {
        let (a, mut a_rx) = node("a").await;
        let (b, mut b_rx) = node("b").await;
        let proxy = Proxy::start(b.local_addr()).await;
        a.set_peer(id("b"), proxy.addr);
        a.send(&id("b"), TestMsg::Ping(1));
        expect_message(&mut b_rx, "a", TestMsg::Ping(1)).await;

        proxy.set_back_stalled(true);
        a.send(&id("b"), TestMsg::Ping(2));
        expect_message(&mut b_rx, "a", TestMsg::Ping(2)).await;
        expect_unreachable(&mut a_rx).await;
    })
    .await;
}

/// An ack for frames never written is garbage: the connection is dropped
/// (and the peer reported), the writer does not trust it nor panic.
#[tokio::test]
async fn an_ack_for_frames_never_written_drops_the_connection() {
    bounded(async {
        let (a, mut a_rx, _done) = with_fake_peer(FakePeer::AcksWith(1_000)).await;
        a.send(&id("b"), TestMsg::Ping(1));
        expect_unreachable(&mut a_rx).await;
    })
    .await;
}

/// Healthy idle links stay up: pings keep the acceptor from closing them
/// for silence, acks keep the writer from dropping them. Idle for longer
/// than the acceptor's idle timeout, so either half missing shows.
#[tokio::test]
async fn an_idle_healthy_connection_is_kept() {
    bounded(async {
        let (a, mut a_rx, b, mut b_rx) = pair().await;
        a.send(&id("b"), TestMsg::Ping(1));
        expect_message(&mut b_rx, "a", TestMsg::Ping(1)).await;

        tokio::time::sleep(INBOUND_IDLE_TIMEOUT + PING_INTERVAL + PROGRESS_TIMEOUT).await;
        let events: Vec<_> = std::iter::from_fn(|| a_rx.try_recv().ok()).collect();
        assert!(events.is_empty(), "no report while idle: {events:?}");
        a.send(&id("b"), TestMsg::Ping(2));
        expect_message(&mut b_rx, "a", TestMsg::Ping(2)).await;
        assert_eq!(b.accepted_connections(), 1, "no reconnect");
    })
    .await;
}

/// A peer that completes the handshake and then sends nothing, not even a
/// ping, is disconnected after the idle timeout (and not long before).
#[tokio::test]
async fn a_silent_inbound_connection_is_closed_after_the_idle_timeout() {
    bounded(async {
        let (b, _b_rx) = node("b").await;
        let hello = hello(CLUSTER, "a", PROTOCOL_VERSION);
        let mut stream = raw_peer(b.local_addr(), &hello, &[]).await;
        let started = Instant::now();
        let mut buf = [0u8; 256];
        let closed = async { while let Ok(1..) = stream.read(&mut buf).await {} };
        timeout(INBOUND_IDLE_TIMEOUT + EVENT_TIMEOUT, closed)
            .await
            .expect("the silent connection was not closed");
        assert!(
            started.elapsed() >= INBOUND_IDLE_TIMEOUT / 2,
            "closed for silence, not for something else ({:?})",
            started.elapsed()
        );
    })
    .await;
}

/// The tag byte is transport overhead: a message of exactly
/// `max_frame_bytes` still fits.
#[tokio::test]
async fn a_message_of_exactly_max_frame_bytes_is_delivered() {
    bounded(async {
        let (a, _a_rx, _b, mut b_rx) = pair().await;
        // Variant (1 byte) and length (3 bytes) prefix the text.
        let msg = TestMsg::Text("x".repeat(MAX_FRAME - 4));
        assert_eq!(postcard::to_stdvec(&msg).unwrap().len(), MAX_FRAME);
        a.send(&id("b"), msg.clone());
        expect_message(&mut b_rx, "a", msg).await;
    })
    .await;
}
