//! Micro benchmarks of the hot path (criterion): `cargo bench --bench micro`.
//!
//! - `validate/*`: a realistic Entra access token (2048-bit RSA, ~1.5 KB) through
//!   the layer's validator with the validated-token cache disabled (every call
//!   verifies RSA) and enabled (a hit), next to `jsonwebtoken::decode` with the
//!   same key and checks (the floor); `validate/rsa_verify_parsed`: one
//!   RSA-2048 PKCS#1 verification with a pre-parsed aws-lc-rs key (the unit the
//!   uncached path is measured in); `validate/jsonwebtoken_preparsed_provider`:
//!   `jsonwebtoken::decode` with a custom `CryptoProvider` whose verifier uses a
//!   pre-parsed aws-lc-rs key (no per-call key parsing).
//! - `token_key/*`: what keying the validated-token cache costs per request.
//! - `obo_cache_lookup/N`: the On-Behalf-Of cache hit path with N cached users,
//!   looking every user up in a random order; `obo_cache_lookup_hot10/N`: the
//!   same 10 users among N; `hashmap_reference/N`: a plain `HashMap` looked up
//!   like the first (the memory hierarchy's share).
//! - `cache_key/*`: the cache key of a request (SHA-256 of the inbound token
//!   included), with and without the scope normalization the extractor runs.
//! - `layer/*`: one request through an in-process router (no sockets): bare
//!   handler, `OboLayer` with and without its validated-token cache, and
//!   `OboLayer` + `OboToken<GraphUserRead>` served from the On-Behalf-Of cache
//!   (the first request, before measuring, does the one exchange).

mod common;

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use axum_obo::bench_support::{self, FilledOboCache, TokenValidator};
use axum_obo::config::DEFAULT_OBO_CACHE_BYTES;
use axum_obo::secret::BearerToken;
use axum_obo::{GraphUserRead, OboLayer, OboToken, Principal};
use axum_obo_testing::EntraStandIn;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{ready, realistic_token, PreParsedJwt, RawDecoder, USER_READ};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tower::ServiceExt as _;

/// Whether criterion measures (`cargo bench`) rather than smoke-tests each
/// benchmark once (`cargo test --benches`): the large set-ups shrink for the latter.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
}

fn validate(c: &mut Criterion) {
    let rt = runtime();
    let (entra, token, raw) = rt.block_on(async {
        let entra = EntraStandIn::start().await;
        common::assert_rsa_2048(&entra);
        let token = realistic_token(&entra, "5f3a7c1e-9b2d-4e8f-a6c0-1d2e3f4a5b6c");
        let raw = RawDecoder::new(&entra).await;
        (entra, token, raw)
    });
    let uncached = TokenValidator::new(
        common::config(&entra)
            .validated_cache_capacity(0)
            .build()
            .expect("config"),
    );
    let cached = TokenValidator::new(common::config(&entra).build().expect("config"));
    rt.block_on(async {
        uncached.warm_up().await.expect("keys");
        cached.warm_up().await.expect("keys");
        uncached.validate(&token).await.expect("a valid token");
        cached.validate(&token).await.expect("a valid token");
    });
    raw.decode(&token).expect("a valid token");
    let der = entra.public_key_der(&entra.current_kid());
    let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der.as_slice())
        .expect("an RSA public key");
    let (message, signature) = token.rsplit_once('.').expect("a JWS");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    let preparsed = PreParsedJwt::new(&entra, &der, parsed.clone());
    preparsed.decode(&token).expect("a valid token");

    let mut g = c.benchmark_group("validate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("rsa_verify_parsed", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(message.as_bytes()), black_box(&signature))
                .is_ok()
        })
    });
    g.bench_function("jsonwebtoken_decode_floor", |b| {
        b.iter(|| raw.decode(black_box(&token)).is_ok())
    });
    g.bench_function("jsonwebtoken_preparsed_provider", |b| {
        b.iter(|| preparsed.decode(black_box(&token)).is_ok())
    });
    g.bench_function("uncached", |b| {
        b.iter(|| ready(&rt, uncached.validate(black_box(&token))).is_ok())
    });
    g.bench_function("cached", |b| {
        b.iter(|| ready(&rt, cached.validate(black_box(&token))).is_ok())
    });
    g.finish();

    // What finding a token in the validated-token cache costs before the lookup:
    // the SHA-256 the cache was keyed by, the keyed XXH3-128 it is keyed by now
    // (plus the constant-time comparison of the whole token on a hit), and std's
    // keyed SipHash-1-3 for reference.
    let mut g = c.benchmark_group("token_key");
    g.throughput(Throughput::Bytes(token.len() as u64));
    let mut secret = [0u8; 192];
    aws_lc_rs::rand::fill(&mut secret).expect("random");
    let copy = token.clone();
    let sip = std::collections::hash_map::RandomState::new();
    g.bench_function("sha256", |b| {
        b.iter(|| {
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(token.as_bytes()))
        })
    });
    g.bench_function("xxh3_128_secret", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_128_with_secret(black_box(token.as_bytes()), &secret))
    });
    g.bench_function("xxh3_128_secret_and_ct_compare", |b| {
        b.iter(|| {
            let k = xxhash_rust::xxh3::xxh3_128_with_secret(black_box(token.as_bytes()), &secret);
            let same = aws_lc_rs::constant_time::verify_slices_are_equal(
                black_box(token.as_bytes()),
                black_box(copy.as_bytes()),
            );
            (k, same.is_ok())
        })
    });
    g.bench_function("siphash13", |b| {
        b.iter(|| sip.hash_one(black_box(token.as_bytes())))
    });
    g.finish();
    drop(entra);
}

