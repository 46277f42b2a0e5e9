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
//! A record's version is its sealed value (a fresh random nonce on every write);
//! [`replace`](SessionStore::replace) is a Lua script that sets the new value only
//! if the key still holds that one: an ended (deleted) session or a record another
//! replica has rewritten since it was read is never overwritten.
//!
//! Unlike the L2, a Redis failure is an error ([`StoreError`]), never taken for a
//! missing session; a value that does not open (a retired key, tampering) is a
//! missing session, logged.

use std::time::Duration;

use crate::exchange::l2::{EntraAuth, L2Settings, Outcome, SealedNamespace};

use super::{RecordVersion, SessionKey, SessionRecord, SessionStore, StoreError, StoreFuture};

/// Domain separator of everything the store derives from a session key.
const DOMAIN: &[u8] = b"axum-obo-session-redis";

/// Sessions in Redis, sealed (feature `redis`): shared by replicas, kept across restarts.
#[derive(Debug)]
pub(crate) struct RedisSessionStore {
    ns: SealedNamespace,
}

impl RedisSessionStore {
    /// `None` (logged) if the settings cannot be used; `build()` checked them.
    pub(crate) fn new(
        settings: &L2Settings,
        auth: Option<&EntraAuth>,
        client_id: &str,
    ) -> Option<Self> {
        let ns = SealedNamespace::new(
            settings,
            auth,
            client_id,
            DOMAIN,
            "session:",
            "Redis session store",
        )?;
        Some(Self { ns })
    }

    /// `{prefix}session:{hex digest}` of the session key's own digest.
    fn redis_key(&self, key: &SessionKey) -> String {
        self.ns.redis_key(&key.digest())
    }

    /// `record` sealed for `key`.
    fn seal(&self, key: &SessionKey, record: &SessionRecord) -> Result<Vec<u8>, StoreError> {
        self.ns
            .sealer
            .seal(&self.aad(key), &record.to_plaintext())
            .ok_or_else(|| StoreError::new("cannot seal the session record"))
    }

    /// Associated data binding the session key itself.
    fn aad(&self, key: &SessionKey) -> Vec<u8> {
        self.ns.aad(key.bytes())
    }
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
    fn get<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> StoreFuture<'a, Option<(SessionRecord, RecordVersion)>> {
        Box::pin(async move {
            let Some(sealed) = failed(self.ns.store.get(&self.redis_key(key)).await, "GET")? else {
                return Ok(None);
            };
            let record = self
                .ns
                .sealer
                .open(&self.aad(key), &sealed)
                .ok()
                .and_then(|plain| SessionRecord::from_plaintext(&plain));
            if record.is_none() {
                tracing::warn!(
                    "Redis session value does not open (retired key or tampering); session unknown"
                );
            }
            Ok(record.map(|r| (r, RecordVersion::new(sealed))))
        })
    }

    fn insert<'a>(
        &'a self,
        key: &'a SessionKey,
        record: &'a SessionRecord,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let sealed = self.seal(key, record)?;
            failed(
                self.ns
                    .store
                    .set_px(&self.redis_key(key), &sealed, ttl)
                    .await,
                "SET",
            )
        })
    }

    fn replace<'a>(
        &'a self,
        key: &'a SessionKey,
        record: &'a SessionRecord,
        expected: &'a RecordVersion,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let sealed = self.seal(key, record)?;
            failed(
                self.ns
                    .store
                    .compare_and_set(&self.redis_key(key), expected.as_bytes(), &sealed, ttl)
                    .await,
                "EVAL",
            )
        })
    }

    fn delete<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, ()> {
        Box::pin(async move { failed(self.ns.store.del(&self.redis_key(key)).await, "DEL") })
    }
}
