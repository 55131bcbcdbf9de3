//! The fault benchmark behind `bench/faults.sh`: 5 real nodes, each in its
//! own network namespace (the tests' `common/netns.rs`, included by path),
//! default settings (N=3, R=2, W=2), a steady client load from the root
//! namespace, and one kernel-level fault per scenario. Each scenario prints
//! one line of figures; the goals of issue 12 are printed next to them.
//!
//!   fault_bench RINGKV_BINARY pause|isolate|partition|all [SECONDS]
//!
//! - `pause`: n1 SIGSTOPped for SECONDS (10); load to n2..n5.
//! - `isolate`: n1 cut off by iptables DROP for SECONDS (10); load to n2..n5.
//! - `partition`: {n1,n2} | {n3,n4,n5} silent for SECONDS (60), W=1 writes
//!   on both sides; after the heal, W=2 writes and R=2 reads through every
//!   node until each succeeds again. `DROP_OUTPUT_TOO=1` also DROPs on
//!   OUTPUT (see `Hosts::partition_dropping_output_too`), for comparison.

#[allow(dead_code)]
#[path = "../tests/common/netns.rs"]
mod netns;

use netns::{NsCluster, Outcome};
use ringkv_core::ring::{Ring, RingMember};
use ringkv_core::NodeId;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const NODES: usize = 5;
/// Client timeout of every load request: a request that gets no answer
/// within it counts as failed, with this latency.
const CLIENT_LIMIT: Duration = Duration::from_secs(10);
/// Concurrent load clients (in flight at most).
const CLIENTS: usize = 8;
/// Load before and after the fault window (not in the figures).
const MARGIN: Duration = Duration::from_secs(3);
/// Keys written before the load, which reads pick from.
const PRELOADED: usize = 200;
/// After a heal: a probe through every node this often, until this long
/// passed without a failed probe (or the partition's length plus
/// [`PROBE_SLACK`]: TCP backoff cannot outlast the partition by more).
const PROBE_EVERY: Duration = Duration::from_millis(100);
const PROBE_QUIET: Duration = Duration::from_secs(3);
const PROBE_SLACK: Duration = Duration::from_secs(10);
/// A probe after the heal that takes longer than this failed.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

/// One finished request, timed from the start of the scenario.
struct Record {
    start: Duration,
    took: Duration,
    op: Op,
    node: usize,
    ok: bool,
    key: String,
}

/// Everything the load clients of one scenario record.
#[derive(Default)]
struct Log(Mutex<Vec<Record>>);

impl Log {
    fn add(&self, t0: Instant, start: Instant, op: Op, node: usize, key: String, out: &Outcome) {
        let ok = out.ok() || (op == Op::Read && out.status == Some(404));
        if !ok && std::env::var_os("FAULT_BENCH_VERBOSE").is_some() {
            // Why a request failed, for digging into a figure.
            eprintln!(
                "failed at {:?} via n{node} {key}: {:?} {:?} after {:?}: {}",
                start - t0,
                out.status,
                out.error,
                out.took,
                String::from_utf8_lossy(&out.body).trim()
            );
        }
        let record = Record {
            start: start - t0,
            took: out.took,
            op,
            node,
            ok,
            key,
        };
        self.0.lock().unwrap().push(record);
    }
}

/// A tiny xorshift: the load needs spread, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Preference list of `key`, as node numbers: the ring of n1..n5 with the
/// default 128 vnodes and N=3, built as the nodes build it.
fn preference_list(ring: &Ring, key: &str) -> Vec<usize> {
    let ids = ring.preference_list(key.as_bytes(), 3);
    ids.iter()
        .map(|id| id.as_str()[1..].parse().unwrap())
        .collect()
}

fn ring() -> Ring {
    let members = (1..=NODES).map(|i| RingMember::new(NodeId::new(format!("n{i}"))));
    Ring::with_members(members, 128)
}

/// What one load client does: `nodes` it talks to, the W of its writes,
/// the share of reads (percent).
#[derive(Clone)]
struct Load {
    nodes: Vec<usize>,
    w: Option<usize>,
    read_percent: usize,
}

/// One closed-loop client: reads of preloaded keys and writes of fresh
/// keys (blind writes of one key would pile up siblings), until aborted.
async fn client(c: Arc<NsCluster>, load: Load, id: usize, t0: Instant, log: Arc<Log>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((id as u64 + 1) * 0x1000_0000_01b3));
    for n in 0.. {
        let node = load.nodes[rng.below(load.nodes.len())];
        let start = Instant::now();
        if rng.below(100) < load.read_percent {
            let key = format!("pre{}", rng.below(PRELOADED));
            let out = c.get(node, &key, None, CLIENT_LIMIT).await;
            log.add(t0, start, Op::Read, node, key, &out);
        } else {
            let key = format!("c{id}-{n}");
            let out = c.put(node, &key, b"0123456789", load.w, CLIENT_LIMIT).await;
            log.add(t0, start, Op::Write, node, key, &out);
        }
    }
}

