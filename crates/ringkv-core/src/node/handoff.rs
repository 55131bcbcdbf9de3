//! Ownership handoff: when a join or leave is pending, every node that will
//! replicate ranges it does not replicate now fetches them, page by page,
//! from current replicas. When it holds them all it says so in gossip
//! (`synced`); a joining node then starts owning ranges, a leaving node
//! leaves, and the old owners drop what they no longer replicate only once
//! every member reports it holds its share of the new ring.
//!
//! **Where a gained range comes from** (Cassandra's consistent range
//! movement): from the replica it *displaces* — the one in the range's
//! current preference list that is not in the future one. The new list is
//! the old one with the displaced replica swapped for this node, so a
//! write that W current replicas acknowledged is still on W future ones:
//! either the displaced node did not hold it, and all W remain, or it did,
//! and this node now holds it too. Any other replica may have missed such
//! a write, and a strict read after the ring change would then miss it.
//! When the displaced replica is not available, the range comes from every
//! available current replica instead (the same guarantee while at most one
//! of the write's replicas is away). When it was *removed* — dead for good
//! (see [`crate::gossip::removal`]) — it is away already, so the range must
//! come from every surviving current replica: one that is down meanwhile
//! is waited for, never skipped, or a write whose other copies were on the
//! removed node and that one would be missed.
//!
//! **Buckets with a smaller N.** A key of N = c is held by the first c
//! nodes of its range's preference list (see [`crate::keyspace::n_of`]).
//! So the unit of handoff is a [`Part`]: the keys of one range with one N.
//! A node gains part (range, c) when it is among the first c of the
//! range's future list but not of its current one (a node moving up the
//! list, say from third to second when the first leaves, gains the N = 2
//! keys), and the rules above apply to the lists cut at c: the replica the
//! part displaces is the one among the current first c that is not among
//! the future first c. Parts are planned for the N of every bucket the
//! node knows (and the cluster's); a node drops a key once it is not among
//! the first N of the key's list.

use super::Node;
use crate::gossip::MemberStatus;
use crate::message::{encoded_len, Batch, Message};
use crate::range::TokenRange;
use crate::ring::{Ring, Token};
use crate::siblings::SiblingSet;
use crate::store::{Store, StoreError};
use crate::{Millis, NodeId};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Keys per transfer page at most (its bytes are held to the batch budget,
/// [`Settings::max_batch_bytes`](crate::settings::Settings::max_batch_bytes)).
const PAGE_KEYS: usize = 256;
/// Keys one page examines at most (a page of one N's keys skips the
/// others'): a node's step stays short however few keys a page keeps.
const PAGE_EXAMINED: usize = 16 * PAGE_KEYS;

/// The keys of one range whose N is `n`: the unit of handoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Part {
    pub range: TokenRange,
    pub n: u8,
}
/// Ranges fetched at the same time.
const PARALLEL_FETCHES: usize = 4;
/// A source that sends no page for this long is replaced by the next one.
const FETCH_TIMEOUT_MS: Millis = 5_000;

/// Keys and their sibling sets, as a transfer page carries them.
type Entries = Vec<(Vec<u8>, SiblingSet)>;

/// What `ringkv status` shows of a handoff in progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HandoffProgress {
    pub ranges_total: usize,
    pub ranges_done: usize,
    pub keys: u64,
    pub bytes: u64,
    /// Keys dropped after the new owners reported holding them.
    pub keys_dropped: u64,
}

impl HandoffProgress {
    pub fn percent(&self) -> u64 {
        match self.ranges_total {
            0 => 100,
            total => (self.ranges_done * 100 / total) as u64,
        }
    }
}

/// One part being fetched.
#[derive(Debug)]
struct Fetch {
    source: NodeId,
    deadline: Millis,
    /// Sources tried so far, to rotate through the replicas.
    attempts: usize,
    /// Sources the whole range came from already.
    done: BTreeSet<NodeId>,
}

#[derive(Debug, Default)]
pub(crate) struct Handoff {
    /// The future ring this plan is for.
    target: u64,
    /// Parts waiting for a source, with the sources they came from
    /// already.
    queue: VecDeque<(Part, BTreeSet<NodeId>)>,
    active: BTreeMap<Part, Fetch>,
    progress: HandoffProgress,
    /// The ring whose no-longer-replicated keys are (being) dropped.
    dropped_for: u64,
    /// Ranges of that ring whose keys of N up to the given one are still
    /// to drop, and where the next page starts.
    dropping: VecDeque<Dropping>,
    /// Keys a peer sent this node after it dropped what it does not
    /// replicate (a coordinator whose ring was older, a hint for a range
    /// that moved): dropped the same way (at most [`MAX_STRAYS`] noted).
    strays: BTreeSet<Vec<u8>>,
}

