//! FHIR ValueSets from `cards/valuesets/`, compiled at start-up into hash lookups.
//!
//! A file may carry its intensional definition (`compose`) beside the expansion; the service
//! matches only the expansion (hash lookups stay fast however deep the hierarchy), while the
//! definition is validated here and refreshed by `lbp-cds content expand`. An expansion older
//! than its definition would silently miss codes the definition now includes, so it stops
//! start-up.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use time::OffsetDateTime;

use super::ContentError;
use super::registry::ValueSetId;
use crate::record::{Code, Concept};

pub const EXT_CONFIRMATION: &str = "urn:lbp-cds:confirmation";
pub const EXT_MATCH: &str = "urn:lbp-cds:match";
pub const EXT_MODALITY: &str = "urn:lbp-cds:modality";
pub const EXT_GROUP: &str = "urn:lbp-cds:group";

/// Filter operations a definition may use (FHIR R4 `filter-operator`). SNOMED CT `is-a` and
/// `descendent-of` walk the hierarchy; for ICD-10-CM they mean "this code and the codes under it"
/// (a code prefix), `regex` covers ranges.
const FILTER_OPS: [&str; 9] =
    ["is-a", "descendent-of", "is-not-a", "=", "regex", "in", "not-in", "generalizes", "exists"];
/// Imaging modality of a lumbar imaging code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Xray,
    Ct,
    Mri,
    Myelography,
}

impl Modality {
    pub fn parse(value: &str) -> Option<Modality> {
        match value {
            "xray" => Some(Modality::Xray),
            "ct" => Some(Modality::Ct),
            "mri" => Some(Modality::Mri),
            "myelography" => Some(Modality::Myelography),
            _ => None,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Modality::Xray => "xray",
            Modality::Ct => "ct",
            Modality::Mri => "mri",
            Modality::Myelography => "myelography",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Modality::Xray => "X-ray",
            Modality::Ct => "CT",
            Modality::Mri => "MRI",
            Modality::Myelography => "myelography",
        }
    }
}

/// How well a code is confirmed (see the clinical reference): V confirmed, S seen, U convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Confirmed,
    Seen,
    Unconfirmed,
}

#[derive(Debug, Clone)]
pub struct ValueSetConcept {
    pub system: String,
    pub code: String,
    pub display: String,
    pub confirmation: Confirmation,
    pub modality: Option<Modality>,
    pub group: Option<String>,
}

impl ValueSetConcept {
    /// "ICD-10-CM M54.50 Low back pain, unspecified"
    pub fn describe(&self) -> String {
        format!("{} {} “{}”", system_name(&self.system), self.code, self.display)
    }
}

/// A compiled value set: exact codes in a hash map, prefix codes in a short list.
#[derive(Debug, Clone)]
pub struct ValueSet {
    pub id: String,
    pub title: String,
    /// Whether the file carries an intensional definition (`compose`) that `content expand` can
    /// refresh; without one the expansion is the whole definition (a hand-curated list).
    pub intensional: bool,
    /// When the definition last changed (`date`).
    pub definition_date: Option<OffsetDateTime>,
    /// When the expansion was made (`expansion.timestamp`).
    pub expansion_timestamp: Option<OffsetDateTime>,
    /// Code-system versions the expansion was made from (`expansion.parameter` named `version`).
    pub versions: Vec<String>,
    concepts: Vec<ValueSetConcept>,
    /// Per canonical system, normalised code -> concept index (looked up without allocating).
    exact: HashMap<&'static str, HashMap<String, usize>>,
    prefixes: Vec<(&'static str, String, usize)>,
}

/// A match of a data coding against a value set.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    pub concept: &'a ValueSetConcept,
    pub coding: &'a Code,
}

impl ValueSet {
    /// The value set entry this coding falls under, if any.
    pub fn lookup(&self, code: &Code) -> Option<&ValueSetConcept> {
        let system = canonical_system(code.system.as_deref()?)?;
        let normalized = normalize_code(system, code.code.as_deref()?);
        if let Some(index) = self.exact.get(system).and_then(|codes| codes.get(normalized.as_ref())) {
            return self.concepts.get(*index);
        }
        self.prefixes
            .iter()
            .find(|(prefix_system, prefix, _)| *prefix_system == system && normalized.starts_with(prefix.as_str()))
            .and_then(|(_, _, index)| self.concepts.get(*index))
    }

