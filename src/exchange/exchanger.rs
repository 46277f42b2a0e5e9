//! The [`Exchanger`]: inbound user token in, downstream token out, through the
//! cache, and its [`ExchangeSettings`].
//!
//! # Where it sits
//!
//! The `OboToken` extractor calls [`Exchanger::token`] at most once per request,
//! after the layer has validated the caller. The exchanger owns the token cache,
//! the token endpoint client and (feature `redis`) the L2.
//!
//! # What it guarantees
//!
//! No network for requests that cannot work (app-only tokens, inbound tokens
//! expiring within the leeway). A cached token is served while it is fresh by the
//! configured clock (its lifetime minus the refresh margin); concurrent misses for
//! one key share one exchange. Refusals Entra would repeat are remembered for the
//! negative TTL.
//!
//! # How it fails
//!
//! Every failure is an [`OboError`], cloned to every request waiting on the same
//! exchange; a failed exchange leaves nothing in the token cache.
//!
//! # Claims challenges (Continuous Access Evaluation)
//!
//! With client capabilities configured, every exchange sends them as `claims`.
//! [`Exchanger::reexchange`] answers a downstream API's claims challenge for a
//! token it handed out: it bypasses the cache lookup and the L2 and exchanges
//! once with the challenge merged into the capabilities, under moka's per-key
//! compute lock. Callers that hit the same challenge with the same (stale) token
//! wait on that lock and then share its result: the fresh token that replaced the
//! stale one, or the remembered refusal. A refused re-exchange evicts the stale
//! token from the L1 and (when Redis still holds that very token) from the L2, so
//! no request of this replica is served it again and no other replica reads it
//! from Redis again. Another replica that already holds it in its own L1 serves
//! it until the downstream challenges it there too (and that replica's
//! re-exchange is refused in turn). A Redis failure during the eviction leaves
//! the entry (it expires with its freshness) and never changes the answer; each
//! of its two Redis calls is bounded by the Redis timeout.

use std::sync::Arc;
use std::time::Duration;

use moka::ops::compute::{CompResult, Op};
use tracing::Instrument as _;

use super::cache::{bump, memo_key, request_key, CacheKey, CachedToken, Counters, OboCache};
use super::claims::{request_claims, MalformedChallenge};
use super::endpoint::{self, Issued, TokenEndpoint};
#[cfg(feature = "redis")]
use super::l2;
use super::{OboError, OboStats};
use crate::clock::Clock;
use crate::credential::ClientCredential;
use crate::metrics;
use crate::secret::BearerToken;
use crate::validate::{Principal, TokenKind};

/// What the exchange needs; built and validated once by the configuration builder.
#[derive(Debug, Clone)]
pub(crate) struct ExchangeSettings {
    /// This API's client id (a lowercase GUID).
    pub(crate) client_id: String,
    /// The authority host, without a trailing slash; token endpoints hang below it.
    pub(crate) authority: String,
    /// How this API authenticates at the token endpoint (none: OBO refused as misconfigured).
    pub(crate) credential: Option<ClientCredential>,
    /// Inbound tokens expiring within this are refused before any exchange.
    pub(crate) leeway: Duration,
    /// Re-exchange this long before a cached token expires (half the lifetime for short-lived tokens).
    pub(crate) refresh_margin: Duration,
    /// How long interaction/consent errors are remembered per user and scope set.
    pub(crate) negative_ttl: Duration,
    /// Bound of the token cache, in bytes.
    pub(crate) cache_max_bytes: u64,
    /// Retries of 429/5xx answers.
    pub(crate) max_retries: usize,
    /// Total time an exchange may spend retrying.
    pub(crate) retry_budget: Duration,
    /// Whether metrics of validations and exchanges carry the tenant id.
    pub(crate) metrics_tenant_label: bool,
    /// The tenants the layer admits by name (home and listed, lowercase): the
    /// only ones a metric about a tenant that no token verified may name.
    pub(crate) metrics_named_tenants: Vec<String>,
    /// Bound of each token-endpoint request (and of reading its answer).
    pub(crate) timeout: Duration,
    /// Client capabilities declared on every request (`xms_cc`, e.g. `cp1`); empty: none.
    pub(crate) client_capabilities: Vec<String>,
    /// The clock of token lifetimes and the throttling backoff.
    pub(crate) clock: Arc<dyn Clock>,
    /// The Redis L2 under the in-memory cache, if configured.
    #[cfg(feature = "redis")]
    pub(crate) l2: Option<l2::L2Settings>,
}

