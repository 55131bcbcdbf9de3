//! The consistency checker: what ringkv promises, checked against a history
//! and the state the cluster settled in.
//!
//! "Supersedes" is causal and transitive: a write supersedes the versions
//! its client's context covers and, through them, everything those were
//! written against. Stored contexts may be pruned (they forget history), so
//! the checker reconstructs this from what clients sent ([`Ancestry`]).
//!
//! 1. **No lost acknowledged write.** (For a key of N copies, while fewer
//!    than N disks lost writes since: see [`keeps`].) Every
//!    acknowledged PUT is in the final
//!    quorum read (as the value or a sibling, identified by its dot) unless
//!    some write — acknowledged or not, since a failed write may still have
//!    been applied — superseded it. This also checks that concurrent writes
//!    are never silently dropped: a concurrent write does not supersede the
//!    other.
//! 2. **No resurrection.** No version in the final state is covered by the
//!    context of an acknowledged write (or delete): once a write that saw it
//!    was acknowledged, it must stay gone. Only where contexts are never
//!    pruned ([`Promises::exact_contexts`]): pruning forgets history, so a
//!    superseded version still on a lagging replica may come back as a
//!    sibling — which the next resolving write removes.
//! 3. **Convergence.** All replicas of a key hold identical sibling sets.
//!    And **unique dots**: two acknowledged writes of a key never share a
//!    dot. A reused dot makes a context that saw one version supersede the
//!    other, unseen — a lost update the rules above cannot see.
//! 4. **Reads see acknowledged writes.** With strict quorums and R + W > N,
//!    a read invoked after a write was acknowledged returns that version or
//!    one that supersedes it (the read and write quorums intersect).
//!    Checked only when the caller says its quorums intersect.
//! 5. **A write supersedes only what its client was shown.** Every context
//!    a client writes with covers only versions some answer showed *that*
//!    client — siblings its reads returned (with what they had seen), or
//!    its own acknowledged writes — so the contexts nodes hand out never
//!    cover a version their holder did not see. And every stored version's
//!    context is within the context its client sent: a node never makes a
//!    write supersede more than its writer asked.
//!
//! Rules 8 (every increment counts exactly once) and 9 (no lost add, no
//! phantom member) check the CRDT updates of Redis keys: see [`crdt`].
//!
//! 10. **An expired value stays hidden.** A version expires when its
//!     coordinator's clock reads its `expires_at`, i.e. at true time
//!     `expires_at - skew(coordinator)`. No read invoked at or after that
//!     time plus the largest clock skew may return it: each node hides it
//!     by its own clock, which is off by at most that much.

mod crdt;

use crate::history::{FinalState, History, Write, WriteOutcome};
use ringkv_core::siblings::{Sibling, SiblingSet};
use ringkv_core::version::{CausalContext, Dot};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What the checker found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub writes_checked: usize,
    /// (read, earlier acknowledged write) pairs checked by rule 4.
    pub reads_checked: usize,
    pub keys_checked: usize,
    /// Acknowledged CRDT updates checked by rules 8 and 9.
    pub updates_checked: usize,
    pub violations: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// What the run under check promises beyond the rules that always hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promises {
    /// Read and write quorums intersect (R + W > N, strict writes, no
    /// acknowledged write lost from a disk): rule 4 applies.
    pub intersecting_quorums: bool,
    /// Contexts are never pruned: rule 2 applies.
    pub exact_contexts: bool,
    /// The cluster's N, the N of keys outside named buckets (rule 1: see
    /// [`keeps`]).
    pub cluster_n: usize,
}

