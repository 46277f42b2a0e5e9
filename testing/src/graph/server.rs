//! The stand-in's HTTP side: its state ([`Shared`]) and the one handler every request goes
//! through — count, injected fault, token, route (or `$batch`), log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, Method, Uri};
use serde_json::Value;
use std::sync::Arc;

use super::auth::KeySet;
use super::cae::Revocations;
use super::faults::{Faults, GraphFault};
use super::reply::{Ids, Reply};
use crate::record::RequestRecord;

/// Items in `/users` and `/me/messages` unless set otherwise.
pub(super) const DEFAULT_COLLECTION_SIZE: usize = 45;

/// State shared by the handle and the server.
pub(super) struct Shared {
    pub(super) addr: SocketAddr,
    pub(super) url: String,
    pub(super) keys: KeySet,
    pub(super) faults: Mutex<Faults>,
    pub(super) requests: AtomicUsize,
    pub(super) log: Mutex<Vec<RequestRecord>>,
    pub(super) collection_size: AtomicUsize,
    pub(super) revocations: Revocations,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every request: count, faults, token, route, log.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let ids = Ids::new(&headers);
    let path = decode_dollar(uri.path());
    let reply = shared
        .answer(&method, &path, uri.query(), &headers, &body, &ids)
        .await;
    let record = RequestRecord::new(&method, path, uri.query(), &headers, reply.status.as_u16());
    lock(&shared.log).push(record);
    reply.into_response(&ids)
}

/// `%24` → `$` (`$batch` may arrive percent-encoded).
pub(super) fn decode_dollar(path: &str) -> String {
    path.replace("%24", "$")
}

impl Shared {
    async fn answer(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        ids: &Ids,
    ) -> Reply {
        let fault = lock(&self.faults).next_request();
        if let Some(fault) = fault {
            if let GraphFault::Delay(delay) = fault {
                tokio::time::sleep(delay).await;
            } else if let Some(reply) = fault.answer(ids) {
                return reply;
            }
        }
        let claims = match self.keys.authenticate(headers).await {
            Ok(claims) => claims,
            Err(message) => return Reply::unauthorized(message, ids),
        };
        if let Some(challenge) = self.revocations.challenge(&claims, ids) {
            return challenge;
        }
        if path.trim_end_matches('/') == "/v1.0/$batch" {
            if method != Method::POST {
                return Reply::method_not_allowed(ids);
            }
            return self.batch(&claims, body, ids);
        }
        let body = if body.is_empty() {
            None
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => Some(v),
                Err(_) => return Reply::bad_request("Unable to read JSON request payload.", ids),
            }
        };
        self.route(method, path, query, &claims, body.as_ref(), ids)
    }
}
