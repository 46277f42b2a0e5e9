//! Continuous Access Evaluation at Graph: revoked sessions and the claims challenge.
//!
//! What is modelled: after [`GraphStandIn::revoke_session`](super::GraphStandIn::revoke_session)
//! (a critical event: the user's sessions revoked, the account disabled, a password reset),
//! a token of that user issued before the event (`iat` earlier than it) **and** carrying the
//! client capability `xms_cc: ["cp1"]` is refused with `401` and Graph's CAE challenge:
//!
//! ```text
//! WWW-Authenticate: Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize",
//!   client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims",
//!   claims="<standard base64 of {"access_token":{"nbf":{"essential":true,"value":"<event epoch>"}}}>"
//! ```
//!
//! (the form of Microsoft's claims-challenge documentation, plus the `client_id` Graph adds;
//! `authorization_uri` is always the public cloud's, whatever host the Entra stand-in
//! advertises, as Graph's global endpoint sends it), with Graph's JSON error
//! `InvalidAuthenticationToken`, "Continuous access evaluation resulted in challenge with
//! result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp".
//!
//! A token without `cp1` keeps working until it expires: Graph only challenges clients that
//! declared they can handle a challenge (for the others, CAE means at most the token's
//! normal lifetime). Tokens issued at or after the event work.
//!
//! Not modelled: IP-location policies, the longer lifetime of CAE tokens, `xms_cc` values
//! other than `cp1`, and any event source other than the explicit revocation.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::auth::Claims;
use super::faults::GraphFault;
use super::reply::{Ids, Reply};
use super::server::lock;

/// Revocation times (Unix seconds) by lowercase user `oid`.
#[derive(Debug, Default)]
pub(super) struct Revocations {
    by_user: Mutex<HashMap<String, i64>>,
}

impl Revocations {
    /// Records a critical event for user `oid` at `at`.
    pub(super) fn revoke(&self, oid: &str, at: i64) {
        lock(&self.by_user).insert(oid.to_ascii_lowercase(), at);
    }

    /// The challenge for a token with these verified claims, if CAE refuses it.
    pub(super) fn challenge(&self, claims: &Claims, ids: &Ids) -> Option<Reply> {
        let oid = claims.get("oid").and_then(Value::as_str)?;
        let revoked_at = *lock(&self.by_user).get(&oid.to_ascii_lowercase())?;
        let issued_at = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
        if issued_at >= revoked_at || !capable(claims) {
            return None;
        }
        let json =
            format!(r#"{{"access_token":{{"nbf":{{"essential":true,"value":"{revoked_at}"}}}}}}"#);
        GraphFault::ClaimsChallenge(json).answer(ids)
    }
}

/// Whether the token's client declared the `cp1` capability (`xms_cc`).
fn capable(claims: &Claims) -> bool {
    claims
        .get("xms_cc")
        .and_then(Value::as_array)
        .is_some_and(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .any(|v| v.eq_ignore_ascii_case("cp1"))
        })
}
