//! The patient record as the clinical rules see it: only the facts they use, with every fact
//! keeping the reference of the resource it came from so that cards can cite their evidence.

use time::Date;

/// A coding as found in the data. Codes are compared through `content::ValueSet`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Code {
    pub system: Option<String>,
    pub code: Option<String>,
    pub display: Option<String>,
}

/// A CodeableConcept: its codings and its text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Concept {
    pub codes: Vec<Code>,
    pub text: Option<String>,
}

impl Concept {
    /// A short human name for the concept: its text, else the first display, else the first code.
    pub fn label(&self) -> String {
        if let Some(text) = self.text.as_deref().filter(|t| !t.trim().is_empty()) {
            return text.trim().to_owned();
        }
        if let Some(display) = self.codes.iter().find_map(|c| c.display.as_deref()) {
            return display.to_owned();
        }
        self.codes.iter().find_map(|c| c.code.clone()).unwrap_or_else(|| "(no code)".to_owned())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub reference: String,
    pub birth_date: Option<Date>,
    pub gender: Option<Gender>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub reference: String,
    pub code: Concept,
    /// `clinicalStatus` code (`active`, `recurrence`, `relapse`, `inactive`, `remission`, `resolved`).
    pub clinical_status: Option<String>,
    /// `verificationStatus` code (`confirmed`, `provisional`, `refuted`, `entered-in-error`, ...).
    pub verification_status: Option<String>,
    /// Onset (dateTime, Period start, or Age converted with the birth date), earliest possible day.
    pub onset: Option<Date>,
    pub recorded: Option<Date>,
    pub abatement: Option<Date>,
}

impl Condition {
    /// Entered-in-error and refuted conditions never count for anything.
    pub fn counts(&self) -> bool {
        !matches!(self.verification_status.as_deref(), Some("entered-in-error" | "refuted"))
    }

    /// Active unless the clinical status says otherwise (a missing status is taken as active, as
    /// problem lists often omit it) or an abatement date is recorded.
    pub fn is_active(&self) -> bool {
        match self.clinical_status.as_deref() {
            Some("inactive" | "remission" | "resolved") => false,
            Some(_) => true,
            None => self.abatement.is_none(),
        }
    }

    /// The earliest date the record gives for this condition.
    pub fn first_date(&self) -> Option<Date> {
        match (self.onset, self.recorded) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The latest date the condition is known to have been present.
    pub fn last_date(&self) -> Option<Date> {
        [self.abatement, self.recorded, self.onset].into_iter().flatten().max()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quantity {
    pub value: f64,
    pub unit: Option<String>,
    pub code: Option<String>,
}

/// An observation value, component value or questionnaire answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Quantity(Quantity),
    Concept(Concept),
    Integer(i64),
    Decimal(f64),
    Boolean(bool),
    Text(String),
}

impl Answer {
    /// A number, if the answer is numeric (a quantity's value, an integer or a decimal).
    pub fn number(&self) -> Option<f64> {
        match self {
            Answer::Quantity(quantity) => Some(quantity.value),
            Answer::Integer(value) => Some(*value as f64),
            Answer::Decimal(value) => Some(*value),
            _ => None,
        }
    }

    /// The words of a coded or text answer, lower-case ("agree", "very much").
    pub fn words(&self) -> Option<String> {
        match self {
            Answer::Concept(concept) => Some(concept.label().to_lowercase()),
            Answer::Text(text) => Some(text.to_lowercase()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub code: Concept,
    pub value: Option<Answer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub reference: String,
    pub code: Concept,
    pub status: String,
    pub effective: Option<Date>,
    pub value: Option<Answer>,
    pub components: Vec<Component>,
}

impl Observation {
    pub fn quantity(&self) -> Option<&Quantity> {
        match &self.value {
            Some(Answer::Quantity(quantity)) => Some(quantity),
            _ => None,
        }
    }

    /// Preliminary, amended, corrected and final results count; cancelled, entered-in-error and
    /// unknown ones do not.
    pub fn counts(&self) -> bool {
        matches!(self.status.as_str(), "final" | "amended" | "corrected" | "preliminary")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MedicationRequest {
    pub reference: String,
    /// The drug: `medicationCodeableConcept`, or the referenced Medication's code and ingredients.
    pub medication: Concept,
    /// A `medicationReference` to a Medication elsewhere in the prefetch (`Medication/<id>`),
    /// resolved into `medication` when the record is finished.
    pub medication_reference: Option<String>,
    pub status: String,
    pub intent: String,
    pub authored: Option<Date>,
    /// Days of supply from `dispenseRequest.expectedSupplyDuration`, if given.
    pub supply_days: Option<f64>,
    pub repeats: u32,
    pub validity_start: Option<Date>,
    pub validity_end: Option<Date>,
    /// Route codes and texts of the dosage instructions.
    pub routes: Vec<Concept>,
}

/// One answered item of a QuestionnaireResponse (nested items are flattened).
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionnaireAnswer {
    pub link_id: String,
    pub text: Option<String>,
    pub value: Answer,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuestionnaireResponse {
    pub reference: String,
    pub questionnaire: Option<String>,
    pub status: String,
    pub authored: Option<Date>,
    pub answers: Vec<QuestionnaireAnswer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Procedure {
    pub reference: String,
    pub code: Concept,
    pub status: String,
    pub performed: Option<Date>,
}

/// An AllergyIntolerance (allergies and intolerances alike: both rule out a drug class).
#[derive(Debug, Clone, PartialEq)]
pub struct AllergyIntolerance {
    pub reference: String,
    pub code: Concept,
    /// `clinicalStatus` code (`active`, `inactive`, `resolved`).
    pub clinical_status: Option<String>,
    /// `verificationStatus` code (`unconfirmed`, `confirmed`, `refuted`, `entered-in-error`).
    pub verification_status: Option<String>,
    pub recorded: Option<Date>,
}

impl AllergyIntolerance {
    /// Refuted, entered-in-error, inactive and resolved entries do not count; an unconfirmed one
    /// does (a suspected NSAID reaction is reason enough to choose another drug).
    pub fn counts(&self) -> bool {
        !matches!(self.verification_status.as_deref(), Some("refuted" | "entered-in-error"))
            && !matches!(self.clinical_status.as_deref(), Some("inactive" | "resolved"))
    }
}

/// A ServiceRequest already on the record (not a draft order of this hook call).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRequest {
    pub reference: String,
    pub code: Concept,
    pub status: String,
    pub authored: Option<Date>,
}

/// An unsigned order from `context.draftOrders`. Orders may be partial (the spec says details may
/// be incomplete), so only `resourceType` is required. The raw JSON is kept so that a
/// `systemActions` update can return the whole resource with an added extension.
#[derive(Debug, Clone, PartialEq)]
pub struct DraftOrder {
    pub resource_type: String,
    pub id: Option<String>,
    pub reference: String,
    pub code: Concept,
    /// As for [`MedicationRequest::medication_reference`].
    pub medication_reference: Option<String>,
    pub reason: Vec<Concept>,
    pub status: Option<String>,
    /// For order-select: whether the order is one of `context.selections`.
    pub selected: bool,
    pub raw: serde_json::Value,
}
