//! Challenges: the pure rewrite of a `WWW-Authenticate: Bearer …` challenge
//! (`resource_metadata`, requestable scopes) and the layer's hook, [`annotate`].

use std::fmt::Write as _;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, StatusCode};

use super::settings::{qualify, ResourceSettings};
use crate::rejection::quoted;

impl ResourceSettings {
    /// `challenge` with `resource_metadata` and its scopes in requestable form;
    /// `None` (leave it alone) when it is not a `Bearer` challenge this function
    /// can parse, already names its metadata, or is a 403 no scope of this API
    /// can fix.
    ///
    /// - A 401 (`unauthorized`) keeps this API's scopes of its `scope`, drops
    ///   downstream ones (URIs of another API), and, when none is left, names the
    ///   supported scopes.
    /// - A 403 is annotated only when it is `insufficient_scope` naming this API's
    ///   own scopes; its `scope` becomes the layer-wide required scopes followed
    ///   by the ones named (MCP 2025-11-25: a client asking for these gets all it
    ///   needs at once), without duplicates. A 403 naming no scope (app-only
    ///   callers, client allow-list, app roles) or another API's (a relayed
    ///   consent error) is not a step-up challenge and is left as it is.
    pub(crate) fn challenge(&self, challenge: &str, unauthorized: bool) -> Option<String> {
        let params = parse_bearer(challenge)?;
        let named = |param: &str| {
            params
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(param))
                .map(|(_, value)| unquote(value))
        };
        if named("resource_metadata").is_some() {
            return None;
        }
        let given: Vec<String> = named("scope")
            .map(|v| v.split_ascii_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut scopes: Vec<String> = Vec::new();
        if unauthorized {
            for s in given.iter().filter(|s| self.is_own(s)) {
                push_new(&mut scopes, qualify(&self.scope_prefix, s));
            }
            if scopes.is_empty() {
                for s in self.challenge_scope.split_ascii_whitespace() {
                    push_new(&mut scopes, s.to_owned());
                }
            }
        } else {
            let step_up = named("error").as_deref() == Some("insufficient_scope")
                && !given.is_empty()
                && given.iter().all(|s| self.is_own(s));
            if !step_up {
                return None;
            }
            for s in &self.required_scopes {
                push_new(&mut scopes, s.clone());
            }
            for s in &given {
                push_new(&mut scopes, qualify(&self.scope_prefix, s));
            }
        }
        let mut out = String::from("Bearer");
        let mut separator = " ";
        let scope = quoted(&scopes.join(" "));
        let mut wrote_scope = false;
        for (name, value) in &params {
            out.push_str(separator);
            separator = ", ";
            if name.eq_ignore_ascii_case("scope") {
                if wrote_scope {
                    // A repeated `scope` (invalid): one is enough.
                    out.truncate(out.len() - 2);
                    continue;
                }
                wrote_scope = true;
                let _ = write!(out, "{name}=\"{scope}\"");
            } else {
                let _ = write!(out, "{name}={value}");
            }
        }
        if !wrote_scope && !scopes.is_empty() {
            let _ = write!(out, "{separator}scope=\"{scope}\"");
            separator = ", ";
        }
        let _ = write!(
            out,
            "{separator}resource_metadata=\"{}\"",
            quoted(&self.metadata.metadata_url)
        );
        Some(out)
    }
}

/// Appends `scope` unless it is already there.
fn push_new(scopes: &mut Vec<String>, scope: String) {
    if !scopes.contains(&scope) {
        scopes.push(scope);
    }
}

/// The layer's one hook: on a 401 or 403, each `Bearer` challenge gets what
/// [`ResourceSettings::challenge`] adds. Nothing at all without a resource URL;
/// the layer passes `None` too when the request's path is not covered by the
/// resource URL ([`ResourceSettings::covers`]).
pub(crate) fn annotate<B>(settings: Option<&ResourceSettings>, response: &mut http::Response<B>) {
    let Some(settings) = settings else {
        return;
    };
    let unauthorized = match response.status() {
        StatusCode::UNAUTHORIZED => true,
        StatusCode::FORBIDDEN => false,
        _ => return,
    };
    let headers = response.headers_mut();
    if !headers.contains_key(WWW_AUTHENTICATE) {
        return;
    }
    let values: Vec<HeaderValue> = headers.get_all(WWW_AUTHENTICATE).iter().cloned().collect();
    headers.remove(WWW_AUTHENTICATE);
    for value in values {
        let annotated = value
            .to_str()
            .ok()
            .and_then(|v| settings.challenge(v, unauthorized))
            .and_then(|v| HeaderValue::from_str(&v).ok());
        headers.append(WWW_AUTHENTICATE, annotated.unwrap_or(value));
    }
}

