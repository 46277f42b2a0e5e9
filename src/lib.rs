//! # axum-obo
//!
//! Validate Microsoft Entra ID access tokens in an axum API, and call Microsoft
//! Graph or any downstream API *on behalf of* the signed-in user.
//!
//! [`OboLayer`] admits only valid Entra access tokens: RS256 signatures against
//! the tenant's keys (OIDC discovery, refreshed when keys rotate), issuer, tenant,
//! audience, lifetime, and the scopes or roles your policy requires. Refusals are
//! RFC 6750 responses ([`AuthRejection`]); handlers take the validated
//! [`Principal`]. [`OboToken<S>`](OboToken) exchanges the caller's token for a
//! downstream token for the scopes of `S` (On-Behalf-Of), cached per tenant, user,
//! scope set and inbound token, and hands out a ready [`GraphClient`](downstream::GraphClient).
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
//!     Ok(Json(token.graph().get_json("/me").await?))
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
//!     .route_layer(OboLayer::new(config));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Where things are
//!
//! The root holds what a first API needs: [`OboLayer`], its configuration
//! ([`OboConfig`], [`OboConfigBuilder`], [`ConfigError`]), the extractors
//! ([`Principal`], [`OboToken`], [`Require`] with a [`Requirement`]), downstream
//! scopes as types ([`Scope`], [`scope!`], [`GraphUserRead`], [`GraphDefault`]) and
//! the one error type of handlers, [`AuthRejection`]. The rest lives in modules:
//!
//! - [`downstream`]: the clients [`OboToken`] hands out (Graph and any other API),
//!   paging, batching, retries, and [`DownstreamError`](downstream::DownstreamError);
//! - [`rejection`]: [`AuthRejection`] and its causes, with the one HTTP mapping;
//!   how to answer errors in your own JSON shape is on [`AuthRejection`];
//! - [`principal`]: the kinds and versions of tokens behind a [`Principal`];
//! - [`layer`]: the service and future behind [`OboLayer`];
//! - [`config`]: the configuration and its defaults;
//! - [`secret`]: tokens and secrets that never print themselves;
//! - [`stats`]: cache counters and size for health and metrics endpoints;
//! - [`metrics`] (feature `metrics`): counters, histograms and gauges for
//!   dashboards, through the `metrics` facade;
//! - [`resource_metadata`]: this API as an OAuth protected resource (RFC 9728),
//!   the metadata and challenges an MCP server needs;
//! - [`mcp`]: MCP sessions bound to the caller who created them
//!   ([`BindMcpSessions`](mcp::BindMcpSessions));
//! - [`session`]: long-running sessions: tokens for a user after the request
//!   (background jobs, agents);
//! - [`clock`]: injectable time, for tests.
//!
//! The layer is a plain tower middleware: it wraps any service answering
//! `http::Response<B>` (an axum `Router`, a tonic server, rmcp's service) and
//! refuses in the protocol of the request, a gRPC Trailers-Only answer to gRPC
//! clients and RFC 6750 HTTP answers to the others. Its extractors are axum
//! extractors; other code reads the caller and gets tokens through the
//! [`OboContext`](layer::OboContext) in the request's extensions. The `tonic`
//! feature converts the crate's errors into `tonic::Status`.
//!
//! The companion crate `axum-obo-testing` (a dev-dependency) provides offline
//! stand-ins for Entra ID (discovery, JWKS with rotation, a token minter, the OBO
//! token endpoint with fault injection) and Microsoft Graph, for your own tests.

#![warn(missing_docs, missing_debug_implementations)]
// docs.rs (`[package.metadata.docs.rs]`): mark what a feature gates.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unreachable_pub)]

pub mod acquire;
pub mod admission;
pub mod agent;
pub mod clock;
pub mod config;
pub mod credential;
mod digest;
pub mod downstream;
mod exchange;
mod extractor;
mod http;
mod jwks;
pub mod layer;
pub mod mcp;
pub mod metrics;
mod policy;
pub mod principal;
pub mod rejection;
pub mod resource_metadata;
mod scope;
pub mod secret;
pub mod session;
pub mod stats;
mod validate;

#[cfg(feature = "__bench")]
#[doc(hidden)]
pub mod bench_support;

#[doc(inline)]
pub use config::{ConfigError, OboConfig, OboConfigBuilder};
pub use extractor::{OboToken, Require};
#[doc(inline)]
pub use layer::OboLayer;
pub use policy::Requirement;
#[doc(inline)]
pub use rejection::AuthRejection;
pub use scope::{GraphDefault, GraphUserRead, Scope};
pub use validate::Principal;

/// The README and the guides in `docs/`, as doctests: `cargo test` compiles every
/// Rust snippet in them (and runs those not marked `no_run`), so none can rot.
/// Snippets may use the root crate's dev-dependencies (`axum-obo-testing`, tokio's
/// full features, tower-http, rmcp, tonic).
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../README.md")]
    mod readme {}
    #[doc = include_str!("../docs/configuration.md")]
    mod configuration {}
    #[doc = include_str!("../docs/tower-stack.md")]
    mod tower_stack {}
    #[doc = include_str!("../docs/errors.md")]
    mod errors {}
    #[doc = include_str!("../docs/graph.md")]
    mod graph {}
    #[doc = include_str!("../docs/sessions.md")]
    mod sessions {}
    #[doc = include_str!("../docs/cae.md")]
    mod cae {}
    #[doc = include_str!("../docs/mcp.md")]
    mod mcp {}
    #[doc = include_str!("../docs/grpc.md")]
    mod grpc {}
    #[doc = include_str!("../docs/redis.md")]
    mod redis {}
    #[doc = include_str!("../docs/security.md")]
    mod security {}
    #[doc = include_str!("../docs/testing.md")]
    mod testing {}
    #[doc = include_str!("../docs/performance.md")]
    mod performance {}
    #[doc = include_str!("../docs/agents.md")]
    mod agents {}
    #[doc = include_str!("../docs/sidecar.md")]
    mod sidecar {}
    #[doc = include_str!("../docs/metrics.md")]
    mod metrics {}
}
