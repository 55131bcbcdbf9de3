//! The Redis protocol front end, end to end: real nodes, a tiny RESP2
//! client over a TCP stream (redis-cli is not needed), commands through
//! different nodes, pipelining, last-write-wins after a partition, a
//! keyspace apart from HTTP's, and bad input that never takes a node down.

mod common;

use common::redis::{bulk, ok, request, Redis, Reply};
use common::{eventually, Cluster};
use ringkv_core::keyspace::lww_key;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[tokio::test]
async fn commands_round_trip_through_different_nodes() {
    let c = Cluster::start(3).await;
    let mut n1 = Redis::connect(c.resp_addr(1));
    let mut n2 = Redis::connect(c.resp_addr(2));
    let mut n3 = Redis::connect(c.resp_addr(3));

    assert_eq!(n1.call(&["PING"]), Reply::Simple("PONG".into()));
    assert_eq!(n1.call(&["ping", "hi"]), bulk("hi"));
    assert_eq!(n1.call(&["ECHO", "a b"]), bulk("a b"));
    assert_eq!(n1.call(&["SET", "greeting", "hello"]), ok());
    assert_eq!(n2.call(&["GET", "greeting"]), bulk("hello"));
    assert_eq!(n3.call(&["get", "greeting"]), bulk("hello"));
    assert_eq!(n3.call(&["GET", "missing"]), Reply::Bulk(None));

    assert_eq!(n2.call(&["MSET", "a", "1", "b", "2", "a", "3"]), ok());
    let got = n3.call(&["MGET", "a", "b", "missing"]);
    assert_eq!(
        got,
        Reply::Array(vec![bulk("3"), bulk("2"), Reply::Bulk(None)])
    );
    assert_eq!(
        n1.call(&["EXISTS", "a", "b", "missing", "a"]),
        Reply::Int(3)
    );
    assert_eq!(n1.call(&["DEL", "a", "missing", "a"]), Reply::Int(1));
    assert_eq!(n2.call(&["GET", "a"]), Reply::Bulk(None));
    assert_eq!(n3.call(&["EXISTS", "a"]), Reply::Int(0));
    assert_eq!(n3.call(&["SET", "", "empty keys are keys"]), ok());
    assert_eq!(n1.call(&["GET", ""]), bulk("empty keys are keys"));

    let Reply::Bulk(Some(info)) = n3.call(&["INFO"]) else {
        panic!("INFO is a bulk string");
    };
    let info = String::from_utf8(info).unwrap();
    let fingerprint = format!("ring_fingerprint:{}", common::ring_fingerprint(3));
    for field in [
        "redis_version:",
        "node:n3",
        "members:n1,n2,n3",
        "n:3",
        &fingerprint,
    ] {
        assert!(info.contains(field), "no {field:?} in INFO:\n{info}");
    }
    assert_eq!(n1.call(&["COMMAND"]), Reply::Array(Vec::new()));
    assert_eq!(
        n1.call(&["CONFIG", "GET", "save"]),
        Reply::Array(vec![bulk("save"), bulk("")])
    );
    let appendonly = Reply::Array(vec![bulk("appendonly"), bulk("no")]);
    assert_eq!(n1.call(&["CONFIG", "GET", "appendonly"]), appendonly);
    assert_eq!(n1.call(&["SELECT", "0"]), ok());
    assert_eq!(n1.call(&["CLIENT", "SETNAME", "test"]), ok());

    for (args, expected) in [
        (&["FLUSHALL"][..], "ERR unknown command 'FLUSHALL'"),
        (
            &["GET"][..],
            "ERR wrong number of arguments for 'get' command",
        ),
        (
            &["SET", "k", "v", "NX"][..],
            "ERR SET option 'NX' is not supported",
        ),
        (&["SELECT", "1"][..], "ERR DB index is out of range"),
    ] {
        match n2.call(args) {
            Reply::Error(e) => assert!(e.starts_with(expected), "{args:?}: {e}"),
            other => panic!("{args:?} answered {other:?}"),
        }
    }
    assert_eq!(n2.call(&["QUIT"]), ok());
    assert!(n2.is_closed(), "QUIT closes the connection");
}

