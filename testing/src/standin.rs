//! [`EntraStandIn`], the handle to a running stand-in, and its builder.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::ids::{is_guid, random_guid};
use super::keys::{self, KeyRing};
use super::record::RequestRecord;
use super::server;
use super::state::{Endpoint, Shared};
use super::token::TokenBuilder;
use super::token_endpoint;

/// Handle to a running Entra ID stand-in on `127.0.0.1`.
///
/// Cheap to clone (an `Arc` inside). The server stops (gracefully) when the last handle is
/// dropped, or when its Tokio runtime shuts down, whichever comes first. [`TokenBuilder`]s do
/// not keep it running.
///
/// The server runs as a task on the runtime that called [`start`](Self::start): query it with
/// an async client (or from another thread), never with a blocking client on the same
/// current-thread runtime.
#[derive(Clone)]
pub struct EntraStandIn {
    pub(super) shared: Arc<Shared>,
    /// Dropping the last clone of the sender stops the server.
    _shutdown: Arc<oneshot::Sender<()>>,
}

impl fmt::Debug for EntraStandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraStandIn")
            .field("addr", &self.shared.addr)
            .field("advertised_host", &self.shared.authority)
            .field("home_tenant", &self.shared.home_tenant)
            .field("api_client_id", &self.shared.api_client_id)
            .field("client_app_id", &self.shared.client_app_id)
            .finish_non_exhaustive()
    }
}

impl EntraStandIn {
    /// Starts a stand-in with random ids on an ephemeral loopback port
    /// (`EntraStandIn::builder().start().await`).
    pub async fn start() -> EntraStandIn {
        EntraStandIn::builder().start().await
    }

    /// A builder to choose the ids and the advertised host.
    pub fn builder() -> EntraStandInBuilder {
        EntraStandInBuilder::default()
    }

    /// `http://127.0.0.1:PORT`: the authority host to configure the code under test with
    /// (`AZURE_AUTHORITY_HOST`).
    pub fn authority_host(&self) -> String {
        self.shared.loopback.clone()
    }

    /// The scheme and host that metadata, issuers and `jwks_uri` advertise: the loopback URL
    /// unless [`EntraStandInBuilder::advertised_host`] chose another.
    pub fn advertised_host(&self) -> String {
        self.shared.authority.clone()
    }

    /// The socket address the stand-in listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The home tenant id (a lowercase GUID).
    pub fn home_tenant(&self) -> String {
        self.shared.home_tenant.clone()
    }

    /// The protected API's client id: `aud` of v2 access tokens.
    pub fn api_client_id(&self) -> String {
        self.shared.api_client_id.clone()
    }

    /// The default calling (front-end) app's client id: `azp` / `appid` of access tokens.
    pub fn client_app_id(&self) -> String {
        self.shared.client_app_id.clone()
    }

    /// `http://127.0.0.1:PORT/{home_tenant}/discovery/v2.0/keys`: the home tenant's v2 key
    /// set, what a resource (such as [`GraphStandIn`](crate::GraphStandIn)) trusts.
    pub fn jwks_url(&self) -> String {
        format!(
            "{}/{}/discovery/v2.0/keys",
            self.shared.loopback, self.shared.home_tenant
        )
    }

    /// The v2 issuer of tenant `tenant`: `{advertised_host}/{tenant}/v2.0`.
    pub fn issuer_v2(&self, tenant: &str) -> String {
        self.shared.issuer_v2(tenant)
    }

    /// The v1 issuer of tenant `tenant`, `https://sts.windows.net/{tenant}/` (trailing slash)
    /// like Entra's whatever the advertised host (the national clouds' v1 hosts for theirs).
    pub fn issuer_v1(&self, tenant: &str) -> String {
        self.shared.issuer_v1(tenant)
    }

