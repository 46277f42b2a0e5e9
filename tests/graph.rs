//! The downstream client against the Graph stand-in (and a few purpose-built servers).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair, RSA_PKCS1_SHA256};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use futures_util::TryStreamExt as _;
use http::HeaderMap;
use serde_json::{json, Value};

use axum_obo::{
    BatchRequest, BearerToken, DownstreamClient, DownstreamError, GraphClient, GraphUser,
    RetryPolicy,
};
use axum_obo_testing::GraphStandIn;

const OID: &str = "5f2b1c3d-0a4e-4f6b-9c8d-7e6f5a4b3c2d";
const CLAIMS: &str = r#"{"access_token":{"nbf":{"essential":true,"value":"1702682181"}}}"#;

// ---------------------------------------------------------------- tokens and keys

struct Key {
    pair: RsaKeyPair,
    kid: String,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Two RSA keys: 0 is published, 1 is not.
fn key(i: usize) -> &'static Key {
    static KEYS: OnceLock<Vec<Key>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..2)
            .map(|i| Key {
                pair: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
                kid: format!("test-key-{i}"),
            })
            .collect()
    })[i]
}

fn jwks() -> Value {
    let k = key(0);
    let public = k.pair.public_key();
    json!({"keys": [{
        "kty": "RSA", "use": "sig", "kid": k.kid,
        "n": b64url(public.modulus().big_endian_without_leading_zero()),
        "e": b64url(public.exponent().big_endian_without_leading_zero()),
    }]})
}

/// An RS256 JWT signed with `key`, claiming `kid`.
fn sign(key: &Key, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let message = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let mut sig = vec![0; key.pair.public_modulus_len()];
    key.pair
        .sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            message.as_bytes(),
            &mut sig,
        )
        .unwrap();
    format!("{message}.{}", b64url(&sig))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(scp: &str) -> Value {
    let now = now();
    json!({
        "aud": "https://graph.microsoft.com",
        "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
        "iat": now - 60, "nbf": now - 60, "exp": now + 3600,
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "oid": OID, "sub": "pairwise-sub",
        "scp": scp,
        "name": "Adele Vance", "given_name": "Adele", "family_name": "Vance",
        "upn": "AdeleV@contoso.test", "unique_name": "AdeleV@contoso.test",
        "ver": "1.0",
    })
}

fn token_with(claims: &Value) -> BearerToken {
    BearerToken::new(sign(key(0), &key(0).kid, claims))
}

fn token(scp: &str) -> BearerToken {
    token_with(&claims(scp))
}

// ---------------------------------------------------------------- servers

/// Serves `router` on an ephemeral loopback port.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

