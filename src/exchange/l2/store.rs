//! The Redis connection of the L2: connected lazily, reconnecting, every call
//! bounded by a short timeout, and skipped for a while after a failure.
//!
//! Standalone, one connection manager and one breaker; in a cluster, the
//! cluster connection and one breaker per master ([`cluster`](super::cluster)).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::client::{build_client, RedisClient, RedisOptions};
use super::cluster::ClusterStore;
use super::entra_auth::{AuthState, EntraAuth};

/// After a failure, L2 calls are skipped this long; then one call probes Redis.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What became of one L2 call.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// Redis answered.
    Done(T),
    /// Not attempted: Redis failed recently.
    Skipped,
    /// Redis failed or did not answer in time.
    Failed,
}

impl<T> Outcome<T> {
    /// Redis's answer turned into another value; skips and failures as they are.
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        match self {
            Outcome::Done(v) => Outcome::Done(f(v)),
            Outcome::Skipped => Outcome::Skipped,
            Outcome::Failed => Outcome::Failed,
        }
    }
}

/// A Redis connection (shared by every request) with a timeout and a breaker.
#[derive(Debug)]
pub(crate) struct RedisStore {
    conn: Conn,
    timeout: Duration,
    /// Entra authentication (`OBO_REDIS_ENTRA`): `AUTH` with a renewed token.
    auth: Option<EntraAuth>,
}

/// Either mode's connection and breakers.
enum Conn {
    Standalone {
        client: Box<redis::Client>,
        /// Created on first use, inside the runtime (the manager spawns tasks);
        /// made again after a connection refused at `AUTH` (see [`RedisStore::run`]).
        manager: Mutex<Option<ConnectionManager>>,
        /// Whether a manager was ever made (only the first one's refusal is
        /// logged at connect; later ones go through the breaker's log).
        made: std::sync::atomic::AtomicBool,
        health: Arc<Health>,
    },
    Cluster(Arc<ClusterStore>),
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Standalone { health, .. } => f
                .debug_struct("Standalone")
                .field("down", &health.is_down())
                .finish_non_exhaustive(),
            Self::Cluster(cluster) => cluster.fmt(f),
        }
    }
}

