//! Inbound agents: whether the caller is an agent identity or an agent user.

use crate::validate::Principal;

/// What kind of agent a caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// An agent identity acting for itself or for a user (`xms_par_app_azp`).
    Identity,
    /// An agent user: a user account an agent acts as (`xms_sub_fct`).
    User,
}

/// A caller that is an agent (see [`Principal::agent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentCaller<'a> {
    blueprint: &'a str,
    kind: AgentKind,
}

impl<'a> AgentCaller<'a> {
    /// The agent's blueprint (`xms_par_app_azp`).
    pub fn blueprint(&self) -> &'a str {
        self.blueprint
    }

    /// Agent identity or agent user.
    pub fn kind(&self) -> AgentKind {
        self.kind
    }
}

impl Principal {
    /// The caller as an agent of Microsoft Entra Agent ID, if its token says so:
    /// `xms_par_app_azp` names the agent's blueprint; the subject facet `13`
    /// (AgentIDUser) in `xms_sub_fct` marks an agent user. `None` for ordinary
    /// users and applications.
    ///
    /// Facet claims are space-separated numbers and appear on ordinary tokens too
    /// (`"3 9"`); an autonomous agent's token carries `11` (AgentIdentity). Only
    /// `13` makes an agent user; other values are ignored.
    pub fn agent(&self) -> Option<AgentCaller<'_>> {
        let blueprint = self
            .claim("xms_par_app_azp")
            .and_then(|v| v.as_str())
            .filter(|b| !b.is_empty())?;
        let agent_user = self
            .claim("xms_sub_fct")
            .is_some_and(|v| has_facet(v, AGENT_USER_FACET));
        Some(AgentCaller {
            blueprint,
            kind: if agent_user {
                AgentKind::User
            } else {
                AgentKind::Identity
            },
        })
    }
}

/// The facet value of an agent's user account (AgentIDUser) in `xms_sub_fct`.
const AGENT_USER_FACET: &str = "13";
/// The facet value of an agent identity (AgentIdentity) in `xms_act_fct` and `xms_sub_fct`.
const AGENT_IDENTITY_FACET: &str = "11";

/// Whether `p`'s token is an agent's: [`Principal::agent`], or, without the
/// optional `xms_par_app_azp`, an agent facet (`xms_act_fct` `11`; `xms_sub_fct`
/// `11` or `13`), as Entra's scenario tables mark agents.
fn is_agent(p: &Principal) -> bool {
    let facet = |claim: &str, facet: &str| p.claim(claim).is_some_and(|v| has_facet(v, facet));
    p.agent().is_some()
        || facet("xms_act_fct", AGENT_IDENTITY_FACET)
        || facet("xms_sub_fct", AGENT_IDENTITY_FACET)
        || facet("xms_sub_fct", AGENT_USER_FACET)
}

/// Whether the facet claim `v` (space-separated numbers, or an array of them)
/// holds `facet`.
fn has_facet(v: &serde_json::Value, facet: &str) -> bool {
    match v {
        serde_json::Value::String(s) => s.split_whitespace().any(|f| f == facet),
        serde_json::Value::Number(n) => n.to_string() == facet,
        serde_json::Value::Array(a) => a.iter().any(|f| has_facet(f, facet)),
        _ => false,
    }
}

/// Whether a route admits agents ([`Requirement::AGENTS`](crate::Requirement::AGENTS)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAdmission {
    /// Agents are callers like any other (the default).
    Admit,
    /// Agent identities and agent users are refused (403): tokens with
    /// `xms_par_app_azp`, and tokens marked by an agent facet without it
    /// (`xms_act_fct` `11`, `xms_sub_fct` `11` or `13`).
    Refuse,
    /// Only agent identities and agent users are admitted.
    Only,
}

impl AgentAdmission {
    /// Whether `p` is admitted.
    pub(crate) fn admits(self, p: &Principal) -> bool {
        match self {
            AgentAdmission::Admit => true,
            AgentAdmission::Refuse => !is_agent(p),
            AgentAdmission::Only => is_agent(p),
        }
    }
}
