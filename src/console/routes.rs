//! The console's routes and handlers. The preview and the feedback buttons call the API's own
//! handlers (`POST /cds-services/{id}` and its feedback endpoint), so what the console shows is
//! what an EHR gets, from the same code, the same audit trail and the same storage.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router, middleware};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{self, ConsoleState, Protection, Session, field, form_fields};
use super::charts::{self, Bar, DayCounts, Series};
use super::pages::{self, Frame, PreviewForm, PreviewOutcome};
use super::{catalogue, shift};
use crate::http::AppState;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

pub fn router(state: &AppState) -> Router<AppState> {
    let console = Arc::new(ConsoleState::new(state.settings.console.session_minutes));
    Router::new()
        .route("/console", get(overview))
        .route("/console/", get(|| async { Redirect::permanent("/console") }))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/preview", get(preview_page).post(preview))
        .route("/console/feedback", post(feedback))
        .route("/console/content", get(content_index))
        .route("/console/content/cards/{id}", get(card_type))
        .route("/console/content/value-sets/{id}", get(value_set))
        .route("/console/charts", get(charts_page))
        .route("/console/assets/console.css", get(|| async { asset("text/css; charset=utf-8", CSS) }))
        .route("/console/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", JS) }))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::guard))
        .layer(Extension(console))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// What every page handler gets: the application, its session and how it is protected.
struct Visit {
    app: AppState,
    session: Session,
    protection: Protection,
    content: Arc<crate::content::Content>,
}

impl Visit {
    fn new(app: AppState, session: Session, protection: Protection) -> Visit {
        let content = app.content.current();
        Visit { app, session, protection, content }
    }

    fn frame(&self) -> Frame<'_> {
        Frame {
            session: &self.session,
            protection: self.protection,
            today: self.app.settings.today(),
            content_version: &self.content.version,
        }
    }
}

async fn overview(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(protection): Extension<Protection>,
) -> Html<String> {
    let visit = Visit::new(app, session, protection);
    let services: Vec<(String, String)> =
        visit.content.services.iter().map(|s| (s.id.clone(), s.hook.as_str().to_owned())).collect();
    let fixtures = super::fixtures(visit.app.settings.console.fixtures_dir.as_deref()).len();
    let cohort = visit.app.settings.console.cohort_report.as_ref().map(|p| p.display().to_string());
    pages::overview(&visit.frame(), &services, fixtures, cohort.as_deref())
}

async fn login_page(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(protection): Extension<Protection>,
) -> Response {
    if protection != Protection::SignedOut || app.settings.auth.is_none() {
        return Redirect::to("/console").into_response();
    }
    pages::login(&session, false)
}

/// The console token starts a new session (a session id from before the login is never
/// promoted: no session fixation). A wrong token is logged without the token.
async fn login(
    State(app): State<AppState>,
    Extension(console): Extension<Arc<ConsoleState>>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form_fields(&body);
    let offered = field(&fields, "token").unwrap_or_default();
    let Some(token) = app.settings.console.token.as_ref() else {
        return Redirect::to("/console").into_response();
    };
    if !token.matches(offered) {
        crate::metrics::get().auth_failures.get_or_create(&crate::metrics::reason("console-login")).inc();
        tracing::warn!("console login with a wrong token refused");
        return pages::login(&session, true);
    }
    console.end(&session.id);
    let signed_in = console.start(true);
    tracing::info!("console login");
    let mut response = Redirect::to("/console").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, auth::session_cookie(&app, &headers, &signed_in, console.session_seconds));
    response
}

