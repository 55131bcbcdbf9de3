//! Overload: a cluster whose nodes have tiny `[limits]`, driven far past
//! them by many concurrent HTTP and Redis-protocol clients, refuses what
//! is beyond its limits at once — `503` with `Retry-After`, `-BUSY` —
//! never with a timeout; counts each refusal in `/status` where it
//! happened; loses no write it acknowledged; and serves normally again
//! once the burst is over.

mod common;

use common::redis::{bulk, ok, request, Redis, Reply};
use common::{eventually, key_path, send, Cluster, Resp, PATIENT_TIMEOUT_MS};
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Tiny limits: a handful of requests at once, a short node queue, short
/// RESP pipelines.
const LIMITS: &str = "[limits]\n\
    node_queue_events = 16\n\
    node_queue_bytes = 16384\n\
    in_flight_ops = 4\n\
    http_requests = 4\n\
    resp_pipeline_commands = 4\n\
    resp_pipeline_bytes = 4096\n";
/// Concurrent HTTP clients, one PUT each, all at node 1.
const HTTP_CLIENTS: usize = 200;
/// Concurrent RESP connections to node 1, each pipelining SETs.
const RESP_CLIENTS: usize = 50;
const PIPELINE: usize = 20;
/// Bytes of each HTTP value (so the queue's byte limit counts too).
const VALUE_BYTES: usize = 1024;

/// What became of one request.
#[derive(Debug)]
enum Outcome {
    /// Acknowledged: the write must be readable afterwards.
    Done { key: String, value: String },
    /// Refused as overload; the node's sentence.
    Shed(String),
    /// Anything else (a timeout, a quorum failure, a broken connection).
    Failed(String),
}

fn http_value(i: usize) -> String {
    let head = format!("h{i}:");
    head.clone() + &"x".repeat(VALUE_BYTES - head.len())
}

/// One PUT of `h{i}` to node 1: 204, or 503 with `Retry-After: 1`.
async fn http_put(http: reqwest::Client, url: String, i: usize) -> Outcome {
    let (key, value) = (format!("h{i}"), http_value(i));
    let put = send(
        &http,
        Method::PUT,
        &url,
        &[],
        Some(value.clone().into_bytes()),
    )
    .await;
    match put {
        Ok(Resp { status: 204, .. }) => Outcome::Done { key, value },
        Ok(answer) if is_shed(&answer) => Outcome::Shed(answer.text().trim().to_string()),
        Ok(answer) => Outcome::Failed(format!("PUT {key}: {} {}", answer.status, answer.text())),
        Err(e) => Outcome::Failed(format!("PUT {key}: {e}")),
    }
}

fn is_shed(answer: &Resp) -> bool {
    let retry = answer
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok());
    answer.status == 503 && retry == Some("1")
}

/// One connection pipelining [`PIPELINE`] SETs in a single write, then
/// reading every reply: `+OK` or `-BUSY`.
async fn resp_pipeline(addr: std::net::SocketAddr, c: usize) -> Vec<Outcome> {
    let pairs: Vec<(String, String)> = (0..PIPELINE)
        .map(|j| (format!("r{c}-{j}"), format!("v{c}-{j}")))
        .collect();
    let mut stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(e) => return vec![Outcome::Failed(format!("connect: {e}"))],
    };
    let requests: Vec<u8> = pairs
        .iter()
        .flat_map(|(k, v)| request(&["SET", k.as_str(), v.as_str()]))
        .collect();
    if let Err(e) = stream.write_all(&requests).await {
        return vec![Outcome::Failed(format!("write: {e}"))];
    }
    let mut replies = BufReader::new(stream);
    let mut outcomes = Vec::new();
    for (key, value) in pairs {
        let mut line = String::new();
        let read = replies.read_line(&mut line).await;
        let line = line.trim_end().to_string();
        outcomes.push(match (read, line.as_str()) {
            (Ok(_), "+OK") => Outcome::Done { key, value },
            (Ok(_), busy) if busy.starts_with("-BUSY ") => Outcome::Shed(busy[6..].to_string()),
            (read, other) => Outcome::Failed(format!("SET {key}: {read:?} {other:?}")),
        });
    }
    outcomes
}

