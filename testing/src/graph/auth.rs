//! Bearer-token validation as Graph does it: an RS256 JWT whose key comes from a key set
//! fetched on demand ([`KeySet`]), Graph's audiences, lifetime with five minutes of skew.
//!
//! The key set is fetched on first use and again for an unknown `kid`; a failed fetch keeps
//! the previous keys. Failures carry Graph's `401 InvalidAuthenticationToken` messages.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::HeaderMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::reply::{GRAPH_APP_ID, GRAPH_RESOURCE};

/// Clock skew Graph tolerates on `exp` and `nbf`.
const CLOCK_SKEW_SECS: u64 = 300;

/// The verified claims of a token.
pub(super) type Claims = Map<String, Value>;

/// The key set Graph trusts, fetched from `jwks_url` and cached by `kid`.
pub(super) struct KeySet {
    jwks_url: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    fetches: AtomicUsize,
}

impl KeySet {
    pub(super) fn new(jwks_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client for the Graph stand-in's key-set fetches");
        KeySet {
            jwks_url: jwks_url.to_owned(),
            http,
            keys: RwLock::new(HashMap::new()),
            fetches: AtomicUsize::new(0),
        }
    }

    pub(super) fn jwks_url(&self) -> &str {
        &self.jwks_url
    }

    /// Key-set fetches made so far.
    pub(super) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Verifies the bearer token of `headers` like Graph; the error is Graph's message.
    pub(super) async fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, &'static str> {
        const EMPTY: &str = "Access token is empty.";
        let value = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(EMPTY)?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(EMPTY),
        };
        if token.is_empty() {
            return Err(EMPTY);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| "Invalid JWT token. Token format not valid.")?;
        if header.alg != Algorithm::RS256 {
            return Err("Access token validation failure. Invalid signature algorithm.");
        }
        let kid = header
            .kid
            .ok_or("Access token validation failure. The token has no key identifier.")?;
        let key = self
            .key(&kid)
            .await
            .ok_or("Access token validation failure. Signature key not found.")?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[GRAPH_RESOURCE, GRAPH_APP_ID]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW_SECS;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => "Lifetime validation failed, the token is expired.",
            ErrorKind::ImmatureSignature => {
                "Lifetime validation failed, the token is not yet valid."
            }
            ErrorKind::InvalidAudience => "Access token validation failure. Invalid audience.",
            ErrorKind::InvalidSignature => "Access token validation failure. Invalid signature.",
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                "Access token validation failure. A required claim is missing or invalid."
            }
            _ => "Invalid JWT token.",
        })?;
        Ok(data.claims)
    }

    /// The key `kid`, fetching the key set again if it is not known yet.
    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let cached = self.cached(kid);
        if cached.is_some() {
            return cached;
        }
        self.refresh().await;
        self.cached(kid)
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    /// Fetches the key set; keeps the previous one if the fetch fails.
    async fn refresh(&self) {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let fetched = async {
            let response = self.http.get(&self.jwks_url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.json::<Value>().await.ok()
        };
        let Some(document) = fetched.await else {
            tracing::warn!(jwks_url = %self.jwks_url, "Graph stand-in could not fetch the key set");
            return;
        };
        let mut keys = HashMap::new();
        for jwk in document
            .get("keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |name: &str| jwk.get(name).and_then(Value::as_str);
            let (Some("RSA"), Some(kid), Some(n), Some(e)) =
                (text("kty"), text("kid"), text("n"), text("e"))
            else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_rsa_components(n, e) {
                keys.insert(kid.to_owned(), key);
            }
        }
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
    }
}
