//! The token endpoint: the On-Behalf-Of request, its response and error shapes,
//! and bounded retries of transient failures.
//!
//! # Where it sits
//!
//! The exchanger calls [`TokenEndpoint::exchange`] on a cache miss, once per key.
//! Its only state is the [`throttle`](super::throttle) backoff (per user, and per
//! tenant on evidence from several users).
//!
//! # Shape
//!
//! `exchange` = backoff check (the user's, the tenant's), then attempts with backoff inside the retry
//! budget ([`crate::http::with_retries`]), then `settle` (backoff bookkeeping, the
//! [`OboError`]). One attempt = `credential_form` + `request_form` + `send` (HTTP,
//! timeouts, body cap) + [`interpret`], a pure function of status, `Retry-After`
//! and body that the tests and the fuzz target call without HTTP.
//!
//! # How it fails
//!
//! Timeouts are not retried; 429, 5xx, AADSTS50196 and `temporarily_unavailable`
//! are, after `Retry-After` (capped at [`MAX_RETRY_AFTER`]) when it fits the
//! budget. Every failure ends as an [`OboError`]; bodies over the cap, or that are
//! not OAuth JSON, are [`OboError::BadResponse`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::error::OboError;
use super::throttle::{Backoff, Throttle, MAX_RETRY_AFTER};
use super::ExchangeSettings;
use crate::credential::{ClientCredential, CredentialForm};
use crate::http::{
    read_capped, retry_after, with_retries, Attempts, BodyError, Verdict, MAX_TOKEN_RESPONSE_BYTES,
};
use crate::metrics::{self, ExchangeOutcome, Grant as Metered};
use crate::secret::{BearerToken, SecretString};

/// `grant_type` of the On-Behalf-Of request.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `client_assertion_type` of assertion credentials.
pub(crate) const CLIENT_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest lifetime believed of a downstream token: a larger `expires_in`
/// is clamped to it. Entra's access tokens live 60-90 minutes by default and at
/// most about 28 hours (long-lived tokens of CAE-capable clients), so 28 h is
/// never shorter than a real token; it keeps `now + expires_in` (clock seconds),
/// the cache TTL and the Redis `PX` within range whatever the endpoint sends.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(28 * 3600);

/// A successful exchange.
pub(crate) struct Issued {
    pub(crate) access_token: BearerToken,
    /// Seconds, in `1..=MAX_TOKEN_LIFETIME`.
    pub(crate) expires_in: i64,
    pub(crate) scope: Option<String>,
    /// Sent when the request's scope held `offline_access` (and on every refresh).
    pub(crate) refresh_token: Option<SecretString>,
}

