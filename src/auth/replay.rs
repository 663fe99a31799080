//! Replay detection: a `jti` is accepted once per issuer while its token is valid. The cache is
//! bounded (moka evicts the least useful entries past the capacity) and each entry expires when
//! its token does, so memory is bounded by the capacity whatever the traffic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moka::sync::Cache;
use moka::Expiry;

/// Remembers each `(iss, jti)` until its token's `exp` (plus the clock skew) has passed.
pub struct ReplayCache {
    seen: Cache<(String, String), u64>,
}

/// The stored value is the instant (seconds since the epoch) after which the entry may go.
struct UntilExpiry;

impl Expiry<(String, String), u64> for UntilExpiry {
    fn expire_after_create(&self, _: &(String, String), forget_at: &u64, _: std::time::Instant) -> Option<Duration> {
        Some(Duration::from_secs(forget_at.saturating_sub(now_seconds()).max(1)))
    }
}

impl ReplayCache {
    pub fn new(capacity: u64) -> ReplayCache {
        ReplayCache { seen: Cache::builder().max_capacity(capacity).expire_after(UntilExpiry).build() }
    }

    /// Records the `jti`; false if it was already seen (a replay). Atomic: of two concurrent
    /// calls with the same `jti`, exactly one is first.
    pub fn first_use(&self, issuer: &str, jti: &str, forget_at: u64) -> bool {
        self.seen.entry((issuer.to_owned(), jti.to_owned())).or_insert(forget_at).is_fresh()
    }
}

pub fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_accepted_once_per_issuer() {
        let cache = ReplayCache::new(100);
        let later = now_seconds() + 60;
        assert!(cache.first_use("a", "j1", later));
        assert!(!cache.first_use("a", "j1", later));
        assert!(cache.first_use("b", "j1", later));
    }
}
