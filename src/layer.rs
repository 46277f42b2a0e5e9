//! The middleware: [`OboLayer`], the [`OboService`] it wraps your routes in, and
//! its [`ResponseFuture`], laid out as tower-http lays out each of its middlewares.
//!
//! Per request: the bearer token → validation → the layer-wide policy → request
//! extensions for the extractors (and an [`OboContext`] for code without them). A
//! refusal is an `Ok` response (an [`AuthRejection`]); the inner service's errors
//! pass through untouched.
//!
//! A token validated before (a validated-token cache hit) that the policy admits
//! needs no waiting: `call` then calls the ready inner service itself and returns
//! its future unboxed. Everything else (a miss, which may wait for keys, a refusal,
//! an anonymous request) goes through one boxed future, on a clone of the inner
//! service swapped in as tower's docs advise.
//!
//! It is a plain tower middleware: it wraps any service answering
//! `http::Response<B>` — an axum `Router`, a tonic server, rmcp's Streamable HTTP
//! service — and answers `http::Response<`[`OboBody<B>`]`>`: the inner body as it
//! is, or the refusal's. Refusals are in the protocol of the request: a gRPC
//! Trailers-Only answer for `content-type: application/grpc…` (see
//! [`AuthRejection::grpc_code`]), the RFC 6750 HTTP answer otherwise.
//!
//! axum converts the response of a layered service into its own `Response`, which
//! puts the `OboBody` in axum's `Body` (one small allocation, as for any
//! body-wrapping tower-http middleware).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Instrument as _;

use crate::admission::Admission;
use crate::config::{ConfigError, OboConfig};
use crate::downstream::GraphClient;
use crate::exchange::Exchanger;
use crate::extractor::OboToken;
use crate::jwks::{KeyError, KeyStore};
use crate::metrics::{self, Refusal};
use crate::rejection::{AuthRejection, Refused, Renderer};
use crate::resource_metadata::{self, ResourceSettings};
use crate::scope::Scope;
use crate::secret::BearerToken;
#[cfg(feature = "redis")]
use crate::session::RedisSessionStore;
use crate::session::{MemorySessionStore, SessionStore, Sessions};
use crate::stats::{CacheUsage, OboStats};
use crate::validate::{Principal, ValidationError, Validator};

mod body;

pub use body::OboBody;

/// State shared by every clone of the layer and service.
pub(crate) struct Shared {
    pub(crate) config: Arc<OboConfig>,
    pub(crate) http: reqwest::Client,
    pub(crate) validator: Validator,
    pub(crate) exchanger: Exchanger,
    /// The Graph client of the configured `graph_url` and authority, without a
    /// token: [`OboToken::graph`](crate::OboToken::graph) clones it with one.
    pub(crate) graph: GraphClient,
    /// Long-running sessions (their own token cache, the exchanger's endpoint).
    pub(crate) sessions: Sessions,
    /// Entra Agent ID: the blueprint's T1s and its agents' tokens.
    pub(crate) agents: crate::agent::runtime::AgentRuntime,
    /// The fast path's metrics (feature `metrics`).
    pub(crate) hot: metrics::HotCounters,
}

impl Shared {
    /// Each subsystem built from its own settings, on the configuration's HTTP client.
    pub(crate) fn new(config: OboConfig) -> Self {
        let http = config.http.clone();
        let keys = Arc::new(KeyStore::new(config.keys.clone(), http.clone()));
        let validator = Validator::new(config.validation.clone(), keys);
        let exchanger = Exchanger::new(config.exchange.clone(), http.clone());
        // `OboConfigBuilder::build` accepted `graph_url` only as a bare https (or
        // loopback http) origin, which `GraphClient::new` always accepts.
        let graph = GraphClient::new(http.clone(), config.graph_url(), BearerToken::new(""))
            .expect("`graph_url` was validated by `OboConfigBuilder::build`")
            .with_authority(config.authority_host());
        let sessions = Sessions::new(
            exchanger.settings(),
            exchanger.endpoint(),
            session_store(&config, &exchanger),
            &config.sessions,
            graph.clone(),
            http.clone(),
        );
        let agents =
            crate::agent::runtime::AgentRuntime::new(exchanger.settings(), exchanger.endpoint());
        Self {
            config: Arc::new(config),
            http,
            validator,
            exchanger,
            graph,
            sessions,
            agents,
            hot: metrics::HotCounters::default(),
        }
    }
}

