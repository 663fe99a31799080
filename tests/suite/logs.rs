//! Reads every log line of a real run that carries JWTs and FHIR access tokens, and fails if any
//! token (or, by default, the patient id) appears in it.

use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::common::*;
use lbp_cds::auth::keys::{KeyPair, client_claims};
use serde_json::json;

/// The release binary with an authentication configuration, logging at `trace` into a buffer.
struct Server {
    base: String,
    key: KeyPair,
    child: std::process::Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// `issuer_extra`: TOML lines added to the issuer (for example more FHIR servers).
    fn start(top_extra: &str, issuer_extra: &str) -> Server {
        let dir = tempdir();
        let key = KeyPair::generate("ES384", "log-test").unwrap();
        std::fs::write(dir.join("jwks.json"), serde_json::to_string(&key.jwks()).unwrap()).unwrap();
        // Find a free port, then hand it to the server.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        std::fs::write(
            dir.join("auth.toml"),
            format!(
                "public_base_url = \"{base}\"\n{top_extra}\n[[issuers]]\niss = \"https://ehr.example.org\"\njwks_file = \"jwks.json\"\n{issuer_extra}\n"
            ),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_lbp-cds"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--today", "2026-03-02", "--auth-config"])
            .arg(dir.join("auth.toml"))
            .env("LBP_CDS_LOG", "trace")
            .env("LBP_CDS_DATABASE_URL", format!("sqlite://{}", dir.join("lbp-cds.db").display()));
        let (Logged { child, log, reader }, _) = spawn_logged(command);
        Server { base, key, child, log, reader }
    }

    /// Stops the server and returns everything it logged.
    async fn stop(mut self) -> String {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        self.child.kill().unwrap();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }

    fn token_for(&self, url: &str) -> String {
        self.key.sign(&client_claims("https://ehr.example.org", url, 300, None)).unwrap()
    }
}

