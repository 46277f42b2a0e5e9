//! [`Agent`] handles, the [`AgentToken`] they hand out, and the [`AgentObo`] extractor.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;

use super::error::{AgentError, AgentRejection};
use super::runtime::{Renewal, Subject};
use crate::downstream::{DownstreamClient, DownstreamError, GraphClient, Renew};
use crate::exchange::cache::CachedToken;
use crate::exchange::OboError;
use crate::layer::{OboContext, OboLayer, Shared};
use crate::rejection::AuthRejection;
use crate::scope::Scope;
use crate::secret::BearerToken;
use crate::validate::TokenKind;

/// An agent identity of this API's blueprint. Cheap to clone; its tokens are
/// cached in the layer it came from ([`OboLayer::agent`]), so every handle of the
/// same agent shares them.
#[derive(Clone)]
pub struct Agent {
    pub(crate) id: Arc<str>,
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent").field("id", &self.id).finish()
    }
}

/// An agent user of an agent identity: by object id or by UPN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AgentUser {
    /// The agent user's object id (`user_id`).
    ObjectId(String),
    /// The agent user's user principal name (`username`).
    Upn(String),
}

impl AgentUser {
    /// The cache key part naming the user, ASCII case-insensitive as Entra
    /// compares them. Never Unicode folding: it would map names Entra refuses (the
    /// Kelvin sign `K` for `k`) onto another user's entry.
    pub(crate) fn key(&self) -> String {
        match self {
            AgentUser::ObjectId(oid) => format!("oid:{}", oid.to_ascii_lowercase()),
            AgentUser::Upn(upn) => format!("upn:{}", upn.to_ascii_lowercase()),
        }
    }

    /// The `user_fic` form field naming the user.
    pub(crate) fn field(&self) -> (&'static str, &str) {
        match self {
            AgentUser::ObjectId(oid) => ("user_id", oid),
            AgentUser::Upn(upn) => ("username", upn),
        }
    }
}

impl OboLayer {
    /// The agent identity `id` (its client id, a GUID) of this API's blueprint.
    /// Nothing is requested until a token is asked for; an `id` that is not a
    /// child of the blueprint shows then, as [`AgentError::Blueprint`].
    pub fn agent(&self, id: &str) -> Result<Agent, AgentError> {
        if !crate::validate::is_guid(id) {
            return Err(AgentError::InvalidAgentId);
        }
        Ok(Agent {
            id: id.to_ascii_lowercase().into(),
            shared: Arc::clone(self.shared()),
        })
    }
}

impl Agent {
    /// The agent identity's client id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// **Autonomous**: the agent's own app-only token in tenant `tid` for the
    /// scopes of `S` (one `{resource}/.default`).
    pub async fn app_token<S: Scope>(&self, tid: &str) -> Result<AgentToken<S>, AgentError> {
        check_tenant(tid)?;
        let token = self
            .shared
            .agents
            .autonomous(tid, &self.id, S::SCOPES, None)
            .await?;
        Ok(self.token(token, tid, Owned::Autonomous))
    }

    /// **Agent On-Behalf-Of**: the agent's token for the scopes of `S`, acting for
    /// the human who called this API (the caller's token, whose audience is this
    /// API, is the assertion). App-only callers are refused without a request.
    pub async fn on_behalf_of<S: Scope>(
        &self,
        ctx: &OboContext,
    ) -> Result<AgentToken<S>, AgentRejection> {
        let token = self.on_behalf_of_scopes(ctx, S::SCOPES).await?;
        let auth = ctx.auth.as_ref().ok_or(AuthRejection::MissingToken)?;
        let owned = Owned::Caller {
            oid: auth.principal.oid().to_owned(),
            assertion: auth.token.clone(),
        };
        Ok(self.token(token, auth.principal.tid(), owned))
    }

