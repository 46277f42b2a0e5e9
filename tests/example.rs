//! The example server's router end to end against the Entra and Graph stand-ins.

mod common;

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

#[path = "../examples/server/banner.rs"]
#[allow(dead_code)]
mod banner;

fn dev_cors() -> app::Cors {
    app::cors(&[http::HeaderValue::from_static(app::DEV_ORIGIN)])
}

use axum_obo::OboLayer;
use axum_obo_testing::GraphFault;
use common::*;
use serde_json::Value;

async fn example() -> (app::Embedded, axum::Router, OboLayer) {
    let embedded = app::Embedded::start().await;
    let layer = OboLayer::new(app::policy(embedded.config()).build().unwrap());
    layer.warm_up().await.unwrap();
    let router = app::router(layer.clone(), dev_cors());
    (embedded, router, layer)
}

#[tokio::test]
async fn healthz_whoami_me_admin() {
    let (e, app, layer) = example().await;

    let r = call(&app, "/healthz", None).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "ok"));

    let user = e.user_token();
    let r = bearer(&app, "/whoami", &user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let who = r.json();
    for field in ["oid", "tid", "kind", "scp", "roles"] {
        assert!(!who[field].is_null(), "{field} in {who}");
    }
    assert_eq!(who["kind"], "delegated");

    // /me: validation, exchange, cache, Graph — Graph's JSON as received.
    let r = bearer(&app, "/me", &user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let me: Value = r.json();
    assert_eq!(me["id"], who["oid"], "the profile is the caller's");
    assert_eq!(me["displayName"], "Adele Vance");
    assert!(me["@odata.context"].is_string(), "{me}");
    assert!(!r.body.contains("eyJ"), "no token in the answer");
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    assert_eq!(
        e.entra.tokens_issued(),
        1,
        "second /me served from the OBO cache"
    );
    assert_eq!(layer.stats().hits, 1);

    // /admin: only with the Admin role.
    assert_eq!(bearer(&app, "/admin", &user).await.status, 403);
    let r = bearer(&app, "/admin", &e.admin_token()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"ok": true}));

    // App-only tokens: /whoami yes (any role), /me no (OBO needs a user).
    let app_only = e.entra.token().app_only().roles(&["Reports.Read"]).sign();
    let r = bearer(&app, "/whoami", &app_only).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "app");
    assert_eq!(bearer(&app, "/me", &app_only).await.status, 403);

    // Delegated without access_as_user: 403 everywhere but /healthz.
    let other = e.entra.token().scopes(&["Files.Read"]).sign();
    assert_eq!(bearer(&app, "/whoami", &other).await.status, 403);
    assert_eq!(call(&app, "/me", None).await.status, 401);
}

#[tokio::test]
async fn graph_failures_are_relayed() {
    let (e, app, _) = example().await;
    let user = e.user_token();
    // Graph throttles past the retry budget → 503.
    e.graph.inject_fault(
        GraphFault::TooManyRequests {
            retry_after: Some(1),
        },
        Some(100),
    );
    let r = bearer(&app, "/me", &user).await;
    assert_eq!(r.status, 503, "{}", r.body);
    // A claims challenge from Graph goes back to the client like Entra's.
    let (e, app, _) = example().await;
    let user = e.user_token();
    e.graph.inject_fault(
        GraphFault::ClaimsChallenge(
            r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#.into(),
        ),
        Some(1),
    );
    let r = bearer(&app, "/me", &user).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let challenge = r.www_authenticate.clone().unwrap();
    assert!(
        challenge.contains("error=\"insufficient_claims\", claims=\""),
        "{challenge}"
    );
    // It names the configured authority (here the stand-in; a national cloud in
    // production), not the public cloud.
    assert!(
        challenge.contains(&format!(
            "authorization_uri=\"{}/common/oauth2/authorize\"",
            e.entra.authority_host()
        )),
        "{challenge}"
    );
    assert!(
        !challenge.contains("login.microsoftonline.com"),
        "{challenge}"
    );
    assert_eq!(r.json()["error"], "insufficient_claims");
}

/// Sends `req` through the example's router; returns the status and headers.
async fn send(app: &axum::Router, req: http::Request<axum::body::Body>) -> (u16, http::HeaderMap) {
    use tower::ServiceExt as _;
    let resp = app.clone().oneshot(req).await.unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}

