//! Membership end to end, on real processes and real loopback TCP: nodes
//! joining through a seed agree on one ring, a dead node is found down by
//! agreement while a single cut link never gets a healthy node declared
//! down, hinted handoff repairs a node that missed writes, and a joining or
//! leaving node ends up with exactly its share of the data.
//!
//! Every cluster runs gossip and failure detection at test speed (rounds
//! and probes every 200 ms, suspicion after 1 s), and every wait is a
//! bounded poll.

mod common;

use common::{eventually, ring_fingerprint, run_cli, Cluster, SeedVia};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Gossip and failure detection at test speed.
const FAST: &str = "[membership]\ngossip_interval_ms = 200\nprobe_interval_ms = 200\n\
                    suspect_after_ms = 1000";
/// `suspect_after_ms` of [`FAST`].
const SUSPECT_AFTER: Duration = Duration::from_millis(1000);
/// Bound on every node seeing a killed node down: suspicion after 1 s, a
/// few gossip rounds to spread it, and slack for a loaded 2-core machine.
const DOWN_LIMIT: Duration = Duration::from_secs(10);
/// Bound on a cluster agreeing on one ring after a join, a leave or a
/// restart (gossip rounds plus, for a join or a leave, moving the data).
const CONVERGE_LIMIT: Duration = Duration::from_secs(15);
/// Bound on a leaving node handing its ranges over and exiting.
const LEAVE_LIMIT: Duration = Duration::from_secs(30);
/// Bound on a returned node getting every hint held for it.
const HINTS_LIMIT: Duration = Duration::from_secs(15);

/// [`FAST`] without anti-entropy, so that only hints and handoff move data,
/// and with hints handed back every 200 ms.
fn fast_without_anti_entropy() -> String {
    format!("{FAST}\n\n[anti_entropy]\nenabled = false\n\n[hints]\ndelivery_interval_ms = 200")
}

/// `key`'s value in these tests.
fn value_of(key: &str) -> String {
    format!("value of {key}")
}

