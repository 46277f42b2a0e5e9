//! Fuzz-input decoders: how the bytes of a fuzz target's input (or of a saved regression in
//! `fuzz/regressions/<target>/`) become an Authorization header, a JWT, or an upstream's
//! answer.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;

/// Statuses a scripted token endpoint answers (`token_response`), picked by the first byte.
pub const TOKEN_STATUSES: [u16; 8] = [200, 400, 401, 403, 429, 500, 502, 503];
/// Statuses a scripted Graph answers (`graph_response`), picked by the first byte.
pub const GRAPH_STATUSES: [u16; 9] = [200, 204, 400, 401, 403, 404, 429, 500, 503];

/// `authorization_header`: the bytes as a header value, if a server could receive them.
pub fn authorization_header(data: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(data).ok()
}

/// `jwt`: the first byte splits the rest into JOSE header and payload bytes; an empty
/// header is a well-formed RS256 one naming `kid`. The signature is garbage.
pub fn jwt(data: &[u8], kid: &str) -> String {
    let (cut, rest) = data
        .split_first()
        .map_or((0, data), |(c, r)| (usize::from(*c), r));
    let (header, payload) = rest.split_at(cut.min(rest.len()));
    let header = if header.is_empty() {
        format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{kid}"}}"#).into_bytes()
    } else {
        header.to_vec()
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// `token_response`: the first byte picks a status of [`TOKEN_STATUSES`], the rest is the
/// body.
pub fn token_response(data: &[u8]) -> (u16, &[u8]) {
    let (pick, body) = data
        .split_first()
        .map_or((0, data), |(c, r)| (usize::from(*c), r));
    (TOKEN_STATUSES[pick % TOKEN_STATUSES.len()], body)
}

/// `graph_response`: the first byte picks a status of [`GRAPH_STATUSES`]; bytes up to the
/// first NUL are the `WWW-Authenticate` header (none without a NUL), the rest the body.
pub fn graph_response(data: &[u8]) -> (u16, Option<String>, &[u8]) {
    let (pick, rest) = data
        .split_first()
        .map_or((0, data), |(c, r)| (usize::from(*c), r));
    let (www, body) = match rest.iter().position(|b| *b == 0) {
        Some(i) => (
            Some(String::from_utf8_lossy(&rest[..i]).into_owned()),
            &rest[i + 1..],
        ),
        None => (None, rest),
    };
    (GRAPH_STATUSES[pick % GRAPH_STATUSES.len()], www, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders_split_as_documented() {
        assert_eq!(token_response(b""), (200, &b""[..]));
        assert_eq!(token_response(b"\x09{}"), (400, &b"{}"[..]));
        assert_eq!(
            graph_response(b"\x03Bearer x\0{}"),
            (401, Some("Bearer x".to_owned()), &b"{}"[..])
        );
        assert_eq!(graph_response(b"\x00{}"), (200, None, &b"{}"[..]));
        assert!(jwt(b"", "k").starts_with("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsifQ."));
        assert_eq!(jwt(b"\x01ab", "k"), "YQ.Yg.c2lnbmF0dXJl");
        assert!(authorization_header(b"Bearer x").is_some());
        assert!(authorization_header(b"\n").is_none());
    }
}
