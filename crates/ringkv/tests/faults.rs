//! Acknowledged writes survive real faults: node processes SIGKILLed and
//! restarted, links cut and healed, while clients write concurrently. The
//! history the clients record is then checked by the same checker as the
//! simulator (`ringkv_sim::check`) against the state the cluster converges
//! to once everything healed and anti-entropy repaired it. On top, every
//! successful read must have seen every write acknowledged before it was
//! invoked (R + W > N: read and write quorums intersect).
//!
//! The faults are drawn from a seeded RNG; the seed is printed at the start
//! and `RINGKV_FAULTS_SEED=<seed>` reuses it (timing still differs run to
//! run, so this replays the plan of faults and operations, not the run).
//! `RINGKV_FAULTS_HISTORY=1` prints every recorded write.

mod common;

use common::{http_client, key_path, send, Cluster, Resp, CONTEXT_HEADER};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use reqwest::Method;
use ringkv_core::context;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::version::CausalContext;
use ringkv_core::Millis;
use ringkv_sim::{FinalState, History, Write, WriteOutcome};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODES: usize = 3;
const CLIENTS: usize = 3;
const KEYS: [&str; 4] = ["cart:apples", "cart:pears", "cart:plums", "cart:figs"];
/// How long clients write while faults happen.
const WORKLOAD: Duration = Duration::from_secs(8);
/// How long clients go on once every fault healed, before they stop (so
/// every run acknowledges plenty of writes, however the faults fell).
const CALM: Duration = Duration::from_secs(1);
/// A killed node comes back after about this long.
const DOWN_FOR: Duration = Duration::from_secs(1);
/// Bound on the clients finishing their last operation after being told to
/// stop (each request is bounded by the harness's HTTP timeout).
const CLIENT_STOP_LIMIT: Duration = Duration::from_secs(30);
/// Bound on one node's forced repair.
const REPAIR_LIMIT: Duration = Duration::from_secs(60);
/// Rounds of targeted repairs (the ranges of keys still differing) after
/// the full one, before giving up on convergence.
const EXTRA_REPAIR_ROUNDS: usize = 5;
/// Exchanges a node started with a peer that then died or was cut off
/// only end by timing out, and a node runs one exchange at a time: keep
/// that short so the repairs after healing are not stuck behind them.
const EXTRA_TOML: &str = "[anti_entropy]\nexchange_timeout_ms = 2000";

/// Milliseconds since the start of the test.
fn since(start: Instant) -> Millis {
    start.elapsed().as_millis() as Millis
}

/// What the clients share: node addresses, which nodes are up, when to stop.
struct Shared {
    bases: Vec<String>,
    up: Vec<AtomicBool>,
    stop: AtomicBool,
    start: Instant,
    http: reqwest::Client,
}

impl Shared {
    /// A random node, preferring the ones currently up.
    fn pick_node(&self, rng: &mut ChaCha8Rng) -> usize {
        let up: Vec<usize> = (1..=self.bases.len())
            .filter(|&i| self.up[i - 1].load(Ordering::SeqCst))
            .collect();
        if up.is_empty() {
            rng.random_range(1..=self.bases.len())
        } else {
            up[rng.random_range(0..up.len())]
        }
    }

