//! Instructions per request, for callgrind: `bash benches/callgrind.sh`.
//!
//! ```text
//! hotpath VARIANT ITERATIONS
//! ```
//!
//! Builds the in-process router of one load-benchmark variant (the same routers as
//! `load_server`, no sockets), primes it, warms it up, then sends ITERATIONS
//! requests through it with `tower::ServiceExt::oneshot` inside `measured`, the one
//! function callgrind collects (`--toggle-collect=*measured*`). Instruction counts
//! do not depend on what else runs on the machine, so they compare builds and
//! variants where wall-clock time cannot.
//!
//! Variants: `bare`, `obo-uncached`, `obo-cached`, `obo-token` (as in
//! `load_server`), `obo-cached-many` (like `obo-cached`, 1,000 users' tokens in
//! rotation) and `rsa-verify` (one RSA-2048 PKCS#1 v1.5 SHA-256 verification of
//! a token's signature with a pre-parsed aws-lc-rs key: the unit the uncached
//! path is measured in), `jwt-floor` (`jsonwebtoken::decode`, key parsed per
//! call, claims into a map) and `jwt-preparsed` (`jsonwebtoken::decode` with a
//! `CryptoProvider` over the pre-parsed key, claims into the layer's claim set):
//! one decode each, no router, for the jsonwebtoken question.
//!
//! `HOTPATH_RECORDER=prometheus` installs `metrics-exporter-prometheus`'s recorder
//! first (what the crate's feature `metrics` costs with a recorder); without it
//! no recorder is installed (the facade's no-op one answers).
//!
//! Run by `cargo bench` without arguments it only prints this usage.

mod common;

use std::hint::black_box;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use axum_obo::{GraphUserRead, OboLayer, OboToken, Principal};
use axum_obo_testing::EntraStandIn;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{ready, realistic_token};
use tower::ServiceExt as _;

const USAGE: &str = "usage: hotpath VARIANT ITERATIONS
variants: bare, obo-uncached, obo-cached, obo-token, obo-cached-many, rsa-verify, jwt-floor, jwt-preparsed";

/// Users in rotation for `obo-cached-many` (minting is slow under valgrind).
const MANY: usize = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (variant, iterations) = match args.as_slice() {
        [variant, n] => (
            variant.clone(),
            n.parse::<usize>().unwrap_or_else(|_| fail(USAGE)),
        ),
        // `cargo bench` / `cargo test --benches`: nothing to measure here.
        [] | [_] => {
            println!("hotpath: run by benches/callgrind.sh; {USAGE}");
            return;
        }
        _ => fail(USAGE),
    };
    if std::env::var("HOTPATH_RECORDER").as_deref() == Ok("prometheus") {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|e| fail(&e.to_string()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    let entra = rt.block_on(EntraStandIn::start());
    let users = if variant == "obo-cached-many" {
        MANY
    } else {
        1
    };
    let tokens: Vec<String> = (0..users)
        .map(|i| realistic_token(&entra, &format!("5f3a7c1e-9b2d-4e8f-a6c0-{i:012}")))
        .collect();
    let headers: Vec<String> = tokens.iter().map(|t| format!("Bearer {t}")).collect();

    if variant == "rsa-verify" {
        let key = ParsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            entra.public_key_der(&entra.current_kid()),
        )
        .expect("an RSA public key");
        let (message, signature) = tokens[0].rsplit_once('.').expect("a JWS");
        let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
        for _ in 0..10 {
            assert!(key.verify_sig(message.as_bytes(), &signature).is_ok());
        }
        measured_verify(&key, message.as_bytes(), &signature, iterations);
        return;
    }

    if variant == "jwt-floor" || variant == "jwt-preparsed" {
        let der = entra.public_key_der(&entra.current_kid());
        let parsed =
            ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der.as_slice()).expect("an RSA key");
        let decode: Box<dyn Fn(&str) -> bool> = if variant == "jwt-floor" {
            let raw = rt.block_on(common::RawDecoder::new(&entra));
            Box::new(move |t| raw.decode(t).is_ok())
        } else {
            let jwt = common::PreParsedJwt::new(&entra, &der, parsed);
            Box::new(move |t| jwt.decode(t).is_ok())
        };
        for _ in 0..10 {
            assert!(decode(&tokens[0]));
        }
        measured_decode(&*decode, &tokens[0], iterations);
        return;
    }

    let router = match variant.as_str() {
        "bare" => Router::new().route("/", get(|| async { "ok" })),
        "obo-uncached" => principal_router(&entra, Some(0)),
        "obo-cached" | "obo-cached-many" => principal_router(&entra, None),
        "obo-token" => Router::new()
            .route(
                "/",
                get(|t: OboToken<GraphUserRead>| async move {
                    t.access_token().expose().len().to_string()
                }),
            )
            .layer(layer(&entra, None)),
        _ => fail(USAGE),
    };
    // Prime (keys, the exchange, every token validated once), then warm up.
    for h in &headers {
        let status = rt
            .block_on(router.clone().oneshot(request(h)))
            .map(|r| r.status());
        assert_eq!(status.ok(), Some(http::StatusCode::OK), "{variant}");
    }
    requests(&rt, &router, &headers, headers.len().max(100));
    measured(&rt, &router, &headers, iterations);
    drop(entra);
}

fn fail(message: &str) -> ! {
    eprintln!("hotpath: {message}");
    std::process::exit(2)
}

fn layer(entra: &EntraStandIn, capacity: Option<u64>) -> OboLayer {
    let mut config = common::config(entra).client_secret(entra.client_secret());
    if let Some(capacity) = capacity {
        config = config.validated_cache_capacity(capacity);
    }
    OboLayer::new(config.build().unwrap_or_else(|e| fail(&e.to_string())))
}

fn principal_router(entra: &EntraStandIn, capacity: Option<u64>) -> Router {
    Router::new()
        .route(
            "/",
            get(|caller: Principal| async move {
                if caller.oid().is_empty() {
                    "?"
                } else {
                    "ok"
                }
            }),
        )
        .layer(layer(entra, capacity))
}

fn request(authorization: &str) -> http::Request<Body> {
    http::Request::get("/")
        .header(http::header::AUTHORIZATION, authorization)
        .body(Body::empty())
        .expect("a request")
}

/// The measured loop: callgrind collects only inside this function.
#[inline(never)]
fn measured(rt: &tokio::runtime::Runtime, router: &Router, headers: &[String], n: usize) {
    requests(rt, router, headers, n);
}

fn requests(rt: &tokio::runtime::Runtime, router: &Router, headers: &[String], n: usize) {
    for i in 0..n {
        let response = ready(
            rt,
            router.clone().oneshot(request(&headers[i % headers.len()])),
        );
        assert!(black_box(response).is_ok_and(|r| r.status() == http::StatusCode::OK));
    }
}

/// The measured loop of `jwt-floor` and `jwt-preparsed`.
#[inline(never)]
fn measured_decode(decode: &dyn Fn(&str) -> bool, token: &str, n: usize) {
    for _ in 0..n {
        assert!(decode(black_box(token)));
    }
}

/// The measured loop of `rsa-verify`.
#[inline(never)]
fn measured_verify(key: &ParsedPublicKey, message: &[u8], signature: &[u8], n: usize) {
    for _ in 0..n {
        assert!(key
            .verify_sig(black_box(message), black_box(signature))
            .is_ok());
    }
}
