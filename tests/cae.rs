//! Continuous Access Evaluation end to end: client capabilities on the OBO request, a
//! Graph claims challenge answered by one re-exchange and one retry, the user-needed
//! outcome relayed, and no capability → the challenge relayed without a retry. Against
//! the Entra and Graph stand-ins (`axum_obo_testing::Harness`).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

use axum_obo::{AuthRejection, GraphUserRead, OboLayer, OboToken};
use axum_obo_testing::{GraphFault, Harness};
use common::{bearer, Reply};

const OID: &str = "3e1c0b7a-5d4f-4a8e-9b2c-6f7d8e9a0b1c";
const CP1: &str = r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#;

/// `/me`: the handler calls Graph with the user's OBO token.
fn app(harness: &Harness, cp1: bool) -> Router {
    let mut config = harness.config().http_timeout(Duration::from_secs(3));
    if cp1 {
        config = config.client_capabilities(["cp1"]);
    }
    let layer = OboLayer::new(config.build().expect("a valid configuration"));
    Router::new()
        .route(
            "/me",
            get(|token: OboToken<GraphUserRead>| async move {
                Ok::<_, AuthRejection>(Json(token.graph().get_json("me").await?))
            }),
        )
        .layer(layer)
}

/// A user token for the API, issued five minutes ago (before any revocation).
fn user_token(harness: &Harness) -> String {
    harness
        .entra()
        .token()
        .user(OID)
        .issued_at(SystemTime::now() - Duration::from_secs(300))
        .sign()
}

/// The `claims` field of every token request so far (`None`: not sent).
fn claims_sent(harness: &Harness) -> Vec<Option<String>> {
    harness
        .entra()
        .token_request_log()
        .into_iter()
        .map(|r| r.form.get("claims").cloned())
        .collect()
}

fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// Waits for the next whole second: the stand-ins compare Unix seconds, and a revocation
/// applies to tokens issued strictly before it.
async fn next_second() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(
        1_050 - u64::from(now.subsec_millis()),
    ))
    .await;
}

/// The `claims` of a relayed challenge, decoded, and its `authorization_uri`.
fn relayed(reply: &Reply) -> (Value, String) {
    let header = reply.www_authenticate.clone().unwrap_or_default();
    assert!(header.contains("error=\"insufficient_claims\""), "{header}");
    let param = |name: &str| {
        let start = header
            .find(&format!("{name}=\""))
            .map(|i| i + name.len() + 2)
            .unwrap_or(header.len());
        let end = start + header[start..].find('"').unwrap_or(0);
        header[start..end].to_owned()
    };
    let claims = base64::engine::general_purpose::STANDARD
        .decode(param("claims"))
        .unwrap_or_default();
    (
        serde_json::from_slice(&claims).unwrap_or(Value::Null),
        param("authorization_uri"),
    )
}

#[tokio::test]
async fn cp1_is_declared_on_every_obo_request_only_when_configured() {
    let harness = Harness::start().await;
    let user = user_token(&harness);
    let reply = bearer(&app(&harness, true), "/me", &user).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(claims_sent(&harness), [Some(CP1.to_owned())]);

    let harness = Harness::start().await;
    let user = user_token(&harness);
    let reply = bearer(&app(&harness, false), "/me", &user).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(claims_sent(&harness), [None]);
}

/// Graph revokes the session: the handler's call succeeds after exactly one re-exchange
/// carrying cp1 and the challenge's `nbf`, and the new token replaces the cached one.
#[tokio::test]
async fn a_graph_claims_challenge_is_answered_by_one_reexchange_and_one_retry() {
    let harness = Harness::start().await;
    let app = app(&harness, true);
    let user = user_token(&harness);
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    next_second().await;
    let revoked_at = harness.graph().revoke_session(OID);
    let graph_calls = harness.graph().requests();

    let reply = bearer(&app, "/me", &user).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let sent = claims_sent(&harness);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        parse(sent[1].as_deref().unwrap_or_default()),
        json!({"access_token": {
            "xms_cc": {"values": ["cp1"]},
            "nbf": {"essential": true, "value": revoked_at.to_string()},
        }})
    );
    // The challenged call, then its retry.
    assert_eq!(harness.graph().requests(), graph_calls + 2);

    // The cache now holds the new token: no exchange, Graph accepts it at once.
    let reply = bearer(&app, "/me", &user).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(harness.entra().token_requests(), 2);
    assert_eq!(harness.graph().requests(), graph_calls + 3);
}

/// Requests hitting the same challenge with the same cached token share one re-exchange.
#[tokio::test]
async fn concurrent_challenges_share_one_reexchange() {
    let harness = Harness::start().await;
    let app = app(&harness, true);
    let user = user_token(&harness);
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    next_second().await;
    harness.graph().revoke_session(OID);

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (app, user) = (app.clone(), user.clone());
        calls.spawn(async move { bearer(&app, "/me", &user).await.status });
    }
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.ok().map(|s| s.as_u16()), Some(200));
    }
    assert_eq!(harness.entra().token_requests(), 2);
}

