//! Sibling sets: every version of a key that no other version supersedes.
//!
//! A key's stored state is a [`SiblingSet`]. Two rules keep it right:
//! * a coordinator's write ([`SiblingSet::write`]) gets a fresh dot and drops
//!   exactly the siblings the client's context has seen;
//! * replicas combine states with [`SiblingSet::merge`]: the union of both,
//!   minus every sibling whose dot another sibling's context covers.
//!
//! Contexts are exact sets of dots (see [`crate::version`]), so a write
//! supersedes exactly the versions its writer was shown, whatever else the
//! same coordinator wrote meanwhile.

use crate::version::{CausalContext, Dot};
use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One version of a key: a value (or a tombstone) with its causal history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    /// The write event that made this version.
    pub dot: Dot,
    /// What the writer had seen (the client's causal context, pruned).
    pub context: CausalContext,
    /// Coordinator wall-clock time of the write, for last-write-wins
    /// resolution by clients and for display; never used for causality.
    pub timestamp: Millis,
    /// The value; `None` marks a deletion (tombstone), kept so the delete
    /// supersedes older versions on replicas that have not seen it yet.
    /// Encoded as one byte string (`serde_bytes`), not a sequence of
    /// bytes: the same postcard bytes, without a serializer call per byte
    /// (which made a 1 MiB value cost milliseconds per encode).
    #[serde(with = "serde_bytes")]
    pub value: Option<Vec<u8>>,
    /// When the value expires, ms since the Unix epoch by its coordinator's
    /// clock (the write's time plus its TTL); `None`: never. From then on
    /// every read shows this version as a tombstone ([`SiblingSet::visible_at`])
    /// and tombstone collection removes it: expiry needs no second write,
    /// so a replica that was down when it expired agrees at once. Clocks
    /// that disagree by `s` ms make the value vanish up to `s` ms early or
    /// late, depending on the node asked.
    pub expires_at: Option<Millis>,
}

impl Sibling {
    /// This version's full clock: its context plus its own dot.
    pub fn clock(&self) -> CausalContext {
        let mut clock = self.context.clone();
        clock.add(&self.dot, self.timestamp);
        clock
    }

    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Whether the value has expired by `now` (ms since the Unix epoch).
    pub fn is_expired(&self, now: Millis) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Bytes this version occupies, for size limits.
    pub fn size(&self) -> usize {
        self.value.as_ref().map_or(0, Vec::len)
    }

    /// A total order used only to store sets canonically (not causality).
    fn canonical_cmp(&self, other: &Sibling) -> std::cmp::Ordering {
        let entries = |s: &Sibling| {
            s.context
                .entries()
                .map(|(n, e)| (n.clone(), e.timestamp, e.intervals().to_vec()))
                .collect::<Vec<_>>()
        };
        (&self.dot, self.timestamp, &self.value, self.expires_at)
            .cmp(&(&other.dot, other.timestamp, &other.value, other.expires_at))
            .then_with(|| entries(self).cmp(&entries(other)))
    }
}

/// The longest time to live a write may ask for, ms (100 years): bounds
/// `now + ttl` far from overflow, and no user means more.
pub const MAX_TTL_MS: Millis = 100 * 365 * 24 * 3_600_000;

/// What a coordinator writes: a value (`None`: a tombstone), when it
/// expires (ms since the Unix epoch; `None`: never, and always for a
/// tombstone), and the timestamp it competes with under last-write-wins
/// (`None`: the write's time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewVersion {
    pub value: Option<Vec<u8>>,
    pub expires_at: Option<Millis>,
    pub timestamp: Option<Millis>,
}

impl NewVersion {
    pub fn tombstone() -> NewVersion {
        NewVersion::default()
    }

    /// `value`, expiring at `expires_at` (ignored for a tombstone).
    pub fn new(value: Option<Vec<u8>>, expires_at: Option<Millis>) -> NewVersion {
        let expires_at = expires_at.filter(|_| value.is_some());
        NewVersion {
            value,
            expires_at,
            timestamp: None,
        }
    }

