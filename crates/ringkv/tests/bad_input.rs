//! Bad input at every door: invalid requests get a 4xx and one sentence,
//! garbage on either port never takes a node down.

mod common;

use common::{eventually, Cluster, CONTEXT_HEADER};
use reqwest::Method;
use ringkv_core::settings::{ClusterSettings, Settings};
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Deterministic pseudo-random bytes (xorshift64*), so a failure replays.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Write `bytes` on a fresh connection, optionally half-close, and read
/// whatever comes back until the server closes or a bounded wait passes.
fn raw_exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The server may close before reading everything; that is its right.
    let _ = stream.write_all(bytes);
    if half_close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut answer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if half_close || !answer.is_empty() {
                    continue;
                }
                break;
            }
            Err(_) => break,
        }
    }
    answer
}

/// One length-delimited frame of the inter-node protocol (u32 BE length).
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// The inter-node handshake, shaped as the transport's private `Hello`.
#[derive(Serialize)]
struct Hello {
    magic: u32,
    protocol_version: u16,
    cluster: String,
    node: String,
    settings: ClusterSettings,
}

/// A handshake of the current protocol, with the test cluster's settings.
fn hello(magic: u32, cluster: &str, node: &str) -> Vec<u8> {
    let hello = Hello {
        magic,
        protocol_version: ringkv_server::transport::PROTOCOL_VERSION,
        cluster: cluster.into(),
        node: node.into(),
        settings: Settings::default().cluster(),
    };
    frame(&postcard::to_stdvec(&hello).unwrap())
}

const MAGIC: u32 = 0x524B_5631;

/// The tag before a message's postcard bytes in every frame past the
/// handshake (protocol version 3; 1 is a ping).
const MESSAGE_TAG: u8 = 0;

/// A message frame: the tag, then `payload`.
fn message_frame(payload: &[u8]) -> Vec<u8> {
    frame(&[&[MESSAGE_TAG][..], payload].concat())
}

/// After abuse: every node still runs and serves a full-quorum write and read.
async fn assert_healthy(c: &mut Cluster, round: &str) {
    for i in 1..=c.len() {
        assert!(c.is_alive(i), "n{i} died after {round}");
    }
    let key = format!("health:{round}");
    for i in 1..=c.len() {
        let value = format!("{round} via n{i}");
        c.put_with(i, &key, value.clone(), None, Some(3))
            .await
            .expect(204);
        for j in 1..=c.len() {
            let got = c.get_with(j, &key, Some(3), false).await.expect(200);
            assert_eq!(got.text(), value, "after {round}, read via n{j}");
        }
        let ctx = c.get(i, &key).await.context().unwrap();
        c.delete_with(i, &key, Some(&ctx), Some(3))
            .await
            .expect(204);
    }
}

