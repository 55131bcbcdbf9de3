//! `cargo bench -p ringkv-core --bench versions`: version-vector algebra.
//!
//! Every write (`SiblingSet::write` reads the set's context), every merge of
//! replica states (`covers` per sibling pair) and every client context goes
//! through these operations; clocks hold one entry per coordinator that ever
//! wrote the key (up to `max_clock_entries`, default 32).

use divan::{black_box, Bencher};

mod support;

use support::clock;

fn main() {
    divan::main();
}

/// `compare` of two equal clocks: the worst case, both `descends` walks run
/// to the end.
#[divan::bench(args = [3, 8, 32])]
fn compare(bencher: Bencher, entries: usize) {
    let (a, b) = (clock(entries, 1), clock(entries, 1));
    bencher.bench_local(|| black_box(&a).compare(black_box(&b)));
}

/// `descends` of a clock over an older one (true: every entry is checked).
#[divan::bench(args = [3, 8, 32])]
fn descends(bencher: Bencher, entries: usize) {
    let (newer, older) = (clock(entries, 2), clock(entries, 1));
    bencher.bench_local(|| black_box(&newer).descends(black_box(&older)));
}

/// `merge` of a newer clock into an older one: every entry is raised. The
/// clone of the older clock is made outside the timing.
#[divan::bench(args = [3, 8, 32])]
fn merge(bencher: Bencher, entries: usize) {
    let (older, newer) = (clock(entries, 1), clock(entries, 2));
    bencher
        .with_inputs(|| older.clone())
        .bench_local_values(|mut merged| {
            merged.merge(black_box(&newer));
            merged
        });
}
