//! Card files (`cards/<card-type>.toml`) and `referrals.toml`: texts with their placeholders,
//! variants, suggestions and override reasons, checked against the card type's definition.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::load::parse_toml;
use super::registry::CardType;
use super::{ContentError, Template};
use crate::hooks::{Indicator, SelectionBehavior};

pub(super) const REFERRALS: &str = "referrals.toml";

/// A referral the cards can suggest creating (`referrals.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Referral {
    pub system: String,
    pub code: String,
    pub display: String,
    pub text: String,
    /// Put in ServiceRequest.orderDetail (for example "Telehealth (video) visits").
    #[serde(default)]
    pub order_detail: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceText {
    pub label: String,
    #[serde(default)]
    pub url: Option<String>,
    pub topic_display: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkText {
    pub label: String,
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    DeleteOrder,
    CreateReferral,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireAction {
    kind: ActionKind,
    description: String,
    #[serde(default)]
    referral: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSuggestion {
    key: String,
    label: String,
    #[serde(default)]
    recommended: bool,
    actions: Vec<WireAction>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideReason {
    pub code: String,
    pub display: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireVariant {
    #[serde(default)]
    summary: Option<String>,
    advice: String,
    #[serde(default)]
    indicator: Option<Indicator>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireCard {
    #[serde(default)]
    variants: BTreeMap<String, WireVariant>,
    /// Text of each caution (`rules.toml` `[[cautions]]`) this card can carry.
    #[serde(default)]
    cautions: BTreeMap<String, WireVariant>,
    indicator: Indicator,
    summary: String,
    detail: String,
    #[serde(default)]
    selection_behavior: Option<SelectionBehavior>,
    source: SourceText,
    #[serde(default)]
    links: Vec<LinkText>,
    #[serde(default)]
    suggestions: Vec<WireSuggestion>,
    #[serde(default)]
    override_reasons: Vec<OverrideReason>,
}

#[derive(Debug, Clone)]
pub struct ActionTemplate {
    pub kind: ActionKind,
    pub description: Template,
    pub referral: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SuggestionTemplate {
    pub key: String,
    pub label: Template,
    pub recommended: bool,
    pub actions: Vec<ActionTemplate>,
}

/// A variant of a card: its own summary, advice text and (optionally) indicator.
#[derive(Debug, Clone)]
pub struct VariantTemplate {
    pub summary: Option<Template>,
    pub advice: Template,
    pub indicator: Option<Indicator>,
}

#[derive(Debug, Clone)]
pub struct CardTemplate {
    pub variants: BTreeMap<String, VariantTemplate>,
    /// Caution texts by caution id (summary, advice, indicator).
    pub cautions: BTreeMap<String, VariantTemplate>,
    pub card_type: CardType,
    pub indicator: Indicator,
    pub summary: Template,
    pub detail: Template,
    pub selection_behavior: Option<SelectionBehavior>,
    pub source: SourceText,
    pub links: Vec<LinkText>,
    pub suggestions: Vec<SuggestionTemplate>,
    pub override_reasons: Vec<OverrideReason>,
}

pub(super) fn parse(
    file: &str,
    card_type: CardType,
    text: &str,
    referrals: &BTreeMap<String, Referral>,
) -> Result<CardTemplate, ContentError> {
    let wire: WireCard = parse_toml(file, text)?;
    let allowed = card_type.family().placeholders();
    let required_variants = card_type.variants();
    let mut variants = BTreeMap::new();
    for key in required_variants {
        if !wire.variants.contains_key(*key) {
            return Err(ContentError::new(file, format!("variants.{key}"), "is required for this card type"));
        }
    }
    for (key, variant) in &wire.variants {
        if !required_variants.contains(&key.as_str()) {
            return Err(ContentError::new(
                file,
                format!("variants.{key}"),
                format!("is not a variant of this card type (expected: {})", required_variants.join(", ")),
            ));
        }
        let field = |name: &str| format!("variants.{key}.{name}");
        variants.insert(
            key.clone(),
            VariantTemplate {
                summary: variant
                    .summary
                    .as_deref()
                    .map(|text| Template::parse(file, &field("summary"), text, allowed))
                    .transpose()?,
                advice: Template::parse(file, &field("advice"), &variant.advice, allowed)?,
                indicator: variant.indicator,
            },
        );
    }
    let mut cautions = BTreeMap::new();
    for (key, caution) in &wire.cautions {
        let field = |name: &str| format!("cautions.{key}.{name}");
        cautions.insert(
            key.clone(),
            VariantTemplate {
                summary: caution
                    .summary
                    .as_deref()
                    .map(|text| Template::parse(file, &field("summary"), text, allowed))
                    .transpose()?,
                advice: Template::parse(file, &field("advice"), &caution.advice, allowed)?,
                indicator: caution.indicator,
            },
        );
    }
    let summary = Template::parse(file, "summary", &wire.summary, allowed)?;
    let detail = Template::parse(file, "detail", &wire.detail, allowed)?;
    if wire.summary.trim().is_empty() {
        return Err(ContentError::new(file, "summary", "must not be empty"));
    }
    if wire.detail.contains('<') && wire.detail.contains('>') && wire.detail.contains("</") {
        return Err(ContentError::new(file, "detail", "must be Markdown without raw HTML"));
    }
    if wire.source.label.trim().is_empty() {
        return Err(ContentError::new(file, "source.label", "must not be empty"));
    }
    for (field, url) in wire
        .source
        .url
        .iter()
        .map(|u| ("source.url".to_owned(), u))
        .chain(wire.links.iter().enumerate().map(|(i, l)| (format!("links[{i}].url"), &l.url)))
    {
        if !url.starts_with("https://") && !url.starts_with("http://") {
            return Err(ContentError::new(file, field, "must be an absolute URL"));
        }
    }
    let mut suggestions = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for (index, suggestion) in wire.suggestions.into_iter().enumerate() {
        let field = |name: &str| format!("suggestions[{index}].{name}");
        if !keys.insert(suggestion.key.clone()) {
            return Err(ContentError::new(file, field("key"), "duplicate suggestion key"));
        }
        if suggestion.actions.is_empty() {
            return Err(ContentError::new(file, field("actions"), "needs at least one action"));
        }
        let mut actions = Vec::new();
        for (action_index, action) in suggestion.actions.into_iter().enumerate() {
            let action_field = format!("suggestions[{index}].actions[{action_index}]");
            if action.kind == ActionKind::CreateReferral {
                match &action.referral {
                    Some(name) if referrals.contains_key(name) => {}
                    Some(name) => {
                        return Err(ContentError::new(
                            file,
                            format!("{action_field}.referral"),
                            format!("no referral `{name}` in referrals.toml"),
                        ));
                    }
                    None => {
                        return Err(ContentError::new(
                            file,
                            format!("{action_field}.referral"),
                            "is required for create-referral",
                        ));
                    }
                }
            }
            actions.push(ActionTemplate {
                kind: action.kind,
                description: Template::parse(
                    file,
                    &format!("{action_field}.description"),
                    &action.description,
                    allowed,
                )?,
                referral: action.referral,
            });
        }
        suggestions.push(SuggestionTemplate {
            key: suggestion.key,
            label: Template::parse(file, &field("label"), &suggestion.label, allowed)?,
            recommended: suggestion.recommended,
            actions,
        });
    }
    if !suggestions.is_empty() && wire.selection_behavior.is_none() {
        return Err(ContentError::new(file, "selection_behavior", "is required when the card has suggestions"));
    }
    for (index, reason) in wire.override_reasons.iter().enumerate() {
        if reason.code.trim().is_empty() || reason.display.trim().is_empty() {
            return Err(ContentError::new(file, format!("override_reasons[{index}]"), "needs a code and a display"));
        }
    }
    Ok(CardTemplate {
        variants,
        cautions,
        card_type,
        indicator: wire.indicator,
        summary,
        detail,
        selection_behavior: wire.selection_behavior,
        source: wire.source,
        links: wire.links,
        suggestions,
        override_reasons: wire.override_reasons,
    })
}
