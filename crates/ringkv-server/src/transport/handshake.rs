//! The handshake: the [`Hello`] frame that opens every connection, and the
//! checks an acceptor applies to it before trusting the connection.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use ringkv_core::NodeId;
use serde::{Deserialize, Serialize};

use super::{Shared, HANDSHAKE_MAGIC, PROTOCOL_VERSION};

/// The handshake, the first frame on every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Hello {
    pub(super) magic: u32,
    pub(super) protocol_version: u16,
    pub(super) cluster: String,
    pub(super) node: NodeId,
}

/// Why an inbound connection was closed during the handshake.
#[derive(Debug, thiserror::Error)]
pub(super) enum Rejection {
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before the handshake")]
    Closed,
    #[error("bad handshake frame: {0}")]
    Frame(io::Error),
    #[error("undecodable handshake: {0}")]
    Decode(postcard::Error),
    #[error("bad magic {0:#010x}")]
    Magic(u32),
    #[error("unsupported protocol version {0} (this node speaks {ours})", ours = PROTOCOL_VERSION)]
    Version(u16),
    #[error("peer claims to be this node ({0})")]
    Impersonation(NodeId),
    #[error("peer belongs to cluster {theirs:?}, not {ours:?}")]
    Cluster { theirs: String, ours: String },
}

impl Hello {
    pub(super) fn new(cluster: &str, node: &NodeId) -> Self {
        Hello {
            magic: HANDSHAKE_MAGIC,
            protocol_version: PROTOCOL_VERSION,
            cluster: cluster.to_owned(),
            node: node.clone(),
        }
    }

    pub(super) fn encode(&self) -> io::Result<Bytes> {
        postcard::to_stdvec(self)
            .map(Bytes::from)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
    }
}

impl<M> Shared<M> {
    /// Checks a peer's handshake against this node's expectations.
    pub(super) fn check_hello(&self, hello: &Hello) -> Result<(), Rejection> {
        if hello.magic != HANDSHAKE_MAGIC {
            return Err(Rejection::Magic(hello.magic));
        }
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(Rejection::Version(hello.protocol_version));
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
        // Nodes not known yet are accepted: a joining node introduces
        // itself through gossip on this connection. The cluster name is
        // what keeps strangers out.
        Ok(())
    }
}
