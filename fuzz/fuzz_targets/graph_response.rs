#![no_main]
//! Any Graph answer (status, body, WWW-Authenticate): data or a documented
//! error, never a panic.

use axum_obo::downstream::{DownstreamClient, RetryPolicy};
use axum_obo::secret::BearerToken;
use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 9] = [200, 204, 400, 401, 403, 404, 429, 500, 503];

fuzz_target!(|data: &[u8]| {
    let f = axum_obo_fuzz::fixture();
    let (pick, rest) = data.split_first().map_or((0, data), |(c, r)| (*c as usize, r));
    // Bytes up to the first NUL are the WWW-Authenticate header, the rest the body.
    let (www, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (Some(String::from_utf8_lossy(&rest[..i]).into_owned()), &rest[i + 1..]),
        None => (None, rest),
    };
    let status = STATUSES[pick % STATUSES.len()];
    *f.graph.answer.lock().unwrap() = (status, body.to_vec(), www);
    let result = f.rt.block_on(async {
        DownstreamClient::new(reqwest::Client::new(), &f.graph_url, BearerToken::new("t"))
            .unwrap()
            .with_retry(RetryPolicy::none())
            .get_json("/v1.0/me")
            .await
    });
    if let Err(e) = result {
        assert!(matches!(e.status().as_u16(), 401 | 403 | 404 | 500 | 502 | 503 | 504));
    }
});
