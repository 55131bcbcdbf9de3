//! One seeded run: a cluster of real `Node` state machines on real
//! `MemoryStore`s, a faulty network, crashes and clock skew, clients doing
//! conflicting work, then heal, quiesce, converge and check.
//!
//! Phases, in virtual milliseconds: faults, workload and (in some runs) the
//! start of one node joining or leaving for `fault_ms`; heal everything;
//! keep the workload going until the join or leave is done everywhere and a
//! little longer, so the ring changes under load; let in-flight requests
//! finish; run until every node serves the same ring and every key's
//! replicas in it agree (at most `settle_ms`); read every key with R = N;
//! check.

mod collection;
mod identity;
mod removal;

use crate::checker::{check_with, Promises, Verdict};
use crate::disk::{DiskFault, SimDisk, FSYNC_MS};
use crate::history::{FinalState, History, UpdateOutcome, WriteOutcome};
use crate::membership::{self, MembershipChange};
use crate::network::{Faults, NetStats, Network, TooLarge};
use crate::workload::{self, Client, CrdtKeys, Step};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use ringkv_core::bucket::BucketTable;
use ringkv_core::coordinator::ClientId;
use ringkv_core::gossip::MemberState;
use ringkv_core::keyspace;
use ringkv_core::message::{ClientOp, ClientReply, Message};
use ringkv_core::node::{Effect, Node, Ready};
use ringkv_core::ring::{Ring, RingMember};
use ringkv_core::settings::Settings;
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::Store;
use ringkv_core::{Millis, NodeId};
use std::collections::BTreeMap;
use xxhash_rust::xxh3::Xxh3;

/// Node ticks, as in the server.
const TICK_MS: Millis = 10;
/// How often the settle phase checks for convergence (a check decodes
/// every replica of every key).
const CONVERGENCE_CHECK_MS: Millis = 100;
/// The longest a join or leave may take to finish after the heal.
const CHANGE_LIMIT_MS: Millis = 60_000;
/// Client work goes on this long after a join or leave finished, while the
/// old owners drop what they handed over.
const WORK_AFTER_CHANGE_MS: Millis = 3_000;
/// A link cut by a partition stays stalled after the heal with this chance,
/// for up to [`MAX_STALL_MS`] (the transport's progress timeout plus its
/// ping interval, with room to spare).
const STALL_CHANCE: f64 = 0.5;
const MAX_STALL_MS: Millis = 2_000;

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    pub keys: usize,
    pub clients: usize,
    pub fault_ms: Millis,
    /// The longest wait for convergence once client work has stopped.
    pub settle_ms: Millis,
    /// Per-message faults during the fault phase.
    pub faults: Faults,
    /// Chance per millisecond of starting a partition / crashing a node.
    pub partition_rate: f64,
    pub crash_rate: f64,
    /// Chance per millisecond of breaking a node's disk for a while.
    pub disk_fault_rate: f64,
    /// Chance per millisecond of pausing a node (SIGSTOP: it does nothing,
    /// and what is sent to it waits in its kernel) for 0.2 to 3 s.
    pub pause_rate: f64,
    /// Each node's clock is off by up to this much.
    pub max_clock_skew_ms: Millis,
    /// Tokens per node.
    pub vnodes: u32,
    /// A node joining or leaving, starting during the fault phase.
    pub change: Option<MembershipChange>,
    /// Context entries kept before pruning, and how young an entry is
    /// safe from it (`Settings::max_clock_entries`, `young_clock_ms`).
    pub max_clock_entries: usize,
    pub young_clock_ms: Millis,
    /// Small size limits (and values padded near them), so that frames are
    /// small and batches hit their byte budgets; `None`: the defaults.
    pub small: Option<SmallLimits>,
}

/// Size limits far below the defaults, for a share of the seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmallLimits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_siblings: usize,
}

impl SmallLimits {
    /// About a third of the seeds: values of a few hundred bytes, two or
    /// three siblings, short keys — frames of a few KiB (with contexts
    /// pruned hard, where [`SimConfig::clock_pruning`] says so), so a batch
    /// holds two to five keys.
    fn draw(shape: &mut ChaCha8Rng) -> Option<SmallLimits> {
        shape.random_bool(1.0 / 3.0).then(|| SmallLimits {
            max_key_bytes: 16,
            max_value_bytes: shape.random_range(200..=600),
            max_siblings: shape.random_range(2..=3),
        })
    }

    fn apply(&self, settings: &mut Settings) {
        settings.max_key_bytes = self.max_key_bytes;
        settings.max_value_bytes = self.max_value_bytes;
        settings.max_siblings = self.max_siblings;
    }

    /// Values are padded to this length (their ids and carts stay in front).
    fn pad_to(&self) -> usize {
        self.max_value_bytes - 40
    }
}

