//! An Entra ID stand-in for offline tests (cargo feature `testing`).
//!
//! [`EntraStandIn`] serves, on `127.0.0.1`, what the Microsoft identity platform serves at
//! `https://login.microsoftonline.com`, for any tenant GUID and for `common`,
//! `organizations` and `consumers`:
//!
//! | route | answer |
//! |---|---|
//! | `GET /{tenant}/v2.0/.well-known/openid-configuration` | v2.0 OpenID metadata |
//! | `GET /{tenant}/.well-known/openid-configuration` | v1.0 OpenID metadata |
//! | `GET /{tenant}/discovery/v2.0/keys` | key set, each key with `issuer` |
//! | `GET /{tenant}/discovery/keys` | v1.0 key set |
//! | `GET /{tenant}/discovery/instance` | instance discovery (MSAL) |
//!
//! Any other tenant segment gets Entra's `400 invalid_tenant` (AADSTS90002) JSON error.
//! Keys are RSA-2048 with self-signed certificates; `kid` and `x5t` are the certificate's
//! SHA-1 thumbprint, as at Entra. [`TokenBuilder`] mints v1.0 and v2.0 access tokens
//! (delegated or app-only) and ID tokens with Entra's claim set. Keys can be rotated and
//! retired, and faults (error statuses, garbage key sets, delays) injected, while counters
//! record what the code under test fetched.
//!
//! The stand-in is an independent simulation of Entra: it shares no code with the rest of
//! this crate.
//!
//! ```
//! use axum_obo::testing::EntraStandIn;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let entra = EntraStandIn::start().await;
//! // Configure the code under test with `entra.authority_host()` and `entra.home_tenant()`.
//! let token = entra.token().scopes(&["Tasks.Read", "Tasks.Write"]).sign();
//! assert_eq!(token.split('.').count(), 3);
//!
//! let guest = entra.token().tenant("72f988bf-86f1-41af-91ab-2d7cd011db47").claims();
//! assert_eq!(guest["iss"], entra.issuer_v2("72f988bf-86f1-41af-91ab-2d7cd011db47"));
//!
//! let old = entra.current_kid();
//! entra.rotate_key();
//! entra.retire_key(&old);
//! # }
//! ```

mod cloud;
mod documents;
mod ids;
mod keys;
mod response;
mod server;
mod standin;
mod state;
mod token;

pub use standin::{EntraStandIn, EntraStandInBuilder};
pub use token::{encode_unsigned, TokenBuilder};

#[cfg(test)]
mod tests;