/// Start `CLIENTS` clients per load.
fn start_load(c: &Arc<NsCluster>, loads: &[Load], t0: Instant, log: &Arc<Log>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for (l, load) in loads.iter().enumerate() {
        for k in 0..CLIENTS {
            let id = l * CLIENTS + k;
            tasks.spawn(client(c.clone(), load.clone(), id, t0, log.clone()));
        }
    }
    tasks
}

async fn preload(c: &NsCluster) {
    for k in 0..PRELOADED {
        let out = c
            .put(1 + k % NODES, &format!("pre{k}"), b"v", None, CLIENT_LIMIT)
            .await;
        assert!(out.ok(), "preloading pre{k}: {}", out.describe());
    }
}

/// `p` (0..=1) of sorted latencies, in ms.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

/// `reads: N req, F failed, p99 .. ms, p99.9 .. ms, max .. ms`.
fn summary(records: &[&Record], op: Op) -> String {
    let mut took: Vec<Duration> = records
        .iter()
        .filter(|r| r.op == op)
        .map(|r| r.took)
        .collect();
    took.sort();
    let failed = records.iter().filter(|r| r.op == op && !r.ok).count();
    let name = if op == Op::Read { "reads" } else { "writes" };
    format!(
        "{name}: {} req, {failed} failed, p99 {:.0} ms, p99.9 {:.0} ms, max {:.0} ms",
        took.len(),
        percentile(&took, 0.99),
        percentile(&took, 0.999),
        percentile(&took, 1.0),
    )
}

