//! One connection's standing: who it authenticated as (`AUTH`), and
//! whether that allows each command it sends, as Redis answers it.
//!
//! Commands are admitted in the order they arrive, before any of them
//! runs, so `AUTH` pipelined in front of a `GET` covers that `GET`.

use super::command::{error, ok, Command};
use crate::auth::rules::resp_needs;
use crate::auth::{Access, Credential, Denied, Identity};
use bytes::Bytes;
use redis_protocol::resp2::types::BytesFrame;

pub struct Session {
    identity: Identity,
}

impl Session {
    pub fn new() -> Session {
        Session {
            identity: Identity::Anonymous,
        }
    }

    /// The command for `args`: `AUTH` answered here, anything the
    /// connection may not run refused, everything else parsed.
    pub fn admit(&mut self, access: &Access, args: &[Bytes]) -> Command {
        let Some((name, rest)) = args.split_first() else {
            return Command::parse(args);
        };
        if name.eq_ignore_ascii_case(b"AUTH") {
            return Command::Reply(self.auth(access, rest));
        }
        let allowed = resp_needs(name).map_or(Ok(()), |role| access.permits(&self.identity, role));
        match allowed {
            Ok(()) => Command::parse(args),
            Err(denied) => Command::Reply(refusal(&denied, name)),
        }
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
    use crate::auth::{add_user, Role, Users};

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|a| Bytes::from(a.to_string()))
            .collect()
    }

    fn reply(session: &mut Session, access: &Access, line: &str) -> String {
        match session.admit(access, &args(line)) {
            Command::Reply(BytesFrame::Error(e)) => format!("-{e}"),
            Command::Reply(BytesFrame::SimpleString(s)) => {
                format!("+{}", String::from_utf8_lossy(&s))
            }
            other => format!("run {other:?}"),
        }
    }

    #[test]
    fn commands_wait_for_auth_and_then_for_the_role() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let token = add_user(&path, "ci", Role::Read).unwrap();
        let access = Access::new(Users::load(&path).unwrap(), None);
        let mut session = Session::new();
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
}
