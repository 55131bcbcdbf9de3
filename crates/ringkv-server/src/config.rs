//! A node's TOML configuration: who it is, where its data lives, and how it
//! finds its cluster — a static member list, or seeds to join through.
//!
//! ```toml
//! cluster = "dev"
//! node_id = "n1"
//! data_dir = "data/n1"
//!
//! [storage]            # optional; see ringkv_store::StorageConfig
//! engine = "fjall"     # or "memory"
//! fsync = "interval"   # or "always"
//!
//! [replication]        # optional; see ringkv_core::settings::Settings
//! n = 3
//!
//! [anti_entropy]      # optional; see ringkv_core::anti_entropy
//! interval_ms = 1000
//!
//! [membership]        # optional; see ringkv_core::gossip
//! suspect_after_ms = 5000
//!
//! [hints]             # optional; see ringkv_core::hints
//! max_hints = 100000
//!
//! [limits]            # optional; see crate::shed::Limits
//! node_queue_events = 10000
//!
//! [tls]              # inter-node mutual TLS; `ringkv cert` makes these
//! ca = "certs/ca.pem"       # trusted CA certificates (one or more: rotation)
//! cert = "certs/n1.pem"     # this node's certificate, issued for its id
//! key = "certs/n1.key"
//!
//! [auth]             # client credentials; see crate::auth::config
//! users = "users.toml"
//!
//! [bind]             # optional: where this node listens; see addresses
//! addr = "0.0.0.0:7101"
//!
//! [[nodes]]
//! id = "n1"
//! addr = "127.0.0.1:7101"   # inter-node TCP (advertised, and bound without [bind])
//! http = "127.0.0.1:8101"
//! resp = "127.0.0.1:6101"   # optional: Redis protocol
//! zone = "a"                # optional
//! ```
//!
//! A node joining a running cluster lists only itself in `[[nodes]]` and
//! names existing members' inter-node addresses in `seeds = [...]` (or
//! `ringkv node --join ADDR`). Once a node has run, its data directory
//! remembers the member list, so later starts need neither.
//!
//! Security is on by default: a node without `[tls]` refuses to start
//! unless the config says `insecure = true` (CockroachDB's `--insecure`),
//! which is for tests and local experiments only. Relative paths in the
//! config are relative to the config file's directory.

mod addresses;

pub use addresses::{BindConfig, Listen};

use crate::auth::config::{self as client_auth, AuthConfig, ClientTlsConfig};
use crate::shed::Limits;
use ringkv_core::anti_entropy::AntiEntropySettings;
use ringkv_core::gc::GcSettings;
use ringkv_core::gossip::MembershipSettings;
use ringkv_core::hints::HintSettings;
use ringkv_core::settings::Settings;
use ringkv_store::StorageConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Nodes only talk to peers of the same cluster name.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// This node's id; must be one of `nodes`.
    pub node_id: String,
    pub data_dir: PathBuf,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub replication: Settings,
    #[serde(default)]
    pub anti_entropy: AntiEntropySettings,
    #[serde(default)]
    pub membership: MembershipSettings,
    #[serde(default)]
    pub hints: HintSettings,
    /// Tombstone collection (see `ringkv_core::gc`).
    #[serde(default)]
    pub gc: GcSettings,
    /// How much each queue may hold before the node sheds load.
    #[serde(default)]
    pub limits: Limits,
    /// Inter-node addresses of members to join through. With seeds, a new
    /// node starts as joining and `nodes` lists only itself.
    #[serde(default)]
    pub seeds: Vec<SocketAddr>,
    /// The dead member this node replaces (`ringkv node --replace ID`, as
    /// Cassandra's `replace_address`): it joins through `seeds` and takes
    /// exactly that member's ranges. A start option, not a setting.
    #[serde(skip)]
    pub replace: Option<String>,
    /// The bucket the Redis port serves (a `typed` one; see
    /// `ringkv_core::bucket`). It may be created after the node starts:
    /// until it exists, commands answer that it does not.
    #[serde(default = "default_redis_bucket")]
    pub redis_bucket: String,
    /// Enables `POST /admin/links/{peer}/{cut|heal}`, a switch that silently
    /// drops traffic to and from a peer. For fault tests only.
    #[serde(default)]
    pub fault_injection: bool,
    /// Run without credentials: plaintext, unauthenticated inter-node
    /// traffic and no client credentials asked for unless configured. For
    /// tests and local experiments only; must be said explicitly.
    #[serde(default)]
    pub insecure: bool,
    /// Inter-node mutual TLS (required unless `insecure`).
    #[serde(default)]
    pub tls: Option<PeerTlsConfig>,
    /// Client credentials (see [`crate::auth::config`]).
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS on the client ports, HTTP and RESP.
    #[serde(default)]
    pub client_tls: Option<ClientTlsConfig>,
    /// Where this node listens, when not at the addresses it advertises.
    #[serde(default)]
    pub bind: BindConfig,
    /// The members' advertised addresses (only this node's own with seeds).
    pub nodes: Vec<MemberConfig>,
}

