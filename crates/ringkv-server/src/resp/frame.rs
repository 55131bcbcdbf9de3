//! Reading Redis requests off a connection, within limits.
//!
//! A request is an array of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`),
//! which is all redis-cli, redis-benchmark and client libraries send.
//! [`request_len`] finds where the next request ends from its length lines
//! alone, refusing absurd counts and lengths before any of their bytes are
//! buffered, and anything but a flat array of bulk strings — the
//! `redis-protocol` decoder has no nesting or length limits of its own, and
//! `*1\r\n` repeated would recurse until the stack overflows. Only a
//! complete, checked request reaches that decoder, which then splits it off
//! the buffer without copying.

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

    #[test]
    fn pipelined_requests_come_out_one_by_one() {
        let mut buf =
            BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*1"[..]);
        let mut codec = RequestCodec::new(LIMITS);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), ["PING"]);
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), ["ECHO", "hi"]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert_eq!(&buf[..], b"*1");
    }

    #[test]
    fn absurd_lengths_are_refused_before_their_bytes_arrive() {
        let three_bulks = b"*4\r\n$16\r\n0123456789abcdef\r\n$16\r\n0123456789abcdef\r\n$16\r\n";
        assert_refused(&[
            (b"*1\r\n$99999999999\r\n", "invalid bulk length 99999999999"),
            (b"*1\r\n$17\r\n", "at most 16 bytes"),
            (b"*9\r\n", "invalid multibulk length 9"),
            (b"*0\r\n", "invalid multibulk length 0"),
            (b"*1\r\n$-1\r\n", "invalid bulk length -1"),
            (three_bulks, "request over 64 bytes"),
            (b"*1\r\n$111111111111111111111111111111", "too long"),
        ]);
    }

    #[test]
    fn garbage_and_nesting_are_protocol_errors() {
        assert_refused(&[
            (b"hello\r\n", "expected '*', got 'h'"),
            (b"\x00\xff", "expected '*', got '\\x00'"),
            (b"*1\r\n*1\r\n*1\r\n", "expected '$', got '*'"),
            (b"*1\r\n:5\r\n", "expected '$'"),
            (b"*x\r\n", "invalid length"),
            (b"*1\r\n$2\r\nabcd", "not followed by CRLF"),
        ]);
    }
}
