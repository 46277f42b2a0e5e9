//! One key set per allowed tenant: lock-free reads, single-flight and
//! rate-limited refresh, last good keys kept on failure.
//!
//! # Where it sits
//!
//! The validator asks it for a tenant's keys on every uncached validation; it
//! fetches discovery and the JWKS over the layer's shared client, configured by
//! [`KeySettings`].
//!
//! # What it guarantees and how it fails
//!
//! Reads never wait on a lock. At most one fetch per tenant runs at a time, and at
//! most one per `min_refresh` (tokens with made-up `kid`s cannot turn requests into
//! fetches), by the configured clock: when it steps back past the last attempt,
//! the next fetch is allowed and the limit counts from it. A failed refresh keeps the last good keys; only a tenant whose keys
//! were never loaded fails, with a [`KeyError`].
//!
//! # Which key verified a token, and is it still there
//!
//! The validated-token cache must stop serving a token once a refresh removes
//! the key that verified it (Entra rolling a compromised key). Each key of a
//! loaded set carries a *serial*: the same number from one set to the next while
//! the tenant's metadata is unchanged and the JWKS keeps the same `kid` with the
//! same key (compared by its SubjectPublicKeyInfo DER), a new one otherwise. A
//! set also records `intact_since`, the oldest generation whose keys are all
//! still in it, unchanged (and whose metadata is the same). A validation is
//! stamped ([`KeyStamp`]) with the tenant, the set's generation and the key's
//! serial. [`KeyStore::still_holds`] answers whether that key is in the current
//! set: at once when the stamp's generation is at least `intact_since` (no key
//! has gone since: the usual case, one atomic load of a mirror of it on the
//! tenant), otherwise by looking for the serial among the current keys (a
//! lock-free load of the set). A key removed and published again later gets a
//! new serial, so tokens stamped before its removal are validated again (in
//! full) rather than served. The mirror is raised before a new set is stored,
//! so a hit that reads the old value came before the new set (and its key was
//! in the old one); no hit after a refresh has landed is admitted on a key it
//! removed, and nothing has to be purged from the cache. Hits on a set older
//! than the refresh interval, or fetched at a time the clock has since stepped
//! back past, refresh it in the background (one refresh at a time, at most one
//! fetch per `min_refresh`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use aws_lc_rs::signature::ParsedPublicKey;

use super::discovery::{discover, fetch_json, TenantMetadata};
use super::{keyset, KeyError};
use crate::clock::Clock;

/// A tenant's metadata and keys as of one successful fetch.
pub(crate) struct Loaded {
    pub(crate) metadata: TenantMetadata,
    pub(crate) keys: HashMap<String, VerifyingKey>,
    /// Increases with every successful fetch; lets waiters see that someone
    /// else refreshed while they queued.
    pub(crate) generation: u64,
    /// Clock seconds at which this set was fetched.
    pub(crate) loaded_at: i64,
    /// The oldest generation whose keys are all in this set, unchanged (and
    /// whose metadata is this set's).
    intact_since: u64,
    /// The tenant's index in the store.
    slot: u32,
}

impl Loaded {
    /// The stamp of a validation by `key`, one of this set's keys.
    pub(crate) fn stamp(&self, key: &VerifyingKey) -> KeyStamp {
        KeyStamp {
            slot: self.slot,
            generation: self.generation,
            serial: key.serial,
        }
    }
}

/// A verification key of a loaded set.
pub(crate) struct VerifyingKey {
    pub(crate) key: ParsedPublicKey,
    /// The same while the tenant's JWKS keeps this `kid` with this key (and its
    /// metadata is unchanged); unique per tenant otherwise.
    serial: u64,
}

/// Which key set and key verified a token: what [`KeyStore::still_holds`]
/// checks a cached validation against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyStamp {
    slot: u32,
    generation: u64,
    serial: u64,
}

#[cfg(test)]
impl KeyStamp {
    /// A stamp naming key `serial` of the first tenant's first set.
    pub(crate) const fn for_tests(serial: u64) -> Self {
        Self {
            slot: 0,
            generation: 1,
            serial,
        }
    }
}

struct Tenant {
    id: String,
    slot: u32,
    current: ArcSwapOption<Loaded>,
    /// The current set's `intact_since` (`u64::MAX` before the first), raised
    /// before the set is stored: what a cache hit reads, with one atomic load.
    intact_since: AtomicU64,
    /// The current set's `loaded_at`, stored after it: when hits should start
    /// a background refresh.
    loaded_at: AtomicI64,
    /// Held only by refreshers, across the fetch: the validation hot path never takes it.
    refresh: tokio::sync::Mutex<Bookkeeping>,
    background: AtomicBool,
}

#[derive(Default)]
struct Bookkeeping {
    last_attempt: Option<i64>,
    generation: u64,
    /// The last serial given to a key of this tenant.
    serial: u64,
}

