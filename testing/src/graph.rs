//! A Microsoft Graph stand-in for offline tests: [`GraphStandIn`].
//!
//! It shares no code with the rest of the crate.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Graph's resource URI, one of the two audiences it accepts.
const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";
/// Graph's application id, the other audience.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// Where Graph's challenges send the client to sign in.
const AUTHORIZATION_URI: &str = "https://login.microsoftonline.com/common/oauth2/authorize";
/// Graph's JSON content type.
const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
const DEFAULT_COLLECTION_SIZE: usize = 45;
const DEFAULT_PAGE_SIZE: usize = 10;
const MAX_PAGE_SIZE: usize = 999;
const MAX_BATCH_ITEMS: usize = 20;
/// `Retry-After` of throttled `$batch` items, in seconds.
const BATCH_ITEM_RETRY_AFTER: u64 = 1;
/// Clock skew Graph tolerates on `exp` and `nbf`.
const CLOCK_SKEW_SECS: u64 = 300;

/// Delegated scopes that may read the signed-in user.
const READ_SCOPES: &[&str] = &[
    "User.Read",
    "User.ReadWrite",
    "User.ReadBasic.All",
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
/// Delegated scopes that may update the signed-in user.
const WRITE_SCOPES: &[&str] = &["User.ReadWrite", "User.ReadWrite.All"];
/// Application roles that may list users.
const READ_ROLES: &[&str] = &[
    "User.Read.All",
    "User.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];

const JOB_TITLES: &[&str] = &[
    "Software Engineer",
    "Product Manager",
    "Designer",
    "Marketing Manager",
    "Retail Manager",
];

/// Handle to a running Microsoft Graph stand-in on `127.0.0.1`.
///
/// It serves a small part of `https://graph.microsoft.com` and checks bearer tokens the
/// way Graph does: an RS256 JWT whose signature verifies against a key set (fetched from
/// the `jwks_url` given to [`start`](Self::start), cached, fetched again for an unknown
/// `kid`), with `aud` = `https://graph.microsoft.com` or
/// `00000003-0000-0000-c000-000000000000`, within its lifetime (5 minutes of clock skew),
/// and whose `scp` (delegated) or `roles` (app-only) grant the route.
///
/// | route | needs | answer |
/// |---|---|---|
/// | `GET /v1.0/me` | `User.Read` (or a broader user scope) | the user of the token's claims |
/// | `PATCH /v1.0/me` | `User.ReadWrite` | `204 No Content` |
/// | `GET /v1.0/users` | `User.Read` (app-only: role `User.Read.All`) | a paged collection of users |
/// | `GET /v1.0/users/{id}` | as `/users` | one of them, or 404 `Request_ResourceNotFound` |
/// | `GET /v1.0/me/messages` | `User.Read` | a paged collection of messages |
/// | `POST /v1.0/$batch` | the items' | up to 20 items, answered in reverse order |
///
/// Collections hold 45 items ([`set_collection_size`](Self::set_collection_size)),
/// `$top` items per page (default 10, at most 999), each page but the last with an
/// absolute `@odata.nextLink` carrying an opaque `$skiptoken`.
///
/// Failures have Graph's shape: `{"error":{"code","message","innerError":{"date",
/// "request-id","client-request-id"}}}`, with `request-id` and `client-request-id`
/// headers. A missing or invalid token is `401 InvalidAuthenticationToken` with
/// `WWW-Authenticate: Bearer realm="", authorization_uri="…", client_id="00000003-…"`;
/// a token without the route's permission is `403 Authorization_RequestDenied`.
///
/// Faults are injected per request, before the token is looked at, in this order:
/// throttling ([`inject_throttle`](Self::inject_throttle)), error statuses
/// ([`inject_status`](Self::inject_status)), claims challenges
/// ([`inject_claims_challenge`](Self::inject_claims_challenge)); and per
/// `$batch` item ([`throttle_batch_items`](Self::throttle_batch_items)).
///
/// With the crate's Entra stand-in, the key set is at
/// `{authority_host}/{tenant}/discovery/v2.0/keys` and Graph tokens are minted with
/// `.audience("https://graph.microsoft.com").scopes(&["User.Read"])`.
///
/// ```no_run
/// use axum_obo_testing::GraphStandIn;
///
/// # async fn run(jwks_url: &str) {
/// let graph = GraphStandIn::start(jwks_url).await;
/// // Point the code under test at `graph.url()` (the v1.0 base is `{url}/v1.0`).
/// graph.inject_throttle(1, Some(1));
/// graph.set_collection_size(100);
/// // … run the code under test …
/// for (method, path, status) in graph.request_log() {
///     println!("{method} {path} -> {status}");
/// }
/// # }
/// ```
///
/// Cheap to clone (an `Arc` inside). The server stops when the last handle is dropped or
/// its Tokio runtime shuts down. Query it with an async client (or from another thread),
/// never with a blocking client on the same current-thread runtime.
#[derive(Clone)]
pub struct GraphStandIn {
    shared: Arc<Shared>,
    /// Dropping the last clone of the sender stops the server.
    _shutdown: Arc<oneshot::Sender<()>>,
}

impl fmt::Debug for GraphStandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphStandIn")
            .field("url", &self.shared.url)
            .field("jwks_url", &self.shared.jwks_url)
            .finish_non_exhaustive()
    }
}

