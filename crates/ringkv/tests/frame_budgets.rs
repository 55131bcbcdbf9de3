//! Frame budgets end to end, on real processes with the default limits and
//! 1 MiB values: what a node owes a peer can be far more than one frame
//! (about 64 MiB at the defaults), and still gets there, a batch at a time.
//! Every wait is a bounded poll; no test asserts how long anything took.

mod common;

use common::{eventually, preference_list, ring_with_vnodes, run_cli, Cluster};
use ringkv_core::ring::Ring;
use std::time::Duration;

/// The largest value at the default limits.
const MIB: usize = 1024 * 1024;
/// Gossip and failure detection at test speed; no anti-entropy, so that
/// only what a test exercises moves data; hints handed back every 200 ms.
const FAST_NO_AE: &str = "[membership]\ngossip_interval_ms = 200\nprobe_interval_ms = 200\n\
                          suspect_after_ms = 1000\n\n[anti_entropy]\nenabled = false\n\n\
                          [hints]\ndelivery_interval_ms = 200";
/// Bound on every node seeing a killed node down.
const DOWN_LIMIT: Duration = Duration::from_secs(20);
/// Bound on 100 MiB of hints draining (or a repair moving 70 MiB) on a
/// loaded 2-core machine.
const MOVE_LIMIT: Duration = Duration::from_secs(240);

/// A 1 MiB value that names its key.
fn big_value(key: &str) -> Vec<u8> {
    let mut value = key.as_bytes().to_vec();
    value.resize(MIB, b'.');
    value
}

/// Messages node `i` did not send for being larger than a frame.
async fn too_large(c: &Cluster, i: usize) -> u64 {
    c.stat(i, "messages_too_large").await
}

/// One stand-in (n1) keeps 100 one-MiB hints for n4 while it is dead (100
/// MiB, more than a frame); once n4 is back every hint drains to it.
#[tokio::test]
async fn hints_of_one_mib_values_drain_after_their_owner_returns() {
    let mut c = Cluster::start_with(4, FAST_NO_AE).await;
    c.kill(4);
    eventually(DOWN_LIMIT, "n1..n3 see n4 down", async || {
        for i in 1..=3 {
            let seen = c.member_statuses(i).await;
            if seen.get("n4").map(String::as_str) != Some("down") {
                return Err(format!("n{i} sees {seen:?}"));
            }
        }
        Ok(())
    })
    .await;

    // n1 is the one node outside these keys' preference lists: the stand-in.
    let keys: Vec<String> = (0..)
        .map(|k| format!("big-hint:{k}"))
        .filter(|key| {
            let pref = preference_list(4, key);
            pref.contains(&4) && !pref.contains(&1)
        })
        .take(100)
        .collect();
    for key in &keys {
        c.put_with(2, key, big_value(key), None, Some(2))
            .await
            .expect(204);
    }
    let status = c.status(1).await;
    assert_eq!(status["pending_hints"]["n4"], 100, "n1 holds every hint");

    c.restart(4).await;
    eventually(MOVE_LIMIT, "n1 hands every hint back", async || {
        let status = c.status(1).await;
        match status["pending_hints"]["n4"].as_u64() {
            None => Ok(()),
            Some(left) => Err(format!(
                "{left} hints left, {} delivered",
                status["stats"]["hints_delivered"]
            )),
        }
    })
    .await;
    assert_eq!(too_large(&c, 1).await, 0, "no message outgrew a frame");
    for key in keys.iter().step_by(33) {
        let stored = c.replica(4, key).await;
        let values: Vec<&[u8]> = stored.live().filter_map(|s| s.value.as_deref()).collect();
        assert_eq!(
            values,
            [big_value(key).as_slice()],
            "n4's own copy of {key}"
        );
    }
}

/// With one token per node, n3 misses 70 one-MiB writes to a single range
/// (more than a frame); `ringkv repair` on n3 then completes without a
/// failed exchange and n3 holds every key.
#[tokio::test]
async fn a_replica_that_missed_more_than_a_frame_in_one_range_converges_through_repair() {
    let c = Cluster::start_with_vnodes(3, 1, FAST_NO_AE).await;
    let ring = ring_with_vnodes(3, 1);
    let range_of = |key: &str| ring.range_of(Ring::key_token(key.as_bytes()));
    let home = range_of("one-range:0");
    let keys: Vec<String> = (0..)
        .map(|k| format!("one-range:{k}"))
        .filter(|key| range_of(key) == home)
        .take(70)
        .collect();
    c.cut(3, 1).await;
    c.cut(3, 2).await;
    for key in &keys {
        c.put_with(1, key, big_value(key), None, Some(2))
            .await
            .expect(204);
    }
    c.heal(3, 1).await;
    c.heal(3, 2).await;
    assert_eq!(c.status(3).await["stored_keys"], 0, "n3 missed every write");

    let node = c.http_addr(3).to_string();
    run_cli(&["repair", "--node", &node], MOVE_LIMIT).await;
    assert_eq!(c.status(3).await["stored_keys"], 70);
    for key in keys.iter().step_by(23) {
        assert_eq!(c.replica(3, key).await, c.replica(1, key).await, "{key}");
    }
    for i in 1..=3 {
        assert_eq!(
            too_large(&c, i).await,
            0,
            "n{i}: no message outgrew a frame"
        );
    }
}
