//! Long-running sessions against the Entra and Graph stand-ins: started in a
//! request, used later without one, rotated, revoked, ended, idle.

mod common;

use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::post;
use axum::Router;
use axum_obo::clock::ManualClock;
use axum_obo::layer::OboContext;
use axum_obo::session::{
    MemorySessionStore, RecordVersion, SessionError, SessionKey, SessionOwner, SessionRecord,
    SessionStore, Sessions, StoreError, StoreFuture,
};
use axum_obo::{AuthRejection, GraphDefault, GraphUserRead, OboLayer, OboToken};
use axum_obo_testing::{Harness, TokenFault};
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
        .route(
            "/start-one",
            post(|ctx: OboContext| async move {
                let key = ctx.start_session::<GraphUserRead>().await?;
                Ok::<_, AuthRejection>(key.expose().to_owned())
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

/// A store sharing `inner`'s entries whose `replace` fails `fail` times after
/// letting `skip` through: a transient store failure.
#[derive(Debug, Clone)]
struct Flaky {
    inner: MemorySessionStore,
    skip: Arc<AtomicUsize>,
    fail: Arc<AtomicUsize>,
}

impl Flaky {
    fn new() -> Self {
        Self {
            inner: MemorySessionStore::new(),
            skip: Arc::default(),
            fail: Arc::default(),
        }
    }

    /// Fails the `n`th next `replace` (from 1).
    fn fail_replace(&self, n: usize) {
        self.skip.store(n - 1, Ordering::SeqCst);
        self.fail.store(1, Ordering::SeqCst);
    }
}

impl SessionStore for Flaky {
    fn get<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> StoreFuture<'a, Option<(SessionRecord, RecordVersion)>> {
        self.inner.get(key)
    }

    fn insert<'a>(
        &'a self,
        key: &'a SessionKey,
        record: &'a SessionRecord,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.inner.insert(key, record, ttl)
    }

    fn replace<'a>(
        &'a self,
        key: &'a SessionKey,
        record: &'a SessionRecord,
        expected: &'a RecordVersion,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let take = |n: &AtomicUsize| {
            n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
        };
        if !take(&self.skip) && take(&self.fail) {
            return Box::pin(async { Err(StoreError::new("injected store failure")) });
        }
        self.inner.replace(key, record, expected, ttl)
    }

    fn delete<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, ()> {
        self.inner.delete(key)
    }
}

#[tokio::test]
async fn a_rotation_the_store_failed_to_take_is_not_lost() {
    let store = Flaky::new();
    let f = fixture_with(|c| c.session_store(store.clone())).await;
    // Strict mode: the refresh token a refresh redeemed is spent.
    f.harness.entra().refuse_refresh_token_reuse(true);
    let key = start(&f, &f.harness.entra().token().sign()).await;
    f.clock.advance(LATER);
    // The touch's write goes through; the refresh's write of the rotated token fails.
    store.fail_replace(2);
    let e = f.sessions.token::<GraphUserRead>(&key).await.unwrap_err();
    assert!(matches!(e, SessionError::Store(_)), "{e:?}");
    assert_eq!(refreshes(&f).len(), 1);
    // The store is back: the next refresh redeems the rotated token, not the spent one.
    let token = f.sessions.token::<GraphUserRead>(&key).await;
    assert!(token.is_ok(), "{token:?}");
    let sent = refreshes(&f);
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0], sent[1], "the rotated refresh token was redeemed");
    // … and stored: the session goes on.
    f.clock.advance(LATER);
    f.sessions.token::<GraphUserRead>(&key).await.unwrap();
    assert_eq!(refreshes(&f).len(), 3);
}

/// A replica of one API: a layer on `clock` sharing `store` with the others.
fn replica(harness: &Harness, clock: &ManualClock, store: &MemorySessionStore) -> OboLayer {
    let config = harness
        .config()
        .clock(clock.clone())
        .session_store(store.clone())
        .build()
        .unwrap();
    OboLayer::new(config)
}

