//! Shared test fixtures: a stand-in, a configuration against it, an app.
#![allow(dead_code)]

pub mod recorded;
#[cfg(feature = "redis")]
pub mod redis_cluster;
#[cfg(feature = "redis")]
pub mod redis_server;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use axum_obo::clock::ManualClock;
use axum_obo::{
    GraphUserRead, OboConfig, OboConfigBuilder, OboLayer, OboToken, Principal, Require, Requirement,
};
use axum_obo_testing::EntraStandIn;
use http::{Request, Response, StatusCode};
use tower::ServiceExt as _;

/// Callers with the `Admin` app role.
pub struct Admin;
impl Requirement for Admin {
    const ROLES: &'static [&'static str] = &["Admin"];
}

pub fn config(entra: &EntraStandIn) -> OboConfigBuilder {
    OboConfig::builder()
        .tenant_id(entra.home_tenant())
        .client_id(entra.api_client_id())
        .authority_host(entra.authority_host())
        .http_timeout(Duration::from_secs(3))
}

pub fn app(layer: OboLayer) -> Router {
    Router::new()
        .route("/whoami", get(|p: Principal| async move { Json(p) }))
        .route("/admin", get(|_: Require<Admin>| async { Json(serde_json::json!({"ok": true})) }))
        .route(
            "/maybe",
            get(|p: Option<Principal>| async move {
                p.map_or_else(|| "anonymous".to_owned(), |p| p.oid().to_owned())
            }),
        )
        .route(
            "/obo",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().len().to_string() }),
        )
        .layer(layer)
}

pub struct Reply {
    pub status: StatusCode,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub async fn read(resp: Response<Body>) -> Reply {
    let status = resp.status();
    let (www_authenticate, retry_after) = {
        let h = resp.headers();
        let get = |n| {
            h.get(n)
                .map(|v: &http::HeaderValue| v.to_str().unwrap_or("<bin>").to_owned())
        };
        (
            get(http::header::WWW_AUTHENTICATE),
            get(http::header::RETRY_AFTER),
        )
    };
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        www_authenticate,
        retry_after,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// GET `path` with an optional raw Authorization value.
pub async fn call(app: &Router, path: &str, auth: Option<&[u8]>) -> Reply {
    let mut req = Request::get(path);
    if let Some(a) = auth {
        req = req.header(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_bytes(a).unwrap(),
        );
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    read(resp).await
}

pub async fn bearer(app: &Router, path: &str, token: &str) -> Reply {
    call(app, path, Some(format!("Bearer {token}").as_bytes())).await
}

/// A clock at the current system time (tokens minted now are valid on it).
pub fn clock() -> ManualClock {
    ManualClock::now_system()
}

/// A writer collecting everything tracing prints, at every level.
#[derive(Clone, Default)]
pub struct LogCapture(pub Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A subscriber writing every event (TRACE, every target) into `capture`.
fn subscriber(capture: &LogCapture) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish()
}

/// The binary-wide capture (see [`capture_logs_global`]), with a guard-shaped
/// unit for the callers' `let (logs, _guard) = …`.
///
/// It used to install a thread-local subscriber per test. With tests running on
/// parallel threads, its events were sometimes lost (tracing's global max level
/// and callsite interest are shared by every thread's subscribers), so a test
/// could see an empty capture. One global subscriber has no such race; absence
/// checks then scan the logs of every test in the binary, which is stricter.
pub fn capture_logs() -> (LogCapture, ()) {
    (capture_logs_global().clone(), ())
}

/// Installs a capturing subscriber (TRACE, every target) for the whole test
/// binary, once, and returns the capture.
pub fn capture_logs_global() -> &'static LogCapture {
    static CAPTURE: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = LogCapture::default();
        tracing::subscriber::set_global_default(subscriber(&capture))
            .expect("one global subscriber");
        capture
    })
}

/// Asserts that captured logs hold no JWT (every token, assertion and ID token
/// starts `eyJ`, the base64url of `{"`) and none of `secrets`.
pub fn assert_no_secrets_in(logs: &LogCapture, secrets: &[&str]) {
    let text = logs.text();
    assert!(
        text.len() > 1000,
        "the capture works ({} bytes)",
        text.len()
    );
    if let Some(at) = text.find("eyJ") {
        let line = text[..at].rfind('\n').map_or(0, |i| i + 1);
        panic!("a JWT appears in the logs: {:.200}", &text[line..]);
    }
    for s in secrets {
        assert!(!text.contains(s), "a secret appears in the logs");
    }
}

/// An app (built by `make`) behind a layer on a manual clock, with the default
/// `min_key_refresh` (10 s), whose signing keys are already loaded: one token
/// has been admitted.
pub async fn keys_loaded(
    entra: &EntraStandIn,
    make: impl Fn(OboLayer) -> Router,
) -> (ManualClock, Router) {
    let clock = clock();
    let cfg = config(entra).clock(clock.clone()).build().unwrap();
    let app = make(OboLayer::new(cfg));
    let r = bearer(&app, "/whoami", &entra.token().sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    (clock, app)
}