/// Attack: log injection. A `jku`, a `kid`, a service id and a `hook` carrying CR/LF and escape
/// bytes, from unauthenticated and authenticated callers, cannot forge a log line.
#[tokio::test]
async fn client_strings_cannot_forge_log_lines() {
    let server = Server::start("allow_insecure_http = true", "jku_prefixes = [\"http://127.0.0.1:9/jwks/\"]");
    let client = lbp_cds::outbound::client().expect("outbound client");
    let url = format!("{}/cds-services/lbp-patient-view", server.base);
    let body = Scenario::new("patient-view", 45).low_back_pain(7).body();
    let forged = |header: jsonwebtoken::Header| {
        let claims = client_claims("https://ehr.example.org", &url, 300, None);
        let key = lbp_cds::auth::keys::encoding_key(server.key.algorithm, &server.key.private_pem).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    let mut with_jku = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
    with_jku.jku = Some("http://127.0.0.1:9/jwks/\r\nFORGED-JKU \u{1b}[31m".into());
    let mut with_kid = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
    with_kid.kid = Some("x\r\nFORGED-KID".into());
    let mut statuses = Vec::new();
    for token in [forged(with_jku), forged(with_kid)] {
        statuses.push(client.post(&url).bearer_auth(token).json(&body).send().await.unwrap().status().as_u16());
    }
    let odd_service = format!("{}/cds-services/x%0D%0AFORGED-SERVICE", server.base);
    let token = server.token_for(&odd_service);
    statuses.push(client.post(&odd_service).bearer_auth(token).json(&body).send().await.unwrap().status().as_u16());
    let mut odd_hook = body.clone();
    odd_hook["hook"] = json!("patient-view\r\nFORGED-HOOK \u{1b}[2J");
    statuses.push(
        client.post(&url).bearer_auth(server.token_for(&url)).json(&odd_hook).send().await.unwrap().status().as_u16(),
    );
    assert_eq!(statuses, vec![401, 401, 404, 400]);
    let log = server.stop().await;
    assert!(log.contains("FORGED-JKU") || log.contains("jku"), "the refusal was logged: {log}");
    assert!(log.contains("FORGED-SERVICE") && log.contains("FORGED-HOOK"), "the strings were logged, escaped: {log}");
    for line in log.lines() {
        assert!(!line.starts_with("FORGED"), "a forged log line: {line}");
    }
    assert!(!log.contains('\u{1b}'), "an escape byte reached the log");
}

/// Attack: log flooding. A FHIR server answering with thousands of unreadable resources costs
/// one summary line, not one line per resource.
#[tokio::test]
async fn thousands_of_unreadable_resources_cost_one_log_line() {
    let bad: Vec<serde_json::Value> = (0..5_000)
        .map(|n| json!({"resource": {"resourceType": "Condition", "id": format!("bad-{n}"), "subject": {"reference": "Patient/pat-1"}, "clinicalStatus": 5}}))
        .collect();
    let page = json!({"resourceType": "Bundle", "type": "searchset", "entry": bad}).to_string();
    let app = axum::Router::new().fallback(move || {
        let page = page.clone();
        async move { ([("content-type", "application/fhir+json")], page) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fhir = format!("http://{}/r4", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let server = Server::start(
        "allow_insecure_http = true",
        &format!("fhir_servers = [\"{fhir}\"]\nopen_fhir_servers = [\"{fhir}\"]"),
    );
    let client = lbp_cds::outbound::client().expect("outbound client");
    let url = format!("{}/cds-services/lbp-patient-view", server.base);
    let mut body = Scenario::new("patient-view", 45).low_back_pain(7).body();
    body["fhirServer"] = json!(fhir);
    body["prefetch"].as_object_mut().unwrap().remove("conditions");
    let response = client.post(&url).bearer_auth(server.token_for(&url)).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    let report = &answer["extension"]["lbp-cds"];
    assert_eq!(report["skippedResourceCount"], 5_000, "{report}");
    assert_eq!(report["skippedResources"].as_array().map(Vec::len), Some(20), "the list is capped");
    let log = server.stop().await;
    let lines = log.lines().count();
    assert!(lines < 60, "{lines} log lines for one call");
    assert!(!log.contains("bad-4999"), "resource ids of unreadable resources are not logged one by one");
}

#[tokio::test]
async fn no_token_or_patient_id_reaches_the_logs() {
    let server = Server::start("", "fhir_servers = [\"https://fhir.example.org/r4\"]");
    let (base, key) = (server.base.clone(), server.key.clone());
    let client = lbp_cds::outbound::client().expect("outbound client");
    let access_token = "fhir-access-token-7f3a9c";
    let mut secrets = vec![access_token.to_owned()];
    let patient_id = "log-patient-4821";
    let mut scenario = Scenario::new("patient-view", 45);
    scenario.patient_id = patient_id.into();
    let scenario = scenario.low_back_pain(7).condition(ICD10, "G83.4", 1);
    let url = format!("{base}/cds-services/lbp-patient-view");
    let token = || key.sign(&client_claims("https://ehr.example.org", &url, 300, None)).unwrap();

    let mut with_fhir = scenario.body();
    with_fhir["fhirServer"] = json!("https://fhir.example.org/r4");
    with_fhir["fhirAuthorization"] = json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "scope": "patient/*.read", "subject": "lbp-cds"});
    let mut untrusted = with_fhir.clone();
    untrusted["fhirServer"] = json!("http://169.254.169.254/latest");
    let mut malformed = with_fhir.clone();
    malformed["hookInstance"] = json!(5);

    let mut statuses = Vec::new();
    for body in [&with_fhir, &untrusted, &malformed] {
        let jwt = token();
        secrets.push(jwt.clone());
        let response = client.post(&url).bearer_auth(&jwt).json(body).send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    // A tampered token and a token for the wrong audience.
    let jwt = token();
    let tampered = format!("{}x", jwt);
    secrets.push(tampered.clone());
    statuses.push(client.post(&url).bearer_auth(&tampered).json(&with_fhir).send().await.unwrap().status().as_u16());
    let replayed = secrets[1].clone();
    statuses.push(client.post(&url).bearer_auth(&replayed).json(&with_fhir).send().await.unwrap().status().as_u16());
    assert_eq!(statuses, vec![200, 403, 400, 401, 401]);

    let log = server.stop().await;
    assert!(log.contains("hook answered") && log.contains("red-flag-cauda-equina"), "the run was logged: {log}");
    assert!(log.contains("hookInstance=d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"), "spans carry hookInstance: {log}");
    assert!(log.contains("authentication failed"), "refusals are logged with a reason");
    for secret in &secrets {
        // The whole token and its signature part must both be absent.
        let signature = secret.rsplit('.').next().unwrap_or(secret);
        assert!(!log.contains(secret.as_str()), "a token reached the logs");
        assert!(signature.len() < 16 || !log.contains(signature), "a token signature reached the logs");
    }
    assert!(!log.contains(patient_id), "patient id logged without --log-patient-ids");
}
