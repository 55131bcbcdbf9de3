use super::*;
use ringkv_core::ring::{Ring, Token};
use ringkv_core::siblings::{SiblingSet, WriteLimits};
use ringkv_core::store::Hint;
use ringkv_core::version::CausalContext;
use ringkv_core::NodeId;

const LIMITS: WriteLimits = WriteLimits {
    max_siblings: 8,
    max_clock_entries: 10,
    young_clock_ms: 20_000,
    min_counter: 0,
};

fn one_write(node: &str, value: &[u8], now: u64) -> SiblingSet {
    let mut set = SiblingSet::new();
    set.write(
        &NodeId::from(node),
        &CausalContext::new(),
        Some(value.to_vec()),
        now,
        LIMITS,
    )
    .unwrap();
    set
}

/// Put, get, overwrite and missing keys: the contract every engine keeps.
fn round_trip(store: &mut dyn Store) {
    assert_eq!(store.get(b"missing").unwrap(), None);

    let a = one_write("n1", b"v1", 1);
    store.put(b"a", &a).unwrap();
    store.sync().unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(a.clone()));
    assert_eq!(store.get(b"b").unwrap(), None);

    // Overwrite with two concurrent siblings plus a tombstone.
    let mut b = a.clone();
    b.write(
        &NodeId::from("n2"),
        &CausalContext::new(),
        Some(b"v2".to_vec()),
        2,
        LIMITS,
    )
    .unwrap();
    b.write(&NodeId::from("n3"), &CausalContext::new(), None, 3, LIMITS)
        .unwrap();
    assert_eq!(b.len(), 3);
    store.put(b"a", &b).unwrap();
    assert_eq!(store.get(b"a").unwrap(), Some(b.clone()));

    // Empty sibling sets, empty values, binary keys and large values.
    store.put(b"empty", &SiblingSet::new()).unwrap();
    assert_eq!(store.get(b"empty").unwrap(), Some(SiblingSet::new()));
    let e = one_write("n1", b"", 4);
    store.put(b"\0", &e).unwrap();
    assert_eq!(store.get(b"\0").unwrap(), Some(e));
    let big = one_write("n1", &vec![0xab; 1 << 20], 5);
    store.put(&[0, 0xff, 0], &big).unwrap();
    store.sync().unwrap();
    assert_eq!(store.get(&[0, 0xff, 0]).unwrap(), Some(big));
    assert_eq!(store.get(&[0, 0xff]).unwrap(), None);
    assert_eq!(store.get(b"a").unwrap(), Some(b));

    // Keys fjall cannot store (empty) or store faithfully (too long) are
    // refused with an error, not a panic or a truncation, by both engines.
    let long = vec![7u8; codec::MAX_KEY_LEN + 1];
    assert!(store.put(&long, &a).is_err());
    assert_eq!(store.get(&long).unwrap(), None);
    assert_eq!(store.get(&long[..codec::MAX_KEY_LEN]).unwrap(), None);
    let longest = vec![7u8; codec::MAX_KEY_LEN];
    store.put(&longest, &a).unwrap();
    assert_eq!(store.get(&longest).unwrap(), Some(a.clone()));
    assert!(store.put(b"", &a).is_err());
    assert_eq!(store.get(b"").unwrap(), None);
    store.sync().unwrap();

    for i in 0..500u32 {
        store
            .put(
                &i.to_be_bytes(),
                &one_write("n1", &i.to_le_bytes(), i.into()),
            )
            .unwrap();
    }
    store.sync().unwrap();
    for i in 0..500u32 {
        assert_eq!(
            store.get(&i.to_be_bytes()).unwrap(),
            Some(one_write("n1", &i.to_le_bytes(), i.into()))
        );
    }
}

/// Run a contract against every engine and configuration: memory, fjall
/// with each fsync policy, and both engines as `open` builds them.
fn on_every_engine(contract: fn(&mut dyn Store)) {
    contract(&mut MemoryStore::new());
    for durability in [Durability::Interval, Durability::Always] {
        let dir = tempfile::tempdir().unwrap();
        contract(&mut FjallStore::open(dir.path(), durability, 100).unwrap());
    }
    let dir = tempfile::tempdir().unwrap();
    for engine in [Engine::Fjall, Engine::Memory] {
        let config = StorageConfig {
            engine,
            ..StorageConfig::default()
        };
        let mut store = open(&config, &dir.path().join("node")).unwrap();
        contract(store.as_mut());
    }
}

#[test]
fn round_trip_on_every_engine() {
    on_every_engine(round_trip);
}

#[test]
fn fjall_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    for durability in [Durability::Interval, Durability::Always] {
        let path = dir.path().join(format!("{durability:?}"));
        let set = one_write("n1", b"persisted", 42);
        {
            let mut store = FjallStore::open(&path, durability, 100).unwrap();
            store.put(b"k", &set).unwrap();
            store.put(b"gone-soon", &set).unwrap();
            store.put(b"gone-soon", &SiblingSet::new()).unwrap();
            store.sync().unwrap();
        }
        let mut store = FjallStore::open(&path, durability, 100).unwrap();
        assert_eq!(store.get(b"k").unwrap(), Some(set.clone()));
        assert_eq!(store.get(b"gone-soon").unwrap(), Some(SiblingSet::new()));
        assert_eq!(store.get(b"other").unwrap(), None);
        // And it is writable again.
        let set2 = one_write("n2", b"again", 43);
        store.put(b"k", &set2).unwrap();
        store.sync().unwrap();
        drop(store);
        let store = FjallStore::open(&path, durability, 100).unwrap();
        assert_eq!(store.get(b"k").unwrap(), Some(set2));
    }
}