#[tokio::test]
async fn redis_keys_are_a_keyspace_apart_from_http() {
    let c = Cluster::start(3).await;
    let mut redis = Redis::connect(c.resp_addr(1));
    assert_eq!(redis.call(&["SET", "shared", "via redis"]), ok());
    c.get(2, "shared").await.expect(404);
    c.put(3, "shared", "via http").await.expect(204);
    assert_eq!(redis.call(&["GET", "shared"]), bulk("via redis"));
    assert_eq!(c.get(1, "shared").await.expect(200).text(), "via http");

    // The Redis keyspace's internal keys cannot be reached over HTTP.
    let internal = String::from_utf8(lww_key(b"shared")).unwrap();
    let resp = c.get(1, &internal).await.expect(400);
    assert!(resp.text().contains("reserved"), "{}", resp.text());
    c.put(1, &internal, "sneaky").await.expect(400);
    assert_eq!(redis.call(&["GET", "shared"]), bulk("via redis"));
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let c = Cluster::start(3).await;
    let mut redis = Redis::connect(c.resp_addr(2));
    let keys: Vec<String> = (0..16).map(|i| format!("pipe:{i}")).collect();
    let sets: Vec<u8> = keys
        .iter()
        .flat_map(|k| request(&["SET", k, &format!("value of {k}")]))
        .collect();
    redis.send(&sets);
    for k in &keys {
        assert_eq!(redis.reply(), ok(), "SET {k}");
    }
    let gets: Vec<u8> = keys.iter().flat_map(|k| request(&["GET", k])).collect();
    redis.send(&gets);
    for k in &keys {
        assert_eq!(redis.reply(), bulk(&format!("value of {k}")), "GET {k}");
    }

    // Commands on one key take effect in the order they were sent.
    let same_key = [
        &["SET", "p", "a"][..],
        &["SET", "p", "b"],
        &["GET", "p"],
        &["DEL", "p"],
        &["GET", "p"],
        &["SET", "p", "c"],
        &["EXISTS", "p"],
    ];
    redis.send(
        &same_key
            .iter()
            .flat_map(|args| request(args))
            .collect::<Vec<u8>>(),
    );
    let expected = [
        ok(),
        ok(),
        bulk("b"),
        Reply::Int(1),
        Reply::Bulk(None),
        ok(),
        Reply::Int(1),
    ];
    for (args, want) in same_key.iter().zip(expected) {
        assert_eq!(redis.reply(), want, "{args:?}");
    }
}

/// Two writes to one key through the two sides of a cut link: the second
/// is coordinated by a node that may not have seen the first (then both
/// are siblings on the replica both reach) or by n3, which holds the first
/// (a hedged forward: then it overwrites it). Either way every node's GET
/// answers the later one, and a later write overwrites all instead of
/// adding another.
#[tokio::test]
async fn the_later_write_wins_after_a_partition() {
    // No anti-entropy: it could copy the first write across before the
    // second, which would then simply supersede it.
    let c = Cluster::start_with(3, "[anti_entropy]\nenabled = false\n").await;
    let key = (0..)
        .map(|k| format!("lww{k}"))
        .find(|k| c.preference_list(&internal(k)) == [1, 2, 3])
        .unwrap();
    let internal = internal(&key);
    c.cut(1, 2).await;
    let mut n1 = Redis::connect(c.resp_addr(1));
    let mut n2 = Redis::connect(c.resp_addr(2));
    assert_eq!(n1.call(&["SET", &key, "first"]), ok());
    tokio::time::sleep(Duration::from_millis(20)).await;
    // n2 cannot reach the coordinator n1: the next candidate coordinates.
    assert_eq!(n2.call(&["SET", &key, "second"]), ok());
    let on_n3 = c.replica(3, &internal).await;
    assert!(
        (1..=2).contains(&on_n3.len()),
        "n3 holds the second write, beside the first or over it: {on_n3:?}"
    );
    c.heal(1, 2).await;

    for i in 1..=3 {
        let mut redis = Redis::connect(c.resp_addr(i));
        assert_eq!(redis.call(&["GET", &key]), bulk("second"), "via n{i}");
    }
    c.get(1, &key).await.expect(404);

    eventually(
        Duration::from_secs(10),
        "read repair reaches n1",
        async || {
            let held = c.replica(1, &internal).await;
            (held == on_n3)
                .then_some(())
                .ok_or(format!("n1 holds {held:?}"))
        },
    )
    .await;
    assert_eq!(n1.call(&["SET", &key, "third"]), ok());
    eventually(
        Duration::from_secs(10),
        "one version everywhere",
        async || {
            let mut held = Vec::new();
            for i in 1..=3 {
                held.push(c.replica(i, &internal).await.len());
            }
            (held == [1, 1, 1]).then_some(()).ok_or(format!("{held:?}"))
        },
    )
    .await;
    assert_eq!(n2.call(&["GET", &key]), bulk("third"));
}

