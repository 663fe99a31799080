//! lbp-cds: a CDS Hooks service for adult low back pain.
//!
//! The data path: `http` (routes, errors) -> `hooks` (wire types) -> `record` (prefetch into one
//! patient record) -> `assess` (pure clinical rules) -> `cards` (rendering from `content`).

pub mod analytics;
pub mod assess;
pub mod audit;
pub mod auth;
pub mod cards;
pub mod clock;
pub mod cohort;
pub mod config;
pub mod console;
pub mod content;
pub mod evaluate;
pub mod feedback;
pub mod fhir;
pub mod hooks;
pub mod http;
pub mod metrics;
pub mod outbound;
pub mod record;
pub mod records;
pub mod report;
pub mod shared_cache;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod terminology;
