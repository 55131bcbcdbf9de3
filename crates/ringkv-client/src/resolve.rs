//! Ready-made resolvers for [`Client::update`](crate::Client::update):
//! each turns a key's siblings into the one value to write back.

use crate::item_set::ItemSet;
use crate::versions::Version;

/// The sibling written last by its coordinator's clock; equal timestamps
/// are broken by the dot (node id, then counter), so every client picks
/// the same one. Clocks of different nodes can disagree, so "last" is
/// only as good as their synchronisation — the price of last-write-wins.
pub fn newest(siblings: &[Version]) -> Option<&Version> {
    siblings
        .iter()
        .max_by(|a, b| (a.timestamp, &a.dot).cmp(&(b.timestamp, &b.dot)))
}

/// Last-write-wins: the value of [`newest`] (empty when there are no
/// siblings). Concurrent writes other than the newest are dropped.
pub fn last_write_wins(siblings: &[Version]) -> Vec<u8> {
    newest(siblings)
        .map(|v| v.value.clone())
        .unwrap_or_default()
}

/// Set union of values in the [`ItemSet`] encoding (a shopping cart):
/// keeps every item any sibling added, minus every item any sibling
/// removed.
pub fn set_union(siblings: &[Version]) -> Vec<u8> {
    ItemSet::union(siblings).encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::version::Dot;

    fn version(value: &str, timestamp: u64, node: &str, counter: u64) -> Version {
        Version {
            value: value.as_bytes().to_vec(),
            timestamp,
            dot: Dot::new(node, counter),
        }
    }

    #[test]
    fn last_write_wins_takes_the_newest_timestamp() {
        let siblings = [
            version("old", 10, "n3", 9),
            version("new", 20, "n1", 1),
            version("mid", 15, "n2", 4),
        ];
        assert_eq!(last_write_wins(&siblings), b"new");
        assert_eq!(last_write_wins(&[]), b"");
    }

    #[test]
    fn timestamp_ties_are_broken_by_dot_whatever_the_order() {
        let a = version("a", 10, "n1", 7);
        let b = version("b", 10, "n2", 1);
        let c = version("c", 10, "n2", 3);
        for order in [
            [a.clone(), b.clone(), c.clone()],
            [c.clone(), b.clone(), a.clone()],
            [b.clone(), c.clone(), a.clone()],
        ] {
            assert_eq!(last_write_wins(&order), b"c");
        }
    }

    #[test]
    fn set_union_merges_carts() {
        let siblings = [
            version("apple\n-pear", 1, "n1", 1),
            version("pear\nfig", 2, "n2", 1),
        ];
        assert_eq!(set_union(&siblings), b"apple\nfig\n-pear");
    }
}
