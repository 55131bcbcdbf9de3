//! CRDT updates as coordinator (see [`crate::crdt`]): after reading the
//! key, apply the update to everything known of it — the replies and this
//! node's copy and hints — and write the result as one new version that
//! covers all of it, so the coordinator's siblings collapse into it while
//! versions it has not seen stay siblings, joined by every later read.

use super::Node;
use crate::coordinator::{Origin, WriteAcks};
use crate::crdt::{self, Applied, Update, Writer};
use crate::keyspace;
use crate::message::{ClientError, ClientReply};
use crate::siblings::{NewVersion, SiblingSet};
use crate::store::Store;
use crate::version::{CausalContext, Dot};
use crate::Millis;

impl<S: Store> Node<S> {
    /// Apply `update` to what the read found (`read`) and this node holds;
    /// answer at once when nothing changes, else write the new value.
    pub(super) fn apply_update(
        &mut self,
        now: Millis,
        origin: Origin,
        key: Vec<u8>,
        read: SiblingSet,
        update: Update,
        acks: WriteAcks,
    ) {
        let prepared = match self.prepare_update(now, &key, read, &update) {
            Ok(prepared) => prepared,
            Err(e) => return self.finish(origin, Err(e)),
        };
        let Prepared {
            applied,
            context,
            dot,
            existing,
        } = prepared;
        // PERSIST of a key that never expires changes nothing (Redis: 0).
        let persist_of_nothing =
            update == Update::Expire(None) && existing.is_some_and(|e| e.expires_at.is_none());
        let (Some(value), false) = (applied.write, persist_of_nothing) else {
            let reply = match persist_of_nothing {
                true => crdt::Reply::Integer(0),
                false => applied.reply,
            };
            return self.finish(origin, Ok(ClientReply::Updated(reply)));
        };
        let version = new_version(now, &update, existing, value);
        let size = version
            .value
            .as_ref()
            .map_or(0, |b| super::payload_len(&key, b));
        if size > self.settings.max_value_bytes {
            let err = ClientError::Refused(format!(
                "ERR the value would be {size} bytes, over the limit of {} (max_value_bytes)",
                self.settings.max_value_bytes
            ));
            return self.finish(origin, Err(err));
        }
        let updated = Some((dot, &update, applied.reply));
        self.write_version(now, origin, key, version, context, acks, updated);
    }

    /// The update applied to what is known of `key` (a value that has
    /// expired is applied to as missing), and what its write needs.
    fn prepare_update(
        &self,
        now: Millis,
        key: &[u8],
        read: SiblingSet,
        update: &Update,
    ) -> Result<Prepared, ClientError> {
        let stored = self.local_state(key)?;
        let mut all = stored.clone();
        all.merge(&read);
        let context = all.context();
        let written_against = keyspace::write_context(key, context.clone(), &stored);
        let floor = self.lease.floor;
        let dot = stored.next_dot(&self.id, &written_against, floor);
        let visible = keyspace::visible_at(key, &all, now);
        let resolved = crdt::resolve_expiring(&visible)?;
        let existing = resolved.as_ref().filter(|(value, ..)| value.exists()).map(
            |(_, (timestamp, _), expires_at)| Existing {
                timestamp: *timestamp,
                expires_at: *expires_at,
            },
        );
        let current = resolved.map(|(value, stamp, _)| (value, stamp));
        let writer = Writer {
            node: &self.id,
            floor,
            now,
            dot: &dot,
        };
        let applied = crdt::apply(current, update, &writer)?;
        Ok(Prepared {
            applied,
            context,
            dot,
            existing,
        })
    }
}

/// An update applied, ready to be written.
struct Prepared {
    applied: Applied,
    /// What its write covers: all it saw.
    context: CausalContext,
    /// The dot that write will get — computed exactly as
    /// [`SiblingSet::write`] will, on the same state, so that a set's add
    /// and a counter's new actor carry the version's own, unique dot.
    dot: Dot,
    /// The value it applied to, if the key held one.
    existing: Option<Existing>,
}

/// What an update found of the key's value: the stamp and expiry of the
/// version that decides it (its last-write-wins winner).
#[derive(Clone, Copy)]
struct Existing {
    timestamp: Millis,
    expires_at: Option<Millis>,
}

/// The version an update writes: `value` (`None`, a tombstone), expiring
/// as Redis says — `EXPIRE`/`PERSIST` set the expiry and keep the stamp
/// of the value they re-expire (see [`NewVersion::stamped`]); any other
/// update keeps the expiry of the value it found — none when the key held
/// nothing, an emptied collection included, so a key made anew under the
/// name of a deleted one gets no TTL, as in Redis — and a write that
/// deletes or empties the key carries none either: joined with an add made
/// meanwhile through another node, it must not give the new member the
/// deleted key's TTL (the CRDT's expiry is the latest of its versions').
fn new_version(
    now: Millis,
    update: &Update,
    existing: Option<Existing>,
    value: Option<crdt::Value>,
) -> NewVersion {
    let exists = value.as_ref().is_some_and(crdt::Value::exists);
    let bytes = value.map(|v| v.encode());
    match (update, existing) {
        (Update::Expire(ttl), Some(found)) => {
            let expires_at = ttl.map(|ttl| now.saturating_add(ttl));
            NewVersion::new(bytes, expires_at).stamped(found.timestamp)
        }
        _ => {
            let kept = existing.and_then(|e| e.expires_at).filter(|_| exists);
            NewVersion::new(bytes, kept)
        }
    }
}
