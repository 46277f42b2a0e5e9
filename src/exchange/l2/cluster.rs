//! The Redis Cluster side of [`RedisStore`](super::store::RedisStore): the
//! cluster connection and one breaker per master node.
//!
//! The `redis` crate's cluster connection routes every command by its key's hash
//! slot, follows `MOVED`/`ASK` and refreshes its slot map by itself. Every
//! command the L2 and the session store send has exactly one key (`GET`, `SET`,
//! `DEL`, `EVAL` with one key), so none crosses slots.
//!
//! # The breaker's unit: a master
//!
//! A dead master must cost misses for its own keys only. The store keeps its own
//! copy of the slot map (`CLUSTER SLOTS`, read through the cluster connection at
//! start, again after a failure or while unknown, at most once per
//! [`RETRY_AFTER`](super::store::RETRY_AFTER), and every 30 s) and one
//! [`Health`] per master, known by its node id (a reply may name no endpoint:
//! NULL, `""` or `?`, which the cluster connection reads as "the address you
//! reached"): a key's calls go through its master's breaker, which
//! after a failure skips that master's keys for a second, then lets one call
//! probe it. After a failover the refreshed
//! map names the promoted replica, whose breaker is closed, so its keys are
//! served again as soon as the map is read. The map only chooses the breaker;
//! the cluster connection still routes every command itself, so a stale map
//! never sends a command to the wrong node. Until the map is known (or when
//! reading it fails) every key shares one breaker, as in standalone mode.
//!
//! The cluster connection itself holds every request while it reads a new slot
//! map and reconnects to the nodes (after a `MOVED`, or a node refusing
//! connections); its connection timeout (the L2 timeout, at least 250 ms)
//! bounds that pause, and the store's timeout bounds every call regardless.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::Value;

use super::store::{Health, RETRY_AFTER};

/// Number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The slot map is read again this long after the last read, failures or not
/// (slots moved by a resharding).
const REMAP_EVERY: Duration = Duration::from_secs(30);

/// A cluster connection (shared by every request) and the per-master breakers.
pub(super) struct ClusterStore {
    client: ClusterClient,
    /// Created on first use, inside the runtime (the connection spawns a task).
    conn: OnceLock<ClusterConnection>,
    timeout: Duration,
    map: ArcSwap<SlotMap>,
    /// Every key's breaker while the slot map is unknown.
    unmapped: Arc<Health>,
    epoch: Instant,
    /// Milliseconds since `epoch` before which the map is not read again.
    refresh_at: AtomicU64,
    /// Milliseconds since `epoch` after which the map is read again anyway.
    stale_at: AtomicU64,
    refreshing: AtomicBool,
    /// Whether a failure to connect was explained in the log already.
    diagnosed: AtomicBool,
}

/// Which master (and so which breaker) serves each slot range.
#[derive(Default)]
struct SlotMap {
    /// Sorted by first slot, not overlapping.
    ranges: Vec<SlotRange>,
}

struct SlotRange {
    first: u16,
    last: u16,
    /// The master's node id (or address): what its breaker is known by.
    id: Box<str>,
    health: Arc<Health>,
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.map.load();
        f.debug_struct("ClusterStore")
            .field("timeout", &self.timeout)
            .field("slot_ranges", &map.ranges.len())
            .field("down", &self.down_nodes())
            .finish_non_exhaustive()
    }
}

impl ClusterStore {
    /// Never connects: the connection is made by the first call.
    pub(super) fn new(client: ClusterClient, timeout: Duration) -> Self {
        Self {
            client,
            conn: OnceLock::new(),
            timeout,
            map: ArcSwap::from_pointee(SlotMap::default()),
            unmapped: Arc::new(Health::new("(any: slot map not read yet)")),
            epoch: Instant::now(),
            refresh_at: AtomicU64::new(0),
            stale_at: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            diagnosed: AtomicBool::new(false),
        }
    }

    /// The shared connection (connecting in the background on first use), and
    /// a first read of the slot map.
    pub(super) fn connection(self: &Arc<Self>) -> ClusterConnection {
        let mut first = false;
        let conn = self
            .conn
            .get_or_init(|| {
                first = true;
                self.client
                    .get_pending_async_connection_with_config(self.config())
            })
            .clone();
        if first {
            self.refresh_map();
        }
        conn
    }

