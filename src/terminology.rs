//! `lbp-cds content expand`: refreshes the expansion of every intensional value set in a content
//! directory from a FHIR terminology server (`ValueSet/$expand`, paged), so that the codes the
//! service matches follow the definition and the code-system release the site uses; and the RxNorm
//! concept-to-ingredient map, walked from the drug classes' ingredients with `$expand`s of RxNorm
//! relationship filters (see "The RxNorm concept-to-ingredient map" below).
//!
//! Each `compose.include` is expanded on its own (with all of the set's exclusions), so every new
//! code gets the `urn:lbp-cds:group` of the include that brought it in. Codes the server returns
//! are confirmed (V) by it; a code the server no longer returns is dropped, and the diff says so.
//! The file is rewritten in place (its other members are kept as written); start-up validation
//! then runs on the result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};

use crate::content::{Content, canonical_system};

#[derive(Debug, Subcommand)]
pub enum ContentCommand {
    /// Refresh the expansions of the intensional value sets from a FHIR terminology server.
    Expand(ExpandArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ExpandArgs {
    /// Base URL of the FHIR terminology server (`.../fhir`); `ValueSet/$expand` is called on it.
    #[arg(long)]
    pub terminology_server: String,
    /// `Authorization` header value sent with every request (for example `Bearer <token>`).
    #[arg(long, env = "LBP_CDS_TERMINOLOGY_AUTHORIZATION", hide_env_values = true)]
    pub authorization: Option<String>,
    /// Content directory whose `valuesets/` are refreshed in place.
    #[arg(long, default_value = "cards")]
    pub content: PathBuf,
    /// Only these value sets (ids; repeatable). Default: every value set with a `compose`, and
    /// the RxNorm ingredient map.
    #[arg(long = "value-set")]
    pub value_sets: Vec<String>,
    /// Refresh the RxNorm concept-to-ingredient map (`rxnorm-ingredients.json`); with
    /// `--value-set`, both; alone, only the map. Default (neither given): everything.
    #[arg(long)]
    pub drug_map: bool,
    /// Requests in flight at once while the ingredient map is refreshed.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub concurrency: u16,
    /// Codes asked for per page (`count`).
    #[arg(long, default_value_t = 1000)]
    pub page_size: usize,
    /// Most pages per include, a bound on a runaway expansion.
    #[arg(long, default_value_t = 200)]
    pub max_pages: usize,
}

/// A code in an expansion, as this command writes it (member order as in the shipped files).
#[derive(Debug, Clone, Serialize)]
struct OutConcept {
    system: String,
    code: String,
    display: String,
    extension: Vec<Value>,
}

#[derive(Debug, Serialize)]
struct OutExpansion {
    timestamp: String,
    total: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parameter: Vec<Value>,
    contains: Vec<OutConcept>,
}

/// Codes added to and removed from one value set.
#[derive(Debug, Default)]
pub struct Diff {
    pub added: Vec<(String, String, String)>,
    pub removed: Vec<(String, String, String)>,
}

/// Runs the command: a message for the user on failure.
pub fn run(command: ContentCommand) -> Result<(), String> {
    let ContentCommand::Expand(args) = command;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let everything = args.value_sets.is_empty() && !args.drug_map;
    let diffs =
        if everything || !args.value_sets.is_empty() { runtime.block_on(expand_dir(&args))? } else { Vec::new() };
    let mut changed = 0;
    for (id, diff) in &diffs {
        println!("{id}: {} added, {} removed", diff.added.len(), diff.removed.len());
        for (system, code, display) in &diff.added {
            println!("  + {system} {code} {display}");
        }
        for (system, code, display) in &diff.removed {
            println!("  - {system} {code} {display}");
        }
        changed += usize::from(!diff.added.is_empty() || !diff.removed.is_empty());
    }
    // The value sets are written and reported before the map is walked: a failed map refresh
    // leaves the map alone but does not hide what was already rewritten.
    if everything || args.drug_map {
        print!("{}", runtime.block_on(refresh_drug_map(&args))?);
    }
    let content = Content::from_dir(&args.content).map_err(|e| format!("the refreshed content is not valid: {e}"))?;
    println!(
        "{} value set(s) expanded, {changed} changed; content is valid ({} value sets)",
        diffs.len(),
        content.value_sets.len()
    );
    Ok(())
}

/// Expands every selected intensional value set of `args.content` and rewrites its file.
pub async fn expand_dir(args: &ExpandArgs) -> Result<Vec<(String, Diff)>, String> {
    let folder = args.content.join("valuesets");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .map_err(|e| format!("cannot read {}: {e}", folder.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    files.sort();
    let client = crate::outbound::client()?;
    let base = args.terminology_server.trim_end_matches('/');
    let mut diffs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let set: Value = serde_json::from_str(&text).map_err(|e| format!("{}: not JSON ({e})", path.display()))?;
        let id = set["id"].as_str().unwrap_or_default().to_owned();
        if set.get("compose").is_none() || (!args.value_sets.is_empty() && !args.value_sets.contains(&id)) {
            continue;
        }
        let (expansion, diff) = expand_set(&client, base, args, &path, &set).await?;
        let rewritten = replace_member(&text, "expansion", &expansion)
            .ok_or_else(|| format!("{}: cannot find the `expansion` member to replace", path.display()))?;
        std::fs::write(&path, rewritten).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        diffs.push((id, diff));
    }
    if !args.value_sets.is_empty() && diffs.len() < args.value_sets.len() {
        return Err(format!("not every value set of {:?} was found with a compose definition", args.value_sets));
    }
    Ok(diffs)
}

async fn expand_set(
    client: &reqwest::Client,
    base: &str,
    args: &ExpandArgs,
    path: &Path,
    set: &Value,
) -> Result<(OutExpansion, Diff), String> {
    let file = path.display().to_string();
    let excludes = set["compose"]["exclude"].clone();
    let old: Vec<Value> = set["expansion"]["contains"].as_array().cloned().unwrap_or_default();
    let old_by_key: BTreeMap<(String, String), &Value> = old.iter().filter_map(|c| Some((key_of(c)?, c))).collect();
    let timestamp = now();
    let mut versions = BTreeSet::new();
    let mut contains: Vec<OutConcept> = Vec::new();
    let mut seen = BTreeSet::new();
    let includes = set["compose"]["include"].as_array().cloned().unwrap_or_default();
    for (index, include) in includes.iter().enumerate() {
        let group = include["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["url"] == "urn:lbp-cds:group")
            .and_then(|e| e["valueCode"].as_str())
            .map(str::to_owned);
        let mut request_include = include.clone();
        if let Some(object) = request_include.as_object_mut() {
            object.remove("extension");
        }
        let mut compose = json!({"include": [request_include]});
        if excludes.is_array() {
            compose["exclude"] = excludes.clone();
        }
        let definition = json!({"resourceType": "ValueSet", "status": "active", "compose": compose});
        let codes = expand_include(client, base, args, &definition, &file, index, &mut versions).await?;
        for (system, code, display) in codes {
            let Some(canonical) = canonical_system(&system) else { continue };
            let key = (canonical.to_owned(), code.clone());
            if !seen.insert(key.clone()) {
                continue;
            }
            contains.push(concept_for(
                &key,
                &system,
                &display,
                old_by_key.get(&key).copied(),
                group.as_deref(),
                base,
                &timestamp,
            ));
        }
    }
    if contains.is_empty() {
        return Err(format!("{file}: the terminology server returned no codes: the file was left as it was"));
    }
    let mut diff = Diff::default();
    for concept in &contains {
        if !old_by_key
            .contains_key(&(canonical_system(&concept.system).unwrap_or_default().to_owned(), concept.code.clone()))
        {
            diff.added.push((concept.system.clone(), concept.code.clone(), concept.display.clone()));
        }
    }
    for (key, concept) in &old_by_key {
        if !seen.contains(key) {
            diff.removed.push((
                key.0.clone(),
                key.1.clone(),
                concept["display"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    let parameter = versions.into_iter().map(|v| json!({"name": "version", "valueUri": v})).collect();
    Ok((OutExpansion { timestamp, total: contains.len(), parameter, contains }, diff))
}

/// All pages of one include's expansion: (system, code, display).
async fn expand_include(
    client: &reqwest::Client,
    base: &str,
    args: &ExpandArgs,
    definition: &Value,
    file: &str,
    index: usize,
    versions: &mut BTreeSet<String>,
) -> Result<Vec<(String, String, String)>, String> {
    let where_ = format!("{file} compose.include[{index}]");
    let (codes, found) = expand_pages(client, base, args, definition, &where_).await?;
    versions.extend(found);
    Ok(codes)
}

/// `ValueSet/$expand` of a definition, every page: the codes (system, code, display) and the
/// code-system versions the server reports. A page that ends before the `total` the server
/// announced is a partial answer, and an error.
async fn expand_pages(
    client: &reqwest::Client,
    base: &str,
    args: &ExpandArgs,
    definition: &Value,
    what: &str,
) -> Result<(Vec<(String, String, String)>, BTreeSet<String>), String> {
    let url = format!("{base}/ValueSet/$expand");
    let mut codes = Vec::new();
    let mut versions = BTreeSet::new();
    let mut offset = 0usize;
    for _ in 0..args.max_pages {
        let parameters = json!({"resourceType": "Parameters", "parameter": [
            {"name": "valueSet", "resource": definition},
            {"name": "offset", "valueInteger": offset},
            {"name": "count", "valueInteger": args.page_size},
        ]});
        let mut request = client
            .post(&url)
            .timeout(Duration::from_secs(60))
            .header("accept", "application/fhir+json")
            .header("content-type", "application/fhir+json")
            .body(parameters.to_string());
        if let Some(authorization) = &args.authorization {
            request = request.header("authorization", authorization);
        }
        let where_ = format!("{what}: {url}");
        let response = request.send().await.map_err(|e| format!("{where_}: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("{where_}: HTTP {status}, not FHIR JSON ({e})"))?;
        if !status.is_success() || body["resourceType"] != "ValueSet" {
            let why = body["issue"][0]["diagnostics"].as_str().unwrap_or("not a ValueSet");
            return Err(format!("{where_}: HTTP {status}: {why}"));
        }
        let expansion = &body["expansion"];
        for parameter in expansion["parameter"].as_array().into_iter().flatten() {
            if parameter["name"] == "version"
                && let Some(version) = parameter["valueUri"].as_str().or(parameter["valueString"].as_str())
            {
                versions.insert(version.to_owned());
            }
        }
        let page: Vec<&Value> = expansion["contains"].as_array().into_iter().flatten().collect();
        let count = page.len();
        for concept in page {
            if let (Some(system), Some(code)) = (concept["system"].as_str(), concept["code"].as_str()) {
                let display = concept["display"].as_str().unwrap_or_default().to_owned();
                codes.push((system.to_owned(), code.to_owned(), display));
            }
        }
        offset += count;
        let total = expansion["total"].as_u64().map(|t| t as usize);
        match total {
            Some(total) if offset >= total => return Ok((codes, versions)),
            Some(total) if count == 0 => {
                return Err(format!(
                    "{where_}: partial expansion: the server announced {total} codes and sent {offset}"
                ));
            }
            None if count < args.page_size || count == 0 => return Ok((codes, versions)),
            _ => {}
        }
    }
    Err(format!("{what}: more than {} pages: raise --max-pages", args.max_pages))
}

/// A code for the new expansion: confirmed (V) by the server; an existing entry keeps its group
/// and its earlier source, a new one takes the group of the include that brought it in.
fn concept_for(
    key: &(String, String),
    system: &str,
    display: &str,
    old: Option<&Value>,
    group: Option<&str>,
    server: &str,
    timestamp: &str,
) -> OutConcept {
    let old_extension =
        |url: &str| -> Option<Value> { old?["extension"].as_array()?.iter().find(|e| e["url"] == url).cloned() };
    let earlier = old_extension("urn:lbp-cds:source")
        .and_then(|e| e["valueString"].as_str().and_then(reviewed_source).map(str::to_owned));
    let source = match earlier {
        Some(earlier) => format!("ValueSet/$expand on {server} at {timestamp}; earlier: {earlier}"),
        None => format!("ValueSet/$expand on {server} at {timestamp}"),
    };
    let mut extension = vec![
        json!({"url": "urn:lbp-cds:confirmation", "valueCode": "V"}),
        json!({"url": "urn:lbp-cds:source", "valueString": source}),
    ];
    let group = old_extension("urn:lbp-cds:group")
        .or_else(|| group.map(|g| json!({"url": "urn:lbp-cds:group", "valueCode": g})));
    extension.extend(group);
    extension.extend(old_extension("urn:lbp-cds:modality"));
    let display = if display.is_empty() {
        old.and_then(|o| o["display"].as_str()).unwrap_or_default().to_owned()
    } else {
        display.to_owned()
    };
    let system = if canonical_system(system).is_some() { key.0.clone() } else { system.to_owned() };
    OutConcept { system, code: key.1.clone(), display, extension }
}

/// The source a reviewer wrote, without an earlier refresh's note (which the new one replaces),
/// so that a source does not grow with every refresh.
fn reviewed_source(source: &str) -> Option<&str> {
    if source.starts_with("ValueSet/$expand") {
        source.split_once("; earlier: ").map(|(_, reviewed)| reviewed)
    } else {
        Some(source)
    }
}

fn key_of(concept: &Value) -> Option<(String, String)> {
    Some((canonical_system(concept["system"].as_str()?)?.to_owned(), concept["code"].as_str()?.to_owned()))
}

fn now() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Replaces the value of a top-level member in pretty-printed JSON text, leaving the rest of the
/// file as written (so informaticists' edits and review diffs stay readable).
fn replace_member(text: &str, member: &str, value: &impl Serialize) -> Option<String> {
    let marker = format!("\n  \"{member}\": ");
    let start = text.find(&marker)? + marker.len();
    let end = start + value_length(&text[start..])?;
    let pretty = serde_json::to_string_pretty(value).ok()?.replace('\n', "\n  ");
    Some(format!("{}{pretty}{}", &text[..start], &text[end..]))
}

/// The length of the JSON value at the start of `text` (an object or array), strings respected.
fn value_length(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(index + 1);
                }
            }
            _ => {}
        }
    }
    None
}

// ---- The RxNorm concept-to-ingredient map ----------------------------------------------------
//
// RxNorm has no subsumption, so a drug class cannot be expanded with `is-a`; what a terminology
// server offers instead are RxNorm's relationships as `compose.include.filter`s: property = a
// relationship name (RELA), op `=`, value `CUI:<rxcui>`, which selects the concepts that
// `<rxcui>` has that relationship to (the FHIR RxNorm page's "Relationship Type" filter, as
// tx.fhir.org implements it), and `TTY` `=`/`in` to keep one term type. Each step of the walk is
// one such `$expand`:
//
//   class ingredient (IN) --ingredient_of--> SCDC --constitutes--> SCD
//   SCD --consists_of--> SCDC --has_ingredient--> IN     (every ingredient of the product)
//   SCD --has_tradename--> SBD;  SCD --contained_in--> GPCK, BPCK;  SBD --contained_in--> BPCK
//   IN --has_tradename--> BN                               (brand names, matched in order text)

/// What a refresh of the ingredient map changed.
#[derive(Debug, Default)]
pub struct DrugMapDiff {
    pub rxnorm_version: Option<String>,
    /// (RxCUI, term type, name)
    pub added: Vec<(String, String, String)>,
    pub removed: Vec<(String, String, String)>,
    /// (RxCUI, ingredients before, ingredients now)
    pub changed: Vec<(String, Vec<String>, Vec<String>)>,
    pub brands_added: Vec<String>,
    pub brands_removed: Vec<String>,
    pub products: usize,
    pub brands: usize,
}

impl std::fmt::Display for DrugMapDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: RxNorm {}, {} products and {} brands: {} added, {} removed, {} with other ingredients; brands {} added, {} removed",
            crate::content::DRUG_MAP_FILE,
            self.rxnorm_version.as_deref().unwrap_or("(version not reported)"),
            self.products,
            self.brands,
            self.added.len(),
            self.removed.len(),
            self.changed.len(),
            self.brands_added.len(),
            self.brands_removed.len()
        )?;
        for (rxcui, tty, name) in &self.added {
            writeln!(f, "  + {rxcui} {tty} {name}")?;
        }
        for (rxcui, tty, name) in &self.removed {
            writeln!(f, "  - {rxcui} {tty} {name}")?;
        }
        for (rxcui, before, now) in &self.changed {
            writeln!(f, "  ~ {rxcui} ingredients {} (were {})", now.join(" "), before.join(" "))?;
        }
        for name in &self.brands_added {
            writeln!(f, "  + brand {name}")?;
        }
        for name in &self.brands_removed {
            writeln!(f, "  - brand {name}")?;
        }
        Ok(())
    }
}

/// One entry of the map as this command writes it (member order as in the shipped file).
#[derive(Debug, Serialize)]
struct OutProduct {
    rxcui: String,
    tty: String,
    name: String,
    ingredients: Vec<String>,
    confirmation: &'static str,
    source: String,
}

#[derive(Debug, Serialize)]
struct OutBrand {
    name: String,
    ingredients: Vec<String>,
    confirmation: &'static str,
    source: String,
}

#[derive(Debug, Serialize)]
struct OutMap {
    description: Value,
    timestamp: String,
    #[serde(rename = "rxnormVersion")]
    rxnorm_version: Option<String>,
    classes: Vec<String>,
    products: Vec<OutProduct>,
    brands: Vec<OutBrand>,
}

/// `$expand` calls against one server for the walk, with the RxNorm versions they reported.
struct Walker<'a> {
    client: reqwest::Client,
    base: &'a str,
    args: &'a ExpandArgs,
    versions: std::sync::Mutex<BTreeSet<String>>,
}

impl Walker<'_> {
    /// The concepts of term type(s) `ttys` that `rxcui` has relationship `rela` to: (RxCUI, name).
    async fn related(&self, ttys: &[&str], rela: &str, rxcui: &str) -> Result<Vec<(String, String)>, String> {
        let tty = json!({"property": "TTY", "op": if ttys.len() == 1 { "=" } else { "in" }, "value": ttys.join(",")});
        let relation = json!({"property": rela, "op": "=", "value": format!("CUI:{rxcui}")});
        let definition = json!({"resourceType": "ValueSet", "status": "active", "compose": {"include": [
            {"system": crate::content::RXNORM, "filter": [tty, relation]}
        ]}});
        let what = format!("RxNorm {rxcui} {rela} {}", ttys.join(","));
        let (codes, versions) = expand_pages(&self.client, self.base, self.args, &definition, &what).await?;
        self.versions.lock().map_err(|_| "a refresh task failed".to_owned())?.extend(versions);
        Ok(codes
            .into_iter()
            .filter(|(system, _, _)| canonical_system(system) == Some(crate::content::RXNORM))
            .map(|(_, code, display)| (code, display))
            .collect())
    }

    /// `related` for many concepts, `--concurrency` requests in flight.
    async fn related_each(
        &self,
        rxcuis: impl IntoIterator<Item = String>,
        ttys: &[&str],
        rela: &str,
    ) -> Result<BTreeMap<String, Vec<(String, String)>>, String> {
        use futures_util::{StreamExt, TryStreamExt};
        futures_util::stream::iter(rxcuis.into_iter().map(|rxcui| async move {
            let related = self.related(ttys, rela, &rxcui).await?;
            Ok::<_, String>((rxcui, related))
        }))
        .buffer_unordered(usize::from(self.args.concurrency))
        .try_collect()
        .await
    }
}

/// Refreshes `rxnorm-ingredients.json` from the terminology server: every product (SCD, SBD,
/// GPCK, BPCK) and brand name of every ingredient of the map's `classes`, each with all of its
/// ingredients. The file is replaced only when the walk is complete and the result is a valid map.
pub async fn refresh_drug_map(args: &ExpandArgs) -> Result<DrugMapDiff, String> {
    let path = args.content.join(crate::content::DRUG_MAP_FILE);
    walk_and_write(args, &path).await.map_err(|e| format!("{e}: {} was left as it was", path.display()))
}

async fn walk_and_write(args: &ExpandArgs, path: &Path) -> Result<DrugMapDiff, String> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {file}: {e}"))?;
    let old: Value = serde_json::from_str(&text).map_err(|e| format!("{file}: not JSON ({e})"))?;
    let classes: Vec<String> =
        old["classes"].as_array().into_iter().flatten().filter_map(|c| c.as_str().map(str::to_owned)).collect();
    if classes.is_empty() {
        return Err(format!("{file}: `classes` names no drug class to refresh the map from"));
    }
    let mut class_ingredients: BTreeSet<String> = BTreeSet::new();
    for class in &classes {
        let set_path = args.content.join("valuesets").join(format!("{class}.json"));
        let set: Value = std::fs::read_to_string(&set_path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", set_path.display()))?;
        class_ingredients.extend(
            set["expansion"]["contains"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["system"].as_str().and_then(canonical_system) == Some(crate::content::RXNORM))
                .filter_map(|c| c["code"].as_str().map(str::to_owned)),
        );
    }

    let walker = Walker {
        client: crate::outbound::client()?,
        base: args.terminology_server.trim_end_matches('/'),
        args,
        versions: std::sync::Mutex::new(BTreeSet::new()),
    };
    // Class ingredient -> its components; component -> its ingredient.
    let components = walker.related_each(class_ingredients.iter().cloned(), &["SCDC"], "ingredient_of").await?;
    let mut ingredient_of_component: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (ingredient, found) in &components {
        for (scdc, _) in found {
            ingredient_of_component.entry(scdc.clone()).or_default().insert(ingredient.clone());
        }
    }
    // Components -> clinical drugs.
    let drugs = walker.related_each(ingredient_of_component.keys().cloned(), &["SCD"], "constitutes").await?;
    let mut scds: BTreeMap<String, String> = BTreeMap::new();
    for (code, name) in drugs.values().flatten() {
        scds.insert(code.clone(), name.clone());
    }
    // Every component of each clinical drug (combination products have several), its branded
    // drugs and the packs that hold it.
    let parts = walker.related_each(scds.keys().cloned(), &["SCDC"], "consists_of").await?;
    let branded = walker.related_each(scds.keys().cloned(), &["SBD"], "has_tradename").await?;
    let generic_packs = walker.related_each(scds.keys().cloned(), &["GPCK"], "contained_in").await?;
    let brand_packs = walker.related_each(scds.keys().cloned(), &["BPCK"], "contained_in").await?;
    let unknown: BTreeSet<String> = parts
        .values()
        .flatten()
        .map(|(scdc, _)| scdc.clone())
        .filter(|scdc| !ingredient_of_component.contains_key(scdc))
        .collect();
    for (scdc, found) in walker.related_each(unknown, &["IN"], "has_ingredient").await? {
        if found.is_empty() {
            return Err(format!("partial refresh: the server named no ingredient of component {scdc}"));
        }
        ingredient_of_component.entry(scdc).or_default().extend(found.into_iter().map(|(code, _)| code));
    }
    let sbd_codes: BTreeSet<String> = branded.values().flatten().map(|(code, _)| code.clone()).collect();
    let sbd_packs = walker.related_each(sbd_codes, &["BPCK"], "contained_in").await?;
    let brand_names = walker.related_each(class_ingredients.iter().cloned(), &["BN"], "has_tradename").await?;

    // Products with their ingredients.
    let mut products: BTreeMap<String, (String, String, BTreeSet<String>)> = BTreeMap::new();
    let mut add = |code: &str, tty: &str, name: &str, ingredients: &BTreeSet<String>| {
        let entry =
            products.entry(code.to_owned()).or_insert_with(|| (tty.to_owned(), name.to_owned(), BTreeSet::new()));
        entry.2.extend(ingredients.iter().cloned());
    };
    for (scd, name) in &scds {
        let mut ingredients = BTreeSet::new();
        for (scdc, _) in parts.get(scd).into_iter().flatten() {
            ingredients.extend(ingredient_of_component.get(scdc).into_iter().flatten().cloned());
        }
        if ingredients.is_empty() {
            return Err(format!("partial refresh: the server named no component of clinical drug {scd} ({name})"));
        }
        add(scd, "SCD", name, &ingredients);
        for (sbd, sbd_name) in branded.get(scd).into_iter().flatten() {
            add(sbd, "SBD", sbd_name, &ingredients);
            for (pack, pack_name) in sbd_packs.get(sbd).into_iter().flatten() {
                add(pack, "BPCK", pack_name, &ingredients);
            }
        }
        for (pack, pack_name) in generic_packs.get(scd).into_iter().flatten() {
            add(pack, "GPCK", pack_name, &ingredients);
        }
        for (pack, pack_name) in brand_packs.get(scd).into_iter().flatten() {
            add(pack, "BPCK", pack_name, &ingredients);
        }
    }
    let mut brands: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for (ingredient, found) in &brand_names {
        for (_, name) in found {
            let entry = brands.entry(name.to_lowercase()).or_insert_with(|| (name.clone(), BTreeSet::new()));
            entry.1.insert(ingredient.clone());
        }
    }

    // A complete answer or nothing: one release, products for every ingredient that had some.
    let versions = walker.versions.into_inner().map_err(|_| "a refresh task failed".to_owned())?;
    let rxnorm_versions: Vec<String> = versions
        .iter()
        .filter(|v| v.split('|').next().and_then(canonical_system) == Some(crate::content::RXNORM))
        .map(|v| v.split_once('|').map_or(v.as_str(), |(_, version)| version).to_owned())
        .collect();
    if rxnorm_versions.len() > 1 {
        return Err(format!(
            "partial refresh: the server answered from RxNorm releases {} during one refresh",
            rxnorm_versions.join(", ")
        ));
    }
    let old_products: Vec<&Value> = old["products"].as_array().into_iter().flatten().collect();
    let covered: BTreeSet<&String> = products.values().flat_map(|(_, _, i)| i).collect();
    let lost: BTreeSet<&str> = old_products
        .iter()
        .flat_map(|p| p["ingredients"].as_array().into_iter().flatten().filter_map(Value::as_str))
        .filter(|i| class_ingredients.contains(*i) && !covered.contains(&(*i).to_owned()))
        .collect();
    if products.is_empty() || !lost.is_empty() {
        return Err(format!(
            "partial refresh: the server returned no product of class ingredient(s) {} that the map has products for (a server without RxNorm relationship filters, or a retired ingredient: then remove its products from the file by hand)",
            if lost.is_empty() { "(any)".to_owned() } else { lost.into_iter().collect::<Vec<_>>().join(", ") }
        ));
    }

    // The new file: refreshed entries confirmed (V) by the server, earlier sources kept.
    let timestamp = now();
    let rxnorm_version = rxnorm_versions.into_iter().next();
    let source_now = format!(
        "ValueSet/$expand (RxNorm relationship filters) on {} at {timestamp}{}",
        walker.base,
        rxnorm_version.as_deref().map(|v| format!(", RxNorm {v}")).unwrap_or_default()
    );
    let with_earlier = |earlier: Option<&str>| match earlier.and_then(reviewed_source) {
        Some(earlier) => format!("{source_now}; earlier: {earlier}"),
        None => source_now.clone(),
    };
    let old_by_rxcui: BTreeMap<&str, &Value> =
        old_products.iter().filter_map(|p| Some((p["rxcui"].as_str()?, *p))).collect();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
    };
    let mut diff = DrugMapDiff { rxnorm_version: rxnorm_version.clone(), ..DrugMapDiff::default() };
    let mut out_products = Vec::new();
    for (rxcui, (tty, name, ingredients)) in &products {
        let ingredients: Vec<String> = ingredients.iter().cloned().collect();
        let earlier = old_by_rxcui.get(rxcui.as_str());
        match earlier {
            None => diff.added.push((rxcui.clone(), tty.clone(), name.clone())),
            Some(old) => {
                let mut before = strings(&old["ingredients"]);
                before.sort();
                if before != ingredients {
                    diff.changed.push((rxcui.clone(), before, ingredients.clone()));
                }
            }
        }
        out_products.push(OutProduct {
            rxcui: rxcui.clone(),
            tty: tty.clone(),
            name: name.clone(),
            ingredients,
            confirmation: "V",
            source: with_earlier(earlier.and_then(|o| o["source"].as_str())),
        });
    }
    for (rxcui, old) in &old_by_rxcui {
        if !products.contains_key(*rxcui) {
            let field = |name: &str| old[name].as_str().unwrap_or_default().to_owned();
            diff.removed.push(((*rxcui).to_owned(), field("tty"), field("name")));
        }
    }
    out_products.sort_by_key(|p| (p.rxcui.len(), p.rxcui.clone()));
    let old_brands: BTreeMap<String, &Value> = old["brands"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| Some((b["name"].as_str()?.to_lowercase(), b)))
        .collect();
    let mut out_brands = Vec::new();
    for (key, (name, ingredients)) in &brands {
        let earlier = old_brands.get(key);
        // A brand keeps the ingredients it had outside the classes (acetaminophen in Percocet).
        let mut all: BTreeSet<String> = ingredients.clone();
        all.extend(earlier.map(|b| strings(&b["ingredients"])).unwrap_or_default());
        if earlier.is_none() {
            diff.brands_added.push(name.clone());
        }
        out_brands.push(OutBrand {
            name: name.clone(),
            ingredients: all.into_iter().collect(),
            confirmation: "V",
            source: with_earlier(earlier.and_then(|b| b["source"].as_str())),
        });
    }
    for (key, brand) in &old_brands {
        if !brands.contains_key(key) {
            diff.brands_removed.push(brand["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    diff.products = out_products.len();
    diff.brands = out_brands.len();
    let map = OutMap {
        description: old["description"].clone(),
        timestamp,
        rxnorm_version,
        classes,
        products: out_products,
        brands: out_brands,
    };
    let text = serde_json::to_string_pretty(&map).map_err(|e| format!("{file}: {e}"))? + "\n";
    crate::content::DrugMap::parse(&text).map_err(|e| format!("the refreshed map is not valid ({e})"))?;
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, &text).map_err(|e| format!("cannot write {}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, path).map_err(|e| format!("cannot replace {file}: {e}"))?;
    Ok(diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_note_is_replaced_and_a_reviewed_source_kept() {
        assert_eq!(reviewed_source("seen in fixtures"), Some("seen in fixtures"));
        assert_eq!(reviewed_source("ValueSet/$expand on x at t; earlier: seen in fixtures"), Some("seen in fixtures"));
        assert_eq!(reviewed_source("ValueSet/$expand on x at t"), None);
    }

    #[test]
    fn replaces_only_the_member() {
        let text =
            "{\n  \"id\": \"x\",\n  \"expansion\": {\n    \"contains\": [{\"code\": \"}\"}]\n  },\n  \"tail\": 1\n}\n";
        let out = replace_member(text, "expansion", &json!({"total": 0})).unwrap();
        assert_eq!(out, "{\n  \"id\": \"x\",\n  \"expansion\": {\n    \"total\": 0\n  },\n  \"tail\": 1\n}\n");
    }
}
