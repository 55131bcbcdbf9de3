//! ringkv-core: the protocol logic of ringkv as plain, IO-free state machines.
//!
//! Nothing in this crate touches sockets, clocks, threads or OS randomness:
//! every input carries the current time (`now`, milliseconds), every output is
//! data (see [`node::Effect`]). The tokio server and the deterministic
//! simulator drive exactly the same code.

pub mod anti_entropy;
pub mod bucket;
pub mod context;
pub mod coordinator;
pub mod crdt;
pub mod gc;
pub mod gossip;
pub mod hints;
pub mod keyspace;
pub mod latency;
pub mod merkle;
pub mod message;
pub mod node;
pub mod range;
pub mod ring;
pub mod ring_view;
pub mod settings;
pub mod siblings;
pub mod store;
pub mod version;

use serde::{Deserialize, Serialize};
use std::fmt;

/// Milliseconds since the Unix epoch (real time in the server, virtual time in
/// the simulator). Only used for timeouts and for ordering sibling timestamps.
pub type Millis = u64;

/// A physical node's stable identity (its name in the cluster config).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub String);

impl NodeId {
    pub fn new(id: impl Into<String>) -> Self {
        NodeId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId(s.to_string())
    }
}
