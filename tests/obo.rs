//! The On-Behalf-Of exchange end to end against the Entra stand-in's token endpoint.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use axum_obo::clock::ManualClock;
use axum_obo::credential::{AssertionAlgorithm, CertificateCredential};
use axum_obo::{GraphUserRead, OboConfigBuilder, OboLayer, OboToken, Principal};
use axum_obo_testing::{EntraStandIn, TokenFault};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::*;
use serde_json::Value;

const GUEST_TENANT: &str = "0b2f4d6e-1111-4222-8333-944455566677";
const USER_READ: &str = "https://graph.microsoft.com/User.Read";

fn decode_jwt_part(token: &str, part: usize) -> Value {
    let seg = token.split('.').nth(part).unwrap_or_default();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap_or_default()).unwrap_or(Value::Null)
}

/// `/obo`: the token's length; `/owner`: "caller-oid downstream-oid" (whose
/// token was served); `/raw`: the token itself (test-only, to hunt for it in logs).
fn obo_app(layer: OboLayer) -> Router {
    Router::new()
        .route(
            "/obo",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().len().to_string() }),
        )
        .route(
            "/owner",
            get(|p: Principal, t: OboToken<GraphUserRead>, again: OboToken<GraphUserRead>| async move {
                assert_eq!(t.access_token(), again.access_token(), "memoized per request");
                let claims = decode_jwt_part(t.access_token().expose(), 1);
                format!("{} {}", p.oid(), claims["oid"].as_str().unwrap_or("?"))
            }),
        )
        .route(
            "/raw",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .route("/whoami", get(|p: Principal| async move { p.oid().to_owned() }))
        .layer(layer)
}

fn with_secret(entra: &EntraStandIn) -> OboConfigBuilder {
    config(entra).client_secret(entra.client_secret())
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "axum-obo-{}-{}-{name}",
        std::process::id(),
        uuid_like()
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

fn uuid_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn secret_exchange_sends_exactly_the_obo_fields_and_caches() {
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(with_secret(&entra).build().unwrap());
    let app = obo_app(layer.clone());
    let inbound = entra.token().sign();

    let r = bearer(&app, "/obo", &inbound).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.parse::<usize>().unwrap() > 100);

    let log = entra.token_request_log();
    assert_eq!(log.len(), 1);
    let req = &log[0];
    assert_eq!(req.tenant, entra.home_tenant());
    let fields: Vec<&str> = req.form.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "assertion",
            "client_id",
            "client_info",
            "client_secret",
            "grant_type",
            "requested_token_use",
            "scope"
        ]
    );
    assert_eq!(
        req.form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(req.form["requested_token_use"], "on_behalf_of");
    assert_eq!(req.form["assertion"], inbound);
    assert_eq!(req.form["scope"], USER_READ);
    assert_eq!(req.form["client_id"], entra.api_client_id());
    assert_eq!(req.form["client_secret"], entra.client_secret());
    assert_eq!(req.form["client_info"], "1");
    let rid = &req.headers["client-request-id"];
    assert_eq!(rid.len(), 36, "a UUID: {rid}");
    assert_eq!(req.status, 200);

    // Second request: served from the cache.
    assert_eq!(bearer(&app, "/obo", &inbound).await.status, 200);
    assert_eq!(entra.token_requests(), 1);
    let s = layer.stats();
    assert_eq!((s.exchanges, s.hits, s.misses), (1, 1, 1));

    // Another inbound token of the same user is another exchange.
    let same_user_new_token = entra
        .token()
        .user(decode_jwt_part(&inbound, 1)["oid"].as_str().unwrap())
        .sign();
    assert_eq!(bearer(&app, "/obo", &same_user_new_token).await.status, 200);
    assert_eq!(entra.token_requests(), 2);
}

