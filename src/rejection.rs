//! Every way a request can be refused, and the one place that maps them to HTTP
//! (RFC 6750 for bearer-token errors), like axum's `extract::rejection`.
//!
//! [`AuthRejection`] is the one error type a handler deals with: the rejection of
//! every extractor of this crate, convertible from each cause below (so `?` works
//! in a handler returning `Result<_, AuthRejection>`), and readable piece by piece
//! (status, error code, description, `WWW-Authenticate`, `Retry-After`) for APIs
//! that answer errors in their own JSON shape — in handlers through their own
//! error type, and for the layer's refusals and the extractors' rejections through
//! [`OboLayer::render_refusals_with`](crate::OboLayer::render_refusals_with).
//! The causes:
//!
//! - [`ValidationError`]: why the access token was refused (its [`KeyError`] when
//!   the signing keys could not be fetched);
//! - [`Forbidden`]: why a valid token may not call this API or route;
//! - [`Refusal`]: why the app's [admission hook](crate::admission) refused the caller;
//! - [`OboError`]: why the On-Behalf-Of exchange produced no token;
//! - [`DownstreamError`]: why a call to Graph or another API failed (it lives in
//!   [`downstream`](crate::downstream), next to the clients, and answers with the same
//!   mapping as `AuthRejection::Downstream`).
//!
//! The layer answers in the protocol of the request: a gRPC request
//! (`content-type: application/grpc…`) gets a gRPC Trailers-Only answer whose
//! `grpc-status` is derived from the HTTP status (see
//! [`AuthRejection::grpc_code`]), everything else the HTTP answer. With the
//! `tonic` feature, `AuthRejection`, [`OboError`] and [`DownstreamError`] convert
//! into `tonic::Status` the same way, for tonic handlers.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};

mod grpc;
mod render;

pub(crate) use render::{Refused, Renderer};

pub use crate::admission::Refusal;
use crate::admission::RefusalKind;
use crate::downstream::DownstreamError;
pub use crate::exchange::OboError;
pub use crate::jwks::KeyError;
pub use crate::policy::Forbidden;
use crate::session::SessionError;
pub use crate::validate::ValidationError;

