//! `SCAN` and `KEYS`: pages of the ring's coverage query (see the core's
//! `node::scan`), filtered here by Redis's glob patterns and types.

use super::command::error;
use super::exec::{Failure, Outcome};
use super::Context;
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;
use ringkv_core::message::{ClientOp, ClientReply};

/// `COUNT` when none is given, as Redis.
pub const DEFAULT_COUNT: usize = 10;
/// The most keys `KEYS` answers: past it, the client is told to `SCAN`.
pub const MAX_KEYS: usize = 100_000;
/// Keys a `KEYS` page examines.
const KEYS_PAGE: usize = 1_000;

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub kind: Option<String>,
}

impl Scan {
    /// The arguments after `SCAN`, or the error Redis answers.
    pub fn parse(args: &[Bytes]) -> Result<Scan, BytesFrame> {
        let (cursor, mut options) = args.split_first().ok_or_else(|| arity("scan"))?;
        let cursor = std::str::from_utf8(cursor)
            .ok()
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| error("ERR invalid cursor"))?;
        let mut scan = Scan {
            cursor,
            pattern: None,
            count: DEFAULT_COUNT,
            kind: None,
        };
        while let [name, value, rest @ ..] = options {
            match name.to_ascii_uppercase().as_slice() {
                b"MATCH" => scan.pattern = Some(value.clone()),
                b"COUNT" => scan.count = count(value)?,
                b"TYPE" => scan.kind = Some(String::from_utf8_lossy(value).to_lowercase()),
                _ => return Err(error("ERR syntax error")),
            }
            options = rest;
        }
        if !options.is_empty() {
            return Err(error("ERR syntax error"));
        }
        Ok(scan)
    }

    fn wants(&self, key: &[u8], kind: &str) -> bool {
        self.pattern.as_ref().is_none_or(|p| glob(p, key))
            && self.kind.as_deref().is_none_or(|k| k == kind)
    }
}

fn arity(name: &str) -> BytesFrame {
    error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// A `COUNT`: a positive integer; above the node's page limit it is that.
fn count(value: &Bytes) -> Result<usize, BytesFrame> {
    let n: i64 = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| error("ERR value is not an integer or out of range"))?;
    if n < 1 {
        return Err(error("ERR syntax error"));
    }
    Ok((n as usize).min(ringkv_core::node::SCAN_MAX_COUNT))
}

/// One page: the next cursor and the keys (with types) it found.
async fn page(ctx: &Context, cursor: u64, count: usize) -> Outcome<(u64, Vec<(Vec<u8>, String)>)> {
    let props = super::exec::bucket(ctx)?;
    let keyspace = ringkv_core::keyspace::Keyspace::of_bucket(&ctx.bucket, &props);
    let op = ClientOp::Scan {
        cursor,
        count,
        keyspace,
    };
    match ctx.node.request(op, ctx.request_limit).await? {
        ClientReply::Keys { keys, cursor } => Ok((cursor, keys)),
        _ => Err(Failure::unexpected()),
    }
}

/// `SCAN`: `[next cursor, [keys]]`, the cursor as a bulk string.
pub async fn scan(ctx: &Context, scan: Scan) -> Outcome<BytesFrame> {
    let (next, keys) = page(ctx, scan.cursor, scan.count).await?;
    let keys = keys
        .into_iter()
        .filter(|(key, kind)| scan.wants(key, kind))
        .map(|(key, _)| BytesFrame::BulkString(key.into()))
        .collect();
    Ok(BytesFrame::Array(vec![
        BytesFrame::BulkString(next.to_string().into()),
        BytesFrame::Array(keys),
    ]))
}

/// `KEYS pattern`: a whole scan, at most [`MAX_KEYS`] keys.
pub async fn keys(ctx: &Context, pattern: Bytes) -> Outcome<BytesFrame> {
    let filter = Scan {
        cursor: 0,
        pattern: Some(pattern),
        count: KEYS_PAGE,
        kind: None,
    };
    let (mut cursor, mut found) = (0, Vec::new());
    loop {
        let (next, keys) = page(ctx, cursor, KEYS_PAGE).await?;
        let wanted = keys
            .into_iter()
            .filter(|(key, kind)| filter.wants(key, kind));
        found.extend(wanted.map(|(key, _)| BytesFrame::BulkString(key.into())));
        if found.len() > MAX_KEYS {
            return Err(Failure::invalid(format!(
                "KEYS found more than {MAX_KEYS} keys; use SCAN to page through them"
            )));
        }
        if next == 0 {
            return Ok(BytesFrame::Array(found));
        }
        cursor = next;
    }
}

/// Redis's glob (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`,
/// and `\` escaping the next byte; case-sensitive, on bytes. Iterative,
/// backtracking only to the last `*`: at most pattern × text steps, so a
/// pattern of many stars cannot make a node spin.
pub fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pattern.get(p) == Some(&b'*') {
            star = Some((p + 1, t));
            p += 1;
            continue;
        }
        match text.get(t) {
            Some(&c) => {
                if let Some(next) = one(pattern, p, c) {
                    (p, t) = (next, t + 1);
                    continue;
                }
            }
            None if p == pattern.len() => return true,
            None => {}
        }
        match star {
            Some((after, from)) if from < text.len() => {
                star = Some((after, from + 1));
                (p, t) = (after, from + 1);
            }
            _ => return false,
        }
    }
}

/// Where the pattern goes on when its element at `p` (not `*`) matches `c`.
fn one(pattern: &[u8], p: usize, c: u8) -> Option<usize> {
    match pattern.get(p)? {
        b'?' => Some(p + 1),
        b'[' => {
            let (matched, rest) = class(&pattern[p + 1..], c);
            matched.then_some(pattern.len() - rest.len())
        }
        b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == c).then_some(p + 2),
        &x => (x == c).then_some(p + 1),
    }
}

/// Whether `c` matches the class at the start of `pattern` (after `[`),
/// and the pattern after the class's `]` (an unclosed class runs to the end).
fn class(pattern: &[u8], c: u8) -> (bool, &[u8]) {
    let (negate, mut p) = match pattern.first() {
        Some(b'^') => (true, &pattern[1..]),
        _ => (false, pattern),
    };
    let mut matched = false;
    loop {
        match p {
            [] => break,
            [b']', rest @ ..] => {
                p = rest;
                break;
            }
            [b'\\', e, rest @ ..] => {
                matched |= *e == c;
                p = rest;
            }
            [lo, b'-', hi, rest @ ..] if *hi != b']' => {
                let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                matched |= (lo..=hi).contains(&c);
                p = rest;
            }
            [x, rest @ ..] => {
                matched |= *x == c;
                p = rest;
            }
        }
    }
    (matched != negate, p)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_as_redis_matches() {
        let cases: [(&str, &str, bool); 18] = [
            ("*a*b", "xaxxb", true),
            ("*a*b", "xaxxbc", false),
            ("a*", "a", true),
            ("", "", true),
            ("*", "anything", true),
            ("*", "", true),
            ("cart:*", "cart:alice", true),
            ("cart:*", "carts", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                glob(pattern.as_bytes(), text.as_bytes()),
                want,
                "{pattern} {text}"
            );
        }
        // Many stars against a long text that almost matches: fast.
        let text = "a".repeat(10_000);
        assert!(!glob(
            &b"*a"
                .repeat(1_000)
                .into_iter()
                .chain(*b"b")
                .collect::<Vec<_>>(),
            text.as_bytes()
        ));
    }
}
