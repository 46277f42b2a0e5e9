//! Microsoft Entra Agent ID at the token endpoint: agent identity blueprints, their agent
//! identities and agent users, and the grants Microsoft's clients send for them (MSAL
//! Python 1.39's `acquire_token_for_client(fmi_path=…)` and
//! `acquire_token_by_user_federated_identity_credential`, the Microsoft 365 Agents SDK's
//! `microsoft-agents-authentication-msal` 1.9.0).
//!
//! The API's own registration is the blueprint: it alone has credentials. An agent identity
//! is a client id without a credential of its own, child of one blueprint; agent users are
//! user accounts an agent identity acts as.
//!
//! - **T1**: `client_credentials` by the blueprint (its usual credential) with
//!   `fmi_path=<agent id>` and `scope=api://AzureADTokenExchange/.default`, only for a
//!   registered child of the blueprint.
//! - An agent identity authenticates with T1 **for itself** as its client assertion
//!   (`client_id=<agent id>`, `client_assertion_type=…jwt-bearer`, `client_assertion=T1`); any
//!   other token (T2, a T1 of another agent, a user token) is `invalid_client`. With it:
//!   - `client_credentials` for `api://AzureADTokenExchange/.default` → **T2**, the agent's
//!     instance token;
//!   - `client_credentials` for `{resource}/.default` → the agent's app-only token;
//!   - `user_fic` with `user_federated_identity_credential=T2` (of this agent only) and one of
//!     `user_id` / `username` naming one of its agent users → a delegated token for that agent
//!     user (a refresh token with `offline_access`);
//!   - On-Behalf-Of with the user's token to the blueprint as `assertion`;
//!   - `refresh_token` for refresh tokens issued to this agent.
//!
//! Issued tokens name the agent as `appid` and its blueprint as `xms_par_app_azp`, with
//! the actor facet `xms_act_fct` `11` (AgentIdentity); the subject facet `xms_sub_fct` is
//! `11` on autonomous tokens and `13` (AgentIDUser) on agent users' tokens. T1 and T2 are recorded by their `uti`: a token is a T1
//! or a T2 because this stand-in issued it as one, not because of a claim a caller could forge.
//!
//! Entra's AADSTS codes for the agent-specific refusals are not public in full; the codes
//! below marked "stand-in" are this stand-in's choice, their OAuth `error` is Entra's.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::super::ids::{b64url, derived_guid, random_bytes, random_guid};
use super::super::response::EntraError;
use super::super::state::Shared;
use super::client_auth::{authenticate, ClientAuth, Context};
use super::errors;
use super::form::Form;
use super::handler::requested;
use super::issue::{self, Grant};
use super::jws::{Alg, Jws};
use super::refresh::RefreshGrant;
use super::scopes::{self, Resource};
use super::user_assertion::{self, Subject};

/// The audience of T1 and T2, and the scope that asks for them (`/.default`), compared
/// case-insensitively (the Agents SDK writes `api://AzureAdTokenExchange`).
const EXCHANGE_RESOURCE: &str = "api://AzureADTokenExchange";
/// `client_assertion_type` of JWT client assertions.
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The On-Behalf-Of grant type.
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `xms_sub_fct` of an agent user's tokens: the subject's facets, space-separated odd
/// numbers; `13` is AgentIDUser.
const AGENT_USER_FACETS: &str = "13";
/// The facets of an agent identity (`11`, AgentIdentity): `xms_act_fct` of every token
/// issued to an agent, and `xms_sub_fct` of its autonomous tokens.
const AGENT_IDENTITY_FACETS: &str = "11";

/// An agent user: a user account an agent identity acts as.
#[derive(Debug, Clone)]
pub(super) struct AgentUser {
    oid: String,
    upn: String,
}

/// An agent identity: its blueprint and its agent users.
#[derive(Debug, Clone)]
struct AgentIdentity {
    blueprint: String,
    users: Vec<AgentUser>,
}

/// Which of the agent-ID tokens an issued token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    T1,
    T2,
}

/// A T1 or T2 this stand-in issued, by `uti`.
#[derive(Debug, Clone)]
struct IssuedCredential {
    kind: Kind,
    agent: String,
    tid: String,
}

