//! Simulated clients on a few keys, so conflicts happen: blind writes,
//! shopping-cart read-modify-writes (read, union the siblings' items, add
//! one, write back with the context), deletes of what was read, reads, and
//! the ways real clients hold contexts: a write *chained* on the context of
//! the client's own previous answer for the key (a write's receipt or a
//! read), and a write with a *stale* context it held earlier.
//!
//! Every write's value starts with a unique id (`c<client>.<seq>`), so the
//! checker can tell versions apart. In seeds with small size limits values
//! are padded (`~....`) up to near `max_value_bytes`, so sibling sets fill
//! batches and frames.
//!
//! A share of the operations ([`CRDT_SHARE`]) go to two Redis-keyspace keys
//! apart from those ([`CrdtKeys`]): increments by small deltas of either
//! sign on a counter, and on a set `SADD`s of fresh members (named like
//! values, `c<client>.<seq>`, unique per add), `SREM`s of members a read of
//! the set showed or the client added itself, and re-adds of members the
//! client removed — so the checker can tell which add each member's
//! presence comes from.

use crate::history::{History, Read, Update, UpdateOutcome, Write, WriteOutcome};
use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use ringkv_core::bucket::BucketProps;
use ringkv_core::crdt::{self, Reply, Value};
use ringkv_core::keyspace::{self, ConflictPolicy};
use ringkv_core::message::{ClientOp, ClientReply, ClientResult};
use ringkv_core::siblings::SiblingSet;
use ringkv_core::version::CausalContext;
use ringkv_core::Millis;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Contexts a client remembers per key, for chained and stale writes.
const REMEMBERED_CONTEXTS: usize = 8;
/// Share of operations that are CRDT updates (or a set read before a
/// remove): enough to contend on the two keys, few enough that the plain
/// keys keep nearly all of their workload.
pub const CRDT_SHARE: f64 = 0.15;
/// Increments are by 1 to this much, up or down.
pub const MAX_DELTA: i64 = 5;
/// Members a client remembers having added and having removed, for
/// `SREM`s of its own members and re-adds.
const REMEMBERED_MEMBERS: usize = 16;

/// The Redis-keyspace keys the CRDT updates go to (internal keys, prefix
/// included, so the simulator reads and checks them like any other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrdtKeys {
    pub counter: String,
    pub set: String,
    /// A hash whose field [`HASH_FIELD`] only `HINCRBY` writes.
    pub hash: String,
}

/// Keys written only with a TTL (blind writes living [`SESSION_TTL_MS`])
/// and read: the expiry rule's keys (see the checker), apart from the
/// cart keys, whose lost-write rules do not hold for values that vanish.
pub const SESSION_KEYS: [&str; 2] = ["sess0", "sess1"];
/// A session write lives this long, ms: around the simulator's clock skew
/// and its partitions, so values expire mid-fault and mid-skew.
pub const SESSION_TTL_MS: std::ops::Range<Millis> = 200..4_000;

/// The named buckets every simulated cluster has (the cluster's N is at
/// least 2): every third cart key is in `pair`, whose N is 2 and which
/// keeps siblings like the default bucket, so handoff, anti-entropy, hints
/// and collection all move keys that live on only part of their list.
pub fn buckets(cluster_n: usize) -> Vec<(String, BucketProps)> {
    let n = 2.min(cluster_n);
    vec![("pair".into(), BucketProps::new(n, ConflictPolicy::Siblings))]
}

/// The `k`-th cart key: in bucket `pair` when `k % 3 == 2`, otherwise a
/// `/kv` key (internal keys: a bucket's prefix is ASCII).
pub fn cart_key(k: usize) -> String {
    let user = format!("key{k}");
    if k % 3 != 2 {
        return user;
    }
    let (name, props) = buckets(3).remove(0);
    let prefix = ringkv_core::bucket::prefix(&name, &props);
    String::from_utf8([prefix, user.into_bytes()].concat()).expect("an ASCII prefix")
}

/// The field of [`CrdtKeys::hash`] the workload increments.
pub const HASH_FIELD: &[u8] = b"qty";

impl Default for CrdtKeys {
    fn default() -> Self {
        CrdtKeys {
            counter: redis_key("counter"),
            set: redis_key("set"),
            hash: redis_key("hash"),
        }
    }
}

impl CrdtKeys {
    pub fn all(&self) -> [&String; 3] {
        [&self.counter, &self.set, &self.hash]
    }
}

/// The internal key of the Redis key `name` (`\0r` + name: valid UTF-8).
fn redis_key(name: &str) -> String {
    String::from_utf8_lossy(&keyspace::lww_key(name.as_bytes())).into_owned()
}