/// The auth-params of a `Bearer` challenge (RFC 9110 §11.2), each value as
/// written (a token, or a quoted-string with its quotes). `None` for another
/// scheme, a `token68` or anything malformed.
fn parse_bearer(challenge: &str) -> Option<Vec<(&str, &str)>> {
    let s = challenge.trim();
    let scheme = s.get(..6)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let rest = &s[6..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    let bytes = rest.as_bytes();
    let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        i
    };
    let mut params = Vec::new();
    let mut i = skip_ws(0);
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && is_tchar(bytes[i]) {
            i += 1;
        }
        if i == start {
            return None;
        }
        let name = &rest[start..i];
        i = skip_ws(i);
        if bytes.get(i) != Some(&b'=') {
            return None; // token68, or a second challenge
        }
        i = skip_ws(i + 1);
        let value_start = i;
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match bytes.get(i)? {
                    b'"' => break,
                    b'\\' => i += 2,
                    _ => i += 1,
                }
            }
            i += 1;
        } else {
            while i < bytes.len() && is_tchar(bytes[i]) {
                i += 1;
            }
            if i == value_start {
                return None;
            }
        }
        params.push((name, &rest[value_start..i]));
        i = skip_ws(i);
        match bytes.get(i) {
            None => break,
            Some(b',') => i = skip_ws(i + 1),
            Some(_) => return None,
        }
    }
    Some(params)
}