#[tokio::test]
async fn invalid_requests_get_a_client_error_and_change_nothing() {
    let mut c = Cluster::start_patient(3).await;

    let long_key = "k".repeat(1025);
    let resp = c.put(1, &long_key, "v").await.expect(400);
    assert!(
        resp.text().contains("key must be 1 to 1024 bytes"),
        "{}",
        resp.text()
    );
    c.get(2, &long_key).await.expect(400);
    c.delete(3, &long_key).await.expect(400);
    let max_key = "k".repeat(1024);
    c.put(1, &max_key, "at the limit").await.expect(204);
    assert_eq!(c.get(2, &max_key).await.expect(200).text(), "at the limit");

    // Values: the limit itself is fine, one byte more is refused.
    let limit = 1024 * 1024;
    c.put(2, "big", vec![b'x'; limit]).await.expect(204);
    assert_eq!(c.get(3, "big").await.expect(200).body.len(), limit);
    let resp = c.put(2, "too-big", vec![b'y'; limit + 1]).await;
    assert!(
        resp.status == 413 || resp.status == 400,
        "a value one byte too big got {} {}",
        resp.status,
        resp.text()
    );
    // Far too big: the node answers 413 once it has read one byte past the
    // limit and closes the connection, so a client still sending the rest
    // may see a reset instead of the answer. Either way nothing is stored.
    let sent = c
        .try_request(
            Method::PUT,
            2,
            "/kv/too-big",
            &[],
            Some(vec![b'y'; 2 * limit]),
        )
        .await;
    match sent {
        Ok(resp) => assert!(
            resp.status == 413 || resp.status == 400,
            "a 2 MiB value got {} {}",
            resp.status,
            resp.text()
        ),
        Err(e) => assert!(!e.is_timeout(), "a 2 MiB value: {e}"),
    }
    c.get(1, "too-big").await.expect(404);

    // Contexts: garbage, wrong format, not even ASCII.
    for bad in ["garbage!", "AAAA", "Ag", "AQ-_-_-_-_"] {
        let headers = [(CONTEXT_HEADER, bad)];
        let resp = c
            .request(Method::PUT, 1, "/kv/ctx", &headers, Some(b"v".to_vec()))
            .await
            .expect(400);
        assert!(
            resp.text().contains("invalid causal context"),
            "{bad}: {}",
            resp.text()
        );
        c.request(Method::DELETE, 2, "/kv/ctx", &headers, None)
            .await
            .expect(400);
    }
    let resp = c
        .request(
            Method::PUT,
            1,
            "/kv/ctx",
            &[(CONTEXT_HEADER, "caf\u{e9}")],
            Some(b"v".to_vec()),
        )
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    c.get(3, "ctx").await.expect(404);

    // Quorums out of range or not numbers; unknown parameters.
    for query in [
        "r=0",
        "r=4",
        "r=abc",
        "r=-1",
        "r=",
        "r=99999999999999999999999",
        "x=1",
        "r=1&r=2",
    ] {
        let resp = c
            .request(Method::GET, 1, &format!("/kv/q?{query}"), &[], None)
            .await;
        assert_eq!(resp.status, 400, "GET ?{query}: {}", resp.text());
    }
    for query in ["w=0", "w=4", "w=abc", "w=1.5", "x=1"] {
        let resp = c
            .request(
                Method::PUT,
                2,
                &format!("/kv/q?{query}"),
                &[],
                Some(b"v".to_vec()),
            )
            .await;
        assert_eq!(resp.status, 400, "PUT ?{query}: {}", resp.text());
        let resp = c
            .request(Method::DELETE, 3, &format!("/kv/q?{query}"), &[], None)
            .await;
        assert_eq!(resp.status, 400, "DELETE ?{query}: {}", resp.text());
    }
    let resp = c.put_with(1, "q", "v", None, Some(4)).await.expect(400);
    assert!(
        resp.text().contains("w must be within 1..=3, got 4"),
        "{}",
        resp.text()
    );
    c.get(1, "q").await.expect(404);

    // A key that is not UTF-8, and no key at all.
    c.request(Method::PUT, 1, "/kv/%FF%FE", &[], Some(b"v".to_vec()))
        .await
        .expect(400);
    let resp = c.request(Method::GET, 1, "/kv/", &[], None).await;
    assert!(
        (400..500).contains(&resp.status),
        "empty key: {}",
        resp.status
    );

    // The admin switch refuses unknown peers and actions.
    c.request(Method::POST, 1, "/admin/links/n9/cut", &[], None)
        .await
        .expect(404);
    c.request(Method::POST, 1, "/admin/links/n2/sever", &[], None)
        .await
        .expect(400);

    assert_healthy(&mut c, "bad-requests").await;
}

#[tokio::test]
async fn garbage_on_the_http_port_does_not_hurt_the_node() {
    let mut c = Cluster::start_patient(3).await;
    let addr = c.http_addr(1);

    // (bytes, half-close afterwards, must be answered with a 400)
    let mut inputs: Vec<(Vec<u8>, bool, bool)> = vec![
        (noise(1, 64), false, true),
        (noise(2, 64 * 1024), true, true),
        (b"GET / HTTP/9.9\r\n\r\n".to_vec(), true, true),
        (b"GET /status HTTP/1.1\r\nthis is not a header\r\n\r\n".to_vec(), true, true),
        (b"GET /kv/x HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n".to_vec(), true, true),
        (
            b"PUT /kv/broken HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n"
                .to_vec(),
            true,
            true,
        ),
        // A body shorter than announced, then the client hangs up.
        (
            b"PUT /kv/broken HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nshort".to_vec(),
            true,
            false,
        ),
        (b"\r\n\r\n\r\n\r\n".to_vec(), true, false),
        (
            format!("GET /status HTTP/1.1\r\nHost: a\r\nX-Huge: {}\r\n\r\n", "h".repeat(200_000))
                .into_bytes(),
            false,
            false,
        ),
        // A valid request, then the client hangs up at once.
        (b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), true, false),
        // Connect and hang up.
        (Vec::new(), true, false),
    ];
    // A valid request followed by garbage on the same connection.
    let mut pipelined = b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    pipelined.extend(noise(3, 512));
    inputs.push((pipelined, false, false));

    for (bytes, half_close, must_refuse) in &inputs {
        let answer = raw_exchange(addr, bytes, *half_close);
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
        let status_line = String::from_utf8_lossy(&answer[..answer.len().min(12)]).into_owned();
        if *must_refuse {
            assert_eq!(status_line, "HTTP/1.1 400", "answer to {shown:?}");
        } else if !answer.is_empty() {
            assert!(
                status_line.starts_with("HTTP/1.1 2") || status_line.starts_with("HTTP/1.1 4"),
                "answer to {shown:?}: {status_line:?}"
            );
        }
    }
    c.get(2, "broken").await.expect(404);
    assert_healthy(&mut c, "http-garbage").await;
}

