//! Whether the node is ready to serve its share of the cluster, for load
//! balancers and orchestrators (`/health/ready`), as Kubernetes separates
//! readiness from liveness: a live process may still be joining, fetching
//! its ranges or unable to write.

use super::Node;
use crate::gossip::MemberStatus;
use crate::store::Store;

impl<S: Store> Node<S> {
    /// `Ok` when this node is a member that owns ranges in the ring it
    /// knows, has no ownership handoff in progress and a store that has
    /// not failed; otherwise why not, in one sentence.
    pub fn readiness(&self) -> Result<(), String> {
        if let Some(reason) = self.refusal() {
            return Err(reason.to_owned());
        }
        if let Some(fault) = self.store_fault() {
            return Err(format!(
                "the store failed ({}), so the node is read-only until restarted",
                fault.error
            ));
        }
        match self.members.me().status {
            MemberStatus::Member => {}
            MemberStatus::Joining => return Err("the node is still joining the cluster".into()),
            MemberStatus::Leaving => return Err("the node is leaving the cluster".into()),
            MemberStatus::Left => return Err("the node has left the cluster".into()),
            MemberStatus::Removing | MemberStatus::Removed => {
                return Err("the node was removed from the cluster".into())
            }
        }
        if self.ring.is_empty() {
            return Err("the node does not know the ring yet".into());
        }
        if !self.ring.contains(&self.id) {
            return Err("the node owns no ranges in the ring it knows".into());
        }
        match self.handoff_progress() {
            Some(p) => Err(format!(
                "an ownership handoff is in progress ({} of {} ranges fetched)",
                p.ranges_done, p.ranges_total
            )),
            None => Ok(()),
        }
    }
}
