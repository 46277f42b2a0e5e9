//! The validated-token cache against the uncached checks: the same decisions
//! across clock moves (`nbf`, `exp`, leeway, the 24 h cap) and key-set changes
//! (keys removed, replaced under the same `kid`, published again), on a
//! [`ManualClock`] and key sets landed directly in the [`KeyStore`] (no HTTP).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::rules::MAX_CACHE_TTL;
use super::{ValidationSettings, Validator};
use crate::clock::{Clock, ManualClock};
use crate::jwks::{keyset, KeySettings, KeyStore, TenantMetadata};

const TID: &str = "7e536741-2298-4446-abd7-665c5f4aca6b";
const AUD: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const T0: i64 = 1_700_000_000;
const LEEWAY: i64 = 60;
const DAY: i64 = 24 * 3600;

/// Signing keys: `KEYS[i]` is published as `KIDS[i]`; key 3 is another key
/// published under key 0's kid (a `kid` re-bound to new material).
const KIDS: [&str; 4] = ["k0", "k1", "k2", "k0"];

fn keys() -> &'static [RsaKeyPair; 4] {
    static KEYS: OnceLock<[RsaKeyPair; 4]> = OnceLock::new();
    KEYS.get_or_init(|| std::array::from_fn(|_| RsaKeyPair::generate(KeySize::Rsa2048).unwrap()))
}

/// A key set publishing the keys `which` (indexes into [`KIDS`]).
fn key_set(which: &[usize]) -> HashMap<String, aws_lc_rs::signature::ParsedPublicKey> {
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let jwks: Vec<Value> = which
        .iter()
        .map(|&i| {
            let public = keys()[i].public_key();
            json!({
                "kty": "RSA", "use": "sig", "kid": KIDS[i],
                "n": b64(public.modulus().big_endian_without_leading_zero()),
                "e": b64(public.exponent().big_endian_without_leading_zero()),
            })
        })
        .collect();
    keyset::parse(json!({ "keys": jwks })).unwrap()
}

fn metadata() -> TenantMetadata {
    TenantMetadata {
        issuer_v2: "https://login.microsoftonline.com/{tenantid}/v2.0".into(),
        issuer_v1: "https://sts.windows.net/{tenantid}/".into(),
        jwks_uri: "http://127.0.0.1:9/keys".into(),
        token_endpoint: "http://127.0.0.1:9/token".into(),
    }
}

/// A v2 delegated token signed by key `key`, with `nbf` and `exp` as given.
fn token(key: usize, nbf: Option<i64>, exp: i64) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": KIDS[key]});
    let mut claims = json!({
        "aud": AUD, "iss": format!("https://login.microsoftonline.com/{TID}/v2.0"),
        "tid": TID, "oid": "5d1a0a8e-0000-4000-8000-000000000001", "sub": "s",
        "azp": "c", "scp": "access_as_user", "ver": "2.0", "iat": T0, "exp": exp,
    });
    if let Some(nbf) = nbf {
        claims["nbf"] = json!(nbf);
    }
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let pair = &keys()[key];
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        message.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// A validator with the cache and one without, sharing one key store (holding
/// `initial`) and one clock at [`T0`]. Refreshes never fetch: the interval and
/// `min_key_refresh` are far away, and every set is landed by the test.
struct Pair {
    clock: ManualClock,
    keys: Arc<KeyStore>,
    cached: Validator,
    uncached: Validator,
}

impl Pair {
    fn new(initial: &[usize]) -> Self {
        let clock = ManualClock::at(T0);
        let far = Duration::from_secs(1 << 40);
        let keys = Arc::new(KeyStore::new(
            KeySettings {
                authority: "http://127.0.0.1:9".into(),
                tenants: vec![TID.into()],
                timeout: Duration::from_secs(1),
                min_refresh: far,
                refresh_interval: far,
                clock: Arc::new(clock.clone()),
            },
            reqwest::Client::new(),
        ));
        let settings = |cache_capacity| ValidationSettings {
            audiences: BTreeSet::from([AUD.to_owned()]),
            allowed_tenants: BTreeSet::from([TID.to_owned()]),
            leeway: Duration::from_secs(LEEWAY as u64),
            cache_capacity,
            any_tenant: false,
            clock: Arc::new(clock.clone()),
        };
        let pair = Self {
            cached: Validator::new(settings(100), Arc::clone(&keys)),
            uncached: Validator::new(settings(0), Arc::clone(&keys)),
            clock,
            keys,
        };
        let landing = pair.keys.land_for_tests(TID, metadata(), key_set(initial));
        futures_util::FutureExt::now_or_never(landing).expect("no refresh under way");
        pair
    }

