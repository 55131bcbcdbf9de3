use super::*;
use ringkv_core::siblings::{SiblingSet, WriteLimits};
use ringkv_core::version::VersionVector;
use ringkv_core::NodeId;

const LIMITS: WriteLimits = WriteLimits {
    max_siblings: 8,
    max_clock_entries: 10,
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

#[test]
fn round_trip_memory() {
    round_trip(&mut MemoryStore::new());
}

#[test]
fn round_trip_fjall_interval() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&mut FjallStore::open(dir.path(), Durability::Interval, 100).unwrap());
}

#[test]
fn round_trip_fjall_always() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(&mut FjallStore::open(dir.path(), Durability::Always, 100).unwrap());
}

#[test]
fn round_trip_through_open() {
    let dir = tempfile::tempdir().unwrap();
    for engine in [Engine::Fjall, Engine::Memory] {
        let config = StorageConfig {
            engine,
            ..StorageConfig::default()
        };
        let mut store = open(&config, &dir.path().join("node")).unwrap();
        round_trip(store.as_mut());
    }
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
