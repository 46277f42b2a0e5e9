//! The metrics (feature `metrics`) end to end against the stand-ins: each family
//! moves as the requests behind it happen, refusals carry their reason, and no
//! label ever carries a token, an id, a UPN, a session key or a secret.
//!
//! Each test records into its own thread-local recorder (see
//! `common::recorded`), on tokio's current-thread runtime.

mod common;

use std::time::{Duration, SystemTime};

use axum::routing::{get, post};
use axum::Router;
use axum_obo::acquire::Scopes;
use axum_obo::admission::{Admission, Refusal};
use axum_obo::agent::{AgentObo, AgentUser};
use axum_obo::clock::ManualClock;
use axum_obo::credential::ManagedIdentity;
use axum_obo::downstream::DownstreamClient;
use axum_obo::metrics as m;
use axum_obo::secret::BearerToken;
use axum_obo::{AuthRejection, GraphUserRead, OboLayer, OboToken, Principal};
use axum_obo_testing::{
    encode_unsigned, EntraStandIn, GraphFault, Harness, ManagedIdentityStandIn, TokenFault,
};
use common::recorded::{Recorded, Recorder};
use common::*;
use serde_json::json;

axum_obo::scope!(
    /// Microsoft Graph's app-only default scope.
    GraphDefault => ["https://graph.microsoft.com/.default"]
);

const OTHER_TENANT: &str = "0b2f4d6e-1111-4222-8333-944455566677";
/// Two hours: past any downstream token's lifetime.
const LATER: Duration = Duration::from_secs(2 * 3600);

/// The validations of a snapshot, as (outcome, reason) → count.
fn validations(r: &Recorded) -> Vec<(String, String, u64)> {
    r.counters(m::VALIDATIONS_TOTAL)
        .into_iter()
        .map(|(labels, n)| (labels["outcome"].clone(), labels["reason"].clone(), n))
        .collect()
}

fn refused(reason: &str) -> Vec<(String, String, u64)> {
    vec![("refused".into(), reason.into(), 1)]
}

fn accepted(n: u64) -> Vec<(String, String, u64)> {
    vec![("accepted".into(), "ok".into(), n)]
}

/// `/obo`: an On-Behalf-Of token's length; `/raw`: the token; `/me`: Graph's
/// `/me` with it; `/start`: a session's key; `/whoami`: the caller.
fn obo_app(layer: OboLayer) -> Router {
    Router::new()
        .route(
            "/obo",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().len().to_string() }),
        )
        .route(
            "/raw",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .route(
            "/me",
            get(|t: OboToken<GraphUserRead>| async move {
                Ok::<_, AuthRejection>(t.graph().get_json("me").await?.to_string())
            }),
        )
        .route(
            "/start",
            post(|t: OboToken<GraphUserRead>| async move {
                Ok::<_, AuthRejection>(t.start_session().await?.expose().to_owned())
            }),
        )
        .route(
            "/agent/raw",
            get(|t: AgentObo<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .route("/whoami", get(|p: Principal| async move { p.oid().to_owned() }))
        .layer(layer)
}

/// A token whose signature is another's: its last characters changed.
fn tampered(token: &str) -> String {
    let mut t = token.to_owned();
    let last = t.pop().unwrap();
    t.push(if last == 'A' { 'B' } else { 'A' });
    t
}

#[tokio::test]
async fn validations_count_each_decision_with_its_reason_and_the_cache_hits() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(
        config(&entra)
            .require_user_scopes(["access_as_user"])
            .allow_app_only(false)
            .build()
            .unwrap(),
    );
    let app = app(layer.clone());
    let user = entra.token().sign();

    // A first request: validated in full (a cache miss, the keys fetched).
    assert_eq!(bearer(&app, "/whoami", &user).await.status, 200);
    let r = metrics.take();
    assert_eq!(validations(&r), accepted(1));
    let cache =
        |r: &Recorded, result| r.counter(m::VALIDATED_TOKEN_CACHE_TOTAL, &[("result", result)]);
    assert_eq!((cache(&r, "hit"), cache(&r, "miss")), (0, 1));
    assert_eq!(r.counter(m::KEY_REFRESHES_TOTAL, &[("outcome", "ok")]), 1);

    // Again: the validated-token cache admits it (the fast path).
    for _ in 0..3 {
        assert_eq!(bearer(&app, "/whoami", &user).await.status, 200);
    }
    let r = metrics.take();
    assert_eq!(validations(&r), accepted(3));
    assert_eq!((cache(&r, "hit"), cache(&r, "miss")), (3, 0));

    // Each refusal, with its reason, and nothing else counted as a validation.
    let unsigned = |alg: &str| {
        let t = entra.token();
        let mut header = t.header();
        header["alg"] = json!(alg);
        encode_unsigned(&header, &t.claims(), b"sig")
    };
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("missing", None),
        ("invalid_request", Some(b"Bearer   ".to_vec())),
        ("malformed", Some(b"Bearer not-a-jwt".to_vec())),
        (
            "too_large",
            Some([b"Bearer ".as_slice(), &[b'a'; 70_000]].concat()),
        ),
        (
            "algorithm",
            Some(format!("Bearer {}", unsigned("HS256")).into_bytes()),
        ),
        (
            "expired",
            Some(format!("Bearer {}", entra.token().expired().sign()).into_bytes()),
        ),
        (
            "not_yet_valid",
            Some(format!("Bearer {}", entra.token().not_yet_valid().sign()).into_bytes()),
        ),
        (
            "audience",
            Some(
                format!(
                    "Bearer {}",
                    entra.token().audience("api://another-api").sign()
                )
                .into_bytes(),
            ),
        ),
        (
            "issuer",
            Some(
                format!(
                    "Bearer {}",
                    entra.token().issuer("https://evil.example/").sign()
                )
                .into_bytes(),
            ),
        ),
        (
            "tenant",
            Some(format!("Bearer {}", entra.token().tenant(OTHER_TENANT).sign()).into_bytes()),
        ),
        (
            "signature",
            Some(format!("Bearer {}", tampered(&entra.token().sign())).into_bytes()),
        ),
        (
            "unknown_key",
            Some(
                format!(
                    "Bearer {}",
                    entra.token().kid(&entra.unpublished_key()).sign()
                )
                .into_bytes(),
            ),
        ),
        (
            "id_token",
            Some(format!("Bearer {}", entra.token().id_token().sign()).into_bytes()),
        ),
        (
            "insufficient_scope",
            Some(format!("Bearer {}", entra.token().scopes(&["other"]).sign()).into_bytes()),
        ),
        (
            "app_only",
            Some(format!("Bearer {}", entra.token().app_only().sign()).into_bytes()),
        ),
    ];
    for (reason, auth) in cases {
        let reply = call(&app, "/whoami", auth.as_deref()).await;
        assert!(reply.status.is_client_error(), "{reason}: {}", reply.status);
        let r = metrics.take();
        assert_eq!(validations(&r), refused(reason), "{reason}");
    }

    // The app's admission check.
    let closed = layer
        .clone()
        .admit_with(Admission::every_request(|_| async {
            Err(Refusal::forbidden("no subscription"))
        }));
    let reply = bearer(&app_with(closed), "/whoami", &user).await;
    assert_eq!(reply.status, 403);
    let r = metrics.take();
    assert_eq!(validations(&r), refused("admission"));
    // Validated before: found in the cache, then refused by the app.
    assert_eq!((cache(&r, "hit"), cache(&r, "miss")), (1, 0));

    // An anonymous request on a layer that allows them is no validation.
    let open = obo_app(layer.allow_anonymous(true));
    let _ = call(&open, "/whoami", None).await;
    assert_eq!(validations(&metrics.take()), vec![]);
}

