//! Hooks for the benchmarks in `benches/` and the fuzz targets (cargo feature
//! `__bench`): thin wrappers over crate-private parts, so that they can be measured
//! or fuzzed alone. Not a public API: hidden from the docs and free to change with
//! any release.
//!
//! Hooks without logic: each wrapper calls the very functions the layer, the
//! extractor and the exchange run (the layer's constructor, the exchange's key
//! derivation and cache lookup, the token endpoint's answer interpretation), and
//! nothing here is used by them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock as _, SystemClock};
use crate::config::OboConfig;
use crate::exchange::cache::{self, CacheKey, CachedToken, Counters, OboCache};
use crate::exchange::endpoint::{self, Attempt};
use crate::exchange::OboError;
use crate::jwks::KeyError;
use crate::layer::Shared;
use crate::secret::BearerToken;
use crate::validate::{Principal, ValidationError};

/// The token validator the layer runs, with the layer's cache setting
/// ([`OboConfigBuilder::validated_cache_capacity`](crate::OboConfigBuilder::validated_cache_capacity)).
pub struct TokenValidator(Shared);

impl fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokenValidator")
            .field(&self.0.validator)
            .finish()
    }
}

impl TokenValidator {
    /// The layer's validator for `config`: the state [`OboLayer::new`](crate::OboLayer::new)
    /// builds, from the same constructor.
    pub fn new(config: OboConfig) -> Self {
        Self(Shared::new(config))
    }

    /// Fetches the signing keys of every allowed tenant.
    pub async fn warm_up(&self) -> Result<(), KeyError> {
        self.0.validator.keys().warm_up().await
    }

    /// Validates `token` exactly as the layer does (from the validated-token cache
    /// when it is enabled and holds the token).
    pub async fn validate(&self, token: &str) -> Result<Principal, ValidationError> {
        self.0
            .validator
            .validate(token.as_bytes())
            .await
            .map(|(p, _)| p)
    }
}

/// The On-Behalf-Of cache key of (tenant, user, normalized scopes, inbound token).
pub fn cache_key(tid: &str, oid: &str, normalized_scopes: &str, inbound: &BearerToken) -> [u8; 32] {
    cache::cache_key(tid, oid, normalized_scopes, inbound)
}

/// The key derivation of a cache lookup as the extractor runs it: scope
/// normalization, then [`cache_key`].
pub fn request_cache_key(tid: &str, oid: &str, scopes: &[&str], inbound: &BearerToken) -> [u8; 32] {
    cache::request_key(tid, oid, scopes, inbound).1
}

/// An On-Behalf-Of cache (the exchanger's, built the same way) filled with
/// synthetic entries, one per user.
pub struct FilledOboCache {
    cache: OboCache,
    counters: Counters,
    keys: Vec<CacheKey>,
}

impl fmt::Debug for FilledOboCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilledOboCache")
            .field("users", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl FilledOboCache {
    /// An empty cache bounded to `max_bytes` (the layer's default is
    /// [`DEFAULT_OBO_CACHE_BYTES`](crate::config::DEFAULT_OBO_CACHE_BYTES)).
    pub fn new(max_bytes: u64) -> Self {
        Self {
            cache: OboCache::new(max_bytes, Duration::from_secs(30)),
            counters: Counters::default(),
            keys: Vec::new(),
        }
    }

    /// Caches `access_token` for (`tid`, `oid`, `scopes`, `inbound`) for an hour, as a
    /// successful exchange does, and returns its key.
    pub async fn insert(
        &mut self,
        tid: &str,
        oid: &str,
        scopes: &[&str],
        inbound: &BearerToken,
        access_token: String,
    ) -> [u8; 32] {
        let key = request_cache_key(tid, oid, scopes, inbound);
        let token = CachedToken {
            access_token: BearerToken::new(access_token),
            expires_at: i64::MAX,
            fresh_until: i64::MAX,
            scopes: scopes.iter().map(|s| Box::from(*s)).collect(),
            ttl: Duration::from_secs(3600),
        };
        self.cache.tokens.insert(key, Arc::new(token)).await;
        self.keys.push(key);
        key
    }

    /// Runs the cache's pending maintenance (admission, eviction), so that
    /// [`entry_count`](Self::entry_count) and memory use are settled.
    pub async fn settle(&self) {
        self.cache.tokens.run_pending_tasks().await;
    }

    /// Entries held.
    pub fn entry_count(&self) -> u64 {
        self.cache.tokens.entry_count()
    }

    /// Keys inserted, in order.
    pub fn keys(&self) -> &[[u8; 32]] {
        &self.keys
    }

    /// The cache hit path of the exchange (the lookup `Exchanger::token` runs):
    /// the token cache, then (on a miss) the negative cache. Returns the cached
    /// token's length.
    pub async fn lookup(&self, key: &[u8; 32]) -> Option<usize> {
        match self
            .cache
            .lookup(key, SystemClock.now(), &self.counters)
            .await?
        {
            Ok(t) => Some(t.access_token.expose().len()),
            Err(_) => None,
        }
    }
}

/// What the exchange makes of one token-endpoint answer (see [`token_response`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenAnswer {
    /// A token, living `expires_in` seconds (clamped to the crate's maximum).
    Issued {
        /// Seconds, at least 1.
        expires_in: i64,
    },
    /// An OAuth refusal (also proof that Entra answers).
    Refused(OboError),
    /// A failure that is not retried (bad response, misconfiguration).
    Failed(OboError),
    /// Worth retrying: 5xx, 429, AADSTS50196 or `temporarily_unavailable`.
    Transient {
        /// The answer's `Retry-After`, as passed in.
        retry_after: Option<Duration>,
        /// Counts towards the tenant's backoff (429 or AADSTS50196).
        throttled: bool,
    },
}

/// The token endpoint's interpretation of an answer with this status,
/// `Retry-After` and body, without HTTP: the function every exchange attempt runs
/// (`exchange::endpoint::interpret`), for the `token_response` fuzz target. An
/// invalid status code is `Err`. `requested` are the scopes asked for (a consent
/// error names them) and the authority is the public cloud's.
pub fn token_response(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    requested: &[&str],
) -> Result<TokenAnswer, http::status::InvalidStatusCode> {
    let status = http::StatusCode::from_u16(status)?;
    let answer = endpoint::interpret(
        status,
        retry_after,
        body,
        requested,
        crate::config::DEFAULT_AUTHORITY_HOST,
        "bench-support",
    );
    Ok(match answer {
        Ok(issued) => TokenAnswer::Issued {
            expires_in: issued.expires_in,
        },
        Err(Attempt::Refused(e)) => TokenAnswer::Refused(e),
        Err(Attempt::Final(e)) => TokenAnswer::Failed(e),
        Err(Attempt::Transient {
            retry_after,
            throttled,
            ..
        }) => TokenAnswer::Transient {
            retry_after,
            throttled: throttled.is_some(),
        },
    })
}
