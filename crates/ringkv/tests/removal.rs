//! Removing and replacing a dead node end to end (issue 14), on real
//! processes: `ringkv remove` brings a dead node's keys back to three
//! copies fetched from the survivors, after which joins and leaves still
//! work and the removed node cannot come back; an up or unknown member is
//! not removed; `ringkv node --replace` takes exactly the dead node's share
//! and refuses to take over a member that is up.
//!
//! Anti-entropy is off, so only the removal's (or replacement's) own
//! fetches can bring the copies back, and the checks measure them. Gossip
//! and failure detection run at test speed (suspicion after 1 s), and every
//! wait is a bounded poll.

mod common;

use common::{cli_output, eventually, ring_fingerprint, run_cli, Cluster, SeedVia};
use reqwest::Method;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Gossip and failure detection at test speed, anti-entropy off.
const QUIET: &str = "[membership]\ngossip_interval_ms = 200\nprobe_interval_ms = 200\n\
                     suspect_after_ms = 1000\n\n[anti_entropy]\nenabled = false";
const KEYS: usize = 300;
/// Bound on every survivor seeing a killed node down: suspicion after 1 s,
/// gossip rounds to agree, slack for a loaded 2-core machine.
const DOWN_LIMIT: Duration = Duration::from_secs(15);
/// Bound on a removal or replacement completing (its ranges fetched by
/// every new owner) and on a join, a leave or a refusal settling.
const MOVE_LIMIT: Duration = Duration::from_secs(45);

fn value_of(key: &str) -> String {
    format!("value of {key}")
}

