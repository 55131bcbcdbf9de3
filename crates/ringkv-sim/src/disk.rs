//! A node's disk in the simulator: the real in-memory engine, what each
//! kind of crash leaves of it, and injected faults.
//!
//! Writes reach the engine at once (as fjall's memtable), but survive a
//! crash only in stages, as with the server's default `fsync = "interval"`:
//! - **unsynced**: written since the last successful [`Store::sync`] — in
//!   the process only, lost by any crash;
//! - **synced**: handed to the OS by a sync — they survive a process crash,
//!   and a power loss keeps only a prefix of them (a *torn* write: the
//!   journal is replayed up to its first incomplete record);
//! - **fsynced**: on the platter (every [`FSYNC_MS`] of virtual time).
//!
//! The counter lease is fsynced the moment it is raised, as the store
//! promises. Faults: a sync that fails (an I/O error), and a full disk
//! (writes and syncs fail) — each for a while, after which the simulator
//! restarts the node, as an operator would once the disk is fixed.

use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use ringkv_core::ring::Token;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::{Hint, Store, StoreError};
use ringkv_core::NodeId;
use ringkv_store::MemoryStore;

/// How often the server's background fsync runs (`fsync = "interval"`).
pub const FSYNC_MS: u64 = 100;

/// One write, replayed onto what survives a crash.
#[derive(Clone, Debug)]
enum Write {
    Put(Vec<u8>, SiblingSet),
    Delete(Vec<u8>),
    PutHint(NodeId, Vec<u8>, Hint),
    DeleteHint(NodeId, Vec<u8>),
}

impl Write {
    fn apply(&self, store: &mut MemoryStore) -> Result<(), StoreError> {
        match self {
            Write::Put(key, set) => store.put(key, set),
            Write::Delete(key) => store.delete(key),
            Write::PutHint(owner, key, hint) => store.put_hint(owner, key, hint),
            Write::DeleteHint(owner, key) => store.delete_hint(owner, key),
        }
    }
}

/// An injected disk fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    /// Syncs fail with an I/O error.
    FailingSync,
    /// Writes and syncs fail: no space left.
    Full,
}

#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    live: MemoryStore,
    unsynced: Vec<Write>,
    synced: Vec<Write>,
    fsynced: MemoryStore,
    fault: Option<DiskFault>,
}

impl SimDisk {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes not synced yet: any crash loses them.
    pub fn unsynced(&self) -> usize {
        self.unsynced.len()
    }

    pub fn set_fault(&mut self, fault: Option<DiskFault>) {
        self.fault = fault;
    }

    /// The background fsync: everything synced reaches the platter.
    pub fn fsync(&mut self) {
        for write in self.synced.drain(..) {
            write
                .apply(&mut self.fsynced)
                .expect("a write the engine took replays");
        }
    }

    /// What a restart finds: after a process crash everything synced, after
    /// a power loss a random prefix of it (a torn write). The disk is healthy
    /// again (the operator fixed it).
    pub fn after_crash(mut self, power_loss: bool, rng: &mut ChaCha8Rng) -> SimDisk {
        let kept = if power_loss {
            rng.random_range(0..=self.synced.len())
        } else {
            self.synced.len()
        };
        self.synced.truncate(kept);
        self.fsync();
        SimDisk {
            live: self.fsynced.clone(),
            fsynced: self.fsynced,
            ..SimDisk::default()
        }
    }

    /// Take a write the engine accepted, unless the disk is full.
    fn write(&mut self, write: Write) -> Result<(), StoreError> {
        if self.fault == Some(DiskFault::Full) {
            return Err(StoreError("No space left on device (os error 28)".into()));
        }
        write.apply(&mut self.live)?;
        self.unsynced.push(write);
        Ok(())
    }
}

impl Store for SimDisk {
    fn get(&self, key: &[u8]) -> Result<Option<SiblingSet>, StoreError> {
        self.live.get(key)
    }

    fn put(&mut self, key: &[u8], siblings: &SiblingSet) -> Result<(), StoreError> {
        self.write(Write::Put(key.to_vec(), siblings.clone()))
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.write(Write::Delete(key.to_vec()))
    }

    fn put_hint(&mut self, owner: &NodeId, key: &[u8], hint: &Hint) -> Result<(), StoreError> {
        self.write(Write::PutHint(owner.clone(), key.to_vec(), hint.clone()))
    }

    fn get_hint(&self, owner: &NodeId, key: &[u8]) -> Result<Option<Hint>, StoreError> {
        self.live.get_hint(owner, key)
    }

    fn delete_hint(&mut self, owner: &NodeId, key: &[u8]) -> Result<(), StoreError> {
        self.write(Write::DeleteHint(owner.clone(), key.to_vec()))
    }

    fn scan_hints(
        &self,
        visit: &mut dyn FnMut(&NodeId, &[u8], &Hint) -> bool,
    ) -> Result<(), StoreError> {
        self.live.scan_hints(visit)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        match self.fault {
            Some(DiskFault::FailingSync) => {
                Err(StoreError("Input/output error (os error 5)".into()))
            }
            Some(DiskFault::Full) => {
                Err(StoreError("No space left on device (os error 28)".into()))
            }
            None => {
                self.synced.append(&mut self.unsynced);
                Ok(())
            }
        }
    }

    fn scan(
        &self,
        from: Token,
        to: Token,
        visit: &mut dyn FnMut(&[u8], &SiblingSet) -> bool,
    ) -> Result<(), StoreError> {
        self.live.scan(from, to, visit)
    }

    fn counter_lease(&self) -> Result<u64, StoreError> {
        self.live.counter_lease()
    }

    fn set_counter_lease(&mut self, lease: u64) -> Result<(), StoreError> {
        if self.fault.is_some() {
            return Err(StoreError("Input/output error (os error 5)".into()));
        }
        self.live.set_counter_lease(lease)?;
        self.fsynced.set_counter_lease(lease)
    }
}
