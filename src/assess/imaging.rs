//! Lumbar imaging orders and how appropriate each is (ACR Appropriateness Criteria).

use super::{OrderScope, episode::Episode, red_flags::RedFlag};
use crate::content::{AcrRating, Content, ImagingText, Modality, RedFlagCategory, ValueSetId};
use crate::record::{Concept, PatientRecord, ResourceKind};

/// A draft ServiceRequest recognised as lumbar spine imaging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LumbarOrder {
    pub reference: String,
    /// Index into `record.draft_orders`.
    pub draft_index: usize,
    pub modality: Modality,
    pub label: String,
    /// How it was recognised: "CPT 72148 …" or "order text".
    pub matched_by: String,
    pub reasons: Vec<Concept>,
    /// Whether the order has an id (only then can a card suggest deleting it).
    pub has_id: bool,
}

/// The Argonaut PAMA appropriateness rating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamaRating {
    Appropriate,
    NotAppropriate,
    NoCriteriaApply,
}

impl PamaRating {
    pub fn code(self) -> &'static str {
        match self {
            PamaRating::Appropriate => "appropriate",
            PamaRating::NotAppropriate => "not-appropriate",
            PamaRating::NoCriteriaApply => "no-criteria-apply",
        }
    }
}

/// Why an order could not be rated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionalReason {
    /// No red flag, symptoms at or beyond the threshold: ACR variant 2 or 3 depending on prior
    /// care, which the record cannot tell (some of it is missing).
    BeyondThreshold,
    /// Beyond the threshold and no conservative care on record this episode (complete data):
    /// ACR variant 2, every study usually not appropriate.
    NoPriorCare,
    /// Beyond the threshold after conservative care (the evidence): ACR variant 3, appropriate in
    /// a candidate for surgery or an intervention.
    AfterPriorCare(Vec<super::Evidence>),
    /// No date for the episode.
    UnknownDuration,
    /// No low back pain diagnosis on record: the order's indication is unknown.
    NoDiagnosis,
    /// Data needed to exclude red flags is missing or incomplete.
    IncompleteData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImagingVerdict {
    /// No red flag and symptoms shorter than the threshold (ACR variant 1).
    NotIndicated { variant: String },
    /// A red flag is present; `rating` is the ordered modality's rating in the variant of the most
    /// urgent red flag (`rules.toml` `imaging.urgency`).
    Indicated { variants: Vec<String>, rating: AcrRating, categories: Vec<RedFlagCategory> },
    /// No red flag, but the order cannot be rated from the record.
    Conditional(ConditionalReason),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImagingAssessment {
    pub order: LumbarOrder,
    pub verdict: ImagingVerdict,
    /// `None` when the data is insufficient to rate (the spec: do not rate, return cards).
    pub pama: Option<PamaRating>,
}

pub(super) fn lumbar_orders(record: &PatientRecord, content: &Content, scope: OrderScope) -> Vec<LumbarOrder> {
    if scope == OrderScope::None {
        return Vec::new();
    }
    let imaging = content.value_set(ValueSetId::LumbarImaging);
    record
        .draft_orders
        .iter()
        .enumerate()
        .filter(|(_, order)| order.resource_type == ResourceKind::ServiceRequest.as_str())
        .filter(|(_, order)| scope == OrderScope::All || order.selected)
        .filter_map(|(index, order)| {
            let (modality, matched_by) = match imaging.match_concept(&order.code) {
                Some(m) => (m.concept.modality?, m.concept.describe()),
                None => (modality_from_text(&order.code, &content.rules.imaging.text)?, "order text".to_owned()),
            };
            Some(LumbarOrder {
                reference: order.reference.clone(),
                draft_index: index,
                modality,
                label: order.code.label(),
                matched_by,
                reasons: order.reason.clone(),
                has_id: order.id.is_some(),
            })
        })
        .collect()
}

/// Lower-case words separated by single spaces, padded, so " mri " matches whole words only.
pub(crate) fn words(text: &str) -> String {
    let mut out = String::from(" ");
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        out.push_str(&word.to_lowercase());
        out.push(' ');
    }
    out
}

/// Whether `text` contains one of `phrases` as whole words.
pub(crate) fn has_phrase(text: &str, phrases: &[String]) -> bool {
    let haystack = words(text);
    phrases.iter().any(|phrase| haystack.contains(&words(phrase)))
}

