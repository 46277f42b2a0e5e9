//! A managed identity as the OBO client credential, against the managed identity
//! endpoint stand-in (App Service shape) and the Entra stand-in trusting the identity
//! through a federated identity credential.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_obo::credential::ManagedIdentity;
use axum_obo::{OboConfigBuilder, OboLayer};
use axum_obo_testing::{EntraStandIn, ManagedIdentityFault, ManagedIdentityStandIn};
use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The Entra and identity-endpoint stand-ins, the system-assigned identity trusted.
async fn stand_ins() -> (EntraStandIn, ManagedIdentityStandIn) {
    let entra = EntraStandIn::start().await;
    let identity = ManagedIdentityStandIn::start(&entra).await;
    entra.add_managed_identity_credential(&identity.system_assigned());
    (entra, identity)
}

/// A configuration using `which` identity at the stand-in's endpoint.
fn with_identity(
    entra: &EntraStandIn,
    identity: &ManagedIdentityStandIn,
    which: ManagedIdentity,
) -> OboConfigBuilder {
    config(entra)
        .managed_identity(which)
        .managed_identity_endpoint(identity.endpoint(), identity.identity_header())
}

/// An inbound token valid for three hours (the clock may be moved past one).
fn inbound(entra: &EntraStandIn) -> String {
    entra.token().lifetime(Duration::from_secs(3 * 3600)).sign()
}

async fn obo_status(app: &Router, entra: &EntraStandIn) -> Reply {
    bearer(app, "/obo", &inbound(entra)).await
}

#[tokio::test]
async fn system_assigned_identity_token_is_the_client_assertion() {
    let (logs, _guard) = capture_logs();
    let (entra, identity) = stand_ins().await;
    let app = app(OboLayer::new(
        with_identity(&entra, &identity, ManagedIdentity::SystemAssigned)
            .build()
            .unwrap(),
    ));
    let r = obo_status(&app, &entra).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let call = identity
        .request_log()
        .pop()
        .expect("the identity endpoint was asked");
    let query = call.query.unwrap_or_default();
    assert!(query.contains("api-version=2019-08-01"), "{query}");
    assert!(
        query.contains("resource=api%3A%2F%2FAzureADTokenExchange"),
        "{query}"
    );
    assert!(!query.contains("client_id"), "system-assigned: {query}");

    let exchange = entra.token_request_log().pop().expect("an exchange");
    assert_eq!(exchange.form["client_assertion_type"], JWT_BEARER);
    assert!(exchange.form["client_assertion"].starts_with("eyJ"));
    assert!(!exchange.form.contains_key("client_secret"));

    // Another user: a new exchange, the same (cached) assertion.
    assert_eq!(obo_status(&app, &entra).await.status, 200);
    let again = entra.token_request_log().pop().expect("a second exchange");
    assert_eq!(entra.token_requests(), 2);
    assert_eq!(
        again.form["client_assertion"],
        exchange.form["client_assertion"]
    );
    assert_eq!(identity.requests(), 1, "the assertion is cached");
    assert_no_secrets_in(&logs, &[&identity.identity_header()]);
}

#[tokio::test]
async fn identity_endpoint_down_is_a_clear_500_then_recovers() {
    let (logs, _guard) = capture_logs();
    let (entra, identity) = stand_ins().await;
    let app = app(OboLayer::new(
        with_identity(&entra, &identity, ManagedIdentity::SystemAssigned)
            .build()
            .unwrap(),
    ));
    identity.inject_fault(ManagedIdentityFault::Status(503), Some(1));
    let r = obo_status(&app, &entra).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["error"], "server_error");
    assert!(!r.body.contains("identity"), "a generic body: {}", r.body);
    assert_eq!(
        entra.token_requests(),
        0,
        "Entra is not asked without a credential"
    );
    assert!(logs.text().contains("answered 503"), "the cause is logged");

    // Back up: the next request (even the same user's) works; nothing was cached.
    let same_user = inbound(&entra);
    let r = bearer(&app, "/obo", &same_user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(identity.requests(), 2);

    // Unreachable altogether (nothing listens): the same clear 500.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = app_for(
        config(&entra)
            .managed_identity(ManagedIdentity::SystemAssigned)
            .managed_identity_endpoint(format!("http://127.0.0.1:{port}/msi/token"), "h"),
    );
    let r = obo_status(&app, &entra).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(logs.text().contains("cannot be reached"));
    assert_no_secrets_in(&logs, &[&identity.identity_header()]);
}