/// Pages a tick's drop reads at most (a page of one N's keys may keep few).
const MAX_DROP_PAGES: usize = 16;
/// Stray keys noted for dropping at most; beyond, tombstone collection's
/// stray handling or the next ring change's drop finds them.
const MAX_STRAYS: usize = 10_000;

/// Keys of `range` this node no longer holds: those of N at most `max_n`
/// (its position in the range's list; all of them when it is not in it).
#[derive(Debug)]
struct Dropping {
    range: TokenRange,
    max_n: usize,
    after: Option<Vec<u8>>,
}

impl<S: Store> Node<S> {
    /// The handoff in progress, if any (`None` once synced).
    pub fn handoff_progress(&self) -> Option<&HandoffProgress> {
        let h = &self.handoff;
        (!h.queue.is_empty() || !h.active.is_empty()).then_some(&h.progress)
    }

    /// The future ring changed: fetch every range this node gains in it.
    pub(super) fn plan_handoff(&mut self, _now: Millis) {
        let target = self.future.fingerprint();
        let joining = self.members.me().status == MemberStatus::Joining;
        if joining && self.ring.is_empty() {
            // Nobody to fetch from yet: wait until gossip shows the cluster.
            self.handoff = Handoff::default();
            return;
        }
        let gains = self.gained_parts();
        if !gains.is_empty() {
            tracing::info!(
                "node {}: {} ranges (by N) to fetch for the new ring",
                self.id,
                gains.len()
            );
        }
        self.handoff = Handoff {
            target,
            progress: HandoffProgress {
                ranges_total: gains.len(),
                ..HandoffProgress::default()
            },
            queue: gains.into_iter().map(|r| (r, BTreeSet::new())).collect(),
            active: BTreeMap::new(),
            dropped_for: self.handoff.dropped_for,
            dropping: std::mem::take(&mut self.handoff.dropping),
            strays: std::mem::take(&mut self.handoff.strays),
        };
        self.finish_handoff_if_done();
    }

    /// Parts whose future preference list (cut at their N) holds this
    /// node while the current one does not, cut along both rings'
    /// boundaries (see the module docs).
    fn gained_parts(&self) -> Vec<Part> {
        let ns = self.bucket_ns();
        let mut parts = Vec::new();
        for range in common_ranges(&self.ring, &self.future) {
            let now = self.position(&self.ring, range);
            let then = self.position(&self.future, range);
            for &c in ns.iter().filter(|c| then < **c && **c <= now) {
                parts.push(Part { range, n: c as u8 });
            }
        }
        parts
    }

    /// This node's place in `range`'s preference list in `ring`, from 0;
    /// the cluster's N when it is not in the list.
    fn position(&self, ring: &Ring, range: TokenRange) -> usize {
        let n = self.settings.n;
        let list = ring.preference_list_for_token(range.end, n);
        list.iter().position(|m| *m == self.id).unwrap_or(n)
    }

    /// Whether `key` (cut at its N) has this node among its replicas in
    /// the current or the future ring.
    fn replicates_in_either_ring(&self, key: &[u8]) -> bool {
        let n = self.n_of(key);
        let holds = |ring: &Ring| ring.preference_list(key, n).contains(&self.id);
        holds(&self.ring) || holds(&self.future)
    }

    /// Every N keys may have here: the cluster's and that of every bucket
    /// this node knows (at most the cluster's).
    pub(super) fn bucket_ns(&self) -> BTreeSet<usize> {
        let n = self.settings.n;
        let buckets = self.members.buckets().list(n);
        let ns = buckets.into_iter().map(|(_, b)| b.n.clamp(1, n));
        ns.chain([n]).collect()
    }

    pub(super) fn tick_handoff(&mut self, now: Millis) {
        self.retry_stalled_fetches(now);
        self.start_fetches(now);
        self.drop_unowned_when_settled();
    }

