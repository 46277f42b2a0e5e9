//! [`Sessions`]: start, use and end long-running sessions, and [`SessionSettings`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use super::limit::StartLimiter;
use super::locks::LockTable;
use super::{RecordVersion, SessionError, SessionKey, SessionRecord, SessionStore, StoreError};
use crate::downstream::{DownstreamClient, GraphClient};
use crate::exchange::cache::CachedToken;
use crate::exchange::endpoint::{Issued, TokenEndpoint};
use crate::exchange::{cache_entry, ExchangeSettings, OboError};
use crate::metrics::{self, SessionEnd};
use crate::scope::Scope;
use crate::secret::{BearerToken, SecretString};
use crate::validate::Principal;

/// `last_used` is written back at most this often per session (a store write per
/// token would make every use a write).
const TOUCH_EVERY: i64 = 60;

/// A rotation the store failed to take is dropped once neither kept nor redeemed
/// for this long or the idle timeout, whichever is longer: a session in use
/// refreshes at least once per token lifetime (at most 28 hours), and one idle
/// for longer has ended.
const MAX_PENDING_AGE: Duration = crate::exchange::endpoint::MAX_TOKEN_LIFETIME;

/// How many times a refreshed record is written over records that other writers
/// (touches) changed meanwhile before giving up (keeping the rotation in memory).
const WRITE_ATTEMPTS: usize = 4;

/// Settings of sessions (validated by the configuration builder).
#[derive(Clone, Debug)]
pub(crate) struct SessionSettings {
    /// A session unused for this long has ended.
    pub(crate) idle_timeout: Duration,
    /// The store; `None`: Redis when the L2 is configured, memory otherwise.
    pub(crate) store: Option<Arc<dyn SessionStore>>,
    /// Session starts per user: at most this many …
    pub(crate) start_limit: u32,
    /// … per this long (a token bucket refilled evenly).
    pub(crate) start_window: Duration,
}

/// Whose session: a tenant and a user object id (e.g. kept next to the key in a
/// job queue), checked by [`Sessions::token_for`] and [`Sessions::graph_for`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOwner {
    tid: String,
    oid: String,
}

impl SessionOwner {
    /// The user `oid` of tenant `tid`.
    pub fn new(tid: impl Into<String>, oid: impl Into<String>) -> Self {
        Self {
            tid: tid.into(),
            oid: oid.into(),
        }
    }

    /// The signed-in caller.
    pub fn of(principal: &Principal) -> Self {
        Self::new(principal.tid(), principal.oid())
    }

    /// The tenant id.
    pub fn tid(&self) -> &str {
        &self.tid
    }

    /// The user's object id.
    pub fn oid(&self) -> &str {
        &self.oid
    }
}

/// A downstream token obtained through a session.
#[derive(Clone)]
pub struct SessionToken(Arc<CachedToken>);

impl SessionToken {
    /// The access token. Send it only to the downstream API; never log it.
    pub fn access_token(&self) -> &BearerToken {
        &self.0.access_token
    }

    /// Expiry, seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }

    /// The scopes granted.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.0.scopes.iter().map(|s| &**s)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken")
            .field("access_token", &self.0.access_token)
            .field("expires_at", &self.0.expires_at)
            .finish_non_exhaustive()
    }
}

/// Token cache key: the session's digest and the scope set.
type TokenKey = ([u8; 32], &'static [&'static str]);

struct TokenExpiry;

