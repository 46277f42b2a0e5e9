//! Any JOSE header and payload bytes, as a JWT with the real key id: 401.

#![no_main]

use axum_obo_fuzz::scripted;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = axum_obo_fuzz::fixture();
    let token = format!("Bearer {}", scripted::jwt(data, &f.entra.current_kid()));
    let status = axum_obo_fuzz::status("/whoami", token.as_bytes());
    assert_eq!(status, 401);
});
