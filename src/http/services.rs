//! `/cds-services`: discovery and the three hook services.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};
use tracing::Instrument;

use super::{AppState, error::ApiError};
use crate::audit::CallInfo;
use crate::auth::Client;
use crate::config::Settings;
use crate::evaluate::{self, Outcome};
use crate::fhir;
use crate::hooks::{CdsResponse, HookRequest};
use crate::outbound::UrlScope;
use crate::telemetry::loggable;

/// `GET /cds-services`. Always open, always 200.
pub async fn discovery(State(state): State<AppState>) -> Json<Value> {
    let content = state.content.current();
    let services: Vec<Value> = content
        .services
        .iter()
        .map(|service| {
            let prefetch: Map<String, Value> = service
                .prefetch
                .iter()
                .filter_map(|key| Some((key.clone(), Value::String(content.prefetch.get(key)?.query.clone()))))
                .collect();
            json!({
                "hook": service.hook.as_str(),
                "id": service.id,
                "title": service.title,
                "description": service.description,
                "prefetch": prefetch,
            })
        })
        .collect();
    Json(json!({ "services": services }))
}

/// `POST /cds-services/{id}`. Reading the request and assessing run on the blocking pool (a
/// large record must not stall the async workers that answer every other call); fetching runs
/// between them on the async workers. The request timeout covers all of it.
pub async fn invoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CdsResponse>, ApiError> {
    let started = Instant::now();
    require_json(&headers)?;
    // One snapshot for the whole call: a reload meanwhile does not mix two versions.
    let content = state.content.current();
    let service = known_service(&content, &id)?.clone();
    let span = tracing::info_span!("hook", hookInstance = tracing::field::Empty, service = %service.id);
    let client = client.map(|c| c.0);
    async move {
        let (content_for_read, settings) = (content.clone(), state.settings.clone());
        let (service_for_read, span_for_read) = (service.clone(), tracing::Span::current());
        let large = body.len() >= LARGE_BODY_BYTES;
        let (pending, target, call) = blocking_sized(large, move || {
            let request = HookRequest::parse(&body)?;
            span_for_read.record("hookInstance", tracing::field::display(loggable(&request.hook_instance)));
            evaluate::check_request(&service_for_read, &request)?;
            let target = fhir_target(&settings, client.as_ref(), &request)?;
            let limit = settings.fetch_limits.max_call_resources;
            let pending = evaluate::prepare(
                &content_for_read,
                &service_for_read,
                &request,
                target.as_ref().map(|t| &t.base),
                limit,
            );
            let call = CallInfo {
                service: service_for_read.id.clone(),
                hook: request.hook.clone(),
                hook_instance: request.hook_instance.clone(),
                patient_id: request.context.patient_id.clone(),
                user_id: request.context.user_id.clone(),
            };
            Ok::<_, ApiError>((pending, target, call))
        })
        .await??;
        let fetched = match (&target, pending.fetches.is_empty()) {
            (Some(target), false) => {
                tracing::info!(queries = pending.fetches.len(), "fetching data the client did not prefetch");
                let fetches = pending.fetches.clone();
                fhir::fetch_all(
                    &state.http,
                    &target.base,
                    target.token.as_deref(),
                    fetches,
                    &state.settings.fetch_limits,
                )
                .await
            }
            _ => Vec::new(),
        };
        let settings = state.settings.clone();
        let audit = state.records.as_ref().and_then(|r| r.audit.clone());
        let outcome = blocking_sized(large, move || {
            let today = settings.today();
            let outcome = evaluate::finish(&content, &service, pending, fetched, today, &settings.options())?;
            count_cards(&outcome);
            if let Some(audit) = audit {
                audit.record(&call, &outcome);
            }
            Ok::<_, ApiError>(outcome)
        })
        .await??;
        log_outcome(&outcome, state.settings.log_patient_ids, started);
        Ok(Json(outcome.response))
    }
    .instrument(span)
    .await
}

/// The service named in the path, or a 404 naming it (escaped: it reaches the log).
pub(super) fn known_service<'a>(
    content: &'a crate::content::Content,
    id: &str,
) -> Result<&'a crate::content::ServiceDefinition, ApiError> {
    content.service(id).ok_or_else(|| ApiError::NotFound(format!("no CDS service `{}`", loggable(id))))
}

/// A body this large is a large record (2,000 resources are about 1.5 MB; 300 about 230 KB).
const LARGE_BODY_BYTES: usize = 1024 * 1024;

/// Large calls take a permit for each CPU-heavy half: between them they use at most half the
/// cores, so that however many arrive at once, small calls beside them keep the other half
/// (measured in README's Performance section). Calls with smaller bodies never wait here.
fn large_call_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::sync::Semaphore::new((cores / 2).max(1))
    })
}

