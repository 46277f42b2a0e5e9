//! The sidecar's `GET /metrics`, read with a Prometheus text-format parser
//! (`prometheus-parse`): the library's counters move with the sidecar's routes.
//!
//! A test binary of its own: the Prometheus recorder is global to the process,
//! so every count here comes from this file's requests, one test at a time.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use axum_obo_sidecar::metrics::{self, Exposure};
use axum_obo_sidecar::run::{self, Embedded};
use axum_obo_sidecar::Settings;
use http::{Request, StatusCode};
use prometheus_parse::{Scrape, Value};
use tower::ServiceExt as _;

/// One test at a time: they read the same global recorder.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LOCAL: &str = "127.0.0.1:40000";

async fn sidecar(vars: &[(&str, &str)]) -> (Router, Embedded) {
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let settings = Settings::from_sources(None, vars).unwrap();
    let (sidecar, embedded) = run::build(&settings).await.unwrap();
    (sidecar.router(), embedded.expect("embedded mode"))
}

async fn call(
    app: &Router,
    uri: &str,
    token: Option<&str>,
    peer: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut req = req.body(Body::empty()).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let res = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// Every sample of a scrape by name and sorted labels.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

fn parse(text: &str) -> Samples {
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            let value = match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                Value::Histogram(counts) => counts.last().map_or(0.0, |c| c.count),
                Value::Summary(_) => panic!("{} is a summary", s.metric),
            };
            ((s.metric, labels), value)
        })
        .collect()
}

fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    samples
        .get(&(name.to_owned(), labels))
        .copied()
        .unwrap_or(0.0)
}

/// `GET /metrics` from loopback, without a token: 200, parsed.
async fn scrape(app: &Router) -> (Samples, String) {
    let (status, headers, body) = call(app, "/metrics", None, LOCAL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["content-type"], metrics::CONTENT_TYPE_TEXT);
    (parse(&body), body)
}

#[tokio::test]
async fn counters_move_with_the_sidecars_routes() {
    let _serial = SERIAL.lock().await;
    let (app, e) = sidecar(&[]).await;
    let (before, _) = scrape(&app).await;

    let token = e.user_token();
    let (status, _, body) = call(&app, "/AuthorizationHeader/graph", Some(&token), LOCAL).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = call(&app, "/AuthorizationHeader/graph", Some(&token), LOCAL).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&app, "/AuthorizationHeader/graph", None, LOCAL).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = call(
        &app,
        "/AuthorizationHeaderUnauthenticated/graphApp",
        None,
        LOCAL,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (after, text) = scrape(&app).await;
    let d = |name: &str, labels: &[(&str, &str)]| {
        get(&after, name, labels) - get(&before, name, labels)
    };
    let validations = "axum_obo_validations_total";
    assert!(
        d(validations, &[("outcome", "accepted"), ("reason", "ok")]) >= 1.0,
        "{text}"
    );
    assert_eq!(
        d(
            validations,
            &[("outcome", "refused"), ("reason", "missing")]
        ),
        1.0,
        "{text}"
    );
    let exchanges = "axum_obo_exchanges_total";
    assert_eq!(
        d(exchanges, &[("grant", "obo"), ("outcome", "ok")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        d(
            exchanges,
            &[("grant", "client_credentials"), ("outcome", "ok")]
        ),
        1.0,
        "{text}"
    );
    let cache = "axum_obo_obo_cache_total";
    assert_eq!(
        d(cache, &[("tier", "l1"), ("result", "hit")]),
        1.0,
        "{text}"
    );
    let duration = "axum_obo_token_endpoint_duration_seconds";
    assert_eq!(d(duration, &[("grant", "obo")]), 1.0, "{text}");
    // No token, user or tenant in any label (the tenant label is opt-in).
    let tenant = e.harness.entra().home_tenant();
    for secret in [token.as_str(), "eyJ", &tenant] {
        assert!(!text.contains(secret), "{secret} in /metrics");
    }
}

#[tokio::test]
async fn metrics_is_for_local_callers_on_the_sidecars_port() {
    let _serial = SERIAL.lock().await;
    let (app, _e) = sidecar(&[]).await;
    scrape(&app).await;
    // The local-caller rule holds for /metrics as for every route but /healthz.
    for peer in ["10.0.0.7:5000", "[::ffff:10.0.0.7]:5000"] {
        let (status, _, _) = call(&app, "/metrics", None, peer).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{peer}");
    }
    // Not part of the container's API.
    let (_, _, doc) = call(&app, "/openapi/v1.json", None, LOCAL).await;
    assert!(!doc.contains("/metrics"));
}

#[tokio::test]
async fn obo_metrics_listen_moves_or_removes_it() {
    let _serial = SERIAL.lock().await;
    // `off`: no route.
    let (app, _e) = sidecar(&[("OBO_METRICS_LISTEN", "off")]).await;
    let (status, _, _) = call(&app, "/metrics", None, LOCAL).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A listener of its own: not on the sidecar's port; there, to any caller.
    let vars = [("OBO_METRICS_LISTEN".to_owned(), "127.0.0.1:0".to_owned())];
    let settings = Settings::from_sources(None, vars).unwrap();
    let (sidecar, _e) = run::build(&settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let own = sidecar.metrics_router(metrics::install().unwrap());
    let app = sidecar.router();
    let (status, _, _) = call(&app, "/metrics", None, LOCAL).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    tokio::spawn(async move { axum::serve(listener, own).await });
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("axum_obo_") && !parse(&text).is_empty(),
        "{text}"
    );
    let resp = reqwest::get(format!("http://{addr}/Validate"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        Exposure::parse(Some("off")),
        Ok(Exposure::Off),
        "the same values as the example server"
    );
}