async fn graph() -> GraphStandIn {
    let addr = serve(Router::new().route("/keys", get(|| async { Json(jwks()) }))).await;
    GraphStandIn::start(&format!("http://{addr}/keys")).await
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn client(graph: &GraphStandIn, token: BearerToken) -> GraphClient {
    GraphClient::new(http(), &graph.url(), token).unwrap()
}

fn statuses(graph: &GraphStandIn) -> Vec<u16> {
    graph.request_log().into_iter().map(|(_, _, s)| s).collect()
}

// ---------------------------------------------------------------- /me

#[tokio::test]
async fn me_from_the_tokens_claims() {
    let graph = graph().await;
    let g = client(&graph, token("openid profile User.Read"));
    let me: GraphUser = g.me().await.unwrap();
    assert_eq!(me.id.as_deref(), Some(OID));
    assert_eq!(me.display_name.as_deref(), Some("Adele Vance"));
    assert_eq!(me.given_name.as_deref(), Some("Adele"));
    assert_eq!(me.surname.as_deref(), Some("Vance"));
    assert_eq!(
        me.user_principal_name.as_deref(),
        Some("AdeleV@contoso.test")
    );
    assert_eq!(me.mail.as_deref(), Some("AdeleV@contoso.test"));
    assert!(me.job_title.is_some());
    assert_eq!(me.business_phones.len(), 1);
    assert!(me.other["@odata.context"]
        .as_str()
        .unwrap()
        .ends_with("/v1.0/$metadata#users/$entity"));
    // Deterministic per oid, and the key set was fetched once.
    assert_eq!(g.me().await.unwrap(), me);
    assert_eq!(graph.jwks_fetches(), 1);
    assert_eq!(
        graph.request_log()[0],
        ("GET".into(), "/v1.0/me".into(), 200)
    );
    // The other accepted audience, and a broader scope.
    let mut c = claims("User.ReadBasic.All");
    c["aud"] = json!("00000003-0000-0000-c000-000000000000");
    assert!(client(&graph, token_with(&c)).me().await.is_ok());
}

#[tokio::test]
async fn refused_tokens_are_401_with_graphs_shape() {
    let graph = graph().await;
    let mut expired = claims("User.Read");
    expired["exp"] = json!(now() - 3600);
    expired["nbf"] = json!(now() - 7200);
    let mut wrong_aud = claims("User.Read");
    wrong_aud["aud"] = json!("api://my-api");
    let mut no_exp = claims("User.Read");
    no_exp.as_object_mut().unwrap().remove("exp");
    let good = claims("User.Read");
    let cases = [
        ("expired", token_with(&expired)),
        ("wrong audience", token_with(&wrong_aud)),
        ("no exp", token_with(&no_exp)),
        // Signed by an unpublished key but claiming the published kid.
        (
            "bad signature",
            BearerToken::new(sign(key(1), &key(0).kid, &good)),
        ),
        (
            "unknown kid",
            BearerToken::new(sign(key(1), &key(1).kid, &good)),
        ),
        ("garbage", BearerToken::new("not-a-jwt")),
        ("empty", BearerToken::new("")),
    ];
    for (why, t) in cases {
        let e = client(&graph, t).me().await.unwrap_err();
        assert_eq!(e, DownstreamError::Unauthorized, "{why}");
        assert_eq!(e.status(), 502, "{why}");
    }
    // Unknown kids make the stand-in look at the key set again.
    assert!(graph.jwks_fetches() >= 2);

    // The wire shape.
    let r = http()
        .get(format!("{}/v1.0/me", graph.url()))
        .bearer_auth(sign(key(0), &key(0).kid, &expired))
        .header("client-request-id", "11111111-2222-3333-4444-555555555555")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\""
    );
    assert!(r.headers().contains_key("request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        body["error"]["message"],
        "Lifetime validation failed, the token is expired."
    );
    let inner = &body["error"]["innerError"];
    assert_eq!(
        inner["client-request-id"],
        "11111111-2222-3333-4444-555555555555"
    );
    assert!(inner["request-id"].is_string() && inner["date"].is_string());
    // No token at all.
    let r = http()
        .get(format!("{}/v1.0/me", graph.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Access token is empty.");
}

#[tokio::test]
async fn missing_scope_is_403() {
    let graph = graph().await;
    let e = client(&graph, token("Mail.Read openid"))
        .me()
        .await
        .unwrap_err();
    let DownstreamError::Api {
        status,
        code,
        message,
        request_id,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(*status, 403);
    assert_eq!(code, "Authorization_RequestDenied");
    assert_eq!(
        message,
        "Insufficient privileges to complete the operation."
    );
    assert!(request_id.is_some());
    assert_eq!(e.status(), 403);
    // Writes need User.ReadWrite.
    let g = client(&graph, token("User.Read"));
    let e = g
        .patch::<_, ()>("me", &json!({"officeLocation": "B42"}))
        .await
        .unwrap_err();
    assert!(
        matches!(e, DownstreamError::Api { status: 403, .. }),
        "{e:?}"
    );
    let g = client(&graph, token("User.ReadWrite"));
    let () = g
        .patch("me", &json!({"officeLocation": "B42"}))
        .await
        .unwrap();
}

#[tokio::test]
async fn app_only_tokens() {
    let graph = graph().await;
    let mut app = claims("");
    app.as_object_mut().unwrap().remove("scp");
    app["roles"] = json!(["User.Read.All"]);
    let g = client(&graph, token_with(&app));
    assert!(matches!(
        g.me().await,
        Err(DownstreamError::Api { status: 400, .. })
    ));
    let users: Vec<Value> = g.collect_all("users", 100).await.unwrap();
    assert_eq!(users.len(), 45);
    app["roles"] = json!(["Mail.Read"]);
    assert!(matches!(
        client(&graph, token_with(&app)).get_json("users").await,
        Err(DownstreamError::Api { status: 403, .. })
    ));
}

// ---------------------------------------------------------------- paging

#[tokio::test]
async fn paging_follows_next_links_to_the_end() {
    let graph = graph().await;
    let g = client(&graph, token("User.Read"));
    let users: Vec<GraphUser> = g.collect_all("users", 1000).await.unwrap();
    assert_eq!(users.len(), 45);
    for (i, u) in users.iter().enumerate() {
        assert_eq!(u.id.as_deref(), Some(graph.user_id(i).as_str()));
    }
    assert_eq!(graph.requests(), 5); // 10 + 10 + 10 + 10 + 5
    let log = graph.request_log();
    assert!(log
        .iter()
        .all(|(m, p, s)| m == "GET" && p == "/v1.0/users" && *s == 200));

    // As a stream, with $top.
    let messages: Vec<Value> = g
        .paged::<Value>("me/messages?$top=20")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(messages.len(), 45);
    assert_eq!(messages[44]["subject"], "Message 44");
    assert_eq!(graph.requests(), 5 + 3);

    // The guard.
    assert_eq!(
        g.collect_all::<Value>("users", 44).await,
        Err(DownstreamError::TooManyItems { max_items: 44 })
    );
    assert_eq!(g.collect_all::<Value>("users", 45).await.unwrap().len(), 45);

    // One item by id, and a 404.
    let u: GraphUser = g.get(&format!("users/{}", graph.user_id(3))).await.unwrap();
    assert_eq!(u.display_name.as_deref(), Some("Test User 3"));
    let e = g.get_json("users/nobody").await.unwrap_err();
    assert!(
        matches!(&e, DownstreamError::Api { status: 404, code, .. } if code == "Request_ResourceNotFound"),
        "{e:?}"
    );
    assert_eq!(e.status(), 404);

    graph.set_collection_size(0);
    assert!(g.collect_all::<Value>("users", 1).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_page_error_ends_the_stream() {
    let graph = graph().await;
    let g = client(&graph, token("User.Read")).with_retry(RetryPolicy::none());
    let mut pages = g.paged::<Value>("users");
    for _ in 0..10 {
        assert!(pages.try_next().await.unwrap().is_some());
    }
    graph.inject_status(1, 500);
    let e = pages.try_next().await.unwrap_err();
    assert!(
        matches!(e, DownstreamError::Api { status: 500, .. }),
        "{e:?}"
    );
    assert!(pages.try_next().await.unwrap().is_none());
}

/// A foreign `@odata.nextLink` is refused and the other origin never sees the token.
#[tokio::test]
async fn foreign_next_link_is_refused() {
    let other_hits = Arc::new(AtomicUsize::new(0));
    let hits = Arc::clone(&other_hits);
    let other = serve(Router::new().fallback(move || {
        let hits = Arc::clone(&hits);
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            Json(json!({"value": [9]}))
        }
    }))
    .await;
    let api = serve(Router::new().route(
        "/api/items",
        get(move || async move {
            Json(json!({
                "value": [1, 2],
                "@odata.nextLink": format!("http://{other}/api/items?page=2"),
            }))
        }),
    ))
    .await;
    let c = DownstreamClient::new(http(), &format!("http://{api}/api"), token("x")).unwrap();
    let mut pages = c.paged::<u32>("items");
    assert_eq!(pages.try_next().await.unwrap(), Some(1));
    assert_eq!(pages.try_next().await.unwrap(), Some(2));
    assert_eq!(pages.try_next().await, Err(DownstreamError::ForeignUrl));
    assert_eq!(
        c.collect_all::<u32>("items", 10).await,
        Err(DownstreamError::ForeignUrl)
    );
    // Nor any other call or request builder.
    let foreign = format!("http://{other}/api/items");
    assert_eq!(c.get_json(&foreign).await, Err(DownstreamError::ForeignUrl));
    assert!(matches!(
        c.request(reqwest::Method::GET, &foreign),
        Err(DownstreamError::ForeignUrl)
    ));
    assert!(matches!(
        c.batch(vec![BatchRequest::get(foreign.clone())]).await,
        Err(DownstreamError::ForeignUrl)
    ));
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
    assert_eq!(
        DownstreamError::ForeignUrl.status(),
        http::StatusCode::INTERNAL_SERVER_ERROR
    );
    // The same origin is fine.
    let same: Value = c.get(&format!("http://{api}/api/items")).await.unwrap();
    assert_eq!(same["value"], json!([1, 2]));
}

// ---------------------------------------------------------------- throttling

#[tokio::test]
async fn throttling_is_retried_after_retry_after() {
    let graph = graph().await;
    let g = client(&graph, token("User.Read"));
    graph.inject_throttle(2, Some(1));
    let started = Instant::now();
    g.me().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(statuses(&graph), [429, 429, 200]);

    // Without Retry-After: the backoff (fast).
    graph.inject_status(2, 503);
    graph.inject_status(1, 504);
    let started = Instant::now();
    g.me().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(statuses(&graph)[3..], [504, 200]);
}

#[tokio::test]
async fn throttling_forever_gives_up_within_the_budget() {
    let graph = graph().await;
    let policy = RetryPolicy {
        max_retries: 10,
        max_wait: Duration::from_secs(10),
        budget: Duration::from_millis(2500),
    };
    let g = client(&graph, token("User.Read")).with_retry(policy);
    graph.inject_throttle(1000, Some(1));
    let started = Instant::now();
    let e = g.me().await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        e,
        DownstreamError::Throttled {
            retry_after: Some(Duration::from_secs(1))
        }
    );
    assert_eq!(e.status(), 503);
    assert!(elapsed <= Duration::from_millis(2500), "{elapsed:?}");
    assert_eq!(graph.requests(), 3, "{:?}", graph.request_log());

    // max_retries bounds the attempts.
    let g = client(&graph, token("User.Read")).with_retry(RetryPolicy {
        max_retries: 1,
        ..RetryPolicy::default()
    });
    graph.inject_throttle(1000, Some(0));
    assert!(matches!(
        g.me().await,
        Err(DownstreamError::Throttled { .. })
    ));
    assert_eq!(graph.requests(), 3 + 2);

    // A Retry-After beyond max_wait: give up at once, and relay it.
    graph.inject_throttle(1, Some(60));
    let started = Instant::now();
    let e = g.me().await.unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(60)));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(graph.requests(), 5 + 1);

    // Other errors are not retried.
    graph.inject_throttle(0, None);
    graph.inject_status(1, 500);
    let e = g.me().await.unwrap_err();
    assert!(
        matches!(&e, DownstreamError::Api { status: 500, code, .. } if code == "generalException"),
        "{e:?}"
    );
    assert_eq!(e.status(), 502);
    assert_eq!(graph.requests(), 6 + 1);
}

#[tokio::test]
async fn claims_challenge_is_parsed() {
    let graph = graph().await;
    let g = client(&graph, token("User.Read"));
    graph.inject_claims_challenge(1, CLAIMS);
    let e = g.me().await.unwrap_err();
    assert_eq!(
        e,
        DownstreamError::ClaimsChallenge {
            claims: CLAIMS.into(),
            authorization_uri: "https://login.microsoftonline.com/common/oauth2/authorize".into(),
        }
    );
    assert_eq!(e.claims(), Some(CLAIMS));
    assert_eq!(e.status(), 401);
    assert_eq!(graph.requests(), 1);
    // Next time it is gone.
    g.me().await.unwrap();
}

// ---------------------------------------------------------------- batch

fn mixed_requests(graph: &GraphStandIn, n: usize) -> Vec<BatchRequest> {
    (0..n)
        .map(|i| match i % 3 {
            0 => BatchRequest::get(format!("/users/{}", graph.user_id(i))),
            1 => BatchRequest::get("/me"),
            _ => BatchRequest::get(format!("me/messages?$top={}", i % 7 + 1)),
        })
        .collect()
}

fn check_mixed(graph: &GraphStandIn, answers: &[axum_obo::BatchResponse]) {
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a.status, 200, "{i}: {a:?}");
        let body: Value = a.json().unwrap();
        match i % 3 {
            0 => assert_eq!(body["id"], graph.user_id(i), "{i}"),
            1 => assert_eq!(body["id"], OID, "{i}"),
            _ => assert_eq!(body["value"].as_array().unwrap().len(), i % 7 + 1, "{i}"),
        }
    }
}