/// Whether rule 1 holds for `write`. A key of N copies keeps an
/// acknowledged write only while fewer than N disks lose it: a disk that
/// lost writes after the write was invoked ([`History::disk_losses`]: a
/// power loss, which takes un-fsynced writes, or a member's death) may
/// have held one of its copies. An N = 2 key whose second copy went with a
/// power loss 50 ms after the write and whose first went with its node's
/// death is lost, as the design says (seed 4169, with writes coordinated
/// where they landed); an N = 3 key survives that.
fn keeps(history: &History, promises: Promises, write: &Write) -> bool {
    let n = ringkv_core::keyspace::n_of(write.key.as_bytes(), promises.cluster_n);
    let lost = history
        .disk_losses
        .iter()
        .filter(|at| **at >= write.invoked_at);
    lost.count() < n
}

/// The rules that hold in every run (1, 3, 5, and 2: no pruning).
pub fn check(history: &History, state: &FinalState) -> Verdict {
    let promises = Promises {
        intersecting_quorums: false,
        exact_contexts: true,
        cluster_n: 3,
    };
    check_with(history, state, promises)
}

/// [`check`] plus rule 4, for runs whose read and write quorums intersect.
pub fn check_with_intersecting_quorums(history: &History, state: &FinalState) -> Verdict {
    let promises = Promises {
        intersecting_quorums: true,
        exact_contexts: true,
        cluster_n: 3,
    };
    check_with(history, state, promises)
}

pub fn check_with(history: &History, state: &FinalState, promises: Promises) -> Verdict {
    let mut verdict = Verdict {
        keys_checked: state.reads.len(),
        ..Verdict::default()
    };
    let ancestry = Ancestry::of(history, state);
    no_lost_writes(history, state, &ancestry, promises, &mut verdict);
    if promises.exact_contexts {
        no_resurrection(history, state, &mut verdict);
    }
    nothing_collected_comes_back(history, state, &mut verdict);
    convergence(state, &mut verdict);
    unique_dots(history, &mut verdict);
    contexts_cover_only_what_was_shown(history, &mut verdict);
    stored_contexts_within_what_was_sent(history, state, &mut verdict);
    if promises.intersecting_quorums {
        reads_see_acknowledged_writes(history, &ancestry, &mut verdict);
    }
    crdt::check(history, state, &mut verdict);
    expired_values_stay_hidden(history, &mut verdict);
    verdict
}

/// Rule 10 (see the module docs).
fn expired_values_stay_hidden(history: &History, verdict: &mut Verdict) {
    for read in &history.reads {
        let Ok(set) = &read.result else { continue };
        for sibling in set.live() {
            let Some(expires_at) = sibling.expires_at else {
                continue;
            };
            let skew = history.clock_skews.get(sibling.dot.node.as_str());
            let Some(skew) = skew else {
                verdict.violations.push(format!(
                    "a read of {} returned {:?}, written by a node of unknown clock",
                    read.key, sibling.dot
                ));
                continue;
            };
            let expired = expires_at.saturating_sub(*skew);
            if read.invoked_at >= expired + history.max_clock_skew {
                verdict.violations.push(format!(
                    "expired value shown: a read of {} invoked at {} ms returned {:?}, which \
                     expired at {expired} ms (+ {} ms of skew allowed)",
                    read.key, read.invoked_at, sibling.dot, history.max_clock_skew
                ));
            }
        }
    }
}

/// What each write superseded: its client's context and, transitively,
/// what the versions in that context superseded — per write, and per
/// version for the writes whose version is known (by its dot when
/// acknowledged, or seen in some answer).
pub struct Ancestry {
    /// Every write's key and all it superseded.
    writes: Vec<(String, CausalContext)>,
    by_version: BTreeMap<(String, Dot), CausalContext>,
    /// Collected tombstones: key, context, when (see `History::collected`).
    collected: Vec<(String, CausalContext, ringkv_core::Millis)>,
}