fn app_with(layer: OboLayer) -> Router {
    app(layer)
}

/// The hot paths' handles bind at the layer's first hit, not when it is built.
#[tokio::test]
async fn a_recorder_installed_after_the_layer_is_built_hears_the_hot_paths() {
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(
        config(&entra)
            .client_secret(entra.client_secret())
            .build()
            .unwrap(),
    );
    let app = obo_app(layer);
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let user = entra.token().sign();
    for _ in 0..3 {
        assert_eq!(bearer(&app, "/obo", &user).await.status, 200);
    }
    let r = metrics.take();
    assert_eq!(validations(&r), accepted(3));
    assert_eq!(
        r.counter(m::VALIDATED_TOKEN_CACHE_TOTAL, &[("result", "hit")]),
        2
    );
    assert_eq!(
        r.counter(m::OBO_CACHE_TOTAL, &[("tier", "l1"), ("result", "hit")]),
        2
    );
}

#[tokio::test]
async fn unavailable_keys_are_a_failed_refresh_and_a_refusal() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    entra.fail_jwks(Some(500));
    let app = app(OboLayer::new(config(&entra).build().unwrap()));
    let reply = bearer(&app, "/whoami", &entra.token().sign()).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let r = metrics.take();
    assert_eq!(validations(&r), refused("keys_unavailable"));
    assert_eq!(
        r.counter(m::KEY_REFRESHES_TOTAL, &[("outcome", "failed")]),
        1
    );
    assert_eq!(r.counter(m::KEY_REFRESHES_TOTAL, &[("outcome", "ok")]), 0);
}

