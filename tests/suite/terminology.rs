//! `lbp-cds content expand` against a FHIR terminology double on a real socket (no real
//! terminology server runs on these machines): the request shape ($expand with a ValueSet
//! parameter, paging, Authorization), the rewritten expansion, the diff, and start-up accepting the
//! result but refusing a stale or malformed expansion, naming the file and field. The double also
//! knows a little RxNorm, answering relationship filters as tx.fhir.org does, for the refresh of
//! the concept-to-ingredient map (and its refusal of a failed or partial answer).

use crate::common::{copy_dir, tempdir};

use std::collections::BTreeSet;
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
struct Seen(Arc<Mutex<Vec<(HeaderMap, Value)>>>, Arc<Mutex<Option<Fault>>>);

/// A fault the double produces on RxNorm requests: an error for one relationship, or a page short
/// of the total it announces.
#[derive(Clone, Copy)]
enum Fault {
    ServerError(&'static str),
    ShortPage,
}

const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const RXNORM_VERSION: &str = "07072025";

/// A few RxNorm concepts (RxCUI, term type, name). The products and packs are made up for the
/// test (90xx); the ingredients are the real RxCUIs the shipped classes list.
const CONCEPTS: [(&str, &str, &str); 16] = [
    ("7804", "IN", "oxycodone"),
    ("161", "IN", "acetaminophen"),
    ("6902", "IN", "methylprednisolone"),
    ("9001", "SCDC", "oxycodone hydrochloride 5 MG"),
    ("9002", "SCDC", "acetaminophen 325 MG"),
    ("9003", "SCDC", "methylprednisolone 4 MG"),
    ("1049221", "SCD", "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet"),
    ("1049621", "SCD", "oxycodone hydrochloride 5 MG Oral Tablet"),
    ("9101", "SCD", "methylprednisolone 4 MG Oral Tablet"),
    ("9201", "SBD", "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet [Percocet]"),
    ("9202", "SBD", "methylprednisolone 4 MG Oral Tablet [Medrol]"),
    ("9301", "GPCK", "{21 (methylprednisolone 4 MG Oral Tablet) } Pack"),
    ("9302", "BPCK", "{21 (methylprednisolone 4 MG Oral Tablet [Medrol]) } Pack [Medrol Dosepak]"),
    ("9401", "BN", "Roxicodone"),
    ("9402", "BN", "Medrol"),
    ("9403", "BN", "Percocet"),
];

/// RxNorm relationships as RXNREL reads them, "X rela C": a filter `rela = CUI:X` selects C.
const RELATIONS: [(&str, &str, &str); 23] = [
    ("7804", "ingredient_of", "9001"),
    ("161", "ingredient_of", "9002"),
    ("6902", "ingredient_of", "9003"),
    ("9001", "has_ingredient", "7804"),
    ("9002", "has_ingredient", "161"),
    ("9003", "has_ingredient", "6902"),
    ("9001", "constitutes", "1049221"),
    ("9002", "constitutes", "1049221"),
    ("9001", "constitutes", "1049621"),
    ("9003", "constitutes", "9101"),
    ("1049221", "consists_of", "9001"),
    ("1049221", "consists_of", "9002"),
    ("1049621", "consists_of", "9001"),
    ("9101", "consists_of", "9003"),
    ("1049221", "has_tradename", "9201"),
    ("9101", "has_tradename", "9202"),
    ("9101", "contained_in", "9301"),
    ("9202", "contained_in", "9302"),
    ("7804", "has_tradename", "9401"),
    ("6902", "has_tradename", "9402"),
    ("7804", "has_tradename", "9403"),
    ("161", "has_tradename", "9403"),
    ("9301", "tradename_of", "9302"),
];

/// RxNorm `$expand` as tx.fhir.org answers it: `TTY` `=`/`in`, and a relationship filter
/// (property = RELA, op `=`, value `CUI:<rxcui>`); anything else is refused with an OperationOutcome.
fn rxnorm_expand(include: &Value, offset: usize, count: usize, fault: Option<Fault>) -> (StatusCode, Json<Value>) {
    let refuse = |why: String| {
        let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-supported", "diagnostics": why}]});
        (StatusCode::BAD_REQUEST, Json(outcome))
    };
    let mut codes: Vec<(&str, &str, &str)> = CONCEPTS.to_vec();
    for filter in include["filter"].as_array().into_iter().flatten() {
        let (property, op, value) = (
            filter["property"].as_str().unwrap_or(""),
            filter["op"].as_str().unwrap_or(""),
            filter["value"].as_str().unwrap_or(""),
        );
        if property == "TTY" && (op == "=" || op == "in") {
            let ttys: Vec<&str> = value.split(',').collect();
            codes.retain(|(_, tty, _)| ttys.contains(tty));
        } else if let (true, Some(cui)) = (op == "=", value.strip_prefix("CUI:")) {
            if let Some(Fault::ServerError(rela)) = fault
                && rela == property
            {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(
                        json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception", "diagnostics": "database unavailable"}]}),
                    ),
                );
            }
            codes.retain(|(code, _, _)| {
                RELATIONS.iter().any(|(x, rela, c)| *x == cui && *rela == property && c == code)
            });
        } else {
            return refuse(format!("Unknown filter \"{property} {op} {value}\""));
        }
    }
    let mut total = codes.len();
    let mut page: Vec<Value> = codes
        .into_iter()
        .skip(offset)
        .take(count)
        .map(|(code, _, display)| json!({"system": RXNORM, "code": code, "display": display}))
        .collect();
    if let Some(Fault::ShortPage) = fault
        && total > 0
    {
        // Announces one code more than it will ever send.
        total += 1;
        if offset >= total - 1 {
            page.clear();
        }
    }
    let version = format!("{RXNORM}|{RXNORM_VERSION}");
    (
        StatusCode::OK,
        Json(json!({"resourceType": "ValueSet", "status": "active", "expansion": {
        "timestamp": "2026-11-25T10:00:00Z", "total": total, "offset": offset,
        "parameter": [{"name": "version", "valueUri": version}], "contains": page}})),
    )
}

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
    if system == RXNORM {
        let fault = *seen.1.lock().unwrap();
        return rxnorm_expand(include, offset, count, fault);
    }
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

