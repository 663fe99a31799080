//! Decision tables for the clinical rules: one row per branch, each naming the guideline it
//! follows. Every row goes through the real server over HTTP.

mod common;

use common::*;
use serde_json::json;

struct Row {
    rule: &'static str,
    guideline: &'static str,
    scenario: Scenario,
    cards: &'static [&'static str],
    /// Expected PAMA rating of the first draft order, if any.
    pama: Option<&'static str>,
}

fn row(rule: &'static str, guideline: &'static str, scenario: Scenario, cards: &'static [&'static str], pama: Option<&'static str>) -> Row {
    Row { rule, guideline, scenario, cards, pama }
}

fn mri(scenario: Scenario) -> Scenario {
    scenario.order(CPT, "72148", "MRI lumbar spine without contrast")
}

fn xray(scenario: Scenario) -> Scenario {
    scenario.order(CPT, "72100", "X-ray lumbosacral spine 2-3 views")
}

/// Runs a table, comparing the card types of one family (a prefix such as `red-flag-`); other
/// families have tables of their own.
async fn run(family: &str, rows: Vec<Row>) {
    let app = TestApp::spawn().await;
    let mut failures = Vec::new();
    for row in rows {
        let response = app.cards(row.scenario.service(), &row.scenario.body()).await;
        let got: Vec<String> = card_types(&response).into_iter().filter(|t| t.starts_with(family)).collect();
        let mut want: Vec<String> = row.cards.iter().map(|c| (*c).to_owned()).collect();
        want.sort();
        let pama = pama_ratings(&response).first().map(|(_, rating)| rating.clone());
        if got != want || pama.as_deref() != row.pama {
            failures.push(format!(
                "{} [{}]: cards {got:?} (want {want:?}), PAMA {pama:?} (want {:?})",
                row.rule, row.guideline, row.pama
            ));
        }
    }
    assert!(failures.is_empty(), "decision table rows failed:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn imaging_appropriateness() {
    let pv = |age| Scenario::new("order-sign", age);
    run("imaging-", vec![
        row("no red flag, 2 weeks -> not indicated", "ACR LBP variant 1; Choosing Wisely AAFP", mri(pv(45).low_back_pain(14)), &["imaging-not-indicated"], Some("not-appropriate")),
        row("red flag present -> the imaging card is about the red flag", "ACR LBP variant 7", mri(pv(45).low_back_pain(14).condition(ICD10, "B20", 900)), &["imaging-indicated"], Some("appropriate")),
        row("no red flag, 0 days -> not indicated", "ACR LBP variant 1", mri(pv(45).low_back_pain(0)), &["imaging-not-indicated"], Some("not-appropriate")),
        row("no red flag, 41 days (last day under 6 weeks) -> not indicated", "Choosing Wisely: first 6 weeks", mri(pv(45).low_back_pain(41)), &["imaging-not-indicated"], Some("not-appropriate")),
        row("no red flag, exactly 6 weeks -> conditional, not rated", "ACR LBP variants 2/3: after 6 weeks of care", mri(pv(45).low_back_pain(42)), &["imaging-conditional"], None),
        row("no red flag, 5 months -> conditional", "ACR LBP variants 2/3", mri(pv(45).low_back_pain(150)), &["imaging-conditional"], None),
        row("chronic LBP diagnosis recorded yesterday -> at least 12 weeks -> conditional", "ACP 2017: chronic = > 12 weeks", mri(pv(45).condition(SNOMED, "278860009", 1)), &["imaging-conditional"], None),
        row("LBP with no date -> duration unknown -> conditional", "CDS safety: say so rather than guess", mri(pv(45).condition_full(ICD10, "M54.50", json!({}))), &["imaging-conditional"], None),
        row("no LBP diagnosis -> indication unknown -> conditional", "CDS safety: rules are for LBP", mri(pv(45)), &["imaging-conditional"], None),
        row("LBP as order reason only, no date -> conditional", "CDS safety", {
            let mut s = mri(pv(45));
            s.drafts[0]["reasonCode"] = json!([{"coding": [{"system": ICD10, "code": "M54.50"}]}]);
            s
        }, &["imaging-conditional"], None),
        row("radiculopathy counts as LBP, 3 weeks -> not indicated", "ACR LBP variant 1 (± radiculopathy)", mri(pv(45).condition(ICD10, "M54.16", 21)), &["imaging-not-indicated"], Some("not-appropriate")),
        row("resolved LBP episode, no active LBP -> no episode -> conditional", "HEDIS episode logic", mri(pv(45).condition_full(ICD10, "M54.50", json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(20)}))), &["imaging-conditional"], None),
        row("episode starts at earliest diagnosis within 180 days -> 10 weeks -> conditional", "HEDIS 180-day negative history", mri(pv(45).low_back_pain(10).condition_full(ICD10, "M54.59", json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(70)}))), &["imaging-conditional"], None),
        row("diagnosis over 180 days before is a previous episode -> 2 weeks -> not indicated", "HEDIS 180-day negative history", mri(pv(45).low_back_pain(14).condition_full(ICD10, "M54.59", json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(400)}))), &["imaging-not-indicated"], Some("not-appropriate")),
        row("ICD-10 without dot still matches", "ICD-10-CM M54.50", mri(pv(45).condition(ICD10, "M5450", 14)), &["imaging-not-indicated"], Some("not-appropriate")),
        row("LOINC lumbar X-ray is recognised", "ACR LBP variant 1", pv(45).low_back_pain(14).order(LOINC, "24972-2", "XR Lumbar spine Views"), &["imaging-not-indicated"], Some("not-appropriate")),
        row("SNOMED lumbar CT is recognised", "ACR LBP variant 1", pv(45).low_back_pain(14).order(SNOMED, "572091000119106", "CT of lumbar spine without contrast"), &["imaging-not-indicated"], Some("not-appropriate")),
        row("local code recognised by its text", "ACR LBP variant 1", pv(45).low_back_pain(14).order("urn:oid:1.2.3.4", "IMG123", "MRI L-SPINE WO"), &["imaging-not-indicated"], Some("not-appropriate")),
        row("local code for a brain MRI is left alone", "scope: lumbar imaging only", pv(45).low_back_pain(14).order("urn:oid:1.2.3.4", "IMG9", "MRI BRAIN WO"), &[], None),
        row("non-lumbar imaging is left alone", "scope: lumbar imaging only", pv(45).low_back_pain(14).order(CPT, "70551", "MRI brain without contrast"), &[], None),
        row("child (12) -> adult rules do not fire", "ACP 2017 applies to adults", mri(pv(12).low_back_pain(7)), &[], None),
        row("exactly 18 -> adult", "ACP 2017 applies to adults", mri(pv(18).low_back_pain(7)), &["imaging-not-indicated"], Some("not-appropriate")),
        row("red flag + MRI -> indicated, appropriate", "ACR LBP variant 7", mri(pv(45).low_back_pain(7).condition(ICD10, "C50.911", 300)), &["imaging-indicated"], Some("appropriate")),
        row("cauda equina + X-ray -> indicated but X-ray usually not appropriate", "ACR LBP variant 4", xray(pv(45).low_back_pain(3).condition(ICD10, "R33.9", 2)), &["imaging-indicated"], Some("not-appropriate")),
        row("osteoporosis + X-ray -> appropriate", "ACR LBP variant 6", xray(pv(66).low_back_pain(7).condition(ICD10, "M81.0", 900)), &["imaging-indicated"], Some("appropriate")),
        row("missing observations -> cannot exclude red flags -> conditional", "CDS Hooks prefetch: absent key", mri(pv(45).low_back_pain(14)).prefetch_override("observations", None), &["imaging-conditional"], None),
        row("null observations -> no such data -> not indicated", "CDS Hooks prefetch: null", mri(pv(45).low_back_pain(14)).prefetch_override("observations", Some(json!(null))), &["imaging-not-indicated"], Some("not-appropriate")),
    ])
    .await;
}

