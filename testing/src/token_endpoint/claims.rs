//! The `claims` request parameter (OpenID Connect claims request, as Entra reads it) and
//! Continuous Access Evaluation on the token endpoint's side.
//!
//! What is modelled, on OBO and refresh-token requests:
//!
//! - Client capabilities: `{"access_token":{"xms_cc":{"values":["cp1"]}}}` declares the
//!   client CAE-capable; the issued access token then carries `"xms_cc": ["cp1"]` (a JSON
//!   array, the value as the client sent it). Other capabilities are ignored.
//! - A claims challenge's answer: `{"access_token":{"nbf":{"essential":true,"value":"<epoch>"}}}`
//!   (the value a string, as resources send it; a number is accepted too) yields an access
//!   token whose `iat` and `nbf` are at or after that time. Both parts may be merged in one
//!   object, as MSAL merges them.
//! - A session revoked for good ([`EntraStandIn::revoke_session_for_good`]): a grant older
//!   than the revocation (the assertion's `iat`, or the refresh token's issue time) answers
//!   `400 interaction_required`, AADSTS50133, with a `claims` challenge of its own
//!   (`{"access_token":{"nbf":{"essential":true,"value":"<revocation epoch>"}}}`) for the
//!   caller to relay. Grants made after it work.
//! - A `claims` value that is not a JSON object: `400 invalid_request`, AADSTS9002313.
//!
//! Not modelled: the longer (up to 28 h) lifetime of CAE tokens, `xms_ssm` and other CAE
//! claims, `acrs` (authentication context) requests, and critical events other than the
//! scripted revocation. The exact codes for the revoked session and the malformed `claims`
//! are the stand-in's best reading of Entra, not captured from the wire.

use std::time::SystemTime;

use serde_json::Value;

use super::super::ids::unix_seconds;
use super::super::response::EntraError;
use super::super::EntraStandIn;
use super::errors;

/// What a request's `claims` parameter asks of the access token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ClaimsRequest {
    /// The client declared the `cp1` capability (the value as sent).
    pub(super) cp1: Option<String>,
    /// The token must not be older than this Unix time.
    pub(super) nbf: Option<i64>,
}

impl ClaimsRequest {
    /// Parses the `claims` form field, if any.
    pub(super) fn parse(claims: Option<&str>) -> Result<Self, EntraError> {
        let Some(text) = claims.filter(|c| !c.trim().is_empty()) else {
            return Ok(ClaimsRequest::default());
        };
        let invalid = || errors::malformed("The 'claims' parameter is not a valid JSON object.");
        let json: Value = serde_json::from_str(text).map_err(|_| invalid())?;
        if !json.is_object() {
            return Err(invalid());
        }
        let access = &json["access_token"];
        let cp1 = access["xms_cc"]["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|v| v.eq_ignore_ascii_case("cp1"))
            .map(str::to_owned);
        let nbf = match &access["nbf"]["value"] {
            Value::Null => None,
            Value::String(s) => Some(s.trim().parse::<i64>().map_err(|_| invalid())?),
            Value::Number(n) => Some(n.as_i64().ok_or_else(invalid)?),
            _ => return Err(invalid()),
        };
        Ok(ClaimsRequest { cp1, nbf })
    }

    /// The `iat`/`nbf` of a token issued at `now` under this request.
    pub(super) fn issue_time(&self, now: i64) -> i64 {
        self.nbf.map_or(now, |nbf| nbf.max(now))
    }
}

/// The challenge Entra attaches when the user must sign in again after `revoked_at`.
pub(super) fn nbf_challenge(revoked_at: i64) -> String {
    format!(r#"{{"access_token":{{"nbf":{{"essential":true,"value":"{revoked_at}"}}}}}}"#)
}

impl EntraStandIn {
    /// Revokes user `oid`'s session for good (a disabled account, a password reset, an
    /// admin's `revokeSignInSessions`): OBO and refresh-token grants made before now answer
    /// `400 interaction_required` (AADSTS50133) with a `claims` challenge naming the
    /// revocation time, whatever claims they request. Returns the revocation time (Unix
    /// seconds). Grants made later — a new sign-in — work.
    pub fn revoke_session_for_good(&self, oid: &str) -> i64 {
        let now = unix_seconds(SystemTime::now());
        self.shared.token_endpoint.revoke_session(oid, now);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_requests_parse_like_entra_reads_them() {
        assert_eq!(
            ClaimsRequest::parse(None).ok(),
            Some(ClaimsRequest::default())
        );
        let cp1 = r#"{"access_token":{"xms_cc":{"values":["CP1","other"]}}}"#;
        let parsed = ClaimsRequest::parse(Some(cp1)).ok();
        assert_eq!(parsed.and_then(|c| c.cp1), Some("CP1".to_owned()));
        let merged = r#"{"access_token":{"xms_cc":{"values":["cp1"]},"nbf":{"essential":true,"value":"1700000000"}}}"#;
        let parsed = ClaimsRequest::parse(Some(merged)).ok().unwrap_or_default();
        assert_eq!(parsed.nbf, Some(1_700_000_000));
        assert_eq!(parsed.issue_time(1_600_000_000), 1_700_000_000);
        assert_eq!(parsed.issue_time(1_800_000_000), 1_800_000_000);
        for bad in [
            "{",
            "[]",
            "\"x\"",
            r#"{"access_token":{"nbf":{"value":"soon"}}}"#,
        ] {
            assert!(ClaimsRequest::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
