//! Conflict-free replicated data types for the Redis keyspace: a key holds
//! a string, a [`PnCounter`] or an [`OrSet`] ([`Value`]), stored as the
//! value of an ordinary sibling, so replication, hints, read repair,
//! handoff and anti-entropy carry them unchanged.
//!
//! Concurrent siblings of a key are resolved by [`resolve`]: the
//! last-write-wins winner (greatest `(timestamp, dot)`, as for strings)
//! decides the key's *type*, and every sibling of that type is merged by
//! its CRDT join — so concurrent `INCR`s and `SADD`s through different
//! nodes all count, while a `SET` or `DEL` concurrent with them behaves as
//! any two concurrent Redis writes (the later wins). Riak's data types
//! work the same way: the CRDT state is a riak_object value, and siblings
//! are merged by the type's merge.
//!
//! An update ([`Update`]) is applied by one coordinator to everything it
//! knows of the key (an R read plus its own copy), as a new version
//! covering all of it ([`apply`]).

mod counter;
mod dots;
mod map;
mod orset;
mod value;

pub use counter::{Actor, PnCounter};
pub use map::{Field, FieldValue, OrMap};
pub use orset::OrSet;
pub use value::{apply, parse_integer, resolve, Applied, Stamp, Update, Value, Writer};

use crate::version::Dot;
use serde::{Deserialize, Serialize};

/// Why an update was refused; each is the Redis error line's text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CrdtError {
    #[error("increment or decrement would overflow")]
    Overflow,
    #[error("value is not an integer or out of range")]
    NotInteger,
    #[error("hash value is not an integer")]
    HashNotInteger,
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// A coordinator minted a dot the state has seen: a bug, refused
    /// rather than merged into a state that would break "one dot, one
    /// value".
    #[error("internal error: dot {0:?} was issued twice")]
    StaleDot(Dot),
    #[error("the key's value cannot be decoded: {0}")]
    Corrupt(String),
}
