//! Anti-entropy on real node processes: a replica that was cut off while
//! writes went on catches up through Merkle-tree exchanges — forced with
//! `ringkv repair`, or by the periodic schedule on its own — and never
//! through read repair (these tests never read through `/kv`).

mod common;

use common::{preference_list, ringkv_bin, Cluster};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Keys written while n3 is cut off.
const KEYS: usize = 200;
/// Bound on `ringkv repair` (a full repair of a 3-node cluster queues 768
/// exchanges, run back to back, roughly one per 10 ms node tick).
const REPAIR_LIMIT: Duration = Duration::from_secs(90);
/// Bound on the periodic schedule healing everything (one round over the
/// 384 ranges every node replicates takes about 8 s at `interval_ms = 20`).
const CONVERGE_LIMIT: Duration = Duration::from_secs(60);

/// Hints off: a coordinator keeps a hint for a replica that stayed silent
/// through a write, and would hand n3 what it missed; these tests are
/// about anti-entropy alone.
const NO_HINTS: &str = "[hints]\nmax_hints = 0";

/// `KEYS` keys that n3 does not coordinate: a write through n1 is then
/// coordinated by n1 or n2 and never waits out a forward to the cut-off n3
/// (a cut drops traffic silently, so only the forward timeout notices).
fn test_keys(prefix: &str) -> Vec<String> {
    (0..)
        .map(|k| format!("{prefix}{k}"))
        .filter(|key| preference_list(3, key)[0] != 3)
        .take(KEYS)
        .collect()
}

/// Cut n3 off, write every key through n1 with W = 2 (acknowledged by n1
/// and n2 alone), check that n3 has none of them, and heal.
async fn write_while_n3_is_cut_off(c: &Cluster, keys: &[String]) {
    c.cut(3, 1).await;
    c.cut(3, 2).await;
    for (n, key) in keys.iter().enumerate() {
        c.put_with(1, key, format!("value {n}"), None, Some(2))
            .await
            .expect(204);
    }
    let mut missing_on_n3 = 0;
    for key in keys {
        for i in [1, 2] {
            assert!(
                !c.replica(i, key).await.is_empty(),
                "n{i} acknowledged {key} but does not hold it"
            );
        }
        if c.replica(3, key).await.is_empty() {
            missing_on_n3 += 1;
        }
    }
    assert_eq!(
        missing_on_n3,
        keys.len(),
        "n3 was cut off during every write, so it must hold none of them"
    );
    c.heal(3, 1).await;
    c.heal(3, 2).await;
}

/// The keys whose three replicas are not (yet) identical and non-empty.
async fn unconverged(c: &Cluster, keys: impl IntoIterator<Item = &String>) -> BTreeSet<String> {
    let mut pending = BTreeSet::new();
    for key in keys {
        let first = c.replica(1, key).await;
        let mut same = !first.is_empty();
        for i in [2, 3] {
            same = same && c.replica(i, key).await == first;
        }
        if !same {
            pending.insert(key.clone());
        }
    }
    pending
}

async fn describe_replicas(c: &Cluster, key: &str) -> String {
    let mut out = String::new();
    for i in 1..=3 {
        out.push_str(&format!("\n  n{i}: {:?}", c.replica(i, key).await));
    }
    out
}

/// The percentage in a progress line `repair: 3/768 exchanges (0%), ...`.
fn percent(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once('(')?;
    let (number, _) = rest.split_once("%)")?;
    number.parse().ok()
}

/// The keys repaired in a progress line `... (100%), 200 keys repaired`.
fn keys_repaired(line: &str) -> Option<u64> {
    let counts = line.strip_suffix(" keys repaired")?;
    counts.rsplit(", ").next()?.parse().ok()
}