/// The internal key of Redis key `key`, as the harness's `&str` keys.
fn internal(key: &str) -> String {
    String::from_utf8(lww_key(key.as_bytes())).unwrap()
}

/// Write `bytes` on a fresh connection and read what comes back until the
/// server closes or goes quiet.
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    // The server may close before reading everything; that is its right.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

#[tokio::test]
async fn bad_input_gets_an_error_or_a_close_and_the_node_keeps_serving() {
    let mut c = Cluster::start(3).await;
    let addr = c.resp_addr(1);
    let oversize = request(&[&b"SET"[..], b"k", &vec![b'x'; 1024 * 1024 + 1]]);
    let cases: [(&str, Vec<u8>); 6] = [
        ("garbage", b"*2\r\n\x00\xffnot redis at all\r\n".to_vec()),
        ("an unbalanced quote", b"SET k \"unterminated\r\n".to_vec()),
        ("an absurd bulk length", b"*1\r\n$99999999999\r\n".to_vec()),
        ("an absurd argument count", b"*99999999999\r\n".to_vec()),
        ("deep nesting", b"*1\r\n".repeat(100_000)),
        ("an oversize value", oversize),
    ];
    for (what, bytes) in cases {
        let answer = String::from_utf8_lossy(&raw_exchange(addr, &bytes)).into_owned();
        // A node that closes with bytes still unread resets the connection,
        // which may discard its error reply before the client reads it.
        let unread = bytes.len() > 64 * 1024;
        assert!(
            answer.starts_with("-ERR Protocol error") || (unread && answer.is_empty()),
            "{what}: {answer:?}"
        );
        let mut redis = Redis::connect(addr);
        assert_eq!(
            redis.call(&["PING"]),
            Reply::Simple("PONG".into()),
            "after {what}"
        );
    }

    // A NUL ends an inline line, as in Redis: a TLS `ClientHello` or a
    // stray NUL once made the node loop, growing until it was killed.
    let answer = raw_exchange(addr, b"PING \x00junk\r\n\x16\x03\x01\x00\xa5\r\n");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.starts_with("+PONG\r\n-ERR unknown command"),
        "a NUL in an inline line: {answer:?}"
    );

    // A key over the limit is refused, and the connection carries on.
    let mut redis = Redis::connect(addr);
    let long_key = "k".repeat(1023);
    match redis.call(&["SET", &long_key, "v"]) {
        Reply::Error(e) => assert!(e.contains("at most 1022 bytes"), "{e}"),
        other => panic!("a 1023-byte key got {other:?}"),
    }
    assert_eq!(redis.call(&["SET", &long_key[1..], "v"]), ok());
    assert_eq!(redis.call(&["PING"]), Reply::Simple("PONG".into()));
    assert!(c.is_alive(1), "n1 survived");
}

