//! Inter-node mutual TLS: every peer connection is TLS 1.3 with a
//! certificate on both sides, chained to the cluster's CA, and each node's
//! certificate names its node id.
//!
//! Why TLS and not a Noise handshake keyed by a cluster secret (Garage's
//! scheme): the client side (HTTPS, `redis-cli --tls`) needs TLS and a CA
//! anyway, so one crypto stack, one set of files and one rotation
//! procedure serve both; rustls is audited and well kept; TLS is a stream,
//! so frames of any size up to the frame budget pass unchanged (Noise caps a
//! message at 65,535 bytes and would need chunking); and TLS 1.3 without
//! 0-RTT makes a recorded handshake or stream useless to replay (both sides
//! contribute fresh randomness, so replayed records fail authentication).
//!
//! Identity: a node's certificate carries the DNS name `{id}.node.ringkv`
//! (plus [`CLUSTER_NAME`], the name every node certificate shares, which the
//! connector asks for when it dials a seed whose id it does not know yet).
//! After the TLS handshake each side checks that the id the peer claims in
//! its `Hello` is the one its certificate names ([`check_identity`]), so a
//! node holding n2's credential cannot claim to be n1.

pub mod certs;
mod identity;
mod load;

pub use identity::{check_identity, node_name, IdentityError, CLUSTER_NAME};
pub use load::{read_certs, read_key, PeerTls, TlsError};

#[cfg(test)]
mod tests;
