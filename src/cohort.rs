//! `lbp-cds cohort`: the services run over a population of patient records, to see before
//! go-live what a site's clinicians would be shown (the alert burden) and which codes the value
//! sets miss. Each patient becomes one hook request built the way an EHR would prefetch it, and is
//! answered by the same code path as `lbp-cds evaluate` and the HTTP service.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};
use time::Date;

use crate::config::{ClockArgs, ContentArgs};
use crate::content::{CardType, Content};
use crate::evaluate::{self, Options, Outcome};

#[derive(Debug, Clone, Args)]
pub struct CohortArgs {
    /// A folder of FHIR patient Bundles (`*.json`, one patient each, as population simulators
    /// write them) and/or NDJSON files (`*.ndjson`: one Bundle or one resource per line, as bulk
    /// exports write them).
    pub input: PathBuf,
    /// The order simulated for every patient: none (patient-view), or an order-select for a
    /// lumbar MRI, a lumbar X-ray, an opioid or TENS.
    #[arg(long, value_enum, default_value = "none")]
    pub order: SimulatedOrder,
    /// Folder for `cohort.json` and `cohort.csv` (created if needed).
    #[arg(long, default_value = "cohort-report")]
    pub out: PathBuf,
    /// Worker threads (default: every core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub content: ContentArgs,
    #[command(flatten)]
    pub clock: ClockArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimulatedOrder {
    None,
    LumbarMri,
    LumbarXray,
    Opioid,
    Tens,
}

impl SimulatedOrder {
    /// The draft order an EHR would send on order-select (codes from the shipped value sets).
    fn draft(self, patient_id: &str) -> Option<Value> {
        let subject = json!({"reference": format!("Patient/{patient_id}")});
        let service_request = |system: &str, code: &str, text: &str| {
            json!({"resourceType": "ServiceRequest", "id": "cohort-order", "status": "draft", "intent": "order",
                   "code": {"coding": [{"system": system, "code": code, "display": text}], "text": text}, "subject": subject})
        };
        Some(match self {
            SimulatedOrder::None => return None,
            SimulatedOrder::LumbarMri => {
                service_request("http://www.ama-assn.org/go/cpt", "72148", "MRI lumbar spine without contrast")
            }
            SimulatedOrder::LumbarXray => {
                service_request("http://www.ama-assn.org/go/cpt", "72100", "X-ray lumbosacral spine 2-3 views")
            }
            SimulatedOrder::Tens => service_request("http://www.ama-assn.org/go/cpt", "97014", "TENS, unattended"),
            SimulatedOrder::Opioid => json!({
                "resourceType": "MedicationRequest", "id": "cohort-order", "status": "draft", "intent": "order",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1049221",
                    "display": "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet"}]},
                "subject": subject
            }),
        })
    }
}

/// One patient's resources.
pub struct PatientData {
    pub id: String,
    pub resources: Vec<Value>,
}

