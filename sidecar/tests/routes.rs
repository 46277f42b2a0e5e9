//! The sidecar's routes, in process (`tower::ServiceExt::oneshot` with the
//! peer address the server would attach), against the embedded Entra and Graph
//! stand-ins.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use axum_obo_sidecar::run::{self, Embedded};
use axum_obo_sidecar::Settings;
use base64::Engine as _;
use http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt as _;

async fn sidecar(vars: &[(&str, &str)]) -> (Router, Embedded) {
    let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let settings = Settings::from_sources(None, vars).unwrap();
    let (sidecar, embedded) = run::build(&settings).await.unwrap();
    (sidecar.router(), embedded.expect("embedded mode"))
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// The claims of the token in `{"authorizationHeader":"Bearer …"}`.
    fn header_claims(&self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        let header = self.json()["authorizationHeader"]
            .as_str()
            .unwrap()
            .to_owned();
        let token = header.strip_prefix("Bearer ").expect("a Bearer header");
        claims(token)
    }
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>, peer: &str) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut req = req.body(Body::empty()).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

const LOCAL: &str = "127.0.0.1:40000";

fn assert_problem(a: &Answer, status: StatusCode) -> Value {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.headers["content-type"], "application/problem+json");
    assert!(a
        .headers
        .get("cache-control")
        .is_none_or(|v| v != "no-cache, no-store, must-revalidate"));
    let p = a.json();
    assert_eq!(p["status"], status.as_u16());
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
    p
}