    /// A builder for a token. The default is a v2.0 delegated access token for a new random
    /// user in the home tenant, `aud` = [`api_client_id`](Self::api_client_id),
    /// `scp = "access_as_user"`, valid for one hour, signed with the current key.
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(Arc::clone(&self.shared))
    }

    /// The kid new tokens are signed with by default.
    pub fn current_kid(&self) -> String {
        self.shared.keys().current_kid().to_owned()
    }

    /// Publishes a new RSA-2048 key in the key sets without making it current; returns its
    /// kid.
    pub fn add_key(&self) -> String {
        let key = self.fresh_key();
        self.shared.keys().insert(key, true)
    }

    /// Publishes a new key and makes it current (Entra's key rollover); returns its kid. The
    /// previous key stays published until [`retire_key`](Self::retire_key).
    pub fn rotate_key(&self) -> String {
        let key = self.fresh_key();
        let mut keys = self.shared.keys();
        let kid = keys.insert(key, true);
        keys.make_current(&kid);
        kid
    }

    /// Removes `kid` from the key sets. Tokens can still be minted with it
    /// ([`TokenBuilder::kid`]); if it is the current key, default tokens still use it (and
    /// fail validation) until [`rotate_key`](Self::rotate_key).
    ///
    /// # Panics
    /// If this stand-in has no key `kid`.
    pub fn retire_key(&self, kid: &str) {
        assert!(
            self.shared.keys().retire(kid),
            "the Entra stand-in has no key with kid {kid:?}"
        );
    }

    /// The kid of a key this stand-in never publishes (the same one on every call): mint with
    /// [`TokenBuilder::kid`] for unknown-key tests, and add [`TokenBuilder::header_kid`] with a
    /// published kid for wrong-signature tests.
    pub fn unpublished_key(&self) -> String {
        if let Some(kid) = self.shared.keys().unpublished_kid() {
            return kid.to_owned();
        }
        let key = self.fresh_key();
        let mut keys = self.shared.keys();
        if let Some(kid) = keys.unpublished_kid() {
            // Another thread won the race; the reserved key stays unused.
            return kid.to_owned();
        }
        let kid = keys.insert(key, false);
        keys.set_unpublished(kid.clone());
        kid
    }

    /// The public key `kid` as PEM `SubjectPublicKeyInfo` (`-----BEGIN PUBLIC KEY-----`),
    /// e.g. as the "secret" of a forged HS256 token.
    ///
    /// # Panics
    /// If this stand-in has no key `kid`.
    pub fn public_key_pem(&self, kid: &str) -> String {
        self.key(kid).public_key_pem()
    }

    /// The public key `kid` as DER `SubjectPublicKeyInfo`.
    ///
    /// # Panics
    /// If this stand-in has no key `kid`.
    pub fn public_key_der(&self, kid: &str) -> Vec<u8> {
        self.key(kid).public_key_der().to_vec()
    }

    /// Makes the key-set endpoints answer `status` with an HTML error page; `None` restores
    /// them.
    pub fn fail_jwks(&self, status: Option<u16>) {
        self.shared.faults.set_jwks_status(status);
    }

    /// Makes the metadata (and instance-discovery) endpoints answer `status` with an HTML
    /// error page; `None` restores them.
    pub fn fail_discovery(&self, status: Option<u16>) {
        self.shared.faults.set_discovery_status(status);
    }

    /// Makes the key-set endpoints answer `200 OK` with a body that is not a key set (a
    /// truncated JSON document). A [`fail_jwks`](Self::fail_jwks) status takes precedence.
    pub fn garbage_jwks(&self, on: bool) {
        self.shared.faults.set_garbage_jwks(on);
    }

    /// Delays every answer by `d` (a slow or hanging IdP); `None` answers at once. Requests
    /// are counted on arrival, before the delay.
    pub fn delay(&self, d: Option<Duration>) {
        self.shared.faults.set_delay(d);
    }

    /// Requests answered by every endpoint, failed ones included (one held open by
    /// [`TokenFault::Hang`](crate::TokenFault::Hang) once it is answered).
    pub fn requests(&self) -> usize {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every request answered so far, by every endpoint, in the order answered: the same
    /// record as [`GraphStandIn::request_log`](crate::GraphStandIn::request_log). The token
    /// endpoint's form fields are in [`token_request_log`](Self::token_request_log).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests received by the key-set endpoints (v1 and v2), failed ones included.
    pub fn jwks_requests(&self) -> usize {
        self.shared.counters.count(Endpoint::Jwks)
    }

    /// Requests received by the metadata endpoints (v1 and v2), failed ones included.
    pub fn discovery_requests(&self) -> usize {
        self.shared.counters.count(Endpoint::Discovery)
    }

    /// Requests received by the instance-discovery endpoint, failed ones included.
    pub fn instance_discovery_requests(&self) -> usize {
        self.shared.counters.count(Endpoint::InstanceDiscovery)
    }

    /// A key not yet in this stand-in's ring (generated outside the ring's lock if needed).
    fn fresh_key(&self) -> Arc<keys::SigningKey> {
        let index = self.shared.keys().reserve();
        keys::pooled(index)
    }

    fn key(&self, kid: &str) -> Arc<keys::SigningKey> {
        self.shared
            .keys()
            .get(kid)
            .unwrap_or_else(|| panic!("the Entra stand-in has no key with kid {kid:?}"))
    }
}

