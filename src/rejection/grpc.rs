//! The gRPC rendering of [`AuthRejection`]: a Trailers-Only answer for gRPC
//! requests (`content-type: application/grpc[+…]` over HTTP/2 or later, or
//! grpc-web over any version), and, with the `tonic` feature, the conversions
//! into `tonic::Status`.
//!
//! A gRPC client reads the outcome of a call from `grpc-status`, not from the HTTP
//! status (gRPC over HTTP/2 answers 200 even for errors). A refusal is therefore
//! answered as the gRPC spec's *Trailers-Only* response: one header block with
//! `:status 200`, `content-type`, `grpc-status`, the percent-encoded
//! `grpc-message` (the rejection's [`description`](AuthRejection::description),
//! which never holds a token), and the HTTP answer's own headers (the plain RFC
//! 6750 `WWW-Authenticate` challenge, `Retry-After`, `Cache-Control`), and no
//! body. RFC 9728's `resource_metadata` is an HTTP mechanism: it is never added
//! to a gRPC answer, even with a resource URL.
//! The code is derived from the HTTP status of the one HTTP mapping
//! ([`AuthRejection::status`]), so the two protocols cannot drift apart.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::AuthRejection;

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// gRPC's canonical status codes used here (`google.rpc.Code`).
mod code {
    pub(super) const UNKNOWN: i32 = 2;
    pub(super) const NOT_FOUND: i32 = 5;
    pub(super) const PERMISSION_DENIED: i32 = 7;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const INTERNAL: i32 = 13;
    pub(super) const UNAVAILABLE: i32 = 14;
    pub(super) const UNAUTHENTICATED: i32 = 16;
}

/// The `content-type` of the answer to a gRPC request, or `None` for a request
/// that is not one (answered in HTTP).
///
/// A gRPC request has `content-type: application/grpc[+suffix]` and arrives over
/// HTTP/2 or later (gRPC runs on nothing else; over HTTP/1.x that `content-type`
/// is answered in HTTP). A grpc-web request (`application/grpc-web[+suffix]`,
/// `application/grpc-web-text[+suffix]`) may arrive over any version. The answer
/// uses the normalized form of the request's type: lower case, its `+proto`,
/// `+json` or custom suffix kept, parameters dropped.
pub(crate) fn grpc_content_type(request: &HeaderMap, version: Version) -> Option<HeaderValue> {
    let value = request.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    let (base, suffix) = match essence.split_once('+') {
        Some((base, suffix)) => (base, Some(suffix)),
        None => (essence.as_str(), None),
    };
    let http2 = version >= Version::HTTP_2;
    let allowed = match base {
        "application/grpc" => http2,
        "application/grpc-web" | "application/grpc-web-text" => true,
        _ => false,
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$&-^_.".contains(&c))
    };
    if !allowed || suffix.is_some_and(|s| !token(s)) {
        return None;
    }
    HeaderValue::from_str(&essence).ok()
}

impl AuthRejection {
    /// The gRPC status code (`grpc-status`) this rejection is answered with to a
    /// gRPC client, derived from [`status`](Self::status):
    ///
    /// | HTTP status | gRPC status |
    /// |---|---|
    /// | 401 (no, invalid or expired token; claims challenge) | 16 `UNAUTHENTICATED` |
    /// | 400 (malformed `Authorization` header) | 16 `UNAUTHENTICATED` |
    /// | 403 (scope, role, policy, consent) | 7 `PERMISSION_DENIED` |
    /// | 404 (a downstream API found no such resource) | 5 `NOT_FOUND` |
    /// | 500 (this API's misconfiguration, missing layer) | 13 `INTERNAL` |
    /// | 502, 503, 504 (keys, Entra or a downstream API unavailable) | 14 `UNAVAILABLE` |
    /// | anything else | 2 `UNKNOWN` |
    ///
    /// This follows gRPC's "HTTP to gRPC Status Code Mapping" except for 400 and
    /// 404: that table describes what a client should make of an HTTP error from a
    /// proxy (400 → `INTERNAL`, 404 → `UNIMPLEMENTED`), whereas here a 400 is the
    /// caller's malformed credentials and a 404 a missing downstream resource.
    pub fn grpc_code(&self) -> i32 {
        match self.status() {
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST => code::UNAUTHENTICATED,
            StatusCode::FORBIDDEN => code::PERMISSION_DENIED,
            StatusCode::NOT_FOUND => code::NOT_FOUND,
            StatusCode::INTERNAL_SERVER_ERROR => code::INTERNAL,
            StatusCode::TOO_MANY_REQUESTS => code::RESOURCE_EXHAUSTED,
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => code::UNAVAILABLE,
            _ => code::UNKNOWN,
        }
    }