/// The agent identities of the directory and the T1/T2 tokens issued to them.
#[derive(Debug, Default)]
pub(crate) struct AgentDirectory {
    /// By lowercase agent id.
    agents: Mutex<HashMap<String, AgentIdentity>>,
    /// By `uti`.
    issued: Mutex<HashMap<String, IssuedCredential>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AgentDirectory {
    /// Registers a new agent identity, child of `blueprint`; returns its id.
    pub(super) fn add_agent(&self, blueprint: &str) -> String {
        let id = random_guid();
        lock(&self.agents).insert(
            id.clone(),
            AgentIdentity {
                blueprint: blueprint.to_ascii_lowercase(),
                users: Vec::new(),
            },
        );
        id
    }

    /// Adds an agent user `upn` to `agent`; returns its object id (`None`: no such agent).
    pub(super) fn add_user(&self, agent: &str, upn: &str) -> Option<String> {
        let mut agents = lock(&self.agents);
        let identity = agents.get_mut(&agent.to_ascii_lowercase())?;
        let oid = random_guid();
        identity.users.push(AgentUser {
            oid: oid.clone(),
            upn: upn.to_owned(),
        });
        Some(oid)
    }

    fn agent(&self, id: &str) -> Option<AgentIdentity> {
        lock(&self.agents).get(&id.to_ascii_lowercase()).cloned()
    }

    fn record(&self, uti: String, credential: IssuedCredential) {
        lock(&self.issued).insert(uti, credential);
    }

    fn issued(&self, uti: &str) -> Option<IssuedCredential> {
        lock(&self.issued).get(uti).cloned()
    }
}

/// Answers the request if it is an agent-ID request (`fmi_path`, `user_fic`, or a client id
/// that is an agent identity); `None` leaves it to the API's grants.
pub(super) fn grant(
    shared: &Shared,
    form: &Form,
    headers: &HeaderMap,
    cx: &Context<'_>,
) -> Option<Result<Value, EntraError>> {
    let directory = &shared.token_endpoint.agents;
    if form.get("fmi_path").is_some() {
        return Some(blueprint_t1(shared, form, headers, cx));
    }
    let agent_id = form.get("client_id")?;
    let Some(agent) = directory.agent(agent_id) else {
        if form.get("grant_type") == Some("user_fic") {
            return Some(Err(errors::unknown_application(agent_id, cx.tenant)));
        }
        return None;
    };
    let agent_id = agent_id.to_ascii_lowercase();
    Some(agent_grant(shared, form, cx, &agent_id, &agent))
}

/// T1: the blueprint's `client_credentials` request with `fmi_path`.
fn blueprint_t1(
    shared: &Shared,
    form: &Form,
    headers: &HeaderMap,
    cx: &Context<'_>,
) -> Result<Value, EntraError> {
    if form.get("grant_type") != Some("client_credentials") {
        return Err(errors::malformed(
            "fmi_path is only valid with grant_type=client_credentials.",
        ));
    }
    let client = authenticate(shared, form, headers, cx)?;
    let scope = form.get("scope").unwrap_or_default();
    if !is_exchange_scope(scope) {
        return Err(errors::invalid_scope(&format!(
            "The scope '{scope}' is not valid with fmi_path: request \
             '{EXCHANGE_RESOURCE}/.default'."
        )));
    }
    let fmi_path = form.get("fmi_path").unwrap_or_default();
    let blueprint = shared.api_client_id.to_ascii_lowercase();
    match shared.token_endpoint.agents.agent(fmi_path) {
        Some(agent) if agent.blueprint == blueprint => {}
        _ => return Err(not_a_child(fmi_path, &blueprint)),
    }
    let agent = fmi_path.to_ascii_lowercase();
    Ok(credential_token(
        shared,
        cx,
        Kind::T1,
        &agent,
        &blueprint,
        client,
    ))
}

/// Mints a T1 (`sub` = the agent, `azp` = the blueprint) or a T2 (`sub` = `azp` = the
/// agent, `xms_par_app_azp` = the blueprint) and records it by `uti`.
fn credential_token(
    shared: &Shared,
    cx: &Context<'_>,
    kind: Kind,
    agent: &str,
    blueprint: &str,
    client: ClientAuth,
) -> Value {
    let lifetime = shared.token_endpoint.lifetime_secs();
    let uti = b64url(&random_bytes::<16>());
    let azp = match kind {
        Kind::T1 => blueprint,
        Kind::T2 => agent,
    };
    let mut claims = json!({
        "aud": "fb60f99c-7a34-4190-8149-302f77469936",
        "iss": shared.issuer_v2(cx.tenant),
        "iat": cx.now,
        "nbf": cx.now,
        "exp": cx.now.saturating_add(lifetime),
        "azp": azp,
        "azpacr": client.acr(),
        "idtyp": "app",
        "oid": derived_guid(&["service-principal", cx.tenant, azp]),
        "sub": agent,
        "tid": cx.tenant,
        "uti": uti,
        "ver": "2.0",
    });
    if kind == Kind::T2 {
        if let Some(map) = claims.as_object_mut() {
            map.insert("xms_par_app_azp".into(), blueprint.into());
        }
    }
    shared.token_endpoint.agents.record(
        uti,
        IssuedCredential {
            kind,
            agent: agent.to_owned(),
            tid: cx.tenant.to_owned(),
        },
    );
    issue::app_only_body(shared, issue::sign_v2(shared, &claims))
}

/// A request by an agent identity: T1 as its client assertion, then the grant.
fn agent_grant(
    shared: &Shared,
    form: &Form,
    cx: &Context<'_>,
    agent_id: &str,
    agent: &AgentIdentity,
) -> Result<Value, EntraError> {
    authenticate_agent(shared, form, cx, agent_id)?;
    match form.get("grant_type") {
        None => Err(errors::missing_parameter("grant_type")),
        Some("client_credentials") => {
            let scope = form
                .get("scope")
                .ok_or_else(|| errors::missing_parameter("scope"))?;
            if is_exchange_scope(scope) {
                return Ok(credential_token(
                    shared,
                    cx,
                    Kind::T2,
                    agent_id,
                    &agent.blueprint,
                    ClientAuth::Federated,
                ));
            }
            let resource = scopes::parse_app_only(shared, scope)?;
            let token = agent_app_token(shared, cx, agent_id, &agent.blueprint, &resource);
            Ok(issue::app_only_body(shared, token))
        }
        Some("user_fic") => user_fic(shared, form, cx, agent_id, agent),
        Some(JWT_BEARER_GRANT) => {
            if form.get("requested_token_use") != Some("on_behalf_of") {
                return Err(errors::missing_parameter("requested_token_use"));
            }
            let assertion = form
                .get("assertion")
                .ok_or_else(|| errors::missing_parameter("assertion"))?;
            let subject = user_assertion::validate(shared, assertion, cx.tenant, cx.now)?;
            delegated(shared, form, cx, agent_id, agent, &subject, false)
        }
        Some("refresh_token") => {
            let token = form
                .get("refresh_token")
                .ok_or_else(|| errors::missing_parameter("refresh_token"))?;
            let grant = shared
                .token_endpoint
                .redeem_refresh_token(token)
                .ok_or_else(|| errors::bad_refresh_token("The refresh token is not valid."))?;
            if grant.subject.tid != cx.tenant || !grant.client_id.eq_ignore_ascii_case(agent_id) {
                return Err(errors::bad_refresh_token(
                    "The refresh token was issued to another client or in another tenant.",
                ));
            }
            let agent_user = agent.users.iter().any(|u| u.oid == grant.subject.oid);
            delegated(
                shared,
                form,
                cx,
                agent_id,
                agent,
                &grant.subject,
                agent_user,
            )
        }
        Some(other) => Err(errors::unsupported_grant_type(other)),
    }
}

/// Client authentication of an agent identity: exactly a JWT client assertion that is a T1
/// this stand-in issued for this agent in this tenant, unexpired and correctly signed.
fn authenticate_agent(
    shared: &Shared,
    form: &Form,
    cx: &Context<'_>,
    agent_id: &str,
) -> Result<(), EntraError> {
    if form.get("client_secret").is_some() {
        return Err(agent_client(&format!(
            "The agent identity '{agent_id}' has no client secret: it authenticates with a \
             token of its blueprint (T1) as client_assertion."
        )));
    }
    if form.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
        return Err(errors::credential_missing());
    }
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| errors::missing_parameter("client_assertion"))?;
    let issued = verified_credential(shared, assertion, cx)
        .ok_or_else(|| agent_client("The client assertion is not a token of this directory."))?;
    if issued.kind != Kind::T1 {
        return Err(agent_client(
            "The client assertion is an agent instance token (T2): only the blueprint's token \
             for the agent (T1) is a client assertion.",
        ));
    }
    if issued.agent != agent_id {
        return Err(agent_client(&format!(
            "The client assertion was issued for another agent identity, not '{agent_id}'."
        )));
    }
    Ok(())
}