impl GraphStandIn {
    /// Binds `127.0.0.1:0` and starts serving on the current Tokio runtime; tokens are
    /// checked against the key set at `jwks_url` (fetched on first use).
    ///
    /// # Panics
    /// If the loopback socket cannot be bound.
    pub async fn start(jwks_url: &str) -> GraphStandIn {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("binding 127.0.0.1:0 for the Graph stand-in");
        let addr = listener
            .local_addr()
            .expect("a bound listener has a local address");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client for the Graph stand-in's key-set fetches");
        let shared = Arc::new(Shared {
            addr,
            url: format!("http://{addr}"),
            jwks_url: jwks_url.to_owned(),
            http,
            keys: RwLock::new(HashMap::new()),
            jwks_fetches: AtomicUsize::new(0),
            faults: Mutex::new(Faults::default()),
            requests: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            collection_size: AtomicUsize::new(DEFAULT_COLLECTION_SIZE),
        });
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // An error means the last handle was dropped: stop too.
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = result {
                tracing::warn!(%addr, %error, "Graph stand-in server failed");
            }
        });
        tracing::debug!(%addr, "Graph stand-in started");
        GraphStandIn {
            shared,
            _shutdown: Arc::new(shutdown),
        }
    }

    /// `http://127.0.0.1:PORT`, the stand-in's Graph URL (the v1.0 base is `{url}/v1.0`).
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// The socket address the stand-in listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Sets how many items `/users` and `/me/messages` hold (default 45).
    pub fn set_collection_size(&self, items: usize) {
        self.shared.collection_size.store(items, Ordering::SeqCst);
    }

    /// The id of the `index`-th user of `/users`.
    pub fn user_id(&self, index: usize) -> String {
        user_id(index)
    }

    /// The next `times` requests are answered `429 TooManyRequests`, with
    /// `Retry-After: {retry_after}` when given.
    pub fn inject_throttle(&self, times: usize, retry_after: Option<u64>) {
        let mut f = self.shared.faults();
        f.throttle = times;
        f.throttle_retry_after = retry_after;
    }

    /// The next `times` requests are answered `status` (e.g. 500, 503, 504) with
    /// Graph's error JSON; a number that is not an HTTP status means 500.
    pub fn inject_status(&self, times: usize, status: u16) {
        let mut f = self.shared.faults();
        f.status = times;
        f.status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// The next `times` requests are answered with a Continuous Access Evaluation claims
    /// challenge: 401 with `WWW-Authenticate: Bearer realm="", authorization_uri="…",
    /// client_id="…", error="insufficient_claims", claims="<standard base64 of claims_json>"`.
    pub fn inject_claims_challenge(&self, times: usize, claims_json: &str) {
        let mut f = self.shared.faults();
        f.claims = times;
        f.claims_json = claims_json.to_owned();
    }

    /// The next `items` `$batch` items are answered 429 inside the batch (with
    /// `Retry-After: 1`), while the batch itself succeeds.
    pub fn throttle_batch_items(&self, items: usize) {
        self.shared.faults().batch_items = items;
    }

    /// Requests received (batch items not counted separately), failed ones included.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// `(method, path, status)` of each answered request, in order.
    pub fn request_log(&self) -> Vec<(String, String, u16)> {
        lock(&self.shared.log).clone()
    }

    /// Key-set fetches made so far.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }
}