/// What one patient got.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientResult {
    pub id: String,
    pub episode: bool,
    /// Active Conditions whose text looks like back pain ("back", "lumb", "sciatic", "spine").
    pub active_back_pain_conditions: usize,
    pub cards: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    triggers: Vec<(String, String)>,
    #[serde(skip)]
    unmatched: Vec<CodeKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct CodeKey {
    pub system: String,
    pub code: String,
    pub display: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardCount {
    #[serde(rename = "type")]
    pub card_type: String,
    pub indicator: String,
    pub patients: usize,
    pub percent: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerCount {
    pub card_type: String,
    pub trigger: String,
    pub patients: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnmatchedCount {
    #[serde(flatten)]
    pub code: CodeKey,
    pub patients: usize,
}

/// The whole report, as written to `cohort.json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub date: String,
    pub order: SimulatedOrder,
    pub patients: usize,
    pub patients_with_episode: usize,
    pub cards: Vec<CardCount>,
    pub red_flag_triggers: Vec<TriggerCount>,
    pub unmatched_back_pain_codes: Vec<UnmatchedCount>,
    pub per_patient: Vec<PatientResult>,
}

/// Runs the command; the error is a message for the user.
pub fn run(args: &CohortArgs) -> Result<(), String> {
    let content = args.content.load().map_err(|e| e.to_string())?;
    let today = args.clock.today.unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let patients = load(&args.input, jobs)?;
    if patients.is_empty() {
        return Err(format!("no patients found in {}", args.input.display()));
    }
    let progress = (!args.quiet && std::io::stderr().is_terminal()).then(|| Progress::new(patients.len()));
    let results = evaluate_all(&content, &patients, today, args.order, jobs, progress.as_ref());
    if let Some(progress) = progress {
        progress.finish();
    }
    let report = summarise(&content, results, today, args.order);
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let json_path = args.out.join("cohort.json");
    let csv_path = args.out.join("cohort.csv");
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, json + "\n").map_err(|e| format!("cannot write {}: {e}", json_path.display()))?;
    std::fs::write(&csv_path, csv(&report)).map_err(|e| format!("cannot write {}: {e}", csv_path.display()))?;
    print!("{}", table(&report));
    println!("\nwritten: {} and {}", json_path.display(), csv_path.display());
    Ok(())
}

/// Reads every `*.json` Bundle and `*.ndjson` file of a folder (or one file), grouping loose
/// resources by the patient they belong to. Bundle files are parsed `jobs` at a time: on a large
/// population, reading JSON is most of the work.
pub fn load(input: &Path, jobs: usize) -> Result<Vec<PatientData>, String> {
    let mut files: Vec<PathBuf> = if input.is_dir() {
        std::fs::read_dir(input)
            .map_err(|e| format!("cannot read {}: {e}", input.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| matches!(path.extension().and_then(|e| e.to_str()), Some("json" | "ndjson")))
            .collect()
    } else {
        vec![input.to_path_buf()]
    };
    files.sort();
    let is_ndjson = |path: &PathBuf| path.extension().and_then(|e| e.to_str()) == Some("ndjson");
    let bundle_files: Vec<&PathBuf> = files.iter().filter(|path| !is_ndjson(path)).collect();
    let mut bundles = Vec::new();
    for parsed in parallel_map(&bundle_files, jobs, |path| read_bundle(path)) {
        bundles.push(parsed?);
    }
    let mut loose: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for path in files.iter().filter(|path| is_ndjson(path)) {
        let name = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
        for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| format!("cannot read {name}: {e}"))?;
            if line.trim().is_empty() {
                continue;
            }
            let value: Value =
                serde_json::from_str(&line).map_err(|e| format!("{name} line {}: not JSON ({e})", number + 1))?;
            if value["resourceType"] == "Bundle" {
                bundles.push(value);
            } else if let Some(patient) = patient_of(&value) {
                loose.entry(patient).or_default().push(value);
            }
        }
    }
    for mut bundle in bundles {
        let resources: Vec<Value> = match bundle.get_mut("entry").and_then(Value::as_array_mut) {
            Some(entries) => {
                entries.iter_mut().filter_map(|entry| entry.get_mut("resource").map(Value::take)).collect()
            }
            None => Vec::new(),
        };
        let owner = resources.iter().find(|r| r["resourceType"] == "Patient").and_then(patient_of);
        for resource in resources {
            if let Some(patient) = patient_of(&resource).or_else(|| owner.clone()) {
                loose.entry(patient).or_default().push(resource);
            }
        }
    }
    Ok(loose
        .into_iter()
        .filter(|(_, resources)| resources.iter().any(|r| r["resourceType"] == "Patient"))
        .map(|(id, resources)| PatientData { id, resources })
        .collect())
}

fn read_bundle(path: &Path) -> Result<Value, String> {
    let name = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("{name}: not JSON ({e})"))?;
    if value["resourceType"] != "Bundle" {
        return Err(format!("{name}: not a FHIR Bundle"));
    }
    Ok(value)
}

