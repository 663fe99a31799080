//! Card feedback (CDS Hooks 2.0 `POST /cds-services/{id}/feedback`): what the clinician did with
//! a card. Each item is checked against what was issued; an item that refers to a card this
//! service never issued, or to a suggestion or override reason the card did not offer, is still
//! stored (it says something about the client) but flagged and left out of the analytics.

use std::time::{Duration, Instant};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::AuditTrail;
use crate::metrics;
use crate::storage::{FeedbackRecord, Issued, StorageError, Store};

/// Longest accepted card uuid, suggestion id, reason code or system (ours are 36 characters).
const MAX_ID_CHARS: usize = 256;
/// Longest accepted `userComment`.
const MAX_COMMENT_CHARS: usize = 4_000;

/// Why an item is not trusted. One definition, stored as its `as_str`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// No card with this uuid was issued by this service (or the audit trail is off).
    UnknownCard,
    /// The card was issued by another service than the one the feedback was posted to.
    OtherService,
    /// An accepted suggestion the card did not offer.
    UnofferedSuggestion,
    /// An override reason the card did not offer.
    UnofferedOverrideReason,
    /// Suggestions with `overridden`, or an override reason with `accepted`.
    InconsistentOutcome,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::UnknownCard => "unknown-card",
            Flag::OtherService => "other-service",
            Flag::UnofferedSuggestion => "unoffered-suggestion",
            Flag::UnofferedOverrideReason => "unoffered-override-reason",
            Flag::InconsistentOutcome => "inconsistent-outcome",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBatch {
    feedback: Vec<WireItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireItem {
    card: String,
    outcome: Outcome,
    #[serde(default)]
    accepted_suggestions: Vec<WireSuggestion>,
    #[serde(default)]
    override_reason: Option<WireOverrideReason>,
    outcome_timestamp: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Accepted,
    Overridden,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Overridden => "overridden",
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireSuggestion {
    id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOverrideReason {
    #[serde(default)]
    reason: Option<WireCoding>,
    #[serde(default)]
    user_comment: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireCoding {
    #[serde(default)]
    system: Option<String>,
    code: String,
}

/// One feedback item, parsed and bounded, not yet checked against what was issued.
#[derive(Debug, Clone)]
pub struct Item {
    pub card: String,
    pub outcome: Outcome,
    pub suggestions: Vec<String>,
    pub reason: Option<(String, String)>,
    pub comment: Option<String>,
    /// Unix milliseconds.
    pub outcome_at: i64,
    /// As sent: part of the item's identity.
    outcome_timestamp: String,
}

/// Parses a feedback body. The error names what was wrong (with its JSON path).
pub fn parse(body: &[u8], max_items: usize) -> Result<Vec<Item>, String> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    let batch: WireBatch = serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            format!("the feedback body is invalid: {inner}")
        } else {
            format!("field `{path}` is invalid: {inner}")
        }
    })?;
    if batch.feedback.is_empty() {
        return Err("`feedback` has no items".into());
    }
    if batch.feedback.len() > max_items {
        return Err(format!(
            "`feedback` has {} items; at most {max_items} are accepted per post",
            batch.feedback.len()
        ));
    }
    batch.feedback.into_iter().enumerate().map(|(index, item)| item.into_item(index)).collect()
}

impl WireItem {
    fn into_item(self, index: usize) -> Result<Item, String> {
        let at = |field: &str| format!("feedback[{index}].{field}");
        let id = |value: &str, field: &str| -> Result<(), String> {
            if value.trim().is_empty() {
                Err(format!("`{}` is empty", at(field)))
            } else if value.chars().count() > MAX_ID_CHARS {
                Err(format!("`{}` is longer than {MAX_ID_CHARS} characters", at(field)))
            } else {
                Ok(())
            }
        };
        id(&self.card, "card")?;
        let outcome_at = OffsetDateTime::parse(&self.outcome_timestamp, &Rfc3339)
            .map_err(|e| format!("`{}` is not an RFC 3339 date-time with a time zone: {e}", at("outcomeTimestamp")))?;
        let mut suggestions = Vec::with_capacity(self.accepted_suggestions.len());
        for (i, suggestion) in self.accepted_suggestions.into_iter().enumerate() {
            id(&suggestion.id, &format!("acceptedSuggestions[{i}].id"))?;
            suggestions.push(suggestion.id);
        }
        suggestions.sort();
        suggestions.dedup();
        let (reason, comment) = match self.override_reason {
            None => (None, None),
            Some(reason) => {
                let coding = match reason.reason {
                    Some(coding) => {
                        id(&coding.code, "overrideReason.reason.code")?;
                        let system = coding.system.unwrap_or_default();
                        if system.chars().count() > MAX_ID_CHARS {
                            return Err(format!("`{}` is too long", at("overrideReason.reason.system")));
                        }
                        Some((system, coding.code))
                    }
                    None => None,
                };
                if reason.user_comment.as_ref().is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS) {
                    return Err(format!(
                        "`{}` is longer than {MAX_COMMENT_CHARS} characters",
                        at("overrideReason.userComment")
                    ));
                }
                (coding, reason.user_comment.filter(|c| !c.trim().is_empty()))
            }
        };
        Ok(Item {
            card: self.card,
            outcome: self.outcome,
            suggestions,
            reason,
            comment,
            outcome_at: (outcome_at.unix_timestamp_nanos() / 1_000_000) as i64,
            outcome_timestamp: self.outcome_timestamp,
        })
    }
}