impl SimConfig {
    /// A run whose shape (cluster size, keys) also varies with the seed.
    pub fn for_seed(seed: u64) -> Self {
        let mut shape = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let nodes = shape.random_range(3..=5);
        let fault_ms = 10_000;
        let (max_clock_entries, young_clock_ms) = Self::clock_pruning(&mut shape);
        let mut cfg = SimConfig {
            seed,
            nodes,
            keys: shape.random_range(2..=5),
            clients: shape.random_range(2..=5),
            fault_ms,
            settle_ms: 60_000,
            // Fault intensity varies by seed too: from a mostly healthy
            // network to one losing almost a third of its messages.
            faults: Faults {
                drop: shape.random_range(0.0..0.3),
                duplicate: shape.random_range(0.0..0.1),
                max_delay_ms: shape.random_range(2..=30),
                long_delay: shape.random_range(0.0..0.1),
            },
            partition_rate: shape.random_range(0.0..0.002),
            crash_rate: shape.random_range(0.0..0.001),
            disk_fault_rate: shape.random_range(0.0..0.0005),
            max_clock_skew_ms: 2_000,
            change: MembershipChange::draw(&mut shape, nodes, fault_ms),
            // The default (128) or fewer: fewer, larger ranges make a
            // handoff quicker, so more joins and leaves finish while faults
            // and clients are at work (and runs are cheaper).
            vnodes: [16, 32, 128][shape.random_range(0..3)],
            max_clock_entries,
            young_clock_ms,
            // Drawn last, so the other fields of a seed stay as they were.
            small: SmallLimits::draw(&mut shape),
            pause_rate: 0.0,
        };
        cfg.pause_rate = shape.random_range(0.0..0.0005);
        if cfg.small.is_some() {
            // More keys on fewer, larger ranges, so that hints, transfer
            // pages and exchanges fill their batches.
            cfg.keys = shape.random_range(16..=48);
            cfg.vnodes = 4;
        }
        cfg
    }

    /// A quarter of the seeds prune contexts hard — a bound of 1 to 3
    /// entries, young entries safe for 0 to 2 s — so that pruning, which
    /// real keys only meet after many coordinators, happens all the time.
    fn clock_pruning(shape: &mut ChaCha8Rng) -> (usize, Millis) {
        let defaults = Settings::default();
        if shape.random_bool(0.25) {
            (shape.random_range(1..=3), shape.random_range(0..=2_000))
        } else {
            (defaults.max_clock_entries, defaults.young_clock_ms)
        }
    }
}

/// Faults injected during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub partitions: u64,
    pub crashes: u64,
    /// Crashes that also lost what was not yet fsynced.
    pub power_losses: u64,
    /// Disks whose syncs failed or that were full for a while.
    pub disk_faults: u64,
    /// Nodes paused for a while (they miss ticks; messages wait for them).
    pub pauses: u64,
    /// Gossip introductions a member sent in another member's name.
    pub forgeries: u64,
    pub net: NetStats,
}

#[derive(Clone, Debug)]
pub struct SimReport {
    pub seed: u64,
    pub nodes: usize,
    pub vnodes: u32,
    /// The membership change the schedule held, if any.
    pub change: Option<MembershipChange>,
    /// The small size limits of this seed, if any.
    pub small: Option<SmallLimits>,
    /// The nodes' batch budget (`max_batch_bytes`), to compare with the
    /// largest message sent.
    pub batch_bytes: usize,
    pub writes: usize,
    pub acked: usize,
    pub reads: usize,
    /// CRDT updates (increments, set adds and removes), and how many were
    /// acknowledged.
    pub updates: usize,
    pub updates_acked: usize,
    pub faults: FaultCounts,
    /// Simulated milliseconds from heal until all replicas agreed.
    pub converged_after_ms: Option<Millis>,
    pub verdict: Verdict,
    /// Hash of every event in order: equal for equal seeds, step for step.
    pub trace: u64,
    /// Context bound of the run (small in runs that prune hard).
    pub max_clock_entries: usize,
    /// What clients did and saw, for a replay to show.
    pub history: History,
}

impl SimReport {
    pub fn had_join(&self) -> bool {
        self.change.as_ref().is_some_and(MembershipChange::is_join)
    }

    pub fn had_leave(&self) -> bool {
        self.change.as_ref().is_some_and(MembershipChange::is_leave)
    }
}

struct SimNode {
    /// `None` while crashed (its state then waits in `crashed`) and for good
    /// once it has left the cluster.
    node: Option<Node<SimDisk>>,
    crashed: Option<Crashed>,
    /// This node's clock offset.
    skew: Millis,
    /// The seed addresses it was started with (a joiner's), kept across
    /// restarts like the server's config.
    seeds: Vec<String>,
    /// Paused until then: no ticks, no input; messages to it are held.
    paused_until: Option<Millis>,
    /// Dead for good (a removal's victim): never restarted by itself.
    dead_for_good: bool,
}

impl SimNode {
    fn up(node: Node<SimDisk>, skew: Millis, seeds: Vec<String>) -> Self {
        SimNode {
            node: Some(node),
            crashed: None,
            skew,
            seeds,
            paused_until: None,
            dead_for_good: false,
        }
    }
}

/// What survives a crash until the restart.
struct Crashed {
    store: SimDisk,
    /// The member list, which the server keeps in `members.json` (fsynced
    /// on every change, so a power loss keeps it too), and the bucket
    /// table it keeps there.
    members: Vec<MemberState>,
    buckets: BucketTable,
    restart_at: Millis,
}

/// What goes on in a step besides the nodes' own work.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// Faults are injected and clients start new operations.
    Faulty,
    /// Clients start new operations over a healthy network, more slowly
    /// (operations finish sooner there, and a ring change only needs some
    /// traffic to meet).
    Clients,
    /// Only operations already in flight go on.
    Quiet,
}

impl Activity {
    /// Chance per millisecond that an idle client starts an operation.
    fn client_rate(self) -> f64 {
        match self {
            Activity::Faulty => 0.05,
            Activity::Clients => 0.01,
            Activity::Quiet => 0.0,
        }
    }
}

/// A request in flight and who waits for it.
struct Request {
    via: NodeId,
    waiter: Waiter,
}

enum Waiter {
    /// A workload client at this step of its operation.
    Client {
        client: usize,
        step: Step,
    },
    /// The checker's final read of a key, or its resolving write.
    FinalRead {
        key: String,
    },
    Resolve {
        key: String,
    },
}

struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    now: Millis,
    settings: Settings,
    nodes: BTreeMap<NodeId, SimNode>,
    /// The scheduled membership change until it starts.
    pending_change: Option<MembershipChange>,
    net: Network,
    faults: Faults,
    clients: Vec<Client>,
    busy: Vec<bool>,
    requests: BTreeMap<ClientId, Request>,
    next_request: ClientId,
    keys: Vec<String>,
    /// The Redis-keyspace keys of the CRDT updates, checked like `keys`.
    crdt_keys: CrdtKeys,
    history: History,
    final_reads: BTreeMap<String, Option<SiblingSet>>,
    /// Whether each key's resolving write was acknowledged.
    resolved: BTreeMap<String, bool>,
    counts: FaultCounts,
    partition_until: Option<Millis>,
    /// The node whose disk is broken, until when.
    disk_fault: Option<(NodeId, Millis)>,
    /// Acknowledgements that left while what they acknowledged was not yet
    /// synced (see [`early_acknowledgement`]).
    broken_promises: Vec<String>,
    trace: Xxh3,
    /// Draws for forged introductions, apart from `rng` so that adding
    /// them left every other draw of a seed as it was.
    forger: ChaCha8Rng,
    /// Forged entries some node took (see `identity`).
    forgeries_taken: Vec<String>,
    /// Removals and replacements (see `removal`).
    removal: removal::RemovalState,
}

pub fn run(cfg: SimConfig) -> SimReport {
    let mut sim = Sim::new(cfg);
    sim.run_phase(sim.cfg.fault_ms, Activity::Faulty);
    sim.heal();
    let healed_at = sim.now;
    sim.finish_change();
    sim.run_until(10_000, TICK_MS, Activity::Quiet, |s| s.requests.is_empty());
    let converged = sim.run_until(
        sim.cfg.settle_ms,
        CONVERGENCE_CHECK_MS,
        Activity::Quiet,
        Sim::converged,
    );
    let converged_after_ms = converged.then(|| sim.now - healed_at);
    let uncollected = match converged {
        true => sim.uncollected(),
        false => Vec::new(),
    };
    // Collection stops, what is under way ends, and the replicas agree
    // again before the final state is read (seed 6470 read it while a
    // round begun before the stop was still deleting).
    sim.stop_gc();
    sim.run_until(
        sim.cfg.settle_ms,
        CONVERGENCE_CHECK_MS,
        Activity::Quiet,
        |s| s.converged() && s.live().all(|n| !n.gc_report().round_in_flight),
    );
    sim.run_for_quiet(CONVERGENCE_CHECK_MS);
    sim.run_until(
        sim.cfg.settle_ms,
        CONVERGENCE_CHECK_MS,
        Activity::Quiet,
        Sim::converged,
    );
    // Once every node holds its share of the ring and dropped the rest, no
    // key may be held outside the first N of its list (N its bucket's).
    let settled = sim.run_until(
        sim.cfg.settle_ms,
        CONVERGENCE_CHECK_MS,
        Activity::Quiet,
        |s| s.live().all(Node::ring_is_settled),
    );
    let strays = match settled {
        true => sim.stray_copies(),
        false => Vec::new(),
    };
    let state = sim.final_state();
    let mut verdict = sim.verdict(&state);
    verdict.violations.extend(strays);
    verdict.violations.extend(uncollected);
    verdict.violations.extend(sim.resolve_siblings(&state));
    SimReport {
        seed: sim.cfg.seed,
        nodes: sim.cfg.nodes,
        vnodes: sim.cfg.vnodes,
        change: sim.cfg.change.clone(),
        small: sim.cfg.small,
        batch_bytes: sim.settings.max_batch_bytes(),
        writes: sim.history.writes.len(),
        acked: sim
            .history
            .writes
            .iter()
            .filter(|w| matches!(w.outcome, WriteOutcome::Acked { .. }))
            .count(),
        reads: sim.history.reads.len(),
        updates: sim.history.updates.len(),
        updates_acked: sim
            .history
            .updates
            .iter()
            .filter(|u| u.outcome.is_acked())
            .count(),
        faults: FaultCounts {
            net: sim.net.stats,
            ..sim.counts
        },
        converged_after_ms,
        verdict,
        trace: sim.trace.digest(),
        max_clock_entries: sim.settings.max_clock_entries,
        history: sim.history,
    }
}

