//! The example's router and its offline set-up, shared with `tests/example.rs`.

use axum::routing::get;
use axum::{Json, Router};
use axum_obo::{
    AuthRejection, GraphUserRead, OboConfig, OboConfigBuilder, OboLayer, OboToken, Principal,
    Require, Requirement,
};
use axum_obo_testing::{EntraStandIn, GraphStandIn};
use serde_json::{json, Value};

/// Callers holding the `Admin` app role.
pub struct Admin;

impl Requirement for Admin {
    const ROLES: &'static [&'static str] = &["Admin"];
}

/// `GET /healthz`: no authentication.
async fn healthz() -> &'static str {
    "ok"
}

/// `GET /whoami`: the validated caller.
async fn whoami(caller: Principal) -> Json<Principal> {
    Json(caller)
}

/// `GET /me`: the caller's Graph profile, fetched on their behalf.
async fn me(token: OboToken<GraphUserRead>) -> Result<Json<Value>, AuthRejection> {
    Ok(Json(token.graph()?.get_json("me").await?))
}

/// `GET /admin`: only for the `Admin` app role.
async fn admin(_: Require<Admin>) -> Json<Value> {
    Json(json!({ "ok": true }))
}

/// The policy of the example: delegated tokens need `access_as_user`; app-only
/// tokens are admitted with any role.
pub fn policy(builder: OboConfigBuilder) -> OboConfigBuilder {
    builder.require_user_scopes(["access_as_user"])
}

/// The example's routes behind `layer` (`/healthz` stays public).
pub fn router(layer: OboLayer) -> Router {
    let protected = Router::new()
        .route("/whoami", get(whoami))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .layer(layer);
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
}

/// The embedded identity provider and Graph, for running without Azure.
pub struct Embedded {
    /// The Entra ID stand-in.
    pub entra: EntraStandIn,
    /// The Graph stand-in.
    pub graph: GraphStandIn,
}

impl Embedded {
    /// Starts both stand-ins on loopback.
    pub async fn start() -> Self {
        let entra = EntraStandIn::start().await;
        let jwks = format!("{}/common/discovery/v2.0/keys", entra.authority_host());
        let graph = GraphStandIn::start(&jwks).await;
        Self { entra, graph }
    }

    /// A configuration pointing at the stand-ins.
    pub fn config(&self) -> OboConfigBuilder {
        OboConfig::builder()
            .tenant_id(self.entra.home_tenant())
            .client_id(self.entra.api_client_id())
            .authority_host(self.entra.authority_host())
            .client_secret(self.entra.client_secret())
            .graph_url(self.graph.url())
    }

    /// A user token for `/me` and `/whoami`.
    pub fn user_token(&self) -> String {
        self.entra
            .token()
            .claim("name", json!("Adele Vance"))
            .claim("preferred_username", json!("adele@contoso.example"))
            .sign()
    }

    /// A user token that also holds the `Admin` app role.
    pub fn admin_token(&self) -> String {
        self.entra
            .token()
            .claim("name", json!("Megan Bowen"))
            .roles(&["Admin"])
            .sign()
    }
}
