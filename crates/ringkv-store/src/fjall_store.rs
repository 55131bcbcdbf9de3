//! The disk engine: a [fjall](https://docs.rs/fjall/3) LSM-tree database with
//! a keyspace `kv` mapping each key to its encoded sibling set, a keyspace
//! `hints` for the hints kept for other nodes, and a keyspace `meta`.
//!
//! # Layout
//!
//! `kv` holds each key under its physical key `token ++ key` (see
//! [`crate::codec`]), so [`Store::scan`] of a token range is one fjall range
//! scan. A second keyspace, `meta`, records the key layout
//! ([`codec::KEY_LAYOUT_VERSION`]) when the database is created; opening a
//! database of another layout, or one whose `kv` holds data but which has no
//! layout record (written by a build before layouts were recorded), fails
//! with a [`StoreError`] instead of misreading it.
//!
//! A third keyspace, `hints`, holds each hint under its hint key
//! `len ++ owner ++ key` (see [`crate::codec`]), so the hints of one owner are
//! contiguous. It is created when missing, so a database written before
//! hints existed opens unchanged (with no hints); the key layout record does
//! not cover it.
//!
//! # Durability
//!
//! The `kv` and `hints` keyspaces are opened with `manual_journal_persist`, so
//! `put`, `delete`, `put_hint` and `delete_hint` only append to fjall's
//! in-process journal buffer, one journal for all keyspaces (a crash of the
//! process before the next [`Store::sync`] may lose them: those writes were
//! never acknowledged).
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
use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};
use ringkv_core::ring::Token;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::{Hint, Store, StoreError};
use ringkv_core::NodeId;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The keyspace holding the data.
pub(crate) const KEYSPACE: &str = "kv";
/// The keyspace holding the hints, by hint key ([`codec::hint_key`]).
pub(crate) const HINTS_KEYSPACE: &str = "hints";
/// The keyspace holding the layout record.
pub(crate) const META_KEYSPACE: &str = "meta";
/// The key, in [`META_KEYSPACE`], of the layout record: one byte,
/// [`codec::KEY_LAYOUT_VERSION`].
pub(crate) const LAYOUT_KEY: &[u8] = b"key_layout";
/// The key, in [`META_KEYSPACE`], of the node's counter lease (u64, big-endian).
const COUNTER_LEASE_KEY: &[u8] = b"counter_lease";
/// fjall's background threads (flushes and compactions). One, not fjall's
/// default of one per core (up to 4): with more than one, worker 0 leaves
/// compactions to the others by putting each `Compact` message it receives
/// back on the queue (fjall 3.1 `worker_pool.rs`, `worker_tick`) and takes
/// it again at once, so while another worker compacts it spins — a whole
/// core, measured as 16% of all CPU samples (plus 7% in the channel's
/// `send`) of a 3-node cluster taking 1 MiB writes. One worker flushes and
/// compacts in turn; a flush waiting on a compaction is covered by the
/// memtables fjall keeps sealed before it halts writes.
const BACKGROUND_WORKERS: usize = 1;

/// How a keyspace is created (an existing one keeps the options it was
/// created with). The journal is persisted by [`Store::sync`], not by
/// every insert. Values above 1 KiB (fjall's default threshold) live in
/// blob files, apart from the LSM tree (WiscKey's key-value separation):
/// without it every flush and compaction rewrote each large value again —
/// with 1 MiB values, 37% of all CPU samples of a 3-node cluster went to
/// fjall's flushes and compactions. Sibling sets of small values stay
/// inline.
fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .manual_journal_persist(true)
        .with_kv_separation(Some(KvSeparationOptions::default()))
}