/// The files of a node's inter-node credential: PEM certificates and a
/// PKCS#8 PEM key, as `ringkv cert create-ca` / `create-node` write them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerTlsConfig {
    /// CA certificates a peer's certificate must chain to. Holding the old
    /// and the new CA is how a CA is rotated without downtime.
    pub ca: PathBuf,
    /// This node's certificate chain (leaf first), issued for its id.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    pub id: String,
    /// Inter-node TCP address, as peers dial it.
    pub addr: SocketAddr,
    /// HTTP API address, as clients reach it.
    pub http: SocketAddr,
    /// Redis protocol (RESP2) address, as clients reach it; the node serves
    /// no RESP without one.
    #[serde(default)]
    pub resp: Option<SocketAddr>,
    #[serde(default)]
    pub zone: Option<String>,
}

fn default_redis_bucket() -> String {
    ringkv_core::bucket::REDIS.to_string()
}

fn default_cluster() -> String {
    "ringkv".to_string()
}

/// A config that cannot be used, said in one sentence that names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Makes the credential paths absolute, relative to `base` (the
    /// config file's directory), so a config and its `certs/` can move
    /// together.
    fn resolve_paths(&mut self, base: &Path) {
        if let Some(tls) = &mut self.tls {
            for path in [&mut tls.ca, &mut tls.cert, &mut tls.key] {
                *path = base.join(&*path);
            }
        }
        client_auth::resolve_paths(self.auth.as_mut(), self.client_tls.as_mut(), base);
    }

    /// Parse and validate; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: NodeConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Add seed addresses (`ringkv node --join`), checked like the
    /// config's own; `path` names the config in the error.
    pub fn with_seeds(mut self, seeds: Vec<SocketAddr>, path: &Path) -> Result<Self, ConfigError> {
        self.seeds.extend(seeds);
        self.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(self)
    }

    /// Replace dead member `id` (`ringkv node --replace`): only when
    /// joining through seeds, and never this node itself.
    pub fn with_replace(mut self, id: Option<String>, path: &Path) -> Result<Self, ConfigError> {
        let invalid = |message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        };
        if let Some(dead) = &id {
            if self.seeds.is_empty() {
                return Err(invalid(
                    "--replace needs seeds to join through (the config's seeds or --join ADDR)",
                ));
            }
            if *dead == self.node_id {
                return Err(invalid(
                    "--replace names this node itself; a replacement needs an id of its own",
                ));
            }
        }
        self.replace = id;
        Ok(self)
    }

    /// The protocol settings, with the `[anti_entropy]`, `[membership]` and
    /// `[hints]` sections and the in-flight limit folded in.
    pub fn settings(&self) -> Settings {
        Settings {
            anti_entropy: self.anti_entropy.clone(),
            membership: self.membership.clone(),
            hints: self.hints.clone(),
            gc: self.gc.clone(),
            max_in_flight: self.limits.in_flight_ops,
            ..self.replication.clone()
        }
    }

    fn validate(&self) -> Result<(), String> {
        self.replication.validate()?;
        ringkv_core::bucket::check_name(&self.redis_bucket)
            .map_err(|e| format!("redis_bucket {:?}: {e}", self.redis_bucket))?;
        let ae = &self.anti_entropy;
        if ae.interval_ms == 0 || ae.keys_per_second == 0 || ae.tree_depth > 16 {
            return Err(
                "anti_entropy needs interval_ms >= 1, keys_per_second >= 1 and tree_depth <= 16"
                    .into(),
            );
        }
        self.membership.validate()?;
        let h = &self.hints;
        if h.delivery_interval_ms == 0 || h.delivery_batch == 0 {
            return Err("hints delivery_interval_ms and delivery_batch must be at least 1".into());
        }
        let gc = &self.gc;
        if gc.grace_ms > 0 && (gc.interval_ms == 0 || gc.batch == 0 || gc.fence_ms < gc.grace_ms) {
            return Err(
                "gc needs interval_ms >= 1, batch >= 1 and fence_ms >= grace_ms (grace_ms = 0 \
                 turns collection off)"
                    .into(),
            );
        }
        if !self.seeds.is_empty() && self.nodes.len() > 1 {
            return Err("a node joining through seeds lists only itself in [[nodes]]".into());
        }
        self.limits.validate()?;
        if self.storage.fsync_interval_ms == 0 {
            return Err("storage fsync_interval_ms must be at least 1".into());
        }
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for m in &self.nodes {
            if m.id.is_empty() || m.id.len() > 64 {
                return Err(format!("node id {:?} must be 1 to 64 bytes", m.id));
            }
            if !ids.insert(m.id.as_str()) {
                return Err(format!("node id {} is listed twice", m.id));
            }
            for addr in [Some(m.addr), Some(m.http), m.resp].into_iter().flatten() {
                if !addrs.insert(addr) {
                    return Err(format!("address {addr} is used twice"));
                }
            }
        }
        let Some(me) = self.me() else {
            return Err(format!("node_id {} is not in [[nodes]]", self.node_id));
        };
        addresses::validate(self, me)?;
        let client_addrs: Vec<SocketAddr> = [Some(me.http), me.resp]
            .into_iter()
            .flatten()
            .chain(self.bind.listen(me).client_addrs())
            .collect();
        client_auth::validate(self.auth.as_ref(), self.insecure, &me.id, &client_addrs)?;
        self.validate_security()
    }

    /// Security is on unless the config turns it off in so many words.
    fn validate_security(&self) -> Result<(), String> {
        if self.insecure && self.tls.is_some() {
            return Err("insecure = true and [tls] contradict each other: remove one".into());
        }
        if !self.insecure && self.tls.is_none() {
            return Err(
                "no inter-node credentials: add a [tls] section (ca, cert, key; \
                 `ringkv cert create-ca` and `ringkv cert create-node` make them), \
                 or `insecure = true` for tests and local experiments"
                    .into(),
            );
        }
        if let (Some(_), Some(bad)) = (&self.tls, self.nodes.iter().find(|m| !is_dns_label(&m.id)))
        {
            return Err(format!(
                "node id {:?} cannot be named in a certificate: with [tls], ids are \
                 lower-case letters, digits and '-' (at most 63, not starting or ending with '-')",
                bad.id
            ));
        }
        Ok(())
    }

    /// This node's own entry (present once validated).
    pub fn me(&self) -> Option<&MemberConfig> {
        self.nodes.iter().find(|m| m.id == self.node_id)
    }

    /// The sockets this node binds (present once validated).
    pub fn listen(&self) -> Option<Listen> {
        self.me().map(|me| self.bind.listen(me))
    }
}

