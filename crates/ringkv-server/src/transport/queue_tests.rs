//! Tests of the bound on each peer's outbound queue: a peer that stalls
//! (or is gone) costs at most its bound, and what is dropped is counted.
//!
//! The tests run on a one-thread runtime: a burst of sends made without
//! yielding is queued before the peer's writer runs at all, so what the
//! queue keeps and drops is exact.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::liveness_tests::{fake_peer, FakePeer};
use super::tests::{bounded, config, id, loopback, node_with, Rx, TestMsg};
use super::{Inbound, Transport};
use crate::shed::{Bound, Cause, Held, Queue, Shedding};

/// Bytes of one test frame: the tag, the variant, the length and the text.
const TEXT: usize = 8000;
const FRAME: usize = 1 + 1 + 2 + TEXT;

/// Node "a" whose queues are bounded by `bound`, with peer "b" played by
/// an acceptor that answers the handshake and then never reads.
async fn with_stalled_peer(
    bound: Bound,
) -> (Transport<TestMsg>, Rx, Arc<Shedding>, oneshot::Sender<()>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let shedding = Arc::new(Shedding::default());
    let mut config = config("a", loopback());
    config.queue = bound;
    config.shedding = shedding.clone();
    let (a, a_rx) = node_with(config).await;
    a.set_peer(id("b"), listener.local_addr().unwrap());
    let (done, until) = oneshot::channel();
    tokio::spawn(fake_peer(listener, FakePeer::Paused, until));
    (a, a_rx, shedding, done)
}

fn text() -> TestMsg {
    TestMsg::Text("x".repeat(TEXT))
}

fn held(a: &Transport<TestMsg>) -> Held {
    a.queued().get(&id("b")).copied().unwrap_or_default()
}

/// Send `count` frames to "b" without yielding; the queue never holds
/// more than `bound` meanwhile.
fn burst(a: &Transport<TestMsg>, count: usize, bound: Bound) {
    for _ in 0..count {
        a.send(&id("b"), text());
        let now = held(a);
        assert!(
            now.count <= bound.count && now.bytes <= bound.bytes,
            "{now:?}"
        );
    }
}

#[tokio::test]
async fn a_stalled_peers_queue_stops_at_its_frame_bound_and_counts_the_drops() {
    bounded(async {
        let bound = Bound {
            count: 16,
            bytes: 1 << 20,
        };
        let (a, mut a_rx, shedding, _done) = with_stalled_peer(bound).await;
        burst(&a, 5000, bound);
        assert_eq!(
            held(&a),
            Held {
                count: 16,
                bytes: 16 * FRAME
            }
        );
        assert_eq!(shedding.get(Queue::PeerOutbound, Cause::Count), 5000 - 16);
        assert_eq!(shedding.get(Queue::PeerOutbound, Cause::Bytes), 0);

        // The writer takes the queue into a connection the peer never
        // reads, until the link is found dead and dropped; bursts meanwhile
        // stay within the bound.
        loop {
            burst(&a, 100, bound);
            match tokio::time::timeout(Duration::from_millis(50), a_rx.recv()).await {
                Ok(Some(Inbound::Unreachable { peer })) if peer == id("b") => break,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => continue,
            }
        }
        assert!(shedding.get(Queue::PeerOutbound, Cause::Count) > 5000 - 16);
    })
    .await;
}

/// A peer nobody listens for: the batch the writer could not connect for
/// is dropped, counted as unreachable, and its room given back.
#[tokio::test]
async fn frames_of_a_batch_that_cannot_be_delivered_are_counted_and_released() {
    bounded(async {
        let gone = TcpListener::bind(loopback()).await.unwrap();
        let addr = gone.local_addr().unwrap();
        drop(gone);
        let shedding = Arc::new(Shedding::default());
        let mut config = config("a", loopback());
        config.queue = Bound {
            count: 16,
            bytes: 1 << 20,
        };
        config.shedding = shedding.clone();
        let (a, mut a_rx) = node_with(config).await;
        a.set_peer(id("b"), addr);
        burst(
            &a,
            16,
            Bound {
                count: 16,
                bytes: 1 << 20,
            },
        );
        assert_eq!(held(&a).count, 16);
        match a_rx.recv().await {
            Some(Inbound::Unreachable { peer }) => assert_eq!(peer, id("b")),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(shedding.get(Queue::PeerOutbound, Cause::Unreachable), 16);
        assert_eq!(held(&a), Held::default());
    })
    .await;
}

#[tokio::test]
async fn a_stalled_peers_queue_stops_at_its_byte_bound() {
    bounded(async {
        let bound = Bound {
            count: 1000,
            bytes: 10 * FRAME + FRAME / 2,
        };
        let (a, _a_rx, shedding, _done) = with_stalled_peer(bound).await;
        burst(&a, 500, bound);
        assert_eq!(
            held(&a),
            Held {
                count: 10,
                bytes: 10 * FRAME
            }
        );
        assert_eq!(shedding.get(Queue::PeerOutbound, Cause::Bytes), 490);
        assert_eq!(shedding.get(Queue::PeerOutbound, Cause::Count), 0);
    })
    .await;
}
