//! Observability end to end, on real node processes: `/metrics` counts
//! exactly what a workload did and passes `promtool check metrics`;
//! `/ring` describes the cluster; `/health/ready` tells a joined node from
//! one still joining.

mod common;

use common::redis::{bulk, ok, Redis, Reply};
use common::{eventually, Cluster};
use reqwest::Method;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One scrape: every sample by its series (`name{labels}` as written).
struct Scraped(BTreeMap<String, f64>);

impl Scraped {
    fn parse(text: &str) -> Scraped {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("a sample line");
                let value = value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value: {line}"));
                (series.to_string(), value)
            })
            .collect();
        Scraped(samples)
    }

    /// The sample of `name` whose labels are exactly `labels` (in any
    /// order); 0 when there is none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        want.sort();
        let found = self.0.iter().find(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            let mut have: Vec<String> = rest
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect();
            have.sort();
            n == name && have == want
        });
        found.map_or(0.0, |(_, v)| *v)
    }

    fn requests(&self, frontend: &str, op: &str, outcome: &str) -> f64 {
        let labels = [("frontend", frontend), ("op", op), ("outcome", outcome)];
        self.get("ringkv_requests_total", &labels)
    }
}

async fn metrics_text(c: &Cluster, i: usize) -> String {
    let answer = c
        .request(Method::GET, i, "/metrics", &[], None)
        .await
        .expect(200);
    let content_type = answer.headers["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    answer.text()
}

async fn scrape(c: &Cluster, i: usize) -> Scraped {
    Scraped::parse(&metrics_text(c, i).await)
}

/// Puts and gets of K and J keys through node 1 over HTTP and Redis, and
/// one refused request: each counter must say exactly that.
#[tokio::test]
async fn counters_count_exactly_what_the_workload_did() {
    const PUTS: usize = 7;
    const GETS: usize = 5;
    const SETS: usize = 4;
    const RESP_GETS: usize = 3;
    let c = Cluster::start_patient(3).await;
    for k in 0..PUTS {
        c.put(1, &format!("key{k}"), "value").await.expect(204);
    }
    for k in 0..GETS {
        c.get(1, &format!("key{k}")).await.expect(200);
    }
    c.request(Method::GET, 1, "/kv/key0?r=9", &[], None)
        .await
        .expect(400);
    let mut redis = Redis::connect(c.resp_addr(1));
    for k in 0..SETS {
        assert_eq!(redis.call(&["SET", &format!("r{k}"), "v"]), ok());
    }
    for k in 0..RESP_GETS {
        assert_eq!(redis.call(&["GET", &format!("r{k}")]), bulk("v"));
    }
    assert!(matches!(redis.call(&["NOSUCH"]), Reply::Error(_)));
    // A transaction: MULTI, the +QUEUED and EXEC count as `other`; the GET
    // counts once, as a `get`, when EXEC runs it.
    assert_eq!(redis.call(&["MULTI"]), ok());
    assert_eq!(redis.call(&["GET", "r0"]), Reply::Simple("QUEUED".into()));
    assert_eq!(redis.call(&["EXEC"]), Reply::Array(vec![bulk("v")]));

    let m = scrape(&c, 1).await;
    assert_eq!(m.requests("http", "put", "ok"), PUTS as f64);
    assert_eq!(m.requests("http", "get", "ok"), GETS as f64);
    assert_eq!(m.requests("http", "get", "invalid"), 1.0);
    assert_eq!(m.requests("http", "delete", "ok"), 0.0, "declared at zero");
    assert_eq!(m.requests("resp", "set", "ok"), SETS as f64);
    assert_eq!(m.requests("resp", "get", "ok"), (RESP_GETS + 1) as f64);
    assert_eq!(m.requests("resp", "other", "invalid"), 1.0);
    assert_eq!(
        m.requests("resp", "other", "ok"),
        3.0,
        "MULTI, QUEUED, EXEC"
    );
    let put_latency = [("frontend", "http"), ("op", "put")];
    assert_eq!(
        m.get("ringkv_request_duration_seconds_count", &put_latency),
        PUTS as f64
    );
    let ops = (PUTS + GETS + SETS + RESP_GETS + 1) as f64;
    // Only n1 had clients: it coordinated or forwarded each operation once
    // (a hedged forward is the one way to do both).
    let routed = m.get("ringkv_coordinated_total", &[]) + m.get("ringkv_forwards_total", &[]);
    if m.get("ringkv_hedged_forwards_total", &[]) == 0.0 {
        assert_eq!(routed, ops);
    }
    assert!(m.get("ringkv_read_siblings_count", &[]) >= 1.0);
    assert!(m.get("ringkv_replica_round_trip_seconds_count", &[]) >= 1.0);
    assert_eq!(m.get("ringkv_members", &[("status", "up")]), 3.0);
    assert_eq!(m.get("ringkv_ready", &[]), 1.0);
    let outbound = [("direction", "outbound")];
    assert!(m.get("ringkv_transport_connections_open", &outbound) >= 1.0);

    let n2 = scrape(&c, 2).await;
    assert_eq!(n2.requests("http", "put", "ok"), 0.0, "no client asked n2");
    // Every key on N = 3 replicas: HTTP and Redis keys apart.
    let keys = (3 * (PUTS + SETS)) as f64;
    eventually(
        Duration::from_secs(20),
        "every replica holds every key",
        async || {
            let mut held = 0.0;
            for i in 1..=3 {
                held += scrape(&c, i).await.get("ringkv_store_keys", &[]);
            }
            (held == keys)
                .then_some(())
                .ok_or(format!("{held} of {keys}"))
        },
    )
    .await;
    let stored = c.status(3).await["stored_keys"].as_u64().unwrap();
    let scraped = scrape(&c, 3).await;
    assert_eq!(
        scraped.get("ringkv_store_keys", &[]),
        stored as f64,
        "/status agrees"
    );
    assert!(scraped.get("ringkv_store_bytes", &[]) > 0.0);
    promtool_check(&metrics_text(&c, 1).await);
}

/// `promtool check metrics` (Debian's `prometheus` package, which
/// scripts/test installs) must accept `text`.
fn promtool_check(text: &str) {
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(e) if is_root() => panic!(
            "promtool is missing ({e}): install Debian's prometheus package (scripts/test does)"
        ),
        Err(_) => {
            eprintln!(
                "SKIPPED promtool check: promtool is not installed and this is not root \
                 (apt-get install prometheus, or run scripts/test as root)"
            );
            return;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

#[tokio::test]
async fn ring_describes_the_cluster_and_ready_waits_for_joining() {
    let mut c = Cluster::start(3).await;
    let ring = c
        .request(Method::GET, 2, "/ring", &[], None)
        .await
        .expect(200)
        .json();
    let status = c.status(2).await;
    assert_eq!(ring["n"], 3);
    assert_eq!(ring["vnodes_per_node"], 128);
    assert_eq!(ring["ring_fingerprint"], common::ring_fingerprint(3));
    assert_eq!(ring["settings_fingerprint"], status["settings_fingerprint"]);
    let members = ring["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    for (i, member) in (1..=3).zip(members) {
        assert_eq!(member["id"], format!("n{i}"));
        assert_eq!(member["http"], c.http_addr(i).to_string());
        assert_eq!(member["addr"], c.peer_addr(i).to_string());
        assert_eq!(member["status"], "up");
        assert!(member["zone"].is_null());
    }
    for i in 1..=3 {
        let ready = c.request(Method::GET, i, "/health/ready", &[], None).await;
        assert_eq!((ready.status, ready.text()), (200, "ready\n".to_string()));
    }
    // A joining node becomes ready once it owns its ranges.
    let joined = c.join(1).await;
    eventually(
        Duration::from_secs(30),
        "the joined node is ready",
        async || {
            let answer = c
                .request(Method::GET, joined, "/health/ready", &[], None)
                .await;
            (answer.status == 200).then_some(()).ok_or(answer.text())
        },
    )
    .await;
    let ring = c
        .request(Method::GET, joined, "/ring", &[], None)
        .await
        .expect(200)
        .json();
    assert_eq!(ring["members"].as_array().unwrap().len(), 4);
    // A node whose seed never answers stays joining: not ready.
    let dead_seed = format!("127.0.0.1:{}", common::free_ports(1)[0]);
    let joiner = c.spawn_joiner(1, |config| {
        let seeds = format!("seeds = [\"{}\"]", c_peer(&config));
        config.replace(&seeds, &format!("seeds = [\"{dead_seed}\"]"))
    });
    let reason = eventually(Duration::from_secs(20), "the joiner answers", async || {
        let answer = c
            .try_request(Method::GET, joiner, "/health/ready", &[], None)
            .await;
        answer
            .map_err(|e| e.to_string())
            .map(|r| (r.status, r.text()))
    })
    .await;
    assert_eq!(
        reason,
        (503, "the node is still joining the cluster\n".to_string())
    );
    let m = scrape(&c, joiner).await;
    assert_eq!(m.get("ringkv_ready", &[]), 0.0);
    assert_eq!(m.get("ringkv_members", &[("status", "joining")]), 1.0);
}

/// The seed address in a joiner's config (its `seeds = ["ADDR"]` line).
fn c_peer(config: &str) -> String {
    let line = config
        .lines()
        .find(|l| l.starts_with("seeds = "))
        .expect("a seeds line");
    line.split('"').nth(1).expect("a quoted seed").to_string()
}
