//! The managed-identity credential's configuration: the builder methods, the
//! variables `from_lookup` reads (`OBO_MANAGED_IDENTITY`, and `IDENTITY_ENDPOINT` /
//! `IDENTITY_HEADER` to locate the endpoint as on Azure), and its checks at build.

use std::time::Duration;

use super::builder::{CredentialSpec, OboConfigBuilder};
use super::checks::normalize_guid;
use super::error::ConfigError;
use crate::credential::{
    token_exchange_audience, ClientCredential, IdentityEndpoint, ManagedIdentity,
    ManagedIdentityAssertion,
};
use crate::secret::SecretString;

/// Where the identity endpoint is, as configured.
#[derive(Clone, Debug, Default)]
pub(super) enum EndpointSpec {
    /// Not given: `IDENTITY_ENDPOINT` / `IDENTITY_HEADER` of the process
    /// environment, read at build, else IMDS.
    #[default]
    FromProcess,
    /// App Service / Container Apps shape, given explicitly.
    AppService { url: String, header: SecretString },
    /// IMDS (the lookup had no `IDENTITY_ENDPOINT`).
    Imds,
}

/// The managed-identity settings besides the identity itself.
#[derive(Clone, Debug, Default)]
pub(super) struct ManagedIdentitySpec {
    pub(super) endpoint: EndpointSpec,
    pub(super) audience: Option<String>,
}

impl OboConfigBuilder {
    /// Uses a managed identity as the client credential: its token for the
    /// token-exchange audience (see
    /// [`managed_identity_audience`](Self::managed_identity_audience)) is sent as the
    /// `client_assertion` of every exchange. The app registration must trust the
    /// identity through a federated identity credential (issuer
    /// `https://login.microsoftonline.com/{tenant}/v2.0`, subject the identity's
    /// object id). The token is cached until 5 minutes before it expires.
    ///
    /// The identity endpoint is located as on Azure: `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER` (App Service, Container Apps, Functions), else IMDS (VMs),
    /// unless set with [`managed_identity_endpoint`](Self::managed_identity_endpoint).
    pub fn managed_identity(mut self, identity: ManagedIdentity) -> Self {
        self.forget_credential_origin();
        self.credential = Some(CredentialSpec::ManagedIdentity(identity));
        self
    }

    /// The App Service-shaped identity endpoint (`IDENTITY_ENDPOINT`) and the secret
    /// it demands in `X-IDENTITY-HEADER` (`IDENTITY_HEADER`), instead of reading them
    /// from the process environment. `http://` is accepted on loopback and
    /// link-local (`169.254.0.0/16`) hosts only.
    pub fn managed_identity_endpoint(
        mut self,
        endpoint: impl Into<String>,
        header: impl Into<String>,
    ) -> Self {
        self.forget_origin("managed_identity_endpoint");
        self.managed_identity.endpoint = EndpointSpec::AppService {
            url: endpoint.into(),
            header: SecretString::new(header.into()),
        };
        self
    }

    /// The audience of the managed identity's token (default: by the authority
    /// host's cloud, `api://AzureADTokenExchange`, `api://AzureADTokenExchangeUSGov`
    /// for `login.microsoftonline.us`, `api://AzureADTokenExchangeChina` for
    /// `login.chinacloudapi.cn`). It must match the federated credential's audience.
    pub fn managed_identity_audience(mut self, audience: impl Into<String>) -> Self {
        self.managed_identity.audience = Some(audience.into());
        self
    }

    /// `OBO_MANAGED_IDENTITY` (`system` or a user-assigned identity's client id) and
    /// the endpoint variables, through the lookup.
    pub(super) fn read_managed_identity(self, get: &dyn Fn(&str) -> Option<String>) -> Self {
        let Some(value) = get("OBO_MANAGED_IDENTITY") else {
            return self;
        };
        let value = value.trim();
        let identity = if value.eq_ignore_ascii_case("system") {
            ManagedIdentity::SystemAssigned
        } else {
            ManagedIdentity::UserAssigned {
                client_id: value.to_owned(),
            }
        };
        let mut b = self
            .managed_identity(identity)
            .came_from("managed_identity", "OBO_MANAGED_IDENTITY");
        b.managed_identity.endpoint = match get("IDENTITY_ENDPOINT") {
            Some(url) => EndpointSpec::AppService {
                url,
                header: SecretString::new(get("IDENTITY_HEADER").unwrap_or_default()),
            },
            None => EndpointSpec::Imds,
        };
        b.came_from("managed_identity_endpoint", "IDENTITY_ENDPOINT")
    }
}

/// The checked managed-identity credential, using the layer's HTTP client.
pub(super) fn build_managed_identity(
    identity: ManagedIdentity,
    spec: ManagedIdentitySpec,
    authority: &str,
    http: &reqwest::Client,
    timeout: Duration,
) -> Result<ClientCredential, ConfigError> {
    let identity = match identity {
        ManagedIdentity::UserAssigned { client_id } => ManagedIdentity::UserAssigned {
            client_id: normalize_guid("managed_identity", Some(&client_id)).map_err(|_| {
                ConfigError::new(
                    "managed_identity",
                    "must be `system` or the client id (a GUID) of a user-assigned identity",
                )
            })?,
        },
        other => other,
    };
    let audience = match spec.audience {
        Some(a) if a.trim().is_empty() || a.trim().contains(char::is_whitespace) => {
            return Err(ConfigError::new(
                "managed_identity_audience",
                "must be a single non-empty value such as api://AzureADTokenExchange",
            ));
        }
        Some(a) => a.trim().to_owned(),
        None => token_exchange_audience(authority).to_owned(),
    };
    let endpoint = match spec.endpoint {
        EndpointSpec::FromProcess => match std::env::var("IDENTITY_ENDPOINT") {
            Ok(url) if !url.trim().is_empty() => {
                app_service(&url, std::env::var("IDENTITY_HEADER").unwrap_or_default())?
            }
            _ => IdentityEndpoint::Imds,
        },
        EndpointSpec::AppService { url, header } => app_service(&url, header.expose().to_owned())?,
        EndpointSpec::Imds => IdentityEndpoint::Imds,
    };
    Ok(ClientCredential::ManagedIdentity(
        ManagedIdentityAssertion::new(http.clone(), endpoint, identity, audience, timeout),
    ))
}

/// An App Service endpoint: a URL (https, or http on loopback / link-local hosts,
/// where the platform serves it) and a non-empty header secret.
fn app_service(url: &str, header: String) -> Result<IdentityEndpoint, ConfigError> {
    const FIELD: &str = "managed_identity_endpoint";
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| ConfigError::new(FIELD, format!("is not a URL ({e})")))?;
    let local = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        _ => crate::http::is_loopback(&parsed),
    };
    let scheme_ok = parsed.scheme() == "https" || (parsed.scheme() == "http" && local);
    if !scheme_ok || parsed.host().is_none() {
        return Err(ConfigError::new(
            FIELD,
            "must be https://, or http:// on a loopback or link-local host",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.fragment().is_some() {
        return Err(ConfigError::new(
            FIELD,
            "must not hold credentials or a fragment",
        ));
    }
    if header.trim().is_empty() {
        return Err(ConfigError::new(
            FIELD,
            "needs the identity header secret (IDENTITY_HEADER)",
        ));
    }
    Ok(IdentityEndpoint::AppService {
        url: parsed,
        header: SecretString::new(header.trim()),
    })
}
