//! Microsoft Entra Agent ID end to end against the stand-ins: the blueprint's T1,
//! agent On-Behalf-Of, autonomous agents and agent users, their caches and errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::{Extension, Router};
use axum_obo::agent::{Agent, AgentAdmission, AgentError, AgentKind, AgentObo, AgentUser};
use axum_obo::clock::ManualClock;
use axum_obo::{GraphUserRead, OboLayer, OboToken, Principal, Require, Requirement};
use axum_obo_testing::{Harness, TokenRequestRecord};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use serde_json::Value;

axum_obo::scope!(
    /// Microsoft Graph's app-only default scope.
    GraphDefault => ["https://graph.microsoft.com/.default"]
);

const EXCHANGE_SCOPE: &str = "api://AzureADTokenExchange/.default";

fn claims_of(token: &str) -> Value {
    let seg = token.split('.').nth(1).unwrap_or_default();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap_or_default()).unwrap_or(Value::Null)
}

/// The layer on `clock`, and the stand-ins.
async fn setup(clock: &ManualClock) -> (Harness, OboLayer) {
    let harness = Harness::start().await;
    let config = harness
        .config()
        .clock(clock.clone())
        .http_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    (harness, OboLayer::new(config))
}

/// `/agent/me`: the caller's Graph profile fetched by `agent` on their behalf
/// (`{oid} {appid of the agent's token}`); `/agent/raw`: the agent's token;
/// `/obo/raw`: this API's own On-Behalf-Of token.
fn app(layer: OboLayer, agent: Agent) -> Router {
    Router::new()
        .route(
            "/agent/me",
            get(|t: AgentObo<GraphUserRead>| async move {
                let appid = claims_of(t.access_token().expose())["appid"].clone();
                let me = t
                    .graph()
                    .me()
                    .await
                    .map_err(axum_obo::AuthRejection::from)?;
                Ok::<_, axum_obo::agent::AgentRejection>(format!(
                    "{} {}",
                    me.id.unwrap_or_default(),
                    appid.as_str().unwrap_or("?")
                ))
            }),
        )
        .route(
            "/agent/raw",
            get(|t: AgentObo<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .route(
            "/obo/raw",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .route(
            "/whoami",
            get(|p: Principal| async move { p.oid().to_owned() }),
        )
        .layer(Extension(agent))
        .layer(layer)
}

fn is_t1(r: &TokenRequestRecord) -> bool {
    r.form.contains_key("fmi_path")
}

fn count(log: &[TokenRequestRecord], f: impl Fn(&TokenRequestRecord) -> bool) -> usize {
    log.iter().filter(|r| f(r)).count()
}

fn form<'a>(r: &'a TokenRequestRecord, name: &str) -> &'a str {
    r.form.get(name).map(String::as_str).unwrap_or_default()
}

#[tokio::test]
async fn agent_obo_uses_one_t1_as_the_agents_client_assertion_and_caches_per_caller() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let app = app(layer.clone(), layer.agent(&agent_id).unwrap());
    let alice = entra
        .token()
        .user("a1111111-1111-4111-8111-111111111111")
        .sign();
    let bob = entra
        .token()
        .user("b2222222-2222-4222-8222-222222222222")
        .sign();

    let r = bearer(&app, "/agent/me", &alice).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        format!("a1111111-1111-4111-8111-111111111111 {agent_id}")
    );
    let log = entra.token_request_log();
    assert_eq!(log.len(), 2, "{log:?}");
    let (t1, obo) = (&log[0], &log[1]);
    // T1: the blueprint (this API) with its own credential, fmi_path = the agent.
    assert_eq!(form(t1, "grant_type"), "client_credentials");
    assert_eq!(form(t1, "client_id"), entra.api_client_id());
    assert_eq!(form(t1, "fmi_path"), agent_id);
    assert_eq!(form(t1, "scope"), EXCHANGE_SCOPE);
    assert_eq!(form(t1, "client_secret"), entra.client_secret());
    assert_eq!(t1.status, 200);
    // The OBO request: the agent, T1 as client assertion, no secret.
    assert_eq!(form(obo, "client_id"), agent_id);
    assert_eq!(form(obo, "requested_token_use"), "on_behalf_of");
    assert_eq!(form(obo, "assertion"), alice);
    assert!(!obo.form.contains_key("client_secret"));
    let t1_token = form(obo, "client_assertion");
    assert_eq!(claims_of(t1_token)["sub"], agent_id.as_str());
    assert_eq!(claims_of(t1_token)["azp"], entra.api_client_id().as_str());

    // Cached per caller: Alice again costs nothing; Bob costs one exchange, same T1.
    assert_eq!(bearer(&app, "/agent/me", &alice).await.status, 200);
    assert_eq!(entra.token_requests(), 2);
    let r = bearer(&app, "/agent/me", &bob).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let log = entra.token_request_log();
    assert_eq!(log.len(), 3);
    assert_eq!(count(&log, is_t1), 1);
    assert_eq!(form(&log[2], "client_assertion"), t1_token);
    assert_eq!(form(&log[2], "assertion"), bob);
}

