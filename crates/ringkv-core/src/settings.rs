//! Cluster-wide protocol settings: replication factor, quorums, timeouts and
//! the limits every request is checked against.

use crate::anti_entropy::AntiEntropySettings;
use crate::gossip::MembershipSettings;
use crate::hints::HintSettings;
use crate::keyspace;
use crate::ring;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// The longest key the storage engines can hold as data *and* as a hint:
/// fjall keys are at most `u16::MAX` bytes, and a hint's key carries the
/// owner's id (up to 64 bytes) behind a length byte — more than the 8-byte
/// token prefix that orders data keys by ring position.
pub const MAX_STORABLE_KEY: usize = u16::MAX as usize - 1 - 64;

/// Replication and limit settings (the `[replication]` section of a node's
/// config). The ones placement and replication depend on must be the same
/// on every node: see [`ClusterSettings`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Replicas per key (N).
    pub n: usize,
    /// Default read quorum (R).
    pub r: usize,
    /// Default write quorum (W).
    pub w: usize,
    /// Virtual nodes per physical node on the ring.
    pub vnodes: u32,
    /// How long a coordinator waits for its quorum before it answers 503.
    pub request_timeout_ms: u64,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Concurrent versions a key may hold before blind writes are refused
    /// (writes that resolve siblings with a context are always accepted).
    pub max_siblings: usize,
    /// Entries kept in a version's causal context before the oldest are
    /// pruned (see [`CausalContext::prune`](crate::version::CausalContext::prune)).
    pub max_clock_entries: usize,
    /// Context entries whose last event is younger than this are never
    /// pruned: a recent write may still be on its way to a replica, which
    /// needs the entry to see it superseded (Riak's `young_vclock`, 20 s).
    pub young_clock_ms: u64,
    /// Background Merkle exchanges; configured in its own `[anti_entropy]`
    /// section, which the server copies in here.
    #[serde(skip)]
    pub anti_entropy: AntiEntropySettings,
    /// Gossip and failure detection (`[membership]` section).
    #[serde(skip)]
    pub membership: MembershipSettings,
    /// Sloppy quorum and hinted handoff (`[hints]` section).
    #[serde(skip)]
    pub hints: HintSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            n: 3,
            r: 2,
            w: 2,
            vnodes: 128,
            request_timeout_ms: 2000,
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            max_siblings: 64,
            max_clock_entries: 32,
            young_clock_ms: 20_000,
            anti_entropy: AntiEntropySettings::default(),
            membership: MembershipSettings::default(),
            hints: HintSettings::default(),
        }
    }
}

impl Settings {
    /// Check the settings make sense together; the error is one sentence.
    pub fn validate(&self) -> Result<(), String> {
        if self.n == 0 {
            return Err("replication n must be at least 1".into());
        }
        for (name, q) in [("r", self.r), ("w", self.w)] {
            if q == 0 || q > self.n {
                return Err(format!(
                    "replication {name} = {q} must be within 1..={}",
                    self.n
                ));
            }
        }
        if self.max_key_bytes == 0 || self.max_key_bytes > MAX_STORABLE_KEY {
            return Err(format!(
                "max_key_bytes must be within 1..={MAX_STORABLE_KEY}"
            ));
        }
        if self.vnodes == 0 {
            return Err("replication vnodes must be at least 1".into());
        }
        if self.max_siblings == 0 || self.max_clock_entries == 0 {
            return Err("max_siblings and max_clock_entries must be at least 1".into());
        }
        Ok(())
    }

    /// How long a node that forwarded a request waits for the coordinator
    /// before trying the next node of the preference list: the coordinator's
    /// own quorum wait plus a margin for the hop.
    pub fn forward_timeout_ms(&self) -> u64 {
        self.request_timeout_ms + 500
    }

    /// The settings every node of the cluster must share.
    pub fn cluster(&self) -> ClusterSettings {
        ClusterSettings {
            n: self.n,
            r: self.r,
            w: self.w,
            vnodes: self.vnodes,
            placement_version: ring::PLACEMENT_VERSION,
            keyspace_version: keyspace::POLICY_VERSION,
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
            max_siblings: self.max_siblings,
            max_clock_entries: self.max_clock_entries,
        }
    }

    /// The largest inter-node frame: a full sibling set of maximal values
    /// plus room for keys and clocks.
    pub fn max_frame_bytes(&self) -> usize {
        let per_sibling = self.max_value_bytes + self.max_clock_entries * 96 + 128;
        self.max_siblings * per_sibling + self.max_key_bytes + 64 * 1024
    }
}

