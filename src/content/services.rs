//! `services.toml`: the CDS services, their prefetch keys and the query templates.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ContentError;
use super::load::parse_toml;
use crate::hooks::Hook;
use crate::record::ResourceKind;

pub(super) const FILE: &str = "services.toml";

/// A prefetch key: its query template and the kind of resource it returns.
#[derive(Debug, Clone)]
pub struct PrefetchKey {
    pub resource: String,
    /// The template as written (sent in discovery).
    pub query: String,
    /// The template, parsed once at load.
    pub template: PrefetchTemplate,
    /// Without this data nothing useful can be said: 412 when neither prefetched nor fetchable.
    pub required: bool,
    pub kind: ResourceKind,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDefinition {
    pub id: String,
    pub hook: Hook,
    pub title: String,
    pub description: String,
    pub prefetch: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePrefetchKey {
    resource: String,
    query: String,
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireServices {
    prefetch: BTreeMap<String, WirePrefetchKey>,
    services: Vec<ServiceDefinition>,
}

/// CDS Hooks 2.0 prefetch tokens. 3.0's date arithmetic and FHIRPath are not used, so that every
/// 2.0 client can fill the templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefetchToken {
    PatientId,
    EncounterId,
    UserId,
    UserPractitionerId,
    UserPractitionerRoleId,
    UserPatientId,
    UserRelatedPersonId,
}

impl PrefetchToken {
    const ALL: [PrefetchToken; 7] = [
        PrefetchToken::PatientId,
        PrefetchToken::EncounterId,
        PrefetchToken::UserId,
        PrefetchToken::UserPractitionerId,
        PrefetchToken::UserPractitionerRoleId,
        PrefetchToken::UserPatientId,
        PrefetchToken::UserRelatedPersonId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PrefetchToken::PatientId => "context.patientId",
            PrefetchToken::EncounterId => "context.encounterId",
            PrefetchToken::UserId => "context.userId",
            PrefetchToken::UserPractitionerId => "userPractitionerId",
            PrefetchToken::UserPractitionerRoleId => "userPractitionerRoleId",
            PrefetchToken::UserPatientId => "userPatientId",
            PrefetchToken::UserRelatedPersonId => "userRelatedPersonId",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Token(PrefetchToken),
}

/// A prefetch query template (`Condition?patient={{context.patientId}}`), parsed once: the one
/// reader of `{{token}}`s, used to validate the file and to fill the query for each call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefetchTemplate {
    parts: Vec<Part>,
}

impl PrefetchTemplate {
    /// Refuses an unclosed `{{` and any token that is not a CDS Hooks 2.0 prefetch token.
    pub fn parse(text: &str) -> Result<PrefetchTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or("unclosed `{{` token")?;
            let name = after[..end].trim();
            let token = PrefetchToken::ALL
                .into_iter()
                .find(|token| token.name() == name)
                .ok_or_else(|| format!("`{{{{{name}}}}}` is not a CDS Hooks 2.0 prefetch token"))?;
            parts.push(Part::Token(token));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(PrefetchTemplate { parts })
    }

    /// The query with each token's value (`None` when a token has no value in this call);
    /// `encode` escapes a value for the query.
    pub fn fill(
        &self,
        value: impl Fn(PrefetchToken) -> Option<String>,
        encode: impl Fn(&str) -> String,
    ) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Token(token) => out.push_str(&encode(&value(*token)?)),
            }
        }
        Some(out)
    }
}

pub(super) fn parse(text: &str) -> Result<(BTreeMap<String, PrefetchKey>, Vec<ServiceDefinition>), ContentError> {
    let wire: WireServices = parse_toml(FILE, text)?;
    let mut prefetch = BTreeMap::new();
    for (key, wire_key) in wire.prefetch {
        let field = |name: &str| format!("prefetch.{key}.{name}");
        let kind = ResourceKind::parse(&wire_key.resource).ok_or_else(|| {
            ContentError::new(FILE, field("resource"), format!("unknown resource type `{}`", wire_key.resource))
        })?;
        let template = PrefetchTemplate::parse(&wire_key.query)
            .map_err(|message| ContentError::new(FILE, field("query"), message))?;
        let path = wire_key.query.split('?').next().unwrap_or_default();
        if path.starts_with('/') || path.contains("://") {
            return Err(ContentError::new(FILE, field("query"), "must be a relative FHIR query"));
        }
        let parsed = PrefetchKey {
            resource: wire_key.resource,
            query: wire_key.query,
            template,
            required: wire_key.required,
            kind,
        };
        prefetch.insert(key, parsed);
    }
    let mut ids = std::collections::HashSet::new();
    for (index, service) in wire.services.iter().enumerate() {
        if !ids.insert(service.id.as_str()) {
            return Err(ContentError::new(FILE, format!("services[{index}].id"), "duplicate service id"));
        }
        if service.id.is_empty() || !service.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ContentError::new(FILE, format!("services[{index}].id"), "must be letters, digits and '-'"));
        }
        for key in &service.prefetch {
            if !prefetch.contains_key(key) {
                return Err(ContentError::new(
                    FILE,
                    format!("services[{index}].prefetch"),
                    format!("no prefetch key `{key}`"),
                ));
            }
        }
    }
    Ok((prefetch, wire.services))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_tokens_and_refuses_unknown_ones() {
        let template =
            PrefetchTemplate::parse("Condition?patient={{context.patientId}}&x={{ userPatientId }}").unwrap();
        let filled = template.fill(
            |token| match token {
                PrefetchToken::PatientId => Some("p 1".into()),
                _ => None,
            },
            |value| value.replace(' ', "%20"),
        );
        assert_eq!(filled, None, "userPatientId has no value");
        let template = PrefetchTemplate::parse("Condition?patient={{context.patientId}}").unwrap();
        assert_eq!(
            template.fill(|_| Some("p 1".into()), |value| value.replace(' ', "%20")).as_deref(),
            Some("Condition?patient=p%201")
        );
        assert!(PrefetchTemplate::parse("X?p={{today()}}").unwrap_err().contains("today()"));
        assert!(PrefetchTemplate::parse("X?p={{context.patientId").unwrap_err().contains("unclosed"));
    }
}
