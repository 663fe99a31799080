//! The console's HTML, built as strings. Everything that comes from content, a request or the
//! database goes through [`escape`] (text and attribute values alike); the only markup taken
//! from elsewhere is card Markdown rendered by [`super::markdown`], which escapes HTML itself.

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;

use super::auth::{Protection, Session};
use super::catalogue::{CardTypeEntry, CodeEntry, SearchResult, ValueSetEntry};

/// Text for HTML text and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An `href` only for http(s) and console-relative URLs; anything else is not a link.
fn safe_href(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://") || lower.starts_with("/console/"))
        .then(|| escape(url.trim()))
}

/// What every page shows around its body.
pub struct Frame<'a> {
    pub session: &'a Session,
    pub protection: Protection,
    pub today: time::Date,
    pub content_version: &'a str,
}

const NAV: [(&str, &str); 4] = [
    ("/console", "Overview"),
    ("/console/preview", "Card preview"),
    ("/console/content", "Content"),
    ("/console/charts", "Charts"),
];

pub fn page(frame: &Frame<'_>, title: &str, current: &str, body: &str) -> Html<String> {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · lbp-cds console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script src=\"/console/assets/console.js\" defer></script></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>",
        escape(title)
    );
    if frame.protection == Protection::Off {
        html.push_str(
            "<p class=\"banner-off\" role=\"status\"><strong>Authentication is off (development).</strong> \
             Anyone who can reach this address can use this console and the hook services. \
             Configure <code>--auth-config</code> and <code>--console-token-file</code> before real use.</p>",
        );
    }
    html.push_str("<header class=\"top\"><span class=\"brand\">lbp-cds console</span><nav aria-label=\"Console\"><ul>");
    for (href, label) in NAV {
        let here = if href == current { " aria-current=\"page\"" } else { "" };
        let _ = write!(html, "<li><a href=\"{href}\"{here}>{label}</a></li>");
    }
    html.push_str("</ul></nav>");
    if frame.protection == Protection::SignedIn {
        let _ = write!(
            html,
            "<form method=\"post\" action=\"/console/logout\" class=\"logout\">{}<button type=\"submit\">Sign out</button></form>",
            csrf_field(frame.session)
        );
    }
    let _ = write!(
        html,
        "</header><main id=\"main\" tabindex=\"-1\"><h1>{}</h1>{body}</main>\
         <footer><p>Clinical date {} · content {}</p></footer></body></html>",
        escape(title),
        frame.today,
        escape(frame.content_version.get(..12).unwrap_or(frame.content_version)),
    );
    Html(html)
}

pub fn csrf_field(session: &Session) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", escape(&session.csrf))
}

/// A bare page for refusals (no session context needed).
pub fn refused(status: StatusCode, message: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Refused · lbp-cds console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head><body><main id=\"main\">\
         <h1>Refused</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/console\">Back to the console</a></p></main></body></html>",
        escape(message)
    );
    (status, Html(html)).into_response()
}

/// Authentication is on and no console token is configured: the console stays closed.
pub fn closed() -> Response {
    refused(
        StatusCode::FORBIDDEN,
        "The console is closed: authentication is on and no console token is configured (--console-token-file).",
    )
}

pub fn login(session: &Session, failed: bool) -> Response {
    let message = if failed { "<p class=\"error\" role=\"alert\">That is not the console token.</p>" } else { "" };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Sign in · lbp-cds console</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head><body><main id=\"main\" class=\"narrow\">\
         <h1>Sign in to the lbp-cds console</h1>{message}\
         <form method=\"post\" action=\"/console/login\">{}\
         <label for=\"token\">Console token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"hint\">The token is the one in the server's <code>--console-token-file</code>.</p></main></body></html>",
        csrf_field(session)
    );
    let status = if failed { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    (status, Html(html)).into_response()
}

