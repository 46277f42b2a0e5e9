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
//! [`NamedApi`] names a downstream API as configuration does (base URL, relative
//! path, method, scopes, app or user token); [`NamedApis::from_env`] reads them
//! from `OBO_DOWNSTREAM_APIS` (the sidecar reads Microsoft's `DownstreamApis`).
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

/// A downstream API named in configuration: where it is (base URL and relative
/// path), the HTTP method, its scopes, and whether it takes this API's own
/// app-only token or the caller's (On-Behalf-Of). Microsoft.Identity.Web's
/// `DownstreamApis` section; the sidecar's `DownstreamApis__{name}__*`.
///
/// ```
/// use axum_obo::acquire::{NamedApi, Scopes};
///
/// let crm = NamedApi::new("https://crm.contoso.com/api", Scopes::new(["api://crm/Contacts.Read"]).unwrap())
///     .relative_path("contacts")
///     .method(http::Method::GET);
/// assert_eq!(crm.url(), "https://crm.contoso.com/api/contacts");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedApi {
    base_url: String,
    relative_path: String,
    scopes: Scopes,
    app_token: bool,
    method: http::Method,
}

impl NamedApi {
    /// The API at `base_url`, called with `GET` and the caller's token for `scopes`.
    pub fn new(base_url: impl Into<String>, scopes: Scopes) -> Self {
        Self {
            base_url: base_url.into(),
            relative_path: String::new(),
            scopes,
            app_token: false,
            method: http::Method::GET,
        }
    }

    /// The path below the base URL that calls go to.
    #[must_use]
    pub fn relative_path(mut self, path: impl Into<String>) -> Self {
        self.relative_path = path.into();
        self
    }

    /// The method of calls (default `GET`).
    #[must_use]
    pub fn method(mut self, method: http::Method) -> Self {
        self.method = method;
        self
    }

    /// `true`: this API's own app-only token (the scopes are one
    /// `{resource}/.default`); `false` (default): the caller's On-Behalf-Of token.
    #[must_use]
    pub fn app_token(mut self, app: bool) -> Self {
        self.app_token = app;
        self
    }

    /// The scopes.
    pub fn scopes(&self) -> Scopes {
        self.scopes
    }

    /// Whether it takes app-only tokens.
    pub fn is_app_token(&self) -> bool {
        self.app_token
    }

