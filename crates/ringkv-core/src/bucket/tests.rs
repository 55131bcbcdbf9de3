use super::*;
use crate::keyspace::{policy_of, Keyspace};

const LIMITS: Limits = Limits {
    cluster_n: 3,
    max_value_bytes: 1 << 20,
    default_w: 2,
};

fn at(ms: Millis, node: &str) -> (Millis, NodeId) {
    (ms, NodeId::new(node))
}

fn lww() -> BucketProps {
    BucketProps::new(3, ConflictPolicy::Lww)
}

#[test]
fn a_named_buckets_keys_carry_its_policy_and_n() {
    for policy in [
        ConflictPolicy::Siblings,
        ConflictPolicy::Lww,
        ConflictPolicy::Typed,
    ] {
        let props = BucketProps::new(3, policy);
        let key = [prefix("carts", &props), b"k".to_vec()].concat();
        assert_eq!(policy_of(&key), policy);
        assert_eq!(&key[..5], &[RESERVED, BUCKET_TAG, policy.tag(), 3, 5]);
        let keyspace = Keyspace::of_bucket("carts", &props);
        assert_eq!(keyspace.user_key(&key), Some(&b"k"[..]));
        assert_eq!(keyspace.user_key(b"k"), None, "a /kv key is not in it");
    }
    let siblings = BucketProps::new(3, ConflictPolicy::Siblings);
    assert_eq!(prefix(DEFAULT, &siblings), b"");
    assert_eq!(prefix(REDIS, &siblings), LWW_PREFIX);
}

#[test]
fn buckets_whose_names_extend_each_other_keep_their_keys_apart() {
    // The length byte: bucket "a" with key "bx" is not bucket "ab" with "x".
    let a = [prefix("a", &lww()), b"bx".to_vec()].concat();
    let ab = Keyspace::of_bucket("ab", &lww());
    assert_eq!(ab.user_key(&a), None);
}

#[test]
fn built_in_buckets_exist_without_an_entry_and_may_be_tuned() {
    let mut table = BucketTable::default();
    assert_eq!(
        table.get(DEFAULT, 3).unwrap().policy,
        ConflictPolicy::Siblings
    );
    assert_eq!(table.get(REDIS, 3).unwrap().policy, ConflictPolicy::Typed);
    assert_eq!(table.get("carts", 3), None);
    let tuned = BucketProps {
        w: Some(3),
        ..BucketProps::new(3, ConflictPolicy::Siblings)
    };
    table.define(DEFAULT, tuned, &LIMITS, at(1, "n1")).unwrap();
    assert_eq!(table.get(DEFAULT, 3).unwrap().w, Some(3));
    let names: Vec<String> = table.list(3).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["redis", "default"]);
}

#[test]
fn what_a_key_carries_cannot_change() {
    let mut table = BucketTable::default();
    table.define("carts", lww(), &LIMITS, at(1, "n1")).unwrap();
    let other_policy = BucketProps::new(3, ConflictPolicy::Siblings);
    let err = table
        .define("carts", other_policy, &LIMITS, at(2, "n1"))
        .unwrap_err();
    assert!(
        matches!(&err, Refusal::Conflict(s) if s.contains("policy")),
        "{err}"
    );
    let typed_default = BucketProps::new(3, ConflictPolicy::Typed);
    assert!(table
        .define(DEFAULT, typed_default, &LIMITS, at(2, "n1"))
        .is_err());
    let faster = BucketProps {
        w: Some(1),
        ttl_seconds: Some(60),
        ..lww()
    };
    table.define("carts", faster, &LIMITS, at(3, "n1")).unwrap();
    assert_eq!(table.get("carts", 3).unwrap().ttl_seconds, Some(60));
}

