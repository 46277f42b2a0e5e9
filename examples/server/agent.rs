//! `GET /agent/me`: an AI agent (Microsoft Entra Agent ID) fetching the caller's
//! Graph profile on their behalf.
//!
//! With `OBO_AGENT_ID` = the client id of an agent identity whose blueprint is
//! this API, the agent identity (not this API) exchanges the caller's token
//! (agent On-Behalf-Of): the request's `client_id` is the agent, its client
//! assertion the blueprint's token for it (T1, one for every caller); the agent's
//! Graph token is cached per caller. App-only callers get 403 without a request
//! to Entra. Without an agent id, the route does not exist (404). The embedded
//! mode registers a demo agent identity with the Entra stand-in.

use std::sync::OnceLock;

use axum::routing::get;
use axum::{Extension, Json, Router};
use axum_obo::agent::{AgentObo, AgentRejection};
use axum_obo::{AuthRejection, GraphUserRead, OboLayer};
use serde_json::Value;

/// The agent id chosen by `main` (the embedded demo agent), before `OBO_AGENT_ID`.
static AGENT_ID: OnceLock<String> = OnceLock::new();

/// Sets the agent id of [`router`] (once, before it is built).
pub fn set_agent_id(id: String) {
    let _ = AGENT_ID.set(id);
}

/// The configured agent id: [`set_agent_id`], else `OBO_AGENT_ID`.
pub fn agent_id() -> Option<String> {
    AGENT_ID.get().cloned().or_else(|| {
        std::env::var("OBO_AGENT_ID")
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// `GET /agent/me`: the caller's profile, as the agent reads it for them.
async fn me(token: AgentObo<GraphUserRead>) -> Result<Json<Value>, AgentRejection> {
    let profile = token
        .graph()
        .get_json("me")
        .await
        .map_err(AuthRejection::from)?;
    Ok(Json(profile))
}

/// `/agent/me` behind `layer` for the agent `agent_id`; no routes without one.
///
/// # Panics
/// If `agent_id` is not a GUID (a configuration error, found at start-up).
pub fn router(layer: &OboLayer, agent_id: Option<&str>) -> Router {
    let Some(id) = agent_id else {
        return Router::new();
    };
    let agent = layer
        .agent(id)
        .unwrap_or_else(|e| panic!("OBO_AGENT_ID: {e}"));
    Router::new()
        .route("/agent/me", get(me))
        .route_layer(layer.clone())
        .layer(Extension(agent))
}
