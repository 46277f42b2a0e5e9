//! Start-up: the library's configuration from the container's settings (or the
//! embedded stand-ins), and embedded mode's demo.

use std::collections::BTreeMap;

use axum_obo::credential::ManagedIdentity;
use axum_obo::{OboConfig, OboConfigBuilder, OboLayer};
use axum_obo_testing::Harness;

use crate::metrics::{self, Exposure};
use crate::settings::{Credential, DownstreamApi, Settings, SettingsError};
use crate::Sidecar;

/// Embedded mode's stand-ins and demo identities (kept alive while serving).
#[derive(Debug)]
pub struct Embedded {
    /// The Entra and Graph stand-ins.
    pub harness: Harness,
    /// A demo agent identity of the API's blueprint.
    pub agent: String,
    /// The UPN of one of its agent users.
    pub agent_user_upn: String,
    /// The object id of that agent user.
    pub agent_user_oid: String,
}

impl Embedded {
    /// A user token for the authenticated routes (audience: the sidecar).
    pub fn user_token(&self) -> String {
        self.harness
            .entra()
            .token()
            .claim("name", serde_json::json!("Adele Vance"))
            .claim(
                "preferred_username",
                serde_json::json!("adele@contoso.example"),
            )
            .sign()
    }
}

/// The library's configuration read as its `from_env` does, with the
/// `AzureAd` values standing in for `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
/// `AZURE_AUTHORITY_HOST`; the crate's own `OBO_*` settings from the process
/// environment.
fn obo_settings(ad: &crate::settings::AzureAd) -> Result<OboConfigBuilder, SettingsError> {
    OboConfigBuilder::from_lookup(|name| match name {
        "AZURE_TENANT_ID" => Some(ad.tenant_id.clone()),
        "AZURE_CLIENT_ID" => Some(ad.client_id.clone()),
        "AZURE_AUTHORITY_HOST" => ad
            .instance
            .as_ref()
            .map(|i| i.trim_end_matches('/').to_owned()),
        n if n.starts_with("OBO_") => std::env::var(n).ok(),
        _ => None,
    })
    .map_err(|e| SettingsError {
        setting: setting_of(e.field()),
        reason: e.reason().to_owned(),
    })
}

/// The environment variable behind a library configuration field.
fn setting_of(field: &str) -> String {
    match field {
        "tenant_id" => "AzureAd__TenantId".into(),
        "client_id" => "AzureAd__ClientId".into(),
        "authority_host" => "AzureAd__Instance".into(),
        f if f.contains("credential")
            || f.contains("certificate")
            || f.contains("secret")
            || f.contains("federated")
            || f.contains("managed") =>
        {
            "AzureAd__ClientCredentials__0".into()
        }
        other if other.starts_with("obo_") => other.to_ascii_uppercase(),
        other => other.into(),
    }
}

/// The sidecar of `settings`: on Entra (with `AzureAd`), or embedded. Unless
/// `settings.metrics` is [`Exposure::Off`], the process's Prometheus recorder
/// is installed (once per process) and, for [`Exposure::SamePort`], served at
/// `GET /metrics`.
pub async fn build(settings: &Settings) -> Result<(Sidecar, Option<Embedded>), SettingsError> {
    let mut allow = settings.allow_overrides;
    let (config, apis, embedded) = match &settings.azure_ad {
        Some(ad) => {
            let b = obo_settings(ad)?.allow_app_only(true);
            let b = match &ad.credential {
                Credential::Secret(s) => b.client_secret(s.clone()),
                Credential::CertificatePath(p) => b.client_certificate_file(p),
                Credential::SignedAssertionFile(p) => b.federated_token_file(p),
                Credential::ManagedIdentity(None) => {
                    b.managed_identity(ManagedIdentity::SystemAssigned)
                }
                Credential::ManagedIdentity(Some(id)) => {
                    b.managed_identity(ManagedIdentity::UserAssigned {
                        client_id: id.clone(),
                    })
                }
            };
            (b, settings.apis.clone(), None)
        }
        None => {
            let harness = Harness::start().await;
            let entra = harness.entra();
            let agent = entra.add_agent_identity();
            let upn = "agent-user@contoso.example".to_owned();
            let oid = entra.add_agent_user(&agent, &upn);
            let graph = format!("{}/v1.0", harness.graph().url());
            let mut apis = BTreeMap::new();
            apis.insert(
                "graph".to_owned(),
                DownstreamApi {
                    base_url: Some(graph.clone()),
                    relative_path: Some("me".into()),
                    scopes: vec!["User.Read".into()],
                    ..Default::default()
                },
            );
            // The service name Microsoft's adapters use by default.
            apis.insert(
                "default".to_owned(),
                DownstreamApi {
                    base_url: Some(graph.clone()),
                    scopes: vec!["https://graph.microsoft.com/.default".into()],
                    ..Default::default()
                },
            );
            apis.insert(
                "graphapp".to_owned(),
                DownstreamApi {
                    base_url: Some(graph),
                    scopes: vec!["https://graph.microsoft.com/.default".into()],
                    request_app_token: true,
                    ..Default::default()
                },
            );
            // Configured APIs come on top of the demo ones.
            apis.extend(settings.apis.clone());
            if !settings.allow_overrides_set {
                // Microsoft's adapter sends the agent parameters to the
                // unauthenticated route: the demo honours them there.
                allow.get_authorization_header_unauthenticated = true;
                allow.call_downstream_api_unauthenticated = true;
            }
            let b = harness.config().allow_app_only(true);
            let embedded = Embedded {
                harness,
                agent,
                agent_user_upn: upn,
                agent_user_oid: oid,
            };
            (b, apis, Some(embedded))
        }
    };
    let config: OboConfig = config.build().map_err(|e| SettingsError {
        setting: setting_of(e.field()),
        reason: e.reason().to_owned(),
    })?;
    let tenant = config.tenant_id().to_owned();
    // The recorder before the layer, so that it sees the keys' first fetch.
    let prometheus = match settings.metrics {
        Exposure::Off => None,
        _ => Some(metrics::install().map_err(|reason| SettingsError {
            setting: "OBO_METRICS_LISTEN".into(),
            reason,
        })?),
    };
    let layer = OboLayer::new(config);
    let scopes = settings
        .azure_ad
        .as_ref()
        .map(|a| a.scopes.clone())
        .unwrap_or_default();
    let sidecar = Sidecar::new(
        layer,
        &tenant,
        apis,
        allow,
        settings.allow_outbound_redirects,
        scopes,
    );
    // On the sidecar's port; `main` serves a listener of its own.
    let sidecar = match prometheus {
        Some(handle) if settings.metrics == Exposure::SamePort => sidecar.with_metrics(handle),
        _ => sidecar,
    };
    Ok((sidecar, embedded))
}