/// Values above fjall's separation threshold live in blob files: they
/// must read back after a flush moved them out of the memtable, after an
/// overwrite and a deletion flushed too, and after a reopen.
#[test]
fn fjall_large_values_survive_flushes_to_blob_files_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big = |byte: u8| one_write("n1", &vec![byte; 300 * 1024], 7);
    {
        let mut store = FjallStore::open(dir.path(), Durability::Always, 100).unwrap();
        for i in 0..8u8 {
            store.put(&[b'k', i], &big(i)).unwrap();
        }
        store.sync().unwrap();
        store.flush_for_test();
        store.put(b"k\x01", &big(0xee)).unwrap();
        store.put(b"k\x02", &SiblingSet::new()).unwrap();
        store.sync().unwrap();
        store.flush_for_test();
        assert_eq!(store.get(b"k\x00").unwrap(), Some(big(0)));
        assert_eq!(store.get(b"k\x01").unwrap(), Some(big(0xee)));
    }
    let store = FjallStore::open(dir.path(), Durability::Always, 100).unwrap();
    assert_eq!(store.get(b"k\x01").unwrap(), Some(big(0xee)));
    assert_eq!(store.get(b"k\x02").unwrap(), Some(SiblingSet::new()));
    for i in 3..8u8 {
        assert_eq!(store.get(&[b'k', i]).unwrap(), Some(big(i)));
    }
}

#[test]
fn fjall_second_open_is_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
    let err = match FjallStore::open(dir.path(), Durability::Interval, 100) {
        Ok(_) => panic!("opened a database that is already open"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("locked"), "{err}");
}

#[test]
fn fjall_zero_interval_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(FjallStore::open(dir.path(), Durability::Interval, 0).is_err());
    // Always ignores the interval.
    FjallStore::open(dir.path(), Durability::Always, 0).unwrap();
}

#[test]
fn fjall_background_fsync_clears_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FjallStore::open(dir.path(), Durability::Interval, 10).unwrap();
    store.put(b"k", &one_write("n1", b"v", 1)).unwrap();
    store.sync().unwrap();
    let shared = store.fsyncer.as_ref().unwrap().shared.clone();
    assert!(shared.dirty.load(std::sync::atomic::Ordering::Acquire));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while shared.dirty.load(std::sync::atomic::Ordering::Acquire) {
        assert!(std::time::Instant::now() < deadline, "no background fsync");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(shared.error.lock().unwrap().is_none());
}