/// n3 misses 200 acknowledged writes while cut off; periodic anti-entropy
/// is off, so after healing it stays behind until `ringkv repair` forces an
/// exchange of every range, which prints its progress up to 100%. Then all
/// three replicas of every key hold the identical sibling set.
#[tokio::test]
async fn a_replica_that_missed_writes_converges_through_anti_entropy() {
    let c = Cluster::start_with(3, &format!("[anti_entropy]\nenabled = false\n\n{NO_HINTS}")).await;
    let keys = test_keys("missed:");
    write_while_n3_is_cut_off(&c, &keys).await;

    // Healing alone repairs nothing: no periodic exchanges, no reads.
    let pending = unconverged(&c, &keys).await;
    assert_eq!(
        pending.len(),
        keys.len(),
        "without anti-entropy n3 must still lack every key"
    );

    let mut repair = tokio::process::Command::new(ringkv_bin());
    repair
        .arg("repair")
        .arg("--node")
        .arg(c.http_addr(3).to_string())
        .env_remove("RINGKV_NODE")
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(REPAIR_LIMIT, repair.output())
        .await
        .unwrap_or_else(|_| panic!("ringkv repair did not finish within {REPAIR_LIMIT:?}"))
        .expect("run ringkv repair");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "ringkv repair failed ({}):\n{stderr}",
        output.status
    );
    eprintln!(
        "ringkv repair took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("repair:"))
        .collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains("exchanges queued")),
        "first line announces the queued exchanges:\n{stderr}"
    );
    let progress: Vec<(u64, &str)> = lines
        .iter()
        .filter_map(|l| percent(l).map(|p| (p, *l)))
        .collect();
    assert!(!progress.is_empty(), "no progress lines:\n{stderr}");
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress never goes back:\n{stderr}"
    );
    let (last_percent, last_line) = *progress.last().unwrap();
    assert_eq!(last_percent, 100, "progress ends at 100%:\n{stderr}");
    assert!(
        last_line.contains(", 0 failed, "),
        "no exchange failed:\n{stderr}"
    );
    let repaired = keys_repaired(last_line)
        .unwrap_or_else(|| panic!("no repaired-keys count in {last_line:?}"));
    assert!(
        repaired >= KEYS as u64,
        "n3 merged every key it lacked, the last line says {repaired}:\n{stderr}"
    );

    for key in &keys {
        let first = c.replica(1, key).await;
        assert!(!first.is_empty(), "n1 lost {key}");
        for i in [2, 3] {
            assert_eq!(
                c.replica(i, key).await,
                first,
                "{key}: n{i} differs from n1 after the repair:{}",
                describe_replicas(&c, key).await
            );
        }
    }
}

/// Same divergence, but periodic anti-entropy runs (every 20 ms): without
/// being asked and without a single read, every replica of every key ends
/// up identical.
#[tokio::test]
async fn periodic_anti_entropy_heals_without_being_asked() {
    let c = Cluster::start_with(
        3,
        // A short exchange timeout: exchanges a node starts with the cut-off
        // n3 are dropped silently and only end by timing out, and a node
        // runs one exchange at a time.
        &format!(
            "[anti_entropy]\nenabled = true\ninterval_ms = 20\nexchange_timeout_ms = 1000\n\n\
             {NO_HINTS}"
        ),
    )
    .await;
    let keys = test_keys("periodic:");
    write_while_n3_is_cut_off(&c, &keys).await;

    let healed_at = Instant::now();
    let deadline = healed_at + CONVERGE_LIMIT;
    let mut pending: BTreeSet<String> = keys.iter().cloned().collect();
    while !pending.is_empty() {
        if Instant::now() > deadline {
            let key = pending.first().unwrap().clone();
            panic!(
                "{} of {} keys not converged {CONVERGE_LIMIT:?} after healing, e.g. {key}:{}",
                pending.len(),
                keys.len(),
                describe_replicas(&c, &key).await
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Once identical with no writes going on, a key stays identical.
        pending = unconverged(&c, &pending).await;
    }
    eprintln!(
        "all {} keys converged {:.1} s after healing",
        keys.len(),
        healed_at.elapsed().as_secs_f64()
    );

    let mut repaired = 0;
    for i in 1..=3 {
        assert_eq!(
            c.stat(i, "read_repairs").await,
            0,
            "n{i} did read repairs, but nothing read through /kv"
        );
        let status = c.status(i).await;
        repaired += status["anti_entropy"]["keys_repaired"]
            .as_u64()
            .unwrap_or_else(|| panic!("no anti_entropy.keys_repaired in {status}"));
    }
    assert!(
        repaired >= KEYS as u64,
        "anti-entropy merged only {repaired} keys, n3 lacked {KEYS}"
    );
}
