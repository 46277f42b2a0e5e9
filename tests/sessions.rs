//! Long-running sessions against the Entra and Graph stand-ins: started in a
//! request, used later without one, rotated, revoked, ended, idle.

mod common;

use std::time::Duration;

use axum::routing::post;
use axum::Router;
use axum_obo::clock::ManualClock;
use axum_obo::session::{SessionError, SessionKey, SessionOwner, Sessions};
use axum_obo::{GraphDefault, GraphUserRead, OboLayer, OboToken};
use axum_obo_testing::Harness;
use common::*;

/// Two hours: past any downstream token's lifetime and the inbound token's.
const LATER: Duration = Duration::from_secs(2 * 3600);

struct Fixture {
    harness: Harness,
    clock: ManualClock,
    app: Router,
    sessions: Sessions,
}

async fn fixture_with(
    configure: impl FnOnce(axum_obo::OboConfigBuilder) -> axum_obo::OboConfigBuilder,
) -> Fixture {
    let harness = Harness::start().await;
    let clock = clock();
    let config = configure(harness.config().clock(clock.clone()))
        .build()
        .unwrap();
    let layer = OboLayer::new(config);
    let sessions = layer.sessions();
    let app = Router::new()
        .route(
            "/start",
            post(|t: OboToken<GraphUserRead>| async move {
                match t.start_session().await {
                    Ok(key) => key.expose().to_owned(),
                    Err(e) => format!("error: {e}"),
                }
            }),
        )
        .layer(layer);
    Fixture {
        harness,
        clock,
        app,
        sessions,
    }
}

async fn fixture() -> Fixture {
    fixture_with(|c| c).await
}

