//! The example's MCP server (`/mcp`) with rmcp's own client, over loopback,
//! against the Entra and Graph stand-ins: tool calls, the RFC 9728 metadata and
//! challenges an MCP client relies on, and On-Behalf-Of behind the tools.

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

use axum::routing::get;
use axum::Router;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum_obo::clock::ManualClock;
use axum_obo::mcp::{BindMcpSessions, SESSION_ID};
use axum_obo::{
    AuthRejection, GraphUserRead, OboConfigBuilder, OboLayer, OboToken, Require, Requirement,
};
use axum_obo_testing::TokenFault;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt as _};
use serde_json::{json, Value};

const OTHER_USER: &str = "5c0c3f1e-6d7a-4e55-9a0b-2f1d3c4b5a69";

/// Callers with the delegated scope `Tasks.Read`.
struct ReadTasks;
impl Requirement for ReadTasks {
    const SCOPES: &'static [&'static str] = &["Tasks.Read"];
}

/// A plain route calling Graph on the caller's behalf.
async fn graph_me(token: OboToken<GraphUserRead>) -> Result<axum::Json<Value>, AuthRejection> {
    Ok(axum::Json(token.graph().get_json("me").await?))
}

/// The example, served on loopback.
struct Served {
    embedded: app::Embedded,
    /// `http://127.0.0.1:{port}`.
    base: String,
    layer: OboLayer,
}

impl Served {
    fn mcp(&self) -> String {
        format!("{}/mcp", self.base)
    }

    fn client_id(&self) -> String {
        self.embedded.entra.api_client_id()
    }

    /// The OBO requests the Entra stand-in has answered.
    fn exchanges(&self) -> usize {
        self.embedded
            .entra
            .token_request_log()
            .iter()
            .filter(|r| {
                r.form.get("requested_token_use").map(String::as_str) == Some("on_behalf_of")
            })
            .count()
    }
}

/// The example's router (plus `/tasks` and `/mcp/tasks`, guarded by
/// `Require<ReadTasks>`, and `/mcp/me`, calling Graph) on a
/// loopback port; with `resource`, its resource URL is `http://{addr}/mcp`.
async fn serve(resource: bool) -> Served {
    serve_with(|config, base| {
        if resource {
            config.resource_url(format!("{base}/mcp"))
        } else {
            config
        }
    })
    .await
}

/// [`serve`], its configuration finished by `configure` (given the base URL).
async fn serve_with(configure: impl FnOnce(OboConfigBuilder, &str) -> OboConfigBuilder) -> Served {
    let embedded = app::Embedded::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = configure(app::policy(embedded.config()), &base);
    let layer = OboLayer::new(config.build().unwrap());
    layer.warm_up().await.unwrap();
    let tasks = Router::new()
        .route("/tasks", get(|_: Require<ReadTasks>| async { "tasks" }))
        .route("/mcp/tasks", get(|_: Require<ReadTasks>| async { "tasks" }))
        .route("/mcp/me", get(graph_me))
        .route_layer(layer.clone());
    let cors = app::cors(&[http::HeaderValue::from_static(app::DEV_ORIGIN)]);
    let router = app::router(layer.clone(), cors).merge(tasks);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Served {
        embedded,
        base,
        layer,
    }
}

/// rmcp's Streamable HTTP client, initialized, sending `token` on every request.
async fn connect(
    url: &str,
    token: Option<&str>,
) -> Result<RunningService<RoleClient, ClientConfig>, rmcp::service::ClientInitializeError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
    if let Some(token) = token {
        config = config.auth_header(token.to_owned());
    }
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("axum-obo-tests", "0.0.0"),
    )
    .serve(StreamableHttpClientTransport::from_config(config))
    .await
}

async fn call(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &'static str,
) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool))
        .await
        .unwrap_or_else(|e| panic!("{tool}: {e}"))
}

/// The tool result's text, as a model would read it.
fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

fn token_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn tools_answer_the_caller_and_their_graph_profile() {
    let s = serve(true).await;
    let token = s.embedded.user_token();
    let claims = token_claims(&token);
    let client = connect(&s.mcp(), Some(&token)).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(names, ["me", "whoami"]);

    let who = call(&client, "whoami").await;
    assert_eq!(who.is_error, Some(false), "{}", text(&who));
    assert_eq!(
        who.structured_content,
        Some(json!({
            "oid": claims["oid"],
            "tid": claims["tid"],
            "kind": "delegated",
            "scopes": ["access_as_user"],
        }))
    );

    let me = call(&client, "me").await;
    assert_eq!(me.is_error, Some(false), "{}", text(&me));
    let profile = me.structured_content.clone().unwrap();
    assert_eq!(profile["displayName"], "Adele Vance");
    assert_eq!(profile["id"], claims["oid"], "the caller's own profile");
    assert!(!text(&me).contains("eyJ"), "no token in a tool result");
    client.cancel().await.unwrap();
}

