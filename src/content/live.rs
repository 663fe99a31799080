//! The content in service, replaceable without a restart (SIGHUP, or a change seen in the
//! content directory, as when Kubernetes updates a ConfigMap mount). A new `cards/` is loaded and
//! validated completely before it replaces the old one in a single atomic swap; a call in flight
//! keeps the snapshot it started with. A bad change keeps the old content: the error (file and
//! field) is logged, counted, and shown by `/ready` until a good version replaces it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde_json::{Value, json};

use super::{Content, ContentError};
use crate::metrics;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// A new version is in service.
    Replaced { from: String, to: String },
    /// The files hash to the version in service: nothing to do.
    Unchanged,
    /// The content came from the binary: there is no directory to read again.
    Embedded,
}

/// What a reload found in the directory.
enum Read {
    /// The files of the version in service.
    InService,
    /// The files of the change already refused (logged once, not at every poll).
    KnownBad,
    Valid(Box<Content>),
    /// An invalid change (with its version, if the files could be read).
    Bad(String, ContentError),
}

pub struct LiveContent {
    current: ArcSwap<Content>,
    /// The directory the content was read from (`--content`); `None` for the embedded copy.
    source: Option<PathBuf>,
    /// The last refused change (its version and why), until a good one (or the version in
    /// service) is read again.
    rejected: Mutex<Option<(String, ContentError)>>,
    /// Serialises reloads (a SIGHUP during a poll): each one reads and validates once.
    reloading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for LiveContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveContent").field("version", &self.current().version).field("source", &self.source).finish()
    }
}

impl LiveContent {
    pub fn new(content: Content, source: Option<PathBuf>) -> LiveContent {
        metrics::get().content_reload_failing.set(0);
        LiveContent {
            current: ArcSwap::from_pointee(content),
            source,
            rejected: Mutex::new(None),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// The content in service. A call takes this once and uses it throughout.
    pub fn current(&self) -> Arc<Content> {
        self.current.load_full()
    }

    /// Reads the directory again and swaps the new content in if it is valid and different.
    /// Hashing the files is cheap; parsing and validating them is done only for a new version
    /// (a poll of an unchanged directory costs one read of its files). On the blocking pool: it
    /// is file I/O and parsing.
    pub async fn reload(self: &Arc<LiveContent>, trigger: &'static str) -> Result<Reload, ContentError> {
        let Some(dir) = self.source.clone() else { return Ok(Reload::Embedded) };
        let _one_at_a_time = self.reloading.lock().await;
        let in_service = self.current().version.clone();
        let known_bad = self.rejected().map(|(version, _)| version);
        let read = tokio::task::spawn_blocking(move || {
            let version = match Content::dir_version(&dir) {
                Ok(version) => version,
                Err(error) => return Read::Bad(String::new(), error),
            };
            if version == in_service {
                return Read::InService;
            }
            if Some(&version) == known_bad.as_ref() {
                return Read::KnownBad;
            }
            match Content::from_dir(&dir) {
                Ok(content) => Read::Valid(Box::new(content)),
                Err(error) => Read::Bad(version, error),
            }
        })
        .await
        .unwrap_or_else(|error| {
            Read::Bad(
                String::new(),
                ContentError::new("(content)", "(reload)", format!("the reload task failed: {error}")),
            )
        });
        let mut rejected = self.rejected.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let outcome = match read {
            Read::InService => Reload::Unchanged,
            Read::KnownBad => {
                let known = rejected.as_ref().map(|(_, error)| error.clone());
                return Err(known.unwrap_or_else(|| ContentError::new("(content)", "(reload)", "refused earlier")));
            }
            Read::Valid(content) => {
                let from = self.current().version.clone();
                let to = content.version.clone();
                self.current.store(Arc::from(content));
                tracing::info!(trigger, from = %from, to = %to, "content reloaded: the new version is in service");
                metrics::get().content_reloads.get_or_create(&metrics::reason("replaced")).inc();
                Reload::Replaced { from, to }
            }
            Read::Bad(version, error) => {
                metrics::get().content_reloads.get_or_create(&metrics::reason("rejected")).inc();
                metrics::get().content_reload_failing.set(1);
                tracing::error!(
                    trigger,
                    file = %error.file,
                    field = %error.field,
                    error = %error.message,
                    version = %self.current().version,
                    "content change refused; the content in service is kept"
                );
                *rejected = Some((version, error.clone()));
                return Err(error);
            }
        };
        if rejected.take().is_some() {
            tracing::info!(version = %self.current().version, "the refused content change is gone");
        }
        metrics::get().content_reload_failing.set(0);
        Ok(outcome)
    }

    /// For `/ready`: the version in service and, if the last change was refused, why.
    pub fn status(&self) -> Value {
        let content = self.current();
        let mut status = json!({
            "version": content.version,
            "source": self.source.as_ref().map_or("embedded".to_owned(), |dir| dir.display().to_string()),
        });
        if let Some((version, error)) = self.rejected() {
            status["rejectedChange"] =
                json!({"version": version, "file": error.file, "field": error.field, "message": error.message});
        }
        status
    }

    fn rejected(&self) -> Option<(String, ContentError)> {
        self.rejected.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reloads on SIGHUP and, every `poll` (zero: never), when the directory's files changed.
    /// Polling reads the files and compares their hash: no file-notification dependency, and it
    /// sees the atomic symbolic-link swap a ConfigMap update makes. Runs until the process ends.
    pub fn watch(self: &Arc<LiveContent>, poll: Duration) {
        if self.source.is_none() {
            return;
        }
        #[cfg(unix)]
        {
            let live = self.clone();
            tokio::spawn(async move {
                let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
                    tracing::error!("cannot listen for SIGHUP: content reloads only by polling");
                    return;
                };
                while hangups.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading content");
                    let _ = live.reload("sighup").await;
                }
            });
        }
        if poll.is_zero() {
            return;
        }
        let live = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(poll);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let _ = live.reload("poll").await;
            }
        });
    }
}
