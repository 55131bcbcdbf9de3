//! The in-memory engine: for tests, the simulator, and `engine = "memory"`.
//!
//! It keeps each key and value exactly as the disk engine stores them (see
//! [`crate::codec`]: keys prefixed by their ring token, values encoded), so
//! code tested against it goes through the same encoding, ordering, size
//! checks and errors as production. Hints are kept the same way, in a map of
//! their own under the disk engine's hint keys (`len ++ owner ++ key`), so
//! [`Store::scan_hints`] visits them in the same order. Nothing survives the
//! process; [`Store::sync`] does nothing.

use crate::codec;
use ringkv_core::ring::Token;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::{Hint, Store, StoreError};
use ringkv_core::NodeId;
use std::collections::BTreeMap;

/// A [`Store`] in a `BTreeMap` from physical keys (`token ++ key`) to
/// encoded values, and another from hint keys to encoded hints.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Hint key (`len ++ owner ++ key`, [`codec::hint_key`]) to encoded hint.
    hints: BTreeMap<Vec<u8>, Vec<u8>>,
    counter_lease: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys stored (hints not counted).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is stored (hints not counted).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of hints stored.
    pub fn hint_count(&self) -> usize {
        self.hints.len()
    }

    /// Store raw bytes as a key's value, bypassing the encoder (tests only).
    #[cfg(test)]
    pub(crate) fn put_raw(&mut self, key: &[u8], bytes: Vec<u8>) {
        self.map.insert(codec::physical_key(key), bytes);
    }

    /// Store raw bytes under a raw physical key (tests only).
    #[cfg(test)]
    pub(crate) fn put_raw_physical(&mut self, physical: Vec<u8>, bytes: Vec<u8>) {
        self.map.insert(physical, bytes);
    }

    /// Store raw bytes under a raw hint key, bypassing the encoder (tests
    /// only).
    #[cfg(test)]
    pub(crate) fn put_raw_hint(&mut self, stored: Vec<u8>, bytes: Vec<u8>) {
        self.hints.insert(stored, bytes);
    }
}

/// Two stores are equal when they hold the same sibling sets (encodings are
/// canonical). Neither hints nor the counter lease count: the lease is the
/// owning node's bookkeeping, and hints are the copies a node keeps *for
/// other nodes* until it hands them over, so two replicas that hold the same
/// data are equal whatever hints each happens to hold (anti-entropy tests
/// compare replicas this way). Compare [`Store::scan_hints`] output to check
/// hints.
impl PartialEq for MemoryStore {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl Eq for MemoryStore {}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<SiblingSet>, StoreError> {
        if !codec::is_storable_key(key) {
            return Ok(None);
        }
        self.map
            .get(&codec::physical_key(key))
            .map(|bytes| codec::decode(bytes))
            .transpose()
    }

    fn put(&mut self, key: &[u8], siblings: &SiblingSet) -> Result<(), StoreError> {
        codec::check_key(key)?;
        let bytes = codec::encode(siblings)?;
        self.map.insert(codec::physical_key(key), bytes);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        // A key `put` refuses was never stored: nothing to remove.
        if codec::is_storable_key(key) {
            self.map.remove(&codec::physical_key(key));
        }
        Ok(())
    }

    fn put_hint(&mut self, owner: &NodeId, key: &[u8], hint: &Hint) -> Result<(), StoreError> {
        let stored = codec::hint_key(owner, key)?;
        let bytes = codec::encode_hint(hint)?;
        self.hints.insert(stored, bytes);
        Ok(())
    }

    fn get_hint(&self, owner: &NodeId, key: &[u8]) -> Result<Option<Hint>, StoreError> {
        let Ok(stored) = codec::hint_key(owner, key) else {
            return Ok(None);
        };
        self.hints
            .get(&stored)
            .map(|bytes| codec::decode_hint(bytes))
            .transpose()
    }

    fn delete_hint(&mut self, owner: &NodeId, key: &[u8]) -> Result<(), StoreError> {
        // A hint `put_hint` refuses was never stored: nothing to remove.
        if let Ok(stored) = codec::hint_key(owner, key) {
            self.hints.remove(&stored);
        }
        Ok(())
    }

    fn scan_hints(
        &self,
        visit: &mut dyn FnMut(&NodeId, &[u8], &Hint) -> bool,
    ) -> Result<(), StoreError> {
        codec::visit_hints(self.hints.iter().map(Ok), visit)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn counter_lease(&self) -> Result<u64, StoreError> {
        Ok(self.counter_lease)
    }

    fn set_counter_lease(&mut self, lease: u64) -> Result<(), StoreError> {
        self.counter_lease = lease;
        Ok(())
    }

    fn scan(
        &self,
        from: Token,
        to: Token,
        visit: &mut dyn FnMut(&[u8], &SiblingSet) -> bool,
    ) -> Result<(), StoreError> {
        let (start, end) = codec::scan_bounds(from, to)?;
        let range = (
            start.as_ref().map(|b| b.as_slice()),
            end.as_ref().map(|b| b.as_slice()),
        );
        for (physical, bytes) in self.map.range::<[u8], _>(range) {
            let (token, key) = codec::split_physical_key(physical)?;
            let set = codec::decode_scanned(token, bytes)?;
            if !visit(key, &set) {
                break;
            }
        }
        Ok(())
    }
}
