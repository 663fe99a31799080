//! The audit trail: every card issued, with what it was based on, written off the hook path.
//!
//! A hook call hands its cards to a bounded queue and returns; one writer task takes up to
//! `audit_batch_size` calls at a time and writes them in one transaction. When the queue is full
//! the call's rows are dropped, counted (`lbp_cds_audit_dropped_total`) and logged (at most once
//! a second): the EHR's answer is never held up by the database. On shutdown the queue is
//! written out before the process exits.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::assess::{Assessment, ImagingVerdict, Recommendation};
use crate::content::CardType;
use crate::evaluate::Outcome;
use crate::metrics;
use crate::storage::settings::IdForm;
use crate::storage::{IssuedCard, Offer, OfferKind, Store};

/// Who and what a call was about, taken from the request.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub service: String,
    pub hook: String,
    pub hook_instance: String,
    pub patient_id: String,
    pub user_id: Option<String>,
}

enum Message {
    Cards(Vec<IssuedCard>),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// The hook path's handle on the queue. Cheap to clone.
#[derive(Clone)]
pub struct AuditTrail {
    sender: mpsc::Sender<Message>,
    capacity: usize,
    id_form: IdForm,
    /// Rows queued and not yet committed (or given up on).
    unwritten: Arc<AtomicUsize>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
    last_drop_warning: Arc<Mutex<Option<Instant>>>,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl AuditTrail {
    /// Starts the writer task (on the current runtime).
    pub fn start(store: Store, capacity: usize, batch_size: usize, id_form: IdForm) -> AuditTrail {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let unwritten = Arc::new(AtomicUsize::new(0));
        let writer = tokio::spawn(write_batches(store, receiver, batch_size.max(1), unwritten.clone()));
        AuditTrail {
            sender,
            capacity: capacity.max(1),
            id_form,
            unwritten,
            writer: Arc::new(Mutex::new(Some(writer))),
            last_drop_warning: Arc::new(Mutex::new(None)),
        }
    }

    /// Queues the cards of one answered call; never waits. Runs on the blocking pool with the
    /// rest of the assessment (hashing and building rows are CPU work).
    pub fn record(&self, call: &CallInfo, outcome: &Outcome) {
        let cards = self.rows(call, outcome);
        if cards.is_empty() {
            return;
        }
        let rows = cards.len() as u64;
        self.unwritten.fetch_add(cards.len(), Ordering::SeqCst);
        match self.sender.try_send(Message::Cards(cards)) {
            Ok(()) => self.update_depth(),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.unwritten.fetch_sub(rows as usize, Ordering::SeqCst);
                self.dropped(rows, "the audit queue is full");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.unwritten.fetch_sub(rows as usize, Ordering::SeqCst);
                self.dropped(rows, "the audit writer has stopped");
            }
        }
    }

    /// Waits until everything queued so far is written (feedback uses it before calling a card
    /// unknown: its row may still be in the queue).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Writes out the queue and stops the writer (on shutdown, once no call is in flight).
    pub async fn close(&self) {
        let unwritten_rows = self.unwritten.load(Ordering::SeqCst);
        self.flush().await;
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            writer.abort();
            let _ = writer.await;
        }
        tracing::info!(unwritten_rows, "audit trail written out");
    }

    fn update_depth(&self) {
        metrics::get().audit_queue_depth.set((self.capacity - self.sender.capacity()) as i64);
    }

    fn dropped(&self, rows: u64, why: &'static str) {
        metrics::get().audit_dropped.inc_by(rows);
        let mut last = self.last_drop_warning.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
            *last = Some(Instant::now());
            tracing::error!(rows, reason = why, "audit rows dropped (counted in lbp_cds_audit_dropped_total)");
        }
    }

    fn rows(&self, call: &CallInfo, outcome: &Outcome) -> Vec<IssuedCard> {
        let issued_at = now_ms();
        let patient = self.id(&call.patient_id);
        let user = call.user_id.as_deref().map(|u| self.id(u)).unwrap_or_default();
        let id_form = match self.id_form {
            IdForm::Keyed(_) => "hmac-sha256",
            IdForm::Plain => "plain",
        };
        // The version of the content snapshot that rendered these cards, as the answer names it:
        // after a reload, the new one (the call kept one snapshot from start to end).
        let content_version = outcome
            .response
            .extension
            .get(crate::cards::EXTENSION_KEY)
            .and_then(|report| report.get("contentVersion"))
            .and_then(|version| version.as_str())
            .unwrap_or("unknown")
            .to_owned();
        outcome
            .response
            .cards
            .iter()
            .map(|card| {
                let card_type = card.source.topic.as_ref().map(|t| t.code.clone()).unwrap_or_default();
                let (rule_ids, evidence) = provenance(&outcome.assessment, &card_type);
                let mut offers: Vec<Offer> = card
                    .suggestions
                    .iter()
                    .map(|s| Offer { kind: OfferKind::Suggestion, key: s.uuid.clone(), label: s.label.clone() })
                    .collect();
                offers.extend(card.override_reasons.iter().map(|r| Offer {
                    kind: OfferKind::OverrideReason,
                    key: format!("{}|{}", r.system, r.code),
                    label: r.display.clone().unwrap_or_else(|| r.code.clone()),
                }));
                IssuedCard {
                    audit_id: uuid::Uuid::new_v4().to_string(),
                    card_uuid: card.uuid.clone(),
                    card_type,
                    indicator: card.indicator.as_str().to_owned(),
                    service: call.service.clone(),
                    hook: call.hook.clone(),
                    hook_instance: call.hook_instance.clone(),
                    issued_at,
                    content_version: content_version.clone(),
                    rule_ids,
                    evidence,
                    patient: patient.clone(),
                    user: user.clone(),
                    id_form,
                    offers,
                }
            })
            .collect()
    }

    /// A patient or user id as configured: keyed hash (hex) or as it is.
    pub fn id(&self, id: &str) -> String {
        match &self.id_form {
            IdForm::Keyed(key) => keyed_hash(key, id),
            IdForm::Plain => id.to_owned(),
        }
    }
}

