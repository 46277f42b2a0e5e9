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

// ---- Token endpoint (part 2) ----

const GRAPH_USER_READ: &str = "https://graph.microsoft.com/User.Read";
const OTHER_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// Form fields of a token request.
type Form = Vec<(&'static str, String)>;

/// An OBO request as MSAL sends it, authenticated with the client secret.
fn obo_form(entra: &EntraStandIn, assertion: &str, scope: &str) -> Form {
    vec![
        ("client_id", entra.api_client_id()),
        ("client_secret", entra.client_secret()),
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
        ),
        ("assertion", assertion.to_owned()),
        ("requested_token_use", "on_behalf_of".to_owned()),
        ("scope", scope.to_owned()),
        ("client_info", "1".to_owned()),
    ]
}

fn replace(mut form: Form, name: &'static str, value: Option<&str>) -> Form {
    form.retain(|(n, _)| *n != name);
    if let Some(value) = value {
        form.push((name, value.to_owned()));
    }
    form
}

/// POSTs `form` to the stand-in's token endpoint for `tenant`: (status, headers, JSON body).
async fn post_token(
    entra: &EntraStandIn,
    tenant: &str,
    form: &[(&str, String)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = client()
        .post(entra.token_endpoint(tenant))
        .header("client-request-id", "0c1d2e3f-0000-4000-8000-000000000042")
        .form(form)
        .send()
        .await
        .expect("the stand-in answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Asserts Entra's error shape: `error`, one AADSTS code, the CRLF trailer, the correlation id.
#[track_caller]
fn assert_entra_error(
    answer: &(u16, reqwest::header::HeaderMap, Value),
    status: u16,
    error: &str,
    code: u64,
) {
    let (got, headers, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    assert_eq!(
        body["correlation_id"],
        "0c1d2e3f-0000-4000-8000-000000000042"
    );
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    assert!(description.contains("\r\nTrace ID: "), "{description}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json; charset=utf-8")
    );
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap_or_default();
    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn obo_exchange_issues_a_graph_token_that_verifies() {
    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    let user = entra.token();
    let inbound = user.claims();
    let answer = post_token(
        &entra,
        &tid,
        &obo_form(&entra, &user.sign(), GRAPH_USER_READ),
    )
    .await;
    let (status, headers, body) = &answer;
    assert_eq!(*status, 200, "{body}");
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("cache-control"), Some("no-store, no-cache"));
    assert_eq!(header("pragma"), Some("no-cache"));
    assert_eq!(
        header("client-request-id"),
        Some("0c1d2e3f-0000-4000-8000-000000000042")
    );
    assert!(header("x-ms-request-id").is_some());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], GRAPH_USER_READ);
    assert_eq!(
        (body["expires_in"].as_i64(), body["ext_expires_in"].as_i64()),
        (Some(3599), Some(3599))
    );
    assert!(body.get("refresh_token").is_none());
    assert!(body["client_info"].is_string());

    let token = body["access_token"].as_str().unwrap_or_default();
    let jwks_uri = format!("{}/{tid}/discovery/v2.0/keys", entra.authority_host());
    let claims = verify(
        token,
        &jwks_uri,
        "https://graph.microsoft.com",
        &format!("https://sts.windows.net/{tid}/"),
    )
    .await
    .expect("the issued token verifies against the published key");
    assert_eq!(claims["scp"], "User.Read");
    assert_eq!(claims["appid"], entra.api_client_id());
    assert_eq!(claims["appidacr"], "1");
    assert_eq!(claims["idtyp"], "user");
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["oid"], inbound["oid"]);
    assert_eq!(claims["upn"], inbound["preferred_username"]);
    assert_eq!(
        claims["exp"].as_i64().unwrap_or_default() - claims["iat"].as_i64().unwrap_or_default(),
        3599
    );

    // Every exchange is a new token.
    let again = post_token(
        &entra,
        &tid,
        &obo_form(&entra, &entra.token().sign(), GRAPH_USER_READ),
    )
    .await;
    assert_ne!(
        claims_of(token)["uti"],
        claims_of(again.2["access_token"].as_str().unwrap_or_default())["uti"]
    );
    assert_eq!((entra.token_requests(), entra.tokens_issued()), (2, 2));
    let log = entra.token_request_log();
    assert_eq!(log[0].tenant, tid);
    assert_eq!(log[0].form["requested_token_use"], "on_behalf_of");
    assert_eq!(
        log[0].headers["client-request-id"],
        "0c1d2e3f-0000-4000-8000-000000000042"
    );
    assert_eq!(log[0].status, 200);
}

