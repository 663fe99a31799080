//! Black-box tests of the HTTP service: discovery, invocation, prefetch states, and every 4xx.

use crate::common::*;
use lbp_cds::config::Settings;
use serde_json::{Value, json};

#[tokio::test]
async fn discovery_lists_three_services_with_2_0_prefetch_templates() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/cds-services").await;
    assert_eq!(status, 200);
    let services = body["services"].as_array().expect("services");
    let mut pairs: Vec<(String, String)> = services
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), s["hook"].as_str().unwrap().to_owned()))
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("lbp-order-select".to_owned(), "order-select".to_owned()),
            ("lbp-order-sign".to_owned(), "order-sign".to_owned()),
            ("lbp-patient-view".to_owned(), "patient-view".to_owned()),
        ]
    );
    for service in services {
        assert!(service["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(service["title"].as_str().is_some_and(|d| !d.is_empty()));
        let prefetch = service["prefetch"].as_object().expect("prefetch");
        for key in ["patient", "conditions", "observations", "medications", "procedures", "serviceRequests"] {
            let template = prefetch[key].as_str().unwrap_or_else(|| panic!("prefetch key {key}"));
            assert!(template.contains("{{context.patientId}}"), "{key}: {template}");
            assert!(!template.contains("today()"), "3.0-only token in {key}");
        }
        assert_no_empty_values(service, "service");
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/health").await, (200, json!({"status": "ok"})));
    let (status, ready) = app.get("/ready").await;
    assert_eq!(status, 200);
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["cardTypes"], lbp_cds::content::CardType::ALL.len());
}

#[tokio::test]
async fn unknown_service_and_path_are_404_with_an_operation_outcome() {
    let app = TestApp::spawn().await;
    let body = Scenario::new("patient-view", 45).low_back_pain(7).body();
    let (status, outcome) = app.post("no-such-service", &body).await;
    assert_eq!(status, 404);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("no-such-service"));
    let (status, _) = app.get("/nothing-here").await;
    assert_eq!(status, 404);
}

/// Each client mistake gets a 400 whose OperationOutcome names the problem.
#[tokio::test]
async fn client_mistakes_are_400_naming_the_problem() {
    let app = TestApp::spawn().await;
    let good = Scenario::new("order-select", 45).low_back_pain(7).order(CPT, "72148", "MRI").body();
    let with = |path: &[&str], value: Option<Value>| {
        let mut body = good.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut target = &mut body;
        for key in parents {
            target = &mut target[*key];
        }
        match value {
            Some(value) => target[*last] = value,
            None => {
                target.as_object_mut().unwrap().remove(*last);
            }
        }
        serde_json::to_vec(&body).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed JSON", b"{\"hook\": \"order-select\", ".to_vec(), "not valid JSON"),
        ("not an object", b"[1, 2, 3]".to_vec(), "does not match"),
        ("missing hook", with(&["hook"], None), "`hook`"),
        ("missing hookInstance", with(&["hookInstance"], None), "`hookInstance`"),
        ("hookInstance of the wrong type", with(&["hookInstance"], Some(json!(42))), "hookInstance"),
        ("hookInstance with a newline", with(&["hookInstance"], Some(json!("abc\ndef"))), "hookInstance"),
        ("missing context", with(&["context"], None), "`context`"),
        ("context of the wrong type", with(&["context"], Some(json!("patient"))), "context"),
        ("missing patientId", with(&["context", "patientId"], None), "context.patientId"),
        (
            "patientId that is not a FHIR id",
            with(&["context", "patientId"], Some(json!("../../etc"))),
            "context.patientId",
        ),
        ("missing userId", with(&["context", "userId"], None), "context.userId"),
        ("missing selections", with(&["context", "selections"], None), "context.selections"),
        (
            "selection that is not a reference",
            with(&["context", "selections"], Some(json!(["just-an-id"]))),
            "context.selections",
        ),
        ("missing draftOrders", with(&["context", "draftOrders"], None), "context.draftOrders"),
        ("wrong hook for the service", with(&["hook"], Some(json!("patient-view"))), "does not match service"),
        ("unknown hook", with(&["hook"], Some(json!("encounter-discharge"))), "does not match service"),
        (
            "fhirAuthorization without fhirServer",
            with(&["fhirAuthorization"], Some(json!({"access_token": "abc", "token_type": "Bearer"}))),
            "fhirServer",
        ),
        ("fhirServer that is not a URL", with(&["fhirServer"], Some(json!("file:///etc/passwd"))), "fhirServer"),
    ];
    for (name, body, needle) in cases {
        let (status, outcome) = app.post_raw("lbp-order-select", body).await;
        assert_eq!(status, 400, "{name}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{name}");
        let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(diagnostics.contains(needle), "{name}: `{diagnostics}` should mention `{needle}`");
    }
}

