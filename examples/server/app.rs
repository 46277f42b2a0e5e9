//! The example's router and its offline set-up, shared with `tests/example.rs`
//! and `tests/grpc.rs`, `tests/mcp.rs`.

// The gRPC service, the MCP server and `/metrics`, child modules so that the tests including
// this file get them too.
#[path = "agent.rs"]
pub mod agent;
#[path = "grpc.rs"]
pub mod grpc;
#[path = "mcp.rs"]
pub mod mcp;
#[path = "metrics.rs"]
pub mod metrics;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use axum_obo::clock::{Clock, SystemClock};
use axum_obo::layer::OboContext;
use axum_obo::mcp::BindMcpSessions;
use axum_obo::session::{SessionKey, SessionOwner, Sessions};
use axum_obo::{
    AuthRejection, GraphUserRead, OboConfigBuilder, OboLayer, OboToken, Principal, Require,
    Requirement,
};
use axum_obo_testing::{EntraStandIn, GraphStandIn, Harness};
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};
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

/// Background jobs of `POST /jobs/me`, in memory: a job id is a random UUID (not
/// the session key, which never leaves the server), owned by the user who started it.
///
/// Bounded: a user has at most [`MAX_JOBS_PER_USER`] jobs kept; a new one replaces
/// their oldest finished job, or is refused with 429 and `Retry-After` when all of
/// them are still running. The room is taken before the session's exchange
/// (given back if it fails or the request is dropped), so concurrent starts of
/// one user cannot overshoot the bound. A finished job is kept for [`JOB_RETENTION`] (10
/// minutes) after it finished, then forgotten (`GET /jobs/{id}` answers 404).
/// Starting the sessions is bounded by the library too
/// (`OboConfigBuilder::session_start_limit`, 10 per minute and user by default).
#[derive(Clone)]
pub struct Jobs {
    sessions: Sessions,
    delay: Duration,
    clock: Arc<dyn Clock>,
    jobs: Arc<Mutex<HashMap<String, Job>>>,
}

/// One job: its owner, its state and when it was started and finished (clock seconds).
#[derive(Clone)]
struct Job {
    owner: SessionOwner,
    state: &'static str,
    result: Value,
    error: Option<String>,
    started: i64,
    finished: Option<i64>,
}

/// The default delay of a job before it calls Graph: 2 s.
pub const DEFAULT_JOB_DELAY: Duration = Duration::from_millis(2000);

/// The jobs one user may have kept at once (running or finished).
pub const MAX_JOBS_PER_USER: usize = 10;

/// How long a finished job is kept: 10 minutes.
pub const JOB_RETENTION: Duration = Duration::from_secs(600);

/// `OBO_EXAMPLE_JOB_DELAY_MS` (milliseconds), default [`DEFAULT_JOB_DELAY`].
pub fn job_delay_from_env() -> Result<Duration, String> {
    match std::env::var("OBO_EXAMPLE_JOB_DELAY_MS") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("OBO_EXAMPLE_JOB_DELAY_MS: not a number of milliseconds: {v:?}")),
        _ => Ok(DEFAULT_JOB_DELAY),
    }
}

impl Jobs {
    /// Jobs run through `sessions` (from `OboLayer::sessions`), each waiting `delay` first.
    pub fn new(sessions: Sessions, delay: Duration) -> Self {
        Self {
            sessions,
            delay,
            clock: Arc::new(SystemClock),
            jobs: Arc::default(),
        }
    }

    /// The same jobs, their retention measured on `clock` (for tests).
    #[allow(dead_code)] // tests/example.rs
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Jobs kept right now (running or finished, every user).
    #[allow(dead_code)] // tests/example.rs
    pub fn kept(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets jobs finished more than [`JOB_RETENTION`] ago.
    fn expire(jobs: &mut HashMap<String, Job>, now: i64) {
        let keep = JOB_RETENTION.as_secs() as i64;
        jobs.retain(|_, job| job.finished.is_none_or(|at| now.saturating_sub(at) < keep));
    }

    /// Makes room for one more job of `owner`: their oldest finished job goes
    /// when they have [`MAX_JOBS_PER_USER`]; `false` when all of those are running.
    fn make_room(jobs: &mut HashMap<String, Job>, owner: &SessionOwner) -> bool {
        let theirs = jobs.values().filter(|j| &j.owner == owner).count();
        if theirs < MAX_JOBS_PER_USER {
            return true;
        }
        let oldest = jobs
            .iter()
            .filter(|(_, j)| &j.owner == owner && j.finished.is_some())
            .min_by_key(|(_, j)| j.started)
            .map(|(id, _)| id.clone());
        match oldest {
            Some(id) => jobs.remove(&id).is_some(),
            None => false,
        }
    }

    fn finish(&self, id: &str, state: &'static str, result: Value, error: Option<String>) {
        let now = self.clock.now();
        if let Some(job) = self.lock().get_mut(id) {
            job.state = state;
            job.result = result;
            job.error = error;
            job.finished = Some(now);
        }
    }

    /// The job's work, after the request has ended: the caller's Graph profile
    /// through the session, then the session is ended. A failure is recorded
    /// with its public description only (what the API's own error responses say;
    /// never a downstream message, a transport cause or configuration details),
    /// and logged in full.
    async fn run(self, id: String, key: SessionKey) {
        tokio::time::sleep(self.delay).await;
        let profile = match self.sessions.graph::<GraphUserRead>(&key).await {
            Ok(graph) => graph.get_json("me").await.map_err(AuthRejection::from),
            Err(e) => Err(AuthRejection::from(e)),
        };
        if let Err(e) = self.sessions.end(&key).await {
            tracing::warn!(job = %id, error = %e, "could not end the job's session");
        }
        match profile {
            Ok(profile) => self.finish(&id, "done", profile, None),
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "job failed");
                self.finish(&id, "failed", Value::Null, Some(e.description()));
            }
        }
    }
}

