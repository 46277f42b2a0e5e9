//! The On-Behalf-Of token cache: bounded by bytes, keyed by a digest of
//! (tenant, user, normalized scopes, inbound token), single-flight per key, with
//! a short negative cache for the refusals Entra would repeat (interaction or
//! consent required, `invalid_grant`): see [`OboError::is_negative_cacheable`].
//!
//! # Where it sits
//!
//! Owned by the exchanger: [`OboCache::lookup`] answers first, and on a miss the
//! exchanger fills the entry through `try_get_with` (one fill per key at a time).
//! [`request_key`] is how every exchange names its entry.
//!
//! # What it guarantees
//!
//! Keys are SHA-256 digests: no tenant, user, scope or token in clear. An entry
//! is served only while fresh by the configured clock and leaves the cache after
//! its real-time TTL; past the byte bound, moka evicts (TinyLFU admission). A
//! refusal is served from the negative cache only when no token is cached.
//!
//! # How it fails
//!
//! It does not: a full cache evicts, a stale entry is a miss.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use super::error::OboError;
use crate::scope::scope_strings;
use crate::secret::BearerToken;

/// A cached downstream token.
#[derive(Debug)]
pub(crate) struct CachedToken {
    pub(crate) access_token: BearerToken,
    /// Expiry, clock seconds.
    pub(crate) expires_at: i64,
    /// Served from the cache until this time (clock seconds); then re-exchanged.
    pub(crate) fresh_until: i64,
    /// Scopes granted (the response's `scope`, else the requested ones).
    pub(crate) scopes: Box<[Box<str>]>,
    /// Real-time lifetime of the entry in the cache.
    pub(crate) ttl: Duration,
}

impl CachedToken {
    /// Bytes held by an entry, for the weigher (key, value and bookkeeping).
    fn weight(&self) -> u32 {
        let scopes: usize = self.scopes.iter().map(|s| s.len() + 16).sum();
        (self.access_token.expose().len() + scopes + 32 + 160).min(u32::MAX as usize) as u32
    }
}

/// Cache key: SHA-256 over tenant, user, normalized scopes and the SHA-256 of
/// the inbound token, each length-prefixed. Holds no identifier or token in clear.
pub(crate) type CacheKey = [u8; 32];

pub(crate) fn cache_key(
    tid: &str,
    oid: &str,
    normalized_scopes: &str,
    assertion: &BearerToken,
) -> CacheKey {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [tid.as_bytes(), oid.as_bytes(), normalized_scopes.as_bytes()] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(&assertion.sha256());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

struct TokenExpiry;

impl Expiry<CacheKey, Arc<CachedToken>> for TokenExpiry {
    fn expire_after_create(
        &self,
        _: &CacheKey,
        v: &Arc<CachedToken>,
        _: Instant,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Counters of the On-Behalf-Of cache, since the layer was built. `Serialize`
/// gives a flat JSON object for a health or metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct OboStats {
    /// Requests served from the cache.
    pub hits: u64,
    /// Requests that found no usable entry.
    pub misses: u64,
    /// Exchanges sent to the token endpoint (after single-flight).
    pub exchanges: u64,
    /// Exchanges that failed.
    pub errors: u64,
    /// Requests answered from the negative cache.
    pub negative_hits: u64,
    /// Requests refused before any network call (app-only or expiring token).
    pub preflight_refusals: u64,
    /// L1 misses served by the Redis L2 (feature `redis`), without an exchange.
    pub l2_hits: u64,
    /// L2 lookups that found no entry, or one no longer fresh.
    pub l2_misses: u64,
    /// L2 values that failed to open (modified, moved to another key, unknown
    /// key, malformed): treated as misses.
    pub l2_rejected: u64,
    /// L2 calls that failed or timed out (the request went on without L2).
    pub l2_errors: u64,
    /// L2 calls skipped because Redis failed within the last second.
    pub l2_skipped: u64,
    /// Tokens written through to the L2.
    pub l2_writes: u64,
    /// Tokens removed from the L2 because a downstream API challenged them and
    /// the re-exchange failed (Continuous Access Evaluation).
    pub l2_evictions: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) exchanges: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) negative_hits: AtomicU64,
    pub(crate) preflight_refusals: AtomicU64,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) l2_misses: AtomicU64,
    pub(crate) l2_rejected: AtomicU64,
    pub(crate) l2_errors: AtomicU64,
    pub(crate) l2_skipped: AtomicU64,
    pub(crate) l2_writes: AtomicU64,
    pub(crate) l2_evictions: AtomicU64,
    /// The L1 hit's metric (feature `metrics`).
    pub(crate) hot: crate::metrics::HotCounters,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> OboStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OboStats {
            hits: l(&self.hits),
            misses: l(&self.misses),
            exchanges: l(&self.exchanges),
            errors: l(&self.errors),
            negative_hits: l(&self.negative_hits),
            preflight_refusals: l(&self.preflight_refusals),
            l2_hits: l(&self.l2_hits),
            l2_misses: l(&self.l2_misses),
            l2_rejected: l(&self.l2_rejected),
            l2_errors: l(&self.l2_errors),
            l2_skipped: l(&self.l2_skipped),
            l2_writes: l(&self.l2_writes),
            l2_evictions: l(&self.l2_evictions),
        }
    }
}

