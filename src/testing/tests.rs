//! The stand-in over loopback: metadata, key sets, signatures, rotation, faults, counters.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::*;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a reqwest client")
}

async fn get(url: &str) -> (u16, String, Value) {
    let response = client()
        .get(url)
        .send()
        .await
        .expect("the stand-in answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("a body");
    (
        status,
        content_type,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Verifies `token` against the JWKS at `jwks_uri` the way a relying party would.
async fn verify(
    token: &str,
    jwks_uri: &str,
    aud: &str,
    iss: &str,
) -> jsonwebtoken::errors::Result<Value> {
    let (_, _, jwks) = get(jwks_uri).await;
    let kid = jsonwebtoken::decode_header(token)?.kid.unwrap_or_default();
    let Some(jwk) = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
    else {
        return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
    };
    let key = DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap_or_default(),
        jwk["e"].as_str().unwrap_or_default(),
    )?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[iss]);
    Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
}

#[tokio::test]
async fn v2_metadata_keys_and_token_verify() {
    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    let host = entra.authority_host();
    let (status, content_type, meta) = get(&format!(
        "{host}/{tid}/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json; charset=utf-8");
    assert_eq!(meta["issuer"], entra.issuer_v2(&tid));
    assert_eq!(meta["issuer"], format!("{host}/{tid}/v2.0"));
    assert_eq!(
        meta["jwks_uri"],
        format!("{host}/{tid}/discovery/v2.0/keys")
    );
    assert_eq!(
        meta["token_endpoint"],
        format!("{host}/{tid}/oauth2/v2.0/token")
    );
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(meta["cloud_instance_name"], "microsoftonline.com");
    assert_eq!(meta["msgraph_host"], "graph.microsoft.com");

    let jwks_uri = meta["jwks_uri"].as_str().unwrap_or_default();
    let (_, _, jwks) = get(jwks_uri).await;
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], entra.current_kid());
    assert_eq!(key["x5t"], key["kid"]);
    assert_eq!(key["issuer"], format!("{host}/{{tenantid}}/v2.0"));

    let token = entra.token().sign();
    let claims = verify(
        &token,
        jwks_uri,
        &entra.api_client_id(),
        &entra.issuer_v2(&tid),
    )
    .await
    .expect("a default token verifies against the published key");
    assert_eq!(claims["scp"], "access_as_user");
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["tid"], tid.as_str());
    assert_eq!(claims["azp"], entra.client_app_id());
    assert_eq!(entra.discovery_requests(), 1);
    assert_eq!(entra.jwks_requests(), 2);
}

#[tokio::test]
async fn v1_token_and_key_set() {
    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    let host = entra.authority_host();
    let (_, _, meta) = get(&format!("{host}/{tid}/.well-known/openid-configuration")).await;
    assert_eq!(meta["issuer"], format!("https://sts.windows.net/{tid}/"));
    let jwks_uri = meta["jwks_uri"].as_str().unwrap_or_default();
    let (_, _, jwks) = get(jwks_uri).await;
    assert!(jwks["keys"][0].get("issuer").is_none());

    let builder = entra.token().v1();
    let header = builder.header();
    assert_eq!(header["x5t"], header["kid"]);
    let token = builder.sign();
    let aud = format!("api://{}", entra.api_client_id());
    let claims = verify(&token, jwks_uri, &aud, &entra.issuer_v1(&tid))
        .await
        .expect("a v1 token verifies");
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["appid"], entra.client_app_id());
    assert_eq!(claims["upn"], claims["unique_name"]);
    assert!(claims.get("azp").is_none());
}

