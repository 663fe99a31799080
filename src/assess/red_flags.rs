//! Red flags: findings that make serious pathology possible and change what imaging is for.

use time::Date;

use super::{Evidence, criteria, days_between};
use crate::content::{Content, RedFlagCategory, ValueSetId};
use crate::record::{MedicationRequest, Observation, PatientRecord, Quantity};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedFlag {
    pub category: RedFlagCategory,
    /// Rule id from `rules.toml`, or a built-in rule name (`fever-observation`, ...).
    pub rule: String,
    pub finding: String,
    pub guideline: String,
    pub evidence: Vec<Evidence>,
    /// Counts only where ACR rates an imaging order (older age alone).
    pub imaging_only: bool,
}

/// Red flags in their windows, and red-flag diagnoses on record outside them (history).
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub current: Vec<RedFlag>,
    pub history: Vec<RedFlag>,
}

pub(super) fn find(
    record: &PatientRecord,
    content: &Content,
    today: Date,
    age: Option<i32>,
    notes: &mut Vec<String>,
) -> Findings {
    let mut flags = Vec::new();
    let mut history = Vec::new();
    rule_flags(record, content, today, age, &mut flags, &mut history);
    if let Some(flag) = fever(record, content, today, notes) {
        flags.push(flag);
    }
    if let Some(flag) = weight_loss(record, content, today, notes) {
        flags.push(flag);
    }
    if let Some(flag) = corticosteroids(record, content, today, notes) {
        flags.push(flag);
    }
    flags.sort_by_key(|a| a.category);
    history.sort_by_key(|flag| flag.category);
    Findings { current: flags, history }
}

fn rule_flags(
    record: &PatientRecord,
    content: &Content,
    today: Date,
    age: Option<i32>,
    flags: &mut Vec<RedFlag>,
    history: &mut Vec<RedFlag>,
) {
    for rule in &content.rules.red_flags {
        if let Some(min_age) = rule.min_age_years
            && age.is_none_or(|age| age <= min_age)
        {
            continue;
        }
        let finding = match (rule.min_age_years, age) {
            (Some(_), Some(age)) => format!("{} (age {age})", rule.finding),
            _ => rule.finding.clone(),
        };
        let flag = |evidence: Vec<Evidence>| RedFlag {
            category: rule.category,
            rule: rule.id.clone(),
            finding: finding.clone(),
            guideline: rule.guideline.clone(),
            evidence,
            imaging_only: rule.imaging_only,
        };
        let Some(criterion) = &rule.criterion else {
            // An age rule: the patient's age is the evidence.
            let reference = record
                .patient
                .as_ref()
                .map(|p| p.reference.clone())
                .unwrap_or_else(|| format!("Patient/{}", record.patient_id));
            let description = format!("age {} on {today}", age.unwrap_or_default());
            flags.push(flag(vec![Evidence { reference, description }]));
            continue;
        };
        let (current, past): (Vec<_>, Vec<_>) =
            criteria::find(record, content, criterion, today).into_iter().partition(|hit| hit.current);
        if !current.is_empty() {
            flags.push(flag(current.into_iter().map(|hit| hit.evidence).collect()));
        } else if !past.is_empty() && rule.show_history {
            history.push(flag(past.into_iter().map(|hit| hit.evidence).collect()));
        }
    }
}

/// A temperature in °C, from the UCUM code or unit text. `None` when the unit is unknown:
/// a number without a unit is never guessed at.
pub(crate) fn celsius(quantity: &Quantity) -> Option<f64> {
    let unit = quantity.code.as_deref().or(quantity.unit.as_deref())?.trim();
    match unit {
        "Cel" | "°C" | "C" | "degC" | "cel" | "celsius" | "Celsius" => Some(quantity.value),
        "[degF]" | "°F" | "F" | "degF" | "fahrenheit" | "Fahrenheit" => Some((quantity.value - 32.0) * 5.0 / 9.0),
        "K" | "kelvin" => Some(quantity.value - 273.15),
        _ => None,
    }
}

/// A body weight in kg, from the UCUM code or unit text.
pub(crate) fn kilograms(quantity: &Quantity) -> Option<f64> {
    let unit = quantity.code.as_deref().or(quantity.unit.as_deref())?.trim();
    match unit {
        "kg" | "kilogram" | "kilograms" => Some(quantity.value),
        "g" => Some(quantity.value / 1000.0),
        "[lb_av]" | "lb" | "lbs" | "pound" | "pounds" => Some(quantity.value * 0.453_592_37),
        _ => None,
    }
}

