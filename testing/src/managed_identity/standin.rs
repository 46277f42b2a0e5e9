//! [`ManagedIdentityStandIn`], the handle to a running managed identity endpoint, and the
//! identities it serves.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;

use super::super::ids::{b64, derived_guid, random_bytes, random_guid};
use super::faults::{Faults, ManagedIdentityFault};
use super::server::{handle, lock, Shared, TOKEN_PATH};
use crate::record::RequestRecord;
use crate::EntraStandIn;

/// Lifetime of issued tokens unless set otherwise: 24 hours, as managed identities get.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(86_400);

/// A managed identity of the app: what Azure shows for it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedIdentity {
    /// The client (application) id: `azp` of its tokens, `client_id` of the answer.
    pub client_id: String,
    /// The principal (object) id of its service principal: `oid` and `sub` of its tokens,
    /// the subject of a federated identity credential trusting it.
    pub principal_id: String,
    /// Its Azure resource id (`mi_res_id`, `xms_mirid`).
    pub resource_id: String,
}

impl ManagedIdentity {
    fn new(resource_id: String) -> Self {
        ManagedIdentity {
            client_id: random_guid(),
            principal_id: random_guid(),
            resource_id,
        }
    }
}

/// Handle to a running App Service / Container Apps managed identity endpoint on
/// `127.0.0.1`, issuing tokens signed by an [`EntraStandIn`]'s keys.
///
/// ```
/// use axum_obo_testing::{EntraStandIn, ManagedIdentityStandIn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let entra = EntraStandIn::start().await;
/// let identity = ManagedIdentityStandIn::start(&entra).await;
/// // The code under test reads these, as on App Service.
/// let env = identity.environment();
/// assert_eq!(env[0], ("IDENTITY_ENDPOINT", identity.endpoint()));
/// // Trust the system-assigned identity as a federated credential of the API.
/// entra.add_managed_identity_credential(&identity.system_assigned());
/// # }
/// ```
///
/// Cheap to clone; the server stops when the last handle is dropped or its Tokio runtime
/// shuts down.
///
#[doc = include_str!("protocol.md")]
#[derive(Clone)]
pub struct ManagedIdentityStandIn {
    shared: Arc<Shared>,
    /// Dropping the last clone of the sender stops the server.
    _shutdown: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl fmt::Debug for ManagedIdentityStandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityStandIn")
            .field("endpoint", &self.endpoint())
            .field("tenant", &self.shared.tenant)
            .finish_non_exhaustive()
    }
}