#[test]
fn bad_definitions_get_one_sentence() {
    let mut table = BucketTable::default();
    let cases = [
        ("Carts", lww(), "lowercase"),
        ("", lww(), "lowercase"),
        (
            "carts",
            BucketProps::new(4, ConflictPolicy::Lww),
            "n must be within 1..=3",
        ),
        (
            "carts",
            BucketProps::new(0, ConflictPolicy::Lww),
            "n must be within 1..=3",
        ),
        (
            "carts",
            BucketProps {
                r: Some(3),
                ..BucketProps::new(2, ConflictPolicy::Lww)
            },
            "r must be within 1..=2",
        ),
        (
            "carts",
            BucketProps {
                r: Some(4),
                ..lww()
            },
            "r must be within 1..=3",
        ),
        (
            "carts",
            BucketProps {
                w: Some(0),
                ..lww()
            },
            "w must be within",
        ),
        (
            "carts",
            BucketProps {
                pw: Some(3),
                w: Some(2),
                ..lww()
            },
            "pw must not exceed",
        ),
        (
            "carts",
            BucketProps {
                ttl_seconds: Some(0),
                ..lww()
            },
            "at least 1",
        ),
        (
            "carts",
            BucketProps {
                max_value_bytes: Some(2 << 20),
                ..lww()
            },
            "node's max",
        ),
    ];
    for (name, props, says) in cases {
        let err = table.define(name, props, &LIMITS, at(1, "n1")).unwrap_err();
        assert!(
            matches!(&err, Refusal::Invalid(s) if s.contains(says)),
            "{name}: {err}"
        );
    }
    assert!(table.is_empty());
    for i in 0..MAX_BUCKETS {
        table
            .define(&format!("b{i}"), lww(), &LIMITS, at(1, "n1"))
            .unwrap();
    }
    let err = table
        .define("one-more", lww(), &LIMITS, at(1, "n1"))
        .unwrap_err();
    assert!(
        matches!(&err, Refusal::Invalid(s) if s.contains("at most")),
        "{err}"
    );
}

#[test]
fn tables_merge_to_the_latest_change_of_each_bucket_in_any_order() {
    let mut a = BucketTable::default();
    let mut b = BucketTable::default();
    a.define("carts", lww(), &LIMITS, at(10, "n1")).unwrap();
    b.define(
        "carts",
        BucketProps {
            w: Some(1),
            ..lww()
        },
        &LIMITS,
        at(20, "n2"),
    )
    .unwrap();
    b.define("sessions", lww(), &LIMITS, at(5, "n2")).unwrap();
    let mut ab = a.clone();
    assert!(ab.merge(&b));
    let mut ba = b.clone();
    assert!(!ba.merge(&a), "nothing in a is newer");
    assert_eq!(ab, ba);
    assert_eq!(ab.digest(), ba.digest());
    assert_ne!(a.digest(), ab.digest());
    assert_eq!(ab.get("carts", 3).unwrap().w, Some(1));
    assert!(!ab.merge(&ba), "a second merge changes nothing");
}

#[test]
fn a_change_beats_what_this_node_knew_even_with_a_clock_behind() {
    let mut table = BucketTable::default();
    table
        .define("carts", lww(), &LIMITS, at(1_000, "n2"))
        .unwrap();
    let change = BucketProps {
        w: Some(1),
        ..lww()
    };
    table
        .define("carts", change, &LIMITS, at(10, "n1"))
        .unwrap();
    let mut elsewhere = BucketTable::default();
    elsewhere
        .define("carts", lww(), &LIMITS, at(1_000, "n2"))
        .unwrap();
    elsewhere.merge(&table);
    assert_eq!(elsewhere.get("carts", 3).unwrap().w, Some(1));
}

#[test]
fn a_table_survives_the_wire() {
    let mut table = BucketTable::default();
    table.define("carts", lww(), &LIMITS, at(1, "n1")).unwrap();
    let tuned = BucketProps {
        w: Some(2),
        ttl_seconds: Some(9),
        ..lww()
    };
    table
        .define("sessions", tuned, &LIMITS, at(2, "n2"))
        .unwrap();
    let wire: BucketTable = postcard::from_bytes(&postcard::to_stdvec(&table).unwrap()).unwrap();
    assert_eq!(wire, table);
}
