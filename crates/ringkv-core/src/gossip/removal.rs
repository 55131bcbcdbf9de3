//! Removing a member that will never come back, and replacing it (Cassandra's
//! `nodetool removenode` and `replace_address`, Riak's `cluster
//! force-remove` and `cluster replace`): an operator's decision, taken on
//! any node, that spreads by gossip like any other entry change.
//!
//! A member's entry is otherwise written only by the member itself. A
//! removal is the one exception, and it must beat anything the member may
//! still say: the removed entry carries the **fenced generation**
//! ([`FENCED_GENERATION`], `u64::MAX`), which no restart can outrun — a
//! restarted member bumps its generation, and the entry with the higher
//! `(generation, version)` wins. A removed member that comes back learns
//! its removal from the first answer to its gossip and stops; until then
//! the others take nothing else from it (see `Node::on_message`).
//!
//! Two steps, as for a leave: `Removing` keeps the member in the current
//! ring — never asked for anything — while every node that gains one of its
//! ranges fetches it from the *surviving* replicas (the handoff's fallback
//! when the displaced replica is unavailable); once every live member holds
//! its share of the ring without it, any node turns it `Removed`. Every node
//! derives the same `Removed` entry, so two doing it at once agree.
//!
//! A **replacement** is a new member whose entry names the dead one in
//! `replaces`: it takes the dead member's tokens, so it gains exactly the
//! dead member's ranges and no other key moves; it enters the ring only
//! once the dead member is removed, which it does itself when it sees the
//! dead member down.

use super::{Liveness, MemberState, MemberStatus, Membership};
use crate::ring::RingMember;
use crate::NodeId;

/// The generation of a removed member's entry: no entry of the member
/// itself can ever beat it.
pub const FENCED_GENERATION: u64 = u64::MAX;

/// Why a removal or replacement is refused; each reads as one sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RemoveRefusal {
    #[error("{0} is not a member of this cluster")]
    Unknown(NodeId),
    #[error("{0} is this node: remove it from another node, or make it leave")]
    Myself(NodeId),
    #[error("{0} has left the cluster already")]
    Left(NodeId),
    #[error("{0} is removed already")]
    AlreadyRemoved(NodeId),
    #[error(
        "{id} is {liveness} to this node, not down: removing a node that is up loses what \
         only it holds; stop it first (or make it leave), or pass --force"
    )]
    Up { id: NodeId, liveness: &'static str },
    #[error("{id} is being replaced by {by} already")]
    Replaced { id: NodeId, by: NodeId },
}

impl Membership {
    /// Remove member `id`: `Removing` when it may own ranges (they are then
    /// handed over), `Removed` at once when it never did (a joining member).
    /// Refused when it is up by this node's judgment, unless `force`.
    /// Returns the status it now has.
    pub fn remove(&mut self, id: &NodeId, force: bool) -> Result<MemberStatus, RemoveRefusal> {
        let member = self.removable(id)?;
        let liveness = self.liveness(id);
        if liveness != Liveness::Down && !force {
            let liveness = match liveness {
                Liveness::Up => "up",
                _ => "only suspected",
            };
            return Err(RemoveRefusal::Up {
                id: id.clone(),
                liveness,
            });
        }
        let status = match member.status {
            MemberStatus::Joining => MemberStatus::Removed,
            _ => MemberStatus::Removing,
        };
        let fenced = fenced(member, status);
        self.members.insert(id.clone(), fenced);
        self.mark_changed();
        Ok(status)
    }

    /// The entry of `id` if it may be removed: known, not this node, not
    /// gone already.
    fn removable(&self, id: &NodeId) -> Result<&MemberState, RemoveRefusal> {
        let member = self
            .members
            .get(id)
            .ok_or_else(|| RemoveRefusal::Unknown(id.clone()))?;
        match member.status {
            _ if *id == self.me => Err(RemoveRefusal::Myself(id.clone())),
            MemberStatus::Left => Err(RemoveRefusal::Left(id.clone())),
            s if s.is_removed() => Err(RemoveRefusal::AlreadyRemoved(id.clone())),
            _ => Ok(member),
        }
    }

