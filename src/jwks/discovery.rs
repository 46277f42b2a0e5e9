//! OIDC discovery documents (v2 and v1) of one tenant.

use std::time::Duration;

use serde::Deserialize;

use super::KeyError;
use crate::http::{read_capped, BodyError, MAX_DOCUMENT_BYTES};

/// What we need from a tenant's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TenantMetadata {
    /// v2 issuer (exact, or templated with `{tenantid}`).
    pub(crate) issuer_v2: String,
    /// v1 issuer (`https://sts.windows.net/{tid}/` in the public cloud).
    pub(crate) issuer_v1: String,
    /// Where the signing keys are.
    pub(crate) jwks_uri: String,
    /// The token endpoint, as discovered (used as `aud` of client assertions).
    pub(crate) token_endpoint: String,
}

#[derive(Deserialize)]
struct Document {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint: Option<String>,
}

/// Fetches `{authority}/{tenant}/v2.0/.well-known/openid-configuration` and the
/// v1 document `{authority}/{tenant}/.well-known/openid-configuration`.
pub(crate) async fn discover(
    http: &reqwest::Client,
    authority: &str,
    tenant: &str,
    timeout: Duration,
) -> Result<TenantMetadata, KeyError> {
    let v2_url = format!("{authority}/{tenant}/v2.0/.well-known/openid-configuration");
    let v1_url = format!("{authority}/{tenant}/.well-known/openid-configuration");
    let (v2, v1) = tokio::join!(
        fetch_json::<Document>(http, &v2_url, "discovery document", timeout),
        fetch_json::<Document>(http, &v1_url, "v1 discovery document", timeout),
    );
    let (v2, v1) = (v2?, v1?);
    for (doc, what) in [(&v2, "discovery document"), (&v1, "v1 discovery document")] {
        if !(doc.issuer.starts_with("https://") || doc.issuer.starts_with("http://"))
            || !(doc.jwks_uri.starts_with("https://") || doc.jwks_uri.starts_with("http://"))
        {
            return Err(KeyError::Invalid(what));
        }
    }
    let token_endpoint = v2
        .token_endpoint
        .filter(|t| t.starts_with("https://") || t.starts_with("http://"))
        .ok_or(KeyError::Invalid("discovery document (token_endpoint)"))?;
    Ok(TenantMetadata {
        issuer_v2: v2.issuer,
        issuer_v1: v1.issuer,
        jwks_uri: v2.jwks_uri,
        token_endpoint,
    })
}

/// GET a JSON document with a total timeout, mapping every failure to a [`KeyError`].
pub(crate) async fn fetch_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    what: &'static str,
    timeout: Duration,
) -> Result<T, KeyError> {
    let fut = async {
        let resp = http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| KeyError::Unreachable(describe(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(KeyError::Status {
                what,
                status: status.as_u16(),
            });
        }
        let body = read_capped(resp, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge => KeyError::Invalid(what),
                BodyError::Transport(e) => KeyError::Unreachable(describe(&e)),
            })?;
        serde_json::from_slice(&body).map_err(|_| KeyError::Invalid(what))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(KeyError::Unreachable(format!("{what}: timed out"))),
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    }
}
