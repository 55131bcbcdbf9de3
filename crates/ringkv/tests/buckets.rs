//! Buckets, real processes: a bucket defined through one node reaches the
//! others and a joining node, survives a restart of the whole cluster,
//! and applies its own policy, quorums, TTL and value limit; the Redis
//! port serves the bucket its config names.

mod common;

use common::redis::{Redis, Reply};
use common::{eventually, run_cli, Cluster};
use reqwest::Method;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn bucket_key(bucket: &str, key: &str) -> String {
    format!("/buckets/{bucket}/keys/{key}")
}

async fn define(c: &Cluster, i: usize, bucket: &str, json: &str) -> common::Resp {
    let path = format!("/admin/buckets/{bucket}");
    let headers = [("content-type", "application/json")];
    c.request(Method::PUT, i, &path, &headers, Some(json.into()))
        .await
}

/// Wait until node `i` knows `bucket`.
async fn known_at(c: &Cluster, i: usize, bucket: &str) -> serde_json::Value {
    let path = format!("/buckets/{bucket}");
    let what = format!("n{i} knows bucket {bucket}");
    eventually(Duration::from_secs(20), &what, async || {
        let r = c.request(Method::GET, i, &path, &[], None).await;
        match r.status {
            200 => Ok(r.json()),
            _ => Err(r.text()),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buckets_policy_quorums_ttl_and_limit_apply_on_every_node() {
    let c = Cluster::start(3).await;
    define(
        &c,
        1,
        "carts",
        r#"{"policy":"siblings","w":3,"max_value_bytes":16}"#,
    )
    .await
    .expect(201);
    for i in 1..=3 {
        let carts = known_at(&c, i, "carts").await;
        assert_eq!(carts["policy"], "siblings");
        assert_eq!(carts["w"], 3);
    }

    // Blind writes through two nodes: siblings in carts.
    for (i, item) in [(1, "apple"), (2, "pear")] {
        let path = bucket_key("carts", "alice");
        c.request(Method::PUT, i, &path, &[], Some(item.into()))
            .await
            .expect(204);
    }
    let read = c
        .request(Method::GET, 3, &bucket_key("carts", "alice"), &[], None)
        .await
        .expect(300);
    let mut items: Vec<String> = read
        .siblings()
        .into_iter()
        .map(|s| String::from_utf8(s.value).unwrap())
        .collect();
    items.sort();
    assert_eq!(items, ["apple", "pear"]);
    // Every replica holds it under the bucket's own key, with W = 3.
    for i in 1..=3 {
        let path = "/admin/replica/alice?bucket=carts";
        let copy = c.request(Method::GET, i, path, &[], None).await.expect(200);
        assert!(
            copy.text().contains("dot"),
            "n{i} holds no copy: {}",
            copy.text()
        );
    }
    // The /kv key of the same name is another key.
    c.request(Method::GET, 1, "/kv/alice", &[], None)
        .await
        .expect(404);

    // The bucket's value limit, in one sentence.
    let big = c
        .request(
            Method::PUT,
            2,
            &bucket_key("carts", "bob"),
            &[],
            Some(vec![b'x'; 17]),
        )
        .await
        .expect(413);
    assert!(
        big.text().contains("at most 16 bytes in bucket carts"),
        "{}",
        big.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_write_wins_buckets_collapse_blind_writes_and_expire_by_default() {
    let c = Cluster::start(3).await;
    define(
        &c,
        2,
        "sessions",
        r#"{"policy":"lww","w":1,"ttl_seconds":2}"#,
    )
    .await
    .expect(201);
    for i in 1..=3 {
        known_at(&c, i, "sessions").await;
    }
    let path = bucket_key("sessions", "s1");
    for (i, value) in [(1, "first"), (2, "second"), (3, "third")] {
        c.request(Method::PUT, i, &path, &[], Some(value.into()))
            .await
            .expect(204);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 1..=3 {
        let read = c
            .request(Method::GET, i, &path, &[], None)
            .await
            .expect(200);
        assert_eq!(read.text(), "third", "n{i}");
        assert!(
            read.header("x-ringkv-expires-at").is_some(),
            "the bucket TTL applies"
        );
    }
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    for i in 1..=3 {
        c.request(Method::GET, i, &path, &[], None)
            .await
            .expect(404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bucket_definitions_and_unknown_buckets_get_one_sentence() {
    let c = Cluster::start(3).await;
    define(&c, 1, "carts", r#"{"policy":"siblings"}"#)
        .await
        .expect(201);
    let cases = [
        ("carts", r#"{"policy":"lww"}"#, 409, "cannot change"),
        ("Carts", r#"{}"#, 400, "lowercase"),
        ("small", r#"{"n":4}"#, 400, "n must be within 1..=3"),
        ("small", r#"{"r":4}"#, 400, "r must be within 1..=3"),
        (
            "small",
            r#"{"pw":3}"#,
            400,
            "pw must not exceed w (2, the node's)",
        ),
        (
            "small",
            r#"{"policy":"maybe"}"#,
            400,
            "siblings, lww or typed",
        ),
        ("small", r#"{"colour":"red"}"#, 400, "unknown field"),
    ];
    for (bucket, json, status, says) in cases {
        let refused = define(&c, 1, bucket, json).await.expect(status);
        assert!(
            refused.text().contains(says),
            "{bucket} {json}: {}",
            refused.text()
        );
    }
    let missing = c
        .request(Method::GET, 2, &bucket_key("nowhere", "k"), &[], None)
        .await
        .expect(404);
    assert!(
        missing.text().contains("no bucket named \"nowhere\""),
        "{}",
        missing.text()
    );
    let typed = c
        .request(Method::GET, 2, &bucket_key("redis", "k"), &[], None)
        .await
        .expect(400);
    assert!(typed.text().contains("typed"), "{}", typed.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_survive_a_whole_cluster_restart_and_reach_a_joining_node() {
    let mut c = Cluster::start(3).await;
    define(&c, 3, "carts", r#"{"policy":"siblings","r":3}"#)
        .await
        .expect(201);
    for i in 1..=3 {
        known_at(&c, i, "carts").await;
    }
    c.request(
        Method::PUT,
        1,
        &bucket_key("carts", "k"),
        &[],
        Some("v".into()),
    )
    .await
    .expect(204);
    for i in 1..=3 {
        c.kill(i);
    }
    for i in 1..=3 {
        c.restart(i).await;
    }
    for i in 1..=3 {
        let carts = c
            .request(Method::GET, i, "/buckets/carts", &[], None)
            .await
            .expect(200);
        assert_eq!(carts.json()["r"], 3, "n{i} forgot the bucket");
    }
    let read = c
        .request(Method::GET, 2, &bucket_key("carts", "k"), &[], None)
        .await
        .expect(200);
    assert_eq!(read.text(), "v");
    let joined = c.join(1).await;
    let carts = known_at(&c, joined, "carts").await;
    assert_eq!(carts["r"], 3);
    let listed = c
        .request(Method::GET, joined, "/buckets", &[], None)
        .await
        .expect(200)
        .json();
    let names: Vec<&str> = listed["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "redis", "carts"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_port_serves_the_bucket_its_config_names() {
    let mut c = Cluster::start(3).await;
    for i in 1..=3 {
        c.kill(i);
        c.edit_config(i, |t| {
            t.replacen(
                "insecure = true",
                "insecure = true\nredis_bucket = \"cache\"",
                1,
            )
        });
    }
    for i in 1..=3 {
        c.restart(i).await;
    }
    let mut redis = Redis::connect(c.resp_addr(1));
    match redis.call(&["SET", "k", "v"]) {
        Reply::Error(e) => assert!(e.contains("no bucket named cache"), "{e}"),
        other => panic!("SET without the bucket answered {other:?}"),
    }
    define(&c, 1, "cache", r#"{"policy":"typed","ttl_seconds":60}"#)
        .await
        .expect(201);
    assert_eq!(redis.call(&["SET", "k", "v"]), common::redis::ok());
    assert_eq!(redis.call(&["SADD", "s", "m"]), Reply::Int(1));
    let ttl = redis.call(&["TTL", "k"]);
    assert!(
        matches!(ttl, Reply::Int(t) if (55..=60).contains(&t)),
        "{ttl:?}"
    );
    known_at(&c, 2, "cache").await;
    let page = |bucket: &str| {
        let path = format!("/buckets/{bucket}/keys");
        let c = &c;
        async move {
            c.request(Method::GET, 2, &path, &[], None)
                .await
                .expect(200)
                .json()
        }
    };
    let cache = page("cache").await;
    let mut keys: Vec<&str> = cache["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["k", "s"]);
    assert_eq!(page("redis").await["keys"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_lists_and_writes_to_buckets() {
    let c = Cluster::start(3).await;
    let node = c.http_addr(2).to_string();
    let at = ["--node", node.as_str()];
    let create = [
        "bucket", "create", "sessions", "--policy", "lww", "--w", "1", "--ttl", "60",
    ];
    let line = run_cli(&[&create[..], &at[..]].concat(), LIMIT).await;
    assert_eq!(line.trim(), "sessions\tn=3 policy=lww w=1 ttl=60s");
    let listed = run_cli(&[&["bucket", "list"][..], &at[..]].concat(), LIMIT).await;
    let names: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["default", "redis", "sessions"]);
    for value in ["one", "two"] {
        let put = ["put", "s1", value, "--bucket", "sessions"];
        run_cli(&[&put[..], &at[..]].concat(), LIMIT).await;
    }
    let get = ["get", "s1", "--bucket", "sessions"];
    assert_eq!(
        run_cli(&[&get[..], &at[..]].concat(), LIMIT).await.trim(),
        "two"
    );
    let refused = common::cli_output(
        &[&["bucket", "show", "nowhere"][..], &at[..]].concat(),
        LIMIT,
    )
    .await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no bucket named"), "{stderr}");
}

/// The issue's own case: a bucket of N = 2 that is last-write-wins and one
/// of N = 3 that keeps siblings, in one cluster of four.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_n2_lww_bucket_and_an_n3_siblings_bucket_keep_2_and_3_copies() {
    let c = Cluster::start(4).await;
    define(&c, 1, "sessions", r#"{"n":2,"policy":"lww"}"#)
        .await
        .expect(201);
    define(&c, 1, "carts", r#"{"n":3,"policy":"siblings"}"#)
        .await
        .expect(201);
    for i in 1..=4 {
        known_at(&c, i, "sessions").await;
        known_at(&c, i, "carts").await;
    }
    for k in 0..10 {
        for (i, value) in [(1, "a"), (2, "b"), (3, "c")] {
            for bucket in ["sessions", "carts"] {
                let path = bucket_key(bucket, &format!("k{k}"));
                c.request(Method::PUT, i, &path, &[], Some(value.into()))
                    .await
                    .expect(204);
            }
        }
    }
    for k in 0..10 {
        for (bucket, copies, versions) in [("sessions", 2, 1), ("carts", 3, 3)] {
            let key = format!("k{k}");
            let mut holders = 0;
            for i in 1..=4 {
                let path = format!("/admin/replica/{key}?bucket={bucket}");
                let copy = c
                    .request(Method::GET, i, &path, &[], None)
                    .await
                    .expect(200);
                holders += usize::from(copy.text().contains("dot"));
            }
            assert_eq!(holders, copies, "{bucket}/{key} copies");
            let read = c
                .request(Method::GET, 4, &bucket_key(bucket, &key), &[], None)
                .await;
            let live = match read.status {
                200 => 1,
                300 => read.siblings().len(),
                other => panic!("{bucket}/{key}: {other} {}", read.text()),
            };
            assert_eq!(live, versions, "{bucket}/{key} versions read");
        }
    }
}

/// Two creates of one name with different policies through two nodes at
/// once: one node decides both, so one is created and the other refused —
/// never two 201s of which one loses its keys (a helper's run lost five
/// acknowledged writes so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_of_one_bucket_through_two_nodes_are_decided_by_one() {
    let c = Cluster::start(3).await;
    for round in 0..5 {
        let name = format!("race{round}");
        let (a, b) = tokio::join!(
            define(&c, 1, &name, r#"{"n":1,"policy":"lww"}"#),
            define(&c, 3, &name, r#"{"n":3,"policy":"siblings"}"#),
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "{name}: {} / {}", a.text(), b.text());
    }
}
