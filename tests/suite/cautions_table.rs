//! Decision tables for the patient factors that change the advice (issue 17): NSAID cautions
//! from the record (kidney, GI bleeding, anticoagulants, heart failure, allergy, pregnancy, age),
//! pregnancy in the imaging cards, and what has already been tried. One row per branch and
//! boundary (eGFR 29 / 30, 19 / 20 weeks, age 64 / 65, active / stopped anticoagulant), each
//! naming its source; every row goes through the real server.

use crate::common::*;
use lbp_cds::content::Content;
use serde_json::json;

struct Row {
    rule: &'static str,
    source: &'static str,
    scenario: Scenario,
    /// The card whose text is checked.
    card: &'static str,
    /// `extension["lbp-cds"].nsaidCautions`.
    cautions: &'static [&'static str],
    /// Whether the card advises an NSAID ("NSAIDs first", the usual NSAID advice).
    nsaid_advised: bool,
    /// Words the card's detail must contain (the caution named with its evidence, what fits
    /// instead, what was tried, what could not be checked).
    says: &'static [&'static str],
    /// Words the card's detail must not contain.
    not_says: &'static [&'static str],
}

#[allow(clippy::too_many_arguments)]
fn row(
    rule: &'static str,
    source: &'static str,
    scenario: Scenario,
    card: &'static str,
    cautions: &'static [&'static str],
    nsaid_advised: bool,
    says: &'static [&'static str],
) -> Row {
    Row { rule, source, scenario, card, cautions, nsaid_advised, says, not_says: &[] }
}

fn not_saying(mut row: Row, words: &'static [&'static str]) -> Row {
    row.not_says = words;
    row
}

async fn run(rows: Vec<Row>) {
    let app = TestApp::spawn().await;
    let content = Content::embedded().unwrap();
    let mut failures = Vec::new();
    for row in rows {
        let response = app.cards(row.scenario.service(), &row.scenario.body()).await;
        let Some(card) =
            response["cards"].as_array().unwrap().iter().find(|c| c["source"]["topic"]["code"] == row.card)
        else {
            failures.push(format!(
                "{} [{}]: no {} card in {:?}",
                row.rule,
                row.source,
                row.card,
                card_types(&response)
            ));
            continue;
        };
        let cautions = nsaid_cautions(&response);
        if cautions != row.cautions {
            failures.push(format!("{} [{}]: cautions {cautions:?}, want {:?}", row.rule, row.source, row.cautions));
        }
        if recommends_nsaid(card, &content) != row.nsaid_advised {
            failures.push(format!(
                "{} [{}]: NSAID advised {}, want {}:\n{}\n{}",
                row.rule,
                row.source,
                !row.nsaid_advised,
                row.nsaid_advised,
                card["summary"],
                card["detail"].as_str().unwrap_or_default()
            ));
        }
        let detail = card["detail"].as_str().unwrap_or_default();
        for words in row.says {
            if !detail.contains(words) {
                failures.push(format!("{} [{}]: detail lacks “{words}”:\n{detail}", row.rule, row.source));
            }
        }
        for words in row.not_says {
            if detail.contains(words) {
                failures.push(format!("{} [{}]: detail has “{words}”:\n{detail}", row.rule, row.source));
            }
        }
    }
    assert!(failures.is_empty(), "caution rows failed:\n{}", failures.join("\n\n"));
}

const EGFR: &str = "98979-8";
const GESTATIONAL_AGE: &str = "49051-6";
const PREGNANCY_STATUS: &str = "82810-3";

trait Factors {
    fn egfr(self, value: f64, days_ago: i64) -> Self;
    fn gestational_age(self, weeks: f64, days_ago: i64) -> Self;
    fn pregnancy_status(self, code: &str, display: &str, days_ago: i64) -> Self;
    fn active_medication(self, rxnorm: &str, text: &str, days_ago: i64) -> Self;
    fn stopped_medication(self, rxnorm: &str, text: &str, days_ago: i64) -> Self;
}

