#![no_main]
//! Any JOSE header and payload bytes, as a JWT with the real key id: 401.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = axum_obo_fuzz::fixture();
    // First byte splits the input into header and payload.
    let (cut, rest) = data.split_first().map_or((0, data), |(c, r)| (*c as usize, r));
    let cut = cut.min(rest.len());
    let (header, payload) = rest.split_at(cut);
    let header = if header.is_empty() {
        format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#, f.entra.current_kid()).into_bytes()
    } else {
        header.to_vec()
    };
    let token = format!(
        "Bearer {}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let status = axum_obo_fuzz::status("/whoami", token.as_bytes());
    assert_eq!(status, 401);
});
