//! A Redis key's value ([`Value`]) as stored in a sibling, how concurrent
//! siblings resolve to one ([`resolve`]), and how an update changes it
//! ([`apply`]).

use super::map::{Field, FieldValue, OrMap};
use super::{Actor, CrdtError, OrSet, PnCounter};
use crate::keyspace::lww_winner;
use crate::siblings::SiblingSet;
use crate::version::Dot;
use crate::{Millis, NodeId};
use serde::{Deserialize, Serialize};

const TAG_STRING: u8 = 0;
const TAG_COUNTER: u8 = 1;
const TAG_SET: u8 = 2;
const TAG_HASH: u8 = 3;

/// What a Redis key holds. Stored as one tag byte and the payload: the
/// string's bytes, or the postcard encoding of the CRDT state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    String(Vec<u8>),
    Counter(PnCounter),
    Set(OrSet),
    Hash(OrMap),
}

/// The version a resolved value comes from: its `(timestamp, dot)`.
pub type Stamp = (Millis, Dot);

impl Value {
    pub fn encode(&self) -> Vec<u8> {
        let (tag, body) = match self {
            Value::String(bytes) => return [&[TAG_STRING][..], bytes].concat(),
            Value::Counter(c) => (TAG_COUNTER, postcard::to_stdvec(c)),
            Value::Set(s) => (TAG_SET, postcard::to_stdvec(s)),
            Value::Hash(h) => (TAG_HASH, postcard::to_stdvec(h)),
        };
        // Encoding maps and integers into a Vec cannot fail.
        let body = body.expect("postcard encodes CRDT states");
        [&[tag][..], &body].concat()
    }

    pub fn decode(bytes: &[u8]) -> Result<Value, CrdtError> {
        let corrupt = |e: postcard::Error| CrdtError::Corrupt(e.to_string());
        match bytes.split_first() {
            Some((&TAG_STRING, body)) => Ok(Value::String(body.to_vec())),
            Some((&TAG_COUNTER, body)) => postcard::from_bytes(body)
                .map(Value::Counter)
                .map_err(corrupt),
            Some((&TAG_SET, body)) => postcard::from_bytes(body).map(Value::Set).map_err(corrupt),
            Some((&TAG_HASH, body)) => postcard::from_bytes(body).map(Value::Hash).map_err(corrupt),
            Some((tag, _)) => Err(CrdtError::Corrupt(format!("unknown type tag {tag}"))),
            None => Err(CrdtError::Corrupt("empty value".into())),
        }
    }

    /// The name Redis's `TYPE` answers (a counter is a string there).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) | Value::Counter(_) => "string",
            Value::Set(_) => "set",
            Value::Hash(_) => "hash",
        }
    }

    /// A set emptied by removes or `DEL` is kept for its causal context
    /// (what it removed), but to Redis the key does not exist.
    pub fn exists(&self) -> bool {
        match self {
            Value::Set(s) => !s.is_empty(),
            Value::Hash(h) => !h.is_empty(),
            Value::String(_) | Value::Counter(_) => true,
        }
    }

    /// The bytes `GET` answers: a string's, or a counter's decimal value.
    pub fn as_string(&self) -> Result<Vec<u8>, CrdtError> {
        match self {
            Value::String(bytes) => Ok(bytes.clone()),
            Value::Counter(c) => Ok(c.value().to_string().into_bytes()),
            Value::Set(_) | Value::Hash(_) => Err(CrdtError::WrongType),
        }
    }

    /// Join `other` into this value when both are the same CRDT; false
    /// (nothing done) otherwise.
    fn join(&mut self, other: &Value) -> bool {
        match (self, other) {
            (Value::Counter(a), Value::Counter(b)) => a.merge(b),
            (Value::Set(a), Value::Set(b)) => a.merge(b),
            (Value::Hash(a), Value::Hash(b)) => a.merge(b),
            _ => return false,
        }
        true
    }
}

