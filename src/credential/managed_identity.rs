//! A managed identity as the client credential (Microsoft.Identity.Web's
//! `SignedAssertionFromManagedIdentity`): the app registration trusts the managed
//! identity through a federated identity credential, and every exchange sends the
//! identity's token for `api://AzureADTokenExchange` (`…USGov`, `…China`) as its
//! `client_assertion`.
//!
//! - Where it sits: below the token endpoint ([`ClientCredential::form`](super::ClientCredential)),
//!   above [`crate::http`]; it uses the layer's one HTTP client.
//! - Where the token comes from: the platform's identity endpoint — App Service and
//!   Container Apps (`IDENTITY_ENDPOINT` with the `X-IDENTITY-HEADER` secret,
//!   api-version 2019-08-01), else the VM's IMDS (`169.254.169.254`, `Metadata: true`).
//! - State: the last assertion and its expiry. It is reused until shortly before it
//!   expires (5 minutes, or half its lifetime when that is shorter), read without
//!   waiting while fresh, and fetched single-flight: concurrent exchanges that find
//!   it stale share one identity-endpoint call, and share its failure too.
//! - Failure: an unreachable endpoint, a refusal or an unreadable answer fails the
//!   exchanges waiting on that call as misconfigured (500, generic body; the cause is
//!   logged by the token endpoint). Nothing is cached on failure, so the next
//!   exchange asks again and recovers as soon as the endpoint does.
//! - What an attacker sees: nothing — the assertion and the header secret are
//!   [`SecretString`]s, never logged, never in an error.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;

use super::CredentialError;
use crate::http::{describe, read_capped, BodyError};
use crate::metrics::{self, ExchangeOutcome, Grant};
use crate::secret::SecretString;

/// IMDS's token URL (Azure VMs and scale sets).
pub(crate) const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// The largest identity-endpoint answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Refresh at most this long before expiry.
const REFRESH_MARGIN: i64 = 300;

/// The longest lifetime believed of a managed-identity token, in seconds (28 h,
/// as for the On-Behalf-Of path's downstream tokens; the platform issues 24 h at
/// most): a larger `expires_in`, or an `expires_on` further away, is cut to it,
/// so a hostile or broken answer (`i64::MAX`) cannot overflow the refresh time.
const MAX_LIFETIME: i64 = 28 * 3600;

/// The audience of token-exchange tokens in the cloud of `authority` (an authority
/// host such as `https://login.microsoftonline.us`): `api://AzureADTokenExchange`,
/// `api://AzureADTokenExchangeUSGov` or `api://AzureADTokenExchangeChina`.
pub(crate) fn token_exchange_audience(authority: &str) -> &'static str {
    let host = reqwest::Url::parse(authority)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default();
    match host.as_str() {
        "login.microsoftonline.us" | "login.usgovcloudapi.net" => "api://AzureADTokenExchangeUSGov",
        "login.chinacloudapi.cn" | "login.partner.microsoftonline.cn" => {
            "api://AzureADTokenExchangeChina"
        }
        _ => "api://AzureADTokenExchange",
    }
}

/// Which managed identity of the app proves the API's identity.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedIdentity {
    /// The app's system-assigned identity (`OBO_MANAGED_IDENTITY=system`).
    SystemAssigned,
    /// A user-assigned identity, by its client id (`OBO_MANAGED_IDENTITY=<client id>`).
    UserAssigned {
        /// The identity's client (application) id, a GUID.
        client_id: String,
    },
}

/// Where the platform serves managed-identity tokens.
#[derive(Clone)]
pub(crate) enum IdentityEndpoint {
    /// App Service / Container Apps: `IDENTITY_ENDPOINT` and its `IDENTITY_HEADER` secret.
    AppService {
        url: reqwest::Url,
        header: SecretString,
    },
    /// A VM's Instance Metadata Service.
    Imds,
}

impl fmt::Debug for IdentityEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityEndpoint::AppService { url, .. } => f
                .debug_struct("AppService")
                .field("url", &url.as_str())
                .finish_non_exhaustive(),
            IdentityEndpoint::Imds => f.write_str("Imds"),
        }
    }
}

