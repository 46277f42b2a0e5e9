//! Metrics (feature `metrics`): counters, histograms and gauges through the
//! [`metrics`](https://docs.rs/metrics/0.24) facade, for dashboards and alerts.
//!
//! They answer what an operator asks at 3 a.m.: are tokens being refused, and
//! why; is Entra throttling or slow; are the caches working. Install any recorder
//! in the application (`metrics-exporter-prometheus`, an OTLP exporter, …); the
//! crate records into whatever recorder is installed, process-wide. Without the
//! feature every recording site compiles to nothing.
//!
//! # Cost, and when to install the recorder
//!
//! The two hot paths, a token found in the validated-token cache and a downstream
//! token found in the On-Behalf-Of cache, increment counter handles that each
//! layer registers once, at its first such hit: with no recorder installed (the
//! facade's no-op recorder) that is about 13 and 20 instructions per request
//! (callgrind, release build), with a recorder one atomic add per counter. Like
//! any `metrics` handle they stay bound to the recorder installed when they were
//! registered, so **install the recorder before the layer serves requests** (an
//! exporter's set-up at start-up does). Every other event (a refusal, an
//! exchange, a key refresh, a downstream call) looks its counter up in the
//! recorder installed at that moment, with static keys; only the opt-in tenant
//! label allocates.
//!
//! The names below are constants of this module ([`VALIDATIONS_TOTAL`], …), so an
//! exporter's `describe_*` calls or a test can name them without typos.
//!
//! # The metrics
//!
//! All names start `axum_obo_`; counters end `_total`; durations are histograms
//! in seconds. Every label value is from a fixed set, listed here (a set may grow
//! in a later version, a value never changes meaning).
//!
//! | name | type | unit | labels | meaning |
//! |---|---|---|---|---|
//! | `axum_obo_validations_total` | counter | requests | `outcome`, `reason` (`tenant`) | the layer's decision on each request with a token, or without one when anonymous requests are not allowed (a guard extractor's refusal after the layer admitted the request is not counted) |
//! | `axum_obo_validated_token_cache_total` | counter | lookups | `result` = `hit`/`miss` | the validated-token cache (when enabled), once per request whose bearer token reaches validation (a hit skips the signature check; an entry that no longer holds is a miss) |
//! | `axum_obo_key_refreshes_total` | counter | refreshes | `outcome` = `ok`/`failed` | fetches of a tenant's signing keys (OIDC discovery and JWKS) |
//! | `axum_obo_exchanges_total` | counter | requests | `grant`, `outcome` (`tenant`) | token requests to Entra (after caches and single-flight), by how they ended |
//! | `axum_obo_token_endpoint_duration_seconds` | histogram | seconds | `grant` | each HTTP request to the token endpoint (or the managed identity endpoint), until its answer is read |
//! | `axum_obo_token_endpoint_retries_total` | counter | retries | `grant` | token requests sent again after a 429 or a 5xx (a timeout is not retried) |
//! | `axum_obo_backoffs_total` | counter | backoffs | `scope` = `user`/`tenant` | backoffs started after Entra throttled (a user's exchanges, or a whole tenant's, fail fast for a while) |
//! | `axum_obo_negative_cache_hits_total` | counter | requests | — | exchanges answered from the negative cache (a remembered interaction, consent or `invalid_grant` refusal) |
//! | `axum_obo_obo_cache_total` | counter | lookups | `tier` = `l1`/`l2`, `result` | the On-Behalf-Of cache: `hit`/`miss` on both tiers (an L1 answer from the negative cache is counted as a negative-cache hit, not here); on the L2 also `undecryptable` (a value that does not open: altered, moved, sealed with an unknown key; treated as a miss) and `error` (a Redis call, lookup or write, that failed or was skipped because Redis failed within the last second) |
//! | `axum_obo_obo_cache_entries` | gauge | entries | — | tokens in the in-memory (L1) On-Behalf-Of cache |
//! | `axum_obo_obo_cache_weight_bytes` | gauge | bytes | — | their weight against `obo_cache_max_bytes` |
//! | `axum_obo_downstream_requests_total` | counter | requests | `status_class` = `2xx`/`3xx`/`4xx`/`5xx`/`error` | each HTTP request of the downstream clients (Graph and others); `error`: no answer (connection, timeout) |
//! | `axum_obo_downstream_retries_total` | counter | retries | — | downstream requests sent again after a 429, 503 or 504 |
//! | `axum_obo_cae_reexchanges_total` | counter | challenges | `outcome` = `ok`/`failed` | downstream claims challenges (Continuous Access Evaluation) the client could answer: with a new token and one retry (`ok`), or not (`failed`: Entra needs the user, or refused, or the challenge was unacceptable); challenges without client capabilities configured are relayed and not counted |
//! | `axum_obo_sessions_started_total` | counter | sessions | — | long-running sessions started |
//! | `axum_obo_session_refreshes_total` | counter | refreshes | `outcome` = `ok`/`failed` | session refresh-token redemptions |
//! | `axum_obo_sessions_ended_total` | counter | sessions | `reason` = `ended`/`idle`/`revoked` | sessions ended: by the app (`ended`: a `Sessions::end` call that found the session; ending it again, or an unknown key, is not counted), found unused past the idle timeout (`idle`), or because Entra refused their refresh token (`revoked`) |
//!
//! ## `axum_obo_validations_total`
//!
//! `outcome` = `accepted` (with `reason` = `ok`) or `refused`, with `reason`:
//!
//! | `reason` | the request |
//! |---|---|
//! | `missing` | has no bearer token (and anonymous requests are not allowed) |
//! | `invalid_request` | has several `Authorization` headers or an empty bearer token |
//! | `malformed` | carries something that is not a JWT |
//! | `too_large` | carries a token larger than any Entra token |
//! | `algorithm` | carries a token not signed with RS256 |
//! | `missing_kid` | carries a token whose header names no key |
//! | `unknown_key` | carries a token signed by a key the tenant does not publish |
//! | `signature` | carries a token whose signature does not verify |
//! | `claim` | carries a token lacking a required claim |
//! | `tenant` | carries a token of a tenant not allowed |
//! | `issuer` | carries a token of another issuer |
//! | `audience` | carries a token for another audience |
//! | `id_token` | carries an ID token |
//! | `expired` | carries an expired token |
//! | `not_yet_valid` | carries a token not valid yet |
//! | `no_scp_or_roles` | carries a token with neither scopes nor roles |
//! | `ambiguous_kind` | carries a token neither cleanly delegated nor app-only |
//! | `keys_unavailable` | could not be checked: the tenant's signing keys are unavailable |
//! | `insufficient_scope` | is refused by the layer's policy: scopes or roles missing |
//! | `app_only` | is refused by the layer's policy: an app-only token where a user is required |
//! | `client_app` | is refused by the layer's policy: a client application not allowed |
//! | `agent` | is refused by the layer's policy: an agent identity not allowed |
//! | `admission` | is refused by the app's admission check |
//!
//! ## `axum_obo_exchanges_total`
//!
//! `grant`: `obo` (On-Behalf-Of), `refresh_token` (a session's refresh),
//! `client_credentials` (this API's own app token), `managed_identity` (a token
//! from the managed identity endpoint), and the legs of Entra Agent ID:
//! `agent_blueprint` (T1), `agent_instance` (T2), `agent_app` (an agent's own
//! token), `agent_obo` (an agent's token on behalf of the caller), `agent_user`
//! (an agent user's token). `outcome`: `ok`; `interaction_required`,
//! `consent_required`, `invalid_grant` (Entra refused, the user must act);
//! `throttled` (Entra throttled, or a backoff failed it without a request);
//! `unavailable` (5xx, timeouts, no connection); `error` (anything else: a
//! misconfiguration, an answer that is not a token).
//!
//! ## Labels: what never appears
//!
//! No label carries a token, a user or object id, a UPN, a session key or a
//! secret. The tenant id appears, as the label `tenant` on
//! `axum_obo_validations_total` and `axum_obo_exchanges_total`, only when the
//! app opts in ([`OboConfigBuilder::metrics_tenant_label`](crate::OboConfigBuilder::metrics_tenant_label),
//! `OBO_METRICS_TENANT_LABEL=true`): one time series per tenant is fine for a
//! handful of tenants, not for a multi-tenant API open to any. Even then, a
//! refused token's tenant is never a label (its claims are not verified: an
//! attacker would choose the series); only tokens that validated carry it. With
//! any tenant admitted ([`allow_any_tenant`](crate::OboConfigBuilder::allow_any_tenant),
//! `OBO_ALLOWED_TENANTS=*`) any organization signs valid tokens, so a policy or
//! admission refusal's tenant is not a label either; accepted requests and
//! exchanges still carry theirs, so combine the label with an admission hook that
//! admits known tenants only. A tenant the app names for a token of its own
//! ([`OboLayer::app_token`](crate::OboLayer::app_token), an agent's tokens; the
//! sidecar's `optionsOverride.AcquireTokenOptions.Tenant`) is verified by no
//! token: its exchanges carry it only when it is the home tenant or listed in
//! `allowed_tenants`.
//!
//! # `OboStats` and these metrics
//!
//! [`OboStats`](crate::stats::OboStats) ([`OboLayer::stats`](crate::OboLayer::stats))
//! is a programmatic snapshot of one layer's On-Behalf-Of cache, always on, for a
//! health endpoint or a test. These metrics are process-wide time series for
//! dashboards: every layer of the process adds to the same counters and
//! histograms, and they cover validation, keys, sessions and downstream calls too.
//! An On-Behalf-Of exchange refused without asking Entra (an app-only token, an
//! inbound token about to expire) is no token request: `OboStats::preflight_refusals`
//! counts it, no metric does.
//!
//! The L1 gauges are set after every exchange (a token put in, a stale one
//! evicted), once the cache's pending work has run, and when
//! [`OboLayer::cache_usage`](crate::OboLayer::cache_usage) (exact) or
//! [`OboLayer::stats`](crate::OboLayer::stats) (as the cache knows it then) is
//! read; never on a hit. Entries that expire are seen at the next of these: a
//! metrics endpoint that wants exact gauges calls `cache_usage` before rendering.
//! The gauges are set, not added to: with several layers in one process (not
//! clones of one, which share their cache) they show the size of the layer that
//! set them last; read each layer's `cache_usage` for its own.

