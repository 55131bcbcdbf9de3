//! The storage seam: the protocol reads and writes whole sibling sets per key.
//!
//! Engines live in the `ringkv-store` crate (fjall on disk, memory for tests);
//! the core only sees this trait, so the simulator can keep a store across a
//! simulated crash while dropping the node's volatile state.

use crate::ring::Token;
use crate::siblings::SiblingSet;

/// A storage failure, reported to the client as a server error; never a panic.
#[derive(Debug, thiserror::Error)]
#[error("storage error: {0}")]
pub struct StoreError(pub String);

pub trait Store {
    /// The stored sibling set of `key` (tombstones included), if any.
    fn get(&self, key: &[u8]) -> Result<Option<SiblingSet>, StoreError>;

    /// Replace the sibling set of `key`. Durable only after [`Store::sync`].
    fn put(&mut self, key: &[u8], siblings: &SiblingSet) -> Result<(), StoreError>;

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