#[tokio::test]
async fn exchanges_their_latency_and_the_obo_cache() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(
        config(&entra)
            .client_secret(entra.client_secret())
            .build()
            .unwrap(),
    );
    let app = obo_app(layer.clone());
    let user = entra.token().sign();

    assert_eq!(bearer(&app, "/obo", &user).await.status, 200);
    let r = metrics.take();
    assert_eq!(
        r.counters(m::EXCHANGES_TOTAL),
        vec![(labels(&[("grant", "obo"), ("outcome", "ok")]), 1)]
    );
    let took = r.histogram(m::TOKEN_ENDPOINT_DURATION_SECONDS, &[("grant", "obo")]);
    assert_eq!(took.len(), 1);
    assert!(took[0] > 0.0 && took[0] < 3.0, "{took:?}");
    let l1 =
        |r: &Recorded, result| r.counter(m::OBO_CACHE_TOTAL, &[("tier", "l1"), ("result", result)]);
    assert_eq!((l1(&r, "hit"), l1(&r, "miss")), (0, 1));
    assert_eq!(r.gauge(m::OBO_CACHE_ENTRIES), Some(1.0));
    let weight = r.gauge(m::OBO_CACHE_WEIGHT_BYTES).unwrap();
    assert!(weight > 500.0, "a token and its bookkeeping: {weight}");
    assert_eq!(r.total(m::TOKEN_ENDPOINT_RETRIES_TOTAL), 0);

    for _ in 0..2 {
        assert_eq!(bearer(&app, "/obo", &user).await.status, 200);
    }
    let r = metrics.take();
    assert_eq!((l1(&r, "hit"), l1(&r, "miss")), (2, 0));
    assert_eq!(r.total(m::EXCHANGES_TOTAL), 0);
    assert!(r
        .histogram(m::TOKEN_ENDPOINT_DURATION_SECONDS, &[("grant", "obo")])
        .is_empty());

    // Reading the usage sets the gauges.
    assert_eq!(layer.cache_usage().await.entries, 1);
    let r = metrics.take();
    assert_eq!(r.gauge(m::OBO_CACHE_ENTRIES), Some(1.0));
    assert_eq!(r.gauge(m::OBO_CACHE_WEIGHT_BYTES), Some(weight));
}

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn entra_refusals_are_outcomes_and_then_negative_cache_hits() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(
        config(&entra)
            .client_secret(entra.client_secret())
            .build()
            .unwrap(),
    ));
    for (fault, outcome) in [
        (TokenFault::InteractionRequired, "interaction_required"),
        (TokenFault::ConsentRequired, "consent_required"),
        (TokenFault::InvalidGrant, "invalid_grant"),
        (TokenFault::InvalidScope, "error"),
    ] {
        entra.inject_token_fault(fault, Some(1));
        let user = entra.token().sign();
        let first = bearer(&app, "/obo", &user).await;
        assert!(!first.status.is_success(), "{outcome}");
        let r = metrics.take();
        assert_eq!(
            r.counters(m::EXCHANGES_TOTAL),
            vec![(labels(&[("grant", "obo"), ("outcome", outcome)]), 1)]
        );
        assert_eq!(r.total(m::NEGATIVE_CACHE_HITS_TOTAL), 0);
        // Asked again with the same token: remembered, when Entra would repeat
        // it; otherwise asked again (and now answered).
        let again = bearer(&app, "/obo", &user).await;
        let r = metrics.take();
        if outcome == "error" {
            assert_eq!(again.status, 200);
            assert_eq!(r.total(m::NEGATIVE_CACHE_HITS_TOTAL), 0);
            assert_eq!(
                r.counter(m::EXCHANGES_TOTAL, &[("grant", "obo"), ("outcome", "ok")]),
                1
            );
        } else {
            assert_eq!(again.status, first.status, "{outcome}");
            assert_eq!(r.total(m::NEGATIVE_CACHE_HITS_TOTAL), 1, "{outcome}");
            assert_eq!(r.total(m::EXCHANGES_TOTAL), 0, "{outcome}");
        }
    }
}

#[tokio::test]
async fn without_a_credential_an_exchange_is_an_error() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(config(&entra).build().unwrap()));
    assert_eq!(
        bearer(&app, "/obo", &entra.token().sign()).await.status,
        500
    );
    let r = metrics.take();
    assert_eq!(
        r.counters(m::EXCHANGES_TOTAL),
        vec![(labels(&[("grant", "obo"), ("outcome", "error")]), 1)]
    );
    assert!(r
        .histogram(m::TOKEN_ENDPOINT_DURATION_SECONDS, &[("grant", "obo")])
        .is_empty());
}

#[tokio::test]
async fn throttling_retries_backoffs_and_unavailability() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(
        config(&entra)
            .client_secret(entra.client_secret())
            .obo_retries(1, Duration::from_secs(10))
            .build()
            .unwrap(),
    ));
    let outcomes = |r: &Recorded| r.counters(m::EXCHANGES_TOTAL);
    let obo = |outcome| vec![(labels(&[("grant", "obo"), ("outcome", outcome)]), 1)];

    // A 429 (a request loop), retried once, throttled again: the user backs off.
    entra.inject_token_fault(
        TokenFault::TooManyRequests {
            retry_after: Some(0),
        },
        Some(2),
    );
    let alice = entra.token().sign();
    assert_eq!(bearer(&app, "/obo", &alice).await.status, 503);
    let r = metrics.take();
    assert_eq!(outcomes(&r), obo("throttled"));
    assert_eq!(
        r.counter(m::TOKEN_ENDPOINT_RETRIES_TOTAL, &[("grant", "obo")]),
        1
    );
    assert_eq!(
        r.histogram(m::TOKEN_ENDPOINT_DURATION_SECONDS, &[("grant", "obo")])
            .len(),
        2
    );
    assert_eq!(
        r.counters(m::BACKOFFS_TOTAL),
        vec![(labels(&[("scope", "user")]), 1)]
    );
    // While it backs off: throttled at once, nothing sent.
    assert_eq!(bearer(&app, "/obo", &alice).await.status, 503);
    let r = metrics.take();
    assert_eq!(outcomes(&r), obo("throttled"));
    assert!(r
        .histogram(m::TOKEN_ENDPOINT_DURATION_SECONDS, &[("grant", "obo")])
        .is_empty());
    assert_eq!(r.total(m::BACKOFFS_TOTAL), 0);

    // The tenant's throttling, seen for two users: the tenant backs off.
    for n in 0..2 {
        entra.inject_token_fault(
            TokenFault::TenantThrottled {
                retry_after: Some(0),
            },
            Some(2),
        );
        assert_eq!(
            bearer(&app, "/obo", &entra.token().sign()).await.status,
            503
        );
        let r = metrics.take();
        assert_eq!(outcomes(&r), obo("throttled"));
        let mut want = vec![(labels(&[("scope", "user")]), 1)];
        if n == 1 {
            want.insert(0, (labels(&[("scope", "tenant")]), 1));
        }
        assert_eq!(r.counters(m::BACKOFFS_TOTAL), want, "user {n}");
    }
}

