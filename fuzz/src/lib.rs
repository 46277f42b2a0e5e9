//! Shared fixtures of the fuzz targets: one runtime, the scripted upstreams of
//! `axum_obo_testing::scripted` (an Entra stand-in behind a scripted token endpoint, and a
//! scripted Graph), and an app behind `OboLayer` exchanging there.
//!
//! The targets decode their input with `axum_obo_testing::scripted`'s decoders, the same
//! ones `tests/hostile.rs` replays `regressions/` with.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use axum_obo::{GraphUserRead, OboConfig, OboLayer, OboToken, Principal};
use axum_obo_testing::scripted::{Scripted, Upstreams};
use axum_obo_testing::EntraStandIn;
use tower::ServiceExt as _;

pub use axum_obo_testing::scripted;

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
        let rt = scripted::runtime();
        let (up, app) = rt.block_on(async {
            let up = Upstreams::start().await;
            let cfg = OboConfig::builder()
                .tenant_id(up.entra.home_tenant())
                .client_id(up.entra.api_client_id())
                .authority_host(&up.authority)
                .client_secret(up.entra.client_secret())
                .require_user_scopes(["access_as_user"])
                .obo_retries(0, Duration::from_secs(1))
                .http_timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let app = Router::new()
                .route(
                    "/whoami",
                    get(|p: Principal| async move { p.oid().to_owned() }),
                )
                .route(
                    "/obo",
                    get(|t: OboToken<GraphUserRead>| async move {
                        t.access_token().expose().len().to_string()
                    }),
                )
                .layer(OboLayer::new(cfg));
            (up, app)
        });
        Fixture {
            rt,
            entra: up.entra,
            app,
            token_endpoint: up.token_endpoint,
            graph: up.graph,
            graph_url: up.graph_url,
        }
    })
}

/// GET `path` with this raw Authorization value; the status.
pub fn status(path: &str, authorization: &[u8]) -> u16 {
    let f = fixture();
    let Some(value) = scripted::authorization_header(authorization) else {
        return 401; // not a header a server could receive
    };
    let req = http::Request::get(path)
        .header(http::header::AUTHORIZATION, value)
        .body(Body::empty())
        .unwrap();
    f.rt.block_on(async { f.app.clone().oneshot(req).await.unwrap().status().as_u16() })
}
