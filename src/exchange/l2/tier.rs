//! The L2 tier: where an entry lives in Redis, what is stored there, and how a
//! stored value becomes a cached token again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::namespace::SealedNamespace;
use super::seal::Rejected;
use super::store::Outcome;
use super::L2Settings;
use crate::exchange::cache::{bump, CacheKey, CachedToken, Counters};
use crate::metrics::{self, L2Result};
use crate::secret::BearerToken;

/// Domain separator of everything the L2 derives from a cache key.
const DOMAIN: &[u8] = b"axum-obo-l2";

/// The distributed, encrypted second level of the On-Behalf-Of cache.
#[derive(Debug)]
pub(crate) struct L2Cache {
    ns: SealedNamespace,
    /// Rejected values are logged at `warn` once, then at `debug`.
    warned_rejected: AtomicBool,
}

/// The plaintext of a stored value.
#[derive(Serialize)]
struct EntryOut<'a> {
    t: &'a str,
    e: i64,
    f: i64,
    s: &'a [Box<str>],
}

#[derive(Deserialize)]
struct EntryIn {
    t: String,
    e: i64,
    f: i64,
    s: Vec<String>,
}

impl L2Cache {
    /// `None` (logged) if the settings cannot be used; `build()` checked them.
    pub(crate) fn new(
        settings: &L2Settings,
        auth: Option<&super::EntraAuth>,
        client_id: &str,
    ) -> Option<Self> {
        Some(Self {
            ns: SealedNamespace::new(settings, auth, client_id, DOMAIN, "", "Redis L2")?,
            warned_rejected: AtomicBool::new(false),
        })
    }

    /// The Redis key of an entry: unlinkable to the L1 key, holding no
    /// identifier or token (see [`SealedNamespace`]).
    fn redis_key(&self, key: &CacheKey) -> String {
        self.ns.redis_key(key)
    }

    /// Associated data of an entry, binding the cache key: a value moved under
    /// another entry's Redis key fails to open.
    fn aad(&self, key: &CacheKey) -> Vec<u8> {
        self.ns.aad(key)
    }

    /// The entry for `key` if Redis has one that opens and is fresh at `now`
    /// (clock seconds). Failures of any kind are a miss.
    pub(crate) async fn get(
        &self,
        key: &CacheKey,
        now: i64,
        counters: &Counters,
    ) -> Option<CachedToken> {
        let sealed = match self.ns.store.get(&self.redis_key(key)).await {
            Outcome::Done(Some(v)) => v,
            Outcome::Done(None) => {
                bump(&counters.l2_misses);
                metrics::l2(L2Result::Miss);
                return None;
            }
            Outcome::Skipped => {
                bump(&counters.l2_skipped);
                metrics::l2(L2Result::Error);
                return None;
            }
            Outcome::Failed => {
                bump(&counters.l2_errors);
                metrics::l2(L2Result::Error);
                return None;
            }
        };
        let entry = match self.open(key, &sealed) {
            Ok(e) => e,
            Err(why) => {
                bump(&counters.l2_rejected);
                metrics::l2(L2Result::Undecryptable);
                if self.warned_rejected.swap(true, Ordering::Relaxed) {
                    tracing::debug!(reason = %why, "Redis L2 value rejected; treated as a miss");
                } else {
                    tracing::warn!(
                        reason = %why,
                        "Redis L2 value rejected; treated as a miss (further rejections are logged at debug)"
                    );
                }
                return None;
            }
        };
        if now >= entry.f {
            bump(&counters.l2_misses);
            metrics::l2(L2Result::Miss);
            return None;
        }
        bump(&counters.l2_hits);
        metrics::l2(L2Result::Hit);
        Some(CachedToken {
            access_token: BearerToken::new(entry.t),
            expires_at: entry.e,
            fresh_until: entry.f,
            scopes: entry.s.into_iter().map(Box::from).collect(),
            ttl: Duration::from_secs(u64::try_from(entry.f.saturating_sub(now)).unwrap_or(0)),
        })
    }

    fn open(&self, key: &CacheKey, sealed: &[u8]) -> Result<EntryIn, Rejected> {
        let plain = self.ns.sealer.open(&self.aad(key), sealed)?;
        let entry: EntryIn = serde_json::from_slice(&plain).map_err(|_| Rejected::Malformed)?;
        if entry.t.is_empty() || entry.f > entry.e {
            return Err(Rejected::Malformed);
        }
        Ok(entry)
    }

    /// Removes `stale` from Redis if `key`'s value there is still that token
    /// (a downstream challenged it and Entra did not renew it): no replica reads
    /// it from Redis again (one that holds it in its own L1 already is not reached). A newer token written meanwhile (another replica answered the
    /// same challenge) is kept: the delete compares the sealed value in Redis.
    /// Failures leave the entry, which expires with its freshness.
    pub(crate) async fn evict(&self, key: &CacheKey, stale: &CachedToken, counters: &Counters) {
        let redis_key = self.redis_key(key);
        let sealed = match self.ns.store.get(&redis_key).await {
            Outcome::Done(Some(v)) => v,
            Outcome::Done(None) => return,
            Outcome::Skipped => return l2_error(&counters.l2_skipped),
            Outcome::Failed => return l2_error(&counters.l2_errors),
        };
        // A value that does not open is never served: nothing to evict.
        let Ok(entry) = self.open(key, &sealed) else {
            return;
        };
        if entry.t != stale.access_token.expose() {
            return;
        }
        match self.ns.store.del_if_equal(&redis_key, &sealed).await {
            Outcome::Done(true) => bump(&counters.l2_evictions),
            Outcome::Done(false) => {}
            Outcome::Skipped => l2_error(&counters.l2_skipped),
            Outcome::Failed => l2_error(&counters.l2_errors),
        }
    }

    /// Writes `token` through to Redis, expiring when it stops being fresh.
    pub(crate) async fn put(&self, key: &CacheKey, token: &CachedToken, counters: &Counters) {
        if token.ttl.is_zero() {
            return;
        }
        let plain = serde_json::to_vec(&EntryOut {
            t: token.access_token.expose(),
            e: token.expires_at,
            f: token.fresh_until,
            s: &token.scopes,
        });
        let Some(sealed) = plain
            .ok()
            .and_then(|p| self.ns.sealer.seal(&self.aad(key), &p))
        else {
            l2_error(&counters.l2_errors);
            return;
        };
        match self
            .ns
            .store
            .set_px(&self.redis_key(key), &sealed, token.ttl)
            .await
        {
            Outcome::Done(()) => bump(&counters.l2_writes),
            Outcome::Skipped => l2_error(&counters.l2_skipped),
            Outcome::Failed => l2_error(&counters.l2_errors),
        }
    }
}

/// An L2 call that failed (or was skipped after a failure): counted in `counter`
/// and as the `error` result of the metrics.
fn l2_error(counter: &std::sync::atomic::AtomicU64) {
    bump(counter);
    metrics::l2(L2Result::Error);
}
