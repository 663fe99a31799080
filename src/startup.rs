//! Building the running service from its settings: the one path that `main` and the test harness
//! both take, so the tests run the start-up policy the product runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::auth::{AuthConfig, Authenticator};
use crate::config::{ServeArgs, Settings};
use crate::content::{Content, ContentError};
use crate::http::{self, AppState};
use crate::shared_cache::SharedCache;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Auth(#[from] crate::auth::ConfigError),
    /// A dependency (Redis, the database) did not answer within the start-up wait, or the
    /// database could not be opened.
    #[error("{0}")]
    Dependency(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// A configuration that would be unsafe to run.
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Other(String),
}

/// A bound, ready service: its address is known before it serves (tests bind port 0).
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// From `lbp-cds serve`'s arguments: content, dependencies (waited for, with retries),
    /// authentication, settings, policy, socket.
    pub async fn from_args(args: &ServeArgs) -> Result<Application, StartupError> {
        let content = args.content.load()?;
        let shared_cache = match &args.redis_url {
            Some(url) => Some(
                SharedCache::connect(url, Duration::from_millis(args.dependency_wait_ms))
                    .await
                    .map_err(StartupError::Dependency)?,
            ),
            None => None,
        };
        let auth = match &args.auth_config {
            Some(path) => {
                let http = crate::outbound::client().map_err(StartupError::Other)?;
                let authenticator = Authenticator::new(AuthConfig::load(path)?, http)?;
                Some(Arc::new(match &shared_cache {
                    Some(shared) => authenticator.share_through(shared.clone()),
                    None => authenticator,
                }))
            }
            None => None,
        };
        let mut settings = Settings::from_args(args, auth, shared_cache);
        settings.console = crate::console::ConsoleSettings::from_args(&args.console).map_err(StartupError::Policy)?;
        let listener = bind(args.listen).await?;
        let application = Application::build(listener, content, settings)?;
        // After the policy check: a refused start creates no database or key file.
        let mut storage = crate::storage::StorageSettings::from_args(&args.storage).map_err(StartupError::Other)?;
        storage.dependency_wait = Duration::from_millis(args.dependency_wait_ms);
        application.with_records(storage).await
    }

    /// Opens (and migrates) the database and starts the audit writer and retention job; the
    /// connection loop writes the audit queue out when it stops.
    pub async fn with_records(self, storage: crate::storage::StorageSettings) -> Result<Application, StartupError> {
        let records = crate::records::Records::start(storage).await.map_err(StartupError::Dependency)?;
        Ok(Application { state: self.state.with_records(records), ..self })
    }

    /// Applies the start-up policy and builds the shared state. Without authentication the
    /// service serves only on loopback, unless `insecure_no_auth` says otherwise.
    pub fn build(listener: TcpListener, content: Content, settings: Settings) -> Result<Application, StartupError> {
        let address = listener.local_addr().map_err(|e| StartupError::Other(e.to_string()))?;
        if settings.auth.is_none() {
            if !address.ip().is_loopback() && !settings.insecure_no_auth {
                return Err(StartupError::Policy(format!(
                    "refusing to listen on {address} without authentication: configure trusted issuers with --auth-config, \
                     listen on loopback, or (never in production) pass --insecure-no-auth"
                )));
            }
            tracing::warn!("authentication is off: no trusted issuers are configured");
        }
        if settings.auth.is_some() && settings.shared_cache.is_none() {
            tracing::info!(
                "replay and key-set caches are in process: run one replica, or pass --redis-url to share them"
            );
        }
        if let Some(today) = settings.fixed_today {
            tracing::warn!(%today, "the clinical date is fixed by configuration (LBP_CDS_TODAY / --today)");
        } else {
            let zone = settings.time_zone.clone().unwrap_or_else(crate::clock::host_time_zone);
            tracing::info!(time_zone = zone.iana_name().unwrap_or("(unnamed)"), today = %settings.today(), "clinical date");
        }
        let state = AppState::new(content, settings).map_err(StartupError::Other)?;
        Ok(Application { listener, state })
    }

    pub fn address(&self) -> SocketAddr {
        // Known since `build` read it.
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then: `/ready` answers 503 at once while calls are
    /// still served for `shutdown_delay_ms` (load balancers stop sending traffic), then new
    /// connections are refused and calls in flight get `shutdown_grace_ms` to finish (see
    /// [`http::serve`]). Content is watched for changes meanwhile.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let local = self.address();
        let settings = self.state.settings.clone();
        self.state.content.watch(Duration::from_millis(settings.content_poll_ms));
        let stopping = self.state.stopping.clone();
        let stop_accepting = async move {
            shutdown.await;
            stopping.store(true, Ordering::SeqCst);
            crate::metrics::get().ready.set(0);
            tracing::info!(
                delay_ms = settings.shutdown_delay_ms,
                "stopping: /ready answers 503; calls are served until the delay ends"
            );
            tokio::time::sleep(Duration::from_millis(settings.shutdown_delay_ms)).await;
        };
        tracing::info!(
            address = %local,
            content_version = %self.state.content.current().version,
            "lbp-cds listening; discovery at http://{local}/cds-services"
        );
        http::serve(self.listener, self.state, stop_accepting).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

pub async fn bind(listen: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(listen).await.map_err(|e| StartupError::Bind(listen, e))
}
