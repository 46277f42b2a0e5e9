//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1) and the claims challenge of
//! Continuous Access Evaluation / Conditional Access.
//!
//! A challenge is `scheme [ token68 / #auth-param ]`; one header may hold several
//! challenges separated by commas, and parameter values are tokens or quoted strings
//! (with `\` escapes). The `claims` parameter is standard base64, whose padding is `=`:
//! the parser reads quoted strings as a whole and never splits on `=`.
//!
//! A claims challenge is answered by sending its claims to Entra (a re-exchange) or
//! relayed to the caller, who sends them to Entra: only a bounded challenge of the
//! shape Entra defines is either ([`check_claims_request`]). Anything else is refused
//! with the reason, as a 401 without a challenge would be.

use std::fmt;

use base64::Engine as _;
use serde_json::Value;

/// The largest claims challenge accepted, in bytes of JSON. Entra's and Graph's are
/// under 300 bytes (a CAE `nbf`, an authentication context, a few policy ids).
pub(crate) const MAX_CLAIMS_BYTES: usize = 4096;
/// The most claim requests one challenge may hold.
const MAX_CLAIM_REQUESTS: usize = 16;
/// The most `values` one claim request may list.
const MAX_VALUES: usize = 32;
/// The longest string a claim request's `value`/`values` may hold, in bytes.
const MAX_VALUE_BYTES: usize = 256;

/// Why a claims challenge is neither answered nor relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnacceptableClaims {
    /// Over [`MAX_CLAIMS_BYTES`].
    TooLarge,
    /// Not base64 of JSON, nor JSON.
    NotJson,
    /// JSON, but not `{"access_token":{<claim>:<claim request>, …}}`.
    Shape(&'static str),
}

impl fmt::Display for UnacceptableClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnacceptableClaims::TooLarge => {
                write!(f, "the claims are larger than {MAX_CLAIMS_BYTES} bytes")
            }
            UnacceptableClaims::NotJson => f.write_str("the claims are not base64 of JSON"),
            UnacceptableClaims::Shape(why) => f.write_str(why),
        }
    }
}

/// Whether `json` is a claims request Entra defines for an access token, within
/// bounds: at most [`MAX_CLAIMS_BYTES`]; an object whose only member is
/// `access_token`, an object of 1 to 16 claim requests; each named
/// `[A-Za-z0-9_]{1,64}` (`nbf`, `acrs`, `capolids`, `xms_cc`, …) and either `null`
/// or an OpenID Connect claim request (Core §5.5.1) — an object with at most
/// `essential` (a boolean), `value` (a string or number) and `values` (1 to 32
/// strings or numbers), strings at most 256 bytes, no control characters.
pub(crate) fn check_claims_request(json: &str) -> Result<(), UnacceptableClaims> {
    if json.len() > MAX_CLAIMS_BYTES {
        return Err(UnacceptableClaims::TooLarge);
    }
    let value: Value = serde_json::from_str(json).map_err(|_| UnacceptableClaims::NotJson)?;
    let Value::Object(top) = value else {
        return Err(UnacceptableClaims::Shape(
            "the claims are not a JSON object",
        ));
    };
    let (Some(Value::Object(requests)), 1) = (top.get("access_token"), top.len()) else {
        return Err(UnacceptableClaims::Shape(
            "the claims are not one access_token object",
        ));
    };
    if requests.is_empty() || requests.len() > MAX_CLAIM_REQUESTS {
        return Err(UnacceptableClaims::Shape(
            "the claims request no claim, or too many",
        ));
    }
    for (name, request) in requests {
        let plain = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain {
            return Err(UnacceptableClaims::Shape(
                "a claim name is not a plain name",
            ));
        }
        check_claim_request(request)?;
    }
    Ok(())
}

/// One claim request: `null`, or `{essential?, value?, values?}`.
fn check_claim_request(request: &Value) -> Result<(), UnacceptableClaims> {
    let bad = UnacceptableClaims::Shape("a claim request is not {essential, value, values}");
    let scalar = |v: &Value| match v {
        Value::Number(_) => true,
        Value::String(s) => s.len() <= MAX_VALUE_BYTES && !s.chars().any(char::is_control),
        _ => false,
    };
    let fields = match request {
        Value::Null => return Ok(()),
        Value::Object(fields) => fields,
        _ => return Err(bad),
    };
    for (key, v) in fields {
        let ok = match (key.as_str(), v) {
            ("essential", Value::Bool(_)) => true,
            ("value", v) => scalar(v),
            ("values", Value::Array(values)) => {
                (1..=MAX_VALUES).contains(&values.len()) && values.iter().all(scalar)
            }
            _ => false,
        };
        if !ok {
            return Err(bad);
        }
    }
    Ok(())
}

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

