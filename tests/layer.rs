//! `OboLayer` against the Entra stand-in over loopback.

mod common;

use std::time::Duration;

use aws_lc_rs::hmac;
use axum_obo::OboLayer;
use axum_obo_testing::{encode_unsigned, EntraStandIn};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use serde_json::json;

const OTHER_TENANT: &str = "0b2f4d6e-1111-4222-8333-944455566677";

fn description(r: &Reply) -> String {
    r.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn assert_invalid_token(r: &Reply, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.body);
    let h = r.www_authenticate.as_deref().unwrap_or_default();
    assert!(
        h.starts_with("Bearer error=\"invalid_token\""),
        "{what}: {h}"
    );
    assert_eq!(r.json()["error"], "invalid_token", "{what}");
}

#[tokio::test]
async fn valid_v2_and_v1_tokens_are_admitted() {
    let entra = EntraStandIn::start().await;
    let app = app(OboLayer::new(config(&entra).build().unwrap()));

    let v2 = entra
        .token()
        .user("5d1a0a8e-0000-4000-8000-000000000001")
        .sign();
    let r = bearer(&app, "/whoami", &v2).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = r.json();
    assert_eq!(p["oid"], "5d1a0a8e-0000-4000-8000-000000000001");
    assert_eq!(p["tid"], entra.home_tenant());
    assert_eq!(p["kind"], "delegated");
    assert_eq!(p["ver"], "2.0");
    assert_eq!(p["scp"], json!(["access_as_user"]));
    assert_eq!(p["client_app_id"], entra.client_app_id());

    let v1 = entra.token().v1().sign();
    let r = bearer(&app, "/whoami", &v1).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ver"], "1.0");
    assert_eq!(r.json()["client_app_id"], entra.client_app_id());

    let app_only = entra.token().app_only().roles(&["Tasks.Read.All"]).sign();
    let r = bearer(&app, "/whoami", &app_only).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "app");
    assert_eq!(r.json()["roles"], json!(["Tasks.Read.All"]));
    assert_eq!(r.json()["scp"], json!([]));
}

#[tokio::test]
async fn malformed_requests_and_tokens_are_rejected() {
    let entra = EntraStandIn::start().await;
    let app = app(OboLayer::new(config(&entra).build().unwrap()));

    let r = call(&app, "/whoami", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));

    let r = call(&app, "/whoami", Some(b"Basic dXNlcjpwYXNz")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));

    let r = call(&app, "/whoami", Some(b"Bearer")).await;
    assert_eq!(r.status, 400);
    assert!(r
        .www_authenticate
        .unwrap()
        .starts_with("Bearer error=\"invalid_request\""));

    for garbage in [
        &b"Bearer garbage"[..],
        b"Bearer a.b.c",
        b"Bearer e30.e30.",
        b"Bearer \xff\xfe\xfd",
    ] {
        let r = call(&app, "/whoami", Some(garbage)).await;
        assert_invalid_token(&r, &String::from_utf8_lossy(garbage));
    }

    // 64 KB of header: refused, no panic.
    let huge = format!("Bearer {}", "A".repeat(64 * 1024));
    let r = call(&app, "/whoami", Some(huge.as_bytes())).await;
    assert_invalid_token(&r, "64 KB header");
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_rejected() {
    let entra = EntraStandIn::start().await;
    let app = app(OboLayer::new(config(&entra).build().unwrap()));
    let good = entra.token().sign();
    assert_eq!(bearer(&app, "/whoami", &good).await.status, 200);
    let parts: Vec<&str> = good.split('.').collect();

    // Tampered payload: same header and signature, one claim changed.
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["oid"] = json!("00000000-0000-0000-0000-00000000beef");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let r = bearer(&app, "/whoami", &tampered).await;
    assert_invalid_token(&r, "tampered");
    assert!(
        description(&r).contains("not signed by a key this API trusts"),
        "{}",
        r.body
    );

    // Wrong signature: the signature of another valid token.
    let other = entra
        .token()
        .user("5d1a0a8e-0000-4000-8000-000000000002")
        .sign();
    let wrong_sig = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        other.rsplit('.').next().unwrap()
    );
    assert_invalid_token(
        &bearer(&app, "/whoami", &wrong_sig).await,
        "wrong signature",
    );

    // Signed by a key Entra never published.
    let rogue = entra.unpublished_key();
    let r = bearer(&app, "/whoami", &entra.token().kid(&rogue).sign()).await;
    assert_invalid_token(&r, "unpublished key");

    // alg: none.
    let kid = entra.current_kid();
    let none = encode_unsigned(
        &json!({"alg": "none", "typ": "JWT", "kid": kid}),
        &claims_of(&good),
        b"",
    );
    let r = bearer(&app, "/whoami", &none).await;
    assert_invalid_token(&r, "alg none");
    assert!(description(&r).contains("algorithm"), "{}", r.body);

    // HS256 signed with the public key as the HMAC secret (key confusion).
    for secret in [
        entra.public_key_pem(&kid).into_bytes(),
        entra.public_key_der(&kid),
    ] {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims_of(&good).to_string())
        );
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), msg.as_bytes());
        let forged = format!("{msg}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_invalid_token(
            &bearer(&app, "/whoami", &forged).await,
            "HS256 key confusion",
        );
    }

    // RS256 header but no kid.
    let no_kid = encode_unsigned(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &claims_of(&good),
        b"sig",
    );
    assert_invalid_token(&bearer(&app, "/whoami", &no_kid).await, "no kid");
}

fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn claims_are_checked() {
    let entra = EntraStandIn::start().await;
    let cfg = config(&entra)
        .allow_tenants([OTHER_TENANT])
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let home = entra.home_tenant();

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong aud",
            entra.token().audience("api://someone-else").sign(),
            "audience",
        ),
        (
            "wrong iss",
            entra
                .token()
                .issuer("https://evil.example.com/x/v2.0")
                .sign(),
            "issuer",
        ),
        (
            "tid not allowed",
            entra
                .token()
                .tenant("99999999-9999-4999-8999-999999999999")
                .sign(),
            "not signed by a key this API trusts",
        ),
        (
            "tid differs from iss tenant",
            entra.token().issuer(&entra.issuer_v2(OTHER_TENANT)).sign(),
            "issuer",
        ),
        (
            "iss of home tenant, tid of another allowed tenant",
            entra
                .token()
                .tenant(OTHER_TENANT)
                .issuer(&entra.issuer_v2(&home))
                .sign(),
            "issuer",
        ),
        ("expired", entra.token().expired().sign(), "expired"),
        (
            "not yet valid",
            entra.token().not_yet_valid().sign(),
            "not valid yet",
        ),
        (
            "id token",
            entra.token().id_token().sign(),
            "this is an ID token; send an access token for this API",
        ),
        (
            "no scp or roles",
            entra.token().without_claim("scp").sign(),
            "neither scopes",
        ),
        (
            "tid not a guid",
            entra.token().claim("tid", json!("common")).sign(),
            "tid",
        ),
        ("no oid", entra.token().without_claim("oid").sign(), "oid"),
        (
            "scp wrong type",
            entra.token().claim("scp", json!(["a"])).sign(),
            "scp",
        ),
        (
            "roles wrong type",
            entra.token().claim("roles", json!("Admin")).sign(),
            "roles",
        ),
        (
            "exp wrong type",
            entra.token().claim("exp", json!("soon")).sign(),
            "exp",
        ),
        ("no exp", entra.token().without_claim("exp").sign(), "exp"),
        (
            "ver mismatch",
            entra.token().claim("ver", json!("1.0")).sign(),
            "ver",
        ),
    ];
    for (what, token, needle) in cases {
        let r = bearer(&app, "/whoami", &token).await;
        assert_invalid_token(&r, what);
        assert!(description(&r).contains(needle), "{what}: {}", r.body);
        assert!(
            !r.body.contains(&token) && !r.www_authenticate.clone().unwrap().contains(&token[..20])
        );
    }

    // The other allowed tenant (a guest's resource tenant) is admitted with its own issuer.
    let guest = entra.token().tenant(OTHER_TENANT).sign();
    let r = bearer(&app, "/whoami", &guest).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["tid"], OTHER_TENANT);
}

#[tokio::test]
async fn lifetime_uses_the_injected_clock_and_leeway() {
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let cfg = config(&entra)
        .clock(clock.clone())
        .leeway(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let token = entra.token().lifetime(Duration::from_secs(600)).sign();
    assert_eq!(bearer(&app, "/whoami", &token).await.status, 200);
    // Within the leeway after exp: still fine (served from the validated cache).
    clock.advance(Duration::from_secs(600 + 30));
    assert_eq!(bearer(&app, "/whoami", &token).await.status, 200);
    // Past exp + leeway: refused, even though the validation is cached.
    clock.advance(Duration::from_secs(60));
    let r = bearer(&app, "/whoami", &token).await;
    assert_invalid_token(&r, "expired after caching");
    assert!(description(&r).contains("expired"));
}

#[tokio::test]
async fn a_cached_token_the_policy_refuses_stays_refused() {
    // The second request finds the token in the validated-token cache; the
    // policy still refuses it (the cache-hit fast path declines, the full path answers).
    let entra = EntraStandIn::start().await;
    let cfg = config(&entra)
        .require_user_scopes(["access_as_user"])
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let token = entra.token().scopes(&["other_scope"]).sign();
    for _ in 0..2 {
        let r = bearer(&app, "/whoami", &token).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.json()["error"], "insufficient_scope");
    }
    let ok = entra.token().sign();
    for _ in 0..2 {
        assert_eq!(bearer(&app, "/whoami", &ok).await.status, 200);
    }
}