    /// Keep up to `PARALLEL_FETCHES` ranges in flight; each queued range is
    /// tried once per call, so one waiting for a source holds up no other.
    fn start_fetches(&mut self, now: Millis) {
        for _ in 0..self.handoff.queue.len() {
            if self.handoff.active.len() >= PARALLEL_FETCHES {
                break;
            }
            let (part, done) = self.handoff.queue.pop_front().expect("counted");
            self.start_or_finish(now, part, 0, done);
        }
    }

    /// Fetch `range` from its next source, or wait for one (queued again),
    /// or count it fetched.
    fn start_or_finish(
        &mut self,
        now: Millis,
        part: Part,
        attempts: usize,
        done: BTreeSet<NodeId>,
    ) {
        match self.fetch_sources(now, part, &done) {
            Sources::Ask(sources) => self.start_fetch(now, part, attempts, done, sources),
            Sources::Wait => self.handoff.queue.push_back((part, done)),
            Sources::Complete => self.range_fetched(),
        }
    }

    fn retry_stalled_fetches(&mut self, now: Millis) {
        let stalled: Vec<Part> = self
            .handoff
            .active
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(r, _)| *r)
            .collect();
        for part in stalled {
            let fetch = self.handoff.active.remove(&part).expect("listed above");
            tracing::warn!(
                "node {}: {} sent no transfer page in time, trying another replica",
                self.id,
                fetch.source
            );
            self.start_or_finish(now, part, fetch.attempts + 1, fetch.done);
        }
    }

    /// Ask one of `sources` (rotating with `attempts`) for the first page
    /// of `part`.
    fn start_fetch(
        &mut self,
        now: Millis,
        part: Part,
        attempts: usize,
        done: BTreeSet<NodeId>,
        sources: Vec<NodeId>,
    ) {
        assert!(!sources.is_empty(), "a fetch needs a source");
        let source = sources[attempts % sources.len()].clone();
        let request = Message::TransferRequest {
            range: part.range,
            n: part.n,
            after: None,
        };
        self.send(source.clone(), request);
        let fetch = Fetch {
            source,
            deadline: now + FETCH_TIMEOUT_MS,
            attempts,
            done,
        };
        self.handoff.active.insert(part, fetch);
    }

    /// Where `part` must still come from, `done` left out (see the module
    /// docs): the displaced replica when it is available; every surviving
    /// replica when it was removed (waiting for any that is down);
    /// otherwise every available current replica.
    fn fetch_sources(&self, now: Millis, part: Part, done: &BTreeSet<NodeId>) -> Sources {
        let (range, n) = (part.range, usize::from(part.n));
        let future = self.future.preference_list_for_token(range.end, n);
        let current: Vec<NodeId> = self
            .ring
            .preference_list_for_token(range.end, n)
            .into_iter()
            .filter(|m| *m != self.id && !self.is_incompatible(m))
            .collect();
        let displaced: Vec<&NodeId> = current.iter().filter(|m| !future.contains(m)).collect();
        let available = |m: &&NodeId| self.is_available(now, m);
        let undone = |m: &&NodeId| !done.contains(*m);
        if !displaced.is_empty() && displaced.iter().all(available) {
            return Sources::of(
                displaced.into_iter().filter(undone).cloned().collect(),
                false,
            );
        }
        if displaced.iter().any(|m| self.is_removed_member(m)) {
            let needed: Vec<&NodeId> = current
                .iter()
                .filter(|m| !self.is_removed_member(m))
                .filter(undone)
                .collect();
            if needed.is_empty() {
                return Sources::Complete;
            }
            return Sources::of(
                needed.into_iter().filter(available).cloned().collect(),
                true,
            );
        }
        let sources: Vec<NodeId> = current
            .iter()
            .filter(available)
            .filter(undone)
            .cloned()
            .collect();
        Sources::of(sources, done.is_empty())
    }

    /// A peer fetches `part` from us: send the page after `after`.
    pub(super) fn on_transfer_request(&mut self, from: NodeId, part: Part, after: Option<Vec<u8>>) {
        let of_part = |key: &[u8]| self.n_of(key) == usize::from(part.n);
        match self.read_page(part.range, after.as_deref(), of_part) {
            Ok((entries, next)) => {
                self.stats.handoff_keys_sent += entries.len() as u64;
                self.stats.handoff_bytes_sent +=
                    entries.iter().map(encoded_len).sum::<usize>() as u64;
                let page = Message::TransferPage {
                    range: part.range,
                    n: part.n,
                    entries,
                    next,
                };
                self.send(from, page)
            }
            // The fetcher times out and asks another replica.
            Err(e) => tracing::warn!("node {}: cannot read transfer page: {e}", self.id),
        }
    }

    /// Up to a page of `range`'s entries that `keep` takes, after key
    /// `after`, in scan order, and the key the next page starts after
    /// (`None`: the range is done). A page examines at most
    /// [`PAGE_EXAMINED`] keys, so it may hold none and still not be the last.
    fn read_page(
        &self,
        range: TokenRange,
        after: Option<&[u8]>,
        keep: impl Fn(&[u8]) -> bool,
    ) -> Result<(Entries, Option<Vec<u8>>), StoreError> {
        let cursor = after.map(|k| (Ring::key_token(k), k));
        let mut page = Batch::new(self.settings.batch_limits(PAGE_KEYS));
        let (mut entries, mut next, mut examined) = (Vec::new(), None, 0);
        let mut last: Option<Vec<u8>> = None;
        for (lo, hi) in range.spans() {
            if next.is_some() {
                break;
            }
            let from = match cursor {
                Some((t, _)) if range.offset(t) > range.offset(hi) => continue,
                Some((t, _)) if t >= lo && t <= hi => t,
                _ => lo,
            };
            self.store.scan(from, hi, &mut |key, set| {
                if cursor.is_some_and(|(t, k)| Ring::key_token(key) == t && key <= k) {
                    return true;
                }
                let kept = keep(key);
                let full = examined >= PAGE_EXAMINED || (kept && !page.admit_entry(&(key, set)));
                if full {
                    // The first key examined always fits a page.
                    next = Some(last.clone().expect("a page stops after a key"));
                    return false;
                }
                examined += 1;
                if kept {
                    entries.push((key.to_vec(), set.clone()));
                }
                last = Some(key.to_vec());
                true
            })?;
        }
        Ok((entries, next))
    }

    pub(super) fn on_transfer_page(
        &mut self,
        now: Millis,
        from: NodeId,
        part: Part,
        entries: Vec<(Vec<u8>, SiblingSet)>,
        next: Option<Vec<u8>>,
    ) {
        if self
            .handoff
            .active
            .get(&part)
            .is_none_or(|f| f.source != from)
        {
            return;
        }
        let (range, n) = (part.range, usize::from(part.n));
        let foreign = |(key, _): &&(Vec<u8>, SiblingSet)| {
            !range.contains(Ring::key_token(key)) || self.n_of(key) != n
        };
        if let Some((key, _)) = entries.iter().find(foreign) {
            tracing::warn!(
                "node {}: {from} sent key {key:?} outside the part it was asked for; ignored",
                self.id
            );
            return;
        }
        for (key, set) in &entries {
            if let Err(e) = self.merge_local(key, set) {
                // Keep the range active: it is asked again at its deadline.
                tracing::warn!("node {}: cannot store transferred key: {e}", self.id);
                return;
            }
            let bytes = encoded_len(&(key, set)) as u64;
            self.handoff.progress.keys += 1;
            self.handoff.progress.bytes += bytes;
            self.stats.handoff_keys_received += 1;
            self.stats.handoff_bytes_received += bytes;
        }
        let mut fetch = self.handoff.active.remove(&part).expect("checked above");
        if let Some(after) = next {
            let request = Message::TransferRequest {
                range,
                n: part.n,
                after: Some(after),
            };
            self.send(from, request);
            let next = Fetch {
                deadline: now + FETCH_TIMEOUT_MS,
                ..fetch
            };
            self.handoff.active.insert(part, next);
            return;
        }
        fetch.done.insert(from);
        self.start_or_finish(now, part, 0, fetch.done);
        self.start_fetches(now);
    }

    fn range_fetched(&mut self) {
        let before = self.handoff.progress.percent();
        self.handoff.progress.ranges_done += 1;
        self.stats.handoff_ranges_fetched += 1;
        let p = &self.handoff.progress;
        if p.percent() / 10 != before / 10 {
            tracing::info!(
                "node {}: handoff {}% ({} of {} ranges, {} keys, {} bytes)",
                self.id,
                p.percent(),
                p.ranges_done,
                p.ranges_total,
                p.keys,
                p.bytes
            );
        }
        self.finish_handoff_if_done();
    }

    /// Every gained range is here: say so, so the ring can move on.
    fn finish_handoff_if_done(&mut self) {
        let h = &self.handoff;
        if h.queue.is_empty() && h.active.is_empty() && h.target == self.future.fingerprint() {
            // Only once what the transfer pages brought is durable.
            self.claim_after_sync(h.target);
        }
    }

    /// Once no join or leave is pending and every member holds its share of
    /// the current ring, drop the keys this node no longer replicates — a
    /// page per tick, so the node keeps serving meanwhile, and each key
    /// after sending its last state to the key's replicas, in case a write
    /// reached this node after the new owner fetched the range.
    ///
    /// Which keys are unowned is computed with this node's own N, and the
    /// ring fingerprint the members agree on does not cover N: so nothing
    /// is dropped (nor listed to drop) while any live member is not known
    /// to run with this node's cluster settings. A node restarted with
    /// another N, which its data directory should have refused, thus drops
    /// nothing.
    fn drop_unowned_when_settled(&mut self) {
        if !self.settings_agree_everywhere() || self.writable().is_err() {
            return;
        }
        let current = self.ring.fingerprint();
        let settled = current == self.future.fingerprint()
            && self.members.me().synced == current
            && self.others_synced(current)
            && !self.ring.is_empty();
        if settled && self.handoff.dropped_for != current {
            self.handoff.dropped_for = current;
            self.handoff.dropping = self.unowned().into();
        }
        self.drop_next_page();
    }

    /// No ring change under way here: the ring is the future one, every
    /// member holds its share of it, and this node fetches and drops
    /// nothing (tombstone collection waits for this, see [`crate::gc`]).
    pub fn ring_is_settled(&self) -> bool {
        let current = self.ring.fingerprint();
        let h = &self.handoff;
        current == self.future.fingerprint()
            && self.members.me().synced == current
            && self.others_synced(current)
            && h.queue.is_empty()
            && h.active.is_empty()
            && (h.dropped_for == current && h.dropping.is_empty())
    }

    /// What of each range of the current ring this node does not hold:
    /// every key of a range whose list it is not in; in one it is p-th of
    /// (from 0), the keys of N up to p, if any bucket has such an N.
    fn unowned(&self) -> Vec<Dropping> {
        let n = self.settings.n;
        let smallest = self.bucket_ns().first().copied().unwrap_or(n);
        let dropping = |range: TokenRange| {
            let max_n = match self.position(&self.ring, range) {
                // Not in the list: every key, whatever N it says.
                p if p >= n => usize::MAX,
                p if p >= smallest => p,
                _ => return None,
            };
            Some(Dropping {
                range,
                max_n,
                after: None,
            })
        };
        self.ring
            .ranges()
            .into_iter()
            .filter_map(dropping)
            .collect()
    }

    /// A key this node just stored: noted as stray when the drop for the
    /// current ring has begun and the key's list (cut at its N) does not
    /// hold this node in either ring.
    pub(super) fn note_if_stray(&mut self, key: &[u8]) {
        let h = &self.handoff;
        let current = self.ring.fingerprint();
        let changing = self.future.fingerprint() != current;
        if h.dropped_for != current || changing || h.strays.len() >= MAX_STRAYS {
            return;
        }
        if !self.replicates_in_either_ring(key) {
            self.handoff.strays.insert(key.to_vec());
        }
    }

    /// Send each stray key's state to its replicas, then delete it (as
    /// [`Node::drop_page`] does), a page at a time — only while no ring
    /// change is pending, and never a key this node replicates in either
    /// ring (a key noted before a removal began may be this node's in the
    /// ring after it: a CI run lost 24 fetched copies so).
    fn drop_strays(&mut self) -> Result<(), StoreError> {
        if self.future.fingerprint() != self.ring.fingerprint() {
            return Ok(());
        }
        for _ in 0..PAGE_KEYS {
            let Some(key) = self.handoff.strays.pop_first() else {
                return Ok(());
            };
            if self.replicates_in_either_ring(&key) {
                continue;
            }
            if let Some(siblings) = self.store.get(&key)? {
                self.drop_key(key, siblings)?;
            }
        }
        Ok(())
    }

    /// Drop about a page of keys (more ranges while the budget lasts).
    fn drop_next_page(&mut self) {
        if self.handoff.dropped_for != self.ring.fingerprint() {
            // Ranges listed for an earlier ring may be this node's again.
            self.handoff.dropping.clear();
            self.handoff.strays.clear();
        } else if let Err(e) = self.drop_strays() {
            tracing::warn!("node {}: cannot drop stray keys: {e}", self.id);
        }
        if self.future.fingerprint() != self.ring.fingerprint() {
            // A join or leave began before the drop ended: it may fetch
            // into these very ranges (a leave gives back what a join
            // took). Resumed, or listed anew, once it is done.
            return;
        }
        let before = self.handoff.progress.keys_dropped;
        let mut pages = 0;
        while let Some(dropping) = self.handoff.dropping.pop_front() {
            let done = self.handoff.progress.keys_dropped - before;
            if done >= PAGE_KEYS as u64 || pages >= MAX_DROP_PAGES {
                self.handoff.dropping.push_front(dropping);
                return;
            }
            pages += 1;
            match self.drop_page(&dropping) {
                Ok(Some(after)) => self.handoff.dropping.push_front(Dropping {
                    after: Some(after),
                    ..dropping
                }),
                Ok(None) => {}
                Err(e) => {
                    // Tried again next tick.
                    tracing::warn!("node {}: cannot drop handed-off keys: {e}", self.id);
                    self.handoff.dropping.push_front(dropping);
                    return;
                }
            }
        }
        let p = &self.handoff.progress;
        if p.keys_dropped > before {
            tracing::info!(
                "node {}: {} keys dropped in all, now held by their new owners",
                self.id,
                p.keys_dropped
            );
        }
    }

    /// Drop one page of the keys `dropping` names; where the next page
    /// starts (`None`: done).
    fn drop_page(&mut self, dropping: &Dropping) -> Result<Option<Vec<u8>>, StoreError> {
        let unowned = |key: &[u8]| {
            let n = self.n_of(key);
            n <= dropping.max_n && !self.future.preference_list(key, n).contains(&self.id)
        };
        let after = dropping.after.as_deref();
        let (entries, next) = self.read_page(dropping.range, after, unowned)?;
        for (key, siblings) in entries {
            self.drop_key(key, siblings)?;
        }
        Ok(next)
    }

    /// Delete `key`, which this node no longer replicates, after sending
    /// its state to its replicas (a write may have reached this node after
    /// they fetched it).
    fn drop_key(&mut self, key: Vec<u8>, siblings: SiblingSet) -> Result<(), StoreError> {
        // The counters of dropped keys are gone from the store; should a
        // stale peer still send this node a write for one, its dot must
        // not repeat one issued before (the simulator found a leaving
        // node doing so). Every counter issued so far is below the lease.
        self.lease.floor = self.lease.until;
        self.store.delete(&key)?;
        self.counts.remove(&key, &siblings);
        self.handoff.progress.keys_dropped += 1;
        self.stats.handoff_keys_dropped += 1;
        let replicas = self.ring.preference_list(&key, self.n_of(&key));
        self.send_to_others(&replicas, Message::Repair { key, siblings });
        Ok(())
    }
}

