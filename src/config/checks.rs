//! The rules of individual fields: GUIDs, base URLs (https, or http on loopback
//! only), audiences, policy words. Pure functions; each names its field on failure.

use std::collections::BTreeSet;

use super::error::ConfigError;
use crate::http::is_loopback;
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
    let url = reqwest::Url::parse(raw.trim())
        .map_err(|e| ConfigError::new(field, format!("is not a URL ({e})")))?;
    if url.query().is_some() || url.fragment().is_some() || !matches!(url.path(), "" | "/") {
        return Err(ConfigError::new(
            field,
            "must be a bare scheme://host[:port] without path, query or fragment",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(field, "must not contain credentials"));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = is_loopback(&url);
            if !loopback {
                return Err(ConfigError::new(
                    field,
                    "must use https:// (plain http is allowed only for 127.0.0.0/8, ::1 and localhost)",
                ));
            }
        }
        other => {
            return Err(ConfigError::new(
                field,
                format!("unsupported scheme `{other}`; use https://"),
            ))
        }
    }
    if url.host().is_none() {
        return Err(ConfigError::new(field, "has no host"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
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
