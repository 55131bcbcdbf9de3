//! The consistent-hash ring: which physical nodes hold a key.
//!
//! As in Dynamo, every physical node owns many *virtual nodes* (vnodes):
//! points ("tokens") on a 64-bit hash circle. A key hashes to a token; the
//! owner of the first vnode clockwise at or after it is the key's
//! *coordinator*, and the walk continues clockwise, skipping physical nodes
//! already chosen, to build the key's *preference list* of N replicas.
//! Many vnodes per node even out the share of keys each node gets, and a
//! joining node takes small slices from everyone instead of one big slice
//! from a single neighbour.
//!
//! Every node must compute the same ring from the same membership, so the
//! ring is a pure function of the member set: tokens are derived from node
//! ids with xxh3 (stable across processes, platforms and Rust versions; std's
//! `DefaultHasher` is not), and token collisions are settled by node id, not
//! by join order.

use crate::range::TokenRange;
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use xxhash_rust::xxh3::xxh3_64;

/// A position on the hash circle.
pub type Token = u64;

/// Version of the placement scheme: how a node id hashes to its vnode
/// tokens, how a key hashes to a token, and how a preference list is walked
/// from it (zones, ties). Part of the cluster settings fingerprint
/// ([`crate::settings::ClusterSettings`]): nodes that place keys differently
/// must never replicate together. Bump it with any change to that code.
pub const PLACEMENT_VERSION: u32 = 1;

/// Vnodes per node used by [`Ring::default`]: enough that each node's share
/// of the key space stays within a few percent of even for small clusters.
pub const DEFAULT_VNODES_PER_NODE: u32 = 128;

/// The whole circle, `2^64` tokens, as a float for share computations.
const CIRCLE: f64 = 18_446_744_073_709_551_616.0;

/// A physical node as the ring sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingMember {
    pub id: NodeId,
    /// Failure domain (rack, availability zone). Replicas are spread across
    /// zones first; all zoneless members share one "no zone" domain.
    pub zone: Option<String>,
    /// The id whose tokens this member takes, when not its own: a node
    /// that replaced a dead one (`ringkv node --replace`, as Cassandra's
    /// `replace_address`) sits exactly where the dead one sat, so it owns
    /// exactly the dead node's ranges and no other key moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_from: Option<NodeId>,
}

impl RingMember {
    /// A member without a zone.
    pub fn new(id: impl Into<NodeId>) -> Self {
        RingMember {
            id: id.into(),
            zone: None,
            tokens_from: None,
        }
    }

    /// A member in failure domain `zone`.
    pub fn zoned(id: impl Into<NodeId>, zone: impl Into<String>) -> Self {
        RingMember {
            zone: Some(zone.into()),
            ..RingMember::new(id)
        }
    }

    /// The id its tokens hash from: its own, or the replaced node's.
    pub fn token_id(&self) -> &NodeId {
        self.tokens_from.as_ref().unwrap_or(&self.id)
    }
}

/// A member plus every token its id hashes to, won or not: remembering the
/// claims makes `remove` cheap and lets it hand contested tokens back.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    info: RingMember,
    /// Sorted, deduplicated.
    claims: Vec<Token>,
}

/// The ring: vnode tokens, their owners, and the members behind them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Token → owner of the vnode at that token.
    vnodes: BTreeMap<Token, NodeId>,
    /// Token → other members whose ids also hash to it and lost the tie to
    /// the owner (a lower id wins). Practically always empty; kept so that
    /// removing the winner hands the token to the next-lowest claimant and
    /// the ring stays independent of the order of adds and removes.
    shadowed: BTreeMap<Token, BTreeSet<NodeId>>,
    members: BTreeMap<NodeId, Member>,
    /// Distinct zones among members (`None` counting as one), cached so the
    /// preference walk knows when no unrepresented zone can turn up.
    zone_count: usize,
    vnodes_per_node: u32,
    /// Cached [`Ring::fingerprint`], recomputed whenever members change.
    fingerprint: u64,
}

impl Default for Ring {
    fn default() -> Self {
        Ring::new(DEFAULT_VNODES_PER_NODE)
    }
}

