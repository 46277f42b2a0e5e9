//! This API as an OAuth protected resource (RFC 9728), as the MCP authorization
//! specification (2025-06-18 and later) asks of a remote MCP server.
//!
//! Where it sits: the configuration builds a `ResourceSettings` once, when
//! [`resource_url`](crate::OboConfigBuilder::resource_url) is set; the layer hands
//! every response to `annotate`, and [`ProtectedResourceMetadata::router`] serves
//! the document. Without a resource URL nothing here runs and every challenge is
//! byte-for-byte what it was.
//!
//! What it guarantees:
//!
//! - **The document** ([`ProtectedResourceMetadata`]): `resource` (the configured
//!   URL, as given), `authorization_servers` (the issuer of each allowed tenant,
//!   `{authority}/{tenant}/v2.0`, the home tenant first), `scopes_supported` (what a
//!   client requests from Entra: `{app id uri}/{scope}` (by default
//!   `api://{client id}/{scope}`) for each scope of
//!   [`require_user_scopes`](crate::OboConfigBuilder::require_user_scopes), or
//!   `api://{client id}/.default` when no scope is required),
//!   `bearer_methods_supported: ["header"]`, and `resource_name` /
//!   `resource_documentation` when configured. Entra's `organizations` and `common`
//!   are never listed: their discovery documents name the issuer
//!   `https://login.microsoftonline.com/{tenantid}/v2.0`, a template that fails the
//!   issuer check RFC 8414 §3.3 asks of every client.
//! - **Where it is served**: at the RFC 9728 §3.1 address, the well-known path
//!   inserted between the host and the resource's path
//!   (`https://host/.well-known/oauth-protected-resource/mcp` for `https://host/mcp`),
//!   and at the bare `/.well-known/oauth-protected-resource` for clients that only
//!   try the root. Both are `GET`, `application/json`, cacheable for an hour.
//! - **Challenges**: every `WWW-Authenticate: Bearer …` challenge of a 401 or 403
//!   response that passes through the layer (the layer's own refusals and those of
//!   extractors and handlers inside it) gets `resource_metadata="<the RFC 9728 §3.1
//!   address>"`; a `scope` parameter's bare scope names (`access_as_user`, as in the
//!   token's `scp`) are written as a client requests them (`api://{client
//!   id}/access_as_user`); and a 401 without `scope` gets the scopes of
//!   `scopes_supported`. Scopes that are already URIs (Graph's, in a relayed consent
//!   error) are kept. A 403 that names no scope (app-only callers, client allow-list,
//!   role requirements) gets none: no scope would help.
//!
//! What a client sees: public metadata only (URLs, scope names); nothing about the
//! caller. How it fails: it cannot, once built; a challenge this module cannot
//! parse (another scheme, `token68`) is left as it was.

use std::fmt::Write as _;

use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::rejection::quoted;

/// The RFC 9728 well-known path: `/.well-known/oauth-protected-resource`.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// The `Cache-Control` of the served document.
const CACHE: &str = "public, max-age=3600";

/// The RFC 9728 protected-resource metadata of this API, as served.
///
/// Built by [`OboConfigBuilder::build`](crate::OboConfigBuilder::build) when a
/// [`resource_url`](crate::OboConfigBuilder::resource_url) is configured; read it
/// with [`OboConfig::resource_metadata`](crate::OboConfig::resource_metadata) and
/// serve it with [`router`](Self::router).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The resource's canonical URL, as configured.
    pub resource: String,
    /// The issuers of the allowed tenants, `{authority}/{tenant}/v2.0`, home first.
    pub authorization_servers: Vec<String>,
    /// The scopes a client requests from Entra for this API.
    pub scopes_supported: Vec<String>,
    /// Always `["header"]`: tokens are read from `Authorization` only.
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A page with developer documentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// The RFC 9728 §3.1 address of this document.
    #[serde(skip)]
    metadata_url: String,
    /// The paths it is served at (the path-suffixed one first).
    #[serde(skip)]
    paths: Vec<String>,
}

impl ProtectedResourceMetadata {
    /// The RFC 9728 §3.1 address of this document, which challenges name in
    /// `resource_metadata`: `{origin}/.well-known/oauth-protected-resource{path}`.
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The paths [`router`](Self::router) serves: the path-suffixed one (when the
    /// resource has a path), then [`WELL_KNOWN_PATH`].
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    /// Routes serving the document at each of [`paths`](Self::paths) (`GET`, JSON,
    /// `Cache-Control: public, max-age=3600`). Merge them *outside* `OboLayer`:
    /// a client reads them before it has a token.
    ///
    /// ```no_run
    /// use axum::{routing::post, Router};
    /// use axum_obo::{OboConfig, OboLayer};
    ///
    /// # fn run() -> Result<(), axum_obo::ConfigError> {
    /// let config = OboConfig::builder()
    ///     .tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47")
    ///     .client_id("8b9f1c52-3a5e-4c1a-9d8e-2f0a1b2c3d4e")
    ///     .resource_url("https://mcp.contoso.com/mcp")
    ///     .build()?;
    /// let metadata = config.resource_metadata().map(|m| m.router()).unwrap_or_default();
    /// let app: Router = Router::new()
    ///     .route("/mcp", post(|| async { "…" }))
    ///     .route_layer(OboLayer::new(config))
    ///     .merge(metadata);
    /// # Ok(())
    /// # }
    /// ```
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        // Serializing plain strings cannot fail.
        let body = Bytes::from(serde_json::to_vec(self).unwrap_or_default());
        let mut router = Router::new();
        for path in &self.paths {
            let body = body.clone();
            router = router.route(path, get(move || std::future::ready(document(body))));
        }
        router
    }
}