/// The managed-identity assertion source: cheap to clone, one cache shared by clones.
#[derive(Clone)]
pub(crate) struct ManagedIdentityAssertion {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: IdentityEndpoint,
    identity: ManagedIdentity,
    audience: String,
    timeout: Duration,
    /// The last assertion; read without waiting.
    cached: RwLock<Option<Cached>>,
    /// Identity-endpoint calls finished (bumped under `gate`).
    calls: AtomicU64,
    /// Held during a call: the single flight. Holds the last call's failure, with the
    /// call's number, for the exchanges that waited on it.
    gate: tokio::sync::Mutex<Option<(u64, CredentialError)>>,
}

#[derive(Clone)]
struct Cached {
    token: SecretString,
    /// Unix seconds from which a new assertion is fetched.
    refresh_at: i64,
}

impl fmt::Debug for ManagedIdentityAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityAssertion")
            .field("endpoint", &self.inner.endpoint)
            .field("identity", &self.inner.identity)
            .field("audience", &self.inner.audience)
            .finish_non_exhaustive()
    }
}

impl ManagedIdentityAssertion {
    pub(crate) fn new(
        http: reqwest::Client,
        endpoint: IdentityEndpoint,
        identity: ManagedIdentity,
        audience: String,
        timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                endpoint,
                identity,
                audience,
                timeout,
                cached: RwLock::new(None),
                calls: AtomicU64::new(0),
                gate: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// A fresh assertion at `now` (Unix seconds): the cached one, or one fetched
    /// single-flight.
    pub(crate) async fn assertion(&self, now: i64) -> Result<SecretString, CredentialError> {
        if let Some(token) = self.fresh(now) {
            return Ok(token);
        }
        let seen = self.inner.calls.load(Ordering::SeqCst);
        let mut last_failure = self.inner.gate.lock().await;
        if let Some(token) = self.fresh(now) {
            return Ok(token);
        }
        if let Some((call, e)) = last_failure.as_ref() {
            if *call > seen {
                // The call we waited on failed: share its outcome, do not queue another.
                return Err(e.clone());
            }
        }
        let outcome = self.fetch(now).await;
        let call = self.inner.calls.fetch_add(1, Ordering::SeqCst) + 1;
        match outcome {
            Ok(cached) => {
                let token = cached.token.clone();
                *self.inner.cached.write().unwrap_or_else(|p| p.into_inner()) = Some(cached);
                *last_failure = None;
                Ok(token)
            }
            Err(e) => {
                *last_failure = Some((call, e.clone()));
                Err(e)
            }
        }
    }

    fn fresh(&self, now: i64) -> Option<SecretString> {
        let cached = self.inner.cached.read().unwrap_or_else(|p| p.into_inner());
        cached
            .as_ref()
            .filter(|c| now < c.refresh_at)
            .map(|c| c.token.clone())
    }

    /// One identity-endpoint call.
    async fn fetch(&self, now: i64) -> Result<Cached, CredentialError> {
        let inner = &self.inner;
        let client_id = match &inner.identity {
            ManagedIdentity::SystemAssigned => None,
            ManagedIdentity::UserAssigned { client_id } => Some(client_id.as_str()),
        };
        let (mut url, api_version) = match &inner.endpoint {
            IdentityEndpoint::AppService { url, .. } => (url.clone(), "2019-08-01"),
            IdentityEndpoint::Imds => (
                reqwest::Url::parse(IMDS_ENDPOINT)
                    .map_err(|e| CredentialError::new(e.to_string()))?,
                "2018-02-01",
            ),
        };
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("api-version", api_version)
                .append_pair("resource", &inner.audience);
            if let Some(id) = client_id {
                query.append_pair("client_id", id);
            }
        }
        let request = inner.http.get(url).timeout(inner.timeout);
        let request = match &inner.endpoint {
            IdentityEndpoint::AppService { header, .. } => {
                request.header("X-IDENTITY-HEADER", header.expose())
            }
            IdentityEndpoint::Imds => request.header("Metadata", "true"),
        };
        let fail = |what: String| {
            CredentialError::new(format!(
                "managed identity ({}): {what}",
                self.describe_identity()
            ))
        };
        let started = std::time::Instant::now();
        let response = request.send().await.map_err(|e| {
            metered(started, ExchangeOutcome::Unavailable);
            fail(format!(
                "the identity endpoint cannot be reached: {}",
                describe(e)
            ))
        })?;
        let status = response.status();
        let platform_now = platform_clock(response.headers());
        let body = read_capped(response, MAX_ANSWER_BYTES).await.map_err(|e| {
            metered(started, ExchangeOutcome::Unavailable);
            fail(match e {
                BodyError::TooLarge => "the identity endpoint's answer is too large".to_owned(),
                BodyError::Transport(e) => format!(
                    "cannot read the identity endpoint's answer: {}",
                    describe(e)
                ),
            })
        })?;
        if !status.is_success() {
            metered(
                started,
                match status.as_u16() {
                    429 => ExchangeOutcome::Throttled,
                    500..=599 => ExchangeOutcome::Unavailable,
                    _ => ExchangeOutcome::Error,
                },
            );
            return Err(fail(format!(
                "the identity endpoint answered {status}{}",
                platform_message(&body)
            )));
        }
        let token = interpret(&body, now, platform_now).map_err(fail);
        let outcome = match token {
            Ok(_) => ExchangeOutcome::Ok,
            Err(_) => ExchangeOutcome::Error,
        };
        metered(started, outcome);
        token
    }

