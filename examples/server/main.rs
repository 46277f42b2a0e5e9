//! The example server: `cargo run --example server`.
//!
//! One port serves the REST routes (HTTP/1.1 and HTTP/2) and the gRPC service
//! `axum_obo.example.Profile` (HTTP/2 cleartext; `profile.proto` describes it).
//! Without `AZURE_CLIENT_ID` it starts an embedded Entra ID and Graph stand-in and
//! prints `curl` and `grpcurl` lines with freshly minted tokens. With `AZURE_TENANT_ID`,
//! `AZURE_CLIENT_ID` and a credential (`AZURE_CLIENT_SECRET`,
//! `AZURE_CLIENT_CERTIFICATE_PATH`, `AZURE_FEDERATED_TOKEN_FILE`, or
//! `OBO_MANAGED_IDENTITY` = `system` / a user-assigned identity's client id on Azure
//! compute, see `docs/configuration.md`) it talks to real
//! Entra ID and Graph (`AZURE_AUTHORITY_HOST`, `OBO_GRAPH_URL`, `OBO_ALLOWED_TENANTS`
//! optional). `OBO_LISTEN` (default `127.0.0.1:3000`); `OBO_CORS_ORIGINS` (browser
//! origins allowed by CORS, comma-separated, default `http://localhost:5173`; with
//! the resource URL's origin, the only `Origin`s `/mcp` accepts);
//! `OBO_AGENT_ID` (an agent identity of this API's blueprint; the embedded mode
//! registers a demo one) serves `GET /agent/me`: the profile fetched by the agent
//! on the caller's behalf (see `agent.rs`).
//! `OBO_CLIENT_CAPABILITIES=cp1` turns on Continuous Access Evaluation (also with the
//! embedded stand-ins); `OBO_EXAMPLE_JOB_DELAY_MS` (default 2000): how long a job
//! of `POST /jobs/me` waits before it calls Graph through its long-running session
//! (with a real tenant the session asks for `offline_access`, which Entra grants to
//! a confidential client alongside the user's consented delegated permissions; if
//! consent is granted by an admin, include `offline_access` in it);
//! `OBO_RESOURCE_URL` (the MCP endpoint's public URL, e.g.
//! `https://mcp.contoso.com/mcp`; default with the embedded stand-ins
//! `http://{listen address}/mcp`), `OBO_RESOURCE_NAME`, `OBO_RESOURCE_DOCUMENTATION`
//! and `OBO_APP_ID_URI` (optional, real tenant): `/mcp` is an MCP server (tools
//! `whoami` and `me`), and with a resource URL its RFC 9728 metadata is served at
//! `/.well-known/oauth-protected-resource[/mcp]`; `OBO_METRICS_LISTEN`: where
//! `GET /metrics` (Prometheus, no token; keep it off the public ingress) is
//! served: unset = this port, an address = a listener of its own, `off` = nowhere
//! (see `metrics.rs` and `docs/metrics.md`); `OBO_METRICS_TENANT_LABEL=true` adds
//! the tenant id to the validation and exchange counters; logs to stderr, `RUST_LOG`.

mod app;
mod banner;

use app::metrics;

