//! Time, injectable so that expiry can be tested without sleeping.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time, in whole seconds since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
///
/// Clones share their time: advancing one advances every clone, so a test keeps
/// a clone and hands another to
/// [`OboConfigBuilder::clock`](crate::OboConfigBuilder::clock). Everything that
/// expires in the crate follows it: validated tokens, the On-Behalf-Of cache, and
/// the session cache ([`Sessions`](crate::session::Sessions) serves a cached
/// token while it is fresh on this clock), idle sessions and the session start
/// limit.
///
/// ```
/// use axum_obo::clock::{Clock, ManualClock};
/// let clock = ManualClock::at(1_700_000_000);
/// clock.advance(std::time::Duration::from_secs(30));
/// assert_eq!(clock.now(), 1_700_000_030);
/// let shared = clock.clone();
/// shared.advance(std::time::Duration::from_secs(10));
/// assert_eq!(clock.now(), 1_700_000_040, "clones share their time");
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock showing `unix_seconds`.
    pub fn at(unix_seconds: i64) -> Self {
        Self(Arc::new(AtomicI64::new(unix_seconds)))
    }

    /// A clock showing the current system time (and then standing still).
    pub fn now_system() -> Self {
        Self::at(SystemClock.now())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, unix_seconds: i64) {
        self.0.store(unix_seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