#[tokio::test]
async fn an_app_only_caller_gets_403_without_a_request_to_entra() {
    let clock = clock();
    let (harness, _) = setup(&clock).await;
    let layer = OboLayer::new(
        harness
            .config()
            .clock(clock.clone())
            .allow_app_only(true)
            .build()
            .unwrap(),
    );
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let app = app(layer.clone(), layer.agent(&agent_id).unwrap());
    let daemon = entra.token().app_only().roles(&["Tasks.Read.All"]).sign();
    let r = bearer(&app, "/agent/me", &daemon).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(entra.token_requests(), 0);
}

#[tokio::test]
async fn one_t1_and_one_exchange_per_key_under_100_concurrent_first_requests() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let app = app(layer.clone(), layer.agent(&agent_id).unwrap());
    // Ten users, ten requests each, all at once; the layer's keys are loaded first.
    let users: Vec<String> = (0..10)
        .map(|i| {
            entra
                .token()
                .user(&format!("c{i}333333-3333-4333-8333-333333333333"))
                .sign()
        })
        .collect();
    assert_eq!(bearer(&app, "/whoami", &users[0]).await.status, 200);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (app, token) = (app.clone(), users[i % 10].clone());
        tasks.push(tokio::spawn(async move {
            bearer(&app, "/agent/raw", &token).await
        }));
    }
    let mut tokens = std::collections::HashMap::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let previous = tokens.insert(i % 10, r.body.clone());
        assert!(previous.is_none_or(|p| p == r.body), "one token per user");
    }
    let log = entra.token_request_log();
    assert_eq!(count(&log, is_t1), 1, "{log:?}");
    assert_eq!(
        count(&log, |r| form(r, "requested_token_use") == "on_behalf_of"),
        10
    );
    assert_eq!(log.len(), 11);
    // Every user got their own token.
    for (i, token) in &tokens {
        assert_eq!(
            claims_of(token)["oid"],
            format!("c{i}333333-3333-4333-8333-333333333333").as_str()
        );
    }
}

#[tokio::test]
async fn t1_and_agent_tokens_are_refreshed_shortly_before_expiry_on_the_clock() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let agent = layer.agent(&agent_id).unwrap();
    let tid = entra.home_tenant();
    let first = agent.app_token::<GraphDefault>(&tid).await.unwrap();
    assert_eq!(entra.token_requests(), 2, "T1 and the app-only token");
    // Well within the lifetime (3599 s, refreshed 300 s before): from the cache.
    clock.advance(Duration::from_secs(3000));
    let again = agent.app_token::<GraphDefault>(&tid).await.unwrap();
    assert_eq!(again.access_token(), first.access_token());
    assert_eq!(entra.token_requests(), 2);
    // Inside the refresh margin: a new T1, then a new token with it.
    clock.advance(Duration::from_secs(350));
    let renewed = agent.app_token::<GraphDefault>(&tid).await.unwrap();
    assert_ne!(renewed.access_token(), first.access_token());
    let log = entra.token_request_log();
    assert_eq!(log.len(), 4, "{log:?}");
    assert_eq!(count(&log, is_t1), 2);
    assert_ne!(
        form(&log[3], "client_assertion"),
        form(&log[1], "client_assertion")
    );
}

#[tokio::test]
async fn autonomous_tokens_are_the_agents_app_only_tokens_and_graph_me_refuses_them() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let agent = layer.agent(&agent_id).unwrap();
    let token = agent
        .app_token::<GraphDefault>(&entra.home_tenant())
        .await
        .unwrap();
    let claims = claims_of(token.access_token().expose());
    assert_eq!(claims["appid"], agent_id.as_str());
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["xms_par_app_azp"], entra.api_client_id().as_str());
    let log = entra.token_request_log();
    assert_eq!(form(&log[1], "grant_type"), "client_credentials");
    assert_eq!(
        form(&log[1], "scope"),
        "https://graph.microsoft.com/.default"
    );
    assert_eq!(form(&log[1], "client_id"), agent_id);
    // Graph's /me is for delegated tokens only.
    let err = token.graph().me().await.unwrap_err();
    assert!(
        err.to_string().contains("403")
            || err.to_string().to_lowercase().contains("forbidden")
            || err.to_string().contains("delegated"),
        "{err}"
    );
}

