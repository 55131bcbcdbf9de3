//! The one home of "what does this need": every HTTP endpoint and every
//! Redis command mapped to the role it takes (`None`: open to anyone).
//! A path or command not listed needs the most, so an endpoint added
//! without a rule is closed, not open.

use super::role::Role;

/// One HTTP rule: a method (`None`: any) and a path — exact, or a prefix
/// when it ends in `/` (the root `/` alone is exact).
struct HttpRule {
    method: Option<&'static str>,
    path: &'static str,
    needs: Option<Role>,
}

const fn rule(method: Option<&'static str>, path: &'static str, needs: Option<Role>) -> HttpRule {
    HttpRule {
        method,
        path,
        needs,
    }
}

/// First match wins. `/admin/*` needs admin whatever `anonymous` says.
const HTTP_RULES: &[HttpRule] = &[
    rule(None, "/health/", None),
    rule(Some("GET"), "/kv/", Some(Role::Read)),
    rule(Some("HEAD"), "/kv/", Some(Role::Read)),
    rule(None, "/kv/", Some(Role::Write)),
    // Counters, sets and hashes (the Redis keyspace's types): reads as
    // GET /kv, increments, adds, removes and deletes as writes.
    rule(Some("GET"), "/counter/", Some(Role::Read)),
    rule(None, "/counter/", Some(Role::Write)),
    rule(Some("GET"), "/set/", Some(Role::Read)),
    rule(None, "/set/", Some(Role::Write)),
    rule(Some("GET"), "/hash/", Some(Role::Read)),
    rule(None, "/hash/", Some(Role::Write)),
    // Bucket keys as /kv keys; key listings and bucket properties read.
    rule(Some("GET"), "/buckets/", Some(Role::Read)),
    rule(Some("GET"), "/buckets", Some(Role::Read)),
    rule(None, "/buckets/", Some(Role::Write)),
    // The API's description says nothing about the cluster.
    rule(Some("GET"), "/openapi.json", None),
    rule(Some("GET"), "/status", Some(Role::Read)),
    // Read, like /status: it names every member's addresses, which a
    // stranger has no business learning; clients send their token anyway.
    rule(Some("GET"), "/ring", Some(Role::Read)),
    rule(None, "/admin/", Some(Role::Admin)),
    rule(None, "/metrics", Some(Role::Admin)),
    // The web console: its page, script and style say nothing about the
    // cluster, so anyone may load them (and then type a token into the
    // page); what it shows comes from /ui/data, which is /status and
    // request rates, so it needs read like /status.
    rule(Some("GET"), "/ui/data", Some(Role::Read)),
    rule(Some("GET"), "/ui/", None),
    rule(Some("GET"), "/ui", None),
    rule(Some("GET"), "/", None),
];

impl HttpRule {
    fn matches(&self, method: &str, path: &str) -> bool {
        // HEAD is GET without the body (RFC 9110 §9.3.2): a GET rule covers it.
        let method_matches = |m: &str| m == method || (m == "GET" && method == "HEAD");
        self.matches_path(path) && self.method.is_none_or(method_matches)
    }

    fn matches_path(&self, path: &str) -> bool {
        match self.path.strip_suffix('/') {
            Some(rest) if !rest.is_empty() => path.starts_with(self.path),
            _ => path == self.path,
        }
    }
}

/// The role `method path` needs; `None`: anyone may. A method no rule
/// names for a path some rule names needs nothing: no route serves it, so
/// the router answers `405 Method Not Allowed` with the methods it has, as
/// HTTP says (schemathesis found `TRACE /status` answered `401`).
pub fn http_needs(method: &str, path: &str) -> Option<Role> {
    if let Some(rule) = HTTP_RULES.iter().find(|rule| rule.matches(method, path)) {
        return rule.needs;
    }
    let known_path = HTTP_RULES.iter().any(|rule| rule.matches_path(path));
    (!known_path).then_some(Role::Admin)
}

/// Commands a client may send before `AUTH`: authenticating itself, and
/// the liveness check and goodbye that health probes and clients send.
const RESP_OPEN: [&[u8]; 4] = [b"AUTH", b"PING", b"QUIT", b"HELLO"];
/// Commands that change data (a unit test holds every command the Redis
/// front end runs to this list or to its list of reads: a read token could
/// `HSET`, `LPUSH` and `ZADD` before).
const RESP_WRITE: [&[u8]; 27] = [
    b"SET", b"DEL", b"MSET", b"INCR", b"INCRBY", b"DECR", b"DECRBY", b"SADD", b"SREM", b"SPOP",
    b"HSET", b"HMSET", b"HDEL", b"HINCRBY", b"LPUSH", b"RPUSH", b"LPOP", b"RPOP", b"ZADD", b"ZREM",
    b"ZPOPMIN", b"ZPOPMAX", b"SETEX", b"PSETEX", b"EXPIRE", b"PEXPIRE", b"PERSIST",
];