#[tokio::test(flavor = "current_thread")]
async fn the_production_stack_around_the_layer() {
    use http::header::{
        ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, AUTHORIZATION, ORIGIN,
    };
    // One subscriber for the whole binary: a thread-local one can miss callsites
    // whose interest another test thread cached first.
    let logs = capture_logs_global();
    let (e, app, _) = example().await;
    let get = |path: &str| http::Request::get(path).header(ORIGIN, app::DEV_ORIGIN);

    // A browser preflight carries no token: CORS (outside OboLayer) answers it, never a 401.
    let preflight = http::Request::options("/me")
        .header(ORIGIN, app::DEV_ORIGIN)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, h) = send(&app, preflight).await;
    assert_eq!(status, 200);
    assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], app::DEV_ORIGIN);
    assert!(h.get(http::header::WWW_AUTHENTICATE).is_none());

    // A 401 can be read by the SPA: the challenge and Retry-After are exposed.
    let (status, h) = send(&app, get("/me").body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], app::DEV_ORIGIN);
    let exposed = h[ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["www-authenticate", "retry-after", "x-request-id"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    assert!(
        h.get("x-request-id").is_some(),
        "request ids on every response"
    );

    // Another origin gets no CORS grant.
    let (_, h) = send(
        &app,
        http::Request::get("/me")
            .header(ORIGIN, "https://evil.example")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert!(h.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // route_layer: an unknown path is a 404, not a 401.
    let (status, _) = send(&app, get("/nope").body(axum::body::Body::empty()).unwrap()).await;
    assert_eq!(status, 404);

    // With a token: 200, a request id, and the token in no log line.
    let token = e.user_token();
    let (status, h) = send(
        &app,
        get("/me")
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let id = h["x-request-id"].to_str().unwrap().to_owned();
    let text = logs.text();
    assert!(text.contains(&id), "the request id is in the trace span");
    assert!(!text.contains(&token[..40]), "no token in the logs");
}

/// The example's production path (`OboConfigBuilder::from_env`, here through its
/// lookup) with a managed identity as the only credential: no secret anywhere.
#[tokio::test]
async fn the_environment_path_takes_a_managed_identity() {
    use axum_obo_testing::ManagedIdentityStandIn;
    let e = app::Embedded::start().await;
    let identity = ManagedIdentityStandIn::start(&e.entra).await;
    e.entra
        .add_managed_identity_credential(&identity.system_assigned());
    let mut vars: std::collections::HashMap<&str, String> =
        identity.environment().into_iter().collect();
    vars.insert("AZURE_TENANT_ID", e.entra.home_tenant());
    vars.insert("AZURE_CLIENT_ID", e.entra.api_client_id());
    vars.insert("AZURE_AUTHORITY_HOST", e.entra.authority_host());
    vars.insert("OBO_GRAPH_URL", e.graph.url());
    vars.insert("OBO_MANAGED_IDENTITY", "system".to_owned());
    let config = axum_obo::OboConfigBuilder::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let layer = OboLayer::new(app::policy(config).build().unwrap());
    let router = app::router(layer, dev_cors());
    let r = bearer(&router, "/me", &e.user_token()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(identity.requests(), 1);
    let exchange = e.entra.token_request_log().pop().unwrap();
    assert!(!exchange.form.contains_key("client_secret"));
    assert!(exchange.form.contains_key("client_assertion"));
}

#[tokio::test]
async fn continuous_access_evaluation_in_the_example() {
    // What `OBO_CLIENT_CAPABILITIES=cp1 cargo run --example server` configures.
    let e = app::Embedded::start().await;
    let config = app::policy(e.config().client_capabilities(["cp1"]));
    let layer = OboLayer::new(config.build().unwrap());
    let router = app::router(layer, dev_cors());
    let user = e.user_token();
    let oid = bearer(&router, "/whoami", &user).await.json()["oid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(bearer(&router, "/me", &user).await.status, 200);
    assert_eq!(e.entra.tokens_issued(), 1);

    // A critical event at Graph: tokens issued before it get a claims challenge.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(
        1_050 - u64::from(now.subsec_millis()),
    ))
    .await;
    e.graph.revoke_session(&oid);
    let r = bearer(&router, "/me", &user).await;
    assert_eq!(r.status, 200, "answered by one re-exchange: {}", r.body);
    assert_eq!(r.json()["id"], oid.as_str());
    assert_eq!(e.entra.tokens_issued(), 2);
}

/// The example with jobs that wait `delay` before calling Graph.
async fn example_with_jobs(delay: std::time::Duration) -> (app::Embedded, axum::Router) {
    let (embedded, router, _, _) = example_with_jobs_on(delay, clock()).await;
    (embedded, router)
}

/// The example with jobs that wait `delay`, everything on `clock`; also its jobs.
async fn example_with_jobs_on(
    delay: std::time::Duration,
    clock: axum_obo::clock::ManualClock,
) -> (app::Embedded, axum::Router, app::Jobs, OboLayer) {
    let embedded = app::Embedded::start().await;
    let config = app::policy(embedded.config().clock(clock.clone()));
    let layer = OboLayer::new(config.build().unwrap());
    layer.warm_up().await.unwrap();
    let jobs = app::Jobs::new(layer.sessions(), delay).with_clock(clock);
    let router = app::router_with_jobs(layer.clone(), dev_cors(), jobs.clone());
    (embedded, router, jobs, layer)
}

/// Polls job `id` until it is no longer pending; its state.
async fn finished(app: &axum::Router, id: &str, user: &str) -> Value {
    let mut job = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        job = bearer(app, &format!("/jobs/{id}"), user).await.json();
        if job["state"] != "pending" {
            break;
        }
    }
    job
}

async fn post(app: &axum::Router, path: &str, token: &str) -> Reply {
    use tower::ServiceExt as _;
    let request = http::Request::post(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    read(app.clone().oneshot(request).await.unwrap()).await
}

#[tokio::test]
async fn a_job_fetches_the_profile_through_a_session_after_the_request() {
    let (e, app) = example_with_jobs(std::time::Duration::from_millis(300)).await;
    let user = e.user_token();
    let asked = e.entra.token_requests();
    let r = post(&app, "/jobs/me", &user).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().expect("a job id").to_owned();
    assert_eq!(
        e.entra.token_requests() - asked,
        1,
        "a job costs one exchange (with offline_access)"
    );
    let offline = e.entra.token_request_log();
    assert!(offline.iter().any(|r| r
        .form
        .get("scope")
        .is_some_and(|s| s.contains("offline_access"))));
    assert!(!r.body.contains("1.A"), "no refresh token in the answer");

    let path = format!("/jobs/{id}");
    let r = bearer(&app, &path, &user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"state": "pending", "result": null, "error": null})
    );

    // Another user: as unknown as an id that never existed.
    let other = e
        .entra
        .token()
        .user("00000000-0000-0000-0000-0000000000aa")
        .sign();
    assert_eq!(bearer(&app, &path, &other).await.status, 404);
    assert_eq!(bearer(&app, "/jobs/nope", &user).await.status, 404);
    assert_eq!(call(&app, &path, None).await.status, 401);

    let mut job = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        job = bearer(&app, &path, &user).await.json();
        if job["state"] != "pending" {
            break;
        }
    }
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["error"], Value::Null);
    assert_eq!(
        e.entra.token_requests() - asked,
        1,
        "the job's Graph call used the session's first token"
    );
    assert_eq!(job["result"]["displayName"], "Adele Vance");
    let who = bearer(&app, "/whoami", &user).await.json();
    assert_eq!(
        job["result"]["id"], who["oid"],
        "the profile is the caller's"
    );
    assert_eq!(bearer(&app, &path, &other).await.status, 404);
}

