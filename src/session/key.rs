//! [`SessionKey`]: the opaque, random handle of a session.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Random bytes in a key: 256 bits.
const KEY_BYTES: usize = 32;
/// Domain separator of the digest that names a session in a store.
const DOMAIN: &[u8] = b"axum-obo-session";

/// The handle of a long-running session: 256 random bits (never derived from the
/// user's token), written as 43 URL-safe base64 characters.
///
/// It is a bearer capability for the user's delegated access: whoever holds it can
/// get tokens for that user (through this API's [`Sessions`](super::Sessions)).
/// Store it like a secret (in the job queue, not in a log). `Debug` is redacted;
/// [`expose`](Self::expose) writes it out and [`FromStr`] reads it back.
///
/// ```
/// use axum_obo::session::SessionKey;
/// let key: SessionKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".parse().unwrap();
/// assert_eq!(format!("{key:?}"), "SessionKey([redacted])");
/// assert!("not a key".parse::<SessionKey>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey {
    text: Box<str>,
    bytes: [u8; KEY_BYTES],
}

impl SessionKey {
    /// A new random key (the operating system's generator, through aws-lc-rs).
    pub(crate) fn generate() -> Self {
        let mut bytes = [0u8; KEY_BYTES];
        // aws-lc-rs's system random never fails on supported platforms; a failure
        // would leave zeros, so refuse to go on rather than hand out a guessable key.
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator failed");
        Self {
            text: URL_SAFE_NO_PAD.encode(bytes).into(),
            bytes,
        }
    }

    /// The key as text, to store in a job queue. Never log it.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The SHA-256 naming this session in stores and caches (unlinkable to the key
    /// without it).
    pub(crate) fn digest(&self) -> [u8; 32] {
        let mut input = Vec::with_capacity(DOMAIN.len() + KEY_BYTES);
        input.extend_from_slice(DOMAIN);
        input.extend_from_slice(&self.bytes);
        crate::digest::sha256(&input)
    }

    /// The key's raw bytes (associated data of sealed records).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A string that is not a session key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session key")]
pub struct InvalidSessionKey;

impl FromStr for SessionKey {
    type Err = InvalidSessionKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let decoded = URL_SAFE_NO_PAD.decode(s).map_err(|_| InvalidSessionKey)?;
        let bytes: [u8; KEY_BYTES] = decoded.try_into().map_err(|_| InvalidSessionKey)?;
        // Only the canonical spelling (no trailing bits set).
        if URL_SAFE_NO_PAD.encode(bytes) != s {
            return Err(InvalidSessionKey);
        }
        Ok(Self {
            text: s.into(),
            bytes,
        })
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_url_safe_and_round_trip() {
        let a = SessionKey::generate();
        let b = SessionKey::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert!(a
            .expose()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let parsed: SessionKey = a.expose().parse().unwrap();
        assert_eq!(parsed, a);
        assert_eq!(parsed.digest(), a.digest());
        assert_ne!(a.digest(), b.digest());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn other_strings_are_not_keys() {
        for s in [
            "",
            "abc",
            &"A".repeat(44),
            &"A".repeat(42),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB",
        ] {
            assert_eq!(s.parse::<SessionKey>(), Err(InvalidSessionKey), "{s}");
        }
    }
}
