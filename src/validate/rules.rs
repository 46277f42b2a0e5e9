//! The checks that make an Entra access token acceptable, and the [`Validator`]
//! that runs them.
//!
//! # Where it sits
//!
//! The layer calls [`Validator::validate`] on every request with a bearer token.
//! It reads keys from the [`KeyStore`] and keeps successful validations in a
//! cache that serves only the exact same token bytes, configured by
//! [`ValidationSettings`].
//!
//! # What it guarantees and how it fails
//!
//! Nothing in a token is trusted before its RS256 signature verifies against its
//! tenant's keys, except `tid`, which only picks an allowed tenant's key set. A
//! cached validation is served only while the uncached checks would pass: `nbf`
//! and `exp` (with leeway) by the configured clock, the key that verified it
//! still in the tenant's current set, and at most [`MAX_CACHE_TTL`] after it
//! was made; otherwise the token is validated again in full (see
//! [`cache`](super::cache)). Every refusal is a [`ValidationError`]; keys that
//! cannot be loaded are [`ValidationError::KeysUnavailable`], never an acceptance.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use super::cache::{Hit, ValidatedCache, Validity};
use super::claims::is_guid;
use super::claims::{Principal, PrincipalInner, TokenKind, TokenVersion};
use super::error::ValidationError;
use super::payload::{Claims, Json};
use crate::clock::Clock;
use crate::jwks::{issuer_tenant, KeyStore, TenantMetadata};
use crate::metrics;
use crate::secret::BearerToken;

/// The tenant segment whose keys and metadata serve any organization's tokens
/// (its issuers are the `{tenantid}` template).
pub(crate) const ANY_TENANT_KEYS: &str = "organizations";

/// The Microsoft-account (consumers) tenant: not an organization.
const CONSUMERS_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Longest token considered. Entra access tokens are a few KB even with group
/// claims (which overflow to a Graph link past 200 groups).
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Longest a validation is served from the cache, whatever `exp` says (Entra
/// tokens live at most about a day); the token is then validated again.
pub(crate) const MAX_CACHE_TTL: i64 = 24 * 3600;

#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
}

/// What validation needs; built and validated once by the configuration builder.
#[derive(Debug, Clone)]
pub(crate) struct ValidationSettings {
    /// Accepted `aud` values (never empty).
    pub(crate) audiences: BTreeSet<String>,
    /// Tenants (lowercase GUIDs) whose tokens are admitted.
    pub(crate) allowed_tenants: BTreeSet<String>,
    /// Whether any organization's tenant is admitted too (its keys: those of
    /// [`ANY_TENANT_KEYS`]; the consumers tenant only when listed).
    pub(crate) any_tenant: bool,
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

