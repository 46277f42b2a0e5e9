//! [`RedisSessionStore`]: sessions in the L2's Redis, sealed with the L2's keys.
//!
//! Each record is one Redis string under `{prefix}session:{hex digest}`, the
//! digest (SHA-256 under a domain separator and this API's client id) of the
//! session key's own digest: neither the key nor an identifier is in clear. The
//! value is the record sealed with AES-256-GCM by the L2's current key (old keys
//! still open it: rotation), its associated data binding the format, the prefix,
//! the client id and the session key itself: a value copied under another
//! session's Redis key does not open. The time to live is the idle timeout,
//! renewed on every write, so an abandoned session disappears by itself.
//!
//! Unlike the L2, a Redis failure is an error ([`StoreError`]), never taken for a
//! missing session; a value that does not open (a retired key, tampering) is a
//! missing session, logged.

use std::fmt::Write as _;
use std::time::Duration;

use crate::exchange::l2::{L2Settings, Outcome, RedisStore, Sealer, SEAL_VERSION};

use super::{SessionKey, SessionRecord, SessionStore, StoreError, StoreFuture};

/// Domain separator of everything the store derives from a session key.
const DOMAIN: &[u8] = b"axum-obo-session-redis";

/// Sessions in Redis, sealed (feature `redis`): shared by replicas, kept across restarts.
#[derive(Debug)]
pub(crate) struct RedisSessionStore {
    store: RedisStore,
    sealer: Sealer,
    prefix: String,
    client_id: String,
}

impl RedisSessionStore {
    /// `None` (logged) if the settings cannot be used; `build()` checked them.
    pub(crate) fn new(settings: &L2Settings, client_id: &str) -> Option<Self> {
        let store = RedisStore::new(settings.url.expose(), settings.timeout)
            .inspect_err(|e| tracing::error!(error = %e, "Redis session store disabled: bad URL"))
            .ok()?;
        let sealer = Sealer::new(&settings.key, &settings.old_keys)?;
        Some(Self {
            store,
            sealer,
            prefix: settings.prefix.clone(),
            client_id: client_id.to_owned(),
        })
    }

    fn redis_key(&self, key: &SessionKey) -> String {
        let mut input = Vec::with_capacity(DOMAIN.len() + 8 + self.client_id.len() + 32);
        input.extend_from_slice(DOMAIN);
        push_prefixed(&mut input, self.client_id.as_bytes());
        input.extend_from_slice(&key.digest());
        let digest = crate::digest::sha256(&input);
        let mut out = String::with_capacity(self.prefix.len() + 8 + 64);
        out.push_str(&self.prefix);
        out.push_str("session:");
        for b in digest {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    fn aad(&self, key: &SessionKey) -> Vec<u8> {
        let mut aad = Vec::with_capacity(96 + self.prefix.len() + self.client_id.len());
        aad.extend_from_slice(DOMAIN);
        aad.push(SEAL_VERSION);
        push_prefixed(&mut aad, self.prefix.as_bytes());
        push_prefixed(&mut aad, self.client_id.as_bytes());
        aad.extend_from_slice(key.bytes());
        aad
    }
}

fn push_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn failed<T>(outcome: Outcome<T>, op: &str) -> Result<T, StoreError> {
    match outcome {
        Outcome::Done(v) => Ok(v),
        Outcome::Skipped => Err(StoreError::new(format!(
            "Redis {op} skipped: Redis failed moments ago"
        ))),
        Outcome::Failed => Err(StoreError::new(format!("Redis {op} failed"))),
    }
}

impl SessionStore for RedisSessionStore {
    fn get<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, Option<SessionRecord>> {
        Box::pin(async move {
            let Some(sealed) = failed(self.store.get(&self.redis_key(key)).await, "GET")? else {
                return Ok(None);
            };
            let record = self
                .sealer
                .open(&self.aad(key), &sealed)
                .ok()
                .and_then(|plain| SessionRecord::from_plaintext(&plain));
            if record.is_none() {
                tracing::warn!(
                    "Redis session value does not open (retired key or tampering); session unknown"
                );
            }
            Ok(record)
        })
    }

    fn put<'a>(
        &'a self,
        key: &'a SessionKey,
        record: &'a SessionRecord,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let sealed = self
                .sealer
                .seal(&self.aad(key), &record.to_plaintext())
                .ok_or_else(|| StoreError::new("cannot seal the session record"))?;
            failed(
                self.store.set_px(&self.redis_key(key), &sealed, ttl).await,
                "SET",
            )
        })
    }

    fn delete<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, ()> {
        Box::pin(async move { failed(self.store.del(&self.redis_key(key)).await, "DEL") })
    }
}
