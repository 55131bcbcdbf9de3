//! Key listing — Redis `SCAN`, and the HTTP listing of `/kv` keys — as a
//! coverage query over the ring: the cursor is a ring token, and a page is
//! the keys of one keyspace in the ranges from there on that one replica
//! holds — the node that takes the request scans its own store
//! through consecutive ranges it replicates, and stops at the first it
//! does not (the client's next `SCAN` goes to a replica of that one) or
//! when it has examined `count` keys. Riak's 2i/list-keys and Cassandra's
//! token-range paging cover the ring the same way.
//!
//! What a scan promises: a key stored on the asked replica of its range
//! the whole time is returned at least once. One replica answers per range,
//! so a key acknowledged by W replicas but not yet on that one (a sloppy or
//! recent write) can be missed until anti-entropy or read repair brings it;
//! keys whose 64-bit tokens collide exactly stay on one page.

use super::Node;
use crate::crdt;
use crate::keyspace::{ConflictPolicy, Keyspace};
use crate::message::{ClientError, ClientReply, ClientResult};
use crate::ring::{Ring, Token};
use crate::siblings::SiblingSet;
use crate::store::Store;
use crate::{Millis, NodeId};

/// The most keys one page may examine: a page's bytes stay well within a
/// frame (keys are at most `max_key_bytes`, and [`MAX_PAGE_BYTES`] caps
/// what is returned).
pub const MAX_COUNT: usize = 10_000;
/// A page stops once the keys it returns add up to this many bytes.
const MAX_PAGE_BYTES: usize = 1 << 20;

/// `count` must be 1 to [`MAX_COUNT`].
pub(super) fn check_count(count: usize) -> Result<(), ClientError> {
    if (1..=MAX_COUNT).contains(&count) {
        return Ok(());
    }
    Err(ClientError::Invalid(format!(
        "scan count must be 1 to {MAX_COUNT}, got {count}"
    )))
}

/// Keys of one page so far, and what it has examined.
#[derive(Default)]
struct Page {
    keys: Vec<(Vec<u8>, String)>,
    examined: usize,
    bytes: usize,
}

impl<S: Store> Node<S> {
    /// The nodes that may answer a scan from `cursor`: the healthy
    /// replicas of the range holding it, best first.
    /// Never a stand-in: it holds none of the range's keys, and a page
    /// from it would look complete (a listing of an N = 1 bucket with its
    /// node down left keys out that way). With no replica, the scan fails.
    pub(super) fn scan_candidates(&self, now: Millis, cursor: Token, n: usize) -> Vec<NodeId> {
        let Some(range) = self.ring.range_of(cursor) else {
            return Vec::new();
        };
        let replicas = self.ring.preference_list_for_token(range.end, n);
        let mut candidates = self.candidates_for_token(now, range.end, n, false);
        candidates.retain(|c| replicas.contains(c));
        candidates
    }

    /// One page from this node's store, from `cursor` on through the
    /// ranges it replicates, examining about `count` keys.
    pub(super) fn scan(
        &self,
        mut cursor: Token,
        count: usize,
        keyspace: &Keyspace,
    ) -> ClientResult {
        let mut page = Page::default();
        while let Some(to) = self.span_end(cursor) {
            let stopped = self.scan_span((cursor, to), count, keyspace, &mut page)?;
            cursor = match stopped {
                Some(at) => at,
                None => to.wrapping_add(1),
            };
            let n = keyspace.n(self.settings.n);
            let replica = |c| self.ring.preference_list_for_token(c, n);
            if stopped.is_some() || cursor == 0 || !replica(cursor).contains(&self.id) {
                break;
            }
        }
        Ok(ClientReply::Keys {
            keys: page.keys,
            cursor,
        })
    }

    /// The last token of the range holding `cursor`, not past `u64::MAX`
    /// (a range that wraps is scanned to the end of the token space, and
    /// the next cursor starts again at 0 — which ends the scan).
    fn span_end(&self, cursor: Token) -> Option<Token> {
        let range = self.ring.range_of(cursor)?;
        Some(if range.end >= cursor {
            range.end
        } else {
            Token::MAX
        })
    }

    /// Scan `from..=to` into `page`; the token it stopped at (its keys not
    /// taken) when the page is full, `None` when the span is done. Every
    /// key examined counts, of either keyspace: a page's cost is bounded
    /// whatever it finds.
    fn scan_span(
        &self,
        (from, to): (Token, Token),
        count: usize,
        keyspace: &Keyspace,
        page: &mut Page,
    ) -> Result<Option<Token>, ClientError> {
        let mut last = None;
        let mut stopped = None;
        let full = |p: &Page| p.examined >= count || p.bytes >= MAX_PAGE_BYTES;
        let visit = &mut |key: &[u8], set: &SiblingSet| {
            let token = Ring::key_token(key);
            if full(page) && last != Some(token) {
                stopped = Some(token);
                return false;
            }
            last = Some(token);
            page.examined += 1;
            let Some(user_key) = keyspace.user_key(key) else {
                return true;
            };
            if let Some(type_name) =
                live_type(key, &crate::keyspace::visible_at(key, set, self.now))
            {
                page.bytes += user_key.len();
                page.keys.push((user_key.to_vec(), type_name.into()));
            }
            true
        };
        self.store
            .scan(from, to, visit)
            .map_err(|e| self.storage_error(e))?;
        Ok(stopped)
    }
}

/// The type name of `key` holding `visible` (expired versions shown as
/// tombstones) when it holds something a read shows: `kv` for a sibling
/// key with a live version or a last-write-wins key whose winner lives,
/// the CRDT type of a typed key whose value exists.
fn live_type(key: &[u8], visible: &SiblingSet) -> Option<&'static str> {
    match crate::keyspace::policy_of(key) {
        ConflictPolicy::Siblings => visible.live().next().map(|_| "kv"),
        ConflictPolicy::Lww => crate::keyspace::lww_value(visible).map(|_| "kv"),
        ConflictPolicy::Typed => match crdt::resolve(visible) {
            Ok(Some((value, _))) if value.exists() => Some(value.type_name()),
            _ => None,
        },
    }
}
