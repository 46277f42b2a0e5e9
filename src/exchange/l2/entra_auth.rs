//! Microsoft Entra authentication to Redis (`OBO_REDIS_ENTRA`), as Azure Managed
//! Redis takes it: the client sends `AUTH <object id> <access token>`, the token
//! being this API's own app-only token for `https://redis.azure.com/.default`.
//!
//! # Where it sits
//!
//! One [`EntraAuth`] per layer, made by the exchanger (it asks Entra through the
//! exchanger's token endpoint, with the configured credential, in the home
//! tenant) and shared by every Redis connection of the layer (the L2 and the
//! session store). It is the `redis` crate's [`StreamingCredentialsProvider`]:
//! a connection takes the current credentials when it connects (and reconnects)
//! and sends `AUTH` again on each renewed token, on the connection it already
//! has: requests are neither dropped nor queued behind a reconnect.
//!
//! # Renewal
//!
//! The token is renewed at 80 % of its lifetime or 5 minutes before it expires,
//! whichever comes first (never before half of it, nor before a minute), by the
//! configured clock. A
//! background task sleeps until then; every Redis call also checks the clock, so
//! a clock that jumps (or a test's manual clock) renews at the next call. A
//! failed renewal is retried after 1, 2, 4 … at most 60 seconds (the token
//! endpoint's own retries of 429/5xx come first) and logged once per failure
//! streak; meanwhile the current token stays in use. A token Redis refuses
//! before it expires (a failed `AUTH` on connect, `NOAUTH`) is renewed a minute
//! after it was obtained instead of at its scheduled time.
//!
//! # How it fails
//!
//! Until the first token arrives, a Redis call waits for it within its own
//! timeout, then is skipped (a miss). Once the token has expired without a
//! renewal, every call fails (logged by the L2's breaker) instead of using a
//! connection the server is about to close: the L2 misses and requests go to
//! Entra as without L2. Tokens never reach a log line or a `Debug` output.
//!
//! The user name is `OBO_REDIS_USERNAME`, else the token's `oid` claim (the
//! object id of the service principal or managed identity, which is the user
//! Azure Managed Redis's data access policy assignment names).

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{Stream, StreamExt as _};
use redis::{BasicAuth, RedisResult, StreamingCredentialsProvider};
use tokio::sync::{watch, Notify};

use crate::clock::Clock;
use crate::exchange::endpoint::TokenEndpoint;
use crate::secret::BearerToken;

/// The scope of Azure Managed Redis (and Azure Cache for Redis) tokens.
pub(crate) const REDIS_SCOPE: &str = "https://redis.azure.com/.default";

/// Longest wait between two failed renewals.
const MAX_BACKOFF_SECS: i64 = 60;

/// Shortest wait between two successful renewals, whatever the token's
/// lifetime: a token issued for a few seconds must not turn every Redis call
/// (and the renewal task's every wake) into a request to Entra.
const MIN_RENEWAL_SECS: i64 = 60;

/// Entra authentication settings (validated by the configuration builder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EntraRedisSettings {
    /// The tenant asked for tokens: the home tenant.
    pub(crate) tenant: String,
    /// The Redis user; `None`: the token's `oid` claim.
    pub(crate) username: Option<String>,
}

/// A token and the user it authenticates.
#[derive(Clone)]
struct Credentials {
    username: Arc<str>,
    token: BearerToken,
    /// Clock seconds.
    expires_at: i64,
}

/// Whether a Redis call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthState {
    /// A token valid by the clock.
    Ready,
    /// No token yet (the first request to Entra is on its way or failed).
    Pending,
    /// The last token expired and no renewal succeeded.
    Expired,
}

/// The Entra credentials of the layer's Redis connections (cheap to clone).
#[derive(Clone)]
pub(crate) struct EntraAuth {
    inner: Arc<Inner>,
}

struct Inner {
    settings: EntraRedisSettings,
    endpoint: Arc<TokenEndpoint>,
    clock: Arc<dyn Clock>,
    current: watch::Sender<Option<Credentials>>,
    /// Clock seconds at which the next request to Entra is due.
    next_attempt: AtomicI64,
    /// Clock seconds at which the current token was obtained.
    obtained_at: AtomicI64,
    /// Failed renewals in a row.
    failures: AtomicU32,
    wake: Arc<Notify>,
    started: AtomicBool,
}

