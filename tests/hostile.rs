//! Hostile input: whatever arrives in the Authorization header or inside a JWT,
//! the layer answers 400/401/403 as documented — never a 500, never a panic.

mod common;

use std::sync::OnceLock;

use axum::Router;
use axum_obo::OboLayer;
use axum_obo_testing::{encode_unsigned, EntraStandIn};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

struct Fixture {
    rt: tokio::runtime::Runtime,
    entra: EntraStandIn,
    app: Router,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = scripted::runtime();
        let (entra, app) = rt.block_on(async {
            let entra = EntraStandIn::start().await;
            let cfg = config(&entra)
                .require_user_scopes(["access_as_user"])
                .build()
                .unwrap();
            let app = app(OboLayer::new(cfg));
            // Load the keys once so that every case exercises validation, not discovery.
            assert_eq!(
                bearer(&app, "/whoami", &entra.token().sign()).await.status,
                200
            );
            (entra, app)
        });
        Fixture { rt, entra, app }
    })
}

fn status_of(auth: &[u8]) -> u16 {
    let f = fixture();
    f.rt.block_on(call(&f.app, "/whoami", Some(auth)))
        .status
        .as_u16()
}

fn status_of_token(token: &str) -> (u16, String) {
    let f = fixture();
    let r = f.rt.block_on(bearer(&f.app, "/whoami", token));
    (r.status.as_u16(), r.body)
}

/// Any JSON value, including deep nesting, huge numbers and odd strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Claim names a validator looks at, plus noise.
fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("aud"),
        Just("iss"),
        Just("tid"),
        Just("oid"),
        Just("sub"),
        Just("scp"),
        Just("roles"),
        Just("exp"),
        Just("nbf"),
        Just("iat"),
        Just("ver"),
        Just("azp"),
        Just("appid"),
        Just("idtyp"),
        Just("nonce"),
        Just("name"),
        Just("preferred_username"),
    ]
    .prop_map(str::to_owned)
}

fn allowed(status: u16) -> bool {
    matches!(status, 200 | 400 | 401 | 403)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_header_value_is_refused_cleanly(bytes in prop::collection::vec(
        prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..300)) {
        let status = status_of(&bytes);
        prop_assert!(matches!(status, 400 | 401), "status {status}");
    }

    #[test]
    fn bearer_with_any_token_text_is_refused_cleanly(token in "[A-Za-z0-9._~+/=-]{1,400}") {
        let status = status_of(format!("Bearer {token}").as_bytes());
        prop_assert!(matches!(status, 400 | 401), "status {status}");
    }

    #[test]
    fn any_jose_header_and_payload_is_refused(header in any_json(), payload in any_json(),
                                               sig in prop::collection::vec(any::<u8>(), 0..300)) {
        let token = encode_unsigned(&header, &payload, &sig);
        let (status, body) = status_of_token(&token);
        prop_assert_eq!(status, 401, "{}", body);
    }

    #[test]
    fn garbage_segments_are_refused(a in "[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,400}",
                                    c in "[A-Za-z0-9_-]{0,400}", dots in 0usize..6) {
        let token = [a, b, c].join(&".".repeat(dots.max(1)));
        let (status, _) = status_of_token(&token);
        prop_assert!(matches!(status, 400 | 401), "status {status}");
    }
}

proptest! {
    // Each case signs with RSA: fewer cases.
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Correctly signed tokens whose claims have the wrong types, huge numbers,
    /// deep nesting: the layer decides 200/401/403, never 500.
    #[test]
    fn signed_tokens_with_hostile_claims(mutations in prop::collection::vec((claim_name(), any_json()), 1..4)) {
        let f = fixture();
        let mut builder = f.entra.token();
        for (name, value) in &mutations {
            builder = builder.claim(name, value.clone());
        }
        let (status, body) = status_of_token(&builder.sign());
        prop_assert!(allowed(status), "status {status}: {body}");
        if status == 200 {
            // Accepted tokens really satisfy the rules that were fuzzed.
            let p: Value = serde_json::from_str(&body).unwrap();
            prop_assert_eq!(&p["tid"], &json!(f.entra.home_tenant()));
            prop_assert!(p["scp"].as_array().unwrap().contains(&json!("access_as_user")));
        }
    }
}

