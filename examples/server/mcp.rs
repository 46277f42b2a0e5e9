//! The example's MCP server: `/mcp`, rmcp's Streamable HTTP transport behind
//! `OboLayer`, with two tools.
//!
//! - `whoami`: the caller as the layer validated it (`oid`, `tid`, `kind`, scopes).
//! - `me`: the caller's Graph profile, fetched on their behalf (On-Behalf-Of): the
//!   MCP client's token never leaves this server, as the MCP authorization spec
//!   requires.
//!
//! Every HTTP request to `/mcp` carries the client's token and passes the layer
//! (401/403 with `resource_metadata` otherwise); rmcp hands the tool the request's
//! `http::request::Parts`, whose extensions hold the layer's `OboContext`. A tool
//! runs after the HTTP response has started, so an On-Behalf-Of failure (consent
//! missing, MFA) is a tool error (`isError: true`) with the rejection's safe
//! description, never a token.
//!
//! Sessions: clients of the revisions before 2026-07-28 get an `Mcp-Session-Id`
//! at `initialize` (rmcp's `LocalSessionManager`, in this process: behind several
//! replicas, route a session to the replica that created it, sticky on that
//! header). `BindMcpSessions`, inside the layer, binds each session id to the
//! caller who created it: another caller's request with that id is a 404, as for
//! an unknown session. Clients of 2026-07-28 and later are served statelessly.

use axum::Router;
use axum_obo::layer::OboContext;
use axum_obo::mcp::BindMcpSessions;
use axum_obo::{AuthRejection, GraphUserRead, OboLayer};
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use serde_json::json;

/// The tools; a new value per session (or per request, for stateless clients).
#[derive(Clone, Debug, Default)]
pub struct Tools;

/// The layer's context of the HTTP request that carried this tool call.
fn obo_context(ctx: &RequestContext<RoleServer>) -> Result<&OboContext, ErrorData> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<OboContext>())
        .ok_or_else(|| {
            ErrorData::internal_error(
                "the request was not authenticated: did you add `OboLayer` in front of /mcp?",
                None,
            )
        })
}

/// A tool error the model and the user may see: the rejection's code and
/// description (never a token, nor server-side causes).
fn tool_error(rejection: &AuthRejection) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "{}: {}",
        rejection.error_code(),
        rejection.description()
    ))])
}

#[tool_router]
impl Tools {
    /// The caller as the layer validated it.
    #[tool(
        description = "Who is calling: the signed-in user's object id (oid), tenant id (tid), token kind and delegated scopes"
    )]
    async fn whoami(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let caller = match obo_context(&ctx)?.require_principal() {
            Ok(caller) => caller,
            Err(rejection) => return Ok(tool_error(&rejection)),
        };
        Ok(CallToolResult::structured(json!({
            "oid": caller.oid(),
            "tid": caller.tid(),
            "kind": caller.kind().as_str(),
            "scopes": caller.scopes(),
        })))
    }

    /// The caller's Graph profile, through On-Behalf-Of.
    #[tool(
        description = "The signed-in user's Microsoft Graph profile (GET /me), fetched on their behalf"
    )]
    async fn me(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let context = obo_context(&ctx)?;
        let token = match context.obo_token::<GraphUserRead>().await {
            Ok(token) => token,
            Err(rejection) => {
                tracing::info!(error = rejection.error_code(), "me: no Graph token");
                return Ok(tool_error(&rejection));
            }
        };
        match token.graph().get_json("me").await {
            Ok(profile) => Ok(CallToolResult::structured(profile)),
            Err(e) => Ok(tool_error(&AuthRejection::from(e))),
        }
    }
}

#[tool_handler]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("axum-obo-example", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools of the signed-in Microsoft Entra ID user: `whoami` (who is calling) and `me` (their Microsoft Graph profile).",
            )
    }
}

/// `/mcp`: the MCP [`service`] behind `sessions` (each session bound to the
/// caller who created it) behind `layer` (every request authenticated).
pub fn router(layer: &OboLayer, sessions: BindMcpSessions) -> Router {
    Router::new()
        .route_service("/mcp", service(layer))
        // Inside the layer: the caller is known when sessions are checked.
        .route_layer(sessions)
        .route_layer(layer.clone())
}

/// rmcp's Streamable HTTP service for `/mcp`: sessions for clients that ask for
/// them (kept in this process), plain JSON responses for stateless clients.
/// `Host` must be loopback or the host of the configured resource URL (rmcp's
/// DNS-rebinding guard).
pub fn service(layer: &OboLayer) -> StreamableHttpService<Tools, LocalSessionManager> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = layer
        .config()
        .resource_url()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
    {
        hosts.push(host);
    }
    StreamableHttpService::new(
        || Ok(Tools),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default()
            .with_json_response(true)
            .with_allowed_hosts(hosts),
    )
}
