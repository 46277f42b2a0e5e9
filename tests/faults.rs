//! A failing identity provider: bounded answers and recovery, never a hang or a 500.

mod common;

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use axum_obo::{GraphUserRead, OboLayer, OboToken, Principal};
use axum_obo_testing::{EntraStandIn, TokenFault};
use common::*;

/// Every test here logs into one capture, checked at the end of each test.
fn logs() -> &'static LogCapture {
    capture_logs_global()
}

fn app(layer: OboLayer) -> Router {
    Router::new()
        .route(
            "/obo",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().len().to_string() }),
        )
        .route("/whoami", get(|p: Principal| async move { p.oid().to_owned() }))
        .layer(layer)
}

#[tokio::test]
async fn token_endpoint_refusing_connections_is_503_and_validation_goes_on() {
    logs();
    let entra = EntraStandIn::start().await;
    let cfg = config(&entra)
        .client_secret(entra.client_secret())
        .obo_retries(3, Duration::from_secs(5))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let tokens: Vec<String> = (0..3).map(|_| entra.token().sign()).collect();
    assert_eq!(bearer(&app, "/whoami", &tokens[0]).await.status, 200);
    drop(entra); // the stand-in stops: connections are refused from now on
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let r = bearer(&app, "/obo", &tokens[1]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.retry_after.is_some());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    // Known keys keep validating while the provider is gone.
    assert_eq!(bearer(&app, "/whoami", &tokens[2]).await.status, 200);
    assert_no_secrets_in(logs(), &[]);
}

#[tokio::test]
async fn slow_token_endpoint_within_the_timeout_succeeds() {
    logs();
    let entra = EntraStandIn::start().await;
    entra.inject_token_fault(TokenFault::Delay(Duration::from_millis(700)), Some(1));
    let cfg = config(&entra)
        .client_secret(entra.client_secret())
        .http_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_no_secrets_in(logs(), &[&entra.client_secret()]);
}

#[tokio::test]
async fn recovery_after_transient_failures_without_restart() {
    logs();
    let entra = EntraStandIn::start().await;
    entra.inject_token_fault(
        TokenFault::ServiceUnavailable {
            retry_after: Some(0),
        },
        None,
    );
    let cfg = config(&entra)
        .client_secret(entra.client_secret())
        .obo_retries(1, Duration::from_secs(2))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let token = entra.token().sign();
    assert_eq!(bearer(&app, "/obo", &token).await.status, 503);
    entra.clear_token_faults();
    // Transient errors are not remembered: the next request exchanges again.
    assert_eq!(bearer(&app, "/obo", &token).await.status, 200);
    assert_no_secrets_in(logs(), &[&entra.client_secret()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_keys_mid_load() {
    logs();
    let entra = EntraStandIn::start().await;
    let (clock, app) = keys_loaded(&entra, app).await;
    clock.advance(Duration::from_secs(11)); // a refresh is allowed from now on

    let old: Vec<String> = (0..100).map(|_| entra.token().sign()).collect();
    entra.rotate_key();
    let new: Vec<String> = (0..100).map(|_| entra.token().sign()).collect();
    let before = entra.jwks_requests();
    let mut tasks = Vec::new();
    for t in old.into_iter().chain(new) {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            bearer(&app, "/whoami", &t).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(
        entra.jwks_requests() - before,
        1,
        "one refresh served every new-key token"
    );
}
