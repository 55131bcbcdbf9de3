//! GET latency with partition-aware vs generic routing, on a local 3-node
//! cluster (this program re-executed as its nodes, on free loopback ports).
//!
//! ```sh
//! cargo bench -p ringkv-client --bench routing
//! ```
//!
//! One request at a time (latency, not throughput), R = 2 of N = 3. The
//! modes alternate in blocks so drift of the machine hits both alike.
//! Generic routing rotates over all three nodes, as a load balancer would:
//! two requests in three land on a node that must forward them.

use hdrhistogram::Histogram;
use ringkv_client::{Client, Context, Routing};
use ringkv_server::local::{self, LocalCluster};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const NODES: usize = 3;
const KEYS: usize = 300;
const VALUE_BYTES: usize = 100;
const WARMUP: usize = 500;
const BLOCKS: usize = 5;
const PER_BLOCK: usize = 2_000;

fn main() -> ExitCode {
    if let Some(code) = local::run_if_node_process() {
        return code;
    }
    let outcome = tokio::runtime::Runtime::new()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(bench()));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn bench() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cluster = LocalCluster::start_self(dir.path(), NODES)
        .await
        .map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addrs: Vec<String> = (1..=NODES)
        .map(|i| cluster.http_addr(i).to_string())
        .collect();

    let connect = |routing| Client::builder().routing(routing).connect(addrs.clone());
    let aware = connect(Routing::PartitionAware)
        .await
        .map_err(|e| e.to_string())?;
    let generic = connect(Routing::Generic).await.map_err(|e| e.to_string())?;
    let keys: Vec<String> = (0..KEYS).map(|k| format!("bench:{k}")).collect();
    let value = vec![b'x'; VALUE_BYTES];
    for key in &keys {
        aware
            .put(key, &value, &Context::none())
            .await
            .map_err(|e| e.to_string())?;
    }

    let modes = [("partition-aware", &aware), ("generic", &generic)];
    let mut histograms = Vec::new();
    let mut hops = [0u64; 2];
    for (_, client) in modes {
        run(client, &keys, WARMUP, None).await?;
        histograms
            .push(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?);
    }
    for _ in 0..BLOCKS {
        for (m, (_, client)) in modes.iter().enumerate() {
            let before = forwarded(&addrs).await?;
            run(client, &keys, PER_BLOCK, Some(&mut histograms[m])).await?;
            hops[m] += forwarded(&addrs).await? - before;
        }
    }

    println!(
        "GET latency, {NODES} nodes on loopback, R=2, {VALUE_BYTES}-byte values, one request at a time, {} GETs per mode",
        BLOCKS * PER_BLOCK
    );
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>14}",
        "routing", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs", "forwarded hops"
    );
    for (m, (name, _)) in modes.iter().enumerate() {
        let h = &histograms[m];
        println!(
            "{name:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>14}",
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            hops[m]
        );
    }
    drop(cluster);
    Ok(())
}

/// `count` GETs over `keys` in turn, each timed into `histogram`.
async fn run(
    client: &Client,
    keys: &[String],
    count: usize,
    mut histogram: Option<&mut Histogram<u64>>,
) -> Result<(), String> {
    for key in keys.iter().cycle().take(count) {
        let started = Instant::now();
        let read = client.get(key).await.map_err(|e| e.to_string())?;
        let micros = started.elapsed().as_micros() as u64;
        if read.is_empty() {
            return Err(format!("{key} is missing"));
        }
        if let Some(h) = histogram.as_deref_mut() {
            h.saturating_record(micros.max(1));
        }
    }
    Ok(())
}

/// `stats.forwarded` summed over the nodes.
async fn forwarded(addrs: &[String]) -> Result<u64, String> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let mut sum = 0;
    for addr in addrs {
        let status: serde_json::Value = http
            .get(format!("http://{addr}/status"))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        sum += status["stats"]["forwarded"]
            .as_u64()
            .ok_or_else(|| format!("no stats.forwarded in {addr}'s status"))?;
    }
    Ok(sum)
}