impl Ancestry {
    pub fn of(history: &History, state: &FinalState) -> Ancestry {
        let dots = known_dots(history, state);
        let unmatched = unmatched_tombstones(history, state, &dots);
        let mut order: Vec<usize> = (0..history.writes.len()).collect();
        // A write can only cover versions that existed when it was invoked.
        order.sort_by_key(|&i| history.writes[i].invoked_at);
        let mut ancestry = Ancestry {
            writes: Vec::new(),
            by_version: BTreeMap::new(),
            collected: history.collected.clone(),
        };
        for i in order {
            let write = &history.writes[i];
            let mut all = write.context.clone();
            for ((key, earlier), theirs) in &ancestry.by_version {
                if *key == write.key && write.context.covers(earlier) {
                    all.merge(theirs);
                }
            }
            let mine = dots.get(&i).into_iter().flatten();
            // A tombstone whose delete is not known by its dot (its answer
            // never came, or a retried forward applied it a second time)
            // cannot be told apart from another's: it counts for every
            // delete it may be of.
            let maybe_mine = unmatched.iter().filter(|(key, tombstone)| {
                *key == write.key
                    && write.value.is_none()
                    && write.context.descends(&tombstone.context)
            });
            let versions: Vec<Dot> = mine
                .cloned()
                .chain(maybe_mine.map(|(_, t)| t.dot.clone()))
                .collect();
            for dot in versions {
                let version = (write.key.clone(), dot);
                ancestry.by_version.entry(version).or_default().merge(&all);
            }
            ancestry.writes.push((write.key.clone(), all));
        }
        ancestry
    }

    /// True when the version `by` of `key` supersedes the version `dot`.
    pub fn supersedes(&self, key: &str, by: &Sibling, dot: &Dot) -> bool {
        by.context.covers(dot)
            || self
                .by_version
                .get(&(key.to_string(), by.dot.clone()))
                .is_some_and(|all| all.covers(dot))
    }

    /// True when some write of `key` superseded the version `dot`, or a
    /// collected tombstone did (a context-less delete's coverage is known
    /// only from its tombstone, which collection removes).
    fn superseded(&self, key: &str, dot: &Dot) -> bool {
        self.writes
            .iter()
            .any(|(k, all)| k == key && all.covers(dot))
            || self.buried(key, dot, ringkv_core::Millis::MAX)
    }

    /// True when a tombstone collected by `by` covered the version `dot`:
    /// it may be gone from every replica, and a read then shows nothing
    /// (or only later versions) in its place.
    fn buried(&self, key: &str, dot: &Dot, by: ringkv_core::Millis) -> bool {
        self.collected
            .iter()
            .any(|(k, context, at)| k == key && *at <= by && context.covers(dot))
    }
}

/// The dots of every write whose version is known: acknowledged ones, and
/// others found by their (unique) value among the versions answers showed.
/// A write can have several: a forward retried on another coordinator may
/// apply it twice, under two dots.
fn known_dots(history: &History, state: &FinalState) -> BTreeMap<usize, BTreeSet<Dot>> {
    let mut dots: BTreeMap<usize, BTreeSet<Dot>> = BTreeMap::new();
    for (i, write) in history.writes.iter().enumerate() {
        if let Some(dot) = write.dot() {
            dots.entry(i).or_default().insert(dot);
        }
    }
    for (key, set) in observed_sets(history, state) {
        for sibling in set.iter().filter(|s| s.value.is_some()) {
            if let Some(i) = history
                .writes
                .iter()
                .position(|w| w.key == key && w.value == sibling.value)
            {
                dots.entry(i).or_default().insert(sibling.dot.clone());
            }
        }
    }
    dots
}

/// Tombstones answers showed that no acknowledged delete is known by, with
/// their keys.
fn unmatched_tombstones<'a>(
    history: &'a History,
    state: &'a FinalState,
    dots: &BTreeMap<usize, BTreeSet<Dot>>,
) -> Vec<(&'a str, &'a Sibling)> {
    let known: BTreeSet<(&str, &Dot)> = dots
        .iter()
        .flat_map(|(i, dots)| dots.iter().map(|d| (history.writes[*i].key.as_str(), d)))
        .collect();
    let mut seen = BTreeSet::new();
    observed_sets(history, state)
        .flat_map(|(key, set)| set.iter().map(move |s| (key, s)))
        .filter(|(key, s)| {
            s.is_tombstone() && !known.contains(&(*key, &s.dot)) && seen.insert((*key, &s.dot))
        })
        .collect()
}