impl ManagedIdentityStandIn {
    /// Binds `127.0.0.1:0` and serves, on the current Tokio runtime, the managed identities
    /// of an app in `entra`'s home tenant: a system-assigned one to begin with. Tokens are
    /// signed with `entra`'s current key (the server keeps its keys, not its HTTP side).
    ///
    /// # Panics
    /// If the loopback socket cannot be bound.
    pub async fn start(entra: &EntraStandIn) -> ManagedIdentityStandIn {
        let (listener, addr) = crate::serve::bind_loopback("managed identity stand-in").await;
        let tenant = entra.home_tenant();
        let subscription = derived_guid(&["subscription", &tenant]);
        let group = format!("/subscriptions/{subscription}/resourcegroups/standin-rg");
        let app = format!("{group}/providers/Microsoft.Web/sites/standin-app");
        let shared = Arc::new(Shared {
            entra: Arc::clone(&entra.shared),
            addr,
            tenant,
            resource_group: group,
            secret: b64(&random_bytes::<24>()),
            identities: Mutex::new(vec![ManagedIdentity::new(app)]),
            system_assigned: AtomicBool::new(true),
            lifetime_secs: AtomicU64::new(DEFAULT_LIFETIME.as_secs()),
            faults: Mutex::new(Faults::default()),
            requests: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let shutdown = crate::serve::spawn(listener, addr, app, "managed identity stand-in");
        ManagedIdentityStandIn {
            shared,
            _shutdown: shutdown,
        }
    }

    /// `http://127.0.0.1:PORT/msi/token`: the value of `IDENTITY_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}{TOKEN_PATH}", self.shared.addr)
    }

    /// The secret the endpoint demands in `X-IDENTITY-HEADER`: the value of
    /// `IDENTITY_HEADER`.
    pub fn identity_header(&self) -> String {
        self.shared.secret.clone()
    }

    /// The environment App Service and Container Apps give the app: `IDENTITY_ENDPOINT`,
    /// `IDENTITY_HEADER`, and their older aliases `MSI_ENDPOINT`, `MSI_SECRET`.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("IDENTITY_ENDPOINT", self.endpoint()),
            ("IDENTITY_HEADER", self.identity_header()),
            ("MSI_ENDPOINT", self.endpoint()),
            ("MSI_SECRET", self.identity_header()),
        ]
    }

    /// The socket address the stand-in listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The app's system-assigned identity (used when a request names none), whether
    /// enabled or not.
    pub fn system_assigned(&self) -> ManagedIdentity {
        lock(&self.shared.identities)[0].clone()
    }

    /// Enables or disables the system-assigned identity (enabled at start). While it is
    /// disabled, a request naming no identity answers `400` "Unable to load the proper
    /// Managed Identity.", as on an app with only user-assigned identities, and so does one
    /// naming the system-assigned identity.
    pub fn set_system_assigned(&self, enabled: bool) {
        self.shared.system_assigned.store(enabled, Ordering::SeqCst);
    }

    /// Assigns a new user-assigned identity named `name` (random client and principal ids)
    /// to the app and returns it.
    pub fn add_user_assigned(&self, name: &str) -> ManagedIdentity {
        let resource_id = format!(
            "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
            self.shared.resource_group
        );
        let identity = ManagedIdentity::new(resource_id);
        lock(&self.shared.identities).push(identity.clone());
        identity
    }

    /// The user-assigned identities, in the order assigned.
    pub fn user_assigned(&self) -> Vec<ManagedIdentity> {
        lock(&self.shared.identities)[1..].to_vec()
    }

    /// The lifetime of issued tokens (whole seconds; default 24 hours).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared
            .lifetime_secs
            .store(lifetime.as_secs(), Ordering::SeqCst);
    }

    /// Answers the next `times` requests (`None`: every one until
    /// [`clear_faults`](Self::clear_faults)) with `fault`, before the secret header is
    /// looked at. Faults injected while others are pending queue up behind them.
    pub fn inject_fault(&self, fault: ManagedIdentityFault, times: Option<usize>) {
        lock(&self.shared.faults).inject(fault, times);
    }

    /// Removes every pending injected fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Requests received, failed ones included.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Every request so far, in the order answered (test-only: the headers hold the secret).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }
}

impl EntraStandIn {
    /// The audience Entra requires of tokens exchanged as federated credentials in the
    /// advertised host's cloud: `api://AzureADTokenExchange`, or
    /// `api://AzureADTokenExchangeUSGov` / `api://AzureADTokenExchangeChina`.
    pub fn token_exchange_audience(&self) -> String {
        self.shared.cloud.token_exchange_audience.to_owned()
    }

    /// Adds the federated identity credential that trusts `identity`'s tokens as client
    /// assertions of the API: issuer `{advertised_host}/{home_tenant}/v2.0`, subject its
    /// principal id, audience [`token_exchange_audience`](Self::token_exchange_audience)
    /// (the same as [`add_federated_credential`](Self::add_federated_credential) with
    /// those values).
    pub fn add_managed_identity_credential(&self, identity: &ManagedIdentity) {
        self.add_federated_credential(
            &self.issuer_v2(&self.home_tenant()),
            &identity.principal_id,
            &self.token_exchange_audience(),
        );
    }
}
