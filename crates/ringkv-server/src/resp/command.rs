//! Turning a request's arguments into a command: the name looked up, the
//! number of arguments checked. Commands that need neither the node nor
//! the connection's state (PING, ECHO, COMMAND, CONFIG GET, SELECT) and
//! every refusal are answered here and now, as [`Command::Reply`];
//! commands about the connection itself (AUTH, HELLO, CLIENT, MULTI …)
//! are the session's (see [`super::session`]).

use super::docs;
use super::protocol::Reply;
use super::scan::Scan;
use super::transaction::Queued;
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Get(Bytes),
    /// `SET`, `SETEX`, `PSETEX`: the key, the value and its TTL in ms.
    Set(Bytes, Bytes, Option<u64>),
    Del(Vec<Bytes>),
    Exists(Vec<Bytes>),
    MGet(Vec<Bytes>),
    MSet(Vec<(Bytes, Bytes)>),
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`: the key and the signed delta.
    IncrBy(Bytes, i64),
    SAdd(Bytes, Vec<Bytes>),
    SRem(Bytes, Vec<Bytes>),
    SMembers(Bytes),
    SIsMember(Bytes, Bytes),
    SMIsMember(Bytes, Vec<Bytes>),
    SCard(Bytes),
    Type(Bytes),
    Scan(Scan),
    Keys(Bytes),
    /// `HSET` (`true`: answer the count) or `HMSET` (`false`: answer OK).
    HSet(Bytes, Vec<(Bytes, Bytes)>, bool),
    HGet(Bytes, Bytes),
    HMGet(Bytes, Vec<Bytes>),
    HDel(Bytes, Vec<Bytes>),
    HGetAll(Bytes),
    HLen(Bytes),
    HExists(Bytes, Bytes),
    HIncrBy(Bytes, Bytes, i64),
    /// `INFO [section …]`, the sections in lower case.
    Info(Vec<String>),
    /// `DBSIZE`: what this node stores (see [`super::info::dbsize`]).
    DbSize,
    /// `EXEC`: the commands queued since `MULTI`, run in order.
    Exec(Vec<Queued>),
    /// Answer what came before, then close the connection.
    Quit,
    /// Answered without the node.
    Reply(Reply),
    /// A list or sorted-set command, or `SPOP` (see [`super::collections`]).
    Collection(super::collections::Op),
    /// `EXPIRE`, `PEXPIRE`, `PERSIST`, `TTL`, `PTTL` (see [`super::expiry`]).
    Expiry(super::expiry::Op),
    /// An error Redis finds only when the command runs (an `INCRBY` whose
    /// increment is not an integer), the line as sent: answered without
    /// the node, but queued after `MULTI` and answered in `EXEC`'s array,
    /// as in Redis, where a [`Command::Reply`] error aborts the
    /// transaction.
    Fail(String),
}

/// Every command this front end parses, for arity errors.
const KNOWN: [&[u8]; 36] = [
    b"HSET",
    b"HMSET",
    b"HGET",
    b"HMGET",
    b"HDEL",
    b"HGETALL",
    b"HLEN",
    b"HEXISTS",
    b"HINCRBY",
    b"SCAN",
    b"KEYS",
    b"GET",
    b"SET",
    b"DEL",
    b"EXISTS",
    b"MGET",
    b"MSET",
    b"INFO",
    b"DBSIZE",
    b"QUIT",
    b"PING",
    b"ECHO",
    b"COMMAND",
    b"CONFIG",
    b"SELECT",
    b"INCR",
    b"DECR",
    b"INCRBY",
    b"DECRBY",
    b"SADD",
    b"SREM",
    b"SMEMBERS",
    b"SISMEMBER",
    b"SMISMEMBER",
    b"SCARD",
    b"TYPE",
];

/// What `CONFIG GET` reports: redis-benchmark asks for `save` and
/// `appendonly` before it starts.
const CONFIG: [(&str, &str); 3] = [("save", ""), ("appendonly", "no"), ("databases", "1")];

impl Command {
    /// The command for `args` (the name first; never empty).
    pub fn parse(args: &[Bytes]) -> Command {
        let Some((name, args)) = args.split_first() else {
            return answer(error("ERR empty command"));
        };
        match (name.to_ascii_uppercase().as_slice(), args) {
            (b"GET", [key]) => Command::Get(key.clone()),
            (b"SET", [key, value, options @ ..]) => super::expiry::set(key, value, options),
            (b"DEL", keys @ [_, ..]) => Command::Del(keys.to_vec()),
            (b"EXISTS", keys @ [_, ..]) => Command::Exists(keys.to_vec()),
            (b"MGET", keys @ [_, ..]) => Command::MGet(keys.to_vec()),
            (b"MSET", pairs @ [_, _, ..]) if pairs.len() % 2 == 0 => Command::MSet(
                pairs
                    .chunks(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect(),
            ),
            (b"INCR", [key]) => Command::IncrBy(key.clone(), 1),
            (b"DECR", [key]) => Command::IncrBy(key.clone(), -1),
            (b"INCRBY", [key, by]) => incr_by(key, by, false),
            (b"DECRBY", [key, by]) => incr_by(key, by, true),
            (b"SADD", [key, members @ ..]) if !members.is_empty() => {
                Command::SAdd(key.clone(), members.to_vec())
            }
            (b"SREM", [key, members @ ..]) if !members.is_empty() => {
                Command::SRem(key.clone(), members.to_vec())
            }
            (b"SMEMBERS", [key]) => Command::SMembers(key.clone()),
            (b"SISMEMBER", [key, member]) => Command::SIsMember(key.clone(), member.clone()),
            (b"SMISMEMBER", [key, members @ ..]) if !members.is_empty() => {
                Command::SMIsMember(key.clone(), members.to_vec())
            }
            (b"SCARD", [key]) => Command::SCard(key.clone()),
            (b"TYPE", [key]) => Command::Type(key.clone()),
            (b"SCAN", args @ [_, ..]) => Scan::parse(args).map_or_else(answer, Command::Scan),
            (b"KEYS", [pattern]) => Command::Keys(pattern.clone()),
            (b"HSET" | b"HMSET", [key, pairs @ ..])
                if !pairs.is_empty() && pairs.len() % 2 == 0 =>
            {
                let pairs = pairs
                    .chunks(2)
                    .map(|fv| (fv[0].clone(), fv[1].clone()))
                    .collect();
                Command::HSet(key.clone(), pairs, name.eq_ignore_ascii_case(b"HSET"))
            }
            (b"HGET", [key, field]) => Command::HGet(key.clone(), field.clone()),
            (b"HMGET", [key, fields @ ..]) if !fields.is_empty() => {
                Command::HMGet(key.clone(), fields.to_vec())
            }
            (b"HDEL", [key, fields @ ..]) if !fields.is_empty() => {
                Command::HDel(key.clone(), fields.to_vec())
            }
            (b"HGETALL", [key]) => Command::HGetAll(key.clone()),
            (b"HLEN", [key]) => Command::HLen(key.clone()),
            (b"HEXISTS", [key, field]) => Command::HExists(key.clone(), field.clone()),
            (b"HINCRBY", [key, field, by]) => match ringkv_core::crdt::parse_integer(by) {
                Ok(by) => Command::HIncrBy(key.clone(), field.clone(), by),
                Err(_) => Command::Fail("ERR value is not an integer or out of range".into()),
            },
            (b"INFO", sections) => Command::Info(
                sections
                    .iter()
                    .map(|section| text(section).to_lowercase())
                    .collect(),
            ),
            (b"DBSIZE", []) => Command::DbSize,
            (b"QUIT", _) => Command::Quit,
            (b"PING", []) => answer(BytesFrame::SimpleString("PONG".into())),
            (b"PING" | b"ECHO", [message]) => answer(BytesFrame::BulkString(message.clone())),
            (b"COMMAND", sub) => Command::Reply(docs::command(sub)),
            (b"CONFIG", [sub, params @ ..]) => Command::Reply(config(sub, params)),
            (b"SELECT", [db]) => answer(select(db)),
            (upper, args)
                if super::expiry::NAMES
                    .iter()
                    .any(|n| n.as_bytes().eq_ignore_ascii_case(upper)) =>
            {
                super::expiry::parse(upper, args).unwrap_or_else(|| arity(name))
            }
            (upper, args)
                if super::collections::NAMES
                    .iter()
                    .any(|n| n.as_bytes().eq_ignore_ascii_case(upper)) =>
            {
                super::collections::parse(upper, args).unwrap_or_else(|| arity(name))
            }
            (upper, _) if KNOWN.contains(&upper) => arity(name),
            _ => answer(unknown(name, args)),
        }
    }

    /// The keys the command reads or writes.
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            Command::Get(key)
            | Command::Set(key, ..)
            | Command::IncrBy(key, _)
            | Command::SAdd(key, _)
            | Command::SRem(key, _)
            | Command::SMembers(key)
            | Command::SIsMember(key, _)
            | Command::SMIsMember(key, _)
            | Command::SCard(key)
            | Command::Type(key)
            | Command::HSet(key, ..)
            | Command::HGet(key, _)
            | Command::HMGet(key, _)
            | Command::HDel(key, _)
            | Command::HGetAll(key)
            | Command::HLen(key)
            | Command::HExists(key, _)
            | Command::HIncrBy(key, ..) => vec![key],
            Command::Collection(op) => vec![op.key()],
            Command::Expiry(op) => vec![op.key()],
            Command::Del(keys) | Command::Exists(keys) | Command::MGet(keys) => {
                keys.iter().collect()
            }
            Command::MSet(pairs) => pairs.iter().map(|(key, _)| key).collect(),
            Command::Exec(batch) => batch.iter().flat_map(|q| q.command.keys()).collect(),
            Command::Info(_)
            | Command::Scan(_)
            | Command::Keys(_)
            | Command::DbSize
            | Command::Quit
            | Command::Reply(_)
            | Command::Fail(_) => Vec::new(),
        }
    }
}

/// Redis's arity error for `name`.
fn arity(name: &Bytes) -> Command {
    answer(error(format!(
        "ERR wrong number of arguments for '{}' command",
        text(name).to_lowercase()
    )))
}

/// `INCRBY`/`DECRBY key by`: `by` read as Redis reads an integer.
fn incr_by(key: &Bytes, by: &Bytes, negate: bool) -> Command {
    let delta = match ringkv_core::crdt::parse_integer(by) {
        Ok(by) if negate => by.checked_neg(),
        Ok(by) => Some(by),
        Err(_) => return Command::Fail("ERR value is not an integer or out of range".into()),
    };
    match delta {
        Some(delta) => Command::IncrBy(key.clone(), delta),
        None => Command::Fail("ERR decrement would overflow".into()),
    }
}

/// Redis's words for a command it does not know: the name, then the
/// first arguments quoted (while they take under 128 bytes), each cut to
/// the room left; line breaks as spaces.
fn unknown(name: &[u8], args: &[Bytes]) -> BytesFrame {
    const ROOM: usize = 128;
    let mut quoted = Vec::new();
    for arg in args {
        if quoted.len() >= ROOM {
            break;
        }
        let room = ROOM - quoted.len();
        quoted.extend_from_slice(&[b"'", &arg[..arg.len().min(room)], b"' "].concat());
    }
    let name = &name[..name.len().min(ROOM)];
    let line = [
        b"ERR unknown command '",
        name,
        b"', with args beginning with: ",
        &quoted,
    ]
    .concat();
    error(escaped(&line).replace(['\r', '\n'], " "))
}

/// `bytes` as text, each byte that is not UTF-8 as `\xHH` (an error line
/// is text; replacing such bytes with U+FFFD hid what the client sent).
fn escaped(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for b in chunk.invalid() {
            text.push_str(&format!("\\x{b:02x}"));
        }
    }
    text
}

/// A command answered at once with `frame`.
pub fn answer(frame: BytesFrame) -> Command {
    Command::Reply(frame.into())
}

/// An error reply; `message` starts with its code word (`ERR`).
pub fn error(message: impl Into<String>) -> BytesFrame {
    BytesFrame::Error(message.into().into())
}

pub fn ok() -> BytesFrame {
    BytesFrame::SimpleString("OK".into())
}

/// An argument as text for messages (invalid UTF-8 replaced).
pub fn text(arg: &Bytes) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// `CONFIG GET name...` (`*` for all) from [`CONFIG`], a map as in
/// Redis; nothing else.
fn config(sub: &Bytes, params: &[Bytes]) -> Reply {
    if !sub.eq_ignore_ascii_case(b"GET") || params.is_empty() {
        return unsupported("CONFIG", sub).into();
    }
    let wanted = |name: &str| {
        params
            .iter()
            .any(|p| p.as_ref() == b"*" || p.eq_ignore_ascii_case(name.as_bytes()))
    };
    let found = CONFIG.iter().filter(|(name, _)| wanted(name));
    Reply::map(found.map(|(name, value)| (*name, BytesFrame::BulkString((*value).into()).into())))
}

/// `SELECT 0`: there is one database.
fn select(db: &Bytes) -> BytesFrame {
    match text(db).parse::<i64>() {
        Ok(0) => ok(),
        Ok(_) => error("ERR DB index is out of range"),
        Err(_) => error("ERR value is not an integer or out of range"),
    }
}

pub fn unsupported(command: &str, sub: &Bytes) -> BytesFrame {
    error(format!(
        "ERR {command} {} is not supported by ringkv",
        text(sub).to_uppercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Command {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|a| Bytes::from(a.to_string()))
            .collect();
        Command::parse(&args)
    }

    fn error_text(line: &str) -> String {
        match parse(line) {
            Command::Reply(Reply::Plain(BytesFrame::Error(e))) => e.to_string(),
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    fn pairs(items: &[(&'static str, &'static str)]) -> Reply {
        Reply::map(
            items
                .iter()
                .map(|(name, value)| (*name, BytesFrame::BulkString((*value).into()).into())),
        )
    }

    #[test]
    fn data_commands_take_their_keys_in_any_case() {
        assert_eq!(parse("get k"), Command::Get("k".into()));
        assert_eq!(parse("SeT k v"), Command::Set("k".into(), "v".into(), None));
        assert_eq!(parse("DEL a b"), Command::Del(vec!["a".into(), "b".into()]));
        assert_eq!(
            parse("exists a a"),
            Command::Exists(vec!["a".into(), "a".into()])
        );
        let mset = parse("MSET a 1 b 2");
        assert_eq!(
            mset,
            Command::MSet(vec![("a".into(), "1".into()), ("b".into(), "2".into())])
        );
        assert_eq!(mset.keys(), [&Bytes::from("a"), &Bytes::from("b")]);
        assert_eq!(parse("INFO Server"), Command::Info(vec!["server".into()]));
        assert_eq!(parse("DBSIZE"), Command::DbSize);
        assert_eq!(parse("quit"), Command::Quit);
        assert!(parse("PING").keys().is_empty());
    }

    #[test]
    fn wrong_arity_and_unknown_commands_are_named() {
        for (line, name) in [
            ("GET", "get"),
            ("get a b", "get"),
            ("MSET a", "mset"),
            ("MSET a 1 b", "mset"),
            ("DEL", "del"),
            ("echo", "echo"),
        ] {
            let expected = format!("ERR wrong number of arguments for '{name}' command");
            assert_eq!(error_text(line), expected);
        }
        assert_eq!(
            error_text("FLUSHALL"),
            "ERR unknown command 'FLUSHALL', with args beginning with: "
        );
        assert_eq!(
            error_text("nope a b"),
            "ERR unknown command 'nope', with args beginning with: 'a' 'b' "
        );
        let binary = [
            Bytes::from_static(b"\xffno\xc3"),
            Bytes::from_static(b"\xe9t\xc3\xa9"),
        ];
        match Command::parse(&binary) {
            Command::Reply(Reply::Plain(BytesFrame::Error(e))) => assert_eq!(
                e.to_string(),
                "ERR unknown command '\\xffno\\xc3', with args beginning with: '\\xe9t\u{e9}' "
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expiry_options_parse_as_redis_checks_them() {
        let fail = |line: &str| match parse(line) {
            Command::Fail(e) => e,
            other => panic!("{line:?} parsed as {other:?}"),
        };
        let set = |ttl| Command::Set("k".into(), "v".into(), ttl);
        assert_eq!(parse("SET k v EX 10"), set(Some(10_000)));
        assert_eq!(parse("set k v px 1500"), set(Some(1_500)));
        assert_eq!(parse("SETEX k 2 v"), set(Some(2_000)));
        assert_eq!(parse("PSETEX k 5 v"), set(Some(5)));
        for line in ["SET k v EX 0", "SET k v PX -1", "SETEX k 0 v"] {
            assert!(
                fail(line).starts_with("ERR invalid expire time in"),
                "{line}"
            );
        }
        assert!(fail("SET k v EX ten").contains("not an integer"));
        assert!(fail("SET k v NX").contains("SET option 'NX' is not supported"));
        assert!(fail("SET k v KEEPTTL").contains("is not supported"));
        for line in [
            "SET k v EX",
            "SET k v EX 1 PX 2",
            "SET k v PX 1 EX 2",
            "SET k v FOO",
        ] {
            assert_eq!(fail(line), "ERR syntax error", "{line}");
        }
        assert_eq!(
            parse("SET k v EX 1 ex 2"),
            set(Some(2_000)),
            "the last counts"
        );
        assert!(fail("SET k v EX 4102444800").contains("at most 100 years"));
        assert_eq!(
            fail("EXPIRE k 9223372036854775807"),
            "ERR invalid expire time in 'expire' command"
        );
        assert_eq!(
            fail("EXPIRE k -9223372036854775808"),
            "ERR invalid expire time in 'expire' command"
        );
        assert!(fail("PEXPIRE k 9223372036854775807").contains("at most 100 years"));
        assert!(fail("EXPIRE k 10 NX").contains("option 'NX' is not supported"));
        use super::super::expiry::Op;
        assert_eq!(
            parse("EXPIRE k 10"),
            Command::Expiry(Op::Expire("k".into(), 10_000))
        );
        assert_eq!(
            parse("pexpire k -1"),
            Command::Expiry(Op::Expire("k".into(), -1))
        );
        assert_eq!(parse("TTL k"), Command::Expiry(Op::Ttl("k".into(), false)));
        assert_eq!(parse("PTTL k"), Command::Expiry(Op::Ttl("k".into(), true)));
        assert_eq!(parse("PERSIST k"), Command::Expiry(Op::Persist("k".into())));
        assert_eq!(
            error_text("TTL"),
            "ERR wrong number of arguments for 'ttl' command"
        );
    }

    #[test]
    fn housekeeping_commands_answer_what_tools_expect() {
        let reply = |line| match parse(line) {
            Command::Reply(reply) => reply,
            other => panic!("{line:?} parsed as {other:?}"),
        };
        let plain = |frame: BytesFrame| Reply::from(frame);
        assert_eq!(
            reply("PING"),
            plain(BytesFrame::SimpleString("PONG".into()))
        );
        assert_eq!(reply("ECHO hi"), plain(BytesFrame::BulkString("hi".into())));
        assert_eq!(reply("CONFIG GET save"), pairs(&[("save", "")]));
        assert_eq!(
            reply("config get APPENDONLY nothing"),
            pairs(&[("appendonly", "no")])
        );
        assert_eq!(
            reply("CONFIG GET *"),
            pairs(&[("save", ""), ("appendonly", "no"), ("databases", "1")])
        );
        assert!(reply("CONFIG SET save x").is_error());
        assert_eq!(reply("SELECT 0"), plain(ok()));
        assert_eq!(
            reply("SELECT 1"),
            plain(error("ERR DB index is out of range"))
        );
    }
}
