//! Running data commands against the node, in the bucket the port serves
//! (`redis_bucket`, by default `redis`): every Redis key `k` is the
//! internal key of `k` in that bucket, holding a typed
//! [`Value`]; a read answers what [`crdt::resolve`] makes of the siblings
//! the quorum returned, and counters and sets change by CRDT updates
//! ([`ClientOp::Update`]) that the coordinator applies.

use super::command::{error, ok, Command};
use super::protocol::Reply;
use super::transaction::Queued;
use super::{collections, expiry, info, scan, Context};
use crate::metrics::{self, Frontend};
use bytes::Bytes;
use futures::{stream, StreamExt};
use redis_protocol::resp2::types::BytesFrame;
use ringkv_core::bucket::{self, BucketProps};
use ringkv_core::crdt::{self, CrdtError, Update, Value};
use ringkv_core::keyspace::ConflictPolicy;
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
            // The Redis error line, prefix included.
            ClientError::Refused(line) => return Failure(line, metrics::Outcome::Invalid),
            _ => "ERR",
        };
        Failure(format!("{prefix} {e}"), metrics::Outcome::of_error(&e))
    }
}

impl Failure {
    pub fn invalid(message: String) -> Failure {
        Failure(format!("ERR {message}"), metrics::Outcome::Invalid)
    }

    /// The node cannot answer (it is shutting down); `line` as sent.
    pub fn unavailable(line: &str) -> Failure {
        Failure(line.into(), metrics::Outcome::Unavailable)
    }
}

/// A command's answer or its failure.
pub type Outcome<T> = Result<T, Failure>;

/// Run `command` and answer it, with the outcome it counts as.
pub async fn run(command: Command, ctx: &Context) -> (Reply, metrics::Outcome) {
    let reply = match command {
        Command::Get(key) => get(ctx, key).await.map(bulk_or_nil),
        Command::Set(key, value, ttl_ms) => {
            set_string(ctx, key, value, ttl_ms).await.map(|()| ok())
        }
        Command::Del(keys) => del(ctx, keys).await.map(BytesFrame::Integer),
        Command::Exists(keys) => exists(ctx, keys).await.map(BytesFrame::Integer),
        Command::MGet(keys) => each(ctx, keys, get_or_nil)
            .await
            .map(|values| BytesFrame::Array(values.into_iter().map(bulk_or_nil).collect())),
        Command::MSet(pairs) => mset(ctx, pairs).await.map(|()| ok()),
        Command::IncrBy(key, delta) => update(ctx, key, Update::IncrBy(delta))
            .await
            .map(BytesFrame::Integer),
        Command::SAdd(key, members) => update(ctx, key, Update::SAdd(to_vecs(members)))
            .await
            .map(BytesFrame::Integer),
        Command::SRem(key, members) => update(ctx, key, Update::SRem(to_vecs(members)))
            .await
            .map(BytesFrame::Integer),
        Command::SMembers(key) => return answered(smembers(ctx, key).await),
        Command::SIsMember(key, member) => set(ctx, key)
            .await
            .map(|s| BytesFrame::Integer(s.is_some_and(|s| s.contains(&member)).into())),
        Command::SMIsMember(key, members) => set(ctx, key).await.map(|s| {
            let one =
                |m: &Bytes| BytesFrame::Integer(s.as_ref().is_some_and(|s| s.contains(m)).into());
            BytesFrame::Array(members.iter().map(one).collect())
        }),
        Command::SCard(key) => set(ctx, key)
            .await
            .map(|s| BytesFrame::Integer(s.map_or(0, |s| s.len() as i64))),
        Command::HSet(key, pairs, count) => {
            let pairs = pairs
                .into_iter()
                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                .collect();
            let added = update(ctx, key, Update::HSet(pairs)).await;
            added.map(|n| if count { BytesFrame::Integer(n) } else { ok() })
        }
        Command::HDel(key, fields) => update(ctx, key, Update::HDel(to_vecs(fields)))
            .await
            .map(BytesFrame::Integer),
        Command::HIncrBy(key, field, by) => update(ctx, key, Update::HIncrBy(field.to_vec(), by))
            .await
            .map(BytesFrame::Integer),
        Command::HGet(key, field) => hash(ctx, key)
            .await
            .map(|h| bulk_or_nil(field_of(&h, &field))),
        Command::HMGet(key, fields) => hash(ctx, key).await.map(|h| {
            BytesFrame::Array(
                fields
                    .iter()
                    .map(|f| bulk_or_nil(field_of(&h, f)))
                    .collect(),
            )
        }),
        Command::HLen(key) => hash(ctx, key)
            .await
            .map(|h| BytesFrame::Integer(h.map_or(0, |h| h.len() as i64))),
        Command::HExists(key, field) => hash(ctx, key)
            .await
            .map(|h| BytesFrame::Integer(field_of(&h, &field).is_some().into())),
        Command::HGetAll(key) => return answered(hgetall(ctx, key).await),
        Command::Scan(scan) => scan::scan(ctx, scan).await,
        Command::Keys(pattern) => scan::keys(ctx, pattern).await,
        Command::Type(key) => value(ctx, &key)
            .await
            .map(|v| BytesFrame::SimpleString(v.map_or("none", |v| v.type_name()).into())),
        Command::Info(sections) => info::info(ctx, &sections).await,
        Command::DbSize => info::dbsize(ctx).await,
        Command::Quit => Ok(ok()),
        Command::Exec(batch) => return (exec(ctx, batch).await, metrics::Outcome::Ok),
        Command::Reply(reply) => {
            let outcome = reply.outcome();
            return (reply, outcome);
        }
        Command::Fail(line) => Err(Failure(line, metrics::Outcome::Invalid)),
        Command::Collection(op) => return answered(collections::run(ctx, op).await),
        Command::Expiry(op) => return answered(expiry::run(ctx, op).await),
    };
    answered(reply.map(Reply::from))
}

