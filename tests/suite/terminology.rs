//! `lbp-cds content expand` against a FHIR terminology double on a real socket (no real
//! terminology server runs on these machines): the request shape ($expand with a ValueSet
//! parameter, paging, Authorization), the rewritten expansion, the diff, and start-up accepting the
//! result but refusing a stale or malformed expansion, naming the file and field.

use crate::common::copy_dir;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

const TOKEN: &str = "Bearer terminology-token";
const NEW_CODE: &str = "1234567008";

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(HeaderMap, Value)>>>);

/// A terminology server that knows a little SNOMED CT: Low back pain has two descendants (one of
/// them new), every other filter value stands for itself; exclusions are honoured; pages follow
/// `offset` and `count`.
async fn expand(seen: Seen, headers: HeaderMap, body: String) -> (StatusCode, Json<Value>) {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    seen.0.lock().unwrap().push((headers.clone(), body.clone()));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login", "diagnostics": "bad token"}]});
        return (StatusCode::UNAUTHORIZED, Json(outcome));
    }
    let parameter = |name: &str| {
        body["parameter"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap_or(Value::Null)
    };
    let definition = parameter("valueSet")["resource"].clone();
    let offset = parameter("offset")["valueInteger"].as_u64().unwrap_or(0) as usize;
    let count = parameter("count")["valueInteger"].as_u64().unwrap_or(1000) as usize;
    let include = &definition["compose"]["include"][0];
    let system = include["system"].as_str().unwrap_or_default();
    let mut codes: Vec<(String, String)> = include["concept"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["code"].as_str().unwrap().to_owned(), format!("display of {}", c["code"].as_str().unwrap())))
        .collect();
    if let Some(value) = include["filter"][0]["value"].as_str() {
        match value {
            "279039007" => codes.extend([
                ("279039007".to_owned(), "Low back pain".to_owned()),
                ("278862001".to_owned(), "Acute low back pain".to_owned()),
                (NEW_CODE.to_owned(), "Test descendant of low back pain".to_owned()),
            ]),
            other => codes.push((other.to_owned(), format!("concept {other}"))),
        }
    }
    let excluded: Vec<&str> = definition["compose"]["exclude"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["concept"].as_array().into_iter().flatten().filter_map(|c| c["code"].as_str()))
        .collect();
    codes.retain(|(code, _)| !excluded.contains(&code.as_str()));
    let total = codes.len();
    let page: Vec<Value> = codes
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|(code, display)| json!({"system": system, "code": code, "display": display}))
        .collect();
    let version = if system.contains("snomed") {
        "http://snomed.info/sct|http://snomed.info/sct/731000124108/version/20250901"
    } else {
        "http://hl7.org/fhir/sid/icd-10-cm|2026"
    };
    let expansion = json!({"resourceType": "ValueSet", "status": "active", "expansion": {
        "timestamp": "2026-11-25T10:00:00Z", "total": total, "offset": offset,
        "parameter": [{"name": "version", "valueUri": version}], "contains": page}});
    (StatusCode::OK, Json(expansion))
}

/// Starts the double on a random loopback port; returns its base URL.
fn spawn_double(seen: Seen) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = Router::new().route(
                "/fhir/ValueSet/$expand",
                post(move |headers: HeaderMap, body: String| expand(seen.clone(), headers, body)),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{address}/fhir")
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lbp-cds-terminology-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lbp_cds(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lbp-cds")).args(args).output().unwrap()
}

fn expand_with(base: &str, content: &Path, authorization: &str) -> Output {
    lbp_cds(&[
        "content",
        "expand",
        "--terminology-server",
        base,
        "--authorization",
        authorization,
        "--content",
        content.to_str().unwrap(),
        "--value-set",
        "lbp-diagnosis",
        "--page-size",
        "2",
    ])
}

fn code_entry<'a>(set: &'a Value, code: &str) -> Option<&'a Value> {
    set["expansion"]["contains"].as_array().unwrap().iter().find(|c| c["code"] == code)
}

fn extension<'a>(concept: &'a Value, url: &str) -> Option<&'a str> {
    concept["extension"].as_array()?.iter().find(|e| e["url"] == url).and_then(|e| e["valueCode"].as_str())
}

