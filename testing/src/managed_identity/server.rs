//! The endpoint's HTTP side: its state ([`Shared`]) and the one handler — count, injected
//! fault, secret header, query, token, log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde_json::{json, Value};

use super::super::ids::{random_guid, unix_seconds};
use super::super::state::Shared as EntraShared;
use super::faults::{Faults, ManagedIdentityFault};
use super::standin::ManagedIdentity;
use super::token;
use crate::record::RequestRecord;

/// The path of `IDENTITY_ENDPOINT`, as on App Service.
pub(super) const TOKEN_PATH: &str = "/msi/token";
/// The one protocol version served.
const API_VERSION: &str = "2019-08-01";
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// State shared by the handle and the server.
pub(super) struct Shared {
    pub(super) entra: Arc<EntraShared>,
    pub(super) addr: SocketAddr,
    pub(super) tenant: String,
    /// `/subscriptions/…/resourcegroups/…` of the app and its identities.
    pub(super) resource_group: String,
    pub(super) secret: String,
    /// The system-assigned identity first, then the user-assigned ones.
    pub(super) identities: Mutex<Vec<ManagedIdentity>>,
    /// Whether the system-assigned identity is enabled.
    pub(super) system_assigned: AtomicBool,
    pub(super) lifetime_secs: AtomicU64,
    pub(super) faults: Mutex<Faults>,
    pub(super) requests: AtomicUsize,
    pub(super) log: Mutex<Vec<RequestRecord>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every request: count, fault, answer, log.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let fault = lock(&shared.faults).next();
    let response = match fault {
        Some(ManagedIdentityFault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            shared.answer(&method, &uri, &headers, None)
        }
        Some(ManagedIdentityFault::Expiry {
            expires_in,
            expires_on,
        }) => shared.answer(&method, &uri, &headers, Some((expires_in, expires_on))),
        Some(ManagedIdentityFault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(
                status,
                "An unexpected error occured while fetching the AAD Token.",
            )
        }
        Some(ManagedIdentityFault::Unavailable { retry_after }) => {
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The managed identity endpoint is not available yet.",
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        None => shared.answer(&method, &uri, &headers, None),
    };
    let record = RequestRecord::new(
        &method,
        uri.path().to_owned(),
        uri.query(),
        &headers,
        response.status().as_u16(),
    );
    lock(&shared.log).push(record);
    response
}

impl Shared {
    /// The token answer; `expiry` replaces its expiry fields (`expires_in`, `expires_on`).
    fn answer(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        expiry: Option<(Option<i64>, Option<i64>)>,
    ) -> Response {
        if uri.path().trim_end_matches('/') != TOKEN_PATH {
            return error(StatusCode::NOT_FOUND, "Not found.");
        }
        if method != Method::GET {
            return error(StatusCode::METHOD_NOT_ALLOWED, "Only GET is supported.");
        }
        let presented = headers
            .get("x-identity-header")
            .and_then(|v| v.to_str().ok());
        if presented != Some(self.secret.as_str()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
            );
        }
        let query: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let param = |name: &str| {
            query
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        match param("api-version") {
            Some(API_VERSION) => {}
            Some(other) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("The api-version '{other}' is not supported: use '{API_VERSION}'."),
                )
            }
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Required query variable 'api-version' is missing.",
                )
            }
        }
        let Some(resource) = param("resource") else {
            return error(
                StatusCode::BAD_REQUEST,
                "Required query variable 'resource' is missing.",
            );
        };
        let Some(identity) = self.select(&param) else {
            return error(
                StatusCode::BAD_REQUEST,
                "Unable to load the proper Managed Identity.",
            );
        };
        let now = unix_seconds(SystemTime::now());
        let lifetime = i64::try_from(self.lifetime_secs.load(Ordering::SeqCst)).unwrap_or(86_400);
        let access_token = token::sign(
            &self.entra,
            &identity,
            &self.tenant,
            resource,
            now,
            lifetime,
        );
        let mut body = json!({
            "access_token": access_token,
            "expires_on": now.saturating_add(lifetime).to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        });
        if let Some((expires_in, expires_on)) = expiry {
            let fields = body.as_object_mut().expect("a JSON object");
            fields.remove("expires_on");
            if let Some(v) = expires_in {
                fields.insert("expires_in".into(), v.into());
            }
            if let Some(v) = expires_on {
                fields.insert("expires_on".into(), v.into());
            }
        }
        json_response(StatusCode::OK, &body)
    }

    /// The identity a request selects: at most one of `client_id`, `object_id` (or
    /// `principal_id`), `mi_res_id`; none means the system-assigned one, if enabled.
    fn select<'a>(&self, param: &impl Fn(&str) -> Option<&'a str>) -> Option<ManagedIdentity> {
        let selectors = [
            ("client_id", param("client_id")),
            (
                "object_id",
                param("object_id").or_else(|| param("principal_id")),
            ),
            ("mi_res_id", param("mi_res_id")),
        ];
        let mut given = selectors.iter().filter_map(|(n, v)| v.map(|v| (*n, v)));
        let identities = lock(&self.identities);
        let skip = usize::from(!self.system_assigned.load(Ordering::SeqCst));
        let mut enabled = identities.iter().skip(skip);
        let Some((name, value)) = given.next() else {
            // No selector: the system-assigned identity, if the app has it (with only
            // user-assigned ones, the platform cannot tell which one is meant).
            return if skip == 0 {
                enabled.next().cloned()
            } else {
                None
            };
        };
        if given.next().is_some() {
            return None;
        }
        enabled
            .find(|i| {
                let field = match name {
                    "client_id" => &i.client_id,
                    "object_id" => &i.principal_id,
                    _ => &i.resource_id,
                };
                field.eq_ignore_ascii_case(value)
            })
            .cloned()
    }
}

/// The platform's error JSON: `{"statusCode","message","correlationId"}`.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "statusCode": status.as_u16(),
        "message": message,
        "correlationId": random_guid(),
    });
    json_response(status, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    response
}
