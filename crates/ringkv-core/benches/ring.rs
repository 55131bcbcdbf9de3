//! `cargo bench -p ringkv-core --bench ring`: the cost of placing a key.
//!
//! Every client request, forward and replication decision starts with
//! [`Ring::preference_list`] (and so [`Ring::key_token`]), on the
//! coordinator and in partition-aware clients alike: it is on the path of
//! every single request.

use divan::{black_box, Bencher};
use ringkv_core::ring::{Ring, RingMember, DEFAULT_VNODES_PER_NODE};

mod support;

use support::{keys, node};

fn main() {
    divan::main();
}

/// Replicas per key, the default N.
const N: usize = 3;

/// Distinct keys cycled through, so lookups do not all hit one warm path.
const KEYS: usize = 1024;

/// A zoneless ring of `nodes` members with the default 128 vnodes each.
fn ring(nodes: usize) -> Ring {
    let members = (0..nodes).map(|i| RingMember::new(node(i)));
    Ring::with_members(members, DEFAULT_VNODES_PER_NODE)
}

/// One preference-list lookup (hash, vnode search, distinct-node walk and
/// the returned `Vec<NodeId>`), N = 3, by ring size.
#[divan::bench(args = [3, 16, 64])]
fn preference_list(bencher: Bencher, nodes: usize) {
    let ring = ring(nodes);
    let keys = keys(KEYS);
    let mut next = keys.iter().cycle();
    bencher.bench_local(|| ring.preference_list(black_box(next.next().expect("cycle")), N));
}

/// The key's position on the circle alone (xxh3 of a 16-byte key).
#[divan::bench]
fn key_token(bencher: Bencher) {
    let keys = keys(KEYS);
    let mut next = keys.iter().cycle();
    bencher.bench_local(|| Ring::key_token(black_box(next.next().expect("cycle"))));
}
