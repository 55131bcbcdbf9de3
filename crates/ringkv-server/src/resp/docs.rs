//! `COMMAND`: what redis-cli asks at start (`COMMAND DOCS`, for its help
//! and its argument hints) and client libraries ask at times (`COMMAND
//! COUNT`, `COMMAND INFO`). The docs cover the commands ringkv serves, so
//! redis-cli's hints and `help` show only those.

use super::command::unsupported;
use super::protocol::Reply;
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;

/// An argument: its name, its type, and whether it may repeat. Only
/// types that need no nested `arguments` (key, string, integer): redis-cli
/// 7.0 dereferences a `block`'s or `oneof`'s without checking, and crashes.
type Arg = (&'static str, &'static str, bool);

/// A command's documentation: name, summary, group, arguments.
type Doc = (&'static str, &'static str, &'static str, &'static [Arg]);

const KEY: Arg = ("key", "key", false);
const KEYS: Arg = ("key", "key", true);
const VALUE: Arg = ("value", "string", false);
const MESSAGE: Arg = ("message", "string", false);
const SUBCOMMAND: Arg = ("subcommand", "string", false);
const COUNT: Arg = ("count", "integer", false);

/// The commands ringkv serves, as `COMMAND DOCS` describes them: one
/// line each, as a table.
#[rustfmt::skip]
const DOCS: [Doc; 59] = [
    ("get", "Returns the string value of a key.", "string", &[KEY]),
    ("set", "Sets the string value of a key.", "string", &[KEY, VALUE]),
    ("mget", "Returns the values of keys.", "string", &[KEYS]),
    ("mset", "Sets the values of keys (not atomically in ringkv).", "string", &[("key value", "string", true)]),
    ("del", "Deletes keys; answers how many held a value.", "generic", &[KEYS]),
    ("exists", "Counts the keys that hold a value.", "generic", &[KEYS]),
    ("dbsize", "Keys stored on this node, every keyspace.", "server", &[]),
    ("info", "Server, clients, keyspace and ringkv sections.", "server", &[("section", "string", true)]),
    ("ping", "Answers PONG, or the message.", "connection", &[MESSAGE]),
    ("echo", "Answers the message.", "connection", &[MESSAGE]),
    ("quit", "Closes the connection.", "connection", &[]),
    ("select", "Selects database 0, the only one.", "connection", &[("index", "integer", false)]),
    ("auth", "Authenticates the connection.", "connection", &[("username", "string", false), ("password", "string", false)]),
    ("hello", "Handshakes, choosing RESP2 or RESP3.", "connection", &[("protover", "integer", false)]),
    ("client", "CLIENT ID, INFO, SETNAME, GETNAME, SETINFO.", "connection", &[SUBCOMMAND]),
    ("multi", "Starts queueing commands for EXEC.", "transactions", &[]),
    ("exec", "Runs the queued commands in order (not atomically in ringkv).", "transactions", &[]),
    ("discard", "Drops the queued commands.", "transactions", &[]),
    ("watch", "Refused: ringkv cannot offer optimistic locking.", "transactions", &[KEYS]),
    ("unwatch", "Nothing to forget: WATCH is refused.", "transactions", &[]),
    ("config", "CONFIG GET of a few fixed values.", "server", &[SUBCOMMAND]),
    ("command", "COMMAND DOCS, COUNT, INFO.", "server", &[SUBCOMMAND]),
    ("incr", "Increments a counter (a PN-counter CRDT) by one.", "string", &[KEY]),
    ("decr", "Decrements a counter by one.", "string", &[KEY]),
    ("incrby", "Increments a counter by a number.", "string", &[KEY, ("increment", "integer", false)]),
    ("decrby", "Decrements a counter by a number.", "string", &[KEY, ("decrement", "integer", false)]),
    ("sadd", "Adds members to a set (an add-wins OR-set CRDT).", "set", &[KEY, ("member", "string", true)]),
    ("srem", "Removes the members this node's read observed.", "set", &[KEY, ("member", "string", true)]),
    ("smembers", "Returns the members of a set.", "set", &[KEY]),
    ("sismember", "Whether a member is in a set.", "set", &[KEY, ("member", "string", false)]),
    ("smismember", "Whether each member is in a set.", "set", &[KEY, ("member", "string", true)]),
    ("scard", "Counts the members of a set.", "set", &[KEY]),
    ("type", "Returns the type of a key: none, string, set, hash, list or zset.", "generic", &[KEY]),
    ("scan", "Pages through the keys of the ring (MATCH, COUNT, TYPE).", "generic", &[("cursor", "integer", false)]),
    ("keys", "Every key matching a pattern (a whole SCAN: prefer SCAN).", "generic", &[("pattern", "string", false)]),
    ("hset", "Sets fields of a hash (an observed-remove map CRDT).", "hash", &[KEY, ("field value", "string", true)]),
    ("hmset", "Sets fields of a hash; answers OK.", "hash", &[KEY, ("field value", "string", true)]),
    ("hget", "Returns a field of a hash.", "hash", &[KEY, ("field", "string", false)]),
    ("hmget", "Returns fields of a hash.", "hash", &[KEY, ("field", "string", true)]),
    ("hdel", "Removes the fields this node's read observed.", "hash", &[KEY, ("field", "string", true)]),
    ("hgetall", "Returns every field and value of a hash.", "hash", &[KEY]),
    ("hlen", "Counts the fields of a hash.", "hash", &[KEY]),
    ("hexists", "Whether a field is in a hash.", "hash", &[KEY, ("field", "string", false)]),
    ("hincrby", "Increments a hash field (a PN-counter) by a number.", "hash", &[KEY, ("field", "string", false), ("increment", "integer", false)]),
    ("lpush", "Pushes elements at the head of a list (an observed-remove list CRDT).", "list", &[KEY, ("element", "string", true)]),
    ("rpush", "Pushes elements at the tail of a list.", "list", &[KEY, ("element", "string", true)]),
    ("lpop", "Pops from the head; concurrent pops through two nodes may both get one element.", "list", &[KEY, COUNT]),
    ("rpop", "Pops from the tail; concurrent pops through two nodes may both get one element.", "list", &[KEY, COUNT]),
    ("lrange", "Returns a range of a list's elements.", "list", &[KEY, ("start", "integer", false), ("stop", "integer", false)]),
    ("llen", "Counts a list's elements.", "list", &[KEY]),
    ("lindex", "Returns a list's element at an index.", "list", &[KEY, ("index", "integer", false)]),
    ("spop", "Removes and returns members of a set.", "set", &[KEY, COUNT]),
    ("zadd", "Sets members' scores (an observed-remove map of last-write-wins scores); no options.", "sorted-set", &[KEY, ("score member", "string", true)]),
    ("zrem", "Removes the members this node's read observed.", "sorted-set", &[KEY, ("member", "string", true)]),
    ("zscore", "Returns a member's score.", "sorted-set", &[KEY, ("member", "string", false)]),
    ("zcard", "Counts the members of a sorted set.", "sorted-set", &[KEY]),
    ("zrange", "Returns members by rank (WITHSCORES; no BYSCORE, BYLEX, REV, LIMIT).", "sorted-set", &[KEY, ("start", "integer", false), ("stop", "integer", false)]),
    ("zpopmin", "Removes and returns the lowest-scored members.", "sorted-set", &[KEY, COUNT]),
    ("zpopmax", "Removes and returns the highest-scored members.", "sorted-set", &[KEY, COUNT]),
];

