//! The Redis L2 (feature `redis`) over TLS with a private CA, and authenticated
//! with Microsoft Entra tokens as Azure Managed Redis takes them, against real
//! `redis-server`s on loopback: a TLS server whose certificate a test CA signed,
//! and a server whose ACL user (the identity's object id) has the stand-in's
//! current token for `https://redis.azure.com` as its password.
#![cfg(feature = "redis")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use axum_obo::clock::{Clock as _, ManualClock};
use axum_obo::{GraphUserRead, OboConfigBuilder, OboLayer, OboToken};
use axum_obo_testing::{EntraStandIn, TokenFault};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::redis_cluster::{ClusterTls, RedisCluster};
use common::redis_server::{free_port, RedisServer};
use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const REDIS_SCOPE: &str = "https://redis.azure.com/.default";

fn key(b: u8) -> String {
    STANDARD.encode([b; 32])
}

fn claims(token: &str) -> serde_json::Value {
    let seg = token.split('.').nth(1).unwrap_or_default();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null)
}

fn replica(builder: OboConfigBuilder) -> (OboLayer, Router) {
    let layer = OboLayer::new(builder.build().unwrap());
    let app = Router::new()
        .route(
            "/raw",
            get(|t: OboToken<GraphUserRead>| async move { t.access_token().expose().to_owned() }),
        )
        .layer(layer.clone());
    (layer, app)
}

async fn raw(app: &Router, token: &str) -> String {
    let r = bearer(app, "/raw", token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

// ---------------------------------------------------------------- TLS

/// A test CA and a server certificate it signed for 127.0.0.1 / localhost,
/// written as PEM files in a fresh directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Self {
        Self::for_names(name, &["127.0.0.1", "localhost"])
    }

    /// A CA and a server certificate for `names` only.
    fn for_names(name: &str, names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "axum-obo-tls-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("axum-obo test CA {name}"),
        );
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let server = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_str().unwrap().to_owned()
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A redis-server with a TLS port (server certificate signed by `pki`'s CA,
/// no client certificates); its plain port only serves the harness's checks.
async fn tls_server(pki: &Pki) -> (RedisServer, String) {
    let tls_port = free_port().to_string();
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ])
    .await;
    (server, format!("rediss://127.0.0.1:{tls_port}"))
}

fn with_tls(entra: &EntraStandIn, url: &str, ca: Option<&Path>) -> OboConfigBuilder {
    let b = config(entra)
        .client_secret(entra.client_secret())
        .obo_redis_url(url)
        .obo_cache_key(key(1));
    match ca {
        Some(ca) => b.obo_redis_ca_file(ca),
        None => b,
    }
}