/// What a range waiting to be fetched needs next.
#[derive(Debug, PartialEq, Eq)]
enum Sources {
    /// Fetch it from one of these.
    Ask(Vec<NodeId>),
    /// A source it needs is unavailable now: try again later.
    Wait,
    /// Every source it needs sent it whole.
    Complete,
}

impl Sources {
    /// Ask `sources`; with none, wait when `wait_if_none`, else complete.
    fn of(sources: Vec<NodeId>, wait_if_none: bool) -> Sources {
        match (sources.is_empty(), wait_if_none) {
            (false, _) => Sources::Ask(sources),
            (true, true) => Sources::Wait,
            (true, false) => Sources::Complete,
        }
    }
}

/// The ranges cut by the vnode tokens of both rings: each lies within one
/// range of either ring, so it has one preference list in each.
pub(crate) fn common_ranges(a: &Ring, b: &Ring) -> Vec<TokenRange> {
    let ends: BTreeSet<Token> = a
        .ranges()
        .iter()
        .chain(&b.ranges())
        .map(|r| r.end)
        .collect();
    let Some(&last) = ends.last() else {
        return Vec::new();
    };
    let mut prev = last;
    ends.into_iter()
        .map(|end| {
            let range = TokenRange::new(prev, end);
            prev = end;
            range
        })
        .collect()
}