#[tokio::test]
async fn end_during_a_refresh_ends_the_session_on_every_replica() {
    let harness = Harness::start().await;
    let clock = clock();
    let store = MemorySessionStore::new();
    let a = replica(&harness, &clock, &store);
    let b = replica(&harness, &clock, &store);
    let app_a = Router::new()
        .route(
            "/start",
            post(|ctx: OboContext| async move {
                let key = ctx.start_session::<GraphUserRead>().await?;
                Ok::<_, AuthRejection>(key.expose().to_owned())
            }),
        )
        .layer(a.clone());
    let r = post_bearer(&app_a, "/start", &harness.entra().token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let key: SessionKey = r.body.parse().unwrap();
    clock.advance(LATER);

    // Replica A refreshes; Entra answers slowly; replica B ends the session meanwhile.
    harness
        .entra()
        .inject_token_fault(TokenFault::Delay(Duration::from_millis(400)), Some(1));
    let asked = harness.entra().token_requests();
    let refresh = tokio::spawn({
        let (sessions, key) = (a.sessions(), key.clone());
        async move { sessions.token::<GraphUserRead>(&key).await }
    });
    while harness.entra().token_requests() == asked {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    b.sessions().end(&key).await.unwrap();
    let late = refresh.await.unwrap();
    assert!(
        matches!(late, Err(SessionError::Unknown)),
        "the refresh finished after the end: {late:?}"
    );

    // Ended everywhere, and nothing wrote it back.
    for sessions in [a.sessions(), b.sessions()] {
        let e = sessions.token::<GraphUserRead>(&key).await.unwrap_err();
        assert!(matches!(e, SessionError::Unknown), "{e:?}");
        assert!(matches!(
            sessions.owner(&key).await,
            Err(SessionError::Unknown)
        ));
    }
    assert!(store.get(&key).await.unwrap().is_none());
    let refreshed = harness
        .entra()
        .token_request_log()
        .into_iter()
        .filter(|r| r.form.get("grant_type").map(String::as_str) == Some("refresh_token"))
        .count();
    assert_eq!(refreshed, 1, "an ended session asks Entra nothing more");
}

/// Replica B holds the session's access token in its cache; replica A ends the
/// session: B serves that cached token no more.
#[tokio::test]
async fn a_token_cached_on_another_replica_is_not_served_after_end() {
    let harness = Harness::start().await;
    let clock = clock();
    let store = MemorySessionStore::new();
    let a = replica(&harness, &clock, &store);
    let b = replica(&harness, &clock, &store);
    let app_b = Router::new()
        .route(
            "/start",
            post(|ctx: OboContext| async move {
                let key = ctx.start_session::<GraphUserRead>().await?;
                Ok::<_, AuthRejection>(key.expose().to_owned())
            }),
        )
        .layer(b.clone());
    let r = post_bearer(&app_b, "/start", &harness.entra().token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let key: SessionKey = r.body.parse().unwrap();
    // B's cache has the session's first token: served without asking Entra.
    let asked = harness.entra().token_requests();
    b.sessions().token::<GraphUserRead>(&key).await.unwrap();
    assert_eq!(harness.entra().token_requests(), asked);
    a.sessions().end(&key).await.unwrap();
    let e = b.sessions().token::<GraphUserRead>(&key).await.unwrap_err();
    assert!(matches!(e, SessionError::Unknown), "{e:?}");
    assert_eq!(harness.entra().token_requests(), asked);
}

#[tokio::test]
async fn a_session_starts_with_one_exchange_from_the_context() {
    let f = fixture().await;
    let asked = f.harness.entra().token_requests();
    let r = post_bearer(&f.app, "/start-one", &f.harness.entra().token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let key: SessionKey = r.body.parse().unwrap();
    assert_eq!(
        f.harness.entra().token_requests() - asked,
        1,
        "one exchange, with offline_access"
    );
    let scope = f.harness.entra().token_request_log().pop().unwrap().form["scope"].clone();
    assert!(scope.split(' ').any(|s| s == "offline_access"), "{scope}");
    // Its first token is the exchange's, cached.
    f.sessions.token::<GraphUserRead>(&key).await.unwrap();
    assert_eq!(f.harness.entra().token_requests() - asked, 1);
    assert!(refreshes(&f).is_empty());
}

#[tokio::test]
async fn starts_are_bounded_per_user_with_a_429_and_retry_after() {
    let f = fixture_with(|c| c.session_start_limit(2, Duration::from_secs(60))).await;
    let user = f.harness.entra().token().sign();
    for _ in 0..2 {
        let r = post_bearer(&f.app, "/start-one", &user).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let asked = f.harness.entra().token_requests();
    let r = post_bearer(&f.app, "/start-one", &user).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.retry_after.as_deref(), Some("30"));
    assert_eq!(r.json()["error"], "too_many_requests", "{}", r.body);
    assert_eq!(
        f.harness.entra().token_requests(),
        asked,
        "a refused start asks Entra nothing"
    );
    // The extractor's path is bounded too.
    let e = post_bearer(&f.app, "/start", &user).await;
    assert!(e.body.starts_with("error: too many sessions"), "{}", e.body);
    // Another user of the tenant is not affected.
    let other = f
        .harness
        .entra()
        .token()
        .user("00000000-0000-0000-0000-0000000000bb")
        .sign();
    assert_eq!(post_bearer(&f.app, "/start-one", &other).await.status, 200);
    // The bucket refills on the configured clock.
    f.clock.advance(Duration::from_secs(30));
    let r = post_bearer(&f.app, "/start-one", &user).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn the_start_limit_is_checked_at_build() {
    let h = Harness::start().await;
    for (starts, per) in [
        (0, Duration::from_secs(60)),
        (1, Duration::ZERO),
        (1, Duration::from_secs(2 * 24 * 3600)),
    ] {
        let e = h
            .config()
            .session_start_limit(starts, per)
            .build()
            .unwrap_err();
        assert_eq!(e.field(), "session_start_limit");
    }
}

#[tokio::test]
async fn downstream_refuses_a_bad_base_url_before_any_refresh() {
    let f = fixture().await;
    let key = start(&f, &f.harness.entra().token().sign()).await;
    f.clock.advance(LATER);
    let e = f
        .sessions
        .downstream::<GraphUserRead>(&key, "ftp://api.contoso.example")
        .await
        .unwrap_err();
    assert!(matches!(e, SessionError::Downstream(_)), "{e:?}");
    assert!(refreshes(&f).is_empty());
    f.sessions
        .downstream::<GraphUserRead>(&key, "https://api.contoso.example/v2")
        .await
        .unwrap();
    assert_eq!(refreshes(&f).len(), 1);
}

/// One user's sessions are that user to the throttling backoff: 429s on the
/// refreshes of two of their sessions (or of a session and their own exchange)
/// are one user's throttling, never evidence that the tenant is throttled; and a
/// new session (a new refresh token) does not escape the user's backoff.
#[tokio::test]
async fn one_users_sessions_are_one_user_to_the_throttling_backoff() {
    let f = fixture_with(|c| c.obo_retries(0, Duration::from_secs(1))).await;
    let entra = f.harness.entra();
    let user = entra.token();
    let oid = oid_of(&user);
    let inbound = user.sign();
    let first = start(&f, &inbound).await;
    let second = start(&f, &inbound).await;
    let other = entra
        .token()
        .user("00000000-0000-0000-0000-0000000000cc")
        .sign();
    let theirs = start(&f, &other).await;
    f.clock.advance(LATER);
    entra.inject_token_fault_for_user(&oid, TokenFault::TenantThrottled { retry_after: None });
    let e = f.sessions.token::<GraphUserRead>(&first).await.unwrap_err();
    assert!(matches!(e, SessionError::Unavailable { .. }), "{e:?}");
    let asked = entra.token_requests();
    // The user's other session backs off with them: no request.
    let e = f
        .sessions
        .token::<GraphUserRead>(&second)
        .await
        .unwrap_err();
    assert!(matches!(e, SessionError::Unavailable { .. }), "{e:?}");
    assert_eq!(entra.token_requests(), asked, "the user is backing off");
    // Once it elapses, a 429 on the other session is still the same user's.
    f.clock.advance(Duration::from_secs(1));
    let e = f
        .sessions
        .token::<GraphUserRead>(&second)
        .await
        .unwrap_err();
    assert!(matches!(e, SessionError::Unavailable { .. }), "{e:?}");
    assert_eq!(entra.token_requests(), asked + 1, "one probe");
    // Another user of the tenant still gets tokens: the tenant is open.
    f.sessions.token::<GraphUserRead>(&theirs).await.unwrap();
    assert_eq!(entra.token_requests(), asked + 2);
}
