//! The physical limit of a hook call on this machine: a bare axum handler that only parses the
//! request body into `serde_json::Value` and answers `{"cards":[]}`. `scripts/load-test` runs it
//! beside lbp-cds and compares.
//!
//! Usage: cargo run --release --example bare_server -- 127.0.0.1:8091

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

async fn handler(body: Bytes) -> Json<Value> {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    std::hint::black_box(parsed);
    Json(json!({"cards": []}))
}

#[tokio::main]
async fn main() {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8091".into());
    let app = Router::new().route("/cds-services/{id}", post(handler)).layer(DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind(&address).await.expect("bind");
    eprintln!("bare server listening on {address}");
    axum::serve(listener, app).await.expect("serve");
}
