//! RFC 7807 problem details, with the container's status codes.

use axum::response::{IntoResponse, Response};
use axum_obo::agent::{AgentError, AgentRejection};
use axum_obo::rejection::OboError;
use axum_obo::AuthRejection;
use http::{header, HeaderValue, StatusCode};

/// An `application/problem+json` answer.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    detail: String,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = serde_json::json!({
            "type": format!("https://tools.ietf.org/html/rfc9110#section-15.{}", section(self.status)),
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut r = (self.status, body.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        r
    }
}

fn section(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "5.1",
        401 => "5.2",
        403 => "5.4",
        502 => "6.3",
        503 => "6.4",
        _ => "6.1",
    }
}

/// Entra refused to issue the token (the container's 401), the identity
/// provider failed (503/502, where the container says 500), or this sidecar
/// is misconfigured (500).
pub(crate) fn from_obo(e: &OboError) -> Problem {
    let status = match e {
        OboError::Unavailable { .. } | OboError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
        OboError::BadResponse => StatusCode::BAD_GATEWAY,
        _ => StatusCode::UNAUTHORIZED,
    };
    tracing::info!(status = status.as_u16(), error = %e, "token acquisition failed");
    Problem::new(status, e.to_string())
}

pub(crate) fn from_agent(e: &AgentError) -> Problem {
    match e {
        AgentError::Exchange(e) => from_obo(e),
        AgentError::InvalidAgentId => Problem::bad_request("AgentIdentity is not a GUID."),
        AgentError::InvalidTenant => {
            Problem::bad_request("optionsOverride.AcquireTokenOptions.Tenant is not a GUID.")
        }
        other => {
            tracing::info!(error = %other, "agent token acquisition refused");
            Problem::new(StatusCode::UNAUTHORIZED, other.to_string())
        }
    }
}

pub(crate) fn from_auth(e: &AuthRejection) -> Problem {
    let status = e.status();
    let status = if status.is_server_error() && status != StatusCode::INTERNAL_SERVER_ERROR {
        status
    } else if status.is_client_error() {
        StatusCode::UNAUTHORIZED
    } else {
        status
    };
    tracing::info!(status = status.as_u16(), error = %e, "token acquisition failed");
    Problem::new(status, e.to_string())
}

pub(crate) fn from_agent_rejection(e: &AgentRejection) -> Problem {
    match e {
        AgentRejection::Agent(a) => from_agent(a),
        AgentRejection::Auth(a) => from_auth(a),
        other => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}
