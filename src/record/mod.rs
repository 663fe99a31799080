//! One patient record from the hook request: prefetched data (and, later, FHIR query results)
//! parsed once into the facts the rules use.
//!
//! Reading is lenient by design (CDS Hooks asks services to be): a resource that cannot be read
//! is skipped and reported, a resource of another patient or an `include` search result is
//! ignored, and what is missing or incomplete is recorded per kind of data so that the rules can
//! refuse to draw conclusions they cannot support.

mod convert;
mod datatypes;
pub mod model;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::Date;

pub use model::*;

use crate::hooks::{HookRequest, PrefetchValue};

/// The kinds of data the service reads, one per prefetch key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceKind {
    Patient,
    Condition,
    Observation,
    MedicationRequest,
    Procedure,
    ServiceRequest,
    QuestionnaireResponse,
    AllergyIntolerance,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::Patient,
        ResourceKind::Condition,
        ResourceKind::Observation,
        ResourceKind::MedicationRequest,
        ResourceKind::Procedure,
        ResourceKind::ServiceRequest,
        ResourceKind::QuestionnaireResponse,
        ResourceKind::AllergyIntolerance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Patient => "Patient",
            ResourceKind::Condition => "Condition",
            ResourceKind::Observation => "Observation",
            ResourceKind::MedicationRequest => "MedicationRequest",
            ResourceKind::Procedure => "Procedure",
            ResourceKind::ServiceRequest => "ServiceRequest",
            ResourceKind::QuestionnaireResponse => "QuestionnaireResponse",
            ResourceKind::AllergyIntolerance => "AllergyIntolerance",
        }
    }

    pub fn parse(name: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Plural noun for card texts ("medication requests could not be checked").
    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::Patient => "patient demographics",
            ResourceKind::Condition => "conditions",
            ResourceKind::Observation => "observations",
            ResourceKind::MedicationRequest => "medication requests",
            ResourceKind::Procedure => "procedures",
            ResourceKind::ServiceRequest => "service requests",
            ResourceKind::QuestionnaireResponse => "questionnaire responses",
            ResourceKind::AllergyIntolerance => "allergies",
        }
    }
}

/// How complete one kind of data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Everything the query would return is here (possibly nothing).
    Complete,
    /// Some of it is here, but not all (for example only the first page of a search).
    Incomplete(String),
    /// None of it could be obtained.
    Missing(String),
}

impl Availability {
    pub fn is_complete(&self) -> bool {
        matches!(self, Availability::Complete)
    }
}

/// A resource that was present but could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedResource {
    pub prefetch_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub reason: String,
}

/// What happened to one prefetch key; the response's extension reports this to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyReport {
    pub key: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a prefetch key turned out to hold, for the caller to decide whether to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Usable data (possibly none).
    Loaded,
    /// A searchset Bundle with a `next` link: the rest must be fetched from that URL.
    MorePages(String),
    /// Absent, an OperationOutcome, or unreadable: the client could not fill it.
    NotProvided(String),
}

#[derive(Debug, Default)]
pub struct PatientRecord {
    pub patient_id: String,
    pub patient: Option<Patient>,
    pub conditions: Vec<Condition>,
    pub observations: Vec<Observation>,
    pub medications: Vec<MedicationRequest>,
    pub procedures: Vec<Procedure>,
    pub service_requests: Vec<ServiceRequest>,
    pub questionnaire_responses: Vec<QuestionnaireResponse>,
    pub allergies: Vec<AllergyIntolerance>,
    pub draft_orders: Vec<DraftOrder>,
    pub availability: BTreeMap<ResourceKind, Availability>,
    pub skipped: Vec<SkippedResource>,
    pub keys: Vec<KeyReport>,
    /// Resources ignored because they belong to another patient or were `include` results.
    pub ignored: usize,
}

impl PatientRecord {
    pub fn availability(&self, kind: ResourceKind) -> &Availability {
        static MISSING: std::sync::OnceLock<Availability> = std::sync::OnceLock::new();
        self.availability
            .get(&kind)
            .unwrap_or_else(|| MISSING.get_or_init(|| Availability::Missing("not requested".into())))
    }

    /// Age in whole years on `today`, if the birth date is known.
    pub fn age_on(&self, today: Date) -> Option<i32> {
        let birth = self.patient.as_ref()?.birth_date?;
        let mut age = today.year() - birth.year();
        if (today.month() as u8, today.day()) < (birth.month() as u8, birth.day()) {
            age -= 1;
        }
        (age >= 0).then_some(age)
    }
}

