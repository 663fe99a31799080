//! Decision tables for recognising what EHRs actually send: SNOMED CT descendants of the low
//! back pain concepts, and medication orders coded as RxNorm clinical or branded drugs and packs
//! (SCD, SBD, GPCK, BPCK), brand names, `medicationReference`s and local codes with text. One row
//! per way of coding, each naming where that coding is seen; every row goes through the real
//! server over HTTP. And the drug classes themselves: each lists every ingredient of its class
//! marketed in the US.

use crate::common::*;
use serde_json::{Value, json};

struct Row {
    rule: &'static str,
    source: &'static str,
    scenario: Scenario,
    /// Card types of the checked family, sorted.
    cards: &'static [&'static str],
    /// Text the first card of the family must have in its summary (the variant it chose).
    summary: Option<&'static str>,
}

fn row(rule: &'static str, source: &'static str, scenario: Scenario, cards: &'static [&'static str]) -> Row {
    Row { rule, source, scenario, cards, summary: None }
}

fn saying(mut row: Row, summary: &'static str) -> Row {
    row.summary = Some(summary);
    row
}

async fn run(family: &str, rows: Vec<Row>) {
    let app = TestApp::spawn().await;
    let mut failures = Vec::new();
    for row in rows {
        let response = app.cards(row.scenario.service(), &row.scenario.body()).await;
        let got: Vec<String> = card_types(&response).into_iter().filter(|t| t.starts_with(family)).collect();
        let want: Vec<String> = row.cards.iter().map(|c| (*c).to_owned()).collect();
        if got != want {
            failures.push(format!("{} [{}]: cards {got:?}, want {want:?}", row.rule, row.source));
            continue;
        }
        if let Some(expected) = row.summary {
            let summary = card(&response, row.cards[0])["summary"].as_str().unwrap_or_default().to_owned();
            if !summary.contains(expected) {
                failures.push(format!("{} [{}]: summary {summary:?} lacks {expected:?}", row.rule, row.source));
            }
        }
    }
    assert!(failures.is_empty(), "decision table rows failed:\n{}", failures.join("\n"));
}

fn mri(scenario: Scenario) -> Scenario {
    scenario.order(CPT, "72148", "MRI lumbar spine without contrast")
}

/// A selected draft MedicationRequest with any medication members (a reference, contained
/// resources, a local code).
fn draft_medication(mut scenario: Scenario, medication: Value) -> Scenario {
    let id = format!("medorder-{}", scenario.drafts.len() + 1);
    let mut resource = json!({
        "resourceType": "MedicationRequest",
        "id": id,
        "status": "draft",
        "intent": "order",
        "subject": {"reference": format!("Patient/{}", scenario.patient_id)}
    });
    if let (Some(target), Value::Object(extra)) = (resource.as_object_mut(), medication) {
        target.extend(extra);
    }
    scenario.selections.push(format!("MedicationRequest/{id}"));
    scenario.drafts.push(resource);
    scenario
}

fn local_text(scenario: Scenario, text: &str) -> Scenario {
    draft_medication(
        scenario,
        json!({"medicationCodeableConcept": {"coding": [{"system": "urn:oid:1.2.3.4.6", "code": "F-1"}], "text": text}}),
    )
}