/// A connection taken for one call.
enum Connection {
    Standalone(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl RedisStore {
    /// Never connects: the connection is made by the first call.
    pub(crate) fn new(options: &RedisOptions) -> redis::RedisResult<Self> {
        let conn = match build_client(options)? {
            RedisClient::Standalone(client) => Conn::Standalone {
                client,
                manager: Mutex::new(None),
                made: std::sync::atomic::AtomicBool::new(false),
                health: Arc::new(Health::new("")),
            },
            RedisClient::Cluster(client) => {
                Conn::Cluster(Arc::new(ClusterStore::new(*client, options.timeout)))
            }
        };
        Ok(Self {
            conn,
            timeout: options.timeout,
            auth: options.auth.clone(),
        })
    }

    /// `GET key`.
    pub(crate) async fn get(&self, key: &str) -> Outcome<Option<Vec<u8>>> {
        self.run("GET", key, redis::cmd("GET").arg(key)).await
    }

    /// `SET key value PX ttl`.
    pub(crate) async fn set_px(&self, key: &str, value: &[u8], ttl: Duration) -> Outcome<()> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.run(
            "SET",
            key,
            redis::cmd("SET").arg(key).arg(value).arg("PX").arg(millis),
        )
        .await
    }

    /// `SET key value PX ttl` only if `key` holds `expected` (a missing key does
    /// not), atomically (a script); whether it was set. The session store's
    /// compare-and-set.
    pub(crate) async fn compare_and_set(
        &self,
        key: &str,
        expected: &[u8],
        value: &[u8],
        ttl: Duration,
    ) -> Outcome<bool> {
        const SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
             redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end";
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set = self
            .run::<i64>(
                "EVAL",
                key,
                redis::cmd("EVAL")
                    .arg(SCRIPT)
                    .arg(1)
                    .arg(key)
                    .arg(expected)
                    .arg(value)
                    .arg(millis),
            )
            .await;
        set.map(|n| n == 1)
    }

    /// `DEL key` (a missing key is not an error).
    pub(crate) async fn del(&self, key: &str) -> Outcome<()> {
        self.run("DEL", key, redis::cmd("DEL").arg(key)).await
    }

    /// `DEL key` if it still holds `value`, atomically (a Lua script): a value
    /// written meanwhile (by another replica) is kept. Whether it was deleted.
    pub(crate) async fn del_if_equal(&self, key: &str, value: &[u8]) -> Outcome<bool> {
        const SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                              return redis.call('DEL', KEYS[1]) else return 0 end";
        let cmd = redis::cmd("EVAL")
            .arg(SCRIPT)
            .arg(1)
            .arg(key)
            .arg(value)
            .to_owned();
        self.run::<i64>("DEL", key, &cmd).await.map(|n| n > 0)
    }

    /// Runs `cmd`, whose only key is `key`, through `key`'s breaker.
    async fn run<T: redis::FromRedisValue>(
        &self,
        op: &str,
        key: &str,
        cmd: &redis::Cmd,
    ) -> Outcome<T> {
        let health = match &self.conn {
            Conn::Standalone { health, .. } => Arc::clone(health),
            Conn::Cluster(cluster) => cluster.health(key),
        };
        if !health.admit() {
            return Outcome::Skipped;
        }
        // One deadline for the whole call: waiting for the first Entra token and
        // the command share the timeout, so no call takes longer than it.
        let deadline = tokio::time::Instant::now() + self.timeout;
        if let Some(outcome) = self.authenticated(op, &health, deadline).await {
            return outcome;
        }
        let Some(conn) = self.connection() else {
            return Outcome::Failed;
        };
        let call = async {
            match conn {
                Connection::Standalone(mut c) => cmd.query_async::<T>(&mut c).await,
                Connection::Cluster(mut c) => cmd.query_async::<T>(&mut c).await,
            }
        };
        let error = match tokio::time::timeout_at(deadline, call).await {
            Ok(Ok(v)) => {
                health.succeeded();
                return Outcome::Done(v);
            }
            Ok(Err(e)) => {
                let refused = e.kind() == redis::ErrorKind::AuthenticationFailed;
                if refused || e.code() == Some("NOAUTH") {
                    if let Some(auth) = &self.auth {
                        auth.refused();
                    }
                }
                if refused {
                    // The connection manager reconnects after I/O errors only:
                    // a (re)connection refused at `AUTH` would answer every later
                    // call with this error. The next call makes a new one, which
                    // takes the current credentials.
                    if let Conn::Standalone { manager, .. } = &self.conn {
                        manager
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .take();
                    }
                }
                e.to_string()
            }
            Err(_) => format!("no answer within {:?}", self.timeout),
        };
        health.failed(op, &error);
        if let Conn::Cluster(cluster) = &self.conn {
            cluster.failed();
        }
        Outcome::Failed
    }

    /// With Entra authentication, `None` when a token is valid by the clock;
    /// else the call's outcome: skipped while the first token is on its way
    /// (waited for until the call's `deadline`), failed once it has expired.
    async fn authenticated<T>(
        &self,
        op: &str,
        health: &Health,
        deadline: tokio::time::Instant,
    ) -> Option<Outcome<T>> {
        let auth = self.auth.as_ref()?;
        auth.poke();
        match auth.state() {
            AuthState::Ready => None,
            AuthState::Pending => {
                let _ = tokio::time::timeout_at(deadline, auth.first_token()).await;
                (auth.state() != AuthState::Ready).then_some(Outcome::Skipped)
            }
            AuthState::Expired => {
                health.failed(
                    op,
                    &"the Entra token for Redis expired and could not be renewed",
                );
                Some(Outcome::Failed)
            }
        }
    }

    fn connection(&self) -> Option<Connection> {
        let (client, manager, made) = match &self.conn {
            Conn::Cluster(cluster) => return Some(Connection::Cluster(cluster.connection())),
            Conn::Standalone {
                client,
                manager,
                made,
                ..
            } => (client, manager, made),
        };
        let mut manager = manager.lock().unwrap_or_else(PoisonError::into_inner);
        if manager.is_none() {
            *manager = {
                let mut config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(self.timeout.max(Duration::from_secs(1))))
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1));
                if let Some(auth) = &self.auth {
                    config = config.set_credentials_provider(auth.clone());
                }
                // Fails only for push/resubscribe options, which are not set.
                let created = ConnectionManager::new_lazy_with_config((**client).clone(), config)
                    .inspect_err(|e| tracing::error!(error = %e, "Redis L2 disabled"))
                    .ok()?;
                // Connect in the background, whatever the first call's timeout;
                // a refusal (TLS, AUTH) is logged with its cause, which a call
                // timing out first would not see.
                if !made.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    let mut warm = created.clone();
                    tokio::spawn(async move {
                        if let Err(error) = redis::cmd("PING").query_async::<()>(&mut warm).await {
                            tracing::warn!(%error, "Redis L2: cannot connect");
                        }
                    });
                }
                Some(created)
            };
        }
        manager.clone().map(Connection::Standalone)
    }
}

