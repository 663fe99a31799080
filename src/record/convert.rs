//! Conversion from FHIR JSON into the record's facts, through views: per resource type, the
//! members the rules read, with borrowed strings (see `datatypes`) and fhir-sdk's parsers for
//! dates and codes. Every resource type is read by one generic function through the
//! [`ResourceView`] trait; adding a type is one view and one impl. Draft orders are read more
//! leniently still, because the spec warns that their details may be incomplete.

use fhir_sdk::r4b::codes;
use serde::Deserialize;
use serde_json::value::RawValue;
use time::Date;

use super::ResourceKind;
use super::datatypes::*;
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

impl Converted {
    pub fn reference(&self) -> &str {
        match self {
            Converted::Patient(r) => &r.reference,
            Converted::Condition(r, _) => &r.reference,
            Converted::Observation(r) => &r.reference,
            Converted::MedicationRequest(r) => &r.reference,
            Converted::Procedure(r) => &r.reference,
            Converted::ServiceRequest(r) => &r.reference,
            Converted::QuestionnaireResponse(r) => &r.reference,
            Converted::AllergyIntolerance(r) => &r.reference,
        }
    }
}

pub(super) enum Read {
    Resource(Converted),
    OtherPatient,
    /// A resource of another type (an `_include`d Patient in a Condition search, say).
    OtherType,
}

/// Whom a resource is about.
pub(super) enum About<'v> {
    /// Its `subject` (or `patient`) reference, if it has one.
    Subject(Option<&'v ReferenceView<'v>>),
    /// The Patient resource itself: its `id`.
    Itself,
}

/// What every view reads first: `resourceType` and `id` as given, and whom it is about.
pub(super) struct Head<'v> {
    resource_type: Option<&'v str>,
    id: Option<&'v str>,
    about: About<'v>,
}

/// One resource type as the rules read it. Reading, telling another type or another patient's
/// resource apart, and describing errors are [`read_view`]'s, once for every type; a view
/// declared with `resource_view!` implements this by naming its kind and its `into_fact`.
trait ResourceView<'a>: Deserialize<'a> {
    const KIND: ResourceKind;
    fn head(&self) -> Head<'_>;
    /// The record's fact; `reference` is `Type/id`.
    fn build(self, reference: String) -> Converted;
}

/// What it is given: the struct of `resource_view!`'s plain views.
macro_rules! as_is {
    ($($item:tt)*) => { $($item)* };
}