fn rxnorm_without_text(scenario: Scenario, rxcui: &str) -> Scenario {
    // A bare code: only the ingredient map can tell what it is.
    draft_medication(scenario, json!({"medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}]}}))
}

#[tokio::test]
async fn snomed_descendants_and_lumbar_codes_make_an_episode() {
    let os = |age| Scenario::new("order-sign", age);
    run(
        "imaging-",
        vec![
            row(
                "Chronic low back pain 278860009 recorded yesterday -> chronic (12 weeks or more) -> conditional",
                "lbp-reference T3; population-simulator problem lists",
                mri(os(45).condition(SNOMED, "278860009", 1)),
                &["imaging-conditional"],
            ),
            row(
                "Acute low back pain 278862001, 2 weeks -> not indicated",
                "C-CDA problem list samples; ACR LBP variant 1",
                mri(os(45).condition(SNOMED, "278862001", 14)),
                &["imaging-not-indicated"],
            ),
            row(
                "Lumbar radiculopathy 128196005, 2 weeks -> not indicated",
                "ACR LBP variant 1 (with or without radiculopathy)",
                mri(os(45).condition(SNOMED, "128196005", 14)),
                &["imaging-not-indicated"],
            ),
            row(
                "Prolapsed lumbar disc 76107001, 3 weeks -> not indicated",
                "ACR LBP variant 1",
                mri(os(45).condition(SNOMED, "76107001", 21)),
                &["imaging-not-indicated"],
            ),
            row(
                "Spinal stenosis of lumbar region 18347007, 2 weeks -> not indicated",
                "ACR LBP variant 1",
                mri(os(60).condition(SNOMED, "18347007", 14)),
                &["imaging-not-indicated"],
            ),
            row(
                "ICD-10-CM M51.A1 (FY2025 lumbar annulus defect), 2 weeks -> not indicated",
                "ICD-10-CM FY2025",
                mri(os(45).condition(ICD10, "M51.A1", 14)),
                &["imaging-not-indicated"],
            ),
            row(
                "Chronic back pain 134407002 alone is not low back pain -> conditional, no diagnosis",
                "lbp-reference T3 (134407002 is any level of the back)",
                mri(os(45).condition(SNOMED, "134407002", 14)),
                &["imaging-conditional"],
            ),
        ],
    )
    .await;
    let pv = |age| Scenario::new("patient-view", age);
    run(
        "red-flag-",
        vec![
            row(
                "Retention of urine (SNOMED 267064002) 3 days ago -> cauda equina red flag",
                "ACR LBP variant 4; lbp-reference T1 CES_SX",
                pv(50).low_back_pain(7).condition(SNOMED, "267064002", 3),
                &["red-flag-cauda-equina"],
            ),
            row(
                "Drug-induced retention of urine R33.0 is excluded from the cauda equina symptoms",
                "clinical convention: a drug explains it",
                pv(50).low_back_pain(7).condition(ICD10, "R33.0", 3),
                &[],
            ),
            row(
                "Dependent drug abuse 6525002 -> infection red flag (possible IV drug use) within its 365-day window",
                "CMS166 IV Drug Abuse; population-simulator problem lists",
                pv(33).low_back_pain(14).condition(SNOMED, "6525002", 30),
                &["red-flag-infection"],
            ),
            row(
                "Fracture of vertebral column 15724005 last month -> fracture red flag",
                "ACR LBP variant 6",
                pv(50).low_back_pain(14).condition(SNOMED, "15724005", 30),
                &["red-flag-fracture"],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn medications_are_recognised_by_ingredient_whatever_the_coding() {
    let os = |age| Scenario::new("order-select", age).low_back_pain(14);
    run("medication-advice", vec![
        saying(row("RxNorm SCD 1049221 (APAP/oxycodone) without text -> opioid", "RxNorm SCD; population-simulator MedicationRequests", rxnorm_without_text(os(45), "1049221"), &["medication-advice"]), "Opioid"),
        saying(row("RxNorm SBD 1049625 [Percocet] without text -> opioid", "RxNorm SBD; population-simulator MedicationRequests", rxnorm_without_text(os(45), "1049625"), &["medication-advice"]), "Opioid"),
        saying(row("RxNorm SCD 1860154 (oxycodone ER) without text -> opioid", "RxNorm SCD; population-simulator MedicationRequests", rxnorm_without_text(os(45), "1860154"), &["medication-advice"]), "Opioid"),
        saying(row("ingredient added to complete the class: levorphanol 6378 -> opioid", "OMTK RxNav extract (opioid analgesic ingredients)", rxnorm_without_text(os(45), "6378"), &["medication-advice"]), "Opioid"),
        saying(row("brand name only, local code: 'Norco 5-325 tab' -> opioid", "brand name (convention)", local_text(os(45), "Norco 5-325 tab"), &["medication-advice"]), "Opioid"),
        saying(row("brand name only, local code: 'VALIUM 5MG TAB' -> benzodiazepine", "brand name (convention)", local_text(os(45), "VALIUM 5MG TAB"), &["medication-advice"]), "Benzodiazepine"),
        saying(row("local code with ingredient text: 'Midazolam 2 mg/2 mL' -> benzodiazepine (class completed)", "benzodiazepine class", local_text(os(45), "Midazolam 2 mg/2 mL"), &["medication-advice"]), "Benzodiazepine"),
        row("local code with text of another drug: 'Acetaminophen 500 mg' -> no card", "not in any class", local_text(os(45), "Acetaminophen 500 mg"), &[]),
        saying(row("medicationReference to a contained Medication coded SCD 1049221 -> opioid", "FHIR R4 MedicationRequest.medicationReference (contained)", draft_medication(os(45), json!({
            "contained": [{"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": RXNORM, "code": "1049221"}]}}],
            "medicationReference": {"reference": "#m1"}
        })), &["medication-advice"]), "Opioid"),
        saying(row("medicationReference to a contained Medication with a local code and an ingredient 21949 -> muscle relaxant", "FHIR R4 Medication.ingredient.itemCodeableConcept", draft_medication(os(45), json!({
            "contained": [{"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": "urn:oid:1.2.3.4.6", "code": "X9"}], "text": "Formulary item X9"},
                           "ingredient": [{"itemCodeableConcept": {"coding": [{"system": RXNORM, "code": "21949"}]}}]}],
            "medicationReference": {"reference": "#m1", "display": "Formulary item X9"}
        })), &["medication-advice"]), "Muscle relaxant"),
        saying(row("another contained resource of an odd shape beside the Medication does not spoil the order", "FHIR R4 contained resources", draft_medication(os(45), json!({
            "contained": [{"resourceType": "Basic", "id": "b1", "code": "not-a-concept"},
                          {"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": RXNORM, "code": "1049221"}]}}],
            "medicationReference": {"reference": "#m1"}
        })), &["medication-advice"]), "Opioid"),
        row("medicationReference to a contained Medication that is not there -> no card", "FHIR R4 (unresolvable reference)", draft_medication(os(45), json!({"medicationReference": {"reference": "#missing"}})), &[]),
        // Packs (issue 11): generic (GPCK) and branded (BPCK), bare codes only the map can place.
        saying(row("RxNorm GPCK 1740007 {2 (fentanyl 0.6 MG/ACTUAT Mucosal Spray) } Pack without text -> opioid", "RxNorm GPCK; CDC Opioid CPG IG value set (2025-02-24)", rxnorm_without_text(os(45), "1740007"), &["medication-advice"]), "Opioid"),
        saying(row("RxNorm BPCK 1740008 [Subsys 1200 MCG] without text -> opioid", "RxNorm BPCK; CDC Opioid CPG IG value set (2025-02-24)", rxnorm_without_text(os(45), "1740008"), &["medication-advice"]), "Opioid"),
        saying(row("RxNorm GPCK 2272621 {1 (0.1 ML) (diazepam 100 MG/ML Nasal Spray) } Pack without text -> benzodiazepine", "RxNorm GPCK; CDC benzodiazepine value set (2025-02-24)", rxnorm_without_text(os(45), "2272621"), &["medication-advice"]), "Benzodiazepine"),
        saying(row("RxNorm BPCK 2272622 [Valtoco 10 MG Dose Kit] without text -> benzodiazepine", "RxNorm BPCK; CDC benzodiazepine value set (2025-02-24)", rxnorm_without_text(os(45), "2272622"), &["medication-advice"]), "Benzodiazepine"),
        saying(row("medicationReference to a contained Medication coded BPCK 2272636 [Valtoco 15 MG Dose Kit] -> benzodiazepine", "FHIR R4 MedicationRequest.medicationReference; RxNorm BPCK", draft_medication(os(45), json!({
            "contained": [{"resourceType": "Medication", "id": "kit", "code": {"coding": [{"system": RXNORM, "code": "2272636"}]}}],
            "medicationReference": {"reference": "#kit"}
        })), &["medication-advice"]), "Benzodiazepine"),
        saying(row("local code with a pack's RxNorm name as text: '{2 (fentanyl 0.8 MG/ACTUAT Mucosal Spray) } Pack' -> opioid", "RxNorm GPCK name; local formulary code", local_text(os(45), "{2 (fentanyl 0.8 MG/ACTUAT Mucosal Spray) } Pack"), &["medication-advice"]), "Opioid"),
        // The class completed with benzhydrocodone: by SBD code and by brand name.
        saying(row("RxNorm SBD 2001364 [Apadaz] without text -> opioid (benzhydrocodone)", "RxNorm SBD; CDC Opioid CPG IG value set; OMTK MME table (ingredient 2001352)", rxnorm_without_text(os(45), "2001364"), &["medication-advice"]), "Opioid"),
        saying(row("brand only, local code: 'APADAZ 6.12-325 MG TAB' -> opioid", "brand name (CDC value set SBD name)", local_text(os(45), "APADAZ 6.12-325 MG TAB"), &["medication-advice"]), "Opioid"),
        saying(row("RxNorm SCD 2118728 (acetaminophen / benzhydrocodone 4.08 MG) without text -> opioid", "RxNorm SCD; CDC Opioid CPG IG value set", rxnorm_without_text(os(45), "2118728"), &["medication-advice"]), "Opioid"),
        row("a pack of another class: BPCK 877300 [Actonel 35] (risedronate) -> no medication advice", "RxNorm BPCK; osteoporosis treatment, not an opioid, benzodiazepine or muscle relaxant", rxnorm_without_text(os(45), "877300"), &[]),
    ])
    .await;
}

