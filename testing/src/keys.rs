//! RSA signing keys, their self-signed certificates, JWK rendering, and the key ring of one
//! stand-in.
//!
//! Entra publishes each signing key with an X.509 certificate (`x5c`); the `kid` and `x5t` are
//! both the base64url SHA-1 thumbprint of that certificate. The keys here follow suit.
//!
//! RSA-2048 generation costs ~100 ms, so keys come from a process-wide pool: the stand-in's
//! `n`-th key is the pool's `n`-th key. Keys therefore repeat *across* stand-ins in one process
//! (as Entra shares keys across tenants) but never *within* one.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};

use super::ids::{b64, b64url, random_bytes, sha1, unix_seconds, CivilTime};

/// Subject of the certificates Entra wraps its signing keys in.
const CERT_SUBJECT: &str = "accounts.accesscontrol.windows.net";

/// An RSA-2048 signing key with its certificate and precomputed public encodings.
pub(super) struct SigningKey {
    kid: String,
    pair: RsaKeyPair,
    cert_der: Vec<u8>,
    spki_der: Vec<u8>,
    n: String,
    e: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key and its self-signed certificate (slow: ~100 ms).
    fn generate() -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key generation");
        let pkcs8 = pair
            .as_der()
            .expect("PKCS#8 encoding of a generated RSA key");
        let cert_key = rcgen::KeyPair::try_from(pkcs8.as_ref())
            .expect("rcgen accepts an aws-lc-rs PKCS#8 RSA key");

        let year = CivilTime::from_unix(unix_seconds(SystemTime::now())).year;
        let year = i32::try_from(year).expect("the current year fits in i32");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .expect("certificate parameters without subject alternative names");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, CERT_SUBJECT);
        params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
        params.not_after = rcgen::date_time_ymd(year + 4, 1, 1);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&random_bytes::<16>()));
        let cert = params
            .self_signed(&cert_key)
            .expect("self-signing a certificate with a fresh RSA key");
        let cert_der = cert.der().as_ref().to_vec();

        let public = pair.public_key();
        let spki_der = public
            .as_der()
            .expect("SubjectPublicKeyInfo encoding of an RSA public key")
            .as_ref()
            .to_vec();
        let n = b64url(public.modulus().big_endian_without_leading_zero());
        let e = b64url(public.exponent().big_endian_without_leading_zero());
        let kid = b64url(&sha1(&cert_der));
        SigningKey {
            kid,
            pair,
            cert_der,
            spki_der,
            n,
            e,
        }
    }

    /// The key id: base64url SHA-1 thumbprint of the certificate (also the `x5t`).
    pub(super) fn kid(&self) -> &str {
        &self.kid
    }

    /// RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature over `message`.
    pub(super) fn sign_rs256(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .expect("RS256 signing with a valid RSA key");
        signature
    }

    /// The public key as DER `SubjectPublicKeyInfo`.
    pub(super) fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The public key as PEM (`-----BEGIN PUBLIC KEY-----`, 64-column lines).
    pub(super) fn public_key_pem(&self) -> String {
        let body = b64(&self.spki_der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// The certificate, DER.
    #[cfg(test)]
    pub(super) fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// This key as a JWK the way Entra publishes it. The v2 key sets add
    /// `cloud_instance_name` and `issuer`; the v1 key set has neither.
    pub(super) fn jwk(&self, v2: Option<(&str, &str)>) -> Value {
        let mut jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "x5c": [b64(&self.cert_der)],
        });
        if let (Some((cloud_instance_name, issuer)), Some(map)) = (v2, jwk.as_object_mut()) {
            map.insert("cloud_instance_name".into(), cloud_instance_name.into());
            map.insert("issuer".into(), issuer.into());
        }
        jwk
    }
}

/// The process-wide pool of generated keys, grown on demand.
fn pool() -> &'static Mutex<Vec<Arc<SigningKey>>> {
    static POOL: OnceLock<Mutex<Vec<Arc<SigningKey>>>> = OnceLock::new();
    POOL.get_or_init(|| Mutex::new(Vec::new()))
}

