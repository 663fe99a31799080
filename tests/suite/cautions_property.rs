//! Many generated patients with and without NSAID cautions (issue 17): the service finds exactly
//! the cautions a simple model of the rules expects, and no card advises an NSAID to a patient
//! with a caution, on any hook. (A simulated-cohort run will do the same once `lbp-cds cohort`
//! exists.)

use crate::common::*;
use lbp_cds::content::Content;
use lbp_cds::evaluate::evaluate_body;
use proptest::prelude::*;
use serde_json::{Value, json};

fn content() -> &'static Content {
    static CONTENT: std::sync::OnceLock<Content> = std::sync::OnceLock::new();
    CONTENT.get_or_init(|| Content::embedded().expect("content"))
}

/// The cards that carry the medicines advice ({medicines} in their files).
const MEDICINE_CARDS: [&str; 4] =
    ["medication-advice", "imaging-not-indicated", "stratified-care", "reassess-progress"];

#[derive(Debug, Clone)]
struct Patient {
    hook: usize,
    age: i32,
    onset_days: i64,
    low_risk_screen: bool,
    egfr: Option<(u32, i64)>,
    /// 0: CKD stage 4, 1: CKD stage 3 (no caution), 2: dialysis.
    kidney: Option<usize>,
    gi_bleed: bool,
    /// Warfarin: active (true) or stopped.
    warfarin: Option<bool>,
    /// Heart failure: active (true) or resolved.
    heart_failure: Option<bool>,
    /// 0: NSAID class allergy, 1: penicillin (no caution), 2: refuted NSAID allergy.
    allergy: Option<usize>,
    /// Gestational age in weeks, measured some days ago.
    pregnancy: Option<(u32, i64)>,
    naproxen_active: bool,
}

fn patient() -> impl Strategy<Value = Patient> {
    let a = (
        0..3usize,
        18..95i32,
        0..120i64,
        any::<bool>(),
        prop::option::of((5..120u32, 0..500i64)),
        prop::option::of(0..3usize),
    );
    let b = (
        any::<bool>(),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(0..3usize),
        prop::option::of((4..40u32, 0..100i64)),
        any::<bool>(),
    );
    (a, b).prop_map(
        |(
            (hook, age, onset_days, low_risk_screen, egfr, kidney),
            (gi_bleed, warfarin, heart_failure, allergy, pregnancy, naproxen_active),
        )| {
            Patient {
                hook,
                age,
                onset_days,
                low_risk_screen,
                egfr,
                kidney,
                gi_bleed,
                warfarin,
                heart_failure,
                allergy,
                pregnancy,
                naproxen_active,
            }
        },
    )
}

impl Patient {
    fn scenario(&self) -> Scenario {
        let hook = ["patient-view", "order-select", "order-sign"][self.hook];
        let mut s = Scenario::new(hook, self.age).low_back_pain(self.onset_days);
        s =
            match self.hook {
                0 if self.low_risk_screen => s
                    .observation_with("91351-7", 0, json!({"valueInteger": 2}))
                    .observation_with("91350-9", 0, json!({"valueInteger": 1})),
                0 => s,
                1 => s.medication_order("7804", "oxycodone"),
                _ => s.order(CPT, "72148", "MRI lumbar spine without contrast"),
            };
        if let Some((value, days)) = self.egfr {
            s = s.observation("98979-8", f64::from(value), "mL/min/{1.73_m2}", days);
        }
        if let Some(kind) = self.kidney {
            s = s.condition(ICD10, ["N18.4", "N18.30", "Z99.2"][kind], 700);
        }
        if self.gi_bleed {
            s = s.condition_full(
                ICD10,
                "K92.2",
                json!({"clinicalStatus": {"coding": [{"code": "resolved"}]}, "onsetDateTime": days_ago(1500)}),
            );
        }
        if let Some(active) = self.warfarin {
            s = s.medication(
                "11289",
                "warfarin",
                json!({"status": if active { "active" } else { "stopped" }, "authoredOn": days_ago(60)}),
            );
        }
        if let Some(active) = self.heart_failure {
            s = s.condition_full(ICD10, "I50.9", json!({"clinicalStatus": {"coding": [{"code": if active { "active" } else { "resolved" }}]}, "onsetDateTime": days_ago(800)}));
        }
        match self.allergy {
            Some(0) => s = s.allergy(SNOMED, "293637006", "Allergy to NSAID", json!({})),
            Some(1) => s = s.allergy(RXNORM, "7980", "penicillin G", json!({})),
            Some(_) => {
                s = s.allergy(
                    SNOMED,
                    "293637006",
                    "Allergy to NSAID",
                    json!({"verificationStatus": {"coding": [{"code": "refuted"}]}}),
                )
            }
            None => {}
        }
        if let Some((weeks, days)) = self.pregnancy {
            s = s.observation("49051-6", f64::from(weeks), "wk", days);
        }
        if self.naproxen_active {
            s = s.medication("7258", "naproxen 500 mg", json!({"authoredOn": days_ago(5)}));
        }
        s
    }