async fn logout(Extension(console): Extension<Arc<ConsoleState>>, Extension(session): Extension<Session>) -> Response {
    console.end(&session.id);
    let mut response = Redirect::to("/console").into_response();
    let expired = format!("{}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0", auth::COOKIE);
    if let Ok(value) = HeaderValue::from_str(&expired) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn fixture_names(app: &AppState) -> Vec<String> {
    super::fixtures(app.settings.console.fixtures_dir.as_deref()).into_iter().map(|f| f.name).collect()
}

fn service_ids(content: &crate::content::Content) -> Vec<String> {
    content.services.iter().map(|s| s.id.clone()).collect()
}

async fn preview_page(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(protection): Extension<Protection>,
) -> Html<String> {
    let visit = Visit::new(app, session, protection);
    let fixtures = fixture_names(&visit.app);
    let services = service_ids(&visit.content);
    let form = PreviewForm {
        fixtures: &fixtures,
        services: &services,
        chosen_fixture: Some("order-select-mri-acute-lbp"),
        pasted: "",
        source_paste: false,
        service: "auto",
        shift: true,
        shift_days: shift::days_from_fixture_date(visit.app.settings.today()),
    };
    pages::preview(&visit.frame(), &pages::preview_form(&visit.frame(), &form), None)
}

/// Sends a stored or pasted request through the hook handler itself and shows the answer.
async fn preview(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(protection): Extension<Protection>,
    body: Bytes,
) -> Response {
    let visit = Visit::new(app, session, protection);
    let fields = form_fields(&body);
    let source_paste = field(&fields, "source") == Some("paste");
    let chosen = field(&fields, "fixture").unwrap_or_default().to_owned();
    let pasted = field(&fields, "pasted").unwrap_or_default().to_owned();
    let shift_on = field(&fields, "shift") == Some("on");
    let service_choice = field(&fields, "service").unwrap_or("auto").to_owned();
    let today = visit.app.settings.today();
    let shift_days = shift::days_from_fixture_date(today);
    let fixtures = fixture_names(&visit.app);
    let services = service_ids(&visit.content);
    let form = pages::preview_form(
        &visit.frame(),
        &PreviewForm {
            fixtures: &fixtures,
            services: &services,
            chosen_fixture: Some(&chosen),
            pasted: &pasted,
            source_paste,
            service: &service_choice,
            shift: shift_on,
            shift_days,
        },
    );
    let mut notes = Vec::new();
    let refused = |status: StatusCode, message: String, notes: &[String]| {
        let outcome = PreviewOutcome::Refused { status: status.as_u16(), message: &message, notes };
        (status, pages::preview(&visit.frame(), &form, Some(outcome))).into_response()
    };
    let text = if source_paste {
        pasted.clone()
    } else {
        match super::fixtures(visit.app.settings.console.fixtures_dir.as_deref()).into_iter().find(|f| f.name == chosen)
        {
            Some(fixture) => fixture.text,
            None => return refused(StatusCode::BAD_REQUEST, format!("no stored request named `{chosen}`"), &notes),
        }
    };
    // A pasted request may be megabytes: read and shift it on the blocking pool, as the hook
    // handler reads its body.
    let shift_by = (!source_paste && shift_on).then_some(shift_days);
    let read = tokio::task::spawn_blocking(move || {
        let mut request: Value = serde_json::from_str(&text)?;
        let moved = shift_by.map(|days| shift::shift_request(&mut request, days));
        Ok::<_, serde_json::Error>((request, moved))
    })
    .await;
    let (mut request, moved) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(error)) => {
            return refused(StatusCode::BAD_REQUEST, format!("the request is not valid JSON: {error}"), &notes);
        }
        Err(_) => return refused(StatusCode::INTERNAL_SERVER_ERROR, "reading the request failed".into(), &notes),
    };
    if let Some(moved) = moved {
        notes.push(format!("{moved} dates moved by {shift_days:+} days, from {} to {today}.", shift::FIXTURE_DATE));
    }
    if let Some(members) = request.as_object_mut() {
        for key in ["fhirServer", "fhirAuthorization"] {
            if members.remove(key).is_some() {
                notes.push(format!("`{key}` removed: the preview uses the prefetch only."));
            }
        }
    }
    let service = if service_choice == "auto" {
        let hook = request.get("hook").and_then(Value::as_str).unwrap_or_default();
        visit.content.services.iter().find(|s| s.hook.as_str() == hook).map(|s| s.id.clone())
    } else {
        visit.content.service(&service_choice).map(|s| s.id.clone())
    };
    let Some(service) = service else {
        return refused(
            StatusCode::BAD_REQUEST,
            "no service for this request: pick one, or send a request whose `hook` a service answers".into(),
            &notes,
        );
    };
    let sent = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let answer =
        crate::http::services::invoke(State(visit.app.clone()), Path(service.clone()), None, headers, sent).await;
    match answer {
        Ok(Json(response)) => {
            let response = serde_json::to_value(&response).unwrap_or(Value::Null);
            let outcome =
                PreviewOutcome::Answered { service: &service, request: &request, response: &response, notes: &notes };
            pages::preview(&visit.frame(), &form, Some(outcome)).into_response()
        }
        Err(error) => {
            let status = error.to_string();
            let code = error.into_response().status();
            refused(code, status, &notes)
        }
    }
}

