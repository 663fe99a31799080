//! Feedback, the audit trail, analytics and retention, against the real server over HTTP and
//! real databases: every scenario runs on SQLite (a file in a temporary directory) and on
//! PostgreSQL (a fresh database in the cluster named by `LBP_CDS_TEST_POSTGRES_URL`, which
//! `scripts/test` starts). With `LBP_CDS_REQUIRE_POSTGRES=1` a missing cluster fails the
//! PostgreSQL tests; without it they say they were skipped.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{TODAY, TestApp};
use crate::databases::Db;
use lbp_cds::config::Settings;
use lbp_cds::storage::{FeedbackRecord, IssuedCard, Offer, OfferKind, Store};
use serde_json::{Value, json};

fn settings() -> Settings {
    Settings { fixed_today: Some(TODAY), ..Settings::default() }
}

fn fixture(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/requests").join(name);
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON")
}

/// The MRI-for-acute-low-back-pain order: an imaging warning with suggestions and override reasons.
fn imaging_request(hook_instance: &str) -> Value {
    let mut request = fixture("order-select-mri-acute-lbp.json");
    request["hookInstance"] = json!(hook_instance);
    request
}

fn card_of<'a>(response: &'a Value, card_type: &str) -> &'a Value {
    crate::common::card(response, card_type)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()
}

async fn post_feedback(app: &TestApp, service: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(&format!("/cds-services/{service}/feedback")))
        .json(body)
        .send()
        .await
        .expect("feedback sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn store(app: &TestApp) -> &Store {
    &app.records.as_ref().expect("records").store
}

async fn feedback_rows(app: &TestApp, card: &str) -> Vec<FeedbackRecord> {
    store(app).feedback_for(card).await.expect("feedback read")
}

async fn spawn(db: &Db) -> TestApp {
    TestApp::spawn_with_records(settings(), db.storage()).await
}

/// A card the service issued, an offered suggestion and an offered override reason.
async fn issued_imaging_card(app: &TestApp, hook_instance: &str) -> (String, String, (String, String)) {
    let response = app.cards("lbp-order-select", &imaging_request(hook_instance)).await;
    let card = card_of(&response, "imaging-not-indicated");
    let suggestion = card["suggestions"][0]["uuid"].as_str().expect("suggestion uuid").to_owned();
    let reason = &card["overrideReasons"][0];
    (
        card["uuid"].as_str().unwrap().to_owned(),
        suggestion,
        (reason["system"].as_str().unwrap().to_owned(), reason["code"].as_str().unwrap().to_owned()),
    )
}

async fn feedback_round_trip(db: Db) {
    let app = spawn(&db).await;
    let (card, suggestion, _) = issued_imaging_card(&app, "d1a6a0a4-0001-4000-8000-000000000001").await;
    let body = json!({"feedback": [{
        "card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}],
        "outcomeTimestamp": "2026-03-02T10:15:00Z"
    }]});
    let (status, receipt) = post_feedback(&app, "lbp-order-select", &body).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt, json!({"stored": 1, "duplicates": 0, "flagged": 0}));
    let rows = feedback_rows(&app, &card).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].outcome, "accepted");
    assert_eq!(rows[0].service, "lbp-order-select");
    assert_eq!(rows[0].suggestions, vec![(suggestion.clone(), true)]);
    assert!(rows[0].flags.is_empty(), "trusted: {:?}", rows[0].flags);
    assert_eq!(rows[0].outcome_at, 1_772_446_500_000, "2026-03-02T10:15:00Z in Unix ms");

    // The audit row says what was issued, to whom (keyed hashes), from which content and why.
    let audit = store(&app).audit_rows(&card).await.unwrap();
    assert_eq!(audit.len(), 1, "one call, one row");
    let (card_type, indicator, service, hook, hook_instance, _, version, rules, evidence, patient, user, id_form) =
        audit[0].clone();
    assert_eq!((card_type.as_str(), indicator.as_str()), ("imaging-not-indicated", "warning"));
    assert_eq!((service.as_str(), hook.as_str()), ("lbp-order-select", "order-select"));
    assert_eq!(hook_instance, "d1a6a0a4-0001-4000-8000-000000000001");
    let content =
        lbp_cds::content::Content::from_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cards")).unwrap();
    assert_eq!(version, content.version);
    assert_eq!(version.len(), 64);
    let rules: Vec<String> = serde_json::from_str(&rules).unwrap();
    assert!(rules.contains(&"imaging-not-indicated".to_owned()), "{rules:?}");
    let evidence: Vec<String> = serde_json::from_str(&evidence).unwrap();
    assert!(evidence.iter().any(|e| e.starts_with("ServiceRequest/")), "the order is the evidence: {evidence:?}");
    let request = imaging_request("x");
    let patient_id = request["context"]["patientId"].as_str().unwrap();
    assert_eq!(id_form, "hmac-sha256");
    assert_eq!(patient, lbp_cds::audit::keyed_hash(crate::databases::KEY, patient_id));
    assert_ne!(patient, patient_id);
    if let Some(user_id) = request["context"]["userId"].as_str() {
        assert_eq!(user, lbp_cds::audit::keyed_hash(crate::databases::KEY, user_id));
    }
    app.stop().await;
}