/// Every sibling set an answer or the final state showed, with its key.
fn observed_sets<'a>(
    history: &'a History,
    state: &'a FinalState,
) -> impl Iterator<Item = (&'a str, &'a SiblingSet)> {
    let read_sets = history
        .reads
        .iter()
        .filter_map(|r| Some((r.key.as_str(), r.result.as_ref().ok()?)));
    let final_sets = state.reads.iter().map(|(k, s)| (k.as_str(), s));
    let replica_sets = state
        .replicas
        .iter()
        .flat_map(|(k, sets)| sets.values().map(move |s| (k.as_str(), s)));
    read_sets.chain(final_sets).chain(replica_sets)
}

fn reads_see_acknowledged_writes(history: &History, ancestry: &Ancestry, verdict: &mut Verdict) {
    for write in &history.writes {
        let (Some(dot), Some(acked_at), true) = (write.dot(), write.completed_at, write.strict)
        else {
            continue;
        };
        let later_reads = history
            .reads
            .iter()
            .filter(|r| r.strict && r.key == write.key && r.invoked_at > acked_at);
        for read in later_reads {
            let Ok(set) = &read.result else { continue };
            verdict.reads_checked += 1;
            let buried = ancestry.buried(&read.key, &dot, read.completed_at);
            if !buried
                && !set
                    .iter()
                    .any(|s| s.dot == dot || ancestry.supersedes(&read.key, s, &dot))
            {
                verdict.violations.push(format!(
                    "stale read: key {} read at {} ms returned {} but missed {} (dot {}:{}), \
                     acknowledged at {} ms",
                    write.key,
                    read.invoked_at,
                    describe(Some(set)),
                    show(write.value.as_deref()),
                    dot.node,
                    dot.counter,
                    acked_at,
                ));
            }
        }
    }
}

fn contexts_cover_only_what_was_shown(history: &History, verdict: &mut Verdict) {
    for write in &history.writes {
        let shown = shown_before(history, write);
        if !shown.descends(&write.context) {
            verdict.violations.push(format!(
                "unseen supersession: client {} wrote {} to key {} at {} ms with a context \
                 covering versions it was never shown: sent {:?}, shown {:?}",
                write.client,
                show(write.value.as_deref()),
                write.key,
                write.invoked_at,
                write.context,
                shown,
            ));
        }
    }
}

/// Every version of `write`'s key that answers had shown `write`'s client
/// by the time it invoked `write`: what its reads returned (and what those
/// versions had seen), and its own acknowledged writes.
fn shown_before(history: &History, write: &Write) -> CausalContext {
    let mut shown = CausalContext::new();
    let same = |client: usize, key: &str| client == write.client && key == write.key;
    for read in &history.reads {
        if same(read.client, &read.key) && read.completed_at <= write.invoked_at {
            shown.merge(&read.context);
        }
    }
    for own in &history.writes {
        if let (true, Some(done), WriteOutcome::Acked { dot, .. }) =
            (same(own.client, &own.key), own.completed_at, &own.outcome)
        {
            if done <= write.invoked_at {
                shown.add(dot, 0);
            }
        }
    }
    shown
}

fn stored_contexts_within_what_was_sent(
    history: &History,
    state: &FinalState,
    verdict: &mut Verdict,
) {
    let mut reported = std::collections::BTreeSet::new();
    for (key, set) in observed_sets(history, state) {
        for sibling in set.iter() {
            let Some(write) = writer_of(history, key, sibling) else {
                continue;
            };
            if !write.context.descends(&sibling.context) && reported.insert(sibling.dot.clone()) {
                verdict.violations.push(format!(
                    "over-covering context: key {key} version {}:{} ({}) was stored written \
                     against {:?}, more than its client sent: {:?}",
                    sibling.dot.node,
                    sibling.dot.counter,
                    show(sibling.value.as_deref()),
                    sibling.context,
                    write.context,
                ));
            }
        }
    }
}

