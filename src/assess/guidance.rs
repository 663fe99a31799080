//! What helps instead of imaging: therapy referral, STarT Back stratified care, continuing
//! therapy, reassessment (routine guidance, which yields to red flags), and safety advice on
//! medication and passive-modality orders (which fires beside red flags, stronger where one
//! raises the risk).

use time::Date;

use super::{Evidence, OrderScope, criteria, days_between, episode::Episode, red_flags::RedFlag};
use crate::content::{CardType, CautionTrigger, Content, StartBackRules, ValueSetId};
use crate::record::{Answer, DraftOrder, PatientRecord, ResourceKind};

/// A draft order a card is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRef {
    pub reference: String,
    pub label: String,
    pub draft_index: usize,
    pub has_id: bool,
    /// How it was recognised ("RxNorm 7804 “oxycodone”" or "order text").
    pub matched_by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn key(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

/// A STarT Back Screening Tool result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartBack {
    pub risk: Risk,
    pub total: Option<u32>,
    pub distress: Option<u32>,
    /// Which data the risk came from, in words.
    pub source: String,
    pub date: Option<Date>,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// 4 to 12 weeks without documented improvement.
    Early,
    /// 12 weeks or more despite conservative care.
    Late,
    /// No pain or Oswestry score in the episode: record one (asked once, in a window after 4 weeks).
    NoScores,
}

impl Stage {
    pub fn key(self) -> &'static str {
        match self {
            Stage::Early => "early",
            Stage::Late => "late",
            Stage::NoScores => "no-scores",
        }
    }
}

/// A caution that makes order advice stronger, with what in the record raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caution {
    /// Caution id from `rules.toml` (its text is in the card file).
    pub id: String,
    pub guideline: String,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrugClass {
    Opioid,
    Benzodiazepine,
    MuscleRelaxant,
}

impl DrugClass {
    pub const ALL: [DrugClass; 3] = [DrugClass::Opioid, DrugClass::Benzodiazepine, DrugClass::MuscleRelaxant];

    pub fn key(self) -> &'static str {
        match self {
            DrugClass::Opioid => "opioid",
            DrugClass::Benzodiazepine => "benzodiazepine",
            DrugClass::MuscleRelaxant => "muscle-relaxant",
        }
    }

    fn value_set(self) -> ValueSetId {
        match self {
            DrugClass::Opioid => ValueSetId::Opioids,
            DrugClass::Benzodiazepine => ValueSetId::Benzodiazepines,
            DrugClass::MuscleRelaxant => ValueSetId::MuscleRelaxants,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recommendation {
    PtReferral {
        evidence: Vec<Evidence>,
    },
    StartBackScreening,
    StratifiedCare(StartBack),
    /// The procedures of the one session day.
    ContinueTherapy {
        session: Vec<Evidence>,
    },
    ReassessProgress {
        stage: Stage,
        measures: Vec<Evidence>,
        care: Vec<Evidence>,
    },
    MedicationAdvice {
        order: OrderRef,
        class: DrugClass,
        cautions: Vec<Caution>,
    },
    PassiveModality {
        order: OrderRef,
        kind: String,
        cautions: Vec<Caution>,
    },
}

impl Recommendation {
    pub fn card_type(&self) -> CardType {
        match self {
            Recommendation::PtReferral { .. } => CardType::PtReferral,
            Recommendation::StartBackScreening => CardType::StartBackScreening,
            Recommendation::StratifiedCare(_) => CardType::StratifiedCare,
            Recommendation::ContinueTherapy { .. } => CardType::ContinueTherapy,
            Recommendation::ReassessProgress { .. } => CardType::ReassessProgress,
            Recommendation::MedicationAdvice { .. } => CardType::MedicationAdvice,
            Recommendation::PassiveModality { .. } => CardType::PassiveModality,
        }
    }
}

/// PT and OT on record for the episode.
#[derive(Debug, Default)]
struct Therapy {
    /// Referrals on record or being ordered now, and any PT/OT session.
    any: Vec<Evidence>,
    /// Completed physical therapy procedures in the episode, by day (one day is one session).
    pt_sessions: std::collections::BTreeMap<Date, Vec<Evidence>>,
}

pub(super) struct Inputs<'a> {
    pub record: &'a PatientRecord,
    pub content: &'a Content,
    pub today: Date,
    pub scope: OrderScope,
    pub episode: &'a Episode,
    /// Whether an order in scope was rated "not indicated" (the referral card goes with it).
    pub imaging_not_indicated: bool,
    /// Routine guidance is offered (no red flag).
    pub routine: bool,
    /// Safety advice on orders is offered (no active cancer treatment, palliative or hospice care).
    pub safety: bool,
    /// Red flags, current and past, that may raise the risk of an order.
    pub flags: &'a [&'a RedFlag],
    pub age: Option<i32>,
}

