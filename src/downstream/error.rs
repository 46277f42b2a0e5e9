//! Why a downstream call failed, how an error response is read (Graph's error JSON,
//! the claims challenge), and which status the API answers its own caller with.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::challenge::claims_challenge;

/// Why a call to a downstream API failed.
///
/// [`status`](Self::status) is the status *your* API should answer its caller with:
///
/// | variant | status |
/// |---|---|
/// | [`Api`](Self::Api) 404 / 403 | 404 / 403 |
/// | [`Api`](Self::Api), any other status | 502 |
/// | [`Throttled`](Self::Throttled) | 503 (relay [`retry_after`](Self::retry_after)) |
/// | [`Timeout`](Self::Timeout) | 504 |
/// | [`ClaimsChallenge`](Self::ClaimsChallenge) | 401 (relay [`claims`](Self::claims)) |
/// | [`Unauthorized`](Self::Unauthorized), [`Transport`](Self::Transport), [`Decode`](Self::Decode) | 502 |
/// | [`ForeignUrl`](Self::ForeignUrl), [`InvalidRequest`](Self::InvalidRequest), [`TooManyItems`](Self::TooManyItems) | 500 |
///
/// Messages never contain the access token or request URLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DownstreamError {
    /// The API answered an error status (not retried, or not retryable).
    #[error("the downstream API answered {status} {code}: {message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error code, e.g. Graph's `Request_ResourceNotFound`; the
        /// status's reason phrase when the body is not a JSON error.
        code: String,
        /// The API's error message.
        message: String,
        /// The API's request id (Graph's `innerError.request-id` or `request-id`
        /// header), for support cases.
        request_id: Option<String>,
    },
    /// 429, 503 or 504 until the retries or their time budget ran out.
    #[error("the downstream API is throttling or unavailable")]
    Throttled {
        /// The API's last `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// 401 with a claims challenge (Continuous Access Evaluation, Conditional
    /// Access): the user must sign in again with these claims.
    #[error("the downstream API requires the user to sign in again (claims challenge)")]
    ClaimsChallenge {
        /// The claims (JSON), decoded from the challenge's base64.
        claims: String,
    },
    /// 401 without a claims challenge: the API refused this API's token.
    #[error("the downstream API refused the access token")]
    Unauthorized,
    /// The API did not answer in time.
    #[error("the downstream API did not answer in time")]
    Timeout,
    /// The API could not be reached, or the connection broke.
    #[error("the downstream API could not be reached: {0}")]
    Transport(String),
    /// The API answered something other than the expected JSON.
    #[error("the downstream API sent an unexpected response: {0}")]
    Decode(String),
    /// An absolute URL (a path argument or an `@odata.nextLink`) points outside the
    /// base URL's origin; the token is never sent there.
    #[error("refused to send the access token outside the downstream API's origin")]
    ForeignUrl,
    /// The request could not be built: an invalid base URL or path, a body that
    /// cannot be serialized, or an invalid batch.
    #[error("invalid downstream request: {0}")]
    InvalidRequest(String),
    /// [`collect_all`](super::DownstreamClient::collect_all) found more items than allowed.
    #[error("the collection has more than {max_items} items")]
    TooManyItems {
        /// The limit that was exceeded.
        max_items: usize,
    },
}

impl DownstreamError {
    /// The status your API should answer its caller with (see the table above).
    pub fn status(&self) -> StatusCode {
        match self {
            DownstreamError::Api { status: 404, .. } => StatusCode::NOT_FOUND,
            DownstreamError::Api { status: 403, .. } => StatusCode::FORBIDDEN,
            DownstreamError::Api { .. } => StatusCode::BAD_GATEWAY,
            DownstreamError::Throttled { .. } => StatusCode::SERVICE_UNAVAILABLE,
            DownstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            DownstreamError::ClaimsChallenge { .. } => StatusCode::UNAUTHORIZED,
            DownstreamError::Unauthorized
            | DownstreamError::Transport(_)
            | DownstreamError::Decode(_) => StatusCode::BAD_GATEWAY,
            DownstreamError::ForeignUrl
            | DownstreamError::InvalidRequest(_)
            | DownstreamError::TooManyItems { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long the caller should wait before retrying, when throttled.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DownstreamError::Throttled { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// The claims (JSON) of a claims challenge, to relay to the caller.
    pub fn claims(&self) -> Option<&str> {
        match self {
            DownstreamError::ClaimsChallenge { claims } => Some(claims),
            _ => None,
        }
    }
}

/// The error for a non-success, non-retried response.
///
/// `www_authenticate` are the response's `WWW-Authenticate` values and
/// `request_id_header` its `request-id` header.
pub(crate) fn from_response<'a>(
    status: u16,
    www_authenticate: impl IntoIterator<Item = &'a str>,
    request_id_header: Option<&str>,
    body: &[u8],
) -> DownstreamError {
    if status == 401 {
        return match claims_challenge(www_authenticate) {
            Some(claims) => DownstreamError::ClaimsChallenge { claims },
            None => {
                let api = api_error(status, request_id_header, body);
                if let DownstreamError::Api {
                    code, request_id, ..
                } = &api
                {
                    tracing::warn!(
                        %code,
                        request_id = request_id.as_deref().unwrap_or(""),
                        "the downstream API refused the access token"
                    );
                }
                DownstreamError::Unauthorized
            }
        };
    }
    api_error(status, request_id_header, body)
}

/// Reads an error body: Graph's `{"error":{"code","message","innerError":{…}}}`, an
/// OAuth `{"error","error_description"}`, or anything else (never panics).
pub(crate) fn api_error(
    status: u16,
    request_id_header: Option<&str>,
    body: &[u8],
) -> DownstreamError {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let error = json.as_ref().and_then(|j| j.get("error"));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let (code, message, inner_id) = match error {
        Some(Value::Object(e)) => {
            let inner = e.get("innerError").or_else(|| e.get("innererror"));
            (
                text(e.get("code")),
                text(e.get("message")),
                text(inner.and_then(|i| i.get("request-id"))),
            )
        }
        Some(Value::String(code)) => (
            Some(code.clone()),
            text(json.as_ref().and_then(|j| j.get("error_description"))),
            None,
        ),
        _ => (None, None, None),
    };
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    DownstreamError::Api {
        status,
        code: code
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| reason.to_owned()),
        message: message.map(|m| shorten(&m)).unwrap_or_else(|| {
            format!("the downstream API answered {status} without a JSON error body")
        }),
        request_id: inner_id.or_else(|| request_id_header.map(str::to_owned)),
    }
}

/// At most 500 characters of an API's message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(500) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: &str) -> DownstreamError {
        from_response(status, [], Some("hdr-id"), body.as_bytes())
    }

