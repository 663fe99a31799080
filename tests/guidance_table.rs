//! Decision tables for the guidance cards (referral, stratified care, continuing therapy,
//! reassessment, medication and passive-modality advice), each row naming its source. Rows go
//! through the real server; boundary dates (exactly 4, 6 and 12 weeks) are covered.

mod common;

use common::*;
use lbp_cds::content::Content;
use serde_json::{json, Value};

struct Row {
    rule: &'static str,
    source: &'static str,
    scenario: Scenario,
    cards: &'static [&'static str],
    /// (card type, variant key) that must have been chosen.
    variant: Option<(&'static str, &'static str)>,
}

fn row(rule: &'static str, source: &'static str, scenario: Scenario, cards: &'static [&'static str]) -> Row {
    Row { rule, source, scenario, cards, variant: None }
}

fn with_variant(mut row: Row, card: &'static str, variant: &'static str) -> Row {
    row.variant = Some((card, variant));
    row
}

/// Which variant of `card_type` a rendered card used, told by the variant's advice text.
fn variant_of(content: &Content, card_type: &str, card: &Value) -> Option<String> {
    let detail = card["detail"].as_str()?;
    content
        .card(card_type)
        .variants
        .iter()
        .find(|(_, variant)| {
            let prefix = variant.advice.literal_prefix().trim();
            !prefix.is_empty() && detail.contains(prefix)
        })
        .map(|(key, _)| key.clone())
}

async fn run(rows: Vec<Row>) {
    let app = TestApp::spawn().await;
    let content = Content::embedded().unwrap();
    let mut failures = Vec::new();
    for row in rows {
        let response = app.cards(row.scenario.service(), &row.scenario.body()).await;
        let got: Vec<String> = card_types(&response).into_iter().filter(|t| lbp_cds::content::is_guidance(t)).collect();
        let mut want: Vec<String> = row.cards.iter().map(|c| (*c).to_owned()).collect();
        want.sort();
        if got != want {
            failures.push(format!("{} [{}]: cards {got:?}, want {want:?}", row.rule, row.source));
            continue;
        }
        if let Some((card_type, variant)) = row.variant {
            let chosen = variant_of(&content, card_type, card(&response, card_type));
            if chosen.as_deref() != Some(variant) {
                failures.push(format!("{} [{}]: {card_type} variant {chosen:?}, want {variant}", row.rule, row.source));
            }
        }
    }
    assert!(failures.is_empty(), "guidance rows failed:\n{}", failures.join("\n"));
}

fn pv(age: i32) -> Scenario {
    Scenario::new("patient-view", age)
}

/// A STarT Back result recorded as total and distress scores.
fn scores(s: Scenario, total: i64, distress: i64, days_ago: i64) -> Scenario {
    s.observation_with("91351-7", days_ago, json!({"valueInteger": total}))
        .observation_with("91350-9", days_ago, json!({"valueInteger": distress}))
}

/// A recorded medium-risk STarT Back result, so that the screening card stays out of rows about
/// other cards (a low-risk result would itself hold back the referral).
fn screened(s: Scenario) -> Scenario {
    scores(s, 5, 2, 1)
}

const PT_EXERCISE: &str = "97110";
const OT_EVALUATION: &str = "97165";