/// The write that made `sibling`: by its dot when acknowledged, otherwise
/// by its value (every value the workload writes is unique).
fn writer_of<'h>(history: &'h History, key: &str, sibling: &Sibling) -> Option<&'h Write> {
    history.writes.iter().find(|w| {
        w.key == key
            && (w.dot().as_ref() == Some(&sibling.dot)
                || (sibling.value.is_some() && w.value == sibling.value))
    })
}

fn no_lost_writes(
    history: &History,
    state: &FinalState,
    ancestry: &Ancestry,
    promises: Promises,
    verdict: &mut Verdict,
) {
    let checked = |w: &&Write| w.value.is_some() && keeps(history, promises, w);
    for write in history.writes.iter().filter(checked) {
        let Some(dot) = write.dot() else { continue };
        verdict.writes_checked += 1;
        let present = state
            .reads
            .get(&write.key)
            .is_some_and(|set| set.iter().any(|s| s.dot == dot));
        if !present && !ancestry.superseded(&write.key, &dot) {
            verdict.violations.push(format!(
                "lost write: key {} value {} (dot {}:{}), acknowledged, never superseded, \
                 is not in the final read {}",
                write.key,
                show(write.value.as_deref()),
                dot.node,
                dot.counter,
                describe(state.reads.get(&write.key)),
            ));
        }
    }
}

/// Rule 2 for collected tombstones (see `ringkv_core::gc`), whatever the
/// pruning: once every member held a tombstone and its collection began,
/// no value its context covers may come back — not from a hint, a handoff,
/// a delayed message. (The tombstone itself may still show where a delete
/// has not been applied yet: collection finishes there later.)
fn nothing_collected_comes_back(history: &History, state: &FinalState, verdict: &mut Verdict) {
    for (key, set) in &state.reads {
        for sibling in set.iter() {
            let one: SiblingSet = std::iter::once(sibling.clone()).collect();
            // At time 0: only tombstones and emptied collections (the
            // reads show an expired value as a tombstone already).
            if ringkv_core::keyspace::is_dead(key.as_bytes(), &one, 0) {
                continue;
            }
            let gone = history
                .collected
                .iter()
                .find(|(k, context, _)| k == key && context.covers(&sibling.dot));
            if let Some((_, _, at)) = gone {
                verdict.violations.push(format!(
                    "resurrected after collection: key {key} version {}:{} ({}) is back \
                     although a tombstone covering it was collected at {at} ms",
                    sibling.dot.node,
                    sibling.dot.counter,
                    show(sibling.value.as_deref()),
                ));
            }
        }
    }
}

fn no_resurrection(history: &History, state: &FinalState, verdict: &mut Verdict) {
    for (key, set) in &state.reads {
        for sibling in set.iter() {
            let killer = history.writes.iter().find(|w| {
                &w.key == key
                    && matches!(w.outcome, WriteOutcome::Acked { .. })
                    && w.context.covers(&sibling.dot)
            });
            if let Some(w) = killer {
                verdict.violations.push(format!(
                    "resurrected: key {key} version {}:{} ({}) is back although an acknowledged \
                     {} had seen it",
                    sibling.dot.node,
                    sibling.dot.counter,
                    show(sibling.value.as_deref()),
                    if w.value.is_some() { "write" } else { "delete" },
                ));
            }
        }
    }
}

fn unique_dots(history: &History, verdict: &mut Verdict) {
    let mut seen = std::collections::BTreeMap::new();
    for (i, write) in history.writes.iter().enumerate() {
        let Some(dot) = write.dot() else { continue };
        if let Some(first) = seen.insert((write.key.clone(), dot.clone()), i) {
            verdict.violations.push(format!(
                "reused dot: key {} got dot {}:{} for both {} and {}",
                write.key,
                dot.node,
                dot.counter,
                show(history.writes[first].value.as_deref()),
                show(write.value.as_deref()),
            ));
        }
    }
}

