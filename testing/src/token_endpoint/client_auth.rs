//! Client authentication of the API at the token endpoint: a secret (form field or HTTP
//! Basic), a certificate-signed client assertion, or a federated assertion.
//!
//! A federated assertion is accepted only when a federated identity credential of the API's
//! registration names its issuer, subject and audience exactly (case-sensitive), and its
//! issuer's key signed it. Two issuers have keys: the stand-in's federation issuer
//! (Kubernetes-style workload identity tokens) and the stand-in itself, whose v2 issuer
//! `{advertised_host}/{tid}/v2.0` signs managed-identity tokens
//! ([`ManagedIdentityStandIn`](crate::ManagedIdentityStandIn)). Failures: AADSTS700211
//! (issuer), AADSTS700213 (subject), AADSTS700212 (audience) — the per-field successors of
//! the older combined AADSTS70021 "No matching federated identity record found for
//! presented assertion" — AADSTS700027 (key or signature) and AADSTS700024 (expired).

use std::sync::Arc;

use http::HeaderMap;

use super::super::ids::is_guid;
use super::super::keys::SigningKey;
use super::super::response::EntraError;
use super::super::state::Shared;
use super::errors;
use super::form::{basic_credentials, Form};
use super::jws::{hex_upper, thumbprint_is, unbase64url, when, Alg, Jws};
use super::state::FederatedCredential;

/// `client_assertion_type` of JWT client assertions (RFC 7523).
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew allowed on `nbf`, seconds.
const SKEW: i64 = 300;

/// How the client proved its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    /// A client secret (form field or HTTP Basic).
    Secret,
    /// A client assertion signed by a registered certificate.
    Certificate,
    /// A federated assertion matching a federated identity credential.
    Federated,
}

impl ClientAuth {
    /// `appidacr`: `1` for a secret, `2` for a certificate or federated credential.
    pub(super) fn acr(self) -> &'static str {
        match self {
            ClientAuth::Secret => "1",
            ClientAuth::Certificate | ClientAuth::Federated => "2",
        }
    }
}

/// The request's tenant segment and the time, as client authentication needs them.
pub(super) struct Context<'a> {
    pub(super) segment: &'a str,
    pub(super) tenant: &'a str,
    pub(super) now: i64,
}

/// Checks `client_id` (form or Basic) and exactly one client credential.
pub(super) fn authenticate(
    shared: &Shared,
    form: &Form,
    headers: &HeaderMap,
    cx: &Context<'_>,
) -> Result<ClientAuth, EntraError> {
    let basic = basic_credentials(headers);
    let basic_id = match &basic {
        Some(Ok((id, _))) => Some(id.as_str()),
        _ => None,
    };
    let client_id = match (form.get("client_id"), basic_id) {
        (Some(body), Some(header)) if body != header => {
            return Err(errors::malformed(
                "The client_id in the request body and in the Authorization header differ.",
            ))
        }
        (Some(id), _) | (None, Some(id)) => id.to_owned(),
        (None, None) => return Err(errors::missing_parameter("client_id")),
    };
    let api = &shared.api_client_id;
    if !client_id.eq_ignore_ascii_case(api) {
        return Err(errors::unknown_application(&client_id, cx.tenant));
    }

    let secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    let assertion_type = form.get("client_assertion_type");
    let presented = usize::from(secret.is_some())
        + usize::from(basic.is_some())
        + usize::from(assertion.is_some() || assertion_type.is_some());
    if presented == 0 {
        return Err(errors::credential_missing());
    }
    if presented > 1 {
        return Err(errors::malformed(
            "The request presents more than one client credential (client_secret, HTTP Basic, \
             client_assertion): use exactly one.",
        ));
    }
    let expected = shared.token_endpoint.client_secret();
    if let Some(basic) = basic {
        return match basic {
            Ok((_, secret)) if secret == expected => Ok(ClientAuth::Secret),
            _ => Err(errors::invalid_secret(api)),
        };
    }
    if let Some(secret) = secret {
        return if secret == expected {
            Ok(ClientAuth::Secret)
        } else {
            Err(errors::invalid_secret(api))
        };
    }
    if assertion_type != Some(JWT_BEARER_ASSERTION) {
        return Err(errors::malformed(&format!(
            "client_assertion_type must be '{JWT_BEARER_ASSERTION}'."
        )));
    }
    let Some(assertion) = assertion else {
        return Err(errors::missing_parameter("client_assertion"));
    };
    let Some(jws) = Jws::decode(assertion) else {
        return Err(errors::assertion_invalid(
            "The client assertion is not a JWT.",
        ));
    };
    match jws.str("iss") {
        Some(iss) if iss.eq_ignore_ascii_case(api) => certificate(shared, &jws, cx),
        Some(iss) => federated(shared, &jws, iss, cx),
        None => Err(errors::assertion_invalid(
            "The client assertion has no 'iss' claim.",
        )),
    }
}