fn dated_observations<'a>(
    record: &'a PatientRecord,
    content: &'a Content,
    value_set: ValueSetId,
) -> impl Iterator<Item = &'a Observation> {
    let set = content.value_set(value_set);
    record
        .observations
        .iter()
        .filter(|observation| observation.counts())
        .filter(move |observation| set.match_concept(&observation.code).is_some())
}

fn fever(record: &PatientRecord, content: &Content, today: Date, notes: &mut Vec<String>) -> Option<RedFlag> {
    let thresholds = &content.rules.thresholds;
    let window = i64::from(thresholds.fever_lookback_days);
    let mut evidence = Vec::new();
    for observation in dated_observations(record, content, ValueSetId::BodyTemperature) {
        let Some(date) = observation.effective else { continue };
        let age_days = days_between(date, today);
        if !(0..=window).contains(&age_days) {
            continue;
        }
        let Some(quantity) = observation.quantity() else { continue };
        match celsius(quantity) {
            Some(value) if value >= thresholds.fever_celsius => evidence.push(Evidence {
                reference: observation.reference.clone(),
                description: format!(
                    "temperature {} {} ({value:.1} °C) on {date}",
                    quantity.value,
                    quantity.code.as_deref().or(quantity.unit.as_deref()).unwrap_or("")
                ),
            }),
            Some(_) => {}
            None => notes.push(format!(
                "{} records a temperature of {} with no recognised unit; it was not used.",
                observation.reference, quantity.value
            )),
        }
    }
    let rule = &content.rules.measured.fever;
    let (celsius, days) = (format!("{:.1}", thresholds.fever_celsius), window.to_string());
    (!evidence.is_empty()).then(|| RedFlag {
        imaging_only: false,
        category: RedFlagCategory::Infection,
        rule: "fever-observation".into(),
        finding: rule.finding.fill(&[("celsius", &celsius), ("days", &days)]),
        guideline: rule.guideline.clone(),
        evidence,
    })
}

fn weight_loss(record: &PatientRecord, content: &Content, today: Date, notes: &mut Vec<String>) -> Option<RedFlag> {
    let thresholds = &content.rules.thresholds;
    let window = i64::from(thresholds.weight_loss_window_days);
    let mut weights: Vec<(Date, f64, &Observation)> = Vec::new();
    for observation in dated_observations(record, content, ValueSetId::BodyWeight) {
        let (Some(date), Some(quantity)) = (observation.effective, observation.quantity()) else { continue };
        if !(0..=window).contains(&days_between(date, today)) {
            continue;
        }
        match kilograms(quantity) {
            Some(kg) if kg > 0.0 => weights.push((date, kg, observation)),
            Some(_) => {}
            None => notes
                .push(format!("{} records a weight with no recognised unit; it was not used.", observation.reference)),
        }
    }
    weights.sort_by_key(|a| a.0);
    let (first, last) = (weights.first()?, weights.last()?);
    if first.0 == last.0 {
        return None;
    }
    let loss = (first.1 - last.1) / first.1 * 100.0;
    let rule = &content.rules.measured.weight_loss;
    let finding = rule.finding.fill(&[
        ("percent", &format!("{loss:.1}")),
        ("first_kg", &format!("{:.1}", first.1)),
        ("first_date", &first.0.to_string()),
        ("last_kg", &format!("{:.1}", last.1)),
        ("last_date", &last.0.to_string()),
        ("threshold", &thresholds.weight_loss_percent.to_string()),
        ("days", &window.to_string()),
    ]);
    (loss > thresholds.weight_loss_percent).then(|| RedFlag {
        imaging_only: false,
        category: RedFlagCategory::Cancer,
        rule: "weight-loss-observation".into(),
        finding,
        guideline: rule.guideline.clone(),
        evidence: vec![
            Evidence {
                reference: first.2.reference.clone(),
                description: format!("weight {:.1} kg on {}", first.1, first.0),
            },
            Evidence {
                reference: last.2.reference.clone(),
                description: format!("weight {:.1} kg on {}", last.1, last.0),
            },
        ],
    })
}

