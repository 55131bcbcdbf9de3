//! The on-disk value format: one format-version byte, then the postcard
//! encoding of the key's [`SiblingSet`].
//!
//! The version byte lets a later release change the encoding and still read
//! what an older one wrote. Decoding never panics: an unknown version, an
//! empty value or bytes postcard cannot parse all give a [`StoreError`].

use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::StoreError;

/// The format version this release writes (and the only one it reads).
pub const FORMAT_VERSION: u8 = 1;

/// The longest key the store accepts. fjall's journal records a key's length
/// in 16 bits, so a longer key would be silently truncated there; both
/// engines refuse it so the memory engine behaves like the disk one.
pub const MAX_KEY_LEN: usize = u16::MAX as usize;

/// The longest encoded value the store accepts (fjall: 32-bit lengths).
pub const MAX_VALUE_LEN: usize = u32::MAX as usize;

/// Encode a sibling set as a stored value.
pub fn encode(siblings: &SiblingSet) -> Result<Vec<u8>, StoreError> {
    let out = postcard::to_extend(siblings, vec![FORMAT_VERSION])
        .map_err(|e| StoreError(format!("cannot encode sibling set: {e}")))?;
    if out.len() > MAX_VALUE_LEN {
        return Err(StoreError(format!(
            "encoded value is {} bytes, more than the {MAX_VALUE_LEN} the store accepts",
            out.len()
        )));
    }
    Ok(out)
}

/// Decode a stored value written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<SiblingSet, StoreError> {
    match bytes.split_first() {
        None => Err(StoreError(
            "stored value is empty (no format version byte)".into(),
        )),
        Some((&FORMAT_VERSION, body)) => {
            let (set, rest): (SiblingSet, &[u8]) = postcard::take_from_bytes(body)
                .map_err(|e| StoreError(format!("corrupt stored value: {e}")))?;
            if !rest.is_empty() {
                return Err(StoreError(format!(
                    "corrupt stored value: {} trailing bytes",
                    rest.len()
                )));
            }
            Ok(set)
        }
        Some((&version, _)) => Err(StoreError(format!(
            "stored value has unknown format version {version} (this build reads {FORMAT_VERSION})"
        ))),
    }
}

/// Refuse keys the disk engine cannot store: empty ones (fjall panics on
/// them) and ones longer than [`MAX_KEY_LEN`] (fjall would truncate them).
pub fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError("empty keys cannot be stored".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError(format!(
            "key is {} bytes, more than the {MAX_KEY_LEN} the store accepts",
            key.len()
        )));
    }
    Ok(())
}

/// Whether `key` passes [`check_key`], i.e. could have been stored.
pub fn is_storable_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::siblings::WriteLimits;
    use ringkv_core::version::VersionVector;
    use ringkv_core::NodeId;

    fn sample() -> SiblingSet {
        let mut set = SiblingSet::new();
        set.write(
            &NodeId::from("n1"),
            &VersionVector::new(),
            Some(b"hello".to_vec()),
            1_700_000_000_000,
            WriteLimits {
                max_siblings: 8,
                max_clock_entries: 10,
            },
        )
        .unwrap();
        set
    }

    #[test]
    fn round_trip() {
        for set in [SiblingSet::new(), sample()] {
            let bytes = encode(&set).unwrap();
            assert_eq!(bytes[0], FORMAT_VERSION);
            assert_eq!(decode(&bytes).unwrap(), set);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = encode(&sample()).unwrap();
        assert!(decode(&[]).is_err());
        assert!(decode(&[2]).is_err());
        assert!(decode(&[0, 1, 2, 3]).is_err());
        assert!(decode(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        // Every truncation and every single-byte corruption decodes to an
        // error or to some set, never a panic.
        for len in 0..good.len() {
            let _ = decode(&good[..len]);
        }
        for i in 0..good.len() {
            for b in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = decode(&bad);
            }
        }
        let err = decode(&[9, 0]).unwrap_err();
        assert!(
            err.to_string().contains("unknown format version 9"),
            "{err}"
        );
    }

    #[test]
    fn empty_and_oversized_keys_are_refused() {
        assert!(check_key(&vec![0u8; MAX_KEY_LEN]).is_ok());
        assert!(check_key(&vec![0u8; MAX_KEY_LEN + 1]).is_err());
        assert!(check_key(b"").is_err());
        assert!(check_key(b"k").is_ok());
    }
}