/// What a token request redeems: the user's access token (On-Behalf-Of), or a
/// refresh token kept by a session.
#[derive(Clone, Copy)]
pub(crate) enum Grant<'a> {
    OnBehalfOf(&'a BearerToken),
    RefreshToken(&'a SecretString),
}

#[derive(Deserialize)]
struct Success {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    expires_in: serde_json::Value,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    error_codes: Vec<i64>,
    #[serde(default)]
    suberror: Option<String>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    claims: Option<String>,
}

/// One attempt's failure: final, an OAuth refusal (final too, and proof that
/// Entra answers), or transient (retry, maybe after `Retry-After`).
pub(crate) enum Attempt {
    Final(OboError),
    Refused(OboError),
    Transient {
        retry_after: Option<Duration>,
        timeout: bool,
        /// HTTP 429 or AADSTS50196: counts towards the caller's backoff (and,
        /// for a 429, as evidence against the tenant).
        throttled: Option<Throttle>,
    },
}

impl Attempt {
    /// Only transient failures that are not timeouts are retried (a timeout has
    /// spent the time a retry would need).
    fn verdict(&self) -> Verdict {
        match self {
            Attempt::Transient {
                timeout: false,
                retry_after,
                ..
            } => Verdict::Retry {
                retry_after: *retry_after,
            },
            _ => Verdict::Final,
        }
    }
}

/// Client of `{authority}/{tid}/oauth2/v2.0/token`.
pub(crate) struct TokenEndpoint {
    http: reqwest::Client,
    settings: Arc<ExchangeSettings>,
    backoff: Backoff,
    /// Whether the missing credential was logged at error level (once).
    no_credential_logged: AtomicBool,
}

impl TokenEndpoint {
    pub(crate) fn new(http: reqwest::Client, settings: Arc<ExchangeSettings>) -> Self {
        Self {
            http,
            settings,
            backoff: Backoff::new(),
            no_credential_logged: AtomicBool::new(false),
        }
    }

    /// The token endpoint of tenant `tid` (also the `aud` of client assertions).
    pub(crate) fn url(&self, tid: &str) -> String {
        format!("{}/{tid}/oauth2/v2.0/token", self.settings.authority)
    }

    /// Exchanges `assertion` (a token of user `oid` of tenant `tid`) for a token
    /// for `scope`, sending `claims` (JSON: client capabilities, a claims
    /// challenge) if any, retrying 429/5xx at most `max_retries` times within
    /// `retry_budget`. While the user or `tid` is backing off after throttling
    /// (see [`throttle`](super::throttle)), fails at once with
    /// [`OboError::Unavailable`] and sends nothing.
    pub(crate) async fn exchange(
        &self,
        (tid, oid): (&str, &str),
        assertion: &BearerToken,
        scope: &str,
        requested: &[&str],
        claims: Option<&str>,
    ) -> Result<Issued, OboError> {
        let caller = Caller {
            tid,
            id: oid,
            verified: true,
        };
        self.request(
            caller,
            Grant::OnBehalfOf(assertion),
            scope,
            requested,
            claims,
        )
        .await
    }

    /// Redeems a session's `refresh_token` (a session of user `oid` of tenant
    /// `tid`) for a token for `scope` (`grant_type=refresh_token`), with the
    /// same client authentication, retries and backoff as
    /// [`exchange`](Self::exchange). The backoff's caller is the session's
    /// owner, not the session: one user's sessions and exchanges back off
    /// together, are never two users' evidence against the tenant, and a new
    /// session (a new refresh token) does not escape its user's backoff.
    pub(crate) async fn refresh(
        &self,
        (tid, oid): (&str, &str),
        refresh_token: &SecretString,
        scope: &str,
        requested: &[&str],
    ) -> Result<Issued, OboError> {
        self.request(
            Caller {
                tid,
                id: oid,
                verified: true,
            },
            Grant::RefreshToken(refresh_token),
            scope,
            requested,
            None,
        )
        .await
    }

    async fn request(
        &self,
        caller: Caller<'_>,
        grant: Grant<'_>,
        scope: &str,
        requested: &[&str],
        claims: Option<&str>,
    ) -> Result<Issued, OboError> {
        let metered = match grant {
            Grant::OnBehalfOf(_) => Metered::Obo,
            Grant::RefreshToken(_) => Metered::RefreshToken,
        };
        let Some(credential) = self.settings.credential.as_ref() else {
            self.log_no_credential();
            self.count(caller, metered, ExchangeOutcome::Error);
            return Err(OboError::Misconfigured(
                "no client credential is configured".into(),
            ));
        };
        let url = self.url(caller.tid);
        self.throttled_retries(caller, metered, || {
            self.attempt(&url, credential, grant, (scope, claims), requested, metered)
        })
        .await
    }

    /// What every token request of `caller` goes through: the user's and the
    /// tenant's backoff (failing fast while it lasts), the retries of `attempt`,
    /// and the verdict on its result (backoffs, counts).
    async fn throttled_retries<Fut>(
        &self,
        caller: Caller<'_>,
        metered: Metered,
        attempt: impl FnMut() -> Fut,
    ) -> Result<Issued, OboError>
    where
        Fut: std::future::Future<Output = Result<Issued, Attempt>>,
    {
        let tid = caller.tid;
        if let Err(wait) = self
            .backoff
            .admit(tid, caller.id, self.settings.clock.now())
        {
            tracing::debug!(
                tid,
                ?wait,
                "token endpoint throttled this user or tenant; failing fast"
            );
            self.count(caller, metered, ExchangeOutcome::Throttled);
            return Err(OboError::Unavailable {
                retry_after: Some(wait),
            });
        }
        let result = with_retries(
            self.attempts(),
            Instant::now(),
            attempt,
            Attempt::verdict,
            |wait| {
                metrics::token_endpoint_retry(metered);
                tracing::debug!(?wait, "token endpoint busy; retrying")
            },
        )
        .await;
        self.settle(caller, metered, result)
    }

    /// Counts a token request of `caller` that ended with `outcome`.
    fn count(&self, caller: Caller<'_>, grant: Metered, outcome: ExchangeOutcome) {
        let tenant = match caller.verified {
            true => self.settings.metrics_tenant(caller.tid),
            false => self.settings.metrics_named_tenant(caller.tid),
        };
        metrics::exchange(grant, outcome, tenant);
    }

    /// Says why a token request cannot be made: at error level the first time
    /// (naming the settings), at debug level after that.
    fn log_no_credential(&self) {
        const WHY: &str = "cannot ask the token endpoint: no client credential is configured \
             (set one of AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH, \
             AZURE_FEDERATED_TOKEN_FILE or OBO_MANAGED_IDENTITY, or call `client_secret`, \
             `client_certificate_file`, `federated_token_file` or `managed_identity` on \
             `OboConfigBuilder`); every On-Behalf-Of exchange answers 500";
        if self.no_credential_logged.swap(true, Ordering::Relaxed) {
            tracing::debug!(client_id = %self.settings.client_id, "{WHY}");
        } else {
            tracing::error!(client_id = %self.settings.client_id, "{WHY}");
        }
    }

    /// A token request whose grant fields the caller gives (Entra Agent ID, see
    /// [`crate::agent`]): `fields` as they are, plus, with `own_credential`, this
    /// API's `client_id` and credential (fresh for every attempt). The same tenant
    /// backoff, retries and interpretation as [`exchange`](Self::exchange).
    pub(crate) async fn request_fields(
        &self,
        tid: &str,
        fields: &[(&'static str, &str)],
        own_credential: bool,
        requested: &[&str],
        metered: Metered,
    ) -> Result<Issued, OboError> {
        let id = fields_caller(fields);
        // The app named `tid` (or its caller did): no token verified it.
        let caller = Caller {
            tid,
            id: &id,
            verified: false,
        };
        let credential = match own_credential {
            true => match self.settings.credential.as_ref() {
                Some(c) => Some(c),
                None => {
                    self.count(caller, metered, ExchangeOutcome::Error);
                    return Err(OboError::Misconfigured(
                        "no client credential is configured".into(),
                    ));
                }
            },
            false => None,
        };
        let url = self.url(tid);
        self.throttled_retries(caller, metered, || {
            self.attempt_fields(&url, credential, fields, requested, metered)
        })
        .await
    }

    /// One attempt of [`request_fields`](Self::request_fields).
    async fn attempt_fields(
        &self,
        url: &str,
        credential: Option<&ClientCredential>,
        fields: &[(&'static str, &str)],
        requested: &[&str],
        metered: Metered,
    ) -> Result<Issued, Attempt> {
        let credential = match credential {
            Some(c) => Some(self.credential_form(c, url).await?),
            None => None,
        };
        let mut form = fields.to_vec();
        if let Some(credential) = &credential {
            form.push(("client_id", &self.settings.client_id));
            push_credential(&mut form, credential);
        }
        self.send_form(url, &form, requested, metered).await
    }

    /// The retries of one exchange. `Retry-After` is capped when read
    /// ([`MAX_RETRY_AFTER`]), so it is always waited out when the budget allows.
    fn attempts(&self) -> Attempts {
        Attempts {
            max_retries: self.settings.max_retries,
            max_wait: MAX_RETRY_AFTER,
            budget: self.settings.retry_budget,
        }
    }

    /// The exchange's outcome after its last attempt, told to the backoff: an
    /// answer reopens the caller and its tenant, throttling closes the caller
    /// (and the tenant on evidence from several users).
    fn settle(
        &self,
        caller: Caller<'_>,
        metered: Metered,
        result: Result<Issued, Attempt>,
    ) -> Result<Issued, OboError> {
        let result = self.settle_backoff(caller, result);
        let outcome = match &result {
            Ok(_) => ExchangeOutcome::Ok,
            Err((e, throttled)) => outcome_of(e, *throttled),
        };
        self.count(caller, metered, outcome);
        result.map_err(|(e, _)| e)
    }

    /// [`settle`](Self::settle) without the counting: the error, and whether
    /// the token endpoint throttled it.
    fn settle_backoff(
        &self,
        caller: Caller<'_>,
        result: Result<Issued, Attempt>,
    ) -> Result<Issued, (OboError, bool)> {
        let tid = caller.tid;
        match result {
            Ok(issued) => {
                self.backoff.answered(tid, caller.id);
                Ok(issued)
            }
            Err(Attempt::Refused(e)) => {
                self.backoff.answered(tid, caller.id);
                Err((e, false))
            }
            Err(Attempt::Final(e)) => Err((e, false)),
            Err(Attempt::Transient { timeout: true, .. }) => Err((OboError::Timeout, false)),
            Err(Attempt::Transient {
                retry_after,
                throttled: Some(how),
                ..
            }) => {
                let now = self.settings.clock.now();
                let wait = self
                    .backoff
                    .throttled(tid, caller.id, how, now, retry_after);
                tracing::warn!(
                    tid,
                    ?how,
                    ?wait,
                    "token endpoint throttling this user; their exchanges wait"
                );
                Err((
                    OboError::Unavailable {
                        retry_after: Some(wait),
                    },
                    true,
                ))
            }
            Err(Attempt::Transient { retry_after, .. }) => {
                Err((OboError::Unavailable { retry_after }, false))
            }
        }
    }

    /// One request: the credential, the form, the exchange over HTTP, and what the
    /// answer means.
    async fn attempt(
        &self,
        url: &str,
        credential: &ClientCredential,
        grant: Grant<'_>,
        (scope, claims): (&str, Option<&str>),
        requested: &[&str],
        metered: Metered,
    ) -> Result<Issued, Attempt> {
        let credential = self.credential_form(credential, url).await?;
        let client_id = &self.settings.client_id;
        let mut form = match grant {
            Grant::OnBehalfOf(assertion) => request_form(client_id, assertion, scope, &credential),
            Grant::RefreshToken(token) => refresh_form(client_id, token, scope, &credential),
        };
        if let Some(claims) = claims {
            form.push(("claims", claims));
        }
        self.send_form(url, &form, requested, metered).await
    }

    /// Sends `form` to `url` under a fresh request id and says what the answer
    /// means (a token of the `requested` scopes, or why not).
    async fn send_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        requested: &[&str],
        metered: Metered,
    ) -> Result<Issued, Attempt> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let sent = self.send(url, form, &request_id).await;
        metrics::token_endpoint_duration(metered, started.elapsed());
        let (status, retry_after, body) = sent?;
        interpret(
            status,
            retry_after,
            &body,
            requested,
            &self.settings.authority,
            &request_id,
        )
    }

    /// The credential's form fields for a request to `url` (a fresh assertion, or
    /// the secret); failing to produce them is a final, misconfigured failure.
    async fn credential_form(
        &self,
        credential: &ClientCredential,
        url: &str,
    ) -> Result<CredentialForm, Attempt> {
        let settings = &self.settings;
        credential
            .form(&settings.client_id, url, settings.clock.now())
            .await
            .map_err(|e| {
                tracing::error!(credential = credential.kind(), error = %e, "cannot produce the client credential");
                Attempt::Final(OboError::Misconfigured(e.to_string()))
            })
    }

    /// POSTs `form` and reads the answer (status, capped `Retry-After`, body under
    /// [`MAX_TOKEN_RESPONSE_BYTES`]), each step within the request timeout.
    async fn send(
        &self,
        url: &str,
        form: &[(&str, &str)],
        request_id: &str,
    ) -> Result<(http::StatusCode, Option<Duration>, Vec<u8>), Attempt> {
        let send = self
            .http
            .post(url)
            .header("client-request-id", request_id)
            .header("x-ms-lib-capability", "retry-after, h429")
            .header(http::header::ACCEPT, "application/json")
            .form(form)
            .send();
        let timeout = self.settings.timeout;
        let response = match tokio::time::timeout(timeout, send).await {
            Err(_) => return Err(timed_out(request_id)),
            Ok(Err(e)) if e.is_timeout() => return Err(timed_out(request_id)),
            Ok(Err(e)) => {
                tracing::warn!(client_request_id = %request_id, connect = e.is_connect(), "token endpoint unreachable");
                return Err(Attempt::Transient {
                    retry_after: None,
                    timeout: false,
                    throttled: None,
                });
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        let retry_after = retry_after(response.headers()).map(|d| d.min(MAX_RETRY_AFTER));
        let body = match tokio::time::timeout(
            timeout,
            read_capped(response, MAX_TOKEN_RESPONSE_BYTES),
        )
        .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(BodyError::TooLarge)) => {
                tracing::error!(client_request_id = %request_id, %status, max_bytes = MAX_TOKEN_RESPONSE_BYTES, "token endpoint response too large; not read further");
                return Err(Attempt::Final(OboError::BadResponse));
            }
            Ok(Err(BodyError::Transport(e))) if !e.is_timeout() => {
                tracing::warn!(client_request_id = %request_id, %status, "token endpoint response cut short");
                return Err(Attempt::Final(OboError::BadResponse));
            }
            _ => return Err(timed_out(request_id)),
        };
        Ok((status, retry_after, body))
    }
}

/// The On-Behalf-Of request's form fields.
fn request_form<'a>(
    client_id: &'a str,
    assertion: &'a BearerToken,
    scope: &'a str,
    credential: &'a CredentialForm,
) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![
        ("grant_type", JWT_BEARER),
        ("requested_token_use", "on_behalf_of"),
        ("assertion", assertion.expose()),
        ("scope", scope),
        ("client_id", client_id),
        ("client_info", "1"),
    ];
    push_credential(&mut form, credential);
    form
}

/// The refresh-token grant's form fields (a session's later tokens).
fn refresh_form<'a>(
    client_id: &'a str,
    refresh_token: &'a SecretString,
    scope: &'a str,
    credential: &'a CredentialForm,
) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("scope", scope),
        ("client_id", client_id),
        ("client_info", "1"),
    ];
    push_credential(&mut form, credential);
    form
}