    /// The first coding of `concept` that falls in this value set.
    pub fn match_concept<'a>(&'a self, concept: &'a Concept) -> Option<Match<'a>> {
        concept.codes.iter().find_map(|coding| self.lookup(coding).map(|c| Match { concept: c, coding }))
    }

    pub fn concepts(&self) -> &[ValueSetConcept] {
        &self.concepts
    }

    /// Parses and compiles one value set file (`file` is its path under the content directory).
    pub fn parse(file: &str, text: &str) -> Result<ValueSet, ContentError> {
        let wire: WireValueSet = serde_json::from_str(text)
            .map_err(|e| ContentError::new(file, "(file)", format!("not a valid ValueSet: {e}")))?;
        if wire.resource_type != "ValueSet" {
            return Err(ContentError::new(file, "resourceType", "must be \"ValueSet\""));
        }
        let expected_id = file.trim_start_matches("valuesets/").trim_end_matches(".json");
        if wire.id != expected_id {
            return Err(ContentError::new(file, "id", format!("must equal the file name `{expected_id}`")));
        }
        let expansion = wire.expansion.ok_or_else(|| ContentError::new(file, "expansion", "is required"))?;
        if expansion.contains.is_empty() {
            return Err(ContentError::new(file, "expansion.contains", "must list at least one concept"));
        }
        let definition_date = wire
            .date
            .as_deref()
            .map(|value| {
                parse_instant(value)
                    .ok_or_else(|| ContentError::new(file, "date", format!("`{value}` is not a FHIR date or dateTime")))
            })
            .transpose()?;
        let expansion_timestamp = expansion
            .timestamp
            .as_deref()
            .map(|value| {
                parse_instant(value).ok_or_else(|| {
                    ContentError::new(file, "expansion.timestamp", format!("`{value}` is not a FHIR dateTime"))
                })
            })
            .transpose()?;
        if let Some(compose) = &wire.compose {
            validate_compose(file, compose)?;
            let Some(timestamp) = expansion_timestamp else {
                return Err(ContentError::new(
                    file,
                    "expansion.timestamp",
                    "is required with a compose definition (when was it expanded?)",
                ));
            };
            if definition_date.is_some_and(|date| timestamp < date) {
                return Err(ContentError::new(
                    file,
                    "expansion.timestamp",
                    format!(
                        "the expansion ({}) is older than its definition (`date` {}): expand it again (`lbp-cds content expand`)",
                        expansion.timestamp.as_deref().unwrap_or_default(),
                        wire.date.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        let mut versions = Vec::new();
        for (index, parameter) in expansion.parameter.iter().enumerate() {
            if parameter.name == "version" {
                match parameter.value_uri.as_deref().or(parameter.value_string.as_deref()) {
                    Some(value) if !value.trim().is_empty() => versions.push(value.to_owned()),
                    _ => {
                        return Err(ContentError::new(
                            file,
                            format!("expansion.parameter[{index}].value"),
                            "a version parameter needs valueUri",
                        ));
                    }
                }
            }
        }
        let mut set = ValueSet {
            id: wire.id,
            title: wire.title.unwrap_or_default(),
            intensional: wire.compose.is_some(),
            definition_date,
            expansion_timestamp,
            versions,
            concepts: Vec::new(),
            exact: HashMap::new(),
            prefixes: Vec::new(),
        };
        for (index, entry) in expansion.contains.into_iter().enumerate() {
            let field = |name: &str| format!("expansion.contains[{index}].{name}");
            let system = canonical_system(&entry.system).ok_or_else(|| {
                ContentError::new(file, field("system"), format!("unknown code system `{}`", entry.system))
            })?;
            if entry.code.trim().is_empty() {
                return Err(ContentError::new(file, field("code"), "must not be empty"));
            }
            let mut confirmation = None;
            let mut prefix = false;
            let mut modality = None;
            let mut group = None;
            for extension in &entry.extension {
                let value = extension.value_code.as_deref();
                match extension.url.as_str() {
                    EXT_CONFIRMATION => {
                        confirmation = Some(match value {
                            Some("V") => Confirmation::Confirmed,
                            Some("S") => Confirmation::Seen,
                            Some("U") => Confirmation::Unconfirmed,
                            _ => {
                                return Err(ContentError::new(
                                    file,
                                    field("extension(confirmation)"),
                                    "must be V, S or U",
                                ));
                            }
                        })
                    }
                    EXT_MATCH => {
                        prefix = match value {
                            Some("prefix") => true,
                            Some("exact") => false,
                            _ => {
                                return Err(ContentError::new(
                                    file,
                                    field("extension(match)"),
                                    "must be exact or prefix",
                                ));
                            }
                        }
                    }
                    EXT_MODALITY => {
                        modality = Some(value.and_then(Modality::parse).ok_or_else(|| {
                            ContentError::new(
                                file,
                                field("extension(modality)"),
                                "must be xray, ct, mri or myelography",
                            )
                        })?)
                    }
                    EXT_GROUP => group = value.map(str::to_owned),
                    _ => {}
                }
            }
            let confirmation = confirmation.ok_or_else(|| {
                ContentError::new(file, field("extension"), "needs a urn:lbp-cds:confirmation extension (V, S or U)")
            })?;
            let normalized = normalize_code(system, &entry.code);
            let position = set.concepts.len();
            if prefix {
                set.prefixes.push((system, normalized.into_owned(), position));
            } else if set.exact.entry(system).or_default().insert(normalized.into_owned(), position).is_some() {
                return Err(ContentError::new(file, field("code"), format!("duplicate code `{}`", entry.code)));
            }
            set.concepts.push(ValueSetConcept {
                system: entry.system,
                code: entry.code,
                display: entry.display.unwrap_or_default(),
                confirmation,
                modality,
                group,
            });
        }
        // Longest prefix first, so that the most specific entry describes a match.
        set.prefixes.sort_by_key(|prefix| std::cmp::Reverse(prefix.1.len()));
        Ok(set)
    }
}

/// Checks the shape of an intensional definition: known systems, known filter operations, SNOMED
/// CT filters on concept ids. The expansion, not the definition, is what the service matches.
fn validate_compose(file: &str, compose: &WireCompose) -> Result<(), ContentError> {
    if compose.include.is_empty() {
        return Err(ContentError::new(file, "compose.include", "must hold at least one include"));
    }
    let rules = compose
        .include
        .iter()
        .map(|rule| ("include", rule))
        .chain(compose.exclude.iter().map(|rule| ("exclude", rule)));
    let mut counters = [0usize; 2];
    for (kind, rule) in rules {
        let index = if kind == "include" { &mut counters[0] } else { &mut counters[1] };
        let at = format!("compose.{kind}[{index}]");
        *index += 1;
        let system = rule.system.as_deref().ok_or_else(|| {
            ContentError::new(file, format!("{at}.system"), "is required (value set references are not supported)")
        })?;
        let system = canonical_system(system).ok_or_else(|| {
            ContentError::new(file, format!("{at}.system"), format!("unknown code system `{system}`"))
        })?;
        if rule.concept.is_empty() && rule.filter.is_empty() {
            return Err(ContentError::new(file, at, "needs concepts or filters"));
        }
        for (position, concept) in rule.concept.iter().enumerate() {
            if concept.code.trim().is_empty() {
                return Err(ContentError::new(file, format!("{at}.concept[{position}].code"), "must not be empty"));
            }
        }
        for (position, filter) in rule.filter.iter().enumerate() {
            let field = |name: &str| format!("{at}.filter[{position}].{name}");
            if !FILTER_OPS.contains(&filter.op.as_str()) {
                return Err(ContentError::new(file, field("op"), format!("unknown filter operation `{}`", filter.op)));
            }
            if filter.property.trim().is_empty() {
                return Err(ContentError::new(file, field("property"), "must not be empty"));
            }
            if filter.value.trim().is_empty() {
                return Err(ContentError::new(file, field("value"), "must not be empty"));
            }
            let hierarchical = matches!(filter.op.as_str(), "is-a" | "descendent-of" | "is-not-a");
            if system == "http://snomed.info/sct" && hierarchical && !filter.value.chars().all(|c| c.is_ascii_digit()) {
                return Err(ContentError::new(
                    file,
                    field("value"),
                    format!("`{}` is not a SNOMED CT concept id", filter.value),
                ));
            }
            if filter.op == "regex" && filter.value.contains(char::is_whitespace) {
                return Err(ContentError::new(file, field("value"), "a code pattern has no spaces"));
            }
        }
    }
    Ok(())
}

/// A FHIR `date` (`2026-11-23`, taken as its first instant in UTC) or `dateTime` with offset.
pub fn parse_instant(value: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let value = value.trim();
    if value.len() == 10 {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        return time::Date::parse(value, format).ok().map(|date| date.midnight().assume_utc());
    }
    OffsetDateTime::parse(value, &Rfc3339).ok()
}

/// Systems are compared by canonical URI; the HL7 OIDs of the same systems are accepted too.
pub fn canonical_system(system: &str) -> Option<&'static str> {
    Some(match system.trim() {
        "http://hl7.org/fhir/sid/icd-10-cm" | "urn:oid:2.16.840.1.113883.6.90" => "http://hl7.org/fhir/sid/icd-10-cm",
        "http://snomed.info/sct" | "urn:oid:2.16.840.1.113883.6.96" => "http://snomed.info/sct",
        "http://loinc.org" | "urn:oid:2.16.840.1.113883.6.1" => "http://loinc.org",
        "http://www.ama-assn.org/go/cpt" | "urn:oid:2.16.840.1.113883.6.12" => "http://www.ama-assn.org/go/cpt",
        "http://www.cms.gov/Medicare/Coding/ICD10" | "urn:oid:2.16.840.1.113883.6.4" => {
            "http://www.cms.gov/Medicare/Coding/ICD10"
        }
        "http://www.nlm.nih.gov/research/umls/rxnorm" | "urn:oid:2.16.840.1.113883.6.88" => {
            "http://www.nlm.nih.gov/research/umls/rxnorm"
        }
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets" | "urn:oid:2.16.840.1.113883.6.285" => {
            "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
        }
        _ => return None,
    })
}

/// ICD-10 codes are compared without dots and case ("m5450" = "M54.50"): EHRs send both forms.
/// `system` is canonical; a code already in that form is not copied.
fn normalize_code<'a>(system: &str, code: &'a str) -> std::borrow::Cow<'a, str> {
    let code = code.trim();
    let icd10 = matches!(system, "http://hl7.org/fhir/sid/icd-10-cm" | "http://www.cms.gov/Medicare/Coding/ICD10");
    if icd10 && code.bytes().any(|b| b == b'.' || b.is_ascii_lowercase()) {
        code.chars().filter(|c| *c != '.').map(|c| c.to_ascii_uppercase()).collect::<String>().into()
    } else {
        code.into()
    }
}

pub fn system_name(system: &str) -> &str {
    match canonical_system(system) {
        Some("http://hl7.org/fhir/sid/icd-10-cm") => "ICD-10-CM",
        Some("http://snomed.info/sct") => "SNOMED CT",
        Some("http://loinc.org") => "LOINC",
        Some("http://www.ama-assn.org/go/cpt") => "CPT",
        Some("http://www.cms.gov/Medicare/Coding/ICD10") => "ICD-10-PCS",
        Some("http://www.nlm.nih.gov/research/umls/rxnorm") => "RxNorm",
        Some("http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets") => "HCPCS",
        _ => system,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireValueSet {
    resource_type: String,
    id: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    compose: Option<WireCompose>,
    #[serde(default)]
    expansion: Option<WireExpansion>,
}

#[derive(Deserialize)]
struct WireCompose {
    #[serde(default)]
    include: Vec<WireRule>,
    #[serde(default)]
    exclude: Vec<WireRule>,
}

#[derive(Deserialize)]
struct WireRule {
    #[serde(default)]
    system: Option<String>,
    #[serde(default)]
    concept: Vec<WireRuleConcept>,
    #[serde(default)]
    filter: Vec<WireFilter>,
}

#[derive(Deserialize)]
struct WireRuleConcept {
    code: String,
}

#[derive(Deserialize)]
struct WireFilter {
    property: String,
    op: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireParameter {
    name: String,
    #[serde(default)]
    value_uri: Option<String>,
    #[serde(default)]
    value_string: Option<String>,
}

#[derive(Deserialize)]
struct WireExpansion {
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    parameter: Vec<WireParameter>,
    #[serde(default)]
    contains: Vec<WireConcept>,
}

#[derive(Deserialize)]
struct WireConcept {
    system: String,
    code: String,
    #[serde(default)]
    display: Option<String>,
    #[serde(default)]
    extension: Vec<WireExtension>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireExtension {
    url: String,
    #[serde(default)]
    value_code: Option<String>,
}

/// Every value set of the content. The sets the code reads by name ([`ValueSetId`]) come first,
/// in the enum's order, so that looking one up is an index that exists by construction; sets a
/// rules file names are resolved to a [`SetRef`] at load.
#[derive(Debug, Clone)]
pub struct ValueSets {
    sets: Vec<ValueSet>,
    by_id: BTreeMap<String, usize>,
}

/// A value set resolved at load (a rule's `value_set`): valid for the content that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetRef(usize);

impl ValueSets {
    /// Refuses content missing a value set the code reads, naming its file.
    pub(super) fn new(mut sets: BTreeMap<String, ValueSet>) -> Result<ValueSets, ContentError> {
        let mut ordered = Vec::with_capacity(sets.len());
        for id in ValueSetId::ALL {
            let set = sets.remove(id.key()).ok_or_else(|| {
                ContentError::new(format!("valuesets/{}.json", id.key()), "(file)", "is required by the rules")
            })?;
            ordered.push(set);
        }
        ordered.extend(sets.into_values());
        let by_id = ordered.iter().enumerate().map(|(index, set)| (set.id.clone(), index)).collect();
        Ok(ValueSets { sets: ordered, by_id })
    }

    pub fn get(&self, id: ValueSetId) -> &ValueSet {
        &self.sets[id as usize]
    }

    pub fn at(&self, set: SetRef) -> &ValueSet {
        &self.sets[set.0]
    }

    /// A rules file's `value_set`, resolved once at load.
    pub fn resolve(&self, id: &str) -> Option<SetRef> {
        self.by_id.get(id).map(|index| SetRef(*index))
    }

    pub fn named(&self, id: &str) -> Option<&ValueSet> {
        self.resolve(id).map(|set| self.at(set))
    }

    /// In id order.
    pub fn iter(&self) -> impl Iterator<Item = &ValueSet> {
        self.by_id.values().map(|index| &self.sets[*index])
    }

    pub fn len(&self) -> usize {
        self.sets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ValueSet {
        let text = r#"{"resourceType":"ValueSet","id":"t","expansion":{"contains":[
            {"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"M54.50","display":"LBP","extension":[{"url":"urn:lbp-cds:confirmation","valueCode":"S"}]},
            {"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"C","display":"Cancer","extension":[{"url":"urn:lbp-cds:confirmation","valueCode":"S"},{"url":"urn:lbp-cds:match","valueCode":"prefix"}]},
            {"system":"http://snomed.info/sct","code":"279039007","display":"LBP","extension":[{"url":"urn:lbp-cds:confirmation","valueCode":"S"}]}]}}"#;
        ValueSet::parse("valuesets/t.json", text).unwrap()
    }

    fn code(system: &str, code: &str) -> Code {
        Code { system: Some(system.into()), code: Some(code.into()), display: None }
    }

    #[test]
    fn matches_icd_with_or_without_dot_and_by_oid() {
        let set = set();
        assert!(set.lookup(&code("http://hl7.org/fhir/sid/icd-10-cm", "M54.50")).is_some());
        assert!(set.lookup(&code("http://hl7.org/fhir/sid/icd-10-cm", "m5450")).is_some());
        assert!(set.lookup(&code("urn:oid:2.16.840.1.113883.6.90", "M54.50")).is_some());
        assert!(set.lookup(&code("http://hl7.org/fhir/sid/icd-10-cm", "M54.5")).is_none());
        assert!(set.lookup(&code("http://snomed.info/sct", "M54.50")).is_none());
    }

    #[test]
    fn prefix_entries_match_whole_families() {
        let set = set();
        assert_eq!(set.lookup(&code("http://hl7.org/fhir/sid/icd-10-cm", "C79.51")).unwrap().code, "C");
        assert!(set.lookup(&code("http://hl7.org/fhir/sid/icd-10-cm", "D49.0")).is_none());
    }

    #[test]
    fn rejects_a_concept_without_confirmation_naming_the_field() {
        let text = r#"{"resourceType":"ValueSet","id":"t","expansion":{"contains":[
            {"system":"http://snomed.info/sct","code":"1","display":"x"}]}}"#;
        let error = ValueSet::parse("valuesets/t.json", text).unwrap_err();
        assert_eq!(error.file, "valuesets/t.json");
        assert_eq!(error.field, "expansion.contains[0].extension");
    }

    fn intensional(date: &str, timestamp: &str, op: &str) -> String {
        format!(
            r#"{{"resourceType":"ValueSet","id":"t","date":"{date}",
            "compose":{{"include":[{{"system":"http://snomed.info/sct","filter":[{{"property":"concept","op":"{op}","value":"279039007"}}]}}],
                        "exclude":[{{"system":"http://snomed.info/sct","concept":[{{"code":"134407002"}}]}}]}},
            "expansion":{{"timestamp":"{timestamp}","parameter":[{{"name":"version","valueUri":"http://snomed.info/sct|http://snomed.info/sct/731000124108/version/20250901"}}],
            "contains":[{{"system":"http://snomed.info/sct","code":"278860009","display":"Chronic low back pain","extension":[{{"url":"urn:lbp-cds:confirmation","valueCode":"V"}}]}}]}}}}"#
        )
    }