fn app_for(builder: OboConfigBuilder) -> Router {
    app(OboLayer::new(builder.build().unwrap()))
}

#[tokio::test]
async fn wrong_header_secret_is_a_clear_500_logged_without_secrets() {
    let (logs, _guard) = capture_logs();
    let (entra, identity) = stand_ins().await;
    let wrong = "not-the-identity-header-7f3a";
    let app = app_for(
        config(&entra)
            .managed_identity(ManagedIdentity::SystemAssigned)
            .managed_identity_endpoint(identity.endpoint(), wrong),
    );
    let r = obo_status(&app, &entra).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["error"], "server_error");
    assert_eq!(entra.token_requests(), 0);
    let text = logs.text();
    assert!(
        text.contains("managed identity (system-assigned)") && text.contains("401"),
        "the cause is logged: {text}"
    );
    assert_no_secrets_in(&logs, &[wrong, &identity.identity_header()]);
}

#[tokio::test]
async fn the_assertion_is_refreshed_once_shortly_before_it_expires() {
    let (entra, identity) = stand_ins().await;
    identity.set_token_lifetime(Duration::from_secs(3600));
    let clock = clock();
    let app = app_for(
        with_identity(&entra, &identity, ManagedIdentity::SystemAssigned).clock(clock.clone()),
    );
    assert_eq!(obo_status(&app, &entra).await.status, 200);
    assert_eq!(identity.requests(), 1);

    clock.advance(Duration::from_secs(3600 - 300 - 10));
    assert_eq!(obo_status(&app, &entra).await.status, 200);
    assert_eq!(
        identity.requests(),
        1,
        "still fresh 5 minutes before expiry"
    );

    clock.advance(Duration::from_secs(20));
    assert_eq!(obo_status(&app, &entra).await.status, 200);
    assert_eq!(identity.requests(), 2, "exactly one new call after expiry");
    assert_eq!(obo_status(&app, &entra).await.status, 200);
    assert_eq!(identity.requests(), 2);

    // Stale again, fifty concurrent exchanges (fifty users) while the endpoint is slow:
    // one identity-endpoint call between them.
    clock.advance(Duration::from_secs(3600));
    identity.inject_fault(
        ManagedIdentityFault::Delay(Duration::from_millis(300)),
        Some(1),
    );
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (app, token) = (app.clone(), inbound(&entra));
            tokio::spawn(async move { bearer(&app, "/obo", &token).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(identity.requests(), 3, "single flight");
}

#[tokio::test]
async fn hostile_expiry_values_are_clamped_or_refused_never_a_panic() {
    let (logs, _guard) = capture_logs();
    let (entra, identity) = stand_ins().await;
    let clock = clock();
    let app = app_for(
        with_identity(&entra, &identity, ManagedIdentity::SystemAssigned).clock(clock.clone()),
    );
    let day_and_more = |entra: &EntraStandIn| {
        entra
            .token()
            .lifetime(Duration::from_secs(40 * 3600))
            .sign()
    };
    // `expires_in = i64::MAX`: believed for 28 hours at most.
    identity.inject_fault(
        ManagedIdentityFault::Expiry {
            expires_in: Some(i64::MAX),
            expires_on: None,
        },
        Some(1),
    );
    let r = bearer(&app, "/obo", &day_and_more(&entra)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    clock.advance(Duration::from_secs(27 * 3600));
    assert_eq!(
        bearer(&app, "/obo", &day_and_more(&entra)).await.status,
        200
    );
    assert_eq!(identity.requests(), 1, "cached within 28 hours");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        bearer(&app, "/obo", &day_and_more(&entra)).await.status,
        200
    );
    assert_eq!(identity.requests(), 2, "asked again after 28 hours");

    // A huge negative `expires_on` (a new layer, nothing cached): an expired
    // token, a clear 500, then recovery.
    let app = app_for(with_identity(
        &entra,
        &identity,
        ManagedIdentity::SystemAssigned,
    ));
    identity.inject_fault(
        ManagedIdentityFault::Expiry {
            expires_in: None,
            expires_on: Some(i64::MIN),
        },
        Some(1),
    );
    let r = bearer(&app, "/obo", &inbound(&entra)).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        logs.text().contains("already expired"),
        "the cause is logged"
    );
    assert_eq!(bearer(&app, "/obo", &inbound(&entra)).await.status, 200);
    assert_eq!(identity.requests(), 4);
}

/// An identity endpoint that answers every request with a 500 after `delay`, and
/// counts the requests.
async fn slow_failing_endpoint(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/msi/token", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (url, count)
}

#[tokio::test]
async fn concurrent_exchanges_share_a_failed_call_and_the_next_one_asks_again() {
    let entra = EntraStandIn::start().await;
    let (url, calls) = slow_failing_endpoint(Duration::from_millis(200)).await;
    let app = app_for(
        config(&entra)
            .managed_identity(ManagedIdentity::SystemAssigned)
            .managed_identity_endpoint(url, "h"),
    );
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, token) = (app.clone(), inbound(&entra));
            tokio::spawn(async move { bearer(&app, "/obo", &token).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 500);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one call, its failure shared"
    );
    assert_eq!(obo_status(&app, &entra).await.status, 500);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the failure is not cached");
}

