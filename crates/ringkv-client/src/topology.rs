//! The client's picture of the cluster: members, N, and the ring, built
//! from a node's `/ring` (or, from a node too old for it, `/status`, which
//! carries the same fields) the same way every node builds it.

use ringkv_core::ring::{Ring, RingMember};
use ringkv_core::ring_view::{RingView, RingViewMember};
use ringkv_core::NodeId;

#[derive(Debug)]
pub(crate) struct Member {
    pub id: NodeId,
    /// `host:port` of its HTTP API.
    pub addr: String,
}

#[derive(Debug)]
pub(crate) struct Topology {
    pub members: Vec<Member>,
    n: usize,
    /// `None` when the ring computed here does not match the nodes' (a
    /// client built from another ringkv version): routing a key by a wrong
    /// ring would only add hops, so the client routes generically instead.
    ring: Option<Ring>,
    /// The nodes' ring fingerprint, as `/ring` and every `/kv` answer
    /// carry it.
    pub fingerprint: String,
}

impl Topology {
    /// The topology a `/ring` (or `/status`) document describes. Members
    /// that own no ranges, or have no HTTP address, are left out.
    pub fn from_ring(body: &[u8]) -> Result<Topology, String> {
        let view: RingView =
            serde_json::from_slice(body).map_err(|e| format!("not a ringkv ring: {e}"))?;
        let owners: Vec<&RingViewMember> =
            view.members.iter().filter(|m| m.owns_ranges()).collect();
        let ring = Ring::with_members(
            owners.iter().map(|m| RingMember {
                id: NodeId::new(&m.id),
                zone: m.zone.clone(),
                tokens_from: m.tokens_from.as_deref().map(NodeId::new),
            }),
            view.vnodes_per_node,
        );
        let computed = format!("{:016x}", ring.fingerprint());
        Ok(Topology {
            members: owners
                .into_iter()
                .filter_map(|m| {
                    Some(Member {
                        id: NodeId::new(&m.id),
                        addr: m.http.clone()?,
                    })
                })
                .collect(),
            n: view.n,
            ring: (computed == view.ring_fingerprint).then_some(ring),
            fingerprint: view.ring_fingerprint,
        })
    }

    /// HTTP addresses of the nodes holding `key` (the internal key the
    /// nodes store), coordinator first; empty when the ring is unknown.
    pub fn preference_list(&self, key: &[u8]) -> Vec<&str> {
        let Some(ring) = &self.ring else {
            return Vec::new();
        };
        ring.preference_list(key, self.n)
            .iter()
            .filter_map(|id| self.members.iter().find(|m| m.id == *id))
            .map(|m| m.addr.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(fingerprint: &str) -> String {
        format!(
            r#"{{"n":2,"r":1,"w":1,"vnodes_per_node":16,"ring_fingerprint":"{fingerprint}",
                "members":[{{"id":"a","addr":"127.0.0.1:1","http":"127.0.0.1:11","zone":null}},
                           {{"id":"b","addr":"127.0.0.1:2","http":"127.0.0.1:12","zone":"z"}},
                           {{"id":"c","addr":"127.0.0.1:3","http":"127.0.0.1:13"}}]}}"#
        )
    }

    fn nodes_ring() -> Ring {
        Ring::with_members(
            [
                RingMember::new("a"),
                RingMember::zoned("b", "z"),
                RingMember::new("c"),
            ],
            16,
        )
    }

    #[test]
    fn routes_keys_exactly_as_the_nodes_ring_does() {
        let ring = nodes_ring();
        let topology =
            Topology::from_ring(status(&format!("{:016x}", ring.fingerprint())).as_bytes())
                .unwrap();
        for i in 0..200 {
            let key = format!("key{i}");
            let expected: Vec<String> = ring
                .preference_list(key.as_bytes(), 2)
                .iter()
                .map(|id| {
                    let port = 11 + (id.as_str().as_bytes()[0] - b'a');
                    format!("127.0.0.1:{port}")
                })
                .collect();
            assert_eq!(topology.preference_list(key.as_bytes()), expected);
        }
    }

    #[test]
    fn joining_and_departed_members_own_no_ranges() {
        let ring = nodes_ring();
        let text = status(&format!("{:016x}", ring.fingerprint())).replace(
            r#""http":"127.0.0.1:13"}"#,
            r#""http":"127.0.0.1:13","status":"down"},
               {"id":"d","http":"127.0.0.1:14","status":"joining"},
               {"id":"e","http":"127.0.0.1:15","status":"left"}"#,
        );
        let topology = Topology::from_ring(text.as_bytes()).unwrap();
        assert_eq!(topology.members.len(), 3);
        assert!(
            !topology.preference_list(b"key").is_empty(),
            "the ring matches"
        );
    }

    #[test]
    fn a_ring_that_does_not_match_the_nodes_is_not_used() {
        let topology = Topology::from_ring(status("0000000000000000").as_bytes()).unwrap();
        assert!(topology.preference_list(b"key").is_empty());
        assert_eq!(topology.members.len(), 3);
        assert!(Topology::from_ring(b"{}").is_err());
    }
}
