//! Everything that records what the service did: the database, the audit trail's writer and the
//! retention job, started together from `StorageSettings` by `main` and by the test harness.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::audit::{AuditTrail, now_ms};
use crate::storage::{StorageSettings, Store};

#[derive(Clone, Debug)]
pub struct Records {
    pub store: Store,
    /// `None` when the audit trail is turned off.
    pub audit: Option<AuditTrail>,
    pub settings: Arc<StorageSettings>,
    retention: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// The last readiness check of the database: when, and what it found.
    last_check: Arc<tokio::sync::Mutex<Option<Check>>>,
}

/// A readiness check of the database: when it ran, and what it found.
type Check = (Instant, Result<(), String>);

/// How long the readiness check waits for `SELECT 1`.
const CHECK_DEADLINE: Duration = Duration::from_secs(1);
/// How long a check's result is reused: probes from several load balancers and the kubelet cost
/// one query a second at most.
const CHECK_REUSE: Duration = Duration::from_secs(1);

impl Records {
    /// Opens (and migrates) the database, waiting up to `settings.dependency_wait` for a
    /// PostgreSQL server that does not answer yet; starts the audit writer and the retention job.
    pub async fn start(settings: StorageSettings) -> Result<Records, String> {
        let store =
            Store::open_waiting(&settings.database_url, settings.dependency_wait).await.map_err(|e| e.to_string())?;
        tracing::info!(backend = store.backend(), audit_trail = settings.audit_trail, "database ready");
        crate::metrics::get().database_up.set(1);
        let audit = settings.audit_trail.then(|| {
            AuditTrail::start(
                store.clone(),
                settings.audit_queue_capacity,
                settings.audit_batch_size,
                settings.id_form.clone(),
            )
        });
        let retention = settings.retention.map(|keep| {
            let (store, interval) = (store.clone(), settings.retention_interval);
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(interval);
                loop {
                    ticks.tick().await;
                    enforce_retention(&store, keep).await;
                }
            })
        });
        Ok(Records {
            store,
            audit,
            settings: Arc::new(settings),
            retention: Arc::new(Mutex::new(retention)),
            last_check: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    /// For `/ready`: whether the database answers `SELECT 1` within a second, checked at most
    /// once a second (concurrent probes wait for the one check in progress). A change of state is
    /// logged with the reason; `lbp_cds_database_up` shows the last result.
    pub async fn check_database(&self) -> Result<(), String> {
        let mut last = self.last_check.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < CHECK_REUSE
        {
            return result.clone();
        }
        let result = self.store.ping(CHECK_DEADLINE).await;
        let was_ok = last.as_ref().is_none_or(|(_, previous)| previous.is_ok());
        match &result {
            Ok(()) => {
                if !was_ok {
                    tracing::info!(backend = self.store.backend(), "the database answers again");
                }
            }
            Err(error) => {
                crate::metrics::get().database_check_failures.inc();
                if was_ok {
                    tracing::error!(backend = self.store.backend(), %error, "database check failed: /ready answers 503");
                }
            }
        }
        crate::metrics::get().database_up.set(i64::from(result.is_ok()));
        *last = Some((Instant::now(), result.clone()));
        result
    }

    /// On shutdown, once no call is in flight: writes out the audit queue, stops the retention
    /// job and closes the pool.
    pub async fn close(&self) {
        if let Some(audit) = &self.audit {
            audit.close().await;
        }
        if let Some(job) = self.retention.lock().ok().and_then(|mut j| j.take()) {
            job.abort();
        }
        self.store.close().await;
    }
}

/// Deletes audit and feedback rows older than `keep`. A failure is logged and retried at the
/// next tick.
pub async fn enforce_retention(store: &Store, keep: std::time::Duration) {
    let cutoff = now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    match store.delete_before(cutoff).await {
        Ok(deleted) => {
            crate::metrics::get().retention_deleted.inc_by(deleted.audit_cards + deleted.feedback);
            if deleted.audit_cards + deleted.feedback > 0 {
                tracing::info!(
                    audit_cards = deleted.audit_cards,
                    feedback = deleted.feedback,
                    "retention: old rows deleted"
                );
            }
        }
        Err(error) => tracing::error!(%error, "retention: deleting old rows failed"),
    }
}