/// The T1/T2 record of `token`, if it is a valid token this stand-in issued as one in the
/// request's tenant.
fn verified_credential(shared: &Shared, token: &str, cx: &Context<'_>) -> Option<IssuedCredential> {
    let jws = Jws::decode(token)?;
    let kid = jws.header_str("kid")?;
    let key = shared
        .keys()
        .published()
        .into_iter()
        .find(|key| key.kid() == kid)?;
    if jws.alg() != Some(Alg::Rs256) || !jws.verifies(Alg::Rs256, key.public_key_der()) {
        return None;
    }
    if jws.time("exp").is_none_or(|exp| exp <= cx.now) {
        return None;
    }
    let issued = shared.token_endpoint.agents.issued(jws.str("uti")?)?;
    (issued.tid == cx.tenant).then_some(issued)
}

/// The `user_fic` grant: T2 of this agent for one of its agent users.
fn user_fic(
    shared: &Shared,
    form: &Form,
    cx: &Context<'_>,
    agent_id: &str,
    agent: &AgentIdentity,
) -> Result<Value, EntraError> {
    let t2 = form
        .get("user_federated_identity_credential")
        .ok_or_else(|| errors::missing_parameter("user_federated_identity_credential"))?;
    match verified_credential(shared, t2, cx) {
        Some(c) if c.kind == Kind::T2 && c.agent == agent_id => {}
        _ => {
            return Err(invalid_grant(
                "The user_federated_identity_credential is not an instance token (T2) of this \
                 agent identity.",
            ))
        }
    }
    let user = match (form.get("user_id"), form.get("username")) {
        (Some(_), Some(_)) => {
            return Err(errors::malformed(
                "user_id and username are mutually exclusive.",
            ))
        }
        (Some(oid), None) => agent.users.iter().find(|u| u.oid.eq_ignore_ascii_case(oid)),
        (None, Some(upn)) => agent.users.iter().find(|u| u.upn.eq_ignore_ascii_case(upn)),
        (None, None) => return Err(errors::missing_parameter("user_id")),
    };
    let Some(user) = user else {
        return Err(invalid_grant(&format!(
            "The user is not an agent user of the agent identity '{agent_id}'."
        )));
    };
    let subject = Subject {
        oid: user.oid.clone(),
        tid: cx.tenant.to_owned(),
        name: Some(user.upn.clone()),
        upn: Some(user.upn.clone()),
        amr: None,
        wids: None,
        issued_at: cx.now,
    };
    delegated(shared, form, cx, agent_id, agent, &subject, true)
}

