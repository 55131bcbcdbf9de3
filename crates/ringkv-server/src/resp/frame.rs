//! Reading Redis requests off a connection, within limits.
//!
//! A request is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`),
//! which is what redis-cli and client libraries send, or — when it does not
//! start with `*` — an inline command line (see [`super::inline`]), which
//! is what telnet users and redis-benchmark's `PING_INLINE` send; an empty
//! line is skipped, as Redis skips it.
//! [`request_len`] finds where the next request ends from its length lines
//! alone, refusing absurd counts and lengths before any of their bytes are
//! buffered, and anything but a flat array of bulk strings — the
//! `redis-protocol` decoder has no nesting or length limits of its own, and
//! `*1\r\n` repeated would recurse until the stack overflows. Only a
//! complete, checked request reaches that decoder, which then splits it off
//! the buffer without copying.

use super::inline::{self, MAX_INLINE};
use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;
use ringkv_core::settings::Settings;
use tokio_util::codec::Decoder;

/// Arguments one request may have (Redis allows 1,048,576).
const MAX_ARGS: usize = 1 << 16;
/// The largest request, all arguments together, unless one value alone
/// needs more.
const MAX_REQUEST_BYTES: usize = 64 << 20;
/// A length line: a sign, up to 19 digits and CRLF.
const MAX_LENGTH_LINE: usize = 22;

/// How big a request may be.
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    pub max_args: usize,
    /// The longest argument: a key or a value.
    pub max_bulk: usize,
    pub max_request: usize,
}

impl FrameLimits {
    pub fn new(settings: &Settings) -> Self {
        let max_bulk = settings.max_value_bytes.max(settings.max_key_bytes);
        FrameLimits {
            max_args: MAX_ARGS,
            max_bulk,
            max_request: MAX_REQUEST_BYTES.max(max_bulk + (1 << 20)),
        }
    }
}

/// A connection that broke the protocol (answered, then closed) or failed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: {0}")]
    Invalid(String),
    /// An HTTP request sent to the Redis port (see [`cross_protocol`]):
    /// closed without a reply.
    #[error("an HTTP request ({0}) on the Redis port, closing the connection unanswered")]
    CrossProtocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn invalid(message: impl Into<String>) -> ProtocolError {
    ProtocolError::Invalid(message.into())
}

/// Decodes requests into their arguments (the command name first).
pub struct RequestCodec {
    limits: FrameLimits,
}

impl RequestCodec {
    pub fn new(limits: FrameLimits) -> Self {
        RequestCodec { limits }
    }
}

impl Decoder for RequestCodec {
    type Item = Vec<Bytes>;
    type Error = ProtocolError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            match src.first() {
                None => return Ok(None),
                Some(b'*') => match length_line(src, 0, b'*')? {
                    None => return Ok(None),
                    // `*0` and `*-1` ask nothing: Redis skips them without
                    // a reply, and so does ringkv.
                    Some((count, end)) if count <= 0 => {
                        let _ = src.split_to(end);
                    }
                    Some(_) => break,
                },
                Some(_) => match inline_request(src)? {
                    None => return Ok(None),
                    Some(words) if words.is_empty() => continue,
                    Some(words) => return cross_protocol(words).map(Some),
                },
            }
        }
        if request_len(src, &self.limits)?.is_none() {
            return Ok(None);
        }
        let decoded = decode_bytes_mut(src).map_err(|e| invalid(e.details().to_string()))?;
        match decoded {
            Some((BytesFrame::Array(items), _, _)) => items
                .into_iter()
                .map(bulk)
                .collect::<Result<_, _>>()
                .map(Some),
            _ => Err(invalid("expected an array of bulk strings")),
        }
    }
}

