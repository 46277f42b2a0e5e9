//! The permissions each route demands, as Microsoft Graph documents them (the least
//! privileged permission first, then the higher privileged ones that also grant it).
//!
//! A delegated token (`scp`) must hold one of the route's delegated scopes; an app-only
//! token (no `scp`) one of its application roles. `/me` routes have no application
//! permission: Graph answers them `400` for app-only tokens. A token without the permission
//! gets `403 Authorization_RequestDenied` ("Insufficient privileges to complete the
//! operation.").

use serde_json::Value;

use super::auth::Claims;
use super::reply::{Ids, Reply};

/// What a route accepts: delegated scopes and application roles (empty: delegated only).
#[derive(Debug, Clone, Copy)]
pub(super) struct Permission {
    pub(super) delegated: &'static [&'static str],
    pub(super) application: &'static [&'static str],
}

/// `GET /me` ([Get user](https://learn.microsoft.com/graph/api/user-get)).
pub(super) const READ_ME: Permission = Permission {
    delegated: &[
        "User.Read",
        "User.ReadWrite",
        "User.ReadBasic.All",
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
    application: &[],
};

/// `PATCH /me` ([Update user](https://learn.microsoft.com/graph/api/user-update)).
pub(super) const WRITE_ME: Permission = Permission {
    delegated: &[
        "User.ReadWrite",
        "User.ReadWrite.All",
        "Directory.ReadWrite.All",
    ],
    application: &[],
};

/// `GET /users` and `GET /users/{id}` of another user
/// ([List users](https://learn.microsoft.com/graph/api/user-list)).
pub(super) const READ_USERS: Permission = Permission {
    delegated: &[
        "User.ReadBasic.All",
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
    application: &[
        "User.Read.All",
        "User.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    ],
};

/// `GET /me/messages` ([List messages](https://learn.microsoft.com/graph/api/user-list-messages)).
pub(super) const READ_MAIL: Permission = Permission {
    delegated: &["Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"],
    application: &[],
};

/// Whether `claims` grant `permission`; otherwise Graph's answer (`403`, or `400` for an
/// app-only token on a `/me` route).
pub(super) fn demand(claims: &Claims, permission: Permission, ids: &Ids) -> Result<(), Reply> {
    if let Some(scp) = claims.get("scp").and_then(Value::as_str) {
        return if scp
            .split_whitespace()
            .any(|s| permission.delegated.contains(&s))
        {
            Ok(())
        } else {
            Err(Reply::forbidden(ids))
        };
    }
    if permission.application.is_empty() {
        return Err(Reply::bad_request(
            "/me request is only valid with delegated authentication flow.",
            ids,
        ));
    }
    let granted = claims
        .get("roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|r| permission.application.contains(&r));
    if granted {
        Ok(())
    } else {
        Err(Reply::forbidden(ids))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ids() -> Ids {
        Ids::new(&http::HeaderMap::new())
    }

    fn claims(value: Value) -> Claims {
        value.as_object().cloned().unwrap_or_default()
    }

    fn status(claims_json: Value, permission: Permission) -> u16 {
        match demand(&claims(claims_json), permission, &ids()) {
            Ok(()) => 200,
            Err(reply) => reply.status.as_u16(),
        }
    }

    #[test]
    fn each_route_demands_its_own_permission() {
        let scp = |s: &str| json!({ "scp": s });
        assert_eq!(status(scp("User.Read"), READ_ME), 200);
        assert_eq!(status(scp("openid User.ReadBasic.All"), READ_ME), 200);
        assert_eq!(status(scp("Mail.Read"), READ_ME), 403);
        assert_eq!(status(scp("User.Read"), READ_MAIL), 403);
        assert_eq!(status(scp("Mail.ReadBasic"), READ_MAIL), 200);
        assert_eq!(status(scp("User.Read"), READ_USERS), 403);
        assert_eq!(status(scp("Directory.Read.All"), READ_USERS), 200);
        assert_eq!(status(scp("User.Read"), WRITE_ME), 403);
        assert_eq!(status(scp("User.ReadWrite"), WRITE_ME), 200);
    }

    #[test]
    fn app_only_tokens_need_an_application_role() {
        let roles = |r: &[&str]| json!({ "roles": r });
        assert_eq!(status(roles(&["User.Read.All"]), READ_USERS), 200);
        // User.ReadBasic.All is not an application permission of /users.
        assert_eq!(status(roles(&["User.ReadBasic.All"]), READ_USERS), 403);
        assert_eq!(status(roles(&["User.Read.All"]), READ_ME), 400);
        assert_eq!(status(roles(&["Mail.Read"]), READ_MAIL), 400);
    }
}
