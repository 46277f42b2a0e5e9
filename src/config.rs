//! Configuration: built once (builder or environment), validated at build time,
//! shared behind an `Arc`.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::credential::{
    CertificateCredential, ClientAssertion, ClientCredential, FederatedTokenFile,
};
use crate::downstream::DEFAULT_GRAPH_URL;
#[cfg(feature = "redis")]
use crate::exchange::l2::L2Key;
use crate::http::{is_loopback, shared_client};
use crate::secret::SecretString;

/// The public-cloud authority host.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// A configuration value that could not be accepted. Names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid axum-obo configuration: `{field}`: {reason}")]
pub struct ConfigError {
    field: &'static str,
    reason: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }

    /// The configuration field (or environment variable) at fault.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// Why it was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Validated configuration of the crate. Build it with [`OboConfig::builder`] or
/// [`OboConfig::from_env`]; it cannot be constructed in an invalid state.
#[derive(Clone)]
pub struct OboConfig {
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    pub(crate) authority_host: String,
    pub(crate) graph_url: String,
    pub(crate) allowed_tenants: BTreeSet<String>,
    pub(crate) audiences: BTreeSet<String>,
    pub(crate) leeway: Duration,
    pub(crate) min_key_refresh: Duration,
    pub(crate) key_refresh_interval: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) validated_cache_capacity: u64,
    pub(crate) policy: Policy,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) obo: OboSettings,
    /// The one HTTP client of the layer (Entra and downstream calls), built with
    /// the configuration so that a failure is reported by `build()`.
    pub(crate) http: reqwest::Client,
}

/// On-Behalf-Of settings.
#[derive(Debug, Clone)]
pub(crate) struct OboSettings {
    /// How this API authenticates at the token endpoint (none: OBO refused as misconfigured).
    pub(crate) credential: Option<ClientCredential>,
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
    /// The Redis L2 under the in-memory cache, if configured.
    #[cfg(feature = "redis")]
    pub(crate) l2: Option<L2Settings>,
}

/// Settings of the Redis L2 (validated).
#[cfg(feature = "redis")]
#[derive(Clone)]
pub(crate) struct L2Settings {
    /// `redis://` or `rediss://` URL; may hold a password, so kept as a secret.
    pub(crate) url: SecretString,
    /// Seals every value written.
    pub(crate) key: L2Key,
    /// Also accepted when reading (rotation).
    pub(crate) old_keys: Vec<L2Key>,
    /// Prepended to every Redis key.
    pub(crate) prefix: String,
    /// Bound of every Redis call.
    pub(crate) timeout: Duration,
}

#[cfg(feature = "redis")]
impl fmt::Debug for L2Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL without its password (keys are redacted by their own Debug).
        let url = url::Url::parse(self.url.expose())
            .map(|mut u| {
                if u.password().is_some() {
                    let _ = u.set_password(Some("[redacted]"));
                }
                u.to_string()
            })
            .unwrap_or_else(|_| "[unparsable]".to_owned());
        f.debug_struct("L2Settings")
            .field("url", &url)
            .field("key", &self.key)
            .field("old_keys", &self.old_keys)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The Redis L2 settings as given to the builder (checked by `build()`).
#[cfg(feature = "redis")]
#[derive(Clone, Debug)]
struct L2Spec {
    url: Option<SecretString>,
    key: Option<SecretString>,
    old_keys: Vec<SecretString>,
    prefix: String,
    timeout: Duration,
}

/// Default prefix of the Redis L2's keys.
#[cfg(feature = "redis")]
const DEFAULT_REDIS_PREFIX: &str = "axum-obo:";
/// Default bound of every Redis L2 call.
#[cfg(feature = "redis")]
const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// Layer-wide access policy, checked on every request (also for cached tokens).
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// Delegated tokens must carry at least one of these scopes (empty: no requirement).
    pub(crate) user_scopes: Vec<String>,
    /// App-only tokens must carry at least one of these roles (empty: any role).
    pub(crate) app_roles: Vec<String>,
    /// Whether app-only tokens are admitted at all.
    pub(crate) allow_app_only: bool,
    /// If set, only these client applications (`azp`/`appid`) may call.
    pub(crate) allowed_client_apps: Option<BTreeSet<String>>,
}