/// A small ingredient map for the refresh tests: two classes, three oxycodone products (one of
/// which the double's release no longer has, one recorded with a missing ingredient), two brands.
const SMALL_MAP: &str = r#"{
  "description": "test map",
  "timestamp": "2026-11-25T12:00:00Z",
  "classes": ["opioids", "systemic-corticosteroids"],
  "products": [
    {"rxcui": "1049221", "tty": "SCD", "name": "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet", "ingredients": ["7804"], "confirmation": "S", "source": "population-simulator output"},
    {"rxcui": "1049621", "tty": "SCD", "name": "Oxycodone Hydrochloride 5 MG Oral Tablet", "ingredients": ["7804"], "confirmation": "U", "source": "fixtures"},
    {"rxcui": "1860154", "tty": "SCD", "name": "Abuse-Deterrent 12 HR Oxycodone Hydrochloride 15 MG Extended Release Oral Tablet", "ingredients": ["7804"], "confirmation": "S", "source": "population-simulator output"}
  ],
  "brands": [
    {"name": "Percocet", "ingredients": ["161", "7804"], "confirmation": "S", "source": "SBD name"},
    {"name": "Norco", "ingredients": ["161", "5489"], "confirmation": "U", "source": "convention"}
  ]
}
"#;

fn content_with_small_map() -> PathBuf {
    let content = tempdir();
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("cards"), &content);
    std::fs::write(content.join("rxnorm-ingredients.json"), SMALL_MAP).unwrap();
    content
}

fn refresh_map(base: &str, content: &Path) -> Output {
    lbp_cds(&[
        "content",
        "expand",
        "--terminology-server",
        base,
        "--authorization",
        TOKEN,
        "--content",
        content.to_str().unwrap(),
        "--drug-map",
        "--page-size",
        "1",
        "--concurrency",
        "3",
    ])
}