impl ExchangeSettings {
    /// The `tenant` label of a metric about tenant `tid` (a verified one): only
    /// when the app opted in.
    #[inline]
    pub(crate) fn metrics_tenant<'a>(&self, tid: &'a str) -> Option<&'a str> {
        self.metrics_tenant_label.then_some(tid)
    }

    /// The `tenant` label of a metric about tenant `tid` that the app named (an
    /// app-only or agent token), verified by no token: only an admitted tenant
    /// listed by name, so that whoever chooses `tid` cannot add series.
    #[inline]
    pub(crate) fn metrics_named_tenant<'a>(&self, tid: &'a str) -> Option<&'a str> {
        self.metrics_tenant(tid)
            .filter(|tid| self.metrics_named_tenants.iter().any(|t| t == tid))
    }
}

/// Exchanges inbound user tokens for downstream tokens, through the cache.
pub(crate) struct Exchanger {
    settings: Arc<ExchangeSettings>,
    /// The `claims` field of every exchange not answering a challenge (the capabilities).
    capabilities: Option<String>,
    endpoint: Arc<TokenEndpoint>,
    cache: OboCache,
    counters: Counters,
    #[cfg(feature = "redis")]
    l2: Option<l2::L2Cache>,
    /// Entra authentication to Redis, shared by the L2 and the session store.
    #[cfg(feature = "redis")]
    redis_auth: Option<l2::EntraAuth>,
}

impl Exchanger {
    /// An exchanger with an empty cache, calling the token endpoint over `http`.
    pub(crate) fn new(settings: ExchangeSettings, http: reqwest::Client) -> Self {
        let settings = Arc::new(settings);
        let cache = OboCache::new(settings.cache_max_bytes, settings.negative_ttl);
        let capabilities = request_claims(&settings.client_capabilities, None)
            .ok()
            .flatten();
        let endpoint = Arc::new(TokenEndpoint::new(http, Arc::clone(&settings)));
        #[cfg(feature = "redis")]
        let redis_auth = (settings.l2.as_ref())
            .and_then(|s| s.entra.clone())
            .map(|e| l2::EntraAuth::new(e, Arc::clone(&endpoint), Arc::clone(&settings.clock)));
        Self {
            capabilities,
            endpoint,
            #[cfg(feature = "redis")]
            l2: settings
                .l2
                .as_ref()
                .and_then(|s| l2::L2Cache::new(s, redis_auth.as_ref(), &settings.client_id)),
            #[cfg(feature = "redis")]
            redis_auth,
            settings,
            cache,
            counters: Counters::default(),
        }
    }

    /// The L2's fresh entry for `key`, if there is an L2 and it has one.
    async fn l2_get(&self, key: &CacheKey) -> Option<CachedToken> {
        #[cfg(feature = "redis")]
        if let Some(l2) = &self.l2 {
            let now = self.settings.clock.now();
            return l2.get(key, now, &self.counters).await;
        }
        let _ = key;
        None
    }

    /// Writes a freshly exchanged token through to the L2, if there is one.
    async fn l2_put(&self, key: &CacheKey, token: &CachedToken) {
        #[cfg(feature = "redis")]
        if let Some(l2) = &self.l2 {
            l2.put(key, token, &self.counters).await;
        }
        let _ = (key, token);
    }

    /// Removes `stale` from the L2, if there is one and it still holds it.
    async fn l2_evict(&self, key: &CacheKey, stale: &CachedToken) {
        #[cfg(feature = "redis")]
        if let Some(l2) = &self.l2 {
            l2.evict(key, stale, &self.counters).await;
        }
        let _ = (key, stale);
    }

    /// The token endpoint client (shared with sessions: one throttling backoff).
    pub(crate) fn endpoint(&self) -> Arc<TokenEndpoint> {
        Arc::clone(&self.endpoint)
    }

    /// Entra authentication to Redis, if configured (the session store shares it).
    #[cfg(feature = "redis")]
    pub(crate) fn redis_auth(&self) -> Option<&l2::EntraAuth> {
        self.redis_auth.as_ref()
    }

    /// The settings of the exchange (sessions use the same clock and margins).
    pub(crate) fn settings(&self) -> Arc<ExchangeSettings> {
        Arc::clone(&self.settings)
    }

