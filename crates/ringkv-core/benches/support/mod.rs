//! Fixtures shared by the divan micro-benchmarks of ringkv-core and
//! ringkv-store (which includes this file by path): keys, realistic clocks
//! and sibling sets, built through the public API the node itself uses.

#![allow(dead_code)] // each bench uses a different part

use ringkv_core::siblings::{SiblingSet, WriteLimits};
use ringkv_core::version::{CausalContext, Dot};
use ringkv_core::NodeId;

/// The size of a typical small value.
pub const VALUE_BYTES: usize = 100;

/// Generous limits, so no fixture is ever refused or pruned.
pub const LIMITS: WriteLimits = WriteLimits {
    max_siblings: 64,
    max_clock_entries: 64,
    young_clock_ms: 20_000,
    min_counter: 0,
};

/// `count` 16-byte keys (`key:000000000042`).
pub fn keys(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect()
}

/// Node `n{i}`.
pub fn node(i: usize) -> NodeId {
    NodeId::new(format!("n{i}"))
}

/// A version vector with `entries` nodes, node `n{i}` at counter
/// `base + i`, so two clocks of different `base` differ in every entry.
pub fn clock(entries: usize, base: u64) -> CausalContext {
    let mut vv = CausalContext::new();
    for i in 0..entries {
        let counter = base + i as u64;
        vv.add(&Dot::new(node(i), counter), counter);
    }
    vv
}

/// `count` concurrent siblings of one key with 100-byte values, as left by
/// `count` blind writes spread over three coordinators after a common
/// ancestor (so every sibling carries a three-entry context).
pub fn siblings(count: usize) -> SiblingSet {
    let ancestor = clock(3, 1);
    let mut set = SiblingSet::new();
    for i in 0..count {
        write(&mut set, i % 3, &ancestor);
    }
    set
}

/// Coordinate one write of a 100-byte value on node `n{coordinator}`.
pub fn write(set: &mut SiblingSet, coordinator: usize, context: &CausalContext) {
    let value = Some(vec![7; VALUE_BYTES]);
    set.write(&node(coordinator), context, value, 1_000, LIMITS)
        .expect("write within limits");
}
