//! The checks that make an Entra access token acceptable, and the [`Validator`]
//! that runs them.
//!
//! # Where it sits
//!
//! The layer calls [`Validator::validate`] on every request with a bearer token.
//! It reads keys from the [`KeyStore`] and keeps successful validations in a
//! cache keyed by the token's SHA-256 (never the token), configured by
//! [`ValidationSettings`].
//!
//! # What it guarantees and how it fails
//!
//! Nothing in a token is trusted before its RS256 signature verifies against its
//! tenant's keys, except `tid`, which only picks an allowed tenant's key set. A
//! cached validation is served only while `exp` (plus leeway) holds by the
//! configured clock. Every refusal is a [`ValidationError`]; keys that cannot be
//! loaded are [`ValidationError::KeysUnavailable`], never an acceptance.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::cache::ValidatedCache;
use super::claims::is_guid;
use super::claims::{Principal, PrincipalInner, TokenKind, TokenVersion};
use super::error::ValidationError;
use crate::clock::Clock;
use crate::jwks::{issuer_tenant, KeyStore, TenantMetadata};
use crate::secret::BearerToken;

/// Longest token considered. Entra access tokens are a few KB even with group
/// claims (which overflow to a Graph link past 200 groups).
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Longest a validation is cached, whatever `exp` says (Entra tokens live at
/// most about a day).
const MAX_CACHE_TTL: i64 = 24 * 3600;

#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// What validation needs; built and validated once by the configuration builder.
#[derive(Debug, Clone)]
pub(crate) struct ValidationSettings {
    /// Accepted `aud` values (never empty).
    pub(crate) audiences: BTreeSet<String>,
    /// Tenants (lowercase GUIDs) whose tokens are admitted.
    pub(crate) allowed_tenants: BTreeSet<String>,
    /// Allowed clock skew for `exp` and `nbf` (at most 5 minutes).
    pub(crate) leeway: Duration,
    /// Capacity of the validated-token cache (`0`: no cache).
    pub(crate) cache_capacity: u64,
    /// The clock `exp` and `nbf` are checked against.
    pub(crate) clock: Arc<dyn Clock>,
}

/// Validates inbound access tokens against the settings and the tenants' keys.
pub(crate) struct Validator {
    settings: ValidationSettings,
    keys: Arc<KeyStore>,
    cache: Option<ValidatedCache>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("keys", &self.keys)
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// A validator checking tokens against `settings`, with keys from `keys`.
    pub(crate) fn new(settings: ValidationSettings, keys: Arc<KeyStore>) -> Self {
        let cache =
            (settings.cache_capacity > 0).then(|| ValidatedCache::new(settings.cache_capacity));
        Self {
            settings,
            keys,
            cache,
        }
    }

    /// The key store (for warm-up and for the exchange's token endpoint).
    pub(crate) fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Validates `token`, from the cache when it was validated before.
    pub(crate) async fn validate(&self, token: &BearerToken) -> Result<Principal, ValidationError> {
        let raw = token.expose();
        if raw.len() > MAX_TOKEN_LEN {
            return Err(ValidationError::TooLarge);
        }
        let leeway = self.settings.leeway.as_secs() as i64;
        let Some(cache) = &self.cache else {
            return self.validate_uncached(raw).await;
        };
        let digest = token.sha256();
        if let Some(p) = cache.get(&digest) {
            if self.settings.clock.now() <= p.expires_at().saturating_add(leeway) {
                return Ok(p);
            }
            return Err(ValidationError::Expired);
        }
        let p = self.validate_uncached(raw).await?;
        let ttl = (p.expires_at().saturating_add(leeway))
            .saturating_sub(self.settings.clock.now())
            .clamp(0, MAX_CACHE_TTL);
        cache.insert(digest, p.clone(), Duration::from_secs(ttl as u64));
        Ok(p)
    }

    async fn validate_uncached(&self, token: &str) -> Result<Principal, ValidationError> {
        let (message, signature) = token.rsplit_once('.').ok_or(ValidationError::Malformed)?;
        let (header_b64, payload_b64) =
            message.split_once('.').ok_or(ValidationError::Malformed)?;
        if payload_b64.contains('.') || header_b64.is_empty() || payload_b64.is_empty() {
            return Err(ValidationError::Malformed);
        }
        let header: JoseHeader = decode_segment(header_b64)?;
        if header.alg != "RS256" {
            return Err(ValidationError::Algorithm);
        }
        let claims: Map<String, Value> = decode_segment(payload_b64)?;

        // The tenant picks the key set, so it is read before the signature is
        // checked; nothing else is trusted until it is.
        let tid = str_claim(&claims, "tid")?;
        if !is_guid(tid) {
            return Err(ValidationError::Claim("tid"));
        }
        let tid = tid.to_ascii_lowercase();
        if !self.settings.allowed_tenants.contains(&tid) {
            return Err(ValidationError::TenantNotAllowed);
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(ValidationError::MissingKid)?;
        let mut loaded = self
            .keys
            .keys(&tid)
            .await
            .map_err(ValidationError::KeysUnavailable)?;
        if !loaded.keys.contains_key(&kid) {
            loaded = self
                .keys
                .refresh_for_unknown_kid(&tid, &loaded)
                .await
                .map_err(ValidationError::KeysUnavailable)?;
        }
        let key = loaded.keys.get(&kid).ok_or(ValidationError::UnknownKey)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| ValidationError::Signature)?;
        if key.verify_sig(message.as_bytes(), &signature).is_err() {
            return Err(ValidationError::Signature);
        }

        // Signed by Entra: now the claims.
        self.check_claims(tid, claims, &loaded.metadata)
    }

    /// The checks on the claims of a token whose signature has been verified.
    fn check_claims(
        &self,
        tid: String,
        claims: Map<String, Value>,
        meta: &TenantMetadata,
    ) -> Result<Principal, ValidationError> {
        let scopes = string_list(&claims, "scp")?;
        let roles = string_list(&claims, "roles")?;

        // ID tokens first, whatever their audience, so that the most common OBO
        // mistake is named as such: a `nonce` is proof of an ID token.
        if claims.contains_key("nonce") {
            return Err(ValidationError::IdToken);
        }
        let aud_ok = self.audience_accepted(&claims);
        if scopes.is_none() && roles.is_none() && !aud_ok {
            return Err(ValidationError::IdToken);
        }
        if !aud_ok {
            return Err(ValidationError::Audience);
        }

        let version = check_issuer(&claims, &tid, meta)?;
        // Every Entra access token names the client it was issued to; ID tokens
        // never do. Without it, a token with `roles` would pass as app-only.
        let client_claim = match version {
            TokenVersion::V2 => "azp",
            TokenVersion::V1 => "appid",
        };
        let client_app_id = match claims.get(client_claim) {
            Some(Value::String(c)) if !c.is_empty() => c.clone(),
            None => return Err(ValidationError::IdToken),
            Some(_) => return Err(ValidationError::Claim(client_claim)),
        };

        let exp = self.check_lifetime(&claims)?;
        let oid = str_claim(&claims, "oid")?.to_owned();
        let sub = str_claim(&claims, "sub")?.to_owned();
        let kind = token_kind(&claims, scopes.is_some(), roles.is_some())?;
        let opt = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let preferred_username = opt("preferred_username")
            .or_else(|| opt("upn"))
            .or_else(|| opt("unique_name"));
        let name = opt("name");
        Ok(Principal(Arc::new(PrincipalInner {
            tid,
            oid,
            sub,
            scopes: scopes.unwrap_or_default(),
            roles: roles.unwrap_or_default(),
            client_app_id: Some(client_app_id),
            version,
            kind,
            name,
            preferred_username,
            expires_at: exp,
            claims,
        })))
    }

    /// Whether `aud` (a string, or an array with one accepted entry) is accepted.
    fn audience_accepted(&self, claims: &Map<String, Value>) -> bool {
        let accepted = |a: &str| self.settings.audiences.contains(a);
        match claims.get("aud") {
            Some(Value::String(a)) => accepted(a),
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str().is_some_and(accepted)),
            _ => false,
        }
    }

    /// `exp` (required) and `nbf` (optional) against the clock and leeway; returns `exp`.
    fn check_lifetime(&self, claims: &Map<String, Value>) -> Result<i64, ValidationError> {
        let now = self.settings.clock.now();
        let leeway = self.settings.leeway.as_secs() as i64;
        let exp = time_claim(claims, "exp")?.ok_or(ValidationError::Claim("exp"))?;
        if now > exp.saturating_add(leeway) {
            return Err(ValidationError::Expired);
        }
        if let Some(nbf) = time_claim(claims, "nbf")? {
            if nbf > now.saturating_add(leeway) {
                return Err(ValidationError::NotYetValid);
            }
        }
        Ok(exp)
    }
}

