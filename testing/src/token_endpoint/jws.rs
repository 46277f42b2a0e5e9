//! Compact JWS as the token endpoint receives them: decoding, RSA signature checks, and the
//! claim readers the validations share.

use aws_lc_rs::signature::{
    UnparsedPublicKey, VerificationAlgorithm, RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::super::ids::{b64url, CivilTime};

/// A decoded, not yet verified, compact JWS with a JSON payload.
#[derive(Debug, Clone)]
pub(super) struct Jws {
    pub(super) header: Map<String, Value>,
    pub(super) claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

/// The signature algorithms the token endpoint verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256 (salt = digest length).
    Ps256,
}

impl Jws {
    /// Decodes `token`; `None` unless it is three base64url parts whose first two are JSON
    /// objects.
    pub(super) fn decode(token: &str) -> Option<Jws> {
        let mut parts = token.trim().split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let object = |part: &str| match serde_json::from_slice(&unbase64url(part)?) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        Some(Jws {
            header: object(header)?,
            claims: object(claims)?,
            signing_input: format!("{header}.{claims}"),
            signature: unbase64url(signature)?,
        })
    }

    /// The header's `alg`, if one the endpoint verifies.
    pub(super) fn alg(&self) -> Option<Alg> {
        match self.header.get("alg").and_then(Value::as_str) {
            Some("RS256") => Some(Alg::Rs256),
            Some("PS256") => Some(Alg::Ps256),
            _ => None,
        }
    }

    /// Whether the signature verifies under `alg` with `spki` (DER `SubjectPublicKeyInfo`).
    pub(super) fn verifies(&self, alg: Alg, spki: &[u8]) -> bool {
        let algorithm: &'static dyn VerificationAlgorithm = match alg {
            Alg::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
            Alg::Ps256 => &RSA_PSS_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(algorithm, spki)
            .verify(self.signing_input.as_bytes(), &self.signature)
            .is_ok()
    }

    /// A header field as a string.
    pub(super) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// A claim as a string.
    pub(super) fn str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A time claim in whole seconds (JSON numbers may be fractional, e.g. from PyJWT).
    pub(super) fn time(&self, name: &str) -> Option<i64> {
        let value = self.claims.get(name)?;
        value.as_i64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.floor() as i64)
        })
    }

    /// Whether `aud` (a string or an array of strings) contains `expected`.
    pub(super) fn audience_is(&self, expected: impl Fn(&str) -> bool) -> bool {
        match self.claims.get("aud") {
            Some(Value::String(aud)) => expected(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(expected),
            _ => false,
        }
    }

    /// `aud` as written, for error messages.
    pub(super) fn audience_text(&self) -> String {
        match self.claims.get("aud") {
            Some(Value::String(aud)) => aud.clone(),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => String::new(),
        }
    }
}

/// base64url, with or without padding (MSAL Python pads `x5t`).
pub(super) fn unbase64url(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

/// A thumbprint as the assertion names it, compared with `digest`.
pub(super) fn thumbprint_is(named: &str, digest: &[u8]) -> bool {
    unbase64url(named).is_some_and(|bytes| bytes == digest)
}

/// Uppercase hex, as Entra prints certificate thumbprints.
pub(super) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A Unix time in Entra's message format (`2024-05-01 12:34:56Z`); `-` when absent.
pub(super) fn when(secs: Option<i64>) -> String {
    secs.map_or_else(
        || "-".to_owned(),
        |s| CivilTime::from_unix(s).entra_timestamp(),
    )
}

/// base64url of a JSON value (JOSE segments, `client_info`).
pub(super) fn b64url_json(value: &Value) -> String {
    b64url(value.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_reads_claims() {
        let token = format!(
            "{}.{}.{}",
            b64url(br#"{"alg":"PS256"}"#),
            b64url(br#"{"aud":["a","b"],"exp":12.7,"iat":3}"#),
            b64url(b"sig")
        );
        let jws = Jws::decode(&token).unwrap_or_else(|| panic!("decodes"));
        assert_eq!(jws.alg(), Some(Alg::Ps256));
        assert_eq!(jws.time("exp"), Some(12));
        assert_eq!(jws.time("iat"), Some(3));
        assert!(jws.audience_is(|a| a == "b"));
        assert_eq!(jws.audience_text(), "a,b");
        assert!(!jws.verifies(Alg::Ps256, b"not a key"));
        assert!(Jws::decode("a.b").is_none());
        assert!(Jws::decode(&format!("{token}.x")).is_none());
        assert!(thumbprint_is("AQI=", &[1, 2]) && thumbprint_is("AQI", &[1, 2]));
        assert_eq!(hex_upper(&[0xab, 1]), "AB01");
        assert_eq!(when(Some(0)), "1970-01-01 00:00:00Z");
    }
}
