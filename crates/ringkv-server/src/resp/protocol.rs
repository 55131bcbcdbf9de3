//! The protocol version a connection speaks (RESP2 until `HELLO 3`), and
//! the one place a reply takes the shape of that version.
//!
//! Commands answer a [`Reply`]: a RESP2 frame where both versions agree
//! on the shape (RESP3 only spells the null `_`), or a map, which RESP2
//! sends as a flat array of names and values and RESP3 as a map — so no
//! command needs to know which version its client speaks. The
//! `redis-protocol` crate encodes both.

use crate::metrics::Outcome;
use bytes::{Bytes, BytesMut};
use redis_protocol::error::RedisProtocolError;
use redis_protocol::resp2::types::BytesFrame as Resp2;
use redis_protocol::resp3::types::BytesFrame as Resp3;
use tokio_util::codec::Encoder;

/// The RESP version of a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

impl Protocol {
    /// The version `HELLO` asked for: 2 or 3, anything else refused as
    /// Redis refuses it.
    pub fn from_arg(arg: &[u8]) -> Result<Protocol, Resp2> {
        match std::str::from_utf8(arg)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
        {
            Some(2) => Ok(Protocol::Resp2),
            Some(3) => Ok(Protocol::Resp3),
            Some(_) => Err(Resp2::Error("NOPROTO unsupported protocol version".into())),
            None => Err(Resp2::Error(
                "ERR Protocol version is not an integer or out of range".into(),
            )),
        }
    }

    pub fn number(self) -> i64 {
        match self {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        }
    }
}

/// A reply, before it takes its connection's protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The same in both versions, but for RESP3's own null.
    Plain(Resp2),
    /// Names and values: a flat array in RESP2, a map in RESP3.
    Map(Vec<(Bytes, Reply)>),
    /// An array whose items may be maps (EXEC's replies, COMMAND DOCS).
    Array(Vec<Reply>),
    /// Members of a set (`SMEMBERS`): an array in RESP2, a set in RESP3.
    Set(Vec<Bytes>),
    /// A score, as Redis writes it: a bulk string in RESP2, a double in
    /// RESP3.
    Double(Bytes),
    /// A member and its score inside an array: the two items inline in
    /// RESP2 (`ZRANGE … WITHSCORES` is flat there), an array of two in
    /// RESP3.
    Pair(Box<(Reply, Reply)>),
    /// RESP2's nil array (`*-1`, what `LPOP key count` answers for a
    /// missing key); RESP3's null. Inside an array RESP2 gets a nil bulk
    /// string, the one nil `redis-protocol` frames there.
    NilArray,
}

impl From<Resp2> for Reply {
    fn from(frame: Resp2) -> Reply {
        Reply::Plain(frame)
    }
}

impl Reply {
    /// A map of text names and values.
    pub fn map<'a>(pairs: impl IntoIterator<Item = (&'a str, Reply)>) -> Reply {
        Reply::Map(
            pairs
                .into_iter()
                .map(|(name, value)| (Bytes::copy_from_slice(name.as_bytes()), value))
                .collect(),
        )
    }

    /// What the reply counts as in the request metrics.
    pub fn outcome(&self) -> Outcome {
        match self {
            Reply::Plain(frame) => Outcome::of_resp(frame),
            Reply::Map(_)
            | Reply::Array(_)
            | Reply::Set(_)
            | Reply::Double(_)
            | Reply::Pair(_)
            | Reply::NilArray => Outcome::Ok,
        }
    }

    /// Whether the reply is an error (a command refused).
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Plain(Resp2::Error(_)))
    }

    /// The reply in `protocol`'s shape.
    pub fn into_wire(self, protocol: Protocol) -> Wire {
        match protocol {
            Protocol::Resp2 if self == Reply::NilArray => Wire::Raw(Bytes::from_static(b"*-1\r\n")),
            Protocol::Resp2 => Wire::Resp2(self.into_resp2()),
            Protocol::Resp3 => Wire::Resp3(self.into_resp3()),
        }
    }

    fn into_resp2(self) -> Resp2 {
        match self {
            Reply::Plain(frame) => frame,
            Reply::Map(pairs) => Resp2::Array(
                pairs
                    .into_iter()
                    .flat_map(|(name, value)| [Resp2::BulkString(name), value.into_resp2()])
                    .collect(),
            ),
            Reply::Array(items) => {
                Resp2::Array(items.into_iter().flat_map(Reply::inline).collect())
            }
            Reply::Set(members) => {
                Resp2::Array(members.into_iter().map(Resp2::BulkString).collect())
            }
            Reply::Double(text) => Resp2::BulkString(text),
            Reply::Pair(pair) => Resp2::Array(Reply::Pair(pair).inline()),
            Reply::NilArray => Resp2::Null,
        }
    }

    /// The RESP2 items this reply is inside an array: one, or a pair's two.
    fn inline(self) -> Vec<Resp2> {
        match self {
            Reply::Pair(pair) => vec![pair.0.into_resp2(), pair.1.into_resp2()],
            other => vec![other.into_resp2()],
        }
    }

    fn into_resp3(self) -> Resp3 {
        match self {
            Reply::Plain(frame) => resp3_of(frame),
            Reply::Map(pairs) => Resp3::Map {
                data: pairs
                    .into_iter()
                    .map(|(name, value)| (blob(name), value.into_resp3()))
                    .collect(),
                attributes: None,
            },
            Reply::Array(items) => Resp3::Array {
                data: items.into_iter().map(Reply::into_resp3).collect(),
                attributes: None,
            },
            Reply::Set(members) => Resp3::Set {
                data: members.into_iter().map(blob).collect(),
                attributes: None,
            },
            Reply::Double(text) => Resp3::Double {
                data: std::str::from_utf8(&text)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(f64::NAN),
                attributes: None,
            },
            Reply::Pair(pair) => Resp3::Array {
                data: vec![pair.0.into_resp3(), pair.1.into_resp3()],
                attributes: None,
            },
            Reply::NilArray => Resp3::Null,
        }
    }
}

