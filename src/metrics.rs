//! Prometheus metrics (`GET /metrics`, text exposition format). An EHR shows a failed call
//! exactly like "no cards", so every refusal, fault and degradation is counted here as well as
//! logged. One process-wide registry: metrics are the one piece of global state, as in every
//! Prometheus client.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub endpoint: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Latency of a request: endpoint family, service id (only ids the content defines, else
/// `unknown`; empty for endpoints without one) and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub endpoint: &'static str,
    pub service: String,
    pub status: u16,
}

/// Cards issued, by card type (from the content, a closed set) and indicator.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CardLabels {
    pub card_type: String,
    pub indicator: &'static str,
}

/// A FHIR query: its prefetch key (from the content, a closed set) and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    pub key: String,
    pub outcome: &'static str,
}

/// Feedback items received: outcome and whether every check passed (`trusted`, `flagged`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeedbackLabels {
    pub outcome: &'static str,
    pub trust: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to about 16 s: a hook call's budget is well inside it.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    /// Every HTTP response, by endpoint family and status code.
    pub responses: Family<ResponseLabels, Counter>,
    /// Refused authentications, by reason.
    pub auth_failures: Family<ReasonLabels, Counter>,
    /// Key-set fetches, by outcome (`ok`, `error`, `rate_limited`).
    pub jwks_fetches: Family<ReasonLabels, Counter>,
    /// Connections closed at once because the connection cap was reached.
    pub connections_refused: Counter,
    pub connections_open: Gauge,
    /// Panics caught and answered with a 500.
    pub panics: Counter,
    /// FHIR queries, by outcome (`complete`, `incomplete`, `failed`).
    pub fhir_queries: Family<ReasonLabels, Counter>,
    /// Resources present but unreadable, skipped.
    pub resources_skipped: Counter,
    /// Hook calls that hit the per-call byte or resource budget.
    pub call_budget_exceeded: Counter,
    /// Request latency, by endpoint, service and status.
    pub request_seconds: Histograms<LatencyLabels>,
    /// Cards issued, by type and indicator.
    pub cards: Family<CardLabels, Counter>,
    /// FHIR query latency, by prefetch key and outcome.
    pub fhir_query_seconds: Histograms<QueryLabels>,
    /// Hook calls waiting in the audit queue.
    pub audit_queue_depth: Gauge,
    /// Audit rows dropped (queue full, or the database refused them after retries).
    pub audit_dropped: Counter,
    /// Audit rows written.
    pub audit_written: Counter,
    /// Time to write one audit batch.
    pub audit_batch_seconds: Histogram,
    /// Feedback items received, by outcome and trust.
    pub feedback: Family<FeedbackLabels, Counter>,
    /// Audit and feedback rows deleted by the retention job.
    pub retention_deleted: Counter,
    /// Content reloads by outcome (`replaced`, `rejected`).
    pub content_reloads: Family<ReasonLabels, Counter>,
    /// 1 while the content directory holds a change that was refused (the old content serves).
    pub content_reload_failing: Gauge,
    /// Failed operations on the shared cache (Redis), by operation (`replay`, `jwks_read`,
    /// `jwks_write`, `ping`). A failed replay check refuses the call.
    pub shared_cache_errors: Family<ReasonLabels, Counter>,
    /// 1 while `/ready` says ready.
    pub ready: Gauge,
    /// 1 while the database answered the last readiness check.
    pub database_up: Gauge,
    /// Readiness checks the database failed.
    pub database_check_failures: Counter,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lbp_cds");
        let metrics = Metrics {
            responses: Family::default(),
            auth_failures: Family::default(),
            jwks_fetches: Family::default(),
            connections_refused: Counter::default(),
            connections_open: Gauge::default(),
            panics: Counter::default(),
            fhir_queries: Family::default(),
            resources_skipped: Counter::default(),
            call_budget_exceeded: Counter::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            cards: Family::default(),
            fhir_query_seconds: Family::new_with_constructor(latency_histogram),
            audit_queue_depth: Gauge::default(),
            audit_dropped: Counter::default(),
            audit_written: Counter::default(),
            audit_batch_seconds: latency_histogram(),
            feedback: Family::default(),
            retention_deleted: Counter::default(),
            content_reloads: Family::default(),
            content_reload_failing: Gauge::default(),
            shared_cache_errors: Family::default(),
            ready: Gauge::default(),
            database_up: Gauge::default(),
            database_check_failures: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("http_responses", "HTTP responses by endpoint and status", metrics.responses.clone());
        registry.register("auth_failures", "Refused authentications by reason", metrics.auth_failures.clone());
        registry.register("jwks_fetches", "Key-set fetches by outcome", metrics.jwks_fetches.clone());
        registry.register(
            "connections_refused",
            "Connections closed because the connection cap was reached",
            metrics.connections_refused.clone(),
        );
        registry.register("connections_open", "Open client connections", metrics.connections_open.clone());
        registry.register("panics", "Panics caught and answered with 500", metrics.panics.clone());
        registry.register("fhir_queries", "FHIR queries by outcome", metrics.fhir_queries.clone());
        registry.register("resources_skipped", "Unreadable resources skipped", metrics.resources_skipped.clone());
        registry.register(
            "call_budget_exceeded",
            "Hook calls that reached the per-call byte or resource budget",
            metrics.call_budget_exceeded.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency by endpoint, service and status",
            metrics.request_seconds.clone(),
        );
        registry.register("cards_issued", "Cards issued by card type and indicator", metrics.cards.clone());
        registry.register(
            "fhir_query_duration_seconds",
            "FHIR query latency (all pages) by prefetch key and outcome",
            metrics.fhir_query_seconds.clone(),
        );
        registry.register(
            "audit_queue_depth",
            "Hook calls waiting in the audit queue",
            metrics.audit_queue_depth.clone(),
        );
        registry.register(
            "audit_dropped",
            "Audit rows dropped (queue full or write failed)",
            metrics.audit_dropped.clone(),
        );
        registry.register("audit_written", "Audit rows written", metrics.audit_written.clone());
        registry.register(
            "audit_batch_duration_seconds",
            "Time to write one batch of audit rows",
            metrics.audit_batch_seconds.clone(),
        );
        registry.register("feedback_items", "Feedback items received by outcome and trust", metrics.feedback.clone());
        registry.register(
            "retention_deleted_rows",
            "Audit and feedback rows deleted by the retention job",
            metrics.retention_deleted.clone(),
        );
        registry.register("content_reloads", "Content reloads by outcome", metrics.content_reloads.clone());
        registry.register(
            "content_reload_failing",
            "1 while a refused content change is pending (the previous content serves)",
            metrics.content_reload_failing.clone(),
        );
        registry.register(
            "shared_cache_errors",
            "Failed shared-cache (Redis) operations by operation",
            metrics.shared_cache_errors.clone(),
        );
        registry.register("ready", "1 while the readiness check passes", metrics.ready.clone());
        registry.register(
            "database_up",
            "1 while the database answered the last readiness check",
            metrics.database_up.clone(),
        );
        registry.register(
            "database_check_failures",
            "Readiness checks the database failed",
            metrics.database_check_failures.clone(),
        );
        Metrics { registry, ..metrics }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

pub fn reason(reason: &'static str) -> ReasonLabels {
    ReasonLabels { reason }
}