    /// The agent On-Behalf-Of token of the caller in `ctx` for `scopes`.
    pub(crate) async fn on_behalf_of_scopes(
        &self,
        ctx: &OboContext,
        scopes: &'static [&'static str],
    ) -> Result<Arc<CachedToken>, AgentRejection> {
        let auth = ctx.auth.as_ref().ok_or(AuthRejection::MissingToken)?;
        let principal = &auth.principal;
        if principal.kind() == TokenKind::App {
            return Err(AgentError::Exchange(OboError::AppOnlyToken).into());
        }
        let now = self.shared.exchanger.settings().clock.now();
        let leeway =
            i64::try_from(self.shared.exchanger.settings().leeway.as_secs()).unwrap_or(i64::MAX);
        if principal.expires_at().saturating_sub(now) <= leeway {
            return Err(AgentError::Exchange(OboError::InboundTokenExpiring).into());
        }
        let subject = Subject::Caller {
            oid: principal.oid(),
            assertion: &auth.token,
        };
        Ok(self
            .shared
            .agents
            .delegated(principal.tid(), &self.id, subject, scopes, None)
            .await?)
    }

    /// **Agent user**: the agent's token as its agent user `user` in tenant `tid`,
    /// for the scopes of `S`: the instance token T2 redeemed with `user_fic`, then
    /// the kept refresh token while it works.
    pub async fn as_user<S: Scope>(
        &self,
        tid: &str,
        user: &AgentUser,
    ) -> Result<AgentToken<S>, AgentError> {
        check_tenant(tid)?;
        let token = self
            .shared
            .agents
            .delegated(tid, &self.id, Subject::AgentUser(user), S::SCOPES, None)
            .await?;
        Ok(self.token(token, tid, Owned::AgentUser(user.clone())))
    }

    fn token<S: Scope>(&self, token: Arc<CachedToken>, tid: &str, subject: Owned) -> AgentToken<S> {
        let renew = self.shared.agents.answers_claims_challenges().then(|| {
            Arc::new(AgentRenew {
                agent: self.clone(),
                tid: tid.to_owned(),
                subject,
                scopes: S::SCOPES,
                stale: Arc::clone(&token),
            }) as Arc<dyn Renew>
        });
        AgentToken {
            token,
            shared: Arc::clone(&self.shared),
            renew,
            _scope: PhantomData,
        }
    }
}

/// A tenant given by the application must be a GUID: it becomes a path segment
/// of the token endpoint's URL.
fn check_tenant(tid: &str) -> Result<(), AgentError> {
    if crate::validate::is_guid(tid) {
        Ok(())
    } else {
        Err(AgentError::InvalidTenant)
    }
}

/// Whom a token was obtained for, kept to obtain it again.
enum Owned {
    Autonomous,
    Caller { oid: String, assertion: BearerToken },
    AgentUser(AgentUser),
}

/// The claims-challenge hook of an [`AgentToken`]'s clients (Continuous Access
/// Evaluation): the agent's flow once more with the challenge's claims, replacing
/// `stale` in the cache; as [`OboToken`](crate::OboToken)'s re-exchange.
struct AgentRenew {
    agent: Agent,
    tid: String,
    subject: Owned,
    scopes: &'static [&'static str],
    stale: Arc<CachedToken>,
}

impl Renew for AgentRenew {
    fn renew<'a>(&'a self, challenge: &'a str) -> crate::downstream::Renewal<'a> {
        Box::pin(async move {
            let shared = &self.agent.shared;
            let Ok(claims) = shared.exchanger.challenge_claims(challenge) else {
                tracing::warn!(agent = %self.agent.id, "downstream claims challenge is not a JSON object; relayed as is");
                return Ok(None);
            };
            let renewal = Some(Renewal {
                stale: &self.stale,
                claims: &claims,
            });
            let (tid, agent) = (self.tid.as_str(), &*self.agent.id);
            let renewed = match &self.subject {
                Owned::Autonomous => {
                    shared
                        .agents
                        .autonomous(tid, agent, self.scopes, renewal)
                        .await
                }
                Owned::Caller { oid, assertion } => {
                    let subject = Subject::Caller { oid, assertion };
                    shared
                        .agents
                        .delegated(tid, agent, subject, self.scopes, renewal)
                        .await
                }
                Owned::AgentUser(user) => {
                    let subject = Subject::AgentUser(user);
                    shared
                        .agents
                        .delegated(tid, agent, subject, self.scopes, renewal)
                        .await
                }
            };
            match renewed {
                Ok(token) => Ok(Some(token.access_token.clone())),
                Err(AgentError::Exchange(OboError::InteractionRequired {
                    claims: Some(claims),
                    authorization_uri,
                })) => Err(DownstreamError::ClaimsChallenge {
                    claims,
                    authorization_uri,
                }),
                Err(e) => {
                    tracing::warn!(agent, error = %e, "cannot answer a downstream claims challenge; relayed as is");
                    Ok(None)
                }
            }
        })
    }
}

