//! Who may call: layer-wide policy and per-route requirements. Failures are 403.

use crate::config::Policy;
use crate::validate::{Principal, TokenKind};

/// Why a valid token may not call this API or route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Forbidden {
    /// The token has none of the required scopes and none of the required roles.
    #[error("{}", describe_insufficient(scopes, roles))]
    Insufficient {
        /// Accepted scopes (any one suffices).
        scopes: Vec<String>,
        /// Accepted app roles (any one suffices).
        roles: Vec<String>,
    },
    /// App-only tokens are not accepted.
    #[error("app-only tokens are not accepted by this API; sign in a user")]
    AppOnly,
    /// The calling client application is not on the allow-list.
    #[error("the client application is not allowed to call this API")]
    ClientApp,
}

fn describe_insufficient(scopes: &[String], roles: &[String]) -> String {
    match (scopes.is_empty(), roles.is_empty()) {
        (false, true) => format!("requires one of the scopes: {}", scopes.join(" ")),
        (true, false) => format!("requires one of the app roles: {}", roles.join(" ")),
        _ => format!(
            "requires one of the scopes: {} or one of the app roles: {}",
            scopes.join(" "),
            roles.join(" ")
        ),
    }
}

/// A per-route requirement stated as a type; use it with [`Require`](crate::Require).
///
/// A token satisfies it when it has any of `SCOPES` or any of `ROLES`.
/// ```
/// use axum_obo::{Require, Requirement};
///
/// /// Callers with the `Admin` app role.
/// struct Admin;
/// impl Requirement for Admin {
///     const ROLES: &'static [&'static str] = &["Admin"];
/// }
///
/// async fn admin(_: Require<Admin>) -> &'static str { "ok" }
/// ```
pub trait Requirement: Send + Sync + 'static {
    /// Delegated scopes, any of which suffices.
    const SCOPES: &'static [&'static str] = &[];
    /// App roles (of a user or an app), any of which suffices.
    const ROLES: &'static [&'static str] = &[];
}

/// Checks a requirement against a principal.
pub(crate) fn check_requirement<R: Requirement>(p: &Principal) -> Result<(), Forbidden> {
    let ok = R::SCOPES.iter().any(|s| p.has_scope(s)) || R::ROLES.iter().any(|r| p.has_role(r));
    if ok || (R::SCOPES.is_empty() && R::ROLES.is_empty()) {
        Ok(())
    } else {
        Err(Forbidden::Insufficient {
            scopes: R::SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            roles: R::ROLES.iter().map(|s| (*s).to_owned()).collect(),
        })
    }
}

impl Policy {
    /// The layer-wide checks, run on every request.
    pub(crate) fn check(&self, p: &Principal) -> Result<(), Forbidden> {
        if let Some(apps) = &self.allowed_client_apps {
            if !p.client_app_id().is_some_and(|a| apps.contains(a)) {
                return Err(Forbidden::ClientApp);
            }
        }
        match p.kind() {
            TokenKind::Delegated => {
                if !self.user_scopes.is_empty() && !self.user_scopes.iter().any(|s| p.has_scope(s))
                {
                    return Err(Forbidden::Insufficient {
                        scopes: self.user_scopes.clone(),
                        roles: Vec::new(),
                    });
                }
            }
            TokenKind::App => {
                if !self.allow_app_only {
                    return Err(Forbidden::AppOnly);
                }
                if !self.app_roles.is_empty() && !self.app_roles.iter().any(|r| p.has_role(r)) {
                    return Err(Forbidden::Insufficient {
                        scopes: Vec::new(),
                        roles: self.app_roles.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}