#[test]
fn garbage_memory() {
    let mut store = MemoryStore::new();
    store.put_raw(b"empty", vec![]);
    store.put_raw(b"version", vec![99, 0]);
    store.put_raw(b"junk", vec![1, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for key in [&b"empty"[..], b"version", b"junk"] {
        let err = store.get(key).unwrap_err();
        assert!(err.to_string().starts_with("storage error: "), "{err}");
    }
}

#[test]
fn garbage_fjall() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
    store.put_raw(b"empty", vec![]).unwrap();
    store.put_raw(b"version", vec![99, 0]).unwrap();
    store
        .put_raw(b"junk", vec![1, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    for key in [&b"empty"[..], b"version", b"junk"] {
        let err = store.get(key).unwrap_err();
        assert!(err.to_string().starts_with("storage error: "), "{err}");
    }
}

/// What a scan of `from..=to` visits, in order.
fn scan_entries(store: &dyn Store, from: Token, to: Token) -> Vec<(Vec<u8>, SiblingSet)> {
    let mut out = Vec::new();
    store
        .scan(from, to, &mut |key, set| {
            out.push((key.to_vec(), set.clone()));
            true
        })
        .unwrap();
    out
}

/// The keys a scan of `from..=to` visits, in order.
fn scan_keys(store: &dyn Store, from: Token, to: Token) -> Vec<Vec<u8>> {
    scan_entries(store, from, to)
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

/// `keys` in scan order: by token, then by key bytes.
fn token_order<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Vec<(Token, Vec<u8>)> {
    let mut sorted: Vec<(Token, Vec<u8>)> = keys
        .into_iter()
        .map(|key| (Ring::key_token(key), key.to_vec()))
        .collect();
    sorted.sort();
    sorted
}

/// Scan the whole ring and check it visits exactly `keys`, in token order;
/// returns the keys in that order and what the scan found.
fn full_scan_of_exactly(store: &dyn Store, keys: &[Vec<u8>]) -> (TokenOrder, Entries) {
    let sorted = token_order(keys.iter().map(Vec::as_slice));
    let all = scan_entries(store, 0, u64::MAX);
    assert_eq!(
        all.iter().map(|(key, _)| key.clone()).collect::<Vec<_>>(),
        keys_of(&sorted)
    );
    (sorted, all)
}

type TokenOrder = Vec<(Token, Vec<u8>)>;
type Entries = Vec<(Vec<u8>, SiblingSet)>;

fn keys_of(entries: &[(Token, Vec<u8>)]) -> Vec<Vec<u8>> {
    entries.iter().map(|(_, key)| key.clone()).collect()
}

/// `scan`: exactly the keys of the range, inclusive bounds, token order,
/// early stop. The contract every engine keeps.
fn scan_contract(store: &mut dyn Store) {
    let mut visited = 0;
    store
        .scan(0, u64::MAX, &mut |_, _| {
            visited += 1;
            true
        })
        .unwrap();
    assert_eq!(visited, 0, "an empty store visits nothing");

    let keys: Vec<Vec<u8>> = (0..200u32)
        .map(|i| format!("scan-{i}").into_bytes())
        .collect();
    for (i, key) in (0u32..).zip(&keys) {
        store
            .put(key, &one_write("n1", &i.to_le_bytes(), i.into()))
            .unwrap();
    }
    // An overwritten key is visited once, with its latest value.
    store.put(&keys[7], &one_write("n2", b"new", 999)).unwrap();
    // Refused keys are not stored, so never visited.
    assert!(store.put(b"", &SiblingSet::new()).is_err());
    store.sync().unwrap();

    let sorted = token_order(keys.iter().map(Vec::as_slice));
    // These 200 keys have distinct tokens, so token bounds pick exact keys.
    assert!(sorted.windows(2).all(|w| w[0].0 < w[1].0));
    let t = |i: usize| sorted[i].0;

    // The full ring: every key once, in token order, with its value.
    let all = scan_entries(store, 0, u64::MAX);
    assert_eq!(
        all.iter().map(|(key, _)| key.clone()).collect::<Vec<_>>(),
        keys_of(&sorted)
    );
    for (key, set) in &all {
        assert_eq!(store.get(key).unwrap().as_ref(), Some(set));
    }
    assert_eq!(
        all.iter().find(|(key, _)| *key == keys[7]).unwrap().1,
        one_write("n2", b"new", 999)
    );

    // Bounds are inclusive at both ends...
    assert_eq!(scan_keys(store, t(50), t(120)), keys_of(&sorted[50..=120]));
    assert_eq!(scan_keys(store, t(50), t(50)), keys_of(&sorted[50..=50]));
    // ...and one token inside excludes the key at that bound.
    assert_eq!(
        scan_keys(store, t(50) + 1, t(120) - 1),
        keys_of(&sorted[51..120])
    );
    assert_eq!(
        scan_keys(store, t(50), t(120) - 1),
        keys_of(&sorted[50..120])
    );
    assert_eq!(
        scan_keys(store, t(50) + 1, t(120)),
        keys_of(&sorted[51..=120])
    );
    if t(51) - t(50) > 1 {
        assert!(scan_keys(store, t(50) + 1, t(51) - 1).is_empty());
    }
    // The ends of the ring, token 0 and u64::MAX included.
    assert_eq!(scan_keys(store, 0, t(0)), keys_of(&sorted[..1]));
    assert_eq!(scan_keys(store, t(199), u64::MAX), keys_of(&sorted[199..]));
    assert!(scan_keys(store, t(199) + 1, u64::MAX).is_empty());
    if t(0) > 0 {
        assert!(scan_keys(store, 0, t(0) - 1).is_empty());
    }
    assert!(scan_keys(store, u64::MAX, u64::MAX).is_empty());
    // A wrapping range, split by the caller.
    let mut wrapped = scan_keys(store, t(150), u64::MAX);
    wrapped.extend(scan_keys(store, 0, t(20)));
    let mut expected = keys_of(&sorted[150..]);
    expected.extend(keys_of(&sorted[..=20]));
    assert_eq!(wrapped, expected);

    // Early stop: nothing is visited after `visit` returns false.
    for stop_after in [1, 3, 200] {
        let mut seen = Vec::new();
        store
            .scan(0, u64::MAX, &mut |key, _| {
                seen.push(key.to_vec());
                seen.len() < stop_after
            })
            .unwrap();
        assert_eq!(seen, keys_of(&sorted[..stop_after]));
    }
    let mut seen = Vec::new();
    store
        .scan(t(10), t(30), &mut |key, _| {
            seen.push(key.to_vec());
            false
        })
        .unwrap();
    assert_eq!(seen, keys_of(&sorted[10..=10]));

    // An inverted (unsplit wrapping) range is an error, not an empty scan.
    assert!(store
        .scan(t(120), t(50), &mut |_, _| panic!(
            "visited an inverted range"
        ))
        .is_err());

    // The longest key is scanned back whole.
    let longest = vec![0xa5u8; codec::MAX_KEY_LEN];
    let set = one_write("n1", b"long", 1);
    store.put(&longest, &set).unwrap();
    let token = Ring::key_token(&longest);
    assert_eq!(
        scan_entries(store, token, token),
        vec![(longest.clone(), set)]
    );
    assert_eq!(scan_keys(store, 0, u64::MAX).len(), 201);
}

#[test]
fn scan_on_every_engine() {
    on_every_engine(scan_contract);
}

fn numbered_key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

#[test]
fn fjall_scan_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<Vec<u8>> = (0..1000).map(numbered_key).collect();
    {
        let mut store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
        for (i, key) in (0u32..).zip(&keys) {
            store
                .put(key, &one_write("n1", &i.to_le_bytes(), i.into()))
                .unwrap();
        }
        store.sync().unwrap();
    }
    let store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
    let (sorted, all) = full_scan_of_exactly(&store, &keys);
    for (key, set) in &all {
        let i: u32 = std::str::from_utf8(&key[4..]).unwrap().parse().unwrap();
        assert_eq!(*set, one_write("n1", &i.to_le_bytes(), i.into()));
    }
    assert_eq!(
        scan_keys(&store, sorted[100].0, sorted[899].0),
        keys_of(&sorted[100..900])
    );
}

/// A full scan of 10,000 keys visits each exactly once, in token order, and
/// 16 ranges tiling the ring visit them all between them.
fn full_scan_of_10000_keys(store: &mut dyn Store) {
    const N: u32 = 10_000;
    for i in 0..N {
        store
            .put(&numbered_key(i), &one_write("n1", b"v", i.into()))
            .unwrap();
        if i % 1000 == 999 {
            store.sync().unwrap();
        }
    }
    let mut visited = Vec::with_capacity(N as usize);
    store
        .scan(0, u64::MAX, &mut |key, _| {
            visited.push((Ring::key_token(key), key.to_vec()));
            true
        })
        .unwrap();
    assert_eq!(visited.len(), N as usize);
    assert!(
        visited.windows(2).all(|w| w[0] < w[1]),
        "not in token order"
    );
    let mut tiled = 0;
    for part in 0..16u64 {
        let from = part << 60;
        let to = from | ((1 << 60) - 1);
        store
            .scan(from, to, &mut |key, _| {
                assert!((from..=to).contains(&Ring::key_token(key)));
                tiled += 1;
                true
            })
            .unwrap();
    }
    assert_eq!(tiled, N);
}

#[test]
fn full_scan_of_10000_keys_memory() {
    full_scan_of_10000_keys(&mut MemoryStore::new());
}

#[test]
fn full_scan_of_10000_keys_fjall() {
    let dir = tempfile::tempdir().unwrap();
    full_scan_of_10000_keys(&mut FjallStore::open(dir.path(), Durability::Interval, 100).unwrap());
}

/// A scan merges keys on disk (flushed tables) with those in the memtable:
/// a key overwritten after the flush is visited once, with its new value.
#[test]
fn fjall_scan_merges_disk_and_memtable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
    for i in 0..2000 {
        store
            .put(&numbered_key(i), &one_write("n1", b"old", i.into()))
            .unwrap();
    }
    store.sync().unwrap();
    store.flush_for_test();
    for i in 1000..3000 {
        store
            .put(&numbered_key(i), &one_write("n1", b"new", i.into()))
            .unwrap();
    }
    store.sync().unwrap();
    let keys: Vec<Vec<u8>> = (0..3000).map(numbered_key).collect();
    let (sorted, all) = full_scan_of_exactly(&store, &keys);
    for (key, set) in &all {
        let i: u32 = std::str::from_utf8(&key[4..]).unwrap().parse().unwrap();
        let value: &[u8] = if i < 1000 { b"old" } else { b"new" };
        assert_eq!(*set, one_write("n1", value, i.into()), "key {i}");
    }
    assert_eq!(
        scan_keys(&store, sorted[500].0, sorted[2500].0),
        keys_of(&sorted[500..=2500])
    );
}

/// A scan meeting a corrupt entry returns the error (no panic, no skip);
/// ranges around it still scan.
fn scan_garbage(store: &dyn Store, garbage: &[&[u8]]) {
    let mut visited = 0;
    let err = store
        .scan(0, u64::MAX, &mut |_, _| {
            visited += 1;
            true
        })
        .unwrap_err();
    assert!(err.to_string().starts_with("storage error: "), "{err}");
    for key in garbage {
        let t = Ring::key_token(key);
        let err = store.scan(t, t, &mut |_, _| true).unwrap_err();
        assert!(
            err.to_string().contains("scanning the key of token"),
            "{err}"
        );
    }
    // The good key is scanned, both alone and up to the first garbage.
    let good = Ring::key_token(b"good");
    assert_eq!(scan_keys(store, good, good), vec![b"good".to_vec()]);
    let first_bad = garbage.iter().map(|k| Ring::key_token(k)).min().unwrap();
    if first_bad > 0 {
        let before = scan_keys(store, 0, first_bad - 1);
        assert_eq!(before.len(), usize::from(good < first_bad));
    }
}

#[test]
fn garbage_scan_memory() {
    let mut store = MemoryStore::new();
    store.put(b"good", &one_write("n1", b"v", 1)).unwrap();
    store.put_raw(b"empty", vec![]);
    store.put_raw(b"version", vec![99, 0]);
    store.put_raw(b"junk", vec![1, 0xff, 0xff, 0xff, 0xff, 0xff]);
    scan_garbage(&store, &[b"empty", b"version", b"junk"]);
}

#[test]
fn garbage_scan_fjall() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
    store.put(b"good", &one_write("n1", b"v", 1)).unwrap();
    store.put_raw(b"empty", vec![]).unwrap();
    store.put_raw(b"version", vec![99, 0]).unwrap();
    store
        .put_raw(b"junk", vec![1, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    scan_garbage(&store, &[b"empty", b"version", b"junk"]);
}

/// Physical keys that are not `token ++ key` (too short, wrong token) are
/// reported by a scan that meets them.
#[test]
fn corrupt_physical_keys_fail_the_scan() {
    let value = codec::encode(&one_write("n1", b"v", 1)).unwrap();
    let mut wrong_token = codec::physical_key(b"k");
    wrong_token[7] ^= 1;
    let dir = tempfile::tempdir().unwrap();
    for (i, physical) in [vec![0u8; codec::TOKEN_LEN], wrong_token]
        .into_iter()
        .enumerate()
    {
        let mut memory = MemoryStore::new();
        memory.put_raw_physical(physical.clone(), value.clone());
        let mut fjall =
            FjallStore::open(dir.path().join(i.to_string()), Durability::Interval, 100).unwrap();
        fjall
            .put_raw_physical(physical.clone(), value.clone())
            .unwrap();
        for store in [&memory as &dyn Store, &fjall] {
            let err = store.scan(0, u64::MAX, &mut |_, _| true).unwrap_err();
            assert!(err.to_string().contains("corrupt stored key"), "{err}");
        }
    }
}

/// A database of another key layout is refused at open, not misread.
#[test]
fn fjall_refuses_other_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let value = codec::encode(&one_write("n1", b"v", 1)).unwrap();

    // Written by a build before layouts were recorded: bare keys in `kv`.
    let old = dir.path().join("old");
    {
        let db = fjall::Database::builder(&old).open().unwrap();
        let kv = db
            .keyspace(fjall_store::KEYSPACE, fjall::KeyspaceCreateOptions::default)
            .unwrap();
        kv.insert(b"a", value.clone()).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let err = match FjallStore::open(&old, Durability::Interval, 100) {
        Ok(_) => panic!("opened a database of key layout 1"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("no key layout record"), "{err}");

    // Created by such a build but empty: nothing to misread, adopted.
    let empty = dir.path().join("empty");
    {
        let db = fjall::Database::builder(&empty).open().unwrap();
        db.keyspace(fjall_store::KEYSPACE, fjall::KeyspaceCreateOptions::default)
            .unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    FjallStore::open(&empty, Durability::Interval, 100).unwrap();

    // A new database records its layout, and another record is refused.
    let other = dir.path().join("other");
    {
        let mut store = FjallStore::open(&other, Durability::Always, 100).unwrap();
        store.put(b"a", &one_write("n1", b"v", 1)).unwrap();
        store.sync().unwrap();
    }
    {
        let db = fjall::Database::builder(&other).open().unwrap();
        let meta = db
            .keyspace(
                fjall_store::META_KEYSPACE,
                fjall::KeyspaceCreateOptions::default,
            )
            .unwrap();
        assert_eq!(
            meta.get(fjall_store::LAYOUT_KEY).unwrap().as_deref(),
            Some(&[codec::KEY_LAYOUT_VERSION][..])
        );
        meta.insert(fjall_store::LAYOUT_KEY, [3u8]).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let err = match FjallStore::open(&other, Durability::Interval, 100) {
        Ok(_) => panic!("opened a database of key layout 3"),
        Err(e) => e,
    };
    assert!(
        err.to_string().contains("key layout record is [3]"),
        "{err}"
    );
}

#[test]
fn config_defaults_and_toml() {
    #[derive(Deserialize)]
    struct Node {
        #[serde(default)]
        storage: StorageConfig,
    }
    let node: Node = toml::from_str("").unwrap();
    assert_eq!(node.storage, StorageConfig::default());
    assert_eq!(
        StorageConfig::default(),
        StorageConfig {
            engine: Engine::Fjall,
            fsync: Durability::Interval,
            fsync_interval_ms: 100
        }
    );
    let node: Node = toml::from_str("[storage]\nfsync = \"always\"\n").unwrap();
    assert_eq!(node.storage.fsync, Durability::Always);
    assert_eq!(node.storage.engine, Engine::Fjall);
    let node: Node = toml::from_str(
        "[storage]\nengine = \"memory\"\nfsync = \"interval\"\nfsync_interval_ms = 5\n",
    )
    .unwrap();
    assert_eq!(
        node.storage,
        StorageConfig {
            engine: Engine::Memory,
            fsync: Durability::Interval,
            fsync_interval_ms: 5
        }
    );
    assert!(toml::from_str::<Node>("[storage]\nfsync_ms = 5\n").is_err());
    assert!(toml::from_str::<Node>("[storage]\nfsync = \"Always\"\n").is_err());
    assert!(toml::from_str::<Node>("[storage]\nengine = \"redb\"\n").is_err());
}

/// The counter lease starts at 0 and survives a reopen.
fn counter_lease_contract(store: &mut dyn Store) {
    assert_eq!(store.counter_lease().unwrap(), 0);
    store.set_counter_lease(10_001).unwrap();
    assert_eq!(store.counter_lease().unwrap(), 10_001);
}

#[test]
fn counter_lease_on_every_engine() {
    on_every_engine(counter_lease_contract);
}

#[test]
fn fjall_counter_lease_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
        store.set_counter_lease(20_002).unwrap();
    }
    let store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
    assert_eq!(store.counter_lease().unwrap(), 20_002);
}

fn hint(node: &str, value: &[u8], stored_at: u64) -> Hint {
    Hint {
        stored_at,
        siblings: one_write(node, value, stored_at),
    }
}

type Hints = Vec<(String, Vec<u8>, Hint)>;

/// Every stored hint, in the order `scan_hints` visits them.
fn all_hints(store: &dyn Store) -> Hints {
    let mut out = Vec::new();
    store
        .scan_hints(&mut |owner, key, hint| {
            out.push((owner.as_str().to_owned(), key.to_vec(), hint.clone()));
            true
        })
        .unwrap();
    out
}

fn hint_entry(owner: &str, key: &[u8], hint: &Hint) -> (String, Vec<u8>, Hint) {
    (owner.to_owned(), key.to_vec(), hint.clone())
}

/// Hints: put, replace, delete and scan, apart from the data. The contract
/// every engine keeps.
fn hints_contract(store: &mut dyn Store) {
    store
        .scan_hints(&mut |_, _, _| panic!("an empty store has no hints"))
        .unwrap();
    let (n2, n10) = (NodeId::from("n2"), NodeId::from("n10"));
    let h = |i: u64| hint("n1", &i.to_le_bytes(), 1_000 + i);

    store.put_hint(&n10, b"b", &h(1)).unwrap();
    store.put_hint(&n2, b"b", &h(2)).unwrap();
    store.put_hint(&n2, b"a", &h(3)).unwrap();
    store.put_hint(&n10, b"a", &h(4)).unwrap();
    store.put_hint(&n10, b"\0", &h(5)).unwrap();
    store.sync().unwrap();
    // Grouped by owner (the shorter id first: the length prefix sorts
    // first), keys in byte order within an owner.
    let expected = vec![
        hint_entry("n2", b"a", &h(3)),
        hint_entry("n2", b"b", &h(2)),
        hint_entry("n10", b"\0", &h(5)),
        hint_entry("n10", b"a", &h(4)),
        hint_entry("n10", b"b", &h(1)),
    ];
    assert_eq!(all_hints(store), expected);

    // Hints are not data, and data is not hints.
    assert_eq!(store.get(b"a").unwrap(), None);
    assert!(scan_keys(store, 0, u64::MAX).is_empty());
    let data = one_write("n3", b"data", 9);
    store.put(b"a", &data).unwrap();
    assert_eq!(all_hints(store), expected);

    // Replace: the same owner and key hold one hint, the latest.
    store.put_hint(&n2, b"b", &h(6)).unwrap();
    assert_eq!(store.get_hint(&n2, b"b").unwrap(), Some(h(6)));
    assert_eq!(store.get_hint(&n10, b"zz").unwrap(), None);
    // Delete: the hint goes, the owner's other hints and the data stay;
    // deleting it again, or a hint never stored, is no error.
    store.delete_hint(&n10, b"a").unwrap();
    assert_eq!(store.get_hint(&n10, b"a").unwrap(), None);
    store.delete_hint(&n10, b"a").unwrap();
    store.delete_hint(&NodeId::from("n9"), b"a").unwrap();
    store.delete_hint(&n2, b"zz").unwrap();
    store.sync().unwrap();
    let expected = vec![
        hint_entry("n2", b"a", &h(3)),
        hint_entry("n2", b"b", &h(6)),
        hint_entry("n10", b"\0", &h(5)),
        hint_entry("n10", b"b", &h(1)),
    ];
    assert_eq!(all_hints(store), expected);
    assert_eq!(store.get(b"a").unwrap(), Some(data.clone()));
    // Deleting the data key leaves the hints for that key alone.
    store.delete(b"a").unwrap();
    assert_eq!(all_hints(store), expected);

    // Early stop: nothing is visited after `visit` returns false.
    for stop_after in 1..=expected.len() {
        let mut seen = Vec::new();
        store
            .scan_hints(&mut |owner, key, hint| {
                seen.push(hint_entry(owner.as_str(), key, hint));
                seen.len() < stop_after
            })
            .unwrap();
        assert_eq!(seen, expected[..stop_after]);
    }

    // Owner ids up to 255 bytes fit the one-byte length prefix; a longer
    // one is an error (not a panic), and deleting its hint a no-op.
    let longest = NodeId::new("o".repeat(255));
    store.put_hint(&longest, b"k", &h(7)).unwrap();
    let too_long = NodeId::new("o".repeat(256));
    let err = store.put_hint(&too_long, b"k", &h(8)).unwrap_err();
    assert!(err.to_string().contains("owner id is 256 bytes"), "{err}");
    store.delete_hint(&too_long, b"k").unwrap();
    // Keys the store refuses as data are refused as hint keys, as are keys
    // whose hint key would not fit fjall's 16-bit key length.
    assert!(store.put_hint(&n2, b"", &h(9)).is_err());
    assert!(store
        .put_hint(&n2, &vec![1u8; codec::MAX_KEY_LEN + 1], &h(9))
        .is_err());
    assert!(store
        .put_hint(&longest, &vec![1u8; codec::MAX_KEY_LEN], &h(9))
        .is_err());
    store.delete_hint(&n2, b"").unwrap();
    store
        .delete_hint(&longest, &vec![1u8; codec::MAX_KEY_LEN])
        .unwrap();
    // The longest data key takes a hint for a short owner id; for a 64-byte
    // one (the most a config allows) the hint key is full 7 bytes earlier.
    let big_key = vec![2u8; codec::MAX_KEY_LEN];
    store.put_hint(&n2, &big_key, &h(10)).unwrap();
    let id64 = NodeId::new("i".repeat(64));
    let room = u16::MAX as usize - 1 - 64;
    assert!(store.put_hint(&id64, &vec![3u8; room + 1], &h(11)).is_err());
    store.put_hint(&id64, &vec![3u8; room], &h(11)).unwrap();
    store.sync().unwrap();
    let mut expected = expected;
    expected.insert(0, hint_entry("n2", &big_key, &h(10)));
    expected.push(hint_entry(id64.as_str(), &vec![3u8; room], &h(11)));
    expected.push(hint_entry(longest.as_str(), b"k", &h(7)));
    let brief = |hints: &Hints| -> Vec<(usize, usize, u64)> {
        hints
            .iter()
            .map(|(owner, key, hint)| (owner.len(), key.len(), hint.stored_at))
            .collect()
    };
    assert_eq!(brief(&all_hints(store)), brief(&expected));
    assert_eq!(all_hints(store), expected);
    assert!(scan_keys(store, 0, u64::MAX).is_empty());
}

#[test]
fn hints_on_every_engine() {
    on_every_engine(hints_contract);
}

/// `delete` removes a key from `get` and `scan`; deleting an absent or
/// unstorable key is no error. The contract every engine keeps.
fn delete_contract(store: &mut dyn Store) {
    let keys: Vec<Vec<u8>> = (0..50).map(numbered_key).collect();
    for (i, key) in (0u32..).zip(&keys) {
        store.put(key, &one_write("n1", b"v", i.into())).unwrap();
    }
    store.sync().unwrap();
    for i in (0..50).step_by(3) {
        store.delete(&keys[i]).unwrap();
    }
    store.delete(b"never-stored").unwrap();
    store.delete(b"").unwrap();
    store.delete(&vec![0u8; codec::MAX_KEY_LEN + 1]).unwrap();
    store.sync().unwrap();
    let kept: Vec<Vec<u8>> = (0..50)
        .filter(|i| i % 3 != 0)
        .map(|i| keys[i].clone())
        .collect();
    for (i, key) in keys.iter().enumerate() {
        let expected = (i % 3 != 0).then(|| one_write("n1", b"v", i as u64));
        assert_eq!(store.get(key).unwrap(), expected, "key {i}");
    }
    full_scan_of_exactly(store, &kept);
    let t = Ring::key_token(&keys[0]);
    assert!(scan_keys(store, t, t).is_empty());

    // A deleted key can be written again; a second delete is no error.
    store.delete(&keys[0]).unwrap();
    let again = one_write("n2", b"again", 99);
    store.put(&keys[0], &again).unwrap();
    assert_eq!(store.get(&keys[0]).unwrap(), Some(again.clone()));
    assert_eq!(scan_entries(store, t, t), vec![(keys[0].clone(), again)]);
}

#[test]
fn delete_on_every_engine() {
    on_every_engine(delete_contract);
}

/// Deletes and hints are durable after `sync`, like `put`: they survive a
/// reopen, including deletes of keys already flushed to disk tables.
#[test]
fn fjall_deletes_and_hints_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (NodeId::from("a"), NodeId::from("bb"));
    for durability in [Durability::Interval, Durability::Always] {
        let path = dir.path().join(format!("{durability:?}"));
        let keys: Vec<Vec<u8>> = (0..100).map(numbered_key).collect();
        {
            let mut store = FjallStore::open(&path, durability, 100).unwrap();
            for (i, key) in (0u32..).zip(&keys) {
                store.put(key, &one_write("n1", b"v", i.into())).unwrap();
            }
            store.put_hint(&b, b"k1", &hint("n1", b"1", 1)).unwrap();
            store.put_hint(&a, b"k2", &hint("n1", b"2", 2)).unwrap();
            store.put_hint(&a, b"k1", &hint("n1", b"3", 3)).unwrap();
            store.sync().unwrap();
            store.flush_for_test();
            // Deletes of flushed keys, and of one still in the memtable.
            store.put(b"fresh", &one_write("n1", b"f", 1)).unwrap();
            store.delete(b"fresh").unwrap();
            for key in &keys[..60] {
                store.delete(key).unwrap();
            }
            store.sync().unwrap();
        }
        {
            let mut store = FjallStore::open(&path, durability, 100).unwrap();
            assert_eq!(store.get(b"fresh").unwrap(), None);
            assert_eq!(store.get(&keys[0]).unwrap(), None);
            full_scan_of_exactly(&store, &keys[60..]);
            assert_eq!(
                all_hints(&store),
                vec![
                    hint_entry("a", b"k1", &hint("n1", b"3", 3)),
                    hint_entry("a", b"k2", &hint("n1", b"2", 2)),
                    hint_entry("bb", b"k1", &hint("n1", b"1", 1)),
                ]
            );
            store.delete_hint(&a, b"k1").unwrap();
            store.put_hint(&b, b"k1", &hint("n2", b"4", 4)).unwrap();
            store.sync().unwrap();
        }
        let store = FjallStore::open(&path, durability, 100).unwrap();
        assert_eq!(
            all_hints(&store),
            vec![
                hint_entry("a", b"k2", &hint("n1", b"2", 2)),
                hint_entry("bb", b"k1", &hint("n2", b"4", 4)),
            ]
        );
        full_scan_of_exactly(&store, &keys[60..]);
    }
}

/// A database written before hints existed (no `hints` keyspace) opens,
/// keeps its data, and takes hints.
#[test]
fn fjall_opens_a_database_without_hints() {
    let dir = tempfile::tempdir().unwrap();
    let set = one_write("n1", b"v", 1);
    {
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        let kv = db
            .keyspace(fjall_store::KEYSPACE, || {
                fjall::KeyspaceCreateOptions::default().manual_journal_persist(true)
            })
            .unwrap();
        let meta = db
            .keyspace(
                fjall_store::META_KEYSPACE,
                fjall::KeyspaceCreateOptions::default,
            )
            .unwrap();
        meta.insert(fjall_store::LAYOUT_KEY, [codec::KEY_LAYOUT_VERSION])
            .unwrap();
        kv.insert(codec::physical_key(b"k"), codec::encode(&set).unwrap())
            .unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
        assert!(!db.keyspace_exists(fjall_store::HINTS_KEYSPACE));
    }
    {
        let mut store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
        assert_eq!(store.get(b"k").unwrap(), Some(set.clone()));
        assert!(all_hints(&store).is_empty());
        store
            .put_hint(&NodeId::from("n2"), b"k", &hint("n1", b"h", 5))
            .unwrap();
        store.sync().unwrap();
    }
    let store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
    assert_eq!(store.get(b"k").unwrap(), Some(set));
    assert_eq!(
        all_hints(&store),
        vec![hint_entry("n2", b"k", &hint("n1", b"h", 5))]
    );
}

/// A corrupt hint (value or key) fails `scan_hints` with a `StoreError`,
/// after the good hints before it were visited; no panic, no skip.
#[test]
fn corrupt_hints_fail_the_scan() {
    let good = hint("n1", b"v", 1);
    let good_bytes = codec::encode_hint(&good).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
        (b"\x01zk".to_vec(), vec![], "stored hint is empty"),
        (b"\x01zk".to_vec(), vec![99, 0], "unknown format version 99"),
        (
            b"\x01zk".to_vec(),
            vec![1, 0xff, 0xff, 0xff, 0xff, 0xff],
            "corrupt stored hint",
        ),
        (
            b"\x01zk".to_vec(),
            // A sibling set where a hint belongs: the version byte matches,
            // the body does not parse as a hint.
            codec::encode(&SiblingSet::new()).unwrap(),
            "corrupt stored hint",
        ),
        (
            b"\x05zk".to_vec(),
            good_bytes.clone(),
            "corrupt stored hint key",
        ),
        (b"\x01\xffk".to_vec(), good_bytes.clone(), "not UTF-8"),
    ];
    for (i, (stored, bytes, message)) in cases.into_iter().enumerate() {
        let mut memory = MemoryStore::new();
        let mut fjall =
            FjallStore::open(dir.path().join(i.to_string()), Durability::Interval, 100).unwrap();
        let owner = NodeId::from("a");
        memory.put_hint(&owner, b"k", &good).unwrap();
        memory.put_raw_hint(stored.clone(), bytes.clone());
        fjall.put_hint(&owner, b"k", &good).unwrap();
        fjall.put_raw_hint(stored, bytes).unwrap();
        for store in [&memory as &dyn Store, &fjall] {
            let mut visited = Vec::new();
            let err = store
                .scan_hints(&mut |owner, key, hint| {
                    visited.push(hint_entry(owner.as_str(), key, hint));
                    true
                })
                .unwrap_err();
            assert!(err.to_string().starts_with("storage error: "), "{err}");
            assert!(err.to_string().contains(message), "case {i}: {err}");
            // Owner "a" sorts before the corrupt entry and was visited.
            assert_eq!(visited, vec![hint_entry("a", b"k", &good)], "case {i}");
            // The data side is unaffected.
            assert!(scan_keys(store, 0, u64::MAX).is_empty());
        }
    }
}