#[tokio::test]
async fn a_medication_reference_resolves_to_a_medication_beside_the_orders() {
    let app = TestApp::spawn().await;
    let mut scenario = draft_medication(
        Scenario::new("order-select", 45).low_back_pain(14),
        json!({"medicationReference": {"reference": "Medication/tram"}}),
    );
    scenario.drafts.push(json!({"resourceType": "Medication", "id": "tram", "code": {"coding": [{"system": RXNORM, "code": "10689", "display": "tramadol"}]}}));
    let response = app.cards(scenario.service(), &scenario.body()).await;
    assert_eq!(card_types(&response), ["medication-advice"], "{response}");
    assert!(card(&response, "medication-advice")["summary"].as_str().unwrap().starts_with("Opioid"));
}

#[tokio::test]
async fn a_prefetched_medication_names_the_drug_of_a_medication_request_on_record() {
    // Systemic corticosteroids for 120 days, ordered through medicationReference to a Medication
    // returned beside the MedicationRequests (`_include`), make the fracture red flag; the same
    // course as a topical cream does not.
    let app = TestApp::spawn().await;
    let course = |medication: &str| {
        json!({
            "resourceType": "MedicationRequest", "id": "steroid", "status": "active", "intent": "order",
            "medicationReference": {"reference": format!("Medication/{medication}")},
            "subject": {"reference": "Patient/pat-1"},
            "authoredOn": days_ago(130),
            "dispenseRequest": {"numberOfRepeatsAllowed": 3, "expectedSupplyDuration": {"value": 30, "unit": "days", "code": "d"}}
        })
    };
    let medications = |request: Value, medication: Value| {
        json!({"resourceType": "Bundle", "type": "searchset", "entry": [
            {"resource": request, "search": {"mode": "match"}},
            {"resource": medication, "search": {"mode": "include"}}
        ]})
    };
    let prednisone =
        json!({"resourceType": "Medication", "id": "pred", "code": {"coding": [{"system": RXNORM, "code": "312617"}]}});
    let scenario = Scenario::new("patient-view", 60)
        .low_back_pain(14)
        .prefetch_override("medications", Some(medications(course("pred"), prednisone)));
    let response = app.cards(scenario.service(), &scenario.body()).await;
    assert!(card_types(&response).contains(&"red-flag-fracture".to_owned()), "{response}");

    let cream = json!({"resourceType": "Medication", "id": "cream", "code": {"coding": [{"system": RXNORM, "code": "106258"}], "text": "Hydrocortisone 10 MG/ML Topical Cream"}});
    let scenario = Scenario::new("patient-view", 60)
        .low_back_pain(14)
        .prefetch_override("medications", Some(medications(course("cream"), cream)));
    let response = app.cards(scenario.service(), &scenario.body()).await;
    assert!(!card_types(&response).iter().any(|t| t.starts_with("red-flag-")), "{response}");
    assert!(
        response["extension"]["lbp-cds"].get("ignoredResources").is_none(),
        "the Medication is used, not ignored: {response}"
    );
}

