//! Expiry with real processes: keys written with a 2 s TTL over RESP
//! (`SET … EX`) and HTTP (`?ttl=`) read as missing after it through every
//! node, including one that was down when they expired; then they leave
//! every store. `TTL` counts down; `PERSIST`, `EXPIRE k 0` and updates
//! behave as in Redis.

mod common;

use common::redis::{ok, Redis, Reply};
use common::{eventually, key_path, Cluster};
use reqwest::Method;
use std::time::{Duration, Instant};

/// Collection a second after expiry, anti-entropy fast enough that a
/// node back from an outage agrees within seconds.
const FAST_GC: &str = "
[gc]
grace_ms = 1000
interval_ms = 100

[anti_entropy]
interval_ms = 20
keys_per_second = 200000
";

fn int(reply: Reply) -> i64 {
    match reply {
        Reply::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_with_a_ttl_vanish_on_every_node_a_down_one_included_then_leave_every_store() {
    let mut c = Cluster::start_with(3, FAST_GC).await;
    let mut n1 = Redis::connect(c.resp_addr(1));
    let written = Instant::now();
    assert_eq!(n1.call(&["SET", "cart:1", "apple", "EX", "2"]), ok());
    assert_eq!(n1.call(&["SETEX", "cart:2", "2", "pear"]), ok());
    let session = format!("{}?ttl=2", key_path("session"));
    c.request(Method::PUT, 2, &session, &[], Some(b"s1".to_vec()))
        .await
        .expect(204);
    let ttl = int(n1.call(&["TTL", "cart:1"]));
    assert!((1..=2).contains(&ttl), "TTL right after SET EX 2: {ttl}");
    let pttl = int(n1.call(&["PTTL", "cart:2"]));
    assert!((1..=2000).contains(&pttl), "PTTL: {pttl}");
    let read = c.get(3, "session").await.expect(200);
    assert_eq!(read.body, b"s1");
    let expires: u64 = read
        .header("x-ringkv-expires-at")
        .expect("the expiry is shown")
        .parse()
        .unwrap();
    assert!(expires > 0);

    // n3 is down when they expire.
    c.kill(3);
    let left = Duration::from_millis(2_300).saturating_sub(written.elapsed());
    tokio::time::sleep(left).await;
    for i in 1..=2 {
        let mut redis = Redis::connect(c.resp_addr(i));
        for key in ["cart:1", "cart:2"] {
            assert_eq!(
                redis.call(&["GET", key]),
                Reply::Bulk(None),
                "{key} via n{i}"
            );
            assert_eq!(redis.call(&["TTL", key]), Reply::Int(-2), "{key} via n{i}");
            assert_eq!(
                redis.call(&["EXISTS", key]),
                Reply::Int(0),
                "{key} via n{i}"
            );
        }
        c.get(i, "session").await.expect(404);
    }
    c.restart(3).await;
    let mut n3 = Redis::connect(c.resp_addr(3));
    for key in ["cart:1", "cart:2"] {
        assert_eq!(n3.call(&["GET", key]), Reply::Bulk(None), "{key} via n3");
    }
    c.get_with(3, "session", Some(1), false).await.expect(404);

    // Every store lets them go: nothing else was written.
    for i in 1..=3 {
        eventually(Duration::from_secs(60), "every store empties", async || {
            let keys = c.status(i).await["stored_keys"].as_u64().unwrap();
            (keys == 0)
                .then_some(())
                .ok_or(format!("n{i} holds {keys} keys"))
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_counts_down_and_persist_expire_and_updates_act_as_in_redis() {
    let c = Cluster::start(3).await;
    let mut n1 = Redis::connect(c.resp_addr(1));
    let mut n2 = Redis::connect(c.resp_addr(2));
    assert_eq!(n1.call(&["SET", "k", "v", "EX", "100"]), ok());
    let first = int(n2.call(&["TTL", "k"]));
    assert!(
        (99..=100).contains(&first),
        "TTL right after SET EX 100: {first}"
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let later = int(n2.call(&["TTL", "k"]));
    assert!(
        (97..first).contains(&later),
        "counts down: {first} then {later}"
    );
    assert_eq!(n1.call(&["PERSIST", "k"]), Reply::Int(1));
    assert_eq!(n2.call(&["TTL", "k"]), Reply::Int(-1));
    assert_eq!(n2.call(&["PERSIST", "k"]), Reply::Int(0));
    assert_eq!(n1.call(&["EXPIRE", "k", "50"]), Reply::Int(1));
    assert!((49..=50).contains(&int(n2.call(&["TTL", "k"]))));
    // SET without EX clears the TTL; an update keeps it.
    assert_eq!(n2.call(&["SET", "k", "w"]), ok());
    assert_eq!(n1.call(&["TTL", "k"]), Reply::Int(-1));
    assert_eq!(n1.call(&["SET", "n", "1", "PX", "100000"]), ok());
    assert_eq!(n2.call(&["INCR", "n"]), Reply::Int(2));
    assert!(
        (99..=100).contains(&int(n1.call(&["TTL", "n"]))),
        "INCR keeps the TTL"
    );
    assert_eq!(n1.call(&["SADD", "s", "a"]), Reply::Int(1));
    assert_eq!(n1.call(&["EXPIRE", "s", "30"]), Reply::Int(1));
    assert_eq!(n2.call(&["SADD", "s", "b"]), Reply::Int(1));
    assert!(
        (29..=30).contains(&int(n1.call(&["TTL", "s"]))),
        "SADD keeps the TTL"
    );
    // EXPIRE of 0 deletes; of a missing key answers 0.
    assert_eq!(n1.call(&["EXPIRE", "k", "0"]), Reply::Int(1));
    assert_eq!(n2.call(&["GET", "k"]), Reply::Bulk(None));
    assert_eq!(n2.call(&["EXPIRE", "k", "10"]), Reply::Int(0));
    assert_eq!(n2.call(&["TTL", "missing"]), Reply::Int(-2));
    // Errors as Redis words them.
    for (args, error) in [
        (
            &["SET", "k", "v", "EX", "0"][..],
            "ERR invalid expire time in 'set' command",
        ),
        (
            &["SETEX", "k", "-1", "v"][..],
            "ERR invalid expire time in 'setex' command",
        ),
        (
            &["EXPIRE", "k", "soon"][..],
            "ERR value is not an integer or out of range",
        ),
    ] {
        assert_eq!(n1.call(args), Reply::Error(error.into()), "{args:?}");
    }
    // HTTP: a TTL of 0, or two that disagree, is a 400 with a sentence.
    let zero = format!("{}?ttl=0", key_path("h"));
    let refused = c
        .request(Method::PUT, 1, &zero, &[], Some(b"v".to_vec()))
        .await;
    assert!(refused
        .expect(400)
        .text()
        .contains("ttl must be at least 1 second"));
    let both = format!("{}?ttl=5", key_path("h"));
    let headers = [("x-ringkv-ttl", "6")];
    let refused = c
        .request(Method::PUT, 1, &both, &headers, Some(b"v".to_vec()))
        .await;
    assert!(refused.expect(400).text().contains("disagree"));
    let negative = format!("{}?ttl=-1", key_path("h"));
    let refused = c
        .request(Method::PUT, 1, &negative, &[], Some(b"v".to_vec()))
        .await;
    let sentence = refused.expect(400).text();
    assert!(
        sentence.contains("ttl must be a whole number of seconds"),
        "{sentence}"
    );
    // Digits past u64 are too many seconds, not "not a whole number".
    let huge = format!("{}?ttl=99999999999999999999", key_path("h"));
    let refused = c
        .request(Method::PUT, 1, &huge, &[], Some(b"v".to_vec()))
        .await;
    let sentence = refused.expect(400).text();
    assert!(sentence.contains("ttl must be at most"), "{sentence}");
    // A TTL header where it does not apply is refused, not ignored.
    let refused = c
        .request(Method::POST, 1, "/counter/c", &headers, None)
        .await;
    assert!(refused
        .expect(400)
        .text()
        .contains("applies to PUT /kv only"));
}
