//! Causality end to end: contexts, siblings and their resolution.

mod common;

use common::{Cluster, Sibling};
use ringkv_core::NodeId;
use std::time::Duration;

fn id(name: &str) -> NodeId {
    NodeId::new(name)
}

/// Last-write-wins, as a client would do it: the largest timestamp, ties
/// broken by the dot.
fn last_write_wins(siblings: &[Sibling]) -> &Sibling {
    siblings
        .iter()
        .max_by(|a, b| (a.timestamp, &a.dot).cmp(&(b.timestamp, &b.dot)))
        .expect("at least one sibling")
}

/// The seed's story (DEVELOPERS.md): S1 coordinates CAR then CART; while S1
/// is down and S2, S3 are partitioned, S2 writes CARM and S3 writes CARR
/// against CART. After healing, a read shows both as siblings; the client
/// resolves them and writes back with the read's context, which supersedes
/// both.
#[tokio::test]
async fn the_seeds_story_concurrent_writes_become_siblings_then_one() {
    let mut c = Cluster::start(3).await;
    let key = common::find_key(3, "cart:", |pref| pref[0] == 1);

    let car = c.put_with(1, &key, "CAR", None, Some(3)).await.expect(204);
    let car_ctx = car.context().unwrap();
    let cart = c
        .put_with(1, &key, "CART", Some(&car_ctx), Some(3))
        .await
        .expect(204);
    let cart_clock = cart.clock();
    assert_eq!(cart_clock.len(), 1, "{cart_clock:?}");
    assert_eq!(cart_clock.max_counter(&id("n1")), 2, "{cart_clock:?}");
    let cart_ctx = cart.context().unwrap();

    c.kill(1);
    c.cut(2, 3).await;
    // Both writes run at once: each may first try a coordinator it cannot
    // reach and wait out the forward timeout.
    let (carm, carr) = tokio::join!(
        c.put_with(2, &key, "CARM", Some(&cart_ctx), Some(1)),
        c.put_with(3, &key, "CARR", Some(&cart_ctx), Some(1)),
    );
    let (carm, carr) = (carm.expect(204).clock(), carr.expect(204).clock());
    assert!(carm.descends(&cart_clock) && carr.descends(&cart_clock));
    assert_eq!(
        (carm.max_counter(&id("n2")), carm.max_counter(&id("n3"))),
        (1, 0),
        "{carm:?}"
    );
    assert_eq!(
        (carr.max_counter(&id("n2")), carr.max_counter(&id("n3"))),
        (0, 1),
        "{carr:?}"
    );

    c.heal(2, 3).await;
    let read = c.get_with(2, &key, Some(2), false).await.expect(300);
    let mut values: Vec<String> = read.siblings().iter().map(Sibling::text).collect();
    values.sort();
    assert_eq!(values, ["CARM", "CARR"]);
    let read_clock = read.clock();
    assert_eq!(read.json()["context"].as_str(), read.context().as_deref());
    assert!(read_clock.descends(&carm) && read_clock.descends(&carr));

    let siblings = read.siblings();
    let winner = last_write_wins(&siblings).text();
    let ctx = read.context().unwrap();
    c.put_with(2, &key, winner.clone(), Some(&ctx), None)
        .await
        .expect(204);

    let resolved = c.get_with(2, &key, Some(2), false).await.expect(200);
    assert_eq!(resolved.text(), winner);
    let clock = resolved.clock();
    assert!(
        clock.descends(&carm),
        "{clock:?} must descend CARM's {carm:?}"
    );
    assert!(
        clock.descends(&carr),
        "{clock:?} must descend CARR's {carr:?}"
    );
    assert!(clock.max_counter(&id("n1")) >= 2, "{clock:?}");
    assert!(clock.max_counter(&id("n2")) >= 1, "{clock:?}");
    assert!(clock.max_counter(&id("n3")) >= 1, "{clock:?}");
    // The other survivor agrees.
    assert_eq!(
        c.get_with(3, &key, Some(2), false).await.expect(200).text(),
        winner
    );
}

/// Dotted version vectors: two blind writes through the same node are
/// concurrent (neither saw the other), so both survive as siblings; a write
/// with the read's context resolves them.
#[tokio::test]
async fn two_blind_writes_through_one_node_are_siblings_until_resolved() {
    let c = Cluster::start_patient(3).await;
    let key = "profile:7";
    let via = (1..=3).find(|&i| i != c.coordinator_of(key)).unwrap();
    c.put(via, key, "first").await.expect(204);
    c.put(via, key, "second").await.expect(204);

    let read = c.get(via, key).await.expect(300);
    assert_eq!(
        read.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let siblings = read.siblings();
    let mut values: Vec<String> = siblings.iter().map(Sibling::text).collect();
    values.sort();
    assert_eq!(values, ["first", "second"]);
    let coordinator = format!("n{}", c.coordinator_of(key));
    let mut dots: Vec<&str> = siblings.iter().map(|s| s.dot.as_str()).collect();
    dots.sort();
    assert_eq!(
        dots,
        [format!("{coordinator}:1"), format!("{coordinator}:2")]
    );

    // Every node sees the same two siblings.
    for i in 1..=3 {
        assert_eq!(
            c.get_with(i, key, Some(3), false)
                .await
                .expect(300)
                .siblings()
                .len(),
            2
        );
    }

    let ctx = read.context().unwrap();
    c.put_with(via, key, "merged", Some(&ctx), None)
        .await
        .expect(204);
    for i in 1..=3 {
        let got = c.get(i, key).await.expect(200);
        assert_eq!(got.text(), "merged", "via n{i}");
    }
    // The JSON form of a single value is a 200 with one sibling.
    let json = c.get_with(1, key, None, true).await.expect(200);
    let one = json.siblings();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].text(), "merged");
}

