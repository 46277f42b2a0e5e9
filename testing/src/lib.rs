//! `axum-obo-testing`: offline stand-ins for Microsoft Entra ID and Microsoft Graph, and a
//! [`Harness`] wiring them for the tests of `axum-obo` and of the APIs built with it.
//!
#![doc = include_str!("../README.md")]
//!
//! ## The Entra ID stand-in
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
//! | `POST /{tenant}/oauth2/v2.0/token` | token endpoint: OBO, client credentials, refresh |
//!
//! Any other tenant segment gets Entra's `400 invalid_tenant` (AADSTS90002) JSON error.
//!
//! The token endpoint authenticates the API with its
//! [client secret](EntraStandIn::client_secret) (form or HTTP Basic), a
//! [registered certificate](EntraStandIn::register_certificate)'s client assertion or a
//! [federated assertion](EntraStandIn::mint_federated_assertion), validates the user's
//! assertion against the published keys, and answers v1.0 Graph-style tokens or Entra's JSON
//! errors; [`TokenFault`]s script failures and [`EntraStandIn::token_request_log`] records
//! what was sent ([`EntraStandIn::request_log`] records every request, in the same
//! [`RequestRecord`] shape as the [Graph stand-in](GraphStandIn)'s log).
//!
//! Keys are RSA-2048 with self-signed certificates; `kid` and `x5t` are the certificate's
//! SHA-1 thumbprint, as at Entra. [`TokenBuilder`] mints v1.0 and v2.0 access tokens
//! (delegated or app-only) and ID tokens with Entra's claim set. Keys can be rotated and
//! retired, and faults (error statuses, garbage key sets, delays) injected, while counters
//! record what the code under test fetched.
//!
//! Refresh tokens (issued with `offline_access`, rotated as Entra rotates them, revocable
//! with [`EntraStandIn::revoke_refresh_tokens`] and expirable with
//! [`EntraStandIn::expire_refresh_tokens`]) and Continuous Access Evaluation (the `claims`
//! parameter with client capability `cp1` and `nbf` requests,
//! [`EntraStandIn::revoke_session_for_good`], and [`GraphStandIn::revoke_session`] with
//! Graph's claims challenge) are modelled too.
//!
//! Microsoft Entra Agent ID is modelled too: the API's registration is the agent identity
//! blueprint of the agent identities registered with [`EntraStandIn::add_agent_identity`]
//! (and of none registered with [`EntraStandIn::add_agent_identity_of`]), which may have
//! agent users ([`EntraStandIn::add_agent_user`]). The token endpoint issues T1
//! (`fmi_path`) only for the blueprint's children, accepts T1 only as its own agent's client
//! assertion and T2 only as its `user_fic` credential, and serves the agents' autonomous,
//! On-Behalf-Of, `user_fic` and refresh grants, as Microsoft's clients send them
//! (`interop/agents` runs them against it).
//!
//! ## The managed identity endpoint stand-in
//!
//! [`ManagedIdentityStandIn`] serves the App Service / Container Apps managed identity
//! endpoint (`IDENTITY_ENDPOINT` with `X-IDENTITY-HEADER`, protocol `2019-08-01`) for a
//! system-assigned and any number of user-assigned identities, with tokens signed by an
//! [`EntraStandIn`]'s keys; [`EntraStandIn::add_managed_identity_credential`] makes the
//! token endpoint accept them as federated client assertions.
//!
//! The stand-in is an independent simulation of Entra: it shares no code with `axum-obo`.
//!
//! ```
//! use axum_obo_testing::EntraStandIn;
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
//! // What a resource trusts: the home tenant's v2 key set.
//! assert!(entra.jwks_url().ends_with("/discovery/v2.0/keys"));
//!
//! let old = entra.current_kid();
//! entra.rotate_key();
//! entra.retire_key(&old);
//! # }
//! ```

#![warn(missing_docs, missing_debug_implementations)]
#![deny(unreachable_pub)]

mod cloud;
mod documents;
mod fault_queue;
pub mod graph;
mod harness;
mod ids;
mod keys;
mod managed_identity;
mod record;
mod response;
mod serve;
mod server;
mod standin;
mod state;
mod token;
mod token_endpoint;

pub use graph::{GraphFault, GraphStandIn};
pub use harness::Harness;
pub use managed_identity::{ManagedIdentity, ManagedIdentityFault, ManagedIdentityStandIn};
pub use record::RequestRecord;
pub use standin::{EntraStandIn, EntraStandInBuilder};
pub use token::{encode_unsigned, TokenBuilder};
pub use token_endpoint::{RefreshTokenExpiry, TokenFault, TokenRequestRecord};

#[doc(hidden)]
pub mod scripted;

#[cfg(test)]
mod tests;
