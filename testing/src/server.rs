//! The stand-in's HTTP side: routes, handlers, counters, the request log, faults and delays.
//!
//! Every handler counts the request on arrival, then waits out any injected delay, then
//! answers an injected fault if one is set, and only then looks at the tenant segment.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::documents::{self, Tenant};
use super::record::RequestRecord;
use super::response::{self, Caching, EntraError, RequestIds};
use super::state::{Endpoint, Shared};
use super::token_endpoint;

/// The routes of the stand-in. Tenant segments may be any GUID, `common`, `organizations` or
/// `consumers`.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration_v2),
        )
        .route(
            "/{tenant}/.well-known/openid-configuration",
            get(openid_configuration_v1),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(keys_v2))
        .route("/{tenant}/discovery/keys", get(keys_v1))
        .route("/{tenant}/discovery/instance", get(instance_discovery))
        .route("/{tenant}/oauth2/v2.0/token", post(token_endpoint::token))
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), record))
        .with_state(shared)
}

/// Adds every answered request to the stand-in's request log.
async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let record = RequestRecord::new(
        &method,
        path,
        query.as_deref(),
        &headers,
        response.status().as_u16(),
    );
    shared
        .log
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(record);
    response
}

/// Serves `router` on `listener` until `shutdown` fires or its sender is dropped.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: oneshot::Receiver<()>,
) {
    let addr = shared.addr;
    let closing = Arc::clone(&shared);
    let result = axum::serve(listener, router(shared))
        .with_graceful_shutdown(async move {
            // An error means the last handle was dropped: stop too.
            let _ = shutdown.await;
            // Release token requests held open by an injected hang.
            closing.token_endpoint.close();
        })
        .await;
    match result {
        Ok(()) => tracing::debug!(%addr, "Entra stand-in stopped"),
        Err(error) => tracing::warn!(%addr, %error, "Entra stand-in server failed"),
    }
}

/// Counts the request, waits out the injected delay, and returns the injected fault, if any.
async fn arrive(shared: &Shared, endpoint: Endpoint, ids: &RequestIds) -> Option<Response> {
    shared.counters.hit(endpoint);
    if let Some(delay) = shared.faults.delay() {
        tokio::time::sleep(delay).await;
    }
    let status = match endpoint {
        Endpoint::Jwks => shared.faults.jwks_status(),
        Endpoint::Discovery | Endpoint::InstanceDiscovery => shared.faults.discovery_status(),
    };
    if let Some(status) = status {
        return Some(response::html_error(status, ids));
    }
    if endpoint == Endpoint::Jwks && shared.faults.garbage_jwks() {
        return Some(response::garbage(ids));
    }
    None
}

/// Answers `document(tenant)` for a known tenant segment, AADSTS90002 otherwise.
fn for_tenant(
    shared: &Shared,
    segment: &str,
    ids: &RequestIds,
    document: impl FnOnce(&Tenant) -> Value,
) -> Response {
    match Tenant::parse(segment) {
        Some(tenant) => response::json(StatusCode::OK, &document(&tenant), ids, Caching::Day),
        None => EntraError::invalid_tenant(segment).into_response(&shared.authority, ids),
    }
}

async fn openid_configuration_v2(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ids = RequestIds::from_headers(&headers);
    if let Some(fault) = arrive(&shared, Endpoint::Discovery, &ids).await {
        return fault;
    }
    for_tenant(&shared, &segment, &ids, |tenant| {
        documents::openid_configuration_v2(&shared, &segment, tenant)
    })
}

async fn openid_configuration_v1(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ids = RequestIds::from_headers(&headers);
    if let Some(fault) = arrive(&shared, Endpoint::Discovery, &ids).await {
        return fault;
    }
    for_tenant(&shared, &segment, &ids, |tenant| {
        documents::openid_configuration_v1(&shared, &segment, tenant)
    })
}

async fn keys_v2(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ids = RequestIds::from_headers(&headers);
    if let Some(fault) = arrive(&shared, Endpoint::Jwks, &ids).await {
        return fault;
    }
    for_tenant(&shared, &segment, &ids, |tenant| {
        documents::key_set_v2(&shared, tenant)
    })
}

async fn keys_v1(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ids = RequestIds::from_headers(&headers);
    if let Some(fault) = arrive(&shared, Endpoint::Jwks, &ids).await {
        return fault;
    }
    for_tenant(&shared, &segment, &ids, |_| documents::key_set_v1(&shared))
}

async fn instance_discovery(
    State(shared): State<Arc<Shared>>,
    Path(segment): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let ids = RequestIds::from_headers(&headers);
    if let Some(fault) = arrive(&shared, Endpoint::InstanceDiscovery, &ids).await {
        return fault;
    }
    if Tenant::parse(&segment).is_none() {
        return EntraError::invalid_tenant(&segment).into_response(&shared.authority, &ids);
    }
    match documents::instance_discovery(&shared, &query) {
        Ok(answer) => response::json(StatusCode::OK, &answer, &ids, Caching::Day),
        Err(error) => error.into_response(&shared.authority, &ids),
    }
}
