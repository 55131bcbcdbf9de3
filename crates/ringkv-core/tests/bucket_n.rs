//! Buckets with their own N, on the deterministic network: a key lives on
//! exactly the first N nodes of its preference list — after writes, after
//! anti-entropy repairs a copy, after a join and after a leave — and is
//! read back whole.

mod common;

use common::*;
use ringkv_core::bucket::{self, BucketProps};
use ringkv_core::gossip::{MemberState, MemberStatus, Membership};
use ringkv_core::keyspace::ConflictPolicy;
use ringkv_core::node::Node;
use ringkv_core::settings::Settings;
use ringkv_core::store::Store;
use ringkv_core::version::CausalContext;

const KEYS: usize = 60;
/// The buckets' names and N (the cluster's N is 3).
const BUCKETS: [(&str, usize); 3] = [("one", 1), ("two", 2), ("three", 3)];

/// The internal key of `user` in bucket `name` of N `n`.
fn key_in(name: &str, n: usize, user: &str) -> String {
    let props = BucketProps::new(n, ConflictPolicy::Siblings);
    let prefix = bucket::prefix(name, &props);
    String::from_utf8([prefix, user.as_bytes().to_vec()].concat()).expect("ASCII")
}

/// Every key the tests write: KEYS per bucket, with their N.
fn all_keys() -> Vec<(String, usize)> {
    BUCKETS
        .iter()
        .flat_map(|&(name, n)| (0..KEYS).map(move |i| (key_in(name, n, &numbered(i)), n)))
        .collect()
}

/// Define the buckets on `via` and let gossip spread them.
fn define_buckets(net: &mut Net, via: &str) {
    let now = net.now;
    for (name, n) in BUCKETS {
        let props = BucketProps::new(n, ConflictPolicy::Siblings);
        net.node(via).define_bucket(now, name, props).unwrap();
    }
    net.run_for(3_000, 50);
}

fn write_all(net: &mut Net, via: &str) {
    for (key, n) in all_keys() {
        let written = net.put(via, &key, "v", CausalContext::new(), Some(n));
        assert!(written.is_ok(), "{key:?}: {written:?}");
    }
}