/// Code without axum extractors (a tonic service, an rmcp tool, a plain tower
/// service) gets the caller and an On-Behalf-Of token from `OboContext` in the
/// request's extensions, with the extractor's caching.
#[tokio::test]
async fn a_plain_tower_service_gets_the_caller_and_a_token_from_the_extensions() {
    use axum_obo::layer::OboContext;
    use tower::{Layer as _, ServiceExt as _};

    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(with_secret(&entra).build().unwrap());
    let svc = layer.layer(tower::service_fn(
        |req: http::Request<axum::body::Body>| async move {
            let ctx = req
                .extensions()
                .get::<OboContext>()
                .expect("the layer's context")
                .clone();
            let oid = ctx.require_principal().map(|p| p.oid().to_owned());
            let body = match (oid, ctx.obo_token::<GraphUserRead>().await) {
                (Ok(oid), Ok(t)) => format!("{oid} {}", t.access_token().expose().len()),
                (_, Err(e)) => format!("error {}", e.status()),
                (Err(e), _) => format!("error {}", e.status()),
            };
            Ok::<_, std::convert::Infallible>(http::Response::new(axum::body::Body::from(body)))
        },
    ));
    let inbound = entra
        .token()
        .user("11111111-2222-3333-4444-555555555555")
        .sign();
    for _ in 0..2 {
        let req = http::Request::get("/")
            .header("authorization", format!("Bearer {inbound}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        // The layer answers `OboBody<B>` around the service's own body `B`.
        let body = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        let (oid, len) = body.split_once(' ').unwrap();
        assert_eq!(oid, "11111111-2222-3333-4444-555555555555");
        assert!(len.parse::<usize>().unwrap() > 100, "{body}");
    }
    // One exchange for both requests: the context shares the extractor's cache.
    assert_eq!(entra.token_requests(), 1);

    // Without a token the layer refuses before the service runs.
    let req = http::Request::get("/")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(svc.clone().oneshot(req).await.unwrap().status(), 401);
}

#[tokio::test]
async fn no_exchange_unless_a_handler_asks() {
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(with_secret(&entra).build().unwrap()));
    assert_eq!(
        bearer(&app, "/whoami", &entra.token().sign()).await.status,
        200
    );
    assert_eq!(entra.token_requests(), 0);
}

fn certificate_pem() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let params = rcgen::CertificateParams::new(vec!["axum-obo-test".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn certificate_credential_signs_ps256_and_rs256_assertions() {
    let entra = EntraStandIn::start().await;
    let (cert, key) = certificate_pem();
    entra.register_certificate(&cert);
    let path = temp_file("cert.pem", &format!("{key}{cert}"));

    // PS256 with x5t#S256 (the default), from the file.
    let app = obo_app(OboLayer::new(
        config(&entra)
            .client_certificate_file(&path)
            .build()
            .unwrap(),
    ));
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let req = entra.token_request_log().pop().unwrap();
    assert!(!req.form.contains_key("client_secret"));
    assert_eq!(
        req.form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let assertion = &req.form["client_assertion"];
    let header = decode_jwt_part(assertion, 0);
    assert_eq!(header["alg"], "PS256");
    assert!(header["x5t#S256"].as_str().unwrap().len() == 43);
    let claims = decode_jwt_part(assertion, 1);
    assert_eq!(
        claims["aud"],
        format!(
            "{}/{}/oauth2/v2.0/token",
            entra.authority_host(),
            entra.home_tenant()
        )
    );
    assert_eq!(claims["iss"], entra.api_client_id());
    assert_eq!(claims["sub"], entra.api_client_id());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    let jti = claims["jti"].as_str().unwrap().to_owned();

    // A second user: a new assertion with a new jti.
    assert_eq!(
        bearer(&app, "/obo", &entra.token().sign()).await.status,
        200
    );
    let jti2 = decode_jwt_part(
        &entra.token_request_log().pop().unwrap().form["client_assertion"],
        1,
    )["jti"]
        .clone();
    assert_ne!(jti2, jti.as_str());

    // RS256 with x5t.
    let pem = std::fs::read(&path).unwrap();
    let rs = CertificateCredential::from_pem(&pem)
        .unwrap()
        .algorithm(AssertionAlgorithm::Rs256);
    let app = obo_app(OboLayer::new(
        config(&entra).client_certificate(rs).build().unwrap(),
    ));
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let header = decode_jwt_part(
        &entra.token_request_log().pop().unwrap().form["client_assertion"],
        0,
    );
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["x5t"].as_str().unwrap().len(), 27);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn certificate_file_errors_name_the_field() {
    let entra = EntraStandIn::start().await;
    let e = config(&entra)
        .client_certificate_file("/nonexistent/cert.pem")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "client_certificate");
    let path = temp_file(
        "bad.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let e = config(&entra)
        .client_certificate_file(&path)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "client_certificate");
    let e = config(&entra)
        .federated_token_file("/nonexistent/token")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "federated_token_file");
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn federated_token_file_is_reread_when_rotated() {
    let entra = EntraStandIn::start().await;
    let path = temp_file("federated", &entra.mint_federated_assertion());
    let app = obo_app(OboLayer::new(
        config(&entra).federated_token_file(&path).build().unwrap(),
    ));
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = entra.token_request_log().pop().unwrap();
    assert_eq!(
        first.form["client_assertion"],
        std::fs::read_to_string(&path).unwrap().trim()
    );

    // Rotated on disk to an expired assertion: the next exchange uses it (and fails).
    let expired = entra.mint_federated_assertion_with_lifetime(Duration::ZERO);
    std::fs::write(&path, &expired).unwrap();
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(
        entra.token_request_log().pop().unwrap().form["client_assertion"],
        expired
    );

    // Rotated again to a good one: works without a restart.
    let fresh = entra.mint_federated_assertion();
    std::fs::write(&path, &fresh).unwrap();
    assert_eq!(
        bearer(&app, "/obo", &entra.token().sign()).await.status,
        200
    );
    assert_eq!(
        entra.token_request_log().pop().unwrap().form["client_assertion"],
        fresh
    );
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn guests_are_exchanged_in_their_token_tenant() {
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(
        with_secret(&entra)
            .allow_tenants([GUEST_TENANT])
            .build()
            .unwrap(),
    ));
    let r = bearer(&app, "/obo", &entra.token().tenant(GUEST_TENANT).sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let req = entra.token_request_log().pop().unwrap();
    assert_eq!(req.tenant, GUEST_TENANT);
}

#[tokio::test]
async fn a_new_exchange_happens_after_expiry() {
    let entra = EntraStandIn::start().await;
    entra.set_obo_token_lifetime(Duration::from_secs(3600));
    let clock = clock();
    let layer = OboLayer::new(with_secret(&entra).clock(clock.clone()).build().unwrap());
    let app = obo_app(layer.clone());
    let inbound = entra.token().lifetime(Duration::from_secs(3 * 3600)).sign();
    assert_eq!(bearer(&app, "/obo", &inbound).await.status, 200);
    clock.advance(Duration::from_secs(3600 - 300 - 10));
    assert_eq!(bearer(&app, "/obo", &inbound).await.status, 200);
    assert_eq!(
        entra.token_requests(),
        1,
        "still fresh before the refresh margin"
    );
    clock.advance(Duration::from_secs(20));
    assert_eq!(bearer(&app, "/obo", &inbound).await.status, 200);
    assert_eq!(
        entra.token_requests(),
        2,
        "re-exchanged within the refresh margin"
    );
    assert_eq!(bearer(&app, "/obo", &inbound).await.status, 200);
    assert_eq!(entra.token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_first_requests_cause_one_exchange() {
    let entra = EntraStandIn::start().await;
    entra.inject_token_fault(TokenFault::Delay(Duration::from_millis(300)), Some(1));
    let layer = OboLayer::new(with_secret(&entra).build().unwrap());
    let app = obo_app(layer.clone());
    let inbound = Arc::new(entra.token().sign());
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (app, inbound) = (app.clone(), Arc::clone(&inbound));
        tasks.push(tokio::spawn(async move {
            bearer(&app, "/obo", &inbound).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(entra.token_requests(), 1);
    assert_eq!(entra.tokens_issued(), 1);
    assert_eq!(layer.stats().exchanges, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_twenty_requests_each_get_only_their_own_tokens() {
    let entra = EntraStandIn::start().await;
    entra.inject_token_fault(TokenFault::Delay(Duration::from_millis(50)), Some(50));
    let layer = OboLayer::new(with_secret(&entra).build().unwrap());
    let app = obo_app(layer.clone());
    let users: Vec<String> = (0..50).map(|_| entra.token().sign()).collect();
    // Interleave users' requests: user i's j-th request is task j*50+i.
    let mut tasks = Vec::new();
    for round in 0..20 {
        for (i, token) in users.iter().enumerate() {
            let (app, token) = (app.clone(), token.clone());
            let shuffle = (round * 7 + i * 13) % 3;
            tasks.push(tokio::spawn(async move {
                for _ in 0..shuffle {
                    tokio::task::yield_now().await;
                }
                bearer(&app, "/owner", &token).await
            }));
        }
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let (caller, owner) = r.body.split_once(' ').unwrap();
        assert_eq!(caller, owner, "a user was served someone else's token");
    }
    assert_eq!(entra.tokens_issued(), 50);
    assert_eq!(layer.stats().exchanges, 50);
}

async fn status_for(fault: TokenFault) -> (Reply, EntraStandIn, Duration) {
    let entra = EntraStandIn::start().await;
    entra.inject_token_fault(fault, None);
    let cfg = with_secret(&entra)
        .http_timeout(Duration::from_secs(1))
        .obo_retries(3, Duration::from_secs(4))
        .build()
        .unwrap();
    let app = obo_app(OboLayer::new(cfg));
    let started = Instant::now();
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    (r, entra, started.elapsed())
}

#[tokio::test]
async fn error_table_interaction_required_relays_the_claims_challenge() {
    for how in ["fault", "mfa policy"] {
        let entra = EntraStandIn::start().await;
        let app = obo_app(OboLayer::new(with_secret(&entra).build().unwrap()));
        let builder = entra.token();
        let oid = builder.claims()["oid"].as_str().unwrap().to_owned();
        match how {
            "fault" => entra.inject_token_fault(TokenFault::InteractionRequired, None),
            _ => entra.require_mfa(&oid),
        }
        let r = bearer(&app, "/obo", &builder.sign()).await;
        assert_eq!(r.status, 401, "{how}: {}", r.body);
        let h = r.www_authenticate.clone().unwrap();
        let prefix = format!(
            "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", error=\"insufficient_claims\", claims=\"",
            entra.authority_host()
        );
        assert!(h.starts_with(&prefix), "{how}: {h}");
        let b64 = h[prefix.len()..].trim_end_matches('"');
        let claims: Value = serde_json::from_slice(&STANDARD.decode(b64).unwrap()).unwrap();
        assert!(claims["access_token"].is_object(), "{how}: {claims}");
        assert_eq!(r.json()["error"], "insufficient_claims");
    }
    // An MFA'd token passes the policy.
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(with_secret(&entra).build().unwrap()));
    let builder = entra
        .token()
        .claim("amr", serde_json::json!(["pwd", "mfa"]));
    entra.require_mfa(builder.claims()["oid"].as_str().unwrap());
    assert_eq!(bearer(&app, "/obo", &builder.sign()).await.status, 200);
}

/// A handler's own error type: `{"code", "message"}` bodies, the crate's status
/// and headers, and `?` through one `From` impl.
mod own_error {
    use axum::response::{IntoResponse, Response};
    use axum::Json;
    use axum_obo::{AuthRejection, GraphUserRead, OboToken};

    pub enum ApiError {
        Auth(AuthRejection),
    }

    impl<E: Into<AuthRejection>> From<E> for ApiError {
        fn from(e: E) -> Self {
            ApiError::Auth(e.into())
        }
    }

    impl IntoResponse for ApiError {
        fn into_response(self) -> Response {
            let ApiError::Auth(r) = self;
            let body = serde_json::json!({ "code": r.error_code(), "message": r.description() });
            (r.status(), r.headers(), Json(body)).into_response()
        }
    }

    pub async fn handler(
        token: Result<OboToken<GraphUserRead>, AuthRejection>,
    ) -> Result<String, ApiError> {
        let token = token?;
        Ok(token.access_token().expose().len().to_string())
    }
}

#[tokio::test]
async fn a_handler_error_type_keeps_status_and_headers() {
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(with_secret(&entra).build().unwrap());
    let app = Router::new()
        .route("/own", get(own_error::handler))
        .route(
            "/obo",
            get(|_: OboToken<GraphUserRead>| async { "unreachable" }),
        )
        .layer(layer);
    let token = entra.token().sign();
    assert_eq!(bearer(&app, "/own", &token).await.status, 200);

    entra.inject_token_fault(TokenFault::InteractionRequired, None);
    let token = entra.token().sign();
    let (theirs, ours) = (
        bearer(&app, "/obo", &token).await,
        bearer(&app, "/own", &token).await,
    );
    assert_eq!(ours.status, 401, "{}", ours.body);
    assert_eq!(ours.status, theirs.status);
    assert!(ours.www_authenticate.is_some());
    assert_eq!(ours.www_authenticate, theirs.www_authenticate);
    assert_eq!(ours.json()["code"], theirs.json()["error"]);
    assert_eq!(ours.json()["message"], theirs.json()["error_description"]);
}

/// The pattern end to end: the handler's own error type and
/// `render_refusals_with` give one shape for the layer's refusals, the
/// extractors' rejections and the handler's errors; the claims challenge and
/// `Retry-After` are the crate's everywhere.
#[tokio::test]
async fn one_error_shape_for_the_layer_the_extractors_and_the_handler() {
    use axum::response::IntoResponse;
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(with_secret(&entra).build().unwrap()).render_refusals_with(|r| {
        let body = serde_json::json!({ "code": r.error_code(), "message": r.description() });
        axum::Json(body).into_response()
    });
    let app = Router::new()
        .route("/own", get(own_error::handler))
        .route(
            "/obo",
            get(|t: OboToken<GraphUserRead>| async move { t.scopes().count().to_string() }),
        )
        .layer(layer);
    let shape = |r: &Reply| {
        let v = r.json();
        let keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["code", "message"], "{}", r.body);
    };

    // The layer's refusal.
    let r = call(&app, "/obo", None).await;
    assert_eq!(r.status, 401);
    shape(&r);
    assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));

    // Conditional Access: the extractor's rejection and the handler's error.
    entra.inject_token_fault(TokenFault::InteractionRequired, Some(1)); // then negative-cached
    let token = entra.token().sign();
    let (extractor, handler) = (
        bearer(&app, "/obo", &token).await,
        bearer(&app, "/own", &token).await,
    );
    for r in [&extractor, &handler] {
        assert_eq!(r.status, 401, "{}", r.body);
        shape(r);
        assert!(
            r.www_authenticate.as_deref().unwrap().contains("claims=\""),
            "{:?}",
            r.www_authenticate
        );
    }
    assert_eq!(extractor.body, handler.body);
    assert_eq!(extractor.www_authenticate, handler.www_authenticate);

    // Throttled: 503 with the crate's Retry-After.
    entra.inject_token_fault(
        TokenFault::ServiceUnavailable {
            retry_after: Some(1),
        },
        None,
    );
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    shape(&r);
    assert!(r.retry_after.is_some());
}

#[tokio::test]
async fn error_table_consent_required_names_the_scopes() {
    for how in ["fault", "revoked"] {
        let entra = EntraStandIn::start().await;
        match how {
            "fault" => entra.inject_token_fault(TokenFault::ConsentRequired, None),
            _ => entra.revoke_consent(USER_READ),
        }
        let app = obo_app(OboLayer::new(with_secret(&entra).build().unwrap()));
        let r = bearer(&app, "/obo", &entra.token().sign()).await;
        assert_eq!(r.status, 403, "{how}: {}", r.body);
        assert_eq!(r.json()["error"], "consent_required");
        assert!(r.json()["error_description"]
            .as_str()
            .unwrap()
            .contains(USER_READ));
    }
}

#[tokio::test]
async fn error_table_invalid_grant_and_misconfiguration() {
    let (r, _, _) = status_for(TokenFault::InvalidGrant).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r
        .www_authenticate
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    for fault in [
        TokenFault::InvalidClient,
        TokenFault::UnauthorizedClient,
        TokenFault::InvalidScope,
    ] {
        let (r, _, _) = status_for(fault.clone()).await;
        assert_eq!(r.status, 500, "{fault:?}: {}", r.body);
        assert_eq!(r.json()["error"], "server_error");
        assert!(!r.body.contains("AADSTS"), "no detail leaks: {}", r.body);
    }
    // A wrong secret (not an injected fault) is the same misconfiguration.
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(
        config(&entra).client_secret("wrong").build().unwrap(),
    ));
    assert_eq!(
        bearer(&app, "/obo", &entra.token().sign()).await.status,
        500
    );
    // No credential at all.
    let app = obo_app(OboLayer::new(config(&entra).build().unwrap()));
    assert_eq!(
        bearer(&app, "/obo", &entra.token().sign()).await.status,
        500
    );
}

#[tokio::test]
async fn error_table_throttling_is_retried_then_503() {
    // Two 429s with Retry-After: 1, then success.
    let entra = EntraStandIn::start().await;
    entra.inject_token_fault(
        TokenFault::TooManyRequests {
            retry_after: Some(1),
        },
        Some(2),
    );
    let app = obo_app(OboLayer::new(with_secret(&entra).build().unwrap()));
    let started = Instant::now();
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(entra.token_requests(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After honoured"
    );

    for fault in [
        TokenFault::TooManyRequests {
            retry_after: Some(1),
        },
        TokenFault::TooManyRequests { retry_after: None },
        TokenFault::ServiceUnavailable { retry_after: None },
        TokenFault::InternalServerError,
        TokenFault::HtmlErrorPage(502),
    ] {
        let (r, entra, elapsed) = status_for(fault.clone()).await;
        assert_eq!(r.status, 503, "{fault:?}: {}", r.body);
        assert!(r.retry_after.is_some(), "{fault:?}");
        assert_eq!(entra.token_requests(), 4, "{fault:?}: 1 + 3 retries");
        assert!(elapsed < Duration::from_secs(6), "{fault:?}: {elapsed:?}");
    }
    // Retry-After beyond the budget: give up at once.
    let (r, entra, elapsed) = status_for(TokenFault::TooManyRequests {
        retry_after: Some(3600),
    })
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(entra.token_requests(), 1);
    assert!(elapsed < Duration::from_secs(2));
}

#[tokio::test]
async fn error_table_timeouts_and_bad_bodies() {
    let (r, _, elapsed) = status_for(TokenFault::Hang).await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    for fault in [
        TokenFault::Garbage,
        TokenFault::Truncated,
        TokenFault::HtmlErrorPage(400),
    ] {
        let (r, _, _) = status_for(fault.clone()).await;
        assert_eq!(r.status, 502, "{fault:?}: {}", r.body);
    }
}

#[tokio::test]
async fn negative_cache_spares_entra_from_retry_loops() {
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(
        with_secret(&entra)
            .obo_negative_ttl(Duration::from_millis(400))
            .build()
            .unwrap(),
    );
    let app = obo_app(layer.clone());
    let builder = entra.token();
    entra.require_mfa(builder.claims()["oid"].as_str().unwrap());
    let token = builder.sign();
    for _ in 0..5 {
        assert_eq!(bearer(&app, "/obo", &token).await.status, 401);
    }
    assert_eq!(entra.token_requests(), 1);
    assert_eq!(layer.stats().negative_hits, 4);
    // Other users are unaffected.
    assert_eq!(
        bearer(&app, "/obo", &entra.token().sign()).await.status,
        200
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(bearer(&app, "/obo", &token).await.status, 401);
    assert_eq!(
        entra.token_requests(),
        3,
        "asked again after the negative TTL"
    );
}

#[tokio::test]
async fn preflight_refusals_make_no_request() {
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let layer = OboLayer::new(with_secret(&entra).clock(clock.clone()).build().unwrap());
    let app = obo_app(layer.clone());

    let r = bearer(
        &app,
        "/obo",
        &entra.token().app_only().roles(&["Tasks.Read.All"]).sign(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "delegated_token_required");
    assert!(r.body.contains("delegated user token"));

    let short = entra.token().lifetime(Duration::from_secs(600)).sign();
    assert_eq!(bearer(&app, "/whoami", &short).await.status, 200);
    clock.advance(Duration::from_secs(600 - 30)); // expires within the 60 s leeway
    let r = bearer(&app, "/obo", &short).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.www_authenticate.unwrap().contains("invalid_token"));

    assert_eq!(entra.token_requests(), 0);
    assert_eq!(layer.stats().preflight_refusals, 2);
}

#[tokio::test(flavor = "current_thread")]
async fn logs_never_contain_tokens_assertions_or_secrets() {
    let (logs, _guard) = capture_logs();
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(with_secret(&entra).build().unwrap()));
    let inbound = entra.token().sign();
    let r = bearer(&app, "/raw", &inbound).await;
    assert_eq!(r.status, 200);
    let downstream = r.body.clone();
    entra.inject_token_fault(TokenFault::InvalidClient, Some(1));
    let failing = entra.token().sign();
    assert_eq!(bearer(&app, "/obo", &failing).await.status, 500);
    entra.inject_token_fault(TokenFault::InteractionRequired, Some(1));
    let mfa = entra.token().sign();
    assert_eq!(bearer(&app, "/obo", &mfa).await.status, 401);

    let text = logs.text();
    assert!(
        text.contains("AADSTS"),
        "failures are logged with their code: {text}"
    );
    let secret = entra.client_secret();
    assert!(!text.contains(&secret), "client secret leaked");
    for t in [&inbound, &downstream, &failing, &mfa] {
        for part in t.split('.').filter(|p| p.len() > 16) {
            assert!(!text.contains(part), "a token leaked into the logs");
        }
    }
}

#[tokio::test]
async fn debug_of_config_credentials_and_tokens_redacts() {
    let entra = EntraStandIn::start().await;
    let secret = entra.client_secret();
    let config = with_secret(&entra).build().unwrap();
    let layer = OboLayer::new(config.clone());
    for text in [format!("{config:?}"), format!("{layer:?}")] {
        assert!(!text.contains(&secret), "{text}");
        assert!(
            text.contains(&entra.api_client_id()),
            "useful Debug: {text}"
        );
    }
    let (cert, key) = certificate_pem();
    let cred = CertificateCredential::from_pem(format!("{key}{cert}").as_bytes()).unwrap();
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for text in [
        format!("{cred:?}"),
        format!("{:?}", config_with_cert(&entra, cred)),
    ] {
        assert!(!text.contains(&key_body[..40]), "{text}");
    }

    // OboToken, BearerToken and the validated principal.
    let app = Router::new()
        .route(
            "/debug",
            get(|p: Principal, t: OboToken<GraphUserRead>| async move {
                let token = t.access_token().expose().to_owned();
                let text = format!("{t:?} {:?} {} {p:?}", t.access_token(), t.access_token());
                (!text.contains(&token[..40])).to_string()
            }),
        )
        .layer(layer);
    let inbound = entra.token().sign();
    let r = bearer(&app, "/debug", &inbound).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "true"));
}

fn config_with_cert(entra: &EntraStandIn, cred: CertificateCredential) -> axum_obo::OboConfig {
    config(entra).client_certificate(cred).build().unwrap()
}

/// A custom assertion source (e.g. a key vault or managed identity).
#[derive(Debug)]
struct FromStandIn {
    entra: EntraStandIn,
    calls: std::sync::atomic::AtomicUsize,
}

impl axum_obo::credential::ClientAssertion for FromStandIn {
    fn assertion<'a>(
        &'a self,
        client_id: &'a str,
        token_endpoint: &'a str,
    ) -> axum_obo::credential::AssertionFuture<'a> {
        Box::pin(async move {
            assert_eq!(client_id, self.entra.api_client_id());
            assert!(
                token_endpoint.ends_with("/oauth2/v2.0/token"),
                "{token_endpoint}"
            );
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(axum_obo::secret::SecretString::new(
                self.entra.mint_federated_assertion(),
            ))
        })
    }
}

#[tokio::test]
async fn a_custom_client_assertion_source_is_used() {
    let entra = EntraStandIn::start().await;
    let source = Arc::new(FromStandIn {
        entra: entra.clone(),
        calls: Default::default(),
    });
    let cfg = config(&entra)
        .client_assertion(ArcSource(Arc::clone(&source)))
        .build()
        .unwrap();
    let app = obo_app(OboLayer::new(cfg));
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(source.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let req = entra.token_request_log().pop().unwrap();
    assert_eq!(
        req.form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert!(!req.form.contains_key("client_secret"));
}

#[derive(Debug)]
struct ArcSource(Arc<FromStandIn>);

impl axum_obo::credential::ClientAssertion for ArcSource {
    fn assertion<'a>(
        &'a self,
        client_id: &'a str,
        token_endpoint: &'a str,
    ) -> axum_obo::credential::AssertionFuture<'a> {
        self.0.assertion(client_id, token_endpoint)
    }
}

#[tokio::test]
async fn invalid_grant_is_remembered_for_that_token_only() {
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(with_secret(&entra).build().unwrap());
    let app = obo_app(layer.clone());
    let builder = entra.token();
    let oid = builder.claims()["oid"].as_str().unwrap().to_owned();
    entra.inject_token_fault_for_user(&oid, TokenFault::InvalidGrant);
    let token = builder.sign();
    for _ in 0..2 {
        let r = bearer(&app, "/obo", &token).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(r.www_authenticate.unwrap().contains("invalid_token"));
    }
    assert_eq!(entra.token_requests(), 1, "the refusal was remembered");
    assert_eq!(layer.stats().negative_hits, 1);
    // Another token of the same user is another question for Entra.
    let other = entra.token().user(&oid).sign();
    assert_eq!(bearer(&app, "/obo", &other).await.status, 401);
    assert_eq!(entra.token_requests(), 2);
    entra.clear_token_faults();
    let fresh = entra.token().user(&oid).sign();
    assert_eq!(bearer(&app, "/obo", &fresh).await.status, 200);
    assert_eq!(entra.token_requests(), 3);
}

/// A user of the home tenant whose exchanges are answered `fault`, and their token.
fn throttled_user(entra: &EntraStandIn, fault: TokenFault) -> String {
    let builder = entra.token();
    entra.inject_token_fault_for_user(builder.claims()["oid"].as_str().unwrap(), fault);
    builder.sign()
}

/// A layer with one attempt per exchange, on `clock`, allowing the guest tenant.
fn throttle_app(entra: &EntraStandIn, clock: &ManualClock) -> Router {
    obo_app(OboLayer::new(
        with_secret(entra)
            .allow_tenants([GUEST_TENANT])
            .clock(clock.clone())
            .obo_retries(0, Duration::from_secs(2))
            .build()
            .unwrap(),
    ))
}

/// The status and `Retry-After` of `/obo` for `token`.
async fn obo_retry_after(app: &Router, token: &str) -> (u16, Option<String>) {
    let r = bearer(app, "/obo", token).await;
    (r.status.as_u16(), r.retry_after)
}

fn wait(secs: &str) -> (u16, Option<String>) {
    (503, Some(secs.to_owned()))
}

/// One user drawing request loops (AADSTS50196) or 429s, however often, backs
/// off alone: the other users of the tenant still get tokens.
#[tokio::test]
async fn one_users_throttling_never_closes_the_tenant() {
    for fault in [
        TokenFault::TooManyRequests { retry_after: None },
        TokenFault::TenantThrottled { retry_after: None },
    ] {
        let entra = EntraStandIn::start().await;
        let clock = clock();
        let app = throttle_app(&entra, &clock);
        let looping = throttled_user(&entra, fault.clone());
        assert_eq!(
            obo_retry_after(&app, &looping).await,
            wait("1"),
            "{fault:?}"
        );
        assert_eq!(entra.token_requests(), 1);
        // Another user of the same tenant gets a token.
        let other = entra.token().sign();
        assert_eq!(bearer(&app, "/obo", &other).await.status, 200, "{fault:?}");
        assert_eq!(entra.token_requests(), 2);
        // The looping user fails fast, without a request, until the backoff elapses.
        assert_eq!(obo_retry_after(&app, &looping).await, wait("1"));
        assert_eq!(entra.token_requests(), 2, "{fault:?}: no request");
        // One probe per step, the user's backoff doubling; others keep working.
        for step in ["2", "4", "8"] {
            clock.advance(Duration::from_secs(step.parse::<u64>().unwrap() / 2));
            assert_eq!(
                obo_retry_after(&app, &looping).await,
                wait(step),
                "{fault:?}"
            );
            assert_eq!(
                bearer(&app, "/obo", &entra.token().sign()).await.status,
                200,
                "{fault:?}: step {step}"
            );
        }
        assert_eq!(entra.token_requests(), 8, "{fault:?}");
    }
}

#[tokio::test]
async fn a_throttled_tenant_backs_off_for_every_user() {
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let app = throttle_app(&entra, &clock);
    let tenant_throttled = TokenFault::TenantThrottled { retry_after: None };
    // Entra throttles the tenant: 429s for two users close it.
    entra.inject_token_fault(tenant_throttled.clone(), Some(2));
    assert_eq!(
        obo_retry_after(&app, &entra.token().sign()).await,
        wait("1")
    );
    assert_eq!(
        obo_retry_after(&app, &entra.token().sign()).await,
        wait("1")
    );
    assert_eq!(entra.token_requests(), 2);

    // A third user of the same tenant fails fast: Entra is not asked.
    let started = Instant::now();
    let other = entra.token().sign();
    assert_eq!(obo_retry_after(&app, &other).await, wait("1"));
    assert_eq!(entra.token_requests(), 2, "no request during the backoff");
    assert!(started.elapsed() < Duration::from_secs(1));
    // Another tenant is unaffected.
    let guest = entra.token().tenant(GUEST_TENANT).sign();
    assert_eq!(bearer(&app, "/obo", &guest).await.status, 200);
    assert_eq!(entra.token_requests(), 3);

    // The backoff elapses: one exchange probes; throttled again, the backoff doubles.
    clock.advance(Duration::from_secs(1));
    entra.inject_token_fault(tenant_throttled.clone(), Some(1));
    assert_eq!(obo_retry_after(&app, &other).await, wait("2"));
    assert_eq!(entra.token_requests(), 4);
    let next = entra.token().sign();
    assert_eq!(obo_retry_after(&app, &next).await, wait("2"));
    clock.advance(Duration::from_secs(1));
    assert_eq!(obo_retry_after(&app, &next).await, wait("1"));
    assert_eq!(entra.token_requests(), 4, "one request per step");

    // After the backoff, exchanges go through again; a success resets the streak.
    clock.advance(Duration::from_secs(1));
    assert_eq!(bearer(&app, "/obo", &next).await.status, 200);
    assert_eq!(entra.token_requests(), 5);
    assert_eq!(
        bearer(&app, "/obo", &entra.token().sign()).await.status,
        200
    );
    assert_eq!(entra.token_requests(), 6);
    entra.inject_token_fault(tenant_throttled, Some(2));
    assert_eq!(
        obo_retry_after(&app, &entra.token().sign()).await,
        wait("1")
    );
    assert_eq!(
        obo_retry_after(&app, &entra.token().sign()).await,
        wait("1"),
        "the streak starts over after a success"
    );
    assert_eq!(
        obo_retry_after(&app, &entra.token().sign()).await,
        wait("1")
    );
    assert_eq!(entra.token_requests(), 8);
}

#[tokio::test]
async fn a_tenant_throttled_with_retry_after_waits_that_long() {
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let app = throttle_app(&entra, &clock);
    entra.inject_token_fault(
        TokenFault::TenantThrottled {
            retry_after: Some(30),
        },
        Some(2),
    );
    assert_eq!(
        obo_retry_after(&app, &entra.token().sign()).await,
        wait("30")
    );
    assert_eq!(
        obo_retry_after(&app, &entra.token().sign()).await,
        wait("30")
    );
    let other = entra.token().sign();
    clock.advance(Duration::from_secs(29));
    assert_eq!(obo_retry_after(&app, &other).await, wait("1"));
    assert_eq!(entra.token_requests(), 2);
    clock.advance(Duration::from_secs(1));
    assert_eq!(bearer(&app, "/obo", &other).await.status, 200);
    assert_eq!(entra.token_requests(), 3);
}

/// A configuration without a client credential builds (an API may only validate),
/// but its first On-Behalf-Of call says why it answers 500: once, at error level,
/// naming the settings to set; later calls only at debug level.
#[tokio::test]
async fn a_missing_credential_is_logged_once_at_error_level() {
    use tracing::Instrument as _;
    let (logs, _guard) = capture_logs();
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(config(&entra).build().unwrap()));
    // The span's name marks this test's lines in the binary-wide capture.
    let span = tracing::info_span!("no_credential_probe");
    for _ in 0..3 {
        let r = bearer(&app, "/obo", &entra.token().sign())
            .instrument(span.clone())
            .await;
        assert_eq!(r.status, 500, "{}", r.body);
        assert_eq!(r.json()["error"], "server_error");
        assert!(
            !r.body.contains("credential"),
            "no detail leaks: {}",
            r.body
        );
    }
    assert_eq!(entra.token_requests(), 0);
    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("no_credential_probe") && l.contains("no client credential"))
        .collect();
    let errors = lines.iter().filter(|l| l.contains("ERROR")).count();
    assert_eq!(errors, 1, "one error line: {lines:#?}");
    assert_eq!(lines.len(), 3, "then debug lines: {lines:#?}");
    for setting in [
        "AZURE_CLIENT_SECRET",
        "OBO_MANAGED_IDENTITY",
        "client_secret",
    ] {
        assert!(lines[0].contains(setting), "names {setting}: {}", lines[0]);
    }
}
