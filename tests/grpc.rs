//! gRPC behind `OboLayer`: the example's `axum_obo.example.Profile` service,
//! called through tonic's client over HTTP/2 cleartext, against the Entra and
//! Graph stand-ins; and an axum router behind the same (now generic) layer.

mod common;

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

use std::net::SocketAddr;

use app::grpc::{MeReply, MeRequest, ProfileService, ME_PATH};
use axum_obo::OboLayer;
use axum_obo_testing::GraphFault;
use common::*;
use http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

fn dev_cors() -> app::Cors {
    app::cors(&[http::HeaderValue::from_static(app::DEV_ORIGIN)])
}

/// The example's stand-ins and layer, keys loaded (`warm` up) or not.
async fn example_layer(warm: bool) -> (app::Embedded, OboLayer) {
    let embedded = app::Embedded::start().await;
    let layer = OboLayer::new(app::policy(embedded.config()).build().unwrap());
    if warm {
        layer.warm_up().await.unwrap();
    }
    (embedded, layer)
}

/// Serves `router` as the example's `main` does (`axum::serve`, one port for
/// HTTP/1.1 and HTTP/2) on a loopback port.
async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// The example's whole router on a loopback port, and its stand-ins and layer.
async fn example_server(warm: bool) -> (app::Embedded, OboLayer, SocketAddr) {
    let (embedded, layer) = example_layer(warm).await;
    let addr = serve(app::router(layer.clone(), dev_cors())).await;
    (embedded, layer, addr)
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// `Profile/Me` through tonic's client, with `token` as bearer token if any.
async fn me(channel: &Channel, token: Option<&str>) -> Result<MeReply, Status> {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(MeRequest {});
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    let codec = tonic_prost::ProstCodec::<MeRequest, MeReply>::default();
    let path = PathAndQuery::from_static(ME_PATH);
    client
        .unary(request, path, codec)
        .await
        .map(tonic::Response::into_inner)
}

fn metadata(status: &Status, name: &str) -> Option<String> {
    status
        .metadata()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

/// Asserts that `status` came from the layer's Trailers-Only answer (HTTP 200,
/// `content-type: application/grpc`), not inferred by tonic from an HTTP error
/// status (which it would map to the same code, with a message of its own).
fn assert_trailers_only(status: &Status) {
    assert_eq!(
        metadata(status, "content-type").as_deref(),
        Some("application/grpc"),
        "{status:?}"
    );
    assert!(
        !status.message().starts_with("Received http2 header"),
        "{status:?}"
    );
    assert_eq!(
        metadata(status, "cache-control").as_deref(),
        Some("no-store")
    );
}

#[tokio::test]
async fn a_grpc_client_gets_the_callers_graph_profile() {
    let (e, layer, addr) = example_server(true).await;
    let channel = channel(addr).await;
    let oid = "5d1a0a8e-1111-4000-8000-000000000001";
    let user = e
        .entra
        .token()
        .user(oid)
        .claim("name", serde_json::json!("Adele Vance"))
        .sign();

    for _ in 0..2 {
        let reply = me(&channel, Some(&user)).await.expect("the profile");
        assert_eq!(reply.display_name, "Adele Vance");
        assert_eq!(reply.id, oid, "the profile is the caller's");
    }
    assert_eq!(e.entra.tokens_issued(), 1, "one exchange for both calls");
    assert_eq!(layer.stats().hits, 1);

    // The same port still serves the REST routes over HTTP/1.1.
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.version(), reqwest::Version::HTTP_11);
    assert_eq!(health.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn no_token_is_unauthenticated_with_the_challenge() {
    let (_e, _, addr) = example_server(true).await;
    let status = me(&channel(addr).await, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(status.message(), "the request has no bearer token");
    assert_eq!(
        metadata(&status, "www-authenticate").as_deref(),
        Some("Bearer")
    );
    assert_trailers_only(&status);

    // A bad token: its own challenge; the message never echoes the token.
    let forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    let status = me(&channel(addr).await, Some(forged)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let challenge = metadata(&status, "www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(!status.message().contains("eyJ"), "{}", status.message());
    assert!(!challenge.contains("eyJ"), "{challenge}");
}

#[tokio::test]
async fn a_token_without_the_required_scope_is_permission_denied() {
    let (e, _, addr) = example_server(true).await;
    let channel = channel(addr).await;
    let other = e.entra.token().scopes(&["Files.Read"]).sign();
    let status = me(&channel, Some(&other)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_trailers_only(&status);
    let challenge = metadata(&status, "www-authenticate").unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"access_as_user\""),
        "{challenge}"
    );
    assert_eq!(e.entra.tokens_issued(), 0, "refused before any exchange");
}

#[tokio::test]
async fn unavailable_while_the_signing_keys_cannot_be_loaded() {
    let (e, _, addr) = example_server(false).await;
    e.entra.fail_jwks(Some(503));
    let status = me(&channel(addr).await, Some(&e.user_token()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_trailers_only(&status);
    assert_eq!(metadata(&status, "retry-after").as_deref(), Some("10"));
    assert!(metadata(&status, "www-authenticate").is_none());
}

#[tokio::test]
async fn errors_in_the_handler_become_grpc_statuses() {
    let (e, _, addr) = example_server(true).await;
    let channel = channel(addr).await;

    // App-only: admitted by the policy, but On-Behalf-Of needs a user.
    let app_only = e.entra.token().app_only().roles(&["Reports.Read"]).sign();
    let status = me(&channel, Some(&app_only)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // Graph throttles past the retry budget: UNAVAILABLE with its Retry-After.
    let user = e.user_token();
    e.graph.inject_fault(
        GraphFault::TooManyRequests {
            retry_after: Some(1),
        },
        Some(100),
    );
    let status = me(&channel, Some(&user)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(metadata(&status, "retry-after").as_deref(), Some("1"));

    // A claims challenge from Graph goes back to the client in the metadata.
    let (e, _, addr) = example_server(true).await;
    e.graph.inject_fault(
        GraphFault::ClaimsChallenge(
            r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#.into(),
        ),
        Some(1),
    );
    let status = me(&self::channel(addr).await, Some(&e.user_token()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let challenge = metadata(&status, "www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_claims\", claims=\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn the_layer_stacks_on_a_tonic_server() {
    let (e, layer) = example_layer(true).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .layer(layer)
        .add_service(ProfileService)
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(async move { server.await.unwrap() });
    let channel = channel(addr).await;

    let reply = me(&channel, Some(&e.user_token())).await.unwrap();
    assert_eq!(reply.display_name, "Adele Vance");
    let status = me(&channel, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(
        metadata(&status, "www-authenticate").as_deref(),
        Some("Bearer")
    );
    assert_trailers_only(&status);
}

/// One request through `app` (the crate's test router, behind `OboLayer` with
/// `Router::layer`) without a token, over `version`, with `content_type` if any.
async fn refused(
    app: &axum::Router,
    content_type: Option<&str>,
    version: http::Version,
) -> http::Response<axum::body::Body> {
    use tower::ServiceExt as _;
    let mut request = http::Request::post("/whoami").version(version);
    if let Some(ct) = content_type {
        request = request.header(http::header::CONTENT_TYPE, ct);
    }
    app.clone()
        .oneshot(request.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn an_axum_router_behind_the_layer_answers_http_as_before() {
    let entra = axum_obo_testing::EntraStandIn::start().await;
    let router = app(OboLayer::new(config(&entra).build().unwrap()));

    for content_type in [None, Some("application/json"), Some("text/plain")] {
        let resp = refused(&router, content_type, http::Version::HTTP_11).await;
        assert_eq!(resp.status(), 401);
        let h = resp.headers().clone();
        assert_eq!(h[http::header::CONTENT_TYPE], "application/json");
        assert_eq!(h[http::header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(h[http::header::CACHE_CONTROL], "no-store");
        assert!(h.get("grpc-status").is_none());
        let r = read(resp).await;
        assert_eq!(
            r.body,
            r#"{"error":"unauthorized","error_description":"the request has no bearer token"}"#
        );
    }

    // `application/grpc` over HTTP/1.1 is no gRPC (gRPC needs HTTP/2): HTTP.
    let resp = refused(
        &router,
        Some("application/grpc+proto"),
        http::Version::HTTP_11,
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().get("grpc-status").is_none());

    // The same router, asked in gRPC: a header-only Trailers-Only answer.
    let resp = refused(
        &router,
        Some("application/grpc+proto"),
        http::Version::HTTP_2,
    )
    .await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h[http::header::CONTENT_TYPE], "application/grpc+proto");
    assert_eq!(h["grpc-status"], "16");
    assert_eq!(h["grpc-message"], "the request has no bearer token");
    assert_eq!(h[http::header::WWW_AUTHENTICATE], "Bearer");
    let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
    assert!(body.is_empty());

    // An admitted request gets the handler's own body, untouched.
    let r = bearer(&router, "/whoami", &entra.token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "delegated");
}
