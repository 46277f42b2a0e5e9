//! Refresh tokens after OBO, over HTTP: issuance, rotation, revocation, expiry.

mod common;

use axum_obo_testing::{EntraStandIn, RefreshTokenExpiry, TokenFault};
use common::*;

const GRAPH: &str = "https://graph.microsoft.com/User.Read";
const MSAL_SCOPES: &str = "https://graph.microsoft.com/User.Read offline_access openid profile";

/// An OBO exchange with `offline_access`: (user oid, refresh token).
async fn sign_in(entra: &EntraStandIn) -> (String, String) {
    let user = entra.token();
    let oid = user.claims()["oid"].as_str().unwrap_or_default().to_owned();
    let (status, _, body) = post_token(entra, &obo_form(entra, &user.sign(), MSAL_SCOPES)).await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().expect("a refresh token");
    (oid, refresh.to_owned())
}

#[tokio::test]
async fn a_refresh_token_only_with_offline_access_and_opaque() {
    let entra = EntraStandIn::start().await;
    let (status, _, body) =
        post_token(&entra, &obo_form(&entra, &entra.token().sign(), GRAPH)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");

    let (_, refresh) = sign_in(&entra).await;
    assert!(refresh.starts_with("1.A"), "{refresh}");
    assert_eq!(refresh.split('.').count(), 2, "not a JWT: {refresh}");
    assert!(!refresh.starts_with("eyJ"));
}

#[tokio::test]
async fn refresh_rotates_and_the_old_token_keeps_working_as_at_entra() {
    let entra = EntraStandIn::start().await;
    let (oid, first) = sign_in(&entra).await;
    let answer = post_token(&entra, &refresh_form(&entra, &first, MSAL_SCOPES)).await;
    let (status, _, body) = &answer;
    assert_eq!(*status, 200, "{body}");
    let second = body["refresh_token"]
        .as_str()
        .expect("a rotated refresh token");
    assert_ne!(second, first);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], GRAPH);
    let access = claims_of(body["access_token"].as_str().unwrap_or_default());
    assert_eq!(access["oid"], oid.as_str());
    assert_eq!(access["aud"], "https://graph.microsoft.com");
    assert!(body["id_token"].is_string());

    // Entra does not revoke a rotated refresh token.
    let (status, _, body) = post_token(&entra, &refresh_form(&entra, &first, GRAPH)).await;
    assert_eq!(status, 200, "{body}");

    // Any consented resource: a refresh token is multi-resource.
    let api = format!("api://{}/access_as_user", entra.api_client_id());
    let (status, _, body) = post_token(&entra, &refresh_form(&entra, second, &api)).await;
    assert_eq!(status, 200, "{body}");

    // The strict, non-Entra mode: a redeemed token is spent.
    entra.refuse_refresh_token_reuse(true);
    let third = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, _, _) = post_token(&entra, &refresh_form(&entra, &third, GRAPH)).await;
    assert_eq!(status, 200);
    let again = post_token(&entra, &refresh_form(&entra, &third, GRAPH)).await;
    assert_entra_error(&again, 400, "invalid_grant", 9_002_313);

    // Logged like every grant.
    let log = entra.token_request_log();
    let refreshes = log
        .iter()
        .filter(|r| r.form.get("grant_type").map(String::as_str) == Some("refresh_token"));
    assert_eq!(refreshes.count(), 5);
    assert!(entra
        .request_log()
        .iter()
        .any(|r| r.path.ends_with("/oauth2/v2.0/token") && r.status == 400));
}

