//! The managed identity endpoint stand-in over HTTP, and its tokens as federated client
//! assertions at the Entra stand-in's token endpoint.

mod common;

use std::time::{Duration, Instant};

use axum_obo_testing::{EntraStandIn, ManagedIdentityFault, ManagedIdentityStandIn};
use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

const EXCHANGE: &str = "api://AzureADTokenExchange";

/// `GET {IDENTITY_ENDPOINT}?{query}` with the secret header (or `header`): status and JSON.
async fn get_token(
    identity: &ManagedIdentityStandIn,
    query: &str,
    header: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client().get(format!("{}?{query}", identity.endpoint()));
    if let Some(header) = header {
        request = request.header("X-IDENTITY-HEADER", header);
    }
    let response = request.send().await.expect("the stand-in answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// Verifies `token` against the Entra stand-in's published v2 keys.
async fn verify(entra: &EntraStandIn, token: &str, aud: &str) -> Value {
    let jwks: Value = client()
        .get(entra.jwks_url())
        .send()
        .await
        .expect("keys")
        .json()
        .await
        .expect("a key set");
    let kid = jsonwebtoken::decode_header(token)
        .ok()
        .and_then(|h| h.kid)
        .unwrap_or_default();
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .expect("the signing key is published");
    let key = DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap_or_default(),
        jwk["e"].as_str().unwrap_or_default(),
    )
    .expect("an RSA key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[entra.issuer_v2(&entra.home_tenant())]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("a valid token")
        .claims
}

#[tokio::test]
async fn app_service_shape_for_system_and_user_assigned_identities() {
    let entra = EntraStandIn::start().await;
    let identity = ManagedIdentityStandIn::start(&entra).await;
    let secret = identity.identity_header();
    let system = identity.system_assigned();
    let (status, headers, body) = get_token(
        &identity,
        "api-version=2019-08-01&resource=api%3A%2F%2FAzureADTokenExchange",
        Some(&secret),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json; charset=utf-8")
    );
    let mut fields: Vec<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "access_token",
            "client_id",
            "expires_on",
            "resource",
            "token_type"
        ]
    );
    assert_eq!(body["resource"], EXCHANGE);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["client_id"], system.client_id.as_str());
    let expires_on: i64 = body["expires_on"]
        .as_str()
        .expect("expires_on is a string")
        .parse()
        .expect("of epoch seconds");
    let claims = verify(
        &entra,
        body["access_token"].as_str().unwrap_or_default(),
        EXCHANGE,
    )
    .await;
    assert_eq!(claims["sub"], system.principal_id.as_str());
    assert_eq!(claims["oid"], system.principal_id.as_str());
    assert_eq!(claims["azp"], system.client_id.as_str());
    assert_eq!(claims["tid"], entra.home_tenant().as_str());
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["exp"].as_i64(), Some(expires_on));
    assert!(claims["xms_mirid"]
        .as_str()
        .is_some_and(|id| id.ends_with("/providers/Microsoft.Web/sites/standin-app")));

    let first = identity.add_user_assigned("uai-one");
    let second = identity.add_user_assigned("uai-two");
    assert_eq!(
        identity.user_assigned(),
        vec![first.clone(), second.clone()]
    );
    for query in [
        format!("client_id={}", second.client_id),
        format!("object_id={}", second.principal_id),
        format!("principal_id={}", second.principal_id),
        format!("mi_res_id={}", second.resource_id),
    ] {
        let (status, _, body) = get_token(
            &identity,
            &format!("api-version=2019-08-01&resource=https://vault.azure.net&{query}"),
            Some(&secret),
        )
        .await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(body["client_id"], second.client_id.as_str());
        let token = body["access_token"].as_str().unwrap_or_default();
        let claims = verify(&entra, token, "https://vault.azure.net").await;
        assert_eq!(claims["sub"], second.principal_id.as_str());
        assert_eq!(claims["xms_mirid"], second.resource_id.as_str());
    }
}

