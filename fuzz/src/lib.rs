//! Shared fixtures of the fuzz targets: one runtime, one Entra stand-in, an app
//! behind `OboLayer`, and scripted upstreams whose answers the fuzzer chooses.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use axum_obo_testing::EntraStandIn;
use axum_obo::{GraphUserRead, OboConfig, OboLayer, OboToken, Principal};
use tower::ServiceExt as _;

/// Status, body and `WWW-Authenticate` an upstream answers with.
pub type Answer = (u16, Vec<u8>, Option<String>);

/// A scripted upstream: POSTs (and, for Graph, GETs) get the scripted answer;
/// other GETs are proxied to the Entra stand-in.
#[derive(Clone)]
pub struct Scripted {
    pub answer: Arc<Mutex<Answer>>,
    entra: String,
    script_gets: bool,
}

async fn scripted(State(s): State<Scripted>, req: Request) -> Response {
    if req.method() == http::Method::GET && !s.script_gets {
        let url = format!("{}{}", s.entra, req.uri());
        return match reqwest::get(url).await {
            Ok(r) => {
                let status = r.status();
                let body = r.bytes().await.unwrap_or_default();
                (status, body).into_response()
            }
            Err(_) => http::StatusCode::BAD_GATEWAY.into_response(),
        };
    }
    let (status, body, www) = s.answer.lock().unwrap().clone();
    let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    let mut resp = (status, Bytes::from(body)).into_response();
    if let Some(v) = www.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
    }
    resp
}

async fn loopback() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

fn serve_scripted(listener: tokio::net::TcpListener, entra: String, script_gets: bool) -> Scripted {
    let s = Scripted {
        answer: Arc::new(Mutex::new((200, b"{}".to_vec(), None))),
        entra,
        script_gets,
    };
    let app = Router::new().fallback(scripted).with_state(s.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    s
}

/// Everything a target needs, built once per process.
pub struct Fixture {
    pub rt: tokio::runtime::Runtime,
    pub entra: EntraStandIn,
    pub app: Router,
    pub token_endpoint: Scripted,
    pub graph: Scripted,
    pub graph_url: String,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (entra, app, token_endpoint, graph, graph_url) = rt.block_on(async {
            // The proxy is the authority, advertised by the stand-in as Entra's own host.
            let (listener, proxy) = loopback().await;
            let entra = EntraStandIn::builder().advertised_host(&proxy).start().await;
            let token_endpoint = serve_scripted(listener, entra.authority_host(), false);
            let cfg = OboConfig::builder()
                .tenant_id(entra.home_tenant())
                .client_id(entra.api_client_id())
                .authority_host(proxy)
                .client_secret(entra.client_secret())
                .require_user_scopes(["access_as_user"])
                .obo_retries(0, Duration::from_secs(1))
                .http_timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let app = Router::new()
                .route("/whoami", get(|p: Principal| async move { p.oid().to_owned() }))
                .route(
                    "/obo",
                    get(|t: OboToken<GraphUserRead>| async move {
                        t.access_token().expose().len().to_string()
                    }),
                )
                .layer(OboLayer::new(cfg));
            let (listener, graph_url) = loopback().await;
            let graph = serve_scripted(listener, String::new(), true);
            (entra, app, token_endpoint, graph, graph_url)
        });
        Fixture { rt, entra, app, token_endpoint, graph, graph_url }
    })
}

/// GET `path` with this raw Authorization value; the status.
pub fn status(path: &str, authorization: &[u8]) -> u16 {
    let f = fixture();
    let Ok(value) = http::HeaderValue::from_bytes(authorization) else {
        return 401; // not a header a server could receive
    };
    let req = http::Request::get(path)
        .header(http::header::AUTHORIZATION, value)
        .body(Body::empty())
        .unwrap();
    f.rt.block_on(async { f.app.clone().oneshot(req).await.unwrap().status().as_u16() })
}
