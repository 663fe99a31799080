//! Brief cards (issue 16): every stored fixture through the real server, each card's `detail` in
//! the brief form (the default) held to the brevity limits, with no FHIR references, rule ids or
//! links in it, the guideline and the console behind absolute card links, and each card's rules
//! and references kept in the extension. `--card-detail full` keeps the long form, and the two
//! forms make the same decisions.

use crate::common::*;
use lbp_cds::config::Settings;
use lbp_cds::content::{CardDetail, CardType, Content};
use serde_json::Value;

const PUBLIC_URL: &str = "https://cds.example.org/lbp";
/// Characters of `detail` before the list of what was found in the record.
const BRIEF_CHARS: usize = 350;
const BRIEF_BULLETS: usize = 3;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every fixture the server answers with 200, with its service.
fn fixtures() -> Vec<(String, String, Vec<u8>)> {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("expected.json")).unwrap()).unwrap();
    assert_eq!(expected["today"], TODAY.to_string(), "fixtures are dated for the test date");
    let fixtures: Vec<(String, String, Vec<u8>)> = expected["requests"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, want)| want["status"] == 200)
        .map(|(name, want)| {
            let body = std::fs::read(root().join("requests").join(format!("{name}.json"))).unwrap();
            (name.clone(), want["service"].as_str().unwrap().to_owned(), body)
        })
        .collect();
    assert!(fixtures.len() >= 40, "every answered fixture: {}", fixtures.len());
    fixtures
}

/// `ResourceType/id` anywhere in the text (as the regex `\b[A-Z][A-Za-z]+/[A-Za-z0-9\-.]+`).
fn fhir_reference(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    for (slash, _) in chars.iter().enumerate().filter(|(_, c)| **c == '/') {
        let mut start = slash;
        while start > 0 && chars[start - 1].is_ascii_alphabetic() {
            start -= 1;
        }
        let boundary = start == 0 || !chars[start - 1].is_alphanumeric();
        let kind = &chars[start..slash];
        let id_len =
            chars[slash + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '-' || **c == '.').count();
        if boundary && kind.len() >= 2 && kind[0].is_ascii_uppercase() && id_len > 0 {
            return Some(chars[start..slash + 1 + id_len].iter().collect());
        }
    }
    None
}

/// The part of a brief detail before the list of what was found (or before the data note).
fn before_facts<'a>(detail: &'a str, content: &Content) -> &'a str {
    let heading = content.texts.brief.facts_heading.render(|_| None);
    let note = content.texts.brief.data_note.literal_prefix().to_owned();
    let cut = [detail.find(heading.trim()), (!note.is_empty()).then(|| detail.find(note.trim())).flatten()]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(detail.len());
    detail[..cut].trim_end()
}

fn percentile(values: &mut [usize]) -> (usize, usize) {
    values.sort_unstable();
    (values[values.len() / 2], *values.last().unwrap_or(&0))
}