/// The value of a key's siblings: the last-write-wins winner decides the
/// type (a tombstone winner: no value); when that is a CRDT, every live
/// sibling of the same type is joined into it. The same on every replica
/// for the same siblings, whatever their order.
pub fn resolve(set: &SiblingSet) -> Result<Option<(Value, Stamp)>, CrdtError> {
    let Some(winner) = lww_winner(set) else {
        return Ok(None);
    };
    let Some(bytes) = &winner.value else {
        return Ok(None);
    };
    let mut value = Value::decode(bytes)?;
    for sibling in set.live().filter(|s| s.dot != winner.dot) {
        let other = Value::decode(sibling.value.as_deref().unwrap_or_default())?;
        value.join(&other);
    }
    Ok(Some((value, (winner.timestamp, winner.dot.clone()))))
}

/// A change a coordinator makes to a key's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// `INCRBY`/`DECRBY`/`INCR`/`DECR`: the reply is the new value.
    IncrBy(i64),
    /// `SADD`: the reply is how many were not members.
    SAdd(Vec<Vec<u8>>),
    /// `SREM`: the reply is how many were members.
    SRem(Vec<Vec<u8>>),
    /// `HSET`: the reply is how many fields were new.
    HSet(Vec<(Vec<u8>, Vec<u8>)>),
    /// `HDEL`: the reply is how many fields were present.
    HDel(Vec<Vec<u8>>),
    /// `HINCRBY`: the field as a PN-counter; the reply is its new value.
    HIncrBy(Vec<u8>, i64),
    /// `DEL`: a set's observed members are removed (a concurrent `SADD`
    /// survives); a string or counter gets a tombstone. The reply is 1
    /// when the key existed.
    Del,
}

impl Update {
    /// False for an update that must not be applied twice: a forward of it
    /// is never hedged or retried once sent (see the node's forwarding).
    pub fn is_idempotent(&self) -> bool {
        !matches!(self, Update::IncrBy(_) | Update::HIncrBy(..))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Update::IncrBy(_) => "incrby",
            Update::SAdd(_) => "sadd",
            Update::SRem(_) => "srem",
            Update::HSet(_) => "hset",
            Update::HDel(_) => "hdel",
            Update::HIncrBy(..) => "hincrby",
            Update::Del => "del",
        }
    }

    /// Bytes of payload the update carries, for the value size limit.
    pub fn size(&self) -> usize {
        match self {
            Update::SAdd(elems) | Update::SRem(elems) => elems.iter().map(Vec::len).sum(),
            Update::HDel(fields) => fields.iter().map(Vec::len).sum(),
            Update::HSet(pairs) => pairs.iter().map(|(f, v)| f.len() + v.len()).sum(),
            Update::HIncrBy(field, _) => field.len(),
            Update::IncrBy(_) | Update::Del => 0,
        }
    }
}

/// What applying an update gives: the reply, and what to write — `None`
/// when nothing changed, `Some(None)` for a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub reply: i64,
    pub write: Option<Option<Value>>,
}

/// The coordinator that mints `dot` for its write.
pub struct Writer<'a> {
    pub node: &'a NodeId,
    /// The node's dot floor (see [`PnCounter::actor_for`]).
    pub floor: u64,
    /// The write's timestamp (a hash field's last-write-wins clock).
    pub now: Millis,
    pub dot: &'a Dot,
}

/// Apply `update` to the resolved `current` value as `writer`.
pub fn apply(
    current: Option<(Value, Stamp)>,
    update: &Update,
    writer: &Writer,
) -> Result<Applied, CrdtError> {
    let current = current.filter(|(v, _)| v.exists());
    match update {
        Update::IncrBy(delta) => incr(current, *delta, writer),
        Update::SAdd(elems) => {
            let mut set = match current {
                None => OrSet::new(),
                Some((Value::Set(s), _)) => s,
                Some(_) => return Err(CrdtError::WrongType),
            };
            let added = set.add(writer.dot, elems)?;
            Ok(changed(added, Some(Value::Set(set))))
        }
        Update::SRem(elems) => match current {
            None => Ok(unchanged(0)),
            Some((Value::Set(mut set), _)) => {
                let removed = elems.iter().filter(|e| set.remove(e)).count();
                match removed {
                    0 => Ok(unchanged(0)),
                    n => Ok(changed(n, Some(Value::Set(set)))),
                }
            }
            Some(_) => Err(CrdtError::WrongType),
        },
        Update::HSet(_) | Update::HDel(_) | Update::HIncrBy(..) => hash(current, update, writer),
        Update::Del => match current {
            None => Ok(unchanged(0)),
            Some((Value::Set(mut set), _)) => {
                set.clear();
                Ok(changed(1, Some(Value::Set(set))))
            }
            Some((Value::Hash(mut hash), _)) => {
                hash.clear();
                Ok(changed(1, Some(Value::Hash(hash))))
            }
            Some(_) => Ok(changed(1, None)),
        },
    }
}

