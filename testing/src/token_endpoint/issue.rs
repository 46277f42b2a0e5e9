//! Minting what the endpoint issues: v1.0 access tokens shaped like Microsoft Graph's, refresh
//! tokens, `client_info`, and the success bodies.

use serde_json::{json, Map, Value};

use super::super::ids::{b64, b64url, derived_guid, random_bytes, sha256};
use super::super::state::Shared;
use super::client_auth::ClientAuth;
use super::jws::b64url_json;
use super::scopes::{Resource, ScopeRequest};
use super::user_assertion::Subject;

/// The API's display name in issued tokens and messages.
pub(super) const APP_DISPLAY_NAME: &str = "Entra stand-in API";
/// Lifetime of ID tokens, seconds.
const ID_TOKEN_LIFETIME: i64 = 3600;

/// An access token for `subject` (delegated), or for the API itself (`None`: app-only).
pub(super) struct Grant<'a> {
    pub(super) subject: Option<&'a Subject>,
    pub(super) tid: &'a str,
    pub(super) resource: &'a Resource,
    /// Short permission names (`scp`); empty for app-only tokens.
    pub(super) scopes: Vec<String>,
    pub(super) client: ClientAuth,
    /// `iat` and `nbf`.
    pub(super) now: i64,
    /// The client capability to echo in `xms_cc` (`cp1` as the client sent it).
    pub(super) cp1: Option<&'a str>,
}

/// Signs `grant` with the stand-in's current key, as a v1.0 token (Graph's format):
/// header `{"typ":"JWT","alg":"RS256","x5t":kid,"kid":kid}`. Every call yields a new `uti`.
pub(super) fn access_token(shared: &Shared, grant: &Grant<'_>) -> String {
    sign(shared, &Value::Object(claims(shared, grant)), true)
}

/// A v2.0 ID token for `subject`, issued to the API (the client of this request), as Entra
/// adds one when `openid` is requested: no `nonce`, `aud` = the API's client id.
pub(super) fn id_token(shared: &Shared, subject: &Subject, now: i64) -> String {
    let api = &shared.api_client_id;
    let mut claims = json!({
        "aud": api,
        "iss": shared.issuer_v2(&subject.tid),
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(ID_TOKEN_LIFETIME),
        "aio": b64(&random_bytes::<60>()),
        "oid": subject.oid,
        "rh": format!("0.A{}.", b64url(&random_bytes::<48>())),
        "sub": pairwise_sub(&subject.oid, api, &subject.tid),
        "tid": subject.tid,
        "uti": b64url(&random_bytes::<16>()),
        "ver": "2.0",
    });
    if let Some(map) = claims.as_object_mut() {
        if let Some(name) = &subject.name {
            map.insert("name".into(), name.clone().into());
        }
        if let Some(upn) = &subject.upn {
            map.insert("preferred_username".into(), upn.clone().into());
        }
    }
    sign(shared, &claims, false)
}

/// Signs `claims` as a v1.0 token (header with `x5t` and `kid`).
pub(super) fn sign_v1(shared: &Shared, claims: &Value) -> String {
    sign(shared, claims, true)
}

/// Signs `claims` as a v2.0 token (header with `kid`).
pub(super) fn sign_v2(shared: &Shared, claims: &Value) -> String {
    sign(shared, claims, false)
}

