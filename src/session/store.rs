//! Where sessions live: the [`SessionStore`] trait, the [`SessionRecord`] it holds,
//! and the in-memory default, [`MemorySessionStore`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::ops::compute::Op;
use moka::Expiry;
use serde::{Deserialize, Serialize};

use super::SessionKey;
use crate::secret::SecretString;

/// The future of a [`SessionStore`] call.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Storage of sessions, shared by every replica that must see them.
///
/// Implementations name an entry by [`SessionKey`] but should never store the key
/// in clear (the built-in stores use a digest of it), and must encrypt records at
/// rest: a record holds the user's refresh token. Every write sets the entry's
/// time to live (the idle timeout): an entry nobody uses disappears by itself.
///
/// Writes to an existing session are compare-and-set: [`get`](Self::get) answers
/// the record with a [`RecordVersion`], and [`replace`](Self::replace) writes only
/// if the stored entry is still that version. A session deleted by
/// [`delete`](Self::delete) (ended) therefore stays deleted: a refresh or a touch
/// that read it earlier, here or on another replica, finds it gone and writes
/// nothing. `replace` must be atomic in the store (the Redis store runs a script),
/// and `delete` must not slip between its compare and its write (the memory store
/// runs both under the key's compute lock).
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// The record of `key` and its version, if there is one.
    fn get<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> StoreFuture<'a, Option<(SessionRecord, RecordVersion)>>;
    /// Stores the record of a new session (`key` was just generated) for `ttl`.
    fn insert<'a>(
        &'a self,
        key: &'a SessionKey,
        record: &'a SessionRecord,
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;
    /// Replaces `key`'s record with `record` for `ttl` if the stored one is still
    /// `expected` (the version [`get`](Self::get) answered); `false`, writing
    /// nothing, if it has changed or is gone.
    fn replace<'a>(
        &'a self,
        key: &'a SessionKey,
        record: &'a SessionRecord,
        expected: &'a RecordVersion,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;
    /// Removes `key`'s record (if any).
    fn delete<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, ()>;
}

/// The version of a stored [`SessionRecord`], for [`SessionStore::replace`]'s
/// compare-and-set: opaque bytes, different for every write (the in-memory store
/// counts writes; the Redis store uses the sealed value itself, whose nonce is
/// random).
#[derive(Clone, PartialEq, Eq)]
pub struct RecordVersion(Arc<[u8]>);

impl RecordVersion {
    /// A version made of `bytes`.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into().into())
    }

    /// The version's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RecordVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordVersion({} bytes)", self.0.len())
    }
}

/// A store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the session store failed: {message}")]
pub struct StoreError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A failure caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

/// What a store keeps for a session: whose it is (tenant, user object id, this
/// API's client id), the current refresh token, and when it was started and last
/// used (clock seconds). `Debug` redacts the refresh token.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub(crate) tid: String,
    pub(crate) oid: String,
    pub(crate) client_id: String,
    pub(crate) refresh_token: SecretString,
    pub(crate) started_at: i64,
    pub(crate) last_used: i64,
}

#[derive(Serialize, Deserialize)]
struct Encoded {
    v: u8,
    tid: String,
    oid: String,
    cid: String,
    rt: String,
    s: i64,
    u: i64,
}

impl SessionRecord {
    /// The user's tenant id.
    pub fn tid(&self) -> &str {
        &self.tid
    }

    /// The user's object id.
    pub fn oid(&self) -> &str {
        &self.oid
    }

    /// The client id of the API that started the session.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// When the session was started (clock seconds).
    pub fn started_at(&self) -> i64 {
        self.started_at
    }

    /// When the session was last used (clock seconds).
    pub fn last_used(&self) -> i64 {
        self.last_used
    }

    /// The record as bytes, **including the refresh token in clear**: for a custom
    /// store, which must encrypt them before they leave the process.
    pub fn to_plaintext(&self) -> Vec<u8> {
        serde_json::to_vec(&Encoded {
            v: 1,
            tid: self.tid.clone(),
            oid: self.oid.clone(),
            cid: self.client_id.clone(),
            rt: self.refresh_token.expose().to_owned(),
            s: self.started_at,
            u: self.last_used,
        })
        .unwrap_or_default()
    }

    /// A record from [`to_plaintext`](Self::to_plaintext)'s bytes; `None` if they
    /// are not one.
    pub fn from_plaintext(bytes: &[u8]) -> Option<Self> {
        let e: Encoded = serde_json::from_slice(bytes).ok()?;
        (e.v == 1 && !e.rt.is_empty()).then(|| Self {
            tid: e.tid,
            oid: e.oid,
            client_id: e.cid,
            refresh_token: SecretString::new(e.rt),
            started_at: e.s,
            last_used: e.u,
        })
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionRecord")
            .field("tid", &self.tid)
            .field("oid", &self.oid)
            .field("client_id", &self.client_id)
            .field("refresh_token", &self.refresh_token)
            .field("started_at", &self.started_at)
            .field("last_used", &self.last_used)
            .finish()
    }
}

/// Sessions in this process's memory (the default): lost on restart and not
/// shared by replicas. Entries expire after their time to live (real time), and
/// are named by a digest of the key.
#[derive(Clone)]
pub struct MemorySessionStore {
    entries: Cache<[u8; 32], Stored>,
    /// The version of the next write.
    writes: Arc<AtomicU64>,
}

/// A record, its time to live and its version (the write that stored it).
#[derive(Clone)]
struct Stored {
    record: SessionRecord,
    ttl: Duration,
    version: u64,
}

impl fmt::Debug for MemorySessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySessionStore")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