    /// This version stamped `timestamp` rather than with the write's time:
    /// a write that only re-expires a value (`EXPIRE`, `PERSIST`) keeps
    /// the stamp of the value it re-expires, so that under last-write-wins
    /// it never beats a write made meanwhile that did not see it — a `SET`
    /// or a `DEL` through another node. (Stamped now, a concurrent `DEL`
    /// lost to a `PERSIST` of the value it deleted, and a `SET` to an
    /// `EXPIRE` of the value it replaced: a fresh-eyes user saw both.)
    pub fn stamped(self, timestamp: Millis) -> NewVersion {
        NewVersion {
            timestamp: Some(timestamp),
            ..self
        }
    }
}

/// Why a coordinator refused a write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error(
        "key has {siblings} concurrent versions (limit {limit}); read it and write back \
         with its context to resolve them"
    )]
    TooManySiblings { siblings: usize, limit: usize },
}

/// The versions of one key, in a canonical order (sorted, no duplicates) so
/// that equal states compare and hash equal on every replica.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiblingSet {
    siblings: Vec<Sibling>,
}

/// Parameters of a coordinator write.
#[derive(Clone, Copy, Debug)]
pub struct WriteLimits {
    pub max_siblings: usize,
    pub max_clock_entries: usize,
    /// Context entries younger than this are not pruned.
    pub young_clock_ms: Millis,
    /// The smallest counter the writer may issue: the floor of its counter
    /// lease, above every counter it issued before its last restart, so a
    /// node that lost its latest writes (power loss) never reuses their dots.
    pub min_counter: u64,
}

