//! One connection's standing: who it authenticated as (`AUTH`, `HELLO …
//! AUTH`), which protocol it speaks (`HELLO`), who it says it is
//! (`CLIENT`), whether it is queueing a transaction (`MULTI`) — and
//! whether all that allows each command it sends, as Redis answers it.
//!
//! Commands are admitted in the order they arrive, before any of them
//! runs, so `AUTH` or `HELLO 3` pipelined in front of a `GET` covers that
//! `GET`, and a command queued after `MULTI` is checked when it is queued.

use super::client::{Client, State};
use super::command::{answer, error, ok, Command};
use super::hello::{self, Hello};
use super::protocol::{Protocol, Reply};
use super::transaction::{watch_refused, Transaction};
use crate::auth::rules::resp_needs;
use crate::auth::{Access, Credential, Denied, Identity, Role};
use crate::shed::Bound;
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;

pub struct Session {
    identity: Identity,
    protocol: Protocol,
    client: Client,
    /// Queued commands, between `MULTI` and `EXEC`/`DISCARD`.
    transaction: Option<Transaction>,
    /// How much a transaction may queue.
    bound: Bound,
}

/// Commands about the connection itself, which a transaction cannot
/// queue (their effect would come at `EXEC`, after the commands that
/// follow them were already admitted).
const NOT_QUEUED: [&[u8]; 3] = [b"AUTH", b"HELLO", b"CLIENT"];

impl Session {
    pub fn new(client: Client, bound: Bound) -> Session {
        Session {
            identity: Identity::Anonymous,
            protocol: Protocol::default(),
            client,
            transaction: None,
            bound,
        }
    }

    /// Whether commands are being queued for `EXEC`.
    pub fn queueing(&self) -> bool {
        self.transaction.is_some()
    }

    /// The protocol replies are written in from now on.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The command for `args`: the connection's own commands answered
    /// here, anything it may not run refused, everything else parsed (or
    /// queued, in a transaction).
    pub fn admit(&mut self, access: &Access, args: &[Bytes]) -> Command {
        let Some((name, rest)) = args.split_first() else {
            return Command::parse(args);
        };
        let upper = name.to_ascii_uppercase();
        match upper.as_slice() {
            b"QUIT" => return Command::Quit,
            own if self.transaction.is_some() && NOT_QUEUED.contains(&own) => {
                return self.refuse_queued(error("ERR Command not allowed inside a transaction"));
            }
            b"AUTH" => return answer(self.auth(access, rest)),
            b"HELLO" => return Command::Reply(self.hello(access, rest)),
            _ => {}
        }
        let allowed = resp_needs(name).map_or(Ok(()), |role| access.permits(&self.identity, role));
        if let Err(denied) = allowed {
            return self.refuse_queued(refusal(&denied, name));
        }
        match self.transaction.is_some() {
            true => self.in_transaction(&upper, args),
            false => self.outside_transaction(&upper, args),
        }
    }

    /// A refusal, which also dooms the transaction being queued.
    fn refuse_queued(&mut self, refusal: BytesFrame) -> Command {
        if let Some(transaction) = &mut self.transaction {
            transaction.fail();
        }
        answer(refusal)
    }

    fn outside_transaction(&mut self, upper: &[u8], args: &[Bytes]) -> Command {
        match upper {
            b"MULTI" => {
                self.transaction = Some(Transaction::new(self.bound));
                answer(ok())
            }
            b"EXEC" | b"DISCARD" => answer(error(format!(
                "ERR {} without MULTI",
                String::from_utf8_lossy(upper)
            ))),
            b"WATCH" => answer(watch_refused()),
            // Nothing is ever watched; redis-py sends it when resetting.
            b"UNWATCH" => answer(ok()),
            b"CLIENT" => Command::Reply(self.client.command(&args[1..], self.state())),
            _ => Command::parse(args),
        }
    }

    fn in_transaction(&mut self, upper: &[u8], args: &[Bytes]) -> Command {
        match upper {
            b"MULTI" => answer(error("ERR MULTI calls can not be nested")),
            b"WATCH" => answer(error("ERR WATCH inside MULTI is not allowed")),
            b"EXEC" => self
                .transaction
                .take()
                .map_or_else(|| Command::parse(args), Transaction::exec),
            b"DISCARD" => {
                self.transaction = None;
                answer(ok())
            }
            _ => {
                let op = super::op_label(&args[0]);
                let bytes = args.iter().map(Bytes::len).sum();
                let command = Command::parse(args);
                match &mut self.transaction {
                    Some(transaction) => Command::Reply(transaction.queue(op, command, bytes)),
                    None => command,
                }
            }
        }
    }

