//! Decision tables for the guidance cards (referral, stratified care, continuing therapy,
//! reassessment, medication and passive-modality advice), each row naming its source. Rows go
//! through the real server; boundary dates (exactly 4, 6 and 12 weeks) are covered.

use crate::common::*;
use lbp_cds::content::Content;
use serde_json::{Value, json};

struct Row {
    rule: &'static str,
    source: &'static str,
    scenario: Scenario,
    cards: &'static [&'static str],
    /// (card type, variant key) that must have been chosen.
    variant: Option<(&'static str, &'static str)>,
    /// (card type, indicator, cautions named in its detail): the strength of the advice.
    strength: Option<(&'static str, &'static str, &'static [&'static str])>,
}

fn row(rule: &'static str, source: &'static str, scenario: Scenario, cards: &'static [&'static str]) -> Row {
    Row { rule, source, scenario, cards, variant: None, strength: None }
}

/// The card's indicator, and exactly these cautions (by rule id) in its detail.
fn with_strength(mut row: Row, card: &'static str, indicator: &'static str, cautions: &'static [&'static str]) -> Row {
    row.strength = Some((card, indicator, cautions));
    row
}

fn with_variant(mut row: Row, card: &'static str, variant: &'static str) -> Row {
    row.variant = Some((card, variant));
    row
}

