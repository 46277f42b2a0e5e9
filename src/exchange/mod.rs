//! The On-Behalf-Of exchange: an inbound user token in, a downstream token out.
//!
//! - `exchanger`: [`Exchanger`] and its [`ExchangeSettings`]: pre-flight checks,
//!   cache lookup, single-flight fill (L2, then the token endpoint).
//! - [`endpoint`]: the token request, the pure interpretation of its answers,
//!   bounded retries.
//! - [`claims`]: the `claims` field (client capabilities merged with a challenge).
//! - [`cache`]: the token cache (single-flight, negative cache, counters).
//! - [`throttle`]: the backoff after the token endpoint throttles (per user; per
//!   tenant on evidence from several users).
//! - `l2` (feature `redis`): the encrypted Redis L2 shared by replicas.
//! - [`error`]: why an exchange failed.
//!
//! Credentials are inputs of the exchange and live in [`crate::credential`].

pub(crate) mod cache;
pub(crate) mod claims;
pub(crate) mod endpoint;
pub(crate) mod error;
mod exchanger;
#[cfg(feature = "redis")]
pub(crate) mod l2;
pub(crate) mod throttle;

pub use cache::OboStats;
pub use error::OboError;
pub(crate) use exchanger::{cache_entry, ExchangeSettings, Exchanger};
