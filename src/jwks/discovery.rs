//! OIDC discovery documents (v2 and v1) of one tenant.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::KeyError;
use crate::http::{failure_kind, read_capped, BodyError, MAX_DOCUMENT_BYTES};

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
    #[serde(default)]
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
    let authority = Url::parse(authority).map_err(|_| KeyError::Invalid("authority host"))?;
    for (doc, what) in [(&v2, "discovery document"), (&v1, "v1 discovery document")] {
        if !issuer_names_tenant(&doc.issuer, tenant) {
            return Err(KeyError::Invalid(what));
        }
    }
    // Only the v2 document's key set is fetched (it holds the v1 keys too).
    if !on_authority(&authority, &v2.jwks_uri) {
        return Err(KeyError::Invalid("discovery document (jwks_uri)"));
    }
    let token_endpoint = v2
        .token_endpoint
        .filter(|t| on_authority(&authority, t))
        .ok_or(KeyError::Invalid("discovery document (token_endpoint)"))?;
    Ok(TenantMetadata {
        issuer_v2: v2.issuer,
        issuer_v1: v1.issuer,
        jwks_uri: v2.jwks_uri,
        token_endpoint,
    })
}

/// Whether a discovered URL may be trusted: `https` (plain `http` only when the
/// authority itself is, which the configuration allows on loopback only) on the
/// authority's host and port. Discovery must not send us to fetch keys elsewhere.
fn on_authority(authority: &Url, discovered: &str) -> bool {
    let Ok(url) = Url::parse(discovered) else {
        return false;
    };
    let scheme_ok = url.scheme() == "https" || url.scheme() == authority.scheme();
    scheme_ok
        && url.host() == authority.host()
        && url.port_or_known_default() == authority.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
}

/// Whether a discovered issuer names `tenant` (or the `{tenantid}` template) as
/// its tenant segment.
fn issuer_names_tenant(issuer: &str, tenant: &str) -> bool {
    (issuer.starts_with("https://") || issuer.starts_with("http://"))
        && issuer_tenant(issuer)
            .is_some_and(|t| t.eq_ignore_ascii_case(tenant) || t == "{tenantid}")
}

/// The tenant segment of an Entra issuer: the first path segment
/// (`https://host/{tid}/v2.0`, `https://sts.windows.net/{tid}/`).
pub(crate) fn issuer_tenant(iss: &str) -> Option<&str> {
    let rest = iss.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    path.split('/').next().filter(|s| !s.is_empty())
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
            .map_err(|e| KeyError::Unreachable(failure_kind(&e).to_owned()))?;
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
                BodyError::Transport(e) => KeyError::Unreachable(failure_kind(&e).to_owned()),
            })?;
        serde_json::from_slice(&body).map_err(|_| KeyError::Invalid(what))
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(KeyError::Unreachable(format!("{what}: timed out"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn issuer_tenant_segment() {
        assert_eq!(
            issuer_tenant(&format!("https://login.microsoftonline.com/{T}/v2.0")),
            Some(T)
        );
        assert_eq!(
            issuer_tenant(&format!("https://sts.windows.net/{T}/")),
            Some(T)
        );
        assert_eq!(issuer_tenant("https://sts.windows.net/"), None);
        assert_eq!(issuer_tenant("nonsense"), None);
    }

    #[test]
    fn discovered_issuers_must_name_the_tenant() {
        for ok in [
            format!("https://login.microsoftonline.com/{T}/v2.0"),
            format!("https://sts.windows.net/{}/", T.to_uppercase()),
            "https://login.microsoftonline.com/{tenantid}/v2.0".to_owned(),
        ] {
            assert!(issuer_names_tenant(&ok, T), "{ok}");
        }
        for bad in [
            "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0",
            "https://login.microsoftonline.com/common/v2.0",
            "https://login.microsoftonline.com/",
            "ftp://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
        ] {
            assert!(!issuer_names_tenant(bad, T), "{bad}");
        }
    }

    #[test]
    fn discovered_urls_stay_on_the_authority() {
        let public = Url::parse("https://login.microsoftonline.com").unwrap();
        let ok = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
        assert!(on_authority(&public, ok));
        assert!(on_authority(
            &public,
            "https://LOGIN.microsoftonline.com:443/x"
        ));
        for bad in [
            "http://login.microsoftonline.com/keys",
            "https://evil.example/keys",
            "https://login.microsoftonline.com.evil.example/keys",
            "https://login.microsoftonline.com:8443/keys",
            "https://u:p@login.microsoftonline.com/keys",
            "/relative/keys",
        ] {
            assert!(!on_authority(&public, bad), "{bad}");
        }
        let loopback = Url::parse("http://127.0.0.1:4000").unwrap();
        assert!(on_authority(
            &loopback,
            "http://127.0.0.1:4000/t/discovery/v2.0/keys"
        ));
        assert!(!on_authority(&loopback, "http://127.0.0.1:4001/keys"));
        assert!(!on_authority(&loopback, "http://localhost:4000/keys"));
    }
}