/// A pseudo-random permutation of `0..n` (xorshift; no extra dependency).
fn shuffled(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// A synthetic downstream token of Graph's size (~1.6 KB), distinct per user.
fn downstream_token(i: usize) -> String {
    let mut t = format!("eyJ0eXAiOiJKV1QiLCJub25jZSI6In{i:08}");
    while t.len() < 1600 {
        t.push_str(
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk",
        );
    }
    t.truncate(1600);
    t
}

/// A cache with `users` users, one Graph token each, as the exchange leaves it.
fn filled_cache(rt: &tokio::runtime::Runtime, users: usize) -> FilledOboCache {
    rt.block_on(async {
        let mut cache = FilledOboCache::new(DEFAULT_OBO_CACHE_BYTES);
        let tid = "7e536741-2298-4446-abd7-665c5f4aca6b";
        for i in 0..users {
            let oid = format!("00000000-0000-4000-8000-{i:012}");
            let inbound = BearerToken::new(format!("inbound-token-of-{oid}"));
            cache
                .insert(tid, &oid, &[USER_READ], &inbound, downstream_token(i))
                .await;
        }
        cache.settle().await;
        assert_eq!(cache.entry_count(), users as u64, "every user stays cached");
        cache
    })
}

fn obo_cache_lookup(c: &mut Criterion) {
    let rt = runtime();
    let sizes: &[usize] = if measuring() {
        &[10, 10_000, 100_000]
    } else {
        &[10, 1_000]
    };
    // Three access patterns at each size:
    // - `obo_cache_lookup`: every cached user in a random order, cycling (each
    //   lookup a cold user: at 100k users the entries no longer fit in the CPU
    //   caches);
    // - `obo_cache_lookup_hot10`: the same 10 users over and over, whatever the
    //   size (what the cache's size alone costs);
    // - `hashmap_reference`: a `std::collections::HashMap` with the same keys and
    //   random order: what the memory hierarchy alone costs.
    let mut cold = c.benchmark_group("obo_cache_lookup");
    cold.throughput(Throughput::Elements(1));
    let caches: Vec<(usize, FilledOboCache, Vec<[u8; 32]>)> = sizes
        .iter()
        .map(|&users| {
            let cache = filled_cache(&rt, users);
            let order = shuffled(users)
                .into_iter()
                .map(|i| cache.keys()[i])
                .collect();
            (users, cache, order)
        })
        .collect();
    for (users, cache, order) in &caches {
        let mut next = 0usize;
        cold.bench_with_input(BenchmarkId::from_parameter(users), users, |b, _| {
            b.iter(|| {
                let key = &order[next];
                next = (next + 1) % order.len();
                ready(&rt, cache.lookup(black_box(key))).expect("cached")
            })
        });
    }
    cold.finish();

    let mut hot = c.benchmark_group("obo_cache_lookup_hot10");
    hot.throughput(Throughput::Elements(1));
    for (users, cache, order) in &caches {
        let hot_keys = &order[..10.min(order.len())];
        let mut next = 0usize;
        hot.bench_with_input(BenchmarkId::from_parameter(users), users, |b, _| {
            b.iter(|| {
                let key = &hot_keys[next];
                next = (next + 1) % hot_keys.len();
                ready(&rt, cache.lookup(black_box(key))).expect("cached")
            })
        });
    }
    hot.finish();

    let mut reference = c.benchmark_group("hashmap_reference");
    reference.throughput(Throughput::Elements(1));
    for (users, cache, order) in &caches {
        let map: HashMap<[u8; 32], Arc<String>> = cache
            .keys()
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, Arc::new(downstream_token(i))))
            .collect();
        let mut next = 0usize;
        reference.bench_with_input(BenchmarkId::from_parameter(users), users, |b, _| {
            b.iter(|| {
                let key = &order[next];
                next = (next + 1) % order.len();
                map.get(black_box(key))
                    .map(Arc::clone)
                    .expect("cached")
                    .len()
            })
        });
    }
    reference.finish();
}

