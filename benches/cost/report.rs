//! Concurrency and memory report: `cargo bench --bench report`.
//!
//! 1. Single flight: 1,000 concurrent first requests of one user through the real
//!    router (`OboLayer` + `OboToken<GraphUserRead>`) against the stand-in's token
//!    endpoint, once as fast as it answers and once with the endpoint delayed
//!    300 ms (so that every request arrives while the exchange is in flight).
//!    Counts the exchanges the token endpoint received (must be 1).
//! 2. Memory: resident memory per cached On-Behalf-Of token at 100,000 users,
//!    each entry holding a downstream token of the size the stand-in issues
//!    (measured in part 1), inserted into the exchanger's cache type
//!    (`VmRSS` before and after).
//!
//! Run by `cargo test --benches` (no `--bench` argument) it checks the same
//! things at 2,000 users.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use axum_obo::bench_support::FilledOboCache;
use axum_obo::{BearerToken, GraphUserRead, OboLayer, OboToken, DEFAULT_OBO_CACHE_BYTES};
use axum_obo_testing::{EntraStandIn, TokenFault};
use common::{realistic_token, resident_bytes, USER_READ};
use tower::ServiceExt as _;

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let users = if measuring { 100_000 } else { 2_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime");

    println!("## Single flight: 1,000 concurrent first requests of one user\n");
    println!("| token endpoint | requests | 200 OK | token endpoint requests | exchanges (layer) | cache hits | wall time |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut downstream_len = 0;
    for delay in [None, Some(Duration::from_millis(300))] {
        let run = rt.block_on(single_flight(1_000, delay));
        downstream_len = run.downstream_len;
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} ms |",
            delay.map_or_else(
                || "immediate".to_owned(),
                |d| format!("delayed {} ms", d.as_millis())
            ),
            run.requests,
            run.ok,
            run.token_requests,
            run.exchanges,
            run.hits,
            run.wall.as_secs_f64() * 1e3,
        );
        assert_eq!(run.ok, run.requests, "every request is served");
        assert_eq!(run.token_requests, 1, "one exchange for one user");
    }

    println!("\n## Memory per cached On-Behalf-Of token\n");
    let m = memory(&rt, users, downstream_len);
    println!("| users | downstream token | VmRSS before | VmRSS after | per entry | per entry beyond the token |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} B | {:.1} MiB | {:.1} MiB | {:.0} B | {:.0} B |",
        m.users,
        m.token_len,
        m.before as f64 / 1048576.0,
        m.after as f64 / 1048576.0,
        m.per_entry,
        m.per_entry - m.token_len as f64,
    );
    println!(
        "\nTarget: ≤ 2.5 KB (2,560 B) per cached entry: {}",
        if m.per_entry <= 2560.0 {
            "met"
        } else {
            "MISSED"
        }
    );
}

struct SingleFlight {
    requests: usize,
    ok: usize,
    token_requests: usize,
    exchanges: u64,
    hits: u64,
    wall: Duration,
    downstream_len: usize,
}

async fn single_flight(requests: usize, delay: Option<Duration>) -> SingleFlight {
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(
        common::config(&entra)
            .client_secret(entra.client_secret())
            .build()
            .expect("config"),
    );
    layer.warm_up().await.expect("keys");
    if let Some(d) = delay {
        entra.inject_token_fault(TokenFault::Delay(d), Some(1));
    }
    let app =
        Router::new()
            .route(
                "/",
                get(|t: OboToken<GraphUserRead>| async move {
                    t.access_token().expose().len().to_string()
                }),
            )
            .layer(layer.clone());
    let authorization: Arc<str> = format!(
        "Bearer {}",
        realistic_token(&entra, "5f3a7c1e-9b2d-4e8f-a6c0-1d2e3f4a5b6c")
    )
    .into();
    let start = Instant::now();
    let tasks: Vec<_> = (0..requests)
        .map(|_| {
            let (app, authorization) = (app.clone(), Arc::clone(&authorization));
            tokio::spawn(async move {
                let request = http::Request::get("/")
                    .header(http::header::AUTHORIZATION, &*authorization)
                    .body(Body::empty())
                    .expect("a request");
                let response = app.oneshot(request).await.expect("infallible");
                let ok = response.status() == http::StatusCode::OK;
                let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .unwrap_or_default();
                ok.then(|| String::from_utf8_lossy(&body).parse::<usize>().unwrap_or(0))
            })
        })
        .collect();
    let mut ok = 0;
    let mut downstream_len = 0;
    for t in tasks {
        if let Ok(Some(len)) = t.await {
            ok += 1;
            downstream_len = len;
        }
    }
    let wall = start.elapsed();
    let stats = layer.stats();
    SingleFlight {
        requests,
        ok,
        token_requests: entra.token_requests(),
        exchanges: stats.exchanges,
        hits: stats.hits,
        wall,
        downstream_len,
    }
}

struct Memory {
    users: usize,
    token_len: usize,
    before: u64,
    after: u64,
    per_entry: f64,
}

/// A downstream token of `len` bytes, distinct per user (base64url characters,
/// like a JWT).
fn downstream_token(i: usize, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

fn memory(rt: &tokio::runtime::Runtime, users: usize, token_len: usize) -> Memory {
    assert!(token_len > 0, "the exchange returned a token");
    let tid = "7e536741-2298-4446-abd7-665c5f4aca6b";
    // Everything the fill needs besides the cache, allocated up front.
    let oids: Vec<String> = (0..users)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    let inbound = BearerToken::new("inbound-token");
    let mut cache = FilledOboCache::new(DEFAULT_OBO_CACHE_BYTES);
    rt.block_on(cache.settle());
    let before = resident_bytes();
    rt.block_on(async {
        for (i, oid) in oids.iter().enumerate() {
            cache
                .insert(
                    tid,
                    oid,
                    &[USER_READ],
                    &inbound,
                    downstream_token(i, token_len),
                )
                .await;
        }
        cache.settle().await;
    });
    let after = resident_bytes();
    assert_eq!(cache.entry_count(), users as u64, "every user stays cached");
    // The benchmark's own list of keys (32 B each) is not the cache's.
    let bookkeeping = (cache.keys().len() * 32) as u64;
    let per_entry = (after.saturating_sub(before + bookkeeping)) as f64 / users as f64;
    Memory {
        users,
        token_len,
        before,
        after,
        per_entry,
    }
}
