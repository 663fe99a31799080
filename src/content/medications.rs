//! The RxNorm concept-to-ingredient map (`cards/rxnorm-ingredients.json`): EHRs order clinical
//! and branded drugs and packs (SCD, SBD, GPCK, BPCK), brand names and local codes with text,
//! while the drug classes the rules use (`valuesets/opioids.json`, ...) list ingredients. This map
//! is the bridge; class membership stays defined once, in the value sets.

use std::collections::HashMap;

use serde::Deserialize;

use super::ContentError;
use super::valueset::{Confirmation, ValueSet, canonical_system};
use crate::record::{Code, Concept};

pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const FILE: &str = "rxnorm-ingredients.json";

/// Term types of RxNorm concepts that name a product (and so have ingredients).
const PRODUCT_TTYS: [&str; 8] = ["SCD", "SBD", "GPCK", "BPCK", "SCDC", "SBDC", "SCDF", "SBDF"];

#[derive(Debug, Clone)]
pub struct Product {
    pub rxcui: String,
    pub tty: String,
    pub name: String,
    pub ingredients: Vec<String>,
    pub confirmation: Confirmation,
}

#[derive(Debug, Clone)]
pub struct Brand {
    pub name: String,
    /// The brand name as lower-case words, matched as a run of words in an order's text.
    words: Vec<String>,
    pub ingredients: Vec<String>,
    pub confirmation: Confirmation,
}

/// An ingredient found for a medication, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundIngredient {
    pub rxcui: String,
    pub how: String,
}

#[derive(Debug, Clone, Default)]
pub struct DrugMap {
    products: HashMap<String, Product>,
    brands: Vec<Brand>,
    /// When the map was made (`timestamp`), for `content expand`'s report.
    pub timestamp: Option<String>,
    /// The RxNorm release a terminology server reported when it refreshed the map.
    pub rxnorm_version: Option<String>,
    /// The drug-class value sets (of RxNorm ingredients) whose products the map holds: what
    /// `content expand` walks from when it refreshes the map.
    pub classes: Vec<String>,
}

impl DrugMap {
    pub fn products(&self) -> impl Iterator<Item = &Product> {
        self.products.values()
    }

    pub fn brands(&self) -> &[Brand] {
        &self.brands
    }

    /// The ingredients of a medication: from RxNorm product codes (hash lookups), then from brand
    /// names in its text and displays. Ingredient codes themselves are matched by the caller.
    pub fn ingredients(&self, concept: &Concept) -> Vec<FoundIngredient> {
        let mut found = Vec::new();
        for coding in &concept.codes {
            if coding.system.as_deref().and_then(canonical_system) != Some(RXNORM) {
                continue;
            }
            let Some(product) = coding.code.as_deref().and_then(|code| self.products.get(code.trim())) else {
                continue;
            };
            for ingredient in &product.ingredients {
                found.push(FoundIngredient {
                    rxcui: ingredient.clone(),
                    how: format!("RxNorm {} ({} “{}”)", product.rxcui, product.tty, product.name),
                });
            }
        }
        if self.brands.is_empty() {
            return found;
        }
        let words = text_words(concept);
        for brand in &self.brands {
            if contains_run(&words, &brand.words) {
                for ingredient in &brand.ingredients {
                    found.push(FoundIngredient {
                        rxcui: ingredient.clone(),
                        how: format!("brand “{}” in the order text", brand.name),
                    });
                }
            }
        }
        found
    }

    /// Whether a medication belongs to the class `set` (a value set of RxNorm ingredients), and
    /// why: by an ingredient code, by a product code or brand through this map, or by an
    /// ingredient name in its text (local codes).
    pub fn class_match(&self, set: &ValueSet, concept: &Concept) -> Option<String> {
        if let Some(m) = set.match_concept(concept) {
            return Some(m.concept.describe());
        }
        for ingredient in self.ingredients(concept) {
            let code = Code { system: Some(RXNORM.to_owned()), code: Some(ingredient.rxcui.clone()), display: None };
            if let Some(member) = set.lookup(&code) {
                return Some(format!("{} → ingredient {}", ingredient.how, member.display));
            }
        }
        let words = text_words(concept);
        set.concepts()
            .iter()
            .find(|member| {
                let name: Vec<String> = words_of(&member.display);
                !name.is_empty() && contains_run(&words, &name)
            })
            .map(|member| format!("ingredient “{}” in the order text", member.display))
    }

