//! What a run measured: per operation type counts, throughput, latency
//! quantiles (HdrHistogram) and errors, as a table or as JSON.

use super::args::{TargetKind, WorkloadKind};
use super::scheduler::{Outcome, Plan};
use super::targets::Done;
use super::workload::OpKind;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Latencies are recorded in µs up to a minute; longer ones count as a
/// minute (an attempt times out well before).
const MAX_LATENCY_US: u64 = 60_000_000;
/// Distinct error messages kept; further ones are counted as "other".
const ERROR_KINDS: usize = 20;
/// Below this share of the target rate the report says it fell short.
const SHORTFALL: f64 = 0.95;

/// Latencies and counts of one operation type. Latencies are of successful
/// operations (a read that found nothing is one); errors are counted apart.
struct OpRecord {
    latency: Histogram<u64>,
    errors: u64,
    not_found: u64,
}

impl Default for OpRecord {
    fn default() -> Self {
        OpRecord {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("constant bounds are valid"),
            errors: 0,
            not_found: 0,
        }
    }
}

/// Everything completed so far, per [`OpKind`].
#[derive(Default)]
pub struct Recorder {
    ops: [OpRecord; 4],
    error_messages: HashMap<String, u64>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    pub fn record(&mut self, kind: OpKind, latency: Duration, outcome: Result<Done, String>) {
        let op = &mut self.ops[kind.index()];
        match outcome {
            Ok(done) => {
                let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                op.latency.saturating_record(us.max(1));
                op.not_found += u64::from(done == Done::NotFound);
            }
            Err(message) => {
                op.errors += 1;
                let known = self.error_messages.len() < ERROR_KINDS
                    || self.error_messages.contains_key(&message);
                let message = if known { message } else { "other".into() };
                *self.error_messages.entry(message).or_default() += 1;
            }
        }
    }

    /// Operations answered, successfully or not.
    pub fn completed(&self) -> u64 {
        self.ops.iter().map(|op| op.latency.len() + op.errors).sum()
    }

    pub fn errors(&self) -> u64 {
        self.ops.iter().map(|op| op.errors).sum()
    }

    pub fn op_report(&self, kind: OpKind, elapsed: Duration) -> OpReport {
        let op = &self.ops[kind.index()];
        let h = &op.latency;
        OpReport {
            op: kind.name(),
            count: h.len(),
            errors: op.errors,
            not_found: op.not_found,
            ops_per_s: per_second(h.len(), elapsed),
            latency_us: Latency {
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                p99_9: h.value_at_quantile(0.999),
                max: h.max(),
            },
        }
    }

    /// The most frequent error messages first.
    fn error_counts(&self) -> Vec<ErrorCount> {
        let mut counts: Vec<ErrorCount> = self
            .error_messages
            .iter()
            .map(|(message, &count)| ErrorCount {
                message: message.clone(),
                count,
            })
            .collect();
        counts.sort_by(|a, b| b.count.cmp(&a.count).then(a.message.cmp(&b.message)));
        counts
    }
}

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
}

#[derive(Debug, Serialize)]
pub struct OpReport {
    pub op: &'static str,
    /// Successful operations.
    pub count: u64,
    pub errors: u64,
    /// Reads that found no value (counted in `count`).
    pub not_found: u64,
    pub ops_per_s: f64,
    pub latency_us: Latency,
}

#[derive(Debug, Serialize)]
pub struct ErrorCount {
    pub message: String,
    pub count: u64,
}

/// What was run against what.
pub struct Setup {
    pub target: TargetKind,
    pub workload: WorkloadKind,
    pub nodes: usize,
    pub plan: Plan,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub target: TargetKind,
    pub workload: WorkloadKind,
    pub nodes: usize,
    /// `open` (at `target_rate`) or `closed` (as fast as it answers).
    pub loop_kind: &'static str,
    pub target_rate: Option<f64>,
    pub concurrency: usize,
    pub elapsed_s: f64,
    /// Successful operations of every type per second.
    pub ops_per_s: f64,
    pub errors: u64,
    /// Operations an open loop was so late with that it never sent them.
    pub unsent: u64,
    /// The operation types that occurred.
    pub operations: Vec<OpReport>,
    pub error_messages: Vec<ErrorCount>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(setup: &Setup, outcome: &Outcome) -> Report {
        let recorder = &outcome.recorder;
        let operations: Vec<OpReport> = OpKind::ALL
            .iter()
            .map(|&kind| recorder.op_report(kind, outcome.elapsed))
            .filter(|op| op.count + op.errors > 0)
            .collect();
        let succeeded = operations.iter().map(|op| op.count).sum();
        let mut report = Report {
            target: setup.target,
            workload: setup.workload,
            nodes: setup.nodes,
            loop_kind: if setup.plan.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            target_rate: setup.plan.rate,
            concurrency: setup.plan.concurrency,
            elapsed_s: outcome.elapsed.as_secs_f64(),
            ops_per_s: per_second(succeeded, outcome.elapsed),
            errors: recorder.errors(),
            unsent: outcome.unsent,
            operations,
            error_messages: recorder.error_counts(),
            notes: Vec::new(),
        };
        report.notes = report.notes();
        report
    }