#[tokio::test]
async fn required_data_missing_without_fhir_server_is_412() {
    let app = TestApp::spawn().await;
    let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]});
    let base = Scenario::new("patient-view", 45).low_back_pain(7);
    let cases = vec![
        ("conditions absent", base.clone().prefetch_override("conditions", None).body()),
        ("patient absent", base.clone().prefetch_override("patient", None).body()),
        ("conditions an OperationOutcome", base.clone().prefetch_override("conditions", Some(outcome.clone())).body()),
        ("no prefetch at all", {
            let mut body = base.body();
            body.as_object_mut().unwrap().remove("prefetch");
            body
        }),
        ("fhirServer given but fetching not available", {
            let mut body = base.clone().prefetch_override("conditions", None).body();
            body["fhirServer"] = json!("https://fhir.example.org/r4");
            body
        }),
    ];
    for (name, body) in cases {
        let (status, response) = app.post("lbp-patient-view", &body).await;
        assert_eq!(status, 412, "{name}: {response}");
        assert_eq!(response["resourceType"], "OperationOutcome");
        assert!(response["issue"][0]["diagnostics"].as_str().unwrap().contains('`'), "{name}: names the key");
    }
}

#[tokio::test]
async fn every_prefetch_state_is_read_as_the_spec_says() {
    let app = TestApp::spawn().await;
    let base = Scenario::new("order-select", 45).low_back_pain(14).order(CPT, "72148", "MRI lumbar spine");
    let empty = json!({"resourceType": "Bundle", "type": "searchset", "total": 0});
    let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]});
    let mut paged = base.body()["prefetch"]["conditions"].clone();
    paged["link"] = json!([{"relation": "next", "url": "https://fhir.example.org/r4/Condition?patient=pat-1&_page=2"}]);
    let cases: Vec<(&str, Scenario, &str, &str)> = vec![
        ("all present", base.clone(), "imaging-not-indicated", "loaded"),
        (
            "observations null",
            base.clone().prefetch_override("observations", Some(Value::Null)),
            "imaging-not-indicated",
            "null",
        ),
        (
            "observations an empty Bundle",
            base.clone().prefetch_override("observations", Some(empty)),
            "imaging-not-indicated",
            "loaded",
        ),
        (
            "observations absent",
            base.clone().prefetch_override("observations", None),
            "imaging-conditional",
            "not-provided",
        ),
        (
            "medications an OperationOutcome",
            base.clone().prefetch_override("medications", Some(outcome)),
            "imaging-conditional",
            "not-provided",
        ),
        (
            "conditions paginated",
            base.clone().prefetch_override("conditions", Some(paged)),
            "imaging-conditional",
            "first-page-only",
        ),
    ];
    for (name, scenario, card_type, _status) in cases {
        let response = app.cards("lbp-order-select", &scenario.body()).await;
        let imaging: Vec<String> = card_types(&response).into_iter().filter(|t| t.starts_with("imaging-")).collect();
        assert_eq!(imaging, vec![card_type.to_owned()], "{name}: {response}");
        let not_loaded = response["extension"]["lbp-cds"]["prefetch"].as_array();
        match card_type {
            "imaging-conditional" => {
                let detail = card(&response, card_type)["detail"].as_str().unwrap();
                assert!(detail.contains("Data notes"), "{name}: the card must say what is missing: {detail}");
                assert!(not_loaded.is_some_and(|keys| !keys.is_empty()), "{name}: extension reports the key");
                assert!(response.get("systemActions").is_none(), "{name}: no rating on insufficient data");
            }
            _ => assert!(not_loaded.is_none(), "{name}: nothing to report: {response}"),
        }
    }
}

