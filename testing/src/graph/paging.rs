//! Paging as Graph pages: `$top` items per page (default 10, at most 999), each page but
//! the last with an absolute `@odata.nextLink` carrying an opaque `$skiptoken`.

use std::collections::HashMap;

use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};

use super::data::Collection;
use super::reply::{Ids, Reply};

const DEFAULT_PAGE_SIZE: usize = 10;
const MAX_PAGE_SIZE: usize = 999;
/// What a `$skiptoken` decodes to, before the offset.
const SKIPTOKEN_PREFIX: &str = "RFNwdAIAAQAAAA:";

/// One page of `collection` (of `total` items) for the request's `query`.
pub(super) fn page(
    collection: Collection,
    total: usize,
    graph_url: &str,
    query: Option<&str>,
    ids: &Ids,
) -> Reply {
    let params: HashMap<String, String> = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let top = match params.get("$top") {
        None => DEFAULT_PAGE_SIZE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Reply::bad_request(
                    &format!("Invalid page size specified: '{v}'. Must be between 1 and {MAX_PAGE_SIZE} inclusive."),
                    ids,
                )
            }
        },
    };
    let skip = match params.get("$skiptoken") {
        None => 0,
        Some(token) => match decode_skiptoken(token) {
            Some(n) => n,
            None => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                    ids,
                )
            }
        },
    };
    let end = skip.saturating_add(top).min(total);
    let items: Vec<Value> = (skip.min(end)..end).map(|i| collection.item(i)).collect();
    let (path, context) = collection.names();
    let mut body = json!({
        "@odata.context": format!("{graph_url}/v1.0/$metadata#{context}"),
        "value": items,
    });
    if end < total {
        body["@odata.nextLink"] = Value::String(format!(
            "{graph_url}/v1.0/{path}?$top={top}&$skiptoken={}",
            encode_skiptoken(end)
        ));
    }
    Reply::json(StatusCode::OK, body)
}

fn encode_skiptoken(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{SKIPTOKEN_PREFIX}{offset}"))
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(SKIPTOKEN_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skiptokens_round_trip() {
        for n in [0, 10, 44, 1_000_000] {
            assert_eq!(decode_skiptoken(&encode_skiptoken(n)), Some(n));
        }
        assert_eq!(decode_skiptoken("garbage!"), None);
        assert_eq!(decode_skiptoken("Zm9vOjE"), None);
    }
}
