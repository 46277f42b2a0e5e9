//! This API as an OAuth protected resource (RFC 9728, for MCP servers): the
//! builder methods, the variables `from_lookup` reads (`OBO_RESOURCE_URL`,
//! `OBO_RESOURCE_NAME`, `OBO_RESOURCE_DOCUMENTATION`, `OBO_APP_ID_URI`,
//! `OBO_RESOURCE_LIST_TENANTS`), and their checks at build.

use std::sync::Arc;

use super::builder::OboConfigBuilder;
use super::checks::https_url;
use super::error::ConfigError;
use crate::resource_metadata::{ResourceSettings, ResourceSpec};

/// The resource fields as given.
#[derive(Clone, Debug, Default)]
pub(super) struct ResourceFields {
    pub(super) url: Option<String>,
    pub(super) name: Option<String>,
    pub(super) documentation: Option<String>,
    pub(super) app_id_uri: Option<String>,
    /// Whether the metadata lists every allowed tenant's issuer (opt-in).
    pub(super) list_tenants: bool,
}

impl OboConfigBuilder {
    /// This API's canonical URL as an OAuth protected resource (RFC 9728), e.g.
    /// `https://mcp.contoso.com/mcp` for an MCP server: the URL clients connect to.
    /// `https://`, or `http://` on loopback; no query or fragment; in canonical
    /// form (lower-case scheme and host, no default port such as `:443`, no `.`
    /// or `..` segments, spaces and braces percent-encoded; `build()` names the
    /// form to write otherwise), and no path segment starting with `:` or `*`.
    ///
    /// With it, the 401s (and the 403s a scope of this API can fix) of requests
    /// for this URL or a path under it name the metadata document
    /// (`resource_metadata="…"`) and the scopes to request, and
    /// [`OboConfig::resource_metadata`](crate::OboConfig::resource_metadata) serves
    /// the document (see [`resource_metadata`](crate::resource_metadata)). Without
    /// it, challenges stay plain RFC 6750. Audience checks do not change: Entra v2
    /// tokens carry the client id, not this URL. Environment: `OBO_RESOURCE_URL`.
    pub fn resource_url(mut self, url: impl Into<String>) -> Self {
        self.forget_origin("resource_url");
        self.resource.url = Some(url.into());
        self
    }

    /// A human-readable name for the metadata's `resource_name` (1 to 200
    /// characters, no control characters). Requires
    /// [`resource_url`](Self::resource_url). Environment: `OBO_RESOURCE_NAME`.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.forget_origin("resource_name");
        self.resource.name = Some(name.into());
        self
    }

    /// A page of developer documentation for the metadata's
    /// `resource_documentation` (`https://`, or `http://` on loopback). Requires
    /// [`resource_url`](Self::resource_url). Environment:
    /// `OBO_RESOURCE_DOCUMENTATION`.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.forget_origin("resource_documentation");
        self.resource.documentation = Some(url.into());
        self
    }

    /// The API's Application ID URI, which the metadata's `scopes_supported` and
    /// the challenges' `scope` put before the bare scope names (`{app id uri}/access_as_user`);
    /// default `api://{client id}`. Set it when the registration's App ID URI is
    /// another one (`api://contoso.com/tasks`, `https://mcp.contoso.com/mcp`). An
    /// absolute URI without spaces or quotes; a trailing `/` is dropped. Requires
    /// [`resource_url`](Self::resource_url). It is also an accepted audience, in
    /// addition to [`audiences`](Self::audiences) (default or given): v1 tokens
    /// requested for it carry it as `aud` (as given, trimmed, and without its
    /// trailing `/`). Environment: `OBO_APP_ID_URI`.
    pub fn app_id_uri(mut self, uri: impl Into<String>) -> Self {
        self.forget_origin("app_id_uri");
        self.resource.app_id_uri = Some(uri.into());
        self
    }

    /// Whether the metadata's `authorization_servers` lists the issuer of every
    /// allowed tenant ([`allow_tenants`](Self::allow_tenants)) after the home
    /// tenant's; by default (`false`) it lists the home tenant's issuer only.
    ///
    /// The metadata is public: listing the allowed tenants publishes them, and
    /// for a multi-tenant SaaS the allowed tenants are its customer list. The
    /// cost of the default: an MCP client signs its user in at the first (here,
    /// the only) authorization server, the home tenant; a user of another allowed
    /// tenant who is not a guest there cannot sign in at it (AADSTS50020), so
    /// that client must be told its user's tenant (or `organizations`) out of
    /// band — its own configuration. Turn this on only when the allowed tenants
    /// are not a secret. Requires [`resource_url`](Self::resource_url) when
    /// `true`. Environment: `OBO_RESOURCE_LIST_TENANTS` (`true` or `false`).
    pub fn resource_list_tenants(mut self, list: bool) -> Self {
        self.forget_origin("resource_list_tenants");
        self.resource.list_tenants = list;
        self
    }

    /// `OBO_RESOURCE_URL`, `OBO_RESOURCE_NAME`, `OBO_RESOURCE_DOCUMENTATION`,
    /// `OBO_APP_ID_URI` and `OBO_RESOURCE_LIST_TENANTS`.
    pub(super) fn read_resource(
        self,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut b = self;
        if let Some(url) = get("OBO_RESOURCE_URL") {
            b = b
                .resource_url(url)
                .came_from("resource_url", "OBO_RESOURCE_URL");
        }
        if let Some(name) = get("OBO_RESOURCE_NAME") {
            b = b
                .resource_name(name)
                .came_from("resource_name", "OBO_RESOURCE_NAME");
        }
        if let Some(url) = get("OBO_RESOURCE_DOCUMENTATION") {
            b = b
                .resource_documentation(url)
                .came_from("resource_documentation", "OBO_RESOURCE_DOCUMENTATION");
        }
        if let Some(uri) = get("OBO_APP_ID_URI") {
            b = b.app_id_uri(uri).came_from("app_id_uri", "OBO_APP_ID_URI");
        }
        if let Some(flag) = get("OBO_RESOURCE_LIST_TENANTS") {
            let list = match flag.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(
                        ConfigError::new("resource_list_tenants", "must be true or false")
                            .in_variable("OBO_RESOURCE_LIST_TENANTS"),
                    )
                }
            };
            b = b
                .resource_list_tenants(list)
                .came_from("resource_list_tenants", "OBO_RESOURCE_LIST_TENANTS");
        }
        Ok(b)
    }
}

