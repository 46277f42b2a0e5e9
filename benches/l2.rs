//! The Redis L2's cost and benefit, through the real `OboLayer` and `OboToken`
//! extractor, against the Entra stand-in and a `redis-server` on loopback:
//!
//! 1. the latency of an L1 hit, an L2 hit (L1 miss served from Redis), and an
//!    L1 miss that exchanges, with and without the L2;
//! 2. the exchanges sent to Entra by 4 replicas serving the same users, with and
//!    without the L2;
//!
//! each with a standalone `redis-server` and with a local 3-master Redis Cluster
//! (`obo_redis_cluster(true)`), the same workload.
//!
//! `cargo bench --bench l2 --features redis` (needs `redis-server` and
//! `redis-cli` on the PATH).
//! A standalone binary (`harness = false`); it prints its results.
#![cfg(feature = "redis")]
// Before its `[[bench]]` entry (harness = false) exists, Cargo builds this file
// under the libtest harness, where `main` is unused.
#![cfg_attr(test, allow(dead_code))]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use axum_obo::{GraphUserRead, OboConfig, OboConfigBuilder, OboLayer, OboToken, Principal};
use axum_obo_testing::EntraStandIn;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::Request;
use tower::ServiceExt as _;

/// The Redis suites' servers: a `redis-server` per test and a 3-master cluster
/// (`tests/common/`), killed on drop.
#[allow(dead_code)]
#[path = "../tests/common/redis_cluster.rs"]
mod redis_cluster;
#[allow(dead_code)]
#[path = "../tests/common/redis_server.rs"]
mod redis_server;
use redis_cluster::RedisCluster;
use redis_server::RedisServer;

/// Users of the latency measurements (one sample per user and path).
const LATENCY_USERS: usize = 1000;
/// Users and requests per user of the replica scenario.
const REPLICA_USERS: usize = 250;
const REQUESTS_PER_USER: usize = 8;
const REPLICAS: usize = 4;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let redis = RedisServer::start().await;
    let cluster = RedisCluster::start().await;
    let entra = EntraStandIn::start().await;
    for (label, url, is_cluster) in [
        ("standalone redis-server", redis.url(), false),
        ("3-master Redis Cluster", cluster.seeds(), true),
    ] {
        println!("\n#### {label}");
        measure(&entra, &url, is_cluster).await;
    }
}

async fn measure(entra: &EntraStandIn, url: &str, cluster: bool) {
    let key = STANDARD.encode([42u8; 32]);
    let plain = || {
        OboConfig::builder()
            .tenant_id(entra.home_tenant())
            .client_id(entra.api_client_id())
            .authority_host(entra.authority_host())
            .client_secret(entra.client_secret())
    };
    let with_l2 = |prefix: &str| -> OboConfigBuilder {
        plain()
            .obo_redis_url(url)
            .obo_redis_cluster(cluster)
            .obo_cache_key(key.clone())
            .obo_redis_prefix(prefix)
    };
    println!(
        "== latency through OboLayer + OboToken ({LATENCY_USERS} users, one request each per row)"
    );
    let users: Vec<String> = (0..LATENCY_USERS).map(|_| entra.token().sign()).collect();
    let a = app(OboLayer::new(with_l2("bench:").build().unwrap()));
    let b = app(OboLayer::new(with_l2("bench:").build().unwrap()));
    let c = app(OboLayer::new(plain().build().unwrap()));
    // Every router validates each token once first, so that rows differ only by the cache.
    for u in &users {
        for r in [&a, &b, &c] {
            request(r, "/whoami", u).await;
        }
    }
    let mut miss_l2 = Vec::new();
    let mut miss_plain = Vec::new();
    let mut l1_hit = Vec::new();
    let mut l2_hit = Vec::new();
    for u in &users {
        miss_l2.push(request(&a, "/obo", u).await);
        miss_plain.push(request(&c, "/obo", u).await);
    }
    for u in &users {
        l1_hit.push(request(&a, "/obo", u).await);
        l2_hit.push(request(&b, "/obo", u).await);
    }
    report("L1 hit (in memory)", &mut l1_hit);
    report("L2 hit (L1 miss, Redis GET + AES-GCM open)", &mut l2_hit);
    report("miss, exchange, no L2", &mut miss_plain);
    report("miss, exchange + L2 GET + SET", &mut miss_l2);
    let l1 = median(&l1_hit);
    let l2 = median(&l2_hit);
    println!(
        "  an L2 hit adds {:.0} µs to an L1 hit (medians)",
        (l2.as_secs_f64() - l1.as_secs_f64()) * 1e6
    );

    println!(
        "\n== exchanges: {REPLICAS} replicas, {REPLICA_USERS} users × {REQUESTS_PER_USER} requests, \
         each request to a pseudo-random replica"
    );
    let tokens: Vec<String> = (0..REPLICA_USERS).map(|_| entra.token().sign()).collect();
    for (label, make) in [("without L2", None), ("with L2", Some("bench-replicas:"))] {
        let replicas: Vec<Router> = (0..REPLICAS)
            .map(|_| {
                let cfg = match make {
                    Some(prefix) => with_l2(prefix),
                    None => plain(),
                };
                app(OboLayer::new(cfg.build().unwrap()))
            })
            .collect();
        let before = entra.token_requests();
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..REQUESTS_PER_USER {
            for t in &tokens {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let replica = &replicas[(rng % REPLICAS as u64) as usize];
                request(replica, "/obo", t).await;
            }
        }
        let exchanges = entra.token_requests() - before;
        println!(
            "  {label:<11} {exchanges:>5} exchanges for {REPLICA_USERS} users ({:.2} per user)",
            exchanges as f64 / REPLICA_USERS as f64
        );
    }
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

/// One request, timed from the call to the end of the body; panics unless 200.
async fn request(app: &Router, path: &str, token: &str) -> Duration {
    let req = Request::get(path)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("a request");
    let started = Instant::now();
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let _ = axum::body::to_bytes(resp.into_body(), 1 << 20).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{path}");
    took
}

fn median(samples: &[Duration]) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn report(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "  {label:<44} median {:>8.1} µs   p90 {:>8.1} µs   p99 {:>8.1} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.9).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
    );
}
