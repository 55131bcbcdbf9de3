//! Key listing over HTTP (`GET /buckets/{bucket}/keys`), real processes:
//! paging through every node lists each live key once — not deleted ones,
//! not expired ones, not the other keyspace's — with its type.

mod common;

use common::redis::{ok, Redis, Reply};
use common::{key_path, Cluster};
use reqwest::Method;
use std::collections::BTreeMap;
use std::time::Duration;

/// Every key of `bucket` listed through node `i`, `limit` per request:
/// key → type, and how many times each came.
async fn list_all(
    c: &Cluster,
    i: usize,
    bucket: &str,
    limit: usize,
) -> BTreeMap<String, (String, usize)> {
    let mut listed: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut after: Option<String> = None;
    for _ in 0..10_000 {
        let mut path = format!("/buckets/{bucket}/keys?limit={limit}");
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let page = c
            .request(Method::GET, i, &path, &[], None)
            .await
            .expect(200)
            .json();
        let keys = page["keys"].as_array().expect("keys");
        assert!(keys.len() <= limit, "{} keys for limit {limit}", keys.len());
        for entry in keys {
            let key = entry["key"].as_str().expect("a UTF-8 key").to_string();
            let kind = entry["type"].as_str().expect("type").to_string();
            listed.entry(key).or_insert((kind, 0)).1 += 1;
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return listed,
        }
    }
    panic!("the listing never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_through_every_live_key_once_with_its_type() {
    let c = Cluster::start(3).await;
    for i in 0..200 {
        c.put(1 + i % 3, &format!("cart:{i}"), "apple")
            .await
            .expect(204);
    }
    for i in 0..20 {
        c.delete(2, &format!("cart:{i}")).await.expect(204);
    }
    for i in 0..10 {
        let path = format!("{}?ttl=1", key_path(&format!("session:{i}")));
        c.request(Method::PUT, 3, &path, &[], Some(b"s".to_vec()))
            .await
            .expect(204);
    }
    let mut redis = Redis::connect(c.resp_addr(2));
    for i in 0..50 {
        assert_eq!(redis.call(&["SET", &format!("r:{i}"), "v"]), ok());
        assert_eq!(redis.call(&["SADD", &format!("s:{i}"), "m"]), Reply::Int(1));
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    for i in 1..=3 {
        let kv = list_all(&c, i, "default", 37).await;
        let expected: Vec<String> = (20..200).map(|k| format!("cart:{k}")).collect();
        let mut got: Vec<&String> = kv.keys().collect();
        got.sort();
        let mut want: Vec<&String> = expected.iter().collect();
        want.sort();
        assert_eq!(
            got, want,
            "the /kv keys through n{i}: not deleted, not expired, no Redis key"
        );
        assert!(
            kv.values().all(|(kind, n)| kind == "kv" && *n == 1),
            "each once, as kv"
        );
        let r = list_all(&c, i, "redis", 1_000).await;
        assert_eq!(r.len(), 100, "the Redis keys through n{i}");
        assert_eq!(r["r:7"].0, "string");
        assert_eq!(r["s:7"].0, "set");
        assert!(r.values().all(|(_, n)| *n == 1));
    }

    let status = |path: &str| {
        let c = &c;
        let path = path.to_string();
        async move { c.request(Method::GET, 1, &path, &[], None).await }
    };
    let unknown = status("/buckets/carts/keys").await.expect(404);
    assert!(
        unknown.text().contains("no bucket named \"carts\""),
        "{}",
        unknown.text()
    );
    for bad in ["limit=0", "limit=10001", "after=abc", "after=0", "cursor=5"] {
        status(&format!("/buckets/default/keys?{bad}"))
            .await
            .expect(400);
    }
}

/// The CLI lists a bucket's keys (through the client library's
/// `keys_page`), and writes with a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_keys_and_writes_with_a_ttl() {
    let c = Cluster::start(3).await;
    let node = c.http_addr(1).to_string();
    let limit = Duration::from_secs(30);
    for i in 0..25 {
        c.put(2, &format!("k{i}"), "v").await.expect(204);
    }
    let mut redis = Redis::connect(c.resp_addr(3));
    assert_eq!(redis.call(&["SADD", "cart", "apple"]), Reply::Int(1));
    let listed = common::run_cli(&["keys", "--node", &node, "--page", "4"], limit).await;
    let mut keys: Vec<&str> = listed.lines().collect();
    keys.sort();
    let mut want: Vec<String> = (0..25).map(|i| format!("k{i}")).collect();
    want.sort();
    assert_eq!(keys, want);
    let redis_keys = common::run_cli(&["keys", "--node", &node, "--bucket", "redis"], limit).await;
    assert_eq!(redis_keys, "cart\tset\n");
    common::run_cli(&["put", "brief", "v", "--ttl", "1", "--node", &node], limit).await;
    c.get(3, "brief").await.expect(200);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    c.get(3, "brief").await.expect(404);
}