#[tokio::test]
async fn the_platforms_errors_faults_and_request_log() {
    let entra = EntraStandIn::start().await;
    let identity = ManagedIdentityStandIn::start(&entra).await;
    let secret = identity.identity_header();
    let ok = "api-version=2019-08-01&resource=api://AzureADTokenExchange";
    let error_shape = |body: &Value| {
        assert!(body["statusCode"].is_u64(), "{body}");
        assert!(body["message"].is_string(), "{body}");
        assert!(body["correlationId"].is_string(), "{body}");
    };
    for (query, header, status) in [
        (ok, None, 401),
        (ok, Some("wrong"), 401),
        (
            "resource=api://AzureADTokenExchange",
            Some(secret.as_str()),
            400,
        ),
        (
            "api-version=2017-09-01&resource=x",
            Some(secret.as_str()),
            400,
        ),
        ("api-version=2019-08-01", Some(secret.as_str()), 400),
        (
            "api-version=2019-08-01&resource=x&client_id=nobody",
            Some(secret.as_str()),
            400,
        ),
    ] {
        let (got, _, body) = get_token(&identity, query, header).await;
        assert_eq!(got, status, "{query} {header:?}: {body}");
        error_shape(&body);
    }
    let both = format!(
        "{ok}&client_id={}&object_id={}",
        identity.system_assigned().client_id,
        identity.system_assigned().principal_id
    );
    let (got, _, body) = get_token(&identity, &both, Some(&secret)).await;
    assert_eq!(got, 400);
    assert_eq!(
        body["message"],
        "Unable to load the proper Managed Identity."
    );

    // Only user-assigned identities: the request must name one.
    let uai = identity.add_user_assigned("only-one");
    identity.set_system_assigned(false);
    let (got, _, body) = get_token(&identity, ok, Some(&secret)).await;
    assert_eq!(got, 400);
    assert_eq!(
        body["message"],
        "Unable to load the proper Managed Identity."
    );
    let named = format!("{ok}&client_id={}", uai.client_id);
    let (got, _, _) = get_token(&identity, &named, Some(&secret)).await;
    assert_eq!(got, 200);
    identity.set_system_assigned(true);

    identity.inject_fault(ManagedIdentityFault::Status(500), Some(1));
    identity.inject_fault(
        ManagedIdentityFault::Unavailable { retry_after: 2 },
        Some(1),
    );
    identity.inject_fault(
        ManagedIdentityFault::Delay(Duration::from_millis(200)),
        Some(1),
    );
    let (got, _, body) = get_token(&identity, ok, Some(&secret)).await;
    assert_eq!(got, 500);
    error_shape(&body);
    let (got, headers, _) = get_token(&identity, ok, Some(&secret)).await;
    assert_eq!(got, 503);
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("2")
    );
    let started = Instant::now();
    let (got, _, _) = get_token(&identity, ok, Some(&secret)).await;
    assert_eq!(got, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    let log = identity.request_log();
    assert_eq!(log.len(), identity.requests());
    let last = log.last().expect("a logged request");
    assert_eq!(
        (last.method.as_str(), last.path.as_str(), last.status),
        ("GET", "/msi/token", 200)
    );
    assert_eq!(last.query.as_deref(), Some(ok));
    assert_eq!(last.headers.get("x-identity-header"), Some(&secret));
    assert_eq!(log[0].status, 401);
}

/// The OBO form authenticated by a federated client assertion.
fn federated_obo(entra: &EntraStandIn, assertion: &str) -> Form {
    let form = obo_form(
        entra,
        &entra.token().sign(),
        "https://graph.microsoft.com/User.Read",
    );
    let form = with(form, "client_secret", None);
    let form = with(form, "client_assertion_type", Some(ASSERTION_TYPE));
    with(form, "client_assertion", Some(assertion))
}