async fn repeats_are_idempotent(db: Db) {
    let app = spawn(&db).await;
    let (card, _, (system, code)) = issued_imaging_card(&app, "d1a6a0a4-0002-4000-8000-000000000002").await;
    let item = json!({
        "card": card, "outcome": "overridden",
        "overrideReason": {"reason": {"system": system, "code": code}, "userComment": "seen by spine surgeon"},
        "outcomeTimestamp": "2026-03-02T10:16:00+01:00"
    });
    let (status, first) = post_feedback(&app, "lbp-order-select", &json!({"feedback": [item.clone()]})).await;
    assert_eq!((status, &first["stored"]), (200, &json!(1)), "{first}");
    // The same item again, alone and inside a batch with a new one (clients retry whole batches).
    let (status, again) = post_feedback(&app, "lbp-order-select", &json!({"feedback": [item.clone()]})).await;
    assert_eq!(status, 200);
    assert_eq!(again, json!({"stored": 0, "duplicates": 1, "flagged": 0}));
    let mut later = item.clone();
    later["outcomeTimestamp"] = json!("2026-03-02T11:00:00Z");
    let (status, batch) = post_feedback(&app, "lbp-order-select", &json!({"feedback": [item, later]})).await;
    assert_eq!(status, 200);
    assert_eq!(batch, json!({"stored": 1, "duplicates": 1, "flagged": 0}));
    let rows = feedback_rows(&app, &card).await;
    assert_eq!(rows.len(), 2, "two distinct items: {rows:?}");
    assert_eq!(rows[0].override_code.as_deref(), Some(code.as_str()));
    assert_eq!(rows[0].user_comment.as_deref(), Some("seen by spine surgeon"));
    assert!(rows.iter().all(FeedbackRecord::trusted));
    app.stop().await;
}

async fn unknown_and_unoffered_are_flagged(db: Db) {
    let app = spawn(&db).await;
    let (card, suggestion, _) = issued_imaging_card(&app, "d1a6a0a4-0003-4000-8000-000000000003").await;
    let unknown = "00000000-0000-4000-8000-00000000dead";
    let body = json!({"feedback": [
        {"card": unknown, "outcome": "accepted", "outcomeTimestamp": "2026-03-02T10:00:00Z"},
        {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}, {"id": "made-up-suggestion"}],
         "outcomeTimestamp": "2026-03-02T10:01:00Z"},
        {"card": card, "outcome": "overridden", "overrideReason": {"reason": {"system": "urn:x", "code": "not-offered"}},
         "outcomeTimestamp": "2026-03-02T10:02:00Z"}
    ]});
    let (status, receipt) = post_feedback(&app, "lbp-order-select", &body).await;
    assert_eq!(status, 200, "stored, not refused: {receipt}");
    assert_eq!(receipt, json!({"stored": 3, "duplicates": 0, "flagged": 3}));
    let unknown_rows = feedback_rows(&app, unknown).await;
    assert_eq!(unknown_rows.len(), 1, "an unknown card's feedback is kept");
    assert_eq!(unknown_rows[0].flags, vec!["unknown-card"]);
    let rows = feedback_rows(&app, &card).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].flags, vec!["unoffered-suggestion"]);
    let mut expected = vec![("made-up-suggestion".to_owned(), false), (suggestion.clone(), true)];
    expected.sort();
    assert_eq!(rows[0].suggestions, expected);
    assert_eq!(rows[1].flags, vec!["unoffered-override-reason"]);
    // Feedback posted to another service than the one that issued the card.
    let (status, receipt) = post_feedback(
        &app,
        "lbp-patient-view",
        &json!({"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-03-02T10:03:00Z"}]}),
    )
    .await;
    assert_eq!((status, &receipt["flagged"]), (200, &json!(1)));
    // None of it is trusted, so none of it counts in the analytics.
    let (status, report) = app.get("/analytics?from=2020-01-01&to=2100-01-01").await;
    assert_eq!(status, 200, "{report}");
    let imaging =
        report["cardTypes"].as_array().unwrap().iter().find(|c| c["cardType"] == "imaging-not-indicated").unwrap();
    assert_eq!(
        (imaging["shown"].as_i64(), imaging["accepted"].as_i64(), imaging["noResponse"].as_i64()),
        (Some(1), Some(0), Some(1))
    );
    app.stop().await;
}

