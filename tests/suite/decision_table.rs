//! Decision tables for the clinical rules: one row per branch, each naming the guideline it
//! follows. Every row goes through the real server over HTTP.

use crate::common::*;
use serde_json::json;

struct Row {
    rule: &'static str,
    guideline: &'static str,
    scenario: Scenario,
    cards: &'static [&'static str],
    /// Expected PAMA rating of the first draft order, if any.
    pama: Option<&'static str>,
}

fn row(
    rule: &'static str,
    guideline: &'static str,
    scenario: Scenario,
    cards: &'static [&'static str],
    pama: Option<&'static str>,
) -> Row {
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
    run(
        "imaging-",
        vec![
            row(
                "no red flag, 2 weeks -> not indicated",
                "ACR LBP variant 1; Choosing Wisely AAFP",
                mri(pv(45).low_back_pain(14)),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "red flag present -> the imaging card is about the red flag",
                "ACR LBP variant 7",
                mri(pv(45).low_back_pain(14).condition(ICD10, "B20", 900)),
                &["imaging-indicated"],
                Some("appropriate"),
            ),
            row(
                "no red flag, 0 days -> not indicated",
                "ACR LBP variant 1",
                mri(pv(45).low_back_pain(0)),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "no red flag, 41 days (last day under 6 weeks) -> not indicated",
                "Choosing Wisely: first 6 weeks",
                mri(pv(45).low_back_pain(41)),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "no red flag, exactly 6 weeks -> conditional, not rated",
                "ACR LBP variants 2/3: after 6 weeks of care",
                mri(pv(45).low_back_pain(42)),
                &["imaging-conditional"],
                None,
            ),
            row(
                "no red flag, 5 months -> conditional",
                "ACR LBP variants 2/3",
                mri(pv(45).low_back_pain(150)),
                &["imaging-conditional"],
                None,
            ),
            row(
                "chronic LBP diagnosis recorded yesterday -> at least 12 weeks -> conditional",
                "ACP 2017: chronic = > 12 weeks",
                mri(pv(45).condition(SNOMED, "278860009", 1)),
                &["imaging-conditional"],
                None,
            ),
            row(
                "LBP with no date -> duration unknown -> conditional",
                "CDS safety: say so rather than guess",
                mri(pv(45).condition_full(ICD10, "M54.50", json!({}))),
                &["imaging-conditional"],
                None,
            ),
            row(
                "no LBP diagnosis -> indication unknown -> conditional",
                "CDS safety: rules are for LBP",
                mri(pv(45)),
                &["imaging-conditional"],
                None,
            ),
            row(
                "LBP as order reason only, no date -> conditional",
                "CDS safety",
                {
                    let mut s = mri(pv(45));
                    s.drafts[0]["reasonCode"] = json!([{"coding": [{"system": ICD10, "code": "M54.50"}]}]);
                    s
                },
                &["imaging-conditional"],
                None,
            ),
            row(
                "radiculopathy counts as LBP, 3 weeks -> not indicated",
                "ACR LBP variant 1 (± radiculopathy)",
                mri(pv(45).condition(ICD10, "M54.16", 21)),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "resolved LBP episode, no active LBP -> no episode -> conditional",
                "HEDIS episode logic",
                mri(pv(45).condition_full(
                    ICD10,
                    "M54.50",
                    json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(20)}),
                )),
                &["imaging-conditional"],
                None,
            ),
            row(
                "episode starts at earliest diagnosis within 180 days -> 10 weeks -> conditional",
                "HEDIS 180-day negative history",
                mri(pv(45).low_back_pain(10).condition_full(
                    ICD10,
                    "M54.59",
                    json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(70)}),
                )),
                &["imaging-conditional"],
                None,
            ),
            row(
                "diagnosis over 180 days before is a previous episode -> 2 weeks -> not indicated",
                "HEDIS 180-day negative history",
                mri(pv(45).low_back_pain(14).condition_full(
                    ICD10,
                    "M54.59",
                    json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(400)}),
                )),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "ICD-10 without dot still matches",
                "ICD-10-CM M54.50",
                mri(pv(45).condition(ICD10, "M5450", 14)),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "LOINC lumbar X-ray is recognised",
                "ACR LBP variant 1",
                pv(45).low_back_pain(14).order(LOINC, "24972-2", "XR Lumbar spine Views"),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "SNOMED lumbar CT is recognised",
                "ACR LBP variant 1",
                pv(45).low_back_pain(14).order(SNOMED, "572091000119106", "CT of lumbar spine without contrast"),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "local code recognised by its text",
                "ACR LBP variant 1",
                pv(45).low_back_pain(14).order("urn:oid:1.2.3.4", "IMG123", "MRI L-SPINE WO"),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "local code for a brain MRI is left alone",
                "scope: lumbar imaging only",
                pv(45).low_back_pain(14).order("urn:oid:1.2.3.4", "IMG9", "MRI BRAIN WO"),
                &[],
                None,
            ),
            row(
                "non-lumbar imaging is left alone",
                "scope: lumbar imaging only",
                pv(45).low_back_pain(14).order(CPT, "70551", "MRI brain without contrast"),
                &[],
                None,
            ),
            row(
                "child (12) -> adult rules do not fire",
                "ACP 2017 applies to adults",
                mri(pv(12).low_back_pain(7)),
                &[],
                None,
            ),
            row(
                "exactly 18 -> adult",
                "ACP 2017 applies to adults",
                mri(pv(18).low_back_pain(7)),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "red flag + MRI -> indicated, appropriate",
                "ACR LBP variant 7",
                mri(pv(45).low_back_pain(7).condition(ICD10, "C50.911", 300)),
                &["imaging-indicated"],
                Some("appropriate"),
            ),
            row(
                "cauda equina + X-ray -> indicated but X-ray usually not appropriate",
                "ACR LBP variant 4",
                xray(pv(45).low_back_pain(3).condition(ICD10, "R33.9", 2)),
                &["imaging-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "osteoporosis + X-ray -> appropriate",
                "ACR LBP variant 6",
                xray(pv(66).low_back_pain(7).condition(ICD10, "M81.0", 900)),
                &["imaging-indicated"],
                Some("appropriate"),
            ),
            row(
                "missing observations -> cannot exclude red flags -> conditional",
                "CDS Hooks prefetch: absent key",
                mri(pv(45).low_back_pain(14)).prefetch_override("observations", None),
                &["imaging-conditional"],
                None,
            ),
            row(
                "null observations -> no such data -> not indicated",
                "CDS Hooks prefetch: null",
                mri(pv(45).low_back_pain(14)).prefetch_override("observations", Some(json!(null))),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
        ],
    )
    .await;
}

