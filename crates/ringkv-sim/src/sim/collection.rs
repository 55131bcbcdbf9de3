//! Tombstone collection must finish, not only be safe. The checker's rule
//! `nothing_collected_comes_back` attacks its safety; this one its
//! liveness: once the faults are healed, every member is up and the
//! replicas agree, each key dead on its replicas (tombstones only, values
//! that expired, or an
//! emptied Redis collection) is collected within a bounded quiet time. CI
//! found leaders that dropped a dead key for good because a hint of it
//! was still being delivered.

use super::*;

/// Quiet time collection gets to finish: many rounds, and hint deliveries.
const COLLECTION_LIMIT_MS: Millis = 30_000;

impl Sim {
    /// Keys still dead on some replica after [`COLLECTION_LIMIT_MS`] of
    /// quiet, as violations; none when collection is off in this seed or
    /// a member is down (a member away holds collection back by design).
    pub(super) fn uncollected(&mut self) -> Vec<String> {
        if self.settings.gc.grace_ms == 0 || !self.everyone_up() {
            return Vec::new();
        }
        // Values expired by now have expired by every node's clock too
        // (clocks run ahead of true time here): they are dead as well.
        let now = self.now;
        self.run_until(
            COLLECTION_LIMIT_MS,
            CONVERGENCE_CHECK_MS,
            Activity::Quiet,
            |s| s.dead_keys(now).is_empty(),
        );
        self.dead_keys(now)
            .into_iter()
            .map(|(key, holders)| {
                format!(
                    "tombstone never collected: {key:?} is dead on {holders:?} after \
                     {COLLECTION_LIMIT_MS} ms with every member up"
                )
            })
            .collect()
    }

    /// Every node is up, or gone from the cluster for good by leaving.
    fn everyone_up(&self) -> bool {
        self.nodes
            .values()
            .all(|n| n.node.is_some() || (n.crashed.is_none() && !n.dead_for_good))
    }

    /// Keys dead at `at` (true time) on some replica, with the replicas
    /// holding them so.
    fn dead_keys(&self, at: Millis) -> Vec<(String, Vec<String>)> {
        let Some(ring) = self.serving_ring() else {
            return Vec::new();
        };
        self.all_keys()
            .filter_map(|key| {
                let holders: Vec<String> = self
                    .replica_states(ring, key)
                    .into_iter()
                    .filter(|(_, set)| {
                        !set.is_empty() && keyspace::is_dead(key.as_bytes(), set, at)
                    })
                    .map(|(node, _)| node)
                    .collect();
                (!holders.is_empty()).then(|| (key.clone(), holders))
            })
            .collect()
    }
}
