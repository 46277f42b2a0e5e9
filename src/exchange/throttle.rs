//! Backoff after the token endpoint throttles: per user, and per tenant on
//! evidence that the tenant (not one user) is throttled.
//!
//! # Where it sits
//!
//! [`TokenEndpoint`](super::endpoint::TokenEndpoint) asks it before sending
//! anything for a caller (a tenant and a user: the inbound token's `oid`, or the
//! `oid` of the session's owner), and tells it how the exchange ended. Only exchanges
//! reach it: a cache hit, a negative-cache hit or an L2 hit never does.
//!
//! # What it guarantees
//!
//! An exchange that ends throttled, its retries used up, closes its **caller**:
//! that user's exchanges fail at once with
//! [`OboError::Unavailable`](super::OboError::Unavailable) (503 with
//! `Retry-After`: the time left) without a request, until the backoff elapses.
//! Other users of the tenant are not affected by one user's throttling:
//!
//! - **A request loop** (AADSTS50196 in `error_codes`, or a description starting
//!   `AADSTS50196:`, whatever the status) is how Entra throttles one client asking
//!   the same thing for one user too often: it closes that caller only.
//! - **HTTP 429 without 50196** may be the tenant's (or the application's)
//!   throttling, or one user's: it closes the caller, and it closes the **tenant**
//!   (every user fails fast) only on evidence from more than one user — a 429 for
//!   another caller of the tenant within [`EVIDENCE_WINDOW`] — or when the tenant
//!   is already backing off (its probe was throttled again).
//!
//! A backoff is the answer's `Retry-After` (1 s to [`MAX_RETRY_AFTER`]) or,
//! without one, 1 s doubled per consecutive throttled exchange up to
//! [`MAX_BACKOFF`]. When it elapses, one exchange goes through as a probe while
//! the others keep failing fast for one more step. A token, or an OAuth refusal
//! that is not a throttle, shows Entra answering again: the caller and its tenant
//! reopen and their streaks start over. Timeouts and 5xx leave them as they are.
//! So N users of a throttled tenant send two requests (the evidence) and then one
//! per step, not N; one user in a loop sends one per step of their own backoff.
//!
//! # State and cost
//!
//! Only callers and tenants throttled recently have an entry (at most
//! [`MAX_CALLERS`] and [`MAX_TENANTS`], dropped after [`IDLE`] unused): a streak
//! and a deadline, two atomics, and per tenant the last caller a 429 came from
//! (a short lock, never held across a request). Times are whole seconds of the
//! configured clock, so a 1 s backoff lasts between 0 and 1 s of real time.
//!
//! # What an attacker sees
//!
//! A user whose own requests make Entra answer 50196 or 429 closes only their
//! own exchanges. A session is its owner to the backoff (not its refresh token),
//! so one user's several sessions, or a session and the user's own exchanges,
//! are one user: never evidence against the tenant, and a new session does not
//! escape the user's backoff. Closing a tenant for every user takes 429s for two users of it
//! within [`EVIDENCE_WINDOW`], for at most [`MAX_BACKOFF`] at a time (or
//! [`MAX_RETRY_AFTER`] when Entra asks for longer): that is the trade, since
//! Entra throttles per application and tenant, and a throttled tenant asked again
//! by every user only stays throttled longer. Other tenants are unaffected; a
//! hostile `Retry-After` cannot close anything for longer than
//! [`MAX_RETRY_AFTER`].

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::{self, BackoffScope};
use std::time::Duration;

use moka::policy::EvictionPolicy;
use moka::sync::Cache;

/// The first backoff after a throttle without `Retry-After`; it doubles per
/// consecutive throttled exchange.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff after throttles without `Retry-After`.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured (for callers and tenants, and as the retry
/// delay and the `Retry-After` relayed to clients); larger values are cut to it.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// 429s for two callers of a tenant this close together close the tenant.
pub(crate) const EVIDENCE_WINDOW: Duration = MAX_BACKOFF;
/// Tenants with backoff state kept at most.
pub(crate) const MAX_TENANTS: u64 = 10_000;
/// Callers (tenant and user) with backoff state kept at most.
pub(crate) const MAX_CALLERS: u64 = 100_000;
/// A caller's or tenant's state is dropped after this long unused.
pub(crate) const IDLE: Duration = Duration::from_secs(600);

