//! Replay detection: a `jti` is accepted once per issuer while its token is valid.
//!
//! In process (the default), the cache is bounded (moka evicts the least useful entries past the
//! capacity) and each entry expires when its token does. Shared (`--redis-url`), each entry is
//! one Redis key written with `SET NX EX` (atomic: of two replicas, exactly one is first) and
//! expiring with its token. A shared check that cannot be made refuses the call: accepting it
//! would accept a replay the other replicas may have seen.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use moka::Expiry;
use moka::sync::Cache;

use crate::shared_cache::{SharedCache, SharedCacheError};

/// Remembers each `(iss, jti)` until its token's `exp` (plus the clock skew) has passed.
pub enum ReplayCache {
    InProcess(Cache<(String, String), u64>),
    Shared(SharedCache),
}

/// The stored value is the instant (seconds since the epoch) after which the entry may go.
struct UntilExpiry;

impl Expiry<(String, String), u64> for UntilExpiry {
    fn expire_after_create(&self, _: &(String, String), forget_at: &u64, _: std::time::Instant) -> Option<Duration> {
        Some(Duration::from_secs(forget_at.saturating_sub(now_seconds()).max(1)))
    }
}

impl ReplayCache {
    pub fn in_process(capacity: u64) -> ReplayCache {
        ReplayCache::InProcess(Cache::builder().max_capacity(capacity).expire_after(UntilExpiry).build())
    }

    /// Records the `jti`; `Ok(false)` if it was already seen (a replay). Atomic: of two
    /// concurrent calls with the same `jti`, exactly one is first.
    pub async fn first_use(&self, issuer: &str, jti: &str, forget_at: u64) -> Result<bool, SharedCacheError> {
        match self {
            ReplayCache::InProcess(seen) => {
                Ok(seen.entry((issuer.to_owned(), jti.to_owned())).or_insert(forget_at).is_fresh())
            }
            ReplayCache::Shared(shared) => {
                // Issuer and jti are both caller-chosen: the length prefix keeps them apart.
                let key = format!("jti:{}:{issuer}{jti}", issuer.len());
                let ttl = Duration::from_secs(forget_at.saturating_sub(now_seconds()).max(1));
                shared.set_if_absent(&key, "1", ttl, "replay").await
            }
        }
    }
}

pub fn now_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_jti_is_accepted_once_per_issuer() {
        let cache = ReplayCache::in_process(100);
        let later = now_seconds() + 60;
        assert!(cache.first_use("a", "j1", later).await.unwrap());
        assert!(!cache.first_use("a", "j1", later).await.unwrap());
        assert!(cache.first_use("b", "j1", later).await.unwrap());
    }
}
