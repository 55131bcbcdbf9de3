//! A Redis key's value ([`Value`]) as stored in a sibling, how concurrent
//! siblings resolve to one ([`resolve`]), and how an update changes it
//! ([`apply`]).

use super::list::{End, OrList};
use super::map::{Field, FieldValue, OrMap};
use super::zset::OrZSet;
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
const TAG_LIST: u8 = 4;
const TAG_ZSET: u8 = 5;

/// What a Redis key holds. Stored as one tag byte and the payload: the
/// string's bytes, or the postcard encoding of the CRDT state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    String(Vec<u8>),
    Counter(PnCounter),
    Set(OrSet),
    Hash(OrMap),
    List(OrList),
    ZSet(OrZSet),
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
            Value::List(l) => (TAG_LIST, postcard::to_stdvec(l)),
            Value::ZSet(z) => (TAG_ZSET, postcard::to_stdvec(z)),
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
            Some((&TAG_LIST, body)) => postcard::from_bytes(body).map(Value::List).map_err(corrupt),
            Some((&TAG_ZSET, body)) => postcard::from_bytes(body).map(Value::ZSet).map_err(corrupt),
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
            Value::List(_) => "list",
            Value::ZSet(_) => "zset",
        }
    }

    /// A set emptied by removes or `DEL` is kept for its causal context
    /// (what it removed), but to Redis the key does not exist.
    pub fn exists(&self) -> bool {
        match self {
            Value::Set(s) => !s.is_empty(),
            Value::Hash(h) => !h.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::ZSet(z) => !z.is_empty(),
            Value::String(_) | Value::Counter(_) => true,
        }
    }

    /// The bytes `GET` answers: a string's, or a counter's decimal value.
    pub fn as_string(&self) -> Result<Vec<u8>, CrdtError> {
        match self {
            Value::String(bytes) => Ok(bytes.clone()),
            Value::Counter(c) => Ok(c.value().to_string().into_bytes()),
            _ => Err(CrdtError::WrongType),
        }
    }

    /// Join `other` into this value when both are the same CRDT; false
    /// (nothing done) otherwise.
    fn join(&mut self, other: &Value) -> bool {
        match (self, other) {
            (Value::Counter(a), Value::Counter(b)) => a.merge(b),
            (Value::Set(a), Value::Set(b)) => a.merge(b),
            (Value::Hash(a), Value::Hash(b)) => a.merge(b),
            (Value::List(a), Value::List(b)) => a.merge(b),
            (Value::ZSet(a), Value::ZSet(b)) => a.merge(b),
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
    Ok(resolve_expiring(set)?.map(|(value, stamp, _)| (value, stamp)))
}

/// [`resolve`], and when that value expires (ms since the Unix epoch;
/// `None`: never). A Redis key's versions expire together, as one key: a
/// string with the version that decides it (the last-write-wins winner,
/// whose `SET` chose its TTL), a CRDT with the *latest* expiry of the
/// versions joined into it — never, if one of them never expires. So an
/// update concurrent with an `EXPIRE` through another node keeps the data
/// alive (the `EXPIRE` may be lost), and one concurrent with a `PERSIST`
/// cannot make the data vanish with the TTL the `PERSIST` removed (a
/// fresh-eyes user lost a counter that way when the winner's TTL decided).
pub fn resolve_expiring(
    set: &SiblingSet,
) -> Result<Option<(Value, Stamp, Option<Millis>)>, CrdtError> {
    let Some(winner) = lww_winner(set) else {
        return Ok(None);
    };
    let Some(bytes) = &winner.value else {
        return Ok(None);
    };
    let mut value = Value::decode(bytes)?;
    let mut expires_at = winner.expires_at;
    for sibling in set.live().filter(|s| s.dot != winner.dot) {
        let other = Value::decode(sibling.value.as_deref().unwrap_or_default())?;
        if value.join(&other) {
            expires_at = expires_at.zip(sibling.expires_at).map(|(a, b)| a.max(b));
        }
    }
    let stamp = (winner.timestamp, winner.dot.clone());
    Ok(Some((value, stamp, expires_at)))
}

/// When the value of `set` expires: see [`resolve_expiring`] (`None` also
/// when it holds nothing, or nothing that decodes).
pub fn expiry(set: &SiblingSet) -> Option<Millis> {
    resolve_expiring(set).ok().flatten()?.2
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
    /// `SPOP`: up to `.0` members chosen by the write's dot (so two
    /// coordinators seldom pick the same), removed; the reply is them.
    SPop(usize),
    /// `LPUSH` (head) / `RPUSH` (tail): the reply is the new length.
    Push(End, Vec<Vec<u8>>),
    /// `LPOP` / `RPOP` of up to `.1` elements: the reply is them.
    Pop(End, usize),
    /// `ZADD`: scores as `f64` bits (never NaN); the reply is how many
    /// members were new.
    ZAdd(Vec<(u64, Vec<u8>)>),
    /// `ZREM`: the reply is how many were members.
    ZRem(Vec<Vec<u8>>),
    /// `ZPOPMIN` (`true`) / `ZPOPMAX` of up to `.1` members: the reply is
    /// each member followed by its score, as text.
    ZPop(bool, usize),
    /// `DEL`: a collection's observed members are removed (a concurrent
    /// add survives); a string or counter gets a tombstone. The reply is 1
    /// when the key existed.
    Del,
    /// `EXPIRE`/`PEXPIRE` (a TTL in ms, above 0) or `PERSIST` (`None`):
    /// the value is written again unchanged, expiring then or never (the
    /// node sets [`crate::siblings::Sibling::expires_at`]). The reply is 1
    /// when the key exists (for `PERSIST`: and had a TTL). Every other
    /// update keeps the TTL the key has, as in Redis.
    Expire(Option<Millis>),
}

/// What an update answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Integer(i64),
    /// What a pop took, in order.
    Elements(Vec<Vec<u8>>),
    /// A pop of a key that holds nothing (Redis answers nil, not `[]`).
    Missing,
}