#[tokio::test]
async fn agent_users_by_oid_or_upn_then_the_refresh_grant() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let oid = entra.add_agent_user(&agent_id, "helper@contoso.test");
    let agent = layer.agent(&agent_id).unwrap();
    let tid = entra.home_tenant();

    let by_oid = agent
        .as_user::<GraphUserRead>(&tid, &AgentUser::ObjectId(oid.clone()))
        .await
        .unwrap();
    let claims = claims_of(by_oid.access_token().expose());
    assert_eq!(claims["oid"], oid.as_str());
    assert_eq!(claims["appid"], agent_id.as_str());
    assert_eq!(claims["xms_sub_fct"], "13");
    assert_eq!(claims["xms_act_fct"], "11");
    let me = by_oid.graph().me().await.unwrap();
    assert_eq!(me.id.as_deref(), Some(oid.as_str()));
    let log = entra.token_request_log();
    // T1, T2 (the agent's client_credentials for the exchange scope), user_fic.
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(form(&log[1], "client_id"), agent_id);
    assert_eq!(form(&log[1], "scope"), EXCHANGE_SCOPE);
    assert!(!log[1].form.contains_key("fmi_path"));
    let fic = &log[2];
    assert_eq!(form(fic, "grant_type"), "user_fic");
    assert_eq!(form(fic, "user_id"), oid);
    assert!(!fic.form.contains_key("username"));
    assert_eq!(form(fic, "client_info"), "1");
    assert!(form(fic, "scope").contains("offline_access"));
    assert_ne!(
        form(fic, "user_federated_identity_credential"),
        form(fic, "client_assertion")
    );

    // By UPN: its own key, T1 and T2 reused.
    let by_upn = agent
        .as_user::<GraphUserRead>(&tid, &AgentUser::Upn("helper@contoso.test".into()))
        .await
        .unwrap();
    assert_eq!(
        claims_of(by_upn.access_token().expose())["oid"],
        oid.as_str()
    );
    let log = entra.token_request_log();
    assert_eq!(log.len(), 4);
    assert_eq!(form(&log[3], "username"), "helper@contoso.test");

    // Cached; then, near expiry, the refresh grant by the agent instead of user_fic.
    agent
        .as_user::<GraphUserRead>(&tid, &AgentUser::ObjectId(oid.clone()))
        .await
        .unwrap();
    assert_eq!(entra.token_requests(), 4);
    clock.advance(Duration::from_secs(3400));
    let renewed = agent
        .as_user::<GraphUserRead>(&tid, &AgentUser::ObjectId(oid.clone()))
        .await
        .unwrap();
    assert_ne!(renewed.access_token(), by_oid.access_token());
    let log = entra.token_request_log();
    let after: Vec<&str> = log[4..].iter().map(|r| form(r, "grant_type")).collect();
    assert_eq!(after, ["client_credentials", "refresh_token"], "{log:?}");
    assert_eq!(form(&log[5], "client_id"), agent_id);
    assert_eq!(
        claims_of(renewed.access_token().expose())["oid"],
        oid.as_str()
    );
}

