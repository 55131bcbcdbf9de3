//! Lists (`LPUSH`, `RPUSH`, `LPOP`, `RPOP`, `LRANGE`, `LLEN`, `LINDEX`),
//! sorted sets (`ZADD`, `ZREM`, `ZSCORE`, `ZCARD`, `ZRANGE`, `ZPOPMIN`,
//! `ZPOPMAX`) and `SPOP`: parsed here and run as CRDT updates and reads
//! (see [`ringkv_core::crdt::OrList`] and [`ringkv_core::crdt::OrZSet`]).
//!
//! Pops and pushes are not idempotent: the node never re-sends them, so a
//! lost answer is reported as unknown rather than pushed or popped twice.

use super::command::{error, text, Command};
use super::exec::{self, Outcome};
use super::protocol::Reply;
use super::Context;
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;
use ringkv_core::crdt::{self, End, Update, Value};

/// A list or sorted-set command, or `SPOP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Push(Bytes, End, Vec<Bytes>),
    /// The count, when one was given (the reply is then an array).
    Pop(Bytes, End, Option<usize>),
    LRange(Bytes, i64, i64),
    LLen(Bytes),
    LIndex(Bytes, i64),
    SPop(Bytes, Option<usize>),
    /// Scores as `f64` bits.
    ZAdd(Bytes, Vec<(u64, Bytes)>),
    ZRem(Bytes, Vec<Bytes>),
    ZScore(Bytes, Bytes),
    ZCard(Bytes),
    /// `WITHSCORES` when true.
    ZRange(Bytes, i64, i64, bool),
    /// `ZPOPMIN` when true, and the count when one was given.
    ZPop(Bytes, bool, Option<usize>),
}

/// The names [`parse`] knows, for arity errors and the request metrics.
pub const NAMES: [&str; 15] = [
    "lpush", "rpush", "lpop", "rpop", "lrange", "llen", "lindex", "spop", "zadd", "zrem", "zscore",
    "zcard", "zrange", "zpopmin", "zpopmax",
];

impl Op {
    pub fn key(&self) -> &Bytes {
        match self {
            Op::Push(key, ..)
            | Op::Pop(key, ..)
            | Op::LRange(key, ..)
            | Op::LLen(key)
            | Op::LIndex(key, _)
            | Op::SPop(key, _)
            | Op::ZAdd(key, _)
            | Op::ZRem(key, _)
            | Op::ZScore(key, _)
            | Op::ZCard(key)
            | Op::ZRange(key, ..)
            | Op::ZPop(key, ..) => key,
        }
    }
}

/// The command for `name` (upper case) and `args`, `None` when `name` is
/// not one of these or the arguments do not fit (an arity error then).
pub fn parse(name: &[u8], args: &[Bytes]) -> Option<Command> {
    let op = match (name, args) {
        (b"LPUSH", [key, elems @ ..]) if !elems.is_empty() => {
            Op::Push(key.clone(), End::Head, elems.to_vec())
        }
        (b"RPUSH", [key, elems @ ..]) if !elems.is_empty() => {
            Op::Push(key.clone(), End::Tail, elems.to_vec())
        }
        (b"LPOP", [key, count @ ..]) if count.len() <= 1 => {
            return Some(with_count(count, |n| Op::Pop(key.clone(), End::Head, n)))
        }
        (b"RPOP", [key, count @ ..]) if count.len() <= 1 => {
            return Some(with_count(count, |n| Op::Pop(key.clone(), End::Tail, n)))
        }
        // Redis checks these when the command runs, so after MULTI they
        // are queued and fail in EXEC's reply, not at once.
        (b"LPOP" | b"RPOP", [_, _, _, ..]) => {
            let name = String::from_utf8_lossy(name).to_lowercase();
            let line = format!("ERR wrong number of arguments for '{name}' command");
            return Some(Command::Fail(line));
        }
        (b"SPOP" | b"ZPOPMIN" | b"ZPOPMAX", [_, _, _, ..]) => {
            return Some(Command::Fail("ERR syntax error".into()))
        }
        (b"SPOP", [key, count @ ..]) => {
            return Some(with_count(count, |n| Op::SPop(key.clone(), n)))
        }
        (b"ZPOPMIN", [key, count @ ..]) if count.len() <= 1 => {
            return Some(with_count(count, |n| Op::ZPop(key.clone(), true, n)))
        }
        (b"ZPOPMAX", [key, count @ ..]) if count.len() <= 1 => {
            return Some(with_count(count, |n| Op::ZPop(key.clone(), false, n)))
        }
        (b"LRANGE", [key, start, stop]) => match (integer(start), integer(stop)) {
            (Some(start), Some(stop)) => Op::LRange(key.clone(), start, stop),
            _ => return Some(not_integer()),
        },
        (b"LLEN", [key]) => Op::LLen(key.clone()),
        (b"LINDEX", [key, index]) => match integer(index) {
            Some(index) => Op::LIndex(key.clone(), index),
            None => return Some(not_integer()),
        },
        (b"ZADD", [key, rest @ ..]) if rest.len() >= 2 => return Some(zadd(key, rest)),
        (b"ZREM", [key, members @ ..]) if !members.is_empty() => {
            Op::ZRem(key.clone(), members.to_vec())
        }
        (b"ZSCORE", [key, member]) => Op::ZScore(key.clone(), member.clone()),
        (b"ZCARD", [key]) => Op::ZCard(key.clone()),
        (b"ZRANGE", [key, start, stop, options @ ..]) => {
            return Some(zrange(key, start, stop, options))
        }
        _ => return None,
    };
    Some(Command::Collection(op))
}