#[tokio::test]
async fn a_job_that_graph_refuses_fails_with_the_reason() {
    let (e, app) = example_with_jobs(std::time::Duration::from_millis(100)).await;
    let user = e.user_token();
    e.graph.inject_fault(GraphFault::Status(403), Some(1));
    let r = post(&app, "/jobs/me", &user).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let mut job = Value::Null;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        job = bearer(&app, &format!("/jobs/{id}"), &user).await.json();
        if job["state"] != "pending" {
            break;
        }
    }
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["result"], Value::Null, "{job}");
    // The public description only: never the downstream API's own message.
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("refused access"), "{error}");
    assert!(!error.contains("General exception"), "{error}");
    assert!(!error.contains("generalException:"), "{error}");
}

#[tokio::test]
async fn a_job_failing_at_graph_with_a_server_error_reports_no_downstream_detail() {
    let (e, app) = example_with_jobs(std::time::Duration::from_millis(100)).await;
    let user = e.user_token();
    // Graph answers 502 with its own message, past the retries.
    e.graph.inject_fault(GraphFault::Status(502), Some(100));
    let r = post(&app, "/jobs/me", &user).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let job = finished(&app, &id, &user).await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(!error.contains("General exception"), "{error}");
    assert!(!error.contains("127.0.0.1"), "{error}");
    assert!(!error.contains("http"), "{error}");
}