/// Everything at once: the HTTP PUTs, the RESP pipelines, and one
/// `/status` (which must answer while the node sheds `/kv`).
async fn burst(cluster: &Cluster) -> (Vec<Outcome>, Vec<Outcome>) {
    let http = common::http_client();
    let puts: Vec<_> = (0..HTTP_CLIENTS)
        .map(|i| {
            tokio::spawn(http_put(
                http.clone(),
                cluster.url(1, &key_path(&format!("h{i}"))),
                i,
            ))
        })
        .collect();
    let pipelines: Vec<_> = (0..RESP_CLIENTS)
        .map(|c| tokio::spawn(resp_pipeline(cluster.resp_addr(1), c)))
        .collect();
    let status = send(&http, Method::GET, &cluster.url(1, "/status"), &[], None).await;
    assert_eq!(
        status.map(|s| s.status).ok(),
        Some(200),
        "status during the burst"
    );
    let mut from_http = Vec::new();
    for put in puts {
        from_http.push(put.await.expect("http client task"));
    }
    let mut from_resp = Vec::new();
    for pipeline in pipelines {
        from_resp.extend(pipeline.await.expect("resp client task"));
    }
    (from_http, from_resp)
}

/// `load.shed.{queue}.{cause}` of a status.
fn shed(status: &Value, queue: &str, cause: &str) -> u64 {
    status["load"]["shed"][queue][cause]
        .as_u64()
        .unwrap_or_else(|| panic!("no load.shed.{queue}.{cause} in {status}"))
}

/// Refusals the clients saw whose sentence contains `text`.
fn seen(outcomes: &[&Outcome], text: &str) -> u64 {
    outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Shed(sentence) if sentence.contains(text)))
        .count() as u64
}

/// Each refusal the clients saw is counted in `/status` where it
/// happened: exactly, on node 1, which every client talked to; at least,
/// on the nodes it forwarded to (a refused forward may be overtaken by a
/// hedge that succeeded).
async fn check_counters(cluster: &Cluster, outcomes: &[&Outcome]) {
    let at_node = seen(outcomes, "(queued event") + seen(outcomes, "(operations in flight");
    let at_http = seen(outcomes, "(http_requests)");
    eprintln!("refused by the HTTP limit: {at_http}, by a node: {at_node}");
    assert!(
        at_http > 0 && at_node > 0,
        "both the front end and the node shed"
    );
    let n1 = cluster.status(1).await;
    assert_eq!(
        shed(&n1, "http_requests", "count"),
        seen(outcomes, "(http_requests)")
    );
    let queue = shed(&n1, "node_clients", "count") + shed(&n1, "node_clients", "bytes");
    assert_eq!(queue, seen(outcomes, "n1 is overloaded (queued event"));
    let ops = shed(&n1, "in_flight", "count");
    assert_eq!(
        ops,
        seen(outcomes, "n1 is overloaded (operations in flight")
    );
    assert!(
        shed(&n1, "resp_pipeline", "count") > 0,
        "pipelines were held back: {n1}"
    );
    for i in 2..=3 {
        let status = cluster.status(i).await;
        let counted = shed(&status, "node_clients", "count")
            + shed(&status, "node_clients", "bytes")
            + shed(&status, "in_flight", "count");
        assert!(counted >= seen(outcomes, &format!("n{i} is overloaded")));
    }
    let limits = &n1["load"]["limits"];
    assert_eq!(limits["in_flight_ops"], 4, "{limits}");
}

/// `/metrics` of node 1 agrees with its `/status`, and counts every HTTP
/// request the clients saw shed under `outcome="overloaded"`.
async fn check_metrics(cluster: &Cluster, from_http: &[Outcome]) {
    let n1 = cluster.status(1).await;
    let text = cluster
        .request(Method::GET, 1, "/metrics", &[], None)
        .await
        .expect(200)
        .text();
    for queue in [
        "http_requests",
        "node_clients",
        "in_flight",
        "resp_pipeline",
    ] {
        let labels = [("queue", queue), ("cause", "count")];
        let value = sample(&text, "ringkv_shed_total", &labels);
        assert_eq!(value, shed(&n1, queue, "count"), "{queue}: {n1}");
    }
    let shed = from_http.iter().filter(|o| matches!(o, Outcome::Shed(_)));
    let labels = [
        ("frontend", "http"),
        ("op", "put"),
        ("outcome", "overloaded"),
    ];
    let counted = sample(&text, "ringkv_requests_total", &labels);
    assert_eq!(counted, shed.count() as u64);
}