    /// An On-Behalf-Of exchange for `scopes` plus `offline_access`, outside the
    /// cache, to start a session: the answer carries a refresh token.
    pub(crate) async fn exchange_offline(
        &self,
        principal: &Principal,
        assertion: &BearerToken,
        scopes: &[&str],
    ) -> Result<Issued, OboError> {
        self.preflight(principal, self.settings.clock.now())?;
        let mut sent: Vec<&str> = scopes.to_vec();
        if !sent.contains(&"offline_access") {
            sent.push("offline_access");
        }
        let sent = sent.join(" ");
        bump(&self.counters.exchanges);
        let result = self
            .endpoint
            .exchange(
                (principal.tid(), principal.oid()),
                assertion,
                &sent,
                scopes,
                self.capabilities.as_deref(),
            )
            .await;
        if result.is_err() {
            bump(&self.counters.errors);
        }
        result
    }

    pub(crate) fn stats(&self) -> OboStats {
        self.record_size();
        self.counters.snapshot()
    }

    /// Entries and weighted bytes of the token cache, after pending evictions.
    pub(crate) async fn cache_usage(&self) -> (u64, u64) {
        self.cache.tokens.run_pending_tasks().await;
        let usage = (
            self.cache.tokens.entry_count(),
            self.cache.tokens.weighted_size(),
        );
        metrics::l1_size(usage.0, usage.1);
        usage
    }

    /// After the cache changed (an exchange, an eviction; never on a hit): sets
    /// the L1 gauges to its size once moka's pending work has run. Without the
    /// `metrics` feature, nothing.
    async fn record_size_exact(&self) {
        if cfg!(feature = "metrics") {
            let _ = self.cache_usage().await;
        }
    }

    /// Sets the L1 gauges to the cache's size as moka knows it now (two atomic
    /// reads; evictions still pending are seen later).
    fn record_size(&self) {
        metrics::l1_size(
            self.cache.tokens.entry_count(),
            self.cache.tokens.weighted_size(),
        );
    }

