//! One hook call, from parsed request to response: shared by the HTTP service and the
//! `lbp-cds evaluate` command so that both give the same answer.

use time::Date;

use crate::assess::{self, Assessment};
use crate::cards::{self, RenderContext};
use crate::content::{Content, ServiceDefinition};
use crate::hooks::{CdsResponse, Hook, HookRequest, RequestError};
use crate::record::{self, KeyState, PatientRecord};

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Mirror systemActions into `extension.systemActions` (older clients, the public sandbox).
    pub mirror_system_actions: bool,
    /// SMART launch URL of a STarT Back app, linked from the screening card.
    pub start_back_app_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("hook `{got}` does not match service `{service}`, which answers `{expected}`")]
    WrongHook { got: String, service: String, expected: Hook },
    /// Required data is neither prefetched nor fetchable (CDS Hooks: 412).
    #[error("required prefetch data is missing and cannot be fetched: {0}")]
    MissingData(String),
}

/// The outcome of one call, with what the logs need to know.
#[derive(Debug)]
pub struct Outcome {
    pub response: CdsResponse,
    pub record: PatientRecord,
    pub assessment: Assessment,
}

/// Checks that `request` suits `service` (hook and context members).
pub fn check_request(service: &ServiceDefinition, request: &HookRequest<'_>) -> Result<(), EvaluateError> {
    if request.hook != service.hook.as_str() {
        return Err(EvaluateError::WrongHook {
            got: request.hook.chars().take(64).collect(),
            service: service.id.clone(),
            expected: service.hook,
        });
    }
    request.require_context_for(service.hook)?;
    Ok(())
}

/// Builds the record from prefetch alone. Keys the client did not provide are reported; a
/// required key that is missing is an error (412) because this path cannot fetch.
pub fn record_from_prefetch(
    content: &Content,
    service: &ServiceDefinition,
    request: &HookRequest<'_>,
) -> Result<PatientRecord, EvaluateError> {
    let keys = content.prefetch_keys(service);
    let (builder, states) = record::from_prefetch(request, &keys);
    let missing_required: Vec<String> = states
        .iter()
        .filter(|(key, _, state)| {
            matches!(state, KeyState::NotProvided(_)) && content.prefetch.get(key).is_some_and(|p| p.required)
        })
        .map(|(key, _, state)| match state {
            KeyState::NotProvided(reason) => format!("`{key}` ({reason})"),
            _ => format!("`{key}`"),
        })
        .collect();
    if !missing_required.is_empty() {
        let how = if request.fhir_server.is_some() {
            "fetching from fhirServer is not supported yet"
        } else {
            "no fhirServer was given to fetch it from"
        };
        return Err(EvaluateError::MissingData(format!("{}; {how}", missing_required.join(", "))));
    }
    Ok(builder.finish())
}

/// Assesses a record and renders the response.
pub fn respond(
    content: &Content,
    service: &ServiceDefinition,
    request: &HookRequest<'_>,
    record: PatientRecord,
    today: Date,
    options: &Options,
) -> Outcome {
    let ctx = RenderContext {
        hook: service.hook,
        hook_instance: &request.hook_instance,
        patient_id: &request.context.patient_id,
        mirror_system_actions: options.mirror_system_actions,
        start_back_app_url: options.start_back_app_url.clone(),
    };
    let assessment = assess::assess(&record, content, today, ctx.scope());
    let response = cards::render(&assessment, &record, content, &ctx);
    Outcome { response, record, assessment }
}

/// Parses and answers a stored request without any network: the `evaluate` command and tests.
pub fn evaluate_body(
    content: &Content,
    service: &ServiceDefinition,
    body: &[u8],
    today: Date,
    options: &Options,
) -> Result<Outcome, EvaluateError> {
    let request = HookRequest::parse(body)?;
    check_request(service, &request)?;
    let record = record_from_prefetch(content, service, &request)?;
    Ok(respond(content, service, &request, record, today, options))
}
