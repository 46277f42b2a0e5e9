//! Hostile input: whatever arrives in the Authorization header or inside a JWT,
//! the layer answers 400/401/403 as documented — never a 500, never a panic.

mod common;

use std::sync::OnceLock;

use axum::Router;
use axum_obo::testing::{encode_unsigned, EntraStandIn};
use axum_obo::OboLayer;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

struct Fixture {
    rt: tokio::runtime::Runtime,
    entra: EntraStandIn,
    app: Router,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (entra, app) = rt.block_on(async {
            let entra = EntraStandIn::start().await;
            let cfg = config(&entra)
                .require_user_scopes(["access_as_user"])
                .build()
                .unwrap();
            let app = app(OboLayer::new(cfg));
            // Load the keys once so that every case exercises validation, not discovery.
            assert_eq!(
                bearer(&app, "/whoami", &entra.token().sign()).await.status,
                200
            );
            (entra, app)
        });
        Fixture { rt, entra, app }
    })
}

fn status_of(auth: &[u8]) -> u16 {
    let f = fixture();
    f.rt.block_on(call(&f.app, "/whoami", Some(auth)))
        .status
        .as_u16()
}

fn status_of_token(token: &str) -> (u16, String) {
    let f = fixture();
    let r = f.rt.block_on(bearer(&f.app, "/whoami", token));
    (r.status.as_u16(), r.body)
}

/// Any JSON value, including deep nesting, huge numbers and odd strings.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Claim names a validator looks at, plus noise.
fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("aud"),
        Just("iss"),
        Just("tid"),
        Just("oid"),
        Just("sub"),
        Just("scp"),
        Just("roles"),
        Just("exp"),
        Just("nbf"),
        Just("iat"),
        Just("ver"),
        Just("azp"),
        Just("appid"),
        Just("idtyp"),
        Just("nonce"),
        Just("name"),
        Just("preferred_username"),
    ]
    .prop_map(str::to_owned)
}

fn allowed(status: u16) -> bool {
    matches!(status, 200 | 400 | 401 | 403)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_header_value_is_refused_cleanly(bytes in prop::collection::vec(
        prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..300)) {
        let status = status_of(&bytes);
        prop_assert!(matches!(status, 400 | 401), "status {status}");
    }

    #[test]
    fn bearer_with_any_token_text_is_refused_cleanly(token in "[A-Za-z0-9._~+/=-]{1,400}") {
        let status = status_of(format!("Bearer {token}").as_bytes());
        prop_assert!(matches!(status, 400 | 401), "status {status}");
    }

    #[test]
    fn any_jose_header_and_payload_is_refused(header in any_json(), payload in any_json(),
                                               sig in prop::collection::vec(any::<u8>(), 0..300)) {
        let token = encode_unsigned(&header, &payload, &sig);
        let (status, body) = status_of_token(&token);
        prop_assert_eq!(status, 401, "{}", body);
    }

    #[test]
    fn garbage_segments_are_refused(a in "[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,400}",
                                    c in "[A-Za-z0-9_-]{0,400}", dots in 0usize..6) {
        let token = [a, b, c].join(&".".repeat(dots.max(1)));
        let (status, _) = status_of_token(&token);
        prop_assert!(matches!(status, 400 | 401), "status {status}");
    }
}

proptest! {
    // Each case signs with RSA: fewer cases.
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Correctly signed tokens whose claims have the wrong types, huge numbers,
    /// deep nesting: the layer decides 200/401/403, never 500.
    #[test]
    fn signed_tokens_with_hostile_claims(mutations in prop::collection::vec((claim_name(), any_json()), 1..4)) {
        let f = fixture();
        let mut builder = f.entra.token();
        for (name, value) in &mutations {
            builder = builder.claim(name, value.clone());
        }
        let (status, body) = status_of_token(&builder.sign());
        prop_assert!(allowed(status), "status {status}: {body}");
        if status == 200 {
            // Accepted tokens really satisfy the rules that were fuzzed.
            let p: Value = serde_json::from_str(&body).unwrap();
            prop_assert_eq!(&p["tid"], &json!(f.entra.home_tenant()));
            prop_assert!(p["scp"].as_array().unwrap().contains(&json!("access_as_user")));
        }
    }
}

#[test]
fn duplicate_claims_and_huge_numbers_are_handled() {
    let f = fixture();
    // A payload with a duplicated `tid` and an exp beyond i64.
    let kid = f.entra.current_kid();
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT", "kid": kid}).to_string());
    for payload in [
        r#"{"tid":"a","tid":"b","exp":1}"#,
        r#"{"exp":1e999}"#,
        r#"{"exp":123456789012345678901234567890}"#,
        &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
    ] {
        let token = format!("{header}.{}.c2ln", URL_SAFE_NO_PAD.encode(payload));
        let (status, _) = status_of_token(&token);
        assert_eq!(status, 401, "{payload:.40}");
    }
}
