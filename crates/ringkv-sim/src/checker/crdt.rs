//! The rules of CRDT updates (checker rules 8 and 9), on each Redis key's
//! value as the converged cluster holds it.
//!
//! 8. **Every increment counts exactly once.** A counter's final value is
//!    the sum of its acknowledged increments plus the sum of *some subset*
//!    of the ones that may have been applied (indeterminate or pending:
//!    each at most once, since an increment is never retried elsewhere).
//!    Checked exactly, by the subset sums of those deltas.
//! 9. **No lost add, no phantom member.** A member an acknowledged `SADD`
//!    added is in the final set unless some `SREM` of it may have removed
//!    that add: any remove not definitely failed, except one acknowledged
//!    before the add was invoked (it was done before the add existed). A
//!    remove concurrent with the add may have observed it, so only this
//!    rule holds whatever quorums were met (an update goes on without its
//!    read quorum, and sloppy writes may hide an add from a remove's
//!    read): it has no false positives. And every member of the final set
//!    was named by some `SADD` that may have been applied.

use super::Verdict;
use crate::history::{FinalState, History, Update};
use ringkv_core::crdt::{self, Value};
use ringkv_core::keyspace::LWW_PREFIX;
use std::collections::BTreeSet;

/// Check rules 8 and 9 for every key the history updated.
pub(super) fn check(history: &History, state: &FinalState, verdict: &mut Verdict) {
    let keys: BTreeSet<&str> = history.updates.iter().map(|u| u.key.as_str()).collect();
    for key in keys {
        let updates: Vec<&Update> = history.updates.iter().filter(|u| u.key == key).collect();
        let value = match final_value(key, state, &updates) {
            Ok(value) => value,
            Err(problem) => {
                verdict.violations.push(problem);
                continue;
            }
        };
        verdict.updates_checked += updates.iter().filter(|u| u.outcome.is_acked()).count();
        let increments = updates.iter().any(|u| {
            matches!(
                u.update,
                crdt::Update::IncrBy(_) | crdt::Update::HIncrBy(..)
            )
        });
        let problems = if increments {
            Vec::from_iter(counted_exactly_once(key, &updates, value.as_ref()))
        } else {
            set_keeps_its_adds(key, &updates, value.as_ref())
        };
        verdict.violations.extend(problems);
    }
}

/// The key's resolved value in the final read, which every replica must
/// resolve to as well (`None`: nothing, or a tombstone).
fn final_value(
    key: &str,
    state: &FinalState,
    updates: &[&Update],
) -> Result<Option<Value>, String> {
    let resolve = |set| {
        crdt::resolve(set)
            .map(|v| v.map(|(value, _)| value))
            .map_err(|e| format!("undecodable: Redis key {} holds {e}", name(key)))
    };
    let Some(read) = state.reads.get(key) else {
        let acked = updates.iter().any(|u| u.outcome.is_acked());
        return match acked {
            true => Err(format!("no final read of Redis key {}", name(key))),
            false => Ok(None),
        };
    };
    let value = resolve(read)?;
    let replicas = state.replicas.get(key).into_iter().flatten();
    for (node, set) in replicas {
        let theirs = resolve(set)?;
        if theirs != value {
            return Err(format!(
                "not converged: Redis key {} resolves to {value:?} in the final read but \
                 to {theirs:?} on {node}",
                name(key)
            ));
        }
    }
    Ok(value)
}

/// Rule 8 for a counter that ended as `value`.
fn counted_exactly_once(key: &str, updates: &[&Update], value: Option<&Value>) -> Option<String> {
    let counted = match value {
        None => 0,
        Some(Value::Counter(c)) => c.value(),
        Some(Value::Hash(h)) => match h.get(crate::workload::HASH_FIELD) {
            None => 0,
            Some((crdt::Field::Counter(c), _, _)) => c.value(),
            Some(other) => return Some(format!("wrong field: hash {} holds {other:?}", name(key))),
        },
        Some(other) => return Some(format!("wrong type: counter {} holds {other:?}", name(key))),
    };
    let deltas = updates.iter().filter_map(|u| match u.update {
        crdt::Update::IncrBy(delta) | crdt::Update::HIncrBy(_, delta) => Some((delta, u)),
        _ => None,
    });
    let (mut acked, mut maybe) = (0i64, Vec::new());
    for (delta, update) in deltas {
        if update.outcome.is_acked() {
            acked += delta;
        } else if update.outcome.may_have_applied() {
            maybe.push(delta);
        }
    }
    let extra = counted - acked;
    let sums = subset_sums(&maybe);
    if sums.contains(&extra) {
        return None;
    }
    let (least, most) = (sums.first().copied(), sums.last().copied());
    Some(format!(
        "miscounted: counter {} is {counted}, its acknowledged increments add up to {acked}, \
         and no subset of the {} that may have been applied makes up the {extra} between \
         (they add {}..={})",
        name(key),
        maybe.len(),
        least.unwrap_or(0),
        most.unwrap_or(0),
    ))
}

