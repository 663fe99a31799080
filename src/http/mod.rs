//! HTTP: routes, shared state, and the tower-http layers (CORS, timeouts, body limits, tracing).

pub mod error;
mod services;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, Method, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::content::Content;

#[derive(Clone, Debug)]
pub struct AppState {
    pub content: Arc<Content>,
    pub settings: Arc<Settings>,
}

pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    // CDS clients run in browsers (the public sandbox sends a preflight before every call).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    Router::new()
        .route("/cds-services", get(services::discovery))
        .route("/cds-services/{id}", post(services::invoke))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(not_found)
        .with_state(state)
        // Our own limit replaces axum's 2 MB default, so the size is one setting.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(settings.request_timeout_ms),
        ))
        .layer(cors)
        .layer(TraceLayer::new_for_http())
}

/// Liveness: the process answers.
async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the content is loaded and valid (it is, or the service would not have started).
async fn ready(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ready",
        "services": state.content.services.len(),
        "cardTypes": state.content.cards.len(),
        "valueSets": state.content.value_sets.len(),
    }))
}

async fn not_found() -> error::ApiError {
    error::ApiError::NotFound("no such endpoint; see GET /cds-services".into())
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