pub fn overview(
    frame: &Frame<'_>,
    services: &[(String, String)],
    fixtures: usize,
    cohort: Option<&str>,
) -> Html<String> {
    let mut body = String::from(
        "<p>For the people who tune the rules: see cards as a clinician sees them, what each rule checks and \
         which codes it knows, and how clinicians answer the cards.</p><ul class=\"tiles\">",
    );
    let _ = write!(
        body,
        "<li><a href=\"/console/preview\">Card preview</a>: send one of {fixtures} stored requests (dates moved to {}) \
         or a pasted one through the real hook path and see the cards; accept or override them.</li>\
         <li><a href=\"/console/content\">Content</a>: card types, rules, thresholds, guideline links, value sets and \
         their codes; search by code or text.</li>\
         <li><a href=\"/console/charts\">Charts</a>: acceptance per card type over time, top override reasons, and the \
         alert burden of the last cohort run{}.</li></ul>",
        frame.today,
        cohort.map(|c| format!(" ({})", escape(c))).unwrap_or_default()
    );
    body.push_str("<h2>Services</h2><ul>");
    for (id, hook) in services {
        let _ = write!(body, "<li><code>{}</code> ({})</li>", escape(id), escape(hook));
    }
    body.push_str(
        "</ul><p class=\"hint\">The console never shows data from real hook calls: the charts are counts, and the \
         preview shows only what is sent from this page.</p>",
    );
    page(frame, "Overview", "/console", &body)
}

/// What the preview form starts with.
pub struct PreviewForm<'a> {
    pub fixtures: &'a [String],
    pub services: &'a [String],
    pub chosen_fixture: Option<&'a str>,
    pub pasted: &'a str,
    pub source_paste: bool,
    pub service: &'a str,
    pub shift: bool,
    pub shift_days: i64,
}

pub fn preview_form(frame: &Frame<'_>, form: &PreviewForm<'_>) -> String {
    let mut html = format!(
        "<form method=\"post\" action=\"/console/preview\" class=\"preview-form\">{}",
        csrf_field(frame.session)
    );
    let checked = |on: bool| if on { " checked" } else { "" };
    let _ = write!(
        html,
        "<fieldset><legend>Request</legend>\
         <div class=\"choice\"><input type=\"radio\" id=\"source-fixture\" name=\"source\" value=\"fixture\"{}>\
         <label for=\"source-fixture\">Stored request</label></div>\
         <label for=\"fixture\" class=\"sub\">Stored request (<code>fixtures/requests/</code>)</label><select id=\"fixture\" name=\"fixture\">",
        checked(!form.source_paste)
    );
    for name in form.fixtures {
        let selected = if Some(name.as_str()) == form.chosen_fixture { " selected" } else { "" };
        let _ = write!(html, "<option value=\"{0}\"{selected}>{0}</option>", escape(name));
    }
    let _ = write!(
        html,
        "</select>\
         <div class=\"choice\"><input type=\"checkbox\" id=\"shift\" name=\"shift\" value=\"on\"{}>\
         <label for=\"shift\">Move the stored request's dates from 2026-03-02 to the clinical date {} ({:+} days)</label></div>\
         <div class=\"choice\"><input type=\"radio\" id=\"source-paste\" name=\"source\" value=\"paste\"{}>\
         <label for=\"source-paste\">Pasted request</label></div>\
         <label for=\"pasted\" class=\"sub\">CDS Hooks request (JSON), sent as it is</label>\
         <textarea id=\"pasted\" name=\"pasted\" rows=\"5\" spellcheck=\"false\">{}</textarea></fieldset>",
        checked(form.shift),
        frame.today,
        form.shift_days,
        checked(form.source_paste),
        escape(form.pasted)
    );
    html.push_str("<label for=\"service\">Service</label><select id=\"service\" name=\"service\">");
    let _ = write!(html, "<option value=\"auto\">the service for the request's hook</option>");
    for id in form.services {
        let selected = if id == form.service { " selected" } else { "" };
        let _ = write!(html, "<option value=\"{0}\"{selected}>{0}</option>", escape(id));
    }
    html.push_str(
        "</select><p class=\"hint\">The preview runs the same code as <code>POST /cds-services/{id}</code>, prefetch \
         only: <code>fhirServer</code> and <code>fhirAuthorization</code> are removed, so no FHIR server is contacted. \
         Its cards enter the audit trail like any call, so that accepting one here is real feedback.</p>\
         <button type=\"submit\">Send</button></form>",
    );
    html
}

/// What happened to one preview.
pub enum PreviewOutcome<'a> {
    Answered { service: &'a str, request: &'a Value, response: &'a Value, notes: &'a [String] },
    Refused { status: u16, message: &'a str, notes: &'a [String] },
}