pub(super) fn recommend(inputs: &Inputs<'_>, notes: &mut Vec<String>) -> Vec<Recommendation> {
    let mut out = Vec::new();
    if inputs.routine {
        out = routine(inputs, notes);
    }
    if inputs.safety && inputs.scope != OrderScope::None {
        out.extend(order_advice(inputs));
    }
    out
}

fn routine(inputs: &Inputs<'_>, notes: &mut Vec<String>) -> Vec<Recommendation> {
    let Inputs { record, content, today, scope, episode, imaging_not_indicated, .. } = *inputs;
    let thresholds = &content.rules.thresholds;
    let start = episode.start.unwrap_or_else(|| today - time::Duration::days(i64::from(thresholds.episode_gap_days)));
    let complete = |kind: ResourceKind| record.availability(kind).is_complete();
    let therapy_known = complete(ResourceKind::Procedure) && complete(ResourceKind::ServiceRequest);
    let therapy = therapy(record, content, start, notes);
    let mut out = Vec::new();

    // A resolved diagnosis ends its episode for screening: a result from before it has expired.
    let screening_from = match episode.last_resolved {
        Some(resolved) => start.max(resolved + time::Duration::days(1)),
        None => start,
    };
    let start_back = start_back(record, content, screening_from, notes);
    // Low STarT Back risk means self-management without routine therapy (NICE NG59, Hill 2011).
    let low_risk = start_back.as_ref().is_some_and(|result| result.risk == Risk::Low);
    let wants_referral = match scope {
        OrderScope::None => true,
        OrderScope::Selected | OrderScope::All => imaging_not_indicated,
    };
    if wants_referral && therapy.any.is_empty() && !low_risk {
        if therapy_known {
            out.push(Recommendation::PtReferral { evidence: episode.evidence.clone() });
        } else {
            notes.push(
                "Procedures or service requests were not fully available: a therapy referral could not be checked for."
                    .into(),
            );
        }
    }

    if scope == OrderScope::None {
        match start_back {
            Some(result) => out.push(Recommendation::StratifiedCare(result)),
            // A result could be in either observations or questionnaire responses.
            None if complete(ResourceKind::Observation) && complete(ResourceKind::QuestionnaireResponse) => {
                out.push(Recommendation::StartBackScreening)
            }
            None => {}
        }
        // Not before a second session could have taken place.
        let gap = i64::from(thresholds.continue_therapy_min_gap_days);
        if let (true, 1, Some((date, session))) =
            (therapy_known, therapy.pt_sessions.len(), therapy.pt_sessions.iter().next())
            && days_between(*date, today) >= gap
        {
            out.push(Recommendation::ContinueTherapy { session: session.clone() });
        }
        if let Some(days) = episode.duration_days {
            let early = i64::from(thresholds.reassess_early_weeks) * 7;
            let late = i64::from(thresholds.reassess_late_weeks) * 7;
            let ask_until = early + i64::from(thresholds.reassess_ask_window_days);
            if days >= early && complete(ResourceKind::Observation) {
                let (improved, measures) = progress(record, content, start, thresholds.improvement_percent);
                if measures.is_empty() {
                    // Nothing to judge progress by: ask once for a score, not a review at every visit.
                    if days < ask_until {
                        out.push(Recommendation::ReassessProgress {
                            stage: Stage::NoScores,
                            measures,
                            care: therapy.any.clone(),
                        });
                    }
                } else if !improved {
                    let stage = if days >= late && !therapy.any.is_empty() { Stage::Late } else { Stage::Early };
                    out.push(Recommendation::ReassessProgress { stage, measures, care: therapy.any.clone() });
                }
            }
        }
    }
    out
}

