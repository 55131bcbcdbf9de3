//! `cargo bench -p ringkv-core --bench siblings`: sibling-set rules.
//!
//! `SiblingSet::merge` runs on every replica for every replicated write,
//! read repair, hint delivery and anti-entropy key; `SiblingSet::write` on
//! the coordinator for every client PUT and DELETE. Sibling counts are small
//! normally and grow under concurrent blind writes (limit 64).

use divan::{black_box, Bencher};
use ringkv_core::siblings::SiblingSet;
use ringkv_core::version::CausalContext;

mod support;

use support::{siblings, write};

fn main() {
    divan::main();
}

/// Merge a replica's state into an identical one (the common case: a
/// replicate or repair the replica already has). Nothing changes.
#[divan::bench(args = [1, 4, 16])]
fn merge_equal(bencher: Bencher, count: usize) {
    let mine = siblings(count);
    bench_merge(bencher, &mine, &mine.clone());
}

/// Merge two replicas of `count` siblings that each took one more blind
/// write the other lacks: the result holds `count + 2` siblings.
#[divan::bench(args = [1, 4, 16])]
fn merge_diverged(bencher: Bencher, count: usize) {
    let (mut mine, mut theirs) = (siblings(count), siblings(count));
    write(&mut mine, 5, &CausalContext::new());
    write(&mut theirs, 6, &CausalContext::new());
    assert_eq!(merged(&mine, &theirs).len(), count + 2);
    bench_merge(bencher, &mine, &theirs);
}

fn merged(mine: &SiblingSet, theirs: &SiblingSet) -> SiblingSet {
    let mut merged = mine.clone();
    merged.merge(theirs);
    merged
}

/// Times `mine.merge(theirs)` on a fresh clone of `mine` each iteration
/// (cloned outside the timing).
fn bench_merge(bencher: Bencher, mine: &SiblingSet, theirs: &SiblingSet) {
    bencher
        .with_inputs(|| mine.clone())
        .bench_local_values(|mut merged| {
            black_box(merged.merge(black_box(theirs)));
            merged
        });
}

/// A coordinator write of a 100-byte value with the context of a read of
/// `count` siblings: it resolves them all into one version.
#[divan::bench(args = [1, 4, 16])]
fn write_with_context(bencher: Bencher, count: usize) {
    let stored = siblings(count);
    let context = stored.context();
    bencher
        .with_inputs(|| stored.clone())
        .bench_local_values(|mut set| {
            write(&mut set, 0, black_box(&context));
            set
        });
}