/// `f` over `items` on `jobs` threads, results in the order of `items` (CPU work: plain
/// threads taking the next item from a shared counter).
fn parallel_map<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else { break };
                    let result = f(item);
                    results.lock().unwrap_or_else(|e| e.into_inner()).push((index, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// The id of the patient a resource belongs to: its own id for a Patient, else its subject or
/// patient reference (`Patient/<id>` or `urn:uuid:<id>`, as transaction Bundles write them).
/// A Medication belongs to no patient; it is kept with the patient whose Bundle holds it.
fn patient_of(resource: &Value) -> Option<String> {
    if resource["resourceType"] == "Patient" {
        return resource["id"].as_str().map(str::to_owned);
    }
    let reference = resource["subject"]["reference"].as_str().or_else(|| resource["patient"]["reference"].as_str())?;
    let id = reference.rsplit_once("Patient/").map(|(_, id)| id).or_else(|| reference.strip_prefix("urn:uuid:"))?;
    Some(id.split('/').next().unwrap_or(id).to_owned())
}

/// Every patient through the services, `jobs` at a time.
pub fn evaluate_all(
    content: &Content,
    patients: &[PatientData],
    today: Date,
    order: SimulatedOrder,
    jobs: usize,
    progress: Option<&Progress>,
) -> Vec<PatientResult> {
    parallel_map(patients, jobs, |patient| {
        let result = evaluate_patient(content, patient, today, order);
        if let Some(progress) = progress {
            progress.tick();
        }
        result
    })
}

/// One patient as one hook request: prefetch filled the way the services' templates ask for it.
pub fn request_for(patient: &PatientData, order: SimulatedOrder) -> Value {
    // Transaction Bundles (population simulators) point at the patient as `urn:uuid:<id>`; a FHIR
    // server answers with `Patient/<id>`, as the services expect.
    let resources: Vec<Value> = patient
        .resources
        .iter()
        .map(|resource| {
            let mut resource = resource.clone();
            for member in ["subject", "patient"] {
                if let Some(reference) = resource.get_mut(member).and_then(|m| m.get_mut("reference"))
                    && reference.as_str().and_then(|r| r.strip_prefix("urn:uuid:")) == Some(patient.id.as_str())
                {
                    *reference = json!(format!("Patient/{}", patient.id));
                }
            }
            resource
        })
        .collect();
    let of_type = |types: &[&str]| -> Vec<&Value> {
        resources.iter().filter(|r| types.iter().any(|t| r["resourceType"] == *t)).collect()
    };
    let bundle = |resources: Vec<&Value>| {
        let entry: Vec<Value> = resources
            .into_iter()
            .map(|r| {
                let mode = if r["resourceType"] == "Medication" { "include" } else { "match" };
                json!({"resource": r, "search": {"mode": mode}})
            })
            .collect();
        json!({"resourceType": "Bundle", "type": "searchset", "total": entry.len(), "entry": entry})
    };
    let patient_resource = of_type(&["Patient"]).first().map(|p| (*p).clone()).unwrap_or(Value::Null);
    let prefetch = json!({
        "patient": patient_resource,
        "conditions": bundle(of_type(&["Condition"])),
        "observations": bundle(of_type(&["Observation"])),
        "medications": bundle(of_type(&["MedicationRequest", "Medication"])),
        "procedures": bundle(of_type(&["Procedure"])),
        "serviceRequests": bundle(of_type(&["ServiceRequest"])),
        "questionnaireResponses": bundle(of_type(&["QuestionnaireResponse"])),
        "allergies": bundle(of_type(&["AllergyIntolerance"])),
    });
    let mut context = json!({"userId": "Practitioner/cohort", "patientId": patient.id});
    let hook = match order.draft(&patient.id) {
        None => "patient-view",
        Some(draft) => {
            let reference = format!("{}/cohort-order", draft["resourceType"].as_str().unwrap_or("ServiceRequest"));
            context["draftOrders"] =
                json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]});
            context["selections"] = json!([reference]);
            "order-select"
        }
    };
    json!({"hook": hook, "hookInstance": format!("cohort-{}", patient.id), "context": context, "prefetch": prefetch})
}

fn evaluate_patient(content: &Content, patient: &PatientData, today: Date, order: SimulatedOrder) -> PatientResult {
    let mut result = PatientResult {
        id: patient.id.clone(),
        episode: false,
        active_back_pain_conditions: 0,
        cards: Vec::new(),
        error: None,
        triggers: Vec::new(),
        unmatched: Vec::new(),
    };
    let body = request_for(patient, order);
    let hook = body["hook"].as_str().unwrap_or_default();
    let Some(service) = content.services.iter().find(|s| s.hook.as_str() == hook) else {
        result.error = Some(format!("no service answers {hook}"));
        return result;
    };
    let bytes = match serde_json::to_vec(&body) {
        Ok(bytes) => bytes,
        Err(error) => {
            result.error = Some(error.to_string());
            return result;
        }
    };
    match evaluate::evaluate_body(content, service, &bytes, today, &Options::default()) {
        Ok(outcome) => describe(content, &outcome, &mut result),
        Err(error) => result.error = Some(error.to_string()),
    }
    result
}

