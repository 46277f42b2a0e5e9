//! JSON batching, `POST {base}/$batch`: chunks of at most 20 requests, answers mapped
//! back by id (they may come in any order), throttled items retried in a later batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::client::{
    decode, is_retryable, public_cloud_authorize_endpoint, resolve, DownstreamClient,
};
use super::error::{from_response, DownstreamError};
use crate::http::{parse_retry_after, with_retries, Verdict};

/// The most requests one `$batch` call may carry (Microsoft Graph's limit).
pub(crate) const MAX_BATCH_ITEMS: usize = 20;

/// One request of a [`batch`](DownstreamClient::batch).
///
/// `url` is relative to the client's base (`"/me"`, `"users/{id}?$select=id"`); an
/// absolute URL is accepted if it lies under the base URL.
///
/// ```
/// use axum_obo::downstream::BatchRequest;
/// use serde_json::json;
///
/// let requests = vec![
///     BatchRequest::get("/me"),
///     BatchRequest::get("/me/messages?$top=5").header("ConsistencyLevel", "eventual"),
///     BatchRequest::patch("/me", json!({ "officeLocation": "B42" })),
/// ];
/// assert_eq!(requests[2].headers["Content-Type"], "application/json");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// The HTTP method, e.g. `GET`.
    pub method: String,
    /// The URL, relative to the base.
    pub url: String,
    /// Request headers (`Content-Type` is required with a body; the constructors set it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The JSON body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl BatchRequest {
    /// A request without a body.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            headers: BTreeMap::new(),
            body: None,
        }
    }

    /// `GET url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// `DELETE url`.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new("DELETE", url)
    }

    /// `POST url` with a JSON body.
    pub fn post(url: impl Into<String>, body: Value) -> Self {
        Self::new("POST", url).json(body)
    }

    /// `PATCH url` with a JSON body.
    pub fn patch(url: impl Into<String>, body: Value) -> Self {
        Self::new("PATCH", url).json(body)
    }

    /// `PUT url` with a JSON body.
    pub fn put(url: impl Into<String>, body: Value) -> Self {
        Self::new("PUT", url).json(body)
    }

    /// Adds (or replaces) a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    #[must_use]
    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        if !self
            .headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            self.headers
                .insert("Content-Type".into(), "application/json".into());
        }
        self
    }
}

/// The answer to one [`BatchRequest`].
///
/// Items still throttled (429, 503, 504) when the retry policy gives up are returned
/// as answered; [`error`](Self::error) turns them into [`DownstreamError::Throttled`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// The item's HTTP status.
    pub status: u16,
    /// The item's response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The item's body (JSON; binary content comes as a base64 string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl BatchResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A header's value; the name is case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error this answer stands for, if it is not a success: read like a direct
    /// answer (Graph's error JSON, claims challenge); still-throttled items are
    /// [`DownstreamError::Throttled`].
    ///
    /// An item's claims challenge names the public cloud's authority, as an answer
    /// does not know its client; [`DownstreamClient::with_authority`] applies to
    /// direct calls and to the `$batch` call itself.
    pub fn error(&self) -> Option<DownstreamError> {
        if self.is_success() {
            return None;
        }
        if is_retryable(self.status) {
            return Some(DownstreamError::Throttled {
                retry_after: self.header("retry-after").and_then(parse_retry_after),
            });
        }
        let body = self
            .body
            .as_ref()
            .and_then(|b| serde_json::to_vec(b).ok())
            .unwrap_or_default();
        Some(from_response(
            self.status,
            self.header("www-authenticate"),
            self.header("request-id"),
            &body,
            &public_cloud_authorize_endpoint(),
        ))
    }

    /// The body decoded as `T` if the status is 2xx (a missing body decodes as `null`),
    /// otherwise [`error`](Self::error).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, DownstreamError> {
        if let Some(e) = self.error() {
            return Err(e);
        }
        T::deserialize(self.body.as_ref().unwrap_or(&Value::Null))
            .map_err(|e| DownstreamError::Decode(e.to_string()))
    }
}

/// A request as sent: its id is its index in the caller's list.
#[derive(Debug, Serialize)]
struct WireItem<'a> {
    id: String,
    method: String,
    url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a Value>,
}

