//! The membership part of `/status`: every member as this node sees it,
//! the hints it keeps, and the ownership handoff in progress; and `/ring`,
//! its cheap subset for clients. Nothing here scans the store: its keys and
//! bytes are counts the node keeps as it writes.

use crate::driver::fingerprint_text;
use crate::driver::BoxedStore;
use ringkv_core::gossip::MemberState;
use ringkv_core::gossip::{Liveness, MemberStatus};
use ringkv_core::node::{HandoffProgress, Node};
use ringkv_core::ring::Ring;
use ringkv_core::ring_view::{RingView, RingViewMember};
use ringkv_core::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One member, as `/status` and `ringkv status` show it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberReport {
    pub id: String,
    pub addr: Option<String>,
    pub http: Option<String>,
    pub zone: Option<String>,
    /// `joining`, `up`, `read-only`, `suspect`, `down`, `leaving`, `left`,
    /// `removing` or `removed`: the life cycle status, with a member's
    /// health in place of plain "member" (`read-only`: up, but its store
    /// failed, so it takes no writes until restarted; `removing`: removed
    /// by an operator, its ranges being fetched from the survivors).
    pub status: String,
    /// `up`, `suspect` or `down` by this node's failure detector, whatever
    /// the life cycle status: a joining or leaving member that died shows
    /// `joining` with `down` here.
    #[serde(default)]
    pub liveness: String,
    /// The dead member this one replaces (`ringkv node --replace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// The id whose tokens this ring member has, when not its own (a
    /// replacement's): clients need it to compute the ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_from: Option<String>,
    /// The member says in gossip that its store failed.
    #[serde(default)]
    pub read_only: bool,
    /// Live members whose suspicion of this one counts (see gossip).
    pub suspected_by: Vec<String>,
    pub generation: u64,
    /// Share of the ring this member coordinates.
    pub ownership: f64,
    /// Why this member is not used, when its cluster settings differ from
    /// this node's (`null` when they agree or are not known yet).
    #[serde(default)]
    pub settings_mismatch: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct MembershipReport {
    pub members: Vec<MemberReport>,
    /// Hints this node keeps, per owner.
    pub pending_hints: BTreeMap<String, usize>,
    /// Hints this node keeps over every owner, and their bytes.
    pub pending_hints_total: u64,
    pub pending_hint_bytes: u64,
    /// The ownership handoff this node is running, if any.
    pub handoff: Option<HandoffReport>,
    /// Keys in this node's own store, tombstones included, and their
    /// logical bytes (key plus encoded sibling set): counted as the node
    /// writes, not scanned.
    pub stored_keys: u64,
    pub stored_bytes: u64,
    /// Members that do not yet hold their share of the ring in progress:
    /// what a removal, leave or drop waits for (empty when none is).
    pub ring_change_waits_for: Vec<String>,
    /// Tombstone collection here (see `ringkv_core::gc`).
    pub gc: ringkv_core::gc::GcReport,
}

#[derive(Clone, Debug, Serialize)]
pub struct HandoffReport {
    #[serde(flatten)]
    pub progress: HandoffProgress,
    pub percent: u64,
}

impl MembershipReport {
    pub fn of(node: &Node<BoxedStore>) -> Self {
        let members = node.membership();
        let ownership = node.ring().ownership();
        let reports = members
            .members()
            .map(|m| MemberReport {
                id: m.id.to_string(),
                addr: m.addr.clone(),
                http: m.http.clone(),
                zone: m.zone.clone(),
                status: status_word(node, m).into(),
                liveness: liveness_word(members.liveness(&m.id)).into(),
                read_only: m.read_only,
                replaces: m.replaces.as_ref().map(ToString::to_string),
                tokens_from: tokens_from(node, &m.id),
                suspected_by: members
                    .suspecters(&m.id)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                generation: m.generation,
                ownership: ownership.get(&m.id).copied().unwrap_or(0.0),
                settings_mismatch: node.settings_mismatch(&m.id),
            })
            .collect();
        let (store, hints) = (node.store_counts(), node.pending_hint_totals());
        MembershipReport {
            members: reports,
            pending_hints_total: hints.keys,
            pending_hint_bytes: hints.bytes,
            pending_hints: node
                .pending_hints()
                .into_iter()
                .map(|(owner, count)| (owner.to_string(), count))
                .collect(),
            handoff: node.handoff_progress().map(|p| HandoffReport {
                progress: p.clone(),
                percent: p.percent(),
            }),
            stored_keys: store.keys,
            stored_bytes: store.bytes,
            ring_change_waits_for: node
                .ring_change_waits_for()
                .iter()
                .map(ToString::to_string)
                .collect(),
            gc: node.gc_report(),
        }
    }
}

/// The one word `ringkv status` shows for a member.
fn status_text(status: MemberStatus, liveness: Liveness) -> &'static str {
    match (status, liveness) {
        (MemberStatus::Joining, _) => "joining",
        (MemberStatus::Leaving, _) => "leaving",
        (MemberStatus::Left, _) => "left",
        (MemberStatus::Removing, _) => "removing",
        (MemberStatus::Removed, _) => "removed",
        (MemberStatus::Member, Liveness::Up) => "up",
        (MemberStatus::Member, Liveness::Suspect) => "suspect",
        (MemberStatus::Member, Liveness::Down) => "down",
    }
}

fn liveness_word(liveness: Liveness) -> &'static str {
    match liveness {
        Liveness::Up => "up",
        Liveness::Suspect => "suspect",
        Liveness::Down => "down",
    }
}

/// The word `/status`, `/ring` and `ringkv status` show for member `m`.
fn status_word(node: &Node<BoxedStore>, m: &MemberState) -> &'static str {
    match status_text(m.status, node.membership().liveness(&m.id)) {
        "up" if m.read_only => "read-only",
        text => text,
    }
}

/// The id whose tokens ring member `id` has, when not its own.
fn tokens_from(node: &Node<BoxedStore>, id: &NodeId) -> Option<String> {
    let member = node.ring().member(id)?;
    member.tokens_from.as_ref().map(ToString::to_string)
}

/// `/ring`: what a client routes by (see [`RingView`]), without the
/// per-member ownership shares and suspicions `/status` computes.
pub fn ring_view(node: &Node<BoxedStore>) -> RingView {
    RingView {
        n: node.settings().n,
        vnodes_per_node: node.ring().vnodes_per_node(),
        ring_fingerprint: fingerprint_text(node.ring().fingerprint()),
        settings_fingerprint: fingerprint_text(node.settings().cluster().fingerprint()),
        members: node
            .membership()
            .members()
            .map(|m| RingViewMember {
                id: m.id.to_string(),
                addr: m.addr.clone(),
                http: m.http.clone(),
                zone: m.zone.clone(),
                status: Some(status_word(node, m).into()),
                tokens_from: tokens_from(node, &m.id),
            })
            .collect(),
    }
}

/// One vnode as the web console draws it: where its token sits on the
/// circle (a fraction, see [`Ring::circle_fraction`]) and its owner's id;
/// serialized as `[0.1234, "n1"]`. The vnode owns the arc from the
/// previous vnode's position to its own.
#[derive(Clone, Debug, Serialize)]
pub struct VnodeAt(pub f64, pub String);

/// Every vnode of `node`'s current ring, in token order: the console
/// reads positions rather than hashing `"{id}/{i}"` itself.
pub fn vnodes(node: &Node<BoxedStore>) -> Vec<VnodeAt> {
    node.ring()
        .vnodes()
        .map(|(token, owner)| VnodeAt(Ring::circle_fraction(token), owner.to_string()))
        .collect()
}
