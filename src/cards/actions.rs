//! What a card's suggestions do: remove the draft order, create a referral; and the PAMA
//! rating added to an imaging order as a system action.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{CardValues, RenderContext, card_uuid};
use crate::assess::{ImagingAssessment, PamaRating};
use crate::content::{ActionKind, CardTemplate, Content};
use crate::hooks::{Action, Suggestion, response::ActionType};
use crate::record::PatientRecord;

const PAMA_RATING: &str = "http://fhir.org/argonaut/Extension/pama-rating";
const PAMA_RATING_SYSTEM: &str = "http://fhir.org/argonaut/CodeSystem/pama-rating";
const PAMA_CONSULTED: &str = "http://fhir.org/argonaut/Extension/pama-rating-qcdsm-consulted";
const PAMA_CONSULT_ID: &str = "http://fhir.org/argonaut/Extension/pama-rating-consult-id";
const PAMA_AUC: &str = "http://fhir.org/argonaut/Extension/pama-rating-auc-applied";

/// What a card's suggestions act on.
pub(super) struct Target<'a> {
    /// The draft order the card is about, when it has an id (only then can it be deleted).
    pub order: Option<&'a str>,
    pub patient_id: &'a str,
    pub content: &'a Content,
    /// Suggestions that create a referral are offered.
    pub referral_allowed: bool,
}

/// The card's suggestions that can act on this target, with their texts rendered.
pub(super) fn suggestions(
    template: &CardTemplate,
    values: &dyn CardValues,
    uuid: Uuid,
    target: &Target<'_>,
) -> Vec<Suggestion> {
    let lookup = |name: &str| values.value(name);
    template
        .suggestions
        .iter()
        // A suggestion that removes the order needs an order with an id.
        .filter(|s| target.order.is_some() || s.actions.iter().all(|a| a.kind != ActionKind::DeleteOrder))
        .filter(|s| target.referral_allowed || s.actions.iter().all(|a| a.kind != ActionKind::CreateReferral))
        .map(|suggestion| Suggestion {
            label: suggestion.label.render(lookup),
            uuid: Uuid::new_v5(&uuid, suggestion.key.as_bytes()).to_string(),
            is_recommended: Some(suggestion.recommended),
            actions: suggestion
                .actions
                .iter()
                .map(|action| {
                    let description = action.description.render(lookup);
                    match action.kind {
                        ActionKind::DeleteOrder => Action {
                            action_type: ActionType::Delete,
                            description,
                            resource: None,
                            resource_id: target.order.map(str::to_owned),
                        },
                        ActionKind::CreateReferral => Action {
                            action_type: ActionType::Create,
                            description,
                            resource: Some(referral_resource(
                                target.content,
                                action.referral.as_deref().unwrap_or_default(),
                                target.patient_id,
                            )),
                            resource_id: None,
                        },
                    }
                })
                .collect(),
        })
        .collect()
}

/// A draft ServiceRequest for a referral from `referrals.toml`.
pub fn referral_resource(content: &Content, name: &str, patient_id: &str) -> Value {
    let Some(referral) = content.referrals.get(name) else { return Value::Null };
    let mut resource = json!({
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}]}],
        "code": {
            "coding": [{"system": referral.system, "code": referral.code, "display": referral.display}],
            "text": referral.text
        },
        "subject": {"reference": format!("Patient/{patient_id}")}
    });
    if let Some(detail) = &referral.order_detail {
        resource["orderDetail"] = json!([{"text": detail}]);
    }
    resource
}

/// The draft order with the Argonaut PAMA rating extensions added.
pub(super) fn pama_action(
    imaging: &ImagingAssessment,
    rating: PamaRating,
    record: &PatientRecord,
    content: &Content,
    ctx: &RenderContext<'_>,
) -> Option<Action> {
    if !imaging.order.has_id {
        return None; // the EHR could not match an update without an id
    }
    let mut resource = record.draft_orders.get(imaging.order.draft_index)?.raw.clone();
    let object = resource.as_object_mut()?;
    let consult = card_uuid(ctx, "pama-consult", &imaging.order.reference);
    let mut extensions: Vec<Value> = match object.remove("extension") {
        Some(Value::Array(existing)) => existing
            .into_iter()
            .filter(|e| {
                !e.get("url")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u.starts_with("http://fhir.org/argonaut/Extension/pama-rating"))
            })
            .collect(),
        _ => Vec::new(),
    };
    extensions.push(json!({
        "url": PAMA_RATING,
        "valueCodeableConcept": {"coding": [{"system": PAMA_RATING_SYSTEM, "code": rating.code()}]}
    }));
    extensions.push(json!({"url": PAMA_CONSULTED, "valueString": content.rules.imaging.qcdsm_name}));
    extensions.push(json!({"url": PAMA_CONSULT_ID, "valueUri": format!("urn:uuid:{consult}")}));
    extensions.push(json!({"url": PAMA_AUC, "valueUri": content.rules.imaging.auc_url}));
    object.insert("extension".into(), Value::Array(extensions));
    Some(Action {
        action_type: ActionType::Update,
        description: format!("PAMA appropriateness rating for {}: {}", imaging.order.reference, rating.code()),
        resource: Some(resource),
        resource_id: None,
    })
}