/// A write with a stale context (one that did not see a later write) does
/// not overwrite that write: both survive as siblings.
#[tokio::test]
async fn a_write_with_a_stale_context_keeps_the_write_it_did_not_see() {
    let c = Cluster::start_patient(3).await;
    let key = "stale";
    let first = c.put(1, key, "v1").await.expect(204).context().unwrap();
    c.put_with(2, key, "v2", Some(&first), None)
        .await
        .expect(204);
    c.put_with(3, key, "v2-too", Some(&first), None)
        .await
        .expect(204);
    let read = c.get(1, key).await.expect(300);
    let mut values: Vec<String> = read.siblings().iter().map(Sibling::text).collect();
    values.sort();
    assert_eq!(
        values,
        ["v2", "v2-too"],
        "v1 is superseded, the others are concurrent"
    );

    // DELETE with the read's context removes exactly what it saw.
    let ctx = read.context().unwrap();
    c.delete_with(2, key, Some(&ctx), None).await.expect(204);
    for i in 1..=3 {
        c.get(i, key).await.expect(404);
    }
}

/// Two blind writes through one coordinator, then the second writer writes
/// again with the context its own PUT returned — the natural chaining
/// pattern. That context must cover its own version only: the first
/// writer's value, which the second never saw, survives as a sibling on
/// every replica (it used to be silently replaced: the receipt was the new
/// version's plain version-vector clock `n2:2`, which also claims `n2:1`).
#[tokio::test]
async fn a_write_chained_on_its_own_receipt_keeps_a_sibling_its_writer_never_saw() {
    let c = Cluster::start_patient(3).await;
    let key = "chained";
    c.put(2, key, "first").await.expect(204);
    let mine = c.put(2, key, "second").await.expect(204).context().unwrap();
    c.put_with(2, key, "third", Some(&mine), None)
        .await
        .expect(204);
    for i in 1..=3 {
        let read = c.get_with(i, key, Some(3), true).await.expect(300);
        let mut values: Vec<String> = read.siblings().iter().map(Sibling::text).collect();
        values.sort();
        assert_eq!(values, ["first", "third"], "read via n{i}");
    }
}

/// Contexts pruned hard (two entries, no grace for young ones), and a key
/// whose siblings come from three coordinators — its usual one was down
/// for one write, and the next one for another. One write with a full
/// R = 3 read's context must leave exactly one version on every replica:
/// pruning keeps the dots of every version a write resolves. It used to
/// keep the writer's own (redundant) entry and drop another coordinator's,
/// so replicas kept that coordinator's sibling beside the new version for
/// good, and every later resolving write was pruned the same way.
#[tokio::test]
async fn a_resolving_write_leaves_one_version_even_when_its_context_is_pruned() {
    let pruning = "max_clock_entries = 2\nyoung_clock_ms = 0";
    let mut c = Cluster::start_with_replication(3, pruning).await;
    let key = common::find_key(3, "pruned:", |pref| pref == [1, 2, 3]);
    c.put(1, &key, "a").await.expect(204);
    c.kill(1);
    c.put_with(2, &key, "b", None, Some(1)).await.expect(204);
    c.kill(2);
    c.put_with(3, &key, "c", None, Some(1)).await.expect(204);
    c.restart(1).await;
    c.restart(2).await;
    // Full reads until every replica holds all three (read repair).
    let limit = Duration::from_secs(20);
    common::eventually(limit, "every replica holds three siblings", async || {
        c.get_with(1, &key, Some(3), true).await;
        let mut held = Vec::new();
        for i in 1..=3 {
            held.push(c.replica(i, &key).await.len());
        }
        if held == [3, 3, 3] {
            Ok(())
        } else {
            Err(format!("siblings held: {held:?}"))
        }
    })
    .await;

    let read = c.get_with(1, &key, Some(3), true).await.expect(300);
    assert_eq!(read.siblings().len(), 3);
    let ctx = read.context().unwrap();
    c.put_with(1, &key, "abc", Some(&ctx), Some(3))
        .await
        .expect(204);
    for i in 1..=3 {
        let replica = c.replica(i, &key).await;
        let values: Vec<_> = replica.live().filter_map(|s| s.value.clone()).collect();
        assert_eq!(values, [b"abc".to_vec()], "n{i} holds {replica:?}");
    }
}