fn describe(content: &Content, outcome: &Outcome, result: &mut PatientResult) {
    result.episode = outcome.assessment.episode.is_some();
    result.cards =
        outcome.response.cards.iter().filter_map(|card| card.source.topic.as_ref().map(|t| t.code.clone())).collect();
    for flag in &outcome.assessment.red_flags {
        let card_type = flag.category.card_type();
        if !result.cards.iter().any(|c| c == card_type.key()) {
            continue;
        }
        for evidence in &flag.evidence {
            // "ICD-10-CM G83.4 “Cauda equina syndrome”, since ..." -> the code and its name.
            let trigger = match evidence.description.find('”') {
                Some(end) => evidence.description[..end + '”'.len_utf8()].to_owned(),
                None => flag.rule.clone(),
            };
            result.triggers.push((card_type.key().to_owned(), trigger));
        }
    }
    for condition in outcome.record.conditions.iter().filter(|c| c.counts()) {
        let mut text = condition.code.label().to_lowercase();
        for code in &condition.code.codes {
            text.push(' ');
            text.push_str(&code.display.as_deref().unwrap_or_default().to_lowercase());
        }
        if !["back", "lumb", "sciatic", "spine"].iter().any(|word| text.contains(word)) {
            continue;
        }
        if condition.is_active() {
            result.active_back_pain_conditions += 1;
        }
        let matched = content.value_sets.iter().any(|set| set.match_concept(&condition.code).is_some());
        if !matched {
            for code in &condition.code.codes {
                result.unmatched.push(CodeKey {
                    system: code.system.clone().unwrap_or_default(),
                    code: code.code.clone().unwrap_or_default(),
                    display: code.display.clone().unwrap_or_else(|| condition.code.label()),
                });
            }
        }
    }
}

pub fn summarise(content: &Content, results: Vec<PatientResult>, today: Date, order: SimulatedOrder) -> Report {
    let patients = results.len();
    let percent = |n: usize| if patients == 0 { 0.0 } else { (n as f64 * 1000.0 / patients as f64).round() / 10.0 };
    let mut cards: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut triggers: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
    let mut unmatched: BTreeMap<CodeKey, BTreeSet<&str>> = BTreeMap::new();
    for result in &results {
        for card in &result.cards {
            cards.entry(card.clone()).or_default().insert(&result.id);
        }
        for trigger in &result.triggers {
            triggers.entry(trigger.clone()).or_default().insert(&result.id);
        }
        for code in &result.unmatched {
            unmatched.entry(code.clone()).or_default().insert(&result.id);
        }
    }
    let mut card_counts: Vec<CardCount> = cards
        .into_iter()
        .map(|(card_type, ids)| CardCount {
            indicator: CardType::parse(&card_type)
                .map(|c| content.card(c).indicator.as_str().to_owned())
                .unwrap_or_default(),
            card_type,
            patients: ids.len(),
            percent: percent(ids.len()),
        })
        .collect();
    card_counts.sort_by(|a, b| b.patients.cmp(&a.patients).then(a.card_type.cmp(&b.card_type)));
    let mut red_flag_triggers: Vec<TriggerCount> = triggers
        .into_iter()
        .map(|((card_type, trigger), ids)| TriggerCount { card_type, trigger, patients: ids.len() })
        .collect();
    red_flag_triggers.sort_by(|a, b| a.card_type.cmp(&b.card_type).then(b.patients.cmp(&a.patients)));
    let unmatched_back_pain_codes =
        unmatched.into_iter().map(|(code, ids)| UnmatchedCount { code, patients: ids.len() }).collect();
    Report {
        date: today.to_string(),
        order,
        patients,
        patients_with_episode: results.iter().filter(|r| r.episode).count(),
        cards: card_counts,
        red_flag_triggers,
        unmatched_back_pain_codes,
        per_patient: results,
    }
}

