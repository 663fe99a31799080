//! Everything that records what the service did: the database, the audit trail's writer and the
//! retention job, started together from `StorageSettings` by `main` and by the test harness.

use std::sync::{Arc, Mutex};

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
}

impl Records {
    /// Opens (and migrates) the database, starts the audit writer and the retention job.
    pub async fn start(settings: StorageSettings, content_version: &str) -> Result<Records, String> {
        let store = Store::open(&settings.database_url).await.map_err(|e| e.to_string())?;
        tracing::info!(backend = store.backend(), audit_trail = settings.audit_trail, "database ready");
        let audit = settings.audit_trail.then(|| {
            AuditTrail::start(
                store.clone(),
                settings.audit_queue_capacity,
                settings.audit_batch_size,
                settings.id_form.clone(),
                content_version,
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
        Ok(Records { store, audit, settings: Arc::new(settings), retention: Arc::new(Mutex::new(retention)) })
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
