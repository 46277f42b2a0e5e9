//! Tokens for scopes chosen at run time (`axum_obo::acquire`): On-Behalf-Of
//! through the typed path's cache, and this API's own app-only tokens.

mod common;

use axum::routing::get;
use axum::Router;
use axum_obo::acquire::Scopes;
use axum_obo::layer::OboContext;
use axum_obo::rejection::OboError;
use axum_obo::{AuthRejection, GraphUserRead, OboLayer, OboToken};
use axum_obo_testing::EntraStandIn;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use serde_json::Value;

fn claims(token: &str) -> Value {
    let seg = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
}

fn layer(entra: &EntraStandIn) -> OboLayer {
    OboLayer::new(
        config(entra)
            .client_secret(entra.client_secret())
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn run_time_scopes_share_the_typed_paths_cache() {
    let entra = EntraStandIn::start().await;
    let layer = layer(&entra);
    let app = Router::new()
        .route(
            "/typed",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .route(
            "/dynamic",
            get(|ctx: OboContext| async move {
                let scopes =
                    Scopes::new(<GraphUserRead as axum_obo::Scope>::SCOPES.iter().rev()).unwrap();
                let t = ctx.token_for(&scopes).await?;
                Ok::<_, AuthRejection>(t.access_token().expose().to_owned())
            }),
        )
        .route(
            "/mail",
            get(|ctx: OboContext| async move {
                let scopes = Scopes::new(["https://graph.microsoft.com/Mail.Read"]).unwrap();
                let t = ctx.token_for(&scopes).await?;
                Ok::<_, AuthRejection>(t.access_token().expose().to_owned())
            }),
        )
        .layer(layer);
    let user = entra.token().sign();
    let typed = bearer(&app, "/typed", &user).await;
    assert_eq!(typed.status, 200, "{}", typed.body);
    let requests = entra.token_requests();
    let dynamic = bearer(&app, "/dynamic", &user).await;
    assert_eq!(dynamic.body, typed.body, "the same cached token");
    assert_eq!(entra.token_requests(), requests, "no second exchange");
    let mail = bearer(&app, "/mail", &user).await;
    assert_eq!(mail.status, 200, "{}", mail.body);
    assert_eq!(
        entra.token_requests(),
        requests + 1,
        "another scope set, another exchange"
    );
    assert!(claims(&mail.body)["scp"]
        .as_str()
        .unwrap()
        .contains("Mail.Read"));
    // An app-only caller cannot be exchanged: refused without a request.
    let app_caller = entra.token().app_only().sign();
    let refused = bearer(&app, "/mail", &app_caller).await;
    assert_ne!(refused.status, 200);
    assert_eq!(entra.token_requests(), requests + 1);
}

#[tokio::test]
async fn app_tokens_are_cached_and_single_flight() {
    let entra = EntraStandIn::start().await;
    let layer = layer(&entra);
    let graph = Scopes::new(["https://graph.microsoft.com/.default"]).unwrap();
    let before = entra.token_requests();
    let calls = (0..8).map(|_| layer.app_token(&graph, None));
    let tokens = futures_util::future::join_all(calls).await;
    assert_eq!(
        entra.token_requests(),
        before + 1,
        "one request for concurrent first callers"
    );
    let first = tokens[0]
        .as_ref()
        .unwrap()
        .access_token()
        .expose()
        .to_owned();
    for t in &tokens {
        assert_eq!(t.as_ref().unwrap().access_token().expose(), first);
    }
    let c = claims(&first);
    assert!(c.get("scp").is_none(), "app-only: {c}");
    assert_eq!(c["tid"], entra.home_tenant().as_str());
    let again = layer
        .app_token(&graph, Some(&entra.home_tenant()))
        .await
        .unwrap();
    assert_eq!(again.access_token().expose(), first, "cached");
    assert_eq!(entra.token_requests(), before + 1);
    // A tenant that is not a GUID never reaches Entra.
    let bad = layer
        .app_token(&graph, Some("contoso.onmicrosoft.com/../x"))
        .await;
    assert!(matches!(bad, Err(OboError::Misconfigured(_))));
    assert_eq!(entra.token_requests(), before + 1);
}

#[tokio::test]
async fn named_apis_take_the_token_they_are_configured_for() {
    use axum_obo::acquire::NamedApi;
    let entra = EntraStandIn::start().await;
    let layer = layer(&entra);
    let user_api = NamedApi::new(
        "https://graph.microsoft.com/v1.0",
        Scopes::new(["https://graph.microsoft.com/User.Read"]).unwrap(),
    )
    .relative_path("me");
    let app_api = NamedApi::new(
        "https://graph.microsoft.com/v1.0",
        Scopes::new(["https://graph.microsoft.com/.default"]).unwrap(),
    )
    .app_token(true);
    let handler_layer = layer.clone();
    let app = Router::new()
        .route(
            "/{which}",
            get(
                move |axum::extract::Path(which): axum::extract::Path<String>, ctx: OboContext| {
                    let layer = handler_layer.clone();
                    let api = if which == "app" {
                        app_api.clone()
                    } else {
                        user_api.clone()
                    };
                    async move {
                        let t = api.token(&layer, Some(&ctx)).await?;
                        Ok::<_, AuthRejection>(t.access_token().expose().to_owned())
                    }
                },
            ),
        )
        .layer(layer);
    let user = entra.token().sign();
    let caller = claims(&user);
    let on_behalf = bearer(&app, "/user", &user).await;
    assert_eq!(on_behalf.status, 200, "{}", on_behalf.body);
    assert_eq!(claims(&on_behalf.body)["oid"], caller["oid"]);
    let app_only = bearer(&app, "/app", &user).await;
    assert_eq!(app_only.status, 200, "{}", app_only.body);
    let c = claims(&app_only.body);
    assert!(c.get("scp").is_none() && c["oid"] != caller["oid"], "{c}");
}
