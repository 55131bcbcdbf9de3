//! Buckets: named keyspaces with their own conflict policy, quorums,
//! default time to live and value size limit — Riak's bucket types.
//!
//! **Where they live.** The bucket table is cluster data, not a node
//! setting: it travels with gossip (a digest in every round, the whole
//! table when digests differ) and is saved with the member list, so it
//! survives restarts and reaches a joining node with its first round. A
//! replicated system keyspace was the alternative; gossip wins because
//! every request needs its bucket's properties *locally* (a quorum read
//! per request would double every operation's latency) and the table is
//! small ([`MAX_BUCKETS`] entries of a few dozen bytes).
//!
//! **What a key carries.** A bucket's *placement-and-merge* properties —
//! its conflict policy and its replication factor N — are part of the
//! internal key itself (see [`prefix`]): every replica, hint, handoff,
//! anti-entropy exchange and tombstone collector resolves a key by its own
//! bytes, never by a table that might not have reached it yet. Those two
//! properties are therefore fixed when a bucket is created. The others
//! (R, W, PW, TTL, value size) are applied by the front end that takes a
//! request and may change at any time.
//!
//! **Concurrent changes** of one bucket on two nodes resolve by the later
//! `updated_at` (ties by node id): last-writer-wins, as Riak's bucket
//! properties on its ring. A create racing a create of the same name with
//! another policy leaves one of them: keys written under the loser's
//! prefix stay stored but unreachable by name — create a bucket once,
//! through one node, and wait for `ringkv bucket list` to show it.

use crate::keyspace::{ConflictPolicy, LWW_PREFIX, RESERVED};
use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The bucket `/kv` keys live in: siblings, no prefix.
pub const DEFAULT: &str = "default";
/// The bucket the Redis port serves unless configured otherwise: typed
/// values, last-write-wins, under [`LWW_PREFIX`].
pub const REDIS: &str = "redis";
/// The most buckets a cluster may define (the table rides on gossip).
pub const MAX_BUCKETS: usize = 128;
/// The longest bucket name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Second byte of a named bucket's key prefix (after [`RESERVED`]).
pub const BUCKET_TAG: u8 = b'b';

/// A bucket's properties, as an admin gives them and the table keeps them.
/// `None` quorums and limits mean the node's defaults. (No field may be
/// skipped when serialized: gossip encodes the table with postcard, which
/// is not self-describing.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketProps {
    /// Replicas of each key. Fixed at creation (it is part of every key).
    pub n: usize,
    /// How versions no write superseded resolve. Fixed at creation.
    pub policy: ConflictPolicy,
    #[serde(default)]
    pub r: Option<usize>,
    #[serde(default)]
    pub w: Option<usize>,
    #[serde(default)]
    pub pw: Option<usize>,
    /// Time to live of a write that gives none, seconds.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Largest value a write may carry, bytes (at most the node's limit).
    #[serde(default)]
    pub max_value_bytes: Option<usize>,
}

impl BucketProps {
    /// Properties with the node's defaults for everything but `n` and
    /// `policy`.
    pub fn new(n: usize, policy: ConflictPolicy) -> Self {
        BucketProps {
            n,
            policy,
            r: None,
            w: None,
            pw: None,
            ttl_seconds: None,
            max_value_bytes: None,
        }
    }
}

/// What an admin sends to create or change a bucket (the JSON body of
/// `PUT /admin/buckets/{bucket}`), every field optional: it replaces the
/// bucket's quorums, TTL and value limit (left out: the node defaults);
/// `n` and `policy` left out keep the bucket's, or for a new bucket are
/// the cluster's N and `siblings`. (A missing field is `None`; no
/// `#[serde(default)]`, which would take a JSON array of fewer values.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketDefinition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<ConflictPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pw: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_value_bytes: Option<usize>,
}

impl BucketDefinition {
    /// The properties this definition gives a bucket that has `before`
    /// (`None`: a new one) in a cluster of N `cluster_n`.
    pub fn props(&self, before: Option<&BucketProps>, cluster_n: usize) -> BucketProps {
        BucketProps {
            n: self.n.or(before.map(|b| b.n)).unwrap_or(cluster_n),
            policy: self
                .policy
                .or(before.map(|b| b.policy))
                .unwrap_or(ConflictPolicy::Siblings),
            r: self.r,
            w: self.w,
            pw: self.pw,
            ttl_seconds: self.ttl_seconds,
            max_value_bytes: self.max_value_bytes,
        }
    }
}

