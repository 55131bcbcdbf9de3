//! Bind versus advertise: the address a node listens on and the address
//! the others reach it at are two things (Cassandra's `listen_address` and
//! `broadcast_address`, Garage's `rpc_bind_addr` and `rpc_public_addr`).
//!
//! ```toml
//! [bind]                       # optional, this node only
//! addr = "0.0.0.0:7101"        # inter-node listener
//! http = "0.0.0.0:8101"
//! resp = "0.0.0.0:6101"        # needs `resp` in the node's [[nodes]] entry
//!
//! [[nodes]]
//! id = "n1"
//! addr = "10.0.0.1:7101"       # advertised: what gossip tells peers to dial
//! http = "10.0.0.1:8101"       # advertised: what clients and `ringkv status` see
//! ```
//!
//! The `[[nodes]]` entries are what members *advertise*; a key of `[bind]`
//! left out binds the advertised address itself, which is what a config
//! without `[bind]` has always meant. A wildcard (`0.0.0.0`, `::`) or port 0
//! can be bound but not dialled, so it is refused wherever it would be
//! advertised or dialled (`[[nodes]]`, `seeds`) rather than guessed at: the
//! first non-loopback interface is the wrong answer behind NAT or in a
//! container, which is where binds and advertised addresses differ.

use super::{MemberConfig, NodeConfig};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Where this node listens, key by key, when that is not the address its
/// own `[[nodes]]` entry advertises.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindConfig {
    /// Inter-node listener (default: the advertised `addr`).
    #[serde(default)]
    pub addr: Option<SocketAddr>,
    /// HTTP listener (default: the advertised `http`).
    #[serde(default)]
    pub http: Option<SocketAddr>,
    /// Redis protocol listener (default: the advertised `resp`).
    #[serde(default)]
    pub resp: Option<SocketAddr>,
}

/// The sockets a node binds, `[bind]` over its own advertised entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub http: SocketAddr,
    /// `None`: the node serves no Redis protocol.
    pub resp: Option<SocketAddr>,
}

impl BindConfig {
    /// What node `me` binds: each `[bind]` key, or the advertised address.
    pub fn listen(&self, me: &MemberConfig) -> Listen {
        Listen {
            addr: self.addr.unwrap_or(me.addr),
            http: self.http.unwrap_or(me.http),
            resp: self.resp.or(me.resp),
        }
    }
}

impl Listen {
    /// The client listeners (HTTP, then RESP).
    pub fn client_addrs(&self) -> impl Iterator<Item = SocketAddr> {
        [Some(self.http), self.resp].into_iter().flatten()
    }
}

/// Whether another machine could connect to `addr`.
fn dialable(addr: SocketAddr) -> bool {
    !addr.ip().is_unspecified() && addr.port() != 0
}

/// Every advertised and dialled address can be dialled; `[bind]` names
/// distinct sockets and a `resp` only for a node that advertises one.
pub(super) fn validate(config: &NodeConfig, me: &MemberConfig) -> Result<(), String> {
    for m in &config.nodes {
        let advertised = [
            ("addr", Some(m.addr)),
            ("http", Some(m.http)),
            ("resp", m.resp),
        ];
        for (key, addr) in advertised {
            if let Some(addr) = addr.filter(|a| !dialable(*a)) {
                return Err(undialable(&m.id, key, addr, m.id == me.id));
            }
        }
    }
    if let Some(seed) = config.seeds.iter().find(|s| !dialable(**s)) {
        return Err(format!(
            "seed {seed} cannot be dialled (a wildcard host or port 0): seeds are \
             the addresses other members advertise in their [[nodes]] addr"
        ));
    }
    validate_bind(&config.bind, me)
}

/// The sentence for an advertised address nobody can dial.
fn undialable(id: &str, key: &str, addr: SocketAddr, mine: bool) -> String {
    let fix = if mine {
        format!(
            "put the address others reach this node at in its [[nodes]] {key} and \
             bind {addr} with `{key} = \"{addr}\"` under [bind]"
        )
    } else {
        format!("list the address node {id} advertises in its own config")
    };
    format!(
        "node {id} advertises {key} = {addr}, which no other machine can dial \
         (a wildcard host or port 0): {fix}"
    )
}

