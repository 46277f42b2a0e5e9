//! Any Authorization header value: 400 or 401, never a panic or a 500.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let status = axum_obo_fuzz::status("/whoami", data);
    assert!(matches!(status, 400 | 401), "status {status}");
});