/// The token version its issuer names: `iss` must be the tenant's v2 or v1 issuer
/// (templates filled with `tid`), name `tid` itself, and agree with `ver` if present.
fn check_issuer(
    claims: &Map<String, Value>,
    tid: &str,
    meta: &TenantMetadata,
) -> Result<TokenVersion, ValidationError> {
    let iss = str_claim(claims, "iss")?;
    let version = if iss == meta.issuer_v2.replace("{tenantid}", tid) {
        TokenVersion::V2
    } else if iss == meta.issuer_v1.replace("{tenantid}", tid) {
        TokenVersion::V1
    } else {
        return Err(ValidationError::Issuer);
    };
    if issuer_tenant(iss).is_none_or(|t| !t.eq_ignore_ascii_case(tid)) {
        return Err(ValidationError::Issuer);
    }
    match (claims.get("ver").and_then(Value::as_str), version) {
        (None, _) | (Some("2.0"), TokenVersion::V2) | (Some("1.0"), TokenVersion::V1) => {}
        _ => return Err(ValidationError::Claim("ver")),
    }
    Ok(version)
}

/// Delegated or app-only, as Microsoft.Identity.Web decides: `idtyp = "app"`
/// when present, otherwise roles without scopes. A token that fits neither
/// cleanly is refused rather than guessed.
fn token_kind(
    claims: &Map<String, Value>,
    has_scopes: bool,
    has_roles: bool,
) -> Result<TokenKind, ValidationError> {
    match (
        claims.get("idtyp").map(Value::as_str),
        has_scopes,
        has_roles,
    ) {
        (_, false, false) => Err(ValidationError::NoScopesOrRoles),
        (Some(Some("app")), false, true) => Ok(TokenKind::App),
        (Some(Some("user")) | None, true, _) => Ok(TokenKind::Delegated),
        (None, false, true) => Ok(TokenKind::App),
        _ => Err(ValidationError::AmbiguousKind),
    }
}

