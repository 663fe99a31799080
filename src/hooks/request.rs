//! Parsing a hook request: lenient about what we do not use, strict about what we need.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::Hook;

/// A client mistake in a hook request. Each variant renders as a 400 naming the problem.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request body does not match the CDS Hooks request schema: {0}")]
    WrongShape(String),
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField { field: &'static str, reason: String },
}

/// `fhirAuthorization`: an OAuth 2.0 access token for `fhirServer`. The token is transient: it is
/// never logged (see the `Debug` impl) and never stored.
#[derive(Clone, Deserialize)]
pub struct FhirAuthorization {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<serde_json::Number>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub patient: Option<String>,
}

impl std::fmt::Debug for FhirAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirAuthorization")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// One prefetch value as sent: `null` (the client says there is no such data) or a JSON value
/// (a Bundle, a single resource or an OperationOutcome), kept unparsed until the record is built.
#[derive(Debug, Clone, Copy)]
pub enum PrefetchValue<'a> {
    Null,
    Json(&'a RawValue),
}

/// The hook's `context`, with the members the three hooks used here can carry.
#[derive(Debug, Clone, Default)]
pub struct HookContext<'a> {
    pub user_id: Option<String>,
    pub patient_id: String,
    pub encounter_id: Option<String>,
    /// order-select only: `Type/id` references into `draftOrders`.
    pub selections: Option<Vec<String>>,
    /// order-select and order-sign: a Bundle of every unsigned order.
    pub draft_orders: Option<&'a RawValue>,
}

/// A parsed hook request. Prefetch values and draft orders borrow from the request body so that
/// each resource is parsed exactly once, when the patient record is built.
#[derive(Debug)]
pub struct HookRequest<'a> {
    pub hook: String,
    pub hook_instance: String,
    pub fhir_server: Option<String>,
    pub fhir_authorization: Option<FhirAuthorization>,
    pub context: HookContext<'a>,
    /// `None` when the request has no `prefetch` member: every key is then absent.
    pub prefetch: Option<HashMap<String, PrefetchValue<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    hook_instance: Option<String>,
    #[serde(default)]
    fhir_server: Option<String>,
    #[serde(default)]
    fhir_authorization: Option<FhirAuthorization>,
    #[serde(default, borrow)]
    context: Option<&'a RawValue>,
    #[serde(default, borrow)]
    prefetch: Option<HashMap<String, &'a RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireContext<'a> {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    patient_id: Option<String>,
    #[serde(default)]
    encounter_id: Option<String>,
    #[serde(default)]
    selections: Option<Vec<String>>,
    #[serde(default, borrow)]
    draft_orders: Option<&'a RawValue>,
}

impl<'a> HookRequest<'a> {
    /// Parses a request body. Which context members are required depends on the hook, so the
    /// caller checks that with [`HookRequest::require_context_for`] once the service is known.
    pub fn parse(body: &'a [u8]) -> Result<HookRequest<'a>, RequestError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let wire: WireRequest<'a> = serde_path_to_error::deserialize(&mut deserializer).map_err(classify_json_error)?;
        deserializer.end().map_err(|e| RequestError::MalformedJson(e.to_string()))?;
        let hook = wire.hook.ok_or(RequestError::MissingField("hook"))?;
        let hook_instance = wire.hook_instance.ok_or(RequestError::MissingField("hookInstance"))?;
        validate_hook_instance(&hook_instance)?;
        let context_raw = wire.context.ok_or(RequestError::MissingField("context"))?;
        let context: WireContext<'a> =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(context_raw.get()))
                .map_err(|e| RequestError::InvalidField { field: "context", reason: with_path("context", &e) })?;
        let patient_id = context.patient_id.ok_or(RequestError::MissingField("context.patientId"))?;
        validate_fhir_id("context.patientId", &patient_id)?;
        if let Some(encounter) = &context.encounter_id {
            validate_fhir_id("context.encounterId", encounter)?;
        }
        if let Some(server) = &wire.fhir_server {
            validate_fhir_server(server)?;
        }
        if wire.fhir_authorization.is_some() && wire.fhir_server.is_none() {
            return Err(RequestError::InvalidField {
                field: "fhirAuthorization",
                reason: "`fhirServer` is required when `fhirAuthorization` is present".into(),
            });
        }
        let prefetch = wire.prefetch.map(|map| {
            map.into_iter()
                .map(|(key, raw)| {
                    let value = if raw.get().trim() == "null" { PrefetchValue::Null } else { PrefetchValue::Json(raw) };
                    (key, value)
                })
                .collect()
        });
        Ok(HookRequest {
            hook,
            hook_instance,
            fhir_server: wire.fhir_server,
            fhir_authorization: wire.fhir_authorization,
            context: HookContext {
                user_id: context.user_id,
                patient_id,
                encounter_id: context.encounter_id,
                selections: context.selections,
                draft_orders: context.draft_orders.filter(|raw| raw.get().trim() != "null"),
            },
            prefetch,
        })
    }

    /// Checks the context members that the CDS Hooks library marks as required for `hook`.
    pub fn require_context_for(&self, hook: Hook) -> Result<(), RequestError> {
        if self.context.user_id.is_none() {
            return Err(RequestError::MissingField("context.userId"));
        }
        match hook {
            Hook::PatientView => Ok(()),
            Hook::OrderSelect => {
                let selections =
                    self.context.selections.as_ref().ok_or(RequestError::MissingField("context.selections"))?;
                if let Some(bad) = selections.iter().find(|s| !is_relative_reference(s)) {
                    return Err(RequestError::InvalidField {
                        field: "context.selections",
                        reason: format!("`{}` is not a relative reference such as `ServiceRequest/123`", shorten(bad)),
                    });
                }
                self.context.draft_orders.ok_or(RequestError::MissingField("context.draftOrders"))?;
                Ok(())
            }
            Hook::OrderSign => {
                self.context.draft_orders.ok_or(RequestError::MissingField("context.draftOrders"))?;
                Ok(())
            }
        }
    }
}

