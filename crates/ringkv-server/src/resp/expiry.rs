//! Expiry over RESP: `SET … EX/PX`, `SETEX`, `PSETEX`, `EXPIRE`,
//! `PEXPIRE`, `PERSIST`, `TTL` and `PTTL`, as Redis 7.0 answers them.
//!
//! A TTL becomes an absolute expiry by the clock of the node that
//! coordinates the write ([`ringkv_core::siblings::Sibling::expires_at`]);
//! `TTL` counts down by the clock of the node asked. An expired key reads
//! as missing on every node at once, however long its collection takes.
//! `EXPIRE`/`PERSIST` write the value again with the new expiry; every
//! other update keeps the key's TTL and `SET` without `EX`/`PX` clears it,
//! as in Redis. Not supported (a clear error): `SET`'s `NX`, `XX`, `GET`,
//! `KEEPTTL`, `EXAT`, `PXAT`, and `EXPIRE`'s `NX`/`XX`/`GT`/`LT`.

use super::command::{text, Command};
use super::exec::{self, Outcome};
use super::protocol::Reply;
use super::Context;
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;
use ringkv_core::crdt::{parse_integer, Update};
use ringkv_core::siblings::MAX_TTL_MS;

/// An expiry command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `EXPIRE` (seconds) / `PEXPIRE`, in ms; at most 0 deletes the key.
    Expire(Bytes, i64),
    Persist(Bytes),
    /// `TTL` (`false`: seconds) or `PTTL` (`true`: ms).
    Ttl(Bytes, bool),
}

/// The names [`parse`] knows (besides `SET`'s options).
pub const NAMES: [&str; 7] = [
    "setex", "psetex", "expire", "pexpire", "persist", "ttl", "pttl",
];

impl Op {
    pub fn key(&self) -> &Bytes {
        match self {
            Op::Expire(key, _) | Op::Persist(key) | Op::Ttl(key, _) => key,
        }
    }
}

/// The command for `name` (upper case) and `args`, `None` when the
/// arguments do not fit (an arity error then).
pub fn parse(name: &[u8], args: &[Bytes]) -> Option<Command> {
    Some(match (name, args) {
        (b"SETEX", [key, seconds, value]) => set_with(key, value, ttl_of(seconds, 1000, "setex")),
        (b"PSETEX", [key, ms, value]) => set_with(key, value, ttl_of(ms, 1, "psetex")),
        (b"EXPIRE" | b"PEXPIRE", [key, ttl]) => {
            let unit = if name == b"EXPIRE" { 1000 } else { 1 };
            match parse_integer(ttl) {
                Ok(n) => Command::Expiry(Op::Expire(key.clone(), n.saturating_mul(unit))),
                Err(_) => not_an_integer(),
            }
        }
        (b"EXPIRE" | b"PEXPIRE", [_, _, option, ..]) => Command::Fail(format!(
            "ERR {} option '{}' is not supported by ringkv",
            String::from_utf8_lossy(name),
            text(option)
        )),
        (b"PERSIST", [key]) => Command::Expiry(Op::Persist(key.clone())),
        (b"TTL", [key]) => Command::Expiry(Op::Ttl(key.clone(), false)),
        (b"PTTL", [key]) => Command::Expiry(Op::Ttl(key.clone(), true)),
        _ => return None,
    })
}

/// `SET key value [EX seconds | PX ms]`: the TTL in ms, or the error.
pub fn set(key: &Bytes, value: &Bytes, options: &[Bytes]) -> Command {
    match options {
        [] => Command::Set(key.clone(), value.clone(), None),
        [unit, amount] if unit.eq_ignore_ascii_case(b"EX") => {
            set_with(key, value, ttl_of(amount, 1000, "set"))
        }
        [unit, amount] if unit.eq_ignore_ascii_case(b"PX") => {
            set_with(key, value, ttl_of(amount, 1, "set"))
        }
        [option, ..] => Command::Fail(format!(
            "ERR SET option '{}' is not supported by ringkv (EX and PX are)",
            text(option)
        )),
    }
}

fn set_with(key: &Bytes, value: &Bytes, ttl: Result<u64, Command>) -> Command {
    match ttl {
        Ok(ms) => Command::Set(key.clone(), value.clone(), Some(ms)),
        Err(refusal) => refusal,
    }
}

/// `amount` × `unit` ms, as Redis checks a `SET`/`SETEX` expire time: an
/// integer above 0 (and here at most 100 years).
fn ttl_of(amount: &Bytes, unit: u64, command: &str) -> Result<u64, Command> {
    let n = parse_integer(amount).map_err(|_| not_an_integer())?;
    let ms = u64::try_from(n).ok().and_then(|n| n.checked_mul(unit));
    match ms {
        Some(ms) if ms > 0 && ms <= MAX_TTL_MS => Ok(ms),
        _ => Err(Command::Fail(format!(
            "ERR invalid expire time in '{command}' command"
        ))),
    }
}

fn not_an_integer() -> Command {
    Command::Fail("ERR value is not an integer or out of range".into())
}

/// Run `op`.
pub async fn run(ctx: &Context, op: Op) -> Outcome<Reply> {
    let integer = |n: i64| Reply::from(BytesFrame::Integer(n));
    match op {
        // Redis deletes at once on a TTL of 0 or less.
        Op::Expire(key, ms) if ms <= 0 => exec::update(ctx, key, Update::Del).await.map(integer),
        Op::Expire(key, ms) => {
            let ms = (ms as u64).min(MAX_TTL_MS);
            exec::update(ctx, key, Update::Expire(Some(ms)))
                .await
                .map(integer)
        }
        Op::Persist(key) => exec::update(ctx, key, Update::Expire(None))
            .await
            .map(integer),
        Op::Ttl(key, in_ms) => ttl(ctx, &key, in_ms).await.map(integer),
    }
}

/// `TTL`/`PTTL`: -2 when the key holds nothing, -1 when it never expires,
/// else what is left by this node's clock (seconds rounded as Redis does).
async fn ttl(ctx: &Context, key: &[u8], in_ms: bool) -> Outcome<i64> {
    let Some(expires_at) = exec::expiry(ctx, key).await? else {
        return Ok(-2);
    };
    let Some(at) = expires_at else {
        return Ok(-1);
    };
    let left = at.saturating_sub(now_ms()) as i64;
    Ok(if in_ms { left } else { (left + 500) / 1000 })
}

/// This node's wall clock, ms since the Unix epoch (the node's own clock
/// too: the same machine).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