    async fn request(
        &self,
        method: Method,
        node: usize,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, reqwest::Error> {
        let url = format!("{}{path}", self.bases[node - 1]);
        send(&self.http, method, &url, headers, body).await
    }
}

/// A successful GET: the JSON answer holds only the live versions, so what
/// the read saw is judged by its context (which covers every version it
/// merged, tombstones and superseded ones included).
struct ReadSeen {
    key: String,
    node: usize,
    invoked_at: Millis,
    context: CausalContext,
}

/// What one client did and saw.
#[derive(Default)]
struct ClientLog {
    client: usize,
    /// What each successful read showed, as the checker's rule that a
    /// write's context covers only versions its client was shown needs.
    shown: Vec<ringkv_sim::Read>,
    writes: Vec<Write>,
    reads: Vec<ReadSeen>,
    gets: usize,
    failed_gets: usize,
}

/// The result of a GET for a read-modify-write.
struct Read {
    /// The raw context header, to send back.
    context: String,
    /// Live values (empty for 404).
    values: Vec<Vec<u8>>,
}

/// A GET with `Accept: application/json`: `None` unless it answered
/// 200/300/404 with a context.
async fn read(shared: &Shared, node: usize, key: &str, log: &mut ClientLog) -> Option<Read> {
    log.gets += 1;
    let invoked_at = since(shared.start);
    let headers = [("accept", "application/json")];
    let resp = match shared
        .request(Method::GET, node, &key_path(key), &headers, None)
        .await
    {
        Ok(resp) if matches!(resp.status, 200 | 300 | 404) => resp,
        _ => {
            log.failed_gets += 1;
            return None;
        }
    };
    let context = resp
        .context()
        .unwrap_or_else(|| panic!("GET {key} answered {} without a context", resp.status));
    let decoded = context::decode(&context).expect("a read's context decodes");
    log.shown.push(ringkv_sim::Read {
        client: log.client,
        key: key.to_string(),
        invoked_at,
        completed_at: since(shared.start),
        context: decoded.clone(),
        result: Err("over HTTP only the context is recorded".into()),
        // Checked by `stale_reads` below, not by the checker's rule 4.
        strict: false,
    });
    log.reads.push(ReadSeen {
        key: key.to_string(),
        node,
        invoked_at,
        context: decoded,
    });
    let values = if resp.status == 404 {
        Vec::new()
    } else {
        resp.siblings().into_iter().map(|s| s.value).collect()
    };
    Some(Read { context, values })
}

/// A PUT (`Some` value) or DELETE written against `context` (the raw
/// header, `None` for a blind write), recorded as the checker expects.
/// `all_replicas` asks for W = 3, which any fault makes fail — a write that
/// then often was applied on some replicas anyway (indeterminate).
async fn write(
    shared: &Shared,
    node: usize,
    key: &str,
    value: Option<Vec<u8>>,
    context: Option<&str>,
    all_replicas: bool,
    log: &mut ClientLog,
) {
    let sent = match context {
        Some(ctx) => context::decode(ctx).expect("a context the server handed out decodes"),
        None => CausalContext::new(),
    };
    let invoked_at = since(shared.start);
    let headers: Vec<(&str, &str)> = context.map(|c| (CONTEXT_HEADER, c)).into_iter().collect();
    let method = if value.is_some() {
        Method::PUT
    } else {
        Method::DELETE
    };
    let mut path = key_path(key);
    if all_replicas {
        path.push_str(&format!("?w={NODES}"));
    }
    let answer = shared
        .request(method, node, &path, &headers, value.clone())
        .await;
    let outcome = match answer {
        Ok(resp) if resp.status == 204 => {
            let header = resp
                .context()
                .unwrap_or_else(|| panic!("204 for {key} without a context"));
            let receipt = context::decode(&header).expect("a write's context decodes");
            WriteOutcome::from_receipt(&sent, receipt)
        }
        Ok(resp) => WriteOutcome::Indeterminate(format!("{} {}", resp.status, resp.text().trim())),
        Err(e) => WriteOutcome::Indeterminate(e.to_string()),
    };
    log.writes.push(Write {
        client: log.client,
        key: key.to_string(),
        value,
        context: sent,
        invoked_at,
        completed_at: Some(since(shared.start)),
        outcome,
        // Default quorums: stand-in acks count, so no read promise.
        strict: false,
    });
}

/// The cart items of a value `<new item>|<item>,<item>,...` (a blind
/// write's value is just its item).
fn items(value: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(value);
    text.split('|')
        .next_back()
        .unwrap_or_default()
        .split(',')
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .collect()
}

/// One client: blind PUTs of unique values, cart read-modify-writes (union
/// of every sibling's items plus a new one, written with the read's
/// context), and deletes of what a read saw, each through a random node,
/// until told to stop. One write in ten asks for W = 3.
async fn client(id: usize, seed: u64, shared: Arc<Shared>) -> ClientLog {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(id as u64));
    let mut log = ClientLog {
        client: id,
        ..ClientLog::default()
    };
    let mut seq = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        let key = KEYS[rng.random_range(0..KEYS.len())];
        let node = shared.pick_node(&mut rng);
        seq += 1;
        let item = format!("c{id}.{seq}");
        let roll: f64 = rng.random();
        let w3 = rng.random_bool(0.1);
        if roll < 0.35 {
            let value = Some(item.into_bytes());
            write(&shared, node, key, value, None, w3, &mut log).await;
        } else if roll < 0.85 {
            if let Some(seen) = read(&shared, node, key, &mut log).await {
                let mut cart: BTreeSet<String> =
                    seen.values.iter().flat_map(|v| items(v)).collect();
                cart.insert(item.clone());
                let list: Vec<String> = cart.into_iter().collect();
                let value = format!("{item}|{}", list.join(",")).into_bytes();
                let node = shared.pick_node(&mut rng);
                write(
                    &shared,
                    node,
                    key,
                    Some(value),
                    Some(&seen.context),
                    w3,
                    &mut log,
                )
                .await;
            }
        } else if let Some(seen) = read(&shared, node, key, &mut log).await {
            if !seen.values.is_empty() {
                let node = shared.pick_node(&mut rng);
                write(&shared, node, key, None, Some(&seen.context), w3, &mut log).await;
            }
        }
        let pause = rng.random_range(0..15);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    log
}

