//! Why an On-Behalf-Of exchange did not produce a token. The HTTP mapping (the
//! error-relay table) lives in `rejection.rs`.

use std::time::Duration;

/// Why no downstream token could be obtained.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OboError {
    /// The inbound token is app-only; On-Behalf-Of needs a delegated user token.
    #[error("On-Behalf-Of needs a delegated user token; app-only tokens cannot be exchanged")]
    AppOnlyToken,
    /// The inbound token expires within the clock leeway; the client must get a new one.
    #[error("the access token is about to expire; acquire a new one")]
    InboundTokenExpiring,
    /// The user must sign in again with these claims (MFA, Conditional Access).
    #[error("the user must complete an interactive sign-in (multi-factor authentication or Conditional Access)")]
    InteractionRequired {
        /// The claims challenge (JSON) to relay to the client, if Entra sent one.
        claims: Option<String>,
        /// Where the client signs in again (`{authority}/common/oauth2/authorize`).
        authorization_uri: String,
    },
    /// The user or an admin has not consented to the downstream scopes.
    #[error("consent is required for the scopes: {}", scopes.join(" "))]
    ConsentRequired {
        /// The scopes that were requested.
        scopes: Vec<String>,
    },
    /// Entra refused the inbound token as an assertion (expired, revoked, invalid).
    #[error("the access token was refused for the On-Behalf-Of exchange")]
    InvalidGrant,
    /// This API is misconfigured (bad secret, unknown scope, no credential, …).
    /// The details are logged; the client sees a generic 500.
    #[error("the API is misconfigured for On-Behalf-Of: {0}")]
    Misconfigured(String),
    /// The token endpoint is throttling or failing; retries were exhausted.
    #[error("the identity provider is unavailable")]
    Unavailable {
        /// When the client may retry, if known.
        retry_after: Option<Duration>,
    },
    /// The token endpoint did not answer in time.
    #[error("the identity provider did not answer in time")]
    Timeout,
    /// The token endpoint answered something that is not a token response.
    #[error("the identity provider sent an invalid response")]
    BadResponse,
}

impl OboError {
    /// Refusals Entra would repeat for the same question, remembered for the
    /// negative TTL per cache key (tenant, user, scopes and inbound token), so
    /// that a client retrying in a loop does not hammer Entra (AADSTS50196).
    /// `InvalidGrant` is about that inbound token (expired, revoked, malformed):
    /// asking again with it gets the same answer, while a new token of the same
    /// user is another key and is asked about.
    pub(crate) fn is_negative_cacheable(&self) -> bool {
        matches!(
            self,
            OboError::InteractionRequired { .. }
                | OboError::ConsentRequired { .. }
                | OboError::InvalidGrant
        )
    }
}
