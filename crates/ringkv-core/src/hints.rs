//! Sloppy quorum and hinted handoff: when a preference-list node is down or
//! silent, the coordinator writes to the next healthy node past the list
//! instead, with a *hint* naming the intended owner; that stand-in keeps the
//! hint durably and hands the data back once the owner is up again.

use crate::Millis;
use serde::{Deserialize, Serialize};

/// Limits and pacing of hints (the `[hints]` config section).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HintSettings {
    /// Hints a stand-in keeps at most; beyond it new hints are refused (the
    /// write then needs other acks) and counted as dropped.
    pub max_hints: usize,
    /// Hints older than this are dropped instead of delivered (Cassandra's
    /// `max_hint_window`): anti-entropy repairs such owners instead.
    pub max_age_ms: Millis,
    /// How often a stand-in tries to hand its hints back.
    pub delivery_interval_ms: Millis,
    /// Hints per delivery message.
    pub delivery_batch: usize,
}

impl Default for HintSettings {
    fn default() -> Self {
        HintSettings {
            max_hints: 100_000,
            max_age_ms: 3 * 60 * 60 * 1000,
            delivery_interval_ms: 1000,
            delivery_batch: 128,
        }
    }
}
