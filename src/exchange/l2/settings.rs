//! [`L2Settings`]: the Redis L2's validated settings, built by the configuration
//! builder. `Debug` shows the URL without its password and the keys redacted.

use std::fmt;
use std::time::Duration;

use super::{EntraRedisSettings, L2Key, RedisCa};
use crate::secret::SecretString;

/// Settings of the Redis L2 (validated).
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
    /// The private CA trusted for `rediss://` instead of the system roots.
    pub(crate) ca: Option<RedisCa>,
    /// Microsoft Entra authentication, if on.
    pub(crate) entra: Option<EntraRedisSettings>,
}

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
            .field("ca", &self.ca)
            .field("entra", &self.entra)
            .finish()
    }
}
