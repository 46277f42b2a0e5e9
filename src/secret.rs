//! Types that hold credentials and never print them.

use std::fmt;
use std::sync::{Arc, OnceLock};

/// A bearer token (an inbound access token or a downstream token).
///
/// `Debug` and `Display` print `[redacted]`; the only way to read the token is
/// [`BearerToken::expose`], which makes every use greppable. Cloning is cheap.
#[derive(Clone)]
pub struct BearerToken(Arc<str>, Arc<Memo>);

/// What is derived from a token, computed once per token (shared by its clones).
#[derive(Default)]
struct Memo {
    sha256: OnceLock<[u8; 32]>,
    derived: OnceLock<Derived>,
}

/// A 32-byte value derived from the token in a context (tenant, user and a
/// static scope set): the On-Behalf-Of cache key of the first scope set asked for.
struct Derived {
    tid: Box<str>,
    oid: Box<str>,
    scopes: &'static [&'static str],
    value: [u8; 32],
}

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
            .sha256
            .get_or_init(|| crate::digest::sha256(self.0.as_bytes()))
    }

    /// `derive()`, memoized for the first context it is asked with (tenant,
    /// user and a static scope set, compared by address): a request with the
    /// same cached token and scope type gets it without hashing again.
    pub(crate) fn derived(
        &self,
        tid: &str,
        oid: &str,
        scopes: &'static [&'static str],
        derive: impl FnOnce() -> [u8; 32],
    ) -> [u8; 32] {
        if let Some(d) = self.1.derived.get() {
            if std::ptr::eq(d.scopes, scopes) && *d.tid == *tid && *d.oid == *oid {
                return d.value;
            }
            return derive();
        }
        let value = derive();
        let _ = self.1.derived.set(Derived {
            tid: tid.into(),
            oid: oid.into(),
            scopes,
            value,
        });
        value
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
