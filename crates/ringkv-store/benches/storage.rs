//! `cargo bench -p ringkv-store --bench storage`: one replica's store
//! operations, for the fjall engine (with the default `fsync = "interval"`,
//! as [`StorageConfig::default`] configures it) and the memory engine.
//!
//! Every replicated write ends in a `put` and, once per batch of events, a
//! `sync` before acknowledgements are released (group commit); every read
//! and every merge starts with a `get`. Keys are 16 bytes, values 100 bytes
//! (one version with a three-entry context, encoded as the node stores
//! it), in a temporary directory.

use divan::{black_box, Bencher};
use ringkv_store::{open, Engine, StorageConfig, Store};
use tempfile::TempDir;

#[path = "../../ringkv-core/benches/support/mod.rs"]
mod support;

use support::{keys, siblings};

fn main() {
    divan::main();
}

/// Distinct keys written and read, cycled through (all fit in fjall's
/// memtable and block cache: these are warm-path figures).
const KEYS: usize = 10_000;

const ENGINES: [Engine; 2] = [Engine::Fjall, Engine::Memory];

/// An opened store and the directory it lives in (dropped after it).
struct Opened {
    store: Box<dyn Store + Send>,
    _dir: TempDir,
}

fn opened(engine: Engine) -> Opened {
    let config = StorageConfig {
        engine,
        ..StorageConfig::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&config, dir.path()).expect("open store");
    Opened { store, _dir: dir }
}

/// `put` then `sync` of one key: a batch of one event, the latency floor of
/// an acknowledged replica write (with `interval`, sync is one `write(2)`).
#[divan::bench(args = ENGINES)]
fn put_sync(bencher: Bencher, engine: Engine) {
    bench_put(bencher, engine, true);
}

/// `put` alone: the per-write cost when many writes share one `sync`.
#[divan::bench(args = ENGINES)]
fn put(bencher: Bencher, engine: Engine) {
    bench_put(bencher, engine, false);
}

fn bench_put(bencher: Bencher, engine: Engine, sync: bool) {
    let mut opened = opened(engine);
    let (keys, value) = (keys(KEYS), siblings(1));
    let mut next = keys.iter().cycle();
    bencher.bench_local(|| {
        let key = next.next().expect("cycle");
        opened.store.put(key, black_box(&value)).expect("put");
        if sync {
            opened.store.sync().expect("sync");
        }
    });
}

/// `get` of a stored key, decoded into its sibling set.
#[divan::bench(args = ENGINES)]
fn get(bencher: Bencher, engine: Engine) {
    let mut opened = opened(engine);
    let (keys, value) = (keys(KEYS), siblings(1));
    for key in &keys {
        opened.store.put(key, &value).expect("put");
    }
    opened.store.sync().expect("sync");
    let mut next = keys.iter().cycle();
    bencher.bench_local(|| opened.store.get(black_box(next.next().expect("cycle"))));
}