#[tokio::test]
async fn a_failing_token_endpoint_is_unavailable() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let app = obo_app(OboLayer::new(
        config(&entra)
            .client_secret(entra.client_secret())
            .obo_retries(1, Duration::from_secs(10))
            .build()
            .unwrap(),
    ));
    entra.inject_token_fault(
        TokenFault::ServiceUnavailable {
            retry_after: Some(0),
        },
        Some(2),
    );
    assert_eq!(
        bearer(&app, "/obo", &entra.token().sign()).await.status,
        503
    );
    let r = metrics.take();
    assert_eq!(
        r.counters(m::EXCHANGES_TOTAL),
        vec![(labels(&[("grant", "obo"), ("outcome", "unavailable")]), 1)]
    );
    assert_eq!(
        r.counter(m::TOKEN_ENDPOINT_RETRIES_TOTAL, &[("grant", "obo")]),
        1
    );
    assert_eq!(r.total(m::BACKOFFS_TOTAL), 0, "a 503 is no throttling");
}

#[tokio::test]
async fn client_credentials_and_every_agent_leg_by_grant() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let clock = clock();
    let harness = Harness::start().await;
    let layer = OboLayer::new(harness.config().clock(clock.clone()).build().unwrap());
    let entra = harness.entra();
    let tid = entra.home_tenant();
    let grants = |r: &Recorded| {
        r.counters(m::EXCHANGES_TOTAL)
            .into_iter()
            .map(|(l, n)| {
                assert_eq!(l["outcome"], "ok");
                (l["grant"].clone(), n)
            })
            .collect::<Vec<_>>()
    };
    let pairs = |p: &[(&str, u64)]| {
        p.iter()
            .map(|(g, n)| ((*g).to_owned(), *n))
            .collect::<Vec<_>>()
    };

    let scopes = Scopes::new(["https://graph.microsoft.com/.default"]).unwrap();
    layer.app_token(&scopes, None).await.unwrap();
    assert_eq!(grants(&metrics.take()), pairs(&[("client_credentials", 1)]));

    let agent_id = entra.add_agent_identity();
    let agent = layer.agent(&agent_id).unwrap();
    agent.app_token::<GraphDefault>(&tid).await.unwrap();
    assert_eq!(
        grants(&metrics.take()),
        pairs(&[("agent_app", 1), ("agent_blueprint", 1)])
    );

    let app = Router::new()
        .route(
            "/agent/raw",
            get(|t: AgentObo<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .layer(axum::Extension(agent.clone()))
        .layer(layer.clone());
    let reply = bearer(&app, "/agent/raw", &entra.token().sign()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(grants(&metrics.take()), pairs(&[("agent_obo", 1)]));

    entra.add_agent_user(&agent_id, "helper@contoso.test");
    let user = AgentUser::Upn("helper@contoso.test".into());
    agent.as_user::<GraphUserRead>(&tid, &user).await.unwrap();
    assert_eq!(
        grants(&metrics.take()),
        pairs(&[("agent_instance", 1), ("agent_user", 1)])
    );
    // Later, the agent user's token is refreshed (the refresh grant, its leg too).
    clock.advance(LATER);
    agent.as_user::<GraphUserRead>(&tid, &user).await.unwrap();
    let r = metrics.take();
    assert_eq!(
        r.counter(
            m::EXCHANGES_TOTAL,
            &[("grant", "agent_user"), ("outcome", "ok")]
        ),
        1
    );
    assert_eq!(
        r.histogram(
            m::TOKEN_ENDPOINT_DURATION_SECONDS,
            &[("grant", "agent_user")]
        )
        .len(),
        1
    );
}

#[tokio::test]
async fn managed_identity_calls_are_exchanges_with_their_latency() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let identity = ManagedIdentityStandIn::start(&entra).await;
    entra.add_managed_identity_credential(&identity.system_assigned());
    let app = obo_app(OboLayer::new(
        config(&entra)
            .managed_identity(ManagedIdentity::SystemAssigned)
            .managed_identity_endpoint(identity.endpoint(), identity.identity_header())
            .build()
            .unwrap(),
    ));
    let reply = bearer(&app, "/obo", &entra.token().sign()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let r = metrics.take();
    assert_eq!(
        r.counters(m::EXCHANGES_TOTAL),
        vec![
            (
                labels(&[("grant", "managed_identity"), ("outcome", "ok")]),
                1
            ),
            (labels(&[("grant", "obo"), ("outcome", "ok")]), 1),
        ]
    );
    assert_eq!(
        r.histogram(
            m::TOKEN_ENDPOINT_DURATION_SECONDS,
            &[("grant", "managed_identity")]
        )
        .len(),
        1
    );
}

#[tokio::test]
async fn downstream_calls_by_status_class_retries_and_cae_reexchanges() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let harness = Harness::start().await;
    let app = obo_app(OboLayer::new(
        harness
            .config()
            .client_capabilities(["cp1"])
            .build()
            .unwrap(),
    ));
    let user = harness
        .entra()
        .token()
        .issued_at(SystemTime::now() - Duration::from_secs(300))
        .sign();
    let classes = |r: &Recorded| {
        r.counters(m::DOWNSTREAM_REQUESTS_TOTAL)
            .into_iter()
            .map(|(l, n)| (l["status_class"].clone(), n))
            .collect::<Vec<_>>()
    };
    let pairs = |p: &[(&str, u64)]| {
        p.iter()
            .map(|(g, n)| ((*g).to_owned(), *n))
            .collect::<Vec<_>>()
    };

    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    assert_eq!(classes(&metrics.take()), pairs(&[("2xx", 1)]));

    harness
        .graph()
        .inject_fault(GraphFault::Status(404), Some(1));
    assert_eq!(bearer(&app, "/me", &user).await.status, 404);
    assert_eq!(classes(&metrics.take()), pairs(&[("4xx", 1)]));

    harness
        .graph()
        .inject_fault(GraphFault::Status(500), Some(1));
    assert_eq!(bearer(&app, "/me", &user).await.status, 502);
    let r = metrics.take();
    assert_eq!(classes(&r), pairs(&[("5xx", 1)]));
    assert_eq!(r.total(m::DOWNSTREAM_RETRIES_TOTAL), 0);

    harness.graph().inject_fault(
        GraphFault::TooManyRequests {
            retry_after: Some(0),
        },
        Some(1),
    );
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    let r = metrics.take();
    assert_eq!(classes(&r), pairs(&[("2xx", 1), ("4xx", 1)]));
    assert_eq!(r.total(m::DOWNSTREAM_RETRIES_TOTAL), 1);

    // A claims challenge: one re-exchange, one retry.
    let challenge = r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#;
    harness
        .graph()
        .inject_fault(GraphFault::ClaimsChallenge(challenge.into()), Some(1));
    assert_eq!(bearer(&app, "/me", &user).await.status, 200);
    let r = metrics.take();
    assert_eq!(classes(&r), pairs(&[("2xx", 1), ("4xx", 1)]));
    assert_eq!(
        r.counters(m::CAE_REEXCHANGES_TOTAL),
        vec![(labels(&[("outcome", "ok")]), 1)]
    );
    assert_eq!(
        r.counter(m::EXCHANGES_TOTAL, &[("grant", "obo"), ("outcome", "ok")]),
        1
    );

    // Entra needs the user: the re-exchange fails, the challenge is relayed.
    harness
        .graph()
        .inject_fault(GraphFault::ClaimsChallenge(challenge.into()), Some(1));
    harness
        .entra()
        .inject_token_fault(TokenFault::InteractionRequired, Some(1));
    assert_eq!(bearer(&app, "/me", &user).await.status, 401);
    let r = metrics.take();
    assert_eq!(
        r.counters(m::CAE_REEXCHANGES_TOTAL),
        vec![(labels(&[("outcome", "failed")]), 1)]
    );

    // No answer at all.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = DownstreamClient::new(
        reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}"),
        BearerToken::new("t"),
    )
    .unwrap();
    assert!(client.get_json("/x").await.is_err());
    assert_eq!(classes(&metrics.take()), pairs(&[("error", 1)]));
}

