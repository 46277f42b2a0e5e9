//! The token endpoint's part of [`EntraStandIn`]'s public API: credentials, policies, faults
//! and observation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::super::ids::{b64url, random_bytes, random_guid, unix_seconds};
use super::super::keys::{self, SigningKey};
use super::super::EntraStandIn;
use super::faults::TokenFault;
use super::jws::b64url_json;
use super::state::{FederatedCredential, TokenRequestRecord, EXCHANGE_AUDIENCE, WORKLOAD_SUBJECT};
use super::x509::ClientCertificate;

/// Lifetime of [`EntraStandIn::mint_federated_assertion`] tokens.
const FEDERATED_LIFETIME: Duration = Duration::from_secs(3600);

impl EntraStandIn {
    /// The API's client secret (the builder's
    /// [`client_secret`](super::super::EntraStandInBuilder::client_secret), or a random one
    /// shaped like Entra's).
    pub fn client_secret(&self) -> String {
        self.shared.token_endpoint.client_secret().to_owned()
    }

    /// `http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token`: where to POST token requests.
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.shared.loopback)
    }

    /// `{advertised_host}/{tenant}/oauth2/v2.0/token`, the `token_endpoint` discovery
    /// advertises: the `aud` a client assertion must carry.
    pub fn client_assertion_audience(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.shared.authority)
    }

    /// Trusts client assertions signed by the key of each certificate in `certificate_pem`
    /// (`-----BEGIN CERTIFICATE-----` blocks), named in the assertion header by `x5t#S256`
    /// (SHA-256) or `x5t` (SHA-1) thumbprint.
    ///
    /// # Panics
    /// If `certificate_pem` holds no parsable certificate.
    pub fn register_certificate(&self, certificate_pem: &str) {
        let certificates = ClientCertificate::from_pem(certificate_pem)
            .unwrap_or_else(|e| panic!("register_certificate: {e}"));
        self.shared
            .token_endpoint
            .register_certificates(certificates);
    }

    /// The issuer of [`mint_federated_assertion`](Self::mint_federated_assertion) tokens
    /// (`{advertised_host}/federation`), trusted by the API's federated credential.
    pub fn federation_issuer(&self) -> String {
        self.shared.token_endpoint.federation_issuer().to_owned()
    }

    /// A federated assertion the API's federated identity credential accepts, valid for one
    /// hour: a Kubernetes-style service-account token (`sub =
    /// system:serviceaccount:default:workload`, `aud = ["api://AzureADTokenExchange"]`) signed
    /// RS256 by the stand-in's federation issuer, as a workload identity's
    /// `AZURE_FEDERATED_TOKEN_FILE` holds.
    pub fn mint_federated_assertion(&self) -> String {
        self.mint_federated_assertion_with_lifetime(FEDERATED_LIFETIME)
    }

    /// [`mint_federated_assertion`](Self::mint_federated_assertion) valid for `lifetime` from
    /// now; `Duration::ZERO` gives an already expired one.
    pub fn mint_federated_assertion_with_lifetime(&self, lifetime: Duration) -> String {
        self.mint_federated_assertion_for(WORKLOAD_SUBJECT, EXCHANGE_AUDIENCE, lifetime)
    }

    /// A federated assertion from the federation issuer with any `subject` and `audience`,
    /// e.g. to check that unregistered ones are refused (AADSTS700213 / AADSTS700212).
    pub fn mint_federated_assertion_for(
        &self,
        subject: &str,
        audience: &str,
        lifetime: Duration,
    ) -> String {
        let key = self.federation_key();
        let now = unix_seconds(SystemTime::now());
        let exp = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2));
        let header = json!({ "alg": "RS256", "kid": key.kid() });
        let claims = json!({
            "aud": [audience],
            "exp": exp,
            "iat": now,
            "iss": self.federation_issuer(),
            "jti": random_guid(),
            "kubernetes.io": {
                "namespace": "default",
                "serviceaccount": { "name": "workload", "uid": random_guid() },
            },
            "nbf": now,
            "sub": subject,
        });
        let signing_input = format!("{}.{}", b64url_json(&header), b64url_json(&claims));
        let signature = key.sign_rs256(signing_input.as_bytes());
        format!("{signing_input}.{}", b64url(&signature))
    }

    /// Adds a federated identity credential (matched case-sensitively, as at Entra).
    pub fn add_federated_credential(&self, issuer: &str, subject: &str, audience: &str) {
        self.shared
            .token_endpoint
            .add_federated_credential(FederatedCredential {
                issuer: issuer.to_owned(),
                subject: subject.to_owned(),
                audience: audience.to_owned(),
            });
    }

    /// Refuses a certificate client assertion whose `jti` was presented before. Off by
    /// default, as at Entra: MSAL Python and msal-node reuse one signed assertion for several
    /// minutes. Federated assertions may always be reused.
    pub fn refuse_assertion_replay(&self, on: bool) {
        self.shared.token_endpoint.set_refuse_replay(on);
    }

    /// The lifetime of issued access tokens: `expires_in`, `ext_expires_in` and `exp - iat`
    /// (whole seconds; default 3599 s).
    pub fn set_obo_token_lifetime(&self, lifetime: Duration) {
        self.shared.token_endpoint.set_lifetime(lifetime);
    }

    /// A Conditional Access policy requiring MFA of user `oid`: its exchanges fail with
    /// `interaction_required` (AADSTS50076) and a `claims` challenge unless the assertion's
    /// `amr` contains `"mfa"`.
    pub fn require_mfa(&self, oid: &str) {
        self.shared.token_endpoint.require_mfa(oid);
    }

    /// Revokes consent to `scope`, a full scope URI (`https://graph.microsoft.com/Mail.Read`;
    /// `{resource}/.default` revokes the whole resource): requests including it fail with
    /// `invalid_grant` / `consent_required` (AADSTS65001).
    pub fn revoke_consent(&self, scope: &str) {
        self.shared.token_endpoint.revoke_consent(scope);
    }

    /// The permissions a `{resource}/.default` request is granted (default: `User.Read` for
    /// Graph, `access_as_user` for other APIs). `resource` as in scopes, e.g.
    /// `https://graph.microsoft.com` or `api://…`.
    pub fn set_default_scopes(&self, resource: &str, scopes: &[&str]) {
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.shared
            .token_endpoint
            .set_default_scopes(resource.trim_end_matches('/'), scopes);
    }

    /// Makes an `https://…` resource known (Graph and any `api://…` always are); scopes of
    /// other resources fail with `invalid_scope` (AADSTS70011).
    pub fn add_resource(&self, resource: &str) {
        self.shared.token_endpoint.add_resource(resource);
    }

    /// Answers the next `times` token requests (`None`: every one until
    /// [`clear_token_faults`](Self::clear_token_faults)) with `fault`, before any validation.
    /// Faults injected while others are pending queue up behind them.
    pub fn inject_token_fault(&self, fault: TokenFault, times: Option<usize>) {
        self.shared.token_endpoint.inject(fault, times);
    }

    /// Answers every token request whose `assertion` names user `oid` with `fault` (read from
    /// the assertion without validating it), or whose `refresh_token` was issued to that
    /// user, until cleared. Global faults take precedence.
    pub fn inject_token_fault_for_user(&self, oid: &str, fault: TokenFault) {
        self.shared.token_endpoint.inject_for_user(oid, fault);
    }

    /// Answers every token request whose `scope` includes `scope` (one scope, compared
    /// case-insensitively, e.g. `https://redis.azure.com/.default`) with `fault`, until
    /// cleared: one resource's tokens fail while the others' are issued. Global and
    /// per-user faults take precedence.
    pub fn inject_token_fault_for_scope(&self, scope: &str, fault: TokenFault) {
        self.shared.token_endpoint.inject_for_scope(scope, fault);
    }

    /// The access tokens issued so far (the latest 64), oldest first: for a test that
    /// plays the resource the tokens are for (e.g. a Redis server whose ACL password is
    /// the current token).
    pub fn issued_access_tokens(&self) -> Vec<String> {
        self.shared.token_endpoint.issued_tokens()
    }

    /// Removes every injected token-endpoint fault (global, per-user and per-scope).
    pub fn clear_token_faults(&self) {
        self.shared.token_endpoint.clear_faults();
    }

    /// Requests received by the token endpoint, counted on arrival (failed ones included).
    pub fn token_requests(&self) -> usize {
        self.shared.token_endpoint.requests()
    }

    /// Tokens issued (successful token requests).
    pub fn tokens_issued(&self) -> usize {
        self.shared.token_endpoint.issued()
    }

    /// Every token request so far, in the order answered (a hanging one when it began to
    /// hang, with status 0).
    pub fn token_request_log(&self) -> Vec<TokenRequestRecord> {
        self.shared.token_endpoint.log()
    }

    /// The federation issuer's key (created on first use, distinct from the stand-in's
    /// signing keys).
    fn federation_key(&self) -> Arc<SigningKey> {
        self.shared.token_endpoint.federation_key(|| {
            let index = self.shared.keys().reserve();
            keys::pooled(index)
        })
    }
}

/// A random client secret shaped like Entra's (40 characters, `8Q~` after the first three).
pub(crate) fn random_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
    let chars: String = random_bytes::<37>()
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("{}8Q~{}", &chars[..3], &chars[3..])
}
