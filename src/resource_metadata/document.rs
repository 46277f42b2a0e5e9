//! [`ProtectedResourceMetadata`], the RFC 9728 document, and the routes serving it.

use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::HeaderValue;
use serde::Serialize;

/// The RFC 9728 well-known path: `/.well-known/oauth-protected-resource`.
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// The `Cache-Control` of the served document.
const CACHE: &str = "public, max-age=3600";

/// The RFC 9728 protected-resource metadata of this API, as served.
///
/// Built by [`OboConfigBuilder::build`](crate::OboConfigBuilder::build) when a
/// [`resource_url`](crate::OboConfigBuilder::resource_url) is configured; read it
/// with [`OboConfig::resource_metadata`](crate::OboConfig::resource_metadata) and
/// serve it with [`router`](Self::router).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// The resource's canonical URL, as configured.
    pub resource: String,
    /// The home tenant's issuer, `{authority}/{tenant}/v2.0`; then the other
    /// allowed tenants' when
    /// [`resource_list_tenants`](crate::OboConfigBuilder::resource_list_tenants) is on.
    pub authorization_servers: Vec<String>,
    /// The scopes a client requests from Entra for this API.
    pub scopes_supported: Vec<String>,
    /// Always `["header"]`: tokens are read from `Authorization` only.
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A page with developer documentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// The RFC 9728 §3.1 address of this document.
    #[serde(skip)]
    pub(super) metadata_url: String,
    /// The paths it is served at (the path-suffixed one first).
    #[serde(skip)]
    pub(super) paths: Vec<String>,
}

impl ProtectedResourceMetadata {
    /// The RFC 9728 §3.1 address of this document, which challenges name in
    /// `resource_metadata`: `{origin}/.well-known/oauth-protected-resource{path}`.
    pub fn metadata_url(&self) -> &str {
        &self.metadata_url
    }

    /// The paths [`router`](Self::router) serves: the path-suffixed one (when the
    /// resource has a path), then [`WELL_KNOWN_PATH`].
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    /// Routes serving the document at each of [`paths`](Self::paths) (`GET`, JSON,
    /// `Cache-Control: public, max-age=3600`). Merge them *outside* `OboLayer`:
    /// a client reads them before it has a token.
    ///
    /// ```no_run
    /// use axum::{routing::post, Router};
    /// use axum_obo::{OboConfig, OboLayer};
    ///
    /// # fn run() -> Result<(), axum_obo::ConfigError> {
    /// let config = OboConfig::builder()
    ///     .tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47")
    ///     .client_id("8b9f1c52-3a5e-4c1a-9d8e-2f0a1b2c3d4e")
    ///     .resource_url("https://mcp.contoso.com/mcp")
    ///     .build()?;
    /// let metadata = config.resource_metadata().map(|m| m.router()).unwrap_or_default();
    /// let app: Router = Router::new()
    ///     .route("/mcp", post(|| async { "…" }))
    ///     .route_layer(OboLayer::new(config))
    ///     .merge(metadata);
    /// # Ok(())
    /// # }
    /// ```
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        // Serializing plain strings cannot fail.
        let body = Bytes::from(serde_json::to_vec(self).unwrap_or_default());
        let mut router = Router::new();
        for path in &self.paths {
            let body = body.clone();
            router = router.route(path, get(move || std::future::ready(document(body))));
        }
        router
    }
}

/// The document's response.
fn document(body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE));
    response
}
