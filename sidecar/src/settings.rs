//! The sidecar's configuration, read as Microsoft's container reads its own:
//! the `AzureAd`, `DownstreamApis` and `Sidecar` sections of `appsettings.json`
//! in the working directory, overridden by the environment in ASP.NET Core's
//! shape (`AzureAd__TenantId`, `DownstreamApis__graph__Scopes__0`, …; keys are
//! case-insensitive). The crate's own settings keep their `OBO_*` names.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::Value;

/// A configuration the sidecar cannot start with; names the setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The setting, in the environment's spelling (e.g. `AzureAd__TenantId`).
    pub setting: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.setting, self.reason)
    }
}

impl std::error::Error for SettingsError {}

fn err(setting: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError {
        setting: setting.replace(':', "__"),
        reason: reason.into(),
    }
}

/// How the sidecar authenticates at Entra (`AzureAd:ClientCredentials`).
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// `SourceType` = `ClientSecret`.
    Secret(String),
    /// `SourceType` = `Path`: a PEM with the certificate and its key.
    CertificatePath(String),
    /// `SourceType` = `SignedAssertionFilePath`: a federated token file.
    SignedAssertionFile(String),
    /// `SourceType` = `SignedAssertionFromManagedIdentity`, with the
    /// user-assigned identity's client id (none: system-assigned).
    ManagedIdentity(Option<String>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("ClientSecret(<redacted>)"),
            Credential::CertificatePath(p) => write!(f, "Path({p})"),
            Credential::SignedAssertionFile(p) => write!(f, "SignedAssertionFilePath({p})"),
            Credential::ManagedIdentity(id) => {
                write!(f, "SignedAssertionFromManagedIdentity({id:?})")
            }
        }
    }
}

/// The `AzureAd` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureAd {
    /// `Instance`, e.g. `https://login.microsoftonline.com/`.
    pub instance: Option<String>,
    /// `TenantId` (a GUID).
    pub tenant_id: String,
    /// `ClientId` (a GUID).
    pub client_id: String,
    /// `Scopes`: scopes `/Validate` requires (any of them), space-separated.
    pub scopes: Vec<String>,
    /// The first of `ClientCredentials`.
    pub credential: Credential,
}

/// One of the `DownstreamApis`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DownstreamApi {
    /// `BaseUrl`.
    pub base_url: Option<String>,
    /// `RelativePath`.
    pub relative_path: Option<String>,
    /// `Scopes` (a list, or one space-separated string).
    pub scopes: Vec<String>,
    /// `RequestAppToken`.
    pub request_app_token: bool,
    /// `HttpMethod` (default `GET`).
    pub http_method: Option<String>,
}

/// `Sidecar:AllowOverrides`: whether `optionsOverride.*` and the agent parameters
/// are honoured, per route (Microsoft's defaults: on for the authenticated
/// routes, off for the unauthenticated ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowOverrides {
    /// `GetAuthorizationHeader`.
    pub get_authorization_header: bool,
    /// `GetAuthorizationHeaderUnauthenticated`.
    pub get_authorization_header_unauthenticated: bool,
    /// `CallDownstreamApi`.
    pub call_downstream_api: bool,
    /// `CallDownstreamApiUnauthenticated`.
    pub call_downstream_api_unauthenticated: bool,
}

impl Default for AllowOverrides {
    fn default() -> Self {
        Self {
            get_authorization_header: true,
            get_authorization_header_unauthenticated: false,
            call_downstream_api: true,
            call_downstream_api_unauthenticated: false,
        }
    }
}

