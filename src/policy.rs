//! Who may call: layer-wide policy and per-route requirements. Failures are 403.

use std::collections::BTreeSet;

use crate::validate::{Principal, TokenKind};

/// Layer-wide access policy, checked on every request (also for cached tokens).
/// Built by the configuration builder, which refuses empty words and an empty
/// client allow-list.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// Delegated tokens must carry at least one of these scopes (empty: no requirement).
    pub(crate) user_scopes: Vec<String>,
    /// App-only tokens must carry at least one of these roles (empty: any role).
    pub(crate) app_roles: Vec<String>,
    /// Whether app-only tokens are admitted at all.
    pub(crate) allow_app_only: bool,
    /// If set, only these client applications (`azp`/`appid`) may call.
    pub(crate) allowed_client_apps: Option<BTreeSet<String>>,
}

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
    /// The route does not admit this caller as an agent (or admits only agents).
    #[error("this route does not admit this caller as an agent or non-agent")]
    Agent,
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
/// A token satisfies it when it has any of `SCOPES` or any of `ROLES`. A
/// requirement must name at least one of them: one that names nothing would guard
/// nothing, so using it with [`Require`](crate::Require) does not compile:
///
/// ```compile_fail,E0080
/// use axum::{routing::get, Router};
/// use axum_obo::{Require, Requirement};
///
/// struct Admin;
/// impl Requirement for Admin {} // forgot `ROLES`
///
/// async fn admin(_: Require<Admin>) -> &'static str { "ok" }
/// let app: Router = Router::new().route("/admin", get(admin));
/// ```
///
/// Naming a role makes the same code compile:
/// ```
/// use axum::{routing::get, Router};
/// use axum_obo::{Require, Requirement};
///
/// /// Callers with the `Admin` app role.
/// struct Admin;
/// impl Requirement for Admin {
///     const ROLES: &'static [&'static str] = &["Admin"];
/// }
///
/// async fn admin(_: Require<Admin>) -> &'static str { "ok" }
/// let app: Router = Router::new().route("/admin", get(admin));
/// ```
pub trait Requirement: Send + Sync + 'static {
    /// Delegated scopes, any of which suffices.
    const SCOPES: &'static [&'static str] = &[];
    /// App roles (of a user or an app), any of which suffices.
    const ROLES: &'static [&'static str] = &[];
    /// Whether agents (Entra Agent ID identities and agent users, see
    /// [`Principal::agent`]) are admitted; refused ones get 403.
    const AGENTS: crate::agent::AgentAdmission = crate::agent::AgentAdmission::Admit;
}

/// Checks a requirement against a principal.
///
/// A requirement naming nothing admits nobody ([`Require`](crate::Require) also
/// refuses to compile with one): a forgotten `ROLES` is never an open door.
pub(crate) fn check_requirement<R: Requirement>(p: &Principal) -> Result<(), Forbidden> {
    if R::SCOPES.is_empty() && R::ROLES.is_empty() {
        tracing::error!(
            requirement = std::any::type_name::<R>(),
            "a Requirement names no scope and no role; every request is refused"
        );
    }
    if !R::AGENTS.admits(p) {
        return Err(Forbidden::Agent);
    }
    let ok = R::SCOPES.iter().any(|s| p.has_scope(s)) || R::ROLES.iter().any(|r| p.has_role(r));
    if ok {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scopes: &[&str], roles: &[&str]) -> Principal {
        Principal::for_tests("o", scopes, roles)
    }

    struct Nothing;
    impl Requirement for Nothing {}

    struct Reader;
    impl Requirement for Reader {
        const SCOPES: &'static [&'static str] = &["Tasks.Read"];
        const ROLES: &'static [&'static str] = &["Tasks.Read.All"];
    }

    #[test]
    fn a_requirement_naming_nothing_admits_nobody() {
        for p in [
            principal(&[], &[]),
            principal(&["access_as_user"], &["Admin"]),
        ] {
            assert!(check_requirement::<Nothing>(&p).is_err());
        }
    }

    #[test]
    fn any_scope_or_role_suffices() {
        assert!(check_requirement::<Reader>(&principal(&["Tasks.Read"], &[])).is_ok());
        assert!(check_requirement::<Reader>(&principal(&[], &["Tasks.Read.All"])).is_ok());
        assert!(check_requirement::<Reader>(&principal(&["Tasks.Write"], &["Admin"])).is_err());
    }
}
