//! A local Redis Cluster per test (feature `redis`): three masters (and
//! optionally one replica each), `redis-server --cluster-enabled yes` on free
//! loopback ports below 55536 (a node's cluster bus listens on its port + 10000,
//! which must be free too), joined with `redis-cli --cluster create`. Every node
//! is killed on drop.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use super::redis_server::RedisServer;

/// How long a node is unreachable before the cluster calls it failed (and
/// promotes its replica): short, so that a failover fits a test.
pub const NODE_TIMEOUT_MS: u64 = 1000;

/// A running Redis Cluster on loopback.
pub struct RedisCluster {
    /// Every node, masters first (as created; a failover changes roles).
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Three masters, no replica.
    pub async fn start() -> Self {
        Self::start_with_replicas(0).await
    }

    /// Three masters with `replicas` replicas each.
    pub async fn start_with_replicas(replicas: usize) -> Self {
        let count = 3 * (1 + replicas);
        let mut nodes = Vec::with_capacity(count);
        let mut attempts = 0;
        while nodes.len() < count {
            attempts += 1;
            assert!(attempts < 50, "no free port pairs for the cluster");
            let port = free_cluster_port();
            let conf = format!("nodes-{port}.conf");
            let timeout = NODE_TIMEOUT_MS.to_string();
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                conf.as_str(),
                "--cluster-node-timeout",
                timeout.as_str(),
                // A dead master without a replica leaves the other masters serving
                // their own slots (Redis's default stops the whole cluster).
                "--cluster-require-full-coverage",
                "no",
            ];
            if let Some(node) = RedisServer::start_on(port, &args).await {
                nodes.push(node);
            }
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs (installed with redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_until_ok(Duration::from_secs(20)).await;
        if replicas > 0 {
            cluster.wait_for_replicas(Duration::from_secs(20)).await;
        }
        cluster
    }

    /// `redis://127.0.0.1:{port}` of node `i`.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Every node's URL, comma-separated (the seed list).
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A plain connection to node `i` (sees that node's keys only).
    pub async fn node_client(&self, i: usize) -> MultiplexedConnection {
        self.nodes[i].client().await
    }

    /// Indices of the running nodes that are masters now.
    pub async fn masters(&self) -> Vec<usize> {
        let mut masters = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            if let Ok(mut c) = node.try_connect().await {
                let role: redis::RedisResult<Vec<redis::Value>> =
                    redis::cmd("ROLE").query_async(&mut c).await;
                if let Ok(role) = role {
                    if matches!(role.first(), Some(redis::Value::BulkString(b)) if b == b"master") {
                        masters.push(i);
                    }
                }
            }
        }
        masters
    }

    /// The keys node `i` holds (a master's own share).
    pub async fn keys_on(&self, i: usize) -> Vec<String> {
        let mut c = self.node_client(i).await;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query_async(&mut c)
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// Kills node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Waits until every running node reports `cluster_state:ok`.
    pub async fn wait_until_ok(&self, limit: Duration) {
        let started = Instant::now();
        'retry: while started.elapsed() < limit {
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                let Ok(mut c) = node.try_connect().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'retry;
                };
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                if !info.contains("cluster_state:ok") {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'retry;
                }
            }
            return;
        }
        panic!("the cluster did not reach cluster_state:ok within {limit:?}");
    }

    /// Waits until every replica's link to its master is up (so that a
    /// failover has the data).
    async fn wait_for_replicas(&self, limit: Duration) {
        let started = Instant::now();
        'retry: while started.elapsed() < limit {
            for node in &self.nodes {
                let mut c = node.client().await;
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                if info.contains("role:slave") && !info.contains("master_link_status:up") {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue 'retry;
                }
            }
            return;
        }
        panic!("the replicas did not sync within {limit:?}");
    }

    /// Waits until node `i`'s writes reached its replicas (`WAIT`).
    pub async fn replicate(&self, i: usize) {
        let mut c = self.node_client(i).await;
        let _: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(2000)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

/// A free loopback port below 55536 whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let port = if port < 55536 {
            port
        } else {
            // Ephemeral ports are usually above 32768: fold into 20000..45535.
            20000 + port % 25536
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
        {
            return port;
        }
    }
}