    /// A downstream token for `scopes` on behalf of `principal`, whose access
    /// token is `assertion`: refused locally when it cannot work, from the cache
    /// when it holds a fresh token (or a remembered refusal), otherwise exchanged
    /// once per key however many requests wait for it.
    pub(crate) async fn token(
        &self,
        principal: &Principal,
        assertion: &BearerToken,
        scopes: &'static [&'static str],
    ) -> Result<Arc<CachedToken>, OboError> {
        let now = self.settings.clock.now();
        self.preflight(principal, now)?;
        let key = memo_key(principal.tid(), principal.oid(), scopes, assertion);
        if let Some(cached) = self.cache.lookup(&key, now, &self.counters).await {
            if cached.is_err() {
                tracing::debug!(
                    tid = principal.tid(),
                    oid = principal.oid(),
                    "On-Behalf-Of answered from the negative cache"
                );
            }
            return cached;
        }
        bump(&self.counters.misses);
        metrics::l1_miss();
        let sent = scopes.join(" ");
        let result = self
            .cache
            .tokens
            .try_get_with(key, self.fill(key, principal, assertion, &sent, scopes))
            .await
            .map_err(|e: Arc<OboError>| (*e).clone());
        self.record_size_exact().await;
        result
    }

    /// Local refusals, without network: app-only tokens (OBO needs a user), and
    /// inbound tokens expiring within the leeway.
    /// Whether `principal`'s token could be exchanged now at all (a delegated
    /// token not about to expire), without asking anyone: checked before a
    /// session start is counted.
    pub(crate) fn can_exchange(&self, principal: &Principal) -> Result<(), OboError> {
        self.preflight(principal, self.settings.clock.now())
    }

    fn preflight(&self, principal: &Principal, now: i64) -> Result<(), OboError> {
        if principal.kind() == TokenKind::App {
            bump(&self.counters.preflight_refusals);
            return Err(OboError::AppOnlyToken);
        }
        let leeway = i64::try_from(self.settings.leeway.as_secs()).unwrap_or(i64::MAX);
        if principal.expires_at().saturating_sub(now) <= leeway {
            bump(&self.counters.preflight_refusals);
            return Err(OboError::InboundTokenExpiring);
        }
        Ok(())
    }

    /// Fills the cache entry for `key` (run once per key by the single-flight):
    /// the L2 first, then the token endpoint; a token is written through to the
    /// L2, a negative-cacheable refusal is remembered.
    async fn fill(
        &self,
        key: CacheKey,
        principal: &Principal,
        assertion: &BearerToken,
        sent: &str,
        scopes: &'static [&'static str],
    ) -> Result<Arc<CachedToken>, OboError> {
        // Another replica may have exchanged it: read through the L2 first.
        if let Some(t) = self.l2_get(&key).await {
            return Ok(Arc::new(t));
        }
        let result = self
            .exchange(
                &key,
                principal,
                assertion,
                sent,
                scopes,
                self.capabilities.as_deref(),
            )
            .await;
        if let Err(e) = &result {
            if e.is_negative_cacheable() {
                self.cache.negative.insert(key, e.clone()).await;
            }
        }
        result
    }

    /// Whether the client capabilities are configured: only then is a downstream
    /// claims challenge answered (see [`reexchange`](Self::reexchange)).
    pub(crate) fn answers_claims_challenges(&self) -> bool {
        self.capabilities.is_some()
    }

    /// The `claims` field answering `challenge` (JSON): merged with the capabilities.
    pub(crate) fn challenge_claims(&self, challenge: &str) -> Result<String, MalformedChallenge> {
        request_claims(&self.settings.client_capabilities, Some(challenge))
            .map(Option::unwrap_or_default)
    }

    /// Answers a downstream claims challenge to `stale` (a token this exchanger
    /// handed out for `principal`, `assertion` and `scopes`): exchanges once more
    /// with `claims` (from [`challenge_claims`](Self::challenge_claims)), bypassing
    /// the cache lookup and the L2, and replaces `stale` in the cache.
    ///
    /// Runs under the key's compute lock: a caller arriving with the same stale
    /// token after another answered it gets the fresh token (or the remembered
    /// refusal) without a second exchange. A failure evicts `stale` from the
    /// cache and the L2.
    pub(crate) async fn reexchange(
        &self,
        principal: &Principal,
        assertion: &BearerToken,
        scopes: &'static [&'static str],
        stale: &Arc<CachedToken>,
        claims: &str,
    ) -> Result<Arc<CachedToken>, OboError> {
        let now = self.settings.clock.now();
        self.preflight(principal, now)?;
        let (sent, key) = request_key(principal.tid(), principal.oid(), scopes, assertion);
        let outcome = self
            .cache
            .tokens
            .entry(key)
            .and_try_compute_with(|current| async move {
                match current {
                    Some(e) if !Arc::ptr_eq(e.value(), stale) && now < e.value().fresh_until => {
                        return Ok(Op::Nop);
                    }
                    None => {
                        if let Some(refusal) = self.cache.negative.get(&key).await {
                            bump(&self.counters.negative_hits);
                            metrics::negative_cache_hit();
                            return Err(refusal);
                        }
                    }
                    Some(_) => {}
                }
                match self
                    .exchange(&key, principal, assertion, &sent, scopes, Some(claims))
                    .await
                {
                    Ok(token) => Ok(Op::Put(token)),
                    Err(e) => {
                        // Still under the key's lock, before the L1 eviction: no
                        // request of this replica reads it back from the L2, and no
                        // other replica is served it again.
                        self.l2_evict(&key, stale).await;
                        Err(e)
                    }
                }
            })
            .await;
        let result = self.settle_reexchange(key, stale, outcome).await;
        self.record_size_exact().await;
        result
    }

    /// The answer of [`reexchange`](Self::reexchange) after its compute: a
    /// failure evicts `stale` and may be remembered.
    async fn settle_reexchange(
        &self,
        key: CacheKey,
        stale: &Arc<CachedToken>,
        outcome: Result<CompResult<CacheKey, Arc<CachedToken>>, OboError>,
    ) -> Result<Arc<CachedToken>, OboError> {
        match outcome {
            Ok(
                CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e),
            ) => Ok(e.into_value()),
            // Not produced: the closure only puts or leaves an existing entry.
            Ok(CompResult::Removed(_) | CompResult::StillNone(_)) => Err(OboError::BadResponse),
            Err(e) => {
                self.cache.evict(&key, stale).await;
                if e.is_negative_cacheable() {
                    self.cache.negative.insert(key, e.clone()).await;
                }
                Err(e)
            }
        }
    }

    /// One exchange at the token endpoint (with `claims`, if any), counted; a
    /// token is written through to the L2.
    async fn exchange(
        &self,
        key: &CacheKey,
        principal: &Principal,
        assertion: &BearerToken,
        sent: &str,
        scopes: &'static [&'static str],
        claims: Option<&str>,
    ) -> Result<Arc<CachedToken>, OboError> {
        bump(&self.counters.exchanges);
        let span = tracing::debug_span!("obo_exchange", tid = principal.tid(), oid = principal.oid(), scope = %sent, claims = claims.is_some());
        let result = self
            .endpoint
            .exchange(
                (principal.tid(), principal.oid()),
                assertion,
                sent,
                scopes,
                claims,
            )
            .instrument(span)
            .await;
        match result {
            Ok(issued) => {
                tracing::debug!(
                    tid = principal.tid(),
                    oid = principal.oid(),
                    expires_in = issued.expires_in,
                    "On-Behalf-Of token obtained"
                );
                let now = self.settings.clock.now();
                let token = cache_entry(issued, now, self.settings.refresh_margin, scopes);
                self.l2_put(key, &token).await;
                Ok(Arc::new(token))
            }
            Err(e) => {
                bump(&self.counters.errors);
                Err(e)
            }
        }
    }
}

