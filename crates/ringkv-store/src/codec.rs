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
//! # Values: format [`FORMAT_VERSION`] 3
//!
//! One format-version byte, then the postcard encoding of the key's
//! [`SiblingSet`]. The version byte lets a later release change the encoding
//! and still read what an older one wrote. Decoding never panics: an unknown
//! version, an empty value or bytes postcard cannot parse all give a
//! [`StoreError`]. Older formats still decode, and are rewritten in format 3
//! the next time the key changes:
//! * format 2 had no expiry per sibling (it decodes as "never expires");
//! * format 1 also stored each sibling's context as a plain version
//!   vector, each entry meaning every event up to its counter (see
//!   [`ringkv_core::context`]).
//!
//! # Hints: key layout and value format [`HINT_FORMAT_VERSION`] 3
//!
//! Hints (replicas a stand-in keeps for a down owner) live apart from the
//! data, under the *hint key* `len ++ owner ++ key` ([`hint_key`]): `len` is
//! the owner id's length in bytes as one byte (so owner ids are at most
//! [`MAX_OWNER_LEN`] bytes), then the owner id, then the user key. Each
//! owner's hints are thus contiguous, keys in byte order within an owner;
//! owners sort by id length first, then by bytes (the length prefix comes
//! first), which is why [`Store::scan_hints`] promises grouping by owner and
//! not byte order of owners. The value is one format-version byte, then the
//! postcard encoding of the [`Hint`]; decoding never panics, like values.
//!
//! [`Store::scan_hints`]: ringkv_core::store::Store::scan_hints

use ringkv_core::context::VersionVector;
use ringkv_core::ring::{Ring, Token};
use ringkv_core::siblings::SiblingSet;
use ringkv_core::store::{Hint, StoreError};
use ringkv_core::version::CausalContext;
use ringkv_core::NodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::ops::Bound;

/// The value format version this release writes; it also reads
/// [`NO_EXPIRY_FORMAT_VERSION`] and [`LEGACY_FORMAT_VERSION`].
pub const FORMAT_VERSION: u8 = 3;

/// The hint value format version this release writes; it also reads the
/// older ones, as values.
pub const HINT_FORMAT_VERSION: u8 = 3;

/// Values and hints whose siblings had no expiry.
pub const NO_EXPIRY_FORMAT_VERSION: u8 = 2;

/// Values and hints with contexts as plain version vectors (and no expiry).
pub const LEGACY_FORMAT_VERSION: u8 = 1;

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

/// The longest owner id a hint key can hold: its length is one byte.
pub const MAX_OWNER_LEN: usize = u8::MAX as usize;

/// The longest physical key fjall stores (16-bit key lengths); it panics on
/// longer ones, so every physical key is checked against it first.
const MAX_PHYSICAL_KEY_LEN: usize = u16::MAX as usize;

/// Encode a sibling set as a stored value.
pub fn encode(siblings: &SiblingSet) -> Result<Vec<u8>, StoreError> {
    encode_versioned(siblings, FORMAT_VERSION, "sibling set", "value")
}

/// Decode a stored value written by [`encode`] (or by a release that
/// wrote format 1).
pub fn decode(bytes: &[u8]) -> Result<SiblingSet, StoreError> {
    match bytes.first() {
        Some(&LEGACY_FORMAT_VERSION) => {
            let old: old::SiblingSet<VersionVector> =
                decode_versioned(bytes, LEGACY_FORMAT_VERSION, "value")?;
            Ok(old.upgrade())
        }
        Some(&NO_EXPIRY_FORMAT_VERSION) => {
            let old: old::SiblingSet<CausalContext> =
                decode_versioned(bytes, NO_EXPIRY_FORMAT_VERSION, "value")?;
            Ok(old.upgrade())
        }
        _ => decode_versioned(bytes, FORMAT_VERSION, "value"),
    }
}

/// Encode a hint as a stored hint value.
pub fn encode_hint(hint: &Hint) -> Result<Vec<u8>, StoreError> {
    encode_versioned(hint, HINT_FORMAT_VERSION, "hint", "hint")
}

/// Decode a stored hint value written by [`encode_hint`] (or by a release
/// that wrote an older format).
pub fn decode_hint(bytes: &[u8]) -> Result<Hint, StoreError> {
    match bytes.first() {
        Some(&LEGACY_FORMAT_VERSION) => {
            let old: old::Hint<VersionVector> =
                decode_versioned(bytes, LEGACY_FORMAT_VERSION, "hint")?;
            Ok(old.upgrade())
        }
        Some(&NO_EXPIRY_FORMAT_VERSION) => {
            let old: old::Hint<CausalContext> =
                decode_versioned(bytes, NO_EXPIRY_FORMAT_VERSION, "hint")?;
            Ok(old.upgrade())
        }
        _ => decode_versioned(bytes, HINT_FORMAT_VERSION, "hint"),
    }
}