/// Everything the sidecar reads.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `AzureAd`; `None` (no `AzureAd:ClientId`): embedded mode, on the stand-ins.
    pub azure_ad: Option<AzureAd>,
    /// `DownstreamApis`, by name (lowercase: names are case-insensitive).
    pub apis: BTreeMap<String, DownstreamApi>,
    /// `Sidecar:AllowOverrides`, with the keys explicitly set (embedded mode
    /// turns the unauthenticated ones on unless set).
    pub allow_overrides: AllowOverrides,
    /// Whether any `Sidecar:AllowOverrides` key was set.
    pub allow_overrides_set: bool,
    /// `Sidecar:AllowOutboundRedirects` (default false).
    pub allow_outbound_redirects: bool,
    /// Where to listen: the first of `ASPNETCORE_URLS`, else `127.0.0.1:5178`.
    pub listen: SocketAddr,
    /// Where `GET /metrics` is served: `OBO_METRICS_LISTEN`.
    pub metrics: crate::metrics::Exposure,
}

/// The default port of Microsoft's adapters (`http://localhost:5178`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5178";

/// Flattened configuration: lowercase `section:key:…` → value.
type Flat = BTreeMap<String, String>;

fn flatten(prefix: &str, value: &Value, out: &mut Flat) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.to_lowercase()
                } else {
                    format!("{prefix}:{}", k.to_lowercase())
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}:{i}"), v, out);
            }
        }
        Value::Null => {}
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

fn parse_bool(flat: &Flat, key: &str) -> Result<Option<bool>, SettingsError> {
    match flat.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v == "true" => Ok(Some(true)),
        Some(v) if v == "false" => Ok(Some(false)),
        Some(_) => Err(err(key_name(key), "must be true or false")),
    }
}

fn key_name(key: &str) -> &str {
    key
}

/// The values of the list `key` (`key:0`, `key:1`, …), or of `key` itself split
/// on whitespace.
fn list(flat: &Flat, key: &str) -> Vec<String> {
    let prefix = format!("{key}:");
    let mut indexed: Vec<(usize, String)> = flat
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter_map(|(k, v)| {
            k[prefix.len()..]
                .parse::<usize>()
                .ok()
                .map(|i| (i, v.clone()))
        })
        .collect();
    indexed.sort_by_key(|(i, _)| *i);
    let mut out: Vec<String> = indexed.into_iter().map(|(_, v)| v).collect();
    if let Some(v) = flat.get(key) {
        out.extend(v.split_whitespace().map(str::to_owned));
    }
    out.retain(|s| !s.trim().is_empty());
    out
}

impl Settings {
    /// Reads `appsettings` (the JSON text of `appsettings.json`, if any) and the
    /// environment `vars` (the environment wins).
    pub fn from_sources(
        appsettings: Option<&str>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut flat = Flat::new();
        if let Some(text) = appsettings {
            let json: Value = serde_json::from_str(text)
                .map_err(|e| err("appsettings.json", format!("is not valid JSON: {e}")))?;
            flatten("", &json, &mut flat);
        }
        let mut urls = None;
        let mut metrics = None;
        for (name, value) in vars {
            if name.eq_ignore_ascii_case("ASPNETCORE_URLS") {
                urls = Some(value);
                continue;
            }
            if name == "OBO_METRICS_LISTEN" {
                metrics = Some(value);
                continue;
            }
            let key = name.replace("__", ":").to_lowercase();
            if key.starts_with("azuread:")
                || key.starts_with("downstreamapis:")
                || key.starts_with("sidecar:")
            {
                flat.insert(key, value);
            }
        }
        let listen = match urls.as_deref().and_then(|u| u.split(';').next()) {
            Some(url) if !url.trim().is_empty() => listen_addr(url.trim())?,
            _ => DEFAULT_LISTEN.parse().expect("a socket address"),
        };
        let azure_ad = azure_ad(&flat)?;
        let apis = downstream_apis(&flat)?;
        let mut allow = AllowOverrides::default();
        let mut set = false;
        for (key, slot) in [
            (
                "sidecar:allowoverrides:getauthorizationheader",
                &mut allow.get_authorization_header,
            ),
            (
                "sidecar:allowoverrides:getauthorizationheaderunauthenticated",
                &mut allow.get_authorization_header_unauthenticated,
            ),
            (
                "sidecar:allowoverrides:calldownstreamapi",
                &mut allow.call_downstream_api,
            ),
            (
                "sidecar:allowoverrides:calldownstreamapiunauthenticated",
                &mut allow.call_downstream_api_unauthenticated,
            ),
        ] {
            if let Some(b) = parse_bool(&flat, key)? {
                *slot = b;
                set = true;
            }
        }
        let redirects = parse_bool(&flat, "sidecar:allowoutboundredirects")?.unwrap_or(false);
        let metrics = crate::metrics::Exposure::parse(metrics.as_deref())
            .map_err(|reason| err("OBO_METRICS_LISTEN", reason))?;
        Ok(Self {
            azure_ad,
            apis,
            allow_overrides: allow,
            allow_overrides_set: set,
            allow_outbound_redirects: redirects,
            listen,
            metrics,
        })
    }

