//! Which node a request goes to, and in which order the others are tried.

use crate::topology::Topology;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How the client picks the node for a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Routing {
    /// Straight to the first healthy node of the key's preference list
    /// (computed locally from the ring), so the node that gets the
    /// request coordinates it: no forwarding hop. When no node of the list
    /// answers, or the ring is unknown, any node (generic routing).
    #[default]
    PartitionAware,
    /// To the seed addresses in turn, as a load balancer in front of the
    /// cluster would; a node that is not the key's coordinator forwards
    /// the request there (one hop).
    Generic,
}

/// How long a node whose connection failed is passed over: long enough
/// that a dead node costs one failed attempt, not one per request; short
/// enough that a restarted node is used again soon.
const DOWN_FOR: Duration = Duration::from_secs(2);

/// Nodes that recently failed at the transport level.
#[derive(Default)]
pub(crate) struct Health {
    down_until: Mutex<HashMap<String, Instant>>,
}

impl Health {
    pub fn mark_down(&self, addr: &str) {
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        down.insert(addr.to_string(), Instant::now() + DOWN_FOR);
    }

    pub fn mark_up(&self, addr: &str) {
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        down.remove(addr);
    }

    /// `addrs` with the healthy ones first, each group in its own order:
    /// nodes marked down are still tried, last.
    pub fn healthy_first(&self, addrs: Vec<String>) -> Vec<String> {
        let now = Instant::now();
        let down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        let (up, down): (Vec<String>, Vec<String>) = addrs
            .into_iter()
            .partition(|a| down.get(a).is_none_or(|until| *until <= now));
        up.into_iter().chain(down).collect()
    }
}

/// Every node worth trying for `key`, best first: the preference list
/// (partition-aware with a known ring) or the seeds starting at
/// `first_seed` (generic), then every other member; healthy nodes first.
pub(crate) fn candidates(
    topology: &Topology,
    routing: Routing,
    health: &Health,
    key: &[u8],
    seeds: &[String],
    first_seed: usize,
) -> Vec<String> {
    let preferred: Vec<&str> = match routing {
        Routing::PartitionAware => topology.preference_list(key),
        Routing::Generic => Vec::new(),
    };
    let preferred = if preferred.is_empty() {
        let rotation = first_seed % seeds.len().max(1);
        seeds[rotation..]
            .iter()
            .chain(&seeds[..rotation])
            .map(String::as_str)
            .collect()
    } else {
        preferred
    };
    let mut order: Vec<String> = Vec::new();
    let rest = topology.members.iter().map(|m| m.addr.as_str());
    for addr in preferred.into_iter().chain(rest) {
        if !order.iter().any(|a| a == addr) {
            order.push(addr.to_string());
        }
    }
    health.healthy_first(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::ring::{Ring, RingMember};

    /// Members a, b, c on ports 11, 12, 13; `matching` gives the status the
    /// fingerprint of the ring the client computes.
    fn topology(matching: bool) -> Topology {
        let ring = Ring::with_members(["a", "b", "c"].map(RingMember::new), 16);
        let fingerprint = if matching { ring.fingerprint() } else { 0 };
        let status = format!(
            r#"{{"n":2,"vnodes_per_node":16,"ring_fingerprint":"{fingerprint:016x}","members":[
                {{"id":"a","http":"127.0.0.1:11"}},{{"id":"b","http":"127.0.0.1:12"}},
                {{"id":"c","http":"127.0.0.1:13"}}]}}"#
        );
        Topology::from_ring(status.as_bytes()).unwrap()
    }

    fn all() -> Vec<String> {
        (11..=13).map(|p| format!("127.0.0.1:{p}")).collect()
    }

    #[test]
    fn partition_aware_tries_the_preference_list_then_everyone_else() {
        let topology = topology(true);
        let health = Health::default();
        let seeds = vec!["127.0.0.1:13".to_string()];
        let order = candidates(&topology, Routing::PartitionAware, &health, b"k", &seeds, 0);
        let pref = topology.preference_list(b"k");
        assert_eq!(pref.len(), 2);
        assert_eq!(order[..2], pref);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, all(), "every member once");

        // A node marked down goes last, until it is marked up again.
        health.mark_down(pref[0]);
        let order = candidates(&topology, Routing::PartitionAware, &health, b"k", &seeds, 0);
        assert_eq!(order[0], pref[1]);
        assert_eq!(order[2], pref[0]);
        health.mark_up(pref[0]);
        let order = candidates(&topology, Routing::PartitionAware, &health, b"k", &seeds, 0);
        assert_eq!(order[0], pref[0]);
    }

    #[test]
    fn generic_and_unroutable_rotate_over_the_seeds_first() {
        let seeds = vec!["127.0.0.1:12".to_string(), "127.0.0.1:13".to_string()];
        let health = Health::default();
        for (topology, routing) in [
            (topology(true), Routing::Generic),
            (topology(false), Routing::PartitionAware),
        ] {
            let order = |first| candidates(&topology, routing, &health, b"k", &seeds, first);
            assert_eq!(order(0), ["127.0.0.1:12", "127.0.0.1:13", "127.0.0.1:11"]);
            assert_eq!(order(1), ["127.0.0.1:13", "127.0.0.1:12", "127.0.0.1:11"]);
            assert_eq!(order(2), order(0));
        }
    }
}
