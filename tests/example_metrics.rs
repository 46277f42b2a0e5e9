//! The example server's `GET /metrics`, read with a Prometheus text-format parser
//! (`prometheus-parse`): the crate's counters move with the requests sent.
//!
//! A test binary of its own: the Prometheus recorder is global to the process,
//! so here every count comes from the requests of this file, one test at a time
//! (the tests share a lock).

mod common;

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

use std::collections::HashMap;

use app::metrics::{self, Exposure};
use axum_obo::OboLayer;
use axum_obo_testing::TokenFault;
use common::*;
use prometheus_parse::{Scrape, Value};
use tower::ServiceExt as _;

/// The user whose exchange Entra refuses.
const OTHER_USER: &str = "0b9c5a3e-2d7f-4c1a-9e8b-5f6a7b8c9d0e";

/// One test at a time: they read the same global recorder.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The example as `main` builds it with `/metrics` on the API's port.
async fn example() -> (app::Embedded, axum::Router, OboLayer) {
    let handle = metrics::install().unwrap();
    let embedded = app::Embedded::start().await;
    let layer = OboLayer::new(app::policy(embedded.config()).build().unwrap());
    layer.warm_up().await.unwrap();
    let cors = app::cors(&[http::HeaderValue::from_static(app::DEV_ORIGIN)]);
    let router = app::router(layer.clone(), cors).merge(metrics::router(handle, layer.clone()));
    (embedded, router, layer)
}

/// A scrape: every sample by its name and labels (sorted `k=v` pairs).
struct Metrics {
    text: String,
    samples: HashMap<(String, Vec<(String, String)>), f64>,
    /// The `le` bounds of each histogram, by name.
    buckets: HashMap<String, Vec<f64>>,
}

impl Metrics {
    fn parse(text: String) -> Self {
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
        let mut samples = HashMap::new();
        let mut buckets: HashMap<String, Vec<f64>> = HashMap::new();
        for s in scrape.samples {
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            let value = match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(counts) => {
                    let bounds: Vec<f64> = counts.iter().map(|c| c.less_than).collect();
                    buckets.insert(s.metric.clone(), bounds);
                    // The +Inf bucket: every observation.
                    counts.last().map_or(0.0, |c| c.count)
                }
                Value::Summary(_) => panic!("{} is a summary, not a histogram", s.metric),
            };
            samples.insert((s.metric, labels), value);
        }
        Self {
            text,
            samples,
            buckets,
        }
    }

    /// The sample `name{labels}`, 0 when absent (a counter not yet incremented).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        self.samples
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0.0)
    }
}

/// `GET /metrics` without a token: 200 in the text format, parsed.
async fn scrape(app: &axum::Router) -> Metrics {
    let req = http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()[http::header::CONTENT_TYPE],
        metrics::CONTENT_TYPE_TEXT
    );
    let reply = read(resp).await;
    Metrics::parse(reply.body)
}

/// The change of each sample between two scrapes.
fn delta(before: &Metrics, after: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.get(name, labels) - before.get(name, labels)
}