/// State shared by the handle and the server.
struct Shared {
    addr: SocketAddr,
    url: String,
    jwks_url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    jwks_fetches: AtomicUsize,
    faults: Mutex<Faults>,
    requests: AtomicUsize,
    log: Mutex<Vec<(String, String, u16)>>,
    collection_size: AtomicUsize,
}

#[derive(Default)]
struct Faults {
    throttle: usize,
    throttle_retry_after: Option<u64>,
    status: usize,
    status_code: StatusCode,
    claims: usize,
    claims_json: String,
    batch_items: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Decrements `n` if positive; whether it was.
fn take(n: &mut usize) -> bool {
    let hit = *n > 0;
    *n = n.saturating_sub(1);
    hit
}

/// The ids Graph puts in headers and error bodies.
struct Ids {
    request_id: String,
    client_request_id: String,
}

impl Ids {
    fn new(headers: &HeaderMap) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map_or_else(|| request_id.clone(), str::to_owned);
        Ids {
            request_id,
            client_request_id,
        }
    }
}

/// An answer before it is rendered: as an HTTP response or as a `$batch` item.
struct Reply {
    status: StatusCode,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    fn error(status: StatusCode, code: &str, message: &str, ids: &Ids) -> Self {
        Reply::json(
            status,
            json!({"error": {
                "code": code,
                "message": message,
                "innerError": {
                    "date": iso_now(),
                    "request-id": ids.request_id,
                    "client-request-id": ids.client_request_id,
                }
            }}),
        )
    }

    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    fn bad_request(message: &str, ids: &Ids) -> Self {
        Reply::error(StatusCode::BAD_REQUEST, "BadRequest", message, ids)
    }

    fn unauthorized(message: &str, ids: &Ids) -> Self {
        Reply::error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
            ids,
        )
        .header(
            "www-authenticate",
            format!(
                "Bearer realm=\"\", authorization_uri=\"{AUTHORIZATION_URI}\", client_id=\"{GRAPH_APP_ID}\""
            ),
        )
    }

    fn forbidden(ids: &Ids) -> Self {
        Reply::error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
            ids,
        )
    }

    fn throttled(retry_after: Option<u64>, ids: &Ids) -> Self {
        let reply = Reply::error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests, retry after the indicated time.",
            ids,
        );
        match retry_after {
            Some(secs) => reply.header("retry-after", secs.to_string()),
            None => reply,
        }
    }

    fn into_response(self, ids: &Ids) -> Response {
        let mut response = match self.body {
            Some(body) => {
                let mut r = (self.status, body.to_string()).into_response();
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
                r
            }
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        for (name, value) in [
            ("request-id", &ids.request_id),
            ("client-request-id", &ids.client_request_id),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), v);
            }
        }
        response
    }

    /// The answer as a `$batch` response item.
    fn into_batch_item(self, id: &str) -> Value {
        let mut headers = Map::new();
        for (name, value) in self.headers {
            // Graph writes item headers in their usual casing.
            let name = match name {
                "retry-after" => "Retry-After".to_owned(),
                "www-authenticate" => "WWW-Authenticate".to_owned(),
                other => other.to_owned(),
            };
            headers.insert(name, Value::String(value));
        }
        let mut item = json!({ "id": id, "status": self.status.as_u16() });
        if let Some(body) = self.body {
            headers.insert("Content-Type".into(), Value::String(ODATA_JSON.into()));
            item["body"] = body;
        }
        item["headers"] = Value::Object(headers);
        item
    }
}

/// Every request: count, faults, token, route, log.
async fn handle(
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
    lock(&shared.log).push((method.to_string(), path, reply.status.as_u16()));
    reply.into_response(&ids)
}

/// `%24` → `$` (`$batch` may arrive percent-encoded).
fn decode_dollar(path: &str) -> String {
    path.replace("%24", "$")
}