#[tokio::test]
async fn therapy_referral_and_continuation() {
    run(vec![
        row("LBP, no therapy this episode -> refer", "ACP 2017 (exercise, rehabilitation); NICE NG59 1.2.1", screened(pv(45).low_back_pain(14)), &["pt-referral", "stratified-care"]),
        row("low STarT Back risk -> self-management, no referral", "NICE NG59 1.1.2; Hill 2011", scores(pv(45).low_back_pain(14), 2, 1, 1), &["stratified-care"]),
        row("PT referral on record this episode -> no referral card", "ACP 2017", screened(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 5)), &["stratified-care"]),
        row("PT referral before this episode does not count", "HEDIS 180-day episode", screened(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 200)), &["pt-referral", "stratified-care"]),
        row("an OT evaluation this episode counts as therapy", "ACP 2017", screened(pv(45).low_back_pain(14).procedure(CPT, OT_EVALUATION, 3)), &["stratified-care"]),
        row("red flag -> no guidance at all", "red flags first (ACR LBP variant 4)", pv(45).low_back_pain(14).condition(ICD10, "G83.4", 1), &[]),
        row("child -> no guidance", "ACP 2017 is for adults", pv(12).low_back_pain(14), &[]),
        row("procedures unavailable -> referral not offered", "CDS safety: missing data", screened(pv(45).low_back_pain(14)).prefetch_override("procedures", None), &["stratified-care"]),
        row("one PT session this episode -> continue therapy", "ACP 2017; NICE NG59 (exercise programme)", screened(pv(45).low_back_pain(21).procedure(CPT, PT_EXERCISE, 5)), &["continue-therapy", "stratified-care"]),
        row("two PT sessions on different days -> no card", "ACP 2017", screened(pv(45).low_back_pain(21).procedure(CPT, PT_EXERCISE, 10).procedure(CPT, PT_EXERCISE, 5)), &["stratified-care"]),
        row("evaluation and exercise on one day are one session", "ACP 2017", screened(pv(45).low_back_pain(21).procedure(CPT, "97161", 5).procedure(CPT, PT_EXERCISE, 5)), &["continue-therapy", "stratified-care"]),
        row("a session before this episode does not count", "HEDIS 180-day episode", screened(pv(45).low_back_pain(21).procedure(CPT, PT_EXERCISE, 300)), &["pt-referral", "stratified-care"]),
        row("imaging not indicated -> referral offered with the warning", "ACR LBP variant 1; ACP 2017", Scenario::new("order-sign", 45).low_back_pain(14).order(CPT, "72148", "MRI lumbar"), &["pt-referral"]),
        row("imaging conditional -> no referral card on the order hook", "ACR LBP variants 2/3", Scenario::new("order-sign", 45).low_back_pain(60).order(CPT, "72148", "MRI lumbar"), &[]),
        row("PT already being ordered -> no referral card", "ACP 2017", Scenario::new("order-sign", 45).low_back_pain(14).order(CPT, "72148", "MRI lumbar").order(SNOMED, "91251008", "Physical therapy"), &[]),
    ])
    .await;
}

#[tokio::test]
async fn start_back_screening_and_stratified_care() {
    run(vec![
        row("no STarT Back result -> screen", "NICE NG59 1.1.2 (first contact, each new episode)", pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2), &["start-back-screening"]),
        with_variant(row("risk level recorded: high", "Hill 2011 (STarT Back trial)", pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2).observation_with("91352-5", 3, json!({"valueCodeableConcept": {"coding": [{"system": LOINC, "code": "LA9193-9", "display": "High risk"}]}})), &["stratified-care"]), "stratified-care", "high"),
        with_variant(row("total 3 -> low (boundary)", "Hill 2008 scoring: total <= 3 low", scores(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2), 3, 3, 3), &["stratified-care"]), "stratified-care", "low"),
        with_variant(row("total 4, distress 3 -> medium", "Hill 2008 scoring", scores(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2), 4, 3, 3), &["stratified-care"]), "stratified-care", "medium"),
        with_variant(row("total 6, distress 4 -> high (boundary)", "Hill 2008 scoring: distress >= 4 high", scores(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2), 6, 4, 3), &["stratified-care"]), "stratified-care", "high"),
        with_variant(row("nine questionnaire answers, total 4, distress 0 -> medium", "Keele SBST scoring", pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2).start_back_questionnaire([1, 1, 1, 1, 0, 0, 0, 0, 0], 2), &["stratified-care"]), "stratified-care", "medium"),
        with_variant(row("nine questionnaire answers all agree -> high", "Keele SBST scoring", pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2).start_back_questionnaire([1; 9], 2), &["stratified-care"]), "stratified-care", "high"),
        with_variant(row("nine item Observations, total 2 -> low", "Keele SBST scoring (LOINC 91340-0..91348-3)", {
            let codes = ["91340-0", "91341-8", "91342-6", "91343-4", "91344-2", "91345-9", "91346-7", "91347-5", "91348-3"];
            codes.iter().enumerate().fold(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2), |s, (i, code)| {
                s.observation_with(code, 2, json!({"valueInteger": if i < 2 { 1 } else { 0 }}))
            })
        }, &["stratified-care"]), "stratified-care", "low"),
        row("only 8 of 9 items -> cannot score -> screen", "Keele SBST scoring needs all items", {
            let codes = ["91340-0", "91341-8", "91342-6", "91343-4", "91344-2", "91345-9", "91346-7", "91347-5"];
            codes.iter().fold(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2), |s, code| s.observation_with(code, 2, json!({"valueInteger": 1})))
        }, &["start-back-screening"]),
        row("a result from before this episode -> screen again", "NICE NG59 1.1.2 (each new episode)", scores(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 2), 7, 5, 300), &["start-back-screening"]),
    ])
    .await;
}

