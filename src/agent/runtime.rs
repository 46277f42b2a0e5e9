//! The agent token chain and its caches, one per layer.
//!
//! # Where it sits
//!
//! [`Agent`](super::Agent) handles call it; it shares the exchanger's settings
//! (client id, credential, clock, margins) and its token endpoint (one tenant
//! backoff for everything this API asks Entra).
//!
//! # What it holds
//!
//! - **T1** by (tenant, agent id): the blueprint's `client_credentials` token with
//!   `fmi_path` = the agent id, fresh until the refresh margin before it expires
//!   (on the injected clock).
//! - **T2** by (tenant, agent id): the agent's instance token, kept as T1.
//! - **Tokens** by [`TokenKey`]: tenant, agent id, fmi path, flow, user (the caller's
//!   `oid` and the SHA-256 of its token for agent OBO; the agent user's id for
//!   `user_fic`), scope set and `claims`. An entry of one agent can never serve
//!   another agent, this API's own On-Behalf-Of cache (a separate cache), or
//!   another user. Agent-user entries keep their refresh token: a stale entry is
//!   renewed with the refresh grant, and the full `user_fic` chain runs only
//!   when there is none or it is refused.
//!
//! # What it guarantees
//!
//! Every fill runs under moka's per-key compute lock: concurrent first requests
//! for one key share one request to Entra (one T1 per agent, one exchange per
//! key), and a stale entry is replaced once. Refusals Entra would repeat
//! (consent, interaction, `invalid_grant`, not an agent user) are remembered for
//! the negative TTL, under the key's lock: callers waiting on the key share the
//! refusal instead of each sending the refused request again.
//! Tokens never reach a log line; failures are logged with the agent id, the
//! flow and Entra's error code.

use std::sync::Arc;
use std::time::Instant;

use moka::future::Cache;
use moka::ops::compute::{CompResult, Op};

use super::error::{AgentError, Step};
use crate::digest::sha256;
use crate::exchange::cache::CachedToken;
use crate::exchange::endpoint::{Issued, TokenEndpoint, CLIENT_ASSERTION_TYPE, JWT_BEARER};
use crate::exchange::{cache_entry, ExchangeSettings, OboError};
use crate::metrics::Grant as Metered;
use crate::secret::{BearerToken, SecretString};

/// The resource of T1 and T2.
pub(crate) const TOKEN_EXCHANGE_SCOPE: &str = "api://AzureADTokenExchange/.default";

/// Which token a cache entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Flow {
    /// The blueprint's token for the agent (T1).
    Blueprint,
    /// The agent's instance token (T2).
    Instance,
    /// The agent's own app-only token.
    Autonomous,
    /// The agent's token on behalf of the human who called this API.
    OnBehalfOf,
    /// The agent's token as one of its agent users.
    AgentUser,
    /// This API's own app-only token (client credentials with its credential,
    /// no agent): [`OboLayer::app_token`](crate::OboLayer::app_token).
    App,
}

/// Everything a cached agent token depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub(crate) tid: Box<str>,
    pub(crate) agent: Box<str>,
    /// The `fmi_path` of the T1 behind the token (the agent id today).
    pub(crate) fmi_path: Box<str>,
    pub(crate) flow: Flow,
    /// The caller's `oid` and token digest (On-Behalf-Of), the agent user, or empty.
    pub(crate) user: Box<str>,
    /// The scope set, sorted and deduplicated.
    pub(crate) scopes: Box<str>,
    /// The `claims` request sent (capabilities), or empty.
    pub(crate) claims: Box<str>,
}

/// A cached agent token, with the refresh token of agent-user tokens.
#[derive(Debug)]
pub(crate) struct AgentEntry {
    pub(crate) token: Arc<CachedToken>,
    refresh_token: Option<SecretString>,
}

/// The agent chain of one layer.
pub(crate) struct AgentRuntime {
    settings: Arc<ExchangeSettings>,
    endpoint: Arc<TokenEndpoint>,
    /// The `claims` of every request (client capabilities), if configured.
    capabilities: Option<String>,
    tokens: Cache<TokenKey, Arc<AgentEntry>>,
    negative: Cache<TokenKey, AgentError>,
    /// The last failure of each key and when it was recorded: callers that were
    /// waiting on the key's lock meanwhile share it instead of each asking Entra
    /// again (as `try_get_with` shares an error with its waiters).
    failures: Cache<TokenKey, (Instant, AgentError)>,
}