/// Pause (`pause`) or cut off (`isolate`) n1 for `secs` under load to the
/// other nodes; one line of figures for requests started during the fault.
async fn single_fault(binary: &Path, kind: &str, secs: u64) {
    let c = Arc::new(NsCluster::start(binary, NODES, "").await);
    preload(&c).await;
    let log = Arc::new(Log::default());
    let t0 = Instant::now();
    let load = Load {
        nodes: (2..=NODES).collect(),
        w: None,
        read_percent: 50,
    };
    let mut tasks = start_load(&c, &[load], t0, &log);
    tokio::time::sleep(MARGIN).await;
    let from = t0.elapsed();
    match kind {
        "pause" => c.pause(1),
        _ => c.hosts.isolate(1),
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let to = t0.elapsed();
    match kind {
        "pause" => c.resume(1),
        _ => c.hosts.heal(),
    }
    tokio::time::sleep(MARGIN).await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let records = log.0.lock().unwrap();
    let during: Vec<&Record> = records
        .iter()
        .filter(|r| r.start >= from && r.start < to)
        .collect();
    println!(
        "{kind} n1 {secs}s (load to n2..n5, R=2 W=2) | {} | {} | goal: p99.9 <= 100 ms, max <= 500 ms, 0 failed writes",
        summary(&during, Op::Write),
        summary(&during, Op::Read)
    );
}

/// Probes through `node` every [`PROBE_EVERY`] until none failed for
/// [`PROBE_QUIET`] or `limit` passed: a W=2 PUT of a fresh key with at most
/// one replica on the node's side, then an R=2 GET of it. Each probe is
/// recorded as one write and one read. Answers whether it hit `limit`.
async fn probe(
    c: Arc<NsCluster>,
    node: usize,
    side: Vec<usize>,
    t0: Instant,
    limit: Duration,
    log: Arc<Log>,
) -> bool {
    let (ring, started) = (ring(), Instant::now());
    let last_failure = Arc::new(Mutex::new(started));
    let mut tasks = JoinSet::new();
    // At most one replica on the node's own side: every quorum of 2 needs
    // a link across the partition.
    let mine = |j: &usize| side.contains(j) == side.contains(&node);
    let keys = (0..).map(|k| format!("probe-n{node}-{k}")).filter(|key| {
        let p = preference_list(&ring, key);
        p.iter().filter(|j| mine(j)).count() <= 1
    });
    let mut ticks = tokio::time::interval(PROBE_EVERY);
    for key in keys {
        ticks.tick().await;
        let quiet = last_failure.lock().unwrap().elapsed() >= PROBE_QUIET + PROBE_LIMIT;
        if quiet || started.elapsed() >= limit {
            break;
        }
        let (c, log, last_failure) = (c.clone(), log.clone(), last_failure.clone());
        tasks.spawn(async move {
            let start = Instant::now();
            let put = c.put(node, &key, b"p", Some(2), PROBE_LIMIT).await;
            log.add(t0, start, Op::Write, node, key.clone(), &put);
            let get = c.get(node, &key, Some(2), PROBE_LIMIT).await;
            log.add(t0, start, Op::Read, node, key, &get);
            if !(put.ok() && get.ok()) {
                *last_failure.lock().unwrap() = Instant::now();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    started.elapsed() >= limit
}

/// Time from `healed` until every probe of `node` started afterwards
/// succeeded: the start of the probe after its last failed one.
fn recovery(records: &[Record], node: usize, healed: Duration) -> Duration {
    let last_failed = records
        .iter()
        .filter(|r| r.node == node && r.key.starts_with("probe") && !r.ok && r.start >= healed)
        .map(|r| r.start)
        .max();
    match last_failed {
        Some(start) => start + PROBE_EVERY - healed,
        None => Duration::ZERO,
    }
}

/// Share of W=1 writes started during the partition through `side` that
/// succeeded, overall and for the worst preference list.
fn side_share(records: &[Record], side: &[usize], window: (Duration, Duration)) -> String {
    let ring = ring();
    let mut by_list: std::collections::BTreeMap<Vec<usize>, (usize, usize)> = Default::default();
    for r in records.iter().filter(|r| {
        r.op == Op::Write && side.contains(&r.node) && r.start >= window.0 && r.start < window.1
    }) {
        let entry = by_list.entry(preference_list(&ring, &r.key)).or_default();
        entry.0 += usize::from(r.ok);
        entry.1 += 1;
    }
    let (ok, all) = by_list
        .values()
        .fold((0, 0), |(o, a), (ok, all)| (o + ok, a + all));
    let worst = by_list
        .iter()
        .min_by(|a, b| (a.1 .0 * b.1 .1).cmp(&(b.1 .0 * a.1 .1)))
        .map(|(list, (ok, all))| format!("{list:?} {:.0}% of {all}", pct(*ok, *all)))
        .unwrap_or_default();
    format!(
        "side {side:?}: {:.1}% of {all} ({} preference lists, worst {worst})",
        pct(ok, all),
        by_list.len()
    )
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    100.0 * part as f64 / whole as f64
}

/// A silent 2|3 partition for `secs` with W=1 writes on both sides, then
/// the heal and probes through every node.
async fn partition(binary: &Path, secs: u64) {
    let (a, b) = (vec![1, 2], vec![3, 4, 5]);
    let c = Arc::new(NsCluster::start(binary, NODES, "").await);
    preload(&c).await;
    let log = Arc::new(Log::default());
    let t0 = Instant::now();
    let loads: Vec<Load> = [&a, &b]
        .iter()
        .map(|side| Load {
            nodes: side.to_vec(),
            w: Some(1),
            read_percent: 0,
        })
        .collect();
    let mut tasks = start_load(&c, &loads, t0, &log);
    tokio::time::sleep(MARGIN).await;
    let from = t0.elapsed();
    match std::env::var_os("DROP_OUTPUT_TOO") {
        Some(_) => c.hosts.partition_dropping_output_too(&a, &b),
        None => c.hosts.partition(&a, &b),
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    c.hosts.heal();
    let healed = t0.elapsed();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let limit = Duration::from_secs(secs) + PROBE_SLACK;
    let mut probes = JoinSet::new();
    for node in 1..=NODES {
        probes.spawn(probe(c.clone(), node, a.clone(), t0, limit, log.clone()));
    }
    let capped = probes.join_all().await.into_iter().any(|hit| hit);
    let records = log.0.lock().unwrap();
    let each: Vec<Duration> = (1..=NODES).map(|n| recovery(&records, n, healed)).collect();
    let worst = each.iter().max().copied().unwrap_or_default();
    let each: Vec<String> = (1..=NODES)
        .zip(&each)
        .map(|(n, d)| format!("n{n} {}", d.as_millis()))
        .collect();
    let still = if capped {
        " (still failing when probing stopped)"
    } else {
        ""
    };
    println!(
        "partition {a:?}|{b:?} {secs}s | every node succeeds again {} ms after the heal{still} ({} ms; goal <= 1000) | W=1 writes during it: {}; {} (goal 100%)",
        worst.as_millis(),
        each.join(", "),
        side_share(&records, &a, (from, healed)),
        side_share(&records, &b, (from, healed)),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: fault_bench RINGKV_BINARY pause|isolate|partition|all [SECONDS]";
    let (Some(binary), Some(scenario)) = (args.get(1), args.get(2)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let binary = std::fs::canonicalize(binary).expect("ringkv binary exists");
    let secs = |default: u64| args.get(3).map_or(default, |s| s.parse().expect(usage));
    match scenario.as_str() {
        "pause" | "isolate" => single_fault(&binary, scenario, secs(10)).await,
        "partition" => partition(&binary, secs(60)).await,
        "all" => {
            single_fault(&binary, "pause", 10).await;
            single_fault(&binary, "isolate", 10).await;
            partition(&binary, 60).await;
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
