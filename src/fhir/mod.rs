//! Fetching what the EHR did not prefetch: the same queries, run against `fhirServer` with the
//! EHR's access token, all keys at once under one time budget, following `next` links.
//!
//! Pages are fetched with reqwest and read resource by resource by the record builder (fhir-sdk's
//! R4B models), so that one unreadable resource is skipped instead of failing its whole page.

use std::time::Duration;

use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use crate::hooks::HookRequest;
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
}

impl Default for FetchLimits {
    fn default() -> FetchLimits {
        FetchLimits { budget: Duration::from_millis(2_500), max_pages: 10, max_page_bytes: 16 * 1024 * 1024 }
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
pub fn render_query(template: &str, request: &HookRequest<'_>) -> Option<String> {
    let context = &request.context;
    let user = context.user_id.as_deref();
    let typed = |kind: &str| user.and_then(|u| u.strip_prefix(kind)).map(str::to_owned);
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}")?;
        let value = match after[..end].trim() {
            "context.patientId" => Some(context.patient_id.clone()),
            "context.encounterId" => context.encounter_id.clone(),
            "context.userId" => user.map(str::to_owned),
            "userPractitionerId" => typed("Practitioner/"),
            "userPractitionerRoleId" => typed("PractitionerRole/"),
            "userPatientId" => typed("Patient/"),
            "userRelatedPersonId" => typed("RelatedPerson/"),
            _ => None,
        }?;
        out.push_str(&encode_query_value(&value));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
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

/// Whether `url` is on `base` (a `next` link must not lead the token elsewhere).
pub fn is_under(base: &str, url: &str) -> bool {
    let base = base.trim_end_matches('/');
    url.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

/// Runs every fetch concurrently under the budget. Each key's pages (up to the cap) come back
/// with what went wrong, if anything.
pub async fn fetch_all(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    fetches: Vec<Fetch>,
    limits: &FetchLimits,
) -> Vec<Fetched> {
    let deadline = Instant::now() + limits.budget;
    let tasks = fetches.into_iter().map(|fetch| async move {
        let mut pages = Vec::new();
        let mut url = fetch.url.clone();
        let mut problem = None;
        loop {
            if !is_under(base, &url) {
                problem = Some("a next link points outside fhirServer and was not followed".to_owned());
                break;
            }
            match tokio::time::timeout_at(deadline, get(http, &url, token, limits.max_page_bytes)).await {
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
                            problem = Some(format!("more than {} pages of results; the rest was not read", limits.max_pages));
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
        Fetched { fetch, pages, problem }
    });
    join_all(tasks).await
}

async fn get(http: &reqwest::Client, url: &str, token: Option<&str>, max_bytes: usize) -> Result<Vec<u8>, String> {
    let mut request = http.get(url).header("accept", "application/fhir+json, application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    // Errors name the status or the kind of failure, never the URL's query or the token.
    let mut response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status();
    if !status.is_success() {
        return Err(match status.as_u16() {
            401 | 403 => format!("the FHIR server refused the access token ({status})"),
            _ => format!("the FHIR server answered {status}"),
        });
    }
    if response.content_length().is_some_and(|length| length as usize > max_bytes) {
        return Err(format!("the FHIR server's answer is larger than {max_bytes} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("the FHIR server's answer is larger than {max_bytes} bytes"));
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
        let problem = problem.or(page_problem);
        let (status, availability) = match (&problem, usable) {
            (None, _) => ("fetched", Availability::Complete),
            (Some(problem), true) => ("fetched-incomplete", Availability::Incomplete(problem.clone())),
            (Some(problem), false) => ("fetch-failed", Availability::Missing(problem.clone())),
        };
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
    fn next_links_must_stay_on_the_fhir_server() {
        assert!(is_under("https://fhir.example.org/r4", "https://fhir.example.org/r4/Condition?page=2"));
        assert!(is_under("https://fhir.example.org/r4/", "https://fhir.example.org/r4?_getpages=x"));
        assert!(!is_under("https://fhir.example.org/r4", "https://fhir.example.org/r40/Condition"));
        assert!(!is_under("https://fhir.example.org/r4", "https://evil.example/r4/Condition"));
        assert!(!is_under("https://fhir.example.org", "https://fhir.example.org.evil.example/x"));
    }

    #[test]
    fn templates_render_with_encoded_context_values() {
        let body = br#"{"hook":"patient-view","hookInstance":"a1","context":{"userId":"Practitioner/p 1","patientId":"pat-1"}}"#;
        let request = HookRequest::parse(body).unwrap();
        assert_eq!(render_query("Condition?patient={{context.patientId}}", &request).as_deref(), Some("Condition?patient=pat-1"));
        assert_eq!(render_query("X?p={{userPractitionerId}}", &request).as_deref(), Some("X?p=p%201"));
        assert_eq!(render_query("Encounter/{{context.encounterId}}", &request), None);
    }
}
