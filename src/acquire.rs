//! Tokens for scopes chosen at run time: On-Behalf-Of, this API's own app-only
//! tokens, and the agent flows, for code that does not know its scopes as a
//! type (a gateway, the `axum-obo-sidecar`, a named downstream API from
//! configuration).
//!
//! [`OboToken<S>`](crate::OboToken) stays the typed path. Here a [`Scopes`] value
//! names the scopes; every token comes through the same caches as the typed
//! path, under the same keys (tenant, user, sorted scope set, `claims`):
//!
//! | token | method | grant | cache |
//! |---|---|---|---|
//! | the caller's, On-Behalf-Of | [`OboContext::token_for`] | jwt-bearer | the On-Behalf-Of cache (and its L2), shared with `OboToken<S>` |
//! | this API's own, app-only | [`OboLayer::app_token`] | `client_credentials`, `{resource}/.default` | by tenant and scope set, single-flight |
//! | an agent's own | [`Agent::app_token_for`] | as [`Agent::app_token`] | the agent cache |
//! | an agent's, for the caller | [`Agent::on_behalf_of_for`] | as [`Agent::on_behalf_of`] | the agent cache |
//! | an agent user's | [`Agent::as_user_for`] | as [`Agent::as_user`] | the agent cache |
//!
//! App-only tokens are Microsoft.Identity.Web's `GetAccessTokenForAppAsync`: the
//! scope must be one `{resource}/.default` (Entra refuses anything else).
//!
//! ```
//! use axum_obo::acquire::Scopes;
//! use axum_obo::layer::OboContext;
//! use axum_obo::AuthRejection;
//!
//! async fn header(ctx: OboContext) -> Result<String, AuthRejection> {
//!     let scopes = Scopes::new(["User.Read", "Mail.Read"]).expect("valid scopes");
//!     let token = ctx.token_for(&scopes).await?;
//!     // Send `token.access_token().expose()` to the API it is for, never to a log.
//!     Ok(format!("expires at {}", token.expires_at()))
//! }
//! ```
//!
//! # Bounds
//!
//! A scope set is interned once for the life of the process (the caches and the
//! per-token key memo compare scope sets by address). At most
//! [`Scopes::MAX_SETS`] distinct sets are interned; past that, [`Scopes::new`]
//! refuses new ones with [`ScopesError::TooManySets`]: a caller choosing scopes
//! cannot grow memory without bound.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use crate::agent::{Agent, AgentError, AgentRejection, AgentUser};
use crate::downstream::{DownstreamClient, DownstreamError};
use crate::exchange::cache::CachedToken;
use crate::exchange::OboError;
use crate::layer::{OboContext, OboLayer};
use crate::rejection::AuthRejection;
use crate::secret::BearerToken;

/// A scope set chosen at run time (e.g. `["User.Read", "Mail.Read"]` or
/// `["https://graph.microsoft.com/.default"]`): sorted, deduplicated and interned.
/// Cheap to copy.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(&'static [&'static str]);

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0).finish()
    }
}

/// Why a scope set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopesError {
    /// No scope was given.
    #[error("no scopes were given")]
    Empty,
    /// A scope is empty, longer than 512 bytes, or holds whitespace or a control character.
    #[error("a scope is empty, too long, or holds whitespace or a control character")]
    Invalid,
    /// More than 64 scopes in one set.
    #[error("more than 64 scopes in one set")]
    TooMany,
    /// [`Scopes::MAX_SETS`] distinct sets are already interned.
    #[error("too many distinct scope sets")]
    TooManySets,
}

type Interned = Mutex<HashMap<Box<[Box<str>]>, &'static [&'static str]>>;

fn interned() -> &'static Interned {
    static SETS: OnceLock<Interned> = OnceLock::new();
    SETS.get_or_init(Default::default)
}

impl Scopes {
    /// How many distinct scope sets one process interns at most.
    pub const MAX_SETS: usize = 4096;

    /// The set of `scopes` (order and duplicates do not matter).
    pub fn new<I>(scopes: I) -> Result<Self, ScopesError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut set: Vec<Box<str>> = Vec::new();
        for s in scopes {
            let s = s.as_ref();
            if s.is_empty()
                || s.len() > 512
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(ScopesError::Invalid);
            }
            set.push(s.into());
            if set.len() > 64 {
                return Err(ScopesError::TooMany);
            }
        }
        if set.is_empty() {
            return Err(ScopesError::Empty);
        }
        set.sort_unstable();
        set.dedup();
        let set = set.into_boxed_slice();
        let mut sets = interned().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = sets.get(&set) {
            return Ok(Scopes(found));
        }
        if sets.len() >= Self::MAX_SETS {
            return Err(ScopesError::TooManySets);
        }
        let leaked: &'static [&'static str] = Box::leak(
            set.iter()
                .map(|s| &*Box::leak(s.clone()))
                .collect::<Vec<&'static str>>()
                .into_boxed_slice(),
        );
        sets.insert(set, leaked);
        Ok(Scopes(leaked))
    }

    /// The scopes, sorted.
    pub fn as_slice(&self) -> &'static [&'static str] {
        self.0
    }
}

/// A token obtained for a [`Scopes`]: send it only to the API it is for.
#[derive(Clone)]
pub struct AcquiredToken {
    token: Arc<CachedToken>,
    http: reqwest::Client,
    authority: String,
}

impl fmt::Debug for AcquiredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquiredToken")
            .field("access_token", &self.token.access_token)
            .field("expires_at", &self.token.expires_at)
            .finish()
    }
}