    /// Validates `token`, from the cache when exactly this token was validated
    /// before. Returns the caller and the token to keep for the request (the
    /// cached copy on a hit, so that its SHA-256 is computed once per token).
    ///
    /// `token` is the header's bytes: a hit needs nothing more than their
    /// equality with a validated token; a miss checks them as an RFC 6750
    /// b64token first.
    pub(crate) async fn validate(
        &self,
        token: &[u8],
    ) -> Result<(Principal, BearerToken), ValidationError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(ValidationError::TooLarge);
        }
        let Some(cache) = &self.cache else {
            let token = b64token(token)?;
            let (p, _) = self.validate_uncached(token).await?;
            return Ok((p, BearerToken::new(token)));
        };
        let key = cache.key(token);
        if let Some(hit) = cache.get(key, token) {
            if self.holds(&hit) {
                metrics::validated_token_cache(true);
                return Ok((hit.principal, hit.token));
            }
            // Expired, not yet valid, past the cap, or its key is gone: the
            // full checks decide (and say why).
            cache.remove(key);
        }
        metrics::validated_token_cache(false);
        let token = b64token(token)?;
        let (p, validity) = self.validate_uncached(token).await?;
        let token = BearerToken::new(token);
        cache.insert(key, token.clone(), p.clone(), validity);
        Ok((p, token))
    }

    /// The cached validation of exactly `token`, if it holds (see
    /// [`holds`](Self::holds)): [`validate`](Self::validate)'s hit path, without
    /// waiting. `None` on a miss, for an entry that no longer holds (which
    /// `validate` then forgets and decides in full) and when the cache is off.
    pub(crate) fn cached(&self, token: &[u8]) -> Option<(Principal, BearerToken)> {
        let cache = self.cache.as_ref()?;
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let hit = cache.get(cache.key(token), token)?;
        self.holds(&hit).then_some((hit.principal, hit.token))
    }

    /// Whether a cached validation still holds now, by the configured clock:
    /// within `nbf` − leeway ..= min(`exp` + leeway, validated + cap), and the key
    /// that verified it still in its tenant's current set.
    fn holds(&self, hit: &Hit) -> bool {
        let now = self.settings.clock.now();
        hit.validity.covers(now) && self.keys.still_holds(hit.validity.stamp, now)
    }

    /// The full checks; the principal, and when and under which key the
    /// validation holds (for the cache).
    async fn validate_uncached(
        &self,
        token: &str,
    ) -> Result<(Principal, Validity), ValidationError> {
        let (message, signature) = token.rsplit_once('.').ok_or(ValidationError::Malformed)?;
        let (header_b64, payload_b64) =
            message.split_once('.').ok_or(ValidationError::Malformed)?;
        if payload_b64.contains('.') || header_b64.is_empty() || payload_b64.is_empty() {
            return Err(ValidationError::Malformed);
        }
        // Entra's JOSE headers are about 100 bytes: decoded on the stack.
        let mut small = [0u8; 512];
        let large;
        let header: &[u8] = if header_b64.len() <= small.len() / 3 * 4 {
            let n = URL_SAFE_NO_PAD
                .decode_slice(header_b64, &mut small)
                .map_err(|_| ValidationError::Malformed)?;
            &small[..n]
        } else {
            large = decode_segment(header_b64)?;
            &large
        };
        let header: JoseHeader<'_> =
            serde_json::from_slice(header).map_err(|_| ValidationError::Malformed)?;
        if header.alg != "RS256" {
            return Err(ValidationError::Algorithm);
        }
        let payload = decode_segment(payload_b64)?;
        let claims = Claims::parse(&payload).map_err(|_| ValidationError::Malformed)?;

        // Before the tenant: a token without one is refused alike whatever its
        // tenant (no answer tells whether a tenant is admitted).
        let kid = header
            .kid
            .filter(|k| !k.is_empty())
            .ok_or(ValidationError::MissingKid)?;
        // The tenant picks the key set, so it is read before the signature is
        // checked; nothing else is trusted until it is.
        let tid = str_claim(&claims.tid, "tid")?;
        if !is_guid(tid) {
            return Err(ValidationError::Claim("tid"));
        }
        let tid = tid.to_ascii_lowercase();
        // The key set: the tenant's own, or (any tenant) every organization's.
        // The issuer is still the token's own tenant's (the `{tenantid}` template
        // of the organizations metadata, filled with `tid`, in `check_issuer`).
        let key_tenant = if self.settings.allowed_tenants.contains(&tid) {
            tid.as_str()
        } else if self.settings.any_tenant && tid != CONSUMERS_TENANT {
            ANY_TENANT_KEYS
        } else {
            return Err(ValidationError::TenantNotAllowed);
        };
        let mut loaded = self
            .keys
            .keys(key_tenant)
            .await
            .map_err(ValidationError::KeysUnavailable)?;
        if !loaded.keys.contains_key(&*kid) {
            loaded = self
                .keys
                .refresh_for_unknown_kid(key_tenant, &loaded)
                .await
                .map_err(ValidationError::KeysUnavailable)?;
        }
        let key = loaded.keys.get(&*kid).ok_or(ValidationError::UnknownKey)?;
        // RS256 signatures are as long as the modulus: at most 8192 bits here.
        let mut sig = [0u8; 1024];
        let sig_len = URL_SAFE_NO_PAD
            .decode_slice(signature, &mut sig)
            .map_err(|_| ValidationError::Signature)?;
        if key
            .key
            .verify_sig(message.as_bytes(), &sig[..sig_len])
            .is_err()
        {
            return Err(ValidationError::Signature);
        }

        // Signed by Entra: now the claims.
        let (checked, (from, until)) = self.check_claims(&claims, &tid, &loaded.metadata)?;
        drop(claims);
        let validity = Validity {
            from,
            until,
            stamp: loaded.stamp(key),
        };
        let principal = Principal::new(PrincipalInner {
            tid,
            payload,
            ..checked
        });
        Ok((principal, validity))
    }

    /// The checks on the claims of a token whose signature has been verified; the
    /// principal they describe, without its tenant and payload, and the clock
    /// seconds `from ..= until` at which a cached validation holds (see
    /// [`check_lifetime`](Self::check_lifetime)).
    fn check_claims(
        &self,
        claims: &Claims<'_>,
        tid: &str,
        meta: &TenantMetadata,
    ) -> Result<(PrincipalInner, (i64, i64)), ValidationError> {
        let scopes = string_list(&claims.scp, "scp")?;
        let roles = string_list(&claims.roles, "roles")?;

        // ID tokens first, whatever their audience, so that the most common OBO
        // mistake is named as such: a `nonce` is proof of an ID token.
        if claims.nonce.is_some() {
            return Err(ValidationError::IdToken);
        }
        let aud_ok = self.audience_accepted(&claims.aud);
        if scopes.is_none() && roles.is_none() && !aud_ok {
            return Err(ValidationError::IdToken);
        }
        if !aud_ok {
            return Err(ValidationError::Audience);
        }

        let version = check_issuer(claims, tid, meta)?;
        // Every Entra access token names the client it was issued to; ID tokens
        // never do. Without it, a token with `roles` would pass as app-only.
        let (client_claim, client) = match version {
            TokenVersion::V2 => ("azp", &claims.azp),
            TokenVersion::V1 => ("appid", &claims.appid),
        };
        let client_app_id = match client {
            Some(Json::Str(c)) if !c.is_empty() => c.as_ref().to_owned(),
            None => return Err(ValidationError::IdToken),
            Some(_) => return Err(ValidationError::Claim(client_claim)),
        };

        let (exp, window) = self.check_lifetime(claims)?;
        let oid = str_claim(&claims.oid, "oid")?.to_owned();
        let sub = str_claim(&claims.sub, "sub")?.to_owned();
        let kind = token_kind(&claims.idtyp, scopes.is_some(), roles.is_some())?;
        let opt =
            |claim: &Option<Json<'_>>| claim.as_ref().and_then(Json::as_str).map(str::to_owned);
        let preferred_username = opt(&claims.preferred_username)
            .or_else(|| opt(&claims.upn))
            .or_else(|| opt(&claims.unique_name));
        let name = opt(&claims.name);
        let inner = PrincipalInner {
            tid: String::new(),
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
            payload: Vec::new(),
            claims: OnceLock::new(),
        };
        Ok((inner, window))
    }

    /// Whether `aud` (a string, or an array with one accepted entry) is accepted.
    fn audience_accepted(&self, aud: &Option<Json<'_>>) -> bool {
        let accepted = |a: &str| self.settings.audiences.contains(a);
        match aud {
            Some(Json::Str(a)) => accepted(a),
            Some(Json::List(list)) => list.iter().any(|a| a.as_str().is_some_and(accepted)),
            _ => false,
        }
    }

    /// `exp` (required) and `nbf` (optional) against the clock and leeway;
    /// returns `exp` and the clock seconds `from ..= until` at which these checks
    /// pass (`nbf` − leeway, or forever before without `nbf`, through `exp` +
    /// leeway), `until` capped at [`MAX_CACHE_TTL`] from now.
    fn check_lifetime(&self, claims: &Claims<'_>) -> Result<(i64, (i64, i64)), ValidationError> {
        let now = self.settings.clock.now();
        let leeway = self.settings.leeway.as_secs() as i64;
        let exp = time_claim(&claims.exp, "exp")?.ok_or(ValidationError::Claim("exp"))?;
        let until = exp.saturating_add(leeway);
        if now > until {
            return Err(ValidationError::Expired);
        }
        let mut from = i64::MIN;
        if let Some(nbf) = time_claim(&claims.nbf, "nbf")? {
            if nbf > now.saturating_add(leeway) {
                return Err(ValidationError::NotYetValid);
            }
            from = nbf.saturating_sub(leeway);
        }
        Ok((exp, (from, until.min(now.saturating_add(MAX_CACHE_TTL)))))
    }
}

