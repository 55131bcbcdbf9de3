//! `HELLO [protover [AUTH user pass] [SETNAME name]]`: the handshake
//! RESP3 clients (redis-py 8, Lettuce, go-redis) open with, and that some
//! RESP2 tools send too (`HELLO 2`). Parsed here; the session carries it
//! out (authentication, name, protocol) and answers [`reply`].

use super::command::error;
use super::protocol::{Protocol, Reply};
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;

/// What a `HELLO` asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Hello {
    /// `None`: keep the connection's version.
    pub protocol: Option<Protocol>,
    pub auth: Option<(Bytes, Bytes)>,
    pub name: Option<Bytes>,
}

impl Hello {
    /// The request in `args` (after `HELLO`), or the error Redis answers.
    pub fn parse(args: &[Bytes]) -> Result<Hello, BytesFrame> {
        let Some((version, mut options)) = args.split_first() else {
            return Ok(Hello {
                protocol: None,
                auth: None,
                name: None,
            });
        };
        let mut hello = Hello {
            protocol: Some(Protocol::from_arg(version)?),
            auth: None,
            name: None,
        };
        while let Some((option, rest)) = options.split_first() {
            options = match (option.to_ascii_uppercase().as_slice(), rest) {
                (b"AUTH", [user, pass, rest @ ..]) => {
                    hello.auth = Some((user.clone(), pass.clone()));
                    rest
                }
                (b"SETNAME", [name, rest @ ..]) => {
                    hello.name = Some(name.clone());
                    rest
                }
                _ => {
                    return Err(error(format!(
                        "ERR Syntax error in HELLO option '{}'",
                        String::from_utf8_lossy(option)
                    )))
                }
            };
        }
        Ok(hello)
    }
}

/// The server map `HELLO` answers. `version` is the Redis version ringkv
/// answers like (as `INFO`'s `redis_version`), since client libraries
/// read it to decide which commands to use; `server` says who answers.
pub fn reply(protocol: Protocol, id: u64) -> Reply {
    let bulk = |text: &str| {
        Reply::from(BytesFrame::BulkString(Bytes::copy_from_slice(
            text.as_bytes(),
        )))
    };
    Reply::map([
        ("server", bulk("ringkv")),
        ("version", bulk(super::REDIS_VERSION)),
        ("proto", BytesFrame::Integer(protocol.number()).into()),
        ("id", BytesFrame::Integer(id as i64).into()),
        ("mode", bulk("standalone")),
        ("role", bulk("master")),
        ("modules", Reply::Array(Vec::new())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Hello, BytesFrame> {
        let args: Vec<Bytes> = line
            .split_whitespace()
            .map(|a| Bytes::from(a.to_string()))
            .collect();
        Hello::parse(&args)
    }

    #[test]
    fn options_are_read_in_any_order_and_bad_ones_named() {
        assert_eq!(parse("").unwrap().protocol, None);
        let hello = parse("3 setname app AUTH u p").unwrap();
        assert_eq!(hello.protocol, Some(Protocol::Resp3));
        assert_eq!(hello.auth, Some(("u".into(), "p".into())));
        assert_eq!(hello.name, Some("app".into()));
        assert_eq!(
            parse("4"),
            Err(error("NOPROTO unsupported protocol version"))
        );
        assert_eq!(
            parse("3 AUTH u"),
            Err(error("ERR Syntax error in HELLO option 'AUTH'"))
        );
        assert_eq!(
            parse("2 colour red"),
            Err(error("ERR Syntax error in HELLO option 'colour'"))
        );
    }
}