impl<'a> WireItem<'a> {
    fn new(index: usize, request: &'a BatchRequest, base: &Url) -> Result<Self, DownstreamError> {
        let method = request.method.trim().to_ascii_uppercase();
        if Method::from_bytes(method.as_bytes()).is_err() || method.is_empty() {
            return Err(DownstreamError::InvalidRequest(format!(
                "batch request {index} has an invalid method"
            )));
        }
        Ok(Self {
            id: index.to_string(),
            method,
            url: item_url(base, &request.url)?,
            headers: &request.headers,
            body: request.body.as_ref(),
        })
    }
}

/// A batch item's URL relative to the base (`/me?$select=id`), as `$batch` wants it.
fn item_url(base: &Url, url: &str) -> Result<String, DownstreamError> {
    let absolute = resolve(base, url)?;
    let base_path = base.path().trim_end_matches('/');
    let rest = absolute
        .path()
        .strip_prefix(base_path)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .ok_or_else(|| {
            DownstreamError::InvalidRequest("a batch item's URL must lie under the base URL".into())
        })?;
    let mut relative = if rest.is_empty() { "/" } else { rest }.to_owned();
    if let Some(query) = absolute.query() {
        relative.push('?');
        relative.push_str(query);
    }
    Ok(relative)
}

/// The `$batch` body for the items at `chunk` (indices into `items`).
fn envelope(items: &[WireItem<'_>], chunk: &[usize]) -> Value {
    let requests: Vec<&WireItem<'_>> = chunk.iter().filter_map(|&i| items.get(i)).collect();
    serde_json::json!({ "requests": requests })
}

/// Reads a `$batch` answer: `{"responses":[{"id","status","headers","body"}]}`, in any
/// order. Ids outside `chunk` are ignored; every id of `chunk` must be answered.
fn parse_responses(
    answer: &Value,
    chunk: &[usize],
) -> Result<HashMap<usize, BatchResponse>, DownstreamError> {
    let list = answer
        .get("responses")
        .and_then(Value::as_array)
        .ok_or_else(|| DownstreamError::Decode("the batch answer has no `responses`".into()))?;
    let mut out = HashMap::with_capacity(chunk.len());
    for item in list {
        let id = match item.get("id") {
            Some(Value::String(s)) => s.trim().parse::<usize>().ok(),
            Some(Value::Number(n)) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            _ => None,
        };
        let Some(id) = id.filter(|id| chunk.contains(id)) else {
            tracing::debug!("ignoring a batch answer with an unknown id");
            continue;
        };
        let status = item
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| {
                DownstreamError::Decode(format!("batch answer {id} has no valid status"))
            })?;
        let headers = match item.get("headers") {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), v)
                })
                .collect(),
            _ => BTreeMap::new(),
        };
        let body = item.get("body").filter(|b| !b.is_null()).cloned();
        out.insert(
            id,
            BatchResponse {
                status,
                headers,
                body,
            },
        );
    }
    if let Some(missing) = chunk.iter().find(|id| !out.contains_key(id)) {
        return Err(DownstreamError::Decode(format!(
            "the batch answer lacks request {missing}"
        )));
    }
    Ok(out)
}

/// Stores the answers of one chunk; returns the throttled items and the longest
/// `Retry-After` among them.
fn settle(
    results: &mut [Option<BatchResponse>],
    answers: HashMap<usize, BatchResponse>,
) -> (Vec<usize>, Option<Duration>) {
    let mut throttled = Vec::new();
    let mut retry_after: Option<Duration> = None;
    let mut answers: Vec<_> = answers.into_iter().collect();
    answers.sort_unstable_by_key(|(id, _)| *id);
    for (id, answer) in answers {
        if is_retryable(answer.status) {
            throttled.push(id);
            if let Some(ra) = answer.header("retry-after").and_then(parse_retry_after) {
                retry_after = retry_after.max(Some(ra));
            }
        }
        if let Some(slot) = results.get_mut(id) {
            *slot = Some(answer);
        }
    }
    (throttled, retry_after)
}

/// What the retry loop keeps between rounds.
struct BatchState {
    results: Vec<Option<BatchResponse>>,
    pending: Vec<usize>,
}

/// Why a round did not finish the batch.
enum Round {
    Throttled { retry_after: Option<Duration> },
    Failed(DownstreamError),
}

impl Round {
    fn verdict(&self) -> Verdict {
        match self {
            Round::Throttled { retry_after } => Verdict::Retry {
                retry_after: *retry_after,
            },
            Round::Failed(_) => Verdict::Final,
        }
    }
}