/// What a client is waiting for.
#[derive(Clone, Debug)]
pub enum Step {
    /// A read (invoked at `at`), and what to do with its answer.
    Read { key: String, at: Millis, then: Then },
    /// A write recorded at this index of `History::writes`.
    Write(usize),
    /// A CRDT update recorded at this index of `History::updates`.
    Update(usize),
    /// A read of the CRDT set, to remove some of the members it shows.
    SetRead { key: String },
    /// A write of a session key, with a TTL.
    SessionWrite,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    Nothing,
    /// Cart update: write back the union of the siblings plus a new item.
    AddItem,
    Delete,
}

pub struct Client {
    pub id: usize,
    seq: u64,
    /// Per key, the contexts of its latest answers, newest last.
    contexts: BTreeMap<String, VecDeque<CausalContext>>,
    /// Pad values to this many bytes.
    pad_to: Option<usize>,
    /// Set members this client added, and asked to remove, newest last.
    added: VecDeque<Vec<u8>>,
    removed: VecDeque<Vec<u8>>,
}

/// Separates a value from its padding.
const PAD: char = '~';

impl Client {
    pub fn new(id: usize, pad_to: Option<usize>) -> Self {
        Client {
            id,
            seq: 0,
            pad_to,
            contexts: BTreeMap::new(),
            added: VecDeque::new(),
            removed: VecDeque::new(),
        }
    }

    /// `value` padded with `~...` to `pad_to` bytes (unchanged when already
    /// as long or when there is no padding).
    fn padded(&self, mut value: String) -> Vec<u8> {
        if let Some(len) = self.pad_to.filter(|&len| len > value.len()) {
            value.push(PAD);
            value.extend(std::iter::repeat_n('.', len - value.len()));
        }
        value.into_bytes()
    }

    /// Odd clients demand every ack from the real preference list (`pw`
    /// = the simulator's W of 2), so the checker can hold their writes to
    /// the strict-quorum read rule; even ones accept stand-ins.
    fn strict(&self) -> bool {
        self.id % 2 == 1
    }

    fn pw(&self) -> Option<usize> {
        self.strict().then_some(2)
    }

    /// Strict clients read with PR = R = 2 as well: only then do their
    /// reads meet strict writes on a real replica (PR + PW > N).
    fn pr(&self) -> Option<usize> {
        self.pw()
    }

    /// Start a new operation on one of `keys`, or now and then
    /// ([`CRDT_SHARE`]) a CRDT operation on one of `crdt`.
    pub fn start(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Millis,
        keys: &[String],
        crdt: &CrdtKeys,
        history: &mut History,
    ) -> (ClientOp, Step) {
        if rng.random_bool(CRDT_SHARE) {
            return self.start_crdt(rng, now, crdt, history);
        }
        let key = keys[rng.random_range(0..keys.len())].clone();
        let roll: f64 = rng.random();
        let then = match roll {
            r if r < 0.3 => {
                let item = self.next_item();
                let value = self.padded(item);
                return self.write(now, key, Some(value), CausalContext::new(), history);
            }
            r if r < 0.45 => {
                let context = self.held_context(rng, &key, r < 0.4);
                let item = self.next_item();
                let value = self.padded(item);
                return self.write(now, key, Some(value), context, history);
            }
            r if r < 0.75 => Then::AddItem,
            r if r < 0.85 => Then::Delete,
            r if r < 0.925 => return self.start_session(rng, now, history),
            _ => Then::Nothing,
        };
        let op = ClientOp::Get {
            key: key.clone().into_bytes(),
            r: None,
            pr: self.pr(),
        };
        (op, Step::Read { key, at: now, then })
    }

    /// A write of a session key with a TTL, or a read of one.
    fn start_session(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Millis,
        history: &mut History,
    ) -> (ClientOp, Step) {
        let key = SESSION_KEYS[rng.random_range(0..SESSION_KEYS.len())].to_string();
        if rng.random_bool(0.5) {
            let item = self.next_item();
            history.expiring_writes += 1;
            let op = ClientOp::Put {
                key: key.into_bytes(),
                value: self.padded(item),
                context: CausalContext::new(),
                w: None,
                pw: None,
                ttl_ms: Some(rng.random_range(SESSION_TTL_MS)),
            };
            return (op, Step::SessionWrite);
        }
        let op = ClientOp::Get {
            key: key.clone().into_bytes(),
            r: None,
            pr: None,
        };
        let then = Then::Nothing;
        (op, Step::Read { key, at: now, then })
    }