/// Why the layer or an extractor refused a request.
///
/// | variant | status | `WWW-Authenticate` |
/// |---|---|---|
/// | [`MissingToken`](Self::MissingToken) | 401 | `Bearer` |
/// | [`InvalidRequest`](Self::InvalidRequest) | 400 | `Bearer error="invalid_request"` |
/// | [`InvalidToken`](Self::InvalidToken) | 401 (503 if keys are unavailable) | `Bearer error="invalid_token"` |
/// | [`Forbidden`](Self::Forbidden) | 403 | `Bearer error="insufficient_scope"` |
/// | [`NotAdmitted`](Self::NotAdmitted) | 401, 403 or 503 (see [`Refusal`]) | `invalid_token`, `insufficient_scope`, — |
/// | [`MissingLayer`](Self::MissingLayer) | 500 | — |
/// | [`Obo`](Self::Obo) | see below | see below |
/// | [`Downstream`](Self::Downstream) | as [`DownstreamError`] answers itself | claims challenge only |
///
/// On-Behalf-Of failures ([`OboError`]) are relayed as follows:
///
/// | token endpoint says | the API answers |
/// |---|---|
/// | `interaction_required` (MFA, Conditional Access) with `claims` | 401 `Bearer realm="", authorization_uri="…/common/oauth2/authorize", error="insufficient_claims", claims="<base64 claims>"` |
/// | consent missing (AADSTS65001) | 403 `consent_required`, naming the scopes |
/// | `invalid_grant` (assertion expired/invalid) | 401 `invalid_token` |
/// | `invalid_client`, `unauthorized_client`, `invalid_scope` | 500 with a generic body (cause logged) |
/// | 429 / 5xx after bounded retries | 503 with `Retry-After` |
/// | timeout | 504 |
/// | not the expected JSON | 502 |
/// | (local) app-only inbound token | 403 `delegated_token_required` |
/// | (local) inbound token about to expire | 401 `invalid_token` |
///
/// Bodies are JSON `{"error": …, "error_description": …}` and never contain the token.
///
/// To a gRPC request (`content-type: application/grpc…`) the layer answers the
/// same rejection as a gRPC Trailers-Only response: HTTP 200, `grpc-status` as in
/// [`grpc_code`](Self::grpc_code)'s table (401 → 16 `UNAUTHENTICATED`, 403 → 7
/// `PERMISSION_DENIED`, 502/503/504 → 14 `UNAVAILABLE`, 500 → 13 `INTERNAL`), the
/// percent-encoded [`description`](Self::description) as `grpc-message`, the same
/// `WWW-Authenticate` and `Retry-After` headers, and no body.
///
/// # In your own error type
///
/// Handlers may return `Result<_, AuthRejection>` and use `?` on every error of this
/// crate ([`OboError`], [`DownstreamError`], [`ValidationError`], [`Forbidden`]). An
/// API with its own error type needs one `From` impl, and can answer in its own JSON
/// shape with [`status`](Self::status), [`error_code`](Self::error_code),
/// [`description`](Self::description) and [`headers`](Self::headers) (the
/// `WWW-Authenticate` challenge and `Retry-After` the client needs). To handle an
/// On-Behalf-Of failure in the handler rather than let the extractor answer, take
/// `Result<OboToken<S>, AuthRejection>`:
///
/// ```
/// use axum::response::{IntoResponse, Response};
/// use axum::{routing::get, Json, Router};
/// use axum_obo::rejection::OboError;
/// use axum_obo::{AuthRejection, GraphUserRead, OboToken};
/// use serde_json::{json, Value};
///
/// /// The API's errors, answered as `{"code": …, "message": …}`.
/// enum ApiError {
///     Auth(AuthRejection),
///     NoManager,
/// }
///
/// // The one conversion: `?` works on every error of axum-obo.
/// impl<E: Into<AuthRejection>> From<E> for ApiError {
///     fn from(e: E) -> Self {
///         ApiError::Auth(e.into())
///     }
/// }
///
/// impl IntoResponse for ApiError {
///     fn into_response(self) -> Response {
///         match self {
///             // Our envelope, the crate's status and headers (challenge, Retry-After).
///             ApiError::Auth(r) => {
///                 let body = json!({ "code": r.error_code(), "message": r.description() });
///                 (r.status(), r.headers(), Json(body)).into_response()
///             }
///             ApiError::NoManager => {
///                 let body = json!({ "code": "no_manager", "message": "no manager on file" });
///                 (http::StatusCode::NOT_FOUND, Json(body)).into_response()
///             }
///         }
///     }
/// }
///
/// async fn manager(
///     token: Result<OboToken<GraphUserRead>, AuthRejection>,
/// ) -> Result<Json<Value>, ApiError> {
///     let token = match token {
///         Ok(token) => token,
///         Err(r) => {
///             // Look at the cause (here: tell the admins), then relay it.
///             if let AuthRejection::Obo(OboError::ConsentRequired { scopes }) = &r {
///                 tracing::warn!(?scopes, "admin consent to Graph is missing");
///             }
///             return Err(r.into());
///         }
///     };
///     let graph = token.graph();
///     let me = graph.me().await?; // DownstreamError -> ApiError
///     let manager: Value = graph.get("me/manager?$select=displayName").await?;
///     if manager["displayName"].is_null() {
///         return Err(ApiError::NoManager);
///     }
///     Ok(Json(json!({ "me": me.display_name, "manager": manager["displayName"] })))
/// }
///
/// let app: Router = Router::new().route("/manager", get(manager));
/// ```
///
/// The generic impl is the shape of axum's own `anyhow` example. Rust then refuses
/// (E0119) other `From` impls of `ApiError` for *other crates'* error types; if you
/// need those, write two plain impls instead, `From<AuthRejection>` and
/// `From<DownstreamError>` ([`OboError`] never reaches a handler: the extractor has
/// already made it an `AuthRejection`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthRejection {
    /// No `Authorization: Bearer` credentials (RFC 6750 §3: no error code).
    #[error("the request has no bearer token")]
    MissingToken,
    /// The `Authorization` header is malformed (empty token, repeated header, …).
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The token was refused.
    #[error(transparent)]
    InvalidToken(#[from] ValidationError),
    /// The token is valid but may not do this.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// The On-Behalf-Of exchange failed.
    #[error(transparent)]
    Obo(#[from] OboError),
    /// A call to Graph or another downstream API failed.
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    /// The app's admission hook refused the caller (see [`admission`](crate::admission)).
    #[error(transparent)]
    NotAdmitted(#[from] Refusal),
    /// An extractor ran on a route without `OboLayer`.
    #[error("the request was not authenticated: did you add `OboLayer` in front of this route?")]
    MissingLayer,
    /// The caller has started too many long-running sessions lately
    /// ([`SessionError::TooManySessions`]): 429 with `Retry-After`.
    #[error("too many sessions started; retry later")]
    TooManySessions {
        /// When the next start will be admitted.
        retry_after: Duration,
    },
}

/// A session failure in a request (e.g. [`OboToken::start_session`](crate::OboToken::start_session)),
/// answered like the On-Behalf-Of failure it amounts to (too many starts by the
/// caller is 429 with `Retry-After`): Entra unavailable or a
/// store failure is 503, interaction or consent is relayed, an unknown, refused or
/// another user's session is 401 `invalid_token` (sign in again), a missing
/// refresh token is this API's misconfiguration (500).
impl From<SessionError> for AuthRejection {
    fn from(e: SessionError) -> Self {
        let obo = match e {
            SessionError::TooManySessions { retry_after } => {
                return AuthRejection::TooManySessions { retry_after }
            }
            SessionError::Downstream(e) => return AuthRejection::Downstream(e),
            SessionError::Exchange(e) => e,
            SessionError::InteractionRequired {
                claims,
                authorization_uri,
            } => OboError::InteractionRequired {
                claims,
                authorization_uri,
            },
            SessionError::ConsentRequired { scopes } => OboError::ConsentRequired { scopes },
            SessionError::Unavailable { retry_after } => OboError::Unavailable { retry_after },
            SessionError::Store(_) => OboError::Unavailable { retry_after: None },
            SessionError::NoRefreshToken => {
                let why = "Entra sent no refresh token: grant `offline_access` to this API";
                tracing::error!("cannot start a session: {why}");
                OboError::Misconfigured(why.into())
            }
            _ => OboError::InvalidGrant,
        };
        AuthRejection::Obo(obo)
    }
}

impl AuthRejection {
    /// The HTTP status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthRejection::MissingToken => StatusCode::UNAUTHORIZED,
            AuthRejection::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            AuthRejection::InvalidToken(ValidationError::KeysUnavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AuthRejection::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AuthRejection::Forbidden(_) => StatusCode::FORBIDDEN,
            AuthRejection::NotAdmitted(r) => match r.kind() {
                RefusalKind::Unauthorized => StatusCode::UNAUTHORIZED,
                RefusalKind::Forbidden => StatusCode::FORBIDDEN,
                RefusalKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            },
            AuthRejection::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            AuthRejection::TooManySessions { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthRejection::Obo(e) => match e {
                OboError::AppOnlyToken | OboError::ConsentRequired { .. } => StatusCode::FORBIDDEN,
                OboError::InboundTokenExpiring
                | OboError::InteractionRequired { .. }
                | OboError::InvalidGrant => StatusCode::UNAUTHORIZED,
                OboError::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
                OboError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                OboError::Timeout => StatusCode::GATEWAY_TIMEOUT,
                OboError::BadResponse => StatusCode::BAD_GATEWAY,
            },
            AuthRejection::Downstream(e) => e.status(),
        }
    }

    /// The OAuth error code of the body (`invalid_token`, `insufficient_scope`, …).
    pub fn error_code(&self) -> &'static str {
        match self {
            AuthRejection::MissingToken => "unauthorized",
            AuthRejection::InvalidRequest(_) => "invalid_request",
            AuthRejection::InvalidToken(ValidationError::KeysUnavailable(_)) => {
                "temporarily_unavailable"
            }
            AuthRejection::InvalidToken(_) => "invalid_token",
            AuthRejection::Forbidden(Forbidden::ClientApp) => "unauthorized_client",
            AuthRejection::Forbidden(_) => "insufficient_scope",
            AuthRejection::NotAdmitted(r) => match r.kind() {
                RefusalKind::Unauthorized => "invalid_token",
                RefusalKind::Forbidden => "insufficient_scope",
                RefusalKind::Unavailable => "temporarily_unavailable",
            },
            AuthRejection::MissingLayer => "server_error",
            AuthRejection::TooManySessions { .. } => "too_many_requests",
            AuthRejection::Obo(e) => match e {
                OboError::AppOnlyToken => "delegated_token_required",
                OboError::InboundTokenExpiring | OboError::InvalidGrant => "invalid_token",
                OboError::InteractionRequired { .. } => "insufficient_claims",
                OboError::ConsentRequired { .. } => "consent_required",
                OboError::Misconfigured(_) => "server_error",
                OboError::Unavailable { .. } | OboError::Timeout => "temporarily_unavailable",
                OboError::BadResponse => "bad_gateway",
            },
            AuthRejection::Downstream(e) => e.error_code(),
        }
    }

    /// The client-facing description (the body's `error_description`). Server-side
    /// causes (misconfiguration, a downstream API's own messages) are not disclosed;
    /// the token never appears.
    pub fn description(&self) -> String {
        match self {
            AuthRejection::Obo(OboError::Misconfigured(_)) => {
                "the server could not complete the request".to_owned()
            }
            AuthRejection::Downstream(e) => e.public_description(),
            other => other.to_string(),
        }
    }

    /// The `WWW-Authenticate` challenge the response carries, if any: RFC 6750's
    /// `Bearer error="…"` for token problems, or a claims challenge sending the
    /// client back to sign in (MFA, Conditional Access).
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        self.challenge()
            .and_then(|v| HeaderValue::from_str(&v).ok())
    }

    fn challenge(&self) -> Option<String> {
        let description = quoted(&self.description());
        // RFC 6750 §3: `Bearer error="…", error_description="…"[, scope="…"]`.
        let bearer = |error: &str, scopes: &[String]| {
            let scope = if scopes.is_empty() {
                String::new()
            } else {
                format!(", scope=\"{}\"", quoted(&scopes.join(" ")))
            };
            Some(format!(
                "Bearer error=\"{error}\", error_description=\"{description}\"{scope}"
            ))
        };
        match self {
            AuthRejection::MissingToken => Some("Bearer".to_owned()),
            AuthRejection::InvalidRequest(_) => bearer("invalid_request", &[]),
            AuthRejection::InvalidToken(ValidationError::KeysUnavailable(_)) => None,
            AuthRejection::InvalidToken(_) => bearer("invalid_token", &[]),
            AuthRejection::Forbidden(Forbidden::Insufficient { scopes, .. }) => {
                bearer("insufficient_scope", scopes)
            }
            AuthRejection::Forbidden(_) => bearer("insufficient_scope", &[]),
            AuthRejection::NotAdmitted(r) => match r.kind() {
                RefusalKind::Unauthorized => bearer("invalid_token", &[]),
                RefusalKind::Forbidden => bearer("insufficient_scope", &[]),
                RefusalKind::Unavailable => None,
            },
            AuthRejection::MissingLayer | AuthRejection::TooManySessions { .. } => None,
            AuthRejection::Obo(e) => match e {
                OboError::AppOnlyToken => bearer("insufficient_scope", &[]),
                OboError::ConsentRequired { scopes } => bearer("insufficient_scope", scopes),
                OboError::InboundTokenExpiring | OboError::InvalidGrant => {
                    bearer("invalid_token", &[])
                }
                OboError::InteractionRequired {
                    claims,
                    authorization_uri,
                } => Some(claims_challenge(authorization_uri, claims.as_deref())),
                _ => None,
            },
            AuthRejection::Downstream(e) => downstream_challenge(e),
        }
    }

    /// When the client may retry (whole seconds, the `Retry-After` header), for
    /// the 503s of an unavailable identity provider or a throttled downstream API.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_secs().map(Duration::from_secs)
    }

    fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthRejection::InvalidToken(ValidationError::KeysUnavailable(_)) => Some(10),
            AuthRejection::Obo(OboError::Unavailable { retry_after }) => {
                Some(retry_after.map_or(5, |d| d.as_secs().max(1)))
            }
            AuthRejection::Downstream(e) => downstream_retry_after(e),
            AuthRejection::TooManySessions { retry_after } => Some(retry_after.as_secs().max(1)),
            AuthRejection::NotAdmitted(r) if r.kind() == RefusalKind::Unavailable => Some(5),
            _ => None,
        }
    }

    /// The headers the response carries: `Cache-Control: no-store`, and
    /// [`WWW-Authenticate`](Self::www_authenticate) and
    /// [`Retry-After`](Self::retry_after) when there are any. Answer with these
    /// and [`status`](Self::status) to keep the protocol while choosing the body.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(v) = self.www_authenticate() {
            headers.insert(WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        headers
    }
}