#[tokio::test]
async fn caches_never_serve_another_agent_the_api_itself_or_another_user() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let (a, b) = (entra.add_agent_identity(), entra.add_agent_identity());
    let app_a = app(layer.clone(), layer.agent(&a).unwrap());
    let app_b = app(layer.clone(), layer.agent(&b).unwrap());
    let alice = entra
        .token()
        .user("a1111111-1111-4111-8111-111111111111")
        .sign();
    let bob = entra
        .token()
        .user("b2222222-2222-4222-8222-222222222222")
        .sign();

    let ta = bearer(&app_a, "/agent/raw", &alice).await.body;
    let tb = bearer(&app_b, "/agent/raw", &alice).await.body;
    let own = bearer(&app_a, "/obo/raw", &alice).await.body;
    let tb_bob = bearer(&app_b, "/agent/raw", &bob).await.body;
    assert_eq!(claims_of(&ta)["appid"], a.as_str());
    assert_eq!(claims_of(&tb)["appid"], b.as_str());
    assert_eq!(claims_of(&own)["appid"], entra.api_client_id().as_str());
    assert_eq!(
        claims_of(&tb_bob)["oid"],
        "b2222222-2222-4222-8222-222222222222"
    );
    assert_eq!(
        claims_of(&tb)["oid"],
        "a1111111-1111-4111-8111-111111111111"
    );
    let log = entra.token_request_log();
    // Two T1 (one per agent), three agent exchanges, one of the API's own.
    assert_eq!(count(&log, is_t1), 2, "{log:?}");
    assert_eq!(
        count(&log, |r| form(r, "requested_token_use") == "on_behalf_of"),
        4
    );
    let t1_of = |agent: &str| {
        log.iter()
            .find(|r| is_t1(r) && form(r, "fmi_path") == agent)
            .map(|r| r.status)
    };
    assert_eq!((t1_of(&a), t1_of(&b)), (Some(200), Some(200)));

    // Agent users: one agent's user is not another agent's.
    let oid = entra.add_agent_user(&a, "only-a@contoso.test");
    let tid = entra.home_tenant();
    let user = AgentUser::ObjectId(oid);
    assert!(layer
        .agent(&a)
        .unwrap()
        .as_user::<GraphUserRead>(&tid, &user)
        .await
        .is_ok());
    let err = layer
        .agent(&b)
        .unwrap()
        .as_user::<GraphUserRead>(&tid, &user)
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::NotAnAgentUser { .. }), "{err:?}");
    assert_eq!(err.status(), 403);
}

#[tokio::test]
async fn misconfigured_agents_are_500s_and_refused_users_403s_without_secrets() {
    let logs = capture_logs_global();
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let stranger = entra.add_agent_identity_of("5e5e5e5e-5e5e-4e5e-8e5e-5e5e5e5e5e5e");
    let app = app(layer.clone(), layer.agent(&stranger).unwrap());
    let alice = entra
        .token()
        .user("a1111111-1111-4111-8111-111111111111")
        .sign();
    let r = bearer(&app, "/agent/me", &alice).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(!r.body.contains("eyJ"));
    let log = entra.token_request_log();
    assert_eq!(log.len(), 1, "no exchange without T1");
    assert_eq!(log[0].status, 400);
    let err = layer
        .agent(&stranger)
        .unwrap()
        .app_token::<GraphDefault>(&entra.home_tenant())
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::Blueprint { .. }), "{err:?}");
    assert!(err.to_string().contains(&stranger), "{err}");

    // Not an agent user at all.
    let agent_id = entra.add_agent_identity();
    let err = layer
        .agent(&agent_id)
        .unwrap()
        .as_user::<GraphUserRead>(
            &entra.home_tenant(),
            &AgentUser::Upn("nobody@contoso.test".into()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AgentError::NotAnAgentUser { .. }), "{err:?}");
    assert!(matches!(
        layer.agent("not-a-guid"),
        Err(AgentError::InvalidAgentId)
    ));
    assert_no_secrets_in(logs, &[&entra.client_secret()]);
}

/// The stand-in's own rules, as a raw client would meet them: T2 is no client
/// assertion, T1 of one agent is no credential of another, T1 is no user_fic credential.
#[tokio::test]
async fn the_stand_in_accepts_t1_only_as_its_agents_assertion_and_t2_only_for_user_fic() {
    let harness = Harness::start().await;
    let entra = harness.entra();
    let (a, b) = (entra.add_agent_identity(), entra.add_agent_identity());
    let oid = entra.add_agent_user(&a, "u@contoso.test");
    let url = entra.token_endpoint(&entra.home_tenant());
    let http = reqwest::Client::new();
    let post = |form: Vec<(&'static str, String)>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.post(url).form(&form).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let t1 = |agent: String| {
        post(vec![
            ("grant_type", "client_credentials".into()),
            ("client_id", entra.api_client_id()),
            ("client_secret", entra.client_secret()),
            ("scope", "api://AzureAdTokenExchange/.default".into()),
            ("fmi_path", agent),
        ])
    };
    let as_agent = |agent: &str, assertion: &str, grant: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("client_id", agent.to_owned()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
            ),
            ("client_assertion", assertion.to_owned()),
        ];
        form.extend(grant);
        post(form)
    };
    let (status, body) = t1(a.clone()).await;
    assert_eq!(status, 200, "{body}");
    let t1_a = body["access_token"].as_str().unwrap().to_owned();
    let exchange = || {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("scope", EXCHANGE_SCOPE.to_owned()),
        ]
    };
    // T1 of a is no credential of b.
    let (status, body) = as_agent(&b, &t1_a, exchange()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = as_agent(&a, &t1_a, exchange()).await;
    assert_eq!(status, 200, "{body}");
    let t2_a = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        claims_of(&t2_a)["xms_par_app_azp"],
        entra.api_client_id().as_str()
    );
    // T2 is no client assertion.
    let (status, body) = as_agent(&a, &t2_a, exchange()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // T1 is no user_fic credential; T2 is.
    let fic = |credential: &str| {
        vec![
            ("grant_type", "user_fic".to_owned()),
            ("user_federated_identity_credential", credential.to_owned()),
            ("user_id", oid.clone()),
            (
                "scope",
                "https://graph.microsoft.com/User.Read openid profile offline_access".to_owned(),
            ),
            ("client_info", "1".to_owned()),
        ]
    };
    let (status, body) = as_agent(&a, &t1_a, fic(&t1_a)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = as_agent(&a, &t1_a, fic(&t2_a)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string() && body["client_info"].is_string());
    // An agent has no secret.
    let (status, body) = post(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", a.clone()),
        ("client_secret", entra.client_secret()),
        ("scope", EXCHANGE_SCOPE.into()),
    ])
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

struct NoAgents;
impl Requirement for NoAgents {
    const SCOPES: &'static [&'static str] = &["access_as_user"];
    const AGENTS: AgentAdmission = AgentAdmission::Refuse;
}

