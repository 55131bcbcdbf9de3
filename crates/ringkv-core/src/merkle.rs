//! Merkle trees over one token range, for anti-entropy between replicas.
//!
//! The range is cut into `2^depth` equal slices (the leaves). A leaf's hash
//! is the XOR of [`item_hash`] over the (key, sibling set) pairs in its
//! slice: order-independent, so replicas holding the same sibling sets have
//! the same leaves whatever order the writes arrived in, and updatable in
//! O(1) per write (XOR the old version out, the new one in) with no rescan.
//! Inner nodes hash their two children; they are recomputed lazily, only
//! when the tree is compared, so a write never pays for them.

use crate::range::TokenRange;
use crate::ring::Ring;
use crate::siblings::SiblingSet;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// A position in the tree: `level` 0 is the root, `depth` the leaves;
/// `index` counts nodes of that level from the left.
pub type Level = u8;

/// Digest of one key's state. Sibling sets are canonical (sorted), so equal
/// states on two replicas give equal digests.
pub fn item_hash(key: &[u8], siblings: &SiblingSet) -> u64 {
    let mut h = Xxh3::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    // The set's postcard encoding streams into the hash: no copy of it
    // (a 1 MiB value was encoded into a fresh buffer for every hash).
    postcard::serialize_with_flavor(siblings, Hashing(h)).unwrap_or_else(|_| Xxh3::new().digest())
}

/// What a leaf's hash changes by when `key` goes from `old` to `new`
/// (leaves are the XOR of their keys' [`item_hash`]es; an empty state is
/// no key).
pub fn change_hash(key: &[u8], old: &SiblingSet, new: &SiblingSet) -> u64 {
    [old, new]
        .into_iter()
        .filter(|state| !state.is_empty())
        .fold(0, |change, state| change ^ item_hash(key, state))
}

/// A postcard output that hashes what it is given instead of storing it.
struct Hashing(Xxh3);

impl postcard::ser_flavors::Flavor for Hashing {
    type Output = u64;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.update(&[byte]);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.update(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<u64> {
        Ok(self.0.digest())
    }
}

#[derive(Clone, Debug)]
pub struct MerkleTree {
    range: TokenRange,
    depth: Level,
    /// `levels[l]` holds the `2^l` hashes of level `l`; the last is the leaves.
    levels: Vec<Vec<u64>>,
    /// Inner levels are stale after a leaf changed.
    dirty: bool,
}

impl MerkleTree {
    /// An empty tree over `range` with `2^depth` leaves (depth at most 16).
    pub fn new(range: TokenRange, depth: Level) -> Self {
        let depth = depth.min(16);
        MerkleTree {
            range,
            depth,
            levels: (0..=depth).map(|l| vec![0; 1 << l]).collect(),
            dirty: false,
        }
    }

    pub fn range(&self) -> TokenRange {
        self.range
    }

    pub fn depth(&self) -> Level {
        self.depth
    }

    /// The leaf whose slice holds `key`.
    pub fn leaf_of(&self, key: &[u8]) -> u32 {
        self.range.slice_of(Ring::key_token(key), 1 << self.depth) as u32
    }

    /// The token interval a leaf covers, as storage-scan spans.
    pub fn leaf_spans(&self, leaf: u32) -> Vec<(u64, u64)> {
        let parts = 1u128 << self.depth;
        let len = self.range.len();
        let first = (leaf as u128 * len).div_ceil(parts);
        let next = ((leaf as u128 + 1) * len).div_ceil(parts);
        if first >= next {
            return Vec::new();
        }
        // Offsets first..next map to tokens start+1+first ..= start+next.
        let lo = self.range.start.wrapping_add(1).wrapping_add(first as u64);
        let hi = self.range.start.wrapping_add(next as u64);
        TokenRange::new(lo.wrapping_sub(1), hi).spans()
    }

    /// Account for `key` changing from `old` to `new` (either may be empty).
    pub fn update(&mut self, key: &[u8], old: &SiblingSet, new: &SiblingSet) {
        self.apply(key, change_hash(key, old, new));
    }

    /// Account for a change of `key` whose [`change_hash`] is `change`:
    /// one hash for every tree a key is in, not two encodings per tree.
    pub fn apply(&mut self, key: &[u8], change: u64) {
        let leaf = self.leaf_of(key) as usize;
        let leaves = self.levels.last_mut().expect("a tree has leaves");
        leaves[leaf] ^= change;
        self.dirty |= change != 0;
    }

    /// The hash at (`level`, `index`); 0 outside the tree.
    pub fn hash(&mut self, level: Level, index: u32) -> u64 {
        self.refresh();
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(index as usize))
            .copied()
            .unwrap_or(0)
    }

