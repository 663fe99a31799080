//! One hook call, from parsed request to response: shared by the HTTP service and the
//! `lbp-cds evaluate` command so that both give the same answer.

use time::Date;

use crate::assess::{self, Assessment};
use crate::cards::{self, RenderContext};
use crate::content::{Content, ServiceDefinition};
use crate::fhir::{self, Fetch, FetchLimits, Fetched};
use crate::hooks::{CdsResponse, Hook, HookRequest, RequestError};
use crate::outbound::UrlScope;
use crate::record::{self, Availability, KeyState, PatientRecord, RecordBuilder};

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

/// Where missing data may be fetched from, decided by the HTTP layer (authentication and the
/// FHIR server allow-lists).
#[derive(Debug, Clone, Copy)]
pub struct FhirAccess<'a> {
    pub base: &'a UrlScope,
    /// The EHR's access token; `None` for an open FHIR server that configuration allows.
    pub token: Option<&'a str>,
    pub http: &'a reqwest::Client,
    pub limits: &'a FetchLimits,
}

/// A call read from its request alone: the record built from prefetch, and the queries still to
/// run. Owns everything, so that the CPU-heavy halves of a call (reading the request, assessing)
/// can run on the blocking pool and the fetching between them on the async workers.
#[derive(Debug)]
pub struct Pending {
    builder: RecordBuilder,
    pub fetches: Vec<Fetch>,
    /// Why required data that is still missing could not be had (the 412's message).
    why_missing: &'static str,
    call: Call,
}

/// What the response needs from the request.
#[derive(Debug, Clone)]
pub struct Call {
    pub hook_instance: String,
    pub patient_id: String,
}

/// Builds the record from prefetch and lists, for keys the client left out, sent as an
/// OperationOutcome or only as a first page, the queries to run against `fhir_base` (if the
/// HTTP layer allowed one).
pub fn prepare(
    content: &Content,
    service: &ServiceDefinition,
    request: &HookRequest<'_>,
    fhir_base: Option<&UrlScope>,
    resource_limit: usize,
) -> Pending {
    let keys = content.prefetch_keys(service);
    let (builder, states) = record::from_prefetch(request, &keys, resource_limit);
    let call = Call { hook_instance: request.hook_instance.clone(), patient_id: request.context.patient_id.clone() };
    let Some(base) = fhir_base else {
        let why_missing = if request.fhir_server.is_some() {
            "fhirServer is not one this service may contact"
        } else {
            "no fhirServer was given to fetch it from"
        };
        return Pending { builder, fetches: Vec::new(), why_missing, call };
    };
    let base = base.as_base();
    let fetches = states
        .iter()
        .filter_map(|(key, kind, state)| {
            let (url, continuation) = match state {
                KeyState::Loaded => return None,
                KeyState::MorePages(next) => (next.clone(), true),
                KeyState::NotProvided(_) => {
                    let template = &content.prefetch.get(key)?.template;
                    (format!("{base}/{}", fhir::render_query(template, request)?), false)
                }
            };
            Some(Fetch { key: key.clone(), kind: *kind, url, continuation })
        })
        .collect();
    Pending { builder, fetches, why_missing: "the FHIR server did not provide it", call }
}

/// Adds what was fetched, requires the required data, assesses and renders.
pub fn finish(
    content: &Content,
    service: &ServiceDefinition,
    pending: Pending,
    fetched: Vec<Fetched>,
    today: Date,
    options: &Options,
) -> Result<Outcome, EvaluateError> {
    let Pending { mut builder, why_missing, call, .. } = pending;
    fhir::merge(&mut builder, fetched);
    let record = require(content, service, builder.finish(), why_missing)?;
    Ok(respond(content, service, &call, record, today, options))
}

/// Builds the record from prefetch and the FHIR server: every query at once, under one time
/// budget. A query that fails degrades the answer; only missing required data is a 412.
pub async fn gather_record(
    content: &Content,
    service: &ServiceDefinition,
    request: &HookRequest<'_>,
    access: Option<FhirAccess<'_>>,
) -> Result<PatientRecord, EvaluateError> {
    let limit = access.map_or(record::DEFAULT_RESOURCE_LIMIT, |a| a.limits.max_call_resources);
    let Pending { mut builder, fetches, why_missing, .. } =
        prepare(content, service, request, access.map(|a| a.base), limit);
    if let (Some(access), false) = (access, fetches.is_empty()) {
        tracing::info!(queries = fetches.len(), "fetching data the client did not prefetch");
        let fetched = fhir::fetch_all(access.http, access.base, access.token, fetches, access.limits).await;
        fhir::merge(&mut builder, fetched);
    }
    require(content, service, builder.finish(), why_missing)
}

/// Required data (patient, conditions) that is still missing: nothing useful can be said (412).
fn require(
    content: &Content,
    service: &ServiceDefinition,
    record: PatientRecord,
    why: &str,
) -> Result<PatientRecord, EvaluateError> {
    let missing: Vec<String> = service
        .prefetch
        .iter()
        .filter_map(|key| {
            let prefetch = content.prefetch.get(key)?;
            let kind = prefetch.kind;
            match record.availability(kind) {
                Availability::Missing(reason) if prefetch.required => Some(format!("`{key}` ({reason})")),
                _ => None,
            }
        })
        .collect();
    if missing.is_empty() {
        Ok(record)
    } else {
        Err(EvaluateError::MissingData(format!("{}; {why}", missing.join(", "))))
    }
}

/// Assesses a record and renders the response.
pub fn respond(
    content: &Content,
    service: &ServiceDefinition,
    call: &Call,
    record: PatientRecord,
    today: Date,
    options: &Options,
) -> Outcome {
    let ctx = RenderContext {
        hook: service.hook,
        hook_instance: &call.hook_instance,
        patient_id: &call.patient_id,
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
    let pending = prepare(content, service, &request, None, record::DEFAULT_RESOURCE_LIMIT);
    finish(content, service, pending, Vec::new(), today, options)
}