#[tokio::test]
async fn replicas_share_tokens_over_tls_with_a_private_ca() {
    let pki = Pki::new("good");
    let (server, url) = tls_server(&pki).await;
    let entra = EntraStandIn::start().await;
    let (a, app_a) = replica(with_tls(&entra, &url, Some(&pki.ca())));
    let (b, app_b) = replica(with_tls(&entra, &url, Some(&pki.ca())));

    let user = entra.token().sign();
    let from_a = raw(&app_a, &user).await;
    let from_b = raw(&app_b, &user).await;
    assert_eq!(from_a, from_b, "B serves A's token, read over TLS");
    assert_eq!(entra.token_requests(), 1, "one exchange for both replicas");
    assert_eq!((a.stats().l2_writes, a.stats().l2_errors), (1, 0));
    assert_eq!((b.stats().l2_hits, b.stats().exchanges), (1, 0));

    // The entry really is in that server (its plain port, for the test only).
    let mut c = server.client().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let tls_clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        tls_clients
            .lines()
            .filter(|l| !l.contains("cmd=client"))
            .count()
            >= 2,
        "both replicas hold a connection: {tls_clients}"
    );
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_at_connect_and_logged() {
    let (logs, _guard) = capture_logs();
    let pki = Pki::new("server");
    let other = Pki::new("other");
    let (server, url) = tls_server(&pki).await;
    let entra = EntraStandIn::start().await;
    // Trusting another CA, and trusting the system roots (the default): neither
    // knows the test CA.
    let (wrong, app_wrong) = replica(with_tls(&entra, &url, Some(&other.ca())));
    let (system, app_system) = replica(with_tls(&entra, &url, None));

    for (layer, app) in [(&wrong, &app_wrong), (&system, &app_system)] {
        let before = entra.token_requests();
        let user = entra.token().sign();
        let token = raw(app, &user).await;
        assert!(!token.is_empty(), "the request is answered (exchanged)");
        assert_eq!(entra.token_requests(), before + 1, "exchanged without L2");
        let s = layer.stats();
        assert_eq!(s.l2_hits + s.l2_writes, 0, "{s:?}");
        assert!(
            s.l2_errors >= 1,
            "the refused connection is an L2 error: {s:?}"
        );
    }

    // Nothing reached the server, and the refusal is in the logs with its cause.
    let mut c = server.client().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    let started = Instant::now();
    let refusals = loop {
        let text = logs.text();
        let refusals: Vec<String> = (text.lines())
            .filter(|l| l.contains("WARN") && l.contains("Redis L2: cannot connect"))
            .filter(|l| l.contains("invalid peer certificate: UnknownIssuer"))
            .map(str::to_owned)
            .collect();
        if refusals.len() >= 2 || started.elapsed() > Duration::from_secs(10) {
            break refusals;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        refusals.len() >= 2,
        "each replica logs the certificate refusal: {refusals:?}\n{}",
        logs.text()
    );
}

/// The host name is verified: a certificate the trusted CA signed, but for
/// another name, is refused at connect (logged), and nothing reaches the server.
#[tokio::test]
async fn a_server_certificate_for_another_name_is_refused_at_connect_and_logged() {
    let (logs, _guard) = capture_logs();
    let pki = Pki::for_names("othername", &["redis.other.example"]);
    let (server, url) = tls_server(&pki).await;
    let entra = EntraStandIn::start().await;
    let (layer, app) = replica(with_tls(&entra, &url, Some(&pki.ca())));

    for _ in 0..2 {
        let before = entra.token_requests();
        raw(&app, &entra.token().sign()).await;
        assert_eq!(entra.token_requests(), before + 1, "exchanged without L2");
    }
    let s = layer.stats();
    assert_eq!(s.l2_hits + s.l2_writes, 0, "{s:?}");
    assert!(s.l2_errors >= 1, "{s:?}");
    let mut c = server.client().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    let started = Instant::now();
    while !(logs.text().lines()).any(|l| {
        l.contains("Redis L2: cannot connect") && l.contains("certificate not valid for name")
    }) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the name mismatch is logged: {}",
            logs.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------- Entra

/// A TCP proxy in front of Redis that records what clients send and can hold
/// it back (to act on the server between a client's renewal and its `AUTH`).
struct Proxy {
    port: u16,
    connections: Arc<Mutex<usize>>,
    sent: Arc<Mutex<Vec<u8>>>,
    hold: watch::Sender<bool>,
}

impl Proxy {
    async fn start(redis_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(Mutex::new(0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (hold, held) = watch::channel(false);
        let (count, log) = (Arc::clone(&connections), Arc::clone(&sent));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
                let Ok(server) = TcpStream::connect(("127.0.0.1", redis_port)).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let (log, mut held) = (Arc::clone(&log), held.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let Ok(n) = cr.read(&mut buf).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        if held.wait_for(|h| !h).await.is_err() {
                            return;
                        }
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            port,
            connections,
            sent,
            hold,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    fn has_sent(&self, needle: &str) -> bool {
        let sent = self.sent.lock().unwrap();
        sent.windows(needle.len()).any(|w| w == needle.as_bytes())
    }
}

/// A server whose default user is off; the test administers it as `admin`.
async fn acl_server() -> (RedisServer, redis::aio::MultiplexedConnection) {
    let server = RedisServer::start().await;
    let admin = administer(&server).await;
    (server, admin)
}

/// Turns `server`'s default user off; the test's connection as `admin` (plain port).
async fn administer(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let mut c = server.client().await;
    redis::cmd("ACL")
        .arg(&["SETUSER", "admin", "on", ">admin-pw", "~*", "&*", "+@all"][..])
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let admin = redis::Client::open(format!("redis://admin:admin-pw@127.0.0.1:{}", server.port))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("ACL")
        .arg(&["SETUSER", "default", "off", "resetpass"][..])
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    admin
}

async fn acl(admin: &mut redis::aio::MultiplexedConnection, args: &[&str]) {
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(args)
        .query_async::<()>(admin)
        .await
        .unwrap();
}

/// Failed `AUTH`s so far, from the server's `ACL LOG`.
async fn auth_failures(admin: &mut redis::aio::MultiplexedConnection) -> i64 {
    type Entry = std::collections::HashMap<String, redis::Value>;
    let log: Vec<Entry> = redis::cmd("ACL")
        .arg("LOG")
        .query_async(admin)
        .await
        .unwrap();
    log.iter()
        .filter(|e| matches!(e.get("reason"), Some(redis::Value::BulkString(r)) if r == b"auth"))
        .map(|e| match e.get("count") {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("ACL LOG count: {other:?}"),
        })
        .sum()
}

/// The access tokens the stand-in issued for Redis, oldest first.
fn redis_tokens(entra: &EntraStandIn) -> Vec<String> {
    entra
        .issued_access_tokens()
        .into_iter()
        .filter(|t| claims(t)["aud"] == "https://redis.azure.com")
        .collect()
}

/// Waits (real time, at most 10 s) until the stand-in has issued `n` tokens for Redis.
async fn wait_for_redis_tokens(entra: &EntraStandIn, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let tokens = redis_tokens(entra);
        if tokens.len() >= n {
            return tokens;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} tokens for Redis, waiting for {n}",
            tokens.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends requests of new users (tokens issued at the manual clock's time) to
/// `app` until one is written to the L2 (real time, at most 10 s): the
/// connection is up and authenticated.
async fn until_l2_writes(
    entra: &EntraStandIn,
    clock: &ManualClock,
    layer: &OboLayer,
    app: &Router,
) {
    let started = Instant::now();
    let before = layer.stats().l2_writes;
    while layer.stats().l2_writes == before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the L2 did not come up: {:?}",
            layer.stats()
        );
        raw(app, &user_at(entra, clock)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new user's token, valid for the stand-in (real time) and for the layers
/// (the manual clock, at most 3 hours ahead).
fn user_at(entra: &EntraStandIn, clock: &ManualClock) -> String {
    assert!(clock.now() < axum_obo::clock::SystemClock.now() + 3 * 3600);
    entra.token().lifetime(Duration::from_secs(4 * 3600)).sign()
}

fn with_entra(entra: &EntraStandIn, url: &str, clock: &ManualClock) -> OboConfigBuilder {
    config(entra)
        .client_secret(entra.client_secret())
        .obo_redis_url(url)
        .obo_cache_key(key(1))
        .obo_redis_entra(true)
        .obo_retries(0, Duration::from_secs(1))
        .clock(clock.clone())
}

/// Entra authentication end to end: the crate's token for
/// `https://redis.azure.com/.default` (asked with its own credential) is the
/// password of the ACL user named by the token's `oid`; the L2 works; the token
/// is renewed before it expires and every connection sends `AUTH` with the new
/// one on the connection it has (no reconnect, no failed request), the old
/// password being gone; a token endpoint failing at renewal keeps the current
/// token until it expires, then the L2 misses (logged), and no request fails.
#[tokio::test]
async fn entra_tokens_authenticate_are_renewed_and_re_authenticate_without_dropping_requests() {
    let (logs, _guard) = capture_logs();
    let entra = EntraStandIn::start().await;
    entra.add_resource("https://redis.azure.com");
    let (redis, mut admin) = acl_server().await;
    let proxy = Proxy::start(redis.port).await;
    let clock = ManualClock::now_system();
    let (a, app_a) = replica(with_entra(&entra, &proxy.url(), &clock));
    let (b, app_b) = replica(with_entra(&entra, &proxy.url(), &clock));

    // 1. The first L2 call asks Entra for a token; Redis does not know it yet:
    //    the request is answered from Entra, the L2 misses.
    raw(&app_a, &user_at(&entra, &clock)).await;
    raw(&app_b, &user_at(&entra, &clock)).await;
    let first = wait_for_redis_tokens(&entra, 2).await;
    let redis_requests: Vec<_> = (entra.token_request_log().into_iter())
        .filter(|r| r.form.get("scope").map(String::as_str) == Some(REDIS_SCOPE))
        .collect();
    assert_eq!(redis_requests.len(), 2, "one token per replica");
    for r in &redis_requests {
        assert_eq!(r.tenant, entra.home_tenant(), "asked in the home tenant");
        assert_eq!(r.form["grant_type"], "client_credentials");
        assert_eq!(r.form["client_id"], entra.api_client_id());
    }
    let oid = claims(&first[0])["oid"].as_str().unwrap().to_owned();
    assert_eq!(claims(&first[1])["oid"], oid.as_str());
    assert_eq!(claims(&first[0])["idtyp"], "app");
    // The data access policy: the identity's object id, its current tokens.
    let mut user = vec![oid.as_str(), "on", "~*", "+@all"];
    let passwords: Vec<String> = first.iter().map(|t| format!(">{t}")).collect();
    user.extend(passwords.iter().map(String::as_str));
    acl(&mut admin, &user).await;
    until_l2_writes(&entra, &clock, &a, &app_a).await;
    until_l2_writes(&entra, &clock, &b, &app_b).await;

    // 2. Shared: B serves what A exchanged.
    let shared = user_at(&entra, &clock);
    let exchanges = entra.token_requests();
    assert_eq!(raw(&app_a, &shared).await, raw(&app_b, &shared).await);
    assert_eq!(entra.token_requests(), exchanges + 1, "B read A's entry");
    let hits = b.stats().l2_hits;
    assert!(hits >= 1);

    // 3. Renewal: 49 minutes later (past 80 % of the hour), the next L2 call of
    //    each replica renews its token. Redis is held back meanwhile, so that the
    //    new tokens can be given to the ACL (and the old ones removed) before
    //    the replicas' `AUTH` reaches it.
    let connections = proxy.connections();
    proxy.hold.send_replace(true);
    clock.advance(Duration::from_secs(49 * 60));
    raw(&app_a, &user_at(&entra, &clock)).await;
    raw(&app_b, &user_at(&entra, &clock)).await;
    let tokens = wait_for_redis_tokens(&entra, 4).await;
    let renewed = &tokens[2..];
    let mut switch = vec![oid.as_str()];
    let add: Vec<String> = renewed.iter().map(|t| format!(">{t}")).collect();
    let remove: Vec<String> = first.iter().map(|t| format!("<{t}")).collect();
    switch.extend(add.iter().chain(&remove).map(String::as_str));
    acl(&mut admin, &switch).await;
    let denied = auth_failures(&mut admin).await;
    proxy.hold.send_replace(false);
    let started = Instant::now();
    while !renewed.iter().all(|t| proxy.has_sent(t)) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the replicas did not send AUTH with their new tokens"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        auth_failures(&mut admin).await,
        denied,
        "every AUTH with a renewed token succeeded"
    );
    assert_eq!(
        proxy.connections(),
        connections,
        "re-authenticated, not reconnected"
    );
    // The L2 works on (after the breaker's second), on the old connections.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let shared = user_at(&entra, &clock);
    let exchanges = entra.token_requests();
    assert_eq!(raw(&app_a, &shared).await, raw(&app_b, &shared).await);
    assert_eq!(entra.token_requests(), exchanges + 1, "B read A's entry");
    assert!(b.stats().l2_hits > hits);
    assert_eq!(proxy.connections(), connections);

    // 4. The token endpoint fails for Redis tokens at the next renewal: the
    //    current token stays in use while it is valid…
    entra.inject_token_fault_for_scope(
        REDIS_SCOPE,
        TokenFault::ServiceUnavailable { retry_after: None },
    );
    clock.advance(Duration::from_secs(49 * 60));
    let (writes, hits) = (a.stats().l2_writes, b.stats().l2_hits);
    let shared = user_at(&entra, &clock);
    assert_eq!(raw(&app_a, &shared).await, raw(&app_b, &shared).await);
    assert!(a.stats().l2_writes > writes && b.stats().l2_hits > hits);
    let started = Instant::now();
    while !logs.text().contains("cannot get an Entra token for Redis") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the failed renewal is logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …and once it has expired the L2 misses (logged); requests are answered.
    clock.advance(Duration::from_secs(11 * 60));
    let (writes, hits, errors) = (a.stats().l2_writes, b.stats().l2_hits, a.stats().l2_errors);
    for _ in 0..3 {
        let user = user_at(&entra, &clock);
        raw(&app_a, &user).await;
        raw(&app_b, &user).await;
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(
        (sa.l2_writes, sb.l2_hits),
        (writes, hits),
        "no L2 with an expired token"
    );
    assert!(sa.l2_errors > errors, "{sa:?}");
    assert!(
        logs.text().contains("the Entra token for Redis expired"),
        "logged"
    );

    // 5. Entra answers again: the next renewal (after the backoff) restores the L2.
    entra.clear_token_faults();
    let before = redis_tokens(&entra).len();
    clock.advance(Duration::from_secs(61));
    raw(&app_a, &user_at(&entra, &clock)).await;
    let tokens = wait_for_redis_tokens(&entra, before + 1).await;
    let newest = format!(">{}", tokens[before]);
    acl(&mut admin, &[oid.as_str(), &newest]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    until_l2_writes(&entra, &clock, &a, &app_a).await;

    assert_no_secrets_in(&logs, &["admin-pw"]);
    drop(redis);
}

/// As on Azure Managed Redis: TLS (a private CA here) and Entra authentication
/// together, the user named by `OBO_REDIS_USERNAME` instead of the token's `oid`.
#[tokio::test]
async fn entra_authentication_over_tls_with_a_configured_user_name() {
    let pki = Pki::new("entra");
    let (server, url) = tls_server(&pki).await;
    let mut admin = administer(&server).await;
    let entra = EntraStandIn::start().await;
    entra.add_resource("https://redis.azure.com");
    let clock = ManualClock::now_system();
    let builder = with_entra(&entra, &url, &clock)
        .obo_redis_ca_file(pki.ca())
        .obo_redis_username("app-redis-user");
    let (layer, app) = replica(builder);

    raw(&app, &user_at(&entra, &clock)).await;
    let token = wait_for_redis_tokens(&entra, 1).await.remove(0);
    let password = format!(">{token}");
    acl(
        &mut admin,
        &["app-redis-user", "on", "~*", "+@all", &password],
    )
    .await;
    until_l2_writes(&entra, &clock, &layer, &app).await;

    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        clients.lines().any(|l| l.contains("user=app-redis-user")),
        "connected as the configured user: {clients}"
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "entries written over TLS as that user");
}

/// `username`'s failed `AUTH`s in the `ACL LOG` of `c`'s node.
async fn auth_failures_of(c: &mut redis::aio::MultiplexedConnection, username: &str) -> i64 {
    type Entry = std::collections::HashMap<String, redis::Value>;
    let log: Vec<Entry> = redis::cmd("ACL").arg("LOG").query_async(c).await.unwrap();
    let is = |e: &Entry, field: &str, want: &str| matches!(e.get(field), Some(redis::Value::BulkString(v)) if v == want.as_bytes());
    log.iter()
        .filter(|e| is(e, "reason", "auth") && is(e, "username", username))
        .map(|e| match e.get("count") {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("ACL LOG count: {other:?}"),
        })
        .sum()
}

/// In cluster mode every node's connection authenticates with the Entra token
/// (ACLs are per node: each master gets the user), and takes the renewed token:
/// each master sees an `AUTH` with it (refused here, the ACL not knowing it, so
/// the connection keeps its user and requests go on).
#[tokio::test]
async fn cluster_node_connections_authenticate_with_the_entra_token_and_take_renewals() {
    use common::redis_cluster::RedisCluster;
    let cluster = RedisCluster::start().await;
    let masters = cluster.masters().await;
    assert_eq!(masters.len(), 3);
    let entra = EntraStandIn::start().await;
    entra.add_resource("https://redis.azure.com");
    let clock = ManualClock::now_system();
    let (layer, app) =
        replica(with_entra(&entra, &cluster.seeds(), &clock).obo_redis_cluster(true));

    raw(&app, &user_at(&entra, &clock)).await;
    let token = wait_for_redis_tokens(&entra, 1).await.remove(0);
    let oid = claims(&token)["oid"].as_str().unwrap().to_owned();
    let password = format!(">{token}");
    let mut nodes = Vec::new();
    for &i in &masters {
        let mut c = cluster.node_client(i).await;
        acl(&mut c, &[oid.as_str(), "on", "~*", "+@all", &password]).await;
        nodes.push(c);
    }
    // Enough users to touch every master.
    let started = Instant::now();
    loop {
        raw(&app, &user_at(&entra, &clock)).await;
        let mut on_every_master = true;
        for &i in &masters {
            on_every_master &= !cluster.keys_on(i).await.is_empty();
        }
        if on_every_master {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "entries on every master: {:?}",
            layer.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in &mut nodes {
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(c)
            .await
            .unwrap();
        assert!(
            clients.lines().any(|l| l.contains(&format!("user={oid}"))),
            "every master has a connection as the identity: {clients}"
        );
    }

    // Renewal: each master's connection sends AUTH with the new token.
    let mut before = Vec::new();
    for c in &mut nodes {
        before.push(auth_failures_of(c, &oid).await);
    }
    clock.advance(Duration::from_secs(49 * 60));
    raw(&app, &user_at(&entra, &clock)).await;
    wait_for_redis_tokens(&entra, 2).await;
    let started = Instant::now();
    for (c, before) in nodes.iter_mut().zip(before) {
        while auth_failures_of(c, &oid).await == before {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "a master saw no AUTH with the renewed token"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let writes = layer.stats().l2_writes;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..5 {
        raw(&app, &user_at(&entra, &clock)).await;
    }
    assert!(layer.stats().l2_writes > writes, "{:?}", layer.stats());
}

/// A token for Redis issued with a tiny lifetime (here 1 s) is not renewed in a
/// loop: not by the renewal task (which wakes every second while a renewal is
/// due), nor by a burst of Redis calls; the next renewal waits a minute by the
/// clock.
#[tokio::test]
async fn a_short_lived_redis_token_is_not_renewed_in_a_loop() {
    let entra = EntraStandIn::start().await;
    entra.add_resource("https://redis.azure.com");
    entra.set_obo_token_lifetime(Duration::from_secs(1));
    let (redis, _admin) = acl_server().await;
    let clock = ManualClock::now_system();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let (_layer, app) = replica(with_entra(&entra, &url, &clock));

    raw(&app, &user_at(&entra, &clock)).await;
    wait_for_redis_tokens(&entra, 1).await;
    for _ in 0..10 {
        raw(&app, &user_at(&entra, &clock)).await;
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        redis_tokens(&entra).len(),
        1,
        "no renewal before a minute by the clock"
    );
    clock.advance(Duration::from_secs(61));
    raw(&app, &user_at(&entra, &clock)).await;
    wait_for_redis_tokens(&entra, 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(redis_tokens(&entra).len(), 2, "one renewal a minute");
}

/// A token Redis refuses before it expires (revoked, the data access policy
/// changed: `AUTH` fails when the connection is made again) is renewed a
/// minute after it was obtained, not at its scheduled time (48 minutes later),
/// and the L2 works again with the new token.
#[tokio::test]
async fn a_token_redis_refuses_early_is_renewed_after_a_minute() {
    let (logs, _guard) = capture_logs();
    let entra = EntraStandIn::start().await;
    entra.add_resource("https://redis.azure.com");
    let (redis, mut admin) = acl_server().await;
    let clock = ManualClock::now_system();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let (layer, app) = replica(with_entra(&entra, &url, &clock));

    raw(&app, &user_at(&entra, &clock)).await;
    let first = wait_for_redis_tokens(&entra, 1).await;
    let oid = claims(&first[0])["oid"].as_str().unwrap().to_owned();
    let password = format!(">{}", first[0]);
    acl(&mut admin, &[oid.as_str(), "on", "~*", "+@all", &password]).await;
    until_l2_writes(&entra, &clock, &layer, &app).await;

    // Revoked: the token is no longer a password, and the connection is closed.
    acl(&mut admin, &[oid.as_str(), "resetpass", ">something-else"]).await;
    redis::cmd("CLIENT")
        .arg(&["KILL", "USER", oid.as_str()][..])
        .query_async::<i64>(&mut admin)
        .await
        .unwrap();
    let started = Instant::now();
    while !logs.text().contains("AuthenticationFailed") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the refusal is noticed: {:?}\n{}",
            layer.stats(),
            logs.text()
        );
        raw(&app, &user_at(&entra, &clock)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(redis_tokens(&entra).len(), 1, "not before a minute");

    // Two minutes later (not 48): a new token, which Redis takes.
    // (Calls every 300 ms: one reaches the L2 after the breaker's second.)
    clock.advance(Duration::from_secs(120));
    let started = Instant::now();
    while redis_tokens(&entra).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "renewed after a refusal, two minutes later"
        );
        raw(&app, &user_at(&entra, &clock)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let tokens = redis_tokens(&entra);
    let renewed = format!(">{}", tokens[1]);
    acl(&mut admin, &[oid.as_str(), &renewed]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    until_l2_writes(&entra, &clock, &layer, &app).await;
    assert_eq!(redis_tokens(&entra).len(), 2, "one renewal");
    assert_no_secrets_in(&logs, &[first[0].as_str(), tokens[1].as_str(), "admin-pw"]);
}

/// A Redis Cluster speaking TLS to clients and between nodes
/// (`--tls-cluster yes`), its certificates from a private CA: two replicas given
/// `rediss://` seeds and the CA file share tokens through it, the keys spread
/// over the masters; a replica trusting another CA is refused (misses, logged)
/// and still answers in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_with_a_private_ca_is_shared_and_another_ca_is_refused() {
    let (logs, _guard) = capture_logs();
    let pki = Pki::new("cluster");
    let other = Pki::new("cluster-other");
    let cluster = RedisCluster::start_tls(&ClusterTls {
        cert: pki.path("server.pem"),
        key: pki.path("server.key"),
        ca: pki.path("ca.pem"),
    })
    .await;
    let entra = EntraStandIn::start().await;
    let on_cluster = |ca: &Path| {
        with_tls(&entra, &cluster.tls_seeds(), Some(ca))
            .obo_redis_cluster(true)
            .obo_redis_timeout(Duration::from_millis(200))
    };
    let (a, app_a) = replica(on_cluster(&pki.ca()));
    let (b, app_b) = replica(on_cluster(&pki.ca()));

    // Each replica connects (its first call may outlast the timeout while the
    // TLS connections are made); then a breaker interval passes.
    let warm = entra
        .token()
        .user("00000000-0000-4000-8000-ffffffffffff")
        .sign();
    raw(&app_a, &warm).await;
    raw(&app_b, &warm).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (a0, b0, grants) = (a.stats(), b.stats(), entra.token_requests());

    const USERS: usize = 12;
    let users: Vec<String> = (0..USERS)
        .map(|i| {
            entra
                .token()
                .user(&format!("00000000-0000-4000-8000-{i:012x}"))
                .sign()
        })
        .collect();
    for user in &users {
        let from_a = raw(&app_a, user).await;
        assert_eq!(raw(&app_b, user).await, from_a, "B serves A's token");
    }
    assert_eq!(
        entra.token_requests() - grants,
        USERS,
        "one exchange per user"
    );
    let (a1, b1) = (a.stats(), b.stats());
    assert_eq!(a1.l2_errors + b1.l2_errors, a0.l2_errors + b0.l2_errors);
    assert_eq!(b1.l2_hits - b0.l2_hits, USERS as u64, "{b1:?}");
    let mut spread = Vec::new();
    for i in 0..3 {
        spread.push(cluster.keys_on(i).await.len());
    }
    assert!(spread.iter().sum::<usize>() >= USERS, "{spread:?}");
    assert!(
        spread.iter().all(|n| *n > 0),
        "keys on every master: {spread:?}"
    );

    let (wrong, app_wrong) = replica(on_cluster(&other.ca()));
    let before = entra.token_requests();
    let started = Instant::now();
    let from_wrong = raw(&app_wrong, &users[0]).await;
    assert!(started.elapsed() < Duration::from_millis(700));
    assert!(!from_wrong.is_empty());
    assert_eq!(
        entra.token_requests(),
        before + 1,
        "exchanged without the L2"
    );
    assert_eq!(wrong.stats().l2_hits, 0);
    // The refusal is logged with its cause.
    let started = Instant::now();
    let refusals = loop {
        let refusals: Vec<String> = (logs.text().lines())
            .filter(|l| l.contains("WARN") && l.contains("Redis"))
            .filter(|l| l.contains("UnknownIssuer"))
            .map(str::to_owned)
            .collect();
        if !refusals.is_empty() || started.elapsed() > Duration::from_secs(5) {
            break refusals;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        !refusals.is_empty(),
        "the certificate refusal is logged:\n{}",
        logs.text()
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The first Entra token for Redis and the command share one deadline: while
/// the token is on its way (Entra slow) and Redis then does not answer (a
/// stopped server), the L2 lookup gives up at `OBO_REDIS_TIMEOUT_MS`, not at
/// the token's wait plus a full timeout more.
#[tokio::test]
async fn waiting_for_the_first_redis_token_counts_against_the_redis_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(1000);
    const ENTRA_DELAY: Duration = Duration::from_millis(800);
    let entra = EntraStandIn::start().await;
    entra.add_resource("https://redis.azure.com");
    let redis = RedisServer::start().await;
    let clock = ManualClock::now_system();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let (layer, app) = replica(with_entra(&entra, &url, &clock).obo_redis_timeout(TIMEOUT));
    layer.warm_up().await.expect("signing keys");
    let user = user_at(&entra, &clock);

    redis.signal("STOP");
    entra.delay(Some(ENTRA_DELAY));
    let started = Instant::now();
    raw(&app, &user).await;
    let took = started.elapsed();
    redis.signal("CONT");

    // The lookup (the token's wait and the command, within TIMEOUT), then the
    // exchange (ENTRA_DELAY); the write-through is skipped by the breaker.
    // Waiting for the token and then a full timeout more would take
    // ENTRA_DELAY + TIMEOUT + ENTRA_DELAY = 2.6 s.
    let bound = TIMEOUT + ENTRA_DELAY + Duration::from_millis(500);
    assert!(
        took < bound,
        "the request took {took:?} (bound {bound:?}): {:?}",
        layer.stats()
    );
    assert_eq!(
        redis_tokens(&entra).len(),
        1,
        "the token for Redis was asked"
    );
}
