//! What in the record changes the advice the cards give: reasons an NSAID would harm this
//! patient (kidney, bleeding, heart failure, allergy, pregnancy, age), a current pregnancy (for
//! the imaging cards), and what has already been tried this episode. Pure: record and date in,
//! findings with their evidence out; thresholds, codes and words come from
//! `cards/patient-factors.toml` and the value sets it names.

use time::{Date, Duration};

use super::{AgeGroup, Evidence};
use crate::content::factors::{CautionKind, CautionLevel, CautionLookback};
use crate::content::{Content, DrugMap, FoundIngredient, ValueSet, ValueSetConcept, ValueSetId};
use crate::record::{Answer, Concept, MedicationRequest, PatientRecord, ResourceKind};

/// One reason an NSAID would harm this patient, with what in the record showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsaidCaution {
    pub kind: CautionKind,
    /// What was found, in words, with its date ("eGFR 25 mL/min/1.73 m² on 2026-01-10").
    pub finding: String,
    pub evidence: Vec<Evidence>,
}

/// A current pregnancy and, when the record gives it, the weeks of gestation today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pregnancy {
    pub weeks: Option<i64>,
    pub evidence: Vec<Evidence>,
}

/// Data the NSAID check needed but did not have: said in the cards, never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchecked {
    NoEgfr,
    Observations,
    Medications,
    Allergies,
    Age,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientFactors {
    pub cautions: Vec<NsaidCaution>,
    pub pregnancy: Option<Pregnancy>,
    /// A systemic NSAID prescribed now: the cards acknowledge it instead of advising one.
    pub active_nsaid: Option<Evidence>,
    /// NSAIDs, opioids and physical therapy already tried this episode.
    pub tried: Vec<Evidence>,
    /// Conservative care this episode (therapy sessions and referrals, pain medicines): it tells
    /// ACR variant 3 (after conservative care) from variant 2 (none yet) for imaging at 6 weeks.
    pub prior_care: Vec<Evidence>,
    /// Whether procedures, service requests and medications were all complete, so that no
    /// conservative care on record means none was given.
    pub prior_care_known: bool,
    pub unchecked: Vec<Unchecked>,
}

impl PatientFactors {
    /// The most serious level among the cautions, if any.
    pub fn level(&self, content: &Content) -> Option<CautionLevel> {
        self.cautions.iter().map(|c| content.factors.caution(c.kind).level).max()
    }

