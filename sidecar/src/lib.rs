//! `axum-obo-sidecar`: Microsoft's Entra SDK container API (the "sidecar") on
//! axum-obo, for services in any language. See `docs/sidecar.md`.
//!
//! | route | identity | answer |
//! |---|---|---|
//! | `GET /healthz` | none (open to any caller) | `200` |
//! | `GET /Validate` | the caller's bearer token | `{"protocol","token","claims"}` |
//! | `GET /AuthorizationHeader/{apiName}` | the caller's (On-Behalf-Of) | `{"authorizationHeader"}` |
//! | `GET /AuthorizationHeaderUnauthenticated/{apiName}` | this app's own (app-only) | `{"authorizationHeader"}` |
//! | `POST /DownstreamApi/{apiName}` | the caller's | `{"statusCode","headers","content"}` |
//! | `POST /DownstreamApiUnauthenticated/{apiName}` | this app's own | `{"statusCode","headers","content"}` |
//! | `GET /openapi/v1.json` | none | the OpenAPI document |
//! | `GET /metrics` | none | Prometheus text format (see [`metrics`]; `OBO_METRICS_LISTEN`) |
//!
//! Every route but `/healthz` answers only loopback callers (others get 403);
//! the peer address is the only evidence (`X-Forwarded-For` is not read).
//! `/metrics` may be moved to a listener of its own (`OBO_METRICS_LISTEN`),
//! which serves it to any caller.
//!
//! Bounds: request bodies [`MAX_REQUEST_BODY`], downstream answers
//! [`MAX_DOWNSTREAM_BODY`], downstream calls 30 s. Caller-chosen scopes
//! (`optionsOverride.Scopes`) are interned per process and capped at
//! [`axum_obo::acquire::Scopes::MAX_SETS`] distinct sets, also for sets Entra
//! then refuses: a local caller that sends thousands of distinct sets can use
//! up the table, after which new sets get 400 until restart. Turn overrides off
//! (`Sidecar__AllowOverrides__*=false`) where local callers are not trusted
//! that far.

#![warn(missing_docs, missing_debug_implementations)]

pub mod settings;

mod handlers;
pub mod metrics;
mod openapi;
mod overrides;
mod problem;
pub mod run;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_obo::OboLayer;
use http::{header, HeaderValue, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

pub use settings::{AllowOverrides, DownstreamApi, Settings, SettingsError};

/// Largest request body accepted (`POST /DownstreamApi*`).
pub const MAX_REQUEST_BODY: usize = 1 << 20;
/// Largest downstream answer relayed.
pub const MAX_DOWNSTREAM_BODY: usize = 4 << 20;

/// What the handlers share.
#[derive(Clone)]
pub struct Sidecar {
    pub(crate) layer: OboLayer,
    pub(crate) apis: Arc<BTreeMap<String, DownstreamApi>>,
    pub(crate) allow: AllowOverrides,
    pub(crate) required_scopes: Arc<[String]>,
    pub(crate) tenant: Arc<str>,
    pub(crate) http: reqwest::Client,
    /// `GET /metrics` on the sidecar's port, when set.
    pub(crate) metrics: Option<PrometheusHandle>,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("apis", &self.apis.keys().collect::<Vec<_>>())
            .field("allow", &self.allow)
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl Sidecar {
    /// The sidecar over `layer` (its configuration's tenant is the default of
    /// app-only and agent tokens), serving the named `apis`.
    pub fn new(
        layer: OboLayer,
        tenant: &str,
        apis: BTreeMap<String, DownstreamApi>,
        allow: AllowOverrides,
        allow_redirects: bool,
        required_scopes: Vec<String>,
    ) -> Self {
        let redirects = if allow_redirects {
            reqwest::redirect::Policy::limited(5)
        } else {
            reqwest::redirect::Policy::none()
        };
        let http = reqwest::Client::builder()
            .redirect(redirects)
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("a reqwest client with rustls");
        Self {
            layer,
            apis: Arc::new(
                apis.into_iter()
                    .map(|(k, v)| (k.to_lowercase(), v))
                    .collect(),
            ),
            allow,
            required_scopes: required_scopes.into(),
            tenant: tenant.into(),
            http,
            metrics: None,
        }
    }

    /// `GET /metrics` alone, rendering `handle`, for a listener of its own
    /// (`OBO_METRICS_LISTEN` = an address): no local-caller restriction there.
    pub fn metrics_router(&self, handle: PrometheusHandle) -> Router {
        metrics::router(handle, self.layer.clone())
    }

    /// Serves `GET /metrics` (rendering `handle`) on the sidecar's port, to
    /// loopback callers like every route but `/healthz`.
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// The router: the container's routes, the local-caller restriction and the
    /// no-cache headers. Serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` (the restriction
    /// needs the peer address; without it every caller but `/healthz` gets 403).
    pub fn router(self) -> Router {
        let authenticated = Router::new()
            .route("/Validate", get(handlers::validate))
            .route(
                "/AuthorizationHeader/{api}",
                get(handlers::authorization_header),
            )
            .route("/DownstreamApi/{api}", post(handlers::downstream_api))
            .layer(self.layer.clone());
        let metrics = match self.metrics.clone() {
            Some(handle) => metrics::router(handle, self.layer.clone()),
            None => Router::new(),
        };
        Router::new()
            .route("/healthz", get(|| async { "Healthy" }))
            .route("/openapi/v1.json", get(handlers::openapi))
            .route(
                "/AuthorizationHeaderUnauthenticated/{api}",
                get(handlers::authorization_header_unauthenticated),
            )
            .route(
                "/DownstreamApiUnauthenticated/{api}",
                post(handlers::downstream_api_unauthenticated),
            )
            .merge(authenticated)
            .merge(metrics)
            .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
            .layer(middleware::from_fn(no_cache))
            .layer(middleware::from_fn(local_callers_only))
            .with_state(self)
    }
}

/// 403 for a caller that is not on loopback, except on `/healthz` (probes).
async fn local_callers_only(request: Request, next: Next) -> Response {
    let local = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| is_loopback(peer.ip()));
    if local || request.uri().path().eq_ignore_ascii_case("/healthz") {
        return next.run(request).await;
    }
    tracing::warn!("refused a non-loopback caller");
    StatusCode::FORBIDDEN.into_response()
}

fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback(),
        std::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// `Cache-Control: no-cache, no-store, must-revalidate` (and `Pragma`,
/// `Expires`) on every 2xx answer: they may hold tokens.
async fn no_cache(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.status().is_success() {
        let h = response.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-store, must-revalidate"),
        );
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    }
    response
}