/// Entra needs the user (session revoked for good): its challenge is relayed with the
/// configured authority, after one re-exchange, without a loop.
#[tokio::test]
async fn when_entra_needs_the_user_its_challenge_is_relayed() {
    let harness = Harness::start().await;
    let app = app(&harness, true);
    let user = user_token(&harness);
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    next_second().await;
    let revoked_at = harness.entra().revoke_session_for_good(OID);
    harness.graph().revoke_session(OID);
    let graph_calls = harness.graph().requests();

    let reply = bearer(&app, "/me", &user).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(parse(&reply.body)["error"], "insufficient_claims");
    let (claims, authorization_uri) = relayed(&reply);
    assert_eq!(
        claims,
        json!({"access_token": {"nbf": {"essential": true, "value": revoked_at.to_string()}}})
    );
    assert_eq!(
        authorization_uri,
        format!(
            "{}/common/oauth2/authorize",
            harness.entra().authority_host()
        )
    );
    assert_eq!(harness.entra().token_requests(), 2);
    assert_eq!(harness.graph().requests(), graph_calls + 1, "no retry");

    // The stale token was evicted and the refusal remembered: no new exchange, no Graph call.
    let reply = bearer(&app, "/me", &user).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(harness.entra().token_requests(), 2);
    assert_eq!(harness.graph().requests(), graph_calls + 1);
}

/// Without a capability, Graph's challenge is relayed to the client without a re-exchange.
#[tokio::test]
async fn without_cp1_a_challenge_is_relayed_without_a_retry() {
    let harness = Harness::start().await;
    let app = app(&harness, false);
    let user = user_token(&harness);
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    let challenge = r#"{"access_token":{"nbf":{"essential":true,"value":"1702682181"}}}"#;
    harness
        .graph()
        .inject_fault(GraphFault::ClaimsChallenge(challenge.into()), Some(1));
    let graph_calls = harness.graph().requests();

    let reply = bearer(&app, "/me", &user).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let (claims, authorization_uri) = relayed(&reply);
    assert_eq!(claims, parse(challenge));
    assert_eq!(
        authorization_uri,
        format!(
            "{}/common/oauth2/authorize",
            harness.entra().authority_host()
        )
    );
    assert_eq!(claims_sent(&harness), [None]);
    assert_eq!(harness.graph().requests(), graph_calls + 1);
}

/// A challenge that is not a bounded access-token claims request (not a JSON object,
/// another member than `access_token`, nested values, over 4 KB) is neither sent to
/// Entra nor relayed to the client: a 502, as for a 401 without a challenge.
#[tokio::test]
async fn an_unacceptable_challenge_is_neither_answered_nor_relayed() {
    let oversized = format!(
        r#"{{"access_token":{{"nbf":{{"essential":true,"value":"1702682181"}},"acrs":{{"values":[{}]}}}}}}"#,
        vec![format!("\"{}\"", "c".repeat(200)); 30].join(",")
    );
    assert!(oversized.len() > 4096);
    for cp1 in [true, false] {
        for challenge in [
            "[\"nbf\"]",
            r#"{"id_token":{"auth_time":{"essential":true}}}"#,
            r#"{"access_token":{"nbf":{"essential":true,"value":{"$ref":"x"}}}}"#,
            oversized.as_str(),
        ] {
            let harness = Harness::start().await;
            let app = app(&harness, cp1);
            let user = user_token(&harness);
            assert_eq!(bearer(&app, "/me", &user).await.status, 200);
            harness
                .graph()
                .inject_fault(GraphFault::ClaimsChallenge(challenge.into()), Some(1));
            let graph_calls = harness.graph().requests();

            let reply = bearer(&app, "/me", &user).await;
            assert_eq!(reply.status, 502, "cp1 {cp1}, {challenge}: {}", reply.body);
            assert_eq!(parse(&reply.body)["error"], "bad_gateway");
            assert!(
                !reply
                    .www_authenticate
                    .clone()
                    .unwrap_or_default()
                    .contains("insufficient_claims"),
                "not relayed: {:?}",
                reply.www_authenticate
            );
            assert_eq!(
                harness.entra().token_requests(),
                1,
                "not sent to Entra: {challenge}"
            );
            assert_eq!(harness.graph().requests(), graph_calls + 1, "no retry");
        }
    }
}

/// Conditional Access challenges of Entra's shape (an authentication context, policy
/// ids) are answered like CAE's `nbf`: one re-exchange with the claims, one retry.
#[tokio::test]
async fn conditional_access_challenges_are_answered() {
    for challenge in [
        r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#,
        r#"{"access_token":{"capolids":{"essential":true,"values":["5a6a2c44-2c0f-4b7a-9f0f-000000000001"]}}}"#,
    ] {
        let harness = Harness::start().await;
        let app = app(&harness, true);
        let user = user_token(&harness);
        assert_eq!(bearer(&app, "/me", &user).await.status, 200);
        harness
            .graph()
            .inject_fault(GraphFault::ClaimsChallenge(challenge.into()), Some(1));

        let reply = bearer(&app, "/me", &user).await;
        assert_eq!(reply.status, 200, "{challenge}: {}", reply.body);
        let sent = claims_sent(&harness);
        assert_eq!(sent.len(), 2, "{sent:?}");
        let mut want = parse(challenge);
        want["access_token"]["xms_cc"] = json!({"values": ["cp1"]});
        assert_eq!(parse(sent[1].as_deref().unwrap_or_default()), want);
    }
}