    /// A context this client holds for `key`: its latest (a chained write),
    /// or any it remembers (a stale one); empty when it holds none.
    fn held_context(&self, rng: &mut ChaCha8Rng, key: &str, latest: bool) -> CausalContext {
        let Some(held) = self.contexts.get(key).filter(|h| !h.is_empty()) else {
            return CausalContext::new();
        };
        let i = if latest {
            held.len() - 1
        } else {
            rng.random_range(0..held.len())
        };
        held[i].clone()
    }

    fn remember(&mut self, key: &str, context: CausalContext) {
        let held = self.contexts.entry(key.to_string()).or_default();
        held.push_back(context);
        if held.len() > REMEMBERED_CONTEXTS {
            held.pop_front();
        }
    }

    /// The answer to `step`; a read-modify-write continues with its write.
    pub fn on_reply(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Millis,
        step: Step,
        result: ClientResult,
        history: &mut History,
    ) -> Option<(ClientOp, Step)> {
        match step {
            Step::Update(index) => {
                let update = &mut history.updates[index];
                update.completed_at = Some(now);
                update.outcome = match result {
                    Ok(ClientReply::Updated(Reply::Integer(reply))) => UpdateOutcome::Acked(reply),
                    Ok(other) => UpdateOutcome::Indeterminate(format!("unexpected {other:?}")),
                    Err(e) => UpdateOutcome::of_error(&e, update.update.is_idempotent()),
                };
                None
            }
            Step::SessionWrite => None,
            Step::SetRead { key } => {
                let members = set_members(result)?;
                let chosen = pick_some(rng, &members);
                (!chosen.is_empty()).then(|| self.remove(now, key, chosen, history))
            }
            Step::Write(index) => {
                let write = &mut history.writes[index];
                write.completed_at = Some(now);
                write.outcome = match result {
                    Ok(ClientReply::Written { dot, context }) => {
                        let key = write.key.clone();
                        self.remember(&key, context.clone());
                        WriteOutcome::Acked { dot, context }
                    }
                    Ok(other) => WriteOutcome::Indeterminate(format!("unexpected {other:?}")),
                    Err(e) => WriteOutcome::Indeterminate(e.to_string()),
                };
                None
            }
            Step::Read { key, at, then } => {
                let result = match result {
                    Ok(ClientReply::Value(set)) => Ok(set),
                    Ok(other) => Err(format!("unexpected {other:?}")),
                    Err(e) => Err(e.to_string()),
                };
                history.reads.push(Read {
                    client: self.id,
                    key: key.clone(),
                    invoked_at: at,
                    completed_at: now,
                    context: result.as_ref().map(SiblingSet::context).unwrap_or_default(),
                    result: result.clone(),
                    strict: self.strict(),
                });
                let set = result.ok()?;
                self.remember(&key, set.context());
                match then {
                    Then::Nothing => None,
                    Then::AddItem => {
                        let value = self.cart_with_new_item(&set);
                        Some(self.write(now, key, Some(value), set.context(), history))
                    }
                    Then::Delete => Some(self.write(now, key, None, set.context(), history)),
                }
            }
        }
    }

    fn write(
        &mut self,
        now: Millis,
        key: String,
        value: Option<Vec<u8>>,
        context: CausalContext,
        history: &mut History,
    ) -> (ClientOp, Step) {
        history.writes.push(Write {
            client: self.id,
            key: key.clone(),
            value: value.clone(),
            context: context.clone(),
            invoked_at: now,
            completed_at: None,
            outcome: WriteOutcome::Pending,
            strict: self.strict(),
        });
        let index = history.writes.len() - 1;
        let key = key.into_bytes();
        let op = match value {
            Some(value) => ClientOp::Put {
                key,
                value,
                context,
                w: None,
                pw: self.pw(),
                ttl_ms: None,
            },
            None => ClientOp::Delete {
                key,
                context: Some(context),
                r: None,
                pr: None,
                w: None,
                pw: self.pw(),
            },
        };
        (op, Step::Write(index))
    }

