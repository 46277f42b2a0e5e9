//! Continuous Access Evaluation over HTTP: client capabilities and claims requests at the
//! Entra stand-in, session revocation and the claims challenge at the Graph stand-in.

mod common;

use std::time::{Duration, SystemTime};

use axum_obo_testing::Harness;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

const GRAPH: &str = "https://graph.microsoft.com/User.Read";
const CP1: &str = r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#;

async fn get_me(harness: &Harness, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}/v1.0/me", harness.graph().url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("the Graph stand-in answers")
}

/// The `claims` parameter of a `WWW-Authenticate` challenge, decoded (standard base64).
fn challenge_claims(header: &str) -> Value {
    let start = header.find("claims=\"").expect("a claims parameter") + "claims=\"".len();
    let end = start + header[start..].find('"').expect("a closing quote");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&header[start..end])
        .expect("standard base64 with padding");
    serde_json::from_slice(&raw).expect("JSON claims")
}

#[tokio::test]
async fn cp1_clients_get_xms_cc_and_nbf_requests_are_honoured() {
    let harness = Harness::start().await;
    let entra = harness.entra();
    let user = entra.token().sign();

    let (status, _, body) = post_token(entra, &obo_form(entra, &user, GRAPH)).await;
    assert_eq!(status, 200, "{body}");
    assert!(claims_of(body["access_token"].as_str().unwrap_or_default())
        .get("xms_cc")
        .is_none());

    let form = with(obo_form(entra, &user, GRAPH), "claims", Some(CP1));
    let (status, _, body) = post_token(entra, &form).await;
    assert_eq!(status, 200, "{body}");
    let access = claims_of(body["access_token"].as_str().unwrap_or_default());
    assert_eq!(access["xms_cc"], json!(["cp1"]));

    let later = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default(),
    )
    .unwrap_or_default()
        + 2;
    let merged = format!(
        r#"{{"access_token":{{"xms_cc":{{"values":["cp1"]}},"nbf":{{"essential":true,"value":"{later}"}}}}}}"#
    );
    let form = with(obo_form(entra, &user, GRAPH), "claims", Some(&merged));
    let (status, _, body) = post_token(entra, &form).await;
    assert_eq!(status, 200, "{body}");
    let access = claims_of(body["access_token"].as_str().unwrap_or_default());
    assert!(access["iat"].as_i64() >= Some(later), "{access}");
    assert!(access["nbf"].as_i64() >= Some(later), "{access}");

    for bad in [
        "{not json",
        "[\"cp1\"]",
        r#"{"access_token":{"nbf":{"value":"soon"}}}"#,
    ] {
        let form = with(obo_form(entra, &user, GRAPH), "claims", Some(bad));
        assert_entra_error(
            &post_token(entra, &form).await,
            400,
            "invalid_request",
            9_002_313,
        );
    }
}

#[tokio::test]
async fn graph_challenges_old_cp1_tokens_after_a_revocation() {
    let harness = Harness::start().await;
    let entra = harness.entra();
    let graph_token = |cp1: bool| {
        let builder = entra
            .token()
            .user("6c1f7e4e-63a4-4c43-9b8e-0a7c4d2f1b11")
            .audience("https://graph.microsoft.com")
            .scopes(&["User.Read"])
            .issued_at(SystemTime::now() - Duration::from_secs(120));
        if cp1 {
            builder.claim("xms_cc", json!(["cp1"])).sign()
        } else {
            builder.sign()
        }
    };
    let (capable, legacy) = (graph_token(true), graph_token(false));
    assert_eq!(get_me(&harness, &capable).await.status(), 200);

    let revoked_at = harness
        .graph()
        .revoke_session("6C1F7E4E-63A4-4C43-9B8E-0A7C4D2F1B11");
    let response = get_me(&harness, &capable).await;
    assert_eq!(response.status(), 401);
    let header = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        header.starts_with(
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", "
        ),
        "{header}"
    );
    assert!(header.contains("error=\"insufficient_claims\""), "{header}");
    let claims = challenge_claims(&header);
    assert_eq!(
        claims,
        json!({"access_token": {"nbf": {"essential": true, "value": revoked_at.to_string()}}})
    );
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");

    // Not CAE-capable: works until it expires.
    assert_eq!(get_me(&harness, &legacy).await.status(), 200);

    // The client answers the challenge: OBO again with the claims, merged with cp1.
    let mut request = claims.clone();
    request["access_token"]["xms_cc"] = json!({"values": ["cp1"]});
    let user = entra
        .token()
        .user("6c1f7e4e-63a4-4c43-9b8e-0a7c4d2f1b11")
        .sign();
    let form = with(
        obo_form(entra, &user, GRAPH),
        "claims",
        Some(&request.to_string()),
    );
    let (status, _, body) = post_token(entra, &form).await;
    assert_eq!(status, 200, "{body}");
    let renewed = body["access_token"].as_str().unwrap_or_default();
    assert!(claims_of(renewed)["iat"].as_i64() >= Some(revoked_at));
    assert_eq!(get_me(&harness, renewed).await.status(), 200);
}

#[tokio::test]
async fn a_session_revoked_for_good_needs_the_user() {
    let harness = Harness::start().await;
    let entra = harness.entra();
    let oid = "0d3b9c55-7a5e-4f0e-a1a3-1c2b3d4e5f60";
    let old = entra
        .token()
        .user(oid)
        .issued_at(SystemTime::now() - Duration::from_secs(300))
        .sign();
    let scope = format!("{GRAPH} offline_access");
    let (status, _, body) = post_token(entra, &obo_form(entra, &old, &scope)).await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let revoked_at = entra.revoke_session_for_good(oid);
    let expected =
        json!({"access_token": {"nbf": {"essential": true, "value": revoked_at.to_string()}}});
    let nbf = format!(
        r#"{{"access_token":{{"xms_cc":{{"values":["cp1"]}},"nbf":{{"essential":true,"value":"{revoked_at}"}}}}}}"#
    );
    for form in [
        obo_form(entra, &old, GRAPH),
        with(obo_form(entra, &old, GRAPH), "claims", Some(&nbf)),
        with(refresh_form(entra, &refresh, GRAPH), "claims", Some(&nbf)),
    ] {
        let answer = post_token(entra, &form).await;
        assert_entra_error(&answer, 400, "interaction_required", 50_133);
        let claims: Value = serde_json::from_str(answer.2["claims"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(claims, expected);
    }

    // The user signs in again: a token issued from now on is exchanged.
    let fresh = entra.token().user(oid).sign();
    let form = with(obo_form(entra, &fresh, GRAPH), "claims", Some(&nbf));
    let (status, _, body) = post_token(entra, &form).await;
    assert_eq!(status, 200, "{body}");
}
