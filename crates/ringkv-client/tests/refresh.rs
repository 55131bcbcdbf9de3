//! Keeping the topology fresh, against a fake one-member node on loopback
//! whose ring can be switched (real clusters cannot change membership yet):
//! an answer carrying another ring fingerprint makes the client refetch
//! `/ring` at once, and it also refetches on its interval. A node too old
//! for `/ring` answers `/status` instead.

use ringkv_client::{Client, Routing};
use ringkv_core::ring::{Ring, RingMember};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const VNODES: u32 = 8;

/// The fake node's ring: its one member, zoneless or in zone "b".
fn ring(zoned: bool) -> Ring {
    let member = if zoned {
        RingMember::zoned("f1", "b")
    } else {
        RingMember::new("f1")
    };
    Ring::with_members([member], VNODES)
}

#[derive(Default)]
struct Fake {
    zoned: AtomicBool,
    /// Serves the topology at `/status` only, as releases before `/ring`.
    old: AtomicBool,
    /// Topology documents served.
    status_requests: AtomicUsize,
    /// Requests for `/status`.
    old_requests: AtomicUsize,
}

impl Fake {
    fn answer(&self, path: &str, addr: &str) -> String {
        let zoned = self.zoned.load(Ordering::SeqCst);
        let fingerprint = format!("{:016x}", ring(zoned).fingerprint());
        if path == "/status" {
            self.old_requests.fetch_add(1, Ordering::SeqCst);
        }
        let topology = if self.old.load(Ordering::SeqCst) {
            "/status"
        } else {
            "/ring"
        };
        if path == topology {
            self.status_requests.fetch_add(1, Ordering::SeqCst);
            let zone = if zoned { "\"b\"" } else { "null" };
            let body = format!(
                r#"{{"n":1,"vnodes_per_node":{VNODES},"ring_fingerprint":"{fingerprint}",
                    "members":[{{"id":"f1","http":"{addr}","zone":{zone}}}]}}"#
            );
            return response("200 OK", &[], &body);
        }
        // Every key is missing; the answer carries the current ring.
        let headers = [
            ("x-ringkv-ring", fingerprint.as_str()),
            ("x-ringkv-context", "AQA"),
        ];
        response("404 Not Found", &headers, "not found\n")
    }
}

fn response(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

/// Serve `fake` on a loopback port until the test ends.
async fn serve(fake: Arc<Fake>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let me = addr.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (fake, me) = (fake.clone(), me.clone());
            tokio::spawn(async move { handle(stream, &fake, &me).await });
        }
    });
    addr
}

async fn handle(mut stream: TcpStream, fake: &Fake, me: &str) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split_whitespace().nth(1).unwrap_or("/");
    let _ = stream.write_all(fake.answer(path, me).as_bytes()).await;
}

/// Wait (bounded) until the fake has served `count` status requests.
async fn wait_for_status_requests(fake: &Fake, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.status_requests.load(Ordering::SeqCst) < count {
        assert!(Instant::now() < deadline, "no refresh within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_answer_from_another_ring_triggers_a_refresh() {
    let fake = Arc::new(Fake::default());
    let addr = serve(fake.clone()).await;
    let client = Client::builder()
        .routing(Routing::PartitionAware)
        .refresh_interval(Duration::from_secs(3600))
        .connect([addr.as_str()])
        .await
        .expect("connect");
    assert_eq!(fake.status_requests.load(Ordering::SeqCst), 1);

    // Same ring: no refresh.
    let read = client.get("k").await.expect("get");
    assert!(read.is_empty());
    assert_eq!(read.context.as_str(), Some("AQA"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.status_requests.load(Ordering::SeqCst), 1);

    // The node's ring changes: the next answer shows it, the client
    // refetches, and then agrees again (no further refresh).
    fake.zoned.store(true, Ordering::SeqCst);
    client.get("k").await.expect("get");
    wait_for_status_requests(&fake, 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.get("k").await.expect("get");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.status_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_topology_is_refetched_on_an_interval() {
    let fake = Arc::new(Fake::default());
    let addr = serve(fake.clone()).await;
    let _client = Client::builder()
        .refresh_interval(Duration::from_millis(50))
        .connect([addr.as_str()])
        .await
        .expect("connect");
    wait_for_status_requests(&fake, 3).await;
    assert_eq!(fake.old_requests.load(Ordering::SeqCst), 0, "/ring only");
}

#[tokio::test]
async fn a_node_without_ring_gives_its_status() {
    let fake = Arc::new(Fake::default());
    fake.old.store(true, Ordering::SeqCst);
    let addr = serve(fake.clone()).await;
    let client = Client::builder()
        .routing(Routing::PartitionAware)
        .connect([addr.as_str()])
        .await
        .expect("connect through /status");
    assert_eq!(fake.status_requests.load(Ordering::SeqCst), 1);
    assert!(client.get("k").await.expect("get").is_empty());
}

#[tokio::test]
async fn connect_names_the_problem_when_no_seed_answers() {
    let unused = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = unused.local_addr().expect("addr").to_string();
    drop(unused);
    let error = match Client::connect([addr.as_str()]).await {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains(&format!("cannot reach node {addr}")),
        "{error}"
    );
    let none: [&str; 0] = [];
    assert!(Client::connect(none).await.is_err());
}
