//! Extractors: the validated [`Principal`], the [`Require`] guard, and the
//! On-Behalf-Of [`OboToken`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;

use crate::downstream::{DownstreamClient, DownstreamError, GraphClient, Renew, Renewal};
use crate::exchange::cache::CachedToken;
use crate::exchange::OboError;
use crate::layer::{OboContext, Shared};
use crate::policy::{check_requirement, Requirement};
use crate::rejection::AuthRejection;
use crate::scope::Scope;
use crate::secret::BearerToken;
use crate::session::{SessionError, SessionKey};
use crate::validate::Principal;

fn context(parts: &Parts) -> Result<&OboContext, AuthRejection> {
    OboContext::from_extensions(&parts.extensions)
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match &context(parts)?.auth {
            Some(a) => Ok(a.principal.clone()),
            None => Err(AuthRejection::MissingToken),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(context(parts)?.auth.as_ref().map(|a| a.principal.clone()))
    }
}

/// A guard extractor: the route runs only if the caller meets `R`
/// (otherwise 403 `insufficient_scope`). Derefs to the [`Principal`].
///
/// ```
/// use axum::{routing::get, Router};
/// use axum_obo::{Require, Requirement};
///
/// struct ReadTasks;
/// impl Requirement for ReadTasks {
///     const SCOPES: &'static [&'static str] = &["Tasks.Read"];
///     const ROLES: &'static [&'static str] = &["Tasks.Read.All"];
/// }
///
/// async fn tasks(caller: Require<ReadTasks>) -> String {
///     format!("tasks of {}", caller.oid())
/// }
/// let app: Router = Router::new().route("/tasks", get(tasks));
/// ```
pub struct Require<R: Requirement>(pub Principal, PhantomData<fn() -> R>);

impl<R: Requirement> Require<R> {
    /// Evaluated when a handler takes `Require<R>`: a requirement that names no
    /// scope and no role is a compile-time error, never an open door.
    const NAMES_SOMETHING: () = assert!(
        !(R::SCOPES.is_empty() && R::ROLES.is_empty()),
        "a Requirement must name at least one scope (SCOPES) or role (ROLES)"
    );

    /// The caller.
    pub fn into_inner(self) -> Principal {
        self.0
    }
}

impl<R: Requirement> std::ops::Deref for Require<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl<R: Requirement> fmt::Debug for Require<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Require").field(&self.0).finish()
    }
}

impl<S: Send + Sync, R: Requirement> FromRequestParts<S> for Require<R> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        #[allow(clippy::let_unit_value)]
        let () = Self::NAMES_SOMETHING;
        let principal =
            <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        check_requirement::<R>(&principal).map_err(|f| {
            tracing::debug!(oid = principal.oid(), "route requirement not met: {f}");
            AuthRejection::Forbidden(f)
        })?;
        Ok(Require(principal, PhantomData))
    }
}

/// A downstream access token for the signed-in user, obtained with the
/// On-Behalf-Of flow for the scopes of `S`, from the cache when possible.
///
/// The exchange runs only when a handler takes this extractor, at most once per
/// request (memoized), and at most once per user, scope set and inbound token
/// across requests (cached, single-flight). Failures are relayed as described in
/// [`AuthRejection`].
///
/// The token leaves the process only through [`graph`](Self::graph) and
/// [`downstream`](Self::downstream), whose clients refuse URLs outside their base's
/// origin; there is no way to attach it to an arbitrary URL:
///
/// ```compile_fail
/// # fn f(t: axum_obo::OboToken<axum_obo::GraphUserRead>) {
/// let _ = t.request(Default::default(), "https://evil.example/");
/// # }
/// ```
///
/// ```compile_fail
/// # fn f(t: axum_obo::OboToken<axum_obo::GraphUserRead>) {
/// let _ = t.http();
/// # }
/// ```
///
/// ```
/// use axum_obo::{GraphUserRead, OboToken};
///
/// async fn me(token: OboToken<GraphUserRead>) -> Result<String, axum_obo::AuthRejection> {
///     let me = token.graph().me().await?;
///     Ok(me.display_name.unwrap_or_default())
/// }
/// ```
pub struct OboToken<S: Scope> {
    token: Arc<CachedToken>,
    shared: Arc<Shared>,
    /// The caller and its inbound token, to answer a claims challenge (re-exchange).
    principal: Principal,
    assertion: BearerToken,
    _scope: PhantomData<fn() -> S>,
}

impl<S: Scope> Clone for OboToken<S> {
    fn clone(&self) -> Self {
        Self {
            token: Arc::clone(&self.token),
            shared: Arc::clone(&self.shared),
            principal: self.principal.clone(),
            assertion: self.assertion.clone(),
            _scope: PhantomData,
        }
    }
}