/// Medication and passive-modality advice on the draft orders in scope, with the cautions that
/// apply to this patient.
fn order_advice(inputs: &Inputs<'_>) -> Vec<Recommendation> {
    let Inputs { record, content, scope, .. } = *inputs;
    let mut out = Vec::new();
    for (index, order) in record.draft_orders.iter().enumerate() {
        if scope == OrderScope::Selected && !order.selected {
            continue;
        }
        match order.resource_type.as_str() {
            "MedicationRequest" => {
                let found = DrugClass::ALL.iter().find_map(|class| {
                    criteria::medication_match(content, content.value_set(class.value_set()), &order.code)
                        .map(|m| (*class, m))
                });
                if let Some((class, matched_by)) = found {
                    let cautions = cautions(inputs, class.key(), index);
                    out.push(Recommendation::MedicationAdvice {
                        order: order_ref(order, index, matched_by),
                        class,
                        cautions,
                    });
                }
            }
            "ServiceRequest" => {
                if let Some((kind, matched_by)) = passive_modality(content, order) {
                    let cautions = cautions(inputs, &kind, index);
                    if cautions.is_empty() && content.rules.advice.caution_only.contains(&kind) {
                        continue;
                    }
                    out.push(Recommendation::PassiveModality {
                        order: order_ref(order, index, matched_by),
                        kind,
                        cautions,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The cautions of `rules.toml` that apply to an order of this class or kind.
fn cautions(inputs: &Inputs<'_>, kind: &str, draft_index: usize) -> Vec<Caution> {
    let Inputs { record, content, today, episode, flags, age, .. } = *inputs;
    let mut out = Vec::new();
    for rule in content.rules.cautions.iter().filter(|rule| rule.applies_to.iter().any(|k| k == kind)) {
        let evidence: Vec<Evidence> = match &rule.trigger {
            CautionTrigger::Record(criterion) => criteria::find(record, content, criterion, today)
                .into_iter()
                .filter(|hit| hit.current)
                .map(|hit| hit.evidence)
                .collect(),
            CautionTrigger::WithDrugs(sets) => {
                let mut evidence = Vec::new();
                for set in sets {
                    let set = content.value_set(*set);
                    for (index, other) in record.draft_orders.iter().enumerate() {
                        if index == draft_index || other.resource_type != "MedicationRequest" {
                            continue;
                        }
                        if let Some(m) = criteria::medication_match(content, set, &other.code) {
                            evidence.push(Evidence {
                                reference: other.reference.clone(),
                                description: format!("draft order {} ({m})", other.code.label()),
                            });
                        }
                    }
                    for medication in
                        record.medications.iter().filter(|m| matches!(m.status.as_str(), "active" | "on-hold"))
                    {
                        if let Some(m) = criteria::medication_match(content, set, &medication.medication) {
                            evidence.push(Evidence {
                                reference: medication.reference.clone(),
                                description: format!("active order {} ({m})", medication.medication.label()),
                            });
                        }
                    }
                }
                evidence.sort_by(|a, b| a.reference.cmp(&b.reference));
                evidence.dedup_by(|a, b| a.reference == b.reference);
                evidence
            }
            CautionTrigger::MinAge(min) => match age {
                Some(age) if age >= *min => {
                    let reference = record
                        .patient
                        .as_ref()
                        .map(|p| p.reference.clone())
                        .unwrap_or_else(|| format!("Patient/{}", record.patient_id));
                    vec![Evidence { reference, description: format!("age {age} ({min} or over)") }]
                }
                _ => Vec::new(),
            },
            CautionTrigger::ChronicPain => {
                let chronic = i64::from(content.rules.thresholds.chronic_weeks) * 7;
                let why = match episode.duration_days {
                    Some(days) if days >= chronic => {
                        Some(format!("low back pain for {days} days (chronic: {chronic} days or more)"))
                    }
                    Some(_) => None,
                    None => Some("symptom duration unknown: chronic pain not excluded".to_owned()),
                };
                why.map(|why| {
                    episode
                        .evidence
                        .iter()
                        .map(|e| Evidence {
                            reference: e.reference.clone(),
                            description: format!("{}; {why}", e.description),
                        })
                        .collect()
                })
                .unwrap_or_default()
            }
            CautionTrigger::RedFlags { rules, categories } => flags
                .iter()
                .filter(|flag| rules.contains(&flag.rule) || categories.contains(&flag.category))
                .flat_map(|flag| {
                    flag.evidence.iter().map(|e| Evidence {
                        reference: e.reference.clone(),
                        description: format!("{}: {}", flag.finding, e.description),
                    })
                })
                .collect(),
        };
        if !evidence.is_empty() {
            out.push(Caution { id: rule.id.clone(), guideline: rule.guideline.clone(), evidence });
        }
    }
    out
}

fn order_ref(order: &DraftOrder, index: usize, matched_by: String) -> OrderRef {
    OrderRef {
        reference: order.reference.clone(),
        label: order.code.label(),
        draft_index: index,
        has_id: order.id.is_some(),
        matched_by,
    }
}

fn passive_modality(content: &Content, order: &DraftOrder) -> Option<(String, String)> {
    if let Some(m) = content.value_set(ValueSetId::PassiveModalities).match_concept(&order.code) {
        return Some((m.concept.group.clone().unwrap_or_else(|| "passive modality".into()), m.concept.describe()));
    }
    if let Some(m) = content.value_set(ValueSetId::SpinalManipulation).match_concept(&order.code) {
        return Some(("manipulation".to_owned(), m.concept.describe()));
    }
    let text = order.code.label();
    content
        .rules
        .passive_modality_text
        .iter()
        .find(|(_, phrases)| super::imaging::has_phrase(&text, phrases))
        .map(|(kind, _)| (kind.clone(), "order text".to_owned()))
}

fn therapy(record: &PatientRecord, content: &Content, start: Date, notes: &mut Vec<String>) -> Therapy {
    let set = content.value_set(ValueSetId::PtOtServices);
    let mut therapy = Therapy::default();
    for request in &record.service_requests {
        if matches!(request.status.as_str(), "revoked" | "entered-in-error") {
            continue;
        }
        let Some(m) = set.match_concept(&request.code) else { continue };
        if request.authored.is_none_or(|date| date >= start) {
            therapy.any.push(Evidence {
                reference: request.reference.clone(),
                description: format!(
                    "referral {} ({}{})",
                    m.concept.describe(),
                    request.status,
                    date_suffix(request.authored)
                ),
            });
        }
    }
    for order in &record.draft_orders {
        if let Some(m) = set.match_concept(&order.code) {
            therapy.any.push(Evidence {
                reference: order.reference.clone(),
                description: format!("draft order {}", m.concept.describe()),
            });
        }
    }
    let mut undated = 0;
    for procedure in &record.procedures {
        if procedure.status != "completed" {
            continue;
        }
        let Some(m) = set.match_concept(&procedure.code) else { continue };
        let Some(date) = procedure.performed else {
            undated += 1;
            continue;
        };
        if date < start {
            continue;
        }
        let evidence = Evidence {
            reference: procedure.reference.clone(),
            description: format!("{} on {date}", m.concept.describe()),
        };
        if m.concept.group.as_deref() == Some("pt") {
            therapy.pt_sessions.entry(date).or_default().push(evidence.clone());
        }
        therapy.any.push(evidence);
    }
    if undated > 0 {
        notes.push(format!("{undated} therapy procedure(s) carry no date and were not counted for this episode."));
    }
    // Several procedures on one day are one session (evaluation plus exercise, say); the order
    // the server returned them in must not matter.
    for evidence in therapy.pt_sessions.values_mut() {
        evidence.sort_by(|a, b| a.reference.cmp(&b.reference));
    }
    therapy
}

/// Whether pain (NRS) or function (Oswestry) improved by `percent` from first to latest in the
/// episode, and the measures found.
fn progress(record: &PatientRecord, content: &Content, start: Date, percent: f64) -> (bool, Vec<Evidence>) {
    let mut improved = false;
    let mut evidence = Vec::new();
    for (set, label) in [(ValueSetId::PainScores, "pain score"), (ValueSetId::Oswestry, "Oswestry score")] {
        let set = content.value_set(set);
        let mut values: Vec<(Date, f64, &str)> = record
            .observations
            .iter()
            .filter(|o| o.counts() && set.match_concept(&o.code).is_some())
            .filter_map(|o| Some((o.effective?, o.value.as_ref()?.number()?, o.reference.as_str())))
            .filter(|(date, _, _)| *date >= start)
            .collect();
        values.sort_by_key(|a| a.0);
        for (date, value, reference) in &values {
            evidence.push(Evidence {
                reference: (*reference).to_owned(),
                description: format!("{label} {value} on {date}"),
            });
        }
        if let (Some(first), Some(last)) = (values.first(), values.last())
            && first.0 < last.0
            && first.1 > 0.0
            && last.1 <= first.1 * (1.0 - percent / 100.0)
        {
            improved = true;
        }
    }
    (improved, evidence)
}

/// The latest STarT Back result in the episode: a recorded risk level, total and distress
/// scores, or the nine items (Observations, panel components or QuestionnaireResponse answers).
fn start_back(record: &PatientRecord, content: &Content, start: Date, notes: &mut Vec<String>) -> Option<StartBack> {
    let set = content.value_set(ValueSetId::StartBack);
    let group_of = |concept: &crate::record::Concept| set.match_concept(concept).and_then(|m| m.concept.group.clone());
    // Everything recorded per date: (group -> answer, evidence).
    type Recorded = (Vec<(String, Answer)>, Vec<Evidence>);
    let mut by_date: std::collections::BTreeMap<Date, Recorded> = Default::default();
    for observation in record.observations.iter().filter(|o| o.counts()) {
        let Some(group) = group_of(&observation.code) else { continue };
        let Some(date) = observation.effective.filter(|d| *d >= start) else { continue };
        let entry = by_date.entry(date).or_default();
        if let Some(value) = &observation.value {
            entry.0.push((group.clone(), value.clone()));
        }
        for component in &observation.components {
            if let (Some(group), Some(value)) = (group_of(&component.code), &component.value) {
                entry.0.push((group, value.clone()));
            }
        }
        entry.1.push(Evidence {
            reference: observation.reference.clone(),
            description: format!("STarT Back {group} on {date}"),
        });
    }
    for response in &record.questionnaire_responses {
        if !matches!(response.status.as_str(), "completed" | "amended") {
            continue;
        }
        let Some(date) = response.authored.filter(|d| *d >= start) else { continue };
        let answers: Vec<(String, Answer)> = response
            .answers
            .iter()
            .filter_map(|answer| {
                let code = answer.link_id.trim_start_matches('/').rsplit('/').next().unwrap_or_default();
                let concept = crate::record::Concept {
                    codes: vec![crate::record::Code {
                        system: Some("http://loinc.org".into()),
                        code: Some(code.to_owned()),
                        display: None,
                    }],
                    text: None,
                };
                Some((group_of(&concept)?, answer.value.clone()))
            })
            .collect();
        if answers.is_empty() {
            continue;
        }
        let entry = by_date.entry(date).or_default();
        entry.0.extend(answers);
        entry.1.push(Evidence {
            reference: response.reference.clone(),
            description: format!("STarT Back questionnaire on {date}"),
        });
    }
    let (date, (answers, evidence)) = by_date.into_iter().next_back()?;
    let find = |group: &str| answers.iter().find(|(g, _)| g == group).map(|(_, a)| a);
    let result = |risk, total, distress, source: &str| StartBack {
        risk,
        total,
        distress,
        source: source.to_owned(),
        date: Some(date),
        evidence: evidence.clone(),
    };
    let scoring = &content.rules.start_back;
    if let Some(risk) = find("risk").and_then(|answer| risk_level(answer, scoring)) {
        let total = find("total").and_then(score);
        let distress = find("distress").and_then(score);
        return Some(result(risk, total, distress, "The recorded STarT Back risk level"));
    }
    if let (Some(total), Some(distress)) = (find("total").and_then(score), find("distress").and_then(score)) {
        return Some(result(
            classify(total, distress, scoring),
            Some(total),
            Some(distress),
            "The recorded total and distress scores",
        ));
    }
    let items: Vec<Option<u32>> = (1..=9).map(|n| find(&format!("item{n}")).and_then(|a| item_score(n, a))).collect();
    if items.iter().all(Option::is_some) {
        let items: Vec<u32> = items.into_iter().flatten().collect();
        let total = items.iter().sum();
        let distress = items.iter().skip(4).sum();
        return Some(result(
            classify(total, distress, scoring),
            Some(total),
            Some(distress),
            "The nine item answers (scored by the service)",
        ));
    }
    let answered = items.iter().filter(|i| i.is_some()).count();
    notes.push(format!(
        "A STarT Back screening on {date} has {answered} of 9 items readable and no total, distress or risk score: its risk level could not be computed."
    ));
    None
}

/// STarT Back risk rule (Hill 2008; `rules.toml` `[start_back]`): a low total is low risk; else
/// a high distress subscore is high risk; otherwise medium.
pub fn classify(total: u32, distress: u32, scoring: &StartBackRules) -> Risk {
    if total <= scoring.low_max_total {
        Risk::Low
    } else if distress >= scoring.high_min_distress {
        Risk::High
    } else {
        Risk::Medium
    }
}

fn score(answer: &Answer) -> Option<u32> {
    let value = answer.number()?;
    (value.is_finite() && (0.0..=9.0).contains(&value) && value.fract() == 0.0).then_some(value as u32)
}

fn risk_level(answer: &Answer, scoring: &StartBackRules) -> Option<Risk> {
    if let Answer::Concept(concept) = answer {
        for code in concept.codes.iter().filter_map(|c| c.code.as_deref()) {
            for (risk, codes) in [
                (Risk::High, &scoring.high_answers),
                (Risk::Medium, &scoring.medium_answers),
                (Risk::Low, &scoring.low_answers),
            ] {
                if codes.iter().any(|c| c == code) {
                    return Some(risk);
                }
            }
        }
    }
    match answer.words()?.trim() {
        "high" | "high risk" => Some(Risk::High),
        "medium" | "medium risk" | "moderate" => Some(Risk::Medium),
        "low" | "low risk" => Some(Risk::Low),
        _ => None,
    }
}

/// Items 1-8: Agree = 1, Disagree = 0. Item 9 (bothersomeness): Very much or Extremely = 1.
fn item_score(item: u32, answer: &Answer) -> Option<u32> {
    match answer {
        Answer::Boolean(value) => return Some(u32::from(*value)),
        Answer::Integer(_) | Answer::Decimal(_) | Answer::Quantity(_) => {
            let value = answer.number()?;
            return match (item, value) {
                (_, v) if v == 0.0 || v == 1.0 && item != 9 => Some(v as u32),
                // Item 9 on its 0-4 scale (not at all .. extremely): 3 and 4 score 1.
                (9, v) if (0.0..=4.0).contains(&v) && v.fract() == 0.0 => Some(u32::from(v >= 3.0)),
                _ => None,
            };
        }
        _ => {}
    }
    let words = answer.words()?;
    let words = words.trim();
    if item == 9 {
        return match words {
            "very much" | "extremely" => Some(1),
            "not at all" | "slightly" | "moderately" => Some(0),
            _ => None,
        };
    }
    match words {
        "agree" | "yes" => Some(1),
        "disagree" | "no" => Some(0),
        _ => None,
    }
}

fn date_suffix(date: Option<Date>) -> String {
    date.map(|d| format!(", {d}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    /// Hill 2008, with the shipped `[start_back]` scoring: total <= 3 low, distress >= 4 high.
    fn start_back_risk_rule() {
        let content = Content::embedded().unwrap();
        let classify = |total, distress| classify(total, distress, &content.rules.start_back);
        assert_eq!(classify(3, 3), Risk::Low);
        assert_eq!(classify(3, 0), Risk::Low);
        assert_eq!(classify(4, 3), Risk::Medium);
        assert_eq!(classify(9, 3), Risk::Medium);
        assert_eq!(classify(4, 4), Risk::High);
        assert_eq!(classify(9, 5), Risk::High);
    }

    #[test]
    fn item_answers_score_as_the_tool_says() {
        let text = |t: &str| Answer::Text(t.to_owned());
        assert_eq!(item_score(1, &text("Agree")), Some(1));
        assert_eq!(item_score(5, &text("Disagree")), Some(0));
        assert_eq!(item_score(9, &text("Very much")), Some(1));
        assert_eq!(item_score(9, &text("Moderately")), Some(0));
        assert_eq!(item_score(9, &Answer::Integer(4)), Some(1));
        assert_eq!(item_score(9, &Answer::Integer(2)), Some(0));
        assert_eq!(item_score(3, &Answer::Integer(1)), Some(1));
        assert_eq!(item_score(3, &Answer::Integer(2)), None);
        assert_eq!(item_score(2, &Answer::Boolean(true)), Some(1));
        assert_eq!(item_score(2, &text("maybe")), None);
    }
}