#[tokio::test]
async fn red_flags_on_patient_view() {
    let pv = |age| Scenario::new("patient-view", age);
    run("red-flag-", vec![
        row("LBP without red flags -> no card", "ACP 2017", pv(45).low_back_pain(14), &[], None),
        row("no LBP episode -> red flags not shown", "scope: LBP", pv(45).condition(ICD10, "G83.4", 2), &[], None),
        row("cauda equina syndrome diagnosis", "ACR LBP variant 4", pv(50).low_back_pain(7).condition(ICD10, "G83.4", 2), &["red-flag-cauda-equina"], None),
        row("cauda equina (SNOMED)", "ACR LBP variant 4", pv(50).low_back_pain(7).condition(SNOMED, "192970008", 2), &["red-flag-cauda-equina"], None),
        row("saddle anesthesia", "ACR LBP variant 4; NICE NG59", pv(50).low_back_pain(7).condition(ICD10, "R20.0", 2), &["red-flag-cauda-equina"], None),
        row("urinary retention resolved 200 days ago does not count", "CES symptom look-back 90 days", pv(50).low_back_pain(7).condition_full(ICD10, "R33.9", json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(210), "abatementDateTime": days_ago(200)})), &[], None),
        row("entered-in-error CES never counts", "data integrity", pv(50).low_back_pain(7).condition_full(ICD10, "G83.4", json!({"verificationStatus": {"coding": [{"code": "entered-in-error"}]}})), &[], None),
        row("refuted CES never counts", "data integrity", pv(50).low_back_pain(7).condition_full(ICD10, "G83.4", json!({"verificationStatus": {"coding": [{"code": "refuted"}]}})), &[], None),
        row("foot drop", "ACP/APS 2007: progressive neurologic deficit", pv(50).low_back_pain(7).condition(ICD10, "M21.371", 5), &["red-flag-neurologic-deficit"], None),
        row("active malignancy", "ACR LBP variant 7", pv(60).low_back_pain(7).condition(ICD10, "C61", 100), &["red-flag-cancer"], None),
        row("resolved cancer history counts", "ACR LBP variant 7: history of cancer", pv(60).low_back_pain(7).condition_full(ICD10, "C50.911", json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": "2015-01-01", "abatementDateTime": "2016-01-01"})), &["red-flag-cancer"], None),
        row("Z85 personal history of cancer", "HEDIS cancer exclusion", pv(60).low_back_pain(7).condition(ICD10, "Z85.3", 3000), &["red-flag-cancer"], None),
        row("weight loss > 5% in 9 months", "ACP/APS 2007: unexplained weight loss", pv(60).low_back_pain(7).observation("29463-7", 80.0, "kg", 270).observation("29463-7", 75.0, "kg", 5), &["red-flag-cancer"], None),
        row("weight loss of exactly 5% does not count", "threshold > 5%", pv(60).low_back_pain(7).observation("29463-7", 80.0, "kg", 270).observation("29463-7", 76.0, "kg", 5), &[], None),
        row("weight loss in pounds", "ACP/APS 2007", pv(60).low_back_pain(7).observation("29463-7", 200.0, "[lb_av]", 200).observation("29463-7", 185.0, "[lb_av]", 5), &["red-flag-cancer"], None),
        row("weight loss before the 12-month window does not count", "window 365 days", pv(60).low_back_pain(7).observation("29463-7", 90.0, "kg", 500).observation("29463-7", 80.0, "kg", 5), &[], None),
        row("fever 38.0 Cel (boundary) counts", "ACP/APS 2007: fever", pv(40).low_back_pain(7).observation("8310-5", 38.0, "Cel", 1), &["red-flag-infection"], None),
        row("37.9 Cel does not", "fever threshold 38.0", pv(40).low_back_pain(7).observation("8310-5", 37.9, "Cel", 1), &[], None),
        row("101.5 degF counts", "fever in Fahrenheit", pv(40).low_back_pain(7).observation("8310-5", 101.5, "[degF]", 1), &["red-flag-infection"], None),
        row("100.0 degF does not", "37.8 C", pv(40).low_back_pain(7).observation("8310-5", 100.0, "[degF]", 1), &[], None),
        row("fever 60 days ago does not count", "fever look-back 30 days", pv(40).low_back_pain(7).observation("8310-5", 39.0, "Cel", 60), &[], None),
        row("temperature without a unit is not guessed", "CDS safety", pv(40).low_back_pain(7).observation("8310-5", 39.0, "", 1), &[], None),
        row("spinal epidural abscess", "ACR LBP variant 7", pv(40).low_back_pain(7).condition(ICD10, "G06.1", 3), &["red-flag-infection"], None),
        row("opioid dependence (possible IV drug use)", "ACR LBP variant 7; CMS166", pv(40).low_back_pain(7).condition(ICD10, "F11.20", 100), &["red-flag-infection"], None),
        row("HIV", "ACR LBP variant 7: immunosuppression", pv(40).low_back_pain(7).condition(ICD10, "B20", 2000), &["red-flag-infection"], None),
        row("kidney transplant status", "ACR LBP variant 7: immunosuppression", pv(40).low_back_pain(7).condition(ICD10, "Z94.0", 2000), &["red-flag-infection"], None),
        row("osteoporosis", "ACR LBP variant 6", pv(66).low_back_pain(7).condition(ICD10, "M81.0", 900), &["red-flag-fracture"], None),
        row("vertebral fracture 30 days ago", "ACR LBP variant 6", pv(55).low_back_pain(7).condition(ICD10, "S32.010A", 30), &["red-flag-fracture"], None),
        row("minor injury at 76", "ACR LBP variant 6: trauma, elderly", pv(76).low_back_pain(7).condition(ICD10, "S30.0XXA", 10), &["red-flag-fracture"], None),
        row("minor injury at 35 is not a red flag", "age > 70 with trauma", pv(35).low_back_pain(7).condition(ICD10, "S30.0XXA", 10), &[], None),
        row("prednisone 4 x 30 days in the last year", "ACR LBP variant 6: chronic steroid use (HEDIS 90 days)", pv(50).low_back_pain(7).medication("312617", "predniSONE 5 MG Oral Tablet", json!({"authoredOn": days_ago(150), "dispenseRequest": {"numberOfRepeatsAllowed": 3, "expectedSupplyDuration": {"value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}}})), &["red-flag-fracture"], None),
        row("prednisone for 10 days does not count", "HEDIS 90 days", pv(50).low_back_pain(7).medication("312617", "predniSONE 5 MG Oral Tablet", json!({"authoredOn": days_ago(40), "dispenseRequest": {"expectedSupplyDuration": {"value": 10, "code": "d"}}})), &[], None),
        row("absurd supply duration is capped, not a crash", "robustness; HEDIS 90 days", pv(50).low_back_pain(7).medication("312617", "prednisone 5 mg", json!({"authoredOn": days_ago(100), "dispenseRequest": {"numberOfRepeatsAllowed": 4294967295u64, "expectedSupplyDuration": {"value": 1e9, "code": "a"}}})), &["red-flag-fracture"], None),
        row("systemic corticosteroid without any date is a data note, not a flag", "CDS safety", pv(50).low_back_pain(7).medication("312617", "prednisone 5 mg", json!({})), &[], None),
        row("inhaled budesonide is not systemic", "systemic corticosteroids only", pv(50).low_back_pain(7).medication("19831", "budesonide inhaler", json!({"authoredOn": days_ago(200), "dispenseRequest": {"validityPeriod": {"start": days_ago(200), "end": days_ago(1)}}, "dosageInstruction": [{"route": {"text": "Inhalation"}}]})), &[], None),
        row("several categories -> one card each", "one card per red-flag category", pv(72).low_back_pain(7).condition(ICD10, "Z85.3", 3000).condition(ICD10, "M81.0", 900).observation("8310-5", 38.6, "Cel", 1), &["red-flag-cancer", "red-flag-fracture", "red-flag-infection"], None),
    ])
    .await;
}

/// Red-flag cards cite their evidence by reference and name the rule and guideline.
#[tokio::test]
async fn red_flag_cards_explain_themselves() {
    let app = TestApp::spawn().await;
    let scenario = Scenario::new("patient-view", 50).low_back_pain(7).condition(ICD10, "G83.4", 2);
    let response = app.cards("lbp-patient-view", &scenario.body()).await;
    let card = card(&response, "red-flag-cauda-equina");
    assert_eq!(card["indicator"], "critical");
    let detail = card["detail"].as_str().unwrap();
    let ces_ref = format!("Condition/{}", scenario.conditions[1]["id"].as_str().unwrap());
    let lbp_ref = format!("Condition/{}", scenario.conditions[0]["id"].as_str().unwrap());
    assert!(detail.contains(&ces_ref), "evidence reference missing: {detail}");
    assert!(detail.contains("G83.4"), "code missing: {detail}");
    assert!(detail.contains("cauda-equina-diagnosis"), "rule id missing: {detail}");
    assert!(detail.contains("variant 4"), "guideline missing: {detail}");
    assert!(detail.contains(&lbp_ref) && detail.contains("1 week"), "duration and its source missing: {detail}");
}