/// The answer comes first (what the reviewer came for), the form to send another below it.
pub fn preview(frame: &Frame<'_>, form: &str, outcome: Option<PreviewOutcome<'_>>) -> Html<String> {
    let mut body = String::new();
    match outcome {
        None => {}
        Some(PreviewOutcome::Refused { status, message, notes }) => {
            body.push_str("<section aria-labelledby=\"result\" class=\"result\"><h2 id=\"result\">Answer</h2>");
            notes_list(&mut body, notes);
            let _ = write!(body, "<p class=\"error\" role=\"alert\">HTTP {status}: {}</p></section>", escape(message));
        }
        Some(PreviewOutcome::Answered { service, request, response, notes }) => {
            body.push_str("<section aria-labelledby=\"result\" class=\"result\"><h2 id=\"result\">Cards</h2>");
            notes_list(&mut body, notes);
            let cards = response.get("cards").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            let _ = write!(
                body,
                "<p class=\"count\" data-cards=\"{}\">{} card{} from <code>{}</code></p><div class=\"cards\">",
                cards.len(),
                cards.len(),
                if cards.len() == 1 { "" } else { "s" },
                escape(service)
            );
            for card in cards {
                body.push_str(&card_html(frame.session, service, card));
            }
            body.push_str("</div>");
            system_actions(&mut body, response);
            episode(&mut body, response);
            let pretty = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default();
            let _ = write!(
                body,
                "<details><summary>Raw response (JSON)</summary><pre class=\"json\">{}</pre></details>\
                 <details><summary>Request as sent</summary><pre class=\"json\">{}</pre></details></section>",
                escape(&pretty(response)),
                escape(&pretty(request))
            );
        }
    }
    body.push_str(form);
    page(frame, "Card preview", "/console/preview", &body)
}

