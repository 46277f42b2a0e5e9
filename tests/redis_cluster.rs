//! The Redis L2 and the session store on a real Redis Cluster (feature `redis`,
//! `obo_redis_cluster(true)`): three masters started by the test
//! (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`), two
//! replicas of the API sharing tokens and sessions through it, keys spread over
//! the masters, a master killed mid-run, a failover, the scripts, and two
//! example server processes configured from the environment.
#![cfg(feature = "redis")]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use axum_obo::{GraphUserRead, OboConfigBuilder, OboLayer, OboToken};
use axum_obo_testing::EntraStandIn;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::redis_cluster::RedisCluster;
use common::*;

/// The L2 timeout of these tests (the default).
const TIMEOUT: Duration = Duration::from_millis(100);

/// The longest a request may take with Redis failing: its two L2 calls (read,
/// write-through), each bounded by [`TIMEOUT`], plus the exchange at the local
/// stand-in and scheduling on a loaded 2-core machine.
const REQUEST_BOUND: Duration = Duration::from_millis(2 * 100 + 300);

fn key(b: u8) -> String {
    STANDARD.encode([b; 32])
}

fn on_cluster(entra: &EntraStandIn, seed: &str) -> OboConfigBuilder {
    config(entra)
        .client_secret(entra.client_secret())
        .obo_redis_url(seed)
        .obo_redis_cluster(true)
        .obo_redis_timeout(TIMEOUT)
        .obo_cache_key(key(1))
}

fn replica(builder: OboConfigBuilder) -> (OboLayer, Router) {
    let layer = OboLayer::new(builder.build().unwrap());
    let app = Router::new()
        .route(
            "/raw",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .route(
            "/start",
            get(|t: OboToken<GraphUserRead>| async move {
                match t.start_session().await {
                    Ok(key) => key.expose().to_owned(),
                    Err(e) => format!("error: {e}"),
                }
            }),
        )
        .layer(layer.clone());
    (layer, app)
}

/// The tokens of `n` users (a distinct object id each). The On-Behalf-Of cache
/// is keyed by the caller's token: each user keeps theirs.
fn users(entra: &EntraStandIn, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            entra
                .token()
                .user(&format!("00000000-0000-4000-8000-{i:012x}"))
                .sign()
        })
        .collect()
}

