//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1) and the claims challenge of
//! Continuous Access Evaluation / Conditional Access.
//!
//! A challenge is `scheme [ token68 / #auth-param ]`; one header may hold several
//! challenges separated by commas, and parameter values are tokens or quoted strings
//! (with `\` escapes). The `claims` parameter is standard base64, whose padding is `=`:
//! the parser reads quoted strings as a whole and never splits on `=`.

use base64::Engine as _;

/// One parsed challenge: the scheme as sent, and its parameters (names lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (case-insensitive), if present.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses every challenge of one `WWW-Authenticate` value. Malformed input ends the
/// parse; the challenges read so far are returned.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        pos: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_while(|c| c == b',' || is_ws(c));
        if p.at_end() {
            break;
        }
        let scheme = p.token();
        if scheme.is_empty() {
            break;
        }
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
        };
        let complete = p.params(&mut challenge.params);
        out.push(challenge);
        if !complete {
            break;
        }
    }
    out
}

/// The claims (JSON) of a Bearer `error="insufficient_claims"` challenge among
/// `headers` (each a `WWW-Authenticate` value), decoded from base64.
///
/// `None` if there is no such challenge, or its `claims` cannot be decoded.
pub(crate) fn claims_challenge<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<String> {
    headers
        .into_iter()
        .flat_map(parse_challenges)
        .filter(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        .filter(|c| c.param("error") == Some("insufficient_claims"))
        .find_map(|c| c.param("claims").and_then(decode_claims))
}

/// Decodes a `claims` parameter: standard base64 as Microsoft documents it, with or
/// without padding, base64url tolerated, or the JSON itself.
fn decode_claims(value: &str) -> Option<String> {
    let value = value.trim();
    if value.starts_with('{') {
        return Some(value.to_owned());
    }
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok())?;
    let json = String::from_utf8(bytes).ok()?;
    // Relay only what is JSON: the caller hands it back to its token request.
    serde_json::from_str::<serde_json::Value>(&json).ok()?;
    Some(json)
}

fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// RFC 9110 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_while(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> String {
        let start = self.pos;
        self.skip_while(f);
        String::from_utf8_lossy(&self.s[start..self.pos]).into_owned()
    }

    fn token(&mut self) -> String {
        self.take_while(is_tchar)
    }

    /// A quoted string; the opening quote is at `pos`. `None` if unterminated.
    fn quoted(&mut self) -> Option<String> {
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            match c {
                b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let escaped = self.peek()?;
                    self.pos += 1;
                    out.push(escaped);
                }
                c => out.push(c),
            }
        }
        None
    }

    /// Reads the parameters (or token68) of one challenge into `params`. Returns
    /// `false` if the input is malformed and parsing should stop.
    fn params(&mut self, params: &mut Vec<(String, String)>) -> bool {
        loop {
            // Empty list elements (`a, , b`) are allowed.
            self.skip_while(|c| c == b',' || is_ws(c));
            let start = self.pos;
            let name = self.token();
            self.skip_while(is_ws);
            if name.is_empty() || self.peek() != Some(b'=') {
                // No parameter here: the next challenge (after a comma), or the end.
                self.pos = start;
                return true;
            }
            self.pos += 1;
            self.skip_while(is_ws);
            let value = match self.peek() {
                Some(b'"') => match self.quoted() {
                    Some(v) => v,
                    None => return false,
                },
                // Lenient: unquoted base64 (`/`, `=`) is accepted as a value.
                _ => self.take_while(|c| is_tchar(c) || c == b'/' || c == b'='),
            };
            params.push((name.to_ascii_lowercase(), value));
            self.skip_while(is_ws);
            match self.peek() {
                None => return true,
                Some(b',') => {
                    self.pos += 1;
                    if !self.param_follows() {
                        return true;
                    }
                }
                Some(_) => return false,
            }
        }
    }

    /// After a comma: is the next element `name =` (a parameter of this challenge)
    /// rather than a new challenge's scheme?
    fn param_follows(&mut self) -> bool {
        let save = self.pos;
        self.skip_while(|c| c == b',' || is_ws(c));
        let name = self.token();
        self.skip_while(is_ws);
        let follows = !name.is_empty() && self.peek() == Some(b'=');
        self.pos = save;
        follows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAIMS: &str = r#"{"access_token":{"nbf":{"essential":true,"value":"1702682181"}}}"#;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn graph_claims_challenge_with_padding() {
        // 65 bytes: the base64 ends with one `=`; other lengths give `==`.
        for claims in [CLAIMS, r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#] {
            let encoded = b64(claims);
            assert!(encoded.ends_with('='), "{encoded}");
            let header = format!(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"insufficient_claims\", claims=\"{encoded}\""
            );
            assert_eq!(claims_challenge([header.as_str()]).as_deref(), Some(claims));
        }
    }

    #[test]
    fn parameters_and_several_challenges() {
        let h = r#"Basic realm="a, b", Bearer realm="", error="insufficient_claims", error_description="say \"hi\"", claims=eyJhIjoxfQ==, Negotiate"#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[0].scheme, "Basic");
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[1].param("realm"), Some(""));
        assert_eq!(c[1].param("ERROR"), Some("insufficient_claims"));
        assert_eq!(c[1].param("error_description"), Some("say \"hi\""));
        assert_eq!(c[1].param("claims"), Some("eyJhIjoxfQ=="));
        assert_eq!(c[2].scheme, "Negotiate");
        assert!(c[2].params.is_empty());
        assert_eq!(claims_challenge([h]).as_deref(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn challenge_in_a_second_header_and_unpadded() {
        let first = "Bearer realm=\"\", error=\"invalid_token\"";
        let second = format!(
            "bearer error=\"insufficient_claims\", claims=\"{}\"",
            b64(CLAIMS).trim_end_matches('=')
        );
        assert_eq!(
            claims_challenge([first, second.as_str()]).as_deref(),
            Some(CLAIMS)
        );
    }

    #[test]
    fn no_claims_challenge() {
        for h in [
            "",
            "Bearer",
            "Bearer realm=\"\", error=\"invalid_token\"",
            "Bearer error=\"insufficient_claims\"",
            "Bearer error=\"insufficient_claims\", claims=\"!!!not base64\"",
            "Bearer error=\"insufficient_claims\", claims=\"aGVsbG8=\"", // "hello": not JSON
            "Bearer error=\"insufficient_claims\", claims=\"eyJh",       // unterminated
            "Basic error=\"insufficient_claims\", claims=\"eyJhIjoxfQ==\"",
            "=,=\"\\",
        ] {
            assert_eq!(claims_challenge([h]), None, "{h}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        for h in [
            "\"",
            "Bearer a=\"\\",
            "Bearer ,,,, a = b ,",
            "Bearer a=b c",
            "é=\"ü\"",
        ] {
            let _ = parse_challenges(h);
        }
        assert_eq!(
            parse_challenges("Bearer ,,,, a = b ,")[0].param("a"),
            Some("b")
        );
    }
}