/// The verified claims of a token.
type Claims = Map<String, Value>;

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
        if let Some(fault) = self.fault(ids) {
            return fault;
        }
        let claims = match self.authenticate(headers).await {
            Ok(claims) => claims,
            Err(message) => return Reply::unauthorized(message, ids),
        };
        if path.trim_end_matches('/') == "/v1.0/$batch" {
            if method != Method::POST {
                return method_not_allowed(ids);
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

    fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    /// The injected fault for this request, if any (consumes it).
    fn fault(&self, ids: &Ids) -> Option<Reply> {
        let mut f = self.faults();
        if take(&mut f.throttle) {
            return Some(Reply::throttled(f.throttle_retry_after, ids));
        }
        if take(&mut f.status) {
            let status = f.status_code;
            let (code, message) = match status.as_u16() {
                503 => (
                    "serviceNotAvailable",
                    "The service is temporarily unavailable. Please try again later.",
                ),
                504 => ("UnknownError", "The gateway timed out."),
                429 => ("TooManyRequests", "Too many requests."),
                _ => ("generalException", "General exception while processing."),
            };
            return Some(Reply::error(status, code, message, ids));
        }
        if take(&mut f.claims) {
            let claims = base64::engine::general_purpose::STANDARD.encode(&f.claims_json);
            return Some(
                Reply::error(
                    StatusCode::UNAUTHORIZED,
                    "InvalidAuthenticationToken",
                    "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp",
                    ids,
                )
                .header(
                    "www-authenticate",
                    format!(
                        "Bearer realm=\"\", authorization_uri=\"{AUTHORIZATION_URI}\", client_id=\"{GRAPH_APP_ID}\", error=\"insufficient_claims\", claims=\"{claims}\""
                    ),
                ),
            );
        }
        None
    }

    /// Verifies the bearer token like Graph; the error is Graph's message.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, &'static str> {
        const EMPTY: &str = "Access token is empty.";
        let value = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(EMPTY)?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(EMPTY),
        };
        if token.is_empty() {
            return Err(EMPTY);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| "Invalid JWT token. Token format not valid.")?;
        if header.alg != Algorithm::RS256 {
            return Err("Access token validation failure. Invalid signature algorithm.");
        }
        let kid = header
            .kid
            .ok_or("Access token validation failure. The token has no key identifier.")?;
        let key = self
            .key(&kid)
            .await
            .ok_or("Access token validation failure. Signature key not found.")?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[GRAPH_RESOURCE, GRAPH_APP_ID]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => "Lifetime validation failed, the token is expired.",
            ErrorKind::ImmatureSignature => {
                "Lifetime validation failed, the token is not yet valid."
            }
            ErrorKind::InvalidAudience => "Access token validation failure. Invalid audience.",
            ErrorKind::InvalidSignature => "Access token validation failure. Invalid signature.",
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                "Access token validation failure. A required claim is missing or invalid."
            }
            _ => "Invalid JWT token.",
        })?;
        Ok(data.claims)
    }

    /// The key `kid`, fetching the key set again if it is not known yet.
    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let cached = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned();
        if cached.is_some() {
            return cached;
        }
        self.refresh_keys().await;
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    /// Fetches the key set; keeps the previous one if the fetch fails.
    async fn refresh_keys(&self) {
        self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        let fetched = async {
            let response = self.http.get(&self.jwks_url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.json::<Value>().await.ok()
        };
        let Some(document) = fetched.await else {
            tracing::warn!(jwks_url = %self.jwks_url, "Graph stand-in could not fetch the key set");
            return;
        };
        let mut keys = HashMap::new();
        for jwk in document
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |name: &str| jwk.get(name).and_then(Value::as_str);
            let (Some("RSA"), Some(kid), Some(n), Some(e)) =
                (text("kty"), text("kid"), text("n"), text("e"))
            else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_rsa_components(n, e) {
                keys.insert(kid.to_owned(), key);
            }
        }
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }

    /// The Graph routes (also the target of `$batch` items).
    fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        claims: &Claims,
        body: Option<&Value>,
        ids: &Ids,
    ) -> Reply {
        let path = path.trim_end_matches('/');
        let Some(rest) = path.strip_prefix("/v1.0") else {
            let version = path.trim_start_matches('/').split('/').next().unwrap_or("");
            return Reply::bad_request(&format!("Invalid version: {version}"), ids);
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            ["me"] if method == Method::GET => {
                if let Err(reply) = delegated(claims, READ_SCOPES, ids) {
                    return reply;
                }
                Reply::json(StatusCode::OK, self.me(claims))
            }
            ["me"] if method == Method::PATCH => {
                if let Err(reply) = delegated(claims, WRITE_SCOPES, ids) {
                    return reply;
                }
                if !body.is_some_and(Value::is_object) {
                    return Reply::bad_request("Empty Payload. JSON content expected.", ids);
                }
                Reply {
                    status: StatusCode::NO_CONTENT,
                    headers: Vec::new(),
                    body: None,
                }
            }
            ["me", "messages"] if method == Method::GET => {
                if let Err(reply) = delegated(claims, READ_SCOPES, ids) {
                    return reply;
                }
                self.collection(Collection::Messages, query, ids)
            }
            ["users"] if method == Method::GET => {
                if let Err(reply) = users_permission(claims, ids) {
                    return reply;
                }
                self.collection(Collection::Users, query, ids)
            }
            ["users", id] if method == Method::GET => {
                if let Err(reply) = users_permission(claims, ids) {
                    return reply;
                }
                let size = self.collection_size.load(Ordering::SeqCst);
                match (0..size).find(|&i| user_id(i).eq_ignore_ascii_case(id)) {
                    Some(i) => {
                        let mut user = user_item(i);
                        user["@odata.context"] =
                            Value::String(format!("{}/v1.0/$metadata#users/$entity", self.url));
                        Reply::json(StatusCode::OK, user)
                    }
                    None => Reply::error(
                        StatusCode::NOT_FOUND,
                        "Request_ResourceNotFound",
                        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
                        ids,
                    ),
                }
            }
            ["me"] | ["me", "messages"] | ["users"] | ["users", _] => method_not_allowed(ids),
            [] => Reply::bad_request("Invalid request.", ids),
            [first, ..] => Reply::bad_request(
                &format!("Resource not found for the segment '{first}'."),
                ids,
            ),
        }
    }

    /// The signed-in user, from the token's claims; the same for the same `oid`.
    fn me(&self, claims: &Claims) -> Value {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let oid = text("oid")
            .or_else(|| text("sub"))
            .unwrap_or_else(|| "00000000-0000-0000-0000-000000000000".into());
        let hash = fnv1a(oid.as_bytes());
        let upn = text("upn")
            .or_else(|| text("unique_name"))
            .or_else(|| text("preferred_username"))
            .unwrap_or_else(|| format!("user-{:08x}@contoso.test", hash as u32));
        let name = text("name").unwrap_or_else(|| format!("User {:08x}", hash as u32));
        let given =
            text("given_name").or_else(|| name.split_whitespace().next().map(str::to_owned));
        let surname = text("family_name").or_else(|| {
            let mut words = name.split_whitespace();
            words.next();
            let rest: Vec<&str> = words.collect();
            (!rest.is_empty()).then(|| rest.join(" "))
        });
        let mail = text("email").unwrap_or_else(|| upn.clone());
        json!({
            "@odata.context": format!("{}/v1.0/$metadata#users/$entity", self.url),
            "businessPhones": [format!("+1 425 555 {:04}", hash % 10_000)],
            "displayName": name,
            "givenName": given,
            "jobTitle": JOB_TITLES[(hash % JOB_TITLES.len() as u64) as usize],
            "mail": mail,
            "mobilePhone": null,
            "officeLocation": format!("{}/{}", hash % 40 + 1, hash % 2000 + 1000),
            "preferredLanguage": "en-US",
            "surname": surname,
            "userPrincipalName": upn,
            "id": oid,
        })
    }

    /// One page of a collection.
    fn collection(&self, collection: Collection, query: Option<&str>, ids: &Ids) -> Reply {
        let params: HashMap<String, String> = query
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let top = match params.get("$top") {
            None => DEFAULT_PAGE_SIZE,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                _ => {
                    return Reply::bad_request(
                        &format!("Invalid page size specified: '{v}'. Must be between 1 and {MAX_PAGE_SIZE} inclusive."),
                        ids,
                    )
                }
            },
        };
        let skip = match params.get("$skiptoken") {
            None => 0,
            Some(token) => match decode_skiptoken(token) {
                Some(n) => n,
                None => {
                    return Reply::error(
                        StatusCode::BAD_REQUEST,
                        "Directory_ExpiredPageToken",
                        "The specified page token value has expired and can no longer be included in your request.",
                        ids,
                    )
                }
            },
        };
        let total = self.collection_size.load(Ordering::SeqCst);
        let end = skip.saturating_add(top).min(total);
        let items: Vec<Value> = (skip.min(end)..end).map(|i| collection.item(i)).collect();
        let (path, context) = collection.names();
        let mut body = json!({
            "@odata.context": format!("{}/v1.0/$metadata#{context}", self.url),
            "value": items,
        });
        if end < total {
            body["@odata.nextLink"] = Value::String(format!(
                "{}/v1.0/{path}?$top={top}&$skiptoken={}",
                self.url,
                encode_skiptoken(end)
            ));
        }
        Reply::json(StatusCode::OK, body)
    }

    /// `POST /v1.0/$batch`.
    fn batch(&self, claims: &Claims, body: &[u8], ids: &Ids) -> Reply {
        let Some(requests) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("requests").and_then(Value::as_array).cloned())
        else {
            return Reply::bad_request("Invalid batch payload format.", ids);
        };
        if requests.is_empty() {
            return Reply::bad_request(
                "Invalid batch payload format. The batch has no requests.",
                ids,
            );
        }
        if requests.len() > MAX_BATCH_ITEMS {
            return Reply::bad_request(
                &format!("Invalid batch payload format. The batch exceeds the limit of {MAX_BATCH_ITEMS} requests."),
                ids,
            );
        }
        let mut seen = HashSet::new();
        for request in &requests {
            let id = request.get("id").and_then(Value::as_str).unwrap_or("");
            let method = request.get("method").and_then(Value::as_str).unwrap_or("");
            let url = request.get("url").and_then(Value::as_str).unwrap_or("");
            if id.is_empty() || method.is_empty() || url.is_empty() {
                return Reply::bad_request(
                    "Invalid batch payload format. Each request needs an id, a method and a url.",
                    ids,
                );
            }
            if !seen.insert(id) {
                return Reply::bad_request(
                    &format!(
                        "Invalid batch payload format. Request id '{id}' is used more than once."
                    ),
                    ids,
                );
            }
        }
        let mut responses: Vec<Value> = requests
            .iter()
            .map(|request| {
                let text = |name: &str| request.get(name).and_then(Value::as_str).unwrap_or("");
                let id = text("id");
                let item_ids = Ids {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    client_request_id: ids.client_request_id.clone(),
                };
                self.batch_item(
                    claims,
                    text("method"),
                    text("url"),
                    request.get("body"),
                    &item_ids,
                )
                .into_batch_item(id)
            })
            .collect();
        // Graph does not promise any order; make clients map answers by id.
        responses.reverse();
        Reply::json(StatusCode::OK, json!({ "responses": responses }))
    }

    fn batch_item(
        &self,
        claims: &Claims,
        method: &str,
        url: &str,
        body: Option<&Value>,
        ids: &Ids,
    ) -> Reply {
        if take(&mut self.faults().batch_items) {
            return Reply::throttled(Some(BATCH_ITEM_RETRY_AFTER), ids);
        }
        if url.contains("://") {
            return Reply::bad_request("Batch request URLs must be relative.", ids);
        }
        let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
            return Reply::bad_request("Invalid HTTP method.", ids);
        };
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        };
        let path = format!("/v1.0/{}", decode_dollar(path).trim_start_matches('/'));
        if path.trim_end_matches('/') == "/v1.0/$batch" {
            return Reply::bad_request("Nested batch requests are not supported.", ids);
        }
        self.route(
            &method,
            &path,
            query,
            claims,
            body.filter(|b| !b.is_null()),
            ids,
        )
    }
}