/// Requests decided by the layer (counter; `outcome`, `reason`, opt-in `tenant`).
pub const VALIDATIONS_TOTAL: &str = "axum_obo_validations_total";
/// Validated-token cache lookups (counter; `result`).
pub const VALIDATED_TOKEN_CACHE_TOTAL: &str = "axum_obo_validated_token_cache_total";
/// Signing-key fetches (counter; `outcome`).
pub const KEY_REFRESHES_TOTAL: &str = "axum_obo_key_refreshes_total";
/// Token requests to Entra (counter; `grant`, `outcome`, opt-in `tenant`).
pub const EXCHANGES_TOTAL: &str = "axum_obo_exchanges_total";
/// Duration of each token-endpoint HTTP request (histogram, seconds; `grant`).
pub const TOKEN_ENDPOINT_DURATION_SECONDS: &str = "axum_obo_token_endpoint_duration_seconds";
/// Token requests retried (counter; `grant`).
pub const TOKEN_ENDPOINT_RETRIES_TOTAL: &str = "axum_obo_token_endpoint_retries_total";
/// Backoffs started after throttling (counter; `scope`).
pub const BACKOFFS_TOTAL: &str = "axum_obo_backoffs_total";
/// Exchanges answered from the negative cache (counter).
pub const NEGATIVE_CACHE_HITS_TOTAL: &str = "axum_obo_negative_cache_hits_total";
/// On-Behalf-Of cache lookups (counter; `tier`, `result`).
pub const OBO_CACHE_TOTAL: &str = "axum_obo_obo_cache_total";
/// Tokens in the L1 On-Behalf-Of cache (gauge).
pub const OBO_CACHE_ENTRIES: &str = "axum_obo_obo_cache_entries";
/// Their weight in bytes (gauge).
pub const OBO_CACHE_WEIGHT_BYTES: &str = "axum_obo_obo_cache_weight_bytes";
/// Downstream HTTP requests (counter; `status_class`).
pub const DOWNSTREAM_REQUESTS_TOTAL: &str = "axum_obo_downstream_requests_total";
/// Downstream requests retried (counter).
pub const DOWNSTREAM_RETRIES_TOTAL: &str = "axum_obo_downstream_retries_total";
/// Re-exchanges answering a claims challenge (counter; `outcome`).
pub const CAE_REEXCHANGES_TOTAL: &str = "axum_obo_cae_reexchanges_total";
/// Sessions started (counter).
pub const SESSIONS_STARTED_TOTAL: &str = "axum_obo_sessions_started_total";
/// Session refreshes (counter; `outcome`).
pub const SESSION_REFRESHES_TOTAL: &str = "axum_obo_session_refreshes_total";
/// Sessions ended (counter; `reason`).
pub const SESSIONS_ENDED_TOTAL: &str = "axum_obo_sessions_ended_total";