impl Expiry<TokenKey, Arc<CachedToken>> for TokenExpiry {
    fn expire_after_create(
        &self,
        _: &TokenKey,
        v: &Arc<CachedToken>,
        _: Instant,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Long-running On-Behalf-Of sessions: downstream tokens for a user after their
/// request has ended (background jobs, agents). Get it from
/// [`OboLayer::sessions`](crate::OboLayer::sessions); start a session in a
/// handler with [`OboContext::start_session`](crate::layer::OboContext::start_session)
/// (one exchange) or [`OboToken::start_session`](crate::OboToken::start_session).
/// Cheap to clone. See the [module docs](super).
///
/// Its token cache follows the configured [clock](crate::OboConfigBuilder::clock):
/// a cached token is served while fresh on that clock (with a
/// [`ManualClock`](crate::clock::ManualClock), advancing it expires them; moka's
/// own real-time expiry only frees memory). Idle timeouts and the start limit use
/// the same clock.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Arc<ExchangeSettings>,
    endpoint: Arc<TokenEndpoint>,
    store: Arc<dyn SessionStore>,
    idle_timeout: Duration,
    tokens: Cache<TokenKey, Arc<CachedToken>>,
    /// One refresh at a time per session (a rotated refresh token must be stored
    /// before the next refresh reads it); a lock is kept while anyone holds or
    /// waits for it, never evicted.
    locks: LockTable,
    /// Rotated refresh tokens the store failed to take, by session digest: used
    /// by the next refresh (the stored one may be spent), dropped once stored.
    pending: Mutex<PendingRotations>,
    /// Session starts per user.
    starts: StartLimiter,
    graph: GraphClient,
    http: reqwest::Client,
    authority: String,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("store", &self.inner.store)
            .field("idle_timeout", &self.inner.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    pub(crate) fn new(
        settings: Arc<ExchangeSettings>,
        endpoint: Arc<TokenEndpoint>,
        store: Arc<dyn SessionStore>,
        session: &SessionSettings,
        graph: GraphClient,
        http: reqwest::Client,
    ) -> Self {
        let authority = settings.authority.clone();
        let idle_timeout = session.idle_timeout;
        let starts = StartLimiter::new(session.start_limit, session.start_window);
        Self {
            inner: Arc::new(Inner {
                settings,
                endpoint,
                store,
                idle_timeout,
                tokens: Cache::builder()
                    .max_capacity(100_000)
                    .expire_after(TokenExpiry)
                    .support_invalidation_closures()
                    .build(),
                locks: LockTable::default(),
                pending: Mutex::new(PendingRotations::new(idle_timeout)),
                starts,
                graph,
                http,
                authority,
            }),
        }
    }

    fn now(&self) -> i64 {
        self.inner.settings.clock.now()
    }

    /// Admits one more session start for `principal` (before its exchange), or
    /// [`SessionError::TooManySessions`] past the per-user start limit.
    pub(crate) fn admit_start(&self, principal: &Principal) -> Result<(), SessionError> {
        self.inner
            .starts
            .admit(principal.tid(), principal.oid(), self.now())
            .map_err(|retry_after| {
                tracing::info!(
                    tid = principal.tid(),
                    oid = principal.oid(),
                    "session start refused: the user's start limit is reached"
                );
                SessionError::TooManySessions { retry_after }
            })
    }

    /// Records a session for `principal` from the answer to an On-Behalf-Of
    /// exchange with `offline_access` for `scopes`; caches its access token.
    pub(crate) async fn create(
        &self,
        principal: &Principal,
        issued: Issued,
        scopes: &'static [&'static str],
    ) -> Result<SessionKey, SessionError> {
        let refresh_token = issued
            .refresh_token
            .clone()
            .ok_or(SessionError::NoRefreshToken)?;
        let now = self.now();
        let key = SessionKey::generate();
        let record = SessionRecord {
            tid: principal.tid().to_owned(),
            oid: principal.oid().to_owned(),
            client_id: self.inner.settings.client_id.clone(),
            refresh_token,
            started_at: now,
            last_used: now,
        };
        self.inner
            .store
            .insert(&key, &record, self.inner.idle_timeout)
            .await?;
        let token = cache_entry(issued, now, self.inner.settings.refresh_margin, scopes);
        self.inner
            .tokens
            .insert((key.digest(), scopes), Arc::new(token))
            .await;
        metrics::session_started();
        tracing::info!(
            tid = principal.tid(),
            oid = principal.oid(),
            "session started"
        );
        Ok(key)
    }

    /// A downstream token for the scopes of `S` through session `key`: from the
    /// cache while fresh, otherwise redeemed with the session's refresh token (one
    /// refresh at a time per session, the rotated refresh token stored).
    pub async fn token<S: Scope>(&self, key: &SessionKey) -> Result<SessionToken, SessionError> {
        self.token_with(key, None, S::SCOPES).await
    }

    /// As [`token`](Self::token), refused with [`SessionError::OtherUser`] unless
    /// the session is `owner`'s.
    pub async fn token_for<S: Scope>(
        &self,
        key: &SessionKey,
        owner: &SessionOwner,
    ) -> Result<SessionToken, SessionError> {
        self.token_with(key, Some(owner), S::SCOPES).await
    }

    /// A Microsoft Graph client authenticated through session `key` for the scopes
    /// of `S` (as [`OboToken::graph`](crate::OboToken::graph), without the claims
    /// challenge hook).
    pub async fn graph<S: Scope>(&self, key: &SessionKey) -> Result<GraphClient, SessionError> {
        let token = self.token::<S>(key).await?;
        Ok(self.graph_client(&token))
    }

    /// As [`graph`](Self::graph), refused unless the session is `owner`'s.
    pub async fn graph_for<S: Scope>(
        &self,
        key: &SessionKey,
        owner: &SessionOwner,
    ) -> Result<GraphClient, SessionError> {
        let token = self.token_for::<S>(key, owner).await?;
        Ok(self.graph_client(&token))
    }

    /// A client for another downstream API at `base_url`, authenticated through
    /// session `key` for the scopes of `S`. A `base_url` the client refuses is
    /// [`SessionError::Downstream`], checked before any token is asked for.
    pub async fn downstream<S: Scope>(
        &self,
        key: &SessionKey,
        base_url: &str,
    ) -> Result<DownstreamClient, SessionError> {
        // The URL first: a bad one costs no refresh.
        DownstreamClient::new(self.inner.http.clone(), base_url, BearerToken::new(""))?;
        let token = self.token::<S>(key).await?;
        Ok(DownstreamClient::new(
            self.inner.http.clone(),
            base_url,
            token.access_token().clone(),
        )?
        .with_authority(&self.inner.authority))
    }

    fn graph_client(&self, token: &SessionToken) -> GraphClient {
        self.inner
            .graph
            .clone()
            .with_token(token.access_token().clone())
    }

    /// Whose session `key` is, if it is live.
    pub async fn owner(&self, key: &SessionKey) -> Result<SessionOwner, SessionError> {
        let (record, _) = self.load(key, None, self.now()).await?;
        Ok(SessionOwner::new(record.tid, record.oid))
    }

    /// Ends session `key`: its record is deleted from the store and its tokens
    /// from this process's cache. Ending an unknown or ended session is not an error.
    ///
    /// Once it has returned `Ok`, the session is ended for every replica sharing
    /// the store: a refresh or touch already under way (here or elsewhere) finds
    /// the record gone when it writes ([`SessionStore::replace`] is
    /// compare-and-set), writes nothing and answers [`SessionError::Unknown`].
    pub async fn end(&self, key: &SessionKey) -> Result<(), SessionError> {
        // Counted only when there was a session to end (a logout sent twice, or
        // made-up keys, end nothing); one more store read, with the feature only,
        // whose failure is the delete's to report.
        let existed =
            cfg!(feature = "metrics") && matches!(self.inner.store.get(key).await, Ok(Some(_)));
        self.forget(key).await?;
        if existed {
            metrics::session_ended(SessionEnd::Ended);
        }
        tracing::info!("session ended");
        Ok(())
    }

    async fn forget(&self, key: &SessionKey) -> Result<(), SessionError> {
        let digest = key.digest();
        let _ = self
            .inner
            .tokens
            .invalidate_entries_if(move |k, _| k.0 == digest);
        self.forget_pending(&digest);
        self.inner.store.delete(key).await?;
        Ok(())
    }

    /// The live record of `key` at `now`: bound to this API's client id (and to
    /// `owner`, if given), not idle for longer than the idle timeout (else ended).
    async fn load(
        &self,
        key: &SessionKey,
        owner: Option<&SessionOwner>,
        now: i64,
    ) -> Result<(SessionRecord, RecordVersion), SessionError> {
        let Some((record, version)) = self.inner.store.get(key).await? else {
            self.forget_pending(&key.digest());
            return Err(SessionError::Unknown);
        };
        if record.client_id != self.inner.settings.client_id {
            tracing::warn!("session of another API's client id refused");
            return Err(SessionError::Unknown);
        }
        if let Some(owner) = owner {
            if owner.tid != record.tid || owner.oid != record.oid {
                tracing::warn!(
                    tid = owner.tid,
                    oid = owner.oid,
                    "session of another user refused"
                );
                return Err(SessionError::OtherUser);
            }
        }
        let idle = i64::try_from(self.inner.idle_timeout.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_sub(record.last_used) > idle {
            tracing::info!(tid = record.tid, oid = record.oid, "session ended: idle");
            self.forget(key).await?;
            metrics::session_ended(SessionEnd::Idle);
            return Err(SessionError::Unknown);
        }
        Ok((record, version))
    }

    async fn token_with(
        &self,
        key: &SessionKey,
        owner: Option<&SessionOwner>,
        scopes: &'static [&'static str],
    ) -> Result<SessionToken, SessionError> {
        let now = self.now();
        let (record, _) = self.load(key, owner, now).await?;
        if now.saturating_sub(record.last_used) >= TOUCH_EVERY {
            self.touch(key, now).await?;
        }
        let tkey = (key.digest(), scopes);
        if let Some(cached) = self.inner.tokens.get(&tkey).await {
            if now < cached.fresh_until {
                return Ok(SessionToken(cached));
            }
            self.inner.tokens.invalidate(&tkey).await;
        }
        self.inner
            .tokens
            .try_get_with(tkey, self.refresh(key, scopes))
            .await
            .map(SessionToken)
            .map_err(|e: Arc<SessionError>| match Arc::try_unwrap(e) {
                Ok(e) => e,
                Err(shared) => clone_error(&shared),
            })
    }

    /// Writes `last_used = now` back, under the session's lock and on a fresh read,
    /// compare-and-set: it never writes back a refresh token a refresh has just
    /// rotated, nor a session that has ended.
    async fn touch(&self, key: &SessionKey, now: i64) -> Result<(), SessionError> {
        let lock = self.inner.locks.get(key.digest());
        let _guard = lock.lock().await;
        let Some((mut record, version)) = self.inner.store.get(key).await? else {
            return Err(SessionError::Unknown);
        };
        if record.last_used < now {
            record.last_used = now;
            let written = self
                .inner
                .store
                .replace(key, &record, &version, self.inner.idle_timeout)
                .await?;
            // Changed since read: ended, or rewritten by a refresh (another
            // replica's), which set `last_used` itself.
            if !written && self.inner.store.get(key).await?.is_none() {
                return Err(SessionError::Unknown);
            }
        }
        Ok(())
    }

    /// One refresh-token grant for `scopes` (run once per session and scope set by
    /// the single-flight, one per session at a time): the rotated refresh token is
    /// stored; a refused one ends the session.
    async fn refresh(
        &self,
        key: &SessionKey,
        scopes: &'static [&'static str],
    ) -> Result<Arc<CachedToken>, SessionError> {
        let lock = self.inner.locks.get(key.digest());
        let _guard = lock.lock().await;
        let now = self.now();
        // Read again under the lock: a refresh that ran meanwhile (here or on
        // another replica) may have rotated the refresh token.
        let (mut record, version) = self.load(key, None, now).await?;
        // A rotation the store failed to take: the stored token may be spent.
        let stored = record.refresh_token.clone();
        let redeemed = self
            .pending_for(&key.digest(), &stored)
            .unwrap_or_else(|| stored.clone());
        let mut sent: Vec<&str> = scopes.to_vec();
        if !sent.contains(&"offline_access") {
            sent.push("offline_access");
        }
        let sent = sent.join(" ");
        let span = tracing::debug_span!("session_refresh", tid = record.tid, oid = record.oid, scope = %sent);
        let result = tracing::Instrument::instrument(
            self.inner
                .endpoint
                .refresh((&record.tid, &record.oid), &redeemed, &sent, scopes),
            span,
        )
        .await;
        metrics::session_refresh(result.is_ok());
        match result {
            Ok(issued) => {
                record.refresh_token = issued.refresh_token.clone().unwrap_or(redeemed);
                record.last_used = now;
                self.write_refreshed(key, record, version, &stored).await?;
                Ok(Arc::new(cache_entry(
                    issued,
                    now,
                    self.inner.settings.refresh_margin,
                    scopes,
                )))
            }
            Err(OboError::InvalidGrant) => {
                tracing::info!(
                    tid = record.tid,
                    oid = record.oid,
                    "session ended: Entra refused its refresh token; the user must sign in again"
                );
                self.forget(key).await?;
                metrics::session_ended(SessionEnd::Revoked);
                Err(SessionError::SignInAgain)
            }
            Err(e) => Err(SessionError::from_refresh(e)),
        }
    }

