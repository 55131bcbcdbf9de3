//! `cargo bench -p ringkv-core --bench anti_entropy`: what anti-entropy
//! costs. Prints the Merkle-tree update cost per write, and the time and
//! bytes of a full exchange between two replicas of 1M keys (0.01% differ).
//! Figures, not assertions: speed targets live here, never in tests.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{id, MemoryStore, Net};
use ringkv_core::merkle::MerkleTree;
use ringkv_core::range::TokenRange;
use ringkv_core::settings::Settings;
use ringkv_core::siblings::{SiblingSet, WriteLimits};
use ringkv_core::store::Store;
use ringkv_core::version::CausalContext;
use std::hint::black_box;
use std::time::Instant;

const LIMITS: WriteLimits = WriteLimits {
    max_siblings: 8,
    max_clock_entries: 8,
    young_clock_ms: 20_000,
    min_counter: 0,
};

fn version(value: &[u8], at: u64) -> SiblingSet {
    let mut set = SiblingSet::new();
    set.write(
        &id("n1"),
        &CausalContext::new(),
        Some(value.to_vec()),
        at,
        LIMITS,
    )
    .expect("write");
    set
}

fn tree_update_per_write() {
    let mut tree = MerkleTree::new(TokenRange::new(0, 0), 8);
    let (old, new) = (version(&[1; 100], 1), version(&[2; 100], 2));
    let writes = 1_000_000u32;
    let start = Instant::now();
    for i in 0..writes {
        tree.update(&i.to_le_bytes(), &old, &new);
    }
    black_box(tree.root());
    let per = start.elapsed().as_nanos() as f64 / writes as f64;
    println!("merkle update per write (100-byte value, old and new version hashed): {per:.0} ns");
}

fn full_exchange(keys: usize, differing: usize) {
    let value = [7u8; 100];
    let build = |node: &str| {
        let mut store = MemoryStore::default();
        for i in 0..keys {
            let changed = node == "n2" && i % (keys / differing) == 0;
            let set = version(if changed { b"changed" } else { &value }, 1);
            store
                .put(format!("key:{i:08}").as_bytes(), &set)
                .expect("put");
        }
        store
    };
    let mut settings = Settings {
        n: 2,
        r: 1,
        w: 1,
        ..Settings::default()
    };
    settings.anti_entropy.enabled = false;
    let start = Instant::now();
    let mut net = Net::build(&["n1", "n2"], settings, build);
    println!(
        "built 2 replicas of {keys} keys and their trees in {:.2?}",
        start.elapsed()
    );
    let start = Instant::now();
    net.node("n1").start_repair(None);
    while !net
        .node("n1")
        .repair_progress()
        .is_some_and(|p| p.finished())
    {
        net.advance(10);
    }
    let elapsed = start.elapsed();
    let total = |f: fn(&ringkv_core::anti_entropy::AeStats) -> u64| -> u64 {
        net.nodes.values().map(|n| f(n.anti_entropy_stats())).sum()
    };
    let bytes = total(|s| s.bytes_sent);
    println!(
        "full exchange, {keys} keys, {differing} differing: {elapsed:.2?}, {} exchanges, {} differing leaves, {} keys repaired, {bytes} bytes ({:.2} bytes per key of the range)",
        total(|s| s.exchanges_completed),
        total(|s| s.differing_leaves),
        total(|s| s.keys_repaired),
        bytes as f64 / keys as f64
    );
}

fn main() {
    tree_update_per_write();
    full_exchange(1_000_000, 100);
}
