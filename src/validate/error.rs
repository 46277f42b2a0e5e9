//! Why a token was refused. HTTP mapping lives in `rejection.rs`.

use crate::jwks::KeyError;

/// What a client is told when the tenant is not admitted or the key is unknown.
const UNTRUSTED_SIGNER: &str = "the token is not signed by a key this API trusts";

/// Why an access token was not accepted. Each variant has a short, stable,
/// client-safe description (it never contains token content).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// Not a compact JWS (three base64url segments with JSON header and payload).
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The token is larger than any Entra access token.
    #[error("the token is too large")]
    TooLarge,
    /// `alg` is not RS256 (`none`, HS*, and everything else are refused).
    #[error("the token's signing algorithm is not allowed (RS256 only)")]
    Algorithm,
    /// The header names no `kid`.
    #[error("the token's header has no key id (kid)")]
    MissingKid,
    /// No published key has this `kid`, even after a refresh. The description
    /// is the same as [`TenantNotAllowed`](Self::TenantNotAllowed)'s, so that
    /// unsigned probes cannot tell which tenants this API admits.
    #[error("{UNTRUSTED_SIGNER}")]
    UnknownKey,
    /// The signature does not verify. Described like
    /// [`TenantNotAllowed`](Self::TenantNotAllowed): an Entra key id is public,
    /// so a probe with a real one and any signature must not tell an admitted
    /// tenant (whose key is found) from another.
    #[error("{UNTRUSTED_SIGNER}")]
    Signature,
    /// A required claim is missing or of the wrong type.
    #[error("the token lacks a valid `{0}` claim")]
    Claim(&'static str),
    /// `tid` is not in the allow-list (refused before any key lookup; described
    /// like [`UnknownKey`](Self::UnknownKey)).
    #[error("{UNTRUSTED_SIGNER}")]
    TenantNotAllowed,
    /// `iss` is not the discovered issuer for the token's `tid`.
    #[error("the token's issuer is not the expected Entra issuer for its tenant")]
    Issuer,
    /// `aud` is not one of this API's audiences.
    #[error("the token was issued for another audience")]
    Audience,
    /// An ID token was sent instead of an access token.
    #[error("this is an ID token; send an access token for this API")]
    IdToken,
    /// `exp` is in the past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Neither cleanly delegated (`scp`) nor cleanly app-only (`idtyp = "app"`,
    /// or `roles` without `scp`), e.g. `idtyp = "app"` with `scp`.
    #[error("the token is neither a delegated nor an app-only access token")]
    AmbiguousKind,
    /// Neither `scp` nor `roles`.
    #[error("the token carries neither scopes (scp) nor roles")]
    NoScopesOrRoles,
    /// The signing keys could not be obtained (the provider is unreachable).
    #[error("signing keys are unavailable")]
    KeysUnavailable(#[source] KeyError),
}

impl ValidationError {
    /// A stable short name for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ValidationError::Malformed => "malformed",
            ValidationError::TooLarge => "too_large",
            ValidationError::Algorithm => "algorithm",
            ValidationError::MissingKid => "missing_kid",
            ValidationError::UnknownKey => "unknown_kid",
            ValidationError::Signature => "signature",
            ValidationError::Claim(_) => "claim",
            ValidationError::TenantNotAllowed => "tenant_not_allowed",
            ValidationError::Issuer => "issuer",
            ValidationError::Audience => "audience",
            ValidationError::IdToken => "id_token",
            ValidationError::Expired => "expired",
            ValidationError::NotYetValid => "not_yet_valid",
            ValidationError::NoScopesOrRoles => "no_scp_or_roles",
            ValidationError::AmbiguousKind => "ambiguous_kind",
            ValidationError::KeysUnavailable(_) => "keys_unavailable",
        }
    }
}