fn lock(state: &Mutex<BatchState>) -> MutexGuard<'_, BatchState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DownstreamClient {
    /// Sends `requests` with JSON batching (`POST {base}/$batch`) and returns their
    /// answers in the order of `requests`.
    ///
    /// Requests go in chunks of 20 (Graph's limit). Items answered 429, 503 or 504 are
    /// sent again in a later batch after their `Retry-After`, within the client's
    /// [`RetryPolicy`](super::RetryPolicy) (one budget for the whole call); items still
    /// throttled then are returned as answered. The call itself fails only if a
    /// `$batch` request fails (after its own retries) or is answered nonsense.
    ///
    /// ```no_run
    /// use axum_obo::downstream::{BatchRequest, GraphUser};
    /// # async fn run(graph: axum_obo::downstream::GraphClient) -> Result<(), axum_obo::downstream::DownstreamError> {
    /// let answers = graph
    ///     .batch(vec![BatchRequest::get("/me"), BatchRequest::get("/me/messages?$top=1")])
    ///     .await?;
    /// let me: GraphUser = answers[0].json()?;
    /// # Ok(()) }
    /// ```
    pub async fn batch(
        &self,
        requests: Vec<BatchRequest>,
    ) -> Result<Vec<BatchResponse>, DownstreamError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let base = self.url("")?;
        let items = requests
            .iter()
            .enumerate()
            .map(|(i, r)| WireItem::new(i, r, &base))
            .collect::<Result<Vec<_>, _>>()?;
        let url = self.url("$batch")?;
        let policy = self.retry_policy();
        let started = Instant::now();
        let state = Mutex::new(BatchState {
            results: vec![None; requests.len()],
            pending: (0..requests.len()).collect(),
        });
        let outcome = with_retries(
            policy.attempts(),
            started,
            || self.batch_round(&url, &items, &state, started),
            Round::verdict,
            |wait| tracing::debug!(?wait, "batch items throttled; retrying them"),
        )
        .await;
        match outcome {
            Ok(()) | Err(Round::Throttled { .. }) => {}
            Err(Round::Failed(e)) => return Err(e),
        }
        let state = state.into_inner().unwrap_or_else(PoisonError::into_inner);
        state
            .results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.ok_or_else(|| {
                    DownstreamError::Decode(format!("the batch answer lacks request {i}"))
                })
            })
            .collect()
    }

    /// Sends every pending item once, in chunks; stores the answers.
    async fn batch_round(
        &self,
        url: &Url,
        items: &[WireItem<'_>],
        state: &Mutex<BatchState>,
        started: Instant,
    ) -> Result<(), Round> {
        let pending = std::mem::take(&mut lock(state).pending);
        let mut throttled = Vec::new();
        let mut retry_after = None;
        for chunk in pending.chunks(MAX_BATCH_ITEMS) {
            let body = serde_json::to_vec(&envelope(items, chunk)).map_err(|e| {
                Round::Failed(DownstreamError::InvalidRequest(format!(
                    "the batch cannot be serialized: {e}"
                )))
            })?;
            let answer = self
                .execute(Method::POST, url, Some(&body), started)
                .await
                .map_err(Round::Failed)?;
            let answer: Value = decode(&answer.body).map_err(Round::Failed)?;
            let answers = parse_responses(&answer, chunk).map_err(Round::Failed)?;
            let (t, ra) = settle(&mut lock(state).results, answers);
            throttled.extend(t);
            retry_after = retry_after.max(ra);
        }
        if throttled.is_empty() {
            return Ok(());
        }
        throttled.sort_unstable();
        lock(state).pending = throttled;
        Err(Round::Throttled { retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Url {
        Url::parse("https://graph.microsoft.com/v1.0").unwrap()
    }

    #[test]
    fn item_urls_are_relative_to_the_base() {
        let b = base();
        assert_eq!(item_url(&b, "me").unwrap(), "/me");
        assert_eq!(item_url(&b, "/me?$select=id").unwrap(), "/me?$select=id");
        assert_eq!(
            item_url(&b, "https://graph.microsoft.com/v1.0/users?$skiptoken=x").unwrap(),
            "/users?$skiptoken=x"
        );
        assert_eq!(item_url(&b, "").unwrap(), "/");
        assert!(matches!(
            item_url(&b, "https://graph.microsoft.com/beta/me"),
            Err(DownstreamError::InvalidRequest(_))
        ));
        assert!(matches!(
            item_url(&b, "https://graph.microsoft.com/v1.0x/me"),
            Err(DownstreamError::InvalidRequest(_))
        ));
        assert_eq!(
            item_url(&b, "https://evil.example/v1.0/me"),
            Err(DownstreamError::ForeignUrl)
        );
    }

    #[test]
    fn envelope_shape() {
        let requests = [
            BatchRequest::get("/me"),
            BatchRequest::post("users", json!({"displayName": "A"})).header("If-Match", "*"),
        ];
        let items: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(i, r)| WireItem::new(i, r, &base()).unwrap())
            .collect();
        assert_eq!(
            envelope(&items, &[0, 1]),
            json!({"requests": [
                {"id": "0", "method": "GET", "url": "/me"},
                {"id": "1", "method": "POST", "url": "/users",
                 "headers": {"Content-Type": "application/json", "If-Match": "*"},
                 "body": {"displayName": "A"}},
            ]})
        );
        assert!(WireItem::new(0, &BatchRequest::new("GE T", "/me"), &base()).is_err());
        assert!(WireItem::new(0, &BatchRequest::new("", "/me"), &base()).is_err());
    }

    #[test]
    fn chunks_of_twenty() {
        let pending: Vec<usize> = (0..45).collect();
        let sizes: Vec<usize> = pending.chunks(MAX_BATCH_ITEMS).map(<[_]>::len).collect();
        assert_eq!(sizes, [20, 20, 5]);
    }

    #[test]
    fn answers_map_back_by_id_in_any_order() {
        let chunk = [20, 21, 22];
        let answer = json!({"responses": [
            {"id": "22", "status": 200, "body": {"n": 22}},
            {"id": "20", "status": 429, "headers": {"Retry-After": "2"}},
            {"id": "99", "status": 200},
            {"id": 21, "status": 204, "headers": {"x-n": 5}, "body": null},
        ]});
        let answers = parse_responses(&answer, &chunk).unwrap();
        assert_eq!(answers.len(), 3);
        assert_eq!(answers[&21].headers["x-n"], "5");
        assert_eq!(answers[&21].body, None);
        let mut results = vec![None; 23];
        let (throttled, ra) = settle(&mut results, answers);
        assert_eq!(throttled, [20]);
        assert_eq!(ra, Some(Duration::from_secs(2)));
        assert_eq!(results[22].as_ref().unwrap().body, Some(json!({"n": 22})));
        assert_eq!(results[20].as_ref().unwrap().status, 429);
        assert!(results[..20].iter().all(Option::is_none));
    }

    #[test]
    fn malformed_answers_are_decode_errors() {
        for bad in [
            json!({}),
            json!({"responses": {}}),
            json!({"responses": [{"id": "0"}]}),
            json!({"responses": [{"id": "0", "status": 70000}]}),
            json!({"responses": [{"id": "0", "status": 200}]}), // lacks id 1
        ] {
            assert!(
                matches!(
                    parse_responses(&bad, &[0, 1]),
                    Err(DownstreamError::Decode(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn item_errors_read_like_direct_answers() {
        let ok = BatchResponse {
            status: 200,
            headers: BTreeMap::new(),
            body: Some(json!({"id": "1"})),
        };
        assert_eq!(ok.json::<Value>().unwrap()["id"], "1");
        assert!(ok.error().is_none());
        let not_found = BatchResponse {
            status: 404,
            headers: BTreeMap::from([("Request-Id".into(), "r".into())]),
            body: Some(json!({"error": {"code": "Request_ResourceNotFound", "message": "m"}})),
        };
        assert!(matches!(
            not_found.json::<Value>(),
            Err(DownstreamError::Api { status: 404, code, request_id: Some(r), .. })
                if code == "Request_ResourceNotFound" && r == "r"
        ));
        let throttled = BatchResponse {
            status: 429,
            headers: BTreeMap::from([("retry-after".into(), "4".into())]),
            body: None,
        };
        assert_eq!(
            throttled.error(),
            Some(DownstreamError::Throttled {
                retry_after: Some(Duration::from_secs(4))
            })
        );
        let empty = BatchResponse {
            status: 204,
            headers: BTreeMap::new(),
            body: None,
        };
        let () = empty.json().unwrap();
    }
}