/// Signs `claims` with the current key: v1 header (`x5t` and `kid`) or v2 (`kid`).
fn sign(shared: &Shared, claims: &Value, v1_header: bool) -> String {
    let key = shared.keys().current();
    let kid = Value::from(key.kid()).to_string();
    let header = if v1_header {
        format!(r#"{{"typ":"JWT","alg":"RS256","x5t":{kid},"kid":{kid}}}"#)
    } else {
        format!(r#"{{"typ":"JWT","alg":"RS256","kid":{kid}}}"#)
    };
    let signing_input = format!("{}.{}", b64url(header.as_bytes()), b64url_json(claims));
    let signature = key.sign_rs256(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&signature))
}

/// The claims of [`access_token`]: v1.0, Graph's shape.
pub(super) fn claims(shared: &Shared, grant: &Grant<'_>) -> Map<String, Value> {
    let lifetime = shared.token_endpoint.lifetime_secs();
    let api = &shared.api_client_id;
    let tid = grant.tid;
    let mut claims = Map::new();
    let mut put = |name: &str, value: Value| {
        claims.insert(name.to_owned(), value);
    };
    put("aud", grant.resource.uri.clone().into());
    put("iss", shared.issuer_v1(tid).into());
    put("iat", grant.now.into());
    put("nbf", grant.now.into());
    put("exp", grant.now.saturating_add(lifetime).into());
    put("aio", b64(&random_bytes::<60>()).into());
    put("app_displayname", APP_DISPLAY_NAME.into());
    put("appid", api.clone().into());
    put("appidacr", grant.client.acr().into());
    put(
        "rh",
        format!("0.A{}.", b64url(&random_bytes::<48>())).into(),
    );
    put("tid", tid.into());
    put("uti", b64url(&random_bytes::<16>()).into());
    put("ver", "1.0".into());
    if let Some(cp1) = grant.cp1 {
        put("xms_cc", json!([cp1]));
    }
    put("xms_tcdt", 1_600_000_000.into());
    match grant.subject {
        Some(user) => {
            put("acct", 0.into());
            put("acr", "1".into());
            put("amr", user.amr.clone().unwrap_or_else(|| json!(["pwd"])));
            put("idtyp", "user".into());
            put("ipaddr", "127.0.0.1".into());
            if let Some(name) = &user.name {
                put("name", name.clone().into());
            }
            put("oid", user.oid.clone().into());
            put("scp", grant.scopes.join(" ").into());
            put(
                "sub",
                pairwise_sub(&user.oid, &grant.resource.app_id, tid).into(),
            );
            put("tenant_region_scope", "NA".into());
            if let Some(upn) = &user.upn {
                put("unique_name", upn.clone().into());
                put("upn", upn.clone().into());
            }
            if let Some(wids) = &user.wids {
                put("wids", wids.clone());
            }
        }
        None => {
            // The API's service principal in the tenant.
            let sp = derived_guid(&["service-principal", tid, api]);
            put("idp", shared.issuer_v1(tid).into());
            put("idtyp", "app".into());
            put("oid", sp.clone().into());
            put("sub", sp.into());
        }
    }
    claims
}

/// A pairwise `sub`: stable per user, resource and tenant.
fn pairwise_sub(oid: &str, app: &str, tid: &str) -> String {
    b64url(&sha256(format!("{oid}\n{app}\n{tid}").as_bytes()))
}

/// An opaque refresh token, shaped like Entra's.
pub(super) fn refresh_token() -> String {
    format!("1.A{}", b64url(&random_bytes::<384>()))
}

/// `client_info`: base64url of `{"uid":oid,"utid":tid}` (MSAL's home account id).
pub(super) fn client_info(subject: &Subject) -> String {
    b64url_json(&json!({ "uid": subject.oid, "utid": subject.tid }))
}

/// The success body of a delegated grant (OBO, refresh): `scope` lists the granted
/// permissions as full URIs, without the OpenID scopes; `refresh_token`, `id_token` and
/// `client_info` when given.
pub(super) fn delegated_body(
    shared: &Shared,
    scopes: &ScopeRequest,
    access_token: String,
    refresh_token: Option<String>,
    id_token: Option<String>,
    client_info: Option<String>,
) -> Value {
    let lifetime = shared.token_endpoint.lifetime_secs();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scopes.granted_uris(shared).join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    });
    if let Some(map) = body.as_object_mut() {
        if let Some(refresh_token) = refresh_token {
            map.insert("refresh_token".into(), refresh_token.into());
        }
        if let Some(id_token) = id_token {
            map.insert("id_token".into(), id_token.into());
        }
        if let Some(client_info) = client_info {
            map.insert("client_info".into(), client_info.into());
        }
    }
    body
}

/// The success body of a client-credentials grant (no `scope`, no refresh token).
pub(super) fn app_only_body(shared: &Shared, access_token: String) -> Value {
    let lifetime = shared.token_endpoint.lifetime_secs();
    json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    })
}