impl fmt::Debug for EntraAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.inner.current.borrow();
        f.debug_struct("EntraAuth")
            .field("tenant", &self.inner.settings.tenant)
            .field("username", &current.as_ref().map(|c| &*c.username))
            .field("expires_at", &current.as_ref().map(|c| c.expires_at))
            .finish_non_exhaustive()
    }
}

impl EntraAuth {
    /// Asks nothing yet: the first Redis call starts the renewals.
    pub(crate) fn new(
        settings: EntraRedisSettings,
        endpoint: Arc<TokenEndpoint>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                endpoint,
                clock,
                current: watch::Sender::new(None),
                next_attempt: AtomicI64::new(i64::MIN),
                obtained_at: AtomicI64::new(i64::MIN),
                failures: AtomicU32::new(0),
                wake: Arc::new(Notify::new()),
                started: AtomicBool::new(false),
            }),
        }
    }

    /// Starts the renewal task (once, inside a runtime) and wakes it when a
    /// renewal is due by the clock. Cheap: called before every Redis call.
    pub(crate) fn poke(&self) {
        let inner = &self.inner;
        if !inner.started.load(Ordering::Acquire) {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            if !inner.started.swap(true, Ordering::AcqRel) {
                runtime.spawn(renewals(Arc::downgrade(inner), Arc::clone(&inner.wake)));
            }
        }
        if inner.clock.now() >= inner.next_attempt.load(Ordering::Acquire) {
            inner.wake.notify_one();
        }
    }

    /// Redis refused the current token (`AUTH` failed, `NOAUTH`): it may have
    /// been revoked, or the data access policy changed. Brings the renewal
    /// forward to a minute after the token was obtained (not sooner, so that a
    /// server refusing every token does not make a loop of requests to Entra),
    /// unless a renewal is already failing (its backoff then applies).
    pub(crate) fn refused(&self) {
        let inner = &self.inner;
        if inner.failures.load(Ordering::Acquire) > 0 || inner.current.borrow().is_none() {
            return;
        }
        let earliest = inner
            .obtained_at
            .load(Ordering::Acquire)
            .saturating_add(MIN_RENEWAL_SECS);
        if inner.next_attempt.fetch_min(earliest, Ordering::AcqRel) > earliest {
            tracing::info!(
                "Redis refused the Entra token; renewing it a minute after it was obtained"
            );
        }
        self.poke();
    }

    /// Whether a Redis call may go ahead now (by the clock).
    pub(crate) fn state(&self) -> AuthState {
        match &*self.inner.current.borrow() {
            None => AuthState::Pending,
            Some(c) if self.inner.clock.now() < c.expires_at => AuthState::Ready,
            Some(_) => AuthState::Expired,
        }
    }

    /// Waits until there is a token (the first one), whatever its state.
    pub(crate) async fn first_token(&self) {
        let mut rx = self.inner.current.subscribe();
        let _ = rx.wait_for(Option::is_some).await;
    }
}

impl StreamingCredentialsProvider for EntraAuth {
    /// The current credentials (once there are some), then each renewed one.
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        self.poke();
        let rx = self.inner.current.subscribe();
        futures_util::stream::unfold((rx, true), |(mut rx, mut first)| async move {
            loop {
                if !first {
                    // The provider is gone: no more credentials.
                    rx.changed().await.ok()?;
                }
                first = false;
                let current = rx.borrow_and_update().clone();
                if let Some(c) = current {
                    let auth = BasicAuth::new(c.username.to_string(), c.token.expose().to_owned());
                    return Some((Ok(auth), (rx, first)));
                }
            }
        })
        .boxed()
    }
}

/// The renewal task: renews when due, sleeps until the next due time (at most a
/// minute, so a clock that jumps is noticed) or a poke. Ends with the provider.
async fn renewals(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            inner.renew_if_due().await;
            let left = inner.next_attempt.load(Ordering::Acquire) - inner.clock.now();
            Duration::from_secs(left.clamp(1, MAX_BACKOFF_SECS) as u64)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
}