/// Whether `iss` is `template` with every `{tenantid}` replaced by `tid`
/// (compared piece by piece, without building the string).
fn is_issuer(iss: &str, template: &str, tid: &str) -> bool {
    let mut parts = template.split("{tenantid}");
    let Some(mut rest) = parts.next().and_then(|first| iss.strip_prefix(first)) else {
        return false;
    };
    for part in parts {
        match rest.strip_prefix(tid).and_then(|r| r.strip_prefix(part)) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// The token version its issuer names: `iss` must be the tenant's v2 or v1 issuer
/// (templates filled with `tid`), name `tid` itself, and agree with `ver` if present.
fn check_issuer(
    claims: &Claims<'_>,
    tid: &str,
    meta: &TenantMetadata,
) -> Result<TokenVersion, ValidationError> {
    let iss = str_claim(&claims.iss, "iss")?;
    let version = if is_issuer(iss, &meta.issuer_v2, tid) {
        TokenVersion::V2
    } else if is_issuer(iss, &meta.issuer_v1, tid) {
        TokenVersion::V1
    } else {
        return Err(ValidationError::Issuer);
    };
    if issuer_tenant(iss).is_none_or(|t| !t.eq_ignore_ascii_case(tid)) {
        return Err(ValidationError::Issuer);
    }
    match (claims.ver.as_ref().and_then(Json::as_str), version) {
        (None, _) | (Some("2.0"), TokenVersion::V2) | (Some("1.0"), TokenVersion::V1) => {}
        _ => return Err(ValidationError::Claim("ver")),
    }
    Ok(version)
}

/// Delegated or app-only, as Microsoft.Identity.Web decides: `idtyp = "app"`
/// when present, otherwise roles without scopes. A token that fits neither
/// cleanly is refused rather than guessed.
fn token_kind(
    idtyp: &Option<Json<'_>>,
    has_scopes: bool,
    has_roles: bool,
) -> Result<TokenKind, ValidationError> {
    match (idtyp.as_ref().map(Json::as_str), has_scopes, has_roles) {
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
    claim: &Option<Json<'_>>,
    name: &'static str,
) -> Result<Option<Vec<String>>, ValidationError> {
    let list: Vec<String> = match (name, claim) {
        (_, None) => return Ok(None),
        ("scp", Some(Json::Str(s))) => s.split_whitespace().map(str::to_owned).collect(),
        ("roles", Some(Json::List(a))) => a
            .iter()
            .map(|r| r.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or(ValidationError::Claim(name))?,
        _ => return Err(ValidationError::Claim(name)),
    };
    Ok(Some(list).filter(|l| !l.is_empty()))
}

/// `token` as a string if it is an RFC 6750 b64token:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn b64token(token: &[u8]) -> Result<&str, ValidationError> {
    let body_end = token.iter().rposition(|&c| c != b'=').map_or(0, |i| i + 1);
    // Branch-free, so that the compiler vectorizes the ~1.5 KB of a token.
    let allowed = |c: u8| {
        ((c | 0x20).wrapping_sub(b'a') < 26)
            | (c.wrapping_sub(b'0') < 10)
            | (c == b'-')
            | (c == b'.')
            | (c == b'_')
            | (c == b'~')
            | (c == b'+')
            | (c == b'/')
    };
    let bad = token[..body_end]
        .iter()
        .fold(0u8, |bad, &c| bad | u8::from(!allowed(c)));
    if body_end == 0 || bad != 0 {
        return Err(ValidationError::Malformed);
    }
    // Only ASCII is left, so this cannot fail.
    std::str::from_utf8(token).map_err(|_| ValidationError::Malformed)
}

/// A base64url segment (no padding), decoded.
fn decode_segment(segment: &str) -> Result<Vec<u8>, ValidationError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| ValidationError::Malformed)
}

fn str_claim<'a>(
    claim: &'a Option<Json<'_>>,
    name: &'static str,
) -> Result<&'a str, ValidationError> {
    claim
        .as_ref()
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(ValidationError::Claim(name))
}