#[test]
fn duplicate_claims_and_huge_numbers_are_handled() {
    let f = fixture();
    // A payload with a duplicated `tid` and an exp beyond i64.
    let kid = f.entra.current_kid();
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT", "kid": kid}).to_string());
    for payload in [
        r#"{"tid":"a","tid":"b","exp":1}"#,
        r#"{"exp":1e999}"#,
        r#"{"exp":123456789012345678901234567890}"#,
        &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
    ] {
        let token = format!("{header}.{}.c2ln", URL_SAFE_NO_PAD.encode(payload));
        let (status, _) = status_of_token(&token);
        assert_eq!(status, 401, "{payload:.40}");
    }
}

// ---------------------------------------------------------------------------
// Upstream answers: whatever the token endpoint or Graph send back, the API
// answers as documented (200/401/403/500 only for misconfiguration/502/503/504).

use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum_obo::clock::ManualClock;
use axum_obo::downstream::{DownstreamClient, RetryPolicy};
use axum_obo::{GraphUserRead, OboConfig, OboToken};
use axum_obo_testing::scripted::{self, BodyMode, Scripted, Upstreams};

/// The scripted upstreams are shared by tests that run in parallel: each case
/// holds this while it scripts an answer and makes its call.
fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

struct UpstreamFixture {
    rt: tokio::runtime::Runtime,
    entra: EntraStandIn,
    token_endpoint: Scripted,
    /// The configuration of the apps in front of `token_endpoint`.
    cfg: OboConfig,
    graph: Scripted,
    graph_url: String,
}

impl UpstreamFixture {
    /// A new app (a new layer, so nothing cached or backed off from earlier
    /// cases: throttling answers close the tenant for a while) in front of the
    /// scripted token endpoint.
    fn app(&self) -> Router {
        let _rt = self.rt.enter();
        obo_expiry_app(OboLayer::new(self.cfg.clone()))
    }
}

/// `/obo`: the downstream token's length; `/expires`: its `expires_at`.
fn obo_expiry_app(layer: OboLayer) -> Router {
    axum::Router::new()
        .route(
            "/obo",
            axum::routing::get(|t: OboToken<GraphUserRead>| async move {
                t.access_token().expose().len().to_string()
            }),
        )
        .route(
            "/expires",
            axum::routing::get(
                |t: OboToken<GraphUserRead>| async move { t.expires_at().to_string() },
            ),
        )
        .layer(layer)
}

fn upstream() -> &'static UpstreamFixture {
    static F: OnceLock<UpstreamFixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = scripted::runtime();
        let f = rt.block_on(async {
            let up = Upstreams::start().await;
            let cfg = config(&up.entra)
                .authority_host(&up.authority)
                .client_secret(up.entra.client_secret())
                .obo_retries(0, std::time::Duration::from_secs(1))
                .http_timeout(std::time::Duration::from_secs(2))
                .build()
                .unwrap();
            (up.entra, up.token_endpoint, cfg, up.graph, up.graph_url)
        });
        UpstreamFixture {
            rt,
            entra: f.0,
            token_endpoint: f.1,
            cfg: f.2,
            graph: f.3,
            graph_url: f.4,
        }
    })
}

/// Bodies a token endpoint might send: valid and broken JSON of every shape.
fn token_body() -> impl Strategy<Value = Vec<u8>> {
    let error = prop_oneof![
        Just("interaction_required"),
        Just("invalid_grant"),
        Just("consent_required"),
        Just("invalid_client"),
        Just("unauthorized_client"),
        Just("invalid_scope"),
        Just("temporarily_unavailable"),
        Just("server_error"),
        Just(""),
        Just("x"),
    ];
    prop_oneof![
        any_json().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..200),
        (error, any_json(), any_json(), any_json()).prop_map(|(e, codes, claims, suberror)| {
            json!({"error": e, "error_codes": codes, "claims": claims, "suberror": suberror,
                   "error_description": "AADSTS50000: x"})
            .to_string()
            .into_bytes()
        }),
        (any_json(), any_json(), any_json()).prop_map(|(tok, exp, ty)| {
            json!({"access_token": tok, "expires_in": exp, "token_type": ty})
                .to_string()
                .into_bytes()
        }),
        (".{0,60}", -5i64..100_000).prop_map(|(tok, exp)| {
            json!({"access_token": tok, "expires_in": exp, "token_type": "Bearer"})
                .to_string()
                .into_bytes()
        }),
    ]
}

