//! The Rust client library (`ringkv-client`) and the CLI built on it,
//! against real node processes: partition-aware routing skips the
//! forwarding hop, generic routing takes it, a killed node costs the caller
//! nothing, and concurrent set-union updates lose nothing.

mod common;

use common::{keys_coordinated_by, Cluster};
use ringkv_client::{Client, Context, Item, ItemSet, Options, Routing};

/// `stats.forwarded` summed over every node.
async fn forwarded(c: &Cluster) -> u64 {
    let mut sum = 0;
    for i in 1..=c.len() {
        sum += c.stat(i, "forwarded").await;
    }
    sum
}

async fn coordinated(c: &Cluster) -> u64 {
    let mut sum = 0;
    for i in 1..=c.len() {
        sum += c.stat(i, "coordinated").await;
    }
    sum
}

async fn client(c: &Cluster, seed: usize, routing: Routing) -> Client {
    Client::builder()
        .routing(routing)
        .connect([c.http_addr(seed).to_string()])
        .await
        .expect("client connects")
}

const QUORUM: Options = Options {
    r: Some(2),
    w: Some(2),
    timeout: None,
    ttl: None,
};

#[tokio::test]
async fn partition_aware_requests_reach_the_coordinator_with_no_hop() {
    let c = Cluster::start_patient(3).await;
    let client = client(&c, 1, Routing::PartitionAware).await;
    assert_eq!(forwarded(&c).await, 0);
    let coordinated_before = coordinated(&c).await;

    const KEYS: u64 = 60;
    for k in 0..KEYS {
        let key = format!("aware:{k}");
        client
            .put(&key, format!("v{k}"), &Context::none())
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        let read = client.get(&key).await.expect("get");
        assert_eq!(read.value(), Some(format!("v{k}").as_bytes()), "{key}");
    }
    assert_eq!(
        forwarded(&c).await,
        0,
        "every request went straight to its coordinator"
    );
    assert_eq!(
        coordinated(&c).await,
        coordinated_before + 2 * KEYS,
        "each request coordinated exactly once"
    );
}

#[tokio::test]
async fn generic_writes_through_a_non_owner_are_forwarded_exactly_once_and_reads_are_not() {
    let c = Cluster::start_patient(3).await;
    // Every request goes to the seed n1; none of these keys is its.
    let client = client(&c, 1, Routing::Generic).await;
    let mut keys = keys_coordinated_by(3, 2, "generic:", 10);
    keys.extend(keys_coordinated_by(3, 3, "generic:", 10));

    let before = forwarded(&c).await;
    let n1_before = c.stat(1, "forwarded").await;
    for key in &keys {
        client.put(key, "x", &Context::none()).await.expect("put");
        let read = client.get(key).await.expect("get");
        assert_eq!(read.value(), Some(&b"x"[..]));
    }
    // Writes go to the key's first replica; n1, a replica of every key
    // (N = 3 of 3 nodes), coordinates reads where they land.
    let writes = keys.len() as u64;
    assert_eq!(forwarded(&c).await, before + writes);
    assert_eq!(c.stat(1, "forwarded").await, n1_before + writes);

    // What lets a client notice a stale ring: every /kv answer carries the
    // answering node's ring fingerprint, the one /status reports.
    let status = c.status(2).await;
    let fingerprint = status["ring_fingerprint"].as_str().expect("fingerprint");
    assert_eq!(fingerprint.len(), 16);
    assert_eq!(status["vnodes_per_node"], 128);
    let answer = c.get(2, &keys[0]).await.expect(200);
    let header = answer.headers.get("x-ringkv-ring").expect("ring header");
    assert_eq!(header.to_str().unwrap(), fingerprint);
}

