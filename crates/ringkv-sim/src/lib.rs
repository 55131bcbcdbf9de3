//! ringkv-sim: a seeded, replayable simulation of a whole ringkv cluster and
//! a checker of what ringkv promises under faults.
//!
//! The simulator drives the very `Node` state machines and storage engine
//! the server runs, over a network that drops, duplicates, delays and
//! reorders messages, with partitions, crashes and clock skew — all from one
//! seed, in virtual time, so a failing seed replays step for step
//! (`ringkv sim --seed S`).

pub mod checker;
pub mod disk;
pub mod history;
pub mod membership;
pub mod network;
pub mod sim;
pub mod workload;

pub use checker::{check, check_with, check_with_intersecting_quorums, Promises, Verdict};
pub use history::{FinalState, History, Read, Update, UpdateOutcome, Write, WriteOutcome};
pub use membership::MembershipChange;
pub use sim::{run, SimConfig, SimReport};
