//! HTTP plumbing shared by discovery, the token endpoint and the downstream client.
//!
//! - [`shared_client`]: the one `reqwest::Client` of a layer (no redirects, a
//!   connect timeout; each call bounds itself).
//! - [`is_loopback`] and [`check_base_url`]: the one rule for where plain
//!   `http://` is tolerated, and what a base URL may hold.
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

/// Why a URL cannot be the base of calls that carry tokens or credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BaseUrlProblem {
    /// `http://` on a host that is not loopback.
    PlainHttp,
    /// Neither `https` nor `http`.
    Scheme,
    /// No host (or a URL that cannot be a base, such as `mailto:`).
    NoHost,
    /// A user name or password.
    Credentials,
    /// A query or a fragment.
    QueryOrFragment,
    /// A path, where a bare `scheme://host[:port]` is required.
    Path,
}

/// The one rule for base URLs (the authority, Graph, any downstream API):
/// `https`, or `http` on loopback only ([`is_loopback`]); a host; no credentials,
/// query or fragment; and, when `bare_origin`, no path. Checked in that order.
pub(crate) fn check_base_url(url: &Url, bare_origin: bool) -> Result<(), BaseUrlProblem> {
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url) => {}
        "http" => return Err(BaseUrlProblem::PlainHttp),
        _ => return Err(BaseUrlProblem::Scheme),
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(BaseUrlProblem::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BaseUrlProblem::Credentials);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(BaseUrlProblem::QueryOrFragment);
    }
    if bare_origin && !matches!(url.path(), "" | "/") {
        return Err(BaseUrlProblem::Path);
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_follow_one_rule() {
        let check = |raw: &str, bare| check_base_url(&Url::parse(raw).unwrap(), bare);
        for ok in [
            "https://login.microsoftonline.us",
            "http://127.9.9.9:8080",
            "http://[::1]",
            "http://LOCALHOST",
        ] {
            assert_eq!(check(ok, true), Ok(()), "{ok}");
        }
        assert_eq!(check("https://api.example.com/v2", false), Ok(()));
        for (bad, problem) in [
            ("http://10.0.0.1", BaseUrlProblem::PlainHttp),
            ("http://localhost.evil.com", BaseUrlProblem::PlainHttp),
            ("ftp://127.0.0.1", BaseUrlProblem::Scheme),
            ("https://u:p@h", BaseUrlProblem::Credentials),
            ("https://h/?q", BaseUrlProblem::QueryOrFragment),
            ("https://h/#f", BaseUrlProblem::QueryOrFragment),
            ("https://h/tenant", BaseUrlProblem::Path),
        ] {
            assert_eq!(check(bad, true), Err(problem), "{bad}");
        }
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, " 7 ".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn waits_stay_within_the_limits() {
        let a = Attempts {
            max_retries: 3,
            max_wait: Duration::from_secs(10),
            budget: Duration::from_secs(30),
        };
        let now = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(a.next_wait(now, Some(s(3)), Some(s(1))), Some(s(3)));
        assert_eq!(a.next_wait(now, None, Some(s(1))), Some(s(1)));
        assert_eq!(a.next_wait(now, Some(s(1)), None), None);
        assert_eq!(a.next_wait(now, Some(s(11)), Some(s(1))), None);
        assert_eq!(a.next_wait(now, None, Some(s(60))), Some(s(10)));
        assert_eq!(a.next_wait(now, Some(s(10)), Some(s(1))), Some(s(10)));
        let tight = Attempts { budget: s(5), ..a };
        assert_eq!(tight.next_wait(now, Some(s(6)), Some(s(1))), None);
    }
}