/// Every sum of a subset of `deltas` (the empty one included). Exact for
/// any deltas; its size is bounded by the sum of their magnitudes plus
/// one, small for the workload's small deltas.
fn subset_sums(deltas: &[i64]) -> BTreeSet<i64> {
    let mut sums = BTreeSet::from([0]);
    for &delta in deltas {
        let shifted: Vec<i64> = sums.iter().map(|s| s + delta).collect();
        sums.extend(shifted);
    }
    sums
}

/// Rule 9 for a set that ended as `value`: its first lost add and its
/// first phantom member, if any.
fn set_keeps_its_adds(key: &str, updates: &[&Update], value: Option<&Value>) -> Vec<String> {
    let empty = crdt::OrSet::new();
    let set = match value {
        None => &empty,
        Some(Value::Set(s)) => s,
        Some(other) => return vec![format!("wrong type: set {} holds {other:?}", name(key))],
    };
    let lost = lost_add(key, updates, set);
    lost.into_iter()
        .chain(phantom_member(key, updates, set))
        .collect()
}

/// The first member an acknowledged `SADD` added that is gone although no
/// remove may have taken that add away.
fn lost_add(key: &str, updates: &[&Update], set: &crdt::OrSet) -> Option<String> {
    let adds = updates
        .iter()
        .filter(|u| matches!(u.update, crdt::Update::SAdd(_)) && u.outcome.is_acked());
    for add in adds {
        for member in add.members() {
            if set.contains(member) || may_have_removed(updates, member, add) {
                continue;
            }
            return Some(format!(
                "lost add: set {} lacks {}, added by client {} at {} ms (acknowledged at {:?} \
                 ms) and removed by nothing invoked after that; final members {}",
                name(key),
                show(member),
                add.client,
                add.invoked_at,
                add.completed_at,
                members(set),
            ));
        }
    }
    None
}

/// True when some `SREM` of `member` may have removed what `add` added:
/// one that may have been applied and was not done before `add` began.
fn may_have_removed(updates: &[&Update], member: &[u8], add: &Update) -> bool {
    updates.iter().any(|r| {
        matches!(r.update, crdt::Update::SRem(_))
            && r.members().iter().any(|m| m == member)
            && r.outcome.may_have_applied()
            && !r.acked_before(add.invoked_at)
    })
}

/// The first member of the final set that no `SADD` which may have been
/// applied ever named.
fn phantom_member(key: &str, updates: &[&Update], set: &crdt::OrSet) -> Option<String> {
    let named: BTreeSet<&[u8]> = updates
        .iter()
        .filter(|u| matches!(u.update, crdt::Update::SAdd(_)) && u.outcome.may_have_applied())
        .flat_map(|u| u.members().iter().map(Vec::as_slice))
        .collect();
    let phantom = set.iter().find(|m| !named.contains(m))?;
    Some(format!(
        "phantom member: set {} holds {}, which no SADD that may have been applied added",
        name(key),
        show(phantom),
    ))
}

/// A Redis key as its users name it (without the keyspace prefix).
fn name(key: &str) -> String {
    let user = key
        .as_bytes()
        .strip_prefix(&LWW_PREFIX[..])
        .unwrap_or(key.as_bytes());
    format!("{:?}", String::from_utf8_lossy(user))
}

fn show(member: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(member))
}

