//! FHIR queries: against a real FHIR server (Helios `hfs`, installed by `scripts/install-fhir-server`)
//! loaded with the fixtures, and against small HTTP doubles on real sockets for the faults a real
//! server cannot be made to produce (slow, down, 401, garbage, lying).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use lbp_cds::config::Settings;
use lbp_cds::fhir::FetchLimits;
use serde_json::{Value, json};

const TOKEN: &str = "ehr-access-token-for-tests";

/// The real FHIR server, on a random loopback port, with the fixtures loaded.
struct Hfs {
    base: String,
    child: Child,
}

impl Drop for Hfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hfs_binary() -> PathBuf {
    if let Ok(path) = std::env::var("LBP_CDS_HFS") {
        return PathBuf::from(path);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let tools = std::env::var("LBP_CDS_TOOLS_DIR").unwrap_or_else(|_| format!("{home}/.cache/lbp-cds/tools"));
    PathBuf::from(tools).join("hfs-0.2.7-lean/bin/hfs")
}

impl Hfs {
    async fn start(client: &reqwest::Client) -> Hfs {
        let binary = hfs_binary();
        assert!(
            binary.exists(),
            "the FHIR server is not installed at {}: run ./scripts/install-fhir-server (./scripts/test does)",
            binary.display()
        );
        let dir = std::env::temp_dir().join(format!("lbp-cds-hfs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let params =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fhir-server/search-parameters-r4.json");
        std::fs::copy(params, dir.join("search-parameters-r4.json")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(&dir)
            .env("HFS_DATA_DIR", &dir)
            .env("HFS_UI_ENABLED", "false")
            .env("HFS_NL_SEARCH_ENABLED", "false")
            .env("HFS_SOF_ENABLED", "false")
            .env("HFS_LOG_LEVEL", "warn")
            // Bundle links must name the address it really serves on.
            .env("HFS_BASE_URL", format!("http://127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hfs");
        let base = format!("http://127.0.0.1:{port}");
        let server = Hfs { base, child };
        let started = Instant::now();
        loop {
            if let Ok(response) = client.get(format!("{}/metadata", server.base)).send().await
                && response.status().is_success()
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "hfs did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    async fn search(&self, client: &reqwest::Client, query: &str) -> Value {
        client.get(format!("{}/{query}", self.base)).send().await.unwrap().json().await.unwrap()
    }

    async fn load(&self, client: &reqwest::Client, resources: &[Value]) {
        let entries: Vec<Value> = resources
            .iter()
            .map(|r| {
                let url = format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
                json!({"fullUrl": format!("{}/{url}", self.base), "resource": r, "request": {"method": "PUT", "url": url}})
            })
            .collect();
        let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
        let response =
            client.post(&self.base).header("content-type", "application/fhir+json").json(&bundle).send().await.unwrap();
        assert!(response.status().is_success(), "loading failed: {}", response.status());
        let result: Value = response.json().await.unwrap();
        let failed: Vec<&Value> = result["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| !e["response"]["status"].as_str().unwrap_or("").starts_with('2'))
            .collect();
        assert!(failed.is_empty(), "some resources were not stored: {failed:?}");
    }
}

fn fixtures_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Fixtures whose prefetch is complete and well-formed (the prefetch-state and bad-resource
/// fixtures are about the prefetch itself).
fn fetchable_fixtures() -> Vec<(String, String, Value)> {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("expected.json")).unwrap()).unwrap();
    expected["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, want)| {
            want["status"] == 200
                && !name.starts_with("prefetch-")
                && !name.starts_with("broken")
                && !name.starts_with("no-prefetch")
        })
        .map(|(name, want)| {
            let body: Value = serde_json::from_str(
                &std::fs::read_to_string(fixtures_dir().join(format!("requests/{name}.json"))).unwrap(),
            )
            .unwrap();
            (name.clone(), want["service"].as_str().unwrap().to_owned(), body)
        })
        .collect()
}

fn prefetched_resources(body: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for value in body["prefetch"].as_object().into_iter().flat_map(|m| m.values()) {
        match value["resourceType"].as_str() {
            Some("Bundle") => {
                out.extend(value["entry"].as_array().into_iter().flatten().map(|e| e["resource"].clone()))
            }
            Some(_) => out.push(value.clone()),
            None => {}
        }
    }
    out
}

/// A patient with more observations than one page (hfs pages by 20): 44 normal temperatures
/// and one fever.
fn paging_patient() -> Scenario {
    let mut scenario = Scenario::new("order-sign", 45);
    scenario.patient_id = "paging-patient".into();
    let mut scenario = scenario.low_back_pain(14);
    for day in 1..=44 {
        scenario = scenario.observation("8310-5", 37.0, "Cel", day % 28 + 1);
    }
    scenario.observation("8310-5", 39.2, "Cel", 1).order(CPT, "72148", "MRI lumbar spine")
}

/// Points a request at `base` with the EHR's access token.
fn with_token(body: &mut Value, base: &str) {
    body["fhirServer"] = json!(base);
    body["fhirAuthorization"] = json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "lbp-cds"});
}

fn without_prefetch(body: &Value, base: &str) -> Value {
    let mut body = body.clone();
    body.as_object_mut().unwrap().remove("prefetch");
    with_token(&mut body, base);
    body
}

async fn app_for(base: &str, limits: FetchLimits) -> TestApp {
    TestApp::spawn_with(Settings {
        fixed_today: Some(TODAY),
        fhir_servers: vec![lbp_cds::outbound::UrlScope::parse(base, true, false).expect("FHIR base")],
        // The test servers are plain http on loopback (authentication is off here).
        fetch_limits: FetchLimits { allow_http: true, ..limits },
        ..Settings::default()
    })
    .await
}

fn cards_and_actions(response: &Value) -> (Value, Value) {
    (response["cards"].clone(), response.get("systemActions").cloned().unwrap_or(Value::Null))
}

#[tokio::test]
async fn queries_against_a_real_fhir_server_give_the_prefetched_answer() {
    let client = lbp_cds::outbound::client().expect("outbound client");
    let hfs = Hfs::start(&client).await;
    let fixtures = fetchable_fixtures();
    assert!(fixtures.len() >= 25, "fixtures to compare");
    let mut resources: Vec<Value> = fixtures.iter().flat_map(|(_, _, body)| prefetched_resources(body)).collect();
    let paging = paging_patient();
    resources.extend(prefetched_resources(&paging.body()));
    resources.sort_by_key(|r| format!("{}/{}", r["resourceType"], r["id"]));
    resources.dedup_by_key(|r| format!("{}/{}", r["resourceType"], r["id"]));
    hfs.load(&client, &resources).await;

    // The server filters by patient (its SearchParameters are loaded): no other patient's data.
    let bundle = hfs.search(&client, "Condition?patient=paging-patient").await;
    let subjects: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["subject"]["reference"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, vec!["Patient/paging-patient"], "patient filtering works");

    let app = app_for(&hfs.base, FetchLimits::default()).await;
    let mut failures = Vec::new();
    for (name, service, body) in &fixtures {
        let (status, prefetched) = app.post(service, body).await;
        assert_eq!(status, 200, "{name}");
        // No prefetch at all: every key is queried.
        let (status, fetched) = app.post(service, &without_prefetch(body, &hfs.base)).await;
        if status != 200 || cards_and_actions(&fetched) != cards_and_actions(&prefetched) {
            failures.push(format!("{name} without prefetch: {status} {fetched}\nprefetched: {prefetched}"));
            continue;
        }
        assert_valid_response(&fetched);
        // Each single key missing is fetched.
        for key in body["prefetch"].as_object().unwrap().keys() {
            let mut one_missing = body.clone();
            one_missing["prefetch"].as_object_mut().unwrap().remove(key);
            with_token(&mut one_missing, &hfs.base);
            let (status, response) = app.post(service, &one_missing).await;
            if status != 200 || cards_and_actions(&response) != cards_and_actions(&prefetched) {
                failures.push(format!("{name} without `{key}`: {status} {response}"));
            }
        }
        // An OperationOutcome in place of conditions is refetched.
        let mut outcome = body.clone();
        outcome["prefetch"]["conditions"] =
            json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]});
        outcome["fhirServer"] = json!(hfs.base);
        let (status, response) = app.post(service, &outcome).await;
        if status != 200 || cards_and_actions(&response) != cards_and_actions(&prefetched) {
            failures.push(format!("{name} with an OperationOutcome: {status} {response}"));
        }
    }
    assert!(failures.is_empty(), "{} differences:\n{}", failures.len(), failures.join("\n\n"));

    // Pagination: 45 observations come in three pages; the fever may be on any of them.
    let paging_body = paging.body();
    let (_, prefetched) = app.post("lbp-order-sign", &paging_body).await;
    assert!(card_types(&prefetched).contains(&"red-flag-infection".to_owned()));
    let (status, fetched) = app.post("lbp-order-sign", &without_prefetch(&paging_body, &hfs.base)).await;
    assert_eq!(status, 200);
    assert_eq!(cards_and_actions(&fetched), cards_and_actions(&prefetched), "all pages were read");
    // A prefetched first page with a `next` link: the rest is fetched.
    let first_page = hfs.search(&client, "Observation?patient=paging-patient&_count=10").await;
    assert!(first_page["link"].as_array().unwrap().iter().any(|l| l["relation"] == "next"), "the server pages");
    let mut partial = paging_body.clone();
    partial["prefetch"]["observations"] = first_page;
    with_token(&mut partial, &hfs.base);
    let (status, response) = app.post("lbp-order-sign", &partial).await;
    assert_eq!(status, 200);
    assert_eq!(cards_and_actions(&response), cards_and_actions(&prefetched), "the remaining pages were fetched");
    // With a cap of one page the answer says it is incomplete instead of guessing.
    let capped = app_for(&hfs.base, FetchLimits { max_pages: 1, ..FetchLimits::default() }).await;
    let mut no_observations = paging_body.clone();
    no_observations["prefetch"].as_object_mut().unwrap().remove("observations");
    with_token(&mut no_observations, &hfs.base);
    let (status, response) = capped.post("lbp-order-sign", &no_observations).await;
    assert_eq!(status, 200);
    let keys = response["extension"]["lbp-cds"]["prefetch"].as_array().unwrap();
    assert!(keys.iter().any(|k| k["key"] == "observations" && k["status"] == "fetched-incomplete"), "{response}");
    assert!(
        !card_types(&response).contains(&"imaging-not-indicated".to_owned()),
        "no conclusion from a partial record"
    );
}