/// A breaker: after a failure, calls are skipped for [`RETRY_AFTER`]; then one
/// call at a time probes. Warns once per failure streak, not per request.
pub(super) struct Health {
    /// `host:port` of the cluster node it guards; empty in standalone mode.
    node: Box<str>,
    epoch: Instant,
    down: AtomicBool,
    /// Milliseconds since `epoch` before which calls are skipped.
    retry_at: AtomicU64,
}

impl Health {
    pub(super) fn new(node: &str) -> Self {
        Self {
            node: node.into(),
            epoch: Instant::now(),
            down: AtomicBool::new(false),
            retry_at: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn later(&self) -> u64 {
        self.now_ms().saturating_add(RETRY_AFTER.as_millis() as u64)
    }

    /// The cluster node it guards (empty in standalone mode).
    pub(super) fn node(&self) -> &str {
        &self.node
    }

    /// Whether calls are failing.
    pub(super) fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Whether a call may go to Redis now.
    pub(super) fn admit(&self) -> bool {
        if !self.down.load(Ordering::Acquire) {
            return true;
        }
        let at = self.retry_at.load(Ordering::Acquire);
        // One prober per interval: whoever moves `retry_at` on.
        self.now_ms() >= at
            && self
                .retry_at
                .compare_exchange(at, self.later(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    pub(super) fn failed(&self, op: &str, error: &dyn fmt::Display) {
        self.retry_at.store(self.later(), Ordering::Release);
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                %error,
                op,
                node = %self.node,
                "Redis L2 unavailable; serving from the in-memory cache and Entra, retrying every {RETRY_AFTER:?}"
            );
        } else {
            tracing::debug!(%error, op, node = %self.node, "Redis L2 still unavailable");
        }
    }

    pub(super) fn succeeded(&self) {
        if self.down.load(Ordering::Acquire) && self.down.swap(false, Ordering::AcqRel) {
            tracing::info!(node = %self.node, "Redis L2 available again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_skips_after_a_failure_then_lets_one_probe_through() {
        let h = Health::new("");
        assert!(h.admit() && h.admit(), "healthy: every call goes through");
        h.failed("GET", &"boom");
        assert!(!h.admit(), "skipped right after a failure");
        h.retry_at.store(0, Ordering::SeqCst);
        assert!(h.admit(), "one probe once the interval is over");
        assert!(!h.admit(), "and only one");
        h.succeeded();
        assert!(h.admit() && h.admit());
    }
}
