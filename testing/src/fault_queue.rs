//! The queue of scripted faults every stand-in shares: faults are answered in the order
//! they were injected, each for a number of requests (`None`: until cleared).

use std::collections::VecDeque;

/// Pending faults of one kind; `(fault, remaining)` with `None` remaining meaning until
/// cleared.
#[derive(Debug)]
pub(crate) struct FaultQueue<F>(VecDeque<(F, Option<usize>)>);

impl<F> Default for FaultQueue<F> {
    fn default() -> Self {
        Self(VecDeque::new())
    }
}

impl<F: Clone> FaultQueue<F> {
    /// Queues `fault` for the next `times` requests (`Some(0)`: ignored).
    pub(crate) fn push(&mut self, fault: F, times: Option<usize>) {
        if times != Some(0) {
            self.0.push_back((fault, times));
        }
    }

    /// Forgets every pending fault.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// The fault for the next request, if any, consuming one use of it.
    pub(crate) fn take(&mut self) -> Option<F> {
        let (fault, remaining) = self.0.front_mut()?;
        let fault = fault.clone();
        if let Some(n) = remaining {
            *n -= 1;
            if *n == 0 {
                self.0.pop_front();
            }
        }
        Some(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_answered_in_order_and_run_out() {
        let mut q = FaultQueue::default();
        q.push('a', Some(2));
        q.push('z', Some(0));
        q.push('b', Some(1));
        q.push('c', None);
        let taken: Vec<_> = (0..6).map(|_| q.take()).collect();
        assert_eq!(
            taken,
            [
                Some('a'),
                Some('a'),
                Some('b'),
                Some('c'),
                Some('c'),
                Some('c')
            ]
        );
        q.clear();
        assert_eq!(q.take(), None);
    }
}
