//! The Redis L2 settings as given to the builder (feature `redis`), and the checks
//! that turn them into [`L2Settings`]; the setters and variables of TLS with a
//! private CA (`OBO_REDIS_CA_FILE`) and Entra authentication (`OBO_REDIS_ENTRA`,
//! `OBO_REDIS_USERNAME`).

use std::path::PathBuf;
use std::time::Duration;

use super::builder::OboConfigBuilder;
use super::error::ConfigError;
use crate::exchange::l2::{
    build_client, split_urls, EntraRedisSettings, L2Key, L2Settings, RedisCa, RedisOptions,
};
use crate::secret::SecretString;

/// The Redis L2 settings as given to the builder (checked by `build()`).
#[derive(Clone, Debug)]
pub(super) struct L2Spec {
    pub(super) url: Option<SecretString>,
    /// `url` lists the seed nodes of a Redis Cluster.
    pub(super) cluster: bool,
    pub(super) key: Option<SecretString>,
    pub(super) old_keys: Vec<SecretString>,
    pub(super) prefix: String,
    pub(super) timeout: Duration,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) entra: bool,
    pub(super) username: Option<String>,
}

/// Default prefix of the Redis L2's keys.
pub(super) const DEFAULT_REDIS_PREFIX: &str = "axum-obo:";
/// Default bound of every Redis L2 call.
pub(super) const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);

impl L2Spec {
    /// The L2 settings, `None` when no Redis URL is configured. `tenant`: the
    /// home tenant (Entra tokens for Redis are asked there); `has_credential`:
    /// whether a client credential is configured (Entra authentication needs one).
    pub(super) fn build(
        self,
        tenant: &str,
        has_credential: bool,
    ) -> Result<Option<L2Settings>, ConfigError> {
        let Some(url) = self.url.clone() else {
            if self.key.is_some() || !self.old_keys.is_empty() {
                return Err(ConfigError::new(
                    "obo_redis_url",
                    "is required when a cache key is set (or unset OBO_CACHE_KEY)",
                ));
            }
            for (set, field) in [
                (self.ca_file.is_some(), "obo_redis_ca_file"),
                (self.entra, "obo_redis_entra"),
                (self.username.is_some(), "obo_redis_username"),
            ] {
                if set {
                    return Err(ConfigError::new(field, "needs a Redis URL (OBO_REDIS_URL)"));
                }
            }
            return Ok(None);
        };
        let raw = url.expose().trim();
        let urls = split_urls(raw);
        if urls.is_empty() {
            return Err(ConfigError::new("obo_redis_url", "is not a URL"));
        }
        if urls.len() > 1 && !self.cluster {
            return Err(ConfigError::new(
                "obo_redis_url",
                "lists several comma-separated URLs, which is a Redis Cluster's seed nodes and needs \
                 cluster mode (`obo_redis_cluster(true)`, OBO_REDIS_CLUSTER=true); a comma in a \
                 password is written %2C",
            ));
        }
        for url in &urls {
            check_url(url.expose())?;
        }
        if self.cluster && self.prefix.contains(['{', '}']) {
            return Err(ConfigError::new(
                "obo_redis_prefix",
                "must not contain { or } in cluster mode: a hash tag would put every key on one node",
            ));
        }
        // The client's own parsing (database, TLS support, seeds that agree); connects to nothing.
        let ca = match &self.ca_file {
            None => None,
            Some(_) if urls.iter().any(|u| !u.expose().starts_with("rediss://")) => {
                return Err(ConfigError::new(
                    "obo_redis_ca_file",
                    "needs rediss:// (TLS) Redis URLs",
                ))
            }
            Some(path) => Some(
                RedisCa::load(path)
                    .map_err(|reason| ConfigError::new("obo_redis_ca_file", reason))?,
            ),
        };
        build_client(&RedisOptions {
            urls: urls.clone(),
            cluster: self.cluster,
            timeout: self.timeout,
            ca: ca.clone(),
            auth: None,
        })
        .map_err(|e| ConfigError::new("obo_redis_url", format!("is not usable: {e}")))?;
        let entra = entra_settings(&self, &urls, tenant, has_credential)?;
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
        let url = urls
            .iter()
            .map(SecretString::expose)
            .collect::<Vec<_>>()
            .join(",");
        Ok(Some(L2Settings {
            url: SecretString::new(url),
            cluster: self.cluster,
            key,
            old_keys,
            prefix: self.prefix,
            timeout: self.timeout,
            ca,
            entra,
        }))
    }
}

