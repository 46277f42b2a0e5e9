//! Every way a request can be refused, and the one place that maps them to HTTP
//! (RFC 6750 for bearer-token errors).

use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};

use crate::policy::Forbidden;
use crate::validate::ValidationError;

/// Why the layer or an extractor refused a request.
///
/// | variant | status | `WWW-Authenticate` |
/// |---|---|---|
/// | [`MissingToken`](Self::MissingToken) | 401 | `Bearer` |
/// | [`InvalidRequest`](Self::InvalidRequest) | 400 | `Bearer error="invalid_request"` |
/// | [`InvalidToken`](Self::InvalidToken) | 401 (503 if keys are unavailable) | `Bearer error="invalid_token"` |
/// | [`Forbidden`](Self::Forbidden) | 403 | `Bearer error="insufficient_scope"` |
/// | [`MissingLayer`](Self::MissingLayer) | 500 | — |
///
/// Bodies are JSON `{"error": …, "error_description": …}` and never contain the token.
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
    /// An extractor ran on a route without `OboLayer`.
    #[error("the request was not authenticated: did you add `OboLayer` in front of this route?")]
    MissingLayer,
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
            AuthRejection::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
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
            AuthRejection::MissingLayer => "server_error",
        }
    }

    fn www_authenticate(&self) -> Option<String> {
        let description = quoted(&self.to_string());
        match self {
            AuthRejection::MissingToken => Some("Bearer".to_owned()),
            AuthRejection::InvalidRequest(_) => Some(format!(
                "Bearer error=\"invalid_request\", error_description=\"{description}\""
            )),
            AuthRejection::InvalidToken(ValidationError::KeysUnavailable(_)) => None,
            AuthRejection::InvalidToken(_) => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{description}\""
            )),
            AuthRejection::Forbidden(f) => {
                let scope = match f {
                    Forbidden::Insufficient { scopes, .. } if !scopes.is_empty() => {
                        format!(", scope=\"{}\"", quoted(&scopes.join(" ")))
                    }
                    _ => String::new(),
                };
                Some(format!(
                    "Bearer error=\"insufficient_scope\", error_description=\"{description}\"{scope}"
                ))
            }
            AuthRejection::MissingLayer => None,
        }
    }
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

/// A JSON error response with the given extra headers.
pub(crate) fn json_error(
    status: StatusCode,
    error: &str,
    description: &str,
    www_authenticate: Option<&str>,
) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let mut resp = (status, axum::Json(body)).into_response();
    let headers = resp.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = www_authenticate.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(WWW_AUTHENTICATE, v);
    }
    resp
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let mut resp = json_error(
            self.status(),
            self.error_code(),
            &self.to_string(),
            self.www_authenticate().as_deref(),
        );
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("10"));
        }
        resp
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
}
