//! `POST /v1.0/$batch`: up to 20 relative requests, each routed like a request of its own
//! (with its own status, `$batch`-item faults first), answered in reverse order so that
//! clients map answers by id.

use std::collections::HashSet;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::auth::Claims;
use super::reply::{Ids, Reply};
use super::server::{decode_dollar, lock, Shared};

const MAX_BATCH_ITEMS: usize = 20;

impl Shared {
    /// The answer to a `$batch` body.
    pub(super) fn batch(&self, claims: &Claims, body: &[u8], ids: &Ids) -> Reply {
        let Some(requests) = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("requests").and_then(Value::as_array).cloned())
        else {
            return Reply::bad_request("Invalid batch payload format.", ids);
        };
        if let Err(message) = check(&requests) {
            return Reply::bad_request(&message, ids);
        }
        let mut responses: Vec<Value> = requests
            .iter()
            .map(|request| {
                let text = |name: &str| request.get(name).and_then(Value::as_str).unwrap_or("");
                self.batch_item(
                    claims,
                    text("method"),
                    text("url"),
                    request.get("body"),
                    &ids.item(),
                )
                .into_batch_item(text("id"))
            })
            .collect();
        // Graph does not promise any order; make clients map answers by id.
        responses.reverse();
        Reply::json(StatusCode::OK, json!({ "responses": responses }))
    }

    fn batch_item(
        &self,
        claims: &Claims,
        method: &str,
        url: &str,
        body: Option<&Value>,
        ids: &Ids,
    ) -> Reply {
        let fault = lock(&self.faults).next_item();
        if let Some(reply) = fault.and_then(|f| f.answer(ids)) {
            return reply;
        }
        if url.contains("://") {
            return Reply::bad_request("Batch request URLs must be relative.", ids);
        }
        let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
            return Reply::bad_request("Invalid HTTP method.", ids);
        };
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (url, None),
        };
        let path = format!("/v1.0/{}", decode_dollar(path).trim_start_matches('/'));
        if path.trim_end_matches('/') == "/v1.0/$batch" {
            return Reply::bad_request("Nested batch requests are not supported.", ids);
        }
        self.route(
            &method,
            &path,
            query,
            claims,
            body.filter(|b| !b.is_null()),
            ids,
        )
    }
}

/// The batch's shape: 1 to 20 requests, each with an id (unique), a method and a url.
fn check(requests: &[Value]) -> Result<(), String> {
    if requests.is_empty() {
        return Err("Invalid batch payload format. The batch has no requests.".into());
    }
    if requests.len() > MAX_BATCH_ITEMS {
        return Err(format!(
            "Invalid batch payload format. The batch exceeds the limit of {MAX_BATCH_ITEMS} requests."
        ));
    }
    let mut seen = HashSet::new();
    for request in requests {
        let text = |name: &str| request.get(name).and_then(Value::as_str).unwrap_or("");
        let id = text("id");
        if id.is_empty() || text("method").is_empty() || text("url").is_empty() {
            return Err(
                "Invalid batch payload format. Each request needs an id, a method and a url."
                    .into(),
            );
        }
        if !seen.insert(id) {
            return Err(format!(
                "Invalid batch payload format. Request id '{id}' is used more than once."
            ));
        }
    }
    Ok(())
}