#[tokio::test]
async fn imaging_warning_offers_suggestions_overrides_and_a_pama_rating() {
    let app = TestApp::spawn().await;
    let scenario =
        Scenario::new("order-select", 45).low_back_pain(14).order(CPT, "72148", "MRI lumbar spine wo contrast");
    let order_ref = scenario.selections[0].clone();
    let response = app.cards("lbp-order-select", &scenario.body()).await;
    let warning = card(&response, "imaging-not-indicated");
    assert_eq!(warning["indicator"], "warning");
    assert_eq!(warning["selectionBehavior"], "at-most-one");
    let suggestions = warning["suggestions"].as_array().unwrap();
    assert_eq!(suggestions.len(), 2);
    let actions: Vec<(&str, Option<&str>)> = suggestions
        .iter()
        .flat_map(|s| s["actions"].as_array().unwrap())
        .map(|a| (a["type"].as_str().unwrap(), a["resourceId"].as_str()))
        .collect();
    assert!(actions.contains(&("delete", Some(order_ref.as_str()))), "{actions:?}");
    let referral = suggestions
        .iter()
        .flat_map(|s| s["actions"].as_array().unwrap())
        .find(|a| a["type"] == "create")
        .expect("a create action");
    assert_eq!(referral["resource"]["resourceType"], "ServiceRequest");
    assert_eq!(referral["resource"]["subject"]["reference"], "Patient/pat-1");
    assert_eq!(referral["resource"]["code"]["coding"][0]["code"], "91251008");
    let reasons: Vec<&str> =
        warning["overrideReasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    for reason in
        ["red-flag-not-documented", "symptoms-longer-than-recorded", "specialist-request", "patient-specific-reason"]
    {
        assert!(reasons.contains(&reason), "override reason {reason} in {reasons:?}");
    }
    let detail = warning["detail"].as_str().unwrap();
    assert!(detail.contains(&order_ref) && detail.contains("2 weeks") && detail.contains("variant 1"), "{detail}");

    assert_eq!(pama_ratings(&response), vec![(order_ref.clone(), "not-appropriate".to_owned())]);
    let action = &response["systemActions"][0];
    assert_eq!(action["type"], "update");
    let urls: Vec<&str> =
        action["resource"]["extension"].as_array().unwrap().iter().map(|e| e["url"].as_str().unwrap()).collect();
    for url in [
        "http://fhir.org/argonaut/Extension/pama-rating",
        "http://fhir.org/argonaut/Extension/pama-rating-qcdsm-consulted",
        "http://fhir.org/argonaut/Extension/pama-rating-consult-id",
    ] {
        assert!(urls.contains(&url), "{url} in {urls:?}");
    }
    assert!(response["extension"].get("systemActions").is_none(), "mirror is off by default");
}

#[tokio::test]
async fn the_system_actions_mirror_is_a_setting() {
    let app =
        TestApp::spawn_with(Settings { fixed_today: Some(TODAY), pama_extension_mirror: true, ..Settings::default() })
            .await;
    let scenario = Scenario::new("order-sign", 45).low_back_pain(14).order(CPT, "72148", "MRI");
    let response = app.cards("lbp-order-sign", &scenario.body()).await;
    assert_eq!(response["extension"]["systemActions"], response["systemActions"]);
}

#[tokio::test]
async fn a_repeated_call_returns_the_same_card_uuids() {
    let app = TestApp::spawn().await;
    let body = Scenario::new("order-sign", 45).low_back_pain(14).order(CPT, "72148", "MRI").body();
    let first = app.cards("lbp-order-sign", &body).await;
    let second = app.cards("lbp-order-sign", &body).await;
    assert_eq!(first["cards"][0]["uuid"], second["cards"][0]["uuid"]);
    let mut other = body.clone();
    other["hookInstance"] = json!("0a6f3c2e-2f47-4d0b-9d5e-0c8c1b4e5a11");
    let third = app.cards("lbp-order-sign", &other).await;
    assert_ne!(first["cards"][0]["uuid"], third["cards"][0]["uuid"]);
}

#[tokio::test]
async fn unreadable_resources_are_skipped_and_reported_not_fatal() {
    let app = TestApp::spawn().await;
    let mut scenario = Scenario::new("order-select", 45).low_back_pain(14).order(CPT, "72148", "MRI");
    scenario.conditions.push(json!({"resourceType": "Condition", "id": "broken-1", "code": "not-an-object", "subject": {"reference": "Patient/pat-1"}}));
    scenario.conditions.push(json!({"resourceType": "Condition", "id": "broken-2", "clinicalStatus": "active", "subject": {"reference": "Patient/pat-1"}}));
    scenario.conditions.push(json!({"resourceType": "Condition", "id": "broken-3", "onsetDateTime": 12345, "subject": {"reference": "Patient/pat-1"}}));
    scenario.observations.push(json!({"resourceType": "Observation", "id": "fever-bad-value", "status": "final", "code": {"coding": [{"system": LOINC, "code": "8310-5"}]}, "effectiveDateTime": days_ago(1), "valueQuantity": {"value": "39.5", "code": "Cel"}}));
    scenario.conditions.push(json!({"resourceType": "Condition", "id": "other-patient", "code": {"coding": [{"system": ICD10, "code": "G83.4"}]}, "subject": {"reference": "Patient/someone-else"}}));
    scenario.conditions.push(json!("not even an object"));
    scenario
        .observations
        .push(json!({"resourceType": "Observation", "id": "bad-status", "status": "bogus", "code": {"text": "x"}}));
    let response = app.cards("lbp-order-select", &scenario.body()).await;
    // The other patient's cauda equina syndrome must not make a red flag; the unreadable
    // resources might have held one, so the order is not called "not indicated".
    assert!(card_types(&response).iter().all(|t| !t.starts_with("red-flag-")), "{response}");
    assert!(card_types(&response).contains(&"imaging-conditional".to_owned()), "{response}");
    let detail = card(&response, "imaging-conditional")["detail"].as_str().unwrap();
    assert!(detail.contains("could not be read"), "{detail}");
    let report = &response["extension"]["lbp-cds"];
    let skipped: Vec<&str> = report["skippedResources"]
        .as_array()
        .expect("skipped resources reported")
        .iter()
        .map(|s| s["id"].as_str().unwrap_or("(no id)"))
        .collect();
    assert_eq!(skipped, vec!["broken-1", "broken-2", "broken-3", "(no id)", "fever-bad-value", "bad-status"]);
    assert_eq!(report["ignoredResources"], 1);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_the_service_keeps_serving() {
    let app =
        TestApp::spawn_with(Settings { fixed_today: Some(TODAY), body_limit_bytes: 64 * 1024, ..Settings::default() })
            .await;
    let mut scenario = Scenario::new("patient-view", 45).low_back_pain(7);
    scenario.conditions.push(json!({"resourceType": "Condition", "id": "big", "note": [{"text": "x".repeat(100 * 1024)}], "subject": {"reference": "Patient/pat-1"}}));
    let (status, _) = app.post("lbp-patient-view", &scenario.body()).await;
    assert_eq!(status, 413);
    let small = Scenario::new("patient-view", 45).low_back_pain(7).body();
    let (status, _) = app.post("lbp-patient-view", &small).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn cors_preflight_allows_authorization_and_content_type() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/cds-services/lbp-patient-view"))
        .header("origin", "https://sandbox.cds-hooks.org")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers();
    let allowed = headers["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
}

/// Every stored fixture through the real server, against the expectations in
/// `fixtures/expected.json` (written from the rules, with the guideline for each).
#[tokio::test]
async fn every_fixture_gives_its_expected_answer() {
    let app = TestApp::spawn().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(root.join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected["today"], TODAY.to_string());
    let mut failures = Vec::new();
    let requests = expected["requests"].as_object().unwrap();
    assert!(requests.len() >= 30, "fixtures for every card type and prefetch state");
    for (name, want) in requests {
        let body = std::fs::read(root.join("requests").join(format!("{name}.json"))).unwrap();
        let service = want["service"].as_str().unwrap();
        let (status, response) = app.post_raw(service, body).await;
        if status != want["status"].as_u64().unwrap() as u16 {
            failures.push(format!("{name}: status {status}, want {}: {response}", want["status"]));
            continue;
        }
        if status != 200 {
            continue;
        }
        assert_valid_response(&response);
        let want_cards: Vec<String> =
            want["cards"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        let got_cards = card_types(&response);
        if got_cards != want_cards {
            failures.push(format!("{name}: cards {got_cards:?}, want {want_cards:?} ({})", want["why"]));
        }
        let mut want_pama: Vec<(String, String)> = want["pama"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect())
            .unwrap_or_default();
        want_pama.sort();
        if pama_ratings(&response) != want_pama {
            failures.push(format!("{name}: PAMA {:?}, want {want_pama:?}", pama_ratings(&response)));
        }
        let want_cautions: Vec<String> =
            want["nsaidCautions"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
        if nsaid_cautions(&response) != want_cautions {
            failures.push(format!("{name}: NSAID cautions {:?}, want {want_cautions:?}", nsaid_cautions(&response)));
        }
    }
    for (file, want) in expected["bad"].as_object().unwrap() {
        let body = std::fs::read(root.join("bad").join(file)).unwrap();
        let (status, response) = app.post_raw(want["service"].as_str().unwrap(), body).await;
        if status != want["status"].as_u64().unwrap() as u16 {
            failures.push(format!("bad/{file}: status {status}, want {}: {response}", want["status"]));
        } else if response["resourceType"] != "OperationOutcome" {
            failures.push(format!("bad/{file}: not an OperationOutcome: {response}"));
        }
    }
    assert!(failures.is_empty(), "fixture failures:\n{}", failures.join("\n"));
}