    /// The cautions the rules call for, worked out independently of the service.
    fn expected_cautions(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.egfr.is_some_and(|(value, days)| days <= 365 && value < 30) || matches!(self.kidney, Some(0 | 2)) {
            out.push("severe-kidney-disease");
        }
        if self.gi_bleed {
            out.push("gi-bleeding");
        }
        if self.warfarin == Some(true) {
            out.push("anticoagulant");
        }
        if self.heart_failure == Some(true) {
            out.push("heart-failure");
        }
        if self.allergy == Some(0) {
            out.push("allergy");
        }
        if let Some((weeks, days)) = self.pregnancy {
            // Counted forward to today; past 44 weeks the pregnancy has ended.
            let now = f64::from(weeks) + days as f64 / 7.0;
            if now <= 44.0 {
                out.push(if now.floor() >= 20.0 { "pregnancy" } else { "early-pregnancy" });
            }
        }
        if self.age >= 65 {
            out.push("older-adult");
        }
        let mut out: Vec<String> = out.into_iter().map(str::to_owned).collect();
        out.sort();
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn no_card_advises_an_nsaid_to_a_patient_with_a_caution(patient in patient()) {
        let scenario = patient.scenario();
        let service = content().services.iter().find(|s| s.hook.as_str() == scenario.hook).unwrap();
        let bytes = serde_json::to_vec(&scenario.body()).unwrap();
        let outcome = evaluate_body(content(), service, &bytes, TODAY, &full_options()).expect("answered");
        let response: Value = serde_json::to_value(&outcome.response).unwrap();
        assert_valid_response(&response);
        let cautions = nsaid_cautions(&response);
        prop_assert_eq!(&cautions, &patient.expected_cautions(), "{:?}", patient);
        for card in response["cards"].as_array().unwrap() {
            let card_type = card["source"]["topic"]["code"].as_str().unwrap();
            let detail = card["detail"].as_str().unwrap_or_default();
            if !cautions.is_empty() {
                prop_assert!(!recommends_nsaid(card, content()), "{card_type} advises an NSAID despite {cautions:?}:\n{detail}");
                // Not even a topical one after an NSAID allergy or from 20 weeks of pregnancy.
                if cautions.iter().any(|c| c == "allergy" || c == "pregnancy") {
                    prop_assert!(!detail.contains("**topical NSAID**"), "{card_type} offers a topical NSAID despite {cautions:?}:\n{detail}");
                }
                if MEDICINE_CARDS.contains(&card_type) {
                    prop_assert!(detail.contains("**NSAID caution for this patient"), "{card_type} does not name the caution:\n{detail}");
                }
            } else if MEDICINE_CARDS.contains(&card_type) && !patient.naproxen_active {
                // Without a caution the usual advice is given (the check can fail both ways).
                prop_assert!(recommends_nsaid(card, content()), "{card_type} gives no NSAID advice without a caution:\n{detail}");
            }
        }
    }
}
