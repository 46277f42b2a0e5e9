//! Per-tenant backoff after the token endpoint throttles.
//!
//! # Where it sits
//!
//! [`TokenEndpoint::exchange`](super::endpoint::TokenEndpoint::exchange) asks it
//! before sending anything for a tenant, and tells it how the exchange ended.
//! Only exchanges reach it: a cache hit, a negative-cache hit or an L2 hit never
//! does.
//!
//! # What it guarantees
//!
//! An exchange that ends throttled, its retries used up, closes its tenant: for
//! every user of that tenant, exchanges fail at once with
//! [`OboError::Unavailable`](super::OboError::Unavailable) (503 with
//! `Retry-After`: the time left) without a request, until the backoff elapses.
//! Throttled means HTTP 429, or an error body whose `error_codes` holds 50196 (or
//! whose description starts `AADSTS50196:`, "a client request loop"), whatever
//! the status. The backoff is the answer's `Retry-After` (1 s to
//! [`MAX_RETRY_AFTER`]) or, without one, 1 s doubled per consecutive throttled
//! exchange up to [`MAX_BACKOFF`]. When it elapses, one exchange goes through as
//! a probe while the others keep failing fast for one more step. A token, or an
//! OAuth refusal that is not a throttle, shows Entra answering again: the tenant
//! reopens and its streak starts over. Timeouts and 5xx leave it as it is.
//! So N users of a throttled tenant send one request per step, not N.
//!
//! # State and cost
//!
//! Only tenants throttled recently have an entry (at most [`MAX_TENANTS`],
//! dropped after [`IDLE`] unused): a streak and a deadline, two atomics, no lock
//! held across a request. Times are whole seconds of the configured clock, so a
//! 1 s backoff lasts between 0 and 1 s of real time.
//!
//! # What an attacker sees
//!
//! A user whose own requests make Entra answer 429 or 50196 closes the tenant
//! for every user of it, for at most [`MAX_BACKOFF`] at a time (or
//! [`MAX_RETRY_AFTER`] when Entra asks for longer). That is the trade: Entra
//! throttles per application and tenant, and a throttled tenant asked again by
//! every user only stays throttled longer. Other tenants are unaffected; a
//! hostile `Retry-After` cannot close a tenant for longer than
//! [`MAX_RETRY_AFTER`].

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

/// The first backoff after a throttle without `Retry-After`; it doubles per
/// consecutive throttled exchange.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff after throttles without `Retry-After`.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured (for the tenant, and as the retry delay
/// and the `Retry-After` relayed to clients); larger values are cut to it.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Tenants with backoff state kept at most.
pub(crate) const MAX_TENANTS: u64 = 10_000;
/// A tenant's state is dropped after this long unused.
pub(crate) const IDLE: Duration = Duration::from_secs(600);

/// One throttled tenant.
#[derive(Debug, Default)]
struct Closed {
    /// Consecutive throttled exchanges.
    streak: AtomicU32,
    /// Clock seconds before which exchanges fail fast.
    until: AtomicI64,
}

/// Which tenants are backing off, and until when.
pub(crate) struct TenantBackoff {
    tenants: Cache<Box<str>, Arc<Closed>>,
}

