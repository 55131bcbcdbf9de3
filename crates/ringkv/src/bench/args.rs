//! `ringkv bench` flags, and the run plan they describe.

use super::scheduler::Plan;
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// HTTP addresses (`host:port`) of any cluster nodes; with `--target
    /// etcd`, the host:port of etcd client URLs.
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = TargetKind::Ringkv)]
    pub target: TargetKind,
    /// YCSB core workload: `load` inserts `--records` keys; `a` 50% read /
    /// 50% update; `b` 95/5; `c` read only; `d` reads of the latest keys
    /// with 5% inserts; `f` 50% read / 50% read-modify-write.
    #[arg(long, value_enum, default_value_t = WorkloadKind::A)]
    pub workload: WorkloadKind,
    /// Keys loaded by `load` and chosen among by the other workloads.
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Target operations per second (open loop). Without it the loop is
    /// closed: each slot sends its next request when the last completes.
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to send (`500ms`, `10s`, `2m`); `load` ends when every
    /// record is inserted instead.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// ringkv only: replies a read waits for (default: the cluster's R).
    #[arg(long)]
    pub r: Option<usize>,
    /// ringkv only: acknowledgements a write waits for (default: W).
    #[arg(long)]
    pub w: Option<usize>,
    /// ringkv only: how the client picks the node for a request (default:
    /// partition-aware).
    #[arg(long, value_enum)]
    pub routing: Option<RoutingArg>,
    /// Key popularity, overriding the workload's (zipfian; `d`: latest).
    #[arg(long, value_enum)]
    pub distribution: Option<Distribution>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seed of the key and value choices: equal seeds, equal requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Ringkv,
    Etcd,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Load,
    A,
    B,
    C,
    D,
    F,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoutingArg {
    Generic,
    PartitionAware,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// YCSB's scrambled zipfian (constant 0.99): a few hot keys spread
    /// over the key space.
    Zipfian,
    Uniform,
    /// Zipfian over recency: the newest keys are the hottest.
    Latest,
}

impl BenchArgs {
    /// Refuse combinations that would only fail request by request.
    pub fn validate(&self) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if self.records == 0 {
            return Err("--records must be at least 1".into());
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("--rate {rate} is not a positive number"));
            }
        }
        if [self.r, self.w].contains(&Some(0)) {
            return Err("--r and --w must be at least 1".into());
        }
        let ringkv_only = self.r.is_some() || self.w.is_some() || self.routing.is_some();
        if self.target == TargetKind::Etcd && ringkv_only {
            return Err("--r, --w and --routing apply to --target ringkv only".into());
        }
        Ok(())
    }

    /// `load` sends exactly `--records` inserts; the others send for
    /// `--duration`.
    pub fn plan(&self) -> Plan {
        let load = self.workload == WorkloadKind::Load;
        Plan {
            rate: self.rate,
            ops: load.then_some(self.records),
            duration: (!load).then_some(self.duration),
            concurrency: self.concurrency,
        }
    }
}

/// `1.5s`, `500ms`, `2m`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 10s, 500ms, 2m)"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("2h").is_err());
        assert!(parse_duration("s").is_err());
    }
}
