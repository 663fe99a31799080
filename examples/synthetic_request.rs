//! Prints a synthetic hook request with N resources (default 300, about 150 KB), for load tests.
//!
//! Usage: cargo run --release --example synthetic_request -- order-select 300 > body.json

#[path = "../benches/common/mod.rs"]
mod common;

fn main() {
    let hook = std::env::args().nth(1).unwrap_or_else(|| "order-select".into());
    let size = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(300);
    println!("{}", serde_json::to_string(&common::request(&hook, size)).expect("json"));
}
