//! Dead members in the schedule: a member killed for good (never restarted
//! by the fault loop), an operator removing it through another member as
//! soon as that member sees it down, and — once the removal (or the
//! replacement) is done everywhere — the dead member coming back with its
//! old disk, as a machine repaired and switched on again would. It must
//! learn it was removed and give up ([`Node::refusal`]), and meanwhile
//! nothing it holds or is asked may reach anyone: the checker's rules
//! (no lost acknowledged write, no resurrection, …) judge the whole run.

use super::*;
use ringkv_core::gossip::RemoveRefusal;

/// What the sim tracks of removals.
#[derive(Debug, Default)]
pub(super) struct RemovalState {
    /// A removal the operator has yet to get through.
    pending: Option<NodeId>,
    /// The removed node brought back with its old disk.
    revived: Option<NodeId>,
    /// Why nodes gave up ([`Node::refusal`]), by node.
    refusals: BTreeMap<NodeId, String>,
    /// Removals refused for a reason other than the member being up.
    errors: Vec<String>,
}

impl Sim {
    /// Crash `id` and never restart it by itself; a removal's victim is
    /// then removed by the operator (`Remove`), or by its replacement.
    pub(super) fn kill_for_good(&mut self, id: &NodeId) {
        self.crash(id, false);
        self.history.disk_losses.push(self.now);
        self.nodes.get_mut(id).expect("node").dead_for_good = true;
        if matches!(self.cfg.change, Some(MembershipChange::Remove { .. })) {
            self.removal.pending = Some(id.clone());
        }
    }

    /// The operator's `ringkv remove`, through the first member up, tried
    /// every tick until it is taken (it is refused while the member is not
    /// down by agreement there).
    pub(super) fn push_removal(&mut self) {
        let Some(target) = self.removal.pending.clone() else {
            return;
        };
        let Some(via) = self
            .running_ids()
            .into_iter()
            .find(|id| *id != target && !self.node_up(id).is_some_and(|n| n.has_left()))
        else {
            return;
        };
        let now = self.clock(&via);
        match self.node_mut(&via).remove(now, &target, false) {
            Ok(_) | Err(RemoveRefusal::AlreadyRemoved(_)) => self.removal.pending = None,
            Err(RemoveRefusal::Up { .. }) => return,
            Err(e) => {
                self.removal
                    .errors
                    .push(format!("removal of {target} via {via}: {e}"));
                self.removal.pending = None;
            }
        }
        self.record(&(self.now, "removal", &target, &via));
        self.collect(&via);
    }

    /// The removed node comes back with its old disk (once).
    pub(super) fn revive_removed(&mut self) {
        let Some(dead) = self.cfg.change.as_ref().and_then(|c| c.removed()).cloned() else {
            return;
        };
        if self.removal.revived.is_some() {
            return;
        }
        self.removal.revived = Some(dead.clone());
        self.nodes.get_mut(&dead).expect("node").dead_for_good = false;
        self.restart(&dead);
    }

    /// Stop the nodes that gave up, as the server does, noting why.
    pub(super) fn stop_refused_nodes(&mut self) {
        let refused: Vec<(NodeId, String)> = self
            .live()
            .filter_map(|n| n.refusal().map(|r| (n.id().clone(), r.to_owned())))
            .collect();
        for (id, reason) in refused {
            let sim_node = self.nodes.get_mut(&id).expect("node");
            sim_node.node = None;
            sim_node.dead_for_good = true;
            self.removal.refusals.insert(id.clone(), reason);
            self.abandon_requests_via(&id, "node gave up");
        }
    }

    /// A removal refused for a reason the schedule cannot explain, a node
    /// other than the removed one giving up, or the removed one coming back
    /// and never learning it was removed.
    pub(super) fn removal_violations(&self) -> Vec<String> {
        let mut found = self.removal.errors.clone();
        for (id, reason) in &self.removal.refusals {
            if self.removal.revived.as_ref() != Some(id) {
                found.push(format!("{id} gave up: {reason}"));
            }
        }
        if let Some(dead) = &self.removal.revived {
            if !self.removal.refusals.contains_key(dead) {
                found.push(format!(
                    "{dead} was removed, came back and was never fenced"
                ));
            }
        }
        found
    }
}
