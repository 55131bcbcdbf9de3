//! Expiry (a TTL per write, see `Sibling::expires_at`): an expired value
//! reads as missing through every node at once — one that was cut off
//! when it expired included — and leaves every store through tombstone
//! collection, with no second write; Redis updates keep a key's TTL,
//! `EXPIRE` sets it and `PERSIST` clears it.

mod common;

use common::Net;
use ringkv_core::crdt::{Reply, Update};
use ringkv_core::keyspace::lww_key;
use ringkv_core::message::{ClientError, ClientOp, ClientReply};
use ringkv_core::version::CausalContext;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

fn net() -> Net {
    Net::fast_gc(&NODES)
}

fn put_for(key: &str, value: &str, ttl_ms: Option<u64>) -> ClientOp {
    ClientOp::Put {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        context: CausalContext::new(),
        w: Some(3),
        pw: None,
        ttl_ms,
    }
}

fn held_anywhere(net: &Net, key: &str) -> Vec<&'static str> {
    NODES
        .into_iter()
        .filter(|n| !net.local(n, key).is_empty())
        .collect()
}

fn update(key: &[u8], update: Update) -> ClientOp {
    ClientOp::Update {
        key: key.to_vec(),
        update,
        w: None,
        pw: None,
    }
}

fn updated(net: &mut Net, via: &str, op: ClientOp) -> Reply {
    match net.request(via, op) {
        Ok(ClientReply::Updated(reply)) => reply,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_expired_value_reads_as_missing_everywhere_then_leaves_every_store() {
    let mut net = net();
    net.run_for(5_000, 100);
    net.request("n1", put_for("cart", "apple", Some(2_000)))
        .unwrap();
    net.request("n1", put_for("kept", "pear", None)).unwrap();
    for via in NODES {
        assert_eq!(common::values(&net.get(via, "cart", Some(1))), ["apple"]);
    }
    // n3 is cut off before the value expires, and long enough to call the
    // others down: it answers alone.
    net.cut_link("n1", "n3");
    net.cut_link("n2", "n3");
    net.run_for(10_000, 100);
    for via in NODES {
        assert!(
            net.get(via, "cart", Some(1)).live().next().is_none(),
            "expired on {via}"
        );
        assert_eq!(common::values(&net.get(via, "kept", Some(1))), ["pear"]);
    }
    // Collection waits for n3 (it holds the value, as everyone does).
    assert_eq!(held_anywhere(&net, "cart"), NODES);
    net.cut.clear();
    net.run_for(30_000, 100);
    assert_eq!(held_anywhere(&net, "cart"), Vec::<&str>::new());
    assert_eq!(held_anywhere(&net, "kept"), NODES);
}

#[test]
fn a_write_over_an_expired_value_starts_afresh_and_a_ttl_of_zero_is_refused() {
    let mut net = net();
    net.request("n2", put_for("k", "old", Some(500))).unwrap();
    net.run_for(1_000, 100);
    let read = net.get("n1", "k", None);
    assert!(read.live().next().is_none());
    // A write with the read's context supersedes the expired version.
    net.put("n1", "k", "new", read.context(), None).unwrap();
    let after = net.get("n3", "k", Some(3));
    assert_eq!(common::values(&after), ["new"]);
    assert_eq!(after.len(), 1, "no expired sibling left beside it");
    match net.request("n1", put_for("k", "v", Some(0))) {
        Err(ClientError::Invalid(e)) => assert!(e.contains("ttl must be at least 1 ms"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn updates_keep_the_ttl_expire_sets_it_and_persist_clears_it() {
    let mut net = net();
    let key = lww_key(b"visits");
    let incr = |by| update(&key, Update::IncrBy(by));
    assert_eq!(updated(&mut net, "n1", incr(1)), Reply::Integer(1));
    let expire = update(&key, Update::Expire(Some(1_000)));
    assert_eq!(updated(&mut net, "n2", expire.clone()), Reply::Integer(1));
    // An increment keeps the TTL, as in Redis.
    assert_eq!(updated(&mut net, "n3", incr(1)), Reply::Integer(2));
    net.run_for(1_100, 100);
    // Expired: a new counter starts from nothing, with no TTL.
    assert_eq!(updated(&mut net, "n1", incr(5)), Reply::Integer(5));
    net.run_for(2_000, 100);
    assert_eq!(updated(&mut net, "n2", incr(0)), Reply::Integer(5));
    // PERSIST clears a TTL (1), and of a key with none does nothing (0).
    assert_eq!(updated(&mut net, "n2", expire), Reply::Integer(1));
    let persist = update(&key, Update::Expire(None));
    assert_eq!(updated(&mut net, "n3", persist.clone()), Reply::Integer(1));
    assert_eq!(updated(&mut net, "n1", persist), Reply::Integer(0));
    net.run_for(2_000, 100);
    assert_eq!(updated(&mut net, "n2", incr(0)), Reply::Integer(5));
    // Of a missing key, EXPIRE answers 0.
    let missing = update(&lww_key(b"none"), Update::Expire(Some(1_000)));
    assert_eq!(updated(&mut net, "n1", missing), Reply::Integer(0));
}

/// A value that expires past the leader's horizon is not noted when
/// written (notes are bounded); the sweep that starts at its expiry finds
/// it, and collection follows.
#[test]
fn a_far_off_expiry_is_found_by_the_sweep_that_starts_then() {
    let mut net = net();
    let ttl = ringkv_core::gc::EXPIRY_HORIZON_MS + 30_000;
    net.request("n1", put_for("far", "v", Some(ttl))).unwrap();
    let candidates: usize = NODES
        .iter()
        .map(|n| net.node(n).gc_report().candidates)
        .sum();
    assert_eq!(candidates, 0, "too far off to note");
    net.run_for(ttl - 1_000, 1_000);
    assert_eq!(held_anywhere(&net, "far"), NODES, "not expired yet");
    net.run_for(10_000, 100);
    assert_eq!(held_anywhere(&net, "far"), Vec::<&str>::new());
}

fn update_w1(key: &[u8], update: Update) -> ClientOp {
    ClientOp::Update {
        key: key.to_vec(),
        update,
        w: Some(1),
        pw: None,
    }
}

/// The Redis key's value as every replica will agree: its winner's value
/// bytes and expiry, `None` when it holds nothing.
fn redis_read(net: &mut Net, key: &[u8]) -> Option<(ringkv_core::crdt::Value, Option<u64>)> {
    let key = String::from_utf8(key.to_vec()).unwrap();
    let set = net.get("n3", &key, Some(3));
    let (value, _) = ringkv_core::crdt::resolve(&set).unwrap()?;
    let expires_at = ringkv_core::crdt::expiry(&set);
    value.exists().then_some((value, expires_at))
}

fn isolate_all(net: &mut Net) {
    net.cut_link("n1", "n2");
    net.cut_link("n1", "n3");
    net.cut_link("n2", "n3");
}

/// Long enough cut off for each node to call the others down, so that it
/// coordinates a Redis key's writes itself (while a key's first
/// coordinator is merely silent, its writes wait for it).
fn suspect_the_others(net: &mut Net) {
    net.run_for(10_000, 100);
}

/// A `PERSIST` or `EXPIRE` that did not see a `DEL` (or a `SET`) made
/// through another node, even a later one, never undoes it: re-expiring
/// keeps the stamp of the value re-expired. (Stamped with its own time, a
/// fresh-eyes user saw a deleted key come back in 79 of 100 races, and an
/// acknowledged `SET` lost in 6 of 150.)
#[test]
fn re_expiring_never_undoes_a_concurrent_delete_or_set() {
    let mut net = net();
    let string = |v: &str| ringkv_core::crdt::Value::String(v.as_bytes().to_vec());
    for (i, persist) in [(0, true), (1, false)] {
        let key = lww_key(format!("session{i}").as_bytes());
        let set = ClientOp::Put {
            key: key.clone(),
            value: string("v1").encode(),
            context: CausalContext::new(),
            w: Some(3),
            pw: None,
            ttl_ms: Some(100_000),
        };
        net.request("n1", set).unwrap();
        net.run_for(100, 10);
        isolate_all(&mut net);
        suspect_the_others(&mut net);
        updated(&mut net, "n1", update_w1(&key, Update::Del));
        net.run_for(50, 10);
        let re_expire = Update::Expire((!persist).then_some(50_000));
        assert_eq!(
            updated(&mut net, "n2", update_w1(&key, re_expire)),
            Reply::Integer(1)
        );
        net.cut.clear();
        net.run_for(20_000, 100);
        assert_eq!(
            redis_read(&mut net, &key),
            None,
            "persist {persist}: DEL holds"
        );
    }
    // A SET concurrent with an EXPIRE made later: the SET's value stays.
    let key = lww_key(b"session2");
    let put = |v: &str, w| ClientOp::Put {
        key: key.clone(),
        value: string(v).encode(),
        context: CausalContext::new(),
        w: Some(w),
        pw: None,
        ttl_ms: None,
    };
    net.request("n1", put("v1", 3)).unwrap();
    net.run_for(100, 10);
    isolate_all(&mut net);
    suspect_the_others(&mut net);
    net.request("n1", put("v2", 1)).unwrap();
    net.run_for(50, 10);
    let expire = update_w1(&key, Update::Expire(Some(50_000)));
    assert_eq!(updated(&mut net, "n2", expire), Reply::Integer(1));
    net.cut.clear();
    net.run_for(20_000, 100);
    assert_eq!(
        redis_read(&mut net, &key).map(|(v, _)| v),
        Some(string("v2"))
    );
}

/// A collection emptied or deleted has no TTL any more: members added to
/// it afterwards do not expire with the old key (Redis: a new key).
#[test]
fn a_key_emptied_or_deleted_loses_its_ttl() {
    let mut net = net();
    for (i, clear) in [Update::SRem(vec![b"a".to_vec()]), Update::Del]
        .into_iter()
        .enumerate()
    {
        let key = lww_key(format!("gs{i}").as_bytes());
        updated(
            &mut net,
            "n1",
            update(&key, Update::SAdd(vec![b"a".to_vec()])),
        );
        updated(&mut net, "n2", update(&key, Update::Expire(Some(3_000))));
        assert!(redis_read(&mut net, &key).unwrap().1.is_some());
        updated(&mut net, "n3", update(&key, clear));
        updated(
            &mut net,
            "n1",
            update(&key, Update::SAdd(vec![b"fresh".to_vec()])),
        );
        assert_eq!(redis_read(&mut net, &key).unwrap().1, None, "no TTL");
        net.run_for(4_000, 100);
        assert!(redis_read(&mut net, &key).is_some(), "the new member stays");
    }
}

/// A Redis key's versions expire together, a CRDT with the latest expiry
/// of its joined versions: an update concurrent with a `PERSIST` cannot
/// take the data away with the removed TTL, nor one concurrent with a
/// `DEL` hand an add made meanwhile the deleted key's TTL. (A fresh-eyes
/// user lost a counter in 21 of 30 such races when the winner's TTL
/// decided, and an added member in 20 of 30.)
#[test]
fn a_key_races_its_ttl_away_never_its_data() {
    let mut net = net();
    // PERSIST through n1 while n2 increments: the counter stays, no TTL.
    let counter = lww_key(b"visits");
    updated(&mut net, "n1", update(&counter, Update::IncrBy(1)));
    updated(
        &mut net,
        "n1",
        update(&counter, Update::Expire(Some(60_000))),
    );
    net.run_for(100, 10);
    isolate_all(&mut net);
    assert_eq!(
        updated(&mut net, "n1", update_w1(&counter, Update::Expire(None))),
        Reply::Integer(1)
    );
    net.run_for(50, 10);
    assert_eq!(
        updated(&mut net, "n2", update_w1(&counter, Update::IncrBy(1))),
        Reply::Integer(2)
    );
    // DEL through n1 while n2 adds a member: the member stays, no TTL.
    let cart = lww_key(b"cart");
    net.cut.clear();
    updated(
        &mut net,
        "n1",
        update(&cart, Update::SAdd(vec![b"a".to_vec()])),
    );
    updated(&mut net, "n1", update(&cart, Update::Expire(Some(60_000))));
    net.run_for(100, 10);
    isolate_all(&mut net);
    assert_eq!(
        updated(&mut net, "n1", update_w1(&cart, Update::Del)),
        Reply::Integer(1)
    );
    net.run_for(50, 10);
    let add = update_w1(&cart, Update::SAdd(vec![b"b".to_vec()]));
    assert_eq!(updated(&mut net, "n2", add), Reply::Integer(1));
    net.cut.clear();
    net.run_for(10_000, 100);
    let (value, expires) = redis_read(&mut net, &counter).expect("the counter stays");
    assert_eq!((value.as_string().unwrap(), expires), (b"2".to_vec(), None));
    let (value, expires) = redis_read(&mut net, &cart).expect("the added member stays");
    match value {
        ringkv_core::crdt::Value::Set(set) => {
            assert_eq!(set.iter().collect::<Vec<_>>(), [b"b".as_slice()])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(expires, None);
}
