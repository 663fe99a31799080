//! Test harness: the real service on a random loopback port, a real HTTP client, scenario
//! builders for hook requests, and the CDS Hooks card rules every response must follow.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use lbp_cds::config::Settings;
use lbp_cds::content::{CardType, Content};
use serde_json::{Value, json};
use time::Date;
use time::macros::date;

/// The clinical date of every fixture and scenario.
pub const TODAY: Date = date!(2026 - 03 - 02);

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    /// The database, audit trail and retention job, when started with `spawn_with_records`.
    pub records: Option<lbp_cds::records::Records>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// With the long card texts (`--card-detail full`): the decision tables check their wording
    /// (evidence references, rule ids). `brief.rs` checks the brief form, the default.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Settings { fixed_today: Some(TODAY), ..full_text() }).await
    }

    pub async fn spawn_with(settings: Settings) -> TestApp {
        TestApp::spawn_with_address(move |_| settings).await
    }

    /// Builds the settings once the address is known (the JWT audience depends on it).
    pub async fn spawn_with_address(settings: impl FnOnce(SocketAddr) -> Settings) -> TestApp {
        TestApp::spawn_full(settings, None).await
    }

    /// The server with its database, audit trail and retention job, as `lbp-cds serve` runs it.
    pub async fn spawn_with_records(settings: Settings, storage: lbp_cds::storage::StorageSettings) -> TestApp {
        TestApp::spawn_full(move |_| settings, Some(storage)).await
    }

    /// Settings built once the address is known (the JWT audience), with an optional database.
    pub async fn spawn_full(
        settings: impl FnOnce(SocketAddr) -> Settings,
        storage: Option<lbp_cds::storage::StorageSettings>,
    ) -> TestApp {
        let content =
            Content::from_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cards")).expect("content loads");
        let listener = lbp_cds::startup::bind("127.0.0.1:0".parse().expect("address")).await.expect("bind");
        let address = listener.local_addr().expect("address");
        // The same start-up path as `lbp-cds serve`: policy, state, records, connection loop.
        let mut application =
            lbp_cds::startup::Application::build(listener, content, settings(address)).expect("starts");
        if let Some(storage) = storage {
            application = application.with_records(storage).await.expect("database opens");
        }
        let records = application.state().records.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            application
                .run_until(async {
                    let _ = rx.await;
                })
                .await
                .expect("server runs");
        });
        TestApp {
            address,
            client: lbp_cds::outbound::client().expect("outbound client"),
            records,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Shuts the server down as SIGTERM does and waits until it has finished (queues written out).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server stops cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn post_raw(&self, service: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(&format!("/cds-services/{service}")))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Posts with an `Authorization: Bearer` token; returns status, `WWW-Authenticate` and body.
    pub async fn post_with_token(&self, service: &str, body: &Value, token: &str) -> (u16, Option<String>, Value) {
        let response = self
            .client
            .post(self.url(&format!("/cds-services/{service}")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        (status, challenge, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn post(&self, service: &str, body: &Value) -> (u16, Value) {
        self.post_raw(service, serde_json::to_vec(body).expect("json")).await
    }

    /// Posts and requires a 200 that follows the card rules.
    pub async fn cards(&self, service: &str, body: &Value) -> Value {
        let (status, response) = self.post(service, body).await;
        assert_eq!(status, 200, "expected 200 from {service}, got {status}: {response}");
        assert_valid_response(&response);
        assert_consistent(&response);
        response
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Default settings with the long card texts (`--card-detail full`).
pub fn full_text() -> Settings {
    Settings { card_detail: lbp_cds::content::CardDetail::Full, ..Settings::default() }
}

/// Options for `evaluate_body` with the long card texts.
pub fn full_options() -> lbp_cds::evaluate::Options {
    lbp_cds::evaluate::Options { card_detail: lbp_cds::content::CardDetail::Full, ..Default::default() }
}

/// Card type codes (`source.topic.code`) of a response, sorted.
pub fn card_types(response: &Value) -> Vec<String> {
    let mut types: Vec<String> = response["cards"]
        .as_array()
        .expect("cards array")
        .iter()
        .map(|card| card["source"]["topic"]["code"].as_str().expect("topic code").to_owned())
        .collect();
    types.sort();
    types
}

pub fn card<'a>(response: &'a Value, card_type: &str) -> &'a Value {
    response["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .find(|card| card["source"]["topic"]["code"] == card_type)
        .unwrap_or_else(|| panic!("no {card_type} card in {response}"))
}

/// PAMA ratings in systemActions, by order reference.
pub fn pama_ratings(response: &Value) -> Vec<(String, String)> {
    let mut ratings: Vec<(String, String)> = response["systemActions"]
        .as_array()
        .map(|actions| {
            actions
                .iter()
                .map(|action| {
                    let resource = &action["resource"];
                    let reference = format!(
                        "{}/{}",
                        resource["resourceType"].as_str().unwrap_or(""),
                        resource["id"].as_str().unwrap_or("")
                    );
                    let rating = resource["extension"]
                        .as_array()
                        .and_then(|e| e.iter().find(|x| x["url"] == "http://fhir.org/argonaut/Extension/pama-rating"))
                        .and_then(|x| x["valueCodeableConcept"]["coding"][0]["code"].as_str())
                        .unwrap_or("(none)")
                        .to_owned();
                    (reference, rating)
                })
                .collect()
        })
        .unwrap_or_default();
    ratings.sort();
    ratings
}

/// The CDS Hooks response rules (see the spec's Card and Suggestion sections).
pub fn assert_valid_response(response: &Value) {
    let object = response.as_object().expect("response is an object");
    let cards = object.get("cards").and_then(Value::as_array).expect("cards is an array");
    for (key, value) in object {
        assert!(matches!(key.as_str(), "cards" | "systemActions" | "extension"), "unexpected member {key}");
        if key != "cards" {
            assert_no_empty_values(value, key);
        }
    }
    for card in cards {
        assert_no_empty_values(card, "card");
        let uuid = card["uuid"].as_str().expect("card uuid");
        assert!(uuid::Uuid::parse_str(uuid).is_ok(), "uuid {uuid}");
        let summary = card["summary"].as_str().expect("summary");
        assert!(!summary.trim().is_empty() && summary.chars().count() < 140, "summary: {summary}");
        assert!(matches!(card["indicator"].as_str(), Some("info" | "warning" | "critical")), "indicator in {card}");
        assert!(card["source"]["label"].as_str().is_some_and(|l| !l.is_empty()), "source.label in {card}");
        let topic = &card["source"]["topic"];
        assert_eq!(topic["system"], "urn:lbp-cds:card-type");
        let code = topic["code"].as_str().expect("topic code");
        assert!(CardType::parse(code).is_some(), "unknown card type {code}");
        if let Some(detail) = card.get("detail").and_then(Value::as_str) {
            assert!(!detail.contains("</") && !detail.contains("<script"), "raw HTML in detail: {detail}");
            assert!(!has_placeholder(detail), "unrendered placeholder in detail: {detail}");
        }
        if let Some(suggestions) = card.get("suggestions").and_then(Value::as_array) {
            assert!(
                card.get("overrideReasons").and_then(Value::as_array).is_some_and(|r| !r.is_empty()),
                "a card that asks for action offers override reasons: {card}"
            );
            assert!(
                matches!(card["selectionBehavior"].as_str(), Some("at-most-one" | "any")),
                "selectionBehavior is required with suggestions: {card}"
            );
            for suggestion in suggestions {
                assert!(suggestion["label"].as_str().is_some_and(|l| !l.is_empty()));
                assert!(suggestion["uuid"].as_str().is_some_and(|u| uuid::Uuid::parse_str(u).is_ok()));
                for action in suggestion["actions"].as_array().expect("actions") {
                    assert!(action["description"].as_str().is_some_and(|d| !d.is_empty()));
                    match action["type"].as_str() {
                        Some("delete") => assert!(action["resourceId"].as_str().is_some_and(|r| r.contains('/'))),
                        Some("create" | "update") => assert!(action["resource"]["resourceType"].is_string()),
                        other => panic!("action type {other:?}"),
                    }
                }
            }
        } else {
            assert!(card.get("selectionBehavior").is_none(), "selectionBehavior without suggestions");
        }
        for link in card.get("links").and_then(Value::as_array).into_iter().flatten() {
            assert!(link["url"].as_str().is_some_and(|u| u.starts_with("https://") || u.starts_with("http://")));
            assert!(matches!(link["type"].as_str(), Some("absolute" | "smart")));
        }
        for reason in card.get("overrideReasons").and_then(Value::as_array).into_iter().flatten() {
            assert!(reason["code"].is_string() && reason["display"].is_string(), "override reason {reason}");
        }
    }
}

/// Cards must not contradict each other: red flags come first (no routine guidance beside them;
/// safety advice on orders fires beside them), and mutually exclusive recommendations never
/// appear together.
pub fn assert_consistent(response: &Value) {
    let types = card_types(response);
    let has = |t: &str| types.iter().any(|x| x == t);
    if types.iter().any(|t| t.starts_with("red-flag-")) {
        for t in types.iter().filter(|t| CardType::parse(t).is_some_and(|t| t.is_routine_guidance())) {
            assert!(!has(t), "{t} beside a red flag: {types:?}");
        }
        assert!(!has("imaging-not-indicated"), "imaging called not indicated beside a red flag: {types:?}");
    }
    assert!(!(has("pt-referral") && has("continue-therapy")), "{types:?}");
    assert!(!(has("start-back-screening") && has("stratified-care")), "{types:?}");
    assert!(!(has("imaging-indicated") && has("imaging-not-indicated")), "{types:?}");
    // The imaging warning suggests a therapy referral only where pt-referral offers one.
    let cards = response["cards"].as_array().expect("cards");
    for card in cards.iter().filter(|c| c["source"]["topic"]["code"] == "imaging-not-indicated") {
        let refers = card["suggestions"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["actions"].as_array().into_iter().flatten())
            .any(|a| a["type"] == "create");
        assert!(
            !refers || has("pt-referral"),
            "imaging card suggests a referral that pt-referral withholds: {types:?}"
        );
    }
}

/// No `null`, `""`, `[]` or `{}` anywhere below `value` (the spec forbids them for optional fields).
pub fn assert_no_empty_values(value: &Value, path: &str) {
    match value {
        Value::Null => panic!("null at {path}"),
        Value::String(s) => assert!(!s.is_empty(), "empty string at {path}"),
        Value::Array(items) => {
            assert!(!items.is_empty(), "empty array at {path}");
            for (i, item) in items.iter().enumerate() {
                assert_no_empty_values(item, &format!("{path}[{i}]"));
            }
        }
        Value::Object(map) => {
            assert!(!map.is_empty(), "empty object at {path}");
            for (key, item) in map {
                assert_no_empty_values(item, &format!("{path}.{key}"));
            }
        }
        _ => {}
    }
}

pub fn days_ago(days: i64) -> String {
    (TODAY - time::Duration::days(days)).to_string()
}

pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC: &str = "http://loinc.org";
pub const CPT: &str = "http://www.ama-assn.org/go/cpt";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

/// A hook request built up from a patient's data.
#[derive(Clone)]
pub struct Scenario {
    pub hook: &'static str,
    pub patient_id: String,
    pub birth_date: Option<String>,
    pub gender: &'static str,
    pub conditions: Vec<Value>,
    pub observations: Vec<Value>,
    pub medications: Vec<Value>,
    pub procedures: Vec<Value>,
    pub service_requests: Vec<Value>,
    pub questionnaires: Vec<Value>,
    pub allergies: Vec<Value>,
    pub drafts: Vec<Value>,
    pub selections: Vec<String>,
    /// Prefetch keys to replace with a given value (`null`, an OperationOutcome, ...).
    pub overrides: Vec<(&'static str, Option<Value>)>,
    counter: usize,
}

impl Scenario {
    pub fn new(hook: &'static str, age_years: i32) -> Scenario {
        let birth = TODAY.replace_year(TODAY.year() - age_years).expect("birth date") - time::Duration::days(10);
        Scenario {
            hook,
            patient_id: "pat-1".into(),
            birth_date: Some(birth.to_string()),
            gender: "female",
            conditions: Vec::new(),
            observations: Vec::new(),
            medications: Vec::new(),
            procedures: Vec::new(),
            service_requests: Vec::new(),
            questionnaires: Vec::new(),
            allergies: Vec::new(),
            drafts: Vec::new(),
            selections: Vec::new(),
            overrides: Vec::new(),
            counter: 0,
        }
    }

    pub fn service(&self) -> &'static str {
        match self.hook {
            "patient-view" => "lbp-patient-view",
            "order-select" => "lbp-order-select",
            _ => "lbp-order-sign",
        }
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    pub fn condition_full(mut self, system: &str, code: &str, extra: Value) -> Scenario {
        let id = self.next_id("cond");
        let mut resource = json!({
            "resourceType": "Condition",
            "id": id,
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": format!("Patient/{}", self.patient_id)}
        });
        merge(&mut resource, extra);
        self.conditions.push(resource);
        self
    }

    /// An active condition with an onset `days` ago.
    pub fn condition(self, system: &str, code: &str, onset_days_ago: i64) -> Scenario {
        let extra = json!({
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "onsetDateTime": days_ago(onset_days_ago)
        });
        self.condition_full(system, code, extra)
    }

    /// Acute low back pain (ICD-10-CM M54.50) with onset `days` ago.
    pub fn low_back_pain(self, onset_days_ago: i64) -> Scenario {
        self.condition(ICD10, "M54.50", onset_days_ago)
    }

    pub fn observation(mut self, loinc: &str, value: f64, unit: &str, days_ago_: i64) -> Scenario {
        let id = self.next_id("obs");
        self.observations.push(json!({
            "resourceType": "Observation",
            "id": id,
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": loinc}]},
            "subject": {"reference": format!("Patient/{}", self.patient_id)},
            "effectiveDateTime": days_ago(days_ago_),
            "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        }));
        self
    }

    pub fn medication(mut self, rxnorm: &str, text: &str, extra: Value) -> Scenario {
        let id = self.next_id("med");
        let mut resource = json!({
            "resourceType": "MedicationRequest",
            "id": id,
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm}], "text": text},
            "subject": {"reference": format!("Patient/{}", self.patient_id)}
        });
        merge(&mut resource, extra);
        self.medications.push(resource);
        self
    }

    /// An observation with any value (`{"valueInteger": 1}`, a component list, ...).
    pub fn observation_with(mut self, loinc: &str, days_ago_: i64, value: Value) -> Scenario {
        let id = self.next_id("obs");
        let mut resource = json!({
            "resourceType": "Observation",
            "id": id,
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": loinc}]},
            "subject": {"reference": format!("Patient/{}", self.patient_id)},
            "effectiveDateTime": days_ago(days_ago_)
        });
        merge(&mut resource, value);
        self.observations.push(resource);
        self
    }

    /// A completed procedure (a therapy session) `days` ago.
    pub fn procedure(mut self, system: &str, code: &str, days_ago_: i64) -> Scenario {
        let id = self.next_id("proc");
        self.procedures.push(json!({
            "resourceType": "Procedure",
            "id": id,
            "status": "completed",
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": format!("Patient/{}", self.patient_id)},
            "performedDateTime": days_ago(days_ago_)
        }));
        self
    }

    /// A ServiceRequest on record (a referral), authored `days` ago.
    pub fn referral(mut self, system: &str, code: &str, days_ago_: i64) -> Scenario {
        let id = self.next_id("sr");
        self.service_requests.push(json!({
            "resourceType": "ServiceRequest",
            "id": id,
            "status": "active",
            "intent": "order",
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": format!("Patient/{}", self.patient_id)},
            "authoredOn": days_ago(days_ago_)
        }));
        self
    }

    /// A completed STarT Back QuestionnaireResponse with the nine answers (1 = agree).
    pub fn start_back_questionnaire(mut self, items: [u8; 9], days_ago_: i64) -> Scenario {
        let id = self.next_id("qr");
        let codes = ["91340-0", "91341-8", "91342-6", "91343-4", "91344-2", "91345-9", "91346-7", "91347-5", "91348-3"];
        let item: Vec<Value> = codes
            .iter()
            .zip(items)
            .enumerate()
            .map(|(index, (code, value))| {
                let answer = if index == 8 {
                    json!({"valueCoding": {"display": if value == 1 { "Very much" } else { "Slightly" }}})
                } else {
                    json!({"valueCoding": {"display": if value == 1 { "Agree" } else { "Disagree" }}})
                };
                json!({"linkId": code, "answer": [answer]})
            })
            .collect();
        self.questionnaires.push(json!({
            "resourceType": "QuestionnaireResponse",
            "id": id,
            "status": "completed",
            "subject": {"reference": format!("Patient/{}", self.patient_id)},
            "authored": days_ago(days_ago_),
            "item": item
        }));
        self
    }

    /// An AllergyIntolerance with one coding (and the text), active and confirmed unless `extra`
    /// says otherwise.
    pub fn allergy(mut self, system: &str, code: &str, text: &str, extra: Value) -> Scenario {
        let id = self.next_id("allergy");
        let mut resource = json!({
            "resourceType": "AllergyIntolerance",
            "id": id,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}]},
            "code": {"coding": [{"system": system, "code": code}], "text": text},
            "patient": {"reference": format!("Patient/{}", self.patient_id)},
            "recordedDate": days_ago(400)
        });
        merge(&mut resource, extra);
        self.allergies.push(resource);
        self
    }

    /// A draft MedicationRequest; selected for order-select.
    pub fn medication_order(mut self, rxnorm: &str, text: &str) -> Scenario {
        let id = self.next_id("medorder");
        self.selections.push(format!("MedicationRequest/{id}"));
        self.drafts.push(json!({
            "resourceType": "MedicationRequest",
            "id": id,
            "status": "draft",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxnorm, "display": text}], "text": text},
            "subject": {"reference": format!("Patient/{}", self.patient_id)}
        }));
        self
    }

    /// A draft ServiceRequest with one coding; selected for order-select.
    pub fn order(mut self, system: &str, code: &str, text: &str) -> Scenario {
        let id = self.next_id("order");
        self.selections.push(format!("ServiceRequest/{id}"));
        self.drafts.push(json!({
            "resourceType": "ServiceRequest",
            "id": id,
            "status": "draft",
            "intent": "order",
            "code": {"coding": [{"system": system, "code": code, "display": text}], "text": text},
            "subject": {"reference": format!("Patient/{}", self.patient_id)}
        }));
        self
    }

    pub fn prefetch_override(mut self, key: &'static str, value: Option<Value>) -> Scenario {
        self.overrides.push((key, value));
        self
    }

    pub fn body(&self) -> Value {
        let bundle = |resources: &[Value]| {
            json!({
                "resourceType": "Bundle",
                "type": "searchset",
                "total": resources.len(),
                "entry": resources.iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>()
            })
        };
        let mut patient = json!({"resourceType": "Patient", "id": self.patient_id, "gender": self.gender});
        if let Some(birth) = &self.birth_date {
            patient["birthDate"] = json!(birth);
        }
        let mut prefetch = serde_json::Map::new();
        prefetch.insert("patient".into(), patient);
        prefetch.insert("conditions".into(), bundle(&self.conditions));
        prefetch.insert("observations".into(), bundle(&self.observations));
        prefetch.insert("medications".into(), bundle(&self.medications));
        prefetch.insert("procedures".into(), bundle(&self.procedures));
        prefetch.insert("serviceRequests".into(), bundle(&self.service_requests));
        prefetch.insert("questionnaireResponses".into(), bundle(&self.questionnaires));
        prefetch.insert("allergies".into(), bundle(&self.allergies));
        for (key, value) in &self.overrides {
            match value {
                Some(value) => prefetch.insert((*key).to_owned(), value.clone()),
                None => prefetch.remove(*key),
            };
        }
        let mut context = json!({"userId": "Practitioner/example", "patientId": self.patient_id});
        if self.hook != "patient-view" {
            context["draftOrders"] = json!({
                "resourceType": "Bundle",
                "type": "collection",
                "entry": self.drafts.iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()
            });
        }
        if self.hook == "order-select" {
            context["selections"] = json!(self.selections);
        }
        json!({
            "hook": self.hook,
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": context,
            "prefetch": prefetch
        })
    }
}

