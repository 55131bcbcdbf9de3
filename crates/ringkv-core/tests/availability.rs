//! "Add to cart" never waits on a silent node and never fails while some
//! node can take it: sloppy coordination on every side of a partition,
//! stand-in reads, hedged forwards, and a read-only node stepping aside.

mod common;

use common::{id, values, Net};
use ringkv_core::keyspace::lww_key;
use ringkv_core::message::{ClientError, ClientOp, ClientResult};
use ringkv_core::version::CausalContext;
use ringkv_core::Millis;

const ALL: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];

/// A key whose whole preference list is among `within`.
fn key_on(net: &Net, within: &[&str]) -> String {
    (0..1000)
        .map(|i| format!("cart-{i}"))
        .find(|k| {
            net.coordinator_of(k)
                .iter()
                .all(|n| within.contains(&n.as_str()))
        })
        .expect("some key lives there")
}

/// Cut every link between the two sides, both ways (packets dropped in
/// silence), and let the failure detector decide.
fn partition(net: &mut Net, a: &[&str], b: &[&str]) {
    for x in a {
        for y in b {
            net.cut_link(x, y);
        }
    }
    net.run_for(15_000, 100);
}

fn put(
    net: &mut Net,
    via: &str,
    key: &str,
    value: &str,
    w: usize,
    pw: Option<usize>,
) -> ClientResult {
    net.now += 1;
    net.request(via, blind_put(key, value, w, pw))
}

/// A write of `value` to `key` without a context.
fn blind_put(key: &str, value: &str, w: usize, pw: Option<usize>) -> ClientOp {
    ClientOp::Put {
        key: key.into(),
        value: value.into(),
        context: CausalContext::new(),
        w: Some(w),
        pw,
        ttl_ms: None,
    }
}

/// Submit `op` and let time pass in 10 ms ticks until it is answered:
/// how long it took, and the answer.
fn timed(net: &mut Net, via: &str, op: ClientOp) -> (Millis, ClientResult) {
    let client = net.submit(via, op);
    let start = net.now;
    while !net.replies.contains_key(&client) {
        assert!(net.now - start < 30_000, "never answered");
        net.advance(10);
    }
    (net.now - start, net.replies.remove(&client).unwrap())
}

#[test]
fn a_minority_side_write_succeeds_and_its_hint_reaches_the_replicas_after_the_heal() {
    let mut net = Net::new(&ALL);
    let (minority, majority) = (["n1", "n2"], ["n3", "n4", "n5"]);
    let key = key_on(&net, &majority);
    partition(&mut net, &minority, &majority);

    let w1 = put(&mut net, "n1", &key, "apples", 1, None);
    assert!(w1.is_ok(), "W=1 through the minority: {w1:?}");
    let w2 = put(&mut net, "n2", &key, "pears", 2, None);
    assert!(w2.is_ok(), "W=2 with two nodes on this side: {w2:?}");
    let (took, pw) = timed(
        &mut net,
        "n1",
        ClientOp::Put {
            key: key.clone().into(),
            value: b"plums".to_vec(),
            context: CausalContext::new(),
            w: Some(1),
            pw: Some(1),
            ttl_ms: None,
        },
    );
    assert!(
        matches!(&pw, Err(ClientError::Unavailable { op, .. }) if op == "put (pw)"),
        "PW refuses honestly: {pw:?}"
    );
    assert!(took < 1_000, "and at once, not after timeouts: {took} ms");
    let read = net.get("n1", &key, Some(2));
    // (A refused write may still have been applied where it was tried,
    // as in every Dynamo: "plums" may show up too.)
    let seen = values(&read);
    assert!(
        seen.contains(&"apples".to_string()) && seen.contains(&"pears".to_string()),
        "stand-ins answer reads: {seen:?}"
    );

    net.cut.clear();
    net.run_for(15_000, 100);
    // Two stand-ins kept hints (for two of the replicas); handed back, and
    // a read repairs the third (anti-entropy would, later).
    let hinted: Vec<&str> = majority
        .into_iter()
        .filter(|r| !net.local(r, &key).is_empty())
        .collect();
    assert!(hinted.len() >= 2, "hints handed back to {hinted:?}");
    let read = net.get("n3", &key, Some(3));
    assert!(values(&read).contains(&"apples".to_string()));
    net.run_for(1_000, 100);
    for replica in majority {
        let held = values(&net.local(replica, &key));
        assert!(
            held.contains(&"apples".to_string()) && held.contains(&"pears".to_string()),
            "{replica} holds the minority's writes after the heal: {held:?}"
        );
    }
    let pending: usize = ALL
        .iter()
        .map(|n| net.nodes[&id(n)].pending_hints().values().sum::<usize>())
        .sum();
    assert_eq!(pending, 0, "every hint handed back");
}

