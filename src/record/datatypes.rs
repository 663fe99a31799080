//! FHIR datatypes as the views read them: only the members the rules use, with strings borrowed
//! from the request body (a string is copied only when it has escapes, or when it becomes part of
//! the record). Members the rules never read (`id`, `extension`, `_code`, `userSelected`, ...)
//! are skipped by serde without being built. Dates and codes are parsed with fhir-sdk's types, so
//! what counts as a valid `dateTime` or status is theirs.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::Deserialize;
use serde::de::{Deserializer, Error, Visitor};
use time::{Date, Month};

use super::model::{Answer, Code, Concept, Quantity};

/// A JSON string, borrowed from the body unless it had to be unescaped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn to_owned_string(&self) -> String {
        self.0.as_ref().to_owned()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(value))
            }
            fn visit_str<E: Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(value.to_owned()))
            }
            fn visit_string<E: Error>(self, value: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(value))
            }
        }
        deserializer.deserialize_str(TextVisitor).map(Text)
    }
}

pub(super) fn text<'v>(value: &'v Option<Text<'_>>) -> Option<&'v str> {
    value.as_ref().map(Text::as_str)
}

fn owned(value: &Option<Text<'_>>) -> Option<String> {
    value.as_ref().map(Text::to_owned_string)
}

/// A FHIR primitive read from its JSON string by fhir-sdk's parser (`FromStr`): dates, instants
/// and code enums, without the `String` their own `Deserialize` allocates first. The error is
/// the same as theirs ("invalid type: ..., expected a string", or the parser's message).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Parsed<T>(pub T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ParsedVisitor<T>(PhantomData<T>);
        impl<T: FromStr> Visitor<'_> for ParsedVisitor<T>
        where
            T::Err: fmt::Display,
        {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: Error>(self, value: &str) -> Result<T, E> {
                value.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(ParsedVisitor(PhantomData)).map(Parsed)
    }
}

/// The code of one of fhir-sdk's code enums (`final`, `completed`, ...).
pub(super) fn code_text<T: AsRef<str>>(value: &Parsed<T>) -> String {
    value.0.as_ref().to_owned()
}

pub(super) type DateTime = Parsed<fhir_sdk::DateTime>;
pub(super) type Instant = Parsed<fhir_sdk::Instant>;

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub(super) struct CodingView<'a> {
    system: Option<Text<'a>>,
    code: Option<Text<'a>>,
    display: Option<Text<'a>>,
}

impl CodingView<'_> {
    pub fn code(&self) -> Code {
        Code { system: owned(&self.system), code: owned(&self.code), display: owned(&self.display) }
    }
}

/// A CodeableConcept. `coding` may hold `null`s (as fhir-sdk's model allows).
#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub(super) struct ConceptView<'a> {
    #[serde(default)]
    coding: Vec<Option<CodingView<'a>>>,
    text: Option<Text<'a>>,
}

impl ConceptView<'_> {
    pub fn concept(&self) -> Concept {
        Concept { codes: self.coding.iter().flatten().map(CodingView::code).collect(), text: owned(&self.text) }
    }

    pub fn first_code(&self) -> Option<String> {
        self.coding.iter().flatten().find_map(|coding| owned(&coding.code))
    }
}

pub(super) fn concept(value: Option<&ConceptView<'_>>) -> Concept {
    value.map(ConceptView::concept).unwrap_or_default()
}

pub(super) fn first_code(value: Option<&ConceptView<'_>>) -> Option<String> {
    value?.first_code()
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub(super) struct ReferenceView<'a> {
    pub reference: Option<Text<'a>>,
    pub display: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub(super) struct PeriodView {
    pub start: Option<DateTime>,
    pub end: Option<DateTime>,
}

impl PeriodView {
    /// The first day the period names: its start, else its end.
    pub fn first_day(&self) -> Option<Date> {
        self.start.as_ref().or(self.end.as_ref()).map(fhir_date_time)
    }

    /// The last day the period names: its end, else its start.
    pub fn last_day(&self) -> Option<Date> {
        self.end.as_ref().or(self.start.as_ref()).map(fhir_date_time)
    }
}

/// A Quantity, Age or Duration.
#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a"))]
pub(super) struct QuantityView<'a> {
    pub value: Option<f64>,
    pub unit: Option<Text<'a>>,
    pub code: Option<Text<'a>>,
}

