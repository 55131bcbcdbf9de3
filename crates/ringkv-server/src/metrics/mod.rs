//! `/metrics` in Prometheus' text exposition format: the one home of every
//! metric a node exposes ([`catalog`] lists them).
//!
//! Most numbers are counters kept as plain data where things happen — the
//! core's [`Stats`](ringkv_core::node::Stats) and store counts, the
//! transport's atomics — and read at scrape time from the node thread's
//! report ([`scrape`]); nothing scans the store. What cannot be read that
//! way is recorded as it happens: client requests and their latency by the
//! front ends ([`requests`]), and the core's measurements (replica round
//! trips, siblings per read) which the node thread drains after every
//! batch ([`Metrics::observe`]). The web console reads the request
//! totals back from the same recorder ([`Metrics::request_totals`]).
//!
//! The crates are `metrics` and `metrics-exporter-prometheus`, used through
//! a recorder of our own (not the global one), so several nodes in one
//! process keep apart.

pub mod catalog;
mod requests;
mod scrape;
mod totals;

pub use requests::{Frontend, Outcome};
pub use scrape::Scrape;
pub use totals::RequestTotals;

use catalog::{Kind, FAMILIES};
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use ringkv_core::node::Observations;

/// Where our series come from, for the recorder (it ignores it).
static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// The recorder every series of one node lives in.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Metrics {
    /// Every family of the [`catalog`] described, histograms with their
    /// buckets.
    pub fn new() -> Metrics {
        let mut builder = PrometheusBuilder::new();
        for family in FAMILIES {
            if let Kind::Histogram(buckets) = family.kind {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(family.name.into()), buckets)
                    .expect("the catalog's buckets are not empty");
            }
        }
        let recorder = builder.build_recorder();
        for family in FAMILIES {
            let (name, help) = (family.name.into(), family.help.into());
            match family.kind {
                Kind::Counter => recorder.describe_counter(name, None, help),
                Kind::Gauge => recorder.describe_gauge(name, None, help),
                Kind::Histogram(_) => recorder.describe_histogram(name, None, help),
            }
        }
        let handle = recorder.handle();
        Metrics { recorder, handle }
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&key(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        self.recorder.register_gauge(&key(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&key(name, labels), &METADATA)
    }

    /// The core's measurements since the last batch (see [`Observations`]).
    pub fn observe(&self, observations: Observations) {
        if observations == Observations::default() {
            return;
        }
        let round_trips = self.histogram(catalog::ROUND_TRIP, &[]);
        for ms in observations.replica_round_trips_ms {
            round_trips.record(ms as f64 / 1000.0);
        }
        let siblings = self.histogram(catalog::READ_SIBLINGS, &[]);
        for live in observations.siblings_per_read {
            siblings.record(live as f64);
        }
    }

    /// The whole exposition, with the values `scrape` read just now.
    pub fn render(&self, scrape: &Scrape) -> String {
        scrape.record(self);
        self.handle.render()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.to_string()))
        .collect();
    Key::from_parts(name, labels)
}