#[tokio::test]
async fn batch_of_45_is_three_posts_in_order() {
    let graph = graph().await;
    let g = client(&graph, token("User.Read"));
    let answers = g.batch(mixed_requests(&graph, 45)).await.unwrap();
    assert_eq!(answers.len(), 45);
    check_mixed(&graph, &answers);
    let log = graph.request_log();
    assert_eq!(log.len(), 3);
    assert!(log
        .iter()
        .all(|(m, p, s)| m == "POST" && p == "/v1.0/$batch" && *s == 200));
    assert!(g.batch(Vec::new()).await.unwrap().is_empty());
    assert_eq!(graph.requests(), 3);
}

#[tokio::test]
async fn throttled_batch_items_are_retried_in_a_later_batch() {
    let graph = graph().await;
    let g = client(&graph, token("User.Read"));
    graph.throttle_batch_items(3); // the first three items of the first chunk
    let started = Instant::now();
    let answers = g.batch(mixed_requests(&graph, 45)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    check_mixed(&graph, &answers);
    assert_eq!(graph.requests(), 4, "{:?}", graph.request_log());

    // Still throttled when the policy gives up: returned as answered.
    let g = g.with_retry(RetryPolicy {
        max_retries: 1,
        ..RetryPolicy::default()
    });
    graph.throttle_batch_items(1000);
    let answers = g.batch(mixed_requests(&graph, 5)).await.unwrap();
    assert_eq!(graph.requests(), 4 + 2);
    for a in &answers {
        assert_eq!(a.status, 429);
        assert_eq!(a.header("retry-after"), Some("1"));
        assert_eq!(
            a.error(),
            Some(DownstreamError::Throttled {
                retry_after: Some(Duration::from_secs(1))
            })
        );
    }
    graph.throttle_batch_items(0);

    // Item errors read like direct ones; a failing $batch fails the call.
    let answers = g
        .batch(vec![
            BatchRequest::get("/users/nobody"),
            BatchRequest::patch("/me", json!({"officeLocation": "x"})),
            BatchRequest::get("/nothing-here"),
        ])
        .await
        .unwrap();
    assert!(matches!(
        answers[0].json::<Value>(),
        Err(DownstreamError::Api { status: 404, .. })
    ));
    assert!(matches!(
        answers[1].error(),
        Some(DownstreamError::Api { status: 403, .. })
    ));
    assert!(matches!(
        answers[2].error(),
        Some(DownstreamError::Api { status: 400, .. })
    ));
    graph.inject_claims_challenge(1, CLAIMS);
    assert_eq!(
        g.batch(mixed_requests(&graph, 2))
            .await
            .unwrap_err()
            .claims(),
        Some(CLAIMS)
    );
}

#[tokio::test]
async fn stand_in_batch_limits() {
    let graph = graph().await;
    let t = token("User.Read");
    let post = |body: Value| {
        http()
            .post(format!("{}/v1.0/$batch", graph.url()))
            .bearer_auth(t.expose())
            .json(&body)
            .send()
    };
    let items: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/me"}))
        .collect();
    let r = post(json!({ "requests": items })).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BadRequest");
    let r = post(json!({"requests": [
        {"id": "a", "method": "GET", "url": "/me"},
        {"id": "a", "method": "GET", "url": "/me"},
    ]}))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    // Answers come back in another order than asked.
    let r = post(json!({"requests": [
        {"id": "1", "method": "GET", "url": "/me"},
        {"id": "2", "method": "GET", "url": "/users?$top=1"},
    ]}))
    .await
    .unwrap();
    let body: Value = r.json().await.unwrap();
    let ids: Vec<&str> = body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2", "1"]);
}

// ---------------------------------------------------------------- wire details

#[derive(Default)]
struct Seen {
    headers: Vec<HeaderMap>,
}

/// Answers 429 (`Retry-After: 0`) once, then 200; records the request headers.
async fn recording_server() -> (SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = Arc::clone(&seen);
    let addr = serve(Router::new().fallback(move |headers: HeaderMap| {
        let s = Arc::clone(&s);
        async move {
            let mut seen = s.lock().unwrap();
            seen.headers.push(headers);
            if seen.headers.len() == 1 {
                (
                    http::StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "0")],
                    Json(json!({})),
                )
            } else {
                (
                    http::StatusCode::OK,
                    [("x-ok", "1")],
                    Json(json!({"ok": true})),
                )
            }
        }
    }))
    .await;
    (addr, seen)
}