/// How an exchange was throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// AADSTS50196, a request loop: one user's identical requests.
    Loop,
    /// HTTP 429 without 50196: the user's, or the tenant's.
    TooMany,
}

/// One throttled caller or tenant.
#[derive(Debug, Default)]
struct Closed {
    /// Consecutive throttled exchanges.
    streak: AtomicU32,
    /// Clock seconds before which exchanges fail fast.
    until: AtomicI64,
}

impl Closed {
    /// `Ok` if an exchange may be sent at `now`; once a backoff elapses, one
    /// caller is let through as a probe and the others wait one more step.
    fn admit(&self, now: i64) -> Result<(), Duration> {
        let until = self.until.load(Ordering::Acquire);
        if now < until {
            return Err(seconds(until - now));
        }
        let probe_until = now.saturating_add(step(self.streak.load(Ordering::Acquire)));
        match self
            .until
            .compare_exchange(until, probe_until, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(current) => Err(seconds(current.saturating_sub(now))),
        }
    }

    /// One more throttled exchange at `now`: closed for `Retry-After` or the
    /// next step; returns for how long (seconds).
    fn close(&self, now: i64, retry_after: Option<Duration>) -> i64 {
        let streak = self
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
        self.until
            .fetch_max(now.saturating_add(wait), Ordering::AcqRel);
        wait
    }
}

/// The last caller of a tenant a 429 came from, and when (clock seconds).
type Witness = Mutex<Option<(Box<str>, i64)>>;

/// Which callers and tenants are backing off, and until when.
pub(crate) struct Backoff {
    tenants: Cache<Box<str>, Arc<Closed>>,
    callers: Cache<Box<str>, Arc<Closed>>,
    witnesses: Cache<Box<str>, Arc<Witness>>,
}