#[tokio::test]
async fn refresh_needs_the_client_and_a_known_token() {
    let entra = EntraStandIn::start().await;
    let (_, refresh) = sign_in(&entra).await;
    let form = refresh_form(&entra, &refresh, GRAPH);
    let wrong_secret = with(form.clone(), "client_secret", Some("nope"));
    assert_entra_error(
        &post_token(&entra, &wrong_secret).await,
        401,
        "invalid_client",
        7_000_215,
    );
    let no_secret = with(form.clone(), "client_secret", None);
    assert_entra_error(
        &post_token(&entra, &no_secret).await,
        401,
        "invalid_client",
        7_000_218,
    );
    let other_client = with(
        form.clone(),
        "client_id",
        Some("11111111-2222-3333-4444-555555555555"),
    );
    assert_entra_error(
        &post_token(&entra, &other_client).await,
        400,
        "unauthorized_client",
        700_016,
    );
    let unknown = with(form.clone(), "refresh_token", Some("1.AXYZ"));
    assert_entra_error(
        &post_token(&entra, &unknown).await,
        400,
        "invalid_grant",
        9_002_313,
    );
    let no_token = with(form.clone(), "refresh_token", None);
    assert_entra_error(
        &post_token(&entra, &no_token).await,
        400,
        "invalid_request",
        900_144,
    );
    let no_scope = with(form, "scope", None);
    assert_entra_error(
        &post_token(&entra, &no_scope).await,
        400,
        "invalid_request",
        900_144,
    );

    // A federated assertion authenticates a refresh like an OBO.
    let federated = with(refresh_form(&entra, &refresh, GRAPH), "client_secret", None);
    let federated = with(federated, "client_assertion_type", Some(ASSERTION_TYPE));
    let federated = with(
        federated,
        "client_assertion",
        Some(&entra.mint_federated_assertion()),
    );
    let (status, _, body) = post_token(&entra, &federated).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap_or_default())["appidacr"],
        "2"
    );
}

#[tokio::test]
async fn revoked_refresh_tokens_answer_aadsts50173() {
    let entra = EntraStandIn::start().await;
    let (oid, refresh) = sign_in(&entra).await;
    let (other_oid, other) = sign_in(&entra).await;
    assert_ne!(oid, other_oid);
    entra.revoke_refresh_tokens(&oid);
    let answer = post_token(&entra, &refresh_form(&entra, &refresh, GRAPH)).await;
    assert_entra_error(&answer, 400, "invalid_grant", 50_173);
    let description = answer.2["error_description"].as_str().unwrap_or_default();
    assert!(description.contains("The provided grant has expired due to it being revoked"));
    assert!(description.contains("TokensValidFrom"));
    assert!(answer.2.get("suberror").is_none());

    // Other users are untouched; a new sign-in works again.
    let (status, _, _) = post_token(&entra, &refresh_form(&entra, &other, GRAPH)).await;
    assert_eq!(status, 200);
    let fresh = entra.token().user(&oid).sign();
    let (status, _, body) = post_token(&entra, &obo_form(&entra, &fresh, MSAL_SCOPES)).await;
    assert_eq!(status, 200, "{body}");
    let renewed = body["refresh_token"].as_str().unwrap_or_default();
    let (status, _, body) = post_token(&entra, &refresh_form(&entra, renewed, GRAPH)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn expired_refresh_tokens_answer_700082_or_70008() {
    let entra = EntraStandIn::start().await;
    let (idle, idle_token) = sign_in(&entra).await;
    let (old, old_token) = sign_in(&entra).await;
    entra.expire_refresh_tokens(&idle, RefreshTokenExpiry::Inactive);
    entra.expire_refresh_tokens(&old, RefreshTokenExpiry::Expired);
    let answer = post_token(&entra, &refresh_form(&entra, &idle_token, GRAPH)).await;
    assert_entra_error(&answer, 400, "invalid_grant", 700_082);
    let description = answer.2["error_description"].as_str().unwrap_or_default();
    assert!(
        description
            .contains("The refresh token has expired due to inactivity. The token was issued on "),
        "{description}"
    );
    let answer = post_token(&entra, &refresh_form(&entra, &old_token, GRAPH)).await;
    assert_entra_error(&answer, 400, "invalid_grant", 70_008);
}

#[tokio::test]
async fn per_user_faults_apply_to_refresh_requests() {
    let entra = EntraStandIn::start().await;
    let (oid, refresh) = sign_in(&entra).await;
    entra.inject_token_fault_for_user(&oid, TokenFault::InteractionRequired);
    let answer = post_token(&entra, &refresh_form(&entra, &refresh, GRAPH)).await;
    assert_entra_error(&answer, 400, "interaction_required", 50_076);
    entra.clear_token_faults();
    let (status, _, _) = post_token(&entra, &refresh_form(&entra, &refresh, GRAPH)).await;
    assert_eq!(status, 200);
}
