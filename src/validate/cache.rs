//! Successful validations, found by a keyed hash of the token and served only
//! for the exact same token bytes, and only while the uncached checks would
//! still pass.
//!
//! # Where it sits
//!
//! [`Validator::validate`](super::Validator::validate) (and the layer's
//! synchronous fast path, [`Validator::cached`](super::Validator::cached)) looks
//! every bearer token up here before it verifies anything, and inserts every
//! token that passed all checks with its [`Validity`].
//!
//! # What it guarantees
//!
//! An entry is served only for a token byte-for-byte equal to the one that was
//! validated: the key is a 128-bit XXH3 of the token under a secret drawn at
//! random for each cache (from aws-lc-rs's CSPRNG; never leaves the process),
//! and a hit compares the whole stored token with the presented one in
//! constant time (`CRYPTO_memcmp`). A different token under the same key is a
//! miss and is validated in full. The hash only spreads tokens over the cache;
//! exactness rests on the comparison, not on the hash (see SECURITY.md). Only
//! tokens that passed every check are stored, so the entries cannot be chosen
//! by someone who cannot get Entra to sign a token for this API.
//!
//! A hit is never admitted where the uncached checks would refuse the token.
//! Those checks depend on three things that change: the clock, the tenant's
//! key set and its metadata (everything else, the settings and the token's
//! bytes, is fixed). So each entry keeps its [`Validity`]:
//!
//! - `from ..= until`, the instants at which the lifetime checks pass: `from` is
//!   `nbf − leeway` (a token whose `nbf` is still ahead after a clock step back
//!   is not admitted), `until` is the earlier of `exp + leeway` and the
//!   validation's time plus [`MAX_CACHE_TTL`](super::rules) (24 h), all by the
//!   configured clock;
//! - the [`KeyStamp`] of the key that verified the signature, which
//!   [`KeyStore::still_holds`](crate::jwks::KeyStore::still_holds) checks against
//!   the tenant's current set: a refresh that removes or replaces that key (or
//!   changes the tenant's metadata) ends the entry at once, without purging.
//!
//! The validator admits a hit only when both hold, and otherwise forgets the
//! entry and validates the token in full, so that the answer (and its reason)
//! is the uncached path's. Past the 24 h cap a token is verified again, not
//! refused. The check costs one clock read (as before), three comparisons and
//! two relaxed or acquire atomic loads (the tenant's key-set age and
//! `intact_since`); the current key set is loaded and looked through only for
//! entries older than a refresh that removed a key.
//!
//! # What an attacker sees
//!
//! Nothing derived from a token leaves the process. The tokens themselves are
//! held in memory while cached (as the On-Behalf-Of cache holds downstream
//! tokens), in [`BearerToken`]s, which never print.
//!
//! # How it fails
//!
//! It does not: a full cache evicts (quick_cache's CLOCK-Pro-like policy). An
//! entry that no longer holds is removed on its next hit; until then it is only
//! weight under the capacity.
//!
//! quick_cache rather than moka (which the On-Behalf-Of cache keeps for its
//! single-flight and per-entry TTL): a hit is one shard read lock, one
//! SwissTable probe and the entry, where moka's read path chases bucket, key and
//! value pointers and records the read for its LRU and frequency sketch: at
//! 10,000 cached tokens (past the CPU caches) moka's probe took nearly half of
//! the load server's CPU (see `docs/performance.md`).

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, UnitWeighter};

use super::claims::Principal;
use crate::jwks::KeyStamp;
use crate::secret::BearerToken;

/// Bytes of the XXH3 secret (its default size).
const SECRET_LEN: usize = 192;

/// When and under which key a cached validation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    /// The first clock second at which the lifetime checks pass (`nbf` − leeway).
    pub(crate) from: i64,
    /// The last clock second at which the entry may be served: the earlier of
    /// `exp` + leeway and the validation's time plus the cache's cap.
    pub(crate) until: i64,
    /// The key that verified the signature.
    pub(crate) stamp: KeyStamp,
}

impl Validity {
    /// Whether `now` is within `from ..= until`.
    pub(crate) fn covers(&self, now: i64) -> bool {
        self.from <= now && now <= self.until
    }
}

/// A cache hit: the principal, the cached copy of the token, and when and
/// under which key the validation holds (which the validator checks).
pub(crate) struct Hit {
    pub(crate) principal: Principal,
    pub(crate) token: BearerToken,
    pub(crate) validity: Validity,
}

#[derive(Clone)]
struct Entry {
    /// The validated token: compared in full on every hit, and handed out so
    /// that its clones share one SHA-256 memo (the On-Behalf-Of cache key).
    token: BearerToken,
    principal: Principal,
    validity: Validity,
}

/// Bounded cache of validated tokens.
pub(crate) struct ValidatedCache {
    inner: Cache<u128, Entry>,
    /// The XXH3 secret of this cache, random.
    secret: Box<[u8; SECRET_LEN]>,
}