/// Every metric name of this module, for exporters describing them and tests.
pub const ALL: &[&str] = &[
    VALIDATIONS_TOTAL,
    VALIDATED_TOKEN_CACHE_TOTAL,
    KEY_REFRESHES_TOTAL,
    EXCHANGES_TOTAL,
    TOKEN_ENDPOINT_DURATION_SECONDS,
    TOKEN_ENDPOINT_RETRIES_TOTAL,
    BACKOFFS_TOTAL,
    NEGATIVE_CACHE_HITS_TOTAL,
    OBO_CACHE_TOTAL,
    OBO_CACHE_ENTRIES,
    OBO_CACHE_WEIGHT_BYTES,
    DOWNSTREAM_REQUESTS_TOTAL,
    DOWNSTREAM_RETRIES_TOTAL,
    CAE_REEXCHANGES_TOTAL,
    SESSIONS_STARTED_TOTAL,
    SESSION_REFRESHES_TOTAL,
    SESSIONS_ENDED_TOTAL,
];

/// A fixed set of label values: an enum, each variant's string, and `ALL`.
macro_rules! label_values {
    ($(#[$m:meta])* enum $Name:ident { $($(#[$vm:meta])* $Var:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $Name { $($(#[$vm])* $Var,)* }

        #[allow(dead_code)]
        impl $Name {
            /// Every value, in the documented order.
            pub(crate) const ALL: &'static [$Name] = &[$($Name::$Var,)*];

            /// The label value.
            pub(crate) const fn as_str(self) -> &'static str {
                match self { $($Name::$Var => $s,)* }
            }
        }
    };
}

