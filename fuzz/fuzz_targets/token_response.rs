//! Any token-endpoint answer: read by the pure `interpret` without a panic and
//! within the lifetime clamp, then relayed over HTTP as documented, 500 only for
//! our own misconfiguration.

#![no_main]

use axum_obo::bench_support::{token_response, TokenAnswer};
use axum_obo_fuzz::scripted;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = axum_obo_fuzz::fixture();
    let (status, body) = scripted::token_response(data);
    // The pure reading every exchange attempt runs, without HTTP.
    if let Ok(TokenAnswer::Issued { expires_in }) = token_response(status, None, body, &["s"]) {
        assert!(
            (1..=28 * 3600).contains(&expires_in),
            "expires_in {expires_in}"
        );
    }
    *f.token_endpoint.answer.lock().unwrap() =
        (status, "application/json".into(), body.to_vec(), None);
    let token = f.entra.token().sign();
    let status = axum_obo_fuzz::status("/obo", format!("Bearer {token}").as_bytes());
    assert!(
        matches!(status, 200 | 401 | 403 | 500 | 502 | 503 | 504),
        "status {status}"
    );
    if status == 500 {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let e = v["error"].as_str().unwrap_or("");
        assert!(matches!(
            e,
            "invalid_client"
                | "unauthorized_client"
                | "invalid_scope"
                | "invalid_request"
                | "unsupported_grant_type"
        ));
    }
});
