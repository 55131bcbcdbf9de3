//! Tombstone collection with real processes (see `ringkv_core::gc`):
//! 10,000 keys written and deleted over RESP are collected from every
//! store; of keys deleted while one node is down,
//! nothing is collected while it is away (its old values would come back);
//! once it is back, anti-entropy hands it the tombstones, every store ends
//! up holding none of the keys, and no old value returns.

mod common;

use common::redis::{request, Redis, Reply};
use common::{eventually, Cluster};
use std::time::Duration;

const KEYS: usize = 10_000;

/// Collection a second after a delete, and anti-entropy that compares one
/// range every 20 ms (its default of one per second takes minutes to visit
/// the ~400 ranges of 3 nodes × 128 vnodes: a node back from an outage
/// gets its missed tombstones, and collection can finish, within seconds).
const FAST_GC: &str = "
[gc]
grace_ms = 1000
interval_ms = 100
fence_ms = 60000

[anti_entropy]
interval_ms = 20
keys_per_second = 200000
";

/// Send `command key` for every key, pipelined 250 at a time; every reply
/// must be `expect`.
fn pipelined(redis: &mut Redis, command: &[&str], keys: &[String], expect: &Reply) {
    for chunk in keys.chunks(250) {
        let mut bytes = Vec::new();
        for key in chunk {
            let mut args: Vec<&str> = vec![command[0], key];
            args.extend_from_slice(&command[1..]);
            bytes.extend(request(&args));
        }
        redis.send(&bytes);
        for key in chunk {
            assert_eq!(&redis.reply(), expect, "{} {key}", command[0]);
        }
    }
}

async fn stored(c: &Cluster, i: usize) -> (u64, u64) {
    let status = c.status(i).await;
    let keys = status["stored_keys"].as_u64().expect("stored_keys");
    let bytes = status["stored_bytes"].as_u64().expect("stored_bytes");
    (keys, bytes)
}

async fn all_empty(c: &Cluster, limit: Duration) {
    for i in 1..=3 {
        eventually(limit, "every store empties", async || {
            let (keys, bytes) = stored(c, i).await;
            let mut gc = String::new();
            for j in 1..=3 {
                let st = c.status(j).await;
                gc += &format!(" n{j}: {} keys {} ", st["stored_keys"], st["gc"]);
            }
            (keys == 0)
                .then_some(())
                .ok_or(format!("n{i} holds {keys} keys, {bytes} bytes; gc {gc}"))
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_keys_leave_every_store_once_every_node_holds_their_tombstones() {
    let mut c = Cluster::start_with(3, FAST_GC).await;
    let mut n1 = Redis::connect(c.resp_addr(1));

    // 10,000 deletes with every node up: all collected.
    let keys: Vec<String> = (0..KEYS).map(|i| format!("cart:{i}")).collect();
    pipelined(&mut n1, &["SET", "apple"], &keys, &common::redis::ok());
    let with_values = stored(&c, 1).await;
    assert_eq!(with_values.0, KEYS as u64, "n1 holds every key");
    pipelined(&mut n1, &["DEL"], &keys, &Reply::Int(1));
    let as_tombstones = stored(&c, 1).await;
    let deleted = std::time::Instant::now();
    all_empty(&c, Duration::from_secs(60)).await;
    eprintln!(
        "n1 stored {} keys / {} bytes with values, {} / {} as tombstones, none {:?} after the \
         last delete",
        with_values.0,
        with_values.1,
        as_tombstones.0,
        as_tombstones.1,
        deleted.elapsed()
    );

    // Deletes while n3 is down: n3 holds the old values, so nothing is
    // collected until it is back and has the tombstones.
    let away: Vec<String> = (0..300).map(|i| format!("away:{i}")).collect();
    pipelined(&mut n1, &["SET", "pear"], &away, &common::redis::ok());
    c.kill(3);
    pipelined(&mut n1, &["DEL"], &away, &Reply::Int(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stored(&c, 1).await.0,
        away.len() as u64,
        "with n3 away (holding the old values) nothing is collected"
    );
    c.restart(3).await;
    all_empty(&c, Duration::from_secs(60)).await;
    // Nothing comes back: not through any node, not after more exchanges.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 1..=3 {
        let mut redis = Redis::connect(c.resp_addr(i));
        for key in away.iter().chain(keys.iter().step_by(97)) {
            assert_eq!(
                redis.call(&["GET", key]),
                Reply::Bulk(None),
                "{key} via n{i}"
            );
        }
        assert_eq!(stored(&c, i).await.0, 0, "n{i} after more exchanges");
    }
}