/// serde_json tells syntax errors apart from type errors; the first means the body is not JSON
/// at all, the second that it is JSON of the wrong shape.
fn classify_json_error(error: serde_path_to_error::Error<serde_json::Error>) -> RequestError {
    use serde_json::error::Category;
    match error.inner().classify() {
        Category::Data => RequestError::WrongShape(with_path("", &error)),
        Category::Syntax | Category::Eof | Category::Io => RequestError::MalformedJson(error.inner().to_string()),
    }
}

/// "context.patientId: invalid type: ..." so the client sees which member is wrong.
fn with_path(prefix: &str, error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    let path = match (prefix, path.as_str()) {
        (_, ".") => prefix.to_owned(),
        ("", path) => path.to_owned(),
        (prefix, path) => format!("{prefix}.{path}"),
    };
    if path.is_empty() { error.inner().to_string() } else { format!("`{path}`: {}", error.inner()) }
}

/// `hookInstance` goes into every log line of the call, so only plain identifier characters are
/// accepted (the spec says it is a UUID; we accept any short identifier).
fn validate_hook_instance(value: &str) -> Result<(), RequestError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(RequestError::InvalidField {
            field: "hookInstance",
            reason: "must be a UUID (1-128 characters of letters, digits, '-', '_', '.', ':')".into(),
        })
    }
}

/// FHIR `id`: `[A-Za-z0-9\-\.]{1,64}`. Ids end up in query URLs, so anything else is refused.
pub fn validate_fhir_id(field: &'static str, value: &str) -> Result<(), RequestError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(RequestError::InvalidField {
            field,
            reason: "must be a FHIR id (1-64 characters of letters, digits, '-' and '.')".into(),
        })
    }
}

fn validate_fhir_server(value: &str) -> Result<(), RequestError> {
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && value.len() <= 2048
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(RequestError::InvalidField { field: "fhirServer", reason: "must be an absolute http(s) URL".into() })
    }
}

fn is_relative_reference(value: &str) -> bool {
    match value.split_once('/') {
        Some((kind, id)) => {
            !kind.is_empty()
                && kind.chars().all(|c| c.is_ascii_alphabetic())
                && validate_fhir_id("context.selections", id).is_ok()
        }
        None => false,
    }
}

/// Echoes a client value in an error message without letting it grow the response unboundedly.
fn shorten(value: &str) -> String {
    if value.chars().count() <= 80 {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(80).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_missing_members_by_name() {
        assert_eq!(HookRequest::parse(b"{}").unwrap_err(), RequestError::MissingField("hook"));
        let no_instance = br#"{"hook":"patient-view","context":{}}"#;
        assert_eq!(HookRequest::parse(no_instance).unwrap_err(), RequestError::MissingField("hookInstance"));
        let no_patient = br#"{"hook":"patient-view","hookInstance":"a1","context":{"userId":"Practitioner/1"}}"#;
        assert_eq!(HookRequest::parse(no_patient).unwrap_err(), RequestError::MissingField("context.patientId"));
    }

    #[test]
    fn tells_syntax_errors_from_shape_errors() {
        assert!(matches!(HookRequest::parse(b"{\"hook\":"), Err(RequestError::MalformedJson(_))));
        assert!(matches!(HookRequest::parse(b"{\"hook\":5}"), Err(RequestError::WrongShape(_))));
        assert!(matches!(HookRequest::parse(b"[1,2]"), Err(RequestError::WrongShape(_))));
    }

    #[test]
    fn keeps_null_prefetch_apart_from_absent() {
        let body =
            br#"{"hook":"patient-view","hookInstance":"a1","context":{"userId":"Practitioner/1","patientId":"p1"},
            "prefetch":{"conditions":null,"patient":{"resourceType":"Patient","id":"p1"}}}"#;
        let request = HookRequest::parse(body).unwrap();
        let prefetch = request.prefetch.unwrap();
        assert!(matches!(prefetch.get("conditions"), Some(PrefetchValue::Null)));
        assert!(matches!(prefetch.get("patient"), Some(PrefetchValue::Json(_))));
        assert!(!prefetch.contains_key("observations"));
    }

    #[test]
    fn refuses_ids_that_could_reach_a_query_string() {
        let body = br#"{"hook":"patient-view","hookInstance":"a1","context":{"userId":"u","patientId":"p1&_id=x"}}"#;
        assert!(matches!(HookRequest::parse(body), Err(RequestError::InvalidField { field: "context.patientId", .. })));
    }

    #[test]
    fn never_shows_the_access_token_in_debug_output() {
        let body = br#"{"hook":"patient-view","hookInstance":"a1","fhirServer":"https://fhir.example/r4",
            "fhirAuthorization":{"access_token":"secret-token-value","token_type":"Bearer"},
            "context":{"userId":"u","patientId":"p1"}}"#;
        let request = HookRequest::parse(body).unwrap();
        let debug = format!("{request:?}");
        assert!(!debug.contains("secret-token-value"), "{debug}");
    }
}
