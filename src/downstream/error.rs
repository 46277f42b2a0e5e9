//! Why a downstream call failed, how an error response is read (Graph's error JSON,
//! the claims challenge), and which status the API answers its own caller with.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::challenge::claims_challenge;

/// Why a call to a downstream API failed.
///
/// [`status`](Self::status) is the status *your* API should answer its caller with,
/// and the response (`impl IntoResponse`: JSON `{"error", "error_description"}`,
/// `Cache-Control: no-store`) is:
///
/// | variant | status | `error` | extra |
/// |---|---|---|---|
/// | [`Api`](Self::Api) 404 | 404 | `not_found` | |
/// | [`Api`](Self::Api) 403 | 403 | `forbidden` | |
/// | [`Api`](Self::Api), any other status | 502 | `bad_gateway` | |
/// | [`ClaimsChallenge`](Self::ClaimsChallenge) | 401 | `insufficient_claims` | `WWW-Authenticate: Bearer realm="", authorization_uri="{authority}/common/oauth2/authorize", error="insufficient_claims", claims="<base64>"` |
/// | [`Unauthorized`](Self::Unauthorized) (401 without a challenge, or with a claims challenge refused as too large or not of Entra's shape) | 502 | `bad_gateway` | |
/// | [`Throttled`](Self::Throttled) (429, 503, 504 after the retries) | 503 | `temporarily_unavailable` | `Retry-After` (the API's, else 5 s) |
/// | [`Timeout`](Self::Timeout) | 504 | `gateway_timeout` | |
/// | [`Transport`](Self::Transport), [`Decode`](Self::Decode), [`BodyTooLarge`](Self::BodyTooLarge), [`PagingLoop`](Self::PagingLoop), [`TooManyPages`](Self::TooManyPages) | 502 | `bad_gateway` | |
/// | [`ForeignUrl`](Self::ForeignUrl), [`InvalidRequest`](Self::InvalidRequest), [`TooManyItems`](Self::TooManyItems) | 500 | `server_error` | |
///
/// The response's `error_description` is a fixed sentence per variant; for
/// [`Api`](Self::Api) it may add the API's error `code` when that is a plain
/// identifier (`[A-Za-z0-9_.-]{1,64}`, no `eyJ`). The API's message, transport causes
/// and local details go to the log (`debug`/`warn`), never to the caller: a downstream
/// may echo request data, even the token it was sent, in its messages.
///
/// Messages never contain request URLs; a JWT-looking run (`eyJ…`) in an API's code or
/// message is replaced by `[redacted]` when the error is read.
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
        /// The API's error message (for logs: it may echo request data).
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
        /// Where the caller signs in again: `{authority}/common/oauth2/authorize` for
        /// the client's authority (see [`DownstreamClient::with_authority`](super::DownstreamClient::with_authority)).
        authorization_uri: String,
    },
    /// 401 without a claims challenge, or with one that is neither answered nor
    /// relayed (over 4 KB, or not `{"access_token":{…claim requests…}}`; the
    /// reason is logged): the API refused this API's token.
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
    /// The API's response body was larger than the client accepts
    /// ([`DownstreamClient::with_max_body_bytes`](super::DownstreamClient::with_max_body_bytes));
    /// reading stopped there.
    #[error("the downstream API's response is larger than {max_bytes} bytes")]
    BodyTooLarge {
        /// The limit that was exceeded.
        max_bytes: usize,
    },
    /// An `@odata.nextLink` pointed to a page already fetched by this stream.
    #[error("the downstream API's @odata.nextLink points to a page already fetched")]
    PagingLoop,
    /// A paged collection had more pages than the client follows
    /// ([`DownstreamClient::with_max_pages`](super::DownstreamClient::with_max_pages)).
    #[error("the collection has more than {max_pages} pages")]
    TooManyPages {
        /// The limit that was exceeded.
        max_pages: usize,
    },
    /// An absolute URL (a path argument or an `@odata.nextLink`) points outside the
    /// base URL's origin; the token is never sent there.
    #[error("refused to send the access token outside the downstream API's origin")]
    ForeignUrl,
    /// The request could not be built: an invalid base URL or path (including a
    /// relative path leaving the base path with `..`), a body that cannot be
    /// serialized, or an invalid batch.
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
            | DownstreamError::Decode(_)
            | DownstreamError::BodyTooLarge { .. }
            | DownstreamError::PagingLoop
            | DownstreamError::TooManyPages { .. } => StatusCode::BAD_GATEWAY,
            DownstreamError::ForeignUrl
            | DownstreamError::InvalidRequest(_)
            | DownstreamError::TooManyItems { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OAuth-style `error` code of the response body (see the table above).
    pub fn error_code(&self) -> &'static str {
        match self.status().as_u16() {
            401 => "insufficient_claims",
            403 => "forbidden",
            404 => "not_found",
            503 => "temporarily_unavailable",
            504 => "gateway_timeout",
            500 => "server_error",
            _ => "bad_gateway",
        }
    }

    /// The response's `error_description`: a fixed sentence, plus the API's error
    /// code when it is a plain identifier. Never the API's message or local details.
    pub(crate) fn public_description(&self) -> String {
        let fixed = match self {
            DownstreamError::Api { status: 404, .. } => "the downstream API found no such resource",
            DownstreamError::Api { status: 403, .. } => {
                "the downstream API refused access to the resource"
            }
            DownstreamError::Api { .. } => "the downstream API answered an error",
            DownstreamError::Throttled { .. } => {
                "the downstream API is throttling or unavailable; retry later"
            }
            DownstreamError::ClaimsChallenge { .. } => {
                "the downstream API requires the user to sign in again"
            }
            DownstreamError::Unauthorized => "the downstream API refused the access token",
            DownstreamError::Timeout => "the downstream API did not answer in time",
            DownstreamError::Transport(_) => "the downstream API could not be reached",
            DownstreamError::Decode(_) => "the downstream API sent an unexpected response",
            DownstreamError::BodyTooLarge { .. } => "the downstream API's response is too large",
            DownstreamError::PagingLoop => "the downstream API's paging links loop",
            DownstreamError::TooManyPages { .. } => {
                "the downstream API's collection has too many pages"
            }
            DownstreamError::ForeignUrl
            | DownstreamError::InvalidRequest(_)
            | DownstreamError::TooManyItems { .. } => "the server could not complete the request",
        };
        match self {
            DownstreamError::Api { status, code, .. } => match safe_code(code) {
                Some(code) => format!("{fixed} ({status} {code})"),
                None => format!("{fixed} ({status})"),
            },
            _ => fixed.to_owned(),
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
            DownstreamError::ClaimsChallenge { claims, .. } => Some(claims),
            _ => None,
        }
    }

    /// Where the caller signs in again after a claims challenge.
    pub fn authorization_uri(&self) -> Option<&str> {
        match self {
            DownstreamError::ClaimsChallenge {
                authorization_uri, ..
            } => Some(authorization_uri),
            _ => None,
        }
    }
}