/// [`blocking`], for a large call after taking one of the large-call permits.
async fn blocking_sized<T: Send + 'static>(
    large: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = match large {
        true => Some(
            large_call_permits()
                .acquire()
                .await
                .map_err(|_| ApiError::Internal("the large-call permits were closed".into()))?,
        ),
        false => None,
    };
    blocking(work).await
}

/// Runs CPU-heavy work on the blocking pool, in the caller's span. A panic there becomes a 500
/// (logged and counted), like a panic anywhere else in a request.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work)).await.map_err(|error| {
        crate::metrics::get().panics.inc();
        ApiError::Internal(format!("assessment task failed: {error}"))
    })
}

/// Cards issued, by type and indicator.
fn count_cards(outcome: &Outcome) {
    for card in &outcome.response.cards {
        let card_type = card.source.topic.as_ref().map(|t| t.code.clone()).unwrap_or_default();
        let labels = crate::metrics::CardLabels { card_type, indicator: card.indicator.as_str() };
        crate::metrics::get().cards.get_or_create(&labels).inc();
    }
}

/// CDS Hooks requests are JSON: anything else is refused with 415 before the body is read.
pub(super) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some("application/json") => Ok(()),
        Some(other) if other.starts_with("application/") && other.ends_with("+json") => Ok(()),
        _ => {
            Err(ApiError::UnsupportedMediaType("the request body must be JSON (Content-Type: application/json)".into()))
        }
    }
}

/// The FHIR server a call may fetch from, with its token.
pub struct FhirTarget {
    pub base: UrlScope,
    pub token: Option<String>,
}

/// Whether and how missing data may be fetched. A client may only send us to the FHIR servers it
/// is bound to (no server-side request forgery), compared as parsed URLs: checked before any
/// network call. Without a token a server is queried only if configuration lists it as open.
fn fhir_target(
    settings: &Settings,
    client: Option<&Client>,
    request: &HookRequest<'_>,
) -> Result<Option<FhirTarget>, ApiError> {
    let Some(fhir_server) = request.fhir_server.as_deref() else { return Ok(None) };
    // http is parsed here and refused by the binding below: configured servers are https unless
    // configuration allows http, so an http `fhirServer` matches none of them (403).
    let fhir_server = UrlScope::parse(fhir_server, true, false)
        .map_err(|e| ApiError::BadRequest(format!("field `fhirServer` is invalid: it {e}")))?;
    let token = request.fhir_authorization.as_ref().map(|a| a.access_token.clone());
    let (bound, open) = match (client, &settings.auth) {
        (Some(client), _) => (client.may_use_fhir_server(&fhir_server), client.may_query_openly(&fhir_server)),
        (None, Some(_)) => (false, false),
        (None, None) => {
            let listed = settings.fhir_servers.iter().any(|allowed| allowed.same_base(&fhir_server));
            (listed, listed)
        }
    };
    if !bound {
        if settings.auth.is_some() {
            tracing::warn!("fhirServer is not bound to this client; refused");
            return Err(ApiError::Forbidden("fhirServer is not one of the FHIR servers this client may use".into()));
        }
        // Authentication off (local use): an unlisted server is never contacted; prefetch alone is used.
        tracing::warn!("fhirServer is not in --fhir-servers; it will not be contacted");
        return Ok(None);
    }
    if token.is_none() && !open {
        tracing::warn!("fhirServer came without fhirAuthorization and is not configured as open; not queried");
        return Ok(None);
    }
    Ok(Some(FhirTarget { base: fhir_server, token }))
}

/// One line per call, whatever the record held: unreadable resources are counted here, not
/// logged one by one (a hostile server could otherwise flood the log).
fn log_outcome(outcome: &Outcome, log_patient_ids: bool, started: Instant) {
    let card_types: Vec<&str> =
        outcome.response.cards.iter().filter_map(|card| card.source.topic.as_ref().map(|t| t.code.as_str())).collect();
    let patient = if log_patient_ids { loggable(&outcome.record.patient_id) } else { "<not logged>".to_owned() };
    tracing::info!(
        patient,
        cards = ?card_types,
        system_actions = outcome.response.system_actions.len(),
        skipped_resources = outcome.record.skipped.len(),
        ignored_resources = outcome.record.ignored,
        data_notes = outcome.assessment.data_notes.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "hook answered"
    );
    if !outcome.record.skipped.is_empty() {
        let mut by_key: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for skipped in &outcome.record.skipped {
            *by_key.entry(skipped.prefetch_key.as_str()).or_default() += 1;
        }
        tracing::warn!(skipped = ?by_key, "resources that could not be read were skipped (details in the response extension)");
    }
    for key in outcome.record.keys.iter().filter(|k| k.status != "loaded" && k.status != "null") {
        tracing::warn!(key = %key.key, status = key.status, detail = ?key.detail, "prefetch key not fully usable");
    }
}