/// Recognises local codes such as "MRI L-SPINE WO" by a lumbar word and a modality word.
pub(crate) fn modality_from_text(concept: &Concept, text: &ImagingText) -> Option<Modality> {
    let all: String = concept
        .text
        .iter()
        .map(String::as_str)
        .chain(concept.codes.iter().filter_map(|c| c.display.as_deref()))
        .collect::<Vec<_>>()
        .join(" ");
    let has = |phrases: &[String]| has_phrase(&all, phrases);
    if !has(&text.lumbar) {
        return None;
    }
    // Myelography and CT before MRI: "CT myelogram" is myelography, "MR" alone is MRI.
    [
        (Modality::Myelography, &text.myelography),
        (Modality::Ct, &text.ct),
        (Modality::Mri, &text.mri),
        (Modality::Xray, &text.xray),
    ]
    .into_iter()
    .find(|(_, phrases)| has(phrases))
    .map(|(modality, _)| modality)
}

pub(super) fn assess_orders(
    orders: Vec<LumbarOrder>,
    record: &PatientRecord,
    content: &Content,
    episode: Option<&Episode>,
    red_flags: &[RedFlag],
) -> Vec<ImagingAssessment> {
    let threshold_days = i64::from(content.rules.thresholds.imaging_threshold_weeks) * 7;
    let mut categories: Vec<RedFlagCategory> = red_flags.iter().map(|flag| flag.category).collect();
    categories.sort();
    categories.dedup();
    let complete = [ResourceKind::Condition, ResourceKind::Observation, ResourceKind::MedicationRequest]
        .into_iter()
        .all(|kind| record.availability(kind).is_complete());
    let variant_for = |key: &str| content.rules.imaging.variants.iter().find(|v| v.applies_to == key);

    orders
        .into_iter()
        .map(|order| {
            let (verdict, pama) = if !categories.is_empty() {
                // The most urgent red flag sets the rating (cauda equina before osteoporosis),
                // never the most favourable of the variants that apply.
                let urgent = content.rules.imaging.urgency.iter().find(|c| categories.contains(c)).copied();
                let variant = urgent.and_then(|c| variant_for(c.key()));
                let rating = variant.map(|v| v.rating(order.modality)).unwrap_or(AcrRating::MayBeAppropriate);
                let variants: Vec<String> = variant.iter().map(|v| v.name.clone()).collect();
                let pama = if rating.is_appropriate() { PamaRating::Appropriate } else { PamaRating::NotAppropriate };
                (ImagingVerdict::Indicated { variants, rating, categories: categories.clone() }, Some(pama))
            } else {
                match episode.and_then(|e| e.duration_days.map(|d| (e, d))) {
                    None if episode.is_none() => (ImagingVerdict::Conditional(ConditionalReason::NoDiagnosis), None),
                    None => (ImagingVerdict::Conditional(ConditionalReason::UnknownDuration), None),
                    Some(_) if !complete => (ImagingVerdict::Conditional(ConditionalReason::IncompleteData), None),
                    Some((_, days)) if days < threshold_days => {
                        let variant = variant_for("none").map(|v| v.name.clone()).unwrap_or_default();
                        (ImagingVerdict::NotIndicated { variant }, Some(PamaRating::NotAppropriate))
                    }
                    Some(_) => (ImagingVerdict::Conditional(ConditionalReason::BeyondThreshold), None),
                }
            };
            ImagingAssessment { order, verdict, pama }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Content;

    fn concept(text: &str) -> Concept {
        Concept { codes: Vec::new(), text: Some(text.to_owned()) }
    }

    #[test]
    fn recognises_local_order_texts() {
        let content = Content::embedded().unwrap();
        let text = &content.rules.imaging.text;
        assert_eq!(modality_from_text(&concept("MRI L-SPINE WO"), text), Some(Modality::Mri));
        assert_eq!(modality_from_text(&concept("XR LUMBAR SPINE 2-3 VIEWS"), text), Some(Modality::Xray));
        assert_eq!(modality_from_text(&concept("CT lumbar spine w/o contrast"), text), Some(Modality::Ct));
        assert_eq!(modality_from_text(&concept("CT myelogram lumbar"), text), Some(Modality::Myelography));
        assert_eq!(modality_from_text(&concept("MRI brain"), text), None);
        assert_eq!(modality_from_text(&concept("Lumbar puncture"), text), None);
        // "contrast" contains "ct" but is not a CT order
        assert_eq!(modality_from_text(&concept("L-spine with contrast"), text), None);
    }
}