#[tokio::test]
async fn requests_carry_the_token_and_a_client_request_id() {
    let (addr, recorded) = recording_server().await;
    let t = token("x");
    let c = DownstreamClient::new(
        http(),
        &format!("http://localhost:{}/", addr.port()),
        t.clone(),
    )
    .unwrap();
    let v: Value = c.post("things", &json!({"a": 1})).await.unwrap();
    assert_eq!(v["ok"], true);
    let id = |h: &HeaderMap| h["client-request-id"].to_str().unwrap().to_owned();
    let headers = recorded.lock().unwrap().headers.clone();
    assert_eq!(headers.len(), 2);
    assert!(uuid::Uuid::parse_str(&id(&headers[0])).is_ok());
    // One id per call, kept across its retries.
    assert_eq!(id(&headers[0]), id(&headers[1]));
    for h in &headers {
        assert_eq!(
            h["authorization"].to_str().unwrap(),
            format!("Bearer {}", t.expose())
        );
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["accept"], "application/json");
    }
    // Another call, another id.
    let _: Value = c.get("again").await.unwrap();
    let third = id(&recorded.lock().unwrap().headers[2]);
    assert_ne!(third, id(&headers[0]));
}

#[tokio::test]
async fn timeouts_and_transport_errors() {
    let slow = serve(Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }))
    .await;
    let c = DownstreamClient::new(http(), &format!("http://{slow}"), token("x"))
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(c.get_json("x").await, Err(DownstreamError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(DownstreamError::Timeout.status(), 504);

    // A closed port.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let secret = BearerToken::new("secret-token-value");
    let c = DownstreamClient::new(http(), &format!("http://{closed}/base"), secret).unwrap();
    let e = c.get_json("path?sig=secret-query").await.unwrap_err();
    let DownstreamError::Transport(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(!msg.contains("secret"), "{msg}");
    assert!(!msg.contains("127.0.0.1"), "{msg}");
    assert_eq!(e.status(), 502);

    // Not JSON.
    let html = serve(Router::new().fallback(|| async { "<html>hi</html>" })).await;
    let c = DownstreamClient::new(http(), &format!("http://{html}"), token("x")).unwrap();
    assert!(matches!(
        c.get_json("x").await,
        Err(DownstreamError::Decode(_))
    ));
}

#[test]
fn futures_and_streams_are_send() {
    fn send<T: Send>(_: T) {}
    let c = DownstreamClient::new(http(), "https://graph.microsoft.com/v1.0", token("x")).unwrap();
    send(c.get::<Value>("me"));
    send(c.post::<_, Value>("me", &json!({})));
    send(c.batch(Vec::new()));
    send(c.paged::<Value>("users"));
    send(c.collect_all::<Value>("users", 1));
    let g = GraphClient::new(http(), "https://graph.microsoft.com", token("x")).unwrap();
    send(g.me());
}

// ---------------------------------------------------------------- paging loops and caps

/// An API whose pages are scripted by `page(path_and_query)`; counts the requests.
async fn paging_server(
    page: impl Fn(SocketAddr, &str) -> Value + Clone + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    let addr_cell = Arc::new(OnceLock::<SocketAddr>::new());
    let cell = Arc::clone(&addr_cell);
    let addr = serve(Router::new().fallback(move |uri: http::Uri| {
        let (h, cell, page) = (Arc::clone(&h), Arc::clone(&cell), page.clone());
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            let pq = uri.path_and_query().map_or("", |p| p.as_str()).to_owned();
            Json(page(*cell.get().unwrap(), &pq))
        }
    }))
    .await;
    addr_cell.set(addr).unwrap();
    (addr, hits)
}

/// `A → B → A` with empty pages used to loop forever, sending the token each time.
#[tokio::test]
async fn a_next_link_cycle_ends_the_stream() {
    let (addr, hits) = paging_server(|addr, pq| match pq {
        "/api/a" => json!({"value": [], "@odata.nextLink": format!("http://{addr}/api/b")}),
        // The same page as A, spelled differently.
        _ => json!({"value": [], "@odata.nextLink": format!("HTTP://{addr}/api/x/../a#again")}),
    })
    .await;
    let c = DownstreamClient::new(http(), &format!("http://{addr}/api"), token("x")).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(10), c.collect_all::<Value>("a", 10))
        .await
        .expect("the stream ends instead of looping");
    assert_eq!(result, Err(DownstreamError::PagingLoop));
    assert_eq!(hits.load(Ordering::SeqCst), 2, "A and B, once each");
    assert_eq!(DownstreamError::PagingLoop.status(), 502);

    // A direct self-link, with items: they come first, then the error, then the end.
    let (addr, hits) = paging_server(|addr, _| {
        json!({"value": [1, 2], "@odata.nextLink": format!("http://{addr}/api/items?page=1")})
    })
    .await;
    let c = DownstreamClient::new(http(), &format!("http://{addr}/api"), token("x")).unwrap();
    let mut pages = c.paged::<u32>("items?page=1");
    assert_eq!(pages.try_next().await.unwrap(), Some(1));
    assert_eq!(pages.try_next().await.unwrap(), Some(2));
    assert_eq!(pages.try_next().await, Err(DownstreamError::PagingLoop));
    assert_eq!(pages.try_next().await, Ok(None));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// A collection with an endless supply of distinct, empty pages stops at the cap.
#[tokio::test]
async fn the_page_cap_bounds_the_requests() {
    let (addr, hits) = paging_server(|addr, pq| {
        let n: u64 = pq
            .rsplit('=')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        json!({"value": [n], "@odata.nextLink": format!("http://{addr}/api/items?page={}", n + 1)})
    })
    .await;
    let c = DownstreamClient::new(http(), &format!("http://{addr}/api"), token("x"))
        .unwrap()
        .with_max_pages(5);
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        c.collect_all::<u64>("items?page=0", usize::MAX),
    )
    .await
    .expect("the stream ends");
    assert_eq!(result, Err(DownstreamError::TooManyPages { max_pages: 5 }));
    assert_eq!(hits.load(Ordering::SeqCst), 5);
    // The items of the pages within the cap were yielded.
    let items: Vec<Result<u64, DownstreamError>> =
        futures_util::StreamExt::collect(c.paged::<u64>("items?page=0")).await;
    assert_eq!(items.len(), 6);
    assert_eq!(items[4], Ok(4));
    assert_eq!(
        items[5],
        Err(DownstreamError::TooManyPages { max_pages: 5 })
    );
    assert_eq!(hits.load(Ordering::SeqCst), 10);
    assert_eq!(items[5].clone().unwrap_err().status(), 502);

    // The default is documented and sane; a collection within the cap is complete.
    let c = DownstreamClient::new(http(), &format!("http://{addr}/api"), token("x")).unwrap();
    assert_eq!(c.max_pages(), axum_obo::DEFAULT_MAX_PAGES);
    assert_eq!(axum_obo::DEFAULT_MAX_PAGES, 1000);
    let graph = graph().await;
    let g = client(&graph, token("User.Read")).with_max_pages(5);
    assert_eq!(
        g.collect_all::<Value>("users", 100).await.unwrap().len(),
        45
    );
    let g = client(&graph, token("User.Read")).with_max_pages(4);
    assert_eq!(
        g.collect_all::<Value>("users", 100).await,
        Err(DownstreamError::TooManyPages { max_pages: 4 })
    );
}