/// The pool's `index`-th key, generating keys (outside the lock) until it exists.
pub(super) fn pooled(index: usize) -> Arc<SigningKey> {
    loop {
        {
            let keys = pool().lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(key) = keys.get(index) {
                return Arc::clone(key);
            }
        }
        let fresh = Arc::new(SigningKey::generate());
        pool()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fresh);
    }
}

/// One key of a stand-in and whether its JWKS lists it.
#[derive(Debug)]
struct Slot {
    key: Arc<SigningKey>,
    published: bool,
}

/// The keys of one stand-in: published or not, and which one signs by default.
///
/// Every key in a ring is distinct. Pool indices are reserved with [`KeyRing::reserve`] and
/// the key is fetched outside the ring's lock (it may have to be generated).
#[derive(Debug)]
pub(super) struct KeyRing {
    slots: Vec<Slot>,
    current: String,
    unpublished: Option<String>,
    next_index: usize,
}

impl KeyRing {
    /// A ring whose only key, published and current, is `first` (pool index 0).
    pub(super) fn new(first: Arc<SigningKey>) -> Self {
        KeyRing {
            current: first.kid().to_owned(),
            slots: vec![Slot {
                key: first,
                published: true,
            }],
            unpublished: None,
            next_index: 1,
        }
    }

    /// Reserves the next pool index for a key of this ring.
    pub(super) fn reserve(&mut self) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    /// Adds `key`, published or not; returns its kid.
    pub(super) fn insert(&mut self, key: Arc<SigningKey>, published: bool) -> String {
        let kid = key.kid().to_owned();
        self.slots.push(Slot { key, published });
        kid
    }

    /// Makes `kid` the default signing key.
    pub(super) fn make_current(&mut self, kid: &str) {
        self.current = kid.to_owned();
    }

    /// The kid of the default signing key.
    pub(super) fn current_kid(&self) -> &str {
        &self.current
    }

    /// The default signing key.
    pub(super) fn current(&self) -> Arc<SigningKey> {
        self.get(&self.current)
            .expect("the current key is always in the ring")
    }

    /// Any key of this ring (published or not) by kid.
    pub(super) fn get(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.slots
            .iter()
            .find(|slot| slot.key.kid() == kid)
            .map(|slot| Arc::clone(&slot.key))
    }

    /// Stops publishing `kid` (it can still sign). Returns false if the ring has no such key.
    pub(super) fn retire(&mut self, kid: &str) -> bool {
        match self.slots.iter_mut().find(|slot| slot.key.kid() == kid) {
            Some(slot) => {
                slot.published = false;
                true
            }
            None => false,
        }
    }

    /// The kid of the never-published key, if it was created already.
    pub(super) fn unpublished_kid(&self) -> Option<&str> {
        self.unpublished.as_deref()
    }

    /// Records `kid` as the never-published key.
    pub(super) fn set_unpublished(&mut self, kid: String) {
        self.unpublished = Some(kid);
    }

    /// The published keys, oldest first.
    pub(super) fn published(&self) -> Vec<Arc<SigningKey>> {
        self.slots
            .iter()
            .filter(|slot| slot.published)
            .map(|slot| Arc::clone(&slot.key))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kid_is_the_certificate_thumbprint_and_jwk_matches_entra() {
        let key = pooled(0);
        assert_eq!(key.kid(), b64url(&sha1(key.cert_der())));
        assert_eq!(key.kid().len(), 27);
        let jwk = key.jwk(None);
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["x5t"], jwk["kid"]);
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["n"].as_str().map(str::len), Some(342));
        assert!(jwk.get("issuer").is_none());
        let v2 = key.jwk(Some(("microsoftonline.com", "https://x/{tenantid}/v2.0")));
        assert_eq!(v2["issuer"], "https://x/{tenantid}/v2.0");
        assert_eq!(v2["cloud_instance_name"], "microsoftonline.com");
        assert!(key.public_key_pem().starts_with(
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
        ));
    }

    #[test]
    fn pool_keys_are_distinct() {
        assert_ne!(pooled(0).kid(), pooled(1).kid());
        assert_eq!(pooled(1).kid(), pooled(1).kid());
    }
}