label_values! {
    /// Why the layer refused a request (`reason` of `axum_obo_validations_total`).
    enum Refusal {
        Missing = "missing",
        InvalidRequest = "invalid_request",
        Malformed = "malformed",
        TooLarge = "too_large",
        Algorithm = "algorithm",
        MissingKid = "missing_kid",
        UnknownKey = "unknown_key",
        Signature = "signature",
        Claim = "claim",
        Tenant = "tenant",
        Issuer = "issuer",
        Audience = "audience",
        IdToken = "id_token",
        Expired = "expired",
        NotYetValid = "not_yet_valid",
        NoScopesOrRoles = "no_scp_or_roles",
        AmbiguousKind = "ambiguous_kind",
        KeysUnavailable = "keys_unavailable",
        InsufficientScope = "insufficient_scope",
        AppOnly = "app_only",
        ClientApp = "client_app",
        Agent = "agent",
        Admission = "admission",
    }
}

label_values! {
    /// What a token request was for (`grant`).
    enum Grant {
        Obo = "obo",
        RefreshToken = "refresh_token",
        ClientCredentials = "client_credentials",
        ManagedIdentity = "managed_identity",
        AgentBlueprint = "agent_blueprint",
        AgentInstance = "agent_instance",
        AgentApp = "agent_app",
        AgentObo = "agent_obo",
        AgentUser = "agent_user",
    }
}

label_values! {
    /// How a token request ended (`outcome` of `axum_obo_exchanges_total`).
    enum ExchangeOutcome {
        Ok = "ok",
        InteractionRequired = "interaction_required",
        ConsentRequired = "consent_required",
        InvalidGrant = "invalid_grant",
        Throttled = "throttled",
        Unavailable = "unavailable",
        Error = "error",
    }
}

label_values! {
    /// What a backoff closes (`scope` of `axum_obo_backoffs_total`).
    enum BackoffScope {
        User = "user",
        Tenant = "tenant",
    }
}

label_values! {
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// An L2 lookup's result (`result` of `axum_obo_obo_cache_total{tier="l2"}`).
    enum L2Result {
        Hit = "hit",
        Miss = "miss",
        Error = "error",
        Undecryptable = "undecryptable",
    }
}

label_values! {
    /// Why a session ended (`reason` of `axum_obo_sessions_ended_total`).
    enum SessionEnd {
        Ended = "ended",
        Idle = "idle",
        Revoked = "revoked",
    }
}

impl Refusal {
    /// The reason of a refusal by the layer.
    pub(crate) fn of(rejection: &crate::AuthRejection) -> Self {
        use crate::AuthRejection as R;
        match rejection {
            R::MissingToken => Refusal::Missing,
            R::InvalidToken(e) => Refusal::of_invalid(e),
            R::Forbidden(f) => Refusal::of_forbidden(f),
            R::NotAdmitted(_) => Refusal::Admission,
            // The layer refuses nothing else; a bad header is an invalid request.
            _ => Refusal::InvalidRequest,
        }
    }

    /// The reason of an invalid token.
    pub(crate) fn of_invalid(e: &crate::validate::ValidationError) -> Self {
        use crate::validate::ValidationError as V;
        match e {
            V::Malformed => Refusal::Malformed,
            V::TooLarge => Refusal::TooLarge,
            V::Algorithm => Refusal::Algorithm,
            V::MissingKid => Refusal::MissingKid,
            V::UnknownKey => Refusal::UnknownKey,
            V::Signature => Refusal::Signature,
            V::Claim(_) => Refusal::Claim,
            V::TenantNotAllowed => Refusal::Tenant,
            V::Issuer => Refusal::Issuer,
            V::Audience => Refusal::Audience,
            V::IdToken => Refusal::IdToken,
            V::Expired => Refusal::Expired,
            V::NotYetValid => Refusal::NotYetValid,
            V::NoScopesOrRoles => Refusal::NoScopesOrRoles,
            V::AmbiguousKind => Refusal::AmbiguousKind,
            V::KeysUnavailable(_) => Refusal::KeysUnavailable,
        }
    }

    /// The reason of a refusal by the layer's policy.
    pub(crate) fn of_forbidden(f: &crate::policy::Forbidden) -> Self {
        use crate::policy::Forbidden as F;
        match f {
            F::Insufficient { .. } => Refusal::InsufficientScope,
            F::AppOnly => Refusal::AppOnly,
            F::ClientApp => Refusal::ClientApp,
            F::Agent => Refusal::Agent,
        }
    }
}

/// The `status_class` of a downstream answer (`None`: no answer).
#[allow(dead_code)]
pub(crate) fn status_class(status: Option<http::StatusCode>) -> &'static str {
    match status.map(|s| s.as_u16()) {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        // 1xx never reaches a client as a final answer; no answer at all.
        _ => "error",
    }
}

