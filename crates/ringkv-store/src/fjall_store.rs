//! The disk engine: a [fjall](https://docs.rs/fjall/3) LSM-tree database with
//! one keyspace, `kv`, mapping each key to its encoded sibling set.
//!
//! # Durability
//!
//! The keyspace is opened with `manual_journal_persist`, so `put` only appends
//! to fjall's in-process journal buffer (a crash of the process before the
//! next [`Store::sync`] may lose it: those writes were never acknowledged).
//! What [`Store::sync`] then guarantees depends on [`Durability`]:
//!
//! * [`Durability::Always`]: `sync` flushes the journal buffer and fsyncs the
//!   journal file (`PersistMode::SyncAll`) before it returns, so every
//!   acknowledged write survives a power loss or kernel crash.
//! * [`Durability::Interval`]: `sync` flushes the journal buffer to the OS
//!   (`PersistMode::Buffer`, one `write(2)`), so an acknowledged write survives
//!   the process being killed (even by SIGKILL) but not a power loss. A
//!   background thread (`ringkv-fsync`) fsyncs the journal every
//!   `fsync_interval_ms` whenever anything was written since its last fsync,
//!   so a power loss loses at most about one interval of acknowledged writes,
//!   and writes are fsynced even when traffic stops. fjall 3 has no periodic
//!   fsync of its own (v2's `fsync_ms` is gone), hence the thread.
//!
//! Either way, dropping the store fsyncs the journal.
//!
//! An fsync failure is fatal for the database: fjall refuses every later
//! write, and `sync` keeps returning the error (restart the node).
//!
//! # Caveats
//!
//! * One process per database: fjall holds an exclusive lock on
//!   `<path>/lock`; opening a locked database (from another process or a
//!   second time in this one) returns a [`StoreError`] saying so.
//! * `put` can block (fjall busy-waits inside `insert` when sealed memtables
//!   pile up faster than they are flushed), and each background fsync holds
//!   the journal lock for the fsync's duration: call the store from a thread
//!   of its own, not from an async runtime's workers.

