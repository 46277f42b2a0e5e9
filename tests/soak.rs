//! Load and isolation soak: the example router under thousands of users, mixed
//! valid, invalid and expired tokens, and token-endpoint faults.
//!
//! Bounded for CI; `OBO_SOAK_USERS` and `OBO_SOAK_ROUNDS` make it longer.

mod common;

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

fn dev_cors() -> app::Cors {
    app::cors(&[http::HeaderValue::from_static(app::DEV_ORIGIN)])
}

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum_obo::OboLayer;
use axum_obo_testing::TokenFault;
use common::*;
use tokio::sync::Semaphore;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Valid,
    Tampered,
    Expired,
    Faulted,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_users_stay_isolated_and_bounded() {
    let logs = capture_logs_global();
    let users = env_usize("OBO_SOAK_USERS", 1500);
    let rounds = env_usize("OBO_SOAK_ROUNDS", 3);
    // A cache far smaller than the user count: eviction must keep it bounded.
    let max_bytes: u64 = 512 * 1024;

    let e = app::Embedded::start().await;
    let cfg = app::policy(e.config())
        .obo_cache_max_bytes(max_bytes)
        .obo_retries(1, Duration::from_secs(2))
        .build()
        .unwrap();
    let layer = OboLayer::new(cfg);
    layer.warm_up().await.unwrap();
    let router = app::router(layer.clone(), dev_cors());

    // Every 10th user's exchanges fail at the token endpoint (throttled for good).
    let mut plan = Vec::with_capacity(users);
    for i in 0..users {
        let builder = e.entra.token();
        let oid = builder.claims()["oid"].as_str().unwrap().to_owned();
        let (kind, token) = match i % 10 {
            3 => (Kind::Tampered, tamper(&builder.sign())),
            6 => (Kind::Expired, builder.expired().sign()),
            9 => {
                e.entra.inject_token_fault_for_user(
                    &oid,
                    TokenFault::ServiceUnavailable {
                        retry_after: Some(1),
                    },
                );
                (Kind::Faulted, builder.sign())
            }
            _ => (Kind::Valid, builder.sign()),
        };
        plan.push((kind, oid, Arc::new(token)));
    }

    // Run 1: the default cache. Exactly one exchange per user and scope set.
    let roomy = OboLayer::new(
        app::policy(e.config())
            .obo_retries(1, Duration::from_secs(2))
            .build()
            .unwrap(),
    );
    let valid_users = plan.iter().filter(|p| p.0 == Kind::Valid).count();
    let elapsed = drive(app::router(roomy.clone(), dev_cors()), &plan, rounds).await;
    let stats = roomy.stats();
    assert_eq!(
        stats.exchanges - stats.errors,
        valid_users as u64,
        "{stats:?}"
    );
    eprintln!("soak (default cache): {users} users × {rounds} rounds in {elapsed:?}; {stats:?}");

    // Run 2: a cache far smaller than the user count: eviction keeps it bounded,
    // evicted users are exchanged again, nobody gets another user's token.
    let issued_before = e.entra.tokens_issued();
    let elapsed = drive(router, &plan, rounds).await;
    let stats = layer.stats();
    let issued = e.entra.tokens_issued() - issued_before;
    assert_eq!(issued as u64, stats.exchanges - stats.errors, "{stats:?}");
    assert!(
        issued <= valid_users * rounds,
        "{issued} exchanges for {valid_users} users × {rounds} rounds"
    );
    let usage = layer.cache_usage().await;
    let (entries, bytes) = (usage.entries, usage.bytes);
    assert!(
        bytes <= max_bytes,
        "cache holds {bytes} bytes > {max_bytes}"
    );
    assert!(
        entries > 0 && entries < valid_users as u64,
        "{entries} entries: bounded and used"
    );
    eprintln!(
        "soak (512 KiB cache): {elapsed:?}; {issued} exchanges; cache {entries} entries / {bytes} bytes; {stats:?}"
    );

    // Secrets hygiene over everything logged, at every level, by every crate.
    assert_no_secrets_in(logs, &[&e.entra.client_secret()]);
    eprintln!("soak: {} bytes of logs searched", logs.text().len());
}

async fn drive(
    router: axum::Router,
    plan: &[(Kind, String, Arc<String>)],
    rounds: usize,
) -> Duration {
    let users = plan.len();
    let started = Instant::now();
    let limit = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::new();
    for round in 0..rounds {
        for step in 0..users {
            // Interleave: odd rounds walk the users backwards.
            let i = if round % 2 == 0 {
                step
            } else {
                users - 1 - step
            };
            let (kind, oid, token) = &plan[i];
            let (kind, oid, token) = (*kind, oid.clone(), Arc::clone(token));
            let (router, limit) = (router.clone(), Arc::clone(&limit));
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                let r = bearer(&router, "/me", &token).await;
                (kind, oid, r)
            }));
        }
    }
    let mut valid_ok = 0;
    for t in tasks {
        let (kind, oid, r) = t.await.unwrap();
        match kind {
            Kind::Valid => {
                assert_eq!(
                    r.status, 200,
                    "valid request failed while the IdP is healthy: {}",
                    r.body
                );
                assert_eq!(
                    r.json()["id"],
                    oid.as_str(),
                    "a user was answered with another user's profile"
                );
                valid_ok += 1;
            }
            Kind::Tampered | Kind::Expired => {
                assert_eq!(r.status, 401, "{kind:?}: {}", r.body);
            }
            Kind::Faulted => {
                assert_eq!(r.status, 503, "{}", r.body);
                assert!(r.retry_after.is_some());
            }
        }
        assert!(!r.body.contains("eyJ"), "a token in a response body");
    }
    let valid_users = plan.iter().filter(|p| p.0 == Kind::Valid).count();
    assert_eq!(valid_ok, valid_users * rounds);
    started.elapsed()
}

fn tamper(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut sig = parts[2].clone().into_bytes();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    parts[2] = String::from_utf8(sig).unwrap();
    parts.join(".")
}
