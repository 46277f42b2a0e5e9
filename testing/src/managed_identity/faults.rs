//! Scripted failures of the managed identity endpoint: [`ManagedIdentityFault`] and its queue.

use std::time::Duration;

use crate::fault_queue::FaultQueue;

/// A failure the managed identity endpoint answers instead of serving the request; see
/// [`ManagedIdentityStandIn::inject_fault`](super::ManagedIdentityStandIn::inject_fault).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagedIdentityFault {
    /// That status (e.g. `500`, `503`) with the platform's JSON error body; a number that is
    /// not an HTTP status means 500.
    Status(u16),
    /// `503` with a `Retry-After` header (seconds), as the platform sends while it starts.
    Unavailable {
        /// `Retry-After` seconds.
        retry_after: u64,
    },
    /// Waits this long, then serves the request normally.
    Delay(Duration),
    /// Serves the request, but with these expiry fields (JSON numbers) in place of the
    /// usual `expires_on` string: a broken or hostile platform (`i64::MAX`, `i64::MIN`).
    Expiry {
        /// `expires_in`, left out when `None`.
        expires_in: Option<i64>,
        /// `expires_on`, left out when `None`.
        expires_on: Option<i64>,
    },
}

/// Pending faults.
#[derive(Debug, Default)]
pub(super) struct Faults {
    queue: FaultQueue<ManagedIdentityFault>,
}

impl Faults {
    pub(super) fn inject(&mut self, fault: ManagedIdentityFault, times: Option<usize>) {
        self.queue.push(fault, times);
    }

    pub(super) fn clear(&mut self) {
        self.queue.clear();
    }

    /// The fault for the next request, if any (consumes one use of it).
    pub(super) fn next(&mut self) -> Option<ManagedIdentityFault> {
        self.queue.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_queue_up_and_run_out() {
        let mut faults = Faults::default();
        faults.inject(ManagedIdentityFault::Status(500), Some(1));
        faults.inject(ManagedIdentityFault::Status(503), Some(0));
        faults.inject(ManagedIdentityFault::Status(503), None);
        assert_eq!(faults.next(), Some(ManagedIdentityFault::Status(500)));
        assert_eq!(faults.next(), Some(ManagedIdentityFault::Status(503)));
        assert_eq!(faults.next(), Some(ManagedIdentityFault::Status(503)));
        faults.clear();
        assert_eq!(faults.next(), None);
    }
}