/// `COMMAND [sub …]`. The bare command table is empty (clients then use
/// their own), as are `INFO` and `LIST`.
pub fn command(sub: &[Bytes]) -> Reply {
    let Some((name, names)) = sub.split_first() else {
        return BytesFrame::Array(Vec::new()).into();
    };
    match name.to_ascii_uppercase().as_slice() {
        b"COUNT" => BytesFrame::Integer(DOCS.len() as i64).into(),
        b"INFO" | b"LIST" => BytesFrame::Array(Vec::new()).into(),
        b"DOCS" => docs(names),
        _ => unsupported("COMMAND", name).into(),
    }
}

/// The docs of `names`, or of every command when none is named.
fn docs(names: &[Bytes]) -> Reply {
    let wanted = |doc: &&Doc| {
        names.is_empty()
            || names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(doc.0.as_bytes()))
    };
    Reply::map(DOCS.iter().filter(wanted).map(|doc| (doc.0, entry(doc))))
}

fn entry(&(_, summary, group, args): &Doc) -> Reply {
    Reply::map([
        ("summary", bulk(summary)),
        ("since", bulk("1.0.0")),
        ("group", bulk(group)),
        (
            "arguments",
            Reply::Array(args.iter().map(argument).collect()),
        ),
    ])
}

fn argument(&(name, kind, multiple): &Arg) -> Reply {
    let mut fields = vec![("name", bulk(name)), ("type", bulk(kind))];
    if multiple {
        let flags = BytesFrame::Array(vec![BytesFrame::SimpleString("multiple".into())]);
        fields.push(("flags", flags.into()));
    }
    Reply::map(fields)
}

fn bulk(text: &'static str) -> Reply {
    BytesFrame::BulkString(Bytes::from_static(text.as_bytes())).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Reply {
        let sub: Vec<Bytes> = line
            .split_whitespace()
            .map(|a| Bytes::from(a.to_string()))
            .collect();
        command(&sub)
    }

    #[test]
    fn docs_describe_the_commands_served() {
        assert_eq!(run(""), BytesFrame::Array(Vec::new()).into());
        assert_eq!(run("count"), BytesFrame::Integer(DOCS.len() as i64).into());
        let Reply::Map(all) = run("DOCS") else {
            panic!("COMMAND DOCS is a map");
        };
        assert_eq!(all.len(), DOCS.len());
        let Reply::Map(one) = run("DOCS GET nosuch") else {
            panic!("COMMAND DOCS GET is a map");
        };
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].0, "get");
        let Reply::Map(fields) = &one[0].1 else {
            panic!("an entry is a map");
        };
        let names: Vec<&[u8]> = fields.iter().map(|(name, _)| name.as_ref()).collect();
        assert_eq!(names, [&b"summary"[..], b"since", b"group", b"arguments"]);
        assert!(run("COMMAND GETKEYS").is_error());
        for (name, _, _, args) in DOCS {
            for (_, kind, _) in args {
                assert!(
                    ["key", "string", "integer"].contains(kind),
                    "{name}: {kind}"
                );
            }
        }
    }
}