impl fmt::Debug for OboConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OboConfig")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("authority_host", &self.authority_host)
            .field("graph_url", &self.graph_url)
            .field("allowed_tenants", &self.allowed_tenants)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("min_key_refresh", &self.min_key_refresh)
            .field("key_refresh_interval", &self.key_refresh_interval)
            .field("http_timeout", &self.http_timeout)
            .field("validated_cache_capacity", &self.validated_cache_capacity)
            .field("policy", &self.policy)
            .field("clock", &self.clock)
            .field("obo", &self.obo)
            .finish()
    }
}

impl OboConfig {
    /// Starts a builder with every default.
    pub fn builder() -> OboConfigBuilder {
        OboConfigBuilder::default()
    }

    /// Reads the configuration from the process environment (see
    /// [`OboConfigBuilder::from_env`]) and validates it.
    pub fn from_env() -> Result<Self, ConfigError> {
        OboConfigBuilder::from_env()?.build()
    }

    /// The home tenant (GUID).
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// This API's application (client) id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The authority host, without a trailing slash.
    pub fn authority_host(&self) -> &str {
        &self.authority_host
    }

    /// The Microsoft Graph root (default `https://graph.microsoft.com`), without a
    /// trailing slash; requests go to `{graph_url}/v1.0/…`.
    pub fn graph_url(&self) -> &str {
        &self.graph_url
    }

    /// Tenants whose tokens are admitted.
    pub fn allowed_tenants(&self) -> impl Iterator<Item = &str> {
        self.allowed_tenants.iter().map(String::as_str)
    }

    /// Accepted `aud` values.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.audiences.iter().map(String::as_str)
    }

    /// Allowed clock skew for `exp` and `nbf`.
    pub fn leeway(&self) -> Duration {
        self.leeway
    }
}

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
    credential: Option<CredentialSpec>,
    obo: OboSettings,
    #[cfg(feature = "redis")]
    l2: L2Spec,
}

#[derive(Clone, Debug)]
enum CredentialSpec {
    Ready(ClientCredential),
    CertificateFile(std::path::PathBuf),
    FederatedFile(std::path::PathBuf),
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
            obo: OboSettings {
                credential: None,
                refresh_margin: Duration::from_secs(300),
                negative_ttl: Duration::from_secs(30),
                cache_max_bytes: DEFAULT_OBO_CACHE_BYTES,
                max_retries: 3,
                retry_budget: Duration::from_secs(20),
                #[cfg(feature = "redis")]
                l2: None,
            },
            #[cfg(feature = "redis")]
            l2: L2Spec {
                url: None,
                key: None,
                old_keys: Vec::new(),
                prefix: DEFAULT_REDIS_PREFIX.to_owned(),
                timeout: DEFAULT_REDIS_TIMEOUT,
            },
        }
    }
}

/// The shortest accepted [`OboConfigBuilder::min_key_refresh`]: anything less would
/// let tokens with made-up key ids turn every request into a key-set fetch.
const MIN_KEY_REFRESH_FLOOR: Duration = Duration::from_secs(1);

/// Default bound of the On-Behalf-Of cache: room for 100,000 users with one
/// Graph token each (about 3 KiB per entry).
pub const DEFAULT_OBO_CACHE_BYTES: u64 = 100_000 * 3 * 1024;

