//! Every integration test, in one binary (one link of the test harness instead of one per file),
//! one module per area, as zero-to-production's `tests/api/`. Run one area with
//! `cargo test --test suite fleet::`, one test with `cargo test --test suite NAME`.
//!
//! `common` is the harness: a real server per test on a free port (`TestApp`, built through
//! `startup::Application` like `main`), scenarios, requests, assertions. `databases` starts real
//! SQLite or PostgreSQL stores.

mod api;
mod attacks;
mod auth;
mod brief;
mod cautions_cohort;
mod cautions_property;
mod cautions_table;
mod cli;
mod coding_table;
mod cohort;
mod common;
mod console;
mod crash;
mod databases;
mod decision_table;
mod fhir;
mod fleet;
mod guidance_table;
mod logs;
mod metrics;
mod property;
mod records;
mod terminology;
