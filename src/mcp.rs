//! MCP sessions bound to the caller who created them.
//!
//! An MCP server speaking Streamable HTTP with sessions (protocol revisions
//! before 2026-07-28) hands the client an `Mcp-Session-Id` when it initializes
//! and expects it on every later request. The server's session manager knows the
//! id, not who holds it: any caller with a valid token of their own and someone
//! else's session id is served in that session. [`OboLayer`] still validates every
//! request, so the tools see the right caller, but whatever a server keeps per
//! session (subscriptions, pending elicitations, results, a tool's state) is
//! reachable by another user. The MCP security best practices ask servers to bind
//! session ids to user-specific information; [`BindMcpSessions`] does that.
//!
//! Where it sits: inside [`OboLayer`] (so the validated [`Principal`] is in the
//! request's extensions) and around the MCP server's service, e.g. rmcp's
//! `StreamableHttpService`:
//!
//! ```
//! # use axum::Router;
//! # use axum_obo::{mcp::BindMcpSessions, OboLayer};
//! # use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
//! # use rmcp::transport::streamable_http_server::StreamableHttpService;
//! # #[derive(Clone)]
//! # struct Tools;
//! # impl rmcp::ServerHandler for Tools {}
//! # fn app(mcp_service: StreamableHttpService<Tools, LocalSessionManager>, obo_layer: OboLayer) -> Router {
//! Router::new()
//!     .route_service("/mcp", mcp_service)
//!     .route_layer(BindMcpSessions::new()) // inner: runs after the token is valid
//!     .route_layer(obo_layer)              // outer
//! # }
//! ```
//!
//! What it guarantees:
//!
//! - **Recording**: a successful response carrying `Mcp-Session-Id` to a request
//!   without one (the `initialize` that created the session) records the owner:
//!   the caller's tenant (`tid`), object id (`oid`) and client application
//!   (`azp`/`appid`).
//!   An id already bound keeps its owner: a response naming it never rebinds it.
//! - **Checking**: a request carrying `Mcp-Session-Id` reaches the MCP server only
//!   when its caller is that owner (the same tenant, object id and client). Any
//!   other caller, an anonymous request (behind
//!   [`allow_anonymous`](crate::OboLayer::allow_anonymous)), a request carrying
//!   the header more than once (the server might read another id than the one
//!   checked), and a session id this
//!   layer never recorded (or has forgotten) get `404 Not Found`, the answer the
//!   MCP transport gives for an unknown session, which tells a client to
//!   initialize a new one. The caller learns nothing about whether the id exists.
//! - **Forgetting**: after the MCP server answers a `DELETE` with the session id
//!   (the client ending its session) with success or 404, and after it answers any
//!   request in the session with 404 (the server ended it), the binding is
//!   removed. A binding unused for the idle timeout (an hour by default, see
//!   [`idle_timeout`](BindMcpSessions::idle_timeout); keep it at least the MCP
//!   server's own session idle timeout, rmcp's is five minutes) is gone, and the
//!   map holds at most [`max_sessions`](BindMcpSessions::max_sessions) bindings
//!   (100,000 by default); an evicted binding is a 404 to its owner, who then
//!   initializes again. Both fail closed.
//!
//! Replicas: the bindings live in this process, as the sessions of rmcp's
//! `LocalSessionManager` do, so route a session's requests to the replica that
//! created it (sticky on `Mcp-Session-Id`) and both agree. A session restored on
//! another replica from a shared session store (rmcp's `session_store`) has no
//! binding there and is refused with 404: unknown ids fail closed rather than
//! letting a session move to a replica where nobody checks its owner.
//!
//! What it never does: log a session id in full (log lines carry its first six
//! characters), look at the body, or hold a lock across the inner service.
//! Requests without `Mcp-Session-Id` (every request of the stateless 2026-07-28
//! revision) pass untouched.
//!
//! [`OboLayer`]: crate::OboLayer
//! [`Principal`]: crate::Principal

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, Method, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::clock::{Clock, SystemClock};
use crate::layer::OboContext;
use crate::Principal;

/// The Streamable HTTP transport's session header, `Mcp-Session-Id`.
pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
const DEFAULT_MAX_SESSIONS: u64 = 100_000;

