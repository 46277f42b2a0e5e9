//! The example server's router end to end against the Entra and Graph stand-ins.

mod common;

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

use axum_obo::OboLayer;
use axum_obo_testing::GraphFault;
use common::*;
use serde_json::Value;

async fn example() -> (app::Embedded, axum::Router, OboLayer) {
    let embedded = app::Embedded::start().await;
    let layer = OboLayer::new(app::policy(embedded.config()).build().unwrap());
    layer.warm_up().await.unwrap();
    let router = app::router(layer.clone());
    (embedded, router, layer)
}

#[tokio::test]
async fn healthz_whoami_me_admin() {
    let (e, app, layer) = example().await;

    let r = call(&app, "/healthz", None).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "ok"));

    let user = e.user_token();
    let r = bearer(&app, "/whoami", &user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let who = r.json();
    for field in ["oid", "tid", "kind", "scp", "roles"] {
        assert!(!who[field].is_null(), "{field} in {who}");
    }
    assert_eq!(who["kind"], "delegated");

    // /me: validation, exchange, cache, Graph — Graph's JSON as received.
    let r = bearer(&app, "/me", &user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me: Value = r.json();
    assert_eq!(me["id"], who["oid"], "the profile is the caller's");
    assert_eq!(me["displayName"], "Adele Vance");
    assert!(me["@odata.context"].is_string(), "{me}");
    assert!(!r.body.contains("eyJ"), "no token in the answer");
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    assert_eq!(
        e.entra.tokens_issued(),
        1,
        "second /me served from the OBO cache"
    );
    assert_eq!(layer.stats().hits, 1);

    // /admin: only with the Admin role.
    assert_eq!(bearer(&app, "/admin", &user).await.status, 403);
    let r = bearer(&app, "/admin", &e.admin_token()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"ok": true}));

    // App-only tokens: /whoami yes (any role), /me no (OBO needs a user).
    let app_only = e.entra.token().app_only().roles(&["Reports.Read"]).sign();
    let r = bearer(&app, "/whoami", &app_only).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "app");
    assert_eq!(bearer(&app, "/me", &app_only).await.status, 403);

    // Delegated without access_as_user: 403 everywhere but /healthz.
    let other = e.entra.token().scopes(&["Files.Read"]).sign();
    assert_eq!(bearer(&app, "/whoami", &other).await.status, 403);
    assert_eq!(call(&app, "/me", None).await.status, 401);
}

#[tokio::test]
async fn graph_failures_are_relayed() {
    let (e, app, _) = example().await;
    let user = e.user_token();
    // Graph throttles past the retry budget → 503.
    e.graph.inject_fault(
        GraphFault::TooManyRequests {
            retry_after: Some(1),
        },
        Some(100),
    );
    let r = bearer(&app, "/me", &user).await;
    assert_eq!(r.status, 503, "{}", r.body);
    // A claims challenge from Graph goes back to the client like Entra's.
    let (e, app, _) = example().await;
    let user = e.user_token();
    e.graph.inject_fault(
        GraphFault::ClaimsChallenge(
            r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#.into(),
        ),
        Some(1),
    );
    let r = bearer(&app, "/me", &user).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let challenge = r.www_authenticate.clone().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_claims\", claims=\""),
        "{challenge}"
    );
    // It names the configured authority (here the stand-in; a national cloud in
    // production), not the public cloud.
    assert!(
        challenge.contains(&format!(
            "authorization_uri=\"{}/common/oauth2/authorize\"",
            e.entra.authority_host()
        )),
        "{challenge}"
    );
    assert!(
        !challenge.contains("login.microsoftonline.com"),
        "{challenge}"
    );
    assert_eq!(r.json()["error"], "insufficient_claims");
}