// ---------------------------------------------------------------- what the caller sees

const ECHOED_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl";

/// Answers every request with `status` and `body`.
async fn erring_server(status: u16, body: Value) -> SocketAddr {
    serve(Router::new().fallback(move || {
        let body = body.clone();
        async move { (http::StatusCode::from_u16(status).unwrap(), Json(body)) }
    }))
    .await
}

/// Everything a response shows its receiver: status line, headers and body.
async fn shown(resp: axum::response::Response) -> String {
    let mut text = format!("{:?}\n", resp.status());
    for (name, value) in resp.headers() {
        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("<bin>")));
    }
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    text.push_str(&String::from_utf8_lossy(&body));
    text
}

fn body_of(text: &str) -> Value {
    serde_json::from_str(text.rsplit('\n').next().unwrap()).unwrap()
}

/// A downstream's error message may echo the request, even the token: the caller of
/// our API never sees it, in the body or the headers, nor does the log.
#[tokio::test]
async fn downstream_error_text_never_reaches_the_caller() {
    use axum::response::IntoResponse as _;
    let (logs, _guard) = common::capture_logs();
    let message = format!(
        "Token {ECHOED_TOKEN} is not valid for GET /v1.0/users/alice@contoso.example?secret=hunter2"
    );
    let leaks = ["eyJ", "alice", "hunter2", "secret", "not valid"];
    let cases = [
        // An unsafe code: spaces, quotes, a token.
        (
            400,
            json!({"error": {"code": format!("Bad \"code\" {ECHOED_TOKEN}"), "message": message}}),
            502,
            "bad_gateway",
        ),
        (
            400,
            json!({"error": {"code": ECHOED_TOKEN, "message": message}}),
            502,
            "bad_gateway",
        ),
        (
            500,
            json!({"error": {"code": "generalException", "message": message}}),
            502,
            "bad_gateway",
        ),
        (
            404,
            json!({"error": {"code": "Request_ResourceNotFound", "message": message}}),
            404,
            "not_found",
        ),
        (
            403,
            json!({"error": {"code": "Authorization_RequestDenied", "message": message}}),
            403,
            "forbidden",
        ),
        (
            401,
            json!({"error": {"code": "InvalidAuthenticationToken", "message": message}}),
            502,
            "bad_gateway",
        ),
        (
            409,
            json!({"error": "conflict", "error_description": message}),
            502,
            "bad_gateway",
        ),
    ];
    for (status, body, expect, error) in cases {
        let addr = erring_server(status, body.clone()).await;
        let c = DownstreamClient::new(http(), &format!("http://{addr}/v1.0"), token("x"))
            .unwrap()
            .with_retry(RetryPolicy::none());
        let e = c
            .get_json("users/alice@contoso.example?secret=hunter2")
            .await
            .unwrap_err();
        for resp in [
            e.clone().into_response(),
            axum_obo::AuthRejection::from(e.clone()).into_response(),
        ] {
            assert_eq!(resp.status().as_u16(), expect, "{status} {e:?}");
            assert_eq!(resp.headers()["cache-control"], "no-store");
            let text = shown(resp).await;
            for leak in leaks {
                assert!(!text.contains(leak), "{status}: `{leak}` shown:\n{text}");
            }
            let json = body_of(&text);
            assert_eq!(json["error"], error, "{text}");
            let description = json["error_description"].as_str().unwrap();
            // A plain code may be named; an unsafe one never.
            match body["error"]["code"].as_str() {
                Some(code) if status != 401 && !code.contains(' ') && !code.contains("eyJ") => {
                    assert!(description.contains(code), "{description}")
                }
                _ => assert!(!description.contains("Bad"), "{description}"),
            }
        }
    }
    // Transport causes stay in the log too.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = DownstreamClient::new(http(), &format!("http://{closed}"), token("x")).unwrap();
    let e = c.get_json("x").await.unwrap_err();
    assert!(matches!(e, DownstreamError::Transport(_)), "{e:?}");
    let text = shown(e.into_response()).await;
    assert!(text.starts_with("502"), "{text}");
    assert_eq!(
        body_of(&text)["error_description"],
        "the downstream API could not be reached"
    );
    // Local errors: a generic 500.
    let e = c.get_json("a/../../x").await.unwrap_err();
    let text = shown(e.into_response()).await;
    assert!(text.starts_with("500"), "{text}");
    assert_eq!(
        body_of(&text),
        json!({"error": "server_error", "error_description": "the server could not complete the request"})
    );
    // The details were logged, without the token.
    let logged = logs.text();
    assert!(logged.contains("downstream call failed"), "{logged}");
    assert!(logged.contains("[redacted]"), "{logged}");
    assert!(!logged.contains("eyJ"), "{logged}");
}