    /// The breaker of `key`'s master.
    pub(super) fn health(self: &Arc<Self>, key: &str) -> Arc<Health> {
        let slot = slot(key.as_bytes());
        let map = self.map.load();
        if map.ranges.is_empty() || self.now_ms() >= self.stale_at.load(Ordering::Relaxed) {
            self.refresh_map();
        }
        let i = map.ranges.partition_point(|r| r.first <= slot);
        match i.checked_sub(1).map(|i| &map.ranges[i]) {
            Some(r) if slot <= r.last => Arc::clone(&r.health),
            _ => Arc::clone(&self.unmapped),
        }
    }

    /// After a failure: read the slot map again (a failover may have moved the
    /// slots), at most once per [`RETRY_AFTER`].
    /// The first failure before any slot map was read also connects once more,
    /// on a connection of its own, to log why: the shared connection connects in
    /// the background and its calls only see their timeout, so a refusal (TLS,
    /// `AUTH`) would otherwise go unexplained.
    pub(super) fn failed(self: &Arc<Self>) {
        self.refresh_map();
        if self.map.load().ranges.is_empty() && !self.diagnosed.swap(true, Ordering::AcqRel) {
            let client = self.client.clone();
            let config = self.config();
            tokio::spawn(async move {
                if let Err(error) = client.get_async_connection_with_config(config).await {
                    tracing::warn!(%error, "Redis L2: cannot connect to the cluster");
                }
            });
        }
    }

    /// The cluster connection's settings.
    fn config(&self) -> ClusterConfig {
        ClusterConfig::new()
            .set_connection_timeout(self.timeout.max(Duration::from_millis(250)))
            .set_response_timeout(self.timeout)
    }

    /// Addresses of the masters whose breaker is open (for `Debug`).
    fn down_nodes(&self) -> Vec<String> {
        let map = self.map.load();
        let mut down: Vec<String> = map
            .ranges
            .iter()
            .filter(|r| r.health.is_down())
            .map(|r| r.health.node().to_owned())
            .collect();
        // A master may hold ranges apart (after a resharding).
        down.sort_unstable();
        down.dedup();
        down
    }

