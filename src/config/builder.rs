//! [`OboConfigBuilder`]: setters that never fail, and [`build`](OboConfigBuilder::build),
//! which checks every field (naming the first at fault) and produces each
//! subsystem's settings: keys, validation, exchange (with the L2), downstream and
//! the access policy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::checks::{allowed_tenants, audiences, normalize_guid, validate_base_url, words};
use super::error::ConfigError;
#[cfg(feature = "redis")]
use super::l2::{L2Spec, DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT};
use super::managed_identity::{build_managed_identity, ManagedIdentitySpec};
use super::resource::{app_id_uri_audiences, build_resource, ResourceContext, ResourceFields};
use super::settings::{OboConfig, DEFAULT_AUTHORITY_HOST};
use crate::clock::{Clock, SystemClock};
use crate::credential::{
    CertificateCredential, ClientAssertion, ClientCredential, FederatedTokenFile, ManagedIdentity,
};
use crate::downstream::{DownstreamSettings, DEFAULT_GRAPH_URL};
use crate::exchange::ExchangeSettings;
use crate::http::shared_client;
use crate::jwks::KeySettings;
use crate::policy::Policy;
use crate::secret::SecretString;
use crate::session::{SessionSettings, SessionStore};
use crate::validate::{ValidationSettings, ANY_TENANT_KEYS};

/// The shortest accepted [`OboConfigBuilder::min_key_refresh`]: anything less would
/// let tokens with made-up key ids turn every request into a key-set fetch.
const MIN_KEY_REFRESH_FLOOR: Duration = Duration::from_secs(1);

/// Default bound of the On-Behalf-Of cache: room for 100,000 users with one
/// Graph token each (about 3 KiB per entry).
pub const DEFAULT_OBO_CACHE_BYTES: u64 = 100_000 * 3 * 1024;

/// Default idle timeout of a long-running session: 24 hours.
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Default bound of session starts per user: 10 …
pub const DEFAULT_SESSION_START_LIMIT: u32 = 10;
/// … per minute (a token bucket: a burst of 10, then one every 6 s).
pub const DEFAULT_SESSION_START_WINDOW: Duration = Duration::from_secs(60);
/// The `allowed_tenants` entry that admits any organization's tenant.
const ANY_TENANT: &str = "*";

/// Builder for [`OboConfig`]. Setters never fail; [`build`](Self::build) checks
/// everything and names the first field at fault.
#[must_use]
#[derive(Clone)]
pub struct OboConfigBuilder {
    tenant_id: Option<String>,
    client_id: Option<String>,
    authority_host: String,
    graph_url: String,
    extra_tenants: Vec<String>,
    audiences: Option<Vec<String>>,
    leeway: Duration,
    min_key_refresh: Duration,
    key_refresh_interval: Duration,
    http_timeout: Duration,
    validated_cache_capacity: u64,
    policy: Policy,
    clock: Arc<dyn Clock>,
    pub(super) credential: Option<CredentialSpec>,
    /// Endpoint and audience of a managed-identity credential.
    pub(super) managed_identity: ManagedIdentitySpec,
    refresh_margin: Duration,
    negative_ttl: Duration,
    cache_max_bytes: u64,
    max_retries: usize,
    retry_budget: Duration,
    metrics_tenant_label: bool,
    client_capabilities: Vec<String>,
    session_idle_timeout: Duration,
    session_store: Option<Arc<dyn SessionStore>>,
    session_start_limit: (u32, Duration),
    /// This API as an OAuth protected resource (RFC 9728).
    pub(super) resource: ResourceFields,
    #[cfg(feature = "redis")]
    pub(super) l2: L2Spec,
    /// Fields read from the environment, and the variable each came from (so that
    /// `build()` names it); a setter called later removes its field.
    pub(super) origins: Vec<(&'static str, &'static str)>,
}

