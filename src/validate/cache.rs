//! Successful validations, keyed by the SHA-256 of the token (never the token),
//! kept until the token's `exp`.

use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::claims::Principal;

#[derive(Clone)]
struct Entry {
    principal: Principal,
    /// How long the entry may live (until `exp` + leeway, by the injected clock).
    ttl: Duration,
}

struct UntilExp;

impl Expiry<[u8; 32], Entry> for UntilExp {
    fn expire_after_create(&self, _: &[u8; 32], v: &Entry, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Bounded cache of validated tokens.
pub(crate) struct ValidatedCache {
    inner: Cache<[u8; 32], Entry>,
}

impl ValidatedCache {
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            inner: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build(),
        }
    }

    /// The cached principal for a token digest, if any.
    pub(crate) fn get(&self, digest: &[u8; 32]) -> Option<Principal> {
        self.inner.get(digest).map(|e| e.principal)
    }

    /// Remembers a validation for `ttl`.
    pub(crate) fn insert(&self, digest: [u8; 32], principal: Principal, ttl: Duration) {
        if !ttl.is_zero() {
            self.inner.insert(digest, Entry { principal, ttl });
        }
    }
}
