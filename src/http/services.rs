//! `/cds-services`: discovery and the three hook services.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};
use tracing::Instrument;

use super::{error::ApiError, AppState};
use crate::auth::{fhir_server_allowed, Client};
use crate::evaluate::{self, FhirAccess, Outcome};
use crate::hooks::{CdsResponse, HookRequest};

/// `GET /cds-services`. Always open, always 200.
pub async fn discovery(State(state): State<AppState>) -> Json<Value> {
    let content = &state.content;
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

/// `POST /cds-services/{id}`.
pub async fn invoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: Option<Extension<Client>>,
    body: Bytes,
) -> Result<Json<CdsResponse>, ApiError> {
    let started = Instant::now();
    let service = state
        .content
        .service(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no CDS service `{}`", id.chars().take(64).collect::<String>())))?;
    let request = HookRequest::parse(&body)?;
    let span = tracing::info_span!("hook", hookInstance = %request.hook_instance, service = %service.id);
    async {
        evaluate::check_request(service, &request)?;
        let access = fhir_access(&state, client.as_ref().map(|c| &c.0), &request)?;
        let record = evaluate::gather_record(&state.content, service, &request, access).await?;
        let today = state.settings.today();
        let outcome = evaluate::respond(&state.content, service, &request, record, today, &state.settings.options());
        log_outcome(&outcome, &request, state.settings.log_patient_ids, started);
        Ok(Json(outcome.response))
    }
    .instrument(span)
    .await
}

/// Whether and how missing data may be fetched. A client may only send us to the FHIR servers it
/// is bound to (no server-side request forgery): checked before any network call. Without a token
/// a server is queried only if configuration lists it as open.
fn fhir_access<'a>(
    state: &'a AppState,
    client: Option<&Client>,
    request: &'a HookRequest<'_>,
) -> Result<Option<FhirAccess<'a>>, ApiError> {
    let Some(fhir_server) = request.fhir_server.as_deref() else { return Ok(None) };
    let settings = &state.settings;
    let token = request.fhir_authorization.as_ref().map(|a| a.access_token.as_str());
    let (bound, open) = match (client, &settings.auth) {
        (Some(client), _) => (client.may_use_fhir_server(fhir_server), client.may_query_openly(fhir_server)),
        (None, Some(_)) => (false, false),
        (None, None) => {
            let listed = fhir_server_allowed(&settings.fhir_servers, fhir_server);
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
    Ok(Some(FhirAccess { base: fhir_server, token, http: &state.http, limits: &settings.fetch_limits }))
}

fn log_outcome(outcome: &Outcome, request: &HookRequest<'_>, log_patient_ids: bool, started: Instant) {
    let card_types: Vec<&str> = outcome
        .response
        .cards
        .iter()
        .filter_map(|card| card.source.topic.as_ref().map(|t| t.code.as_str()))
        .collect();
    let patient = if log_patient_ids { request.context.patient_id.as_str() } else { "<not logged>" };
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
    for key in outcome.record.keys.iter().filter(|k| k.status != "loaded" && k.status != "null") {
        tracing::warn!(key = %key.key, status = key.status, detail = ?key.detail, "prefetch key not fully usable");
    }
}