/// The shapes formats 1 and 2 stored, decoded only to be upgraded: no
/// expiry, and in format 1 each context a plain version vector (`C`).
mod old {
    use ringkv_core::context::VersionVector;
    use ringkv_core::version::{CausalContext, Dot};
    use ringkv_core::Millis;
    use serde::Deserialize;

    /// A context as an older format stored it.
    pub trait OldContext {
        fn upgrade(self) -> CausalContext;
    }

    impl OldContext for VersionVector {
        fn upgrade(self) -> CausalContext {
            self.into_context()
        }
    }

    impl OldContext for CausalContext {
        fn upgrade(self) -> CausalContext {
            self
        }
    }

    #[derive(Deserialize)]
    pub struct Sibling<C> {
        dot: Dot,
        context: C,
        timestamp: Millis,
        value: Option<Vec<u8>>,
    }

    #[derive(Deserialize)]
    pub struct SiblingSet<C> {
        siblings: Vec<Sibling<C>>,
    }

    #[derive(Deserialize)]
    pub struct Hint<C> {
        stored_at: Millis,
        siblings: SiblingSet<C>,
    }

    impl<C: OldContext> SiblingSet<C> {
        pub fn upgrade(self) -> ringkv_core::siblings::SiblingSet {
            self.siblings
                .into_iter()
                .map(|s| ringkv_core::siblings::Sibling {
                    dot: s.dot,
                    context: s.context.upgrade(),
                    timestamp: s.timestamp,
                    value: s.value,
                    expires_at: None,
                })
                .collect()
        }
    }

    impl<C: OldContext> Hint<C> {
        pub fn upgrade(self) -> ringkv_core::store::Hint {
            ringkv_core::store::Hint {
                stored_at: self.stored_at,
                siblings: self.siblings.upgrade(),
            }
        }
    }
}

/// `version` then the postcard encoding of `item`, at most
/// [`MAX_VALUE_LEN`] bytes.
fn encode_versioned<T: Serialize>(
    item: &T,
    version: u8,
    what: &str,
    stored: &str,
) -> Result<Vec<u8>, StoreError> {
    let out = postcard::to_extend(item, vec![version])
        .map_err(|e| StoreError(format!("cannot encode {what}: {e}")))?;
    if out.len() > MAX_VALUE_LEN {
        return Err(StoreError(format!(
            "encoded {stored} is {} bytes, more than the {MAX_VALUE_LEN} the store accepts",
            out.len()
        )));
    }
    Ok(out)
}

