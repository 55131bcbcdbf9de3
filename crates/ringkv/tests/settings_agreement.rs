//! Settings that decide placement agree cluster-wide, end to end on real
//! processes: a node restarted with another N refuses to start (and so
//! drops nothing), and a new node with other settings is refused by the
//! cluster it tries to join and exits, both saying which setting differs.
//! Every wait is a bounded poll.

mod common;

use common::{eventually, Cluster};
use std::time::Duration;

/// The harness's replication section for a 3-node cluster, and the same
/// with N = 2 (R and W lowered to stay valid).
const N3: &str = "n = 3\nr = 2\nw = 2\n";
const N2: &str = "n = 2\nr = 1\nw = 1\n";
/// Bound on a refused node exiting by itself.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

fn with_n2(config: String) -> String {
    assert!(config.contains(N3), "the harness writes {N3:?}: {config}");
    config.replace(N3, N2)
}

/// How many of nodes 1..=3 hold a copy of `key`.
async fn copies(c: &Cluster, key: &str) -> usize {
    let mut count = 0;
    for i in 1..=3 {
        if !c.replica(i, key).await.is_empty() {
            count += 1;
        }
    }
    count
}

/// Every key has a copy on each of the three nodes.
async fn assert_three_copies(c: &Cluster, keys: &[String], when: &str) {
    for key in keys {
        assert_eq!(copies(c, key).await, 3, "{key} {when}");
    }
}

#[tokio::test]
async fn a_node_restarted_with_another_n_refuses_to_start_and_drops_nothing() {
    let mut c = Cluster::start(3).await;
    let keys: Vec<String> = (0..30).map(|k| format!("b08-{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        c.put_with(1 + k % 3, key, "v", None, Some(3))
            .await
            .expect(204);
    }
    assert_three_copies(&c, &keys, "before the restart").await;

    c.kill(1);
    c.edit_config(1, with_n2);
    c.spawn_again(1);
    let status = c.wait_exit(1, EXIT_LIMIT).await;
    assert!(!status.success(), "n1 started with n = 2: {status}");
    let log = std::fs::read_to_string(c.log_path(1)).unwrap_or_default();
    assert!(
        log.contains("replication n differs: the config has 2, the data directory has 3")
            && log.contains("not supported"),
        "n1 says which setting differs and that changing it is not supported:\n{log}"
    );

    c.edit_config(1, |config| config.replace(N2, N3));
    c.restart(1).await;
    assert_three_copies(&c, &keys, "after n1 is back with its settings").await;
    let log = std::fs::read_to_string(c.log_path(1)).unwrap_or_default();
    assert!(!log.contains("keys dropped"), "n1 dropped keys:\n{log}");
}

#[tokio::test]
async fn a_new_node_with_another_n_is_refused_by_the_cluster_and_exits() {
    let mut c = Cluster::start(3).await;
    let joiner = c.spawn_joiner(1, with_n2);
    let status = c.wait_exit(joiner, EXIT_LIMIT).await;
    assert!(!status.success(), "n{joiner} joined with n = 2: {status}");
    let log = std::fs::read_to_string(c.log_path(joiner)).unwrap_or_default();
    assert!(
        log.contains(
            "refusing to join the cluster: replication n differs: this node has 2, peer n1 has 3"
        ),
        "the joiner says why it exits:\n{log}"
    );

    // The seed refused it once (not once per attempt) and never let it in.
    let refusal = format!("replication n differs: this node has 3, peer n{joiner} has 2");
    let seed_log = c.log_path(1).to_path_buf();
    let lines = eventually(Duration::from_secs(5), "n1 logs the refusal", async || {
        let text = std::fs::read_to_string(&seed_log).unwrap_or_default();
        match text.lines().filter(|l| l.contains(&refusal)).count() {
            0 => Err("no refusal logged yet".to_string()),
            lines => Ok(lines),
        }
    })
    .await;
    assert_eq!(lines, 1, "n1 logs the refusal once");
    for i in 1..=3 {
        let members = c.member_statuses(i).await;
        assert!(
            !members.contains_key(&format!("n{joiner}")),
            "n{i} knows the refused node: {members:?}"
        );
    }
    c.put_with(2, "after-refusal", "v", None, Some(3))
        .await
        .expect(204);
}