/// Write `count` keys `{prefix}{k}` through the nodes 1..=`nodes` in turn,
/// each acknowledged by all three replicas.
async fn load_everywhere(c: &Cluster, nodes: usize, prefix: &str, count: usize) -> Vec<String> {
    let keys: Vec<String> = (0..count).map(|k| format!("{prefix}{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        c.put_with(1 + k % nodes, key, value_of(key), None, Some(3))
            .await
            .expect(204);
    }
    keys
}

async fn stored_keys(c: &Cluster, i: usize) -> u64 {
    let status = c.status(i).await;
    status["stored_keys"]
        .as_u64()
        .unwrap_or_else(|| panic!("no stored_keys in n{i}'s status: {status}"))
}

/// Wait until every node in `observers` reports member `target` as
/// `status`.
async fn wait_seen_as(c: &Cluster, observers: &[usize], target: &str, status: &str) {
    let what = format!("n{observers:?} all report {target} {status}");
    let limit = if status == "down" {
        DOWN_LIMIT
    } else {
        MOVE_LIMIT
    };
    eventually(limit, &what, async || {
        for &i in observers {
            let seen = c.member_statuses(i).await;
            let got = seen.get(target);
            if got.map(String::as_str) != Some(status) {
                return Err(format!("n{i} sees {target} as {got:?}"));
            }
        }
        Ok(())
    })
    .await;
}

/// Wait until each of `live` sees every one of them `up`, every other
/// member only `left` or `removed`, and moves no data.
async fn wait_settled(c: &Cluster, live: &[usize]) {
    let want: BTreeSet<String> = live.iter().map(|i| format!("n{i}")).collect();
    let what = format!("{want:?} see each other up, the rest gone, and move no data");
    eventually(MOVE_LIMIT, &what, async || {
        for &i in live {
            let mut seen = c.member_statuses(i).await;
            seen.retain(|_, s| s != "left" && s != "removed");
            let up: BTreeSet<String> = seen
                .iter()
                .filter(|(_, s)| *s == "up")
                .map(|(id, _)| id.clone())
                .collect();
            if up != want || seen.len() != want.len() {
                return Err(format!("n{i} sees {seen:?}"));
            }
            let status = c.status(i).await;
            // A config's placeholder (generation 0) counts as up before
            // the member was ever heard.
            let unheard: Vec<&serde_json::Value> = status["members"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["generation"] == 0)
                .collect();
            if !unheard.is_empty() {
                return Err(format!("n{i} has not heard {unheard:?}"));
            }
            let handoff = &status["handoff"];
            if !handoff.is_null() {
                return Err(format!("n{i} is still moving data: {handoff}"));
            }
        }
        Ok(())
    })
    .await;
}

/// Wait until each of `nodes` holds its own copy of every key (with N = 3
/// and three nodes, each is a replica of every key), checked per replica
/// with `/admin/replica`.
async fn wait_every_copy(c: &Cluster, nodes: &[usize], keys: &[String]) {
    let mut missing: Vec<(usize, &String)> = nodes
        .iter()
        .flat_map(|&i| keys.iter().map(move |k| (i, k)))
        .collect();
    let what = format!(
        "n{nodes:?} each hold their own copy of all {} keys",
        keys.len()
    );
    eventually(MOVE_LIMIT, &what, async || {
        let mut still = Vec::new();
        for (i, key) in missing.drain(..) {
            let copy = c.replica(i, key).await;
            let values: Vec<&[u8]> = copy.live().filter_map(|s| s.value.as_deref()).collect();
            if values != [value_of(key).as_bytes()] {
                still.push((i, key));
            }
        }
        missing = still;
        match missing.first() {
            None => Ok(()),
            Some((i, key)) => Err(format!(
                "{} copies missing, e.g. {key} on n{i}",
                missing.len()
            )),
        }
    })
    .await;
}

/// `POST /admin/remove/{node}` on n1.
async fn remove(c: &Cluster, node: &str) -> common::Resp {
    let path = format!("/admin/remove/{node}");
    c.request(Method::POST, 1, &path, &[], None).await
}

/// 4 nodes and 300 keys on three replicas each; n4 is SIGKILLed for good
/// and `ringkv remove n4` run. Once every survivor lists it `removed`,
/// each survivor holds its own copy of every key (fetched from the other
/// survivors); then a fifth node joins and n2 leaves, both completing;
/// finally n4 restarted from its old data directory stops itself with
/// "was removed from the cluster" and a write sent to it while it ran is
/// on no survivor.
#[tokio::test]
async fn a_removed_dead_node_s_keys_come_back_to_three_survivors_and_it_cannot_return() {
    let mut c = Cluster::start_with(4, QUIET).await;
    wait_settled(&c, &[1, 2, 3, 4]).await;
    let keys = load_everywhere(&c, 4, "removal:", KEYS).await;
    c.kill(4);
    wait_seen_as(&c, &[1, 2, 3], "n4", "down").await;

    let started = Instant::now();
    let n1 = c.http_addr(1).to_string();
    // The CLI follows the removal until n4 is `removed` on n1.
    run_cli(&["remove", "n4", "--node", &n1], MOVE_LIMIT).await;
    wait_seen_as(&c, &[1, 2, 3], "n4", "removed").await;
    eprintln!("n4 removed after {:.1} s", started.elapsed().as_secs_f64());
    wait_every_copy(&c, &[1, 2, 3], &keys).await;
    for i in 1..=3 {
        assert_eq!(stored_keys(&c, i).await, KEYS as u64, "n{i}'s stored_keys");
    }

    assert_eq!(c.join_via(1, SeedVia::Flag).await, 5);
    wait_settled(&c, &[1, 2, 3, 5]).await;
    let n2 = c.http_addr(2).to_string();
    run_cli(&["leave", "--node", &n2], MOVE_LIMIT).await;
    let exit = c.wait_exit(2, MOVE_LIMIT).await;
    assert!(exit.success(), "n2 exited with {exit} after leaving");
    wait_settled(&c, &[1, 3, 5]).await;
    let survivors = [1, 3, 5];
    for i in survivors {
        assert_eq!(stored_keys(&c, i).await, KEYS as u64, "n{i}'s stored_keys");
    }

    c.spawn_again(4);
    let deadline = Instant::now() + MOVE_LIMIT;
    let mut attempts = 0;
    while c.is_alive(4) && Instant::now() < deadline {
        let path = format!("{}?w=1", common::key_path("ghost"));
        let body = Some(b"boo".to_vec());
        let _ = c.try_request(Method::PUT, 4, &path, &[], body).await;
        attempts += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exit = c.wait_exit(4, MOVE_LIMIT).await;
    assert!(!exit.success(), "the removed n4 ran and exited with {exit}");
    let log = std::fs::read_to_string(c.log_path(4)).expect("n4's log");
    assert!(
        log.contains("was removed from the cluster"),
        "n4's log does not say it was removed:\n{}",
        common::tail(c.log_path(4), 20)
    );
    eprintln!("n4 stopped itself after {attempts} write attempts");
    for i in survivors {
        assert!(
            c.replica(i, "ghost").await.is_empty(),
            "n{i} holds n4's write"
        );
        assert_eq!(stored_keys(&c, i).await, KEYS as u64, "n{i}'s stored_keys");
    }
    wait_seen_as(&c, &survivors, "n4", "removed").await;
}

/// `POST /admin/remove/n3` while n3 is up: 409 with a sentence naming
/// `--force`, and `ringkv remove n3` exits non-zero saying so; an unknown
/// node is 404 and the node itself 409. A node started with `--replace n3`
/// exits non-zero with "cannot replace: n3 is up" (and, once down, is
/// removed at once: it never owned ranges). Nothing changes: all three
/// stay up on the ring of the three.
#[tokio::test]
async fn removing_an_up_member_is_refused_and_an_unknown_one_is_not_found() {
    let mut c = Cluster::start_with(3, QUIET).await;
    wait_settled(&c, &[1, 2, 3]).await;
    let up = remove(&c, "n3").await.expect(409).text();
    assert!(up.contains("--force"), "409 for an up member: {up}");
    let unknown = remove(&c, "n9").await.expect(404).text();
    assert!(
        unknown.contains("n9"),
        "404 for an unknown member: {unknown}"
    );
    remove(&c, "n1").await.expect(409);

    let n1 = c.http_addr(1).to_string();
    let cli = cli_output(&["remove", "n3", "--node", &n1], MOVE_LIMIT).await;
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(
        !cli.status.success(),
        "ringkv remove n3 succeeded: {stderr}"
    );
    assert!(
        stderr.contains("--force"),
        "ringkv remove n3 said: {stderr}"
    );

    let replacement = c.spawn_replacement(1, 3);
    let exit = c.wait_exit(replacement, MOVE_LIMIT).await;
    let log = std::fs::read_to_string(c.log_path(replacement)).expect("log");
    assert!(!exit.success(), "the replacement exited with {exit}");
    assert!(
        log.contains("cannot replace: n3 is up"),
        "the replacement's log does not say why:\n{}",
        common::tail(c.log_path(replacement), 20)
    );

    // The refused replacement stays a joining member (in no ring) until
    // an operator removes it, which for a member that never owned ranges
    // is done at once.
    let what = "n1 removes the refused replacement n4 once it is down";
    let gone = eventually(DOWN_LIMIT, what, async || {
        let resp = remove(&c, "n4").await;
        match resp.status {
            202 => Ok(resp.json()),
            _ => Err(format!("{} {}", resp.status, resp.text())),
        }
    })
    .await;
    assert_eq!(gone["status"], "removed", "{gone}");
    wait_settled(&c, &[1, 2, 3]).await;
    for i in 1..=3 {
        let status = c.status(i).await;
        assert_eq!(status["ring_fingerprint"], ring_fingerprint(3).as_str());
    }
}

/// 4 nodes and 300 keys; n3 (which stores its share, read from its
/// `/status`) is SIGKILLed, and n5 starts with `--replace n3`. Once n5 is
/// `up` and n3 `removed` everywhere, n5 stores exactly n3's share (as the
/// 4-node ring computes it), and every key reads back with R = 3.
#[tokio::test]
async fn a_replacement_takes_exactly_the_dead_node_s_share() {
    let mut c = Cluster::start_with(4, QUIET).await;
    wait_settled(&c, &[1, 2, 3, 4]).await;
    let keys = load_everywhere(&c, 4, "replace:", KEYS).await;
    let share = keys
        .iter()
        .filter(|key| c.preference_list(key).contains(&3))
        .count() as u64;
    assert_eq!(stored_keys(&c, 3).await, share, "n3 stores its share");
    c.kill(3);
    wait_seen_as(&c, &[1, 2, 4], "n3", "down").await;

    let started = Instant::now();
    assert_eq!(c.spawn_replacement(1, 3), 5);
    wait_seen_as(&c, &[1, 2, 4, 5], "n3", "removed").await;
    wait_settled(&c, &[1, 2, 4, 5]).await;
    eprintln!(
        "n5 replaced n3 after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let replaces = &c.status(1).await["members"];
    let n5 = replaces
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["id"] == "n5"));
    assert_eq!(
        n5.map(|m| m["replaces"].clone()),
        Some("n3".into()),
        "{replaces}"
    );

    assert_eq!(
        stored_keys(&c, 5).await,
        share,
        "n5 stores exactly n3's share"
    );
    for (k, key) in keys.iter().enumerate() {
        let node = [1, 2, 4, 5][k % 4];
        let got = c.get_with(node, key, Some(3), false).await;
        assert_eq!(got.expect(200).text(), value_of(key), "{key}");
    }
}

/// A node whose disk was lost, started again under its id on an empty
/// data directory, exits non-zero saying the cluster has that member
/// already (as Cassandra refuses a host id that is in the ring) instead
/// of serving reads of keys it does not hold; the others keep its entry.
#[tokio::test]
async fn a_node_restarted_on_an_empty_data_directory_refuses_its_old_id() {
    let mut c = Cluster::start_with(3, QUIET).await;
    wait_settled(&c, &[1, 2, 3]).await;
    load_everywhere(&c, 3, "lost", 30).await;
    c.kill(3);
    std::fs::remove_dir_all(c.data_dir(3)).expect("wipe n3's data directory");
    c.spawn_again(3);
    let exit = c.wait_exit(3, MOVE_LIMIT).await;
    assert!(!exit.success(), "the new n3 exited with {exit}");
    let log = std::fs::read_to_string(c.log_path(3)).expect("n3's log");
    assert!(
        log.contains("the cluster already has a member n3"),
        "n3's log does not say why:\n{}",
        common::tail(c.log_path(3), 20)
    );
    wait_seen_as(&c, &[1, 2], "n3", "down").await;
}