impl Item {
    /// The item's identity: the same item posted again (clients retry) is the same row.
    fn id(&self, service: &str) -> String {
        let mut hash = Sha256::new();
        for part in [service, &self.card, self.outcome.as_str(), &self.outcome_timestamp] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        for suggestion in &self.suggestions {
            hash.update(suggestion.as_bytes());
            hash.update([1]);
        }
        if let Some((system, code)) = &self.reason {
            hash.update(system.as_bytes());
            hash.update([2]);
            hash.update(code.as_bytes());
        }
        hash.update([3]);
        hash.update(self.comment.as_deref().unwrap_or_default().as_bytes());
        hex::encode(hash.finalize())
    }
}

/// What one post did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Receipt {
    pub stored: u64,
    pub duplicates: u64,
    /// Items stored with at least one flag.
    pub flagged: u64,
}

/// Checks each item against what was issued and writes them all in one transaction. Returns
/// once the rows are committed.
///
/// Feedback can follow the hook answer within milliseconds, before the card's audit row is
/// committed: the row waits in an audit queue (this replica's, or with PostgreSQL another
/// replica's) for up to the writer's 50 ms gathering window and its commit. A card not found is
/// therefore looked for again after this replica's queue is written out; with a database shared
/// by replicas (PostgreSQL) the post then waits, at most `card_wait` once per post, for the other
/// replicas' writers, polling every 50 ms. Past that the item is stored flagged `unknown-card`
/// (kept, never lost, but left out of the analytics): the card's row was dropped (a full queue,
/// a replica killed before its writer committed) or the card was never issued here.
pub async fn record(
    store: &Store,
    audit: Option<&AuditTrail>,
    card_wait: Duration,
    service: &str,
    client: &str,
    items: Vec<Item>,
) -> Result<Receipt, StorageError> {
    let received_at = crate::audit::now_ms();
    let mut issued = Vec::with_capacity(items.len());
    for item in &items {
        issued.push(store.issued(&item.card).await?);
    }
    if issued.iter().any(Option::is_none) {
        if let Some(audit) = audit {
            audit.flush().await;
        }
        let shared = store.backend() == "postgres";
        let deadline = Instant::now() + if shared { card_wait } else { Duration::ZERO };
        while Instant::now() < deadline && !look_again(store, &items, &mut issued, true).await? {
            tokio::time::sleep(CARD_POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        look_again(store, &items, &mut issued, false).await?;
    }
    let mut records = Vec::with_capacity(items.len());
    for (item, issued) in items.into_iter().zip(issued) {
        let mut flags = Vec::new();
        let suggestions: Vec<(String, bool)> = match &issued {
            None => {
                flags.push(Flag::UnknownCard);
                item.suggestions.iter().map(|s| (s.clone(), false)).collect()
            }
            Some(issued) => {
                if !issued.services.contains(service) {
                    flags.push(Flag::OtherService);
                }
                let suggestions: Vec<(String, bool)> =
                    item.suggestions.iter().map(|s| (s.clone(), issued.suggestions.contains(s))).collect();
                if suggestions.iter().any(|(_, offered)| !offered) {
                    flags.push(Flag::UnofferedSuggestion);
                }
                if let Some((system, code)) = &item.reason
                    && !issued.override_reasons.contains(&format!("{system}|{code}"))
                {
                    flags.push(Flag::UnofferedOverrideReason);
                }
                suggestions
            }
        };
        let inconsistent = match item.outcome {
            Outcome::Accepted => item.reason.is_some(),
            Outcome::Overridden => !item.suggestions.is_empty(),
        };
        if inconsistent {
            flags.push(Flag::InconsistentOutcome);
        }
        records.push(FeedbackRecord {
            feedback_id: item.id(service),
            service: service.to_owned(),
            card_uuid: item.card.clone(),
            outcome: item.outcome.as_str().to_owned(),
            outcome_at: item.outcome_at,
            received_at,
            override_system: item.reason.as_ref().map(|(system, _)| system.clone()),
            override_code: item.reason.as_ref().map(|(_, code)| code.clone()),
            user_comment: item.comment.clone(),
            flags: flags.iter().map(|f| f.as_str().to_owned()).collect(),
            client: client.to_owned(),
            suggestions,
        });
    }
    let written = store.write_feedback(&records).await?;
    let flagged = records.iter().filter(|r| !r.trusted()).count() as u64;
    for record in &records {
        let trust = if record.trusted() { "trusted" } else { "flagged" };
        metrics::get()
            .feedback
            .get_or_create(&metrics::FeedbackLabels { outcome: outcome_label(&record.outcome), trust })
            .inc();
    }
    if flagged > 0 {
        tracing::warn!(
            flagged,
            "feedback refers to cards, suggestions or reasons that were not issued; stored and flagged"
        );
    }
    Ok(Receipt { stored: written.stored, duplicates: written.duplicates, flagged })
}

/// How often a post waiting for another replica's audit row looks again.
const CARD_POLL: Duration = Duration::from_millis(50);

/// Looks again for the cards not found yet; true once all are found. `first_missing`: stop at
/// the first card still missing (while waiting, a round costs one query, not one per item).
async fn look_again(
    store: &Store,
    items: &[Item],
    issued: &mut [Option<Issued>],
    first_missing: bool,
) -> Result<bool, StorageError> {
    let mut all = true;
    for (item, found) in items.iter().zip(issued.iter_mut()) {
        if found.is_none() {
            *found = store.issued(&item.card).await?;
            if found.is_none() {
                all = false;
                if first_missing {
                    break;
                }
            }
        }
    }
    Ok(all)
}

fn outcome_label(outcome: &str) -> &'static str {
    if outcome == Outcome::Accepted.as_str() { Outcome::Accepted.as_str() } else { Outcome::Overridden.as_str() }
}