/// A test double that speaks HTTP on a real socket, for faults a real server will not produce.
struct Double {
    base: String,
    authorization: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn double(behaviour: &'static str) -> Double {
    use axum::response::IntoResponse;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let record = record.clone();
        async move {
            if let Some(value) = request.headers().get("authorization") {
                record.lock().unwrap().push(value.to_str().unwrap_or("").to_owned());
            }
            match behaviour {
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "{}".into_response()
                }
                "401" => (axum::http::StatusCode::UNAUTHORIZED, "{\"resourceType\":\"OperationOutcome\"}").into_response(),
                "garbage" => (axum::http::StatusCode::OK, "<html>not FHIR</html>").into_response(),
                "lying" => axum::Json(json!({
                    "resourceType": "Bundle", "type": "searchset",
                    "entry": [{"resource": {"resourceType": "Condition", "id": "x", "subject": {"reference": "Patient/someone-else"},
                        "code": {"coding": [{"system": ICD10, "code": "G83.4"}]}}}]
                }))
                .into_response(),
                _ => axum::http::StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fhir", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Double { base, authorization: seen }
}

#[tokio::test]
async fn a_slow_down_refusing_or_garbage_server_degrades_the_answer_inside_the_budget() {
    let unreachable = {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        format!("http://127.0.0.1:{port}/fhir")
    };
    let slow = double("slow").await;
    let refusing = double("401").await;
    let garbage = double("garbage").await;
    let cases = [
        ("unreachable", unreachable),
        ("slow", slow.base.clone()),
        ("401", refusing.base.clone()),
        ("garbage", garbage.base.clone()),
    ];
    for (name, base) in cases {
        let app = app_for(&base, FetchLimits { budget: Duration::from_millis(800), ..FetchLimits::default() }).await;
        // Required data prefetched, the rest must be fetched: the answer degrades.
        let mut body = Scenario::new("order-sign", 45).low_back_pain(14).order(CPT, "72148", "MRI lumbar spine").body();
        for key in ["observations", "medications", "procedures", "serviceRequests", "questionnaireResponses"] {
            body["prefetch"].as_object_mut().unwrap().remove(key);
        }
        with_token(&mut body, &base);
        let started = Instant::now();
        let (status, response) = app.post("lbp-order-sign", &body).await;
        let elapsed = started.elapsed();
        assert_eq!(status, 200, "{name}: {response}");
        assert!(elapsed < Duration::from_millis(2_500), "{name}: took {elapsed:?}");
        assert_valid_response(&response);
        assert_eq!(
            card_types(&response),
            vec!["imaging-conditional".to_owned()],
            "{name}: no conclusion without the data"
        );
        let keys = response["extension"]["lbp-cds"]["prefetch"].as_array().expect("keys reported");
        assert!(keys.iter().filter(|k| k["status"] == "fetch-failed").count() >= 5, "{name}: {keys:?}");
        // Without the required conditions there is nothing useful to say: 412, still in time.
        body["prefetch"].as_object_mut().unwrap().remove("conditions");
        let (status, response) = app.post("lbp-order-sign", &body).await;
        assert_eq!(status, 412, "{name}: {response}");
    }
    assert!(refusing.authorization.lock().unwrap().iter().all(|h| h == &format!("Bearer {TOKEN}")));
    assert!(!refusing.authorization.lock().unwrap().is_empty(), "the access token was sent to fhirServer");
}

#[tokio::test]
async fn a_lying_server_cannot_add_another_patients_data() {
    let lying = double("lying").await;
    let app = app_for(&lying.base, FetchLimits::default()).await;
    let mut body = Scenario::new("patient-view", 45).low_back_pain(14).body();
    body["prefetch"].as_object_mut().unwrap().remove("observations");
    with_token(&mut body, &lying.base);
    let (status, response) = app.post("lbp-patient-view", &body).await;
    assert_eq!(status, 200);
    assert!(!card_types(&response).iter().any(|t| t.starts_with("red-flag-")), "{response}");
    assert!(response["extension"]["lbp-cds"]["ignoredResources"].as_u64().unwrap_or(0) >= 1);
}

#[tokio::test]
async fn an_open_fhir_server_is_queried_without_a_token_only_when_configured() {
    let refusing = double("401").await;
    let app = app_for(&refusing.base, FetchLimits::default()).await;
    let mut body = Scenario::new("patient-view", 45).low_back_pain(14).body();
    body["prefetch"].as_object_mut().unwrap().remove("observations");
    body["fhirServer"] = json!(refusing.base);
    let (status, _) = app.post("lbp-patient-view", &body).await;
    assert_eq!(status, 200);
    assert!(refusing.authorization.lock().unwrap().is_empty(), "no token was invented");
    // A server that is not configured is never contacted.
    let other = double("401").await;
    let mut body = body.clone();
    with_token(&mut body, &other.base);
    let (status, response) = app.post("lbp-patient-view", &body).await;
    assert_eq!(status, 200);
    assert!(other.authorization.lock().unwrap().is_empty(), "an unlisted fhirServer got a request: {response}");
}