/// An MCP server whose Application ID URI is its URL: v1 tokens requested for
/// it carry that URL as `aud` and are admitted; a token for another URI is not.
#[tokio::test]
async fn v1_tokens_for_the_app_id_uri_are_admitted() {
    let s = serve_with(|config, base| {
        let mcp = format!("{base}/mcp");
        config.resource_url(&mcp).app_id_uri(mcp)
    })
    .await;
    let entra = &s.embedded.entra;
    let token = entra.token().v1().audience(&s.mcp()).sign();
    assert_eq!(token_claims(&token)["aud"], s.mcp());
    assert_eq!(token_claims(&token)["ver"], "1.0");
    let client = connect(&s.mcp(), Some(&token)).await.unwrap();
    let who = call(&client, "whoami").await;
    assert_eq!(who.is_error, Some(false), "{}", text(&who));
    assert_eq!(
        who.structured_content.unwrap()["oid"],
        token_claims(&token)["oid"]
    );
    client.cancel().await.unwrap();

    let other = entra
        .token()
        .v1()
        .audience(&format!("{}/other", s.base))
        .sign();
    let e = connect(&s.mcp(), Some(&other)).await.unwrap_err();
    let challenge = e.auth_challenge().unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", error_description=\"the token was issued for another audience\""),
        "{challenge}"
    );
}

/// Each tool call is its own HTTP request through the layer; the On-Behalf-Of
/// cache makes one exchange per user (and inbound token) of them all.
#[tokio::test]
async fn one_exchange_per_user_across_tool_calls() {
    let s = serve(true).await;
    let adele = connect(&s.mcp(), Some(&s.embedded.user_token()))
        .await
        .unwrap();
    for _ in 0..3 {
        let me = call(&adele, "me").await;
        assert_eq!(me.is_error, Some(false), "{}", text(&me));
    }
    assert_eq!(s.exchanges(), 1);

    let other = s.embedded.entra.token().user(OTHER_USER).sign();
    let other = connect(&s.mcp(), Some(&other)).await.unwrap();
    for _ in 0..2 {
        let me = call(&other, "me").await;
        assert_eq!(me.is_error, Some(false), "{}", text(&me));
        assert_eq!(me.structured_content.unwrap()["id"], OTHER_USER);
    }
    call(&adele, "me").await;
    assert_eq!(s.exchanges(), 2, "one more for the second user, none after");
    assert_eq!(s.layer.stats().exchanges, 2);
}

#[tokio::test]
async fn a_user_without_consent_gets_a_tool_error() {
    let s = serve(true).await;
    let token = s.embedded.entra.token().user(OTHER_USER).sign();
    s.embedded
        .entra
        .inject_token_fault_for_user(OTHER_USER, TokenFault::ConsentRequired);
    let client = connect(&s.mcp(), Some(&token)).await.unwrap();

    // The HTTP response has started: the failure is the tool's, not a 403.
    let me = call(&client, "me").await;
    assert_eq!(me.is_error, Some(true));
    let message = text(&me);
    assert!(message.starts_with("consent_required: "), "{message}");
    assert!(
        message.contains("User.Read"),
        "names the missing scope: {message}"
    );
    assert!(
        !message.contains("eyJ") && !message.contains("AADSTS"),
        "{message}"
    );
    // The caller is still known; only Graph is out of reach.
    let who = call(&client, "whoami").await;
    assert_eq!(who.is_error, Some(false));
}

/// App-only callers pass the layer (the example admits them) but have no user
/// to act for: `me` is a tool error, `whoami` says `app`.
#[tokio::test]
async fn an_app_only_caller_gets_a_tool_error_from_me() {
    let s = serve(true).await;
    let app_only = s
        .embedded
        .entra
        .token()
        .app_only()
        .roles(&["Reports.Read"])
        .sign();
    let client = connect(&s.mcp(), Some(&app_only)).await.unwrap();
    let who = call(&client, "whoami").await;
    assert_eq!(who.structured_content.unwrap()["kind"], "app");
    let me = call(&client, "me").await;
    assert_eq!(me.is_error, Some(true));
    assert!(
        text(&me).starts_with("delegated_token_required: "),
        "{}",
        text(&me)
    );
    assert_eq!(s.exchanges(), 0, "no exchange is attempted");
}