impl QuantityView<'_> {
    pub fn answer(&self) -> Option<Answer> {
        let value = self.value.filter(|v| v.is_finite())?;
        Some(Answer::Quantity(Quantity { value, unit: owned(&self.unit), code: owned(&self.code) }))
    }
}

/// The `value[x]` members of an Observation, a component or a questionnaire answer, declared in
/// each view (serde's `flatten` would buffer the whole resource instead).
#[derive(Default)]
pub(super) struct ValueX<'v, 'a> {
    pub quantity: Option<&'v QuantityView<'a>>,
    pub codeable_concept: Option<&'v ConceptView<'a>>,
    pub coding: Option<&'v CodingView<'a>>,
    pub integer: Option<i64>,
    pub decimal: Option<f64>,
    pub boolean: Option<bool>,
    pub string: Option<&'v Text<'a>>,
}

impl ValueX<'_, '_> {
    /// The first of the choices given, in this order.
    pub fn answer(&self) -> Option<Answer> {
        if let Some(quantity) = self.quantity {
            quantity.answer()
        } else if let Some(value) = self.codeable_concept {
            Some(Answer::Concept(value.concept()))
        } else if let Some(coding) = self.coding {
            Some(Answer::Concept(Concept { codes: vec![coding.code()], text: None }))
        } else if let Some(value) = self.integer {
            Some(Answer::Integer(value))
        } else if let Some(value) = self.decimal.filter(|v| v.is_finite()) {
            Some(Answer::Decimal(value))
        } else if let Some(value) = self.boolean {
            Some(Answer::Boolean(value))
        } else {
            self.string.map(|text| Answer::Text(text.to_owned_string()))
        }
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

pub(super) fn fhir_date_time(value: &DateTime) -> Date {
    match &value.0 {
        fhir_sdk::DateTime::Date(date) => fhir_date(date),
        fhir_sdk::DateTime::DateTime(instant) => instant.0.date(),
    }
}

pub(super) fn instant_date(value: &Instant) -> Date {
    value.0.0.date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let plain: Text<'_> = serde_json::from_str(r#""M54.50""#).unwrap();
        assert!(matches!(plain.0, Cow::Borrowed("M54.50")));
        let escaped: Text<'_> = serde_json::from_str(r#""back \"pain\"""#).unwrap();
        assert!(matches!(&escaped.0, Cow::Owned(text) if text == "back \"pain\""));
        let error = serde_json::from_str::<Text<'_>>("12").unwrap_err().to_string();
        assert!(error.contains("expected a string"), "{error}");
    }

    #[test]
    fn primitives_are_parsed_with_fhir_sdk_and_fail_as_it_does() {
        let date: Parsed<fhir_sdk::Date> = serde_json::from_str("\"2024-03\"").unwrap();
        assert_eq!(fhir_date(&date.0), time::macros::date!(2024 - 03 - 01));
        let status: Parsed<fhir_sdk::r4b::codes::ObservationStatus> = serde_json::from_str("\"final\"").unwrap();
        assert_eq!(code_text(&status), "final");
        let bogus = serde_json::from_str::<Parsed<fhir_sdk::r4b::codes::ObservationStatus>>("\"bogus\"");
        assert!(bogus.unwrap_err().to_string().contains("Unknown value: bogus"));
        let number = serde_json::from_str::<DateTime>("12345").unwrap_err().to_string();
        assert!(number.contains("invalid type: integer `12345`, expected a string"), "{number}");
    }
}
