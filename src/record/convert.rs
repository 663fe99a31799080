//! Conversion from FHIR JSON into the record's facts, through views typed with fhir-sdk's R4B
//! datatypes (which read R4 JSON). Draft orders are read more leniently still, because the spec
//! warns that their details may be incomplete.

use fhir_sdk::r4b::codes;
use fhir_sdk::r4b::types::{
    Age, CodeableConcept, Coding, Duration as FhirDuration, Period, Quantity as FhirQuantity, Reference,
};
use serde::Deserialize;
use time::{Date, Month};

use super::ResourceKind;
use super::model::*;

pub(super) enum Converted {
    Patient(Patient),
    /// The condition and, when its onset is given as an age, that age in years.
    Condition(Condition, Option<f64>),
    Observation(Observation),
    MedicationRequest(MedicationRequest),
    Procedure(Procedure),
    ServiceRequest(ServiceRequest),
    QuestionnaireResponse(QuestionnaireResponse),
    AllergyIntolerance(AllergyIntolerance),
}

pub(super) enum Read {
    Resource(Converted),
    OtherPatient,
    /// A resource of another type (an `_include`d Patient in a Condition search, say).
    OtherType,
}

// Views of the resources: the elements the rules read, typed with fhir-sdk's R4B datatypes
// (CodeableConcept, Reference, Quantity, Period, dates and code enums). Reading views instead of
// fhir-sdk's whole resources skips the elements nobody reads without building them, and types
// each choice element (`onsetDateTime`, `valueQuantity`, ...) on its own, so a malformed one
// makes the resource unreadable (skipped and reported) instead of silently absent.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatientView {
    resource_type: Option<String>,
    id: Option<String>,
    gender: Option<codes::AdministrativeGender>,
    birth_date: Option<fhir_sdk::Date>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConditionView {
    resource_type: Option<String>,
    id: Option<String>,
    clinical_status: Option<CodeableConcept>,
    verification_status: Option<CodeableConcept>,
    code: Option<CodeableConcept>,
    subject: Option<Reference>,
    onset_date_time: Option<fhir_sdk::DateTime>,
    onset_period: Option<Period>,
    onset_age: Option<Age>,
    abatement_date_time: Option<fhir_sdk::DateTime>,
    abatement_period: Option<Period>,
    recorded_date: Option<fhir_sdk::DateTime>,
}