    pub fn root(&mut self) -> u64 {
        self.hash(0, 0)
    }

    /// Forget everything (before a rebuild from storage).
    pub fn clear(&mut self) {
        for level in &mut self.levels {
            level.fill(0);
        }
        self.dirty = false;
    }

    fn refresh(&mut self) {
        if !self.dirty {
            return;
        }
        for l in (0..self.depth as usize).rev() {
            let (upper, lower) = self.levels.split_at_mut(l + 1);
            for (i, slot) in upper[l].iter_mut().enumerate() {
                *slot = combine(lower[0][2 * i], lower[0][2 * i + 1]);
            }
        }
        self.dirty = false;
    }
}

/// An inner node: empty subtrees stay 0 so sparse trees compare cheaply.
fn combine(left: u64, right: u64) -> u64 {
    if left == 0 && right == 0 {
        return 0;
    }
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&left.to_le_bytes());
    bytes[8..].copy_from_slice(&right.to_le_bytes());
    xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::siblings::WriteLimits;
    use crate::version::CausalContext;

    fn set(value: &str) -> SiblingSet {
        let mut s = SiblingSet::new();
        let limits = WriteLimits {
            max_siblings: 4,
            max_clock_entries: 4,
            young_clock_ms: 20_000,
            min_counter: 0,
        };
        s.write(
            &"n1".into(),
            &CausalContext::new(),
            Some(value.into()),
            1,
            limits,
        )
        .unwrap();
        s
    }

    const WHOLE: TokenRange = TokenRange { start: 0, end: 0 };

    /// Streaming the encoding into the hash gives what hashing the
    /// encoded bytes gave: digests stay comparable with older nodes.
    #[test]
    fn an_item_hash_is_the_hash_of_the_encoded_state() {
        let state = set(&"v".repeat(5000));
        let mut h = Xxh3::new();
        h.update(&3u64.to_le_bytes());
        h.update(b"key");
        h.update(&postcard::to_stdvec(&state).unwrap());
        assert_eq!(item_hash(b"key", &state), h.digest());
        assert_eq!(change_hash(b"key", &SiblingSet::new(), &state), h.digest());
        assert_eq!(change_hash(b"key", &state, &state), 0);
    }

    #[test]
    fn equal_contents_give_equal_roots_in_any_order() {
        let (mut a, mut b) = (MerkleTree::new(WHOLE, 6), MerkleTree::new(WHOLE, 6));
        let empty = SiblingSet::new();
        for i in 0..50 {
            a.update(format!("k{i}").as_bytes(), &empty, &set("v"));
        }
        for i in (0..50).rev() {
            b.update(format!("k{i}").as_bytes(), &empty, &set("v"));
        }
        assert_eq!(a.root(), b.root());
        assert_ne!(a.root(), 0);
    }

    #[test]
    fn an_update_changes_only_its_leaf_path_and_can_be_undone() {
        let mut t = MerkleTree::new(WHOLE, 4);
        let empty = SiblingSet::new();
        t.update(b"k", &empty, &set("v1"));
        let before = t.root();
        let leaf = t.leaf_of(b"k");
        let sibling_leaf = leaf ^ 1;
        let sibling_hash = t.hash(4, sibling_leaf);
        t.update(b"k", &set("v1"), &set("v2"));
        assert_ne!(t.root(), before);
        assert_eq!(t.hash(4, sibling_leaf), sibling_hash);
        t.update(b"k", &set("v2"), &set("v1"));
        assert_eq!(t.root(), before);
        t.update(b"k", &set("v1"), &empty);
        assert_eq!(t.root(), 0, "removing the only key empties the tree");
    }

    #[test]
    fn leaf_spans_tile_the_range_and_hold_their_keys() {
        for range in [
            WHOLE,
            TokenRange::new(100, 5_000),
            TokenRange::new(u64::MAX - 1_000, 3_000),
        ] {
            let t = MerkleTree::new(range, 3);
            let total: u128 = (0..8)
                .flat_map(|l| t.leaf_spans(l))
                .map(|(a, b)| (b - a) as u128 + 1)
                .sum();
            assert_eq!(total, range.len(), "{range:?}");
            for i in 0..2000u32 {
                let key = format!("key{i}");
                let token = Ring::key_token(key.as_bytes());
                if range.contains(token) {
                    let spans = t.leaf_spans(t.leaf_of(key.as_bytes()));
                    assert!(spans.iter().any(|&(a, b)| a <= token && token <= b));
                }
            }
        }
    }
}