    #[test]
    fn an_intensional_set_matches_its_expansion_and_keeps_its_versions() {
        let set =
            ValueSet::parse("valuesets/t.json", &intensional("2026-11-20", "2026-11-25T12:00:00Z", "is-a")).unwrap();
        assert!(set.intensional);
        assert_eq!(set.versions.len(), 1);
        assert!(set.lookup(&code("http://snomed.info/sct", "278860009")).is_some());
        assert!(set.lookup(&code("http://snomed.info/sct", "279039007")).is_none(), "only the expansion is matched");
    }

    #[test]
    fn refuses_an_expansion_older_than_its_definition() {
        let error = ValueSet::parse("valuesets/t.json", &intensional("2026-11-26", "2026-11-25T12:00:00Z", "is-a"))
            .unwrap_err();
        assert_eq!((error.file.as_str(), error.field.as_str()), ("valuesets/t.json", "expansion.timestamp"));
        assert!(error.message.contains("older than its definition"), "{}", error.message);
    }

    #[test]
    fn refuses_a_malformed_definition_or_timestamp_naming_the_field() {
        let error = ValueSet::parse("valuesets/t.json", &intensional("2026-11-20", "yesterday", "is-a")).unwrap_err();
        assert_eq!(error.field, "expansion.timestamp");
        let error = ValueSet::parse("valuesets/t.json", &intensional("2026-11-20", "2026-11-25T12:00:00Z", "below"))
            .unwrap_err();
        assert_eq!(error.field, "compose.include[0].filter[0].op");
        let error =
            ValueSet::parse("valuesets/t.json", &intensional("20 Nov", "2026-11-25T12:00:00Z", "is-a")).unwrap_err();
        assert_eq!(error.field, "date");
        let no_timestamp = intensional("2026-11-20", "x", "is-a").replace(r#""timestamp":"x","#, "");
        let error = ValueSet::parse("valuesets/t.json", &no_timestamp).unwrap_err();
        assert_eq!(error.field, "expansion.timestamp");
    }
}
