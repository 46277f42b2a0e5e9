//! The OBO `assertion`: the user's access token to the API, validated as Entra validates it.

use serde_json::Value;

use super::super::response::EntraError;
use super::super::state::Shared;
use super::errors;
use super::jws::{when, Alg, Jws};

/// Who an exchanged token is for: the user claims carried over from the assertion.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub(super) oid: String,
    pub(super) tid: String,
    pub(super) name: Option<String>,
    /// `upn`, else `preferred_username`, else `unique_name`.
    pub(super) upn: Option<String>,
    /// `amr`, if the assertion had one.
    pub(super) amr: Option<Value>,
    /// `wids`, if the assertion had one.
    pub(super) wids: Option<Value>,
    /// The assertion's `iat` (its `nbf`, else the time of the exchange, if it has none):
    /// when the user's sign-in behind it happened, as far as session revocation goes.
    pub(super) issued_at: i64,
}

impl Subject {
    /// Whether the user signed in with MFA (`amr` contains `mfa`).
    pub(super) fn did_mfa(&self) -> bool {
        self.amr
            .as_ref()
            .and_then(Value::as_array)
            .is_some_and(|amr| amr.iter().any(|m| m.as_str() == Some("mfa")))
    }
}

/// The `oid` of an assertion, read without validation (to pick per-user faults).
pub(super) fn peek_oid(assertion: &str) -> Option<String> {
    Jws::decode(assertion)?.str("oid").map(str::to_owned)
}

/// Validates `assertion` for an exchange in tenant `tenant` at Unix time `now`: an RS256 JWT
/// signed by a published key of this stand-in, issued by it, for the API, in its validity
/// window, a user (delegated) token, of tenant `tenant`.
pub(super) fn validate(
    shared: &Shared,
    assertion: &str,
    tenant: &str,
    now: i64,
) -> Result<Subject, EntraError> {
    let jws = Jws::decode(assertion).ok_or_else(errors::malformed_jwt)?;
    check_signature(shared, &jws)?;

    let tid = jws.str("tid").unwrap_or_default().to_ascii_lowercase();
    let iss = jws.str("iss").unwrap_or_default();
    if tid.is_empty() || (iss != shared.issuer_v2(&tid) && iss != shared.issuer_v1(&tid)) {
        return Err(errors::bad_assertion(&format!(
            "Assertion contains an invalid issuer. The issuer in the assertion was '{iss}' and \
             its tenant '{tid}'."
        )));
    }

    let api = &shared.api_client_id;
    let app_id_uri = format!("api://{api}");
    if !jws
        .audience_is(|aud| aud.eq_ignore_ascii_case(api) || aud.eq_ignore_ascii_case(&app_id_uri))
    {
        return Err(errors::bad_assertion(&format!(
            "Assertion audience claim does not match the required value. The audience in the \
             assertion was '{}' and the expected audience is '{api}' or one of the Application \
             Uris of this application with App ID '{api}'(Entra stand-in API). The downstream \
             client must request a token for the expected audience (the application that made \
             the OBO request) and this application should use that token as the assertion.",
            jws.audience_text()
        )));
    }

    let exp = jws.time("exp");
    let nbf = jws.time("nbf");
    let skew = 300;
    if exp.is_none_or(|exp| exp <= now) || nbf.is_some_and(|nbf| nbf > now + skew) {
        return Err(errors::assertion_expired(&when(Some(now)), &when(exp)));
    }

    let app_only = jws.str("idtyp") == Some("app") || jws.str("scp").is_none();
    if app_only {
        return Err(errors::bad_assertion(
            "Assertion is not a user token: an application (app-only) token cannot be \
             exchanged on behalf of a user.",
        ));
    }

    let oid = jws.str("oid").unwrap_or_default().to_owned();
    if oid.is_empty() {
        return Err(errors::bad_assertion("Assertion has no 'oid' claim."));
    }
    if !tid.eq_ignore_ascii_case(tenant) {
        return Err(errors::bad_assertion(&format!(
            "Assertion tenant '{tid}' does not match the tenant of the request '{tenant}'. \
             Exchange the assertion in the tenant that issued it."
        )));
    }

    let string = |name: &str| jws.str(name).map(str::to_owned);
    Ok(Subject {
        oid,
        tid,
        name: string("name"),
        upn: string("upn")
            .or_else(|| string("preferred_username"))
            .or_else(|| string("unique_name")),
        amr: jws.claims.get("amr").cloned(),
        wids: jws.claims.get("wids").cloned(),
        issued_at: jws.time("iat").or(nbf).unwrap_or(now),
    })
}

/// RS256 with a key the stand-in publishes right now.
fn check_signature(shared: &Shared, jws: &Jws) -> Result<(), EntraError> {
    if jws.alg() != Some(Alg::Rs256) {
        return Err(errors::bad_assertion(&format!(
            "Assertion failed signature validation. [Reason - The signing algorithm '{}' is \
             not supported.]",
            jws.header_str("alg").unwrap_or_default()
        )));
    }
    let kid = jws.header_str("kid").unwrap_or_default();
    let key = shared
        .keys()
        .published()
        .into_iter()
        .find(|key| key.kid() == kid);
    let Some(key) = key else {
        return Err(errors::bad_assertion(&format!(
            "Assertion failed signature validation. [Reason - The key was not found., \
             Thumbprint of key used by client: '{kid}']"
        )));
    };
    if !jws.verifies(Alg::Rs256, key.public_key_der()) {
        return Err(errors::bad_assertion(
            "Assertion failed signature validation. [Reason - The provided signature value did \
             not match the expected signature value.]",
        ));
    }
    Ok(())
}