/// The recording helpers: each compiles to nothing without the feature. Label
/// values are `&'static str` from the sets above, except the opt-in tenant.
#[cfg(feature = "metrics")]
mod record {
    use metrics::{Key, Label, Level, Metadata};

    pub(super) static META: Metadata<'static> =
        Metadata::new("axum_obo", Level::INFO, Some(module_path!()));

    /// A `&'static Key` built at compile time (name, static labels, hash).
    macro_rules! static_key {
        ($name:expr $(, $k:literal => $v:expr)* $(,)?) => {{
            static LABELS: &[::metrics::Label] = &[$(::metrics::Label::from_static_parts($k, $v)),*];
            static KEY: ::metrics::Key = ::metrics::Key::from_static_parts($name, LABELS);
            &KEY
        }};
    }
    pub(super) use static_key;

    /// Adds one to `key`.
    #[inline]
    pub(super) fn count(key: &Key) {
        metrics::with_recorder(|r| r.register_counter(key, &META).increment(1));
    }

    /// Adds one to the counter `name` with `labels` and, when given, `tenant`.
    pub(super) fn count_labeled(
        name: &'static str,
        labels: &[(&'static str, &'static str)],
        tenant: Option<&str>,
    ) {
        metrics::with_recorder(|r| {
            let key = key(name, labels, tenant);
            r.register_counter(&key, &META).increment(1);
        });
    }

    pub(super) fn key(
        name: &'static str,
        labels: &[(&'static str, &'static str)],
        tenant: Option<&str>,
    ) -> Key {
        let mut all: Vec<Label> = Vec::with_capacity(labels.len() + 1);
        all.extend(labels.iter().map(|&(k, v)| Label::from_static_parts(k, v)));
        if let Some(tenant) = tenant {
            all.push(Label::new("tenant", tenant.to_owned()));
        }
        Key::from_parts(name, all)
    }

    /// Adds the `tenant` label to a static key.
    pub(super) fn with_tenant(key: &Key, tenant: &str) -> Key {
        key.with_extra_labels(vec![Label::new("tenant", tenant.to_owned())])
    }
}

// ---- hot paths ----------------------------------------------------------------

/// The counters of the two hot paths (a validated-token cache hit, an OBO L1
/// hit), registered once and then incremented through their handles: a few
/// instructions per request instead of a recorder lookup per counter.
///
/// Like any `metrics` handle, they are bound to the recorder installed when they
/// are registered: at the first hot-path hit of the layer that owns them. Install
/// the recorder before serving (as every exporter's set-up does). Zero-sized
/// without the feature.
#[derive(Default)]
pub(crate) struct HotCounters {
    #[cfg(feature = "metrics")]
    handles: std::sync::OnceLock<Handles>,
}

#[cfg(feature = "metrics")]
struct Handles {
    accepted: ::metrics::Counter,
    validated_hit: ::metrics::Counter,
    l1_hit: ::metrics::Counter,
}

#[cfg(feature = "metrics")]
impl HotCounters {
    #[inline]
    fn handles(&self) -> &Handles {
        self.handles.get_or_init(|| {
            ::metrics::with_recorder(|r| Handles {
                accepted: r.register_counter(
                    record::static_key!(VALIDATIONS_TOTAL, "outcome" => "accepted", "reason" => "ok"),
                    &record::META,
                ),
                validated_hit: r.register_counter(
                    record::static_key!(VALIDATED_TOKEN_CACHE_TOTAL, "result" => "hit"),
                    &record::META,
                ),
                l1_hit: r.register_counter(
                    record::static_key!(OBO_CACHE_TOTAL, "tier" => "l1", "result" => "hit"),
                    &record::META,
                ),
            })
        })
    }
}

impl std::fmt::Debug for HotCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HotCounters")
    }
}

// ---- validation -------------------------------------------------------------