impl Reply {
    /// The integer, for updates that answer one.
    pub fn integer(&self) -> Option<i64> {
        match self {
            Reply::Integer(n) => Some(*n),
            Reply::Elements(_) | Reply::Missing => None,
        }
    }
}

impl Update {
    /// False for an update that must not be applied twice: a forward of it
    /// is never hedged or retried once sent (see the node's forwarding).
    /// None may be. An increment, push or pop counts twice; an add (`SADD`,
    /// `HSET`, `ZADD`) gets a second dot, which a remove on the other side
    /// of a partition may not observe — the removed member would then come
    /// back, with no client having added it again (the crdt e2e test saw it
    /// once in ~40 runs when adds were hedged); and a removal applied a
    /// second time, later, removes what *that* coordinator observes then:
    /// an add acknowledged in between, which no remove invoked after it
    /// took (simulator seed 9601: an `SREM`'s hedged copy, held while its
    /// node was down, ran after the client's next `SADD` of the member).
    pub fn is_idempotent(&self) -> bool {
        false
    }

    /// True when applying it twice changes the outcome in a way a reader
    /// sees: an increment counts twice, a push pushes twice, a pop pops
    /// two elements. (An add applied twice reads the same.) What a lost
    /// quorum's error warns of.
    pub fn counts_twice(&self) -> bool {
        matches!(
            self,
            Update::IncrBy(_) | Update::HIncrBy(..) | Update::Push(..) | Update::SPop(_)
        ) || self.is_pop()
    }

