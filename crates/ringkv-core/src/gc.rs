//! Tombstone garbage collection: a deleted key's tombstone (or a Redis
//! collection emptied by removes) leaves the store once *every node that
//! could hold a copy of the key is known to hold exactly that state*.
//!
//! Collecting a tombstone too early resurrects the value: a replica that
//! missed the delete (it was down, or cut off) later hands its old version
//! to the others, which no longer hold the tombstone that would hide it.
//! Cassandra bounds this by time (`gc_grace_seconds`, which its users must
//! outrun with repairs); Garage instead pushes the tombstone to every
//! replica and then deletes "if unchanged" everywhere. ringkv does the
//! latter, and asks every member rather than only the key's replicas,
//! since a stand-in may keep a hint of the key and a node leaving a range
//! may still hold it:
//!
//! 1. The key's GC leader (the first node of its preference list) notes a
//!    dead state when it stores one, and waits [`GcSettings::grace_ms`]
//!    (writes in flight land first).
//! 2. It asks every member of the cluster (`GcProbe`, a batch of keys with
//!    the digest and the context of the state to collect): a member votes
//!    yes for a key when it holds that exact state as a replica, or
//!    nothing as a non-replica, keeps no hint of the key, and has no ring
//!    change in progress. A non-replica holding a stray copy (a late
//!    message after a ring change left it there, where anti-entropy never
//!    looks) deletes it and votes yes when the context covers it, and
//!    otherwise sends it to the replicas and votes no: the stray copy
//!    would hold the collection back for ever (the simulator's liveness
//!    rule found it), and may hold writes the replicas lack. A member that is down, suspected or silent votes no by not
//!    answering: GC of the key waits until it is back and holds the
//!    tombstone (anti-entropy and hints bring it there).
//! 3. On yes from all, it tells the replicas to drop every version the
//!    collected state's context covers (`GcDelete`): that state, or what
//!    it superseded. A replica left with nothing deletes the key; a write
//!    that landed meanwhile has a dot the context does not cover and
//!    stays, alone (the simulator saw the collected tombstone linger beside
//!    such a write on some replicas and not others when the rule was
//!    "delete if the digest is unchanged").
//! 4. A replica that deletes remembers the tombstone's context for
//!    [`GcSettings::fence_ms`] (a *fence*): a version the tombstone
//!    superseded that still arrives — from a message delayed in a queue —
//!    is dropped instead of stored. And it raises its dot floor, as a
//!    handoff drop does, so its next dot for the key repeats none that an
//!    old context covers.
//!
//! The same mechanism compacts Redis collections emptied by removes (their
//! remaining state is only the causal context of what was removed).

use crate::version::CausalContext;
use crate::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The `[gc]` config section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcSettings {
    /// How long a tombstone stays before its collection starts; 0 turns
    /// collection off.
    pub grace_ms: Millis,
    /// How long a replica drops versions a collected tombstone superseded.
    pub fence_ms: Millis,
    /// Pause between collection rounds (a round asks about many keys).
    pub interval_ms: Millis,
    /// Keys asked about in one round.
    pub batch: usize,
}

impl Default for GcSettings {
    fn default() -> Self {
        GcSettings {
            grace_ms: 60_000,
            fence_ms: 10 * 60_000,
            interval_ms: 1_000,
            batch: 256,
        }
    }
}

/// Keys a leader tracks as dead at most; a key beyond it is collected
/// when it is next written or found by a later round.
pub const MAX_CANDIDATES: usize = 100_000;

/// Fences a replica keeps at most; collection pauses while they are full.
pub const MAX_FENCES: usize = 100_000;

/// A key and the digest of the state to collect
/// ([`crate::merkle::item_hash`]).
pub type Target = (Vec<u8>, u64);

/// A key, the digest of the state to collect and that state's causal
/// context: what a probe asks about.
pub type Collectable = (Vec<u8>, u64, CausalContext);

/// A collected key and its collected state's context: what a delete
/// drops, and a fence keeps out.
pub type Fence = (Vec<u8>, CausalContext);

/// What `/status` shows of collection on a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Dead keys this node leads and will ask about.
    pub candidates: usize,
    /// Collected keys whose superseded versions it still drops.
    pub fences: usize,
    /// Keys it deleted so far.
    pub collected: u64,
    /// Whether a probe round is waiting for votes.
    pub round_in_flight: bool,
}

/// One probe round of a GC leader.
#[derive(Debug)]
pub(crate) struct Round {
    pub req: u64,
    pub keys: Vec<Target>,
    /// Members that have not answered yet.
    pub waiting: BTreeSet<crate::NodeId>,
    /// Per key: every member answered yes so far.
    pub yes: Vec<bool>,
    pub deadline: Millis,
}

