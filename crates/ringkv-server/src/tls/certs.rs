//! Creating credentials: a cluster CA and node certificates (`ringkv cert`),
//! with rcgen. ECDSA P-256 keys: small, fast to verify, and accepted by
//! every TLS client a user may point at a node (curl, redis-cli, browsers).
//!
//! Layout of a certs directory: `ca.pem` + `ca.key` (the CA; keep `ca.key`
//! off the nodes once they have their certificates), `{id}.pem` +
//! `{id}.key` per node. Every file is written 0600 and never overwritten.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::identity::{node_name, CLUSTER_NAME};
use crate::config::is_dns_label;

/// Default lifetimes, CockroachDB's: CA 10 years, node 5 years.
pub const CA_DAYS: u32 = 3650;
pub const NODE_DAYS: u32 = 1825;

/// Why a credential could not be created, in one sentence.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0} exists already; remove it first to replace it")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "node id {0:?} cannot be named in a certificate: use letters, digits and '-' (at most 63)"
    )]
    BadId(String),
    #[error("cannot create the certificate: {0}")]
    Create(#[from] rcgen::Error),
    #[error("--days {0} is out of range: a certificate lives 1 to {MAX_DAYS} days")]
    Days(u32),
    #[error("--host {0:?} is neither an IP address nor a DNS name")]
    BadHost(String),
    #[error(
        "--host {0} is a wildcard that binds but that no client dials: name the address the \
         node advertises in its [[nodes]] http and resp"
    )]
    WildcardHost(IpAddr),
    #[error("cluster name {0:?} must be 1 to 64 printable characters")]
    BadCluster(String),
}

/// A hundred years: beyond it `time` overflows, and nobody means it.
pub const MAX_DAYS: u32 = 36_500;

/// The files written, for the command to print.
#[derive(Debug)]
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Creates `dir/ca.pem` and `dir/ca.key`: a CA named after `cluster`.
pub fn create_ca(dir: &Path, cluster: &str, days: u32) -> Result<Written, CertError> {
    let written = Written {
        cert: dir.join("ca.pem"),
        key: dir.join("ca.key"),
    };
    if cluster.is_empty() || cluster.len() > 64 || cluster.chars().any(char::is_control) {
        return Err(CertError::BadCluster(cluster.to_owned()));
    }
    check_days(days)?;
    refuse_existing(&written)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(DnType::CommonName, format!("ringkv CA {cluster}"));
    set_validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write_pair(&written, &cert.pem(), &key.serialize_pem())?;
    Ok(written)
}

/// Creates `dir/{id}.pem` and `dir/{id}.key`, signed by `dir/ca.pem` +
/// `dir/ca.key`, for node `id` reachable at `hosts` (IP addresses or DNS
/// names, so clients can check the node's HTTPS and RESP TLS too).
pub fn create_node(
    dir: &Path,
    id: &str,
    hosts: &[String],
    days: u32,
) -> Result<Written, CertError> {
    if !is_dns_label(id) {
        return Err(CertError::BadId(id.to_owned()));
    }
    let written = Written {
        cert: dir.join(format!("{id}.pem")),
        key: dir.join(format!("{id}.key")),
    };
    check_days(days)?;
    let sans = hosts
        .iter()
        .map(|h| san(h))
        .collect::<Result<Vec<_>, _>>()?;
    refuse_existing(&written)?;
    let ca_pem = read(&dir.join("ca.pem"))?;
    let ca_key = KeyPair::from_pem(&read(&dir.join("ca.key"))?)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let mut params = CertificateParams::new(vec![node_name(id), CLUSTER_NAME.to_owned()])?;
    params.subject_alt_names.extend(sans);
    params.distinguished_name.push(DnType::CommonName, id);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Both: a node dials its peers (client) and accepts them (server).
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    set_validity(&mut params, days);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write_pair(&written, &cert.pem(), &key.serialize_pem())?;
    Ok(written)
}

fn check_days(days: u32) -> Result<(), CertError> {
    match days {
        1..=MAX_DAYS => Ok(()),
        _ => Err(CertError::Days(days)),
    }
}

/// An IP address, or a DNS name as TLS clients check them (no wildcard,
/// no spaces, no lists). Clients check the address they dial, the advertised
/// one: a wildcard bind address (`0.0.0.0`, `::`) is refused.
fn san(host: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        if ip.is_unspecified() {
            return Err(CertError::WildcardHost(ip));
        }
        return Ok(SanType::IpAddress(ip));
    }
    let bad = || CertError::BadHost(host.to_owned());
    let valid = rustls_pki_types::DnsName::try_from(host).is_ok()
        && !host.contains('*')
        && !host
            .split('.')
            .all(|l| l.chars().all(|c| c.is_ascii_digit()));
    if !valid {
        return Err(bad());
    }
    Ok(SanType::DnsName(host.try_into().map_err(|_| bad())?))
}

/// Valid from an hour ago (clock skew between the issuing machine and the
/// nodes) for `days`.
fn set_validity(params: &mut CertificateParams, days: u32) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
}

fn refuse_existing(written: &Written) -> Result<(), CertError> {
    for path in [&written.cert, &written.key] {
        if path.exists() {
            return Err(CertError::Exists(path.clone()));
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write_pair(written: &Written, cert: &str, key: &str) -> Result<(), CertError> {
    write_private(&written.key, key)?;
    write_private(&written.cert, cert)
}

/// Writes a new file readable by its owner only (0600); never replaces one.
pub fn write_private(path: &Path, text: &str) -> Result<(), CertError> {
    let failed = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}