#[tokio::test]
async fn quorum_failures_are_error_replies() {
    let mut c = Cluster::start(3).await;
    c.kill(2);
    c.kill(3);
    let mut redis = Redis::connect(c.resp_addr(1));
    match redis.call(&["SET", "k", "v"]) {
        Reply::Error(e) => assert!(e.starts_with("ERR put needed 2 of 3 replicas"), "{e}"),
        other => panic!("SET without a quorum answered {other:?}"),
    }
    assert_eq!(redis.call(&["PING"]), Reply::Simple("PONG".into()));
}

/// `SCAN` pages through the ring from any node: on four nodes (three
/// replicas each) the cursor moves between nodes, and a whole iteration
/// returns every key at least once — filtered by `MATCH` and `TYPE` — as
/// does `KEYS` and redis-cli's `--scan`. Deleted keys and HTTP keys never
/// show.
#[tokio::test]
async fn scan_and_keys_cover_the_ring_through_any_node() {
    let c = Cluster::start(4).await;
    let mut n1 = Redis::connect(c.resp_addr(1));
    let mut want = std::collections::BTreeSet::new();
    for i in 0..150 {
        let key = format!("user:{i}");
        assert_eq!(n1.call(&["SET", &key, "v"]), ok());
        want.insert(key);
    }
    for i in 0..20 {
        let key = format!("cart:{i}");
        assert_eq!(n1.call(&["SADD", &key, "sku"]), Reply::Int(1));
        want.insert(key);
    }
    assert_eq!(n1.call(&["DEL", "user:7"]), Reply::Int(1));
    want.remove("user:7");
    c.put(2, "http-key", "not a Redis key").await.expect(204);

    let mut n2 = Redis::connect(c.resp_addr(2));
    let scanned = |redis: &mut Redis, options: &[&str]| {
        let (mut cursor, mut seen, mut calls) = ("0".to_string(), Vec::new(), 0);
        loop {
            let args: Vec<&str> = ["SCAN", cursor.as_str()]
                .iter()
                .copied()
                .chain(options.iter().copied())
                .collect();
            let Reply::Array(reply) = redis.call(&args) else {
                panic!("SCAN reply");
            };
            let [Reply::Bulk(Some(next)), Reply::Array(keys)] = &reply[..] else {
                panic!("SCAN reply {reply:?}");
            };
            calls += 1;
            for key in keys {
                let Reply::Bulk(Some(key)) = key else {
                    panic!("{key:?}")
                };
                seen.push(String::from_utf8(key.clone()).unwrap());
            }
            cursor = String::from_utf8(next.clone()).unwrap();
            if cursor == "0" {
                return (seen, calls);
            }
        }
    };
    let (all, calls) = scanned(&mut n2, &["COUNT", "7"]);
    assert!(
        calls > 10,
        "COUNT 7 over 171 keys takes many pages: {calls}"
    );
    let distinct: std::collections::BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(distinct, want, "every key at least once, nothing else");

    let (carts, _) = scanned(
        &mut n2,
        &["MATCH", "cart:*", "TYPE", "set", "COUNT", "1000"],
    );
    let carts: std::collections::BTreeSet<String> = carts.into_iter().collect();
    assert_eq!(carts.len(), 20);
    assert!(carts.iter().all(|k| k.starts_with("cart:")));
    let (none, _) = scanned(&mut n2, &["MATCH", "cart:*", "TYPE", "string"]);
    assert!(none.is_empty(), "{none:?}");

    let Reply::Array(keys) = n1.call(&["KEYS", "user:1?"]) else {
        panic!("KEYS reply");
    };
    assert_eq!(keys.len(), 10, "user:10 … user:19");

    let port = c.resp_addr(3).port().to_string();
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port, "--scan", "--pattern", "user:*"])
        .output()
        .expect("redis-cli runs (scripts/test installs redis-tools)");
    let listed: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        listed.len(),
        149,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
