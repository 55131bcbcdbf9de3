//! One client connection: requests in, replies out in the same order.
//!
//! Requests that arrive together (a pipeline) run concurrently, each
//! waiting for its own quorum, and their replies are written in request
//! order. A request naming a key that an earlier request still in flight
//! also names waits for those to finish first, so one connection's
//! commands on one key take effect in the order it sent them (`SET k a`,
//! `SET k b`, `GET k` answers `b`; a `DEL` reads before it writes).
//!
//! A pipeline is bounded in commands and bytes (`[limits]
//! resp_pipeline_commands`, `resp_pipeline_bytes`): each command read
//! holds its share until its reply is written. At the bound the
//! connection stops reading — backpressure, not refusal. A RESP server
//! cannot skip a command without reading it (only parsing finds where the
//! next one starts) and must answer in order, so refusing read-ahead
//! commands would cost the same reading and parsing as serving them, and
//! would fail a well-behaved pipelining client for being fast. Not
//! reading lets TCP's flow control slow the client to the node's pace,
//! while a node that is overloaded as a whole refuses commands it does
//! read with `-BUSY` (see [`super::exec`]).

use super::client::Client;
use super::command::{answer, error, Command};
use super::frame::{ProtocolError, RequestCodec};
use super::protocol::{Protocol, ReplyCodec, Wire};
use super::session::Session;
use super::{exec, Context};
use crate::metrics::Frontend;
use crate::shed::{Budget, Cause, Permit, Queue};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, SinkExt, StreamExt};
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite};

/// The halves of a connection, plain TCP or TLS.
pub type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
pub type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

type Requests = FramedRead<ReadHalf, RequestCodec>;

/// Serve one client until it closes, quits or breaks the protocol.
pub async fn serve(read: ReadHalf, write: WriteHalf, peer: SocketAddr, ctx: &Arc<Context>) {
    let mut requests = FramedRead::new(read, RequestCodec::new(ctx.limits));
    let mut connection = Connection {
        replies: FramedWrite::new(write, ReplyCodec),
        pending: FuturesOrdered::new(),
        permits: VecDeque::new(),
        budget: Budget::new(ctx.pipeline),
        paused: false,
        keys: HashSet::new(),
        ctx: ctx.clone(),
        session: Session::new(Client::new(&ctx.clients, peer), ctx.pipeline),
    };
    if let Err(e) = connection.run(&mut requests, peer).await {
        tracing::debug!("resp client {peer}: {e}");
    }
}

struct Connection {
    replies: FramedWrite<WriteHalf, ReplyCodec>,
    /// Replies still being worked out, in request order, each in the
    /// protocol the connection spoke when its request was admitted.
    pending: FuturesOrdered<BoxFuture<'static, Wire>>,
    /// The pipeline's share of each request in `pending`, in the same
    /// order: given back as its reply is written.
    permits: VecDeque<Permit>,
    /// This connection's pipeline bound.
    budget: std::sync::Arc<Budget>,
    /// Reading stopped at the bound (counted once per pause).
    paused: bool,
    /// Keys named by requests in `pending` (cleared when it empties).
    keys: HashSet<Bytes>,
    ctx: Arc<Context>,
    /// Who the client authenticated as.
    session: Session,
}

/// What the connection waits for next.
enum Event {
    Reply(Wire),
    Request(Option<Result<Vec<Bytes>, ProtocolError>>),
}

impl Connection {
    async fn run(&mut self, requests: &mut Requests, peer: SocketAddr) -> Result<(), String> {
        loop {
            let room = self.has_room();
            let event = tokio::select! {
                Some(reply) = self.pending.next(), if !self.pending.is_empty() => Event::Reply(reply),
                request = requests.next(), if room => Event::Request(request),
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
                Event::Request(Some(Err(e @ ProtocolError::CrossProtocol(_)))) => {
                    tracing::warn!("resp client {peer}: {e}");
                    return self.drain().await;
                }
                Event::Request(Some(Err(e))) => {
                    tracing::warn!("resp client {peer}: {e}; closing the connection");
                    let refusal = answer(error(format!("ERR {e}")));
                    let protocol = self.session.protocol();
                    self.start(refusal, "other", 0, protocol).await?;
                    return self.drain().await;
                }
            };
            // After MULTI a command is counted when EXEC runs it, under its
            // own op; its +QUEUED, and EXEC itself, count as `other`.
            let op = match args.first() {
                Some(name) if !self.session.queueing() => super::op_label(name),
                _ => "other",
            };
            let bytes = args.iter().map(Bytes::len).sum();
            let command = self.session.admit(&self.ctx.access, &args);
            let quit = command == Command::Quit;
            // After admitting: `HELLO 3` is itself answered in RESP3.
            let protocol = self.session.protocol();
            self.start(command, op, bytes, protocol).await?;
            if quit {
                return self.drain().await;
            }
        }
    }

    /// Whether another request may be read now; counts a new pause.
    fn has_room(&mut self) -> bool {
        let room = self.budget.has_room();
        if !room && !self.paused {
            let held = self.budget.held();
            let cause = if held.count >= self.budget.bound().count {
                Cause::Count
            } else {
                Cause::Bytes
            };
            self.ctx.shedding.record(Queue::RespPipeline, cause);
        }
        self.paused = !room;
        room
    }

    /// Start `command` (counted as `op`, answered in `protocol`), after
    /// the requests in flight when it names one of their keys. It holds
    /// `bytes` of the pipeline until answered.
    async fn start(
        &mut self,
        command: Command,
        op: &'static str,
        bytes: usize,
        protocol: Protocol,
    ) -> Result<(), String> {
        let keys = command.keys();
        if keys.iter().any(|key| self.keys.contains(*key)) {
            self.drain().await?;
        }
        self.permits.push_back(self.budget.take(bytes));
        self.keys.extend(keys.into_iter().cloned());
        let ctx = self.ctx.clone();
        let started = Instant::now();
        self.pending.push_back(
            async move {
                let (reply, outcome) = exec::run(command, &ctx).await;
                let took = started.elapsed();
                ctx.metrics.request(Frontend::Resp, op, outcome, took);
                reply.into_wire(protocol)
            }
            .boxed(),
        );
        Ok(())
    }

    /// Write `reply` and every reply ready behind it, then flush; each
    /// gives its request's share of the pipeline back.
    async fn write(&mut self, reply: Wire) -> Result<(), String> {
        self.feed(reply).await?;
        while let Some(Some(reply)) = self.pending.next().now_or_never() {
            self.feed(reply).await?;
        }
        if self.pending.is_empty() {
            self.keys.clear();
        }
        SinkExt::<Wire>::flush(&mut self.replies)
            .await
            .map_err(|e| e.to_string())
    }

    async fn feed(&mut self, reply: Wire) -> Result<(), String> {
        self.permits.pop_front();
        self.replies.feed(reply).await.map_err(|e| e.to_string())
    }

    /// Wait for every request in flight and write its reply.
    async fn drain(&mut self) -> Result<(), String> {
        while let Some(reply) = self.pending.next().await {
            self.write(reply).await?;
        }
        Ok(())
    }
}
