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
    /// `xms_par_app_azp` names the agent's blueprint; `xms_sub_fct` marks an agent
    /// user. `None` for ordinary users and applications.
    pub fn agent(&self) -> Option<AgentCaller<'_>> {
        let blueprint = self
            .claim("xms_par_app_azp")
            .and_then(|v| v.as_str())
            .filter(|b| !b.is_empty())?;
        let facets = self.claim("xms_sub_fct").is_some_and(|v| match v {
            serde_json::Value::String(s) => !s.trim().is_empty(),
            serde_json::Value::Array(a) => !a.is_empty(),
            serde_json::Value::Null => false,
            _ => true,
        });
        Some(AgentCaller {
            blueprint,
            kind: if facets {
                AgentKind::User
            } else {
                AgentKind::Identity
            },
        })
    }
}

/// Whether a route admits agents ([`Requirement::AGENTS`](crate::Requirement::AGENTS)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAdmission {
    /// Agents are callers like any other (the default).
    Admit,
    /// Agent identities and agent users are refused (403).
    Refuse,
    /// Only agent identities and agent users are admitted.
    Only,
}

impl AgentAdmission {
    /// Whether `p` is admitted.
    pub(crate) fn admits(self, p: &Principal) -> bool {
        match self {
            AgentAdmission::Admit => true,
            AgentAdmission::Refuse => p.agent().is_none(),
            AgentAdmission::Only => p.agent().is_some(),
        }
    }
}