/// Refuse what a browser sends: with inline commands, a web page could
/// otherwise make a browser `POST` Redis commands to a node on the
/// user's machine (cross-protocol scripting). Redis closes the connection
/// on a `POST` or `Host:` command for this reason; so does ringkv.
fn cross_protocol(words: Vec<Bytes>) -> Result<Vec<Bytes>, ProtocolError> {
    let name = words.first().map(|w| w.to_ascii_lowercase());
    match name.as_deref() {
        Some(b"post") | Some(b"host:") => Err(ProtocolError::CrossProtocol(
            String::from_utf8_lossy(&words[0]).into_owned(),
        )),
        _ => Ok(words),
    }
}

/// The words of the inline line at the start of `src`, split off it;
/// `None` while its end has not arrived.
fn inline_request(src: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let window = &src[..src.len().min(MAX_INLINE)];
    let Some(end) = window.iter().position(|&b| b == b'\n') else {
        if src.len() < MAX_INLINE {
            return Ok(None);
        }
        return Err(invalid(format!(
            "too big inline request (over {MAX_INLINE} bytes without a newline)"
        )));
    };
    let line = src.split_to(end + 1);
    let text = line.strip_suffix(b"\r\n").unwrap_or(&line[..end]);
    let words = inline::split(text).map_err(|_| invalid("unbalanced quotes in request"))?;
    Ok(Some(words.into_iter().map(Bytes::from).collect()))
}

fn bulk(frame: BytesFrame) -> Result<Bytes, ProtocolError> {
    match frame {
        BytesFrame::BulkString(bytes) => Ok(bytes),
        _ => Err(invalid("expected a bulk string")),
    }
}

/// The length of the complete request at the start of `buf`, `None` while
/// more bytes are needed.
pub fn request_len(buf: &[u8], limits: &FrameLimits) -> Result<Option<usize>, ProtocolError> {
    let Some((count, mut at)) = length_line(buf, 0, b'*')? else {
        return Ok(None);
    };
    if count < 1 || count > limits.max_args as i64 {
        return Err(invalid(format!(
            "invalid multibulk length {count} (1 to {} arguments)",
            limits.max_args
        )));
    }
    for _ in 0..count {
        let Some((len, body)) = length_line(buf, at, b'$')? else {
            return Ok(None);
        };
        if len < 0 || len > limits.max_bulk as i64 {
            return Err(invalid(format!(
                "invalid bulk length {len} (at most {} bytes)",
                limits.max_bulk
            )));
        }
        let end = body + len as usize + 2;
        if end > limits.max_request {
            return Err(invalid(format!(
                "request over {} bytes",
                limits.max_request
            )));
        }
        match buf.get(end - 2..end) {
            None => return Ok(None),
            Some(b"\r\n") => at = end,
            Some(_) => return Err(invalid("bulk string not followed by CRLF")),
        }
    }
    Ok(Some(at))
}