/// A [`Store`] on disk, in a fjall database. See the [module docs](self) for
/// what [`Store::sync`] guarantees.
pub struct FjallStore {
    db: Database,
    kv: Keyspace,
    hints: Keyspace,
    meta: Keyspace,
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
    /// Set by every write to `kv` or `hints`, cleared by the thread just
    /// before it fsyncs.
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
            .worker_threads(BACKGROUND_WORKERS)
            .open()
            .map_err(|e| open_error(&path, e))?;
        let kv_existed = db.keyspace_exists(KEYSPACE);
        let kv = db
            .keyspace(KEYSPACE, keyspace_options)
            .map_err(|e| open_error(&path, e))?;
        let meta = check_layout(&db, &kv, kv_existed, &path)?;
        // Created on demand: databases from before hints have no `hints`.
        let hints = db
            .keyspace(HINTS_KEYSPACE, keyspace_options)
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
            hints,
            meta,
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
        self.put_raw_physical(codec::physical_key(key), bytes)
    }

    /// Flush the memtable to a table on disk and wait for it (tests only:
    /// fjall's `rotate_memtable_and_wait` is a hidden test helper).
    #[cfg(test)]
    pub(crate) fn flush_for_test(&self) {
        self.kv.rotate_memtable_and_wait().unwrap();
        assert!(self.kv.table_count() > 0, "nothing was flushed");
    }

    /// Store raw bytes under a raw physical key (tests only).
    #[cfg(test)]
    pub(crate) fn put_raw_physical(
        &mut self,
        physical: Vec<u8>,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.kv
            .insert(physical, bytes)
            .map_err(|e| self.error("put", e))
    }

    /// Store raw bytes under a raw hint key, bypassing the encoder (tests
    /// only).
    #[cfg(test)]
    pub(crate) fn put_raw_hint(
        &mut self,
        stored: Vec<u8>,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.hints
            .insert(stored, bytes)
            .map_err(|e| self.error("put hint", e))
    }

    /// Tell the background fsync (if any) that the journal has new writes.
    fn mark_dirty(&self) {
        if let Some(f) = &self.fsyncer {
            f.shared.dirty.store(true, Ordering::Release);
        }
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

/// Check the database's layout record, writing (and fsyncing) it into a
/// new database, and return the meta keyspace. `kv_existed`: whether the
/// data keyspace existed before this open.
fn check_layout(
    db: &Database,
    kv: &Keyspace,
    kv_existed: bool,
    path: &Path,
) -> Result<Keyspace, StoreError> {
    let meta = db
        .keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)
        .map_err(|e| open_error(path, e))?;
    let record = meta.get(LAYOUT_KEY).map_err(|e| open_error(path, e))?;
    match record.as_deref() {
        Some([codec::KEY_LAYOUT_VERSION]) => Ok(meta),
        Some(other) => Err(StoreError(format!(
            "cannot open the database at {}: its key layout record is {other:?}, \
             this build reads layout [{}] only",
            path.display(),
            codec::KEY_LAYOUT_VERSION
        ))),
        None => {
            let has_data = kv_existed && !kv.is_empty().map_err(|e| open_error(path, e))?;
            if has_data {
                return Err(StoreError(format!(
                    "cannot open the database at {}: it holds data but no key layout \
                     record, so an older build (key layout 1, bare keys) wrote it; this \
                     build reads layout {} only and cannot migrate it",
                    path.display(),
                    codec::KEY_LAYOUT_VERSION
                )));
            }
            meta.insert(LAYOUT_KEY, [codec::KEY_LAYOUT_VERSION])
                .map_err(|e| open_error(path, e))?;
            db.persist(PersistMode::SyncAll)
                .map_err(|e| open_error(path, e))?;
            Ok(meta)
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
        let bytes = self
            .kv
            .get(codec::physical_key(key))
            .map_err(|e| self.error("get", e))?;
        bytes.map(|bytes| codec::decode(&bytes)).transpose()
    }

    fn put(&mut self, key: &[u8], siblings: &SiblingSet) -> Result<(), StoreError> {
        codec::check_key(key)?;
        let bytes = codec::encode(siblings)?;
        self.kv
            .insert(codec::physical_key(key), bytes)
            .map_err(|e| self.error("put", e))?;
        self.mark_dirty();
        Ok(())
    }

    /// A tombstone in `kv`, journaled like a `put`.
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        // A key `put` refuses was never stored (and fjall panics on some).
        if !codec::is_storable_key(key) {
            return Ok(());
        }
        self.kv
            .remove(codec::physical_key(key))
            .map_err(|e| self.error("delete", e))?;
        self.mark_dirty();
        Ok(())
    }

    fn put_hint(&mut self, owner: &NodeId, key: &[u8], hint: &Hint) -> Result<(), StoreError> {
        let stored = codec::hint_key(owner, key)?;
        let bytes = codec::encode_hint(hint)?;
        self.hints
            .insert(stored, bytes)
            .map_err(|e| self.error("put hint", e))?;
        self.mark_dirty();
        Ok(())
    }

    fn get_hint(&self, owner: &NodeId, key: &[u8]) -> Result<Option<Hint>, StoreError> {
        // Hints `put_hint` refuses were never stored.
        let Ok(stored) = codec::hint_key(owner, key) else {
            return Ok(None);
        };
        let bytes = self
            .hints
            .get(stored)
            .map_err(|e| self.error("get hint", e))?;
        bytes.map(|bytes| codec::decode_hint(&bytes)).transpose()
    }

    fn delete_hint(&mut self, owner: &NodeId, key: &[u8]) -> Result<(), StoreError> {
        // A hint `put_hint` refuses was never stored (and fjall panics on
        // over-long keys).
        let Ok(stored) = codec::hint_key(owner, key) else {
            return Ok(());
        };
        self.hints
            .remove(stored)
            .map_err(|e| self.error("delete hint", e))?;
        self.mark_dirty();
        Ok(())
    }

    /// One fjall scan over `hints`, in hint-key order.
    fn scan_hints(
        &self,
        visit: &mut dyn FnMut(&NodeId, &[u8], &Hint) -> bool,
    ) -> Result<(), StoreError> {
        codec::visit_hints(
            self.hints
                .iter()
                .map(|item| item.into_inner().map_err(|e| self.error("scan hints", e))),
            visit,
        )
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

    fn counter_lease(&self) -> Result<u64, StoreError> {
        let bytes = self
            .meta
            .get(COUNTER_LEASE_KEY)
            .map_err(|e| self.error("read counter lease", e))?;
        match bytes.as_deref() {
            None => Ok(0),
            Some(b) => b
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError(format!("corrupt counter lease ({} bytes)", b.len()))),
        }
    }

    /// Written and fsynced at once, with everything before it.
    fn set_counter_lease(&mut self, lease: u64) -> Result<(), StoreError> {
        self.meta
            .insert(COUNTER_LEASE_KEY, lease.to_be_bytes())
            .map_err(|e| self.error("write counter lease", e))?;
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| self.error("fsync counter lease", e))
    }

    /// One fjall range scan over the physical keys of the token range.
    fn scan(
        &self,
        from: Token,
        to: Token,
        visit: &mut dyn FnMut(&[u8], &SiblingSet) -> bool,
    ) -> Result<(), StoreError> {
        let range = codec::scan_bounds(from, to)?;
        for item in self.kv.range(range) {
            let (physical, bytes) = item.into_inner().map_err(|e| self.error("scan", e))?;
            let (token, key) = codec::split_physical_key(&physical)?;
            let set = codec::decode_scanned(token, &bytes)?;
            if !visit(key, &set) {
                break;
            }
        }
        Ok(())
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
