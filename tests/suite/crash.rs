//! A 200 for feedback means the rows are on disk: feedback is posted under load to the real
//! binary, the process is killed with SIGKILL (no shutdown, no flush), restarted on the same
//! database, and every post that got a 200 must be there. On SQLite and on PostgreSQL.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::databases::Db;
use lbp_cds::storage::Store;
use serde_json::json;

struct Server {
    child: Child,
    base: String,
}

/// The caller kills and waits for the child it gets back.
#[allow(clippy::zombie_processes)]
async fn start(db: &Db, key_file: &std::path::Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lbp-cds"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--today", "2026-03-02", "--database-url", &db.url])
        .arg("--audit-id-key-file")
        .arg(key_file)
        // The posts name cards nobody issued: with PostgreSQL each would otherwise wait for
        // another replica's audit row (tests/fleet.rs covers that wait); this test is about what
        // a 200 means.
        .args(["--feedback-card-wait-ms", "0"])
        .env("LBP_CDS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let client = lbp_cds::outbound::client().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Server { child, base };
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not become healthy within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn feedback_survives_sigkill(db: Db) {
    let key_dir = crate::common::tempdir();
    let key_file = key_dir.join("id.key");
    std::fs::write(&key_file, crate::databases::KEY).unwrap();

    let mut server = start(&db, &key_file).await;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (acknowledged, stop, url) =
            (acknowledged.clone(), stop.clone(), format!("{}/cds-services/lbp-order-select/feedback", server.base));
        workers.push(tokio::spawn(async move {
            let client = lbp_cds::outbound::client().unwrap();
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let card = uuid::Uuid::new_v4().to_string();
                let body = json!({"feedback": [{"card": card, "outcome": "accepted",
                    "outcomeTimestamp": format!("2026-03-02T10:00:{:02}Z", (worker * 7 + sent) % 60)}]});
                sent += 1;
                match client.post(&url).json(&body).send().await {
                    Ok(response) if response.status().as_u16() == 200 => acknowledged.lock().unwrap().push(card),
                    Ok(_) => {}
                    // Connection refused or reset: the server is gone.
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    // Let load build up, then kill in the middle of it.
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 200 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 200, "enough load before the kill: {} acknowledged", acknowledged.len());

    // The restarted server opens the same database (recovery, migrations already applied).
    let mut restarted = start(&db, &key_file).await;
    let store = Store::open(&db.url).await.unwrap();
    let mut missing = Vec::new();
    for card in &acknowledged {
        if store.feedback_for(card).await.unwrap().is_empty() {
            missing.push(card.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged posts are missing: {:?}",
        missing.len(),
        acknowledged.len(),
        &missing[..missing.len().min(5)]
    );
    // Every acknowledged post is there, each exactly once.
    let stored = store.counts().await.unwrap()["feedback"];
    assert!(stored >= acknowledged.len() as i64, "{stored} rows for {} acknowledged posts", acknowledged.len());
    store.close().await;
    restarted.child.kill().ok();
    restarted.child.wait().ok();
    let _ = std::fs::remove_dir_all(key_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_feedback_survives_sigkill() {
    feedback_survives_sigkill(Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_feedback_survives_sigkill() {
    if let Some(db) = Db::postgres().await {
        feedback_survives_sigkill(db).await;
    }
}