/// The number of the `*N\r\n` or `$N\r\n` line (`kind` names which) at
/// `at`, and where the line ends; `None` while it is incomplete.
fn length_line(buf: &[u8], at: usize, kind: u8) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some(&first) = buf.get(at) else {
        return Ok(None);
    };
    if first != kind {
        return Err(invalid(format!(
            "expected '{}', got '{}'",
            kind as char,
            first.escape_ascii()
        )));
    }
    let rest = &buf[at + 1..];
    let window = &rest[..rest.len().min(MAX_LENGTH_LINE)];
    let Some(digits) = window.windows(2).position(|w| w == b"\r\n") else {
        if rest.len() < MAX_LENGTH_LINE {
            return Ok(None);
        }
        return Err(invalid("length line too long"));
    };
    let number = std::str::from_utf8(&window[..digits])
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| invalid("invalid length"))?;
    Ok(Some((number, at + 1 + digits + 2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FrameLimits = FrameLimits {
        max_args: 8,
        max_bulk: 16,
        max_request: 64,
    };

    fn decode(input: &[u8]) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        RequestCodec::new(LIMITS).decode(&mut BytesMut::from(input))
    }

    /// Every input is refused with a message containing its text.
    fn assert_refused(cases: &[(&[u8], &str)]) {
        for (input, expected) in cases {
            let shown = input.escape_ascii().to_string();
            match decode(input) {
                Err(e) => assert!(e.to_string().contains(expected), "{shown}: {e}"),
                other => panic!("{shown} decoded as {other:?}"),
            }
        }
    }

    #[test]
    fn requests_decode_into_their_arguments_once_complete() {
        let request = b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n";
        for cut in 0..request.len() {
            assert!(decode(&request[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let args = decode(request).unwrap().unwrap();
        assert_eq!(args, [Bytes::from("GET"), Bytes::new()]);
    }

    /// `input` decodes into `expected`, one request at a time, leaving
    /// `rest` for more bytes to complete.
    fn assert_stream(input: &[u8], expected: &[&[&str]], rest: &[u8]) {
        let mut buf = BytesMut::from(input);
        let mut codec = RequestCodec::new(LIMITS);
        for args in expected {
            assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), *args);
        }
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(&buf[..], rest);
    }

    #[test]
    fn pipelined_requests_come_out_one_by_one() {
        let input = b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*1";
        assert_stream(input, &[&["PING"], &["ECHO", "hi"]], b"*1");
    }

    #[test]
    fn absurd_lengths_are_refused_before_their_bytes_arrive() {
        let three_bulks = b"*4\r\n$16\r\n0123456789abcdef\r\n$16\r\n0123456789abcdef\r\n$16\r\n";
        assert_refused(&[
            (b"*1\r\n$99999999999\r\n", "invalid bulk length 99999999999"),
            (b"*1\r\n$17\r\n", "at most 16 bytes"),
            (b"*9\r\n", "invalid multibulk length 9"),
            (b"*1\r\n$-1\r\n", "invalid bulk length -1"),
            (three_bulks, "request over 64 bytes"),
            (b"*1\r\n$111111111111111111111111111111", "too long"),
        ]);
    }

    #[test]
    fn empty_and_null_multibulks_are_skipped_as_redis_does() {
        let input = b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*0\r";
        assert_stream(input, &[&["PING"]], b"*0\r");
    }

    #[test]
    fn inline_lines_decode_and_empty_lines_are_skipped() {
        let input = b"\r\n\nPING\r\n  \r\nSET k \"a b\"\n*1\r\n$4\r\nPING\r\n\r\nEC";
        assert_stream(input, &[&["PING"], &["SET", "k", "a b"], &["PING"]], b"EC");
        let long = vec![b'a'; MAX_INLINE - 1];
        assert!(decode(&long).unwrap().is_none(), "a line may still end");
    }

    /// `openssl s_client` on the Redis port: the start of a TLS
    /// `ClientHello` (NUL bytes, a newline among random bytes) is split
    /// into lines like any garbage, each ending at its first NUL, and the
    /// decoder moves on (it once looped on the NUL, growing without
    /// bound).
    #[test]
    fn a_tls_client_hello_decodes_as_short_lines() {
        let hello =
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x0a\x00\x00\x0d\r\nPING \x00x\r\n\x00";
        assert_stream(hello, &[&["\x16\x03\x01\x02"], &["PING"]], b"\x00");
    }

    #[test]
    fn garbage_and_nesting_are_protocol_errors() {
        assert_refused(&[
            (&[b'a'; MAX_INLINE], "too big inline request"),
            (b"SET k \"v\r\n", "unbalanced quotes"),
            (b"POST / HTTP/1.1\r\n", "an HTTP request (POST)"),
            (b"host: x\r\n", "an HTTP request (host:)"),
            (b"*1\r\n*1\r\n*1\r\n", "expected '$', got '*'"),
            (b"*1\r\n:5\r\n", "expected '$'"),
            (b"*x\r\n", "invalid length"),
            (b"*1\r\n$2\r\nabcd", "not followed by CRLF"),
        ]);
    }
}
