//! The Redis L2 settings as given to the builder (feature `redis`), and the checks
//! that turn them into [`L2Settings`].

use std::time::Duration;

use super::error::ConfigError;
use crate::exchange::l2::{build_client, split_urls, L2Key, L2Settings, RedisOptions};
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
}

/// Default prefix of the Redis L2's keys.
pub(super) const DEFAULT_REDIS_PREFIX: &str = "axum-obo:";
/// Default bound of every Redis L2 call.
pub(super) const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(100);

impl L2Spec {
    /// The L2 settings, `None` when no Redis URL is configured.
    pub(super) fn build(self) -> Result<Option<L2Settings>, ConfigError> {
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
        build_client(&RedisOptions {
            urls: urls.clone(),
            cluster: self.cluster,
            timeout: self.timeout,
        })
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
        }))
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
    Ok(())
}