#[test]
fn the_dev_resource_url_is_one_a_client_can_use() {
    let url = |a: &str| app::dev_resource_url(a.parse().unwrap());
    assert_eq!(url("127.0.0.1:3000"), "http://127.0.0.1:3000/mcp");
    assert_eq!(url("0.0.0.0:3000"), "http://localhost:3000/mcp");
    assert_eq!(url("[::]:8080"), "http://localhost:8080/mcp");
    // And the configuration takes it (plain http on loopback only).
    let config = axum_obo::OboConfig::builder()
        .tenant_id("11111111-2222-3333-4444-555555555555")
        .client_id("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
        .resource_url(url("0.0.0.0:3000"))
        .build();
    assert!(config.is_ok(), "{config:?}");
}

/// The 401 that starts an MCP client's authorization: `resource_metadata` and the
/// scope to request, as rmcp's client reports it and on the wire.
#[tokio::test]
async fn no_token_is_a_401_naming_the_metadata_and_the_scope() {
    let s = serve(true).await;
    let expected = format!(
        "Bearer scope=\"api://{}/access_as_user\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
        s.client_id(),
        s.base
    );
    let e = connect(&s.mcp(), None).await.unwrap_err();
    assert!(e.is_authorization_required(), "{e}");
    assert_eq!(e.auth_challenge(), Some(expected.as_str()));

    let r = reqwest::Client::new()
        .post(s.mcp())
        .header(CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()[WWW_AUTHENTICATE], expected.as_str());

    // A bad token: RFC 6750's error, plus the same two parameters.
    let expired = s.embedded.entra.token().expired().sign();
    let e = connect(&s.mcp(), Some(&expired)).await.unwrap_err();
    assert_eq!(
        e.auth_challenge(),
        Some(
            format!(
                "Bearer error=\"invalid_token\", error_description=\"the token has expired\", scope=\"api://{}/access_as_user\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
                s.client_id(),
                s.base
            )
            .as_str()
        )
    );
}

/// 403s name `insufficient_scope`, the scope in requestable form, and the
/// metadata: the layer's policy (on `/mcp`) and a `Require` inside it.
#[tokio::test]
async fn forbidden_names_insufficient_scope_scope_and_metadata() {
    let s = serve(true).await;
    let rm = format!(
        "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
        s.base
    );
    let cid = s.client_id();

    // A token without `access_as_user` (the example's policy) on /mcp.
    let other = s.embedded.entra.token().scopes(&["Files.Read"]).sign();
    let e = connect(&s.mcp(), Some(&other)).await.unwrap_err();
    assert_eq!(
        e.auth_challenge(),
        Some(
            format!(
                "Bearer error=\"insufficient_scope\", error_description=\"requires one of the scopes: access_as_user\", scope=\"api://{cid}/access_as_user\", {rm}"
            )
            .as_str()
        )
    );

    // `Require<ReadTasks>` inside the layer (an extractor's rejection), under
    // `/mcp`: the scope the layer already requires, then the route's (MCP
    // 2025-11-25's "minimum approach": a client asking for these gets both).
    let user = s.embedded.user_token();
    let r = reqwest::Client::new()
        .get(format!("{}/mcp/tasks", s.base))
        .bearer_auth(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()[WWW_AUTHENTICATE],
        format!(
            "Bearer error=\"insufficient_scope\", error_description=\"requires one of the scopes: Tasks.Read\", scope=\"api://{cid}/access_as_user api://{cid}/Tasks.Read\", {rm}"
        )
        .as_str()
    );
    let reader = s
        .embedded
        .entra
        .token()
        .scopes(&["access_as_user", "Tasks.Read"])
        .sign();
    let r = reqwest::Client::new()
        .get(format!("{}/mcp/tasks", s.base))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
}

/// The documents at both addresses, and the discovery chain a client follows:
/// challenge → metadata → authorization server → its issuer.
#[tokio::test]
async fn the_metadata_documents() {
    let s = serve(true).await;
    let http = reqwest::Client::new();
    let tenant = s.embedded.entra.home_tenant();
    let issuer = format!("{}/{tenant}/v2.0", s.embedded.entra.authority_host());
    let expected = json!({
        "resource": s.mcp(),
        "authorization_servers": [issuer],
        "scopes_supported": [format!("api://{}/access_as_user", s.client_id())],
        "bearer_methods_supported": ["header"],
    });
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json", "{path}");
        assert_eq!(r.headers()[CACHE_CONTROL], "public, max-age=3600", "{path}");
        assert_eq!(r.json::<Value>().await.unwrap(), expected, "{path}");
    }

    // What a client does with the challenge.
    let e = connect(&s.mcp(), None).await.unwrap_err();
    let challenge = e.auth_challenge().unwrap().to_owned();
    let url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let metadata: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        metadata["resource"],
        s.mcp(),
        "RFC 9728 §3.3: the resource it was asked for"
    );
    let server = metadata["authorization_servers"][0].as_str().unwrap();
    let discovery: Value = http
        .get(format!("{server}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["issuer"], server,
        "RFC 8414 §3.3: the issuer equals the authorization server's identifier"
    );

    // Public, and only for GET.
    let r = http
        .post(format!("{}/.well-known/oauth-protected-resource", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

/// `/tasks` (outside `/mcp`) refuses a caller without `Tasks.Read` with the plain
/// RFC 6750 challenge, twice: validated, then admitted from the validated-token
/// cache (the layer's fast path), which must leave it alone the same way.
async fn tasks_is_a_plain_403_validated_and_cached(s: &Served, http: &reqwest::Client) {
    let token = s.embedded.user_token();
    for pass in ["validated", "cached"] {
        let r = http
            .get(format!("{}/tasks", s.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{pass}");
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_scope\", error_description=\"requires one of the scopes: Tasks.Read\", scope=\"Tasks.Read\"",
            "{pass}"
        );
    }
}

/// Without a resource URL, nothing changes: no metadata routes, and the
/// challenges are plain RFC 6750, byte for byte.
#[tokio::test]
async fn without_a_resource_url_challenges_are_unchanged() {
    let s = serve(false).await;
    assert!(s.layer.config().resource_metadata().is_none());
    let http = reqwest::Client::new();
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }

    let e = connect(&s.mcp(), None).await.unwrap_err();
    assert_eq!(e.auth_challenge(), Some("Bearer"));
    let expired = s.embedded.entra.token().expired().sign();
    let e = connect(&s.mcp(), Some(&expired)).await.unwrap_err();
    assert_eq!(
        e.auth_challenge(),
        Some("Bearer error=\"invalid_token\", error_description=\"the token has expired\"")
    );
    tasks_is_a_plain_403_validated_and_cached(&s, &http).await;

    // And the MCP endpoint works the same.
    let client = connect(&s.mcp(), Some(&s.embedded.user_token()))
        .await
        .unwrap();
    let me = call(&client, "me").await;
    assert_eq!(me.structured_content.unwrap()["displayName"], "Adele Vance");
}

/// A consent failure relayed from the On-Behalf-Of exchange (`/mcp/me`) is no
/// step-up challenge: no scope of this API would fix it, so the 403 keeps its
/// plain RFC 6750 challenge (Graph's scope, no `resource_metadata`) instead of
/// sending an MCP client to ask for Graph's scopes in a loop.
#[tokio::test]
async fn a_downstream_consent_error_is_no_step_up_challenge() {
    let s = serve(true).await;
    let token = s.embedded.entra.token().user(OTHER_USER).sign();
    s.embedded
        .entra
        .inject_token_fault_for_user(OTHER_USER, TokenFault::ConsentRequired);
    let r = reqwest::Client::new()
        .get(format!("{}/mcp/me", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.ends_with("scope=\"https://graph.microsoft.com/User.Read\""),
        "the plain answer, unchanged: {challenge}"
    );
    assert!(!challenge.contains("resource_metadata"), "{challenge}");

    // An app-only caller (no scope of this API helps) on `/mcp/me`: plain too.
    let app = s
        .embedded
        .entra
        .token()
        .app_only()
        .roles(&["Reader"])
        .sign();
    let r = reqwest::Client::new()
        .get(format!("{}/mcp/me", s.base))
        .bearer_auth(&app)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    assert!(!challenge.contains("resource_metadata"), "{challenge}");
    assert!(!challenge.contains("scope=\""), "{challenge}");
}

/// RFC 9728 §3.3: a challenge names the metadata of the resource the client
/// asked for. Routes behind the layer outside `/mcp` (`/me`, `/tasks`) answer
/// plain RFC 6750 challenges; `/mcp` and the paths under it are annotated.
#[tokio::test]
async fn only_the_resource_and_paths_under_it_name_the_metadata() {
    let s = serve(true).await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/me", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
    tasks_is_a_plain_403_validated_and_cached(&s, &http).await;
    // `/mcpx` is not under `/mcp`.
    let r = http.get(format!("{}/mcpx", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .get(format!("{}/mcp/tasks", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()[WWW_AUTHENTICATE],
        format!(
            "Bearer scope=\"api://{}/access_as_user\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            s.client_id(),
            s.base
        )
        .as_str()
    );
}

/// Streamable HTTP: the server validates `Origin` (DNS rebinding). A browser
/// request from an origin that is neither the resource's nor a CORS origin is
/// refused with 403 before anything else; no `Origin` (a non-browser client),
/// the resource's origin and the CORS origins pass on (here to the 401).
#[tokio::test]
async fn mcp_refuses_requests_from_foreign_origins() {
    let s = serve(true).await;
    let http = reqwest::Client::new();
    let post = |origin: Option<&str>| {
        let mut r = http
            .post(s.mcp())
            .header(CONTENT_TYPE, "application/json")
            .body("{}");
        if let Some(origin) = origin {
            r = r.header(http::header::ORIGIN, origin);
        }
        r.send()
    };
    for foreign in ["http://evil.example", "null", "http://localhost:5174"] {
        let r = post(Some(foreign)).await.unwrap();
        assert_eq!(r.status(), 403, "{foreign}");
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none(), "{foreign}");
    }
    for allowed in [None, Some(app::DEV_ORIGIN), Some(s.base.as_str())] {
        let r = post(allowed).await.unwrap();
        assert_eq!(r.status(), 401, "{allowed:?}");
    }
    // Other routes are not MCP's business.
    let r = http
        .get(format!("{}/healthz", s.base))
        .header(http::header::ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The metadata is public: any origin may read it (a browser MCP client on
/// another origin), preflight included; the app's CORS exposes the gRPC status.
#[tokio::test]
async fn the_metadata_is_readable_from_any_origin() {
    let s = serve(true).await;
    let http = reqwest::Client::new();
    let url = format!("{}/.well-known/oauth-protected-resource/mcp", s.base);
    let r = http
        .get(&url)
        .header(http::header::ORIGIN, "https://inspector.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let r = http
        .request(http::Method::OPTIONS, &url)
        .header(http::header::ORIGIN, "https://inspector.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "mcp-protocol-version")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");

    let r = http
        .get(format!("{}/whoami", s.base))
        .header(http::header::ORIGIN, app::DEV_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], app::DEV_ORIGIN);
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["www-authenticate", "grpc-status", "grpc-message"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

// MCP sessions bound to their creator (`axum_obo::mcp::BindMcpSessions`).

const PROTOCOL: &str = "2025-06-18";

/// `/mcp` as the example serves it (sessions bound by `sessions`, whose clock
/// the test holds), plus a spy recording every `Mcp-Session-Id` the server hands
/// out, on a loopback port.
struct Sessions {
    served: Served,
    sessions: BindMcpSessions,
    created: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

async fn serve_sessions(clock: &ManualClock) -> Sessions {
    let embedded = app::Embedded::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = app::policy(embedded.config())
        .resource_url(format!("{base}/mcp"))
        .build()
        .unwrap();
    let layer = OboLayer::new(config);
    layer.warm_up().await.unwrap();
    let sessions = BindMcpSessions::new()
        .idle_timeout(Duration::from_secs(600))
        .clock(clock.clone());
    let created = Arc::new(Mutex::new(Vec::new()));
    let spy = Arc::clone(&created);
    let router = app::mcp::router(&layer, sessions.clone()).layer(axum::middleware::map_response(
        move |r: axum::response::Response| {
            if let Some(id) = r.headers().get(SESSION_ID) {
                spy.lock().unwrap().push(id.to_str().unwrap().to_owned());
            }
            async move { r }
        },
    ));
    tokio::spawn(async move { axum::serve(listener, router).await });
    Sessions {
        served: Served {
            embedded,
            base,
            layer,
        },
        sessions,
        created,
        http: reqwest::Client::new(),
    }
}

impl Sessions {
    fn last_created(&self) -> String {
        self.created
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a session was created")
    }

    /// A raw Streamable HTTP request: a JSON-RPC `body` with `method` to `/mcp`.
    async fn send(
        &self,
        method: http::Method,
        token: &str,
        session: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut r = self
            .http
            .request(method, self.served.mcp())
            .bearer_auth(token)
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL);
        if let Some(session) = session {
            r = r.header(SESSION_ID, session);
        }
        if let Some(body) = body {
            r = r
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        r.send().await.unwrap()
    }

    /// `initialize` and `notifications/initialized` over raw HTTP: the new
    /// session's id.
    async fn initialize(&self, token: &str) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}});
        let r = self.send(http::Method::POST, token, None, Some(init)).await;
        assert_eq!(r.status(), 200);
        let id = r.headers()[SESSION_ID].to_str().unwrap().to_owned();
        r.text().await.unwrap();
        let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let r = self
            .send(http::Method::POST, token, Some(&id), Some(done))
            .await;
        assert_eq!(r.status(), 202);
        id
    }

    /// `tools/call whoami` in `session`: the status, and the body when 200.
    async fn whoami(&self, token: &str, session: &str) -> (u16, String) {
        let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}}});
        let r = self
            .send(http::Method::POST, token, Some(session), Some(call))
            .await;
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

fn bob(s: &Sessions) -> String {
    s.served.embedded.entra.token().user(OTHER_USER).sign()
}

/// Bob's valid token on Alice's session id is a 404 for every method (as for an
/// unknown session), and leaves her session alone; Alice's rmcp client goes on.
#[tokio::test]
async fn a_session_serves_only_the_caller_who_created_it() {
    let clock = ManualClock::now_system();
    let s = serve_sessions(&clock).await;
    let alice = s.served.embedded.user_token();
    let client = connect(&s.served.mcp(), Some(&alice)).await.unwrap();
    let session = s.last_created();

    let bob = bob(&s);
    let (status, body) = s.whoami(&bob, &session).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains(OTHER_USER), "{body}");
    let r = s.send(http::Method::GET, &bob, Some(&session), None).await;
    assert_eq!(r.status(), 404, "the session's event stream");
    let r = s
        .send(http::Method::DELETE, &bob, Some(&session), None)
        .await;
    assert_eq!(r.status(), 404, "nor may Bob end it");

    // Alice's session is intact, and the tools still see whoever calls.
    let who = call(&client, "whoami").await;
    assert_eq!(who.is_error, Some(false), "{}", text(&who));
    assert_eq!(
        who.structured_content.unwrap()["oid"],
        token_claims(&alice)["oid"]
    );
    assert_eq!(s.sessions.bound_sessions(), 1);
    client.cancel().await.unwrap();
}

/// The owner is the tenant, the user and the client application: the same user
/// through another client application is another caller.
#[tokio::test]
async fn the_same_user_through_another_client_is_another_caller() {
    let clock = ManualClock::now_system();
    let s = serve_sessions(&clock).await;
    let alice = s.served.embedded.user_token();
    let session = s.initialize(&alice).await;
    let (status, body) = s.whoami(&alice, &session).await;
    assert_eq!(status, 200, "{body}");
    let claims = token_claims(&alice);
    let other_app = s
        .served
        .embedded
        .entra
        .token()
        .user(claims["oid"].as_str().unwrap())
        .client_app("3d5e7f90-1a2b-4c3d-8e9f-0a1b2c3d4e5f")
        .sign();
    assert_eq!(token_claims(&other_app)["oid"], claims["oid"]);
    let (status, _) = s.whoami(&other_app, &session).await;
    assert_eq!(status, 404);
}

/// An id this layer never handed out is a 404 for a valid caller, even when it
/// names a live session of the MCP server: here one created through another
/// binding (another replica, the session shared through a session store). Unknown
/// ids fail closed.
#[tokio::test]
async fn an_unknown_session_id_is_not_found() {
    let clock = ManualClock::now_system();
    let s = serve_sessions(&clock).await;
    let alice = s.served.embedded.user_token();
    let (status, _) = s
        .whoami(&alice, "3f2a4c1e-0000-4000-8000-000000000000")
        .await;
    assert_eq!(status, 404);

    // A second "replica": the same MCP service (its sessions), its own bindings.
    let layer = &s.served.layer;
    let mcp = app::mcp::service(layer);
    let replica = |sessions: BindMcpSessions| {
        Router::new()
            .route_service("/mcp", mcp.clone())
            .route_layer(sessions)
            .route_layer(layer.clone())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let first = format!("http://{}/mcp", listener.local_addr().unwrap());
    let router = replica(BindMcpSessions::new());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = format!("http://{}/mcp", listener.local_addr().unwrap());
    let router = replica(BindMcpSessions::new());
    tokio::spawn(async move { axum::serve(listener, router).await });

    // The session the first replica created, presented to the second.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let r = s
        .http
        .post(&first)
        .bearer_auth(&alice)
        .header(http::header::ACCEPT, "application/json, text/event-stream")
        .header(CONTENT_TYPE, "application/json")
        .body(init.to_string())
        .send()
        .await
        .unwrap();
    let session = r.headers()[SESSION_ID].to_str().unwrap().to_owned();
    r.text().await.unwrap();
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}});
    let send = |url: &str, body: &Value| {
        s.http
            .post(url)
            .bearer_auth(&alice)
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .header("mcp-protocol-version", PROTOCOL)
            .header(SESSION_ID, &session)
            .body(body.to_string())
            .send()
    };
    assert_eq!(send(&first, &done).await.unwrap().status(), 202);
    assert_eq!(send(&first, &call).await.unwrap().status(), 200);
    assert_eq!(
        send(&second, &call).await.unwrap().status(),
        404,
        "a live session, but not one this binding recorded"
    );
}

/// `DELETE` by the owner ends the session and its binding; an idle binding
/// expires on the layer's clock, and each use keeps it alive.
#[tokio::test]
async fn delete_and_idleness_remove_the_binding() {
    let clock = ManualClock::now_system();
    let s = serve_sessions(&clock).await;
    let alice = s.served.embedded.user_token();

    let first = s.initialize(&alice).await;
    let r = s
        .send(http::Method::DELETE, &alice, Some(&first), None)
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(s.sessions.bound_sessions(), 0);
    assert_eq!(s.whoami(&alice, &first).await.0, 404);

    let second = s.initialize(&alice).await;
    clock.advance(Duration::from_secs(500));
    assert_eq!(s.whoami(&alice, &second).await.0, 200);
    clock.advance(Duration::from_secs(500));
    assert_eq!(
        s.whoami(&alice, &second).await.0,
        200,
        "500 s after the last use"
    );
    clock.advance(Duration::from_secs(601));
    assert_eq!(s.whoami(&alice, &second).await.0, 404, "601 s idle");
    assert_eq!(s.sessions.bound_sessions(), 0);
}

/// `BindMcpSessions` outside `OboLayer` cannot know the caller: every request is
/// a 500 (the log names the missing layer), never a session served unchecked.
#[tokio::test]
async fn sessions_bound_outside_the_layer_are_a_500() {
    let clock = ManualClock::now_system();
    let s = serve_sessions(&clock).await;
    let layer = &s.served.layer;
    let misordered = Router::new()
        .route_service("/mcp", app::mcp::service(layer))
        .route_layer(layer.clone())
        .route_layer(BindMcpSessions::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, misordered).await });
    let e = connect(&url, Some(&s.served.embedded.user_token()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("500"), "{e}");
}

/// A request carrying `Mcp-Session-Id` twice is a 404 whatever the ids: the
/// layer cannot know which one the MCP server reads, so Bob cannot pair his own
/// id (checked) with Alice's (read by a server taking the last one).
#[tokio::test]
async fn two_session_ids_in_one_request_are_not_found() {
    let clock = ManualClock::now_system();
    let s = serve_sessions(&clock).await;
    let alice = s.served.embedded.user_token();
    let hers = s.initialize(&alice).await;
    let bob = bob(&s);
    let his = s.initialize(&bob).await;
    assert_eq!(s.whoami(&bob, &his).await.0, 200);
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "whoami", "arguments": {}}});
    for (first, second) in [(&his, &hers), (&hers, &his), (&his, &his)] {
        let r = s
            .http
            .post(s.served.mcp())
            .bearer_auth(&bob)
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .header("mcp-protocol-version", PROTOCOL)
            .header(SESSION_ID, first.as_str())
            .header(SESSION_ID, second.as_str())
            .body(call.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    // Both sessions are intact for their owners.
    assert_eq!(s.whoami(&alice, &hers).await.0, 200);
    assert_eq!(s.whoami(&bob, &his).await.0, 200);
}