    /// `LPOP`, `RPOP`, `SPOP`, `ZPOPMIN`, `ZPOPMAX`: the reply is what it
    /// took.
    pub fn is_pop(&self) -> bool {
        matches!(self, Update::Pop(..) | Update::SPop(_) | Update::ZPop(..))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Update::IncrBy(_) => "incrby",
            Update::SAdd(_) => "sadd",
            Update::SRem(_) => "srem",
            Update::HSet(_) => "hset",
            Update::HDel(_) => "hdel",
            Update::HIncrBy(..) => "hincrby",
            Update::SPop(_) => "spop",
            Update::Push(End::Head, _) => "lpush",
            Update::Push(End::Tail, _) => "rpush",
            Update::Pop(End::Head, _) => "lpop",
            Update::Pop(End::Tail, _) => "rpop",
            Update::ZAdd(_) => "zadd",
            Update::ZRem(_) => "zrem",
            Update::ZPop(true, _) => "zpopmin",
            Update::ZPop(false, _) => "zpopmax",
            Update::Del => "del",
            Update::Expire(Some(_)) => "pexpire",
            Update::Expire(None) => "persist",
        }
    }

    /// Bytes of payload the update carries, for the value size limit.
    pub fn size(&self) -> usize {
        match self {
            Update::SAdd(elems) | Update::SRem(elems) | Update::Push(_, elems) => {
                elems.iter().map(Vec::len).sum()
            }
            Update::ZRem(members) => members.iter().map(Vec::len).sum(),
            Update::ZAdd(members) => members.iter().map(|(_, m)| 8 + m.len()).sum(),
            Update::HDel(fields) => fields.iter().map(Vec::len).sum(),
            Update::HSet(pairs) => pairs.iter().map(|(f, v)| f.len() + v.len()).sum(),
            Update::HIncrBy(field, _) => field.len(),
            Update::IncrBy(_)
            | Update::Del
            | Update::Expire(_)
            | Update::SPop(_)
            | Update::Pop(..)
            | Update::ZPop(..) => 0,
        }
    }
}

/// What applying an update gives: the reply, and what to write — `None`
/// when nothing changed, `Some(None)` for a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub reply: Reply,
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
        Update::SAdd(_) | Update::SRem(_) | Update::SPop(_) => set(current, update, writer),
        Update::HSet(_) | Update::HDel(_) | Update::HIncrBy(..) => hash(current, update, writer),
        Update::Push(..) | Update::Pop(..) => list(current, update, writer),
        Update::ZAdd(_) | Update::ZRem(_) | Update::ZPop(..) => zset(current, update, writer),
        Update::Del => del(current, writer),
        Update::Expire(_) => Ok(match current {
            None => unchanged(0),
            Some((value, _)) => changed(1, Some(value)),
        }),
    }
}

/// `DEL`: a collection's observed members removed, a tombstone otherwise.
fn del(current: Option<(Value, Stamp)>, writer: &Writer) -> Result<Applied, CrdtError> {
    let emptied = match current {
        None => return Ok(unchanged(0)),
        Some((Value::String(_) | Value::Counter(_), _)) => return Ok(changed(1, None)),
        Some((Value::Set(mut set), _)) => {
            set.clear();
            set.witness(writer.dot)?;
            Value::Set(set)
        }
        Some((Value::Hash(mut hash), _)) => {
            hash.clear();
            hash.witness(writer.dot)?;
            Value::Hash(hash)
        }
        Some((Value::List(mut list), _)) => {
            list.clear();
            list.witness(writer.dot)?;
            Value::List(list)
        }
        Some((Value::ZSet(mut zset), _)) => {
            zset.clear();
            zset.witness(writer.dot)?;
            Value::ZSet(zset)
        }
    };
    Ok(changed(1, Some(emptied)))
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
        Some(_) => return Err(CrdtError::WrongType),
    };
    let actor: Actor = counter.actor_for(writer.node, writer.floor, writer.dot);
    let value = counter.apply(&actor, delta)?;
    Ok(Applied {
        reply: Reply::Integer(value),
        write: Some(Some(Value::Counter(counter))),
    })
}