/// Embedded mode's demo identities as JSON (`AXUM_OBO_SIDECAR_DEMO_FILE`):
/// the sidecar's URL, the stand-in tenant, the demo agent and its agent user.
pub fn demo_json(base: &str, e: &Embedded) -> String {
    serde_json::json!({
        "url": base,
        "tenant": e.harness.entra().home_tenant(),
        "agent": e.agent,
        "agentUserUpn": e.agent_user_upn,
        "agentUserOid": e.agent_user_oid,
    })
    .to_string()
}

/// `n` stand-in tokens of distinct users, one a line (load benchmarks).
pub fn user_tokens(e: &Embedded, n: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let oid = format!("00000000-0000-4000-8000-{i:012x}");
        out.push_str(&e.harness.entra().token().user(&oid).sign());
        out.push('\n');
    }
    out
}

/// Embedded mode's banner: working `curl` lines and a Python snippet using
/// Microsoft's adapter. The printed user token is a stand-in's (worthless
/// outside this process).
pub fn banner(base: &str, e: &Embedded) -> String {
    let token = e.user_token();
    format!(
        r#"axum-obo-sidecar: embedded mode (no AzureAd__ClientId): Entra and Graph stand-ins, demo APIs `graph` (On-Behalf-Of, User.Read) and `graphApp` (app-only).

  curl {base}/healthz
  TOKEN={token}
  curl -H "Authorization: Bearer $TOKEN" {base}/Validate
  curl -H "Authorization: Bearer $TOKEN" {base}/AuthorizationHeader/graph
  curl -X POST -H "Authorization: Bearer $TOKEN" {base}/DownstreamApi/graph
  curl {base}/AuthorizationHeaderUnauthenticated/graphApp
  curl "{base}/AuthorizationHeaderUnauthenticated/graphApp?AgentIdentity={agent}"
  curl "{base}/AuthorizationHeaderUnauthenticated/graph?AgentIdentity={agent}&AgentUsername={upn}"

Python, with Microsoft's adapter (pip install microsoft-agents-authentication-entra-auth-sidecar):

  import asyncio
  from microsoft_agents.authentication.entra_auth_sidecar import SidecarAuth

  async def main():
      auth = SidecarAuth({{"SIDECAR_BASE_URL": "{base}", "SCOPES": ["https://graph.microsoft.com/.default"]}})
      print(await auth.is_healthy())
      print((await auth.get_access_token("https://graph.microsoft.com", ["https://graph.microsoft.com/.default"]))[:20], "...")
      token, _ = await auth.get_agentic_instance_token("{tenant}", "{agent}")
      user = await auth.get_agentic_user_token("{tenant}", "{agent}", "{upn}", ["User.Read"])  # or the object id {oid}
      await auth.close()

  asyncio.run(main())
"#,
        tenant = e.harness.entra().home_tenant(),
        agent = e.agent,
        upn = e.agent_user_upn,
        oid = e.agent_user_oid,
    )
}