/// Declares a view of the resource type `$kind`: `resourceType`, `id` and the reference that
/// names its patient (`$about`: `subject`, or `patient` for AllergyIntolerance), then its own
/// members; `value` appends the `value[x]` members. The view's `into_fact` builds the fact.
macro_rules! resource_view {
    ($(#[$meta:meta])* $kind:ident: struct $name:ident about $about:ident { $($body:tt)* }) => {
        resource_view!(@declare as_is [$(#[$meta])*] $kind $name $about { $($body)* });
    };
    ($(#[$meta:meta])* $kind:ident: value struct $name:ident about $about:ident { $($body:tt)* }) => {
        resource_view!(@declare view_with_value [$(#[$meta])*] $kind $name $about { $($body)* });
    };
    (@declare $declare:ident [$($meta:tt)*] $kind:ident $name:ident $about:ident { $($body:tt)* }) => {
        $declare! {
            $($meta)*
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
            struct $name<'a> {
                resource_type: Option<Text<'a>>,
                id: Option<Text<'a>>,
                $about: Option<ReferenceView<'a>>,
                $($body)*
            }
        }
        resource_view!(@impl $kind $name $about);
    };
    (@impl $kind:ident $name:ident $about:ident) => {
        impl<'a> ResourceView<'a> for $name<'a> {
            const KIND: ResourceKind = ResourceKind::$kind;
            fn head(&self) -> Head<'_> {
                Head {
                    resource_type: text(&self.resource_type),
                    id: text(&self.id),
                    about: About::Subject(self.$about.as_ref()),
                }
            }
            fn build(self, reference: String) -> Converted {
                self.into_fact(reference)
            }
        }
    };
}

/// Reads one resource through its view. The error is a short reason for the skipped-resource
/// report (serde's message: which field, line and column; never the values).
fn read_view<'a, V: ResourceView<'a>>(json: &'a str, patient_id: &str) -> Result<Read, String> {
    let view: V = serde_json::from_str(json).map_err(|error| describe_json_error(&error))?;
    Ok(screen(view, patient_id))
}

/// Another type (an `include`d resource) or another patient's resource is not this record's.
fn screen<'a, V: ResourceView<'a>>(view: V, patient_id: &str) -> Read {
    let Head { resource_type, id, about } = view.head();
    if resource_type.is_some_and(|t| t != V::KIND.as_str()) {
        return Read::OtherType;
    }
    let other = match about {
        About::Subject(subject) => other_patient(subject.and_then(|s| text(&s.reference)), patient_id),
        About::Itself => id.is_some_and(|id| id != patient_id),
    };
    if other {
        return Read::OtherPatient;
    }
    let reference = reference_of(V::KIND.as_str(), id);
    Read::Resource(view.build(reference))
}

/// Calls `$then::<View>` with the view of `$kind`: the one place that maps kinds to views.
macro_rules! with_view {
    ($kind:expr, $then:ident($($arg:expr),*)) => {
        match $kind {
            ResourceKind::Patient => $then::<PatientView>($($arg),*),
            ResourceKind::Condition => $then::<ConditionView>($($arg),*),
            ResourceKind::Observation => $then::<ObservationView>($($arg),*),
            ResourceKind::MedicationRequest => $then::<MedicationRequestView>($($arg),*),
            ResourceKind::Procedure => $then::<ProcedureView>($($arg),*),
            ResourceKind::ServiceRequest => $then::<ServiceRequestView>($($arg),*),
            ResourceKind::QuestionnaireResponse => $then::<QuestionnaireResponseView>($($arg),*),
            ResourceKind::AllergyIntolerance => $then::<AllergyIntoleranceView>($($arg),*),
        }
    };
}

/// Parses one resource expected to be of `kind`.
pub(super) fn read(kind: ResourceKind, json: &str, patient_id: &str) -> Result<Read, String> {
    with_view!(kind, read_view(json, patient_id))
}

/// The outside of a Bundle, its entries' resources read as `R`: `&RawValue` to read them one
/// by one, or a view to read the whole Bundle in one pass.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "'de: 'a, R: Deserialize<'de>"))]
pub(super) struct Bundle<'a, R> {
    #[serde(default)]
    pub resource_type: Option<Text<'a>>,
    #[serde(default = "Vec::new")]
    pub entry: Vec<Entry<'a, R>>,
    #[serde(default)]
    pub link: Vec<BundleLink<'a>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a, R: Deserialize<'de>"))]
pub(super) struct Entry<'a, R> {
    #[serde(default = "Option::default")]
    pub resource: Option<R>,
    #[serde(default)]
    pub search: Option<EntrySearch<'a>>,
}

impl<R> Entry<'_, R> {
    pub fn is_include(&self) -> bool {
        self.search.as_ref().and_then(|s| text(&s.mode)) == Some("include")
    }
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub(super) struct EntrySearch<'a> {
    #[serde(default)]
    mode: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub(super) struct BundleLink<'a> {
    #[serde(default)]
    relation: Option<Text<'a>>,
    #[serde(default)]
    url: Option<Text<'a>>,
}

impl<R> Bundle<'_, R> {
    /// The `next` link's URL, if there is a next page.
    pub fn next(&self) -> Option<String> {
        let next = self.link.iter().find(|link| text(&link.relation) == Some("next"))?;
        next.url.as_ref().map(Text::to_owned_string)
    }
}

/// A searchset Bundle read in one pass, every entry's resource straight into its view (`None` for
/// an entry without a resource), with the `next` link's URL.
pub(super) struct OnePass {
    pub entries: Vec<Option<Read>>,
    pub next: Option<String>,
}

/// Reads a Bundle of `kind` in one pass, when that gives what reading it resource by resource
/// would: `None` when it is not a Bundle, when any resource cannot be read (the resource-by-
/// resource path then says which) or when a Medication needs keeping for `medicationReference`s.
pub(super) fn read_bundle(kind: ResourceKind, json: &str, patient_id: &str) -> Option<OnePass> {
    with_view!(kind, read_bundle_as(json, patient_id))
}

fn read_bundle_as<'a, V: ResourceView<'a>>(json: &'a str, patient_id: &str) -> Option<OnePass> {
    let bundle: Bundle<'a, V> = serde_json::from_str(json).ok()?;
    if bundle.resource_type.as_ref().map(Text::as_str) != Some("Bundle") {
        return None;
    }
    let next = bundle.next();
    let mut entries = Vec::with_capacity(bundle.entry.len());
    for entry in bundle.entry {
        let include = entry.is_include();
        let read = match entry.resource {
            // Another type may be a Medication, kept from the JSON by the other path.
            Some(view) if view.head().resource_type.is_some_and(|t| t != V::KIND.as_str()) => {
                if view.head().resource_type == Some("Medication") {
                    return None;
                }
                Some(Read::OtherType)
            }
            Some(_) if include => return None,
            Some(view) => Some(screen(view, patient_id)),
            None if include => Some(Read::OtherType),
            None => None,
        };
        entries.push(read);
    }
    Some(OnePass { entries, next })
}

// The views. Choice elements (`onsetDateTime`, `valueQuantity`, ...) are each typed on their own,
// so a malformed one makes the resource unreadable (skipped and reported) instead of silently
// absent.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "'de: 'a"))]
struct PatientView<'a> {
    resource_type: Option<Text<'a>>,
    id: Option<Text<'a>>,
    gender: Option<Parsed<codes::AdministrativeGender>>,
    birth_date: Option<Parsed<fhir_sdk::Date>>,
}

impl<'a> ResourceView<'a> for PatientView<'a> {
    const KIND: ResourceKind = ResourceKind::Patient;
    fn head(&self) -> Head<'_> {
        Head { resource_type: text(&self.resource_type), id: text(&self.id), about: About::Itself }
    }
    fn build(self, reference: String) -> Converted {
        use codes::AdministrativeGender as G;
        Converted::Patient(Patient {
            reference,
            birth_date: self.birth_date.as_ref().map(|date| fhir_date(&date.0)),
            gender: self.gender.map(|gender| match gender.0 {
                G::Male => Gender::Male,
                G::Female => Gender::Female,
                G::Other => Gender::Other,
                _ => Gender::Unknown,
            }),
        })
    }
}