impl OboConfigBuilder {
    /// Reads `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_AUTHORITY_HOST`,
    /// `OBO_GRAPH_URL`, `OBO_ALLOWED_TENANTS` (comma-separated, added to the home tenant) and the
    /// credential — `AZURE_CLIENT_SECRET`, else `AZURE_CLIENT_CERTIFICATE_PATH`,
    /// else `AZURE_FEDERATED_TOKEN_FILE` — from the process environment.
    ///
    /// With the `redis` feature, also the Redis L2: `OBO_REDIS_URL`, `OBO_CACHE_KEY`,
    /// `OBO_CACHE_OLD_KEYS` (comma-separated), `OBO_REDIS_PREFIX` and
    /// `OBO_REDIS_TIMEOUT_MS` (see [`obo_redis_url`](Self::obo_redis_url)). Without
    /// the feature, setting `OBO_REDIS_URL` or `OBO_CACHE_KEY` is an error rather
    /// than silently running without the shared cache.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with a custom variable lookup (handy in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut b = Self::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        b.tenant_id = get("AZURE_TENANT_ID");
        b.client_id = get("AZURE_CLIENT_ID");
        if let Some(host) = get("AZURE_AUTHORITY_HOST") {
            b.authority_host = host;
        }
        if let Some(url) = get("OBO_GRAPH_URL") {
            b.graph_url = url;
        }
        if let Some(list) = get("OBO_ALLOWED_TENANTS") {
            b.extra_tenants = list
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
        }
        if let Some(secret) = get("AZURE_CLIENT_SECRET") {
            b.credential = Some(CredentialSpec::Ready(ClientCredential::Secret(
                SecretString::new(secret),
            )));
        } else if let Some(path) = get("AZURE_CLIENT_CERTIFICATE_PATH") {
            b.credential = Some(CredentialSpec::CertificateFile(path.into()));
        } else if let Some(path) = get("AZURE_FEDERATED_TOKEN_FILE") {
            b.credential = Some(CredentialSpec::FederatedFile(path.into()));
        }
        b.read_l2_variables(&get)?;
        if b.tenant_id.is_none() {
            return Err(ConfigError::new("AZURE_TENANT_ID", "is not set"));
        }
        if b.client_id.is_none() {
            return Err(ConfigError::new("AZURE_CLIENT_ID", "is not set"));
        }
        Ok(b)
    }

    #[cfg(feature = "redis")]
    fn read_l2_variables(
        &mut self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        self.l2.url = get("OBO_REDIS_URL").map(SecretString::new);
        self.l2.key = get("OBO_CACHE_KEY").map(SecretString::new);
        if let Some(list) = get("OBO_CACHE_OLD_KEYS") {
            self.l2.old_keys = list
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(SecretString::new)
                .collect();
        }
        if let Some(prefix) = get("OBO_REDIS_PREFIX") {
            self.l2.prefix = prefix;
        }
        if let Some(ms) = get("OBO_REDIS_TIMEOUT_MS") {
            let ms: u64 = ms.trim().parse().map_err(|_| {
                ConfigError::new(
                    "OBO_REDIS_TIMEOUT_MS",
                    "must be a whole number of milliseconds",
                )
            })?;
            self.l2.timeout = Duration::from_millis(ms);
        }
        Ok(())
    }

    #[cfg(not(feature = "redis"))]
    fn read_l2_variables(
        &mut self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for name in ["OBO_REDIS_URL", "OBO_CACHE_KEY"] {
            if get(name).is_some() {
                return Err(ConfigError::new(
                    name,
                    "is set, but axum-obo was built without its `redis` feature",
                ));
            }
        }
        Ok(())
    }

    /// The home tenant id (a GUID). Required.
    pub fn tenant_id(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// This API's application (client) id (a GUID). Required.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The authority host, e.g. `https://login.microsoftonline.us`. Must be
    /// `https://`, except on loopback (`127.0.0.0/8`, `::1`, `localhost`).
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = host.into();
        self
    }

    /// The Microsoft Graph root for a national cloud, e.g.
    /// `https://graph.microsoft.us` (same scheme rules as the authority host).
    pub fn graph_url(mut self, url: impl Into<String>) -> Self {
        self.graph_url = url.into();
        self
    }

    /// Admits tokens from these tenants too (GUIDs), in addition to the home tenant.
    pub fn allow_tenants<I, T>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.extra_tenants
            .extend(tenants.into_iter().map(Into::into));
        self
    }

    /// Replaces the accepted audiences (default: the client id and `api://{client id}`).
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
    /// ([`DownstreamClient::with_timeout`](crate::DownstreamClient::with_timeout), default 30 s).
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
        let secret: String = secret.into();
        self.credential = Some(CredentialSpec::Ready(ClientCredential::Secret(
            SecretString::new(secret),
        )));
        self
    }

    /// Authenticates with a certificate (a signed client assertion).
    pub fn client_certificate(mut self, certificate: CertificateCredential) -> Self {
        self.credential = Some(CredentialSpec::Ready(ClientCredential::Certificate(
            certificate,
        )));
        self
    }

    /// Authenticates with a certificate read, at `build()`, from a PEM file
    /// holding the certificate and its RSA private key.
    pub fn client_certificate_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.credential = Some(CredentialSpec::CertificateFile(path.into()));
        self
    }

    /// Authenticates with a federated token read from `path` at every exchange
    /// (workload identity).
    pub fn federated_token_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.credential = Some(CredentialSpec::FederatedFile(path.into()));
        self
    }

    /// Authenticates with client assertions from your own source.
    pub fn client_assertion(mut self, source: impl ClientAssertion) -> Self {
        self.credential = Some(CredentialSpec::Ready(ClientCredential::Assertion(
            Arc::new(source),
        )));
        self
    }

    /// Re-exchange a cached downstream token this long before it expires
    /// (default 5 minutes; tokens living less than twice this are re-exchanged
    /// at half their lifetime).
    pub fn obo_refresh_margin(mut self, margin: Duration) -> Self {
        self.obo.refresh_margin = margin;
        self
    }

    /// How long `interaction_required`/consent errors are remembered per user
    /// and scope set (default 30 s).
    pub fn obo_negative_ttl(mut self, ttl: Duration) -> Self {
        self.obo.negative_ttl = ttl;
        self
    }

    /// Bound of the On-Behalf-Of cache in bytes (default [`DEFAULT_OBO_CACHE_BYTES`]).
    pub fn obo_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.obo.cache_max_bytes = bytes;
        self
    }

    /// Retries of 429/5xx token-endpoint answers (default 3) and the total time
    /// they may take (default 20 s).
    pub fn obo_retries(mut self, max_retries: usize, budget: Duration) -> Self {
        self.obo.max_retries = max_retries;
        self.obo.retry_budget = budget;
        self
    }

    /// Shares downstream tokens between replicas through Redis (feature `redis`):
    /// an encrypted L2 under the in-memory cache, read on an in-memory miss before
    /// exchanging, written after each exchange. `redis://host:port[/db]` or
    /// `rediss://` (TLS); a password goes in the URL (`redis://:password@host`).
    /// Requires [`obo_cache_key`](Self::obo_cache_key). Nothing connects at build
    /// time, and Redis failures never fail a request (they fall back to the
    /// in-memory cache and the exchange). Environment: `OBO_REDIS_URL`.
    #[cfg(feature = "redis")]
    pub fn obo_redis_url(mut self, url: impl Into<String>) -> Self {
        self.l2.url = Some(SecretString::new(url.into()));
        self
    }

    /// The key sealing every L2 value (AES-256-GCM): 32 bytes in standard base64,
    /// e.g. from `openssl rand -base64 32`. The same on every replica; keep it in
    /// your secret store. Environment: `OBO_CACHE_KEY`.
    #[cfg(feature = "redis")]
    pub fn obo_cache_key(mut self, base64_key: impl Into<String>) -> Self {
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
        self.l2.prefix = prefix.into();
        self
    }

    /// Bound of every Redis call (default 100 ms, at most 10 s); past it the
    /// request goes on without the L2. Environment: `OBO_REDIS_TIMEOUT_MS`.
    #[cfg(feature = "redis")]
    pub fn obo_redis_timeout(mut self, timeout: Duration) -> Self {
        self.l2.timeout = timeout;
        self
    }

    /// Validates everything and builds the configuration.
    pub fn build(self) -> Result<OboConfig, ConfigError> {
        let tenant_id = normalize_guid("tenant_id", self.tenant_id.as_deref())?;
        let client_id = normalize_guid("client_id", self.client_id.as_deref())?;
        let authority_host = validate_base_url("authority_host", &self.authority_host)?;
        let graph_url = validate_base_url("graph_url", &self.graph_url)?;
        let mut allowed_tenants = BTreeSet::from([tenant_id.clone()]);
        for t in &self.extra_tenants {
            allowed_tenants.insert(normalize_guid("allowed_tenants", Some(t))?);
        }
        let audiences: BTreeSet<String> = match self.audiences {
            None => BTreeSet::from([client_id.clone(), format!("api://{client_id}")]),
            Some(list) => {
                if list.is_empty() {
                    return Err(ConfigError::new("audiences", "must not be empty"));
                }
                for a in &list {
                    if a.trim().is_empty() || a.trim() != a {
                        return Err(ConfigError::new(
                            "audiences",
                            "entries must be non-empty and without surrounding spaces",
                        ));
                    }
                }
                list.into_iter().collect()
            }
        };
        if self.leeway > Duration::from_secs(300) {
            return Err(ConfigError::new("leeway", "must be at most 5 minutes"));
        }
        if self.min_key_refresh < MIN_KEY_REFRESH_FLOOR {
            return Err(ConfigError::new(
                "min_key_refresh",
                "must be at least 1 second (it rate-limits key-set fetches caused by unknown key ids)",
            ));
        }
        if self.key_refresh_interval < self.min_key_refresh {
            return Err(ConfigError::new(
                "key_refresh_interval",
                "must not be shorter than min_key_refresh",
            ));
        }
        if self.http_timeout.is_zero() {
            return Err(ConfigError::new(
                "http_timeout",
                "must be greater than zero",
            ));
        }
        for (field, list) in [
            ("require_user_scopes", &self.policy.user_scopes),
            ("require_app_roles", &self.policy.app_roles),
        ] {
            if list
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
            {
                return Err(ConfigError::new(field, "entries must be non-empty words"));
            }
        }
        if let Some(apps) = &self.policy.allowed_client_apps {
            if apps.is_empty() {
                return Err(ConfigError::new(
                    "allowed_client_apps",
                    "an empty allow-list would refuse every caller",
                ));
            }
        }
        let mut obo = self.obo;
        obo.credential = match self.credential {
            None => None,
            Some(CredentialSpec::Ready(ClientCredential::Secret(s)))
                if s.expose().trim().is_empty() =>
            {
                return Err(ConfigError::new("client_secret", "is empty"));
            }
            Some(CredentialSpec::Ready(c)) => Some(c),
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
        };
        if obo.cache_max_bytes < 64 * 1024 {
            return Err(ConfigError::new(
                "obo_cache_max_bytes",
                "must be at least 64 KiB",
            ));
        }
        if obo.retry_budget > Duration::from_secs(120) {
            return Err(ConfigError::new(
                "obo_retries",
                "the retry budget must be at most 2 minutes",
            ));
        }
        #[cfg(feature = "redis")]
        {
            obo.l2 = self.l2.build()?;
        }
        let http = shared_client(self.http_timeout)
            .map_err(|e| ConfigError::new("http_client", format!("cannot be built: {e}")))?;
        Ok(OboConfig {
            http,
            tenant_id,
            client_id,
            authority_host,
            graph_url,
            allowed_tenants,
            audiences,
            leeway: self.leeway,
            min_key_refresh: self.min_key_refresh,
            key_refresh_interval: self.key_refresh_interval,
            http_timeout: self.http_timeout,
            validated_cache_capacity: self.validated_cache_capacity,
            policy: self.policy,
            clock: self.clock,
            obo,
        })
    }
}