/// A layer on `clock` against `harness`, with the session routes.
fn session_app(harness: &Harness, clock: &ManualClock, idle: Duration) -> (OboLayer, Router) {
    let layer = OboLayer::new(
        harness
            .config()
            .clock(clock.clone())
            .client_capabilities(["cp1"])
            .session_idle_timeout(idle)
            .build()
            .unwrap(),
    );
    (layer.clone(), obo_app(layer))
}

async fn start_session(app: &Router, token: &str) -> axum_obo::session::SessionKey {
    let req = http::Request::post("/start")
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = read(tower::ServiceExt::oneshot(app.clone(), req).await.unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.body.parse().unwrap()
}

#[tokio::test]
async fn sessions_started_refreshed_and_ended_by_reason() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let harness = Harness::start().await;
    let clock = clock();
    let (layer, app) = session_app(&harness, &clock, Duration::from_secs(3 * 3600));
    let sessions = layer.sessions();
    let ended = |r: &Recorded| {
        r.counters(m::SESSIONS_ENDED_TOTAL)
            .into_iter()
            .map(|(l, n)| (l["reason"].clone(), n))
            .collect::<Vec<_>>()
    };

    let key = start_session(&app, &harness.entra().token().sign()).await;
    let r = metrics.take();
    assert_eq!(r.total(m::SESSIONS_STARTED_TOTAL), 1);
    // The route's `OboToken`, then the session's own exchange (with offline_access).
    assert_eq!(
        r.counter(m::EXCHANGES_TOTAL, &[("grant", "obo"), ("outcome", "ok")]),
        2
    );

    clock.advance(LATER);
    sessions.token::<GraphUserRead>(&key).await.unwrap();
    let r = metrics.take();
    assert_eq!(
        r.counters(m::SESSION_REFRESHES_TOTAL),
        vec![(labels(&[("outcome", "ok")]), 1)]
    );
    assert_eq!(
        r.counters(m::EXCHANGES_TOTAL),
        vec![(labels(&[("grant", "refresh_token"), ("outcome", "ok")]), 1)]
    );
    assert_eq!(
        r.histogram(
            m::TOKEN_ENDPOINT_DURATION_SECONDS,
            &[("grant", "refresh_token")]
        )
        .len(),
        1
    );

    sessions.end(&key).await.unwrap();
    assert_eq!(ended(&metrics.take()), vec![("ended".to_owned(), 1)]);
    // Ending it again, or a key that never was a session, ends nothing: not
    // counted (a logout clicked twice, or a flood of made-up keys, would else
    // count sessions that never ended).
    sessions.end(&key).await.unwrap();
    let unknown: axum_obo::session::SessionKey = "A".repeat(key.expose().len()).parse().unwrap();
    sessions.end(&unknown).await.unwrap();
    assert_eq!(ended(&metrics.take()), vec![]);

    // Revoked: Entra refuses the refresh token.
    let real_now = || {
        let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
        since.unwrap().as_secs() as i64
    };
    clock.set(real_now());
    let user = harness.entra().token();
    let oid = user.claims()["oid"].as_str().unwrap().to_owned();
    let key = start_session(&app, &user.sign()).await;
    harness.entra().revoke_refresh_tokens(&oid);
    clock.advance(LATER);
    assert!(sessions.token::<GraphUserRead>(&key).await.is_err());
    let r = metrics.take();
    assert_eq!(
        r.counters(m::SESSION_REFRESHES_TOTAL),
        vec![(labels(&[("outcome", "failed")]), 1)]
    );
    assert_eq!(
        r.counter(
            m::EXCHANGES_TOTAL,
            &[("grant", "refresh_token"), ("outcome", "invalid_grant")]
        ),
        1
    );
    assert_eq!(ended(&r), vec![("revoked".to_owned(), 1)]);

    // Idle past the timeout.
    clock.set(real_now());
    let key = start_session(&app, &harness.entra().token().sign()).await;
    clock.advance(Duration::from_secs(3 * 3600 + 1));
    assert!(sessions.token::<GraphUserRead>(&key).await.is_err());
    let r = metrics.take();
    assert_eq!(ended(&r), vec![("idle".to_owned(), 1)]);
    assert_eq!(r.total(m::SESSION_REFRESHES_TOTAL), 0);
}