    /// The Trailers-Only answer to a gRPC request (see the [module docs](self)):
    /// HTTP 200 with `content_type` (the normalized form of the request's), and no
    /// body.
    pub(crate) fn grpc_response(&self, content_type: HeaderValue) -> Response<Bytes> {
        let mut response = Response::new(Bytes::new());
        let headers = response.headers_mut();
        *headers = self.headers();
        headers.insert(CONTENT_TYPE, content_type);
        headers.insert(GRPC_STATUS, HeaderValue::from(self.grpc_code()));
        if let Ok(message) = HeaderValue::try_from(percent_encode(&self.description())) {
            headers.insert(GRPC_MESSAGE, message);
        }
        response
    }
}

/// `grpc-message` encoding (gRPC over HTTP/2, "Percent-Encoded"): the UTF-8 bytes,
/// each outside printable ASCII (`%x20-%x7E`), and `%` itself, written `%XX`:
/// `percent-encoding`'s controls set plus `%` (non-ASCII is always encoded).
fn percent_encode(message: &str) -> String {
    const GRPC_MESSAGE_SET: &AsciiSet = &CONTROLS.add(b'%');
    utf8_percent_encode(message, GRPC_MESSAGE_SET).to_string()
}

#[cfg(feature = "tonic")]
mod tonic_status {
    use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
    use tonic::metadata::MetadataMap;
    use tonic::{Code, Status};

    use super::AuthRejection;
    use crate::downstream::DownstreamError;
    use crate::exchange::OboError;

    /// The rejection as a gRPC status (feature `tonic`): the code of
    /// [`AuthRejection::grpc_code`], the [`description`](AuthRejection::description)
    /// as message, and the `www-authenticate` challenge and `retry-after` in the
    /// metadata, as the layer's own Trailers-Only answer carries them. Return it
    /// from a tonic handler with `?`.
    impl From<AuthRejection> for Status {
        fn from(rejection: AuthRejection) -> Self {
            rejection.log();
            let mut headers = http::HeaderMap::new();
            if let Some(challenge) = rejection.www_authenticate() {
                headers.insert(WWW_AUTHENTICATE, challenge);
            }
            if let Some(secs) = rejection.retry_after_secs() {
                headers.insert(RETRY_AFTER, http::HeaderValue::from(secs));
            }
            Status::with_metadata(
                Code::from(rejection.grpc_code()),
                rejection.description(),
                MetadataMap::from_headers(headers),
            )
        }
    }

    /// A failed On-Behalf-Of exchange as a gRPC status, as [`AuthRejection::Obo`].
    impl From<OboError> for Status {
        fn from(e: OboError) -> Self {
            AuthRejection::Obo(e).into()
        }
    }

