//! Membership by gossip: every node keeps a member list, spreads it to a
//! random peer each round, and judges who is down by agreement.
//!
//! Each member's entry is owned by that member (the one exception: an
//! operator removing a dead member, see [`removal`]): only it changes its
//! status, suspicions and sync mark, and every change (and every gossip round, as a
//! heartbeat) bumps its `version`. An entry with a higher
//! `(generation, version)` replaces an older one, so entries spread by
//! last-writer-wins without any coordination. A round is Cassandra's
//! three-way scuttlebutt exchange: the initiator sends digests, the peer
//! answers with the entries it has newer and asks for the ones it lacks, the
//! initiator sends those — traffic grows with what changed, not with the
//! cluster.
//!
//! **Failure detection** is a direct heartbeat timeout: a node expects to
//! hear *directly* from every member (any message counts; an idle member is
//! pinged every `probe_interval_ms`) and suspects one it has not heard from
//! for `suspect_after_ms`. Suspicions travel in the suspecting node's own
//! entry; a member is **down** only when `down_quorum` distinct members that
//! this node itself considers alive suspect it, so a single broken link
//! never gets a healthy node declared down.

use crate::bucket::{self, BucketProps, BucketTable};
use crate::message::{fill_batch, BatchLimits};
use crate::ring::Ring;
use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use removal::{RemoveRefusal, FENCED_GENERATION};

/// Gossip and failure-detector timing (the `[membership]` config section).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MembershipSettings {
    /// One gossip round (and own heartbeat) per interval.
    pub gossip_interval_ms: u64,
    /// A member not heard from directly for this long is pinged.
    pub probe_interval_ms: u64,
    /// A member not heard from directly for this long is suspected.
    pub suspect_after_ms: u64,
    /// Distinct live suspecters needed to mark a member down (capped at the
    /// number of other members, so small clusters can still agree).
    pub down_quorum: usize,
}

impl Default for MembershipSettings {
    fn default() -> Self {
        MembershipSettings {
            gossip_interval_ms: 1000,
            probe_interval_ms: 1000,
            suspect_after_ms: 5000,
            down_quorum: 2,
        }
    }
}

impl MembershipSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.gossip_interval_ms == 0 || self.probe_interval_ms == 0 {
            return Err(
                "membership gossip_interval_ms and probe_interval_ms must be at least 1".into(),
            );
        }
        if self.suspect_after_ms <= self.probe_interval_ms {
            return Err("membership suspect_after_ms must exceed probe_interval_ms".into());
        }
        if self.down_quorum == 0 {
            return Err("membership down_quorum must be at least 1".into());
        }
        Ok(())
    }
}

/// Where a member stands in the ring's life cycle: set by the member itself,
/// except `Removing` and `Removed`, which an operator sets for a member that
/// is never coming back (see [`removal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MemberStatus {
    /// Announced; fetching its share of the data before it owns ranges.
    Joining,
    /// Owns ranges.
    Member,
    /// Still owns ranges while the new owners fetch them.
    Leaving,
    /// Gone for good; kept so that stale gossip cannot bring it back.
    Left,
    /// Removed by an operator while dead: still in the current ring (never
    /// asked for anything) while the surviving replicas hand its ranges to
    /// their new owners, as a leaving member's would be.
    Removing,
    /// Removed by an operator, its ranges handed over; fenced for good.
    Removed,
}

impl MemberStatus {
    /// Removed by an operator (being or done): the member's generation is
    /// fenced, nothing it sends is taken, nothing is sent to it.
    pub fn is_removed(self) -> bool {
        matches!(self, MemberStatus::Removing | MemberStatus::Removed)
    }

    /// No longer a live member: it takes no part in gossip, failure
    /// detection or agreement (left, or removed).
    pub fn is_gone(self) -> bool {
        self == MemberStatus::Left || self.is_removed()
    }
}