/// Builder for an [`EntraStandIn`]; unset ids are random GUIDs.
#[derive(Debug, Clone, Default)]
pub struct EntraStandInBuilder {
    home_tenant: Option<String>,
    api_client_id: Option<String>,
    client_app_id: Option<String>,
    advertised_host: Option<String>,
    concrete_key_issuer: bool,
    client_secret: Option<String>,
}

impl EntraStandInBuilder {
    /// The home tenant id (a GUID; stored lowercase).
    #[must_use]
    pub fn home_tenant(mut self, tid: impl Into<String>) -> Self {
        self.home_tenant = Some(tid.into());
        self
    }

    /// The protected API's client id.
    #[must_use]
    pub fn api_client_id(mut self, id: impl Into<String>) -> Self {
        self.api_client_id = Some(id.into());
        self
    }

    /// The default calling (front-end) app's client id.
    #[must_use]
    pub fn client_app_id(mut self, id: impl Into<String>) -> Self {
        self.client_app_id = Some(id.into());
        self
    }

    /// What metadata, issuers and `jwks_uri` advertise instead of the loopback URL, e.g.
    /// `https://login.microsoftonline.com` (to check the stand-in against MSAL through an
    /// HTTP client that rewrites URLs to the loopback address). A national-cloud host also
    /// switches `cloud_instance_name`, `msgraph_host` and the v1 issuer host to that cloud's.
    #[must_use]
    pub fn advertised_host(mut self, url: impl Into<String>) -> Self {
        self.advertised_host = Some(url.into());
        self
    }

    /// Makes a tenant's own v2 key set (`/{tid}/discovery/v2.0/keys`) name that tenant's
    /// issuer in each key's `issuer` instead of the `{tenantid}` template (both occur at
    /// Entra). Default: the template everywhere.
    #[must_use]
    pub fn concrete_key_issuer(mut self, on: bool) -> Self {
        self.concrete_key_issuer = on;
        self
    }

    /// The API's client secret, accepted by the token endpoint (default: a random secret
    /// shaped like Entra's; read it with [`EntraStandIn::client_secret`]).
    #[must_use]
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }

    /// Binds `127.0.0.1:0` and starts serving on the current Tokio runtime.
    ///
    /// The first stand-in of a process generates an RSA key (~100 ms); later ones reuse the
    /// process-wide key pool and start in about a millisecond.
    ///
    /// # Panics
    /// If the home tenant is not a GUID, or the loopback socket cannot be bound.
    pub async fn start(self) -> EntraStandIn {
        let home_tenant = self
            .home_tenant
            .map_or_else(random_guid, |tid| tid.to_ascii_lowercase());
        assert!(
            is_guid(&home_tenant),
            "the stand-in's home tenant must be a GUID, got {home_tenant:?}"
        );
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("binding 127.0.0.1:0 for the Entra stand-in");
        let addr = listener
            .local_addr()
            .expect("a bound listener has a local address");
        let authority = self.advertised_host.map_or_else(
            || format!("http://{addr}"),
            |url| url.trim_end_matches('/').to_owned(),
        );
        let shared = Arc::new(Shared::new(
            addr,
            authority,
            home_tenant,
            self.api_client_id.unwrap_or_else(random_guid),
            self.client_app_id.unwrap_or_else(random_guid),
            self.concrete_key_issuer,
            KeyRing::new(keys::pooled(0)),
            self.client_secret
                .unwrap_or_else(token_endpoint::random_secret),
        ));
        let (shutdown, stopped) = oneshot::channel();
        tokio::spawn(server::serve(listener, Arc::clone(&shared), stopped));
        tracing::debug!(%addr, "Entra stand-in started");
        EntraStandIn {
            shared,
            _shutdown: Arc::new(shutdown),
        }
    }
}