/// A quick_cache holding at least `capacity` tokens however they spread.
///
/// quick_cache bounds each of its shards to an equal part of its capacity, and
/// tokens spread over shards unevenly: filled to exactly `capacity`, it would
/// evict from the fuller shards. So shards hold at least 1,024 tokens each (one
/// shard for small caches) and get an eighth more room: at 1,024 tokens a shard,
/// over four standard deviations of the spread.
fn sized(capacity: u64) -> Cache<u128, Entry> {
    let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
    let most = std::thread::available_parallelism().map_or(1, |n| n.get() * 4);
    let shards = (capacity / 1024).clamp(1, most);
    let shards = 1usize << shards.ilog2(); // a power of two, as quick_cache wants
    let options = OptionsBuilder::new()
        .shards(shards)
        .estimated_items_capacity(capacity)
        .weight_capacity(capacity.saturating_add(capacity / 8) as u64)
        .build()
        .expect("every option is set");
    Cache::with_options(
        options,
        UnitWeighter,
        DefaultHashBuilder::default(),
        DefaultLifecycle::default(),
    )
}

impl ValidatedCache {
    pub(crate) fn new(capacity: u64) -> Self {
        let mut secret = Box::new([0u8; SECRET_LEN]);
        aws_lc_rs::rand::fill(&mut secret[..]).expect("the system's random number generator");
        Self {
            inner: sized(capacity),
            secret,
        }
    }

    /// Where `token` is looked up.
    pub(crate) fn key(&self, token: &[u8]) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_secret(token, &self.secret[..])
    }

    /// The cached validation of exactly `token` (found under `key`), whether
    /// or not it still holds.
    pub(crate) fn get(&self, key: u128, token: &[u8]) -> Option<Hit> {
        let e = self.inner.get(&key)?;
        aws_lc_rs::constant_time::verify_slices_are_equal(e.token.expose().as_bytes(), token)
            .ok()?;
        Some(Hit {
            principal: e.principal,
            token: e.token,
            validity: e.validity,
        })
    }

    /// Forgets the entry under `key` (it no longer holds).
    pub(crate) fn remove(&self, key: u128) {
        self.inner.remove(&key);
    }

    /// Remembers the validation of `token` (under `key`), which holds as
    /// `validity` says.
    pub(crate) fn insert(
        &self,
        key: u128,
        token: BearerToken,
        principal: Principal,
        validity: Validity,
    ) {
        self.inner.insert(
            key,
            Entry {
                token,
                principal,
                validity,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(oid: &str) -> Principal {
        Principal::for_tests(oid, &["access_as_user"], &[])
    }

    const VALID: Validity = Validity {
        from: 0,
        until: 3600,
        stamp: KeyStamp::for_tests(1),
    };

    #[test]
    fn only_the_exact_token_is_served() {
        let cache = ValidatedCache::new(100);
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJvaWQiOiJhIn0.c2lnbmF0dXJl";
        let key = cache.key(token.as_bytes());
        cache.insert(key, BearerToken::new(token), principal("a"), VALID);
        let hit = cache.get(key, token.as_bytes()).expect("a hit");
        assert_eq!(hit.principal.oid(), "a");
        assert_eq!(hit.token.expose(), token);
        assert_eq!(hit.validity, VALID);

        // Under the very same key (as after a collision), any other bytes miss:
        // one byte changed, a prefix, an extension.
        let mut flipped = token.as_bytes().to_vec();
        *flipped.last_mut().unwrap() ^= 1;
        for other in [
            &flipped[..],
            &token.as_bytes()[..token.len() - 1],
            &[token.as_bytes(), b"A"].concat(),
        ] {
            assert!(cache.get(key, other).is_none());
        }
        // Other bytes are found elsewhere.
        assert_ne!(cache.key(&flipped), key);
    }

    #[test]
    fn capacity_tokens_in_a_cycle_all_stay_cached() {
        let cache = ValidatedCache::new(10_000);
        let tokens: Vec<String> = (0..10_000).map(|i| format!("token-{i}")).collect();
        for t in &tokens {
            let key = cache.key(t.as_bytes());
            cache.insert(key, BearerToken::new(t.as_str()), principal("a"), VALID);
        }
        let kept = tokens
            .iter()
            .filter(|t| cache.get(cache.key(t.as_bytes()), t.as_bytes()).is_some())
            .count();
        assert_eq!(kept, tokens.len());
    }

    #[test]
    fn keys_are_secret_per_cache_and_removed_entries_are_gone() {
        let (a, b) = (ValidatedCache::new(10), ValidatedCache::new(10));
        assert_ne!(a.key(b"token"), b.key(b"token"));
        let key = a.key(b"token");
        a.insert(key, BearerToken::new("token"), principal("a"), VALID);
        assert!(a.get(key, b"token").is_some());
        a.remove(key);
        assert!(a.get(key, b"token").is_none());
    }

    #[test]
    fn validity_covers_from_through_until() {
        let v = Validity {
            from: 10,
            until: 20,
            ..VALID
        };
        let covered: Vec<i64> = (0..30).filter(|&t| v.covers(t)).collect();
        assert_eq!(covered, (10..=20).collect::<Vec<_>>());
    }

    #[test]
    fn a_hit_hands_out_the_cached_token_and_its_digest_memo() {
        let cache = ValidatedCache::new(10);
        let key = cache.key(b"token");
        cache.insert(key, BearerToken::new("token"), principal("a"), VALID);
        let first = cache.get(key, b"token").unwrap().token;
        let digest = first.sha256();
        let second = cache.get(key, b"token").unwrap().token;
        assert_eq!(second.sha256(), digest);
        assert_eq!(digest, crate::digest::sha256(b"token"));
    }
}
