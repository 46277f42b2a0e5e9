//! [`Renew`]: how a [`DownstreamClient`](super::DownstreamClient) answers a claims
//! challenge (Continuous Access Evaluation) instead of relaying it.
//!
//! A client made by [`OboToken`](crate::OboToken) with client capabilities
//! configured carries one: when the API answers 401 `insufficient_claims`, the
//! client asks it for a new token carrying the challenge's claims (a re-exchange)
//! and retries the call once with that token. A client built with
//! [`DownstreamClient::new`](super::DownstreamClient::new) has none and relays every
//! challenge as [`DownstreamError::ClaimsChallenge`].

use std::future::Future;
use std::pin::Pin;

use super::error::DownstreamError;
use crate::secret::BearerToken;

/// What [`Renew::renew`] returns.
pub(crate) type Renewal<'a> =
    Pin<Box<dyn Future<Output = Result<Option<BearerToken>, DownstreamError>> + Send + 'a>>;

/// Obtains a new token answering a claims challenge.
pub(crate) trait Renew: Send + Sync {
    /// A token answering `claims` (the challenge's JSON): `Ok(Some(token))` to retry
    /// the call once with it, `Ok(None)` to relay the challenge as it came, or the
    /// error to answer instead (e.g. Entra's own claims challenge when the user must
    /// sign in again).
    fn renew<'a>(&'a self, claims: &'a str) -> Renewal<'a>;
}
