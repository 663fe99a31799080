//! The cache that replicas share (`--redis-url`): the `jti` replay cache, so a token used on one
//! replica is refused by every other, and fetched JWKS key sets, so a fleet fetches an issuer's
//! keys once. Without it each process keeps both in memory (the single-machine default).
//!
//! Every entry is written with an expiry (Redis drops it then), so the shared cache is bounded by
//! time as the in-process ones are by count. Every operation has a deadline; a failure is logged
//! and counted (`lbp_cds_shared_cache_errors`) and reported to the caller, which decides: a replay
//! check fails closed, a key-set lookup falls back to fetching.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::metrics;

/// Every key this service writes starts with this, so the Redis can be shared with others.
const PREFIX: &str = "lbp-cds:";

/// Deadline of one Redis command (a replay check sits on every hook call's path).
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct SharedCache {
    connection: ConnectionManager,
    /// The URL without its password, for logs and `/ready`.
    shown: String,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache").field("url", &self.shown).finish()
    }
}

/// A failed shared-cache operation: says what failed, never what was stored.
#[derive(Debug, Clone, thiserror::Error)]
#[error("shared cache (Redis) {operation} failed: {message}")]
pub struct SharedCacheError {
    pub operation: &'static str,
    pub message: String,
}

impl SharedCache {
    /// Connects, retrying with a growing pause until `wait` has passed (start-up waits for its
    /// dependencies: in a fleet, Redis may start after the replicas).
    pub async fn connect(url: &str, wait: Duration) -> Result<SharedCache, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--redis-url is not a usable Redis URL: {e}"))?;
        let info = client.get_connection_info();
        let shown = format!("redis://{}/{}", info.addr, info.redis.db);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(COMMAND_TIMEOUT)
            // Reconnection after a lost connection: a few quick tries, then the next command
            // tries again (the manager reconnects on demand).
            .set_number_of_retries(2)
            .set_max_delay(1_000);
        let deadline = tokio::time::Instant::now() + wait;
        let mut pause = Duration::from_millis(100);
        let mut attempt = 1u32;
        loop {
            let connected = async {
                let connection = ConnectionManager::new_with_config(client.clone(), config.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                let cache = SharedCache { connection, shown: shown.clone() };
                cache.ping().await.map_err(|e| e.message)?;
                Ok::<_, String>(cache)
            };
            match tokio::time::timeout(Duration::from_secs(3), connected).await {
                Ok(Ok(cache)) => {
                    tracing::info!(redis = %shown, attempt, "connected to the shared cache");
                    return Ok(cache);
                }
                Ok(Err(error)) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(redis = %shown, attempt, %error, "shared cache not reachable yet; retrying");
                }
                Err(_) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!(redis = %shown, attempt, "shared cache did not answer; retrying");
                }
                Ok(Err(error)) => {
                    return Err(format!("cannot reach the shared cache at {shown} after {attempt} attempts: {error}"));
                }
                Err(_) => {
                    return Err(format!(
                        "cannot reach the shared cache at {shown} after {attempt} attempts: no answer"
                    ));
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
            attempt += 1;
        }
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Stores `value` under `key` for `ttl` unless the key exists (`SET NX EX`, one atomic
    /// command): true if this call stored it.
    pub async fn set_if_absent(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
        operation: &'static str,
    ) -> Result<bool, SharedCacheError> {
        let mut command = redis::cmd("SET");
        command.arg(format!("{PREFIX}{key}")).arg(value).arg("NX").arg("EX").arg(ttl.as_secs().max(1));
        let stored: Option<String> = self.run(command, operation).await?;
        Ok(stored.is_some())
    }

    /// Stores `value` under `key` for `ttl`, replacing any value.
    pub async fn set(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
        operation: &'static str,
    ) -> Result<(), SharedCacheError> {
        let mut command = redis::cmd("SET");
        command.arg(format!("{PREFIX}{key}")).arg(value).arg("EX").arg(ttl.as_secs().max(1));
        let _: Option<String> = self.run(command, operation).await?;
        Ok(())
    }

    pub async fn get(&self, key: &str, operation: &'static str) -> Result<Option<String>, SharedCacheError> {
        let mut command = redis::cmd("GET");
        command.arg(format!("{PREFIX}{key}"));
        self.run(command, operation).await
    }

    /// Whether Redis answers (for `/ready`).
    pub async fn ping(&self) -> Result<(), SharedCacheError> {
        let _: String = self.run(redis::cmd("PING"), "ping").await?;
        Ok(())
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        command: redis::Cmd,
        operation: &'static str,
    ) -> Result<T, SharedCacheError> {
        let mut connection = self.connection.clone();
        let result = match tokio::time::timeout(COMMAND_TIMEOUT, command.query_async::<T>(&mut connection)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => SharedCacheError { operation, message: error.to_string() },
            Err(_) => {
                SharedCacheError { operation, message: format!("no answer within {} ms", COMMAND_TIMEOUT.as_millis()) }
            }
        };
        metrics::get().shared_cache_errors.get_or_create(&metrics::reason(operation)).inc();
        tracing::error!(redis = %self.shown, operation, error = %result.message, "shared cache operation failed");
        Err(result)
    }
}
