//! The Redis L2 under the in-memory On-Behalf-Of cache (feature `redis`): one
//! cache shared by every replica of an API.
//!
//! - [`tier`]: read-through and write-through of entries, Redis keys, associated data.
//! - [`seal`]: AES-256-GCM sealing of values, key ids and rotation.
//! - [`store`]: the Redis connection: lazy, reconnecting, timed out, with a breaker.
//! - [`client`]: the one function building a Redis client (standalone or cluster).
//! - [`cluster`]: the Redis Cluster connection, with one breaker per master.
//! - [`tls`]: `rediss://` with the system roots or a private CA (`OBO_REDIS_CA_FILE`).
//! - [`entra_auth`]: Microsoft Entra authentication (`OBO_REDIS_ENTRA`): `AUTH`
//!   with this API's token for Azure Managed Redis, renewed before it expires.
//! - [`settings`]: the validated settings the configuration builder hands over.
//!
//! # Where it sits
//!
//! A request's token is looked up in the negative cache, then in the in-memory
//! L1 (an L1 hit never touches Redis). On an L1 miss, inside the per-key
//! single-flight of the L1, the L2 is read: an entry that opens and is fresh by
//! the configured clock is served and lands in L1; otherwise the token is
//! exchanged at Entra and written through to Redis with `SET … PX ttl`, `ttl`
//! being the time the entry stays fresh (after which no replica would serve it).
//!
//! # What Redis sees
//!
//! Keys are `prefix + hex(SHA-256("axum-obo-l2" || client id || cache key))`: no
//! tenant, user, scope or token in clear, and unlinkable to the L1 key. Values are
//! `version || key id || nonce || AES-256-GCM(token, expiry, freshness, scopes)`
//! with a random 96-bit nonce per write; the associated data binds the format
//! version, the prefix, the client id and the cache key, so a value copied under
//! another user's key (or modified in any bit) fails to open and is a miss.
//!
//! # Rotation
//!
//! Writes use the current key (`OBO_CACHE_KEY`); reads accept it and every old key
//! (`OBO_CACHE_OLD_KEYS`), chosen by the 4-byte key id stored with the value.
//! Deploy the new key with the old one listed as old everywhere, then drop the
//! old key once its entries have expired (at most one token lifetime).
//!
//! # Two replicas missing at once
//!
//! Single-flight is per replica. Two replicas missing the same entry at the same
//! moment both exchange (at most one exchange per replica), both get valid
//! tokens from Entra, and the later write wins in Redis. Nothing is locked across
//! replicas: a lock would put Redis on the critical path of every miss.
//!
//! # Failures
//!
//! Redis never fails a request. Every call is bounded by the L2 timeout; an
//! error, a timeout or a value that does not open is a miss (the token is
//! exchanged as without L2). After a failure the L2 is skipped for one second,
//! then one call probes it; the connection manager reconnects in the background.
//! In a Redis Cluster the breaker is per master: a dead master costs misses for
//! its own keys only (see [`cluster`]).
//! A failure streak logs one warning, recovery one info line; counters are in
//! [`OboStats`](crate::stats::OboStats).

mod client;
mod cluster;
mod entra_auth;
mod namespace;
mod seal;
mod settings;
mod store;
mod tier;
mod tls;

pub(crate) use client::{build_client, RedisOptions};
pub(crate) use entra_auth::{EntraAuth, EntraRedisSettings};
pub(crate) use namespace::SealedNamespace;
pub(crate) use seal::L2Key;
pub(crate) use settings::{split_urls, L2Settings};
pub(crate) use store::Outcome;
pub(crate) use tier::L2Cache;
pub(crate) use tls::RedisCa;
