//! One client connection: requests in, replies out in the same order.
//!
//! Requests that arrive together (a pipeline) run concurrently, each
//! waiting for its own quorum, and their replies are written in request
//! order. A request naming a key that an earlier request still in flight
//! also names waits for those to finish first, so one connection's
//! commands on one key take effect in the order it sent them (`SET k a`,
//! `SET k b`, `GET k` answers `b`; a `DEL` reads before it writes).

use super::command::{error, Command};
use super::frame::{ProtocolError, RequestCodec};
use super::session::Session;
use super::{exec, Context};
use crate::metrics::Frontend;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, SinkExt, StreamExt};
use redis_protocol::codec::Resp2;
use redis_protocol::resp2::types::BytesFrame;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

/// Requests of one connection in flight at once; reading waits beyond it.
const MAX_IN_FLIGHT: usize = 1024;

/// The halves of a connection, plain TCP or TLS.
pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

type Requests = FramedRead<ReadHalf, RequestCodec>;

/// Serve one client until it closes, quits or breaks the protocol.
pub async fn serve(read: ReadHalf, write: WriteHalf, peer: SocketAddr, ctx: &Arc<Context>) {
    let mut requests = FramedRead::new(read, RequestCodec::new(ctx.limits));
    let mut connection = Connection {
        replies: FramedWrite::new(write, Resp2::default()),
        pending: FuturesOrdered::new(),
        keys: HashSet::new(),
        ctx: ctx.clone(),
        session: Session::new(),
    };
    if let Err(e) = connection.run(&mut requests, peer).await {
        tracing::debug!("resp client {peer}: {e}");
    }
}

struct Connection {
    replies: FramedWrite<WriteHalf, Resp2>,
    /// Replies still being worked out, in request order.
    pending: FuturesOrdered<BoxFuture<'static, BytesFrame>>,
    /// Keys named by requests in `pending` (cleared when it empties).
    keys: HashSet<Bytes>,
    ctx: Arc<Context>,
    /// Who the client authenticated as.
    session: Session,
}

/// What the connection waits for next.
enum Event {
    Reply(BytesFrame),
    Request(Option<Result<Vec<Bytes>, ProtocolError>>),
}

impl Connection {
    async fn run(&mut self, requests: &mut Requests, peer: SocketAddr) -> Result<(), String> {
        loop {
            let event = tokio::select! {
                Some(reply) = self.pending.next(), if !self.pending.is_empty() => Event::Reply(reply),
                request = requests.next(), if self.pending.len() < MAX_IN_FLIGHT => {
                    Event::Request(request)
                }
            };
            let args = match event {
                Event::Reply(reply) => {
                    self.write(reply).await?;
                    continue;
                }
                Event::Request(Some(Ok(args))) => args,
                // The client is done sending: answer what it sent.
                Event::Request(None) => return self.drain().await,
                Event::Request(Some(Err(ProtocolError::Io(e)))) => return Err(e.to_string()),
                Event::Request(Some(Err(e))) => {
                    tracing::warn!("resp client {peer}: {e}; closing the connection");
                    let refusal = Command::Reply(error(format!("ERR {e}")));
                    self.start(refusal, "other").await?;
                    return self.drain().await;
                }
            };
            let op = args.first().map_or("other", |name| super::op_label(name));
            let command = self.session.admit(&self.ctx.access, &args);
            let quit = command == Command::Quit;
            self.start(command, op).await?;
            if quit {
                return self.drain().await;
            }
        }
    }

    /// Start `command` (counted as `op`), after the requests in flight when
    /// it names one of their keys.
    async fn start(&mut self, command: Command, op: &'static str) -> Result<(), String> {
        let keys = command.keys();
        if keys.iter().any(|key| self.keys.contains(*key)) {
            self.drain().await?;
        }
        self.keys.extend(keys.into_iter().cloned());
        let ctx = self.ctx.clone();
        let started = Instant::now();
        self.pending.push_back(
            async move {
                let (reply, outcome) = exec::run(command, &ctx).await;
                let took = started.elapsed();
                ctx.metrics.request(Frontend::Resp, op, outcome, took);
                reply
            }
            .boxed(),
        );
        Ok(())
    }

    /// Write `reply` and every reply ready behind it, then flush.
    async fn write(&mut self, reply: BytesFrame) -> Result<(), String> {
        self.replies.feed(reply).await.map_err(|e| e.to_string())?;
        while let Some(Some(reply)) = self.pending.next().now_or_never() {
            self.replies.feed(reply).await.map_err(|e| e.to_string())?;
        }
        if self.pending.is_empty() {
            self.keys.clear();
        }
        SinkExt::<BytesFrame>::flush(&mut self.replies)
            .await
            .map_err(|e| e.to_string())
    }

    /// Wait for every request in flight and write its reply.
    async fn drain(&mut self) -> Result<(), String> {
        while let Some(reply) = self.pending.next().await {
            self.write(reply).await?;
        }
        Ok(())
    }
}