impl std::fmt::Debug for AgentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRuntime")
            .field("entries", &self.tokens.entry_count())
            .finish_non_exhaustive()
    }
}

/// A claims challenge to answer: the refused token and the `claims` to send
/// (the challenge merged with the capabilities).
#[derive(Clone, Copy)]
pub(crate) struct Renewal<'a> {
    pub(crate) stale: &'a Arc<CachedToken>,
    pub(crate) claims: &'a str,
}

/// Who a delegated agent token is for.
pub(crate) enum Subject<'a> {
    /// A human who called this API, with the token they called it with.
    Caller {
        oid: &'a str,
        assertion: &'a BearerToken,
    },
    /// One of the agent's agent users.
    AgentUser(&'a super::AgentUser),
}

impl AgentRuntime {
    pub(crate) fn new(settings: Arc<ExchangeSettings>, endpoint: Arc<TokenEndpoint>) -> Self {
        let capabilities =
            crate::exchange::claims::request_claims(&settings.client_capabilities, None)
                .ok()
                .flatten();
        Self {
            tokens: Cache::builder()
                .max_capacity(settings.cache_max_bytes / 4096 + 64)
                .build(),
            negative: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(
                    settings
                        .negative_ttl
                        .max(std::time::Duration::from_millis(1)),
                )
                .build(),
            failures: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
            settings,
            endpoint,
            capabilities,
        }
    }

    /// The key of `flow` for `agent` in `tid`.
    fn key(&self, tid: &str, agent: &str, flow: Flow, user: String, scopes: &[&str]) -> TokenKey {
        let mut sorted: Vec<&str> = scopes.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        TokenKey {
            tid: tid.to_ascii_lowercase().into(),
            agent: agent.into(),
            fmi_path: agent.into(),
            flow,
            user: user.into(),
            scopes: sorted.join(" ").into(),
            claims: self.capabilities.clone().unwrap_or_default().into(),
        }
    }

    /// The blueprint's token for `agent` in `tid` (T1), from the cache when fresh.
    pub(crate) async fn t1(&self, tid: &str, agent: &str) -> Result<Arc<CachedToken>, AgentError> {
        let key = self.key(tid, agent, Flow::Blueprint, String::new(), &[]);
        self.cached(key, None, |_| async move {
            let fields = [
                ("grant_type", "client_credentials"),
                ("scope", TOKEN_EXCHANGE_SCOPE),
                ("fmi_path", agent),
            ];
            self.request(tid, &fields, true, Step::Blueprint, &[])
                .await
                .map(|i| (i, None))
                .map_err(|e| e.for_agent(agent))
        })
        .await
    }

    /// The agent's instance token (T2), from the cache when fresh.
    async fn t2(&self, tid: &str, agent: &str) -> Result<Arc<CachedToken>, AgentError> {
        let key = self.key(tid, agent, Flow::Instance, String::new(), &[]);
        self.cached(key, None, |_| async move {
            let t1 = self.t1(tid, agent).await?;
            let fields = [
                ("grant_type", "client_credentials"),
                ("scope", TOKEN_EXCHANGE_SCOPE),
            ];
            self.as_agent(tid, agent, (&t1, None), &fields, Step::Instance, &[])
                .await
                .map(|i| (i, None))
        })
        .await
    }

