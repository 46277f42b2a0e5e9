//! What the token endpoint remembers: the API's credentials, policies, scripted faults,
//! counters, the request log, used assertion ids and issued refresh tokens.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::super::keys::SigningKey;
use super::faults::TokenFault;
use super::refresh::{RefreshGrant, RefreshTokenExpiry};
use super::x509::ClientCertificate;
use crate::fault_queue::FaultQueue;

/// Default lifetime of issued access tokens (`expires_in`), in seconds.
const DEFAULT_LIFETIME_SECS: u64 = 3599;
/// The audience Entra requires of federated (workload identity) assertions.
pub(super) const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The Kubernetes service account of the default federated credential.
pub(super) const WORKLOAD_SUBJECT: &str = "system:serviceaccount:default:workload";

/// One request to the token endpoint, as received (test-only: it may hold secrets).
#[derive(Debug, Clone)]
pub struct TokenRequestRecord {
    /// The tenant path segment, as sent.
    pub tenant: String,
    /// Every form field as received (the last value of a repeated field).
    pub form: BTreeMap<String, String>,
    /// Every request header, lowercase names (repeated headers joined with `", "`), e.g.
    /// `client-request-id`, `x-ms-lib-capability`, `authorization`.
    pub headers: BTreeMap<String, String>,
    /// The status answered; `0` for a request held open by [`TokenFault::Hang`].
    pub status: u16,
}

/// A federated identity credential of the API's app registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FederatedCredential {
    pub(super) issuer: String,
    pub(super) subject: String,
    pub(super) audience: String,
}

/// Scripted faults: a queue of global ones, then per-user ones.
#[derive(Debug, Default)]
struct Faults {
    global: FaultQueue<TokenFault>,
    /// By lowercase `oid`.
    per_user: HashMap<String, TokenFault>,
    /// By lowercase scope (one item of the request's `scope`).
    per_scope: HashMap<String, TokenFault>,
}

/// How many issued access tokens [`TokenEndpoint::issued_tokens`] keeps.
const KEPT_TOKENS: usize = 64;