impl Sim {
    fn new(cfg: SimConfig) -> Sim {
        let cfg_seed = cfg.seed;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut settings = Settings {
            request_timeout_ms: 500,
            ..Settings::default()
        };
        settings.anti_entropy.interval_ms = 20;
        // Tombstones are collected within the run, for the no-resurrection
        // and convergence rules to attack — where contexts are exact: the
        // checker knows what a tombstone superseded from its context, which
        // a pruned one no longer says.
        let exact = cfg.max_clock_entries >= Settings::default().max_clock_entries;
        settings.gc.grace_ms = if exact { 400 } else { 0 };
        settings.gc.interval_ms = 100;
        settings.gc.fence_ms = 60_000;
        settings.vnodes = cfg.vnodes;
        settings.max_clock_entries = cfg.max_clock_entries;
        settings.young_clock_ms = cfg.young_clock_ms;
        if let Some(small) = &cfg.small {
            small.apply(&mut settings);
        }
        let pad_to = cfg.small.as_ref().map(SmallLimits::pad_to);
        let max_frame_bytes = settings.max_frame_bytes();
        let ids: Vec<NodeId> = (1..=cfg.nodes)
            .map(|i| NodeId::new(format!("n{i}")))
            .collect();
        let ring = Ring::with_members(ids.iter().cloned().map(RingMember::new), settings.vnodes);
        let nodes = ids
            .iter()
            .map(|id| {
                let skew = rng.random_range(0..=cfg.max_clock_skew_ms);
                let mut node =
                    Node::new(id.clone(), settings.clone(), ring.clone(), SimDisk::new())
                        .expect("a memory store always has a lease");
                // Every node starts knowing the buckets, as after a
                // definition gossip spread (see `workload::BUCKETS`).
                for (name, props) in workload::buckets(settings.n) {
                    node.define_bucket(0, name.as_str(), props)
                        .expect("a valid bucket");
                }
                (id.clone(), SimNode::up(node, skew, Vec::new()))
            })
            .collect::<BTreeMap<NodeId, SimNode>>();
        let history = History {
            clock_skews: nodes
                .iter()
                .map(|(id, n)| (id.to_string(), n.skew))
                .collect(),
            max_clock_skew: cfg.max_clock_skew_ms,
            ..History::default()
        };
        Sim {
            keys: (0..cfg.keys).map(workload::cart_key).collect(),
            crdt_keys: CrdtKeys::default(),
            clients: (0..cfg.clients).map(|c| Client::new(c, pad_to)).collect(),
            busy: vec![false; cfg.clients],
            faults: cfg.faults,
            pending_change: cfg.change.clone(),
            cfg,
            rng,
            now: 0,
            settings,
            nodes,
            net: Network::new(max_frame_bytes),
            requests: BTreeMap::new(),
            next_request: 1,
            history,
            final_reads: BTreeMap::new(),
            resolved: BTreeMap::new(),
            counts: FaultCounts::default(),
            partition_until: None,
            disk_fault: None,
            broken_promises: Vec::new(),
            removal: removal::RemovalState::default(),
            trace: Xxh3::new(),
            forger: ChaCha8Rng::seed_from_u64(cfg_seed ^ 0x00F0_F6E5),
            forgeries_taken: Vec::new(),
        }
    }

    /// Advance `ms` milliseconds.
    fn run_phase(&mut self, ms: Millis, activity: Activity) {
        for _ in 0..ms {
            self.step(activity);
        }
    }