    /// Stores `record` (just refreshed; `stored` is the refresh token the store
    /// held when it was read, at `version`), compare-and-set:
    ///
    /// - the session has ended meanwhile: nothing is written, [`SessionError::Unknown`];
    /// - another replica has rotated the refresh token meanwhile: theirs is kept;
    /// - a touch has rewritten the same refresh token: written over it;
    /// - the store fails: the rotation is kept in memory for the next refresh of
    ///   this session (a strict Entra has spent `stored`), and the error returned.
    async fn write_refreshed(
        &self,
        key: &SessionKey,
        mut record: SessionRecord,
        mut version: RecordVersion,
        stored: &SecretString,
    ) -> Result<(), SessionError> {
        let digest = key.digest();
        let store = &self.inner.store;
        for _ in 0..WRITE_ATTEMPTS {
            let outcome = match store
                .replace(key, &record, &version, self.inner.idle_timeout)
                .await
            {
                Ok(true) => Ok(None),
                Ok(false) => store.get(key).await.map(Some),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(None) => {
                    self.forget_pending(&digest);
                    tracing::debug!(
                        tid = record.tid,
                        oid = record.oid,
                        "session token refreshed"
                    );
                    return Ok(());
                }
                Ok(Some(None)) => {
                    self.forget_pending(&digest);
                    tracing::info!(
                        tid = record.tid,
                        oid = record.oid,
                        "session ended during its refresh; not written back"
                    );
                    return Err(SessionError::Unknown);
                }
                Ok(Some(Some((fresh, _)))) if fresh.refresh_token != *stored => {
                    self.forget_pending(&digest);
                    tracing::debug!(
                        tid = record.tid,
                        oid = record.oid,
                        "session refreshed elsewhere meanwhile; its refresh token kept"
                    );
                    return Ok(());
                }
                Ok(Some(Some((fresh, newer)))) => {
                    record.last_used = record.last_used.max(fresh.last_used);
                    version = newer;
                }
                Err(e) => {
                    self.keep_pending(digest, stored, &record.refresh_token);
                    return Err(e.into());
                }
            }
        }
        self.keep_pending(digest, stored, &record.refresh_token);
        Err(StoreError::new("the session record kept changing while it was written").into())
    }