fn validate_bind(bind: &BindConfig, me: &MemberConfig) -> Result<(), String> {
    if bind.resp.is_some() && me.resp.is_none() {
        return Err(format!(
            "[bind] resp needs a resp address in node {}'s [[nodes]] entry, the one \
             clients are told",
            me.id
        ));
    }
    let listen = bind.listen(me);
    let binds = [Some(listen.addr), Some(listen.http), listen.resp];
    let mut seen = Vec::new();
    for addr in binds.into_iter().flatten() {
        if seen.contains(&addr) {
            return Err(format!("[bind] gives {addr} to two listeners"));
        }
        seen.push(addr);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Node n1 (advertising 10.0.0.1, RESP on) and n2, with `head` first.
    fn config(head: &str) -> String {
        format!(
            r#"{head}
            insecure = true
            node_id = "n1"
            data_dir = "/tmp/x"
            [[nodes]]
            id = "n1"
            addr = "10.0.0.1:7101"
            http = "10.0.0.1:8101"
            resp = "10.0.0.1:6101"
            [[nodes]]
            id = "n2"
            addr = "10.0.0.2:7101"
            http = "10.0.0.2:8101"
            "#
        )
    }

    fn refused(text: &str) -> String {
        NodeConfig::parse(text).expect_err(text)
    }

    #[test]
    fn without_bind_a_node_binds_what_it_advertises() {
        let c = NodeConfig::parse(&config("")).unwrap();
        let me = c.me().unwrap();
        let listen = c.listen().unwrap();
        assert_eq!(
            (listen.addr, listen.http, listen.resp),
            (me.addr, me.http, me.resp)
        );
    }

    #[test]
    fn a_wildcard_bind_keeps_the_advertised_addresses_apart() {
        let bind = "[bind]\naddr = \"0.0.0.0:7101\"\nhttp = \"[::]:8101\"\nresp = \"0.0.0.0:6379\"";
        let c = NodeConfig::parse(&format!("{}\n{bind}", config(""))).unwrap();
        let listen = c.listen().unwrap();
        assert_eq!(listen.addr, "0.0.0.0:7101".parse().unwrap());
        assert_eq!(listen.http, "[::]:8101".parse().unwrap());
        assert_eq!(listen.resp, Some("0.0.0.0:6379".parse().unwrap()));
        let me = c.me().unwrap();
        assert_eq!(me.addr, "10.0.0.1:7101".parse().unwrap(), "advertised");
        assert_eq!(me.http, "10.0.0.1:8101".parse().unwrap(), "advertised");
        // One key alone: the others bind their advertised address.
        let c =
            NodeConfig::parse(&format!("{}\n[bind]\nhttp = \"0.0.0.0:8101\"", config(""))).unwrap();
        assert_eq!(c.listen().unwrap().addr, "10.0.0.1:7101".parse().unwrap());
    }

    #[test]
    fn a_wildcard_bind_without_an_advertised_address_is_refused() {
        let text = config("").replace("10.0.0.1:7101", "0.0.0.0:7101");
        let err = refused(&text);
        assert!(
            err.contains(
                "node n1 advertises addr = 0.0.0.0:7101, which no other machine can dial \
                 (a wildcard host or port 0): put the address others reach this node at in \
                 its [[nodes]] addr and bind 0.0.0.0:7101 with `addr = \"0.0.0.0:7101\"` \
                 under [bind]"
            ),
            "{err}"
        );
        for (from, to, key) in [
            ("10.0.0.1:8101", "[::]:8101", "http = [::]:8101"),
            ("10.0.0.1:6101", "0.0.0.0:6101", "resp = 0.0.0.0:6101"),
            ("10.0.0.1:8101", "10.0.0.1:0", "http = 10.0.0.1:0"),
        ] {
            let err = refused(&config("").replace(from, to));
            assert!(err.contains(&format!("node n1 advertises {key}")), "{err}");
        }
    }

    #[test]
    fn another_members_wildcard_and_a_wildcard_seed_are_refused() {
        let err = refused(&config("").replace("10.0.0.2:7101", "0.0.0.0:7101"));
        assert!(
            err.contains("node n2 advertises addr = 0.0.0.0:7101")
                && err.contains("list the address node n2 advertises in its own config"),
            "{err}"
        );
        let joining = config("seeds = [\"0.0.0.0:7101\"]").replace(
            "[[nodes]]\n            id = \"n2\"\n            addr = \"10.0.0.2:7101\"\n            http = \"10.0.0.2:8101\"",
            "",
        );
        let err = refused(&joining);
        assert!(err.contains("seed 0.0.0.0:7101 cannot be dialled"), "{err}");
        let alone = joining.replace("seeds = [\"0.0.0.0:7101\"]", "");
        let c = NodeConfig::parse(&alone).unwrap();
        let err = c
            .with_seeds(vec!["[::]:7101".parse().unwrap()], Path::new("n1.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("seed [::]:7101 cannot be dialled"), "{err}");
    }

    #[test]
    fn bind_keys_are_checked() {
        let no_resp = config("").replace("resp = \"10.0.0.1:6101\"", "");
        let err = refused(&format!("{no_resp}\n[bind]\nresp = \"0.0.0.0:6101\""));
        assert!(
            err.contains("[bind] resp needs a resp address in node n1's [[nodes]] entry"),
            "{err}"
        );
        let twice = format!("{}\n[bind]\nhttp = \"10.0.0.1:7101\"", config(""));
        let err = refused(&twice);
        assert!(
            err.contains("[bind] gives 10.0.0.1:7101 to two listeners"),
            "{err}"
        );
        let typo = format!("{}\n[bind]\nadress = \"0.0.0.0:7101\"", config(""));
        assert!(refused(&typo).contains("unknown field `adress`"));
    }
}
