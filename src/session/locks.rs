//! [`LockTable`]: one async lock per session, kept exactly while in use.
//!
//! A bounded cache of locks could evict a lock someone holds, and the next caller
//! would get a new one: two refreshes of one session at once, one rotation lost.
//! Here an entry lives while any [`SessionLock`] for it exists (held or waited
//! for) and is removed by the last one dropped, so the table holds only the
//! sessions in use right now and never forgets a held lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

/// The locks of the sessions in use, by session digest.
#[derive(Default)]
pub(crate) struct LockTable {
    map: Mutex<HashMap<[u8; 32], Arc<AsyncMutex<()>>>>,
}

impl LockTable {
    /// The lock of session `digest` (shared with everyone using it right now).
    pub(crate) fn get(&self, digest: [u8; 32]) -> SessionLock<'_> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let mutex = Arc::clone(map.entry(digest).or_default());
        SessionLock {
            table: self,
            digest,
            mutex: Some(mutex),
        }
    }

    /// Sessions with a lock in the table.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A session's lock, kept in its table while this value lives.
pub(crate) struct SessionLock<'a> {
    table: &'a LockTable,
    digest: [u8; 32],
    /// `None` only while being dropped.
    mutex: Option<Arc<AsyncMutex<()>>>,
}

impl SessionLock<'_> {
    /// Waits for the lock.
    pub(crate) async fn lock(&self) -> MutexGuard<'_, ()> {
        self.mutex
            .as_deref()
            .expect("taken only when dropped")
            .lock()
            .await
    }
}

impl Drop for SessionLock<'_> {
    fn drop(&mut self) {
        let mut map = self
            .table
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Released under the table's lock, where every other handle is made: the
        // table's own handle alone means nobody else holds or waits.
        drop(self.mutex.take());
        if map
            .get(&self.digest)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.digest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u32) -> [u8; 32] {
        let mut d = [0u8; 32];
        d[..4].copy_from_slice(&n.to_be_bytes());
        d
    }

    #[tokio::test]
    async fn a_held_lock_stays_whatever_else_comes_and_goes() {
        let table = LockTable::default();
        let held = table.get(digest(0));
        let _guard = held.lock().await;
        // Many other sessions locked and released meanwhile.
        for n in 1..200_000 {
            let other = table.get(digest(n));
            drop(other.lock().await);
        }
        assert_eq!(table.len(), 1, "only the lock in use is kept");
        let again = table.get(digest(0));
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), again.lock())
                .await
                .is_err(),
            "the same session's lock is still held"
        );
    }

    #[tokio::test]
    async fn the_last_user_removes_the_entry_even_when_a_waiter_gives_up() {
        let table = LockTable::default();
        let held = table.get(digest(7));
        let guard = held.lock().await;
        let waiter = table.get(digest(7));
        // A waiter cancelled while waiting.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(10), waiter.lock())
                .await
                .is_err()
        );
        drop(waiter);
        assert_eq!(table.len(), 1);
        drop(guard);
        drop(held);
        assert_eq!(table.len(), 0, "nothing kept once nobody uses it");
    }
}
