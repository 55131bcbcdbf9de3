//! Cluster-wide protocol settings: replication factor, quorums, timeouts and
//! the limits every request is checked against.

use crate::anti_entropy::AntiEntropySettings;
use crate::gossip::MembershipSettings;
use crate::hints::HintSettings;
use crate::keyspace;
use crate::message::BatchLimits;
use crate::ring;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// The longest node id (the server refuses longer ones in its config).
pub const MAX_NODE_ID_BYTES: usize = 64;

/// The longest key the storage engines can hold as data *and* as a hint:
/// fjall keys are at most `u16::MAX` bytes, and a hint's key carries the
/// owner's id (up to [`MAX_NODE_ID_BYTES`]) behind a length byte — more
/// than the 8-byte token prefix that orders data keys by ring position.
pub const MAX_STORABLE_KEY: usize = u16::MAX as usize - 1 - MAX_NODE_ID_BYTES;

/// The most bytes postcard spends on one integer (a varint of a `u64`), and
/// so on the length in front of a list, a string or a byte string.
const VARINT_BYTES: usize = 10;

/// Wire bytes allowed for one unit of a causal context's
/// [`size`](crate::version::CausalContext::size): an entry — a node id
/// behind its length, a timestamp, the length of its interval list and its
/// first interval (1 + 64 + 10 + 1 + 20 = 96 at most) — or one further
/// interval of an entry (20).
const CONTEXT_ENTRY_BYTES: usize = 96;

/// Wire bytes of a dot (a node id and a counter) at most.
const DOT_BYTES: usize = VARINT_BYTES + MAX_NODE_ID_BYTES + VARINT_BYTES;

/// Room a message needs besides its entries: variant tags, a request id, an
/// owner's node id, an exchange id (a node id and a counter), a token range,
/// a `more` flag, result tags and the lengths of its lists. The largest
/// measured is under 200 bytes (see the tests); a kilobyte leaves a margin.
/// Whatever varies beyond that (leaf numbers, keys, digests, sibling sets,
/// member entries) is counted in the message's batch budget.
pub const ENVELOPE_BYTES: usize = 1024;

/// Byte budget of one batched message (a hint delivery, a transfer page, an
/// anti-entropy step, a gossip member list), when the frame allows it.
/// Large enough that, for small values, the count limits bind first and
/// per-message overhead is negligible; small enough that one batch holds a
/// peer's single connection for only ~30 ms at 1 Gbit/s, so quorum
/// messages queued behind it wait little, and that a batch (read, encoded
/// and queued) costs a few MiB of memory, not the 64 MiB a full frame may
/// hold at the defaults. Entries larger than this (a sibling set of many
/// megabyte values) travel alone.
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;

/// The length prefix of a frame is a `u32`.
const MAX_WIRE_FRAME: usize = u32::MAX as usize;

/// Replication and limit settings (the `[replication]` section of a node's
/// config). The ones placement and replication depend on must be the same
/// on every node: see [`ClusterSettings`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Replicas per key (N).
    pub n: usize,
    /// Default read quorum (R).
    pub r: usize,
    /// Default write quorum (W).
    pub w: usize,
    /// Virtual nodes per physical node on the ring.
    pub vnodes: u32,
    /// How long a coordinator waits for its quorum before it answers 503.
    pub request_timeout_ms: u64,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Concurrent versions a key may hold before blind writes are refused
    /// (writes that resolve siblings with a context are always accepted).
    pub max_siblings: usize,
    /// Entries kept in a version's causal context before the oldest are
    /// pruned (see [`CausalContext::prune`](crate::version::CausalContext::prune)).
    pub max_clock_entries: usize,
    /// Context entries whose last event is younger than this are never
    /// pruned: a recent write may still be on its way to a replica, which
    /// needs the entry to see it superseded (Riak's `young_vclock`, 20 s).
    pub young_clock_ms: u64,
    /// Background Merkle exchanges; configured in its own `[anti_entropy]`
    /// section, which the server copies in here.
    #[serde(skip)]
    pub anti_entropy: AntiEntropySettings,
    /// Gossip and failure detection (`[membership]` section).
    #[serde(skip)]
    pub membership: MembershipSettings,
    /// Sloppy quorum and hinted handoff (`[hints]` section).
    #[serde(skip)]
    pub hints: HintSettings,
    /// Tombstone collection (`[gc]` section).
    #[serde(skip)]
    pub gc: crate::gc::GcSettings,
    /// Client operations this node takes on at once, as coordinator or
    /// forwarder (`in_flight_ops` of the server's `[limits]` section, which
    /// explains the default). Beyond it a new one is refused at once with
    /// [`ClientError::Overloaded`](crate::message::ClientError::Overloaded).
    #[serde(skip)]
    pub max_in_flight: usize,
}