/// The client authentication fields (a secret, or an assertion).
fn push_credential<'a>(form: &mut Vec<(&'static str, &'a str)>, credential: &'a CredentialForm) {
    match credential {
        CredentialForm::Secret(s) => form.push(("client_secret", s.expose())),
        CredentialForm::Assertion(a) => {
            form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
            form.push(("client_assertion", a.expose()));
        }
    }
}

/// What a token-endpoint answer means, without any I/O: a token, a final failure,
/// an OAuth refusal, or a transient failure (5xx, 429, AADSTS50196,
/// `temporarily_unavailable`) carrying `retry_after`. `requested` are the scopes
/// asked for (named by a consent error), `authority` the authority host (named by
/// an interaction error), `request_id` the `client-request-id` for the logs.
/// Never panics, whatever `body` holds.
pub(crate) fn interpret(
    status: http::StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    requested: &[&str],
    authority: &str,
    request_id: &str,
) -> Result<Issued, Attempt> {
    if status.is_success() {
        return parse_success(body).ok_or_else(|| {
                tracing::error!(client_request_id = %request_id, %status, "token endpoint sent a success status without a valid token response");
                Attempt::Final(OboError::BadResponse)
            });
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let throttled = throttle_of(status, parsed.as_ref());
    if throttled.is_some() || status.is_server_error() {
        let e = parsed.unwrap_or_default();
        tracing::warn!(
            client_request_id = %request_id,
            status = status.as_u16(),
            throttled = ?throttled,
            aadsts = aadsts(&e),
            trace_id = e.trace_id.as_deref().unwrap_or(""),
            correlation_id = e.correlation_id.as_deref().unwrap_or(""),
            "token endpoint transient failure"
        );
        return Err(Attempt::Transient {
            retry_after,
            timeout: false,
            throttled,
        });
    }
    let Some(e) = parsed.filter(|e| !e.error.is_empty()) else {
        tracing::error!(client_request_id = %request_id, status = status.as_u16(), "token endpoint sent an error that is not OAuth JSON");
        return Err(Attempt::Final(OboError::BadResponse));
    };
    let error = classify(&e, requested, authority);
    log_refusal(&e, &error, request_id);
    if e.error == "temporarily_unavailable" {
        return Err(Attempt::Transient {
            retry_after,
            timeout: false,
            throttled: None,
        });
    }
    Err(Attempt::Refused(error))
}

/// One log line per OAuth refusal: an error for this API's misconfiguration, an
/// info line for the user's (consent, interaction, grant).
fn log_refusal(e: &ErrorBody, error: &OboError, request_id: &str) {
    let code = aadsts(e);
    let trace_id = e.trace_id.as_deref().unwrap_or("");
    let correlation_id = e.correlation_id.as_deref().unwrap_or("");
    match error {
        OboError::Misconfigured(_) => tracing::error!(
            client_request_id = %request_id, error = %e.error, aadsts = code, trace_id, correlation_id,
            description = first_line(e.error_description.as_deref()),
            "On-Behalf-Of refused: this API is misconfigured"
        ),
        _ => tracing::info!(
            client_request_id = %request_id, error = %e.error, suberror = e.suberror.as_deref().unwrap_or(""),
            aadsts = code, trace_id, correlation_id,
            "On-Behalf-Of refused"
        ),
    }
}

fn timed_out(request_id: &str) -> Attempt {
    tracing::warn!(client_request_id = %request_id, "token endpoint timed out");
    Attempt::Transient {
        retry_after: None,
        timeout: true,
        throttled: None,
    }
}

/// AADSTS50196: "The server terminated an operation because it encountered a
/// client request loop" — Entra's throttling of a client asking the same thing
/// too often.
const LOOP_DETECTED: i64 = 50_196;

/// How an answer is throttling, if it is: a request loop when its OAuth error
/// names AADSTS50196 (in `error_codes`, or as the description's `AADSTS50196:`
/// prefix when `error_codes` is missing) whatever the status; else HTTP 429
/// whatever the body.
fn throttle_of(status: http::StatusCode, body: Option<&ErrorBody>) -> Option<Throttle> {
    let looping = body.is_some_and(|e| {
        e.error_codes.contains(&LOOP_DETECTED)
            || e.error_description
                .as_deref()
                .is_some_and(|d| d.starts_with("AADSTS50196:"))
    });
    if looping {
        Some(Throttle::Loop)
    } else if status == http::StatusCode::TOO_MANY_REQUESTS {
        Some(Throttle::TooMany)
    } else {
        None
    }
}

/// The `outcome` of an exchange that failed with `e` (`throttled`: the token
/// endpoint throttled it, its retries used up).
fn outcome_of(e: &OboError, throttled: bool) -> ExchangeOutcome {
    match e {
        _ if throttled => ExchangeOutcome::Throttled,
        OboError::InteractionRequired { .. } => ExchangeOutcome::InteractionRequired,
        OboError::ConsentRequired { .. } => ExchangeOutcome::ConsentRequired,
        OboError::InvalidGrant => ExchangeOutcome::InvalidGrant,
        OboError::Unavailable { .. } | OboError::Timeout => ExchangeOutcome::Unavailable,
        _ => ExchangeOutcome::Error,
    }
}

/// Whom the per-user backoff of a [`request_fields`](TokenEndpoint::request_fields)
/// request counts against: its client (the blueprint or the agent), with the agent
/// user it names or (agent On-Behalf-Of) a digest of the user assertion, so that one
/// agent user's or one caller's request loop backs off that pair only.
fn fields_caller(fields: &[(&'static str, &str)]) -> String {
    let field = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let mut id = format!("agent:{}", field("client_id").unwrap_or_default());
    if let Some(user) = field("user_id").or_else(|| field("username")) {
        id.push(':');
        id.push_str(user);
    } else if let Some(assertion) = field("assertion") {
        let digest = crate::digest::sha256(assertion.as_bytes());
        id.push(':');
        id.extend(digest[..16].iter().map(|b| format!("{b:02x}")));
    }
    id
}

/// Who an exchange is for, as the backoff sees it: a tenant and a user (the
/// inbound token's `oid`, or a session's owner's).
#[derive(Clone, Copy)]
struct Caller<'a> {
    tid: &'a str,
    id: &'a str,
    /// Whether `tid` is a validated token's (an On-Behalf-Of exchange, a
    /// session's refresh), not one the app named: the metrics' tenant label.
    verified: bool,
}

fn parse_success(body: &[u8]) -> Option<Issued> {
    let s: Success = serde_json::from_slice(body).ok()?;
    if s.access_token.is_empty()
        || s.token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return None;
    }
    Some(Issued {
        access_token: BearerToken::new(s.access_token),
        expires_in: lifetime(&s.expires_in)?,
        scope: s.scope,
        refresh_token: s
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(SecretString::new),
    })
}

/// `expires_in` in whole seconds, clamped to [`MAX_TOKEN_LIFETIME`]: a JSON
/// number, or a string holding one (v1 endpoints send `"3599"`), of at least
/// one second. Zero, negative, fractional below one, non-finite or non-numeric
/// values are `None` (a bad response).
fn lifetime(value: &serde_json::Value) -> Option<i64> {
    let max = MAX_TOKEN_LIFETIME.as_secs() as i64;
    let seconds = match value {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => return (i > 0).then(|| i.min(max)),
            // Beyond i64, or with a fraction or an exponent.
            None => n.as_f64()?,
        },
        serde_json::Value::String(s) => match s.trim().parse::<i64>() {
            Ok(i) => return (i > 0).then(|| i.min(max)),
            Err(_) => s.trim().parse::<f64>().ok()?,
        },
        _ => return None,
    };
    if !seconds.is_finite() || seconds < 1.0 {
        return None;
    }
    // In range: the cast truncates the fraction.
    Some(if seconds >= max as f64 {
        max
    } else {
        seconds as i64
    })
}

