//! The identity rule, without the cryptography. In a real cluster the
//! transport binds every connection to the peer's certificate, so the
//! `from` of a message is who sent it. The simulator's network delivers
//! each message with its true sender, which is that guarantee; what it adds
//! here is a member abusing it: now and then a member sends a gossip
//! introduction (`Syn`) that claims to come from another member, with an
//! address of its own. Nodes must never take such an entry (the rule in
//! `Membership::on_gossip`), or traffic for the victim would go to the
//! forger.

use super::*;
use ringkv_core::gossip::GossipMsg;

/// Chance per tick of one forged introduction.
const FORGE_RATE: f64 = 0.01;
/// What a forged entry's address starts with.
const FORGED_ADDR: &str = "forged-by-";

impl Sim {
    /// Maybe deliver one forged introduction: liar tells target that it is
    /// victim, now at the liar's address, with a newer generation.
    pub(super) fn forge_introduction(&mut self) {
        let ids = self.running_ids();
        if ids.len() < 3 || !self.forger.random_bool(FORGE_RATE) {
            return;
        }
        let pick =
            |rng: &mut ChaCha8Rng, ids: &[NodeId]| ids[rng.random_range(0..ids.len())].clone();
        let liar = pick(&mut self.forger, &ids);
        let others: Vec<NodeId> = ids.iter().filter(|i| **i != liar).cloned().collect();
        let victim = pick(&mut self.forger, &others);
        let target = pick(&mut self.forger, &others);
        let Some(entry) = self
            .node_mut(&liar)
            .membership()
            .members()
            .find(|m| m.id == victim)
            .cloned()
        else {
            return;
        };
        let forged = MemberState {
            addr: Some(format!("{FORGED_ADDR}{liar}")),
            generation: entry.generation + 1_000,
            ..entry
        };
        self.counts.forgeries += 1;
        let msg = Message::Gossip(GossipMsg::Syn {
            digests: Vec::new(),
            sender: forged,
            buckets: 0,
        });
        let now = self.clock(&target);
        self.node_mut(&target).on_message(now, liar, msg);
        self.collect(&target);
        // Checked at once: an entry taken now may be overwritten by the
        // victim's own gossip before the run ends.
        let taken = self.forged_entries_taken();
        self.forgeries_taken.extend(taken);
    }

    /// Every node that took a forged entry, named with the entry.
    pub(super) fn forged_entries_taken(&self) -> Vec<String> {
        self.live()
            .flat_map(|node| {
                node.membership()
                    .members()
                    .filter(|m| {
                        m.addr
                            .as_deref()
                            .is_some_and(|a| a.starts_with(FORGED_ADDR))
                    })
                    .map(|m| {
                        format!(
                            "{} took a forged entry for {}: {:?}",
                            node.id(),
                            m.id,
                            m.addr
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