impl AcquiredToken {
    fn new(token: Arc<CachedToken>, shared: &crate::layer::Shared) -> Self {
        Self {
            token,
            http: shared.http.clone(),
            authority: shared.config.authority_host().to_owned(),
        }
    }

    /// The access token. Never log it or return it to a client you do not trust with it.
    pub fn access_token(&self) -> &BearerToken {
        &self.token.access_token
    }

    /// Expiry of the token, seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.token.expires_at
    }

    /// The scopes granted (the answer's `scope`, else those requested).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.token.scopes.iter().map(|s| &**s)
    }

    /// A client for the API at `base_url`, authenticated with this token, on the
    /// crate's shared HTTP client (it refuses URLs outside the base's origin).
    /// Claims challenges are relayed, not answered.
    pub fn downstream(&self, base_url: &str) -> Result<DownstreamClient, DownstreamError> {
        Ok(
            DownstreamClient::new(self.http.clone(), base_url, self.token.access_token.clone())?
                .with_authority(&self.authority),
        )
    }
}

impl OboContext {
    /// The caller's On-Behalf-Of token for `scopes`, from the On-Behalf-Of cache
    /// (the one `OboToken<S>` uses: a type whose scopes equal `scopes` shares
    /// its entries). Refusals are those of the extractor: anonymous 401,
    /// app-only caller 403, consent 403, Entra unavailable 503, …
    pub async fn token_for(&self, scopes: &Scopes) -> Result<AcquiredToken, AuthRejection> {
        let auth = self.auth.as_ref().ok_or(AuthRejection::MissingToken)?;
        let token = self
            .shared
            .exchanger
            .token(&auth.principal, &auth.token, scopes.0)
            .await?;
        Ok(AcquiredToken::new(token, &self.shared))
    }
}

impl OboLayer {
    /// This API's own app-only token for `scopes` (one `{resource}/.default`) in
    /// `tenant` (a GUID; `None`: the configured tenant), with the configured
    /// credential: the client credentials grant, cached until the refresh margin
    /// before it expires, one request for concurrent first callers, refusals
    /// remembered for the negative TTL.
    pub async fn app_token(
        &self,
        scopes: &Scopes,
        tenant: Option<&str>,
    ) -> Result<AcquiredToken, OboError> {
        let shared = self.shared();
        let tid = match tenant {
            Some(t) if crate::validate::is_guid(t) => t.to_ascii_lowercase(),
            Some(_) => {
                return Err(OboError::Misconfigured(
                    "the tenant of an app-only token must be a GUID".into(),
                ))
            }
            None => shared.config.tenant_id().to_owned(),
        };
        let token = shared
            .agents
            .app(&tid, scopes.0)
            .await
            .map_err(|e| match e {
                AgentError::Exchange(e)
                | AgentError::Blueprint { cause: e, .. }
                | AgentError::AgentRefused { cause: e, .. } => e,
                other => OboError::Misconfigured(other.to_string()),
            })?;
        Ok(AcquiredToken::new(token, shared))
    }
}

impl Agent {
    /// [`Agent::app_token`] for scopes chosen at run time.
    pub async fn app_token_for(
        &self,
        tid: &str,
        scopes: &Scopes,
    ) -> Result<AcquiredToken, AgentError> {
        if !crate::validate::is_guid(tid) {
            return Err(AgentError::InvalidTenant);
        }
        let token = self
            .shared
            .agents
            .autonomous(tid, &self.id, scopes.0, None)
            .await?;
        Ok(AcquiredToken::new(token, &self.shared))
    }

    /// [`Agent::as_user`] for scopes chosen at run time.
    pub async fn as_user_for(
        &self,
        tid: &str,
        user: &AgentUser,
        scopes: &Scopes,
    ) -> Result<AcquiredToken, AgentError> {
        if !crate::validate::is_guid(tid) {
            return Err(AgentError::InvalidTenant);
        }
        let token = self
            .shared
            .agents
            .delegated(
                tid,
                &self.id,
                crate::agent::runtime::Subject::AgentUser(user),
                scopes.0,
                None,
            )
            .await?;
        Ok(AcquiredToken::new(token, &self.shared))
    }

    /// [`Agent::on_behalf_of`] for scopes chosen at run time.
    pub async fn on_behalf_of_for(
        &self,
        ctx: &OboContext,
        scopes: &Scopes,
    ) -> Result<AcquiredToken, AgentRejection> {
        let token = self.on_behalf_of_scopes(ctx, scopes.0).await?;
        Ok(AcquiredToken::new(token, &self.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_are_one_interned_set_whatever_the_order() {
        let a = Scopes::new(["Mail.Read", "User.Read", "Mail.Read"]).unwrap();
        let b = Scopes::new(["User.Read", "Mail.Read"]).unwrap();
        assert!(std::ptr::eq(a.as_slice(), b.as_slice()));
        assert_eq!(a.as_slice(), ["Mail.Read", "User.Read"]);
        let c = Scopes::new(["User.Read"]).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn bad_sets_are_refused() {
        assert_eq!(Scopes::new(Vec::<&str>::new()), Err(ScopesError::Empty));
        assert_eq!(Scopes::new([""]), Err(ScopesError::Invalid));
        assert_eq!(
            Scopes::new(["User.Read Mail.Read"]),
            Err(ScopesError::Invalid)
        );
        assert_eq!(Scopes::new(["a\u{0}"]), Err(ScopesError::Invalid));
        let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        assert_eq!(Scopes::new(&many), Err(ScopesError::TooMany));
    }
}
