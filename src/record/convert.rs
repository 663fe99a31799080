//! Conversion from fhir-sdk's R4B models (which read R4 JSON) into the record's facts.
//! Record resources go through the typed models; draft orders are read leniently because the
//! spec warns that their details may be incomplete.

use fhir_sdk::r4b::resources as fhir;
use fhir_sdk::r4b::types::{CodeableConcept, Reference};
use serde::Deserialize;
use time::{Date, Month};

use super::model::*;
use super::ResourceKind;

pub(super) enum Converted {
    Patient(Patient),
    /// The condition and, when its onset is given as an age, that age in years.
    Condition(Condition, Option<f64>),
    Observation(Observation),
    MedicationRequest(MedicationRequest),
    Procedure(Procedure),
    ServiceRequest(ServiceRequest),
    QuestionnaireResponse(QuestionnaireResponse),
}

pub(super) enum Read {
    Resource(Converted),
    OtherPatient,
}

/// Parses one resource of a known kind. The error is a short reason for the skipped-resource
/// report (serde's message: which field, which line and column; never the values).
pub(super) fn read(kind: ResourceKind, json: &str, patient_id: &str, members: &[String]) -> Result<Read, String> {
    fn parse<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T, String> {
        serde_json::from_str(json).map_err(|error| error.to_string())
    }
    // fhir-sdk reads choice elements (`onset[x]`, `value[x]`, ...) through serde's `flatten`,
    // which turns a malformed value into "absent". A fever with an unreadable value must not
    // silently vanish, so a choice element that is present but not read skips the resource.
    let unreadable = |name: &str, read: bool| -> Result<(), String> {
        let present = members.iter().any(|member| {
            member.strip_prefix(name).is_some_and(|rest| rest.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        });
        if present && !read { Err(format!("`{name}[x]` is present but could not be read")) } else { Ok(()) }
    };
    let converted = match kind {
        ResourceKind::Patient => {
            let patient: fhir::Patient = parse(json)?;
            if patient.id.as_deref().is_some_and(|id| id != patient_id) {
                return Ok(Read::OtherPatient);
            }
            Converted::Patient(Patient {
                reference: reference_of("Patient", patient.id.as_deref()),
                birth_date: patient.birth_date.as_ref().map(fhir_date),
                gender: patient.gender.as_ref().map(|gender| {
                    use fhir_sdk::r4b::codes::AdministrativeGender as G;
                    match gender {
                        G::Male => Gender::Male,
                        G::Female => Gender::Female,
                        G::Other => Gender::Other,
                        _ => Gender::Unknown,
                    }
                }),
            })
        }
        ResourceKind::Condition => {
            let condition: fhir::Condition = parse(json)?;
            unreadable("onset", condition.onset.is_some())?;
            unreadable("abatement", condition.abatement.is_some())?;
            if other_patient(Some(&condition.subject), patient_id) {
                return Ok(Read::OtherPatient);
            }
            let (onset, onset_age) = match &condition.onset {
                Some(fhir::ConditionOnset::DateTime(value)) => (Some(fhir_date_time(value)), None),
                Some(fhir::ConditionOnset::Period(period)) => (period.start.as_ref().map(fhir_date_time), None),
                Some(fhir::ConditionOnset::Age(age)) => (None, age.value.filter(|v| v.is_finite() && *v >= 0.0)),
                _ => (None, None),
            };
            let abatement = match &condition.abatement {
                Some(fhir::ConditionAbatement::DateTime(value)) => Some(fhir_date_time(value)),
                Some(fhir::ConditionAbatement::Period(period)) => {
                    period.end.as_ref().or(period.start.as_ref()).map(fhir_date_time)
                }
                _ => None,
            };
            Converted::Condition(
                Condition {
                    reference: reference_of("Condition", condition.id.as_deref()),
                    code: concept(condition.code.as_ref()),
                    clinical_status: first_code(condition.clinical_status.as_ref()),
                    verification_status: first_code(condition.verification_status.as_ref()),
                    onset,
                    recorded: condition.recorded_date.as_ref().map(fhir_date_time),
                    abatement,
                },
                onset_age,
            )
        }
        ResourceKind::Observation => {
            let observation: fhir::Observation = parse(json)?;
            unreadable("effective", observation.effective.is_some())?;
            unreadable("value", observation.value.is_some())?;
            if other_patient(observation.subject.as_ref(), patient_id) {
                return Ok(Read::OtherPatient);
            }
            let effective = match &observation.effective {
                Some(fhir::ObservationEffective::DateTime(value)) => Some(fhir_date_time(value)),
                Some(fhir::ObservationEffective::Period(period)) => {
                    period.start.as_ref().or(period.end.as_ref()).map(fhir_date_time)
                }
                Some(fhir::ObservationEffective::Instant(instant)) => Some(instant.0.date()),
                _ => None,
            }
            .or_else(|| observation.issued.as_ref().map(|instant| instant.0.date()));
            let value = observation.value.as_ref().and_then(|value| match value {
                fhir::ObservationValue::Quantity(quantity) => quantity_answer(quantity),
                fhir::ObservationValue::CodeableConcept(value) => Some(Answer::Concept(concept(Some(value)))),
                fhir::ObservationValue::Integer(value) => Some(Answer::Integer(i64::from(*value))),
                fhir::ObservationValue::Boolean(value) => Some(Answer::Boolean(*value)),
                fhir::ObservationValue::String(value) => Some(Answer::Text(value.clone())),
                _ => None,
            });
            let components = observation
                .component
                .iter()
                .flatten()
                .map(|component| Component {
                    code: concept(Some(&component.code)),
                    value: component.value.as_ref().and_then(|value| match value {
                        fhir::ObservationComponentValue::Quantity(quantity) => quantity_answer(quantity),
                        fhir::ObservationComponentValue::CodeableConcept(value) => {
                            Some(Answer::Concept(concept(Some(value))))
                        }
                        fhir::ObservationComponentValue::Integer(value) => Some(Answer::Integer(i64::from(*value))),
                        fhir::ObservationComponentValue::Boolean(value) => Some(Answer::Boolean(*value)),
                        fhir::ObservationComponentValue::String(value) => Some(Answer::Text(value.clone())),
                        _ => None,
                    }),
                })
                .collect();
            Converted::Observation(Observation {
                reference: reference_of("Observation", observation.id.as_deref()),
                code: concept(Some(&observation.code)),
                status: code_text(&observation.status),
                effective,
                value,
                components,
            })
        }
        ResourceKind::MedicationRequest => {
            let request: fhir::MedicationRequest = parse(json)?;
            if other_patient(Some(&request.subject), patient_id) {
                return Ok(Read::OtherPatient);
            }
            let medication = match &request.medication {
                fhir::MedicationRequestMedication::CodeableConcept(value) => concept(Some(value)),
                fhir::MedicationRequestMedication::Reference(reference) => Concept {
                    codes: Vec::new(),
                    text: reference.display.clone(),
                },
            };
            let dispense = request.dispense_request.as_ref();
            let supply_days = dispense.and_then(|d| d.expected_supply_duration.as_ref()).and_then(|duration| {
                let value = duration.value.filter(|v| v.is_finite() && *v >= 0.0)?;
                let unit = duration.code.as_deref().or(duration.unit.as_deref()).unwrap_or("d");
                Some(value * days_per_unit(unit)?)
            });
            let validity = dispense.and_then(|d| d.validity_period.as_ref());
            Converted::MedicationRequest(MedicationRequest {
                reference: reference_of("MedicationRequest", request.id.as_deref()),
                medication,
                status: request.status.clone(),
                intent: request.intent.clone(),
                authored: request.authored_on.as_ref().map(fhir_date_time),
                supply_days,
                repeats: dispense.and_then(|d| d.number_of_repeats_allowed).unwrap_or(0),
                validity_start: validity.and_then(|p| p.start.as_ref()).map(fhir_date_time),
                validity_end: validity.and_then(|p| p.end.as_ref()).map(fhir_date_time),
                routes: request
                    .dosage_instruction
                    .iter()
                    .flatten()
                    .filter_map(|dosage| dosage.route.as_ref())
                    .map(|route| concept(Some(route)))
                    .collect(),
            })
        }
        ResourceKind::QuestionnaireResponse => {
            let response: fhir::QuestionnaireResponse = parse(json)?;
            if other_patient(response.subject.as_ref(), patient_id) {
                return Ok(Read::OtherPatient);
            }
            let mut answers = Vec::new();
            flatten_items(&response.item, &mut answers, 0);
            Converted::QuestionnaireResponse(QuestionnaireResponse {
                reference: reference_of("QuestionnaireResponse", response.id.as_deref()),
                questionnaire: response.questionnaire.clone(),
                status: code_text(&response.status),
                authored: response.authored.as_ref().map(fhir_date_time),
                answers,
            })
        }
        ResourceKind::Procedure => {
            let procedure: fhir::Procedure = parse(json)?;
            unreadable("performed", procedure.performed.is_some())?;
            if other_patient(Some(&procedure.subject), patient_id) {
                return Ok(Read::OtherPatient);
            }
            let performed = match &procedure.performed {
                Some(fhir::ProcedurePerformed::DateTime(value)) => Some(fhir_date_time(value)),
                Some(fhir::ProcedurePerformed::Period(period)) => {
                    period.start.as_ref().or(period.end.as_ref()).map(fhir_date_time)
                }
                _ => None,
            };
            Converted::Procedure(Procedure {
                reference: reference_of("Procedure", procedure.id.as_deref()),
                code: concept(procedure.code.as_ref()),
                status: code_text(&procedure.status),
                performed,
            })
        }
        ResourceKind::ServiceRequest => {
            let request: fhir::ServiceRequest = parse(json)?;
            if other_patient(Some(&request.subject), patient_id) {
                return Ok(Read::OtherPatient);
            }
            Converted::ServiceRequest(ServiceRequest {
                reference: reference_of("ServiceRequest", request.id.as_deref()),
                code: concept(request.code.as_ref()),
                status: code_text(&request.status),
                authored: request.authored_on.as_ref().map(fhir_date_time),
            })
        }
    };
    Ok(Read::Resource(converted))
}

fn quantity_answer(quantity: &fhir_sdk::r4b::types::Quantity) -> Option<Answer> {
    let value = quantity.value.filter(|v| v.is_finite())?;
    Some(Answer::Quantity(Quantity { value, unit: quantity.unit.clone(), code: quantity.code.clone() }))
}

/// Questionnaire items nest; answers are collected depth-first (to a sane depth).
fn flatten_items(items: &[Option<fhir::QuestionnaireResponseItem>], out: &mut Vec<QuestionnaireAnswer>, depth: usize) {
    if depth > 16 {
        return;
    }
    for item in items.iter().flatten() {
        for answer in item.answer.iter().flatten() {
            let value = answer.value.as_ref().and_then(|value| match value {
                fhir::QuestionnaireResponseItemAnswerValue::Boolean(v) => Some(Answer::Boolean(*v)),
                fhir::QuestionnaireResponseItemAnswerValue::Decimal(v) => Some(Answer::Decimal(*v)),
                fhir::QuestionnaireResponseItemAnswerValue::Integer(v) => Some(Answer::Integer(i64::from(*v))),
                fhir::QuestionnaireResponseItemAnswerValue::String(v) => Some(Answer::Text(v.clone())),
                fhir::QuestionnaireResponseItemAnswerValue::Coding(coding) => Some(Answer::Concept(Concept {
                    codes: vec![Code { system: coding.system.clone(), code: coding.code.clone(), display: coding.display.clone() }],
                    text: None,
                })),
                fhir::QuestionnaireResponseItemAnswerValue::Quantity(quantity) => quantity_answer(quantity),
                _ => None,
            });
            if let Some(value) = value {
                out.push(QuestionnaireAnswer { link_id: item.link_id.clone(), text: item.text.clone(), value });
            }
            flatten_items(&answer.item, out, depth + 1);
        }
        flatten_items(&item.item, out, depth + 1);
    }
}

/// A subject that names another patient. A subject without a literal reference (an identifier
/// only) is accepted: the client sent it for this patient.
fn other_patient(subject: Option<&Reference>, patient_id: &str) -> bool {
    let Some(reference) = subject.and_then(|s| s.reference.as_deref()) else {
        return false;
    };
    let reference = reference.split("/_history/").next().unwrap_or(reference);
    match reference.rsplit_once("Patient/") {
        Some((prefix, id)) => (!prefix.is_empty() && !prefix.ends_with('/')) || id != patient_id,
        None => true,
    }
}

fn reference_of(resource_type: &str, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{resource_type}/{id}"),
        None => format!("{resource_type} (no id)"),
    }
}