    /// Lands a set publishing `which` (after a background refresh under way,
    /// which the clock stepping back may start).
    async fn land(&self, which: &[usize]) {
        self.keys
            .land_for_tests(TID, metadata(), key_set(which))
            .await;
    }

    /// Both paths' decisions for `token` (the reason of a refusal), after
    /// checking that the synchronous fast path admits only what the uncached
    /// path admits.
    async fn decide(&self, token: &str) -> (Result<(), &'static str>, Result<(), &'static str>) {
        let fast = self.cached.cached(token.as_bytes()).is_some();
        let full = self.cached.validate(token.as_bytes()).await;
        let truth = self.uncached.validate(token.as_bytes()).await;
        let (full, truth) = (
            full.map(|_| ()).map_err(|e| e.reason()),
            truth.map(|_| ()).map_err(|e| e.reason()),
        );
        assert!(
            !fast || truth.is_ok(),
            "a cache hit admitted what the uncached path refuses: {truth:?}"
        );
        (full, truth)
    }

    /// Whether the fast path serves `token` from the cache now.
    fn hit(&self, token: &str) -> bool {
        self.cached.cached(token.as_bytes()).is_some()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_cached_token_is_refused_once_a_refresh_removes_its_key() {
    runtime().block_on(async {
        let p = Pair::new(&[0, 1]);
        let old = token(0, None, T0 + 3600);
        let new = token(1, None, T0 + 3600);
        assert_eq!(p.decide(&old).await, (Ok(()), Ok(())));
        assert!(p.hit(&old), "cached");
        // A refresh with the same keys keeps the entry (and the fast check).
        p.land(&[0, 1]).await;
        assert!(p.hit(&old));
        // Entra rolls key 0: the entry of its token no longer holds.
        p.land(&[1, 2]).await;
        assert!(!p.hit(&old), "served after its key was removed");
        assert_eq!(
            p.decide(&old).await,
            (Err("unknown_kid"), Err("unknown_kid"))
        );
        // Others keep working, validated under an older set.
        assert_eq!(p.decide(&new).await, (Ok(()), Ok(())));
        assert!(p.hit(&new));
        // Published again later: validated again in full, then cached again.
        p.land(&[0, 1]).await;
        assert!(p.hit(&new), "key 1 stayed throughout");
        assert!(!p.hit(&old), "key 0 came back: its old entry is gone");
        assert_eq!(p.decide(&old).await, (Ok(()), Ok(())));
        assert!(p.hit(&old));
    });
}

#[test]
fn a_kid_rebound_to_another_key_ends_the_entries_of_the_old_key() {
    runtime().block_on(async {
        let p = Pair::new(&[0, 1]);
        let old = token(0, None, T0 + 3600);
        assert_eq!(p.decide(&old).await, (Ok(()), Ok(())));
        p.land(&[3, 1]).await; // "k0" now names key 3
        assert!(!p.hit(&old));
        assert_eq!(p.decide(&old).await, (Err("signature"), Err("signature")));
    });
}

#[test]
fn a_future_nbf_is_never_cached_into_acceptance() {
    runtime().block_on(async {
        let p = Pair::new(&[0]);
        let t = token(0, Some(T0 + 600), T0 + 3600);
        // Too early, even with the leeway: refused, nothing cached.
        p.clock.set(T0 + 600 - LEEWAY - 1);
        assert_eq!(
            p.decide(&t).await,
            (Err("not_yet_valid"), Err("not_yet_valid"))
        );
        assert!(!p.hit(&t));
        // Within the leeway: admitted and cached.
        p.clock.set(T0 + 600 - LEEWAY);
        assert_eq!(p.decide(&t).await, (Ok(()), Ok(())));
        assert!(p.hit(&t));
        // The clock steps back: the cached validation does not hold.
        p.clock.set(T0 + 600 - LEEWAY - 1);
        assert!(!p.hit(&t), "served before its nbf");
        assert_eq!(
            p.decide(&t).await,
            (Err("not_yet_valid"), Err("not_yet_valid"))
        );
    });
}

#[test]
fn exp_and_leeway_end_a_cached_validation_by_the_injected_clock() {
    runtime().block_on(async {
        let p = Pair::new(&[0]);
        let t = token(0, None, T0 + 600);
        assert_eq!(p.decide(&t).await, (Ok(()), Ok(())));
        p.clock.set(T0 + 600 + LEEWAY);
        assert!(p.hit(&t));
        p.clock.set(T0 + 600 + LEEWAY + 1);
        assert!(!p.hit(&t));
        assert_eq!(p.decide(&t).await, (Err("expired"), Err("expired")));
    });
}

#[test]
fn no_validation_is_served_past_the_cap() {
    runtime().block_on(async {
        let p = Pair::new(&[0]);
        let t = token(0, None, T0 + 3 * DAY);
        assert_eq!(p.decide(&t).await, (Ok(()), Ok(())));
        p.clock.set(T0 + MAX_CACHE_TTL);
        assert!(p.hit(&t), "served up to the cap");
        p.clock.set(T0 + MAX_CACHE_TTL + 1);
        assert!(!p.hit(&t), "served past the cap");
        // Validated again in full (still valid), and cached for another cap.
        assert_eq!(p.decide(&t).await, (Ok(()), Ok(())));
        p.clock.set(T0 + 2 * MAX_CACHE_TTL + 1);
        assert!(p.hit(&t));
        p.clock.set(T0 + 2 * MAX_CACHE_TTL + 2);
        assert!(!p.hit(&t));
    });
}

/// What a step of the property does.
#[derive(Debug, Clone)]
enum Step {
    /// Sets the clock to `T0` plus this many seconds.
    Clock(i64),
    /// Lands a key set publishing these keys.
    Land(Vec<usize>),
    /// Validates token `i` with and without the cache.
    Check(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let edges = [
        -LEEWAY - 1,
        -LEEWAY,
        0,
        540,
        599,
        600,
        660,
        661,
        3600,
        3660,
        3661,
        MAX_CACHE_TTL,
        MAX_CACHE_TTL + 1,
        2 * DAY,
        3 * DAY + LEEWAY,
        3 * DAY + LEEWAY + 1,
    ];
    prop_oneof![
        3 => proptest::sample::select(edges.to_vec()).prop_map(Step::Clock),
        1 => (-2 * LEEWAY..4 * DAY).prop_map(Step::Clock),
        // Key 3 shares key 0's kid: a set holds one or the other.
        2 => (proptest::sample::subsequence(vec![0, 1, 2], 0..=3), any::<bool>()).prop_map(
            |(mut which, rebind)| {
                if rebind {
                    if let Some(k0) = which.iter_mut().find(|k| **k == 0) {
                        *k0 = 3;
                    }
                }
                if which.is_empty() {
                    which.push(2);
                }
                Step::Land(which)
            }
        ),
        6 => (0..TOKENS).prop_map(Step::Check),
    ]
}

const TOKENS: usize = 6;

fn tokens() -> &'static [String; TOKENS] {
    static TOKENS_: OnceLock<[String; TOKENS]> = OnceLock::new();
    TOKENS_.get_or_init(|| {
        [
            token(0, Some(T0), T0 + 3600),
            token(1, Some(T0 + 600), T0 + 7200),
            token(0, None, T0 + 3 * DAY),
            token(2, None, T0 + 600),
            token(3, Some(T0 - 10), T0 + 3600),
            token(1, Some(T0 + 2 * DAY), T0 + 3 * DAY),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the clock and the key sets do, the validator with the cache
    /// decides as the one without, and its fast path admits only what the
    /// uncached path admits at that moment.
    #[test]
    fn the_cache_decides_as_the_uncached_path(steps in proptest::collection::vec(step(), 1..40)) {
        let p = Pair::new(&[0, 1, 2]);
        runtime().block_on(async {
            for s in steps {
                match s {
                    Step::Clock(offset) => p.clock.set(T0 + offset),
                    Step::Land(which) => p.land(&which).await,
                    Step::Check(i) => {
                        let (full, truth) = p.decide(&tokens()[i]).await;
                        assert_eq!(full, truth, "token {i} at T0{:+}", p.clock.now() - T0);
                    }
                }
            }
        });
    }
}
