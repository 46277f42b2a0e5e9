//! National-cloud facts that follow from the advertised authority host.
//!
//! Anything that is not a known sovereign-cloud host (including the loopback URL) gets the
//! values of the public cloud, `login.microsoftonline.com`.

use serde_json::{json, Value};

/// The consumer (Microsoft account) tenant id.
pub(super) const CONSUMERS_TENANT_ID: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

/// Per-cloud names Entra puts in its metadata and in v1 issuers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cloud {
    /// `cloud_instance_name`.
    pub(super) instance_name: &'static str,
    /// `cloud_graph_host_name` (Azure AD Graph).
    pub(super) graph_host: &'static str,
    /// `msgraph_host`.
    pub(super) msgraph_host: &'static str,
    /// `rbac_url`.
    pub(super) rbac_url: &'static str,
    /// Scheme and host of v1 issuers (`{v1_issuer_host}/{tid}/`).
    pub(super) v1_issuer_host: &'static str,
    /// The audience of tokens exchanged as federated credentials.
    pub(super) token_exchange_audience: &'static str,
}

const PUBLIC: Cloud = Cloud {
    instance_name: "microsoftonline.com",
    graph_host: "graph.windows.net",
    msgraph_host: "graph.microsoft.com",
    rbac_url: "https://pas.windows.net",
    v1_issuer_host: "https://sts.windows.net",
    token_exchange_audience: "api://AzureADTokenExchange",
};

const US_GOVERNMENT: Cloud = Cloud {
    instance_name: "microsoftonline.us",
    graph_host: "graph.windows.net",
    msgraph_host: "graph.microsoft.us",
    rbac_url: "https://pasff.usgovcloudapi.net",
    v1_issuer_host: "https://login.microsoftonline.us",
    token_exchange_audience: "api://AzureADTokenExchangeUSGov",
};

const CHINA: Cloud = Cloud {
    instance_name: "partner.microsoftonline.cn",
    graph_host: "graph.chinacloudapi.cn",
    msgraph_host: "microsoftgraph.chinacloudapi.cn",
    rbac_url: "https://pas.chinacloudapi.cn",
    v1_issuer_host: "https://sts.chinacloudapi.cn",
    token_exchange_audience: "api://AzureADTokenExchangeChina",
};

impl Cloud {
    /// The cloud an advertised authority URL (`https://host[:port]`) belongs to.
    pub(super) fn for_authority(authority: &str) -> Cloud {
        match host_of(authority).to_ascii_lowercase().as_str() {
            "login.microsoftonline.us" | "login.usgovcloudapi.net" => US_GOVERNMENT,
            "login.chinacloudapi.cn" | "login.partner.microsoftonline.cn" => CHINA,
            _ => PUBLIC,
        }
    }
}

/// The `host[:port]` of an absolute URL (`scheme://host[:port]/path…`).
pub(super) fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// The `metadata` list of Entra's instance-discovery answer (known hosts and their aliases),
/// with an extra entry for `own_host` when it is not one of them (the loopback stand-in).
pub(super) fn instance_metadata(own_host: &str) -> Vec<Value> {
    let mut metadata = vec![
        json!({
            "preferred_network": "login.microsoftonline.com",
            "preferred_cache": "login.windows.net",
            "aliases": ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"],
        }),
        json!({
            "preferred_network": "login.partner.microsoftonline.cn",
            "preferred_cache": "login.partner.microsoftonline.cn",
            "aliases": ["login.partner.microsoftonline.cn", "login.chinacloudapi.cn"],
        }),
        json!({
            "preferred_network": "login.microsoftonline.de",
            "preferred_cache": "login.microsoftonline.de",
            "aliases": ["login.microsoftonline.de"],
        }),
        json!({
            "preferred_network": "login.microsoftonline.us",
            "preferred_cache": "login.microsoftonline.us",
            "aliases": ["login.microsoftonline.us", "login.usgovcloudapi.net"],
        }),
        json!({
            "preferred_network": "login-us.microsoftonline.com",
            "preferred_cache": "login-us.microsoftonline.com",
            "aliases": ["login-us.microsoftonline.com"],
        }),
    ];
    if !is_known_host(&metadata, own_host) {
        metadata.insert(
            0,
            json!({
                "preferred_network": own_host,
                "preferred_cache": own_host,
                "aliases": [own_host],
            }),
        );
    }
    metadata
}

/// Whether `host` is an alias in `metadata`.
pub(super) fn is_known_host(metadata: &[Value], host: &str) -> bool {
    metadata.iter().any(|entry| {
        entry["aliases"]
            .as_array()
            .is_some_and(|aliases| aliases.iter().any(|a| a.as_str() == Some(host)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_follow_the_host() {
        assert_eq!(Cloud::for_authority("http://127.0.0.1:3000"), PUBLIC);
        assert_eq!(
            Cloud::for_authority("https://login.microsoftonline.com"),
            PUBLIC
        );
        assert_eq!(
            Cloud::for_authority("https://login.microsoftonline.us/"),
            US_GOVERNMENT
        );
        assert_eq!(
            Cloud::for_authority("https://login.chinacloudapi.cn"),
            CHINA
        );
        assert_eq!(host_of("https://a.b:1/c/d?e"), "a.b:1");
        assert_eq!(host_of("a.b"), "a.b");
    }

    #[test]
    fn own_host_is_added_once() {
        assert_eq!(instance_metadata("login.microsoftonline.com").len(), 5);
        let local = instance_metadata("127.0.0.1:9");
        assert_eq!(local.len(), 6);
        assert!(is_known_host(&local, "127.0.0.1:9"));
    }
}