/// `scp` (a space-separated string) or `roles` (an array of strings): absent or
/// empty is `None`, any other shape an error naming the claim.
fn string_list(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<Vec<String>>, ValidationError> {
    let list: Vec<String> = match (name, claims.get(name)) {
        (_, None) => return Ok(None),
        ("scp", Some(Value::String(s))) => s.split_whitespace().map(str::to_owned).collect(),
        ("roles", Some(Value::Array(a))) => a
            .iter()
            .map(|r| r.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(ValidationError::Claim(name))?,
        _ => return Err(ValidationError::Claim(name)),
    };
    Ok(Some(list).filter(|l| !l.is_empty()))
}

fn decode_segment<T: serde::de::DeserializeOwned>(segment: &str) -> Result<T, ValidationError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| ValidationError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| ValidationError::Malformed)
}

fn str_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, ValidationError> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(ValidationError::Claim(name))
}

/// A NumericDate claim: absent is `None`; present but not a finite number in
/// range is an error.
fn time_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, ValidationError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f as i64)),
                _ => Err(ValidationError::Claim(name)),
            }
        }
        Some(_) => Err(ValidationError::Claim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_claims() {
        let m: Map<String, Value> =
            serde_json::from_str(r#"{"a":5,"b":5.9,"c":"5","d":1e300,"e":-3}"#).unwrap();
        assert_eq!(time_claim(&m, "a").unwrap(), Some(5));
        assert_eq!(time_claim(&m, "b").unwrap(), Some(5));
        assert!(time_claim(&m, "c").is_err());
        assert!(time_claim(&m, "d").is_err());
        assert_eq!(time_claim(&m, "e").unwrap(), Some(-3));
        assert_eq!(time_claim(&m, "z").unwrap(), None);
    }

    #[test]
    fn segments_are_strict() {
        assert!(decode_segment::<Value>("e30").is_ok()); // {}
        assert!(decode_segment::<Value>("e30=").is_err()); // padding
        assert!(decode_segment::<Value>("!!").is_err());
        assert!(decode_segment::<JoseHeader>("e30").is_err()); // no alg
    }
}
