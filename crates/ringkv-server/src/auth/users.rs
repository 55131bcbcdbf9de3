//! The users file: who may connect, with which role, known by the SHA-256
//! of their token (see [`super::token`]).
//!
//! ```toml
//! [[user]]
//! name = "admin"
//! role = "admin"
//! token_sha256 = "9f86d0…"
//! ```
//!
//! It holds no secret a client could present, but it decides who gets in,
//! so it is written owner-only (0600), whole, through a rename: a node
//! reading it never sees half a file (nodes re-read it when it changes;
//! see [`super::reload`]).

use super::role::Role;
use super::token;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A users file that cannot be used, or a user that cannot be added; one
/// sentence that names the file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read users file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid users file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write users file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("user {name:?} already exists in {path}; pick another name")]
    Duplicate { name: String, path: PathBuf },
    #[error("there is no user {name:?} in {path}")]
    NoSuchUser { name: String, path: PathBuf },
    #[error("{0}")]
    BadName(String),
    #[error("the operating system's random source failed; no token was made")]
    Random,
}

/// One `[[user]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Lowercase hex SHA-256 of the token; the token itself is never kept.
    pub token_sha256: String,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersToml {
    #[serde(default, rename = "user")]
    users: Vec<User>,
}

/// The users of a node, found by the hash of a presented token.
#[derive(Clone, Debug, Default)]
pub struct Users {
    in_order: Vec<User>,
    /// Hash → index in `in_order`. An exact map lookup on the hash needs no
    /// constant-time comparison: what an attacker could learn from timing
    /// is a prefix of the *hash* of their own guess, which says nothing
    /// about any stored token (finding a preimage is the hard part).
    index_by_hash: HashMap<String, usize>,
}

impl Users {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<Users, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Users::parse(&text).map_err(|message| AuthError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// `path`'s users, or none when the file does not exist yet.
    fn load_or_empty(path: &Path) -> Result<Users, AuthError> {
        match path.try_exists() {
            Ok(false) => Ok(Users::default()),
            _ => Users::load(path),
        }
    }

    fn parse(text: &str) -> Result<Users, String> {
        let file: UsersToml = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut users = Users::default();
        for user in file.users {
            users.insert(user)?;
        }
        Ok(users)
    }

    fn insert(&mut self, user: User) -> Result<(), String> {
        check_name(&user.name)?;
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if user.token_sha256.len() != 64 || !user.token_sha256.chars().all(hex) {
            return Err(format!(
                "user {:?}: token_sha256 must be 64 lowercase hex digits",
                user.name
            ));
        }
        if self.named(&user.name).is_some() {
            return Err(format!("user {:?} is listed twice", user.name));
        }
        if self.index_by_hash.contains_key(&user.token_sha256) {
            return Err(format!("user {:?} shares another user's token", user.name));
        }
        self.index_by_hash
            .insert(user.token_sha256.clone(), self.in_order.len());
        self.in_order.push(user);
        Ok(())
    }

    /// The user whose token `token` is.
    pub fn find(&self, token: &str) -> Option<&User> {
        self.by_hash(&token::hash(token))
    }

    /// The user whose token hashes to `token_sha256`.
    pub fn by_hash(&self, token_sha256: &str) -> Option<&User> {
        let index = *self.index_by_hash.get(token_sha256)?;
        self.in_order.get(index)
    }

    pub fn named(&self, name: &str) -> Option<&User> {
        self.in_order.iter().find(|u| u.name == name)
    }

    /// Every user, in file order.
    pub fn all(&self) -> &[User] {
        &self.in_order
    }

    pub fn is_empty(&self) -> bool {
        self.in_order.is_empty()
    }

    /// Write the whole file (0600) beside `path`, then rename it over.
    fn save(&self, path: &Path) -> Result<(), AuthError> {
        let failed = |source| AuthError::Write {
            path: path.to_path_buf(),
            source,
        };
        let body = toml::to_string(&UsersToml {
            users: self.in_order.clone(),
        })
        .map_err(|e| failed(std::io::Error::other(e)))?;
        let text = format!(
            "# ringkv users: `ringkv user add` writes this file. Tokens are\n\
             # stored as their SHA-256 only; a lost token cannot be recovered.\n\n{body}"
        );
        let temp = path.with_extension("toml.tmp");
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(failed)?;
        file.write_all(text.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&temp, path).map_err(failed)
    }
}

/// A user name goes into `Authorization: Basic name:token` and into
/// `AUTH name token`: no `:` and no spaces.
fn check_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok) {
        return Err(format!(
            "user name {name:?} must be 1 to 64 letters, digits, '-', '_', '.' or '@'"
        ));
    }
    Ok(())
}