/// The value of the series `name` with `labels` in a Prometheus text
/// exposition.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let line = text
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"));
    let value = line.rsplit(' ').next().unwrap();
    value.parse::<f64>().unwrap() as u64
}

/// A read that the nodes may still shed while they settle: retried.
async fn read_http(cluster: &Cluster, key: &str) -> Resp {
    eventually(Duration::from_secs(30), &format!("GET {key}"), async || {
        let answer = cluster.get(2, key).await;
        if is_shed(&answer) {
            return Err(answer.text());
        }
        Ok(answer)
    })
    .await
}

/// Every acknowledged write reads back: HTTP ones through node 2, RESP
/// ones through node 3.
async fn check_acknowledged(cluster: &Cluster, from_http: &[Outcome], from_resp: &[Outcome]) {
    for outcome in from_http {
        if let Outcome::Done { key, value } = outcome {
            let answer = read_http(cluster, key).await.expect(200);
            assert_eq!(answer.text(), *value, "{key}");
        }
    }
    let mut redis = Redis::connect(cluster.resp_addr(3));
    for outcome in from_resp {
        if let Outcome::Done { key, value } = outcome {
            let read =
                eventually(
                    Duration::from_secs(30),
                    &format!("GET {key}"),
                    async || match redis.call(&["GET", key]) {
                        Reply::Error(busy) if busy.starts_with("BUSY ") => Err(busy),
                        reply => Ok(reply),
                    },
                )
                .await;
            assert_eq!(read, bulk(value), "{key}");
        }
    }
}

/// Once the burst is over: nothing left in flight or queued on any node
/// (an operation whose replica's answer was shed waits out its timeout),
/// and plain requests one at a time all succeed.
async fn check_recovered(cluster: &Cluster) {
    for i in 1..=3 {
        eventually(
            Duration::from_secs(30),
            &format!("n{i} drained"),
            async || {
                let status = cluster.status(i).await;
                let idle = status["in_flight"] == 0 && status["load"]["node_queue"]["count"] == 0;
                idle.then_some(()).ok_or(format!("{}", status["load"]))
            },
        )
        .await;
    }
    let mut redis = Redis::connect(cluster.resp_addr(1));
    for i in 0..20 {
        let key = format!("after-{i}");
        cluster.put(1, &key, "fine").await.expect(204);
        assert_eq!(cluster.get(1, &key).await.expect(200).text(), "fine");
        assert_eq!(redis.call(&["SET", &key, "fine"]), ok());
        assert_eq!(redis.call(&["GET", &key]), bulk("fine"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_far_past_its_limits_sheds_fast_counts_it_loses_nothing_acknowledged_and_recovers() {
    let cluster = Cluster::start_configured(3, PATIENT_TIMEOUT_MS, LIMITS).await;
    let (from_http, from_resp) = burst(&cluster).await;
    let all: Vec<&Outcome> = from_http.iter().chain(&from_resp).collect();
    let failed: Vec<&String> = all
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed(why) => Some(why),
            _ => None,
        })
        .collect();
    assert!(
        failed.is_empty(),
        "neither acknowledged nor shed: {failed:#?}"
    );
    // Both front ends shed; something got through (which front end's
    // requests did is luck: with 4 operations in flight, a few that wait
    // out a shed replica answer can hold every slot for a while).
    let done = all
        .iter()
        .filter(|o| matches!(o, Outcome::Done { .. }))
        .count();
    for (front, outcomes) in [("HTTP", &from_http), ("RESP", &from_resp)] {
        let shed = outcomes.iter().filter(|o| matches!(o, Outcome::Shed(_)));
        let shed = shed.count();
        eprintln!("{front}: {} requests, {shed} shed", outcomes.len());
        assert!(shed > 0, "{front}: nothing shed");
    }
    assert!(done > 0, "nothing acknowledged");
    check_counters(&cluster, &all).await;
    check_metrics(&cluster, &from_http).await;
    check_acknowledged(&cluster, &from_http, &from_resp).await;
    check_recovered(&cluster).await;
}
