//! `ringkv sim`: run seeded simulations of a whole cluster under faults and
//! check them (see the `ringkv-sim` crate). One seed replays exactly.

use indicatif::{ProgressBar, ProgressStyle};
use ringkv_sim::{run, SimConfig, SimReport};
use tracing_subscriber::util::SubscriberInitExt;

#[derive(clap::Args)]
pub struct SimArgs {
    /// Run (or replay) this one seed and print its report.
    #[arg(long, conflicts_with = "seeds")]
    pub seed: Option<u64>,
    /// Run this many seeds, starting at `--first`.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    #[arg(long, default_value_t = 1)]
    pub first: u64,
    /// With `--seed`: also print every write and read of this key.
    #[arg(long, requires = "seed")]
    pub dump: Option<String>,
}

pub fn run_sims(args: SimArgs) -> Result<(), String> {
    match args.seed {
        Some(seed) => {
            let report = run(SimConfig::for_seed(seed));
            print_report(&report);
            if let Some(key) = &args.dump {
                print_history(&report, key);
            }
            report
                .verdict
                .ok()
                .then_some(())
                .ok_or_else(|| format!("seed {seed} failed"))
        }
        None => run_many(args.first, args.seeds),
    }
}

fn run_many(first: u64, count: u64) -> Result<(), String> {
    // The simulated nodes' own logs (joins, handoffs) would drown the
    // progress bar; `RUST_LOG` brings them back, and `--seed S` keeps them.
    let _quiet = std::env::var_os("RUST_LOG").is_none().then(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::OFF)
            .set_default()
    });
    let bar = ProgressBar::new(count);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut ops, mut writes_checked, mut faults) = (0, 0, 0u64);
    let (mut joins, mut leaves, mut small, mut full) = (0, 0, 0, 0);
    let mut collected = 0;
    let mut failed = Vec::new();
    for seed in first..first + count {
        let report = run(SimConfig::for_seed(seed));
        ops += report.writes + report.reads;
        writes_checked += report.verdict.writes_checked;
        faults += fault_total(&report);
        joins += usize::from(report.had_join());
        leaves += usize::from(report.had_leave());
        small += usize::from(report.small.is_some());
        full += usize::from(filled_a_batch(&report));
        collected += report.history.collected.len();
        if !report.verdict.ok() || report.converged_after_ms.is_none() {
            failed.push(seed);
            bar.println(format!("seed {seed} FAILED: {}", first_problem(&report)));
        }
        bar.set_message(format!("{} failed", failed.len()));
        bar.inc(1);
    }
    bar.finish();
    println!(
        "{count} seeds run ({joins} with a join, {leaves} with a leave, {small} with small \
         size limits, {full} sent a message of over 3/4 of its batch budget), {ops} operations, \
         {writes_checked} acknowledged writes checked, {collected} tombstone collections \
         checked, {faults} faults injected, {} failed",
        failed.len()
    );
    if failed.is_empty() {
        return Ok(());
    }
    let seeds: Vec<String> = failed.iter().map(u64::to_string).collect();
    Err(format!(
        "failing seeds: {} (replay one with `ringkv sim --seed S`)",
        seeds.join(" ")
    ))
}

/// Whether a message of the run came near the batch budget (so budgets
/// were what cut batches).
fn filled_a_batch(r: &SimReport) -> bool {
    r.faults.net.largest >= r.batch_bytes / 4 * 3
}

fn fault_total(r: &SimReport) -> u64 {
    let f = &r.faults;
    f.partitions
        + f.crashes
        + f.disk_faults
        + f.pauses
        + f.forgeries
        + f.net.dropped
        + f.net.duplicated
}

fn first_problem(r: &SimReport) -> String {
    match r.verdict.violations.first() {
        Some(v) => v.clone(),
        None => "replicas did not converge".into(),
    }
}

/// Every write and read of `key`, in the order they were invoked.
fn print_history(r: &SimReport, key: &str) {
    let writes = r.history.writes.iter().filter(|w| w.key == key);
    let mut lines: Vec<(u64, String)> = writes
        .map(|w| {
            let value = w.value.as_deref().map(String::from_utf8_lossy);
            let line = format!(
                "{:>6} ms  client {} write {:?} with {:?}\n            -> at {:?}: {:?}",
                w.invoked_at, w.client, value, w.context, w.completed_at, w.outcome
            );
            (w.invoked_at, line)
        })
        .collect();
    for read in r.history.reads.iter().filter(|r| r.key == key) {
        let line = format!(
            "{:>6} ms  client {} read -> at {}: {:?}",
            read.invoked_at, read.client, read.completed_at, read.result
        );
        lines.push((read.invoked_at, line));
    }
    // A Redis key is dumped by its name too (the keyspace prefix added).
    let typed =
        String::from_utf8_lossy(&ringkv_core::keyspace::lww_key(key.as_bytes())).into_owned();
    let ours = |k: &str| k == key || k == typed;
    for u in r.history.updates.iter().filter(|u| ours(&u.key)) {
        let line = format!(
            "{:>6} ms  client {} update {:?}\n            -> at {:?}: {:?}",
            u.invoked_at, u.client, u.update, u.completed_at, u.outcome
        );
        lines.push((u.invoked_at, line));
    }
    for (k, context, at) in r.history.collected.iter().filter(|(k, _, _)| ours(k)) {
        let line = format!("{at:>6} ms  collection of {k:?} decided, covering {context:?}");
        lines.push((*at, line));
    }
    lines.sort_by_key(|(at, _)| *at);
    for (_, line) in lines {
        println!("{line}");
    }
}

fn print_report(r: &SimReport) {
    println!(
        "seed {}: {} nodes, {} vnodes each, contexts pruned to {} entries, trace {:016x}",
        r.seed, r.nodes, r.vnodes, r.max_clock_entries, r.trace
    );
    println!(
        "  {} writes ({} acknowledged), {} reads; {} acknowledged writes checked over {} keys",
        r.writes, r.acked, r.reads, r.verdict.writes_checked, r.verdict.keys_checked
    );
    let n = &r.faults.net;
    println!(
        "  faults: {} partitions, {} crashes ({} power losses), {} broken disks, {} pauses, \
         {} forged introductions, {} of {} messages dropped, {} duplicated, {} cut, {} lost in stalled links, {} too \
         large for a frame",
        r.faults.partitions,
        r.faults.crashes,
        r.faults.power_losses,
        r.faults.disk_faults,
        r.faults.pauses,
        r.faults.forgeries,
        n.dropped,
        n.sent,
        n.duplicated,
        n.cut,
        n.stalled,
        n.too_large
    );
    if let Some(small) = &r.small {
        println!("  small limits: {small:?}");
    }
    println!(
        "  largest message: {} bytes (batch budget {} bytes)",
        n.largest, r.batch_bytes
    );
    if let Some(change) = &r.change {
        println!("  membership: {change}");
    }
    println!(
        "  tombstones collected: {} (keys told to delete)",
        r.history.collected.len()
    );
    match r.converged_after_ms {
        Some(ms) => println!("  replicas converged {ms} simulated ms after heal"),
        None => println!("  replicas did NOT converge"),
    }
    if r.verdict.ok() {
        println!("  checker: ok");
    }
    for v in &r.verdict.violations {
        println!("  VIOLATION: {v}");
    }
}