impl Factors for Scenario {
    fn egfr(self, value: f64, days_ago: i64) -> Scenario {
        self.observation(EGFR, value, "mL/min/{1.73_m2}", days_ago)
    }
    fn gestational_age(self, weeks: f64, days_ago: i64) -> Scenario {
        self.observation(GESTATIONAL_AGE, weeks, "wk", days_ago)
    }
    fn pregnancy_status(self, code: &str, display: &str, days_ago: i64) -> Scenario {
        self.observation_with(
            PREGNANCY_STATUS,
            days_ago,
            json!({"valueCodeableConcept": {"coding": [{"system": SNOMED, "code": code, "display": display}]}}),
        )
    }
    fn active_medication(self, rxnorm: &str, text: &str, days_ago: i64) -> Scenario {
        self.medication(rxnorm, text, json!({"authoredOn": crate::common::days_ago(days_ago)}))
    }
    fn stopped_medication(self, rxnorm: &str, text: &str, days_ago: i64) -> Scenario {
        self.medication(rxnorm, text, json!({"status": "stopped", "authoredOn": crate::common::days_ago(days_ago)}))
    }
}

/// A selected draft oxycodone order for low back pain of 10 days, with a normal eGFR on record
/// (so that only the factor under test changes the advice).
fn opioid(age: i32) -> Scenario {
    Scenario::new("order-select", age).low_back_pain(10).medication_order("7804", "oxycodone").egfr(75.0, 30)
}

const MED: &str = "medication-advice";
const INSTEAD: &str = "**topical NSAID**";

#[tokio::test]
async fn kidney_function() {
    run(vec![
        row("no caution -> the usual NSAID advice", "ACP 2017 (NSAIDs first line)", opioid(45), MED, &[], true, &[]),
        row(
            "eGFR 29 in the last year -> avoid, alternatives offered",
            "FDA NSAID labeling; AGS Beers 2023 (CrCl < 30)",
            opioid(45).egfr(29.0, 5),
            MED,
            &["severe-kidney-disease"],
            false,
            &[
                "latest eGFR 29 mL/min/1.73 m² on",
                "severe kidney disease",
                INSTEAD,
                "acetaminophen (paracetamol)",
                "FDA NSAID labeling",
            ],
        ),
        row(
            "eGFR exactly 30 -> no caution (boundary)",
            "AGS Beers 2023 (below 30)",
            opioid(45).egfr(30.0, 5),
            MED,
            &[],
            true,
            &[],
        ),
        row(
            "eGFR 25 more than a year ago -> not current; a recent one said to be missing",
            "FDA NSAID labeling; CDS: say what is missing",
            Scenario::new("order-select", 45).low_back_pain(10).medication_order("7804", "oxycodone").egfr(25.0, 366),
            MED,
            &[],
            true,
            &["no eGFR in the last 12 months is on record"],
        ),
        row(
            "eGFR 25 at 200 days, 50 now -> the latest counts",
            "current kidney function (convention)",
            opioid(45).egfr(25.0, 200).egfr(50.0, 3),
            MED,
            &[],
            true,
            &[],
        ),
        row(
            "no eGFR at 70 -> said, not guessed",
            "AGS Beers 2023 (renal function in older adults); CDS: say what is missing",
            Scenario::new("order-select", 70).low_back_pain(10).medication_order("7804", "oxycodone"),
            MED,
            &["older-adult"],
            false,
            &["**Not checked:** no eGFR in the last 12 months"],
        ),
        not_saying(
            row(
                "no eGFR at 45, no other risk -> not flagged (the usual advice says to check renal risk)",
                "ACP 2017",
                Scenario::new("order-select", 45).low_back_pain(10).medication_order("7804", "oxycodone"),
                MED,
                &[],
                true,
                &[],
            ),
            &["no eGFR"],
        ),
        row(
            "CKD stage 4 diagnosis -> avoid",
            "FDA NSAID labeling (advanced renal disease)",
            opioid(45).condition(ICD10, "N18.4", 300),
            MED,
            &["severe-kidney-disease"],
            false,
            &[
                "Chronic kidney disease stage 4-5 or dialysis on record: ICD-10-CM N18.4",
                "(active, since ",
                "`Condition/",
            ],
        ),
        row(
            "dialysis dependence -> avoid",
            "FDA NSAID labeling; AGS Beers 2023",
            opioid(45).condition(ICD10, "Z99.2", 300),
            MED,
            &["severe-kidney-disease"],
            false,
            &[INSTEAD],
        ),
        row(
            "CKD stage 3 -> no caution from the diagnosis",
            "AGS Beers 2023 (CrCl < 30 only)",
            opioid(45).condition(ICD10, "N18.30", 300),
            MED,
            &[],
            true,
            &[],
        ),
    ])
    .await;
}