#[tokio::test]
async fn certificate_and_federated_client_assertions() {
    use aws_lc_rs::signature::{RsaKeyPair, RSA_PSS_SHA256};

    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("an RSA key");
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|params| params.self_signed(&key))
        .expect("a self-signed certificate");
    let signer = RsaKeyPair::from_pkcs8(&key.serialize_der()).expect("a PKCS#8 key");
    let thumbprint = ids::b64url(&ids::sha256(cert.der()));
    let sign = |aud: &str| {
        let now = ids::unix_seconds(std::time::SystemTime::now());
        let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": thumbprint});
        let claims = json!({
            "aud": aud, "iss": entra.api_client_id(), "sub": entra.api_client_id(),
            "jti": ids::random_guid(), "iat": now, "nbf": now, "exp": now + 600,
        });
        let input = format!(
            "{}.{}",
            ids::b64url(header.to_string().as_bytes()),
            ids::b64url(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; signer.public_modulus_len()];
        signer
            .sign(
                &RSA_PSS_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("PS256 signing");
        format!("{input}.{}", ids::b64url(&signature))
    };
    let with_assertion = |assertion: &str| {
        let form = obo_form(&entra, &entra.token().sign(), GRAPH_USER_READ);
        let form = replace(form, "client_secret", None);
        let form = replace(
            form,
            "client_assertion_type",
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        );
        replace(form, "client_assertion", Some(assertion))
    };
    let audience = entra.client_assertion_audience(&tid);

    let unregistered = post_token(&entra, &tid, &with_assertion(&sign(&audience))).await;
    assert_entra_error(&unregistered, 401, "invalid_client", 700_027);
    entra.register_certificate(&cert.pem());
    let assertion = sign(&audience);
    let ok = post_token(&entra, &tid, &with_assertion(&assertion)).await;
    assert_eq!(ok.0, 200, "{}", ok.2);
    assert_eq!(
        claims_of(ok.2["access_token"].as_str().unwrap_or_default())["appidacr"],
        "2"
    );
    entra.refuse_assertion_replay(true);
    let replayed = post_token(&entra, &tid, &with_assertion(&assertion)).await;
    assert_entra_error(&replayed, 401, "invalid_client", 700_027);
    let wrong_aud = post_token(
        &entra,
        &tid,
        &with_assertion(&sign("https://example.com/token")),
    )
    .await;
    assert_entra_error(&wrong_aud, 401, "invalid_client", 700_023);

    let federated = post_token(
        &entra,
        &tid,
        &with_assertion(&entra.mint_federated_assertion()),
    )
    .await;
    assert_eq!(federated.0, 200, "{}", federated.2);
    let expired = entra.mint_federated_assertion_with_lifetime(Duration::ZERO);
    let expired = post_token(&entra, &tid, &with_assertion(&expired)).await;
    assert_entra_error(&expired, 401, "invalid_client", 700_024);
}

#[tokio::test]
async fn token_requests_are_validated_like_entra() {
    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    let good = obo_form(&entra, &entra.token().sign(), GRAPH_USER_READ);
    let cases: Vec<(&str, Form, u16, &str, u64)> = vec![
        ("common", good.clone(), 400, "invalid_request", 9_001_023),
        (
            &tid,
            replace(good.clone(), "grant_type", Some("password")),
            400,
            "unsupported_grant_type",
            70_003,
        ),
        (
            &tid,
            replace(good.clone(), "requested_token_use", None),
            400,
            "invalid_request",
            900_144,
        ),
        (
            &tid,
            replace(good.clone(), "client_id", Some(OTHER_TENANT)),
            400,
            "unauthorized_client",
            700_016,
        ),
        (
            &tid,
            replace(good.clone(), "client_secret", None),
            401,
            "invalid_client",
            7_000_218,
        ),
        (
            &tid,
            replace(good.clone(), "client_secret", Some("wrong")),
            401,
            "invalid_client",
            7_000_215,
        ),
        (
            &tid,
            replace(
                good.clone(),
                "assertion",
                Some(&entra.token().expired().sign()),
            ),
            400,
            "invalid_grant",
            500_133,
        ),
        (
            &tid,
            replace(
                good.clone(),
                "assertion",
                Some(&entra.token().app_only().sign()),
            ),
            400,
            "invalid_grant",
            50_013,
        ),
        (
            &tid,
            replace(
                good.clone(),
                "assertion",
                Some(&entra.token().id_token().sign()),
            ),
            400,
            "invalid_grant",
            50_013,
        ),
        (
            &tid,
            replace(
                good.clone(),
                "assertion",
                Some(&entra.token().tenant(OTHER_TENANT).sign()),
            ),
            400,
            "invalid_grant",
            50_013,
        ),
        (
            &tid,
            replace(good.clone(), "scope", Some("https://unknown.example/x")),
            400,
            "invalid_scope",
            70_011,
        ),
        (
            &tid,
            replace(
                good.clone(),
                "scope",
                Some(&format!("{GRAPH_USER_READ} api://{OTHER_TENANT}/x")),
            ),
            400,
            "invalid_scope",
            28_000,
        ),
    ];
    for (tenant, form, status, error, code) in cases {
        assert_entra_error(
            &post_token(&entra, tenant, &form).await,
            status,
            error,
            code,
        );
    }
    // Guests are exchanged in their own tenant.
    let guest = obo_form(
        &entra,
        &entra.token().tenant(OTHER_TENANT).sign(),
        GRAPH_USER_READ,
    );
    let (status, _, body) = post_token(&entra, OTHER_TENANT, &guest).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap_or_default())["tid"],
        OTHER_TENANT
    );
    assert_eq!(entra.tokens_issued(), 1);
}