    /// A cart value: `<new item>|<every item of every sibling>,<new item>`.
    fn cart_with_new_item(&mut self, set: &SiblingSet) -> Vec<u8> {
        let item = self.next_item();
        let mut items: BTreeSet<String> = set
            .live()
            .filter_map(|s| s.value.as_deref())
            .map(String::from_utf8_lossy)
            .flat_map(|v| {
                let unpadded = v.split(PAD).next().unwrap_or_default();
                unpadded
                    .split('|')
                    .next_back()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|i| !i.is_empty())
            .collect();
        items.insert(item.clone());
        let list: Vec<String> = items.into_iter().collect();
        self.padded(format!("{item}|{}", list.join(",")))
    }

    /// A CRDT operation: half increments, half set operations — about as
    /// many removes (of members a read showed, or of its own) as adds (of
    /// fresh members, or re-adds of removed ones), so the set stays small
    /// enough for the small size limits.
    fn start_crdt(
        &mut self,
        rng: &mut ChaCha8Rng,
        now: Millis,
        keys: &CrdtKeys,
        history: &mut History,
    ) -> (ClientOp, Step) {
        let roll: f64 = rng.random();
        let key = keys.set.clone();
        match roll {
            r if r < 0.5 => {
                let delta = rng.random_range(1..=MAX_DELTA);
                let delta = if rng.random_bool(0.4) { -delta } else { delta };
                // Half of them on a hash field: the same rule 8 holds there.
                if rng.random_bool(0.5) {
                    let update = crdt::Update::HIncrBy(HASH_FIELD.to_vec(), delta);
                    return self.update(now, keys.hash.clone(), update, history);
                }
                let update = crdt::Update::IncrBy(delta);
                self.update(now, keys.counter.clone(), update, history)
            }
            r if r < 0.65 => {
                let op = ClientOp::Get {
                    key: key.clone().into_bytes(),
                    r: None,
                    pr: self.pr(),
                };
                (op, Step::SetRead { key })
            }
            r if r < 0.75 && !self.added.is_empty() => {
                let own = self.added[rng.random_range(0..self.added.len())].clone();
                self.remove(now, key, vec![own], history)
            }
            r if r < 0.82 && !self.removed.is_empty() => {
                let again = self.removed[rng.random_range(0..self.removed.len())].clone();
                self.add(now, key, vec![again], history)
            }
            _ => {
                let count = if rng.random_bool(0.2) { 2 } else { 1 };
                let fresh = (0..count).map(|_| self.next_item().into_bytes()).collect();
                self.add(now, key, fresh, history)
            }
        }
    }

    fn add(
        &mut self,
        now: Millis,
        key: String,
        members: Vec<Vec<u8>>,
        history: &mut History,
    ) -> (ClientOp, Step) {
        for m in &members {
            remember_member(&mut self.added, m);
        }
        self.update(now, key, crdt::Update::SAdd(members), history)
    }

    fn remove(
        &mut self,
        now: Millis,
        key: String,
        members: Vec<Vec<u8>>,
        history: &mut History,
    ) -> (ClientOp, Step) {
        for m in &members {
            remember_member(&mut self.removed, m);
        }
        self.update(now, key, crdt::Update::SRem(members), history)
    }

    /// Record and send a CRDT update of `key`.
    fn update(
        &mut self,
        now: Millis,
        key: String,
        update: crdt::Update,
        history: &mut History,
    ) -> (ClientOp, Step) {
        history.updates.push(Update {
            client: self.id,
            key: key.clone(),
            update: update.clone(),
            invoked_at: now,
            completed_at: None,
            outcome: UpdateOutcome::Pending,
        });
        let op = ClientOp::Update {
            key: key.into_bytes(),
            update,
            w: None,
            pw: self.pw(),
        };
        (op, Step::Update(history.updates.len() - 1))
    }

    fn next_item(&mut self) -> String {
        self.seq += 1;
        format!("c{}.{}", self.id, self.seq)
    }
}

/// The members a read of a set shows (none when it failed or the key holds
/// something else: then there is nothing to remove).
fn set_members(result: ClientResult) -> Option<Vec<Vec<u8>>> {
    let Ok(ClientReply::Value(set)) = result else {
        return None;
    };
    match crdt::resolve(&set).ok()?? {
        (Value::Set(s), _) => Some(s.iter().map(<[u8]>::to_vec).collect()),
        _ => None,
    }
}

/// One or two of `members`, at random (none when there are none).
fn pick_some(rng: &mut ChaCha8Rng, members: &[Vec<u8>]) -> Vec<Vec<u8>> {
    if members.is_empty() {
        return Vec::new();
    }
    let count = if members.len() > 1 && rng.random_bool(0.3) {
        2
    } else {
        1
    };
    let start = rng.random_range(0..members.len());
    (0..count)
        .map(|i| members[(start + i) % members.len()].clone())
        .collect()
}

fn remember_member(list: &mut VecDeque<Vec<u8>>, member: &[u8]) {
    list.retain(|m| m != member);
    list.push_back(member.to_vec());
    if list.len() > REMEMBERED_MEMBERS {
        list.pop_front();
    }
}