/// What the key store needs; built and validated once by the configuration builder.
#[derive(Debug, Clone)]
pub(crate) struct KeySettings {
    /// The authority host (`https://…`, or `http://` on loopback), without a trailing slash.
    pub(crate) authority: String,
    /// The tenants whose keys are held (the allowed tenants).
    pub(crate) tenants: Vec<String>,
    /// Bound of each discovery or JWKS fetch.
    pub(crate) timeout: Duration,
    /// Minimum time between two fetches for one tenant (at least 1 s).
    pub(crate) min_refresh: Duration,
    /// Age after which a key set is refreshed in the background.
    pub(crate) refresh_interval: Duration,
    /// The clock that ages key sets.
    pub(crate) clock: Arc<dyn Clock>,
}

/// Signing keys of every allowed tenant.
pub(crate) struct KeyStore {
    http: reqwest::Client,
    authority: String,
    timeout: Duration,
    /// Kept at full precision: the clock counts whole seconds, so 1.5 s means
    /// "two clock seconds", never "one".
    min_refresh: Duration,
    interval: i64,
    clock: Arc<dyn Clock>,
    tenants: HashMap<String, Arc<Tenant>>,
    /// The same tenants by slot (a [`KeyStamp`]'s index).
    slots: Vec<Arc<Tenant>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("authority", &self.authority)
            .field("tenants", &self.tenants.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// A store for `settings.tenants`, fetching over `http`. Nothing is fetched
    /// until keys are first asked for (or [`warm_up`](Self::warm_up)).
    pub(crate) fn new(settings: KeySettings, http: reqwest::Client) -> Self {
        let KeySettings {
            authority,
            tenants,
            timeout,
            min_refresh,
            refresh_interval,
            clock,
        } = settings;
        let slots: Vec<Arc<Tenant>> = tenants
            .into_iter()
            .enumerate()
            .map(|(slot, id)| {
                Arc::new(Tenant {
                    id,
                    slot: u32::try_from(slot).expect("fewer than 2^32 allowed tenants"),
                    current: ArcSwapOption::empty(),
                    intact_since: AtomicU64::new(u64::MAX),
                    loaded_at: AtomicI64::new(i64::MAX),
                    refresh: tokio::sync::Mutex::new(Bookkeeping::default()),
                    background: AtomicBool::new(false),
                })
            })
            .collect();
        let tenants = slots
            .iter()
            .map(|t| (t.id.clone(), Arc::clone(t)))
            .collect();
        Self {
            http,
            authority,
            timeout,
            min_refresh,
            interval: refresh_interval.as_secs() as i64,
            clock,
            tenants,
            slots,
        }
    }

    /// Whether the key that verified a token (`stamp`) is in its tenant's
    /// current key set, unchanged: the validated-token cache's check on every
    /// hit. Two atomic loads (no key gone since the stamp's set: the usual
    /// case); the current set is loaded and its keys looked through only when a
    /// refresh has removed or replaced a key since (see the module docs). A set
    /// older than the refresh interval (by `now`), or fetched at a time the
    /// clock has stepped back past, is refreshed in the background, as
    /// [`keys`](Self::keys) does, so that hits alone keep the keys current.
    pub(crate) fn still_holds(self: &Arc<Self>, stamp: KeyStamp, now: i64) -> bool {
        let Some(t) = self.slots.get(stamp.slot as usize) else {
            return false;
        };
        if self.due(t.loaded_at.load(Ordering::Relaxed), now) {
            if let Some(cur) = t.current.load().as_deref() {
                self.spawn_background_refresh(t, cur.generation);
            }
        }
        if stamp.generation >= t.intact_since.load(Ordering::Acquire) {
            return true;
        }
        t.current
            .load()
            .as_deref()
            .is_some_and(|cur| cur.keys.values().any(|k| k.serial == stamp.serial))
    }

    /// The keys of `tenant` (which must be an allowed tenant), loading them on
    /// first use. A stale set is returned at once and refreshed in the background.
    pub(crate) async fn keys(self: &Arc<Self>, tenant: &str) -> Result<Arc<Loaded>, KeyError> {
        let t = self.tenant(tenant)?;
        if let Some(loaded) = t.current.load_full() {
            if self.due(loaded.loaded_at, self.clock.now()) {
                self.spawn_background_refresh(t, loaded.generation);
            }
            return Ok(loaded);
        }
        self.refresh(t, None).await
    }

    /// Called when a token names a `kid` missing from `seen`: refreshes unless
    /// someone already did since `seen`, or the last fetch was less than
    /// `min_key_refresh` ago. Returns the newest set either way.
    pub(crate) async fn refresh_for_unknown_kid(
        self: &Arc<Self>,
        tenant: &str,
        seen: &Loaded,
    ) -> Result<Arc<Loaded>, KeyError> {
        let t = self.tenant(tenant)?;
        self.refresh(t, Some(seen.generation)).await
    }

    /// Loads every tenant's keys now (optional warm-up at start-up).
    pub(crate) async fn warm_up(self: &Arc<Self>) -> Result<(), KeyError> {
        for id in self.tenants.keys() {
            self.keys(id).await?;
        }
        Ok(())
    }

    /// Whether a set fetched at `loaded_at` is refreshed in the background at
    /// `now`: it is older than the refresh interval, or it is from the clock's
    /// future (the clock stepped back: else the keys, and the removal of a
    /// rolled key, would wait until the clock caught up).
    fn due(&self, loaded_at: i64, now: i64) -> bool {
        let age = now.saturating_sub(loaded_at);
        age >= self.interval || age < 0
    }

    fn tenant(&self, tenant: &str) -> Result<&Arc<Tenant>, KeyError> {
        self.tenants
            .get(tenant)
            .ok_or(KeyError::Invalid("tenant (not allowed)"))
    }

    fn spawn_background_refresh(self: &Arc<Self>, t: &Arc<Tenant>, generation: u64) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if t.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = Arc::clone(self);
        let t = Arc::clone(t);
        handle.spawn(async move {
            let _ = store.refresh(&t, Some(generation)).await;
            t.background.store(false, Ordering::Release);
        });
    }