    /// Checks that every class the map names is a loaded value set.
    pub fn check_classes(&self, is_value_set: impl Fn(&str) -> bool) -> Result<(), ContentError> {
        match self.classes.iter().enumerate().find(|(_, class)| !is_value_set(class)) {
            Some((index, class)) => Err(ContentError::new(
                FILE,
                format!("classes[{index}]"),
                format!("`{class}` is not a value set of valuesets/"),
            )),
            None => Ok(()),
        }
    }

    pub fn parse(text: &str) -> Result<DrugMap, ContentError> {
        let wire: WireMap = serde_json::from_str(text)
            .map_err(|e| ContentError::new(FILE, "(file)", format!("not a valid ingredient map: {e}")))?;
        if let Some(index) = wire.classes.iter().position(|c| c.trim().is_empty()) {
            return Err(ContentError::new(FILE, format!("classes[{index}]"), "must name a value set"));
        }
        let mut map = DrugMap {
            timestamp: wire.timestamp,
            rxnorm_version: wire.rxnorm_version,
            classes: wire.classes,
            ..DrugMap::default()
        };
        for (index, product) in wire.products.into_iter().enumerate() {
            let field = |name: &str| format!("products[{index}].{name}");
            if product.rxcui.is_empty() || !product.rxcui.chars().all(|c| c.is_ascii_digit()) {
                return Err(ContentError::new(FILE, field("rxcui"), format!("`{}` is not an RxCUI", product.rxcui)));
            }
            if !PRODUCT_TTYS.contains(&product.tty.as_str()) {
                return Err(ContentError::new(
                    FILE,
                    field("tty"),
                    format!("must be one of {}", PRODUCT_TTYS.join(", ")),
                ));
            }
            check_ingredients(&product.ingredients, &field("ingredients"))?;
            let confirmation = confirmation(&product.confirmation, &field("confirmation"))?;
            let rxcui = product.rxcui.clone();
            let entry = Product {
                rxcui: product.rxcui,
                tty: product.tty,
                name: product.name,
                ingredients: product.ingredients,
                confirmation,
            };
            if map.products.insert(rxcui.clone(), entry).is_some() {
                return Err(ContentError::new(FILE, field("rxcui"), format!("duplicate RxCUI `{rxcui}`")));
            }
        }
        for (index, brand) in wire.brands.into_iter().enumerate() {
            let field = |name: &str| format!("brands[{index}].{name}");
            let words = words_of(&brand.name);
            if words.is_empty() {
                return Err(ContentError::new(FILE, field("name"), "must not be empty"));
            }
            check_ingredients(&brand.ingredients, &field("ingredients"))?;
            let confirmation = confirmation(&brand.confirmation, &field("confirmation"))?;
            map.brands.push(Brand { name: brand.name, words, ingredients: brand.ingredients, confirmation });
        }
        Ok(map)
    }
}

fn check_ingredients(ingredients: &[String], field: &str) -> Result<(), ContentError> {
    if ingredients.is_empty() {
        return Err(ContentError::new(FILE, field, "must list at least one ingredient RxCUI"));
    }
    match ingredients.iter().find(|i| i.is_empty() || !i.chars().all(|c| c.is_ascii_digit())) {
        Some(bad) => Err(ContentError::new(FILE, field, format!("`{bad}` is not an RxCUI"))),
        None => Ok(()),
    }
}

fn confirmation(value: &str, field: &str) -> Result<Confirmation, ContentError> {
    match value {
        "V" => Ok(Confirmation::Confirmed),
        "S" => Ok(Confirmation::Seen),
        "U" => Ok(Confirmation::Unconfirmed),
        _ => Err(ContentError::new(FILE, field, "must be V, S or U")),
    }
}

