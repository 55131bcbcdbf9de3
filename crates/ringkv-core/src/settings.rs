//! Cluster-wide protocol settings: replication factor, quorums, timeouts and
//! the limits every request is checked against.

use crate::anti_entropy::AntiEntropySettings;
use crate::gossip::MembershipSettings;
use crate::hints::HintSettings;
use serde::{Deserialize, Serialize};

/// The longest key the storage engines can hold as data *and* as a hint:
/// fjall keys are at most `u16::MAX` bytes, and a hint's key carries the
/// owner's id (up to 64 bytes) behind a length byte — more than the 8-byte
/// token prefix that orders data keys by ring position.
pub const MAX_STORABLE_KEY: usize = u16::MAX as usize - 1 - 64;

/// Replication and limit settings (the `[replication]` section of a node's
/// config). Every node of a cluster should use the same values.
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

    /// The largest inter-node frame: a full sibling set of maximal values
    /// plus room for keys and clocks.
    pub fn max_frame_bytes(&self) -> usize {
        let per_sibling = self.max_value_bytes + self.max_clock_entries * 96 + 128;
        self.max_siblings * per_sibling + self.max_key_bytes + 64 * 1024
    }
}
