//! [`StartLimiter`]: how many sessions one user may start, per process.
//!
//! Each session start costs an On-Behalf-Of exchange and keeps a refresh token;
//! without a bound, one user (or a client looping on `POST /jobs`) can fill the
//! store and send Entra enough identical requests to be throttled
//! (AADSTS50196). Each user — tenant and object id — has a token bucket of
//! `limit` starts, refilled evenly over `window` on the configured clock; a start
//! past it is refused before any exchange, with the time until the next one is
//! admitted.
//!
//! The buckets of the most recent users are kept (bounded); a user idle for a
//! whole window has a full bucket, so dropping theirs loses nothing. The bound
//! is per process: with `n` replicas behind a load balancer a user may start up
//! to `n` times as many.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Users whose buckets are kept at once.
const USERS: u64 = 100_000;

/// A user: tenant id and object id.
type User = (Box<str>, Box<str>);

/// Per-user token buckets of session starts.
pub(crate) struct StartLimiter {
    limit: u32,
    window: Duration,
    buckets: moka::sync::Cache<User, Arc<Mutex<Bucket>>>,
}

/// Starts left (fractional) as of `at` (clock seconds).
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: i64,
}

impl StartLimiter {
    /// `limit` starts (at least 1) per `window` (at least 1 s) and user.
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        let window = window.max(Duration::from_secs(1));
        Self {
            limit: limit.max(1),
            window,
            // LRU, not moka's default TinyLFU: TinyLFU may refuse to admit a
            // new user's bucket while the table is full of others, and a bucket
            // that is not kept is a full one at the next start.
            buckets: moka::sync::Cache::builder()
                .max_capacity(USERS)
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .time_to_idle(window)
                .build(),
        }
    }

    /// Takes one start for user `oid` of tenant `tid` at `now`, or the time until
    /// one is available.
    pub(crate) fn admit(&self, tid: &str, oid: &str, now: i64) -> Result<(), Duration> {
        let limit = f64::from(self.limit);
        let bucket = self.buckets.get_with((tid.into(), oid.into()), || {
            Arc::new(Mutex::new(Bucket {
                tokens: limit,
                at: now,
            }))
        });
        let mut bucket = bucket.lock().unwrap_or_else(PoisonError::into_inner);
        take(&mut bucket, limit, self.window.as_secs_f64(), now)
    }
}

/// The bucket's arithmetic: refill for the time since `bucket.at`, then take one.
fn take(bucket: &mut Bucket, limit: f64, window: f64, now: i64) -> Result<(), Duration> {
    let per_second = limit / window;
    let elapsed = now.saturating_sub(bucket.at).max(0) as f64;
    bucket.tokens = (bucket.tokens + elapsed * per_second).min(limit);
    bucket.at = bucket.at.max(now);
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        Ok(())
    } else {
        let wait = ((1.0 - bucket.tokens) / per_second).ceil().max(1.0);
        Err(Duration::from_secs(wait as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_the_limit_then_one_start_per_refill() {
        let l = StartLimiter::new(3, Duration::from_secs(60));
        let t = 1_000;
        for _ in 0..3 {
            l.admit("t", "a", t).unwrap();
        }
        assert_eq!(l.admit("t", "a", t), Err(Duration::from_secs(20)));
        // Another user, or the same object id in another tenant, is not affected.
        l.admit("t", "b", t).unwrap();
        l.admit("u", "a", t).unwrap();
        assert_eq!(l.admit("t", "a", t + 19), Err(Duration::from_secs(1)));
        l.admit("t", "a", t + 20).unwrap();
        assert!(l.admit("t", "a", t + 20).is_err());
        // A whole window later, the full burst again (never more).
        for _ in 0..3 {
            l.admit("t", "a", t + 1_000).unwrap();
        }
        assert!(l.admit("t", "a", t + 1_000).is_err());
    }

    /// A flood of distinct users fills the table: a user's bucket still holds
    /// (never a fresh, full one on every start).
    #[test]
    fn a_full_table_still_limits_each_user() {
        let l = StartLimiter::new(1, Duration::from_secs(60));
        let t = 1_000;
        for n in 0..USERS + 1_000 {
            l.admit("t", &n.to_string(), t).unwrap();
        }
        l.buckets.run_pending_tasks();
        l.admit("t", "x", t).unwrap();
        l.buckets.run_pending_tasks();
        for _ in 0..5 {
            assert!(l.admit("t", "x", t).is_err());
            l.buckets.run_pending_tasks();
        }
        assert!(l.buckets.entry_count() <= USERS);
    }

    #[test]
    fn a_clock_going_back_never_grants_more() {
        let mut b = Bucket {
            tokens: 0.0,
            at: 100,
        };
        assert!(take(&mut b, 2.0, 60.0, 50).is_err());
        assert!(take(&mut b, 2.0, 60.0, 100).is_err());
        take(&mut b, 2.0, 60.0, 130).unwrap();
    }
}