fn method_not_allowed(ids: &Ids) -> Reply {
    Reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
        ids,
    )
}

/// Whether the token is delegated (`scp`) and grants one of `scopes`.
fn delegated(claims: &Claims, scopes: &[&str], ids: &Ids) -> Result<(), Reply> {
    match claims.get("scp").and_then(Value::as_str) {
        Some(scp) => {
            if scp.split_whitespace().any(|s| scopes.contains(&s)) {
                Ok(())
            } else {
                Err(Reply::forbidden(ids))
            }
        }
        None => Err(Reply::bad_request(
            "/me request is only valid with delegated authentication flow.",
            ids,
        )),
    }
}

/// Whether the token may list users: a delegated read scope, or an application role.
fn users_permission(claims: &Claims, ids: &Ids) -> Result<(), Reply> {
    if claims.get("scp").and_then(Value::as_str).is_some() {
        return delegated(claims, READ_SCOPES, ids);
    }
    let roles = claims.get("roles").and_then(Value::as_array);
    let granted = roles
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| READ_ROLES.contains(&r));
    if granted {
        Ok(())
    } else {
        Err(Reply::forbidden(ids))
    }
}

#[derive(Clone, Copy)]
enum Collection {
    Users,
    Messages,
}

impl Collection {
    /// The collection's path under `/v1.0` and its `@odata.context` fragment.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Collection::Users => ("users", "users"),
            Collection::Messages => ("me/messages", "users('me')/messages"),
        }
    }

    fn item(self, i: usize) -> Value {
        match self {
            Collection::Users => user_item(i),
            Collection::Messages => json!({
                "id": format!("AAMkAGI2TG93AAA{i:06}"),
                "subject": format!("Message {i}"),
                "isRead": i % 3 == 0,
                "importance": "normal",
                "receivedDateTime": format!("2024-01-{:02}T{:02}:{:02}:00Z", i / 1440 % 28 + 1, i / 60 % 24, i % 60),
            }),
        }
    }
}