/// Lower-case words of a text ("Acetaminophen 325 MG / HYDROcodone" → acetaminophen, 325, mg, hydrocodone).
fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The words of a concept's text and of each coding's display.
fn text_words(concept: &Concept) -> Vec<String> {
    let mut words = Vec::new();
    for text in concept.text.iter().chain(concept.codes.iter().filter_map(|c| c.display.as_ref())) {
        words.extend(words_of(text));
        // A separator between texts, so a run never spans two of them.
        words.push(String::new());
    }
    words
}

fn contains_run(words: &[String], run: &[String]) -> bool {
    !run.is_empty() && words.windows(run.len()).any(|window| window == run)
}

#[derive(Deserialize)]
struct WireMap {
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default, rename = "rxnormVersion")]
    rxnorm_version: Option<String>,
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    products: Vec<WireProduct>,
    #[serde(default)]
    brands: Vec<WireBrand>,
}

#[derive(Deserialize)]
struct WireProduct {
    rxcui: String,
    tty: String,
    #[serde(default)]
    name: String,
    ingredients: Vec<String>,
    confirmation: String,
}

#[derive(Deserialize)]
struct WireBrand {
    name: String,
    ingredients: Vec<String>,
    confirmation: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> DrugMap {
        DrugMap::parse(
            r#"{"products":[{"rxcui":"1049221","tty":"SCD","name":"APAP / oxycodone","ingredients":["161","7804"],"confirmation":"S"}],
                "brands":[{"name":"Tylenol with Codeine","ingredients":["161","2670"],"confirmation":"U"}]}"#,
        )
        .unwrap()
    }

    fn concept(code: Option<&str>, text: &str) -> Concept {
        Concept {
            codes: code
                .map(|c| vec![Code { system: Some(RXNORM.into()), code: Some(c.into()), display: None }])
                .unwrap_or_default(),
            text: Some(text.into()),
        }
    }

    #[test]
    fn products_and_brands_resolve_to_ingredients() {
        let map = map();
        let found: Vec<String> = map.ingredients(&concept(Some("1049221"), "")).into_iter().map(|f| f.rxcui).collect();
        assert_eq!(found, ["161", "7804"]);
        let found: Vec<String> =
            map.ingredients(&concept(None, "TYLENOL WITH CODEINE #3 tab")).into_iter().map(|f| f.rxcui).collect();
        assert_eq!(found, ["161", "2670"]);
        // "Tylenol" alone is not the codeine brand.
        assert!(map.ingredients(&concept(None, "Tylenol 500 mg")).is_empty());
    }

    #[test]
    fn a_class_that_is_not_a_value_set_is_refused_naming_the_field() {
        let map = DrugMap::parse(r#"{"classes": ["opioids", "opiods"], "products": [], "brands": []}"#).unwrap();
        let error = map.check_classes(|id| id == "opioids").unwrap_err();
        assert_eq!((error.file.as_str(), error.field.as_str()), (FILE, "classes[1]"));
        assert!(map.check_classes(|id| id.starts_with("opi")).is_ok());
        let error = DrugMap::parse(r#"{"classes": [" "]}"#).unwrap_err();
        assert_eq!(error.field, "classes[0]");
    }

    #[test]
    fn packs_resolve_to_the_ingredients_of_their_drugs() {
        let map = DrugMap::parse(
            r#"{"products":[{"rxcui":"2272622","tty":"BPCK","name":"{1 (0.1 ML) (diazepam 100 MG/ML Nasal Spray [Valtoco]) } Pack [Valtoco 10 MG Dose Kit]","ingredients":["3322"],"confirmation":"S"}]}"#,
        )
        .unwrap();
        let found = map.ingredients(&concept(Some("2272622"), ""));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rxcui, "3322");
        assert!(found[0].how.contains("BPCK"), "{}", found[0].how);
    }

    #[test]
    fn rejects_a_product_without_ingredients_naming_the_field() {
        let error = DrugMap::parse(r#"{"products":[{"rxcui":"1","tty":"SCD","ingredients":[],"confirmation":"S"}]}"#)
            .unwrap_err();
        assert_eq!((error.file.as_str(), error.field.as_str()), (FILE, "products[0].ingredients"));
        let error = DrugMap::parse(r#"{"products":[{"rxcui":"1","tty":"IN","ingredients":["2"],"confirmation":"S"}]}"#)
            .unwrap_err();
        assert_eq!(error.field, "products[0].tty");
    }
}