/// Default of [`Settings::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            n: 3,
            r: 2,
            w: 2,
            vnodes: 128,
            request_timeout_ms: 2000,
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            max_siblings: 64,
            max_clock_entries: 32,
            young_clock_ms: 20_000,
            anti_entropy: AntiEntropySettings::default(),
            membership: MembershipSettings::default(),
            hints: HintSettings::default(),
            gc: crate::gc::GcSettings::default(),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl Settings {
    /// Check the settings make sense together; the error is one sentence.
    pub fn validate(&self) -> Result<(), String> {
        if self.n == 0 {
            return Err("replication n must be at least 1".into());
        }
        for (name, q) in [("r", self.r), ("w", self.w)] {
            if q == 0 || q > self.n {
                return Err(format!(
                    "replication {name} = {q} must be within 1..={}",
                    self.n
                ));
            }
        }
        if self.max_key_bytes == 0 || self.max_key_bytes > MAX_STORABLE_KEY {
            return Err(format!(
                "max_key_bytes must be within 1..={MAX_STORABLE_KEY}"
            ));
        }
        if self.vnodes == 0 {
            return Err("replication vnodes must be at least 1".into());
        }
        if self.max_siblings == 0 || self.max_clock_entries == 0 {
            return Err("max_siblings and max_clock_entries must be at least 1".into());
        }
        if self.max_frame_bytes() > MAX_WIRE_FRAME {
            return Err(format!(
                "max_siblings ({}) full sibling sets of max_value_bytes ({}) values would need \
                 messages of {} bytes, more than a frame can carry ({MAX_WIRE_FRAME})",
                self.max_siblings,
                self.max_value_bytes,
                self.max_frame_bytes()
            ));
        }
        Ok(())
    }

    /// How long a node that forwarded a request waits for the coordinator
    /// before trying the next node of the preference list: the coordinator's
    /// own quorum wait plus a margin for the hop.
    pub fn forward_timeout_ms(&self) -> u64 {
        self.request_timeout_ms + 500
    }

    /// The settings every node of the cluster must share.
    pub fn cluster(&self) -> ClusterSettings {
        ClusterSettings {
            n: self.n,
            r: self.r,
            w: self.w,
            vnodes: self.vnodes,
            placement_version: ring::PLACEMENT_VERSION,
            keyspace_version: keyspace::POLICY_VERSION,
            max_key_bytes: self.max_key_bytes,
            max_value_bytes: self.max_value_bytes,
            max_siblings: self.max_siblings,
            max_clock_entries: self.max_clock_entries,
        }
    }

    /// Wire bytes allowed for one sibling's causal context: entries for
    /// `max_clock_entries` nodes (writes prune to that many) plus as many
    /// again as there may be siblings, each [`CONTEXT_ENTRY_BYTES`]. The
    /// one place to adjust when the context's representation changes.
    pub fn max_context_bytes(&self) -> usize {
        let entries = self.max_clock_entries.saturating_add(self.max_siblings);
        VARINT_BYTES.saturating_add(entries.saturating_mul(CONTEXT_ENTRY_BYTES))
    }

    /// Wire bytes of one sibling at most: its dot, context and timestamp,
    /// and a value (or tombstone) of up to `max_value_bytes`.
    pub fn max_sibling_bytes(&self) -> usize {
        let value = self.max_value_bytes.saturating_add(1 + VARINT_BYTES);
        (DOT_BYTES + VARINT_BYTES)
            .saturating_add(self.max_context_bytes())
            .saturating_add(value)
    }

    /// Wire bytes of the largest entry any message carries: a key of
    /// `max_key_bytes` with a full sibling set (`max_siblings` of the
    /// largest siblings). A client's write (key, value and context) is no
    /// larger: its context is held to `max_siblings` contexts.
    pub fn max_entry_bytes(&self) -> usize {
        let set = self.max_siblings.saturating_mul(self.max_sibling_bytes());
        (2 * VARINT_BYTES + self.max_key_bytes).saturating_add(set)
    }

    /// The largest inter-node frame, derived so that a message carrying one
    /// full sibling set always fits: a replicate, a read reply, a repair, a
    /// forward of the largest write, or a batch whose first entry alone
    /// fills it. Every batch stays within [`Settings::max_batch_bytes`] of
    /// entries plus [`ENVELOPE_BYTES`], so it fits too.
    pub fn max_frame_bytes(&self) -> usize {
        self.max_entry_bytes().saturating_add(ENVELOPE_BYTES)
    }

    /// The byte budget of one batched message: [`BATCH_BYTES`], or less
    /// when the frame is smaller (never more than one largest entry, so a
    /// batch of several entries fits the frame as well as one lone entry).
    pub fn max_batch_bytes(&self) -> usize {
        BATCH_BYTES.min(self.max_entry_bytes())
    }

    /// Limits of a batch of at most `count` entries.
    pub fn batch_limits(&self, count: usize) -> BatchLimits {
        BatchLimits {
            bytes: self.max_batch_bytes(),
            count: count.max(1),
        }
    }

    /// Wire bytes a client's causal context may take: a write's context is
    /// at most what a read of a full sibling set returns.
    pub fn max_client_context_bytes(&self) -> usize {
        self.max_siblings.saturating_mul(self.max_context_bytes())
    }
}

