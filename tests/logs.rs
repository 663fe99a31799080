//! Reads every log line of a real run that carries JWTs and FHIR access tokens, and fails if any
//! token (or, by default, the patient id) appears in it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::*;
use lbp_cds::auth::keys::{client_claims, KeyPair};
use serde_json::json;

#[tokio::test]
async fn no_token_or_patient_id_reaches_the_logs() {
    let dir = std::env::temp_dir().join(format!("lbp-cds-logs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = KeyPair::generate("ES384", "log-test").unwrap();
    std::fs::write(dir.join("jwks.json"), serde_json::to_string(&key.jwks()).unwrap()).unwrap();

    // Find a free port, then hand it to the server.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    std::fs::write(
        dir.join("auth.toml"),
        format!(
            "public_base_url = \"{base}\"\n[[issuers]]\niss = \"https://ehr.example.org\"\njwks_file = \"jwks.json\"\nfhir_servers = [\"https://fhir.example.org/r4\"]\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--today", "2026-03-02", "--auth-config"])
        .arg(dir.join("auth.toml"))
        .env("LBP_CDS_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = ready_tx.send(());
            }
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
        }
    });
    ready_rx.recv_timeout(std::time::Duration::from_secs(30)).expect("server started");

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

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    child.kill().unwrap();
    let _ = child.wait();
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
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
