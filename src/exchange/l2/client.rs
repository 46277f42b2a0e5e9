//! [`RedisOptions`] and [`build_client`]: the one place a Redis client is built,
//! standalone or cluster, for the L2 and the session store alike (and for the
//! configuration's check that the URLs are usable).
//!
//! Standalone: one URL, a [`redis::Client`] (a connection manager on top, see
//! [`store`](super::store)). Cluster (OSS cluster policy): one or more seed URLs,
//! a [`ClusterClient`] that learns the slot map from them and follows `MOVED`/`ASK`.
//!
//! Timeouts: every call is bounded by the L2 timeout in the store (the hard
//! bound). The cluster client gets the same bound as its overall response
//! timeout (retries and redirections included), few retries with short waits,
//! and a connection timeout close to it: its slot refresh reconnects to every
//! node and holds every request meanwhile, so a node that does not answer a
//! connection must not hold them long.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::io::tcp::TcpSettings;
use redis::{ConnectionInfo, IntoConnectionInfo as _, RedisResult};

use super::entra_auth::EntraAuth;
use super::tls::{self, RedisCa};
use crate::secret::SecretString;

/// How to reach Redis: everything [`build_client`] needs.
#[derive(Clone, Debug)]
pub(crate) struct RedisOptions {
    /// One `redis://` or `rediss://` URL, or (cluster) one or more seed nodes.
    /// May hold a password, so kept as secrets.
    pub(crate) urls: Vec<SecretString>,
    /// Speak the cluster protocol (slot map, `MOVED`/`ASK`).
    pub(crate) cluster: bool,
    /// Bound of every call.
    pub(crate) timeout: Duration,
    /// The private CA trusted for `rediss://` instead of the system roots.
    pub(crate) ca: Option<RedisCa>,
    /// Entra authentication: every connection's credentials (standalone: set on
    /// the store's connection manager; cluster: on the client, for every node).
    pub(crate) auth: Option<EntraAuth>,
}

/// A Redis client of either mode; connects to nothing until used.
#[derive(Clone, Debug)]
pub(crate) enum RedisClient {
    /// One server (or a proxy in front of several: Azure's Enterprise policy).
    Standalone(Box<redis::Client>),
    /// A Redis Cluster, reached through its seed nodes.
    Cluster(Box<ClusterClient>),
}

/// Fewest retries of one cluster call (a redirection, a reconnection): the
/// overall timeout ends them anyway.
const CLUSTER_RETRIES: u32 = 3;

/// The client for `options`. Fails on an unusable URL (no host, an unknown
/// scheme), on several URLs without cluster mode, and on seeds that disagree
/// (passwords, TLS); connects to nothing.
pub(crate) fn build_client(options: &RedisOptions) -> RedisResult<RedisClient> {
    let infos = options
        .urls
        .iter()
        .map(|url| {
            // Small request/response exchanges: no Nagle delay.
            Ok(url
                .expose()
                .trim()
                .into_connection_info()?
                .set_tcp_settings(TcpSettings::default().set_nodelay(true)))
        })
        .collect::<RedisResult<Vec<ConnectionInfo>>>()?;
    if !options.cluster {
        let [info] = <[ConnectionInfo; 1]>::try_from(infos).map_err(|_| {
            redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "one URL expected without cluster mode",
            ))
        })?;
        return Ok(RedisClient::Standalone(Box::new(tls::client(
            info,
            options.ca.as_ref(),
        )?)));
    }
    if infos.is_empty() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "no seed node",
        )));
    }
    let timeout = options.timeout;
    let mut builder = ClusterClientBuilder::new(infos);
    if let Some(ca) = &options.ca {
        builder = builder.certs(ca.certificates());
    }
    if let Some(auth) = &options.auth {
        builder = builder.set_credentials_provider(auth.clone());
    }
    let client = builder
        .tcp_settings(TcpSettings::default().set_nodelay(true))
        .connection_timeout(cluster_connection_timeout(timeout))
        .response_timeout(timeout)
        .overall_response_timeout(Some(timeout))
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(1)
        .max_retry_wait(
            u64::try_from((timeout / 4).as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        )
        .build()?;
    Ok(RedisClient::Cluster(Box::new(client)))
}

/// How long the cluster client waits for a node's connection: the L2 timeout,
/// but at least 250 ms so that a TLS handshake to a distant cache can finish
/// (the store's own timeout still bounds every call).
fn cluster_connection_timeout(timeout: Duration) -> Duration {
    timeout.max(Duration::from_millis(250))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(urls: &[&str], cluster: bool) -> RedisOptions {
        RedisOptions {
            urls: urls.iter().map(|u| SecretString::new(*u)).collect(),
            cluster,
            timeout: Duration::from_millis(100),
            ca: None,
            auth: None,
        }
    }

    #[test]
    fn standalone_takes_one_url_and_cluster_takes_seeds() {
        assert!(matches!(
            build_client(&options(&["redis://127.0.0.1:6379"], false)),
            Ok(RedisClient::Standalone(_))
        ));
        assert!(build_client(&options(&["redis://a:1", "redis://b:2"], false)).is_err());
        assert!(matches!(
            build_client(&options(&["redis://a:7000", "redis://b:7001"], true)),
            Ok(RedisClient::Cluster(_))
        ));
        assert!(matches!(
            build_client(&options(&["redis://a:7000"], true)),
            Ok(RedisClient::Cluster(_))
        ));
        assert!(build_client(&options(&[], true)).is_err());
        assert!(build_client(&options(&["http://a:7000"], true)).is_err());
    }
}
