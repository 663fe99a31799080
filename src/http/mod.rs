//! HTTP: routes, shared state, and the tower-http layers (CORS, timeouts, body limits, tracing).

pub mod error;
mod services;

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tower::ServiceBuilder;
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
    /// One pooled client for every FHIR server and JWKS fetch.
    pub http: reqwest::Client,
}

impl AppState {
    pub fn new(content: Content, settings: Settings) -> AppState {
        AppState { content: Arc::new(content), settings: Arc::new(settings), http: crate::outbound::client() }
    }
}

pub fn router(state: AppState) -> Router {
    let settings = state.settings.clone();
    let hooks = Router::new()
        .route("/cds-services", get(services::discovery))
        .route("/cds-services/{id}", post(services::invoke))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    // CDS clients run in browsers (the public sandbox sends a preflight before every call).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    Router::new()
        .merge(hooks)
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
        .layer(middleware::from_fn_with_state(settings.header_limit_bytes, limit_headers))
        // Overload: refuse at once with 503 rather than queue requests past the EHR's timeout.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    error::ApiError::Unavailable("the service is at its concurrency limit; retry shortly".into())
                }))
                .load_shed()
                .concurrency_limit(settings.max_concurrent_requests),
        )
        .layer(cors)
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            // Method and path only: query strings and headers (tokens) stay out of logs.
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
}

/// Bearer JWT of the CDS client on every hook call (and on discovery unless it is open). The
/// reason for a refusal is logged; the client gets a bare 401 (CDS Hooks security).
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
            tracing::debug!(issuer = %client.issuer, "client authenticated");
            request.extensions_mut().insert(client);
            next.run(request).await
        }
        Err(reason) => {
            tracing::warn!(%path, %reason, "authentication failed");
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
