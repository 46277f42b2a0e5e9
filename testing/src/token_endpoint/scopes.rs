//! The `scope` field: v2 scopes name a resource and a permission, e.g.
//! `https://graph.microsoft.com/User.Read`, `api://{app}/access_as_user` or
//! `{resource}/.default`; OpenID scopes ride along.

use super::super::ids::{derived_guid, is_guid};
use super::super::response::EntraError;
use super::super::state::Shared;
use super::errors;

/// Microsoft Graph's application id (also accepted as its resource identifier).
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Scopes that name no resource (OpenID Connect, refresh tokens).
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// The permission a `.default` request gets when nothing was configured: Graph's sign-in
/// permission, or a custom API's conventional delegated scope.
const GRAPH_DEFAULT: &str = "User.Read";
const API_DEFAULT: &str = "access_as_user";
/// Microsoft Graph's delegated permissions the stand-in knows, as Graph registers them.
/// Entra matches scope names case-insensitively (`user.read` is `User.Read`) and the
/// issued token's `scp` names them as registered.
const GRAPH_PERMISSIONS: &[&str] = &[
    "User.Read",
    "User.ReadWrite",
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "Mail.ReadBasic",
    "Mail.Read",
    "Mail.ReadWrite",
    "Mail.Send",
    "Calendars.Read",
    "Calendars.ReadWrite",
    "Files.Read",
    "Files.Read.All",
    "Files.ReadWrite",
    "Files.ReadWrite.All",
    "Group.Read.All",
    "GroupMember.Read.All",
    "People.Read",
    "Presence.Read",
    "Sites.Read.All",
    "Tasks.Read",
    "Tasks.ReadWrite",
];

/// The resource (downstream API) a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resource {
    /// The identifier scopes are prefixed with and tokens carry as `aud` (v1 tokens), e.g.
    /// `https://graph.microsoft.com` or `api://…`.
    pub(super) uri: String,
    /// The resource's application id (named in some error messages).
    pub(super) app_id: String,
}

/// A parsed `scope` field.
#[derive(Debug, Clone)]
pub(super) struct ScopeRequest {
    /// The one resource requested.
    pub(super) resource: Resource,
    /// Permission names as requested (`User.Read`, or `.default`).
    pub(super) names: Vec<String>,
    /// Whether `offline_access` was requested (a refresh token is issued).
    pub(super) offline_access: bool,
    /// Whether `openid` was requested (an ID token is issued).
    pub(super) openid: bool,
}

impl ScopeRequest {
    /// Whether the request is `{resource}/.default`.
    pub(super) fn is_default(&self) -> bool {
        self.names.iter().any(|n| n == ".default")
    }

    /// The permissions granted: the names requested, or for `.default` the configured list.
    pub(super) fn granted(&self, shared: &Shared) -> Vec<String> {
        if !self.is_default() {
            return self.names.clone();
        }
        shared
            .token_endpoint
            .default_scopes(&self.resource.uri)
            .unwrap_or_else(|| {
                let fallback = if self.resource.app_id == GRAPH_APP_ID {
                    GRAPH_DEFAULT
                } else {
                    API_DEFAULT
                };
                vec![fallback.to_owned()]
            })
    }

    /// The granted permissions as full scope URIs (the response's `scope`).
    pub(super) fn granted_uris(&self, shared: &Shared) -> Vec<String> {
        self.granted(shared)
            .iter()
            .map(|name| format!("{}/{name}", self.resource.uri))
            .collect()
    }
}