/// Decode what [`encode_versioned`] wrote with `version`: any other version
/// byte, a missing one, or bytes postcard cannot parse (trailing bytes
/// included) are a [`StoreError`] about the stored `what`.
fn decode_versioned<T: DeserializeOwned>(
    bytes: &[u8],
    version: u8,
    what: &str,
) -> Result<T, StoreError> {
    match bytes.split_first() {
        None => Err(StoreError(format!(
            "stored {what} is empty (no format version byte)"
        ))),
        Some((&v, body)) if v == version => {
            let (item, rest): (T, &[u8]) = postcard::take_from_bytes(body)
                .map_err(|e| StoreError(format!("corrupt stored {what}: {e}")))?;
            if !rest.is_empty() {
                return Err(StoreError(format!(
                    "corrupt stored {what}: {} trailing bytes",
                    rest.len()
                )));
            }
            Ok(item)
        }
        Some((&v, _)) => Err(StoreError(format!(
            "stored {what} has unknown format version {v} (this build reads {version})"
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

/// The hint key of `owner`'s copy of `key`: `len(owner) ++ owner ++ key`
/// (see the [module docs](self)). Refused with a [`StoreError`]: an owner id
/// longer than [`MAX_OWNER_LEN`], a key [`check_key`] refuses, and a hint key
/// longer than fjall stores (a key near [`MAX_KEY_LEN`] with a long owner id).
pub fn hint_key(owner: &NodeId, key: &[u8]) -> Result<Vec<u8>, StoreError> {
    check_key(key)?;
    let owner = owner.as_str().as_bytes();
    let Ok(len) = u8::try_from(owner.len()) else {
        return Err(StoreError(format!(
            "owner id is {} bytes, more than the {MAX_OWNER_LEN} a hint can name",
            owner.len()
        )));
    };
    let total = 1 + owner.len() + key.len();
    if total > MAX_PHYSICAL_KEY_LEN {
        return Err(StoreError(format!(
            "a hint for a key of {} bytes and an owner id of {} bytes needs a {total}-byte \
             hint key, more than the {MAX_PHYSICAL_KEY_LEN} the store accepts",
            key.len(),
            owner.len()
        )));
    }
    let mut out = Vec::with_capacity(total);
    out.push(len);
    out.extend_from_slice(owner);
    out.extend_from_slice(key);
    Ok(out)
}

/// Split a stored hint key into its owner id and user key: a key too short
/// for its owner length and a non-empty user key, or an owner id that is
/// not UTF-8, is corruption, reported as a [`StoreError`].
pub fn split_hint_key(stored: &[u8]) -> Result<(&str, &[u8]), StoreError> {
    let Some((&len, rest)) = stored.split_first() else {
        return Err(StoreError("corrupt stored hint key: empty".into()));
    };
    let len = usize::from(len);
    if rest.len() <= len {
        return Err(StoreError(format!(
            "corrupt stored hint key: {} bytes, too short for an owner id of {len} bytes \
             and a key",
            stored.len()
        )));
    }
    let (owner, key) = rest.split_at(len);
    let owner = std::str::from_utf8(owner).map_err(|e| {
        StoreError(format!(
            "corrupt stored hint key: owner id is not UTF-8: {e}"
        ))
    })?;
    Ok((owner, key))
}

/// Decode a hint value met by a scan, naming its owner and key length in
/// the error.
pub fn decode_scanned_hint(owner: &str, key: &[u8], bytes: &[u8]) -> Result<Hint, StoreError> {
    decode_hint(bytes).map_err(|e| {
        StoreError(format!(
            "{} (scanning the hint for owner {owner:?} of a {}-byte key)",
            e.0,
            key.len()
        ))
    })
}

/// Walk stored hints (hint key, encoded hint) in key order, decoding each
/// and handing it to `visit` until it returns false; the first corrupt key
/// or value ends the walk with its error. Both engines scan through it.
pub fn visit_hints<K, V>(
    entries: impl IntoIterator<Item = Result<(K, V), StoreError>>,
    visit: &mut dyn FnMut(&NodeId, &[u8], &Hint) -> bool,
) -> Result<(), StoreError>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    // One `NodeId` per run of an owner's hints, not one per hint.
    let mut current = NodeId::new(String::new());
    for entry in entries {
        let (stored, bytes) = entry?;
        let (owner, key) = split_hint_key(stored.as_ref())?;
        let hint = decode_scanned_hint(owner, key, bytes.as_ref())?;
        if current.as_str() != owner {
            current = NodeId::from(owner);
        }
        if !visit(&current, key, &hint) {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::siblings::{NewVersion, WriteLimits};
    use ringkv_core::version::{CausalContext, Dot};
    use ringkv_core::NodeId;

    fn sample() -> SiblingSet {
        let mut set = SiblingSet::new();
        set.write(
            &NodeId::from("n1"),
            &CausalContext::new(),
            Some(b"hello".to_vec()),
            1_700_000_000_000,
            WriteLimits {
                max_siblings: 8,
                max_clock_entries: 10,
                young_clock_ms: 20_000,
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

    /// A value as format 1 stored it: one sibling `n1:2` ("hi", timestamp
    /// 5) written against the plain vector {n1: 1}.
    #[test]
    fn format_1_values_and_hints_upgrade_with_their_meaning() {
        let mut v1 = vec![LEGACY_FORMAT_VERSION, 1, 2, b'n', b'1', 2];
        v1.extend([1, 2, b'n', b'1', 1, 5, 5, 1, 2, b'h', b'i']);
        let set = decode(&v1).expect("format 1 decodes");
        let only = set.iter().next().expect("one sibling");
        assert_eq!(only.value.as_deref(), Some(&b"hi"[..]));
        assert_eq!(only.dot, Dot::new("n1", 2));
        assert!(only.context.covers(&Dot::new("n1", 1)));
        let mut hint = vec![LEGACY_FORMAT_VERSION, 7];
        hint.extend(&v1[1..]);
        assert_eq!(decode_hint(&hint).expect("format 1 hint").siblings, set);
        assert_eq!(encode(&set).unwrap()[0], FORMAT_VERSION);
    }

    /// Format 2 is format 3 without the expiry: written by a release
    /// before expiry, it reads as never expiring, for values and hints.
    #[test]
    fn format_2_values_and_hints_read_as_never_expiring() {
        #[derive(serde::Serialize)]
        struct V2<'a> {
            dot: &'a Dot,
            context: &'a CausalContext,
            timestamp: u64,
            value: &'a Option<Vec<u8>>,
        }
        let set = sample();
        let v2: Vec<V2> = set
            .iter()
            .map(|s| V2 {
                dot: &s.dot,
                context: &s.context,
                timestamp: s.timestamp,
                value: &s.value,
            })
            .collect();
        let bytes = postcard::to_extend(&(v2,), vec![NO_EXPIRY_FORMAT_VERSION]).unwrap();
        assert_eq!(decode(&bytes).expect("format 2 decodes"), set);
        let mut hint = vec![NO_EXPIRY_FORMAT_VERSION, 7];
        hint.extend(&bytes[1..]);
        assert_eq!(decode_hint(&hint).expect("format 2 hint").siblings, set);
        // Format 3 keeps the expiry.
        let mut expiring = SiblingSet::new();
        let limits = WriteLimits {
            max_siblings: 8,
            max_clock_entries: 10,
            young_clock_ms: 20_000,
            min_counter: 0,
        };
        let (node, ctx) = (NodeId::from("n1"), CausalContext::new());
        let version = NewVersion::new(Some(b"cart".to_vec()), Some(1_700_000_002_000));
        expiring
            .write_version(&node, &ctx, version, 1_700_000_000_000, limits)
            .unwrap();
        let read = decode(&encode(&expiring).unwrap()).unwrap();
        assert_eq!(
            read.iter().next().unwrap().expires_at,
            Some(1_700_000_002_000)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = encode(&sample()).unwrap();
        assert!(decode(&[]).is_err());
        assert!(decode(&[2]).is_err());
        assert!(decode(&[1]).is_err());
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
    fn hint_round_trip_and_garbage() {
        for hint in [
            Hint {
                stored_at: 0,
                siblings: SiblingSet::new(),
            },
            Hint {
                stored_at: 1_700_000_000_123,
                siblings: sample(),
            },
        ] {
            let bytes = encode_hint(&hint).unwrap();
            assert_eq!(bytes[0], HINT_FORMAT_VERSION);
            assert_eq!(decode_hint(&bytes).unwrap(), hint);
        }
        let good = encode_hint(&Hint {
            stored_at: 7,
            siblings: sample(),
        })
        .unwrap();
        assert!(decode_hint(&[]).is_err());
        assert!(decode_hint(&[2]).is_err());
        assert!(decode_hint(&[1]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_hint(&trailing).is_err());
        for len in 0..good.len() {
            let _ = decode_hint(&good[..len]);
        }
        for i in 0..good.len() {
            for b in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] = b;
                let _ = decode_hint(&bad);
            }
        }
        let err = decode_hint(&[9, 0]).unwrap_err();
        assert!(
            err.to_string()
                .contains("stored hint has unknown format version 9"),
            "{err}"
        );
    }

    #[test]
    fn hint_keys() {
        let owner = NodeId::from("n1");
        let stored = hint_key(&owner, b"key").unwrap();
        assert_eq!(stored, b"\x02n1key");
        assert_eq!(split_hint_key(&stored).unwrap(), ("n1", &b"key"[..]));
        // An empty owner id is representable; an empty key is not.
        assert_eq!(hint_key(&NodeId::from(""), b"k").unwrap(), b"\x00k");
        assert!(hint_key(&owner, b"").is_err());
        // The longest owner id, and one byte more.
        let longest = NodeId::new("o".repeat(MAX_OWNER_LEN));
        let stored = hint_key(&longest, b"k").unwrap();
        assert_eq!(stored[0], 255);
        assert_eq!(split_hint_key(&stored).unwrap().0, longest.as_str());
        let err = hint_key(&NodeId::new("o".repeat(MAX_OWNER_LEN + 1)), b"k").unwrap_err();
        assert!(err.to_string().contains("owner id is 256 bytes"), "{err}");
        // The whole hint key must fit fjall's 16-bit key length.
        // With a short owner id every storable key fits...
        assert!(hint_key(&owner, &vec![0; MAX_KEY_LEN]).is_ok());
        assert!(hint_key(&owner, &vec![0; MAX_KEY_LEN + 1]).is_err());
        // ...but not with a long one (64 bytes, the most a config allows).
        let long = NodeId::new("o".repeat(64));
        let room = MAX_PHYSICAL_KEY_LEN - 1 - 64;
        assert_eq!(hint_key(&long, &vec![0; room]).unwrap().len(), 65535);
        let err = hint_key(&long, &vec![0; room + 1]).unwrap_err();
        assert!(err.to_string().contains("65536-byte hint key"), "{err}");
        // Corrupt hint keys are errors, not panics.
        assert!(split_hint_key(b"").is_err());
        assert!(split_hint_key(b"\x02n1").is_err());
        assert!(split_hint_key(b"\x05n1").is_err());
        assert!(split_hint_key(b"\x01\xffk").is_err());
        assert_eq!(split_hint_key(b"\x00k").unwrap(), ("", &b"k"[..]));
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