/// Which variant of `card_type` a rendered card used, told by the variant's advice text.
fn variant_of(content: &Content, card_type: &str, card: &Value) -> Option<String> {
    let detail = card["detail"].as_str()?;
    content
        .card(lbp_cds::content::CardType::parse(card_type)?)
        .variants
        .iter()
        .find(|(_, variant)| {
            let prefix = variant.advice_full.literal_prefix().trim();
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
        let got: Vec<String> = card_types(&response)
            .into_iter()
            .filter(|t| lbp_cds::content::CardType::parse(t).is_some_and(|t| t.is_guidance()))
            .collect();
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
        if let Some((card_type, indicator, cautions)) = row.strength {
            let found = card(&response, card_type);
            let detail = found["detail"].as_str().unwrap_or_default();
            let named: Vec<&str> = content
                .rules
                .cautions
                .iter()
                .map(|c| c.id.as_str())
                .filter(|id| detail.contains(&format!("rule `{id}`")))
                .collect();
            let mut want: Vec<&str> = cautions.to_vec();
            want.sort();
            let mut named = named;
            named.sort();
            if found["indicator"] != indicator || named != want {
                failures.push(format!(
                    "{} [{}]: {card_type} {} with cautions {named:?}, want {indicator} with {want:?}",
                    row.rule, row.source, found["indicator"]
                ));
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
    s.observation_with("91351-7", days_ago, json!({"valueInteger": total})).observation_with(
        "91350-9",
        days_ago,
        json!({"valueInteger": distress}),
    )
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
        row(
            "LBP, no therapy this episode -> refer",
            "ACP 2017 (exercise, rehabilitation); NICE NG59 1.2.1",
            screened(pv(45).low_back_pain(14)),
            &["pt-referral", "stratified-care"],
        ),
        row(
            "low STarT Back risk -> self-management, no referral",
            "NICE NG59 1.1.2; Hill 2011",
            scores(pv(45).low_back_pain(14), 2, 1, 1),
            &["stratified-care"],
        ),
        row(
            "PT referral on record this episode -> no referral card",
            "ACP 2017",
            screened(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 5)),
            &["stratified-care"],
        ),
        row(
            "PT referral before this episode does not count",
            "HEDIS 180-day episode",
            screened(pv(45).low_back_pain(14).referral(SNOMED, "91251008", 200)),
            &["pt-referral", "stratified-care"],
        ),
        row(
            "an OT evaluation this episode counts as therapy",
            "ACP 2017",
            screened(pv(45).low_back_pain(14).procedure(CPT, OT_EVALUATION, 3)),
            &["stratified-care"],
        ),
        row(
            "red flag -> no routine guidance",
            "red flags first (ACR LBP variant 4)",
            pv(45).low_back_pain(14).condition(ICD10, "G83.4", 1),
            &[],
        ),
        row(
            "older age alone (75) -> routine guidance still offered",
            "ACR LBP variant 6 counts age only for imaging",
            screened(pv(75).low_back_pain(14)),
            &["pt-referral", "stratified-care"],
        ),
        row(
            "past red flag (history) -> routine guidance still offered",
            "dates, not status",
            screened(pv(45).low_back_pain(14).condition(ICD10, "G83.4", 800)),
            &["pt-referral", "stratified-care"],
        ),
        row("child -> no guidance", "ACP 2017 is for adults", pv(12).low_back_pain(14), &[]),
        row(
            "procedures unavailable -> referral not offered",
            "CDS safety: missing data",
            screened(pv(45).low_back_pain(14)).prefetch_override("procedures", None),
            &["stratified-care"],
        ),
        row(
            "one PT session 7 days ago (boundary) -> continue therapy",
            "ACP 2017; NICE NG59 (exercise programme); rules.toml continue_therapy_min_gap_days",
            screened(pv(45).low_back_pain(21).procedure(CPT, PT_EXERCISE, 7)),
            &["continue-therapy", "stratified-care"],
        ),
        row(
            "one PT session 6 days ago -> too early: a second session may not have happened yet",
            "rules.toml continue_therapy_min_gap_days 7",
            screened(pv(45).low_back_pain(21).procedure(CPT, PT_EXERCISE, 6)),
            &["stratified-care"],
        ),
        row(
            "two PT sessions on different days -> no card",
            "ACP 2017",
            screened(pv(45).low_back_pain(21).procedure(CPT, PT_EXERCISE, 10).procedure(CPT, PT_EXERCISE, 5)),
            &["stratified-care"],
        ),
        row(
            "evaluation and exercise on one day are one session",
            "ACP 2017",
            screened(pv(45).low_back_pain(21).procedure(CPT, "97161", 9).procedure(CPT, PT_EXERCISE, 9)),
            &["continue-therapy", "stratified-care"],
        ),
        row(
            "a session before this episode does not count",
            "HEDIS 180-day episode",
            screened(pv(45).low_back_pain(21).procedure(CPT, PT_EXERCISE, 300)),
            &["pt-referral", "stratified-care"],
        ),
        row(
            "imaging not indicated -> referral offered with the warning",
            "ACR LBP variant 1; ACP 2017",
            Scenario::new("order-sign", 45).low_back_pain(14).order(CPT, "72148", "MRI lumbar"),
            &["pt-referral"],
        ),
        row(
            "imaging conditional -> no referral card on the order hook",
            "ACR LBP variants 2/3",
            Scenario::new("order-sign", 45).low_back_pain(60).order(CPT, "72148", "MRI lumbar"),
            &[],
        ),
        row(
            "PT already being ordered -> no referral card",
            "ACP 2017",
            Scenario::new("order-sign", 45).low_back_pain(14).order(CPT, "72148", "MRI lumbar").order(
                SNOMED,
                "91251008",
                "Physical therapy",
            ),
            &[],
        ),
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
    // Pain 8 at onset, 7 yesterday: a 12.5% fall, no documented improvement.
    let unimproved = |s: Scenario, days: i64| {
        s.observation("72514-3", 8.0, "{score}", days).observation("72514-3", 7.0, "{score}", 1)
    };
    run(vec![
        row(
            "27 days -> too early to reassess",
            "ACP 2007: most improve within the first month",
            referred(27),
            &["stratified-care"],
        ),
        with_variant(
            row(
                "exactly 4 weeks, no scores -> ask once for a score",
                "ACR LBP: reassess after 4-6 weeks; rules.toml reassess_ask_window_days",
                referred(28),
                &["reassess-progress", "stratified-care"],
            ),
            "reassess-progress",
            "no-scores",
        ),
        with_variant(
            row(
                "41 days, no scores -> still asking (last day of the window)",
                "rules.toml reassess_ask_window_days 14",
                referred(41),
                &["reassess-progress", "stratified-care"],
            ),
            "reassess-progress",
            "no-scores",
        ),
        row(
            "42 days, no scores -> asked already: no review at every visit",
            "rules.toml reassess_ask_window_days 14",
            referred(42),
            &["stratified-care"],
        ),
        row(
            "12 weeks, no scores -> no review without a measure",
            "rules.toml reassess_ask_window_days 14",
            referred(84),
            &["stratified-care"],
        ),
        with_variant(
            row(
                "exactly 6 weeks, pain not improved -> review",
                "ACR LBP: ~6 weeks of management",
                unimproved(referred(42), 40),
                &["reassess-progress", "stratified-care"],
            ),
            "reassess-progress",
            "early",
        ),
        row(
            "pain 8 -> 4 (50%) -> improved, no card",
            "MCID 30% (convention)",
            referred(35).observation("72514-3", 8.0, "{score}", 30).observation("72514-3", 4.0, "{score}", 2),
            &["stratified-care"],
        ),
        with_variant(
            row(
                "pain 8 -> 7 -> not improved -> review",
                "MCID 30% (convention)",
                referred(35).observation("72514-3", 8.0, "{score}", 30).observation("72514-3", 7.0, "{score}", 2),
                &["reassess-progress", "stratified-care"],
            ),
            "reassess-progress",
            "early",
        ),
        row(
            "Oswestry 40 -> 26 (35%) -> improved",
            "ODI MCID (convention)",
            referred(50).observation("97909-6", 40.0, "{score}", 40).observation("97909-6", 26.0, "{score}", 3),
            &["stratified-care"],
        ),
        with_variant(
            row(
                "83 days with therapy, not improved -> still early review",
                "ACP 2017: chronic after 12 weeks",
                unimproved(referred(83), 80),
                &["reassess-progress", "stratified-care"],
            ),
            "reassess-progress",
            "early",
        ),
        with_variant(
            row(
                "exactly 12 weeks despite therapy, not improved -> multidisciplinary rehabilitation",
                "ACP 2017; NICE NG59 1.2.7; ACR variant 3",
                unimproved(referred(84), 80),
                &["reassess-progress", "stratified-care"],
            ),
            "reassess-progress",
            "late",
        ),
        with_variant(
            row(
                "12 weeks without therapy, not improved -> referral first, review",
                "ACP 2017",
                unimproved(screened(pv(45).low_back_pain(84)), 80),
                &["pt-referral", "reassess-progress", "stratified-care"],
            ),
            "reassess-progress",
            "early",
        ),
    ])
    .await;
}

/// A low STarT Back result expires with its episode; the imaging warning does not suggest a
/// referral that pt-referral withholds.
#[tokio::test]
async fn start_back_expiry_and_the_imaging_referral() {
    let resolved = json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(150), "abatementDateTime": days_ago(100)});
    let os = || Scenario::new("order-sign", 45);
    run(vec![
        row(
            "low risk from a resolved episode (HEDIS-joined) has expired -> screen again, refer",
            "NICE NG59 1.1.2 (each new episode)",
            scores(pv(45).low_back_pain(10).condition_full(ICD10, "M54.50", resolved.clone()), 2, 1, 120),
            &["pt-referral", "start-back-screening"],
        ),
        row(
            "low risk recorded after the resolution holds -> self-management",
            "NICE NG59 1.1.2; Hill 2011",
            scores(pv(45).low_back_pain(10).condition_full(ICD10, "M54.50", resolved.clone()), 2, 1, 5),
            &["stratified-care"],
        ),
        row(
            "low risk on the day of the resolution has expired",
            "NICE NG59 1.1.2 (each new episode)",
            scores(pv(45).low_back_pain(10).condition_full(ICD10, "M54.50", resolved), 2, 1, 100),
            &["pt-referral", "start-back-screening"],
        ),
        row(
            "imaging not indicated, low risk -> no pt-referral (and no referral suggestion: consistency check)",
            "NICE NG59; ACR LBP variant 1",
            scores(os().low_back_pain(14).order(CPT, "72148", "MRI lumbar"), 2, 1, 3),
            &[],
        ),
    ])
    .await;
    let app = TestApp::spawn().await;
    let response = app
        .cards("lbp-order-sign", &scores(os().low_back_pain(14).order(CPT, "72148", "MRI lumbar"), 2, 1, 3).body())
        .await;
    let warning = card(&response, "imaging-not-indicated");
    let keys: Vec<&str> =
        warning["suggestions"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert_eq!(keys, ["Remove the MRI order"], "only removal is suggested: {warning}");
    let response = app.cards("lbp-order-sign", &os().low_back_pain(14).order(CPT, "72148", "MRI lumbar").body()).await;
    assert_eq!(card(&response, "imaging-not-indicated")["suggestions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn medication_and_passive_modality_advice() {
    let os = |age| Scenario::new("order-select", age);
    run(vec![
        with_variant(
            row(
                "opioid product recognised by ingredient text -> NSAIDs first",
                "ACP 2017; CDC 2022",
                os(45).low_back_pain(10).medication_order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet"),
                &["medication-advice"],
            ),
            "medication-advice",
            "opioid",
        ),
        with_variant(
            row(
                "muscle relaxant by ingredient code",
                "ACP 2017 (option, sedation)",
                os(45).low_back_pain(10).medication_order("21949", "cyclobenzaprine"),
                &["medication-advice"],
            ),
            "medication-advice",
            "muscle-relaxant",
        ),
        with_variant(
            row(
                "benzodiazepine",
                "ACP 2017 (insufficient evidence); NICE NG59",
                os(45).low_back_pain(10).medication_order("3322", "diazepam"),
                &["medication-advice"],
            ),
            "medication-advice",
            "benzodiazepine",
        ),
        row(
            "NSAID -> no advice",
            "ACP 2017: NSAIDs first line",
            os(45).low_back_pain(10).medication_order("5640", "ibuprofen"),
            &[],
        ),
        row(
            "opioid without a low back pain diagnosis -> not ours to judge",
            "scope: LBP",
            os(45).medication_order("7804", "oxycodone"),
            &[],
        ),
        row(
            "opioid not selected on order-select -> no advice",
            "CDS Hooks order-select: selections only",
            {
                let mut s = os(45).low_back_pain(10).medication_order("7804", "oxycodone");
                s.selections.clear();
                s
            },
            &[],
        ),
        row(
            "TENS by CPT -> no benefit, exercise instead",
            "NICE NG59 1.2.6; ACP 2017",
            os(45).low_back_pain(10).order(CPT, "97014", "Electrical stimulation unattended"),
            &["passive-modality"],
        ),
        row(
            "traction by local text",
            "NICE NG59 1.2.5",
            os(45).low_back_pain(10).order("urn:oid:1.2.3", "PT77", "Mechanical traction, lumbar"),
            &["passive-modality"],
        ),
        row(
            "diagnostic ultrasound is not a passive modality",
            "scope",
            os(45).low_back_pain(10).order("urn:oid:1.2.3", "US1", "Ultrasound abdomen complete"),
            &[],
        ),
        row(
            "therapeutic exercise is what we want",
            "ACP 2017",
            os(45).low_back_pain(10).order(CPT, "97110", "Therapeutic exercise"),
            &[],
        ),
    ])
    .await;
}

/// Safety advice fires beside red flags (withheld only in active cancer treatment, palliative or
/// hospice care) and gets stronger where the record raises the risk.
#[tokio::test]
async fn safety_advice_beside_red_flags() {
    let os = |age| Scenario::new("order-select", age);
    let sign = |age| Scenario::new("order-sign", age);
    let opioid = |s: Scenario| s.medication_order("7804", "oxycodone 5 MG Oral Tablet");
    let benzo = |s: Scenario| s.medication_order("3322", "diazepam 5 MG Oral Tablet");
    let relaxant = |s: Scenario| s.medication_order("21949", "cyclobenzaprine 10 MG Oral Tablet");
    let active = |s: Scenario, code: &str, text: &str| s.medication(code, text, json!({"authoredOn": days_ago(400)}));
    run(vec![
        with_strength(
            row(
                "opioid with HIV (a red flag) -> advice still fires",
                "CDC 2022; red flags do not silence safety advice",
                opioid(os(40).low_back_pain(10).condition(ICD10, "B20", 2000)),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &[],
        ),
        with_strength(
            row(
                "opioid with cancer history -> advice fires",
                "CDC 2022 (cancer treatment only is out of scope)",
                opioid(os(60).low_back_pain(10).condition(ICD10, "C61", 1000)),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &[],
        ),
        row(
            "opioid in active chemotherapy (Z51.11, 90 days ago) -> withheld",
            "CDC 2022 scope: cancer treatment",
            opioid(os(60).low_back_pain(10).condition(ICD10, "C61", 200).condition(ICD10, "Z51.11", 90)),
            &[],
        ),
        row(
            "opioid, chemotherapy 91 days ago -> advice fires",
            "rules.toml advice_suppressions 90 days",
            opioid(os(60).low_back_pain(10).condition(ICD10, "C61", 200).condition(ICD10, "Z51.11", 91)),
            &["medication-advice"],
        ),
        row(
            "opioid in hospice care -> withheld",
            "CDC 2022 scope: palliative and end-of-life care",
            opioid(os(80).low_back_pain(10).referral(SNOMED, "385763009", 20)),
            &[],
        ),
        row(
            "opioid with palliative care diagnosis (Z51.5) -> withheld",
            "CDC 2022 scope: palliative care",
            opioid(os(80).low_back_pain(10).condition(ICD10, "Z51.5", 20)),
            &[],
        ),
        with_strength(
            row(
                "opioid with opioid use disorder -> critical",
                "CDC 2022 recommendations 8 and 12",
                opioid(os(40).low_back_pain(10).condition(ICD10, "F11.20", 800)),
                &["medication-advice"],
            ),
            "medication-advice",
            "critical",
            &["substance-use-disorder"],
        ),
        with_strength(
            row(
                "opioid with alcohol use disorder in remission -> critical",
                "CDC 2022: substance use disorder, history too",
                opioid(os(40).low_back_pain(10).condition(ICD10, "F10.21", 2000)),
                &["medication-advice"],
            ),
            "medication-advice",
            "critical",
            &["substance-use-disorder"],
        ),
        with_strength(
            row(
                "benzodiazepine with cannabis use disorder -> critical",
                "CDC 2022; NICE NG59",
                benzo(os(40).low_back_pain(10).condition(ICD10, "F12.20", 100)),
                &["medication-advice"],
            ),
            "medication-advice",
            "critical",
            &["substance-use-disorder"],
        ),
        with_strength(
            row(
                "opioid with nicotine dependence -> no caution",
                "tobacco is not in substance-use-disorder",
                opioid(os(40).low_back_pain(10).condition(ICD10, "F17.210", 100)),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &[],
        ),
        with_strength(
            row(
                "opioid with an active benzodiazepine -> critical",
                "CDC 2022 recommendation 11",
                opioid(active(os(40).low_back_pain(10), "3322", "diazepam 5 MG Oral Tablet")),
                &["medication-advice"],
            ),
            "medication-advice",
            "critical",
            &["opioid-with-benzodiazepine"],
        ),
        with_strength(
            row(
                "opioid selected, benzodiazepine drafted but not selected -> still critical",
                "CDC 2022 recommendation 11 (both drafted)",
                {
                    let mut s = benzo(opioid(os(40).low_back_pain(10)));
                    s.selections.truncate(1);
                    s
                },
                &["medication-advice"],
            ),
            "medication-advice",
            "critical",
            &["opioid-with-benzodiazepine"],
        ),
        with_strength(
            row(
                "opioid with a stopped benzodiazepine -> no caution",
                "CDC 2022 recommendation 11 (active only)",
                opioid(os(40).low_back_pain(10).medication(
                    "3322",
                    "diazepam",
                    json!({"status": "stopped", "authoredOn": days_ago(400)}),
                )),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &[],
        ),
        with_strength(
            row(
                "benzodiazepine at 65 -> AGS Beers",
                "AGS Beers Criteria 2023",
                benzo(os(65).low_back_pain(10)),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &["older-adult"],
        ),
        with_strength(
            row(
                "benzodiazepine at 64 -> no age caution",
                "AGS Beers Criteria: 65 and older",
                benzo(os(64).low_back_pain(10)),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &[],
        ),
        with_strength(
            row(
                "muscle relaxant, acute pain, 45 -> info (an ACP 2017 option)",
                "ACP 2017 recommendation 1",
                relaxant(os(45).low_back_pain(10)),
                &["medication-advice"],
            ),
            "medication-advice",
            "info",
            &[],
        ),
        with_strength(
            row(
                "muscle relaxant at 83 days (subacute) -> info",
                "ACP 2017: subacute 4-12 weeks",
                relaxant(os(45).low_back_pain(83)),
                &["medication-advice"],
            ),
            "medication-advice",
            "info",
            &[],
        ),
        with_strength(
            row(
                "muscle relaxant at 84 days (chronic) -> warning",
                "ACP 2017: not for chronic pain",
                relaxant(os(45).low_back_pain(84)),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &["chronic-pain"],
        ),
        with_strength(
            row(
                "muscle relaxant with chronic LBP diagnosis -> warning",
                "ACP 2017: not for chronic pain",
                relaxant(os(45).condition(SNOMED, "278860009", 3)),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &["chronic-pain"],
        ),
        with_strength(
            row(
                "muscle relaxant, duration unknown -> warning",
                "ACP 2017; CDS safety",
                relaxant(os(45).condition_full(ICD10, "M54.50", json!({}))),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &["chronic-pain"],
        ),
        with_strength(
            row(
                "muscle relaxant at 65 -> warning",
                "AGS Beers Criteria 2023",
                relaxant(os(65).low_back_pain(10)),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &["older-adult"],
        ),
        with_strength(
            row(
                "muscle relaxant at 64 -> info",
                "AGS Beers Criteria: 65 and older",
                relaxant(os(64).low_back_pain(10)),
                &["medication-advice"],
            ),
            "medication-advice",
            "info",
            &[],
        ),
        with_strength(
            row(
                "muscle relaxant with an active opioid -> warning",
                "ACP 2017 (sedation); AGS Beers (CNS-active drugs)",
                relaxant(active(os(45).low_back_pain(10), "7804", "oxycodone 5 MG Oral Tablet")),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &["muscle-relaxant-with-sedative"],
        ),
        with_strength(
            row(
                "muscle relaxant with active gabapentin -> warning",
                "AGS Beers (CNS-active drugs)",
                relaxant(active(os(45).low_back_pain(10), "25480", "gabapentin 300 MG Oral Capsule")),
                &["medication-advice"],
            ),
            "medication-advice",
            "warning",
            &["muscle-relaxant-with-sedative"],
        ),
        row(
            "opioid and benzodiazepine drafted together -> both cards",
            "CDC 2022 recommendation 11",
            benzo(opioid(sign(40).low_back_pain(10))),
            &["medication-advice", "medication-advice"],
        ),
        with_strength(
            row(
                "traction with osteoporosis -> critical",
                "contraindication: fragile bone",
                os(70).low_back_pain(10).condition(ICD10, "M81.0", 900).order(
                    "urn:oid:1.2.3",
                    "PT77",
                    "Mechanical traction, lumbar",
                ),
                &["passive-modality"],
            ),
            "passive-modality",
            "critical",
            &["bone-fragility"],
        ),
        with_strength(
            row(
                "traction with HIV (no bone red flag) -> warning, beside the red flag",
                "NICE NG59 1.2.5",
                os(40).low_back_pain(10).condition(ICD10, "B20", 900).order(
                    "urn:oid:1.2.3",
                    "PT77",
                    "Mechanical traction, lumbar",
                ),
                &["passive-modality"],
            ),
            "passive-modality",
            "warning",
            &[],
        ),
        row(
            "spinal manipulation without a caution -> no card (an ACP 2017 option)",
            "ACP 2017 recommendations 1 and 2",
            os(45).low_back_pain(10).order(CPT, "98940", "Chiropractic manipulative treatment, spinal, 1-2 regions"),
            &[],
        ),
        with_variant(
            with_strength(
                row(
                    "spinal manipulation with a recent vertebral fracture -> critical",
                    "contraindication: fracture",
                    os(60).low_back_pain(10).condition(ICD10, "S32.010A", 20).order(
                        CPT,
                        "98940",
                        "Chiropractic manipulative treatment, spinal, 1-2 regions",
                    ),
                    &["passive-modality"],
                ),
                "passive-modality",
                "critical",
                &["bone-fragility"],
            ),
            "passive-modality",
            "manipulation",
        ),
        with_strength(
            row(
                "spinal manipulation with cancer history -> critical",
                "contraindication: bone metastasis possible",
                os(60).low_back_pain(10).condition(ICD10, "C50.911", 2000).order(
                    "urn:oid:1.2.3",
                    "PT9",
                    "Spinal manipulation",
                ),
                &["passive-modality"],
            ),
            "passive-modality",
            "critical",
            &["bone-fragility"],
        ),
        with_strength(
            row(
                "spinal manipulation with osteoporosis treatment -> critical",
                "contraindication: osteoporosis",
                os(60)
                    .low_back_pain(10)
                    .medication("46041", "alendronate 70 MG Oral Tablet", json!({"authoredOn": days_ago(30)}))
                    .order(CPT, "98941", "Chiropractic manipulative treatment, spinal, 3-4 regions"),
                &["passive-modality"],
            ),
            "passive-modality",
            "critical",
            &["bone-fragility"],
        ),
    ])
    .await;
}