/// The token endpoint's state inside one stand-in.
#[derive(Debug)]
pub(crate) struct TokenEndpoint {
    client_secret: String,
    certificates: Mutex<Vec<ClientCertificate>>,
    federation_issuer: String,
    federation_key: OnceLock<Arc<SigningKey>>,
    federated_credentials: Mutex<Vec<FederatedCredential>>,
    lifetime_secs: AtomicU64,
    refuse_replay: AtomicBool,
    used_jtis: Mutex<HashSet<String>>,
    mfa_users: Mutex<HashSet<String>>,
    revoked_scopes: Mutex<HashSet<String>>,
    default_scopes: Mutex<HashMap<String, Vec<String>>>,
    extra_resources: Mutex<HashSet<String>>,
    faults: Mutex<Faults>,
    requests: AtomicUsize,
    issued: AtomicUsize,
    /// The latest issued access tokens, oldest first.
    issued_tokens: Mutex<std::collections::VecDeque<String>>,
    log: Mutex<Vec<TokenRequestRecord>>,
    refresh_tokens: Mutex<HashMap<String, RefreshGrant>>,
    refuse_refresh_reuse: AtomicBool,
    /// Orders refresh tokens and revocations without relying on the clock's resolution.
    refresh_serial: AtomicU64,
    /// By lowercase `oid`: `(Unix time, serial)` of the revocation; refresh tokens with a
    /// lower serial are revoked.
    tokens_valid_from: Mutex<HashMap<String, (i64, u64)>>,
    /// By lowercase `oid`: how the user's refresh tokens expired.
    expired_refresh: Mutex<HashMap<String, RefreshTokenExpiry>>,
    /// By lowercase `oid`: when the user's session was revoked for good (CAE).
    revoked_sessions: Mutex<HashMap<String, i64>>,
    closing: watch::Sender<bool>,
    /// Agent identities (Entra Agent ID) and the T1/T2 tokens issued to them.
    pub(super) agents: super::agents::AgentDirectory,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenEndpoint {
    /// The state of a fresh stand-in advertising `authority`, whose API has `client_secret`.
    pub(crate) fn new(authority: &str, client_secret: String) -> Self {
        let federation_issuer = format!("{authority}/federation");
        TokenEndpoint {
            client_secret,
            certificates: Mutex::new(Vec::new()),
            federated_credentials: Mutex::new(vec![FederatedCredential {
                issuer: federation_issuer.clone(),
                subject: WORKLOAD_SUBJECT.to_owned(),
                audience: EXCHANGE_AUDIENCE.to_owned(),
            }]),
            federation_issuer,
            federation_key: OnceLock::new(),
            lifetime_secs: AtomicU64::new(DEFAULT_LIFETIME_SECS),
            refuse_replay: AtomicBool::new(false),
            used_jtis: Mutex::new(HashSet::new()),
            mfa_users: Mutex::new(HashSet::new()),
            revoked_scopes: Mutex::new(HashSet::new()),
            default_scopes: Mutex::new(HashMap::new()),
            extra_resources: Mutex::new(HashSet::new()),
            faults: Mutex::new(Faults::default()),
            requests: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            issued_tokens: Mutex::new(std::collections::VecDeque::new()),
            log: Mutex::new(Vec::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            refuse_refresh_reuse: AtomicBool::new(false),
            refresh_serial: AtomicU64::new(0),
            tokens_valid_from: Mutex::new(HashMap::new()),
            expired_refresh: Mutex::new(HashMap::new()),
            revoked_sessions: Mutex::new(HashMap::new()),
            closing: watch::Sender::new(false),
            agents: Default::default(),
        }
    }

    /// The API's client secret.
    pub(super) fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// Trusts `certificates` for client assertions.
    pub(super) fn register_certificates(&self, certificates: Vec<ClientCertificate>) {
        lock(&self.certificates).extend(certificates);
    }

    /// The registered certificates.
    pub(super) fn certificates(&self) -> Vec<ClientCertificate> {
        lock(&self.certificates).clone()
    }

    /// The issuer of federated assertions minted by the stand-in.
    pub(super) fn federation_issuer(&self) -> &str {
        &self.federation_issuer
    }

    /// The federation issuer's signing key, created by `make` on first use.
    pub(super) fn federation_key(&self, make: impl FnOnce() -> Arc<SigningKey>) -> Arc<SigningKey> {
        Arc::clone(self.federation_key.get_or_init(make))
    }

    /// The federation issuer's key if one was ever created.
    pub(super) fn existing_federation_key(&self) -> Option<Arc<SigningKey>> {
        self.federation_key.get().cloned()
    }

    /// Adds a federated identity credential.
    pub(super) fn add_federated_credential(&self, credential: FederatedCredential) {
        let mut credentials = lock(&self.federated_credentials);
        if !credentials.contains(&credential) {
            credentials.push(credential);
        }
    }

    /// The federated identity credentials.
    pub(super) fn federated_credentials(&self) -> Vec<FederatedCredential> {
        lock(&self.federated_credentials).clone()
    }

    /// Sets the lifetime of issued access tokens (whole seconds).
    pub(super) fn set_lifetime(&self, lifetime: Duration) {
        self.lifetime_secs
            .store(lifetime.as_secs(), Ordering::SeqCst);
    }

    /// The lifetime of issued access tokens, seconds.
    pub(super) fn lifetime_secs(&self) -> i64 {
        i64::try_from(self.lifetime_secs.load(Ordering::SeqCst)).unwrap_or(i64::MAX / 4)
    }

    /// Whether a certificate assertion's `jti` may be presented only once.
    pub(super) fn set_refuse_replay(&self, on: bool) {
        self.refuse_replay.store(on, Ordering::SeqCst);
    }

    /// Records a certificate assertion's `jti`; false if replay is refused and it was seen.
    pub(super) fn use_jti(&self, jti: &str) -> bool {
        let fresh = lock(&self.used_jtis).insert(jti.to_owned());
        fresh || !self.refuse_replay.load(Ordering::SeqCst)
    }

    /// Requires MFA (`amr` containing `mfa`) of user `oid`.
    pub(super) fn require_mfa(&self, oid: &str) {
        lock(&self.mfa_users).insert(oid.to_ascii_lowercase());
    }

    /// Whether user `oid` must have done MFA.
    pub(super) fn mfa_required(&self, oid: &str) -> bool {
        lock(&self.mfa_users).contains(&oid.to_ascii_lowercase())
    }

    /// Revokes consent to the full scope URI `scope`.
    pub(super) fn revoke_consent(&self, scope: &str) {
        lock(&self.revoked_scopes).insert(scope.to_ascii_lowercase());
    }

    /// Whether consent to the full scope URI `scope` (or its resource's `.default`) was
    /// revoked.
    pub(super) fn consent_revoked(&self, resource: &str, name: &str) -> bool {
        let revoked = lock(&self.revoked_scopes);
        let resource = resource.to_ascii_lowercase();
        revoked.contains(&format!("{resource}/{}", name.to_ascii_lowercase()))
            || revoked.contains(&format!("{resource}/.default"))
    }

    /// Sets the scopes a `.default` request of `resource` is granted.
    pub(super) fn set_default_scopes(&self, resource: &str, scopes: Vec<String>) {
        lock(&self.default_scopes).insert(resource.to_ascii_lowercase(), scopes);
    }

    /// The scopes a `.default` request of `resource` is granted, if configured.
    pub(super) fn default_scopes(&self, resource: &str) -> Option<Vec<String>> {
        lock(&self.default_scopes)
            .get(&resource.to_ascii_lowercase())
            .cloned()
    }

    /// Makes `resource` (an `https://…` App ID URI) known.
    pub(super) fn add_resource(&self, resource: &str) {
        lock(&self.extra_resources).insert(resource.trim_end_matches('/').to_ascii_lowercase());
    }

    /// Whether `resource` was made known with [`add_resource`](Self::add_resource).
    pub(super) fn is_extra_resource(&self, resource: &str) -> bool {
        lock(&self.extra_resources).contains(&resource.to_ascii_lowercase())
    }

    /// Queues `fault` for the next `times` requests (`None`: until cleared).
    pub(super) fn inject(&self, fault: TokenFault, times: Option<usize>) {
        lock(&self.faults).global.push(fault, times);
    }

    /// Injects `fault` for every request whose assertion names user `oid`.
    pub(super) fn inject_for_user(&self, oid: &str, fault: TokenFault) {
        lock(&self.faults)
            .per_user
            .insert(oid.to_ascii_lowercase(), fault);
    }

    /// Answers every request with `scope` among its scopes with `fault` until cleared.
    pub(super) fn inject_for_scope(&self, scope: &str, fault: TokenFault) {
        lock(&self.faults)
            .per_scope
            .insert(scope.to_ascii_lowercase(), fault);
    }

    /// Removes every scripted fault.
    pub(super) fn clear_faults(&self) {
        *lock(&self.faults) = Faults::default();
    }

    /// The fault for a request whose assertion names `oid` (consuming one use of a global
    /// one).
    pub(super) fn take_fault(&self, oid: Option<&str>, scope: Option<&str>) -> Option<TokenFault> {
        let mut faults = lock(&self.faults);
        if let Some(fault) = faults.global.take() {
            return Some(fault);
        }
        let by_scope = || {
            scope?
                .split_whitespace()
                .find_map(|s| faults.per_scope.get(&s.to_ascii_lowercase()).cloned())
        };
        oid.and_then(|oid| faults.per_user.get(&oid.to_ascii_lowercase()).cloned())
            .or_else(by_scope)
    }

    /// Keeps an issued access token (the latest [`KEPT_TOKENS`]).
    pub(super) fn keep_issued_token(&self, token: &str) {
        let mut kept = lock(&self.issued_tokens);
        if kept.len() == KEPT_TOKENS {
            kept.pop_front();
        }
        kept.push_back(token.to_owned());
    }

    /// The latest issued access tokens, oldest first.
    pub(super) fn issued_tokens(&self) -> Vec<String> {
        lock(&self.issued_tokens).iter().cloned().collect()
    }

    /// Counts a request on arrival.
    pub(super) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }

    /// Requests received.
    pub(super) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Counts a token issued.
    pub(super) fn count_issued(&self) {
        self.issued.fetch_add(1, Ordering::SeqCst);
    }

    /// Tokens issued.
    pub(super) fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// Appends to the request log.
    pub(super) fn record(&self, record: TokenRequestRecord) {
        lock(&self.log).push(record);
    }

    /// The request log.
    pub(super) fn log(&self) -> Vec<TokenRequestRecord> {
        lock(&self.log).clone()
    }

    /// Remembers a refresh token and what it grants.
    pub(super) fn store_refresh_token(&self, token: String, grant: RefreshGrant) {
        lock(&self.refresh_tokens).insert(token, grant);
    }

    /// What a refresh token grants, if it was issued (and not dropped on redemption). With
    /// reuse refused, redeeming removes it: a second redemption finds nothing.
    pub(super) fn redeem_refresh_token(&self, token: &str) -> Option<RefreshGrant> {
        let mut tokens = lock(&self.refresh_tokens);
        if self.refuse_refresh_reuse.load(Ordering::SeqCst) {
            tokens.remove(token)
        } else {
            tokens.get(token).cloned()
        }
    }

    /// The `oid` of the user a refresh token was issued to, without redeeming it.
    pub(super) fn refresh_token_oid(&self, token: &str) -> Option<String> {
        lock(&self.refresh_tokens)
            .get(token)
            .map(|grant| grant.subject.oid.clone())
    }

    /// Whether a redeemed refresh token stops working (Entra: it does not).
    pub(super) fn set_refuse_refresh_reuse(&self, on: bool) {
        self.refuse_refresh_reuse.store(on, Ordering::SeqCst);
    }

    /// The next serial number of a refresh token or revocation.
    pub(super) fn next_refresh_serial(&self) -> u64 {
        self.refresh_serial.fetch_add(1, Ordering::SeqCst)
    }

    /// Revokes user `oid`'s refresh tokens issued so far (`now` for the messages).
    pub(super) fn revoke_refresh_tokens(&self, oid: &str, now: i64) {
        let serial = self.next_refresh_serial();
        lock(&self.tokens_valid_from).insert(oid.to_ascii_lowercase(), (now, serial));
    }

    /// `(Unix time, serial)` of the last revocation of user `oid`'s refresh tokens.
    pub(super) fn tokens_valid_from(&self, oid: &str) -> Option<(i64, u64)> {
        lock(&self.tokens_valid_from)
            .get(&oid.to_ascii_lowercase())
            .copied()
    }

    /// Expires every refresh token of user `oid` (issued so far or later).
    pub(super) fn expire_refresh_tokens(&self, oid: &str, how: RefreshTokenExpiry) {
        lock(&self.expired_refresh).insert(oid.to_ascii_lowercase(), how);
    }

    /// How user `oid`'s refresh tokens expired, if they did.
    pub(super) fn refresh_expiry(&self, oid: &str) -> Option<RefreshTokenExpiry> {
        lock(&self.expired_refresh)
            .get(&oid.to_ascii_lowercase())
            .copied()
    }

    /// Revokes user `oid`'s session for good at `now`: grants older than that need the user.
    pub(super) fn revoke_session(&self, oid: &str, now: i64) {
        lock(&self.revoked_sessions).insert(oid.to_ascii_lowercase(), now);
    }

    /// When user `oid`'s session was revoked for good, if it was.
    pub(super) fn session_revoked_at(&self, oid: &str) -> Option<i64> {
        lock(&self.revoked_sessions)
            .get(&oid.to_ascii_lowercase())
            .copied()
    }

    /// Releases requests held by [`TokenFault::Hang`]: the server is stopping.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Waits until [`close`](Self::close).
    pub(super) async fn closed(&self) {
        let mut closing = self.closing.subscribe();
        // An error means the sender is gone: closed too.
        let _ = closing.wait_for(|closed| *closed).await;
    }
}
