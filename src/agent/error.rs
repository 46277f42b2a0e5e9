//! Why an agent got no token, and the HTTP answer of each case.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::exchange::OboError;
use crate::rejection::AuthRejection;

/// The step of the agent chain a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// T1: the blueprint's `client_credentials` request with `fmi_path`.
    Blueprint,
    /// T2: the agent's instance token.
    Instance,
    /// `user_fic`: T2 redeemed for an agent user.
    AgentUser,
    /// The agent's token itself (autonomous, On-Behalf-Of, refresh).
    Token,
}

/// Why an agent identity got no token.
///
/// | variant | status | meaning |
/// |---|---|---|
/// | [`Blueprint`](Self::Blueprint) | 500 | Entra refused T1: the agent is not a child of this API's blueprint, or the blueprint's credential is wrong |
/// | [`AgentRefused`](Self::AgentRefused) | 500 | Entra refused the agent's own request (its T1 as client assertion, its T2, or the grant): a misconfiguration |
/// | [`NotAnAgentUser`](Self::NotAnAgentUser) | 403 | the user named is not an agent user of this agent |
/// | [`InvalidAgentId`](Self::InvalidAgentId), [`InvalidTenant`](Self::InvalidTenant) | 500 | the agent or tenant id is not a GUID |
/// | [`Exchange`](Self::Exchange) | as [`AuthRejection::Obo`] | the On-Behalf-Of relay table: app-only caller 403, interaction 401, consent 403, Entra unavailable 503, … |
///
/// Causes are logged (with the agent id and Entra's AADSTS code) when the error
/// is built; no message holds a token or secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Entra refused the blueprint's token for the agent (T1).
    #[error("the agent identity blueprint cannot obtain a token for agent {agent}: {cause}")]
    Blueprint {
        /// The agent identity.
        agent: String,
        /// Entra's refusal.
        cause: OboError,
    },
    /// Entra refused a request of the agent identity itself.
    #[error("the agent identity {agent} was refused: {cause}")]
    AgentRefused {
        /// The agent identity.
        agent: String,
        /// Entra's refusal.
        cause: OboError,
    },
    /// The user is not an agent user of this agent identity.
    #[error("the user is not an agent user of agent {agent}")]
    NotAnAgentUser {
        /// The agent identity.
        agent: String,
    },
    /// The agent id is not a GUID.
    #[error("the agent id is not a GUID")]
    InvalidAgentId,
    /// The tenant id given for an autonomous or agent-user token is not a GUID.
    #[error("the tenant id is not a GUID")]
    InvalidTenant,
    /// The exchange failed as an On-Behalf-Of exchange fails.
    #[error(transparent)]
    Exchange(OboError),
}

impl AgentError {
    /// A failure at `step`, before the agent is named.
    pub(crate) fn at(step: Step, e: OboError) -> Self {
        let transient = matches!(
            e,
            OboError::Unavailable { .. } | OboError::Timeout | OboError::BadResponse
        );
        if transient {
            return AgentError::Exchange(e);
        }
        match (step, &e) {
            (Step::Blueprint, _) => AgentError::Blueprint {
                agent: String::new(),
                cause: e,
            },
            (Step::AgentUser, OboError::InvalidGrant) => AgentError::NotAnAgentUser {
                agent: String::new(),
            },
            (Step::Instance | Step::AgentUser | Step::Token, OboError::Misconfigured(_)) => {
                AgentError::AgentRefused {
                    agent: String::new(),
                    cause: e,
                }
            }
            (Step::Instance, _) => AgentError::AgentRefused {
                agent: String::new(),
                cause: e,
            },
            _ => AgentError::Exchange(e),
        }
    }

    /// Names `agent` in the error and logs what needs an operator.
    pub(crate) fn for_agent(self, agent: &str) -> Self {
        let named = match self {
            AgentError::Blueprint { cause, .. } => AgentError::Blueprint {
                agent: agent.to_owned(),
                cause,
            },
            AgentError::AgentRefused { cause, .. } => AgentError::AgentRefused {
                agent: agent.to_owned(),
                cause,
            },
            AgentError::NotAnAgentUser { .. } => AgentError::NotAnAgentUser {
                agent: agent.to_owned(),
            },
            other => other,
        };
        match &named {
            AgentError::Blueprint { .. } | AgentError::AgentRefused { .. } => {
                tracing::error!(agent, error = %named, "agent token chain refused: misconfigured");
            }
            AgentError::NotAnAgentUser { .. } => {
                tracing::info!(
                    agent,
                    "agent user token refused: not an agent user of this agent"
                );
            }
            _ => {}
        }
        named
    }

    /// Whether Entra would refuse the same request again (remembered for the negative TTL).
    pub(crate) fn is_negative_cacheable(&self) -> bool {
        match self {
            AgentError::Exchange(e) => e.is_negative_cacheable(),
            AgentError::NotAnAgentUser { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            AgentError::Blueprint { .. }
            | AgentError::AgentRefused { .. }
            | AgentError::InvalidAgentId
            | AgentError::InvalidTenant => StatusCode::INTERNAL_SERVER_ERROR,
            AgentError::NotAnAgentUser { .. } => StatusCode::FORBIDDEN,
            AgentError::Exchange(e) => AuthRejection::Obo(e.clone()).into_response().status(),
        }
    }
}

impl From<OboError> for AgentError {
    fn from(e: OboError) -> Self {
        AgentError::Exchange(e)
    }
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        match self {
            AgentError::Exchange(e) => AuthRejection::Obo(e).into_response(),
            AgentError::NotAnAgentUser { .. } => {
                (StatusCode::FORBIDDEN, "the agent may not act as this user").into_response()
            }
            AgentError::Blueprint { .. }
            | AgentError::AgentRefused { .. }
            | AgentError::InvalidAgentId
            | AgentError::InvalidTenant => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the agent identity is misconfigured",
            )
                .into_response(),
        }
    }
}

/// The rejection of the [`AgentObo`](super::AgentObo) extractor: no layer or no
/// caller (as [`OboToken`](crate::OboToken)'s), or the agent's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentRejection {
    /// No layer, no caller, or no agent configured for the route.
    #[error(transparent)]
    Auth(#[from] AuthRejection),
    /// The agent got no token.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// No [`Agent`](super::Agent) in the request's extensions (500).
    #[error("no Agent in the request extensions; did you add `Extension(agent)`?")]
    MissingAgent,
}

impl IntoResponse for AgentRejection {
    fn into_response(self) -> Response {
        match self {
            AgentRejection::Auth(r) => r.into_response(),
            AgentRejection::Agent(e) => e.into_response(),
            AgentRejection::MissingAgent => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "no Agent in the request extensions; did you add `Extension(agent)`?",
            )
                .into_response(),
        }
    }
}
