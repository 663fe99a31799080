//! Moving a stored request in time. The fixtures are written for the clinical date 2026-03-02
//! ("onset 2 weeks ago" is `2026-02-16`); on any other day they would answer differently (an
//! acute episode becomes a chronic one). Shifting every FHIR date, dateTime, instant and period
//! bound by the same number of days keeps every interval the rules measure, so a fixture shows
//! the card it is named for whatever today is. `lbp-cds fixture` and the console's preview both
//! use [`shift_request`].

use serde_json::Value;
use time::{Date, Duration, Month};

/// The clinical date the fixtures in `fixtures/requests/` are written for.
pub const FIXTURE_DATE: Date = time::macros::date!(2026 - 03 - 02);

/// Element names of FHIR type date, dateTime or instant that do not end in `Date`, `DateTime` or
/// `Instant` (those are recognised by their suffix: `birthDate`, `onsetDateTime`,
/// `valueInstant`). `start` and `end` are the bounds of a Period.
const DATE_ELEMENTS: [&str; 12] = [
    "date",
    "start",
    "end",
    "issued",
    "authored",
    "authoredOn",
    "lastUpdated",
    "recorded",
    "dateAsserted",
    "dateWritten",
    "whenHandedOver",
    "whenPrepared",
];

/// Shifts every date in a request (context and prefetch alike) by `days`. Returns how many
/// values were moved. A string at day precision or finer (`2026-02-16`, `2026-02-16T09:30:00Z`)
/// moves wherever it is; a partial date (`2025`, `2025-11`) only under a date element's name,
/// because a bare four-digit string is as likely an RxNorm code (`7804`). Times of day and
/// offsets are kept; partial dates keep their precision (their first day is moved).
pub fn shift_request(request: &mut Value, days: i64) -> usize {
    if days == 0 {
        return 0;
    }
    let mut moved = 0;
    shift_value(request, None, days, &mut moved);
    moved
}

/// Days from the fixtures' date to `today`: what [`shift_request`] takes for a fixture.
pub fn days_from_fixture_date(today: Date) -> i64 {
    (today - FIXTURE_DATE).whole_days()
}

fn shift_value(value: &mut Value, key: Option<&str>, days: i64, moved: &mut usize) {
    match value {
        Value::Object(members) => {
            for (name, member) in members.iter_mut() {
                shift_value(member, Some(name), days, moved);
            }
        }
        Value::Array(items) => {
            for item in items {
                shift_value(item, key, days, moved);
            }
        }
        Value::String(text) => {
            let date_named = key.is_some_and(is_date_element);
            if let Some(shifted) = shift_date_text(text, days, date_named) {
                *text = shifted;
                *moved += 1;
            }
        }
        _ => {}
    }
}

fn is_date_element(name: &str) -> bool {
    name.ends_with("Date") || name.ends_with("DateTime") || name.ends_with("Instant") || DATE_ELEMENTS.contains(&name)
}

/// The text with its date part moved, or `None` when it is not a FHIR date (or a partial date
/// outside a date element).
pub fn shift_date_text(text: &str, days: i64, partial_allowed: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes.get(range).is_some_and(|b| b.iter().all(u8::is_ascii_digit));
    let year: i32 = if digits(0..4) { text[..4].parse().ok()? } else { return None };
    let dash = |at: usize| bytes.get(at) == Some(&b'-');
    match bytes.len() {
        4 if partial_allowed => {
            let first = Date::from_calendar_date(year, Month::January, 1).ok()?;
            Some(format!("{:04}", move_date(first, days)?.year()))
        }
        7 if partial_allowed && dash(4) && digits(5..7) => {
            let month = Month::try_from(text[5..7].parse::<u8>().ok()?).ok()?;
            let moved = move_date(Date::from_calendar_date(year, month, 1).ok()?, days)?;
            Some(format!("{:04}-{:02}", moved.year(), u8::from(moved.month())))
        }
        len if len >= 10 && dash(4) && dash(7) && digits(5..7) && digits(8..10) => {
            // A date, or a dateTime/instant: the rest must start the time part.
            if len > 10 && bytes[10] != b'T' {
                return None;
            }
            let month = Month::try_from(text[5..7].parse::<u8>().ok()?).ok()?;
            let date = Date::from_calendar_date(year, month, text[8..10].parse().ok()?).ok()?;
            let moved = move_date(date, days)?;
            Some(format!("{:04}-{:02}-{:02}{}", moved.year(), u8::from(moved.month()), moved.day(), &text[10..]))
        }
        _ => None,
    }
}

