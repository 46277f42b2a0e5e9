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
    /// Each node's TLS port (a TLS cluster).
    tls_ports: Vec<Option<u16>>,
}

/// The files of a TLS cluster: its nodes' certificate and key, and the CA that
/// signed them (paths).
pub struct ClusterTls {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

impl RedisCluster {
    /// Three masters, no replica.
    pub async fn start() -> Self {
        Self::start_with_replicas(0).await
    }

    /// Three masters with `replicas` replicas each.
    pub async fn start_with_replicas(replicas: usize) -> Self {
        Self::start_inner(replicas, None).await
    }

    /// Three masters speaking TLS only to clients and to each other
    /// (`--tls-cluster yes`): each node's TLS port is its cluster port (what
    /// `CLUSTER SLOTS` names); its plain port only serves the harness.
    pub async fn start_tls(tls: &ClusterTls) -> Self {
        Self::start_inner(0, Some(tls)).await
    }

    async fn start_inner(replicas: usize, tls: Option<&ClusterTls>) -> Self {
        let count = 3 * (1 + replicas);
        let mut nodes = Vec::with_capacity(count);
        let mut tls_ports = Vec::with_capacity(count);
        let mut attempts = 0;
        while nodes.len() < count {
            attempts += 1;
            assert!(attempts < 50, "no free port pairs for the cluster");
            let cluster_port = free_cluster_port();
            let port = match tls {
                Some(_) => super::redis_server::free_port(),
                None => cluster_port,
            };
            let conf = format!("nodes-{port}.conf");
            let timeout = NODE_TIMEOUT_MS.to_string();
            let mut args: Vec<String> = [
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
            ]
            .map(str::to_owned)
            .to_vec();
            if let Some(tls) = tls {
                args.extend(
                    [
                        "--tls-port",
                        &cluster_port.to_string(),
                        "--tls-cluster",
                        "yes",
                        "--cluster-port",
                        &(cluster_port + 10000).to_string(),
                        "--tls-cert-file",
                        &tls.cert,
                        "--tls-key-file",
                        &tls.key,
                        "--tls-ca-cert-file",
                        &tls.ca,
                        "--tls-auth-clients",
                        "no",
                    ]
                    .map(str::to_owned),
                );
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Some(node) = RedisServer::start_on(port, &args).await {
                nodes.push(node);
                tls_ports.push(tls.map(|_| cluster_port));
            }
        }
        let addresses: Vec<String> = nodes
            .iter()
            .zip(&tls_ports)
            .map(|(n, tls_port)| format!("127.0.0.1:{}", tls_port.unwrap_or(n.port)))
            .collect();
        let mut create = Command::new("redis-cli");
        if let Some(tls) = tls {
            create.args(["--tls", "--cacert", &tls.ca]);
        }
        let out = create
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
        let cluster = Self { nodes, tls_ports };
        cluster.wait_until_ok(Duration::from_secs(20)).await;
        if replicas > 0 {
            cluster.wait_for_replicas(Duration::from_secs(20)).await;
        }
        cluster
    }

    /// `rediss://127.0.0.1:{TLS port}` of every node, comma-separated (a TLS
    /// cluster's seed list).
    pub fn tls_seeds(&self) -> String {
        self.tls_ports
            .iter()
            .map(|p| format!("rediss://127.0.0.1:{}", p.expect("a TLS cluster")))
            .collect::<Vec<_>>()
            .join(",")
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