impl Inner {
    async fn renew_if_due(&self) {
        let now = self.clock.now();
        if now < self.next_attempt.load(Ordering::Acquire) {
            return;
        }
        let fields = [("grant_type", "client_credentials"), ("scope", REDIS_SCOPE)];
        let issued = self
            .endpoint
            .request_fields(
                &self.settings.tenant,
                &fields,
                true,
                &[REDIS_SCOPE],
                crate::metrics::Grant::ClientCredentials,
            )
            .await;
        let got = issued.map_err(|e| e.to_string()).and_then(|issued| {
            let username = match &self.settings.username {
                Some(u) => u.clone(),
                None => oid_of(issued.access_token.expose()).ok_or_else(|| {
                    "the token has no `oid` claim: set OBO_REDIS_USERNAME (`obo_redis_username`)"
                        .to_owned()
                })?,
            };
            Ok((issued, username))
        });
        match got {
            Ok((issued, username)) => {
                let obtained = self.clock.now();
                let lifetime = issued.expires_in;
                self.obtained_at.store(obtained, Ordering::Release);
                self.next_attempt
                    .store(obtained + renew_after(lifetime), Ordering::Release);
                self.current.send_replace(Some(Credentials {
                    username: username.into(),
                    token: issued.access_token,
                    expires_at: obtained.saturating_add(lifetime),
                }));
                if self.failures.swap(0, Ordering::AcqRel) > 0 {
                    tracing::info!(lifetime, "Entra token for Redis renewed");
                } else {
                    tracing::debug!(lifetime, "Entra token for Redis obtained");
                }
            }
            Err(error) => {
                let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
                let wait = backoff(failures);
                self.next_attempt
                    .store(now.saturating_add(wait), Ordering::Release);
                let valid_until = self.current.borrow().as_ref().map(|c| c.expires_at);
                if failures == 1 {
                    tracing::warn!(
                        %error,
                        retry_in_secs = wait,
                        ?valid_until,
                        "cannot get an Entra token for Redis ({REDIS_SCOPE}); the current one \
                         (if any) stays in use until it expires, then the Redis L2 misses"
                    );
                } else {
                    tracing::debug!(%error, failures, retry_in_secs = wait, "Entra token for Redis: still failing");
                }
            }
        }
    }
}

/// Seconds after which a token of `lifetime` seconds is renewed: at 80 % of its
/// lifetime or 5 minutes before it expires, whichever comes first, but not
/// before half of it, and never before a minute (a token shorter than that
/// leaves Redis unauthenticated, so missing, until the minute is over).
fn renew_after(lifetime: i64) -> i64 {
    (lifetime * 4 / 5)
        .min(lifetime - 300)
        .max(lifetime / 2)
        .max(MIN_RENEWAL_SECS)
}

/// Seconds before retrying after `failures` failed renewals in a row.
fn backoff(failures: u32) -> i64 {
    1_i64
        .checked_shl(failures.saturating_sub(1).min(6))
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS)
}

/// The `oid` claim of a JWT, read without verifying it (a token Entra just
/// sent over TLS, used only as the Redis user name).
fn oid_of(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Claims {
        oid: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let oid = serde_json::from_slice::<Claims>(&json).ok()?.oid?;
    (!oid.is_empty()
        && oid.len() <= 128
        && !oid.chars().any(|c| c.is_whitespace() || c.is_control()))
    .then_some(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_at_80_percent_or_5_minutes_before_expiry_whichever_first() {
        assert_eq!(renew_after(3600), 2880, "an hour: at 48 minutes");
        assert_eq!(renew_after(5400), 4320, "90 minutes: at 72 minutes");
        assert_eq!(renew_after(1200), 900, "20 minutes: 5 minutes before");
        assert_eq!(renew_after(300), 150, "5 minutes: not before half");
        // Short or tiny lifetimes: not before a minute (no renewal storm).
        assert_eq!(renew_after(100), 60);
        assert_eq!(renew_after(10), 60);
        assert_eq!(renew_after(1), 60);
    }

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        let waits: Vec<i64> = (1..=9).map(backoff).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), 60);
    }

    #[test]
    fn the_oid_claim_is_the_user_name() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = |claims: &str| format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(claims));
        assert_eq!(
            oid_of(&jwt(
                r#"{"oid":"5f1b6b1e-0a4f-4a37-9b4e-2b8f2f7f3c11","tid":"t"}"#
            ))
            .as_deref(),
            Some("5f1b6b1e-0a4f-4a37-9b4e-2b8f2f7f3c11")
        );
        for bad in [
            jwt(r#"{"tid":"t"}"#),
            jwt(r#"{"oid":""}"#),
            jwt(r#"{"oid":"a b"}"#),
            jwt(r#"{"oid":42}"#),
            "not a jwt".to_owned(),
            "a.!!!.c".to_owned(),
        ] {
            assert_eq!(oid_of(&bad), None, "{bad}");
        }
    }
}
