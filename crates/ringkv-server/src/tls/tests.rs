//! What `ringkv cert` refuses to make, and what a node refuses to load.

use super::certs::{create_ca, create_node, CertError, MAX_DAYS};
use super::{check_identity, PeerTls, TlsError};
use crate::config::PeerTlsConfig;
use std::path::Path;

fn creds(dir: &Path, id: &str, ca: &str) -> PeerTlsConfig {
    PeerTlsConfig {
        ca: dir.join(ca),
        cert: dir.join(format!("{id}.pem")),
        key: dir.join(format!("{id}.key")),
    }
}

#[test]
fn the_tool_refuses_what_would_make_a_useless_or_ambiguous_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(matches!(
        create_ca(d, "", 10),
        Err(CertError::BadCluster(_))
    ));
    assert!(matches!(create_ca(d, "c", 0), Err(CertError::Days(0))));
    assert!(matches!(
        create_ca(d, "c", MAX_DAYS + 1),
        Err(CertError::Days(_))
    ));
    create_ca(d, "c", 10).unwrap();
    assert!(matches!(
        create_node(d, "n1", &[], 0),
        Err(CertError::Days(0))
    ));
    assert!(matches!(
        create_node(d, "N2", &[], 10),
        Err(CertError::BadId(_))
    ));
    for host in [
        "",
        "not a host",
        "10.0.0.1,10.0.0.2",
        "a\nb",
        "*.example.com",
        "999.1.1.1",
    ] {
        let err = create_node(d, "n1", &[host.to_string()], 10).unwrap_err();
        assert!(matches!(err, CertError::BadHost(_)), "{host:?}: {err}");
    }
    for host in ["0.0.0.0", "::"] {
        let err = create_node(d, "n1", &[host.to_string()], 10).unwrap_err();
        assert!(matches!(err, CertError::WildcardHost(_)), "{host:?}: {err}");
        assert!(err.to_string().contains("advertises"), "{err}");
    }
    assert!(
        !d.join("n1.pem").exists(),
        "nothing written for refused input"
    );
    create_node(
        d,
        "n1",
        &["127.0.0.1".into(), "db-1.example.com".into()],
        10,
    )
    .unwrap();
}

#[test]
fn identity_is_exact_about_case() {
    let dir = tempfile::tempdir().unwrap();
    create_ca(dir.path(), "c", 10).unwrap();
    create_node(dir.path(), "n2", &[], 10).unwrap();
    let cert = super::read_certs(&dir.path().join("n2.pem"), "certificate").unwrap();
    assert!(check_identity(cert.first(), "n2").is_ok());
    assert!(check_identity(cert.first(), "N2").is_err());
}

#[test]
fn a_node_refuses_a_certificate_its_peers_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    create_ca(d, "c", 10).unwrap();
    create_node(d, "n1", &[], 10).unwrap();
    assert!(PeerTls::load(&creds(d, "n1", "ca.pem"), "n1").is_ok());
    // Its own certificate as the CA: it chains to nothing trusted.
    let err = PeerTls::load(&creds(d, "n1", "n1.pem"), "n1").unwrap_err();
    assert!(matches!(err, TlsError::Unusable { .. }), "{err}");
    // Another CA's file.
    let other = d.join("other");
    create_ca(&other, "c", 10).unwrap();
    let mut wrong_ca = creds(d, "n1", "ca.pem");
    wrong_ca.ca = other.join("ca.pem");
    let err = PeerTls::load(&wrong_ca, "n1").unwrap_err().to_string();
    assert!(
        err.contains("cannot be used with the CA certificates in"),
        "{err}"
    );
    // Another node's key.
    create_node(d, "n3", &[], 10).unwrap();
    let mut mismatched = creds(d, "n1", "ca.pem");
    mismatched.key = d.join("n3.key");
    let err = PeerTls::load(&mismatched, "n1").unwrap_err().to_string();
    assert!(err.contains("n3.key do not make a credential"), "{err}");
    // An empty key file says what it lacks.
    std::fs::write(d.join("empty.key"), "").unwrap();
    let mut empty = creds(d, "n1", "ca.pem");
    empty.key = d.join("empty.key");
    let err = PeerTls::load(&empty, "n1").unwrap_err().to_string();
    assert!(err.contains("holds no private key"), "{err}");
}