impl SiblingSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty()
    }

    pub fn len(&self) -> usize {
        self.siblings.len()
    }

    /// All versions, tombstones included.
    pub fn iter(&self) -> impl Iterator<Item = &Sibling> {
        self.siblings.iter()
    }

    /// The versions a reader sees: tombstones hidden.
    pub fn live(&self) -> impl Iterator<Item = &Sibling> {
        self.siblings.iter().filter(|s| !s.is_tombstone())
    }

    /// What a reader sees at `now`: every version that expired by then is
    /// shown as a tombstone of the same dot and context, so that front
    /// ends hide it and a write back with the read's context supersedes
    /// it. (A Redis key expires as a whole: see
    /// [`crate::keyspace::visible_at`], which every client read goes
    /// through.) Replicas, hints, repair and anti-entropy keep and
    /// exchange the state as written.
    pub fn visible_at(&self, now: Millis) -> SiblingSet {
        self.hiding(|s| s.is_expired(now))
    }

    /// These versions with every one `hidden` says shown as a tombstone of
    /// the same dot and context.
    pub fn hiding(&self, hidden: impl Fn(&Sibling) -> bool) -> SiblingSet {
        let siblings = self
            .siblings
            .iter()
            .map(|s| match hidden(s) {
                true => Sibling {
                    value: None,
                    expires_at: None,
                    ..s.clone()
                },
                false => s.clone(),
            })
            .collect();
        // The map keeps dots and contexts, so the order and the rule that
        // no sibling supersedes another still hold.
        let visible = SiblingSet { siblings };
        debug_assert_eq!(visible.len(), self.len());
        visible
    }

    /// The causal context to hand a client: these versions and everything
    /// they have seen. Writing back with it supersedes every one of them.
    pub fn context(&self) -> CausalContext {
        let mut ctx = CausalContext::new();
        for s in &self.siblings {
            ctx.merge(&s.clock());
        }
        ctx
    }

    /// The highest counter of `node` this set knows of, in a dot or a
    /// context: a coordinator's next dot for the key goes above it.
    pub fn max_counter(&self, node: &NodeId) -> u64 {
        self.siblings
            .iter()
            .map(|s| s.context.max_counter(node).max(dot_counter(&s.dot, node)))
            .max()
            .unwrap_or(0)
    }

    /// The dot [`SiblingSet::write`] gives `node`'s next write against
    /// `context`: its counter exceeds every event of `node` this key has
    /// seen, locally or in the context, and is at least `min_counter` (the
    /// lease floor), so dots never repeat.
    pub fn next_dot(&self, node: &NodeId, context: &CausalContext, min_counter: u64) -> Dot {
        let seen = self.max_counter(node).max(context.max_counter(node));
        Dot {
            node: node.clone(),
            counter: (seen + 1).max(min_counter),
        }
    }

    /// Coordinate a client write on `node`: a new version (`None` = delete)
    /// written against `context`. Drops the siblings `context` covers and
    /// keeps the concurrent ones. Returns the new version's dot.
    ///
    /// The new version's context is `context` pruned to `max_clock_entries`
    /// (see [`CausalContext::prune`]), keeping the dot of every version it
    /// supersedes here, so that it supersedes them on every replica too.
    pub fn write(
        &mut self,
        node: &NodeId,
        context: &CausalContext,
        value: Option<Vec<u8>>,
        now: Millis,
        limits: WriteLimits,
    ) -> Result<Dot, WriteError> {
        self.write_version(node, context, NewVersion::new(value, None), now, limits)
    }

    /// [`SiblingSet::write`] of a [`NewVersion`]: a value that may expire
    /// and may carry a timestamp of its own.
    pub fn write_version(
        &mut self,
        node: &NodeId,
        context: &CausalContext,
        version: NewVersion,
        now: Millis,
        limits: WriteLimits,
    ) -> Result<Dot, WriteError> {
        let NewVersion {
            value,
            expires_at,
            timestamp,
        } = version;
        debug_assert!(
            value.is_some() || expires_at.is_none(),
            "a tombstone never expires"
        );
        let (superseded, survivors): (Vec<&Sibling>, Vec<&Sibling>) =
            self.siblings.iter().partition(|s| context.covers(&s.dot));
        if survivors.len() + 1 > limits.max_siblings {
            return Err(WriteError::TooManySiblings {
                siblings: survivors.len(),
                limit: limits.max_siblings,
            });
        }
        let keep: BTreeSet<Dot> = superseded.iter().map(|s| s.dot.clone()).collect();
        let dot = self.next_dot(node, context, limits.min_counter);
        let mut written_against = context.clone();
        written_against.prune(limits.max_clock_entries, &keep, now, limits.young_clock_ms);
        self.siblings.retain(|s| !context.covers(&s.dot));
        self.siblings.push(Sibling {
            dot: dot.clone(),
            context: written_against,
            timestamp: timestamp.unwrap_or(now),
            value,
            expires_at,
        });
        self.normalize();
        Ok(dot)
    }

    /// Combine another replica's state into this one. Returns true when this
    /// set changed. Commutative, associative and idempotent, so replicas that
    /// exchange states in any order converge.
    pub fn merge(&mut self, other: &SiblingSet) -> bool {
        let before = self.siblings.clone();
        self.siblings.extend(other.siblings.iter().cloned());
        self.normalize();
        self.siblings != before
    }

    /// Sort, drop exact duplicates and every sibling another one supersedes.
    fn normalize(&mut self) {
        self.siblings.sort_by(Sibling::canonical_cmp);
        self.siblings.dedup();
        let superseded: Vec<bool> = self
            .siblings
            .iter()
            .map(|s| self.siblings.iter().any(|t| t.context.covers(&s.dot)))
            .collect();
        let mut flags = superseded.into_iter();
        self.siblings.retain(|_| !flags.next().unwrap_or(false));
    }
}

fn dot_counter(dot: &Dot, node: &NodeId) -> u64 {
    if dot.node == *node {
        dot.counter
    } else {
        0
    }
}

impl FromIterator<Sibling> for SiblingSet {
    fn from_iter<I: IntoIterator<Item = Sibling>>(iter: I) -> Self {
        let mut set = SiblingSet {
            siblings: iter.into_iter().collect(),
        };
        set.normalize();
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: WriteLimits = WriteLimits {
        max_siblings: 8,
        max_clock_entries: 10,
        young_clock_ms: 20_000,
        min_counter: 0,
    };

    /// A value is encoded as one byte string (`serde_bytes`), which in
    /// postcard is the same bytes as the sequence of `u8` it was before:
    /// stores and peers of either encoding read each other.
    #[test]
    fn a_value_encodes_as_it_did_as_a_sequence_of_bytes() {
        #[derive(Serialize)]
        struct Before<'a> {
            dot: &'a Dot,
            context: &'a CausalContext,
            timestamp: Millis,
            value: &'a Option<Vec<u8>>,
            expires_at: Option<Millis>,
        }
        let mut set = SiblingSet::new();
        put(&mut set, "n1", &CausalContext::new(), &"x".repeat(300), 5);
        let s = set.iter().next().unwrap();
        let before = Before {
            dot: &s.dot,
            context: &s.context,
            timestamp: s.timestamp,
            value: &s.value,
            expires_at: s.expires_at,
        };
        let bytes = postcard::to_stdvec(s).unwrap();
        assert_eq!(bytes, postcard::to_stdvec(&before).unwrap());
        assert_eq!(&postcard::from_bytes::<Sibling>(&bytes).unwrap(), s);
    }