#[tokio::test]
async fn every_fixture_card_is_brief_with_plain_evidence_and_absolute_links() {
    let app = TestApp::spawn_with(Settings {
        fixed_today: Some(TODAY),
        public_url: Some(PUBLIC_URL.to_owned()),
        ..Settings::default()
    })
    .await;
    let content = Content::embedded().unwrap();
    let every_rule: Vec<&str> = content
        .rules
        .red_flags
        .iter()
        .map(|r| r.id.as_str())
        .chain(content.rules.cautions.iter().map(|c| c.id.as_str()))
        .collect();
    let mut failures = Vec::new();
    let (mut before_lengths, mut lengths) = (Vec::new(), Vec::new());
    for (name, service, body) in fixtures() {
        let (status, response) = app.post_raw(&service, body).await;
        assert_eq!(status, 200, "{name}: {response}");
        assert_valid_response(&response);
        let provenance = &response["extension"]["lbp-cds"]["cards"];
        let cautions = nsaid_cautions(&response);
        for card in response["cards"].as_array().unwrap() {
            let card_type = card["source"]["topic"]["code"].as_str().unwrap();
            let mut fail = |what: String| failures.push(format!("{name} {card_type}: {what}"));
            let detail = card["detail"].as_str().unwrap_or_default();
            let before = before_facts(detail, &content);
            let bullets = before.lines().filter(|l| l.trim_start().starts_with("- ")).count();
            before_lengths.push(before.chars().count());
            lengths.push(detail.chars().count());
            if bullets > BRIEF_BULLETS {
                fail(format!("{bullets} bullets before the evidence:\n{detail}"));
            }
            if before.chars().count() > BRIEF_CHARS {
                fail(format!("{} characters before the evidence:\n{detail}", before.chars().count()));
            }
            if let Some(reference) = fhir_reference(detail) {
                fail(format!("FHIR reference `{reference}` in detail:\n{detail}"));
            }
            if detail.contains("http") || detail.contains("](") {
                fail(format!("a link in detail:\n{detail}"));
            }
            let own = &provenance[card["uuid"].as_str().unwrap()];
            let rules: Vec<&str> = own["rules"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            // Rule ids that are one plain word ("osteoporosis") may appear as words; hyphenated
            // ids ("cauda-equina-diagnosis") and cited rules ("rule `...`") may not.
            let cited = detail.contains("rule `");
            if let Some(rule) =
                every_rule.iter().chain(&rules).find(|rule| cited || (rule.contains('-') && detail.contains(**rule)))
            {
                fail(format!("rule id `{rule}` in detail:\n{detail}"));
            }
            if own["cardType"] != card_type || rules.is_empty() {
                fail(format!("no provenance in the extension: {own}"));
            }
            let references = own["references"].as_array().cloned().unwrap_or_default();
            if references.iter().any(|r| fhir_reference(r.as_str().unwrap_or_default()).is_none()) {
                fail(format!("provenance references are not FHIR references: {own}"));
            }
            let links: Vec<&str> =
                card["links"].as_array().into_iter().flatten().filter_map(|l| l["url"].as_str()).collect();
            if links.is_empty() || links.iter().any(|url| !url.starts_with("https://")) {
                fail(format!("links must exist and be absolute: {links:?}"));
            }
            let console = format!("{PUBLIC_URL}/console/content/cards/{card_type}");
            if !links.contains(&console.as_str()) {
                fail(format!("no link to {console}: {links:?}"));
            }
            if !cautions.is_empty() && recommends_nsaid(card, &content) {
                fail(format!("advises an NSAID despite {cautions:?}:\n{detail}"));
            }
        }
    }
    assert!(failures.is_empty(), "brief cards failed:\n{}", failures.join("\n\n"));
    let (median_before, max_before) = percentile(&mut before_lengths);
    let (median, max) = percentile(&mut lengths);
    eprintln!(
        "brief detail over {} cards: before the evidence median {median_before}, max {max_before}; whole median {median}, max {max}",
        lengths.len()
    );
    app.stop().await;
}

/// What a card says in plain words: the finding's name and date, the order "ordered today", the
/// data note in one line; its FHIR references only in the extension.
#[tokio::test]
async fn evidence_is_named_and_dated_and_data_notes_take_one_line() {
    let app = TestApp::spawn_with(Settings { fixed_today: Some(TODAY), ..Settings::default() }).await;
    let post = |name: &str, service: &str| {
        let body = std::fs::read(root().join("requests").join(format!("{name}.json"))).unwrap();
        let app = &app;
        let service = service.to_owned();
        async move { app.post_raw(&service, body).await.1 }
    };
    let response = post("patient-view-cauda-equina", "lbp-patient-view").await;
    let ces = card(&response, "red-flag-cauda-equina");
    let detail = ces["detail"].as_str().unwrap();
    assert!(detail.contains("- Cauda equina syndrome, diagnosed 2026-02-27"), "{detail}");
    assert!(detail.contains("- Low back pain, unspecified, diagnosed 2026-02-23"), "{detail}");
    let own = &response["extension"]["lbp-cds"]["cards"][ces["uuid"].as_str().unwrap()];
    assert_eq!(own["rules"], serde_json::json!(["cauda-equina-diagnosis"]), "{own}");
    assert_eq!(
        own["references"],
        serde_json::json!(["Condition/patient-view-cauda-equina-ces", "Condition/patient-view-cauda-equina-lbp"]),
        "{own}"
    );
    // Without a public URL there is no console link (card links must be absolute): only the guideline.
    let links = ces["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["url"], "https://acsearch.acr.org/docs/69483/Narrative/");

    let response = post("order-select-mri-acute-lbp", "lbp-order-select").await;
    let detail = card(&response, "imaging-not-indicated")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("- MRI lumbar spine without contrast, ordered today"), "{detail}");
    assert!(detail.contains("symptoms under 6 weeks (2 weeks)"), "{detail}");

    let response = post("broken-resources", "lbp-order-select").await;
    let detail = card(&response, "imaging-conditional")["detail"].as_str().unwrap().to_owned();
    let notes: Vec<&str> = detail.lines().filter(|l| l.starts_with("*Data incomplete")).collect();
    assert_eq!(notes, ["*Data incomplete:* conditions: 2 unreadable; observations: 1 unreadable."], "{detail}");
    app.stop().await;
}

/// `--card-detail full` gives today's long form; both forms decide the same: the same cards,
/// indicators, summaries, suggestions and override reasons for every fixture.
#[tokio::test]
async fn full_detail_keeps_the_long_form_and_the_same_decisions() {
    let brief = TestApp::spawn_with(Settings {
        fixed_today: Some(TODAY),
        public_url: Some(PUBLIC_URL.to_owned()),
        ..Settings::default()
    })
    .await;
    let full = TestApp::spawn_with(Settings {
        fixed_today: Some(TODAY),
        public_url: Some(PUBLIC_URL.to_owned()),
        card_detail: CardDetail::Full,
        ..Settings::default()
    })
    .await;
    let content = Content::embedded().unwrap();
    let decisions = |response: &Value| -> Vec<Value> {
        response["cards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|card| {
                let mut card = card.clone();
                let object = card.as_object_mut().unwrap();
                object.remove("detail");
                object.remove("links");
                card
            })
            .collect()
    };
    for (name, service, body) in fixtures() {
        let (_, short) = brief.post_raw(&service, body.clone()).await;
        let (_, long) = full.post_raw(&service, body).await;
        assert_eq!(decisions(&short), decisions(&long), "{name}: the forms decide differently");
        assert!(long["extension"]["lbp-cds"].get("cards").is_none(), "{name}: the long form cites in its text");
        for card in long["cards"].as_array().unwrap() {
            let card_type = CardType::parse(card["source"]["topic"]["code"].as_str().unwrap()).unwrap();
            let template = content.card(card_type);
            let urls: Vec<&str> = card["links"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|l| l["type"] == "absolute")
                .map(|l| l["url"].as_str().unwrap())
                .collect();
            let want: Vec<&str> = template.links.iter().map(|l| l.url.as_str()).collect();
            assert_eq!(urls, want, "{name}: the long form keeps the card file's links");
        }
    }
    let (_, long) = full.post_raw("lbp-patient-view", read("patient-view-cauda-equina")).await;
    let detail = card(&long, "red-flag-cauda-equina")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("rule `cauda-equina-diagnosis`") && detail.contains("`Condition/"), "{detail}");
    assert!(detail.contains("](https://"), "the long form keeps its guideline links: {detail}");
    brief.stop().await;
    full.stop().await;
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(root().join("requests").join(format!("{name}.json"))).unwrap()
}