/// Builds a [`PatientRecord`] from prefetch values and, later, fetched pages.
#[derive(Debug)]
pub struct RecordBuilder {
    record: PatientRecord,
    seen: HashSet<String>,
    /// Conditions whose onset is an age; converted once the birth date is known.
    onset_ages: Vec<(usize, f64)>,
    /// Resources read so far, and the most one call may read (a hostile or huge server cannot
    /// make one call parse without end); past it, the rest is skipped and the data is incomplete.
    resources_read: usize,
    resource_limit: usize,
    /// Prefetch keys that hit the resource limit.
    over_limit: HashSet<String>,
    /// Medications found in any Bundle (often `_include`d beside MedicationRequests), by
    /// `Medication/<id>`, for `medicationReference`s.
    medications: HashMap<String, Concept>,
}

/// Resources read for one call unless configured otherwise: ten times a long chronic-pain history.
pub const DEFAULT_RESOURCE_LIMIT: usize = 20_000;

impl RecordBuilder {
    pub fn new(patient_id: &str) -> RecordBuilder {
        RecordBuilder {
            record: PatientRecord { patient_id: patient_id.to_owned(), ..PatientRecord::default() },
            seen: HashSet::new(),
            onset_ages: Vec::new(),
            resources_read: 0,
            resource_limit: DEFAULT_RESOURCE_LIMIT,
            over_limit: HashSet::new(),
            medications: HashMap::new(),
        }
    }

    /// The most resources this call reads, across every key and page.
    pub fn with_resource_limit(mut self, limit: usize) -> RecordBuilder {
        self.resource_limit = limit;
        self
    }

    /// Whether a key stopped at the resource limit (its data is then incomplete).
    pub fn over_limit(&self, key: &str) -> bool {
        self.over_limit.contains(key)
    }

    pub fn resource_limit(&self) -> usize {
        self.resource_limit
    }

    fn limit_note(&self) -> String {
        format!("more than {} resources in this call; the rest was not read", self.resource_limit)
    }

    /// Reads one prefetch key. `null` means "no such data"; absence, an OperationOutcome or an
    /// unreadable value mean the client could not fill it.
    pub fn add_prefetch(&mut self, key: &str, kind: ResourceKind, value: Option<PrefetchValue<'_>>) -> KeyState {
        let state = match value {
            None => KeyState::NotProvided("absent from prefetch".into()),
            Some(PrefetchValue::Null) => {
                self.report(key, "null", Some("the client says there is no such data".into()));
                self.record.availability.insert(kind, Availability::Complete);
                return KeyState::Loaded;
            }
            Some(PrefetchValue::Json(raw)) => self.add_json(key, kind, raw),
        };
        let unreadable = self.record.skipped.iter().filter(|s| s.prefetch_key == key).count();
        match &state {
            KeyState::Loaded if self.over_limit(key) => {
                let note = self.limit_note();
                self.report(key, "loaded-incomplete", Some(note.clone()));
                self.record.availability.insert(kind, Availability::Incomplete(note));
            }
            // A resource that could not be read may have held a red flag: the data is incomplete.
            KeyState::Loaded if unreadable > 0 => {
                self.report(key, "loaded-with-errors", Some(format!("{unreadable} resource(s) could not be read")));
                self.record
                    .availability
                    .insert(kind, Availability::Incomplete(format!("{unreadable} resource(s) could not be read")));
            }
            KeyState::Loaded => {
                self.report(key, "loaded", None);
                self.record.availability.insert(kind, Availability::Complete);
            }
            KeyState::MorePages(_) => {
                self.report(key, "first-page-only", Some("the Bundle has a `next` link".into()));
                self.record
                    .availability
                    .insert(kind, Availability::Incomplete("only the first page of results was provided".into()));
            }
            KeyState::NotProvided(reason) => {
                self.report(key, "not-provided", Some(reason.clone()));
                self.record.availability.insert(kind, Availability::Missing(reason.clone()));
            }
        }
        state
    }

