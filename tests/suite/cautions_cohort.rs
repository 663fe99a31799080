//! The simulated cohort (`fixtures/cohort/bundles`, 40 adults from a population simulator) under
//! every simulated order of `lbp-cds cohort`: no card advises an NSAID to a patient with an NSAID
//! caution, every medicines card names the caution, and patients without one get the usual
//! advice (issue 17). The rendered texts are checked here, not the service's own summary of them.

use std::path::Path;

use crate::common::*;
use lbp_cds::cohort::{self, SimulatedOrder};
use lbp_cds::content::Content;
use lbp_cds::evaluate::evaluate_body;
use serde_json::Value;
use time::macros::date;

const MEDICINE_CARDS: [&str; 4] =
    ["medication-advice", "imaging-not-indicated", "stratified-care", "reassess-progress"];

#[test]
fn no_card_advises_an_nsaid_to_a_cohort_patient_with_a_caution() {
    let content = Content::embedded().expect("content");
    let patients =
        cohort::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cohort/bundles"), 2).expect("cohort");
    assert!(patients.len() >= 40, "the committed cohort");
    let today = date!(2026 - 11 - 25);
    let mut failures = Vec::new();
    // (cards with medicines advice for a patient with a caution, ... without one)
    let (mut with_caution, mut without) = (0, 0);
    let mut patients_with_caution = std::collections::BTreeSet::new();
    for order in [SimulatedOrder::None, SimulatedOrder::LumbarMri, SimulatedOrder::LumbarXray, SimulatedOrder::Opioid] {
        for patient in &patients {
            let body = cohort::request_for(patient, order);
            let service = content.services.iter().find(|s| Some(s.hook.as_str()) == body["hook"].as_str()).unwrap();
            let outcome = evaluate_body(&content, service, &serde_json::to_vec(&body).unwrap(), today, &full_options())
                .unwrap_or_else(|e| panic!("{}: {e}", patient.id));
            let response: Value = serde_json::to_value(&outcome.response).unwrap();
            assert_valid_response(&response);
            let cautions = nsaid_cautions(&response);
            if !cautions.is_empty() {
                patients_with_caution.insert(patient.id.clone());
            }
            for card in response["cards"].as_array().unwrap() {
                let card_type = card["source"]["topic"]["code"].as_str().unwrap();
                let detail = card["detail"].as_str().unwrap_or_default();
                let advised = recommends_nsaid(card, &content);
                if !cautions.is_empty() {
                    if advised {
                        failures.push(format!(
                            "{} ({order:?}): {card_type} advises an NSAID despite {cautions:?}",
                            patient.id
                        ));
                    }
                    if MEDICINE_CARDS.contains(&card_type) {
                        with_caution += 1;
                        if !detail.contains("**NSAID caution for this patient") {
                            failures
                                .push(format!("{} ({order:?}): {card_type} does not name {cautions:?}", patient.id));
                        }
                    }
                } else if MEDICINE_CARDS.contains(&card_type) && outcome.assessment.factors.active_nsaid.is_none() {
                    without += 1;
                    if !advised {
                        failures.push(format!(
                            "{} ({order:?}): {card_type} gives no NSAID advice without a caution",
                            patient.id
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The check is not vacuous: the cohort has patients on both sides who reach a medicines card.
    assert!(with_caution > 0 && without > 0, "medicines cards: {with_caution} with a caution, {without} without");
    eprintln!(
        "cohort: {} of {} patients have an NSAID caution; medicines cards checked: {with_caution} with a caution, {without} without",
        patients_with_caution.len(),
        patients.len()
    );
}