use crate::codec;
use crate::Durability;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::{Store, StoreError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The keyspace holding the data.
const KEYSPACE: &str = "kv";

/// A [`Store`] on disk, in a fjall database. See the [module docs](self) for
/// what [`Store::sync`] guarantees.
pub struct FjallStore {
    db: Database,
    kv: Keyspace,
    path: PathBuf,
    durability: Durability,
    /// Present with [`Durability::Interval`].
    pub(crate) fsyncer: Option<Fsyncer>,
}

/// The periodic-fsync thread of [`Durability::Interval`].
pub(crate) struct Fsyncer {
    pub(crate) shared: Arc<Shared>,
    /// Dropping it stops the thread.
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

pub(crate) struct Shared {
    /// Set by `put`, cleared by the thread just before it fsyncs.
    pub(crate) dirty: AtomicBool,
    /// The first fsync failure of the thread; sticky.
    pub(crate) error: Mutex<Option<String>>,
}

impl FjallStore {
    /// Open (or create) the database in directory `path`.
    ///
    /// `fsync_interval_ms` is used with [`Durability::Interval`] only and
    /// must then be at least 1.
    pub fn open(
        path: impl AsRef<Path>,
        durability: Durability,
        fsync_interval_ms: u64,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if durability == Durability::Interval && fsync_interval_ms == 0 {
            return Err(StoreError(
                "fsync_interval_ms must be at least 1 with fsync = \"interval\" \
                 (use fsync = \"always\" to fsync on every sync)"
                    .into(),
            ));
        }
        let db = Database::builder(&path)
            .open()
            .map_err(|e| open_error(&path, e))?;
        let kv = db
            .keyspace(KEYSPACE, || {
                KeyspaceCreateOptions::default().manual_journal_persist(true)
            })
            .map_err(|e| open_error(&path, e))?;
        let fsyncer = match durability {
            Durability::Always => None,
            Durability::Interval => Some(Fsyncer::start(
                db.clone(),
                Duration::from_millis(fsync_interval_ms),
            )?),
        };
        tracing::debug!(path = %path.display(), ?durability, fsync_interval_ms, "opened fjall store");
        Ok(FjallStore {
            db,
            kv,
            path,
            durability,
            fsyncer,
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Store raw bytes as a key's value, bypassing the encoder (tests only).
    #[cfg(test)]
    pub(crate) fn put_raw(&mut self, key: &[u8], bytes: Vec<u8>) -> Result<(), StoreError> {
        codec::check_key(key)?;
        self.kv.insert(key, bytes).map_err(|e| self.error("put", e))
    }

    fn error(&self, what: &str, e: fjall::Error) -> StoreError {
        match e {
            fjall::Error::Poisoned => StoreError(format!(
                "{what} failed: the database at {} is poisoned by an earlier failed fsync; \
                 restart the node",
                self.path.display()
            )),
            e => StoreError(format!(
                "{what} failed on the database at {}: {e}",
                self.path.display()
            )),
        }
    }
}

fn open_error(path: &Path, e: fjall::Error) -> StoreError {
    match e {
        fjall::Error::Locked => StoreError(format!(
            "cannot open the database at {}: it is locked, another process \
             (or another store in this process) has it open",
            path.display()
        )),
        e => StoreError(format!(
            "cannot open the database at {}: {e}",
            path.display()
        )),
    }
}

impl Store for FjallStore {
    fn get(&self, key: &[u8]) -> Result<Option<SiblingSet>, StoreError> {
        // fjall panics on an empty key; such keys are never stored.
        if !codec::is_storable_key(key) {
            return Ok(None);
        }
        let bytes = self.kv.get(key).map_err(|e| self.error("get", e))?;
        bytes.map(|bytes| codec::decode(&bytes)).transpose()
    }

    fn put(&mut self, key: &[u8], siblings: &SiblingSet) -> Result<(), StoreError> {
        codec::check_key(key)?;
        let bytes = codec::encode(siblings)?;
        self.kv
            .insert(key, bytes)
            .map_err(|e| self.error("put", e))?;
        if let Some(f) = &self.fsyncer {
            f.shared.dirty.store(true, Ordering::Release);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let mode = match self.durability {
            Durability::Always => PersistMode::SyncAll,
            Durability::Interval => PersistMode::Buffer,
        };
        if let Some(f) = &self.fsyncer {
            if let Some(e) = f
                .shared
                .error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                return Err(StoreError(format!(
                    "background fsync of the database at {} failed: {e}; restart the node",
                    self.path.display()
                )));
            }
        }
        self.db.persist(mode).map_err(|e| self.error("sync", e))
    }
}

impl Drop for FjallStore {
    fn drop(&mut self) {
        if let Some(mut f) = self.fsyncer.take() {
            f.stop.take();
            if let Some(handle) = f.handle.take() {
                let _ = handle.join();
            }
        }
        if let Err(e) = self.db.persist(PersistMode::SyncAll) {
            tracing::error!(path = %self.path.display(), "fsync on close failed: {e}");
        }
    }
}

impl Fsyncer {
    fn start(db: Database, interval: Duration) -> Result<Self, StoreError> {
        let shared = Arc::new(Shared {
            dirty: AtomicBool::new(false),
            error: Mutex::new(None),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("ringkv-fsync".into())
            .spawn(move || loop {
                match stopped.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    // The store is closing (its drop fsyncs last).
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                if !thread_shared.dirty.swap(false, Ordering::AcqRel) {
                    continue;
                }
                if let Err(e) = db.persist(PersistMode::SyncAll) {
                    tracing::error!("periodic fsync failed: {e}");
                    *thread_shared
                        .error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                    return;
                }
            })
            .map_err(|e| StoreError(format!("cannot start the fsync thread: {e}")))?;
        Ok(Fsyncer {
            shared,
            stop: Some(stop),
            handle: Some(handle),
        })
    }
}