#[tokio::test]
async fn rotation_retirement_and_unpublished_keys() {
    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    let jwks_uri = format!("{}/{tid}/discovery/v2.0/keys", entra.authority_host());
    let (aud, iss) = (entra.api_client_id(), entra.issuer_v2(&tid));
    let old = entra.current_kid();
    let old_token = entra.token().sign();
    let new = entra.rotate_key();
    assert_ne!(old, new);
    assert_eq!(entra.current_kid(), new);
    let new_token = entra.token().sign();
    assert!(verify(&old_token, &jwks_uri, &aud, &iss).await.is_ok());
    assert!(verify(&new_token, &jwks_uri, &aud, &iss).await.is_ok());

    entra.retire_key(&old);
    assert!(verify(&old_token, &jwks_uri, &aud, &iss).await.is_err());
    assert!(verify(&new_token, &jwks_uri, &aud, &iss).await.is_ok());

    let hidden = entra.unpublished_key();
    assert_eq!(hidden, entra.unpublished_key());
    let unknown = entra.token().kid(&hidden).sign();
    assert!(verify(&unknown, &jwks_uri, &aud, &iss).await.is_err());
    let forged = entra.token().kid(&hidden).header_kid(&new).sign();
    let error = verify(&forged, &jwks_uri, &aud, &iss)
        .await
        .expect_err("a token signed by another key must not verify");
    assert_eq!(
        error.kind(),
        &jsonwebtoken::errors::ErrorKind::InvalidSignature
    );
}

#[tokio::test]
async fn faults_counters_and_unknown_tenants() {
    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    let host = entra.authority_host();
    let jwks_uri = format!("{host}/{tid}/discovery/v2.0/keys");
    let discovery = format!("{host}/common/v2.0/.well-known/openid-configuration");

    entra.fail_jwks(Some(503));
    let (status, content_type, _) = get(&jwks_uri).await;
    assert_eq!(
        (status, content_type.as_str()),
        (503, "text/html; charset=utf-8")
    );
    entra.fail_jwks(None);
    entra.garbage_jwks(true);
    let (status, _, body) = get(&jwks_uri).await;
    assert_eq!((status, body), (200, Value::Null));
    entra.garbage_jwks(false);
    assert_eq!(get(&jwks_uri).await.0, 200);
    assert_eq!(entra.jwks_requests(), 3);

    entra.fail_discovery(Some(500));
    assert_eq!(get(&discovery).await.0, 500);
    entra.fail_discovery(None);
    let (status, _, meta) = get(&discovery).await;
    assert_eq!(status, 200);
    assert_eq!(meta["issuer"], format!("{host}/{{tenantid}}/v2.0"));
    assert_eq!(entra.discovery_requests(), 2);

    let (status, _, error) = get(&format!(
        "{host}/contoso/v2.0/.well-known/openid-configuration"
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "invalid_tenant");
    assert_eq!(error["error_codes"], json!([90002]));
    assert!(error["error_description"]
        .as_str()
        .is_some_and(|d| d.starts_with("AADSTS90002: Tenant 'contoso' not found.")));
    assert_eq!(entra.discovery_requests(), 3);

    entra.delay(Some(Duration::from_millis(300)));
    let slow = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .expect("a reqwest client");
    assert!(slow.get(&jwks_uri).send().await.is_err());
    assert_eq!(entra.jwks_requests(), 4);
}

#[tokio::test]
async fn token_shapes() {
    let entra = EntraStandIn::start().await;
    let app = entra.token().app_only().claims();
    assert_eq!(app["idtyp"], "app");
    assert_eq!(app["roles"], json!(["Tasks.Read.All"]));
    assert_eq!(app["oid"], app["sub"]);
    assert!(app.get("scp").is_none());

    let id = entra.token().id_token().claims();
    assert_eq!(id["aud"], entra.client_app_id());
    assert!(id["nonce"].is_string());
    assert!(id.get("scp").is_none());

    let user = entra
        .token()
        .scopes(&["a", "b"])
        .roles(&["r"])
        .claim("wids", json!(["x"]))
        .without_claim("rh");
    let claims = user.claims();
    assert_eq!(claims["scp"], "a b");
    assert_eq!(claims["roles"], json!(["r"]));
    assert_eq!(claims["wids"], json!(["x"]));
    assert!(claims.get("rh").is_none());
    let token = user.clone().sign();
    let payload = token.split('.').nth(1).unwrap_or_default();
    assert_eq!(payload, ids::b64url(claims.to_string().as_bytes()));

    let expired = entra.token().expired().claims();
    let now = ids::unix_seconds(std::time::SystemTime::now());
    assert!(expired["exp"].as_i64().unwrap_or(i64::MAX) <= now - 3600);
    let early = entra.token().not_yet_valid().claims();
    assert!(early["nbf"].as_i64().unwrap_or_default() >= now + 3599);

    let forged = encode_unsigned(&json!({"alg": "none"}), &claims, &[]);
    assert!(forged.ends_with('.'));
}
