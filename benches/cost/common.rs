//! What the benchmarks share: realistic Entra tokens, a configuration against the
//! stand-in, and the raw `jsonwebtoken` decode that serves as the floor.
#![allow(dead_code)] // each bench target uses a part

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aws_lc_rs::signature::ParsedPublicKey;
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

/// The claims the layer reads, owned (`jsonwebtoken::decode` wants
/// `DeserializeOwned`): what a jsonwebtoken-based layer would deserialize.
#[derive(Debug, serde::Deserialize)]
pub struct LayerClaims {
    pub tid: String,
    pub iss: String,
    pub aud: Value,
    pub exp: i64,
    pub nbf: Option<i64>,
    pub ver: Option<String>,
    pub scp: Option<String>,
    pub roles: Option<Vec<String>>,
    pub azp: Option<String>,
    pub appid: Option<String>,
    pub idtyp: Option<String>,
    pub oid: String,
    pub sub: String,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
}

/// Pre-parsed aws-lc-rs keys, by the DER of the `DecodingKey` they stand for:
/// what a jsonwebtoken 11 `CryptoProvider` (a plain `fn`, no state) has to
/// consult to avoid parsing the key on every call.
static PREPARSED: std::sync::RwLock<Vec<(Vec<u8>, std::sync::Arc<ParsedPublicKey>)>> =
    std::sync::RwLock::new(Vec::new());

struct PreParsedVerifier(std::sync::Arc<ParsedPublicKey>);

impl jsonwebtoken::signature::Verifier<Vec<u8>> for PreParsedVerifier {
    fn verify(
        &self,
        msg: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        self.0
            .verify_sig(msg, signature)
            .map_err(|_| jsonwebtoken::signature::Error::new())
    }
}

impl jsonwebtoken::crypto::JwtVerifier for PreParsedVerifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

fn preparsed_verifier(
    alg: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn jsonwebtoken::crypto::JwtVerifier>> {
    if *alg == Algorithm::RS256 {
        if let Ok(der) = key.try_get_as_bytes() {
            let keys = PREPARSED.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, parsed)) = keys.iter().find(|(d, _)| d == der) {
                return Ok(Box::new(PreParsedVerifier(std::sync::Arc::clone(parsed))));
            }
        }
    }
    (jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.verifier_factory)(alg, key)
}

/// `jsonwebtoken::decode` (header, `Validation` for the registered claims, claims
/// into [`LayerClaims`]) with a custom `CryptoProvider` whose RS256 verifier uses a
/// pre-parsed aws-lc-rs key: jsonwebtoken as this crate's JWT layer would use it.
pub struct PreParsedJwt {
    key: DecodingKey,
    validation: Validation,
}

impl PreParsedJwt {
    /// Registers `parsed` for `der` (the stand-in's key as a SubjectPublicKeyInfo)
    /// and installs the provider (once per process).
    pub fn new(entra: &EntraStandIn, der: &[u8], parsed: ParsedPublicKey) -> Self {
        static PROVIDER: std::sync::OnceLock<&'static jsonwebtoken::crypto::CryptoProvider> =
            std::sync::OnceLock::new();
        let provider = PROVIDER.get_or_init(|| {
            let d = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
            let p = Box::leak(Box::new(jsonwebtoken::crypto::CryptoProvider {
                signer_factory: d.signer_factory,
                verifier_factory: preparsed_verifier,
                key_utils: d.key_utils.clone(),
            }));
            let _ = p.install_default();
            p
        });
        let _ = provider;
        PREPARSED
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((der.to_vec(), std::sync::Arc::new(parsed)));
        let tid = entra.home_tenant();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[entra.issuer_v2(&tid)]);
        validation.set_audience(&[entra.api_client_id()]);
        validation.validate_nbf = true;
        validation.leeway = 60;
        Self {
            key: DecodingKey::from_rsa_der(der),
            validation,
        }
    }

    /// Verifies and decodes `token`.
    pub fn decode(&self, token: &str) -> jsonwebtoken::errors::Result<LayerClaims> {
        jsonwebtoken::decode::<LayerClaims>(token, &self.key, &self.validation)
            .map(|data| data.claims)
    }
}
