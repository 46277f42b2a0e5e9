//! The refresh-token grant (`grant_type=refresh_token`) and the refresh tokens behind it.
//!
//! What is modelled, as Entra does it for a confidential client:
//!
//! - A refresh token is issued only when the request's `scope` holds `offline_access` (an
//!   OBO request), and again on every refresh (rotation). It is opaque (`1.A…`, not a JWT)
//!   and bound to the tenant, the user (`oid`) and the client that redeemed the assertion.
//! - Redemption needs the same client authentication as OBO (secret, certificate or
//!   federated assertion) and a `scope` of one resource the user consented to for the client
//!   (any resource: a refresh token is multi-resource at Entra).
//! - **Rotation does not revoke the old token.** Microsoft documents that refresh tokens
//!   "replace themselves with a fresh token upon every use" and that the platform "doesn't
//!   revoke old refresh tokens when used to fetch new access tokens": the old token keeps
//!   working until it expires. [`EntraStandIn::refuse_refresh_token_reuse`] turns on a
//!   stricter, non-Entra mode in which a redeemed token answers `invalid_grant`, to prove
//!   that the code under test stores the new one.
//! - Revocation ([`EntraStandIn::revoke_refresh_tokens`], as after a password reset or
//!   `revokeSignInSessions`): `400 invalid_grant`, AADSTS50173 with Entra's wording.
//! - Expiry ([`EntraStandIn::expire_refresh_tokens`]): AADSTS700082 (inactivity) or
//!   AADSTS70008 (expired grant), both `400 invalid_grant`.
//! - An unknown token, or one of another tenant: `400 invalid_grant`, AADSTS9002313.
//!
//! Not modelled: lifetimes and the inactivity clock themselves (expiry is scripted), family
//! refresh tokens, SPA refresh tokens (24 h, bound to an origin), and `suberror` values on
//! these errors (none is sent: Entra's documented samples of these codes show none).

use std::time::SystemTime;

use http::HeaderMap;
use serde_json::Value;

use super::super::ids::unix_seconds;
use super::super::response::EntraError;
use super::super::state::Shared;
use super::super::EntraStandIn;
use super::client_auth::{authenticate, Context};
use super::errors;
use super::form::Form;
use super::handler::{delegated, requested, Delegation};
use super::jws::when;
use super::user_assertion::Subject;

/// How a user's refresh tokens expired; see [`EntraStandIn::expire_refresh_tokens`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenExpiry {
    /// Unused for longer than the inactivity window (90 days by default):
    /// AADSTS700082, "The refresh token has expired due to inactivity. The token was issued
    /// on {date} and was inactive for {span}."
    Inactive,
    /// The grant expired (or was revoked) outright: AADSTS70008, "The provided
    /// authorization code or refresh token has expired due to inactivity. Send a new
    /// interactive authorization request for this user and resource."
    Expired,
}

/// What a refresh token grants: the user, the client it was issued to, and when.
#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub(super) subject: Subject,
    pub(super) client_id: String,
    pub(super) issued_at: i64,
    /// When the sign-in behind it happened (the first assertion's `iat`), kept across
    /// rotations: what session revocation compares.
    pub(super) granted_at: i64,
    /// Orders it against revocations ([`TokenEndpoint::next_refresh_serial`]).
    ///
    /// [`TokenEndpoint::next_refresh_serial`]: super::state::TokenEndpoint::next_refresh_serial
    pub(super) serial: u64,
}

/// The refresh-token grant: a new access token and a new refresh token for the same user.
pub(super) fn grant(
    shared: &Shared,
    form: &Form,
    headers: &HeaderMap,
    cx: &Context<'_>,
) -> Result<Value, EntraError> {
    let client = authenticate(shared, form, headers, cx)?;
    let token = form
        .get("refresh_token")
        .ok_or_else(|| errors::missing_parameter("refresh_token"))?;
    let endpoint = &shared.token_endpoint;
    let grant = endpoint
        .redeem_refresh_token(token)
        .ok_or_else(|| errors::bad_refresh_token("The refresh token is not valid."))?;
    let subject = &grant.subject;
    if subject.tid != cx.tenant || !grant.client_id.eq_ignore_ascii_case(&shared.api_client_id) {
        return Err(errors::bad_refresh_token(&format!(
            "The refresh token was issued to another client or in another tenant ('{}').",
            subject.tid
        )));
    }
    if let Some((valid_from, _)) = endpoint
        .tokens_valid_from(&subject.oid)
        .filter(|(_, serial)| grant.serial < *serial)
    {
        return Err(errors::refresh_token_revoked(
            &when(Some(grant.issued_at)),
            &when(Some(valid_from)),
        ));
    }
    match endpoint.refresh_expiry(&subject.oid) {
        Some(RefreshTokenExpiry::Inactive) => {
            let idle = cx.now.saturating_sub(grant.issued_at).max(0);
            // Entra prints this one in ISO 8601 (`2019-01-02T09:19:53.5422744Z`).
            return Err(errors::refresh_token_inactive(
                &when(Some(grant.issued_at)).replace(' ', "T"),
                &timespan(idle),
            ));
        }
        Some(RefreshTokenExpiry::Expired) => return Err(errors::refresh_token_expired()),
        None => {}
    }
    let (scopes, claims) = requested(shared, form)?;
    delegated(
        shared,
        form,
        &Delegation {
            subject,
            scopes: &scopes,
            client,
            now: cx.now,
            granted_at: grant.granted_at,
            claims: &claims,
            refresh_token: true,
        },
    )
}

/// A .NET `TimeSpan` as Entra prints it: `d.hh:mm:ss`, or `hh:mm:ss` under a day.
fn timespan(secs: i64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let hms = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if days > 0 {
        format!("{days}.{hms}")
    } else {
        hms
    }
}

impl EntraStandIn {
    /// Revokes every refresh token user `oid` holds now (as a password reset or Graph's
    /// `revokeSignInSessions` does): redeeming one answers `400 invalid_grant`,
    /// AADSTS50173 ("The provided grant has expired due to it being revoked, a fresh auth
    /// token is needed. …"). Refresh tokens issued afterwards work.
    pub fn revoke_refresh_tokens(&self, oid: &str) {
        let now = unix_seconds(SystemTime::now());
        self.shared.token_endpoint.revoke_refresh_tokens(oid, now);
    }

    /// Makes every refresh token of user `oid` (issued so far or later) answer `400
    /// invalid_grant` with `how`'s code: AADSTS700082 or AADSTS70008.
    pub fn expire_refresh_tokens(&self, oid: &str, how: RefreshTokenExpiry) {
        self.shared.token_endpoint.expire_refresh_tokens(oid, how);
    }

    /// Makes a redeemed refresh token answer `invalid_grant` (AADSTS9002313) when presented
    /// again. **Not Entra's behaviour** (Entra keeps old refresh tokens valid after
    /// rotation; off by default): a strict mode proving the code under test stores the
    /// rotated token.
    pub fn refuse_refresh_token_reuse(&self, on: bool) {
        self.shared.token_endpoint.set_refuse_refresh_reuse(on);
    }
}

#[cfg(test)]
mod tests {
    use super::timespan;

    #[test]
    fn timespans_print_like_dotnet() {
        assert_eq!(timespan(0), "00:00:00");
        assert_eq!(timespan(12 * 3600), "12:00:00");
        assert_eq!(timespan(90 * 86_400), "90.00:00:00");
        assert_eq!(timespan(86_400 + 3661), "1.01:01:01");
    }
}
