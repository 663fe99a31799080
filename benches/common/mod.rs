//! Synthetic hook requests of a chosen size, shaped like real records: mostly resources the rules
//! do not care about (other diagnoses, vital signs, medications), one low back pain episode and a
//! lumbar MRI order. Shared by the benchmarks and the load-test request generator.
#![allow(dead_code)]

use serde_json::{Value, json};

const OTHER_CONDITIONS: [(&str, &str); 8] = [
    ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("J45.909", "Unspecified asthma, uncomplicated"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
    ("F41.1", "Generalized anxiety disorder"),
    ("M17.11", "Unilateral primary osteoarthritis, right knee"),
    ("G43.909", "Migraine, unspecified"),
];

fn date(days_ago: usize) -> String {
    let day = time::macros::date!(2026 - 03 - 02) - time::Duration::days(days_ago as i64);
    day.to_string()
}

fn subject() -> Value {
    json!({"reference": "Patient/synthetic-1", "display": "Synthetic Patient"})
}

fn condition(i: usize) -> Value {
    let (code, display) = OTHER_CONDITIONS[i % OTHER_CONDITIONS.len()];
    json!({
        "resourceType": "Condition", "id": format!("cond-{i}"),
        "meta": {"versionId": "1", "lastUpdated": "2026-01-10T09:30:00Z"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item", "display": "Problem List Item"}]}],
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code, "display": display}], "text": display},
        "subject": subject(),
        "encounter": {"reference": format!("Encounter/enc-{}", i % 17)},
        "onsetDateTime": date(200 + i % 900),
        "recordedDate": date(190 + i % 900)
    })
}

fn observation(i: usize) -> Value {
    let (code, display, value, unit) = match i % 3 {
        0 => ("8310-5", "Body temperature", 36.6 + (i % 7) as f64 * 0.1, "Cel"),
        1 => ("29463-7", "Body weight", 81.0 + (i % 5) as f64 * 0.2, "kg"),
        _ => ("8480-6", "Systolic blood pressure", 118.0 + (i % 20) as f64, "mm[Hg]"),
    };
    json!({
        "resourceType": "Observation", "id": format!("obs-{i}"),
        "meta": {"versionId": "1", "lastUpdated": "2026-02-10T09:30:00Z"},
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": display}], "text": display},
        "subject": subject(),
        "effectiveDateTime": format!("{}T10:{:02}:00Z", date(3 + i % 300), i % 60),
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    })
}

fn medication(i: usize) -> Value {
    let (code, text) = [
        ("314076", "lisinopril 10 MG Oral Tablet"),
        ("860975", "metformin hydrochloride 500 MG Oral Tablet"),
        ("617314", "atorvastatin 10 MG Oral Tablet"),
    ][i % 3];
    json!({
        "resourceType": "MedicationRequest", "id": format!("med-{i}"),
        "status": if i.is_multiple_of(4) { "completed" } else { "active" }, "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": text}], "text": text},
        "subject": subject(),
        "authoredOn": date(30 + i % 400),
        "dosageInstruction": [{"text": "Take 1 tablet by mouth daily", "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}]}}],
        "dispenseRequest": {"numberOfRepeatsAllowed": 3, "expectedSupplyDuration": {"value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}}
    })
}

fn procedure(i: usize) -> Value {
    json!({
        "resourceType": "Procedure", "id": format!("proc-{i}"), "status": "completed",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213", "display": "Office visit"}]},
        "subject": subject(),
        "performedDateTime": date(10 + i % 500)
    })
}

fn bundle(resources: Vec<Value>) -> Value {
    json!({
        "resourceType": "Bundle", "type": "searchset", "total": resources.len(),
        "link": [{"relation": "self", "url": "https://fhir.example.org/r4/Condition?patient=synthetic-1"}],
        "entry": resources.into_iter().map(|r| {
            let url = format!("https://fhir.example.org/r4/{}/{}", r["resourceType"].as_str().unwrap_or(""), r["id"].as_str().unwrap_or(""));
            json!({"fullUrl": url, "resource": r, "search": {"mode": "match"}})
        }).collect::<Vec<_>>()
    })
}

/// A hook request with `resources` resources in its prefetch (plus the patient).
pub fn request(hook: &str, resources: usize) -> Value {
    let mut conditions = vec![json!({
        "resourceType": "Condition", "id": "lbp-1",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.50", "display": "Low back pain, unspecified"}]},
        "subject": subject(), "onsetDateTime": date(14)
    })];
    let (mut observations, mut medications, mut procedures) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..resources {
        match i % 10 {
            0..=3 => conditions.push(condition(i)),
            4..=7 => observations.push(observation(i)),
            8 => medications.push(medication(i)),
            _ => procedures.push(procedure(i)),
        }
    }
    let mut context = json!({"userId": "Practitioner/example", "patientId": "synthetic-1"});
    if hook != "patient-view" {
        context["draftOrders"] = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
            "resourceType": "ServiceRequest", "id": "mri-1", "status": "draft", "intent": "order",
            "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72148", "display": "MRI lumbar spine without contrast"}]},
            "subject": {"reference": "Patient/synthetic-1"}}}]});
        if hook == "order-select" {
            context["selections"] = json!(["ServiceRequest/mri-1"]);
        }
    }
    json!({
        "hook": hook,
        "hookInstance": "5b0c2c5e-8d5a-4a53-9f62-0f3a0c0e7a11",
        "fhirServer": "https://fhir.example.org/r4",
        "context": context,
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "synthetic-1", "gender": "female", "birthDate": "1980-04-12"},
            "conditions": bundle(conditions),
            "observations": bundle(observations),
            "medications": bundle(medications),
            "procedures": bundle(procedures),
            "serviceRequests": bundle(Vec::new()),
            "questionnaireResponses": bundle(Vec::new())
        }
    })
}
