//! The handshake: the [`Hello`] frame each side of a connection sends, and
//! the checks each side applies to the other's before trusting it.
//!
//! The connector sends its `Hello` first; the acceptor, once the frame is a
//! ringkv handshake of this protocol version, answers with its own and only
//! then judges the connector's. Both sides run the same
//! [`check_hello`](Shared::check_hello), so when one refuses the other
//! refuses too, and each learns why in its own words ("this node has 2,
//! peer n2 has 3") without a rejection message on the wire.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use ringkv_core::settings::ClusterSettings;
use ringkv_core::NodeId;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::tls::check_identity;

use super::{lock, Inbound, Shared, HANDSHAKE_MAGIC, PROTOCOL_VERSION};

/// The handshake, the first frame each side sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Hello {
    pub(super) magic: u32,
    pub(super) protocol_version: u16,
    pub(super) cluster: String,
    pub(super) node: NodeId,
    /// The settings every node of the cluster must share; a peer with
    /// others is refused.
    pub(super) settings: ClusterSettings,
}

/// What every version of the handshake starts with. Read first, so that a
/// peer speaking another version is refused as such instead of as an
/// undecodable frame.
#[derive(Deserialize)]
struct HelloHead {
    magic: u32,
    protocol_version: u16,
}

/// Why a connection was closed during the handshake.
#[derive(Debug, thiserror::Error)]
pub(super) enum Rejection {
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before the handshake")]
    Closed,
    #[error("bad handshake frame: {0}")]
    Frame(io::Error),
    #[error("{0}")]
    Connect(io::Error),
    #[error("undecodable handshake: {0}")]
    Decode(postcard::Error),
    #[error("bad magic {0:#010x}")]
    Magic(u32),
    #[error("unsupported protocol version {0} (this node speaks {ours})", ours = PROTOCOL_VERSION)]
    Version(u16),
    #[error("peer claims to be this node ({0})")]
    Impersonation(NodeId),
    /// The peer's certificate does not name the node its `Hello` claims.
    #[error("{0}")]
    Identity(#[from] crate::tls::IdentityError),
    /// The node dialed answered as another node.
    #[error("dialed {expected} but {claimed} answered")]
    WrongPeer { expected: NodeId, claimed: NodeId },
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("peer belongs to cluster {theirs:?}, not {ours:?}")]
    Cluster { theirs: String, ours: String },
    /// The peer's cluster settings differ; `reason` names the first
    /// setting that does and both values.
    #[error("{reason}")]
    Settings { peer: NodeId, reason: String },
}

impl Hello {
    pub(super) fn new(cluster: &str, node: &NodeId, settings: &ClusterSettings) -> Self {
        Hello {
            magic: HANDSHAKE_MAGIC,
            protocol_version: PROTOCOL_VERSION,
            cluster: cluster.to_owned(),
            node: node.clone(),
            settings: settings.clone(),
        }
    }

    pub(super) fn encode(&self) -> io::Result<Bytes> {
        postcard::to_stdvec(self)
            .map(Bytes::from)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
    }

    /// Decodes a handshake frame: magic and protocol version first, so
    /// that only a ringkv peer of this version is decoded any further.
    pub(super) fn decode(frame: &[u8]) -> Result<Hello, Rejection> {
        let (head, _) = postcard::take_from_bytes::<HelloHead>(frame).map_err(Rejection::Decode)?;
        if head.magic != HANDSHAKE_MAGIC {
            return Err(Rejection::Magic(head.magic));
        }
        if head.protocol_version != PROTOCOL_VERSION {
            return Err(Rejection::Version(head.protocol_version));
        }
        postcard::from_bytes(frame).map_err(Rejection::Decode)
    }
}

/// Reads and decodes the next frame of `frames` as a handshake. The caller
/// bounds the wait.
pub(super) async fn next_hello<S>(frames: &mut S) -> Result<Hello, Rejection>
where
    S: Stream<Item = io::Result<BytesMut>> + Unpin,
{
    match frames.next().await {
        None => Err(Rejection::Closed),
        Some(Err(err)) => Err(Rejection::Frame(err)),
        Some(Ok(frame)) => Hello::decode(&frame),
    }
}

impl<M> Shared<M> {
    /// This node's handshake.
    pub(super) fn hello(&self) -> Hello {
        Hello::new(&self.cluster, &self.node_id, &self.settings)
    }

    /// Checks a peer's (decoded) handshake against this node's
    /// expectations; both sides of a connection apply it. With TLS, `cert`
    /// (the peer's, verified against the CA) must name the node the
    /// handshake claims: identity is bound to the credential.
    pub(super) fn check_hello(
        &self,
        hello: &Hello,
        cert: Option<&CertificateDer<'_>>,
    ) -> Result<(), Rejection> {
        if self.tls.is_some() {
            check_identity(cert, hello.node.as_str())?;
        }
        if hello.cluster != self.cluster {
            return Err(Rejection::Cluster {
                theirs: hello.cluster.clone(),
                ours: self.cluster.clone(),
            });
        }
        if hello.node == self.node_id {
            return Err(Rejection::Impersonation(hello.node.clone()));
        }
        if let Some(diff) = self.settings.diff(&hello.settings) {
            let peer = hello.node.clone();
            let reason = diff.sentence("this node", &format!("peer {peer}"));
            return Err(Rejection::Settings { peer, reason });
        }
        // Nodes not known yet are accepted: a joining node introduces
        // itself through gossip on this connection. The CA is what keeps
        // strangers out (the cluster name only keeps clusters apart).
        Ok(())
    }

    /// A handshake with `peer` failed because its settings differ: log it
    /// and tell the node, once per peer and reason rather than once per
    /// reconnect attempt.
    pub(super) fn refuse(&self, peer: &NodeId, reason: &str) {
        let before = lock(&self.refused).insert(peer.clone(), reason.to_owned());
        if before.as_deref() == Some(reason) {
            return;
        }
        warn!(%peer, "refusing peer: {reason}");
        let report = Inbound::Incompatible {
            peer: peer.clone(),
            reason: reason.to_owned(),
        };
        self.inbound.deliver(report, 0);
    }

    /// A handshake with `peer` succeeded: a refusal logged before is over.
    pub(super) fn agreed(&self, peer: &NodeId) {
        if lock(&self.refused).remove(peer).is_some() {
            info!(%peer, "peer's settings agree now");
        }
    }
}
