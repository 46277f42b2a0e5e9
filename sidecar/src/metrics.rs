//! `GET /metrics`: axum-obo's metrics (its feature `metrics`, see
//! `docs/metrics.md`) in the Prometheus text exposition format, rendered by
//! `metrics-exporter-prometheus` (its recorder only: no HTTP listener, no push
//! gateway; axum serves the route).
//!
//! No bearer token: a scraper has none. On the sidecar's port the route is a
//! local one like the others (a non-loopback caller gets 403), so a scraper in
//! the pod (an OpenTelemetry Collector, a Prometheus agent) reads it there.
//! `OBO_METRICS_LISTEN` ([`Exposure`]) chooses:
//!
//! - unset or empty: on the sidecar's port, loopback callers only;
//! - an address (`0.0.0.0:9464` for a Prometheus outside the pod): on a listener
//!   of its own that serves only `/metrics`, to any caller that reaches it, and
//!   not on the sidecar's port;
//! - `off`: not served, and no recorder installed.
//!
//! The counts name outcomes, never a token, a user or a session (a tenant id
//! only with `OBO_METRICS_TENANT_LABEL=true`).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use axum_obo::OboLayer;
use http::header::CONTENT_TYPE;
use http::HeaderValue;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Where `/metrics` is served (`OBO_METRICS_LISTEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Exposure {
    /// On the sidecar's port, to loopback callers (the default).
    #[default]
    SamePort,
    /// On a listener of its own at this address, and not on the sidecar's port.
    Listener(SocketAddr),
    /// Not served; no recorder installed.
    Off,
}

impl Exposure {
    /// `OBO_METRICS_LISTEN`'s value: unset or empty → [`Exposure::SamePort`],
    /// `off` → [`Exposure::Off`], else a socket address.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::SamePort),
            Some(v) if v.eq_ignore_ascii_case("off") => Ok(Self::Off),
            Some(v) => v
                .parse()
                .map(Self::Listener)
                .map_err(|_| format!("'{v}' is neither a socket address (host:port) nor `off`")),
        }
    }
}

/// Bucket bounds of `axum_obo_token_endpoint_duration_seconds`, in seconds:
/// Entra answers in about 50–300 ms, slower under load or across regions; one
/// attempt may take 10 s, and throttling and 5xx are retried.
pub const TOKEN_ENDPOINT_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often histogram samples are folded into their buckets between scrapes.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The Prometheus text format's media type (version 0.0.4).
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The process's Prometheus recorder, installed as the global `metrics`
/// recorder on the first call (later calls return the same handle). Fails if
/// another recorder was installed first.
pub fn install() -> Result<PrometheusHandle, String> {
    let mut installed = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("axum_obo_token_endpoint_duration_seconds".into()),
            TOKEN_ENDPOINT_BUCKETS,
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("cannot install the Prometheus recorder: {e}"))?;
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Folds histogram samples every [`UPKEEP_EVERY`] (without it they pile up
/// until the next scrape), for as long as the runtime runs.
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

/// The handler of `GET /metrics`: the On-Behalf-Of cache's gauges brought up
/// to date (`layer.cache_usage()`: the crate sets them after exchanges, not
/// when entries expire), then the text.
pub(crate) async fn render(handle: PrometheusHandle, layer: OboLayer) -> axum::response::Response {
    layer.cache_usage().await;
    (
        [(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT))],
        handle.render(),
    )
        .into_response()
}

/// `GET /metrics` alone, for a listener of its own ([`Exposure::Listener`]);
/// see [`Sidecar::metrics_router`](crate::Sidecar::metrics_router).
pub(crate) fn router<S>(handle: PrometheusHandle, layer: OboLayer) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route(
        "/metrics",
        get(move || render(handle.clone(), layer.clone())),
    )
}