/// What the fault task did.
#[derive(Default)]
struct Faults {
    kills: usize,
    cuts: usize,
}

/// SIGKILL a random node now and then (restarting it about `DOWN_FOR`
/// later, at most one down at a time) and cut and heal random links (at
/// most two cut at a time, which can isolate a node), until `until`.
/// Leaves every node up and every link healed.
async fn inject_faults(
    c: &mut Cluster,
    shared: &Shared,
    rng: &mut ChaCha8Rng,
    until: Instant,
) -> Faults {
    let mut done = Faults::default();
    let mut down: Option<(usize, Instant)> = None;
    let mut cut: BTreeSet<(usize, usize)> = BTreeSet::new();
    while Instant::now() < until {
        let pause = rng.random_range(150..600);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if let Some((x, back_at)) = down {
            if Instant::now() >= back_at {
                eprintln!("[{} ms] restart n{x}", since(shared.start));
                c.restart(x).await;
                // It comes back with its links healed: cut them again.
                for &(a, b) in cut.iter().filter(|(a, b)| *a == x || *b == x) {
                    c.link_one_way(x, if a == x { b } else { a }, "cut").await;
                }
                shared.up[x - 1].store(true, Ordering::SeqCst);
                down = None;
                continue;
            }
        }
        let is_down = |i: usize| down.is_some_and(|(x, _)| x == i);
        match rng.random_range(0..5) {
            0 if down.is_none() => {
                let x = rng.random_range(1..=NODES);
                eprintln!("[{} ms] kill n{x}", since(shared.start));
                shared.up[x - 1].store(false, Ordering::SeqCst);
                c.kill(x);
                done.kills += 1;
                down = Some((x, Instant::now() + DOWN_FOR));
            }
            1 if cut.len() < 2 => {
                let candidates: Vec<(usize, usize)> = (1..=NODES)
                    .flat_map(|a| (a + 1..=NODES).map(move |b| (a, b)))
                    .filter(|l| !cut.contains(l) && !is_down(l.0) && !is_down(l.1))
                    .collect();
                if candidates.is_empty() {
                    continue;
                }
                let (a, b) = candidates[rng.random_range(0..candidates.len())];
                eprintln!("[{} ms] cut n{a}-n{b}", since(shared.start));
                c.cut(a, b).await;
                cut.insert((a, b));
                done.cuts += 1;
            }
            1 | 2 if !cut.is_empty() => {
                let links: Vec<(usize, usize)> = cut.iter().copied().collect();
                let (a, b) = links[rng.random_range(0..links.len())];
                cut.remove(&(a, b));
                eprintln!("[{} ms] heal n{a}-n{b}", since(shared.start));
                // A node that is down restarts with its side healed.
                for (from, to) in [(a, b), (b, a)] {
                    if !is_down(from) {
                        c.link_one_way(from, to, "heal").await;
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((x, _)) = down {
        eprintln!("[{} ms] restart n{x}", since(shared.start));
        c.restart(x).await;
        shared.up[x - 1].store(true, Ordering::SeqCst);
    }
    for a in 1..=NODES {
        for b in a + 1..=NODES {
            c.heal(a, b).await;
        }
    }
    eprintln!("[{} ms] all up, all links healed", since(shared.start));
    done
}

/// Every key whose replicas are not all identical.
async fn differing(c: &Cluster) -> BTreeMap<String, BTreeMap<String, SiblingSet>> {
    let mut out = BTreeMap::new();
    for key in KEYS {
        let mut replicas = BTreeMap::new();
        for i in c.preference_list(key) {
            replicas.insert(format!("n{i}"), c.replica(i, key).await);
        }
        let first = replicas.values().next().expect("replicas").clone();
        if replicas.values().any(|s| *s != first) {
            out.insert(key.to_string(), replicas);
        }
    }
    out
}

/// The dots of the live versions, as the JSON API spells them (`n1:2`).
fn live_dots(set: &SiblingSet) -> BTreeSet<String> {
    set.live()
        .map(|s| format!("{}:{}", s.dot.node, s.dot.counter))
        .collect()
}

/// Reads that missed a write acknowledged before they were invoked: with
/// N = 3, W = R = 2 every read quorum meets every write quorum, so the
/// read's context must cover the write's dot (the version itself, or one
/// that superseded it). Answers (pairs checked, violations).
fn stale_reads(history: &History, reads: &[ReadSeen]) -> (usize, Vec<String>) {
    let mut checked = 0;
    let mut stale = Vec::new();
    for write in &history.writes {
        let (Some(dot), Some(acked_at)) = (write.dot(), write.completed_at) else {
            continue;
        };
        for read in reads
            .iter()
            .filter(|r| r.key == write.key && r.invoked_at > acked_at)
        {
            checked += 1;
            if !read.context.covers(&dot) {
                stale.push(format!(
                    "stale read: {} via n{} at {} ms has context {:?}, missing {}:{} ({}), \
                     acknowledged at {} ms",
                    read.key,
                    read.node,
                    read.invoked_at,
                    read.context,
                    dot.node,
                    dot.counter,
                    match &write.value {
                        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
                        None => "delete".into(),
                    },
                    acked_at,
                ));
            }
        }
    }
    (checked, stale)
}

fn seed() -> u64 {
    match std::env::var("RINGKV_FAULTS_SEED") {
        Ok(s) => s.parse().expect("RINGKV_FAULTS_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    }
}

/// Concurrent clients write 4 keys for 8 s through random nodes while a
/// fault task kills and restarts nodes and cuts and heals links. After
/// everything healed and a forced anti-entropy repair on every node, all
/// replicas agree, a quorum read of R = 3 sees exactly the converged live
/// versions, the checker finds no lost acknowledged write, no resurrected
/// version and no divergence, and no read missed a write acknowledged
/// before it started.
#[tokio::test]
async fn acknowledged_writes_survive_kills_restarts_and_cut_links() {
    let seed = seed();
    eprintln!("faults seed {seed} (rerun with RINGKV_FAULTS_SEED={seed})");
    let mut c = Cluster::start_with(NODES, EXTRA_TOML).await;
    let shared = Arc::new(Shared {
        bases: (1..=NODES).map(|i| c.base_url(i)).collect(),
        up: (1..=NODES).map(|_| AtomicBool::new(true)).collect(),
        stop: AtomicBool::new(false),
        start: Instant::now(),
        http: http_client(),
    });

    let clients: Vec<_> = (1..=CLIENTS)
        .map(|id| tokio::spawn(client(id, seed, shared.clone())))
        .collect();
    let mut fault_rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1000));
    let until = shared.start + WORKLOAD;
    let faults = inject_faults(&mut c, &shared, &mut fault_rng, until).await;

    tokio::time::sleep(CALM).await;
    shared.stop.store(true, Ordering::SeqCst);
    let mut history = History::default();
    let mut reads = Vec::new();
    let (mut gets, mut failed_gets) = (0, 0);
    for handle in clients {
        let log = tokio::time::timeout(CLIENT_STOP_LIMIT, handle)
            .await
            .unwrap_or_else(|_| panic!("a client did not stop within {CLIENT_STOP_LIMIT:?}"))
            .expect("client task");
        history.writes.extend(log.writes);
        history.reads.extend(log.shown);
        reads.extend(log.reads);
        gets += log.gets;
        failed_gets += log.failed_gets;
    }
    eprintln!("[{} ms] clients stopped", since(shared.start));

    // Anti-entropy: every range of every node with every other replica.
    for i in 1..=NODES {
        c.start_repair(i).await;
    }
    for i in 1..=NODES {
        c.wait_repaired(i, REPAIR_LIMIT).await;
    }
    eprintln!("[{} ms] full repair done", since(shared.start));
    let mut extra_rounds = 0;
    loop {
        let left = differing(&c).await;
        if left.is_empty() {
            break;
        }
        assert!(
            extra_rounds < EXTRA_REPAIR_ROUNDS,
            "seed {seed}: replicas still differ after a full repair and {extra_rounds} \
             targeted ones: {left:#?}"
        );
        extra_rounds += 1;
        eprintln!(
            "after repair, {} keys still differ: {:?}; repairing their ranges again",
            left.len(),
            left.keys().collect::<Vec<_>>()
        );
        for key in left.keys() {
            let token = ringkv_core::ring::Ring::key_token(key.as_bytes());
            for i in 1..=NODES {
                let path = format!("/admin/repair?token={token}");
                c.request(Method::POST, i, &path, &[], None)
                    .await
                    .expect(200);
            }
        }
        for i in 1..=NODES {
            c.wait_repaired(i, REPAIR_LIMIT).await;
        }
    }

    let mut state = FinalState::default();
    for key in KEYS {
        let mut replicas = BTreeMap::new();
        for i in c.preference_list(key) {
            replicas.insert(format!("n{i}"), c.replica(i, key).await);
        }
        let converged = replicas.values().next().expect("replicas").clone();
        state.reads.insert(key.to_string(), converged);
        state.replicas.insert(key.to_string(), replicas);
    }

    // A real quorum read of all three replicas sees the same live versions.
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(2000));
    for key in KEYS {
        let node = rng.random_range(1..=NODES);
        let resp = c.get_with(node, key, Some(NODES), true).await;
        let seen: BTreeSet<String> = match resp.status {
            404 => BTreeSet::new(),
            200 | 300 => resp.siblings().into_iter().map(|s| s.dot).collect(),
            other => panic!(
                "seed {seed}: R = {NODES} read of {key} via n{node} answered {other}: {}",
                resp.text()
            ),
        };
        assert_eq!(
            seen,
            live_dots(&state.reads[key]),
            "seed {seed}: the quorum read of {key} via n{node} differs from the converged replicas"
        );
    }

    if std::env::var_os("RINGKV_FAULTS_HISTORY").is_some() {
        let mut writes: Vec<&Write> = history.writes.iter().collect();
        writes.sort_by_key(|w| w.invoked_at);
        for w in writes {
            let value = w.value.as_deref().map(String::from_utf8_lossy);
            eprintln!(
                "write {}..{:?} ms {} {:?} context {:?}: {:?}",
                w.invoked_at, w.completed_at, w.key, value, w.context, w.outcome
            );
        }
    }
    let (reads_checked, stale) = stale_reads(&history, &reads);
    let verdict = ringkv_sim::check(&history, &state);
    let acked = history
        .writes
        .iter()
        .filter(|w| matches!(w.outcome, WriteOutcome::Acked { .. }))
        .count();
    let max_siblings = state.reads.values().map(SiblingSet::len).max().unwrap_or(0);
    eprintln!(
        "faults seed {seed}: {} writes, {acked} acked, {} indeterminate, {gets} gets \
         ({failed_gets} failed), {} kills, {} cuts, {} keys, {} writes checked, \
         {reads_checked} read/write pairs checked, {max_siblings} max siblings, \
         {extra_rounds} extra repair rounds",
        history.writes.len(),
        history.writes.len() - acked,
        faults.kills,
        faults.cuts,
        verdict.keys_checked,
        verdict.writes_checked,
    );
    assert!(
        verdict.ok(),
        "seed {seed}: {} violations:\n{}",
        verdict.violations.len(),
        verdict.violations.join("\n")
    );
    assert!(
        stale.is_empty(),
        "seed {seed}: {} stale reads:\n{}",
        stale.len(),
        stale.join("\n")
    );
    assert!(
        verdict.writes_checked > 20,
        "seed {seed}: only {} acknowledged writes checked",
        verdict.writes_checked
    );
}