async fn malformed_feedback_is_refused(db: Db) {
    let app = spawn(&db).await;
    let cases = [
        (json!({}), "feedback"),
        (json!({"feedback": []}), "no items"),
        (json!({"feedback": [{"outcome": "accepted", "outcomeTimestamp": "2026-03-02T10:00:00Z"}]}), "card"),
        (
            json!({"feedback": [{"card": "a", "outcome": "maybe", "outcomeTimestamp": "2026-03-02T10:00:00Z"}]}),
            "feedback[0].outcome",
        ),
        (json!({"feedback": [{"card": "a", "outcome": "accepted"}]}), "outcomeTimestamp"),
        (
            json!({"feedback": [{"card": "a", "outcome": "accepted", "outcomeTimestamp": "yesterday"}]}),
            "feedback[0].outcomeTimestamp",
        ),
        (
            json!({"feedback": [{"card": "", "outcome": "accepted", "outcomeTimestamp": "2026-03-02T10:00:00Z"}]}),
            "feedback[0].card",
        ),
        (
            json!({"feedback": [{"card": "a", "outcome": "accepted", "acceptedSuggestions": [{"id": 7}],
                "outcomeTimestamp": "2026-03-02T10:00:00Z"}]}),
            "acceptedSuggestions[0].id",
        ),
    ];
    for (body, names) in cases {
        let (status, outcome) = post_feedback(&app, "lbp-order-select", &body).await;
        assert_eq!(status, 400, "{body} -> {outcome}");
        let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap_or_default();
        assert!(diagnostics.contains(names), "{body}: `{diagnostics}` should name `{names}`");
    }
    let (status, _) = post_feedback(&app, "no-such-service", &json!({"feedback": []})).await;
    assert_eq!(status, 404);
    let response = app
        .client
        .post(app.url("/cds-services/lbp-order-select/feedback"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(store(&app).counts().await.unwrap()["feedback"], 0, "nothing was stored");
    app.stop().await;
}

async fn concurrent_writers(db: Db) {
    let app = std::sync::Arc::new(spawn(&db).await);
    let (card, suggestion, _) = issued_imaging_card(&app, "d1a6a0a4-0004-4000-8000-000000000004").await;
    // 40 posts at once: 20 distinct items, each sent twice.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = app.clone();
        let body = json!({"feedback": [{
            "card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}],
            "outcomeTimestamp": format!("2026-03-02T10:{:02}:00Z", i % 20)
        }]});
        tasks.push(tokio::spawn(async move { post_feedback(&app, "lbp-order-select", &body).await }));
    }
    let mut stored = 0;
    let mut duplicates = 0;
    for task in tasks {
        let (status, receipt) = task.await.unwrap();
        assert_eq!(status, 200, "{receipt}");
        stored += receipt["stored"].as_i64().unwrap();
        duplicates += receipt["duplicates"].as_i64().unwrap();
    }
    assert_eq!((stored, duplicates), (20, 20));
    assert_eq!(feedback_rows(&app, &card).await.len(), 20);
    // Audit writes and feedback writes at once: hook calls beside feedback posts.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.cards("lbp-order-select", &imaging_request(&format!("d1a6a0a4-0005-4000-8000-0000000000{i:02}"))).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    std::sync::Arc::into_inner(app).expect("sole owner").stop().await;
    let store = Store::open(&db.url).await.unwrap();
    let counts = store.counts().await.unwrap();
    assert!(counts["audit_cards"] >= 11, "every call's cards are in the audit trail: {counts:?}");
}

async fn restart_keeps_data(db: Db) {
    let app = spawn(&db).await;
    let (card, suggestion, _) = issued_imaging_card(&app, "d1a6a0a4-0006-4000-8000-000000000006").await;
    let body = json!({"feedback": [{"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}],
        "outcomeTimestamp": "2026-03-02T10:00:00Z"}]});
    assert_eq!(post_feedback(&app, "lbp-order-select", &body).await.0, 200);
    app.stop().await;

    let app = spawn(&db).await;
    assert_eq!(feedback_rows(&app, &card).await.len(), 1, "feedback survived the restart");
    // A card issued before the restart is still known: this feedback is trusted.
    let body = json!({"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-03-02T12:00:00Z"}]});
    let (status, receipt) = post_feedback(&app, "lbp-order-select", &body).await;
    assert_eq!((status, receipt), (200, json!({"stored": 1, "duplicates": 0, "flagged": 0})));
    let (_, report) = app.get("/analytics?from=2020-01-01&to=2100-01-01").await;
    let imaging =
        report["cardTypes"].as_array().unwrap().iter().find(|c| c["cardType"] == "imaging-not-indicated").unwrap();
    assert_eq!(imaging["accepted"], 1);
    app.stop().await;
}

