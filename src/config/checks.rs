//! The rules of individual fields: GUIDs, base URLs (https, or http on loopback
//! only), audiences, policy words. Pure functions; each names its field on failure.

use std::collections::BTreeSet;

use super::error::ConfigError;
use crate::http::{check_base_url, BaseUrlProblem};
use crate::validate::is_guid;

pub(super) fn normalize_guid(
    field: &'static str,
    value: Option<&str>,
) -> Result<String, ConfigError> {
    let v = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError::new(field, "is required"))?;
    if !is_guid(v) {
        return Err(ConfigError::new(
            field,
            "must be a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47",
        ));
    }
    Ok(v.to_ascii_lowercase())
}

/// A bare `scheme://host[:port]`: https, or http on loopback only.
pub(super) fn validate_base_url(field: &'static str, raw: &str) -> Result<String, ConfigError> {
    let url = https_url(field, raw.trim(), true)?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// An absolute URL that this API names or calls: https (http on loopback only), a
/// host, no credentials, query or fragment; with `bare_origin`, no path either.
/// Every URL setting's error names the field and the rule it breaks.
pub(super) fn https_url(
    field: &'static str,
    raw: &str,
    bare_origin: bool,
) -> Result<reqwest::Url, ConfigError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| ConfigError::new(field, format!("is not a URL ({e})")))?;
    let reason = match check_base_url(&url, bare_origin) {
        Ok(()) => return Ok(url),
        Err(BaseUrlProblem::PlainHttp) => {
            "must use https:// (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)"
                .to_owned()
        }
        Err(BaseUrlProblem::Scheme) => {
            format!("unsupported scheme `{}`; use https://", url.scheme())
        }
        Err(BaseUrlProblem::NoHost) => "has no host".to_owned(),
        Err(BaseUrlProblem::Credentials) => "must not contain credentials".to_owned(),
        Err(BaseUrlProblem::QueryOrFragment | BaseUrlProblem::Path) if bare_origin => {
            "must be a bare scheme://host[:port] without path, query or fragment".to_owned()
        }
        Err(BaseUrlProblem::QueryOrFragment | BaseUrlProblem::Path) => {
            "must not have a query or a fragment".to_owned()
        }
    };
    Err(ConfigError::new(field, reason))
}

/// The home tenant and the extra tenants, normalized.
pub(super) fn allowed_tenants(
    home: &str,
    extra: &[String],
) -> Result<BTreeSet<String>, ConfigError> {
    let mut allowed = BTreeSet::from([home.to_owned()]);
    for t in extra {
        allowed.insert(normalize_guid("allowed_tenants", Some(t))?);
    }
    Ok(allowed)
}

/// The accepted audiences: as given (non-empty, no surrounding spaces), or by
/// default the client id and `api://{client id}`.
pub(super) fn audiences(
    client_id: &str,
    given: Option<Vec<String>>,
) -> Result<BTreeSet<String>, ConfigError> {
    let Some(list) = given else {
        return Ok(BTreeSet::from([
            client_id.to_owned(),
            format!("api://{client_id}"),
        ]));
    };
    if list.is_empty() {
        return Err(ConfigError::new("audiences", "must not be empty"));
    }
    if list.iter().any(|a| a.trim().is_empty() || a.trim() != a) {
        return Err(ConfigError::new(
            "audiences",
            "entries must be non-empty and without surrounding spaces",
        ));
    }
    Ok(list.into_iter().collect())
}

/// Scopes and roles a policy requires are single, non-empty words.
pub(super) fn words(field: &'static str, list: &[String]) -> Result<(), ConfigError> {
    if list
        .iter()
        .any(|s| s.is_empty() || s.contains(char::is_whitespace))
    {
        return Err(ConfigError::new(field, "entries must be non-empty words"));
    }
    Ok(())
}
