//! What a scrape reads: the node thread's report (the core's counters and
//! store counts), the transport's counters and the queue depth, set as the
//! current values of their series just before the exposition is written.

use super::Metrics;
use crate::driver::NodeReport;
use crate::shed::{Held, Shedding};
use crate::transport::TransportCounts;

/// Every member status word `/status` uses, so each has a series (at 0
/// when no member has it).
const MEMBER_STATUSES: [&str; 9] = [
    "joining",
    "up",
    "read-only",
    "suspect",
    "down",
    "leaving",
    "left",
    "removing",
    "removed",
];

/// The numbers one scrape reads.
pub struct Scrape<'a> {
    pub report: &'a NodeReport,
    pub transport: TransportCounts,
    /// What waits for the node thread (events and their bytes).
    pub queued: Held,
    /// What every bounded queue shed.
    pub shedding: &'a Shedding,
    pub cluster: &'a str,
    /// When the node started, seconds since the Unix epoch.
    pub started: f64,
}

impl Scrape<'_> {
    pub(super) fn record(&self, m: &Metrics) {
        self.record_node(m);
        self.record_hints_and_handoff(m);
        self.record_anti_entropy(m);
        self.record_members(m);
        self.record_transport(m);
        self.record_shedding(m);
    }

    fn record_shedding(&self, m: &Metrics) {
        for (queue, cause, n) in self.shedding.iter() {
            let labels = [("queue", queue.name()), ("cause", cause.name())];
            m.counter("ringkv_shed_total", &labels).absolute(n);
        }
    }

    fn record_node(&self, m: &Metrics) {
        let r = self.report;
        let s = &r.stats;
        counters(
            m,
            &[
                ("ringkv_coordinated_total", s.coordinated),
                ("ringkv_sloppy_coordinated_total", s.sloppy_coordinated),
                ("ringkv_forwards_total", s.forwarded),
                ("ringkv_hedged_forwards_total", s.hedged_forwards),
                ("ringkv_late_forwards_total", s.late_forwards),
                ("ringkv_quorum_failures_total", s.unavailable),
                ("ringkv_read_repairs_total", s.read_repairs),
                ("ringkv_hinted_writes_total", s.hinted_writes),
                ("ringkv_last_resort_hints_total", s.last_resort_hints),
            ],
        );
        let version = env!("CARGO_PKG_VERSION");
        let info = [
            ("node", r.node.as_str()),
            ("cluster", self.cluster),
            ("version", version),
        ];
        for (name, labels, value) in [
            (
                "ringkv_store_keys",
                &[][..],
                r.membership.stored_keys as f64,
            ),
            ("ringkv_store_bytes", &[], r.membership.stored_bytes as f64),
            ("ringkv_store_faulted", &[], flag(r.store_fault.is_some())),
            ("ringkv_ready", &[], flag(r.not_ready.is_none())),
            ("ringkv_in_flight_operations", &[], r.in_flight as f64),
            ("ringkv_event_queue_depth", &[], self.queued.count as f64),
            ("ringkv_event_queue_bytes", &[], self.queued.bytes as f64),
            (
                "ringkv_unreachable_peers",
                &[],
                r.unreachable_peers.len() as f64,
            ),
            ("ringkv_node_info", &info[..], 1.0),
            ("ringkv_start_time_seconds", &[], self.started),
        ] {
            m.gauge(name, labels).set(value);
        }
    }

    fn record_hints_and_handoff(&self, m: &Metrics) {
        let (s, membership) = (&self.report.stats, &self.report.membership);
        counters(
            m,
            &[
                ("ringkv_hints_stored_total", s.hints_stored),
                ("ringkv_hints_delivered_total", s.hints_delivered),
                ("ringkv_hints_rehomed_total", s.hints_rehomed),
                ("ringkv_hints_dropped_total", s.hints_dropped),
                (
                    "ringkv_handoff_keys_received_total",
                    s.handoff_keys_received,
                ),
                (
                    "ringkv_handoff_bytes_received_total",
                    s.handoff_bytes_received,
                ),
                ("ringkv_handoff_keys_sent_total", s.handoff_keys_sent),
                ("ringkv_handoff_bytes_sent_total", s.handoff_bytes_sent),
                ("ringkv_handoff_keys_dropped_total", s.handoff_keys_dropped),
                (
                    "ringkv_handoff_ranges_fetched_total",
                    s.handoff_ranges_fetched,
                ),
            ],
        );
        let pending_ranges = membership.handoff.as_ref().map_or(0, |h| {
            h.progress
                .ranges_total
                .saturating_sub(h.progress.ranges_done)
        });
        gauges(
            m,
            &[
                ("ringkv_hints_pending", membership.pending_hints_total),
                ("ringkv_hints_pending_bytes", membership.pending_hint_bytes),
                ("ringkv_handoff_ranges_pending", pending_ranges as u64),
            ],
        );
    }

    fn record_anti_entropy(&self, m: &Metrics) {
        let ae = &self.report.anti_entropy;
        let s = &ae.stats;
        counters(
            m,
            &[
                (
                    "ringkv_anti_entropy_exchanges_started_total",
                    s.exchanges_started,
                ),
                (
                    "ringkv_anti_entropy_exchanges_completed_total",
                    s.exchanges_completed,
                ),
                (
                    "ringkv_anti_entropy_exchanges_in_sync_total",
                    s.exchanges_in_sync,
                ),
                (
                    "ringkv_anti_entropy_exchanges_failed_total",
                    s.exchanges_failed,
                ),
                ("ringkv_anti_entropy_keys_sent_total", s.keys_sent),
                ("ringkv_anti_entropy_keys_repaired_total", s.keys_repaired),
                ("ringkv_anti_entropy_bytes_sent_total", s.bytes_sent),
            ],
        );
        let synced = ae
            .ranges
            .iter()
            .filter(|r| r.synced_ms_ago.is_some())
            .count();
        let unsynced = ae.ranges.len() - synced;
        for (label, count) in [("yes", synced), ("no", unsynced)] {
            m.gauge("ringkv_anti_entropy_ranges", &[("synced", label)])
                .set(count as f64);
        }
    }

    fn record_members(&self, m: &Metrics) {
        let members = &self.report.membership.members;
        for status in MEMBER_STATUSES {
            let count = members.iter().filter(|x| x.status == status).count();
            m.gauge("ringkv_members", &[("status", status)])
                .set(count as f64);
        }
    }

    fn record_transport(&self, m: &Metrics) {
        let t = &self.transport;
        for (name, labels, value) in [
            (
                "ringkv_transport_connections_accepted_total",
                &[][..],
                t.accepted,
            ),
            (
                "ringkv_transport_connections_established_total",
                &[("direction", "inbound")],
                t.inbound_established,
            ),
            (
                "ringkv_transport_connections_established_total",
                &[("direction", "outbound")],
                t.outbound_established,
            ),
            ("ringkv_transport_reconnects_total", &[], t.reconnects),
            (
                "ringkv_transport_connect_failures_total",
                &[],
                t.connect_failures,
            ),
        ] {
            m.counter(name, labels).absolute(value);
        }
        for (cause, frames) in &t.dropped {
            m.counter(
                "ringkv_transport_dropped_frames_total",
                &[("cause", cause.label())],
            )
            .absolute(*frames);
        }
        for (labels, value) in [
            (&[("direction", "inbound")][..], t.inbound_open),
            (&[("direction", "outbound")], t.outbound_open),
        ] {
            m.gauge("ringkv_transport_connections_open", labels)
                .set(value as f64);
        }
        m.gauge("ringkv_transport_queued_frames", &[])
            .set(t.queued_frames as f64);
    }
}

/// Counters without labels, set to what was read.
fn counters(m: &Metrics, values: &[(&'static str, u64)]) {
    for (name, value) in values {
        m.counter(name, &[]).absolute(*value);
    }
}

/// Gauges without labels, set to what was read.
fn gauges(m: &Metrics, values: &[(&'static str, u64)]) {
    for (name, value) in values {
        m.gauge(name, &[]).set(*value as f64);
    }
}

fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}
