//! Inbound side: accept connections, check the handshake, forward messages.
//! Accepted connections are only ever read, but for the handshake's answer.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use ringkv_core::NodeId;
use serde::de::DeserializeOwned;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::{debug, trace, warn};

use super::handshake::{next_hello, Rejection};
use super::{codec, Inbound, Shared, ACCEPT_ERROR_PAUSE};

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
    let mut frames = Framed::new(stream, codec(shared.max_frame_bytes));
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

/// Forwards decoded messages to the node. Any bad frame ends the connection:
/// after a framing or decoding error the stream position can no longer be
/// trusted, and the peer will reconnect on its next message.
async fn forward_messages<M>(
    shared: &Shared<M>,
    frames: &mut InboundFrames,
    from: &NodeId,
    remote: SocketAddr,
) where
    M: DeserializeOwned,
{
    debug!(peer = %from, %remote, "inbound connection established");
    while let Some(frame) = frames.next().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                warn!(peer = %from, %remote, %err, "closing inbound connection: bad frame");
                return;
            }
        };
        let msg = match postcard::from_bytes::<M>(&frame) {
            Ok(msg) => msg,
            Err(err) => {
                warn!(peer = %from, %remote, %err, "closing inbound connection: undecodable message");
                return;
            }
        };
        if shared.is_blocked(from) {
            trace!(peer = %from, "dropping message from blocked peer");
            continue;
        }
        let from = from.clone();
        if !shared.inbound.deliver(Inbound::Message { from, msg }) {
            return; // The node is gone; nobody to deliver to.
        }
    }
    debug!(peer = %from, %remote, "inbound connection closed by peer");
}
