//! Property tests of the CRDTs behind Redis counters and sets: their
//! merges are joins (commutative, associative, idempotent), and after
//! replicas exchange states every increment counts exactly once and every
//! add survives unless a remove observed it — also when a replica forgets
//! its copy (handing it off first) and raises its dot floor, as a node does
//! after a restart or a handoff.

use proptest::prelude::*;
use ringkv_core::crdt::{End, OrList, OrSet, OrZSet, PnCounter};
use ringkv_core::version::Dot;
use ringkv_core::NodeId;
use std::collections::BTreeSet;

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Op {
    Incr(usize, i64),
    Add(usize, u8),
    Remove(usize, u8),
    /// Replica `.0` pushes a new, unique element at `.1`.
    Push(usize, bool),
    /// Replica `.0` pops one element at `.1`.
    Pop(usize, bool),
    /// Replica `.0` sets member `.1`'s score to `.2`.
    Score(usize, u8, i8),
    /// Replica `.0` removes member `.1` of its sorted set.
    Unscore(usize, u8),
    /// Replica `.0` merges replica `.1`'s state.
    Sync(usize, usize),
    /// Replica `.0` hands its state to the next replica and forgets it
    /// (a delivered hint, a handoff drop), raising its dot floor; later it
    /// gets a copy from the replica after that, which may be older than
    /// what it handed off.
    Forget(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let r = 0..REPLICAS;
    prop_oneof![
        (r.clone(), -3i64..=3).prop_map(|(i, d)| Op::Incr(i, d)),
        (r.clone(), 0u8..6).prop_map(|(i, e)| Op::Add(i, e)),
        (r.clone(), 0u8..6).prop_map(|(i, e)| Op::Remove(i, e)),
        (r.clone(), any::<bool>()).prop_map(|(i, h)| Op::Push(i, h)),
        (r.clone(), any::<bool>()).prop_map(|(i, h)| Op::Pop(i, h)),
        (r.clone(), 0u8..4, -3i8..3).prop_map(|(i, m, s)| Op::Score(i, m, s)),
        (r.clone(), 0u8..4).prop_map(|(i, m)| Op::Unscore(i, m)),
        (r.clone(), r.clone()).prop_map(|(i, j)| Op::Sync(i, j)),
        r.prop_map(Op::Forget),
    ]
}

/// One replica: its states and its dots (counter and floor).
#[derive(Clone)]
struct Replica {
    node: NodeId,
    counter: u64,
    floor: u64,
    count: PnCounter,
    set: OrSet,
    list: OrList,
    zset: OrZSet,
}

impl Replica {
    fn next_dot(&mut self) -> Dot {
        self.counter = (self.counter + 1).max(self.floor);
        Dot::new(self.node.clone(), self.counter)
    }
}

/// What the history says the converged state must be.
#[derive(Default)]
struct Expected {
    total: i64,
    /// Every add: element and dot.
    adds: Vec<(u8, Dot)>,
    /// Adds a remove observed, or a later add of the same element at the
    /// same replica superseded.
    dead: BTreeSet<Dot>,
    /// Elements pushed (each unique), and those a pop took.
    pushed: BTreeSet<u32>,
    popped: BTreeSet<u32>,
}

struct Run {
    replicas: Vec<Replica>,
    expected: Expected,
    counters_seen: Vec<PnCounter>,
    sets_seen: Vec<OrSet>,
    lists_seen: Vec<OrList>,
    zsets_seen: Vec<OrZSet>,
}

fn run(ops: &[Op]) -> Run {
    let replicas = (0..REPLICAS)
        .map(|i| Replica {
            node: NodeId::new(format!("n{i}")),
            counter: 0,
            floor: 0,
            count: PnCounter::new(),
            set: OrSet::new(),
            list: OrList::new(),
            zset: OrZSet::new(),
        })
        .collect();
    let mut run = Run {
        replicas,
        expected: Expected::default(),
        counters_seen: Vec::new(),
        sets_seen: Vec::new(),
        lists_seen: Vec::new(),
        zsets_seen: Vec::new(),
    };
    for op in ops {
        step(&mut run, op);
        for r in &run.replicas {
            run.counters_seen.push(r.count.clone());
            run.sets_seen.push(r.set.clone());
            run.lists_seen.push(r.list.clone());
            run.zsets_seen.push(r.zset.clone());
        }
    }
    run
}

fn step(run: &mut Run, op: &Op) {
    let (rs, ex) = (&mut run.replicas, &mut run.expected);
    match *op {
        Op::Incr(i, d) => {
            let dot = rs[i].next_dot();
            let actor = rs[i].count.actor_for(&rs[i].node, rs[i].floor, &dot);
            rs[i].count.apply(&actor, d).expect("small deltas");
            ex.total += d;
        }
        Op::Add(i, e) => {
            // The new add supersedes the element's adds seen here.
            ex.dead.extend(rs[i].set.dots_of(&[e]));
            let dot = rs[i].next_dot();
            rs[i].set.add(&dot, &[vec![e]]).expect("a fresh dot");
            ex.adds.push((e, dot));
        }
        Op::Remove(i, e) => {
            // The remove observes the element's adds this replica holds.
            ex.dead.extend(rs[i].set.dots_of(&[e]));
            if rs[i].set.remove(&[e]) {
                // Its write's dot joins the context, as the node's does.
                let dot = rs[i].next_dot();
                rs[i].set.witness(&dot).expect("a fresh dot");
            }
        }
        Op::Push(i, head) => {
            let id = ex.pushed.len() as u32;
            ex.pushed.insert(id);
            let dot = rs[i].next_dot();
            let end = if head { End::Head } else { End::Tail };
            rs[i]
                .list
                .push(&dot, end, &[id.to_be_bytes().to_vec()])
                .expect("a fresh dot");
        }
        Op::Pop(i, head) => {
            let end = if head { End::Head } else { End::Tail };
            let taken = rs[i].list.pop(end, 1);
            if !taken.is_empty() {
                let dot = rs[i].next_dot();
                rs[i].list.witness(&dot).expect("a fresh dot");
            }
            ex.popped.extend(taken.iter().map(|b| id_of(b)));
        }
        Op::Score(i, m, score) => {
            let dot = rs[i].next_dot();
            let now = dot.counter;
            rs[i]
                .zset
                .add(&dot, now, &[(f64::from(score), vec![m])])
                .expect("a fresh dot");
        }
        Op::Unscore(i, m) => {
            if rs[i].zset.remove(&[m]) {
                let dot = rs[i].next_dot();
                rs[i].zset.witness(&dot).expect("a fresh dot");
            }
        }
        Op::Sync(i, j) => {
            let (count, set) = (rs[j].count.clone(), rs[j].set.clone());
            let (list, zset) = (rs[j].list.clone(), rs[j].zset.clone());
            rs[i].count.merge(&count);
            rs[i].set.merge(&set);
            rs[i].list.merge(&list);
            rs[i].zset.merge(&zset);
        }
        Op::Forget(i) => {
            let (next, after) = ((i + 1) % REPLICAS, (i + 2) % REPLICAS);
            let (count, set) = (rs[i].count.clone(), rs[i].set.clone());
            let (list, zset) = (rs[i].list.clone(), rs[i].zset.clone());
            rs[next].count.merge(&count);
            rs[next].set.merge(&set);
            rs[next].list.merge(&list);
            rs[next].zset.merge(&zset);
            rs[i].count = rs[after].count.clone();
            rs[i].set = rs[after].set.clone();
            rs[i].list = rs[after].list.clone();
            rs[i].zset = rs[after].zset.clone();
            rs[i].floor = rs[i].counter + 1_000;
        }
    }
}

fn id_of(element: &[u8]) -> u32 {
    u32::from_be_bytes(element.try_into().expect("4-byte ids"))
}

/// Everything merged into one state.
fn converged(run: &Run) -> (PnCounter, OrSet) {
    let mut count = PnCounter::new();
    let mut set = OrSet::new();
    for r in &run.replicas {
        count.merge(&r.count);
        set.merge(&r.set);
    }
    (count, set)
}

fn merged<T: Clone>(a: &T, b: &T, merge: fn(&mut T, &T)) -> T {
    let mut out = a.clone();
    merge(&mut out, b);
    out
}

fn join_laws<T: Clone + PartialEq + std::fmt::Debug>(states: &[T], merge: fn(&mut T, &T)) {
    let n = states.len();
    for (k, a) in states.iter().enumerate() {
        let b = &states[(k * 7 + 3) % n];
        let c = &states[(k * 13 + 5) % n];
        assert_eq!(merged(a, b, merge), merged(b, a, merge), "commutative");
        assert_eq!(merged(a, a, merge), *a, "idempotent");
        let left = merged(&merged(a, b, merge), c, merge);
        let right = merged(a, &merged(b, c, merge), merge);
        assert_eq!(left, right, "associative");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn merges_are_joins(ops in prop::collection::vec(op(), 1..60)) {
        let run = run(&ops);
        join_laws(&run.counters_seen, PnCounter::merge);
        join_laws(&run.sets_seen, OrSet::merge);
        join_laws(&run.lists_seen, OrList::merge);
        join_laws(&run.zsets_seen, OrZSet::merge);
    }

    #[test]
    fn every_increment_counts_once_and_every_unobserved_add_survives(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let run = run(&ops);
        let (count, set) = converged(&run);
        prop_assert_eq!(count.value(), run.expected.total);
        let want: BTreeSet<u8> = run
            .expected
            .adds
            .iter()
            .filter(|(_, dot)| !run.expected.dead.contains(dot))
            .map(|(e, _)| *e)
            .collect();
        let have: BTreeSet<u8> = set.iter().map(|m| m[0]).collect();
        prop_assert_eq!(have, want);

        // Every pushed element is there unless a pop took it, once.
        let mut list = OrList::new();
        for r in &run.replicas {
            list.merge(&r.list);
        }
        let ids: Vec<u32> = list.ordered().into_iter().map(id_of).collect();
        let distinct: BTreeSet<u32> = ids.iter().copied().collect();
        prop_assert_eq!(distinct.len(), ids.len(), "an element twice");
        let want: BTreeSet<u32> = run.expected.pushed.difference(&run.expected.popped).copied().collect();
        prop_assert_eq!(distinct, want);
    }
}
