//! Loading a node's inter-node credential into rustls configurations.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::identity::{check_identity, node_name, CLUSTER_NAME};
use crate::config::PeerTlsConfig;

/// A credential that cannot be used, in one sentence naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("certificate {path} is not issued for node {id}: create one with `ringkv cert create-node --id {id}`")]
    NotThisNode { path: PathBuf, id: String },
    /// Expired, not yet valid, not chaining to the CA file, not a node
    /// certificate: caught at start rather than at every handshake.
    #[error("certificate {path} cannot be used with the CA certificates in {ca}: {reason}")]
    Unusable {
        path: PathBuf,
        ca: PathBuf,
        reason: String,
    },
    #[error("certificate {cert} and key {key} do not make a credential: {reason}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Both halves of a node's inter-node TLS: dialing peers and accepting
/// them, each requiring the other side's certificate to chain to the CA.
#[derive(Clone)]
pub struct PeerTls {
    pub(crate) connector: TlsConnector,
    pub(crate) acceptor: TlsAcceptor,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

impl PeerTls {
    /// Loads the files of `config` for node `id`; refuses a certificate
    /// issued for another node, so a copied config fails at start rather
    /// than at every handshake.
    pub fn load(config: &PeerTlsConfig, id: &str) -> Result<PeerTls, TlsError> {
        let roots = read_certs(&config.ca, "CA certificate")?;
        let chain = read_certs(&config.cert, "certificate")?;
        let key = read_key(&config.key)?;
        warn_if_exposed(&config.key);
        if check_identity(chain.first(), id).is_err() {
            return Err(TlsError::NotThisNode {
                path: config.cert.clone(),
                id: id.to_owned(),
            });
        }
        check_usable(&roots, &chain, id).map_err(|reason| TlsError::Unusable {
            path: config.cert.clone(),
            ca: config.ca.clone(),
            reason,
        })?;
        PeerTls::new(roots, chain, key).map_err(|err| match err {
            TlsError::Invalid(reason) => TlsError::Pair {
                cert: config.cert.clone(),
                key: config.key.clone(),
                reason,
            },
            other => other,
        })
    }

    /// Builds both configurations: TLS 1.3 only, ring's algorithms, a
    /// client certificate required.
    pub fn new(
        roots: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<PeerTls, TlsError> {
        let invalid = |e: rustls::Error| TlsError::Invalid(e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let store = root_store(roots).map_err(invalid)?;
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&store), Arc::clone(&provider))
                .build()
                .map_err(|e| TlsError::Invalid(e.to_string()))?;
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(invalid)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(invalid)?;
        let client = client_config(provider, store)
            .map_err(invalid)?
            .with_client_auth_cert(chain, key)
            .map_err(invalid)?;
        Ok(PeerTls {
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }

    /// The name a connector asks the peer's certificate for. Every node
    /// certificate carries it; which node answered is checked afterwards
    /// against its `Hello` (see [`check_identity`]).
    pub fn server_name() -> ServerName<'static> {
        ServerName::try_from(CLUSTER_NAME).expect("a valid DNS name")
    }
}

fn root_store(roots: Vec<CertificateDer<'static>>) -> Result<Arc<RootCertStore>, rustls::Error> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root)?;
    }
    Ok(Arc::new(store))
}

/// Verifies this node's own certificate as a peer will: chains to the CA
/// file, valid now, a server certificate for `{id}.node.ringkv`.
fn check_usable(
    roots: &[CertificateDer<'static>],
    chain: &[CertificateDer<'static>],
    id: &str,
) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let store = root_store(roots.to_vec()).map_err(|e| e.to_string())?;
    let verifier = WebPkiServerVerifier::builder_with_provider(store, provider)
        .build()
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(node_name(id)).map_err(|e| e.to_string())?;
    let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A private key others may read is logged, not refused: a dev checkout
/// with a loose umask should still start, but the operator hears of it.
fn warn_if_exposed(key: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(key) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "private key {} is readable by other users (mode {mode:o}): chmod 600 it",
                key.display()
            );
        }
    }
}

fn client_config(
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, rustls::Error> {
    Ok(ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots))
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: path.to_path_buf(),
            what: "private key",
        },
        source => TlsError::Read {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// Every certificate of a PEM file; at least one. One home for reading
/// credentials: the peer transport and the client ports both use it.
pub fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(certs)
}
