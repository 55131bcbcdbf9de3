//! Who a connection is, as `CLIENT` and `INFO clients` report it: an id
//! unique on this node, the name the client gave itself (`CLIENT SETNAME`,
//! `HELLO … SETNAME`), and the library it says it is (`CLIENT SETINFO`,
//! which redis-py sends on connect). Names are kept per connection only.

use super::command::{error, ok, unsupported};
use super::protocol::{Protocol, Reply};
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What this node's RESP connections share: the next id, and how many
/// are open.
#[derive(Debug, Default)]
pub struct Clients {
    next_id: AtomicU64,
    connected: AtomicUsize,
}

impl Clients {
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Relaxed)
    }
}

/// One connection's identity; counted in [`Clients`] while it lives.
#[derive(Debug)]
pub struct Client {
    clients: Arc<Clients>,
    id: u64,
    addr: SocketAddr,
    since: Instant,
    name: Bytes,
    lib_name: Bytes,
    lib_ver: Bytes,
}

/// What `CLIENT INFO` tells besides the identity.
pub struct State {
    pub protocol: Protocol,
    /// Commands queued since `MULTI`, when in one.
    pub queued: Option<usize>,
}

impl Client {
    pub fn new(clients: &Arc<Clients>, addr: SocketAddr) -> Client {
        clients.connected.fetch_add(1, Ordering::Relaxed);
        Client {
            clients: clients.clone(),
            id: clients.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            addr,
            since: Instant::now(),
            name: Bytes::new(),
            lib_name: Bytes::new(),
            lib_ver: Bytes::new(),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// `CLIENT SETNAME`'s check, shared with `HELLO … SETNAME`, then the
    /// name kept.
    pub fn set_name(&mut self, name: &Bytes) -> Result<(), BytesFrame> {
        check_name(name)?;
        self.name = name.clone();
        Ok(())
    }

    /// `CLIENT sub args…`.
    pub fn command(&mut self, args: &[Bytes], state: State) -> Reply {
        let Some((sub, rest)) = args.split_first() else {
            return error("ERR wrong number of arguments for 'client' command").into();
        };
        let reply = match (sub.to_ascii_uppercase().as_slice(), rest) {
            (b"SETNAME", [name]) => self.set_name(name).map_or_else(|e| e, |()| ok()),
            (b"GETNAME", []) => self.get_name(),
            (b"ID", []) => BytesFrame::Integer(self.id as i64),
            (b"INFO", []) => BytesFrame::BulkString(self.info(&state).into()),
            (b"SETINFO", [attr, value]) => self.set_info(attr, value),
            (b"SETNAME" | b"GETNAME" | b"ID" | b"INFO" | b"SETINFO", _) => error(format!(
                "ERR wrong number of arguments for 'client|{}' command",
                String::from_utf8_lossy(sub).to_lowercase()
            )),
            _ => unsupported("CLIENT", sub),
        };
        reply.into()
    }

    fn get_name(&self) -> BytesFrame {
        if self.name.is_empty() {
            BytesFrame::Null
        } else {
            BytesFrame::BulkString(self.name.clone())
        }
    }

    /// `CLIENT SETINFO LIB-NAME|LIB-VER value`, as Redis 7.2 checks it.
    fn set_info(&mut self, attr: &Bytes, value: &Bytes) -> BytesFrame {
        if let Err(e) = check_name(value) {
            return e;
        }
        match attr.to_ascii_uppercase().as_slice() {
            b"LIB-NAME" => self.lib_name = value.clone(),
            b"LIB-VER" => self.lib_ver = value.clone(),
            _ => {
                return error(format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(attr)
                ))
            }
        }
        ok()
    }

    /// One line in Redis's `CLIENT INFO` / `CLIENT LIST` format, with the
    /// fields ringkv has.
    pub fn info(&self, state: &State) -> String {
        let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        let (flags, multi) = match state.queued {
            Some(n) => ("x", n as i64),
            None => ("N", -1),
        };
        format!(
            "id={} addr={} name={} age={} flags={flags} db=0 multi={multi} resp={} \
             lib-name={} lib-ver={}\n",
            self.id,
            self.addr,
            text(&self.name),
            self.since.elapsed().as_secs(),
            state.protocol.number(),
            text(&self.lib_name),
            text(&self.lib_ver),
        )
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.clients.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Redis's rule: a name is printable ASCII without spaces, so that
/// `CLIENT LIST` stays one line per client.
fn check_name(name: &[u8]) -> Result<(), BytesFrame> {
    if name.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(())
    } else {
        Err(error(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(client: &mut Client, line: &str) -> Reply {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|a| Bytes::from(a.to_string()))
            .collect();
        let state = State {
            protocol: Protocol::Resp3,
            queued: None,
        };
        client.command(&args, state)
    }

    #[test]
    fn names_ids_and_info_are_kept_per_connection() {
        let clients = Arc::new(Clients::default());
        let addr = "127.0.0.1:5000".parse().unwrap();
        let mut first = Client::new(&clients, addr);
        let second = Client::new(&clients, addr);
        assert_eq!(clients.connected(), 2);
        assert_eq!(run(&mut first, "ID"), BytesFrame::Integer(1).into());
        assert_eq!(second.id(), 2);
        assert_eq!(run(&mut first, "GETNAME"), BytesFrame::Null.into());
        assert_eq!(run(&mut first, "setname app-1"), ok().into());
        assert_eq!(
            run(&mut first, "GETNAME"),
            BytesFrame::BulkString("app-1".into()).into()
        );
        assert_eq!(run(&mut first, "SETINFO lib-name redis-py"), ok().into());
        assert!(run(&mut first, "SETNAME a\nb").is_error());
        assert!(run(&mut first, "SETINFO colour red").is_error());
        assert!(run(&mut first, "KILL x").is_error());
        assert!(run(&mut first, "GETNAME x").is_error());
        let Reply::Plain(BytesFrame::BulkString(info)) = run(&mut first, "INFO") else {
            panic!("CLIENT INFO is a bulk string");
        };
        let info = String::from_utf8(info.to_vec()).unwrap();
        assert!(
            info.starts_with("id=1 addr=127.0.0.1:5000 name=app-1 "),
            "{info}"
        );
        assert!(info.contains(" resp=3 lib-name=redis-py "), "{info}");
        drop(second);
        assert_eq!(clients.connected(), 1);
    }
}
