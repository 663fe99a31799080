//! `/health` (liveness) and `/ready` (readiness), as a load balancer or Kubernetes probes them.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use crate::metrics;

/// Liveness: the process answers. Nothing else is checked: restarting a process because Redis
/// is down would not bring Redis back.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: 200 when this replica should get traffic, 503 with the reasons when not: it is
/// stopping (SIGTERM), the shared cache does not answer (every authenticated call would be
/// refused), or the database does not answer `SELECT 1` within a second (checked at most once a
/// second; feedback would be refused and audit rows dropped). Content is always usable once
/// started (a refused change keeps the old content, so it is reported under
/// `content.rejectedChange` without taking the replica, or the whole fleet, out of service).
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut reasons: Vec<String> = Vec::new();
    if state.stopping.load(Ordering::SeqCst) {
        reasons.push("shutting down".into());
    }
    let cache = match &state.settings.shared_cache {
        None => json!({"kind": "in-process", "status": "ok"}),
        Some(shared) => match shared.ping().await {
            Ok(()) => json!({"kind": "redis", "url": shared.shown(), "status": "ok"}),
            Err(error) => {
                reasons.push("the shared cache (Redis) does not answer".into());
                json!({"kind": "redis", "url": shared.shown(), "status": "error", "error": error.message})
            }
        },
    };
    let database = match &state.records {
        None => json!({"status": "not configured"}),
        Some(records) => match records.check_database().await {
            Ok(()) => json!({"kind": records.store.backend(), "status": "ok"}),
            Err(error) => {
                reasons.push("the database does not answer".into());
                json!({"kind": records.store.backend(), "status": "error", "error": error})
            }
        },
    };
    let content = state.content.current();
    let mut body = json!({
        "status": if reasons.is_empty() { "ready" } else { "not ready" },
        "services": content.services.len(),
        "cardTypes": content.cards.len(),
        "valueSets": content.value_sets.len(),
        "content": state.content.status(),
        "cache": cache,
        "database": database,
    });
    metrics::get().ready.set(i64::from(reasons.is_empty()));
    if reasons.is_empty() {
        return (StatusCode::OK, Json(body));
    }
    body["reasons"] = json!(reasons);
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}