async fn migrations_from_empty(db: Db) {
    let store = Store::open(&db.url).await.expect("an empty database is migrated");
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.len(), 4);
    assert!(counts.values().all(|&n| n == 0), "{counts:?}");
    store.close().await;
    // Opening again applies nothing new and keeps the data.
    let store = Store::open(&db.url).await.expect("a migrated database opens again");
    store.write_feedback(&[feedback_record("f1", "c1", 1_000)]).await.unwrap();
    store.close().await;
    let store = Store::open(&db.url).await.unwrap();
    assert_eq!(store.counts().await.unwrap()["feedback"], 1);
}

fn feedback_record(id: &str, card: &str, at: i64) -> FeedbackRecord {
    FeedbackRecord {
        feedback_id: id.into(),
        service: "lbp-order-select".into(),
        card_uuid: card.into(),
        outcome: "accepted".into(),
        outcome_at: at,
        received_at: at,
        override_system: None,
        override_code: None,
        user_comment: None,
        flags: Vec::new(),
        client: String::new(),
        suggestions: vec![("s1".into(), true)],
    }
}

fn issued(card: &str, at: i64) -> IssuedCard {
    IssuedCard {
        audit_id: format!("audit-{card}"),
        card_uuid: card.into(),
        card_type: "pt-referral".into(),
        indicator: "info".into(),
        service: "lbp-patient-view".into(),
        hook: "patient-view".into(),
        hook_instance: "h".into(),
        issued_at: at,
        content_version: "v".into(),
        rule_ids: vec!["pt-referral".into()],
        evidence: Vec::new(),
        patient: "p".into(),
        user: "u".into(),
        id_form: "plain",
        offers: vec![Offer { kind: OfferKind::Suggestion, key: "s1".into(), label: "Refer".into() }],
    }
}

async fn retention(db: Db) {
    let now = lbp_cds::audit::now_ms();
    let day = 86_400_000;
    {
        let store = Store::open(&db.url).await.unwrap();
        store.write_cards(&[issued("old", now - 10 * day), issued("new", now - day)]).await.unwrap();
        store
            .write_feedback(&[
                feedback_record("f-old", "old", now - 10 * day),
                feedback_record("f-new", "new", now - day),
            ])
            .await
            .unwrap();
        store.close().await;
    }
    // The periodic job runs at start-up, then every interval.
    let mut storage = db.storage();
    storage.retention = Some(Duration::from_secs(5 * 86_400));
    storage.retention_interval = Duration::from_millis(200);
    let app = TestApp::spawn_with_records(settings(), storage).await;
    let store = store(&app).clone();
    let mut counts = store.counts().await.unwrap();
    for _ in 0..50 {
        if counts["feedback"] == 1 && counts["audit_cards"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        counts = store.counts().await.unwrap();
    }
    assert_eq!(counts["audit_cards"], 1, "{counts:?}");
    assert_eq!(counts["card_offers"], 1, "{counts:?}");
    assert_eq!(counts["feedback"], 1, "{counts:?}");
    assert_eq!(counts["feedback_suggestions"], 1, "{counts:?}");
    assert!(store.issued("old").await.unwrap().is_none());
    assert!(store.issued("new").await.unwrap().is_some());
    assert_eq!(store.feedback_for("new").await.unwrap().len(), 1);
    // Rows that age past the limit later are deleted by a later run of the job.
    store.write_cards(&[issued("aging", now - 6 * day)]).await.unwrap();
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if store.issued("aging").await.unwrap().is_none() {
            gone = true;
            break;
        }
    }
    assert!(gone, "the job runs again");
    app.stop().await;
}

