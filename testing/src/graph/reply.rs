//! Graph's answers before they are rendered: [`Reply`] (as an HTTP response or a `$batch`
//! item), the request ids Graph echoes, and Graph's error JSON.

use std::time::SystemTime;

use axum::response::{IntoResponse, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use crate::ids::{unix_seconds, CivilTime};

/// Graph's resource URI, one of the two audiences it accepts.
pub(super) const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// Graph's application id, the other audience.
pub(super) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Where Graph's challenges send the client to sign in.
pub(super) const AUTHORIZATION_URI: &str =
    "https://login.microsoftonline.com/common/oauth2/authorize";
/// Graph's JSON content type.
const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

/// The ids Graph puts in headers and error bodies.
pub(super) struct Ids {
    pub(super) request_id: String,
    pub(super) client_request_id: String,
}

impl Ids {
    /// A new `request-id`; the client's `client-request-id`, or the `request-id` again.
    pub(super) fn new(headers: &HeaderMap) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map_or_else(|| request_id.clone(), str::to_owned);
        Ids {
            request_id,
            client_request_id,
        }
    }

    /// The ids of a `$batch` item: its own `request-id`, the batch's `client-request-id`.
    pub(super) fn item(&self) -> Self {
        Ids {
            request_id: uuid::Uuid::new_v4().to_string(),
            client_request_id: self.client_request_id.clone(),
        }
    }
}

/// An answer before it is rendered: as an HTTP response or as a `$batch` item.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Reply {
    pub(super) fn json(status: StatusCode, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    pub(super) fn no_content() -> Self {
        Reply {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Graph's error JSON: `{"error":{"code","message","innerError":{…}}}`.
    pub(super) fn error(status: StatusCode, code: &str, message: &str, ids: &Ids) -> Self {
        Reply::json(
            status,
            json!({"error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": iso_now(),
                    "request-id": ids.request_id,
                    "client-request-id": ids.client_request_id,
                }
            }}),
        )
    }

    pub(super) fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(super) fn bad_request(message: &str, ids: &Ids) -> Self {
        Reply::error(StatusCode::BAD_REQUEST, "BadRequest", message, ids)
    }

    pub(super) fn method_not_allowed(ids: &Ids) -> Self {
        Reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request target.",
            ids,
        )
    }

    /// `401 InvalidAuthenticationToken` with Graph's `WWW-Authenticate` challenge.
    pub(super) fn unauthorized(message: &str, ids: &Ids) -> Self {
        Reply::error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
            ids,
        )
        .header(
            "www-authenticate",
            format!(
                "Bearer realm=\"\", authorization_uri=\"{AUTHORIZATION_URI}\", client_id=\"{GRAPH_APP_ID}\""
            ),
        )
    }

    /// `403 Authorization_RequestDenied`: the token lacks the route's permission.
    pub(super) fn forbidden(ids: &Ids) -> Self {
        Reply::error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
            ids,
        )
    }

    /// `429 TooManyRequests`, with `Retry-After` when given.
    pub(super) fn throttled(retry_after: Option<u64>, ids: &Ids) -> Self {
        let reply = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests, retry after the indicated time.",
            ids,
        );
        match retry_after {
            Some(secs) => reply.header("retry-after", secs.to_string()),
            None => reply,
        }
    }

    pub(super) fn into_response(self, ids: &Ids) -> Response {
        let mut response = match self.body {
            Some(body) => {
                let mut r = (self.status, body.to_string()).into_response();
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
                r
            }
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        for (name, value) in [
            ("request-id", &ids.request_id),
            ("client-request-id", &ids.client_request_id),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        response
    }

    /// The answer as a `$batch` response item.
    pub(super) fn into_batch_item(self, id: &str) -> Value {
        let mut headers = Map::new();
        for (name, value) in self.headers {
            // Graph writes item headers in their usual casing.
            let name = match name {
                "retry-after" => "Retry-After".to_owned(),
                "www-authenticate" => "WWW-Authenticate".to_owned(),
                other => other.to_owned(),
            };
            headers.insert(name, Value::String(value));
        }
        let mut item = json!({ "id": id, "status": self.status.as_u16() });
        if let Some(body) = self.body {
            headers.insert("Content-Type".into(), Value::String(ODATA_JSON.into()));
            item["body"] = body;
        }
        item["headers"] = Value::Object(headers);
        item
    }
}

/// Now as Graph writes `innerError.date`: `2024-05-01T12:34:56`.
fn iso_now() -> String {
    CivilTime::from_unix(unix_seconds(SystemTime::now())).graph_date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_look_like_graphs() {
        let d = iso_now();
        assert_eq!(d.len(), 19, "{d}");
        assert!(d.starts_with("20"), "{d}");
        assert_eq!(&d[10..11], "T");
    }
}