/// A downstream token of an agent identity for the scopes of `S`; its clients
/// are those of [`OboToken`](crate::OboToken) (same origin checks, retries).
pub struct AgentToken<S: Scope> {
    token: Arc<CachedToken>,
    shared: Arc<Shared>,
    /// With client capabilities: answers claims challenges (one re-exchange).
    renew: Option<Arc<dyn Renew>>,
    _scope: PhantomData<fn() -> S>,
}

impl<S: Scope> Clone for AgentToken<S> {
    fn clone(&self) -> Self {
        Self {
            token: Arc::clone(&self.token),
            shared: Arc::clone(&self.shared),
            renew: self.renew.clone(),
            _scope: PhantomData,
        }
    }
}

impl<S: Scope> fmt::Debug for AgentToken<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentToken")
            .field("access_token", &self.token.access_token)
            .field("expires_at", &self.token.expires_at)
            .finish()
    }
}

impl<S: Scope> AgentToken<S> {
    /// The access token. Send it only to the downstream API; never log it.
    pub fn access_token(&self) -> &BearerToken {
        &self.token.access_token
    }

    /// Expiry, seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.token.expires_at
    }

    /// A Microsoft Graph client authenticated with this token. With client
    /// capabilities configured, a claims challenge is answered as
    /// [`OboToken::graph`](crate::OboToken::graph) answers it: the agent's flow
    /// runs once more with the challenge's claims, and the call is retried once.
    pub fn graph(&self) -> GraphClient {
        let graph = self
            .shared
            .graph
            .clone()
            .with_token(self.token.access_token.clone());
        match &self.renew {
            Some(renew) => graph.with_renewal(Arc::clone(renew)),
            None => graph,
        }
    }

    /// A client for another downstream API at `base_url`, authenticated with this token.
    pub fn downstream(&self, base_url: &str) -> Result<DownstreamClient, DownstreamError> {
        let client = DownstreamClient::new(
            self.shared.http.clone(),
            base_url,
            self.token.access_token.clone(),
        )?
        .with_authority(self.shared.config.authority_host());
        Ok(match &self.renew {
            Some(renew) => client.with_renewal(Arc::clone(renew)),
            None => client,
        })
    }
}

/// Extractor: the [`Agent`] in the request's extensions (`.layer(Extension(agent))`)
/// acting On-Behalf-Of the caller, for the scopes of `S`
/// ([`Agent::on_behalf_of`]). Derefs to the [`AgentToken`].
pub struct AgentObo<S: Scope>(pub AgentToken<S>);

impl<S: Scope> std::ops::Deref for AgentObo<S> {
    type Target = AgentToken<S>;

    fn deref(&self) -> &AgentToken<S> {
        &self.0
    }
}

impl<S: Scope> fmt::Debug for AgentObo<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AgentObo").field(&self.0).finish()
    }
}

impl<St: Send + Sync, S: Scope> FromRequestParts<St> for AgentObo<S> {
    type Rejection = AgentRejection;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        let ctx = OboContext::from_extensions(&parts.extensions)?;
        let Some(agent) = parts.extensions.get::<Agent>() else {
            tracing::error!(
                "AgentObo: no Agent in the request extensions; did you add `Extension(agent)`?"
            );
            return Err(AgentRejection::MissingAgent);
        };
        Ok(AgentObo(agent.on_behalf_of::<S>(ctx).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::AgentUser;

    /// Entra compares UPNs (ASCII only) case-insensitively, so `Helper@` and
    /// `helper@` share an entry; but Unicode folding must not make a different
    /// name (the Kelvin sign `K` folds to `k`, the dotted `İ` to `i̇`) hit another
    /// user's entry.
    #[test]
    fn upn_keys_fold_ascii_case_only() {
        let upn = |s: &str| AgentUser::Upn(s.to_owned()).key();
        assert_eq!(upn("Kate@Contoso.com"), upn("kate@contoso.com"));
        assert_ne!(upn("\u{212A}ate@contoso.com"), upn("kate@contoso.com"));
        assert_ne!(upn("\u{130}an@contoso.com"), upn("i\u{307}an@contoso.com"));
        let oid = |s: &str| AgentUser::ObjectId(s.to_owned()).key();
        assert_eq!(
            oid("AAAAAAAA-0000-4000-8000-000000000001"),
            oid("aaaaaaaa-0000-4000-8000-000000000001")
        );
        assert_ne!(oid("kate@contoso.com"), upn("kate@contoso.com"));
    }
}