/// The claims challenge relayed for a downstream API's, naming the client's authority.
fn downstream_challenge(e: &DownstreamError) -> Option<String> {
    match e {
        DownstreamError::ClaimsChallenge {
            claims,
            authorization_uri,
        } => Some(claims_challenge(authorization_uri, Some(claims))),
        _ => None,
    }
}

/// The `Retry-After` (seconds) of a throttled downstream call: the API's, else 5.
fn downstream_retry_after(e: &DownstreamError) -> Option<u64> {
    (e.status() == StatusCode::SERVICE_UNAVAILABLE)
        .then(|| e.retry_after().map_or(5, |d| d.as_secs().max(1)))
}

/// The challenge that sends a client back to sign in with `claims`
/// (Microsoft's OBO guidance for relaying `interaction_required`).
fn claims_challenge(authorization_uri: &str, claims: Option<&str>) -> String {
    use base64::Engine as _;
    let claims = claims.map_or(String::new(), |c| {
        format!(
            ", claims=\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(c)
        )
    });
    format!(
        "Bearer realm=\"\", authorization_uri=\"{}\", error=\"insufficient_claims\"{claims}",
        quoted(authorization_uri)
    )
}

/// Makes `s` safe inside an RFC 7230 quoted-string.
pub(crate) fn quoted(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect()
}