/// Parses a space-separated `scope` field.
pub(super) fn parse(shared: &Shared, scope: &str) -> Result<ScopeRequest, EntraError> {
    let mut resource: Option<Resource> = None;
    let mut names: Vec<String> = Vec::new();
    let mut offline_access = false;
    let mut openid = false;
    for item in scope.split_whitespace() {
        if let Some(oidc) = OIDC_SCOPES.iter().find(|s| s.eq_ignore_ascii_case(item)) {
            offline_access |= *oidc == "offline_access";
            openid |= *oidc == "openid";
            continue;
        }
        let (this, name) = split(shared, item)?;
        let name = registered(shared, &this, name);
        match &resource {
            Some(known) if *known != this => return Err(errors::several_resources(scope)),
            _ => resource = Some(this),
        }
        names.push(name);
    }
    let Some(resource) = resource else {
        return Err(errors::invalid_scope(&format!(
            "The scope '{scope}' does not name a resource: add a scope such as \
             'https://graph.microsoft.com/User.Read'."
        )));
    };
    if names.len() > 1 && names.iter().any(|n| n == ".default") {
        return Err(errors::invalid_scope(&format!(
            "The scope '{scope}' combines '.default' with other scopes of the same resource."
        )));
    }
    Ok(ScopeRequest {
        resource,
        names,
        offline_access,
        openid,
    })
}

/// `name` as the resource registered it: Entra matches permission names
/// case-insensitively and grants them under their registered names. Graph's are
/// [`GRAPH_PERMISSIONS`]; another API's are its configured `.default` scopes and
/// `access_as_user`. Unknown names (and `.default`) stay as requested.
fn registered(shared: &Shared, resource: &Resource, name: String) -> String {
    if resource.app_id == GRAPH_APP_ID {
        return GRAPH_PERMISSIONS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(&name))
            .map_or(name.clone(), |known| (*known).to_owned());
    }
    let configured = shared.token_endpoint.default_scopes(&resource.uri);
    let configured = configured.iter().flatten().map(String::as_str);
    let found = configured
        .chain(std::iter::once(API_DEFAULT))
        .find(|known| known.eq_ignore_ascii_case(&name))
        .map(str::to_owned);
    found.unwrap_or(name)
}

/// Parses the scope of a client-credentials request: exactly `{resource}/.default`.
pub(super) fn parse_app_only(shared: &Shared, scope: &str) -> Result<Resource, EntraError> {
    let items: Vec<&str> = scope.split_whitespace().collect();
    match items.as_slice() {
        [only] if only.ends_with("/.default") => Ok(split(shared, only)?.0),
        _ => Err(errors::client_credentials_scope(scope)),
    }
}

/// Splits one scope into its resource and permission name. Bare names (`User.Read`) are
/// Graph's, as at Entra.
fn split(shared: &Shared, item: &str) -> Result<(Resource, String), EntraError> {
    let invalid = || errors::invalid_scope(&format!("The scope '{item}' is not valid."));
    let Some((prefix, name)) = item.rsplit_once('/') else {
        return Ok((graph(shared), item.to_owned()));
    };
    if name.is_empty() {
        return Err(invalid());
    }
    let prefix = prefix.trim_end_matches('/');
    let graph_uri = graph(shared).uri;
    let resource = if prefix.eq_ignore_ascii_case(&graph_uri)
        || prefix.eq_ignore_ascii_case(GRAPH_APP_ID)
        || prefix.eq_ignore_ascii_case("https://graph.microsoft.com")
    {
        graph(shared)
    } else if let Some(app) = prefix.strip_prefix("api://").filter(|a| !a.is_empty()) {
        let app_id = if is_guid(app) {
            app.to_ascii_lowercase()
        } else {
            derived_guid(&["api", prefix])
        };
        Resource {
            uri: prefix.to_owned(),
            app_id,
        }
    } else if is_guid(prefix) {
        Resource {
            uri: prefix.to_ascii_lowercase(),
            app_id: prefix.to_ascii_lowercase(),
        }
    } else if shared.token_endpoint.is_extra_resource(prefix) {
        Resource {
            uri: prefix.to_owned(),
            app_id: derived_guid(&["api", prefix]),
        }
    } else {
        return Err(errors::invalid_scope(&format!(
            "The scope '{item}' is not valid: the resource '{prefix}' was not found in the \
             tenant."
        )));
    };
    Ok((resource, name.to_owned()))
}

/// Microsoft Graph in the stand-in's cloud.
fn graph(shared: &Shared) -> Resource {
    Resource {
        uri: format!("https://{}", shared.cloud.msgraph_host),
        app_id: GRAPH_APP_ID.to_owned(),
    }
}
