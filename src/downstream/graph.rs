//! [`GraphClient`]: the [`DownstreamClient`] for Microsoft Graph, and the signed-in
//! user's profile.

use std::ops::Deref;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::{DownstreamClient, RetryPolicy};
use super::error::DownstreamError;
use crate::secret::BearerToken;

/// Microsoft Graph in the global cloud. National clouds have their own hosts, e.g.
/// `https://graph.microsoft.us`, `https://dod-graph.microsoft.us`,
/// `https://microsoftgraph.chinacloudapi.cn` (OpenID discovery's `msgraph_host`).
pub const DEFAULT_GRAPH_URL: &str = "https://graph.microsoft.com";

/// Where the clients handed to handlers point; built and validated once by the
/// configuration builder (both `https://`, or `http://` on loopback, without a
/// trailing slash).
#[derive(Debug, Clone)]
pub(crate) struct DownstreamSettings {
    /// The Microsoft Graph root; requests go to `{graph_url}/v1.0/…`.
    pub(crate) graph_url: String,
    /// The authority host a relayed claims challenge sends the caller to.
    pub(crate) authority: String,
}

/// A client for Microsoft Graph v1.0, calling it with a user's On-Behalf-Of token.
///
/// Derefs to [`DownstreamClient`] for everything else (`get`, `post`, `paged`,
/// `batch`, …), with paths relative to `{graph_url}/v1.0`.
///
/// ```no_run
/// use axum_obo::downstream::{DownstreamError, GraphClient, DEFAULT_GRAPH_URL};
/// use axum_obo::secret::BearerToken;
///
/// # async fn run(http: reqwest::Client, token: BearerToken) -> Result<(), DownstreamError> {
/// // `token`: e.g. `OboToken::<GraphUserRead>::access_token()`.
/// let graph = GraphClient::new(http, DEFAULT_GRAPH_URL, token)?;
/// let me = graph.me().await?;
/// println!("{}", me.display_name.as_deref().unwrap_or("?"));
/// let manager: serde_json::Value = graph.get("me/manager?$select=displayName").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct GraphClient {
    client: DownstreamClient,
}

impl GraphClient {
    /// A Graph client for `graph_url` (e.g. [`DEFAULT_GRAPH_URL`]; a bare host such
    /// as discovery's `msgraph_host` means `https://{host}`). The base is
    /// `{graph_url}/v1.0`, unless `graph_url` already ends with `/v1.0` or `/beta`.
    ///
    /// Fails like [`DownstreamClient::new`] for a URL that is not `https` (or `http`
    /// on loopback).
    pub fn new(
        http: reqwest::Client,
        graph_url: &str,
        token: BearerToken,
    ) -> Result<Self, DownstreamError> {
        Ok(Self {
            client: DownstreamClient::new(http, &graph_base(graph_url), token)?,
        })
    }

    /// This client with another token (same base, policy and limits).
    pub(crate) fn with_token(self, token: BearerToken) -> Self {
        Self {
            client: self.client.with_token(token),
        }
    }

    /// This client answering claims challenges with `renew`.
    pub(crate) fn with_renewal(self, renew: std::sync::Arc<dyn super::renew::Renew>) -> Self {
        Self {
            client: self.client.with_renewal(renew),
        }
    }

    /// Sets how throttled calls are retried.
    #[must_use]
    pub fn with_retry(self, policy: RetryPolicy) -> Self {
        Self {
            client: self.client.with_retry(policy),
        }
    }

