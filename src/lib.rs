//! # axum-obo
//!
//! Validate Microsoft Entra ID access tokens in an axum (or any tower) API, and
//! call Microsoft Graph or any downstream API *on behalf of* the signed-in user.
//!
//! [`OboLayer`] admits only valid Entra access tokens: RS256 signatures against
//! the tenant's keys (OIDC discovery, refreshed when keys rotate), issuer, tenant,
//! audience, lifetime, and the scopes or roles your policy requires. Refusals are
//! RFC 6750 responses ([`AuthRejection`]); handlers take the validated
//! [`Principal`]. [`OboToken<S>`](OboToken) exchanges the caller's token for a
//! downstream token for the scopes of `S` (On-Behalf-Of), cached per tenant, user,
//! scope set and inbound token, and hands out a ready [`GraphClient`].
//!
//! ```no_run
//! use axum::{routing::get, Json, Router};
//! use axum_obo::{AuthRejection, GraphUserRead, OboConfig, OboLayer, OboToken, Principal};
//!
//! async fn whoami(caller: Principal) -> Json<Principal> {
//!     Json(caller)
//! }
//!
//! async fn me(token: OboToken<GraphUserRead>) -> Result<Json<serde_json::Value>, AuthRejection> {
//!     Ok(Json(token.graph()?.get_json("/me").await?))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = OboConfig::builder()
//!     .tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47")
//!     .client_id("8b9f1c52-3a5e-4c1a-9d8e-2f0a1b2c3d4e")
//!     .client_secret(std::env::var("AZURE_CLIENT_SECRET")?)
//!     .require_user_scopes(["access_as_user"])
//!     .build()?;
//! let app = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route("/me", get(me))
//!     .layer(OboLayer::new(config));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The companion crate `axum-obo-testing` (a dev-dependency) provides offline
//! stand-ins for Entra ID (discovery, JWKS with rotation, a token minter, the OBO
//! token endpoint with fault injection) and Microsoft Graph, for your own tests.

#![warn(missing_docs, missing_debug_implementations)]
#![deny(unreachable_pub)]

pub mod clock;
mod config;
pub mod credential;
mod digest;
mod downstream;
mod exchange;
mod extractor;
mod http;
mod jwks;
mod layer;
mod policy;
mod rejection;
mod scope;
mod secret;
mod validate;

#[cfg(feature = "__bench")]
#[doc(hidden)]
pub mod bench_support;

pub use config::{
    ConfigError, OboConfig, OboConfigBuilder, DEFAULT_AUTHORITY_HOST, DEFAULT_OBO_CACHE_BYTES,
};
pub use downstream::{
    BatchRequest, BatchResponse, DownstreamClient, DownstreamError, GraphClient, GraphUser, Paged,
    RetryPolicy, DEFAULT_GRAPH_URL, DEFAULT_MAX_PAGES,
};
pub use exchange::{OboError, OboStats};
pub use extractor::{OboToken, Require};
pub use jwks::KeyError;
pub use layer::{OboLayer, OboService, ResponseFuture};
pub use policy::{Forbidden, Requirement};
pub use rejection::AuthRejection;
pub use scope::{GraphDefault, GraphUserRead, Scope};
pub use secret::{BearerToken, SecretString};
pub use validate::{Principal, TokenKind, TokenVersion, ValidationError};