fn upstream_status() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(200u16),
        Just(400),
        Just(401),
        Just(403),
        Just(404),
        Just(429),
        Just(500),
        Just(502),
        Just(503),
        200u16..600
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_token_endpoint_answer_is_relayed_as_documented(
        status in upstream_status(), body in token_body(),
        content_type in prop_oneof![Just("application/json"), Just("text/html"), Just("")],
    ) {
        let f = upstream();
        let _one_at_a_time = exclusive();
        *f.token_endpoint.answer.lock().unwrap() = (status, content_type.to_owned(), body.clone(), None);
        let token = f.entra.token().sign(); // a new user: a cache miss, so a new exchange
        let r = f.rt.block_on(bearer(&f.app(), "/obo", &token));
        let code = r.status.as_u16();
        prop_assert!(matches!(code, 200 | 401 | 403 | 500 | 502 | 503 | 504), "{code}: {}", r.body);
        if code == 500 {
            // Only our own misconfiguration, as the token endpoint said.
            let e: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let err = e["error"].as_str().unwrap_or("");
            prop_assert!(matches!(err, "invalid_client" | "unauthorized_client" | "invalid_scope" | "invalid_request" | "unsupported_grant_type"),
                "500 for {status} {}", String::from_utf8_lossy(&body));
            let json = r.json();
            prop_assert_eq!(json["error"].as_str(), Some("server_error"));
        }
        if code == 200 {
            prop_assert!((200..300).contains(&status));
        }
        prop_assert!(!r.body.contains(&token));
    }

    #[test]
    fn any_graph_answer_is_a_documented_error_or_data(
        status in upstream_status(), body in prop_oneof![
            any_json().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..200),
            (".{0,20}", ".{0,40}").prop_map(|(c, m)| json!({"error": {"code": c, "message": m}}).to_string().into_bytes()),
        ],
        www in prop_oneof![
            Just(None),
            ".{0,80}".prop_map(Some),
            any_json().prop_map(|c| Some(format!("Bearer realm=\"\", error=\"insufficient_claims\", claims=\"{}\"",
                base64::engine::general_purpose::STANDARD.encode(c.to_string())))),
        ],
    ) {
        let f = upstream();
        let _one_at_a_time = exclusive();
        *f.graph.answer.lock().unwrap() = (status, "application/json".to_owned(), body, www);
        let result = f.rt.block_on(async {
            let client = DownstreamClient::new(reqwest::Client::new(), &f.graph_url, axum_obo::secret::BearerToken::new("t"))
                .unwrap()
                .with_retry(RetryPolicy::none());
            client.get_json("/v1.0/me").await
        });
        match result {
            Ok(_) => prop_assert!((200..300).contains(&status)),
            Err(e) => {
                let code = e.status().as_u16();
                prop_assert!(matches!(code, 401 | 403 | 404 | 500 | 502 | 503 | 504), "{code} for {status}: {e}");
                prop_assert!(!e.to_string().contains("Bearer t"));
            }
        }
    }
}