/// The role a Redis command (its name, any case) needs; `None`: anyone
/// may. Everything else — reads, `INFO`, `CONFIG GET`, unknown names —
/// needs read, so an unauthenticated client learns nothing but `-NOAUTH`.
pub fn resp_needs(command: &[u8]) -> Option<Role> {
    let name = command.to_ascii_uppercase();
    if RESP_OPEN.contains(&name.as_slice()) {
        None
    } else if RESP_WRITE.contains(&name.as_slice()) {
        Some(Role::Write)
    } else {
        Some(Role::Read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_needs_its_role() {
        let cases = [
            ("GET", "/health/live", None),
            ("GET", "/status", Some(Role::Read)),
            ("GET", "/ring", Some(Role::Read)),
            ("GET", "/health/ready", None),
            ("GET", "/kv/a/b", Some(Role::Read)),
            ("HEAD", "/kv/a", Some(Role::Read)),
            ("PUT", "/kv/a", Some(Role::Write)),
            ("DELETE", "/kv/a", Some(Role::Write)),
            ("POST", "/kv/a", Some(Role::Write)),
            ("GET", "/counter/hits", Some(Role::Read)),
            ("HEAD", "/counter/hits", Some(Role::Read)),
            ("POST", "/counter/hits", Some(Role::Write)),
            ("DELETE", "/counter/hits", Some(Role::Write)),
            ("GET", "/set/cart", Some(Role::Read)),
            ("PUT", "/set/cart/apple", Some(Role::Write)),
            ("DELETE", "/set/cart/apple", Some(Role::Write)),
            ("DELETE", "/set/cart", Some(Role::Write)),
            ("GET", "/hash/user", Some(Role::Read)),
            ("GET", "/hash/user/name", Some(Role::Read)),
            ("PUT", "/hash/user/name", Some(Role::Write)),
            ("POST", "/hash/user/visits", Some(Role::Write)),
            ("DELETE", "/hash/user", Some(Role::Write)),
            ("GET", "/openapi.json", None),
            ("PUT", "/openapi.json", None),
            ("GET", "/counter", Some(Role::Admin)),
            ("GET", "/settings", Some(Role::Admin)),
            ("POST", "/admin/leave", Some(Role::Admin)),
            ("GET", "/admin/replica/k", Some(Role::Admin)),
            ("POST", "/admin/repair", Some(Role::Admin)),
            ("GET", "/metrics", Some(Role::Admin)),
            ("GET", "/statusx", Some(Role::Admin)),
            ("GET", "/kv", Some(Role::Admin)),
            ("GET", "/buckets/default/keys", Some(Role::Read)),
            ("DELETE", "/buckets/default/keys", Some(Role::Write)),
            ("PUT", "/buckets/carts/keys/k", Some(Role::Write)),
            ("GET", "/buckets/carts/keys/k", Some(Role::Read)),
            ("GET", "/buckets", Some(Role::Read)),
            ("PUT", "/admin/buckets/carts", Some(Role::Admin)),
            ("GET", "/healthz", Some(Role::Admin)),
            ("GET", "/ui/data", Some(Role::Read)),
            ("GET", "/ui", None),
            ("HEAD", "/ui", None),
            ("HEAD", "/", None),
            ("HEAD", "/status", Some(Role::Read)),
            ("HEAD", "/admin/leave", Some(Role::Admin)),
            ("GET", "/ui/console.js", None),
            ("GET", "/ui/console.css", None),
            ("GET", "/", None),
            // No route: the router answers 405.
            ("POST", "/", None),
            ("POST", "/ui/data", None),
            ("TRACE", "/status", None),
            ("DELETE", "/ring", None),
            ("GET", "/uix", Some(Role::Admin)),
            ("GET", "/favicon.ico", Some(Role::Admin)),
        ];
        for (method, path, needs) in cases {
            assert_eq!(http_needs(method, path), needs, "{method} {path}");
        }
    }

    #[test]
    fn every_redis_command_needs_its_role() {
        for open in ["AUTH", "ping", "Quit", "HELLO"] {
            assert_eq!(resp_needs(open.as_bytes()), None, "{open}");
        }
        for read in [
            "GET", "mget", "EXISTS", "INFO", "CONFIG", "ECHO", "FLUSHALL",
        ] {
            assert_eq!(resp_needs(read.as_bytes()), Some(Role::Read), "{read}");
        }
        for write in ["SET", "del", "MSET", "hset", "LPUSH", "zadd", "SPOP"] {
            assert_eq!(resp_needs(write.as_bytes()), Some(Role::Write), "{write}");
        }
    }

    /// Every command the Redis front end counts is a read or needs write:
    /// a command added to it without a decision here fails.
    #[test]
    fn every_counted_redis_command_is_a_read_or_a_write() {
        const READS: [&str; 25] = [
            "get",
            "exists",
            "mget",
            "info",
            "dbsize",
            "smembers",
            "sismember",
            "smismember",
            "scard",
            "type",
            "scan",
            "keys",
            "hget",
            "hmget",
            "hgetall",
            "hlen",
            "hexists",
            "lrange",
            "llen",
            "lindex",
            "zscore",
            "zcard",
            "zrange",
            "ttl",
            "pttl",
        ];
        for op in crate::resp::OPS {
            let needs = resp_needs(op.as_bytes());
            match op {
                "auth" => assert_eq!(needs, None),
                "other" => {}
                op if READS.contains(&op) => {
                    assert_eq!(needs, Some(Role::Read), "{op}")
                }
                op => assert_eq!(needs, Some(Role::Write), "{op} changes data"),
            }
        }
    }
}