/// The settings that must agree cluster-wide, because a node that differs in
/// one of them would store, count or accept data differently from its peers:
///
/// - `n`: which nodes replicate a key. A node with another N computes other
///   preference lists, and drops copies it believes it no longer holds.
/// - `r`, `w`: the quorums a request gets when it names none. A request's
///   meaning must not depend on which node receives it.
/// - `vnodes`: the ring's tokens, hence every preference list.
/// - `placement_version` ([`ring::PLACEMENT_VERSION`]): how ids and keys hash
///   to tokens and how preference lists are walked.
/// - `keyspace_version` ([`keyspace::POLICY_VERSION`]): which keys resolve by
///   last-write-wins instead of siblings.
/// - `max_key_bytes`, `max_value_bytes`, `max_siblings`,
///   `max_clock_entries`: what a replica accepts, and they derive
///   [`Settings::max_frame_bytes`]; a peer with smaller limits would refuse
///   or cut off the replication messages of one with larger ones.
///
/// Per-node tuning stays out, because nodes may differ in it without
/// storing anything differently: `request_timeout_ms` (how long this node's
/// coordinator waits), anti-entropy pacing, gossip and failure-detector
/// timing, hint limits, and storage (engine, fsync).
///
/// The set is checked in three places: the data directory remembers it (a
/// restart with other values is refused), the inter-node handshake carries
/// it (a peer with other values is refused), and gossip spreads its
/// [`fingerprint`](ClusterSettings::fingerprint) (a member with another one
/// is never used as a replica or coordinator, and shows in `/status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSettings {
    pub n: usize,
    pub r: usize,
    pub w: usize,
    pub vnodes: u32,
    pub placement_version: u32,
    pub keyspace_version: u32,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_siblings: usize,
    pub max_clock_entries: usize,
}

/// The first setting in which two [`ClusterSettings`] differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingDiff {
    /// The setting as a config names it, e.g. `replication n`.
    pub setting: &'static str,
    pub ours: u64,
    pub theirs: u64,
}

impl ClusterSettings {
    /// Every setting with the name sentences give it, in one fixed order:
    /// the single list both [`fingerprint`](Self::fingerprint) and
    /// [`diff`](Self::diff) go by, so a setting added here is both
    /// fingerprinted and compared.
    fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("replication n", self.n as u64),
            ("replication r", self.r as u64),
            ("replication w", self.w as u64),
            ("replication vnodes", u64::from(self.vnodes)),
            (
                "placement scheme version",
                u64::from(self.placement_version),
            ),
            ("keyspace policy version", u64::from(self.keyspace_version)),
            ("replication max_key_bytes", self.max_key_bytes as u64),
            ("replication max_value_bytes", self.max_value_bytes as u64),
            ("replication max_siblings", self.max_siblings as u64),
            (
                "replication max_clock_entries",
                self.max_clock_entries as u64,
            ),
        ]
    }

    /// A 64-bit digest of every setting, stable across processes and
    /// platforms, for gossip to carry in each member's entry. Never 0,
    /// which gossip uses for "not known yet".
    pub fn fingerprint(&self) -> u64 {
        let mut bytes = Vec::new();
        for (name, value) in self.named() {
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        xxh3_64(&bytes).max(1)
    }

    /// The first setting (in [`named`](Self::named) order) where `theirs`
    /// differs from these, if any.
    pub fn diff(&self, theirs: &ClusterSettings) -> Option<SettingDiff> {
        self.named()
            .into_iter()
            .zip(theirs.named())
            .find(|((_, ours), (_, theirs))| ours != theirs)
            .map(|((setting, ours), (_, theirs))| SettingDiff {
                setting,
                ours,
                theirs,
            })
    }
}