fn cache_key(c: &mut Criterion) {
    let rt = runtime();
    let token = rt.block_on(async {
        let entra = EntraStandIn::start().await;
        realistic_token(&entra, "5f3a7c1e-9b2d-4e8f-a6c0-1d2e3f4a5b6c")
    });
    let tid = "7e536741-2298-4446-abd7-665c5f4aca6b";
    let oid = "5f3a7c1e-9b2d-4e8f-a6c0-1d2e3f4a5b6c";
    let normalized = USER_READ.to_ascii_lowercase();
    let mut g = c.benchmark_group("cache_key");
    g.throughput(Throughput::Elements(1));
    // A new `BearerToken` per call, as per request.
    g.bench_function("key", |b| {
        b.iter(|| {
            let inbound = BearerToken::new(black_box(token.as_str()));
            bench_support::cache_key(black_box(tid), black_box(oid), &normalized, &inbound)
        })
    });
    g.bench_function("key_with_scope_normalization", |b| {
        b.iter(|| {
            let inbound = BearerToken::new(black_box(token.as_str()));
            bench_support::request_cache_key(black_box(tid), black_box(oid), &[USER_READ], &inbound)
        })
    });
    g.finish();
}

fn layer(c: &mut Criterion) {
    let rt = runtime();
    let (entra, token) = rt.block_on(async {
        let entra = EntraStandIn::start().await;
        let token = realistic_token(&entra, "5f3a7c1e-9b2d-4e8f-a6c0-1d2e3f4a5b6c");
        (entra, token)
    });
    let authorization = format!("Bearer {token}");
    let request = |path: &str| {
        http::Request::get(path)
            .header(http::header::AUTHORIZATION, authorization.as_str())
            .body(Body::empty())
            .expect("a request")
    };
    let bare: Router = Router::new().route("/", get(|| async { "ok" }));
    let layered = |capacity: Option<u64>| {
        let mut config = common::config(&entra).client_secret(entra.client_secret());
        if let Some(capacity) = capacity {
            config = config.validated_cache_capacity(capacity);
        }
        let layer = OboLayer::new(config.build().expect("config"));
        Router::new()
            .route(
                "/",
                get(|p: Principal| async move { p.oid().len().to_string() }),
            )
            .layer(layer)
    };
    let uncached = layered(Some(0));
    let cached = layered(None);
    let obo_token =
        Router::new()
            .route(
                "/",
                get(|t: OboToken<GraphUserRead>| async move {
                    t.access_token().expose().len().to_string()
                }),
            )
            .layer(OboLayer::new(
                common::config(&entra)
                    .client_secret(entra.client_secret())
                    .build()
                    .expect("config"),
            ));
    let routers = [
        ("bare", bare),
        ("obo_uncached", uncached),
        ("obo_cached", cached),
        ("obo_token_cached", obo_token),
    ];
    let mut g = c.benchmark_group("layer");
    g.throughput(Throughput::Elements(1));
    for (name, router) in &routers {
        let status = rt
            .block_on(router.clone().oneshot(request("/")))
            .map(|r| r.status());
        assert_eq!(status.ok(), Some(http::StatusCode::OK), "{name}");
        g.bench_function(*name, |b| {
            b.iter(|| ready(&rt, router.clone().oneshot(request("/"))).is_ok())
        });
    }
    g.finish();
    drop(entra);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = validate, obo_cache_lookup, cache_key, layer
}
criterion_main!(benches);