resource_view! {
Condition: struct ConditionView about subject {
    clinical_status: Option<ConceptView<'a>>,
    verification_status: Option<ConceptView<'a>>,
    code: Option<ConceptView<'a>>,
    onset_date_time: Option<DateTime>,
    onset_period: Option<PeriodView>,
    onset_age: Option<QuantityView<'a>>,
    abatement_date_time: Option<DateTime>,
    abatement_period: Option<PeriodView>,
    recorded_date: Option<DateTime>,
}
}

impl ConditionView<'_> {
    fn into_fact(self, reference: String) -> Converted {
        let onset = self
            .onset_date_time
            .as_ref()
            .map(fhir_date_time)
            .or_else(|| self.onset_period.as_ref().and_then(|p| p.start.as_ref()).map(fhir_date_time));
        let onset_age = self.onset_age.as_ref().and_then(|age| age.value).filter(|v| v.is_finite() && *v >= 0.0);
        let abatement = self
            .abatement_date_time
            .as_ref()
            .map(fhir_date_time)
            .or_else(|| self.abatement_period.as_ref()?.last_day());
        let condition = Condition {
            reference,
            code: concept(self.code.as_ref()),
            clinical_status: first_code(self.clinical_status.as_ref()),
            verification_status: first_code(self.verification_status.as_ref()),
            onset,
            recorded: self.recorded_date.as_ref().map(fhir_date_time),
            abatement,
        };
        Converted::Condition(condition, onset_age)
    }
}