#[tokio::test]
async fn policy_is_enforced_with_403() {
    let entra = EntraStandIn::start().await;
    let cfg = config(&entra)
        .require_user_scopes(["access_as_user"])
        .require_app_roles(["Tasks.Read.All"])
        .allowed_client_apps([entra.client_app_id()])
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));

    let r = bearer(
        &app,
        "/whoami",
        &entra.token().scopes(&["other_scope"]).sign(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let h = r.www_authenticate.clone().unwrap();
    assert!(h.starts_with("Bearer error=\"insufficient_scope\""), "{h}");
    assert!(h.contains("scope=\"access_as_user\""), "{h}");
    assert_eq!(r.json()["error"], "insufficient_scope");

    let r = bearer(
        &app,
        "/whoami",
        &entra.token().app_only().roles(&["Other"]).sign(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(description(&r).contains("Tasks.Read.All"));

    let r = bearer(
        &app,
        "/whoami",
        &entra
            .token()
            .client_app("a0a0a0a0-0000-4000-8000-000000000000")
            .sign(),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"], "unauthorized_client");

    // The same token passes once it meets the policy; policy runs on cached tokens too.
    let ok = entra.token().sign();
    assert_eq!(bearer(&app, "/whoami", &ok).await.status, 200);
    assert_eq!(bearer(&app, "/whoami", &ok).await.status, 200);

    // Per-route requirement: the Admin role.
    assert_eq!(bearer(&app, "/admin", &ok).await.status, 403);
    let admin = entra.token().roles(&["Admin"]).sign();
    let r = bearer(&app, "/admin", &admin).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"ok": true}));

    let no_app_only = config(&entra).allow_app_only(false).build().unwrap();
    let app2 = common::app(OboLayer::new(no_app_only));
    let r = bearer(&app2, "/whoami", &entra.token().app_only().sign()).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn anonymous_and_missing_layer() {
    let entra = EntraStandIn::start().await;
    let app = app(OboLayer::new(config(&entra).build().unwrap()).allow_anonymous(true));
    let r = call(&app, "/maybe", None).await;
    assert_eq!((r.status.as_u16(), r.body.as_str()), (200, "anonymous"));
    let token = entra
        .token()
        .user("5d1a0a8e-0000-4000-8000-000000000009")
        .sign();
    let r = bearer(&app, "/maybe", &token).await;
    assert_eq!(r.body, "5d1a0a8e-0000-4000-8000-000000000009");
    // A bad token is still refused when anonymous access is allowed.
    assert_eq!(
        call(&app, "/maybe", Some(b"Bearer x.y.z")).await.status,
        401
    );
    // A handler needing a principal says so.
    assert_eq!(call(&app, "/whoami", None).await.status, 401);

    let no_layer = axum::Router::new().route(
        "/whoami",
        axum::routing::get(|p: axum_obo::Principal| async move { p.oid().to_owned() }),
    );
    let r = call(&no_layer, "/whoami", None).await;
    assert_eq!(r.status, 500);
    assert!(r.body.contains("OboLayer"), "{}", r.body);
}

#[tokio::test]
async fn a_key_added_after_start_is_admitted_after_one_refresh() {
    let entra = EntraStandIn::start().await;
    let (clock, app) = keys_loaded(&entra, app).await;
    let before = entra.jwks_requests();

    let old_kid = entra.current_kid();
    let new_kid = entra.rotate_key();
    let token = entra.token().sign();
    // Right after the start-up fetch the refresh is rate-limited: refused, no fetch.
    assert_invalid_token(
        &bearer(&app, "/whoami", &token).await,
        "rate-limited refresh",
    );
    assert_eq!(entra.jwks_requests(), before);
    clock.advance(Duration::from_secs(11));
    let r = bearer(&app, "/whoami", &token).await;
    assert_eq!(r.status, 200, "new key {new_kid}: {}", r.body);
    assert_eq!(entra.jwks_requests(), before + 1);
    // Tokens of the old key, still published, keep working without a fetch.
    assert_eq!(
        bearer(&app, "/whoami", &entra.token().kid(&old_kid).sign())
            .await
            .status,
        200
    );
    assert_eq!(entra.jwks_requests(), before + 1);
}

/// Entra rolls a (compromised) key: once a refresh lands without it, a token it
/// signed is refused even though its validation is cached.
#[tokio::test]
async fn a_cached_token_is_refused_once_a_refresh_removes_its_key() {
    let entra = EntraStandIn::start().await;
    let (clock, app) = keys_loaded(&entra, app).await;
    let old_kid = entra.current_kid();
    let cached = entra.token().sign();
    for pass in ["validated", "cached"] {
        assert_eq!(bearer(&app, "/whoami", &cached).await.status, 200, "{pass}");
    }
    entra.rotate_key();
    entra.retire_key(&old_kid);
    // The keys held still have it (the uncached path would admit it too).
    assert_eq!(bearer(&app, "/whoami", &cached).await.status, 200);

    // A token of the new key makes the layer fetch the JWKS.
    clock.advance(Duration::from_secs(11));
    let before = entra.jwks_requests();
    let fresh = entra.token().sign();
    assert_eq!(bearer(&app, "/whoami", &fresh).await.status, 200);
    assert_eq!(entra.jwks_requests(), before + 1);
    for pass in ["first", "again"] {
        let r = bearer(&app, "/whoami", &cached).await;
        assert_invalid_token(&r, &format!("cached token after key removal ({pass})"));
    }
    assert_eq!(bearer(&app, "/whoami", &fresh).await.status, 200);
}

/// Cache hits alone keep the keys current: a hit on a key set older than
/// `key_refresh_interval` refreshes it in the background (as a miss does), and
/// the removed key's token is refused once that refresh lands.
#[tokio::test]
async fn cache_hits_refresh_stale_keys_and_then_refuse_a_removed_key() {
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let cfg = config(&entra)
        .clock(clock.clone())
        .key_refresh_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let old_kid = entra.current_kid();
    let cached = entra.token().sign();
    assert_eq!(bearer(&app, "/whoami", &cached).await.status, 200);
    entra.rotate_key();
    entra.retire_key(&old_kid);
    let before = entra.jwks_requests();

    clock.advance(Duration::from_secs(61));
    // Admitted from the keys held, which start a background refresh.
    assert_eq!(bearer(&app, "/whoami", &cached).await.status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = bearer(&app, "/whoami", &cached).await;
        if r.status == 401 {
            assert_invalid_token(&r, "cached token after a background refresh");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "no background refresh refused the cached token ({} JWKS fetches)",
            entra.jwks_requests() - before
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(entra.jwks_requests(), before + 1, "one background refresh");
}

/// The wall clock steps back (NTP correcting a clock that ran fast) and then
/// Entra rolls its key: the refresh a new `kid` asks for must not wait until
/// the clock catches up with the last fetch (before the fix: `min_key_refresh`
/// measured from a last attempt in the future, so every token of the new key
/// was refused for as long as the step), and the rate limit still holds.
#[tokio::test]
async fn a_clock_stepped_back_does_not_block_key_refreshes() {
    use axum_obo::clock::Clock as _;
    let entra = EntraStandIn::start().await;
    let (clock, app) = keys_loaded(&entra, app).await;
    let loaded_at = clock.now();
    clock.set(loaded_at - 3600);
    let before = entra.jwks_requests();
    entra.rotate_key();
    // Valid by both clocks: issued two hours before the step, for four hours.
    let issued = std::time::UNIX_EPOCH + Duration::from_secs((loaded_at - 3 * 3600) as u64);
    let token = || {
        entra
            .token()
            .issued_at(issued)
            .lifetime(Duration::from_secs(5 * 3600))
            .sign()
    };
    let r = bearer(&app, "/whoami", &token()).await;
    assert_eq!(
        r.status, 200,
        "new key after the clock stepped back: {}",
        r.body
    );
    assert_eq!(entra.jwks_requests(), before + 1);
    // The rate limit counts from the new attempt.
    for i in 0..5 {
        let probe = entra.token().header_kid(&format!("probe-{i}")).sign();
        assert_eq!(bearer(&app, "/whoami", &probe).await.status, 401);
    }
    assert_eq!(entra.jwks_requests(), before + 1, "rate-limited again");
}

/// The wall clock steps back an hour, then Entra removes the key of a cached
/// token: hits on the set (fetched "in the future") refresh it in the
/// background at once (before the fix: not until the clock caught up with the
/// fetch plus the refresh interval, the removed key trusted all along).
#[tokio::test]
async fn a_clock_stepped_back_still_refreshes_keys_on_cache_hits() {
    use axum_obo::clock::Clock as _;
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let cfg = config(&entra)
        .clock(clock.clone())
        .key_refresh_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let loaded_at = clock.now();
    let issued = std::time::UNIX_EPOCH + Duration::from_secs((loaded_at - 3 * 3600) as u64);
    let cached = entra
        .token()
        .issued_at(issued)
        .lifetime(Duration::from_secs(5 * 3600))
        .sign();
    assert_eq!(bearer(&app, "/whoami", &cached).await.status, 200);
    let old_kid = entra.current_kid();
    entra.rotate_key();
    entra.retire_key(&old_kid);
    let before = entra.jwks_requests();

    clock.set(loaded_at - 3600);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = bearer(&app, "/whoami", &cached).await;
        if r.status == 401 {
            assert_invalid_token(&r, "cached token after the clock stepped back");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "no refresh while the clock is behind the fetch ({} JWKS fetches)",
            entra.jwks_requests() - before
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(entra.jwks_requests(), before + 1, "one background refresh");
}

/// Any tenant: a token of a tenant not listed is verified with the
/// organizations key set and cached under it; once a refresh of that set drops
/// its key, the cached validation is refused, as for a listed tenant.
#[tokio::test]
async fn any_tenant_cached_tokens_end_with_their_organizations_key() {
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let cfg = config(&entra)
        .clock(clock.clone())
        .allow_any_tenant()
        .key_refresh_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let cached = entra.token().tenant(OTHER_TENANT).sign();
    for pass in ["validated", "cached"] {
        let r = bearer(&app, "/whoami", &cached).await;
        assert_eq!(r.status, 200, "{pass}: {}", r.body);
    }
    let old_kid = entra.current_kid();
    entra.rotate_key();
    entra.retire_key(&old_kid);
    clock.advance(Duration::from_secs(61));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = bearer(&app, "/whoami", &cached).await;
        if r.status == 401 {
            assert_invalid_token(&r, "any tenant, key removed");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(std::time::Instant::now() < deadline, "still admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fresh = entra.token().tenant(OTHER_TENANT).sign();
    assert_eq!(bearer(&app, "/whoami", &fresh).await.status, 200);
}

/// A flood of cache hits on a stale key set while the provider is down: the
/// hits are admitted from the last good keys, and their background refreshes
/// run one at a time, at most one fetch per `min_key_refresh`.
#[tokio::test]
async fn a_flood_of_hits_on_a_stale_set_fetches_once_per_min_key_refresh() {
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let cfg = config(&entra)
        .clock(clock.clone())
        .key_refresh_interval(Duration::from_secs(60))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let cached = entra.token().sign();
    assert_eq!(bearer(&app, "/whoami", &cached).await.status, 200);
    entra.fail_discovery(Some(500));
    // An attempt asks for the v2 and v1 discovery documents (and fails there).
    let attempts = || entra.discovery_requests() / 2;
    let before = attempts();
    for window in 1..=2 {
        clock.advance(Duration::from_secs(61));
        // Concurrent hits, and hits after each background refresh has failed.
        let flood = (0..100).map(|_| bearer(&app, "/whoami", &cached));
        let answers = futures_util::future::join_all(flood).await;
        assert!(answers.iter().all(|r| r.status == 200), "last good keys");
        for _ in 0..100 {
            assert_eq!(bearer(&app, "/whoami", &cached).await.status, 200);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(attempts() - before, window, "window {window}");
        assert_eq!(entra.jwks_requests(), 1, "the start-up fetch only");
    }
}

#[tokio::test]
async fn unknown_kids_cause_at_most_one_fetch_per_min_key_refresh() {
    let entra = EntraStandIn::start().await;
    let (clock, app) = keys_loaded(&entra, app).await;
    clock.advance(Duration::from_secs(11));
    let before = entra.jwks_requests();

    let mut tasks = Vec::new();
    for i in 0..200 {
        let token = entra
            .token()
            .header_kid(&format!("unknown-kid-{i}-{}", rand_suffix(i)))
            .sign();
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            bearer(&app, "/whoami", &token).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    assert_eq!(
        entra.jwks_requests() - before,
        1,
        "one fetch for 200 unknown kids"
    );

    // The next window allows exactly one more.
    clock.advance(Duration::from_secs(11));
    for i in 0..20 {
        let token = entra.token().header_kid(&format!("again-{i}")).sign();
        assert_eq!(bearer(&app, "/whoami", &token).await.status, 401);
    }
    assert_eq!(entra.jwks_requests() - before, 2);
}

fn rand_suffix(i: u32) -> u32 {
    i.wrapping_mul(2_654_435_761)
}

#[tokio::test]
async fn known_keys_keep_working_when_the_jwks_fails_after_start() {
    let entra = EntraStandIn::start().await;
    let (clock, app) = keys_loaded(&entra, app).await;

    entra.fail_jwks(Some(503));
    entra.fail_discovery(Some(500));
    clock.advance(Duration::from_secs(13 * 3600)); // past the refresh interval too
    for i in 0..3 {
        let fresh = entra
            .token()
            .issued_at(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(clock_now(&clock)))
            .user(&format!("5d1a0a8e-0000-4000-8000-00000000000{i}"))
            .sign();
        let r = bearer(&app, "/whoami", &fresh).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // An unknown kid during the outage is a 401 (keys exist), not a 503.
    let r = bearer(
        &app,
        "/whoami",
        &entra
            .token()
            .header_kid("nope")
            .issued_at(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(clock_now(&clock)))
            .sign(),
    )
    .await;
    assert_eq!(r.status, 401);
}

fn clock_now(c: &axum_obo::clock::ManualClock) -> u64 {
    use axum_obo::clock::Clock as _;
    c.now() as u64
}

#[tokio::test]
async fn provider_down_at_start_is_503_then_recovers() {
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let cfg = config(&entra).clock(clock.clone()).build().unwrap();
    let layer = OboLayer::new(cfg);
    let app = app(layer.clone());
    entra.fail_jwks(Some(503));
    let token = entra.token().sign();
    let r = bearer(&app, "/whoami", &token).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.retry_after.is_some());
    assert!(layer.warm_up().await.is_err());
    // Garbage is no better than an outage.
    entra.fail_jwks(None);
    entra.garbage_jwks(true);
    clock.advance(Duration::from_secs(11));
    assert_eq!(bearer(&app, "/whoami", &token).await.status, 503);
    // Recovery without a restart, once min_key_refresh has passed.
    entra.garbage_jwks(false);
    assert_eq!(
        bearer(&app, "/whoami", &token).await.status,
        503,
        "rate-limited retry"
    );
    clock.advance(Duration::from_secs(11));
    assert_eq!(bearer(&app, "/whoami", &token).await.status, 200);
}

#[tokio::test]
async fn hanging_provider_is_bounded_by_the_timeout() {
    let entra = EntraStandIn::start().await;
    entra.delay(Some(Duration::from_secs(30)));
    let cfg = config(&entra)
        .http_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    let started = std::time::Instant::now();
    let r = bearer(&app, "/whoami", &entra.token().sign()).await;
    assert_eq!(r.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn validation_cache_can_be_disabled() {
    let entra = EntraStandIn::start().await;
    let cfg = config(&entra).validated_cache_capacity(0).build().unwrap();
    let app = app(OboLayer::new(cfg));
    let t = entra.token().sign();
    for _ in 0..3 {
        assert_eq!(bearer(&app, "/whoami", &t).await.status, 200);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn logs_never_contain_tokens() {
    let (logs, _guard) = capture_logs();
    let entra = EntraStandIn::start().await;
    let app = app(OboLayer::new(
        config(&entra)
            .require_user_scopes(["access_as_user"])
            .build()
            .unwrap(),
    ));
    let tokens = vec![
        entra.token().sign(),
        entra.token().expired().sign(),
        entra.token().scopes(&["nope"]).sign(),
        entra.token().audience("x").sign(),
        entra.token().header_kid("unknown").sign(),
        entra.token().id_token().sign(),
    ];
    for t in &tokens {
        bearer(&app, "/whoami", t).await;
    }
    let text = logs.text();
    assert!(text.contains("obo_validate"), "the capture works: {text}");
    for t in &tokens {
        for part in t.split('.') {
            if part.len() > 16 {
                assert!(!text.contains(part), "a token segment leaked into the logs");
            }
        }
    }
}

#[tokio::test]
async fn min_key_refresh_keeps_sub_second_precision() {
    // 1.5 s must not become 1 s (or 0 s: no limit at all) on a whole-second clock.
    let entra = EntraStandIn::start().await;
    let clock = clock();
    let cfg = config(&entra)
        .clock(clock.clone())
        .min_key_refresh(Duration::from_millis(1500))
        .build()
        .unwrap();
    let app = app(OboLayer::new(cfg));
    assert_eq!(
        bearer(&app, "/whoami", &entra.token().sign()).await.status,
        200
    );
    let before = entra.jwks_requests();
    clock.advance(Duration::from_secs(1));
    let unknown = |i: u32| entra.token().header_kid(&format!("sub-second-{i}")).sign();
    assert_eq!(bearer(&app, "/whoami", &unknown(1)).await.status, 401);
    assert_eq!(entra.jwks_requests(), before, "1 s < 1.5 s: no fetch yet");
    clock.advance(Duration::from_secs(1));
    assert_eq!(bearer(&app, "/whoami", &unknown(2)).await.status, 401);
    assert_eq!(entra.jwks_requests(), before + 1, "2 s >= 1.5 s: one fetch");
}

/// One registration as both sign-in client and API: Entra then issues ID tokens
/// whose `aud` is this API, with the user's app `roles`, a `nonce` and no `azp`/`appid`.
#[tokio::test]
async fn id_tokens_are_never_admitted() {
    let entra = EntraStandIn::start().await;
    let app = app(OboLayer::new(config(&entra).build().unwrap()));
    let api = entra.api_client_id();
    let id = || entra.token().id_token().client_app(&api);
    let cases: Vec<(&str, String)> = vec![
        ("v2, roles, aud = client id", id().roles(&["Admin"]).sign()),
        (
            "v1, roles, aud = client id",
            id().v1().roles(&["Admin"]).sign(),
        ),
        (
            "v2, roles, aud = api:// form",
            id().roles(&["Admin"])
                .audience(&format!("api://{api}"))
                .sign(),
        ),
        (
            "v1, roles, aud = api:// form",
            id().v1()
                .roles(&["Admin"])
                .audience(&format!("api://{api}"))
                .sign(),
        ),
        (
            "v2, scp-like claim",
            id().claim("scp", json!("access_as_user")).sign(),
        ),
        (
            "v1, scp-like claim and roles",
            id().v1()
                .roles(&["Admin"])
                .claim("scp", json!("access_as_user"))
                .sign(),
        ),
        (
            "v2, roles, no nonce",
            id().roles(&["Admin"]).without_claim("nonce").sign(),
        ),
        (
            "v1, roles, no nonce",
            id().v1().roles(&["Admin"]).without_claim("nonce").sign(),
        ),
        (
            "v2, roles and idtyp = app, no nonce",
            id().roles(&["Admin"])
                .without_claim("nonce")
                .claim("idtyp", json!("app"))
                .sign(),
        ),
        (
            "ID token of another client app",
            entra.token().id_token().roles(&["Admin"]).sign(),
        ),
    ];
    for (what, token) in cases {
        for path in ["/whoami", "/admin", "/obo"] {
            let r = bearer(&app, path, &token).await;
            assert_invalid_token(&r, &format!("{what} on {path}"));
            assert_eq!(
                description(&r),
                "this is an ID token; send an access token for this API",
                "{what} on {path}"
            );
        }
    }
}

#[tokio::test]
async fn access_tokens_must_name_their_client_and_kind() {
    let entra = EntraStandIn::start().await;
    let app = app(OboLayer::new(config(&entra).build().unwrap()));
    // An access token without its client claim is indistinguishable from an ID token.
    for (what, token) in [
        ("v2 without azp", entra.token().without_claim("azp").sign()),
        (
            "v1 without appid",
            entra.token().v1().without_claim("appid").sign(),
        ),
        (
            "v2 app-only without azp",
            entra.token().app_only().without_claim("azp").sign(),
        ),
        (
            "v2 carrying appid instead of azp",
            entra
                .token()
                .without_claim("azp")
                .claim("appid", json!(entra.client_app_id()))
                .sign(),
        ),
    ] {
        let r = bearer(&app, "/admin", &token).await;
        assert_invalid_token(&r, what);
        assert!(description(&r).contains("ID token"), "{what}: {}", r.body);
    }
    // Neither cleanly delegated nor cleanly app-only: refused, not guessed.
    for (what, token) in [
        (
            "idtyp = app with scp",
            entra.token().app_only().scopes(&["access_as_user"]).sign(),
        ),
        (
            "idtyp = user without scp",
            entra
                .token()
                .without_claim("scp")
                .roles(&["Admin"])
                .claim("idtyp", json!("user"))
                .sign(),
        ),
        (
            "idtyp of another kind",
            entra.token().claim("idtyp", json!("device")).sign(),
        ),
    ] {
        let r = bearer(&app, "/whoami", &token).await;
        assert_invalid_token(&r, what);
        assert!(
            description(&r).contains("neither a delegated nor an app-only"),
            "{what}: {}",
            r.body
        );
    }
    // The clean shapes still pass, with their kind and client.
    let r = bearer(&app, "/whoami", &entra.token().roles(&["Admin"]).sign()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "delegated");
    let r = bearer(
        &app,
        "/whoami",
        &entra.token().app_only().roles(&["Admin"]).sign(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "app");
    assert_eq!(r.json()["client_app_id"], entra.client_app_id());
    let no_idtyp = entra.token().app_only().without_claim("idtyp").sign();
    let r = bearer(&app, "/whoami", &no_idtyp).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["kind"], "app");
    assert_eq!(
        bearer(
            &app,
            "/admin",
            &entra.token().app_only().roles(&["Admin"]).sign()
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn tenant_allow_list_is_no_oracle() {
    // An unsigned probe must not tell an allowed tenant from another one.
    let entra = EntraStandIn::start().await;
    let app = app(OboLayer::new(config(&entra).build().unwrap()));
    let not_allowed = entra
        .token()
        .tenant("99999999-9999-4999-8999-999999999999")
        .header_kid("made-up")
        .sign();
    let allowed = entra.token().header_kid("made-up").sign();
    let a = bearer(&app, "/whoami", &not_allowed).await;
    let b = bearer(&app, "/whoami", &allowed).await;
    assert_eq!(a.status, b.status);
    assert_eq!(a.body, b.body);
    assert_eq!(a.www_authenticate, b.www_authenticate);
}

/// Serves `docs` (path → JSON) on `listener`; returns a counter of requests.
fn serve_documents(
    listener: tokio::net::TcpListener,
    docs: Vec<(String, serde_json::Value)>,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use axum::response::IntoResponse as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let docs = std::sync::Arc::new(docs);
    let app = axum::Router::new().fallback(move |uri: http::Uri| {
        let docs = docs.clone();
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            match docs.iter().find(|(p, _)| *p == uri.path()) {
                Some((_, doc)) => axum::Json(doc.clone()).into_response(),
                None => http::StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    hits
}

use axum_obo_testing::scripted::loopback;

async fn get_json(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The stand-in's discovery documents and keys, re-served by another loopback
/// authority after `tamper` edits the v2 document; a token of the stand-in is
/// then sent through a layer configured with that authority.
async fn status_with_discovery(
    entra: &EntraStandIn,
    tamper: impl FnOnce(&mut serde_json::Value, &str),
) -> u16 {
    let tid = entra.home_tenant();
    let v2_path = format!("/{tid}/v2.0/.well-known/openid-configuration");
    let v1_path = format!("/{tid}/.well-known/openid-configuration");
    let keys_path = format!("/{tid}/discovery/v2.0/keys");
    let mut v2 = get_json(&format!("{}{v2_path}", entra.authority_host())).await;
    let v1 = get_json(&format!("{}{v1_path}", entra.authority_host())).await;
    let jwks = get_json(v2["jwks_uri"].as_str().unwrap()).await;
    let (listener, authority) = loopback().await;
    v2["jwks_uri"] = json!(format!("{authority}{keys_path}"));
    v2["token_endpoint"] = json!(format!("{authority}/{tid}/oauth2/v2.0/token"));
    tamper(&mut v2, &authority);
    serve_documents(
        listener,
        vec![(v2_path, v2), (v1_path, v1), (keys_path, jwks)],
    );
    let cfg = config(entra).authority_host(&authority).build().unwrap();
    let app = common::app(OboLayer::new(cfg));
    bearer(&app, "/whoami", &entra.token().sign())
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn discovery_cannot_send_us_elsewhere() {
    use std::sync::atomic::Ordering;
    let entra = EntraStandIn::start().await;
    let tid = entra.home_tenant();
    // A host that is not the authority serves the real keys and counts who asks.
    let jwks = get_json(&format!(
        "{}/{tid}/discovery/v2.0/keys",
        entra.authority_host()
    ))
    .await;
    let (listener, elsewhere) = loopback().await;
    let elsewhere_hits = serve_documents(listener, vec![("/keys".to_owned(), jwks)]);

    // Untampered documents through the other authority are accepted.
    assert_eq!(status_with_discovery(&entra, |_, _| {}).await, 200);

    let other_host = |authority: &str, path: &str| {
        json!(format!("{authority}{path}").replace("127.0.0.1", "localhost"))
    };
    type Tamper<'a> = Box<dyn FnOnce(&mut serde_json::Value, &str) + 'a>;
    let cases: Vec<(&str, Tamper<'_>)> = vec![
        (
            "jwks_uri on another port",
            Box::new(|d, _| d["jwks_uri"] = json!(format!("{elsewhere}/keys"))),
        ),
        (
            "jwks_uri on another host name",
            Box::new(|d, a| d["jwks_uri"] = other_host(a, "/keys")),
        ),
        (
            "token_endpoint on another port",
            Box::new(|d, _| d["token_endpoint"] = json!(format!("{elsewhere}/token"))),
        ),
        (
            "issuer of another tenant",
            Box::new(|d, _| {
                let iss = d["issuer"].as_str().unwrap().replace(&tid, OTHER_TENANT);
                d["issuer"] = json!(iss);
            }),
        ),
        (
            "issuer without a tenant",
            Box::new(|d, a| d["issuer"] = json!(format!("{a}/"))),
        ),
    ];
    for (what, tamper) in cases {
        assert_eq!(status_with_discovery(&entra, tamper).await, 503, "{what}");
    }
    assert_eq!(
        elsewhere_hits.load(Ordering::SeqCst),
        0,
        "no fetch elsewhere"
    );
}

#[tokio::test]
async fn downstream_calls_are_not_capped_at_the_entra_timeout() {
    let entra = EntraStandIn::start().await;
    // A downstream API that takes 1.5 s, longer than the 1 s Entra timeout.
    let slow = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            axum::Json(json!({"ok": true}))
        }),
    );
    let (listener, base) = loopback().await;
    tokio::spawn(async move { axum::serve(listener, slow).await.unwrap() });
    let cfg = config(&entra)
        .client_secret(entra.client_secret())
        .http_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let app = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(
                move |t: axum_obo::OboToken<axum_obo::GraphUserRead>| async move {
                    let api = t
                        .downstream(&base)
                        .unwrap()
                        .with_timeout(Duration::from_secs(5));
                    match api.get_json("slow").await {
                        Ok(v) => v.to_string(),
                        Err(e) => format!("error: {e:?}"),
                    }
                },
            ),
        )
        .layer(OboLayer::new(cfg));
    let r = bearer(&app, "/slow", &entra.token().sign()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"ok":true}"#);
}

/// An app's own error shape, set with `render_refusals_with`: a hook that also
/// tries to change the status and drop or replace the challenge.
fn app_shaped(layer: OboLayer) -> axum::Router {
    use axum::response::IntoResponse;
    app(layer.render_refusals_with(|r| {
        let body = json!({ "code": r.error_code(), "message": r.description(), "shape": "app" });
        let mut response = (http::StatusCode::OK, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert("www-authenticate", http::HeaderValue::from_static("Basic"));
        headers.insert("retry-after", http::HeaderValue::from_static("999"));
        headers.insert("x-app", http::HeaderValue::from_static("1"));
        response
    }))
}

fn assert_app_shaped(r: &Reply, status: u16, code: &str, challenge: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.json()["shape"], "app", "{}", r.body);
    assert_eq!(r.json()["code"], code, "{}", r.body);
    assert!(
        r.json().get("error").is_none(),
        "not the crate's JSON: {}",
        r.body
    );
    match challenge {
        Some(c) => {
            let h = r.www_authenticate.as_deref().unwrap_or_default();
            assert!(h.starts_with(c), "the crate's challenge: {h}");
        }
        None => assert_eq!(r.www_authenticate, None),
    }
    assert_eq!(r.retry_after, None, "the hook's Retry-After is not kept");
}

#[tokio::test]
async fn refusals_are_rendered_in_the_apps_shape_keeping_status_and_challenge() {
    let entra = EntraStandIn::start().await;
    let layer = OboLayer::new(config(&entra).build().unwrap());
    let shaped = app_shaped(layer);

    // The layer's own refusals.
    let r = call(&shaped, "/whoami", None).await;
    assert_app_shaped(&r, 401, "unauthorized", Some("Bearer"));
    assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
    let r = bearer(&shaped, "/whoami", "not-a-jwt").await;
    assert_app_shaped(
        &r,
        401,
        "invalid_token",
        Some("Bearer error=\"invalid_token\""),
    );
    let r = call(&shaped, "/whoami", Some(b"Bearer ")).await;
    assert_app_shaped(
        &r,
        400,
        "invalid_request",
        Some("Bearer error=\"invalid_request\""),
    );

    // An extractor's rejection (Require<Admin>), on the validating path and
    // on the validated-token cache's fast path.
    let user = entra.token().sign();
    for pass in ["validated", "cached"] {
        let r = bearer(&shaped, "/admin", &user).await;
        assert_app_shaped(
            &r,
            403,
            "insufficient_scope",
            Some("Bearer error=\"insufficient_scope\""),
        );
        assert!(r.www_authenticate.unwrap().contains("Admin"), "{pass}");
    }
    // Admitted requests are untouched.
    let r = bearer(&shaped, "/whoami", &user).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json().get("shape").is_none());

    // Without the hook: the crate's JSON.
    let plain = app(OboLayer::new(config(&entra).build().unwrap()));
    let r = bearer(&plain, "/admin", &user).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
}

#[tokio::test]
async fn a_rendered_503_keeps_the_crates_retry_after_and_grpc_stays_grpc() {
    use tower::ServiceExt as _;
    // No keys can be fetched: 503 with the crate's Retry-After.
    let entra = EntraStandIn::start().await;
    let token = entra.token().sign();
    let config = config(&entra).build().unwrap();
    drop(entra);
    let app = app_shaped(OboLayer::new(config));
    let r = bearer(&app, "/whoami", &token).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["shape"], "app");
    assert_eq!(
        r.retry_after.as_deref(),
        Some("10"),
        "the crate's, not the hook's"
    );

    // A gRPC request keeps its Trailers-Only answer.
    let request = http::Request::post("/whoami")
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "16");
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert!(response.headers().get("x-app").is_none());
}

/// Any tenant (`OBO_ALLOWED_TENANTS=*` or `allow_any_tenant`): every check but
/// the tenant list stays — signature, the token's own tenant's issuer, audience,
/// the consumers tenant — with one key set for every organization, and the
/// RFC 9728 metadata names no other tenant.
#[tokio::test]
async fn any_tenant_admits_organizations_but_keeps_every_other_check() {
    let entra = EntraStandIn::start().await;
    let from_env = axum_obo::OboConfigBuilder::from_lookup(|name| match name {
        "AZURE_TENANT_ID" => Some(entra.home_tenant()),
        "AZURE_CLIENT_ID" => Some(entra.api_client_id()),
        "AZURE_AUTHORITY_HOST" => Some(entra.authority_host()),
        "OBO_ALLOWED_TENANTS" => Some(" * ".to_owned()),
        "OBO_RESOURCE_URL" => Some("https://api.contoso.example/mcp".to_owned()),
        _ => None,
    })
    .unwrap()
    .build()
    .unwrap();
    let built = config(&entra).allow_any_tenant().build().unwrap();
    let closed = config(&entra).build().unwrap();
    assert!(from_env.admits_any_tenant() && built.admits_any_tenant());
    assert!(!closed.admits_any_tenant());
    assert_eq!(
        from_env.allowed_tenants().collect::<Vec<_>>(),
        [entra.home_tenant().as_str()]
    );
    let metadata = serde_json::to_value(from_env.resource_metadata().unwrap()).unwrap();
    assert_eq!(
        metadata["authorization_servers"],
        json!([entra.issuer_v2(&entra.home_tenant())]),
        "no other tenant, no template: {metadata}"
    );

    let closed = app(OboLayer::new(closed));
    for config in [from_env, built] {
        let app = app(OboLayer::new(config));
        let tenants = [
            "0b2f4d6e-1111-4222-8333-944455566677",
            "5a1e2f3c-aaaa-4bbb-8ccc-0123456789ab",
        ];
        for tid in tenants {
            for token in [
                entra.token().tenant(tid).sign(),
                entra.token().tenant(tid).v1().sign(),
            ] {
                let r = bearer(&app, "/whoami", &token).await;
                assert_eq!(r.status, 200, "{tid}: {}", r.body);
                assert_eq!(r.json()["tid"], tid);
                assert_invalid_token(&bearer(&closed, "/whoami", &token).await, "closed");
            }
        }
        let home = bearer(&app, "/whoami", &entra.token().sign()).await;
        assert_eq!(home.status, 200, "{}", home.body);

        // Another tenant's issuer, a foreign audience, a bad signature, the
        // consumers tenant: refused as before.
        let (a, b) = (tenants[0], tenants[1]);
        let refused = [
            (
                "iss of another tenant",
                entra.token().tenant(a).issuer(&entra.issuer_v2(b)).sign(),
            ),
            (
                "template issuer",
                entra
                    .token()
                    .tenant(a)
                    .issuer(&entra.issuer_v2("{tenantid}"))
                    .sign(),
            ),
            (
                "audience",
                entra
                    .token()
                    .tenant(a)
                    .audience("https://graph.microsoft.com")
                    .sign(),
            ),
            (
                "unknown key",
                entra.token().tenant(a).kid(&entra.unpublished_key()).sign(),
            ),
            (
                "consumers",
                entra
                    .token()
                    .tenant("9188040d-6c67-4c5b-b112-36a304b66dad")
                    .sign(),
            ),
        ];
        for (what, token) in refused {
            let r = bearer(&app, "/whoami", &token).await;
            assert_eq!(r.status, 401, "{what}: {}", r.body);
        }
    }
    // One key set for every organization: no fetch per tenant.
    let orgs = entra
        .request_log()
        .iter()
        .filter(|r| r.path.contains("/organizations/"))
        .count();
    assert!(
        orgs >= 1,
        "the organizations metadata and keys were fetched"
    );
    for tid in [
        "0b2f4d6e-1111-4222-8333-944455566677",
        "5a1e2f3c-aaaa-4bbb-8ccc-0123456789ab",
    ] {
        assert!(
            !entra.request_log().iter().any(|r| r.path.contains(tid)),
            "no discovery for {tid}"
        );
    }
}

/// A hook run on every request (cached validations too): its refusals are 401
/// or 403 with the challenge, its failure a 503 with `Retry-After`.
#[tokio::test]
async fn an_every_request_admission_hook_refuses_and_fails_as_documented() {
    use axum_obo::admission::{Admission, Refusal};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let entra = EntraStandIn::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let admission = Admission::every_request(move |caller| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            match caller.oid() {
                "00000000-0000-4000-8000-00000000000a" => {
                    Err(Refusal::forbidden("this account is suspended"))
                }
                "00000000-0000-4000-8000-00000000000b" => {
                    Err(Refusal::unauthorized("sign in with your work account"))
                }
                "00000000-0000-4000-8000-00000000000c" => {
                    Err(Refusal::unavailable("database at 10.0.0.7 is down"))
                }
                _ => Ok(()),
            }
        }
    });
    let layer = OboLayer::new(config(&entra).build().unwrap()).admit_with(admission);
    let app = app(layer);

    let ok = entra.token().sign();
    for _ in 0..3 {
        assert_eq!(bearer(&app, "/whoami", &ok).await.status, 200);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "cached validations run it too"
    );

    let suspended = entra
        .token()
        .user("00000000-0000-4000-8000-00000000000a")
        .sign();
    for _ in 0..2 {
        let r = bearer(&app, "/whoami", &suspended).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.json()["error"], "insufficient_scope");
        assert_eq!(r.json()["error_description"], "this account is suspended");
        assert!(r
            .www_authenticate
            .unwrap()
            .starts_with("Bearer error=\"insufficient_scope\""));
    }
    let r = bearer(
        &app,
        "/whoami",
        &entra
            .token()
            .user("00000000-0000-4000-8000-00000000000b")
            .sign(),
    )
    .await;
    assert_invalid_token(&r, "unauthorized");
    assert!(r.body.contains("work account"));

    let failing = entra
        .token()
        .user("00000000-0000-4000-8000-00000000000c")
        .sign();
    let r = bearer(&app, "/whoami", &failing).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"], "temporarily_unavailable");
    assert_eq!(r.retry_after.as_deref(), Some("5"));
    assert!(
        !r.body.contains("10.0.0.7"),
        "the cause is not disclosed: {}",
        r.body
    );
    assert_eq!(r.www_authenticate, None);
}

/// A per-tenant hook: one run per tenant (concurrent first requests share it),
/// admissions and refusals remembered, failures not; with any tenant, the
/// multi-tenant SaaS pattern.
#[tokio::test]
async fn a_per_tenant_admission_hook_runs_once_per_tenant() {
    use axum_obo::admission::{Admission, Refusal};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let entra = EntraStandIn::start().await;
    let paying = "0b2f4d6e-1111-4222-8333-944455566677";
    let unpaid = "5a1e2f3c-aaaa-4bbb-8ccc-0123456789ab";
    let flaky = "6b2f3d4c-bbbb-4ccc-8ddd-123456789abc";
    let runs = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures_left = Arc::new(AtomicUsize::new(1));
    let (log, left) = (runs.clone(), failures_left.clone());
    let admission = Admission::per_tenant(Duration::from_secs(300), move |tid| {
        log.lock().unwrap().push(tid.clone());
        let left = left.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await; // a database lookup
            if tid == flaky && left.fetch_sub(1, Ordering::SeqCst) == 1 {
                return Err(Refusal::unavailable("timeout"));
            }
            if tid == unpaid {
                return Err(Refusal::forbidden("your organization has no subscription"));
            }
            Ok(())
        }
    });
    let config = config(&entra).allow_any_tenant().build().unwrap();
    let app = app(OboLayer::new(config).admit_with(admission));

    let tokens: Vec<String> = (0..20)
        .map(|i| {
            entra
                .token()
                .tenant(paying)
                .user(&format!("00000000-0000-4000-8000-{i:012}"))
                .sign()
        })
        .collect();
    let answers =
        futures_util::future::join_all(tokens.iter().map(|t| bearer(&app, "/whoami", t))).await;
    assert!(answers.iter().all(|r| r.status == 200));
    for t in &tokens {
        assert_eq!(bearer(&app, "/whoami", t).await.status, 200);
    }
    for _ in 0..3 {
        let r = bearer(&app, "/whoami", &entra.token().tenant(unpaid).sign()).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("no subscription"));
    }
    let r = bearer(&app, "/whoami", &entra.token().tenant(flaky).sign()).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let r = bearer(&app, "/whoami", &entra.token().tenant(flaky).sign()).await;
    assert_eq!(r.status, 200, "a failure is not remembered: {}", r.body);

    let runs = runs.lock().unwrap().clone();
    let count = |t: &str| runs.iter().filter(|r| *r == t).count();
    assert_eq!(
        (count(paying), count(unpaid), count(flaky)),
        (1, 1, 2),
        "{runs:?}"
    );
}

/// Unsigned probes cannot tell which tenants this API admits: a token without a
/// key id, or with a real key id and a wrong signature, is described alike for
/// an allowed tenant and for another (the reason is logged, not answered).
#[tokio::test]
async fn unsigned_probes_are_no_tenant_oracle() {
    let entra = EntraStandIn::start().await;
    let app = app(OboLayer::new(config(&entra).build().unwrap()));
    let stranger = "99999999-9999-4999-8999-999999999999";
    let probes = |tid: Option<&str>| {
        let builder = match tid {
            Some(t) => entra.token().tenant(t),
            None => entra.token(),
        };
        let token = builder.sign();
        let parts: Vec<&str> = token.split('.').collect();
        let no_kid = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"RS256"}"#),
            parts[1],
            parts[2]
        );
        let bad_sig = format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            URL_SAFE_NO_PAD.encode([7u8; 256])
        );
        [no_kid, bad_sig]
    };
    for (home, other) in probes(None).into_iter().zip(probes(Some(stranger))) {
        let home = bearer(&app, "/whoami", &home).await;
        let other = bearer(&app, "/whoami", &other).await;
        assert_invalid_token(&home, "allowed tenant");
        assert_invalid_token(&other, "another tenant");
        assert_eq!(description(&home), description(&other));
        assert_eq!(home.www_authenticate, other.www_authenticate);
    }
}
