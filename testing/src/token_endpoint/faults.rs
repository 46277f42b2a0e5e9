//! Scripted token-endpoint failures: [`TokenFault`] and the answers it produces.

use std::time::Duration;

use axum::response::Response;
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};

use super::super::ids::derived_guid;
use super::super::response::{self, EntraError, RequestIds, JSON_UTF8};
use super::errors;
use super::jws::when;

/// A failure the token endpoint answers instead of validating the request; see
/// [`EntraStandIn::inject_token_fault`](super::super::EntraStandIn::inject_token_fault).
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum TokenFault {
    /// `400 interaction_required`, AADSTS50076, with a Conditional Access claims challenge
    /// (`claims`, a JSON string naming a policy id under `capolids`).
    InteractionRequired,
    /// `400 invalid_grant`, `suberror: consent_required`, AADSTS65001.
    ConsentRequired,
    /// `400 invalid_grant`, AADSTS500133 (the assertion is expired).
    InvalidGrant,
    /// `401 invalid_client`, AADSTS7000215 (wrong client secret).
    InvalidClient,
    /// `400 unauthorized_client`, AADSTS700016 (unknown application).
    UnauthorizedClient,
    /// `400 invalid_scope`, AADSTS70011.
    InvalidScope,
    /// `429 Too Many Requests` with an Entra JSON body (AADSTS50196) and, when `Some`, a
    /// `Retry-After` header (seconds).
    TooManyRequests {
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// `429 Too Many Requests` for the application in the tenant, not a request loop: an
    /// Entra JSON body with AADSTS90055 (`TenantThrottlingError`, "There are too many
    /// incoming requests") and, when `Some`, a `Retry-After` header (seconds). MSAL acts
    /// on the status and `Retry-After` only.
    TenantThrottled {
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// `503 Service Unavailable` with an Entra JSON body (AADSTS90033) and, when `Some`, a
    /// `Retry-After` header (seconds).
    ServiceUnavailable {
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// `500 Internal Server Error` with an Entra JSON body (`server_error`, AADSTS50000).
    InternalServerError,
    /// That status with a `text/html` error page, as a proxy or front door sends.
    HtmlErrorPage(u16),
    /// `200 OK` whose body is not JSON (labelled `application/json`).
    Garbage,
    /// `200 OK` with a success body cut off mid-way.
    Truncated,
    /// Waits this long, then handles the request normally.
    Delay(Duration),
    /// Never answers: holds the connection open until the client gives up (or the stand-in
    /// stops).
    Hang,
}

/// The `claims` challenge of tenant `tenant`'s Conditional Access policy requiring MFA.
pub(super) fn mfa_claims(tenant: &str) -> String {
    let policy = derived_guid(&["conditional-access-policy", tenant]);
    format!(r#"{{"access_token":{{"capolids":{{"essential":true,"values":["{policy}"]}}}}}}"#)
}

/// The answer for `fault`; `None` for [`TokenFault::Delay`] and [`TokenFault::Hang`], which
/// the handler deals with.
pub(super) fn answer(
    fault: &TokenFault,
    authority: &str,
    api_client_id: &str,
    tenant: &str,
    now: i64,
    ids: &RequestIds,
) -> Option<Response> {
    let error = |e: EntraError| Some(e.into_response(authority, ids));
    match fault {
        TokenFault::InteractionRequired => {
            error(errors::mfa_required(api_client_id, mfa_claims(tenant)))
        }
        TokenFault::ConsentRequired => error(errors::consent_required(api_client_id)),
        TokenFault::InvalidGrant => error(errors::assertion_expired(
            &when(Some(now)),
            &when(Some(now - 3600)),
        )),
        TokenFault::InvalidClient => error(errors::invalid_secret(api_client_id)),
        TokenFault::UnauthorizedClient => {
            error(errors::unknown_application(api_client_id, tenant))
        }
        TokenFault::InvalidScope => error(errors::invalid_scope(
            "The scope requested is not valid (injected by the Entra stand-in).",
        )),
        TokenFault::TooManyRequests { retry_after } => Some(with_retry_after(
            errors::throttled().into_response(authority, ids),
            *retry_after,
        )),
        TokenFault::TenantThrottled { retry_after } => Some(with_retry_after(
            errors::tenant_throttled().into_response(authority, ids),
            *retry_after,
        )),
        TokenFault::ServiceUnavailable { retry_after } => Some(with_retry_after(
            errors::unavailable().into_response(authority, ids),
            *retry_after,
        )),
        TokenFault::InternalServerError => error(errors::server_error()),
        TokenFault::HtmlErrorPage(status) => Some(response::html_error(*status, ids)),
        TokenFault::Garbage => Some(response::raw(
            StatusCode::OK,
            JSON_UTF8,
            "upstream connect error or disconnect/reset before headers. reset reason: \
             connection termination"
                .to_owned(),
            ids,
        )),
        TokenFault::Truncated => Some(response::raw(
            StatusCode::OK,
            JSON_UTF8,
            r#"{"token_type":"Bearer","scope":"https://graph.microsoft.com/User.Read","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIs"#
                .to_owned(),
            ids,
        )),
        TokenFault::Delay(_) | TokenFault::Hang => None,
    }
}

fn with_retry_after(mut response: Response, retry_after: Option<u64>) -> Response {
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