#[cfg(feature = "redis")]
impl L2Spec {
    /// The L2 settings, `None` when no Redis URL is configured.
    fn build(self) -> Result<Option<L2Settings>, ConfigError> {
        let Some(url) = self.url else {
            if self.key.is_some() || !self.old_keys.is_empty() {
                return Err(ConfigError::new(
                    "obo_redis_url",
                    "is required when a cache key is set (or unset OBO_CACHE_KEY)",
                ));
            }
            return Ok(None);
        };
        let raw = url.expose().trim();
        let parsed =
            url::Url::parse(raw).map_err(|_| ConfigError::new("obo_redis_url", "is not a URL"))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(ConfigError::new(
                "obo_redis_url",
                format!(
                    "must start with redis:// or rediss://, not {}://",
                    parsed.scheme()
                ),
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::new("obo_redis_url", "has no host"));
        }
        // The client's own parsing (database, TLS support); connects to nothing.
        redis::Client::open(raw)
            .map_err(|e| ConfigError::new("obo_redis_url", format!("is not usable: {e}")))?;
        let key = self.key.ok_or_else(|| {
            ConfigError::new(
                "obo_cache_key",
                "is required with a Redis URL: L2 values are always encrypted",
            )
        })?;
        let key = L2Key::from_base64(key.expose())
            .map_err(|reason| ConfigError::new("obo_cache_key", reason))?;
        let old_keys = self
            .old_keys
            .iter()
            .map(|k| L2Key::from_base64(k.expose()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ConfigError::new("obo_cache_old_keys", reason))?;
        if self.prefix.len() > 128
            || self
                .prefix
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::new(
                "obo_redis_prefix",
                "must be at most 128 characters, without spaces or control characters",
            ));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(10) {
            return Err(ConfigError::new(
                "obo_redis_timeout",
                "must be greater than zero and at most 10 s",
            ));
        }
        Ok(Some(L2Settings {
            url: SecretString::new(raw),
            key,
            old_keys,
            prefix: self.prefix,
            timeout: self.timeout,
        }))
    }
}