/// One bucket in the table, with what orders concurrent changes of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEntry {
    pub props: BucketProps,
    /// Wall-clock ms of the change on the node that made it.
    pub updated_at: Millis,
    pub updated_by: NodeId,
}

impl BucketEntry {
    fn stamp(&self) -> (Millis, &NodeId) {
        (self.updated_at, &self.updated_by)
    }
}

/// Every bucket the cluster defined, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketTable {
    entries: BTreeMap<String, BucketEntry>,
}

/// Why a bucket definition was refused, as one sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A name or a value out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// A change of what an existing bucket's keys carry (`n`, `policy`).
    #[error("{0}")]
    Conflict(String),
}

/// The key whose coordinator decides the definitions of bucket `name`
/// (see [`crate::message::ClientOp::DefineBucket`]); no data lives there.
pub fn definition_key(name: &str) -> Vec<u8> {
    [&[RESERVED, b'B'][..], name.as_bytes()].concat()
}

/// Whether `name` may name a bucket: 1 to [`MAX_NAME_BYTES`] bytes of
/// lowercase ASCII letters, digits, `-` and `_` (it appears in URLs,
/// Redis configs and keys).
pub fn check_name(name: &str) -> Result<(), String> {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !name.bytes().all(allowed) {
        return Err(format!(
            "a bucket name is 1 to {MAX_NAME_BYTES} lowercase letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

/// The prefix of every internal key of bucket `name`: none for
/// [`DEFAULT`], [`LWW_PREFIX`] for [`REDIS`], otherwise
/// `[RESERVED, BUCKET_TAG, policy, n, name length, name…]`.
pub fn prefix(name: &str, props: &BucketProps) -> Vec<u8> {
    match name {
        DEFAULT => Vec::new(),
        REDIS => LWW_PREFIX.to_vec(),
        _ => {
            assert!(name.len() <= MAX_NAME_BYTES, "names are checked");
            let n = u8::try_from(props.n).expect("n is checked to fit a byte");
            let mut p = vec![
                RESERVED,
                BUCKET_TAG,
                props.policy.tag(),
                n,
                name.len() as u8,
            ];
            p.extend_from_slice(name.as_bytes());
            p
        }
    }
}

impl BucketTable {
    /// The properties of bucket `name`: its entry, or for [`DEFAULT`] and
    /// [`REDIS`] their fixed policies with the node defaults when no admin
    /// changed them. `cluster_n` is the cluster's replication factor.
    pub fn get(&self, name: &str, cluster_n: usize) -> Option<BucketProps> {
        if let Some(entry) = self.entries.get(name) {
            return Some(entry.props.clone());
        }
        builtin(name, cluster_n)
    }

    /// Every bucket with its properties, built-in ones first.
    pub fn list(&self, cluster_n: usize) -> Vec<(String, BucketProps)> {
        let builtins = [DEFAULT, REDIS]
            .into_iter()
            .filter(|b| !self.entries.contains_key(*b))
            .filter_map(|b| Some((b.to_string(), builtin(b, cluster_n)?)));
        let defined = self
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), e.props.clone()));
        builtins.chain(defined).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Create or change bucket `name` (see [`check`] for what is refused).
    /// `limits` are the node's: the bucket's quorums must fit its N, its
    /// value limit the node's.
    pub fn define(
        &mut self,
        name: &str,
        props: BucketProps,
        limits: &Limits,
        stamp: (Millis, NodeId),
    ) -> Result<(), Refusal> {
        let before = self.get(name, limits.cluster_n);
        check_name(name).map_err(Refusal::Invalid)?;
        if let Some(before) = &before {
            check_unchanged(name, &props, before).map_err(Refusal::Conflict)?;
        }
        check_values(&props, limits).map_err(Refusal::Invalid)?;
        if before.is_none() && self.entries.len() >= MAX_BUCKETS {
            let full = format!("a cluster holds at most {MAX_BUCKETS} buckets");
            return Err(Refusal::Invalid(full));
        }
        // A change always wins over what this node knew, even against a
        // clock that runs behind the last change's.
        let after = self.entries.get(name).map_or(0, |e| e.updated_at + 1);
        let entry = BucketEntry {
            props,
            updated_at: stamp.0.max(after),
            updated_by: stamp.1,
        };
        self.entries.insert(name.to_string(), entry);
        Ok(())
    }

    /// Take every entry of `other` newer than ours; true when one was.
    pub fn merge(&mut self, other: &BucketTable) -> bool {
        let mut changed = false;
        for (name, theirs) in &other.entries {
            if check_name(name).is_err() || theirs.props.n == 0 || theirs.props.n > 255 {
                // Never from a node of this release; a prefix could not be
                // built from it.
                continue;
            }
            let newer = self
                .entries
                .get(name)
                .is_none_or(|ours| theirs.stamp() > ours.stamp());
            if newer {
                self.entries.insert(name.clone(), theirs.clone());
                changed = true;
            }
        }
        changed
    }

    /// A digest of the whole table: equal tables, equal digests.
    pub fn digest(&self) -> u64 {
        let bytes = postcard::to_stdvec(&self.entries).unwrap_or_default();
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }
}

/// The node limits a definition is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub cluster_n: usize,
    pub max_value_bytes: usize,
    /// The node's W, which a bucket without `w` writes with (at most its N).
    pub default_w: usize,
}

/// The built-in buckets' default properties.
fn builtin(name: &str, cluster_n: usize) -> Option<BucketProps> {
    match name {
        DEFAULT => Some(BucketProps::new(cluster_n, ConflictPolicy::Siblings)),
        REDIS => Some(BucketProps::new(cluster_n, ConflictPolicy::Typed)),
        _ => None,
    }
}

/// A bucket that exists keeps its `n` and policy, which its keys carry.
fn check_unchanged(name: &str, props: &BucketProps, old: &BucketProps) -> Result<(), String> {
    if old.policy != props.policy {
        return Err(format!(
            "bucket {name} resolves conflicts by {}; a bucket's policy is part of its keys \
             and cannot change: create a new bucket and copy the data",
            old.policy.name()
        ));
    }
    if old.n != props.n {
        return Err(format!(
            "bucket {name} keeps {} replicas; a bucket's n is part of its keys and cannot \
             change: create a new bucket and copy the data",
            old.n
        ));
    }
    Ok(())
}

/// What a definition's values must satisfy: an `n` within `1..=` the
/// cluster's (a bucket's keys live on a prefix of the cluster's preference
/// lists, see [`crate::keyspace::n_of`]); quorums within `1..=n`, `pw`
/// within the W it writes with; a TTL and value limit within bounds.
fn check_values(props: &BucketProps, limits: &Limits) -> Result<(), String> {
    if props.n == 0 || props.n > limits.cluster_n {
        return Err(format!(
            "n must be within 1..={} (the cluster's n), got {}",
            limits.cluster_n, props.n
        ));
    }
    for (what, q) in [("r", props.r), ("w", props.w), ("pw", props.pw)] {
        if let Some(q) = q.filter(|q| *q == 0 || *q > props.n) {
            return Err(format!("{what} must be within 1..={}, got {q}", props.n));
        }
    }
    let w = props.w.unwrap_or(limits.default_w.min(props.n));
    if let Some(pw) = props.pw.filter(|pw| *pw > w) {
        return Err(format!(
            "pw must not exceed w ({w}{}), got {pw}",
            if props.w.is_none() {
                ", the node's"
            } else {
                ""
            }
        ));
    }
    match props.ttl_seconds {
        Some(0) => return Err("ttl_seconds must be at least 1".into()),
        Some(t) if t > crate::siblings::MAX_TTL_MS / 1000 => {
            return Err("ttl_seconds must be at most 100 years".into())
        }
        _ => {}
    }
    match props.max_value_bytes {
        Some(0) => Err("max_value_bytes must be at least 1".into()),
        Some(m) if m > limits.max_value_bytes => Err(format!(
            "max_value_bytes must be at most the node's max_value_bytes ({}), got {m}",
            limits.max_value_bytes
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