    /// A failed downstream call as a gRPC status, as [`AuthRejection::Downstream`]
    /// (the details are logged, not sent).
    impl From<DownstreamError> for Status {
        fn from(e: DownstreamError) -> Self {
            AuthRejection::Downstream(e).into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::DownstreamError;
    use crate::rejection::{Forbidden, KeyError, OboError, ValidationError};
    use http::header::{CACHE_CONTROL, RETRY_AFTER, WWW_AUTHENTICATE};
    use http::Version;

    fn content_type(value: &'static str, version: Version) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(value));
        grpc_content_type(&h, version).map(|v| v.to_str().unwrap().to_owned())
    }

    /// gRPC requests are told by their `content-type`, answered with its
    /// normalized form (lower case, the `+…` suffix kept, no parameters).
    #[test]
    fn grpc_requests_are_told_by_their_content_type() {
        for (given, answered) in [
            ("application/grpc", "application/grpc"),
            ("application/grpc+proto", "application/grpc+proto"),
            ("Application/GRPC+json", "application/grpc+json"),
            ("application/grpc+thrift", "application/grpc+thrift"),
            ("application/grpc;charset=utf-8", "application/grpc"),
            (
                "application/grpc+proto; charset=utf-8",
                "application/grpc+proto",
            ),
            ("application/grpc-web", "application/grpc-web"),
            ("application/grpc-web+proto", "application/grpc-web+proto"),
            ("application/grpc-web-text", "application/grpc-web-text"),
            (
                "application/grpc-web-text+proto;x=1",
                "application/grpc-web-text+proto",
            ),
        ] {
            assert_eq!(
                content_type(given, Version::HTTP_2).as_deref(),
                Some(answered),
                "{given}"
            );
        }
        for other in [
            "application/json",
            "application/grpcx",
            "application/grpc-foo",
            "application/grpc-webx",
            "application/grpc+",
            "application/grpc+a b",
            "text/plain",
            "application/gr",
        ] {
            assert_eq!(content_type(other, Version::HTTP_2), None, "{other}");
        }
        assert!(grpc_content_type(&HeaderMap::new(), Version::HTTP_2).is_none());
    }

    /// Only HTTP/2 (and later) carries gRPC; grpc-web also runs over HTTP/1.1.
    #[test]
    fn grpc_over_http1_is_answered_in_http() {
        for version in [Version::HTTP_10, Version::HTTP_11] {
            assert_eq!(content_type("application/grpc", version), None);
            assert_eq!(content_type("application/grpc+proto", version), None);
            assert_eq!(
                content_type("application/grpc-web+proto", version).as_deref(),
                Some("application/grpc-web+proto")
            );
            assert_eq!(
                content_type("application/grpc-web-text", version).as_deref(),
                Some("application/grpc-web-text")
            );
        }
        assert!(content_type("application/grpc", Version::HTTP_3).is_some());
        let mut request = HeaderMap::new();
        request.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        let r = AuthRejection::MissingToken.into_response_for(&request, Version::HTTP_11, None);
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("grpc-status").is_none());
        let r = AuthRejection::MissingToken.into_response_for(&request, Version::HTTP_2, None);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "16");
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(percent_encode("plain text, ok!"), "plain text, ok!");
        assert_eq!(percent_encode("100% sure"), "100%25 sure");
        assert_eq!(percent_encode("line\nbreak\t"), "line%0Abreak%09");
        assert_eq!(percent_encode("café ✓"), "caf%C3%A9 %E2%9C%93");
        assert_eq!(percent_encode("\x7f"), "%7F");
    }

    fn code_of(r: AuthRejection) -> (u16, i32) {
        (r.status().as_u16(), r.grpc_code())
    }

    #[test]
    fn grpc_codes_follow_the_table() {
        let cases = [
            (AuthRejection::MissingToken, (401, 16)),
            (AuthRejection::InvalidRequest("two headers"), (400, 16)),
            (
                AuthRejection::InvalidToken(ValidationError::Expired),
                (401, 16),
            ),
            (
                AuthRejection::InvalidToken(ValidationError::KeysUnavailable(KeyError::Backoff)),
                (503, 14),
            ),
            (AuthRejection::Forbidden(Forbidden::ClientApp), (403, 7)),
            (AuthRejection::MissingLayer, (500, 13)),
            (
                AuthRejection::TooManySessions {
                    retry_after: std::time::Duration::from_secs(6),
                },
                (429, 8),
            ),
            (AuthRejection::Obo(OboError::Timeout), (504, 14)),
            (AuthRejection::Obo(OboError::BadResponse), (502, 14)),
            (AuthRejection::Obo(OboError::AppOnlyToken), (403, 7)),
            (
                AuthRejection::Obo(OboError::Misconfigured("x".into())),
                (500, 13),
            ),
            (
                AuthRejection::Downstream(DownstreamError::Api {
                    status: 404,
                    code: "Request_ResourceNotFound".into(),
                    message: "no such user".into(),
                    request_id: None,
                }),
                (404, 5),
            ),
        ];
        for (rejection, expected) in cases {
            let name = format!("{rejection:?}");
            assert_eq!(code_of(rejection), expected, "{name}");
        }
    }

