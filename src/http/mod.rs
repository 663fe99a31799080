//! HTTP: routes, shared state, the tower-http layers (CORS, timeouts, body limits, panics,
//! tracing), and the connection loop with its own limits (connection cap, header-read and idle
//! timeouts, graceful shutdown with a deadline).

mod analytics;
pub mod error;
pub(crate) mod feedback;
mod health;
pub(crate) mod services;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::content::Content;
use crate::content::live::LiveContent;
use crate::metrics;
use crate::telemetry::loggable;

#[derive(Clone, Debug)]
pub struct AppState {
    /// The content in service; a call takes one snapshot (`current()`) and keeps it.
    pub content: Arc<LiveContent>,
    pub settings: Arc<Settings>,
    /// One pooled client for every FHIR server and JWKS fetch.
    pub http: reqwest::Client,
    /// The database, audit trail and retention job; `None` only in tests that do not need them
    /// (feedback and analytics then answer 503).
    pub records: Option<crate::records::Records>,
    /// Set on SIGTERM: `/ready` answers 503 from then on, while calls are still served.
    pub stopping: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(content: Content, settings: Settings) -> Result<AppState, String> {
        let content = Arc::new(LiveContent::new(content, settings.content_dir.clone()));
        Ok(AppState {
            content,
            settings: Arc::new(settings),
            http: crate::outbound::client()?,
            stopping: Arc::new(AtomicBool::new(false)),
            records: None,
        })
    }

    pub fn with_records(self, records: crate::records::Records) -> AppState {
        AppState { records: Some(records), ..self }
    }
}

pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let content_for_metrics = state.content.clone();
    // Overload: refuse at once with 503 rather than queue calls past the EHR's timeout. Only hook
    // calls take a slot, and only once authenticated: unauthenticated traffic cannot use them up.
    let hook_slots = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            error::ApiError::Unavailable("the service is at its concurrency limit; retry shortly".into())
        }))
        .load_shed()
        .concurrency_limit(settings.max_concurrent_requests);
    let hooks = Router::new()
        .route("/cds-services", get(services::discovery))
        .route("/cds-services/{id}", post(services::invoke).layer(hook_slots))
        .route("/cds-services/{id}/feedback", post(feedback::receive))
        .route("/analytics", get(analytics::report))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    // CDS clients run in browsers (the public sandbox sends a preflight before every call).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    Router::new()
        .merge(hooks)
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics_text))
        .merge(crate::console::router(&state))
        .fallback(not_found)
        .with_state(state)
        // Our own limit replaces axum's 2 MB default, so the size is one setting.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(settings.request_timeout_ms),
        ))
        .layer(middleware::from_fn_with_state(settings.header_limit_bytes, limit_headers))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(content_for_metrics, count_responses))
        .layer(cors)
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            // Method and path only (escaped): query strings and headers (tokens) stay out of logs.
            tracing::info_span!("http", method = %request.method(), path = %loggable(request.uri().path()))
        }))
}

/// Bearer JWT of the CDS client on every hook call (and on discovery unless it is open). The
/// reason for a refusal is logged and counted; the client gets a bare 401 (CDS Hooks security).
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(auth) = state.settings.auth.clone() else {
        return next.run(request).await;
    };
    let path = request.uri().path().to_owned();
    if path == "/cds-services" && request.method() == Method::GET && auth.config().discovery_open {
        return next.run(request).await;
    }
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    match auth.authenticate(header, &path).await {
        Ok(client) => {
            tracing::debug!(issuer = %loggable(&client.issuer), "client authenticated");
            request.extensions_mut().insert(client);
            next.run(request).await
        }
        Err(reason) => {
            metrics::get().auth_failures.get_or_create(&metrics::reason(reason.kind())).inc();
            tracing::warn!(path = %loggable(&path), reason = %loggable(&reason.to_string()), "authentication failed");
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")]).into_response()
        }
    }
}

/// Refuses requests whose headers together exceed the limit (431).
async fn limit_headers(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let size: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if size > limit {
        return error::ApiError::HeadersTooLarge(format!("request headers exceed {limit} bytes")).into_response();
    }
    next.run(request).await
}

/// Counts every response by endpoint family and status: a 401 or 5xx looks like "no cards" in the
/// EHR, so it must show here.
/// Also times it per service (only ids the content defines: the label set stays bounded
/// whatever clients send).
async fn count_responses(State(live): State<Arc<LiveContent>>, request: Request, next: Next) -> Response {
    let content = live.current();
    let started = std::time::Instant::now();
    let endpoint = match request.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/cds-services") => "discovery",
        Some("/cds-services/{id}") => "hook",
        Some("/cds-services/{id}/feedback") => "feedback",
        Some("/analytics") => "analytics",
        Some("/health") => "health",
        Some("/ready") => "ready",
        Some("/metrics") => "metrics",
        Some(path) if path.starts_with("/console") => "console",
        _ => "other",
    };
    let service = match endpoint {
        "hook" | "feedback" => {
            let id = request.uri().path().trim_start_matches("/cds-services/").split('/').next().unwrap_or_default();
            content.service(id).map_or_else(|| "unknown".to_owned(), |s| s.id.clone())
        }
        _ => String::new(),
    };
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics::get().responses.get_or_create(&metrics::ResponseLabels { endpoint, status }).inc();
    metrics::get()
        .request_seconds
        .get_or_create(&metrics::LatencyLabels { endpoint, service, status })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// A panic anywhere in a request: logged, counted, answered with a 500 OperationOutcome.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    metrics::get().panics.inc();
    error::ApiError::Internal(format!("panic: {}", loggable(&detail))).into_response()
}

/// Prometheus text exposition.
async fn metrics_text() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics::get().render()).into_response()
}

async fn not_found() -> error::ApiError {
    error::ApiError::NotFound("no such endpoint; see GET /cds-services".into())
}

/// Serves until `shutdown` resolves, then stops accepting, asks every connection to finish its
/// call in flight, and after `shutdown_grace_ms` closes whatever is still open (a half-sent
/// request head cannot hold the process).
///
/// Each connection: at most `max_connections` at once (past it a new connection is closed at once,
/// logged and counted, so descriptors are never exhausted); its request head must arrive within
/// `header_read_timeout_ms`, which also closes a connection idle that long between requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = state.settings.clone();
    let records = state.records.clone();
    let app = router(state);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let header_read_timeout = Duration::from_millis(settings.header_read_timeout_ms);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut last_cap_warning: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: log, pause, go on (never spin).
                    tracing::error!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::get().connections_refused.inc();
            if last_cap_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                last_cap_warning = Some(std::time::Instant::now());
                tracing::warn!(
                    max_connections = settings.max_connections,
                    "connection cap reached; closing new connections"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            metrics::get().connections_open.inc();
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_connection_end(result),
                _ = async { stop.wait_for(|stopping| *stopping).await.is_ok() } => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await);
                }
            }
            metrics::get().connections_open.dec();
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(open = connections.len(), "no longer accepting connections; finishing calls in flight");
    let _ = stop_tx.send(true);
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(open = connections.len(), "shutdown grace period over; closing the remaining connections");
        connections.abort_all();
        while connections.join_next().await.is_some() {}
        metrics::get().connections_open.set(0);
    }
    // No call is in flight any more: write out the audit queue.
    if let Some(records) = records {
        records.close().await;
    }
    Ok(())
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(error) = result {
        // Timeouts and resets are the client's doing: debug, not noise at every idle close.
        tracing::debug!(%error, "connection closed with an error");
    }
}
