//! Signing keys: OIDC discovery per tenant, the JWKS, and its refresh.
//!
//! - [`discovery`] fetches the v2 and v1 metadata documents of a tenant.
//! - [`keyset`] parses a JWKS into verification keys.
//! - [`store`] holds one key set per allowed tenant: reads are lock-free
//!   (`arc-swap`); refreshes are single-flight, rate-limited, and keep the last
//!   good keys when the provider fails; it tells the validated-token cache
//!   whether the key that verified a token is still published.

pub(crate) mod discovery;
pub(crate) mod keyset;
pub(crate) mod store;

pub(crate) use discovery::{issuer_tenant, TenantMetadata};
pub(crate) use store::{KeySettings, KeyStamp, KeyStore};

/// Why signing keys could not be obtained.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The provider could not be reached or did not answer in time.
    #[error("the identity provider is unreachable: {0}")]
    Unreachable(String),
    /// The provider answered with an HTTP error.
    #[error("the identity provider answered {status} for {what}")]
    Status {
        /// Which document.
        what: &'static str,
        /// The HTTP status.
        status: u16,
    },
    /// The provider's answer was not the expected document.
    #[error("the identity provider sent an invalid {0}")]
    Invalid(&'static str),
    /// A refresh failed recently and is not retried until `min_key_refresh` has passed.
    #[error("signing keys were never loaded and the last attempt failed recently")]
    Backoff,
}
