//! Long-running On-Behalf-Of sessions: downstream tokens for a user after the
//! request that carried their token has ended (background jobs, agents).
//!
//! # Where it sits
//!
//! A handler starts a session with
//! [`OboToken::start_session`](crate::OboToken::start_session): one On-Behalf-Of
//! exchange with `offline_access` added, whose refresh token is kept in a
//! [`SessionStore`] under a new random [`SessionKey`]. Later, any task holding the
//! key calls [`Sessions`] (from [`OboLayer::sessions`](crate::OboLayer::sessions)):
//! tokens for any consented scope set, cached per session and scope set, redeemed
//! with the refresh-token grant and the same client credential as On-Behalf-Of.
//!
//! # What it guarantees
//!
//! - The key is 256 random bits, never derived from the user's token; stores name
//!   sessions by a digest of it. The record binds the session to the tenant, the
//!   user's object id and this API's client id; another API's record is unknown,
//!   another user's is refused ([`Sessions::token_for`]).
//! - One refresh at a time per session in a process (concurrent callers of one
//!   scope set share it); each rotated refresh token is stored before the next
//!   refresh reads it.
//! - A session ends: on [`Sessions::end`] (deleted from the store and the local
//!   cache), when Entra refuses its refresh token (`invalid_grant`: revoked,
//!   expired; [`SessionError::SignInAgain`]), or when unused for the idle timeout
//!   ([`session_idle_timeout`](crate::OboConfigBuilder::session_idle_timeout), on
//!   the configured clock; stores also expire entries after it).
//! - Refresh tokens are never logged, never returned, redacted in `Debug`; the
//!   Redis store (feature `redis`) seals them with the L2's keys.
//!
//! # What an attacker sees
//!
//! With the Redis store: keys that are digests of the session key under this
//! API's prefix, and AES-256-GCM ciphertexts whose associated data binds them to
//! the session key and client id (a value moved to another key does not open).
//! The session key itself is the capability: whoever holds it gets the user's
//! delegated tokens from this API.
//!
//! # How it fails
//!
//! Every failure is a [`SessionError`]. Entra unavailable or throttling is
//! [`SessionError::Unavailable`] (the session is kept); a store failure is
//! [`SessionError::Store`] (never taken for an unknown session).

mod error;
mod key;
mod limit;
mod locks;
mod manager;
#[cfg(feature = "redis")]
mod redis_store;
mod store;

pub use error::SessionError;
pub use key::{InvalidSessionKey, SessionKey};
pub(crate) use manager::SessionSettings;
pub use manager::{SessionOwner, SessionToken, Sessions};
#[cfg(feature = "redis")]
pub(crate) use redis_store::RedisSessionStore;
pub use store::{
    MemorySessionStore, RecordVersion, SessionRecord, SessionStore, StoreError, StoreFuture,
};