use axum_obo::{OboConfigBuilder, OboLayer};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The recorder first, so that it sees everything the crate records (the
    // signing keys' first fetch included).
    let exposure = metrics::exposure_from_env()?;
    let prometheus = match exposure {
        metrics::Exposure::Off => None,
        _ => {
            let handle = metrics::install()?;
            metrics::spawn_upkeep(handle.clone());
            Some(handle)
        }
    };
    let listen = std::env::var("OBO_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;

    let embedded_mode = std::env::var("AZURE_CLIENT_ID").map_or(true, |v| v.trim().is_empty());
    let (config, embedded) = if embedded_mode {
        let embedded = app::Embedded::start().await;
        // Continuous Access Evaluation against the stand-ins too.
        let capabilities = app::client_capabilities_from_env();
        let resource = std::env::var("OBO_RESOURCE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| app::dev_resource_url(addr));
        (
            embedded
                .config()
                .client_capabilities(capabilities)
                .resource_url(resource),
            Some(embedded),
        )
    } else {
        (OboConfigBuilder::from_env()?, None)
    };
    if let Some(e) = &embedded {
        if app::agent::agent_id().is_none() {
            app::agent::set_agent_id(e.demo_agent());
        }
    }
    let config = app::policy(config).build()?;
    if embedded.is_none() && !config.has_client_credential() {
        // Every route of this example exchanges the caller's token: without a
        // credential each would answer 500, so refuse to start instead.
        return Err("no client credential: set AZURE_CLIENT_SECRET, \
             AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE or OBO_MANAGED_IDENTITY \
             (see the README's portal setup)"
            .into());
    }
    let layer = OboLayer::new(config);
    if let Err(e) = layer.warm_up().await {
        tracing::warn!(
            "signing keys not loaded yet ({e}); requests will answer 503 until they are"
        );
    }
    tracing::info!(%addr, "listening");

    if let Some(e) = &embedded {
        let (user, admin) = (e.user_token(), e.admin_token());
        let banner = banner::Banner {
            addr,
            entra: &e.entra.authority_host(),
            graph: &e.graph.url(),
            user_token: &user,
            admin_token: &admin,
            grpc_service: app::grpc::SERVICE,
            grpcurl: banner::on_path("grpcurl"),
            agent: app::agent::agent_id(),
        };
        print!("{}", banner.text());
        let mcp = layer
            .config()
            .resource_url()
            .map_or_else(|| app::dev_resource_url(addr), str::to_owned);
        print_mcp(&mcp, layer.config());
    }
    let cors = app::cors(&app::cors_origins_from_env()?);
    // Checked here so that a bad value stops the server; `router` reads it too.
    app::job_delay_from_env()?;
    let router = app::router(layer.clone(), cors);
    // `/metrics`, outside `OboLayer`: on this port, on its own listener, or off.
    let router = match (exposure, prometheus) {
        (metrics::Exposure::SamePort, Some(handle)) => {
            println!("Prometheus metrics: curl -s http://{addr}/metrics\n");
            router.merge(metrics::router(handle, layer))
        }
        (metrics::Exposure::Listener(at), Some(handle)) => {
            let listener = tokio::net::TcpListener::bind(at).await?;
            let at = listener.local_addr()?;
            tracing::info!(%at, "serving /metrics");
            println!("Prometheus metrics: curl -s http://{at}/metrics\n");
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, metrics::router(handle, layer)).await {
                    tracing::error!(error = %e, "the /metrics listener stopped");
                }
            });
            router
        }
        _ => router,
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// How to call the MCP endpoint: its metadata, a raw `tools/call`, and the MCP
/// Inspector.
fn print_mcp(mcp: &str, config: &axum_obo::OboConfig) {
    println!("MCP server (Streamable HTTP) at {mcp}, tools `whoami` and `me`.");
    if let Some(m) = config.resource_metadata() {
        println!("Its protected-resource metadata (RFC 9728):");
        println!("  curl -s {}", m.metadata_url());
    }
    println!("Without a token, the challenge that sends an MCP client to sign in:");
    println!(
        "  curl -si -X POST {mcp} -H 'Content-Type: application/json' -d '{{}}' | grep -i www-authenticate"
    );
    println!("Call `me` (your Graph profile through On-Behalf-Of) in a session (bash):");
    println!(
        "  H=(-H \"Authorization: Bearer $TOKEN\" \\\n    -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n    -H 'MCP-Protocol-Version: 2025-06-18')"
    );
    println!(
        "  SID=$(curl -si {mcp} \"${{H[@]}}\" -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{{}},\"clientInfo\":{{\"name\":\"curl\",\"version\":\"0\"}}}}}}' \\\n    | sed -n 's/^mcp-session-id: *//Ip' | tr -d '\\r')"
    );
    println!(
        "  curl -s {mcp} \"${{H[@]}}\" -H \"Mcp-Session-Id: $SID\" -d '{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}}'"
    );
    println!(
        "  curl -s {mcp} \"${{H[@]}}\" -H \"Mcp-Session-Id: $SID\" \\\n    -d '{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"me\",\"arguments\":{{}}}}}}'"
    );
    println!("(the session answers only you: another user's token with $SID gets 404)");
    println!("Or with the MCP Inspector (transport Streamable HTTP, URL {mcp},");
    println!("header `Authorization: Bearer <the TOKEN above>`):");
    println!("  npx @modelcontextprotocol/inspector");
    println!("(a browser connecting to /mcp directly needs its origin in OBO_CORS_ORIGINS:");
    println!("/mcp refuses other Origins with 403)\n");
}