/// Write `count` keys `{prefix}{k}` through the nodes in turn with `?w=`.
async fn load(c: &Cluster, nodes: usize, prefix: &str, count: usize, w: usize) -> Vec<String> {
    let keys: Vec<String> = (0..count).map(|k| format!("{prefix}{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        c.put_with(1 + k % nodes, key, value_of(key), None, Some(w))
            .await
            .expect(204);
    }
    keys
}

/// Node `i`'s `/status` field `name`, which must be a number.
async fn number(c: &Cluster, i: usize, name: &str) -> u64 {
    let status = c.status(i).await;
    status[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {name} in n{i}'s status: {status}"))
}

/// Hints node `i` keeps for `owner` (`pending_hints` of its `/status`).
async fn pending_hints(c: &Cluster, i: usize, owner: &str) -> u64 {
    let status = c.status(i).await;
    let hints = &status["pending_hints"];
    assert!(
        hints.is_object(),
        "no pending_hints in n{i}'s status: {status}"
    );
    hints[owner].as_u64().unwrap_or(0)
}

/// Every one of nodes `1..=n` agrees on the ring of members n1..n{n} (same
/// fingerprint), sees each of them `up` and any other member only as
/// `left`, and moves no data (`handoff` is null).
async fn converged(c: &Cluster, n: usize) -> Result<(), String> {
    let want_ring = ring_fingerprint(n);
    let want_members: BTreeMap<String, String> =
        (1..=n).map(|i| (format!("n{i}"), "up".into())).collect();
    for i in 1..=n {
        let status = c.status(i).await;
        if status["ring_fingerprint"] != want_ring.as_str() {
            return Err(format!(
                "n{i}'s ring is {}, not {want_ring} (n1..n{n})",
                status["ring_fingerprint"]
            ));
        }
        let mut seen = c.member_statuses(i).await;
        seen.retain(|_, status| status != "left");
        if seen != want_members {
            return Err(format!("n{i} sees members {seen:?}"));
        }
        if !status["handoff"].is_null() {
            return Err(format!("n{i} is still moving data: {}", status["handoff"]));
        }
    }
    Ok(())
}

async fn wait_converged(c: &Cluster, n: usize, limit: Duration) {
    let what = format!("nodes n1..n{n} agree on a ring of all of them, all up");
    eventually(limit, &what, async || converged(c, n).await).await;
}

/// Wait until every node in `observers` reports `target` with `status`.
async fn wait_seen_as(c: &Cluster, observers: &[usize], target: usize, status: &str) {
    let what = format!("n{observers:?} all report n{target} {status}");
    let limit = DOWN_LIMIT;
    eventually(limit, &what, async || {
        for &i in observers {
            let seen = c.member_statuses(i).await;
            let got = seen.get(&format!("n{target}"));
            if got.map(String::as_str) != Some(status) {
                return Err(format!("n{i} sees n{target} as {got:?}"));
            }
        }
        Ok(())
    })
    .await;
}

/// Four nodes join one seed at once, two named in their config and two with
/// `--join`; all five agree on the ring of all five, each up, within
/// [`CONVERGE_LIMIT`] (15 s) of the first one starting.
#[tokio::test]
async fn nodes_joining_through_one_seed_agree_on_one_ring() {
    let mut c = Cluster::start_with(1, FAST).await;
    let started = Instant::now();
    for via in [
        SeedVia::Config,
        SeedVia::Flag,
        SeedVia::Config,
        SeedVia::Flag,
    ] {
        c.join_via(1, via).await;
    }
    wait_converged(&c, 5, CONVERGE_LIMIT).await;
    eprintln!(
        "5 nodes agreed after {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A SIGKILLed node is reported down by every other node within
/// [`DOWN_LIMIT`] (10 s), and up again once it restarts.
#[tokio::test]
async fn a_killed_node_is_reported_down_by_every_other_node() {
    let mut c = Cluster::start_with(4, FAST).await;
    wait_converged(&c, 4, CONVERGE_LIMIT).await;
    c.kill(4);
    let killed = Instant::now();
    wait_seen_as(&c, &[1, 2, 3], 4, "down").await;
    eprintln!(
        "n4 down everywhere {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    c.restart(4).await;
    wait_converged(&c, 4, CONVERGE_LIMIT).await;
}

/// With only the link n1–n2 cut, both stay alive by agreement: for three
/// times the suspicion timeout no node reports either as down (n1 and n2
/// suspect each other, which one suspicion cannot turn into down). Healed,
/// everyone is up again.
#[tokio::test]
async fn a_single_cut_link_never_gets_a_healthy_node_declared_down() {
    let c = Cluster::start_with(4, FAST).await;
    wait_converged(&c, 4, CONVERGE_LIMIT).await;
    c.cut(1, 2).await;
    let until = Instant::now() + 3 * SUSPECT_AFTER + Duration::from_secs(1);
    let mut suspected = false;
    while Instant::now() < until {
        for i in 1..=4 {
            let seen = c.member_statuses(i).await;
            let down: Vec<&String> = seen.keys().filter(|id| seen[*id] == "down").collect();
            assert!(down.is_empty(), "n{i} reports {down:?} down: {seen:?}");
            suspected |= i == 1 && seen.get("n2").is_some_and(|s| s == "suspect");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        suspected,
        "n1 never suspected n2 while their link was cut: the cut did not bite"
    );
    c.heal(1, 2).await;
    wait_converged(&c, 4, CONVERGE_LIMIT).await;
}

/// Hinted handoff alone (anti-entropy off) brings a node back up to date:
/// while n4 is dead, writes with W = 2 all succeed and stand-ins keep hints
/// for it; once it is back the hints drain to zero and n4 itself holds
/// every write to a key whose preference list includes it.
#[tokio::test]
async fn hints_held_for_a_dead_node_are_handed_back_when_it_returns() {
    let mut c = Cluster::start_with(4, &fast_without_anti_entropy()).await;
    wait_converged(&c, 4, CONVERGE_LIMIT).await;
    c.kill(4);
    wait_seen_as(&c, &[1, 2, 3], 4, "down").await;

    let keys = load(&c, 3, "hinted:", 50, 2).await;
    let owed: Vec<&String> = keys
        .iter()
        .filter(|key| c.preference_list(key).contains(&4))
        .collect();
    assert!(!owed.is_empty(), "no key is n4's: pick more keys");
    let held = eventually(HINTS_LIMIT, "stand-ins hold hints for n4", async || {
        let mut held = 0;
        for i in 1..=3 {
            held += pending_hints(&c, i, "n4").await;
        }
        if held >= owed.len() as u64 {
            Ok(held)
        } else {
            Err(format!("{held} hints for {} writes n4 missed", owed.len()))
        }
    })
    .await;
    eprintln!("{held} hints held for n4 ({} of its writes)", owed.len());

    c.restart(4).await;
    eventually(HINTS_LIMIT, "every hint handed back", async || {
        let mut left = BTreeMap::new();
        for i in 1..=4 {
            let status = c.status(i).await;
            let hints = status["pending_hints"].as_object().cloned();
            let total: u64 = hints.iter().flatten().filter_map(|(_, n)| n.as_u64()).sum();
            if total > 0 {
                let delivered = &status["stats"]["hints_delivered"];
                left.insert(format!("n{i}"), format!("{total} ({delivered} delivered)"));
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("hints still pending: {left:?}"))
        }
    })
    .await;
    for key in owed {
        let stored = c.replica(4, key).await;
        let values: Vec<&[u8]> = stored.live().filter_map(|s| s.value.as_deref()).collect();
        assert_eq!(
            values,
            vec![value_of(key).as_bytes()],
            "n4's own copy of {key} after the hints were handed back"
        );
    }
}

/// A node joining a loaded cluster takes over exactly its share (anti-
/// entropy off, so the handoff alone moves it): once all four agree and it
/// is up, every key reads back with R = 2 through any node, it stores
/// exactly the keys whose preference list in the 4-node ring includes it,
/// and the old owners drop what they no longer own (3 copies of each key).
#[tokio::test]
async fn a_joining_node_takes_over_exactly_its_share_of_the_data() {
    const KEYS: usize = 300;
    let mut c = Cluster::start_with(3, &fast_without_anti_entropy()).await;
    let keys = load(&c, 3, "join:", KEYS, 3).await;
    let started = Instant::now();
    assert_eq!(c.join(1).await, 4);
    wait_converged(&c, 4, CONVERGE_LIMIT).await;
    eprintln!(
        "n4 joined with its data after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    for (k, key) in keys.iter().enumerate() {
        let got = c.get_with(1 + k % 4, key, Some(2), false).await;
        assert_eq!(got.expect(200).text(), value_of(key), "{key}");
    }
    let share = |i: usize| {
        keys.iter()
            .filter(|key| c.preference_list(key).contains(&i))
            .count() as u64
    };
    let want: Vec<u64> = (1..=4).map(share).collect();
    assert_eq!(want.iter().sum::<u64>(), 3 * KEYS as u64);
    assert_eq!(
        number(&c, 4, "stored_keys").await,
        want[3],
        "n4 stores exactly the keys it replicates"
    );
    let what = format!("nodes n1..n4 store {want:?} keys (their share of the 4-node ring)");
    eventually(CONVERGE_LIMIT, &what, async || {
        let mut stored = Vec::new();
        for i in 1..=4 {
            stored.push(number(&c, i, "stored_keys").await);
        }
        if stored == want {
            Ok(())
        } else {
            Err(format!("they store {stored:?}"))
        }
    })
    .await;
}

/// `ringkv leave` on n4 of a loaded 4-node cluster: n4 hands its ranges to
/// the new owners and exits by itself with status 0, the other three agree
/// on the ring of the three of them (n4 `left` or gone), every key reads
/// back with R = 3, and each of the three stores every key.
#[tokio::test]
async fn a_leaving_node_hands_its_data_over_and_exits() {
    const KEYS: usize = 200;
    let mut c = Cluster::start_with(4, &fast_without_anti_entropy()).await;
    wait_converged(&c, 4, CONVERGE_LIMIT).await;
    let keys = load(&c, 4, "leave:", KEYS, 3).await;

    let started = Instant::now();
    let n4 = c.http_addr(4).to_string();
    // The CLI follows the handoff until the node has stopped.
    run_cli(&["leave", "--node", &n4], LEAVE_LIMIT).await;
    let exit = c.wait_exit(4, LEAVE_LIMIT).await;
    assert!(exit.success(), "n4 exited with {exit} after leaving");
    eprintln!(
        "n4 left and exited after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    wait_converged(&c, 3, CONVERGE_LIMIT).await;

    for (k, key) in keys.iter().enumerate() {
        let got = c.get_with(1 + k % 3, key, Some(3), false).await;
        assert_eq!(got.expect(200).text(), value_of(key), "{key}");
    }
    for i in 1..=3 {
        assert_eq!(
            number(&c, i, "stored_keys").await,
            KEYS as u64,
            "n{i} stores every key once n4 is gone"
        );
    }
}