/// A set update: `SADD`, `SREM`, `SPOP`.
fn set(
    current: Option<(Value, Stamp)>,
    update: &Update,
    writer: &Writer,
) -> Result<Applied, CrdtError> {
    let mut set = match current {
        None if matches!(update, Update::SAdd(_)) => OrSet::new(),
        None if matches!(update, Update::SPop(_)) => return Ok(missing()),
        None => return Ok(unchanged(0)),
        Some((Value::Set(s), _)) => s,
        Some(_) => return Err(CrdtError::WrongType),
    };
    match update {
        Update::SAdd(elems) => {
            let added = set.add(writer.dot, elems)?;
            Ok(changed(added, Some(Value::Set(set))))
        }
        Update::SRem(elems) => {
            let removed = elems.iter().filter(|e| set.remove(e)).count();
            if removed == 0 {
                return Ok(unchanged(0));
            }
            set.witness(writer.dot)?;
            Ok(changed(removed, Some(Value::Set(set))))
        }
        Update::SPop(count) => {
            let members: Vec<Vec<u8>> = set.iter().map(<[u8]>::to_vec).collect();
            let chosen = choose(&members, *count, writer.dot);
            for member in &chosen {
                set.remove(member);
            }
            set.witness(writer.dot)?;
            Ok(popped(chosen, Some(Value::Set(set))))
        }
        _ => unreachable!("set() takes set updates only"),
    }
}

/// Up to `count` of `members`, starting at a place drawn from `dot` (a
/// cheap hash: two coordinators popping concurrently start at different
/// places, so they seldom take the same member).
fn choose(members: &[Vec<u8>], count: usize, dot: &Dot) -> Vec<Vec<u8>> {
    if members.is_empty() {
        return Vec::new();
    }
    let mut h = dot.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for b in dot.node.as_str().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    let start = (h % members.len() as u64) as usize;
    members
        .iter()
        .cycle()
        .skip(start)
        .take(count.min(members.len()))
        .cloned()
        .collect()
}

/// A list update: `LPUSH`, `RPUSH`, `LPOP`, `RPOP`.
fn list(
    current: Option<(Value, Stamp)>,
    update: &Update,
    writer: &Writer,
) -> Result<Applied, CrdtError> {
    let mut list = match current {
        None if matches!(update, Update::Push(..)) => OrList::new(),
        None => return Ok(missing()),
        Some((Value::List(l), _)) => l,
        Some(_) => return Err(CrdtError::WrongType),
    };
    match update {
        Update::Push(end, elems) => {
            let len = list.push(writer.dot, *end, elems)?;
            Ok(changed(len, Some(Value::List(list))))
        }
        Update::Pop(end, count) => {
            let taken = list.pop(*end, *count);
            list.witness(writer.dot)?;
            Ok(popped(taken, Some(Value::List(list))))
        }
        _ => unreachable!("list() takes list updates only"),
    }
}

/// A sorted-set update: `ZADD`, `ZREM`, `ZPOPMIN`, `ZPOPMAX`.
fn zset(
    current: Option<(Value, Stamp)>,
    update: &Update,
    writer: &Writer,
) -> Result<Applied, CrdtError> {
    let mut zset = match current {
        None if matches!(update, Update::ZAdd(_)) => OrZSet::new(),
        None if matches!(update, Update::ZPop(..)) => return Ok(missing()),
        None => return Ok(unchanged(0)),
        Some((Value::ZSet(z), _)) => z,
        Some(_) => return Err(CrdtError::WrongType),
    };
    match update {
        Update::ZAdd(members) => {
            let scored: Vec<(f64, Vec<u8>)> = members
                .iter()
                .map(|(bits, m)| (f64::from_bits(*bits), m.clone()))
                .collect();
            let added = zset.add(writer.dot, writer.now, &scored)?;
            Ok(changed(added, Some(Value::ZSet(zset))))
        }
        Update::ZRem(members) => {
            let removed = members.iter().filter(|m| zset.remove(m)).count();
            if removed == 0 {
                return Ok(unchanged(0));
            }
            zset.witness(writer.dot)?;
            Ok(changed(removed, Some(Value::ZSet(zset))))
        }
        Update::ZPop(min, count) => {
            let taken = zset.pop(*min, *count);
            zset.witness(writer.dot)?;
            let flat = taken
                .into_iter()
                .flat_map(|(m, score)| [m, super::zset::format_score(score).into_bytes()])
                .collect();
            Ok(popped(flat, Some(Value::ZSet(zset))))
        }
        _ => unreachable!("zset() takes sorted-set updates only"),
    }
}