/// A job recorded before its session has started: removed when dropped unless
/// emptied (the session started).
struct Reserved(Option<(Jobs, String)>);

impl Drop for Reserved {
    fn drop(&mut self) {
        if let Some((jobs, id)) = self.0.take() {
            jobs.lock().remove(&id);
        }
    }
}

/// `POST /jobs/me`: starts a session for the caller (one On-Behalf-Of exchange,
/// with `offline_access`) and a background job that, after the job delay, fetches
/// their Graph profile through it. 202 `{"id": …}`; 429 with `Retry-After` when
/// the caller already has [`MAX_JOBS_PER_USER`] jobs running, or has started
/// too many sessions lately.
async fn start_job(
    Extension(jobs): Extension<Jobs>,
    ctx: OboContext,
) -> Result<axum::response::Response, AuthRejection> {
    let owner = SessionOwner::of(ctx.require_principal()?);
    let now = jobs.clock.now();
    let id = uuid::Uuid::new_v4().to_string();
    // The room is taken (the job recorded as pending) under the same lock as the
    // check: concurrent starts of one user cannot all pass it during the
    // session's exchange.
    let room = {
        let mut all = jobs.lock();
        Jobs::expire(&mut all, now);
        let room = Jobs::make_room(&mut all, &owner);
        if room {
            all.insert(
                id.clone(),
                Job {
                    owner,
                    state: "pending",
                    result: Value::Null,
                    error: None,
                    started: now,
                    finished: None,
                },
            );
        }
        room
    };
    if !room {
        let retry = jobs.delay.as_secs().max(1);
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, HeaderValue::from(retry))],
            Json(json!({ "error": "too_many_jobs" })),
        )
            .into_response());
    }
    // Given back if the session does not start, or if this request is dropped
    // meanwhile (client gone, timeout): a job with no task would hold the room.
    let mut reserved = Reserved(Some((jobs.clone(), id.clone())));
    let key = ctx.start_session::<GraphUserRead>().await?;
    reserved.0 = None;
    tokio::spawn(jobs.clone().run(id.clone(), key));
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response())
}

/// `GET /jobs/{id}`: the job's state, only for the user who started it (404
/// otherwise, as for an unknown id or a job finished more than
/// [`JOB_RETENTION`] ago).
async fn job_status(
    Extension(jobs): Extension<Jobs>,
    caller: Principal,
    Path(id): Path<String>,
) -> axum::response::Response {
    let job = {
        let mut all = jobs.lock();
        Jobs::expire(&mut all, jobs.clock.now());
        all.get(&id).cloned()
    };
    match job {
        Some(job) if job.owner == SessionOwner::of(&caller) => Json(json!({
            "state": job.state,
            "result": job.result,
            "error": job.error,
        }))
        .into_response(),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such job" })),
        )
            .into_response(),
    }
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
///
/// The gRPC service [`grpc::ProfileService`] (`axum_obo.example.Profile/Me`) is one
/// more protected route on the same port: gRPC clients speak HTTP/2 cleartext,
/// which `axum::serve` accepts next to HTTP/1.1, and `OboLayer` refuses them in
/// gRPC (`grpc-status` 16, 7, 14, …) rather than with HTTP statuses.
///
/// The job routes (`POST /jobs/me`, `GET /jobs/{id}`) wait `OBO_EXAMPLE_JOB_DELAY_MS`
/// (see [`router_with_jobs`] to choose).
///
/// `/mcp` is an MCP server (see [`mcp`]) behind the same layer, each MCP session
/// bound to the caller who created it ([`BindMcpSessions`]); before the token,
/// it checks `Origin` as the Streamable HTTP transport requires (against DNS
/// rebinding): a browser request from an origin that is neither the resource
/// URL's nor one of the CORS origins is refused with 403 (no `Origin`, a
/// non-browser client, passes). The RFC 9728 metadata it points MCP clients to
/// (`/.well-known/oauth-protected-resource` and
/// `/.well-known/oauth-protected-resource/mcp`, when a resource URL is configured)
/// is public, like `/healthz`, and readable from any origin
/// (`Access-Control-Allow-Origin: *`).
pub fn router(layer: OboLayer, cors: Cors) -> Router {
    let delay = job_delay_from_env().unwrap_or(DEFAULT_JOB_DELAY);
    let jobs = Jobs::new(layer.sessions(), delay);
    router_with_jobs(layer, cors, jobs)
}