/// Declares a view with the `value[x]` members of an Observation, a component or a
/// questionnaire answer appended, and `value()` to read them.
macro_rules! view_with_value {
    ($(#[$meta:meta])* struct $name:ident<'a> { $($(#[$field_meta:meta])* $field:ident : $type:ty,)* }) => {
        $(#[$meta])*
        struct $name<'a> {
            $($(#[$field_meta])* $field: $type,)*
            #[serde(default)]
            value_quantity: Option<QuantityView<'a>>,
            #[serde(default)]
            value_codeable_concept: Option<ConceptView<'a>>,
            #[serde(default)]
            value_coding: Option<CodingView<'a>>,
            #[serde(default)]
            value_integer: Option<i64>,
            #[serde(default)]
            value_decimal: Option<f64>,
            #[serde(default)]
            value_boolean: Option<bool>,
            #[serde(default)]
            value_string: Option<Text<'a>>,
        }

        impl<'a> $name<'a> {
            fn value(&self) -> Option<Answer> {
                ValueX {
                    quantity: self.value_quantity.as_ref(),
                    codeable_concept: self.value_codeable_concept.as_ref(),
                    coding: self.value_coding.as_ref(),
                    integer: self.value_integer,
                    decimal: self.value_decimal,
                    boolean: self.value_boolean,
                    string: self.value_string.as_ref(),
                }
                .answer()
            }
        }
    };
}

resource_view! {
Observation: value struct ObservationView about subject {
    status: Parsed<codes::ObservationStatus>,
    code: ConceptView<'a>,
    effective_date_time: Option<DateTime>,
    effective_period: Option<PeriodView>,
    effective_instant: Option<Instant>,
    issued: Option<Instant>,
    #[serde(default)]
    component: Vec<ComponentView<'a>>,
}
}

view_with_value! {
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "'de: 'a"))]
struct ComponentView<'a> {
    code: ConceptView<'a>,
}
}

impl ObservationView<'_> {
    fn into_fact(self, reference: String) -> Converted {
        let effective = self
            .effective_date_time
            .as_ref()
            .map(fhir_date_time)
            .or_else(|| self.effective_period.as_ref()?.first_day())
            .or_else(|| self.effective_instant.as_ref().map(instant_date))
            .or_else(|| self.issued.as_ref().map(instant_date));
        Converted::Observation(Observation {
            reference,
            code: self.code.concept(),
            status: code_text(&self.status),
            effective,
            value: self.value(),
            components: self
                .component
                .iter()
                .map(|component| Component { code: component.code.concept(), value: component.value() })
                .collect(),
        })
    }
}

resource_view! {
MedicationRequest: struct MedicationRequestView about subject {
    #[serde(default)]
    status: Text<'a>,
    #[serde(default)]
    intent: Text<'a>,
    medication_codeable_concept: Option<ConceptView<'a>>,
    medication_reference: Option<ReferenceView<'a>>,
    authored_on: Option<DateTime>,
    dispense_request: Option<DispenseView<'a>>,
    #[serde(default)]
    dosage_instruction: Vec<DosageView<'a>>,
    /// Kept unparsed: only a contained Medication that a `medicationReference` names is read, so
    /// another contained resource of any shape cannot make the request unreadable.
    #[serde(default)]
    contained: Vec<&'a RawValue>,
}
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "'de: 'a"))]
struct DispenseView<'a> {
    validity_period: Option<PeriodView>,
    number_of_repeats_allowed: Option<u32>,
    expected_supply_duration: Option<QuantityView<'a>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
struct DosageView<'a> {
    route: Option<ConceptView<'a>>,
}

impl MedicationRequestView<'_> {
    fn into_fact(self, reference: String) -> Converted {
        let (medication, medication_reference) = match (&self.medication_codeable_concept, &self.medication_reference) {
            (Some(value), _) => (value.concept(), None),
            (None, Some(named)) => {
                // Read as JSON values only here (rarely): what any contained resource may hold.
                let contained = self.contained.iter().filter_map(|raw| serde_json::from_str(raw.get()).ok());
                referenced_medication(text(&named.reference), text(&named.display), contained)
            }
            (None, None) => (Concept::default(), None),
        };
        let dispense = self.dispense_request.as_ref();
        let supply_days = dispense.and_then(|d| d.expected_supply_duration.as_ref()).and_then(|duration| {
            let value = duration.value.filter(|v| v.is_finite() && *v >= 0.0)?;
            let unit = text(&duration.code).or(text(&duration.unit)).unwrap_or("d");
            Some(value * days_per_unit(unit)?)
        });
        let validity = dispense.and_then(|d| d.validity_period.as_ref());
        Converted::MedicationRequest(MedicationRequest {
            reference,
            medication,
            medication_reference,
            status: self.status.to_owned_string(),
            intent: self.intent.to_owned_string(),
            authored: self.authored_on.as_ref().map(fhir_date_time),
            supply_days,
            repeats: dispense.and_then(|d| d.number_of_repeats_allowed).unwrap_or(0),
            validity_start: validity.and_then(|p| p.start.as_ref()).map(fhir_date_time),
            validity_end: validity.and_then(|p| p.end.as_ref()).map(fhir_date_time),
            routes: self
                .dosage_instruction
                .iter()
                .filter_map(|dosage| dosage.route.as_ref())
                .map(ConceptView::concept)
                .collect(),
        })
    }
}