    /// What a reader must know to trust the numbers.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        match self.target_rate {
            Some(rate) if self.ops_per_s < SHORTFALL * rate => notes.push(format!(
                "achieved {:.0} ops/s, {:.0}% of the {rate} targeted: the system (or this \
                 client) did not keep up, and latencies include the wait for it",
                self.ops_per_s,
                100.0 * self.ops_per_s / rate
            )),
            Some(_) => {}
            None => notes.push(
                "closed loop (no --rate): peak throughput; latencies leave out any \
                 wait before sending"
                    .into(),
            ),
        }
        if self.unsent > 0 {
            notes.push(format!(
                "{} operations were never sent: sending stops at twice the planned time",
                self.unsent
            ));
        }
        notes
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn to_table(&self) -> String {
        let mut out = self.heading();
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7} {:>9}",
            "op",
            "count",
            "ops/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "errors",
            "not found"
        );
        for op in &self.operations {
            let l = &op.latency_us;
            let _ = writeln!(
                out,
                "{:<8} {:>9} {:>10.1} {:>8} {:>8} {:>8} {:>9} {:>8} {:>7} {:>9}",
                op.op,
                op.count,
                op.ops_per_s,
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.p99_9),
                ms(l.max),
                op.errors,
                op.not_found
            );
        }
        let total: u64 = self.operations.iter().map(|op| op.count).sum();
        let _ = writeln!(
            out,
            "{:<8} {total:>9} {:>10.1} {:>53}",
            "total", self.ops_per_s, self.errors
        );
        for error in self.error_messages.iter().take(5) {
            let _ = writeln!(out, "error ×{}: {}", error.count, error.message);
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }

    fn heading(&self) -> String {
        let pace = match self.target_rate {
            Some(rate) => format!("open loop at {rate} ops/s"),
            None => "closed loop".into(),
        };
        let name = |debug: String| debug.to_lowercase();
        format!(
            "workload {} on {} ({} node(s) given), {pace}, concurrency {}, {:.2} s\n",
            name(format!("{:?}", self.workload)),
            name(format!("{:?}", self.target)),
            self.nodes,
            self.concurrency,
            self.elapsed_s
        )
    }
}

/// Microseconds as milliseconds with 2 decimals.
fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

/// The once-a-second progress line.
pub fn progress_line(elapsed: Duration, done: u64, last_second: u64, errors: u64) -> String {
    format!(
        "[{:>4.0}s] {done} ops done, {last_second} ops/s now, {errors} errors",
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rate: Option<f64>, unsent: u64) -> Report {
        let mut recorder = Recorder::new();
        for ms in 1..=100 {
            let outcome = if ms == 100 { Done::NotFound } else { Done::Ok };
            recorder.record(OpKind::Read, Duration::from_millis(ms), Ok(outcome));
        }
        recorder.record(OpKind::Update, Duration::from_millis(3), Ok(Done::Ok));
        recorder.record(
            OpKind::Update,
            Duration::from_millis(9),
            Err("503: no quorum".into()),
        );
        let setup = Setup {
            target: TargetKind::Ringkv,
            workload: WorkloadKind::A,
            nodes: 3,
            plan: Plan {
                rate,
                ops: None,
                duration: Some(Duration::from_secs(1)),
                concurrency: 8,
            },
        };
        let outcome = Outcome {
            recorder,
            elapsed: Duration::from_secs(1),
            unsent,
        };
        Report::new(&setup, &outcome)
    }

    #[test]
    fn json_has_one_entry_per_operation_type_that_occurred() {
        let json: serde_json::Value =
            serde_json::from_str(&sample(Some(101.0), 0).to_json()).unwrap();
        assert_eq!(json["target"], "ringkv");
        assert_eq!(json["workload"], "a");
        assert_eq!(json["loop_kind"], "open");
        assert_eq!(json["errors"], 1);
        assert_eq!(json["ops_per_s"], 101.0);
        let ops = json["operations"].as_array().unwrap();
        assert_eq!(ops.len(), 2, "read and update, no insert or rmw");
        let read = &ops[0];
        assert_eq!(read["op"], "read");
        assert_eq!(read["count"], 100);
        assert_eq!(read["not_found"], 1);
        assert_eq!(read["ops_per_s"], 100.0);
        let p99 = read["latency_us"]["p99"].as_u64().unwrap();
        assert!((99_000..=99_100).contains(&p99), "p99 {p99} µs");
        assert_eq!(read["latency_us"]["max"].as_u64().unwrap() / 1000, 100);
        assert_eq!(ops[1]["errors"], 1);
        assert_eq!(json["error_messages"][0]["message"], "503: no quorum");
        assert_eq!(
            json["notes"].as_array().unwrap().len(),
            0,
            "101 of 101 ops/s"
        );
    }

    #[test]
    fn table_lines_up_and_notes_a_shortfall() {
        let report = sample(Some(500.0), 7);
        let table = report.to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("workload a on ringkv (3 node(s) given), open loop at 500 ops/s")
        );
        assert!(lines[1].starts_with("op "));
        let read: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(read[..3], ["read", "100", "100.0"]);
        assert!(
            read[5].starts_with("99.0"),
            "p99 of 1..=100 ms: {}",
            lines[2]
        );
        assert!(lines[3].starts_with("update "));
        assert!(lines[4].starts_with("total ") && lines[4].ends_with(" 1"));
        assert_eq!(lines[1].len(), lines[2].len(), "columns line up:\n{table}");
        assert!(table.contains("error ×1: 503: no quorum"));
        assert!(table.contains("note: achieved 101 ops/s, 20% of the 500 targeted"));
        assert!(table.contains("note: 7 operations were never sent"));
    }

    #[test]
    fn distinct_error_messages_are_bounded() {
        let mut recorder = Recorder::new();
        for i in 0..100 {
            recorder.record(OpKind::Read, Duration::ZERO, Err(format!("error {i}")));
        }
        let counts = recorder.error_counts();
        assert_eq!(counts.len(), ERROR_KINDS + 1);
        assert_eq!(counts[0].message, "other");
        assert_eq!(counts[0].count, 80);
    }

    #[test]
    fn progress_line_reads_well() {
        let line = progress_line(Duration::from_secs(3), 600, 200, 2);
        assert_eq!(line, "[   3s] 600 ops done, 200 ops/s now, 2 errors");
    }
}