/// A client assertion signed with a registered certificate (`private_key_jwt`).
fn certificate(shared: &Shared, jws: &Jws, cx: &Context<'_>) -> Result<ClientAuth, EntraError> {
    let api = &shared.api_client_id;
    let Some(alg) = jws.alg() else {
        return Err(errors::assertion_signature(&format!(
            "The signing algorithm '{}' is not supported: use PS256 or RS256.",
            jws.header_str("alg").unwrap_or_default()
        )));
    };
    let s256 = jws.header_str("x5t#S256");
    let s1 = jws.header_str("x5t").or_else(|| jws.header_str("kid"));
    let certificates = shared.token_endpoint.certificates();
    let found = certificates.iter().find(|c| {
        s256.is_some_and(|t| thumbprint_is(t, &c.sha256))
            || s1.is_some_and(|t| thumbprint_is(t, &c.sha1))
    });
    let Some(found) = found else {
        let named = s256.or(s1).unwrap_or_default();
        let shown = unbase64url(named).map_or_else(|| named.to_owned(), |raw| hex_upper(&raw));
        return Err(errors::certificate_not_registered(&shown, api));
    };
    if !jws.verifies(alg, &found.spki) {
        return Err(errors::assertion_signature(
            "The provided signature value did not match the expected signature value.",
        ));
    }
    let is_api = |claim: &str| jws.str(claim).is_some_and(|v| v.eq_ignore_ascii_case(api));
    if !is_api("iss") || !is_api("sub") {
        return Err(errors::assertion_client_mismatch());
    }
    let endpoint = format!("{}/{}/oauth2/v2.0/token", shared.authority, cx.segment);
    if !jws.audience_is(|aud| aud.eq_ignore_ascii_case(&endpoint)) {
        return Err(errors::assertion_audience(&jws.audience_text(), &endpoint));
    }
    check_time(jws, cx.now)?;
    let Some(jti) = jws.str("jti").filter(|j| !j.is_empty()) else {
        return Err(errors::assertion_invalid(
            "The client assertion has no 'jti' claim.",
        ));
    };
    if !shared.token_endpoint.use_jti(jti) {
        return Err(errors::assertion_invalid(&format!(
            "The client assertion with jti '{jti}' was already used."
        )));
    }
    Ok(ClientAuth::Certificate)
}

/// A federated assertion (e.g. a Kubernetes service-account token) matching a federated
/// identity credential by issuer, subject and audience (case-sensitive, as at Entra).
fn federated(
    shared: &Shared,
    jws: &Jws,
    iss: &str,
    cx: &Context<'_>,
) -> Result<ClientAuth, EntraError> {
    let credentials: Vec<FederatedCredential> = shared
        .token_endpoint
        .federated_credentials()
        .into_iter()
        .filter(|c| c.issuer == iss)
        .collect();
    if credentials.is_empty() {
        return Err(errors::federated_issuer(iss));
    }
    let kid = jws.header_str("kid").unwrap_or_default();
    let Some(key) = issuer_key(shared, iss, kid) else {
        return Err(errors::assertion_signature(&format!(
            "The key was not found at the issuer '{iss}'., Key id used by client: '{kid}'"
        )));
    };
    if jws.alg() != Some(Alg::Rs256) || !jws.verifies(Alg::Rs256, key.public_key_der()) {
        return Err(errors::assertion_signature(
            "The provided signature value did not match the expected signature value.",
        ));
    }
    check_time(jws, cx.now)?;
    let sub = jws.str("sub").unwrap_or_default();
    let credentials: Vec<&FederatedCredential> =
        credentials.iter().filter(|c| c.subject == sub).collect();
    if credentials.is_empty() {
        return Err(errors::federated_subject(sub));
    }
    if !credentials
        .iter()
        .any(|c| jws.audience_is(|aud| aud == c.audience))
    {
        return Err(errors::federated_audience(&jws.audience_text()));
    }
    Ok(ClientAuth::Federated)
}

/// The key `kid` of a federated assertion's issuer: the stand-in's federation issuer (a
/// Kubernetes-style workload identity), or the stand-in itself — its v2 issuer of a tenant,
/// `{advertised_host}/{tid}/v2.0`, signing with its published keys (a managed identity's
/// token used as a federated credential).
fn issuer_key(shared: &Shared, iss: &str, kid: &str) -> Option<Arc<SigningKey>> {
    let endpoint = &shared.token_endpoint;
    if iss == endpoint.federation_issuer() {
        return endpoint
            .existing_federation_key()
            .filter(|key| key.kid() == kid);
    }
    let tid = iss
        .strip_prefix(shared.authority.as_str())?
        .strip_prefix('/')?
        .strip_suffix("/v2.0")?;
    if !is_guid(tid) || iss != shared.issuer_v2(tid) {
        return None;
    }
    shared
        .keys()
        .published()
        .into_iter()
        .find(|key| key.kid() == kid)
}

/// `exp` in the future; `nbf` (if any) not beyond the allowed skew.
fn check_time(jws: &Jws, now: i64) -> Result<(), EntraError> {
    let exp = jws.time("exp");
    let nbf = jws.time("nbf");
    if exp.is_none_or(|exp| exp <= now) || nbf.is_some_and(|nbf| nbf > now + SKEW) {
        return Err(errors::assertion_time(
            &when(Some(now)),
            &when(nbf.or_else(|| jws.time("iat"))),
            &when(exp),
        ));
    }
    Ok(())
}
