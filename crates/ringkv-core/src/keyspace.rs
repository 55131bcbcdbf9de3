//! Keyspaces and their conflict policies.
//!
//! HTTP keys keep every concurrent version as a sibling for the client to
//! resolve with the causal context it was handed. The Redis protocol has no
//! place for a context, so its keys live in a keyspace of their own that
//! the servers resolve by *last-write-wins* — Riak's `last_write_wins`
//! bucket property, Cassandra's cells. A keyspace is a reserved prefix of
//! the internal key (a 0x00 byte and a tag byte), so the Redis key `foo`
//! and the HTTP key `foo` are different keys, and front ends refuse user
//! keys that start with the reserved byte.
//!
//! A Redis key's value is typed — a string, a counter or a set, tagged (see
//! [`crate::crdt::Value`]) — and its siblings resolve by
//! [`crate::crdt::resolve`]: last-write-wins picks the type, and siblings
//! of a CRDT type are joined. Keyspace version 1 (prefix `\0l`) held
//! untagged strings; version 2 moved the Redis keyspace to the prefix
//! `\0r`, so an older store's Redis keys are not read (never misread) by
//! this release.
//!
//! Keyspaces are buckets (see [`crate::bucket`]): `/kv` keys are the
//! `default` bucket, Redis keys the `redis` bucket, and a named bucket's
//! keys carry its policy and N in their prefix, so a key's policy is a
//! function of its bytes on every node.

use crate::siblings::{NewVersion, Sibling, SiblingSet};
use crate::version::CausalContext;
use crate::Millis;
use serde::{Deserialize, Serialize};

/// First byte of every internal keyspace's keys; no user key may start
/// with it.
pub const RESERVED: u8 = 0x00;
/// Prefix of the last-write-wins keyspace (the Redis protocol's keys,
/// holding typed values since keyspace version 2).
pub const LWW_PREFIX: [u8; 2] = [RESERVED, b'r'];

/// Version of the keyspace rule: the reserved prefixes and which keys
/// they make last-write-wins or typed. Part of the cluster settings
/// fingerprint ([`crate::settings::ClusterSettings`]): replicas that
/// resolved the same key by different policies would disagree on its
/// value. Bump it with any change to the prefixes or to [`policy_of`].
/// Version 3 added named buckets (see [`crate::bucket::prefix`]).
pub const POLICY_VERSION: u32 = 3;

/// How the versions of a key that no write superseded are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictPolicy {
    /// Kept as siblings until a client writes back with their context.
    Siblings,
    /// The latest by timestamp wins; writes overwrite what their
    /// coordinator holds. Values are plain bytes.
    Lww,
    /// Values carry their CRDT type (see [`crate::crdt::Value`]), as the
    /// Redis front end's keys: last-write-wins picks the type, versions of
    /// a CRDT type are joined.
    Typed,
}

impl ConflictPolicy {
    /// The byte a named bucket's key prefix carries for this policy.
    pub fn tag(self) -> u8 {
        match self {
            ConflictPolicy::Siblings => b's',
            ConflictPolicy::Lww => b'l',
            ConflictPolicy::Typed => b't',
        }
    }

    /// The name admins and docs use.
    pub fn name(self) -> &'static str {
        match self {
            ConflictPolicy::Siblings => "siblings",
            ConflictPolicy::Lww => "lww",
            ConflictPolicy::Typed => "typed",
        }
    }

    /// Whether writes overwrite what their coordinator holds.
    pub fn overwrites(self) -> bool {
        self != ConflictPolicy::Siblings
    }
}

/// The conflict policy of an internal key, from its bytes alone: a named
/// bucket's key carries it (see [`crate::bucket::prefix`]); the Redis
/// prefix is typed; every other key is a `/kv` key with siblings. An
/// unknown policy byte keeps siblings, the policy that loses nothing.
pub fn policy_of(key: &[u8]) -> ConflictPolicy {
    if key.starts_with(&LWW_PREFIX) {
        return ConflictPolicy::Typed;
    }
    match key {
        [RESERVED, crate::bucket::BUCKET_TAG, b'l', ..] => ConflictPolicy::Lww,
        [RESERVED, crate::bucket::BUCKET_TAG, b't', ..] => ConflictPolicy::Typed,
        _ => ConflictPolicy::Siblings,
    }
}