/// A pop of a key that holds nothing.
fn missing() -> Applied {
    Applied {
        reply: Reply::Missing,
        write: None,
    }
}

/// A pop's reply; nothing written when it took nothing.
fn popped(taken: Vec<Vec<u8>>, value: Option<Value>) -> Applied {
    let write = (!taken.is_empty()).then_some(value);
    Applied {
        reply: Reply::Elements(taken),
        write: write.flatten().map(Some),
    }
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
            if removed == 0 {
                return Ok(unchanged(0));
            }
            hash.witness(writer.dot)?;
            Ok(changed(removed, Some(Value::Hash(hash))))
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
                reply: Reply::Integer(value),
                write: Some(Some(Value::Hash(hash))),
            })
        }
        _ => unreachable!("hash() takes hash updates only"),
    }
}

fn changed(reply: usize, value: Option<Value>) -> Applied {
    Applied {
        reply: Reply::Integer(reply as i64),
        write: Some(value),
    }
}

fn unchanged(reply: i64) -> Applied {
    Applied {
        reply: Reply::Integer(reply),
        write: None,
    }
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

#[cfg(test)]
mod growth_tests {
    use super::*;

    /// Apply `update` as the coordinator `n1` making its `counter`-th
    /// write of the key, as the node does: to the resolved value, with the
    /// write's own dot.
    fn step(value: Option<Value>, update: &Update, counter: u64) -> Option<Value> {
        let node = NodeId::from("n1");
        let dot = Dot::new("n1", counter);
        let writer = Writer {
            node: &node,
            floor: 0,
            now: counter,
            dot: &dot,
        };
        let current = value.clone().map(|v| (v, (0, Dot::new("n1", 1))));
        let applied = apply(current, update, &writer).expect("applies");
        match applied.write {
            Some(written) => written,
            None => value,
        }
    }

    #[test]
    fn removing_and_re_adding_does_not_grow_a_set_or_a_hash() {
        // A member and a field that stay, so the set is never empty (an
        // emptied set starts afresh).
        let mut set = step(None, &Update::SAdd(vec![b"keep".to_vec()]), 1);
        let mut hash = step(
            None,
            &Update::HSet(vec![(b"keep".to_vec(), b"v".to_vec())]),
            1,
        );
        let mut counter = 1;
        for _ in 0..2_000 {
            counter += 1;
            set = step(set, &Update::SAdd(vec![b"apple".to_vec()]), counter);
            hash = step(
                hash,
                &Update::HSet(vec![(b"f".to_vec(), b"v".to_vec())]),
                counter,
            );
            counter += 1;
            set = step(set, &Update::SRem(vec![b"apple".to_vec()]), counter);
            hash = step(hash, &Update::HDel(vec![b"f".to_vec()]), counter);
        }
        let Some(Value::Set(s)) = &set else {
            panic!("a set")
        };
        let Some(Value::Hash(h)) = &hash else {
            panic!("a hash")
        };
        assert_eq!((s.context_size(), h.context_size()), (1, 1));
        assert!(set.unwrap().encode().len() < 32);
        assert!(hash.unwrap().encode().len() < 32);
    }
}