struct RecordExpiry;

impl Expiry<[u8; 32], Stored> for RecordExpiry {
    fn expire_after_create(&self, _: &[u8; 32], v: &Stored, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &[u8; 32],
        v: &Stored,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            // LRU, not TinyLFU (which may refuse to keep a new record while
            // the store is full): a session just started is always kept.
            entries: Cache::builder()
                .max_capacity(1_000_000)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .expire_after(RecordExpiry)
                .build(),
            writes: Arc::new(AtomicU64::new(1)),
        }
    }

    fn stored(&self, record: &SessionRecord, ttl: Duration) -> Stored {
        Stored {
            record: record.clone(),
            ttl,
            version: self.writes.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl SessionStore for MemorySessionStore {
    fn get<'a>(
        &'a self,
        key: &'a SessionKey,
    ) -> StoreFuture<'a, Option<(SessionRecord, RecordVersion)>> {
        Box::pin(async move {
            Ok(self
                .entries
                .get(&key.digest())
                .await
                .map(|s| (s.record, RecordVersion::new(s.version.to_be_bytes()))))
        })
    }

    fn insert<'a>(
        &'a self,
        key: &'a SessionKey,
        record: &'a SessionRecord,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.entries
                .insert(key.digest(), self.stored(record, ttl))
                .await;
            Ok(())
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
            // Atomic per key: moka runs the closures of one key one at a time
            // (`delete` is one of them; its insert after the closure is unconditional).
            let result = self
                .entries
                .entry(key.digest())
                .and_compute_with(|current| {
                    let same = current.is_some_and(|e| {
                        e.value().version.to_be_bytes().as_slice() == expected.as_bytes()
                    });
                    std::future::ready(if same {
                        Op::Put(self.stored(record, ttl))
                    } else {
                        Op::Nop
                    })
                })
                .await;
            Ok(matches!(
                result,
                moka::ops::compute::CompResult::ReplacedWith(_)
            ))
        })
    }

    fn delete<'a>(&'a self, key: &'a SessionKey) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // Through the key's compute lock, as `replace`: a plain `invalidate`
            // could land between a replace's read and its write, and the write
            // would bring the ended session back.
            self.entries
                .entry(key.digest())
                .and_compute_with(|_| std::future::ready(Op::Remove))
                .await;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SessionRecord {
        SessionRecord {
            tid: "t".into(),
            oid: "o".into(),
            client_id: "c".into(),
            refresh_token: SecretString::new("1.Asecret"),
            started_at: 1,
            last_used: 2,
        }
    }

    #[test]
    fn records_round_trip_and_debug_redacts() {
        let r = record();
        assert_eq!(
            SessionRecord::from_plaintext(&r.to_plaintext()),
            Some(r.clone())
        );
        assert!(!format!("{r:?}").contains("secret"));
        assert_eq!(SessionRecord::from_plaintext(b"{}"), None);
    }

    #[tokio::test]
    async fn memory_store_inserts_gets_and_deletes() {
        let store = MemorySessionStore::new();
        let key = SessionKey::generate();
        assert_eq!(store.get(&key).await.unwrap(), None);
        store
            .insert(&key, &record(), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(store.get(&key).await.unwrap().unwrap().0, record());
        store.delete(&key).await.unwrap();
        store.delete(&key).await.unwrap();
        assert_eq!(store.get(&key).await.unwrap(), None);
    }

    /// `end` racing a refresh's compare-and-set: whichever comes first, the
    /// session is gone afterwards (a delete between the replace's read and its
    /// write must not be overwritten).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delete_racing_a_replace_is_never_undone() {
        let store = MemorySessionStore::new();
        let ttl = Duration::from_secs(60);
        for round in 0..3_000 {
            let key = SessionKey::generate();
            store.insert(&key, &record(), ttl).await.unwrap();
            let (_, version) = store.get(&key).await.unwrap().unwrap();
            let (s1, k1) = (store.clone(), key.clone());
            let replace = tokio::spawn(async move {
                let mut r = record();
                r.last_used = 9;
                s1.replace(&k1, &r, &version, ttl).await.unwrap()
            });
            let (s2, k2) = (store.clone(), key.clone());
            let delete = tokio::spawn(async move { s2.delete(&k2).await.unwrap() });
            let (replaced, deleted) = tokio::join!(replace, delete);
            let _ = (replaced.unwrap(), deleted.unwrap());
            assert_eq!(
                store.get(&key).await.unwrap(),
                None,
                "round {round}: an ended session was written back"
            );
        }
    }

    #[tokio::test]
    async fn memory_store_replaces_only_the_version_it_was_given() {
        let store = MemorySessionStore::new();
        let key = SessionKey::generate();
        let ttl = Duration::from_secs(60);
        store.insert(&key, &record(), ttl).await.unwrap();
        let (_, v1) = store.get(&key).await.unwrap().unwrap();
        let mut newer = record();
        newer.last_used = 3;
        assert!(store.replace(&key, &newer, &v1, ttl).await.unwrap());
        let (stored, v2) = store.get(&key).await.unwrap().unwrap();
        assert_eq!((stored.last_used, v1 == v2), (3, false));
        // A writer that read before the last write writes nothing.
        assert!(!store.replace(&key, &record(), &v1, ttl).await.unwrap());
        assert_eq!(store.get(&key).await.unwrap().unwrap().0.last_used, 3);
        // A deleted (ended) session is not written back.
        store.delete(&key).await.unwrap();
        assert!(!store.replace(&key, &newer, &v2, ttl).await.unwrap());
        assert_eq!(store.get(&key).await.unwrap(), None);
    }
}