    /// The method of calls.
    pub fn http_method(&self) -> &http::Method {
        &self.method
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of calls: the base URL joined with the relative path.
    pub fn url(&self) -> String {
        let base = self.base_url.trim_end_matches('/');
        match self.relative_path.trim_start_matches('/') {
            "" => base.to_owned(),
            rel => format!("{base}/{rel}"),
        }
    }

    /// Its token: app-only when configured so (or when there is no caller),
    /// else the caller's On-Behalf-Of token, each from its cache.
    pub async fn token(
        &self,
        layer: &OboLayer,
        ctx: Option<&OboContext>,
    ) -> Result<AcquiredToken, AuthRejection> {
        match ctx {
            Some(ctx) if !self.app_token => ctx.token_for(&self.scopes).await,
            _ => Ok(layer.app_token(&self.scopes, None).await?),
        }
    }

    /// A client for the API (at its base URL) authenticated with its token; call
    /// [`url`](Self::url)'s path with [`http_method`](Self::http_method).
    pub async fn client(
        &self,
        layer: &OboLayer,
        ctx: Option<&OboContext>,
    ) -> Result<DownstreamClient, AuthRejection> {
        let token = self.token(layer, ctx).await?;
        Ok(token.downstream(&self.base_url)?)
    }
}

/// Named downstream APIs, by case-insensitive name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedApis(std::collections::BTreeMap<String, NamedApi>);

impl NamedApis {
    /// The APIs listed in `OBO_DOWNSTREAM_APIS` (comma-separated names), each
    /// from `OBO_DOWNSTREAM_API_{NAME}_BASE_URL` and `_SCOPES` (required;
    /// space- or comma-separated), `_RELATIVE_PATH`, `_HTTP_METHOD` and
    /// `_APP_TOKEN` (`true`/`false`); `{NAME}` is the name in upper case with
    /// `-` as `_`. None listed: empty.
    pub fn from_env() -> Result<Self, crate::ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with a custom variable lookup.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::ConfigError> {
        use crate::ConfigError;
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let bad = |var: &str, why: &str| {
            ConfigError::new("downstream_apis", why.to_owned()).in_variable(var)
        };
        let mut apis = Self::default();
        let Some(list) = get("OBO_DOWNSTREAM_APIS") else {
            return Ok(apis);
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let var = format!(
                "OBO_DOWNSTREAM_API_{}",
                name.to_ascii_uppercase().replace('-', "_")
            );
            let base_var = format!("{var}_BASE_URL");
            let base = get(&base_var).ok_or_else(|| bad(&base_var, "is not set"))?;
            let parsed = url::Url::parse(&base).map_err(|_| bad(&base_var, "is not a URL"))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(bad(&base_var, "is not an http(s) URL"));
            }
            let scopes_var = format!("{var}_SCOPES");
            let scopes = get(&scopes_var).ok_or_else(|| bad(&scopes_var, "is not set"))?;
            let scopes = Scopes::new(scopes.split([' ', ',']).filter(|s| !s.is_empty()))
                .map_err(|e| bad(&scopes_var, &e.to_string()))?;
            let mut api = NamedApi::new(base, scopes);
            if let Some(p) = get(&format!("{var}_RELATIVE_PATH")) {
                api = api.relative_path(p);
            }
            let method_var = format!("{var}_HTTP_METHOD");
            if let Some(m) = get(&method_var) {
                let m = http::Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes())
                    .map_err(|_| bad(&method_var, "is not an HTTP method"))?;
                api = api.method(m);
            }
            let app_var = format!("{var}_APP_TOKEN");
            if let Some(v) = get(&app_var) {
                let app = match v.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(&app_var, "must be true or false")),
                };
                api = api.app_token(app);
            }
            apis.insert(name, api);
        }
        Ok(apis)
    }

    /// Adds (or replaces) the API `name`.
    pub fn insert(&mut self, name: &str, api: NamedApi) {
        self.0.insert(name.to_lowercase(), api);
    }

    /// The API `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&NamedApi> {
        self.0.get(&name.to_lowercase())
    }

    /// The APIs by (lowercase) name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &NamedApi)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
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
    fn named_apis_from_the_environment() {
        let vars = |list: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                list.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let apis = NamedApis::from_lookup(vars(&[
            ("OBO_DOWNSTREAM_APIS", "graph, crm-app"),
            (
                "OBO_DOWNSTREAM_API_GRAPH_BASE_URL",
                "https://graph.microsoft.com/v1.0/",
            ),
            ("OBO_DOWNSTREAM_API_GRAPH_SCOPES", "User.Read Mail.Read"),
            ("OBO_DOWNSTREAM_API_GRAPH_RELATIVE_PATH", "/me"),
            (
                "OBO_DOWNSTREAM_API_CRM_APP_BASE_URL",
                "https://crm.contoso.com",
            ),
            ("OBO_DOWNSTREAM_API_CRM_APP_SCOPES", "api://crm/.default"),
            ("OBO_DOWNSTREAM_API_CRM_APP_APP_TOKEN", "true"),
            ("OBO_DOWNSTREAM_API_CRM_APP_HTTP_METHOD", "post"),
        ]))
        .unwrap();
        let graph = apis.get("Graph").unwrap();
        assert_eq!(graph.url(), "https://graph.microsoft.com/v1.0/me");
        assert_eq!(
            graph.scopes(),
            Scopes::new(["Mail.Read", "User.Read"]).unwrap()
        );
        assert!(!graph.is_app_token());
        let crm = apis.get("crm-app").unwrap();
        assert!(crm.is_app_token());
        assert_eq!(crm.http_method(), http::Method::POST);
        assert!(NamedApis::from_lookup(vars(&[]))
            .unwrap()
            .get("graph")
            .is_none());

        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("OBO_DOWNSTREAM_APIS", "x")],
                "OBO_DOWNSTREAM_API_X_BASE_URL",
            ),
            (
                &[
                    ("OBO_DOWNSTREAM_APIS", "x"),
                    ("OBO_DOWNSTREAM_API_X_BASE_URL", "ftp://x"),
                ],
                "OBO_DOWNSTREAM_API_X_BASE_URL",
            ),
            (
                &[
                    ("OBO_DOWNSTREAM_APIS", "x"),
                    ("OBO_DOWNSTREAM_API_X_BASE_URL", "https://x"),
                ],
                "OBO_DOWNSTREAM_API_X_SCOPES",
            ),
            (
                &[
                    ("OBO_DOWNSTREAM_APIS", "x"),
                    ("OBO_DOWNSTREAM_API_X_BASE_URL", "https://x"),
                    ("OBO_DOWNSTREAM_API_X_SCOPES", "a"),
                    ("OBO_DOWNSTREAM_API_X_APP_TOKEN", "yes"),
                ],
                "OBO_DOWNSTREAM_API_X_APP_TOKEN",
            ),
        ];
        for (list, var) in cases {
            let list: &'static [(&'static str, &'static str)] =
                Box::leak(list.to_vec().into_boxed_slice());
            let e = NamedApis::from_lookup(vars(list)).unwrap_err();
            assert_eq!(e.field(), "downstream_apis");
            assert!(e.reason().contains(var), "{var}: {e}");
        }
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
