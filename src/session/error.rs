//! Why a session could not start or give a token.

use std::time::Duration;

use super::StoreError;
use crate::downstream::DownstreamError;
use crate::exchange::OboError;

/// Why a session could not be started or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No such session: never started, ended, idle for too long, or started by
    /// another API (client id).
    #[error("unknown or ended session")]
    Unknown,
    /// Entra refused the session's refresh token (revoked, expired, password
    /// reset): the session has ended, and the user must sign in again to start
    /// another.
    #[error("the session's refresh token was refused; the user must sign in again")]
    SignInAgain,
    /// The user must complete an interactive sign-in (MFA, Conditional Access):
    /// relay `claims` to whoever can reach the user. The session is kept.
    #[error("the user must complete an interactive sign-in")]
    InteractionRequired {
        /// The claims challenge (JSON) to relay, if Entra sent one.
        claims: Option<String>,
        /// Where the user signs in again.
        authorization_uri: String,
    },
    /// The user or an admin has not consented to these scopes.
    #[error("consent is required for the scopes: {}", scopes.join(" "))]
    ConsentRequired {
        /// The scopes that were requested.
        scopes: Vec<String>,
    },
    /// Entra is unavailable or throttling: retry later (after `retry_after`, if known).
    /// The session is kept.
    #[error("the identity provider is unavailable; retry later")]
    Unavailable {
        /// When to retry, if known.
        retry_after: Option<Duration>,
    },
    /// The user has started too many sessions lately (the per-user start limit,
    /// [`session_start_limit`](crate::OboConfigBuilder::session_start_limit)):
    /// refused before any exchange; retry after `retry_after`. In a request it
    /// is answered 429 with `Retry-After`.
    #[error("too many sessions started by this user; retry later")]
    TooManySessions {
        /// When the next start will be admitted.
        retry_after: Duration,
    },
    /// The downstream client could not be made (a base URL it refuses; see
    /// [`Sessions::downstream`](super::Sessions::downstream)).
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    /// The session belongs to another user (tenant or object id): refused.
    #[error("the session belongs to another user")]
    OtherUser,
    /// Entra answered the session's start without a refresh token
    /// (`offline_access` was not granted to this client).
    #[error("Entra sent no refresh token; is `offline_access` granted to this API?")]
    NoRefreshToken,
    /// The token request failed otherwise (to start: the On-Behalf-Of exchange
    /// was refused; misconfiguration; a bad response).
    #[error("the token request failed: {0}")]
    Exchange(#[source] OboError),
    /// The session store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SessionError {
    /// The session error of a refused or failed refresh-token grant.
    pub(crate) fn from_refresh(e: OboError) -> Self {
        match e {
            OboError::InvalidGrant => SessionError::SignInAgain,
            OboError::InteractionRequired {
                claims,
                authorization_uri,
            } => SessionError::InteractionRequired {
                claims,
                authorization_uri,
            },
            OboError::ConsentRequired { scopes } => SessionError::ConsentRequired { scopes },
            OboError::Unavailable { retry_after } => SessionError::Unavailable { retry_after },
            OboError::Timeout => SessionError::Unavailable { retry_after: None },
            other => SessionError::Exchange(other),
        }
    }
}