    /// Advance until `done` holds (checked every `every` ms) or `limit` ms
    /// pass.
    fn run_until(
        &mut self,
        limit: Millis,
        every: Millis,
        activity: Activity,
        done: impl Fn(&Sim) -> bool,
    ) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if self.now.is_multiple_of(every) && done(self) {
                return true;
            }
            self.step(activity);
        }
        done(self)
    }

    /// Run `ms` quiet: messages already sent (a round's deletes) land.
    fn run_for_quiet(&mut self, ms: Millis) {
        for _ in 0..ms {
            self.step(Activity::Quiet);
        }
    }

    /// With clients at work, let a join or leave still under way finish
    /// (if it can: whether it did is checked at the end), then the old
    /// owners drop what they handed over.
    fn finish_change(&mut self) {
        if self.cfg.change.is_none() {
            return;
        }
        self.run_until(
            CHANGE_LIMIT_MS,
            CONVERGENCE_CHECK_MS,
            Activity::Clients,
            |s| s.unfinished_change().is_none(),
        );
        self.revive_removed();
        self.run_phase(WORK_AFTER_CHANGE_MS, Activity::Clients);
    }

    fn step(&mut self, activity: Activity) {
        self.now += 1;
        if activity == Activity::Faulty {
            self.inject_faults();
        }
        if activity != Activity::Quiet {
            self.start_client_work(activity.client_rate());
        }
        self.start_membership_change();
        self.restart_due_nodes();
        self.deliver_due_messages();
        if self.now.is_multiple_of(FSYNC_MS) {
            for sim_node in self.nodes.values_mut() {
                if let Some(node) = &mut sim_node.node {
                    node.store_mut().fsync();
                }
            }
        }
        if self.now.is_multiple_of(TICK_MS) {
            for id in self.running_ids() {
                let now = self.clock(&id);
                self.node_mut(&id).on_tick(now);
                self.collect(&id);
            }
            self.stop_departed_nodes();
            self.push_removal();
            self.stop_refused_nodes();
        }
    }

    fn deliver_due_messages(&mut self) {
        for (from, to) in self.net.stalls_ended(self.now) {
            if self.is_running(&from) {
                let now = self.clock(&from);
                self.node_mut(&from).on_unreachable(now, to);
                self.collect(&from);
            }
        }
        while let Some((from, to, msg)) = self.net.due(self.now) {
            if let Some(until) = self.nodes.get(&to).and_then(|n| n.paused_until) {
                self.net.hold(until, (from, to, msg));
                continue;
            }
            self.record(&(self.now, &from, &to, &msg));
            if self.node_up(&to).is_none() {
                // A crashed or departed peer refuses connections: the sender
                // hears so.
                if self.node_up(&from).is_some() {
                    let now = self.clock(&from);
                    self.node_mut(&from).on_unreachable(now, to);
                    self.collect(&from);
                }
                continue;
            }
            let now = self.clock(&to);
            self.node_mut(&to).on_message(now, from, msg);
            self.collect(&to);
        }
    }

    fn inject_faults(&mut self) {
        if self.partition_until.is_some_and(|t| t <= self.now) {
            let now = self.now;
            self.net
                .heal_partition(&mut self.rng, now, STALL_CHANCE, MAX_STALL_MS);
            self.partition_until = None;
        }
        self.pause_or_resume();
        self.forge_introduction();
        if self.partition_until.is_none() && self.rng.random_bool(self.cfg.partition_rate) {
            self.partition();
        }
        self.repair_disk(false);
        let crashed = self.nodes.values().any(|n| n.crashed.is_some());
        let broken = self.disk_fault.is_some();
        if !crashed && !broken && self.rng.random_bool(self.cfg.crash_rate) {
            let ids = self.members_up();
            let victim = ids[self.rng.random_range(0..ids.len())].clone();
            let power_loss = self.rng.random_bool(0.5);
            self.crash(&victim, power_loss);
        }
        if !crashed && !broken && self.rng.random_bool(self.cfg.disk_fault_rate) {
            self.break_disk();
        }
    }

    /// Start the scheduled join or leave once it is due (a leave waits for
    /// its node to be up).
    fn start_membership_change(&mut self) {
        let Some(change) = self.pending_change.take_if(|c| c.at() <= self.now) else {
            return;
        };
        match &change {
            MembershipChange::Join { node, seed, .. } => self.join(node, seed, None),
            MembershipChange::Leave { node, .. } if self.node_up(node).is_some() => {
                let now = self.clock(node);
                self.node_mut(node).leave(now);
                self.collect(node);
            }
            MembershipChange::Leave { .. } => {
                self.pending_change = Some(change);
                return;
            }
            MembershipChange::Remove { node, .. } => self.kill_for_good(node),
            MembershipChange::Replace {
                dead, node, seed, ..
            } => {
                self.kill_for_good(dead);
                self.join(node, seed, Some(dead));
            }
        }
        self.record(&(self.now, &change));
    }

    /// Start a new node that knows only `seed` (replacing `replaces`).
    fn join(&mut self, id: &NodeId, seed: &NodeId, replaces: Option<&NodeId>) {
        let skew = self.rng.random_range(0..=self.cfg.max_clock_skew_ms);
        self.history.clock_skews.insert(id.to_string(), skew);
        let node = membership::joiner(id, seed, replaces, &self.settings, self.rng.random());
        let seeds = node.membership().seeds().to_vec();
        self.nodes
            .insert(id.clone(), SimNode::up(node, skew, seeds));
    }

    /// Stop for good the nodes that left the cluster, once they may (as the
    /// server does: see `Node::may_stop`).
    fn stop_departed_nodes(&mut self) {
        let mut stopped = Vec::new();
        for (id, sim_node) in &mut self.nodes {
            let now = self.now + sim_node.skew;
            if sim_node.node.as_ref().is_some_and(|n| n.may_stop(now)) {
                sim_node.node = None;
                stopped.push(id.clone());
            }
        }
        for id in stopped {
            self.abandon_requests_via(&id, "coordinator left the cluster");
        }
    }

    /// Resume a node whose pause is over; pause one (at most one at a
    /// time, never a crashed one) with chance `pause_rate`.
    fn pause_or_resume(&mut self) {
        let now = self.now;
        for n in self.nodes.values_mut() {
            if n.paused_until.is_some_and(|t| t <= now) {
                n.paused_until = None;
            }
        }
        let paused = self.nodes.values().any(|n| n.paused_until.is_some());
        if paused || !self.rng.random_bool(self.cfg.pause_rate) {
            return;
        }
        let ids = self.running_ids();
        if ids.is_empty() {
            return;
        }
        let victim = ids[self.rng.random_range(0..ids.len())].clone();
        let until = self.now + self.rng.random_range(200..=3_000);
        self.counts.pauses += 1;
        self.nodes.get_mut(&victim).expect("node").paused_until = Some(until);
    }

    /// Split the nodes in two; sometimes only one direction is cut.
    fn partition(&mut self) {
        self.counts.partitions += 1;
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        let side: Vec<bool> = ids.iter().map(|_| self.rng.random_bool(0.5)).collect();
        let one_way = self.rng.random_bool(0.3);
        for (a, sa) in ids.iter().zip(&side) {
            for (b, sb) in ids.iter().zip(&side) {
                if sa != sb && (!one_way || *sa) {
                    self.net.block(a, b);
                }
            }
        }
        self.partition_until = Some(self.now + self.rng.random_range(500..=5_000));
    }

    /// Lose the node's volatile state. After a process crash its store
    /// keeps what it synced; after a power loss, what it fsynced and a
    /// prefix of the rest (see [`SimDisk::after_crash`]). Clients waiting
    /// on it never hear back: their writes stay indeterminate.
    fn crash(&mut self, id: &NodeId, power_loss: bool) {
        self.counts.crashes += 1;
        self.counts.power_losses += u64::from(power_loss);
        if power_loss {
            self.history.disk_losses.push(self.now);
        }
        let restart_at = self.now + self.rng.random_range(500..=4_000);
        let sim_node = self.nodes.get_mut(id).expect("node");
        if let Some(node) = sim_node.node.take() {
            let members = node.membership().members().cloned().collect();
            let buckets = node.membership().buckets().clone();
            let store = node.into_store().after_crash(power_loss, &mut self.rng);
            sim_node.crashed = Some(Crashed {
                store,
                members,
                buckets,
                restart_at,
            });
        }
        self.abandon_requests_via(id, "coordinator crashed");
    }

    /// Break a node's disk for a while: its syncs fail, or it is full. The
    /// node turns read-only; once the fault ends, it is restarted (a process
    /// crash), as an operator would once the disk is fixed.
    fn break_disk(&mut self) {
        let ids = self.members_up();
        let victim = ids[self.rng.random_range(0..ids.len())].clone();
        let fault = if self.rng.random_bool(0.5) {
            DiskFault::FailingSync
        } else {
            DiskFault::Full
        };
        self.counts.disk_faults += 1;
        self.node_mut(&victim).store_mut().set_fault(Some(fault));
        let until = self.now + self.rng.random_range(200..=3_000);
        self.disk_fault = Some((victim, until));
    }

    /// End a disk fault that is due (or every one, when `all`): the disk
    /// works again, and the node restarts to leave its read-only state.
    fn repair_disk(&mut self, all: bool) {
        let Some((id, until)) = self.disk_fault.clone() else {
            return;
        };
        if !all && until > self.now {
            return;
        }
        self.disk_fault = None;
        if let Some(node) = self.nodes.get_mut(&id).and_then(|n| n.node.as_mut()) {
            node.store_mut().set_fault(None);
            self.crash(&id, false);
        }
    }

    /// Clients waiting on a node that went away never hear back: their
    /// writes stay indeterminate.
    fn abandon_requests_via(&mut self, id: &NodeId, why: &str) {
        let lost: Vec<ClientId> = self
            .requests
            .iter()
            .filter(|(_, r)| &r.via == id)
            .map(|(c, _)| *c)
            .collect();
        for c in lost {
            if let Some(Waiter::Client { client, step }) =
                self.requests.remove(&c).map(|r| r.waiter)
            {
                match step {
                    Step::Write(index) => {
                        self.history.writes[index].outcome = WriteOutcome::Indeterminate(why.into())
                    }
                    Step::Update(index) => {
                        self.history.updates[index].outcome =
                            UpdateOutcome::Indeterminate(why.into())
                    }
                    Step::Read { .. } | Step::SetRead { .. } | Step::SessionWrite => {}
                }
                self.busy[client] = false;
            }
        }
    }

    fn restart_due_nodes(&mut self) {
        let due: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.crashed.as_ref().is_some_and(|c| c.restart_at <= self.now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.restart(&id);
        }
    }

    /// Restart a crashed node from its store and remembered member list.
    fn restart(&mut self, id: &NodeId) {
        let sim_node = self.nodes.get_mut(id).expect("node");
        if sim_node.dead_for_good {
            return;
        }
        let Some(crashed) = sim_node.crashed.take() else {
            return;
        };
        let seeds = sim_node.seeds.clone();
        let rng_seed = self.rng.random();
        let node = membership::restored(
            id,
            (crashed.members, crashed.buckets),
            seeds,
            &self.settings,
            crashed.store,
            rng_seed,
        );
        self.nodes.get_mut(id).expect("node").node = Some(node);
    }

    /// End every fault: links heal, crashed nodes restart, messages flow.
    fn heal(&mut self) {
        let now = self.now;
        for (id, n) in &mut self.nodes {
            if n.paused_until.take().is_some() {
                self.net.release_held(id, now);
            }
        }
        self.repair_disk(true);
        self.net.heal();
        self.partition_until = None;
        self.faults = Faults::NONE;
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for id in &ids {
            self.restart(id);
        }
    }

    /// Each idle client starts an operation with chance `rate`.
    fn start_client_work(&mut self, rate: f64) {
        // Every node crashed or paused at once (seed 9328): no operation
        // starts until one runs again; there is nothing to send it to.
        if self.running_ids().is_empty() {
            return;
        }
        for c in 0..self.clients.len() {
            if self.busy[c] || !self.rng.random_bool(rate) {
                continue;
            }
            let (op, step) = self.clients[c].start(
                &mut self.rng,
                self.now,
                &self.keys,
                &self.crdt_keys,
                &mut self.history,
            );
            self.busy[c] = true;
            self.submit(op, Waiter::Client { client: c, step });
        }
    }

    /// Send a request through a random live node.
    fn submit(&mut self, op: ClientOp, waiter: Waiter) {
        // Clients of a paused node would wait for it; the ones here use
        // the others, as the availability goal is about them.
        let live = self.running_ids();
        assert!(
            !live.is_empty(),
            "a request with no node running to take it"
        );
        let via = live[self.rng.random_range(0..live.len())].clone();
        let id = self.next_request;
        self.next_request += 1;
        self.record(&(self.now, id, &op));
        self.requests.insert(
            id,
            Request {
                via: via.clone(),
                waiter,
            },
        );
        let now = self.clock(&via);
        self.node_mut(&via).on_client(now, id, op);
        self.collect(&via);
    }

    /// Carry out what node `id` produced: its effects at once, then — as
    /// the server's group commit does — a sync of its store, and what the
    /// node releases after it (acknowledgements, or their failures).
    fn collect(&mut self, id: &NodeId) {
        let now = self.clock(id);
        let node = self.node_mut(id);
        let Ready { effects, persisted } = node.ready();
        let early = early_acknowledgement(id, &effects, node.store());
        let released = if persisted.is_empty() {
            Vec::new()
        } else {
            let synced = node.store_mut().sync();
            node.after_sync(now, persisted, synced)
        };
        let late = early_acknowledgement(id, &released, node.store());
        self.broken_promises.extend(early.into_iter().chain(late));
        let mut refused = Vec::new();
        for effect in effects.into_iter().chain(released) {
            match effect {
                Effect::Send { to, msg } => {
                    if let Message::GcDelete { keys } = &msg {
                        for (key, context) in keys {
                            let key = String::from_utf8_lossy(key).into_owned();
                            let entry = (key, context.clone(), self.now);
                            self.history.collected.push(entry);
                        }
                    }
                    let faults = self.faults;
                    let to = membership::route(to);
                    let envelope = (id.clone(), to, msg);
                    refused.extend(self.net.send(&mut self.rng, self.now, &faults, envelope));
                }
                // Node ids are the addresses in the simulated network.
                Effect::Connect { .. } => {}
                Effect::Reply { client: id, result } => {
                    self.record(&(self.now, id, &result));
                    match self.requests.remove(&id).map(|r| r.waiter) {
                        Some(Waiter::Client { client, step }) => {
                            self.busy[client] = false;
                            let next = self.clients[client].on_reply(
                                &mut self.rng,
                                self.now,
                                step,
                                result,
                                &mut self.history,
                            );
                            if let Some((op, step)) = next {
                                self.busy[client] = true;
                                self.submit(op, Waiter::Client { client, step });
                            }
                        }
                        Some(Waiter::Resolve { key }) => {
                            self.resolved.insert(key, result.is_ok());
                        }
                        Some(Waiter::FinalRead { key }) => {
                            let set = match result {
                                Ok(ClientReply::Value(set)) => Some(set),
                                _ => None,
                            };
                            self.final_reads.insert(key, set);
                        }
                        None => {}
                    }
                }
            }
        }
        // The transport tells the sender at once; so does this network.
        for too_large in refused {
            let now = self.clock(id);
            let TooLarge { to, msg, bytes } = too_large;
            self.node_mut(id).on_too_large(now, to, msg, bytes);
            self.collect(id);
        }
    }

    fn stop_gc(&mut self) {
        for sim_node in self.nodes.values_mut() {
            if let Some(node) = sim_node.node.as_mut() {
                node.stop_gc();
            }
        }
    }

    /// The membership change is done, every node up serves the same ring,
    /// no node keeps hints any more (they hold versions the replicas may
    /// lack), and every key's preference-list replicas in it hold the same
    /// sibling set.
    fn converged(&self) -> bool {
        let Some(ring) = self.serving_ring() else {
            return false;
        };
        self.unfinished_change().is_none()
            && self.live().all(|n| n.pending_hints().is_empty())
            && self
                .live()
                .all(|n| n.ring().fingerprint() == ring.fingerprint())
            && self.all_keys().all(|key| {
                let sets: Vec<_> = self.replica_states(ring, key).into_values().collect();
                sets.windows(2).all(|w| w[0] == w[1])
            })
    }

    /// What is not done of the scheduled membership change, if anything.
    fn unfinished_change(&self) -> Option<String> {
        let change = self.cfg.change.as_ref()?;
        if self.pending_change.is_some() {
            return Some(format!("membership: {change} never started"));
        }
        let lagging = membership::lagging_views(change, self.live());
        (!lagging.is_empty()).then(|| {
            format!(
                "membership: {change} did not finish: {}",
                lagging.join(", ")
            )
        })
    }

    /// The ring requests are served by: the first node up's.
    fn serving_ring(&self) -> Option<&Ring> {
        self.live().next().map(Node::ring)
    }

    fn replica_states(&self, ring: &Ring, key: &str) -> BTreeMap<String, SiblingSet> {
        let n = keyspace::n_of(key.as_bytes(), self.settings.n);
        ring.preference_list(key.as_bytes(), n)
            .into_iter()
            .filter_map(|id| {
                let node = self.nodes[&id].node.as_ref()?;
                let set = node
                    .store()
                    .get(key.as_bytes())
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                Some((id.to_string(), set))
            })
            .collect()
    }

    /// The checker's findings, and a join or leave that did not finish.
    fn verdict(&self, state: &FinalState) -> Verdict {
        // Reads are guaranteed to see earlier acknowledged writes only while
        // acknowledgements are durable: a power loss takes a node's last
        // un-fsynced writes (fsync = "interval"), leaving fewer than W copies
        // until anti-entropy restores them. The other rules hold regardless.
        let promises = Promises {
            intersecting_quorums: self.counts.power_losses == 0,
            exact_contexts: !self.pruning(),
            cluster_n: self.settings.n,
        };
        let mut verdict = check_with(&self.history, state, promises);
        verdict
            .violations
            .extend(self.broken_promises.iter().cloned());
        verdict.violations.extend(self.unfinished_change());
        verdict.violations.extend(self.removal_violations());
        verdict
            .violations
            .extend(self.forgeries_taken.iter().take(3).cloned());
        verdict.violations.extend(self.forged_entries_taken());
        // The byte budgets keep every message within a frame.
        let too_large = self.net.stats.too_large;
        if too_large > 0 {
            verdict.violations.push(format!(
                "{too_large} messages encoded larger than max_frame_bytes ({})",
                self.settings.max_frame_bytes()
            ));
        }
        verdict
    }

    /// Whether this run prunes contexts hard (see
    /// [`SimConfig::clock_pruning`]); runs with the defaults never reach the
    /// bound.
    fn pruning(&self) -> bool {
        self.settings.max_clock_entries < Settings::default().max_clock_entries
    }

    /// Read every key with R = N through the protocol, and every replica
    /// of the final ring.
    /// Every replica's state of every key, read at one instant, then a
    /// quorum read of each (which runs the cluster on).
    fn final_state(&mut self) -> FinalState {
        let mut state = FinalState::default();
        let ring = self.serving_ring().cloned().unwrap_or_default();
        let keys: Vec<String> = self.all_keys().cloned().collect();
        for key in &keys {
            state
                .replicas
                .insert(key.clone(), self.replica_states(&ring, key));
        }
        for key in keys {
            if let Some(set) = self.quorum_read(&key) {
                state.reads.insert(key, set);
            }
        }
        state
    }

    /// Every key the workload uses: the plain ones, then the CRDT ones.
    /// Copies of keys on live nodes outside the first N of the key's
    /// preference list: handoff, anti-entropy or drops that do not honour
    /// a bucket's N (or lost a key's copies' way home). One line per key.
    fn stray_copies(&self) -> Vec<String> {
        let Some(ring) = self.serving_ring() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for key in self.all_keys() {
            let n = keyspace::n_of(key.as_bytes(), self.settings.n);
            let replicas = ring.preference_list(key.as_bytes(), n);
            let holders: Vec<String> = self
                .live()
                .filter(|node| !replicas.contains(node.id()))
                .filter(|node| {
                    let stored = node.store().get(key.as_bytes()).ok().flatten();
                    stored.is_some_and(|set| !set.is_empty())
                })
                .map(|node| node.id().to_string())
                .collect();
            if !holders.is_empty() {
                found.push(format!(
                    "key {key:?} (N = {n}) is held by {holders:?} outside its replicas {replicas:?}"
                ));
            }
        }
        found
    }

    fn all_keys(&self) -> impl Iterator<Item = &String> {
        self.keys.iter().chain(self.crdt_keys.all())
    }

    /// Siblings must never outlive a write that resolves them: write every
    /// key that has several back with its final read's context (a full,
    /// R = N read), let the cluster settle, and read it again — one version
    /// must be left. Pruned contexts that dropped what they resolved would
    /// leave the old siblings beside the new one. Not the Redis keys: their
    /// siblings are CRDT states every read joins, and a plain write would
    /// replace the value rather than resolve them.
    fn resolve_siblings(&mut self, state: &FinalState) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, set) in &state.reads {
            let lww = keyspace::policy_of(key.as_bytes()).overwrites();
            if set.len() < 2 || lww {
                continue;
            }
            let op = ClientOp::Put {
                key: key.as_bytes().to_vec(),
                value: b"resolved".to_vec(),
                context: set.context(),
                w: None,
                pw: None,
                ttl_ms: None,
            };
            self.submit(op, Waiter::Resolve { key: key.clone() });
            self.run_until(10_000, TICK_MS, Activity::Quiet, |s| {
                s.resolved.contains_key(key)
            });
            if self.resolved.get(key) != Some(&true) {
                problems.push(format!("resolve: the resolving write of key {key} failed"));
                continue;
            }
            self.run_until(
                self.cfg.settle_ms,
                CONVERGENCE_CHECK_MS,
                Activity::Quiet,
                Sim::converged,
            );
            match self.quorum_read(key) {
                Some(after) if after.len() == 1 => {}
                after => problems.push(format!(
                    "siblings never resolve: key {key} held {set:?}, and after a write with \
                     their context still holds {after:?}",
                )),
            }
        }
        problems
    }

    /// Read `key` with R = N through a random node, retrying a few times.
    fn quorum_read(&mut self, key: &str) -> Option<SiblingSet> {
        for _ in 0..5 {
            let op = ClientOp::Get {
                key: key.as_bytes().to_vec(),
                r: Some(keyspace::n_of(key.as_bytes(), self.settings.n)),
                pr: None,
            };
            self.submit(
                op,
                Waiter::FinalRead {
                    key: key.to_string(),
                },
            );
            self.run_until(10_000, TICK_MS, Activity::Quiet, |s| {
                s.final_reads.contains_key(key)
            });
            if let Some(Some(set)) = self.final_reads.remove(key) {
                return Some(set);
            }
        }
        None
    }

    /// The nodes that are up and have not left, in id order.
    fn members_up(&self) -> Vec<NodeId> {
        self.live()
            .filter(|n| !n.has_left())
            .map(|n| n.id().clone())
            .collect()
    }

    /// The nodes that are up and not paused, in id order.
    fn running_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.node.is_some() && n.paused_until.is_none())
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn is_running(&self, id: &NodeId) -> bool {
        self.nodes
            .get(id)
            .is_some_and(|n| n.node.is_some() && n.paused_until.is_none())
    }

    /// Every node that is up, in id order.
    fn live(&self) -> impl Iterator<Item = &Node<SimDisk>> {
        self.nodes.values().filter_map(|n| n.node.as_ref())
    }

    fn node_up(&self, id: &NodeId) -> Option<&Node<SimDisk>> {
        self.nodes.get(id).and_then(|n| n.node.as_ref())
    }

    fn node_mut(&mut self, id: &NodeId) -> &mut Node<SimDisk> {
        self.nodes
            .get_mut(id)
            .and_then(|n| n.node.as_mut())
            .expect("a live node")
    }

    /// The node's own (skewed) clock.
    fn clock(&self, id: &NodeId) -> Millis {
        self.now + self.nodes[id].skew
    }

    fn record(&mut self, event: &impl std::fmt::Debug) {
        self.trace.update(format!("{event:?}").as_bytes());
    }
}

/// A replica's acknowledgement — of a write, a hint, or a hint delivery —
/// promises the data is in its store: it may leave only when the node's
/// disk holds nothing unsynced. One among `effects` that leaves earlier is
/// described; a crash right then would lose what it acknowledged.
fn early_acknowledgement(id: &NodeId, effects: &[Effect], disk: &SimDisk) -> Option<String> {
    let unsynced = disk.unsynced();
    effects.iter().find_map(|effect| match effect {
        Effect::Send {
            to,
            msg:
                msg @ (Message::ReplicateAck { result: Ok(()), .. }
                | Message::HintDeliveryAck { result: Ok(()), .. }),
        } if unsynced > 0 => Some(format!(
            "broken promise: {id} sent {to} {msg:?} with {unsynced} writes not yet synced"
        )),
        _ => None,
    })
}