fn blob(data: Bytes) -> Resp3 {
    Resp3::BlobString {
        data,
        attributes: None,
    }
}

/// A RESP2 frame as RESP3 writes it: the same types, and `_` for nil.
fn resp3_of(frame: Resp2) -> Resp3 {
    match frame {
        Resp2::SimpleString(data) => Resp3::SimpleString {
            data,
            attributes: None,
        },
        Resp2::Error(data) => Resp3::SimpleError {
            data,
            attributes: None,
        },
        Resp2::Integer(data) => Resp3::Number {
            data,
            attributes: None,
        },
        Resp2::BulkString(data) => blob(data),
        Resp2::Null => Resp3::Null,
        Resp2::Array(items) => Resp3::Array {
            data: items.into_iter().map(resp3_of).collect(),
            attributes: None,
        },
    }
}

/// A reply in the protocol its request was answered in.
#[derive(Debug)]
pub enum Wire {
    Resp2(Resp2),
    Resp3(Resp3),
    /// Bytes as they go: RESP2's nil array, which `redis-protocol` cannot
    /// frame.
    Raw(Bytes),
}

/// Writes replies of either version.
pub struct ReplyCodec;

impl Encoder<Wire> for ReplyCodec {
    type Error = RedisProtocolError;

    fn encode(&mut self, item: Wire, dst: &mut BytesMut) -> Result<(), RedisProtocolError> {
        match item {
            Wire::Resp2(frame) => redis_protocol::resp2::encode::extend_encode(dst, &frame, false),
            Wire::Resp3(frame) => {
                redis_protocol::resp3::encode::complete::extend_encode(dst, &frame, false)
            }
            Wire::Raw(bytes) => {
                dst.extend_from_slice(&bytes);
                Ok(bytes.len())
            }
        }
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(reply: Reply, protocol: Protocol) -> String {
        let mut out = BytesMut::new();
        ReplyCodec
            .encode(reply.into_wire(protocol), &mut out)
            .unwrap();
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn maps_are_flat_arrays_in_resp2_and_maps_in_resp3() {
        let map = || Reply::map([("proto", Resp2::Integer(3).into())]);
        assert_eq!(wire(map(), Protocol::Resp2), "*2\r\n$5\r\nproto\r\n:3\r\n");
        assert_eq!(wire(map(), Protocol::Resp3), "%1\r\n$5\r\nproto\r\n:3\r\n");
        let nested = Reply::Array(vec![map(), Resp2::Null.into()]);
        assert_eq!(
            wire(nested, Protocol::Resp3),
            "*2\r\n%1\r\n$5\r\nproto\r\n:3\r\n_\r\n"
        );
    }

    #[test]
    fn nil_is_resp3_null_and_everything_else_keeps_its_type() {
        assert_eq!(wire(Resp2::Null.into(), Protocol::Resp2), "$-1\r\n");
        assert_eq!(wire(Resp2::Null.into(), Protocol::Resp3), "_\r\n");
        let frames = Resp2::Array(vec![
            Resp2::SimpleString("OK".into()),
            Resp2::Error("ERR no".into()),
            Resp2::Integer(-1),
            Resp2::BulkString("v".into()),
            Resp2::Null,
        ]);
        let expected = "*5\r\n+OK\r\n-ERR no\r\n:-1\r\n$1\r\nv\r\n_\r\n";
        assert_eq!(wire(frames.into(), Protocol::Resp3), expected);
    }

    #[test]
    fn only_versions_2_and_3_are_spoken() {
        assert_eq!(Protocol::from_arg(b"2"), Ok(Protocol::Resp2));
        assert_eq!(Protocol::from_arg(b"3"), Ok(Protocol::Resp3));
        let refused = |arg: &[u8]| match Protocol::from_arg(arg) {
            Err(Resp2::Error(e)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(b"4"), "NOPROTO unsupported protocol version");
        assert_eq!(refused(b"1"), "NOPROTO unsupported protocol version");
        assert!(refused(b"x").contains("not an integer"));
    }
}