pub(crate) fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// Positive and negative caches.
pub(crate) struct OboCache {
    pub(crate) tokens: Cache<CacheKey, Arc<CachedToken>>,
    pub(crate) negative: Cache<CacheKey, OboError>,
}

impl OboCache {
    pub(crate) fn new(max_bytes: u64, negative_ttl: Duration) -> Self {
        Self {
            tokens: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, v: &Arc<CachedToken>| v.weight())
                .expire_after(TokenExpiry)
                .build(),
            negative: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(negative_ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }

    /// The cache's answer for `key` at `now` (clock seconds): a fresh token, or
    /// (only when no token is cached) a remembered refusal, counted in
    /// `counters`. A token stale by the clock is dropped (that entry only, not a
    /// newer one put there meanwhile) and is a miss: `None`.
    pub(crate) async fn lookup(
        &self,
        key: &CacheKey,
        now: i64,
        counters: &Counters,
    ) -> Option<Result<Arc<CachedToken>, OboError>> {
        let Some(cached) = self.tokens.get(key).await else {
            let refusal = self.negative.get(key).await?;
            bump(&counters.negative_hits);
            crate::metrics::negative_cache_hit();
            return Some(Err(refusal));
        };
        if now < cached.fresh_until {
            bump(&counters.hits);
            crate::metrics::l1_hit(&counters.hot);
            return Some(Ok(cached));
        }
        self.evict(key, &cached).await;
        None
    }

    /// Removes `stale` from `key`'s entry: that token only, not a newer one put
    /// there meanwhile.
    pub(crate) async fn evict(&self, key: &CacheKey, stale: &Arc<CachedToken>) {
        self.tokens
            .entry(*key)
            .and_compute_with(|e| {
                let op = match e {
                    Some(e) if Arc::ptr_eq(e.value(), stale) => moka::ops::compute::Op::Remove,
                    _ => moka::ops::compute::Op::Nop,
                };
                std::future::ready(op)
            })
            .await;
    }
}

/// The scope string sent to the token endpoint for `scopes`, and the cache key of
/// (`tid`, `oid`, `scopes`, `inbound`) over the normalized scopes: how every
/// exchange names its entry.
pub(crate) fn request_key(
    tid: &str,
    oid: &str,
    scopes: &[&str],
    inbound: &BearerToken,
) -> (String, CacheKey) {
    let (sent, normalized) = scope_strings(scopes);
    (sent, cache_key(tid, oid, &normalized, inbound))
}

/// The cache key of (`tid`, `oid`, `scopes`, `inbound`), as [`request_key`]
/// computes it, memoized in the inbound token for its first scope set (a cached
/// inbound token is the same `BearerToken` on every request).
pub(crate) fn memo_key(
    tid: &str,
    oid: &str,
    scopes: &'static [&'static str],
    inbound: &BearerToken,
) -> CacheKey {
    inbound.derived(tid, oid, scopes, || {
        request_key(tid, oid, scopes, inbound).1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_every_component() {
        let a = BearerToken::new("token-a");
        let b = BearerToken::new("token-b");
        let k = cache_key("t", "u", "s", &a);
        assert_eq!(k, cache_key("t", "u", "s", &a));
        assert_ne!(k, cache_key("t2", "u", "s", &a));
        assert_ne!(k, cache_key("t", "u2", "s", &a));
        assert_ne!(k, cache_key("t", "u", "s2", &a));
        assert_ne!(k, cache_key("t", "u", "s", &b));
        // Length prefixes: moving a boundary changes the key.
        assert_ne!(cache_key("ab", "c", "s", &a), cache_key("a", "bc", "s", &a));
    }

    #[test]
    fn memoized_keys_are_the_keys_of_their_own_context() {
        const S1: &[&str] = &["https://graph.microsoft.com/User.Read"];
        const S2: &[&str] = &["https://graph.microsoft.com/Mail.Read"];
        let a = BearerToken::new("token-a");
        let key = |tid, oid, scopes: &'static [&'static str]| {
            (
                memo_key(tid, oid, scopes, &a),
                request_key(tid, oid, scopes, &a).1,
            )
        };
        for (tid, oid, scopes) in [
            ("t", "u", S1),
            ("t", "u", S1),
            ("t", "u", S2),
            ("t2", "u", S1),
            ("t", "u2", S1),
            ("t", "u", S1),
        ] {
            let (memo, fresh) = key(tid, oid, scopes);
            assert_eq!(memo, fresh, "{tid} {oid} {scopes:?}");
        }
        // The memo is the token's: another token with the same context differs.
        let b = BearerToken::new("token-b");
        assert_ne!(memo_key("t", "u", S1, &a), memo_key("t", "u", S1, &b));
    }
}