fn class_ingredients(content: &Path, class: &str) -> Vec<String> {
    let set: Value =
        serde_json::from_slice(&std::fs::read(content.join(format!("valuesets/{class}.json"))).unwrap()).unwrap();
    set["expansion"]["contains"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn the_ingredient_map_is_refreshed_through_rxnorm_relationship_filters() {
    let seen = Seen::default();
    let base = spawn_double(seen.clone());
    let content = content_with_small_map();
    let file = content.join("rxnorm-ingredients.json");

    let output = refresh_map(&base, &content);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));

    // The request shape: only RxNorm (the value sets were not asked for), each an inline ValueSet
    // with one include of RxNorm, a TTY filter and one relationship filter `rela = CUI:<rxcui>`,
    // paged one code at a time, with the Authorization header.
    let requests = seen.0.lock().unwrap().clone();
    let mut walked = BTreeSet::new();
    let mut from_ingredients = BTreeSet::new();
    for (headers, body) in &requests {
        assert_eq!(headers["authorization"], TOKEN);
        assert_eq!(headers["content-type"], "application/fhir+json");
        let names: Vec<&str> =
            body["parameter"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["valueSet", "offset", "count"]);
        assert_eq!(body["parameter"][2]["valueInteger"], 1);
        let include = &body["parameter"][0]["resource"]["compose"]["include"];
        assert_eq!(include.as_array().unwrap().len(), 1, "{body}");
        assert_eq!(include[0]["system"], RXNORM, "{body}");
        let filters = include[0]["filter"].as_array().unwrap();
        assert_eq!(filters.len(), 2, "{body}");
        assert_eq!(filters[0]["property"], "TTY");
        let tty = filters[0]["value"].as_str().unwrap();
        assert_eq!(filters[0]["op"], if tty.contains(',') { "in" } else { "=" });
        assert_eq!(filters[1]["op"], "=");
        let value = filters[1]["value"].as_str().unwrap();
        let rxcui = value.strip_prefix("CUI:").unwrap_or_else(|| panic!("not CUI:<rxcui>: {value}"));
        assert!(!rxcui.is_empty() && rxcui.chars().all(|c| c.is_ascii_digit()), "{value}");
        let rela = filters[1]["property"].as_str().unwrap().to_owned();
        if rela == "ingredient_of" {
            from_ingredients.insert(rxcui.to_owned());
        }
        walked.insert((rela, tty.to_owned()));
    }
    let expected: BTreeSet<(String, String)> = [
        ("ingredient_of", "SCDC"),
        ("constitutes", "SCD"),
        ("consists_of", "SCDC"),
        ("has_ingredient", "IN"),
        ("has_tradename", "SBD"),
        ("contained_in", "GPCK"),
        ("contained_in", "BPCK"),
        ("has_tradename", "BN"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect();
    assert_eq!(walked, expected);
    let mut classes: BTreeSet<String> = class_ingredients(&content, "opioids").into_iter().collect();
    classes.extend(class_ingredients(&content, "systemic-corticosteroids"));
    assert_eq!(from_ingredients, classes, "every ingredient of both classes walked, and nothing else");

    // The diff: packs and drugs added, the product the release no longer has removed, the
    // product whose ingredient was missing corrected, brands added and removed.
    for line in [
        "RxNorm 07072025",
        "+ 9101 SCD methylprednisolone 4 MG Oral Tablet",
        "+ 9201 SBD acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet [Percocet]",
        "+ 9301 GPCK {21 (methylprednisolone 4 MG Oral Tablet) } Pack",
        "+ 9302 BPCK {21 (methylprednisolone 4 MG Oral Tablet [Medrol]) } Pack [Medrol Dosepak]",
        "- 1860154 SCD Abuse-Deterrent",
        "~ 1049221 ingredients 161 7804 (were 7804)",
        "+ brand Medrol",
        "- brand Norco",
    ] {
        assert!(stdout.contains(line), "{line:?} missing from:\n{stdout}");
    }

    // The file: timestamp, RxNorm version, classes kept, every entry confirmed by the server with
    // its earlier source kept; brands keep ingredients outside the classes.
    let map: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_ne!(map["timestamp"], "2026-11-25T12:00:00Z");
    assert_eq!(map["rxnormVersion"], RXNORM_VERSION);
    assert_eq!(map["classes"], json!(["opioids", "systemic-corticosteroids"]));
    let product = |rxcui: &str| map["products"].as_array().unwrap().iter().find(|p| p["rxcui"] == rxcui).cloned();
    assert!(product("1860154").is_none());
    let pack = product("9302").expect("brand pack written");
    assert_eq!((pack["tty"].as_str(), pack["ingredients"].clone()), (Some("BPCK"), json!(["6902"])));
    let kept = product("1049621").unwrap();
    assert_eq!(kept["confirmation"], "V");
    let source = kept["source"].as_str().unwrap();
    assert!(source.contains("ValueSet/$expand") && source.contains("earlier: fixtures"), "{source}");
    let percocet = map["brands"].as_array().unwrap().iter().find(|b| b["name"] == "Percocet").unwrap();
    assert_eq!(percocet["ingredients"], json!(["161", "7804"]));

    // A second refresh changes nothing and does not stack its own notes on the sources.
    let again = refresh_map(&base, &content);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    assert!(stdout.contains("0 added, 0 removed, 0 with other ingredients; brands 0 added, 0 removed"), "{stdout}");
    let map: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let kept = map["products"].as_array().unwrap().iter().find(|p| p["rxcui"] == "1049621").unwrap();
    let source = kept["source"].as_str().unwrap();
    assert_eq!(source.matches("earlier:").count(), 1, "{source}");
    assert!(source.ends_with("earlier: fixtures"), "{source}");

    // Start-up accepts it, and a bare pack code now places an order in its class.
    let check = lbp_cds(&["check-content", "--content", content.to_str().unwrap()]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    use lbp_cds::content::ValueSetId;
    let loaded = lbp_cds::content::Content::from_dir(&content).unwrap();
    let bare = |code: &str| lbp_cds::record::Concept {
        codes: vec![lbp_cds::record::Code { system: Some(RXNORM.into()), code: Some(code.into()), display: None }],
        text: None,
    };
    let why = loaded
        .drug_in_class(ValueSetId::parse("systemic-corticosteroids").unwrap(), &bare("9301"))
        .expect("generic pack in class");
    assert!(why.contains("GPCK"), "{why}");
    assert!(loaded.drug_in_class(ValueSetId::parse("opioids").unwrap(), &bare("9301")).is_none());
}

#[test]
fn a_failed_or_partial_map_refresh_leaves_the_file_alone() {
    for (fault, expected) in [
        (Fault::ServerError("contained_in"), "database unavailable"),
        (Fault::ServerError("has_tradename"), "database unavailable"),
        (Fault::ShortPage, "partial expansion"),
    ] {
        let seen = Seen::default();
        *seen.1.lock().unwrap() = Some(fault);
        let base = spawn_double(seen);
        let content = content_with_small_map();
        let output = refresh_map(&base, &content);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{expected}: {}", String::from_utf8_lossy(&output.stdout));
        assert!(stderr.contains(expected) && stderr.contains("rxnorm-ingredients.json was left as it was"), "{stderr}");
        assert_eq!(std::fs::read_to_string(content.join("rxnorm-ingredients.json")).unwrap(), SMALL_MAP);
        assert!(!content.join("rxnorm-ingredients.json.new").exists());
    }

    // Both at once: the value set is refreshed and reported; the map's failure leaves the map alone.
    let seen = Seen::default();
    *seen.1.lock().unwrap() = Some(Fault::ServerError("consists_of"));
    let base = spawn_double(seen);
    let content = content_with_small_map();
    let output = lbp_cds(&[
        "content",
        "expand",
        "--terminology-server",
        &base,
        "--authorization",
        TOKEN,
        "--content",
        content.to_str().unwrap(),
        "--value-set",
        "lbp-diagnosis",
        "--drug-map",
    ]);
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(!output.status.success());
    assert!(stdout.contains(&format!("+ http://snomed.info/sct {NEW_CODE}")), "{stdout}");
    assert!(stderr.contains("consists_of") && stderr.contains("was left as it was"), "{stderr}");
    assert_eq!(std::fs::read_to_string(content.join("rxnorm-ingredients.json")).unwrap(), SMALL_MAP);

    // A server that knows RxNorm but none of the relationships the map's products came from.
    let seen = Seen::default();
    let base = spawn_double(seen);
    let content = content_with_small_map();
    let unknown = SMALL_MAP.replace("\"7804\"]", "\"7052\"]");
    std::fs::write(content.join("rxnorm-ingredients.json"), &unknown).unwrap();
    let output = refresh_map(&base, &content);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("no product of class ingredient(s) 7052"), "{stderr}");
    assert_eq!(std::fs::read_to_string(content.join("rxnorm-ingredients.json")).unwrap(), unknown);
}