impl<S: Scope> OboToken<S> {
    /// The exchange behind the extractor and [`OboContext::obo_token`].
    pub(crate) async fn exchange(ctx: &OboContext) -> Result<Self, AuthRejection> {
        let auth = ctx.auth.as_ref().ok_or(AuthRejection::MissingToken)?;
        let shared = Arc::clone(&ctx.shared);
        let token = shared
            .exchanger
            .token(&auth.principal, &auth.token, S::SCOPES)
            .await?;
        Ok(OboToken {
            token,
            shared,
            principal: auth.principal.clone(),
            assertion: auth.token.clone(),
            _scope: PhantomData,
        })
    }

    /// The downstream access token. Send it only to the downstream API; never
    /// return it to the client or log it.
    pub fn access_token(&self) -> &BearerToken {
        &self.token.access_token
    }

    /// Expiry of the token, seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.token.expires_at
    }

    /// The scopes granted.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.token.scopes.iter().map(|s| &**s)
    }

    /// A Microsoft Graph client (`{graph_url}/v1.0`) authenticated with this token,
    /// on the crate's shared HTTP client; its claims challenges name the configured
    /// authority. Infallible: `graph_url` was checked when the configuration was built.
    ///
    /// This and [`downstream`](Self::downstream) are the only ways this extractor
    /// sends the token anywhere: both refuse URLs outside their base's origin.
    ///
    /// With client capabilities configured
    /// ([`client_capabilities`](crate::OboConfigBuilder::client_capabilities), e.g.
    /// `cp1`), a claims challenge from the API (Continuous Access Evaluation) is
    /// answered: the cached token is replaced by a re-exchange carrying the
    /// challenge's claims, and the call is retried once (see
    /// `docs/cae.md`). Without them, the challenge is relayed.
    pub fn graph(&self) -> GraphClient {
        let graph = self
            .shared
            .graph
            .clone()
            .with_token(self.token.access_token.clone());
        match self.renewal() {
            Some(renew) => graph.with_renewal(renew),
            None => graph,
        }
    }

    /// A client for any other downstream API at `base_url` (e.g.
    /// `https://api.contoso.com/v2`), authenticated with this token, on the crate's
    /// shared HTTP client; its claims challenges name the configured authority. Use a
    /// scope type whose scopes belong to that API.
    /// Claims challenges are answered as by [`graph`](Self::graph).
    pub fn downstream(&self, base_url: &str) -> Result<DownstreamClient, DownstreamError> {
        let client = DownstreamClient::new(
            self.shared.http.clone(),
            base_url,
            self.token.access_token.clone(),
        )?
        .with_authority(self.shared.config.authority_host());
        Ok(match self.renewal() {
            Some(renew) => client.with_renewal(renew),
            None => client,
        })
    }

    /// Starts a long-running session for the caller, for work that outlives this
    /// request: one On-Behalf-Of exchange for the scopes of `S` plus
    /// `offline_access`, whose refresh token is kept in the session store. Returns
    /// the session's key: a bearer capability for this user's delegated access,
    /// to be kept like a secret (e.g. in a job queue). Use it later, from any task,
    /// with [`OboLayer::sessions`](crate::OboLayer::sessions).
    ///
    /// ```
    /// use axum_obo::{session::SessionError, GraphUserRead, OboToken};
    ///
    /// async fn start(token: OboToken<GraphUserRead>) -> Result<(), SessionError> {
    ///     let key = token.start_session().await?;
    ///     // Hand `key.expose()` to the job queue.
    ///     # let _ = key;
    ///     Ok(())
    /// }
    /// ```
    ///
    /// This costs a second exchange after the extractor's own; a handler that
    /// only starts a session takes [`OboContext`] and calls
    /// [`OboContext::start_session`] (one exchange).
    pub async fn start_session(&self) -> Result<SessionKey, SessionError> {
        start_session(&self.shared, &self.principal, &self.assertion, S::SCOPES).await
    }

    /// The claims-challenge hook of this token's clients, when capabilities are configured.
    fn renewal(&self) -> Option<Arc<dyn Renew>> {
        self.shared.exchanger.answers_claims_challenges().then(|| {
            Arc::new(Reexchange {
                shared: Arc::clone(&self.shared),
                principal: self.principal.clone(),
                assertion: self.assertion.clone(),
                stale: Arc::clone(&self.token),
                scopes: S::SCOPES,
            }) as Arc<dyn Renew>
        })
    }
}

/// A session for `principal` through one On-Behalf-Of exchange of `assertion`
/// with `offline_access` (after the per-user start limit admits it; a token that
/// cannot be exchanged, e.g. app-only, is refused first and counts no start).
async fn start_session(
    shared: &Shared,
    principal: &Principal,
    assertion: &BearerToken,
    scopes: &'static [&'static str],
) -> Result<SessionKey, SessionError> {
    shared
        .exchanger
        .can_exchange(principal)
        .map_err(SessionError::from_refresh)?;
    shared.sessions.admit_start(principal)?;
    let issued = shared
        .exchanger
        .exchange_offline(principal, assertion, scopes)
        .await
        .map_err(|e| match e {
            OboError::InvalidGrant => SessionError::Exchange(e),
            e => SessionError::from_refresh(e),
        })?;
    shared.sessions.create(principal, issued, scopes).await
}