#[tokio::test]
async fn healthz_openapi_and_validate() {
    let (app, e) = sidecar(&[]).await;
    let health = call(&app, "GET", "/healthz", None, LOCAL).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(
        health.headers["cache-control"],
        "no-cache, no-store, must-revalidate"
    );

    let doc = call(&app, "GET", "/openapi/v1.json", None, LOCAL)
        .await
        .json();
    for path in [
        "/Validate",
        "/AuthorizationHeader/{apiName}",
        "/AuthorizationHeaderUnauthenticated/{apiName}",
        "/DownstreamApi/{apiName}",
        "/DownstreamApiUnauthenticated/{apiName}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }

    let token = e.user_token();
    let v = call(&app, "GET", "/Validate", Some(&token), LOCAL).await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    assert_eq!(
        v.headers["cache-control"],
        "no-cache, no-store, must-revalidate"
    );
    let v = v.json();
    assert_eq!(v["protocol"], "Bearer");
    assert_eq!(v["token"], token.as_str());
    assert_eq!(v["claims"]["oid"], claims(&token)["oid"]);

    let none = call(&app, "GET", "/Validate", None, LOCAL).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.headers.contains_key("www-authenticate"));
    let forged = format!("{}x", &token[..token.len() - 1]);
    let bad = call(&app, "GET", "/Validate", Some(&forged), LOCAL).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn authorization_header_on_behalf_of_with_overrides() {
    let (app, e) = sidecar(&[]).await;
    let token = e.user_token();
    let user = claims(&token);
    let c = call(
        &app,
        "GET",
        "/AuthorizationHeader/graph",
        Some(&token),
        LOCAL,
    )
    .await
    .header_claims();
    assert_eq!(c["oid"], user["oid"]);
    assert!(
        c["scp"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "User.Read"),
        "{c}"
    );

    // A second request is served from the On-Behalf-Of cache.
    let before = e.harness.entra().token_requests();
    call(
        &app,
        "GET",
        "/AuthorizationHeader/Graph",
        Some(&token),
        LOCAL,
    )
    .await
    .header_claims();
    assert_eq!(e.harness.entra().token_requests(), before);

    // Scopes chosen by the caller (on by default on this route).
    let c = call(&app, "GET", "/AuthorizationHeader/graph?optionsOverride.Scopes=Mail.Read&optionsOverride.Scopes=User.Read", Some(&token), LOCAL)
        .await
        .header_claims();
    assert!(
        c["scp"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "Mail.Read"),
        "{c}"
    );

    // RequestAppToken: this app's own token, no user in it.
    let c = call(&app, "GET", "/AuthorizationHeader/graph?optionsOverride.RequestAppToken=true&optionsOverride.Scopes=https://graph.microsoft.com/.default", Some(&token), LOCAL)
        .await
        .header_claims();
    assert_ne!(c["oid"], user["oid"]);
    assert!(c.get("scp").is_none(), "{c}");

    // Unknown API, no scopes: 400; no caller: 401 from the layer.
    assert_problem(
        &call(
            &app,
            "GET",
            "/AuthorizationHeader/nope",
            Some(&token),
            LOCAL,
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    let anon = call(&app, "GET", "/AuthorizationHeader/graph", None, LOCAL).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unauthenticated_routes_gate_overrides_by_default() {
    // Microsoft's defaults (embedded mode turns them on unless set).
    let (app, e) = sidecar(&[(
        "Sidecar__AllowOverrides__GetAuthorizationHeaderUnauthenticated",
        "false",
    )])
    .await;
    let entra = e.harness.entra();
    let c = call(
        &app,
        "GET",
        "/AuthorizationHeaderUnauthenticated/graphApp",
        None,
        LOCAL,
    )
    .await
    .header_claims();
    assert_eq!(
        c["appid"].as_str().or(c["azp"].as_str()),
        Some(entra.api_client_id().as_str()),
        "{c}"
    );
    assert!(c.get("scp").is_none());
    let requests = entra.token_requests();
    call(
        &app,
        "GET",
        "/AuthorizationHeaderUnauthenticated/graphApp",
        None,
        LOCAL,
    )
    .await
    .header_claims();
    assert_eq!(
        entra.token_requests(),
        requests,
        "app-only tokens are cached"
    );

    // The agent parameters and overrides are ignored here: still this app's token.
    let uri = format!("/AuthorizationHeaderUnauthenticated/graphApp?AgentIdentity={}&optionsOverride.Scopes=User.Read", e.agent);
    let c = call(&app, "GET", &uri, None, LOCAL).await.header_claims();
    assert_eq!(
        c["appid"].as_str().or(c["azp"].as_str()),
        Some(entra.api_client_id().as_str()),
        "{c}"
    );

    // `graph` has delegated scopes only: without overrides it is still app-only
    // here and Entra refuses it (401 problem, Entra's reason).
    let refused = call(
        &app,
        "GET",
        "/AuthorizationHeaderUnauthenticated/graph",
        None,
        LOCAL,
    )
    .await;
    assert_problem(&refused, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn agent_parameters_map_onto_agent_id_flows() {
    let (app, e) = sidecar(&[]).await;
    let base = format!(
        "/AuthorizationHeaderUnauthenticated/graph?AgentIdentity={}",
        e.agent
    );
    // Autonomous agent: the agent's own app-only token.
    let c = call(
        &app,
        "GET",
        &format!(
            "/AuthorizationHeaderUnauthenticated/graphApp?AgentIdentity={}",
            e.agent
        ),
        None,
        LOCAL,
    )
    .await
    .header_claims();
    assert_eq!(
        c["appid"].as_str().or(c["azp"].as_str()),
        Some(e.agent.as_str()),
        "{c}"
    );
    // Agent user by object id, and by UPN.
    let by_oid = call(
        &app,
        "GET",
        &format!("{base}&AgentUserId={}", e.agent_user_oid),
        None,
        LOCAL,
    )
    .await
    .header_claims();
    assert_eq!(by_oid["oid"], e.agent_user_oid.as_str());
    let by_upn = call(
        &app,
        "GET",
        &format!("{base}&AgentUsername={}", e.agent_user_upn),
        None,
        LOCAL,
    )
    .await
    .header_claims();
    assert_eq!(by_upn["oid"], e.agent_user_oid.as_str());
    // The UPN wins over an object id (here one that is no agent user).
    let both = format!(
        "{base}&AgentUsername={}&AgentUserId=11111111-2222-4333-8444-555555555555",
        e.agent_user_upn
    );
    assert_eq!(
        call(&app, "GET", &both, None, LOCAL).await.header_claims()["oid"],
        e.agent_user_oid.as_str()
    );
    // A user who is not an agent user of this agent: 401 problem.
    let refused = call(
        &app,
        "GET",
        &format!("{base}&AgentUsername=nobody@contoso.example"),
        None,
        LOCAL,
    )
    .await;
    assert_problem(&refused, StatusCode::UNAUTHORIZED);
    // An agent identity that is not a GUID: 400.
    let bad = call(
        &app,
        "GET",
        "/AuthorizationHeaderUnauthenticated/graph?AgentIdentity=not-a-guid",
        None,
        LOCAL,
    )
    .await;
    assert_problem(&bad, StatusCode::BAD_REQUEST);
    // Agent On-Behalf-Of on the authenticated route: the agent's token for the caller.
    let token = e.user_token();
    let c = call(
        &app,
        "GET",
        &format!("/AuthorizationHeader/graph?AgentIdentity={}", e.agent),
        Some(&token),
        LOCAL,
    )
    .await
    .header_claims();
    assert_eq!(c["oid"], claims(&token)["oid"]);
    assert_eq!(
        c["appid"].as_str().or(c["azp"].as_str()),
        Some(e.agent.as_str()),
        "{c}"
    );
}

#[tokio::test]
async fn downstream_api_relays_the_answer() {
    let (app, e) = sidecar(&[]).await;
    let token = e.user_token();
    let a = call(&app, "POST", "/DownstreamApi/graph", Some(&token), LOCAL).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.headers["cache-control"],
        "no-cache, no-store, must-revalidate"
    );
    let v = a.json();
    assert_eq!(v["statusCode"], 200);
    assert!(v["headers"]["Content-Type"][0]
        .as_str()
        .unwrap()
        .starts_with("application/json"));
    let me: Value = serde_json::from_str(v["content"].as_str().unwrap()).unwrap();
    assert_eq!(me["displayName"], "Adele Vance");
    // A relative path the API does not have: its status, relayed.
    let a = call(
        &app,
        "POST",
        "/DownstreamApi/graph?optionsOverride.RelativePath=nothing-here",
        Some(&token),
        LOCAL,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let status = a.json()["statusCode"].as_u64().unwrap();
    assert!((400..500).contains(&status), "{}", a.body);
    // BaseUrl cannot be overridden: the token never goes elsewhere.
    let a = call(
        &app,
        "POST",
        "/DownstreamApi/graph?optionsOverride.BaseUrl=http://127.0.0.1:1",
        Some(&token),
        LOCAL,
    )
    .await;
    assert_eq!(a.json()["statusCode"], 200, "{}", a.body);
    assert_problem(
        &call(&app, "POST", "/DownstreamApi/nope", Some(&token), LOCAL).await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &call(
            &app,
            "POST",
            "/DownstreamApiUnauthenticated/graph",
            None,
            LOCAL,
        )
        .await,
        StatusCode::UNAUTHORIZED,
    );
}

#[tokio::test]
async fn only_loopback_callers_but_healthz_for_probes() {
    let (app, e) = sidecar(&[]).await;
    let token = e.user_token();
    for peer in [
        "10.0.0.7:5000",
        "[2001:db8::1]:5000",
        "[::ffff:10.0.0.1]:5000",
        "[::127.0.0.1]:5000",
        "0.0.0.0:5000",
    ] {
        for (m, uri) in [
            ("GET", "/Validate"),
            ("GET", "/AuthorizationHeader/graph"),
            ("GET", "/AuthorizationHeaderUnauthenticated/graphApp"),
            ("POST", "/DownstreamApi/graph"),
            ("GET", "/openapi/v1.json"),
        ] {
            let a = call(&app, m, uri, Some(&token), peer).await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{peer} {uri}");
            assert!(!a.body.contains("eyJ"));
        }
        assert_eq!(
            call(&app, "GET", "/healthz", None, peer).await.status,
            StatusCode::OK
        );
    }
    // Forwarding headers are not evidence of a local caller.
    let mut req = Request::builder()
        .uri("/AuthorizationHeaderUnauthenticated/graphApp")
        .header("x-forwarded-for", "127.0.0.1")
        .header("forwarded", "for=127.0.0.1")
        .header("x-real-ip", "127.0.0.1")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo("10.0.0.7:5000".parse::<SocketAddr>().unwrap()));
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    for peer in ["[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
        let a = call(
            &app,
            "GET",
            "/AuthorizationHeaderUnauthenticated/graphApp",
            None,
            peer,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{peer}");
    }
}

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_secret_in_logs_or_problems() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (app, e) = sidecar(&[]).await;
    let token = e.user_token();
    let mut answers = Vec::new();
    for (m, uri, t) in [
        ("GET", "/AuthorizationHeader/graph".to_owned(), true),
        ("POST", "/DownstreamApi/graph".to_owned(), true),
        ("GET", "/AuthorizationHeaderUnauthenticated/graphApp".to_owned(), false),
        ("GET", format!("/AuthorizationHeaderUnauthenticated/graph?AgentIdentity={}&AgentUsername=nobody@contoso.example", e.agent), false),
        ("GET", "/AuthorizationHeaderUnauthenticated/graph".to_owned(), false),
        ("GET", "/AuthorizationHeader/nope".to_owned(), true),
    ] {
        answers.push(call(&app, m, &uri, t.then_some(token.as_str()), LOCAL).await);
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("token acquisition"),
        "the failures were logged: {logs}"
    );
    assert!(!logs.contains("eyJ"), "a token in the logs");
    assert!(
        !logs.contains(&e.harness.entra().client_secret()),
        "the secret in the logs"
    );
    for a in answers.iter().filter(|a| !a.status.is_success()) {
        assert!(!a.body.contains("eyJ"), "{}", a.body);
    }
}

#[tokio::test]
async fn a_bad_configuration_names_the_setting() {
    let vars = [
        ("AzureAd__ClientId", "11111111-1111-1111-1111-111111111111"),
        ("AzureAd__TenantId", "not-a-tenant"),
        ("AzureAd__ClientCredentials__0__SourceType", "ClientSecret"),
        (
            "AzureAd__ClientCredentials__0__ClientSecret",
            "s3cr3t-value",
        ),
    ];
    let settings = Settings::from_sources(
        None,
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let e = run::build(&settings).await.unwrap_err();
    assert_eq!(e.setting, "AzureAd__TenantId", "{e}");
    assert!(!e.to_string().contains("s3cr3t"));
    let missing = [
        ("AzureAd__ClientId", "11111111-1111-1111-1111-111111111111"),
        ("AzureAd__TenantId", "22222222-2222-2222-2222-222222222222"),
        ("AzureAd__ClientCredentials__0__SourceType", "Path"),
        (
            "AzureAd__ClientCredentials__0__CertificateDiskPath",
            "/nonexistent/cert.pem",
        ),
    ];
    let settings = Settings::from_sources(
        None,
        missing.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let e = run::build(&settings).await.unwrap_err();
    assert!(
        e.setting.starts_with("AzureAd__ClientCredentials__0"),
        "{e}"
    );
}

#[tokio::test]
async fn a_tenant_override_that_is_not_a_guid_is_the_callers_400() {
    let (app, e) = sidecar(&[]).await;
    let token = e.user_token();
    let before = e.harness.entra().token_requests();
    for tenant in [
        "common",
        "organizations",
        "contoso.onmicrosoft.com",
        "..%2F",
    ] {
        let uri = format!("/AuthorizationHeader/graph?optionsOverride.RequestAppToken=true&optionsOverride.Scopes=https://graph.microsoft.com/.default&optionsOverride.AcquireTokenOptions.Tenant={tenant}");
        let a = call(&app, "GET", &uri, Some(&token), LOCAL).await;
        let p = assert_problem(&a, StatusCode::BAD_REQUEST);
        assert!(p["detail"].as_str().unwrap().contains("Tenant"), "{p}");
    }
    assert_eq!(e.harness.entra().token_requests(), before);
}

#[tokio::test]
async fn a_relative_path_override_cannot_leave_the_configured_host() {
    let (app, e) = sidecar(&[]).await;
    let token = e.user_token();
    // 127.0.0.1:1 refuses connections: reaching it would be a 502 problem.
    for rel in [
        "%2F%2F127.0.0.1%3A1%2Fx",
        "%40127.0.0.1%3A1%2Fx",
        "http%3A%2F%2F127.0.0.1%3A1%2Fx",
        "%5C%5C127.0.0.1%3A1%2Fx",
        "%09%2F%2F127.0.0.1%3A1%2Fx",
        "..%2F..%2F..%2F..%2F%2F127.0.0.1%3A1",
    ] {
        let uri = format!("/DownstreamApi/graph?optionsOverride.RelativePath={rel}");
        let a = call(&app, "POST", &uri, Some(&token), LOCAL).await;
        assert_eq!(a.status, StatusCode::OK, "{rel}: {}", a.body);
        assert!(a.json()["statusCode"].is_u64(), "{rel}: {}", a.body);
    }
}

#[tokio::test]
async fn an_agent_username_with_control_characters_is_the_callers_400() {
    let (app, e) = sidecar(&[]).await;
    let before = e.harness.entra().token_requests();
    for upn in [
        "agent-user%0A@contoso.example",
        "agent%00user@contoso.example",
        "a%20b@contoso.example",
    ] {
        let uri = format!(
            "/AuthorizationHeaderUnauthenticated/graph?AgentIdentity={}&AgentUsername={upn}",
            e.agent
        );
        let a = call(&app, "GET", &uri, None, LOCAL).await;
        let p = assert_problem(&a, StatusCode::BAD_REQUEST);
        assert!(
            p["detail"].as_str().unwrap().contains("AgentUsername"),
            "{p}"
        );
    }
    assert_eq!(e.harness.entra().token_requests(), before);
}
