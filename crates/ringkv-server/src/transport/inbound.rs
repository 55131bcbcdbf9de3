//! Inbound side: accept connections, check the handshake, forward messages.
//! What goes back on an accepted connection is the handshake's answer and
//! acks (see [`liveness`](super::liveness)).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use ringkv_core::NodeId;
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, trace, warn};

use super::handshake::{next_hello, Rejection};
use super::liveness::{decode_frame, Acker, Frame, INBOUND_IDLE_TIMEOUT};
use super::secure::{secure_inbound, PeerStream, Secured};
use super::{message_codec, Inbound, Shared, ACCEPT_ERROR_PAUSE};

type InboundFrames = Framed<PeerStream, LengthDelimitedCodec>;

/// Accepts connections until shutdown; each gets its own task so a slow or
/// misbehaving peer cannot hold up the others.
pub(super) async fn accept_loop<M>(shared: Arc<Shared<M>>, listener: TcpListener)
where
    M: DeserializeOwned + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, remote)) => {
                shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve_inbound(Arc::clone(&shared), stream, remote));
            }
            Err(err) => {
                warn!(node = %shared.node_id, %err, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

/// Runs one inbound connection: handshake, then forward frames until the
/// peer disconnects, misbehaves, or the transport shuts down. Returning drops
/// (closes) the connection.
async fn serve_inbound<M>(shared: Arc<Shared<M>>, stream: TcpStream, remote: SocketAddr)
where
    M: DeserializeOwned + Send + 'static,
{
    let shutdown = shared.shutdown.clone();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = async {
            let secured = match secure(&shared, stream).await {
                Ok(secured) => secured,
                Err(reason) => return warn!(%remote, %reason, "rejected inbound connection"),
            };
            let cert = secured.cert;
            let mut frames = Framed::new(secured.stream, message_codec(shared.max_frame_bytes));
            match accept_handshake(&shared, &mut frames, cert.as_ref()).await {
                Ok(peer) => {
                    shared.agreed(&peer);
                    forward_messages(&shared, &mut frames, &peer, remote).await
                }
                Err(Rejection::Settings { peer, reason }) => shared.refuse(&peer, &reason),
                Err(reason) => warn!(%remote, %reason, "rejected inbound connection"),
            }
        } => {}
    }
}

/// The TLS handshake (a no-op when insecure), within `connect_timeout`: a
/// peer without a certificate from the cluster's CA, a plaintext or garbage
/// stream, a replayed handshake all end here.
async fn secure<M>(shared: &Shared<M>, stream: TcpStream) -> Result<Secured, Rejection> {
    let limit = shared.connect_timeout;
    timeout(limit, secure_inbound(shared.tls.as_ref(), stream))
        .await
        .map_err(|_| Rejection::Timeout(limit))?
        .map_err(Rejection::Tls)
}

/// Reads the peer's handshake, answers it with this node's, then checks it
/// (all within `connect_timeout`), returning the peer's identity. The
/// answer goes out before the verdict so the peer can check this node's
/// handshake too and learn in its own words why it is refused.
async fn accept_handshake<M>(
    shared: &Shared<M>,
    frames: &mut InboundFrames,
    cert: Option<&CertificateDer<'_>>,
) -> Result<NodeId, Rejection> {
    let limit = shared.connect_timeout;
    let exchange = async {
        let hello = next_hello(frames).await?;
        let answer = shared.hello().encode().map_err(Rejection::Frame)?;
        frames.send(answer).await.map_err(Rejection::Frame)?;
        Ok::<_, Rejection>(hello)
    };
    let hello = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| Rejection::Timeout(limit))??;
    shared.check_hello(&hello, cert)?;
    Ok(hello.node)
}

/// What an established inbound connection has to react to.
enum Event {
    /// The next frame (`None`: the peer closed the connection).
    Frame(Option<std::io::Result<BytesMut>>),
    AckDue,
    Idle,
}

/// Why an established inbound connection ends.
enum Close {
    ByPeer,
    /// Nothing arrived for [`INBOUND_IDLE_TIMEOUT`].
    Silent,
    /// The node stopped listening; nobody to deliver to.
    NodeGone,
    /// The peer broke the protocol, or stopped taking acks.
    Bad(String),
}

