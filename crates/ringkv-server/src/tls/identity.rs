//! Names in node certificates, and binding a claimed node id to the
//! certificate that authenticated the connection.

use rustls_pki_types::{CertificateDer, ServerName};

/// The DNS name every node certificate carries besides its own, so a
/// connector that dials a seed (an address, no id yet) can still verify the
/// peer is *a* node of this cluster before it learns which one.
pub const CLUSTER_NAME: &str = "node.ringkv";

/// The DNS name that binds a certificate to node `id`: `{id}.node.ringkv`.
/// `id` must be one DNS label (config validation ensures it).
pub fn node_name(id: &str) -> String {
    format!("{id}.{CLUSTER_NAME}")
}

/// Why a peer's certificate does not back the id it claims.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("peer presented no certificate")]
    NoCertificate,
    #[error("peer claims to be {claimed} but its certificate is not issued for {claimed}")]
    Mismatch { claimed: String },
    #[error("peer's certificate cannot be parsed: {0}")]
    Unparsable(String),
}

/// Checks that `cert` (already verified against the CA by the TLS
/// handshake) names node `claimed`.
pub fn check_identity(
    cert: Option<&CertificateDer<'_>>,
    claimed: &str,
) -> Result<(), IdentityError> {
    let cert = cert.ok_or(IdentityError::NoCertificate)?;
    let mismatch = || IdentityError::Mismatch {
        claimed: claimed.to_owned(),
    };
    // Certificate names compare without regard to case; ids do not. Only
    // lower-case ids can be named (config validation), so `N2` is never
    // taken on the strength of a certificate for `n2`.
    if !crate::config::is_dns_label(claimed) {
        return Err(mismatch());
    }
    let name = ServerName::try_from(node_name(claimed)).map_err(|_| mismatch())?;
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| IdentityError::Unparsable(format!("{e:?}")))?;
    parsed
        .verify_is_valid_for_subject_name(&name)
        .map_err(|_| mismatch())
}