/// A tower [`Layer`] binding each MCP session id to the caller who created it;
/// see the [module documentation](self).
///
/// Cloning is cheap and shares the bindings: build one per MCP endpoint.
#[derive(Clone)]
pub struct BindMcpSessions {
    bindings: Arc<Bindings>,
}

impl BindMcpSessions {
    /// Bindings idle for an hour expire; at most 100,000 are held.
    pub fn new() -> Self {
        Self::with(
            DEFAULT_IDLE_TIMEOUT,
            DEFAULT_MAX_SESSIONS,
            Arc::new(SystemClock),
        )
    }

    fn with(idle: Duration, max: u64, clock: Arc<dyn Clock>) -> Self {
        Self {
            bindings: Arc::new(Bindings::new(idle, max, clock)),
        }
    }

    /// How long a binding lasts without a request in its session (whole seconds,
    /// at least one). Keep it at least the MCP server's session idle timeout.
    #[must_use]
    pub fn idle_timeout(self, idle: Duration) -> Self {
        let b = &self.bindings;
        Self::with(idle, b.max, Arc::clone(&b.clock))
    }

    /// The most bindings held; beyond it the least recently used are evicted.
    #[must_use]
    pub fn max_sessions(self, max: u64) -> Self {
        let b = &self.bindings;
        Self::with(
            Duration::from_secs(b.idle as u64),
            max,
            Arc::clone(&b.clock),
        )
    }

    /// The clock idle timeouts are measured on; for tests
    /// ([`ManualClock`](crate::clock::ManualClock)).
    #[must_use]
    pub fn clock(self, clock: impl Clock) -> Self {
        let b = &self.bindings;
        Self::with(Duration::from_secs(b.idle as u64), b.max, Arc::new(clock))
    }

    /// How many sessions are bound now (expired and evicted ones excluded once
    /// the map's pending maintenance has run, which this call does).
    pub fn bound_sessions(&self) -> u64 {
        self.bindings.map.run_pending_tasks();
        self.bindings.map.entry_count()
    }
}

impl Default for BindMcpSessions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BindMcpSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindMcpSessions")
            .field("idle_timeout_secs", &self.bindings.idle)
            .field("max_sessions", &self.bindings.max)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for BindMcpSessions {
    type Service = BindMcpSessionsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BindMcpSessionsService {
            inner,
            bindings: Arc::clone(&self.bindings),
        }
    }
}

/// The service produced by [`BindMcpSessions`].
#[derive(Clone)]
pub struct BindMcpSessionsService<S> {
    inner: S,
    bindings: Arc<Bindings>,
}

impl<S: fmt::Debug> fmt::Debug for BindMcpSessionsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindMcpSessionsService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for BindMcpSessionsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let Ok(context) = OboContext::from_extensions(req.extensions()) else {
            tracing::error!(
                "an MCP request without the layer's context: did you add `OboLayer` outside `BindMcpSessions`?"
            );
            return ResponseFuture::answer(StatusCode::INTERNAL_SERVER_ERROR);
        };
        let owner = context.principal().map(Owner::of);
        let mut ids = req.headers().get_all(SESSION_ID).iter();
        let Some(id) = ids.next() else {
            // No session yet: the response may create one for this caller.
            let after = owner.map(After::Record);
            return ResponseFuture::inner(self.inner.call(req), &self.bindings, after);
        };
        // Two ids: the one checked here might not be the one the server reads.
        let ambiguous = ids.next().is_some();
        let id = id.to_str().ok().filter(|_| !ambiguous).map(str::to_owned);
        let admitted = match (&id, &owner) {
            (Some(id), Some(owner)) => self.bindings.admits(id, owner),
            _ => false,
        };
        match id {
            Some(id) if admitted => {
                let after = if req.method() == Method::DELETE {
                    After::Delete(id)
                } else {
                    After::Continue(id)
                };
                ResponseFuture::inner(self.inner.call(req), &self.bindings, Some(after))
            }
            id => {
                tracing::debug!(
                    session = id
                        .as_deref()
                        .map(short)
                        .unwrap_or("(several, or not visible ASCII)"),
                    "MCP session not found for this caller: 404"
                );
                ResponseFuture::answer(StatusCode::NOT_FOUND)
            }
        }
    }
}

/// The first characters of a session id, enough to correlate log lines.
fn short(id: &str) -> &str {
    id.get(..6).unwrap_or("")
}

