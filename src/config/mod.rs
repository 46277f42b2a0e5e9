//! Configuration: built once (builder or environment), validated at build time,
//! shared behind an `Arc`.
//!
//! The builder hands each subsystem its own settings type, defined next to the
//! subsystem that consumes it; nothing below the layer imports this module.
//!
//! - `settings`: [`OboConfig`], the validated value, and its public getters.
//! - `builder`: [`OboConfigBuilder`], its setters, and `build()`, which checks every
//!   field and produces the per-subsystem settings (`jwks::KeySettings`,
//!   `validate::ValidationSettings`, `exchange::ExchangeSettings`,
//!   `downstream::DownstreamSettings`, `policy::Policy`).
//! - `env`: [`OboConfigBuilder::from_env`] and [`OboConfigBuilder::from_lookup`].
//! - `checks`: GUIDs, base URLs, audiences and other field rules.
//! - `l2` (feature `redis`): the Redis L2 settings as given, and their checks.
//! - `managed_identity`: the managed-identity credential's setters, variables and checks.
//! - `resource`: this API as an OAuth protected resource (RFC 9728): setters,
//!   variables and checks, producing `resource_metadata::ResourceSettings`.
//! - `error`: [`ConfigError`], naming the field at fault.

mod builder;
mod checks;
mod env;
mod error;
#[cfg(feature = "redis")]
mod l2;
mod managed_identity;
mod resource;
mod settings;
#[cfg(test)]
mod tests;

pub use builder::{
    OboConfigBuilder, DEFAULT_OBO_CACHE_BYTES, DEFAULT_SESSION_IDLE_TIMEOUT,
    DEFAULT_SESSION_START_LIMIT, DEFAULT_SESSION_START_WINDOW,
};
pub use error::ConfigError;
pub use settings::{OboConfig, DEFAULT_AUTHORITY_HOST};