/// How many replicas hold `key`: its bucket's N, from its bytes (see
/// [`crate::bucket::prefix`]), at most the cluster's `cluster_n`; every
/// other key has the cluster's. A key of N = c is held by the first c
/// nodes of its range's preference list — a prefix of the cluster's list
/// (see [`crate::ring::Ring::preference_list_for_token`]), so range
/// machinery walks the cluster's lists and filters keys by their N.
pub fn n_of(key: &[u8], cluster_n: usize) -> usize {
    match key {
        [RESERVED, crate::bucket::BUCKET_TAG, _, n, ..] => usize::from(*n).clamp(1, cluster_n),
        _ => cluster_n,
    }
}

/// The internal key of a Redis-bucket user key.
pub fn lww_key(user_key: &[u8]) -> Vec<u8> {
    [&LWW_PREFIX[..], user_key].concat()
}

/// The keys users list, one bucket at a time (see the node's scan).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Keyspace {
    /// HTTP `/kv` keys (the default bucket): any key without the reserved byte.
    Kv,
    /// Keys under a bucket's prefix (the Redis bucket's is [`LWW_PREFIX`]).
    Prefixed(Vec<u8>),
}

impl Keyspace {
    /// The keyspace of bucket `name` with `props`.
    pub fn of_bucket(name: &str, props: &crate::bucket::BucketProps) -> Keyspace {
        match crate::bucket::prefix(name, props) {
            p if p.is_empty() => Keyspace::Kv,
            p => Keyspace::Prefixed(p),
        }
    }

    /// How many replicas hold this keyspace's keys (see [`n_of`]).
    pub fn n(&self, cluster_n: usize) -> usize {
        match self {
            Keyspace::Kv => cluster_n,
            Keyspace::Prefixed(prefix) => n_of(prefix, cluster_n),
        }
    }

    /// The user key of the internal `key` if it belongs to this keyspace.
    pub fn user_key<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        match self {
            Keyspace::Kv => (!is_reserved(key)).then_some(key),
            Keyspace::Prefixed(prefix) => key.strip_prefix(&prefix[..]),
        }
    }
}

/// True when a user key would fall into an internal keyspace.
pub fn is_reserved(user_key: &[u8]) -> bool {
    user_key.first() == Some(&RESERVED)
}

/// The context a coordinator writes `key` against. A last-write-wins write
/// has no client context to go by, so it overwrites everything the
/// coordinator's `stored` state holds: siblings collapse instead of piling
/// up to `max_siblings`. Sibling keys keep exactly the client's context.
pub fn write_context(key: &[u8], given: CausalContext, stored: &SiblingSet) -> CausalContext {
    match policy_of(key) {
        ConflictPolicy::Siblings => given,
        ConflictPolicy::Lww | ConflictPolicy::Typed => {
            let mut context = given;
            context.merge(&stored.context());
            context
        }
    }
}

/// `version` stamped for a last-write-wins write: above every version the
/// coordinator's `stored` state holds (Lamport's rule), not merely its
/// clock's `now`. A coordinator whose clock reads the same millisecond as
/// the version it replaces (or lags behind the node that wrote it) would
/// otherwise make a tie broken by dots, or a loss, against any copy of
/// that older version it has not seen yet. A version with a stamp of its
/// own (`EXPIRE`: see [`NewVersion::stamped`]) keeps it; sibling keys use
/// no stamps.
pub fn stamp_version(
    key: &[u8],
    version: NewVersion,
    stored: &SiblingSet,
    now: Millis,
) -> NewVersion {
    if version.timestamp.is_some() || !policy_of(key).overwrites() {
        return version;
    }
    let above = stored.iter().map(|s| s.timestamp.saturating_add(1)).max();
    version.stamped(above.unwrap_or(0).max(now))
}

