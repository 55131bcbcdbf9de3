//! The layer between TCP and framing: mutual TLS when the node has a
//! credential, the bare socket when it runs `insecure`. Either way the rest
//! of the transport sees one byte stream and, with TLS, the certificate
//! that authenticated the peer, against which its `Hello` is checked.

use std::io;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tls::PeerTls;

/// A connection's byte stream, TLS or plain.
pub(super) trait PeerIo: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> PeerIo for T {}
pub(super) type PeerStream = Box<dyn PeerIo>;

/// A connection ready for the handshake.
pub(super) struct Secured {
    pub(super) stream: PeerStream,
    /// The peer's certificate (verified against the CA); `None` without TLS.
    pub(super) cert: Option<CertificateDer<'static>>,
}

/// Dials side: TLS client with this node's certificate.
pub(super) async fn secure_outbound(tls: Option<&PeerTls>, tcp: TcpStream) -> io::Result<Secured> {
    let Some(tls) = tls else {
        return Ok(plain(tcp));
    };
    let stream = tls.connector.connect(PeerTls::server_name(), tcp).await?;
    let cert = stream.get_ref().1.peer_certificates().and_then(first);
    Ok(Secured {
        stream: Box::new(stream),
        cert,
    })
}

/// Accepting side: TLS server requiring a client certificate.
pub(super) async fn secure_inbound(tls: Option<&PeerTls>, tcp: TcpStream) -> io::Result<Secured> {
    let Some(tls) = tls else {
        return Ok(plain(tcp));
    };
    let stream = tls.acceptor.accept(tcp).await?;
    let cert = stream.get_ref().1.peer_certificates().and_then(first);
    Ok(Secured {
        stream: Box::new(stream),
        cert,
    })
}

fn plain(tcp: TcpStream) -> Secured {
    Secured {
        stream: Box::new(tcp),
        cert: None,
    }
}

fn first(certs: &[CertificateDer<'_>]) -> Option<CertificateDer<'static>> {
    certs.first().map(|c| c.clone().into_owned())
}