#[derive(Clone, Debug)]
pub(super) enum CredentialSpec {
    Ready(ClientCredential),
    CertificateFile(std::path::PathBuf),
    FederatedFile(std::path::PathBuf),
    ManagedIdentity(ManagedIdentity),
}

impl fmt::Debug for OboConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OboConfigBuilder")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority_host", &self.authority_host)
            .finish_non_exhaustive()
    }
}

impl Default for OboConfigBuilder {
    fn default() -> Self {
        Self {
            tenant_id: None,
            client_id: None,
            authority_host: DEFAULT_AUTHORITY_HOST.to_owned(),
            graph_url: DEFAULT_GRAPH_URL.to_owned(),
            extra_tenants: Vec::new(),
            audiences: None,
            leeway: Duration::from_secs(60),
            min_key_refresh: Duration::from_secs(10),
            key_refresh_interval: Duration::from_secs(12 * 3600),
            http_timeout: Duration::from_secs(10),
            validated_cache_capacity: 10_000,
            policy: Policy {
                allow_app_only: true,
                ..Policy::default()
            },
            clock: Arc::new(SystemClock),
            credential: None,
            managed_identity: ManagedIdentitySpec::default(),
            refresh_margin: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(30),
            cache_max_bytes: DEFAULT_OBO_CACHE_BYTES,
            max_retries: 3,
            retry_budget: Duration::from_secs(20),
            metrics_tenant_label: false,
            client_capabilities: Vec::new(),
            session_idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
            session_store: None,
            session_start_limit: (DEFAULT_SESSION_START_LIMIT, DEFAULT_SESSION_START_WINDOW),
            resource: ResourceFields::default(),
            #[cfg(feature = "redis")]
            l2: L2Spec {
                url: None,
                cluster: false,
                key: None,
                old_keys: Vec::new(),
                prefix: DEFAULT_REDIS_PREFIX.to_owned(),
                timeout: DEFAULT_REDIS_TIMEOUT,
                ca_file: None,
                entra: false,
                username: None,
            },
            origins: Vec::new(),
        }
    }
}