#[test]
fn scripted_token_endpoint_really_answers_the_exchange() {
    let f = upstream();
    let _one_at_a_time = exclusive();
    let cases: [(u16, &[u8], u16); 4] = [
        (
            200,
            br#"{"token_type":"Bearer","expires_in":3600,"access_token":"opaque-token-value"}"#,
            200,
        ),
        (200, b"<html>oops</html>", 502),
        (
            400,
            br#"{"error":"invalid_client","error_codes":[7000215]}"#,
            500,
        ),
        (
            400,
            br#"{"error":"interaction_required","claims":"{\"access_token\":{}}"}"#,
            401,
        ),
    ];
    for (status, body, expected) in cases {
        *f.token_endpoint.answer.lock().unwrap() =
            (status, "application/json".into(), body.to_vec(), None);
        let r =
            f.rt.block_on(bearer(&f.app(), "/obo", &f.entra.token().sign()));
        assert_eq!(r.status, expected, "{}", String::from_utf8_lossy(body));
    }
}

/// Inputs under `fuzz/regressions/<target>/` (crashes found by `fuzz/run.sh`, and
/// seeds), replayed with the same rules as the fuzz targets.
#[test]
fn fuzz_regressions_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let read = |target: &str| -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(target))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    };
    let mut replayed = 0;
    let _one_at_a_time = exclusive();
    for (name, data) in read("authorization_header") {
        if let Some(v) = scripted::authorization_header(&data) {
            let status = status_of(v.as_bytes());
            assert!(matches!(status, 400 | 401), "{name}: {status}");
        }
        replayed += 1;
    }
    for (name, data) in read("jwt") {
        let f = fixture();
        let token = scripted::jwt(&data, &f.entra.current_kid());
        assert_eq!(status_of_token(&token).0, 401, "{name}");
        replayed += 1;
    }
    for (name, data) in read("token_response") {
        let f = upstream();
        let (status, body) = scripted::token_response(&data);
        *f.token_endpoint.answer.lock().unwrap() =
            (status, "application/json".into(), body.to_vec(), None);
        let r =
            f.rt.block_on(bearer(&f.app(), "/obo", &f.entra.token().sign()));
        assert!(
            matches!(r.status.as_u16(), 200 | 401 | 403 | 500 | 502 | 503 | 504),
            "{name}: {}",
            r.status
        );
        replayed += 1;
    }
    for (name, data) in read("graph_response") {
        let f = upstream();
        let (status, www, body) = scripted::graph_response(&data);
        *f.graph.answer.lock().unwrap() = (status, "application/json".into(), body.to_vec(), www);
        let result = f.rt.block_on(async {
            DownstreamClient::new(
                reqwest::Client::new(),
                &f.graph_url,
                axum_obo::secret::BearerToken::new("t"),
            )
            .unwrap()
            .with_retry(RetryPolicy::none())
            .get_json("/v1.0/me")
            .await
        });
        if let Err(e) = result {
            assert!(
                matches!(e.status().as_u16(), 401 | 403 | 404 | 500 | 502 | 503 | 504),
                "{name}: {e}"
            );
        }
        replayed += 1;
    }
    assert!(
        replayed >= 17,
        "the regression inputs were found ({replayed})"
    );
}

// ---------------------------------------------------------------------------
// Token-endpoint answers that used to overflow, buffer without bound, or be
// re-sent by every user of a throttled tenant. Each test has its own stand-in,
// scripted token endpoint and clock.

/// The longest downstream-token lifetime the crate believes (28 h).
const MAX_LIFETIME: i64 = 28 * 3600;

/// A stand-in, a scripted token endpoint in front of it, and an app on `clock`
/// exchanging there with `retries` retries and `timeout` per request.
async fn scripted_exchange(
    clock: &ManualClock,
    retries: usize,
    timeout: Duration,
) -> (EntraStandIn, Scripted, Router) {
    let Upstreams {
        entra,
        authority: proxy,
        token_endpoint,
        ..
    } = Upstreams::start().await;
    let cfg = config(&entra)
        .authority_host(&proxy)
        .client_secret(entra.client_secret())
        .obo_retries(retries, Duration::from_secs(3))
        .http_timeout(timeout)
        .clock(clock.clone())
        .build()
        .unwrap();
    (entra, token_endpoint, obo_expiry_app(OboLayer::new(cfg)))
}