    /// Reads `CLUSTER SLOTS` in the background (one read at a time, at most one
    /// per [`RETRY_AFTER`]); the old map stays on failure.
    fn refresh_map(self: &Arc<Self>) {
        // Not connected yet: the first connection reads it.
        let Some(mut conn) = self.conn.get().cloned() else {
            return;
        };
        let now = self.now_ms();
        let at = self.refresh_at.load(Ordering::Acquire);
        if now < at
            || self
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.refresh_at.store(
            now.saturating_add(RETRY_AFTER.as_millis() as u64),
            Ordering::Release,
        );
        self.stale_at.store(
            now.saturating_add(REMAP_EVERY.as_millis() as u64),
            Ordering::Release,
        );
        let this = Arc::clone(self);
        tokio::spawn(async move {
            // The command goes to a node at random: a dead one fails it, so
            // try a few times.
            for _ in 0..3 {
                let read = tokio::time::timeout(
                    this.timeout.max(Duration::from_millis(250)),
                    redis::cmd("CLUSTER")
                        .arg("SLOTS")
                        .query_async::<Value>(&mut conn),
                )
                .await;
                match read {
                    Ok(Ok(value)) => match parse_slots(&value) {
                        Some(ranges) => {
                            this.install(ranges);
                            break;
                        }
                        None => tracing::debug!("Redis cluster: unexpected CLUSTER SLOTS reply"),
                    },
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "Redis cluster: CLUSTER SLOTS failed")
                    }
                    Err(_) => tracing::debug!("Redis cluster: CLUSTER SLOTS timed out"),
                }
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// Installs a new map, keeping the breakers of the masters already known
    /// (by node id).
    fn install(&self, ranges: Vec<(u16, u16, Master)>) {
        let old = self.map.load();
        let mut known: HashMap<&str, Arc<Health>> = old
            .ranges
            .iter()
            .map(|r| (r.id.as_ref(), Arc::clone(&r.health)))
            .collect();
        let mut fresh: HashMap<String, Arc<Health>> = HashMap::new();
        let mut map = SlotMap {
            ranges: ranges
                .into_iter()
                .map(|(first, last, master)| {
                    let health = fresh
                        .entry(master.id.clone())
                        .or_insert_with(|| {
                            known
                                .remove(master.id.as_str())
                                .unwrap_or_else(|| Arc::new(Health::new(&master.address)))
                        })
                        .clone();
                    SlotRange {
                        first,
                        last,
                        id: master.id.into(),
                        health,
                    }
                })
                .collect(),
        };
        map.ranges.sort_by_key(|r| r.first);
        drop(known);
        self.map.store(Arc::new(map));
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The hash slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag (the
/// part between the first `{` and the next `}`, when not empty), modulo 16384.
fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

/// A master as `CLUSTER SLOTS` names it.
#[derive(Debug, PartialEq)]
struct Master {
    /// Its node id (what tells masters apart), or its address if none is given.
    id: String,
    /// `host:port` for the logs; `?` for the host when the reply gives none
    /// (NULL with `cluster-preferred-endpoint-type unknown-endpoint`, `""` or
    /// `?`: the client uses the address it reached).
    address: String,
}

/// `(first slot, last slot, master)` of each range of a `CLUSTER SLOTS` reply;
/// `None` if it is not one.
fn parse_slots(value: &Value) -> Option<Vec<(u16, u16, Master)>> {
    let Value::Array(ranges) = value else {
        return None;
    };
    ranges
        .iter()
        .map(|range| {
            let Value::Array(parts) = range else {
                return None;
            };
            let slot = |v: &Value| match v {
                Value::Int(n) => u16::try_from(*n).ok().filter(|s| *s < SLOTS),
                _ => None,
            };
            let (first, last) = (slot(parts.first()?)?, slot(parts.get(1)?)?);
            let Value::Array(master) = parts.get(2)? else {
                return None;
            };
            let text = |v: &Value| match v {
                Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                Value::SimpleString(s) => Some(s.clone()),
                _ => None,
            };
            let host = match master.first()? {
                Value::Nil => "?".to_owned(),
                v => text(v).map(|h| if h.is_empty() { "?".to_owned() } else { h })?,
            };
            let Value::Int(port) = master.get(1)? else {
                return None;
            };
            let address = format!("{host}:{port}");
            let id = master
                .get(2)
                .and_then(text)
                .filter(|id| !id.is_empty())
                .unwrap_or_else(|| address.clone());
            (first <= last).then_some((first, last, Master { id, address }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), 8363);
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(format!("id-{port}").into_bytes()),
        ])
    }

    fn reply() -> Value {
        let range = |a, b, host, port| {
            Value::Array(vec![
                Value::Int(a),
                Value::Int(b),
                node(host, port),
                node("r", 1),
            ])
        };
        Value::Array(vec![
            range(5461, 10922, "127.0.0.1", 7001),
            range(0, 5460, "127.0.0.1", 7000),
            range(10923, 16383, "127.0.0.1", 7002),
        ])
    }

    #[test]
    fn a_key_gets_its_masters_breaker_and_a_new_map_keeps_known_breakers() {
        let store = Arc::new(ClusterStore::new(
            ClusterClient::new(vec!["redis://127.0.0.1:7000"]).unwrap(),
            Duration::from_millis(100),
        ));
        let before = store.health("foo");
        assert!(Arc::ptr_eq(&before, &store.unmapped), "no map: one breaker");

        store.install(parse_slots(&reply()).unwrap());
        // "foo" is slot 12182 (7002), "123456789" slot 12739 (7002), "a" slot 15495 (7002),
        // "b" slot 3300 (7000), "c" slot 7365 (7001).
        assert_eq!(store.health("foo").node(), "127.0.0.1:7002");
        assert_eq!(store.health("b").node(), "127.0.0.1:7000");
        assert_eq!(store.health("c").node(), "127.0.0.1:7001");
        assert!(Arc::ptr_eq(&store.health("foo"), &store.health("a")));

        // A failure of one master leaves the others' keys admitted.
        store.health("b").failed("GET", &"refused");
        assert!(!store.health("b").admit());
        assert!(store.health("c").admit() && store.health("foo").admit());

        // Failover: 7000's slots move to a promoted replica, 7001 stays.
        let kept = store.health("c");
        let moved = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("127.0.0.1", 7001),
            ]),
        ]);
        store.install(parse_slots(&moved).unwrap());
        assert!(
            store.health("b").admit(),
            "the new master's breaker is closed"
        );
        assert_eq!(store.health("b").node(), "127.0.0.1:7003");
        assert!(
            Arc::ptr_eq(&kept, &store.health("c")),
            "known masters keep their breaker"
        );
        assert_eq!(store.health("foo").node(), "127.0.0.1:7001");
    }

