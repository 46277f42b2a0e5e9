//! How this API proves its identity at the token endpoint: a client secret, a
//! certificate (signed client assertion), a federated token file (workload
//! identity), a [`ManagedIdentity`] (its token as a federated assertion), or
//! anything implementing [`ClientAssertion`].
//!
//! These are inputs of the On-Behalf-Of exchange: the configuration builder takes
//! them ([`OboConfigBuilder::client_secret`](crate::OboConfigBuilder::client_secret),
//! [`client_certificate`](crate::OboConfigBuilder::client_certificate),
//! [`federated_token_file`](crate::OboConfigBuilder::federated_token_file),
//! [`managed_identity`](crate::OboConfigBuilder::managed_identity),
//! [`client_assertion`](crate::OboConfigBuilder::client_assertion)) and the token
//! endpoint turns the chosen one into form fields for every request. A credential
//! that cannot be produced (unreadable file, failed signature, your source's
//! error) fails that exchange as misconfigured; nothing is cached.
//!
//! - `assertion`: the [`ClientAssertion`] trait and its [`AssertionFuture`].
//! - `certificate`: [`CertificateCredential`] and its [`AssertionAlgorithm`].
//! - `federated`: the federated token file (crate-private; configure it with
//!   [`OboConfigBuilder::federated_token_file`](crate::OboConfigBuilder::federated_token_file)).
//! - `managed_identity`: [`ManagedIdentity`], and the cached, single-flight
//!   assertion from the platform's identity endpoint (crate-private).

mod assertion;
mod certificate;
mod federated;
mod managed_identity;

use std::sync::Arc;

pub use assertion::{AssertionFuture, ClientAssertion};
pub use certificate::{AssertionAlgorithm, CertificateCredential};
pub(crate) use federated::FederatedTokenFile;
pub use managed_identity::ManagedIdentity;
pub(crate) use managed_identity::{
    token_exchange_audience, IdentityEndpoint, ManagedIdentityAssertion,
};

use crate::secret::SecretString;

/// A credential could not be produced (unreadable file, bad key, …).
#[derive(Debug, Clone, thiserror::Error)]
#[error("client credential: {0}")]
pub struct CredentialError(String);

impl CredentialError {
    /// An error with this message (which must not contain secrets).
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The credential this API presents at the token endpoint.
#[derive(Clone, Debug)]
pub(crate) enum ClientCredential {
    /// `client_secret` (`AZURE_CLIENT_SECRET`).
    Secret(SecretString),
    /// A client assertion signed with a certificate (`AZURE_CLIENT_CERTIFICATE_PATH`).
    Certificate(CertificateCredential),
    /// A client assertion read from a file (`AZURE_FEDERATED_TOKEN_FILE`).
    FederatedTokenFile(FederatedTokenFile),
    /// A managed identity's token for the token-exchange audience (`OBO_MANAGED_IDENTITY`).
    ManagedIdentity(ManagedIdentityAssertion),
    /// A client assertion from your own source.
    Assertion(Arc<dyn ClientAssertion>),
}

/// What goes into the token request's form for the credential.
pub(crate) enum CredentialForm {
    Secret(SecretString),
    Assertion(SecretString),
}

impl ClientCredential {
    pub(crate) async fn form(
        &self,
        client_id: &str,
        token_endpoint: &str,
        now: i64,
    ) -> Result<CredentialForm, CredentialError> {
        Ok(match self {
            ClientCredential::Secret(s) => CredentialForm::Secret(s.clone()),
            ClientCredential::Certificate(c) => {
                CredentialForm::Assertion(c.sign(client_id, token_endpoint, now)?)
            }
            ClientCredential::FederatedTokenFile(f) => CredentialForm::Assertion(f.read().await?),
            ClientCredential::ManagedIdentity(m) => {
                CredentialForm::Assertion(m.assertion(now).await?)
            }
            ClientCredential::Assertion(a) => {
                CredentialForm::Assertion(a.assertion(client_id, token_endpoint).await?)
            }
        })
    }

    /// A short name for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ClientCredential::Secret(_) => "client_secret",
            ClientCredential::Certificate(_) => "certificate",
            ClientCredential::FederatedTokenFile(_) => "federated_token_file",
            ClientCredential::ManagedIdentity(_) => "managed_identity",
            ClientCredential::Assertion(_) => "client_assertion",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["obo.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let key_pem = key.serialize_pem();
        let pem = format!("{key_pem}{}", cert.pem());
        let cred = CertificateCredential::from_pem(pem.as_bytes()).unwrap();
        let key_body: String = key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for text in [
            format!("{cred:?}"),
            format!("{:?}", ClientCredential::Certificate(cred.clone())),
        ] {
            assert!(!text.contains(&key_body[..40]), "{text}");
        }
    }
}
