//! The container's query parameters: dotted `optionsOverride.*` overrides and
//! the agent parameters, as its binder reads them (keys case-insensitive; the
//! last value wins, except `Scopes`, which accumulates; `BaseUrl` is always
//! ignored; an unparsable boolean is ignored).

use axum_obo::agent::AgentUser;

use crate::settings::DownstreamApi;

/// The `optionsOverride.*` parameters of one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    /// Whether any override other than `BaseUrl` was given.
    pub(crate) has_any: bool,
    pub(crate) scopes: Vec<String>,
    pub(crate) request_app_token: Option<bool>,
    pub(crate) relative_path: Option<String>,
    pub(crate) http_method: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) force_refresh: Option<bool>,
}

/// `AgentIdentity`, `AgentUsername`, `AgentUserId`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AgentParams {
    pub(crate) identity: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) user_id: Option<String>,
}

impl AgentParams {
    pub(crate) fn any(&self) -> bool {
        self.identity.is_some() || self.username.is_some() || self.user_id.is_some()
    }

    /// Microsoft's precedence: no (or blank) agent identity: none; a UPN wins
    /// over an object id; an object id counts only as a GUID.
    pub(crate) fn resolve(&self) -> Option<(String, Option<AgentUser>)> {
        let identity = self
            .identity
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())?;
        let user = match (
            self.username
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty()),
            self.user_id
                .as_deref()
                .map(str::trim)
                .filter(|s| is_guid(s) && !is_nil(s)),
        ) {
            (Some(upn), _) => Some(AgentUser::Upn(upn.to_owned())),
            (None, Some(oid)) => Some(AgentUser::ObjectId(oid.to_ascii_lowercase())),
            (None, None) => None,
        };
        Some((identity.to_owned(), user))
    }
}

pub(crate) fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_nil(s: &str) -> bool {
    s.bytes().all(|c| c == b'0' || c == b'-')
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Reads the query `pairs`.
pub(crate) fn parse(pairs: &[(String, String)]) -> (Overrides, AgentParams) {
    let mut o = Overrides::default();
    let mut a = AgentParams::default();
    for (key, value) in pairs {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "agentidentity" => a.identity = Some(value.clone()),
            "agentusername" => a.username = Some(value.clone()),
            "agentuserid" => a.user_id = Some(value.clone()),
            _ => {}
        }
        let Some(path) = lower.strip_prefix("optionsoverride.") else {
            continue;
        };
        if path == "baseurl" {
            tracing::warn!("optionsOverride.BaseUrl is always ignored");
            continue;
        }
        o.has_any = true;
        match path {
            "scopes" => {
                if !value.trim().is_empty() {
                    o.scopes.push(value.clone());
                }
            }
            "requestapptoken" => {
                if let Some(b) = parse_bool(value) {
                    o.request_app_token = Some(b);
                }
            }
            "relativepath" => o.relative_path = Some(value.clone()),
            "httpmethod" => o.http_method = Some(value.clone()),
            "acquiretokenoptions.tenant" if !value.is_empty() => o.tenant = Some(value.clone()),
            "acquiretokenoptions.forcerefresh" => {
                if let Some(b) = parse_bool(value) {
                    o.force_refresh = Some(b);
                }
            }
            _ => tracing::debug!(parameter = %key, "override not supported; ignored"),
        }
    }
    (o, a)
}

impl Overrides {
    /// `api` with these overrides applied (Microsoft's merge: given values win;
    /// `Scopes`, when given, replace the configured ones).
    pub(crate) fn merge(&self, api: &DownstreamApi) -> DownstreamApi {
        let mut merged = api.clone();
        if !self.scopes.is_empty() {
            merged.scopes = self.scopes.clone();
        }
        if let Some(b) = self.request_app_token {
            merged.request_app_token = b;
        }
        if let Some(p) = &self.relative_path {
            merged.relative_path = Some(p.clone());
        }
        if let Some(m) = &self.http_method {
            merged.http_method = Some(m.clone());
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dotted_overrides_are_read_case_insensitively() {
        let (o, _) = parse(&q(&[
            ("optionsOverride.Scopes", "User.Read"),
            ("optionsoverride.scopes", "Mail.Read"),
            ("optionsOverride.Scopes", " "),
            ("optionsOverride.RequestAppToken", "True"),
            ("optionsOverride.RelativePath", "me/messages"),
            ("optionsOverride.HttpMethod", "POST"),
            ("optionsOverride.AcquireTokenOptions.Tenant", "t"),
            ("optionsOverride.AcquireTokenOptions.ForceRefresh", "nope"),
        ]));
        assert!(o.has_any);
        assert_eq!(o.scopes, ["User.Read", "Mail.Read"]);
        assert_eq!(o.request_app_token, Some(true));
        assert_eq!(o.relative_path.as_deref(), Some("me/messages"));
        assert_eq!(o.http_method.as_deref(), Some("POST"));
        assert_eq!(o.tenant.as_deref(), Some("t"));
        assert_eq!(o.force_refresh, None);
    }

    #[test]
    fn base_url_is_never_an_override() {
        let (o, _) = parse(&q(&[("optionsOverride.BaseUrl", "https://evil.example")]));
        assert!(!o.has_any);
        let api = DownstreamApi {
            base_url: Some("https://graph.microsoft.com/v1.0".into()),
            ..Default::default()
        };
        assert_eq!(o.merge(&api).base_url, api.base_url);
    }

    #[test]
    fn agent_parameters_follow_microsofts_precedence() {
        let oid = "7d3c3f1e-7a0b-4f57-9a43-9a7e4c3b2a10";
        let agent = "0a1b2c3d-0000-4000-8000-000000000001";
        let (_, a) = parse(&q(&[
            ("AgentIdentity", agent),
            ("AgentUsername", "u@x"),
            ("AgentUserId", oid),
        ]));
        assert_eq!(
            a.resolve(),
            Some((agent.into(), Some(AgentUser::Upn("u@x".into()))))
        );
        let (_, a) = parse(&q(&[("agentidentity", agent), ("agentuserid", oid)]));
        assert_eq!(
            a.resolve(),
            Some((agent.into(), Some(AgentUser::ObjectId(oid.into()))))
        );
        // Not a GUID, or the empty GUID: the agent alone.
        for bad in ["not-a-guid", "00000000-0000-0000-0000-000000000000"] {
            let (_, a) = parse(&q(&[("AgentIdentity", agent), ("AgentUserId", bad)]));
            assert_eq!(a.resolve(), Some((agent.into(), None)));
        }
        // No agent identity: the user parameters alone do nothing.
        let (_, a) = parse(&q(&[("AgentUsername", "u@x")]));
        assert!(a.any());
        assert_eq!(a.resolve(), None);
    }
}