impl OboConfigBuilder {
    /// The home tenant id (a GUID). Required.
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.forget_origin("tenant_id");
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// This API's application (client) id (a GUID). Required.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.forget_origin("client_id");
        self.client_id = Some(client_id.into());
        self
    }

    /// The authority host, e.g. `https://login.microsoftonline.us`. Must be
    /// `https://`, except on loopback (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.forget_origin("authority_host");
        self.authority_host = host.into();
        self
    }

    /// The Microsoft Graph root for a national cloud, e.g.
    /// `https://graph.microsoft.us` (same scheme rules as the authority host).
    pub fn graph_url(mut self, url: impl Into<String>) -> Self {
        self.forget_origin("graph_url");
        self.graph_url = url.into();
        self
    }

    /// Admits tokens from these tenants too (GUIDs), in addition to the home tenant.
    /// `*` admits any organization's tenant, as [`allow_any_tenant`](Self::allow_any_tenant).
    pub fn allow_tenants<I, T>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.forget_origin("allowed_tenants");
        self.extra_tenants
            .extend(tenants.into_iter().map(Into::into));
        self
    }

    /// Admits tokens of any organization's tenant (`OBO_ALLOWED_TENANTS=*`), for a
    /// multi-tenant API that decides which tenants it serves itself, typically in an
    /// [admission hook](crate::admission). Every other check stays: the signature
    /// (against the keys Entra publishes for every organization, at
    /// `{authority}/organizations`), `iss` = the issuer of the token's own `tid`,
    /// `aud`, lifetime, token kind, the layer-wide policy. Microsoft-account tokens
    /// (the consumers tenant) stay refused unless listed. The RFC 9728 metadata
    /// still lists only the home and listed tenants. Without an admission hook,
    /// every Entra organization's users may call this API: read the security
    /// notes (`docs/security.md`, "Any tenant") before turning it on.
    pub fn allow_any_tenant(mut self) -> Self {
        self.forget_origin("allowed_tenants");
        self.extra_tenants.push(ANY_TENANT.to_owned());
        self
    }

    /// Replaces the accepted audiences (default: the client id and `api://{client id}`).
    /// A configured [`app_id_uri`](Self::app_id_uri) is accepted in addition.
    pub fn audiences<I, T>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.audiences = Some(audiences.into_iter().map(Into::into).collect());
        self
    }

    /// Allowed clock skew for `exp`/`nbf` (default 60 s, at most 5 minutes).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Minimum time between two key-set fetches for one tenant (default 10 s, at
    /// least 1 s). Bounds the fetches that tokens with unknown `kid`s can cause.
    pub fn min_key_refresh(mut self, every: Duration) -> Self {
        self.min_key_refresh = every;
        self
    }

    /// Age after which the key set is refreshed in the background (default 12 h).
    pub fn key_refresh_interval(mut self, every: Duration) -> Self {
        self.key_refresh_interval = every;
        self
    }

    /// Connect timeout of every connection, and total timeout of every call to the
    /// identity provider (default 10 s). Downstream calls have their own timeout
    /// ([`DownstreamClient::with_timeout`](crate::downstream::DownstreamClient::with_timeout), default 30 s).
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Capacity of the validated-token cache (default 10,000 tokens; `0` disables
    /// it so that every request verifies the signature).
    pub fn validated_cache_capacity(mut self, capacity: u64) -> Self {
        self.validated_cache_capacity = capacity;
        self
    }

    /// Delegated (user) tokens must carry at least one of these scopes, e.g.
    /// `["access_as_user"]`. Failing requests get 403 `insufficient_scope`.
    pub fn require_user_scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.policy.user_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// App-only tokens must carry at least one of these app roles.
    pub fn require_app_roles<I, T>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.policy.app_roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Whether the metrics (feature `metrics`, see [`crate::metrics`]) of
    /// validations and exchanges carry the label `tenant` (the tenant id of a
    /// token that validated). Default `false`: one time series per tenant suits a
    /// handful of tenants, not a multi-tenant API open to any organization. With
    /// [`allow_any_tenant`](Self::allow_any_tenant), refusals carry no tenant (any
    /// organization signs valid tokens) and accepted requests do: admit known
    /// tenants only, with an [admission hook](crate::admission).
    /// Environment: `OBO_METRICS_TENANT_LABEL` (`true` or `false`).
    pub fn metrics_tenant_label(mut self, label: bool) -> Self {
        self.forget_origin("metrics_tenant_label");
        self.metrics_tenant_label = label;
        self
    }

    /// Whether app-only (client-credentials) tokens are admitted (default `true`).
    pub fn allow_app_only(mut self, allow: bool) -> Self {
        self.policy.allow_app_only = allow;
        self
    }

    /// Only these client applications (`azp` in v2, `appid` in v1) may call.
    pub fn allowed_client_apps<I, T>(mut self, apps: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.policy.allowed_client_apps = Some(apps.into_iter().map(Into::into).collect());
        self
    }

    /// The clock used for `exp`/`nbf` and key-refresh timing (default: system time).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Authenticates to the token endpoint with a client secret.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.forget_credential_origin();
        let secret: String = secret.into();
        self.credential = Some(CredentialSpec::Ready(ClientCredential::Secret(
            SecretString::new(secret),
        )));
        self
    }

    /// Authenticates with a certificate (a signed client assertion).
    pub fn client_certificate(mut self, certificate: CertificateCredential) -> Self {
        self.forget_credential_origin();
        self.credential = Some(CredentialSpec::Ready(ClientCredential::Certificate(
            certificate,
        )));
        self
    }

    /// Authenticates with a certificate read, at `build()`, from a PEM file
    /// holding the certificate and its RSA private key.
    pub fn client_certificate_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.forget_credential_origin();
        self.credential = Some(CredentialSpec::CertificateFile(path.into()));
        self
    }

    /// Authenticates with a federated token read from `path` at every exchange
    /// (workload identity).
    pub fn federated_token_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.forget_credential_origin();
        self.credential = Some(CredentialSpec::FederatedFile(path.into()));
        self
    }

    /// Authenticates with client assertions from your own source.
    pub fn client_assertion(mut self, source: impl ClientAssertion) -> Self {
        self.forget_credential_origin();
        self.credential = Some(CredentialSpec::Ready(ClientCredential::Assertion(
            Arc::new(source),
        )));
        self
    }

    /// Re-exchange a cached downstream token this long before it expires
    /// (default 5 minutes; tokens living less than twice this are re-exchanged
    /// at half their lifetime).
    pub fn obo_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// How long `interaction_required`/consent errors are remembered per user
    /// and scope set (default 30 s).
    pub fn obo_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Bound of the On-Behalf-Of cache in bytes (default [`DEFAULT_OBO_CACHE_BYTES`]).
    pub fn obo_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.cache_max_bytes = bytes;
        self
    }

    /// Retries of 429/5xx token-endpoint answers (default 3) and the total time
    /// they may take (default 20 s).
    pub fn obo_retries(mut self, max_retries: usize, budget: Duration) -> Self {
        self.max_retries = max_retries;
        self.retry_budget = budget;
        self
    }

    /// Client capabilities this API declares to Entra on every On-Behalf-Of request
    /// (the `xms_cc` claims request), e.g. `["cp1"]`: this API handles claims
    /// challenges (Continuous Access Evaluation). Graph then issues CAE tokens, and
    /// when it answers a call with a claims challenge, the client built by
    /// [`OboToken`](crate::OboToken) re-exchanges once with the challenge's claims
    /// and retries once. Default: none (a challenge is relayed to the caller).
    /// Each value is 1 to 64 characters of `[A-Za-z0-9_.-]`. Environment:
    /// `OBO_CLIENT_CAPABILITIES`, comma-separated.
    pub fn client_capabilities<I, T>(mut self, capabilities: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.forget_origin("client_capabilities");
        self.client_capabilities = capabilities.into_iter().map(Into::into).collect();
        self
    }

    /// Shares downstream tokens between replicas through Redis (feature `redis`):
    /// an encrypted L2 under the in-memory cache, read on an in-memory miss before
    /// exchanging, written after each exchange. `redis://host:port[/db]` or
    /// `rediss://` (TLS); a password goes in the URL (`redis://:password@host`).
    /// Requires [`obo_cache_key`](Self::obo_cache_key). With
    /// [`obo_redis_cluster`](Self::obo_redis_cluster), one or more seed nodes of a
    /// Redis Cluster, comma-separated. Nothing connects at build
    /// time, and Redis failures never fail a request (they fall back to the
    /// in-memory cache and the exchange). Environment: `OBO_REDIS_URL`.
    #[cfg(feature = "redis")]
    pub fn obo_redis_url(mut self, url: impl Into<String>) -> Self {
        self.forget_origin("obo_redis_url");
        self.l2.url = Some(SecretString::new(url.into()));
        self
    }

    /// Speaks the Redis Cluster protocol (default `false`, standalone): the
    /// [`obo_redis_url`](Self::obo_redis_url) is then one or more seed nodes'
    /// URLs, comma-separated, from which the slot map is learnt; commands follow
    /// `MOVED`/`ASK`, and a master that fails costs misses for its own keys only.
    /// For Azure Managed Redis with the OSS cluster policy (port 10000); its
    /// Enterprise policy and Azure Cache for Redis are standalone. Environment:
    /// `OBO_REDIS_CLUSTER` (`true` or `false`).
    #[cfg(feature = "redis")]
    pub fn obo_redis_cluster(mut self, cluster: bool) -> Self {
        self.forget_origin("obo_redis_cluster");
        self.l2.cluster = cluster;
        self
    }

    /// The key sealing every L2 value (AES-256-GCM): 32 bytes in standard base64,
    /// e.g. from `openssl rand -base64 32`. The same on every replica; keep it in
    /// your secret store. Environment: `OBO_CACHE_KEY`.
    #[cfg(feature = "redis")]
    pub fn obo_cache_key(mut self, base64_key: impl Into<String>) -> Self {
        self.forget_origin("obo_cache_key");
        self.l2.key = Some(SecretString::new(base64_key.into()));
        self
    }

    /// Former cache keys (base64, like [`obo_cache_key`](Self::obo_cache_key)),
    /// still accepted for reading while entries sealed under them expire (key
    /// rotation). Environment: `OBO_CACHE_OLD_KEYS`, comma-separated.
    #[cfg(feature = "redis")]
    pub fn obo_cache_old_keys<I, T>(mut self, base64_keys: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.forget_origin("obo_cache_old_keys");
        self.l2.old_keys = base64_keys
            .into_iter()
            .map(|k| SecretString::new(k.into()))
            .collect();
        self
    }

    /// Prefix of the L2's Redis keys (default `axum-obo:`), e.g. to share one
    /// Redis between several APIs or environments. Environment: `OBO_REDIS_PREFIX`.
    #[cfg(feature = "redis")]
    pub fn obo_redis_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.forget_origin("obo_redis_prefix");
        self.l2.prefix = prefix.into();
        self
    }

    /// Bound of every Redis call (default 100 ms, at most 10 s); past it the
    /// request goes on without the L2. Environment: `OBO_REDIS_TIMEOUT_MS`.
    #[cfg(feature = "redis")]
    pub fn obo_redis_timeout(mut self, timeout: Duration) -> Self {
        self.forget_origin("obo_redis_timeout");
        self.l2.timeout = timeout;
        self
    }

    /// A long-running session unused for this long has ended (default 24 h,
    /// [`DEFAULT_SESSION_IDLE_TIMEOUT`]; between 1 minute and 90 days, Entra's
    /// refresh-token inactivity window). Measured on the configured clock.
    pub fn session_idle_timeout(mut self, idle: Duration) -> Self {
        self.session_idle_timeout = idle;
        self
    }

    /// How many long-running sessions one user (tenant and object id) may start:
    /// `starts` per `per`, as a token bucket (a burst of `starts`, then one every
    /// `per / starts`), on the configured clock, per process. Past it a start is
    /// refused before any exchange with
    /// [`SessionError::TooManySessions`](crate::session::SessionError::TooManySessions)
    /// (429 with `Retry-After` in a request). Default 10 per minute
    /// ([`DEFAULT_SESSION_START_LIMIT`], [`DEFAULT_SESSION_START_WINDOW`]);
    /// `starts` at least 1, `per` between 1 second and 1 day.
    pub fn session_start_limit(mut self, starts: u32, per: Duration) -> Self {
        self.session_start_limit = (starts, per);
        self
    }

    /// Where long-running sessions are kept (default: the Redis L2's Redis, sealed
    /// with its keys, when configured (feature `redis`); this process's memory
    /// otherwise).
    pub fn session_store(mut self, store: impl SessionStore) -> Self {
        self.session_store = Some(Arc::new(store));
        self
    }

    /// Validates everything and builds the configuration.
    pub fn build(self) -> Result<OboConfig, ConfigError> {
        let origins = self.origins.clone();
        self.check_and_build().map_err(|e| {
            match origins.iter().find(|(field, _)| *field == e.field()) {
                Some((_, variable)) => e.in_variable(variable),
                None => e,
            }
        })
    }

    fn check_and_build(self) -> Result<OboConfig, ConfigError> {
        let tenant_id = normalize_guid("tenant_id", self.tenant_id.as_deref())?;
        let client_id = normalize_guid("client_id", self.client_id.as_deref())?;
        let authority = validate_base_url("authority_host", &self.authority_host)?;
        let graph_url = validate_base_url("graph_url", &self.graph_url)?;
        let any_tenant = self.extra_tenants.iter().any(|t| t.trim() == ANY_TENANT);
        let listed: Vec<String> = (self.extra_tenants.iter())
            .filter(|t| t.trim() != ANY_TENANT)
            .cloned()
            .collect();
        let allowed_tenants = allowed_tenants(&tenant_id, &listed)?;
        let mut audiences = audiences(&client_id, self.audiences)?;
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::new("leeway", "must be at most 5 minutes"));
        }
        let keys = KeySettings {
            authority: authority.clone(),
            // Any tenant: the keys Entra publishes for every organization.
            tenants: (allowed_tenants.iter().cloned())
                .chain(any_tenant.then(|| ANY_TENANT_KEYS.to_owned()))
                .collect(),
            timeout: self.http_timeout,
            min_refresh: self.min_key_refresh,
            refresh_interval: self.key_refresh_interval,
            clock: Arc::clone(&self.clock),
        };
        check_key_timing(&keys)?;
        check_policy(&self.policy)?;
        let tenants: Vec<String> = allowed_tenants.iter().cloned().collect();
        let app_id_uri_audiences = app_id_uri_audiences(&self.resource);
        let resource = build_resource(
            self.resource,
            ResourceContext {
                authority: &authority,
                home_tenant: &tenant_id,
                tenants: &tenants,
                client_id: &client_id,
                user_scopes: &self.policy.user_scopes,
            },
        )?;
        audiences.extend(app_id_uri_audiences);
        let http = shared_client(self.http_timeout)
            .map_err(|e| ConfigError::new("http_client", format!("cannot be built: {e}")))?;
        let credential = match self.credential {
            Some(CredentialSpec::ManagedIdentity(identity)) => Some(build_managed_identity(
                identity,
                self.managed_identity,
                &authority,
                &http,
                self.http_timeout,
            )?),
            other => build_credential(other)?,
        };
        #[cfg(feature = "redis")]
        let l2 = self.l2.build(&tenant_id, credential.is_some())?;
        let exchange = ExchangeSettings {
            client_id: client_id.clone(),
            authority: authority.clone(),
            credential,
            leeway: self.leeway,
            refresh_margin: self.refresh_margin,
            negative_ttl: self.negative_ttl,
            cache_max_bytes: self.cache_max_bytes,
            max_retries: self.max_retries,
            retry_budget: self.retry_budget,
            metrics_tenant_label: self.metrics_tenant_label,
            metrics_named_tenants: tenants.clone(),
            client_capabilities: client_capabilities(self.client_capabilities)?,
            timeout: self.http_timeout,
            clock: Arc::clone(&self.clock),
            #[cfg(feature = "redis")]
            l2,
        };
        check_exchange(&exchange)?;
        if !(Duration::from_secs(60)..=Duration::from_secs(90 * 24 * 3600))
            .contains(&self.session_idle_timeout)
        {
            return Err(ConfigError::new(
                "session_idle_timeout",
                "must be between 1 minute and 90 days",
            ));
        }
        let (start_limit, start_window) = self.session_start_limit;
        if start_limit == 0
            || !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&start_window)
        {
            return Err(ConfigError::new(
                "session_start_limit",
                "must admit at least 1 start per 1 second to 1 day",
            ));
        }
        let sessions = SessionSettings {
            idle_timeout: self.session_idle_timeout,
            store: self.session_store,
            start_limit,
            start_window,
        };
        Ok(OboConfig {
            tenant_id,
            client_id,
            keys,
            validation: ValidationSettings {
                audiences,
                allowed_tenants,
                any_tenant,
                leeway: self.leeway,
                cache_capacity: self.validated_cache_capacity,
                clock: self.clock,
            },
            exchange,
            downstream: DownstreamSettings {
                graph_url,
                authority,
            },
            policy: self.policy,
            sessions,
            resource,
            http,
        })
    }

    pub(super) fn forget_origin(&mut self, field: &str) {
        self.origins.retain(|(f, _)| *f != field);
    }

    pub(super) fn forget_credential_origin(&mut self) {
        for field in [
            "client_secret",
            "client_certificate",
            "federated_token_file",
            "managed_identity",
            "managed_identity_endpoint",
        ] {
            self.forget_origin(field);
        }
    }
}

