//! Baselines for a hook call on this machine: bare axum handlers that answer `{"cards":[]}` after
//! doing only part of what lbp-cds does with the body. `scripts/load-test` runs all three beside
//! lbp-cds, in the same run, and reports the ratios.
//!
//! - `value`: parse the body into `serde_json::Value` (a typical JSON service);
//! - `validate`: only check that the body is JSON (`IgnoredAny`): the floor of reading JSON;
//! - `receive`: only receive the bytes: the floor of HTTP on this machine.
//!
//! Usage: cargo run --release --example bare_server -- 127.0.0.1:8091 validate

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

#[derive(Clone, Copy)]
enum Mode {
    Value,
    Validate,
    Receive,
}

fn answer(mode: Mode, body: &Bytes) -> Json<Value> {
    match mode {
        Mode::Value => {
            std::hint::black_box(serde_json::from_slice::<Value>(body).unwrap_or(Value::Null));
        }
        Mode::Validate => {
            std::hint::black_box(serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok());
        }
        Mode::Receive => {
            std::hint::black_box(body.len());
        }
    }
    Json(json!({"cards": []}))
}

#[tokio::main]
async fn main() {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8091".into());
    let mode = match std::env::args().nth(2).as_deref() {
        None | Some("value") => Mode::Value,
        Some("validate") => Mode::Validate,
        Some("receive") => Mode::Receive,
        Some(other) => panic!("unknown mode {other}: value, validate or receive"),
    };
    let app = Router::new()
        .route("/cds-services/{id}", post(move |body: Bytes| async move { answer(mode, &body) }))
        .layer(DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind(&address).await.expect("bind");
    eprintln!("bare server listening on {address}");
    axum::serve(listener, app).await.expect("serve");
}