/// Add user `name` with `role` to `users_file` (created, 0600, when
/// missing) and answer their new token — the only time it exists in clear.
pub fn add_user(users_file: &Path, name: &str, role: Role) -> Result<String, AuthError> {
    check_name(name).map_err(AuthError::BadName)?;
    let mut users = Users::load_or_empty(users_file)?;
    if users.named(name).is_some() {
        return Err(AuthError::Duplicate {
            name: name.to_string(),
            path: users_file.to_path_buf(),
        });
    }
    let token = token::generate().map_err(|_| AuthError::Random)?;
    let user = User {
        name: name.to_string(),
        role,
        token_sha256: token::hash(&token),
    };
    users.insert(user).map_err(AuthError::BadName)?;
    users.save(users_file)?;
    Ok(token)
}

/// Remove user `name` from `users_file`: their token stops working (nodes
/// re-read the file within seconds).
pub fn remove_user(users_file: &Path, name: &str) -> Result<(), AuthError> {
    let users = Users::load(users_file)?;
    if users.named(name).is_none() {
        return Err(AuthError::NoSuchUser {
            name: name.to_string(),
            path: users_file.to_path_buf(),
        });
    }
    let mut rest = Users::default();
    for user in users.in_order.into_iter().filter(|u| u.name != name) {
        rest.insert(user).map_err(AuthError::BadName)?;
    }
    rest.save(users_file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_users_file_is_owner_only_and_holds_the_hash_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let admin = add_user(&path, "admin", Role::Admin).unwrap();
        let reader = add_user(&path, "ci", Role::Read).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(&admin) && !text.contains(&admin[3..]),
            "{text}"
        );
        assert!(text.contains(&token::hash(&admin)), "{text}");
        let users = Users::load(&path).unwrap();
        assert_eq!(users.find(&admin).unwrap().role, Role::Admin);
        assert_eq!(users.find(&reader).unwrap().name, "ci");
        assert!(users.find("rk_guess").is_none());
        let names: Vec<_> = users.all().iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["admin", "ci"]);
    }

    #[test]
    fn duplicate_and_bad_names_are_refused_in_one_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        add_user(&path, "ada", Role::Write).unwrap();
        let err = add_user(&path, "ada", Role::Read).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        let err = add_user(&path, "a:b", Role::Read).unwrap_err().to_string();
        assert!(err.contains("must be 1 to 64"), "{err}");
        assert_eq!(Users::load(&path).unwrap().all().len(), 1);
        let err = remove_user(&path, "bob").unwrap_err().to_string();
        assert!(err.contains("there is no user \"bob\""), "{err}");
        remove_user(&path, "ada").unwrap();
        assert!(Users::load(&path).unwrap().is_empty());
    }

    #[test]
    fn a_broken_users_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let cases = [
            (
                "[[user]]\nname = \"a\"\nrole = \"root\"\ntoken_sha256 = \"x\"",
                "unknown variant",
            ),
            (
                "[[user]]\nname = \"a\"\nrole = \"read\"\ntoken_sha256 = \"x\"",
                "64 lowercase hex",
            ),
            ("[[user]]\nname = \"a\"\nrole = \"read\"", "missing field"),
        ];
        for (text, expected) in cases {
            std::fs::write(&path, text).unwrap();
            let err = Users::load(&path).unwrap_err().to_string();
            assert!(
                err.contains("invalid users file") && err.contains(expected),
                "{err}"
            );
        }
        let err = Users::load(&dir.path().join("none.toml")).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read users file"),
            "{err}"
        );
    }
}