#[tokio::test]
async fn one_user_starting_jobs_in_a_loop_is_bounded_and_others_are_served() {
    let (e, app, jobs, _) = example_with_jobs_on(std::time::Duration::from_secs(60), clock()).await;
    let user = e.user_token();
    let oid = bearer(&app, "/whoami", &user).await.json()["oid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..200 {
        let r = post(&app, "/jobs/me", &user).await;
        match r.status.as_u16() {
            202 => accepted += 1,
            429 => {
                refused += 1;
                let retry: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
                assert!(retry >= 1, "{retry}");
            }
            other => panic!("{other}: {}", r.body),
        }
        if accepted == app::MAX_JOBS_PER_USER {
            // Entra throttles a client repeating the same exchange (AADSTS50196).
            e.entra.inject_token_fault_for_user(
                &oid,
                axum_obo_testing::TokenFault::TooManyRequests {
                    retry_after: Some(30),
                },
            );
        }
    }
    assert_eq!((accepted, refused), (app::MAX_JOBS_PER_USER, 190));
    assert!(jobs.kept() <= app::MAX_JOBS_PER_USER, "{}", jobs.kept());
    assert!(
        e.entra.token_requests() <= app::MAX_JOBS_PER_USER + 1,
        "refused jobs ask Entra nothing: {}",
        e.entra.token_requests()
    );
    // Another user of the tenant is served.
    let other = e
        .entra
        .token()
        .user("00000000-0000-0000-0000-0000000000cc")
        .sign();
    let r = bearer(&app, "/me", &other).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(&app, "/jobs/me", &other).await;
    assert_eq!(r.status, 202, "{}", r.body);
}

/// Concurrent `POST /jobs/me` of one user (the library's start limit set high):
/// the per-user bound holds, the room being taken before the session's exchange.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_job_starts_of_one_user_stay_within_the_bound() {
    let embedded = app::Embedded::start().await;
    let config = app::policy(embedded.config().clock(clock()))
        .session_start_limit(1_000, std::time::Duration::from_secs(60));
    let layer = OboLayer::new(config.build().unwrap());
    layer.warm_up().await.unwrap();
    let jobs = app::Jobs::new(layer.sessions(), std::time::Duration::from_secs(60));
    let app = app::router_with_jobs(layer, dev_cors(), jobs.clone());
    let user = embedded.user_token();
    let posts: Vec<_> = (0..40)
        .map(|_| {
            let (app, user) = (app.clone(), user.clone());
            tokio::spawn(async move { post(&app, "/jobs/me", &user).await })
        })
        .collect();
    let (mut accepted, mut refused) = (0, 0);
    for p in posts {
        let r = p.await.unwrap();
        match r.status.as_u16() {
            202 => accepted += 1,
            429 => {
                refused += 1;
                assert!(r.retry_after.is_some());
            }
            other => panic!("{other}: {}", r.body),
        }
    }
    assert_eq!((accepted, refused), (app::MAX_JOBS_PER_USER, 30));
    assert_eq!(jobs.kept(), app::MAX_JOBS_PER_USER);
    assert!(
        embedded.entra.token_requests() <= app::MAX_JOBS_PER_USER + 1,
        "refused jobs ask Entra nothing: {}",
        embedded.entra.token_requests()
    );
}