/// A NumericDate claim: absent is `None`; present but not a finite number in
/// range is an error.
fn time_claim(
    claim: &Option<Json<'_>>,
    name: &'static str,
) -> Result<Option<i64>, ValidationError> {
    match claim {
        None => Ok(None),
        Some(Json::Int(i)) => Ok(Some(*i)),
        Some(Json::Float(f)) if f.is_finite() && f.abs() < 1e15 => Ok(Some(*f as i64)),
        Some(_) => Err(ValidationError::Claim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_claims() {
        fn t(json: &str) -> Result<Option<i64>, ValidationError> {
            time_claim(
                &serde_json::from_str::<Claims<'_>>(json).unwrap().exp,
                "exp",
            )
        }
        assert_eq!(t(r#"{"exp":5}"#).unwrap(), Some(5));
        assert_eq!(t(r#"{"exp":5.9}"#).unwrap(), Some(5));
        assert!(t(r#"{"exp":"5"}"#).is_err());
        assert!(t(r#"{"exp":1e300}"#).is_err());
        assert!(t(r#"{"exp":null}"#).is_err());
        assert_eq!(t(r#"{"exp":-3}"#).unwrap(), Some(-3));
        assert_eq!(t(r#"{}"#).unwrap(), None);
    }

    #[test]
    fn segments_are_strict() {
        assert!(decode_segment("e30").is_ok()); // {}
        assert!(decode_segment("e30=").is_err()); // padding
        assert!(decode_segment("!!").is_err());
        let header = decode_segment("e30").unwrap();
        assert!(serde_json::from_slice::<JoseHeader<'_>>(&header).is_err()); // no alg
    }

    #[test]
    fn issuers_match_their_template_exactly() {
        let t = "https://login.microsoftonline.com/{tenantid}/v2.0";
        let tid = "7e536741-2298-4446-abd7-665c5f4aca6b";
        let iss = format!("https://login.microsoftonline.com/{tid}/v2.0");
        assert!(is_issuer(&iss, t, tid));
        assert!(!is_issuer(&format!("{iss}/"), t, tid));
        assert!(!is_issuer(&iss, t, "7e536741-2298-4446-abd7-665c5f4aca6c"));
        assert!(!is_issuer(
            "https://login.microsoftonline.com//v2.0",
            t,
            tid
        ));
        assert!(is_issuer(
            "https://sts.example/",
            "https://sts.example/",
            tid
        ));
        assert!(!is_issuer(
            "https://sts.example/x",
            "https://sts.example/",
            tid
        ));
    }
}
