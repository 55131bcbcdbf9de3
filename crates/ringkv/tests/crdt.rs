//! Redis counters and sets as CRDTs over real processes: increments and
//! adds made on both sides of a partition all count after the heal, on
//! every node's own copy.

mod common;

use common::redis::{Redis, Reply};
use common::{eventually, Cluster};
use reqwest::Method;
use ringkv_core::crdt::{resolve, Value};
use ringkv_core::keyspace::lww_key;
use std::time::Duration;

/// The internal key of Redis key `key`, as the harness's `&str` keys.
fn internal(key: &str) -> String {
    String::from_utf8(lww_key(key.as_bytes())).unwrap()
}

/// What node `i`'s own copy of Redis key `key` resolves to.
async fn held(c: &Cluster, i: usize, key: &str) -> Option<Value> {
    let copy = c.replica(i, &internal(key)).await;
    resolve(&copy)
        .expect("a stored value decodes")
        .map(|(v, _)| v)
}

/// Every node's siblings of `key` and the dots keeping `removed` in its
/// set: what a failure shows.
async fn copies(c: &Cluster, key: &str) -> String {
    let mut shown = String::new();
    for j in 1..=c.len() {
        let copy = c.replica(j, &internal(key)).await;
        let dots: Vec<_> = copy.iter().map(|s| (s.dot.clone(), s.timestamp)).collect();
        let removed = match resolve(&copy) {
            Ok(Some((Value::Set(s), _))) => format!("{:?}", s.dots_of(b"removed")),
            other => format!("{other:?}"),
        };
        shown += &format!("\n  n{j}: siblings {dots:?}, 'removed' kept by {removed}");
    }
    shown
}

/// Wait until node `i` no longer counts `peer` as up.
async fn suspects(c: &Cluster, i: usize, peer: usize) {
    eventually(Duration::from_secs(15), "the cut is noticed", async || {
        let status = c.request(Method::GET, i, "/status", &[], None).await.json();
        let liveness = status["members"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["id"] == format!("n{peer}")))
            .map(|m| m["liveness"].to_string());
        (liveness.as_deref() != Some("\"up\""))
            .then_some(())
            .ok_or(format!("n{i} sees n{peer} as {liveness:?}"))
    })
    .await;
}

/// Increments acknowledged and of unknown outcome (never retried).
#[derive(Default, Debug)]
struct Tally {
    acked: i64,
    unknown: i64,
}

fn incr(redis: &mut Redis, key: &str, by: i64, tally: &mut Tally) {
    match redis.call(&["INCRBY", key, &by.to_string()]) {
        Reply::Int(_) => tally.acked += by,
        Reply::Error(e) if e.contains("may or may not") => tally.unknown += by,
        other => panic!("INCRBY {key} {by}: {other:?}"),
    }
}

/// A Redis key whose replicas are n1, n2, n3 (of five).
fn key_on_1_2_3(c: &Cluster, prefix: &str) -> String {
    (0..)
        .map(|k| format!("{prefix}{k}"))
        .find(|k| c.preference_list(&internal(k)) == [1, 2, 3])
        .unwrap()
}