fn integer(arg: &Bytes) -> Option<i64> {
    crdt::parse_integer(arg).ok()
}

const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const POSITIVE: &str = "ERR value is out of range, must be positive";

fn not_integer() -> Command {
    Command::Fail(NOT_INTEGER.into())
}

/// A pop's optional count, read as Redis reads it: 0 allowed, anything
/// but a non-negative integer refused as not positive.
fn with_count(count: &[Bytes], op: impl FnOnce(Option<usize>) -> Op) -> Command {
    let Some(arg) = count.first() else {
        return Command::Collection(op(None));
    };
    match integer(arg) {
        Some(n) if n >= 0 => {
            Command::Collection(op(Some(usize::try_from(n).unwrap_or(usize::MAX))))
        }
        _ => Command::Fail(POSITIVE.into()),
    }
}

/// `ZADD key score member [score member …]`; its options are refused.
fn zadd(key: &Bytes, rest: &[Bytes]) -> Command {
    const OPTIONS: [&[u8]; 6] = [b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"];
    let first = rest[0].to_ascii_uppercase();
    if OPTIONS.contains(&first.as_slice()) {
        return Command::Reply(
            error(format!(
                "ERR ZADD option '{}' is not supported by ringkv",
                text(&rest[0])
            ))
            .into(),
        );
    }
    if !rest.len().is_multiple_of(2) {
        return Command::Reply(error("ERR syntax error").into());
    }
    let mut members = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks(2) {
        let Some(score) = crdt::parse_score(&pair[0]) else {
            return Command::Fail("ERR value is not a valid float".into());
        };
        members.push((score.to_bits(), pair[1].clone()));
    }
    Command::Collection(Op::ZAdd(key.clone(), members))
}

/// `ZRANGE key start stop [WITHSCORES]`, by index only.
fn zrange(key: &Bytes, start: &Bytes, stop: &Bytes, options: &[Bytes]) -> Command {
    let mut with_scores = false;
    for option in options {
        match option.to_ascii_uppercase().as_slice() {
            b"WITHSCORES" => with_scores = true,
            b"BYSCORE" | b"BYLEX" | b"REV" | b"LIMIT" => {
                return Command::Reply(
                    error(format!(
                        "ERR ZRANGE option '{}' is not supported by ringkv",
                        text(option)
                    ))
                    .into(),
                )
            }
            _ => return Command::Reply(error("ERR syntax error").into()),
        }
    }
    match (integer(start), integer(stop)) {
        (Some(start), Some(stop)) => {
            Command::Collection(Op::ZRange(key.clone(), start, stop, with_scores))
        }
        _ => not_integer(),
    }
}

/// Run `op`.
pub async fn run(ctx: &Context, op: Op) -> Outcome<Reply> {
    match op {
        Op::Push(key, end, elems) => {
            let update = Update::Push(end, elems.into_iter().map(|e| e.to_vec()).collect());
            exec::update(ctx, key, update).await.map(int)
        }
        Op::Pop(key, end, count) => {
            let taken =
                exec::update_elements(ctx, key, Update::Pop(end, count.unwrap_or(1))).await?;
            Ok(popped(taken, count.is_some()))
        }
        Op::SPop(key, count) => {
            let taken = exec::update_elements(ctx, key, Update::SPop(count.unwrap_or(1))).await?;
            match count {
                // Redis answers an empty array for a missing key.
                Some(_) => Ok(Reply::Set(taken.unwrap_or_default())),
                None => Ok(popped(taken, false)),
            }
        }
        Op::ZPop(key, min, count) => {
            let taken =
                exec::update_elements(ctx, key, Update::ZPop(min, count.unwrap_or(1))).await?;
            Ok(Reply::Array(scored(
                taken.unwrap_or_default(),
                count.is_some(),
            )))
        }
        Op::ZAdd(key, members) => {
            let members = members.into_iter().map(|(s, m)| (s, m.to_vec())).collect();
            exec::update(ctx, key, Update::ZAdd(members)).await.map(int)
        }
        Op::ZRem(key, members) => {
            let members = members.into_iter().map(|m| m.to_vec()).collect();
            exec::update(ctx, key, Update::ZRem(members)).await.map(int)
        }
        Op::LRange(key, start, stop) => {
            let list = list(ctx, &key).await?;
            let elems = list.as_ref().map(|l| l.ordered()).unwrap_or_default();
            let range = crdt::index_range(start, stop, elems.len());
            let items = range.map_or(Vec::new(), |(a, b)| elems[a..=b].to_vec());
            Ok(BytesFrame::Array(items.into_iter().map(bulk).collect()).into())
        }
        Op::LLen(key) => {
            let list = list(ctx, &key).await?;
            Ok(int(list.map_or(0, |l| l.len() as i64)))
        }
        Op::LIndex(key, index) => {
            let list = list(ctx, &key).await?;
            let elems = list.as_ref().map(|l| l.ordered()).unwrap_or_default();
            let at = crdt::index_range(index, index, elems.len()).map(|(a, _)| elems[a]);
            Ok(at.map_or(BytesFrame::Null, bulk).into())
        }
        Op::ZScore(key, member) => {
            let zset = zset(ctx, &key).await?;
            let score = zset.and_then(|z| z.score(&member));
            Ok(score.map_or(BytesFrame::Null.into(), |s| {
                Reply::Double(crdt::format_score(s).into())
            }))
        }
        Op::ZCard(key) => {
            let zset = zset(ctx, &key).await?;
            Ok(int(zset.map_or(0, |z| z.len() as i64)))
        }
        Op::ZRange(key, start, stop, with_scores) => {
            let ranked = zset(ctx, &key)
                .await?
                .map(|z| z.ranked())
                .unwrap_or_default();
            let range = crdt::index_range(start, stop, ranked.len());
            let picked = range.map_or(&[][..], |(a, b)| &ranked[a..=b]);
            if !with_scores {
                let members = picked.iter().map(|(m, _)| bulk(m)).collect();
                return Ok(BytesFrame::Array(members).into());
            }
            let flat = picked
                .iter()
                .flat_map(|(m, s)| [Bytes::from(m.clone()), crdt::format_score(*s).into()])
                .collect();
            Ok(Reply::Array(scored(flat, true)))
        }
    }
}

fn int(n: i64) -> Reply {
    BytesFrame::Integer(n).into()
}

fn bulk(bytes: impl AsRef<[u8]>) -> BytesFrame {
    BytesFrame::BulkString(Bytes::copy_from_slice(bytes.as_ref()))
}

/// A pop's reply: the element (nil for none), or with a count the array
/// of them (a nil array for a missing key, as Redis).
fn popped(taken: Option<Vec<Bytes>>, counted: bool) -> Reply {
    match (counted, taken) {
        (false, taken) => {
            let first = taken.and_then(|t| t.into_iter().next());
            first
                .map_or(BytesFrame::Null, BytesFrame::BulkString)
                .into()
        }
        (true, None) => Reply::NilArray,
        (true, Some(taken)) => {
            BytesFrame::Array(taken.into_iter().map(BytesFrame::BulkString).collect()).into()
        }
    }
}

/// Members each followed by a score: flat in RESP2; in RESP3 a pair per
/// member when `pairs` (a count or `WITHSCORES`), with the score a double.
fn scored(flat: Vec<Bytes>, pairs: bool) -> Vec<Reply> {
    let mut out = Vec::with_capacity(flat.len());
    for pair in flat.chunks(2) {
        let member: Reply = BytesFrame::BulkString(pair[0].clone()).into();
        let score = Reply::Double(pair[1].clone());
        if pairs {
            out.push(Reply::Pair(Box::new((member, score))));
        } else {
            out.extend([member, score]);
        }
    }
    out
}

async fn list(ctx: &Context, key: &Bytes) -> Outcome<Option<crdt::OrList>> {
    exec::typed(ctx, key, |v| match v {
        Value::List(l) => Some(l),
        _ => None,
    })
    .await
}

async fn zset(ctx: &Context, key: &Bytes) -> Outcome<Option<crdt::OrZSet>> {
    exec::typed(ctx, key, |v| match v {
        Value::ZSet(z) => Some(z),
        _ => None,
    })
    .await
}