impl Ring {
    /// An empty ring. `vnodes_per_node` is raised to at least 1: a member
    /// without vnodes could never be chosen, silently shrinking every
    /// preference list.
    pub fn new(vnodes_per_node: u32) -> Ring {
        let mut ring = Ring {
            vnodes: BTreeMap::new(),
            shadowed: BTreeMap::new(),
            members: BTreeMap::new(),
            zone_count: 0,
            vnodes_per_node: vnodes_per_node.max(1),
            fingerprint: 0,
        };
        ring.summarize();
        ring
    }

    pub fn with_members(
        members: impl IntoIterator<Item = RingMember>,
        vnodes_per_node: u32,
    ) -> Ring {
        let mut ring = Ring::new(vnodes_per_node);
        for member in members {
            ring.add(member);
        }
        ring
    }

    pub fn vnodes_per_node(&self) -> u32 {
        self.vnodes_per_node
    }

    /// Adds `member`, or replaces the member with the same id (e.g. to change
    /// its zone). Its tokens are `xxh3_64("{id}/{i}")` for `i` in
    /// `0..vnodes_per_node`, `id` being [`RingMember::token_id`], so every
    /// process derives the same ring.
    pub fn add(&mut self, member: RingMember) {
        let claims = vnode_tokens(member.token_id(), self.vnodes_per_node);
        self.insert(member, claims);
    }

    /// `add` with explicit tokens; lets tests force token collisions.
    fn insert(&mut self, member: RingMember, mut claims: Vec<Token>) {
        claims.sort_unstable();
        claims.dedup();
        self.remove(&member.id);
        let id = member.id.clone();
        for &token in &claims {
            match self.vnodes.entry(token) {
                Entry::Vacant(slot) => {
                    slot.insert(id.clone());
                }
                Entry::Occupied(mut slot) => {
                    let loser = if id < *slot.get() {
                        slot.insert(id.clone())
                    } else {
                        id.clone()
                    };
                    self.shadowed.entry(token).or_default().insert(loser);
                }
            }
        }
        self.members.insert(
            id,
            Member {
                info: member,
                claims,
            },
        );
        self.summarize();
    }

    /// Removes the member (no-op if absent). Its vnodes disappear, so its
    /// keys fall to the next vnodes clockwise and nobody else's keys move.
    pub fn remove(&mut self, id: &NodeId) {
        let Some(gone) = self.members.remove(id) else {
            return;
        };
        for token in gone.claims {
            let losers = self.shadowed.get_mut(&token);
            if self.vnodes.get(&token) == Some(id) {
                match losers.and_then(|l| l.pop_first()) {
                    Some(heir) => self.vnodes.insert(token, heir),
                    None => self.vnodes.remove(&token),
                };
            } else if let Some(losers) = losers {
                losers.remove(id);
            }
            if self.shadowed.get(&token).is_some_and(|l| l.is_empty()) {
                self.shadowed.remove(&token);
            }
        }
        self.summarize();
    }

    /// Recompute what is derived from the member set: the zone count and
    /// the fingerprint.
    fn summarize(&mut self) {
        let zones: BTreeSet<Option<&str>> = self
            .members
            .values()
            .map(|m| m.info.zone.as_deref())
            .collect();
        self.zone_count = zones.len();
        self.fingerprint = fingerprint_of(self.vnodes_per_node, self.members());
    }