fn concept(value: Option<&CodeableConcept>) -> Concept {
    let Some(value) = value else { return Concept::default() };
    Concept {
        codes: value
            .coding
            .iter()
            .flatten()
            .map(|coding| Code {
                system: coding.system.clone(),
                code: coding.code.clone(),
                display: coding.display.clone(),
            })
            .collect(),
        text: value.text.clone(),
    }
}

fn first_code(value: Option<&CodeableConcept>) -> Option<String> {
    value?.coding.iter().flatten().find_map(|coding| coding.code.clone())
}

/// The FHIR code of a generated code enum, through its serde representation.
fn code_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}

/// Partial dates become their first day: a longer symptom duration never makes the service warn
/// against imaging that might be needed.
pub(super) fn fhir_date(date: &fhir_sdk::Date) -> Date {
    match date {
        fhir_sdk::Date::Year(year) => Date::from_calendar_date(*year, Month::January, 1).unwrap_or(Date::MIN),
        fhir_sdk::Date::YearMonth(year, month) => Date::from_calendar_date(*year, *month, 1).unwrap_or(Date::MIN),
        fhir_sdk::Date::Date(date) => *date,
    }
}

fn fhir_date_time(value: &fhir_sdk::DateTime) -> Date {
    match value {
        fhir_sdk::DateTime::Date(date) => fhir_date(date),
        fhir_sdk::DateTime::DateTime(instant) => instant.0.date(),
    }
}

