//! TLS on the client ports (`[client_tls]`): HTTPS on the HTTP port, TLS
//! on the RESP port, both from one PEM certificate and key.
//!
//! Handshakes run in tasks of their own, each bounded by
//! [`HANDSHAKE_TIMEOUT`], so a client that connects and then says nothing
//! (or says it slowly) never holds up `accept` for anyone else.

use crate::auth::config::ClientTlsConfig;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::AbortHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client has this long to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once on one port; connections beyond are
/// closed at once rather than queued behind slow ones.
const MAX_HANDSHAKES: usize = 1024;

/// The acceptor for `config`'s certificate; the error names the file.
pub fn acceptor(config: &ClientTlsConfig) -> Result<TlsAcceptor, String> {
    let in_section = |e: crate::tls::TlsError| format!("[client_tls]: {e}");
    let certs = crate::tls::read_certs(&config.cert, "certificate").map_err(in_section)?;
    let key = crate::tls::read_key(&config.key).map_err(in_section)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| format!("[client_tls] cert and key cannot serve TLS: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// `stream`'s handshake within [`HANDSHAKE_TIMEOUT`]; `None` (logged at
/// debug: a port scanner is no news) when it fails.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!("client {peer}: TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("client {peer}: no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
            None
        }
    }
}

/// The next connection on `tcp`; failures to accept are logged (naming
/// the port's `protocol`) and retried after a pause.
pub async fn accept(tcp: &TcpListener, protocol: &str) -> (TcpStream, SocketAddr) {
    loop {
        match tcp.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                // Out of file descriptors, most likely: let some close.
                tracing::warn!("{protocol}: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// An `axum::serve` listener that hands over connections once their
/// handshake is done.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: AbortHandle,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (done, ready) = mpsc::channel(64);
        let accepting = tokio::spawn(accept_loop(tcp, acceptor, done)).abort_handle();
        Ok(TlsListener {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Accept, and start each handshake in a task of its own.
async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    done: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, peer) = accept(&tcp, "https").await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            continue; // Dropped: too many handshakes under way.
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, done) = (acceptor.clone(), done.clone());
        tokio::spawn(async move {
            if let Some(tls) = handshake(&acceptor, stream, peer).await {
                let _ = done.send((tls, peer)).await;
            }
            drop(slot);
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop is gone (never while this listener lives).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
