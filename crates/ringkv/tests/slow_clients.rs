//! Slow and idle HTTP clients: connections that send half a request head,
//! or nothing, are closed by the node after `http_header_timeout_ms`;
//! while they fill every `http_connections` slot, `/health/live`,
//! `/health/ready` and `/status` still answer (the operators' reserve);
//! and a body declared larger than the node takes is refused `413` before
//! any of it is sent.
//!
//! Real node processes, raw TCP for the misbehaving clients. No tight
//! wall-clock bounds: a socket must be closed by the server eventually,
//! within a deadline many times the configured timeout.

mod common;

use common::Cluster;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The node's connection limit in these tests.
const CONNECTIONS: usize = 4;
/// Generous: how long any answer or close may take here.
const DEADLINE: Duration = Duration::from_secs(30);

fn limits(header_timeout_ms: u64) -> String {
    format!(
        "[limits]\nhttp_connections = {CONNECTIONS}\nhttp_header_timeout_ms = {header_timeout_ms}\n"
    )
}

/// A connection that sent half a request head and then nothing.
async fn half_request(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let half = "GET /kv/x HTTP/1.1\r\nHost: a\r\n";
    stream.write_all(half.as_bytes()).await.expect("send");
    stream
}

/// What the server sent on `stream` until it closed it (or reset it):
/// `Err` if it was still open at the [`DEADLINE`].
async fn until_closed(stream: &mut TcpStream) -> Result<String, String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(DEADLINE, async {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut chunk).await {
            got.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got).into_owned();
    match read {
        Ok(()) => Ok(text),
        Err(_) => Err(format!("still open after {DEADLINE:?}; got {text:?}")),
    }
}

/// `request` on a new connection, and the answer until the server closes.
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    until_closed(&mut stream)
        .await
        .expect("an answer, then close")
}

/// `GET path` on a new connection that asks to be closed after it.
async fn get(addr: SocketAddr, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    exchange(addr, &request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_get_through_while_half_requests_hold_every_connection() {
    // A timeout far beyond the test: the half requests hold their slots.
    let cluster = Cluster::start_with(1, &limits(600_000)).await;
    let addr = cluster.http_addr(1);
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS {
        held.push(half_request(addr).await);
    }

    let refused = get(addr, "/kv/x").await;
    assert!(refused.starts_with("HTTP/1.1 503 "), "{refused}");
    assert!(
        refused.contains("its limit (http_connections)"),
        "{refused}"
    );
    for path in ["/health/live", "/health/ready", "/status"] {
        let answer = get(addr, path).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{path}: {answer}");
    }
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_an_oversize_body_is_refused_unsent() {
    let cluster = Cluster::start_with(1, &limits(500)).await;
    let addr = cluster.http_addr(1);
    let mut idle = Vec::new();
    for _ in 0..CONNECTIONS {
        idle.push(half_request(addr).await);
    }
    idle.push(TcpStream::connect(addr).await.expect("connect"));
    for (i, stream) in idle.iter_mut().enumerate() {
        let closed = until_closed(stream).await;
        assert!(closed.is_ok(), "idle connection {i}: {closed:?}");
    }
    // Every slot is free again.
    let live = get(addr, "/kv/x").await;
    assert!(live.starts_with("HTTP/1.1 404 "), "{live}");

    let put = "PUT /kv/huge HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n";
    let refused = exchange(addr, put).await;
    assert!(refused.starts_with("HTTP/1.1 413 "), "{refused}");
    assert!(
        refused.contains("declares a body of 99999999999 bytes, more than the 1048576 bytes"),
        "{refused}"
    );

    // Sent without a length (chunked), a body over the limit is cut where
    // it passes it, and the answer is this node's sentence, not axum's.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = "PUT /kv/chunky HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = [
        format!("{:x}\r\n", 64 * 1024).into_bytes(),
        vec![b'z'; 64 * 1024],
        b"\r\n".to_vec(),
    ]
    .concat();
    for _ in 0..17 {
        // The node may answer and close before it has read everything.
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(
        answer.contains("the request body is more than the 1048576 bytes this node takes"),
        "{answer}"
    );
}

/// A `PUT` that declares 100 bytes and sends 3, then nothing.
async fn stalled_put(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let put = "PUT /kv/stalled HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc";
    stream.write_all(put.as_bytes()).await.expect("send");
    stream
}

/// A body that stalls holds no `http_requests` slot while it is awaited,
/// and gets `408` and a closed connection after `http_body_timeout_ms`.
/// (It held its slot for ever: 1,024 of them locked every client out of
/// `/kv`, a fresh-eyes test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_holds_no_request_slot_and_gets_408() {
    let waiting = "[limits]\nhttp_requests = 2\nhttp_body_timeout_ms = 600000\n";
    let cluster = Cluster::start_with(1, waiting).await;
    let addr = cluster.http_addr(1);
    let mut stalled = Vec::new();
    for _ in 0..3 {
        stalled.push(stalled_put(addr).await);
    }
    let answer = get(addr, "/kv/x").await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    drop(stalled);
    drop(cluster);

    let cluster = Cluster::start_with(1, "[limits]\nhttp_body_timeout_ms = 500\n").await;
    let mut stream = stalled_put(cluster.http_addr(1)).await;
    let answer = until_closed(&mut stream)
        .await
        .expect("closed after the 408");
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.contains("the request body did not arrive within 500 ms of its head"),
        "{answer}"
    );
}
