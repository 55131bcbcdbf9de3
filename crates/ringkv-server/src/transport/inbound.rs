//! Inbound side: accept connections, check the handshake, forward messages.
//! What goes back on an accepted connection is the handshake's answer and
//! acks (see [`liveness`](super::liveness)).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use ringkv_core::NodeId;
use serde::de::DeserializeOwned;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, trace, warn};

use super::handshake::{next_hello, Rejection};
use super::liveness::{decode_frame, Acker, Frame, INBOUND_IDLE_TIMEOUT};
use super::{message_codec, Inbound, Shared, ACCEPT_ERROR_PAUSE};

type InboundFrames = Framed<TcpStream, LengthDelimitedCodec>;

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
                shared.accepted.fetch_add(1, Ordering::Relaxed);
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
    let mut frames = Framed::new(stream, message_codec(shared.max_frame_bytes));
    let shutdown = shared.shutdown.clone();
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = async {
            match accept_handshake(&shared, &mut frames).await {
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

/// Reads the peer's handshake, answers it with this node's, then checks it
/// (all within `connect_timeout`), returning the peer's identity. The
/// answer goes out before the verdict so the peer can check this node's
/// handshake too and learn in its own words why it is refused.
async fn accept_handshake<M>(
    shared: &Shared<M>,
    frames: &mut InboundFrames,
) -> Result<NodeId, Rejection> {
    let limit = shared.connect_timeout;
    let exchange = async {
        let hello = next_hello(frames).await?;
        let answer = shared.hello().encode().map_err(Rejection::Frame)?;
        frames.send(answer).await.map_err(Rejection::Frame)?;
        Ok(hello)
    };
    let hello = tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| Rejection::Timeout(limit))??;
    shared.check_hello(&hello)?;
    Ok(hello.node)
}

/// What an established inbound connection has to react to.
enum Event {
    /// The next frame (`None`: the peer closed the connection).
    Frame(Option<std::io::Result<BytesMut>>),
    AckDue,
    Idle,
}

/// Forwards decoded messages to the node and acknowledges what was read.
/// Any bad frame ends the connection: after a framing or decoding error
/// the stream position can no longer be trusted, and the peer will
/// reconnect on its next message. So does silence for
/// [`INBOUND_IDLE_TIMEOUT`]: the writer would have pinged.
async fn forward_messages<M>(
    shared: &Shared<M>,
    frames: &mut InboundFrames,
    from: &NodeId,
    remote: SocketAddr,
) where
    M: DeserializeOwned,
{
    debug!(peer = %from, %remote, "inbound connection established");
    let mut acker = Acker::new(Instant::now());
    loop {
        let ack_at = acker.ack_at();
        let event = tokio::select! {
            frame = frames.next() => Event::Frame(frame),
            _ = sleep_until(ack_at.unwrap_or_else(Instant::now)), if ack_at.is_some() => Event::AckDue,
            _ = sleep_until(acker.idle_deadline()) => Event::Idle,
        };
        let outcome = match event {
            Event::Frame(Some(Ok(frame))) => receive(shared, &mut acker, &frame, from),
            Event::Frame(Some(Err(err))) => Err(format!("bad frame: {err}")),
            Event::Frame(None) => {
                return debug!(peer = %from, %remote, "inbound connection closed by peer")
            }
            Event::AckDue => send_ack(frames, &mut acker).await,
            Event::Idle => {
                return debug!(peer = %from, %remote, "closing inbound connection: silent for {INBOUND_IDLE_TIMEOUT:?}");
            }
        };
        match outcome {
            Ok(true) => {}
            Ok(false) => return, // The node is gone; nobody to deliver to.
            Err(reason) => {
                return warn!(peer = %from, %remote, "closing inbound connection: {reason}")
            }
        }
    }
}

/// Handles one frame: a message goes to the node (false once nobody
/// listens), a ping only asks for an ack. Either counts as heard.
fn receive<M>(
    shared: &Shared<M>,
    acker: &mut Acker,
    frame: &[u8],
    from: &NodeId,
) -> Result<bool, String>
where
    M: DeserializeOwned,
{
    let frame = decode_frame(frame).map_err(|garbage| garbage.0)?;
    acker.heard(&frame, Instant::now());
    let Frame::Message(bytes) = frame else {
        return Ok(true);
    };
    let msg =
        postcard::from_bytes::<M>(bytes).map_err(|err| format!("undecodable message: {err}"))?;
    if shared.is_blocked(from) {
        trace!(peer = %from, "dropping message from blocked peer");
        return Ok(true);
    }
    let from = from.clone();
    Ok(shared.inbound.deliver(Inbound::Message { from, msg }))
}

/// Sends the ack due. Bounded: a peer that does not take a 13-byte frame
/// for [`INBOUND_IDLE_TIMEOUT`] stopped reading long ago.
async fn send_ack(frames: &mut InboundFrames, acker: &mut Acker) -> Result<bool, String> {
    let ack = acker.ack(Instant::now());
    match timeout(INBOUND_IDLE_TIMEOUT, frames.send(ack)).await {
        Ok(Ok(())) => Ok(true),
        Ok(Err(err)) => Err(format!("ack failed: {err}")),
        Err(_) => Err(format!("ack not taken for {INBOUND_IDLE_TIMEOUT:?}")),
    }
}
