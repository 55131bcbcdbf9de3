//! What can go wrong talking to a cluster, one sentence each.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no seed address given")]
    NoSeeds,
    #[error("the cluster's status lists no members")]
    NoMembers,
    #[error("the token cannot be sent in an HTTP header: it must be printable ASCII")]
    BadToken,
    #[error("the CA certificate cannot be used: {0}")]
    BadCaCertificate(String),
    #[error("cannot set up the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
    /// The connection could not be made, so the request was never
    /// delivered: a write can safely be sent elsewhere.
    #[error("cannot reach node {node}: {source}")]
    Unreachable {
        node: String,
        #[source]
        source: reqwest::Error,
    },
    /// The exchange broke after the request may have been delivered: a
    /// write may or may not have been applied.
    #[error("lost the connection to node {node} mid-request: {source}")]
    Interrupted {
        node: String,
        #[source]
        source: reqwest::Error,
    },
    /// No answer in time; as with [`Error::Interrupted`], a write may or may
    /// not have been applied.
    #[error("node {node} did not answer within {limit:?}")]
    Timeout { node: String, limit: Duration },
    /// The node answered with an error (its one-sentence message): `400`
    /// bad input, `401` no or a bad token, `403` the token's role is too
    /// low, `409` too many siblings, `503` quorum not reached, ...
    #[error("node {node} answered {status}: {message}")]
    Server {
        node: String,
        status: u16,
        message: String,
    },
    /// The node shed the request (`503` with `Retry-After`): it was
    /// overloaded and started nothing, so any operation may be sent again
    /// — after `retry_after`, not at once, or the retry adds to the load.
    #[error("node {node} is overloaded: {message}")]
    Overloaded {
        node: String,
        message: String,
        retry_after: Duration,
    },
    #[error("unexpected answer from node {node}: {reason}")]
    BadAnswer { node: String, reason: String },
}

impl Error {
    /// The HTTP status of a node's error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Server { status, .. } => Some(*status),
            Error::Overloaded { .. } => Some(503),
            _ => None,
        }
    }

    /// From a failed exchange with `node`; `limit` is the attempt's timeout.
    pub(crate) fn from_transport(node: &str, limit: Duration, source: reqwest::Error) -> Error {
        let node = node.to_string();
        if source.is_timeout() {
            Error::Timeout { node, limit }
        } else if source.is_connect() {
            Error::Unreachable { node, source }
        } else {
            Error::Interrupted { node, source }
        }
    }
}
