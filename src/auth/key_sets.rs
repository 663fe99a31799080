//! Key sets fetched from a trusted issuer's JWKS URL or an allow-listed `jku`.
//!
//! Everything here can be triggered by an unauthenticated caller (the token is not yet verified
//! when its key is looked up), so every path is bounded: per issuer, one fetch in flight and at
//! most one fetch per `jwks_min_refresh_seconds`, whatever the URL; each set is read as a stream
//! and abandoned past `jwks_max_bytes`; each fetched set is trusted for at most
//! `jwks_max_cache_seconds` (less if its `Cache-Control: max-age` says so), so a key the issuer
//! removes stops working within that time; the cache of sets is bounded in count.
//!
//! With a shared cache (`--redis-url`), a fetched set is also written to Redis with its
//! trusted-until time as the key's expiry, and a replica missing a set reads it there before
//! fetching: a fleet fetches each set once per refresh, not once per replica. A Redis failure
//! here is logged and counted, and the replica fetches for itself (the keys stay as trustworthy).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use moka::sync::Cache;
use url::Url;

use super::{AuthConfig, AuthError};
use crate::metrics;
use crate::shared_cache::SharedCache;
use crate::telemetry::loggable;

/// Fetched key sets kept at once, across issuers and URLs.
const CACHED_SETS: u64 = 256;

struct FetchedSet {
    keys: Vec<Jwk>,
    trusted_until: Instant,
}

/// Per issuer: the time of the last fetch, behind a lock that is held for the fetch itself (one
/// fetch in flight per issuer; callers waiting for it then read its result from the cache).
type LastFetch = tokio::sync::Mutex<Option<Instant>>;

pub struct KeySets {
    sets: Cache<(String, String), Arc<FetchedSet>>,
    last_fetch: HashMap<String, LastFetch>,
    http: reqwest::Client,
    min_refresh: Duration,
    max_cache: Duration,
    max_bytes: usize,
    timeout: Duration,
    shared: Option<SharedCache>,
}

/// A key set as stored in the shared cache.
#[derive(serde::Serialize, serde::Deserialize)]
struct SharedSet {
    keys: Vec<Jwk>,
    /// Seconds since the epoch.
    #[serde(rename = "trustedUntil")]
    trusted_until: u64,
}

impl KeySets {
    pub fn new(config: &AuthConfig, http: reqwest::Client) -> KeySets {
        KeySets {
            sets: Cache::builder()
                .max_capacity(CACHED_SETS)
                .time_to_live(Duration::from_secs(config.jwks_max_cache_seconds.max(1)))
                .build(),
            last_fetch: config.issuers.iter().map(|i| (i.iss.clone(), LastFetch::default())).collect(),
            http,
            min_refresh: Duration::from_secs(config.jwks_min_refresh_seconds),
            max_cache: Duration::from_secs(config.jwks_max_cache_seconds),
            max_bytes: config.jwks_max_bytes,
            timeout: Duration::from_millis(config.jwks_fetch_timeout_ms),
            shared: None,
        }
    }

    pub fn share_through(&mut self, shared: SharedCache) {
        self.shared = Some(shared);
    }

    fn shared_key((issuer, url): &(String, String)) -> String {
        format!("jwks:{}:{issuer}{url}", issuer.len())
    }

    /// A set another replica fetched, if it is still trusted: copied into the local cache.
    async fn copy_from_shared(&self, cache_key: &(String, String)) {
        let Some(shared) = &self.shared else { return };
        let Ok(Some(text)) = shared.get(&Self::shared_key(cache_key), "jwks_read").await else { return };
        let Ok(set) = serde_json::from_str::<SharedSet>(&text) else {
            tracing::warn!("a key set in the shared cache is not readable; fetching instead");
            return;
        };
        let remaining = Duration::from_secs(set.trusted_until.saturating_sub(super::now_seconds()));
        if !remaining.is_zero() {
            let trusted_until = Instant::now() + remaining.min(self.max_cache);
            self.sets.insert(cache_key.clone(), Arc::new(FetchedSet { keys: set.keys, trusted_until }));
        }
    }

    async fn copy_to_shared(&self, cache_key: &(String, String), keys: &[Jwk], lifetime: Duration) {
        let Some(shared) = &self.shared else { return };
        let set = SharedSet { keys: keys.to_vec(), trusted_until: super::now_seconds() + lifetime.as_secs() };
        if let Ok(text) = serde_json::to_string(&set) {
            // Failures are logged and counted by the shared cache; the local copy serves.
            let _ = shared.set(&Self::shared_key(cache_key), &text, lifetime, "jwks_write").await;
        }
    }