/// The audiences a configured Application ID URI adds: v1 tokens requested for
/// it carry it as `aud`, as registered: the value given (trimmed) and the form
/// without a trailing `/`. Meaningful once [`build_resource`] accepted `fields`.
pub(super) fn app_id_uri_audiences(fields: &ResourceFields) -> Vec<String> {
    let Some(given) = fields.app_id_uri.as_deref().map(str::trim) else {
        return Vec::new();
    };
    let mut audiences = vec![given.to_owned()];
    let bare = given.trim_end_matches('/');
    if bare != given && !bare.is_empty() {
        audiences.push(bare.to_owned());
    }
    audiences
}

/// The checked fields, as the settings the layer and the metadata router use.
pub(super) struct ResourceContext<'a> {
    pub(super) authority: &'a str,
    pub(super) home_tenant: &'a str,
    pub(super) tenants: &'a [String],
    pub(super) client_id: &'a str,
    pub(super) user_scopes: &'a [String],
}

/// The resource settings, or `None` without a resource URL; the first field at
/// fault otherwise.
pub(super) fn build_resource(
    fields: ResourceFields,
    context: ResourceContext<'_>,
) -> Result<Option<Arc<ResourceSettings>>, ConfigError> {
    let Some(raw) = fields.url else {
        for (field, given) in [
            ("resource_name", fields.name.is_some()),
            ("resource_documentation", fields.documentation.is_some()),
            ("app_id_uri", fields.app_id_uri.is_some()),
            ("resource_list_tenants", fields.list_tenants),
        ] {
            if given {
                return Err(ConfigError::new(field, "requires resource_url"));
            }
        }
        return Ok(None);
    };
    let resource = raw.trim();
    // RFC 9728 §1.2 forbids a fragment and discourages a query: no query either,
    // which the metadata address could not carry.
    let url = https_url("resource_url", resource, false)?;
    canonical_resource(resource, &url)?;
    let name = fields
        .name
        .map(|n| {
            let n = n.trim();
            if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
                Err(ConfigError::new(
                    "resource_name",
                    "must be 1 to 200 characters without control characters",
                ))
            } else {
                Ok(n.to_owned())
            }
        })
        .transpose()?;
    let documentation = fields
        .documentation
        .map(|d| https_url("resource_documentation", d.trim(), false).map(|u| u.to_string()))
        .transpose()?;
    let app_id_uri = fields.app_id_uri.as_deref().map(app_id_uri).transpose()?;
    Ok(Some(Arc::new(ResourceSettings::new(ResourceSpec {
        resource: (resource, &url),
        name,
        documentation,
        app_id_uri,
        authority: context.authority,
        home_tenant: context.home_tenant,
        tenants: if fields.list_tenants {
            context.tenants
        } else {
            &[]
        },
        client_id: context.client_id,
        user_scopes: context.user_scopes,
    }))))
}

/// The resource URL exactly as the `url` crate writes it (lower-case scheme and
/// host, no default port, dot segments resolved, percent-encoding), but for a
/// bare origin's trailing `/`: the metadata address is derived from that form, and
/// the document's `resource` must name the same URL (RFC 9728 §3.3). And a path
/// axum can route the metadata at: no segment starting with `:` or `*`, no `{`
/// or `}`.
fn canonical_resource(given: &str, url: &url::Url) -> Result<(), ConfigError> {
    let canonical = url.as_str();
    let bare_origin = url.path() == "/" && canonical.strip_suffix('/') == Some(given);
    if given != canonical && !bare_origin {
        return Err(ConfigError::new(
            "resource_url",
            format!("is not in canonical form; write it as {canonical}"),
        ));
    }
    let unroutable = url
        .path()
        .split('/')
        .any(|segment| segment.starts_with([':', '*']) || segment.contains(['{', '}']));
    if unroutable {
        return Err(ConfigError::new(
            "resource_url",
            "has a path segment starting with `:` or `*`, or holding `{` or `}`, \
             which the metadata route cannot match literally",
        ));
    }
    Ok(())
}

/// An Application ID URI: `scheme:rest`, no whitespace, quotes or backslashes
/// (it goes into quoted challenge parameters), no trailing `/`.
fn app_id_uri(raw: &str) -> Result<String, ConfigError> {
    let uri = raw.trim().trim_end_matches('/');
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if !scheme_ok
        || uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\'))
    {
        return Err(ConfigError::new(
            "app_id_uri",
            "must be an absolute URI such as api://contoso.com/tasks, without spaces or quotes",
        ));
    }
    Ok(uri.to_owned())
}