fn move_date(date: Date, days: i64) -> Option<Date> {
    let moved = date.checked_add(Duration::days(days))?;
    // FHIR years have four digits.
    (1..=9999).contains(&moved.year()).then_some(moved)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dates_datetimes_instants_and_periods_move_by_the_same_days() {
        let mut request = json!({
            "hook": "order-select",
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"patientId": "p1", "userId": "Practitioner/1"},
            "prefetch": {
                "patient": {"resourceType": "Patient", "birthDate": "1981-03-02", "meta": {"lastUpdated": "2026-03-01T08:00:00.123+01:00"}},
                "conditions": {"resourceType": "Bundle", "entry": [{"resource": {
                    "resourceType": "Condition", "onsetDateTime": "2026-02-16", "recordedDate": "2026-02-16T09:30:00Z",
                    "abatementPeriod": {"start": "2025-11", "end": "2026"}
                }}]},
                "observations": {"resourceType": "Bundle", "entry": [{"resource": {
                    "resourceType": "Observation", "effectiveInstant": "2026-02-28T23:59:59Z", "issued": "2026-03-01T00:00:00Z",
                    "valueQuantity": {"value": 38.5, "code": "Cel"}
                }}]},
                "medications": {"resourceType": "Bundle", "entry": [{"resource": {
                    "resourceType": "MedicationRequest", "authoredOn": "2026-01-05",
                    "medicationCodeableConcept": {"coding": [{"code": "7804", "display": "2026"}]},
                    "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2026-01-05", "end": "2026-01-19"}}}}]
                }}]}
            }
        });
        let moved = shift_request(&mut request, 10);
        let prefetch = &request["prefetch"];
        assert_eq!(prefetch["patient"]["birthDate"], "1981-03-12");
        assert_eq!(prefetch["patient"]["meta"]["lastUpdated"], "2026-03-11T08:00:00.123+01:00", "time and offset kept");
        let condition = &prefetch["conditions"]["entry"][0]["resource"];
        assert_eq!(condition["onsetDateTime"], "2026-02-26");
        assert_eq!(condition["recordedDate"], "2026-02-26T09:30:00Z");
        assert_eq!(condition["abatementPeriod"]["start"], "2025-11", "partial dates keep their precision");
        assert_eq!(condition["abatementPeriod"]["end"], "2026");
        let observation = &prefetch["observations"]["entry"][0]["resource"];
        assert_eq!(observation["effectiveInstant"], "2026-03-10T23:59:59Z");
        assert_eq!(observation["issued"], "2026-03-11T00:00:00Z");
        assert_eq!(observation["valueQuantity"]["value"], 38.5);
        let medication = &prefetch["medications"]["entry"][0]["resource"];
        assert_eq!(medication["authoredOn"], "2026-01-15");
        assert_eq!(medication["medicationCodeableConcept"]["coding"][0]["code"], "7804", "codes are not years");
        assert_eq!(medication["medicationCodeableConcept"]["coding"][0]["display"], "2026", "nor are displays");
        assert_eq!(medication["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]["end"], "2026-01-29");
        assert_eq!(request["hookInstance"], "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea");
        assert_eq!(moved, 11);
    }

    #[test]
    fn partial_dates_move_across_months_and_years_and_backwards() {
        assert_eq!(shift_date_text("2025-11", 60, true).as_deref(), Some("2025-12"));
        assert_eq!(shift_date_text("2025-11", 61, true).as_deref(), Some("2026-01"));
        assert_eq!(shift_date_text("2025", 365, true).as_deref(), Some("2026"));
        assert_eq!(shift_date_text("2025-11", 61, false), None, "outside a date element a partial date stays");
        assert_eq!(shift_date_text("2026-03-02", -1, false).as_deref(), Some("2026-03-01"));
        assert_eq!(shift_date_text("2024-02-28", 1, false).as_deref(), Some("2024-02-29"), "leap day");
        assert_eq!(shift_date_text("2026-03-02", 3_000_000, false), None, "no five-digit years");
    }

    #[test]
    fn what_is_not_a_date_is_left_alone() {
        for text in ["2026-13-01", "2026-02-30", "2026-02-16x", "2026/02/16", "20260216", "abcd-ef-gh", "", "72148"] {
            assert_eq!(shift_date_text(text, 5, true), None, "{text:?}");
        }
        let mut request = json!({"a": [1, true, null, "M54.50"]});
        assert_eq!(shift_request(&mut request, 5), 0);
        assert_eq!(request, json!({"a": [1, true, null, "M54.50"]}));
    }

    #[test]
    fn the_shift_is_the_distance_from_the_fixture_date() {
        assert_eq!(days_from_fixture_date(FIXTURE_DATE), 0);
        assert_eq!(days_from_fixture_date(time::macros::date!(2026 - 03 - 12)), 10);
        assert_eq!(days_from_fixture_date(time::macros::date!(2026 - 02 - 28)), -2);
    }
}