fn merge(target: &mut Value, extra: Value) {
    if let (Some(target), Value::Object(extra)) = (target.as_object_mut(), extra) {
        for (key, value) in extra {
            target.insert(key, value);
        }
    }
}

/// A JWKS endpoint on loopback whose keys can be changed, counting fetches.
pub struct JwksServer {
    pub url: String,
    pub keys: Arc<std::sync::Mutex<Value>>,
    pub fetches: Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    pub async fn start(jwks: Value) -> JwksServer {
        use axum::routing::get;
        let keys = Arc::new(std::sync::Mutex::new(jwks));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (k, f) = (keys.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            get(move || {
                let (k, f) = (k.clone(), f.clone());
                async move {
                    f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    axum::Json(k.lock().unwrap().clone())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer { url, keys, fetches }
    }

    pub fn fetch_count(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A TCP listener that only counts connection attempts: proof that nothing was contacted.
pub struct ConnectionCounter {
    pub url: String,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl ConnectionCounter {
    pub async fn start() -> ConnectionCounter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(stream);
            }
        });
        ConnectionCounter { url, count }
    }

    pub fn count(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Whether a card advises an NSAID as the thing to take: the usual NSAID advice of
/// `cards/patient-factors.toml` (`text.recommend`), or "<first_line> first" with the first line
/// for patients without a caution ("NSAIDs first"). Naming a caution is not advising.
pub fn recommends_nsaid(card: &Value, content: &Content) -> bool {
    let text = &content.factors.text;
    let recommend = text.recommend.render(|_| None);
    let first = format!("{} first", text.first_line);
    let summary = card["summary"].as_str().unwrap_or_default();
    let detail = card["detail"].as_str().unwrap_or_default();
    detail.contains(recommend.trim()) || summary.contains(&first) || detail.contains(&first)
}

/// The NSAID cautions the response reports (`extension["lbp-cds"].nsaidCautions`), sorted.
pub fn nsaid_cautions(response: &Value) -> Vec<String> {
    let mut keys: Vec<String> = response["extension"]["lbp-cds"]["nsaidCautions"]
        .as_array()
        .map(|keys| keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Copies a directory tree (a content directory or a cohort) into a test's own folder.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Whether a text still holds a template placeholder (`{name}`: letters, digits, `_`). Braces from
/// the record itself, such as RxNorm pack names ("{21 (methylprednisolone 4 MG Oral Tablet) }
/// Pack"), are not placeholders.
pub fn has_placeholder(text: &str) -> bool {
    text.split('{').skip(1).any(|rest| {
        rest.split_once('}')
            .is_some_and(|(name, _)| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    })
}

/// A `lbp-cds serve` process started by a test, its standard error collected line by line.
pub struct Logged {
    pub child: std::process::Child,
    pub log: Arc<std::sync::Mutex<String>>,
    /// The thread collecting the log; it ends when the process closes its standard error.
    pub reader: Option<std::thread::JoinHandle<()>>,
}

/// Starts `command` (an `lbp-cds serve` with its arguments), collects its standard error, and
/// waits up to 30 s for the line saying where it listens: the address after `discovery at
/// http://`. Panics with everything it logged if it does not start.
pub fn spawn_logged(mut command: std::process::Command) -> (Logged, SocketAddr) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the lbp-cds binary runs");
    let log = Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("piped standard error");
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("discovery at http://").nth(1) {
                let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
            }
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    match rx.recv_timeout(std::time::Duration::from_secs(30)).map(|a| a.parse::<SocketAddr>()) {
        Ok(Ok(address)) => (Logged { child, log, reader: Some(reader) }, address),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            panic!("lbp-cds did not start: {}", log.lock().unwrap());
        }
    }
}

/// A new empty directory under the system's temporary directory, unique to this call.
pub fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lbp-cds-test-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