/// A delegated token issued to the agent for `subject` (a human, by On-Behalf-Of, or an
/// agent user), with a refresh token on `offline_access`, an ID token on `openid`, and
/// `client_info` when asked.
fn delegated(
    shared: &Shared,
    form: &Form,
    cx: &Context<'_>,
    agent_id: &str,
    agent: &AgentIdentity,
    subject: &Subject,
    agent_user: bool,
) -> Result<Value, EntraError> {
    let (scopes, claims) = requested(shared, form)?;
    let endpoint = &shared.token_endpoint;
    if endpoint.mfa_required(&subject.oid) && !subject.did_mfa() {
        return Err(errors::mfa_required(
            &scopes.resource.app_id,
            super::faults::mfa_claims(&subject.tid),
        ));
    }
    let granted = scopes.granted(shared);
    let mut token_claims = issue::claims(
        shared,
        &Grant {
            subject: Some(subject),
            tid: cx.tenant,
            resource: &scopes.resource,
            scopes: granted,
            client: ClientAuth::Federated,
            now: claims.issue_time(cx.now),
            cp1: claims.cp1.as_deref(),
        },
    );
    token_claims.insert("appid".into(), agent_id.into());
    token_claims.insert("app_displayname".into(), "Agent identity".into());
    token_claims.insert("xms_par_app_azp".into(), agent.blueprint.clone().into());
    token_claims.insert("xms_act_fct".into(), AGENT_IDENTITY_FACETS.into());
    if agent_user {
        token_claims.insert("xms_sub_fct".into(), AGENT_USER_FACETS.into());
    }
    let access_token = issue::sign_v1(shared, &Value::Object(token_claims));
    let refresh_token = (scopes.offline_access || form.get("grant_type") == Some("refresh_token"))
        .then(|| {
            let token = issue::refresh_token();
            endpoint.store_refresh_token(
                token.clone(),
                RefreshGrant {
                    subject: subject.clone(),
                    client_id: agent_id.to_owned(),
                    issued_at: cx.now,
                    granted_at: subject.issued_at,
                    serial: endpoint.next_refresh_serial(),
                },
            );
            token
        });
    let id_token = scopes
        .openid
        .then(|| issue::id_token(shared, subject, cx.now));
    let client_info = (form.get("client_info") == Some("1")).then(|| issue::client_info(subject));
    Ok(issue::delegated_body(
        shared,
        &scopes,
        access_token,
        refresh_token,
        id_token,
        client_info,
    ))
}

