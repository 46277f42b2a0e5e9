//! How the stand-in answers: JSON with Entra's headers, Entra's error body, injected faults.

use std::time::SystemTime;

use axum::response::{IntoResponse, Response};
use http::header::{HeaderMap, HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use http::StatusCode;
use serde_json::{json, Value};

use super::ids::{random_guid, unix_seconds, CivilTime};

pub(super) const JSON_UTF8: &str = "application/json; charset=utf-8";
const CLIENT_REQUEST_ID: &str = "client-request-id";
const X_MS_REQUEST_ID: &str = "x-ms-request-id";

/// The ids Entra attaches to every answer: its own trace id (`x-ms-request-id`) and the
/// correlation id, which is the caller's `client-request-id` when it sent one (MSAL does).
#[derive(Debug, Clone)]
pub(super) struct RequestIds {
    pub(super) trace_id: String,
    pub(super) correlation_id: String,
    echo: Option<HeaderValue>,
}

impl RequestIds {
    /// Ids for a request with these headers.
    pub(super) fn from_headers(headers: &HeaderMap) -> Self {
        let echo = headers.get(CLIENT_REQUEST_ID).cloned();
        let correlation_id = echo
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map_or_else(random_guid, str::to_owned);
        RequestIds {
            trace_id: random_guid(),
            correlation_id,
            echo,
        }
    }

    fn apply(&self, headers: &mut HeaderMap) {
        if let Ok(trace) = HeaderValue::from_str(&self.trace_id) {
            headers.insert(HeaderName::from_static(X_MS_REQUEST_ID), trace);
        }
        if let Some(echo) = &self.echo {
            headers.insert(HeaderName::from_static(CLIENT_REQUEST_ID), echo.clone());
        }
    }
}

/// How long a successful answer may be cached by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caching {
    /// Metadata and keys: `max-age=86400, private`, as Entra sends.
    Day,
    /// Errors and tokens: `no-store, no-cache`.
    NoStore,
}

/// A JSON answer with Entra's content type and headers.
pub(super) fn json(
    status: StatusCode,
    body: &Value,
    ids: &RequestIds,
    caching: Caching,
) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    match caching {
        Caching::Day => {
            headers.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("max-age=86400, private"),
            );
            headers.insert(
                http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        Caching::NoStore => {
            headers.insert(
                CACHE_CONTROL,
                HeaderValue::from_static("no-store, no-cache"),
            );
            headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        }
    }
    ids.apply(headers);
    response
}

/// An error in Entra's JSON shape:
/// `{error, error_description: "AADSTSnnnnn: …", error_codes, timestamp, trace_id,
/// correlation_id, error_uri}`.
#[derive(Debug, Clone)]
pub(super) struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
    suberror: Option<&'static str>,
    claims: Option<String>,
}

impl EntraError {
    /// An error with HTTP `status`, OAuth `error` code, AADSTS `code` and message (without
    /// the `AADSTSnnnnn:` prefix, which is added).
    pub(super) fn new(
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: impl Into<String>,
    ) -> Self {
        EntraError {
            status,
            error,
            code,
            message: message.into(),
            suberror: None,
            claims: None,
        }
    }

    /// Adds `suberror` (e.g. `consent_required`).
    pub(super) fn with_suberror(mut self, suberror: &'static str) -> Self {
        self.suberror = Some(suberror);
        self
    }

    /// Adds `claims`, a claims challenge: a JSON document sent as a string.
    pub(super) fn with_claims(mut self, claims: String) -> Self {
        self.claims = Some(claims);
        self
    }

    /// AADSTS90002, the answer for a tenant segment that names no tenant.
    pub(super) fn invalid_tenant(tenant: &str) -> Self {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID \
                 and are signing into the correct cloud. Check with your subscription \
                 administrator, this may happen if there are no active subscriptions for the \
                 tenant."
            ),
        )
    }

    /// The JSON body, as Entra words it; `authority` is the advertised host (for `error_uri`).
    /// The description's trailer lines are separated by CRLF, as Entra separates them.
    pub(super) fn body(&self, authority: &str, ids: &RequestIds, now: SystemTime) -> Value {
        let timestamp = CivilTime::from_unix(unix_seconds(now)).entra_timestamp();
        let mut body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
                self.code, self.message, ids.trace_id, ids.correlation_id, timestamp
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": ids.trace_id,
            "correlation_id": ids.correlation_id,
            "error_uri": format!("{authority}/error?code={}", self.code),
        });
        if let Some(map) = body.as_object_mut() {
            if let Some(suberror) = self.suberror {
                map.insert("suberror".into(), suberror.into());
            }
            if let Some(claims) = &self.claims {
                map.insert("claims".into(), claims.clone().into());
            }
        }
        body
    }

    /// The full answer.
    pub(super) fn into_response(self, authority: &str, ids: &RequestIds) -> Response {
        let body = self.body(authority, ids, SystemTime::now());
        json(self.status, &body, ids, Caching::NoStore)
    }
}

/// An injected failure: `status` with a small HTML page, like a proxy or front door would send.
pub(super) fn html_error(status: u16, ids: &RequestIds) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\
         <body><h1>{code} {reason}</h1><p>The service is unavailable (injected by the Entra \
         stand-in).</p></body></html>\n",
        code = status.as_u16()
    );
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    ids.apply(headers);
    response
}

/// An answer with an arbitrary body and content type (injected faults), with Entra's ids and
/// `no-store` caching headers.
pub(super) fn raw(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    ids: &RequestIds,
) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    ids.apply(headers);
    response
}

/// An injected `200 OK` whose body is not a key set: a JSON document cut off mid-way, as a
/// truncated transfer would leave it.
pub(super) fn garbage(ids: &RequestIds) -> Response {
    let mut response = (
        StatusCode::OK,
        r#"{"keys":[{"kty":"RSA","use":"sig","kid":"#,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    ids.apply(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_entra_shape() {
        let mut headers = HeaderMap::new();
        headers.insert(CLIENT_REQUEST_ID, HeaderValue::from_static("abc"));
        let ids = RequestIds::from_headers(&headers);
        assert_eq!(ids.correlation_id, "abc");
        let body = EntraError::invalid_tenant("nope").body(
            "https://login.microsoftonline.com",
            &ids,
            SystemTime::UNIX_EPOCH,
        );
        assert_eq!(body["error"], "invalid_tenant");
        assert_eq!(body["error_codes"], json!([90002]));
        assert_eq!(body["timestamp"], "1970-01-01 00:00:00Z");
        assert_eq!(body["correlation_id"], "abc");
        assert_eq!(
            body["error_uri"],
            "https://login.microsoftonline.com/error?code=90002"
        );
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(description.starts_with("AADSTS90002: Tenant 'nope' not found. "));
        let trailer = format!(
            ".\r\nTrace ID: {}\r\nCorrelation ID: abc\r\nTimestamp: 1970-01-01 00:00:00Z",
            ids.trace_id
        );
        assert!(description.ends_with(&trailer));
        assert!(body.get("suberror").is_none() && body.get("claims").is_none());
    }
}
