//! The database behind feedback, the audit trail and the analytics: SQLite embedded by default (a
//! file created on first start, WAL journal, every commit fsynced), PostgreSQL when the database
//! URL says `postgres://`. One set of migrations and one text per statement serve both: the SQL
//! keeps to what both accept (`$n` parameters, TEXT and BIGINT, `ON CONFLICT DO NOTHING`).
//!
//! Every statement is a runtime `sqlx::query` (no compile-time checked macros): building needs no
//! live database, and the same statement text is bound for either pool.

pub mod settings;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

pub use settings::{StorageArgs, StorageSettings};

/// The schema, in order; embedded so the binary migrates any database it is pointed at.
const MIGRATIONS: &[(i64, &str, &str)] =
    &[(1, "audit and feedback", include_str!("../../migrations/0001_audit_and_feedback.sql"))];

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the database URL must start with sqlite: or postgres:// (got a URL starting `{0}`)")]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Open(sqlx::Error),
    /// PostgreSQL did not answer within the start-up wait.
    #[error("cannot reach the database at {shown} after {attempts} attempts: {error}")]
    Unreachable { shown: String, attempts: u32, error: String },
    #[error("cannot apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool is open (each arm is type-checked on its own).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// A connection pool to the project's database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

/// Which kind of entry a card offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferKind {
    Suggestion,
    OverrideReason,
}

impl OfferKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferKind::Suggestion => "suggestion",
            OfferKind::OverrideReason => "override-reason",
        }
    }
}

/// Something a card offered: a suggestion (by uuid) or an override reason (`system|code`).
#[derive(Debug, Clone)]
pub struct Offer {
    pub kind: OfferKind,
    pub key: String,
    pub label: String,
}

/// One audit row: a card as issued.
#[derive(Debug, Clone)]
pub struct IssuedCard {
    pub audit_id: String,
    pub card_uuid: String,
    pub card_type: String,
    pub indicator: String,
    pub service: String,
    pub hook: String,
    pub hook_instance: String,
    /// Unix milliseconds.
    pub issued_at: i64,
    pub content_version: String,
    pub rule_ids: Vec<String>,
    pub evidence: Vec<String>,
    pub patient: String,
    pub user: String,
    pub id_form: &'static str,
    pub offers: Vec<Offer>,
}

/// What was issued under one card uuid: the services that issued it and what it offered.
#[derive(Debug, Clone, Default)]
pub struct Issued {
    pub services: BTreeSet<String>,
    pub suggestions: BTreeSet<String>,
    pub override_reasons: BTreeSet<String>,
}

/// One feedback item as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackRecord {
    pub feedback_id: String,
    pub service: String,
    pub card_uuid: String,
    pub outcome: String,
    pub outcome_at: i64,
    pub received_at: i64,
    pub override_system: Option<String>,
    pub override_code: Option<String>,
    pub user_comment: Option<String>,
    /// Reasons not to trust the item; empty when every check passed.
    pub flags: Vec<String>,
    pub client: String,
    /// Accepted suggestion uuids, each with whether the card offered it.
    pub suggestions: Vec<(String, bool)>,
}

impl FeedbackRecord {
    pub fn trusted(&self) -> bool {
        self.flags.is_empty()
    }
}

/// What a batch of feedback did to the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub stored: u64,
    pub duplicates: u64,
}

/// Rows deleted by the retention job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deleted {
    pub audit_cards: u64,
    pub feedback: u64,
}

/// Per card type, over a range of issue times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCounts {
    pub card_type: String,
    pub shown: i64,
    pub accepted: i64,
    pub overridden: i64,
    pub no_response: i64,
}

/// Per suggestion (card type and label; uuids differ per card), over a range of issue times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuggestionCounts {
    pub card_type: String,
    pub label: String,
    pub offered: i64,
    pub accepted: i64,
}

/// Override reasons given, per card type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonCounts {
    pub card_type: String,
    pub system: String,
    pub code: String,
    pub label: String,
    pub count: i64,
}

struct Embedded;

impl std::fmt::Debug for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("embedded migrations")
    }
}

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Rows per multi-row INSERT: 14 parameters a row stays far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters per statement.
const ROWS_PER_STATEMENT: usize = 200;

