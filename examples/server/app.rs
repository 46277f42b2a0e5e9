//! The example's router and its offline set-up, shared with `tests/example.rs`.

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use axum_obo::{
    AuthRejection, GraphUserRead, OboConfigBuilder, OboLayer, OboToken, Principal, Require,
    Requirement,
};
use axum_obo_testing::{EntraStandIn, GraphStandIn, Harness};
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// Callers holding the `Admin` app role.
pub struct Admin;

impl Requirement for Admin {
    const ROLES: &'static [&'static str] = &["Admin"];
}

/// `GET /healthz`: no authentication.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /whoami`: the validated caller.
async fn whoami(caller: Principal) -> Json<Principal> {
    Json(caller)
}

/// `GET /me`: the caller's Graph profile, fetched on their behalf.
async fn me(token: OboToken<GraphUserRead>) -> Result<Json<Value>, AuthRejection> {
    Ok(Json(token.graph().get_json("me").await?))
}

/// `GET /admin`: only for the `Admin` app role.
async fn admin(_: Require<Admin>) -> Json<Value> {
    Json(json!({ "ok": true }))
}

/// The policy of the example: delegated tokens need `access_as_user`; app-only
/// tokens are admitted with any role.
pub fn policy(builder: OboConfigBuilder) -> OboConfigBuilder {
    builder.require_user_scopes(["access_as_user"])
}

/// The example's routes behind `layer` (`/healthz` stays public), in the stack a
/// production axum service has. From the outside in:
///
/// 1. `SetSensitiveRequestHeadersLayer`: `Authorization` (and `Cookie`) are marked
///    sensitive before anything can log them; `TraceLayer` then prints `Sensitive`.
/// 2. `SetRequestIdLayer` / `PropagateRequestIdLayer`: an `x-request-id` on every
///    request and response, recorded in the trace span.
/// 3. `TraceLayer`: one span per request, with method, path and request id.
/// 4. `TimeoutLayer`: 30 s for the whole request, OBO exchange and Graph call
///    included (the crate bounds each call to Entra and Graph on its own too).
/// 5. `CorsLayer` (see [`cors`]): **outside** `OboLayer`, so that browser preflights
///    (`OPTIONS`, which carry no token) are answered here and never get a 401.
/// 6. `OboLayer` with `route_layer`: only the routes above it are authenticated;
///    unknown paths answer 404 (not 401), and routes added after it would be public.
pub fn router(layer: OboLayer, cors: CorsLayer) -> Router {
    let protected = Router::new()
        .route("/whoami", get(whoami))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route_layer(layer);
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .layer(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([
                    AUTHORIZATION,
                    COOKIE,
                ]))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                ))
                .layer(cors),
        )
}

/// The trace span of a request: method, path and request id (never headers).
fn request_span(request: &Request<Body>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = id)
}

/// CORS for a browser front end at `origins` (e.g. a SPA on `http://localhost:5173`).
///
/// The browser may send `Authorization` and `Content-Type`, and may *read*
/// `WWW-Authenticate` (the relayed claims challenge: the SPA must re-authenticate
/// with those claims), `Retry-After` (503s) and `x-request-id`: without
/// `expose_headers`, a browser hides them from the SPA's JavaScript.
pub fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(origins.to_vec())
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE])
        .expose_headers([
            WWW_AUTHENTICATE,
            RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600))
}

/// `OBO_CLIENT_CAPABILITIES` (comma-separated, e.g. `cp1`), for the embedded mode;
/// with a real tenant `OboConfigBuilder::from_env` reads it.
pub fn client_capabilities_from_env() -> Vec<String> {
    std::env::var("OBO_CLIENT_CAPABILITIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The default browser origin of the example: a Vite dev server.
pub const DEV_ORIGIN: &str = "http://localhost:5173";

/// The browser origins allowed by CORS: `OBO_CORS_ORIGINS` (comma-separated),
/// default [`DEV_ORIGIN`].
pub fn cors_origins_from_env() -> Result<Vec<HeaderValue>, String> {
    let list = std::env::var("OBO_CORS_ORIGINS")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEV_ORIGIN.to_owned());
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            HeaderValue::from_str(o).map_err(|_| format!("OBO_CORS_ORIGINS: invalid origin {o:?}"))
        })
        .collect()
}

/// The embedded identity provider and Graph, for running without Azure.
pub struct Embedded {
    /// The Entra ID stand-in.
    pub entra: EntraStandIn,
    /// The Graph stand-in.
    pub graph: GraphStandIn,
    /// Both, wired: Graph trusts the Entra stand-in's keys.
    harness: Harness,
}

impl Embedded {
    /// Starts both stand-ins on loopback.
    pub async fn start() -> Self {
        let harness = Harness::start().await;
        Self {
            entra: harness.entra().clone(),
            graph: harness.graph().clone(),
            harness,
        }
    }

    /// A configuration pointing at the stand-ins (tenant, client id and secret, authority
    /// host, Graph URL).
    pub fn config(&self) -> OboConfigBuilder {
        self.harness.config()
    }

    /// A user token for `/me` and `/whoami`.
    pub fn user_token(&self) -> String {
        self.entra
            .token()
            .claim("name", json!("Adele Vance"))
            .claim("preferred_username", json!("adele@contoso.example"))
            .sign()
    }

    /// A user token that also holds the `Admin` app role.
    pub fn admin_token(&self) -> String {
        self.entra
            .token()
            .claim("name", json!("Megan Bowen"))
            .roles(&["Admin"])
            .sign()
    }
}