    /// The agent's own app-only token for `scopes` (`{resource}/.default`).
    pub(crate) async fn autonomous(
        &self,
        tid: &str,
        agent: &str,
        scopes: &'static [&'static str],
        renewal: Option<Renewal<'_>>,
    ) -> Result<Arc<CachedToken>, AgentError> {
        let key = self.key(tid, agent, Flow::Autonomous, String::new(), scopes);
        let claims = renewal.map(|r| r.claims);
        self.cached(key, renewal.map(|r| r.stale), |_| async move {
            let t1 = self.t1(tid, agent).await?;
            let scope = scopes.join(" ");
            let fields = [("grant_type", "client_credentials"), ("scope", &scope)];
            self.as_agent(tid, agent, (&t1, claims), &fields, Step::Token, scopes)
                .await
                .map(|i| (i, None))
        })
        .await
    }

    /// This API's own app-only token for `scopes` in `tid` (`client_credentials`
    /// with the configured credential), cached under [`Flow::App`] with the
    /// client id as its agent: it never serves, nor is served by, an agent's entry.
    pub(crate) async fn app(
        &self,
        tid: &str,
        scopes: &'static [&'static str],
    ) -> Result<Arc<CachedToken>, AgentError> {
        let client_id = self.settings.client_id.as_str();
        let mut key = self.key(tid, client_id, Flow::App, String::new(), scopes);
        key.fmi_path = "".into();
        self.cached(key, None, |_| async move {
            let scope = scopes.join(" ");
            let mut fields = vec![("grant_type", "client_credentials"), ("scope", &*scope)];
            if let Some(claims) = self.capabilities.as_deref() {
                fields.push(("claims", claims));
            }
            self.endpoint
                .request_fields(tid, &fields, true, scopes, Metered::ClientCredentials)
                .await
                .map(|i| (i, None))
                .map_err(AgentError::Exchange)
        })
        .await
    }

    /// The agent's delegated token for `subject` and `scopes`: On-Behalf-Of the
    /// caller, or `user_fic` (then the refresh grant) for an agent user.
    pub(crate) async fn delegated(
        &self,
        tid: &str,
        agent: &str,
        subject: Subject<'_>,
        scopes: &'static [&'static str],
        renewal: Option<Renewal<'_>>,
    ) -> Result<Arc<CachedToken>, AgentError> {
        let (flow, user) = match &subject {
            Subject::Caller { oid, assertion } => (
                Flow::OnBehalfOf,
                format!("{oid}:{}", hex(&sha256(assertion.expose().as_bytes()))),
            ),
            Subject::AgentUser(user) => (Flow::AgentUser, user.key()),
        };
        let key = self.key(tid, agent, flow, user, scopes);
        let subject = &subject;
        let claims = renewal.map(|r| r.claims);
        self.cached(key, renewal.map(|r| r.stale), |stale| async move {
            let t1 = self.t1(tid, agent).await?;
            let scope = scopes.join(" ");
            match subject {
                Subject::Caller { assertion, .. } => {
                    let fields = [
                        ("grant_type", JWT_BEARER),
                        ("requested_token_use", "on_behalf_of"),
                        ("assertion", assertion.expose()),
                        ("scope", &scope),
                        ("client_info", "1"),
                    ];
                    self.as_agent(tid, agent, (&t1, claims), &fields, Step::Token, scopes)
                        .await
                        .map(|i| (i, None))
                }
                Subject::AgentUser(user) => {
                    let scope = format!("{scope} openid profile offline_access");
                    if let Some(refresh) = stale.and_then(|s| s.refresh_token.clone()) {
                        let fields = [
                            ("grant_type", "refresh_token"),
                            ("refresh_token", refresh.expose()),
                            ("scope", &scope),
                            ("client_info", "1"),
                        ];
                        match self
                            .as_agent(tid, agent, (&t1, claims), &fields, Step::Token, scopes)
                            .await
                        {
                            Ok(issued) => return Ok(keep_refresh(issued, Some(refresh))),
                            Err(AgentError::Exchange(OboError::InvalidGrant)) => {
                                tracing::debug!(
                                    agent,
                                    "agent user's refresh token refused; redeeming T2 again"
                                );
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    let t2 = self.t2(tid, agent).await?;
                    let (name, value) = user.field();
                    let fields = [
                        ("grant_type", "user_fic"),
                        (
                            "user_federated_identity_credential",
                            t2.access_token.expose(),
                        ),
                        (name, value),
                        ("scope", &scope),
                        ("client_info", "1"),
                    ];
                    self.as_agent(tid, agent, (&t1, claims), &fields, Step::AgentUser, scopes)
                        .await
                        .map(|i| keep_refresh(i, None))
                }
            }
        })
        .await
    }

    /// The entry for `key`: the cached one while fresh on the injected clock,
    /// else `fill` (given the stale entry, if any) under the key's compute lock;
    /// remembered refusals are answered without a request. With `challenged`
    /// (a token a claims challenge refused), that token is replaced whatever its
    /// age, once: callers arriving with it after the first get its replacement.
    async fn cached<F, Fut>(
        &self,
        key: TokenKey,
        challenged: Option<&Arc<CachedToken>>,
        fill: F,
    ) -> Result<Arc<CachedToken>, AgentError>
    where
        F: FnOnce(Option<Arc<AgentEntry>>) -> Fut,
        Fut: std::future::Future<Output = Result<(Issued, Option<SecretString>), AgentError>>,
    {
        let now = self.settings.clock.now();
        if challenged.is_none() {
            if let Some(entry) = self.tokens.get(&key).await {
                if now < entry.token.fresh_until {
                    return Ok(Arc::clone(&entry.token));
                }
            }
            if let Some(refusal) = self.negative.get(&key).await {
                return Err(refusal);
            }
        }
        let margin = self.settings.refresh_margin;
        let (negative, failures) = (&self.negative, &self.failures);
        let key_ref = &key;
        let waiting_since = Instant::now();
        let outcome = self
            .tokens
            .entry(key.clone())
            .and_try_compute_with(|current| async move {
                let now = self.settings.clock.now();
                let stale = match current {
                    Some(e)
                        if now < e.value().token.fresh_until
                            && !challenged.is_some_and(|c| Arc::ptr_eq(c, &e.value().token)) =>
                    {
                        return Ok(Op::Nop)
                    }
                    Some(e) => Some(e.into_value()),
                    None => None,
                };
                // Callers that waited on this key while another's request was
                // refused get that refusal, not a request of their own.
                if challenged.is_none() {
                    if let Some(refusal) = negative.get(key_ref).await {
                        return Err(refusal);
                    }
                }
                // A failure recorded while this caller waited (an outage, a hang
                // until the timeout, a refused T1) is this caller's answer too:
                // queued callers must not each wait out their own attempt.
                if let Some((at, failure)) = failures.get(key_ref).await {
                    if at >= waiting_since {
                        return Err(failure);
                    }
                }
                let (issued, refresh) = match fill(stale).await {
                    Ok(filled) => filled,
                    Err(e) => {
                        // Remembered before the key's lock is released.
                        if e.is_negative_cacheable() {
                            negative.insert(key_ref.clone(), e.clone()).await;
                        }
                        failures
                            .insert(key_ref.clone(), (Instant::now(), e.clone()))
                            .await;
                        return Err(e);
                    }
                };
                let refresh_token = issued.refresh_token.clone().or(refresh);
                let token = cache_entry(issued, now, margin, &[]);
                Ok::<_, AgentError>(Op::Put(Arc::new(AgentEntry {
                    token: Arc::new(token),
                    refresh_token,
                })))
            })
            .await;
        match outcome {
            Ok(
                CompResult::Inserted(e) | CompResult::ReplacedWith(e) | CompResult::Unchanged(e),
            ) => Ok(Arc::clone(&e.into_value().token)),
            Ok(CompResult::Removed(_) | CompResult::StillNone(_)) => {
                Err(AgentError::Exchange(OboError::BadResponse))
            }
            Err(e) => Err(e),
        }
    }

    /// A request authenticated as `agent` with `t1` as its client assertion.
    async fn as_agent(
        &self,
        tid: &str,
        agent: &str,
        (t1, claims): (&CachedToken, Option<&str>),
        grant: &[(&'static str, &str)],
        step: Step,
        requested: &[&str],
    ) -> Result<Issued, AgentError> {
        let mut fields = vec![
            ("client_id", agent),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", t1.access_token.expose()),
        ];
        fields.extend_from_slice(grant);
        if let Some(claims) = claims.or(self.capabilities.as_deref()) {
            fields.push(("claims", claims));
        }
        self.request(tid, &fields, false, step, requested)
            .await
            .map_err(|e| e.for_agent(agent))
    }

    /// One request at the token endpoint, its failure named by `step`.
    async fn request(
        &self,
        tid: &str,
        fields: &[(&'static str, &str)],
        own_credential: bool,
        step: Step,
        requested: &[&str],
    ) -> Result<Issued, AgentError> {
        let result = self
            .endpoint
            .request_fields(
                tid,
                fields,
                own_credential,
                requested,
                metered(step, fields),
            )
            .await;
        result.map_err(|e| AgentError::at(step, e))
    }

    /// Whether claims challenges are answered (client capabilities configured).
    pub(crate) fn answers_claims_challenges(&self) -> bool {
        self.capabilities.is_some()
    }
}

/// The `grant` label of an agent's request at `step` with `fields`.
fn metered(step: Step, fields: &[(&'static str, &str)]) -> Metered {
    match step {
        Step::Blueprint => Metered::AgentBlueprint,
        Step::Instance => Metered::AgentInstance,
        Step::AgentUser => Metered::AgentUser,
        Step::Token => match fields.iter().find(|(name, _)| *name == "grant_type") {
            Some((_, "client_credentials")) => Metered::AgentApp,
            // An agent user's token, refreshed.
            Some((_, "refresh_token")) => Metered::AgentUser,
            _ => Metered::AgentObo,
        },
    }
}

/// `issued` with `previous`, kept as its refresh token when the answer carries none.
fn keep_refresh(issued: Issued, previous: Option<SecretString>) -> (Issued, Option<SecretString>) {
    (issued, previous)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