struct AgentsOnly;
impl Requirement for AgentsOnly {
    const SCOPES: &'static [&'static str] = &["access_as_user"];
    const AGENTS: AgentAdmission = AgentAdmission::Only;
}

#[tokio::test]
async fn inbound_agents_are_recognised_and_admitted_or_refused_per_route() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let blueprint = "7b7b7b7b-7b7b-4b7b-8b7b-7b7b7b7b7b7b";
    let app = Router::new()
        .route(
            "/kind",
            get(|p: Principal| async move {
                match p.agent() {
                    None => "none".to_owned(),
                    Some(a) => format!("{:?} {}", a.kind(), a.blueprint()),
                }
            }),
        )
        .route("/humans", get(|_: Require<NoAgents>| async { "ok" }))
        .route("/agents", get(|_: Require<AgentsOnly>| async { "ok" }))
        .route("/{x}", get(|Path(x): Path<String>| async move { x }))
        .layer(layer);
    let human = entra.token().scopes(&["access_as_user"]).sign();
    let agent = entra
        .token()
        .scopes(&["access_as_user"])
        .claim("xms_par_app_azp", Value::from(blueprint))
        .sign();
    let agent_user = entra
        .token()
        .scopes(&["access_as_user"])
        .claim("xms_par_app_azp", Value::from(blueprint))
        .claim("xms_sub_fct", Value::from("3 13"))
        .sign();
    assert_eq!(bearer(&app, "/kind", &human).await.body, "none");
    assert_eq!(
        bearer(&app, "/kind", &agent).await.body,
        format!("{:?} {blueprint}", AgentKind::Identity)
    );
    assert_eq!(
        bearer(&app, "/kind", &agent_user).await.body,
        format!("{:?} {blueprint}", AgentKind::User)
    );
    assert_eq!(bearer(&app, "/humans", &human).await.status, 200);
    assert_eq!(bearer(&app, "/humans", &agent).await.status, 403);
    assert_eq!(bearer(&app, "/humans", &agent_user).await.status, 403);
    assert_eq!(bearer(&app, "/agents", &human).await.status, 403);
    assert_eq!(bearer(&app, "/agents", &agent_user).await.status, 200);
    let _ = Arc::new(());
}

/// Graph revokes the caller's session: the agent's On-Behalf-Of runs once more with
/// cp1 and the challenge's `nbf`, the call is retried once and succeeds, and the new
/// token replaces the cached one.
#[tokio::test]
async fn a_graph_claims_challenge_to_an_agent_token_is_answered_by_one_reexchange() {
    let harness = Harness::start().await;
    let layer = OboLayer::new(
        harness
            .config()
            .client_capabilities(["cp1"])
            .build()
            .unwrap(),
    );
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let app = app(layer.clone(), layer.agent(&agent_id).unwrap());
    let oid = "e5555555-5555-4555-8555-555555555555";
    let user = entra.token().user(oid).sign();
    assert_eq!(bearer(&app, "/agent/me", &user).await.status, 200);
    assert_eq!(entra.token_requests(), 2);
    // Graph compares whole seconds: revoke in the next one.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(
        1_050 - u64::from(now.subsec_millis()),
    ))
    .await;
    let revoked_at = harness.graph().revoke_session(oid);

    let r = bearer(&app, "/agent/me", &user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let log = entra.token_request_log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(form(&log[2], "client_id"), agent_id);
    let claims: Value = serde_json::from_str(form(&log[2], "claims")).unwrap();
    assert_eq!(claims["access_token"]["xms_cc"]["values"][0], "cp1");
    assert_eq!(
        claims["access_token"]["nbf"]["value"],
        revoked_at.to_string()
    );
    assert_eq!(form(&log[0], "fmi_path"), agent_id, "the T1 was reused");
    // The cache holds the new token.
    assert_eq!(bearer(&app, "/agent/me", &user).await.status, 200);
    assert_eq!(entra.token_requests(), 3);
}