/// The last-write-wins version of a key: the greatest (timestamp, dot)
/// among its siblings — the dot breaks timestamp ties the same way on
/// every node. Tombstones take part, so a later delete wins.
pub fn lww_winner(set: &SiblingSet) -> Option<&Sibling> {
    set.iter()
        .max_by(|a, b| (a.timestamp, &a.dot).cmp(&(b.timestamp, &b.dot)))
}

/// The value a last-write-wins read returns: `None` when the key holds
/// nothing or its winner is a tombstone.
pub fn lww_value(set: &SiblingSet) -> Option<&[u8]> {
    lww_winner(set)?.value.as_deref()
}

/// What a client reading `key` at `now` sees of `set`: expired versions
/// as tombstones of the same dot and context. A `/kv` key's versions
/// expire one by one (each is a sibling its client sees); a Redis key's
/// all at once, when its value expires ([`crate::crdt::expiry`]).
pub fn visible_at(key: &[u8], set: &SiblingSet, now: Millis) -> SiblingSet {
    match policy_of(key) {
        ConflictPolicy::Siblings => set.visible_at(now),
        // A plain last-write-wins key expires with its winner: hiding only
        // that version would show an older one again.
        ConflictPolicy::Lww => match lww_winner(set) {
            Some(w) if w.is_expired(now) => set.hiding(|_| true),
            _ => set.clone(),
        },
        // Only a version that has expired can make its key expire: no
        // value is decoded on the reads (nearly all) without one.
        ConflictPolicy::Typed if !set.iter().any(|s| s.is_expired(now)) => set.clone(),
        ConflictPolicy::Typed => match crate::crdt::expiry(set) {
            Some(at) if at <= now => set.hiding(|_| true),
            _ => set.clone(),
        },
    }
}

/// Whether `set` holds nothing a read at `now` shows or a merge needs
/// beyond its context — what tombstone collection ([`crate::gc`]) may
/// remove once every replica holds it: see [`dies_at`].
pub fn is_dead(key: &[u8], set: &SiblingSet, now: Millis) -> bool {
    dies_at(key, set).is_some_and(|at| at <= now)
}