impl SettingDiff {
    /// The difference as one sentence, each side named by its holder:
    /// `replication n differs: this node has 2, peer n2 has 3`.
    pub fn sentence(&self, ours: &str, theirs: &str) -> String {
        format!(
            "{} differs: {ours} has {}, {theirs} has {}",
            self.setting, self.ours, self.theirs
        )
    }
}

#[cfg(test)]
mod cluster_tests {
    use super::*;

    fn with(change: impl FnOnce(&mut Settings)) -> ClusterSettings {
        let mut settings = Settings::default();
        change(&mut settings);
        settings.cluster()
    }

    #[test]
    fn a_settings_difference_is_one_sentence_naming_the_first_setting_and_both_values() {
        let mine = with(|s| s.n = 2);
        let peer = Settings::default().cluster();
        let diff = mine.diff(&peer).expect("n differs");
        assert_eq!(
            diff.sentence("this node", "peer n2"),
            "replication n differs: this node has 2, peer n2 has 3"
        );
        let both = with(|s| {
            s.vnodes = 64;
            s.max_value_bytes = 10;
        });
        let first = both.diff(&peer).expect("two settings differ");
        assert_eq!(
            (first.setting, first.ours, first.theirs),
            ("replication vnodes", 64, 128)
        );
    }

    #[test]
    fn every_placement_setting_changes_the_fingerprint_and_tuning_does_not() {
        let base = Settings::default().cluster();
        let changed = [
            with(|s| s.n = 2),
            with(|s| s.r = 1),
            with(|s| s.w = 3),
            with(|s| s.vnodes = 64),
            with(|s| s.max_key_bytes = 10),
            with(|s| s.max_value_bytes = 10),
            with(|s| s.max_siblings = 10),
            with(|s| s.max_clock_entries = 10),
            ClusterSettings {
                placement_version: ring::PLACEMENT_VERSION + 1,
                ..base.clone()
            },
            ClusterSettings {
                keyspace_version: keyspace::POLICY_VERSION + 1,
                ..base.clone()
            },
        ];
        for other in &changed {
            assert_ne!(other.fingerprint(), base.fingerprint(), "{other:?}");
            assert!(base.diff(other).is_some(), "{other:?}");
        }
        let tuned = with(|s| {
            s.request_timeout_ms = 1;
            s.anti_entropy.interval_ms = 1;
            s.membership.gossip_interval_ms = 1;
            s.hints.max_hints = 1;
        });
        assert_eq!(tuned, base);
        assert_eq!(base.diff(&tuned), None);
    }
}

#[cfg(test)]
mod frame_tests {
    use super::*;
    use crate::anti_entropy::{AeStep, ExchangeId};
    use crate::message::{encoded_len, ClientOp, ClientReply, Message};
    use crate::range::TokenRange;
    use crate::siblings::{Sibling, SiblingSet};
    use crate::version::{CausalContext, Dot};
    use crate::NodeId;

    /// A node id of the longest allowed length, distinct per `i`.
    fn long_id(tag: char, i: usize) -> NodeId {
        let id = format!("{tag}{i}");
        NodeId(format!("{id:x<MAX_NODE_ID_BYTES$}"))
    }

    /// The largest context a write creates: `max_clock_entries` entries,
    /// each of the longest node id with the largest counter and timestamp.
    fn worst_context(s: &Settings) -> CausalContext {
        let mut context = CausalContext::new();
        for i in 0..s.max_clock_entries {
            context.add(&Dot::new(long_id('c', i), u64::MAX), u64::MAX);
        }
        context
    }