/// Cards issued in `[from, to)` (Unix ms), one row per card uuid.
const CARDS_IN_RANGE: &str = "SELECT card_uuid, MIN(card_type) AS card_type FROM audit_cards \
     WHERE issued_at >= $1 AND issued_at < $2 GROUP BY card_uuid";

impl Store {
    /// Opens (SQLite: creates) the database and applies the migrations it has not seen.
    pub async fn open(url: &str) -> Result<Store, StorageError> {
        Store::open_waiting(url, Duration::ZERO).await
    }

    /// As [`Store::open`], waiting up to `wait` for a PostgreSQL server that does not answer yet
    /// (a fleet's replicas may start before their database): one attempt, then retries with pauses
    /// growing from 100 ms to 2 s, each logged with its reason. An error the server itself gives
    /// (wrong password, no such database) ends the wait at once: waiting would not change it.
    pub async fn open_waiting(url: &str, wait: Duration) -> Result<Store, StorageError> {
        let pool = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(StorageError::Open)?
                .create_if_missing(true)
                // WAL: readers never block the writer; FULL: a commit is on disk before it returns,
                // so a 200 for feedback survives a crash or power loss.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(StorageError::Open)?;
            Pool::Sqlite(pool)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(StorageError::Open)?;
            wait_for_postgres(&options, &shown_url(url), wait).await?;
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await
                .map_err(StorageError::Open)?;
            Pool::Postgres(pool)
        } else {
            return Err(StorageError::UnsupportedUrl(url.chars().take(12).collect()));
        };
        let store = Store { pool };
        let migrator = Migrator::new(Embedded).await?;
        on_pool!(store, pool => migrator.run(pool).await)?;
        Ok(store)
    }

    /// `SELECT 1` within `deadline` (the readiness check). When the pool cannot get a connection
    /// in time (it retries a refused connection until its acquire timeout), one direct connection
    /// attempt tells why.
    pub async fn ping(&self, deadline: Duration) -> Result<(), String> {
        let checked = tokio::time::timeout(deadline, async {
            on_pool!(self, pool => sqlx::query("SELECT 1").persistent(false).execute(pool).await.map(|_| ()))
        })
        .await;
        match checked {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => {
                let direct = tokio::time::timeout(deadline, async {
                    match &self.pool {
                        Pool::Postgres(pool) => pool.connect_options().connect().await?.close().await,
                        Pool::Sqlite(pool) => pool.connect_options().connect().await?.close().await,
                    }
                })
                .await;
                let why = match direct {
                    Ok(Err(error)) => format!(": {error}"),
                    _ => String::new(),
                };
                Err(format!("no answer within {} ms{why}", deadline.as_millis()))
            }
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }

    /// Writes a batch of audit rows in one transaction, many rows per statement (the writer's
    /// cost per card stays small beside the hook calls it records). The statements are not kept
    /// in the connection's statement cache: their text varies with the batch size, and a cache
    /// of large one-off INSERTs only holds memory.
    pub async fn write_cards(&self, cards: &[IssuedCard]) -> Result<(), StorageError> {
        let offers: Vec<(&IssuedCard, &Offer)> =
            cards.iter().flat_map(|card| card.offers.iter().map(move |offer| (card, offer))).collect();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in cards.chunks(ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_cards (audit_id, card_uuid, card_type, indicator, service, hook, hook_instance, \
                     issued_at, content_version, rule_ids, evidence, patient, user_ref, id_form) ",
                );
                insert.push_values(chunk, |mut row, card| {
                    row.push_bind(card.audit_id.clone())
                        .push_bind(card.card_uuid.clone())
                        .push_bind(card.card_type.clone())
                        .push_bind(card.indicator.clone())
                        .push_bind(card.service.clone())
                        .push_bind(card.hook.clone())
                        .push_bind(card.hook_instance.clone())
                        .push_bind(card.issued_at)
                        .push_bind(card.content_version.clone())
                        .push_bind(serde_json::to_string(&card.rule_ids).unwrap_or_default())
                        .push_bind(serde_json::to_string(&card.evidence).unwrap_or_default())
                        .push_bind(card.patient.clone())
                        .push_bind(card.user.clone())
                        .push_bind(card.id_form);
                });
                insert.push(" ON CONFLICT (audit_id) DO NOTHING");
                insert.build().persistent(false).execute(&mut *tx).await?;
            }
            for chunk in offers.chunks(ROWS_PER_STATEMENT) {
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO card_offers (card_uuid, kind, offer_key, label, issued_at) ");
                insert.push_values(chunk, |mut row, (card, offer)| {
                    row.push_bind(card.card_uuid.clone())
                        .push_bind(offer.kind.as_str())
                        .push_bind(offer.key.clone())
                        .push_bind(offer.label.clone())
                        .push_bind(card.issued_at);
                });
                // The same card issued twice (a repeated hook call) offers the same things.
                insert.push(" ON CONFLICT (card_uuid, kind, offer_key) DO NOTHING");
                insert.build().persistent(false).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// What was issued under `card_uuid`, or `None` if this service never issued it.
    pub async fn issued(&self, card_uuid: &str) -> Result<Option<Issued>, StorageError> {
        on_pool!(self, pool => {
            let services: Vec<(String,)> =
                sqlx::query_as("SELECT DISTINCT service FROM audit_cards WHERE card_uuid = $1").bind(card_uuid).fetch_all(pool).await?;
            if services.is_empty() {
                return Ok(None);
            }
            let offers: Vec<(String, String)> =
                sqlx::query_as("SELECT kind, offer_key FROM card_offers WHERE card_uuid = $1").bind(card_uuid).fetch_all(pool).await?;
            let mut issued = Issued { services: services.into_iter().map(|(s,)| s).collect(), ..Issued::default() };
            for (kind, key) in offers {
                if kind == OfferKind::Suggestion.as_str() {
                    issued.suggestions.insert(key);
                } else {
                    issued.override_reasons.insert(key);
                }
            }
            Ok(Some(issued))
        })
    }

    /// Writes feedback items in one transaction; returns once it is committed (durable). An item
    /// already stored (same `feedback_id`) is left as it is and counted as a duplicate.
    pub async fn write_feedback(&self, items: &[FeedbackRecord]) -> Result<Written, StorageError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut written = Written::default();
            for item in items {
                let result = sqlx::query(
                    "INSERT INTO feedback (feedback_id, service, card_uuid, outcome, outcome_at, received_at, override_system, \
                     override_code, user_comment, flags, trusted, client) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (feedback_id) DO NOTHING",
                )
                .bind(&item.feedback_id)
                .bind(&item.service)
                .bind(&item.card_uuid)
                .bind(&item.outcome)
                .bind(item.outcome_at)
                .bind(item.received_at)
                .bind(&item.override_system)
                .bind(&item.override_code)
                .bind(&item.user_comment)
                .bind(item.flags.join(","))
                .bind(i64::from(item.trusted()))
                .bind(&item.client)
                .execute(&mut *tx)
                .await?;
                if result.rows_affected() == 0 {
                    written.duplicates += 1;
                    continue;
                }
                written.stored += 1;
                for (suggestion, offered) in &item.suggestions {
                    sqlx::query(
                        "INSERT INTO feedback_suggestions (feedback_id, suggestion_uuid, offered) VALUES ($1, $2, $3) \
                         ON CONFLICT (feedback_id, suggestion_uuid) DO NOTHING",
                    )
                    .bind(&item.feedback_id)
                    .bind(suggestion)
                    .bind(i64::from(*offered))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(written)
        })
    }

    /// Every stored feedback item about `card_uuid`, oldest outcome first.
    pub async fn feedback_for(&self, card_uuid: &str) -> Result<Vec<FeedbackRecord>, StorageError> {
        on_pool!(self, pool => {
            type Row = (String, String, String, String, i64, i64, Option<String>, Option<String>, Option<String>, String, String);
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT feedback_id, service, card_uuid, outcome, outcome_at, received_at, override_system, override_code, \
                 user_comment, flags, client FROM feedback WHERE card_uuid = $1 ORDER BY outcome_at, feedback_id",
            )
            .bind(card_uuid)
            .fetch_all(pool)
            .await?;
            let mut items = Vec::with_capacity(rows.len());
            for (feedback_id, service, card_uuid, outcome, outcome_at, received_at, override_system, override_code, user_comment, flags, client) in rows {
                let suggestions: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT suggestion_uuid, offered FROM feedback_suggestions WHERE feedback_id = $1 ORDER BY suggestion_uuid",
                )
                .bind(&feedback_id)
                .fetch_all(pool)
                .await?;
                items.push(FeedbackRecord {
                    feedback_id,
                    service,
                    card_uuid,
                    outcome,
                    outcome_at,
                    received_at,
                    override_system,
                    override_code,
                    user_comment,
                    flags: flags.split(',').filter(|f| !f.is_empty()).map(str::to_owned).collect(),
                    client,
                    suggestions: suggestions.into_iter().map(|(s, offered)| (s, offered != 0)).collect(),
                })
            }
            Ok(items)
        })
    }

    /// Audit rows of `card_uuid` as (card type, service, hook instance, patient, user, content
    /// version, rule ids JSON, evidence JSON), in issue order.
    pub async fn audit_rows(&self, card_uuid: &str) -> Result<Vec<AuditRow>, StorageError> {
        on_pool!(self, pool => {
            let rows: Vec<AuditRow> = sqlx::query_as(
                "SELECT card_type, indicator, service, hook, hook_instance, issued_at, content_version, rule_ids, evidence, \
                 patient, user_ref, id_form FROM audit_cards WHERE card_uuid = $1 ORDER BY issued_at, audit_id",
            )
            .bind(card_uuid)
            .fetch_all(pool)
            .await?;
            Ok(rows)
        })
    }

    /// Rows in each table, for tests and the report's header.
    pub async fn counts(&self) -> Result<HashMap<&'static str, i64>, StorageError> {
        let mut counts = HashMap::new();
        for table in ["audit_cards", "card_offers", "feedback", "feedback_suggestions"] {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let (count,): (i64,) = on_pool!(self, pool => sqlx::query_as(&sql).fetch_one(pool).await)?;
            counts.insert(table, count);
        }
        Ok(counts)
    }

    /// Deletes audit and feedback rows older than `cutoff` (Unix ms): audit rows by issue time,
    /// feedback by the time it was received.
    pub async fn delete_before(&self, cutoff: i64) -> Result<Deleted, StorageError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let audit_cards = sqlx::query("DELETE FROM audit_cards WHERE issued_at < $1").bind(cutoff).execute(&mut *tx).await?.rows_affected();
            sqlx::query("DELETE FROM card_offers WHERE issued_at < $1").bind(cutoff).execute(&mut *tx).await?;
            sqlx::query(
                "DELETE FROM feedback_suggestions WHERE feedback_id IN (SELECT feedback_id FROM feedback WHERE received_at < $1)",
            )
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            let feedback = sqlx::query("DELETE FROM feedback WHERE received_at < $1").bind(cutoff).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(Deleted { audit_cards, feedback })
        })
    }

    /// Cards shown, accepted, overridden and unanswered per card type, for cards issued in
    /// `[from, to)` (Unix ms). Only trusted feedback counts.
    pub async fn card_counts(&self, from: i64, to: i64) -> Result<Vec<CardCounts>, StorageError> {
        let sql = format!(
            "SELECT c.card_type, COUNT(DISTINCT c.card_uuid), \
             COUNT(DISTINCT CASE WHEN f.outcome = 'accepted' THEN c.card_uuid END), \
             COUNT(DISTINCT CASE WHEN f.outcome = 'overridden' THEN c.card_uuid END), \
             COUNT(DISTINCT CASE WHEN f.feedback_id IS NULL THEN c.card_uuid END) \
             FROM ({CARDS_IN_RANGE}) c LEFT JOIN feedback f ON f.card_uuid = c.card_uuid AND f.trusted = 1 \
             GROUP BY c.card_type ORDER BY c.card_type"
        );
        let rows: Vec<(String, i64, i64, i64, i64)> =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(from).bind(to).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(card_type, shown, accepted, overridden, no_response)| CardCounts {
                card_type,
                shown,
                accepted,
                overridden,
                no_response,
            })
            .collect())
    }

    /// Per card type and suggestion label: cards that offered it, and cards where it was accepted.
    pub async fn suggestion_counts(&self, from: i64, to: i64) -> Result<Vec<SuggestionCounts>, StorageError> {
        let sql = format!(
            "SELECT c.card_type, o.label, COUNT(DISTINCT c.card_uuid), COUNT(DISTINCT CASE WHEN s.suggestion_uuid IS NOT NULL THEN c.card_uuid END) \
             FROM ({CARDS_IN_RANGE}) c \
             JOIN card_offers o ON o.card_uuid = c.card_uuid AND o.kind = 'suggestion' \
             LEFT JOIN feedback f ON f.card_uuid = c.card_uuid AND f.trusted = 1 AND f.outcome = 'accepted' \
             LEFT JOIN feedback_suggestions s ON s.feedback_id = f.feedback_id AND s.suggestion_uuid = o.offer_key \
             GROUP BY c.card_type, o.label ORDER BY c.card_type, o.label"
        );
        let rows: Vec<(String, String, i64, i64)> =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(from).bind(to).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(card_type, label, offered, accepted)| SuggestionCounts { card_type, label, offered, accepted })
            .collect())
    }

    /// Override reasons given in trusted feedback, per card type, most frequent first.
    pub async fn reason_counts(&self, from: i64, to: i64) -> Result<Vec<ReasonCounts>, StorageError> {
        let sql = format!(
            "SELECT c.card_type, f.override_system, f.override_code, MIN(o.label), COUNT(DISTINCT f.feedback_id) AS n \
             FROM ({CARDS_IN_RANGE}) c \
             JOIN feedback f ON f.card_uuid = c.card_uuid AND f.trusted = 1 AND f.outcome = 'overridden' AND f.override_code IS NOT NULL \
             LEFT JOIN card_offers o ON o.card_uuid = c.card_uuid AND o.kind = 'override-reason' \
                  AND o.offer_key = f.override_system || '|' || f.override_code \
             GROUP BY c.card_type, f.override_system, f.override_code ORDER BY c.card_type, n DESC, f.override_code"
        );
        type ReasonRow = (String, Option<String>, Option<String>, Option<String>, i64);
        let rows: Vec<ReasonRow> =
            on_pool!(self, pool => sqlx::query_as(&sql).bind(from).bind(to).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(card_type, system, code, label, count)| ReasonCounts {
                card_type,
                system: system.unwrap_or_default(),
                code: code.unwrap_or_default(),
                label: label.unwrap_or_default(),
                count,
            })
            .collect())
    }
}

