//! The server side of the load benchmark (`benches/load.sh`): serves one variant on
//! loopback next to an embedded Entra stand-in, and writes a token it accepts.
//!
//! ```text
//! load_server serve VARIANT PORT INFO_FILE
//! load_server idp INFO_FILE
//! load_server rsa-verify
//! ```
//!
//! Variants (each answers `GET /` with a short body):
//! - `bare`: a bare axum handler;
//! - `jwt-floor`: a middleware calling `jsonwebtoken::decode` with the same key
//!   and checks (RS256, iss, aud, exp, nbf) on every request;
//! - `obo-uncached`: `OboLayer` with the validated-token cache disabled;
//! - `obo-cached`: `OboLayer` with its validated-token cache (the default);
//! - `obo-token`: `OboLayer` + `OboToken<GraphUserRead>` from the On-Behalf-Of
//!   cache (the handler returns the token's length; no downstream call);
//! - `obo-cached-10k`: `obo-cached` with 10,000 distinct users' tokens, which the
//!   load generator sends in rotation (`benches/rotate.lua`): caches at a
//!   realistic cardinality, no longer in the CPU caches.
//!
//! `idp` runs only the stand-in, for the peer crate in `bench-peer/`.
//! `rsa-verify` prints the CPU time of one RSA-2048 PKCS#1 verification of a
//! token's signature with a pre-parsed aws-lc-rs key (the median of 9 rounds of
//! 2,000, thread CPU time from `/proc/thread-self/schedstat`), in µs: the unit the
//! uncached variant's added cost is measured in, measured in the same run.
//!
//! Before it writes INFO_FILE, the server sends one request through its own
//! router (which warms the key set and, for `obo-token`, performs the one
//! exchange; for `obo-cached-10k`, one request per user), so the load generator
//! measures the steady state. INFO_FILE holds `key=value` lines: `token`,
//! `issuer`, `audience`, `jwks_url`, and for `obo-cached-10k` `tokens` (a file
//! next to INFO_FILE with one token per line).
//!
//! Run by `cargo bench` without arguments it only prints this usage.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_obo::{GraphUserRead, OboLayer, OboToken, Principal};
use axum_obo_testing::EntraStandIn;
use common::{realistic_token, RawDecoder};
use http::StatusCode;
use tower::ServiceExt as _;

const USAGE: &str = "usage: load_server serve VARIANT PORT INFO_FILE | load_server idp INFO_FILE | load_server rsa-verify
variants: bare, jwt-floor, obo-uncached, obo-cached, obo-token, obo-cached-10k (see benches/load.sh)";

/// Users of the `obo-cached-10k` variant.
const MANY_USERS: usize = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let job = match args.as_slice() {
        ["serve", variant, port, info] => {
            let port: u16 = port
                .parse()
                .unwrap_or_else(|_| fail("PORT must be a number"));
            Job::Serve {
                variant: Variant::parse(variant),
                port,
                info: (*info).to_owned(),
            }
        }
        ["idp", info] => Job::Idp {
            info: (*info).to_owned(),
        },
        ["rsa-verify"] => Job::RsaVerify,
        // `cargo bench` runs every bench target with `--bench`; `cargo test
        // --benches` runs them with no argument: nothing to measure here.
        [] | ["--bench", ..] => {
            println!("load_server: run by benches/load.sh; {USAGE}");
            return;
        }
        _ => fail(USAGE),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime")
        .block_on(job.run());
}

fn fail(message: &str) -> ! {
    eprintln!("load_server: {message}");
    std::process::exit(2)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Bare,
    JwtFloor,
    OboUncached,
    OboCached,
    OboToken,
    OboCached10k,
}

impl Variant {
    fn parse(name: &str) -> Self {
        match name {
            "bare" => Self::Bare,
            "jwt-floor" => Self::JwtFloor,
            "obo-uncached" => Self::OboUncached,
            "obo-cached" => Self::OboCached,
            "obo-token" => Self::OboToken,
            "obo-cached-10k" => Self::OboCached10k,
            other => fail(&format!("unknown variant {other:?}\n{USAGE}")),
        }
    }
}

enum Job {
    Serve {
        variant: Variant,
        port: u16,
        info: String,
    },
    Idp {
        info: String,
    },
    RsaVerify,
}

