//! The storage seam: the protocol reads and writes whole sibling sets per key.
//!
//! Engines live in the `ringkv-store` crate (fjall on disk, memory for tests);
//! the core only sees this trait, so the simulator can keep a store across a
//! simulated crash while dropping the node's volatile state.

use crate::ring::Token;
use crate::siblings::SiblingSet;
use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};

/// A storage failure, reported to the client as a server error; never a panic.
#[derive(Debug, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StoreError(pub String);

/// A replica kept by a stand-in node for an owner that was down or silent
/// (sloppy quorum): handed back to the owner, then deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    /// When the stand-in first stored it; hints older than the configured
    /// age are dropped (and counted) instead of delivered.
    pub stored_at: Millis,
    pub siblings: SiblingSet,
}

pub trait Store {
    /// The stored sibling set of `key` (tombstones included), if any.
    fn get(&self, key: &[u8]) -> Result<Option<SiblingSet>, StoreError>;

    /// Replace the sibling set of `key`. Durable only after [`Store::sync`].
    fn put(&mut self, key: &[u8], siblings: &SiblingSet) -> Result<(), StoreError>;

    /// Remove `key` entirely (not a tombstone): ownership handoff drops the
    /// keys of ranges this node no longer replicates. Durable after `sync`.
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError>;

    /// Store (replace) the hint for `owner`'s copy of `key`, apart from the
    /// node's own data. Durable after [`Store::sync`].
    fn put_hint(&mut self, owner: &NodeId, key: &[u8], hint: &Hint) -> Result<(), StoreError>;

    /// The hint for `owner`'s copy of `key`, if one is stored.
    fn get_hint(&self, owner: &NodeId, key: &[u8]) -> Result<Option<Hint>, StoreError>;

    /// Forget the hint for `owner`'s copy of `key` (no error when absent).
    fn delete_hint(&mut self, owner: &NodeId, key: &[u8]) -> Result<(), StoreError>;

    /// Visit every stored hint, grouped by owner (all of an owner's hints
    /// one after another, keys in byte order within an owner), until `visit`
    /// returns false. The order of the owners is the engine's: the
    /// `ringkv-store` engines give shorter owner ids first, then byte order
    /// (their hint keys are length-prefixed), so do not rely on byte order.
    fn scan_hints(
        &self,
        visit: &mut dyn FnMut(&NodeId, &[u8], &Hint) -> bool,
    ) -> Result<(), StoreError>;

    /// Make every earlier `put` as durable as the engine's fsync policy says.
    /// The server calls it once per batch of events before it releases any
    /// acknowledgement (group commit).
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Visit every stored key whose ring token (`Ring::key_token`) lies in
    /// `from..=to`, in token order (keys of equal token in byte order), until
    /// `visit` returns false. Anti-entropy compares replicas range by range,
    /// so engines keep their data sorted by token.
    fn scan(
        &self,
        from: Token,
        to: Token,
        visit: &mut dyn FnMut(&[u8], &SiblingSet) -> bool,
    ) -> Result<(), StoreError>;

    /// The node's counter lease: every dot counter this node issued in an
    /// earlier life is below it (0 for a new store).
    fn counter_lease(&self) -> Result<u64, StoreError>;

    /// Raise the counter lease. Durable (fsynced) when it returns, whatever
    /// the fsync policy: after a power loss that took the last writes, the
    /// lease still keeps the node from issuing one of their dots again.
    fn set_counter_lease(&mut self, lease: u64) -> Result<(), StoreError>;
}

/// Lets a node own an engine chosen at run time (`Box<dyn Store + Send>`).
impl<T: Store + ?Sized> Store for Box<T> {
    fn get(&self, key: &[u8]) -> Result<Option<SiblingSet>, StoreError> {
        (**self).get(key)
    }

    fn put(&mut self, key: &[u8], siblings: &SiblingSet) -> Result<(), StoreError> {
        (**self).put(key, siblings)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        (**self).sync()
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        (**self).delete(key)
    }

    fn put_hint(&mut self, owner: &NodeId, key: &[u8], hint: &Hint) -> Result<(), StoreError> {
        (**self).put_hint(owner, key, hint)
    }

    fn get_hint(&self, owner: &NodeId, key: &[u8]) -> Result<Option<Hint>, StoreError> {
        (**self).get_hint(owner, key)
    }

    fn delete_hint(&mut self, owner: &NodeId, key: &[u8]) -> Result<(), StoreError> {
        (**self).delete_hint(owner, key)
    }

    fn scan_hints(
        &self,
        visit: &mut dyn FnMut(&NodeId, &[u8], &Hint) -> bool,
    ) -> Result<(), StoreError> {
        (**self).scan_hints(visit)
    }

    fn scan(
        &self,
        from: Token,
        to: Token,
        visit: &mut dyn FnMut(&[u8], &SiblingSet) -> bool,
    ) -> Result<(), StoreError> {
        (**self).scan(from, to, visit)
    }

    fn counter_lease(&self) -> Result<u64, StoreError> {
        (**self).counter_lease()
    }

    fn set_counter_lease(&mut self, lease: u64) -> Result<(), StoreError> {
        (**self).set_counter_lease(lease)
    }
}