    /// Reads one JSON value (a Bundle, a single resource or an OperationOutcome) for `kind`.
    /// Also used for pages fetched from the FHIR server. A Bundle is read in one pass when it can
    /// be (every resource readable, no Medication to keep); otherwise resource by resource, so
    /// that one unreadable resource is skipped and reported rather than losing the page.
    pub fn add_json(&mut self, key: &str, kind: ResourceKind, raw: &RawValue) -> KeyState {
        if let Some(bundle) = convert::read_bundle(kind, raw.get(), &self.record.patient_id) {
            for (index, read) in bundle.entries.into_iter().enumerate() {
                if !self.count_resource(key) {
                    break;
                }
                match read {
                    Some(read) => self.take(read),
                    None => self.skip(key, None, None, format!("entry {index} has no resource")),
                }
            }
            return bundle.next.map_or(KeyState::Loaded, KeyState::MorePages);
        }
        let envelope: convert::Bundle<'_, &RawValue> = match serde_json::from_str(raw.get()) {
            Ok(envelope) => envelope,
            Err(error) => {
                return KeyState::NotProvided(format!(
                    "not a FHIR resource or Bundle ({})",
                    convert::describe_json_error(&error)
                ));
            }
        };
        match envelope.resource_type.as_ref().map(|t| t.0.as_ref()) {
            Some("OperationOutcome") => KeyState::NotProvided("the client sent an OperationOutcome".into()),
            Some("Bundle") => {
                for (index, entry) in envelope.entry.iter().enumerate() {
                    if !self.count_resource(key) {
                        break;
                    }
                    if entry.is_include() {
                        if !entry.resource.is_some_and(|resource| self.keep_medication(resource)) {
                            self.record.ignored += 1;
                        }
                        continue;
                    }
                    match entry.resource {
                        Some(resource) => self.add_resource(key, kind, resource),
                        None => self.skip(key, None, None, format!("entry {index} has no resource")),
                    }
                }
                envelope.next().map_or(KeyState::Loaded, KeyState::MorePages)
            }
            Some(_) => {
                self.add_resource(key, kind, raw);
                KeyState::Loaded
            }
            None => KeyState::NotProvided("the value has no `resourceType`".into()),
        }
    }

    /// Counts one more resource read for `key`; false once the call's limit is reached.
    fn count_resource(&mut self, key: &str) -> bool {
        if self.resources_read >= self.resource_limit {
            self.over_limit.insert(key.to_owned());
            return false;
        }
        self.resources_read += 1;
        true
    }

    fn add_resource(&mut self, key: &str, expected: ResourceKind, raw: &RawValue) {
        match convert::read(expected, raw.get(), &self.record.patient_id) {
            Ok(convert::Read::OtherType) if self.keep_medication(raw) => {}
            Ok(read) => self.take(read),
            Err(error) => {
                // Read the type and id for the report (and to tell another type from a bad one).
                let head: Option<Head> = serde_json::from_str(raw.get()).ok();
                let (resource_type, id) = head.map(|h| (h.resource_type, h.id)).unwrap_or((None, None));
                match resource_type.as_deref() {
                    Some(other) if other != expected.as_str() => {
                        if other != "OperationOutcome" {
                            self.record.ignored += 1;
                        }
                    }
                    _ => self.skip(key, resource_type, id, error),
                }
            }
        }
    }

    /// A resource read for this record, or one that is not this record's (counted).
    fn take(&mut self, read: convert::Read) {
        match read {
            convert::Read::Resource(resource) => self.push(resource),
            convert::Read::OtherPatient | convert::Read::OtherType => self.record.ignored += 1,
        }
    }

    fn push(&mut self, resource: convert::Converted) {
        // The same resource twice (overlapping pages or keys) counts once.
        let reference = resource.reference();
        if !reference.ends_with("(no id)") && !self.seen.insert(reference.to_owned()) {
            return;
        }
        match resource {
            convert::Converted::Patient(patient) => self.record.patient = Some(patient),
            convert::Converted::Condition(condition, onset_age) => {
                if let Some(age) = onset_age {
                    self.onset_ages.push((self.record.conditions.len(), age));
                }
                self.record.conditions.push(condition);
            }
            convert::Converted::Observation(observation) => self.record.observations.push(observation),
            convert::Converted::MedicationRequest(medication) => self.record.medications.push(medication),
            convert::Converted::Procedure(procedure) => self.record.procedures.push(procedure),
            convert::Converted::ServiceRequest(request) => self.record.service_requests.push(request),
            convert::Converted::QuestionnaireResponse(response) => self.record.questionnaire_responses.push(response),
            convert::Converted::AllergyIntolerance(allergy) => self.record.allergies.push(allergy),
        }
    }

    /// Keeps a Medication resource for `medicationReference`s; false for anything else.
    fn keep_medication(&mut self, raw: &RawValue) -> bool {
        match convert::read_medication(raw.get()) {
            Some((reference, concept)) => {
                self.medications.insert(reference, concept);
                true
            }
            None => false,
        }
    }

    /// One report per unreadable resource; the log gets one summary line per call (see the HTTP
    /// layer), so a hostile server cannot flood it.
    fn skip(&mut self, key: &str, resource_type: Option<String>, id: Option<String>, reason: String) {
        crate::metrics::get().resources_skipped.inc();
        self.record.skipped.push(SkippedResource { prefetch_key: key.to_owned(), resource_type, id, reason });
    }

    fn report(&mut self, key: &str, status: &'static str, detail: Option<String>) {
        self.record.keys.retain(|report| report.key != key);
        self.record.keys.push(KeyReport { key: key.to_owned(), status, detail });
    }

    /// Records how a key ended up after fetching from the FHIR server.
    pub fn mark_fetched(
        &mut self,
        key: &str,
        kind: ResourceKind,
        status: &'static str,
        detail: Option<String>,
        availability: Availability,
    ) {
        let unreadable = self.record.skipped.iter().filter(|s| s.prefetch_key == key).count();
        let availability = match availability {
            Availability::Complete | Availability::Incomplete(_) if self.over_limit(key) => {
                Availability::Incomplete(self.limit_note())
            }
            Availability::Complete if unreadable > 0 => {
                Availability::Incomplete(format!("{unreadable} resource(s) could not be read"))
            }
            other => other,
        };
        self.report(key, status, detail);
        self.record.availability.insert(kind, availability);
    }

    /// Reads `context.draftOrders` (a Bundle of unsigned orders), marking `selections`.
    pub fn add_draft_orders(&mut self, raw: &RawValue, selections: Option<&[String]>) {
        for (order, error) in convert::read_draft_orders(raw.get(), selections) {
            match (order, error) {
                // A Medication beside the orders is what a draft's medicationReference names.
                (Some(order), _) if order.resource_type == "Medication" => {
                    if let Ok(json) = serde_json::to_string(&order.raw)
                        && let Some((reference, concept)) = convert::read_medication(&json)
                    {
                        self.medications.insert(reference, concept);
                    }
                }
                (Some(order), _) => self.record.draft_orders.push(order),
                (None, Some((resource_type, id, reason))) => self.skip("draftOrders", resource_type, id, reason),
                (None, None) => {}
            }
        }
    }

    pub fn finish(mut self) -> PatientRecord {
        // The order a server returns resources in must not change any card: sort by reference.
        // (Onset ages refer to condition positions, so conditions are sorted after converting.)
        if let Some(birth) = self.record.patient.as_ref().and_then(|p| p.birth_date) {
            for (index, years) in self.onset_ages {
                if let Some(condition) = self.record.conditions.get_mut(index) {
                    condition.onset = convert::add_years(birth, years);
                }
            }
        }
        let record = &mut self.record;
        let resolve = |concept: &mut Concept, reference: &Option<String>| {
            if let Some(found) = reference.as_ref().and_then(|r| self.medications.get(r)) {
                concept.codes.extend(found.codes.iter().cloned());
                if concept.text.is_none() {
                    concept.text = found.text.clone();
                }
            }
        };
        for medication in &mut record.medications {
            resolve(&mut medication.medication, &medication.medication_reference);
        }
        for order in &mut record.draft_orders {
            resolve(&mut order.code, &order.medication_reference);
        }
        record.conditions.sort_by(|a, b| a.reference.cmp(&b.reference));
        record.observations.sort_by(|a, b| a.reference.cmp(&b.reference));
        record.medications.sort_by(|a, b| a.reference.cmp(&b.reference));
        record.procedures.sort_by(|a, b| a.reference.cmp(&b.reference));
        record.service_requests.sort_by(|a, b| a.reference.cmp(&b.reference));
        record.questionnaire_responses.sort_by(|a, b| a.reference.cmp(&b.reference));
        record.allergies.sort_by(|a, b| a.reference.cmp(&b.reference));
        self.record
    }
}

/// Builds a record from the request's prefetch alone (no FHIR server involved). Returns the
/// builder's key states so the caller can fetch what is missing.
pub fn from_prefetch(
    request: &HookRequest<'_>,
    keys: &[(String, ResourceKind)],
    resource_limit: usize,
) -> (RecordBuilder, Vec<(String, ResourceKind, KeyState)>) {
    let mut builder = RecordBuilder::new(&request.context.patient_id).with_resource_limit(resource_limit);
    let mut states = Vec::with_capacity(keys.len());
    for (key, kind) in keys {
        let value = request.prefetch.as_ref().and_then(|prefetch| prefetch.get(key).copied());
        let state = builder.add_prefetch(key, *kind, value);
        states.push((key.clone(), *kind, state));
    }
    if let Some(draft_orders) = request.context.draft_orders {
        builder.add_draft_orders(draft_orders, request.context.selections.as_deref());
    }
    (builder, states)
}

/// The top of a resource: its type and id, for reports about resources that could not be read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    #[serde(default)]
    resource_type: Option<String>,
    #[serde(default)]
    id: Option<String>,
}