/// Client capabilities: trimmed, each 1 to 64 characters of `[A-Za-z0-9_.-]`,
/// duplicates dropped.
fn client_capabilities(values: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for value in values {
        let value = value.trim();
        let ok = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !ok {
            return Err(ConfigError::new(
                "client_capabilities",
                format!("{value:?} is not a capability (1 to 64 characters of A-Z a-z 0-9 _ . -, e.g. cp1)"),
            ));
        }
        if !out.iter().any(|v| v == value) {
            out.push(value.to_owned());
        }
    }
    Ok(out)
}

/// Key-set timing: a refresh floor that bounds fetches, a background interval
/// not below it, and a non-zero request timeout.
fn check_key_timing(keys: &KeySettings) -> Result<(), ConfigError> {
    if keys.min_refresh < MIN_KEY_REFRESH_FLOOR {
        return Err(ConfigError::new(
            "min_key_refresh",
            "must be at least 1 second (it rate-limits key-set fetches caused by unknown key ids)",
        ));
    }
    if keys.refresh_interval < keys.min_refresh {
        return Err(ConfigError::new(
            "key_refresh_interval",
            "must not be shorter than min_key_refresh",
        ));
    }
    if keys.timeout.is_zero() {
        return Err(ConfigError::new(
            "http_timeout",
            "must be greater than zero",
        ));
    }
    Ok(())
}