/// From when `set` is dead (ms since the Unix epoch; 0: already), or
/// `None` while some version lives on with no expiry. Dead versions are
/// tombstones, and in the Redis keyspace collections emptied by removes;
/// a `/kv` version dies when it expires, a Redis key when its value does
/// ([`crate::crdt::expiry`]). An empty set never dies (there is nothing
/// to collect).
pub fn dies_at(key: &[u8], set: &SiblingSet) -> Option<Millis> {
    if set.is_empty() {
        return None;
    }
    match policy_of(key) {
        ConflictPolicy::Siblings => {
            let mut latest = 0;
            for sibling in set.iter().filter(|s| !s.is_tombstone()) {
                latest = latest.max(sibling.expires_at?);
            }
            Some(latest)
        }
        // Reads show nothing once the winner is a tombstone, whatever
        // older versions it beat.
        ConflictPolicy::Lww => {
            let winner = lww_winner(set).expect("the set is not empty");
            match winner.is_tombstone() {
                true => Some(0),
                false => winner.expires_at,
            }
        }
        ConflictPolicy::Typed => {
            let gone = |s: &Sibling| match &s.value {
                None => true,
                Some(bytes) => crate::crdt::Value::decode(bytes).is_ok_and(|v| !v.exists()),
            };
            match set.iter().all(gone) {
                true => Some(0),
                // A key whose versions carry no expiry never expires: no
                // second decoding on the leader's every write.
                false if set.iter().all(|s| s.expires_at.is_none()) => None,
                false => crate::crdt::expiry(set),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::siblings::WriteLimits;
    use crate::version::Dot;
    use crate::Millis;

    fn sibling(value: Option<&str>, timestamp: Millis, node: &str, counter: u64) -> Sibling {
        Sibling {
            dot: Dot::new(node, counter),
            context: CausalContext::new(),
            timestamp,
            value: value.map(|v| v.as_bytes().to_vec()),
            expires_at: None,
        }
    }

    #[test]
    fn keyspaces_are_disjoint() {
        assert_eq!(lww_key(b"foo"), b"\0rfoo");
        assert_ne!(lww_key(b"foo"), b"foo");
        assert_eq!(policy_of(&lww_key(b"foo")), ConflictPolicy::Typed);
        assert_eq!(policy_of(&lww_key(b"")), ConflictPolicy::Typed);
        assert_eq!(policy_of(b"foo"), ConflictPolicy::Siblings);
        assert_eq!(policy_of(b"rfoo"), ConflictPolicy::Siblings);
        assert_eq!(policy_of(b"\0lfoo"), ConflictPolicy::Siblings);
        assert!(is_reserved(&lww_key(b"foo")));
        assert!(!is_reserved(b"foo"));
    }

    #[test]
    fn lww_picks_the_latest_timestamp() {
        let set: SiblingSet = [
            sibling(Some("old"), 10, "n3", 9),
            sibling(Some("new"), 20, "n1", 1),
            sibling(Some("mid"), 15, "n2", 4),
        ]
        .into_iter()
        .collect();
        assert_eq!(lww_value(&set), Some(&b"new"[..]));
        assert_eq!(lww_value(&SiblingSet::new()), None);
    }

    #[test]
    fn lww_ties_break_by_dot() {
        let siblings = [
            sibling(Some("a"), 10, "n1", 7),
            sibling(Some("c"), 10, "n2", 3),
            sibling(Some("b"), 10, "n2", 1),
        ];
        for rotation in 0..siblings.len() {
            let mut order = siblings.to_vec();
            order.rotate_left(rotation);
            let set: SiblingSet = order.into_iter().collect();
            assert_eq!(lww_value(&set), Some(&b"c"[..]));
        }
    }

    #[test]
    fn a_later_tombstone_wins_and_reads_as_nothing() {
        let set: SiblingSet = [sibling(Some("x"), 10, "n1", 1), sibling(None, 11, "n2", 1)]
            .into_iter()
            .collect();
        assert!(lww_winner(&set).is_some_and(Sibling::is_tombstone));
        assert_eq!(lww_value(&set), None);
    }

    #[test]
    fn a_last_write_wins_write_is_stamped_above_what_it_replaces() {
        let key = lww_key(b"k");
        let mut held = SiblingSet::new();
        let limits = crate::siblings::WriteLimits {
            max_siblings: 4,
            max_clock_entries: 4,
            young_clock_ms: 0,
            min_counter: 0,
        };
        let blind = CausalContext::new();
        held.write(&"n2".into(), &blind, Some(b"a".to_vec()), 1_000, limits)
            .unwrap();
        let plain = NewVersion::new(Some(b"b".to_vec()), None);
        // A clock reading the same millisecond, or behind.
        for now in [1_000, 400] {
            let stamped = stamp_version(&key, plain.clone(), &held, now);
            assert_eq!(stamped.timestamp, Some(1_001), "now {now}");
        }
        assert_eq!(
            stamp_version(&key, plain.clone(), &held, 5_000).timestamp,
            Some(5_000)
        );
        // An EXPIRE keeps its own stamp; a sibling key is not stamped.
        let own = plain.clone().stamped(7);
        assert_eq!(stamp_version(&key, own, &held, 5_000).timestamp, Some(7));
        assert_eq!(stamp_version(b"k", plain, &held, 400).timestamp, None);
    }

    #[test]
    fn lww_writes_overwrite_what_the_coordinator_holds() {
        let limits = WriteLimits {
            max_siblings: 2,
            max_clock_entries: 8,
            young_clock_ms: 20_000,
            min_counter: 0,
        };
        let write = |key: &[u8], set: &mut SiblingSet, t: Millis| {
            let context = write_context(key, CausalContext::new(), set);
            set.write(&"n1".into(), &context, Some(vec![t as u8]), t, limits)
        };
        let (mut lww, mut plain) = (SiblingSet::new(), SiblingSet::new());
        for t in 1..=5 {
            write(&lww_key(b"k"), &mut lww, t).expect("lww writes always fit");
            assert_eq!(lww.len(), 1);
        }
        write(b"k", &mut plain, 1).unwrap();
        write(b"k", &mut plain, 2).unwrap();
        assert_eq!(plain.len(), 2, "blind writes to sibling keys pile up");
        assert!(write(b"k", &mut plain, 3).is_err());
    }
}