#[tokio::test]
async fn the_tenant_label_appears_only_when_opted_in_and_only_for_valid_tokens() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    for opted_in in [false, true] {
        let layer = OboLayer::new(
            config(&entra)
                .client_secret(entra.client_secret())
                .require_user_scopes(["access_as_user"])
                .metrics_tenant_label(opted_in)
                .build()
                .unwrap(),
        );
        let app = obo_app(layer);
        let user = entra.token().sign();
        assert_eq!(bearer(&app, "/obo", &user).await.status, 200);
        assert_eq!(bearer(&app, "/obo", &user).await.status, 200);
        let narrow = entra.token().scopes(&["other"]).sign();
        assert_eq!(bearer(&app, "/whoami", &narrow).await.status, 403);
        assert_eq!(
            bearer(&app, "/whoami", &entra.token().expired().sign())
                .await
                .status,
            401
        );
        let r = metrics.take();
        let with_tenant = |outcome: &str, reason: &str| {
            let mut l = vec![("outcome", outcome), ("reason", reason)];
            if opted_in {
                l.push(("tenant", tid.as_str()));
            }
            r.counter(m::VALIDATIONS_TOTAL, &l)
        };
        assert_eq!(with_tenant("accepted", "ok"), 2, "opted in: {opted_in}");
        assert_eq!(with_tenant("refused", "insufficient_scope"), 1);
        // An expired token's tenant is not verified: never a label.
        assert_eq!(
            r.counter(
                m::VALIDATIONS_TOTAL,
                &[("outcome", "refused"), ("reason", "expired")]
            ),
            1
        );
        let mut exchange = vec![("grant", "obo"), ("outcome", "ok")];
        if opted_in {
            exchange.push(("tenant", tid.as_str()));
        }
        assert_eq!(r.counter(m::EXCHANGES_TOTAL, &exchange), 1);
        let tenants: Vec<_> = r
            .label_values()
            .into_iter()
            .filter(|(_, k, _)| k == "tenant")
            .collect();
        assert_eq!(tenants.is_empty(), !opted_in, "{tenants:?}");
        assert!(tenants.iter().all(|(name, _, v)| v == &tid
            && (name == m::VALIDATIONS_TOTAL || name == m::EXCHANGES_TOTAL)));
    }
}

