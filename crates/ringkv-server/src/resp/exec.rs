//! Running data commands against the node, in the last-write-wins keyspace:
//! every Redis key `k` is the internal key [`lww_key`]`(k)`, and a read
//! answers the [`lww_value`] of what the quorum returned.

use super::command::{error, ok, Command};
use super::protocol::Reply;
use super::transaction::Queued;
use super::{info, Context};
use crate::metrics::{self, Frontend};
use bytes::Bytes;
use futures::{stream, StreamExt};
use redis_protocol::resp2::types::BytesFrame;
use ringkv_core::keyspace::{lww_key, lww_value, LWW_PREFIX};
use ringkv_core::message::{ClientError, ClientOp, ClientReply};
use ringkv_core::siblings::SiblingSet;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Node requests one multi-key command keeps in flight at once.
const FAN_OUT: usize = 64;

/// A refusal or failure: the error line the client gets (its prefix
/// included), and its class for the request metrics.
pub struct Failure(String, metrics::Outcome);

impl From<ClientError> for Failure {
    /// `-ERR` and the sentence, but `-BUSY` when the node shed the
    /// command. Redis answers `BUSY` when it is busy running a script and
    /// will take commands again shortly, which is this case too; client
    /// libraries pass it on as a plain error (redis-py and go-redis map no
    /// class to it; Jedis and Lettuce raise a data error), so it is shown
    /// and neither tears the connection down nor is retried at once.
    /// `LOADING` would be: redis-py raises a connection error (and
    /// reconnects), go-redis retries it immediately — more load on a node
    /// shedding it. `OOM` means memory full for good.
    fn from(e: ClientError) -> Self {
        let prefix = match e {
            ClientError::Overloaded { .. } => "BUSY",
            _ => "ERR",
        };
        Failure(format!("{prefix} {e}"), metrics::Outcome::of_error(&e))
    }
}

impl Failure {
    fn invalid(message: String) -> Failure {
        Failure(format!("ERR {message}"), metrics::Outcome::Invalid)
    }

    /// The node cannot answer (it is shutting down); `line` as sent.
    pub fn unavailable(line: &str) -> Failure {
        Failure(line.into(), metrics::Outcome::Unavailable)
    }
}

type Outcome<T> = Result<T, Failure>;

/// Run `command` and answer it, with the outcome it counts as.
pub async fn run(command: Command, ctx: &Context) -> (Reply, metrics::Outcome) {
    let reply = match command {
        Command::Get(key) => get(ctx, key).await.map(bulk_or_nil),
        Command::Set(key, value) => set(ctx, key, value).await.map(|()| ok()),
        Command::Del(keys) => del(ctx, keys).await.map(BytesFrame::Integer),
        Command::Exists(keys) => exists(ctx, keys).await.map(BytesFrame::Integer),
        Command::MGet(keys) => each(ctx, keys, get)
            .await
            .map(|values| BytesFrame::Array(values.into_iter().map(bulk_or_nil).collect())),
        Command::MSet(pairs) => mset(ctx, pairs).await.map(|()| ok()),
        Command::Info(sections) => info::info(ctx, &sections).await,
        Command::DbSize => info::dbsize(ctx).await,
        Command::Quit => Ok(ok()),
        Command::Exec(batch) => return (exec(ctx, batch).await, metrics::Outcome::Ok),
        Command::Reply(reply) => {
            let outcome = reply.outcome();
            return (reply, outcome);
        }
    };
    match reply {
        Ok(frame) => (frame.into(), metrics::Outcome::Ok),
        Err(Failure(line, outcome)) => (error(line).into(), outcome),
    }
}

/// `EXEC`: the queued commands one after another, in order, each counted
/// as the request it is; the array of their replies (see
/// [`super::transaction`] for why this is not atomic).
async fn exec(ctx: &Context, batch: Vec<Queued>) -> Reply {
    let mut replies = Vec::with_capacity(batch.len());
    for Queued { op, command } in batch {
        let started = Instant::now();
        let (reply, outcome) = Box::pin(run(command, ctx)).await;
        ctx.metrics
            .request(Frontend::Resp, op, outcome, started.elapsed());
        replies.push(reply);
    }
    Reply::Array(replies)
}

fn bulk_or_nil(value: Option<Bytes>) -> BytesFrame {
    value.map_or(BytesFrame::Null, BytesFrame::BulkString)
}

