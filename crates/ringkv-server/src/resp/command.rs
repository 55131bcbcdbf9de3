//! Turning a request's arguments into a command: the name looked up, the
//! number of arguments checked. Commands that need no node (PING, ECHO,
//! COMMAND, CONFIG GET, SELECT, CLIENT) and every refusal are answered here
//! and now, as [`Command::Reply`].

use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Get(Bytes),
    Set(Bytes, Bytes),
    Del(Vec<Bytes>),
    Exists(Vec<Bytes>),
    MGet(Vec<Bytes>),
    MSet(Vec<(Bytes, Bytes)>),
    /// `INFO [section]`, the section in lower case.
    Info(Option<String>),
    /// Answer what came before, then close the connection.
    Quit,
    /// Answered without the node.
    Reply(BytesFrame),
}

/// Every command this front end knows, for arity errors.
const KNOWN: [&[u8]; 14] = [
    b"GET", b"SET", b"DEL", b"EXISTS", b"MGET", b"MSET", b"INFO", b"QUIT", b"PING", b"ECHO",
    b"COMMAND", b"CONFIG", b"SELECT", b"CLIENT",
];

/// What `CONFIG GET` reports: redis-benchmark asks for `save` and
/// `appendonly` before it starts.
const CONFIG: [(&str, &str); 3] = [("save", ""), ("appendonly", "no"), ("databases", "1")];

impl Command {
    /// The command for `args` (the name first; never empty).
    pub fn parse(args: &[Bytes]) -> Command {
        let Some((name, args)) = args.split_first() else {
            return Command::Reply(error("ERR empty command"));
        };
        match (name.to_ascii_uppercase().as_slice(), args) {
            (b"GET", [key]) => Command::Get(key.clone()),
            (b"SET", [key, value]) => Command::Set(key.clone(), value.clone()),
            (b"SET", [_, _, option, ..]) => Command::Reply(error(format!(
                "ERR SET option '{}' is not supported by ringkv",
                text(option)
            ))),
            (b"DEL", keys @ [_, ..]) => Command::Del(keys.to_vec()),
            (b"EXISTS", keys @ [_, ..]) => Command::Exists(keys.to_vec()),
            (b"MGET", keys @ [_, ..]) => Command::MGet(keys.to_vec()),
            (b"MSET", pairs @ [_, _, ..]) if pairs.len() % 2 == 0 => Command::MSet(
                pairs
                    .chunks(2)
                    .map(|kv| (kv[0].clone(), kv[1].clone()))
                    .collect(),
            ),
            (b"INFO", []) => Command::Info(None),
            (b"INFO", [section]) => Command::Info(Some(text(section).to_lowercase())),
            (b"QUIT", _) => Command::Quit,
            (b"PING", []) => Command::Reply(BytesFrame::SimpleString("PONG".into())),
            (b"PING" | b"ECHO", [message]) => {
                Command::Reply(BytesFrame::BulkString(message.clone()))
            }
            (b"COMMAND", sub) => Command::Reply(command_table(sub)),
            (b"CONFIG", [sub, params @ ..]) => Command::Reply(config(sub, params)),
            (b"SELECT", [db]) => Command::Reply(select(db)),
            (b"CLIENT", [sub, ..]) => Command::Reply(client(sub)),
            (b"HELLO", _) => Command::Reply(error(
                "ERR unknown command 'HELLO': ringkv speaks RESP2 only",
            )),
            (upper, _) if KNOWN.contains(&upper) => Command::Reply(error(format!(
                "ERR wrong number of arguments for '{}' command",
                text(name).to_lowercase()
            ))),
            _ => Command::Reply(error(format!("ERR unknown command '{}'", text(name)))),
        }
    }

    /// The keys the command reads or writes.
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            Command::Get(key) | Command::Set(key, _) => vec![key],
            Command::Del(keys) | Command::Exists(keys) | Command::MGet(keys) => {
                keys.iter().collect()
            }
            Command::MSet(pairs) => pairs.iter().map(|(key, _)| key).collect(),
            Command::Info(_) | Command::Quit | Command::Reply(_) => Vec::new(),
        }
    }
}

/// An error reply; `message` starts with its code word (`ERR`).
pub fn error(message: impl Into<String>) -> BytesFrame {
    BytesFrame::Error(message.into().into())
}

pub fn ok() -> BytesFrame {
    BytesFrame::SimpleString("OK".into())
}

