//! Mutual TLS on the transport: who may connect, who may claim which id,
//! and what a recorded connection is worth.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::tests::{
    bounded, config, expect_closed, expect_message, hello, id, introduce, loopback, next_event,
    node_with, raw_peer, Rx, TestMsg, CLUSTER,
};
use super::{Inbound, Transport, PROTOCOL_VERSION};
use crate::config::PeerTlsConfig;
use crate::tls::certs::{create_ca, create_node};
use crate::tls::PeerTls;

/// CAs in `dir/{name}/` (created on first use) and a certificate it issues
/// for `id`; the returned config trusts `trust` (CA directory names).
fn credential(dir: &Path, ca: &str, id: &str, trust: &[&str]) -> PeerTlsConfig {
    for name in trust.iter().chain([&ca]) {
        if !dir.join(name).join("ca.pem").exists() {
            create_ca(&dir.join(name), CLUSTER, 1).unwrap();
        }
    }
    let ca_dir = dir.join(ca);
    create_node(&ca_dir, id, &["127.0.0.1".into()], 1).unwrap();
    let bundle = dir.join(format!("trust-{id}-{ca}.pem"));
    let pems: String = trust
        .iter()
        .map(|ca| std::fs::read_to_string(dir.join(ca).join("ca.pem")).unwrap())
        .collect();
    std::fs::write(&bundle, pems).unwrap();
    PeerTlsConfig {
        ca: bundle,
        cert: ca_dir.join(format!("{id}.pem")),
        key: ca_dir.join(format!("{id}.key")),
    }
}

/// A TLS node named `name` holding `creds` (issued for `holder`).
async fn tls_node(name: &str, creds: &PeerTlsConfig, holder: &str) -> (Transport<TestMsg>, Rx) {
    let mut config = config(name, loopback());
    config.tls = Some(PeerTls::load(creds, holder).expect("load credential"));
    node_with(config).await
}

/// `from` sends to `to`: arrives, or `from` learns `to` is unreachable
/// and `to` hears nothing (its queue is checked once `from` gave up, so
/// nothing can still be on its way).
async fn delivered(from: &Transport<TestMsg>, from_rx: &mut Rx, to_rx: &mut Rx) -> bool {
    from.send(&id(to_name(to_rx)), TestMsg::Ping(1));
    tokio::select! {
        event = next_event(to_rx) => matches!(event, Inbound::Message { .. }),
        event = next_event(from_rx) => {
            assert!(matches!(event, Inbound::Unreachable { .. }), "{event:?}");
            assert!(to_rx.try_recv().is_err(), "refused yet delivered");
            false
        }
    }
}

/// Tests name the receiving node "b".
fn to_name(_: &Rx) -> &'static str {
    "b"
}

#[tokio::test]
async fn nodes_with_credentials_from_the_clusters_ca_talk() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (a, mut a_rx) = tls_node("a", &credential(dir.path(), "ca", "a", &["ca"]), "a").await;
        let (b, mut b_rx) = tls_node("b", &credential(dir.path(), "ca", "b", &["ca"]), "b").await;
        introduce(&a, &b);
        assert!(delivered(&a, &mut a_rx, &mut b_rx).await);
        b.send(&id("a"), TestMsg::Text("back".into()));
        expect_message(&mut a_rx, "b", TestMsg::Text("back".into())).await;
    })
    .await;
}

#[tokio::test]
async fn a_stranger_with_another_ca_or_no_tls_is_refused_both_ways() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (b, mut b_rx) = tls_node("b", &credential(dir.path(), "ca", "b", &["ca"]), "b").await;
        let stranger_creds = credential(dir.path(), "other", "a", &["other"]);
        let (a, mut a_rx) = tls_node("a", &stranger_creds, "a").await;
        introduce(&a, &b);
        assert!(!delivered(&a, &mut a_rx, &mut b_rx).await);
        // The other way round: b refuses a's certificate when it dials.
        b.send(&id("a"), TestMsg::Ping(2));
        assert_eq!(
            next_event(&mut b_rx).await,
            Inbound::Unreachable { peer: id("a") }
        );
        // A plaintext node of the same cluster name gets nowhere either.
        let (plain, mut plain_rx) = node_with(config("a", loopback())).await;
        plain.set_peer(id("b"), b.local_addr());
        assert!(!delivered(&plain, &mut plain_rx, &mut b_rx).await);
    })
    .await;
}

#[tokio::test]
async fn a_node_holding_n2s_credential_cannot_claim_to_be_n1() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (b, mut b_rx) = tls_node("b", &credential(dir.path(), "ca", "b", &["ca"]), "b").await;
        // Valid for "c", presented by a transport calling itself "a".
        let (a, mut a_rx) = tls_node("a", &credential(dir.path(), "ca", "c", &["ca"]), "c").await;
        introduce(&a, &b);
        assert!(!delivered(&a, &mut a_rx, &mut b_rx).await);
        // Nor can it answer as "a" when b dials it.
        b.send(&id("a"), TestMsg::Ping(3));
        assert_eq!(
            next_event(&mut b_rx).await,
            Inbound::Unreachable { peer: id("a") }
        );
    })
    .await;
}