/// The configured session store; by default the L2's Redis when it is
/// configured, memory otherwise.
fn session_store(config: &OboConfig, exchanger: &Exchanger) -> Arc<dyn SessionStore> {
    #[cfg(not(feature = "redis"))]
    let _ = exchanger;
    if let Some(store) = &config.sessions.store {
        return Arc::clone(store);
    }
    #[cfg(feature = "redis")]
    if let Some(l2) = &config.exchange.l2 {
        if let Some(store) = RedisSessionStore::new(l2, exchanger.redis_auth(), &config.client_id) {
            return Arc::new(store);
        }
    }
    Arc::new(MemorySessionStore::new())
}

/// What the layer leaves in the request extensions: the caller, and what the
/// [`OboToken`] exchange needs.
///
/// axum handlers use the extractors ([`Principal`], [`Require`](crate::Require),
/// [`OboToken`]); code without axum extractors (tonic services, rmcp tools, your
/// own tower services) reads it from the request's extensions — any extensions
/// map, as its `get` is generic:
///
/// ```
/// use axum_obo::layer::OboContext;
/// use axum_obo::{AuthRejection, GraphUserRead};
///
/// async fn display_name(extensions: &http::Extensions) -> Result<String, AuthRejection> {
///     let ctx = extensions.get::<OboContext>().ok_or(AuthRejection::MissingLayer)?;
///     let token = ctx.obo_token::<GraphUserRead>().await?;
///     let me = token.graph().me().await?;
///     Ok(me.display_name.unwrap_or_default())
/// }
/// ```
///
/// With tonic it is `OboContext::from_extensions(request.extensions())?` (with the
/// `tonic` feature, `?` turns the rejection into a `tonic::Status`); with rmcp, the
/// `http::request::Parts` its Streamable HTTP transport puts in the tool's context.
#[derive(Clone)]
pub struct OboContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) auth: Option<Authenticated>,
}

impl OboContext {
    /// The context the layer left in `extensions` (an `http::Request`'s, a
    /// `tonic::Request`'s, or rmcp's request parts'), or
    /// [`AuthRejection::MissingLayer`] when no [`OboLayer`] is in front of the
    /// service.
    pub fn from_extensions(extensions: &http::Extensions) -> Result<&Self, AuthRejection> {
        extensions.get::<Self>().ok_or(AuthRejection::MissingLayer)
    }

    /// The validated caller; `None` only for an anonymous request on a layer with
    /// [`allow_anonymous`](OboLayer::allow_anonymous).
    pub fn principal(&self) -> Option<&Principal> {
        self.auth.as_ref().map(|a| &a.principal)
    }

    /// The caller, or [`AuthRejection::MissingToken`] for an anonymous request.
    pub fn require_principal(&self) -> Result<&Principal, AuthRejection> {
        self.principal().ok_or(AuthRejection::MissingToken)
    }

    /// A downstream token for the caller and the scopes of `S`, as the
    /// [`OboToken`] extractor gets it (cached, single-flight); failures are the
    /// extractor's rejections.
    pub async fn obo_token<S: Scope>(&self) -> Result<OboToken<S>, AuthRejection> {
        OboToken::exchange(self).await
    }
}

impl fmt::Debug for OboContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OboContext")
            .field("principal", &self.principal())
            .finish_non_exhaustive()
    }
}

/// A validated caller and the token that proved it.
#[derive(Clone)]
pub(crate) struct Authenticated {
    pub(crate) principal: Principal,
    pub(crate) token: BearerToken,
}

/// A tower [`Layer`] that admits only valid Microsoft Entra ID access tokens, in
/// front of an axum router, a tonic server or any service answering
/// `http::Response<B>`.
///
/// It validates `Authorization: Bearer …` (RS256 signature against the tenant's
/// keys, issuer, tenant, audience, lifetime, token kind), applies the layer-wide
/// policy of [`OboConfig`], and makes the caller available to handlers through the
/// [`Principal`] and [`Require`](crate::Require) extractors, and to any code through
/// the [`OboContext`] in the request's extensions. Refusals are RFC 6750
/// responses (see [`AuthRejection`]), or gRPC Trailers-Only answers to gRPC
/// requests; the inner service's errors pass through.
///
/// Cloning is cheap: all state is behind one `Arc`.
#[derive(Clone)]
pub struct OboLayer {
    shared: Arc<Shared>,
    allow_anonymous: bool,
    hooks: Hooks,
}