/// Panics unless every key is held by exactly the first N nodes of its
/// preference list (as `viewer` sees the ring) among `nodes`.
fn assert_placed(net: &Net, viewer: &str, nodes: &[&str]) {
    let ring = net.nodes[&id(viewer)].ring().clone();
    let mut wrong = Vec::new();
    for (key, n) in all_keys() {
        let mut should: Vec<String> = ring
            .preference_list(key.as_bytes(), n)
            .into_iter()
            .map(|m| m.0)
            .collect();
        should.sort();
        let holders: Vec<String> = nodes
            .iter()
            .filter(|m| !net.local(m, &key).is_empty())
            .map(|m| m.to_string())
            .collect();
        if holders != should {
            wrong.push(format!("{key:?} (n={n}) on {holders:?}, not {should:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} keys misplaced: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// Which of `nodes` hold each key now.
fn holders(net: &Net, nodes: &[&str]) -> Vec<Vec<String>> {
    let held = |key: &str| {
        let present = nodes.iter().filter(|m| net.nodes.contains_key(&id(m)));
        let on = present.filter(|m| !net.local(m, key).is_empty());
        on.map(|m| m.to_string()).collect()
    };
    all_keys().iter().map(|(key, _)| held(key)).collect()
}

/// Panics unless every copy a node gained between `before` and now came by
/// handoff (counted in its stats): not by anti-entropy, nor by the repair a
/// node sends as it drops a key.
fn assert_gained_by_handoff(net: &Net, before: &[Vec<String>], nodes: &[&str]) {
    let after = holders(net, nodes);
    for node in nodes {
        let gained = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| a.iter().any(|m| m == node) && !b.iter().any(|m| m == node))
            .count() as u64;
        let received = net.nodes[&id(node)].stats().handoff_keys_received;
        assert!(
            received >= gained,
            "{node} gained {gained} keys, {received} by handoff"
        );
    }
}

fn assert_readable(net: &mut Net, via: &str) {
    for (key, _) in all_keys() {
        assert_eq!(values(&net.get(via, &key, Some(1))), vec!["v"], "{key:?}");
    }
}

#[test]
fn a_key_lives_on_the_first_n_of_its_list_and_reads_back() {
    let names = ["n1", "n2", "n3", "n4"];
    let mut net = Net::new(&names);
    define_buckets(&mut net, "n2");
    write_all(&mut net, "n1");
    net.run_for(5_000, 50);
    assert_placed(&net, "n1", &names);
    assert_readable(&mut net, "n3");
    // A quorum above the key's N is refused in one sentence.
    let key = key_in("two", 2, "k");
    let refused = net.put("n1", &key, "v", CausalContext::new(), Some(3));
    let message = format!("{refused:?}");
    assert!(message.contains("w must be within 1..=2"), "{message}");
}

#[test]
fn anti_entropy_repairs_a_copy_only_among_the_keys_replicas() {
    let names = ["n1", "n2", "n3", "n4"];
    let mut settings = Settings::default();
    settings.anti_entropy.interval_ms = 50;
    // Two leaves per range: keys of every N share the leaves that differ,
    // so an exchange that sent keys its partner does not replicate would.
    settings.anti_entropy.tree_depth = 1;
    let mut net = Net::build(&names, settings, |_| MemoryStore::default());
    define_buckets(&mut net, "n1");
    write_all(&mut net, "n1");
    net.run_for(2_000, 50);
    // Every replica loses its copies of the N = 2 and N = 3 keys whose
    // second replica it is; anti-entropy brings them back from the first.
    let ring = net.nodes[&id("n1")].ring().clone();
    let mut lost = 0;
    for (key, n) in all_keys().into_iter().filter(|(_, n)| *n >= 2) {
        let second = ring.preference_list(key.as_bytes(), n)[1].clone();
        net.nodes
            .get_mut(&second)
            .unwrap()
            .store_mut()
            .delete(key.as_bytes())
            .unwrap();
        lost += 1;
    }
    assert!(lost > 0);
    for name in names {
        net.node(name).rebuild_trees();
    }
    net.run_for(60_000, 50);
    assert_placed(&net, "n1", &names);
}

/// Anti-entropy off: what moves, moves by handoff.
fn no_anti_entropy() -> Settings {
    let mut settings = Settings::default();
    settings.anti_entropy.enabled = false;
    settings
}

fn joiner(name: &str, seed: &str) -> Node<MemoryStore> {
    let me = MemberState::new(id(name), MemberStatus::Joining);
    let settings = no_anti_entropy();
    let members = Membership::new(me, [], vec![seed.to_string()], settings.membership.clone());
    Node::with_membership(settings, members, MemoryStore::default(), 4).unwrap()
}

#[test]
fn a_join_moves_each_keys_copies_to_the_first_n_of_its_new_list() {
    let mut net = Net::build(&["n1", "n2", "n3"], no_anti_entropy(), |_| {
        MemoryStore::default()
    });
    define_buckets(&mut net, "n3");
    write_all(&mut net, "n1");
    let names = ["n1", "n2", "n3", "n4"];
    let before = holders(&net, &names);
    net.add(joiner("n4", "n1"));
    net.run_for(20_000, 50);
    for viewer in names {
        assert!(
            net.nodes[&id(viewer)].ring().contains(&id("n4")),
            "{viewer}"
        );
    }
    let joined = net.nodes[&id("n4")].membership().buckets().clone();
    assert_eq!(
        joined.len(),
        BUCKETS.len(),
        "the joiner learned the buckets"
    );
    assert_placed(&net, "n1", &names);
    assert_gained_by_handoff(&net, &before, &names);
    assert_readable(&mut net, "n2");
}

#[test]
fn a_leave_moves_each_keys_copies_up_its_list() {
    let names = ["n1", "n2", "n3", "n4"];
    let mut net = Net::build(&names, no_anti_entropy(), |_| MemoryStore::default());
    define_buckets(&mut net, "n1");
    write_all(&mut net, "n2");
    net.run_for(500, 50);
    let before = holders(&net, &names);
    let now = net.now;
    net.node("n1").leave(now);
    net.run_for(20_000, 50);
    assert!(net.nodes[&id("n1")].has_left());
    let stayed = ["n2", "n3", "n4"];
    assert_placed(&net, "n2", &stayed);
    assert_gained_by_handoff(&net, &before, &stayed);
    net.down.insert(id("n1"));
    assert_readable(&mut net, "n3");
}

/// A listing never passes off a stand-in's empty page as a range's: with
/// the only replica of some N = 1 keys down, a scan through the ring fails
/// instead of answering without them.
#[test]
fn a_scan_with_no_live_replica_of_a_range_fails_instead_of_skipping_it() {
    use ringkv_core::keyspace::Keyspace;
    use ringkv_core::message::{ClientError, ClientOp, ClientReply};
    let names = ["n1", "n2", "n3", "n4"];
    let mut net = Net::new(&names);
    define_buckets(&mut net, "n1");
    write_all(&mut net, "n1");
    net.down.insert(id("n4"));
    net.run_for(20_000, 100);
    let props = BucketProps::new(1, ConflictPolicy::Siblings);
    let keyspace = Keyspace::of_bucket("one", &props);
    let mut cursor = 0;
    let mut listed = 0;
    for _ in 0..10_000 {
        let op = ClientOp::Scan {
            cursor,
            count: 1_000,
            keyspace: keyspace.clone(),
        };
        match net.request("n1", op) {
            Ok(ClientReply::Keys { keys, cursor: next }) => {
                listed += keys.len();
                if next == 0 {
                    panic!("the scan ended having listed {listed} of {KEYS} keys, n4 down");
                }
                cursor = next;
            }
            Err(ClientError::Unavailable { op, .. }) => {
                assert_eq!(op, "scan");
                return;
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("the scan never ended");
}