#[tokio::test]
async fn a_credential_for_another_node_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let creds = credential(dir.path(), "ca", "n2", &["ca"]);
    let err = PeerTls::load(&creds, "n1").unwrap_err().to_string();
    assert!(err.contains("is not issued for node n1"), "{err}");
}

#[tokio::test]
async fn the_node_dialed_must_be_the_one_that_answers() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (a, mut a_rx) = tls_node("a", &credential(dir.path(), "ca", "a", &["ca"]), "a").await;
        let (c, mut c_rx) = tls_node("c", &credential(dir.path(), "ca", "c", &["ca"]), "c").await;
        // a believes b listens where c does (an address reused by c).
        a.set_peer(id("b"), c.local_addr());
        a.send(&id("b"), TestMsg::Ping(4));
        assert_eq!(
            next_event(&mut a_rx).await,
            Inbound::Unreachable { peer: id("b") }
        );
        assert!(c_rx.try_recv().is_err());
    })
    .await;
}

#[tokio::test]
async fn plaintext_and_garbage_on_the_peer_port_are_refused_and_the_node_keeps_serving() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (b, mut b_rx) = tls_node("b", &credential(dir.path(), "ca", "b", &["ca"]), "b").await;
        let addr = b.local_addr();
        let mut plain = raw_peer(
            addr,
            &hello(CLUSTER, "a", PROTOCOL_VERSION),
            &[TestMsg::Ping(5)],
        )
        .await;
        expect_closed(&mut plain).await;
        let mut garbage = TcpStream::connect(addr).await.unwrap();
        let _ = garbage
            .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
            .await;
        expect_closed(&mut garbage).await;
        assert!(b_rx.try_recv().is_err());
        let (a, mut a_rx) = tls_node("a", &credential(dir.path(), "ca", "a", &["ca"]), "a").await;
        introduce(&a, &b);
        assert!(delivered(&a, &mut a_rx, &mut b_rx).await);
    })
    .await;
}

/// A TCP proxy to `target` that records what the connecting side sends.
async fn recording_proxy(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let tape = Arc::clone(&recorded);
    tokio::spawn(async move {
        let (inbound, _) = listener.accept().await.unwrap();
        let outbound = TcpStream::connect(target).await.unwrap();
        let (mut in_read, mut in_write) = inbound.into_split();
        let (mut out_read, mut out_write) = outbound.into_split();
        tokio::spawn(async move { tokio::io::copy(&mut out_read, &mut in_write).await });
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = in_read.read(&mut buf).await {
            tape.lock().unwrap().extend_from_slice(&buf[..n]);
            if out_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    (addr, recorded)
}

#[tokio::test]
async fn a_recorded_connection_replayed_delivers_nothing() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (a, mut a_rx) = tls_node("a", &credential(dir.path(), "ca", "a", &["ca"]), "a").await;
        let (b, mut b_rx) = tls_node("b", &credential(dir.path(), "ca", "b", &["ca"]), "b").await;
        let (proxy, recorded) = recording_proxy(b.local_addr()).await;
        a.set_peer(id("b"), proxy);
        assert!(delivered(&a, &mut a_rx, &mut b_rx).await);
        let tape = recorded.lock().unwrap().clone();
        assert!(tape.len() > 100, "recorded the handshake and a message");
        let mut replay = TcpStream::connect(b.local_addr()).await.unwrap();
        let _ = replay.write_all(&tape).await;
        expect_closed(&mut replay).await;
        assert!(
            b_rx.try_recv().is_err(),
            "a replayed stream delivered a message"
        );
    })
    .await;
}

/// The documented CA rotation, middle step: every node trusts the old and
/// the new CA, so nodes already holding new certificates and nodes still on
/// old ones talk; a node that trusts only the old CA refuses the new ones,
/// which is why the trust step comes first.
#[tokio::test]
async fn during_a_ca_rotation_old_and_new_certificates_talk() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (a, mut a_rx) = tls_node(
            "a",
            &credential(dir.path(), "old", "a", &["old", "new"]),
            "a",
        )
        .await;
        let (b, mut b_rx) = tls_node(
            "b",
            &credential(dir.path(), "new", "b", &["old", "new"]),
            "b",
        )
        .await;
        introduce(&a, &b);
        assert!(delivered(&a, &mut a_rx, &mut b_rx).await);
        b.send(&id("a"), TestMsg::Text("new to old".into()));
        expect_message(&mut a_rx, "b", TestMsg::Text("new to old".into())).await;
        drop(b);
        let (old_only, mut old_rx) =
            tls_node("b", &credential(dir.path(), "old", "b", &["old"]), "b").await;
        let (new, mut new_rx) = tls_node(
            "a",
            &credential(dir.path(), "new", "a", &["old", "new"]),
            "a",
        )
        .await;
        introduce(&new, &old_only);
        assert!(!delivered(&new, &mut new_rx, &mut old_rx).await);
    })
    .await;
}
