//! AI agents on Microsoft Entra Agent ID: agent identities that act for
//! themselves, for the user who called them, and as their agent users.
//!
//! This API's registration is the **agent identity blueprint**: with the credential
//! configured for On-Behalf-Of (secret, certificate, federated file or managed
//! identity) it obtains, for each of its **agent identities**, a token **T1**
//! (`client_credentials`, `fmi_path` = the agent id, for
//! `api://AzureADTokenExchange/.default`). The agent identity has no credential of
//! its own: it authenticates with T1 as its client assertion. Then:
//!
//! | flow | method | grant sent by the agent |
//! |---|---|---|
//! | autonomous | [`Agent::app_token`] | `client_credentials` for `{resource}/.default` |
//! | agent On-Behalf-Of | [`Agent::on_behalf_of`], [`AgentObo`] | jwt-bearer with the caller's token (audience: this API, the blueprint) |
//! | agent user | [`Agent::as_user`] | `user_fic` with the agent's instance token T2, then `refresh_token` |
//!
//! Each returns an [`AgentToken<S>`], whose [`graph`](AgentToken::graph) and
//! [`downstream`](AgentToken::downstream) clients are those of
//! [`OboToken`](crate::OboToken).
//!
//! ```no_run
//! use axum::{routing::get, Extension, Router};
//! use axum_obo::agent::{Agent, AgentObo};
//! use axum_obo::{GraphUserRead, OboLayer};
//!
//! async fn me(token: AgentObo<GraphUserRead>) -> Result<String, axum_obo::agent::AgentRejection> {
//!     let me = token.graph().me().await.map_err(axum_obo::AuthRejection::from)?;
//!     Ok(me.display_name.unwrap_or_default())
//! }
//!
//! # fn build(layer: OboLayer) -> Result<Router, axum_obo::agent::AgentError> {
//! let agent: Agent = layer.agent("9f2c6a4e-0b7d-4c1e-8a35-5d6e7f809a1b")?;
//! let app = Router::new()
//!     .route("/agent/me", get(me))
//!     .layer(Extension(agent))
//!     .layer(layer);
//! # Ok(app) }
//! ```
//!
//! Inbound, [`Principal::agent`](crate::Principal::agent) tells whether the caller is
//! an agent identity or an agent user, and [`Requirement::AGENTS`](crate::Requirement::AGENTS)
//! admits or refuses them per route.
//!
//! What is cached under which key, and the security notes: `docs/agents.md`.

mod error;
mod inbound;
pub(crate) mod runtime;
mod token;

pub use error::{AgentError, AgentRejection};
pub use inbound::{AgentAdmission, AgentCaller, AgentKind};
pub use token::{Agent, AgentObo, AgentToken, AgentUser};