/// The cache entry of a token issued at `now` (clock seconds): fresh until
/// `refresh_margin` before it expires (half its lifetime if that is shorter).
/// `issued.expires_in` came from the network: every sum saturates.
pub(crate) fn cache_entry(
    issued: Issued,
    now: i64,
    refresh_margin: Duration,
    requested: &[&str],
) -> CachedToken {
    let lifetime = issued
        .expires_in
        .clamp(0, endpoint::MAX_TOKEN_LIFETIME.as_secs() as i64);
    let margin = i64::try_from(refresh_margin.as_secs()).unwrap_or(i64::MAX);
    let margin = if lifetime > margin.saturating_mul(2) {
        margin
    } else {
        lifetime / 2
    };
    let fresh_for = (lifetime - margin).max(0);
    let scopes: Box<[Box<str>]> = match &issued.scope {
        Some(s) if !s.trim().is_empty() => s.split_whitespace().map(Box::from).collect(),
        _ => requested.iter().map(|s| Box::from(*s)).collect(),
    };
    CachedToken {
        access_token: issued.access_token,
        expires_at: now.saturating_add(lifetime),
        fresh_until: now.saturating_add(fresh_for),
        scopes,
        ttl: Duration::from_secs(fresh_for.unsigned_abs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(expires_in: i64) -> Issued {
        Issued {
            access_token: BearerToken::new("t"),
            expires_in,
            scope: None,
            refresh_token: None,
        }
    }

    #[test]
    fn cache_entries_stay_in_range_whatever_the_lifetime_and_clock() {
        let max = endpoint::MAX_TOKEN_LIFETIME.as_secs() as i64;
        let margin = Duration::from_secs(300);
        let t = cache_entry(issued(3600), 1_000, margin, &["s"]);
        assert_eq!((t.expires_at, t.fresh_until), (4_600, 4_300));
        assert_eq!(t.ttl, Duration::from_secs(3_300));
        assert_eq!(&*t.scopes, &[Box::<str>::from("s")]);
        // Short lifetimes are fresh for half of it.
        let t = cache_entry(issued(100), 0, margin, &[]);
        assert_eq!((t.expires_at, t.fresh_until), (100, 50));
        // Out-of-range lifetimes (not produced by the parser) are clamped.
        for lifetime in [i64::MAX, max + 1] {
            let t = cache_entry(issued(lifetime), 0, margin, &[]);
            assert_eq!((t.expires_at, t.fresh_until), (max, max - 300));
            assert_eq!(t.ttl, Duration::from_secs((max - 300) as u64));
        }
        let t = cache_entry(issued(i64::MIN), 0, margin, &[]);
        assert_eq!((t.expires_at, t.fresh_until, t.ttl), (0, 0, Duration::ZERO));
        // A clock at the end of time, a margin beyond i64: no overflow.
        let t = cache_entry(issued(max), i64::MAX - 5, Duration::MAX, &[]);
        assert_eq!(t.expires_at, i64::MAX);
        assert!(t.fresh_until <= t.expires_at);
        assert!(t.ttl <= endpoint::MAX_TOKEN_LIFETIME);
    }
}