/// Who created a session.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Owner {
    tid: Box<str>,
    oid: Box<str>,
    client: Option<Box<str>>,
}

impl Owner {
    fn of(caller: &Principal) -> Self {
        Self {
            tid: caller.tid().into(),
            oid: caller.oid().into(),
            client: caller.client_app_id().map(Into::into),
        }
    }
}

/// A session's owner and when its session was last used (clock seconds).
#[derive(Debug)]
struct Binding {
    owner: Owner,
    last_used: AtomicI64,
}

/// Session id → owner, bounded; expiry on the injected clock (and, as a memory
/// backstop, on moka's own time-to-idle).
struct Bindings {
    map: moka::sync::Cache<String, Arc<Binding>>,
    idle: i64,
    max: u64,
    clock: Arc<dyn Clock>,
}

impl Bindings {
    fn new(idle: Duration, max: u64, clock: Arc<dyn Clock>) -> Self {
        let idle = idle.max(Duration::from_secs(1));
        Self {
            map: moka::sync::Cache::builder()
                .max_capacity(max)
                .time_to_idle(idle)
                .build(),
            idle: i64::try_from(idle.as_secs()).unwrap_or(i64::MAX),
            max,
            clock,
        }
    }

    /// Binds `id` to `owner`, unless it is bound already: a binding is never
    /// moved to another caller (nor renewed) by a response that names its id.
    fn record(&self, id: String, owner: Owner) {
        let now = self.clock.now();
        let entry = self.map.entry(id).or_insert_with(|| {
            Arc::new(Binding {
                owner: owner.clone(),
                last_used: AtomicI64::new(now),
            })
        });
        if !entry.is_fresh() && entry.value().owner != owner {
            tracing::warn!(
                session = short(entry.key()),
                "the MCP server answered another caller with a bound session id: the binding is kept"
            );
        }
    }

    /// Whether `caller` owns the live session `id`; a use keeps it alive.
    fn admits(&self, id: &str, caller: &Owner) -> bool {
        let Some(binding) = self.map.get(id) else {
            return false;
        };
        let now = self.clock.now();
        let last = binding.last_used.load(Ordering::Relaxed);
        if now.saturating_sub(last) > self.idle {
            self.map.invalidate(id);
            return false;
        }
        if binding.owner != *caller {
            tracing::warn!(
                session = short(id),
                "an MCP session id presented by a caller other than its owner: 404"
            );
            return false;
        }
        binding.last_used.fetch_max(now, Ordering::Relaxed);
        true
    }

    fn forget(&self, id: &str) {
        self.map.invalidate(id);
    }
}

/// What to do with the inner service's response.
#[derive(Debug)]
enum After {
    /// A request without a session id: record a session the response creates.
    Record(Owner),
    /// A request in a session: forget it if the server no longer knows it.
    Continue(String),
    /// `DELETE` of a session: forget it once the server has ended it.
    Delete(String),
}

impl After {
    fn apply<B>(self, bindings: &Bindings, response: &Response<B>) {
        let status = response.status();
        match self {
            After::Record(owner) => {
                let created = response.headers().get(SESSION_ID);
                if let Some(id) = created.filter(|_| status.is_success()) {
                    if let Ok(id) = id.to_str() {
                        bindings.record(id.to_owned(), owner);
                    }
                }
            }
            After::Continue(id) if status == StatusCode::NOT_FOUND => bindings.forget(&id),
            After::Delete(id) if status.is_success() || status == StatusCode::NOT_FOUND => {
                bindings.forget(&id)
            }
            After::Continue(_) | After::Delete(_) => {}
        }
    }
}