/// Entra's facet claims are multivalued numbers (`11` = AgentIdentity, `13` =
/// AgentIDUser) and appear on ordinary tokens too (`"3 9"`): an autonomous agent's
/// token (`xms_sub_fct` `"9 3 11"`) and an agent acting for a human (`"2 3"`) are
/// agent identities, not agent users; only facet `13` makes an agent user, and a
/// human's token with facets but no parent blueprint is no agent at all.
#[tokio::test]
async fn only_the_agent_user_facet_13_makes_an_agent_user() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let blueprint = "7b7b7b7b-7b7b-4b7b-8b7b-7b7b7b7b7b7b";
    let app = Router::new()
        .route(
            "/kind",
            get(|p: Principal| async move {
                match p.agent() {
                    None => "none".to_owned(),
                    Some(a) => format!("{:?}", a.kind()),
                }
            }),
        )
        .route("/humans", get(|_: Require<NoAgents>| async { "ok" }))
        .layer(layer);
    let token = |par: Option<&str>, sub_fct: &str| {
        let mut t = entra
            .token()
            .scopes(&["access_as_user"])
            .claim("xms_sub_fct", Value::from(sub_fct));
        if let Some(par) = par {
            t = t.claim("xms_par_app_azp", Value::from(par));
        }
        t.sign()
    };
    let identity = format!("{:?}", AgentKind::Identity);
    let user = format!("{:?}", AgentKind::User);
    let autonomous = token(Some(blueprint), "9 3 11");
    assert_eq!(bearer(&app, "/kind", &autonomous).await.body, identity);
    let for_a_human = token(Some(blueprint), "2 3");
    assert_eq!(bearer(&app, "/kind", &for_a_human).await.body, identity);
    let agent_user = token(Some(blueprint), "3 13");
    assert_eq!(bearer(&app, "/kind", &agent_user).await.body, user);
    let human = token(None, "3 6");
    assert_eq!(bearer(&app, "/kind", &human).await.body, "none");
    assert_eq!(bearer(&app, "/humans", &human).await.status, 200);
    assert_eq!(bearer(&app, "/humans", &autonomous).await.status, 403);
}

/// Entra failing the blueprint's T1: an outage is a 503 with `Retry-After` and is
/// not remembered (the next request after recovery gets its token); a hang is a
/// 504 within the HTTP timeout, not cached either; a refused credential is a 500
/// whose body names neither a token nor Entra's code.
#[tokio::test]
async fn a_failing_t1_is_503_or_504_within_the_timeout_and_not_remembered() {
    let clock = clock();
    let harness = Harness::start().await;
    let config = harness
        .config()
        .clock(clock.clone())
        .http_timeout(Duration::from_secs(1))
        .obo_retries(1, Duration::from_secs(2))
        .build()
        .unwrap();
    let layer = OboLayer::new(config);
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let app = app(layer.clone(), layer.agent(&agent_id).unwrap());
    let alice = entra.token().sign();

    entra.inject_token_fault(
        axum_obo_testing::TokenFault::ServiceUnavailable {
            retry_after: Some(0),
        },
        None,
    );
    let r = bearer(&app, "/agent/raw", &alice).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.retry_after.is_some());
    assert!(entra.token_request_log().iter().all(is_t1));
    entra.clear_token_faults();
    clock.advance(Duration::from_secs(120));
    let r = bearer(&app, "/agent/raw", &alice).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let bob = entra
        .token()
        .user("b2222222-2222-4222-8222-222222222222")
        .sign();
    let other = entra.add_agent_identity();
    let app = app_for(&layer, &other);
    entra.inject_token_fault(axum_obo_testing::TokenFault::Hang, Some(1));
    let started = std::time::Instant::now();
    let r = bearer(&app, "/agent/raw", &bob).await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    clock.advance(Duration::from_secs(120));
    let r = bearer(&app, "/agent/raw", &bob).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let third = entra.add_agent_identity();
    let app = app_for(&layer, &third);
    entra.inject_token_fault(axum_obo_testing::TokenFault::InvalidClient, Some(1));
    let r = bearer(&app, "/agent/raw", &bob).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(
        !r.body.contains("eyJ") && !r.body.contains("AADSTS"),
        "{}",
        r.body
    );
}