    fn describe_identity(&self) -> String {
        match &self.inner.identity {
            ManagedIdentity::SystemAssigned => "system-assigned".to_owned(),
            ManagedIdentity::UserAssigned { client_id } => format!("user-assigned {client_id}"),
        }
    }
}

/// The platform's error message, if its answer has one (`message`, `error_description`
/// or `error`), bounded; these never hold the token.
/// Records an identity-endpoint call started at `started` that ended with
/// `outcome` (grant `managed_identity`, no tenant).
fn metered(started: std::time::Instant, outcome: ExchangeOutcome) {
    metrics::token_endpoint_duration(Grant::ManagedIdentity, started.elapsed());
    metrics::exchange(Grant::ManagedIdentity, outcome, None);
}

fn platform_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Error {
        message: Option<String>,
        error_description: Option<String>,
        error: Option<serde_json::Value>,
    }
    let Ok(e) = serde_json::from_slice::<Error>(body) else {
        return String::new();
    };
    let text = e
        .message
        .or(e.error_description)
        .or_else(|| {
            e.error
                .map(|v| v.as_str().map_or(v.to_string(), str::to_owned))
        })
        .unwrap_or_default();
    if text.is_empty() {
        return String::new();
    }
    let short: String = text.chars().take(200).collect();
    format!(" ({short})")
}

/// A number that the platform sends as a string (App Service, IMDS) or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(i64),
    Text(String),
}

impl Seconds {
    fn get(&self) -> Option<i64> {
        match self {
            Seconds::Number(n) => Some(*n),
            Seconds::Text(t) => t.trim().parse().ok(),
        }
    }
}