async fn raw(app: &Router, token: &str) -> String {
    let r = bearer(app, "/raw", token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// `raw`, timed: it answers within [`REQUEST_BOUND`].
async fn raw_in_time(app: &Router, token: &str) -> String {
    let started = Instant::now();
    let body = raw(app, token).await;
    let took = started.elapsed();
    assert!(took < REQUEST_BOUND, "a request took {took:?}");
    body
}

/// How many L2 keys each node holds, by node index.
async fn keys_per_node(cluster: &RedisCluster, nodes: &[usize]) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for &i in nodes {
        counts.insert(i, cluster.keys_on(i).await.len());
    }
    counts
}

/// Writes users `0..n` through `app` one by one; the node each one's key landed on.
async fn write_users(cluster: &RedisCluster, app: &Router, users: &[String]) -> Vec<usize> {
    let n = users.len();
    let masters = cluster.masters().await;
    let mut before = keys_per_node(cluster, &masters).await;
    let mut homes = Vec::with_capacity(n);
    for (i, token) in users.iter().enumerate() {
        raw(app, token).await;
        let after = keys_per_node(cluster, &masters).await;
        let grown: Vec<usize> = masters
            .iter()
            .copied()
            .filter(|m| after[m] > before[m])
            .collect();
        assert_eq!(grown.len(), 1, "user {i}'s key on one master: {grown:?}");
        homes.push(grown[0]);
        before = after;
    }
    homes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_tokens_and_sessions_and_keys_spread_over_the_masters() {
    let cluster = RedisCluster::start().await;
    let entra = EntraStandIn::start().await;
    // Each replica knows a different seed node only.
    let (a, app_a) = replica(on_cluster(&entra, &cluster.url(0)));
    let (b, app_b) = replica(on_cluster(&entra, &cluster.url(1)));

    const USERS: usize = 30;
    let users = users(&entra, USERS);
    let homes = write_users(&cluster, &app_a, &users[..USERS]).await;
    assert_eq!(entra.token_requests(), USERS);
    for token in &users {
        assert_eq!(raw(&app_b, token).await, raw(&app_a, token).await);
    }
    assert_eq!(entra.token_requests(), USERS, "B exchanged nothing");
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.exchanges, sa.l2_writes), (USERS as u64, USERS as u64));
    assert_eq!(
        (sb.exchanges, sb.l2_hits, sb.l2_errors),
        (0, USERS as u64, 0)
    );

    // Spread: every master holds some of the keys, and only its own.
    let per_master = keys_per_node(&cluster, &[0, 1, 2]).await;
    assert_eq!(per_master.values().sum::<usize>(), USERS, "{per_master:?}");
    for (node, count) in &per_master {
        assert!(*count > 0, "master {node} holds no key: {per_master:?}");
        assert_eq!(homes.iter().filter(|h| *h == node).count(), *count);
    }

    // A session started on A is used (refreshed, rotated) on B, then on A again
    // in the strict rotation mode: the compare-and-set script on the cluster.
    let key = {
        let r = bearer(&app_a, "/start", &users[0]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
            .parse::<axum_obo::session::SessionKey>()
            .unwrap_or_else(|_| panic!("a key: {}", r.body))
    };
    b.sessions().token::<GraphUserRead>(&key).await.unwrap();
    entra.refuse_refresh_token_reuse(true);
    a.sessions()
        .token::<axum_obo::GraphDefault>(&key)
        .await
        .unwrap();
    let refreshes = entra
        .token_request_log()
        .iter()
        .filter(|r| r.form.get("grant_type").map(String::as_str) == Some("refresh_token"))
        .count();
    assert_eq!(
        refreshes, 2,
        "each replica redeemed the other's rotated token"
    );
    let mut sessions = 0;
    for i in 0..3 {
        sessions += cluster
            .keys_on(i)
            .await
            .iter()
            .filter(|k| k.starts_with("axum-obo:session:"))
            .count();
    }
    assert_eq!(sessions, 1);
    a.sessions().end(&key).await.unwrap();
    assert!(matches!(
        b.sessions().token::<GraphUserRead>(&key).await,
        Err(axum_obo::session::SessionError::Unknown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_run_costs_misses_for_its_own_keys_only() {
    let mut cluster = RedisCluster::start().await;
    let entra = EntraStandIn::start().await;
    let (_a, app_a) = replica(on_cluster(&entra, &cluster.url(0)));
    let (b, app_b) = replica(on_cluster(
        &entra,
        &format!("{},{}", cluster.url(0), cluster.url(1)),
    ));

    const USERS: usize = 30;
    let users = users(&entra, USERS);
    let homes = write_users(&cluster, &app_a, &users[..USERS]).await;
    // B is running (connected, slot map read) when the master dies.
    raw(&app_b, &users[0]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dead = 2;
    cluster.kill(dead);
    let on_dead = homes.iter().filter(|h| **h == dead).count();
    assert!(on_dead > 0 && on_dead < USERS, "{homes:?}");

    let before = (entra.token_requests(), b.stats());
    for (i, home) in homes.iter().enumerate().skip(1) {
        let started = Instant::now();
        raw_in_time(&app_b, &users[i]).await;
        if *home != dead {
            assert!(
                started.elapsed() < TIMEOUT,
                "user {i} on a live master waited {:?}",
                started.elapsed()
            );
        }
    }
    let after = b.stats();
    let live = homes.iter().skip(1).filter(|h| **h != dead).count() as u64;
    assert_eq!(
        after.l2_hits - before.1.l2_hits,
        live,
        "users on live masters still shared: {after:?}"
    );
    assert_eq!(
        entra.token_requests() - before.0,
        homes.iter().skip(1).filter(|h| **h == dead).count(),
        "exactly the dead master's users were exchanged again"
    );
    // The breaker short-circuits: the dead master's keys are skipped, not each
    // tried until the timeout.
    assert!(after.l2_skipped > before.1.l2_skipped, "{after:?}");
    assert!(
        after.l2_errors - before.1.l2_errors <= 4,
        "a few probes at most: {after:?}"
    );
}

/// A master that stops answering (a frozen process: connections are accepted,
/// nothing is answered, as with a host gone silent) costs misses for its own
/// keys; every request answers in time; the live masters' users are still
/// shared, and once the master answers again its keys are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_master_costs_misses_for_its_own_keys_only() {
    let cluster = RedisCluster::start().await;
    let entra = EntraStandIn::start().await;
    let (_a, app_a) = replica(on_cluster(&entra, &cluster.url(0)));
    let (b, app_b) = replica(on_cluster(&entra, &cluster.url(1)));
    const USERS: usize = 30;
    let users = users(&entra, USERS + 20);
    let homes = write_users(&cluster, &app_a, &users[..USERS]).await;
    raw(&app_b, &users[0]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let silent = 2;
    cluster.nodes[silent].signal("STOP");

    let before = (entra.token_requests(), b.stats());
    for (i, token) in users[..USERS].iter().enumerate().skip(1) {
        let started = Instant::now();
        raw_in_time(&app_b, token).await;
        if homes[i] != silent {
            assert!(
                started.elapsed() < TIMEOUT,
                "user {i} on a live master waited {:?}",
                started.elapsed()
            );
        }
    }
    cluster.nodes[silent].signal("CONT");
    let after = b.stats();
    let live = homes.iter().skip(1).filter(|h| **h != silent).count();
    assert_eq!(after.l2_hits - before.1.l2_hits, live as u64, "{after:?}");
    assert_eq!(entra.token_requests() - before.0, USERS - 1 - live);
    assert!(
        after.l2_errors - before.1.l2_errors <= 4,
        "the breaker short-circuits: {after:?}"
    );

    // Back: after one breaker interval, B reads the master's keys again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (mut landed, mut served) = (0, 0);
    for token in &users[USERS..] {
        let held = cluster.keys_on(silent).await.len();
        raw(&app_a, token).await;
        if cluster.keys_on(silent).await.len() > held {
            landed += 1;
            let hits = b.stats().l2_hits;
            raw_in_time(&app_b, token).await;
            served += b.stats().l2_hits - hits;
        }
    }
    assert!(landed > 0);
    assert_eq!(served, landed, "{:?}", b.stats());
}

/// A replica of the API starting while a master is down, its first seed the
/// dead one: it learns the slot map from the live seeds, and serves the live
/// masters' users from the L2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_starting_with_a_master_down_serves_the_live_masters_keys() {
    let mut cluster = RedisCluster::start().await;
    let entra = EntraStandIn::start().await;
    let (_a, app_a) = replica(on_cluster(&entra, &cluster.seeds()));
    const USERS: usize = 30;
    let users = users(&entra, USERS);
    let homes = write_users(&cluster, &app_a, &users).await;
    let dead = 2;
    cluster.kill(dead);

    let seeds = format!("{},{},{}", cluster.url(2), cluster.url(0), cluster.url(1));
    let (b, app_b) = replica(on_cluster(&entra, &seeds));
    // A first request on a live master connects and reads the slot map.
    let first = homes.iter().position(|h| *h != dead).unwrap();
    raw_in_time(&app_b, &users[first]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let before = (entra.token_requests(), b.stats());
    for (i, token) in users.iter().enumerate().filter(|(i, _)| *i != first) {
        let started = Instant::now();
        raw_in_time(&app_b, token).await;
        if homes[i] != dead {
            assert!(
                started.elapsed() < TIMEOUT,
                "user {i}: {:?}",
                started.elapsed()
            );
        }
    }
    let live = homes
        .iter()
        .enumerate()
        .filter(|(i, h)| *i != first && **h != dead)
        .count();
    let after = b.stats();
    assert_eq!(after.l2_hits - before.1.l2_hits, live as u64, "{after:?}");
    assert_eq!(entra.token_requests() - before.0, USERS - 1 - live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_promotes_a_replica_and_its_keys_are_served_again() {
    let mut cluster = RedisCluster::start_with_replicas(1).await;
    let entra = EntraStandIn::start().await;
    let (_a, app_a) = replica(on_cluster(&entra, &cluster.url(0)));
    let (b, app_b) = replica(on_cluster(&entra, &cluster.url(1)));

    const USERS: usize = 24;
    let users = users(&entra, USERS + 40);
    let masters = cluster.masters().await;
    assert_eq!(masters.len(), 3);
    let homes = write_users(&cluster, &app_a, &users[..USERS]).await;
    for m in &masters {
        cluster.replicate(*m).await;
    }
    raw(&app_b, &users[0]).await;
    let dead = homes[1];
    cluster.kill(dead);

    // Until the failover, requests answer in time (the dead master's users are
    // exchanged); wait until a replica is promoted.
    let started = Instant::now();
    let mut i = 1;
    while cluster.masters().await.len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no failover within 15 s"
        );
        raw_in_time(&app_b, &users[i]).await;
        i = i % (USERS - 1) + 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_until_ok(Duration::from_secs(10)).await;
    // One breaker interval for B to probe and read the new slot map.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for token in &users[1..USERS] {
        raw_in_time(&app_b, token).await;
    }

    // A new replica of the API: every user, also those of the failed master, is
    // served from the promoted replica's copy.
    let live = cluster.masters().await;
    assert!(!live.contains(&dead));
    let (c, app_c) = replica(on_cluster(&entra, &cluster.url(live[0])));
    let exchanged = entra.token_requests();
    for token in &users[..USERS] {
        raw_in_time(&app_c, token).await;
    }
    assert_eq!(entra.token_requests(), exchanged, "{:?}", c.stats());
    assert_eq!(c.stats().l2_hits, USERS as u64);

    // B writes through to the promoted master again: a user new to everyone
    // whose key lands there, exchanged by B, is served to C from the L2.
    let now = cluster.masters().await;
    assert!(!now.contains(&dead));
    let promoted = *now
        .iter()
        .find(|m| !masters.contains(m))
        .expect("a promoted replica");
    let mut landed = false;
    for fresh in &users[USERS..] {
        let held = cluster.keys_on(promoted).await.len();
        raw_in_time(&app_b, fresh).await;
        if cluster.keys_on(promoted).await.len() > held {
            let before = c.stats().l2_hits;
            raw(&app_c, fresh).await;
            assert_eq!(c.stats().l2_hits, before + 1, "{:?}", b.stats());
            landed = true;
            break;
        }
    }
    assert!(
        landed,
        "no write reached the promoted master: {:?}",
        b.stats()
    );
}

/// CAE: a challenged token that Entra does not renew is evicted (the compare-
/// and-delete script) from the master holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_eviction_script_works_on_the_cluster() {
    const OID: &str = "3e1c0b7a-5d4f-4a8e-9b2c-6f7d8e9a0b1c";
    let cluster = RedisCluster::start().await;
    let harness = axum_obo_testing::Harness::start().await;
    let layer = OboLayer::new(
        harness
            .config()
            .client_capabilities(["cp1"])
            .obo_redis_url(cluster.url(2))
            .obo_redis_cluster(true)
            .obo_cache_key(key(1))
            .build()
            .unwrap(),
    );
    let app = Router::new()
        .route(
            "/me",
            get(|token: OboToken<GraphUserRead>| async move {
                Ok::<_, axum_obo::AuthRejection>(axum::Json(token.graph().get_json("me").await?))
            }),
        )
        .layer(layer.clone());
    let token = harness
        .entra()
        .token()
        .user(OID)
        .issued_at(std::time::SystemTime::now() - Duration::from_secs(300))
        .sign();
    assert_eq!(bearer(&app, "/me", &token).await.status, 200);
    let stored = keys_per_node(&cluster, &[0, 1, 2]).await;
    assert_eq!(stored.values().sum::<usize>(), 1, "written through");

    harness.entra().revoke_session_for_good(OID);
    harness.graph().inject_fault(
        axum_obo_testing::GraphFault::ClaimsChallenge(
            r#"{"access_token":{"nbf":{"essential":true,"value":"1702682181"}}}"#.into(),
        ),
        Some(1),
    );
    let r = bearer(&app, "/me", &token).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let left = keys_per_node(&cluster, &[0, 1, 2]).await;
    assert_eq!(left.values().sum::<usize>(), 0, "evicted: {left:?}");
    assert_eq!(layer.stats().l2_evictions, 1);
}

/// One `server` example process in the environment mode (`OboConfigBuilder::from_env`),
/// killed on drop.
struct ExampleServer {
    child: std::process::Child,
    url: String,
}

impl ExampleServer {
    /// Starts the example (built with the `redis` feature next to this test's
    /// binary: `cargo build --features redis --example server`) with `env`, and
    /// waits for `/healthz`.
    async fn start(env: &[(&str, String)]) -> Self {
        // The port is free when picked, but another test's server may take it
        // before the example binds it: then the example exits, and is started
        // again on another port.
        for _ in 0..3 {
            if let Some(server) = Self::try_start(env).await {
                return server;
            }
        }
        panic!("the example server exited three times (its stderr is above)");
    }

    /// `None` if the process exited before answering `/healthz`.
    async fn try_start(env: &[(&str, String)]) -> Option<Self> {
        let exe = std::env::current_exe()
            .unwrap()
            .parent()
            .and_then(std::path::Path::parent)
            .unwrap()
            .join("examples/server");
        assert!(
            exe.exists(),
            "{} is missing: `cargo build --features redis --example server` (.ci/run does)",
            exe.display()
        );
        let port = common::redis_server::free_port();
        let url = format!("http://127.0.0.1:{port}");
        let child = std::process::Command::new(&exe)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("OBO_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("the example server starts");
        let mut server = Self { child, url };
        let started = Instant::now();
        loop {
            if let Ok(Some(_)) = server.child.try_wait() {
                return None;
            }
            if let Ok(r) = reqwest::get(format!("{}/healthz", server.url)).await {
                // Still ours: a Redis node that took the port answers no HTTP.
                if r.status() == 200 && matches!(server.child.try_wait(), Ok(None)) {
                    return Some(server);
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the example server did not answer /healthz"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /me` with `token`: the status, within [`REQUEST_BOUND`].
    async fn me(&self, http: &reqwest::Client, token: &str) -> u16 {
        let started = Instant::now();
        let status = http
            .get(format!("{}/me", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        let took = started.elapsed();
        assert!(took < REQUEST_BOUND, "/me took {took:?}");
        status
    }
}

impl Drop for ExampleServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// On-Behalf-Of grants the Entra stand-in has answered.
fn obo_grants(entra: &EntraStandIn) -> usize {
    entra
        .token_request_log()
        .iter()
        .filter(|r| {
            r.form.get("grant_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        })
        .count()
}

/// Keys held by the running masters among `nodes`.
async fn keys_on(cluster: &RedisCluster, nodes: &[usize]) -> usize {
    keys_per_node(cluster, nodes).await.values().sum()
}

/// Two example servers, each given a different seed node of a local cluster
/// (`OBO_REDIS_URL`, `OBO_REDIS_CLUSTER=true`), share every user's token; the
/// keys spread over the masters; with a master killed both keep answering, and
/// users whose keys live on the other masters are still shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_example_servers_share_tokens_through_the_cluster_and_survive_a_dead_master() {
    let mut cluster = RedisCluster::start().await;
    let harness = axum_obo_testing::Harness::start().await;
    let entra = harness.entra();
    let env = |seed: String| {
        vec![
            ("AZURE_TENANT_ID", entra.home_tenant()),
            ("AZURE_CLIENT_ID", entra.api_client_id()),
            ("AZURE_CLIENT_SECRET", entra.client_secret()),
            ("AZURE_AUTHORITY_HOST", entra.authority_host()),
            ("OBO_GRAPH_URL", harness.graph().url()),
            ("OBO_CACHE_KEY", key(7)),
            ("OBO_REDIS_URL", seed),
            ("OBO_REDIS_CLUSTER", "true".to_owned()),
        ]
    };
    let a = ExampleServer::start(&env(cluster.url(0))).await;
    let b = ExampleServer::start(&env(cluster.url(1))).await;
    let http = reqwest::Client::new();

    const USERS: usize = 24;
    let users = users(entra, USERS + 12);
    for token in &users[..USERS] {
        assert_eq!(a.me(&http, token).await, 200);
        assert_eq!(b.me(&http, token).await, 200);
    }
    assert_eq!(
        obo_grants(entra),
        USERS,
        "one exchange per user across both"
    );
    let spread = keys_per_node(&cluster, &[0, 1, 2]).await;
    assert_eq!(spread.values().sum::<usize>(), USERS, "{spread:?}");
    assert!(spread.values().all(|n| *n > 0), "{spread:?}");

    cluster.kill(2);
    // New users: both servers answer each in time; a user whose key A wrote to
    // a live master is served to B from it.
    let mut shared = 0;
    for token in &users[USERS..] {
        let held = keys_on(&cluster, &[0, 1]).await;
        let grants = obo_grants(entra);
        assert_eq!(a.me(&http, token).await, 200);
        let on_live = keys_on(&cluster, &[0, 1]).await > held;
        assert_eq!(b.me(&http, token).await, 200);
        if on_live {
            assert_eq!(
                obo_grants(entra),
                grants + 1,
                "B took A's token from a live master"
            );
            shared += 1;
        } else {
            assert_eq!(
                obo_grants(entra),
                grants + 2,
                "the dead master's user: a miss"
            );
        }
    }
    assert!(shared > 0, "no new user landed on a live master");
    // Users exchanged before: both still answer (from memory).
    for token in &users[..USERS] {
        assert_eq!(b.me(&http, token).await, 200);
    }
}

/// A replica of the API started while every seed node is down (Redis started
/// after the API, or all of it restarted): its first requests are misses in
/// time, and once the nodes are back it uses the cluster without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_before_the_cluster_uses_it_once_it_is_up() {
    let mut cluster = RedisCluster::start().await;
    let entra = EntraStandIn::start().await;
    for i in 0..3 {
        cluster.kill(i);
    }
    let (b, app_b) = replica(on_cluster(&entra, &cluster.seeds()));
    const USERS: usize = 40;
    let users = users(&entra, USERS);
    for token in &users[..2] {
        raw_in_time(&app_b, token).await;
    }
    assert!(b.stats().l2_errors > 0, "{:?}", b.stats());

    for node in &mut cluster.nodes {
        assert!(node.spawn().await, "the node restarts on its port");
    }
    cluster.wait_until_ok(Duration::from_secs(20)).await;
    let (_a, app_a) = replica(on_cluster(&entra, &cluster.seeds()));
    for token in &users[2..] {
        raw(&app_a, token).await;
    }
    // Within a few breaker intervals, B reads A's tokens from the cluster
    // (each user once: B keeps what it got in memory).
    let mut served = 0;
    for token in &users[2..] {
        let hits = b.stats().l2_hits;
        raw_in_time(&app_b, token).await;
        if b.stats().l2_hits > hits {
            served += 1;
            if served >= 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served >= 3, "B never used the cluster: {:?}", b.stats());
}

/// A slot in the middle of a migration (`MIGRATING` on its master, `IMPORTING`
/// on another, the key already moved): a replica's read of a key in it follows
/// the `ASK` redirection and is a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_in_a_migrating_slot_is_read_through_the_ask_redirection() {
    let cluster = RedisCluster::start().await;
    let entra = EntraStandIn::start().await;
    let (_a, app_a) = replica(on_cluster(&entra, &cluster.seeds()));
    let users = users(&entra, 1);
    let homes = write_users(&cluster, &app_a, &users).await;
    let source = homes[0];
    let target = cluster
        .masters()
        .await
        .into_iter()
        .find(|m| *m != source)
        .unwrap();
    let key = cluster.keys_on(source).await.pop().unwrap();
    let mut src = cluster.node_client(source).await;
    let mut dst = cluster.node_client(target).await;
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&key)
        .query_async(&mut src)
        .await
        .unwrap();
    let id = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        async move {
            redis::cmd("CLUSTER")
                .arg("MYID")
                .query_async::<String>(&mut c)
                .await
                .unwrap()
        }
    };
    let (src_id, dst_id) = (id(&mut src).await, id(&mut dst).await);
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("IMPORTING")
        .arg(&src_id)
        .query_async(&mut dst)
        .await
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg("MIGRATING")
        .arg(&dst_id)
        .query_async(&mut src)
        .await
        .unwrap();
    let _: String = redis::cmd("MIGRATE")
        .arg("127.0.0.1")
        .arg(cluster.nodes[target].port)
        .arg(&key)
        .arg(0)
        .arg(5000)
        .query_async(&mut src)
        .await
        .unwrap();
    assert!(cluster.keys_on(source).await.is_empty(), "moved");
    assert_eq!(cluster.keys_on(target).await, vec![key.clone()]);

    let (b, app_b) = replica(on_cluster(&entra, &cluster.seeds()));
    let before = entra.token_requests();
    raw_in_time(&app_b, &users[0]).await;
    assert_eq!(b.stats().l2_hits, 1, "{:?}", b.stats());
    assert_eq!(entra.token_requests(), before, "no exchange");
}

/// A cluster that names no endpoints (`cluster-preferred-endpoint-type
/// unknown-endpoint`: `CLUSTER SLOTS` gives NULL for every host, the client
/// uses the address it reached): the breakers still follow the masters, so a
/// dead master costs misses for its own keys only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_endpoints_still_gets_a_breaker_per_master() {
    let mut cluster = RedisCluster::start().await;
    for i in 0..3 {
        let mut c = cluster.node_client(i).await;
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("cluster-preferred-endpoint-type")
            .arg("unknown-endpoint")
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let entra = EntraStandIn::start().await;
    let (_a, app_a) = replica(on_cluster(&entra, &cluster.url(0)));
    let (b, app_b) = replica(on_cluster(&entra, &cluster.url(0)));
    const USERS: usize = 30;
    let users = users(&entra, USERS);
    let homes = write_users(&cluster, &app_a, &users).await;
    raw(&app_b, &users[0]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dead = 2;
    cluster.kill(dead);

    let before = b.stats();
    for token in &users[1..] {
        raw_in_time(&app_b, token).await;
    }
    let live = homes.iter().skip(1).filter(|h| **h != dead).count() as u64;
    let after = b.stats();
    assert_eq!(
        after.l2_hits - before.l2_hits,
        live,
        "the live masters' users are still shared: {after:?}"
    );
}

/// A seed whose host does not resolve, listed first: requests answer in time
/// and the other seeds give the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_that_does_not_resolve_listed_first_is_passed_over() {
    let cluster = RedisCluster::start().await;
    let entra = EntraStandIn::start().await;
    let (_a, app_a) = replica(on_cluster(&entra, &cluster.url(0)));
    let seeds = format!("redis://no-such-host.invalid:6379,{}", cluster.url(1));
    let (b, app_b) = replica(on_cluster(&entra, &seeds));
    const USERS: usize = 20;
    let users = users(&entra, USERS);
    for token in &users {
        raw(&app_a, token).await;
    }
    let started = Instant::now();
    let mut served = 0;
    for token in &users {
        let hits = b.stats().l2_hits;
        raw_in_time(&app_b, token).await;
        served += b.stats().l2_hits - hits;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served >= (USERS / 2) as u64,
        "B used the cluster ({served} hits in {:?}): {:?}",
        started.elapsed(),
        b.stats()
    );
}