impl TenantBackoff {
    pub(crate) fn new() -> Self {
        Self {
            tenants: Cache::builder()
                .max_capacity(MAX_TENANTS)
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// `Ok` if an exchange for tenant `tid` may be sent at `now` (clock
    /// seconds); else how long to wait. Once a backoff elapses, one caller is
    /// let through as a probe and the others wait one more step.
    pub(crate) fn admit(&self, tid: &str, now: i64) -> Result<(), Duration> {
        let Some(t) = self.tenants.get(tid) else {
            return Ok(());
        };
        let until = t.until.load(Ordering::Acquire);
        if now < until {
            return Err(seconds(until - now));
        }
        let probe_until = now.saturating_add(step(t.streak.load(Ordering::Acquire)));
        match t
            .until
            .compare_exchange(until, probe_until, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(current) => Err(seconds(current.saturating_sub(now))),
        }
    }

    /// An exchange for `tid` ended throttled at `now`, with the answer's
    /// `Retry-After` if any: closes the tenant and returns for how long.
    pub(crate) fn throttled(&self, tid: &str, now: i64, retry_after: Option<Duration>) -> Duration {
        let t = self.tenants.get_with(tid.into(), Arc::default);
        let streak = t
            .streak
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(s.saturating_add(1))
            })
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        let wait = match retry_after {
            Some(ra) => ra.as_secs().clamp(1, MAX_RETRY_AFTER.as_secs()) as i64,
            None => step(streak),
        };
        t.until
            .fetch_max(now.saturating_add(wait), Ordering::AcqRel);
        seconds(wait)
    }

    /// Entra answered `tid` without throttling: the tenant reopens.
    pub(crate) fn answered(&self, tid: &str) {
        if self.tenants.contains_key(tid) {
            self.tenants.invalidate(tid);
        }
    }
}

/// The backoff after `streak` consecutive throttles, in seconds.
fn step(streak: u32) -> i64 {
    let doublings = streak.saturating_sub(1).min(16);
    let secs = FIRST_BACKOFF.as_secs().saturating_mul(1 << doublings);
    secs.min(MAX_BACKOFF.as_secs()) as i64
}

/// A positive number of clock seconds as a `Retry-After` (at least 1 s).
fn seconds(secs: i64) -> Duration {
    Duration::from_secs(secs.max(1).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "tenant-a";

    #[test]
    fn steps_double_up_to_the_maximum() {
        let steps: Vec<i64> = (1..=9).map(step).collect();
        assert_eq!(steps, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(step(u32::MAX), 60);
    }

    #[test]
    fn a_throttled_tenant_fails_fast_until_the_backoff_elapses() {
        let b = TenantBackoff::new();
        assert_eq!(b.admit(T, 100), Ok(()));
        assert_eq!(b.throttled(T, 100, None), Duration::from_secs(1));
        assert_eq!(b.admit(T, 100), Err(Duration::from_secs(1)));
        assert_eq!(b.admit("tenant-b", 100), Ok(()), "other tenants are open");
        // Elapsed: one probe, the others wait another step.
        assert_eq!(b.admit(T, 101), Ok(()));
        assert_eq!(b.admit(T, 101), Err(Duration::from_secs(1)));
        // The probe is throttled: 2 s, then 4 s.
        assert_eq!(b.throttled(T, 101, None), Duration::from_secs(2));
        assert_eq!(b.admit(T, 102), Err(Duration::from_secs(1)));
        assert_eq!(b.admit(T, 103), Ok(()));
        assert_eq!(b.throttled(T, 103, None), Duration::from_secs(4));
        // An answer reopens the tenant and resets the streak.
        b.answered(T);
        assert_eq!(b.admit(T, 103), Ok(()));
        assert_eq!(b.throttled(T, 103, None), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let b = TenantBackoff::new();
        let ra = |s| Some(Duration::from_secs(s));
        assert_eq!(b.throttled(T, 0, ra(30)), Duration::from_secs(30));
        assert_eq!(b.admit(T, 29), Err(Duration::from_secs(1)));
        // A shorter answer does not shorten a backoff already decided.
        assert_eq!(b.throttled(T, 1, ra(0)), Duration::from_secs(1));
        assert_eq!(b.admit(T, 29), Err(Duration::from_secs(1)));
        assert_eq!(b.admit(T, 30), Ok(()));
        b.answered(T);
        assert_eq!(b.throttled(T, 0, ra(u64::MAX)), MAX_RETRY_AFTER);
        // The clock at the end of time: no overflow.
        b.answered(T);
        b.throttled(T, i64::MAX, ra(u64::MAX));
        assert_eq!(b.admit(T, i64::MAX - 1), Err(Duration::from_secs(1)));
    }
}
