//! [`DownstreamClient`]: bearer-authenticated JSON calls to one API, bounded retries
//! of throttling, and the same-origin rule that keeps the token at that API.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{ACCEPT, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;
use url::Url;

use super::error::{from_response, DownstreamError};
use super::renew::Renew;
use crate::http::{
    check_base_url, describe, read_capped, retry_after, with_retries, Attempts, BaseUrlProblem,
    BodyError, Verdict,
};
use crate::metrics;
use crate::secret::BearerToken;

/// The header that correlates a request with the API's logs (Graph echoes it).
pub(crate) const CLIENT_REQUEST_ID: &str = "client-request-id";

/// How long one attempt may take, unless [`DownstreamClient::with_timeout`] says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many pages one [`paged`](DownstreamClient::paged) stream follows, unless
/// [`DownstreamClient::with_max_pages`] says otherwise.
pub const DEFAULT_MAX_PAGES: usize = 1000;

/// The authority a relayed claims challenge names, unless
/// [`DownstreamClient::with_authority`] says otherwise: the public cloud's.
const PUBLIC_CLOUD_AUTHORITY: &str = "https://login.microsoftonline.com";

/// How throttled calls are retried.
///
/// A call answered 429, 503 or 504 is retried at most `max_retries` times, after the
/// API's `Retry-After` (seconds) or, without one, an exponential backoff (200 ms to 2 s,
/// with jitter). If `Retry-After` asks for longer than `max_wait`, or the wait would
/// take the call past `budget` (measured from its start, attempts included), the call
/// gives up at once with [`DownstreamError::Throttled`] carrying that `Retry-After`, so
/// your API can relay it. Other statuses, timeouts and connection errors are not retried.
///
/// ```
/// use std::time::Duration;
/// use axum_obo::downstream::RetryPolicy;
///
/// let patient = RetryPolicy { max_retries: 5, ..RetryPolicy::default() };
/// assert_eq!(patient.budget, Duration::from_secs(30));
/// assert_eq!(RetryPolicy::none().max_retries, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (default 3).
    pub max_retries: usize,
    /// The longest `Retry-After` that is waited out (default 10 s).
    pub max_wait: Duration,
    /// Total time of a call, waits and attempts included (default 30 s).
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            max_wait: Duration::from_secs(10),
            budget: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries (the budget still bounds each call).
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The attempts this policy allows, in the form the shared retry loop takes
    /// ([`crate::http::with_retries`]).
    pub(crate) fn attempts(&self) -> Attempts {
        Attempts {
            max_retries: self.max_retries,
            max_wait: self.max_wait,
            budget: self.budget,
        }
    }
}

/// A client for one downstream API, calling it with one bearer token.
///
/// Built from your shared `reqwest::Client` (keep one per process: it holds the
/// connection pools), a base URL and the token, e.g. the On-Behalf-Of token of
/// [`OboToken`](crate::OboToken). Cheap to clone.
///
/// - Paths are relative to the base (`"me"` and `"/me"` both give `{base}/me`), or
///   absolute URLs of the base's origin (scheme, host and port). Any other absolute
///   URL is refused with [`DownstreamError::ForeignUrl`] before anything is sent, so
///   the token never leaves the API it was issued for.
/// - Every request carries `Authorization: Bearer …`, `Accept: application/json` and a
///   fresh `client-request-id` (kept across retries of one call).
/// - Relative paths must stay under the base path: a path with a `.` or `..` segment
///   (also percent-encoded, `%2e%2e`) or a backslash is refused with
///   [`DownstreamError::InvalidRequest`], so `../tenant-b/x` cannot leave
///   `https://api.example.com/v2/tenant-a`. Absolute URLs of the base's origin are
///   accepted anywhere on it (the origin is what the token is for; Graph's
///   `@odata.nextLink`s are absolute).
/// - 429, 503 and 504 are retried as [`RetryPolicy`] says; errors are
///   [`DownstreamError`]s.
/// - Response bodies are read under a cap (16 MiB unless
///   [`with_max_body_bytes`](Self::with_max_body_bytes) says otherwise): reading stops
///   at the cap with [`DownstreamError::BodyTooLarge`].
///
/// ```no_run
/// use axum_obo::downstream::{DownstreamClient, DownstreamError};
/// use axum_obo::secret::BearerToken;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Task { id: String, title: String }
///
/// # async fn run(http: reqwest::Client, token: BearerToken) -> Result<(), DownstreamError> {
/// let api = DownstreamClient::new(http, "https://tasks.example.com/api", token)?;
/// let task: Task = api.get("tasks/42").await?;
/// let created: Task = api.post("tasks", &serde_json::json!({ "title": "write docs" })).await?;
/// api.delete(&format!("tasks/{}", created.id)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DownstreamClient {
    http: reqwest::Client,
    base: Url,
    token: BearerToken,
    policy: RetryPolicy,
    timeout: Duration,
    max_pages: usize,
    max_body_bytes: usize,
    authorization_uri: String,
    /// Answers claims challenges (set by `OboToken` with client capabilities).
    renew: Option<Arc<dyn Renew>>,
}