    fn put(set: &mut SiblingSet, node: &str, ctx: &CausalContext, v: &str, t: Millis) -> Dot {
        set.write(&node.into(), ctx, Some(v.into()), t, LIMITS)
            .expect("write")
    }

    fn values(set: &SiblingSet) -> Vec<String> {
        let mut v: Vec<String> = set
            .live()
            .map(|s| String::from_utf8(s.value.clone().unwrap()).unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn blind_writes_through_one_coordinator_become_siblings() {
        let mut set = SiblingSet::new();
        put(&mut set, "n1", &CausalContext::new(), "a", 1);
        put(&mut set, "n1", &CausalContext::new(), "b", 2);
        assert_eq!(values(&set), ["a", "b"]);
    }

    #[test]
    fn writing_back_with_the_context_resolves_siblings() {
        let mut set = SiblingSet::new();
        put(&mut set, "n1", &CausalContext::new(), "a", 1);
        put(&mut set, "n1", &CausalContext::new(), "b", 2);
        let ctx = set.context();
        put(&mut set, "n1", &ctx, "ab", 3);
        assert_eq!(values(&set), ["ab"]);
        assert!(set.iter().next().unwrap().clock().descends(&ctx));
    }

    #[test]
    fn the_seeds_story_yields_two_siblings_then_one() {
        let mut s1 = SiblingSet::new();
        put(&mut s1, "S1", &CausalContext::new(), "CAR", 1);
        let ctx = s1.context();
        put(&mut s1, "S1", &ctx, "CART", 2);
        assert_eq!(s1.context().max_counter(&"S1".into()), 2);
        let (mut s2, mut s3) = (s1.clone(), s1.clone());
        let ctx = s1.context();
        put(&mut s2, "S2", &ctx, "CARM", 3);
        put(&mut s3, "S3", &ctx, "CARR", 4);
        let mut read = s1.clone();
        read.merge(&s2);
        read.merge(&s3);
        assert_eq!(values(&read), ["CARM", "CARR"]);
        let ctx = read.context();
        put(&mut read, "S1", &ctx, "CARR", 5);
        assert_eq!(values(&read), ["CARR"]);
        let clock = read.iter().next().unwrap().clock();
        assert_eq!(clock.max_counter(&"S1".into()), 3);
        assert_eq!(clock.max_counter(&"S2".into()), 1);
        assert_eq!(clock.max_counter(&"S3".into()), 1);
    }

    #[test]
    fn a_delete_supersedes_what_it_saw_even_on_a_stale_replica() {
        let mut a = SiblingSet::new();
        put(&mut a, "n1", &CausalContext::new(), "x", 1);
        let stale = a.clone();
        let ctx = a.context();
        a.write(&"n1".into(), &ctx, None, 2, LIMITS).unwrap();
        assert_eq!(a.live().count(), 0);
        let mut b = stale;
        b.merge(&a);
        assert_eq!(b.live().count(), 0, "tombstone must win over the old value");
        assert_eq!(b, a);
    }

    #[test]
    fn too_many_siblings_is_refused_but_resolution_is_not() {
        let limits = WriteLimits {
            max_siblings: 2,
            max_clock_entries: 10,
            young_clock_ms: 20_000,
            min_counter: 0,
        };
        let mut set = SiblingSet::new();
        let empty = CausalContext::new();
        set.write(&"n1".into(), &empty, Some(vec![1]), 1, limits)
            .unwrap();
        set.write(&"n1".into(), &empty, Some(vec![2]), 2, limits)
            .unwrap();
        let err = set.write(&"n1".into(), &empty, Some(vec![3]), 3, limits);
        assert_eq!(
            err,
            Err(WriteError::TooManySiblings {
                siblings: 2,
                limit: 2
            })
        );
        let ctx = set.context();
        set.write(&"n1".into(), &ctx, Some(vec![4]), 4, limits)
            .unwrap();
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn contexts_are_pruned_to_the_limit_once_their_entries_are_quiet() {
        let limits = WriteLimits {
            max_siblings: 8,
            max_clock_entries: 3,
            young_clock_ms: 20_000,
            min_counter: 0,
        };
        let mut set = SiblingSet::new();
        for (i, node) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            let ctx = set.context();
            let now = i as u64 * LIMITS.young_clock_ms;
            set.write(&(*node).into(), &ctx, Some(vec![i as u8]), now, limits)
                .unwrap();
        }
        let only = set.iter().next().unwrap();
        assert!(only.context.size() <= 3, "context {:?}", only.context);
        assert_eq!(only.dot, Dot::new("e", 1));
        assert!(only.context.covers(&Dot::new("d", 1)), "what it superseded");
    }

    /// Pruning a resolving write must keep the entries of every sibling it
    /// resolves, or a replica still holding one keeps it beside the new
    /// version for ever, and no later write could resolve it either: with
    /// two entries allowed, resolving siblings from `a` and `b` through `c`
    /// used to keep `c`'s own (redundant) entry and drop `b`'s.
    #[test]
    fn a_resolving_write_keeps_the_entries_of_the_siblings_it_resolves() {
        let limits = WriteLimits {
            max_siblings: 8,
            max_clock_entries: 2,
            young_clock_ms: 20_000,
            min_counter: 0,
        };
        let t = |k: u64| k * LIMITS.young_clock_ms;
        let empty = CausalContext::new();
        let mut replica = SiblingSet::new();
        replica
            .write(&"c".into(), &empty, Some(vec![0]), t(1), limits)
            .unwrap();
        let ctx = replica.context();
        replica
            .write(&"a".into(), &ctx, Some(vec![1]), t(2), limits)
            .unwrap();
        replica
            .write(&"b".into(), &ctx, Some(vec![2]), t(3), limits)
            .unwrap();
        assert_eq!(replica.live().count(), 2);
        let stale = replica.clone();
        let mut coordinator = replica;
        let ctx = coordinator.context();
        coordinator
            .write(&"c".into(), &ctx, Some(vec![3]), t(9), limits)
            .unwrap();
        let mut other = stale;
        other.merge(&coordinator);
        assert_eq!(values(&other), [String::from("\u{3}")]);
    }

    /// A random history: writes by random coordinators against contexts read
    /// from random replicas, with replicas merging in random order.
    fn arb_replicas() -> impl Strategy<Value = Vec<SiblingSet>> {
        proptest::collection::vec((0usize..3, 0usize..3, any::<bool>(), 0usize..3), 1..20).prop_map(
            |steps| {
                let mut replicas = vec![SiblingSet::new(); 3];
                for (t, (writer, read_from, blind, sync_to)) in steps.into_iter().enumerate() {
                    let ctx = if blind {
                        CausalContext::new()
                    } else {
                        replicas[read_from].context()
                    };
                    let node = NodeId::new(format!("n{writer}"));
                    let value = Some(vec![t as u8]);
                    replicas[writer]
                        .write(&node, &ctx, value, t as u64, LIMITS)
                        .ok();
                    let state = replicas[writer].clone();
                    replicas[sync_to].merge(&state);
                }
                replicas
            },
        )
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(r in arb_replicas()) {
            let join = |x: &SiblingSet, y: &SiblingSet| { let mut z = x.clone(); z.merge(y); z };
            let (a, b, c) = (&r[0], &r[1], &r[2]);
            prop_assert_eq!(join(a, b), join(b, a));
            prop_assert_eq!(join(&join(a, b), c), join(a, &join(b, c)));
            prop_assert_eq!(join(a, a), a.clone());
        }

        #[test]
        fn merge_keeps_every_version_nobody_superseded(r in arb_replicas()) {
            let mut all = r[0].clone();
            all.merge(&r[1]);
            all.merge(&r[2]);
            for s in r.iter().flat_map(|set| set.iter()) {
                let kept = all.iter().any(|t| t == s);
                let superseded = all.iter().any(|t| t.context.covers(&s.dot));
                prop_assert!(kept || superseded, "lost {:?}", s);
            }
        }
    }
}
