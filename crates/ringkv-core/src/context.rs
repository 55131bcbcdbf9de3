//! The opaque causal context handed to clients.
//!
//! A GET returns the context of everything it showed; a PUT or DELETE
//! returns the context its client sent plus the new version's dot — exactly
//! what the answer's holder has seen (see [`crate::version`]). The client
//! sends it back unchanged with its next write, which then supersedes
//! exactly those versions. Clients must treat it as opaque: a format byte
//! plus the postcard-encoded [`CausalContext`], in unpadded URL-safe base64
//! (safe in headers).
//!
//! Format 1 (before exact contexts) encoded a plain version vector: each
//! entry meant "every event up to this counter". It still decodes, with
//! that meaning, so contexts held by clients across an upgrade stay valid.

use crate::version::CausalContext;
use crate::{Millis, NodeId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;

const FORMAT: u8 = 2;
const FORMAT_VERSION_VECTOR: u8 = 1;
/// Contexts are small (a few entries); anything longer is not one of ours.
const MAX_ENCODED_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid causal context: {0}")]
pub struct ContextError(&'static str);

pub fn encode(context: &CausalContext) -> String {
    let mut bytes = vec![FORMAT];
    bytes.extend(postcard::to_stdvec(context).unwrap_or_default());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode(text: &str) -> Result<CausalContext, ContextError> {
    if text.len() > MAX_ENCODED_LEN {
        return Err(ContextError("too long"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| ContextError("not base64url"))?;
    let corrupt = |_| ContextError("corrupt encoding");
    match bytes.split_first() {
        Some((&FORMAT, body)) => postcard::from_bytes(body).map_err(corrupt),
        Some((&FORMAT_VERSION_VECTOR, body)) => postcard::from_bytes::<VersionVector>(body)
            .map(VersionVector::into_context)
            .map_err(corrupt),
        Some(_) => Err(ContextError("unknown format version")),
        None => Err(ContextError("empty")),
    }
}

/// A plain version vector as format 1 encoded it (contexts, and the
/// store's values of format 1, which decode through it).
#[derive(Debug, Deserialize)]
pub struct VersionVector {
    entries: BTreeMap<NodeId, VectorEntry>,
}

#[derive(Debug, Deserialize)]
struct VectorEntry {
    counter: u64,
    timestamp: Millis,
}

impl VersionVector {
    /// The same history as an exact context: every event up to each counter.
    pub fn into_context(self) -> CausalContext {
        let mut context = CausalContext::new();
        for (node, e) in self.entries {
            context.add_prefix(&node, e.counter, e.timestamp);
        }
        context
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Dot;

    #[test]
    fn contexts_round_trip() {
        let mut v = CausalContext::new();
        v.add(&Dot::new("n1", 7), 1_700_000_000_000);
        v.add(&Dot::new("n2", 1), 1_700_000_000_001);
        assert_eq!(decode(&encode(&v)), Ok(v));
        assert_eq!(
            decode(&encode(&CausalContext::new())),
            Ok(CausalContext::new())
        );
    }

    #[test]
    fn format_1_contexts_still_mean_every_event_up_to_each_counter() {
        // `n2` at counter 2, timestamp 1, as format 1 encoded it.
        let old = "AQECbjICAQ";
        let context = decode(old).expect("format 1 decodes");
        assert!(context.covers(&Dot::new("n2", 1)) && context.covers(&Dot::new("n2", 2)));
        assert!(!context.covers(&Dot::new("n2", 3)));
    }

    #[test]
    fn garbage_contexts_are_rejected_not_panicked_on() {
        for bad in ["", "!!!", "AAAA", "Aw", &"A".repeat(20_000), "Ag-_-_-_-_"] {
            assert!(decode(bad).is_err(), "{bad:?} decoded");
        }
    }
}

#[cfg(test)]
mod sizes {
    use super::*;
    use crate::version::Dot;

    /// The header a client carries after a read of versions written through
    /// `writers` coordinators, each `events` times (real timestamps).
    fn header(writers: usize, events: u64) -> String {
        let mut context = CausalContext::new();
        for w in 1..=writers {
            for k in 1..=events {
                context.add(
                    &Dot::new(format!("n{w}").as_str(), k),
                    1_796_000_000_000 + k,
                );
            }
        }
        encode(&context)
    }

    /// Contexts stay compact: about 17 bytes of header per coordinator, and
    /// a node's whole history of one key is one interval however long.
    #[test]
    fn contexts_cost_a_few_bytes_per_coordinator() {
        let sizes: Vec<usize> = [1, 3, 32].iter().map(|&w| header(w, 1).len()).collect();
        println!("header bytes for 1, 3, 32 coordinators: {sizes:?}");
        println!("1 coordinator, 1,000 events: {}", header(1, 1_000).len());
        assert!(
            sizes[0] <= 24 && sizes[1] <= 64 && sizes[2] <= 32 * 18,
            "{sizes:?}"
        );
        assert_eq!(header(1, 1_000).len(), header(1, 999).len());
    }
}
