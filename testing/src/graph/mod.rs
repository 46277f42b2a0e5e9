//! A Microsoft Graph stand-in for offline tests: [`GraphStandIn`].
//!
//! It serves a small part of `https://graph.microsoft.com` on `127.0.0.1` and checks bearer
//! tokens the way Graph does: an RS256 JWT whose signature verifies against a key set
//! (fetched from the `jwks_url` given to [`GraphStandIn::start`], cached, fetched again for
//! an unknown `kid`), with `aud` = `https://graph.microsoft.com` or
//! `00000003-0000-0000-c000-000000000000`, within its lifetime (5 minutes of clock skew),
//! and whose `scp` (delegated) or `roles` (app-only) hold the route's permission.
//!
//! # Routes and the permissions they demand
//!
//! As Microsoft Graph documents them: the least privileged delegated permission first, then
//! the higher privileged ones that also grant the call.
//!
//! | route | delegated (`scp`) | application (`roles`) | answer |
//! |---|---|---|---|
//! | `GET /v1.0/me` | `User.Read`; `User.ReadWrite`, `User.ReadBasic.All`, `User.Read.All`, `User.ReadWrite.All`, `Directory.Read.All`, `Directory.ReadWrite.All` | none (400) | the user of the token's claims |
//! | `PATCH /v1.0/me` | `User.ReadWrite`; `User.ReadWrite.All`, `Directory.ReadWrite.All` | none (400) | `204 No Content` |
//! | `GET /v1.0/me/messages` | `Mail.ReadBasic`; `Mail.Read`, `Mail.ReadWrite` | none (400) | a paged collection of messages |
//! | `GET /v1.0/users` | `User.ReadBasic.All`; `User.Read.All`, `User.ReadWrite.All`, `Directory.Read.All`, `Directory.ReadWrite.All` | `User.Read.All`; `User.ReadWrite.All`, `Directory.Read.All`, `Directory.ReadWrite.All` | a paged collection of users |
//! | `GET /v1.0/users/{id}` | as `/users`; the signed-in user's own id as `GET /me` | as `/users` | one user, or 404 `Request_ResourceNotFound` |
//! | `POST /v1.0/$batch` | each item its route's | each item its route's | up to 20 items, answered in reverse order |
//!
//! A token without the permission gets what Graph answers: `403` with
//! `{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to
//! complete the operation.",…}}`. `/me` routes with an app-only token get `400 BadRequest`.
//!
//! # Shapes
//!
//! Collections hold 45 items ([`GraphStandIn::set_collection_size`]), `$top` items per page
//! (default 10, at most 999), each page but the last with an absolute `@odata.nextLink`
//! carrying an opaque `$skiptoken`.
//!
//! Failures have Graph's shape: `{"error":{"code","message","innerError":{"date",
//! "request-id","client-request-id"}}}`, with `request-id` and `client-request-id`
//! headers. A missing or invalid token is `401 InvalidAuthenticationToken` with
//! `WWW-Authenticate: Bearer realm="", authorization_uri="…", client_id="00000003-…"`.
//!
//! # Continuous Access Evaluation
//!
//! [`GraphStandIn::revoke_session`] records a critical event for a user: tokens issued
//! before it that carry `xms_cc: ["cp1"]` get Graph's `401 insufficient_claims` challenge
//! with an `nbf` claims request; tokens without the capability keep working until they
//! expire. See the `cae` module for the exact shapes.
//!
//! # Faults and observation
//!
//! The same vocabulary as the Entra stand-in's token endpoint:
//! [`GraphStandIn::inject_fault`] takes a [`GraphFault`] and a number of requests (`None`:
//! until [`GraphStandIn::clear_faults`]), faults queue up, and they are answered before the
//! token is looked at ([`GraphFault::BatchItemTooManyRequests`] per `$batch` item instead).
//! [`GraphStandIn::request_log`] records each request as a
//! [`RequestRecord`](crate::RequestRecord), the record of
//! [`EntraStandIn::request_log`](crate::EntraStandIn::request_log) too;
//! [`GraphStandIn::requests`] counts them.
//!
//! With the crate's Entra stand-in, the key set is [`EntraStandIn::jwks_url`] (the
//! [`Harness`](crate::Harness) wires both) and Graph tokens are minted with
//! `.audience("https://graph.microsoft.com").scopes(&["User.Read"])`.
//!
//! ```
//! use axum_obo_testing::{EntraStandIn, GraphFault, GraphStandIn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let entra = EntraStandIn::start().await;
//! let graph = GraphStandIn::start(&entra.jwks_url()).await;
//! // Point the code under test at `graph.url()` (the v1.0 base is `{url}/v1.0`).
//! graph.inject_fault(GraphFault::TooManyRequests { retry_after: Some(1) }, Some(1));
//! graph.set_collection_size(100);
//! // … run the code under test …
//! for r in graph.request_log() {
//!     println!("{} {} -> {}", r.method, r.path, r.status);
//! }
//! # }
//! ```
//!
//! It shares no code with `axum-obo`, and none with the Entra stand-in but the request
//! record.
//!
//! [`EntraStandIn::jwks_url`]: crate::EntraStandIn::jwks_url

mod auth;
mod batch;
mod cae;
mod data;
mod faults;
mod paging;
mod permissions;
mod reply;
mod routes;
mod server;
mod standin;

pub use faults::GraphFault;
pub use standin::GraphStandIn;