/// One member's entry as gossip spreads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    pub id: NodeId,
    pub zone: Option<String>,
    /// Inter-node address, `host:port` (none in simulations).
    pub addr: Option<String>,
    /// HTTP address, for clients and `ringkv status`.
    pub http: Option<String>,
    pub status: MemberStatus,
    /// Bumped on every restart (persisted by the member).
    pub generation: u64,
    /// Bumped on every change and every gossip round (the heartbeat).
    pub version: u64,
    /// Members this member currently suspects.
    pub suspects: BTreeSet<NodeId>,
    /// Fingerprint of the ring whose data this member holds its share of.
    pub synced: u64,
    /// [`ClusterSettings::fingerprint`](crate::settings::ClusterSettings::fingerprint)
    /// of the settings this member runs with; 0 while not known (an entry
    /// from a config, or remembered from before members carried it). Lets
    /// every node see a member whose settings differ from its own.
    #[serde(default)]
    pub settings_fingerprint: u64,
    /// The member's store failed: it serves reads but refuses writes until
    /// restarted, so others neither coordinate writes there nor send it
    /// copies or hints (see `node::ready`).
    #[serde(default)]
    pub read_only: bool,
    /// The dead member this one replaces (`ringkv node --replace`): it
    /// takes that member's tokens, and enters the ring only once that
    /// member is removed.
    #[serde(default)]
    pub replaces: Option<NodeId>,
    /// Drawn at random when the member's data directory was created, and
    /// kept by its restarts: two lives of one id differ in it (see
    /// [`identity`]). 0 in placeholders and in entries from before it.
    #[serde(default)]
    pub incarnation: u64,
}

impl MemberState {
    /// A fresh entry: generation 0, nothing suspected, nothing synced.
    pub fn new(id: NodeId, status: MemberStatus) -> Self {
        MemberState {
            id,
            zone: None,
            addr: None,
            http: None,
            status,
            generation: 0,
            version: 0,
            suspects: BTreeSet::new(),
            synced: 0,
            settings_fingerprint: 0,
            read_only: false,
            replaces: None,
            incarnation: 0,
        }
    }

    fn stamp(&self) -> (u64, u64) {
        (self.generation, self.version)
    }
}

/// What a gossip round's first message carries per member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    pub id: NodeId,
    pub generation: u64,
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMsg {
    /// Round opener: what I know of every member, and my own entry (so a
    /// node that does not know me yet learns where to answer).
    Syn {
        digests: Vec<Digest>,
        sender: MemberState,
        /// [`BucketTable::digest`] of the sender's bucket table.
        buckets: u64,
    },
    /// Entries newer here than in your digests, and ids I want from you;
    /// my bucket table when its digest differs from yours.
    Ack {
        states: Vec<MemberState>,
        wanted: Vec<NodeId>,
        buckets: Option<BucketTable>,
    },
    /// The entries you asked for (also used to announce a departure); my
    /// bucket table when yours lacked some of it.
    Ack2 {
        states: Vec<MemberState>,
        buckets: Option<BucketTable>,
    },
    /// Direct liveness probe of an idle member.
    Ping,
    Pong,
}

/// Member entries (or digests) one gossip message carries at most; its
/// bytes are held to the batch budget as well. What is left out goes in a
/// later round: a peer missing from a digest list is answered with its
/// entry, and entries newer on either side keep being offered until taken.
pub const MEMBERS_PER_MESSAGE: usize = 1024;

impl GossipMsg {
    /// This message cut to one batch: its digests or member entries, in
    /// order, up to `limits` (never fewer than one).
    pub fn within(self, limits: BatchLimits) -> GossipMsg {
        match self {
            GossipMsg::Syn {
                digests,
                sender,
                buckets,
            } => GossipMsg::Syn {
                digests: fill_batch(digests, limits),
                sender,
                buckets,
            },
            // A table is at most `MAX_BUCKETS` small entries: it fits.
            GossipMsg::Ack {
                states,
                wanted,
                buckets,
            } => GossipMsg::Ack {
                states: fill_batch(states, limits),
                wanted: fill_batch(wanted, limits),
                buckets,
            },
            GossipMsg::Ack2 { states, buckets } => GossipMsg::Ack2 {
                states: fill_batch(states, limits),
                buckets,
            },
            other => other,
        }
    }
}

/// A member's health as this node judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Up,
    /// Suspected by fewer members than the down quorum.
    Suspect,
    Down,
}

