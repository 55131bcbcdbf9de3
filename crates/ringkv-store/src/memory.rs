//! The in-memory engine: for tests, the simulator, and `engine = "memory"`.
//!
//! It keeps each value encoded exactly as the disk engine stores it (see
//! [`crate::codec`]), so code tested against it goes through the same
//! encoding, size checks and errors as production. Nothing survives the
//! process; [`Store::sync`] does nothing.

use crate::codec;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::{Store, StoreError};
use std::collections::BTreeMap;

/// A [`Store`] in a `BTreeMap` of encoded values.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
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
        self.map.insert(key.to_vec(), bytes);
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<SiblingSet>, StoreError> {
        if !codec::is_storable_key(key) {
            return Ok(None);
        }
        self.map
            .get(key)
            .map(|bytes| codec::decode(bytes))
            .transpose()
    }

    fn put(&mut self, key: &[u8], siblings: &SiblingSet) -> Result<(), StoreError> {
        codec::check_key(key)?;
        let bytes = codec::encode(siblings)?;
        self.map.insert(key.to_vec(), bytes);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
