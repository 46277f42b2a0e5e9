//! Helpers shared by the stand-ins' HTTP tests: a client, token requests, Entra's error shape.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use axum_obo_testing::EntraStandIn;
use base64::Engine as _;
use serde_json::{json, Value};

/// The correlation id every request sends (`client-request-id`).
pub const CORRELATION_ID: &str = "0c1d2e3f-0000-4000-8000-000000000042";
/// The OBO grant type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The client assertion type of JWT client assertions.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub type Form = Vec<(&'static str, String)>;
pub type Answer = (u16, reqwest::header::HeaderMap, Value);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client")
}

/// An OBO request with the client secret, as MSAL sends it.
pub fn obo_form(entra: &EntraStandIn, assertion: &str, scope: &str) -> Form {
    vec![
        ("client_id", entra.api_client_id()),
        ("client_secret", entra.client_secret()),
        ("grant_type", JWT_BEARER.to_owned()),
        ("assertion", assertion.to_owned()),
        ("requested_token_use", "on_behalf_of".to_owned()),
        ("scope", scope.to_owned()),
        ("client_info", "1".to_owned()),
    ]
}

/// A refresh-token request with the client secret.
pub fn refresh_form(entra: &EntraStandIn, refresh_token: &str, scope: &str) -> Form {
    vec![
        ("client_id", entra.api_client_id()),
        ("client_secret", entra.client_secret()),
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", refresh_token.to_owned()),
        ("scope", scope.to_owned()),
    ]
}

/// `form` with field `name` set to `value` (or removed).
pub fn with(mut form: Form, name: &'static str, value: Option<&str>) -> Form {
    form.retain(|(n, _)| *n != name);
    if let Some(value) = value {
        form.push((name, value.to_owned()));
    }
    form
}

/// POSTs `form` to the home tenant's token endpoint.
pub async fn post_token(entra: &EntraStandIn, form: &[(&str, String)]) -> Answer {
    let response = client()
        .post(entra.token_endpoint(&entra.home_tenant()))
        .header("client-request-id", CORRELATION_ID)
        .form(form)
        .send()
        .await
        .expect("the stand-in answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Asserts Entra's error shape: status, `error`, one AADSTS code and the description's
/// prefix, the ids, `error_uri`.
#[track_caller]
pub fn assert_entra_error(answer: &Answer, status: u16, error: &str, code: u64) {
    let (got, headers, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    assert_eq!(body["correlation_id"], CORRELATION_ID);
    assert!(
        body["trace_id"].is_string() && body["timestamp"].is_string(),
        "{body}"
    );
    assert!(
        body["error_uri"]
            .as_str()
            .is_some_and(|uri| uri.ends_with(&format!("/error?code={code}"))),
        "{body}"
    );
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json; charset=utf-8")
    );
}

/// The claims of a JWT, unverified.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or(Value::Null)
}