/// The internal key of a Redis key, refused when the keyspace prefix would
/// take it over the node's key limit.
fn internal_key(ctx: &Context, key: &[u8]) -> Outcome<Vec<u8>> {
    let limit = ctx.max_key_bytes - LWW_PREFIX.len();
    if key.len() > limit {
        return Err(Failure::invalid(format!(
            "key is {} bytes; Redis keys may be at most {limit} bytes (max_key_bytes {} \
             minus the {}-byte keyspace prefix)",
            key.len(),
            ctx.max_key_bytes,
            LWW_PREFIX.len()
        )));
    }
    Ok(lww_key(key))
}

/// What an R quorum holds for `key`, every sibling.
async fn read(ctx: &Context, key: &[u8]) -> Outcome<SiblingSet> {
    let op = ClientOp::Get {
        key: internal_key(ctx, key)?,
        r: None,
        pr: None,
    };
    match ctx.node.request(op, ctx.request_limit).await? {
        ClientReply::Value(set) => Ok(set),
        ClientReply::Written { .. } => Err(unexpected_reply()),
    }
}

async fn write(ctx: &Context, op: ClientOp) -> Outcome<()> {
    match ctx.node.request(op, ctx.request_limit).await? {
        ClientReply::Written { .. } => Ok(()),
        ClientReply::Value(_) => Err(unexpected_reply()),
    }
}

/// The node answered a read with a write's reply or the reverse: a bug on
/// our side.
fn unexpected_reply() -> Failure {
    Failure(
        "ERR the node gave an unexpected kind of reply".into(),
        metrics::Outcome::Error,
    )
}

async fn get(ctx: &Context, key: Bytes) -> Outcome<Option<Bytes>> {
    let set = read(ctx, &key).await?;
    Ok(lww_value(&set).map(Bytes::copy_from_slice))
}

/// A blind write: the coordinator overwrites whatever it holds.
async fn set(ctx: &Context, key: Bytes, value: Bytes) -> Outcome<()> {
    let op = ClientOp::Put {
        key: internal_key(ctx, &key)?,
        value: value.to_vec(),
        context: Default::default(),
        w: None,
        pw: None,
    };
    write(ctx, op).await
}

/// Delete `key` if it holds a value (a tombstone over what the read saw);
/// true when it did.
async fn delete(ctx: &Context, key: Bytes) -> Outcome<bool> {
    let set = read(ctx, &key).await?;
    if lww_value(&set).is_none() {
        return Ok(false);
    }
    let op = ClientOp::Delete {
        key: internal_key(ctx, &key)?,
        context: Some(set.context()),
        w: None,
        pw: None,
    };
    write(ctx, op).await.map(|()| true)
}

/// Keys that held a value, each counted once however often it is named.
async fn del(ctx: &Context, keys: Vec<Bytes>) -> Outcome<i64> {
    let distinct: BTreeSet<Bytes> = keys.into_iter().collect();
    let deleted = each(ctx, distinct, delete).await?;
    Ok(deleted.into_iter().filter(|d| *d).count() as i64)
}

/// Keys that hold a value, counted as often as they are named (as Redis).
async fn exists(ctx: &Context, keys: Vec<Bytes>) -> Outcome<i64> {
    let values = each(ctx, keys, get).await?;
    Ok(values.into_iter().flatten().count() as i64)
}

/// Every pair written; a key named twice gets its last value. Not atomic:
/// on an error some pairs may have been written.
async fn mset(ctx: &Context, pairs: Vec<(Bytes, Bytes)>) -> Outcome<()> {
    let last: BTreeMap<Bytes, Bytes> = pairs.into_iter().collect();
    each(ctx, last, |ctx, (key, value)| set(ctx, key, value)).await?;
    Ok(())
}

/// `op` on every item, [`FAN_OUT`] at a time; the answers in item order,
/// or the first failure.
async fn each<'c, I, T, F, Fut>(ctx: &'c Context, items: I, op: F) -> Outcome<Vec<T>>
where
    I: IntoIterator,
    F: Fn(&'c Context, I::Item) -> Fut,
    Fut: std::future::Future<Output = Outcome<T>>,
{
    let answers: Vec<Outcome<T>> = stream::iter(items)
        .map(|item| op(ctx, item))
        .buffered(FAN_OUT)
        .collect()
        .await;
    answers.into_iter().collect()
}