#[tokio::test]
async fn bleeding_anticoagulants_heart_and_allergy() {
    run(vec![
        row(
            "GI bleeding years ago, resolved -> history counts",
            "FDA NSAID labeling (boxed warning); AGS Beers 2023",
            opioid(45).condition_full(
                ICD10,
                "K92.2",
                json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(2000)}),
            ),
            MED,
            &["gi-bleeding"],
            false,
            &["Gastrointestinal bleeding or peptic ulcer on record", INSTEAD],
        ),
        row(
            "duodenal ulcer (K26 family) -> avoid",
            "AGS Beers 2023 (history of ulcers)",
            opioid(45).condition(ICD10, "K26.9", 800),
            MED,
            &["gi-bleeding"],
            false,
            &[],
        ),
        row(
            "active warfarin -> avoid",
            "FDA NSAID labeling (anticoagulants); AGS Beers 2023",
            opioid(45).active_medication("11289", "warfarin 5 mg tablet", 90),
            MED,
            &["anticoagulant"],
            false,
            &["warfarin (anticoagulant) active since", INSTEAD],
        ),
        row(
            "stopped warfarin -> no caution (boundary)",
            "FDA NSAID labeling: concurrent use",
            opioid(45).stopped_medication("11289", "warfarin 5 mg tablet", 90),
            MED,
            &[],
            true,
            &[],
        ),
        row(
            "active clopidogrel -> avoid",
            "FDA NSAID labeling (antiplatelets)",
            opioid(45).active_medication("32968", "clopidogrel", 30),
            MED,
            &["anticoagulant"],
            false,
            &["clopidogrel (antiplatelet)"],
        ),
        row(
            "apixaban by product text -> avoid",
            "FDA NSAID labeling (anticoagulants)",
            opioid(45).active_medication("1364445", "apixaban 5 MG Oral Tablet", 30),
            MED,
            &["anticoagulant"],
            false,
            &["apixaban (anticoagulant)"],
        ),
        row(
            "active heart failure -> avoid",
            "FDA NSAID labeling; AGS Beers 2023 (heart failure)",
            opioid(45).condition(ICD10, "I50.22", 400),
            MED,
            &["heart-failure"],
            false,
            &["Heart failure on record"],
        ),
        row(
            "resolved heart failure -> no caution",
            "AGS Beers 2023 (current heart failure)",
            opioid(45).condition_full(
                ICD10,
                "I50.9",
                json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(900)}),
            ),
            MED,
            &[],
            true,
            &[],
        ),
        not_saying(
            row(
                "NSAID class allergy (SNOMED) -> avoid",
                "FDA NSAID labeling (contraindication)",
                opioid(45).allergy(SNOMED, "293637006", "Allergy to NSAID", json!({})),
                MED,
                &["allergy"],
                false,
                &["allergy or intolerance to", "`AllergyIntolerance/", "Not a topical NSAID either"],
            ),
            &[INSTEAD],
        ),
        row(
            "ibuprofen intolerance by RxNorm -> avoid",
            "FDA NSAID labeling (contraindication)",
            opioid(45).allergy(RXNORM, "5640", "ibuprofen", json!({"type": "intolerance"})),
            MED,
            &["allergy"],
            false,
            &["allergy or intolerance to ibuprofen"],
        ),
        row(
            "aspirin allergy -> avoid (cross-reaction)",
            "FDA NSAID labeling (asthma or urticaria after aspirin)",
            opioid(45).allergy(RXNORM, "1191", "aspirin", json!({})),
            MED,
            &["allergy"],
            false,
            &[],
        ),
        row(
            "allergy recorded as text only: NSAIDs",
            "FDA NSAID labeling (contraindication)",
            opioid(45).allergy("urn:oid:1.2.3.4.7", "A12", "NSAIDs - hives", json!({})),
            MED,
            &["allergy"],
            false,
            &[],
        ),
        row(
            "refuted NSAID allergy -> no caution",
            "FHIR verificationStatus refuted",
            opioid(45).allergy(
                SNOMED,
                "293637006",
                "Allergy to NSAID",
                json!({"verificationStatus": {"coding": [{"code": "refuted"}]}}),
            ),
            MED,
            &[],
            true,
            &[],
        ),
        row(
            "penicillin allergy -> no NSAID caution",
            "scope",
            opioid(45).allergy(RXNORM, "7980", "penicillin G", json!({})),
            MED,
            &[],
            true,
            &[],
        ),
        row(
            "allergies not prefetched -> said",
            "CDS: say what is missing",
            opioid(45).prefetch_override("allergies", None),
            MED,
            &[],
            true,
            &["an NSAID allergy could not be checked for"],
        ),
        row(
            "medications unavailable -> anticoagulant unknown, said",
            "CDS: say what is missing",
            opioid(45).prefetch_override(
                "medications",
                Some(json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]})),
            ),
            MED,
            &[],
            true,
            &["an anticoagulant or antiplatelet could not be checked for"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn pregnancy_and_age() {
    run(vec![
        row(
            "19 weeks -> caution, not yet avoid (boundary)",
            "FDA Drug Safety Communication 2020 (from 20 weeks)",
            opioid(30).gestational_age(19.0, 0),
            MED,
            &["early-pregnancy"],
            false,
            &[
                "pregnant, 19 weeks today (from gestational age 19 weeks on 2026-03-02)",
                "use with caution",
                INSTEAD,
                "**If a systemic NSAID is still chosen:**",
            ],
        ),
        not_saying(
            row(
                "20 weeks -> avoid (boundary)",
                "FDA Drug Safety Communication 2020; NSAID labeling",
                opioid(30).gestational_age(20.0, 0),
                MED,
                &["pregnancy"],
                false,
                &["pregnant, 20 weeks today", "avoid a systemic NSAID", "Not a topical NSAID either"],
            ),
            &[INSTEAD],
        ),
        row(
            "18 weeks two weeks ago is 20 weeks today",
            "FDA 2020 (gestational age today)",
            opioid(30).gestational_age(18.0, 14),
            MED,
            &["pregnancy"],
            false,
            &["pregnant, 20 weeks today"],
        ),
        row(
            "ICD-10-CM Z3A.20 recorded today -> 20 weeks -> avoid",
            "ICD-10-CM Z3A weeks of gestation; FDA 2020",
            opioid(30).condition(ICD10, "Z3A.20", 0),
            MED,
            &["pregnancy"],
            false,
            &["pregnant, 20 weeks today"],
        ),
        row(
            "pregnancy status 'pregnant', weeks unknown -> caution, said",
            "LOINC 82810-3; FDA 2020",
            opioid(30).pregnancy_status("77386006", "Pregnant", 10),
            MED,
            &["early-pregnancy"],
            false,
            &["weeks of gestation not on record"],
        ),
        row(
            "pregnant, then 'not pregnant' later -> no caution",
            "LOINC 82810-3 (latest result)",
            opioid(30).pregnancy_status("77386006", "Pregnant", 200).pregnancy_status("60001007", "Not pregnant", 20),
            MED,
            &[],
            true,
            &[],
        ),
        row(
            "pregnancy diagnosis 400 days ago -> not current",
            "pregnancy lasts about 280 days (convention: 300)",
            opioid(30).condition(SNOMED, "77386006", 400),
            MED,
            &[],
            true,
            &[],
        ),
        row("age 64 -> no age caution (boundary)", "AGS Beers 2023 (65 and over)", opioid(64), MED, &[], true, &[]),
        row(
            "age 65 -> caution",
            "AGS Beers 2023; ACP 2017",
            opioid(65),
            MED,
            &["older-adult"],
            false,
            &["age 65 or over", "use with caution", "proton-pump inhibitor"],
        ),
        row(
            "age 80 with warfarin -> avoid (the more serious level)",
            "AGS Beers 2023; FDA NSAID labeling",
            opioid(80).active_medication("11289", "warfarin", 10),
            MED,
            &["anticoagulant", "older-adult"],
            false,
            &["avoid a systemic NSAID"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn what_was_already_tried() {
    run(vec![
        not_saying(
            row(
                "active naproxen -> acknowledged, not advised again",
                "ACP 2017; do not repeat advice already followed",
                opioid(45).active_medication("7258", "naproxen 500 mg tablet", 20),
                MED,
                &[],
                true,
                &["**An NSAID is already prescribed:** naproxen active since"],
            ),
            &["**If a medicine is wanted:**", "**Already tried this episode:**"],
        ),
        row(
            "topical diclofenac active -> tried, and an oral NSAID still advised",
            "ACP 2017",
            opioid(45).medication(
                "3355",
                "diclofenac 1% gel",
                json!({"authoredOn": days_ago(5), "dosageInstruction": [{"route": {"text": "Topical"}}]}),
            ),
            MED,
            &[],
            true,
            &["**Already tried this episode:** topical diclofenac active since"],
        ),
        row(
            "ibuprofen earlier this episode, completed -> acknowledged",
            "ACP 2017",
            opioid(45).medication(
                "5640",
                "ibuprofen 400 mg",
                json!({"status": "completed", "authoredOn": days_ago(8)}),
            ),
            MED,
            &[],
            true,
            &["ibuprofen prescribed", "(completed)"],
        ),
        row(
            "ibuprofen before this episode -> not this episode's",
            "HEDIS 180-day episode",
            opioid(45).medication(
                "5640",
                "ibuprofen 400 mg",
                json!({"status": "completed", "authoredOn": days_ago(300)}),
            ),
            MED,
            &[],
            true,
            &[],
        ),
        row(
            "an earlier opioid this episode -> acknowledged",
            "CDC 2022 (review earlier opioid use)",
            opioid(45).medication("7804", "oxycodone 5 mg", json!({"status": "completed", "authoredOn": days_ago(6)})),
            MED,
            &[],
            true,
            &["oxycodone prescribed"],
        ),
        row(
            "physical therapy this episode -> acknowledged with sessions",
            "ACP 2017 (exercise therapy)",
            opioid(45).procedure(CPT, "97110", 8).procedure(CPT, "97110", 3),
            MED,
            &[],
            true,
            &["physical therapy, 2 session days this episode, the last on"],
        ),
        row(
            "warfarin and active naproxen -> the caution, not 'already prescribed'",
            "FDA NSAID labeling",
            opioid(45).active_medication("11289", "warfarin", 10).active_medication("7258", "naproxen", 20),
            MED,
            &["anticoagulant"],
            false,
            &["**Already tried this episode:** naproxen active since"],
        ),
    ])
    .await;
}

/// Every card that advised an NSAID now takes this patient's cautions into account: stratified
/// care (low risk), the early-imaging warning's "instead", and the reassessment card.
#[tokio::test]
async fn other_cards_that_advised_nsaids() {
    let low_risk = |s: Scenario| {
        s.observation_with("91351-7", 1, json!({"valueInteger": 2})).observation_with(
            "91350-9",
            1,
            json!({"valueInteger": 1}),
        )
    };
    let mri = |s: Scenario| s.order(CPT, "72148", "MRI lumbar spine without contrast");
    let reassess =
        |s: Scenario| {
            s.referral(SNOMED, "91251008", 34)
                .observation_with("91351-7", 1, json!({"valueInteger": 5}))
                .observation_with("91350-9", 1, json!({"valueInteger": 2}))
        };
    run(vec![
        row(
            "stratified care, low risk, no caution -> NSAID advice",
            "ACP 2017; Hill 2011",
            low_risk(Scenario::new("patient-view", 45).low_back_pain(14).egfr(80.0, 10)),
            "stratified-care",
            &[],
            true,
            &[],
        ),
        row(
            "stratified care, low risk, heart failure -> alternatives",
            "AGS Beers 2023; FDA NSAID labeling",
            low_risk(Scenario::new("patient-view", 45).low_back_pain(14).egfr(80.0, 10).condition(ICD10, "I50.9", 100)),
            "stratified-care",
            &["heart-failure"],
            false,
            &[INSTEAD],
        ),
        row(
            "early-imaging warning, no caution -> NSAID in 'instead'",
            "ACR variant 1; ACP 2017",
            mri(Scenario::new("order-sign", 45).low_back_pain(14).egfr(80.0, 10)),
            "imaging-not-indicated",
            &[],
            true,
            &[],
        ),
        row(
            "early-imaging warning, eGFR 20 -> alternatives in 'instead'",
            "FDA NSAID labeling; ACR variant 1",
            mri(Scenario::new("order-sign", 45).low_back_pain(14).egfr(20.0, 10)),
            "imaging-not-indicated",
            &["severe-kidney-disease"],
            false,
            &[INSTEAD],
        ),
        row(
            "reassessment, no caution -> NSAID advice",
            "ACP 2017",
            reassess(Scenario::new("patient-view", 45).low_back_pain(35).egfr(80.0, 10)),
            "reassess-progress",
            &[],
            true,
            &[],
        ),
        row(
            "reassessment, age 70 -> caution",
            "AGS Beers 2023",
            reassess(Scenario::new("patient-view", 70).low_back_pain(35).egfr(80.0, 10)),
            "reassess-progress",
            &["older-adult"],
            false,
            &[INSTEAD],
        ),
    ])
    .await;
}

#[tokio::test]
async fn pregnancy_in_the_imaging_cards() {
    let xray = |s: Scenario| s.order(CPT, "72100", "X-ray lumbosacral spine 2-3 views");
    let mri = |s: Scenario| s.order(CPT, "72148", "MRI lumbar spine without contrast");
    let pregnant = |s: Scenario| s.pregnancy_status("77386006", "Pregnant", 10);
    const SAYS: &[&str] = &[
        "**Pregnancy on record:**",
        "expose the fetus to ionising radiation",
        "MRI **without gadolinium** is preferred",
    ];
    run(vec![
        row(
            "pregnant, X-ray for acute LBP -> radiation and MRI without gadolinium said",
            "ACR Manual on Contrast Media; ACOG CO 723",
            pregnant(xray(Scenario::new("order-sign", 30).low_back_pain(14).egfr(90.0, 10))),
            "imaging-not-indicated",
            &["early-pregnancy"],
            false,
            SAYS,
        ),
        row(
            "pregnant at 24 weeks, MRI for cauda equina -> indicated, with the pregnancy note",
            "ACR LBP variant 4; ACOG CO 723",
            mri(Scenario::new("order-sign", 30).low_back_pain(5).condition(ICD10, "G83.4", 1).gestational_age(24.0, 0)),
            "imaging-indicated",
            &["pregnancy"],
            false,
            &["**Pregnancy on record:** 24 weeks of gestation today"],
        ),
        row(
            "pregnant, MRI after 8 weeks -> conditional, with the pregnancy note",
            "ACR LBP variants 2/3; ACOG CO 723",
            pregnant(mri(Scenario::new("order-sign", 30).low_back_pain(56))),
            "imaging-conditional",
            &["early-pregnancy"],
            false,
            SAYS,
        ),
        not_saying(
            row(
                "not pregnant -> no pregnancy note",
                "scope",
                xray(Scenario::new("order-sign", 30).low_back_pain(14).egfr(90.0, 10)).pregnancy_status(
                    "60001007",
                    "Not pregnant",
                    10,
                ),
                "imaging-not-indicated",
                &[],
                true,
                &[],
            ),
            &["Pregnancy on record"],
        ),
    ])
    .await;
}

/// Card files leave NSAID advice to `patient-factors.toml`, so that no card can advise an NSAID
/// without the check.
#[test]
fn card_files_do_not_advise_nsaids_themselves() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cards");
    let phrases =
        ["if a medicine is wanted, an nsaid", "nsaids come first", "nsaids are first line", "an nsaid at the lowest"];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") || path.ends_with("patient-factors.toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap().to_lowercase();
        for phrase in phrases {
            assert!(!text.contains(phrase), "{} advises an NSAID itself (“{phrase}”)", path.display());
        }
    }
}

/// After the imaging threshold, prior conservative care this episode decides ACR variant 2 (none:
/// every study usually not appropriate) versus 3 (after care: MRI usually appropriate in a
/// candidate for surgery or an intervention), as CMS OP-8 checks before a lumbar MRI.
#[tokio::test]
async fn prior_care_decides_acr_variant_2_or_3() {
    let mri = |s: Scenario| s.order(CPT, "72148", "MRI lumbar spine without contrast").egfr(80.0, 10);
    let chronic = || mri(Scenario::new("order-sign", 45).low_back_pain(60));
    const COND: &str = "imaging-conditional";
    const V2: &str = "**ACR variant 2: imaging is usually not appropriate yet.**";
    const V3: &str = "**ACR variant 3: conservative care is on record this episode.**";
    run(vec![
        not_saying(
            row(
                "8 weeks, no conservative care on record -> variant 2",
                "ACR LBP variant 2 (no prior management)",
                chronic(),
                COND,
                &[],
                true,
                &[V2],
            ),
            &[V3],
        ),
        not_saying(
            row(
                "8 weeks after a PT session -> variant 3",
                "ACR LBP variant 3; CMS OP-8 (conservative therapy)",
                chronic().procedure(CPT, "97110", 30),
                COND,
                &[],
                false,
                &[V3, "**Conservative care on record:**", "`Procedure/"],
            ),
            &[V2],
        ),
        row(
            "8 weeks after a PT referral -> variant 3",
            "ACR LBP variant 3; CMS OP-8",
            chronic().referral(SNOMED, "91251008", 50),
            COND,
            &[],
            false,
            &[V3, "referral for"],
        ),
        row(
            "8 weeks after an NSAID course -> variant 3",
            "ACR LBP variant 3 (medical management)",
            chronic().medication(
                "5640",
                "ibuprofen 400 mg",
                json!({"status": "completed", "authoredOn": days_ago(40)}),
            ),
            COND,
            &[],
            false,
            &[V3, "ibuprofen prescribed"],
        ),
        row(
            "PT before this episode does not count -> variant 2",
            "HEDIS 180-day episode; ACR LBP variant 2",
            chronic().procedure(CPT, "97110", 300),
            COND,
            &[],
            true,
            &[V2],
        ),
        not_saying(
            row(
                "procedures not available -> cannot tell 2 from 3",
                "CDS: say what is missing",
                chronic().prefetch_override("procedures", None),
                COND,
                &[],
                false,
                &["**Not rated:** symptoms have lasted"],
            ),
            &[V2, V3],
        ),
    ])
    .await;
}
