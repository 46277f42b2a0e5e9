//! [`OboConfig`]: the validated configuration. It holds one settings value per
//! subsystem (built by [`OboConfigBuilder::build`]) and the layer's HTTP client,
//! and answers the public getters from them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::builder::OboConfigBuilder;
use super::error::ConfigError;
use crate::downstream::DownstreamSettings;
use crate::exchange::ExchangeSettings;
use crate::jwks::KeySettings;
use crate::policy::Policy;
use crate::resource_metadata::{ProtectedResourceMetadata, ResourceSettings};
use crate::session::SessionSettings;
use crate::validate::ValidationSettings;

/// The public-cloud authority host.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// Validated configuration of the crate. Build it with [`OboConfig::builder`] or
/// [`OboConfig::from_env`]; it cannot be constructed in an invalid state.
#[derive(Clone)]
pub struct OboConfig {
    pub(crate) tenant_id: String,
    pub(crate) client_id: String,
    /// Discovery and signing keys of the allowed tenants.
    pub(crate) keys: KeySettings,
    /// The checks on inbound tokens.
    pub(crate) validation: ValidationSettings,
    /// The On-Behalf-Of exchange and its cache.
    pub(crate) exchange: ExchangeSettings,
    /// Graph and the authority named in relayed claims challenges.
    pub(crate) downstream: DownstreamSettings,
    /// The layer-wide access policy.
    pub(crate) policy: Policy,
    /// Long-running sessions.
    pub(crate) sessions: SessionSettings,
    /// This API as an OAuth protected resource (RFC 9728), when configured.
    pub(crate) resource: Option<Arc<ResourceSettings>>,
    /// The one HTTP client of the layer (Entra and downstream calls), built with
    /// the configuration so that a failure is reported by `build()`.
    pub(crate) http: reqwest::Client,
}

impl fmt::Debug for OboConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OboConfig")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("keys", &self.keys)
            .field("validation", &self.validation)
            .field("exchange", &self.exchange)
            .field("downstream", &self.downstream)
            .field("policy", &self.policy)
            .field("resource", &self.resource_url())
            .finish_non_exhaustive()
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
        &self.downstream.authority
    }

    /// The Microsoft Graph root (default `https://graph.microsoft.com`), without a
    /// trailing slash; requests go to `{graph_url}/v1.0/…`.
    pub fn graph_url(&self) -> &str {
        &self.downstream.graph_url
    }

    /// Whether a client credential (secret, certificate, federated token file,
    /// managed identity or custom assertion) is configured. Without one the layer
    /// validates tokens, but every On-Behalf-Of exchange answers 500 (logged at
    /// error level once): check it at start-up if the API needs the exchange.
    pub fn has_client_credential(&self) -> bool {
        self.exchange.credential.is_some()
    }

    /// Whether tokens of any organization's tenant are admitted
    /// ([`allow_any_tenant`](OboConfigBuilder::allow_any_tenant)); then
    /// [`allowed_tenants`](Self::allowed_tenants) lists the named ones only.
    pub fn admits_any_tenant(&self) -> bool {
        self.validation.any_tenant
    }

    /// Tenants whose tokens are admitted.
    pub fn allowed_tenants(&self) -> impl Iterator<Item = &str> {
        self.validation.allowed_tenants.iter().map(String::as_str)
    }

    /// Accepted `aud` values.
    pub fn audiences(&self) -> impl Iterator<Item = &str> {
        self.validation.audiences.iter().map(String::as_str)
    }

    /// Allowed clock skew for `exp` and `nbf`.
    pub fn leeway(&self) -> Duration {
        self.validation.leeway
    }

    /// This API's canonical URL as an OAuth protected resource, when configured
    /// ([`resource_url`](OboConfigBuilder::resource_url)).
    pub fn resource_url(&self) -> Option<&str> {
        self.resource_metadata().map(|m| m.resource.as_str())
    }

    /// The RFC 9728 metadata document, when a resource URL is configured; serve it
    /// with [`ProtectedResourceMetadata::router`].
    pub fn resource_metadata(&self) -> Option<&ProtectedResourceMetadata> {
        self.resource.as_deref().map(|r| &r.metadata)
    }
}