#[tokio::test]
async fn every_response_with_an_episode_says_what_was_understood() {
    let app = TestApp::spawn().await;
    let scenario = Scenario::new("patient-view", 45).condition(SNOMED, "278860009", 20).condition(ICD10, "M54.50", 10);
    let response = app.cards(scenario.service(), &scenario.body()).await;
    let episode = &response["extension"]["lbp-cds"]["episode"];
    assert_eq!(episode["start"], days_ago(20), "{response}");
    assert_eq!(episode["durationDays"], 12 * 7, "a chronic diagnosis means at least 12 weeks: {response}");
    assert_eq!(episode["chronic"], true);
    assert_eq!(episode["conditions"], json!(["Condition/cond-1", "Condition/cond-2"]));

    let scenario = Scenario::new("patient-view", 45).low_back_pain(10);
    let response = app.cards(scenario.service(), &scenario.body()).await;
    let episode = &response["extension"]["lbp-cds"]["episode"];
    assert_eq!((episode["durationDays"].as_i64(), episode["chronic"].as_bool()), (Some(10), Some(false)), "{response}");

    for scenario in [
        Scenario::new("patient-view", 45).condition(SNOMED, "134407002", 10),
        Scenario::new("patient-view", 12).low_back_pain(10),
        mri(Scenario::new("order-select", 45)),
    ] {
        let response = app.cards(scenario.service(), &scenario.body()).await;
        assert!(response["extension"]["lbp-cds"].get("episode").is_none(), "no episode: {response}");
    }
}

