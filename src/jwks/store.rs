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
//! fetches). A failed refresh keeps the last good keys; only a tenant whose keys
//! were never loaded fails, with a [`KeyError`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
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
    pub(crate) keys: HashMap<String, ParsedPublicKey>,
    /// Increases with every successful fetch; lets waiters see that someone
    /// else refreshed while they queued.
    pub(crate) generation: u64,
    /// Clock seconds at which this set was fetched.
    pub(crate) loaded_at: i64,
}

struct Tenant {
    id: String,
    current: ArcSwapOption<Loaded>,
    /// Held only by refreshers, across the fetch: the validation hot path never takes it.
    refresh: tokio::sync::Mutex<Bookkeeping>,
    background: AtomicBool,
}

#[derive(Default)]
struct Bookkeeping {
    last_attempt: Option<i64>,
    generation: u64,
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
        let tenants = tenants
            .into_iter()
            .map(|id| {
                let t = Arc::new(Tenant {
                    id: id.clone(),
                    current: ArcSwapOption::empty(),
                    refresh: tokio::sync::Mutex::new(Bookkeeping::default()),
                    background: AtomicBool::new(false),
                });
                (id, t)
            })
            .collect();
        Self {
            http,
            authority,
            timeout,
            min_refresh,
            interval: refresh_interval.as_secs() as i64,
            clock,
            tenants,
        }
    }

    /// The keys of `tenant` (which must be an allowed tenant), loading them on
    /// first use. A stale set is returned at once and refreshed in the background.
    pub(crate) async fn keys(self: &Arc<Self>, tenant: &str) -> Result<Arc<Loaded>, KeyError> {
        let t = self.tenant(tenant)?;
        if let Some(loaded) = t.current.load_full() {
            if self.clock.now() - loaded.loaded_at >= self.interval {
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
        if let Some(last) = book.last_attempt {
            let elapsed = Duration::from_secs(u64::try_from(now - last).unwrap_or(0));
            if elapsed < self.min_refresh {
                return current.ok_or(KeyError::Backoff);
            }
        }
        book.last_attempt = Some(now);
        match self.fetch(&t.id).await {
            Ok((metadata, keys)) => {
                book.generation += 1;
                let loaded = Arc::new(Loaded {
                    metadata,
                    keys,
                    generation: book.generation,
                    loaded_at: now,
                });
                t.current.store(Some(Arc::clone(&loaded)));
                tracing::debug!(tenant = %t.id, keys = loaded.keys.len(), "signing keys loaded");
                Ok(loaded)
            }
            Err(e) => {
                tracing::warn!(tenant = %t.id, error = %e, kept_last_good = current.is_some(), "signing key refresh failed");
                current.ok_or(e)
            }
        }
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