/// A card answered in the preview: the feedback endpoint's own handler stores it.
async fn feedback(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(protection): Extension<Protection>,
    request_headers: HeaderMap,
    body: Bytes,
) -> Response {
    let visit = Visit::new(app, session, protection);
    let fields = form_fields(&body);
    let wants_json = request_headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let service = field(&fields, "service").unwrap_or_default().to_owned();
    let outcome = field(&fields, "outcome").unwrap_or_default();
    let mut item = json!({
        "card": field(&fields, "card").unwrap_or_default(),
        "outcome": outcome,
        "outcomeTimestamp": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    });
    if let Some(suggestion) = field(&fields, "suggestion").filter(|s| !s.is_empty()) {
        item["acceptedSuggestions"] = json!([{ "id": suggestion }]);
    }
    if outcome == "overridden" {
        let mut reason = json!({});
        if let Some(chosen) = field(&fields, "reason").filter(|r| !r.is_empty()) {
            let mut parts = chosen.splitn(3, '|');
            let (system, code, display) = (parts.next(), parts.next(), parts.next());
            reason["reason"] = json!({ "system": system, "code": code, "display": display });
        }
        if let Some(comment) = field(&fields, "comment").filter(|c| !c.trim().is_empty()) {
            reason["userComment"] = json!(comment);
        }
        if reason.as_object().is_some_and(|r| !r.is_empty()) {
            item["overrideReason"] = reason;
        }
    }
    let sent = Bytes::from(serde_json::to_vec(&json!({ "feedback": [item] })).unwrap_or_default());
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let answer = crate::http::feedback::receive(State(visit.app.clone()), Path(service), None, headers, sent).await;
    let (status, message, receipt) = match answer {
        Ok(Json(receipt)) => {
            let receipt = serde_json::to_value(&receipt).unwrap_or(Value::Null);
            let count = |key: &str| receipt.get(key).and_then(Value::as_u64).unwrap_or(0);
            let what = if outcome == "overridden" { "Overridden" } else { "Accepted" };
            let message = format!(
                "{what}: {} stored, {} already stored, {} flagged.",
                count("stored"),
                count("duplicates"),
                count("flagged")
            );
            (StatusCode::OK, message, receipt)
        }
        Err(error) => {
            let message = format!("Not stored: {error}");
            (error.into_response().status(), message, Value::Null)
        }
    };
    if wants_json {
        return (status, Json(json!({ "message": message, "receipt": receipt }))).into_response();
    }
    (status, pages::feedback_result(&visit.frame(), &message, status.is_success())).into_response()
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

async fn content_index(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(protection): Extension<Protection>,
    Query(search): Query<Search>,
) -> Html<String> {
    let visit = Visit::new(app, session, protection);
    let query = search.q.unwrap_or_default();
    let query: String = query.chars().take(200).collect();
    let result = (!query.trim().is_empty()).then(|| catalogue::search(&visit.content, &query));
    let cards = catalogue::card_types(&visit.content);
    let sets = catalogue::value_sets(&visit.content);
    pages::content_index(&visit.frame(), &query, result.as_ref(), &cards, &sets)
}

async fn card_type(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(protection): Extension<Protection>,
    Path(id): Path<String>,
) -> Response {
    let visit = Visit::new(app, session, protection);
    match catalogue::card_type(&visit.content, &id) {
        Some(card) => pages::card_type(&visit.frame(), &card).into_response(),
        None => pages::not_found(&visit.frame(), &format!("There is no card type `{id}`.")),
    }
}

async fn value_set(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(protection): Extension<Protection>,
    Path(id): Path<String>,
) -> Response {
    let visit = Visit::new(app, session, protection);
    match catalogue::value_set(&visit.content, &id) {
        Some(set) => {
            let users = catalogue::users_of_value_sets(&visit.content).remove(&id).unwrap_or_default();
            pages::value_set(&visit.frame(), &set, &users).into_response()
        }
        None => pages::not_found(&visit.frame(), &format!("There is no value set `{id}`.")),
    }
}

#[derive(Deserialize)]
struct Range {
    days: Option<String>,
}

/// Days shown in the acceptance chart by default, and at most.
const DEFAULT_DAYS: i64 = 14;
const MAX_DAYS: i64 = 90;
/// Override reasons shown.
const TOP_REASONS: usize = 10;

async fn charts_page(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(protection): Extension<Protection>,
    Query(range): Query<Range>,
) -> Response {
    let visit = Visit::new(app, session, protection);
    let days = match range.days.as_deref().map(str::parse::<i64>) {
        None => DEFAULT_DAYS,
        Some(Ok(days)) if (1..=MAX_DAYS).contains(&days) => days,
        Some(_) => {
            let body = format!(
                "<p class=\"error\" role=\"alert\">`days` must be a whole number from 1 to {MAX_DAYS}.</p><p><a href=\"/console/charts\">Charts</a></p>"
            );
            return (StatusCode::BAD_REQUEST, pages::charts(&visit.frame(), &body)).into_response();
        }
    };
    let mut body = String::new();
    acceptance_section(&visit.app, days, &mut body).await;
    burden_section(&visit.app, &mut body);
    pages::charts(&visit.frame(), &body).into_response()
}

fn day_start_ms(day: time::Date) -> i64 {
    day.midnight().assume_utc().unix_timestamp() * 1000
}

/// Acceptance per card type and day, and the top override reasons, from the feedback store
/// (the same queries as `/analytics`; UTC days, trusted feedback only).
async fn acceptance_section(app: &AppState, days: i64, body: &mut String) {
    use std::fmt::Write;
    let today = time::OffsetDateTime::now_utc().date();
    let first = today - time::Duration::days(days - 1);
    let _ = write!(
        body,
        "<section aria-labelledby=\"acceptance\"><h2 id=\"acceptance\">Acceptance per card type, {first} to {today}</h2>\
         <nav aria-label=\"Range\" class=\"range\">Range: <a href=\"/console/charts?days=7\">7 days</a> \
         <a href=\"/console/charts?days=14\">14 days</a> <a href=\"/console/charts?days=30\">30 days</a> \
         <a href=\"/console/charts?days=90\">90 days</a></nav>"
    );
    let Some(records) = app.records.as_ref() else {
        body.push_str("<p class=\"empty\">No feedback store is configured.</p></section>");
        return;
    };
    let store = &records.store;
    let mut series: Vec<Series> = Vec::new();
    let mut failed = None;
    for offset in 0..days {
        let day = first + time::Duration::days(offset);
        match store.card_counts(day_start_ms(day), day_start_ms(day) + 86_400_000).await {
            Ok(counts) => {
                for count in counts {
                    let index = match series.iter().position(|s| s.card_type == count.card_type) {
                        Some(index) => index,
                        None => {
                            let empty =
                                (0..days).map(|o| (first + time::Duration::days(o), DayCounts::default())).collect();
                            series.push(Series { card_type: count.card_type.clone(), days: empty });
                            series.len() - 1
                        }
                    };
                    series[index].days[offset as usize].1 =
                        DayCounts { shown: count.shown, accepted: count.accepted, overridden: count.overridden };
                }
            }
            Err(error) => {
                failed = Some(error.to_string());
                break;
            }
        }
    }
    if let Some(error) = failed {
        let _ = write!(
            body,
            "<p class=\"error\">The feedback store could not be read: {}</p></section>",
            pages::escape(&error)
        );
        return;
    }
    series.sort_by(|a, b| a.card_type.cmp(&b.card_type));
    body.push_str(&charts::acceptance(&series));
    body.push_str("</section><section aria-labelledby=\"reasons\"><h2 id=\"reasons\">Top override reasons</h2>");
    match store.reason_counts(day_start_ms(first), day_start_ms(today) + 86_400_000).await {
        Ok(reasons) => {
            let mut merged: Vec<(String, i64)> = Vec::new();
            for reason in reasons {
                let label = if reason.label.is_empty() { reason.code.clone() } else { reason.label.clone() };
                let label = format!("{label} ({})", reason.card_type);
                match merged.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, count)) => *count += reason.count,
                    None => merged.push((label, reason.count)),
                }
            }
            merged.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            merged.truncate(TOP_REASONS);
            let bars: Vec<Bar> = merged
                .into_iter()
                .map(|(label, count)| Bar { label, value: count as f64, shown: count.to_string(), class: "reason" })
                .collect();
            body.push_str(&charts::bars("reasons", "Override reasons, most frequent first", &bars));
        }
        Err(error) => {
            let _ = write!(
                body,
                "<p class=\"error\">The feedback store could not be read: {}</p>",
                pages::escape(&error.to_string())
            );
        }
    }
    body.push_str("</section>");
}