pin_project! {
    /// Response future of [`BindMcpSessionsService`]: the inner service's future,
    /// whose response records or forgets a binding, or an immediate answer (404
    /// for a session the caller does not own).
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B> {
        Inner {
            #[pin]
            future: F,
            bindings: Arc<Bindings>,
            after: Option<After>,
        },
        Answer {
            status: StatusCode,
            _body: std::marker::PhantomData<fn() -> B>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn inner(future: F, bindings: &Arc<Bindings>, after: Option<After>) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                bindings: Arc::clone(bindings),
                after,
            },
        }
    }

    fn answer(status: StatusCode) -> Self {
        Self {
            kind: Kind::Answer {
                status,
                _body: std::marker::PhantomData,
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "Inner",
            Kind::Answer { .. } => "Answer",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner {
                future,
                bindings,
                after,
            } => {
                let response = std::task::ready!(future.poll(cx))?;
                if let Some(after) = after.take() {
                    after.apply(bindings, &response);
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Answer { status, .. } => {
                let mut response = Response::new(B::default());
                *response.status_mut() = *status;
                Poll::Ready(Ok(response))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn owner(oid: &str) -> Owner {
        Owner::of(&Principal::for_tests(oid, &["access_as_user"], &[]))
    }

    fn bindings(clock: &ManualClock) -> Bindings {
        Bindings::new(Duration::from_secs(60), 10, Arc::new(clock.clone()))
    }

    #[test]
    fn only_the_owner_is_admitted() {
        let clock = ManualClock::at(1_000);
        let b = bindings(&clock);
        b.record("s1".into(), owner("alice"));
        assert!(b.admits("s1", &owner("alice")));
        assert!(!b.admits("s1", &owner("bob")));
        assert!(!b.admits("s2", &owner("alice")), "never recorded");
        let mut other_client = owner("alice");
        other_client.client = Some("another-app".into());
        assert!(!b.admits("s1", &other_client), "same user, another client");
        let mut other_tenant = owner("alice");
        other_tenant.tid = "t2".into();
        assert!(!b.admits("s1", &other_tenant), "same oid, another tenant");
        assert!(b.admits("s1", &owner("alice")), "refusals leave it bound");
    }

    #[test]
    fn an_idle_binding_expires_and_each_use_extends_it() {
        let clock = ManualClock::at(1_000);
        let b = bindings(&clock);
        b.record("s1".into(), owner("alice"));
        clock.advance(Duration::from_secs(50));
        assert!(b.admits("s1", &owner("alice")));
        clock.advance(Duration::from_secs(60));
        assert!(b.admits("s1", &owner("alice")), "60 s after the last use");
        clock.advance(Duration::from_secs(61));
        assert!(!b.admits("s1", &owner("alice")), "61 s idle");
        clock.set(1_000);
        assert!(!b.admits("s1", &owner("alice")), "gone, not just late");
    }

    #[test]
    fn responses_record_and_forget() {
        let clock = ManualClock::at(1_000);
        let b = bindings(&clock);
        let created = Response::builder()
            .header(SESSION_ID, "s1")
            .body(())
            .unwrap();
        After::Record(owner("alice")).apply(&b, &created);
        assert!(b.admits("s1", &owner("alice")));

        let refused = Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header(SESSION_ID, "s2")
            .body(())
            .unwrap();
        After::Record(owner("alice")).apply(&b, &refused);
        assert!(!b.admits("s2", &owner("alice")), "only a success creates");

        let status = |s: StatusCode| Response::builder().status(s).body(()).unwrap();
        After::Continue("s1".into()).apply(&b, &status(StatusCode::OK));
        After::Delete("s1".into()).apply(&b, &status(StatusCode::METHOD_NOT_ALLOWED));
        assert!(b.admits("s1", &owner("alice")), "the session lives on");
        After::Delete("s1".into()).apply(&b, &status(StatusCode::OK));
        assert!(!b.admits("s1", &owner("alice")), "deleted");

        b.record("s3".into(), owner("alice"));
        After::Continue("s3".into()).apply(&b, &status(StatusCode::NOT_FOUND));
        assert!(!b.admits("s3", &owner("alice")), "the server forgot it");
    }

    #[test]
    fn a_response_never_moves_a_binding_to_another_caller() {
        let clock = ManualClock::at(1_000);
        let b = bindings(&clock);
        b.record("s1".into(), owner("alice"));
        // A server answering Bob's request without a session id with Alice's id
        // (a bug, a fixed or echoed id) does not hand him her session.
        let echoed = Response::builder()
            .header(SESSION_ID, "s1")
            .body(())
            .unwrap();
        After::Record(owner("bob")).apply(&b, &echoed);
        assert!(!b.admits("s1", &owner("bob")));
        assert!(b.admits("s1", &owner("alice")), "still Alice's");
    }

    #[test]
    fn log_lines_carry_a_prefix_only() {
        assert_eq!(short("0123456789abcdef"), "012345");
        assert_eq!(short("abc"), "");
        assert_eq!(short("ééééé"), "ééé");
    }
}
