//! Who a request is and whether it may do what it asks: the one decision
//! that the HTTP API and the Redis protocol both take from here.

use super::config::AuthConfig;
use super::role::Role;
use super::users::{AuthError, Users};
use std::sync::{Arc, RwLock};

/// What a client presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    None,
    /// A token alone (`Bearer TOKEN`, `AUTH TOKEN`): the user is found by it.
    Token(&'a str),
    /// A user name and token (`Basic`, `AUTH USER TOKEN`): both must match.
    UserToken {
        user: &'a str,
        token: &'a str,
    },
}

/// Who a client is, once its credential is checked. A user is held by
/// their token's hash, and their role looked up at each check, so a
/// connection that authenticated long ago loses its rights as soon as the
/// user is removed from the users file (or gets a new token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User { name: String, token_sha256: String },
}

/// Why a request is refused; the front end turns it into its own answer
/// (401/403, `-NOAUTH`/`-WRONGPASS`/`-NOPERM`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// A credential that matches no user.
    BadCredential,
    /// No credential, and anonymous requests may not do this. `no_users`:
    /// the node has no users, so no credential could help.
    CredentialRequired { needed: Role, no_users: bool },
    /// A known user whose role is below what is needed.
    Forbidden { user: String, needed: Role },
}

/// A node's users and what anonymous requests may do.
#[derive(Debug)]
pub struct Access {
    /// Swapped whole when the users file changes (see [`super::reload`]).
    users: RwLock<Arc<Users>>,
    /// The role of a request without credential; `None`: it may do nothing
    /// that needs a role.
    anonymous: Option<Role>,
}

impl Access {
    /// From the node's `[auth]` section. Without one, anonymous requests
    /// may write (and, with `insecure = true`, administer too): no
    /// credential is asked for that is not configured.
    pub fn from_config(auth: Option<&AuthConfig>, insecure: bool) -> Result<Access, AuthError> {
        Ok(match auth {
            Some(auth) => Access::new(Users::load(&auth.users)?, auth.anonymous),
            None if insecure => Access::new(Users::default(), Some(Role::Admin)),
            None => Access::new(Users::default(), Some(Role::Write)),
        })
    }

    pub fn new(users: Users, anonymous: Option<Role>) -> Access {
        Access {
            users: RwLock::new(Arc::new(users)),
            anonymous,
        }
    }

    fn users(&self) -> Arc<Users> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// From now on, `users` are the node's users.
    pub fn replace_users(&self, users: Users) {
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(users);
    }

    /// Who `credential` is; a credential that is given must be right.
    pub fn authenticate(&self, credential: Credential) -> Result<Identity, Denied> {
        let users = self.users();
        let user = match credential {
            Credential::None => return Ok(Identity::Anonymous),
            Credential::Token(token) => users.find(token),
            Credential::UserToken { user, token } => {
                users.find(token).filter(|found| found.name == user)
            }
        };
        let user = user.ok_or(Denied::BadCredential)?;
        Ok(Identity::User {
            name: user.name.clone(),
            token_sha256: user.token_sha256.clone(),
        })
    }

    /// Whether `who` may do what needs `needed`.
    pub fn permits(&self, who: &Identity, needed: Role) -> Result<(), Denied> {
        match who {
            Identity::Anonymous if self.anonymous.is_some_and(|role| role >= needed) => Ok(()),
            Identity::Anonymous => Err(Denied::CredentialRequired {
                needed,
                no_users: self.users().is_empty(),
            }),
            Identity::User { name, token_sha256 } => {
                match self.users().by_hash(token_sha256).map(|user| user.role) {
                    Some(role) if role >= needed => Ok(()),
                    Some(_) => Err(Denied::Forbidden {
                        user: name.clone(),
                        needed,
                    }),
                    None => Err(Denied::CredentialRequired {
                        needed,
                        no_users: false,
                    }),
                }
            }
        }
    }

    /// [`Access::authenticate`] then [`Access::permits`].
    pub fn check(&self, credential: Credential, needed: Role) -> Result<Identity, Denied> {
        let who = self.authenticate(credential)?;
        self.permits(&who, needed)?;
        Ok(who)
    }

    /// Whether any credential could be accepted.
    pub fn has_users(&self) -> bool {
        !self.users().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::users::add_user;

    fn access(anonymous: Option<Role>) -> (Access, [String; 3], tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let tokens = [Role::Read, Role::Write, Role::Admin]
            .map(|role| add_user(&path, role.as_str(), role).unwrap());
        (
            Access::new(Users::load(&path).unwrap(), anonymous),
            tokens,
            dir,
        )
    }

    #[test]
    fn each_role_may_do_its_own_and_everything_below() {
        let (access, tokens, _dir) = access(None);
        for (i, token) in tokens.iter().enumerate() {
            for (j, needed) in Role::ALL.into_iter().enumerate() {
                let outcome = access.check(Credential::Token(token), needed);
                assert_eq!(outcome.is_ok(), j <= i, "{token} needing {needed}");
            }
        }
        let denied = access.check(Credential::Token(&tokens[1]), Role::Admin);
        let forbidden = Denied::Forbidden {
            user: "write".into(),
            needed: Role::Admin,
        };
        assert_eq!(denied, Err(forbidden));
    }

    #[test]
    fn a_wrong_token_or_user_is_refused_even_where_anonymous_may() {
        let (access, tokens, _dir) = access(Some(Role::Write));
        let wrong_user = Credential::UserToken {
            user: "read",
            token: &tokens[2],
        };
        for credential in [Credential::Token("rk_nope"), wrong_user] {
            assert_eq!(
                access.check(credential, Role::Read),
                Err(Denied::BadCredential)
            );
        }
        let right = Credential::UserToken {
            user: "admin",
            token: &tokens[2],
        };
        assert!(access.check(right, Role::Admin).is_ok());
    }

    #[test]
    fn anonymous_gets_its_role_and_never_admin_without_it() {
        let (access, _tokens, _dir) = access(Some(Role::Write));
        assert!(access.check(Credential::None, Role::Write).is_ok());
        let denied = access.check(Credential::None, Role::Admin).unwrap_err();
        let expected = Denied::CredentialRequired {
            needed: Role::Admin,
            no_users: false,
        };
        assert_eq!(denied, expected);
        let secure_default = Access::from_config(None, false).unwrap();
        assert!(secure_default.check(Credential::None, Role::Write).is_ok());
        let denied = secure_default.check(Credential::None, Role::Admin);
        assert!(matches!(
            denied,
            Err(Denied::CredentialRequired { no_users: true, .. })
        ));
        let insecure = Access::from_config(None, true).unwrap();
        assert!(insecure.check(Credential::None, Role::Admin).is_ok());
    }
}
