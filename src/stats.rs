//! Numbers for health and metrics endpoints: the On-Behalf-Of cache's counters
//! ([`OboStats`], from [`OboLayer::stats`](crate::OboLayer::stats)) and its size
//! ([`CacheUsage`], from [`OboLayer::cache_usage`](crate::OboLayer::cache_usage)).
//! Both serialize to JSON as flat objects of integers.

use serde::Serialize;

pub use crate::exchange::OboStats;

/// How much the On-Behalf-Of cache holds, after pending evictions have run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CacheUsage {
    /// Cached downstream tokens.
    pub entries: u64,
    /// Their weight in bytes, as counted against
    /// [`OboConfigBuilder::obo_cache_max_bytes`](crate::OboConfigBuilder::obo_cache_max_bytes).
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_flat_objects() {
        let usage = serde_json::to_value(CacheUsage {
            entries: 2,
            bytes: 900,
        })
        .unwrap();
        assert_eq!(usage, serde_json::json!({ "entries": 2, "bytes": 900 }));
        let stats = serde_json::to_value(OboStats::default()).unwrap();
        assert_eq!(stats["hits"], 0);
        assert_eq!(stats["l2_writes"], 0);
    }
}
