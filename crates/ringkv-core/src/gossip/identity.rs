//! One id, one node. Each member's entry carries an `incarnation` drawn
//! when its data directory was created and kept by its restarts, so an
//! entry for this node's id with another incarnation comes from another
//! life of the id: the same node before its disk was lost, or a second
//! process started with the id. (Stamps cannot tell: a new life's
//! heartbeats soon outrun an old life's version.) A node started on a
//! *new* data directory must not take such an entry over, because it holds none of that member's
//! data yet the ring would send it that member's reads, and its address
//! would replace the member's everywhere. It refuses instead, as Cassandra
//! refuses a node whose host id or address is already in the ring ("use
//! replace_address"), and the operator chooses: a new id with `--replace`,
//! or the old node's data directory.

use super::{MemberState, Membership};

impl Membership {
    /// Mark this node as started on a new data directory (no saved member
    /// list): its id must be new to the cluster.
    pub fn first_life(mut self) -> Self {
        self.first_life = true;
        self
    }

    /// Why this node may not use its id, once gossip showed the cluster
    /// has it already (see the module doc); the shell stops the node with
    /// this sentence.
    pub fn identity_conflict(&self) -> Option<&str> {
        self.identity_conflict.as_deref()
    }

    /// Whether `state` shows that this node's id belongs to another life
    /// (recording why, once). Placeholders (generation 0, from a config)
    /// are no life.
    pub(super) fn conflicts_with_me(&mut self, state: &MemberState) -> bool {
        let other_life = state.id == self.me
            && state.generation > 0
            && state.incarnation != self.me().incarnation;
        if !self.first_life || !other_life {
            return false;
        }
        if self.identity_conflict.is_none() {
            let id = &state.id;
            let status = format!("{:?}", state.status).to_lowercase();
            tracing::error!("node {id}: the cluster already has a member {id} ({status})");
            self.identity_conflict = Some(format!(
                "the cluster already has a member {id} ({status}, generation {}) and this \
                 node's data directory is new, so it holds none of that member's data: if {id} \
                 is gone for good, start this node with a new id and --replace {id} (after \
                 ringkv remove {id} if it was removed already, only the new id); if it runs \
                 elsewhere, this is a second node with its id",
                state.generation
            ));
        }
        true
    }

    /// Whether `incoming` is another life of the member `known` describes
    /// (both real entries, of different incarnations). Others keep the
    /// life they knew first and answer the new one with it, so the new
    /// life refuses whatever the order of their stamps: a new life starts
    /// at generation 1 and its heartbeats may outrun a short old life's.
    pub(super) fn lives_differ(known: &MemberState, incoming: &MemberState) -> bool {
        let real = |m: &MemberState| m.generation > 0 && m.incarnation != 0;
        real(known) && real(incoming) && known.incarnation != incoming.incarnation
    }

    /// A running node outruns a newer entry of its own id; when that entry
    /// is of another life, say so loudly: a second process uses this id
    /// (one that started on its own copy of this node's data, which the
    /// incarnation cannot tell, is not seen).
    pub(super) fn warn_other_life(&self, state: &MemberState) {
        let mine = self.me().incarnation;
        if state.incarnation != 0 && mine != 0 && state.incarnation != mine {
            tracing::error!(
                "node {}: another node announces itself as {} (address {}); \
                 two nodes must never share an id: stop one of them",
                self.me,
                state.id,
                state.addr.as_deref().unwrap_or("unknown")
            );
        }
    }
}