/// The report as a table for people (also pasted into the README).
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let pct = |n: usize| if report.patients == 0 { 0.0 } else { n as f64 * 100.0 / report.patients as f64 };
    let order = serde_json::to_value(report.order).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let _ = writeln!(out, "cohort on {}, simulated order: {order}", report.date);
    let _ = writeln!(out, "\n| measure | patients | % |\n|---|---|---|");
    let _ = writeln!(out, "| patients | {} | 100.0 |", report.patients);
    let _ = writeln!(
        out,
        "| with a low back pain episode | {} | {:.1} |",
        report.patients_with_episode,
        pct(report.patients_with_episode)
    );
    let errors = report.per_patient.iter().filter(|p| p.error.is_some()).count();
    if errors > 0 {
        let _ = writeln!(out, "| could not be evaluated | {errors} | {:.1} |", pct(errors));
    }
    let _ = writeln!(out, "\n| card | indicator | patients | % |\n|---|---|---|---|");
    if report.cards.is_empty() {
        let _ = writeln!(out, "| (no cards) | | 0 | 0.0 |");
    }
    for card in &report.cards {
        let _ = writeln!(out, "| {} | {} | {} | {:.1} |", card.card_type, card.indicator, card.patients, card.percent);
    }
    let _ = writeln!(out, "\n| red flag | triggered by | patients |\n|---|---|---|");
    if report.red_flag_triggers.is_empty() {
        let _ = writeln!(out, "| (none) | | 0 |");
    }
    for trigger in &report.red_flag_triggers {
        let _ = writeln!(out, "| {} | {} | {} |", trigger.card_type, trigger.trigger, trigger.patients);
    }
    let _ = writeln!(out, "\n| unmatched back-pain-looking Condition code | display | patients |\n|---|---|---|");
    if report.unmatched_back_pain_codes.is_empty() {
        let _ = writeln!(out, "| (none) | | 0 |");
    }
    for code in &report.unmatched_back_pain_codes {
        let _ =
            writeln!(out, "| {} {} | {} | {} |", code.code.system, code.code.code, code.code.display, code.patients);
    }
    out
}

/// The report as CSV rows: `section,key,detail,patients,percent`.
pub fn csv(report: &Report) -> String {
    // Code texts come from EHR data: the analytics report's quoting, which also neutralises
    // spreadsheet formulas.
    let field = crate::analytics::csv;
    let pct =
        |n: usize| if report.patients == 0 { 0.0 } else { (n as f64 * 1000.0 / report.patients as f64).round() / 10.0 };
    let mut out = String::from("section,key,detail,patients,percent\n");
    let _ = writeln!(out, "population,patients,{},{},100.0", report.date, report.patients);
    let _ = writeln!(
        out,
        "population,with-episode,,{},{}",
        report.patients_with_episode,
        pct(report.patients_with_episode)
    );
    for card in &report.cards {
        let _ = writeln!(
            out,
            "card,{},{},{},{}",
            field(&card.card_type),
            field(&card.indicator),
            card.patients,
            card.percent
        );
    }
    for trigger in &report.red_flag_triggers {
        let _ = writeln!(
            out,
            "red-flag-trigger,{},{},{},{}",
            field(&trigger.card_type),
            field(&trigger.trigger),
            trigger.patients,
            pct(trigger.patients)
        );
    }
    for code in &report.unmatched_back_pain_codes {
        let key = format!("{}|{}", code.code.system, code.code.code);
        let _ = writeln!(
            out,
            "unmatched-back-pain-code,{},{},{},{}",
            field(&key),
            field(&code.code.display),
            code.patients,
            pct(code.patients)
        );
    }
    out
}

/// A progress bar on stderr for long runs (only on a terminal).
pub struct Progress {
    total: usize,
    done: AtomicUsize,
    started: std::time::Instant,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress { total, done: AtomicUsize::new(0), started: std::time::Instant::now() }
    }

    fn tick(&self) {
        // Count under the stderr lock, so the lines come out in order.
        let mut stderr = std::io::stderr().lock();
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let width = 30;
        let filled = done * width / self.total.max(1);
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(0.001);
        let _ = write!(
            stderr,
            "\r[{}{}] {done}/{} patients, {rate:.0}/s",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.total
        );
        let _ = stderr.flush();
    }

    fn finish(&self) {
        eprintln!();
    }
}
