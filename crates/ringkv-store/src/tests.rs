use super::*;
use ringkv_core::ring::{Ring, Token};
use ringkv_core::siblings::{SiblingSet, WriteLimits};
use ringkv_core::version::VersionVector;
use ringkv_core::NodeId;

const LIMITS: WriteLimits = WriteLimits {
    max_siblings: 8,
    max_clock_entries: 10,
    min_counter: 0,
};

fn one_write(node: &str, value: &[u8], now: u64) -> SiblingSet {
    let mut set = SiblingSet::new();
    set.write(
        &NodeId::from(node),
        &VersionVector::new(),
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
        &VersionVector::new(),
        Some(b"v2".to_vec()),
        2,
        LIMITS,
    )
    .unwrap();
    b.write(&NodeId::from("n3"), &VersionVector::new(), None, 3, LIMITS)
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