#[tokio::test]
async fn partition_aware_routing_survives_a_killed_node_without_errors() {
    let mut c = Cluster::start_patient(3).await;
    let client = client(&c, 1, Routing::PartitionAware).await;
    let keys: Vec<String> = (0..30).map(|k| format!("survive:{k}")).collect();
    assert!(
        keys.iter().any(|k| c.coordinator_of(k) == 2),
        "some keys are routed to n2 first"
    );
    for key in &keys {
        client
            .put_with(key, "before", &Context::none(), &QUORUM)
            .await
            .expect("put before the kill");
    }

    // n2 coordinates about a third of the keys and replicates all of them.
    c.kill(2);
    for round in ["after-kill", "again"] {
        for key in &keys {
            let read = client
                .get_with(key, &QUORUM)
                .await
                .unwrap_or_else(|e| panic!("{round}: get {key}: {e}"));
            assert_eq!(read.siblings.len(), 1, "{round}: {key}: {read:?}");
            client
                .put_with(key, round, &read.context, &QUORUM)
                .await
                .unwrap_or_else(|e| panic!("{round}: put {key}: {e}"));
            let read = client.get_with(key, &QUORUM).await.expect("read back");
            assert_eq!(read.value(), Some(round.as_bytes()), "{round}: {key}");
        }
    }

    // Back up, it serves again (routing returns to it once it answers).
    c.restart(2).await;
    for key in &keys {
        let read = client.get_with(key, &QUORUM).await.expect("get");
        client
            .put_with(key, "restarted", &read.context, &QUORUM)
            .await
            .expect("put after the restart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_set_union_updates_lose_no_addition() {
    const TASKS: usize = 4;
    const ADDS: usize = 25;
    let c = Cluster::start_patient(3).await;
    let key = "cart:shared";
    let mut shoppers = Vec::new();
    for t in 0..TASKS {
        // Through different nodes, half partition-aware, half generic.
        let routing = [Routing::PartitionAware, Routing::Generic][t % 2];
        let client = client(&c, 1 + t % 3, routing).await;
        shoppers.push(tokio::spawn(async move {
            for i in 0..ADDS {
                let item = Item::new(format!("t{t}-item{i}")).expect("valid item");
                client
                    .update(key, |siblings| {
                        let mut cart = ItemSet::union(siblings);
                        cart.add(&item);
                        cart.encode()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("shopper {t} adding {i}: {e}"));
                // Every fifth addition is taken out again.
                if i % 5 == 4 {
                    client
                        .update(key, |siblings| {
                            let mut cart = ItemSet::union(siblings);
                            cart.remove(&item);
                            cart.encode()
                        })
                        .await
                        .unwrap_or_else(|e| panic!("shopper {t} removing {i}: {e}"));
                }
            }
        }));
    }
    for shopper in shoppers {
        shopper.await.expect("shopper finished");
    }

    let reader = client(&c, 1, Routing::PartitionAware).await;
    let all = Options {
        r: Some(3),
        ..Options::default()
    };
    let cart = ItemSet::union(&reader.get_with(key, &all).await.expect("read").siblings);
    for t in 0..TASKS {
        for i in 0..ADDS {
            let item = format!("t{t}-item{i}");
            if i % 5 == 4 {
                assert!(!cart.contains(&item), "{item} was removed");
            } else {
                assert!(cart.contains(&item), "{item} was lost");
            }
        }
    }
    assert_eq!(cart.len(), TASKS * ADDS * 4 / 5);
}

/// `ringkv put/get` route partition-aware by default; `--generic` sends
/// the request to `--node`, which forwards a write to the key's first
/// replica.
#[tokio::test]
async fn cli_routes_to_the_coordinator_and_generic_forces_the_hop() {
    let c = Cluster::start_patient(3).await;
    let key = &keys_coordinated_by(3, 2, "cli:", 1)[0];
    let node = c.http_addr(1).to_string();
    let cli = |args: &[&str]| {
        let output = std::process::Command::new(common::ringkv_bin())
            .args(args)
            .args(["--node", &node])
            .env("RUST_LOG", "off")
            .output()
            .expect("run ringkv");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "ringkv {args:?}: {stderr}");
        (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
    };

    let before = forwarded(&c).await;
    cli(&["put", key, "direct"]);
    let (value, stderr) = cli(&["get", key]);
    assert_eq!(value.trim(), "direct");
    assert_eq!(forwarded(&c).await, before, "no hop by default");

    let context = stderr
        .lines()
        .find_map(|l| l.strip_prefix("context: "))
        .expect("get prints the context")
        .to_string();
    cli(&["put", key, "hop", "--generic", "--context", &context]);
    let (value, _) = cli(&["get", key, "--generic"]);
    assert_eq!(value.trim(), "hop", "the write superseded the one read");
    // n1 forwarded the write; as a replica it coordinated the read.
    assert_eq!(forwarded(&c).await, before + 1, "n1 forwarded the write");
}

/// The client library's `put` returns the context of the caller's own
/// write and nothing else: chaining on it never replaces a concurrent
/// version the caller was not shown.
#[tokio::test]
async fn a_put_chained_on_the_returned_context_never_replaces_an_unseen_version() {
    let c = Cluster::start(3).await;
    let a = client(&c, 1, Routing::PartitionAware).await;
    // Both go straight to the key's coordinator, which so gives both
    // versions dots of its own.
    let b = client(&c, 2, Routing::PartitionAware).await;
    let key = "chained:client";
    a.put_with(key, "from-a", &Context::none(), &QUORUM)
        .await
        .expect("a writes");
    let mine = b
        .put_with(key, "from-b", &Context::none(), &QUORUM)
        .await
        .expect("b writes");
    b.put_with(key, "from-b-again", &mine, &QUORUM)
        .await
        .expect("b writes on its receipt");
    let read = a
        .get_with(
            key,
            &Options {
                r: Some(3),
                ..QUORUM
            },
        )
        .await
        .expect("read");
    let mut values: Vec<&[u8]> = read.siblings.iter().map(|s| s.value.as_slice()).collect();
    values.sort();
    assert_eq!(values, [&b"from-a"[..], &b"from-b-again"[..]]);
}