/// The id of the `i`-th user of `/users`.
fn user_id(i: usize) -> String {
    let i = i as u64;
    let h = fnv1a(&i.to_le_bytes());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h as u32,
        (h >> 32) as u16,
        (h >> 48) & 0xfff,
        (h >> 20) & 0xfff,
        i & 0xffff_ffff_ffff
    )
}

fn user_item(i: usize) -> Value {
    json!({
        "businessPhones": [],
        "displayName": format!("Test User {i}"),
        "givenName": "Test",
        "jobTitle": JOB_TITLES[i % JOB_TITLES.len()],
        "mail": format!("user{i}@contoso.test"),
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": "en-US",
        "surname": format!("User {i}"),
        "userPrincipalName": format!("user{i}@contoso.test"),
        "id": user_id(i),
    })
}

fn encode_skiptoken(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("RFNwdAIAAQAAAA:{offset}"))
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("RFNwdAIAAQAAAA:")?.parse().ok()
}

/// 64-bit FNV-1a: a stable hash (unlike `DefaultHasher`, fixed across Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Now as Graph writes `innerError.date`: `2024-05-01T12:34:56`.
fn iso_now() -> String {
    super::ids::CivilTime::from_unix(super::ids::unix_seconds(SystemTime::now())).graph_date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_round_trip() {
        for n in [0, 10, 44, 1_000_000] {
            assert_eq!(decode_skiptoken(&encode_skiptoken(n)), Some(n));
        }
        assert_eq!(decode_skiptoken("garbage!"), None);
        assert_eq!(decode_skiptoken("Zm9vOjE"), None);
    }

    #[test]
    fn user_ids_are_stable_and_distinct() {
        let ids: HashSet<String> = (0..1000).map(user_id).collect();
        assert_eq!(ids.len(), 1000);
        assert_eq!(user_id(7), user_id(7));
        assert_eq!(user_id(7).len(), 36);
    }

    #[test]
    fn dates_look_like_graphs() {
        let d = iso_now();
        assert_eq!(d.len(), 19, "{d}");
        assert!(d.starts_with("20"), "{d}");
        assert_eq!(&d[10..11], "T");
    }
}
