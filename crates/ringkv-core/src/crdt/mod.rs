//! Conflict-free replicated data types for the Redis keyspace: a key holds
//! a string, a [`PnCounter`], an [`OrSet`], an [`OrMap`] (hash), an
//! [`OrList`] or an [`OrZSet`] ([`Value`]), stored as the
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
mod list;
mod map;
mod orset;
mod value;
mod zset;

pub use counter::{Actor, PnCounter};
pub use list::{index_range, End, OrList, Slot};
pub use map::{Field, FieldValue, OrMap};
pub use orset::OrSet;
pub use value::{
    apply, expiry, parse_integer, resolve, resolve_expiring, Applied, Reply, Stamp, Update, Value,
    Writer,
};
pub use zset::{format_score, parse_score, OrZSet};

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
    /// A list pushed to one end 2^63 times: no positions are left there.
    #[error("the list has no positions left at that end")]
    ListEnd,
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