/// The member list and failure detector of one node.
#[derive(Clone, Debug)]
pub struct Membership {
    me: NodeId,
    settings: MembershipSettings,
    members: BTreeMap<NodeId, MemberState>,
    /// When each member was last heard from directly.
    heard: BTreeMap<NodeId, Millis>,
    /// When each member was last pinged.
    pinged: BTreeMap<NodeId, Millis>,
    /// Inter-node addresses to try when no other member is known yet.
    seeds: Vec<String>,
    next_round: Option<Millis>,
    /// Set when any entry changed; taken by [`Membership::take_changed`].
    changed: bool,
    /// Counts changes (not heartbeats), so a caller can tell when to save
    /// the list.
    changes: u64,
    /// Once this node has left: the peers known to hold its departure.
    departure_seen_by: BTreeSet<NodeId>,
    /// This node started without a saved member list (see [`identity`]).
    first_life: bool,
    /// Why this node may not use its id, once gossip showed it taken.
    identity_conflict: Option<String>,
    /// The cluster's buckets (see [`crate::bucket`]), spread with rounds.
    buckets: BucketTable,
}

/// The id under which a seed address is contacted before its real id is
/// known (its answers arrive under the real one).
pub fn seed_id(addr: &str) -> NodeId {
    NodeId(format!("{SEED_PREFIX}{addr}"))
}

const SEED_PREFIX: &str = "seed:";

/// Whether `id` is a seed's pseudo-id (see [`seed_id`]), not a node's.
pub fn is_seed_id(id: &NodeId) -> bool {
    id.0.starts_with(SEED_PREFIX)
}

impl Membership {
    /// `me` is this node's own entry (with its new generation); `known` the
    /// entries remembered from before (config or persisted state).
    pub fn new(
        me: MemberState,
        known: impl IntoIterator<Item = MemberState>,
        seeds: Vec<String>,
        settings: MembershipSettings,
    ) -> Self {
        let id = me.id.clone();
        let mut members: BTreeMap<NodeId, MemberState> =
            known.into_iter().map(|m| (m.id.clone(), m)).collect();
        members.insert(id.clone(), me);
        Membership {
            me: id,
            settings,
            members,
            heard: BTreeMap::new(),
            pinged: BTreeMap::new(),
            seeds,
            next_round: None,
            changed: true,
            changes: 0,
            departure_seen_by: BTreeSet::new(),
            first_life: false,
            identity_conflict: None,
            buckets: BucketTable::default(),
        }
    }

    /// The bucket table remembered from before (see `members.json`).
    pub fn with_buckets(mut self, buckets: BucketTable) -> Self {
        self.buckets = buckets;
        self
    }

    pub fn buckets(&self) -> &BucketTable {
        &self.buckets
    }

    /// Create or change a bucket here; gossip spreads it. `now` stamps it.
    pub fn define_bucket(
        &mut self,
        now: Millis,
        name: &str,
        props: BucketProps,
        limits: &bucket::Limits,
    ) -> Result<(), bucket::Refusal> {
        self.buckets
            .define(name, props, limits, (now, self.me.clone()))?;
        self.mark_changed();
        Ok(())
    }

    /// Take a peer's newer bucket entries; a change is saved like any.
    fn absorb_buckets(&mut self, theirs: Option<BucketTable>) {
        if let Some(table) = theirs {
            self.merge_buckets(&table);
        }
    }

    /// Take the newer entries of `table` (a peer's); saved like any change.
    pub fn merge_buckets(&mut self, table: &BucketTable) {
        if self.buckets.merge(table) {
            self.mark_changed();
        }
    }

    /// Static membership: `ids` all own ranges from the start, and this node
    /// is at generation 1 (so its own entry beats the config's).
    pub fn bootstrap(me: &NodeId, ring: &Ring, settings: MembershipSettings) -> Self {
        let known = ring.members().map(|m| MemberState {
            zone: m.zone.clone(),
            ..MemberState::new(m.id.clone(), MemberStatus::Member)
        });
        let mine = MemberState {
            generation: 1,
            // One life per id, the same in every bootstrap (a restart
            // through `Node::new` is the same life).
            incarnation: 1,
            zone: ring.member(me).and_then(|m| m.zone.clone()),
            ..MemberState::new(me.clone(), MemberStatus::Member)
        };
        Membership::new(mine, known, Vec::new(), settings)
    }

    pub fn id(&self) -> &NodeId {
        &self.me
    }

    pub fn me(&self) -> &MemberState {
        &self.members[&self.me]
    }

    pub fn settings(&self) -> &MembershipSettings {
        &self.settings
    }

