//! This API as an OAuth protected resource (RFC 9728), as the MCP authorization
//! specification (2025-06-18 and later) asks of a remote MCP server.
//!
//! Where it sits: the configuration builds a `ResourceSettings` once, when
//! [`resource_url`](crate::OboConfigBuilder::resource_url) is set; the layer hands
//! the response of every request for the resource's path (or a path under it) to
//! `annotate`, and [`ProtectedResourceMetadata::router`] serves
//! the document. Without a resource URL nothing here runs and every challenge is
//! byte-for-byte what it was.
//!
//! - `document`: [`ProtectedResourceMetadata`] and the routes serving it;
//! - `settings`: what the builder computes once (the document, the scope prefix,
//!   the 401 scope);
//! - `challenge`: the pure rewrite of a `WWW-Authenticate` challenge, and the
//!   layer's hook `annotate`.
//!
//! What it guarantees:
//!
//! - **The document** ([`ProtectedResourceMetadata`]): `resource` (the configured
//!   URL, as given), `authorization_servers` (the home tenant's issuer,
//!   `{authority}/{tenant}/v2.0`; and after it each other allowed tenant's only
//!   when [`resource_list_tenants`](crate::OboConfigBuilder::resource_list_tenants)
//!   opts in, since a public list of allowed tenants is a multi-tenant SaaS's
//!   customer list), `scopes_supported` (what a
//!   client requests from Entra: `{app id uri}/{scope}` (by default
//!   `api://{client id}/{scope}`) for each scope of
//!   [`require_user_scopes`](crate::OboConfigBuilder::require_user_scopes), or
//!   `api://{client id}/.default` when no scope is required),
//!   `bearer_methods_supported: ["header"]`, and `resource_name` /
//!   `resource_documentation` when configured (the builder accepts only a resource
//!   URL in the `url` crate's canonical form, so `resource` and the metadata
//!   address spell the same URL). Entra's `organizations` and `common`
//!   are never listed: their discovery documents name the issuer
//!   `https://login.microsoftonline.com/{tenantid}/v2.0`, a template that fails the
//!   issuer check RFC 8414 §3.3 asks of every client.
//! - **Where it is served**: at the RFC 9728 §3.1 address, the well-known path
//!   inserted between the host and the resource's path
//!   (`https://host/.well-known/oauth-protected-resource/mcp` for `https://host/mcp`),
//!   and at the bare `/.well-known/oauth-protected-resource` for clients that only
//!   try the root (MCP's fallback; by RFC 9728 §3.3 that address describes the
//!   resource at the origin root, so do not merge it when another resource lives
//!   there). Both are `GET`, `application/json`, cacheable for an hour.
//! - **Which responses**: only those to requests for the resource (RFC 9728
//!   §3.3: the metadata's `resource` is the URL the client used): the request's
//!   path (as the layer sees it; inside `Router::nest`, the nested part) equals
//!   the resource URL's path or lies under it (`/mcp`, `/mcp/…` for
//!   `https://host/mcp`; not `/me` nor `/mcpx`); a resource at the origin root
//!   covers every path. Other routes behind the same layer keep plain RFC 6750
//!   challenges.
//! - **401**: each `WWW-Authenticate: Bearer …` challenge (the layer's own
//!   refusals and those of extractors and handlers inside it) gets
//!   `resource_metadata="<the RFC 9728 §3.1 address>"`, and a `scope` naming this
//!   API's scopes as a client requests them (`api://{client id}/access_as_user`;
//!   `scopes_supported` when the challenge named none). Another API's scopes
//!   (URIs such as Graph's) never appear in an annotated `scope`.
//! - **403**: annotated only when it is `insufficient_scope` naming scopes of
//!   this API (the layer's policy, `Require<R>`): its `scope` lists the
//!   layer-wide required scopes, then the missing ones, each once, in requestable
//!   form (MCP 2025-11-25: a client asking for these is not refused for lacking
//!   the others). A 403 that no scope of this API can fix (a relayed downstream
//!   consent error, the client allow-list, app roles, an app-only token where a
//!   user is needed) is not a step-up challenge: it is left exactly as without a
//!   resource URL, so an MCP client does not loop asking for scopes.
//!
//! What a client sees: public metadata only (URLs, scope names, the home
//! tenant); nothing about the caller, and no other allowed tenant unless opted in. How it fails: it cannot, once built; a challenge this module cannot
//! parse (another scheme, `token68`) is left as it was.

mod challenge;
mod document;
mod settings;

pub(crate) use challenge::annotate;
pub use document::{ProtectedResourceMetadata, WELL_KNOWN_PATH};
pub(crate) use settings::{ResourceSettings, ResourceSpec};
