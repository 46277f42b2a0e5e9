//! Sealing of L2 entries: AES-256-GCM under the configured key, a random 96-bit
//! nonce per entry, and the entry's identity as associated data.
//!
//! Sealed value: `version (1) || key id (4) || nonce (12) || ciphertext || tag (16)`.
//! The key id (the first 4 bytes of a SHA-256 of the key) tells a reader which of
//! its keys (current or old) opened it, so keys can be rotated without a flag day.

use std::fmt;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Format version of sealed values (first byte).
pub(crate) const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
const TAG_LEN: usize = 16;

/// 32 bytes of key material from configuration. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct L2Key([u8; 32]);

impl L2Key {
    /// Parses standard base64 (`openssl rand -base64 32`) of exactly 32 bytes.
    pub(crate) fn from_base64(encoded: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| "is not standard base64 (generate one with `openssl rand -base64 32`)")?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("must decode to 32 bytes, not {}", bytes.len()))?;
        Ok(Self(key))
    }

    /// A short public name of the key, stored in clear beside each value.
    fn id(&self) -> [u8; KEY_ID_LEN] {
        let mut input = b"axum-obo-l2-key-id".to_vec();
        input.extend_from_slice(&self.0);
        let digest = crate::digest::sha256(&input);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        id
    }
}

impl fmt::Debug for L2Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("L2Key([redacted])")
    }
}

/// Why a stored value was not accepted. Every reason is treated as a miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Too short, or not a format this version writes.
    Malformed,
    /// Sealed under a key that is neither the current one nor an old one.
    UnknownKey,
    /// Authentication failed: modified, or moved from another entry's key.
    Forged,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed value",
            Self::UnknownKey => "sealed under a key not configured here",
            Self::Forged => "authentication failed (modified or moved)",
        })
    }
}

struct SealingKey {
    id: [u8; KEY_ID_LEN],
    key: RandomizedNonceKey,
}

impl SealingKey {
    fn new(key: &L2Key) -> Option<Self> {
        Some(Self {
            id: key.id(),
            key: RandomizedNonceKey::new(&AES_256_GCM, &key.0).ok()?,
        })
    }
}

/// Seals with the current key; opens with the current key or any old one.
pub(crate) struct Sealer {
    current: SealingKey,
    old: Vec<SealingKey>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("old_keys", &self.old.len())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// `None` only if the AEAD refuses a 32-byte key (it does not).
    pub(crate) fn new(current: &L2Key, old: &[L2Key]) -> Option<Self> {
        Some(Self {
            current: SealingKey::new(current)?,
            old: old.iter().filter_map(SealingKey::new).collect(),
        })
    }

    /// Encrypts and authenticates `plaintext`, binding `aad`.
    pub(crate) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        let mut body = Vec::with_capacity(plaintext.len() + TAG_LEN);
        body.extend_from_slice(plaintext);
        let nonce = self
            .current
            .key
            .seal_in_place_append_tag(Aad::from(aad), &mut body)
            .ok()?;
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&body);
        Some(out)
    }

    /// Checks and decrypts a sealed value under `aad`.
    pub(crate) fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Rejected> {
        if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(Rejected::Malformed);
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        let nonce_bytes = &sealed[1 + KEY_ID_LEN..HEADER_LEN];
        let mut candidates = std::iter::once(&self.current)
            .chain(&self.old)
            .filter(|k| k.id == id)
            .peekable();
        if candidates.peek().is_none() {
            return Err(Rejected::UnknownKey);
        }
        for k in candidates {
            let nonce =
                Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| Rejected::Malformed)?;
            let mut body = sealed[HEADER_LEN..].to_vec();
            if let Ok(plain) = k.key.open_in_place(nonce, Aad::from(aad), &mut body) {
                let len = plain.len();
                body.truncate(len);
                return Ok(body);
            }
        }
        Err(Rejected::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> L2Key {
        L2Key([b; 32])
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let s = Sealer::new(&key(1), &[]).unwrap();
        let a = s.seal(b"aad", b"hello").unwrap();
        let b = s.seal(b"aad", b"hello").unwrap();
        assert_ne!(a, b, "a new nonce every time");
        assert_eq!(a.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(a[0], VERSION);
        assert_eq!(s.open(b"aad", &a).unwrap(), b"hello");
    }

    #[test]
    fn any_change_is_rejected() {
        let s = Sealer::new(&key(1), &[]).unwrap();
        let sealed = s.seal(b"aad", b"hello world").unwrap();
        assert_eq!(s.open(b"other", &sealed), Err(Rejected::Forged));
        for i in 0..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert!(s.open(b"aad", &t).is_err(), "byte {i}");
        }
        assert_eq!(
            s.open(b"aad", &sealed[..HEADER_LEN]),
            Err(Rejected::Malformed)
        );
        assert_eq!(s.open(b"aad", b""), Err(Rejected::Malformed));
    }

    #[test]
    fn rotation_reads_old_keys_and_writes_the_new_one() {
        let old = Sealer::new(&key(1), &[]).unwrap();
        let rotated = Sealer::new(&key(2), &[key(1)]).unwrap();
        let by_old = old.seal(b"k", b"v1").unwrap();
        assert_eq!(rotated.open(b"k", &by_old).unwrap(), b"v1");
        let by_new = rotated.seal(b"k", b"v2").unwrap();
        assert_eq!(by_new[1..5], key(2).id());
        assert_eq!(old.open(b"k", &by_new), Err(Rejected::UnknownKey));
    }

    #[test]
    fn keys_parse_from_base64_and_never_print() {
        let k = L2Key::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        assert_eq!(k, key(7));
        assert!(L2Key::from_base64("not base64!").is_err());
        let e = L2Key::from_base64(&STANDARD.encode([7u8; 16])).unwrap_err();
        assert!(e.contains("32 bytes, not 16"), "{e}");
        assert_eq!(format!("{k:?}"), "L2Key([redacted])");
    }
}
