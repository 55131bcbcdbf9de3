//! `ringkv bench`: a YCSB-style open-loop load generator for ringkv (and,
//! for comparison, etcd). See [`scheduler`] for what open loop means here.

mod args;
mod etcd;
mod report;
mod scheduler;
mod targets;
mod workload;
mod zipfian;

pub use args::BenchArgs;

use args::TargetKind;
use report::{Report, Setup};
use std::sync::Arc;
use targets::Target;
use workload::Workload;

/// Connect (failing only when no node answers), run the workload, print
/// the report on stdout.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    args.validate()?;
    let report = match args.target {
        TargetKind::Ringkv => measure(targets::Ringkv::connect(&args).await?, &args).await,
        TargetKind::Etcd => measure(etcd::Etcd::connect(&args.nodes).await?, &args).await,
    };
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

async fn measure<T: Target>(target: T, args: &BenchArgs) -> Report {
    let mut workload = Workload::new(
        args.workload,
        args.distribution,
        args.records,
        args.value_size,
        args.seed,
    );
    let plan = args.plan();
    let outcome = scheduler::run(Arc::new(target), || workload.next_op(), plan).await;
    let setup = Setup {
        target: args.target,
        workload: args.workload,
        nodes: args.nodes.len(),
        plan,
    };
    Report::new(&setup, &outcome)
}