fn convergence(state: &FinalState, verdict: &mut Verdict) {
    for (key, replicas) in &state.replicas {
        let mut sets = replicas.values();
        if let Some(first) = sets.next() {
            if sets.any(|s| s != first) {
                let mut detail = String::new();
                for (node, set) in replicas {
                    let _ = write!(detail, " {node}={}", describe(Some(set)));
                }
                verdict
                    .violations
                    .push(format!("not converged: key {key}:{detail}"));
            }
        }
    }
}

fn show(value: Option<&[u8]>) -> String {
    match value {
        Some(v) => format!("{:?}", String::from_utf8_lossy(v)),
        None => "tombstone".into(),
    }
}

fn describe(set: Option<&SiblingSet>) -> String {
    let Some(set) = set else {
        return "(missing)".into();
    };
    let parts: Vec<String> = set
        .iter()
        .map(|s| {
            format!(
                "{}:{}={}",
                s.dot.node,
                s.dot.counter,
                show(s.value.as_deref())
            )
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Read, Write};
    use ringkv_core::siblings::WriteLimits;

    const LIMITS: WriteLimits = WriteLimits {
        max_siblings: 8,
        max_clock_entries: 8,
        young_clock_ms: 20_000,
        min_counter: 0,
    };

    /// Client `client`'s write invoked at `at`, applied to `set` as
    /// coordinator `node` would, acknowledged a millisecond later with the
    /// receipt a node hands back (the context sent plus the new dot).
    fn write(
        set: &mut SiblingSet,
        client: usize,
        at: u64,
        node: &str,
        ctx: CausalContext,
        value: &str,
    ) -> Write {
        let dot = set
            .write(&node.into(), &ctx, Some(value.into()), at, LIMITS)
            .unwrap();
        let mut receipt = ctx.clone();
        receipt.add(&dot, at);
        Write {
            client,
            key: "k".into(),
            value: Some(value.into()),
            context: ctx,
            invoked_at: at,
            completed_at: Some(at + 1),
            outcome: WriteOutcome::Acked {
                dot,
                context: receipt,
            },
            strict: true,
        }
    }

    /// Client `client`'s read, answered at `at` with `set`.
    fn read(client: usize, at: u64, set: &SiblingSet) -> Read {
        Read {
            client,
            key: "k".into(),
            invoked_at: at,
            completed_at: at,
            context: set.context(),
            result: Ok(set.clone()),
            strict: true,
        }
    }

    fn state(read: SiblingSet) -> FinalState {
        let mut s = FinalState::default();
        s.reads.insert("k".into(), read.clone());
        s.replicas
            .entry("k".into())
            .or_default()
            .insert("n1".into(), read);
        s
    }

    #[test]
    fn concurrent_writes_that_both_survive_pass() {
        let mut set = SiblingSet::new();
        let a = write(&mut set, 0, 0, "n1", CausalContext::new(), "a");
        let b = write(&mut set, 1, 0, "n1", CausalContext::new(), "b");
        let history = History {
            writes: vec![a, b],
            ..History::default()
        };
        let verdict = check(&history, &state(set));
        assert!(verdict.ok(), "{:?}", verdict.violations);
        assert_eq!(verdict.writes_checked, 2);
    }

    #[test]
    fn a_silently_dropped_sibling_is_caught() {
        let mut set = SiblingSet::new();
        let a = write(&mut set, 0, 0, "n1", CausalContext::new(), "a");
        let b = write(&mut set, 1, 0, "n1", CausalContext::new(), "b");
        // What last-write-wins would leave: only b.
        let survivor: SiblingSet = set
            .iter()
            .filter(|s| s.value.as_deref() == Some(b"b"))
            .cloned()
            .collect();
        let history = History {
            writes: vec![a, b],
            ..History::default()
        };
        let verdict = check(&history, &state(survivor));
        assert_eq!(verdict.violations.len(), 1, "{:?}", verdict.violations);
        assert!(verdict.violations[0].starts_with("lost write: key k value \"a\""));
    }

    /// Rule 1 holds for a key while fewer of its N disks lost writes than
    /// it has copies: with as many lost, an acknowledged write may go.
    #[test]
    fn a_write_may_be_lost_only_with_as_many_lost_disks_as_copies() {
        let mut set = SiblingSet::new();
        let a = write(&mut set, 0, 10, "n1", CausalContext::new(), "a");
        // (N, times disks lost writes, is the loss a violation)
        let cases = [
            (3, vec![20, 30], true),
            (3, vec![20, 30, 40], false),
            (2, vec![20], true),
            (2, vec![20, 30], false),
            // Losses before the write was made took nothing of it.
            (2, vec![0, 5, 30], true),
        ];
        for (cluster_n, disk_losses, lost_write_found) in cases {
            let history = History {
                writes: vec![a.clone()],
                disk_losses: disk_losses.clone(),
                ..History::default()
            };
            let promises = Promises {
                intersecting_quorums: false,
                exact_contexts: true,
                cluster_n,
            };
            let verdict = check_with(&history, &state(SiblingSet::new()), promises);
            assert_eq!(
                !verdict.ok(),
                lost_write_found,
                "N = {cluster_n}, disks lost at {disk_losses:?}: {:?}",
                verdict.violations
            );
        }
    }

    #[test]
    fn a_superseded_write_may_go_but_may_not_come_back() {
        let mut set = SiblingSet::new();
        let a = write(&mut set, 0, 0, "n1", CausalContext::new(), "a");
        let stale = set.clone();
        let shown = read(1, 2, &set);
        let seen = set.context();
        let b = write(&mut set, 1, 2, "n2", seen, "b");
        let history = History {
            writes: vec![a, b],
            reads: vec![shown],
            ..History::default()
        };
        let verdict = check(&history, &state(set.clone()));
        assert!(verdict.ok(), "{:?}", verdict.violations);
        // What a merge that ignored contexts would store: "a" back beside "b".
        let verdict = check(&history, &state(unnormalized(&stale, &set)));
        assert!(
            verdict
                .violations
                .iter()
                .any(|v| v.starts_with("resurrected: key k version n1:1")),
            "{:?}",
            verdict.violations
        );
    }

    /// Two blind writes through one coordinator, then the second writer
    /// chains a write on its receipt: fine with an exact receipt, a lost
    /// update when the receipt covers the other writer's sibling too (the
    /// plain version-vector clock `n2:2` that also claims `n2:1`).
    #[test]
    fn a_context_covering_a_sibling_its_client_never_saw_is_caught() {
        let mut set = SiblingSet::new();
        let a = write(&mut set, 0, 0, "n2", CausalContext::new(), "a");
        let b = write(&mut set, 1, 0, "n2", CausalContext::new(), "b");
        let WriteOutcome::Acked {
            context: receipt, ..
        } = b.outcome.clone()
        else {
            unreachable!()
        };
        let mut exact = set.clone();
        let chained = write(&mut exact, 1, 5, "n2", receipt, "c");
        let history = History {
            writes: vec![a.clone(), b.clone(), chained],
            ..History::default()
        };
        let verdict = check(&history, &state(exact));
        assert!(verdict.ok(), "{:?}", verdict.violations);

        let mut over = CausalContext::new();
        over.add_prefix(&"n2".into(), 2, 0);
        let mut lost = set.clone();
        let chained = write(&mut lost, 1, 5, "n2", over, "c");
        let history = History {
            writes: vec![a, b, chained],
            ..History::default()
        };
        let verdict = check(&history, &state(lost));
        assert!(
            verdict.violations[0].starts_with("unseen supersession: client 1 wrote \"c\""),
            "{:?}",
            verdict.violations
        );
    }

    #[test]
    fn a_stored_context_beyond_what_was_sent_is_caught() {
        let mut set = SiblingSet::new();
        let a = write(&mut set, 0, 0, "n1", CausalContext::new(), "a");
        let mut b = write(&mut set, 1, 0, "n1", CausalContext::new(), "b");
        let history = History {
            writes: vec![a.clone(), b.clone()],
            ..History::default()
        };
        assert!(check(&history, &state(set.clone())).ok());
        // The node stored b as if its client had sent a context with a's dot.
        let mut sent = CausalContext::new();
        sent.add(&Dot::new("n1", 1), 0);
        b.context = sent;
        let mut stored = SiblingSet::new();
        let dot = stored
            .write(
                &"n1".into(),
                &CausalContext::new(),
                Some("a".into()),
                0,
                LIMITS,
            )
            .unwrap();
        assert_eq!(Some(dot), a.dot());
        let b_dot = stored
            .write(&"n1".into(), &b.context, Some("b".into()), 0, LIMITS)
            .unwrap();
        b.context = CausalContext::new();
        b.outcome = WriteOutcome::Acked {
            dot: b_dot,
            context: CausalContext::new(),
        };
        let history = History {
            writes: vec![a, b],
            ..History::default()
        };
        let verdict = check(&history, &state(stored));
        assert!(
            verdict
                .violations
                .iter()
                .any(|v| v.starts_with("over-covering context: key k version n1:2 (\"b\")")),
            "{:?}",
            verdict.violations
        );
    }

    /// Both sets side by side, without the merge rules. A sibling set
    /// encodes as its list of siblings, so decode one from such a list.
    fn unnormalized(a: &SiblingSet, b: &SiblingSet) -> SiblingSet {
        let all: Vec<_> = a.iter().chain(b.iter()).collect();
        postcard::from_bytes(&postcard::to_stdvec(&all).unwrap()).unwrap()
    }

    #[test]
    fn a_read_that_misses_an_earlier_acknowledged_write_is_stale() {
        let mut set = SiblingSet::new();
        let before = set.clone();
        let a = write(&mut set, 0, 0, "n1", CausalContext::new(), "a");
        let history = History {
            writes: vec![a],
            // Before the ack an empty read is fine; after it, it is stale.
            reads: vec![read(1, 0, &before), read(1, 5, &set), read(1, 6, &before)],
            ..History::default()
        };
        let verdict = check_with_intersecting_quorums(&history, &state(set));
        assert_eq!(verdict.reads_checked, 2);
        assert_eq!(verdict.violations.len(), 1, "{:?}", verdict.violations);
        assert!(verdict.violations[0].starts_with("stale read: key k read at 6 ms"));
    }

    /// A write acknowledged with stand-ins (sloppy quorum) makes no promise
    /// to the next quorum read: hinted handoff brings it to the owner later.
    #[test]
    fn a_sloppy_write_may_be_missed_by_a_later_read() {
        let mut set = SiblingSet::new();
        let before = set.clone();
        let mut a = write(&mut set, 0, 0, "n1", CausalContext::new(), "a");
        a.strict = false;
        let history = History {
            writes: vec![a],
            reads: vec![read(1, 6, &before)],
            ..History::default()
        };
        let verdict = check_with_intersecting_quorums(&history, &state(set));
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        assert_eq!(verdict.reads_checked, 0);
    }

    #[test]
    fn diverged_replicas_are_reported() {
        let mut set = SiblingSet::new();
        write(&mut set, 0, 0, "n1", CausalContext::new(), "a");
        let mut s = state(set);
        s.replicas
            .get_mut("k")
            .unwrap()
            .insert("n2".into(), SiblingSet::new());
        let verdict = check(&History::default(), &s);
        assert!(verdict.violations[0].starts_with("not converged: key k"));
    }
}
