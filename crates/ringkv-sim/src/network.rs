//! The simulated network: every message gets a delivery time; faults drop,
//! duplicate, delay (and so reorder) messages, and partitions cut links,
//! one direction or both. All randomness comes from the simulation's RNG.
//!
//! A healed partition may leave links **stalled**: a real TCP connection
//! that saw its packets dropped sits in retransmission backoff after the
//! peer is reachable again, and everything written into it vanishes until
//! the transport's progress timeout drops the connection and reports the
//! peer unreachable. A stalled link drops silently, then reports once.
//! Like the real transport, it refuses a message that encodes larger than
//! `max_frame_bytes` and hands it back to the sender.

use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use ringkv_core::message::{encoded_len, Message};
use ringkv_core::{Millis, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// How unreliable the network is (per message).
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    /// Usual one-way latency is 1..=`max_delay_ms`.
    pub max_delay_ms: Millis,
    /// Chance of a long delay (up to 20x), which reorders messages.
    pub long_delay: f64,
}

impl Faults {
    /// A healthy network: only ordinary latency.
    pub const NONE: Faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        max_delay_ms: 5,
        long_delay: 0.0,
    };
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub cut: u64,
    /// Messages lost in links that stayed stalled after a heal.
    pub stalled: u64,
    /// Messages refused for encoding larger than a frame.
    pub too_large: u64,
    /// The largest message sent, in encoded bytes.
    pub largest: usize,
}

type Envelope = (NodeId, NodeId, Message);

/// A message the network refused: it encodes to `bytes`, more than a frame.
pub struct TooLarge {
    pub to: NodeId,
    pub msg: Message,
    pub bytes: usize,
}

pub struct Network {
    /// By (delivery time, sequence number): a deterministic order.
    queue: BTreeMap<(Millis, u64), Envelope>,
    seq: u64,
    /// Directed links that drop everything (partitions).
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Directed links stalled after a heal, until when.
    stalled: BTreeMap<(NodeId, NodeId), Millis>,
    /// The transport's frame limit (the nodes' `max_frame_bytes`).
    max_frame_bytes: usize,
    pub stats: NetStats,
}

impl Network {
    pub fn new(max_frame_bytes: usize) -> Self {
        Network {
            queue: BTreeMap::new(),
            seq: 0,
            blocked: BTreeSet::new(),
            stalled: BTreeMap::new(),
            max_frame_bytes,
            stats: NetStats::default(),
        }
    }

    /// Queue `envelope` for delivery, or hand it back when it is too large
    /// for a frame (the sender must be told, as the transport tells it).
    pub fn send(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Millis,
        faults: &Faults,
        envelope: Envelope,
    ) -> Option<TooLarge> {
        self.stats.sent += 1;
        let bytes = encoded_len(&envelope.2);
        if bytes > self.max_frame_bytes {
            self.stats.too_large += 1;
            let (_, to, msg) = envelope;
            return Some(TooLarge { to, msg, bytes });
        }
        self.stats.largest = self.stats.largest.max(bytes);
        if self
            .blocked
            .contains(&(envelope.0.clone(), envelope.1.clone()))
        {
            self.stats.cut += 1;
            return None;
        }
        if self
            .stalled
            .contains_key(&(envelope.0.clone(), envelope.1.clone()))
        {
            self.stats.stalled += 1;
            return None;
        }
        if rng.random_bool(faults.drop) {
            self.stats.dropped += 1;
            return None;
        }
        // Any message may come twice, forwards of increments included: a
        // node drops a repeated forward of an operation that must not be
        // applied twice (`node::dedup`; before it did, 11 of seeds 1–200
        // counted an increment twice).
        if rng.random_bool(faults.duplicate) {
            self.stats.duplicated += 1;
            let at = now + delay(rng, faults);
            self.enqueue(at, envelope.clone());
        }
        let at = now + delay(rng, faults);
        self.enqueue(at, envelope);
        None
    }

    /// The next message due by `now`, if any.
    pub fn due(&mut self, now: Millis) -> Option<Envelope> {
        let (&(at, _), _) = self.queue.first_key_value()?;
        if at > now {
            return None;
        }
        self.queue.pop_first().map(|(_, e)| e)
    }

    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Cut the link from `a` to `b` (one direction).
    pub fn block(&mut self, a: &NodeId, b: &NodeId) {
        self.blocked.insert((a.clone(), b.clone()));
    }

    /// End every fault at once: cut and stalled links carry traffic.
    pub fn heal(&mut self) {
        self.blocked.clear();
        self.stalled.clear();
    }

    /// End a partition: every cut link stays stalled with chance `chance`
    /// for up to `max_stall_ms` more (the transport's progress timeout).
    pub fn heal_partition(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Millis,
        chance: f64,
        max_stall_ms: Millis,
    ) {
        for link in std::mem::take(&mut self.blocked) {
            if rng.random_bool(chance) {
                let until = now + rng.random_range(1..=max_stall_ms.max(1));
                self.stalled.insert(link, until);
            }
        }
    }

    /// Links whose stall ended by `now`, as (sender, peer): the sender's
    /// transport gave the connection up and reports the peer unreachable.
    pub fn stalls_ended(&mut self, now: Millis) -> Vec<(NodeId, NodeId)> {
        let ended: Vec<(NodeId, NodeId)> = self
            .stalled
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(link, _)| link.clone())
            .collect();
        for link in &ended {
            self.stalled.remove(link);
        }
        ended
    }

    /// Messages held for `to` (paused) that are due later than `now` are
    /// due now: it runs again, and its kernel hands over what it buffered.
    pub fn release_held(&mut self, to: &NodeId, now: Millis) {
        let held: Vec<(Millis, u64)> = self
            .queue
            .iter()
            .filter(|((at, _), envelope)| *at > now && envelope.1 == *to)
            .map(|(k, _)| *k)
            .collect();
        for k in held {
            if let Some(envelope) = self.queue.remove(&k) {
                self.enqueue(now, envelope);
            }
        }
    }

    /// Deliver `envelope` at `at` instead (its receiver is paused: the
    /// kernel holds what arrives until the process runs again).
    pub fn hold(&mut self, at: Millis, envelope: Envelope) {
        self.enqueue(at, envelope);
    }

    fn enqueue(&mut self, at: Millis, envelope: Envelope) {
        self.seq += 1;
        self.queue.insert((at, self.seq), envelope);
    }
}

fn delay(rng: &mut ChaCha8Rng, faults: &Faults) -> Millis {
    let base = rng.random_range(1..=faults.max_delay_ms.max(1));
    if rng.random_bool(faults.long_delay) {
        base * rng.random_range(2..=20)
    } else {
        base
    }
}