#[tokio::test]
async fn a_steroid_course_ordered_by_brand_or_product_makes_the_fracture_red_flag() {
    let app = TestApp::spawn().await;
    let course = json!({
        "authoredOn": days_ago(130),
        "dispenseRequest": {"numberOfRepeatsAllowed": 3, "expectedSupplyDuration": {"value": 30, "unit": "days", "code": "d"}}
    });
    let pv = || Scenario::new("patient-view", 60).low_back_pain(14);
    let rows = [
        (
            "brand only, with a code the map does not know: MEDROL 4MG TAB",
            pv().medication("local-1", "MEDROL 4MG TAB", course.clone()),
            true,
        ),
        ("RxNorm SCD 312617 (prednisone 5 MG) without text", pv().medication("312617", "", course.clone()), true),
        (
            "a methylprednisolone dose pack by its RxNorm GPCK name, with a local code",
            pv().medication("local-3", "{21 (methylprednisolone 4 MG Oral Tablet) } Pack", course.clone()),
            true,
        ),
        (
            "deflazacort (class completed for issue 11), local code with text",
            pv().medication("local-4", "Deflazacort 6 MG Oral Tablet", course.clone()),
            true,
        ),
        (
            "another drug, code unknown to the map: Lisinopril 10 mg",
            pv().medication("local-2", "Lisinopril 10 mg", course.clone()),
            false,
        ),
    ];
    for (rule, mut scenario, fracture) in rows {
        if let Some(text) = scenario.medications[0].pointer_mut("/medicationCodeableConcept/text")
            && text == ""
        {
            *text = Value::Null;
        }
        let response = app.cards(scenario.service(), &scenario.body()).await;
        assert_eq!(card_types(&response).contains(&"red-flag-fracture".to_owned()), fracture, "{rule}: {response}");
    }
}

