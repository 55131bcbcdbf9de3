//! The `/ring` document: what a client needs to route keys itself —
//! every member with its addresses, zone and status, the vnodes per node,
//! N, and the fingerprints to check its own ring against — defined once,
//! for the server that writes it and the client that reads it.
//!
//! `/status` carries the same fields under the same names, so a client
//! reads either with this type (an older node has no `/ring`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingView {
    /// Replicas per key.
    pub n: usize,
    /// Tokens each member's id hashes to (see [`crate::ring::Ring`]).
    pub vnodes_per_node: u32,
    /// [`Ring::fingerprint`](crate::ring::Ring::fingerprint) of the node's
    /// current ring, 16 hex digits.
    pub ring_fingerprint: String,
    /// The fingerprint of the node's cluster settings, 16 hex digits: the
    /// same on every node of a cluster.
    #[serde(default)]
    pub settings_fingerprint: String,
    pub members: Vec<RingViewMember>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RingViewMember {
    pub id: String,
    /// `host:port` of its inter-node transport.
    #[serde(default)]
    pub addr: Option<String>,
    /// `host:port` of its HTTP API.
    #[serde(default)]
    pub http: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    /// `joining`, `up`, `read-only`, `suspect`, `down`, `leaving`, `left`,
    /// `removing` or `removed`.
    #[serde(default)]
    pub status: Option<String>,
    /// The id whose tokens this ring member has, when not its own (a
    /// replacement's, see [`RingMember::tokens_from`](crate::ring::RingMember)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_from: Option<String>,
}

impl RingViewMember {
    /// `joining`, `left` and `removed` members own no ranges; every other
    /// status (up, read-only, suspect, down, leaving, removing) does.
    pub fn owns_ranges(&self) -> bool {
        !matches!(self.status.as_deref(), Some("joining" | "left" | "removed"))
    }
}