/// The settings that must agree cluster-wide, because a node that differs in
/// one of them would store, count or accept data differently from its peers:
///
/// - `n`: which nodes replicate a key. A node with another N computes other
///   preference lists, and drops copies it believes it no longer holds.
/// - `r`, `w`: the quorums a request gets when it names none. A request's
///   meaning must not depend on which node receives it.
/// - `vnodes`: the ring's tokens, hence every preference list.
/// - `placement_version` ([`ring::PLACEMENT_VERSION`]): how ids and keys hash
///   to tokens and how preference lists are walked.
/// - `keyspace_version` ([`keyspace::POLICY_VERSION`]): which keys resolve by
///   last-write-wins instead of siblings.
/// - `max_key_bytes`, `max_value_bytes`, `max_siblings`,
///   `max_clock_entries`: what a replica accepts, and they derive
///   [`Settings::max_frame_bytes`]; a peer with smaller limits would refuse
///   or cut off the replication messages of one with larger ones.
///
/// Per-node tuning stays out, because nodes may differ in it without
/// storing anything differently: `request_timeout_ms` (how long this node's
/// coordinator waits), anti-entropy pacing, gossip and failure-detector
/// timing, hint limits, and storage (engine, fsync).
///
/// The set is checked in three places: the data directory remembers it (a
/// restart with other values is refused), the inter-node handshake carries
/// it (a peer with other values is refused), and gossip spreads its
/// [`fingerprint`](ClusterSettings::fingerprint) (a member with another one
/// is never used as a replica or coordinator, and shows in `/status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    pub n: usize,
    pub r: usize,
    pub w: usize,
    pub vnodes: u32,
    pub placement_version: u32,
    pub keyspace_version: u32,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_siblings: usize,
    pub max_clock_entries: usize,
}

/// The first setting in which two [`ClusterSettings`] differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingDiff {
    /// The setting as a config names it, e.g. `replication n`.
    pub setting: &'static str,
    pub ours: u64,
    pub theirs: u64,
}

impl ClusterSettings {
    /// Every setting with the name sentences give it, in one fixed order:
    /// the single list both [`fingerprint`](Self::fingerprint) and
    /// [`diff`](Self::diff) go by, so a setting added here is both
    /// fingerprinted and compared.
    fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("replication n", self.n as u64),
            ("replication r", self.r as u64),
            ("replication w", self.w as u64),
            ("replication vnodes", u64::from(self.vnodes)),
            (
                "placement scheme version",
                u64::from(self.placement_version),
            ),
            ("keyspace policy version", u64::from(self.keyspace_version)),
            ("replication max_key_bytes", self.max_key_bytes as u64),
            ("replication max_value_bytes", self.max_value_bytes as u64),
            ("replication max_siblings", self.max_siblings as u64),
            (
                "replication max_clock_entries",
                self.max_clock_entries as u64,
            ),
        ]
    }

    /// A 64-bit digest of every setting, stable across processes and
    /// platforms, for gossip to carry in each member's entry. Never 0,
    /// which gossip uses for "not known yet".
    pub fn fingerprint(&self) -> u64 {
        let mut bytes = Vec::new();
        for (name, value) in self.named() {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        xxh3_64(&bytes).max(1)
    }

    /// The first setting (in [`named`](Self::named) order) where `theirs`
    /// differs from these, if any.
    pub fn diff(&self, theirs: &ClusterSettings) -> Option<SettingDiff> {
        self.named()
            .into_iter()
            .zip(theirs.named())
            .find(|((_, ours), (_, theirs))| ours != theirs)
            .map(|((setting, ours), (_, theirs))| SettingDiff {
                setting,
                ours,
                theirs,
            })
    }
}

impl SettingDiff {
    /// The difference as one sentence, each side named by its holder:
    /// `replication n differs: this node has 2, peer n2 has 3`.
    pub fn sentence(&self, ours: &str, theirs: &str) -> String {
        format!(
            "{} differs: {ours} has {}, {theirs} has {}",
            self.setting, self.ours, self.theirs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(change: impl FnOnce(&mut Settings)) -> ClusterSettings {
        let mut settings = Settings::default();
        change(&mut settings);
        settings.cluster()
    }

    #[test]
    fn a_settings_difference_is_one_sentence_naming_the_first_setting_and_both_values() {
        let mine = with(|s| s.n = 2);
        let peer = Settings::default().cluster();
        let diff = mine.diff(&peer).expect("n differs");
        assert_eq!(
            diff.sentence("this node", "peer n2"),
            "replication n differs: this node has 2, peer n2 has 3"
        );
        let both = with(|s| {
            s.vnodes = 64;
            s.max_value_bytes = 10;
        });
        let first = both.diff(&peer).expect("two settings differ");
        assert_eq!(
            (first.setting, first.ours, first.theirs),
            ("replication vnodes", 64, 128)
        );
    }

    #[test]
    fn every_placement_setting_changes_the_fingerprint_and_tuning_does_not() {
        let base = Settings::default().cluster();
        let changed = [
            with(|s| s.n = 2),
            with(|s| s.r = 1),
            with(|s| s.w = 3),
            with(|s| s.vnodes = 64),
            with(|s| s.max_key_bytes = 10),
            with(|s| s.max_value_bytes = 10),
            with(|s| s.max_siblings = 10),
            with(|s| s.max_clock_entries = 10),
            ClusterSettings {
                placement_version: ring::PLACEMENT_VERSION + 1,
                ..base.clone()
            },
            ClusterSettings {
                keyspace_version: keyspace::POLICY_VERSION + 1,
                ..base.clone()
            },
        ];
        for other in &changed {
            assert_ne!(other.fingerprint(), base.fingerprint(), "{other:?}");
            assert!(base.diff(other).is_some(), "{other:?}");
        }
        let tuned = with(|s| {
            s.request_timeout_ms = 1;
            s.anti_entropy.interval_ms = 1;
            s.membership.gossip_interval_ms = 1;
            s.hints.max_hints = 1;
        });
        assert_eq!(tuned, base);
        assert_eq!(base.diff(&tuned), None);
    }
}
