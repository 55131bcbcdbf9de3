//! The opaque causal context handed to clients.
//!
//! A GET returns the version vector of everything it saw; the client sends
//! it back unchanged with its next write so that write supersedes exactly
//! those versions. Clients must treat it as opaque: it is a format byte plus
//! the postcard-encoded vector, in unpadded URL-safe base64 (safe in headers).

use crate::version::VersionVector;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

const FORMAT: u8 = 1;
/// Contexts are small (a few entries); anything longer is not one of ours.
const MAX_ENCODED_LEN: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid causal context: {0}")]
pub struct ContextError(&'static str);

pub fn encode(context: &VersionVector) -> String {
    let mut bytes = vec![FORMAT];
    bytes.extend(postcard::to_stdvec(context).unwrap_or_default());
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode(text: &str) -> Result<VersionVector, ContextError> {
    if text.len() > MAX_ENCODED_LEN {
        return Err(ContextError("too long"));
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| ContextError("not base64url"))?;
    match bytes.split_first() {
        Some((&FORMAT, body)) => {
            postcard::from_bytes(body).map_err(|_| ContextError("corrupt encoding"))
        }
        Some(_) => Err(ContextError("unknown format version")),
        None => Err(ContextError("empty")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Dot;

    #[test]
    fn contexts_round_trip() {
        let mut v = VersionVector::new();
        v.add(&Dot::new("n1", 7), 1_700_000_000_000);
        v.add(&Dot::new("n2", 1), 1_700_000_000_001);
        assert_eq!(decode(&encode(&v)), Ok(v));
        assert_eq!(
            decode(&encode(&VersionVector::new())),
            Ok(VersionVector::new())
        );
    }

    #[test]
    fn garbage_contexts_are_rejected_not_panicked_on() {
        for bad in ["", "!!!", "AAAA", "Ag", &"A".repeat(20_000), "AQ-_-_-_-_"] {
            assert!(decode(bad).is_err(), "{bad:?} decoded");
        }
    }
}