/// Answers the caller of your API for a failed downstream call, as the table on
/// [`DownstreamError`] says: a fixed description (plus the API's error code when it
/// is a plain identifier), the claims challenge for 401, `Retry-After` for 503. The
/// details (the API's message, transport causes) are logged, not sent. The same
/// answer as [`AuthRejection::Downstream`].
impl IntoResponse for DownstreamError {
    fn into_response(self) -> Response {
        AuthRejection::Downstream(self).into_response()
    }
}

impl AuthRejection {
    /// Logs what the answer does not disclose (a downstream API's details).
    fn log(&self) {
        if let AuthRejection::Downstream(e) = self {
            let status = e.status();
            if status.is_server_error() {
                tracing::warn!(status = status.as_u16(), error = %e, "downstream call failed");
            } else {
                tracing::debug!(status = status.as_u16(), error = %e, "downstream call failed");
            }
        }
    }

    /// The HTTP answer: `{"error": …, "error_description": …}` with
    /// [`status`](Self::status) and [`headers`](Self::headers).
    fn http_response(&self) -> http::Response<Bytes> {
        let body = serde_json::json!({
            "error": self.error_code(),
            "error_description": self.description(),
        });
        let mut resp = http::Response::new(Bytes::from(body.to_string()));
        *resp.status_mut() = self.status();
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.extend(self.headers());
        resp
    }