/// Entra authentication's settings, if on: the URL holds no credentials of its
/// own, a client credential is configured, the user name is usable.
fn entra_settings(
    spec: &L2Spec,
    urls: &[SecretString],
    tenant: &str,
    has_credential: bool,
) -> Result<Option<EntraRedisSettings>, ConfigError> {
    if !spec.entra {
        if spec.username.is_some() {
            return Err(ConfigError::new(
                "obo_redis_username",
                "is the user of Entra authentication: set OBO_REDIS_ENTRA=true too \
                 (with a password, put the user in the URL: rediss://user:password@host)",
            ));
        }
        return Ok(None);
    }
    let credentials = |u: &SecretString| {
        url::Url::parse(u.expose())
            .map(|u| u.password().is_some() || !u.username().is_empty())
            .unwrap_or(true)
    };
    if urls.iter().any(credentials) {
        return Err(ConfigError::new(
            "obo_redis_entra",
            "is on, so the Redis URL must not hold a user or password: the user is \
             OBO_REDIS_USERNAME (or the token's object id) and the password an Entra token",
        ));
    }
    if !has_credential {
        return Err(ConfigError::new(
            "obo_redis_entra",
            "needs a client credential to get tokens for Redis: set AZURE_CLIENT_SECRET, \
             AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE or OBO_MANAGED_IDENTITY",
        ));
    }
    let username = match spec.username.as_deref().map(str::trim) {
        None => None,
        Some(u)
            if u.is_empty()
                || u.len() > 128
                || u.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            return Err(ConfigError::new(
                "obo_redis_username",
                "must be 1 to 128 characters without spaces or control characters \
                 (the identity's object id)",
            ))
        }
        Some(u) => Some(u.to_owned()),
    };
    Ok(Some(EntraRedisSettings {
        tenant: tenant.to_owned(),
        username,
    }))
}

impl OboConfigBuilder {
    /// Trusts the CA certificates in this PEM file for `rediss://` instead of
    /// the system's trust store (a private CA). Read and checked by `build()`:
    /// a missing or unreadable file, or one without a certificate, is an error.
    /// Environment: `OBO_REDIS_CA_FILE`.
    pub fn obo_redis_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.forget_origin("obo_redis_ca_file");
        self.l2.ca_file = Some(path.into());
        self
    }

    /// Authenticates to Redis with Microsoft Entra (Azure Managed Redis with
    /// "Microsoft Entra authentication"): the user is
    /// [`obo_redis_username`](Self::obo_redis_username), else the object id
    /// (`oid`) in the token; the password is this API's app-only token for
    /// `https://redis.azure.com/.default`, got with the configured credential in
    /// the home tenant and renewed before it expires, every connection sending
    /// `AUTH` again without dropping requests. The Redis URL then holds no user
    /// or password; a client credential is required. Environment:
    /// `OBO_REDIS_ENTRA` (`true`/`false`).
    pub fn obo_redis_entra(mut self, on: bool) -> Self {
        self.forget_origin("obo_redis_entra");
        self.l2.entra = on;
        self
    }

    /// The Redis user of [`obo_redis_entra`](Self::obo_redis_entra): the object
    /// id of the identity (service principal or managed identity) the data access
    /// policy is assigned to. Default: the `oid` claim of the token.
    /// Environment: `OBO_REDIS_USERNAME`.
    pub fn obo_redis_username(mut self, username: impl Into<String>) -> Self {
        self.forget_origin("obo_redis_username");
        self.l2.username = Some(username.into());
        self
    }

    /// `OBO_REDIS_CA_FILE`, `OBO_REDIS_ENTRA` and `OBO_REDIS_USERNAME`.
    pub(super) fn read_redis_security(
        mut self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        if let Some(path) = get("OBO_REDIS_CA_FILE") {
            self = self
                .obo_redis_ca_file(path.trim())
                .came_from("obo_redis_ca_file", "OBO_REDIS_CA_FILE");
        }
        if let Some(flag) = get("OBO_REDIS_ENTRA") {
            let on = match flag.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ConfigError::new("obo_redis_entra", "must be true or false")
                        .in_variable("OBO_REDIS_ENTRA"))
                }
            };
            self = self
                .obo_redis_entra(on)
                .came_from("obo_redis_entra", "OBO_REDIS_ENTRA");
        }
        if let Some(user) = get("OBO_REDIS_USERNAME") {
            self = self
                .obo_redis_username(user)
                .came_from("obo_redis_username", "OBO_REDIS_USERNAME");
        }
        Ok(self)
    }
}

/// One Redis URL: `redis://` or `rediss://`, with a host.
fn check_url(raw: &str) -> Result<(), ConfigError> {
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
    // The redis crate reads `#insecure` as "do not verify the server's
    // certificate": refused (and any other fragment, which means nothing).
    if parsed.fragment().is_some() {
        return Err(ConfigError::new(
            "obo_redis_url",
            "must not end with a #fragment: #insecure (no certificate verification) is not \
             supported; for a private CA set OBO_REDIS_CA_FILE (`obo_redis_ca_file`)",
        ));
    }
    Ok(())
}