/// The most urgent red flag sets the rating; older age and prior surgery have their variants;
/// SI-joint and sacrum imaging is not lumbar imaging; old diagnoses are history.
#[tokio::test]
async fn imaging_rating_follows_the_most_urgent_red_flag() {
    let os = |age| Scenario::new("order-sign", age);
    run(
        "imaging-",
        vec![
            row(
                "cauda equina + osteoporosis + X-ray -> rated by cauda equina: X-ray usually not appropriate",
                "ACR LBP variant 4 (most urgent), not variant 6",
                xray(os(66).low_back_pain(3).condition(ICD10, "G83.4", 2).condition(ICD10, "M81.0", 900)),
                &["imaging-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "cauda equina + osteoporosis + MRI -> appropriate",
                "ACR LBP variant 4: MRI usually appropriate",
                mri(os(66).low_back_pain(3).condition(ICD10, "G83.4", 2).condition(ICD10, "M81.0", 900)),
                &["imaging-indicated"],
                Some("appropriate"),
            ),
            row(
                "spondyloarthritis + osteoporosis + CT -> rated by fracture (more urgent): appropriate",
                "ACR LBP variant 6 before inflammatory back pain",
                os(66).low_back_pain(3).condition(ICD10, "M45.6", 900).condition(ICD10, "M81.0", 900).order(
                    CPT,
                    "72131",
                    "CT lumbar spine without contrast",
                ),
                &["imaging-indicated"],
                Some("appropriate"),
            ),
            row(
                "spondyloarthritis alone + CT -> usually not appropriate",
                "ACR Inflammatory Back Pain (SI-joint imaging first)",
                os(40).low_back_pain(3).condition(ICD10, "M45.6", 900).order(
                    CPT,
                    "72131",
                    "CT lumbar spine without contrast",
                ),
                &["imaging-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "prior lumbar surgery (Z98.1) + X-ray -> appropriate",
                "ACR LBP variant 5",
                xray(os(50).low_back_pain(3).condition(ICD10, "Z98.1", 2000)),
                &["imaging-indicated"],
                Some("appropriate"),
            ),
            row(
                "prior lumbar discectomy as a Procedure + MRI -> appropriate",
                "ACR LBP variant 5; HEDIS procedure history",
                mri(os(50).low_back_pain(3).procedure(CPT, "63030", 1500)),
                &["imaging-indicated"],
                Some("appropriate"),
            ),
            row(
                "age 71 alone, acute, MRI -> indicated (elderly)",
                "ACR LBP variant 6 (elderly; age > 70)",
                mri(os(71).low_back_pain(7)),
                &["imaging-indicated"],
                Some("appropriate"),
            ),
            row(
                "age 70 alone (boundary) -> not indicated",
                "age > 70 (ACR 2007 table; JGIM 2015)",
                mri(os(70).low_back_pain(7)),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "SI-joint X-ray (72200) is not lumbar imaging",
                "ACR Inflammatory Back Pain: SI-joint X-ray first line",
                os(40).low_back_pain(7).order(CPT, "72200", "X-ray sacroiliac joints, less than 3 views"),
                &[],
                None,
            ),
            row(
                "sacrum and coccyx X-ray (72220) is not lumbar imaging",
                "scope: lumbar spine imaging",
                os(40).low_back_pain(7).order(CPT, "72220", "X-ray sacrum and coccyx"),
                &[],
                None,
            ),
            row(
                "SI-joint X-ray by local text is not lumbar imaging",
                "scope: lumbar spine imaging",
                os(40).low_back_pain(7).order("urn:oid:1.2.3.4", "IMG7", "XR SI JOINTS 3+ VIEWS"),
                &[],
                None,
            ),
            row(
                "cauda equina diagnosis 365 days ago (boundary) still counts",
                "ACR LBP variant 4; rules.toml 365 days",
                mri(os(50).low_back_pain(7).condition(ICD10, "G83.4", 365)),
                &["imaging-indicated"],
                Some("appropriate"),
            ),
            row(
                "'active' cauda equina diagnosis 366 days ago is history -> not indicated",
                "dates, not status: 365-day window",
                mri(os(50).low_back_pain(7).condition(ICD10, "G83.4", 366)),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
            row(
                "benign neoplasm (D12.6 colon polyp) is not cancer -> not indicated",
                "ICD-10-CM D10-D36 benign",
                mri(os(50).low_back_pain(7).condition(ICD10, "D12.6", 400)),
                &["imaging-not-indicated"],
                Some("not-appropriate"),
            ),
        ],
    )
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
        row("minor injury at 35 is a red flag too (low-velocity trauma at any age)", "ACR LBP variant 6; CMS166 trauma (90 days)", pv(35).low_back_pain(7).condition(ICD10, "S30.0XXA", 10), &["red-flag-fracture"], None),
        row("prednisone 4 x 30 days in the last year", "ACR LBP variant 6: chronic steroid use (HEDIS 90 days)", pv(50).low_back_pain(7).medication("312617", "predniSONE 5 MG Oral Tablet", json!({"authoredOn": days_ago(150), "dispenseRequest": {"numberOfRepeatsAllowed": 3, "expectedSupplyDuration": {"value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}}})), &["red-flag-fracture"], None),
        row("prednisone for 10 days does not count", "HEDIS 90 days", pv(50).low_back_pain(7).medication("312617", "predniSONE 5 MG Oral Tablet", json!({"authoredOn": days_ago(40), "dispenseRequest": {"expectedSupplyDuration": {"value": 10, "code": "d"}}})), &[], None),
        row("absurd supply duration is capped, not a crash", "robustness; HEDIS 90 days", pv(50).low_back_pain(7).medication("312617", "prednisone 5 mg", json!({"authoredOn": days_ago(100), "dispenseRequest": {"numberOfRepeatsAllowed": 4294967295u64, "expectedSupplyDuration": {"value": 1e9, "code": "a"}}})), &["red-flag-fracture"], None),
        row("systemic corticosteroid without any date is a data note, not a flag", "CDS safety", pv(50).low_back_pain(7).medication("312617", "prednisone 5 mg", json!({})), &[], None),
        row("inhaled budesonide is not systemic", "systemic corticosteroids only", pv(50).low_back_pain(7).medication("19831", "budesonide inhaler", json!({"authoredOn": days_ago(200), "dispenseRequest": {"validityPeriod": {"start": days_ago(200), "end": days_ago(1)}}, "dosageInstruction": [{"route": {"text": "Inhalation"}}]})), &[], None),
        row("inhaled route by SNOMED code 447694001 alone is not systemic", "systemic corticosteroids only", pv(50).low_back_pain(7).medication("19831", "budesonide 0.5 MG", json!({"authoredOn": days_ago(200), "dispenseRequest": {"validityPeriod": {"start": days_ago(200), "end": days_ago(1)}}, "dosageInstruction": [{"route": {"coding": [{"system": SNOMED, "code": "447694001"}]}}]})), &[], None),
        row("subcutaneous route is systemic (not 'cutaneous')", "HEDIS 90 days; route words matched whole", pv(50).low_back_pain(7).medication("6902", "methylprednisolone injection", json!({"authoredOn": days_ago(200), "dispenseRequest": {"validityPeriod": {"start": days_ago(200), "end": days_ago(1)}}, "dosageInstruction": [{"route": {"text": "Subcutaneous"}}]})), &["red-flag-fracture"], None),
        row("transdermal route is systemic (not 'dermal')", "HEDIS 90 days; route words matched whole", pv(50).low_back_pain(7).medication("5492", "hydrocortisone", json!({"authoredOn": days_ago(200), "dispenseRequest": {"validityPeriod": {"start": days_ago(200), "end": days_ago(1)}}, "dosageInstruction": [{"route": {"text": "Transdermal"}}]})), &["red-flag-fracture"], None),
        row("topical product without a route is not systemic", "systemic corticosteroids only", pv(50).low_back_pain(7).medication("5492", "hydrocortisone 1% topical cream", json!({"authoredOn": days_ago(200), "dispenseRequest": {"validityPeriod": {"start": days_ago(200), "end": days_ago(1)}}})), &[], None),
        row("inhaler product without a route is not systemic", "systemic corticosteroids only", pv(50).low_back_pain(7).medication("19831", "budesonide 180 MCG/ACTUAT Dry Powder Inhaler", json!({"authoredOn": days_ago(200), "dispenseRequest": {"validityPeriod": {"start": days_ago(200), "end": days_ago(1)}}})), &[], None),
        row("several categories -> one card each", "one card per red-flag category", pv(72).low_back_pain(7).condition(ICD10, "Z85.3", 3000).condition(ICD10, "M81.0", 900).observation("8310-5", 38.6, "Cel", 1), &["red-flag-cancer", "red-flag-fracture", "red-flag-infection"], None),
    ])
    .await;
}

/// Dates, not status: each red-flag diagnosis counts for its window from its latest date.
#[tokio::test]
async fn red_flags_by_date() {
    let pv = |age| Scenario::new("patient-view", age);
    let resolved = |onset: i64, abated: i64| json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(onset), "abatementDateTime": days_ago(abated)});
    run(
        "red-flag-",
        vec![
            row(
                "cauda equina onset 365 days ago (boundary) counts",
                "ACR LBP variant 4; rules.toml 365 days",
                pv(50).low_back_pain(7).condition(ICD10, "G83.4", 365),
                &["red-flag-cauda-equina"],
                None,
            ),
            row(
                "'active' cauda equina onset 366 days ago is history, not critical",
                "dates, not status",
                pv(50).low_back_pain(7).condition(ICD10, "G83.4", 366),
                &[],
                None,
            ),
            row(
                "'active' cauda equina onset years ago but recorded 10 days ago counts (latest date)",
                "rules.toml: onset, recorded or abatement date",
                pv(50).low_back_pain(7).condition_full(
                    ICD10,
                    "G83.4",
                    json!({"onsetDateTime": "2019-01-01", "recordedDate": days_ago(10)}),
                ),
                &["red-flag-cauda-equina"],
                None,
            ),
            row(
                "resolved cauda equina, abated 100 days ago -> within the window from abatement",
                "ACR LBP variant 4; window from abatement",
                pv(50).low_back_pain(7).condition_full(ICD10, "G83.4", resolved(500, 100)),
                &["red-flag-cauda-equina"],
                None,
            ),
            row(
                "active cauda equina with no date counts (and says so)",
                "CDS safety: undated active",
                pv(50).low_back_pain(7).condition_full(ICD10, "G83.4", json!({})),
                &["red-flag-cauda-equina"],
                None,
            ),
            row(
                "urinary retention 90 days ago (boundary) counts",
                "CES symptoms: 90 days",
                pv(50).low_back_pain(7).condition(ICD10, "R33.9", 90),
                &["red-flag-cauda-equina"],
                None,
            ),
            row(
                "urinary retention 91 days ago is history",
                "CES symptoms: 90 days",
                pv(50).low_back_pain(7).condition(ICD10, "R33.9", 91),
                &[],
                None,
            ),
            row(
                "opioid dependence 365 days ago counts",
                "CMS166 12 months",
                pv(40).low_back_pain(7).condition(ICD10, "F11.20", 365),
                &["red-flag-infection"],
                None,
            ),
            row(
                "opioid dependence 366 days ago is history",
                "CMS166 12 months",
                pv(40).low_back_pain(7).condition(ICD10, "F11.20", 366),
                &[],
                None,
            ),
            row(
                "injury 90 days ago (boundary) counts",
                "CMS166/HEDIS trauma 90 days",
                pv(40).low_back_pain(7).condition(ICD10, "S32.019A", 200).condition(ICD10, "S30.0XXA", 90),
                &["red-flag-fracture"],
                None,
            ),
            row(
                "injury 91 days ago does not",
                "CMS166/HEDIS trauma 90 days",
                pv(40).low_back_pain(7).condition(ICD10, "S30.0XXA", 91),
                &[],
                None,
            ),
        ],
    )
    .await;
}

/// Codes that mean something else, and red flags that were missing.
#[tokio::test]
async fn red_flag_codes() {
    let pv = |age| Scenario::new("patient-view", age);
    run(
        "red-flag-",
        vec![
            row(
                "benign neoplasm D12.6 is not cancer",
                "ICD-10-CM D10-D36 benign neoplasms",
                pv(60).low_back_pain(7).condition(ICD10, "D12.6", 100),
                &[],
                None,
            ),
            row(
                "benign neoplasm D36.9 is not cancer",
                "ICD-10-CM D10-D36 benign neoplasms",
                pv(60).low_back_pain(7).condition(ICD10, "D36.9", 100),
                &[],
                None,
            ),
            row(
                "in situ carcinoma D05.10 counts",
                "HEDIS cancer D00-D09",
                pv(60).low_back_pain(7).condition(ICD10, "D05.10", 100),
                &["red-flag-cancer"],
                None,
            ),
            row(
                "neoplasm of uncertain behavior D37.1 counts",
                "HEDIS cancer D37-D49",
                pv(60).low_back_pain(7).condition(ICD10, "D37.1", 100),
                &["red-flag-cancer"],
                None,
            ),
            row(
                "cannabis dependence is not injection drug use",
                "ACR LBP variant 7 (IV drug use)",
                pv(30).low_back_pain(7).condition(ICD10, "F12.20", 10),
                &[],
                None,
            ),
            row(
                "alcohol dependence is not injection drug use",
                "ACR LBP variant 7 (IV drug use)",
                pv(30).low_back_pain(7).condition(ICD10, "F10.20", 10),
                &[],
                None,
            ),
            row(
                "nicotine dependence is not injection drug use",
                "ACR LBP variant 7 (IV drug use)",
                pv(30).low_back_pain(7).condition(ICD10, "F17.210", 10),
                &[],
                None,
            ),
            row(
                "cocaine dependence counts",
                "ACR LBP variant 7; CMS166",
                pv(30).low_back_pain(7).condition(ICD10, "F14.20", 10),
                &["red-flag-infection"],
                None,
            ),
            row(
                "burn of the hand (T23.2) is not trauma",
                "trauma: injuries that fracture",
                pv(40).low_back_pain(7).condition(ICD10, "T23.201A", 10),
                &[],
                None,
            ),
            row(
                "foreign body in the eye (T15) is not trauma",
                "trauma: injuries that fracture",
                pv(40).low_back_pain(7).condition(ICD10, "T15.00XA", 10),
                &[],
                None,
            ),
            row(
                "fall on the same level (W01) counts",
                "ACR LBP variant 6 (low-velocity trauma)",
                pv(40).low_back_pain(7).condition(ICD10, "W01.XXXA", 10),
                &["red-flag-fracture"],
                None,
            ),
            row(
                "car accident (V43) counts",
                "ACR LBP variant 6; spine trauma pathway",
                pv(40).low_back_pain(7).condition(ICD10, "V43.52XA", 10),
                &["red-flag-fracture"],
                None,
            ),
            row(
                "lumbar strain is low back pain, not trauma",
                "lbp-diagnosis S39.012A",
                pv(40).condition(ICD10, "S39.012A", 10),
                &[],
                None,
            ),
            row(
                "fragility fracture history (Z87.310) counts at any time",
                "ACR LBP variant 6 (osteoporosis)",
                pv(60).low_back_pain(7).condition(ICD10, "Z87.310", 3000),
                &["red-flag-fracture"],
                None,
            ),
            row(
                "osteoporosis treatment (alendronate) is evidence of osteoporosis",
                "ACR LBP variant 6; HEDIS osteoporosis medications",
                pv(60).low_back_pain(7).medication(
                    "46041",
                    "alendronate 70 MG Oral Tablet",
                    json!({"status": "completed", "authoredOn": "2019-03-01"}),
                ),
                &["red-flag-fracture"],
                None,
            ),
            row(
                "kidney transplant as a Procedure (ICD-10-PCS) counts",
                "ACR LBP variant 7 (immunosuppression); HEDIS procedure history",
                pv(50).low_back_pain(7).procedure("http://www.cms.gov/Medicare/Coding/ICD10", "0TY00Z0", 2000),
                &["red-flag-infection"],
                None,
            ),
            row(
                "prior lumbar surgery (postlaminectomy syndrome)",
                "ACR LBP variant 5",
                pv(50).low_back_pain(7).condition(ICD10, "M96.1", 2000),
                &["red-flag-prior-surgery"],
                None,
            ),
            row(
                "lumbar fusion as a Procedure",
                "ACR LBP variant 5",
                pv(50).low_back_pain(7).procedure(CPT, "22612", 2000),
                &["red-flag-prior-surgery"],
                None,
            ),
            row(
                "ankylosing spondylitis",
                "ACR Inflammatory Back Pain; NICE NG65",
                pv(35).low_back_pain(7).condition(ICD10, "M45.7", 2000),
                &["red-flag-inflammatory"],
                None,
            ),
            row(
                "sacroiliitis",
                "ACR Inflammatory Back Pain; NICE NG65",
                pv(35).low_back_pain(7).condition(ICD10, "M46.1", 200),
                &["red-flag-inflammatory"],
                None,
            ),
            row(
                "older age alone (75) is no red-flag card on patient-view",
                "ACR LBP variant 6 rates imaging orders only",
                pv(75).low_back_pain(7),
                &[],
                None,
            ),
        ],
    )
    .await;
}

/// Past red flags: an info card on patient-view that says which date it used; routine guidance
/// still applies. The imaging card lists them as a line.
#[tokio::test]
async fn past_red_flags_are_history() {
    let app = TestApp::spawn().await;
    let scenario = Scenario::new("patient-view", 50).low_back_pain(7).condition(ICD10, "G83.4", 800);
    let response = app.cards("lbp-patient-view", &scenario.body()).await;
    let types = card_types(&response);
    assert!(
        types.contains(&"past-red-flags".to_owned()) && !types.iter().any(|t| t.starts_with("red-flag-")),
        "{types:?}"
    );
    assert!(types.contains(&"pt-referral".to_owned()), "routine guidance beside history: {types:?}");
    let past = card(&response, "past-red-flags");
    assert_eq!(past["indicator"], "info");
    let detail = past["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("onset {}", days_ago(800))) && detail.contains("history"), "{detail}");

    // An old injury or fever says nothing: no history card.
    let scenario = Scenario::new("patient-view", 50).low_back_pain(7).condition(ICD10, "S30.0XXA", 800);
    let response = app.cards("lbp-patient-view", &scenario.body()).await;
    assert!(!card_types(&response).contains(&"past-red-flags".to_owned()));

    // On orders, a line in the imaging card.
    let scenario = Scenario::new("order-sign", 50).low_back_pain(7).condition(ICD10, "G83.4", 800).order(
        CPT,
        "72148",
        "MRI lumbar",
    );
    let response = app.cards("lbp-order-sign", &scenario.body()).await;
    let detail = card(&response, "imaging-not-indicated")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("Past red flags") && detail.contains("G83.4"), "{detail}");

    // An undated active red flag says so.
    let scenario = Scenario::new("patient-view", 50).low_back_pain(7).condition_full(ICD10, "G83.4", json!({}));
    let response = app.cards("lbp-patient-view", &scenario.body()).await;
    let detail = card(&response, "red-flag-cauda-equina")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("no onset, recorded or abatement date"), "{detail}");
    let scenario = Scenario::new("patient-view", 50).low_back_pain(7).condition(ICD10, "G83.4", 20);
    let response = app.cards("lbp-patient-view", &scenario.body()).await;
    let detail = card(&response, "red-flag-cauda-equina")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains(&format!("onset {}, within the 365-day window", days_ago(20))), "{detail}");
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

/// Today is the clinic's today: the 6-week boundary moves with `--time-zone` (through the server).
#[tokio::test]
async fn the_clinical_date_is_the_clinics() {
    use lbp_cds::clock::{date_at, parse_time_zone};
    let east = parse_time_zone("Pacific/Kiritimati").unwrap();
    let west = parse_time_zone("Pacific/Pago_Pago").unwrap();
    let onset = (date_at(jiff::Timestamp::now(), &east) - time::Duration::days(42)).to_string();
    let scenario = Scenario::new("order-sign", 45)
        .condition_full(ICD10, "M54.50", json!({"onsetDateTime": onset}))
        .order(CPT, "72148", "MRI lumbar");
    for (zone, want) in [(east, "imaging-conditional"), (west, "imaging-not-indicated")] {
        let settings =
            lbp_cds::config::Settings { time_zone: Some(zone.clone()), ..lbp_cds::config::Settings::default() };
        let app = TestApp::spawn_with(settings).await;
        let response = app.cards("lbp-order-sign", &scenario.body()).await;
        let types = card_types(&response);
        assert!(
            types.contains(&want.to_owned()),
            "{:?}: {types:?} (ACR LBP variant 1 before 6 weeks, local date)",
            zone.iana_name()
        );
    }
}
