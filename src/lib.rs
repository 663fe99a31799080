//! lbp-cds: a CDS Hooks service for adult low back pain.
//!
//! The data path: `http` (routes, errors) -> `hooks` (wire types) -> `record` (prefetch into one
//! patient record) -> `assess` (pure clinical rules) -> `cards` (rendering from `content`).

pub mod assess;
pub mod auth;
pub mod cards;
pub mod cohort;
pub mod config;
pub mod content;
pub mod evaluate;
pub mod fhir;
pub mod hooks;
pub mod http;
pub mod metrics;
pub mod outbound;
pub mod record;
pub mod report;
pub mod shared_cache;
pub mod startup;
pub mod telemetry;
pub mod terminology;