impl fmt::Debug for DownstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownstreamClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("max_pages", &self.max_pages)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("authorization_uri", &self.authorization_uri)
            .field("answers_claims_challenges", &self.renew.is_some())
            .finish_non_exhaustive()
    }
}

/// A response with a success status.
pub(crate) struct Answer {
    pub(crate) body: Vec<u8>,
}

/// One attempt's failure: final, or worth retrying.
enum Attempt {
    Final(DownstreamError),
    Transient { retry_after: Option<Duration> },
}

impl Attempt {
    fn verdict(&self) -> Verdict {
        match self {
            Attempt::Final(_) => Verdict::Final,
            Attempt::Transient { retry_after } => Verdict::Retry {
                retry_after: *retry_after,
            },
        }
    }
}

impl DownstreamClient {
    /// A client for the API at `base_url` (e.g. `https://graph.microsoft.com/v1.0`).
    ///
    /// The base must be `https`, or `http` on a loopback host (`127.0.0.0/8`, `::1`,
    /// `localhost`) for tests, without credentials, query or fragment; otherwise
    /// [`DownstreamError::InvalidRequest`].
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        token: BearerToken,
    ) -> Result<Self, DownstreamError> {
        let base = Url::parse(base_url.trim())
            .map_err(|e| DownstreamError::InvalidRequest(format!("invalid base URL: {e}")))?;
        check_base(&base)?;
        Ok(Self {
            http,
            base,
            token,
            policy: RetryPolicy::default(),
            timeout: DEFAULT_TIMEOUT,
            max_pages: DEFAULT_MAX_PAGES,
            max_body_bytes: crate::http::MAX_DOWNSTREAM_BYTES,
            authorization_uri: authorize_endpoint(PUBLIC_CLOUD_AUTHORITY),
            renew: None,
        })
    }

    /// Sets the Entra authority host (e.g. `https://login.microsoftonline.us`) that a
    /// relayed claims challenge sends the caller to:
    /// [`DownstreamError::ClaimsChallenge`] carries `{authority_host}/common/oauth2/authorize`.
    /// Default: the public cloud, `https://login.microsoftonline.com`. Clients made by
    /// [`OboToken`](crate::OboToken) use the configured authority.
    #[must_use]
    pub fn with_authority(mut self, authority_host: &str) -> Self {
        self.authorization_uri = authorize_endpoint(authority_host);
        self
    }

    /// This client with another token (same base, policy and limits).
    pub(crate) fn with_token(mut self, token: BearerToken) -> Self {
        self.token = token;
        self
    }

    /// This client answering claims challenges with `renew` (see [`Renew`]).
    pub(crate) fn with_renewal(mut self, renew: Arc<dyn Renew>) -> Self {
        self.renew = Some(renew);
        self
    }

    /// Sets how many pages one [`paged`](Self::paged) stream (or
    /// [`collect_all`](Self::collect_all)) follows before it ends with
    /// [`DownstreamError::TooManyPages`] (default [`DEFAULT_MAX_PAGES`], 1000; at
    /// least 1). Each page is one request carrying the token.
    #[must_use]
    pub fn with_max_pages(mut self, max_pages: usize) -> Self {
        self.max_pages = max_pages.max(1);
        self
    }

    /// Sets the largest response body read, in bytes (default 16 MiB). A larger body
    /// (announced or streamed) fails the call with [`DownstreamError::BodyTooLarge`]
    /// as soon as the cap is passed.
    #[must_use]
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// How many pages a [`paged`](Self::paged) stream follows.
    pub fn max_pages(&self) -> usize {
        self.max_pages
    }

    /// Sets how throttled calls are retried.
    #[must_use]
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets how long one attempt (request and response body) may take (default 30 s;
    /// never more than what is left of the retry budget). Then the call fails with
    /// [`DownstreamError::Timeout`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }

    /// The URL a path resolves to: relative to the base (and under its path), or an
    /// absolute URL of the base's origin ([`DownstreamError::ForeignUrl`] otherwise).
    pub fn url(&self, path: &str) -> Result<Url, DownstreamError> {
        resolve(&self.base, path)
    }

    /// A request with the bearer token, `Accept` and `client-request-id` set, for
    /// anything the other methods do not cover (no retries).
    pub fn request(
        &self,
        method: Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, DownstreamError> {
        let url = self.url(path)?;
        Ok(self.authorized(&self.token, method, url, &new_request_id()))
    }

    /// `GET path`, decoding the JSON body as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, DownstreamError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// `GET path` as a JSON value.
    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, DownstreamError> {
        self.get(path).await
    }

    /// `POST path` with a JSON body, decoding the answer as `T`.
    ///
    /// An empty answer (`204 No Content`) decodes as JSON `null`: use `()`,
    /// `Option<_>` or [`serde::de::IgnoredAny`] for `T` when the API may send nothing.
    pub async fn post<B, T>(&self, path: &str, body: &B) -> Result<T, DownstreamError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PATCH path` with a JSON body (see [`post`](Self::post) for empty answers).
    pub async fn patch<B, T>(&self, path: &str, body: &B) -> Result<T, DownstreamError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// `PUT path` with a JSON body (see [`post`](Self::post) for empty answers).
    pub async fn put<B, T>(&self, path: &str, body: &B) -> Result<T, DownstreamError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`; any answer body is ignored.
    pub async fn delete(&self, path: &str) -> Result<(), DownstreamError> {
        self.call::<(), IgnoredAny>(Method::DELETE, path, None)
            .await
            .map(|_| ())
    }

    async fn call<B, T>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, DownstreamError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let url = self.url(path)?;
        let body = body.map(serde_json::to_vec).transpose().map_err(|e| {
            DownstreamError::InvalidRequest(format!("the body cannot be serialized: {e}"))
        })?;
        let answer = self
            .execute(method, &url, body.as_deref(), Instant::now())
            .await?;
        decode(&answer.body)
    }

    /// `GET url` (already resolved), decoding the JSON body as `T`.
    pub(crate) async fn get_url<T: DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<T, DownstreamError> {
        let answer = self.execute(Method::GET, url, None, Instant::now()).await?;
        decode(&answer.body)
    }

    /// Sends `method url` with an optional JSON body, retrying throttling within the
    /// policy's budget counted from `started`.
    ///
    /// A claims challenge (401 `insufficient_claims`) is answered when the client has
    /// a [`Renew`] hook: one new token, one retry of the call with it (its own
    /// throttling budget); whatever the retry answers is final, a second challenge
    /// included. Without a hook, or when the hook cannot answer, the challenge is
    /// relayed.
    pub(crate) async fn execute(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        started: Instant,
    ) -> Result<Answer, DownstreamError> {
        let result = self
            .execute_with(&self.token, &method, url, body, started)
            .await;
        let (Some(renew), Err(DownstreamError::ClaimsChallenge { claims, .. })) =
            (&self.renew, &result)
        else {
            return result;
        };
        let renewed = renew.renew(claims).await;
        metrics::cae_reexchange(matches!(renewed, Ok(Some(_))));
        match renewed {
            Ok(Some(token)) => {
                tracing::debug!(
                    "claims challenge answered with a new token; retrying the call once"
                );
                self.execute_with(&token, &method, url, body, Instant::now())
                    .await
            }
            Ok(None) => result,
            Err(e) => Err(e),
        }
    }

    /// [`execute`](Self::execute) with `token`, without answering claims challenges.
    async fn execute_with(
        &self,
        token: &BearerToken,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        started: Instant,
    ) -> Result<Answer, DownstreamError> {
        let request_id = new_request_id();
        let result = with_retries(
            self.policy.attempts(),
            started,
            || self.attempt(token, method, url, body, started, &request_id),
            Attempt::verdict,
            |wait| {
                metrics::downstream_retry();
                tracing::debug!(client_request_id = %request_id, ?wait, "downstream API busy; retrying")
            },
        )
        .await;
        match result {
            Ok(answer) => Ok(answer),
            Err(Attempt::Final(e)) => Err(e),
            Err(Attempt::Transient { retry_after }) => {
                tracing::warn!(client_request_id = %request_id, ?retry_after, "downstream API still throttling; giving up");
                Err(DownstreamError::Throttled { retry_after })
            }
        }
    }

    /// One request within what is left of the budget, and what its answer means.
    async fn attempt(
        &self,
        token: &BearerToken,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        started: Instant,
        request_id: &str,
    ) -> Result<Answer, Attempt> {
        let timeout = self
            .timeout
            .min(self.policy.budget.saturating_sub(started.elapsed()));
        let answer = self
            .send(token, method, url, body, timeout, request_id)
            .await;
        metrics::downstream_request(answer.as_ref().ok().map(|(status, ..)| *status));
        let (status, headers, body) = answer?;
        interpret(status, &headers, body, &self.authorization_uri, request_id)
    }

    /// Sends the request and reads the answer under the body cap, all within
    /// `timeout`; transport failures, timeouts and oversized bodies are final.
    async fn send(
        &self,
        token: &BearerToken,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        timeout: Duration,
        request_id: &str,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), Attempt> {
        let mut request = self.authorized(token, method.clone(), url.clone(), request_id);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let max_body_bytes = self.max_body_bytes;
        let exchange = async {
            let response = request.send().await.map_err(BodyError::Transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = read_capped(response, max_body_bytes).await?;
            Ok::<_, BodyError>((status, headers, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(BodyError::TooLarge)) => {
                tracing::warn!(client_request_id = %request_id, max_body_bytes, "downstream API answered a body over the cap");
                Err(Attempt::Final(DownstreamError::BodyTooLarge {
                    max_bytes: max_body_bytes,
                }))
            }
            Ok(Err(BodyError::Transport(e))) if !e.is_timeout() => {
                let e = describe(e);
                tracing::warn!(client_request_id = %request_id, error = %e, "downstream API unreachable");
                Err(Attempt::Final(DownstreamError::Transport(e)))
            }
            _ => {
                tracing::warn!(client_request_id = %request_id, ?timeout, "downstream API timed out");
                Err(Attempt::Final(DownstreamError::Timeout))
            }
        }
    }

    fn authorized(
        &self,
        token: &BearerToken,
        method: Method,
        url: Url,
        request_id: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .bearer_auth(token.expose())
            .header(CLIENT_REQUEST_ID, request_id)
            .header(ACCEPT, "application/json")
    }
}

/// What a downstream answer means, without I/O: the body of a success, a
/// retryable throttle (429, 503, 504, with its `Retry-After`), or the
/// [`DownstreamError`] its status, `WWW-Authenticate` and body call for.
/// `authorization_uri` is named by a relayed claims challenge.
fn interpret(
    status: StatusCode,
    headers: &HeaderMap,
    body: Vec<u8>,
    authorization_uri: &str,
    request_id: &str,
) -> Result<Answer, Attempt> {
    if status.is_success() {
        return Ok(Answer { body });
    }
    if is_retryable(status.as_u16()) {
        let retry_after = retry_after(headers);
        tracing::debug!(client_request_id = %request_id, status = status.as_u16(), ?retry_after, "downstream API throttled the request");
        return Err(Attempt::Transient { retry_after });
    }
    let error = from_response(
        status.as_u16(),
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
        header_str(headers, "request-id"),
        &body,
        authorization_uri,
    );
    tracing::debug!(client_request_id = %request_id, status = status.as_u16(), error = %error, "downstream API refused the request");
    Err(Attempt::Final(error))
}

/// 429 Too Many Requests, 503 Service Unavailable and 504 Gateway Timeout are retried.
pub(crate) fn is_retryable(status: u16) -> bool {
    matches!(status, 429 | 503 | 504)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The public cloud's authorize endpoint.
pub(crate) fn public_cloud_authorize_endpoint() -> String {
    authorize_endpoint(PUBLIC_CLOUD_AUTHORITY)
}

/// The authorize endpoint of `authority_host`, as a relayed claims challenge names it.
fn authorize_endpoint(authority_host: &str) -> String {
    format!(
        "{}/common/oauth2/authorize",
        authority_host.trim().trim_end_matches('/')
    )
}

fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Decodes a JSON body; an empty body decodes as `null`.
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, DownstreamError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"null".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| DownstreamError::Decode(e.to_string()))
}

fn check_base(base: &Url) -> Result<(), DownstreamError> {
    let why = match check_base_url(base, false) {
        Ok(()) => return Ok(()),
        Err(BaseUrlProblem::PlainHttp | BaseUrlProblem::Scheme) => {
            "must use https (http only on a loopback host)"
        }
        Err(BaseUrlProblem::NoHost) => "must have a host",
        Err(BaseUrlProblem::Credentials) => "must not contain credentials",
        Err(BaseUrlProblem::QueryOrFragment | BaseUrlProblem::Path) => {
            "must not have a query or fragment"
        }
    };
    Err(DownstreamError::InvalidRequest(format!("base URL {why}")))
}

/// `scheme:` at the start of `s` (RFC 3986: a letter, then letters, digits, `+-.`).
fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Resolves `path` against `base`; the result must have the base's origin, and a
/// relative `path` must stay under the base's path.
pub(crate) fn resolve(base: &Url, path: &str) -> Result<Url, DownstreamError> {
    let relative = !(has_scheme(path) || path.starts_with("//") || path.starts_with("\\\\"));
    let url = if !relative {
        base.join(path)
    } else {
        check_relative(path)?;
        let joined = format!(
            "{}/{}",
            base.as_str().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        Url::parse(&joined)
    };
    let url = url.map_err(|e| DownstreamError::InvalidRequest(format!("invalid path: {e}")))?;
    if relative && !under(base, &url) {
        return Err(DownstreamError::InvalidRequest(
            "a relative path must stay under the base path".into(),
        ));
    }
    if same_origin(base, &url) {
        Ok(url)
    } else {
        tracing::warn!(
            host = url.host_str().unwrap_or(""),
            "refused to send the access token outside the downstream API's origin"
        );
        Err(DownstreamError::ForeignUrl)
    }
}

/// Refuses a relative path that could climb out of the base path: a backslash (a
/// separator for `http(s)` URLs) or a `.` / `..` segment, percent-encoded or not.
fn check_relative(path: &str) -> Result<(), DownstreamError> {
    let path_part = path.split(['?', '#']).next().unwrap_or("");
    let climbs = path_part.contains('\\')
        || path_part.split('/').any(|segment| {
            // The URL standard reads `%2e` (any case) as a dot in these segments.
            let segment = segment.to_ascii_lowercase().replace("%2e", ".");
            segment == "." || segment == ".."
        });
    if climbs {
        tracing::warn!("refused a relative downstream path with a `.`/`..` segment or a backslash");
        return Err(DownstreamError::InvalidRequest(
            "a relative path must not contain `.` or `..` segments or backslashes".into(),
        ));
    }
    Ok(())
}

/// Whether `url`'s path is the base's path or below it.
fn under(base: &Url, url: &Url) -> bool {
    let base_path = base.path().trim_end_matches('/');
    url.path()
        .strip_prefix(base_path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
        && b.username().is_empty()
        && b.password().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_retry_after;

    fn base() -> Url {
        Url::parse("https://graph.microsoft.com/v1.0").unwrap()
    }

    #[test]
    fn relative_paths_join_the_base() {
        for p in ["me", "/me", "//me"] {
            // "//me" is scheme-relative: host "me", a foreign origin.
            if p == "//me" {
                assert_eq!(resolve(&base(), p), Err(DownstreamError::ForeignUrl));
                continue;
            }
            assert_eq!(
                resolve(&base(), p).unwrap().as_str(),
                "https://graph.microsoft.com/v1.0/me"
            );
        }
        let u = resolve(&base(), "me/messages?$top=5&$select=subject").unwrap();
        assert_eq!(
            u.as_str(),
            "https://graph.microsoft.com/v1.0/me/messages?$top=5&$select=subject"
        );
        let slash = Url::parse("https://graph.microsoft.com/v1.0/").unwrap();
        assert_eq!(
            resolve(&slash, "/me").unwrap().as_str(),
            "https://graph.microsoft.com/v1.0/me"
        );
        let root = Url::parse("https://api.example.com").unwrap();
        assert_eq!(
            resolve(&root, "items").unwrap().as_str(),
            "https://api.example.com/items"
        );
        // OneDrive path syntax has colons after the first segment.
        assert!(resolve(&base(), "me/drive/root:/a b.txt:/content").is_ok());
    }

    #[test]
    fn absolute_urls_must_keep_the_origin() {
        let ok = "https://graph.microsoft.com/v1.0/users?$skiptoken=abc";
        assert_eq!(resolve(&base(), ok).unwrap().as_str(), ok);
        assert!(resolve(&base(), "HTTPS://GRAPH.microsoft.com:443/beta/me").is_ok());
        for foreign in [
            "https://evil.example/v1.0/me",
            "http://graph.microsoft.com/v1.0/me",
            "https://graph.microsoft.com:8443/v1.0/me",
            "https://graph.microsoft.com.evil.example/v1.0/me",
            "https://graph.microsoft.com@evil.example/v1.0/me",
            "https://user:pw@graph.microsoft.com/v1.0/me",
            "//evil.example/me",
            "\\\\evil.example/me",
            "ftp://graph.microsoft.com/v1.0/me",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                resolve(&base(), foreign),
                Err(DownstreamError::ForeignUrl),
                "{foreign}"
            );
        }
        // Tricks inside relative paths stay on the base's host, or are refused.
        let u = resolve(&base(), "@evil.example/me").unwrap();
        assert_eq!(u.host_str(), Some("graph.microsoft.com"));
        for tricky in ["/\\evil.example/me", "..//evil.example"] {
            assert!(
                matches!(
                    resolve(&base(), tricky),
                    Err(DownstreamError::InvalidRequest(_))
                ),
                "{tricky}"
            );
        }
    }

    #[test]
    fn relative_paths_stay_under_the_base_path() {
        let base = Url::parse("https://api.example.com/v2/tenant-a").unwrap();
        for climbing in [
            "../tenant-b/x",
            "/../tenant-b/x",
            "a/../../x",
            "a/../b",
            "./x",
            "x/.",
            "..",
            "%2e%2e/tenant-b/x",
            "%2E%2e/tenant-b",
            ".%2e/tenant-b",
            "%2e/x",
            "a/%2e%2E/%2e%2e/x",
            "..\\tenant-b\\x",
            "a\\..\\..\\x",
            "a\\b",
        ] {
            assert!(
                matches!(
                    resolve(&base, climbing),
                    Err(DownstreamError::InvalidRequest(_))
                ),
                "{climbing}: {:?}",
                resolve(&base, climbing)
            );
        }
        for fine in [
            "x",
            "/x/y",
            "a..b/c",
            "...",
            "x?path=../../y",
            "x?$filter=a\\b",
            "me/drive/root:/a b.txt:/content",
            "%2e%2ex",
            "",
        ] {
            let u = resolve(&base, fine).unwrap();
            assert!(u.path().starts_with("/v2/tenant-a"), "{fine}: {u}");
        }
        // Absolute URLs of the origin may lie elsewhere on it (Graph's nextLinks).
        assert_eq!(
            resolve(&base, "https://api.example.com/v2/tenant-b/x")
                .unwrap()
                .path(),
            "/v2/tenant-b/x"
        );
        // Through the public API too.
        let c = DownstreamClient::new(
            reqwest::Client::new(),
            "https://api.example.com/v2/tenant-a",
            BearerToken::new("t"),
        )
        .unwrap();
        assert!(matches!(
            c.request(Method::GET, "../tenant-b/x"),
            Err(DownstreamError::InvalidRequest(_))
        ));
        assert!(matches!(
            c.url("a/../../x"),
            Err(DownstreamError::InvalidRequest(_))
        ));
    }

    #[test]
    fn claims_challenges_name_the_clients_authority() {
        let c = DownstreamClient::new(
            reqwest::Client::new(),
            "https://graph.microsoft.us/v1.0",
            BearerToken::new("t"),
        )
        .unwrap();
        assert_eq!(
            c.authorization_uri,
            "https://login.microsoftonline.com/common/oauth2/authorize"
        );
        let c = c.with_authority("https://login.microsoftonline.us/");
        assert_eq!(
            c.authorization_uri,
            "https://login.microsoftonline.us/common/oauth2/authorize"
        );
        assert_eq!(c.max_pages(), DEFAULT_MAX_PAGES);
        assert_eq!(c.with_max_pages(0).max_pages(), 1);
    }

    #[test]
    fn base_must_be_https_or_loopback() {
        let c = |b: &str| DownstreamClient::new(reqwest::Client::new(), b, BearerToken::new("t"));
        for ok in [
            "https://graph.microsoft.com/v1.0",
            "http://127.0.0.1:8080/v1.0",
            "http://127.9.9.9",
            "http://[::1]:1/x",
            "http://localhost:3000",
        ] {
            assert!(c(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://graph.microsoft.com/v1.0",
            "http://10.0.0.1",
            "http://localhost.evil.example",
            "ftp://127.0.0.1",
            "https://u:p@graph.microsoft.com",
            "https://graph.microsoft.com/v1.0?x=1",
            "data:text/plain,hi",
            "not a url",
        ] {
            assert!(
                matches!(c(bad), Err(DownstreamError::InvalidRequest(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_redacts_the_token() {
        let c = DownstreamClient::new(
            reqwest::Client::new(),
            "https://x.example",
            BearerToken::new("secret-token"),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("secret-token"));
    }

    #[test]
    fn waits_honour_retry_after_within_limits() {
        let p = RetryPolicy::default();
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(
            p.attempts().next_wait(now, Some(ms(3000)), Some(ms(200))),
            Some(ms(3000))
        );
        assert_eq!(
            p.attempts().next_wait(now, None, Some(ms(200))),
            Some(ms(200))
        );
        // Retries used up.
        assert_eq!(p.attempts().next_wait(now, Some(ms(1)), None), None);
        // Asked for longer than max_wait: give up rather than retry early.
        assert_eq!(
            p.attempts()
                .next_wait(now, Some(Duration::from_secs(11)), Some(ms(1))),
            None
        );
        // Past the budget.
        let tight = RetryPolicy {
            budget: ms(500),
            ..p
        };
        assert_eq!(
            tight.attempts().next_wait(now, Some(ms(600)), Some(ms(1))),
            None
        );
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn empty_bodies_decode_as_null() {
        let () = decode(b"").unwrap();
        assert_eq!(decode::<Option<u8>>(b" \n").unwrap(), None);
        assert!(matches!(
            decode::<u8>(b"<html>"),
            Err(DownstreamError::Decode(_))
        ));
    }
}
