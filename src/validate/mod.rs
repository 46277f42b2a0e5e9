//! Access-token validation.
//!
//! - [`claims`]: the validated [`Principal`] and its kinds.
//! - [`error`]: why a token is refused.
//! - [`payload`]: the claims the checks read, borrowed from the payload.
//! - [`rules`]: the checks (signature, issuer, tenant, audience, lifetime, kind).
//! - [`cache`]: successful validations, for the exact same token, while the
//!   uncached checks would still pass (lifetime, the key that verified it, a cap).

pub(crate) mod cache;
pub(crate) mod claims;
pub(crate) mod error;
pub(crate) mod payload;
pub(crate) mod rules;
#[cfg(test)]
mod tests;

pub(crate) use claims::is_guid;
pub use claims::{Principal, TokenKind, TokenVersion};
pub use error::ValidationError;
#[cfg(test)]
pub(crate) use rules::b64token;
pub(crate) use rules::{ValidationSettings, Validator, ANY_TENANT_KEYS, MAX_TOKEN_LEN};
