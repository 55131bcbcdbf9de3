//! YCSB core workloads: which operation comes next, on which key, with
//! which value. One seeded generator, drawn from in send order, so a seed
//! gives the same request sequence on every system.

use super::args::{Distribution, WorkloadKind};
use super::zipfian::{fnv64, ScrambledZipfian, Zipfian};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// The operation types a report is broken down by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Read,
    Update,
    Insert,
    /// Read a key with its causal context (etcd: its revision) and write a
    /// new value back against it.
    ReadModifyWrite,
}

impl OpKind {
    pub const ALL: [OpKind; 4] = [
        OpKind::Read,
        OpKind::Update,
        OpKind::Insert,
        OpKind::ReadModifyWrite,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::ReadModifyWrite => "rmw",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One request to send; `value` is empty for reads.
#[derive(Clone, Debug)]
pub struct Op {
    pub kind: OpKind,
    pub key: String,
    pub value: Vec<u8>,
}

/// YCSB's key name for record `id`: hashed, so loading in id order does
/// not write the keys in sorted order.
pub fn key_name(id: u64) -> String {
    format!("user{}", fnv64(id))
}

/// How likely each operation type is; the rest after read, update and
/// insert is read-modify-write.
#[derive(Clone, Copy, Debug)]
struct Mix {
    read: f64,
    update: f64,
    insert: f64,
}

impl Mix {
    fn of(kind: WorkloadKind) -> Mix {
        let mix = |read, update, insert| Mix {
            read,
            update,
            insert,
        };
        match kind {
            WorkloadKind::Load => mix(0.0, 0.0, 1.0),
            WorkloadKind::A => mix(0.5, 0.5, 0.0),
            WorkloadKind::B => mix(0.95, 0.05, 0.0),
            WorkloadKind::C => mix(1.0, 0.0, 0.0),
            WorkloadKind::D => mix(0.95, 0.0, 0.05),
            WorkloadKind::F => mix(0.5, 0.0, 0.0),
        }
    }

    /// The operation for a uniform `roll` in `[0, 1)`.
    fn pick(&self, roll: f64) -> OpKind {
        let thresholds = [
            (self.read, OpKind::Read),
            (self.update, OpKind::Update),
            (self.insert, OpKind::Insert),
        ];
        let mut below = 0.0;
        for (share, kind) in thresholds {
            below += share;
            if roll < below {
                return kind;
            }
        }
        OpKind::ReadModifyWrite
    }
}

/// How the key of a read, update or read-modify-write is chosen.
#[derive(Clone, Debug)]
enum Chooser {
    /// Over the loaded records only (as YCSB's, whose scramble is fixed).
    Zipfian(ScrambledZipfian),
    /// Over every key, inserted ones included.
    Uniform,
    /// The newest keys hottest: newest minus a zipfian draw.
    Latest(Zipfian),
}

pub struct Workload {
    mix: Mix,
    chooser: Chooser,
    rng: ChaCha8Rng,
    /// Keys `0..keys` exist (or were sent to be inserted).
    keys: u64,
    value_size: usize,
}

impl Workload {
    /// `load` inserts ids from 0; the others choose among `records` ids
    /// and insert from `records` on.
    pub fn new(
        kind: WorkloadKind,
        distribution: Option<Distribution>,
        records: u64,
        value_size: usize,
        seed: u64,
    ) -> Workload {
        let default = match kind {
            WorkloadKind::D => Distribution::Latest,
            _ => Distribution::Zipfian,
        };
        let chooser = match distribution.unwrap_or(default) {
            Distribution::Zipfian => Chooser::Zipfian(ScrambledZipfian::new(records)),
            Distribution::Uniform => Chooser::Uniform,
            Distribution::Latest => Chooser::Latest(Zipfian::new(records)),
        };
        Workload {
            mix: Mix::of(kind),
            chooser,
            rng: ChaCha8Rng::seed_from_u64(seed),
            keys: if kind == WorkloadKind::Load {
                0
            } else {
                records
            },
            value_size,
        }
    }

    pub fn next_op(&mut self) -> Op {
        let kind = self.mix.pick(self.rng.random());
        let id = match kind {
            OpKind::Insert => {
                self.keys += 1;
                self.keys - 1
            }
            _ => self.choose(),
        };
        let value = match kind {
            OpKind::Read => Vec::new(),
            _ => self.value(),
        };
        Op {
            kind,
            key: key_name(id),
            value,
        }
    }

    fn choose(&mut self) -> u64 {
        let u = self.rng.random();
        match &mut self.chooser {
            Chooser::Zipfian(zipf) => zipf.next(u),
            Chooser::Uniform => self.rng.random_range(0..self.keys),
            Chooser::Latest(zipf) => self.keys - 1 - zipf.next(self.keys, u),
        }
    }

    /// Printable random bytes, so values neither compress away nor repeat.
    fn value(&mut self) -> Vec<u8> {
        (0..self.value_size)
            .map(|_| self.rng.random_range(b'!'..=b'~'))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ops(kind: WorkloadKind, distribution: Option<Distribution>, n: usize) -> Vec<Op> {
        let mut workload = Workload::new(kind, distribution, 1000, 10, 3);
        (0..n).map(|_| workload.next_op()).collect()
    }

    fn share(ops: &[Op], kind: OpKind) -> f64 {
        ops.iter().filter(|op| op.kind == kind).count() as f64 / ops.len() as f64
    }

    #[test]
    fn load_inserts_every_record_once_in_id_order() {
        let ops = ops(WorkloadKind::Load, None, 1000);
        let keys: Vec<String> = (0..1000).map(key_name).collect();
        assert!(ops.iter().all(|op| op.kind == OpKind::Insert));
        assert_eq!(
            ops.iter().map(|op| &op.key).collect::<Vec<_>>(),
            keys.iter().collect::<Vec<_>>()
        );
        assert!(ops.iter().all(|op| op.value.len() == 10));
    }

    #[test]
    fn mixes_follow_ycsb() {
        let a = ops(WorkloadKind::A, None, 10_000);
        assert!((share(&a, OpKind::Read) - 0.5).abs() < 0.03);
        assert!((share(&a, OpKind::Update) - 0.5).abs() < 0.03);
        let f = ops(WorkloadKind::F, None, 10_000);
        assert!((share(&f, OpKind::ReadModifyWrite) - 0.5).abs() < 0.03);
        assert_eq!(share(&ops(WorkloadKind::C, None, 1000), OpKind::Read), 1.0);
        let d = ops(WorkloadKind::D, None, 10_000);
        assert!((share(&d, OpKind::Insert) - 0.05).abs() < 0.01);
        assert!(a
            .iter()
            .filter(|op| op.kind == OpKind::Read)
            .all(|op| op.value.is_empty()));
    }

    #[test]
    fn latest_reads_the_newest_keys_uniform_spreads() {
        let newest: Vec<String> = (990..1000).map(key_name).collect();
        let reads = ops(WorkloadKind::C, Some(Distribution::Latest), 10_000);
        let hits = reads.iter().filter(|op| newest.contains(&op.key)).count();
        assert!(hits > 3000, "{hits} of 10000 reads hit the 10 newest keys");

        let uniform = ops(WorkloadKind::C, Some(Distribution::Uniform), 10_000);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for op in &uniform {
            *counts.entry(&op.key).or_default() += 1;
        }
        assert!(counts.len() > 990, "{} distinct keys", counts.len());
        assert!(counts.values().all(|&c| c < 40));
    }
}