    /// A node as `CLUSTER SLOTS` names it: `[endpoint, port, id]`.
    fn node_with(endpoint: Value, port: i64, id: &str) -> Value {
        Value::Array(vec![
            endpoint,
            Value::Int(port),
            Value::BulkString(id.into()),
        ])
    }

    #[test]
    fn masters_are_told_apart_by_id_whatever_their_endpoint() {
        // `cluster-preferred-endpoint-type unknown-endpoint` answers NULL (use the
        // address you reached), a node without an announced hostname "?" or "";
        // the `redis` crate routes on such replies, so the breakers must follow.
        let range = |a, b, endpoint: Value, id: &str| {
            Value::Array(vec![
                Value::Int(a),
                Value::Int(b),
                node_with(endpoint, 6379, id),
            ])
        };
        let reply = Value::Array(vec![
            range(0, 5460, Value::Nil, "id-a"),
            range(5461, 10922, Value::BulkString(b"?".to_vec()), "id-b"),
            range(10923, 16383, Value::BulkString(Vec::new()), "id-c"),
        ]);
        let store = Arc::new(ClusterStore::new(
            ClusterClient::new(vec!["redis://127.0.0.1:7000"]).unwrap(),
            Duration::from_millis(100),
        ));
        store.install(parse_slots(&reply).expect("a CLUSTER SLOTS reply"));
        // "b" is slot 3300, "c" 7365, "foo" 12182: one master each.
        let (b, c, foo) = (store.health("b"), store.health("c"), store.health("foo"));
        assert!(!Arc::ptr_eq(&b, &store.unmapped));
        assert!(!Arc::ptr_eq(&b, &c) && !Arc::ptr_eq(&c, &foo) && !Arc::ptr_eq(&b, &foo));
        b.failed("GET", &"refused");
        assert!(!store.health("b").admit());
        assert!(store.health("c").admit() && store.health("foo").admit());

        // Same id, same breaker, even if its endpoint changed; a new id (a
        // promoted replica at the same address) gets its own.
        let moved = Value::Array(vec![
            range(0, 5460, Value::BulkString(b"10.0.0.9".to_vec()), "id-d"),
            range(5461, 16383, Value::BulkString(b"10.0.0.2".to_vec()), "id-b"),
        ]);
        store.install(parse_slots(&moved).unwrap());
        assert!(
            store.health("b").admit(),
            "the promoted master's breaker is closed"
        );
        assert!(
            Arc::ptr_eq(&store.health("c"), &c),
            "id-b keeps its breaker"
        );
        assert_eq!(store.health("b").node(), "10.0.0.9:6379");
        assert_eq!(c.node(), "?:6379", "a breaker keeps its first label");
    }

    #[test]
    fn debug_names_a_down_master_once() {
        let store = Arc::new(ClusterStore::new(
            ClusterClient::new(vec!["redis://127.0.0.1:7000"]).unwrap(),
            Duration::from_millis(100),
        ));
        // 7000 holds two ranges apart (after a resharding), 7001 the middle one.
        let range = |a, b, port| Value::Array(vec![Value::Int(a), Value::Int(b), node("h", port)]);
        let reply = Value::Array(vec![
            range(0, 99, 7000),
            range(100, 199, 7001),
            range(200, 16383, 7000),
        ]);
        store.install(parse_slots(&reply).unwrap());
        store.health("b").failed("GET", &"refused"); // slot 3300: 7000
        let middle = (0..)
            .map(|i| format!("k{i}"))
            .find(|k| (100..200).contains(&slot(k.as_bytes())))
            .unwrap();
        store.health(&middle).failed("GET", &"refused");
        let debug = format!("{store:?}");
        assert!(debug.contains(r#"down: ["h:7000", "h:7001"]"#), "{debug}");
    }

    #[test]
    fn malformed_replies_are_refused() {
        assert!(parse_slots(&Value::Nil).is_none());
        let bad = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(99_999),
            node("h", 1),
        ])]);
        assert!(parse_slots(&bad).is_none());
        let reversed = Value::Array(vec![Value::Array(vec![
            Value::Int(10),
            Value::Int(5),
            node("h", 1),
        ])]);
        assert!(parse_slots(&reversed).is_none());
    }
}