    /// The answer in the protocol of the request whose headers are `request`,
    /// received over `version`: a gRPC Trailers-Only answer (empty body) for a gRPC
    /// request (`content-type: application/grpc…` over HTTP/2, or grpc-web), the
    /// HTTP answer otherwise.
    ///
    /// With a `renderer` (the app's hook), the HTTP answer is the hook's body with
    /// the crate's status, challenge and `Retry-After`.
    pub(crate) fn into_response_for(
        self,
        request: &HeaderMap,
        version: http::Version,
        renderer: Option<&Renderer>,
    ) -> http::Response<Bytes> {
        self.log();
        match (grpc::grpc_content_type(request, version), renderer) {
            (Some(content_type), _) => self.grpc_response(content_type),
            (None, Some(renderer)) => renderer.render(&self),
            (None, None) => self.http_response(),
        }
    }

    /// Whether a request with these headers is answered in gRPC.
    pub(crate) fn is_grpc(request: &HeaderMap, version: http::Version) -> bool {
        grpc::grpc_content_type(request, version).is_some()
    }
}

/// `{"error": …, "error_description": …}` with [`status`](AuthRejection::status)
/// and [`headers`](AuthRejection::headers).
///
/// Behind an [`OboLayer`](crate::OboLayer) with
/// [`render_refusals_with`](crate::OboLayer::render_refusals_with), the layer
/// answers this response again in the app's shape (the response carries the
/// rejection in its extensions for that).
impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        self.log();
        let mut response = self.http_response().map(axum::body::Body::from);
        response
            .extensions_mut()
            .insert(Refused(std::sync::Arc::new(self)));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strips_specials() {
        assert_eq!(quoted("a\"b\\c\nd é"), "a'b'c?d ?");
    }

    #[test]
    fn headers_follow_rfc6750() {
        let r = AuthRejection::MissingToken.into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
        let r = AuthRejection::InvalidToken(ValidationError::Expired).into_response();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\", error_description=\"the token has expired\""
        );
        let r = AuthRejection::Forbidden(Forbidden::Insufficient {
            scopes: vec!["access_as_user".into()],
            roles: vec![],
        })
        .into_response();
        assert_eq!(r.status(), 403);
        let h = r.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        assert!(h.starts_with("Bearer error=\"insufficient_scope\""), "{h}");
        assert!(h.ends_with("scope=\"access_as_user\""), "{h}");
        let r = AuthRejection::MissingLayer.into_response();
        assert_eq!(r.status(), 500);
    }

    #[test]
    fn claims_challenge_is_relayed_in_standard_base64() {
        let claims = r#"{"access_token":{"capolids":{"essential":true,"values":["c1"]}}}"#;
        let r = AuthRejection::Obo(OboError::InteractionRequired {
            claims: Some(claims.into()),
            authorization_uri: "https://login.microsoftonline.com/common/oauth2/authorize".into(),
        })
        .into_response();
        assert_eq!(r.status(), 401);
        let h = r.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(claims);
        assert_eq!(
            h,
            format!("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"insufficient_claims\", claims=\"{b64}\"")
        );
    }

    #[test]
    fn accessors_say_what_the_response_says() {
        let cases = [
            AuthRejection::MissingToken,
            AuthRejection::InvalidToken(ValidationError::Expired),
            AuthRejection::InvalidToken(ValidationError::KeysUnavailable(KeyError::Backoff)),
            AuthRejection::Obo(OboError::Unavailable {
                retry_after: Some(Duration::from_secs(7)),
            }),
            AuthRejection::Obo(OboError::ConsentRequired {
                scopes: vec!["https://graph.microsoft.com/Mail.Read".into()],
            }),
            AuthRejection::Downstream(DownstreamError::ForeignUrl),
        ];
        for r in cases {
            let (status, headers) = (r.status(), r.headers());
            let (code, description) = (r.error_code(), r.description());
            let (challenge, retry) = (r.www_authenticate(), r.retry_after());
            let resp = r.into_response();
            assert_eq!(resp.status(), status);
            for (name, value) in &headers {
                assert_eq!(resp.headers().get(name), Some(value), "{name}");
            }
            assert_eq!(resp.headers().get(WWW_AUTHENTICATE), challenge.as_ref());
            assert_eq!(
                resp.headers().get(RETRY_AFTER),
                retry.map(|d| HeaderValue::from(d.as_secs())).as_ref()
            );
            assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
            assert!(!code.is_empty() && !description.is_empty());
        }
    }

    #[test]
    fn a_downstream_error_answers_as_its_rejection() {
        let e = || DownstreamError::ClaimsChallenge {
            claims: "{}".into(),
            authorization_uri: "https://login.microsoftonline.com/common/oauth2/authorize".into(),
        };
        let (a, b) = (
            e().into_response(),
            AuthRejection::Downstream(e()).into_response(),
        );
        assert_eq!(a.status(), b.status());
        assert_eq!(a.headers(), b.headers());
    }

    #[test]
    fn misconfiguration_is_not_disclosed() {
        let r = AuthRejection::Obo(OboError::Misconfigured("AADSTS7000215 secret".into()));
        assert_eq!(r.status(), 500);
        assert!(!r.description().contains("AADSTS"));
    }
}