    #[test]
    fn graph_error_json() {
        let e = api(
            404,
            r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'x' does not exist.","innerError":{"date":"2024-01-01T00:00:00","request-id":"r-1","client-request-id":"c-1"}}}"#,
        );
        assert_eq!(
            e,
            DownstreamError::Api {
                status: 404,
                code: "Request_ResourceNotFound".into(),
                message: "Resource 'x' does not exist.".into(),
                request_id: Some("r-1".into()),
            }
        );
        assert_eq!(e.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn fallbacks_never_panic() {
        let e = api(500, "<html>oops</html>");
        let DownstreamError::Api {
            code,
            message,
            request_id,
            ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(code, "Internal Server Error");
        assert!(message.contains("without a JSON error body"));
        assert_eq!(request_id.as_deref(), Some("hdr-id"));
        assert_eq!(e.status(), StatusCode::BAD_GATEWAY);

        let e = api(
            400,
            r#"{"error":"invalid_request","error_description":"bad"}"#,
        );
        assert!(
            matches!(&e, DownstreamError::Api { code, message, .. } if code == "invalid_request" && message == "bad")
        );
        for body in [
            "",
            "null",
            "[]",
            r#"{"error":5}"#,
            r#"{"error":{"code":7}}"#,
            "\u{0}",
        ] {
            let e = api(418, body);
            assert!(
                matches!(&e, DownstreamError::Api { status: 418, .. }),
                "{e:?}"
            );
        }
        let e = from_response(799, [], None, b"");
        assert!(matches!(&e, DownstreamError::Api { code, .. } if code == "Unknown"));
        let long = format!(
            r#"{{"error":{{"code":"x","message":"{}"}}}}"#,
            "é".repeat(2000)
        );
        let DownstreamError::Api { message, .. } = api(400, &long) else {
            panic!()
        };
        assert!(message.chars().count() <= 501);
    }

    #[test]
    fn unauthorized_or_claims_challenge() {
        assert_eq!(
            from_response(401, ["Bearer realm=\"\""], None, b"{}"),
            DownstreamError::Unauthorized
        );
        let h = "Bearer realm=\"\", error=\"insufficient_claims\", claims=\"eyJhIjoxfQ==\"";
        let e = from_response(401, [h], None, b"{}");
        assert_eq!(e.claims(), Some(r#"{"a":1}"#));
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        // Only 401 carries a claims challenge.
        assert!(matches!(
            from_response(403, [h], None, b"{}"),
            DownstreamError::Api { status: 403, .. }
        ));
    }

    #[test]
    fn status_mapping() {
        let api = |status| DownstreamError::Api {
            status,
            code: String::new(),
            message: String::new(),
            request_id: None,
        };
        let cases = [
            (api(404), 404),
            (api(403), 403),
            (api(400), 502),
            (api(409), 502),
            (api(500), 502),
            (DownstreamError::Throttled { retry_after: None }, 503),
            (DownstreamError::Timeout, 504),
            (
                DownstreamError::ClaimsChallenge {
                    claims: "{}".into(),
                },
                401,
            ),
            (DownstreamError::Unauthorized, 502),
            (DownstreamError::Transport("x".into()), 502),
            (DownstreamError::Decode("x".into()), 502),
            (DownstreamError::ForeignUrl, 500),
            (DownstreamError::InvalidRequest("x".into()), 500),
            (DownstreamError::TooManyItems { max_items: 1 }, 500),
        ];
        for (e, status) in cases {
            assert_eq!(e.status().as_u16(), status, "{e:?}");
        }
        let t = DownstreamError::Throttled {
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(t.retry_after(), Some(Duration::from_secs(3)));
    }
}