    /// Every entry, in id order (including departed members).
    pub fn members(&self) -> impl Iterator<Item = &MemberState> {
        self.members.values()
    }

    pub fn member(&self, id: &NodeId) -> Option<&MemberState> {
        self.members.get(id)
    }

    /// How many changes (not heartbeats) the list has seen.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn mark_changed(&mut self) {
        self.changed = true;
        self.changes += 1;
    }

    /// True once since the last call if any entry changed.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The ring that owns data now: members, and leaving or removing
    /// members until their ranges are handed over.
    pub fn current_ring(&self, vnodes: u32) -> Ring {
        self.ring_of(vnodes, |s| {
            matches!(
                s,
                MemberStatus::Member | MemberStatus::Leaving | MemberStatus::Removing
            )
        })
    }

    /// The ring once pending joins and leaves complete.
    pub fn future_ring(&self, vnodes: u32) -> Ring {
        self.ring_of(vnodes, |s| {
            matches!(s, MemberStatus::Member | MemberStatus::Joining)
        })
    }

    fn ring_of(&self, vnodes: u32, owns: impl Fn(MemberStatus) -> bool) -> Ring {
        let owners = self.members.values().filter(|m| owns(m.status));
        Ring::with_members(owners.filter_map(|m| self.ring_member(m)), vnodes)
    }

    /// Change this node's own entry (status, sync mark) and spread it.
    pub fn update_me(&mut self, change: impl FnOnce(&mut MemberState)) {
        let me = self.members.get_mut(&self.me).expect("own entry exists");
        if me.status.is_removed() {
            // Fenced: the cluster's entry for this node is final.
            return;
        }
        let before = me.clone();
        change(me);
        if *me != before {
            me.version += 1;
            self.mark_changed();
        }
    }

    /// A member's health by agreement: down when enough members this node
    /// believes alive (itself included) suspect it.
    pub fn liveness(&self, id: &NodeId) -> Liveness {
        if *id == self.me {
            return Liveness::Up;
        }
        let suspecters = self.suspecters(id).len();
        if suspecters >= self.down_quorum() {
            Liveness::Down
        } else if suspecters > 0 {
            Liveness::Suspect
        } else {
            Liveness::Up
        }
    }

    /// The members whose suspicion of `id` counts: this node, and members
    /// this node does not itself suspect (a dead node's stale entry must not
    /// vote).
    pub fn suspecters(&self, id: &NodeId) -> Vec<NodeId> {
        let mine = &self.me().suspects;
        self.live_entries()
            .filter(|m| m.id == self.me || !mine.contains(&m.id))
            .filter(|m| m.suspects.contains(id))
            .map(|m| m.id.clone())
            .collect()
    }

    fn down_quorum(&self) -> usize {
        let others = self.live_entries().count().saturating_sub(1);
        self.settings.down_quorum.min(others).max(1)
    }

    /// Live members other than this node.
    fn peers(&self) -> impl Iterator<Item = &MemberState> {
        self.live_entries().filter(|m| m.id != self.me)
    }

    fn live_entries(&self) -> impl Iterator<Item = &MemberState> {
        self.members.values().filter(|m| !m.status.is_gone())
    }

    /// Any message from `peer` proves it alive to this node.
    pub fn heard_from(&mut self, now: Millis, peer: &NodeId) {
        if self.members.contains_key(peer) {
            self.heard.insert(peer.clone(), now);
        }
    }

    /// Time passed: refresh own suspicions; when a round is due, bump the
    /// heartbeat and open a round with a random peer. `random` is a number
    /// the caller draws from its seeded generator. Returns messages to send.
    pub fn tick(&mut self, now: Millis, random: u64) -> Vec<(NodeId, GossipMsg)> {
        self.refresh_suspicions(now);
        let mut out = self.probes(now);
        if self.next_round.is_some_and(|at| now < at) {
            return out;
        }
        self.next_round = Some(now + self.settings.gossip_interval_ms);
        if self.me().status.is_removed() {
            // Fenced: nothing this node says counts any more.
            return Vec::new();
        }
        let me = self.members.get_mut(&self.me).expect("own entry exists");
        me.version += 1;
        if me.status == MemberStatus::Left {
            out.extend(self.tell_departure());
        } else if let Some(peer) = self.round_peer(random) {
            out.push((
                peer,
                GossipMsg::Syn {
                    digests: self.digests(),
                    sender: self.me().clone(),
                    buckets: self.buckets.digest(),
                },
            ));
        }
        out
    }

    /// A gossip message from `from`; returns the answers to send.
    pub fn on_gossip(
        &mut self,
        now: Millis,
        from: NodeId,
        msg: GossipMsg,
    ) -> Vec<(NodeId, GossipMsg)> {
        if self.me().status.is_removed() {
            return Vec::new();
        }
        match msg {
            GossipMsg::Syn {
                digests,
                sender,
                buckets,
            } => {
                // A node introduces only itself: `from` is the identity
                // its connection authenticated (the transport binds it to
                // the peer's certificate), so an entry claiming another
                // node (a new address for it, say) is a forgery. Dropped
                // whole, unanswered.
                if sender.id != from {
                    return Vec::new();
                }
                let other_life = self.members.get(&from);
                let other_life = other_life
                    .filter(|k| Self::lives_differ(k, &sender))
                    .cloned();
                self.absorb(now, vec![sender]);
                let (mut states, wanted) = self.compare(&digests);
                if let Some(known) = other_life {
                    // Whatever the stamps say: it must see the life we
                    // know of its id, and refuse (see `identity`).
                    states.retain(|s| s.id != from);
                    states.push(known);
                }
                let buckets = (buckets != self.buckets.digest()).then(|| self.buckets.clone());
                let ack = GossipMsg::Ack {
                    states,
                    wanted,
                    buckets,
                };
                vec![(from, ack)]
            }
            GossipMsg::Ack {
                states,
                wanted,
                buckets,
            } => {
                if self.me().status == MemberStatus::Left && !wanted.contains(&self.me) {
                    // It answered a round carrying our departure without
                    // asking for our entry: it holds it.
                    self.departure_seen_by.insert(from.clone());
                }
                self.absorb(now, states);
                // The peer sent its table because it differed from ours:
                // what we have that it lacked goes back.
                let theirs = buckets.as_ref().map(BucketTable::digest);
                self.absorb_buckets(buckets);
                let buckets = theirs
                    .filter(|t| *t != self.buckets.digest())
                    .map(|_| self.buckets.clone());
                let states = wanted
                    .iter()
                    .filter_map(|id| self.members.get(id).cloned())
                    .collect();
                vec![(from, GossipMsg::Ack2 { states, buckets })]
            }
            GossipMsg::Ack2 { states, buckets } => {
                self.absorb(now, states);
                self.absorb_buckets(buckets);
                Vec::new()
            }
            GossipMsg::Ping => vec![(from, GossipMsg::Pong)],
            GossipMsg::Pong => Vec::new(),
        }
    }

    /// A node that has left opens a round with every live peer not known
    /// to hold its departure yet; their answers tell ([`Self::on_gossip`]).
    fn tell_departure(&self) -> Vec<(NodeId, GossipMsg)> {
        self.departure_unconfirmed()
            .into_iter()
            .map(|peer| {
                let syn = GossipMsg::Syn {
                    digests: self.digests(),
                    sender: self.me().clone(),
                    buckets: self.buckets.digest(),
                };
                (peer, syn)
            })
            .collect()
    }

    /// Live peers (not down by agreement) not known to hold this node's
    /// departure: a node that has left keeps running until there are none,
    /// or a peer that missed the news would wait for it for ever.
    pub fn departure_unconfirmed(&self) -> Vec<NodeId> {
        self.peers()
            .filter(|m| {
                self.liveness(&m.id) != Liveness::Down && !self.departure_seen_by.contains(&m.id)
            })
            .map(|m| m.id.clone())
            .collect()
    }

    /// Every live member's entry, to announce this node's own news (a
    /// departure) to all at once instead of waiting for rounds.
    pub fn announce(&self) -> Vec<(NodeId, GossipMsg)> {
        let states = vec![self.me().clone()];
        self.peers()
            .map(|m| {
                (
                    m.id.clone(),
                    GossipMsg::Ack2 {
                        states: states.clone(),
                        buckets: None,
                    },
                )
            })
            .collect()
    }

    fn digests(&self) -> Vec<Digest> {
        self.members
            .values()
            .map(|m| Digest {
                id: m.id.clone(),
                generation: m.generation,
                version: m.version,
            })
            .collect()
    }

    /// Split a peer's digests into entries newer here and ids newer there.
    fn compare(&self, digests: &[Digest]) -> (Vec<MemberState>, Vec<NodeId>) {
        let theirs: BTreeMap<&NodeId, (u64, u64)> = digests
            .iter()
            .map(|d| (&d.id, (d.generation, d.version)))
            .collect();
        let newer_here = self
            .members
            .values()
            .filter(|m| theirs.get(&m.id).is_none_or(|t| m.stamp() > *t))
            .cloned()
            .collect();
        let newer_there = digests
            .iter()
            .filter(|d| {
                self.members
                    .get(&d.id)
                    .is_none_or(|m| (d.generation, d.version) > m.stamp())
            })
            .map(|d| d.id.clone())
            .collect();
        (newer_here, newer_there)
    }

    /// Take every entry newer than ours. A newer entry for this node itself
    /// comes from an earlier life whose generation was lost: outrun it.
    fn absorb(&mut self, now: Millis, states: Vec<MemberState>) {
        for state in states {
            if self.conflicts_with_me(&state) {
                continue;
            }
            let stale = self
                .members
                .get(&state.id)
                .is_some_and(|m| m.stamp() >= state.stamp());
            if stale {
                continue;
            }
            let known = self.members.get(&state.id);
            if state.id == self.me && state.status.is_removed() {
                tracing::error!("node {}: removed from the cluster by an operator", self.me);
                self.members.insert(state.id.clone(), state);
                self.mark_changed();
                continue;
            }
            if state.id != self.me && known.is_some_and(|k| Self::lives_differ(k, &state)) {
                continue;
            }
            if state.id == self.me {
                self.warn_other_life(&state);
                let generation = state.generation + 1;
                self.update_me(|me| {
                    me.generation = generation;
                    me.version = 0;
                });
                continue;
            }
            if known.is_none() {
                self.heard.insert(state.id.clone(), now);
            }
            if known.is_none_or(|m| !same_but_heartbeat(m, &state)) {
                self.mark_changed();
            }
            self.members.insert(state.id.clone(), state);
        }
    }

    /// Suspect every live member not heard from directly for too long.
    fn refresh_suspicions(&mut self, now: Millis) {
        let others: Vec<NodeId> = self.peers().map(|m| m.id.clone()).collect();
        let mut suspects = BTreeSet::new();
        for id in others {
            let heard = *self.heard.entry(id.clone()).or_insert(now);
            if now.saturating_sub(heard) >= self.settings.suspect_after_ms {
                suspects.insert(id);
            }
        }
        self.update_me(|me| me.suspects = suspects);
    }

    /// Ping members that have been silent for a probe interval.
    fn probes(&mut self, now: Millis) -> Vec<(NodeId, GossipMsg)> {
        let interval = self.settings.probe_interval_ms;
        let due: Vec<NodeId> = self
            .peers()
            .map(|m| m.id.clone())
            .filter(|id| {
                let quiet =
                    |at: Option<&Millis>| at.is_none_or(|t| now.saturating_sub(*t) >= interval);
                quiet(self.heard.get(id)) && quiet(self.pinged.get(id))
            })
            .collect();
        due.into_iter()
            .map(|id| {
                self.pinged.insert(id.clone(), now);
                (id, GossipMsg::Ping)
            })
            .collect()
    }

    /// A random live member other than this node; a seed while none is
    /// known.
    fn round_peer(&self, random: u64) -> Option<NodeId> {
        let peers: Vec<&NodeId> = self.peers().map(|m| &m.id).collect();
        if !peers.is_empty() {
            return Some(peers[(random % peers.len() as u64) as usize].clone());
        }
        if self.seeds.is_empty() {
            return None;
        }
        Some(seed_id(
            &self.seeds[(random % self.seeds.len() as u64) as usize],
        ))
    }

    /// Seed addresses, for the caller to connect their pseudo-ids.
    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }
}

/// True when two entries differ in nothing but the heartbeat counter.
fn same_but_heartbeat(a: &MemberState, b: &MemberState) -> bool {
    MemberState {
        version: b.version,
        ..a.clone()
    } == *b
}

pub mod identity;
pub mod removal;
#[cfg(test)]
mod tests;