/// The document's response.
fn document(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE));
    response
}

/// What the configuration hands the layer: the document and the challenge
/// parameters, computed once.
#[derive(Debug, Clone)]
pub(crate) struct ResourceSettings {
    pub(crate) metadata: ProtectedResourceMetadata,
    /// Prefix that turns a bare scope into the form a client requests:
    /// `api://{client id}/`.
    scope_prefix: String,
    /// `scopes_supported`, space-separated: the `scope` of 401 challenges.
    challenge_scope: String,
}

/// The inputs of [`ResourceSettings::new`], already checked by the builder.
pub(crate) struct ResourceSpec<'a> {
    /// The resource URL as given (trimmed) and parsed.
    pub(crate) resource: (&'a str, &'a url::Url),
    pub(crate) name: Option<String>,
    pub(crate) documentation: Option<String>,
    /// The Application ID URI scopes are prefixed with; `api://{client id}` if `None`.
    pub(crate) app_id_uri: Option<String>,
    /// The authority host, without a trailing slash.
    pub(crate) authority: &'a str,
    pub(crate) home_tenant: &'a str,
    pub(crate) tenants: &'a [String],
    pub(crate) client_id: &'a str,
    /// The bare scopes the layer-wide policy requires.
    pub(crate) user_scopes: &'a [String],
}

impl ResourceSettings {
    pub(crate) fn new(spec: ResourceSpec<'_>) -> Self {
        let (resource, url) = spec.resource;
        let path = match url.path() {
            "/" | "" => "",
            path => path,
        };
        let metadata_url = format!(
            "{}{WELL_KNOWN_PATH}{path}",
            url.origin().ascii_serialization()
        );
        let mut paths = Vec::new();
        if !path.is_empty() {
            paths.push(format!("{WELL_KNOWN_PATH}{path}"));
        }
        paths.push(WELL_KNOWN_PATH.to_owned());
        let mut authorization_servers = vec![issuer(spec.authority, spec.home_tenant)];
        authorization_servers.extend(
            spec.tenants
                .iter()
                .filter(|t| *t != spec.home_tenant)
                .map(|t| issuer(spec.authority, t)),
        );
        let scope_prefix = match &spec.app_id_uri {
            Some(uri) => format!("{uri}/"),
            None => format!("api://{}/", spec.client_id),
        };
        let scopes_supported: Vec<String> = if spec.user_scopes.is_empty() {
            vec![format!("{scope_prefix}.default")]
        } else {
            spec.user_scopes
                .iter()
                .map(|s| qualify(&scope_prefix, s))
                .collect()
        };
        let challenge_scope = scopes_supported.join(" ");
        Self {
            metadata: ProtectedResourceMetadata {
                resource: resource.to_owned(),
                authorization_servers,
                scopes_supported,
                bearer_methods_supported: vec!["header".to_owned()],
                resource_name: spec.name,
                resource_documentation: spec.documentation,
                metadata_url,
                paths,
            },
            scope_prefix,
            challenge_scope,
        }
    }