#[tokio::test]
async fn consent_mfa_and_injected_faults() {
    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    let user = entra.token();
    let oid = user.claims()["oid"].as_str().unwrap_or_default().to_owned();

    entra.revoke_consent("https://graph.microsoft.com/Mail.Read");
    let consent = post_token(
        &entra,
        &tid,
        &obo_form(
            &entra,
            &user.clone().sign(),
            "https://graph.microsoft.com/Mail.Read",
        ),
    )
    .await;
    assert_entra_error(&consent, 400, "invalid_grant", 65_001);
    assert_eq!(consent.2["suberror"], "consent_required");

    entra.require_mfa(&oid);
    let mfa = post_token(
        &entra,
        &tid,
        &obo_form(&entra, &user.clone().sign(), GRAPH_USER_READ),
    )
    .await;
    assert_entra_error(&mfa, 400, "interaction_required", 50_076);
    let challenge: Value =
        serde_json::from_str(mfa.2["claims"].as_str().unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(challenge["access_token"]["capolids"]["essential"], true);
    let with_mfa = user.clone().claim("amr", json!(["pwd", "mfa"])).sign();
    assert_eq!(
        post_token(&entra, &tid, &obo_form(&entra, &with_mfa, GRAPH_USER_READ))
            .await
            .0,
        200
    );

    let form = obo_form(&entra, &entra.token().sign(), GRAPH_USER_READ);
    entra.inject_token_fault(
        TokenFault::TooManyRequests {
            retry_after: Some(3),
        },
        Some(1),
    );
    let throttled = post_token(&entra, &tid, &form).await;
    assert_eq!(throttled.0, 429);
    assert_eq!(
        throttled.1.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("3")
    );
    assert_eq!(post_token(&entra, &tid, &form).await.0, 200);
    entra.inject_token_fault(TokenFault::HtmlErrorPage(502), None);
    assert_eq!(post_token(&entra, &tid, &form).await.0, 502);
    assert_eq!(post_token(&entra, &tid, &form).await.0, 502);
    entra.clear_token_faults();
    entra.inject_token_fault_for_user(&oid, TokenFault::InvalidGrant);
    let faulted = post_token(&entra, &tid, &obo_form(&entra, &with_mfa, GRAPH_USER_READ)).await;
    assert_entra_error(&faulted, 400, "invalid_grant", 500_133);
    assert_eq!(post_token(&entra, &tid, &form).await.0, 200);
    entra.inject_token_fault(TokenFault::Hang, Some(1));
    let slow = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("a reqwest client");
    assert!(slow
        .post(entra.token_endpoint(&tid))
        .form(&form)
        .send()
        .await
        .is_err());
    assert_eq!(entra.token_request_log().last().map(|r| r.status), Some(0));
}

#[tokio::test]
async fn jwks_url_and_the_request_log() {
    let entra = EntraStandIn::start().await;
    let (status, _, jwks) = get(&entra.jwks_url()).await;
    assert_eq!(status, 200);
    assert!(jwks["keys"][0]["kid"].is_string());
    entra.fail_jwks(Some(503));
    let query = "?x=1";
    let (status, _, _) = get(&format!("{}{query}", entra.jwks_url())).await;
    assert_eq!(status, 503);
    let log = entra.request_log();
    assert_eq!(entra.requests(), 2);
    let path = format!("/{}/discovery/v2.0/keys", entra.home_tenant());
    assert_eq!(
        log.iter()
            .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
            .collect::<Vec<_>>(),
        [("GET", path.as_str(), 200), ("GET", path.as_str(), 503)]
    );
    assert_eq!(log[1].query.as_deref(), Some("x=1"));
    assert!(log[0].headers.contains_key("host"));
}

/// The Graph stand-in demands each route's own permission, with Graph's 403.
#[tokio::test]
async fn graph_demands_each_routes_permission() {
    let harness = Harness::start().await;
    let graph_token = |scopes: &[&str]| {
        harness
            .entra()
            .token()
            .v1()
            .audience("https://graph.microsoft.com")
            .scopes(scopes)
            .sign()
    };
    let call = |path: &'static str, token: String| {
        let url = format!("{}/v1.0/{path}", harness.graph().url());
        async move {
            let response = client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("the Graph stand-in answers");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let cases: [(&'static str, &[&str], u16); 8] = [
        ("me", &["User.Read"], 200),
        ("me", &["Mail.Read"], 403),
        ("me/messages", &["User.Read"], 403),
        ("me/messages", &["Mail.ReadBasic"], 200),
        ("me/messages", &["Mail.Read"], 200),
        ("users", &["User.Read"], 403),
        ("users", &["User.ReadBasic.All"], 200),
        ("users", &["Directory.Read.All"], 200),
    ];
    for (path, scopes, expected) in cases {
        let (status, body) = call(path, graph_token(scopes)).await;
        assert_eq!(status, expected, "{path} with {scopes:?}: {body}");
        if status == 403 {
            assert_eq!(body["error"]["code"], "Authorization_RequestDenied");
            assert_eq!(
                body["error"]["message"],
                "Insufficient privileges to complete the operation."
            );
        }
    }
    assert_eq!(harness.graph().requests(), cases.len());
    assert!(harness.graph().request_log()[1]
        .headers
        .contains_key("authorization"));
}

/// Graph faults queue up like the token endpoint's and are answered before the token is
/// looked at.
#[tokio::test]
async fn graph_faults_queue_up_before_the_token_is_checked() {
    let harness = Harness::start().await;
    let graph = harness.graph();
    graph.inject_fault(GraphFault::Status(503), Some(2));
    graph.inject_fault(GraphFault::Delay(Duration::from_millis(50)), Some(1));
    graph.inject_fault(
        GraphFault::TooManyRequests {
            retry_after: Some(3),
        },
        None,
    );
    let url = format!("{}/v1.0/me", graph.url());
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = client().get(&url).send().await.expect("Graph answers");
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "3");
        }
    }
    // The delayed request goes on to the token check: none here, so 401.
    assert_eq!(statuses, [503, 503, 401, 429, 429]);
    graph.clear_faults();
    let response = client().get(&url).send().await.expect("Graph answers");
    assert_eq!(response.status(), 401);
    let logged: Vec<u16> = graph.request_log().iter().map(|r| r.status).collect();
    assert_eq!(logged, [503, 503, 401, 429, 429, 401]);
}