/// The access policy: single words, and an allow-list that admits someone.
fn check_policy(policy: &Policy) -> Result<(), ConfigError> {
    words("require_user_scopes", &policy.user_scopes)?;
    words("require_app_roles", &policy.app_roles)?;
    if policy
        .allowed_client_apps
        .as_ref()
        .is_some_and(|apps| apps.is_empty())
    {
        return Err(ConfigError::new(
            "allowed_client_apps",
            "an empty allow-list would refuse every caller",
        ));
    }
    Ok(())
}

/// The credential as given, loaded (certificate file) or checked (secret, federated file).
fn build_credential(spec: Option<CredentialSpec>) -> Result<Option<ClientCredential>, ConfigError> {
    Ok(match spec {
        None => None,
        Some(CredentialSpec::Ready(ClientCredential::Secret(s)))
            if s.expose().trim().is_empty() =>
        {
            return Err(ConfigError::new("client_secret", "is empty"));
        }
        Some(CredentialSpec::Ready(c)) => Some(c),
        // Built by `build_managed_identity`, which needs the HTTP client.
        Some(CredentialSpec::ManagedIdentity(_)) => None,
        Some(CredentialSpec::CertificateFile(path)) => Some(ClientCredential::Certificate(
            CertificateCredential::from_pem_file(&path)
                .map_err(|e| ConfigError::new("client_certificate", e.to_string()))?,
        )),
        Some(CredentialSpec::FederatedFile(path)) => {
            if !path.is_file() {
                return Err(ConfigError::new(
                    "federated_token_file",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            Some(ClientCredential::FederatedTokenFile(
                FederatedTokenFile::new(path),
            ))
        }
    })
}

/// Bounds of the exchange's cache and retries.
fn check_exchange(exchange: &ExchangeSettings) -> Result<(), ConfigError> {
    if exchange.cache_max_bytes < 64 * 1024 {
        return Err(ConfigError::new(
            "obo_cache_max_bytes",
            "must be at least 64 KiB",
        ));
    }
    if exchange.retry_budget > Duration::from_secs(120) {
        return Err(ConfigError::new(
            "obo_retries",
            "the retry budget must be at most 2 minutes",
        ));
    }
    Ok(())
}