    /// `challenge` with `resource_metadata`, its scopes in requestable form, and
    /// (on a 401) the supported scopes when it names none; `None` when it is not a
    /// `Bearer` challenge this function can parse, or already names its metadata.
    pub(crate) fn challenge(&self, challenge: &str, unauthorized: bool) -> Option<String> {
        let params = parse_bearer(challenge)?;
        if params
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("resource_metadata"))
        {
            return None;
        }
        let mut out = String::from("Bearer");
        let mut has_scope = false;
        let mut separator = " ";
        for (name, value) in &params {
            out.push_str(separator);
            separator = ", ";
            if name.eq_ignore_ascii_case("scope") {
                has_scope = true;
                let scopes: Vec<String> = unquote(value)
                    .split_ascii_whitespace()
                    .map(|s| qualify(&self.scope_prefix, s))
                    .collect();
                let _ = write!(out, "{name}=\"{}\"", quoted(&scopes.join(" ")));
            } else {
                let _ = write!(out, "{name}={value}");
            }
        }
        if unauthorized && !has_scope && !self.challenge_scope.is_empty() {
            let _ = write!(
                out,
                "{separator}scope=\"{}\"",
                quoted(&self.challenge_scope)
            );
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

/// The layer's one hook: on a 401 or 403, each `Bearer` challenge gets what
/// [`ResourceSettings::challenge`] adds. Nothing at all without a resource URL.
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

/// The v2 issuer of `tenant`, which is what an MCP client finds in the tenant's
/// OpenID configuration.
fn issuer(authority: &str, tenant: &str) -> String {
    format!("{authority}/{tenant}/v2.0")
}

/// A bare scope name (no `/`, no `:`) prefixed; URIs (`https://graph…/User.Read`,
/// `api://…/x`) kept as they are.
fn qualify(prefix: &str, scope: &str) -> String {
    if scope.contains(['/', ':']) {
        scope.to_owned()
    } else {
        format!("{prefix}{scope}")
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
    use super::*;

    const C: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    const HOME: &str = "11111111-2222-3333-4444-555555555555";
    const OTHER: &str = "00000000-2222-3333-4444-555555555555";

    fn settings(resource: &str, scopes: &[&str], tenants: &[&str]) -> ResourceSettings {
        let url = url::Url::parse(resource).unwrap();
        let tenants: Vec<String> = tenants.iter().map(|t| (*t).to_owned()).collect();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        ResourceSettings::new(ResourceSpec {
            resource: (resource, &url),
            name: Some("Contoso MCP".into()),
            documentation: None,
            app_id_uri: None,
            authority: "https://login.microsoftonline.com",
            home_tenant: HOME,
            tenants: &tenants,
            client_id: C,
            user_scopes: &scopes,
        })
    }

    #[test]
    fn the_metadata_address_inserts_the_well_known_path() {
        let cases = [
            (
                "https://mcp.contoso.com/mcp",
                "https://mcp.contoso.com/.well-known/oauth-protected-resource/mcp",
                &["/.well-known/oauth-protected-resource/mcp", WELL_KNOWN_PATH][..],
            ),
            (
                "https://mcp.contoso.com:8443/tools/v1",
                "https://mcp.contoso.com:8443/.well-known/oauth-protected-resource/tools/v1",
                &[
                    "/.well-known/oauth-protected-resource/tools/v1",
                    WELL_KNOWN_PATH,
                ][..],
            ),
            (
                "https://mcp.contoso.com",
                "https://mcp.contoso.com/.well-known/oauth-protected-resource",
                &[WELL_KNOWN_PATH][..],
            ),
            (
                "http://127.0.0.1:3000/",
                "http://127.0.0.1:3000/.well-known/oauth-protected-resource",
                &[WELL_KNOWN_PATH][..],
            ),
        ];
        for (resource, url, paths) in cases {
            let s = settings(resource, &["access_as_user"], &[HOME]);
            assert_eq!(s.metadata.metadata_url(), url, "{resource}");
            assert_eq!(s.metadata.paths().collect::<Vec<_>>(), paths, "{resource}");
            assert_eq!(s.metadata.resource, resource, "kept as given");
        }
    }

    #[test]
    fn the_document_has_the_rfc_9728_fields() {
        let s = settings(
            "https://h/mcp",
            &["access_as_user", "Tasks.Read"],
            &[OTHER, HOME],
        );
        let json = serde_json::to_value(&s.metadata).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "resource": "https://h/mcp",
                "authorization_servers": [
                    format!("https://login.microsoftonline.com/{HOME}/v2.0"),
                    format!("https://login.microsoftonline.com/{OTHER}/v2.0"),
                ],
                "scopes_supported": [
                    format!("api://{C}/access_as_user"),
                    format!("api://{C}/Tasks.Read"),
                ],
                "bearer_methods_supported": ["header"],
                "resource_name": "Contoso MCP",
            })
        );
        // Without a required scope, the client asks for the API's `.default`.
        let s = settings("https://h/mcp", &[], &[HOME]);
        assert_eq!(s.metadata.scopes_supported, [format!("api://{C}/.default")]);
    }

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
            // 403 from a requirement: its bare scopes become requestable.
            (
                "Bearer error=\"insufficient_scope\", error_description=\"requires one of the scopes: Tasks.Read Tasks.Write\", scope=\"Tasks.Read Tasks.Write\"",
                false,
                format!("Bearer error=\"insufficient_scope\", error_description=\"requires one of the scopes: Tasks.Read Tasks.Write\", scope=\"api://{C}/Tasks.Read api://{C}/Tasks.Write\", {rm}"),
            ),
            // 403 naming no scope (app-only, roles): none is invented.
            (
                "Bearer error=\"insufficient_scope\", error_description=\"x\"",
                false,
                format!("Bearer error=\"insufficient_scope\", error_description=\"x\", {rm}"),
            ),
            // URIs are kept; commas and `=` inside quotes do not split.
            (
                "Bearer error=\"insufficient_scope\", error_description=\"a, b=c\", scope=\"https://graph.microsoft.com/Mail.Read\"",
                false,
                format!("Bearer error=\"insufficient_scope\", error_description=\"a, b=c\", scope=\"https://graph.microsoft.com/Mail.Read\", {rm}"),
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
}
