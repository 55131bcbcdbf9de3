//! The Redis protocol front end (RESP2, and RESP3 after `HELLO 3`), so
//! `redis-cli`, `redis-benchmark` and Redis client libraries work
//! unchanged.
//!
//! Its keys are a keyspace of their own, resolved by last-write-wins (see
//! [`ringkv_core::keyspace`]): RESP has no way to hand a client the causal
//! context that sibling resolution needs. Each connection answers its
//! requests in order; the node requests of a pipeline run concurrently,
//! since each waits for a quorum (see [`connection`]).

mod client;
mod collections;
mod command;
mod connection;
mod docs;
mod exec;
mod expiry;
mod frame;
mod hello;
mod info;
mod inline;
mod protocol;
mod scan;
mod session;
mod transaction;

use crate::auth::Access;
use crate::client_tls;
use crate::driver::NodeHandle;
use crate::metrics::Metrics;
use crate::shed::{Bound, Cause, Limits, Queue, Shedding};
use client::Clients;
use frame::FrameLimits;
use ringkv_core::settings::Settings;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// What every connection shares.
pub struct Context {
    pub node: NodeHandle,
    pub cluster: String,
    /// Safety net on top of the node's own quorum timeouts.
    pub request_limit: Duration,
    pub max_key_bytes: usize,
    pub limits: FrameLimits,
    /// The RESP port, for `INFO`.
    pub port: u16,
    pub started: Instant,
    /// Who may run which command (see [`crate::auth`]).
    pub access: Arc<Access>,
    pub metrics: Arc<Metrics>,
    /// Connections served at once (`[limits] resp_connections`).
    pub max_clients: usize,
    /// What one connection may read ahead (`resp_pipeline_*`).
    pub pipeline: Bound,
    pub shedding: Arc<Shedding>,
    /// Connection ids and the count of open connections.
    pub clients: Arc<Clients>,
    /// The bucket this port serves (`redis_bucket`).
    pub bucket: String,
}

/// The Redis version ringkv answers as (`INFO`'s `redis_version`,
/// `HELLO`'s `version`): client libraries read it to choose commands,
/// and ringkv's commands behave as Redis 7.0's.
pub const REDIS_VERSION: &str = "7.0.0";

/// How a RESP port is limited: its connections and their pipelines.
pub struct Load<'a> {
    pub limits: &'a Limits,
    pub shedding: Arc<Shedding>,
}

/// The operations Redis requests are counted under: the commands that
/// reach the node, `auth`, and `other` for everything else (so a client
/// cannot make up series).
pub const OPS: [&str; 54] = [
    "get",
    "set",
    "del",
    "exists",
    "mget",
    "mset",
    "info",
    "dbsize",
    "auth",
    "incr",
    "incrby",
    "decr",
    "decrby",
    "sadd",
    "srem",
    "smembers",
    "sismember",
    "smismember",
    "scard",
    "type",
    "scan",
    "keys",
    "hset",
    "hmset",
    "hget",
    "hmget",
    "hdel",
    "hgetall",
    "hlen",
    "hexists",
    "hincrby",
    "lpush",
    "rpush",
    "lpop",
    "rpop",
    "lrange",
    "llen",
    "lindex",
    "spop",
    "zadd",
    "zrem",
    "zscore",
    "zcard",
    "zrange",
    "zpopmin",
    "zpopmax",
    "setex",
    "psetex",
    "expire",
    "pexpire",
    "persist",
    "ttl",
    "pttl",
    "other",
];

/// The `op` label of a request named `name`.
pub fn op_label(name: &[u8]) -> &'static str {
    OPS.into_iter()
        .find(|op| name.eq_ignore_ascii_case(op.as_bytes()))
        .unwrap_or("other")
}

impl Context {
    pub fn new(
        node: NodeHandle,
        cluster: String,
        settings: &Settings,
        request_limit: Duration,
        port: u16,
        (access, metrics): (Arc<Access>, Arc<Metrics>),
        load: Load<'_>,
    ) -> Self {
        Context {
            node,
            cluster,
            request_limit,
            max_key_bytes: settings.max_key_bytes,
            limits: FrameLimits::new(settings),
            port,
            started: Instant::now(),
            access,
            metrics,
            max_clients: load.limits.resp_connections,
            pipeline: load.limits.resp_pipeline(),
            shedding: load.shedding,
            clients: Arc::default(),
            bucket: ringkv_core::bucket::REDIS.to_string(),
        }
    }
}

/// Accept connections until this future is dropped, which drops every
/// connection with it. With `tls`, each connection's handshake runs in its
/// own task, so a slow one holds up no other.
pub async fn serve(listener: TcpListener, ctx: Context, tls: Option<TlsAcceptor>) {
    let ctx = Arc::new(ctx);
    let slots = Arc::new(Semaphore::new(ctx.max_clients));
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = client_tls::accept(&listener, "resp").await;
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            ctx.shedding.record(Queue::RespConnections, Cause::Count);
            connections.spawn(refuse(stream));
            continue;
        };
        let (ctx, tls) = (ctx.clone(), tls.clone());
        connections.spawn(async move {
            serve_one(stream, peer, &ctx, tls).await;
            drop(slot);
        });
    }
}

/// One connection, after its TLS handshake when there is one.
async fn serve_one(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: &Arc<Context>,
    tls: Option<TlsAcceptor>,
) {
    let Some(acceptor) = tls else {
        let (read, write) = stream.into_split();
        return connection::serve(Box::new(read), Box::new(write), peer, ctx).await;
    };
    if let Some(stream) = client_tls::handshake(&acceptor, stream, peer).await {
        let (read, write) = tokio::io::split(stream);
        connection::serve(Box::new(read), Box::new(write), peer, ctx).await;
    }
}

/// Tell a client over `resp_connections` why it is turned away, in
/// Redis's own words (which client libraries recognise).
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = stream
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
}
