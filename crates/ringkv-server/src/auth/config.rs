//! The client-security sections of a node's config, kept apart from the
//! inter-node `[tls]` ones:
//!
//! ```toml
//! [auth]
//! users = "users.toml"    # `ringkv user add` writes it
//! anonymous = "read"      # optional: what a request without credential may do
//!
//! [client_tls]            # optional: HTTPS and TLS on the RESP port
//! cert = "certs/client-api.pem"
//! key = "certs/client-api.key"
//! ```
//!
//! Protected mode (Redis's): a node whose HTTP or RESP address is not
//! loopback refuses to start unless every client must present a
//! credential, or the config says `insecure = true`.

use super::role::Role;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The users file (TOML, tokens hashed).
    pub users: PathBuf,
    /// The role of a request without credential (`read` or `write`);
    /// without it such a request may do nothing that needs a role.
    #[serde(default)]
    pub anonymous: Option<Role>,
}

/// The certificate the node shows its clients on the HTTP and RESP ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Make the paths absolute, relative to the config file's directory.
pub fn resolve_paths(
    auth: Option<&mut AuthConfig>,
    tls: Option<&mut ClientTlsConfig>,
    base: &Path,
) {
    let auth = auth.into_iter().map(|a| &mut a.users);
    let tls = tls.into_iter().flat_map(|t| [&mut t.cert, &mut t.key]);
    for path in auth.chain(tls) {
        *path = base.join(&*path);
    }
}

/// Anonymous admin is refused; protected mode as the module says, for
/// node `id` serving clients on `client_addrs` (bound and advertised: a
/// loopback bind behind a port forward is exposed all the same).
pub fn validate(
    auth: Option<&AuthConfig>,
    insecure: bool,
    id: &str,
    client_addrs: &[SocketAddr],
) -> Result<(), String> {
    if auth.is_some_and(|a| a.anonymous == Some(Role::Admin)) {
        return Err(
            "[auth] anonymous = \"admin\" is refused: anonymous requests may \
                    at most read or write; give administrators a token"
                .into(),
        );
    }
    let exposed = client_addrs.iter().find(|addr| !addr.ip().is_loopback());
    let (Some(addr), false) = (exposed, insecure) else {
        return Ok(());
    };
    match auth {
        None => Err(format!(
            "node {id} serves clients on {addr}, beyond loopback, without client \
             authentication: add an [auth] section with a users file (`ringkv user add`), \
             or `insecure = true` for tests and local experiments"
        )),
        Some(AuthConfig {
            anonymous: Some(role),
            ..
        }) => Err(format!(
            "node {id} serves clients on {addr}, beyond loopback, with anonymous = \"{role}\": \
             remove `anonymous` so every client needs a token, or set `insecure = true`"
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::NodeConfig;

    /// A secure config (`[tls]`) for node n1 on `http`.
    fn config(http: &str, extra: &str) -> String {
        format!(
            "node_id = \"n1\"\ndata_dir = \"/tmp/x\"\n{extra}\n\
             [tls]\nca = \"ca.pem\"\ncert = \"n1.pem\"\nkey = \"n1.key\"\n\
             [[nodes]]\nid = \"n1\"\naddr = \"10.0.0.1:7101\"\nhttp = \"{http}\"\n"
        )
    }

    #[test]
    fn protected_mode_refuses_clients_beyond_loopback_without_auth() {
        let err = NodeConfig::parse(&config("10.0.0.1:8101", "")).unwrap_err();
        assert!(
            err.contains(
                "serves clients on 10.0.0.1:8101, beyond loopback, without client \
                          authentication: add an [auth] section"
            ),
            "{err}"
        );
        let anonymous = "[auth]\nusers = \"u.toml\"\nanonymous = \"read\"\n";
        let err = NodeConfig::parse(&config("10.0.0.1:8101", anonymous)).unwrap_err();
        assert!(err.contains("with anonymous = \"read\""), "{err}");
        let authed = "[auth]\nusers = \"u.toml\"\n";
        assert!(NodeConfig::parse(&config("10.0.0.1:8101", authed)).is_ok());
        assert!(NodeConfig::parse(&config("127.0.0.1:8101", "")).is_ok());
        assert!(NodeConfig::parse(&config("[::1]:8101", anonymous)).is_ok());
        let resp =
            config("127.0.0.1:8101", "").replace("http =", "resp = \"10.0.0.1:6379\"\nhttp =");
        let err = NodeConfig::parse(&resp).unwrap_err();
        assert!(err.contains("10.0.0.1:6379"), "{err}");
        // What is bound counts too: a wildcard bind behind a loopback entry.
        let bound = config("127.0.0.1:8101", "[bind]\nhttp = \"0.0.0.0:8101\"");
        let err = NodeConfig::parse(&bound).unwrap_err();
        assert!(err.contains("serves clients on 0.0.0.0:8101"), "{err}");
    }

    #[test]
    fn insecure_opens_protected_mode_but_never_anonymous_admin() {
        let insecure = config("10.0.0.1:8101", "insecure = true").replace("[tls]", "[x]");
        let insecure = insecure.replace(
            "[x]\nca = \"ca.pem\"\ncert = \"n1.pem\"\nkey = \"n1.key\"\n",
            "",
        );
        assert!(NodeConfig::parse(&insecure).is_ok(), "{insecure}");
        let admin = format!("{insecure}\n[auth]\nusers = \"u.toml\"\nanonymous = \"admin\"\n");
        let err = NodeConfig::parse(&admin).unwrap_err();
        assert!(err.contains("anonymous = \"admin\" is refused"), "{err}");
        let typo = format!("{insecure}\n[auth]\nusers = \"u.toml\"\nanonymus = \"read\"\n");
        let err = NodeConfig::parse(&typo).unwrap_err();
        assert!(err.contains("unknown field `anonymus`"), "{err}");
    }

    #[test]
    fn users_and_client_certificates_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n1.toml");
        let extra =
            "[auth]\nusers = \"users.toml\"\n[client_tls]\ncert = \"c.pem\"\nkey = \"/k\"\n";
        std::fs::write(&path, config("127.0.0.1:8101", extra)).unwrap();
        let config = NodeConfig::load(&path).unwrap();
        assert_eq!(config.auth.unwrap().users, dir.path().join("users.toml"));
        let tls = config.client_tls.unwrap();
        assert_eq!((tls.cert, tls.key), (dir.path().join("c.pem"), "/k".into()));
    }
}
