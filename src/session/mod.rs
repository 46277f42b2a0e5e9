//! Long-running On-Behalf-Of sessions: downstream tokens for a user after the
//! request that carried their token has ended (background jobs, agents).
//!
//! # Where it sits
//!
//! A handler starts a session with
//! [`OboContext::start_session`](crate::layer::OboContext::start_session) (the
//! context is an extractor too): one On-Behalf-Of exchange with `offline_access`
//! added, whose refresh token is kept in a [`SessionStore`] under a new random
//! [`SessionKey`] and whose access token is the session's first, cached.
//! [`OboToken::start_session`](crate::OboToken::start_session) does the same after
//! the extractor's own exchange (two in all). Later, any task holding the
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
//!   scope set share it; the session's lock lives exactly while someone holds or
//!   waits for it, never evicted); each rotated refresh token is stored before
//!   the next refresh reads it. Every write to a stored session is
//!   compare-and-set ([`SessionStore::replace`]): a touch never writes back a
//!   refresh token another replica has rotated meanwhile.
//! - A rotated refresh token the store fails to take (a transient error) is kept
//!   in this process's memory and redeemed by the session's next refresh instead
//!   of the stored one, which a strict Entra has spent; it is dropped once
//!   stored, when the session is found ended, or once unused for the idle
//!   timeout or 28 hours (the longest token lifetime), whichever is longer (a
//!   session ended on another replica does not leave it in memory for ever).
//!   The failing call answers [`SessionError::Store`].
//! - Starts are bounded per user (tenant and object id): a token bucket of
//!   [`session_start_limit`](crate::OboConfigBuilder::session_start_limit)
//!   starts (default 10 per minute), per process, on the configured clock. Past
//!   it, [`SessionError::TooManySessions`] (429 with `Retry-After` in a
//!   request), before any exchange: a client looping on "start a job" neither
//!   fills the store nor draws Entra's throttling (AADSTS50196) on the tenant.
//! - A session ends: on [`Sessions::end`] (deleted from the store and the local
//!   cache; once it returns, the session is ended for every replica sharing the
//!   store, and a refresh or touch already under way, here or on another
//!   replica, writes nothing back and answers [`SessionError::Unknown`]; every
//!   use reads the store first, so no replica serves an access token it has
//!   cached for an ended session), when
//!   Entra refuses its refresh token (`invalid_grant`: revoked,
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