impl OboContext {
    /// Starts a long-running session for the caller with **one** On-Behalf-Of
    /// exchange for the scopes of `S` plus `offline_access` (its access token is
    /// the session's first, cached), as [`OboToken::start_session`] does without
    /// the extractor's exchange before it. Returns the session's key, a bearer
    /// capability to keep like a secret. An anonymous request (on a layer that
    /// allows them) has no one to start a session for: [`SessionError::Unknown`]
    /// (401 as an [`AuthRejection`]).
    ///
    /// Starts are bounded per user
    /// ([`session_start_limit`](crate::OboConfigBuilder::session_start_limit)):
    /// past the bound, [`SessionError::TooManySessions`] (429 with `Retry-After`
    /// once turned into an [`AuthRejection`]), without asking Entra.
    ///
    /// ```
    /// use axum_obo::layer::OboContext;
    /// use axum_obo::{AuthRejection, GraphUserRead};
    ///
    /// async fn start_job(ctx: OboContext) -> Result<(), AuthRejection> {
    ///     let key = ctx.start_session::<GraphUserRead>().await?;
    ///     // Hand `key.expose()` to the job queue.
    ///     # let _ = key;
    ///     Ok(())
    /// }
    /// ```
    pub async fn start_session<S: Scope>(&self) -> Result<SessionKey, SessionError> {
        let auth = self.auth.as_ref().ok_or(SessionError::Unknown)?;
        start_session(&self.shared, &auth.principal, &auth.token, S::SCOPES).await
    }
}

/// The layer's context as an extractor (a clone: cheap), for handlers that use
/// it directly, e.g. [`OboContext::start_session`]. Without the layer: 500,
/// [`AuthRejection::MissingLayer`]. Anonymous requests (on a layer that allows
/// them) get a context without a principal.
impl<S: Send + Sync> FromRequestParts<S> for OboContext {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        context(parts).cloned()
    }
}

/// The claims-challenge hook of an [`OboToken`]'s clients: one re-exchange of the
/// caller's inbound token with the challenge's claims, replacing `stale` in the cache.
struct Reexchange {
    shared: Arc<Shared>,
    principal: Principal,
    assertion: BearerToken,
    stale: Arc<CachedToken>,
    scopes: &'static [&'static str],
}

impl Renew for Reexchange {
    fn renew<'a>(&'a self, challenge: &'a str) -> Renewal<'a> {
        Box::pin(async move {
            let exchanger = &self.shared.exchanger;
            let Ok(claims) = exchanger.challenge_claims(challenge) else {
                // Neither sent to Entra nor relayed (the client checks the same shape
                // before it gets here).
                tracing::warn!(
                    oid = self.principal.oid(),
                    "downstream claims challenge is not a bounded access-token claims request; refused"
                );
                return Err(DownstreamError::Unauthorized);
            };
            let renewed = exchanger
                .reexchange(
                    &self.principal,
                    &self.assertion,
                    self.scopes,
                    &self.stale,
                    &claims,
                )
                .await;
            match renewed {
                Ok(token) => Ok(Some(token.access_token.clone())),
                Err(OboError::InteractionRequired {
                    claims: Some(claims),
                    authorization_uri,
                }) => {
                    tracing::debug!(
                        oid = self.principal.oid(),
                        "claims challenge needs the user; relaying Entra's"
                    );
                    Err(DownstreamError::ClaimsChallenge {
                        claims,
                        authorization_uri,
                    })
                }
                Err(e) => {
                    tracing::warn!(oid = self.principal.oid(), error = %e, "cannot answer a downstream claims challenge; relayed as is");
                    Ok(None)
                }
            }
        })
    }
}

impl<S: Scope> fmt::Debug for OboToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OboToken")
            .field("access_token", &self.token.access_token)
            .field("expires_at", &self.token.expires_at)
            .field("scopes", &self.token.scopes)
            .finish()
    }
}

/// Per-request memo of an exchanged token.
struct Memo<S: Scope>(OboToken<S>);

impl<S: Scope> Clone for Memo<S> {
    fn clone(&self) -> Self {
        Memo(self.0.clone())
    }
}

impl<St: Send + Sync, S: Scope> FromRequestParts<St> for OboToken<S> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        if let Some(Memo(t)) = parts.extensions.get::<Memo<S>>() {
            return Ok(t.clone());
        }
        let t = Self::exchange(context(parts)?).await?;
        parts.extensions.insert(Memo(t.clone()));
        Ok(t)
    }
}
