//! Every message that crosses the network between nodes, and the client
//! operations a node accepts from its front ends.
//!
//! The wire form is postcard behind a handshake that carries the protocol
//! version (see the server's transport), so this enum may only grow at the
//! end: new variants are appended, existing ones never change shape within a
//! protocol version.

use crate::anti_entropy::{AeStep, ExchangeId};
use crate::gossip::GossipMsg;
use crate::range::TokenRange;
use crate::siblings::{SiblingSet, WriteError};
use crate::version::{CausalContext, Dot};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// Identifies one request a node started; unique per node.
pub type RequestId = u64;

/// Node-to-node protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Merge this sibling set into your copy of `key`, then acknowledge.
    Replicate {
        req: RequestId,
        key: Vec<u8>,
        siblings: SiblingSet,
    },
    ReplicateAck {
        req: RequestId,
        result: Result<(), String>,
    },
    /// Send me your sibling set of `key` (empty when you have none).
    Read { req: RequestId, key: Vec<u8> },
    ReadReply {
        req: RequestId,
        result: Result<SiblingSet, String>,
    },
    /// Read repair: merge this newer state of `key`; no answer expected.
    Repair { key: Vec<u8>, siblings: SiblingSet },
    /// Coordinate this client operation for me (the one-hop forward of a
    /// node that is not the key's coordinator).
    Forward { req: RequestId, op: ClientOp },
    ForwardReply {
        req: RequestId,
        result: ClientResult,
    },
    /// One step of a Merkle-tree exchange over `range`.
    AntiEntropy {
        exchange: ExchangeId,
        range: TokenRange,
        step: AeStep,
    },
    /// Membership: digests, member states and probes (see [`crate::gossip`]).
    Gossip(GossipMsg),
    /// Sloppy quorum: keep this replica of `key` as a hint for `owner`,
    /// which is down or silent, and hand it back later. Answered with
    /// [`Message::ReplicateAck`] once the hint is stored.
    HintedReplicate {
        req: RequestId,
        owner: NodeId,
        key: Vec<u8>,
        siblings: SiblingSet,
    },
    /// Hinted handoff: replicas a stand-in kept for you; merge them all.
    HintDelivery {
        req: RequestId,
        entries: Vec<(Vec<u8>, SiblingSet)>,
    },
    HintDeliveryAck {
        req: RequestId,
        result: Result<(), String>,
    },
    /// Ownership handoff: send me the keys of `range` after `after` (a key
    /// of that range; `None` from its start), one page at a time.
    TransferRequest {
        range: TokenRange,
        after: Option<Vec<u8>>,
    },
    /// One page of a range; `more` is false on the last page.
    TransferPage {
        range: TokenRange,
        entries: Vec<(Vec<u8>, SiblingSet)>,
        more: bool,
    },
}

/// A client request, as every front end (HTTP, later RESP) hands it over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    Get {
        key: Vec<u8>,
        r: Option<usize>,
    },
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        /// The causal context from an earlier read; empty for a blind write.
        context: CausalContext,
        w: Option<usize>,
        /// Of the W acks, how many must come from the key's real preference
        /// list rather than stand-ins (Riak's PW); `None`: no such demand.
        pw: Option<usize>,
    },
    /// Write a tombstone. Without a context the coordinator first reads the
    /// key (R replicas) and deletes what it found, as users of `DELETE`
    /// expect; with one, it deletes exactly what that context saw.
    Delete {
        key: Vec<u8>,
        context: Option<CausalContext>,
        w: Option<usize>,
        pw: Option<usize>,
    },
}

impl ClientOp {
    pub fn key(&self) -> &[u8] {
        match self {
            ClientOp::Get { key, .. }
            | ClientOp::Put { key, .. }
            | ClientOp::Delete { key, .. } => key,
        }
    }

    /// True for the operations that write (PUT, DELETE).
    pub fn is_write(&self) -> bool {
        !matches!(self, ClientOp::Get { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            ClientOp::Get { .. } => "get",
            ClientOp::Put { .. } => "put",
            ClientOp::Delete { .. } => "delete",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientReply {
    /// A read's reconciled state (tombstones included; front ends hide them).
    Value(SiblingSet),
    /// A write's outcome: the new version's dot, and the context of a
    /// follow-up write — the one the client sent plus that dot, exactly what
    /// its writer has seen (never another sibling the coordinator holds).
    Written { dot: Dot, context: CausalContext },
}

/// Why a client operation failed — each is one sentence for the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ClientError {
    #[error("{op} needed {needed} of {replicas} replicas but only {answered} answered in time")]
    Unavailable {
        op: String,
        needed: usize,
        answered: usize,
        replicas: usize,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("storage error on {node}: {message}")]
    Storage { node: String, message: String },
    /// The node's store failed; it refused the write before writing
    /// anything, so another node may safely take it.
    #[error(
        "{node} cannot write: its store failed ({reason}); it serves reads only until \
         restarted, and nothing was written"
    )]
    ReadOnly { node: String, reason: String },
}

impl From<WriteError> for ClientError {
    fn from(e: WriteError) -> Self {
        ClientError::Conflict(e.to_string())
    }
}

pub type ClientResult = Result<ClientReply, ClientError>;
