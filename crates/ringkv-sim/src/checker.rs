//! The consistency checker: what ringkv promises, checked against a history
//! and the state the cluster settled in.
//!
//! 1. **No lost acknowledged write.** Every acknowledged PUT is in the final
//!    quorum read (as the value or a sibling, identified by its dot) unless
//!    some write — acknowledged or not, since a failed write may still have
//!    been applied — was made with a context covering that dot. This also
//!    checks that concurrent writes are never silently dropped: a concurrent
//!    write's context does not cover the other's dot.
//! 2. **No resurrection.** No version in the final state is covered by the
//!    context of an acknowledged write (or delete): once a write that saw it
//!    was acknowledged, it must stay gone.
//! 3. **Convergence.** All replicas of a key hold identical sibling sets.
//!    And **unique dots**: two acknowledged writes of a key never share a
//!    dot. A reused dot makes a context that saw one version supersede the
//!    other, unseen — a lost update the rules above cannot see.
//! 4. **Reads see acknowledged writes.** With strict quorums and R + W > N,
//!    a read invoked after a write was acknowledged returns that version or
//!    one whose context covers it (the read and write quorums intersect).
//!    Checked only when the caller says its quorums intersect.

use crate::history::{FinalState, History, WriteOutcome};
use ringkv_core::siblings::SiblingSet;
use std::fmt::Write as _;

/// What the checker found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub writes_checked: usize,
    /// (read, earlier acknowledged write) pairs checked by rule 4.
    pub reads_checked: usize,
    pub keys_checked: usize,
    pub violations: Vec<String>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

pub fn check(history: &History, state: &FinalState) -> Verdict {
    let mut verdict = Verdict {
        keys_checked: state.reads.len(),
        ..Verdict::default()
    };
    no_lost_writes(history, state, &mut verdict);
    no_resurrection(history, state, &mut verdict);
    convergence(state, &mut verdict);
    unique_dots(history, &mut verdict);
    verdict
}

/// [`check`] plus rule 4, for runs whose read and write quorums intersect.
pub fn check_with_intersecting_quorums(history: &History, state: &FinalState) -> Verdict {
    let mut verdict = check(history, state);
    reads_see_acknowledged_writes(history, &mut verdict);
    verdict
}

fn reads_see_acknowledged_writes(history: &History, verdict: &mut Verdict) {
    for write in &history.writes {
        let (Some(dot), Some(acked_at), true) = (write.dot(), write.completed_at, write.strict)
        else {
            continue;
        };
        let later_reads = history
            .reads
            .iter()
            .filter(|r| r.key == write.key && r.invoked_at > acked_at);
        for read in later_reads {
            let Ok(set) = &read.result else { continue };
            verdict.reads_checked += 1;
            if !set.iter().any(|s| s.dot == dot || s.context.covers(&dot)) {
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

fn no_lost_writes(history: &History, state: &FinalState, verdict: &mut Verdict) {
    for write in history.writes.iter().filter(|w| w.value.is_some()) {
        let Some(dot) = write.dot() else { continue };
        verdict.writes_checked += 1;
        let present = state
            .reads
            .get(&write.key)
            .is_some_and(|set| set.iter().any(|s| s.dot == dot));
        let superseded = history
            .writes
            .iter()
            .any(|w| w.key == write.key && w.context.covers(&dot));
        if !present && !superseded {
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

fn no_resurrection(history: &History, state: &FinalState, verdict: &mut Verdict) {
    for (key, set) in &state.reads {
        for sibling in set.iter() {
            let killer = history.writes.iter().find(|w| {
                &w.key == key
                    && matches!(w.outcome, WriteOutcome::Acked(_))
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
    use crate::history::Write;
    use ringkv_core::siblings::WriteLimits;
    use ringkv_core::version::VersionVector;

    const LIMITS: WriteLimits = WriteLimits {
        max_siblings: 8,
        max_clock_entries: 8,
        min_counter: 0,
    };

    /// Apply a write to `set` as a coordinator would; return its record.
    fn write(set: &mut SiblingSet, node: &str, ctx: VersionVector, value: &str) -> Write {
        let dot = set
            .write(&node.into(), &ctx, Some(value.into()), 1, LIMITS)
            .unwrap();
        let clock = set.iter().find(|s| s.dot == dot).unwrap().clock();
        Write {
            key: "k".into(),
            value: Some(value.into()),
            context: ctx,
            invoked_at: 0,
            completed_at: Some(1),
            outcome: WriteOutcome::Acked(clock),
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
        let a = write(&mut set, "n1", VersionVector::new(), "a");
        let b = write(&mut set, "n1", VersionVector::new(), "b");
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
        let a = write(&mut set, "n1", VersionVector::new(), "a");
        let b = write(&mut set, "n1", VersionVector::new(), "b");
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

    #[test]
    fn a_superseded_write_may_go_but_may_not_come_back() {
        let mut set = SiblingSet::new();
        let a = write(&mut set, "n1", VersionVector::new(), "a");
        let stale = set.clone();
        let seen = set.context();
        let b = write(&mut set, "n2", seen, "b");
        let history = History {
            writes: vec![a, b],
            ..History::default()
        };
        assert!(check(&history, &state(set.clone())).ok());
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
        let a = write(&mut set, "n1", VersionVector::new(), "a");
        let read = |at, result: &SiblingSet| crate::history::Read {
            key: "k".into(),
            invoked_at: at,
            result: Ok(result.clone()),
        };
        let history = History {
            writes: vec![a],
            // Before the ack an empty read is fine; after it, it is stale.
            reads: vec![read(0, &before), read(5, &set), read(6, &before)],
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
        let mut a = write(&mut set, "n1", VersionVector::new(), "a");
        a.strict = false;
        let read = crate::history::Read {
            key: "k".into(),
            invoked_at: 6,
            result: Ok(before),
        };
        let history = History {
            writes: vec![a],
            reads: vec![read],
        };
        let verdict = check_with_intersecting_quorums(&history, &state(set));
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
        assert_eq!(verdict.reads_checked, 0);
    }

    #[test]
    fn diverged_replicas_are_reported() {
        let mut set = SiblingSet::new();
        write(&mut set, "n1", VersionVector::new(), "a");
        let mut s = state(set);
        s.replicas
            .get_mut("k")
            .unwrap()
            .insert("n2".into(), SiblingSet::new());
        let verdict = check(&History::default(), &s);
        assert!(verdict.violations[0].starts_with("not converged: key k"));
    }
}
