//! Replication, forwarding, failures and restarts, on real node processes.

mod common;

use common::{keys_coordinated_by, Cluster};

/// Any node answers for any key: a PUT through a node that is not the key's
/// coordinator is forwarded there (one hop), and a quorum read through every
/// node returns the value.
#[tokio::test]
async fn a_put_through_a_non_coordinator_is_forwarded_and_read_back_everywhere() {
    let c = Cluster::start_patient(3).await;
    let key = "user:42";
    let coordinator = c.coordinator_of(key);
    let other = (1..=3).find(|&i| i != coordinator).unwrap();

    let forwarded = c.stat(other, "forwarded").await;
    let coordinated_there = c.stat(other, "coordinated").await;
    let coordinated = c.stat(coordinator, "coordinated").await;
    c.put_with(other, key, "Ada", None, Some(2))
        .await
        .expect(204);
    assert_eq!(
        c.stat(other, "forwarded").await,
        forwarded + 1,
        "n{other} forwarded"
    );
    assert_eq!(
        c.stat(other, "coordinated").await,
        coordinated_there,
        "n{other} is not the coordinator and must not coordinate"
    );
    assert_eq!(
        c.stat(coordinator, "coordinated").await,
        coordinated + 1,
        "the coordinator n{coordinator} coordinated the write"
    );

    for i in 1..=3 {
        let got = c.get_with(i, key, Some(2), false).await.expect(200);
        assert_eq!(got.text(), "Ada", "read through n{i}");
        let clock = got.clock();
        assert_eq!(clock.len(), 1, "one write, one clock entry: {clock:?}");
        assert_eq!(
            clock.max_counter(&format!("n{coordinator}").as_str().into()),
            1
        );
    }
}

/// With 4 nodes and N = 3, one node holds no replica of a key: it still
/// serves the key by forwarding to the coordinator.
#[tokio::test]
async fn a_node_outside_the_preference_list_forwards_to_the_coordinator() {
    let c = Cluster::start_patient(4).await;
    let key = common::find_key(4, "outside:", |pref| !pref.contains(&4));
    let coordinator = c.coordinator_of(&key);

    let forwarded = c.stat(4, "forwarded").await;
    let coordinated = c.stat(coordinator, "coordinated").await;
    c.put(4, &key, "far away").await.expect(204);
    let got = c.get_with(4, &key, Some(2), false).await.expect(200);
    assert_eq!(got.text(), "far away");
    assert_eq!(
        c.stat(4, "forwarded").await,
        forwarded + 2,
        "PUT and GET forwarded"
    );
    assert_eq!(c.stat(4, "coordinated").await, 0, "n4 holds no replica");
    assert_eq!(c.stat(coordinator, "coordinated").await, coordinated + 2);

    for i in c.preference_list(&key) {
        let got = c.get_with(i, &key, Some(3), false).await.expect(200);
        assert_eq!(got.text(), "far away", "every replica has it (via n{i})");
    }
}

/// N = 3, W = R = 2: one dead node costs nothing but W = 3; the 503 says
/// how many replicas answered.
#[tokio::test]
async fn one_dead_node_leaves_quorums_of_two_working() {
    let mut c = Cluster::start(3).await;
    c.kill(3);

    // Include keys the dead node coordinates: they fail over to the next
    // node of their preference list.
    let mut keys = keys_coordinated_by(3, 3, "dead-coord:", 3);
    keys.extend(keys_coordinated_by(3, 1, "live-coord:", 2));
    keys.extend(keys_coordinated_by(3, 2, "live-coord:", 2));
    for (n, key) in keys.iter().enumerate() {
        let via = 1 + n % 2;
        let value = format!("value {n}");
        c.put_with(via, key, value.clone(), None, Some(2))
            .await
            .expect(204);
        for reader in [1, 2] {
            let got = c.get_with(reader, key, Some(2), false).await.expect(200);
            assert_eq!(got.text(), value, "{key} read through n{reader}");
        }
    }

    for key in &keys[..2] {
        let resp = c
            .put_with(1, key, "all three", None, Some(3))
            .await
            .expect(503);
        let body = resp.text();
        let answered = body
            .trim()
            .strip_prefix("put needed 3 of 3 replicas but only ")
            .and_then(|rest| {
                rest.strip_suffix(
                    " answered in time; it was written where acknowledged and will reach \
                     the other replicas",
                )
            })
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("unexpected 503 body: {body:?}"));
        assert!(
            (1..=2).contains(&answered),
            "two replicas are alive, the message says {answered}: {body:?}"
        );

        let resp = c.get_with(2, key, Some(3), false).await.expect(503);
        assert!(
            resp.text()
                .starts_with("get needed 3 of 3 replicas but only "),
            "{}",
            resp.text()
        );
    }
    assert!(c.stat(1, "unavailable").await + c.stat(2, "unavailable").await >= 4);
}

/// A node's data survives SIGKILL: after a restart, cut off from every
/// peer, it answers R = 1 reads of the keys it coordinates from its own disk.
#[tokio::test]
async fn a_restarted_node_reads_its_data_back_from_disk() {
    let mut c = Cluster::start(3).await;
    let x = 2;
    let keys = keys_coordinated_by(3, x, "durable:", 4);
    for (n, key) in keys.iter().enumerate() {
        c.put(1 + n % 3, key, format!("persisted {n}"))
            .await
            .expect(204);
    }

    c.kill(x);
    c.restart(x).await;
    for peer in (1..=3).filter(|&i| i != x) {
        c.cut(x, peer).await;
    }
    for (n, key) in keys.iter().enumerate() {
        let got = c.get_with(x, key, Some(1), false).await.expect(200);
        assert_eq!(
            got.text(),
            format!("persisted {n}"),
            "{key} from n{x}'s disk"
        );
    }
    // Alone, it cannot gather R = 2.
    let resp = c.get_with(x, &keys[0], Some(2), false).await.expect(503);
    assert!(resp.text().contains("needed 2 of 3"), "{}", resp.text());
}

/// DELETE without a context deletes what a quorum read finds; afterwards
/// every node answers 404.
#[tokio::test]
async fn a_deleted_key_is_gone_from_every_node() {
    let c = Cluster::start_patient(3).await;
    let key = "doomed";
    c.put(1, key, "soon gone").await.expect(204);
    assert_eq!(c.get(3, key).await.expect(200).text(), "soon gone");

    let other = (1..=3).find(|&i| i != c.coordinator_of(key)).unwrap();
    let deleted = c.delete(other, key).await.expect(204);
    assert!(deleted.context().is_some(), "a delete returns its context");
    for i in 1..=3 {
        c.get(i, key).await.expect(404);
        c.get_with(i, key, Some(3), false).await.expect(404);
    }

    // Writing again after the delete brings the key back.
    c.put(2, key, "back").await.expect(204);
    assert_eq!(
        c.get_with(1, key, Some(3), false).await.expect(200).text(),
        "back"
    );

    // A key that never existed is 404 too, and deleting it is harmless.
    c.get(1, "never-written").await.expect(404);
    c.delete(2, "never-written").await.expect(204);
    c.get(3, "never-written").await.expect(404);
}