/// An argument as text for messages (invalid UTF-8 replaced).
fn text(arg: &Bytes) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// `COMMAND`: an empty command table (clients then use their own), and an
/// error for `DOCS`, on which redis-cli falls back to its built-in help.
fn command_table(sub: &[Bytes]) -> BytesFrame {
    let Some(sub) = sub.first() else {
        return BytesFrame::Array(Vec::new());
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" => BytesFrame::Integer(0),
        b"INFO" | b"LIST" => BytesFrame::Array(Vec::new()),
        _ => unsupported("COMMAND", sub),
    }
}

/// `CONFIG GET name...` (`*` for all) from [`CONFIG`]; nothing else.
fn config(sub: &Bytes, params: &[Bytes]) -> BytesFrame {
    if !sub.eq_ignore_ascii_case(b"GET") || params.is_empty() {
        return unsupported("CONFIG", sub);
    }
    let wanted = |name: &str| {
        params
            .iter()
            .any(|p| p.as_ref() == b"*" || p.eq_ignore_ascii_case(name.as_bytes()))
    };
    let found = CONFIG.iter().filter(|(name, _)| wanted(name));
    let flat = found.flat_map(|(name, value)| [*name, *value]);
    BytesFrame::Array(flat.map(|s| BytesFrame::BulkString(s.into())).collect())
}

/// `SELECT 0`: there is one database.
fn select(db: &Bytes) -> BytesFrame {
    match text(db).parse::<i64>() {
        Ok(0) => ok(),
        Ok(_) => error("ERR DB index is out of range"),
        Err(_) => error("ERR value is not an integer or out of range"),
    }
}

/// `CLIENT SETNAME` / `SETINFO` (sent by client libraries) are accepted
/// and forgotten; `GETNAME` has nothing to tell.
fn client(sub: &Bytes) -> BytesFrame {
    match sub.to_ascii_uppercase().as_slice() {
        b"SETNAME" | b"SETINFO" => ok(),
        b"GETNAME" => BytesFrame::Null,
        _ => unsupported("CLIENT", sub),
    }
}

fn unsupported(command: &str, sub: &Bytes) -> BytesFrame {
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
            Command::Reply(BytesFrame::Error(e)) => e.to_string(),
            other => panic!("{line:?} parsed as {other:?}"),
        }
    }

    fn bulks(items: &[&str]) -> BytesFrame {
        BytesFrame::Array(
            items
                .iter()
                .map(|s| BytesFrame::BulkString(Bytes::from(s.to_string())))
                .collect(),
        )
    }

    #[test]
    fn data_commands_take_their_keys_in_any_case() {
        assert_eq!(parse("get k"), Command::Get("k".into()));
        assert_eq!(parse("SeT k v"), Command::Set("k".into(), "v".into()));
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
        assert_eq!(parse("INFO Server"), Command::Info(Some("server".into())));
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
        assert_eq!(error_text("FLUSHALL"), "ERR unknown command 'FLUSHALL'");
        assert!(error_text("SET k v EX 10").contains("SET option 'EX' is not supported"));
        assert!(error_text("HELLO 3").starts_with("ERR unknown command 'HELLO'"));
    }

    #[test]
    fn housekeeping_commands_answer_what_tools_expect() {
        let reply = |line| match parse(line) {
            Command::Reply(frame) => frame,
            other => panic!("{line:?} parsed as {other:?}"),
        };
        assert_eq!(reply("PING"), BytesFrame::SimpleString("PONG".into()));
        assert_eq!(reply("ECHO hi"), BytesFrame::BulkString("hi".into()));
        assert_eq!(reply("COMMAND"), BytesFrame::Array(Vec::new()));
        assert_eq!(reply("COMMAND COUNT"), BytesFrame::Integer(0));
        assert!(matches!(reply("COMMAND DOCS"), BytesFrame::Error(_)));
        assert_eq!(reply("CONFIG GET save"), bulks(&["save", ""]));
        assert_eq!(
            reply("config get APPENDONLY nothing"),
            bulks(&["appendonly", "no"])
        );
        assert_eq!(
            reply("CONFIG GET *"),
            bulks(&["save", "", "appendonly", "no", "databases", "1"])
        );
        assert!(matches!(reply("CONFIG SET save x"), BytesFrame::Error(_)));
        assert_eq!(reply("SELECT 0"), ok());
        assert_eq!(reply("SELECT 1"), error("ERR DB index is out of range"));
        assert_eq!(reply("CLIENT SETNAME app"), ok());
        assert_eq!(reply("CLIENT GETNAME"), BytesFrame::Null);
        assert!(matches!(reply("CLIENT KILL x"), BytesFrame::Error(_)));
    }
}