#[tokio::test]
async fn an_nsaid_on_record_as_a_bare_product_code_or_a_brand_is_seen_by_the_medication_advice() {
    // Naproxen sodium 220 MG (RxNorm SCD 849574, as population simulators record it) with no
    // text: only the ingredient map says it is naproxen, an NSAID already prescribed.
    let app = TestApp::spawn().await;
    let mut with_nsaid = Scenario::new("order-select", 45)
        .low_back_pain(14)
        .medication("849574", "", json!({"authoredOn": days_ago(20)}))
        .medication_order("1049221", "opioid order");
    with_nsaid.medications[0]["medicationCodeableConcept"]["text"] = Value::Null;
    let response = app.cards(with_nsaid.service(), &with_nsaid.body()).await;
    let detail = card(&response, "medication-advice")["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("**An NSAID is already prescribed:** naproxen"), "{detail}");

    // A brand only, under a local code: the map's brand names say it is ibuprofen.
    let brand = Scenario::new("order-select", 45)
        .low_back_pain(14)
        .medication("local-9", "ADVIL 200 MG TAB", json!({"authoredOn": days_ago(20)}))
        .medication_order("1049221", "opioid order");
    let response = app.cards(brand.service(), &brand.body()).await;
    let detail = card(&response, "medication-advice")["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("**An NSAID is already prescribed:** ibuprofen"), "{detail}");

    let without = Scenario::new("order-select", 45).low_back_pain(14).medication_order("1049221", "opioid order");
    let response = app.cards(without.service(), &without.body()).await;
    let detail = card(&response, "medication-advice")["detail"].as_str().unwrap_or_default().to_owned();
    assert!(!detail.contains("already prescribed"), "{detail}");
}

/// Every ingredient of each drug class that is marketed in the US (issue 11: "every opioid
/// analgesic ingredient marketed in the US, every benzodiazepine, every skeletal muscle relaxant,
/// every systemic corticosteroid"), by RxCUI and name. Ingredients whose RxCUI could not be
/// confirmed offline (quazepam, remimazolam) are named in the class's description instead.
#[test]
fn every_drug_class_lists_its_us_marketed_ingredients() {
    let content = lbp_cds::content::Content::from_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cards"))
        .expect("shipped content loads");
    let classes: [(&str, &[(&str, &str)]); 4] = [
        (
            "opioids",
            &[
                ("7804", "oxycodone"),
                ("5489", "hydrocodone"),
                ("2001352", "benzhydrocodone"),
                ("7052", "morphine"),
                ("3423", "hydromorphone"),
                ("7814", "oxymorphone"),
                ("2670", "codeine"),
                ("23088", "dihydrocodeine"),
                ("4337", "fentanyl"),
                ("56795", "sufentanil"),
                ("480", "alfentanil"),
                ("73032", "remifentanil"),
                ("6754", "meperidine"),
                ("6813", "methadone"),
                ("6378", "levorphanol"),
                ("10689", "tramadol"),
                ("787390", "tapentadol"),
                ("1819", "buprenorphine"),
                ("1841", "butorphanol"),
                ("7238", "nalbuphine"),
                ("8001", "pentazocine"),
                ("7676", "opium"),
                ("2392230", "oliceridine"),
            ],
        ),
        (
            "benzodiazepines",
            &[
                ("596", "alprazolam"),
                ("2356", "chlordiazepoxide"),
                ("21241", "clobazam"),
                ("2598", "clonazepam"),
                ("2617", "clorazepate"),
                ("3322", "diazepam"),
                ("4077", "estazolam"),
                ("4501", "flurazepam"),
                ("6470", "lorazepam"),
                ("6960", "midazolam"),
                ("7781", "oxazepam"),
                ("10355", "temazepam"),
                ("10767", "triazolam"),
            ],
        ),
        (
            "muscle-relaxants",
            &[
                ("1292", "baclofen"),
                ("2101", "carisoprodol"),
                ("2410", "chlorzoxazone"),
                ("21949", "cyclobenzaprine"),
                ("3227", "dantrolene"),
                ("59078", "metaxalone"),
                ("6845", "methocarbamol"),
                ("7715", "orphenadrine"),
                ("57258", "tizanidine"),
            ],
        ),
        (
            "systemic-corticosteroids",
            &[
                ("1514", "betamethasone"),
                ("19831", "budesonide"),
                ("2878", "cortisone"),
                ("22396", "deflazacort"),
                ("3264", "dexamethasone"),
                ("5492", "hydrocortisone"),
                ("6902", "methylprednisolone"),
                ("8638", "prednisolone"),
                ("8640", "prednisone"),
                ("10759", "triamcinolone"),
                ("2669799", "vamorolone"),
            ],
        ),
    ];
    let mut missing = Vec::new();
    for (class, ingredients) in classes {
        let set = content.value_set(lbp_cds::content::ValueSetId::parse(class).expect("a value set the code reads"));
        for (rxcui, name) in ingredients {
            let listed = set.concepts().iter().any(|c| c.code == *rxcui && c.display == *name);
            if !listed {
                missing.push(format!("{class}: {name} ({rxcui})"));
            }
        }
        // Every listed ingredient is one of the expected ones (a typo or a stray code shows here;
        // fludrocortisone, a mineralocorticoid at replacement doses, is deliberately absent);
        // levomethadyl, withdrawn from the US market, stays for old records.
        for concept in set.concepts() {
            if !ingredients.iter().any(|(rxcui, _)| concept.code == *rxcui) && concept.code != "237005" {
                missing.push(format!("{class}: unexpected member {} ({})", concept.display, concept.code));
            }
        }
    }
    assert!(missing.is_empty(), "classes incomplete:\n{}", missing.join("\n"));

    // And the map places each class's packs, whatever their term type.
    for (class, pack) in
        [("opioids", "1740009"), ("opioids", "1740010"), ("benzodiazepines", "2272633"), ("benzodiazepines", "2272630")]
    {
        let bare = lbp_cds::record::Concept {
            codes: vec![lbp_cds::record::Code { system: Some(RXNORM.into()), code: Some(pack.into()), display: None }],
            text: None,
        };
        let id = lbp_cds::content::ValueSetId::parse(class).expect("a drug class");
        let why = content.drug_in_class(id, &bare).unwrap_or_else(|| panic!("{pack} not in {class}"));
        assert!(why.contains("PCK"), "{why}");
    }
}
