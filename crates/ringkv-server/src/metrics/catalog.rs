//! Every metric a node exposes: name, kind and help, in one table, so the
//! README's list, the Grafana dashboard and the code agree. Names follow
//! Prometheus' conventions: the `ringkv_` prefix, base units in the name
//! (`_seconds`, `_bytes`), `_total` on counters and nowhere else.

/// What kind of series a family holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// One metric family.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: Kind::Counter,
        help,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        kind: Kind::Gauge,
        help,
    }
}

const fn histogram(name: &'static str, buckets: &'static [f64], help: &'static str) -> Family {
    Family {
        name,
        kind: Kind::Histogram(buckets),
        help,
    }
}

/// Client request latency, seconds: from a fraction of a millisecond (a
/// local read) to the quorum timeouts (seconds).
const REQUEST_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Replica round trips, seconds; the node measures them in whole ms.
const ROUND_TRIP_SECONDS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Live siblings per read: one is the norm, many means clients write
/// blindly; `max_siblings` (64 by default) is the most a key can hold.
const SIBLINGS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 8.0, 16.0, 32.0, 64.0];

pub const REQUESTS: &str = "ringkv_requests_total";
pub const REQUEST_DURATION: &str = "ringkv_request_duration_seconds";
pub const ROUND_TRIP: &str = "ringkv_replica_round_trip_seconds";
pub const READ_SIBLINGS: &str = "ringkv_read_siblings";

