//! Which failures the client sends on to the next node, against two fake
//! nodes on loopback: the first fails a request in one way, the second
//! answers and counts what reached it. An increment is not idempotent, so
//! it is sent on only when the first node surely did nothing with it — its
//! connection was refused, or it shed the request (`503` with
//! `Retry-After`) — and never once it may have been applied: no answer in
//! time, the connection lost after sending, a `503` without `Retry-After`
//! (a quorum not reached: some replica may hold the write) or a `504`
//! (the node's coordinator fell silent with it). A read is sent on after
//! every one of those (but the `504`, which nodes give increments only).

use ringkv_client::{Client, Error, Options};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the first node fails every data request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// Its port is closed: the connection is refused, nothing is sent.
    Refused,
    /// Shed: `503` with `Retry-After: 1`.
    Shed,
    /// Reads the request, then never answers.
    Silent,
    /// Reads the request, then closes the connection unanswered.
    Hangs,
    /// `503` without `Retry-After`: a quorum not reached.
    Unavailable,
    /// `504`: the coordinator took it and fell silent.
    Indeterminate,
}

/// A fake node: `/ring` names both fakes (with a fingerprint no client
/// computes, so the client routes by its seeds, in order); data requests
/// fail as `failure` says, or — with no failure — are answered and
/// counted.
struct Fake {
    failure: Option<Failure>,
    ring: String,
    /// Data requests answered.
    answered: AtomicUsize,
}

impl Fake {
    fn answer(&self, request_line: &str) -> Option<String> {
        let path = request_line.split_whitespace().nth(1).unwrap_or("/");
        if path == "/ring" {
            return Some(response("200 OK", &[], &self.ring));
        }
        match self.failure {
            Some(Failure::Shed) => Some(response(
                "503 Service Unavailable",
                &[("retry-after", "1")],
                "f1 is overloaded (operations in flight at its limit of 1); nothing was done, retry shortly\n",
            )),
            Some(Failure::Unavailable) => Some(response(
                "503 Service Unavailable",
                &[],
                "incrby needed 2 of 3 replicas but only 1 answered in time\n",
            )),
            Some(Failure::Indeterminate) => Some(response(
                "504 Gateway Timeout",
                &[],
                "f3 took the incrby but did not answer in time; it may or may not have been applied\n",
            )),
            Some(Failure::Silent | Failure::Hangs | Failure::Refused) => None,
            None => {
                self.answered.fetch_add(1, Ordering::SeqCst);
                let body = match request_line.split_whitespace().next() {
                    Some("PUT") => r#"{"added":1}"#,
                    _ if path.starts_with("/set/") => r#"{"members":["apple"]}"#,
                    _ => r#"{"value":7}"#,
                };
                Some(response("200 OK", &[], body))
            }
        }
    }
}

fn response(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut text = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

async fn handle(mut stream: TcpStream, fake: &Fake) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let line = text.lines().next().unwrap_or_default();
    match fake.answer(line) {
        Some(answer) => {
            let _ = stream.write_all(answer.as_bytes()).await;
        }
        None if fake.failure == Some(Failure::Silent) => {
            // Hold the connection, answering nothing, until the test ends.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        None => drop(stream),
    }
}

/// Two listening fakes, the first failing as `failure`; their addresses
/// and the second's count. With `Failure::Refused` the first's port is
/// closed once both are bound (nothing listens there).
async fn fakes(failure: Failure) -> (String, String, Arc<Fake>) {
    let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let second = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (a, b) = (
        first.local_addr().unwrap().to_string(),
        second.local_addr().unwrap().to_string(),
    );
    let ring = format!(
        r#"{{"n":2,"vnodes_per_node":8,"ring_fingerprint":"0000000000000000",
            "members":[{{"id":"f1","http":"{a}"}},{{"id":"f2","http":"{b}"}}]}}"#
    );
    let counted = Arc::new(Fake {
        failure: None,
        ring: ring.clone(),
        answered: AtomicUsize::new(0),
    });
    let failing = Arc::new(Fake {
        failure: Some(failure),
        ring,
        answered: AtomicUsize::new(0),
    });
    tokio::spawn(serve(second, counted.clone()));
    if failure == Failure::Refused {
        drop(first);
    } else {
        tokio::spawn(serve(first, failing));
    }
    (a, b, counted)
}

async fn serve(listener: TcpListener, fake: Arc<Fake>) {
    while let Ok((stream, _)) = listener.accept().await {
        let fake = fake.clone();
        tokio::spawn(async move { handle(stream, &fake).await });
    }
}

/// A client whose first choice for every key is the first fake (its
/// seeds in order: the ring is unknown to it), the second its retry.
async fn client(first: &str, second: &str) -> Client {
    Client::builder()
        .timeout(Duration::from_millis(500))
        .connect([first.to_string(), second.to_string()])
        .await
        .expect("client connects")
}

const FAILURES: [Failure; 6] = [
    Failure::Refused,
    Failure::Shed,
    Failure::Silent,
    Failure::Hangs,
    Failure::Unavailable,
    Failure::Indeterminate,
];

#[tokio::test]
async fn an_increment_goes_on_to_the_next_node_only_when_the_first_did_nothing() {
    for failure in FAILURES {
        let (first, second, counted) = fakes(failure).await;
        let client = client(&first, &second).await;
        let result = client.incr("hits", 1).await;
        let resent = counted.answered.load(Ordering::SeqCst);
        let nothing_done = matches!(failure, Failure::Refused | Failure::Shed);
        if nothing_done {
            assert_eq!(
                resent, 1,
                "{failure:?}: the increment goes on to the next node"
            );
            assert_eq!(result.expect("answered by the second"), 7, "{failure:?}");
        } else {
            assert_eq!(resent, 0, "{failure:?}: the increment was sent twice");
            let error = result.expect_err("the first node's failure");
            let expected = match failure {
                Failure::Silent => matches!(error, Error::Timeout { .. }),
                Failure::Hangs => matches!(error, Error::Interrupted { .. }),
                Failure::Unavailable => error.status() == Some(503),
                _ => error.status() == Some(504),
            };
            assert!(expected, "{failure:?}: {error}");
            assert!(
                error.to_string().contains(&first),
                "{failure:?}: the error names the node that may hold it: {error}"
            );
        }
    }
}

#[tokio::test]
async fn reads_go_on_to_the_next_node_after_any_of_those_failures() {
    for failure in FAILURES {
        if failure == Failure::Indeterminate {
            continue;
        }
        let (first, second, counted) = fakes(failure).await;
        // A fresh client for each request: a client passes over a node
        // whose connection failed for 2 s, and every request here must
        // try the first fake first.
        let value = client(&first, &second).await.counter("hits").await;
        assert_eq!(value.expect("read from the second"), Some(7), "{failure:?}");
        let members = client(&first, &second).await.smembers("cart").await;
        assert_eq!(
            members.expect("read from the second"),
            ["apple"],
            "{failure:?}"
        );
        assert_eq!(counted.answered.load(Ordering::SeqCst), 2, "{failure:?}");
        // A set add is a write: resent only when it surely was not applied.
        let sent_on = client(&first, &second)
            .await
            .sadd_with("cart", "pear", &Options::default())
            .await
            .is_ok();
        assert_eq!(
            sent_on,
            matches!(failure, Failure::Refused | Failure::Shed),
            "{failure:?}"
        );
    }
}