/// Any tenant admitted (`OBO_ALLOWED_TENANTS=*`) with the tenant label: the
/// admission hook (or the policy) is what keeps strangers out, and any Entra
/// organization can sign a valid token, so a refused token's tenant is never a
/// label either: else every organization an attacker holds a user in (or
/// creates) would become a time series. Accepted requests keep their tenant.
#[tokio::test]
async fn with_any_tenant_refused_tokens_carry_no_tenant_label() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let home = entra.home_tenant();
    let admitted = home.clone();
    let layer = OboLayer::new(
        config(&entra)
            .allow_any_tenant()
            .require_user_scopes(["access_as_user"])
            .metrics_tenant_label(true)
            .build()
            .unwrap(),
    )
    .admit_with(Admission::every_request(move |p: Principal| {
        let ok = p.tid() == admitted;
        async move {
            if ok {
                Ok(())
            } else {
                Err(Refusal::forbidden("not a customer"))
            }
        }
    }));
    let app = obo_app(layer);
    let home_token = entra.token().sign();
    assert_eq!(bearer(&app, "/whoami", &home_token).await.status, 200);
    let stranger = entra.token().tenant(OTHER_TENANT).sign();
    assert_eq!(bearer(&app, "/whoami", &stranger).await.status, 403);
    let narrow = entra.token().tenant(OTHER_TENANT).scopes(&["other"]).sign();
    assert_eq!(bearer(&app, "/whoami", &narrow).await.status, 403);
    let r = metrics.take();
    let tenants: Vec<_> = r
        .label_values()
        .into_iter()
        .filter(|(_, k, _)| k == "tenant")
        .map(|(_, _, v)| v)
        .collect();
    assert!(tenants.iter().all(|t| *t == home), "{tenants:?}");
    assert_eq!(
        r.counter(
            m::VALIDATIONS_TOTAL,
            &[("outcome", "accepted"), ("reason", "ok"), ("tenant", &home)]
        ),
        1
    );
    assert_eq!(
        r.counter(
            m::VALIDATIONS_TOTAL,
            &[("outcome", "refused"), ("reason", "admission")]
        ),
        1
    );
    assert_eq!(
        r.counter(
            m::VALIDATIONS_TOTAL,
            &[("outcome", "refused"), ("reason", "insufficient_scope")]
        ),
        1
    );
}

/// A tenant the app names for a token of its own (`app_token`, an agent's
/// tokens; the sidecar's `optionsOverride.AcquireTokenOptions.Tenant`, chosen by
/// its caller) was verified by no token: with the tenant label, only the tenants
/// the layer admits (home and listed) are labels, never any GUID asked for.
#[tokio::test]
async fn tenants_named_by_the_app_are_labels_only_when_allowed() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let entra = EntraStandIn::start().await;
    let home = entra.home_tenant();
    let layer = OboLayer::new(
        config(&entra)
            .client_secret(entra.client_secret())
            .metrics_tenant_label(true)
            .build()
            .unwrap(),
    );
    let scopes = Scopes::new(["https://graph.microsoft.com/.default"]).unwrap();
    layer.app_token(&scopes, None).await.unwrap();
    layer.app_token(&scopes, Some(&home)).await.unwrap();
    let named = [
        "11111111-2222-4333-8444-000000000001",
        "11111111-2222-4333-8444-000000000002",
        OTHER_TENANT,
    ];
    for tid in named {
        let _ = layer.app_token(&scopes, Some(tid)).await;
    }
    let agent_id = entra.add_agent_identity();
    let agent = layer.agent(&agent_id).unwrap();
    let _ = agent.app_token::<GraphDefault>(named[0]).await;
    let r = metrics.take();
    let tenants: Vec<_> = r
        .label_values()
        .into_iter()
        .filter(|(_, k, _)| k == "tenant")
        .map(|(_, _, v)| v)
        .collect();
    assert!(!tenants.is_empty());
    assert!(tenants.iter().all(|t| *t == home), "{tenants:?}");
    assert_eq!(
        r.counter(
            m::EXCHANGES_TOTAL,
            &[
                ("grant", "client_credentials"),
                ("outcome", "ok"),
                ("tenant", &home)
            ]
        ),
        1,
        "the second is cached"
    );
    // The named tenants' requests are counted, without a tenant.
    let unlabelled: u64 = r
        .counters(m::EXCHANGES_TOTAL)
        .into_iter()
        .filter(|(l, _)| !l.contains_key("tenant"))
        .map(|(_, n)| n)
        .sum();
    assert!(unlabelled >= named.len() as u64, "{unlabelled}");
}

/// Every label value the crate may record, but the opt-in tenant id.
const DOCUMENTED: &[&str] = &[
    // outcome, result, status_class, scope, tier
    "accepted",
    "refused",
    "ok",
    "failed",
    "hit",
    "miss",
    "error",
    "undecryptable",
    "l1",
    "l2",
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "user",
    "tenant",
    // reason (validations)
    "missing",
    "invalid_request",
    "malformed",
    "too_large",
    "algorithm",
    "missing_kid",
    "unknown_key",
    "signature",
    "claim",
    "issuer",
    "audience",
    "id_token",
    "expired",
    "not_yet_valid",
    "no_scp_or_roles",
    "ambiguous_kind",
    "keys_unavailable",
    "insufficient_scope",
    "app_only",
    "client_app",
    "agent",
    "admission",
    // grant
    "obo",
    "refresh_token",
    "client_credentials",
    "managed_identity",
    "agent_blueprint",
    "agent_instance",
    "agent_app",
    "agent_obo",
    "agent_user",
    // outcome (exchanges)
    "interaction_required",
    "consent_required",
    "invalid_grant",
    "throttled",
    "unavailable",
    // reason (sessions)
    "ended",
    "idle",
    "revoked",
];

