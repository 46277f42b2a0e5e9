//! The scripted upstream: an axum server on loopback answering POSTs (and, when asked,
//! GETs) with whatever a test scripted, and proxying other GETs to the Entra stand-in
//! (discovery and keys). [`Upstreams`] puts one in front of an Entra stand-in as its token
//! endpoint and another one in place of Graph.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt as _;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, StatusCode};
use tokio::net::TcpListener;

use crate::EntraStandIn;

/// Status, content type, body and `WWW-Authenticate` of a scripted answer.
pub type Answer = (u16, String, Vec<u8>, Option<String>);

/// How a scripted body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// In one piece, with a `Content-Length`.
    Whole,
    /// In 8 KiB chunks, without a `Content-Length` (chunked transfer encoding).
    Chunked,
    /// The body, then spaces for ever, chunked.
    Endless,
}

/// A scripted upstream: POSTs get the scripted answer; GETs are proxied to the Entra
/// stand-in (discovery and keys), or scripted too when `script_gets`.
#[derive(Debug, Clone)]
pub struct Scripted {
    /// The answer to send (default `200`, `application/json`, `{}`).
    pub answer: Arc<Mutex<Answer>>,
    /// Scripted answers sent so far.
    pub answered: Arc<AtomicUsize>,
    /// A `Retry-After` header for scripted answers.
    pub retry_after: Arc<Mutex<Option<String>>>,
    /// How the scripted body is sent.
    pub body_mode: Arc<Mutex<BodyMode>>,
    entra: String,
    script_gets: bool,
}

/// The runtime of a process-wide fixture (tests driving it from synchronous proptest or fuzz
/// code with `block_on`): multi-threaded with one worker, so that its servers keep running
/// between calls, every driver on.
///
/// # Panics
/// If the runtime cannot be built.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a Tokio runtime for a test fixture")
}

/// A loopback listener and its URL (`http://127.0.0.1:PORT`).
///
/// # Panics
/// If the loopback socket cannot be bound.
pub async fn loopback() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding 127.0.0.1:0 for a scripted upstream");
    let addr = listener
        .local_addr()
        .expect("a bound listener has a local address");
    (listener, format!("http://{addr}"))
}

/// Serves a scripted upstream on `listener`, proxying GETs to `entra` (a URL) unless
/// `script_gets`.
pub fn serve_scripted(listener: TcpListener, entra: String, script_gets: bool) -> Scripted {
    let s = Scripted {
        answer: Arc::new(Mutex::new((
            200,
            "application/json".into(),
            b"{}".to_vec(),
            None,
        ))),
        answered: Arc::default(),
        retry_after: Arc::default(),
        body_mode: Arc::new(Mutex::new(BodyMode::Whole)),
        entra,
        script_gets,
    };
    let app = Router::new().fallback(scripted).with_state(s.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    s
}

async fn scripted(State(s): State<Scripted>, req: Request) -> Response {
    if req.method() == Method::GET && !s.script_gets {
        let url = format!("{}{}", s.entra, req.uri());
        return match reqwest::get(url).await {
            Ok(r) => {
                let status = r.status();
                let body = r.bytes().await.unwrap_or_default();
                (status, body).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        };
    }
    s.answered.fetch_add(1, Ordering::SeqCst);
    let (status, content_type, body, www) = lock(&s.answer).clone();
    let mode = *lock(&s.body_mode);
    let body = match mode {
        BodyMode::Whole => Body::from(body),
        BodyMode::Chunked | BodyMode::Endless => {
            let chunks: Vec<Bytes> = body.chunks(8192).map(Bytes::copy_from_slice).collect();
            let spaces = futures_util::stream::repeat_with(|| Bytes::from(vec![b' '; 8192])).take(
                if mode == BodyMode::Endless {
                    usize::MAX
                } else {
                    0
                },
            );
            let stream = futures_util::stream::iter(chunks)
                .chain(spaces)
                .map(Ok::<_, std::convert::Infallible>);
            Body::from_stream(stream)
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        headers.insert(CONTENT_TYPE, v);
    }
    if let Some(v) = www.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(WWW_AUTHENTICATE, v);
    }
    if let Some(v) = lock(&s.retry_after)
        .clone()
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        headers.insert(RETRY_AFTER, v);
    }
    resp
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An Entra stand-in behind a scripted token endpoint, and a scripted Graph.
///
/// The token endpoint's proxy is the authority: the stand-in advertises it in discovery and
/// issuers, as Entra advertises its own host. Configure the code under test with
/// `authority_host(authority)` and `graph_url(graph_url)`.
#[derive(Debug, Clone)]
pub struct Upstreams {
    /// The Entra stand-in (advertising `authority`).
    pub entra: EntraStandIn,
    /// The authority host to configure: the scripted token endpoint.
    pub authority: String,
    /// The scripted token endpoint (GETs proxied to the stand-in).
    pub token_endpoint: Scripted,
    /// The scripted Graph (GETs scripted too).
    pub graph: Scripted,
    /// The scripted Graph's URL.
    pub graph_url: String,
}

impl Upstreams {
    /// Starts the stand-in and both scripted upstreams on the current runtime.
    pub async fn start() -> Upstreams {
        let (listener, authority) = loopback().await;
        let entra = EntraStandIn::builder()
            .advertised_host(&authority)
            .start()
            .await;
        let token_endpoint = serve_scripted(listener, entra.authority_host(), false);
        let (listener, graph_url) = loopback().await;
        let graph = serve_scripted(listener, String::new(), true);
        Upstreams {
            entra,
            authority,
            token_endpoint,
            graph,
            graph_url,
        }
    }
}