/// Garbage, bad handshakes (wrong magic, another cluster, an unknown node)
/// and undecodable messages after a good one: the node closes each such
/// connection, logs why, and keeps serving.
#[tokio::test]
async fn garbage_on_the_inter_node_port_does_not_hurt_the_node() {
    let mut c = Cluster::start_patient(3).await;
    let addr = c.peer_addr(1);

    let mut spoofed = hello(MAGIC, "e2e", "n2");
    spoofed.extend(message_frame(&noise(4, 300)));
    let mut truncated = hello(MAGIC, "e2e", "n3");
    truncated.extend(1_000_000u32.to_be_bytes());
    truncated.extend(noise(5, 100));
    let mut oversized = hello(MAGIC, "e2e", "n2");
    oversized.extend(u32::MAX.to_be_bytes());
    oversized.extend(noise(6, 100));
    // Well-formed messages answering requests that were never made.
    let mut unsolicited = hello(MAGIC, "e2e", "n2");
    for msg in [
        ringkv_core::message::Message::ReplicateAck {
            req: 999_999,
            result: Ok(()),
        },
        ringkv_core::message::Message::ReadReply {
            req: 999_998,
            result: Err("nonsense".into()),
        },
        ringkv_core::message::Message::ForwardReply {
            req: 999_997,
            result: Ok(ringkv_core::message::ClientReply::Written {
                dot: ringkv_core::version::Dot::new("n2", 1),
                context: Default::default(),
            }),
        },
    ] {
        unsolicited.extend(message_frame(&postcard::to_stdvec(&msg).unwrap()));
    }

    let inputs: Vec<Vec<u8>> = vec![
        noise(7, 64),
        noise(8, 64 * 1024),
        u32::MAX.to_be_bytes().to_vec(),
        b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        hello(0xDEAD_BEEF, "e2e", "n2"),
        hello(MAGIC, "another-cluster", "n2"),
        hello(MAGIC, "e2e", "n9"),
        spoofed,
        truncated,
        oversized,
        unsolicited,
        Vec::new(),
    ];
    for bytes in &inputs {
        raw_exchange(addr, bytes, true);
    }
    // A connection that never says hello is closed by the node.
    let mut silent = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    match silent.read(&mut buf) {
        Ok(0) => {}
        Err(e)
            if !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a connection without a handshake was not closed: {other:?}"),
    }
    // The HTTP port gets the same treatment from the inter-node side.
    raw_exchange(c.http_addr(1), &hello(MAGIC, "e2e", "n2"), true);

    // Each kind of rejection left a line in the log saying why.
    let log = c.log_path(1).to_path_buf();
    let reasons: [&[&str]; 4] = [
        &["rejected inbound connection", "bad handshake frame"],
        &["rejected inbound connection", "bad magic 0xdeadbeef"],
        &["rejected inbound connection", "\"another-cluster\""],
        &["closing inbound connection: undecodable message", "peer=n2"],
    ];
    let what = "n1 logs every kind of rejected inter-node input";
    eventually(Duration::from_secs(5), what, async || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let logged = |parts: &[&str]| text.lines().any(|l| parts.iter().all(|p| l.contains(p)));
        match reasons.iter().find(|parts| !logged(parts)) {
            None => Ok(()),
            Some(parts) => Err(format!("no log line with {parts:?}")),
        }
    })
    .await;

    assert_healthy(&mut c, "peer-garbage").await;
}
