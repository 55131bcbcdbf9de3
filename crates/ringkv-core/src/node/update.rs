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
        let prepared = self.prepare_update(now, &key, read, &update);
        let (applied, context, dot, expires_at) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return self.finish(origin, Err(e)),
        };
        // PERSIST of a key that never expires changes nothing (Redis: 0).
        let persist_of_nothing = update == Update::Expire(None) && expires_at.is_none();
        let expires_at = match update {
            Update::Expire(ttl) => ttl.map(|ttl| now.saturating_add(ttl)),
            _ => expires_at,
        };
        let (Some(value), false) = (applied.write, persist_of_nothing) else {
            let reply = match persist_of_nothing {
                true => crdt::Reply::Integer(0),
                false => applied.reply,
            };
            return self.finish(origin, Ok(ClientReply::Updated(reply)));
        };
        let bytes = value.map(|v| v.encode());
        let size = bytes.as_ref().map_or(0, |b| super::payload_len(&key, b));
        if size > self.settings.max_value_bytes {
            let err = ClientError::Refused(format!(
                "ERR the value would be {size} bytes, over the limit of {} (max_value_bytes)",
                self.settings.max_value_bytes
            ));
            return self.finish(origin, Err(err));
        }
        let updated = Some((dot, &update, applied.reply));
        let version = NewVersion::new(bytes, expires_at);
        self.write_version(now, origin, key, version, context, acks, updated);
    }

    /// The update applied, the context its write covers (all it saw), the
    /// dot that write will get — computed exactly as [`SiblingSet::write`]
    /// will, on the same state, so that a set's add and a counter's new
    /// actor carry the version's own, unique dot — and when the value it
    /// applied to expires (an update keeps the key's TTL, as in Redis).
    /// A value that has expired is applied to as missing.
    fn prepare_update(
        &self,
        now: Millis,
        key: &[u8],
        read: SiblingSet,
        update: &Update,
    ) -> Result<(Applied, CausalContext, Dot, Option<Millis>), ClientError> {
        let stored = self.local_state(key)?;
        let mut all = stored.clone();
        all.merge(&read);
        let context = all.context();
        let written_against = keyspace::write_context(key, context.clone(), &stored);
        let floor = self.lease.floor;
        let dot = stored.next_dot(&self.id, &written_against, floor);
        let visible = all.visible_at(now);
        let current = crdt::resolve(&visible)?;
        let expires_at = keyspace::lww_winner(&visible).and_then(|w| w.expires_at);
        let writer = Writer {
            node: &self.id,
            floor,
            now,
            dot: &dot,
        };
        let applied = crdt::apply(current, update, &writer)?;
        Ok((applied, context, dot, expires_at))
    }
}
