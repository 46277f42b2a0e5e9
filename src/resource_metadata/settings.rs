//! What the configuration computes once from the resource URL and the rest of
//! the configuration: the document, and the scope forms challenges use.

use super::document::{ProtectedResourceMetadata, WELL_KNOWN_PATH};

/// What the configuration hands the layer: the document and the challenge
/// parameters, computed once.
#[derive(Debug, Clone)]
pub(crate) struct ResourceSettings {
    pub(crate) metadata: ProtectedResourceMetadata,
    /// Prefix that turns a bare scope into the form a client requests:
    /// `{app id uri}/`, by default `api://{client id}/`.
    pub(super) scope_prefix: String,
    /// `scopes_supported`, space-separated: the `scope` of 401 challenges.
    pub(super) challenge_scope: String,
    /// The layer-wide required scopes in requestable form, which a 403's `scope`
    /// lists before the route's own.
    pub(super) required_scopes: Vec<String>,
    /// The resource URL's path; `""` for the origin root, which covers every path.
    pub(super) path: String,
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
    /// The tenants listed after the home tenant: the allowed tenants when the
    /// user opted in (`resource_list_tenants`), else none.
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
        let required_scopes = spec
            .user_scopes
            .iter()
            .map(|s| qualify(&scope_prefix, s))
            .collect();
        let path = path.to_owned();
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
            required_scopes,
            path,
        }
    }

    /// Whether a request for `path` is a request for this resource (RFC 9728
    /// §3.3: the metadata's `resource` is the URL the client used): the resource's
    /// path itself or a path under it (`{path}/…`); every path when the resource
    /// is the origin root.
    pub(crate) fn covers(&self, path: &str) -> bool {
        let own = self.path.trim_end_matches('/');
        match path.strip_prefix(own) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// Whether `scope` is one of this API's: a bare name (`access_as_user`, as in
    /// `scp`) or one already prefixed with this API's Application ID URI.
    pub(super) fn is_own(&self, scope: &str) -> bool {
        !scope.contains(['/', ':']) || scope.starts_with(&self.scope_prefix)
    }
}

/// The v2 issuer of `tenant`, which is what an MCP client finds in the tenant's
/// OpenID configuration.
fn issuer(authority: &str, tenant: &str) -> String {
    format!("{authority}/{tenant}/v2.0")
}

/// A bare scope name (no `/`, no `:`) prefixed; URIs (`https://graph…/User.Read`,
/// `api://…/x`) kept as they are.
pub(super) fn qualify(prefix: &str, scope: &str) -> String {
    if scope.contains(['/', ':']) {
        scope.to_owned()
    } else {
        format!("{prefix}{scope}")
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::resource_metadata) const C: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    pub(in crate::resource_metadata) const HOME: &str = "11111111-2222-3333-4444-555555555555";
    const OTHER: &str = "00000000-2222-3333-4444-555555555555";

    /// Settings for `resource` with these required scopes and allowed tenants.
    pub(in crate::resource_metadata) fn settings(
        resource: &str,
        scopes: &[&str],
        tenants: &[&str],
    ) -> ResourceSettings {
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
    fn a_resource_covers_its_path_and_the_paths_under_it() {
        let cases = [
            ("https://h/mcp", "/mcp", true),
            ("https://h/mcp", "/mcp/", true),
            ("https://h/mcp", "/mcp/tools/x", true),
            ("https://h/mcp", "/mcpx", false),
            ("https://h/mcp", "/me", false),
            ("https://h/mcp", "/", false),
            ("https://h/mcp", "/a/mcp", false),
            ("https://h/mcp/", "/mcp/", true),
            ("https://h/mcp/", "/mcp/x", true),
            ("https://h/tools/v1", "/tools/v1/x", true),
            ("https://h/tools/v1", "/tools", false),
            ("https://h", "/", true),
            ("https://h", "/anything/at/all", true),
            ("https://h/", "/me", true),
        ];
        for (resource, path, covered) in cases {
            let s = settings(resource, &["access_as_user"], &[HOME]);
            assert_eq!(s.covers(path), covered, "{resource} {path}");
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
}
