//! The Redis L2's metrics (features `metrics` and `redis`): hits and misses
//! across replicas, an undecryptable value, and an unreachable Redis. Each test
//! records into its own thread-local recorder (see `common::recorded`); those
//! with a real Redis start their own redis-server.
#![cfg(feature = "redis")]

mod common;

use axum::routing::get;
use axum::Router;
use axum_obo::metrics as m;
use axum_obo::{GraphUserRead, OboConfigBuilder, OboLayer, OboToken};
use axum_obo_testing::EntraStandIn;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::recorded::{Recorded, Recorder};
use common::redis_server::{free_port, RedisServer};
use common::*;

fn with_redis(entra: &EntraStandIn, redis_url: &str) -> OboConfigBuilder {
    config(entra)
        .client_secret(entra.client_secret())
        .obo_redis_url(redis_url)
        .obo_cache_key(STANDARD.encode([1u8; 32]))
}

fn replica(builder: OboConfigBuilder) -> Router {
    let layer = OboLayer::new(builder.build().unwrap());
    Router::new()
        .route(
            "/obo",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().len().to_string() }),
        )
        .layer(layer)
}

/// The L2's results in `r`, as (result, count).
fn l2(r: &Recorded) -> Vec<(String, u64)> {
    r.counters(m::OBO_CACHE_TOTAL)
        .into_iter()
        .filter(|(l, _)| l["tier"] == "l2")
        .map(|(l, n)| (l["result"].clone(), n))
        .collect()
}

fn pairs(p: &[(&str, u64)]) -> Vec<(String, u64)> {
    p.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
}

#[tokio::test]
async fn an_unreachable_redis_is_an_l2_error() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let closed = format!("redis://127.0.0.1:{}", free_port());
    let app = replica(with_redis(&entra, &closed));
    let reply = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let r = metrics.take();
    let results = l2(&r);
    assert!(
        results.iter().all(|(result, _)| result == "error"),
        "{results:?}"
    );
    // The lookup, and the write-through after the exchange (or its skip).
    let errors: u64 = results.iter().map(|(_, n)| n).sum();
    assert!((1..=2).contains(&errors), "{results:?}");
    assert_eq!(
        r.counter(m::EXCHANGES_TOTAL, &[("grant", "obo"), ("outcome", "ok")]),
        1
    );
}

#[tokio::test]
async fn l2_hits_misses_and_an_undecryptable_value() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let redis = RedisServer::start().await;
    let entra = EntraStandIn::start().await;
    let user = entra.token().sign();

    // The first replica misses both tiers and exchanges.
    let writer = replica(with_redis(&entra, &redis.url()));
    assert_eq!(bearer(&writer, "/obo", &user).await.status, 200);
    let r = metrics.take();
    assert_eq!(l2(&r), pairs(&[("miss", 1)]));
    assert_eq!(
        r.counter(m::OBO_CACHE_TOTAL, &[("tier", "l1"), ("result", "miss")]),
        1
    );

    // Another replica: an L1 miss, an L2 hit, no exchange.
    let reader = replica(with_redis(&entra, &redis.url()));
    assert_eq!(bearer(&reader, "/obo", &user).await.status, 200);
    let r = metrics.take();
    assert_eq!(l2(&r), pairs(&[("hit", 1)]));
    assert_eq!(r.total(m::EXCHANGES_TOTAL), 0);

    // The value is altered in Redis: a third replica cannot open it.
    let mut c = redis.client().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let mut value: Vec<u8> = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    let last = value.len() - 1;
    value[last] ^= 0x01;
    redis::cmd("SET")
        .arg(&keys[0])
        .arg(value)
        .arg("KEEPTTL")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let third = replica(with_redis(&entra, &redis.url()));
    assert_eq!(bearer(&third, "/obo", &user).await.status, 200);
    let r = metrics.take();
    assert_eq!(l2(&r), pairs(&[("undecryptable", 1)]));
    assert_eq!(
        r.counter(m::EXCHANGES_TOTAL, &[("grant", "obo"), ("outcome", "ok")]),
        1,
        "exchanged again"
    );
}