/// The claims (JSON) of the first Bearer `error="insufficient_claims"` challenge
/// with a `claims` parameter among `headers` (each a `WWW-Authenticate` value),
/// decoded from base64 and checked ([`check_claims_request`]).
///
/// `None` if there is no such challenge; `Some(Err(why))` if its claims are
/// refused.
pub(crate) fn claims_challenge<'a>(
    headers: impl IntoIterator<Item = &'a str>,
) -> Option<Result<String, UnacceptableClaims>> {
    headers
        .into_iter()
        .flat_map(parse_challenges)
        .filter(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        .filter(|c| c.param("error") == Some("insufficient_claims"))
        .find_map(|c| c.param("claims").map(decode_claims))
}

/// Decodes a `claims` parameter (standard base64 as Microsoft documents it, with or
/// without padding, base64url tolerated, or the JSON itself), checks it and
/// returns it re-serialized (compact, each member once, as checked): the caller,
/// or the re-exchange, hands it to Entra.
fn decode_claims(value: &str) -> Result<String, UnacceptableClaims> {
    let value = value.trim();
    // Base64 of MAX_CLAIMS_BYTES, padded: refused before decoding anything larger.
    if value.len() > MAX_CLAIMS_BYTES.div_ceil(3) * 4 {
        return Err(UnacceptableClaims::TooLarge);
    }
    let json = if value.starts_with('{') {
        value.to_owned()
    } else {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(value).ok())
            .ok_or(UnacceptableClaims::NotJson)?;
        String::from_utf8(bytes).map_err(|_| UnacceptableClaims::NotJson)?
    };
    check_claims_request(&json)?;
    // Relayed as parsed and checked: a duplicate member (which a parser taking
    // the first one would read instead of the checked last one) and padding
    // are gone.
    let parsed: Value = serde_json::from_str(&json).map_err(|_| UnacceptableClaims::NotJson)?;
    Ok(parsed.to_string())
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
            assert_eq!(
                claims_challenge([header.as_str()]),
                Some(Ok(claims.to_owned()))
            );
        }
    }

    #[test]
    fn parameters_and_several_challenges() {
        // claims = {"access_token":{"acrs":{"value":"c1"}}}
        let h = r#"Basic realm="a, b", Bearer realm="", error="insufficient_claims", error_description="say \"hi\"", claims=eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJ2YWx1ZSI6ImMxIn19fQ==, Negotiate"#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[0].scheme, "Basic");
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[1].param("realm"), Some(""));
        assert_eq!(c[1].param("ERROR"), Some("insufficient_claims"));
        assert_eq!(c[1].param("error_description"), Some("say \"hi\""));
        assert_eq!(
            c[1].param("claims"),
            Some("eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJ2YWx1ZSI6ImMxIn19fQ==")
        );
        assert_eq!(c[2].scheme, "Negotiate");
        assert!(c[2].params.is_empty());
        assert_eq!(
            claims_challenge([h]),
            Some(Ok(r#"{"access_token":{"acrs":{"value":"c1"}}}"#.to_owned()))
        );
    }

    #[test]
    fn challenge_in_a_second_header_and_unpadded() {
        let first = "Bearer realm=\"\", error=\"invalid_token\"";
        let second = format!(
            "bearer error=\"insufficient_claims\", claims=\"{}\"",
            b64(CLAIMS).trim_end_matches('=')
        );
        assert_eq!(
            claims_challenge([first, second.as_str()]),
            Some(Ok(CLAIMS.to_owned()))
        );
    }

    #[test]
    fn no_claims_challenge() {
        for h in [
            "",
            "Bearer",
            "Bearer realm=\"\", error=\"invalid_token\"",
            "Bearer error=\"insufficient_claims\"",
            "Bearer error=\"insufficient_claims\", claims=\"eyJh", // unterminated
            "Basic error=\"insufficient_claims\", claims=\"eyJhIjoxfQ==\"",
            "=,=\"\\",
        ] {
            assert_eq!(claims_challenge([h]), None, "{h}");
        }
        for (h, why) in [
            (
                "Bearer error=\"insufficient_claims\", claims=\"!!!not base64\"",
                UnacceptableClaims::NotJson,
            ),
            (
                "Bearer error=\"insufficient_claims\", claims=\"aGVsbG8=\"", // "hello"
                UnacceptableClaims::NotJson,
            ),
        ] {
            assert_eq!(claims_challenge([h]), Some(Err(why)), "{h}");
        }
    }

    #[test]
    fn only_bounded_access_token_claim_requests_are_accepted() {
        for ok in [
            CLAIMS,
            r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#,
            r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#,
            r#"{"access_token":{"capolids":{"essential":true,"values":["a7e1-…","1b2c"]}}}"#,
            r#"{"access_token":{"nbf":{"essential":true,"value":1702682181},"auth_time":null}}"#,
        ] {
            assert_eq!(check_claims_request(ok), Ok(()), "{ok}");
        }
        let many = (0..17)
            .map(|i| format!(r#""c{i}":null"#))
            .collect::<Vec<_>>()
            .join(",");
        let many = format!(r#"{{"access_token":{{{many}}}}}"#);
        let long_value = format!(
            r#"{{"access_token":{{"acrs":{{"value":"{}"}}}}}}"#,
            "c".repeat(257)
        );
        let values = format!(
            r#"{{"access_token":{{"capolids":{{"values":[{}]}}}}}}"#,
            vec!["\"p\""; 33].join(",")
        );
        let shape = |json: &str| {
            matches!(
                check_claims_request(json),
                Err(UnacceptableClaims::Shape(_))
            )
        };
        for bad in [
            "[\"nbf\"]",
            "42",
            "{}",
            r#"{"a":1}"#,
            r#"{"access_token":{}}"#,
            r#"{"access_token":[]}"#,
            r#"{"id_token":{"auth_time":{"essential":true}}}"#,
            r#"{"access_token":{"nbf":{"essential":true}},"id_token":{"auth_time":null}}"#,
            r#"{"access_token":{"nbf":{"essential":"yes"}}}"#,
            r#"{"access_token":{"nbf":{"value":{"nested":1}}}}"#,
            r#"{"access_token":{"nbf":{"value":"a\nb"}}}"#,
            r#"{"access_token":{"nbf":{"values":[]}}}"#,
            r#"{"access_token":{"nbf":{"values":[[1]]}}}"#,
            r#"{"access_token":{"nbf":{"other":1}}}"#,
            r#"{"access_token":{"nbf":"1702682181"}}"#,
            r#"{"access_token":{"n f":null}}"#,
            r#"{"access_token":{"":null}}"#,
            many.as_str(),
            long_value.as_str(),
            values.as_str(),
        ] {
            assert!(shape(bad), "{bad}: {:?}", check_claims_request(bad));
        }
        assert_eq!(check_claims_request("{"), Err(UnacceptableClaims::NotJson));

        // Size: over 4 KB is refused, in JSON or base64, before decoding base64.
        let padded = |n: usize| {
            let base = r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#;
            format!(
                "{}{}",
                &base[..base.len() - 1],
                " ".repeat(n - base.len()) + "}"
            )
        };
        assert_eq!(check_claims_request(&padded(MAX_CLAIMS_BYTES)), Ok(()));
        assert_eq!(
            check_claims_request(&padded(MAX_CLAIMS_BYTES + 1)),
            Err(UnacceptableClaims::TooLarge)
        );
        let header = |json: &str| {
            format!(
                "Bearer error=\"insufficient_claims\", claims=\"{}\"",
                b64(json)
            )
        };
        let fits = padded(MAX_CLAIMS_BYTES);
        assert_eq!(
            claims_challenge([header(&fits).as_str()]),
            Some(Ok(
                r#"{"access_token":{"nbf":{"essential":true,"value":"1"}}}"#.into()
            )),
            "accepted, and relayed without its padding"
        );
        let huge = header(&padded(1 << 20));
        assert_eq!(
            claims_challenge([huge.as_str()]),
            Some(Err(UnacceptableClaims::TooLarge))
        );
    }

    /// A duplicate member is checked once (serde keeps the last) but a parser
    /// keeping the first would read the other: what is relayed is what was
    /// checked, each member once.
    #[test]
    fn duplicate_members_are_relayed_as_checked() {
        let header = |json: &str| {
            format!(
                "Bearer error=\"insufficient_claims\", claims=\"{}\"",
                b64(json)
            )
        };
        for (sent, checked) in [
            (
                r#"{"access_token":{"nbf":{"value":{"deep":[[[1]]]}}},"access_token":{"nbf":null}}"#,
                r#"{"access_token":{"nbf":null}}"#,
            ),
            (
                r#"{"access_token":{"acrs":{"essential":true,"value":{"x":1},"value":"c1"}}}"#,
                r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#,
            ),
            (
                r#"{"access_token":{"n\u0062f":{"value":"1"}}}"#,
                r#"{"access_token":{"nbf":{"value":"1"}}}"#,
            ),
        ] {
            assert_eq!(
                claims_challenge([header(sent).as_str()]),
                Some(Ok(checked.to_owned())),
                "{sent}"
            );
        }
        // A legitimate CAE challenge and capability/authentication-context ones
        // come through unchanged (compact; members in serde_json's sorted order).
        for ok in [
            CLAIMS,
            r#"{"access_token":{"acrs":{"essential":true,"value":"c1"},"xms_cc":{"values":["cp1"]}}}"#,
        ] {
            assert_eq!(claims_challenge([header(ok).as_str()]), Some(Ok(ok.into())));
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
