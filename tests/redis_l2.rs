//! The Redis L2 (feature `redis`) against a real `redis-server` on loopback:
//! sharing between replicas, encryption at rest, rotation, expiry, and Redis
//! failing and coming back. Each test starts its own server on a free port and
//! stops it; `redis-server` must be installed (`.ci/run` installs it).
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use axum_obo::{GraphUserRead, OboConfigBuilder, OboLayer, OboToken, Principal};
use axum_obo_testing::{EntraStandIn, TokenFault};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::redis_server::{free_port, RedisServer};
use common::*;
use redis::aio::MultiplexedConnection;

fn key(b: u8) -> String {
    STANDARD.encode([b; 32])
}

fn with_redis(entra: &EntraStandIn, redis_url: &str) -> OboConfigBuilder {
    config(entra)
        .client_secret(entra.client_secret())
        .obo_redis_url(redis_url)
        .obo_cache_key(key(1))
}

fn replica(builder: OboConfigBuilder) -> (OboLayer, Router) {
    let layer = OboLayer::new(builder.build().unwrap());
    (layer.clone(), app_l2(layer))
}

fn claims(token: &str) -> serde_json::Value {
    let seg = token.split('.').nth(1).unwrap_or_default();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null)
}

/// `/raw`: the downstream token (test only); `/owner`: "caller-oid token-oid".
fn app_l2(layer: OboLayer) -> Router {
    Router::new()
        .route(
            "/raw",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .route(
            "/owner",
            get(|p: Principal, t: OboToken<GraphUserRead>| async move {
                let c = claims(t.access_token().expose());
                format!("{} {}", p.oid(), c["oid"].as_str().unwrap_or("?"))
            }),
        )
        .layer(layer)
}

async fn raw(app: &Router, token: &str) -> String {
    let r = bearer(app, "/raw", token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn assert_own_token(app: &Router, token: &str) {
    let r = bearer(app, "/owner", token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (caller, owner) = r.body.split_once(' ').unwrap();
    assert_eq!(caller, owner, "a user was served someone else's token");
}

async fn keys(c: &mut MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(c).await.unwrap();
    keys.sort();
    keys
}

async fn value(c: &mut MultiplexedConnection, key: &str) -> Vec<u8> {
    redis::cmd("GET").arg(key).query_async(c).await.unwrap()
}

async fn set_keep_ttl(c: &mut MultiplexedConnection, key: &str, value: &[u8]) {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("KEEPTTL")
        .query_async::<()>(c)
        .await
        .unwrap();
}

async fn pttl(c: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(c).await.unwrap()
}

/// The one key in Redis that is not in `known`.
async fn new_key(c: &mut MultiplexedConnection, known: &[String]) -> String {
    let fresh: Vec<String> = keys(c)
        .await
        .into_iter()
        .filter(|k| !known.contains(k))
        .collect();
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    fresh[0].clone()
}

#[tokio::test]
async fn a_token_exchanged_by_one_replica_is_served_by_another() {
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let (a, app_a) = replica(with_redis(&entra, &redis.url()));
    let (b, app_b) = replica(with_redis(&entra, &redis.url()));
    let builder = entra.token();
    let (tid, oid) = {
        let c = builder.claims();
        (
            c["tid"].as_str().unwrap().to_owned(),
            c["oid"].as_str().unwrap().to_owned(),
        )
    };
    let user = builder.sign();

    let from_a = raw(&app_a, &user).await;
    assert_eq!(entra.token_requests(), 1);
    let from_b = raw(&app_b, &user).await;
    assert_eq!(from_a, from_b, "B serves A's token");
    assert_eq!(entra.token_requests(), 1, "no second exchange");
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.exchanges, sa.l2_misses, sa.l2_writes), (1, 1, 1));
    assert_eq!((sb.exchanges, sb.l2_hits, sb.misses), (0, 1, 1));

    // Now in B's memory: no Redis call for the next request.
    assert_eq!(raw(&app_b, &user).await, from_a);
    assert_eq!((b.stats().hits, b.stats().l2_hits), (1, 1));

    // The other way round, for a second user.
    let second = entra.token().sign();
    assert_own_token(&app_b, &second).await;
    assert_own_token(&app_a, &second).await;
    assert_eq!(entra.token_requests(), 2);
    assert_eq!(a.stats().l2_hits, 1);

    // Redis holds digests and ciphertext only.
    let mut c = redis.client().await;
    let stored = keys(&mut c).await;
    assert_eq!(stored.len(), 2);
    for k in &stored {
        let hex = k.strip_prefix("axum-obo:").expect("default prefix");
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{k}"
        );
        let v = value(&mut c, k).await;
        let text = String::from_utf8_lossy(&v);
        for secret in [oid.as_str(), tid.as_str(), "User.Read"]
            .into_iter()
            .chain(from_a.split('.').filter(|p| p.len() > 16))
            .chain(user.split('.').filter(|p| p.len() > 16))
        {
            assert!(
                !k.contains(secret) && !text.contains(secret),
                "{secret} in clear"
            );
        }
        // The TTL is the entry's freshness: 3599 s lifetime - 300 s margin.
        let ttl = pttl(&mut c, k).await;
        assert!((3_290_000..=3_299_000).contains(&ttl), "PTTL {ttl}");
    }
}

#[tokio::test]
async fn tampered_or_swapped_values_are_rejected_and_exchanged_again() {
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let cfg = || with_redis(&entra, &redis.url());
    let (_, writer) = replica(cfg());
    let mut c = redis.client().await;
    let alice = entra.token().sign();
    let bob = entra.token().sign();
    assert_own_token(&writer, &alice).await;
    let alice_key = new_key(&mut c, &[]).await;
    assert_own_token(&writer, &bob).await;
    let bob_key = new_key(&mut c, std::slice::from_ref(&alice_key)).await;
    assert_eq!(entra.token_requests(), 2);

    // One bit flipped, at the start, in the middle and at the end of the value.
    for at in [0usize, 1, 20, usize::MAX] {
        let good = value(&mut c, &alice_key).await;
        let mut bad = good.clone();
        let i = at.min(bad.len() - 1);
        bad[i] ^= 0x01;
        set_keep_ttl(&mut c, &alice_key, &bad).await;
        let before = entra.token_requests();
        let (reader, app) = replica(cfg());
        assert_own_token(&app, &alice).await;
        assert_eq!(
            entra.token_requests(),
            before + 1,
            "byte {i}: exchanged again"
        );
        let s = reader.stats();
        assert_eq!(
            (s.l2_rejected, s.l2_hits, s.l2_writes),
            (1, 0, 1),
            "byte {i}"
        );
        assert_ne!(
            value(&mut c, &alice_key).await,
            bad,
            "overwritten by the new exchange"
        );
    }
    // Truncated, empty.
    for bad in [value(&mut c, &alice_key).await[..30].to_vec(), Vec::new()] {
        set_keep_ttl(&mut c, &alice_key, &bad).await;
        let (reader, app) = replica(cfg());
        assert_own_token(&app, &alice).await;
        assert_eq!(reader.stats().l2_rejected, 1);
    }

    // Alice's value under Bob's key and Bob's under Alice's: both refused.
    let (va, vb) = (
        value(&mut c, &alice_key).await,
        value(&mut c, &bob_key).await,
    );
    set_keep_ttl(&mut c, &alice_key, &vb).await;
    set_keep_ttl(&mut c, &bob_key, &va).await;
    let before = entra.token_requests();
    let (reader, app) = replica(cfg());
    assert_own_token(&app, &alice).await;
    assert_own_token(&app, &bob).await;
    assert_eq!(entra.token_requests(), before + 2);
    let s = reader.stats();
    assert_eq!((s.l2_rejected, s.l2_hits), (2, 0));

    // The rewritten entries are good again.
    let (reader, app) = replica(cfg());
    assert_own_token(&app, &alice).await;
    assert_own_token(&app, &bob).await;
    assert_eq!(reader.stats().l2_hits, 2);
    assert_eq!(entra.token_requests(), before + 2);
}

#[tokio::test]
async fn rotated_keys_read_old_entries_and_write_new_ones() {
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let old_only = || with_redis(&entra, &redis.url());
    let rotated = || {
        with_redis(&entra, &redis.url())
            .obo_cache_key(key(2))
            .obo_cache_old_keys([key(1)])
    };
    let new_only = || with_redis(&entra, &redis.url()).obo_cache_key(key(2));
    let user = entra.token().sign();

    let (_, before_rotation) = replica(old_only());
    let token = raw(&before_rotation, &user).await;
    // A replica with the new key and the old one listed reads it.
    let (r, app) = replica(rotated());
    assert_eq!(raw(&app, &user).await, token);
    assert_eq!((r.stats().l2_hits, entra.token_requests()), (1, 1));
    // A replica that does not know the old key cannot.
    let (r, app) = replica(new_only());
    assert_ne!(raw(&app, &user).await, token);
    assert_eq!((r.stats().l2_rejected, entra.token_requests()), (1, 2));
    // It wrote under the new key: readable by rotated replicas, not by old ones.
    let (r, app) = replica(rotated());
    raw(&app, &user).await;
    assert_eq!(r.stats().l2_hits, 1);
    let (r, app) = replica(old_only());
    raw(&app, &user).await;
    assert_eq!(r.stats().l2_rejected, 1);
    assert_eq!(entra.token_requests(), 3);

    // A different prefix is a different cache.
    let (r, app) = replica(old_only().obo_redis_prefix("other-app:"));
    raw(&app, &user).await;
    assert_eq!((r.stats().l2_misses, r.stats().l2_hits), (1, 0));
}

#[tokio::test]
async fn entries_expire_with_the_tokens_freshness() {
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let cfg = || with_redis(&entra, &redis.url()).clock(clock.clone());
    let user = entra.token().lifetime(Duration::from_secs(3 * 3600)).sign();
    let mut c = redis.client().await;

    let (_, a) = replica(cfg());
    let first = raw(&a, &user).await;
    let k = new_key(&mut c, &[]).await;
    assert!(pttl(&mut c, &k).await > 3_290_000);

    // Past the entry's freshness by the injected clock: a replica that misses in
    // memory finds the Redis entry stale, exchanges, and writes the new one.
    clock.advance(Duration::from_secs(3599 - 300));
    let (b, app_b) = replica(cfg());
    let second = raw(&app_b, &user).await;
    assert_ne!(first, second);
    assert_eq!(entra.token_requests(), 2);
    let s = b.stats();
    assert_eq!((s.l2_misses, s.l2_hits, s.l2_writes), (1, 0, 1));
    let (c2, app_c) = replica(cfg());
    assert_eq!(raw(&app_c, &user).await, second);
    assert_eq!(c2.stats().l2_hits, 1);

    // Redis drops entries itself when they stop being fresh (real time here).
    let redis2 = RedisServer::start().await;
    entra.set_obo_token_lifetime(Duration::from_secs(2));
    let (_, short) = replica(with_redis(&entra, &redis2.url()));
    raw(&short, &entra.token().sign()).await;
    let mut c = redis2.client().await;
    let k = new_key(&mut c, &[]).await;
    let ttl = pttl(&mut c, &k).await;
    assert!(
        (1..=1000).contains(&ttl),
        "fresh for 1 s of a 2 s token: PTTL {ttl}"
    );
    let started = Instant::now();
    while !keys(&mut c).await.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "Redis expired the entry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn requests_survive_redis_going_away_and_use_it_again_when_back() {
    let (logs, _guard) = capture_logs();
    let mut redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let (a, app_a) = replica(with_redis(&entra, &redis.url()));
    let (b, app_b) = replica(with_redis(&entra, &redis.url()));
    let first = entra.token().sign();
    raw(&app_a, &first).await;

    redis.kill();
    let mut users = vec![first.clone()];
    for _ in 0..5 {
        let user = entra.token().sign();
        for app in [&app_a, &app_b] {
            let started = Instant::now();
            assert_own_token(app, &user).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "no waiting on Redis"
            );
        }
        users.push(user);
    }
    // B had never seen `first` and Redis is gone: it exchanges.
    assert_own_token(&app_b, &first).await;
    let (sa, sb) = (a.stats(), b.stats());
    assert!(sa.l2_errors >= 1 && sb.l2_errors >= 1, "{sa:?} {sb:?}");
    assert!(
        sa.l2_skipped >= 1,
        "later calls skip Redis for a while: {sa:?}"
    );
    assert_eq!(entra.token_requests(), 1 + 5 * 2 + 1);

    // Back (empty): after at most a second or two, A writes to it again…
    redis.restart().await;
    let writes = a.stats().l2_writes;
    let started = Instant::now();
    let user = loop {
        let user = entra.token().sign();
        assert_own_token(&app_a, &user).await;
        if a.stats().l2_writes > writes {
            break user;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "L2 used again: {:?}",
            a.stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // …and B reads from it (once its own breaker lets it try).
    let exchanges = entra.token_requests();
    let started = Instant::now();
    while b.stats().l2_hits == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            b.stats()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = b.stats().l2_hits;
        assert_own_token(&app_b, &user).await;
        if b.stats().l2_hits > before {
            break;
        }
    }
    assert!(entra.token_requests() <= exchanges + 1);

    let text = logs.text();
    assert_eq!(
        text.matches("Redis L2 unavailable").count(),
        2,
        "one warning per replica and failure streak: {text}"
    );
    assert!(text.contains("Redis L2 available again"), "{text}");
    for t in &users {
        for part in t.split('.').filter(|p| p.len() > 16) {
            assert!(!text.contains(part), "a token leaked into the logs");
        }
    }
}

#[tokio::test]
async fn an_unreachable_or_silent_redis_never_blocks_requests() {
    let entra = EntraStandIn::start().await;

    // Nothing listens on the port.
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let (layer, app) = replica(with_redis(&entra, &closed));
    for _ in 0..3 {
        let started = Instant::now();
        assert_own_token(&app, &entra.token().sign()).await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    let s = layer.stats();
    assert!(s.l2_errors >= 1, "{s:?}");
    assert_eq!((s.exchanges, s.l2_hits, s.l2_writes), (3, 0, 0));

    // Accepts connections and never answers: the timeout bounds the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    let acceptor = tokio::spawn(async move {
        while let Ok((socket, _)) = silent.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let (layer, app) =
        replica(with_redis(&entra, &url).obo_redis_timeout(Duration::from_millis(50)));
    let started = Instant::now();
    assert_own_token(&app, &entra.token().sign()).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_own_token(&app, &entra.token().sign()).await;
    let s = layer.stats();
    assert!(s.l2_errors >= 1 && s.l2_skipped >= 1, "{s:?}");
    acceptor.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_missing_at_once_exchange_at_most_twice() {
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    entra.inject_token_fault(TokenFault::Delay(Duration::from_millis(300)), Some(2));
    let (_, app_a) = replica(with_redis(&entra, &redis.url()));
    let (_, app_b) = replica(with_redis(&entra, &redis.url()));
    let user = Arc::new(entra.token().sign());
    let mut tasks = Vec::new();
    for i in 0..100 {
        let app = if i % 2 == 0 {
            app_a.clone()
        } else {
            app_b.clone()
        };
        let user = Arc::clone(&user);
        tasks.push(tokio::spawn(async move {
            assert_own_token(&app, &user).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = entra.token_requests();
    assert!(
        (1..=2).contains(&n),
        "one exchange per replica at most: {n}"
    );
    // Whichever write won, a third replica is served from Redis.
    let (c, app_c) = replica(with_redis(&entra, &redis.url()));
    assert_own_token(&app_c, &user).await;
    assert_eq!((c.stats().l2_hits, entra.token_requests()), (1, n));
}

// Long-running sessions in Redis (the session store reuses the L2's Redis and keys).

/// `/start`: starts a session and answers its key.
fn app_sessions(layer: OboLayer) -> Router {
    Router::new()
        .route(
            "/start",
            get(|t: OboToken<GraphUserRead>| async move {
                match t.start_session().await {
                    Ok(key) => key.expose().to_owned(),
                    Err(e) => format!("error: {e}"),
                }
            }),
        )
        .layer(layer)
}

async fn start_session(app: &Router, token: &str) -> axum_obo::session::SessionKey {
    let r = bearer(app, "/start", token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .parse()
        .unwrap_or_else(|_| panic!("a key: {}", r.body))
}

fn refresh_grants(entra: &EntraStandIn) -> usize {
    entra
        .token_request_log()
        .iter()
        .filter(|r| r.form.get("grant_type").map(String::as_str) == Some("refresh_token"))
        .count()
}

async fn session_keys(c: &mut MultiplexedConnection) -> Vec<String> {
    keys(c)
        .await
        .into_iter()
        .filter(|k| k.contains("session:"))
        .collect()
}

#[tokio::test]
async fn a_session_started_on_one_replica_is_used_on_another_and_sealed_at_rest() {
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let a = OboLayer::new(with_redis(&entra, &redis.url()).build().unwrap());
    let b = OboLayer::new(with_redis(&entra, &redis.url()).build().unwrap());
    let app_a = app_sessions(a.clone());
    let user = entra.token();
    let oid = user.claims()["oid"].as_str().unwrap().to_owned();
    let key = start_session(&app_a, &user.sign()).await;

    let token = b.sessions().token::<GraphUserRead>(&key).await.unwrap();
    assert_eq!(claims(token.access_token().expose())["oid"], oid.as_str());
    assert_eq!(
        refresh_grants(&entra),
        1,
        "replica B redeemed the stored refresh token"
    );
    // Replica A sees the token B rotated: its refresh works in the strict mode.
    entra.refuse_refresh_token_reuse(true);
    a.sessions()
        .token::<axum_obo::GraphDefault>(&key)
        .await
        .unwrap();
    assert_eq!(refresh_grants(&entra), 2);

    let mut c = redis.client().await;
    let stored = session_keys(&mut c).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        !stored[0].contains(key.expose()),
        "the session key is not a Redis key"
    );
    assert!(stored[0].starts_with("axum-obo:"), "{}", stored[0]);
    let sealed = value(&mut c, &stored[0]).await;
    let text = String::from_utf8_lossy(&sealed);
    for clear in [oid.as_str(), "1.A", key.expose(), &entra.home_tenant()] {
        assert!(!text.contains(clear), "{clear} in clear in Redis");
    }
    let ttl = pttl(&mut c, &stored[0]).await;
    assert!(
        ttl > 0 && ttl <= 24 * 3600 * 1000,
        "expires with the idle timeout: {ttl}"
    );

    // A sealed record moved under another session's Redis key does not open.
    let other = start_session(&app_a, &entra.token().sign()).await;
    let both = session_keys(&mut c).await;
    let other_redis_key = both.iter().find(|k| **k != stored[0]).unwrap().clone();
    set_keep_ttl(&mut c, &other_redis_key, &sealed).await;
    let e = b
        .sessions()
        .token::<GraphUserRead>(&other)
        .await
        .unwrap_err();
    assert!(
        matches!(e, axum_obo::session::SessionError::Unknown),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_session_survives_a_restart_and_a_key_rotation() {
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let session = {
        let layer = OboLayer::new(with_redis(&entra, &redis.url()).build().unwrap());
        start_session(&app_sessions(layer), &entra.token().sign()).await
    };
    // A new process: nothing in memory.
    let restarted = OboLayer::new(with_redis(&entra, &redis.url()).build().unwrap());
    restarted
        .sessions()
        .token::<GraphUserRead>(&session)
        .await
        .unwrap();
    // A new process with a new key; the old one still opens the record.
    let rotated = OboLayer::new(
        with_redis(&entra, &redis.url())
            .obo_cache_key(key(2))
            .obo_cache_old_keys([key(1)])
            .build()
            .unwrap(),
    );
    rotated
        .sessions()
        .token::<axum_obo::GraphDefault>(&session)
        .await
        .unwrap();
    // Without the old key it is unknown, never an error of another kind.
    let forgot = OboLayer::new(
        with_redis(&entra, &redis.url())
            .obo_cache_key(key(3))
            .build()
            .unwrap(),
    );
    let e = forgot
        .sessions()
        .token::<axum_obo::GraphDefault>(&session)
        .await
        .unwrap_err();
    assert!(
        matches!(e, axum_obo::session::SessionError::Unknown),
        "{e:?}"
    );
}

#[tokio::test]
async fn end_removes_the_session_from_redis() {
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let a = OboLayer::new(with_redis(&entra, &redis.url()).build().unwrap());
    let b = OboLayer::new(with_redis(&entra, &redis.url()).build().unwrap());
    let key = start_session(&app_sessions(a.clone()), &entra.token().sign()).await;
    b.sessions().token::<GraphUserRead>(&key).await.unwrap();
    let mut c = redis.client().await;
    assert_eq!(session_keys(&mut c).await.len(), 1);

    b.sessions().end(&key).await.unwrap();
    assert!(
        session_keys(&mut c).await.is_empty(),
        "no session key remains in Redis"
    );
    // Ended everywhere: replica A, whose memory still holds the start's token, refuses it.
    let e = a.sessions().token::<GraphUserRead>(&key).await.unwrap_err();
    assert!(
        matches!(e, axum_obo::session::SessionError::Unknown),
        "{e:?}"
    );
    a.sessions().end(&key).await.unwrap();
}

#[tokio::test]
async fn a_session_store_failure_is_an_error_not_an_unknown_session() {
    let mut redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(with_redis(&entra, &redis.url()).build().unwrap());
    let key = start_session(&app_sessions(layer.clone()), &entra.token().sign()).await;
    redis.kill();
    let e = layer
        .sessions()
        .token::<GraphUserRead>(&key)
        .await
        .unwrap_err();
    assert!(
        matches!(e, axum_obo::session::SessionError::Store(_)),
        "{e:?}"
    );
}

#[tokio::test]
async fn end_during_a_refresh_on_another_replica_is_not_undone() {
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let a = OboLayer::new(with_redis(&entra, &redis.url()).build().unwrap());
    let b = OboLayer::new(with_redis(&entra, &redis.url()).build().unwrap());
    let key = start_session(&app_sessions(a.clone()), &entra.token().sign()).await;

    // Replica B (no token of the session in memory) refreshes; Entra answers
    // slowly; replica A ends the session meanwhile.
    entra.inject_token_fault(TokenFault::Delay(Duration::from_millis(400)), Some(1));
    let asked = entra.token_requests();
    let refresh = tokio::spawn({
        let (sessions, key) = (b.sessions(), key.clone());
        async move { sessions.token::<GraphUserRead>(&key).await }
    });
    while entra.token_requests() == asked {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.sessions().end(&key).await.unwrap();
    let late = refresh.await.unwrap();
    assert!(
        matches!(late, Err(axum_obo::session::SessionError::Unknown)),
        "the refresh finished after the end: {late:?}"
    );

    // Nothing wrote it back: no key in Redis, unknown to both replicas.
    let mut c = redis.client().await;
    assert!(session_keys(&mut c).await.is_empty());
    for layer in [&a, &b] {
        let e = layer
            .sessions()
            .token::<GraphUserRead>(&key)
            .await
            .unwrap_err();
        assert!(
            matches!(e, axum_obo::session::SessionError::Unknown),
            "{e:?}"
        );
    }
    assert_eq!(
        refresh_grants(&entra),
        1,
        "an ended session asks Entra nothing more"
    );
}

/// `/me`: the handler calls Graph with the user's OBO token.
fn app_graph(layer: OboLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|token: OboToken<GraphUserRead>| async move {
                Ok::<_, axum_obo::AuthRejection>(axum::Json(token.graph().get_json("me").await?))
            }),
        )
        .layer(layer)
}

const CAE_OID: &str = "3e1c0b7a-5d4f-4a8e-9b2c-6f7d8e9a0b1c";

/// Replicas with cp1 and the L2 at `redis`, for the Graph and Entra stand-ins
/// of `harness`.
fn cae_replica(harness: &axum_obo_testing::Harness, redis: &RedisServer) -> (OboLayer, Router) {
    let config = harness
        .config()
        .client_capabilities(["cp1"])
        .obo_redis_url(redis.url())
        .obo_cache_key(key(1));
    let layer = OboLayer::new(config.build().unwrap());
    (layer.clone(), app_graph(layer))
}

/// A user token issued five minutes ago (before any revocation).
fn cae_user(harness: &axum_obo_testing::Harness) -> String {
    harness
        .entra()
        .token()
        .user(CAE_OID)
        .issued_at(std::time::SystemTime::now() - Duration::from_secs(300))
        .sign()
}

/// Entra ends the user's session; Graph challenges the next call once.
fn revoke_and_challenge(harness: &axum_obo_testing::Harness) {
    harness.entra().revoke_session_for_good(CAE_OID);
    harness.graph().inject_fault(
        axum_obo_testing::GraphFault::ClaimsChallenge(
            r#"{"access_token":{"nbf":{"essential":true,"value":"1702682181"}}}"#.into(),
        ),
        Some(1),
    );
}

/// CAE: Graph challenges a token held in Redis and Entra refuses to renew it
/// (the session is revoked). The token is evicted from Redis too, so another
/// replica does not serve it again.
#[tokio::test]
async fn a_challenged_token_that_entra_does_not_renew_is_evicted_from_redis_too() {
    let redis = RedisServer::start().await;
    let harness = axum_obo_testing::Harness::start().await;
    let (a, app_a) = cae_replica(&harness, &redis);
    let user = cae_user(&harness);
    assert_eq!(bearer(&app_a, "/me", &user).await.status, 200);
    let mut c = redis.client().await;
    assert_eq!(keys(&mut c).await.len(), 1, "written through");

    revoke_and_challenge(&harness);
    let r = bearer(&app_a, "/me", &user).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(harness.entra().token_requests(), 2, "one re-exchange");
    assert!(keys(&mut c).await.is_empty(), "evicted from Redis");
    assert_eq!(a.stats().l2_evictions, 1);

    // Another replica: not served the challenged token (Graph would accept it
    // now, its one challenge spent); it asks Entra, which refuses.
    let (b, app_b) = cae_replica(&harness, &redis);
    let graph_calls = harness.graph().requests();
    let r = bearer(&app_b, "/me", &user).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!((b.stats().l2_hits, b.stats().exchanges), (0, 1));
    assert_eq!(harness.graph().requests(), graph_calls, "Graph not called");
    assert_eq!(harness.entra().token_requests(), 3);
}

/// The eviction removes only the challenged token: a token another replica wrote
/// under the same key meanwhile stays in Redis.
#[tokio::test]
async fn the_eviction_keeps_a_newer_token_of_another_replica() {
    let redis = RedisServer::start().await;
    let harness = axum_obo_testing::Harness::start().await;
    let (a, app_a) = cae_replica(&harness, &redis);
    let (_, app_b) = cae_replica(&harness, &redis);
    let user = cae_user(&harness);
    assert_eq!(bearer(&app_a, "/me", &user).await.status, 200);
    // B exchanges its own token for the same key (Redis emptied first).
    let mut c = redis.client().await;
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    assert_eq!(bearer(&app_b, "/me", &user).await.status, 200);
    assert_eq!(harness.entra().token_requests(), 2);
    let stored = keys(&mut c).await;
    assert_eq!(stored.len(), 1);
    let newer = value(&mut c, &stored[0]).await;

    revoke_and_challenge(&harness);
    let r = bearer(&app_a, "/me", &user).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(a.stats().l2_evictions, 0);
    assert_eq!(value(&mut c, &stored[0]).await, newer, "B's token is kept");
}

/// Redis goes away between the exchange and the challenge: the refused
/// re-exchange still answers its own refusal (401, not a 5xx), promptly; the
/// failed eviction is counted as an L2 error.
#[tokio::test]
async fn a_redis_failure_during_the_eviction_does_not_change_the_answer() {
    let mut redis = RedisServer::start().await;
    let harness = axum_obo_testing::Harness::start().await;
    let (a, app_a) = cae_replica(&harness, &redis);
    let user = cae_user(&harness);
    assert_eq!(bearer(&app_a, "/me", &user).await.status, 200);
    redis.kill();
    revoke_and_challenge(&harness);
    let started = Instant::now();
    let r = bearer(&app_a, "/me", &user).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.www_authenticate.is_some());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let s = a.stats();
    assert_eq!(s.l2_evictions, 0);
    assert!(s.l2_errors + s.l2_skipped >= 1, "{s:?}");
}