/// The response table, including the relayed claims challenge and `Retry-After`.
#[tokio::test]
async fn downstream_errors_answer_as_documented() {
    use axum::response::IntoResponse as _;
    let graph = graph().await;
    let g = client(&graph, token("User.Read")).with_authority("https://login.microsoftonline.us");
    graph.inject_claims_challenge(1, CLAIMS);
    let e = g.me().await.unwrap_err();
    assert_eq!(
        e.authorization_uri(),
        Some("https://login.microsoftonline.us/common/oauth2/authorize")
    );
    let resp = e.into_response();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let b64 = base64::engine::general_purpose::STANDARD.encode(CLAIMS);
    assert_eq!(
        challenge,
        format!("Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.us/common/oauth2/authorize\", error=\"insufficient_claims\", claims=\"{b64}\"")
    );
    assert_eq!(body_of(&shown(resp).await)["error"], "insufficient_claims");

    let g = g.with_retry(RetryPolicy::none());
    graph.inject_throttle(1, Some(7));
    let resp = g.me().await.unwrap_err().into_response();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "7");
    let resp = DownstreamError::Timeout.into_response();
    assert_eq!(resp.status(), 504);
    assert_eq!(body_of(&shown(resp).await)["error"], "gateway_timeout");
    for local in [
        DownstreamError::ForeignUrl,
        DownstreamError::InvalidRequest("detail".into()),
        DownstreamError::TooManyItems { max_items: 3 },
    ] {
        let text = shown(local.into_response()).await;
        assert!(text.starts_with("500"), "{text}");
        assert!(!text.contains("detail") && !text.contains('3'), "{text}");
    }
}