/// The app's hooks of a layer (none by default: then they cost one branch each).
#[derive(Clone, Default)]
struct Hooks {
    /// Refusals in the app's shape.
    renderer: Option<Renderer>,
    /// The app's check after validation.
    admission: Option<Arc<Admission>>,
}

impl fmt::Debug for OboLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OboLayer")
            .field("config", &self.shared.config)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("renders_refusals", &self.hooks.renderer.is_some())
            .field("admission", &self.hooks.admission)
            .finish()
    }
}

impl OboLayer {
    /// A layer for this configuration. Keys are fetched on first use; call
    /// [`warm_up`](Self::warm_up) to fetch them at start-up instead.
    pub fn new(config: OboConfig) -> Self {
        Self {
            shared: Arc::new(Shared::new(config)),
            allow_anonymous: false,
            hooks: Hooks::default(),
        }
    }

    /// [`OboConfig::from_env`] then [`OboLayer::new`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::new(OboConfig::from_env()?))
    }

    /// Lets requests without any `Authorization` header through unauthenticated
    /// (handlers then take `Option<Principal>`). Requests that do carry a token
    /// are still validated and refused when it is bad.
    #[must_use]
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// Answers refusals in the app's own shape: `render` chooses the body (and
    /// headers) of the layer's refusals and of the extractors' rejections (any
    /// [`AuthRejection`] answered inside this layer); the status code, the
    /// `WWW-Authenticate` challenge and `Retry-After` stay the crate's, whatever
    /// `render` sets. gRPC requests keep their gRPC answers. The body must be in
    /// memory (JSON, text, bytes); see [`rejection`](crate::rejection) for the
    /// pieces (`error_code`, `description`, …).
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use axum::{routing::get, Json, Router};
    /// use axum_obo::{OboLayer, Principal};
    /// use serde_json::json;
    ///
    /// fn app(layer: OboLayer) -> Router {
    ///     let layer = layer.render_refusals_with(|r| {
    ///         Json(json!({ "code": r.error_code(), "message": r.description() })).into_response()
    ///     });
    ///     Router::new()
    ///         .route("/whoami", get(|p: Principal| async move { p.oid().to_owned() }))
    ///         .layer(layer)
    /// }
    /// ```
    ///
    /// An extractor on a route without this layer answers the crate's own JSON
    /// (its 500 names the missing layer). Without a hook the layer's cost is
    /// unchanged.
    #[must_use]
    pub fn render_refusals_with<F>(mut self, render: F) -> Self
    where
        F: Fn(&AuthRejection) -> axum::response::Response + Send + Sync + 'static,
    {
        self.hooks.renderer = Some(Renderer::new(render));
        self
    }

    /// Runs the app's admission check after each token is validated (see
    /// [`admission`](crate::admission): when it runs, what it may answer).
    ///
    /// ```
    /// use std::time::Duration;
    /// use axum_obo::admission::{Admission, Refusal};
    /// use axum_obo::OboLayer;
    ///
    /// # async fn is_customer(_: &str) -> Result<bool, std::io::Error> { Ok(true) }
    /// fn with_customers(layer: OboLayer) -> OboLayer {
    ///     layer.admit_with(Admission::per_tenant(Duration::from_secs(300), |tid| async move {
    ///         match is_customer(&tid).await {
    ///             Ok(true) => Ok(()),
    ///             Ok(false) => Err(Refusal::forbidden("your organization has no subscription")),
    ///             Err(e) => Err(Refusal::unavailable(e)),
    ///         }
    ///     }))
    /// }
    /// ```
    #[must_use]
    pub fn admit_with(mut self, admission: Admission) -> Self {
        self.hooks.admission = Some(Arc::new(admission));
        self
    }

    /// Fetches the signing keys of every allowed tenant now, so that the first
    /// request does not wait for them and misconfiguration shows at start-up.
    pub async fn warm_up(&self) -> Result<(), KeyError> {
        self.shared.validator.keys().warm_up().await
    }

    /// The configuration.
    pub fn config(&self) -> &OboConfig {
        &self.shared.config
    }

    /// Long-running sessions: tokens for a user after their request has ended
    /// (see [`session`](crate::session)). Cheap to clone; move it into tasks.
    pub fn sessions(&self) -> Sessions {
        self.shared.sessions.clone()
    }

    /// The state shared by every clone of this layer.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Counters of the On-Behalf-Of cache (hits, misses, exchanges, errors).
    pub fn stats(&self) -> OboStats {
        self.shared.exchanger.stats()
    }

    /// The On-Behalf-Of cache's size (entries, and bytes as weighed against
    /// `obo_cache_max_bytes`), after pending evictions have run.
    pub async fn cache_usage(&self) -> CacheUsage {
        let (entries, bytes) = self.shared.exchanger.cache_usage().await;
        CacheUsage { entries, bytes }
    }
}