    /// A replacing node (its entry names the dead member in `replaces`,
    /// from its first gossip on) removes the dead member once it is down:
    /// `Ok(true)` once it is removed, `Ok(false)` while this node does not
    /// know it yet; refused when it is up or left, or another member
    /// replaces it already. Until the dead member is removed this node is
    /// in no ring (see [`Self::ring_member`]).
    pub fn remove_replaced(&mut self) -> Result<bool, RemoveRefusal> {
        let Some(dead) = self.me().replaces.clone() else {
            return Ok(true);
        };
        if let Some(by) = self
            .live_entries()
            .find(|m| m.id != self.me && m.replaces.as_ref() == Some(&dead))
        {
            return Err(RemoveRefusal::Replaced {
                id: dead,
                by: by.id.clone(),
            });
        }
        match self.remove(&dead, false) {
            Ok(_) | Err(RemoveRefusal::AlreadyRemoved(_)) => Ok(true),
            Err(RemoveRefusal::Unknown(_)) => Ok(false),
            Err(refusal) => Err(refusal),
        }
    }

    /// Once every live member holds its share of ring `target` (the ring
    /// without removing members), the removing members are removed. True
    /// when any entry changed.
    pub fn finish_removals(&mut self, target: u64) -> bool {
        let removing: Vec<NodeId> = self
            .members
            .values()
            .filter(|m| m.status == MemberStatus::Removing)
            .map(|m| m.id.clone())
            .collect();
        if removing.is_empty() || !self.behind(target).is_empty() {
            return false;
        }
        for id in removing {
            let done = fenced(&self.members[&id], MemberStatus::Removed);
            self.members.insert(id, done);
        }
        self.mark_changed();
        true
    }

    /// The live members that must hold their share of ring `target` and do
    /// not report it yet: what a removal (or a leave) waits for.
    pub fn behind(&self, target: u64) -> Vec<NodeId> {
        self.live_entries()
            .filter(|m| self.owes_share(m) && m.synced != target)
            .map(|m| m.id.clone())
            .collect()
    }

    /// Whether `m` must hold its share of a ring before the ring moves on:
    /// every member in it. A replacement still waiting for its member to be
    /// removed is in no ring and holds nothing — and one that gave up (the
    /// member was up) stays so until removed itself, which must block no
    /// other removal, join or leave.
    pub fn owes_share(&self, m: &MemberState) -> bool {
        !m.status.is_gone() && self.ring_member(m).is_some()
    }

    /// `m` as a ring member: a replacement takes the replaced member's
    /// tokens, and is no ring member at all until that one is removed.
    pub(super) fn ring_member(&self, m: &MemberState) -> Option<RingMember> {
        let tokens_from = match &m.replaces {
            None => None,
            Some(dead) => {
                let dead = self.members.get(dead)?;
                if !dead.status.is_removed() {
                    return None;
                }
                Some(self.token_id(dead)?)
            }
        };
        Some(RingMember {
            id: m.id.clone(),
            zone: m.zone.clone(),
            tokens_from,
        })
    }

    /// The id whose tokens `m` has: its own, or — through a chain of
    /// replacements — the first replaced member's. `None` when a link of
    /// the chain is unknown (or it loops, which no honest cluster makes).
    fn token_id(&self, m: &MemberState) -> Option<NodeId> {
        let mut at = m;
        for _ in 0..=self.members.len() {
            match &at.replaces {
                None => return Some(at.id.clone()),
                Some(earlier) => at = self.members.get(earlier)?,
            }
        }
        None
    }
}

/// The entry every node derives for a removed member: the fenced
/// generation, a version per step, and only what identifies it (where it
/// was, what it replaced).
fn fenced(m: &MemberState, status: MemberStatus) -> MemberState {
    debug_assert!(status.is_removed());
    MemberState {
        zone: m.zone.clone(),
        addr: m.addr.clone(),
        http: m.http.clone(),
        generation: FENCED_GENERATION,
        version: u64::from(status == MemberStatus::Removed),
        replaces: m.replaces.clone(),
        ..MemberState::new(m.id.clone(), status)
    }
}