resource_view! {
Procedure: struct ProcedureView about subject {
    status: Parsed<codes::EventStatus>,
    code: Option<ConceptView<'a>>,
    performed_date_time: Option<DateTime>,
    performed_period: Option<PeriodView>,
}
}

impl ProcedureView<'_> {
    fn into_fact(self, reference: String) -> Converted {
        let performed = self
            .performed_date_time
            .as_ref()
            .map(fhir_date_time)
            .or_else(|| self.performed_period.as_ref()?.first_day());
        Converted::Procedure(Procedure {
            reference,
            code: concept(self.code.as_ref()),
            status: code_text(&self.status),
            performed,
        })
    }
}

resource_view! {
ServiceRequest: struct ServiceRequestView about subject {
    status: Parsed<codes::RequestStatus>,
    code: Option<ConceptView<'a>>,
    authored_on: Option<DateTime>,
}
}

impl ServiceRequestView<'_> {
    fn into_fact(self, reference: String) -> Converted {
        Converted::ServiceRequest(ServiceRequest {
            reference,
            code: concept(self.code.as_ref()),
            status: code_text(&self.status),
            authored: self.authored_on.as_ref().map(fhir_date_time),
        })
    }
}

resource_view! {
QuestionnaireResponse: struct QuestionnaireResponseView about subject {
    questionnaire: Option<Text<'a>>,
    status: Parsed<codes::QuestionnaireResponseStatus>,
    authored: Option<DateTime>,
    #[serde(default)]
    item: Vec<ItemView<'a>>,
}
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "'de: 'a"))]
struct ItemView<'a> {
    link_id: Text<'a>,
    text: Option<Text<'a>>,
    #[serde(default)]
    answer: Vec<AnswerView<'a>>,
    #[serde(default)]
    item: Vec<ItemView<'a>>,
}

view_with_value! {
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "'de: 'a"))]
struct AnswerView<'a> {
    #[serde(default)]
    item: Vec<ItemView<'a>>,
}
}

impl QuestionnaireResponseView<'_> {
    fn into_fact(self, reference: String) -> Converted {
        let mut answers = Vec::new();
        flatten_items(&self.item, &mut answers, 0);
        Converted::QuestionnaireResponse(QuestionnaireResponse {
            reference,
            questionnaire: self.questionnaire.as_ref().map(Text::to_owned_string),
            status: code_text(&self.status),
            authored: self.authored.as_ref().map(fhir_date_time),
            answers,
        })
    }
}

