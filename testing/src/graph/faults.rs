//! Scripted Graph failures: [`GraphFault`], the queue they wait in, and the answers they
//! produce.
//!
//! The vocabulary mirrors the Entra stand-in's token endpoint
//! ([`TokenFault`](crate::TokenFault) with
//! [`inject_token_fault`](crate::EntraStandIn::inject_token_fault)): a fault is injected
//! for the next `times` requests (`None`: until cleared), faults injected while others are
//! pending queue up behind them, and they are answered before the token is looked at.

use std::time::Duration;

use crate::fault_queue::FaultQueue;

use base64::Engine as _;
use http::StatusCode;

use super::reply::{Ids, Reply, AUTHORIZATION_URI, GRAPH_APP_ID};

/// `Retry-After` of throttled `$batch` items, in seconds.
const BATCH_ITEM_RETRY_AFTER: u64 = 1;

/// A failure Graph answers instead of serving the request; see
/// [`GraphStandIn::inject_fault`](super::GraphStandIn::inject_fault).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphFault {
    /// `429 TooManyRequests` with Graph's error JSON and, when `Some`, a `Retry-After`
    /// header (seconds).
    TooManyRequests {
        /// `Retry-After` seconds.
        retry_after: Option<u64>,
    },
    /// That status (e.g. 500, 503, 504) with Graph's error JSON; a number that is not an
    /// HTTP status means 500.
    Status(u16),
    /// A Continuous Access Evaluation claims challenge: 401 with `WWW-Authenticate: Bearer
    /// realm="", authorization_uri="…", client_id="…", error="insufficient_claims",
    /// claims="<standard base64 of the JSON>"`.
    ClaimsChallenge(String),
    /// Waits this long, then handles the request normally.
    Delay(Duration),
    /// Per `$batch` item, not per request: the item is answered `429` inside the batch
    /// (with `Retry-After: 1`) while the batch itself succeeds.
    BatchItemTooManyRequests,
}

impl GraphFault {
    /// Whether the fault applies to `$batch` items rather than to requests.
    fn per_batch_item(&self) -> bool {
        matches!(self, GraphFault::BatchItemTooManyRequests)
    }

    /// The answer for this fault; `None` for [`GraphFault::Delay`], which the server waits
    /// out.
    pub(super) fn answer(&self, ids: &Ids) -> Option<Reply> {
        match self {
            GraphFault::TooManyRequests { retry_after } => {
                Some(Reply::throttled(*retry_after, ids))
            }
            GraphFault::Status(status) => {
                let status =
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let (code, message) = match status.as_u16() {
                    503 => (
                        "serviceNotAvailable",
                        "The service is temporarily unavailable. Please try again later.",
                    ),
                    504 => ("UnknownError", "The gateway timed out."),
                    429 => ("TooManyRequests", "Too many requests."),
                    _ => ("generalException", "General exception while processing."),
                };
                Some(Reply::error(status, code, message, ids))
            }
            GraphFault::ClaimsChallenge(claims_json) => {
                let claims = base64::engine::general_purpose::STANDARD.encode(claims_json);
                Some(
                    Reply::error(
                        StatusCode::UNAUTHORIZED,
                        "InvalidAuthenticationToken",
                        "Continuous access evaluation resulted in challenge with result: InteractionRequired and code: TokenIssuedBeforeRevocationTimestamp",
                        ids,
                    )
                    .header(
                        "www-authenticate",
                        format!(
                            "Bearer realm=\"\", authorization_uri=\"{AUTHORIZATION_URI}\", client_id=\"{GRAPH_APP_ID}\", error=\"insufficient_claims\", claims=\"{claims}\""
                        ),
                    ),
                )
            }
            GraphFault::BatchItemTooManyRequests => {
                Some(Reply::throttled(Some(BATCH_ITEM_RETRY_AFTER), ids))
            }
            GraphFault::Delay(_) => None,
        }
    }
}

/// Pending faults: one queue for requests, one for `$batch` items.
#[derive(Debug, Default)]
pub(super) struct Faults {
    requests: FaultQueue<GraphFault>,
    items: FaultQueue<GraphFault>,
}

impl Faults {
    pub(super) fn inject(&mut self, fault: GraphFault, times: Option<usize>) {
        let queue = if fault.per_batch_item() {
            &mut self.items
        } else {
            &mut self.requests
        };
        queue.push(fault, times);
    }

    pub(super) fn clear(&mut self) {
        self.requests.clear();
        self.items.clear();
    }

    /// The fault for the next request, if any (consumes one use of it).
    pub(super) fn next_request(&mut self) -> Option<GraphFault> {
        self.requests.take()
    }

    /// The fault for the next `$batch` item, if any (consumes one use of it).
    pub(super) fn next_item(&mut self) -> Option<GraphFault> {
        self.items.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_queue_up_and_run_out() {
        let mut faults = Faults::default();
        faults.inject(GraphFault::Status(503), Some(2));
        faults.inject(GraphFault::BatchItemTooManyRequests, Some(1));
        faults.inject(GraphFault::Status(504), Some(1));
        faults.inject(GraphFault::Status(500), Some(0));
        assert_eq!(faults.next_request(), Some(GraphFault::Status(503)));
        assert_eq!(faults.next_request(), Some(GraphFault::Status(503)));
        assert_eq!(faults.next_request(), Some(GraphFault::Status(504)));
        assert_eq!(faults.next_request(), None);
        assert_eq!(
            faults.next_item(),
            Some(GraphFault::BatchItemTooManyRequests)
        );
        assert_eq!(faults.next_item(), None);
        faults.inject(GraphFault::Status(500), None);
        for _ in 0..10 {
            assert_eq!(faults.next_request(), Some(GraphFault::Status(500)));
        }
        faults.clear();
        assert_eq!(faults.next_request(), None);
    }
}