    async fn refresh(&self, t: &Tenant, seen: Option<u64>) -> Result<Arc<Loaded>, KeyError> {
        let mut book = t.refresh.lock().await;
        let current = t.current.load_full();
        if let Some(cur) = &current {
            if Some(cur.generation) != seen {
                // Someone refreshed while we waited for the lock.
                return Ok(Arc::clone(cur));
            }
        }
        let now = self.clock.now();
        // A last attempt "in the future" means the clock stepped back: it does
        // not hold the refresh back (else a key rollover would wait until the
        // clock caught up); the limit then counts from this attempt.
        let elapsed = book
            .last_attempt
            .and_then(|last| u64::try_from(now - last).ok());
        if elapsed.is_some_and(|secs| Duration::from_secs(secs) < self.min_refresh) {
            return current.ok_or(KeyError::Backoff);
        }
        book.last_attempt = Some(now);
        match self.fetch(&t.id).await {
            Ok((metadata, keys)) => {
                let loaded = land(t, &mut book, current.as_deref(), metadata, keys, now);
                crate::metrics::key_refresh(true);
                tracing::debug!(tenant = %t.id, keys = loaded.keys.len(), "signing keys loaded");
                Ok(loaded)
            }
            Err(e) => {
                crate::metrics::key_refresh(false);
                tracing::warn!(tenant = %t.id, error = %e, kept_last_good = current.is_some(), "signing key refresh failed");
                current.ok_or(e)
            }
        }
    }

    /// Lands a key set for `tenant` as a successful fetch would (no HTTP),
    /// after any refresh under way.
    #[cfg(test)]
    pub(crate) async fn land_for_tests(
        &self,
        tenant: &str,
        metadata: TenantMetadata,
        keys: HashMap<String, ParsedPublicKey>,
    ) -> Arc<Loaded> {
        let t = self.tenant(tenant).expect("an allowed tenant");
        let mut book = t.refresh.lock().await;
        let current = t.current.load_full();
        land(
            t,
            &mut book,
            current.as_deref(),
            metadata,
            keys,
            self.clock.now(),
        )
    }

    async fn fetch(
        &self,
        tenant: &str,
    ) -> Result<(TenantMetadata, HashMap<String, ParsedPublicKey>), KeyError> {
        let metadata = discover(&self.http, &self.authority, tenant, self.timeout).await?;
        let jwks: serde_json::Value =
            fetch_json(&self.http, &metadata.jwks_uri, "JWKS", self.timeout).await?;
        let keys = keyset::parse(jwks)?;
        Ok((metadata, keys))
    }
}

/// Makes a fetched set `t`'s current one (under its refresh lock, `book`),
/// following `previous`: keys it keeps unchanged keep their serials, and
/// `intact_since` carries over when it kept them all.
fn land(
    t: &Tenant,
    book: &mut Bookkeeping,
    previous: Option<&Loaded>,
    metadata: TenantMetadata,
    keys: HashMap<String, ParsedPublicKey>,
    now: i64,
) -> Arc<Loaded> {
    book.generation += 1;
    let previous = previous.filter(|p| p.metadata == metadata);
    let kept = |kid: &str, key: &ParsedPublicKey| {
        let old = previous?.keys.get(kid)?;
        (old.key.as_ref() == key.as_ref()).then_some(old.serial)
    };
    let keys: HashMap<String, VerifyingKey> = keys
        .into_iter()
        .map(|(kid, key)| {
            let serial = kept(&kid, &key).unwrap_or_else(|| {
                book.serial += 1;
                book.serial
            });
            (kid, VerifyingKey { key, serial })
        })
        .collect();
    let serials: HashSet<u64> = keys.values().map(|k| k.serial).collect();
    let intact_since = match previous {
        Some(p) if p.keys.values().all(|old| serials.contains(&old.serial)) => p.intact_since,
        _ => book.generation,
    };
    let loaded = Arc::new(Loaded {
        metadata,
        keys,
        generation: book.generation,
        loaded_at: now,
        intact_since,
        slot: t.slot,
    });
    // Raised first: a hit that still reads the old value is one that came
    // before this set (its key is in the old set); after it, stamps older than
    // `intact_since` look through the current keys, old or new.
    t.intact_since.store(intact_since, Ordering::Release);
    t.current.store(Some(Arc::clone(&loaded)));
    t.loaded_at.store(now, Ordering::Relaxed);
    loaded
}