/// Questionnaire items nest; answers are collected depth-first (to a sane depth).
fn flatten_items(items: &[ItemView<'_>], out: &mut Vec<QuestionnaireAnswer>, depth: usize) {
    if depth > 16 {
        return;
    }
    for item in items {
        for answer in &item.answer {
            if let Some(value) = answer.value() {
                out.push(QuestionnaireAnswer {
                    link_id: item.link_id.to_owned_string(),
                    text: item.text.as_ref().map(Text::to_owned_string),
                    value,
                });
            }
            flatten_items(&answer.item, out, depth + 1);
        }
        flatten_items(&item.item, out, depth + 1);
    }
}

resource_view! {
AllergyIntolerance: struct AllergyIntoleranceView about patient {
    clinical_status: Option<ConceptView<'a>>,
    verification_status: Option<ConceptView<'a>>,
    code: Option<ConceptView<'a>>,
    recorded_date: Option<DateTime>,
}
}

impl AllergyIntoleranceView<'_> {
    fn into_fact(self, reference: String) -> Converted {
        Converted::AllergyIntolerance(AllergyIntolerance {
            reference,
            code: concept(self.code.as_ref()),
            clinical_status: first_code(self.clinical_status.as_ref()),
            verification_status: first_code(self.verification_status.as_ref()),
            recorded: self.recorded_date.as_ref().map(fhir_date_time),
        })
    }
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

/// The declared `resourceType` when the resource starts with it, as FHIR servers write it: enough
/// to pass over a resource of another type without reading it. `None` when it is not first (or is
/// escaped): the caller then reads the resource.
fn leading_type(json: &str) -> Option<&str> {
    let rest = json.trim_start().strip_prefix('{')?.trim_start().strip_prefix("\"resourceType\"")?;
    let rest = rest.trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    rest[end..].starts_with('"').then(|| &rest[..end])
}

/// A Medication resource from a Bundle: `Medication/<id>` and what names it.
pub(super) fn read_medication(json: &str) -> Option<(String, Concept)> {
    if leading_type(json).is_some_and(|t| t != "Medication") {
        return None;
    }
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
    contained: impl Iterator<Item = serde_json::Value>,
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

/// A subject that names another patient. A subject without a literal reference (an identifier
/// only) is accepted: the client sent it for this patient.
fn other_patient(reference: Option<&str>, patient_id: &str) -> bool {
    let Some(reference) = reference else {
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
                        view.contained.into_iter(),
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

    #[test]
    fn tells_this_patient_from_another() {
        assert!(!other_patient(Some("Patient/p1"), "p1"));
        assert!(!other_patient(Some("https://fhir.example/r4/Patient/p1"), "p1"));
        assert!(!other_patient(Some("Patient/p1/_history/3"), "p1"));
        assert!(other_patient(Some("Patient/p2"), "p1"));
        assert!(other_patient(Some("Group/g1"), "p1"));
        assert!(other_patient(Some("XPatient/p1"), "p1"));
        assert!(!other_patient(None, "p1"));
    }

    #[test]
    fn reads_a_leading_resource_type_only_when_it_is_plain() {
        assert_eq!(leading_type(r#" { "resourceType" : "Patient", "id": "p1"}"#), Some("Patient"));
        assert_eq!(leading_type(r#"{"id": "p1", "resourceType": "Patient"}"#), None);
        assert_eq!(leading_type(r#"{"resourceType": "Pat\u0069ent"}"#), None);
        assert_eq!(leading_type(r#"{"resourceType": 5}"#), None);
    }

    /// The one-pass Bundle reader gives what reading resource by resource gives, or declines.
    #[test]
    fn one_pass_bundles_agree_with_reading_each_resource() {
        let bundle = r#"{"resourceType": "Bundle", "entry": [
            {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
                          "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.50"}]}}},
            {"resource": {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/p2"}}},
            {"resource": {"resourceType": "Patient", "id": "p1"}, "search": {"mode": "include"}},
            {"search": {"mode": "match"}}],
            "link": [{"relation": "next", "url": "https://fhir.example/r4/Condition?page=2"}]}"#;
        let read = read_bundle(ResourceKind::Condition, bundle, "p1").expect("one pass");
        assert_eq!(read.next.as_deref(), Some("https://fhir.example/r4/Condition?page=2"));
        assert!(
            matches!(&read.entries[0], Some(Read::Resource(Converted::Condition(c, None))) if c.reference == "Condition/c1" && c.code.codes[0].code.as_deref() == Some("M54.50"))
        );
        assert!(matches!(read.entries[1], Some(Read::OtherPatient)));
        assert!(matches!(read.entries[2], Some(Read::OtherType)));
        assert!(read.entries[3].is_none());
        // An unreadable resource or a Medication to keep: the resource-by-resource path.
        let broken = bundle.replace(r#""id": "c2","#, r#""id": "c2", "onsetDateTime": 12345,"#);
        assert!(read_bundle(ResourceKind::Condition, &broken, "p1").is_none());
        let medication = bundle.replace(r#""resourceType": "Patient""#, r#""resourceType": "Medication""#);
        assert!(read_bundle(ResourceKind::Condition, &medication, "p1").is_none());
        assert!(read_bundle(ResourceKind::Condition, r#"{"resourceType": "Condition"}"#, "p1").is_none());
    }
}