    #[test]
    fn trailers_only_keeps_the_challenge_and_has_no_body() {
        let r = AuthRejection::InvalidToken(ValidationError::Expired);
        let resp = r.grpc_response(HeaderValue::from_static("application/grpc+proto"));
        assert_eq!(resp.status(), 200);
        assert!(resp.body().is_empty());
        let h = resp.headers();
        assert_eq!(h[CONTENT_TYPE], "application/grpc+proto");
        assert_eq!(h["grpc-status"], "16");
        assert_eq!(h["grpc-message"], "the token has expired");
        assert_eq!(h[WWW_AUTHENTICATE], r.www_authenticate().unwrap());
        assert_eq!(h[CACHE_CONTROL], "no-store");

        let r = AuthRejection::InvalidToken(ValidationError::KeysUnavailable(KeyError::Backoff));
        let resp = r.grpc_response(HeaderValue::from_static("application/grpc"));
        assert_eq!(resp.headers()["grpc-status"], "14");
        assert_eq!(resp.headers()[RETRY_AFTER], "10");
        assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn the_protocol_follows_the_request() {
        let rejection = || AuthRejection::Forbidden(Forbidden::ClientApp);
        let mut request = HeaderMap::new();
        request.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        let grpc = rejection().into_response_for(&request, Version::HTTP_2, None);
        assert_eq!(grpc.status(), 200);
        assert_eq!(grpc.headers()["grpc-status"], "7");
        assert_eq!(grpc.headers()[CONTENT_TYPE], "application/grpc+proto");
        request.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/GRPC+proto; charset=utf-8"),
        );
        let grpc = rejection().into_response_for(&request, Version::HTTP_2, None);
        assert_eq!(grpc.headers()[CONTENT_TYPE], "application/grpc+proto");

        // Anything else gets exactly the HTTP answer of `IntoResponse`.
        request.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for request in [request, HeaderMap::new()] {
            let http = rejection().into_response_for(&request, Version::HTTP_2, None);
            let axum = axum::response::IntoResponse::into_response(rejection());
            assert_eq!(http.status(), 403);
            assert_eq!(http.headers(), axum.headers());
            assert!(http.headers().get("grpc-status").is_none());
            let body = String::from_utf8(http.body().to_vec()).unwrap();
            assert_eq!(
                body,
                r#"{"error":"unauthorized_client","error_description":"the client application is not allowed to call this API"}"#
            );
        }
    }

    #[cfg(feature = "tonic")]
    #[test]
    fn a_tonic_status_says_what_the_trailers_only_answer_says() {
        let cases = [
            AuthRejection::MissingToken,
            AuthRejection::InvalidToken(ValidationError::KeysUnavailable(KeyError::Backoff)),
            AuthRejection::Forbidden(Forbidden::Insufficient {
                scopes: vec!["access_as_user".into()],
                roles: vec![],
            }),
            AuthRejection::Obo(OboError::Unavailable { retry_after: None }),
        ];
        for r in cases {
            let trailers = r.grpc_response(HeaderValue::from_static("application/grpc"));
            let h = trailers.headers();
            let status = tonic::Status::from(r);
            assert_eq!(h["grpc-status"], (status.code() as i32).to_string());
            assert_eq!(h["grpc-message"], status.message());
            let metadata = status.metadata();
            for name in ["www-authenticate", "retry-after"] {
                assert_eq!(
                    h.get(name).map(|v| v.to_str().unwrap()),
                    metadata.get(name).map(|v| v.to_str().unwrap()),
                    "{name}"
                );
            }
        }
        let missing = tonic::Status::from(AuthRejection::MissingLayer);
        assert_eq!(missing.code(), tonic::Code::Internal);
        assert!(
            missing.message().contains("OboLayer"),
            "{}",
            missing.message()
        );
        let e = tonic::Status::from(OboError::AppOnlyToken);
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let e = tonic::Status::from(DownstreamError::Timeout);
        assert_eq!(e.code(), tonic::Code::Unavailable);
    }
}