/// The alert burden of the last `lbp-cds cohort` run: cards per type and indicator per 100
/// patients. Only the counts are read; the report's per-patient list is never shown.
fn burden_section(app: &AppState, body: &mut String) {
    use std::fmt::Write;
    body.push_str("<section aria-labelledby=\"burden\"><h2 id=\"burden\">Alert burden of the last cohort run</h2>");
    let Some(path) = app.settings.console.cohort_report.as_ref() else {
        body.push_str(
            "<p class=\"empty\">No cohort report is configured: run <code>lbp-cds cohort DIR --out OUT</code> and start \
             the service with <code>--cohort-report OUT/cohort.json</code>.</p></section>",
        );
        return;
    };
    let report = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|e| e.to_string()));
    let report = match report {
        Ok(report) => report,
        Err(error) => {
            let _ = write!(
                body,
                "<p class=\"error\">The cohort report {} could not be read: {}</p></section>",
                pages::escape(&path.display().to_string()),
                pages::escape(&error)
            );
            return;
        }
    };
    let patients = report.get("patients").and_then(Value::as_u64).unwrap_or(0);
    let with_episode = report.get("patientsWithEpisode").and_then(Value::as_u64).unwrap_or(0);
    let date = report.get("date").and_then(Value::as_str).unwrap_or("?");
    let order = report.get("order").and_then(Value::as_str).unwrap_or("none");
    let _ = write!(
        body,
        "<p class=\"cohort\" data-patients=\"{patients}\">{patients} patients ({with_episode} with a low back pain episode), \
         clinical date {}, simulated order <code>{}</code>. Cards per 100 patients:</p>",
        pages::escape(date),
        pages::escape(order)
    );
    let cards = report.get("cards").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let bars: Vec<Bar> = cards
        .iter()
        .map(|card| {
            let card_type = card.get("type").and_then(Value::as_str).unwrap_or("?");
            let indicator = card.get("indicator").and_then(Value::as_str).unwrap_or("info");
            let per_100 = card.get("percent").and_then(Value::as_f64).unwrap_or(0.0);
            let count = card.get("patients").and_then(Value::as_u64).unwrap_or(0);
            Bar {
                label: format!("{card_type} ({indicator})"),
                value: per_100,
                shown: format!("{per_100:.1} ({count})"),
                class: match indicator {
                    "critical" => "critical",
                    "warning" => "warning",
                    _ => "info",
                },
            }
        })
        .collect();
    body.push_str(&charts::bars("burden", "Cards per type and indicator, per 100 patients", &bars));
    body.push_str("</section>");
}