#[tokio::test]
async fn user_assigned_identity_is_named_and_must_be_trusted() {
    let (entra, identity) = stand_ins().await;
    let trusted = identity.add_user_assigned("uai-trusted");
    entra.add_managed_identity_credential(&trusted);
    let app = app_for(with_identity(
        &entra,
        &identity,
        ManagedIdentity::UserAssigned {
            client_id: trusted.client_id.to_ascii_uppercase(),
        },
    ));
    let r = obo_status(&app, &entra).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let query = identity
        .request_log()
        .pop()
        .unwrap()
        .query
        .unwrap_or_default();
    assert!(
        query.contains(&format!("client_id={}", trusted.client_id)),
        "{query}"
    );

    // An identity the app registration does not trust: Entra refuses the assertion.
    let stranger = identity.add_user_assigned("uai-stranger");
    let app = app_for(with_identity(
        &entra,
        &identity,
        ManagedIdentity::UserAssigned {
            client_id: stranger.client_id.clone(),
        },
    ));
    let r = obo_status(&app, &entra).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["error"], "server_error");
    assert_eq!(
        identity.requests(),
        2,
        "the token was obtained, then refused"
    );
}

#[tokio::test]
async fn the_audience_override_is_what_the_identity_endpoint_is_asked_for() {
    let (entra, identity) = stand_ins().await;
    let app = app_for(
        with_identity(&entra, &identity, ManagedIdentity::SystemAssigned)
            .managed_identity_audience("api://AzureADTokenExchangeUSGov"),
    );
    // The public-cloud federated credential does not accept the US Government audience.
    assert_eq!(obo_status(&app, &entra).await.status, 500);
    let query = identity
        .request_log()
        .pop()
        .unwrap()
        .query
        .unwrap_or_default();
    assert!(
        query.contains("resource=api%3A%2F%2FAzureADTokenExchangeUSGov"),
        "{query}"
    );
}

#[tokio::test]
async fn from_lookup_reads_the_identity_and_its_endpoint() {
    let (entra, identity) = stand_ins().await;
    let mut vars: HashMap<&str, String> = identity.environment().into_iter().collect();
    vars.insert("AZURE_TENANT_ID", entra.home_tenant());
    vars.insert("AZURE_CLIENT_ID", entra.api_client_id());
    vars.insert("AZURE_AUTHORITY_HOST", entra.authority_host());
    vars.insert("OBO_MANAGED_IDENTITY", "System".to_owned());
    let builder = OboConfigBuilder::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let app = app_for(builder);
    let r = obo_status(&app, &entra).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(identity.requests(), 1);
}