    /// Sets how long one attempt may take (see [`DownstreamClient::with_timeout`]).
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self {
            client: self.client.with_timeout(timeout),
        }
    }

    /// Sets the authority a relayed claims challenge names (see
    /// [`DownstreamClient::with_authority`]).
    #[must_use]
    pub fn with_authority(self, authority_host: &str) -> Self {
        Self {
            client: self.client.with_authority(authority_host),
        }
    }

    /// Sets how many pages a paged stream follows (see
    /// [`DownstreamClient::with_max_pages`]).
    #[must_use]
    pub fn with_max_pages(self, max_pages: usize) -> Self {
        Self {
            client: self.client.with_max_pages(max_pages),
        }
    }

    /// Sets the largest response body read (see
    /// [`DownstreamClient::with_max_body_bytes`]).
    #[must_use]
    pub fn with_max_body_bytes(self, max_body_bytes: usize) -> Self {
        Self {
            client: self.client.with_max_body_bytes(max_body_bytes),
        }
    }

    /// The signed-in user's profile, `GET /me` (needs `User.Read`).
    pub async fn me(&self) -> Result<GraphUser, DownstreamError> {
        self.client.get("me").await
    }

    /// The underlying client.
    pub fn downstream(&self) -> &DownstreamClient {
        &self.client
    }

    /// Unwraps the underlying client.
    pub fn into_downstream(self) -> DownstreamClient {
        self.client
    }
}

impl Deref for GraphClient {
    type Target = DownstreamClient;

    fn deref(&self) -> &DownstreamClient {
        &self.client
    }
}

/// `{graph_url}/v1.0`, with `https://` added to a bare host.
fn graph_base(graph_url: &str) -> String {
    let url = graph_url.trim().trim_end_matches('/');
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("https://{url}")
    };
    if url.ends_with("/v1.0") || url.ends_with("/beta") {
        url
    } else {
        format!("{url}/v1.0")
    }
}

/// A Graph `user`: the properties `GET /me` returns by default; anything else (such
/// as `@odata.context`, or properties chosen with `$select`) is in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphUser {
    /// The object id (the `oid` of the user's tokens).
    pub id: Option<String>,
    /// The name displayed in the address book.
    pub display_name: Option<String>,
    /// The first name.
    pub given_name: Option<String>,
    /// The last name.
    pub surname: Option<String>,
    /// The user principal name (`alias@contoso.com`).
    pub user_principal_name: Option<String>,
    /// The primary SMTP address.
    pub mail: Option<String>,
    /// The job title.
    pub job_title: Option<String>,
    /// The office location.
    pub office_location: Option<String>,
    /// The mobile phone number.
    pub mobile_phone: Option<String>,
    /// Business phone numbers.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub business_phones: Vec<String>,
    /// The preferred language (`en-US`).
    pub preferred_language: Option<String>,
    /// Every other property of the answer.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_urls() {
        assert_eq!(
            graph_base(DEFAULT_GRAPH_URL),
            "https://graph.microsoft.com/v1.0"
        );
        assert_eq!(
            graph_base("graph.microsoft.us/"),
            "https://graph.microsoft.us/v1.0"
        );
        assert_eq!(
            graph_base("https://graph.microsoft.com/beta"),
            "https://graph.microsoft.com/beta"
        );
        assert_eq!(
            graph_base("http://127.0.0.1:9/v1.0"),
            "http://127.0.0.1:9/v1.0"
        );
        let http = reqwest::Client::new();
        assert!(
            GraphClient::new(http.clone(), "graph.microsoft.com", BearerToken::new("t")).is_ok()
        );
        assert!(matches!(
            GraphClient::new(http, "http://graph.microsoft.com", BearerToken::new("t")),
            Err(DownstreamError::InvalidRequest(_))
        ));
    }

    #[test]
    fn user_shape() {
        let u: GraphUser = serde_json::from_str(
            r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                "businessPhones":null,"displayName":"Megan Bowen","givenName":"Megan",
                "jobTitle":null,"mail":"MeganB@contoso.com","mobilePhone":null,
                "officeLocation":"12/1110","preferredLanguage":"en-US","surname":"Bowen",
                "userPrincipalName":"MeganB@contoso.com","id":"48d31887-5fad-4d73-a9f5-3c356e68a038",
                "department":"Marketing"}"#,
        )
        .unwrap();
        assert_eq!(u.display_name.as_deref(), Some("Megan Bowen"));
        assert!(u.business_phones.is_empty());
        assert_eq!(u.job_title, None);
        assert_eq!(u.other["department"], "Marketing");
        assert!(u.other.contains_key("@odata.context"));
        assert!(!u.other.contains_key("displayName"));
        let back = serde_json::to_value(&u).unwrap();
        assert_eq!(back["userPrincipalName"], "MeganB@contoso.com");
    }
}