/// Maps an OAuth error response to an [`OboError`].
fn classify(e: &ErrorBody, requested: &[&str], authority: &str) -> OboError {
    let sub = e.suberror.as_deref().unwrap_or("");
    let has = |code: i64| e.error_codes.contains(&code);
    if e.error == "consent_required" || sub == "consent_required" || has(65001) {
        return OboError::ConsentRequired {
            scopes: requested.iter().map(|s| (*s).to_owned()).collect(),
        };
    }
    if e.error == "interaction_required" || e.claims.is_some() {
        return OboError::InteractionRequired {
            claims: e.claims.clone().filter(|c| !c.is_empty()),
            authorization_uri: format!("{authority}/common/oauth2/authorize"),
        };
    }
    match e.error.as_str() {
        "invalid_grant" => OboError::InvalidGrant,
        "invalid_client"
        | "unauthorized_client"
        | "invalid_scope"
        | "invalid_request"
        | "unsupported_grant_type" => OboError::Misconfigured(format!(
            "the token endpoint answered `{}` ({})",
            e.error,
            aadsts(e)
        )),
        "temporarily_unavailable" => OboError::Unavailable { retry_after: None },
        _ => OboError::BadResponse,
    }
}

/// The AADSTS code of an error, e.g. `AADSTS50076`.
fn aadsts(e: &ErrorBody) -> String {
    if let Some(c) = e.error_codes.first() {
        return format!("AADSTS{c}");
    }
    e.error_description
        .as_deref()
        .and_then(|d| d.split(':').next())
        .filter(|c| c.starts_with("AADSTS") && c.len() < 20)
        .unwrap_or("")
        .to_owned()
}

