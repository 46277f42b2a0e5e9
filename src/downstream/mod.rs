//! Calling downstream APIs with the user's On-Behalf-Of token.
//!
//! [`DownstreamClient`] calls one API (its base URL) with one bearer token: JSON in and
//! out, bounded retries of throttling ([`RetryPolicy`]: 429, 503 and 504, honouring
//! `Retry-After`), OData paging ([`DownstreamClient::paged`]), JSON batching
//! ([`DownstreamClient::batch`]), and typed errors ([`DownstreamError`]) that say what
//! your API should answer its own caller. [`GraphClient`] is the instance for Microsoft
//! Graph.
//!
//! The token is sent only to the base URL's origin: absolute URLs elsewhere, including
//! an `@odata.nextLink` pointing elsewhere, are refused with
//! [`DownstreamError::ForeignUrl`]; relative paths must stay under the base path
//! (`..`, `%2e%2e` and backslashes are refused). A paged stream fetches no page twice
//! and at most [`DEFAULT_MAX_PAGES`] pages (configurable), and response bodies are
//! read under a size cap.
//!
//! Failures answer your caller through `impl IntoResponse for DownstreamError` (also
//! used by [`AuthRejection::Downstream`](crate::AuthRejection::Downstream)): fixed
//! texts, never the downstream's messages, which go to the log.
//!
//! - `client`: the client, its retry policy and the same-origin rule.
//! - `paging`: `@odata.nextLink` paging as a stream.
//! - `batch`: `$batch` requests and answers.
//! - `graph`: Microsoft Graph and its user profile.
//! - `error`: why a call failed; `challenge`: reading `WWW-Authenticate`.
//! - `renew`: answering a claims challenge (Continuous Access Evaluation) with a
//!   re-exchange and one retry, for clients made by [`OboToken`](crate::OboToken).

pub(crate) mod batch;
pub(crate) mod challenge;
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod graph;
pub(crate) mod paging;
pub(crate) mod renew;

pub use batch::{BatchRequest, BatchResponse};
pub use client::{DownstreamClient, RetryPolicy, DEFAULT_MAX_PAGES};
pub use error::DownstreamError;
pub(crate) use graph::DownstreamSettings;
pub use graph::{GraphClient, GraphUser, DEFAULT_GRAPH_URL};
pub use paging::Paged;
pub(crate) use renew::{Renew, Renewal};