/// A `POST /jobs/me` dropped during its session's exchange (client gone,
/// timeout) gives its room back: no job without a task holds the bound.
#[tokio::test]
async fn a_job_start_dropped_during_the_exchange_gives_its_room_back() {
    let (e, app, jobs, _) = example_with_jobs_on(std::time::Duration::from_secs(60), clock()).await;
    let user = e.user_token();
    e.entra.inject_token_fault(
        axum_obo_testing::TokenFault::Delay(std::time::Duration::from_secs(5)),
        Some(1),
    );
    let asked = e.entra.token_requests();
    let start = tokio::spawn({
        let (app, user) = (app.clone(), user.clone());
        async move { post(&app, "/jobs/me", &user).await }
    });
    while e.entra.token_requests() == asked {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(jobs.kept(), 1, "the room is taken during the exchange");
    start.abort();
    assert!(start.await.is_err_and(|e| e.is_cancelled()));
    assert_eq!(jobs.kept(), 0);
}

/// An app-only caller cannot start a job (no user to act for): 403, and the
/// room taken for it is given back.
#[tokio::test]
async fn an_app_only_caller_starts_no_job() {
    let (e, app, jobs, _) = example_with_jobs_on(std::time::Duration::from_secs(60), clock()).await;
    let app_only = e.entra.token().app_only().roles(&["Reports.Read"]).sign();
    for _ in 0..app::MAX_JOBS_PER_USER + 1 {
        let r = post(&app, "/jobs/me", &app_only).await;
        assert_eq!(r.status, 403, "{}", r.body);
    }
    assert_eq!(jobs.kept(), 0);
    assert_eq!(e.entra.token_requests(), 0, "nothing asked of Entra");
}

#[tokio::test]
async fn finished_jobs_expire_after_the_retention() {
    let clock = clock();
    let (e, app, jobs, _) =
        example_with_jobs_on(std::time::Duration::from_millis(50), clock.clone()).await;
    let user = e.user_token();
    let r = post(&app, "/jobs/me", &user).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(finished(&app, &id, &user).await["state"], "done");
    clock.advance(app::JOB_RETENTION - std::time::Duration::from_secs(1));
    assert_eq!(
        bearer(&app, &format!("/jobs/{id}"), &user).await.status,
        200
    );
    clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(
        bearer(&app, &format!("/jobs/{id}"), &user).await.status,
        404
    );
    assert_eq!(jobs.kept(), 0);
}

/// What the example prints: each user's token once (as a shell variable the
/// commands use), and a gRPC call with curl when grpcurl is not installed —
/// which, run as printed against the example's router, answers the profile.
#[tokio::test]
async fn the_printed_commands_show_each_token_once_and_work() {
    let (e, router, _) = example().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let (user, admin) = (e.user_token(), e.admin_token());
    let (entra, graph) = (e.entra.authority_host(), e.graph.url());
    let banner = |grpcurl| {
        banner::Banner {
            addr,
            entra: &entra,
            graph: &graph,
            user_token: &user,
            admin_token: &admin,
            grpc_service: app::grpc::SERVICE,
            grpcurl,
            agent: None,
        }
        .text()
    };
    for grpcurl in [true, false] {
        let text = banner(grpcurl);
        assert_eq!(text.matches(user.as_str()).count(), 1, "{text}");
        assert_eq!(text.matches(admin.as_str()).count(), 1, "{text}");
        assert_eq!(text.contains("grpcurl -plaintext"), grpcurl, "{text}");
        assert_eq!(text.contains("--http2-prior-knowledge"), !grpcurl, "{text}");
    }

    // Run the printed curl commands as a shell would, with the exported tokens.
    let text = banner(false);
    let exports: Vec<&str> = text.lines().filter(|l| l.contains("export ")).collect();
    assert_eq!(exports.len(), 2, "{text}");
    let command = |needle: &str| -> String {
        let mut lines = text.lines().skip_while(|l| !l.contains(needle));
        let first = lines.next().unwrap_or_else(|| panic!("{needle} in {text}"));
        let mut command = first.trim().to_owned();
        while command.ends_with('\\') {
            command.pop();
            command.push_str(lines.next().unwrap().trim());
        }
        command
    };
    let prelude = format!("{}\n{}\n", exports[0].trim(), exports[1].trim());
    let run = |command: String| {
        let script = format!("{prelude}{command}");
        async move {
            let out = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .await
                .expect("sh runs");
            assert!(out.status.success(), "{script}: {out:?}");
            out.stdout
        }
    };
    let grpc = command("--http2-prior-knowledge");
    let reply = run(grpc).await;
    // A gRPC frame: uncompressed, then the MeReply message with the display name.
    assert_eq!(reply.first(), Some(&0), "{reply:?}");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("Adele Vance"), "{reply}");
    let me = command(&format!("http://{addr}/me"));
    let body = run(me).await;
    assert!(String::from_utf8_lossy(&body).contains("Adele Vance"));
    let admin_route = command(&format!("http://{addr}/admin"));
    let body = run(admin_route).await;
    assert!(
        !String::from_utf8_lossy(&body).contains("error"),
        "{body:?}"
    );
}