#[tokio::test]
async fn counters_move_with_requests() {
    let _serial = SERIAL.lock().await;
    let (e, app, layer) = example().await;
    let before = scrape(&app).await;

    let user = e.user_token();
    assert_eq!(bearer(&app, "/whoami", &user).await.status, 200);
    // One exchange (an L1 miss), then the cached token (an L1 hit).
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    assert_eq!(e.entra.tokens_issued(), 1);
    // Refusals, each with its reason.
    assert_eq!(call(&app, "/whoami", None).await.status, 401);
    assert_eq!(bearer(&app, "/whoami", "not-a-jwt").await.status, 401);
    let expired = e.entra.token().scopes(&["access_as_user"]).expired().sign();
    assert_eq!(bearer(&app, "/whoami", &expired).await.status, 401);
    let elsewhere = e
        .entra
        .token()
        .scopes(&["access_as_user"])
        .audience("api://someone-else")
        .sign();
    assert_eq!(bearer(&app, "/whoami", &elsewhere).await.status, 401);
    // An exchange Entra refuses: consent missing.
    let other = e.entra.token().user(OTHER_USER);
    let other = other.scopes(&["access_as_user"]).sign();
    e.entra
        .inject_token_fault(TokenFault::ConsentRequired, Some(1));
    assert_ne!(bearer(&app, "/me", &other).await.status, 200);

    let after = scrape(&app).await;
    let d = |name: &str, labels: &[(&str, &str)]| delta(&before, &after, name, labels);
    let validations = "axum_obo_validations_total";
    // Every request with a valid token: /whoami, /me twice, the other user's /me.
    assert_eq!(
        d(validations, &[("outcome", "accepted"), ("reason", "ok")]),
        4.0,
        "{}",
        after.text
    );
    // The user's token is checked once, then found in the validated-token cache.
    let validated = "axum_obo_validated_token_cache_total";
    assert_eq!(d(validated, &[("result", "hit")]), 2.0, "{}", after.text);
    for reason in ["missing", "malformed", "expired", "audience"] {
        assert_eq!(
            d(validations, &[("outcome", "refused"), ("reason", reason)]),
            1.0,
            "refused: {reason}\n{}",
            after.text
        );
    }
    let exchanges = "axum_obo_exchanges_total";
    assert_eq!(d(exchanges, &[("grant", "obo"), ("outcome", "ok")]), 1.0);
    assert_eq!(
        d(
            exchanges,
            &[("grant", "obo"), ("outcome", "consent_required")]
        ),
        1.0,
        "{}",
        after.text
    );
    let cache = "axum_obo_obo_cache_total";
    assert_eq!(d(cache, &[("tier", "l1"), ("result", "hit")]), 1.0);
    assert_eq!(
        d(cache, &[("tier", "l1"), ("result", "miss")]),
        2.0,
        "{}",
        after.text
    );
    // The token endpoint's latency: one observation per call, in the buckets
    // the example sets for Entra.
    let duration = "axum_obo_token_endpoint_duration_seconds";
    assert_eq!(d(duration, &[("grant", "obo")]), 2.0, "{}", after.text);
    assert_eq!(
        d(&format!("{duration}_count"), &[("grant", "obo")]),
        2.0,
        "{}",
        after.text
    );
    let mut bounds = metrics::TOKEN_ENDPOINT_BUCKETS.to_vec();
    bounds.push(f64::INFINITY);
    assert_eq!(after.buckets[duration], bounds);
    // Graph answered both profiles.
    assert_eq!(
        d(
            "axum_obo_downstream_requests_total",
            &[("status_class", "2xx")]
        ),
        2.0
    );
    assert_eq!(layer.stats().hits, 1, "OboStats counts the same hit");
    // The L1 gauges: the user's one token.
    assert_eq!(after.get("axum_obo_obo_cache_entries", &[]), 1.0);
    assert!(after.get("axum_obo_obo_cache_weight_bytes", &[]) > 0.0);

    // Label hygiene: no token, user or tenant (the tenant label is opt-in).
    let tenant = e.entra.home_tenant();
    for secret in [user.as_str(), "eyJ", &tenant, OTHER_USER] {
        assert!(!after.text.contains(secret), "{secret} in /metrics");
    }
}

#[tokio::test]
async fn metrics_is_public_and_the_api_is_not() {
    let _serial = SERIAL.lock().await;
    let (_e, app, _) = example().await;
    // No token needed for /metrics (outside `OboLayer`), still one for the API.
    scrape(&app).await;
    assert_eq!(call(&app, "/whoami", None).await.status, 401);
    // A browser origin gets no CORS grant on it (it is not for browsers).
    let req = http::Request::get("/metrics")
        .header(http::header::ORIGIN, app::DEV_ORIGIN)
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp
        .headers()
        .contains_key(http::header::ACCESS_CONTROL_ALLOW_ORIGIN));
}

#[tokio::test]
async fn its_own_listener_serves_only_metrics() {
    let _serial = SERIAL.lock().await;
    let (_e, _, layer) = example().await;
    let handle = metrics::install().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, metrics::router(handle, layer)).await });
    let client = reqwest::Client::new();
    let resp = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let resp = client
        .get(format!("http://{addr}/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[test]
fn obo_metrics_listen() {
    assert_eq!(metrics::exposure(None), Ok(Exposure::SamePort));
    assert_eq!(metrics::exposure(Some(" ")), Ok(Exposure::SamePort));
    assert_eq!(metrics::exposure(Some("OFF")), Ok(Exposure::Off));
    assert_eq!(
        metrics::exposure(Some("0.0.0.0:9464")),
        Ok(Exposure::Listener("0.0.0.0:9464".parse().unwrap()))
    );
    let e = metrics::exposure(Some("localhost")).unwrap_err();
    assert!(e.contains("OBO_METRICS_LISTEN"), "{e}");
}
