//! [`L2Settings`]: the Redis L2's validated settings, built by the configuration
//! builder. `Debug` shows the URL without its password and the keys redacted.

use std::fmt;
use std::time::Duration;

use super::{EntraRedisSettings, L2Key, RedisCa, RedisOptions};
use crate::secret::SecretString;

/// Settings of the Redis L2 (validated).
#[derive(Clone)]
pub(crate) struct L2Settings {
    /// `redis://` or `rediss://` URL (with `cluster`, one or more seed nodes'
    /// URLs, comma-separated); may hold a password, so kept as a secret.
    pub(crate) url: SecretString,
    /// Speak the Redis Cluster protocol.
    pub(crate) cluster: bool,
    /// Seals every value written.
    pub(crate) key: L2Key,
    /// Also accepted when reading (rotation).
    pub(crate) old_keys: Vec<L2Key>,
    /// Prepended to every Redis key.
    pub(crate) prefix: String,
    /// Bound of every Redis call.
    pub(crate) timeout: Duration,
    /// The private CA trusted for `rediss://` instead of the system roots.
    pub(crate) ca: Option<RedisCa>,
    /// Microsoft Entra authentication, if on.
    pub(crate) entra: Option<EntraRedisSettings>,
}

impl L2Settings {
    /// The URLs: one, or (cluster) the seed nodes.
    pub(crate) fn urls(&self) -> Vec<SecretString> {
        split_urls(self.url.expose())
    }

    /// How to reach Redis.
    pub(crate) fn redis_options(&self) -> RedisOptions {
        RedisOptions {
            urls: self.urls(),
            cluster: self.cluster,
            timeout: self.timeout,
            ca: self.ca.clone(),
            auth: None,
        }
    }
}

/// The comma-separated URLs of `list`, trimmed, empty ones left out.
pub(crate) fn split_urls(list: &str) -> Vec<SecretString> {
    list.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(SecretString::new)
        .collect()
}

impl fmt::Debug for L2Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URLs without their passwords (keys are redacted by their own Debug).
        let url = self
            .urls()
            .iter()
            .map(|url| {
                url::Url::parse(url.expose())
                    .map(|mut u| {
                        if u.password().is_some() {
                            let _ = u.set_password(Some("[redacted]"));
                        }
                        u.to_string()
                    })
                    .unwrap_or_else(|_| "[unparsable]".to_owned())
            })
            .collect::<Vec<_>>()
            .join(",");
        f.debug_struct("L2Settings")
            .field("url", &url)
            .field("cluster", &self.cluster)
            .field("key", &self.key)
            .field("old_keys", &self.old_keys)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("ca", &self.ca)
            .field("entra", &self.entra)
            .finish()
    }
}
