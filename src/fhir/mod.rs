//! Fetching what the EHR did not prefetch: the same queries, run against `fhirServer` with the
//! EHR's access token, all keys at once under one time budget, following `next` links.
//!
//! Pages are fetched with reqwest and read resource by resource by the record builder (fhir-sdk's
//! R4B models), so that one unreadable resource is skipped instead of failing its whole page.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::content::{PrefetchTemplate, PrefetchToken};
use crate::hooks::HookRequest;
use crate::outbound::UrlScope;
use crate::record::{Availability, KeyState, RecordBuilder, ResourceKind};

/// Limits of one hook call's fetching.
#[derive(Debug, Clone)]
pub struct FetchLimits {
    /// All queries of one hook call must finish within this time.
    pub budget: Duration,
    /// Pages followed per query (the first page included).
    pub max_pages: usize,
    /// Largest page accepted, in bytes.
    pub max_page_bytes: usize,
    /// Bytes read from the FHIR server for one hook call, across every query and page.
    pub max_call_bytes: usize,
    /// Resources read for one hook call, prefetch and fetched pages together.
    pub max_call_resources: usize,
    /// Whether `http://` FHIR servers may be contacted (local tests; https otherwise).
    pub allow_http: bool,
}

impl Default for FetchLimits {
    fn default() -> FetchLimits {
        use crate::config::defaults;
        FetchLimits {
            budget: Duration::from_millis(defaults::FHIR_BUDGET_MS),
            max_pages: defaults::FHIR_MAX_PAGES,
            max_page_bytes: defaults::FHIR_MAX_PAGE_BYTES,
            max_call_bytes: defaults::FHIR_MAX_CALL_BYTES,
            max_call_resources: defaults::MAX_CALL_RESOURCES,
            allow_http: false,
        }
    }
}

/// One key to fetch: from its query, or from the `next` link of a prefetched first page.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub key: String,
    pub kind: ResourceKind,
    pub url: String,
    /// True when the first page was prefetched and only the rest is fetched.
    pub continuation: bool,
}

/// The outcome of one key's fetch.
#[derive(Debug)]
pub struct Fetched {
    pub fetch: Fetch,
    pub pages: Vec<Vec<u8>>,
    /// Why the data is incomplete, if it is.
    pub problem: Option<String>,
}

/// Expands a prefetch template with the hook's context (CDS Hooks 2.0 tokens). `None` when a
/// token has no value in this call (the template cannot be used).
pub fn render_query(template: &PrefetchTemplate, request: &HookRequest<'_>) -> Option<String> {
    let context = &request.context;
    let user = context.user_id.as_deref();
    let typed = |kind: &str| user.and_then(|u| u.strip_prefix(kind)).map(str::to_owned);
    template.fill(
        |token| match token {
            PrefetchToken::PatientId => Some(context.patient_id.clone()),
            PrefetchToken::EncounterId => context.encounter_id.clone(),
            PrefetchToken::UserId => user.map(str::to_owned),
            PrefetchToken::UserPractitionerId => typed("Practitioner/"),
            PrefetchToken::UserPractitionerRoleId => typed("PractitionerRole/"),
            PrefetchToken::UserPatientId => typed("Patient/"),
            PrefetchToken::UserRelatedPersonId => typed("RelatedPerson/"),
        },
        encode_query_value,
    )
}

fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Runs every fetch concurrently under the time budget and the call's byte budget. Each key's
/// pages (up to the cap) come back with what went wrong, if anything. Every URL, the first and
/// each `next` link, is parsed and must lie under `fhirServer` (same origin, path below its path)
/// before the access token is sent to it.
pub async fn fetch_all(
    http: &reqwest::Client,
    base: &UrlScope,
    token: Option<&str>,
    fetches: Vec<Fetch>,
    limits: &FetchLimits,
) -> Vec<Fetched> {
    let deadline = Instant::now() + limits.budget;
    let call_bytes = AtomicUsize::new(0);
    let call_bytes = &call_bytes;
    let tasks = fetches.into_iter().map(|fetch| async move {
        let started = Instant::now();
        let mut pages = Vec::new();
        let mut url = fetch.url.clone();
        let mut problem = None;
        loop {
            let parsed = match base.admit(&url, limits.allow_http) {
                Ok(parsed) => parsed,
                Err(error) => {
                    problem = Some(format!("a link from the FHIR server was not followed: it {error}"));
                    break;
                }
            };
            match tokio::time::timeout_at(deadline, get(http, parsed, token, limits, call_bytes)).await {
                Err(_) => {
                    problem = Some(format!("the FHIR server did not answer within {} ms", limits.budget.as_millis()));
                    break;
                }
                Ok(Err(error)) => {
                    problem = Some(error);
                    break;
                }
                Ok(Ok(body)) => {
                    let next = next_link(&body);
                    pages.push(body);
                    match next {
                        Some(next) if pages.len() < limits.max_pages => url = next,
                        Some(_) => {
                            problem =
                                Some(format!("more than {} pages of results; the rest was not read", limits.max_pages));
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
        let outcome = match (&problem, pages.is_empty()) {
            (None, _) => "complete",
            (Some(_), false) => "incomplete",
            (Some(_), true) => "failed",
        };
        crate::metrics::get()
            .fhir_query_seconds
            .get_or_create(&crate::metrics::QueryLabels { key: fetch.key.clone(), outcome })
            .observe(started.elapsed().as_secs_f64());
        Fetched { fetch, pages, problem }
    });
    join_all(tasks).await
}

async fn get(
    http: &reqwest::Client,
    url: url::Url,
    token: Option<&str>,
    limits: &FetchLimits,
    call_bytes: &AtomicUsize,
) -> Result<Vec<u8>, String> {
    let max_bytes = limits.max_page_bytes;
    let mut request = http.get(url).header("accept", "application/fhir+json, application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    // Errors name the status or the kind of failure, never the URL's query, the token or the body.
    let mut response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(match status.as_u16() {
            401 | 403 => format!("the FHIR server refused the access token ({status})"),
            _ => format!("the FHIR server answered {status}"),
        });
    }
    if response.content_length().is_some_and(|length| length > max_bytes as u64) {
        return Err(format!("the FHIR server's answer is larger than {max_bytes} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("the FHIR server's answer is larger than {max_bytes} bytes"));
        }
        if call_bytes.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len() > limits.max_call_bytes {
            crate::metrics::get().call_budget_exceeded.inc();
            return Err(format!(
                "more than {} bytes from the FHIR server in this call; the rest was not read",
                limits.max_call_bytes
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return Err("the FHIR server's answer is not JSON".into());
    }
    Ok(body)
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "the FHIR server timed out".into()
    } else if error.is_connect() {
        "the FHIR server could not be reached".into()
    } else if error.is_decode() || error.is_body() {
        "the FHIR server's answer could not be read".into()
    } else {
        "the request to the FHIR server failed".into()
    }
}

#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    link: Vec<Link>,
}

#[derive(Deserialize)]
struct Link {
    #[serde(default)]
    relation: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

fn next_link(body: &[u8]) -> Option<String> {
    let links: Links = serde_json::from_slice(body).ok()?;
    links.link.into_iter().find(|l| l.relation.as_deref() == Some("next")).and_then(|l| l.url)
}

/// Adds fetched pages to the record and records what is complete, incomplete or missing.
pub fn merge(builder: &mut RecordBuilder, fetched: Vec<Fetched>) {
    for Fetched { fetch, pages, problem } in fetched {
        let mut usable = fetch.continuation;
        let mut page_problem = None;
        for page in &pages {
            let Ok(raw) = serde_json::from_slice::<&RawValue>(page) else { continue };
            match builder.add_json(&fetch.key, fetch.kind, raw) {
                KeyState::NotProvided(reason) => page_problem = Some(format!("the FHIR server answered with {reason}")),
                KeyState::Loaded | KeyState::MorePages(_) => usable = true,
            }
        }
        let limit_problem = builder.over_limit(&fetch.key).then(|| {
            crate::metrics::get().call_budget_exceeded.inc();
            format!("more than {} resources in this call; the rest was not read", builder.resource_limit())
        });
        let problem = problem.or(limit_problem).or(page_problem);
        let (status, availability) = match (&problem, usable) {
            (None, _) => ("fetched", Availability::Complete),
            (Some(problem), true) => ("fetched-incomplete", Availability::Incomplete(problem.clone())),
            (Some(problem), false) => ("fetch-failed", Availability::Missing(problem.clone())),
        };
        let outcome = match status {
            "fetched" => "complete",
            "fetched-incomplete" => "incomplete",
            _ => "failed",
        };
        crate::metrics::get().fhir_queries.get_or_create(&crate::metrics::reason(outcome)).inc();
        match &problem {
            Some(problem) => tracing::warn!(key = %fetch.key, %status, %problem, "FHIR query did not complete"),
            None => tracing::debug!(key = %fetch.key, pages = pages.len(), "FHIR query complete"),
        }
        builder.mark_fetched(&fetch.key, fetch.kind, status, problem, availability);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_with_encoded_context_values() {
        let body = br#"{"hook":"patient-view","hookInstance":"a1","context":{"userId":"Practitioner/p 1","patientId":"pat-1"}}"#;
        let request = HookRequest::parse(body).unwrap();
        let query = |text: &str| render_query(&PrefetchTemplate::parse(text).unwrap(), &request);
        assert_eq!(query("Condition?patient={{context.patientId}}").as_deref(), Some("Condition?patient=pat-1"));
        assert_eq!(query("X?p={{userPractitionerId}}").as_deref(), Some("X?p=p%201"));
        assert_eq!(query("Encounter/{{context.encounterId}}"), None);
    }
}
