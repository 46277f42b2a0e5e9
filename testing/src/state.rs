//! The state one stand-in shares between its HTTP handlers, its handle and its token builders.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::cloud::Cloud;
use super::keys::KeyRing;
use super::record::RequestRecord;
use super::token_endpoint::TokenEndpoint;

/// Everything one stand-in knows. Handlers, the public handle and token builders hold it
/// behind an `Arc`; only the handle keeps the server running.
#[derive(Debug)]
pub(super) struct Shared {
    /// The loopback address the server listens on.
    pub(super) addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub(super) loopback: String,
    /// Scheme and host advertised in metadata and issuers (no trailing slash).
    pub(super) authority: String,
    /// The national cloud the advertised host belongs to.
    pub(super) cloud: Cloud,
    /// The home tenant id (lowercase GUID).
    pub(super) home_tenant: String,
    /// The protected API's client id.
    pub(super) api_client_id: String,
    /// The default calling (front-end) app's client id.
    pub(super) client_app_id: String,
    /// Whether a tenant's own v2 key set names that tenant's issuer instead of the template.
    pub(super) concrete_key_issuer: bool,
    /// Signing keys.
    keys: Mutex<KeyRing>,
    /// Injected faults.
    pub(super) faults: Faults,
    /// Requests received per endpoint.
    pub(super) counters: Counters,
    /// The token endpoint's credentials, policies, faults, counters and log.
    pub(super) token_endpoint: TokenEndpoint,
    /// Every answered request, in order.
    pub(super) log: Mutex<Vec<RequestRecord>>,
}

impl Shared {
    /// Assembles the state of a stand-in.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        addr: SocketAddr,
        authority: String,
        home_tenant: String,
        api_client_id: String,
        client_app_id: String,
        concrete_key_issuer: bool,
        keys: KeyRing,
        client_secret: String,
    ) -> Self {
        Shared {
            token_endpoint: TokenEndpoint::new(&authority, client_secret),
            addr,
            loopback: format!("http://{addr}"),
            cloud: Cloud::for_authority(&authority),
            authority,
            home_tenant,
            api_client_id,
            client_app_id,
            concrete_key_issuer,
            keys: Mutex::new(keys),
            faults: Faults::default(),
            counters: Counters::default(),
            log: Mutex::new(Vec::new()),
        }
    }

    /// The key ring (never held across an `.await`).
    pub(super) fn keys(&self) -> MutexGuard<'_, KeyRing> {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `{authority}/{tid}/v2.0`.
    pub(super) fn issuer_v2(&self, tid: &str) -> String {
        format!("{}/{tid}/v2.0", self.authority)
    }

    /// `https://sts.windows.net/{tid}/` (or the national cloud's equivalent).
    pub(super) fn issuer_v1(&self, tid: &str) -> String {
        format!("{}/{tid}/", self.cloud.v1_issuer_host)
    }
}

/// Injected faults; zero / false / `None` mean normal behaviour.
#[derive(Debug, Default)]
pub(super) struct Faults {
    jwks_status: AtomicU16,
    discovery_status: AtomicU16,
    garbage_jwks: AtomicBool,
    delay: Mutex<Option<Duration>>,
}

impl Faults {
    pub(super) fn set_jwks_status(&self, status: Option<u16>) {
        self.jwks_status
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }

    pub(super) fn jwks_status(&self) -> Option<u16> {
        Some(self.jwks_status.load(Ordering::SeqCst)).filter(|s| *s != 0)
    }

    pub(super) fn set_discovery_status(&self, status: Option<u16>) {
        self.discovery_status
            .store(status.unwrap_or(0), Ordering::SeqCst);
    }

    pub(super) fn discovery_status(&self) -> Option<u16> {
        Some(self.discovery_status.load(Ordering::SeqCst)).filter(|s| *s != 0)
    }

    pub(super) fn set_garbage_jwks(&self, on: bool) {
        self.garbage_jwks.store(on, Ordering::SeqCst);
    }

    pub(super) fn garbage_jwks(&self) -> bool {
        self.garbage_jwks.load(Ordering::SeqCst)
    }

    pub(super) fn set_delay(&self, delay: Option<Duration>) {
        *self.delay.lock().unwrap_or_else(PoisonError::into_inner) = delay;
    }

    pub(super) fn delay(&self) -> Option<Duration> {
        *self.delay.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The endpoints whose requests are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `/.well-known/openid-configuration`, v1 and v2.
    Discovery,
    /// `/discovery/keys` and `/discovery/v2.0/keys`.
    Jwks,
    /// `/discovery/instance`.
    InstanceDiscovery,
}

/// Requests received per endpoint, counted on arrival (before delays and faults).
#[derive(Debug, Default)]
pub(super) struct Counters {
    jwks: AtomicUsize,
    discovery: AtomicUsize,
    instance_discovery: AtomicUsize,
}

impl Counters {
    fn counter(&self, endpoint: Endpoint) -> &AtomicUsize {
        match endpoint {
            Endpoint::Discovery => &self.discovery,
            Endpoint::Jwks => &self.jwks,
            Endpoint::InstanceDiscovery => &self.instance_discovery,
        }
    }

    /// Counts one request to `endpoint`.
    pub(super) fn hit(&self, endpoint: Endpoint) {
        self.counter(endpoint).fetch_add(1, Ordering::SeqCst);
    }

    /// Requests received so far by `endpoint`.
    pub(super) fn count(&self, endpoint: Endpoint) -> usize {
        self.counter(endpoint).load(Ordering::SeqCst)
    }
}