    fn state(&self) -> State {
        State {
            protocol: self.protocol,
            queued: self.transaction.as_ref().map(Transaction::len),
        }
    }

    /// `HELLO`: authenticate (with `AUTH`), name the client (with
    /// `SETNAME`), switch protocol, and answer the server map — or change
    /// nothing and answer why not.
    fn hello(&mut self, access: &Access, args: &[Bytes]) -> Reply {
        let hello = match Hello::parse(args) {
            Ok(hello) => hello,
            Err(refusal) => return refusal.into(),
        };
        if let Some((user, pass)) = hello.auth {
            let answer = self.auth(access, &[user, pass]);
            if matches!(answer, BytesFrame::Error(_)) {
                return answer.into();
            }
        }
        if let Err(Denied::CredentialRequired { .. } | Denied::BadCredential) =
            access.permits(&self.identity, Role::Read)
        {
            return error(
                "NOAUTH HELLO must be called with the client already authenticated, \
                 otherwise the HELLO <proto> AUTH <user> <pass> option can be used to \
                 authenticate the client and select the RESP protocol version at the same time",
            )
            .into();
        }
        if let Some(Err(refusal)) = hello.name.map(|name| self.client.set_name(&name)) {
            return refusal.into();
        }
        self.protocol = hello.protocol.unwrap_or(self.protocol);
        hello::reply(self.protocol, self.client.id())
    }

    /// `AUTH TOKEN` or `AUTH USER TOKEN`. A failed attempt leaves the
    /// connection as it was, as in Redis.
    fn auth(&mut self, access: &Access, args: &[Bytes]) -> BytesFrame {
        if args.is_empty() || args.len() > 2 {
            return error("ERR wrong number of arguments for 'auth' command");
        }
        if !access.has_users() {
            return error(
                "ERR AUTH <password> called without any password configured for the \
                 default user. Are you sure your configuration is correct?",
            );
        }
        let text: Vec<&str> = args
            .iter()
            .filter_map(|arg| std::str::from_utf8(arg).ok())
            .collect();
        let credential = match text.as_slice() {
            [token] => Credential::Token(token),
            [user, token] => Credential::UserToken { user, token },
            _ => return wrongpass(),
        };
        match access.authenticate(credential) {
            Ok(identity) => {
                self.identity = identity;
                ok()
            }
            Err(_) => wrongpass(),
        }
    }
}

fn wrongpass() -> BytesFrame {
    error("WRONGPASS invalid username-password pair or user is disabled.")
}