/// `code` if it may be shown to the caller: 1 to 64 of `[A-Za-z0-9_.-]`, and not the
/// start of a JWT.
pub(crate) fn safe_code(code: &str) -> Option<&str> {
    let plain = (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    (plain && !code.contains("eyJ")).then_some(code)
}

/// `s` with every JWT-looking run (`eyJ` and the base64url and dots after it)
/// replaced by `[redacted]`: APIs may echo the token they were sent.
pub(crate) fn redact_tokens(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("eyJ") {
        out.push_str(&rest[..at]);
        out.push_str("[redacted]");
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The error for a non-success, non-retried response.
///
/// `www_authenticate` are the response's `WWW-Authenticate` values and
/// `request_id_header` its `request-id` header; a claims challenge sends the caller to
/// `authorization_uri`.
pub(crate) fn from_response<'a>(
    status: u16,
    www_authenticate: impl IntoIterator<Item = &'a str>,
    request_id_header: Option<&str>,
    body: &[u8],
    authorization_uri: &str,
) -> DownstreamError {
    if status == 401 {
        return match claims_challenge(www_authenticate) {
            Some(Ok(claims)) => DownstreamError::ClaimsChallenge {
                claims,
                authorization_uri: authorization_uri.to_owned(),
            },
            Some(Err(why)) => {
                // Neither answered nor relayed: the caller would hand it to Entra.
                tracing::warn!(
                    reason = %why,
                    "the downstream API's claims challenge is refused; answered as a refused token"
                );
                DownstreamError::Unauthorized
            }
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
            .map(|c| redact_tokens(&shorten(&c)))
            .unwrap_or_else(|| reason.to_owned()),
        message: message
            .map(|m| redact_tokens(&shorten(&m)))
            .unwrap_or_else(|| {
                format!("the downstream API answered {status} without a JSON error body")
            }),
        request_id: inner_id
            .or_else(|| request_id_header.map(str::to_owned))
            .map(|id| redact_tokens(&shorten(&id))),
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

    const AUTHORIZE: &str = "https://login.microsoftonline.us/common/oauth2/authorize";

    fn api(status: u16, body: &str) -> DownstreamError {
        from_response(status, [], Some("hdr-id"), body.as_bytes(), AUTHORIZE)
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
        let e = from_response(799, [], None, b"", AUTHORIZE);
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
            from_response(401, ["Bearer realm=\"\""], None, b"{}", AUTHORIZE),
            DownstreamError::Unauthorized
        );
        let claims = r#"{"access_token":{"nbf":{"essential":true,"value":"1702682181"}}}"#;
        let h = format!(
            "Bearer realm=\"\", error=\"insufficient_claims\", claims=\"{}\"",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, claims)
        );
        let h = h.as_str();
        let e = from_response(401, [h], None, b"{}", AUTHORIZE);
        assert_eq!(e.claims(), Some(claims));
        assert_eq!(e.authorization_uri(), Some(AUTHORIZE));
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        // A challenge that is not Entra's shape is neither relayed nor answered.
        let odd = "Bearer realm=\"\", error=\"insufficient_claims\", claims=\"eyJhIjoxfQ==\"";
        assert_eq!(
            from_response(401, [odd], None, b"{}", AUTHORIZE),
            DownstreamError::Unauthorized
        );
        // Only 401 carries a claims challenge.
        assert!(matches!(
            from_response(403, [h], None, b"{}", AUTHORIZE),
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
                    authorization_uri: AUTHORIZE.into(),
                },
                401,
            ),
            (DownstreamError::BodyTooLarge { max_bytes: 1 }, 502),
            (DownstreamError::PagingLoop, 502),
            (DownstreamError::TooManyPages { max_pages: 1 }, 502),
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

    #[test]
    fn only_plain_codes_are_shown() {
        for ok in [
            "Request_ResourceNotFound",
            "invalid_request",
            "a.b-c_9",
            &"x".repeat(64),
        ] {
            assert_eq!(safe_code(ok), Some(ok), "{ok}");
        }
        for bad in [
            "",
            "has space",
            "quote\"",
            "eyJhbGciOiJSUzI1NiJ9",
            "x-eyJhbGci",
            "ünïcode",
            "a\nb",
            &"x".repeat(65),
        ] {
            assert_eq!(safe_code(bad), None, "{bad}");
        }
        let e = api(400, r#"{"error":{"code":"Bad Code \"x\"","message":"m"}}"#);
        assert_eq!(
            e.public_description(),
            "the downstream API answered an error (400)"
        );
        let e = api(
            404,
            r#"{"error":{"code":"Request_ResourceNotFound","message":"secret"}}"#,
        );
        assert_eq!(
            e.public_description(),
            "the downstream API found no such resource (404 Request_ResourceNotFound)"
        );
        let e = DownstreamError::Transport("dns error: secret.internal".into());
        assert!(!e.public_description().contains("secret"));
        let e = DownstreamError::InvalidRequest("invalid path: /secret".into());
        assert!(!e.public_description().contains("secret"));
    }

    #[test]
    fn echoed_tokens_are_redacted() {
        assert_eq!(
            redact_tokens("token eyJhbGci.eyJzdWIi.c2ln-_x was bad; eyJ"),
            "token [redacted] was bad; [redacted]"
        );
        assert_eq!(redact_tokens("nothing here"), "nothing here");
        let e = api(
            401 + 1,
            r#"{"error":{"code":"eyJcode","message":"Bearer eyJhbGci.eyJzdWIi.sig is invalid","innerError":{"request-id":"eyJx"}}}"#,
        );
        assert!(!format!("{e} {e:?}").contains("eyJ"), "{e:?}");
    }
}