pub const FAMILIES: &[Family] = &[
    counter(REQUESTS, "Client requests answered, by front end (http, resp), operation and outcome (ok, invalid, denied, conflict, unavailable, error, overloaded)."),
    histogram(REQUEST_DURATION, REQUEST_SECONDS, "Time from a client request's arrival to its answer, by front end and operation."),
    histogram(ROUND_TRIP, ROUND_TRIP_SECONDS, "Time from the start of an operation this node coordinated to each other replica's answer."),
    histogram(READ_SIBLINGS, SIBLINGS, "Live siblings returned by each read this node coordinated."),
    counter("ringkv_coordinated_total", "Operations this node coordinated."),
    counter("ringkv_sloppy_coordinated_total", "Operations this node coordinated from outside the key's preference list (no replica was healthy)."),
    counter("ringkv_forwards_total", "Client requests this node sent on to a coordinator."),
    counter("ringkv_hedged_forwards_total", "Forwards also sent to the next candidate because the first was late."),
    counter("ringkv_late_forwards_total", "Forwarded writes refused unapplied because they were read past their start-by time."),
    counter("ringkv_quorum_failures_total", "Operations answered with a quorum error (unavailable)."),
    counter("ringkv_read_repairs_total", "Stale replicas sent a newer state after a read."),
    counter("ringkv_hinted_writes_total", "Replicas this node sent to stand-ins as coordinator (sloppy quorum)."),
    counter("ringkv_last_resort_hints_total", "Hints this node kept as coordinator for replicas no stand-in could cover (not counted towards W)."),
    counter("ringkv_hints_stored_total", "New hints this node stored as a stand-in."),
    counter("ringkv_hints_delivered_total", "Hints handed back to their owner and deleted."),
    counter("ringkv_hints_rehomed_total", "Hints of a member that left or was removed, sent to the key's replicas instead and deleted."),
    counter("ringkv_hints_dropped_total", "Hints refused (max_hints) or dropped for age (max_age_ms)."),
    gauge("ringkv_hints_pending", "Hints this node keeps for other nodes."),
    gauge("ringkv_hints_pending_bytes", "Bytes of those hints (keys plus encoded sibling sets)."),
    counter("ringkv_handoff_keys_received_total", "Keys received in ownership handoff transfer pages."),
    counter("ringkv_handoff_bytes_received_total", "Bytes of keys received in ownership handoffs."),
    counter("ringkv_handoff_keys_sent_total", "Keys sent to new owners in ownership handoffs."),
    counter("ringkv_handoff_bytes_sent_total", "Bytes of keys sent to new owners in ownership handoffs."),
    counter("ringkv_handoff_keys_dropped_total", "Keys dropped once their new owners held them."),
    counter("ringkv_handoff_ranges_fetched_total", "Ranges whose ownership handoff completed on this node."),
    gauge("ringkv_handoff_ranges_pending", "Ranges of the handoff in progress still to fetch (0: none in progress)."),
    counter("ringkv_anti_entropy_exchanges_started_total", "Anti-entropy exchanges this node started."),
    counter("ringkv_anti_entropy_exchanges_completed_total", "Anti-entropy exchanges completed."),
    counter("ringkv_anti_entropy_exchanges_in_sync_total", "Completed exchanges whose trees were equal from the start."),
    counter("ringkv_anti_entropy_exchanges_failed_total", "Exchanges ended early: timed out or their peer was unreachable."),
    counter("ringkv_anti_entropy_keys_sent_total", "Keys sent to repair a replica."),
    counter("ringkv_anti_entropy_keys_repaired_total", "Keys whose local state changed by merging a partner's version."),
    counter("ringkv_anti_entropy_bytes_sent_total", "Bytes of keys sent by anti-entropy."),
    gauge("ringkv_anti_entropy_ranges", "Ranges this node replicates, by whether they were in sync with a partner since start-up (synced: yes, no)."),
    gauge("ringkv_members", "Members of the cluster as this node sees them, by status (joining, up, read-only, suspect, down, leaving, left, removing, removed)."),
    gauge("ringkv_unreachable_peers", "Peers this node's transport failed to reach in the last second."),
    gauge("ringkv_ready", "1 when the node is ready (joined, ring known, no handoff, store writable), else 0."),
    gauge("ringkv_event_queue_depth", "Events waiting for the node thread (client requests, peer messages)."),
    gauge("ringkv_event_queue_bytes", "Encoded bytes of the events waiting for the node thread."),
    counter("ringkv_shed_total", "Load shed at a bound, by queue (node_clients, node_peers, in_flight, peer_outbound, resp_pipeline, resp_connections, http_requests, http_connections) and cause (count, bytes, unreachable): a request refused, a message or frame dropped, a pipeline paused."),
    gauge("ringkv_in_flight_operations", "Operations this node coordinates or forwarded that are not finished."),
    gauge("ringkv_store_keys", "Keys in this node's store, tombstones included (kept on every write, not scanned)."),
    gauge("ringkv_store_bytes", "Logical bytes in this node's store: keys plus encoded sibling sets."),
    gauge("ringkv_store_faulted", "1 when the store failed and the node is read-only until restarted."),
    counter("ringkv_transport_connections_accepted_total", "Inter-node TCP connections accepted, rejected ones included."),
    counter("ringkv_transport_connections_established_total", "Inter-node connections past their handshake, by direction (inbound, outbound)."),
    gauge("ringkv_transport_connections_open", "Inter-node connections open now, by direction."),
    counter("ringkv_transport_reconnects_total", "Outbound connections re-established to a peer after an earlier one ended."),
    counter("ringkv_transport_connect_failures_total", "Outbound connection attempts that failed."),
    counter("ringkv_transport_dropped_frames_total", "Inter-node frames not delivered, by cause (unreachable, refused, unknown_peer, too_large, unencodable, blocked, queue_full)."),
    gauge("ringkv_transport_queued_frames", "Frames waiting in the per-peer outbound queues."),
    gauge("ringkv_node_info", "Always 1; labels name the node, its cluster and the ringkv version."),
    gauge("ringkv_start_time_seconds", "When the node started, seconds since the Unix epoch."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for family in FAMILIES {
            let name = family.name;
            assert!(seen.insert(name), "{name} twice");
            assert!(name.starts_with("ringkv_"), "{name}");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            let counter = family.kind == Kind::Counter;
            assert_eq!(name.ends_with("_total"), counter, "{name}");
            assert!(
                !name.ends_with("_count") && !name.ends_with("_sum"),
                "{name}"
            );
            assert!(family.help.ends_with('.'), "{name}");
        }
    }

    /// The sample dashboard asks only for metrics that exist.
    #[test]
    fn the_dashboard_names_only_catalog_metrics() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/grafana-dashboard.json"
        );
        let text = std::fs::read_to_string(path).expect("deploy/grafana-dashboard.json");
        let names: Vec<&str> = text
            .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .filter(|word| word.starts_with("ringkv_"))
            .collect();
        assert!(names.len() > 20, "{names:?}");
        for name in names {
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| FAMILIES.iter().any(|f| f.name == *base))
                .unwrap_or(name);
            assert!(
                FAMILIES.iter().any(|f| f.name == family),
                "{name} is not in the catalog"
            );
        }
    }
}
