//! The smallest Redis client (RESP2, and the RESP3 types ringkv sends
//! after `HELLO 3`), for the tests that speak the Redis protocol to real
//! nodes without needing redis-cli; and [`tool`], for the tests that use
//! the real Redis tools.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Bound on waiting for any one reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    /// `None` is the nil bulk string.
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
    /// RESP3's `%` map, its pairs in the order sent.
    Map(Vec<(Reply, Reply)>),
    /// RESP3's `_`.
    Null,
}

pub fn ok() -> Reply {
    Reply::Simple("OK".into())
}

pub fn bulk(text: &str) -> Reply {
    Reply::Bulk(Some(text.as_bytes().to_vec()))
}

/// The smallest Redis client: requests out as arrays of bulk strings,
/// replies read back (blocking, each within [`REPLY_TIMEOUT`]).
pub struct Redis {
    reader: BufReader<TcpStream>,
}

impl Redis {
    pub fn connect(addr: SocketAddr) -> Redis {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        Redis {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// One command and its reply.
    pub fn call(&mut self, args: &[&str]) -> Reply {
        self.send(&request(args));
        self.reply()
    }

    pub fn reply(&mut self) -> Reply {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Reply::Simple(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().expect("integer reply")),
            "$" => Reply::Bulk(self.bulk(rest.parse().expect("bulk length"))),
            "*" => {
                let count: usize = rest.parse().expect("array length");
                Reply::Array((0..count).map(|_| self.reply()).collect())
            }
            "%" => {
                let count: usize = rest.parse().expect("map length");
                Reply::Map((0..count).map(|_| (self.reply(), self.reply())).collect())
            }
            "_" => Reply::Null,
            _ => panic!("not a RESP reply: {line:?}"),
        }
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a reply line");
        assert!(line.ends_with("\r\n"), "cut-off reply line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    pub fn bulk(&mut self, len: i64) -> Option<Vec<u8>> {
        let len = usize::try_from(len).ok()?;
        let mut body = vec![0; len + 2];
        self.reader
            .read_exact(&mut body)
            .expect("read a bulk string");
        body.truncate(len);
        Some(body)
    }

    /// True once the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
}

/// `args` as a RESP request.
pub fn request<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args.iter().map(AsRef::as_ref) {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Whether the test may use `program` (checked by running `check`):
/// missing, it fails the test when run as root — scripts/test installs
/// it then, so missing means broken — and is skipped with a message
/// otherwise, naming `install`.
pub fn tool(program: &str, check: &[&str], install: &str) -> bool {
    let found = std::process::Command::new(program)
        .args(check)
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return true;
    }
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    assert!(!root, "{program} is missing: {install} (scripts/test does)");
    eprintln!("SKIPPED: {program} is missing and this is not root ({install}, or run scripts/test as root)");
    false
}
