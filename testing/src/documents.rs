//! The JSON documents the stand-in serves: OpenID metadata (v1 and v2), key sets, and the
//! instance-discovery answer. Pure functions of the stand-in's state; no HTTP here.

use std::collections::HashMap;

use http::StatusCode;
use serde_json::{json, Value};

use super::cloud::{host_of, instance_metadata, is_known_host, CONSUMERS_TENANT_ID};
use super::ids::is_guid;
use super::response::EntraError;
use super::state::Shared;

/// The placeholder Entra puts in multi-tenant issuers.
const TENANT_TEMPLATE: &str = "{tenantid}";

/// What a tenant path segment names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tenant {
    /// One tenant, by id (lowercased).
    Id(String),
    /// `common`: any organisation or Microsoft account.
    Common,
    /// `organizations`: any organisation.
    Organizations,
    /// `consumers`: Microsoft accounts (one tenant id).
    Consumers,
}

impl Tenant {
    /// Parses a tenant segment; `None` for anything Entra would answer AADSTS90002 to.
    /// (Entra also resolves verified domain names; the stand-in knows none.)
    pub(super) fn parse(segment: &str) -> Option<Tenant> {
        if is_guid(segment) {
            return Some(Tenant::Id(segment.to_ascii_lowercase()));
        }
        match segment.to_ascii_lowercase().as_str() {
            "common" => Some(Tenant::Common),
            "organizations" => Some(Tenant::Organizations),
            "consumers" => Some(Tenant::Consumers),
            _ => None,
        }
    }

    /// The tenant part of issuers: the id, or the `{tenantid}` template.
    fn issuer_id(&self) -> &str {
        match self {
            Tenant::Id(tid) => tid,
            Tenant::Common | Tenant::Organizations => TENANT_TEMPLATE,
            Tenant::Consumers => CONSUMERS_TENANT_ID,
        }
    }

    /// `tenant_region_scope`: a region for one organisation, `null` otherwise.
    fn region_scope(&self) -> Value {
        match self {
            Tenant::Id(_) => "NA".into(),
            _ => Value::Null,
        }
    }
}

/// `GET /{segment}/v2.0/.well-known/openid-configuration`.
pub(super) fn openid_configuration_v2(shared: &Shared, segment: &str, tenant: &Tenant) -> Value {
    let base = format!("{}/{segment}", shared.authority);
    let cloud = shared.cloud;
    json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": shared.issuer_v2(tenant.issuer_id()),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("https://{}/oidc/userinfo", cloud.msgraph_host),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
            "name", "tid", "ver", "at_hash", "c_hash", "email"
        ],
        "kerberos_endpoint": format!("{base}/kerberos"),
        "tenant_region_scope": tenant.region_scope(),
        "cloud_instance_name": cloud.instance_name,
        "cloud_graph_host_name": cloud.graph_host,
        "msgraph_host": cloud.msgraph_host,
        "rbac_url": cloud.rbac_url,
    })
}

/// `GET /{segment}/.well-known/openid-configuration` (v1).
pub(super) fn openid_configuration_v1(shared: &Shared, segment: &str, tenant: &Tenant) -> Value {
    let base = format!("{}/{segment}", shared.authority);
    let cloud = shared.cloud;
    json!({
        "token_endpoint": format!("{base}/oauth2/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
        "scopes_supported": ["openid"],
        "issuer": shared.issuer_v1(tenant.issuer_id()),
        "microsoft_multi_refresh_token": true,
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/logout"),
        "claims_supported": [
            "sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
            "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "email",
            "given_name", "family_name", "nickname"
        ],
        "check_session_iframe": format!("{base}/oauth2/checksession"),
        "userinfo_endpoint": format!("{base}/openid/userinfo"),
        "kerberos_endpoint": format!("{base}/kerberos"),
        "tenant_region_scope": tenant.region_scope(),
        "cloud_instance_name": cloud.instance_name,
        "cloud_graph_host_name": cloud.graph_host,
        "msgraph_host": cloud.msgraph_host,
        "rbac_url": cloud.rbac_url,
    })
}

/// `GET /{segment}/discovery/v2.0/keys`: every published key with `cloud_instance_name` and
/// `issuer` (the `{tenantid}` template, or the tenant's own issuer with
/// `concrete_key_issuer`).
pub(super) fn key_set_v2(shared: &Shared, tenant: &Tenant) -> Value {
    let issuer = if shared.concrete_key_issuer {
        shared.issuer_v2(tenant.issuer_id())
    } else {
        shared.issuer_v2(TENANT_TEMPLATE)
    };
    let keys: Vec<Value> = shared
        .keys()
        .published()
        .iter()
        .map(|key| key.jwk(Some((shared.cloud.instance_name, &issuer))))
        .collect();
    json!({ "keys": keys })
}

/// `GET /{segment}/discovery/keys` (v1): every published key, without `issuer`.
pub(super) fn key_set_v1(shared: &Shared) -> Value {
    let keys: Vec<Value> = shared
        .keys()
        .published()
        .iter()
        .map(|key| key.jwk(None))
        .collect();
    json!({ "keys": keys })
}

/// `GET /{segment}/discovery/instance?api-version=1.1&authorization_endpoint=…`: the
/// instance-discovery answer MSAL asks for, pointing at the tenant's metadata.
pub(super) fn instance_discovery(
    shared: &Shared,
    query: &HashMap<String, String>,
) -> Result<Value, EntraError> {
    let Some(endpoint) = query.get("authorization_endpoint") else {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90014,
            "The required field 'authorization_endpoint' is missing.",
        ));
    };
    let own_host = host_of(&shared.authority);
    let metadata = instance_metadata(own_host);
    let host = host_of(endpoint);
    if !is_known_host(&metadata, host) {
        return Err(unknown_instance());
    }
    let (scheme, rest) = endpoint.split_once("://").ok_or_else(unknown_instance)?;
    let path = rest.get(host.len()..).unwrap_or_default();
    let tenant = path
        .trim_start_matches('/')
        .split(['/', '?'])
        .next()
        .filter(|t| !t.is_empty())
        .unwrap_or("common");
    let v2 = if path.contains("/oauth2/v2.0/") {
        "/v2.0"
    } else {
        ""
    };
    Ok(json!({
        "tenant_discovery_endpoint":
            format!("{scheme}://{host}/{tenant}{v2}/.well-known/openid-configuration"),
        "api-version": query.get("api-version").map_or("1.1", String::as_str),
        "metadata": metadata,
    }))
}

fn unknown_instance() -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "invalid_instance",
        50049,
        "Unknown or invalid instance.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_segments() {
        assert_eq!(
            Tenant::parse("9188040D-6C67-4C5B-B112-36A304B66DAD"),
            Some(Tenant::Id(CONSUMERS_TENANT_ID.into()))
        );
        assert_eq!(Tenant::parse("common"), Some(Tenant::Common));
        assert_eq!(Tenant::parse("Organizations"), Some(Tenant::Organizations));
        assert_eq!(Tenant::parse("consumers"), Some(Tenant::Consumers));
        assert_eq!(Tenant::parse("contoso.onmicrosoft.com"), None);
        assert_eq!(Tenant::parse(""), None);
    }
}