/// Declares a view with the `value[x]` members of an Observation, a component or a
/// questionnaire answer appended (serde's `flatten` would buffer the whole resource instead).
macro_rules! view_with_value {
    ($(#[$meta:meta])* struct $name:ident { $($(#[$field_meta:meta])* $field:ident : $type:ty,)* }) => {
        $(#[$meta])*
        struct $name {
            $($(#[$field_meta])* $field: $type,)*
            #[serde(default)]
            value_quantity: Option<FhirQuantity>,
            #[serde(default)]
            value_codeable_concept: Option<CodeableConcept>,
            #[serde(default)]
            value_coding: Option<Coding>,
            #[serde(default)]
            value_integer: Option<i64>,
            #[serde(default)]
            value_decimal: Option<f64>,
            #[serde(default)]
            value_boolean: Option<bool>,
            #[serde(default)]
            value_string: Option<String>,
        }
    };
}

/// The `value[x]` of a view declared with `view_with_value!`.
macro_rules! answer_of {
    ($view:expr) => {{
        let view = $view;
        if let Some(quantity) = &view.value_quantity {
            quantity_answer(quantity)
        } else if let Some(value) = &view.value_codeable_concept {
            Some(Answer::Concept(concept(Some(value))))
        } else if let Some(coding) = &view.value_coding {
            Some(Answer::Concept(Concept { codes: vec![code_of(coding)], text: None }))
        } else if let Some(value) = view.value_integer {
            Some(Answer::Integer(value))
        } else if let Some(value) = view.value_decimal.filter(|v: &f64| v.is_finite()) {
            Some(Answer::Decimal(value))
        } else if let Some(value) = view.value_boolean {
            Some(Answer::Boolean(value))
        } else {
            view.value_string.clone().map(Answer::Text)
        }
    }};
}

view_with_value! {
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObservationView {
    resource_type: Option<String>,
    id: Option<String>,
    status: codes::ObservationStatus,
    code: CodeableConcept,
    subject: Option<Reference>,
    effective_date_time: Option<fhir_sdk::DateTime>,
    effective_period: Option<Period>,
    effective_instant: Option<fhir_sdk::Instant>,
    issued: Option<fhir_sdk::Instant>,
    #[serde(default)]
    component: Vec<ComponentView>,
}
}

view_with_value! {
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComponentView {
    code: CodeableConcept,
}
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MedicationRequestView {
    resource_type: Option<String>,
    id: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    intent: String,
    medication_codeable_concept: Option<CodeableConcept>,
    medication_reference: Option<Reference>,
    subject: Option<Reference>,
    authored_on: Option<fhir_sdk::DateTime>,
    dispense_request: Option<DispenseView>,
    #[serde(default)]
    dosage_instruction: Vec<DosageView>,
    /// Kept unparsed: only a contained Medication that a `medicationReference` names is read, so
    /// another contained resource of any shape cannot make the request unreadable.
    #[serde(default)]
    contained: Vec<serde_json::Value>,
}

/// A Medication (contained or prefetched), read leniently: only what names its drug.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct MedicationView {
    resource_type: Option<String>,
    id: Option<String>,
    code: Option<LenientConcept>,
    ingredient: Vec<IngredientView>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct IngredientView {
    item_codeable_concept: Option<LenientConcept>,
}

impl MedicationView {
    /// Its code and its ingredients' codes in one concept, so a product code, an ingredient code
    /// or the text can each place it in a drug class.
    pub(super) fn concept(self) -> Concept {
        let mut concept: Concept = self.code.map(Concept::from).unwrap_or_default();
        for ingredient in self.ingredient {
            if let Some(item) = ingredient.item_codeable_concept {
                let item = Concept::from(item);
                concept.codes.extend(item.codes);
                if concept.text.is_none() {
                    concept.text = item.text;
                }
            }
        }
        concept
    }
}

/// A Medication resource from a Bundle: `Medication/<id>` and what names it.
pub(super) fn read_medication(json: &str) -> Option<(String, Concept)> {
    let view: MedicationView = serde_json::from_str(json).ok()?;
    if view.resource_type.as_deref() != Some("Medication") {
        return None;
    }
    let id = view.id.clone()?;
    Some((format!("Medication/{id}"), view.concept()))
}

/// The concept of a `medicationReference`: a contained Medication (`#id`) now; a reference to a
/// prefetched Medication is resolved when the whole record has been read.
fn referenced_medication(
    reference: Option<&str>,
    display: Option<&str>,
    contained: Vec<serde_json::Value>,
) -> (Concept, Option<String>) {
    let fallback = || Concept { codes: Vec::new(), text: display.map(str::to_owned) };
    let Some(reference) = reference else { return (fallback(), None) };
    if let Some(local) = reference.strip_prefix('#') {
        let found = contained
            .into_iter()
            .find(|m| m["resourceType"] == "Medication" && m["id"] == local)
            .and_then(|m| serde_json::from_value::<MedicationView>(m).ok());
        return match found {
            Some(medication) => {
                let mut concept = medication.concept();
                if concept.text.is_none() {
                    concept.text = display.map(str::to_owned);
                }
                (concept, None)
            }
            None => (fallback(), None),
        };
    }
    // `Medication/123`, `Medication/123/_history/2` or an absolute URL ending so.
    let key = reference.split("/_history/").next().and_then(|r| r.rfind("Medication/").map(|at| r[at..].to_owned()));
    (fallback(), key)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DispenseView {
    validity_period: Option<Period>,
    number_of_repeats_allowed: Option<u32>,
    expected_supply_duration: Option<FhirDuration>,
}

#[derive(Deserialize)]
struct DosageView {
    route: Option<CodeableConcept>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcedureView {
    resource_type: Option<String>,
    id: Option<String>,
    status: codes::EventStatus,
    code: Option<CodeableConcept>,
    subject: Option<Reference>,
    performed_date_time: Option<fhir_sdk::DateTime>,
    performed_period: Option<Period>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceRequestView {
    resource_type: Option<String>,
    id: Option<String>,
    status: codes::RequestStatus,
    code: Option<CodeableConcept>,
    subject: Option<Reference>,
    authored_on: Option<fhir_sdk::DateTime>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QuestionnaireResponseView {
    resource_type: Option<String>,
    id: Option<String>,
    questionnaire: Option<String>,
    status: codes::QuestionnaireResponseStatus,
    subject: Option<Reference>,
    authored: Option<fhir_sdk::DateTime>,
    #[serde(default)]
    item: Vec<ItemView>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AllergyIntoleranceView {
    resource_type: Option<String>,
    id: Option<String>,
    clinical_status: Option<CodeableConcept>,
    verification_status: Option<CodeableConcept>,
    code: Option<CodeableConcept>,
    /// AllergyIntolerance names its patient in `patient`, not `subject`.
    patient: Option<Reference>,
    recorded_date: Option<fhir_sdk::DateTime>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemView {
    link_id: String,
    text: Option<String>,
    #[serde(default)]
    answer: Vec<AnswerView>,
    #[serde(default)]
    item: Vec<ItemView>,
}

view_with_value! {
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerView {
    #[serde(default)]
    item: Vec<ItemView>,
}
}

/// serde's message without the values it quotes: what was wrong and where (line, column), never
/// what the data held, since these reasons go back to the client and into logs, and the data may
/// come from a FHIR server the client could not read itself.
pub(crate) fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let mut out = String::with_capacity(message.len());
    let mut quote: Option<char> = None;
    for c in message.chars() {
        match quote {
            Some(open) if c == open => {
                out.push('…');
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                out.push(c);
                quote = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// Parses one resource expected to be of `kind`. The error is a short reason for the
/// skipped-resource report (serde's message: which field, line and column; never the values).
pub(super) fn read(kind: ResourceKind, json: &str, patient_id: &str) -> Result<Read, String> {
    fn parse<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T, String> {
        serde_json::from_str(json).map_err(|error| describe_json_error(&error))
    }
    let is_other = |resource_type: &Option<String>| resource_type.as_deref().is_some_and(|t| t != kind.as_str());
    // Another type (an `_include`d resource) or another patient's resource is not this record's.
    let screen = |resource_type: &Option<String>, subject: Option<&Reference>| {
        if is_other(resource_type) {
            Some(Read::OtherType)
        } else if other_patient(subject, patient_id) {
            Some(Read::OtherPatient)
        } else {
            None
        }
    };
    let converted = match kind {
        ResourceKind::Patient => {
            let patient: PatientView = parse(json)?;
            if is_other(&patient.resource_type) {
                return Ok(Read::OtherType);
            }
            if patient.id.as_deref().is_some_and(|id| id != patient_id) {
                return Ok(Read::OtherPatient);
            }
            Converted::Patient(Patient {
                reference: reference_of("Patient", patient.id.as_deref()),
                birth_date: patient.birth_date.as_ref().map(fhir_date),
                gender: patient.gender.as_ref().map(|gender| {
                    use codes::AdministrativeGender as G;
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
            let condition: ConditionView = parse(json)?;
            if let Some(read) = screen(&condition.resource_type, condition.subject.as_ref()) {
                return Ok(read);
            }
            let onset = condition
                .onset_date_time
                .as_ref()
                .map(fhir_date_time)
                .or_else(|| condition.onset_period.as_ref().and_then(|p| p.start.as_ref()).map(fhir_date_time));
            let onset_age =
                condition.onset_age.as_ref().and_then(|age| age.value).filter(|v| v.is_finite() && *v >= 0.0);
            let abatement = condition.abatement_date_time.as_ref().map(fhir_date_time).or_else(|| {
                let period = condition.abatement_period.as_ref()?;
                period.end.as_ref().or(period.start.as_ref()).map(fhir_date_time)
            });
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
            let observation: ObservationView = parse(json)?;
            if let Some(read) = screen(&observation.resource_type, observation.subject.as_ref()) {
                return Ok(read);
            }
            let effective = observation
                .effective_date_time
                .as_ref()
                .map(fhir_date_time)
                .or_else(|| {
                    let period = observation.effective_period.as_ref()?;
                    period.start.as_ref().or(period.end.as_ref()).map(fhir_date_time)
                })
                .or_else(|| observation.effective_instant.as_ref().map(|instant| instant.0.date()))
                .or_else(|| observation.issued.as_ref().map(|instant| instant.0.date()));
            Converted::Observation(Observation {
                reference: reference_of("Observation", observation.id.as_deref()),
                code: concept(Some(&observation.code)),
                status: code_text(&observation.status),
                effective,
                value: answer_of!(&observation),
                components: observation
                    .component
                    .iter()
                    .map(|component| Component { code: concept(Some(&component.code)), value: answer_of!(component) })
                    .collect(),
            })
        }
        ResourceKind::MedicationRequest => {
            let mut request: MedicationRequestView = parse(json)?;
            if let Some(read) = screen(&request.resource_type, request.subject.as_ref()) {
                return Ok(read);
            }
            let (medication, medication_reference) =
                match (&request.medication_codeable_concept, &request.medication_reference) {
                    (Some(value), _) => (concept(Some(value)), None),
                    (None, Some(reference)) => referenced_medication(
                        reference.reference.as_deref(),
                        reference.display.as_deref(),
                        std::mem::take(&mut request.contained),
                    ),
                    (None, None) => (Concept::default(), None),
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
                medication_reference,
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
                    .filter_map(|dosage| dosage.route.as_ref())
                    .map(|route| concept(Some(route)))
                    .collect(),
            })
        }
        ResourceKind::QuestionnaireResponse => {
            let response: QuestionnaireResponseView = parse(json)?;
            if let Some(read) = screen(&response.resource_type, response.subject.as_ref()) {
                return Ok(read);
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
            let procedure: ProcedureView = parse(json)?;
            if let Some(read) = screen(&procedure.resource_type, procedure.subject.as_ref()) {
                return Ok(read);
            }
            let performed = procedure.performed_date_time.as_ref().map(fhir_date_time).or_else(|| {
                let period = procedure.performed_period.as_ref()?;
                period.start.as_ref().or(period.end.as_ref()).map(fhir_date_time)
            });
            Converted::Procedure(Procedure {
                reference: reference_of("Procedure", procedure.id.as_deref()),
                code: concept(procedure.code.as_ref()),
                status: code_text(&procedure.status),
                performed,
            })
        }
        ResourceKind::AllergyIntolerance => {
            let allergy: AllergyIntoleranceView = parse(json)?;
            if let Some(read) = screen(&allergy.resource_type, allergy.patient.as_ref()) {
                return Ok(read);
            }
            Converted::AllergyIntolerance(AllergyIntolerance {
                reference: reference_of("AllergyIntolerance", allergy.id.as_deref()),
                code: concept(allergy.code.as_ref()),
                clinical_status: first_code(allergy.clinical_status.as_ref()),
                verification_status: first_code(allergy.verification_status.as_ref()),
                recorded: allergy.recorded_date.as_ref().map(fhir_date_time),
            })
        }
        ResourceKind::ServiceRequest => {
            let request: ServiceRequestView = parse(json)?;
            if let Some(read) = screen(&request.resource_type, request.subject.as_ref()) {
                return Ok(read);
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

fn quantity_answer(quantity: &FhirQuantity) -> Option<Answer> {
    let value = quantity.value.filter(|v| v.is_finite())?;
    Some(Answer::Quantity(Quantity { value, unit: quantity.unit.clone(), code: quantity.code.clone() }))
}

fn code_of(coding: &Coding) -> Code {
    Code { system: coding.system.clone(), code: coding.code.clone(), display: coding.display.clone() }
}

/// Questionnaire items nest; answers are collected depth-first (to a sane depth).
fn flatten_items(items: &[ItemView], out: &mut Vec<QuestionnaireAnswer>, depth: usize) {
    if depth > 16 {
        return;
    }
    for item in items {
        for answer in &item.answer {
            if let Some(value) = answer_of!(answer) {
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
    Concept { codes: value.coding.iter().flatten().map(code_of).collect(), text: value.text.clone() }
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
    medication_reference: Option<LenientReference>,
    contained: Vec<serde_json::Value>,
    reason_code: Vec<LenientConcept>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LenientReference {
    reference: Option<String>,
    display: Option<String>,
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
        Err(error) => {
            return vec![(
                None,
                Some((None, None, format!("draftOrders is not a Bundle ({})", describe_json_error(&error)))),
            )];
        }
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
                Err(error) => {
                    return (
                        None,
                        Some((None, None, format!("draft order entry {index}: {}", describe_json_error(&error)))),
                    );
                }
            };
            let Some(resource_type) = view.resource_type else {
                return (None, Some((None, view.id, format!("draft order entry {index} has no resourceType"))));
            };
            let reference = match &view.id {
                Some(id) => format!("{resource_type}/{id}"),
                None => format!("{resource_type} (draft order {index}, no id)"),
            };
            let selected = selections.is_some_and(|s| s.contains(&reference));
            let (code, medication_reference) =
                match (view.code.or(view.medication_codeable_concept), view.medication_reference) {
                    (Some(code), _) => (Concept::from(code), None),
                    (None, Some(reference)) => referenced_medication(
                        reference.reference.as_deref(),
                        reference.display.as_deref(),
                        view.contained,
                    ),
                    (None, None) => (Concept::default(), None),
                };
            let order = DraftOrder {
                medication_reference,
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