    /// The key for `kid` from `source`, fetching the set when it is not cached, has expired, or
    /// lacks the `kid` (the issuer may have rotated its keys), within the issuer's fetch budget.
    pub async fn find(
        &self,
        issuer: &str,
        source: &Url,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<Jwk, AuthError> {
        let cache_key = (issuer.to_owned(), source.as_str().to_owned());
        if let Some(key) = self.cached(&cache_key, kid, algorithm) {
            return Ok(key);
        }
        let unknown = || AuthError::UnknownKey(kid.map(loggable));
        let Some(lock) = self.last_fetch.get(issuer) else { return Err(unknown()) };
        // Wait for a fetch in flight (bounded by its own time limit), then look again.
        let mut last = tokio::time::timeout(self.timeout + Duration::from_secs(1), lock.lock())
            .await
            .map_err(|_| AuthError::KeyFetch("another key-set fetch for this issuer is still running".into()))?;
        if let Some(key) = self.cached(&cache_key, kid, algorithm) {
            return Ok(key);
        }
        self.copy_from_shared(&cache_key).await;
        if let Some(key) = self.cached(&cache_key, kid, algorithm) {
            return Ok(key);
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refresh) {
            metrics::get().jwks_fetches.get_or_create(&metrics::reason("rate_limited")).inc();
            return Err(unknown());
        }
        *last = Some(Instant::now());
        tracing::info!(url = %loggable(source.as_str()), "fetching JWKS");
        match self.fetch(source).await {
            Ok((keys, lifetime)) => {
                metrics::get().jwks_fetches.get_or_create(&metrics::reason("ok")).inc();
                self.copy_to_shared(&cache_key, &keys, lifetime).await;
                let set = Arc::new(FetchedSet { keys, trusted_until: Instant::now() + lifetime });
                self.sets.insert(cache_key.clone(), set);
            }
            Err(error) => {
                metrics::get().jwks_fetches.get_or_create(&metrics::reason("error")).inc();
                // A set that can no longer be fetched is no longer trusted.
                self.sets.invalidate(&cache_key);
                return Err(error);
            }
        }
        drop(last);
        self.cached(&cache_key, kid, algorithm).ok_or_else(unknown)
    }

    fn cached(&self, cache_key: &(String, String), kid: Option<&str>, algorithm: Algorithm) -> Option<Jwk> {
        let set = self.sets.get(cache_key)?;
        if set.trusted_until <= Instant::now() {
            return None;
        }
        pick(&set.keys, kid, algorithm)
    }

    /// Fetches a key set: no redirects (the client follows none), a time limit, a streaming size
    /// cap. Errors say what went wrong, never what the answer held.
    async fn fetch(&self, url: &Url) -> Result<(Vec<Jwk>, Duration), AuthError> {
        let fetch = async {
            let mut response = self
                .http
                .get(url.clone())
                .send()
                .await
                .map_err(|e| AuthError::KeyFetch(e.without_url().to_string()))?;
            if !response.status().is_success() {
                return Err(AuthError::KeyFetch(format!("status {}", response.status())));
            }
            let too_large = || AuthError::KeyFetch(format!("key set larger than {} bytes", self.max_bytes));
            if response.content_length().is_some_and(|length| length > self.max_bytes as u64) {
                return Err(too_large());
            }
            let lifetime =
                max_age(response.headers()).map_or(self.max_cache, |age| age.clamp(self.min_refresh, self.max_cache));
            let mut body = Vec::new();
            while let Some(chunk) =
                response.chunk().await.map_err(|e| AuthError::KeyFetch(e.without_url().to_string()))?
            {
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            let set: JwkSet = serde_json::from_slice(&body)
                .map_err(|e| AuthError::KeyFetch(format!("not a JWKS (line {}, column {})", e.line(), e.column())))?;
            Ok((set.keys, lifetime))
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| AuthError::KeyFetch(format!("no answer within {} ms", self.timeout.as_millis())))?
    }
}

/// `Cache-Control: max-age=N`; `no-store` and `no-cache` count as zero (then clamped up to the
/// refresh interval: a set is never fetched more often than that).
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').map(str::trim).find_map(|directive| {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        lower.strip_prefix("max-age=")?.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs)
    })
}

/// The key for `kid`; without a `kid`, the only key of the algorithm's family.
pub fn pick(keys: &[Jwk], kid: Option<&str>, algorithm: Algorithm) -> Option<Jwk> {
    let family_matches = |key: &Jwk| {
        matches!(
            (&key.algorithm, algorithm),
            (jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_), Algorithm::ES384 | Algorithm::ES256)
                | (jsonwebtoken::jwk::AlgorithmParameters::RSA(_), Algorithm::RS384 | Algorithm::RS256)
        )
    };
    match kid {
        Some(kid) => keys.iter().find(|key| key.common.key_id.as_deref() == Some(kid) && family_matches(key)).cloned(),
        None => {
            let mut candidates = keys.iter().filter(|key| family_matches(key));
            match (candidates.next(), candidates.next()) {
                (Some(key), None) => Some(key.clone()),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_sets_the_key_lifetime() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(max_age(&headers), None);
        headers.insert(reqwest::header::CACHE_CONTROL, "public, max-age=120".parse().unwrap());
        assert_eq!(max_age(&headers), Some(Duration::from_secs(120)));
        headers.insert(reqwest::header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(max_age(&headers), Some(Duration::ZERO));
    }
}
