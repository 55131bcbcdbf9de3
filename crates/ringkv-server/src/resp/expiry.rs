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
        (b"EXPIRE", [key, ttl]) => expire_of(key, ttl, 1000, "expire"),
        (b"PEXPIRE", [key, ttl]) => expire_of(key, ttl, 1, "pexpire"),
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

/// `SET key value [EX seconds | PX ms]`: the TTL in ms, or the error as
/// Redis words it (`EX` without a number, or both `EX` and `PX`: a syntax
/// error; the last of a repeated one counts).
pub fn set(key: &Bytes, value: &Bytes, options: &[Bytes]) -> Command {
    const REFUSED: [&[u8]; 6] = [b"NX", b"XX", b"GET", b"KEEPTTL", b"EXAT", b"PXAT"];
    let mut ttl: Option<(u64, &Bytes)> = None;
    let mut rest = options.iter();
    while let Some(option) = rest.next() {
        let upper = option.to_ascii_uppercase();
        let unit = match upper.as_slice() {
            b"EX" => 1000,
            b"PX" => 1,
            refused if REFUSED.contains(&refused) => {
                return Command::Fail(format!(
                    "ERR SET option '{}' is not supported by ringkv (EX and PX are)",
                    text(option)
                ))
            }
            _ => return syntax_error(),
        };
        match (rest.next(), ttl) {
            (Some(_), Some((seen, _))) if seen != unit => return syntax_error(),
            (Some(amount), _) => ttl = Some((unit, amount)),
            (None, _) => return syntax_error(),
        }
    }
    match ttl {
        None => Command::Set(key.clone(), value.clone(), None),
        Some((unit, amount)) => set_with(key, value, ttl_of(amount, unit, "set")),
    }
}

fn syntax_error() -> Command {
    Command::Fail("ERR syntax error".into())
}

fn set_with(key: &Bytes, value: &Bytes, ttl: Result<u64, Command>) -> Command {
    match ttl {
        Ok(ms) => Command::Set(key.clone(), value.clone(), Some(ms)),
        Err(refusal) => refusal,
    }
}

/// `amount` × `unit` ms, as Redis checks a `SET`/`SETEX` expire time: an
/// integer above 0 — and here at most 100 years ([`MAX_TTL_MS`]).
fn ttl_of(amount: &Bytes, unit: u64, command: &str) -> Result<u64, Command> {
    let n = parse_integer(amount).map_err(|_| not_an_integer())?;
    let ms = u64::try_from(n).ok().and_then(|n| n.checked_mul(unit));
    match ms {
        Some(ms) if ms > 0 && ms <= MAX_TTL_MS => Ok(ms),
        Some(ms) if ms > 0 => Err(too_far(command)),
        _ => Err(invalid_expire_time(command)),
    }
}

fn invalid_expire_time(command: &str) -> Command {
    Command::Fail(format!("ERR invalid expire time in '{command}' command"))
}

/// Redis takes TTLs up to its clock's range; ringkv bounds them.
fn too_far(command: &str) -> Command {
    Command::Fail(format!(
        "ERR invalid expire time in '{command}' command: ringkv takes at most 100 years \
         ({MAX_TTL_MS} ms)"
    ))
}

/// `EXPIRE`'s (`unit` 1000) or `PEXPIRE`'s TTL in ms: at most 0 deletes
/// the key, as in Redis; one whose ms overflow is Redis's invalid expire
/// time; past 100 years ringkv's.
fn expire_of(key: &Bytes, ttl: &Bytes, unit: i64, command: &str) -> Command {
    let Ok(n) = parse_integer(ttl) else {
        return not_an_integer();
    };
    match n.checked_mul(unit) {
        None => invalid_expire_time(command),
        Some(ms) if ms > MAX_TTL_MS as i64 => too_far(command),
        Some(ms) => Command::Expiry(Op::Expire(key.clone(), ms)),
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
            debug_assert!(ms as u64 <= MAX_TTL_MS, "checked when parsed");
            exec::update(ctx, key, Update::Expire(Some(ms as u64)))
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