    /// The rotated refresh token to redeem instead of `stored`, if this process
    /// could not store it.
    fn pending_for(&self, digest: &[u8; 32], stored: &SecretString) -> Option<SecretString> {
        let now = self.now();
        self.pending().rotated(digest, stored, now)
    }

    fn keep_pending(&self, digest: [u8; 32], stored: &SecretString, rotated: &SecretString) {
        tracing::warn!(
            "the session store failed to take a rotated refresh token; kept in memory until stored"
        );
        let now = self.now();
        self.pending().keep(digest, stored, rotated, now);
    }

    fn forget_pending(&self, digest: &[u8; 32]) {
        self.pending().forget(digest);
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, PendingRotations> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A rotated refresh token the store has not taken yet: it replaces `replaces`
/// (the stored one, maybe spent) until it is stored.
struct PendingRotation {
    replaces: SecretString,
    rotated: SecretString,
    /// When it was last kept or redeemed (clock seconds).
    used: i64,
}

/// The rotations this process could not store, by session digest. An entry
/// leaves when stored, when its session is found gone or ended here, or when
/// unused for [`MAX_PENDING_AGE`] or the idle timeout (whichever is longer): a
/// session ended on another replica, or abandoned, does not keep its refresh
/// token in this process's memory for ever.
struct PendingRotations {
    map: HashMap<[u8; 32], PendingRotation>,
    /// Seconds an entry is kept unused.
    max_age: i64,
    /// When entries were last pruned (clock seconds).
    pruned: i64,
}

impl PendingRotations {
    fn new(idle_timeout: Duration) -> Self {
        Self {
            map: HashMap::new(),
            max_age: i64::try_from(MAX_PENDING_AGE.max(idle_timeout).as_secs()).unwrap_or(i64::MAX),
            pruned: i64::MIN,
        }
    }

    /// Drops the entries unused for `max_age`, at most once a minute (each
    /// prune walks every entry).
    fn prune(&mut self, now: i64) {
        if now.saturating_sub(self.pruned) < 60 {
            return;
        }
        self.pruned = now;
        let max_age = self.max_age;
        self.map
            .retain(|_, p| now.saturating_sub(p.used) <= max_age);
    }

    /// The rotation to redeem instead of `stored` for session `digest`, if any.
    fn rotated(
        &mut self,
        digest: &[u8; 32],
        stored: &SecretString,
        now: i64,
    ) -> Option<SecretString> {
        self.prune(now);
        match self.map.get_mut(digest) {
            Some(p) if p.replaces == *stored => {
                p.used = now;
                Some(p.rotated.clone())
            }
            // Stored since (by another replica's refresh): no longer needed.
            Some(_) => {
                self.map.remove(digest);
                None
            }
            None => None,
        }
    }

    fn keep(&mut self, digest: [u8; 32], stored: &SecretString, rotated: &SecretString, now: i64) {
        self.prune(now);
        self.map.insert(
            digest,
            PendingRotation {
                replaces: stored.clone(),
                rotated: rotated.clone(),
                used: now,
            },
        );
    }

    fn forget(&mut self, digest: &[u8; 32]) {
        self.map.remove(digest);
    }
}

/// A copy of an error shared by the callers of one refresh.
fn clone_error(e: &SessionError) -> SessionError {
    match e {
        SessionError::Unknown => SessionError::Unknown,
        SessionError::SignInAgain => SessionError::SignInAgain,
        SessionError::InteractionRequired {
            claims,
            authorization_uri,
        } => SessionError::InteractionRequired {
            claims: claims.clone(),
            authorization_uri: authorization_uri.clone(),
        },
        SessionError::ConsentRequired { scopes } => SessionError::ConsentRequired {
            scopes: scopes.clone(),
        },
        SessionError::Unavailable { retry_after } => SessionError::Unavailable {
            retry_after: *retry_after,
        },
        SessionError::OtherUser => SessionError::OtherUser,
        SessionError::TooManySessions { retry_after } => SessionError::TooManySessions {
            retry_after: *retry_after,
        },
        SessionError::Downstream(e) => SessionError::Downstream(e.clone()),
        SessionError::NoRefreshToken => SessionError::NoRefreshToken,
        SessionError::Exchange(e) => SessionError::Exchange(e.clone()),
        SessionError::Store(e) => SessionError::Store(super::StoreError::new(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u32) -> [u8; 32] {
        let mut d = [0u8; 32];
        d[..4].copy_from_slice(&n.to_be_bytes());
        d
    }

    /// Sessions whose rotation was never stored and that nobody uses again (ended
    /// on another replica, abandoned) do not stay in memory for ever.
    #[test]
    fn pending_rotations_of_sessions_nobody_uses_are_dropped() {
        let idle = Duration::from_secs(3600);
        let mut p = PendingRotations::new(idle);
        let (spent, rotated) = (SecretString::new("rt-1"), SecretString::new("rt-2"));
        for n in 0..1_000 {
            p.keep(digest(n), &spent, &rotated, 0);
        }
        // One in use all along: redeemed now and then.
        let later = i64::try_from(MAX_PENDING_AGE.max(idle).as_secs()).unwrap();
        for t in (0..=later).step_by(3600) {
            assert!(p.rotated(&digest(0), &spent, t).is_some());
        }
        // Past the age, and past the minute between prunes.
        let later = later + 61;
        p.keep(digest(5_000), &spent, &rotated, later);
        assert_eq!(p.map.len(), 2, "only the rotations still in use are kept");
        assert_eq!(
            p.rotated(&digest(0), &spent, later + 1)
                .map(|r| r.expose().to_owned()),
            Some("rt-2".to_owned())
        );
        // Another session's stored token never gets a rotation that is not its own.
        assert!(p.rotated(&digest(5_001), &spent, later).is_none());
    }
}