#[test]
fn a_request_hedges_past_a_silent_coordinator() {
    let mut net = Net::new(&["n1", "n2", "n3", "n4"]);
    let key = (0..1000)
        .map(|i| format!("cart-{i}"))
        .find(|k| !net.coordinator_of(k).contains(&"n4".to_string()))
        .unwrap();
    let coordinator = net.coordinator_of(&key)[0].clone();
    // n4 learns how fast coordinators answer.
    for i in 0..5 {
        assert!(put(&mut net, "n4", &key, &format!("warm-{i}"), 2, None).is_ok());
    }
    // The coordinator falls silent (paused, or cut off), long before any
    // failure detector could tell.
    for other in ["n1", "n2", "n3", "n4"] {
        if other != coordinator {
            net.cut_link(&coordinator, other);
        }
    }
    let (took, written) = timed(&mut net, "n4", blind_put(&key, "apples", 2, None));
    assert!(written.is_ok(), "{written:?}");
    assert!(
        took <= 500,
        "answered by the next candidate, not after the {} ms forward timeout: {took} ms",
        ringkv_core::settings::Settings::default().forward_timeout_ms()
    );
    assert!(net.nodes[&id("n4")].stats().hedged_forwards >= 1);
    let op = ClientOp::Get {
        key: key.into(),
        r: Some(2),
        pr: None,
    };
    let (took, read) = timed(&mut net, "n4", op);
    assert!(read.is_ok() && took <= 500, "{took} ms: {read:?}");
}

/// A last-write-wins write (a Redis `SET`) whose coordinator applies it
/// but answers late is not hedged: a second coordinator would stamp a
/// duplicate with its own clock, which could beat the next `SET` (a
/// fresh-eyes user lost an acknowledged `SET` that way, just after a
/// restart). It waits for its coordinator, and exactly one version of it
/// exists. A key with siblings is still hedged (see above).
#[test]
fn a_last_write_wins_write_is_never_hedged_to_a_second_coordinator() {
    let mut net = Net::new(&["n1", "n2", "n3", "n4"]);
    let key = (0..1000)
        .map(|i| String::from_utf8(lww_key(format!("s{i}").as_bytes())).unwrap())
        .find(|k| !net.coordinator_of(k).contains(&"n4".to_string()))
        .unwrap();
    let coordinator = net.coordinator_of(&key)[0].clone();
    for i in 0..5 {
        assert!(put(&mut net, "n4", &key, &format!("warm-{i}"), 2, None).is_ok());
    }
    // The coordinator takes the forward and replicates it, but n4 hears
    // nothing back for 300 ms (far past any hedge deadline).
    net.cut.insert((id(&coordinator), id("n4")));
    let client = net.submit("n4", blind_put(&key, "v1", 2, None));
    net.run_for(300, 10);
    net.cut.clear();
    while !net.replies.contains_key(&client) {
        net.advance(10);
    }
    assert!(net.replies[&client].is_ok(), "{:?}", net.replies[&client]);
    assert_eq!(net.nodes[&id("n4")].stats().hedged_forwards, 0);
    net.run_for(1_000, 100);
    for replica in net.coordinator_of(&key) {
        let held = net.local(&replica, &key);
        let v1: Vec<_> = held
            .iter()
            .filter(|s| s.value.as_deref() == Some(b"v1"))
            .collect();
        assert_eq!(v1.len(), 1, "{replica}: one version of v1, {held:?}");
    }
}

/// Every write of a Redis (typed) key, and of an `lww` bucket's key, goes
/// to the key's first replica wherever it lands — `DEL` and `INCR` too,
/// which may not be retried elsewhere: two coordinators order their
/// stamps only by their clocks, and a fresh-eyes user's `SET`, sent after
/// a `DEL` through another node was acknowledged, lost to it on a tie.
#[test]
fn every_write_of_a_last_write_wins_key_is_coordinated_by_its_first_replica() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let lww_bucket = ringkv_core::bucket::prefix(
        "last",
        &ringkv_core::bucket::BucketProps::new(3, ringkv_core::keyspace::ConflictPolicy::Lww),
    );
    for (i, prefix) in [lww_key(b""), lww_bucket].into_iter().enumerate() {
        let key = String::from_utf8([prefix, format!("t{i}").into_bytes()].concat()).unwrap();
        let coordinator = net.coordinator_of(&key)[0].clone();
        let others: Vec<String> = net.coordinator_of(&key)[1..].to_vec();
        let ops = [
            blind_put(&key, "10", 2, None),
            ClientOp::Delete {
                key: key.clone().into(),
                context: None,
                r: None,
                pr: None,
                w: None,
                pw: None,
            },
            ClientOp::Update {
                key: key.clone().into(),
                update: ringkv_core::crdt::Update::IncrBy(1),
                w: None,
                pw: None,
            },
        ];
        for (op, via) in ops.into_iter().zip(others.iter().cycle()) {
            let what = op.name();
            let reply = net.request(via, op);
            if i == 1 && what == "incrby" {
                continue; // an `lww` bucket takes no typed updates
            }
            assert!(reply.is_ok(), "{what} via {via}: {reply:?}");
            let held = net.local(&coordinator, &key);
            let newest = ringkv_core::keyspace::lww_winner(&held).unwrap();
            assert_eq!(
                newest.dot.node.to_string(),
                coordinator,
                "{what} of {key:?} via {via} was coordinated elsewhere: {held:?}"
            );
        }
    }
}

