//! Property tests: arbitrary JSON and arbitrary FHIR-shaped resources never make the request
//! parser or the assessment panic, and a well-formed request always gets a well-formed answer.

use crate::common::*;
use lbp_cds::content::Content;
use lbp_cds::evaluate::{EvaluateError, Options, evaluate_body};
use proptest::prelude::*;
use serde_json::{Value, json};

fn content() -> &'static Content {
    static CONTENT: std::sync::OnceLock<Content> = std::sync::OnceLock::new();
    CONTENT.get_or_init(|| Content::embedded().expect("content"))
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-zA-Z0-9 ./:|-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("patient-view"),
            Just("order-select"),
            Just("Bundle"),
            Just("Condition"),
            Just("Observation"),
            Just("ServiceRequest"),
            Just("MedicationRequest"),
            Just("Patient"),
            Just("OperationOutcome"),
            Just("2026-02-01"),
            Just("M54.50"),
            Just("G83.4"),
            Just("72148"),
            Just("Cel"),
            Just("[degF]"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        let keys = prop_oneof![
            Just("hook"),
            Just("hookInstance"),
            Just("context"),
            Just("prefetch"),
            Just("patientId"),
            Just("userId"),
            Just("resourceType"),
            Just("entry"),
            Just("resource"),
            Just("code"),
            Just("coding"),
            Just("system"),
            Just("valueQuantity"),
            Just("value"),
            Just("onsetDateTime"),
            Just("subject"),
            Just("reference"),
            Just("draftOrders"),
            Just("selections"),
            Just("conditions"),
            Just("link"),
            Just("status"),
            Just("id"),
        ]
        .prop_map(str::to_owned);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Resources with the right outline and arbitrary members.
fn fhir_resource() -> impl Strategy<Value = Value> {
    let resource_type = prop_oneof![
        Just("Condition"),
        Just("Observation"),
        Just("MedicationRequest"),
        Just("Procedure"),
        Just("ServiceRequest"),
        Just("Patient"),
        Just("Encounter"),
    ];
    let date = prop_oneof![
        Just(json!("2026-02-20")),
        Just(json!("2025")),
        Just(json!("2026-02")),
        Just(json!("2026-02-20T10:00:00Z")),
        Just(json!("not a date")),
        Just(json!(20260220)),
        Just(json!("9999-12-31")),
        Just(json!("0001-01-01")),
    ];
    let code = prop_oneof![
        Just(json!({"coding": [{"system": ICD10, "code": "M54.50"}]})),
        Just(json!({"coding": [{"system": ICD10, "code": "G83.4"}]})),
        Just(json!({"coding": [{"system": LOINC, "code": "8310-5"}]})),
        Just(json!({"coding": [{"system": LOINC, "code": "29463-7"}]})),
        Just(json!({"coding": [{"system": CPT, "code": "72148"}], "text": "MRI L-spine"})),
        Just(json!({"coding": [{"system": RXNORM, "code": "8640"}], "text": "prednisone"})),
        Just(json!({"coding": [null, {"code": null}]})),
        Just(json!("M54.50")),
    ];
    let quantity = prop_oneof![
        (-1e6f64..1e6).prop_map(|v| json!({"value": v, "code": "Cel"})),
        (-1e6f64..1e6).prop_map(|v| json!({"value": v, "code": "[degF]"})),
        (-1e6f64..1e6).prop_map(|v| json!({"value": v, "code": "kg"})),
        Just(json!({"value": "hot"})),
        Just(json!({"value": 1e308, "code": "K"})),
    ];
    (resource_type, date.clone(), date, code, quantity, arbitrary_json(), prop::bool::ANY).prop_map(
        |(kind, onset, authored, code, quantity, noise, same_patient)| {
            let subject = if same_patient { "Patient/pat-1" } else { "Patient/other" };
            json!({
                "resourceType": kind,
                "id": "r1",
                "status": "final",
                "intent": "order",
                "code": code.clone(),
                "medicationCodeableConcept": code,
                "subject": {"reference": subject},
                "onsetDateTime": onset,
                "effectiveDateTime": onset,
                "birthDate": onset,
                "authoredOn": authored,
                "valueQuantity": quantity,
                "dispenseRequest": {"expectedSupplyDuration": {"value": 1e9, "code": "a"}, "numberOfRepeatsAllowed": 4_000_000_000u64},
                "extension": noise,
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(body in arbitrary_json()) {
        let bytes = serde_json::to_vec(&body).unwrap();
        for service in &content().services {
            let _ = evaluate_body(content(), service, &bytes, TODAY, &Options::default());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let service = &content().services[0];
        prop_assert!(evaluate_body(content(), service, &bytes, TODAY, &Options::default()).is_err());
    }

    #[test]
    fn arbitrary_resources_are_read_or_skipped_and_the_answer_is_well_formed(
        resources in prop::collection::vec(fhir_resource(), 0..8),
        hook in prop_oneof![Just("patient-view"), Just("order-select"), Just("order-sign")],
    ) {
        let mut scenario = Scenario::new(hook, 50).low_back_pain(10).order(CPT, "72148", "MRI lumbar");
        let mut body = scenario.body();
        for key in ["conditions", "observations", "medications"] {
            body["prefetch"][key]["entry"] = json!(resources.iter().map(|r| json!({"resource": r})).collect::<Vec<_>>());
        }
        body["prefetch"]["patient"] = resources.iter().find(|r| r["resourceType"] == "Patient").cloned().unwrap_or(json!(null));
        scenario.drafts.extend(resources.iter().cloned());
        let service = content().services.iter().find(|s| s.hook.as_str() == hook).unwrap();
        let bytes = serde_json::to_vec(&body).unwrap();
        match evaluate_body(content(), service, &bytes, TODAY, &Options::default()) {
            Ok(outcome) => assert_valid_response(&serde_json::to_value(&outcome.response).unwrap()),
            Err(EvaluateError::MissingData(_)) => {}
            Err(other) => prop_assert!(false, "a well-formed request was refused: {other}"),
        }
    }
}

/// URL pieces an attacker would try: dot segments raw and encoded, backslashes, tabs, userinfo,
/// look-alike hosts and ports, queries and fragments.
fn url_attempt() -> impl Strategy<Value = String> {
    let scheme =
        prop_oneof![Just("http://"), Just("https://"), Just("HTTP://"), Just("http:/"), Just("http:\\\\"), Just("")];
    let authority = prop_oneof![
        Just("h.example:8080"),
        Just("H.EXAMPLE:8080"),
        Just("h.example:80"),
        Just("h.example"),
        Just("h.example@evil.example:8080"),
        Just("user:pw@h.example:8080"),
        Just("evil.example:8080"),
        Just("h.example.evil:8080"),
        Just("h.example:8080@evil.example"),
        Just("h.example:08080"),
    ];
    let segment = prop_oneof![
        Just("jwks"),
        Just("r4"),
        Just("a"),
        Just(".."),
        Just("."),
        Just("%2e"),
        Just("%2E%2e"),
        Just(".%2e"),
        Just("%2f"),
        Just("\\"),
        Just("..\\"),
        Just(".\t."),
        Just("jwks.."),
        Just("x@y"),
        Just(""),
        Just("%00"),
        Just(";x"),
        Just("?q=/.."),
        Just("#/../x"),
        Just("secret"),
        Just("%252e%252e"),
    ];
    (scheme, authority, prop::collection::vec(segment, 0..6))
        .prop_map(|(scheme, authority, segments)| format!("{scheme}{authority}/{}", segments.join("/")))
}

/// Where the HTTP client would really go, judged independently of `UrlScope`: the URL as the
/// WHATWG parser (the one reqwest uses) resolves it.
fn really_inside(raw: &str, path_prefix: &str) -> bool {
    let Ok(url) = url::Url::parse(raw) else { return false };
    url.scheme() == "http"
        && url.host_str() == Some("h.example")
        && url.port_or_known_default() == Some(8080)
        && url.username().is_empty()
        && url.password().is_none()
        && (url.path().starts_with(&format!("{path_prefix}/")) || url.path() == path_prefix)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// No generated `jku` or `next` link outside its prefix is ever admitted, and an admitted URL
    /// is exactly the one the client will fetch.
    #[test]
    fn no_url_outside_its_prefix_is_admitted(raw in url_attempt()) {
        use lbp_cds::outbound::UrlScope;
        for (prefix, path) in [("http://h.example:8080/jwks/", "/jwks"), ("http://h.example:8080/r4", "/r4")] {
            let scope = UrlScope::parse(prefix, true, true).unwrap();
            if let Ok(admitted) = scope.admit(&raw, true) {
                prop_assert!(really_inside(&raw, path), "{raw:?} admitted under {prefix}");
                prop_assert_eq!(admitted, url::Url::parse(&raw).unwrap());
            }
        }
    }
}
