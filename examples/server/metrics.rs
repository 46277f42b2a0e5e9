//! `GET /metrics`: the crate's metrics (feature `metrics`, see `docs/metrics.md`)
//! in the Prometheus text exposition format, rendered by
//! `metrics-exporter-prometheus` (its recorder only: no HTTP listener, no push
//! gateway; axum serves the route).
//!
//! The route is **outside** `OboLayer`: a scraper has no Entra token. It shows
//! counts by outcome, never a token, a user or a session (and a tenant id only
//! with `OBO_METRICS_TENANT_LABEL=true`), but it tells whoever can read it how
//! busy the API is and how its sign-ins fail: keep it off the public ingress.
//! `OBO_METRICS_LISTEN` chooses where it is served:
//!
//! - unset or empty: on the API's own port, next to `/healthz`;
//! - an address (`127.0.0.1:9464`, `0.0.0.0:9464` for a scraper in the cluster):
//!   on a listener of its own that serves only `/metrics`, and not on the API's
//!   port (expose the API's port on the ingress, this one to the scraper only);
//! - `off`: not served, and no recorder is installed (the crate's recording sites
//!   then cost one check of an unset global each).

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// On the API's port (the default).
    SamePort,
    /// On a listener of its own at this address, and not on the API's port.
    Listener(SocketAddr),
    /// Not served; no recorder installed.
    Off,
}

/// `OBO_METRICS_LISTEN`: unset or empty → [`Exposure::SamePort`], `off` →
/// [`Exposure::Off`], else a socket address ([`Exposure::Listener`]).
pub fn exposure_from_env() -> Result<Exposure, String> {
    exposure(std::env::var("OBO_METRICS_LISTEN").ok().as_deref())
}

/// [`exposure_from_env`] of a value.
pub fn exposure(value: Option<&str>) -> Result<Exposure, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(Exposure::SamePort),
        Some(v) if v.eq_ignore_ascii_case("off") => Ok(Exposure::Off),
        Some(v) => v.parse().map(Exposure::Listener).map_err(|_| {
            format!("OBO_METRICS_LISTEN: not a socket address (host:port) nor `off`: {v:?}")
        }),
    }
}

/// Bucket bounds of `axum_obo_token_endpoint_duration_seconds`, in seconds:
/// Entra answers a token request in about 50–300 ms, slower under load or across
/// regions, and the crate gives one attempt 10 s (`http_timeout`) and retries
/// throttling and 5xx, so the buckets run from 10 ms to past 10 s.
pub const TOKEN_ENDPOINT_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often histogram samples are folded into their buckets between scrapes
/// (`PrometheusHandle::run_upkeep`): without it, samples pile up in memory
/// until the next scrape, forever if nobody scrapes.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The installed recorder's handle (a lock, so that concurrent first calls
/// install one recorder).
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// The process's Prometheus recorder, installed as the global `metrics` recorder
/// on the first call (a process has one; later calls return the same handle).
/// Fails if another recorder was installed first.
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

/// Folds histogram samples every [`UPKEEP_EVERY`], for as long as the runtime runs.
pub fn spawn_upkeep(handle: PrometheusHandle) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

/// The Prometheus text format's media type (version 0.0.4).
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics` rendering `handle`: merge it into the API's router (outside
/// `OboLayer`), or serve it alone on its own listener. Before each rendering,
/// `layer.cache_usage()` brings the On-Behalf-Of cache's gauges
/// (`axum_obo_obo_cache_entries`, `axum_obo_obo_cache_weight_bytes`) up to date:
/// the crate sets them after exchanges, not when entries expire.
pub fn router(handle: PrometheusHandle, layer: OboLayer) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let (handle, layer) = (handle.clone(), layer.clone());
            async move {
                layer.cache_usage().await;
                (
                    [(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT))],
                    handle.render(),
                )
                    .into_response()
            }
        }),
    )
}
