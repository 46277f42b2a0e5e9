//! HTTP plumbing shared by discovery, the token endpoint and the downstream client.
//!
//! - [`shared_client`]: the one `reqwest::Client` of a layer (no redirects, a
//!   connect timeout; each call bounds itself).
//! - [`is_loopback`]: the one rule for where plain `http://` is tolerated.
//! - [`retry_after`]: `Retry-After` in seconds, as Entra and Graph send it.
//! - [`describe`]: a transport error and its causes, without the URL.
//! - [`with_retries`] and [`Attempts`]: attempts with exponential backoff that
//!   honour `Retry-After`, inside a total budget.
//! - [`read_capped`]: response bodies read under a size cap while they stream in.
//!
//! Nothing here holds state; every function fails by returning its error.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable as _};
use http::header::RETRY_AFTER;
use http::HeaderMap;
use url::{Host, Url};

/// The layer's HTTP client: no redirects (a token or assertion is never re-sent
/// to where a redirect points), a connect timeout, and no total timeout: each
/// call bounds itself (Entra calls by `http_timeout`, downstream calls by their
/// own per-request timeout).
pub(crate) fn shared_client(connect_timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Whether `url`'s host is loopback: `localhost`, `127.0.0.0/8` or `::1`, the only
/// hosts where plain `http://` is accepted (tests and local stand-ins).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A `Retry-After` value in seconds (the form Entra and Graph send); dates and
/// anything else are ignored.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The `Retry-After` header of an answer, in seconds (see [`parse_retry_after`]).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after)
}

/// A transport error and its causes, without the URL (it may carry secrets).
pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// A transport error in a word or two (timed out, connection failed, request
/// failed), for errors that are shown to operators as a category only.
pub(crate) fn failure_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// How a call is retried: at most `max_retries` retries, a `Retry-After` longer
/// than `max_wait` is not waited out (the call gives up), and the whole call,
/// waits and attempts included, stays within `budget` from its start. Without a
/// `Retry-After` the wait is an exponential backoff from 200 ms to 2 s, with jitter
/// (at most `max_wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attempts {
    pub(crate) max_retries: usize,
    pub(crate) max_wait: Duration,
    pub(crate) budget: Duration,
}

/// What a failed attempt says about the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Do not retry.
    Final,
    /// Worth retrying, after `retry_after` if the server asked for it.
    Retry { retry_after: Option<Duration> },
}

impl Attempts {
    /// The backoff used without `Retry-After`.
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(self.max_retries)
            .with_jitter()
    }

    /// The wait before the next attempt of a call that started at `started`, given the
    /// server's `Retry-After` and the backoff's `planned` wait (`None` once the retries
    /// are used up). `None`: give up.
    pub(crate) fn next_wait(
        &self,
        started: Instant,
        retry_after: Option<Duration>,
        planned: Option<Duration>,
    ) -> Option<Duration> {
        let planned = planned?;
        let wait = match retry_after {
            Some(asked) if asked > self.max_wait => return None,
            Some(asked) => asked,
            None => planned.min(self.max_wait),
        };
        (started.elapsed().saturating_add(wait) <= self.budget).then_some(wait)
    }
}

/// Runs `attempt` until it succeeds, `verdict` calls its error final, or
/// [`Attempts::next_wait`] gives up (retries used up, `Retry-After` too long, or
/// budget spent); returns the last result. `on_retry` hears every wait.
pub(crate) async fn with_retries<T, E, Fut>(
    attempts: Attempts,
    started: Instant,
    attempt: impl FnMut() -> Fut,
    verdict: impl Fn(&E) -> Verdict,
    on_retry: impl Fn(Duration),
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    attempt
        .retry(attempts.backoff())
        .when(|e| matches!(verdict(e), Verdict::Retry { .. }))
        .adjust(|e, planned| {
            let retry_after = match verdict(e) {
                Verdict::Retry { retry_after } => retry_after,
                Verdict::Final => None,
            };
            attempts.next_wait(started, retry_after, planned)
        })
        .notify(|_, wait| on_retry(wait))
        .await
}

/// Largest discovery or JWKS document accepted.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Largest token-endpoint answer accepted (a token response is a few KB).
pub(crate) const MAX_TOKEN_RESPONSE_BYTES: usize = 256 * 1024;

/// Largest downstream API answer accepted (a Graph page or `$batch` answer).
pub(crate) const MAX_DOWNSTREAM_BYTES: usize = 16 << 20;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body grew past the cap; reading stopped there.
    TooLarge,
    /// The connection failed or timed out while reading.
    Transport(reqwest::Error),
}

/// Reads `response`'s body chunk by chunk, giving up as soon as it exceeds
/// `max` bytes (a `Content-Length` over `max` is refused before reading), so a
/// hostile or broken server cannot make us buffer more than `max`.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