/// The platform's clock when it answered (its `Date` header), in Unix seconds.
fn platform_clock(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    let date = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    let at = httpdate::parse_http_date(date).ok()?;
    let secs = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// The token and when to refresh it, from a successful answer received at `now`
/// (our clock) and sent at `platform_now` (the platform's, if known). The lifetime
/// is measured on one clock — `expires_in`, else `expires_on` minus the answer's
/// `Date` — so a skew between this host and the platform does not shorten or
/// stretch it; it is then counted from `now`, clamped to [`MAX_LIFETIME`] with
/// saturating arithmetic (an `expires_on` of `i64::MIN` is expired, not a panic).
fn interpret(body: &[u8], now: i64, platform_now: Option<i64>) -> Result<Cached, String> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: Option<String>,
        expires_on: Option<Seconds>,
        expires_in: Option<Seconds>,
    }
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|_| "the identity endpoint's answer is not a token response".to_owned())?;
    let token = answer
        .access_token
        .filter(|t| !t.trim().is_empty())
        .map(SecretString::new)
        .ok_or("the identity endpoint's answer has no access_token")?;
    let lifetime = answer
        .expires_in
        .and_then(|s| s.get())
        .or_else(|| {
            let expires_on = answer.expires_on.and_then(|s| s.get())?;
            Some(expires_on.saturating_sub(platform_now.unwrap_or(now)))
        })
        .ok_or("the identity endpoint's answer has no expiry")?;
    if lifetime <= 0 {
        return Err("the identity endpoint's token has already expired".to_owned());
    }
    let lifetime = lifetime.min(MAX_LIFETIME);
    Ok(Cached {
        token,
        refresh_at: now
            .saturating_add(lifetime)
            .saturating_sub(REFRESH_MARGIN.min(lifetime / 2)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_follows_the_cloud() {
        for (authority, audience) in [
            (
                "https://login.microsoftonline.com",
                "api://AzureADTokenExchange",
            ),
            (
                "https://login.microsoftonline.us",
                "api://AzureADTokenExchangeUSGov",
            ),
            (
                "https://LOGIN.chinacloudapi.cn",
                "api://AzureADTokenExchangeChina",
            ),
            ("http://127.0.0.1:8080", "api://AzureADTokenExchange"),
        ] {
            assert_eq!(token_exchange_audience(authority), audience, "{authority}");
        }
    }

    #[test]
    fn refresh_five_minutes_early_or_at_half_life() {
        let now = 1_000_000;
        let day = format!(r#"{{"access_token":"t","expires_on":"{}"}}"#, now + 86_400);
        let day = interpret(day.as_bytes(), now, None).unwrap();
        assert_eq!(day.refresh_at, now + 86_400 - 300);
        // The platform's clock is an hour behind ours: the lifetime is still a day.
        let skewed = format!(
            r#"{{"access_token":"t","expires_on":{}}}"#,
            now - 3600 + 86_400
        );
        let skewed = interpret(skewed.as_bytes(), now, Some(now - 3600)).unwrap();
        assert_eq!(skewed.refresh_at, now + 86_400 - 300);
        let short = interpret(br#"{"access_token":"t","expires_in":120}"#, now, None).unwrap();
        assert_eq!(short.refresh_at, now + 60);
        for bad in [
            &br#"{"expires_in":120}"#[..],
            br#"{"access_token":"t"}"#,
            br#"{"access_token":"t","expires_in":"0"}"#,
            b"<html>",
        ] {
            assert!(interpret(bad, now, None).is_err());
        }
    }

    #[test]
    fn hostile_lifetimes_are_clamped_or_refused_without_overflow() {
        let now = 1_000_000;
        let refresh = |body: String, platform_now| {
            interpret(body.as_bytes(), now, platform_now).map(|c| c.refresh_at)
        };
        let clamped = Ok(now + MAX_LIFETIME - REFRESH_MARGIN);
        let huge = i64::MAX;
        assert_eq!(
            refresh(
                format!(r#"{{"access_token":"t","expires_in":{huge}}}"#),
                None
            ),
            clamped
        );
        assert_eq!(
            refresh(
                format!(r#"{{"access_token":"t","expires_in":"{huge}"}}"#),
                None
            ),
            clamped
        );
        assert_eq!(
            refresh(
                format!(r#"{{"access_token":"t","expires_on":{huge}}}"#),
                Some(-5)
            ),
            clamped
        );
        // Our clock at the end of time: saturates instead of wrapping.
        let end = interpret(br#"{"access_token":"t","expires_in":3600}"#, i64::MAX, None);
        assert_eq!(end.map(|c| c.refresh_at), Ok(i64::MAX - 300));
        for hostile in [
            format!(r#"{{"access_token":"t","expires_on":{}}}"#, i64::MIN),
            format!(r#"{{"access_token":"t","expires_in":{}}}"#, i64::MIN),
        ] {
            assert!(refresh(hostile.clone(), Some(now)).is_err(), "{hostile}");
            assert!(
                refresh(hostile.clone(), Some(i64::MAX)).is_err(),
                "{hostile}"
            );
        }
    }

    #[test]
    fn platform_messages_are_bounded_and_optional() {
        assert_eq!(platform_message(b"nope"), "");
        assert_eq!(
            platform_message(br#"{"error":{"code":"x"}}"#),
            r#" ({"code":"x"})"#
        );
        let long = format!(r#"{{"message":"{}"}}"#, "a".repeat(500));
        assert_eq!(platform_message(long.as_bytes()).len(), 203);
    }
}