impl Job {
    async fn run(self) {
        let entra = EntraStandIn::start().await;
        common::assert_rsa_2048(&entra);
        let token = realistic_token(&entra, "5f3a7c1e-9b2d-4e8f-a6c0-1d2e3f4a5b6c");
        let (variant, port, info) = match self {
            Job::RsaVerify => {
                println!("{:.3}", rsa_verify_us(&entra, &token));
                return;
            }
            Job::Idp { info } => {
                write_info(&entra, &token, None, &info);
                // Serve the stand-in (keys for the peer) until killed.
                std::future::pending::<()>().await;
                return;
            }
            Job::Serve {
                variant,
                port,
                info,
            } => (variant, port, info),
        };
        let app = router(variant, &entra).await;
        prime(&app, &token, variant).await;
        let mut tokens_file = None;
        if variant == Variant::OboCached10k {
            let started = std::time::Instant::now();
            // Minted on every core (RSA signing is what takes the time).
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            // The primed token is user 0: exactly MANY_USERS tokens, the
            // validated-token cache's default capacity.
            let minted: Vec<String> = std::thread::scope(|scope| {
                let entra = &entra;
                let workers: Vec<_> = (0..threads)
                    .map(|t| {
                        scope.spawn(move || {
                            (1 + t..MANY_USERS)
                                .step_by(threads)
                                .map(|i| {
                                    let oid = format!("5f3a7c1e-9b2d-4e8f-a6c0-{i:012}");
                                    (i, realistic_token(entra, &oid))
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                let mut all: Vec<(usize, String)> = workers
                    .into_iter()
                    .flat_map(|w| w.join().expect("minting tokens"))
                    .collect();
                all.sort_unstable_by_key(|(i, _)| *i);
                all.into_iter().map(|(_, t)| t).collect()
            });
            let tokens: Vec<String> = std::iter::once(token.clone()).chain(minted).collect();
            for t in &tokens[1..] {
                prime(&app, t, variant).await;
            }
            let path = format!("{info}.tokens");
            std::fs::write(&path, tokens.join("\n") + "\n")
                .unwrap_or_else(|e| fail(&format!("writing {path}: {e}")));
            eprintln!(
                "load_server: {MANY_USERS} users' tokens minted and validated in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            tokens_file = Some(path);
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| fail(&format!("binding 127.0.0.1:{port}: {e}")));
        write_info(&entra, &token, tokens_file.as_deref(), &info);
        axum::serve(listener, app)
            .await
            .unwrap_or_else(|e| fail(&format!("serving: {e}")));
    }
}

async fn router(variant: Variant, entra: &EntraStandIn) -> Router {
    let layer = |capacity: Option<u64>| {
        let mut config = common::config(entra).client_secret(entra.client_secret());
        if let Some(capacity) = capacity {
            config = config.validated_cache_capacity(capacity);
        }
        OboLayer::new(config.build().unwrap_or_else(|e| fail(&e.to_string())))
    };
    match variant {
        Variant::Bare => Router::new().route("/", get(|| async { "ok" })),
        Variant::JwtFloor => {
            let decoder = Arc::new(RawDecoder::new(entra).await);
            Router::new()
                .route("/", get(|| async { "ok" }))
                .layer(middleware::from_fn_with_state(decoder, raw_decode))
        }
        Variant::OboUncached | Variant::OboCached | Variant::OboCached10k => {
            let capacity = (variant == Variant::OboUncached).then_some(0);
            Router::new()
                .route("/", get(principal_handler))
                .layer(layer(capacity))
        }
        Variant::OboToken => Router::new()
            .route(
                "/",
                get(|t: OboToken<GraphUserRead>| async move {
                    t.access_token().expose().len().to_string()
                }),
            )
            .layer(layer(None)),
    }
}

/// What a handler behind `OboLayer` typically does first: take the caller.
async fn principal_handler(caller: Principal) -> &'static str {
    if caller.oid().is_empty() {
        "?"
    } else {
        "ok"
    }
}

/// The floor: verify and decode with `jsonwebtoken` directly.
async fn raw_decode(State(decoder): State<Arc<RawDecoder>>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.map(|t| decoder.decode(t)) {
        Some(Ok(_claims)) => next.run(req).await,
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// One request through the router before the load: keys fetched, and for
/// `obo-token` the one exchange done, so that every measured request is served
/// from the caches.
async fn prime(app: &Router, token: &str, variant: Variant) {
    let request = http::Request::get("/")
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("a request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap_or_default();
    if status != StatusCode::OK {
        fail(&format!(
            "{variant:?}: the priming request got {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
}

/// CPU time of one pre-parsed RSA verification of `token`'s signature, in µs.
fn rsa_verify_us(entra: &EntraStandIn, token: &str) -> f64 {
    use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
    use base64::Engine as _;
    let key = ParsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        entra.public_key_der(&entra.current_kid()),
    )
    .unwrap_or_else(|e| fail(&format!("parsing the key: {e}")));
    let (message, signature) = token.rsplit_once('.').expect("a JWS");
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .expect("base64url");
    // Nanoseconds this thread has run on a CPU.
    let cpu_ns = || -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| fail("reading /proc/thread-self/schedstat"))
    };
    const N: u32 = 2_000;
    let mut rounds: Vec<f64> = (0..9)
        .map(|_| {
            let start = cpu_ns();
            for _ in 0..N {
                let ok = key.verify_sig(
                    std::hint::black_box(message.as_bytes()),
                    std::hint::black_box(&signature),
                );
                assert!(ok.is_ok(), "the signature verifies");
            }
            (cpu_ns() - start) as f64 / 1e3 / f64::from(N)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

fn write_info(entra: &EntraStandIn, token: &str, tokens: Option<&str>, path: &str) {
    let tid = entra.home_tenant();
    let mut info = format!(
        "token={token}\nissuer={}\naudience={}\njwks_url={}/{tid}/discovery/v2.0/keys\n",
        entra.issuer_v2(&tid),
        entra.api_client_id(),
        entra.authority_host(),
    );
    if let Some(tokens) = tokens {
        info.push_str(&format!("tokens={tokens}\n"));
    }
    // Written whole, then renamed: the script polls for the file.
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, info)
        .and_then(|()| std::fs::rename(&tmp, path))
        .unwrap_or_else(|e| fail(&format!("writing {path}: {e}")));
}