fn script(s: &Scripted, status: u16, body: impl Into<Vec<u8>>, mode: BodyMode) {
    *s.answer.lock().unwrap() = (status, "application/json".into(), body.into(), None);
    *s.body_mode.lock().unwrap() = mode;
}

fn success_with_expires_in(expires_in: &str) -> String {
    format!(r#"{{"token_type":"Bearer","expires_in":{expires_in},"access_token":"opaque-token"}}"#)
}

#[tokio::test]
async fn huge_expires_in_is_clamped_to_the_longest_entra_lifetime() {
    use axum_obo::clock::Clock as _;
    let clock = ManualClock::now_system();
    let (entra, te, app) = scripted_exchange(&clock, 0, Duration::from_secs(2)).await;
    // Inbound tokens outliving the clamp, so that the clock can pass it.
    let inbound = || {
        entra
            .token()
            .lifetime(Duration::from_secs(30 * 3600))
            .sign()
    };
    for expires_in in [
        "9223372036854775807",
        "18446744073709551615",
        "123456789012345678901234567890",
        "1e30",
        "1.7976931348623157e308",
        "\"9223372036854775807\"",
        "\"1e30\"",
        "100801",
    ] {
        script(
            &te,
            200,
            success_with_expires_in(expires_in),
            BodyMode::Whole,
        );
        let token = inbound();
        let before = te.answered.load(Ordering::SeqCst);
        let r = bearer(&app, "/expires", &token).await;
        assert_eq!(r.status, 200, "{expires_in}: {}", r.body);
        let expires_at: i64 = r.body.parse().unwrap();
        assert_eq!(expires_at - clock.now(), MAX_LIFETIME, "{expires_in}");
        assert_eq!(bearer(&app, "/expires", &token).await.status, 200);
        assert_eq!(
            te.answered.load(Ordering::SeqCst) - before,
            1,
            "{expires_in}: cached"
        );
    }
    // The entry is served until the clamp minus the refresh margin (300 s), no longer.
    script(
        &te,
        200,
        success_with_expires_in("9223372036854775807"),
        BodyMode::Whole,
    );
    let token = inbound();
    assert_eq!(bearer(&app, "/obo", &token).await.status, 200);
    let after_first = te.answered.load(Ordering::SeqCst);
    clock.advance(Duration::from_secs((MAX_LIFETIME - 300 - 1) as u64));
    assert_eq!(bearer(&app, "/obo", &token).await.status, 200);
    assert_eq!(
        te.answered.load(Ordering::SeqCst),
        after_first,
        "still fresh"
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(bearer(&app, "/obo", &token).await.status, 200);
    assert_eq!(
        te.answered.load(Ordering::SeqCst),
        after_first + 1,
        "exchanged again once the clamped lifetime is used up"
    );
}

#[tokio::test]
async fn non_positive_or_non_numeric_expires_in_is_a_bad_gateway() {
    let clock = ManualClock::now_system();
    let (entra, te, app) = scripted_exchange(&clock, 0, Duration::from_secs(2)).await;
    for expires_in in [
        "0",
        "-1",
        "-9223372036854775808",
        "-1e30",
        "0.5",
        "null",
        "true",
        "[]",
        "{}",
        "\"\"",
        "\"soon\"",
        "\"NaN\"",
        "\"inf\"",
        "\"-5\"",
    ] {
        script(
            &te,
            200,
            success_with_expires_in(expires_in),
            BodyMode::Whole,
        );
        let r = bearer(&app, "/obo", &entra.token().sign()).await;
        assert_eq!(r.status, 502, "{expires_in}: {}", r.body);
    }
}

#[tokio::test]
async fn a_retry_after_beyond_any_duration_is_bounded() {
    let clock = ManualClock::now_system();
    let (entra, te, app) = scripted_exchange(&clock, 2, Duration::from_secs(2)).await;
    script(&te, 429, "{}", BodyMode::Whole);
    *te.retry_after.lock().unwrap() = Some(u64::MAX.to_string());
    let started = Instant::now();
    let r = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let retry_after: u64 = r.retry_after.unwrap().parse().unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    assert_eq!(te.answered.load(Ordering::SeqCst), 1, "beyond the budget");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_token_response_over_the_cap_is_a_bad_gateway_without_reading_it_all() {
    let clock = ManualClock::now_system();
    let (entra, te, app) = scripted_exchange(&clock, 0, Duration::from_secs(5)).await;
    let padded = format!(
        r#"{{"token_type":"Bearer","expires_in":3600,"access_token":"opaque","pad":"{}"}}"#,
        "a".repeat(300 * 1024)
    );
    for (mode, body) in [
        (BodyMode::Whole, padded.clone()),
        (BodyMode::Chunked, padded),
        (BodyMode::Endless, success_with_expires_in("3600")),
    ] {
        script(&te, 200, body, mode);
        let started = Instant::now();
        let r = bearer(&app, "/obo", &entra.token().sign()).await;
        assert_eq!(r.status, 502, "{}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    // An answer under the cap, chunked, is read.
    script(&te, 200, success_with_expires_in("3600"), BodyMode::Chunked);
    assert_eq!(
        bearer(&app, "/obo", &entra.token().sign()).await.status,
        200
    );
}

#[tokio::test]
async fn loop_detected_closes_the_user_and_429s_of_two_users_close_the_tenant() {
    let loops = [
        (
            400,
            r#"{"error":"invalid_request","error_description":"AADSTS50196: The server terminated an operation because it encountered a client request loop.","error_codes":[50196]}"#,
        ),
        (
            429,
            r#"{"error":"temporarily_unavailable","error_codes":[50196]}"#,
        ),
    ];
    let plain_429s = [
        (429, "<html>Too Many Requests</html>"),
        (
            429,
            r#"{"error":"temporarily_unavailable","error_codes":[90055]}"#,
        ),
    ];
    for (status, body) in loops.into_iter().chain(plain_429s) {
        let clock = ManualClock::now_system();
        let (entra, te, app) = scripted_exchange(&clock, 0, Duration::from_secs(2)).await;
        script(&te, status, body, BodyMode::Whole);
        let user = entra.token().sign();
        let r = bearer(&app, "/obo", &user).await;
        assert_eq!(r.status, 503, "{status} {body}: {}", r.body);
        // Entra would now answer: that user is backing off, the others are not.
        script(&te, 200, success_with_expires_in("3600"), BodyMode::Whole);
        let r = bearer(&app, "/obo", &user).await;
        assert_eq!(
            (r.status.as_u16(), r.retry_after.as_deref()),
            (503, Some("1")),
            "{status} {body}"
        );
        assert_eq!(te.answered.load(Ordering::SeqCst), 1, "{status} {body}");
        let r = bearer(&app, "/obo", &entra.token().sign()).await;
        assert_eq!(r.status, 200, "{status} {body}: another user");
        assert_eq!(te.answered.load(Ordering::SeqCst), 2);
        clock.advance(Duration::from_secs(1));
        assert_eq!(bearer(&app, "/obo", &user).await.status, 200);
        assert_eq!(te.answered.load(Ordering::SeqCst), 3);
    }
    // 429s (not loops) for two users: the tenant closes for every user.
    for (status, body) in plain_429s {
        let clock = ManualClock::now_system();
        let (entra, te, app) = scripted_exchange(&clock, 0, Duration::from_secs(2)).await;
        script(&te, status, body, BodyMode::Whole);
        for _ in 0..2 {
            let r = bearer(&app, "/obo", &entra.token().sign()).await;
            assert_eq!(r.status, 503, "{body}: {}", r.body);
        }
        script(&te, 200, success_with_expires_in("3600"), BodyMode::Whole);
        let r = bearer(&app, "/obo", &entra.token().sign()).await;
        assert_eq!(
            (r.status.as_u16(), r.retry_after.as_deref()),
            (503, Some("1")),
            "{body}"
        );
        assert_eq!(te.answered.load(Ordering::SeqCst), 2, "{body}");
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            bearer(&app, "/obo", &entra.token().sign()).await.status,
            200
        );
        assert_eq!(te.answered.load(Ordering::SeqCst), 3);
    }
}