    /// `max_siblings` concurrent siblings of `max_value_bytes` values
    /// (none covers another's dot, so all are kept).
    fn worst_set(s: &Settings) -> SiblingSet {
        let set: SiblingSet = (0..s.max_siblings)
            .map(|i| Sibling {
                dot: Dot::new(long_id('d', i), u64::MAX),
                context: worst_context(s),
                timestamp: u64::MAX,
                value: Some(vec![0xff; s.max_value_bytes]),
                expires_at: Some(u64::MAX),
            })
            .collect();
        assert_eq!(set.len(), s.max_siblings, "every sibling is kept");
        set
    }

    /// Every message that carries one key's full sibling set (or the
    /// largest write), built around the worst case.
    fn worst_messages(s: &Settings) -> Vec<Message> {
        let key = vec![0xff; s.max_key_bytes];
        let set = worst_set(s);
        let exchange = ExchangeId {
            initiator: long_id('i', 0),
            seq: u64::MAX,
            min_n: u8::MAX,
        };
        let mut client_context = CausalContext::new();
        for i in 0..s.max_siblings * s.max_clock_entries {
            client_context.add(&Dot::new(long_id('w', i), u64::MAX), u64::MAX);
        }
        let put = ClientOp::Put {
            key: key.clone(),
            value: vec![0xff; s.max_value_bytes],
            context: client_context,
            w: Some(usize::MAX),
            pw: Some(usize::MAX),
            ttl_ms: Some(u64::MAX),
        };
        let entries = vec![(key.clone(), set.clone())];
        vec![
            Message::Replicate {
                req: u64::MAX,
                key: key.clone(),
                siblings: set.clone(),
            },
            Message::ReadReply {
                req: u64::MAX,
                result: Ok(set.clone()),
            },
            Message::Repair {
                key: key.clone(),
                siblings: set.clone(),
            },
            Message::Forward {
                req: u64::MAX,
                op: put,
                start_by: u64::MAX,
            },
            Message::ForwardReply {
                req: u64::MAX,
                result: Ok(ClientReply::Value(set.clone())),
            },
            Message::HintedReplicate {
                req: u64::MAX,
                owner: long_id('o', 0),
                key: key.clone(),
                siblings: set,
            },
            Message::HintDelivery {
                req: u64::MAX,
                entries: entries.clone(),
            },
            Message::TransferPage {
                range: TokenRange::new(u64::MAX, u64::MAX - 1),
                n: u8::MAX,
                entries: entries.clone(),
                next: Some(key.clone()),
            },
            Message::AntiEntropy {
                exchange,
                range: TokenRange::new(u64::MAX, u64::MAX - 1),
                step: AeStep::Keys {
                    entries,
                    want: Vec::new(),
                },
            },
        ]
    }

    fn assert_worst_case_fits(s: &Settings) {
        let limit = s.max_frame_bytes();
        for msg in worst_messages(s) {
            let size = encoded_len(&msg);
            println!("{:>18}: {size} of {limit} bytes", msg.kind());
            assert!(
                size <= limit,
                "a {} of {size} bytes exceeds {limit}",
                msg.kind()
            );
        }
    }

    #[test]
    fn one_full_sibling_set_of_the_largest_values_always_fits_a_frame() {
        for (value, siblings, entries) in [(1, 1, 1), (300, 2, 3), (1024, 2, 32), (65_536, 8, 4)] {
            let s = Settings {
                max_value_bytes: value,
                max_siblings: siblings,
                max_clock_entries: entries,
                ..Settings::default()
            };
            assert_worst_case_fits(&s);
        }
    }

    /// The defaults, measured once: 64 siblings of 1 MiB values.
    #[test]
    fn at_the_defaults_a_full_sibling_set_fits_the_derived_frame() {
        let s = Settings::default();
        assert_worst_case_fits(&s);
        println!(
            "defaults: max_frame_bytes {}, max_batch_bytes {}",
            s.max_frame_bytes(),
            s.max_batch_bytes()
        );
        assert!(s.max_batch_bytes() + ENVELOPE_BYTES <= s.max_frame_bytes());
    }

    #[test]
    fn settings_whose_full_sibling_set_cannot_be_framed_are_refused() {
        let s = Settings {
            max_value_bytes: usize::MAX / 2,
            ..Settings::default()
        };
        let err = s.validate().unwrap_err();
        assert!(err.contains("more than a frame can carry"), "{err}");
    }
}