#[tokio::test]
async fn reassessment_at_4_6_and_12_weeks() {
    let referred = |days: i64| screened(pv(45).low_back_pain(days).referral(SNOMED, "91251008", days - 1));
    run(vec![
        row("27 days -> too early to reassess", "ACP 2007: most improve within the first month", referred(27), &["stratified-care"]),
        with_variant(row("exactly 4 weeks, no measures -> review", "ACR LBP: reassess after 4-6 weeks of care", referred(28), &["reassess-progress", "stratified-care"]), "reassess-progress", "early"),
        with_variant(row("exactly 6 weeks, no measures -> review", "ACR LBP: ~6 weeks of management", referred(42), &["reassess-progress", "stratified-care"]), "reassess-progress", "early"),
        row("pain 8 -> 4 (50%) -> improved, no card", "MCID 30% (convention)", referred(35).observation("72514-3", 8.0, "{score}", 30).observation("72514-3", 4.0, "{score}", 2), &["stratified-care"]),
        with_variant(row("pain 8 -> 7 -> not improved -> review", "MCID 30% (convention)", referred(35).observation("72514-3", 8.0, "{score}", 30).observation("72514-3", 7.0, "{score}", 2), &["reassess-progress", "stratified-care"]), "reassess-progress", "early"),
        row("Oswestry 40 -> 26 (35%) -> improved", "ODI MCID (convention)", referred(50).observation("97909-6", 40.0, "{score}", 40).observation("97909-6", 26.0, "{score}", 3), &["stratified-care"]),
        with_variant(row("83 days with therapy -> still early review", "ACP 2017: chronic after 12 weeks", referred(83), &["reassess-progress", "stratified-care"]), "reassess-progress", "early"),
        with_variant(row("exactly 12 weeks despite therapy -> multidisciplinary rehabilitation", "ACP 2017; NICE NG59 1.2.7; ACR variant 3", referred(84), &["reassess-progress", "stratified-care"]), "reassess-progress", "late"),
        with_variant(row("12 weeks without therapy -> referral first, review", "ACP 2017", screened(pv(45).low_back_pain(84)), &["pt-referral", "reassess-progress", "stratified-care"]), "reassess-progress", "early"),
    ])
    .await;
}

#[tokio::test]
async fn medication_and_passive_modality_advice() {
    let os = |age| Scenario::new("order-select", age);
    run(vec![
        with_variant(row("opioid product recognised by ingredient text -> NSAIDs first", "ACP 2017; CDC 2022", os(45).low_back_pain(10).medication_order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet"), &["medication-advice"]), "medication-advice", "opioid"),
        with_variant(row("muscle relaxant by ingredient code", "ACP 2017 (option, sedation)", os(45).low_back_pain(10).medication_order("21949", "cyclobenzaprine"), &["medication-advice"]), "medication-advice", "muscle-relaxant"),
        with_variant(row("benzodiazepine", "ACP 2017 (insufficient evidence); NICE NG59", os(45).low_back_pain(10).medication_order("3322", "diazepam"), &["medication-advice"]), "medication-advice", "benzodiazepine"),
        row("NSAID -> no advice", "ACP 2017: NSAIDs first line", os(45).low_back_pain(10).medication_order("5640", "ibuprofen"), &[]),
        row("opioid without a low back pain diagnosis -> not ours to judge", "scope: LBP", os(45).medication_order("7804", "oxycodone"), &[]),
        row("opioid not selected on order-select -> no advice", "CDS Hooks order-select: selections only", {
            let mut s = os(45).low_back_pain(10).medication_order("7804", "oxycodone");
            s.selections.clear();
            s
        }, &[]),
        row("TENS by CPT -> no benefit, exercise instead", "NICE NG59 1.2.6; ACP 2017", os(45).low_back_pain(10).order(CPT, "97014", "Electrical stimulation unattended"), &["passive-modality"]),
        row("traction by local text", "NICE NG59 1.2.5", os(45).low_back_pain(10).order("urn:oid:1.2.3", "PT77", "Mechanical traction, lumbar"), &["passive-modality"]),
        row("diagnostic ultrasound is not a passive modality", "scope", os(45).low_back_pain(10).order("urn:oid:1.2.3", "US1", "Ultrasound abdomen complete"), &[]),
        row("therapeutic exercise is what we want", "ACP 2017", os(45).low_back_pain(10).order(CPT, "97110", "Therapeutic exercise"), &[]),
        row("red flag -> no medication advice", "red flags first", os(60).low_back_pain(10).condition(ICD10, "C61", 100).medication_order("7804", "oxycodone"), &[]),
    ])
    .await;
}