/// Whether a corticosteroid order is local (inhaled, topical, nasal, eye, ear, joint): by a route
/// code, a whole route word, or a dose-form word in the product's name. Subcutaneous and
/// transdermal are systemic routes; "cutaneous" must match as a whole word.
fn is_local(medication: &MedicationRequest, content: &Content) -> bool {
    let local = &content.rules.corticosteroids;
    let route_codes = medication.routes.iter().flat_map(|route| route.codes.iter()).filter_map(|c| c.code.as_deref());
    if route_codes.into_iter().any(|code| local.local_route_codes.iter().any(|c| c == code)) {
        return true;
    }
    let route_text = medication
        .routes
        .iter()
        .flat_map(|route| {
            route.text.iter().map(String::as_str).chain(route.codes.iter().filter_map(|c| c.display.as_deref()))
        })
        .collect::<Vec<_>>()
        .join(" ");
    if super::imaging::has_phrase(&route_text, &local.local_routes) {
        return true;
    }
    let product = std::iter::once(medication.medication.text.as_deref().unwrap_or(""))
        .chain(medication.medication.codes.iter().filter_map(|c| c.display.as_deref()))
        .collect::<Vec<_>>()
        .join(" ");
    super::imaging::has_phrase(&product, &local.local_forms)
}

fn is_corticosteroid(medication: &MedicationRequest, content: &Content) -> bool {
    criteria::medication_match(content, content.value_set(ValueSetId::SystemicCorticosteroids), &medication.medication)
        .is_some()
}

fn corticosteroids(record: &PatientRecord, content: &Content, today: Date, notes: &mut Vec<String>) -> Option<RedFlag> {
    let thresholds = &content.rules.thresholds;
    let lookback_start = today - time::Duration::days(i64::from(thresholds.steroid_lookback_days));
    let mut intervals: Vec<(Date, Date)> = Vec::new();
    let mut evidence = Vec::new();
    for medication in &record.medications {
        if matches!(medication.status.as_str(), "entered-in-error" | "cancelled" | "draft")
            || !is_corticosteroid(medication, content)
            || is_local(medication, content)
        {
            continue;
        }
        let Some(start) = medication.validity_start.or(medication.authored) else {
            notes.push(format!(
                "{} ({}) is a systemic corticosteroid without a date: prolonged use could not be checked.",
                medication.reference,
                medication.medication.label()
            ));
            continue;
        };
        let end = medication.validity_end.or_else(|| {
            let days = medication.supply_days? * (f64::from(medication.repeats) + 1.0);
            // A supply longer than the look-back cannot add more days: cap before date arithmetic.
            let days = days.ceil().min(f64::from(thresholds.steroid_lookback_days) * 2.0) as i64;
            start.checked_add(time::Duration::days(days))
        });
        let Some(end) = end else {
            if start >= lookback_start {
                notes.push(format!(
                    "{} ({}) is a systemic corticosteroid with no supply duration or validity period: prolonged use could not be excluded.",
                    medication.reference,
                    medication.medication.label()
                ));
            }
            continue;
        };
        let (from, to) = (start.max(lookback_start), end.min(today));
        if from < to {
            intervals.push((from, to));
            evidence.push(Evidence {
                reference: medication.reference.clone(),
                description: format!("{} from {start} to {end}", medication.medication.label()),
            });
        }
    }
    intervals.sort();
    let mut covered = 0;
    let mut current: Option<(Date, Date)> = None;
    for (from, to) in intervals {
        current = match current {
            Some((start, end)) if from <= end => Some((start, end.max(to))),
            Some((start, end)) => {
                covered += days_between(start, end);
                Some((from, to))
            }
            None => Some((from, to)),
        };
    }
    if let Some((start, end)) = current {
        covered += days_between(start, end);
    }
    let rule = &content.rules.measured.corticosteroids;
    let finding = rule.finding.fill(&[
        ("covered", &covered.to_string()),
        ("days", &thresholds.steroid_lookback_days.to_string()),
        ("threshold", &thresholds.steroid_min_days.to_string()),
    ]);
    (covered >= i64::from(thresholds.steroid_min_days)).then(|| RedFlag {
        imaging_only: false,
        category: RedFlagCategory::Fracture,
        rule: "corticosteroid-course".into(),
        finding,
        guideline: rule.guideline.clone(),
        evidence,
    })
}