fn incr(
    current: Option<(Value, Stamp)>,
    delta: i64,
    writer: &Writer,
) -> Result<Applied, CrdtError> {
    let mut counter = match current {
        None => PnCounter::new(),
        Some((Value::Counter(c), _)) => c,
        Some((Value::String(s), (timestamp, dot))) => {
            PnCounter::from_string(timestamp, dot, parse_integer(&s)?)
        }
        Some((Value::Set(_) | Value::Hash(_), _)) => return Err(CrdtError::WrongType),
    };
    let actor: Actor = counter.actor_for(writer.node, writer.floor, writer.dot);
    let value = counter.apply(&actor, delta)?;
    Ok(Applied {
        reply: value,
        write: Some(Some(Value::Counter(counter))),
    })
}

/// A hash update: `HSET`, `HDEL`, `HINCRBY`.
fn hash(
    current: Option<(Value, Stamp)>,
    update: &Update,
    writer: &Writer,
) -> Result<Applied, CrdtError> {
    let mut hash = match current {
        None => OrMap::new(),
        Some((Value::Hash(h), _)) => h,
        Some(_) => return Err(CrdtError::WrongType),
    };
    match update {
        Update::HSet(pairs) => {
            let writes = pairs
                .iter()
                .map(|(f, v)| (f.clone(), FieldValue::Bytes(writer.now, v.clone())))
                .collect();
            let added = hash.put(writer.dot, writes)?;
            Ok(changed(added, Some(Value::Hash(hash))))
        }
        Update::HDel(fields) => {
            let removed = fields.iter().filter(|f| hash.remove(f)).count();
            match removed {
                0 => Ok(unchanged(0)),
                n => Ok(changed(n, Some(Value::Hash(hash)))),
            }
        }
        Update::HIncrBy(field, delta) => {
            let mut counter = match hash.get(field) {
                None => PnCounter::new(),
                Some((Field::Counter(c), _, _)) => c,
                Some((Field::Bytes(b), timestamp, dot)) => PnCounter::from_string(
                    timestamp,
                    dot,
                    parse_integer(&b).map_err(|_| CrdtError::HashNotInteger)?,
                ),
            };
            let actor = counter.actor_for(writer.node, writer.floor, writer.dot);
            let value = counter.apply(&actor, *delta)?;
            let writes = vec![(field.clone(), FieldValue::Counter(writer.now, counter))];
            hash.put(writer.dot, writes)?;
            Ok(Applied {
                reply: value,
                write: Some(Some(Value::Hash(hash))),
            })
        }
        _ => unreachable!("hash() takes hash updates only"),
    }
}

fn changed(reply: usize, value: Option<Value>) -> Applied {
    Applied {
        reply: reply as i64,
        write: Some(value),
    }
}

fn unchanged(reply: i64) -> Applied {
    Applied { reply, write: None }
}

/// A string as Redis reads an integer (`string2ll`): an optional `-`, no
/// `+`, no spaces, no leading zeros, within `i64`.
pub fn parse_integer(bytes: &[u8]) -> Result<i64, CrdtError> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let canonical = match digits {
        [] => false,
        [b'0'] => bytes.len() == 1,
        [first, rest @ ..] => (b'1'..=b'9').contains(first) && rest.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return Err(CrdtError::NotInteger);
    }
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(CrdtError::NotInteger)
}