async fn analytics_per_type_and_suggestion(db: Db) {
    let app = spawn(&db).await;
    // Three imaging warnings: one accepted with a suggestion, one overridden with a reason, one
    // unanswered.
    let mut cards = Vec::new();
    for i in 0..3 {
        cards.push(issued_imaging_card(&app, &format!("d1a6a0a4-0007-4000-8000-00000000000{i}")).await);
    }
    let (accepted, suggestion, _) = &cards[0];
    let (overridden, _, (system, code)) = &cards[1];
    let body = json!({"feedback": [
        {"card": accepted, "outcome": "accepted", "acceptedSuggestions": [{"id": suggestion}], "outcomeTimestamp": now_rfc3339()},
        {"card": overridden, "outcome": "overridden", "overrideReason": {"reason": {"system": system, "code": code}},
         "outcomeTimestamp": now_rfc3339()}
    ]});
    let (status, receipt) = post_feedback(&app, "lbp-order-select", &body).await;
    assert_eq!((status, &receipt["flagged"]), (200, &json!(0)), "{receipt}");

    let today = time::OffsetDateTime::now_utc().date();
    let (status, report) = app.get(&format!("/analytics?from={today}&to={today}")).await;
    assert_eq!(status, 200, "{report}");
    let imaging =
        report["cardTypes"].as_array().unwrap().iter().find(|c| c["cardType"] == "imaging-not-indicated").unwrap();
    assert_eq!(imaging["shown"], 3);
    assert_eq!(imaging["accepted"], 1);
    assert_eq!(imaging["overridden"], 1);
    assert_eq!(imaging["noResponse"], 1);
    assert_eq!(imaging["acceptanceRate"], 0.333);
    let suggestions = imaging["suggestions"].as_array().unwrap();
    let accepted_suggestion = suggestions.iter().find(|s| s["accepted"] == 1).expect("the accepted suggestion");
    assert_eq!(accepted_suggestion["offered"], 3);
    assert!(suggestions.iter().filter(|s| s["accepted"] == 0).all(|s| s["offered"] == 3));
    let reasons = imaging["topOverrideReasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1);
    assert_eq!((&reasons[0]["code"], &reasons[0]["count"]), (&json!(code), &json!(1)));
    assert!(
        reasons[0]["display"].as_str().is_some_and(|d| !d.is_empty() && d != code),
        "the reason's display: {reasons:?}"
    );
    // Outside the range: nothing.
    let (_, empty) = app.get("/analytics?from=2020-01-01&to=2020-01-31").await;
    assert_eq!(empty["cardTypes"], json!([]));
    let (status, _) = app.get("/analytics?from=2020-02-01&to=2020-01-01").await;
    assert_eq!(status, 400);
    let (status, _) = app.get("/analytics?from=yesterday").await;
    assert_eq!(status, 400);
    app.stop().await;

    // The same numbers from the command line, as CSV.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .args(["report", "--database-url", &db.url, "--from", &today.to_string(), "--to", &today.to_string(), "--csv"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let csv = String::from_utf8(output.stdout).unwrap();
    assert!(csv.lines().any(|l| l == "imaging-not-indicated,card,,3,1,1,1,0.333,"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("imaging-not-indicated,override-reason,") && l.ends_with(",1")), "{csv}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .args(["report", "--database-url", &db.url, "--from", &today.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("imaging-not-indicated: shown 3, accepted 1, overridden 1, no response 1, acceptance 33.3%"),
        "{text}"
    );
}

async fn audit_queue_is_written_out_on_shutdown(db: Db) {
    // A batch size of one and a queue deep enough for every call: at shutdown most rows are still
    // queued, and every one must reach the database.
    let mut storage = db.storage();
    storage.audit_batch_size = 1;
    let app = std::sync::Arc::new(TestApp::spawn_with_records(settings(), storage).await);
    let mut tasks = Vec::new();
    for i in 0..30 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let response = app
                .cards("lbp-order-select", &imaging_request(&format!("d1a6a0a4-0008-4000-8000-0000000000{i:02}")))
                .await;
            response["cards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["uuid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }));
    }
    let mut issued = BTreeSet::new();
    for task in tasks {
        issued.extend(task.await.unwrap());
    }
    std::sync::Arc::into_inner(app).expect("sole owner").stop().await;
    let store = Store::open(&db.url).await.unwrap();
    for card in &issued {
        assert!(store.issued(card).await.unwrap().is_some(), "card {card} is in the audit trail");
    }
    assert_eq!(store.counts().await.unwrap()["audit_cards"] as usize, issued.len());
}