/// A PostgreSQL URL without its password, for messages.
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => "the configured PostgreSQL URL".into(),
    }
}

/// Connects once to see that the server answers, retrying until `wait` is over.
async fn wait_for_postgres(options: &PgConnectOptions, shown: &str, wait: Duration) -> Result<(), StorageError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(100);
    let mut attempts = 1u32;
    loop {
        let error = match tokio::time::timeout(Duration::from_secs(3), options.connect()).await {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                if attempts > 1 {
                    tracing::info!(database = %shown, attempts, "the database answers");
                }
                return Ok(());
            }
            // The server answered with a refusal that waiting does not change.
            Ok(Err(sqlx::Error::Database(error))) if !error.is_transient_in_connect_phase() => {
                return Err(StorageError::Open(sqlx::Error::Database(error)));
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer within 3 s".to_owned(),
        };
        if tokio::time::Instant::now() + pause >= deadline {
            return Err(StorageError::Unreachable { shown: shown.to_owned(), attempts, error });
        }
        tracing::warn!(database = %shown, attempts, %error, "database not reachable yet; retrying");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        attempts += 1;
    }
}

/// An audit row as read back: card type, indicator, service, hook, hookInstance, issued at,
/// content version, rule ids (JSON), evidence (JSON), patient, user, id form.
pub type AuditRow = (String, String, String, String, String, i64, String, String, String, String, String, String);

#[cfg(test)]
mod tests {
    /// Start-up messages name the database without its password (or query parameters).
    #[test]
    fn shown_url_hides_the_password() {
        assert_eq!(
            super::shown_url("postgres://lbp:s3cret@db.example:5432/lbp?sslmode=require"),
            "postgres://lbp:***@db.example:5432/lbp"
        );
        assert_eq!(super::shown_url("postgres://lbp@db.example/lbp"), "postgres://lbp@db.example/lbp");
        assert!(!super::shown_url("postgres://:s3cret@[::1/lbp").contains("s3cret"));
    }

    /// Nothing answers on the port: the wait ends, bounded, naming the attempts and the reason.
    #[tokio::test]
    async fn an_absent_server_is_retried_until_the_wait_is_over() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let error = super::Store::open_waiting(
            &format!("postgres://lbp:s3cret@127.0.0.1:{port}/lbp"),
            std::time::Duration::from_millis(700),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
        assert!(
            error.starts_with(&format!("cannot reach the database at postgres://lbp:***@127.0.0.1:{port}/lbp after ")),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
        assert!(!error.contains("after 1 attempts"), "it retried: {error}");
    }
}
