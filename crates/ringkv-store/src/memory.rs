//! The in-memory engine: for tests, the simulator, and `engine = "memory"`.
//!
//! It keeps each key and value exactly as the disk engine stores them (see
//! [`crate::codec`]: keys prefixed by their ring token, values encoded), so
//! code tested against it goes through the same encoding, ordering, size
//! checks and errors as production. Nothing survives the
//! process; [`Store::sync`] does nothing.

use crate::codec;
use ringkv_core::ring::Token;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::{Store, StoreError};
use std::collections::BTreeMap;

/// A [`Store`] in a `BTreeMap` from physical keys (`token ++ key`) to
/// encoded values.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    counter_lease: u64,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
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
}

/// Two stores are equal when they hold the same sibling sets (encodings are
/// canonical); the counter lease is the owning node's bookkeeping, not data.
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
