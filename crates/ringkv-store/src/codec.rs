//! The on-disk format, shared by both engines so they behave alike.
//!
//! # Keys: layout [`KEY_LAYOUT_VERSION`] 2
//!
//! A user key is stored under the *physical key* `token ++ key`, where
//! `token` is the key's ring token ([`Ring::key_token`], xxh3-64 of the key)
//! as 8 big-endian bytes ([`physical_key`]). Byte order of physical keys is
//! then token order (ties broken by the key bytes), so
//! [`Store::scan`](ringkv_core::store::Store::scan) of a token range is one
//! native range scan ([`scan_bounds`]). Layout 1 (the first, never deployed
//! builds) stored the bare user key; the disk engine records the layout it
//! writes and refuses a database of another layout (no migration).
//!
//! # Values: format [`FORMAT_VERSION`] 1
//!
//! One format-version byte, then the postcard encoding of the key's
//! [`SiblingSet`]. The version byte lets a later release change the encoding
//! and still read what an older one wrote. Decoding never panics: an unknown
//! version, an empty value or bytes postcard cannot parse all give a
//! [`StoreError`].

use ringkv_core::ring::{Ring, Token};
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::StoreError;
use std::ops::Bound;

/// The value format version this release writes (and the only one it reads).
pub const FORMAT_VERSION: u8 = 1;

/// The key layout this release writes (and the only one it reads): 2, keys
/// prefixed by their token. See the [module docs](self).
pub const KEY_LAYOUT_VERSION: u8 = 2;

/// Bytes of the token prefix of a physical key.
pub const TOKEN_LEN: usize = std::mem::size_of::<Token>();

/// The longest key the store accepts. fjall's journal records a key's length
/// in 16 bits, so a longer key would be silently truncated there; the
/// physical key adds [`TOKEN_LEN`] bytes to the user key. Both engines
/// refuse longer keys so the memory engine behaves like the disk one.
pub const MAX_KEY_LEN: usize = u16::MAX as usize - TOKEN_LEN;

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

/// The physical key of a user key: its token (big-endian) then the key.
pub fn physical_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TOKEN_LEN + key.len());
    out.extend_from_slice(&Ring::key_token(key).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Split a stored physical key into its token and user key, checking that
/// the token is the key's: a mismatch or a key too short to hold a token
/// and a non-empty user key is corruption, reported as a [`StoreError`].
pub fn split_physical_key(physical: &[u8]) -> Result<(Token, &[u8]), StoreError> {
    if physical.len() <= TOKEN_LEN {
        return Err(StoreError(format!(
            "corrupt stored key: {} bytes, too short for a token and a key",
            physical.len()
        )));
    }
    let (prefix, key) = physical.split_at(TOKEN_LEN);
    let mut token = [0u8; TOKEN_LEN];
    token.copy_from_slice(prefix);
    let token = Token::from_be_bytes(token);
    let expected = Ring::key_token(key);
    if token != expected {
        return Err(StoreError(format!(
            "corrupt stored key: prefixed with token {token:#018x}, but the key's token is \
             {expected:#018x}"
        )));
    }
    Ok((token, key))
}

/// Bounds on physical keys, as given by [`scan_bounds`]: a native range for
/// fjall (`Keyspace::range`) and, as slices, for a `BTreeMap`.
pub type KeyRange = (Bound<[u8; TOKEN_LEN]>, Bound<[u8; TOKEN_LEN]>);

/// The physical-key bounds of the tokens `from..=to`: from the first
/// possible key of token `from` up to (excluding) the first of token
/// `to + 1`, or to the end when `to` is the last token. An inverted range
/// (`from > to`, a wrapping range the caller did not split) is an error
/// rather than a silently empty scan.
pub fn scan_bounds(from: Token, to: Token) -> Result<KeyRange, StoreError> {
    if from > to {
        return Err(StoreError(format!(
            "scan of an inverted token range {from:#018x}..={to:#018x}: \
             split wrapping ranges in two"
        )));
    }
    let end = match to.checked_add(1) {
        Some(next) => Bound::Excluded(next.to_be_bytes()),
        None => Bound::Unbounded,
    };
    Ok((Bound::Included(from.to_be_bytes()), end))
}

/// Decode a value met by a scan, naming its token in the error.
pub fn decode_scanned(token: Token, bytes: &[u8]) -> Result<SiblingSet, StoreError> {
    decode(bytes)
        .map_err(|e| StoreError(format!("{} (scanning the key of token {token:#018x})", e.0)))
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
                min_counter: 0,
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
        // The physical key of the longest key still fits fjall's 16 bits.
        assert_eq!(
            physical_key(&vec![0u8; MAX_KEY_LEN]).len(),
            u16::MAX as usize
        );
        assert!(check_key(&vec![0u8; MAX_KEY_LEN]).is_ok());
        assert!(check_key(&vec![0u8; MAX_KEY_LEN + 1]).is_err());
        assert!(check_key(b"").is_err());
        assert!(check_key(b"k").is_ok());
    }

    #[test]
    fn physical_keys() {
        let p = physical_key(b"hello");
        assert_eq!(&p[..TOKEN_LEN], &0x9555e8555c62dcfdu64.to_be_bytes());
        assert_eq!(&p[TOKEN_LEN..], b"hello");
        assert_eq!(
            split_physical_key(&p).unwrap(),
            (0x9555e8555c62dcfd, &b"hello"[..])
        );
        // Too short, or a token that is not the key's: errors, not panics.
        assert!(split_physical_key(&p[..TOKEN_LEN]).is_err());
        assert!(split_physical_key(b"").is_err());
        let mut bad = p.clone();
        bad[0] ^= 1;
        assert!(split_physical_key(&bad).is_err());

        assert_eq!(
            scan_bounds(1, 2).unwrap(),
            (
                Bound::Included(1u64.to_be_bytes()),
                Bound::Excluded(3u64.to_be_bytes())
            )
        );
        assert_eq!(
            scan_bounds(0, u64::MAX).unwrap(),
            (Bound::Included([0; TOKEN_LEN]), Bound::Unbounded)
        );
        assert!(scan_bounds(5, 5).is_ok());
        assert!(scan_bounds(6, 5).is_err());
    }
}