/// The content of a token or quoted-string value (quoted-pairs resolved).
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::settings::tests::{settings, C, HOME};
    use super::*;

    #[test]
    fn challenges_gain_resource_metadata_and_requestable_scopes() {
        let s = settings("https://h/mcp", &["access_as_user"], &[HOME]);
        let rm = "resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\"";
        let scope = format!("scope=\"api://{C}/access_as_user\"");
        let cases = [
            // 401 without a token: RFC 6750's bare challenge.
            ("Bearer", true, format!("Bearer {scope}, {rm}")),
            (
                "Bearer error=\"invalid_token\", error_description=\"the token has expired\"",
                true,
                format!("Bearer error=\"invalid_token\", error_description=\"the token has expired\", {scope}, {rm}"),
            ),
            // 403 from a requirement: the required scopes, then its bare
            // scopes as requestable, each once; commas and `=` inside quotes
            // do not split.
            (
                "Bearer error=\"insufficient_scope\", error_description=\"a, b=c: Tasks.Read Tasks.Write\", scope=\"Tasks.Read Tasks.Write\"",
                false,
                format!("Bearer error=\"insufficient_scope\", error_description=\"a, b=c: Tasks.Read Tasks.Write\", scope=\"api://{C}/access_as_user api://{C}/Tasks.Read api://{C}/Tasks.Write\", {rm}"),
            ),
            (
                "Bearer error=\"insufficient_scope\", error_description=\"x\", scope=\"access_as_user\"",
                false,
                format!("Bearer error=\"insufficient_scope\", error_description=\"x\", {scope}, {rm}"),
            ),
            // A 401 naming only another API's scope: ours instead.
            (
                "Bearer error=\"invalid_token\", scope=\"https://graph.microsoft.com/Mail.Read\"",
                true,
                format!("Bearer error=\"invalid_token\", {scope}, {rm}"),
            ),
            // A claims challenge (base64 with `=` padding) keeps its parameters.
            (
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"insufficient_claims\", claims=\"eyJhIjoxfQ==\"",
                true,
                format!("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", error=\"insufficient_claims\", claims=\"eyJhIjoxfQ==\", {scope}, {rm}"),
            ),
            // Token values and quoted-pairs.
            (
                "bearer error=invalid_token, error_description=\"a \\\"b\\\"\"",
                true,
                format!("Bearer error=invalid_token, error_description=\"a \\\"b\\\"\", {scope}, {rm}"),
            ),
        ];
        for (given, unauthorized, expected) in cases {
            assert_eq!(
                s.challenge(given, unauthorized).as_deref(),
                Some(expected.as_str()),
                "{given}"
            );
        }
    }

    #[test]
    fn foreign_or_malformed_challenges_are_left_alone() {
        let s = settings("https://h/mcp", &["access_as_user"], &[HOME]);
        for given in [
            "Basic realm=\"x\"",
            "Bearerish a=\"b\"",
            "Bearer abc==",
            "Bearer a=\"unterminated",
            "Bearer a=\"b\" c=\"d\"",
            "Bearer a=, b=\"c\"",
            "Bearer a=\"b\", Basic realm=\"x\"",
            "Bearer resource_metadata=\"https://elsewhere/x\"",
        ] {
            assert_eq!(s.challenge(given, true), None, "{given}");
        }
    }

    /// A 403 that no scope of this API can fix is no step-up challenge: left as
    /// it is, without `resource_metadata`, and never with downstream scopes.
    #[test]
    fn only_a_403_for_this_apis_scopes_is_annotated() {
        let s = settings("https://h/mcp", &["access_as_user"], &[HOME]);
        for given in [
            // A relayed consent error (Graph's scope).
            "Bearer error=\"insufficient_scope\", error_description=\"consent is required\", scope=\"https://graph.microsoft.com/User.Read\"",
            // Ours and another API's together.
            "Bearer error=\"insufficient_scope\", scope=\"Tasks.Read https://graph.microsoft.com/User.Read\"",
            // App-only callers, the client allow-list, app roles: no scope.
            "Bearer error=\"insufficient_scope\", error_description=\"x\"",
            // Another error, or none.
            "Bearer error=\"invalid_token\", scope=\"access_as_user\"",
            "Bearer scope=\"access_as_user\"",
            "Bearer",
        ] {
            assert_eq!(s.challenge(given, false), None, "{given}");
        }
        // Scopes already in this API's requestable form count as its own.
        assert_eq!(
            s.challenge(
                &format!("Bearer error=\"insufficient_scope\", scope=\"api://{C}/Tasks.Read access_as_user\""),
                false
            )
            .as_deref(),
            Some(
                format!("Bearer error=\"insufficient_scope\", scope=\"api://{C}/access_as_user api://{C}/Tasks.Read\", resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\"")
                    .as_str()
            )
        );
    }

    #[test]
    fn annotate_touches_only_401_and_403_challenges() {
        let s = settings("https://h/mcp", &["access_as_user"], &[HOME]);
        let response = |status: u16, challenges: &[&str]| {
            let mut r = http::Response::new(());
            *r.status_mut() = StatusCode::from_u16(status).unwrap();
            for c in challenges {
                r.headers_mut()
                    .append(WWW_AUTHENTICATE, HeaderValue::from_str(c).unwrap());
            }
            r
        };
        let challenges = |r: &http::Response<()>| {
            r.headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let mut r = response(401, &["Bearer", "Basic realm=\"x\""]);
        annotate(Some(&s), &mut r);
        let got = challenges(&r);
        assert_eq!(got.len(), 2);
        assert!(
            got[0].ends_with(
                "resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\""
            ),
            "{got:?}"
        );
        assert_eq!(got[1], "Basic realm=\"x\"");
        for status in [200, 400, 500, 503] {
            let mut r = response(status, &["Bearer"]);
            annotate(Some(&s), &mut r);
            assert_eq!(challenges(&r), ["Bearer"], "{status}");
        }
        let mut r = response(401, &["Bearer"]);
        annotate(None, &mut r);
        assert_eq!(challenges(&r), ["Bearer"]);
        let mut r = response(403, &[]);
        annotate(Some(&s), &mut r);
        assert!(challenges(&r).is_empty(), "no challenge is invented");
    }

    /// Whatever a header holds: no panic, and an answer is a valid header value,
    /// a challenge again, that names the metadata once, at the end.
    #[test]
    fn any_challenge_is_rewritten_safely_or_left_alone() {
        use proptest::prelude::*;
        let s = settings("https://h/mcp", &["access_as_user"], &[HOME]);
        let tail = "resource_metadata=\"https://h/.well-known/oauth-protected-resource/mcp\"";
        let config = ProptestConfig {
            cases: 512,
            ..ProptestConfig::default()
        };
        // Printable noise, and auth-param lists (tokens, quoted strings, scopes).
        let rest = prop_oneof![
            "[ -~]{0,60}",
            r#"([a-z_]{1,8} ?= ?("[ !#-\[\]-~]{0,12}"|[a-zA-Z0-9.:/]{1,8}), ?){0,4}"#,
        ];
        proptest!(config, |(rest in rest, unauthorized: bool)| {
            let given = format!("Bearer {rest}");
            if let Some(out) = s.challenge(&given, unauthorized) {
                prop_assert!(HeaderValue::from_str(&out).is_ok(), "{out}");
                prop_assert!(out.ends_with(tail), "{out}");
                // It parses again, with the metadata named once.
                let params = parse_bearer(&out).unwrap_or_default();
                let named = params
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("resource_metadata"))
                    .count();
                prop_assert_eq!(named, 1, "{}", out);
            }
        });
    }
}
