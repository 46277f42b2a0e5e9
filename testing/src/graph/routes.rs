//! The Graph routes the stand-in serves (also the targets of `$batch` items), each behind
//! its permission (see [`permissions`](super::permissions)).

use std::sync::atomic::Ordering;

use http::{Method, StatusCode};
use serde_json::Value;

use super::auth::Claims;
use super::data::{self, Collection};
use super::paging;
use super::permissions::{demand, READ_MAIL, READ_ME, READ_USERS, WRITE_ME};
use super::reply::{Ids, Reply};
use super::server::Shared;

impl Shared {
    /// The answer of route `path` (under `/v1.0`) for a verified token.
    pub(super) fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        claims: &Claims,
        body: Option<&Value>,
        ids: &Ids,
    ) -> Reply {
        let path = path.trim_end_matches('/');
        let Some(rest) = path.strip_prefix("/v1.0") else {
            let version = path.trim_start_matches('/').split('/').next().unwrap_or("");
            return Reply::bad_request(&format!("Invalid version: {version}"), ids);
        };
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let total = self.collection_size.load(Ordering::SeqCst);
        let checked = |permission| demand(claims, permission, ids);
        let answer = match segments.as_slice() {
            ["me"] if method == Method::GET => {
                checked(READ_ME).map(|()| Reply::json(StatusCode::OK, data::me(claims, &self.url)))
            }
            ["me"] if method == Method::PATCH => checked(WRITE_ME).map(|()| {
                if body.is_some_and(Value::is_object) {
                    Reply::no_content()
                } else {
                    Reply::bad_request("Empty Payload. JSON content expected.", ids)
                }
            }),
            ["me", "messages"] if method == Method::GET => checked(READ_MAIL)
                .map(|()| paging::page(Collection::Messages, total, &self.url, query, ids)),
            ["users"] if method == Method::GET => checked(READ_USERS)
                .map(|()| paging::page(Collection::Users, total, &self.url, query, ids)),
            ["users", id] if method == Method::GET => {
                // The signed-in user may read their own object with `User.Read`.
                let own = claims
                    .get("oid")
                    .and_then(Value::as_str)
                    .is_some_and(|oid| oid.eq_ignore_ascii_case(id));
                let permission = if own { READ_ME } else { READ_USERS };
                checked(permission).map(|()| self.user(id, total, claims, ids))
            }
            ["me"] | ["me", "messages"] | ["users"] | ["users", _] => {
                Ok(Reply::method_not_allowed(ids))
            }
            [] => Ok(Reply::bad_request("Invalid request.", ids)),
            [first, ..] => Ok(Reply::bad_request(
                &format!("Resource not found for the segment '{first}'."),
                ids,
            )),
        };
        answer.unwrap_or_else(|refused| refused)
    }

    /// `GET /users/{id}`: one of the `total` users, the signed-in user, or 404.
    fn user(&self, id: &str, total: usize, claims: &Claims, ids: &Ids) -> Reply {
        if let Some(i) = (0..total).find(|&i| data::user_id(i).eq_ignore_ascii_case(id)) {
            let mut user = data::user_item(i);
            user["@odata.context"] =
                Value::String(format!("{}/v1.0/$metadata#users/$entity", self.url));
            return Reply::json(StatusCode::OK, user);
        }
        let own = claims
            .get("oid")
            .and_then(Value::as_str)
            .is_some_and(|oid| oid.eq_ignore_ascii_case(id));
        if own {
            return Reply::json(StatusCode::OK, data::me(claims, &self.url));
        }
        Reply::error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
            ids,
        )
    }
}
