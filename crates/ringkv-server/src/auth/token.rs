//! Bearer tokens: made here, and known to the node only by their hash.
//!
//! A token is `rk_` followed by base64url (no padding) of 32 bytes from the
//! operating system's random source: 256 bits that nobody can guess, with a
//! prefix that secret scanners and people recognise. Tokens are stored as
//! their SHA-256, never in clear. A fast hash is enough, as GitHub does for
//! its tokens: slow password hashes (bcrypt, argon2) exist to make guessing
//! *low-entropy* passwords from a stolen hash expensive, and no amount of
//! guessing finds a 256-bit random token from its hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// Every token starts with this.
pub const TOKEN_PREFIX: &str = "rk_";

/// A new random token; fails only when the OS has no random source.
pub fn generate() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The lowercase hex SHA-256 of `token`, as the users file stores it.
pub fn hash(token: &str) -> String {
    digest(&SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hash_to_64_hex_digits() {
        let (a, b) = (generate().unwrap(), generate().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