impl<S> Layer<S> for OboLayer {
    type Service = OboService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OboService {
            inner,
            shared: Arc::clone(&self.shared),
            allow_anonymous: self.allow_anonymous,
            hooks: self.hooks.clone(),
        }
    }
}

/// The service produced by [`OboLayer`]: it answers `http::Response<OboBody<B>>`
/// around the wrapped service's `http::Response<B>`.
#[derive(Clone)]
pub struct OboService<S> {
    inner: S,
    shared: Arc<Shared>,
    allow_anonymous: bool,
    hooks: Hooks,
}

impl<S: fmt::Debug> fmt::Debug for OboService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OboService")
            .field("inner", &self.inner)
            .field("allow_anonymous", &self.allow_anonymous)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for OboService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqB: Send + 'static,
    ResB: Send + 'static,
{
    type Response = Response<OboBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        // Fast path: a token validated before (a validated-token cache hit, which
        // needs no waiting) that the policy admits. The ready inner service is
        // called now, and its future is returned unboxed.
        if let Some(auth) = admit_cached(&self.shared, &self.hooks, req.headers()) {
            let shared = Arc::clone(&self.shared);
            let resource = resource_of(&shared, &req);
            let renderer = renderer_for(&self.hooks, &req);
            req.extensions_mut().insert(OboContext {
                shared,
                auth: Some(auth),
            });
            return ResponseFuture::admitted(self.inner.call(req), resource, renderer);
        }

        // Everything else may wait (for keys): the boxed path.
        // The clone is not ready; keep the ready one for this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = Arc::clone(&self.shared);
        let allow_anonymous = self.allow_anonymous;
        let resource = resource_of(&shared, &req);
        let hooks = self.hooks.clone();
        ResponseFuture::validating(Box::pin(async move {
            let response = match authenticate(&shared, &hooks, req.headers(), allow_anonymous).await
            {
                Ok(auth) => {
                    let renderer = renderer_for(&hooks, &req);
                    req.extensions_mut().insert(OboContext { shared, auth });
                    let response = inner.call(req).await?;
                    Ok(rendered(response, renderer.as_ref()))
                }
                Err(rejection) => Ok(reject(
                    rejection,
                    req.headers(),
                    req.version(),
                    hooks.renderer.as_ref(),
                )),
            };
            response.map(|mut r| {
                resource_metadata::annotate(resource.as_deref(), &mut r);
                r
            })
        }))
    }
}

/// The resource whose metadata the response's challenges name: `None` (free)
/// unless a resource URL is configured and the request is for it (RFC 9728
/// challenges name the metadata of the URL the client used).
fn resource_of<B>(shared: &Shared, req: &Request<B>) -> Option<Arc<ResourceSettings>> {
    (shared.config.resource.as_ref())
        .filter(|r| r.covers(req.uri().path()))
        .cloned()
}

/// The answer to a refused request, in its protocol (gRPC or HTTP), in the
/// app's shape when it set a renderer.
fn reject<B>(
    rejection: AuthRejection,
    request: &HeaderMap,
    version: http::Version,
    renderer: Option<&Renderer>,
) -> Response<OboBody<B>> {
    rejection
        .into_response_for(request, version, renderer)
        .map(OboBody::rejection)
}

/// The renderer for the inner service's answer to `req`: the app's, unless the
/// request is gRPC (whose answers are never rendered) or there is none.
fn renderer_for<B>(hooks: &Hooks, req: &Request<B>) -> Option<Renderer> {
    let renderer = hooks.renderer.as_ref()?;
    (!AuthRejection::is_grpc(req.headers(), req.version())).then(|| renderer.clone())
}

/// The inner service's response, or, when it is an [`AuthRejection`]'s answer
/// (an extractor's rejection) and the app set a renderer, the app's rendering.
fn rendered<B>(response: Response<B>, renderer: Option<&Renderer>) -> Response<OboBody<B>> {
    if let Some(renderer) = renderer {
        if let Some(Refused(rejection)) = response.extensions().get::<Refused>() {
            return renderer.render(rejection).map(OboBody::rejection);
        }
    }
    response.map(OboBody::inner)
}