/// Whether `id` is one lower-case DNS label, as a node certificate's name
/// `{id}.node.ringkv` needs (RFC 1123). Lower case only: certificate names
/// compare without regard to case, node ids do not, so `N2` and `n2` must
/// not both be possible.
pub fn is_dns_label(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        insecure = true
        node_id = "n1"
        data_dir = "/tmp/x"
        [[nodes]]
        id = "n1"
        addr = "127.0.0.1:7101"
        http = "127.0.0.1:8101"
        resp = "127.0.0.1:6101"
        [[nodes]]
        id = "n2"
        addr = "127.0.0.1:7102"
        http = "127.0.0.1:8102"
        zone = "b"
    "#;

    #[test]
    fn a_minimal_config_gets_the_defaults() {
        let c = NodeConfig::parse(GOOD).unwrap();
        assert_eq!(c.cluster, "ringkv");
        assert_eq!(c.replication, Settings::default());
        assert_eq!(c.storage, StorageConfig::default());
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.settings().max_in_flight, c.limits.in_flight_ops);
        assert_eq!(c.me().unwrap().http.port(), 8101);
        assert_eq!(c.me().unwrap().resp.map(|a| a.port()), Some(6101));
        assert_eq!(c.nodes[1].resp, None);
        assert_eq!(c.nodes[1].zone.as_deref(), Some("b"));
    }

    #[test]
    fn security_is_on_unless_turned_off_in_so_many_words() {
        let secure = GOOD.replace("insecure = true", "");
        let err = NodeConfig::parse(&secure).unwrap_err();
        assert!(err.contains("no inter-node credentials"), "{err}");
        let tls = "[tls]\nca = \"ca.pem\"\ncert = \"n1.pem\"\nkey = \"n1.key\"\n";
        let with_tls = format!("{secure}\n{tls}");
        let c = NodeConfig::parse(&with_tls).unwrap();
        assert!(!c.insecure);
        let err = NodeConfig::parse(&format!("{GOOD}\n{tls}")).unwrap_err();
        assert!(err.contains("contradict"), "{err}");
        let bad_id = with_tls.replace("\"n2\"", "\"n_2\"");
        let err = NodeConfig::parse(&bad_id).unwrap_err();
        assert!(err.contains("cannot be named in a certificate"), "{err}");
    }

    #[test]
    fn credential_paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = GOOD.replace("insecure = true", "")
            + "\n[tls]\nca = \"certs/ca.pem\"\ncert = \"/abs/n1.pem\"\nkey = \"k\"\n";
        let path = dir.path().join("n1.toml");
        std::fs::write(&path, text).unwrap();
        let tls = NodeConfig::load(&path).unwrap().tls.unwrap();
        assert_eq!(tls.ca, dir.path().join("certs/ca.pem"));
        assert_eq!(tls.cert, Path::new("/abs/n1.pem"));
        assert_eq!(tls.key, dir.path().join("k"));
    }

    #[test]
    fn wrong_types_and_unknown_fields_are_clear_errors() {
        let cases = [
            (
                GOOD.replace("\"n1\"\n        data_dir", "1\n        data_dir"),
                "node_id",
            ),
            (
                GOOD.replace("data_dir", "dta_dir"),
                "unknown field `dta_dir`",
            ),
            (
                format!("{GOOD}\n[replication]\nn = \"three\""),
                "invalid type",
            ),
            (
                format!("{GOOD}\n[replication]\nw = 5"),
                "w = 5 must be within 1..=3",
            ),
            (
                format!("{GOOD}\n[storage]\nengine = \"rocks\""),
                "unknown variant `rocks`",
            ),
            (
                GOOD.replace("127.0.0.1:8102", "nowhere"),
                "invalid socket address",
            ),
            (
                GOOD.replace("node_id = \"n1\"", "node_id = \"n9\""),
                "n9 is not in",
            ),
            (GOOD.replace("id = \"n2\"", "id = \"n1\""), "listed twice"),
            (
                GOOD.replace("6101", "7102"),
                "address 127.0.0.1:7102 is used twice",
            ),
            (
                format!("seeds = [\"127.0.0.1:7103\"]\n{GOOD}"),
                "lists only itself",
            ),
            (
                format!("{GOOD}\n[membership]\nsuspect_after_ms = \"soon\""),
                "invalid type",
            ),
            (
                format!("{GOOD}\n[membership]\nsuspect_after_ms = 10"),
                "must exceed probe_interval_ms",
            ),
            (
                format!("{GOOD}\n[limits]\nin_flight_ops = 0"),
                "limits in_flight_ops = 0 must be within 1..=1000000",
            ),
            (
                format!("{GOOD}\n[limits]\nhttp_conections = 5"),
                "unknown field `http_conections`",
            ),
        ];
        for (text, expected) in cases {
            let err = NodeConfig::parse(&text).unwrap_err();
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }
}