#[tokio::test]
async fn a_managed_identity_token_as_a_federated_credential() {
    let entra = EntraStandIn::start().await;
    let identity = ManagedIdentityStandIn::start(&entra).await;
    let secret = identity.identity_header();
    let uai = identity.add_user_assigned("obo-credential");
    let mi_token = |query: String| {
        let identity = identity.clone();
        let secret = secret.clone();
        async move {
            let (status, _, body) = get_token(&identity, &query, Some(&secret)).await;
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().unwrap_or_default().to_owned()
        }
    };
    let exchange = format!(
        "api-version=2019-08-01&resource={EXCHANGE}&client_id={}",
        uai.client_id
    );
    let assertion = mi_token(exchange.clone()).await;

    // Not registered yet: no credential trusts the stand-in's v2 issuer.
    let answer = post_token(&entra, &federated_obo(&entra, &assertion)).await;
    assert_entra_error(&answer, 400, "invalid_request", 700_211);
    let description = answer.2["error_description"].as_str().unwrap_or_default();
    assert!(description
        .contains("No matching federated identity record found for presented assertion issuer"));

    assert_eq!(entra.token_exchange_audience(), EXCHANGE);
    entra.add_managed_identity_credential(&uai);
    let (status, _, body) = post_token(&entra, &federated_obo(&entra, &assertion)).await;
    assert_eq!(status, 200, "{body}");
    let access = claims_of(body["access_token"].as_str().unwrap_or_default());
    assert_eq!(access["appidacr"], "2");
    assert_eq!(access["appid"], entra.api_client_id().as_str());
    // … and client credentials too.
    let app_only = vec![
        ("client_id", entra.api_client_id()),
        ("client_assertion_type", ASSERTION_TYPE.to_owned()),
        ("client_assertion", assertion.clone()),
        ("grant_type", "client_credentials".to_owned()),
        ("scope", "https://graph.microsoft.com/.default".to_owned()),
    ];
    let (status, _, body) = post_token(&entra, &app_only).await;
    assert_eq!(status, 200, "{body}");

    // Another identity of the same issuer: the subject does not match.
    let system = mi_token(format!("api-version=2019-08-01&resource={EXCHANGE}")).await;
    let answer = post_token(&entra, &federated_obo(&entra, &system)).await;
    assert_entra_error(&answer, 400, "invalid_request", 700_213);

    // Another audience: no credential names it.
    let vault = mi_token(format!(
        "api-version=2019-08-01&resource=https://vault.azure.net&client_id={}",
        uai.client_id
    ))
    .await;
    let answer = post_token(&entra, &federated_obo(&entra, &vault)).await;
    assert_entra_error(&answer, 400, "invalid_request", 700_212);

    // Expired.
    identity.set_token_lifetime(Duration::ZERO);
    let expired = mi_token(exchange).await;
    let answer = post_token(&entra, &federated_obo(&entra, &expired)).await;
    assert_entra_error(&answer, 401, "invalid_client", 700_024);

    // Signed by a key the issuer does not publish.
    entra.retire_key(&entra.current_kid());
    let answer = post_token(&entra, &federated_obo(&entra, &assertion)).await;
    assert_entra_error(&answer, 401, "invalid_client", 700_027);
}

#[tokio::test]
async fn national_clouds_use_their_exchange_audience() {
    for (host, audience) in [
        (
            "https://login.microsoftonline.us",
            "api://AzureADTokenExchangeUSGov",
        ),
        (
            "https://login.chinacloudapi.cn",
            "api://AzureADTokenExchangeChina",
        ),
    ] {
        let entra = EntraStandIn::builder().advertised_host(host).start().await;
        assert_eq!(entra.token_exchange_audience(), audience);
        let identity = ManagedIdentityStandIn::start(&entra).await;
        entra.add_managed_identity_credential(&identity.system_assigned());
        let (status, _, body) = get_token(
            &identity,
            &format!("api-version=2019-08-01&resource={audience}"),
            Some(&identity.identity_header()),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let assertion = body["access_token"].as_str().unwrap_or_default();
        assert!(claims_of(assertion)["iss"]
            .as_str()
            .is_some_and(|iss| iss.starts_with(host)));
        let (status, _, body) = post_token(&entra, &federated_obo(&entra, assertion)).await;
        assert_eq!(status, 200, "{body}");
    }
}
