//! [`RequestRecord`]: one answered request, the shape of both stand-ins' request logs.

use std::collections::BTreeMap;

use http::HeaderMap;

/// One request a stand-in answered, as recorded in
/// [`EntraStandIn::request_log`](crate::EntraStandIn::request_log) and
/// [`GraphStandIn::request_log`](crate::GraphStandIn::request_log) (test-only: the headers
/// may hold secrets).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path as received, without the query (`%24` decoded to `$` at Graph).
    pub path: String,
    /// The query string, if any, without the `?`.
    pub query: Option<String>,
    /// Every request header, lowercase names (repeated headers joined with `", "`).
    pub headers: BTreeMap<String, String>,
    /// The status answered.
    pub status: u16,
}

impl RequestRecord {
    pub(crate) fn new(
        method: &http::Method,
        path: String,
        query: Option<&str>,
        headers: &HeaderMap,
        status: u16,
    ) -> Self {
        RequestRecord {
            method: method.to_string(),
            path,
            query: query.map(str::to_owned),
            headers: header_map(headers),
            status,
        }
    }
}

/// Headers as a map of lowercase names; repeated headers joined with `", "`.
pub(crate) fn header_map(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        map.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    map
}
