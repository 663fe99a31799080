//! `/metrics` scraped from the real server after real traffic (a hook call that fetches from a
//! FHIR server, feedback, an unknown service), parsed strictly as Prometheus/OpenMetrics text,
//! and checked for the series operations need.

use std::collections::{BTreeMap, HashMap};

use crate::common::{TODAY, TestApp};
use crate::databases::Db;
use axum::Router;
use axum::routing::get;
use lbp_cds::config::Settings;
use lbp_cds::outbound::UrlScope;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format; panics naming the line that does not follow it.
fn parse(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    let valid_name = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
    };
    for (number, line) in text.lines().enumerate() {
        let at = format!("line {}: `{line}`", number + 1);
        if line == "# EOF" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{at}"));
            assert!(valid_name(name), "{at}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "unknown", "info", "stateset"].contains(&kind),
                "{at}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(valid_name(rest.split(' ').next().unwrap_or_default()), "{at}");
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {at}");
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value {at}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or_else(|_| panic!("bad value {at}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels {at}"));
                (name, parse_labels(body, &at))
            }
        };
        assert!(valid_name(name), "bad name {at}");
        // Every sample belongs to a declared family (the longest name it starts with).
        types
            .keys()
            .filter(|family| {
                name == family.as_str() || name.strip_prefix(family.as_str()).is_some_and(|s| s.starts_with('_'))
            })
            .max_by_key(|family| family.len())
            .unwrap_or_else(|| panic!("sample without a TYPE {at}"));
        samples.push(Sample { name: name.to_owned(), labels, value });
    }
    (types, samples)
}

fn parse_labels(body: &str, at: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert!(!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "label name {at}");
        assert_eq!(chars.next(), Some('"'), "label value must be quoted {at}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    _ => panic!("bad escape {at}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value {at}"),
            }
        }
        labels.insert(key, value);
        match chars.next() {
            Some(',') | None => {}
            Some(c) => panic!("unexpected `{c}` after a label {at}"),
        }
    }
    labels
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect()
}