#[test]
fn expand_round_trip_against_a_terminology_double() {
    let seen = Seen::default();
    let base = spawn_double(seen.clone());
    let content = tempdir();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cards"), &content);
    let file = content.join("valuesets/lbp-diagnosis.json");
    let before: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let includes = before["compose"]["include"].as_array().unwrap().len();

    let output = expand_with(&base, &content, TOKEN);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));

    // The request shape: POST [base]/ValueSet/$expand, FHIR JSON both ways, the Authorization
    // header as given, a Parameters body with the definition of one include (its lbp-cds group
    // extension removed), the set's exclusions, and offset/count paging.
    let requests = seen.0.lock().unwrap().clone();
    assert!(requests.len() > includes, "every include asked for, some over several pages: {}", requests.len());
    for (headers, body) in &requests {
        assert_eq!(headers["authorization"], TOKEN);
        assert_eq!(headers["accept"], "application/fhir+json");
        assert_eq!(headers["content-type"], "application/fhir+json");
        assert_eq!(body["resourceType"], "Parameters");
        let names: Vec<&str> =
            body["parameter"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["valueSet", "offset", "count"]);
        let definition = &body["parameter"][0]["resource"];
        assert_eq!(definition["resourceType"], "ValueSet");
        assert_eq!(definition["compose"]["include"].as_array().unwrap().len(), 1);
        assert!(definition["compose"]["include"][0].get("extension").is_none());
        assert_eq!(definition["compose"]["exclude"], before["compose"]["exclude"]);
        assert_eq!(body["parameter"][2]["valueInteger"], 2);
    }
    let low_back_pain_pages: Vec<u64> = requests
        .iter()
        .filter(|(_, body)| {
            body["parameter"][0]["resource"]["compose"]["include"][0]["filter"][0]["value"] == "279039007"
        })
        .map(|(_, body)| body["parameter"][1]["valueInteger"].as_u64().unwrap())
        .collect();
    assert_eq!(low_back_pain_pages, [0, 2], "three codes in pages of two");

    // The diff: the new descendant added, the ICD-10-CM subdivisions the double does not know removed.
    assert!(
        stdout.contains(&format!("+ http://snomed.info/sct {NEW_CODE} Test descendant of low back pain")),
        "{stdout}"
    );
    assert!(stdout.contains("- http://hl7.org/fhir/sid/icd-10-cm M54.41"), "{stdout}");
    assert!(stdout.contains("lbp-diagnosis: "), "{stdout}");

    // The expansion written: timestamp, code-system versions, the new code confirmed by the
    // server with its include's group, an existing code keeping its own group; other members kept.
    let after: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_ne!(after["expansion"]["timestamp"], before["expansion"]["timestamp"]);
    let versions: Vec<&str> =
        after["expansion"]["parameter"].as_array().unwrap().iter().map(|p| p["valueUri"].as_str().unwrap()).collect();
    assert!(
        versions.contains(&"http://snomed.info/sct|http://snomed.info/sct/731000124108/version/20250901"),
        "{versions:?}"
    );
    let new = code_entry(&after, NEW_CODE).expect("new code written");
    assert_eq!(
        (extension(new, "urn:lbp-cds:confirmation"), extension(new, "urn:lbp-cds:group")),
        (Some("V"), Some("uncomplicated"))
    );
    assert_eq!(extension(code_entry(&after, "278860009").unwrap(), "urn:lbp-cds:group"), Some("chronic"));
    assert!(code_entry(&after, "134407002").is_none(), "excluded");
    assert_eq!(after["compose"], before["compose"]);
    assert_eq!(after["description"], before["description"]);

    // Start-up accepts it.
    let check = lbp_cds(&["check-content", "--content", content.to_str().unwrap()]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));

    // A definition changed after the expansion: stale, refused, naming file and field.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("\"date\": \"2026-11-25\"", "\"date\": \"2099-01-01\"", 1)).unwrap();
    let check = lbp_cds(&["check-content", "--content", content.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(
        stderr.contains("valuesets/lbp-diagnosis.json")
            && stderr.contains("`expansion.timestamp`")
            && stderr.contains("older than its definition"),
        "{stderr}"
    );

    // A malformed timestamp: refused, naming file and field.
    let stamp = after["expansion"]["timestamp"].as_str().unwrap();
    std::fs::write(&file, text.replacen(stamp, "last tuesday", 1)).unwrap();
    let check = lbp_cds(&["check-content", "--content", content.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains("valuesets/lbp-diagnosis.json") && stderr.contains("`expansion.timestamp`"), "{stderr}");
}

#[test]
fn a_refused_token_fails_and_leaves_the_file_alone() {
    let base = spawn_double(Seen::default());
    let content = tempdir();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cards"), &content);
    let file = content.join("valuesets/lbp-diagnosis.json");
    let before = std::fs::read(&file).unwrap();
    let output = expand_with(&base, &content, "Bearer wrong");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("bad token") && stderr.contains("lbp-diagnosis.json"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
}