/// Starts a session in a request of `token`; the session key.
async fn start(f: &Fixture, token: &str) -> SessionKey {
    let r = post_bearer(&f.app, "/start", token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .parse()
        .unwrap_or_else(|_| panic!("a key: {}", r.body))
}

async fn post_bearer(app: &Router, path: &str, token: &str) -> Reply {
    use tower::ServiceExt as _;
    let req = http::Request::post(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    read(app.clone().oneshot(req).await.unwrap()).await
}

fn refreshes(f: &Fixture) -> Vec<String> {
    f.harness
        .entra()
        .token_request_log()
        .into_iter()
        .filter(|r| r.form.get("grant_type").map(String::as_str) == Some("refresh_token"))
        .map(|r| r.form.get("refresh_token").cloned().unwrap_or_default())
        .collect()
}

fn oid_of(token: &axum_obo_testing::TokenBuilder) -> String {
    token.claims()["oid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_job_gets_tokens_after_the_inbound_token_has_expired() {
    let logs = capture_logs_global();
    let f = fixture().await;
    let user = f.harness.entra().token().lifetime(Duration::from_secs(600));
    let oid = oid_of(&user);
    let inbound = user.sign();
    let key = start(&f, &inbound).await;
    // The start asked for offline_access.
    let obo = f.harness.entra().token_request_log();
    let scope = obo
        .last()
        .and_then(|r| r.form.get("scope").cloned())
        .unwrap();
    assert!(scope.split(' ').any(|s| s == "offline_access"), "{scope}");

    // The first token comes from the start's exchange, without a refresh.
    let first = f.sessions.token::<GraphUserRead>(&key).await.unwrap();
    assert!(refreshes(&f).is_empty());

    f.clock.advance(LATER);
    // The inbound token has expired: no request can use it any more …
    let r = post_bearer(&f.app, "/start", &inbound).await;
    assert_eq!(r.status, 401, "{}", r.body);
    // … but the job still gets tokens.
    let later = f.sessions.token::<GraphUserRead>(&key).await.unwrap();
    assert_ne!(later.access_token(), first.access_token());
    assert_eq!(refreshes(&f).len(), 1);
    let me = f
        .sessions
        .graph::<GraphUserRead>(&key)
        .await
        .unwrap()
        .get_json("/me")
        .await
        .unwrap();
    assert_eq!(me["id"], oid.as_str());
    // Any consented scope set, not only the start's.
    f.sessions.token::<GraphDefault>(&key).await.unwrap();
    assert_eq!(refreshes(&f).len(), 2);

    let secrets = refreshes(&f);
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secrets_in(logs, &secrets);
    assert!(
        !logs.text().contains(key.expose()),
        "the key is never logged"
    );
}

#[tokio::test]
async fn every_refresh_stores_the_rotated_refresh_token() {
    let f = fixture().await;
    // Strict mode: a redeemed refresh token is spent, so only a stored rotation works.
    f.harness.entra().refuse_refresh_token_reuse(true);
    let key = start(&f, &f.harness.entra().token().sign()).await;
    for _ in 0..3 {
        f.clock.advance(LATER);
        f.sessions.token::<GraphUserRead>(&key).await.unwrap();
    }
    let sent = refreshes(&f);
    assert_eq!(sent.len(), 3);
    assert_ne!(sent[0], sent[1]);
    assert_ne!(sent[1], sent[2]);
    assert!(sent.iter().all(|t| t.starts_with("1.A")));
}

#[tokio::test]
async fn revocation_ends_the_session_and_the_user_must_sign_in_again() {
    let f = fixture().await;
    let user = f.harness.entra().token();
    let oid = oid_of(&user);
    let key = start(&f, &user.sign()).await;
    f.harness.entra().revoke_refresh_tokens(&oid);
    f.clock.advance(LATER);
    let e = f.sessions.token::<GraphUserRead>(&key).await.unwrap_err();
    assert!(matches!(e, SessionError::SignInAgain), "{e:?}");
    let e = f.sessions.token::<GraphUserRead>(&key).await.unwrap_err();
    assert!(matches!(e, SessionError::Unknown), "{e:?}");
    assert_eq!(
        refreshes(&f).len(),
        1,
        "an ended session asks Entra nothing"
    );
}

#[tokio::test]
async fn a_session_is_refused_for_another_user() {
    let f = fixture().await;
    let user = f.harness.entra().token();
    let oid = oid_of(&user);
    let tid = f.harness.entra().home_tenant();
    let key = start(&f, &user.sign()).await;
    let owner = f.sessions.owner(&key).await.unwrap();
    assert_eq!((owner.tid(), owner.oid()), (tid.as_str(), oid.as_str()));
    f.sessions
        .token_for::<GraphUserRead>(&key, &SessionOwner::new(&tid, &oid))
        .await
        .unwrap();
    for other in [
        SessionOwner::new(&tid, "00000000-0000-0000-0000-000000000001"),
        SessionOwner::new("00000000-0000-0000-0000-000000000002", &oid),
    ] {
        let e = f
            .sessions
            .token_for::<GraphUserRead>(&key, &other)
            .await
            .unwrap_err();
        assert!(matches!(e, SessionError::OtherUser), "{e:?}");
        let e = f
            .sessions
            .graph_for::<GraphUserRead>(&key, &other)
            .await
            .unwrap_err();
        assert!(matches!(e, SessionError::OtherUser), "{e:?}");
    }
}

#[tokio::test]
async fn concurrent_uses_of_one_session_refresh_once() {
    let f = fixture().await;
    let key = start(&f, &f.harness.entra().token().sign()).await;
    f.clock.advance(LATER);
    f.harness.entra().delay(Some(Duration::from_millis(200)));
    let calls = (0..16).map(|_| {
        let sessions = f.sessions.clone();
        let key = key.clone();
        tokio::spawn(async move { sessions.token::<GraphUserRead>(&key).await })
    });
    let tokens = futures_util::future::join_all(calls).await;
    let first = tokens[0]
        .as_ref()
        .unwrap()
        .as_ref()
        .unwrap()
        .access_token()
        .clone();
    for t in &tokens {
        assert_eq!(t.as_ref().unwrap().as_ref().unwrap().access_token(), &first);
    }
    assert_eq!(refreshes(&f).len(), 1);
}

#[tokio::test]
async fn end_removes_the_session_and_ending_twice_is_fine() {
    let f = fixture().await;
    let key = start(&f, &f.harness.entra().token().sign()).await;
    f.sessions.token::<GraphUserRead>(&key).await.unwrap();
    f.sessions.end(&key).await.unwrap();
    let e = f.sessions.token::<GraphUserRead>(&key).await.unwrap_err();
    assert!(matches!(e, SessionError::Unknown), "{e:?}");
    f.sessions.end(&key).await.unwrap();
    let never: SessionKey = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        .parse()
        .unwrap();
    f.sessions.end(&never).await.unwrap();
    assert!(matches!(
        f.sessions.owner(&never).await,
        Err(SessionError::Unknown)
    ));
}

#[tokio::test]
async fn an_idle_session_ends() {
    let f = fixture_with(|c| c.session_idle_timeout(Duration::from_secs(3600))).await;
    let key = start(&f, &f.harness.entra().token().sign()).await;
    // Used within the idle timeout: kept (and its idle clock restarts).
    f.clock.advance(Duration::from_secs(3000));
    f.sessions.token::<GraphUserRead>(&key).await.unwrap();
    f.clock.advance(Duration::from_secs(3000));
    f.sessions.token::<GraphUserRead>(&key).await.unwrap();
    f.clock.advance(Duration::from_secs(3601));
    let e = f.sessions.token::<GraphUserRead>(&key).await.unwrap_err();
    assert!(matches!(e, SessionError::Unknown), "{e:?}");
}

#[tokio::test]
async fn the_idle_timeout_is_checked_at_build() {
    let h = Harness::start().await;
    for bad in [Duration::from_secs(59), Duration::from_secs(91 * 24 * 3600)] {
        let e = h.config().session_idle_timeout(bad).build().unwrap_err();
        assert_eq!(e.field(), "session_idle_timeout");
    }
}

#[tokio::test]
async fn concurrent_uses_of_two_scope_sets_never_lose_a_rotation() {
    let f = fixture().await;
    // Strict mode: writing back a stale refresh token would end the session.
    f.harness.entra().refuse_refresh_token_reuse(true);
    let key = start(&f, &f.harness.entra().token().sign()).await;
    for _ in 0..3 {
        f.clock.advance(LATER);
        let calls = (0..16).map(|i| {
            let sessions = f.sessions.clone();
            let key = key.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    sessions.token::<GraphUserRead>(&key).await.map(|_| ())
                } else {
                    sessions.token::<GraphDefault>(&key).await.map(|_| ())
                }
            })
        });
        for r in futures_util::future::join_all(calls).await {
            r.unwrap().unwrap();
        }
    }
    assert_eq!(
        refreshes(&f).len(),
        6,
        "one refresh per scope set each time"
    );
}
