//! ringkv-store: the storage engines behind [`ringkv_core::store::Store`].
//!
//! * [`FjallStore`], the default: a fjall LSM-tree on disk, data in the
//!   keyspace `kv` and hints in `hints`, group-committed by [`Store::sync`]
//!   with the fsync policy of [`Durability`].
//! * [`MemoryStore`]: a `BTreeMap`, for tests, the simulator and
//!   `engine = "memory"`; nothing survives the process.
//!
//! Both store each key's [`SiblingSet`](ringkv_core::siblings::SiblingSet)
//! in the same [`codec`] format: a format-version byte, then postcard; and
//! both keep keys under `token ++ key` (the key's ring token, big-endian), so
//! they are sorted by token and [`Store::scan`] of a token range is a range
//! scan. Hints (the [`Hint`](ringkv_core::store::Hint)s a node keeps for
//! other nodes) are kept apart from the data, under `len ++ owner ++ key`,
//! in a versioned format of their own.
//!
//! The node picks an engine from the `[storage]` table of its TOML config
//! ([`StorageConfig`]) and opens it with [`open`]:
//!
//! ```toml
//! [storage]
//! engine = "fjall"          # or "memory"
//! fsync = "interval"        # or "always"
//! fsync_interval_ms = 100
//! ```

pub mod codec;
pub mod fjall_store;
pub mod memory;

pub use fjall_store::FjallStore;
pub use memory::MemoryStore;
pub use ringkv_core::store::{Store, StoreError};

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which engine holds the data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// [`FjallStore`] on disk.
    #[default]
    Fjall,
    /// [`MemoryStore`]: all data is lost when the process exits.
    Memory,
}

/// What an acknowledged write survives: what [`Store::sync`] waits for
/// before the node releases acknowledgements.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `sync` fsyncs the journal before it returns: an acknowledged write
    /// survives power loss. Costs one fsync per batch of events.
    Always,
    /// `sync` hands the journal to the OS (one `write(2)`, no fsync): an
    /// acknowledged write survives the process crashing or being killed
    /// (SIGKILL), but a power loss or kernel crash may lose the writes of
    /// the last `fsync_interval_ms`. A background thread fsyncs every
    /// `fsync_interval_ms` whenever there were writes since its last fsync,
    /// so writes do not stay un-fsynced when traffic stops.
    #[default]
    Interval,
}

/// The `[storage]` table of the node's config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Default `fjall`.
    pub engine: Engine,
    /// Default `interval`. Ignored by the memory engine.
    pub fsync: Durability,
    /// Period of the background fsync with `fsync = "interval"`; at least 1.
    /// Default 100.
    pub fsync_interval_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            engine: Engine::Fjall,
            fsync: Durability::Interval,
            fsync_interval_ms: 100,
        }
    }
}

/// Open the configured engine for a node whose data directory is `dir`.
///
/// The fjall engine keeps its database in `dir` itself (created if missing)
/// and owns that directory: give each node its own. The memory engine
/// ignores `dir`.
pub fn open(config: &StorageConfig, dir: &Path) -> Result<Box<dyn Store + Send>, StoreError> {
    match config.engine {
        Engine::Memory => Ok(Box::new(MemoryStore::new())),
        Engine::Fjall => Ok(Box::new(FjallStore::open(
            dir,
            config.fsync,
            config.fsync_interval_ms,
        )?)),
    }
}

#[cfg(test)]
mod tests;