    /// A 64-bit digest of everything placement depends on (vnodes per node
    /// and each member's id and zone). Two rings with the same fingerprint
    /// place every key the same way, so a client that computes the ring
    /// itself can check it agrees with the nodes, and notice when their
    /// ring changed, by comparing one number.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn contains(&self, id: &NodeId) -> bool {
        self.members.contains_key(id)
    }

    pub fn member(&self, id: &NodeId) -> Option<&RingMember> {
        self.members.get(id).map(|m| &m.info)
    }

    /// Members sorted by id.
    pub fn members(&self) -> impl Iterator<Item = &RingMember> {
        self.members.values().map(|m| &m.info)
    }

    /// Number of physical nodes.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Vnodes `id` actually owns: `vnodes_per_node` unless it lost a token
    /// collision (astronomically rare); 0 for non-members.
    pub fn vnode_count(&self, id: &NodeId) -> usize {
        self.members.get(id).map_or(0, |m| {
            m.claims
                .iter()
                .filter(|t| self.vnodes.get(t) == Some(id))
                .count()
        })
    }

    /// Every vnode, `(token, owner)` in token order: the ring as the web
    /// console draws it.
    pub fn vnodes(&self) -> impl Iterator<Item = (Token, &NodeId)> {
        self.vnodes.iter().map(|(token, owner)| (*token, owner))
    }

    /// Where `token` sits on the circle, as a fraction of it in `[0, 1]`
    /// (the top tokens round to 1.0, the same point as 0).
    pub fn circle_fraction(token: Token) -> f64 {
        token as f64 / CIRCLE
    }

    /// Where `key` sits on the circle.
    pub fn key_token(key: &[u8]) -> Token {
        xxh3_64(key)
    }

    /// The `n` nodes that hold `key`, coordinator first (see
    /// [`preference_list_for_token`](Ring::preference_list_for_token)).
    pub fn preference_list(&self, key: &[u8], n: usize) -> Vec<NodeId> {
        self.preference_list_for_token(Ring::key_token(key), n)
    }

    /// `min(n, len())` distinct nodes for `token`. The coordinator is the
    /// owner of the first vnode clockwise at or after `token` (wrapping past
    /// `u64::MAX`). The walk then continues clockwise and prefers nodes whose
    /// zone is not yet represented, so replicas survive the loss of a whole
    /// zone; nodes passed over only for their zone are kept in clockwise
    /// order and fill the list when there are fewer zones than `n`. With no
    /// zones at all this is simply the next `n` distinct nodes clockwise.
    pub fn preference_list_for_token(&self, token: Token, n: usize) -> Vec<NodeId> {
        let n = n.min(self.members.len());
        if n == 0 {
            return Vec::new();
        }
        let mut chosen: Vec<&NodeId> = Vec::with_capacity(n);
        let mut zones: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut skipped: Vec<&NodeId> = Vec::new();
        let clockwise = self.vnodes.range(token..).chain(self.vnodes.range(..token));
        for (_, id) in clockwise {
            if chosen.contains(&id) || skipped.contains(&id) {
                continue;
            }
            let zone = self.members[id].info.zone.as_deref();
            if zones.contains(&zone) {
                skipped.push(id);
            } else {
                zones.push(zone);
                chosen.push(id);
            }
            // Once every zone is represented, any node found later would
            // only queue behind those already skipped: stop as soon as the
            // list can be filled.
            let all_zones = zones.len() == self.zone_count;
            if chosen.len() == n || (all_zones && chosen.len() + skipped.len() >= n) {
                break;
            }
        }
        chosen.into_iter().chain(skipped).take(n).cloned().collect()
    }

    /// Each member's share of the token space it coordinates: the vnode at
    /// token `t` coordinates `(previous token, t]`. Shares sum to 1.0 (up to
    /// float rounding); an empty ring yields an empty map.
    pub fn ownership(&self) -> BTreeMap<NodeId, f64> {
        let mut widths: BTreeMap<&NodeId, u128> = self.members.keys().map(|id| (id, 0)).collect();
        for range in self.ranges() {
            let owner = &self.vnodes[&range.end];
            *widths.get_mut(owner).expect("vnode owners are members") += range.len();
        }
        widths
            .into_iter()
            .map(|(id, w)| (id.clone(), w as f64 / CIRCLE))
            .collect()
    }

    /// Every vnode's range `(previous token, token]`, in token order. Keys of
    /// one range share a preference list (that of the range's end token).
    pub fn ranges(&self) -> Vec<TokenRange> {
        let Some((&last, _)) = self.vnodes.last_key_value() else {
            return Vec::new();
        };
        let mut prev = last;
        self.vnodes
            .keys()
            .map(|&token| {
                let range = TokenRange::new(prev, token);
                prev = token;
                range
            })
            .collect()
    }

    /// The range holding `token`, or `None` on an empty ring.
    pub fn range_of(&self, token: Token) -> Option<TokenRange> {
        let end = *self
            .vnodes
            .range(token..)
            .next()
            .or_else(|| self.vnodes.iter().next())?
            .0;
        let start = *self
            .vnodes
            .range(..end)
            .next_back()
            .or_else(|| self.vnodes.iter().next_back())?
            .0;
        Some(TokenRange::new(start, end))
    }
}