/// The layer admitted a request whose token was in the validated-token cache:
/// `axum_obo_validations_total{outcome="accepted",reason="ok"}` and
/// `axum_obo_validated_token_cache_total{result="hit"}`. The hot path: two
/// bound handles; a recorder lookup (and an allocation) only with `tenant`.
#[inline]
pub(crate) fn accepted_cached(hot: &HotCounters, tenant: Option<&str>) {
    #[cfg(feature = "metrics")]
    {
        let handles = hot.handles();
        match tenant {
            None => handles.accepted.increment(1),
            Some(_) => accepted(tenant),
        }
        handles.validated_hit.increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (hot, tenant);
}

/// The layer admitted a request after a full validation.
#[inline]
pub(crate) fn accepted(tenant: Option<&str>) {
    #[cfg(feature = "metrics")]
    {
        let accepted =
            record::static_key!(VALIDATIONS_TOTAL, "outcome" => "accepted", "reason" => "ok");
        match tenant {
            None => record::count(accepted),
            Some(t) => record::count(&record::with_tenant(accepted, t)),
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = tenant;
}

/// The layer refused a request. `tenant` only for a token that validated (a
/// policy or admission refusal), never from unverified claims.
#[inline]
pub(crate) fn refused(reason: Refusal, tenant: Option<&str>) {
    #[cfg(feature = "metrics")]
    record::count_labeled(
        VALIDATIONS_TOTAL,
        &[("outcome", "refused"), ("reason", reason.as_str())],
        tenant,
    );
    #[cfg(not(feature = "metrics"))]
    let _ = (reason, tenant);
}

/// A validated-token cache lookup that found nothing usable (a hit is counted
/// by [`accepted_cached`], or here when the layer then refuses the request).
#[inline]
pub(crate) fn validated_token_cache(hit: bool) {
    #[cfg(feature = "metrics")]
    record::count(if hit {
        record::static_key!(VALIDATED_TOKEN_CACHE_TOTAL, "result" => "hit")
    } else {
        record::static_key!(VALIDATED_TOKEN_CACHE_TOTAL, "result" => "miss")
    });
    #[cfg(not(feature = "metrics"))]
    let _ = hit;
}

/// A fetch of a tenant's signing keys ended.
#[inline]
pub(crate) fn key_refresh(ok: bool) {
    #[cfg(feature = "metrics")]
    record::count(if ok {
        record::static_key!(KEY_REFRESHES_TOTAL, "outcome" => "ok")
    } else {
        record::static_key!(KEY_REFRESHES_TOTAL, "outcome" => "failed")
    });
    #[cfg(not(feature = "metrics"))]
    let _ = ok;
}

// ---- token endpoint -----------------------------------------------------------

/// A token request ended (after its retries).
#[inline]
pub(crate) fn exchange(grant: Grant, outcome: ExchangeOutcome, tenant: Option<&str>) {
    #[cfg(feature = "metrics")]
    record::count_labeled(
        EXCHANGES_TOTAL,
        &[("grant", grant.as_str()), ("outcome", outcome.as_str())],
        tenant,
    );
    #[cfg(not(feature = "metrics"))]
    let _ = (grant, outcome, tenant);
}

/// One HTTP request to the token endpoint took `elapsed`.
#[inline]
pub(crate) fn token_endpoint_duration(grant: Grant, elapsed: std::time::Duration) {
    #[cfg(feature = "metrics")]
    ::metrics::with_recorder(|r| {
        let key = record::key(
            TOKEN_ENDPOINT_DURATION_SECONDS,
            &[("grant", grant.as_str())],
            None,
        );
        r.register_histogram(&key, &record::META)
            .record(elapsed.as_secs_f64());
    });
    #[cfg(not(feature = "metrics"))]
    let _ = (grant, elapsed);
}

/// A token request is sent again.
#[inline]
pub(crate) fn token_endpoint_retry(grant: Grant) {
    #[cfg(feature = "metrics")]
    record::count_labeled(
        TOKEN_ENDPOINT_RETRIES_TOTAL,
        &[("grant", grant.as_str())],
        None,
    );
    #[cfg(not(feature = "metrics"))]
    let _ = grant;
}

/// A backoff started after throttling.
#[inline]
pub(crate) fn backoff(scope: BackoffScope) {
    #[cfg(feature = "metrics")]
    record::count(match scope {
        BackoffScope::User => record::static_key!(BACKOFFS_TOTAL, "scope" => "user"),
        BackoffScope::Tenant => record::static_key!(BACKOFFS_TOTAL, "scope" => "tenant"),
    });
    #[cfg(not(feature = "metrics"))]
    let _ = scope;
}

/// An exchange answered from the negative cache.
#[inline]
pub(crate) fn negative_cache_hit() {
    #[cfg(feature = "metrics")]
    record::count(record::static_key!(NEGATIVE_CACHE_HITS_TOTAL));
}

// ---- On-Behalf-Of cache --------------------------------------------------------

/// An L1 hit: the hot path, one bound handle.
#[inline]
pub(crate) fn l1_hit(hot: &HotCounters) {
    #[cfg(feature = "metrics")]
    hot.handles().l1_hit.increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = hot;
}

/// An L1 miss.
#[inline]
pub(crate) fn l1_miss() {
    #[cfg(feature = "metrics")]
    record::count(record::static_key!(OBO_CACHE_TOTAL, "tier" => "l1", "result" => "miss"));
}

/// An L2 lookup (or a failed L2 call).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[inline]
pub(crate) fn l2(result: L2Result) {
    #[cfg(feature = "metrics")]
    record::count(match result {
        L2Result::Hit => record::static_key!(OBO_CACHE_TOTAL, "tier" => "l2", "result" => "hit"),
        L2Result::Miss => {
            record::static_key!(OBO_CACHE_TOTAL, "tier" => "l2", "result" => "miss")
        }
        L2Result::Error => {
            record::static_key!(OBO_CACHE_TOTAL, "tier" => "l2", "result" => "error")
        }
        L2Result::Undecryptable => {
            record::static_key!(OBO_CACHE_TOTAL, "tier" => "l2", "result" => "undecryptable")
        }
    });
    #[cfg(not(feature = "metrics"))]
    let _ = result;
}

/// The L1's size now.
#[inline]
pub(crate) fn l1_size(entries: u64, bytes: u64) {
    #[cfg(feature = "metrics")]
    ::metrics::with_recorder(|r| {
        let e = record::static_key!(OBO_CACHE_ENTRIES);
        let b = record::static_key!(OBO_CACHE_WEIGHT_BYTES);
        r.register_gauge(e, &record::META).set(entries as f64);
        r.register_gauge(b, &record::META).set(bytes as f64);
    });
    #[cfg(not(feature = "metrics"))]
    let _ = (entries, bytes);
}

// ---- downstream ---------------------------------------------------------------

/// A downstream HTTP request ended with `status` (`None`: no answer).
#[inline]
pub(crate) fn downstream_request(status: Option<http::StatusCode>) {
    #[cfg(feature = "metrics")]
    record::count(match status_class(status) {
        "2xx" => record::static_key!(DOWNSTREAM_REQUESTS_TOTAL, "status_class" => "2xx"),
        "3xx" => record::static_key!(DOWNSTREAM_REQUESTS_TOTAL, "status_class" => "3xx"),
        "4xx" => record::static_key!(DOWNSTREAM_REQUESTS_TOTAL, "status_class" => "4xx"),
        "5xx" => record::static_key!(DOWNSTREAM_REQUESTS_TOTAL, "status_class" => "5xx"),
        _ => record::static_key!(DOWNSTREAM_REQUESTS_TOTAL, "status_class" => "error"),
    });
    #[cfg(not(feature = "metrics"))]
    let _ = status;
}

/// A downstream request is sent again.
#[inline]
pub(crate) fn downstream_retry() {
    #[cfg(feature = "metrics")]
    record::count(record::static_key!(DOWNSTREAM_RETRIES_TOTAL));
}

/// A re-exchange answering a claims challenge ended.
#[inline]
pub(crate) fn cae_reexchange(ok: bool) {
    #[cfg(feature = "metrics")]
    record::count(if ok {
        record::static_key!(CAE_REEXCHANGES_TOTAL, "outcome" => "ok")
    } else {
        record::static_key!(CAE_REEXCHANGES_TOTAL, "outcome" => "failed")
    });
    #[cfg(not(feature = "metrics"))]
    let _ = ok;
}

// ---- sessions -----------------------------------------------------------------

/// A session started.
#[inline]
pub(crate) fn session_started() {
    #[cfg(feature = "metrics")]
    record::count(record::static_key!(SESSIONS_STARTED_TOTAL));
}

/// A session's refresh ended.
#[inline]
pub(crate) fn session_refresh(ok: bool) {
    #[cfg(feature = "metrics")]
    record::count(if ok {
        record::static_key!(SESSION_REFRESHES_TOTAL, "outcome" => "ok")
    } else {
        record::static_key!(SESSION_REFRESHES_TOTAL, "outcome" => "failed")
    });
    #[cfg(not(feature = "metrics"))]
    let _ = ok;
}

/// A session ended.
#[inline]
pub(crate) fn session_ended(reason: SessionEnd) {
    #[cfg(feature = "metrics")]
    record::count(match reason {
        SessionEnd::Ended => record::static_key!(SESSIONS_ENDED_TOTAL, "reason" => "ended"),
        SessionEnd::Idle => record::static_key!(SESSIONS_ENDED_TOTAL, "reason" => "idle"),
        SessionEnd::Revoked => record::static_key!(SESSIONS_ENDED_TOTAL, "reason" => "revoked"),
    });
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        for name in ALL {
            assert!(name.starts_with("axum_obo_"), "{name}");
            let counter = !name.ends_with("_seconds")
                && *name != OBO_CACHE_ENTRIES
                && *name != OBO_CACHE_WEIGHT_BYTES;
            assert_eq!(counter, name.ends_with("_total"), "{name}");
        }
        let mut sorted = ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALL.len());
    }

    #[test]
    fn label_values_are_snake_case_and_distinct() {
        let sets: [Vec<&str>; 6] = [
            Refusal::ALL.iter().map(|v| v.as_str()).collect(),
            Grant::ALL.iter().map(|v| v.as_str()).collect(),
            ExchangeOutcome::ALL.iter().map(|v| v.as_str()).collect(),
            BackoffScope::ALL.iter().map(|v| v.as_str()).collect(),
            L2Result::ALL.iter().map(|v| v.as_str()).collect(),
            SessionEnd::ALL.iter().map(|v| v.as_str()).collect(),
        ];
        for set in sets {
            let mut sorted = set.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), set.len(), "{set:?}");
            for v in set {
                assert!(
                    v.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{v}"
                );
            }
        }
    }

    #[test]
    fn every_refusal_has_a_documented_reason() {
        use crate::policy::Forbidden;
        use crate::validate::ValidationError as V;
        use crate::AuthRejection as R;
        let cases = [
            (R::MissingToken, "missing"),
            (R::InvalidRequest("two headers"), "invalid_request"),
            (R::InvalidToken(V::Malformed), "malformed"),
            (R::InvalidToken(V::TooLarge), "too_large"),
            (R::InvalidToken(V::Algorithm), "algorithm"),
            (R::InvalidToken(V::MissingKid), "missing_kid"),
            (R::InvalidToken(V::UnknownKey), "unknown_key"),
            (R::InvalidToken(V::Signature), "signature"),
            (R::InvalidToken(V::Claim("oid")), "claim"),
            (R::InvalidToken(V::TenantNotAllowed), "tenant"),
            (R::InvalidToken(V::Issuer), "issuer"),
            (R::InvalidToken(V::Audience), "audience"),
            (R::InvalidToken(V::IdToken), "id_token"),
            (R::InvalidToken(V::Expired), "expired"),
            (R::InvalidToken(V::NotYetValid), "not_yet_valid"),
            (R::InvalidToken(V::NoScopesOrRoles), "no_scp_or_roles"),
            (R::InvalidToken(V::AmbiguousKind), "ambiguous_kind"),
            (
                R::Forbidden(Forbidden::Insufficient {
                    scopes: vec!["s".into()],
                    roles: vec![],
                }),
                "insufficient_scope",
            ),
            (R::Forbidden(Forbidden::AppOnly), "app_only"),
            (R::Forbidden(Forbidden::ClientApp), "client_app"),
            (R::Forbidden(Forbidden::Agent), "agent"),
            (
                R::NotAdmitted(crate::admission::Refusal::forbidden("no")),
                "admission",
            ),
        ];
        let mut seen = Vec::new();
        for (rejection, want) in &cases {
            let reason = Refusal::of(rejection);
            assert_eq!(reason.as_str(), *want, "{rejection:?}");
            seen.push(reason);
        }
        // Every documented reason but `keys_unavailable` (its error needs a
        // key-store failure) is reached above, each by its own rejection.
        seen.push(Refusal::KeysUnavailable);
        let mut all = Refusal::ALL.to_vec();
        let key = |r: &Refusal| r.as_str();
        seen.sort_by_key(key);
        seen.dedup();
        all.sort_by_key(key);
        assert_eq!(seen, all);
    }

    /// The helpers against a thread-local recorder: the hot handles, the
    /// opt-in tenant label, and the labels of the others.
    #[cfg(feature = "metrics")]
    #[test]
    fn helpers_record_their_keys() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _guard = ::metrics::set_default_local_recorder(&recorder);
        let hot = HotCounters::default();
        accepted_cached(&hot, None);
        accepted_cached(&hot, Some("tid-1"));
        l1_hit(&hot);
        l1_hit(&hot);
        refused(Refusal::Expired, None);
        exchange(Grant::AgentObo, ExchangeOutcome::Throttled, Some("tid-1"));
        let mut got: Vec<(String, Vec<String>, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key().clone();
                let labels = key
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                let DebugValue::Counter(n) = value else {
                    panic!("a counter")
                };
                (key.name().to_owned(), labels, n)
            })
            .collect();
        got.sort();
        let want = |name: &str, labels: &[&str], n| {
            (
                name.to_owned(),
                labels.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>(),
                n,
            )
        };
        assert_eq!(
            got,
            [
                want(
                    EXCHANGES_TOTAL,
                    &["grant=agent_obo", "outcome=throttled", "tenant=tid-1"],
                    1
                ),
                want(OBO_CACHE_TOTAL, &["tier=l1", "result=hit"], 2),
                want(VALIDATED_TOKEN_CACHE_TOTAL, &["result=hit"], 2),
                want(VALIDATIONS_TOTAL, &["outcome=accepted", "reason=ok"], 1),
                want(
                    VALIDATIONS_TOTAL,
                    &["outcome=accepted", "reason=ok", "tenant=tid-1"],
                    1
                ),
                want(VALIDATIONS_TOTAL, &["outcome=refused", "reason=expired"], 1),
            ]
        );
    }

    #[test]
    fn status_classes() {
        use http::StatusCode as S;
        assert_eq!(status_class(Some(S::OK)), "2xx");
        assert_eq!(status_class(Some(S::NO_CONTENT)), "2xx");
        assert_eq!(status_class(Some(S::FOUND)), "3xx");
        assert_eq!(status_class(Some(S::NOT_FOUND)), "4xx");
        assert_eq!(status_class(Some(S::TOO_MANY_REQUESTS)), "4xx");
        assert_eq!(status_class(Some(S::SERVICE_UNAVAILABLE)), "5xx");
        assert_eq!(status_class(None), "error");
    }
}