/// The agent's own app-only token for `resource`.
fn agent_app_token(
    shared: &Shared,
    cx: &Context<'_>,
    agent_id: &str,
    blueprint: &str,
    resource: &Resource,
) -> String {
    let mut claims = issue::claims(
        shared,
        &Grant {
            subject: None,
            tid: cx.tenant,
            resource,
            scopes: Vec::new(),
            client: ClientAuth::Federated,
            now: cx.now,
            cp1: None,
        },
    );
    let sp = derived_guid(&["service-principal", cx.tenant, agent_id]);
    claims.insert("appid".into(), agent_id.into());
    claims.insert("app_displayname".into(), "Agent identity".into());
    claims.insert("oid".into(), sp.clone().into());
    claims.insert("sub".into(), sp.into());
    claims.insert("xms_par_app_azp".into(), blueprint.into());
    claims.insert("xms_act_fct".into(), AGENT_IDENTITY_FACETS.into());
    claims.insert("xms_sub_fct".into(), AGENT_IDENTITY_FACETS.into());
    issue::sign_v1(shared, &Value::Object(claims))
}

/// Whether `scope` is exactly `api://AzureADTokenExchange/.default` (any case).
fn is_exchange_scope(scope: &str) -> bool {
    let items: Vec<&str> = scope.split_whitespace().collect();
    matches!(items.as_slice(), [only] if only.eq_ignore_ascii_case(&format!("{EXCHANGE_RESOURCE}/.default")))
}

/// `fmi_path` names no agent identity of the blueprint (stand-in code AADSTS82001).
fn not_a_child(fmi_path: &str, blueprint: &str) -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        82_001,
        format!(
            "The agent identity '{fmi_path}' is not a child of the agent identity blueprint \
             '{blueprint}'."
        ),
    )
}

/// An agent identity's client authentication failed (stand-in code AADSTS82002).
fn agent_client(detail: &str) -> EntraError {
    EntraError::new(StatusCode::UNAUTHORIZED, "invalid_client", 82_002, detail)
}

/// A `user_fic` grant that cannot be redeemed (stand-in code AADSTS82003).
fn invalid_grant(detail: &str) -> EntraError {
    EntraError::new(StatusCode::BAD_REQUEST, "invalid_grant", 82_003, detail)
}

impl super::super::EntraStandIn {
    /// Registers a new agent identity (Microsoft Entra Agent ID) whose blueprint is the
    /// API's registration; returns its client id. The API obtains its T1 with `fmi_path` =
    /// this id; the agent identity then authenticates with that T1 as client assertion.
    pub fn add_agent_identity(&self) -> String {
        let blueprint = self.shared.api_client_id.clone();
        self.shared.token_endpoint.agents.add_agent(&blueprint)
    }

    /// Registers a new agent identity whose blueprint is `blueprint` (another application):
    /// the API's T1 requests for it are refused, as for any agent that is not its child.
    pub fn add_agent_identity_of(&self, blueprint: &str) -> String {
        self.shared.token_endpoint.agents.add_agent(blueprint)
    }

    /// Adds an agent user with `upn` to the agent identity `agent`; returns its object id.
    ///
    /// # Panics
    /// If `agent` is not a registered agent identity.
    pub fn add_agent_user(&self, agent: &str, upn: &str) -> String {
        self.shared
            .token_endpoint
            .agents
            .add_user(agent, upn)
            .unwrap_or_else(|| panic!("add_agent_user: '{agent}' is not an agent identity"))
    }
}
