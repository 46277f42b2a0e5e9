//! [`OboConfigBuilder::from_env`] and [`OboConfigBuilder::from_lookup`]: a builder
//! from environment variables. Errors name the builder field (as `build()` does)
//! and the variable in their reason; the builder remembers which fields came from
//! which variable, so that `build()` names the variable too.

#[cfg(feature = "redis")]
use std::time::Duration;

use super::builder::OboConfigBuilder;
use super::error::ConfigError;

impl OboConfigBuilder {
    /// Reads `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_AUTHORITY_HOST`,
    /// `OBO_GRAPH_URL`, `OBO_ALLOWED_TENANTS` (comma-separated, added to the home tenant;
    /// `*` admits any organization's tenant, see `allow_any_tenant`),
    /// `OBO_CLIENT_CAPABILITIES` (comma-separated, e.g. `cp1`),
    /// `OBO_METRICS_TENANT_LABEL` (`true` or `false`, see `metrics_tenant_label`), the protected
    /// resource (`OBO_RESOURCE_URL`, `OBO_RESOURCE_NAME`,
    /// `OBO_RESOURCE_DOCUMENTATION`, `OBO_APP_ID_URI`, `OBO_RESOURCE_LIST_TENANTS`,
    /// see `resource_url`) and the
    /// credential — `AZURE_CLIENT_SECRET`, else `AZURE_CLIENT_CERTIFICATE_PATH`,
    /// else `AZURE_FEDERATED_TOKEN_FILE`, else `OBO_MANAGED_IDENTITY` (`system` or a
    /// user-assigned identity's client id; its endpoint from `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER`, else IMDS) — from the process environment.
    ///
    /// With the `redis` feature, also the Redis L2: `OBO_REDIS_URL` (comma-separated
    /// seed nodes with `OBO_REDIS_CLUSTER=true`, see `obo_redis_cluster`), `OBO_CACHE_KEY`,
    /// `OBO_CACHE_OLD_KEYS` (comma-separated), `OBO_REDIS_PREFIX`,
    /// `OBO_REDIS_TIMEOUT_MS` (see `obo_redis_url`), `OBO_REDIS_CA_FILE` (see
    /// `obo_redis_ca_file`), `OBO_REDIS_ENTRA` and `OBO_REDIS_USERNAME` (see
    /// `obo_redis_entra`). Without
    /// the feature, setting `OBO_REDIS_URL` or `OBO_CACHE_KEY` is an error rather
    /// than silently running without the shared cache.
    ///
    /// A [`ConfigError`] (here or from [`build`](Self::build)) names the builder
    /// field, e.g. `tenant_id`, and its reason names the variable, e.g. `AZURE_TENANT_ID`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with a custom variable lookup (handy in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut b = Self::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(tenant) = get("AZURE_TENANT_ID") {
            b = b
                .tenant_id(tenant)
                .came_from("tenant_id", "AZURE_TENANT_ID");
        }
        if let Some(client) = get("AZURE_CLIENT_ID") {
            b = b
                .client_id(client)
                .came_from("client_id", "AZURE_CLIENT_ID");
        }
        if let Some(host) = get("AZURE_AUTHORITY_HOST") {
            b = b
                .authority_host(host)
                .came_from("authority_host", "AZURE_AUTHORITY_HOST");
        }
        if let Some(url) = get("OBO_GRAPH_URL") {
            b = b.graph_url(url).came_from("graph_url", "OBO_GRAPH_URL");
        }
        if let Some(list) = get("OBO_ALLOWED_TENANTS") {
            let tenants = list
                .split(',')
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>();
            b = b
                .allow_tenants(tenants)
                .came_from("allowed_tenants", "OBO_ALLOWED_TENANTS");
        }
        if let Some(list) = get("OBO_CLIENT_CAPABILITIES") {
            let capabilities = list
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>();
            b = b
                .client_capabilities(capabilities)
                .came_from("client_capabilities", "OBO_CLIENT_CAPABILITIES");
        }
        if let Some(flag) = get("OBO_METRICS_TENANT_LABEL") {
            let label = match flag.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(
                        ConfigError::new("metrics_tenant_label", "must be true or false")
                            .in_variable("OBO_METRICS_TENANT_LABEL"),
                    )
                }
            };
            b = b
                .metrics_tenant_label(label)
                .came_from("metrics_tenant_label", "OBO_METRICS_TENANT_LABEL");
        }
        b = b.read_credential(&get).read_resource(&get)?;
        b.read_l2_variables(&get)?;
        for (field, variable) in [
            ("tenant_id", "AZURE_TENANT_ID"),
            ("client_id", "AZURE_CLIENT_ID"),
        ] {
            if !b.origins.iter().any(|(f, _)| *f == field) {
                return Err(ConfigError::new(field, "is not set").in_variable(variable));
            }
        }
        Ok(b)
    }

    /// The credential: a secret, else a certificate file, else a federated token
    /// file, else a managed identity.
    fn read_credential(self, get: &dyn Fn(&str) -> Option<String>) -> Self {
        if let Some(secret) = get("AZURE_CLIENT_SECRET") {
            self.client_secret(secret)
                .came_from("client_secret", "AZURE_CLIENT_SECRET")
        } else if let Some(path) = get("AZURE_CLIENT_CERTIFICATE_PATH") {
            self.client_certificate_file(path)
                .came_from("client_certificate", "AZURE_CLIENT_CERTIFICATE_PATH")
        } else if let Some(path) = get("AZURE_FEDERATED_TOKEN_FILE") {
            self.federated_token_file(path)
                .came_from("federated_token_file", "AZURE_FEDERATED_TOKEN_FILE")
        } else {
            self.read_managed_identity(get)
        }
    }

    #[cfg(feature = "redis")]
    fn read_l2_variables(
        &mut self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        let mut b = std::mem::take(self);
        if let Some(url) = get("OBO_REDIS_URL") {
            b = b
                .obo_redis_url(url)
                .came_from("obo_redis_url", "OBO_REDIS_URL");
        }
        if let Some(cluster) = get("OBO_REDIS_CLUSTER") {
            let cluster = match cluster.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(
                        ConfigError::new("obo_redis_cluster", "must be true or false")
                            .in_variable("OBO_REDIS_CLUSTER"),
                    )
                }
            };
            b = b
                .obo_redis_cluster(cluster)
                .came_from("obo_redis_cluster", "OBO_REDIS_CLUSTER");
        }
        if let Some(key) = get("OBO_CACHE_KEY") {
            b = b
                .obo_cache_key(key)
                .came_from("obo_cache_key", "OBO_CACHE_KEY");
        }
        if let Some(list) = get("OBO_CACHE_OLD_KEYS") {
            let keys = list
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>();
            b = b
                .obo_cache_old_keys(keys)
                .came_from("obo_cache_old_keys", "OBO_CACHE_OLD_KEYS");
        }
        if let Some(prefix) = get("OBO_REDIS_PREFIX") {
            b = b
                .obo_redis_prefix(prefix)
                .came_from("obo_redis_prefix", "OBO_REDIS_PREFIX");
        }
        b = b.read_redis_security(get)?;
        if let Some(ms) = get("OBO_REDIS_TIMEOUT_MS") {
            let ms: u64 = ms.trim().parse().map_err(|_| {
                ConfigError::new(
                    "obo_redis_timeout",
                    "must be a whole number of milliseconds",
                )
                .in_variable("OBO_REDIS_TIMEOUT_MS")
            })?;
            b = b
                .obo_redis_timeout(Duration::from_millis(ms))
                .came_from("obo_redis_timeout", "OBO_REDIS_TIMEOUT_MS");
        }
        *self = b;
        Ok(())
    }

    #[cfg(not(feature = "redis"))]
    fn read_l2_variables(
        &mut self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for (field, variable) in [
            ("obo_redis_url", "OBO_REDIS_URL"),
            ("obo_cache_key", "OBO_CACHE_KEY"),
            ("obo_redis_ca_file", "OBO_REDIS_CA_FILE"),
            ("obo_redis_entra", "OBO_REDIS_ENTRA"),
        ] {
            if get(variable).is_some() {
                return Err(ConfigError::new(
                    field,
                    "is set, but axum-obo was built without its `redis` feature",
                )
                .in_variable(variable));
            }
        }
        Ok(())
    }

    /// Records that `field` came from the environment variable `variable`.
    pub(super) fn came_from(mut self, field: &'static str, variable: &'static str) -> Self {
        self.origins.push((field, variable));
        self
    }
}