fn app_for(layer: &OboLayer, agent: &str) -> Router {
    app(layer.clone(), layer.agent(agent).unwrap())
}

/// Every flow at TRACE: no T1, T2, agent token, caller assertion or agent user's
/// refresh token in any log line, in the Debug output of the handles and tokens,
/// or in the errors' messages.
#[tokio::test]
async fn no_agent_secret_in_logs_debug_output_or_errors() {
    let logs = capture_logs_global();
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let oid = entra.add_agent_user(&agent_id, "scribe@contoso.test");
    let agent = layer.agent(&agent_id).unwrap();
    let app = app(layer.clone(), agent.clone());
    let tid = entra.home_tenant();
    let alice = entra.token().sign();

    assert_eq!(bearer(&app, "/agent/me", &alice).await.status, 200);
    let own = agent.app_token::<GraphDefault>(&tid).await.unwrap();
    let user = AgentUser::ObjectId(oid.clone());
    let as_user = agent.as_user::<GraphUserRead>(&tid, &user).await.unwrap();
    clock.advance(Duration::from_secs(3400));
    let renewed = agent.as_user::<GraphUserRead>(&tid, &user).await.unwrap();
    let stranger = AgentUser::Upn("nobody@contoso.test".into());
    let refused = agent
        .as_user::<GraphUserRead>(&tid, &stranger)
        .await
        .unwrap_err();
    let foreign = layer.agent(&entra.add_agent_identity_of(&entra.add_agent_identity()));
    let misconfigured = foreign
        .unwrap()
        .app_token::<GraphDefault>(&tid)
        .await
        .unwrap_err();

    let log = entra.token_request_log();
    let refresh = log
        .iter()
        .find(|r| form(r, "grant_type") == "refresh_token")
        .map(|r| form(r, "refresh_token").to_owned())
        .expect("a refresh grant");
    assert!(!refresh.is_empty());
    let secret = entra.client_secret();
    let debug = format!(
        "{agent:?} {own:?} {as_user:?} {renewed:?} {refused:?} {refused} {misconfigured:?} {misconfigured}"
    );
    for leak in ["eyJ", refresh.as_str(), secret.as_str()] {
        assert!(!debug.contains(leak), "{debug}");
    }
    assert_no_secrets_in(logs, &[&refresh, &secret]);
}

/// `xms_par_app_azp` is an optional claim: Entra's scenario tables mark an agent
/// by its facets (`xms_act_fct` `11`, AgentIdentity, when an agent acts; `xms_sub_fct`
/// `11` or `13` when an agent or agent user is the subject). A route that refuses
/// agents refuses those tokens too, and one for agents only admits them.
#[tokio::test]
async fn agent_facets_alone_are_refused_where_agents_are() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let app = Router::new()
        .route("/humans", get(|_: Require<NoAgents>| async { "ok" }))
        .route("/agents", get(|_: Require<AgentsOnly>| async { "ok" }))
        .layer(layer);
    let with = |claim: &str, value: &str| {
        entra
            .token()
            .scopes(&["access_as_user"])
            .claim(claim, Value::from(value))
            .sign()
    };
    for agent in [
        with("xms_act_fct", "3 11"),
        with("xms_sub_fct", "9 3 11"),
        with("xms_sub_fct", "13"),
    ] {
        assert_eq!(bearer(&app, "/humans", &agent).await.status, 403);
        assert_eq!(bearer(&app, "/agents", &agent).await.status, 200);
    }
    let human = with("xms_sub_fct", "3 6");
    assert_eq!(bearer(&app, "/humans", &human).await.status, 200);
    assert_eq!(bearer(&app, "/agents", &human).await.status, 403);
}

