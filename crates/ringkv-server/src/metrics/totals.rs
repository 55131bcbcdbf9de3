//! Client request counts and latency histograms as numbers, for the web
//! console's `/ui/data`. They are read back from the recorder `/metrics`
//! renders — its exposition, parsed — so the console and Prometheus see
//! the same counters and metrics keep one home. The console turns these
//! running totals into rates and percentiles from one poll to the next,
//! as Prometheus' `rate()` and `histogram_quantile()` would.

use super::{catalog, Metrics};
use serde::Serialize;
use std::collections::BTreeMap;

/// Running totals of one front end's operation since the node started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RequestTotals {
    /// `http` or `resp`.
    pub frontend: String,
    /// `get`, `put`, `set`, … (see [`Metrics::request`]).
    pub op: String,
    /// Requests answered, by outcome (`ok`, `invalid`, `denied`,
    /// `conflict`, `unavailable`, `error`).
    pub outcomes: BTreeMap<String, u64>,
    /// Requests timed, and their durations summed, in seconds.
    pub timed: u64,
    pub seconds: f64,
    /// `[upper bound in seconds, requests at most that long]`, cumulative,
    /// finite bounds only (`timed` is the `+Inf` bucket).
    pub buckets: Vec<(f64, u64)>,
}

impl Metrics {
    /// Every front end's operations with their running totals, sorted by
    /// front end and operation.
    pub fn request_totals(&self) -> Vec<RequestTotals> {
        totals_of(&self.handle.render())
    }
}

/// The request families of a text exposition, grouped by front end and op.
fn totals_of(exposition: &str) -> Vec<RequestTotals> {
    let mut found: BTreeMap<(String, String), RequestTotals> = BTreeMap::new();
    for sample in exposition.lines().filter_map(Sample::parse) {
        let Some(part) = sample.part() else { continue };
        let (Some(frontend), Some(op)) = (sample.label("frontend"), sample.label("op")) else {
            continue;
        };
        let totals = found
            .entry((frontend.to_string(), op.to_string()))
            .or_insert_with(|| RequestTotals {
                frontend: frontend.to_string(),
                op: op.to_string(),
                ..RequestTotals::default()
            });
        match part {
            Part::Outcome => {
                let outcome = sample.label("outcome").unwrap_or("other").to_string();
                totals.outcomes.insert(outcome, sample.value as u64);
            }
            Part::Bucket => {
                if let Some(bound) = sample.label("le").and_then(|le| le.parse().ok()) {
                    totals.buckets.push((bound, sample.value as u64));
                }
            }
            Part::Sum => totals.seconds = sample.value,
            Part::Count => totals.timed = sample.value as u64,
        }
    }
    found.into_values().collect()
}

/// Which request series a sample belongs to.
enum Part {
    Outcome,
    Bucket,
    Sum,
    Count,
}

/// One sample line, `name{k="v",…} value`. Our label values are fixed
/// words (never user input, see [`Metrics::request`]), so they hold no
/// quotes or commas to unescape.
struct Sample<'a> {
    name: &'a str,
    labels: &'a str,
    value: f64,
}

impl<'a> Sample<'a> {
    fn parse(line: &'a str) -> Option<Sample<'a>> {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        let value = value.parse().ok()?;
        Some(Sample {
            name,
            labels,
            value,
        })
    }

    fn part(&self) -> Option<Part> {
        if self.name == catalog::REQUESTS {
            return Some(Part::Outcome);
        }
        match self.name.strip_prefix(catalog::REQUEST_DURATION)? {
            "_bucket" => Some(Part::Bucket),
            "_sum" => Some(Part::Sum),
            "_count" => Some(Part::Count),
            _ => None,
        }
    }

    fn label(&self, key: &str) -> Option<&'a str> {
        self.labels.split(',').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then(|| v.trim_matches('"'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Frontend, Outcome};
    use std::time::Duration;

    /// What the front ends record is what the console reads: counts by
    /// outcome, the timed count and sum, and cumulative buckets.
    #[test]
    fn totals_are_what_was_recorded() {
        let metrics = Metrics::new();
        metrics.declare_requests(Frontend::Http, &["get"]);
        let ms = Duration::from_millis;
        metrics.request(Frontend::Http, "get", Outcome::Ok, ms(2));
        metrics.request(Frontend::Http, "get", Outcome::Ok, ms(30));
        metrics.request(Frontend::Http, "get", Outcome::Unavailable, ms(3000));
        metrics.request(Frontend::Resp, "set", Outcome::Ok, ms(1));
        let totals = metrics.request_totals();
        assert_eq!(totals.len(), 2, "{totals:?}");
        let get = &totals[0];
        assert_eq!((get.frontend.as_str(), get.op.as_str()), ("http", "get"));
        assert_eq!(get.outcomes["ok"], 2);
        assert_eq!(get.outcomes["unavailable"], 1);
        assert_eq!(get.outcomes["error"], 0, "declared series count too");
        assert_eq!(get.timed, 3);
        assert!((get.seconds - 3.032).abs() < 1e-9, "{}", get.seconds);
        let at = |bound: f64| get.buckets.iter().find(|b| b.0 == bound).map(|b| b.1);
        assert_eq!(at(0.0025), Some(1));
        assert_eq!(at(0.05), Some(2));
        assert_eq!(at(5.0), Some(3));
        assert!(get.buckets.windows(2).all(|w| w[0].0 < w[1].0));
        let set = &totals[1];
        assert_eq!((set.frontend.as_str(), set.op.as_str()), ("resp", "set"));
        assert_eq!((set.outcomes["ok"], set.timed), (1, 1));
    }
}
