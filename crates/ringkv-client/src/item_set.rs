//! A set of items stored as one value and merged by union: the shopping
//! cart of the Dynamo paper.
//!
//! **Encoding.** UTF-8 text, one entry per line (`\n`), sorted:
//! * `apple` — the item is in the set;
//! * `-apple` — the item was removed (a tombstone).
//!
//! **Merging.** Siblings merge by the union of both kinds of entry, and an
//! item with a tombstone is not in the set. The tombstone is what keeps a
//! removal removed: a plain union would bring the item back from any
//! sibling or stale replica that still lists it (the resurrected cart
//! items of the Dynamo paper). The price is that a removal is final — the
//! set is a two-phase set: adding a removed item again has no effect (add
//! a distinct item such as `apple#2` instead), and tombstones are kept for
//! good. A cart that must take items back after removing them needs an
//! observed-remove set, which tags each addition uniquely and lets a
//! removal cover only the tags it saw; this encoding stays simple instead.

use crate::versions::Version;
use std::collections::BTreeSet;

/// One item name that the encoding can carry: not empty, no line breaks,
/// and not starting with `-` (that marks a tombstone).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Item(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{item:?} cannot be a set item: {reason}")]
pub struct ItemError {
    item: String,
    reason: &'static str,
}

impl Item {
    pub fn new(name: impl Into<String>) -> Result<Item, ItemError> {
        let name = name.into();
        let reason = if name.is_empty() {
            "it is empty"
        } else if name.contains(['\n', '\r']) {
            "it contains a line break"
        } else if name.starts_with('-') {
            "it starts with '-', which marks a removed item"
        } else {
            return Ok(Item(name));
        };
        Err(ItemError { item: name, reason })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Items present and items removed; never both (a tombstone wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemSet {
    present: BTreeSet<String>,
    removed: BTreeSet<String>,
}

impl ItemSet {
    pub fn new() -> ItemSet {
        ItemSet::default()
    }

    /// Read a stored value. Total: any bytes decode (invalid UTF-8 lossily,
    /// blank lines skipped), so a value written by something else becomes
    /// a set of its lines rather than an error.
    pub fn decode(bytes: &[u8]) -> ItemSet {
        let mut set = ItemSet::new();
        for line in String::from_utf8_lossy(bytes).lines() {
            match line.strip_prefix('-') {
                Some(removed) if !removed.is_empty() => {
                    set.removed.insert(removed.to_string());
                }
                Some(_) => {}
                None if !line.is_empty() => {
                    set.present.insert(line.to_string());
                }
                None => {}
            }
        }
        set.drop_removed();
        set
    }

    /// The union of every sibling's set (empty when there are none).
    pub fn union(siblings: &[Version]) -> ItemSet {
        let mut set = ItemSet::new();
        for sibling in siblings {
            set.merge(&ItemSet::decode(&sibling.value));
        }
        set
    }

    pub fn merge(&mut self, other: &ItemSet) {
        self.present.extend(other.present.iter().cloned());
        self.removed.extend(other.removed.iter().cloned());
        self.drop_removed();
    }

    fn drop_removed(&mut self) {
        let removed = &self.removed;
        self.present.retain(|item| !removed.contains(item));
    }

    /// Add `item`; false when it was removed before, which is final.
    pub fn add(&mut self, item: &Item) -> bool {
        if self.removed.contains(item.as_str()) {
            return false;
        }
        self.present.insert(item.0.clone());
        true
    }

    /// Remove `item` for good, leaving a tombstone.
    pub fn remove(&mut self, item: &Item) {
        self.present.remove(item.as_str());
        self.removed.insert(item.0.clone());
    }

    pub fn contains(&self, item: &str) -> bool {
        self.present.contains(item)
    }

    /// The items in the set, sorted.
    pub fn items(&self) -> impl Iterator<Item = &str> {
        self.present.iter().map(String::as_str)
    }

    /// The removed items (tombstones), sorted.
    pub fn removed(&self) -> impl Iterator<Item = &str> {
        self.removed.iter().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.present.len()
    }

    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }

    /// The stored form: present items, then tombstones, one per line.
    pub fn encode(&self) -> Vec<u8> {
        let lines: Vec<String> = self
            .present
            .iter()
            .cloned()
            .chain(self.removed.iter().map(|item| format!("-{item}")))
            .collect();
        lines.join("\n").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::version::Dot;

    fn item(name: &str) -> Item {
        Item::new(name).unwrap()
    }

    fn sibling(value: &[u8]) -> Version {
        Version {
            value: value.to_vec(),
            timestamp: 0,
            dot: Dot::new("n1", 1),
        }
    }

    #[test]
    fn items_that_the_encoding_cannot_carry_are_refused() {
        for bad in ["", "-apple", "two\nlines", "cr\r"] {
            assert!(Item::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(item("apple #2").as_str(), "apple #2");
    }

    #[test]
    fn encoding_round_trips_and_is_canonical() {
        let mut set = ItemSet::new();
        set.add(&item("pear"));
        set.add(&item("apple"));
        set.remove(&item("fig"));
        assert_eq!(set.encode(), b"apple\npear\n-fig");
        assert_eq!(ItemSet::decode(&set.encode()), set);
        assert_eq!(ItemSet::decode(b""), ItemSet::new());
        assert_eq!(ItemSet::decode(b"\n-\n\xffx\n").items().count(), 1);
    }

    #[test]
    fn union_keeps_every_addition_and_every_removal() {
        // Two carts written concurrently from the same start {apple, pear}:
        // one removed pear and added fig, the other added kiwi.
        let a = b"apple\nfig\n-pear";
        let b = b"apple\nkiwi\npear";
        let merged = ItemSet::union(&[sibling(a), sibling(b)]);
        let items: Vec<&str> = merged.items().collect();
        assert_eq!(items, ["apple", "fig", "kiwi"]);
        assert_eq!(merged.removed().collect::<Vec<_>>(), ["pear"]);
        // Order and repetition of siblings do not matter.
        assert_eq!(
            ItemSet::union(&[sibling(b), sibling(a), sibling(b)]),
            merged
        );
    }

    #[test]
    fn a_removal_is_final() {
        let mut set = ItemSet::new();
        assert!(set.add(&item("apple")));
        set.remove(&item("apple"));
        assert!(!set.add(&item("apple")));
        assert!(!set.contains("apple"));
        assert!(set.is_empty());
        // A stale sibling that still lists it does not bring it back.
        let stale = ItemSet::decode(b"apple");
        set.merge(&stale);
        assert_eq!(set.len(), 0);
    }
}