/// [`router`] with its background `jobs`.
pub fn router_with_jobs(layer: OboLayer, cors: Cors, jobs: Jobs) -> Router {
    let protected = Router::new()
        .route("/whoami", get(whoami))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/jobs/me", post(start_job))
        .route("/jobs/{id}", get(job_status))
        .route_service(
            &format!("/{}/{{method}}", grpc::SERVICE),
            grpc::ProfileService,
        )
        .route_layer(layer.clone())
        .layer(Extension(jobs))
        .merge(agent::router(&layer, agent::agent_id().as_deref()));
    // `/mcp`: `Origin` is checked before the token (outermost route layer).
    let mcp = mcp::router(&layer, BindMcpSessions::new()).route_layer(
        middleware::from_fn_with_state(Arc::new(mcp_origins(&layer, &cors.origins)), check_origin),
    );
    // The metadata is public: any origin may read it, preflights included.
    let metadata = layer
        .config()
        .resource_metadata()
        .map(|m| m.router())
        .unwrap_or_default()
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET])
                .allow_headers(Any)
                .max_age(Duration::from_secs(600)),
        );
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .merge(mcp)
        .layer(cors.layer)
        .merge(metadata)
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
                )),
        )
}

/// The origins a browser may call `/mcp` from: the resource URL's origin (when
/// configured) and the CORS origins.
fn mcp_origins(layer: &OboLayer, cors: &[HeaderValue]) -> Vec<HeaderValue> {
    let resource = layer
        .config()
        .resource_url()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| HeaderValue::from_str(&u.origin().ascii_serialization()).ok());
    resource.into_iter().chain(cors.iter().cloned()).collect()
}

/// The Streamable HTTP transport's `Origin` check (against DNS rebinding): a
/// request carrying an `Origin` outside `allowed` is refused with 403; one
/// without (a non-browser client) passes.
async fn check_origin(
    State(allowed): State<Arc<Vec<HeaderValue>>>,
    request: Request<Body>,
    next: Next,
) -> axum::response::Response {
    match request.headers().get(ORIGIN) {
        Some(origin)
            if !allowed
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(origin.as_bytes())) =>
        {
            (
                StatusCode::FORBIDDEN,
                Json(json!({ "error": "origin_not_allowed" })),
            )
                .into_response()
        }
        _ => next.run(request).await,
    }
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

/// The example's CORS: the layer, and the origins it allows (which `/mcp`'s
/// `Origin` check accepts too).
#[derive(Clone)]
pub struct Cors {
    /// The `CorsLayer` in front of the routes (the metadata has its own).
    pub layer: CorsLayer,
    /// The allowed browser origins.
    pub origins: Vec<HeaderValue>,
}

/// CORS for a browser front end at `origins` (e.g. a SPA on `http://localhost:5173`).
///
/// The browser may send `Authorization` and `Content-Type`, and may *read*
/// `WWW-Authenticate` (the relayed claims challenge: the SPA must re-authenticate
/// with those claims), `Retry-After` (503s), `x-request-id`, and `grpc-status` /
/// `grpc-message` (grpc-web refusals): without `expose_headers`, a browser hides
/// them from the SPA's JavaScript. Browser-based MCP clients (the MCP Inspector)
/// also send the MCP headers to `/mcp`.
pub fn cors(origins: &[HeaderValue]) -> Cors {
    let layer = CorsLayer::new()
        .allow_origin(origins.to_vec())
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            WWW_AUTHENTICATE,
            RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
        ])
        .max_age(Duration::from_secs(600));
    Cors {
        layer,
        origins: origins.to_vec(),
    }
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

/// The MCP endpoint's URL with the embedded stand-ins: `http://{addr}/mcp`, or
/// `http://localhost:{port}/mcp` when listening on every interface (`0.0.0.0`,
/// `::`), which is no URL a client can use (and plain http is for loopback only).
pub fn dev_resource_url(addr: std::net::SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://localhost:{}/mcp", addr.port())
    } else {
        format!("http://{addr}/mcp")
    }
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

    /// Registers a demo agent identity (Entra Agent ID) of the API; returns its id.
    pub fn demo_agent(&self) -> String {
        self.entra.add_agent_identity()
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