/// Tenants never share an agent's tokens: the same user (same `oid`) calling from
/// two tenants gets two exchanges, each with the T1 of its own tenant (a T1 per
/// tenant and agent, requested at that tenant's endpoint), and the agent's own
/// token in one tenant is not its token in the other.
#[tokio::test]
async fn tenants_never_share_t1_or_agent_tokens() {
    let clock = clock();
    let harness = Harness::start().await;
    let other = "c3333333-3333-4333-8333-333333333333";
    let config = harness
        .config()
        .clock(clock.clone())
        .allow_tenants([other])
        .build()
        .unwrap();
    let layer = OboLayer::new(config);
    let entra = harness.entra();
    let home = entra.home_tenant();
    let agent_id = entra.add_agent_identity();
    let agent = layer.agent(&agent_id).unwrap();
    let app = app(layer.clone(), agent.clone());
    let oid = "a1111111-1111-4111-8111-111111111111";
    let in_home = entra.token().user(oid).sign();
    let in_other = entra.token().user(oid).tenant(other).sign();

    let a = bearer(&app, "/agent/raw", &in_home).await;
    let b = bearer(&app, "/agent/raw", &in_other).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(b.status, 200, "{}", b.body);
    assert_eq!(claims_of(&a.body)["tid"], home.as_str());
    assert_eq!(claims_of(&b.body)["tid"], other);
    let own_home = agent.app_token::<GraphDefault>(&home).await.unwrap();
    let own_other = agent.app_token::<GraphDefault>(other).await.unwrap();
    assert_eq!(
        claims_of(own_home.access_token().expose())["tid"],
        home.as_str()
    );
    assert_eq!(claims_of(own_other.access_token().expose())["tid"], other);

    let log = entra.token_request_log();
    let t1s: Vec<&TokenRequestRecord> = log.iter().filter(|r| is_t1(r)).collect();
    assert_eq!(t1s.len(), 2, "{log:?}");
    for r in log.iter().filter(|r| !is_t1(r)) {
        let t1 = claims_of(form(r, "client_assertion"));
        assert_eq!(t1["tid"], r.tenant.as_str(), "a T1 of another tenant");
    }
}

/// 50 concurrent first requests for a user who is not an agent user of the agent
/// share one refusal: one `user_fic` request (the negative cache applies to the
/// requests waiting on the key, not only to later ones).
#[tokio::test]
async fn concurrent_refusals_cost_one_request_to_entra() {
    let clock = clock();
    let (harness, layer) = setup(&clock).await;
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let agent = layer.agent(&agent_id).unwrap();
    let tid = entra.home_tenant();
    let stranger = AgentUser::Upn("nobody@contoso.test".into());
    let all: Vec<_> = (0..50)
        .map(|_| {
            let (agent, tid, stranger) = (agent.clone(), tid.clone(), stranger.clone());
            tokio::spawn(async move { agent.as_user::<GraphUserRead>(&tid, &stranger).await })
        })
        .collect();
    for task in all {
        let err = task.await.unwrap().unwrap_err();
        assert!(matches!(err, AgentError::NotAnAgentUser { .. }), "{err:?}");
    }
    let log = entra.token_request_log();
    assert_eq!(count(&log, |r| form(r, "grant_type") == "user_fic"), 1);
    assert_eq!(count(&log, is_t1), 1);
}

/// 30 concurrent first callers while the T1 fails (Entra 503; then an agent that
/// is not the blueprint's child) share the failure: one T1 attempt (with its
/// retries), not one per caller queued behind it.
#[tokio::test]
async fn concurrent_callers_share_one_failing_t1() {
    let clock = clock();
    let harness = Harness::start().await;
    let config = harness
        .config()
        .clock(clock.clone())
        .obo_retries(0, Duration::from_secs(1))
        .build()
        .unwrap();
    let layer = OboLayer::new(config);
    let entra = harness.entra();
    let run = |agent: String, user: usize| {
        let app = app_for(&layer, &agent);
        let token = entra
            .token()
            .user(&format!("a1111111-1111-4111-8111-{user:012}"))
            .sign();
        tokio::spawn(async move { bearer(&app, "/agent/raw", &token).await.status })
    };

    entra.inject_token_fault(
        axum_obo_testing::TokenFault::ServiceUnavailable { retry_after: None },
        None,
    );
    let agent = entra.add_agent_identity();
    let tasks: Vec<_> = (0..30).map(|i| run(agent.clone(), i)).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 503);
    }
    assert_eq!(entra.token_requests(), 1, "one T1 attempt");
    entra.clear_token_faults();

    let stranger = entra.add_agent_identity_of("0e0e0e0e-0e0e-4e0e-8e0e-0e0e0e0e0e0e");
    let tasks: Vec<_> = (0..30).map(|i| run(stranger.clone(), 100 + i)).collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 500);
    }
    assert_eq!(entra.token_requests(), 2, "one refused T1");
}
