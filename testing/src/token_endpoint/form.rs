//! The request as received: the `application/x-www-form-urlencoded` body and HTTP Basic
//! client credentials.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::HeaderMap;

/// The form fields of a token request, in the order received.
#[derive(Debug, Clone, Default)]
pub(super) struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Parses the body if the content type is `application/x-www-form-urlencoded`; any other
    /// body counts as an empty form (Entra then misses `grant_type`).
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Self {
        let is_form = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Form::default();
        }
        let fields = body
            .split(|b| *b == b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = match pair.iter().position(|b| *b == b'=') {
                    Some(at) => (&pair[..at], &pair[at + 1..]),
                    None => (pair, &[][..]),
                };
                (decode(name), decode(value))
            })
            .collect();
        Form { fields }
    }

    /// The value of field `name` (the last one if repeated), if present and not empty.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The name of the first field sent more than once.
    pub(super) fn duplicate(&self) -> Option<&str> {
        self.fields.iter().enumerate().find_map(|(i, (name, _))| {
            self.fields[..i]
                .iter()
                .any(|(earlier, _)| earlier == name)
                .then_some(name.as_str())
        })
    }

    /// Every field (the last value of repeated ones), for the request log.
    pub(super) fn to_map(&self) -> BTreeMap<String, String> {
        self.fields.iter().cloned().collect()
    }
}

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space, `%XX`
/// a byte; invalid UTF-8 is replaced.
pub(super) fn decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = input
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Client credentials from `Authorization: Basic …` (`client_secret_basic`: RFC 6749 §2.3.1,
/// the id and the secret each form-urlencoded before base64). `None` without a Basic header;
/// `Some(Err(()))` for a Basic header that does not decode.
pub(super) fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok());
    Some(
        decoded
            .as_deref()
            .and_then(|pair| pair.split_once(':'))
            .map(|(id, secret)| (decode(id.as_bytes()), decode(secret.as_bytes())))
            .ok_or(()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn form_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        headers
    }

    #[test]
    fn parses_form_bodies() {
        let form = Form::parse(
            &form_headers(),
            b"scope=a+b%2Fc&empty=&flag&x=%zz&scope=last",
        );
        assert_eq!(form.get("scope"), Some("last"));
        assert_eq!(form.get("empty"), None);
        assert_eq!(form.to_map()["flag"], "");
        assert_eq!(form.get("x"), Some("%zz"));
        assert_eq!(form.duplicate(), Some("scope"));
        assert_eq!(form.to_map()["scope"], "last");
        assert_eq!(decode(b"a+b%2Fc%3D"), "a b/c=");
        assert!(Form::parse(&HeaderMap::new(), b"grant_type=x")
            .get("grant_type")
            .is_none());
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        assert!(basic_credentials(&headers).is_none());
        let encoded = STANDARD.encode("my%20id:s%3Ae+cret");
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}"))
                .unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(Ok(("my id".to_owned(), "s:e cret".to_owned())))
        );
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_credentials(&headers), Some(Err(())));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(basic_credentials(&headers).is_none());
    }
}
