//! A JWKS parsed into RS256 verification keys.

use std::collections::HashMap;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use super::KeyError;

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    #[serde(rename = "use", default)]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    kid: String,
    n: String,
    e: String,
}

/// Usable keys of a JWKS by `kid`: RSA signing keys only. Keys of other types
/// (or malformed entries) are skipped; a set with no usable key is an error.
pub(crate) fn parse(jwks: serde_json::Value) -> Result<HashMap<String, ParsedPublicKey>, KeyError> {
    let jwks: Jwks = serde_json::from_value(jwks).map_err(|_| KeyError::Invalid("JWKS"))?;
    let mut keys = HashMap::new();
    for raw in jwks.keys {
        let Ok(k) = serde_json::from_value::<RsaJwk>(raw) else {
            continue;
        };
        if k.kty != "RSA"
            || k.use_.as_deref().is_some_and(|u| u != "sig")
            || k.alg.as_deref().is_some_and(|a| a != "RS256")
            || k.kid.is_empty()
        {
            continue;
        }
        if let Some(key) = rs256_key(&k.n, &k.e) {
            keys.insert(k.kid, key);
        }
    }
    if keys.is_empty() {
        return Err(KeyError::Invalid("JWKS (no usable RSA signing key)"));
    }
    Ok(keys)
}

/// An RS256 verification key from a JWK's `n` and `e` (base64url, big-endian),
/// parsed once: verification then skips the per-call key set-up.
fn rs256_key(n: &str, e: &str) -> Option<ParsedPublicKey> {
    let n = URL_SAFE_NO_PAD.decode(n).ok()?;
    let e = URL_SAFE_NO_PAD.decode(e).ok()?;
    // aws-lc-rs wants no leading zero bytes; some key sets have one.
    let trim = |b: &[u8]| b.iter().position(|&x| x != 0).unwrap_or(b.len());
    let (n, e) = (&n[trim(&n)..], &e[trim(&e)..]);
    RsaPublicKeyComponents { n, e }
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_only_rsa_signing_keys() {
        let jwks = json!({"keys": [
            {"kty": "RSA", "use": "sig", "kid": "a", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"},
            {"kty": "EC", "use": "sig", "kid": "b", "crv": "P-256", "x": "x", "y": "y"},
            {"kty": "RSA", "use": "enc", "kid": "c", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "d"},
            "garbage"
        ]});
        let keys = parse(jwks).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn empty_or_wrong_shape_is_invalid() {
        assert!(parse(json!({"keys": []})).is_err());
        assert!(parse(json!({"nokeys": 1})).is_err());
        assert!(parse(json!("<html>")).is_err());
    }
}
