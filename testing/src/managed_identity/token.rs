//! The access token the endpoint hands out: a v2.0 app-only token for the managed identity,
//! signed by the Entra stand-in's current key.

use serde_json::json;

use super::super::ids::{b64, b64url, random_bytes};
use super::super::state::Shared;
use super::standin::ManagedIdentity;

/// Signs a token for `identity` in tenant `tid`, for `resource`, issued at `now`.
pub(super) fn sign(
    entra: &Shared,
    identity: &ManagedIdentity,
    tid: &str,
    resource: &str,
    now: i64,
    lifetime: i64,
) -> String {
    let claims = json!({
        "aud": resource,
        "iss": entra.issuer_v2(tid),
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(lifetime),
        "aio": b64(&random_bytes::<60>()),
        "azp": identity.client_id,
        "azpacr": "2",
        "idp": entra.issuer_v1(tid),
        "idtyp": "app",
        "oid": identity.principal_id,
        "rh": format!("0.A{}.", b64url(&random_bytes::<48>())),
        "sub": identity.principal_id,
        "tid": tid,
        "uti": b64url(&random_bytes::<16>()),
        "ver": "2.0",
        "xms_mirid": identity.resource_id,
    });
    let key = entra.keys().current();
    let header = json!({ "typ": "JWT", "alg": "RS256", "kid": key.kid() });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = key.sign_rs256(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(&signature))
}