/// xxh3 over an unambiguous encoding of the placement inputs: members come
/// sorted by id, ids, zones and token ids are length-prefixed, and a tag
/// byte says which optional fields follow (so no zone differs from an
/// empty one).
fn fingerprint_of<'a>(vnodes: u32, members: impl Iterator<Item = &'a RingMember>) -> u64 {
    fn field(bytes: &mut Vec<u8>, text: &str) {
        bytes.extend((text.len() as u64).to_le_bytes());
        bytes.extend(text.as_bytes());
    }
    let mut bytes = vnodes.to_le_bytes().to_vec();
    for member in members {
        field(&mut bytes, member.id.as_str());
        // Bit 0: a zone follows; bit 1: a token id follows (absent before
        // replacement existed, so older fingerprints are unchanged).
        let tag = u8::from(member.zone.is_some()) | (u8::from(member.tokens_from.is_some()) << 1);
        bytes.push(tag);
        if let Some(zone) = &member.zone {
            field(&mut bytes, zone);
        }
        if let Some(from) = &member.tokens_from {
            field(&mut bytes, from.as_str());
        }
    }
    xxh3_64(&bytes)
}

/// The tokens a node's id hashes to, sorted and deduplicated.
fn vnode_tokens(id: &NodeId, vnodes: u32) -> Vec<Token> {
    let mut buf = String::with_capacity(id.as_str().len() + 11);
    let mut tokens: Vec<Token> = (0..vnodes)
        .map(|i| {
            buf.clear();
            write!(buf, "{id}/{i}").expect("writing to a String cannot fail");
            xxh3_64(buf.as_bytes())
        })
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(i: usize) -> NodeId {
        NodeId::new(format!("node-{i}"))
    }

    fn plain(k: usize) -> Vec<RingMember> {
        (0..k).map(|i| RingMember::new(node(i))).collect()
    }

    fn keys(count: usize) -> impl Iterator<Item = Vec<u8>> {
        (0..count).map(|i| format!("key-{i}").into_bytes())
    }

    fn coordinator(ring: &Ring, key: &[u8]) -> NodeId {
        ring.preference_list(key, 1).remove(0)
    }

    fn zone_of<'a>(ring: &'a Ring, id: &NodeId) -> Option<&'a str> {
        ring.member(id).unwrap().zone.as_deref()
    }

    /// The rules, spelled out naively: scan every vnode to list distinct
    /// owners clockwise, take the first node of each unseen zone, then fill
    /// with the rest in clockwise order.
    fn brute_force(ring: &Ring, token: Token, n: usize) -> Vec<NodeId> {
        let vnodes: Vec<(Token, NodeId)> =
            ring.vnodes.iter().map(|(t, id)| (*t, id.clone())).collect();
        let start = vnodes.iter().position(|(t, _)| *t >= token).unwrap_or(0);
        let mut distinct: Vec<NodeId> = Vec::new();
        for i in 0..vnodes.len() {
            let id = &vnodes[(start + i) % vnodes.len()].1;
            if !distinct.contains(id) {
                distinct.push(id.clone());
            }
        }
        let mut list: Vec<NodeId> = Vec::new();
        let mut zones: Vec<Option<&str>> = Vec::new();
        for id in &distinct {
            let zone = zone_of(ring, id);
            if list.len() < n && !zones.contains(&zone) {
                zones.push(zone);
                list.push(id.clone());
            }
        }
        for id in &distinct {
            if list.len() < n && !list.contains(id) {
                list.push(id.clone());
            }
        }
        list
    }

    fn arb_ring() -> impl Strategy<Value = Ring> {
        // Zone index 0 means "no zone".
        proptest::collection::vec(0usize..4, 1..12).prop_map(|zones| {
            let members = zones.into_iter().enumerate().map(|(i, z)| match z {
                0 => RingMember::new(node(i)),
                z => RingMember::zoned(node(i), format!("z{z}")),
            });
            Ring::with_members(members, 32)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn always_n_distinct_nodes_when_enough_exist(
            k in 1usize..12,
            key in proptest::collection::vec(any::<u8>(), 0..24),
            n in 1usize..5,
        ) {
            let ring = Ring::with_members(plain(k), 32);
            let list = ring.preference_list(&key, n);
            prop_assert_eq!(list.len(), n.min(k));
            let distinct: BTreeSet<&NodeId> = list.iter().collect();
            prop_assert_eq!(distinct.len(), list.len());
        }

        #[test]
        fn always_n_distinct_nodes_with_zones(
            ring in arb_ring(),
            key in proptest::collection::vec(any::<u8>(), 0..24),
            n in 1usize..5,
        ) {
            let list = ring.preference_list(&key, n);
            prop_assert_eq!(list.len(), n.min(ring.len()));
            let distinct: BTreeSet<&NodeId> = list.iter().collect();
            prop_assert_eq!(distinct.len(), list.len());
        }

        #[test]
        fn coordinator_is_owner_of_first_vnode_clockwise(
            ring in arb_ring(),
            token in any::<u64>(),
            pick in any::<usize>(),
        ) {
            // Random tokens, plus the edges: exactly on a vnode, just after
            // one, and the wrap-around extremes.
            let on = *ring.vnodes.keys().nth(pick % ring.vnodes.len()).unwrap();
            for t in [token, on, on.wrapping_add(1), 0, u64::MAX] {
                let expected = brute_force(&ring, t, 1);
                prop_assert_eq!(ring.preference_list_for_token(t, 1), expected);
            }
        }

        #[test]
        fn preference_list_matches_brute_force(
            ring in arb_ring(),
            token in any::<u64>(),
            n in 1usize..6,
        ) {
            prop_assert_eq!(ring.preference_list_for_token(token, n), brute_force(&ring, token, n));
        }

        #[test]
        fn ring_depends_only_on_member_set(
            k in 1usize..8,
            extra in 0usize..8,
            rotate in any::<usize>(),
        ) {
            let members = plain(k);
            let reference = Ring::with_members(members.clone(), 16);
            let mut shuffled = members.clone();
            shuffled.rotate_left(rotate % k);
            let mut ring = Ring::with_members(shuffled, 16);
            ring.add(RingMember::new(node(100 + extra)));
            ring.add(members[0].clone()); // re-adding replaces
            ring.remove(&node(100 + extra));
            prop_assert_eq!(ring, reference);
        }
    }

    #[test]
    fn zoneless_cluster_is_plain_distinct_node_walk() {
        let ring = Ring::with_members(plain(7), 64);
        for key in keys(500) {
            let token = Ring::key_token(&key);
            let list = ring.preference_list(&key, 4);
            // Next 4 distinct owners clockwise, ignoring zones entirely.
            let mut walk: Vec<NodeId> = Vec::new();
            for (_, id) in ring.vnodes.range(token..).chain(ring.vnodes.range(..token)) {
                if !walk.contains(id) {
                    walk.push(id.clone());
                }
            }
            assert_eq!(list, walk[..4]);
        }
    }

    #[test]
    fn fingerprint_follows_exactly_the_placement_inputs() {
        let base = || Ring::with_members(plain(3), 16);
        let fingerprint = base().fingerprint();
        // Order of adds and a remove/re-add round trip do not matter.
        let mut reordered = Ring::with_members(plain(3).into_iter().rev(), 16);
        assert_eq!(reordered.fingerprint(), fingerprint);
        reordered.remove(&node(1));
        assert_ne!(reordered.fingerprint(), fingerprint);
        reordered.add(RingMember::new(node(1)));
        assert_eq!(reordered.fingerprint(), fingerprint);
        // Every input changes it: vnodes, a member, a zone, no zone vs "".
        assert_ne!(Ring::with_members(plain(3), 17).fingerprint(), fingerprint);
        assert_ne!(Ring::with_members(plain(4), 16).fingerprint(), fingerprint);
        let mut zoned = base();
        zoned.add(RingMember::zoned(node(0), ""));
        assert_ne!(zoned.fingerprint(), fingerprint);
        zoned.add(RingMember::zoned(node(0), "a"));
        assert_ne!(zoned.fingerprint(), fingerprint);
        // Taking another id's tokens changes it too.
        let mut replaced = base();
        replaced.add(RingMember {
            tokens_from: Some(node(9)),
            ..RingMember::new(node(0))
        });
        assert_ne!(replaced.fingerprint(), fingerprint);
        // Pinned (the dev cluster's ring): clients of other builds compare
        // it with the nodes'.
        let dev = Ring::with_members(["n1", "n2", "n3"].map(RingMember::new), 128);
        assert_eq!(dev.fingerprint(), 0xc445794a0a2c6086);
    }

    #[test]
    fn a_replacement_owns_exactly_the_replaced_members_ranges() {
        let before = Ring::with_members(plain(4), 16);
        let mut after = before.clone();
        after.remove(&node(2));
        after.add(RingMember {
            tokens_from: Some(node(2)),
            ..RingMember::new("new")
        });
        let new = NodeId::from("new");
        for key in 0..2_000u32 {
            let key = key.to_le_bytes();
            let old: Vec<NodeId> = before
                .preference_list(&key, 3)
                .into_iter()
                .map(|m| if m == node(2) { new.clone() } else { m })
                .collect();
            assert_eq!(after.preference_list(&key, 3), old);
        }
    }

    #[test]
    fn deterministic_across_processes_golden() {
        // Pins the hash function and the token derivation: if these change,
        // nodes running different builds would disagree about placement.
        assert_eq!(Ring::key_token(b"hello"), 0x9555e8555c62dcfd);
        assert_eq!(vnode_tokens(&NodeId::from("a"), 1), vec![xxh3_64(b"a/0")]);

        let members = [
            RingMember::zoned("alpha", "east"),
            RingMember::zoned("bravo", "east"),
            RingMember::zoned("charlie", "west"),
            RingMember::zoned("delta", "west"),
            RingMember::new("echo"),
        ];
        let ring = Ring::with_members(members, 64);
        // n = 4 with three zones (east, west, none): three zone-distinct
        // replicas, then the first node skipped for its zone.
        let golden: [(&str, [&str; 4]); 5] = [
            ("user:1", ["charlie", "alpha", "echo", "bravo"]),
            ("user:2", ["bravo", "echo", "charlie", "alpha"]),
            ("cart/42", ["echo", "alpha", "charlie", "bravo"]),
            ("", ["alpha", "echo", "charlie", "bravo"]),
            ("\u{1f511}", ["charlie", "alpha", "echo", "delta"]),
        ];
        for (key, expected) in golden {
            let list = ring.preference_list(key.as_bytes(), 4);
            let list: Vec<&str> = list.iter().map(NodeId::as_str).collect();
            assert_eq!(list, expected, "key {key:?}");
        }
    }

    #[test]
    fn adding_a_node_moves_about_one_over_k_plus_one_of_keys_all_to_it() {
        // The newcomer's share with 128 vnodes has a relative spread of
        // about 1/sqrt(128) ~ 9%. Measured (20,000 keys) moved fraction vs
        // 1/(K+1), relative: K=3 -9.0%, 4 -5.9%, 5 -20.7%, 6 -1.6%,
        // 7 -9.6%, 8 +1.7%. Tolerance +-35% (about 4 sigma): loose enough
        // to survive a change of node names, tight enough to catch a ring
        // that moves half the keys or none.
        const TOLERANCE: f64 = 0.35;
        const KEYS: usize = 20_000;
        for k in 3..=8 {
            let before = Ring::with_members(plain(k), 128);
            let mut after = before.clone();
            let newcomer = node(k);
            after.add(RingMember::new(newcomer.clone()));
            let mut moved = 0;
            for key in keys(KEYS) {
                let (old, new) = (
                    before.preference_list(&key, 3),
                    after.preference_list(&key, 3),
                );
                if old[0] != new[0] {
                    moved += 1;
                    assert_eq!(new[0], newcomer, "key moved between old nodes");
                }
                // Replicas don't churn either: the newcomer is inserted
                // somewhere and the old order is otherwise kept.
                let kept: Vec<&NodeId> = new.iter().filter(|id| **id != newcomer).collect();
                let old_prefix: Vec<&NodeId> = old.iter().take(kept.len()).collect();
                assert_eq!(kept, old_prefix);
            }
            let fraction = moved as f64 / KEYS as f64;
            let ideal = 1.0 / (k + 1) as f64;
            println!(
                "k={k} moved={fraction:.4} ideal={ideal:.4} rel={:+.3}",
                fraction / ideal - 1.0
            );
            assert!(
                (fraction / ideal - 1.0).abs() < TOLERANCE,
                "k={k}: moved {fraction}, ideal {ideal}"
            );
        }
    }

    #[test]
    fn spread_is_even_with_128_vnodes() {
        // Each node's share deviates from 1/K by about 1/sqrt(128) ~ 9%
        // (relative), so the worst of K nodes grows with K. Measured worst
        // relative deviation, ownership / share of 20,000 keys:
        // K=2 1.3%/1.7%, 3 1.7%/2.5%, 4 9.2%/9.0%, 5 8.6%/8.3%,
        // 6 20.2%/20.7%, 8 23.7%/22.3%, 12 15.8%/17.7%, 16 21.6%/18.3%.
        // Tolerance +-30% for both (the key share adds ~3% sampling noise).
        const TOLERANCE: f64 = 0.30;
        const KEYS: usize = 20_000;
        for k in [2, 3, 4, 5, 6, 8, 12, 16] {
            let ring = Ring::with_members(plain(k), 128);
            let ideal = 1.0 / k as f64;
            let mut counts: BTreeMap<NodeId, usize> = BTreeMap::new();
            for key in keys(KEYS) {
                *counts.entry(coordinator(&ring, &key)).or_default() += 1;
            }
            let ownership = ring.ownership();
            let mut worst_own: f64 = 0.0;
            let mut worst_keys: f64 = 0.0;
            for id in ring.members().map(|m| &m.id) {
                let own = ownership[id] / ideal - 1.0;
                let got = counts.get(id).copied().unwrap_or(0) as f64 / KEYS as f64 / ideal - 1.0;
                worst_own = worst_own.max(own.abs());
                worst_keys = worst_keys.max(got.abs());
            }
            println!(
                "k={k} worst ownership dev={worst_own:.3} worst key-share dev={worst_keys:.3}"
            );
            assert!(worst_own < TOLERANCE, "k={k}: ownership off by {worst_own}");
            assert!(
                worst_keys < TOLERANCE,
                "k={k}: key share off by {worst_keys}"
            );
        }
    }

    #[test]
    fn zones_six_nodes_three_zones_get_three_zones() {
        let members = (0..6).map(|i| RingMember::zoned(node(i), format!("zone-{}", i % 3)));
        let ring = Ring::with_members(members, 64);
        for key in keys(2_000) {
            let list = ring.preference_list(&key, 3);
            assert_eq!(list[0], coordinator(&ring, &key));
            let zones: BTreeSet<Option<&str>> = list.iter().map(|id| zone_of(&ring, id)).collect();
            assert_eq!(zones.len(), 3, "{list:?}");
        }
    }

    #[test]
    fn zones_four_nodes_two_zones_cover_both_zones() {
        let members = (0..4).map(|i| RingMember::zoned(node(i), format!("zone-{}", i % 2)));
        let ring = Ring::with_members(members, 64);
        for key in keys(2_000) {
            let list = ring.preference_list(&key, 3);
            assert_eq!(list[0], coordinator(&ring, &key));
            let distinct: BTreeSet<&NodeId> = list.iter().collect();
            assert_eq!(distinct.len(), 3);
            let zones: BTreeSet<Option<&str>> = list.iter().map(|id| zone_of(&ring, id)).collect();
            assert_eq!(zones.len(), 2, "{list:?}");
        }
    }

    #[test]
    fn removed_node_never_appears_and_ownership_sums_to_one() {
        let mut ring = Ring::with_members(plain(6), 128);
        let gone = node(2);
        ring.remove(&gone);
        assert!(!ring.contains(&gone));
        assert_eq!(ring.len(), 5);
        assert_eq!(ring.vnode_count(&gone), 0);
        for key in keys(5_000) {
            assert!(!ring.preference_list(&key, 5).contains(&gone));
        }
        let ownership = ring.ownership();
        assert!(!ownership.contains_key(&gone));
        assert_eq!(ownership.len(), 5);
        assert!((ownership.values().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn ownership_sums_to_one() {
        for k in 1..10 {
            for vnodes in [1, 3, 128] {
                let ring = Ring::with_members(plain(k), vnodes);
                let ownership = ring.ownership();
                assert_eq!(ownership.len(), k);
                assert!(
                    (ownership.values().sum::<f64>() - 1.0).abs() < 1e-9,
                    "k={k}"
                );
            }
        }
        // A single vnode owns the whole circle, not a zero-width arc.
        let single = Ring::with_members(plain(1), 1);
        assert_eq!(single.ownership()[&node(0)], 1.0);
        assert!(Ring::new(8).ownership().is_empty());
    }

    /// The console draws the ring from `vnodes`: every vnode once, in token
    /// order, each owner with its `vnode_count`, inside the circle.
    #[test]
    fn vnodes_list_every_token_in_order_with_its_owner() {
        let ring = Ring::with_members(plain(3), 16);
        let vnodes: Vec<(Token, &NodeId)> = ring.vnodes().collect();
        assert_eq!(vnodes.len(), 48);
        assert!(vnodes.windows(2).all(|w| w[0].0 < w[1].0));
        for k in 0..3 {
            let owned = vnodes.iter().filter(|(_, o)| **o == node(k)).count();
            assert_eq!(owned, ring.vnode_count(&node(k)));
        }
        for (token, _) in vnodes {
            assert!((0.0..1.0).contains(&Ring::circle_fraction(token)));
        }
        assert_eq!(Ring::circle_fraction(u64::MAX / 2 + 1), 0.5);
    }

    #[test]
    fn empty_ring_and_edge_sizes() {
        let ring = Ring::default();
        assert!(ring.is_empty());
        assert!(ring.preference_list(b"k", 3).is_empty());
        let ring = Ring::with_members(plain(3), 0); // clamped to 1 vnode
        assert_eq!(ring.vnode_count(&node(0)), 1);
        assert!(ring.preference_list(b"k", 0).is_empty());
        assert_eq!(ring.preference_list(b"k", 10).len(), 3);
    }

    #[test]
    fn re_adding_replaces_member() {
        let mut ring = Ring::with_members(plain(3), 16);
        ring.add(RingMember::zoned(node(1), "west"));
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.vnode_count(&node(1)), 16);
        assert_eq!(ring.member(&node(1)).unwrap().zone.as_deref(), Some("west"));
        let ids: Vec<&NodeId> = ring.members().map(|m| &m.id).collect();
        assert_eq!(ids, [&node(0), &node(1), &node(2)]);
    }

    #[test]
    fn token_collision_lower_id_wins_regardless_of_order() {
        let (a, b) = (RingMember::new("a"), RingMember::new("b"));
        let build = |first: &RingMember, second: &RingMember| {
            let mut ring = Ring::new(2);
            let tokens = |m: &RingMember| {
                if m.id.as_str() == "a" {
                    vec![10, 20]
                } else {
                    vec![20, 30]
                }
            };
            ring.insert(first.clone(), tokens(first));
            ring.insert(second.clone(), tokens(second));
            ring
        };
        let ring = build(&a, &b);
        assert_eq!(ring, build(&b, &a));
        assert_eq!(
            ring.preference_list_for_token(15, 2),
            [a.id.clone(), b.id.clone()]
        );
        assert_eq!(ring.vnode_count(&a.id), 2);
        assert_eq!(ring.vnode_count(&b.id), 1);

        // The loser gets the token back when the winner leaves.
        let mut ring = ring;
        ring.remove(&a.id);
        assert_eq!(ring.vnodes.get(&20), Some(&b.id));
        assert_eq!(ring.vnode_count(&b.id), 2);
        assert!(ring.shadowed.is_empty());
        // And removing the loser just forgets its claim.
        let mut ring = build(&a, &b);
        ring.remove(&b.id);
        assert_eq!(ring.vnodes.get(&20), Some(&a.id));
        assert!(ring.shadowed.is_empty());
    }

    #[test]
    fn ranges_tile_the_circle_and_range_of_agrees_with_the_coordinator() {
        let ring = Ring::with_members(
            (1..=4).map(|i| RingMember::new(format!("n{i}").as_str())),
            16,
        );
        let ranges = ring.ranges();
        assert_eq!(ranges.len(), 64);
        assert_eq!(ranges.iter().map(|r| r.len()).sum::<u128>(), 1u128 << 64);
        for i in 0..500u32 {
            let key = format!("key{i}");
            let token = Ring::key_token(key.as_bytes());
            let range = ring.range_of(token).unwrap();
            assert!(range.contains(token));
            assert!(ranges.contains(&range));
            let pref = ring.preference_list(key.as_bytes(), 3);
            assert_eq!(pref, ring.preference_list_for_token(range.end, 3));
        }
        let single = Ring::with_members([RingMember::new("solo")], 1);
        assert_eq!(single.ranges().len(), 1);
        assert_eq!(single.range_of(0).unwrap().len(), 1u128 << 64);
    }
}
