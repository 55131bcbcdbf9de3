//! Settings agreement as the protocol enforces it, without the server's
//! handshake and data-directory checks in front (the simulator's
//! situation): a member whose gossip entry shows other cluster settings is
//! never used as a replica or coordinator, and no node drops keys while the
//! members disagree.

mod common;

use common::*;
use ringkv_core::gossip::{MemberState, MemberStatus, Membership};
use ringkv_core::message::Message;
use ringkv_core::node::Node;
use ringkv_core::settings::Settings;
use ringkv_core::version::CausalContext;

const KEYS: usize = 200;

/// The cluster's settings with N = 2 (R and W lowered to stay valid).
fn n2() -> Settings {
    Settings {
        n: 2,
        r: 1,
        w: 1,
        ..Settings::default()
    }
}

/// Restart `name` with `settings`, its store and member list kept (as the
/// server's restart does, less the data directory's settings check).
fn restart_with(net: &mut Net, name: &str, settings: Settings) {
    let old = net.nodes.remove(&id(name)).expect("node");
    let (mine, others): (Vec<MemberState>, Vec<MemberState>) = old
        .membership()
        .members()
        .cloned()
        .partition(|m| m.id == id(name));
    let me = MemberState {
        generation: mine[0].generation + 1,
        ..MemberState::new(id(name), MemberStatus::Member)
    };
    let members = Membership::new(me, others, Vec::new(), settings.membership.clone());
    let node = Node::with_membership(settings, members, old.into_store(), 7).unwrap();
    net.add(node);
}

/// Write and read `count` new keys through the nodes in `via` in turn,
/// recording the traffic; answers the work messages sent to `target`.
fn work_sent_to(net: &mut Net, via: &[&str], target: &str, count: usize) -> Vec<Message> {
    net.recording = true;
    for i in 0..count {
        let node = via[i % via.len()];
        let written = net.put(
            node,
            &format!("new-{i}"),
            "v",
            CausalContext::new(),
            Some(2),
        );
        assert!(written.is_ok(), "{written:?}");
        let _ = net.get(node, &format!("new-{i}"), Some(2));
    }
    net.recording = false;
    net.log
        .iter()
        .filter(|(from, to, _)| *to == id(target) && *from != id(target))
        .map(|(_, _, msg)| msg.clone())
        .filter(|msg| {
            matches!(
                msg,
                Message::Replicate { .. }
                    | Message::HintedReplicate { .. }
                    | Message::Read { .. }
                    | Message::Forward { .. }
            )
        })
        .collect()
}

#[test]
fn a_node_restarted_with_another_n_drops_nothing_and_is_not_used() {
    let mut net = Net::loaded(&["n1", "n2", "n3"], KEYS);
    restart_with(&mut net, "n3", n2());
    // Long enough for gossip to spread the new entry, and for n3 to drop
    // what it would no longer replicate with N = 2, were it to.
    net.run_for(10_000, 50);
    let mismatch = net.nodes[&id("n1")].settings_mismatch(&id("n3"));
    assert!(
        mismatch
            .as_deref()
            .is_some_and(|m| m.contains("member n3 runs with other cluster settings")),
        "{mismatch:?}"
    );
    for n in ["n1", "n2", "n3"] {
        assert_eq!(net.held(n, KEYS), KEYS, "{n} dropped keys");
    }
    let used = work_sent_to(&mut net, &["n1", "n2"], "n3", 60);
    assert!(used.is_empty(), "n3 was used: {:?}", used.first());
}

#[test]
fn a_joining_node_with_another_n_never_joins_nor_gets_writes() {
    let mut net = Net::loaded(&["n1", "n2", "n3"], KEYS);
    let me = MemberState::new(id("n4"), MemberStatus::Joining);
    let settings = n2();
    let members = Membership::new(me, [], vec!["n1".into()], settings.membership.clone());
    net.add(Node::with_membership(settings, members, MemoryStore::default(), 4).unwrap());
    net.run_for(10_000, 50);
    let n1 = &net.nodes[&id("n1")];
    assert_eq!(
        n1.membership().member(&id("n4")).map(|m| m.status),
        Some(MemberStatus::Joining),
        "n4 is known, and still joining: it cannot fetch from nodes whose settings differ"
    );
    for n in ["n1", "n2", "n3"] {
        assert_eq!(net.held(n, KEYS), KEYS, "{n} dropped keys");
    }
    let used = work_sent_to(&mut net, &["n1", "n2", "n3"], "n4", 60);
    assert!(used.is_empty(), "n4 was used: {:?}", used.first());
}