/// How far ahead a leader keeps keys that will expire, ms: those expiring
/// later wait for the sweep that starts at the earliest such expiry, so
/// that far-off expiries do not fill [`MAX_CANDIDATES`].
pub const EXPIRY_HORIZON_MS: Millis = 60_000;

/// Keys one step of the dead-key sweep examines at most.
pub const SWEEP_KEYS_PER_STEP: usize = 4096;

/// Where the dead-key sweep goes on: after this token and, within it,
/// after this key (`None`: from the token's first key).
pub type SweepCursor = (crate::ring::Token, Option<Vec<u8>>);

/// A node's collection state. In memory: a node finds the dead keys it
/// leads as they are written, and by a sweep of its store, step by step,
/// after it starts (a restart forgot them), after its ring changed (it
/// leads other keys now: the simulator found tombstones handed over by a
/// leaving node that no one led) and after the candidates overflowed
/// [`MAX_CANDIDATES`] (keys past it were not noted).
#[derive(Debug)]
pub(crate) struct Gc {
    /// Dead keys this node leads, and since when they are dead here.
    pub candidates: BTreeMap<Vec<u8>, Millis>,
    /// The sweep under way, if any.
    pub sweep: Option<SweepCursor>,
    /// A dead key was not noted for want of room: sweep again once the
    /// sweep under way ends.
    pub overflowed: bool,
    pub next_sweep_at: Millis,
    /// The earliest expiry past [`EXPIRY_HORIZON_MS`] of a key this node
    /// leads: a sweep starts then.
    pub next_expiry: Option<Millis>,
    /// The ring fingerprint the last sweep started under.
    pub swept_ring: u64,
    pub round: Option<Round>,
    pub next_round_at: Millis,
    /// Collected keys: the tombstone's context, until when it holds.
    pub fences: BTreeMap<Vec<u8>, (CausalContext, Millis)>,
    /// States a peer just sent that a fence dropped whole: the peer missed
    /// the collection (its delete was lost) and is told to delete them too
    /// (digest of what it sent, and the fence's context).
    pub tell: Vec<Fence>,
}

impl Default for Gc {
    /// A sweep from the start of the store is due: nothing is noted yet.
    fn default() -> Self {
        Gc {
            candidates: BTreeMap::new(),
            sweep: Some((0, None)),
            overflowed: false,
            next_sweep_at: 0,
            next_expiry: None,
            swept_ring: 0,
            round: None,
            next_round_at: 0,
            fences: BTreeMap::new(),
            tell: Vec::new(),
        }
    }
}

impl Gc {
    /// Note `key`, in this leader's store, as dead from `dies_at` (ms
    /// since the Unix epoch, see [`crate::keyspace::dies_at`]) or never
    /// (`None`). A key that dies past [`EXPIRY_HORIZON_MS`] is not kept:
    /// the sweep that starts once it has expired finds it.
    pub fn note(&mut self, key: &[u8], dies_at: Option<Millis>, now: Millis) {
        let Some(at) = dies_at else {
            self.candidates.remove(key);
            return;
        };
        if at > now + EXPIRY_HORIZON_MS {
            self.candidates.remove(key);
            self.next_expiry = Some(self.next_expiry.map_or(at, |t| t.min(at)));
        } else if self.candidates.len() < MAX_CANDIDATES || self.candidates.contains_key(key) {
            if at > now {
                self.candidates.insert(key.to_vec(), at);
            } else {
                self.candidates.entry(key.to_vec()).or_insert(now);
            }
        } else {
            self.overflowed = true;
        }
        debug_assert!(self.candidates.len() <= MAX_CANDIDATES);
    }

    /// Ask about `key` again a grace after `now` (a member said no, or did
    /// not answer), if it is still a candidate.
    pub fn retry_later(&mut self, key: &[u8], now: Millis) {
        if let Some(since) = self.candidates.get_mut(key) {
            *since = now;
        }
    }

    /// Up to `batch` keys dead since `ripe` or earlier.
    pub fn ripe(&self, ripe: Millis, batch: usize) -> Vec<Vec<u8>> {
        self.candidates
            .iter()
            .filter(|(_, since)| **since <= ripe)
            .map(|(key, _)| key.clone())
            .take(batch)
            .collect()
    }

    /// The fence of `key`, if it still holds at `now`.
    pub fn fence(&self, key: &[u8], now: Millis) -> Option<&CausalContext> {
        self.fences
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(context, _)| context)
    }

    pub fn expire_fences(&mut self, now: Millis) {
        self.fences.retain(|_, (_, until)| *until > now);
    }
}