#[tokio::test]
async fn no_label_carries_a_token_an_id_a_upn_a_session_key_or_a_secret() {
    let metrics = Recorder::new();
    let _guard = metrics.install();
    let harness = Harness::start().await;
    let clock = clock();
    let (layer, app) = session_app(&harness, &clock, Duration::from_secs(3 * 3600));
    let entra = harness.entra();
    let agent_id = entra.add_agent_identity();
    let agent = layer.agent(&agent_id).unwrap();
    let app = app.layer(axum::Extension(agent.clone()));
    // Everything that must never be a label: tokens, ids, UPNs, keys, secrets.
    let mut secret: Vec<String> = vec![
        entra.client_secret(),
        entra.home_tenant(),
        entra.api_client_id(),
        entra.client_app_id(),
        agent_id.clone(),
    ];
    let mut recorded = Recorded(Vec::new());

    // OBO, Graph, a CAE challenge, a session and its refresh, an agent on
    // behalf of the user: for two users.
    for n in 0..2 {
        let user = entra
            .token()
            .user(&format!("a{n}111111-1111-4111-8111-111111111111"));
        let claims = user.claims();
        for claim in ["oid", "sub", "preferred_username", "name", "uti", "aio"] {
            if let Some(v) = claims[claim].as_str() {
                secret.push(v.to_owned());
            }
        }
        let token = user.sign();
        secret.push(token.clone());
        let downstream = bearer(&app, "/raw", &token).await;
        assert_eq!(downstream.status, 200);
        secret.push(downstream.body);
        assert_eq!(bearer(&app, "/me", &token).await.status, 200);
        harness.graph().inject_fault(
            GraphFault::ClaimsChallenge(
                r#"{"access_token":{"acrs":{"essential":true,"value":"c1"}}}"#.into(),
            ),
            Some(1),
        );
        assert_eq!(bearer(&app, "/me", &token).await.status, 200);
        let agent_token = bearer(&app, "/agent/raw", &token).await;
        assert_eq!(agent_token.status, 200, "{}", agent_token.body);
        secret.push(agent_token.body);
        let key = start_session(&app, &token).await;
        secret.push(key.expose().to_owned());
        // Another scope set: a refresh.
        let refreshed = layer.sessions().token::<GraphDefault>(&key).await.unwrap();
        secret.push(refreshed.access_token().expose().to_owned());
        layer.sessions().end(&key).await.unwrap();
        // Refusals of tokens carrying the user's ids.
        assert_eq!(
            bearer(
                &app,
                "/whoami",
                &entra
                    .token()
                    .user(&format!("a{n}111111-1111-4111-8111-111111111111"))
                    .expired()
                    .sign()
            )
            .await
            .status,
            401
        );
        assert_eq!(bearer(&app, "/whoami", &tampered(&token)).await.status, 401);
        recorded.extend(metrics.take());
    }
    // An agent user by UPN, and this API's own app token.
    let upn = "helper@contoso.test";
    let agent_user = entra.add_agent_user(&agent_id, upn);
    secret.extend([upn.to_owned(), agent_user]);
    let t = agent
        .as_user::<GraphUserRead>(&entra.home_tenant(), &AgentUser::Upn(upn.into()))
        .await
        .unwrap();
    secret.push(t.access_token().expose().to_owned());
    let scopes = Scopes::new(["https://graph.microsoft.com/.default"]).unwrap();
    let app_token = layer.app_token(&scopes, None).await.unwrap();
    secret.push(app_token.access_token().expose().to_owned());
    // Refresh tokens Entra issued.
    for r in entra.token_request_log() {
        if let Some(t) = r.form.get("refresh_token") {
            secret.push(t.clone());
        }
    }
    recorded.extend(metrics.take());

    let values = recorded.label_values();
    assert!(
        values.len() > 30,
        "the paths were recorded: {}",
        values.len()
    );
    for family in [
        m::VALIDATIONS_TOTAL,
        m::VALIDATED_TOKEN_CACHE_TOTAL,
        m::EXCHANGES_TOTAL,
        m::OBO_CACHE_TOTAL,
        m::DOWNSTREAM_REQUESTS_TOTAL,
        m::CAE_REEXCHANGES_TOTAL,
        m::SESSION_REFRESHES_TOTAL,
        m::SESSIONS_ENDED_TOTAL,
        m::TOKEN_ENDPOINT_DURATION_SECONDS,
    ] {
        assert!(
            values.iter().any(|(name, ..)| name == family),
            "{family} recorded"
        );
    }
    for (name, label, value) in &values {
        for s in &secret {
            assert!(
                !value.contains(s.as_str()),
                "{name}{{{label}}} carries a secret or an id"
            );
        }
        assert!(!value.contains("eyJ"), "{name}{{{label}}} carries a JWT");
        assert!(
            DOCUMENTED.contains(&value.as_str()),
            "{name}{{{label}=\"{value}\"}} is not a documented value"
        );
    }
}