    /// Caution keys, sorted and without repeats (for the response's extension).
    pub fn caution_keys(&self) -> Vec<&'static str> {
        let mut keys: Vec<&'static str> = self.cautions.iter().map(|c| c.kind.key()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

pub(super) fn assess(
    record: &PatientRecord,
    content: &Content,
    today: Date,
    age: AgeGroup,
    episode_start: Option<Date>,
) -> PatientFactors {
    let factors = &content.factors;
    let thresholds = &factors.thresholds;
    let mut out = PatientFactors::default();
    let complete = |kind: ResourceKind| record.availability(kind).is_complete();
    let nsaid_names = Names::new(content.value_set(ValueSetId::Nsaids), &content.drugs);
    let drugs = classify(record, content, &nsaid_names);

    // Conditions (CKD 4-5 or dialysis, GI bleeding or ulcer, heart failure).
    for rule in &factors.condition_rules {
        let set = content.value_sets.at(rule.set);
        let evidence: Vec<Evidence> = record
            .conditions
            .iter()
            .filter(|c| c.counts())
            .filter(|c| rule.lookback == CautionLookback::AnyTime || c.is_active())
            .filter_map(|c| {
                let m = set.match_concept(&c.code)?;
                let date = c.first_date().map(|d| format!(", since {d}")).unwrap_or_default();
                let status = c.clinical_status.as_deref().unwrap_or("no status");
                Some(Evidence {
                    reference: c.reference.clone(),
                    description: format!("{} ({status}{date})", m.concept.describe()),
                })
            })
            .collect();
        if !evidence.is_empty() {
            let what: Vec<&str> = evidence.iter().map(|e| e.description.as_str()).collect();
            let finding = format!("{} on record: {}", rule.finding, what.join("; "));
            out.cautions.push(NsaidCaution { kind: rule.caution, finding, evidence });
        }
    }

    // Kidney function: the latest eGFR within the look-back.
    if complete(ResourceKind::Observation) {
        let set = content.value_set(ValueSetId::Egfr);
        let from = today - Duration::days(i64::from(thresholds.egfr_lookback_days));
        let latest = record
            .observations
            .iter()
            .filter(|o| o.counts() && set.match_concept(&o.code).is_some())
            .filter_map(|o| Some((o.effective?, o.quantity()?.value, o)))
            .filter(|(date, value, _)| *date >= from && *date <= today && value.is_finite())
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        match latest {
            Some((date, value, observation)) if value < thresholds.egfr_below => out.cautions.push(NsaidCaution {
                kind: CautionKind::SevereKidneyDisease,
                finding: format!("latest eGFR {value} mL/min/1.73 m² on {date}, below {}", thresholds.egfr_below),
                evidence: vec![Evidence {
                    reference: observation.reference.clone(),
                    description: format!("eGFR {value} on {date}"),
                }],
            }),
            Some(_) => {}
            None if out.cautions.iter().any(|c| c.kind == CautionKind::SevereKidneyDisease) => {}
            // No recent eGFR matters when kidney function is likely to be reduced: an older low
            // result, or age at the older-adult threshold. For younger adults the usual advice
            // already says to check renal risk, and no eGFR is the norm.
            None => {
                let older_low = record
                    .observations
                    .iter()
                    .filter(|o| {
                        o.counts() && o.effective.is_some_and(|d| d < from) && set.match_concept(&o.code).is_some()
                    })
                    .any(|o| o.quantity().is_some_and(|q| q.value < thresholds.egfr_below));
                let older_adult = matches!(age, AgeGroup::Adult(years) if years >= thresholds.older_adult_age_years);
                if older_low || older_adult {
                    out.unchecked.push(Unchecked::NoEgfr);
                }
            }
        }
    } else {
        out.unchecked.push(Unchecked::Observations);
    }

    // Active anticoagulants and antiplatelets.
    if !complete(ResourceKind::MedicationRequest) {
        out.unchecked.push(Unchecked::Medications);
    }
    for drug in drugs.iter().filter(|d| d.group == DrugGroup::Anticoagulant) {
        let medication = drug.medication;
        if matches!(medication.status.as_str(), "active" | "on-hold") {
            let name = &drug.name;
            let group = drug.subgroup.as_deref().unwrap_or("anticoagulant");
            out.cautions.push(NsaidCaution {
                kind: CautionKind::Anticoagulant,
                finding: format!("{name} ({group}) {}", since(medication)),
                evidence: vec![Evidence {
                    reference: medication.reference.clone(),
                    description: medication.medication.label(),
                }],
            });
        }
    }

    // A recorded NSAID (or aspirin) allergy or intolerance.
    if !complete(ResourceKind::AllergyIntolerance) {
        out.unchecked.push(Unchecked::Allergies);
    }
    let allergy_names = Names::new(content.value_set(ValueSetId::NsaidAllergy), &content.drugs);
    for allergy in record.allergies.iter().filter(|a| a.counts()) {
        let by_word = || {
            let text = all_text(&allergy.code);
            super::imaging::has_phrase(&text, &thresholds.allergy_text).then(|| allergy.code.label())
        };
        let mut haystack = Haystack::default();
        let name = nsaid_names
            .find(&allergy.code, &mut haystack)
            .or_else(|| allergy_names.find(&allergy.code, &mut haystack))
            .map(|(name, _)| name)
            .or_else(by_word);
        if let Some(name) = name {
            let date = allergy.recorded.map(|d| format!(", recorded {d}")).unwrap_or_default();
            let status = allergy.verification_status.as_deref().unwrap_or("unverified");
            out.cautions.push(NsaidCaution {
                kind: CautionKind::Allergy,
                finding: format!("allergy or intolerance to {name} ({status}{date})"),
                evidence: vec![Evidence { reference: allergy.reference.clone(), description: allergy.code.label() }],
            });
        }
    }

    // Pregnancy: avoid from the threshold week; before it (or weeks unknown), caution.
    out.pregnancy = pregnancy(record, content, today);
    if let Some(pregnancy) = &out.pregnancy {
        let (kind, finding) = match pregnancy.weeks {
            Some(weeks) if weeks >= i64::from(thresholds.pregnancy_avoid_weeks) => {
                (CautionKind::Pregnancy, format!("pregnant, {weeks} weeks today"))
            }
            Some(weeks) => (CautionKind::EarlyPregnancy, format!("pregnant, {weeks} weeks today")),
            None => (CautionKind::EarlyPregnancy, "pregnant, weeks of gestation not on record".to_owned()),
        };
        let from: Vec<&str> = pregnancy.evidence.iter().map(|e| e.description.as_str()).collect();
        let finding = format!("{finding} (from {})", from.join("; "));
        out.cautions.push(NsaidCaution { kind, finding, evidence: pregnancy.evidence.clone() });
    }

    // Age.
    match age {
        AgeGroup::Adult(years) if years >= thresholds.older_adult_age_years => {
            let reference = record.patient.as_ref().map(|p| p.reference.clone()).unwrap_or_else(|| "Patient".into());
            out.cautions.push(NsaidCaution {
                kind: CautionKind::OlderAdult,
                finding: format!("age {years}"),
                evidence: vec![Evidence { reference, description: format!("age {years}") }],
            });
        }
        AgeGroup::Unknown => out.unchecked.push(Unchecked::Age),
        _ => {}
    }

    // What was already tried this episode (an active NSAID counts whenever it started).
    let start = episode_start.unwrap_or(today - Duration::days(i64::from(content.rules.thresholds.episode_gap_days)));
    let mut tried: Vec<&Drug<'_>> = drugs
        .iter()
        .filter(|d| matches!(d.group, DrugGroup::Nsaid | DrugGroup::Opioid))
        .filter(|d| !matches!(d.medication.status.as_str(), "entered-in-error" | "cancelled" | "draft"))
        .collect();
    tried.sort_by_key(|d| d.medication.authored);
    for drug in tried {
        let medication = drug.medication;
        let name = drug.name.clone();
        let active = medication.status == "active";
        let in_episode = medication.authored.is_some_and(|d| d >= start && d <= today);
        if drug.group == DrugGroup::Nsaid {
            let topical = medication
                .routes
                .iter()
                .any(|route| super::imaging::has_phrase(&all_text(route), &thresholds.topical_route_text));
            let name = if topical { format!("topical {name}") } else { name };
            if active || in_episode {
                let evidence = Evidence {
                    reference: medication.reference.clone(),
                    description: format!("{name} {}", since(medication)),
                };
                if active && !topical && out.active_nsaid.is_none() {
                    out.active_nsaid = Some(evidence.clone());
                }
                out.tried.push(evidence);
            }
        } else if active || in_episode {
            out.tried.push(Evidence {
                reference: medication.reference.clone(),
                description: format!("{name} {}", since(medication)),
            });
        }
    }
    let therapy = content.value_set(ValueSetId::PtOtServices);
    out.prior_care = prior_care(record, content, &drugs, start, today);
    out.prior_care_known = [ResourceKind::Procedure, ResourceKind::ServiceRequest, ResourceKind::MedicationRequest]
        .into_iter()
        .all(complete);
    let mut sessions: Vec<(Date, &str)> = record
        .procedures
        .iter()
        .filter(|p| p.status == "completed")
        .filter(|p| therapy.match_concept(&p.code).is_some_and(|m| m.concept.group.as_deref() == Some("pt")))
        .filter_map(|p| Some((p.performed.filter(|d| *d >= start && *d <= today)?, p.reference.as_str())))
        .collect();
    sessions.sort();
    if let Some((last, reference)) = sessions.last() {
        let mut days: Vec<Date> = sessions.iter().map(|(d, _)| *d).collect();
        days.dedup();
        let count = days.len();
        out.tried.push(Evidence {
            reference: (*reference).to_owned(),
            description: format!(
                "physical therapy, {count} session day{} this episode, the last on {last}",
                if count == 1 { "" } else { "s" }
            ),
        });
    }
    out
}

/// Conservative care in the episode: therapy sessions and referrals, and pain medicines (NSAIDs,
/// muscle relaxants, opioids), as CMS OP-8 looks for before a lumbar MRI.
fn prior_care(
    record: &PatientRecord,
    content: &Content,
    drugs: &[Drug<'_>],
    start: Date,
    today: Date,
) -> Vec<Evidence> {
    let in_episode = |date: Option<Date>| date.is_some_and(|d| d >= start && d <= today);
    let therapy = content.value_set(ValueSetId::PtOtServices);
    let mut out = Vec::new();
    for procedure in record.procedures.iter().filter(|p| p.status == "completed" && in_episode(p.performed)) {
        if let Some(m) = therapy.match_concept(&procedure.code) {
            let date = procedure.performed.map(|d| d.to_string()).unwrap_or_default();
            out.push(Evidence {
                reference: procedure.reference.clone(),
                description: format!("{} on {date}", m.concept.display),
            });
        }
    }
    for request in record
        .service_requests
        .iter()
        .filter(|r| !matches!(r.status.as_str(), "revoked" | "entered-in-error" | "draft"))
    {
        if !in_episode(request.authored) {
            continue;
        }
        if let Some(m) = therapy.match_concept(&request.code) {
            let date = request.authored.map(|d| d.to_string()).unwrap_or_default();
            out.push(Evidence {
                reference: request.reference.clone(),
                description: format!("referral for {} on {date} ({})", m.concept.display, request.status),
            });
        }
    }
    for drug in
        drugs.iter().filter(|d| matches!(d.group, DrugGroup::Nsaid | DrugGroup::MuscleRelaxant | DrugGroup::Opioid))
    {
        let medication = drug.medication;
        if matches!(medication.status.as_str(), "entered-in-error" | "cancelled" | "draft") {
            continue;
        }
        if in_episode(medication.authored) || medication.status == "active" {
            out.push(Evidence {
                reference: medication.reference.clone(),
                description: format!("{} {}", drug.name, since(medication)),
            });
        }
    }
    out
}

/// "active since 2026-02-10" or "prescribed 2026-01-05 (completed)".
fn since(medication: &MedicationRequest) -> String {
    let date = medication.authored.map(|d| d.to_string()).unwrap_or_else(|| "an unknown date".into());
    if medication.status == "active" {
        format!("active since {date}")
    } else {
        format!("prescribed {date} ({})", medication.status)
    }
}

/// Every word of a concept: its text and the displays of its codings.
fn all_text(concept: &Concept) -> String {
    concept
        .text
        .iter()
        .map(String::as_str)
        .chain(concept.codes.iter().filter_map(|c| c.display.as_deref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The drug groups the rules here tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrugGroup {
    Anticoagulant,
    Nsaid,
    Opioid,
    MuscleRelaxant,
}

/// A medication request recognised as one of the groups, with its ingredient name and the
/// value set's group (anticoagulant or antiplatelet).
struct Drug<'a> {
    medication: &'a MedicationRequest,
    group: DrugGroup,
    name: String,
    subgroup: Option<String>,
}

/// A value set ready to recognise medications: by code, or for product and local codes by an
/// ingredient name in the text (whole words). The names are split into words once per call,
/// because splitting texts is what this costs (a long record has thousands of medications).
struct Names<'a> {
    set: &'a ValueSet,
    names: Vec<(String, &'a ValueSetConcept)>,
    /// RxNorm products and brands to ingredients (`rxnorm-ingredients.json`).
    drugs: &'a DrugMap,
}

/// What is worked out once per medication and shared by every set it is tried against: its
/// words, and its ingredients through the RxNorm product and brand map.
#[derive(Default)]
struct Haystack {
    words: Option<String>,
    ingredients: Option<Vec<FoundIngredient>>,
}

impl<'a> Names<'a> {
    fn new(set: &'a ValueSet, drugs: &'a DrugMap) -> Names<'a> {
        let names = set
            .concepts()
            .iter()
            .filter(|c| !c.display.trim().is_empty())
            .map(|c| (super::imaging::words(&c.display), c))
            .collect();
        Names { set, names, drugs }
    }

    /// The ingredient name and group of `concept`, if it is in the set. `haystack` caches the
    /// concept's words across sets.
    fn find(&self, concept: &Concept, haystack: &mut Haystack) -> Option<(String, Option<String>)> {
        if let Some(m) = self.set.match_concept(concept) {
            return Some((m.concept.display.clone(), m.concept.group.clone()));
        }
        // A product code (SCD, SBD, packs) or a brand name: through its ingredients.
        let ingredients = haystack.ingredients.get_or_insert_with(|| self.drugs.ingredients(concept));
        for ingredient in ingredients.iter() {
            let code = crate::record::Code {
                system: Some(crate::content::RXNORM.to_owned()),
                code: Some(ingredient.rxcui.clone()),
                display: None,
            };
            if let Some(member) = self.set.lookup(&code) {
                return Some((member.display.clone(), member.group.clone()));
            }
        }
        let haystack = haystack.words.get_or_insert_with(|| super::imaging::words(&all_text(concept)));
        self.names
            .iter()
            .find(|(name, _)| haystack.contains(name.as_str()))
            .map(|(_, c)| (c.display.clone(), c.group.clone()))
    }
}

/// Every medication request of the groups, recognised once.
fn classify<'a>(record: &'a PatientRecord, content: &Content, nsaids: &Names<'_>) -> Vec<Drug<'a>> {
    let others = [
        (DrugGroup::Anticoagulant, Names::new(content.value_set(ValueSetId::Anticoagulants), &content.drugs)),
        (DrugGroup::Opioid, Names::new(content.value_set(ValueSetId::Opioids), &content.drugs)),
        (DrugGroup::MuscleRelaxant, Names::new(content.value_set(ValueSetId::MuscleRelaxants), &content.drugs)),
    ];
    let mut out = Vec::new();
    for medication in &record.medications {
        let mut haystack = Haystack::default();
        let found =
            nsaids.find(&medication.medication, &mut haystack).map(|found| (DrugGroup::Nsaid, found)).or_else(|| {
                others
                    .iter()
                    .find_map(|(group, names)| Some((*group, names.find(&medication.medication, &mut haystack)?)))
            });
        if let Some((group, (name, subgroup))) = found {
            out.push(Drug { medication, group, name, subgroup });
        }
    }
    out
}

/// One dated source of "pregnant" (or "not pregnant") and, if it gives them, the weeks then.
struct Sign<'a> {
    date: Option<Date>,
    pregnant: bool,
    weeks_then: Option<f64>,
    reference: &'a str,
    description: String,
}

/// A current pregnancy: a pregnancy diagnosis, a "pregnant" pregnancy-status result or a
/// gestational age, within `pregnancy_max_days`, not followed by a "not pregnant" result. Weeks
/// come from the most recent source that gives them, counted forward to today.
fn pregnancy(record: &PatientRecord, content: &Content, today: Date) -> Option<Pregnancy> {
    let thresholds = &content.factors.thresholds;
    let from = today - Duration::days(i64::from(thresholds.pregnancy_max_days));
    let conditions = content.value_set(ValueSetId::PregnancyConditions);
    let observations = content.value_set(ValueSetId::PregnancyObservations);
    let answers = content.value_set(ValueSetId::PregnancyStatusAnswers);
    let mut signs: Vec<Sign<'_>> = Vec::new();
    for condition in record.conditions.iter().filter(|c| c.counts() && c.is_active()) {
        let Some(m) = conditions.match_concept(&condition.code) else { continue };
        let date = condition.last_date();
        if date.is_some_and(|d| d < from || d > today) {
            continue;
        }
        let weeks_then =
            (m.concept.group.as_deref() == Some("weeks")).then(|| z3a_weeks(m.coding.code.as_deref()?)).flatten();
        let when = date.map(|d| format!(" on {d}")).unwrap_or_else(|| " (undated)".into());
        signs.push(Sign {
            date,
            pregnant: true,
            weeks_then,
            reference: &condition.reference,
            description: format!("{}{when}", m.concept.describe()),
        });
    }
    for observation in record.observations.iter().filter(|o| o.counts()) {
        let Some(m) = observations.match_concept(&observation.code) else { continue };
        let Some(date) = observation.effective.filter(|d| *d >= from && *d <= today) else { continue };
        match m.concept.group.as_deref() {
            Some("status") => {
                let Some(Answer::Concept(value)) = &observation.value else { continue };
                let Some(answer) = answers.match_concept(value) else { continue };
                let pregnant = match answer.concept.group.as_deref() {
                    Some("pregnant") => true,
                    Some("not-pregnant") => false,
                    _ => continue,
                };
                signs.push(Sign {
                    date: Some(date),
                    pregnant,
                    weeks_then: None,
                    reference: &observation.reference,
                    description: format!("pregnancy status “{}” on {date}", answer.concept.display),
                });
            }
            Some("gestational-age") => {
                let Some(quantity) = observation.quantity() else { continue };
                let unit = quantity.code.as_deref().or(quantity.unit.as_deref()).unwrap_or("wk");
                let weeks = match unit.trim_matches(|c| c == '{' || c == '}') {
                    "wk" | "week" | "weeks" => quantity.value,
                    "d" | "day" | "days" => quantity.value / 7.0,
                    _ => continue,
                };
                if !(0.0..=45.0).contains(&weeks) {
                    continue;
                }
                signs.push(Sign {
                    date: Some(date),
                    pregnant: true,
                    weeks_then: Some(weeks),
                    reference: &observation.reference,
                    description: format!("gestational age {} weeks on {date}", (weeks * 10.0).round() / 10.0),
                });
            }
            _ => {}
        }
    }
    // Weeks now, from a source's weeks then; a pregnancy projected past 44 weeks has ended.
    let weeks_now = |sign: &Sign<'_>| -> Option<f64> {
        let elapsed = sign.date.map(|d| (today - d).whole_days() as f64 / 7.0)?;
        Some(sign.weeks_then? + elapsed)
    };
    let last_negative = signs.iter().filter(|s| !s.pregnant).filter_map(|s| s.date).max();
    let current: Vec<&Sign<'_>> = signs
        .iter()
        .filter(|s| s.pregnant)
        // A later (or same-day) "not pregnant" result ends what came before it.
        .filter(|s| match (last_negative, s.date) {
            (Some(negative), Some(date)) => date > negative,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .filter(|s| weeks_now(s).is_none_or(|w| w <= 44.0))
        .collect();
    if current.is_empty() {
        return None;
    }
    let weeks = current
        .iter()
        .filter(|s| s.weeks_then.is_some())
        .max_by_key(|s| s.date)
        .and_then(|s| weeks_now(s))
        .map(|w| w.floor() as i64);
    let evidence = current
        .iter()
        .map(|s| Evidence { reference: s.reference.to_owned(), description: s.description.clone() })
        .collect();
    Some(Pregnancy { weeks, evidence })
}

/// Weeks of gestation from an ICD-10-CM Z3A code: "Z3A.20" is 20 weeks, "Z3A.01" under 8 weeks
/// (taken as 7), "Z3A.49" over 42 weeks; "Z3A.00" (not specified) gives none.
fn z3a_weeks(code: &str) -> Option<f64> {
    let digits: String =
        code.trim().to_ascii_uppercase().trim_start_matches("Z3A").chars().filter(char::is_ascii_digit).collect();
    match digits.parse::<u32>().ok()? {
        0 => None,
        1 => Some(7.0),
        49 => Some(43.0),
        weeks @ 8..=42 => Some(f64::from(weeks)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z3a_codes_give_weeks() {
        assert_eq!(z3a_weeks("Z3A.20"), Some(20.0));
        assert_eq!(z3a_weeks("z3a19"), Some(19.0));
        assert_eq!(z3a_weeks("Z3A.01"), Some(7.0));
        assert_eq!(z3a_weeks("Z3A.00"), None);
        assert_eq!(z3a_weeks("Z3A.49"), Some(43.0));
        assert_eq!(z3a_weeks("Z3A.05"), None);
    }
}