fn notes_list(body: &mut String, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    body.push_str("<ul class=\"notes\">");
    for note in notes {
        let _ = write!(body, "<li>{}</li>", escape(note));
    }
    body.push_str("</ul>");
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// One card as an EHR shows it, with the feedback forms a clinician's answer would post.
fn card_html(session: &Session, service: &str, card: &Value) -> String {
    let indicator = match text(card, "indicator") {
        "critical" => "critical",
        "warning" => "warning",
        _ => "info",
    };
    let card_type = card.pointer("/source/topic/code").and_then(Value::as_str).unwrap_or_default();
    let uuid = text(card, "uuid");
    let mut html = format!(
        "<article class=\"card card-{indicator}\" data-card-type=\"{}\" data-indicator=\"{indicator}\" aria-label=\"{} card: {}\">\
         <header><span class=\"indicator\">{indicator}</span><h3 class=\"summary\">{}</h3></header>\
         <div class=\"detail\">{}</div>",
        escape(card_type),
        indicator,
        escape(text(card, "summary")),
        escape(text(card, "summary")),
        super::markdown::to_html(text(card, "detail")),
    );
    if let Some(source) = card.get("source") {
        let label = escape(text(source, "label"));
        let shown = match safe_href(text(source, "url")) {
            Some(href) => format!("<a href=\"{href}\" target=\"_blank\" rel=\"noopener noreferrer\">{label}</a>"),
            None => label,
        };
        let _ = write!(html, "<p class=\"source\">Source: {shown} · type <code>{}</code></p>", escape(card_type));
    }
    if let Some(links) = card.get("links").and_then(Value::as_array).filter(|l| !l.is_empty()) {
        html.push_str("<ul class=\"links\">");
        for link in links {
            let label = escape(text(link, "label"));
            let kind = escape(text(link, "type"));
            match safe_href(text(link, "url")) {
                Some(href) => {
                    let _ = write!(
                        html,
                        "<li><a href=\"{href}\" target=\"_blank\" rel=\"noopener noreferrer\">{label}</a> <small>({kind})</small></li>"
                    );
                }
                None => {
                    let _ = write!(html, "<li>{label} <small>({kind}: {})</small></li>", escape(text(link, "url")));
                }
            }
        }
        html.push_str("</ul>");
    }
    let hidden = format!(
        "{}<input type=\"hidden\" name=\"service\" value=\"{}\"><input type=\"hidden\" name=\"card\" value=\"{}\">",
        super::pages::csrf_field(session),
        escape(service),
        escape(uuid)
    );
    let suggestions = card.get("suggestions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    html.push_str("<div class=\"answers\">");
    for suggestion in suggestions {
        let _ = write!(
            html,
            "<form method=\"post\" action=\"/console/feedback\" class=\"feedback\">{hidden}\
             <input type=\"hidden\" name=\"outcome\" value=\"accepted\">\
             <input type=\"hidden\" name=\"suggestion\" value=\"{}\">\
             <button type=\"submit\" class=\"accept{}\">{}</button>",
            escape(text(suggestion, "uuid")),
            if suggestion.get("isRecommended").and_then(Value::as_bool) == Some(true) { " recommended" } else { "" },
            escape(text(suggestion, "label"))
        );
        if let Some(actions) = suggestion.get("actions").and_then(Value::as_array) {
            // Folded, as an EHR shows only the button: what it does is a click away.
            html.push_str("<details class=\"actions\"><summary>What it does</summary><ul class=\"actions\">");
            for action in actions {
                let resource = action.get("resource").map(|r| text(r, "resourceType")).unwrap_or_default();
                let resource_id = text(action, "resourceId");
                let _ = write!(
                    html,
                    "<li><code>{}</code> {} {}</li>",
                    escape(text(action, "type")),
                    escape(text(action, "description")),
                    escape(
                        &[resource, resource_id]
                            .iter()
                            .filter(|s| !s.is_empty())
                            .copied()
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                );
            }
            html.push_str("</ul></details>");
        }
        html.push_str("</form>");
    }
    if suggestions.is_empty() {
        let _ = write!(
            html,
            "<form method=\"post\" action=\"/console/feedback\" class=\"feedback\">{hidden}\
             <input type=\"hidden\" name=\"outcome\" value=\"accepted\"><button type=\"submit\" class=\"accept\">Accept</button></form>"
        );
    }
    let reasons = card.get("overrideReasons").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let select_id = format!("reason-{}", escape(uuid));
    // Overriding is folded too, as an EHR asks for the reason only when the card is dismissed.
    let _ = write!(
        html,
        "<details class=\"override\"><summary>Override…</summary>\
         <form method=\"post\" action=\"/console/feedback\" class=\"feedback override\">{hidden}\
         <input type=\"hidden\" name=\"outcome\" value=\"overridden\">"
    );
    if !reasons.is_empty() {
        let _ = write!(
            html,
            "<label for=\"{select_id}\">Override reason</label><select id=\"{select_id}\" name=\"reason\">"
        );
        for reason in reasons {
            let value = format!("{}|{}|{}", text(reason, "system"), text(reason, "code"), text(reason, "display"));
            let _ = write!(html, "<option value=\"{}\">{}</option>", escape(&value), escape(text(reason, "display")));
        }
        html.push_str("</select>");
    }
    let _ = write!(
        html,
        "<label for=\"comment-{0}\">Comment</label><input id=\"comment-{0}\" name=\"comment\" maxlength=\"500\">\
         <button type=\"submit\" class=\"override\">Override</button></form></details></div>\
         <p class=\"status\" role=\"status\" aria-live=\"polite\"></p></article>",
        escape(uuid)
    );
    html
}

fn system_actions(body: &mut String, response: &Value) {
    let actions = response.get("systemActions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    if actions.is_empty() {
        return;
    }
    body.push_str("<h2>System actions</h2><ul class=\"system-actions\">");
    for action in actions {
        let resource = action.get("resource").cloned().unwrap_or(Value::Null);
        let rating = resource
            .get("extension")
            .and_then(Value::as_array)
            .and_then(|extensions| extensions.iter().find(|e| text(e, "url").ends_with("pama-rating")))
            .and_then(|e| e.pointer("/valueCodeableConcept/coding/0/code"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let _ = write!(
            body,
            "<li><code>{}</code> {} {}/{}{}</li>",
            escape(text(action, "type")),
            escape(text(action, "description")),
            escape(text(&resource, "resourceType")),
            escape(text(&resource, "id")),
            if rating.is_empty() {
                String::new()
            } else {
                format!(" · PAMA rating <strong class=\"pama\">{}</strong>", escape(rating))
            }
        );
    }
    body.push_str("</ul>");
}

fn episode(body: &mut String, response: &Value) {
    body.push_str("<h2>Episode recognised</h2>");
    let Some(episode) = response.pointer("/extension/lbp-cds/episode") else {
        body.push_str("<p class=\"episode\">No low back pain episode was recognised.</p>");
        return;
    };
    let mut parts = Vec::new();
    if let Some(start) = episode.get("start").and_then(Value::as_str) {
        parts.push(format!("since {}", escape(start)));
    }
    if let Some(days) = episode.get("durationDays").and_then(Value::as_i64) {
        parts.push(format!("{days} days"));
    }
    match episode.get("chronic").and_then(Value::as_bool) {
        Some(true) => parts.push("chronic".into()),
        Some(false) => parts.push("not chronic".into()),
        None => {}
    }
    if let Some(conditions) = episode.get("conditions").and_then(Value::as_array) {
        let names: Vec<String> = conditions.iter().filter_map(Value::as_str).map(escape).collect();
        parts.push(format!("from {}", names.join(", ")));
    }
    let _ = write!(body, "<p class=\"episode\">{}</p>", parts.join("; "));
}

pub fn feedback_result(frame: &Frame<'_>, message: &str, ok: bool) -> Html<String> {
    let class = if ok { "ok" } else { "error" };
    let body = format!(
        "<p class=\"{class}\" role=\"status\">{}</p><p><a href=\"/console/preview\">Back to the preview</a> · \
         <a href=\"/console/charts\">Charts</a></p>",
        escape(message)
    );
    page(frame, "Feedback", "/console/preview", &body)
}

pub fn content_index(
    frame: &Frame<'_>,
    query: &str,
    result: Option<&SearchResult>,
    cards: &[CardTypeEntry],
    sets: &[ValueSetEntry],
) -> Html<String> {
    let mut body = format!(
        "<form method=\"get\" action=\"/console/content\" role=\"search\" class=\"search\">\
         <label for=\"q\">Search by code or text</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{}\" placeholder=\"M54.50, sciatica, warfarin\">\
         <button type=\"submit\">Search</button></form>",
        escape(query)
    );
    if let Some(result) = result {
        let _ = write!(
            body,
            "<section aria-labelledby=\"hits\" class=\"hits\"><h2 id=\"hits\">Results for “{}”</h2>",
            escape(query)
        );
        if result.value_sets.is_empty() && result.card_types.is_empty() {
            body.push_str("<p>No value set or card type knows this.</p>");
        }
        for hit in &result.value_sets {
            let _ = write!(
                body,
                "<article class=\"hit\" data-value-set=\"{0}\"><h3><a href=\"/console/content/value-sets/{0}\">{1}</a> <code>{0}</code></h3>",
                escape(&hit.value_set),
                escape(&hit.title)
            );
            if !hit.codes.is_empty() {
                codes_table(&mut body, &hit.codes);
            }
            body.push_str("<p>Used by: ");
            card_links(&mut body, &hit.card_types);
            body.push_str("</p></article>");
        }
        if !result.card_types.is_empty() {
            body.push_str("<p>Card types whose texts or rules mention it: ");
            card_links(&mut body, &result.card_types);
            body.push_str("</p>");
        }
        body.push_str("</section>");
    }
    body.push_str("<h2>Card types</h2><table><thead><tr><th scope=\"col\">card type</th><th scope=\"col\">indicator</th><th scope=\"col\">family</th><th scope=\"col\">fires when</th></tr></thead><tbody>");
    for card in cards {
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/content/cards/{0}\">{0}</a></td><td><span class=\"badge badge-{1}\">{1}</span></td><td>{2}</td><td>{3}</td></tr>",
            escape(&card.id),
            card.indicator,
            card.family,
            escape(&card.fires_when)
        );
    }
    body.push_str("</tbody></table><h2>Value sets</h2><table><thead><tr><th scope=\"col\">value set</th><th scope=\"col\">title</th><th scope=\"col\">codes</th><th scope=\"col\">expansion</th></tr></thead><tbody>");
    for set in sets {
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/content/value-sets/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td></tr>",
            escape(&set.id),
            escape(&set.title),
            set.codes.len(),
            escape(set.expansion.as_deref().unwrap_or("hand-curated list"))
        );
    }
    body.push_str("</tbody></table>");
    page(frame, "Content", "/console/content", &body)
}

fn card_links(body: &mut String, card_types: &[String]) {
    if card_types.is_empty() {
        body.push_str("no card type directly (a caution or another rule's exclusion)");
    }
    let links: Vec<String> = card_types
        .iter()
        .map(|c| format!("<a href=\"/console/content/cards/{0}\" class=\"card-type\">{0}</a>", escape(c)))
        .collect();
    body.push_str(&links.join(", "));
}

fn codes_table(body: &mut String, codes: &[CodeEntry]) {
    body.push_str(
        "<table class=\"codes\"><thead><tr><th scope=\"col\">system</th><th scope=\"col\">code</th><th scope=\"col\">display</th>\
         <th scope=\"col\"><abbr title=\"V confirmed, S seen in third-party material, U convention\">status</abbr></th><th scope=\"col\">group</th></tr></thead><tbody>",
    );
    for code in codes {
        let _ = write!(
            body,
            "<tr><td title=\"{}\">{}</td><td><code>{}</code></td><td>{}</td><td class=\"status-{status}\">{status}</td><td>{}</td></tr>",
            escape(&code.system),
            escape(&code.system_name),
            escape(&code.code),
            escape(&code.display),
            escape(code.group.as_deref().unwrap_or("")),
            status = code.status,
        );
    }
    body.push_str("</tbody></table>");
}

pub fn card_type(frame: &Frame<'_>, card: &CardTypeEntry) -> Html<String> {
    let mut body = format!(
        "<p><span class=\"badge badge-{0}\">{0}</span> {1}</p><p class=\"fires\">{2}</p>",
        card.indicator,
        card.family,
        escape(&card.fires_when)
    );
    body.push_str("<h2>Guideline</h2><ul>");
    let source = match card.source_url.as_deref().and_then(safe_href) {
        Some(href) => format!("<a href=\"{href}\" rel=\"noopener noreferrer\">{}</a>", escape(&card.source_label)),
        None => escape(&card.source_label),
    };
    let _ = write!(body, "<li>Source: {source}</li>");
    for (label, url) in &card.links {
        match safe_href(url) {
            Some(href) => {
                let _ = write!(body, "<li><a href=\"{href}\" rel=\"noopener noreferrer\">{}</a></li>", escape(label));
            }
            None => {
                let _ = write!(body, "<li>{}</li>", escape(label));
            }
        }
    }
    body.push_str("</ul>");
    if !card.rules.is_empty() {
        body.push_str("<h2>Rules</h2><table><thead><tr><th scope=\"col\">rule</th><th scope=\"col\">finding</th><th scope=\"col\">value set</th><th scope=\"col\">window</th><th scope=\"col\">guideline</th></tr></thead><tbody>");
        for rule in &card.rules {
            let set = rule
                .value_set
                .as_deref()
                .map(|s| format!("<a href=\"/console/content/value-sets/{0}\">{0}</a>", escape(s)))
                .unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{set}</td><td>{}</td><td>{}</td></tr>",
                escape(&rule.id),
                escape(&rule.finding),
                escape(&rule.window),
                escape(&rule.guideline)
            );
        }
        body.push_str("</tbody></table>");
    }
    if !card.thresholds.is_empty() {
        body.push_str("<h2>Thresholds</h2><dl class=\"thresholds\">");
        for (name, value) in &card.thresholds {
            let _ = write!(body, "<dt><code>{name}</code></dt><dd>{}</dd>", escape(value));
        }
        body.push_str("</dl>");
    }
    body.push_str("<h2>Value sets</h2><ul>");
    for set in &card.value_sets {
        let _ = write!(body, "<li><a href=\"/console/content/value-sets/{0}\">{0}</a></li>", escape(set));
    }
    let _ = write!(
        body,
        "</ul><h2>Card text</h2><p class=\"hint\">From <code>cards/{}.toml</code>; placeholders shown as {{…}}.</p>\
         <h3>Summary</h3><p>{}</p><h3>Detail (brief, as clinicians see it)</h3><div class=\"detail\">{}</div>\
         <h3>Explanation (the full form, <code>--card-detail full</code>)</h3><div class=\"detail\">{}</div>",
        escape(&card.id),
        escape(&card.summary_template),
        super::markdown::to_html(&card.brief_template),
        super::markdown::to_html(&card.detail_template)
    );
    for (key, advice) in &card.variants {
        let _ = write!(
            body,
            "<h3>Variant <code>{}</code></h3><div class=\"detail\">{}</div>",
            escape(key),
            super::markdown::to_html(advice)
        );
    }
    for (key, advice) in &card.cautions {
        let _ = write!(
            body,
            "<h3>Caution <code>{}</code></h3><div class=\"detail\">{}</div>",
            escape(key),
            super::markdown::to_html(advice)
        );
    }
    if !card.suggestions.is_empty() {
        body.push_str("<h3>Suggestions</h3><ul>");
        for label in &card.suggestions {
            let _ = write!(body, "<li>{}</li>", escape(label));
        }
        body.push_str("</ul>");
    }
    if !card.override_reasons.is_empty() {
        body.push_str("<h3>Override reasons</h3><ul>");
        for (code, display) in &card.override_reasons {
            let _ = write!(body, "<li><code>{}</code> {}</li>", escape(code), escape(display));
        }
        body.push_str("</ul>");
    }
    page(frame, &card.id, "/console/content", &body)
}

pub fn value_set(frame: &Frame<'_>, set: &ValueSetEntry, used_by: &[String]) -> Html<String> {
    let mut body = format!("<p>{}</p><dl class=\"facts\">", escape(&set.title));
    let _ = write!(
        body,
        "<dt>definition</dt><dd>{}</dd><dt>expansion</dt><dd>{}</dd><dt>definition date</dt><dd>{}</dd><dt>code-system versions</dt><dd>{}</dd><dt>used by</dt><dd>",
        if set.intensional {
            "intensional (<code>compose</code>), refreshed by <code>lbp-cds content expand</code>"
        } else {
            "hand-curated list"
        },
        escape(set.expansion.as_deref().unwrap_or("none")),
        escape(set.definition_date.as_deref().unwrap_or("none")),
        escape(&if set.versions.is_empty() { "not stated".to_owned() } else { set.versions.join(", ") }),
    );
    card_links(&mut body, used_by);
    let _ = write!(body, "</dd></dl><h2>{} codes</h2>", set.codes.len());
    codes_table(&mut body, &set.codes);
    page(frame, &format!("Value set {}", set.id), "/console/content", &body)
}

pub fn not_found(frame: &Frame<'_>, what: &str) -> Response {
    let body = format!(
        "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/console/content\">All content</a></p>",
        escape(what)
    );
    (StatusCode::NOT_FOUND, page(frame, "Not found", "", &body)).into_response()
}

pub fn charts(frame: &Frame<'_>, sections: &str) -> Html<String> {
    page(frame, "Charts", "/console/charts", sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(safe_href("javascript:alert(1)"), None);
        assert_eq!(safe_href("https://a.example/?q=\"x\"").as_deref(), Some("https://a.example/?q=&quot;x&quot;"));
    }

    #[test]
    fn a_card_with_markup_everywhere_is_shown_as_text() {
        let session = Session { id: "s".into(), csrf: "token".into(), signed_in: false };
        let card = serde_json::json!({
            "uuid": "\"><script>alert(1)</script>",
            "summary": "<script>alert('summary')</script>",
            "indicator": "critical\" onmouseover=\"x",
            "detail": "<script>alert('detail')</script>",
            "source": {"label": "<b>src</b>", "url": "javascript:alert(1)", "topic": {"code": "<i>t</i>"}},
            "links": [{"label": "<i>l</i>", "url": "javascript:alert(2)", "type": "absolute"}],
            "suggestions": [{"label": "<img src=x>", "uuid": "u\"1", "actions": [{"type": "create", "description": "<svg onload=x>"}]}],
            "overrideReasons": [{"system": "s", "code": "c", "display": "<u>d</u>"}]
        });
        let html = card_html(&session, "lbp-order-select", &card);
        for bad in ["<script", "<b>", "<i>", "<img", "<svg", "<u>", "href=\"javascript", "onmouseover=\""] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
        assert!(html.contains("card-info"), "an unknown indicator is shown as info");
        assert!(html.contains("&lt;script&gt;alert(&#39;summary&#39;)"));
    }
}
