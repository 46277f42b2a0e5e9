//! Any Graph answer (status, body, WWW-Authenticate): data or a documented
//! error, never a panic.

#![no_main]

use axum_obo::downstream::{DownstreamClient, RetryPolicy};
use axum_obo::secret::BearerToken;
use axum_obo_fuzz::scripted;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = axum_obo_fuzz::fixture();
    let (status, www, body) = scripted::graph_response(data);
    *f.graph.answer.lock().unwrap() = (status, "application/json".into(), body.to_vec(), www);
    let result = f.rt.block_on(async {
        DownstreamClient::new(reqwest::Client::new(), &f.graph_url, BearerToken::new("t"))
            .unwrap()
            .with_retry(RetryPolicy::none())
            .get_json("/v1.0/me")
            .await
    });
    if let Err(e) = result {
        assert!(matches!(
            e.status().as_u16(),
            401 | 403 | 404 | 500 | 502 | 503 | 504
        ));
    }
});
