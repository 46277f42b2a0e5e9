//! What the benchmarks share: realistic Entra tokens, a configuration against the
//! stand-in, and the raw `jsonwebtoken` decode that serves as the floor.
#![allow(dead_code)] // each bench target uses a part

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum_obo::{OboConfig, OboConfigBuilder};
use axum_obo_testing::EntraStandIn;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};

/// The scope every benchmark token carries (the layer requires it).
pub const API_SCOPE: &str = "access_as_user";

/// The downstream scope of the On-Behalf-Of benchmarks (`GraphUserRead`).
pub const USER_READ: &str = "https://graph.microsoft.com/User.Read";

/// A delegated v2.0 access token as Entra issues them to a web front end: the
/// stand-in's claim set plus the optional claims real tenants add (~1.5 KB),
/// signed with the stand-in's 2048-bit RSA key.
pub fn realistic_token(entra: &EntraStandIn, oid: &str) -> String {
    let token = entra
        .token()
        .user(oid)
        .scopes(&[API_SCOPE])
        .lifetime(Duration::from_secs(3 * 3600))
        .claim("amr", json!(["pwd", "mfa"]))
        .claim("family_name", json!("Contoso"))
        .claim("given_name", json!("Megan"))
        .claim("ipaddr", json!("203.0.113.42"))
        .claim("wids", json!(["b79fbf4d-3ef9-4689-8143-76b194e85509"]))
        .claim("xms_tcdt", json!(1_600_000_000))
        .sign();
    assert!(
        (1400..=1800).contains(&token.len()),
        "a realistic token is about 1.5 KB, this one is {} bytes",
        token.len()
    );
    token
}

/// A configuration of the layer against the stand-in, requiring [`API_SCOPE`].
pub fn config(entra: &EntraStandIn) -> OboConfigBuilder {
    OboConfig::builder()
        .tenant_id(entra.home_tenant())
        .client_id(entra.api_client_id())
        .authority_host(entra.authority_host())
        .require_user_scopes([API_SCOPE])
}

/// A 2048-bit RSA key's modulus is 256 bytes: check that the stand-in signs with one.
pub fn assert_rsa_2048(entra: &EntraStandIn) {
    let der = entra.public_key_der(&entra.current_kid());
    // SubjectPublicKeyInfo of RSA-2048 with e = 65537.
    assert_eq!(der.len(), 294, "expected an RSA-2048 public key");
}

/// `jsonwebtoken::decode` with the same key and the same checks that matter
/// (RS256, issuer, audience, exp, nbf), claims parsed into a JSON map as the layer
/// does: the floor any Rust validator on this crypto backend can reach.
pub struct RawDecoder {
    key: DecodingKey,
    validation: Validation,
}

impl RawDecoder {
    /// The decoder for tokens of `entra`'s home tenant, keyed with its current
    /// key as published in its JWKS (`n`, `e`).
    pub async fn new(entra: &EntraStandIn) -> Self {
        let tid = entra.home_tenant();
        let url = format!("{}/{tid}/discovery/v2.0/keys", entra.authority_host());
        let jwks: Value = reqwest::get(&url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("fetching the stand-in's JWKS")
            .json()
            .await
            .expect("the stand-in's JWKS is JSON");
        let kid = entra.current_kid();
        let jwk = jwks["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
            .expect("the current key is published");
        let key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap_or_default(),
            jwk["e"].as_str().unwrap_or_default(),
        )
        .expect("an RSA JWK");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[entra.issuer_v2(&tid)]);
        validation.set_audience(&[entra.api_client_id()]);
        validation.validate_nbf = true;
        validation.leeway = 60;
        Self { key, validation }
    }

    /// Verifies and decodes `token`.
    pub fn decode(&self, token: &str) -> jsonwebtoken::errors::Result<Map<String, Value>> {
        jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map(|data| data.claims)
    }
}

/// Runs a future that is expected to be ready at once (a warm cache, keys
/// already fetched) without executor overhead; falls back to `rt` if it is not.
pub fn ready<F: Future>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => rt.block_on(fut),
    }
}

/// `VmRSS` of this process, in bytes.
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
