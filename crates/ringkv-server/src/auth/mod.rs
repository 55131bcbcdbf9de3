//! Client authentication: bearer tokens, roles, and the rule of what each
//! endpoint and command needs.
//!
//! - [`role`]: `read` < `write` < `admin`.
//! - [`token`]: making tokens and hashing them.
//! - [`users`]: the users file (hashes only) and [`add_user`].
//! - [`access`]: who a credential is and whether they may.
//! - [`reload`]: picking up changes to the users file.
//! - [`rules`]: what every HTTP endpoint and Redis command needs.
//! - [`http`]: the axum middleware that applies them.
//! - [`config`]: the `[auth]` and `[client_tls]` config sections.

pub mod access;
pub mod config;
pub mod http;
pub mod reload;
pub mod role;
pub mod rules;
pub mod token;
pub mod users;

pub use access::{Access, Credential, Denied, Identity};
pub use role::Role;
pub use users::{add_user, remove_user, AuthError, User, Users};
