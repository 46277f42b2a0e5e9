//! Types that hold credentials and never print them.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// A bearer token (an inbound access token or a downstream token).
///
/// `Debug` and `Display` print `[redacted]`; the only way to read the token is
/// [`BearerToken::expose`], which makes every use greppable. Cloning is cheap.
#[derive(Clone)]
pub struct BearerToken(Arc<str>, Arc<OnceLock<[u8; 32]>>);

impl PartialEq for BearerToken {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for BearerToken {}

impl BearerToken {
    /// Wraps a token string.
    pub fn new(token: impl Into<Arc<str>>) -> Self {
        Self(token.into(), Arc::default())
    }

    /// Returns the token itself. Never log or return it to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the token, used wherever a token needs an identity
    /// (cache keys) without being stored. Computed once per token (and its clones).
    pub fn sha256(&self) -> [u8; 32] {
        *self
            .1
            .get_or_init(|| crate::digest::sha256(self.0.as_bytes()))
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken([redacted])")
    }
}

impl fmt::Display for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A secret string such as a client secret. `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Arc<str>);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<Arc<str>>) -> Self {
        Self(secret.into())
    }

    /// Returns the secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let t = BearerToken::new("eyJhbGciOiJSUzI1NiJ9.secret.sig");
        assert!(!format!("{t:?}").contains("secret"));
        assert!(!format!("{t}").contains("secret"));
        assert_eq!(t.expose(), "eyJhbGciOiJSUzI1NiJ9.secret.sig");
        let s = SecretString::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }

    #[test]
    fn digest_identifies_token() {
        let a = BearerToken::new("a");
        assert_eq!(a.sha256(), BearerToken::new("a").sha256());
        assert_ne!(a.sha256(), BearerToken::new("b").sha256());
    }
}
