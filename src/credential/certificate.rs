//! [`CertificateCredential`]: a certificate and its RSA key, signing a fresh client
//! assertion (PS256 or RS256) for every exchange. Holds the parsed key only; the
//! key never appears in `Debug`, only the certificate's thumbprint.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaEncoding, RsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::CredentialError;
use crate::secret::SecretString;

/// The algorithm of certificate-signed client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlgorithm {
    /// `PS256` with an `x5t#S256` (SHA-256 thumbprint) header: what current MSAL sends.
    #[default]
    Ps256,
    /// `RS256` with an `x5t` (SHA-1 thumbprint) header, for older setups.
    Rs256,
}

/// A certificate and its RSA private key, used to sign client assertions.
#[derive(Clone)]
pub struct CertificateCredential {
    key: Arc<RsaKeyPair>,
    x5t_s256: String,
    x5t: String,
    x5c: String,
    algorithm: AssertionAlgorithm,
    send_x5c: bool,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("x5t#S256", &self.x5t_s256)
            .field("algorithm", &self.algorithm)
            .field("send_x5c", &self.send_x5c)
            .finish_non_exhaustive()
    }
}

impl CertificateCredential {
    /// From PEM text holding the certificate (`CERTIFICATE`) and its RSA private
    /// key (`PRIVATE KEY` or `RSA PRIVATE KEY`), in any order.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CredentialError> {
        let cert = CertificateDer::from_pem_slice(pem)
            .map_err(|_| CredentialError::new("no CERTIFICATE block found in the PEM"))?;
        let key = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|_| CredentialError::new("no private key block found in the PEM"))?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(CredentialError::new("the private key must be an RSA key")),
        }
        .map_err(|e| {
            CredentialError::new(format!("the private key is not a usable RSA key ({e})"))
        })?;
        let der = cert.as_ref();
        let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let sha1 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        Ok(Self {
            key: Arc::new(key),
            x5t_s256: URL_SAFE_NO_PAD.encode(sha256.as_ref()),
            x5t: URL_SAFE_NO_PAD.encode(sha1.as_ref()),
            x5c: STANDARD.encode(der),
            algorithm: AssertionAlgorithm::default(),
            send_x5c: false,
        })
    }

    /// From a PEM file (`AZURE_CLIENT_CERTIFICATE_PATH`).
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self, CredentialError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| {
            CredentialError::new(format!("cannot read {}: {}", path.display(), e.kind()))
        })?;
        Self::from_pem(&pem)
    }

    /// Chooses the signing algorithm (default PS256 with `x5t#S256`).
    #[must_use]
    pub fn algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Also sends the certificate in the `x5c` header (needed for subject
    /// name/issuer authentication).
    #[must_use]
    pub fn send_x5c(mut self, send: bool) -> Self {
        self.send_x5c = send;
        self
    }

    /// The base64url SHA-256 thumbprint of the certificate (`x5t#S256`).
    pub fn thumbprint_sha256(&self) -> &str {
        &self.x5t_s256
    }

    /// A signed assertion: `aud` = the token endpoint, `iss` = `sub` = client id,
    /// unique `jti`, 10-minute lifetime.
    pub(crate) fn sign(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now: i64,
    ) -> Result<SecretString, CredentialError> {
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), "JWT".into());
        let encoding: &'static dyn RsaEncoding = match self.algorithm {
            AssertionAlgorithm::Ps256 => {
                header.insert("alg".into(), "PS256".into());
                header.insert("x5t#S256".into(), self.x5t_s256.clone().into());
                &RSA_PSS_SHA256
            }
            AssertionAlgorithm::Rs256 => {
                header.insert("alg".into(), "RS256".into());
                header.insert("x5t".into(), self.x5t.clone().into());
                &RSA_PKCS1_SHA256
            }
        };
        if self.send_x5c {
            header.insert("x5c".into(), serde_json::json!([self.x5c]));
        }
        let claims = serde_json::json!({
            "aud": token_endpoint,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "nbf": now,
            "exp": now + 600,
        });
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                encoding,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .map_err(|_| CredentialError::new("signing the client assertion failed"))?;
        Ok(SecretString::new(format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}