/// Five nodes split {n1, n4} | {n2, n3, n5}: each side holds a replica of
/// the keys (n1; n2 and n3) and a node to stand in for the others, so both
/// take writes (n4 keeps n1's side's copies as hints) and neither sees the
/// other's: the states really are concurrent, and only the CRDT join of
/// the siblings they leave keeps every update.
#[tokio::test]
async fn increments_and_adds_on_both_sides_of_a_partition_all_count() {
    let c = Cluster::start(5).await;
    let (cart, hits) = (key_on_1_2_3(&c, "cart"), key_on_1_2_3(&c, "hits"));
    let (cart, hits) = (cart.as_str(), hits.as_str());
    let qty = key_on_1_2_3(&c, "qty");
    let qty = qty.as_str();
    let (list, board) = (key_on_1_2_3(&c, "list"), key_on_1_2_3(&c, "board"));
    let (list, board) = (list.as_str(), board.as_str());
    let mut n1 = Redis::connect(c.resp_addr(1));
    let mut n2 = Redis::connect(c.resp_addr(2));
    assert_eq!(n1.call(&["SADD", cart, "shared", "removed"]), Reply::Int(2));
    assert_eq!(n1.call(&["SET", hits, "100"]), common::redis::ok());
    assert_eq!(n1.call(&["HSET", qty, "sku", "1"]), Reply::Int(1));

    let links = [(1, 2), (1, 3), (1, 5), (4, 2), (4, 3), (4, 5)];
    for (a, b) in links {
        c.cut(a, b).await;
    }
    for (a, b) in [(1, 2), (1, 3), (2, 1)] {
        suspects(&c, a, b).await;
    }
    let mut tally = Tally::default();
    for i in 0..10 {
        assert_eq!(
            n1.call(&["SADD", cart, &format!("n1-item{i}")]),
            Reply::Int(1)
        );
        assert_eq!(
            n2.call(&["SADD", cart, &format!("n2-item{i}")]),
            Reply::Int(1)
        );
        incr(&mut n1, hits, 1, &mut tally);
        incr(&mut n2, hits, 3, &mut tally);
        assert!(matches!(
            n1.call(&["HINCRBY", qty, "sku", "1"]),
            Reply::Int(_)
        ));
        assert!(matches!(
            n2.call(&["HINCRBY", qty, "sku", "2"]),
            Reply::Int(_)
        ));
        for (redis, side) in [(&mut n1, "n1"), (&mut n2, "n2")] {
            let item = format!("{side}-item{i}");
            assert!(matches!(redis.call(&["RPUSH", list, &item]), Reply::Int(_)));
            let score = i.to_string();
            assert_eq!(redis.call(&["ZADD", board, &score, &item]), Reply::Int(1));
        }
    }
    // A remove on one side of what both saw; a re-add on the other of
    // something removed before the cut would be an add it never observed.
    assert_eq!(n2.call(&["SREM", cart, "removed"]), Reply::Int(1));
    assert_eq!(n1.call(&["HSET", qty, "n1-field", "a"]), Reply::Int(1));
    assert_eq!(n2.call(&["HSET", qty, "n2-field", "b"]), Reply::Int(1));
    assert_eq!(n1.call(&["SADD", cart, "shared"]), Reply::Int(0));
    assert!(
        tally.acked >= 20,
        "most increments are acknowledged: {tally:?}"
    );
    for (a, b) in links {
        c.heal(a, b).await;
    }

    let mut want: Vec<String> = (0..10)
        .flat_map(|i| [format!("n1-item{i}"), format!("n2-item{i}")])
        .chain(["shared".to_string()])
        .collect();
    want.sort();
    // Every push of both sides once, each side's in the order it pushed;
    // every scored member.
    for i in 1..=5 {
        let mut redis = Redis::connect(c.resp_addr(i));
        eventually(
            Duration::from_secs(30),
            "lists and sorted sets merge",
            async || {
                let Reply::Array(items) = redis.call(&["LRANGE", list, "0", "-1"]) else {
                    return Err("LRANGE is not an array".into());
                };
                let items: Vec<String> = items
                    .iter()
                    .map(|r| match r {
                        Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
                        other => format!("{other:?}"),
                    })
                    .collect();
                let side = |s: &str| -> Vec<String> {
                    items.iter().filter(|x| x.starts_with(s)).cloned().collect()
                };
                let pushed =
                    |s: &str| -> Vec<String> { (0..10).map(|i| format!("{s}-item{i}")).collect() };
                let zcard = redis.call(&["ZCARD", board]);
                if items.len() == 20
                    && side("n1") == pushed("n1")
                    && side("n2") == pushed("n2")
                    && zcard == Reply::Int(20)
                {
                    return Ok(());
                }
                Err(format!("via n{i}: LRANGE {items:?}, ZCARD {zcard:?}"))
            },
        )
        .await;
    }
    // Reads through every node answer everything once the healed links
    // carry the other side's versions (hints, read repair of these reads).
    let counted = 100 + tally.acked..=100 + tally.acked + tally.unknown;
    for i in 1..=5 {
        let mut redis = Redis::connect(c.resp_addr(i));
        eventually(
            Duration::from_secs(30),
            "reads see both sides",
            async || {
                let value = redis.call(&["GET", hits]);
                let cardinality = redis.call(&["SCARD", cart]);
                let quantity = redis.call(&["HGET", qty, "sku"]);
                let fields = redis.call(&["HLEN", qty]);
                if quantity != common::redis::bulk("31") || fields != Reply::Int(3) {
                    return Err(format!("via n{i}: HGET {quantity:?}, HLEN {fields:?}"));
                }
                let Reply::Bulk(Some(v)) = &value else {
                    return Err(format!("GET {hits} via n{i}: {value:?}"));
                };
                let v: i64 = String::from_utf8_lossy(v).parse().unwrap_or(-1);
                let all = cardinality == Reply::Int(want.len() as i64) && counted.contains(&v);
                if all {
                    return Ok(());
                }
                Err(format!(
                    "via n{i}: {v} counted, SCARD {cardinality:?}, {tally:?}{}",
                    copies(&c, cart).await
                ))
            },
        )
        .await;
    }
    // Every copy converges (read repair, hints, anti-entropy).
    eventually(
        Duration::from_secs(30),
        "every copy converges",
        async || {
            for i in 1..=3 {
                let (counter, set) = (held(&c, i, hits).await, held(&c, i, cart).await);
                let Some(Value::Counter(counter)) = counter else {
                    return Err(format!("n{i} holds {counter:?} for {hits}"));
                };
                let Some(Value::Set(set)) = set else {
                    return Err(format!("n{i} holds {set:?} for {cart}"));
                };
                let members: Vec<String> = set
                    .iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned())
                    .collect();
                let counted = counter.value() - 100;
                let counted_ok = (tally.acked..=tally.acked + tally.unknown).contains(&counted);
                if members != want || !counted_ok {
                    return Err(format!("n{i}: {members:?}, counted {counted} of {tally:?}"));
                }
            }
            Ok(())
        },
    )
    .await;
}
