//! `ringkv bench` against real node processes: a load phase, then a short
//! open-loop run of YCSB workload A over the loaded keys.

mod common;

use common::{run_cli, Cluster};
use serde_json::Value;
use std::time::Duration;

const RECORDS: &str = "300";

/// Run `ringkv bench --json` with `args` against `nodes`; its report.
async fn bench(nodes: &str, args: &[&str]) -> Value {
    let mut all = vec!["bench", "--nodes", nodes, "--records", RECORDS, "--json"];
    all.extend_from_slice(args);
    let stdout = run_cli(&all, Duration::from_secs(60)).await;
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not a JSON report ({e}): {stdout}"))
}

/// The report's entry for operation type `op`.
fn op<'a>(report: &'a Value, op: &str) -> &'a Value {
    report["operations"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["op"] == op))
        .unwrap_or_else(|| panic!("no {op} in {report}"))
}

#[tokio::test]
async fn bench_loads_then_runs_workload_a_without_errors() {
    let c = Cluster::start_patient(3).await;
    let nodes: Vec<String> = (1..=c.len()).map(|i| c.http_addr(i).to_string()).collect();
    let nodes = nodes.join(",");

    let load = bench(&nodes, &["--workload", "load", "--concurrency", "8"]).await;
    assert_eq!(load["errors"], 0, "{load}");
    assert_eq!(load["loop_kind"], "closed");
    assert_eq!(op(&load, "insert")["count"], 300, "{load}");

    let args = ["--workload", "a", "--duration", "2s", "--rate", "200"];
    let run = bench(&nodes, &args).await;
    assert_eq!(run["errors"], 0, "{run}");
    assert_eq!(run["loop_kind"], "open");
    let (read, update) = (op(&run, "read"), op(&run, "update"));
    let count = |o: &Value| o["count"].as_u64().expect("a count");
    assert!(count(read) > 0 && count(update) > 0, "{run}");
    assert_eq!(read["not_found"], 0, "every key was loaded: {run}");
    // 200/s for 2 s: every scheduled operation was sent, or counted unsent.
    let unsent = run["unsent"].as_u64().expect("unsent");
    assert_eq!(count(read) + count(update) + unsent, 400, "{run}");
    assert!(read["latency_us"]["p99"].as_u64() > Some(0), "{run}");
}
