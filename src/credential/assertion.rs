//! The extension point: [`ClientAssertion`], a source of client assertions the
//! token endpoint calls before each exchange (key vault, managed identity, …).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::CredentialError;
use crate::secret::SecretString;

/// The future returned by [`ClientAssertion::assertion`].
pub type AssertionFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SecretString, CredentialError>> + Send + 'a>>;

/// A source of client assertions (`client_assertion_type =
/// urn:ietf:params:oauth:client-assertion-type:jwt-bearer`): implement it for
/// a key vault, a managed identity, or anything else.
pub trait ClientAssertion: Send + Sync + fmt::Debug + 'static {
    /// A fresh assertion for `token_endpoint` (its `aud`).
    fn assertion<'a>(&'a self, client_id: &'a str, token_endpoint: &'a str) -> AssertionFuture<'a>;
}