/// A forwarded `SET A` whose coordinator pauses with the forward unread
/// in its socket moves on to another coordinator; the client then sets
/// `B`. When the paused coordinator resumes and reads the old forward, it
/// must not start it: stamped then, `A` would win over `B` for ever (a
/// fresh-eyes user: 8 of 11 tries with a 1 s pause). Fails without the
/// start-by fence.
#[test]
fn a_forward_read_after_a_pause_is_not_started_and_the_later_set_stays() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let key = String::from_utf8(lww_key(b"s0")).unwrap();
    let order = net.coordinator_of(&key);
    let (paused, entry, other) = (order[0].clone(), order[1].clone(), order[2].clone());
    put(&mut net, &entry, &key, "v0", 2, None).unwrap();
    net.run_for(1_000, 100);

    // `SET A` through `entry`: its forward to `paused` is held unread.
    let client = net.next_client;
    net.next_client += 1;
    let now = net.now;
    net.node(&entry)
        .on_client(now, client, blind_put(&key, "A", 2, None));
    net.collect(&id(&entry));
    let held: Vec<_> = net.queue.drain(..).collect();
    assert!(
        held.iter()
            .any(|(_, to, m)| *to == id(&paused) && m.kind() == "forward"),
        "{held:?}"
    );
    net.down.insert(id(&paused));
    // The transport calls the silent coordinator unreachable after 1 s.
    net.run_for(1_000, 10);
    let now = net.now;
    net.node(&entry).on_unreachable(now, id(&paused));
    net.collect(&id(&entry));
    while !net.replies.contains_key(&client) {
        net.advance(10);
    }
    assert!(net.replies[&client].is_ok(), "{:?}", net.replies[&client]);
    assert!(put(&mut net, &other, &key, "B", 2, None).is_ok());

    // `paused` resumes and reads the old forward first.
    net.run_for(1_000, 100);
    net.down.clear();
    for (from, to, msg) in held {
        let now = net.now;
        net.node(to.as_str()).on_message(now, from, msg);
        net.collect(&to);
    }
    net.settle();
    net.run_for(5_000, 100);
    for node in ["n1", "n2", "n3"] {
        let held = net.local(node, &key);
        let value = ringkv_core::keyspace::lww_value(&held);
        assert_eq!(value, Some(&b"B"[..]), "{node}: {held:?}");
    }
    assert_eq!(net.nodes[&id(&paused)].stats().late_forwards, 1);
}

/// A Redis `DEL` (and an `lww` key's context-less `DELETE`) whose
/// coordinator falls silent moves on to the next one, as a `SET` does:
/// the start-by fence keeps the silent one from running it later, so a
/// second copy can only run before the client is answered. (It answered
/// "may or may not have been applied" — a fresh-eyes user.) An increment
/// still does not move on.
#[test]
fn a_delete_of_a_redis_key_moves_on_from_a_silent_coordinator() {
    let mut net = Net::new(&["n1", "n2", "n3"]);
    let key = String::from_utf8(lww_key(b"d0")).unwrap();
    let order = net.coordinator_of(&key);
    let (silent, entry) = (order[0].clone(), order[1].clone());
    let set = ClientOp::Put {
        key: key.clone().into(),
        value: ringkv_core::crdt::Value::String(b"v0".to_vec()).encode(),
        context: CausalContext::new(),
        w: Some(2),
        pw: None,
        ttl_ms: None,
    };
    net.request(&entry, set).unwrap();
    net.run_for(1_000, 100);
    for other in &order[1..] {
        net.cut_link(&silent, other);
    }
    let del = ClientOp::Update {
        key: key.clone().into(),
        update: ringkv_core::crdt::Update::Del,
        w: None,
        pw: None,
    };
    let (_, deleted) = timed(&mut net, &entry, del);
    assert!(deleted.is_ok(), "{deleted:?}");
    let incr = ClientOp::Update {
        key: key.clone().into(),
        update: ringkv_core::crdt::Update::IncrBy(1),
        w: None,
        pw: None,
    };
    let (_, counted) = timed(&mut net, &order[2], incr);
    assert!(
        matches!(counted, Err(ClientError::Indeterminate { .. })),
        "{counted:?}"
    );
}

#[test]
fn with_two_of_three_replicas_gone_reads_use_the_stand_ins_that_took_the_writes() {
    let mut net = Net::new(&ALL);
    let key = (0..1000)
        .map(|i| format!("cart-{i}"))
        .find(|k| net.coordinator_of(k)[0] == "n1")
        .unwrap();
    let pref = net.coordinator_of(&key);
    for gone in &pref[1..] {
        net.down.insert(id(gone));
    }
    net.run_for(8_000, 100);
    assert!(put(&mut net, "n1", &key, "apples", 2, None).is_ok());
    let read = net.get("n1", &key, Some(2));
    assert_eq!(values(&read), ["apples"]);
    let op = ClientOp::Get {
        key: key.into(),
        r: Some(2),
        pr: Some(2),
    };
    let strict = net.request("n1", op);
    assert!(
        matches!(&strict, Err(ClientError::Unavailable { op, .. }) if op == "get (pr)"),
        "PR demands the real replicas: {strict:?}"
    );
}