/// HMAC-SHA256 of `value` under `key`, hex: the same id always gives the same hash, so an
/// auditor holding the key can find a patient's rows, and nobody without it can.
pub fn keyed_hash(key: &[u8], value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The rules and evidence behind the cards of one type in an assessment.
fn provenance(assessment: &Assessment, card_type: &str) -> (Vec<String>, Vec<String>) {
    let card_type_key = card_type;
    let card_type = CardType::parse(card_type_key);
    let mut rules = BTreeSet::new();
    let mut evidence = BTreeSet::new();
    for flag in assessment.red_flags.iter().filter(|f| Some(f.category.card_type()) == card_type) {
        rules.insert(flag.rule.clone());
        evidence.extend(flag.evidence.iter().map(|e| e.reference.clone()));
    }
    for imaging in &assessment.imaging {
        let (card, variants) = match &imaging.verdict {
            ImagingVerdict::NotIndicated { variant } => (CardType::ImagingNotIndicated, vec![variant.clone()]),
            ImagingVerdict::Indicated { variants, .. } => (CardType::ImagingIndicated, variants.clone()),
            ImagingVerdict::Conditional(_) => (CardType::ImagingConditional, Vec::new()),
        };
        if Some(card) == card_type {
            rules.insert(card.key().to_owned());
            rules.extend(variants.into_iter().map(|variant| format!("acr-variant:{variant}")));
            evidence.insert(imaging.order.reference.clone());
            if card == CardType::ImagingIndicated {
                for flag in &assessment.red_flags {
                    rules.insert(flag.rule.clone());
                    evidence.extend(flag.evidence.iter().map(|e| e.reference.clone()));
                }
            }
        }
    }
    for recommendation in assessment.recommendations.iter().filter(|r| Some(r.card_type()) == card_type) {
        rules.insert(card_type_key.to_owned());
        let references: Vec<&str> = match recommendation {
            Recommendation::PtReferral { evidence } | Recommendation::ContinueTherapy { session: evidence } => {
                evidence.iter().map(|e| e.reference.as_str()).collect()
            }
            Recommendation::ReassessProgress { measures, care, .. } => {
                measures.iter().chain(care).map(|e| e.reference.as_str()).collect()
            }
            Recommendation::MedicationAdvice { order, .. } | Recommendation::PassiveModality { order, .. } => {
                vec![order.reference.as_str()]
            }
            Recommendation::StartBackScreening | Recommendation::StratifiedCare(_) => Vec::new(),
        };
        evidence.extend(references.into_iter().map(str::to_owned));
    }
    if rules.is_empty() {
        rules.insert(card_type_key.to_owned());
    }
    (rules.into_iter().collect(), evidence.into_iter().collect())
}

/// How long the writer gathers calls before a commit when the queue is not full.
const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// The writer: batches of calls, one transaction each. A failed batch is retried twice, then
/// counted as dropped and logged; the writer never stops on a database error.
async fn write_batches(
    store: Store,
    mut receiver: mpsc::Receiver<Message>,
    batch_size: usize,
    unwritten: Arc<AtomicUsize>,
) {
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        let received = receiver.recv_many(&mut batch, batch_size).await;
        if received == 0 {
            break;
        }
        // Under load, gather for a moment before writing: one commit (one fsync) per window
        // instead of one per call. A flush (feedback waiting on a card) is written at once.
        let flushing = batch.iter().any(|m| matches!(m, Message::Flush(_)));
        if !flushing && batch.len() < batch_size {
            tokio::time::sleep(BATCH_WINDOW).await;
            while batch.len() < batch_size {
                match receiver.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
        }
        let mut cards = Vec::new();
        let mut flushes = Vec::new();
        for message in batch.drain(..) {
            match message {
                Message::Cards(rows) => cards.extend(rows),
                Message::Flush(done) => flushes.push(done),
            }
        }
        if !cards.is_empty() {
            write_with_retry(&store, &cards).await;
            unwritten.fetch_sub(cards.len(), Ordering::SeqCst);
        }
        metrics::get().audit_queue_depth.set(receiver.len() as i64);
        for done in flushes {
            let _ = done.send(());
        }
    }
}

async fn write_with_retry(store: &Store, cards: &[IssuedCard]) {
    let started = Instant::now();
    for attempt in 0..3u32 {
        match store.write_cards(cards).await {
            Ok(()) => {
                metrics::get().audit_written.inc_by(cards.len() as u64);
                metrics::get().audit_batch_seconds.observe(started.elapsed().as_secs_f64());
                return;
            }
            Err(error) if attempt < 2 => {
                tracing::warn!(%error, rows = cards.len(), attempt, "writing audit rows failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(error) => {
                metrics::get().audit_dropped.inc_by(cards.len() as u64);
                tracing::error!(%error, rows = cards.len(), "audit rows could not be written and are dropped");
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2: the keyed hash is standard HMAC-SHA256, so an auditor can
    /// recompute it with any tool.
    #[test]
    fn keyed_hash_is_hmac_sha256() {
        assert_eq!(
            keyed_hash(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
