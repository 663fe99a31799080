//! `lbp-cds content expand`: refreshes the expansion of every intensional value set in a content
//! directory from a FHIR terminology server (`ValueSet/$expand`, paged), so that the codes the
//! service matches follow the definition and the code-system release the site uses.
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
    /// Only these value sets (ids; repeatable). Default: every value set with a `compose`.
    #[arg(long = "value-set")]
    pub value_sets: Vec<String>,
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
    let diffs = runtime.block_on(expand_dir(&args))?;
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
    let url = format!("{base}/ValueSet/$expand");
    let mut codes = Vec::new();
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
        let where_ = format!("{file} compose.include[{index}]: {url}");
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
        let done = match total {
            Some(total) => offset >= total,
            None => count < args.page_size,
        };
        if done || count == 0 {
            return Ok(codes);
        }
    }
    Err(format!("{file} compose.include[{index}]: more than {} pages: raise --max-pages", args.max_pages))
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
    let earlier = old_extension("urn:lbp-cds:source").and_then(|e| e["valueString"].as_str().map(str::to_owned));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_member() {
        let text =
            "{\n  \"id\": \"x\",\n  \"expansion\": {\n    \"contains\": [{\"code\": \"}\"}]\n  },\n  \"tail\": 1\n}\n";
        let out = replace_member(text, "expansion", &json!({"total": 0})).unwrap();
        assert_eq!(out, "{\n  \"id\": \"x\",\n  \"expansion\": {\n    \"total\": 0\n  },\n  \"tail\": 1\n}\n");
    }
}
