//! What the node's own store holds, counted as it changes: keys and their
//! bytes, kept on every write and every drop of a handed-off key, so
//! `/status`, Redis `INFO` and `/metrics` read two numbers instead of
//! scanning the store (Garage keeps its table sizes the same way).
//!
//! A restart starts them from the full scan that builds the anti-entropy
//! trees at open (the node does it anyway), and every later tree rebuild
//! (a ring change, `repair --rebuild`) counts afresh from its own scan, so
//! the numbers are exact, not fjall's estimates.

use crate::message::encoded_len;
use crate::siblings::SiblingSet;
use serde::Serialize;

/// Keys in the store and their logical size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    /// Keys holding a sibling set, tombstones included (a deleted key keeps
    /// its tombstone until handoff drops it).
    pub keys: u64,
    /// Bytes of every stored key plus its encoded sibling set: the data's
    /// logical size, not the engine's files (no compression, journal or
    /// LSM overhead), so it moves exactly with writes.
    pub bytes: u64,
}

impl StoreCounts {
    /// The logical size of `key` holding `set`, bytes.
    pub fn size_of(key: &[u8], set: &SiblingSet) -> u64 {
        (key.len() + encoded_len(set)) as u64
    }

    /// `key` now holds `set` (it held nothing before).
    pub fn add(&mut self, key: &[u8], set: &SiblingSet) {
        if !set.is_empty() {
            self.keys += 1;
            self.bytes += Self::size_of(key, set);
        }
    }

    /// `key`, which held `set`, is gone from the store.
    pub fn remove(&mut self, key: &[u8], set: &SiblingSet) {
        if !set.is_empty() {
            self.keys = self.keys.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(Self::size_of(key, set));
        }
    }

    /// `key` held `old` (empty: nothing) and now holds `new`.
    pub fn replace(&mut self, key: &[u8], old: &SiblingSet, new: &SiblingSet) {
        self.remove(key, old);
        self.add(key, new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::siblings::WriteLimits;
    use crate::version::CausalContext;
    use crate::NodeId;

    fn set(value: &[u8]) -> SiblingSet {
        let mut set = SiblingSet::new();
        let limits = WriteLimits {
            max_siblings: 8,
            max_clock_entries: 8,
            young_clock_ms: 0,
            min_counter: 0,
        };
        let (node, context) = (NodeId::new("a"), CausalContext::default());
        set.write(&node, &context, Some(value.to_vec()), 1, limits)
            .expect("a write into an empty set");
        set
    }

    #[test]
    fn new_key_overwrite_and_removal_move_the_counts() {
        let mut counts = StoreCounts::default();
        let (one, two) = (set(b"v"), set(b"a longer value"));
        counts.replace(b"k", &SiblingSet::new(), &one);
        assert_eq!(counts.keys, 1);
        assert_eq!(counts.bytes, StoreCounts::size_of(b"k", &one));
        counts.replace(b"k", &one, &two);
        assert_eq!(counts.keys, 1, "an overwrite adds no key");
        assert_eq!(counts.bytes, StoreCounts::size_of(b"k", &two));
        counts.add(b"other", &one);
        counts.remove(b"k", &two);
        assert_eq!(counts.keys, 1);
        assert_eq!(counts.bytes, StoreCounts::size_of(b"other", &one));
        counts.add(b"nothing", &SiblingSet::new());
        assert_eq!(counts.keys, 1, "an empty set is no key");
    }
}