async fn audit_overflow_is_counted_and_never_slows_hooks(db: Db) {
    let before = dropped_total(&TestApp::spawn().await).await;
    let mut storage = db.storage();
    storage.audit_queue_capacity = 1;
    storage.audit_batch_size = 1;
    let app = std::sync::Arc::new(TestApp::spawn_with_records(settings(), storage).await);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let (status, _) = app
                .post("lbp-order-select", &imaging_request(&format!("d1a6a0a4-0009-4000-8000-0000000000{i:02}")))
                .await;
            status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200, "a full audit queue never fails a hook call");
    }
    let after = dropped_total(&app).await;
    assert!(after > before, "dropped rows are counted: {before} -> {after}");
    std::sync::Arc::into_inner(app).expect("sole owner").stop().await;
}

async fn dropped_total(app: &TestApp) -> f64 {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("lbp_cds_audit_dropped_total "))
        .map(|v| v.trim().parse().unwrap())
        .expect("lbp_cds_audit_dropped_total is exposed")
}

async fn audit_off_flags_feedback(db: Db) {
    let mut storage = db.storage();
    storage.audit_trail = false;
    let app = TestApp::spawn_with_records(settings(), storage).await;
    let response = app.cards("lbp-order-select", &imaging_request("d1a6a0a4-0010-4000-8000-000000000010")).await;
    let card = card_of(&response, "imaging-not-indicated")["uuid"].as_str().unwrap().to_owned();
    assert!(store(&app).issued(&card).await.unwrap().is_none(), "no audit row with the trail off");
    let (status, receipt) = post_feedback(
        &app,
        "lbp-order-select",
        &json!({"feedback": [{"card": card, "outcome": "accepted", "outcomeTimestamp": "2026-03-02T10:00:00Z"}]}),
    )
    .await;
    assert_eq!((status, receipt), (200, json!({"stored": 1, "duplicates": 0, "flagged": 1})));
    app.stop().await;
}

/// A repeated hook call (same hookInstance) issues the same card again: two audit rows, its
/// offers once, even when both land in one batch; and over HTTP the repeat is audited too.
async fn the_same_card_issued_twice(db: Db) {
    let direct = Store::open(&db.url).await.unwrap();
    let mut again = issued("twice", 2_000);
    again.audit_id = "audit-twice-again".into();
    direct.write_cards(&[issued("twice", 1_000), again]).await.expect("one batch with the card twice");
    assert_eq!(direct.audit_rows("twice").await.unwrap().len(), 2);
    let counts = direct.counts().await.unwrap();
    assert_eq!(counts["card_offers"], 1, "{counts:?}");
    direct.close().await;

    let app = spawn(&db).await;
    let first = app.cards("lbp-order-select", &imaging_request("d1a6a0a4-0011-4000-8000-000000000011")).await;
    let second = app.cards("lbp-order-select", &imaging_request("d1a6a0a4-0011-4000-8000-000000000011")).await;
    assert_eq!(first["cards"], second["cards"], "the same uuids for a repeated call");
    app.records.as_ref().unwrap().audit.as_ref().unwrap().flush().await;
    let card = card_of(&first, "imaging-not-indicated")["uuid"].as_str().unwrap().to_owned();
    assert_eq!(store(&app).audit_rows(&card).await.unwrap().len(), 2, "each issue is its own row");
    app.stop().await;
}

/// Each scenario once per database.
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Db::sqlite()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(db) = super::Db::postgres().await {
                        super::$scenario(db).await
                    }
                }
            )*
        }
    };
}

on_both_databases!(
    feedback_round_trip,
    repeats_are_idempotent,
    unknown_and_unoffered_are_flagged,
    malformed_feedback_is_refused,
    concurrent_writers,
    restart_keeps_data,
    migrations_from_empty,
    retention,
    analytics_per_type_and_suggestion,
    audit_queue_is_written_out_on_shutdown,
    audit_overflow_is_counted_and_never_slows_hooks,
    audit_off_flags_feedback,
    the_same_card_issued_twice,
);