fn days_per_unit(unit: &str) -> Option<f64> {
    match unit {
        "d" | "day" | "days" => Some(1.0),
        "wk" | "week" | "weeks" => Some(7.0),
        "mo" | "month" | "months" => Some(30.0),
        "a" | "year" | "years" => Some(365.0),
        "h" | "hour" | "hours" => Some(1.0 / 24.0),
        _ => None,
    }
}

pub(super) fn add_years(birth: Date, years: f64) -> Option<Date> {
    let days = (years * 365.25).floor();
    if !(0.0..=54_000.0).contains(&days) {
        return None;
    }
    birth.checked_add(time::Duration::days(days as i64))
}

/// Lenient view of a draft order: every member optional, unknown members ignored.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DraftView {
    resource_type: Option<String>,
    id: Option<String>,
    status: Option<String>,
    code: Option<LenientConcept>,
    medication_codeable_concept: Option<LenientConcept>,
    reason_code: Vec<LenientConcept>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LenientConcept {
    coding: Vec<LenientCoding>,
    text: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LenientCoding {
    system: Option<String>,
    code: Option<String>,
    display: Option<String>,
}

impl From<LenientConcept> for Concept {
    fn from(value: LenientConcept) -> Concept {
        Concept {
            codes: value
                .coding
                .into_iter()
                .map(|c| Code { system: c.system, code: c.code, display: c.display })
                .collect(),
            text: value.text,
        }
    }
}

#[derive(Deserialize)]
struct DraftBundle {
    #[serde(default)]
    entry: Vec<DraftEntry>,
}

#[derive(Deserialize)]
struct DraftEntry {
    #[serde(default)]
    resource: Option<serde_json::Value>,
}

/// (type, id, reason) of a draft order that could not be read.
pub(super) type DraftError = (Option<String>, Option<String>, String);

pub(super) fn read_draft_orders(
    json: &str,
    selections: Option<&[String]>,
) -> Vec<(Option<DraftOrder>, Option<DraftError>)> {
    let bundle: DraftBundle = match serde_json::from_str(json) {
        Ok(bundle) => bundle,
        Err(error) => return vec![(None, Some((None, None, format!("draftOrders is not a Bundle ({error})"))))],
    };
    bundle
        .entry
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let Some(raw) = entry.resource else {
                return (None, Some((None, None, format!("draft order entry {index} has no resource"))));
            };
            let view: DraftView = match serde_json::from_value(raw.clone()) {
                Ok(view) => view,
                Err(error) => return (None, Some((None, None, format!("draft order entry {index}: {error}")))),
            };
            let Some(resource_type) = view.resource_type else {
                return (None, Some((None, view.id, format!("draft order entry {index} has no resourceType"))));
            };
            let reference = match &view.id {
                Some(id) => format!("{resource_type}/{id}"),
                None => format!("{resource_type} (draft order {index}, no id)"),
            };
            let selected = selections.is_some_and(|s| s.iter().any(|sel| *sel == reference));
            let code = view.code.or(view.medication_codeable_concept).map(Concept::from).unwrap_or_default();
            let order = DraftOrder {
                resource_type,
                id: view.id,
                reference,
                code,
                reason: view.reason_code.into_iter().map(Concept::from).collect(),
                status: view.status,
                selected,
                raw,
            };
            (Some(order), None)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(value: &str) -> Reference {
        serde_json::from_value(serde_json::json!({ "reference": value })).unwrap()
    }

    #[test]
    fn tells_this_patient_from_another() {
        assert!(!other_patient(Some(&reference("Patient/p1")), "p1"));
        assert!(!other_patient(Some(&reference("https://fhir.example/r4/Patient/p1")), "p1"));
        assert!(!other_patient(Some(&reference("Patient/p1/_history/3")), "p1"));
        assert!(other_patient(Some(&reference("Patient/p2")), "p1"));
        assert!(other_patient(Some(&reference("Group/g1")), "p1"));
        assert!(other_patient(Some(&reference("XPatient/p1")), "p1"));
        assert!(!other_patient(None, "p1"));
    }

    #[test]
    fn partial_dates_take_their_first_day() {
        let date: fhir_sdk::Date = serde_json::from_str("\"2024-03\"").unwrap();
        assert_eq!(fhir_date(&date), time::macros::date!(2024 - 03 - 01));
        let date: fhir_sdk::Date = serde_json::from_str("\"2024\"").unwrap();
        assert_eq!(fhir_date(&date), time::macros::date!(2024 - 01 - 01));
    }
}