fn first_line(s: Option<&str>) -> &str {
    let s = s.unwrap_or("");
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> ErrorBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn answers_are_interpreted_without_http() {
        use http::StatusCode;
        let run = |status, retry_after, body: &[u8]| {
            interpret(status, retry_after, body, &["s"], "https://a.example", "r")
        };
        let ok = run(
            StatusCode::OK,
            None,
            br#"{"access_token":"t","token_type":"Bearer","expires_in":3599}"#,
        );
        assert!(matches!(
            ok,
            Ok(Issued {
                expires_in: 3599,
                ..
            })
        ));
        let seven = Some(Duration::from_secs(7));
        assert!(matches!(
            run(StatusCode::TOO_MANY_REQUESTS, seven, b""),
            Err(Attempt::Transient { retry_after, timeout: false, throttled: Some(_) }) if retry_after == seven
        ));
        assert!(matches!(
            run(StatusCode::BAD_REQUEST, seven, br#"{"error":"temporarily_unavailable"}"#),
            Err(Attempt::Transient { retry_after, throttled: None, .. }) if retry_after == seven
        ));
        assert!(matches!(
            run(
                StatusCode::BAD_REQUEST,
                None,
                br#"{"error":"invalid_grant"}"#
            ),
            Err(Attempt::Refused(OboError::InvalidGrant))
        ));
        for (status, body) in [
            (StatusCode::BAD_REQUEST, b"<html>".as_slice()),
            (StatusCode::OK, b"{}".as_slice()),
        ] {
            assert!(matches!(
                run(status, None, body),
                Err(Attempt::Final(OboError::BadResponse))
            ));
        }
    }

    #[test]
    fn outcomes_of_failed_exchanges() {
        use ExchangeOutcome as O;
        let interaction = OboError::InteractionRequired {
            claims: None,
            authorization_uri: String::new(),
        };
        let consent = OboError::ConsentRequired { scopes: vec![] };
        let unavailable = OboError::Unavailable { retry_after: None };
        for (e, throttled, want) in [
            (&interaction, false, O::InteractionRequired),
            (&consent, false, O::ConsentRequired),
            (&OboError::InvalidGrant, false, O::InvalidGrant),
            (&unavailable, false, O::Unavailable),
            (&unavailable, true, O::Throttled),
            (&OboError::Timeout, false, O::Unavailable),
            (&OboError::BadResponse, false, O::Error),
            (&OboError::Misconfigured("x".into()), false, O::Error),
        ] {
            assert_eq!(
                outcome_of(e, throttled),
                want,
                "{e:?} throttled: {throttled}"
            );
        }
    }

    #[test]
    fn classification() {
        let s = ["https://graph.microsoft.com/User.Read"];
        assert!(matches!(
            classify(
                &body(
                    r#"{"error":"interaction_required","error_codes":[50076],"claims":"{\"access_token\":{}}"}"#
                ),
                &s,
                "https://a"
            ),
            OboError::InteractionRequired {
                claims: Some(_),
                ..
            }
        ));
        assert!(matches!(
            classify(
                &body(
                    r#"{"error":"invalid_grant","suberror":"consent_required","error_codes":[65001]}"#
                ),
                &s,
                "https://a"
            ),
            OboError::ConsentRequired { .. }
        ));
        assert!(matches!(
            classify(
                &body(r#"{"error":"invalid_grant","error_codes":[500133]}"#),
                &s,
                "https://a"
            ),
            OboError::InvalidGrant
        ));
        for e in ["invalid_client", "unauthorized_client", "invalid_scope"] {
            assert!(matches!(
                classify(&body(&format!(r#"{{"error":"{e}"}}"#)), &s, "https://a"),
                OboError::Misconfigured(_)
            ));
        }
        assert!(matches!(
            classify(&body(r#"{"error":"weird"}"#), &s, "https://a"),
            OboError::BadResponse
        ));
    }

    #[test]
    fn success_shapes() {
        let ok = parse_success(
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"x","scope":"a"}"#,
        )
        .unwrap();
        assert_eq!(ok.expires_in, 3599);
        assert_eq!(
            parse_success(br#"{"expires_in":"60","access_token":"x"}"#)
                .unwrap()
                .expires_in,
            60
        );
        assert!(parse_success(br#"{"expires_in":60,"access_token":""}"#).is_none());
        assert!(parse_success(br#"{"expires_in":0,"access_token":"x"}"#).is_none());
        assert!(
            parse_success(br#"{"token_type":"pop","expires_in":5,"access_token":"x"}"#).is_none()
        );
        assert!(parse_success(b"<html>").is_none());
    }

    #[test]
    fn expires_in_is_clamped_and_must_be_a_positive_number() {
        let max = MAX_TOKEN_LIFETIME.as_secs() as i64;
        let expires_in = |v: &str| {
            parse_success(
                format!(r#"{{"token_type":"Bearer","expires_in":{v},"access_token":"x"}}"#)
                    .as_bytes(),
            )
            .map(|i| i.expires_in)
        };
        for (v, want) in [
            ("3599", Some(3599)),
            ("\" 3599 \"", Some(3599)),
            ("1", Some(1)),
            ("59.9", Some(59)),
            ("3.6e3", Some(3600)),
            ("100800", Some(max)),
            ("100801", Some(max)),
            ("9223372036854775807", Some(max)),
            ("\"9223372036854775807\"", Some(max)),
            ("18446744073709551615", Some(max)),
            ("123456789012345678901234567890", Some(max)),
            ("1e30", Some(max)),
            ("\"1e30\"", Some(max)),
            ("1.7976931348623157e308", Some(max)),
            ("0", None),
            ("-1", None),
            ("-9223372036854775808", None),
            ("-1e30", None),
            ("0.5", None),
            ("\"0\"", None),
            ("\"-5\"", None),
            ("\"NaN\"", None),
            ("\"inf\"", None),
            ("\"\"", None),
            ("\"soon\"", None),
            ("null", None),
            ("true", None),
            ("[]", None),
            ("{}", None),
        ] {
            assert_eq!(expires_in(v), want, "expires_in {v}");
        }
        assert!(
            parse_success(br#"{"access_token":"x"}"#).is_none(),
            "missing"
        );
    }

    #[test]
    fn throttling_is_a_loop_for_aadsts50196_else_429() {
        use http::StatusCode as S;
        let loop_body = body(r#"{"error":"invalid_request","error_codes":[50196]}"#);
        let described = body(
            r#"{"error":"temporarily_unavailable","error_description":"AADSTS50196: The server terminated an operation because it encountered a client request loop."}"#,
        );
        let other = body(r#"{"error":"temporarily_unavailable","error_codes":[90033]}"#);
        let (looping, too_many) = (Some(Throttle::Loop), Some(Throttle::TooMany));
        assert_eq!(throttle_of(S::TOO_MANY_REQUESTS, None), too_many);
        assert_eq!(throttle_of(S::TOO_MANY_REQUESTS, Some(&other)), too_many);
        assert_eq!(throttle_of(S::TOO_MANY_REQUESTS, Some(&loop_body)), looping);
        assert_eq!(throttle_of(S::BAD_REQUEST, Some(&loop_body)), looping);
        assert_eq!(
            throttle_of(S::SERVICE_UNAVAILABLE, Some(&described)),
            looping
        );
        assert_eq!(throttle_of(S::SERVICE_UNAVAILABLE, Some(&other)), None);
        assert_eq!(throttle_of(S::SERVICE_UNAVAILABLE, None), None);
        assert_eq!(
            throttle_of(
                S::BAD_REQUEST,
                Some(&body(
                    r#"{"error":"invalid_grant","error_codes":[500133],"error_description":"AADSTS500133: x AADSTS50196:"}"#
                ))
            ),
            None
        );
    }

    #[test]
    fn aadsts_codes() {
        assert_eq!(
            aadsts(&body(r#"{"error":"x","error_codes":[50076]}"#)),
            "AADSTS50076"
        );
        assert_eq!(
            aadsts(&body(
                r#"{"error":"x","error_description":"AADSTS7000215: Invalid client secret"}"#
            )),
            "AADSTS7000215"
        );
        assert_eq!(aadsts(&body(r#"{"error":"x"}"#)), "");
    }
}