    /// From `./appsettings.json` (if present) and the process environment.
    pub fn load() -> Result<Self, SettingsError> {
        let text = match std::fs::read_to_string("appsettings.json") {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(err("appsettings.json", format!("cannot be read: {e}"))),
        };
        Self::from_sources(text.as_deref(), std::env::vars())
    }
}

/// `http://host:port` (`ASPNETCORE_URLS`' first URL) as a socket address;
/// `localhost`, `+` and `*` as in ASP.NET Core (loopback, all interfaces).
fn listen_addr(url: &str) -> Result<SocketAddr, SettingsError> {
    let bad = |why: &str| err("ASPNETCORE_URLS", format!("'{url}' {why}"));
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        bad("is not an http:// URL (TLS belongs to the pod's network, not the sidecar)")
    })?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| bad("has no port"))?;
    let port: u16 = port.parse().map_err(|_| bad("has no valid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = match host {
        "localhost" => "127.0.0.1",
        "+" | "*" | "0.0.0.0" => "0.0.0.0",
        h => h,
    };
    format!(
        "{}:{port}",
        if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_owned()
        }
    )
    .parse()
    .map_err(|_| bad("has a host that is not an IP address or localhost"))
}

fn azure_ad(flat: &Flat) -> Result<Option<AzureAd>, SettingsError> {
    let get = |k: &str| {
        flat.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let Some(client_id) = get("azuread:clientid") else {
        // Any other AzureAd setting means a real Entra was meant: a missing
        // (or misspelt) ClientId must not start the offline stand-in instead.
        if flat.keys().any(|k| k.starts_with("azuread:")) {
            return Err(err(
                "AzureAd:ClientId",
                "is required when any AzureAd setting is given (without AzureAd the sidecar runs its offline demo)",
            ));
        }
        return Ok(None);
    };
    let tenant_id = get("azuread:tenantid")
        .ok_or_else(|| err("AzureAd:TenantId", "is required with AzureAd__ClientId"))?;
    let mut credential = None;
    for n in 0.. {
        let base = format!("azuread:clientcredentials:{n}");
        let Some(source) = get(&format!("{base}:sourcetype")) else {
            if n == 0 {
                return Err(err(
                    "AzureAd:ClientCredentials:0:SourceType",
                    "is required: ClientSecret, Path, SignedAssertionFilePath or SignedAssertionFromManagedIdentity",
                ));
            }
            break;
        };
        let need = |field: &str| {
            get(&format!("{base}:{}", field.to_lowercase())).ok_or_else(|| {
                err(
                    &format!("AzureAd:ClientCredentials:{n}:{field}"),
                    format!("is required with SourceType {source}"),
                )
            })
        };
        let c = match source.to_ascii_lowercase().as_str() {
            "clientsecret" => Credential::Secret(need("ClientSecret")?),
            "path" => {
                if get(&format!("{base}:certificatepassword")).is_some() {
                    return Err(err(
                        &format!("AzureAd:ClientCredentials:{n}:CertificatePassword"),
                        "is not supported: give CertificateDiskPath a PEM file holding the certificate and its unencrypted RSA key",
                    ));
                }
                Credential::CertificatePath(need("CertificateDiskPath")?)
            }
            "signedassertionfilepath" => {
                Credential::SignedAssertionFile(need("SignedAssertionFileDiskPath")?)
            }
            "signedassertionfrommanagedidentity" => {
                Credential::ManagedIdentity(get(&format!("{base}:managedidentityclientid")))
            }
            _ => {
                return Err(err(
                    &format!("AzureAd:ClientCredentials:{n}:SourceType"),
                    format!("'{source}' is not supported: ClientSecret, Path, SignedAssertionFilePath or SignedAssertionFromManagedIdentity"),
                ))
            }
        };
        // The first credential is used (later ones are Microsoft's fallbacks).
        credential.get_or_insert(c);
    }
    Ok(Some(AzureAd {
        instance: get("azuread:instance"),
        tenant_id,
        client_id,
        scopes: list(flat, "azuread:scopes"),
        credential: credential.expect("the loop returns or sets one"),
    }))
}

fn downstream_apis(flat: &Flat) -> Result<BTreeMap<String, DownstreamApi>, SettingsError> {
    let mut apis = BTreeMap::new();
    for key in flat.keys() {
        if let Some(rest) = key.strip_prefix("downstreamapis:") {
            if let Some((name, _)) = rest.split_once(':') {
                apis.entry(name.to_owned())
                    .or_insert_with(DownstreamApi::default);
            }
        }
    }
    for (name, api) in apis.iter_mut() {
        let base = format!("downstreamapis:{name}");
        let get = |k: &str| {
            flat.get(&format!("{base}:{k}"))
                .cloned()
                .filter(|v| !v.trim().is_empty())
        };
        api.base_url = get("baseurl");
        if let Some(url) = &api.base_url {
            let ok = url.starts_with("https://") || url.starts_with("http://");
            if !ok || url.parse::<http::Uri>().is_err() {
                return Err(err(
                    &format!("DownstreamApis:{name}:BaseUrl"),
                    "is not an http(s) URL",
                ));
            }
        }
        api.relative_path = get("relativepath");
        api.scopes = list(flat, &format!("{base}:scopes"));
        api.request_app_token = parse_bool(flat, &format!("{base}:requestapptoken"))
            .map_err(|_| {
                err(
                    &format!("DownstreamApis:{name}:RequestAppToken"),
                    "must be true or false",
                )
            })?
            .unwrap_or(false);
        api.http_method = get("httpmethod");
        if let Some(m) = &api.http_method {
            if http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).is_err() {
                return Err(err(
                    &format!("DownstreamApis:{name}:HttpMethod"),
                    "is not an HTTP method",
                ));
            }
        }
    }
    Ok(apis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_wins_over_appsettings_and_lists_read_both_shapes() {
        let json = r#"{"AzureAd":{"ClientId":"11111111-1111-1111-1111-111111111111","TenantId":"22222222-2222-2222-2222-222222222222",
            "ClientCredentials":[{"SourceType":"ClientSecret","ClientSecret":"from-file"}]},
            "DownstreamApis":{"Graph":{"BaseUrl":"https://graph.microsoft.com/v1.0","Scopes":["User.Read","Mail.Read"]}}}"#;
        let s = Settings::from_sources(
            Some(json),
            vars(&[
                ("AzureAd__ClientCredentials__0__ClientSecret", "from-env"),
                ("DownstreamApis__graph__RelativePath", "me"),
                (
                    "DownstreamApis__app__Scopes",
                    "https://graph.microsoft.com/.default",
                ),
                ("DownstreamApis__app__RequestAppToken", "True"),
                ("ASPNETCORE_URLS", "http://localhost:9000;http://+:9001"),
            ]),
        )
        .unwrap();
        let ad = s.azure_ad.unwrap();
        assert_eq!(ad.credential, Credential::Secret("from-env".into()));
        assert_eq!(s.apis["graph"].scopes, ["User.Read", "Mail.Read"]);
        assert_eq!(s.apis["graph"].relative_path.as_deref(), Some("me"));
        assert!(s.apis["app"].request_app_token);
        assert_eq!(s.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(s.allow_overrides, AllowOverrides::default());
        assert_eq!(s.metrics, crate::metrics::Exposure::SamePort);
    }

    #[test]
    fn obo_metrics_listen_places_metrics() {
        use crate::metrics::Exposure;
        for (value, expected) in [
            ("", Exposure::SamePort),
            ("off", Exposure::Off),
            ("Off", Exposure::Off),
            (
                "0.0.0.0:9464",
                Exposure::Listener("0.0.0.0:9464".parse().unwrap()),
            ),
        ] {
            let s = Settings::from_sources(None, vars(&[("OBO_METRICS_LISTEN", value)])).unwrap();
            assert_eq!(s.metrics, expected, "{value:?}");
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let id = ("AzureAd__ClientId", "11111111-1111-1111-1111-111111111111");
        let tid = ("AzureAd__TenantId", "22222222-2222-2222-2222-222222222222");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[id], "AzureAd__TenantId"),
            (&[id, tid], "AzureAd__ClientCredentials__0__SourceType"),
            (
                &[
                    id,
                    tid,
                    ("AzureAd__ClientCredentials__0__SourceType", "KeyVault"),
                ],
                "AzureAd__ClientCredentials__0__SourceType",
            ),
            (
                &[
                    id,
                    tid,
                    ("AzureAd__ClientCredentials__0__SourceType", "ClientSecret"),
                ],
                "AzureAd__ClientCredentials__0__ClientSecret",
            ),
            (
                &[
                    id,
                    tid,
                    ("AzureAd__ClientCredentials__0__SourceType", "Path"),
                ],
                "AzureAd__ClientCredentials__0__CertificateDiskPath",
            ),
            (
                &[("DownstreamApis__x__BaseUrl", "ftp://x")],
                "DownstreamApis__x__BaseUrl",
            ),
            (
                &[("DownstreamApis__x__RequestAppToken", "yes")],
                "DownstreamApis__x__RequestAppToken",
            ),
            (
                &[("DownstreamApis__x__HttpMethod", "GE T")],
                "DownstreamApis__x__HttpMethod",
            ),
            (
                &[("Sidecar__AllowOverrides__CallDownstreamApi", "1")],
                "sidecar__allowoverrides__calldownstreamapi",
            ),
            (
                &[("ASPNETCORE_URLS", "https://localhost:5001")],
                "ASPNETCORE_URLS",
            ),
            (&[("OBO_METRICS_LISTEN", "localhost")], "OBO_METRICS_LISTEN"),
        ];
        for (vs, setting) in cases {
            let e = Settings::from_sources(None, vars(vs)).unwrap_err();
            assert_eq!(
                e.setting.to_lowercase(),
                setting.to_lowercase(),
                "{vs:?}: {e}"
            );
        }
    }

    #[test]
    fn azure_ad_settings_without_client_id_are_an_error_not_embedded_mode() {
        // A misspelt or forgotten ClientId must not silently start the
        // offline stand-in Entra in place of the real one.
        for vs in [
            &[("AzureAd__TenantId", "22222222-2222-2222-2222-222222222222")][..],
            &[
                ("AzureAd__ClientID ", "11111111-1111-1111-1111-111111111111"),
                ("AzureAd__ClientCredentials__0__SourceType", "ClientSecret"),
                (
                    "AzureAd__ClientCredentials__0__ClientSecret",
                    "s3cr3t-value",
                ),
            ][..],
            &[("AzureAd__ClientId", "  ")][..],
        ] {
            let e = Settings::from_sources(None, vars(vs)).unwrap_err();
            assert_eq!(e.setting, "AzureAd__ClientId", "{vs:?}: {e}");
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn no_client_id_is_embedded_mode_and_secrets_are_redacted() {
        let s = Settings::from_sources(None, vars(&[])).unwrap();
        assert!(s.azure_ad.is_none());
        assert_eq!(s.listen, DEFAULT_LISTEN.parse().unwrap());
        let c = Credential::Secret("s3cr3t-value".into());
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
