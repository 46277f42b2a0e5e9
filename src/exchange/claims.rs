//! The `claims` form field of a token request: the client capabilities this API
//! declares (`xms_cc`, e.g. `cp1` for Continuous Access Evaluation), merged with the
//! claims challenge being answered, if any.
//!
//! Pure JSON, no I/O: the capabilities alone give
//! `{"access_token":{"xms_cc":{"values":["cp1"]}}}`; a challenge's JSON (e.g.
//! `{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}`) is merged into
//! the same object, key by key (objects merged recursively, arrays united, the
//! challenge's scalar winning), as MSAL does. Only a challenge of the bounded
//! shape Entra defines (`{"access_token":{<claim>:<claim request>, …}}`, at most
//! 4 KB; see [`check_claims_request`]) is sent: [`request_claims`] refuses any
//! other, and the call fails as a refused token instead.

use serde_json::{Map, Value};

use crate::downstream::challenge::check_claims_request;

/// A claims challenge that is not a bounded access-token claims request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MalformedChallenge;

/// The `claims` field to send: the capabilities (if any) merged with `challenge`
/// (if any); `Ok(None)` when there is neither.
pub(crate) fn request_claims(
    capabilities: &[String],
    challenge: Option<&str>,
) -> Result<Option<String>, MalformedChallenge> {
    let mut claims = capabilities_claims(capabilities);
    if let Some(challenge) = challenge {
        check_claims_request(challenge).map_err(|_| MalformedChallenge)?;
        let challenge: Value = serde_json::from_str(challenge).map_err(|_| MalformedChallenge)?;
        let Value::Object(challenge) = challenge else {
            return Err(MalformedChallenge);
        };
        merge_objects(&mut claims, challenge);
    }
    Ok((!claims.is_empty()).then(|| Value::Object(claims).to_string()))
}

/// `{"access_token":{"xms_cc":{"values":[…]}}}`, or an empty object without capabilities.
fn capabilities_claims(capabilities: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    if !capabilities.is_empty() {
        let values = capabilities.iter().cloned().map(Value::String).collect();
        let mut xms_cc = Map::new();
        xms_cc.insert("values".into(), Value::Array(values));
        let mut access = Map::new();
        access.insert("xms_cc".into(), Value::Object(xms_cc));
        claims.insert("access_token".into(), Value::Object(access));
    }
    claims
}

/// Merges `from` into `into`: objects recursively, arrays as a union (order kept),
/// anything else replaced by `from`'s value.
fn merge_objects(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(Value::Object(a)), Value::Object(b)) => merge_objects(a, b),
            (Some(Value::Array(a)), Value::Array(b)) => {
                for v in b {
                    if !a.contains(&v) {
                        a.push(v);
                    }
                }
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn parsed(claims: Option<String>) -> Value {
        serde_json::from_str(&claims.unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn nothing_to_send_without_capabilities_or_challenge() {
        assert_eq!(request_claims(&[], None), Ok(None));
    }

    #[test]
    fn capabilities_alone() {
        let claims = request_claims(&caps(&["cp1"]), None);
        assert_eq!(
            claims,
            Ok(Some(
                r#"{"access_token":{"xms_cc":{"values":["cp1"]}}}"#.to_owned()
            ))
        );
    }

    #[test]
    fn a_challenge_merges_into_the_same_access_token_object() {
        let challenge = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
        let claims = request_claims(&caps(&["cp1"]), Some(challenge));
        assert_eq!(
            parsed(claims.unwrap_or_default()),
            json!({"access_token": {
                "xms_cc": {"values": ["cp1"]},
                "nbf": {"essential": true, "value": "1700000000"},
            }})
        );
        // Overlapping keys: objects merge, arrays unite, the challenge's scalars win.
        let challenge = r#"{"access_token":{"xms_cc":{"values":["cp1","cp2"],"essential":true},"acrs":{"value":"c1"}}}"#;
        let claims = request_claims(&caps(&["cp1"]), Some(challenge));
        assert_eq!(
            parsed(claims.unwrap_or_default()),
            json!({
                "access_token": {
                    "xms_cc": {"values": ["cp1", "cp2"], "essential": true},
                    "acrs": {"value": "c1"},
                },
            })
        );
        // Without capabilities, the challenge as it came.
        let claims = request_claims(&[], Some(challenge));
        assert_eq!(
            parsed(claims.unwrap_or_default()),
            serde_json::from_str::<Value>(challenge).unwrap_or_default()
        );
    }

    #[test]
    fn malformed_challenges_are_refused() {
        let huge = format!(
            r#"{{"access_token":{{"nbf":{{"value":"1"}}}}{}}}"#,
            " ".repeat(5000)
        );
        for bad in [
            "",
            "{",
            "[\"cp1\"]",
            "\"x\"",
            "42",
            "null",
            r#"{"a":1}"#,
            r#"{"id_token":{"auth_time":{"essential":true}}}"#,
            r#"{"access_token":{"nbf":{"value":{"deep":[1]}}}}"#,
            huge.as_str(),
        ] {
            assert_eq!(
                request_claims(&caps(&["cp1"]), Some(bad)),
                Err(MalformedChallenge),
                "{bad}"
            );
        }
    }
}