/// The brief form is checked at start-up: a link in it stops the service, naming file and field;
/// a placeholder the card type does not have stops it in either form.
#[test]
fn start_up_refuses_links_in_the_brief_form_and_unknown_placeholders() {
    let dir = std::env::temp_dir().join(format!("lbp-cds-brief-{}", uuid::Uuid::new_v4()));
    copy_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cards"), &dir);
    let file = dir.join("red-flag-cancer.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let with_link = original.replacen(
        "**If cancer may be causing",
        "[ACR](https://acsearch.acr.org/) **If cancer may be causing",
        1,
    );
    assert_ne!(with_link, original, "the brief detail starts as expected");
    std::fs::write(&file, &with_link).unwrap();
    let error = Content::from_dir(&dir).unwrap_err();
    assert_eq!((error.file.as_str(), error.field.as_str()), ("red-flag-cancer.toml", "detail"), "{error}");
    assert!(error.message.contains("links"), "{error}");

    std::fs::write(&file, original.replacen("{findings}", "{findings} {order_name}", 1)).unwrap();
    let error = Content::from_dir(&dir).unwrap_err();
    assert_eq!(error.field, "detail_full", "{error}");
    assert!(error.message.contains("order_name"), "{error}");
    std::fs::write(&file, &original).unwrap();

    let file = dir.join("imaging-indicated.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let variant_link = original.replacen("it suits these red flags.", "see https://acsearch.acr.org/.", 1);
    assert_ne!(variant_link, original, "the brief advice reads as expected");
    std::fs::write(&file, variant_link).unwrap();
    let error = Content::from_dir(&dir).unwrap_err();
    assert_eq!(error.field, "variants.preferred.advice", "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `evaluate` command takes the same setting: brief by default, `--card-detail full` the long
/// form, and a wrong value is refused with the values it takes.
#[test]
fn evaluate_takes_the_card_detail_setting() {
    let run = |extra: &[&str]| {
        let fixture = root().join("requests").join("patient-view-cauda-equina.json");
        let mut args = vec!["evaluate", "--json", "--today", "2026-03-02"];
        args.extend(extra);
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
            .args(args)
            .arg(fixture)
            .env_remove("LBP_CDS_CARD_DETAIL")
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), output.stderr)
    };
    let detail = |json: &str| -> String {
        let response: Value = serde_json::from_str(json).unwrap();
        card(&response, "red-flag-cauda-equina")["detail"].as_str().unwrap().to_owned()
    };
    let (ok, brief, _) = run(&["--public-url", "https://cds.example.org"]);
    assert!(ok);
    assert!(!detail(&brief).contains("Condition/") && detail(&brief).contains("diagnosed 2026-02-27"), "{brief}");
    assert!(brief.contains("https://cds.example.org/console/content/cards/red-flag-cauda-equina"), "{brief}");
    let (ok, full, _) = run(&["--card-detail", "full"]);
    assert!(ok);
    assert!(detail(&full).contains("`Condition/patient-view-cauda-equina-ces`"), "{full}");
    let (ok, _, stderr) = run(&["--card-detail", "short"]);
    assert!(!ok);
    assert!(String::from_utf8_lossy(&stderr).contains("expected `brief` or `full`"));
}
