//! An acknowledged write under `fsync = "interval"` survives SIGKILL.
//!
//! The test re-runs its own binary as a child process (selected with the
//! `RINGKV_STORE_CHILD` variable and libtest's `--exact` filter). The child
//! writes 1000 keys into a fjall store, deleting every tenth again and
//! putting (and deleting some) hints along the way, calling `sync` after
//! every 100 keys and then printing `synced N`; after the last one it sleeps. The parent kills it
//! with SIGKILL as soon as it reads `synced 1000`, so nothing the child does
//! after `sync` returns (no drop, no exit handler, no fjall shutdown) can have
//! helped, then reopens the database and checks every key.

use ringkv_core::ring::{Ring, Token};
use ringkv_core::siblings::{SiblingSet, WriteLimits};
use ringkv_core::store::Hint;
use ringkv_core::version::CausalContext;
use ringkv_core::NodeId;
use ringkv_store::{Durability, FjallStore, Store};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "RINGKV_STORE_CHILD";
const KEYS: u32 = 1000;
const BATCH: u32 = 100;
/// Writes after the last sync: a few small ones that fit in fjall's 8 KiB
/// journal buffer, so they cannot push the synced writes out to the OS (the
/// test would then pass even if `sync` did nothing).
const UNSYNCED: u32 = 5;
/// Long enough that the background fsync never runs before the kill: the
/// test shows that `sync` alone (a flush to the OS) is enough for SIGKILL.
const INTERVAL_MS: u64 = 3_600_000;

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

fn value(i: u32) -> SiblingSet {
    let mut set = SiblingSet::new();
    let limits = WriteLimits {
        max_siblings: 8,
        max_clock_entries: 10,
        young_clock_ms: 20_000,
        min_counter: 0,
    };
    set.write(
        &NodeId::from("n1"),
        &CausalContext::new(),
        Some(format!("value-{i}-{}", "x".repeat((i % 200) as usize)).into_bytes()),
        1_700_000_000_000 + u64::from(i),
        limits,
    )
    .unwrap();
    if i % 3 == 2 {
        // Some keys hold two concurrent siblings.
        set.write(
            &NodeId::from("n2"),
            &CausalContext::new(),
            Some(vec![i as u8]),
            7,
            limits,
        )
        .unwrap();
    }
    set
}

/// Whether key `i` is deleted again after its put (by the put of `i + 5`).
fn deleted(i: u32) -> bool {
    i.is_multiple_of(10)
}

/// The owner of the hint for key `i` (keys `i % 7 == 0` get one).
fn owner(i: u32) -> NodeId {
    NodeId::new(format!("n{}", i % 3))
}

fn hint(i: u32) -> Hint {
    Hint {
        stored_at: 1_700_000_000_000 + u64::from(i),
        siblings: value(i),
    }
}

/// Whether key `i` has a hint that is not deleted again: keys `i % 7 == 0`
/// get one, and the put of the hint for `i % 14 == 7` deletes the one of
/// `i - 7`.
fn hinted(i: u32) -> bool {
    i.is_multiple_of(7) && !(i.is_multiple_of(14) && i + 7 < KEYS)
}

/// The child's half: only does anything when started by `sigkill_durability`.
#[test]
fn sigkill_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut store = FjallStore::open(Path::new(&dir), Durability::Interval, INTERVAL_MS).unwrap();
    let stdout = std::io::stdout();
    for i in 0..KEYS {
        store.put(&key(i), &value(i)).unwrap();
        if i >= 5 && deleted(i - 5) {
            store.delete(&key(i - 5)).unwrap();
        }
        if i.is_multiple_of(7) {
            store.put_hint(&owner(i), &key(i), &hint(i)).unwrap();
        }
        if i % 14 == 7 {
            store.delete_hint(&owner(i - 7), &key(i - 7)).unwrap();
        }
        if (i + 1) % BATCH == 0 {
            store.sync().unwrap();
            let mut out = stdout.lock();
            writeln!(out, "synced {}", i + 1).unwrap();
            out.flush().unwrap();
        }
    }
    // Unsynced writes after the last sync may or may not survive; they must
    // not break recovery of the synced ones.
    for i in KEYS..KEYS + UNSYNCED {
        store.put(&key(i), &value(i)).unwrap();
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[test]
fn sigkill_durability() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();

    // Kill the child whatever happens below, so a failure cannot leak it.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = KillOnDrop(child);

    // Read lines on a thread so a stuck child fails the test by timeout.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = 0;
    while last < KEYS {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("child said only up to synced {last}: {e}"));
        if let Some(n) = line.strip_prefix("synced ") {
            last = n.trim().parse().unwrap();
        }
    }

    // The child is alive and holds the database: a second open must fail
    // cleanly (fjall locks `<dir>/lock`).
    match FjallStore::open(dir.path(), Durability::Interval, 100) {
        Ok(_) => panic!("opened a database another process holds"),
        Err(e) => assert!(e.to_string().contains("locked"), "{e}"),
    }

    child.0.kill().unwrap(); // SIGKILL on Unix
    let status = child.0.wait().unwrap();
    assert!(!status.success(), "child exited by itself: {status}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status}");
    }

    let store = FjallStore::open(dir.path(), Durability::Interval, 100).unwrap();
    for i in 0..KEYS {
        let expected = (!deleted(i)).then(|| value(i));
        assert_eq!(store.get(&key(i)).unwrap(), expected, "key {i}");
    }
    for i in KEYS..KEYS + UNSYNCED {
        if let Some(set) = store.get(&key(i)).unwrap() {
            assert_eq!(set, value(i), "unsynced key {i}");
        }
    }

    // A full scan of the recovered database (what anti-entropy's start-up
    // rebuild does) visits every synced key once, in token order, with its
    // value, and no key that was never written.
    let mut scanned: Vec<(Token, u32)> = Vec::new();
    store
        .scan(0, u64::MAX, &mut |k, set| {
            let i: u32 = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
            assert_eq!(k, key(i), "scanned a key never written");
            assert!(i < KEYS + UNSYNCED, "scanned unknown key {i}");
            assert!(!deleted(i) || i >= KEYS, "scanned deleted key {i}");
            assert_eq!(*set, value(i), "scanned key {i}");
            scanned.push((Ring::key_token(k), i));
            true
        })
        .unwrap();
    assert!(
        scanned.windows(2).all(|w| w[0] < w[1]),
        "not in token order"
    );
    // Scanned keys are distinct (strict order), so this is all synced keys.
    let synced = scanned.iter().filter(|&&(_, i)| i < KEYS).count();
    assert_eq!(synced, (0..KEYS).filter(|&i| !deleted(i)).count());
    assert!(scanned.len() <= synced + UNSYNCED as usize);

    // Hint puts and deletes are as durable as data: exactly the hints not
    // deleted again, grouped by owner (ids of equal length: byte order),
    // keys in byte order.
    let mut hints = Vec::new();
    store
        .scan_hints(&mut |owner, k, hint| {
            hints.push((owner.clone(), k.to_vec(), hint.clone()));
            true
        })
        .unwrap();
    let mut expected: Vec<(NodeId, Vec<u8>, Hint)> = (0..KEYS)
        .filter(|&i| hinted(i))
        .map(|i| (owner(i), key(i), hint(i)))
        .collect();
    expected.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    assert_eq!(hints.len(), expected.len());
    assert!(hints == expected, "recovered hints differ");
}