/// Entra matches scope names case-insensitively and grants them under their registered
/// names: `user.read` is granted as `User.Read` (in `scope` and `scp`), which Graph accepts.
#[tokio::test]
async fn scope_names_match_case_insensitively_and_are_granted_as_registered() {
    let harness = Harness::start().await;
    let entra = harness.entra();
    let tid = entra.home_tenant();
    for scope in [
        "https://graph.microsoft.com/user.read",
        "https://GRAPH.microsoft.com/USER.READ offline_access",
        "user.read",
    ] {
        let answer = post_token(entra, &tid, &obo_form(entra, &entra.token().sign(), scope)).await;
        let (status, _, body) = &answer;
        assert_eq!(*status, 200, "{scope}: {body}");
        assert_eq!(body["scope"], GRAPH_USER_READ, "{scope}");
        let token = body["access_token"].as_str().unwrap_or_default();
        assert_eq!(claims_of(token)["scp"], "User.Read", "{scope}");
        let response = client()
            .get(format!("{}/v1.0/me", harness.graph().url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("the Graph stand-in answers");
        assert_eq!(response.status().as_u16(), 200, "{scope}");
    }
    // A custom API's configured scopes are matched the same way; unknown names stay as asked.
    let api = format!("api://{}", entra.api_client_id());
    let answer = post_token(
        entra,
        &tid,
        &obo_form(
            entra,
            &entra.token().sign(),
            &format!("{api}/ACCESS_AS_USER {api}/Custom.Thing"),
        ),
    )
    .await;
    assert_eq!(answer.0, 200, "{}", answer.2);
    let scp = claims_of(answer.2["access_token"].as_str().unwrap_or_default())["scp"].clone();
    assert_eq!(scp, "access_as_user Custom.Thing");
}

/// Per-scope faults fail one resource's tokens only; issued access tokens are kept
/// for a test playing that resource (a Redis ACL whose password is the token).
#[tokio::test]
async fn scope_faults_and_the_issued_tokens() {
    let entra = EntraStandIn::start().await;
    entra.add_resource("https://redis.azure.com");
    let tid = entra.home_tenant();
    let app_form = |scope: &str| -> Form {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", entra.api_client_id()),
            ("client_secret", entra.client_secret()),
            ("scope", scope.to_owned()),
        ]
    };
    const REDIS: &str = "https://redis.azure.com/.default";
    let ok = post_token(&entra, &tid, &app_form(REDIS)).await;
    assert_eq!(ok.0, 200);
    let token = ok.2["access_token"].as_str().unwrap().to_owned();
    let claims = claims_of(&token);
    assert_eq!(claims["aud"], "https://redis.azure.com");
    assert_eq!(claims["idtyp"], "app");
    assert!(
        claims["oid"].is_string(),
        "the service principal's object id"
    );
    assert_eq!(entra.issued_access_tokens(), std::slice::from_ref(&token));

    entra.inject_token_fault_for_scope(
        "HTTPS://redis.azure.com/.default",
        TokenFault::ServiceUnavailable { retry_after: None },
    );
    assert_eq!(post_token(&entra, &tid, &app_form(REDIS)).await.0, 503);
    let graph = post_token(
        &entra,
        &tid,
        &app_form("https://graph.microsoft.com/.default"),
    )
    .await;
    assert_eq!(graph.0, 200, "another resource's tokens are issued");
    let issued = entra.issued_access_tokens();
    assert_eq!(issued.len(), 2, "failed requests issue nothing");
    assert_eq!(issued[0], token);
    entra.clear_token_faults();
    assert_eq!(post_token(&entra, &tid, &app_form(REDIS)).await.0, 200);
    assert_eq!(entra.issued_access_tokens().len(), 3);
}