/// Whether `s` is a GUID in the 8-4-4-4-12 hex form.
pub(crate) fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn normalize_guid(field: &'static str, value: Option<&str>) -> Result<String, ConfigError> {
    let v = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError::new(field, "is required"))?;
    if !is_guid(v) {
        return Err(ConfigError::new(
            field,
            "must be a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47",
        ));
    }
    Ok(v.to_ascii_lowercase())
}

/// A bare `scheme://host[:port]`: https, or http on loopback only.
fn validate_base_url(field: &'static str, raw: &str) -> Result<String, ConfigError> {
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(field, format!("is not a URL ({e})")))?;
    if url.query().is_some() || url.fragment().is_some() || !matches!(url.path(), "" | "/") {
        return Err(ConfigError::new(
            field,
            "must be a bare scheme://host[:port] without path, query or fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(field, "must not contain credentials"));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = is_loopback(&url);
            if !loopback {
                return Err(ConfigError::new(
                    field,
                    "must use https:// (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)",
                ));
            }
        }
        other => {
            return Err(ConfigError::new(
                field,
                format!("unsupported scheme `{other}`; use https://"),
            ))
        }
    }
    if url.host().is_none() {
        return Err(ConfigError::new(field, "has no host"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "11111111-2222-3333-4444-555555555555";
    const C: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

    fn base() -> OboConfigBuilder {
        OboConfig::builder().tenant_id(T).client_id(C)
    }

    #[test]
    fn defaults() {
        let c = base().build().unwrap();
        assert_eq!(c.authority_host(), DEFAULT_AUTHORITY_HOST);
        assert_eq!(c.allowed_tenants().collect::<Vec<_>>(), [T]);
        let auds: Vec<_> = c.audiences().collect();
        assert!(auds.contains(&C) && auds.contains(&format!("api://{C}").as_str()));
        assert_eq!(c.leeway(), Duration::from_secs(60));
        assert!(c.policy.allow_app_only);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (base().tenant_id("common"), "tenant_id"),
            (base().tenant_id(""), "tenant_id"),
            (OboConfig::builder().client_id(C), "tenant_id"),
            (base().client_id(""), "client_id"),
            (base().client_id("api://x"), "client_id"),
            (
                base().authority_host("http://login.example.com"),
                "authority_host",
            ),
            (base().authority_host("ftp://127.0.0.1"), "authority_host"),
            (base().authority_host("https://h/tenant"), "authority_host"),
            (base().authority_host("not a url"), "authority_host"),
            (base().allow_tenants(["nope"]), "allowed_tenants"),
            (base().audiences(Vec::<String>::new()), "audiences"),
            (base().leeway(Duration::from_secs(3600)), "leeway"),
            (base().http_timeout(Duration::ZERO), "http_timeout"),
            (base().min_key_refresh(Duration::ZERO), "min_key_refresh"),
            (
                base().min_key_refresh(Duration::from_millis(999)),
                "min_key_refresh",
            ),
            (base().require_user_scopes(["a b"]), "require_user_scopes"),
            (
                base().allowed_client_apps(Vec::<String>::new()),
                "allowed_client_apps",
            ),
        ];
        for (b, field) in cases {
            let e = b.build().expect_err(field);
            assert_eq!(e.field(), field, "{e}");
            assert!(e.to_string().contains(field));
        }
    }

    #[test]
    fn http_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:99",
            "http://localhost:1",
            "https://login.microsoftonline.us/",
        ] {
            let c = base().authority_host(ok).build().unwrap();
            assert!(!c.authority_host().ends_with('/'), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://localhost.evil.com",
            "http://[::2]",
        ] {
            assert_eq!(
                base().authority_host(bad).build().unwrap_err().field(),
                "authority_host",
                "{bad}"
            );
        }
    }

    #[test]
    fn guids_are_normalized() {
        let c = base().tenant_id(T.to_uppercase()).build().unwrap();
        assert_eq!(c.tenant_id(), T);
    }

    #[test]
    fn from_lookup_reads_variables() {
        let env = |k: &str| match k {
            "AZURE_TENANT_ID" => Some(T.to_owned()),
            "AZURE_CLIENT_ID" => Some(C.to_owned()),
            "AZURE_AUTHORITY_HOST" => Some("http://127.0.0.1:9".to_owned()),
            "OBO_ALLOWED_TENANTS" => Some(" 99999999-2222-3333-4444-555555555555 ,".to_owned()),
            _ => None,
        };
        let c = OboConfigBuilder::from_lookup(env).unwrap().build().unwrap();
        assert_eq!(c.authority_host(), "http://127.0.0.1:9");
        assert_eq!(c.allowed_tenants().count(), 2);
        let missing = OboConfigBuilder::from_lookup(|_| None).unwrap_err();
        assert_eq!(missing.field(), "AZURE_TENANT_ID");
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_variables_need_the_feature() {
        let env = |k: &str| match k {
            "AZURE_TENANT_ID" => Some(T.to_owned()),
            "AZURE_CLIENT_ID" => Some(C.to_owned()),
            "OBO_REDIS_URL" => Some("redis://127.0.0.1:6379".to_owned()),
            _ => None,
        };
        let e = OboConfigBuilder::from_lookup(env).unwrap_err();
        assert_eq!(e.field(), "OBO_REDIS_URL");
        assert!(e.reason().contains("`redis` feature"), "{e}");
    }

    #[cfg(feature = "redis")]
    mod redis_l2 {
        use super::*;
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;

        fn key(b: u8) -> String {
            STANDARD.encode([b; 32])
        }

        fn with_redis() -> OboConfigBuilder {
            base()
                .obo_redis_url("redis://:hunter2@127.0.0.1:6379/2")
                .obo_cache_key(key(1))
        }

        #[test]
        fn settings_and_defaults() {
            assert!(base().build().unwrap().obo.l2.is_none());
            let c = with_redis()
                .obo_cache_old_keys([key(2), key(3)])
                .build()
                .unwrap();
            let l2 = c.obo.l2.as_ref().unwrap();
            assert_eq!(l2.prefix, "axum-obo:");
            assert_eq!(l2.timeout, Duration::from_millis(100));
            assert_eq!(l2.old_keys.len(), 2);
            assert!(with_redis()
                .obo_redis_url("rediss://cache.example.com:6380")
                .build()
                .is_ok());
        }

        #[test]
        fn errors_name_the_field() {
            let cases = [
                (base().obo_redis_url("redis://127.0.0.1"), "obo_cache_key"),
                (base().obo_cache_key(key(1)), "obo_redis_url"),
                (
                    with_redis().obo_redis_url("http://127.0.0.1"),
                    "obo_redis_url",
                ),
                (
                    with_redis().obo_redis_url("127.0.0.1:6379"),
                    "obo_redis_url",
                ),
                (with_redis().obo_redis_url("redis://"), "obo_redis_url"),
                (with_redis().obo_cache_key("not base64!"), "obo_cache_key"),
                (
                    with_redis().obo_cache_key(STANDARD.encode([1u8; 16])),
                    "obo_cache_key",
                ),
                (with_redis().obo_cache_key(""), "obo_cache_key"),
                (
                    with_redis().obo_cache_old_keys([key(2), "short".to_owned()]),
                    "obo_cache_old_keys",
                ),
                (with_redis().obo_redis_prefix("a b"), "obo_redis_prefix"),
                (
                    with_redis().obo_redis_timeout(Duration::ZERO),
                    "obo_redis_timeout",
                ),
                (
                    with_redis().obo_redis_timeout(Duration::from_secs(60)),
                    "obo_redis_timeout",
                ),
            ];
            for (b, field) in cases {
                let e = b.build().expect_err(field);
                assert_eq!(e.field(), field, "{e}");
                assert!(!e.to_string().contains("hunter2"), "{e}");
            }
        }

        #[test]
        fn from_lookup_reads_the_variables() {
            let old = format!(" {} ,{},", key(2), key(3));
            let env = |k: &str| match k {
                "AZURE_TENANT_ID" => Some(T.to_owned()),
                "AZURE_CLIENT_ID" => Some(C.to_owned()),
                "OBO_REDIS_URL" => Some("redis://127.0.0.1:6379".to_owned()),
                "OBO_CACHE_KEY" => Some(key(1)),
                "OBO_CACHE_OLD_KEYS" => Some(old.clone()),
                "OBO_REDIS_PREFIX" => Some("app1:".to_owned()),
                "OBO_REDIS_TIMEOUT_MS" => Some("250".to_owned()),
                _ => None,
            };
            let c = OboConfigBuilder::from_lookup(env).unwrap().build().unwrap();
            let l2 = c.obo.l2.as_ref().unwrap();
            assert_eq!(l2.url.expose(), "redis://127.0.0.1:6379");
            assert_eq!(l2.old_keys.len(), 2);
            assert_eq!(l2.prefix, "app1:");
            assert_eq!(l2.timeout, Duration::from_millis(250));

            let bad = |k: &str| match k {
                "OBO_REDIS_TIMEOUT_MS" => Some("soon".to_owned()),
                other => env(other),
            };
            let e = OboConfigBuilder::from_lookup(bad).unwrap_err();
            assert_eq!(e.field(), "OBO_REDIS_TIMEOUT_MS");
        }

        #[test]
        fn debug_redacts_keys_and_the_redis_password() {
            let c = with_redis().obo_cache_old_keys([key(2)]).build().unwrap();
            let text = format!("{c:?}");
            assert!(text.contains("127.0.0.1:6379"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
            for k in [key(1), key(2)] {
                assert!(!text.contains(&k), "{text}");
            }
            assert!(text.contains("L2Key([redacted])"), "{text}");
        }
    }

    #[test]
    fn debug_shows_no_secrets_and_is_useful() {
        let c = base().build().unwrap();
        assert!(format!("{c:?}").contains(T));
    }
}