/// A FHIR server double on a real socket: every search answers an empty searchset.
async fn fhir_double() -> String {
    let app = Router::new().fallback(get(|| async {
        ([("content-type", "application/fhir+json")], r#"{"resourceType":"Bundle","type":"searchset","entry":[]}"#)
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/fhir")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_with_every_series() {
    let fhir = fhir_double().await;
    let settings = Settings {
        fixed_today: Some(TODAY),
        fhir_servers: vec![UrlScope::parse(&fhir, true, false).unwrap()],
        ..Settings::default()
    };
    let db = Db::sqlite();
    let app = TestApp::spawn_with_records(settings, db.storage()).await;

    // A hook call whose observations are fetched from the FHIR server.
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/requests/order-select-mri-acute-lbp.json");
    let mut request: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    request["prefetch"].as_object_mut().unwrap().remove("observations");
    request["fhirServer"] = json!(fhir);
    let response = app.cards("lbp-order-select", &request).await;
    let card = crate::common::card(&response, "imaging-not-indicated")["uuid"].as_str().unwrap().to_owned();
    let feedback =
        json!({"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-03-02T10:00:00Z"}]});
    let posted =
        app.client.post(app.url("/cds-services/lbp-order-select/feedback")).json(&feedback).send().await.unwrap();
    assert_eq!(posted.status().as_u16(), 200);
    let (status, _) = app.post("no-such-service", &json!({})).await;
    assert_eq!(status, 404);

    // Audit rows are written off the hook path: wait for the queue, then scrape.
    app.records.as_ref().unwrap().audit.as_ref().unwrap().flush().await;
    let scraped = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert!(scraped.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = scraped.text().await.unwrap();
    let (types, samples) = parse(&text);

    for (family, kind) in [
        ("lbp_cds_http_responses", "counter"),
        ("lbp_cds_http_request_duration_seconds", "histogram"),
        ("lbp_cds_cards_issued", "counter"),
        ("lbp_cds_fhir_queries", "counter"),
        ("lbp_cds_fhir_query_duration_seconds", "histogram"),
        ("lbp_cds_audit_queue_depth", "gauge"),
        ("lbp_cds_audit_dropped", "counter"),
        ("lbp_cds_audit_written", "counter"),
        ("lbp_cds_audit_batch_duration_seconds", "histogram"),
        ("lbp_cds_feedback_items", "counter"),
        ("lbp_cds_retention_deleted_rows", "counter"),
    ] {
        assert_eq!(types.get(family).map(String::as_str), Some(kind), "{family} is a {kind}:\n{text}");
    }

    // (Authentication failures by reason: the next test, which causes some.)
    // Latency per service and status, as a well-formed histogram.
    let hook = [("endpoint", "hook"), ("service", "lbp-order-select"), ("status", "200")];
    let buckets = find(&samples, "lbp_cds_http_request_duration_seconds_bucket", &hook);
    assert!(buckets.len() > 5, "{text}");
    assert!(buckets.windows(2).all(|w| w[0].value <= w[1].value), "buckets are cumulative");
    let count = find(&samples, "lbp_cds_http_request_duration_seconds_count", &hook);
    assert!(count[0].value >= 1.0);
    assert_eq!(buckets.last().unwrap().labels["le"], "+Inf");
    assert_eq!(buckets.last().unwrap().value, count[0].value);
    // A service id nobody defined is not a label value.
    assert!(
        find(&samples, "lbp_cds_http_request_duration_seconds_count", &[("service", "no-such-service")]).is_empty()
    );
    assert!(
        !find(&samples, "lbp_cds_http_request_duration_seconds_count", &[("endpoint", "hook"), ("status", "404")])
            .is_empty()
    );

    let cards = find(
        &samples,
        "lbp_cds_cards_issued_total",
        &[("card_type", "imaging-not-indicated"), ("indicator", "warning")],
    );
    assert!(cards[0].value >= 1.0, "{text}");
    let fhir_latency = find(
        &samples,
        "lbp_cds_fhir_query_duration_seconds_count",
        &[("key", "observations"), ("outcome", "complete")],
    );
    assert!(fhir_latency.first().is_some_and(|s| s.value >= 1.0), "{text}");
    let feedback = find(&samples, "lbp_cds_feedback_items_total", &[("outcome", "accepted"), ("trust", "trusted")]);
    assert!(feedback.first().is_some_and(|s| s.value >= 1.0), "{text}");
    assert!(!find(&samples, "lbp_cds_audit_queue_depth", &[]).is_empty());
    assert!(!find(&samples, "lbp_cds_audit_dropped_total", &[]).is_empty());
    assert!(
        find(&samples, "lbp_cds_audit_written_total", &[])[0].value >= 1.0,
        "the call's cards were written:\n{text}"
    );
    app.stop().await;
}

/// The feedback route sits behind the hook calls' authentication: no token is a 401 (counted by
/// reason), a token for another URL is a 401, a token whose `aud` is the feedback URL is a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_is_authenticated_like_hook_calls_and_refusals_are_counted() {
    use lbp_cds::auth::keys::{KeyPair, client_claims};
    use lbp_cds::auth::{AuthConfig, Authenticator, IssuerConfig};
    const ISSUER: &str = "https://ehr.example.org";
    let key = KeyPair::generate("ES384", "es-1").unwrap();
    let jwks = jsonwebtoken::jwk::JwkSet { keys: vec![key.public_jwk.clone()] };
    let db = Db::sqlite();
    let app = TestApp::spawn_full(
        move |address| {
            let config = AuthConfig {
                public_base_url: format!("http://{address}"),
                allow_insecure_http: true,
                issuers: vec![IssuerConfig {
                    iss: ISSUER.into(),
                    algorithms: Vec::new(),
                    jwks: Some(jwks),
                    jwks_file: None,
                    jwks_url: None,
                    jku_prefixes: Vec::new(),
                    fhir_servers: Vec::new(),
                    tenants: Vec::new(),
                    open_fhir_servers: Vec::new(),
                }],
                ..AuthConfig::default()
            };
            let auth = Authenticator::new(config, lbp_cds::outbound::client().unwrap()).unwrap();
            Settings { fixed_today: Some(TODAY), auth: Some(std::sync::Arc::new(auth)), ..Settings::default() }
        },
        Some(db.storage()),
    )
    .await;
    let url = app.url("/cds-services/lbp-order-select/feedback");
    let body = json!({"feedback": [{"card": "c0ffee00-0000-4000-8000-000000000000", "outcome": "accepted",
        "outcomeTimestamp": "2026-03-02T10:00:00Z"}]});
    let scrape = || async {
        let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let (_, samples) = parse(&text);
        find(&samples, "lbp_cds_auth_failures_total", &[]).iter().map(|s| s.value).sum::<f64>()
    };

    let before = scrape().await;
    let anonymous = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let hook_token = key.sign(&client_claims(ISSUER, &app.url("/cds-services/lbp-order-select"), 300, None)).unwrap();
    let wrong_audience = app.client.post(&url).bearer_auth(hook_token).json(&body).send().await.unwrap();
    assert_eq!(wrong_audience.status().as_u16(), 401, "a token for the hook URL is not one for its feedback URL");
    assert_eq!(scrape().await - before, 2.0, "both refusals are counted");
    assert_eq!(app.records.as_ref().unwrap().store.counts().await.unwrap()["feedback"], 0, "nothing stored");

    let token = key.sign(&client_claims(ISSUER, &url, 300, None)).unwrap();
    let accepted = app.client.post(&url).bearer_auth(token).json(&body).send().await.unwrap();
    assert_eq!(accepted.status().as_u16(), 200);
    let stored =
        app.records.as_ref().unwrap().store.feedback_for("c0ffee00-0000-4000-8000-000000000000").await.unwrap();
    assert_eq!(stored[0].client, ISSUER, "the client's issuer is recorded with its feedback");
    // The analytics are behind the same authentication.
    let (status, _) = app.get("/analytics").await;
    assert_eq!(status, 401);
    app.stop().await;
}