fn refusal(denied: &Denied, command: &Bytes) -> BytesFrame {
    match denied {
        Denied::Forbidden { user, .. } => error(format!(
            "NOPERM User {user} has no permissions to run the '{}' command",
            String::from_utf8_lossy(command).to_lowercase()
        )),
        Denied::CredentialRequired { .. } | Denied::BadCredential => {
            error("NOAUTH Authentication required.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{add_user, Users};
    use crate::resp::client::Clients;
    use std::sync::Arc;

    /// Access with one user, `ci`, who may read; nothing anonymous. The
    /// directory holds the users file while the test runs.
    fn reader_ci() -> (tempfile::TempDir, Access, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let token = add_user(&path, "ci", Role::Read).unwrap();
        let access = Access::new(Users::load(&path).unwrap(), None);
        (dir, access, token)
    }

    fn session() -> Session {
        let client = Client::new(
            &Arc::new(Clients::default()),
            "127.0.0.1:1".parse().unwrap(),
        );
        Session::new(
            client,
            Bound {
                count: 4,
                bytes: 64,
            },
        )
    }

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::from(a.to_string()))
            .collect()
    }

    fn reply(session: &mut Session, access: &Access, line: &str) -> String {
        match session.admit(access, &args(line)) {
            Command::Reply(Reply::Plain(BytesFrame::Error(e))) => format!("-{e}"),
            Command::Reply(Reply::Plain(BytesFrame::SimpleString(s))) => {
                format!("+{}", String::from_utf8_lossy(&s))
            }
            Command::Reply(Reply::Map(_)) => "map".into(),
            other => format!("run {other:?}"),
        }
    }

    #[test]
    fn commands_wait_for_auth_and_then_for_the_role() {
        let (_dir, access, token) = reader_ci();
        let mut session = session();
        assert_eq!(
            reply(&mut session, &access, "GET k"),
            "-NOAUTH Authentication required."
        );
        assert_eq!(reply(&mut session, &access, "PING"), "+PONG");
        assert!(reply(&mut session, &access, "AUTH nope").starts_with("-WRONGPASS"));
        assert!(
            reply(&mut session, &access, &format!("AUTH admin {token}")).starts_with("-WRONGPASS")
        );
        assert_eq!(
            reply(&mut session, &access, &format!("auth ci {token}")),
            "+OK"
        );
        assert!(reply(&mut session, &access, "GET k").starts_with("run Get"));
        assert_eq!(
            reply(&mut session, &access, "SET k v"),
            "-NOPERM User ci has no permissions to run the 'set' command"
        );
        assert!(reply(&mut session, &access, "AUTH").contains("wrong number of arguments"));
        // Removed from the users file: the connection loses its rights.
        access.replace_users(Users::default());
        assert_eq!(
            reply(&mut session, &access, "GET k"),
            "-NOAUTH Authentication required."
        );
    }

    #[test]
    fn hello_authenticates_names_and_switches_the_protocol() {
        let (_dir, access, token) = reader_ci();
        let mut session = session();
        assert!(reply(&mut session, &access, "HELLO 3").starts_with("-NOAUTH HELLO must be called"));
        assert!(reply(&mut session, &access, "HELLO 3 AUTH ci nope").starts_with("-WRONGPASS"));
        assert_eq!(
            session.protocol(),
            Protocol::Resp2,
            "a refused HELLO changes nothing"
        );
        let hello = format!("HELLO 3 AUTH ci {token} SETNAME app");
        assert_eq!(reply(&mut session, &access, &hello), "map");
        assert_eq!(session.protocol(), Protocol::Resp3);
        assert!(session.client.info(&session.state()).contains(" name=app "));
        assert_eq!(
            reply(&mut session, &access, "HELLO 4"),
            "-NOPROTO unsupported protocol version"
        );
        assert_eq!(reply(&mut session, &access, "HELLO 2"), "map");
        assert_eq!(session.protocol(), Protocol::Resp2);
    }

    #[test]
    fn multi_queues_until_exec_and_refusals_abort_it() {
        let access = Access::new(Users::default(), Some(Role::Write));
        let mut session = session();
        assert_eq!(
            reply(&mut session, &access, "EXEC"),
            "-ERR EXEC without MULTI"
        );
        assert!(reply(&mut session, &access, "WATCH k").contains("WATCH is not supported"));
        assert_eq!(reply(&mut session, &access, "MULTI"), "+OK");
        assert_eq!(reply(&mut session, &access, "SET k v"), "+QUEUED");
        assert_eq!(reply(&mut session, &access, "GET k"), "+QUEUED");
        assert_eq!(
            reply(&mut session, &access, "MULTI"),
            "-ERR MULTI calls can not be nested"
        );
        let exec = session.admit(&access, &args("EXEC"));
        let Command::Exec(batch) = exec else {
            panic!("EXEC runs the batch: {exec:?}");
        };
        let ops: Vec<&str> = batch.iter().map(|q| q.op).collect();
        assert_eq!(ops, ["set", "get"]);

        assert_eq!(reply(&mut session, &access, "MULTI"), "+OK");
        assert_eq!(reply(&mut session, &access, "SET k v"), "+QUEUED");
        assert!(
            reply(&mut session, &access, "CLIENT ID").contains("not allowed inside a transaction")
        );
        assert!(reply(&mut session, &access, "EXEC").starts_with("-EXECABORT"));
        assert_eq!(reply(&mut session, &access, "MULTI"), "+OK");
        assert_eq!(
            reply(&mut session, &access, "NOPE"),
            "-ERR unknown command 'NOPE', with args beginning with: "
        );
        assert_eq!(reply(&mut session, &access, "DISCARD"), "+OK");
        assert_eq!(
            reply(&mut session, &access, "DISCARD"),
            "-ERR DISCARD without MULTI"
        );
    }
}