/// The reply to send and the outcome to count.
fn answered(reply: Outcome<Reply>) -> (Reply, metrics::Outcome) {
    match reply {
        Ok(reply) => (reply, metrics::Outcome::Ok),
        Err(Failure(line, outcome)) => (error(line).into(), outcome),
    }
}

/// `SMEMBERS`: in byte order (Redis's order is its hash table's).
async fn smembers(ctx: &Context, key: Bytes) -> Outcome<Reply> {
    let members = set(ctx, key).await?;
    let members = members.map(|s| s.iter().map(Bytes::copy_from_slice).collect());
    Ok(Reply::Set(members.unwrap_or_default()))
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

/// The bucket this port serves, as the node knows it now; refused unless
/// it exists and is typed.
pub fn bucket(ctx: &Context) -> Outcome<BucketProps> {
    let name = &ctx.bucket;
    match ctx.node.bucket(name) {
        Some(props) if props.policy == ConflictPolicy::Typed => Ok(props),
        Some(props) => Err(Failure::invalid(format!(
            "bucket {name} (redis_bucket) resolves conflicts by {}; the Redis port serves a \
             typed bucket",
            props.policy.name()
        ))),
        None => Err(Failure::invalid(format!(
            "no bucket named {name} (redis_bucket) yet; create it with `ringkv bucket create \
             {name} --policy typed`"
        ))),
    }
}

/// The internal key of a Redis key in the bucket of `props` (see
/// [`bucket`]), refused when the bucket's prefix would take it over the
/// node's key limit.
fn internal_key(ctx: &Context, props: &BucketProps, key: &[u8]) -> Outcome<Vec<u8>> {
    let prefix = bucket::prefix(&ctx.bucket, props);
    let limit = ctx.max_key_bytes - prefix.len();
    if key.len() > limit {
        return Err(Failure::invalid(format!(
            "key is {} bytes; Redis keys may be at most {limit} bytes (max_key_bytes {} \
             minus the {}-byte prefix of bucket {})",
            key.len(),
            ctx.max_key_bytes,
            prefix.len(),
            ctx.bucket
        )));
    }
    Ok([&prefix[..], key].concat())
}

/// What an R quorum holds for `key`, every sibling.
async fn read(ctx: &Context, key: &[u8]) -> Outcome<SiblingSet> {
    let props = bucket(ctx)?;
    let op = ClientOp::Get {
        key: internal_key(ctx, &props, key)?,
        r: props.r,
        pr: None,
    };
    match ctx.node.request(op, ctx.request_limit).await? {
        ClientReply::Value(set) => Ok(set),
        _ => Err(unexpected_reply()),
    }
}

async fn write(ctx: &Context, op: ClientOp) -> Outcome<()> {
    match ctx.node.request(op, ctx.request_limit).await? {
        ClientReply::Written { .. } => Ok(()),
        _ => Err(unexpected_reply()),
    }
}

/// The node answered a read with a write's reply or the reverse: a bug on
/// our side.
fn unexpected_reply() -> Failure {
    Failure::unexpected()
}

impl Failure {
    pub fn unexpected() -> Failure {
        Failure(
            "ERR the node gave an unexpected kind of reply".into(),
            metrics::Outcome::Error,
        )
    }
}

/// The key's value as the siblings an R quorum holds resolve; `None` when
/// it holds none (or a set emptied by removes).
async fn value(ctx: &Context, key: &[u8]) -> Outcome<Option<Value>> {
    let siblings = read(ctx, key).await?;
    let resolved = crdt::resolve(&siblings).map_err(ClientError::from)?;
    Ok(resolved.map(|(value, _)| value).filter(Value::exists))
}

/// When `key`'s value expires: `None` when it holds none, `Some(None)`
/// when it never expires (see [`crdt::resolve_expiring`]).
pub async fn expiry(ctx: &Context, key: &[u8]) -> Outcome<Option<Option<u64>>> {
    let siblings = read(ctx, key).await?;
    let resolved = crdt::resolve_expiring(&siblings).map_err(ClientError::from)?;
    Ok(resolved
        .filter(|(value, ..)| value.exists())
        .map(|(.., expires_at)| expires_at))
}

/// `GET`: a string, a counter's value, or `WRONGTYPE` for a set.
async fn get(ctx: &Context, key: Bytes) -> Outcome<Option<Bytes>> {
    match value(ctx, &key).await? {
        None => Ok(None),
        Some(v) => v
            .as_string()
            .map(Bytes::from)
            .map(Some)
            .map_err(|e| ClientError::from(e).into()),
    }
}

/// `MGET` answers nil for a key that does not hold a string, as Redis.
async fn get_or_nil(ctx: &Context, key: Bytes) -> Outcome<Option<Bytes>> {
    Ok(value(ctx, &key)
        .await?
        .and_then(|v| v.as_string().ok().map(Bytes::from)))
}

/// The key's set, `None` when it holds nothing, `WRONGTYPE` for another type.
async fn set(ctx: &Context, key: Bytes) -> Outcome<Option<crdt::OrSet>> {
    typed(ctx, &key, |v| match v {
        Value::Set(s) => Some(s),
        _ => None,
    })
    .await
}

/// The key's hash, `None` when it holds nothing, `WRONGTYPE` for another type.
async fn hash(ctx: &Context, key: Bytes) -> Outcome<Option<crdt::OrMap>> {
    typed(ctx, &key, |v| match v {
        Value::Hash(h) => Some(h),
        _ => None,
    })
    .await
}

fn field_of(hash: &Option<crdt::OrMap>, field: &[u8]) -> Option<Bytes> {
    let (value, _, _) = hash.as_ref()?.get(field)?;
    Some(value.bytes().into())
}

/// `HGETALL`: fields and values in field byte order (Redis's order is its
/// own); a map in RESP3.
async fn hgetall(ctx: &Context, key: Bytes) -> Outcome<Reply> {
    let hash = hash(ctx, key).await?.unwrap_or_default();
    let pairs = hash
        .iter()
        .map(|(f, v)| {
            (
                Bytes::copy_from_slice(f),
                Reply::from(BytesFrame::BulkString(v.bytes().into())),
            )
        })
        .collect();
    Ok(Reply::Map(pairs))
}

/// A CRDT update of `key`, applied by its coordinator; its reply.
async fn update_reply(ctx: &Context, key: Bytes, update: Update) -> Outcome<crdt::Reply> {
    let props = bucket(ctx)?;
    let op = ClientOp::Update {
        key: internal_key(ctx, &props, &key)?,
        update,
        w: props.w,
        pw: props.pw,
    };
    match ctx.node.request(op, ctx.request_limit).await? {
        ClientReply::Updated(reply) => Ok(reply),
        _ => Err(unexpected_reply()),
    }
}

/// A CRDT update that answers an integer.
pub async fn update(ctx: &Context, key: Bytes, update: Update) -> Outcome<i64> {
    let reply = update_reply(ctx, key, update).await?;
    reply.integer().ok_or_else(unexpected_reply)
}

/// A CRDT update that answers elements (a pop); `None` when the key held
/// nothing.
pub async fn update_elements(
    ctx: &Context,
    key: Bytes,
    update: Update,
) -> Outcome<Option<Vec<Bytes>>> {
    match update_reply(ctx, key, update).await? {
        crdt::Reply::Elements(taken) => Ok(Some(taken.into_iter().map(Bytes::from).collect())),
        crdt::Reply::Missing => Ok(None),
        crdt::Reply::Integer(_) => Err(unexpected_reply()),
    }
}

/// The key's value when `pick` accepts its type: `None` when the key holds
/// nothing, `WRONGTYPE` when it holds another type.
pub async fn typed<T>(
    ctx: &Context,
    key: &[u8],
    pick: fn(Value) -> Option<T>,
) -> Outcome<Option<T>> {
    match value(ctx, key).await? {
        None => Ok(None),
        Some(v) => pick(v)
            .map(Some)
            .ok_or_else(|| ClientError::from(CrdtError::WrongType).into()),
    }
}

fn to_vecs(members: Vec<Bytes>) -> Vec<Vec<u8>> {
    members.into_iter().map(|m| m.to_vec()).collect()
}

/// A blind write of a string: the coordinator overwrites whatever it holds.
/// `SET`, living `ttl_ms` (`None`: for ever, whatever TTL the key had).
/// The bucket's TTL and value limit apply (see [`ringkv_core::bucket`]).
async fn set_string(ctx: &Context, key: Bytes, value: Bytes, ttl_ms: Option<u64>) -> Outcome<()> {
    let props = bucket(ctx)?;
    if let Some(limit) = props.max_value_bytes.filter(|m| value.len() > *m) {
        return Err(Failure::invalid(format!(
            "value is {} bytes; bucket {} takes at most {limit}",
            value.len(),
            ctx.bucket
        )));
    }
    let op = ClientOp::Put {
        key: internal_key(ctx, &props, &key)?,
        value: Value::String(value.to_vec()).encode(),
        context: Default::default(),
        w: props.w,
        pw: props.pw,
        ttl_ms: ttl_ms.or(props.ttl_seconds.map(|s| s * 1000)),
    };
    write(ctx, op).await
}

/// Delete `key` if it holds a value (see [`Update::Del`]); true when it did.
async fn delete(ctx: &Context, key: Bytes) -> Outcome<bool> {
    update(ctx, key, Update::Del)
        .await
        .map(|deleted| deleted > 0)
}

/// Keys that held a value, each counted once however often it is named.
async fn del(ctx: &Context, keys: Vec<Bytes>) -> Outcome<i64> {
    let distinct: BTreeSet<Bytes> = keys.into_iter().collect();
    let deleted = each(ctx, distinct, delete).await?;
    Ok(deleted.into_iter().filter(|d| *d).count() as i64)
}

/// Keys that hold a value, counted as often as they are named (as Redis).
async fn exists(ctx: &Context, keys: Vec<Bytes>) -> Outcome<i64> {
    let values = each(ctx, keys, |ctx, key| async move { value(ctx, &key).await }).await?;
    Ok(values.into_iter().flatten().count() as i64)
}

/// Every pair written; a key named twice gets its last value. Not atomic:
/// on an error some pairs may have been written.
async fn mset(ctx: &Context, pairs: Vec<(Bytes, Bytes)>) -> Outcome<()> {
    let last: BTreeMap<Bytes, Bytes> = pairs.into_iter().collect();
    each(ctx, last, |ctx, (key, value)| {
        set_string(ctx, key, value, None)
    })
    .await?;
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