/// The output of [`ResponseFuture`]: the response, or the inner service's error.
type Output<B, E> = Result<Response<OboBody<B>>, E>;

pin_project! {
    /// Response future of [`OboService`]: the inner service's future `F`, unboxed,
    /// for a request admitted at once (its token found in the validated-token
    /// cache), or a boxed future that validates first (a cache miss, a refusal,
    /// an anonymous request).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: FutureKind<F, B, E>,
    }
}

pin_project! {
    #[project = FutureKindProj]
    enum FutureKind<F, B, E> {
        Admitted {
            #[pin]
            future: F,
            // What the MCP hook needs (see `resource_metadata::annotate`).
            resource: Option<Arc<ResourceSettings>>,
            // The app's rendering of an extractor's rejection, if it set one.
            renderer: Option<Renderer>,
        },
        Validating {
            future: Pin<Box<dyn Future<Output = Output<B, E>> + Send>>,
        },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    fn admitted(
        future: F,
        resource: Option<Arc<ResourceSettings>>,
        renderer: Option<Renderer>,
    ) -> Self {
        Self {
            kind: FutureKind::Admitted {
                future,
                resource,
                renderer,
            },
        }
    }

    fn validating(future: Pin<Box<dyn Future<Output = Output<B, E>> + Send>>) -> Self {
        Self {
            kind: FutureKind::Validating { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Output<B, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            FutureKindProj::Admitted {
                future,
                resource,
                renderer,
            } => {
                let mut response = rendered(ready!(future.poll(cx))?, renderer.as_ref());
                resource_metadata::annotate(resource.as_deref(), &mut response);
                Poll::Ready(Ok(response))
            }
            FutureKindProj::Validating { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseFuture")
    }
}

/// The caller of a request whose bearer token is in the validated-token cache
/// and whose principal the layer-wide policy admits; `None` for anything else
/// (no or a bad header, a miss, an entry that no longer holds, a refusal), which
/// [`authenticate`] then handles, logs and answers.
///
/// Its `obo_validate` span has the fields of `authenticate`'s accepted path.
fn admit_cached(shared: &Shared, hooks: &Hooks, headers: &HeaderMap) -> Option<Authenticated> {
    let token = bearer_token(headers).ok()??;
    let (principal, token) = shared.validator.cached(token)?;
    shared.config.policy.check(&principal).ok()?;
    if let Some(admission) = &hooks.admission {
        if !admission.admitted_now(&principal) {
            return None;
        }
    }
    let _span = tracing::debug_span!(
        "obo_validate",
        tid = principal.tid(),
        oid = principal.oid(),
        outcome = "accepted",
        reason = tracing::field::Empty,
    );
    let tenant = shared.config.exchange.metrics_tenant(principal.tid());
    metrics::accepted_cached(&shared.hot, tenant);
    Some(Authenticated { principal, token })
}

async fn authenticate(
    shared: &Shared,
    hooks: &Hooks,
    headers: &HeaderMap,
    allow_anonymous: bool,
) -> Result<Option<Authenticated>, AuthRejection> {
    let token = match bearer_token(headers) {
        Ok(Some(t)) => t,
        Ok(None) if allow_anonymous => return Ok(None),
        Ok(None) => {
            tracing::debug!(
                outcome = "rejected",
                reason = "missing_token",
                "no bearer token"
            );
            metrics::refused(Refusal::Missing, None);
            return Err(AuthRejection::MissingToken);
        }
        Err(r) => {
            tracing::debug!(outcome = "rejected", reason = "malformed_header", "{r}");
            metrics::refused(Refusal::of(&r), None);
            return Err(r);
        }
    };
    let span = tracing::debug_span!(
        "obo_validate",
        tid = tracing::field::Empty,
        oid = tracing::field::Empty,
        outcome = tracing::field::Empty,
        reason = tracing::field::Empty,
    );
    async {
        let span = tracing::Span::current();
        let (principal, token) = match shared.validator.validate(token).await {
            Ok(validated) => validated,
            Err(e) => {
                span.record("outcome", "rejected").record("reason", e.reason());
                // Its claims are not verified: never a tenant label.
                metrics::refused(Refusal::of_invalid(&e), None);
                if let ValidationError::KeysUnavailable(cause) = &e {
                    tracing::warn!(error = %cause, "cannot validate tokens: signing keys unavailable");
                } else {
                    tracing::debug!("token rejected: {e}");
                }
                return Err(AuthRejection::InvalidToken(e));
            }
        };
        span.record("tid", principal.tid())
            .record("oid", principal.oid());
        let tenant = shared.config.exchange.metrics_tenant(principal.tid());
        // With any tenant admitted, the policy and the admission hook are what
        // keep strangers out, and any organization signs valid tokens: a
        // refusal's tenant would let an attacker add series, so none is a label.
        let refused_tenant = tenant.filter(|_| !shared.config.admits_any_tenant());
        if let Err(f) = shared.config.policy.check(&principal) {
            span.record("outcome", "forbidden").record("reason", "policy");
            metrics::refused(Refusal::of_forbidden(&f), refused_tenant);
            tracing::debug!("request forbidden: {f}");
            return Err(AuthRejection::Forbidden(f));
        }
        if let Some(admission) = &hooks.admission {
            if let Err(refusal) = admission.check(&principal).await {
                span.record("outcome", "forbidden").record("reason", "admission");
                metrics::refused(Refusal::Admission, refused_tenant);
                tracing::debug!("request not admitted: {refusal}");
                return Err(AuthRejection::NotAdmitted(refusal));
            }
        }
        span.record("outcome", "accepted");
        metrics::accepted(tenant);
        Ok(Some(Authenticated { principal, token }))
    }
    .instrument(span)
    .await
}

/// The bearer token of the request, borrowed from its header: `Ok(None)` when
/// there are no bearer credentials (no header, or another scheme such as `Basic`).
///
/// Its characters are checked by the validator, on a validated-token cache miss
/// only (`validate::b64token`): a hit is the very bytes of a token that passed.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<Option<&[u8]>, AuthRejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthRejection::InvalidRequest(
            "the request has more than one Authorization header",
        ));
    }
    let bytes = value.as_bytes();
    if bytes.len() < 6 || !bytes[..6].eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let rest = &bytes[6..];
    if !rest.is_empty() && rest[0] != b' ' {
        return Ok(None); // another scheme that merely starts with "bearer"
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return Err(AuthRejection::InvalidRequest("the bearer token is empty"));
    }
    if token.len() > crate::validate::MAX_TOKEN_LEN {
        return Err(AuthRejection::InvalidToken(ValidationError::TooLarge));
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::b64token;
    use http::HeaderValue;

    fn parse(values: &[&[u8]]) -> Result<Option<String>, u16> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        match bearer_token(&h) {
            Ok(Some(t)) => b64token(t)
                .map(|t| Some(t.to_owned()))
                .map_err(|e| AuthRejection::InvalidToken(e).status().as_u16()),
            Ok(None) => Ok(None),
            Err(r) => Err(r.status().as_u16()),
        }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&[b"Basic dXNlcjpwYXNz"]), Ok(None));
        assert_eq!(parse(&[b"Bearerish x"]), Ok(None));
        assert_eq!(parse(&[b"Bearer a.b.c"]), Ok(Some("a.b.c".into())));
        assert_eq!(parse(&[b"bearer   a.b.c  "]), Ok(Some("a.b.c".into())));
        assert_eq!(parse(&[b"Bearer"]), Err(400));
        assert_eq!(parse(&[b"Bearer    "]), Err(400));
        assert_eq!(parse(&[b"Bearer a", b"Bearer b"]), Err(400));
        assert_eq!(parse(&[b"Bearer a b"]), Err(401));
        assert_eq!(parse(&[b"Bearer \xff\xfe"]), Err(401));
        assert_eq!(parse(&[b"Bearer ==="]), Err(401));
        assert_eq!(
            parse(&[b"Bearer a-b.c_d~e+f/Z09=="]),
            Ok(Some("a-b.c_d~e+f/Z09==".into()))
        );
        for c in (0..=255u8).filter(|c| !c.is_ascii_alphanumeric() && !b"-._~+/=".contains(c)) {
            let h = [b"Bearer a".as_slice(), &[c], b"b"].concat();
            if HeaderValue::from_bytes(&h).is_ok() {
                assert_eq!(parse(&[&h]), Err(401), "{c:#04x}");
            }
        }
        let big = [b"Bearer ".as_slice(), &vec![b'a'; 65536]].concat();
        assert_eq!(parse(&[&big]), Err(401));
    }
}