impl Backoff {
    /// LRU (not moka's default TinyLFU, which may refuse to keep a new entry
    /// while the table is full): a backoff just decided is always kept.
    pub(crate) fn new() -> Self {
        Self {
            tenants: Cache::builder()
                .max_capacity(MAX_TENANTS)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_idle(IDLE)
                .build(),
            callers: Cache::builder()
                .max_capacity(MAX_CALLERS)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_idle(IDLE)
                .build(),
            witnesses: Cache::builder()
                .max_capacity(MAX_TENANTS)
                .eviction_policy(EvictionPolicy::lru())
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// `Ok` if an exchange for `caller` of tenant `tid` may be sent at `now`
    /// (clock seconds); else how long to wait. The caller's own backoff first,
    /// then the tenant's; each lets one probe through once it elapses.
    pub(crate) fn admit(&self, tid: &str, caller: &str, now: i64) -> Result<(), Duration> {
        if let Some(c) = self.callers.get(&caller_key(tid, caller)) {
            c.admit(now)?;
        }
        match self.tenants.get(tid) {
            Some(t) => t.admit(now),
            None => Ok(()),
        }
    }

    /// An exchange for `caller` of `tid` ended throttled (`how`) at `now`, with
    /// the answer's `Retry-After` if any: closes the caller, and the tenant on
    /// evidence (see the module docs). Returns how long the caller waits.
    pub(crate) fn throttled(
        &self,
        tid: &str,
        caller: &str,
        how: Throttle,
        now: i64,
        retry_after: Option<Duration>,
    ) -> Duration {
        let mut wait = self
            .callers
            .get_with(caller_key(tid, caller), Arc::default)
            .close(now, retry_after);
        metrics::backoff(BackoffScope::User);
        if how == Throttle::TooMany && self.tenant_evidence(tid, caller, now) {
            let tenant = self.tenants.get_with(tid.into(), Arc::default);
            let closed_for = tenant.close(now, retry_after);
            metrics::backoff(BackoffScope::Tenant);
            tracing::warn!(
                tid,
                wait = ?seconds(closed_for),
                "token endpoint throttling this tenant for several users; every exchange for it waits"
            );
            wait = wait.max(closed_for);
        }
        seconds(wait)
    }

    /// Whether a 429 for `caller` at `now` shows the tenant throttled: it is
    /// backing off already, or another caller drew a 429 within
    /// [`EVIDENCE_WINDOW`]. Otherwise remembers `caller` as the witness.
    fn tenant_evidence(&self, tid: &str, caller: &str, now: i64) -> bool {
        if self.tenants.contains_key(tid) {
            return true;
        }
        let witness = self.witnesses.get_with(tid.into(), Arc::default);
        let mut last = witness.lock().unwrap_or_else(|p| p.into_inner());
        let window = EVIDENCE_WINDOW.as_secs() as i64;
        let other_recently = last
            .as_ref()
            .is_some_and(|(who, at)| &**who != caller && now.saturating_sub(*at) < window);
        *last = (!other_recently).then(|| (caller.into(), now));
        other_recently
    }

    /// Entra answered `caller` of `tid` without throttling: the caller and the
    /// tenant reopen, and the tenant's witness is forgotten.
    pub(crate) fn answered(&self, tid: &str, caller: &str) {
        let key = caller_key(tid, caller);
        if self.callers.contains_key(&key) {
            self.callers.invalidate(&key);
        }
        if self.tenants.contains_key(tid) {
            self.tenants.invalidate(tid);
        }
        if self.witnesses.contains_key(tid) {
            self.witnesses.invalidate(tid);
        }
    }
}

/// A caller's entry: the tenant and the caller, separated by a character
/// neither holds.
fn caller_key(tid: &str, caller: &str) -> Box<str> {
    format!("{tid}\n{caller}").into()
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
    const A: &str = "user-a";
    const B: &str = "user-b";
    const C: &str = "user-c";

    #[test]
    fn steps_double_up_to_the_maximum() {
        let steps: Vec<i64> = (1..=9).map(step).collect();
        assert_eq!(steps, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(step(u32::MAX), 60);
    }

    #[test]
    fn a_loop_closes_that_user_only() {
        let b = Backoff::new();
        assert_eq!(b.admit(T, A, 100), Ok(()));
        assert_eq!(
            b.throttled(T, A, Throttle::Loop, 100, None),
            Duration::from_secs(1)
        );
        assert_eq!(b.admit(T, A, 100), Err(Duration::from_secs(1)));
        assert_eq!(b.admit(T, B, 100), Ok(()), "another user of the tenant");
        // Loops of two users are two loops: the tenant stays open.
        b.throttled(T, B, Throttle::Loop, 100, None);
        assert_eq!(b.admit(T, C, 100), Ok(()));
        // Elapsed: one probe, then A's backoff doubles: 2 s, then 4 s.
        assert_eq!(b.admit(T, A, 101), Ok(()));
        assert_eq!(b.admit(T, A, 101), Err(Duration::from_secs(1)));
        assert_eq!(
            b.throttled(T, A, Throttle::Loop, 101, None),
            Duration::from_secs(2)
        );
        assert_eq!(b.admit(T, A, 102), Err(Duration::from_secs(1)));
        assert_eq!(b.admit(T, A, 103), Ok(()));
        assert_eq!(
            b.throttled(T, A, Throttle::Loop, 103, None),
            Duration::from_secs(4)
        );
        // Another user's answer does not reopen A; A's own does, streak reset.
        b.answered(T, C);
        assert!(b.admit(T, A, 104).is_err());
        b.answered(T, A);
        assert_eq!(b.admit(T, A, 104), Ok(()));
        assert_eq!(
            b.throttled(T, A, Throttle::Loop, 104, None),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_429_closes_the_tenant_only_with_a_second_users_429() {
        let b = Backoff::new();
        // One user's 429s, however many: that user only.
        b.throttled(T, A, Throttle::TooMany, 100, None);
        assert_eq!(b.admit(T, B, 100), Ok(()));
        b.throttled(T, A, Throttle::TooMany, 101, None);
        assert_eq!(b.admit(T, B, 101), Ok(()));
        // A second user's 429 within the window: the tenant closes for all.
        assert_eq!(
            b.throttled(T, B, Throttle::TooMany, 102, None),
            Duration::from_secs(1)
        );
        assert_eq!(b.admit(T, C, 102), Err(Duration::from_secs(1)));
        assert_eq!(
            b.admit("tenant-b", C, 102),
            Ok(()),
            "other tenants are open"
        );
        // One probe per step; a throttled probe doubles the tenant's backoff.
        assert_eq!(b.admit(T, C, 103), Ok(()));
        assert_eq!(b.admit(T, C, 103), Err(Duration::from_secs(1)));
        assert_eq!(
            b.throttled(T, C, Throttle::TooMany, 103, None),
            Duration::from_secs(2)
        );
        assert_eq!(b.admit(T, "user-d", 104), Err(Duration::from_secs(1)));
        assert_eq!(b.admit(T, "user-d", 105), Ok(()));
        // An answer reopens the tenant and forgets the witness.
        b.answered(T, "user-d");
        assert_eq!(b.admit(T, "user-d", 105), Ok(()));
        b.throttled(T, A, Throttle::TooMany, 200, None);
        assert_eq!(b.admit(T, "user-d", 200), Ok(()));
    }

    #[test]
    fn evidence_older_than_the_window_does_not_count() {
        let b = Backoff::new();
        let window = EVIDENCE_WINDOW.as_secs() as i64;
        b.throttled(T, A, Throttle::TooMany, 100, None);
        b.throttled(T, B, Throttle::TooMany, 100 + window, None);
        assert_eq!(b.admit(T, C, 100 + window), Ok(()));
        // B is now the witness; A within the window closes the tenant.
        b.throttled(T, A, Throttle::TooMany, 101 + window, None);
        assert!(b.admit(T, C, 101 + window).is_err());
        // A loop is never evidence against the tenant.
        let b = Backoff::new();
        b.throttled(T, A, Throttle::TooMany, 100, None);
        b.throttled(T, B, Throttle::Loop, 100, None);
        assert_eq!(b.admit(T, C, 100), Ok(()));
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let b = Backoff::new();
        let ra = |s| Some(Duration::from_secs(s));
        assert_eq!(
            b.throttled(T, A, Throttle::Loop, 0, ra(30)),
            Duration::from_secs(30)
        );
        assert_eq!(b.admit(T, A, 29), Err(Duration::from_secs(1)));
        // A shorter answer does not shorten a backoff already decided.
        assert_eq!(
            b.throttled(T, A, Throttle::Loop, 1, ra(0)),
            Duration::from_secs(1)
        );
        assert_eq!(b.admit(T, A, 29), Err(Duration::from_secs(1)));
        assert_eq!(b.admit(T, A, 30), Ok(()));
        b.answered(T, A);
        assert_eq!(
            b.throttled(T, A, Throttle::Loop, 0, ra(u64::MAX)),
            MAX_RETRY_AFTER
        );
        // The tenant's Retry-After, on evidence.
        b.throttled(T, B, Throttle::TooMany, 0, ra(30));
        assert_eq!(
            b.throttled(T, C, Throttle::TooMany, 0, ra(45)),
            Duration::from_secs(45)
        );
        assert_eq!(b.admit(T, "user-d", 44), Err(Duration::from_secs(1)));
        // The clock at the end of time: no overflow.
        b.answered(T, A);
        b.throttled(T, A, Throttle::Loop, i64::MAX, ra(u64::MAX));
        assert_eq!(b.admit(T, A, i64::MAX - 1), Err(Duration::from_secs(1)));
    }
}