/// Forwards decoded messages to the node and acknowledges what was read,
/// until the connection ends; logs why it did.
async fn forward_messages<M>(
    shared: &Shared<M>,
    frames: &mut InboundFrames,
    from: &NodeId,
    remote: SocketAddr,
) where
    M: DeserializeOwned,
{
    debug!(peer = %from, %remote, "inbound connection established");
    let _open = shared.stats.inbound_opened();
    match serve_frames(shared, frames, from).await {
        Close::ByPeer => debug!(peer = %from, %remote, "inbound connection closed by peer"),
        Close::Silent => debug!(
            peer = %from, %remote,
            "closing inbound connection: nothing received for {INBOUND_IDLE_TIMEOUT:?}"
        ),
        Close::NodeGone => {}
        Close::Bad(reason) => warn!(peer = %from, %remote, "closing inbound connection: {reason}"),
    }
}

/// The established connection's loop. Any bad frame ends it: after a
/// framing or decoding error the stream position can no longer be
/// trusted, and the peer will reconnect on its next message. So does
/// silence for [`INBOUND_IDLE_TIMEOUT`]: a live writer pings far more
/// often, so this one is gone (it dropped the connection during a
/// partition, say) and the connection would only linger half-dead.
async fn serve_frames<M>(shared: &Shared<M>, frames: &mut InboundFrames, from: &NodeId) -> Close
where
    M: DeserializeOwned,
{
    let mut acker = Acker::new(Instant::now());
    loop {
        let ack_at = acker.ack_at();
        let event = tokio::select! {
            frame = frames.next() => Event::Frame(frame),
            _ = sleep_until(ack_at.unwrap_or_else(Instant::now)), if ack_at.is_some() => {
                Event::AckDue
            }
            _ = sleep_until(acker.idle_deadline()) => Event::Idle,
        };
        let step = match event {
            Event::Frame(Some(Ok(frame))) => receive(shared, &mut acker, &frame, from),
            Event::Frame(Some(Err(err))) => Err(Close::Bad(format!("bad frame: {err}"))),
            Event::Frame(None) => Err(Close::ByPeer),
            Event::AckDue => send_ack(frames, &mut acker).await,
            Event::Idle => Err(Close::Silent),
        };
        if let Err(close) = step {
            return close;
        }
    }
}

/// Handles one frame: a message goes to the node, a ping only asks for an
/// ack. Either counts as heard.
fn receive<M>(
    shared: &Shared<M>,
    acker: &mut Acker,
    frame: &[u8],
    from: &NodeId,
) -> Result<(), Close>
where
    M: DeserializeOwned,
{
    let frame = decode_frame(frame).map_err(|garbage| Close::Bad(garbage.0))?;
    acker.heard(&frame, Instant::now());
    let Frame::Message(bytes) = frame else {
        return Ok(());
    };
    let msg = postcard::from_bytes::<M>(bytes)
        .map_err(|err| Close::Bad(format!("undecodable message: {err}")))?;
    if shared.is_blocked(from) {
        trace!(peer = %from, "dropping message from blocked peer");
        return Ok(());
    }
    let from = from.clone();
    match shared
        .inbound
        .deliver(Inbound::Message { from, msg }, bytes.len())
    {
        true => Ok(()),
        false => Err(Close::NodeGone),
    }
}

/// Sends the ack due. Bounded: a peer that does not take a 13-byte frame
/// for [`INBOUND_IDLE_TIMEOUT`] stopped reading long ago.
async fn send_ack(frames: &mut InboundFrames, acker: &mut Acker) -> Result<(), Close> {
    let ack = acker.ack(Instant::now());
    match timeout(INBOUND_IDLE_TIMEOUT, frames.send(ack)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(Close::Bad(format!("ack failed: {err}"))),
        Err(_) => Err(Close::Bad(format!(
            "ack not taken for {INBOUND_IDLE_TIMEOUT:?}"
        ))),
    }
}
