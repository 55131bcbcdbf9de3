//! Counters, sets and hashes over HTTP (`/counter/{key}`,
//! `/set/{key}[/{member}]`, `/hash/{key}[/{field}]`)
//! and in the Rust client, against real node processes: they are the
//! Redis keyspace's own counters and sets (an `INCR` and a `POST` count on
//! one counter), refuse the wrong type with `409`, count in the request
//! metrics under their own ops, follow the auth rules of `/kv`; the client
//! routes them to their coordinator with no forwarding hop, and never sends
//! an increment to a second node once the first may have applied it.

mod common;

use common::redis::{bulk, Redis, Reply};
use common::users::Users;
use common::{send, Cluster, Resp};
use reqwest::Method;
use ringkv_client::{Client, Error, Options, Routing};
use serde_json::json;
use std::time::Duration;

async fn call(c: &Cluster, i: usize, method: Method, path: &str) -> Resp {
    c.request(method, i, path, &[], None).await
}

#[track_caller]
fn assert_json(resp: Resp, status: u16, body: serde_json::Value) {
    let resp = resp.expect(status);
    assert_eq!(resp.json(), body);
}

#[track_caller]
fn assert_refused(resp: &Resp, status: u16, sentence: &str) {
    assert_eq!(resp.status, status, "{}", resp.text());
    assert_eq!(resp.text().trim_end(), sentence);
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[tokio::test]
async fn an_http_counter_is_the_redis_counter() {
    let c = Cluster::start(3).await;
    let mut redis = Redis::connect(c.resp_addr(3));

    call(&c, 1, Method::GET, "/counter/hits").await.expect(404);
    assert_json(
        call(&c, 1, Method::POST, "/counter/hits").await,
        200,
        json!({"value": 1}),
    );
    assert_json(
        call(&c, 2, Method::POST, "/counter/hits?by=5").await,
        200,
        json!({"value": 6}),
    );
    assert_json(
        call(&c, 3, Method::POST, "/counter/hits?by=-2").await,
        200,
        json!({"value": 4}),
    );
    // One counter: Redis reads and increments what HTTP did, and back.
    assert_eq!(redis.call(&["GET", "hits"]), bulk("4"));
    assert_eq!(redis.call(&["INCR", "hits"]), Reply::Int(5));
    assert_eq!(
        redis.call(&["TYPE", "hits"]),
        Reply::Simple("string".into())
    );
    for i in 1..=3 {
        let resp = call(&c, i, Method::GET, "/counter/hits").await;
        assert!(resp.headers.contains_key("x-ringkv-ring"), "{resp:?}");
        assert_json(resp, 200, json!({"value": 5}));
    }
    // The /kv key of the same name is another key.
    c.get(1, "hits").await.expect(404);

    // A Redis string holding an integer is a counter's start, as for INCR.
    assert_eq!(
        redis.call(&["SET", "ten", "10"]),
        Reply::Simple("OK".into())
    );
    assert_json(
        call(&c, 1, Method::GET, "/counter/ten").await,
        200,
        json!({"value": 10}),
    );
    assert_json(
        call(&c, 2, Method::POST, "/counter/ten").await,
        200,
        json!({"value": 11}),
    );
    assert_eq!(redis.call(&["GET", "ten"]), bulk("11"));

    // The wrong type: 409 and the sentence (without Redis's "ERR ").
    assert_eq!(
        redis.call(&["SET", "word", "hello"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(redis.call(&["SADD", "cart", "apple"]), Reply::Int(1));
    let not_integer = "value is not an integer or out of range";
    for method in [Method::GET, Method::POST] {
        let resp = call(&c, 1, method.clone(), "/counter/word").await;
        assert_refused(&resp, 409, not_integer);
        let resp = call(&c, 1, method, "/counter/cart").await;
        assert_refused(&resp, 409, WRONGTYPE);
    }
    let max = i64::MAX;
    call(&c, 1, Method::POST, &format!("/counter/big?by={max}"))
        .await
        .expect(200);
    let resp = call(&c, 1, Method::POST, "/counter/big").await;
    assert_refused(&resp, 409, "increment or decrement would overflow");

    // Bad requests change nothing.
    for query in ["?by=x", "?by=1.5", "?by=99999999999999999999", "?step=1"] {
        let resp = call(&c, 1, Method::POST, &format!("/counter/hits{query}")).await;
        assert_eq!(resp.status, 400, "{query}: {}", resp.text());
    }
    let resp = c
        .request(Method::POST, 1, "/counter/hits", &[], Some(b"5".to_vec()))
        .await;
    assert_refused(
        &resp,
        400,
        "this request takes no body: the increment goes in ?by=",
    );
    let long = "k".repeat(1023);
    let resp = call(&c, 1, Method::POST, &format!("/counter/{long}")).await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(
        resp.text().contains("at most 1022 bytes"),
        "{}",
        resp.text()
    );
    assert_json(
        call(&c, 1, Method::GET, "/counter/hits").await,
        200,
        json!({"value": 5}),
    );

    // DELETE is Redis's DEL.
    assert_json(
        call(&c, 2, Method::DELETE, "/counter/hits").await,
        200,
        json!({"deleted": 1}),
    );
    call(&c, 1, Method::GET, "/counter/hits").await.expect(404);
    assert_eq!(redis.call(&["EXISTS", "hits"]), Reply::Int(0));
    assert_json(
        call(&c, 2, Method::DELETE, "/counter/hits").await,
        200,
        json!({"deleted": 0}),
    );
}

/// `/hash/{key}[/{field}]` is the Redis hash: `HSET` through HTTP reads
/// back with `HGET`, `HINCRBY` on either side counts on one field, and a
/// set is refused as the wrong type.
#[tokio::test]
async fn an_http_hash_is_the_redis_hash() {
    let c = Cluster::start(3).await;
    let mut redis = Redis::connect(c.resp_addr(3));
    call(&c, 1, Method::GET, "/hash/cart").await.expect(404);
    let put = c
        .request(
            Method::PUT,
            1,
            "/hash/cart/note",
            &[],
            Some(b"gift wrap".to_vec()),
        )
        .await;
    assert_json(put, 200, json!({"added": 1}));
    let again = c
        .request(
            Method::PUT,
            2,
            "/hash/cart/note",
            &[],
            Some(b"none".to_vec()),
        )
        .await;
    assert_json(again, 200, json!({"added": 0}));
    assert_json(
        call(&c, 2, Method::POST, "/hash/cart/sku42?by=2").await,
        200,
        json!({"value": 2}),
    );
    assert_eq!(
        redis.call(&["HINCRBY", "cart", "sku42", "3"]),
        Reply::Int(5)
    );
    assert_eq!(redis.call(&["HGET", "cart", "note"]), bulk("none"));
    assert_json(
        call(&c, 3, Method::GET, "/hash/cart/sku42").await,
        200,
        json!({"value": "5"}),
    );
    call(&c, 3, Method::GET, "/hash/cart/nope")
        .await
        .expect(404);
    assert_json(
        call(&c, 1, Method::GET, "/hash/cart").await,
        200,
        json!({"fields": {"note": "none", "sku42": "5"}}),
    );
    assert_json(
        call(&c, 1, Method::DELETE, "/hash/cart/note").await,
        200,
        json!({"removed": 1}),
    );
    assert_eq!(redis.call(&["HLEN", "cart"]), Reply::Int(1));
    let body_on_incr = c
        .request(
            Method::POST,
            1,
            "/hash/cart/sku42",
            &[],
            Some(b"5".to_vec()),
        )
        .await;
    assert_refused(
        &body_on_incr,
        400,
        "this request takes no body: the increment goes in ?by=",
    );
    redis.call(&["SADD", "aset", "m"]);
    assert_refused(
        &call(&c, 2, Method::GET, "/hash/aset").await,
        409,
        WRONGTYPE,
    );
    assert_json(
        call(&c, 2, Method::DELETE, "/hash/cart").await,
        200,
        json!({"deleted": 1}),
    );
    assert_eq!(redis.call(&["EXISTS", "cart"]), Reply::Int(0));
}

#[tokio::test]
async fn an_http_set_is_the_redis_set_and_a_removed_member_comes_back() {
    let c = Cluster::start(3).await;
    let mut redis = Redis::connect(c.resp_addr(2));

    call(&c, 1, Method::GET, "/set/cart").await.expect(404);
    let add = |member: &str| format!("/set/cart/{}", common::encode_key(member));
    assert_json(
        call(&c, 1, Method::PUT, &add("apple")).await,
        200,
        json!({"added": 1}),
    );
    assert_json(
        call(&c, 2, Method::PUT, &add("apple")).await,
        200,
        json!({"added": 0}),
    );
    for member in ["pear", "green tea/large", "é"] {
        assert_json(
            call(&c, 3, Method::PUT, &add(member)).await,
            200,
            json!({"added": 1}),
        );
    }
    let all = ["apple", "green tea/large", "pear", "é"];
    assert_json(
        call(&c, 1, Method::GET, "/set/cart").await,
        200,
        json!({ "members": all }),
    );
    let members = |reply: Reply| match reply {
        Reply::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    };
    let expected: Vec<Reply> = all.iter().map(|m| bulk(m)).collect();
    assert_eq!(members(redis.call(&["SMEMBERS", "cart"])), expected);

    // Remove, remove again, add again: an observed-remove set.
    assert_json(
        call(&c, 2, Method::DELETE, &add("apple")).await,
        200,
        json!({"removed": 1}),
    );
    assert_json(
        call(&c, 3, Method::DELETE, &add("apple")).await,
        200,
        json!({"removed": 0}),
    );
    assert_eq!(redis.call(&["SISMEMBER", "cart", "apple"]), Reply::Int(0));
    assert_json(
        call(&c, 1, Method::PUT, &add("apple")).await,
        200,
        json!({"added": 1}),
    );
    assert_eq!(redis.call(&["SISMEMBER", "cart", "apple"]), Reply::Int(1));
    assert_eq!(redis.call(&["SREM", "cart", "pear", "é"]), Reply::Int(2));
    assert_json(
        call(&c, 3, Method::GET, "/set/cart").await,
        200,
        json!({"members": ["apple", "green tea/large"]}),
    );

    // A member only Redis can add, not UTF-8, is listed apart, in base64.
    redis.send(&common::redis::request(&[
        &b"SADD"[..],
        &b"cart"[..],
        &b"\xff\x00"[..],
    ]));
    assert_eq!(redis.reply(), Reply::Int(1));
    assert_json(
        call(&c, 1, Method::GET, "/set/cart").await,
        200,
        json!({"members": ["apple", "green tea/large"], "binary_members": ["/wA="]}),
    );
    let resp = call(&c, 1, Method::PUT, "/set/cart/%FF").await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert!(resp.text().contains("UTF-8"), "{}", resp.text());
    let resp = c
        .request(Method::PUT, 1, &add("fig"), &[], Some(b"x".to_vec()))
        .await;
    assert_eq!(resp.status, 400, "{}", resp.text());

    // The wrong type.
    assert_eq!(redis.call(&["INCR", "hits"]), Reply::Int(1));
    assert_refused(&call(&c, 1, Method::GET, "/set/hits").await, 409, WRONGTYPE);
    assert_refused(
        &call(&c, 1, Method::PUT, "/set/hits/x").await,
        409,
        WRONGTYPE,
    );

    // DELETE /set/{key} is DEL: the set reads as no key, everywhere.
    assert_json(
        call(&c, 2, Method::DELETE, "/set/cart").await,
        200,
        json!({"deleted": 1}),
    );
    call(&c, 1, Method::GET, "/set/cart").await.expect(404);
    assert_eq!(redis.call(&["EXISTS", "cart"]), Reply::Int(0));
    assert_json(
        call(&c, 3, Method::DELETE, "/set/cart/apple").await,
        200,
        json!({"removed": 0}),
    );
}

/// `ringkv_requests_total{frontend="http",op,outcome}` on node `i`.
async fn requests(c: &Cluster, i: usize, op: &str, outcome: &str) -> u64 {
    let text = call(c, i, Method::GET, "/metrics").await.expect(200).text();
    let series =
        format!("ringkv_requests_total{{frontend=\"http\",op=\"{op}\",outcome=\"{outcome}\"}} ");
    let line = text
        .lines()
        .find(|line| line.starts_with(&series))
        .unwrap_or_else(|| panic!("no {series}in /metrics"));
    line[series.len()..].parse().expect("a count")
}

#[tokio::test]
async fn counter_and_set_requests_are_counted_under_their_own_ops() {
    let c = Cluster::start(1).await;
    for op in ["counter", "incr", "smembers", "sadd", "srem", "del"] {
        assert_eq!(requests(&c, 1, op, "ok").await, 0, "{op} declared at 0");
    }
    call(&c, 1, Method::POST, "/counter/a").await.expect(200);
    call(&c, 1, Method::POST, "/counter/a?by=2")
        .await
        .expect(200);
    call(&c, 1, Method::GET, "/counter/a").await.expect(200);
    call(&c, 1, Method::GET, "/counter/none").await.expect(404);
    call(&c, 1, Method::PUT, "/set/s/m").await.expect(200);
    call(&c, 1, Method::DELETE, "/set/s/m").await.expect(200);
    call(&c, 1, Method::GET, "/set/s").await.expect(404);
    call(&c, 1, Method::DELETE, "/set/s").await.expect(200);
    call(&c, 1, Method::DELETE, "/counter/a").await.expect(200);
    // A wrong type is the client's mistake, as -WRONGTYPE is over Redis:
    // `invalid`, not a sibling `conflict`.
    call(&c, 1, Method::PUT, "/set/b/m").await.expect(200);
    call(&c, 1, Method::POST, "/counter/b").await.expect(409);
    call(&c, 1, Method::POST, "/counter/b?by=x")
        .await
        .expect(400);
    let expected = [
        ("incr", "ok", 2),
        ("counter", "ok", 2),
        ("sadd", "ok", 2),
        ("srem", "ok", 1),
        ("smembers", "ok", 1),
        ("del", "ok", 2),
        ("incr", "invalid", 2),
        ("incr", "conflict", 0),
    ];
    for (op, outcome, count) in expected {
        assert_eq!(requests(&c, 1, op, outcome).await, count, "{op} {outcome}");
    }
}

#[tokio::test]
async fn counters_and_sets_take_the_roles_of_kv() {
    let users = Users::new().await;
    let c = Cluster::start_with_token(1, &users.toml(None), &users.admin).await;
    let bearer = |token: &str| format!("Bearer {token}");
    let (reader, writer) = (bearer(&users.reader), bearer(&users.writer));
    let http = common::http_client();
    let ask = |method: Method, path: &str, auth: Option<&str>| {
        let url = c.url(1, path);
        let http = http.clone();
        let auth = auth.map(str::to_string);
        async move {
            let headers: Vec<(&str, &str)> = match &auth {
                Some(value) => vec![("authorization", value.as_str())],
                None => Vec::new(),
            };
            send(&http, method, &url, &headers, None)
                .await
                .expect("answered")
        }
    };
    for (method, path) in [
        (Method::GET, "/counter/k"),
        (Method::POST, "/counter/k"),
        (Method::GET, "/set/s"),
        (Method::PUT, "/set/s/m"),
    ] {
        let resp = ask(method.clone(), path, None).await;
        assert_eq!(resp.status, 401, "{method} {path}: {}", resp.text());
    }
    for (method, path) in [
        (Method::POST, "/counter/k"),
        (Method::DELETE, "/counter/k"),
        (Method::PUT, "/set/s/m"),
        (Method::DELETE, "/set/s/m"),
        (Method::DELETE, "/set/s"),
    ] {
        let resp = ask(method.clone(), path, Some(&reader)).await;
        assert_eq!(resp.status, 403, "{method} {path}: {}", resp.text());
    }
    ask(Method::POST, "/counter/k", Some(&writer))
        .await
        .expect(200);
    ask(Method::PUT, "/set/s/m", Some(&writer))
        .await
        .expect(200);
    let resp = ask(Method::GET, "/counter/k", Some(&reader)).await;
    assert_json(resp, 200, json!({"value": 1}));
    let resp = ask(Method::GET, "/set/s", Some(&reader)).await;
    assert_json(resp, 200, json!({"members": ["m"]}));
}

/// `stats.forwarded` summed over every node.
async fn forwarded(c: &Cluster) -> u64 {
    let mut sum = 0;
    for i in 1..=c.len() {
        sum += c.stat(i, "forwarded").await;
    }
    sum
}

#[tokio::test]
async fn the_client_counts_and_sets_through_each_keys_coordinator() {
    let c = Cluster::start_patient(3).await;
    let seed = c.http_addr(1).to_string();
    let connect = |routing| {
        let seed = seed.clone();
        async move {
            Client::builder()
                .routing(routing)
                .connect([seed])
                .await
                .expect("client connects")
        }
    };
    let client = connect(Routing::PartitionAware).await;

    // Routed by the internal key (`\0r` + key): every request reaches a
    // node of the key's preference list, which coordinates it at once.
    for k in 0..20i64 {
        let key = format!("c{k}");
        assert_eq!(client.counter(&key).await.expect("read"), None);
        assert_eq!(client.incr(&key, k).await.expect("incr"), k);
        assert_eq!(client.incr(&key, -1).await.expect("decr"), k - 1);
        assert_eq!(client.counter(&key).await.expect("read"), Some(k - 1));
        let set = format!("s{k}");
        assert!(client.smembers(&set).await.expect("read").is_empty());
        assert!(client.sadd(&set, "a b/c").await.expect("sadd"));
        assert!(!client.sadd(&set, "a b/c").await.expect("sadd"));
        assert!(client.sadd(&set, "z").await.expect("sadd"));
        assert_eq!(
            client.smembers(&set).await.expect("read"),
            ["a b/c", "z"],
            "{set}"
        );
        let hash = format!("h{k}");
        assert!(client.hgetall(&hash).await.expect("read").is_empty());
        assert!(client.hset(&hash, "note", b"gift").await.expect("hset"));
        assert_eq!(client.hincrby(&hash, "qty", k).await.expect("hincrby"), k);
        assert!(!client.hdel(&hash, "none").await.expect("hdel"));
        let fields = client.hgetall(&hash).await.expect("read");
        let want = [("note", "gift".to_string()), ("qty", k.to_string())];
        assert!(
            fields.iter().map(|(f, v)| (f.as_str(), v.clone())).eq(want),
            "{fields:?}"
        );
    }
    assert_eq!(
        forwarded(&c).await,
        0,
        "every request went straight to a replica of its internal key"
    );

    // The same counter and set as Redis's.
    let mut redis = Redis::connect(c.resp_addr(2));
    assert_eq!(redis.call(&["INCRBY", "c5", "10"]), Reply::Int(14));
    assert_eq!(client.counter("c5").await.expect("read"), Some(14));
    assert_eq!(redis.call(&["SREM", "s5", "z"]), Reply::Int(1));
    assert_eq!(client.smembers("s5").await.expect("read"), ["a b/c"]);

    // Remove and add again, through generic routing this time.
    let generic = connect(Routing::Generic).await;
    assert!(generic.srem("s5", "a b/c").await.expect("srem"));
    assert!(!generic.srem("s5", "a b/c").await.expect("srem"));
    assert!(generic.smembers("s5").await.expect("read").is_empty());
    assert!(generic.sadd("s5", "a b/c").await.expect("re-add"));
    assert_eq!(client.smembers("s5").await.expect("read"), ["a b/c"]);
    let quorum = Options {
        r: Some(3),
        w: Some(3),
        timeout: None,
        ttl: None,
    };
    assert_eq!(generic.incr_with("c5", 1, &quorum).await.expect("incr"), 15);
    assert_eq!(
        generic.counter_with("c5", &quorum).await.expect("read"),
        Some(15)
    );

    // The wrong type is the node's 409 and its sentence.
    for error in [
        client.counter("s5").await.expect_err("a set"),
        client.incr("s5", 1).await.expect_err("a set"),
        client.smembers("c5").await.expect_err("a counter"),
        client.sadd("c5", "x").await.expect_err("a counter"),
    ] {
        assert_eq!(error.status(), Some(409), "{error}");
        assert!(error.to_string().contains("WRONGTYPE"), "{error}");
    }
}

/// The counter `key` as node `i` reads it (an R quorum): how many
/// increments of 1 were applied.
async fn counted(c: &Cluster, i: usize, key: &str) -> Option<i64> {
    let resp = call(c, i, Method::GET, &format!("/counter/{key}")).await;
    match resp.status {
        404 => None,
        _ => resp.expect(200).json()["value"].as_i64(),
    }
}

#[tokio::test]
async fn an_increment_goes_to_a_second_node_only_when_the_first_did_nothing() {
    let mut c = Cluster::start_patient(3).await;
    let key = "paused:hits";
    let coordinator = c.preference_list(&format!("\0r{key}"))[0];
    let others: Vec<usize> = (1..=3).filter(|i| *i != coordinator).collect();
    let seeds: Vec<String> = (1..=3).map(|i| c.http_addr(i).to_string()).collect();
    let client = Client::builder()
        .timeout(Duration::from_millis(1500))
        .connect(seeds.clone())
        .await
        .expect("client connects");
    assert_eq!(client.incr(key, 1).await.expect("incr"), 1);
    for &i in &others {
        assert_eq!(requests(&c, i, "incr", "ok").await, 0, "n{i}");
    }

    // Paused after taking the request in (its kernel accepts and buffers
    // it): no answer, and the client must not send it elsewhere.
    c.signal(coordinator, "STOP");
    let error = client.incr(key, 1).await.expect_err("no answer");
    let node = c.http_addr(coordinator).to_string();
    assert!(
        matches!(&error, Error::Timeout { node: n, .. } if *n == node),
        "{error}"
    );
    for &i in &others {
        for outcome in ["ok", "unavailable", "invalid", "error", "overloaded"] {
            let count = requests(&c, i, "incr", outcome).await;
            assert_eq!(count, 0, "n{i} was sent the increment ({outcome})");
        }
    }
    c.signal(coordinator, "CONT");
    // Whether the resumed node applies the request it took in depends on
    // timing; that nobody else did does not: at most 2, whenever read.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let value = counted(&c, others[0], key).await.expect("the counter");
    assert!(
        value == 1 || value == 2,
        "applied at most once more: {value}"
    );

    // A connection refused sends nothing: the next node takes it. (A new
    // client: one with a pooled connection to the dead node could lose it
    // mid-request instead.)
    c.kill(coordinator);
    let fresh = Client::builder()
        .timeout(Duration::from_millis(1500))
        .connect([c.http_addr(others[0]).to_string()])
        .await
        .expect("client connects");
    let after = fresh.incr(key, 1).await.expect("retried");
    assert!(after == 2 || after == 3, "{after}");
    let took: u64 = {
        let mut sum = 0;
        for &i in &others {
            sum += requests(&c, i, "incr", "ok").await;
        }
        sum
    };
    assert_eq!(took, 1, "sent on to exactly one other node");
}
