//! The example server's `GET /agent/me` (Entra Agent ID) against the stand-ins.

mod common;

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

use axum_obo::OboLayer;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

fn claims_of(token: &str) -> Value {
    let seg = token.split('.').nth(1).unwrap_or_default();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap_or_default()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn agent_me_is_the_callers_profile_fetched_by_the_agent_on_their_behalf() {
    let e = app::Embedded::start().await;
    let agent = e.demo_agent();
    let layer = OboLayer::new(app::policy(e.config()).build().unwrap());
    let router = app::agent::router(&layer, Some(&agent));

    let adele = e.user_token();
    let r = bearer(&router, "/agent/me", &adele).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me = r.json();
    assert_eq!(me["id"], claims_of(&adele)["oid"], "the caller's profile");
    assert_eq!(me["displayName"], "Adele Vance");
    assert!(!r.body.contains("eyJ"));
    let log = e.entra.token_request_log();
    assert_eq!(log.len(), 2, "{log:?}");
    let field = |i: usize, name: &str| log[i].form.get(name).cloned().unwrap_or_default();
    assert_eq!(field(0, "fmi_path"), agent);
    assert_eq!(field(0, "client_id"), e.entra.api_client_id());
    assert_eq!(
        field(1, "client_id"),
        agent,
        "the agent exchanges, not the API"
    );
    assert_eq!(field(1, "requested_token_use"), "on_behalf_of");
    assert_eq!(
        claims_of(&field(1, "client_assertion"))["sub"],
        agent.as_str()
    );
    let t1 = field(1, "client_assertion");

    // Cached per caller; another caller costs one exchange with the same T1.
    assert_eq!(bearer(&router, "/agent/me", &adele).await.status, 200);
    assert_eq!(e.entra.token_requests(), 2);
    let megan = e
        .entra
        .token()
        .claim("name", json!("Megan Bowen"))
        .user("d4444444-4444-4444-8444-444444444444")
        .sign();
    let r = bearer(&router, "/agent/me", &megan).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["displayName"], "Megan Bowen");
    let log = e.entra.token_request_log();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].form.get("client_assertion"), Some(&t1));

    // An app-only caller: 403, and nothing asked of Entra.
    let daemon = e.entra.token().app_only().roles(&["Tasks.Read.All"]).sign();
    assert_eq!(bearer(&router, "/agent/me", &daemon).await.status, 403);
    assert_eq!(e.entra.token_requests(), 3);
}

#[tokio::test]
async fn without_an_agent_id_there_is_no_agent_route() {
    let e = app::Embedded::start().await;
    let layer = OboLayer::new(app::policy(e.config()).build().unwrap());
    let router = app::agent::router(&layer, None);
    assert_eq!(
        bearer(&router, "/agent/me", &e.user_token()).await.status,
        404
    );
}
