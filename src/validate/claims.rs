//! The validated principal: what a handler learns about the caller.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{Map, Value};

/// Whether a token represents a signed-in user or an application acting as itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A user token obtained by a client app on the user's behalf (has `scp`).
    Delegated,
    /// An app-only token from the client-credentials grant (`idtyp = app`, or
    /// `roles` and no `scp`). The On-Behalf-Of flow refuses these.
    App,
}

impl TokenKind {
    /// `"delegated"` or `"app"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Delegated => "delegated",
            TokenKind::App => "app",
        }
    }
}

/// The access-token version (`ver` claim and issuer form).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenVersion {
    /// v1.0 tokens: `iss = https://sts.windows.net/{tid}/`, `appid`.
    V1,
    /// v2.0 tokens: `iss = {authority}/{tid}/v2.0`, `azp`.
    V2,
}

impl TokenVersion {
    /// `"1.0"` or `"2.0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenVersion::V1 => "1.0",
            TokenVersion::V2 => "2.0",
        }
    }
}

pub(crate) struct PrincipalInner {
    pub(crate) tid: String,
    pub(crate) oid: String,
    pub(crate) sub: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) roles: Vec<String>,
    pub(crate) client_app_id: Option<String>,
    pub(crate) version: TokenVersion,
    pub(crate) kind: TokenKind,
    pub(crate) name: Option<String>,
    pub(crate) preferred_username: Option<String>,
    pub(crate) expires_at: i64,
    /// The token's decoded payload (JSON), from which [`Principal::claims`] is
    /// parsed the first time it is asked for.
    pub(crate) payload: Vec<u8>,
    pub(crate) claims: OnceLock<Map<String, Value>>,
}

/// The caller, as established by a validated access token. Cheap to clone.
///
/// Take it in a handler (the layer must be in front of the route):
/// ```
/// use axum_obo::Principal;
/// async fn whoami(user: Principal) -> String {
///     format!("{} in tenant {}", user.oid(), user.tid())
/// }
/// ```
/// Serializes to JSON as `{oid, tid, sub, kind, ver, scp, roles, client_app_id,
/// name, preferred_username, exp}` (never the token).
#[derive(Clone)]
pub struct Principal(pub(crate) Arc<PrincipalInner>);

#[cfg(test)]
impl Principal {
    /// A delegated v2 caller of tenant `t`, for unit tests of what reads a principal.
    pub(crate) fn for_tests(oid: &str, scopes: &[&str], roles: &[&str]) -> Self {
        let owned = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        Principal(Arc::new(PrincipalInner {
            tid: "t".into(),
            oid: oid.into(),
            sub: "s".into(),
            scopes: owned(scopes),
            roles: owned(roles),
            client_app_id: Some("c".into()),
            version: TokenVersion::V2,
            kind: TokenKind::Delegated,
            name: None,
            preferred_username: None,
            expires_at: 0,
            payload: Vec::new(),
            claims: Default::default(),
        }))
    }
}

impl Principal {
    pub(crate) fn new(inner: PrincipalInner) -> Self {
        Self(Arc::new(inner))
    }

    /// Tenant id (`tid`), a lowercase GUID. For guest users this is the tenant
    /// that issued the token (the resource tenant), not the user's home tenant.
    pub fn tid(&self) -> &str {
        &self.0.tid
    }
    /// Object id of the user or service principal (`oid`): the stable identity.
    pub fn oid(&self) -> &str {
        &self.0.oid
    }
    /// Subject (`sub`), pairwise per application.
    pub fn sub(&self) -> &str {
        &self.0.sub
    }
    /// Delegated scopes (`scp`, split on spaces). Empty for app-only tokens.
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }
    /// App roles (`roles`).
    pub fn roles(&self) -> &[String] {
        &self.0.roles
    }
    /// Whether `scp` contains `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }
    /// Whether `roles` contains `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.0.roles.iter().any(|r| r == role)
    }
    /// The calling client application (`azp` in v2, `appid` in v1).
    pub fn client_app_id(&self) -> Option<&str> {
        self.0.client_app_id.as_deref()
    }
    /// The token version.
    pub fn version(&self) -> TokenVersion {
        self.0.version
    }
    /// Delegated (user) or app-only.
    pub fn kind(&self) -> TokenKind {
        self.0.kind
    }
    /// Display name (`name`), if present.
    pub fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    /// Sign-in name (`preferred_username` in v2; `upn` or `unique_name` in v1).
    pub fn preferred_username(&self) -> Option<&str> {
        self.0.preferred_username.as_deref()
    }
    /// Expiry (`exp`), seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }
    /// Every claim of the token, for anything not modelled above.
    pub fn claims(&self) -> &Map<String, Value> {
        // Parsed on first use: most requests never read claims beyond the
        // modelled ones. The payload parsed as JSON when it was validated.
        self.0
            .claims
            .get_or_init(|| serde_json::from_slice(&self.0.payload).unwrap_or_default())
    }
    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims().get(name)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("tid", &self.0.tid)
            .field("oid", &self.0.oid)
            .field("kind", &self.0.kind)
            .field("version", &self.0.version)
            .field("scopes", &self.0.scopes)
            .field("roles", &self.0.roles)
            .field("client_app_id", &self.0.client_app_id)
            .finish_non_exhaustive()
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let p = &self.0;
        let mut s = serializer.serialize_struct("Principal", 11)?;
        s.serialize_field("oid", &p.oid)?;
        s.serialize_field("tid", &p.tid)?;
        s.serialize_field("sub", &p.sub)?;
        s.serialize_field("kind", p.kind.as_str())?;
        s.serialize_field("ver", p.version.as_str())?;
        s.serialize_field("scp", &p.scopes)?;
        s.serialize_field("roles", &p.roles)?;
        s.serialize_field("client_app_id", &p.client_app_id)?;
        s.serialize_field("name", &p.name)?;
        s.serialize_field("preferred_username", &p.preferred_username)?;
        s.serialize_field("exp", &p.expires_at)?;
        s.end()
    }
}
/// Whether `s` is a GUID in the 8-4-4-4-12 hex form (as `tid` and client ids are).
pub(crate) fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}