// ---------------------------------------------------------------- body cap

/// A raw HTTP/1.1 server: answers every connection with `head` and then `body`
/// bytes, repeated `repeat` times (endless with `usize::MAX`), counting bytes sent.
async fn raw_server(
    head: &'static str,
    chunk: usize,
    repeat: usize,
) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let data = vec![b'a'; chunk];
                for _ in 0..repeat {
                    if socket.write_all(&data).await.is_err() {
                        return;
                    }
                    s.fetch_add(chunk, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    (addr, sent)
}

#[tokio::test]
async fn response_bodies_are_capped_while_they_stream() {
    use axum::response::IntoResponse as _;
    let capped = |addr: SocketAddr| {
        DownstreamClient::new(http(), &format!("http://{addr}"), token("x"))
            .unwrap()
            .with_max_body_bytes(1024)
            .with_timeout(Duration::from_secs(5))
            .with_retry(RetryPolicy::none())
    };
    let too_large = DownstreamError::BodyTooLarge { max_bytes: 1024 };

    // An honest Content-Length over the cap: refused before reading.
    let big = serve(Router::new().fallback(|| async { "x".repeat(2048) })).await;
    assert_eq!(capped(big).get_json("x").await, Err(too_large.clone()));
    // Error bodies too.
    let big_error = serve(
        Router::new().fallback(|| async { (http::StatusCode::BAD_REQUEST, "x".repeat(2048)) }),
    )
    .await;
    assert_eq!(
        capped(big_error).get_json("x").await,
        Err(too_large.clone())
    );
    // Exactly the cap is fine.
    let fits =
        serve(Router::new().fallback(|| async { format!("\"{}\"", "x".repeat(1022)) })).await;
    assert_eq!(
        capped(fits)
            .get_json("x")
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .len(),
        1022
    );

    // Chunked, endless: reading stops soon after the cap instead of running into the
    // timeout (or out of memory).
    let chunked = serve(Router::new().fallback(|| async {
        let chunks = futures_util::stream::repeat_with(|| {
            Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 512]))
        });
        axum::body::Body::from_stream(chunks)
    }))
    .await;
    let started = Instant::now();
    assert_eq!(capped(chunked).get_json("x").await, Err(too_large.clone()));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // No Content-Length, the body runs until the connection closes (never): same.
    let (until_close, sent) = raw_server(
        "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
        512,
        usize::MAX,
    )
    .await;
    let started = Instant::now();
    assert_eq!(
        capped(until_close).get_json("x").await,
        Err(too_large.clone())
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The server could only push what the socket buffers held before we hung up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pushed = sent.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sent.load(Ordering::SeqCst),
        pushed,
        "the client stopped reading"
    );

    // A lying Content-Length (10 GB, a few bytes sent): refused at once.
    let (liar, _) = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-length: 10000000000\r\n\r\n",
        16,
        1,
    )
    .await;
    let started = Instant::now();
    assert_eq!(capped(liar).get_json("x").await, Err(too_large.clone()));
    assert!(started.elapsed() < Duration::from_secs(3));

    assert_eq!(too_large.status(), 502);
    let text = shown(too_large.into_response()).await;
    assert!(text.starts_with("502"), "{text}");
}