fn members(set: &crdt::OrSet) -> String {
    let all: Vec<String> = set.iter().map(show).collect();
    format!("[{}]", all.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::check;
    use crate::history::UpdateOutcome;
    use ringkv_core::crdt::{Actor, OrSet, PnCounter};
    use ringkv_core::siblings::{SiblingSet, WriteLimits};
    use ringkv_core::version::{CausalContext, Dot};

    const LIMITS: WriteLimits = WriteLimits {
        max_siblings: 8,
        max_clock_entries: 8,
        young_clock_ms: 20_000,
        min_counter: 0,
    };
    const COUNTER: &str = "\0rcounter";
    const SET: &str = "\0rset";

    /// A cluster whose every replica of `key` holds `value`.
    fn holding(key: &str, value: Value) -> FinalState {
        let mut set = SiblingSet::new();
        let bytes = Some(value.encode());
        set.write(&"n1".into(), &CausalContext::new(), bytes, 0, LIMITS)
            .unwrap();
        let mut state = FinalState::default();
        state.reads.insert(key.into(), set.clone());
        let replicas = state.replicas.entry(key.into()).or_default();
        replicas.insert("n1".into(), set.clone());
        replicas.insert("n2".into(), set);
        state
    }

    /// A counter that counted `deltas`, each once, through one actor.
    fn counter(deltas: &[i64]) -> Value {
        let mut c = PnCounter::new();
        let actor = Actor {
            node: "n1".into(),
            epoch: 1,
        };
        for &d in deltas {
            c.apply(&actor, d).unwrap();
        }
        Value::Counter(c)
    }

    /// A set of `members` (each added by one add, none removed).
    fn set_of(members: &[&str]) -> Value {
        let mut s = OrSet::new();
        for (i, m) in members.iter().enumerate() {
            s.add(&Dot::new("n1", i as u64 + 1), &[m.as_bytes().to_vec()])
                .unwrap();
        }
        Value::Set(s)
    }

    /// Client 0's update of `key` invoked at `at`, answered at `done` with
    /// `outcome` (`None`: never answered).
    fn update(
        key: &str,
        op: crdt::Update,
        at: u64,
        done: Option<u64>,
        outcome: UpdateOutcome,
    ) -> Update {
        Update {
            client: 0,
            key: key.into(),
            update: op,
            invoked_at: at,
            completed_at: done,
            outcome,
        }
    }

    fn incr(delta: i64, outcome: UpdateOutcome) -> Update {
        let done = (outcome != UpdateOutcome::Pending).then_some(1);
        update(COUNTER, crdt::Update::IncrBy(delta), 0, done, outcome)
    }

    fn sadd(member: &str, at: u64, outcome: UpdateOutcome) -> Update {
        let op = crdt::Update::SAdd(vec![member.into()]);
        update(SET, op, at, Some(at + 1), outcome)
    }

    fn srem(member: &str, at: u64, done: u64, outcome: UpdateOutcome) -> Update {
        let op = crdt::Update::SRem(vec![member.into()]);
        update(SET, op, at, Some(done), outcome)
    }

    fn acked() -> UpdateOutcome {
        UpdateOutcome::Acked(1)
    }

    fn unknown() -> UpdateOutcome {
        UpdateOutcome::Indeterminate("coordinator crashed".into())
    }

    fn failed() -> UpdateOutcome {
        UpdateOutcome::Failed("overloaded".into())
    }

    fn verdict(updates: Vec<Update>, state: &FinalState) -> Verdict {
        let history = History {
            updates,
            ..History::default()
        };
        check(&history, state)
    }

    fn counter_history() -> Vec<Update> {
        vec![
            incr(3, acked()),
            incr(-2, acked()),
            incr(5, unknown()),
            incr(-1, UpdateOutcome::Pending),
            incr(3, failed()),
        ]
    }

    #[test]
    fn acknowledged_increments_and_some_indeterminate_ones_pass() {
        for counted in [&[3, -2][..], &[3, -2, 5], &[3, -2, -1], &[3, -2, 5, -1]] {
            let v = verdict(counter_history(), &holding(COUNTER, counter(counted)));
            assert!(v.ok(), "{counted:?}: {:?}", v.violations);
            assert_eq!(v.updates_checked, 2);
        }
    }

    #[test]
    fn a_lost_increment_is_caught() {
        let v = verdict(counter_history(), &holding(COUNTER, counter(&[3, 5])));
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].starts_with("miscounted: counter \"counter\" is 8"));
    }

    #[test]
    fn a_doubly_counted_increment_is_caught() {
        // The indeterminate +5 applied twice (a retried increment).
        let twice = counter(&[3, -2, 5, 5]);
        let v = verdict(counter_history(), &holding(COUNTER, twice));
        assert!(
            v.violations[0].starts_with("miscounted"),
            "{:?}",
            v.violations
        );
        // An acknowledged one applied twice.
        let v = verdict(counter_history(), &holding(COUNTER, counter(&[3, 3, -2])));
        assert!(
            v.violations[0].starts_with("miscounted"),
            "{:?}",
            v.violations
        );
    }

    #[test]
    fn a_failed_increment_that_counts_is_caught() {
        let v = verdict(counter_history(), &holding(COUNTER, counter(&[3, -2, 3])));
        assert!(
            v.violations[0].starts_with("miscounted"),
            "{:?}",
            v.violations
        );
    }

    #[test]
    fn subset_sums_are_exact() {
        assert_eq!(subset_sums(&[]), BTreeSet::from([0]));
        assert_eq!(subset_sums(&[2, -3]), BTreeSet::from([-3, -1, 0, 2]));
        assert!(!subset_sums(&[2, 2, 2]).contains(&1));
    }

    #[test]
    fn a_lost_sadd_is_caught() {
        let updates = vec![sadd("a", 0, acked()), sadd("b", 0, acked())];
        let v = verdict(updates.clone(), &holding(SET, set_of(&["a", "b"])));
        assert!(v.ok(), "{:?}", v.violations);
        let v = verdict(updates, &holding(SET, set_of(&["b"])));
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].starts_with("lost add: set \"set\" lacks \"a\""));
    }

    #[test]
    fn a_remove_may_take_adds_it_may_have_seen_but_a_re_add_after_it_stays() {
        // Added, removed (acknowledged), added again after that.
        let updates = vec![
            sadd("a", 0, acked()),
            srem("a", 5, 6, acked()),
            sadd("a", 10, acked()),
        ];
        let v = verdict(updates.clone(), &holding(SET, set_of(&["a"])));
        assert!(v.ok(), "{:?}", v.violations);
        let v = verdict(updates, &holding(SET, set_of(&[])));
        assert!(
            v.violations[0].starts_with("lost add"),
            "{:?}",
            v.violations
        );
        // A remove still running when the add began, or never answered, or
        // invoked later, may have seen it; a failed one did nothing.
        for remove in [
            srem("a", 0, 10, acked()),
            srem("a", 0, 1, unknown()),
            srem("a", 20, 21, acked()),
        ] {
            let updates = vec![sadd("a", 5, acked()), remove];
            let v = verdict(updates, &holding(SET, set_of(&[])));
            assert!(v.ok(), "{:?}", v.violations);
        }
        let updates = vec![sadd("a", 5, acked()), srem("a", 20, 21, failed())];
        let v = verdict(updates, &holding(SET, set_of(&[])));
        assert!(
            v.violations[0].starts_with("lost add"),
            "{:?}",
            v.violations
        );
    }

    #[test]
    fn a_member_nobody_added_is_caught() {
        let updates = vec![sadd("a", 0, acked()), sadd("b", 0, unknown())];
        let v = verdict(updates.clone(), &holding(SET, set_of(&["a", "b"])));
        assert!(v.ok(), "{:?}", v.violations);
        let v = verdict(updates, &holding(SET, set_of(&["a", "z"])));
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        assert!(v.violations[0].starts_with("phantom member: set \"set\" holds \"z\""));
        // Nor one whose only add failed.
        let updates = vec![sadd("a", 0, acked()), sadd("f", 0, failed())];
        let v = verdict(updates, &holding(SET, set_of(&["a", "f"])));
        assert!(
            v.violations[0].starts_with("phantom member"),
            "{:?}",
            v.violations
        );
    }

    #[test]
    fn replicas_resolving_to_different_values_are_caught() {
        let mut state = holding(COUNTER, counter(&[3, -2]));
        let other = holding(COUNTER, counter(&[3]));
        let diverged = other.reads[COUNTER].clone();
        state
            .replicas
            .get_mut(COUNTER)
            .unwrap()
            .insert("n3".into(), diverged);
        let v = verdict(counter_history(), &state);
        assert!(
            v.violations.iter().any(|p| p.contains("resolves to")),
            "{:?}",
            v.violations
        );
    }
}
