//! Settings of the database, the audit trail and retention: flags with environment variables,
//! and one typed struct the service reads.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Every default of these settings, written once: the flags and `StorageSettings::default()`
/// both read them.
pub mod defaults {
    pub const DATABASE_URL: &str = "sqlite://lbp-cds.db";
    pub const AUDIT_QUEUE_CAPACITY: usize = 10_000;
    pub const AUDIT_BATCH_SIZE: usize = 256;
    pub const RETENTION_DAYS: u32 = 2_190;
    pub const RETENTION_INTERVAL_SECONDS: u64 = 3_600;
    pub const FEEDBACK_MAX_ITEMS: usize = 1_000;
    pub const FEEDBACK_CARD_WAIT_MS: u64 = 2_000;
    /// Past a minute a feedback post would outlast any client's timeout.
    pub const FEEDBACK_CARD_WAIT_MAX_MS: u64 = 60_000;
}

#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Database for feedback and the audit trail: `sqlite://FILE` (created on first start) or
    /// `postgres://user:password@host:port/database`.
    #[arg(long, env = "LBP_CDS_DATABASE_URL", default_value = defaults::DATABASE_URL)]
    pub database_url: String,
    /// Do not record the cards issued (the audit trail is on by default). Feedback is then stored
    /// but cannot be checked against what was issued (every item is flagged `unknown-card`).
    #[arg(long, env = "LBP_CDS_NO_AUDIT_TRAIL", default_value_t = false)]
    pub no_audit_trail: bool,
    /// Hook calls whose cards may wait to be written; past it a call's audit rows are dropped,
    /// counted (`lbp_cds_audit_dropped_total`) and logged, and the hook answer is not delayed.
    #[arg(long, env = "LBP_CDS_AUDIT_QUEUE_CAPACITY", default_value_t = defaults::AUDIT_QUEUE_CAPACITY)]
    pub audit_queue_capacity: usize,
    /// Hook calls written per database transaction at most.
    #[arg(long, env = "LBP_CDS_AUDIT_BATCH_SIZE", default_value_t = defaults::AUDIT_BATCH_SIZE)]
    pub audit_batch_size: usize,
    /// File holding the key (any bytes, at least 32) for the keyed hashes (HMAC-SHA256) of
    /// patient and user ids in the audit trail. Default with SQLite: `<database file>.id-key`,
    /// created with a random key on first start. Required with PostgreSQL unless
    /// `--audit-plain-ids`.
    #[arg(long, env = "LBP_CDS_AUDIT_ID_KEY_FILE")]
    pub audit_id_key_file: Option<PathBuf>,
    /// Store patient and user ids as they are (PHI) instead of keyed hashes.
    #[arg(long, env = "LBP_CDS_AUDIT_PLAIN_IDS", default_value_t = false)]
    pub audit_plain_ids: bool,
    /// Audit and feedback rows older than this many days are deleted (0: kept for ever).
    #[arg(long, env = "LBP_CDS_RETENTION_DAYS", default_value_t = defaults::RETENTION_DAYS)]
    pub retention_days: u32,
    /// How often the retention job runs, in seconds (also once at start-up).
    #[arg(long, env = "LBP_CDS_RETENTION_INTERVAL_SECONDS", default_value_t = defaults::RETENTION_INTERVAL_SECONDS)]
    pub retention_interval_seconds: u64,
    /// With PostgreSQL (shared by replicas): how long feedback about a card not (yet) in the
    /// audit trail waits, at most once per post, for another replica's audit writer to commit it
    /// before the item is stored flagged `unknown-card`. 0: no wait; at most 60000.
    #[arg(long, env = "LBP_CDS_FEEDBACK_CARD_WAIT_MS", default_value_t = defaults::FEEDBACK_CARD_WAIT_MS)]
    pub feedback_card_wait_ms: u64,
}

/// How patient and user ids are written to the audit trail.
#[derive(Clone)]
pub enum IdForm {
    /// HMAC-SHA256 with this key, hex.
    Keyed(std::sync::Arc<[u8]>),
    Plain,
}

impl std::fmt::Debug for IdForm {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdForm::Keyed(_) => f.write_str("Keyed(<key>)"),
            IdForm::Plain => f.write_str("Plain"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub database_url: String,
    pub audit_trail: bool,
    pub audit_queue_capacity: usize,
    pub audit_batch_size: usize,
    pub id_form: IdForm,
    /// `None`: rows are kept for ever.
    pub retention: Option<Duration>,
    pub retention_interval: Duration,
    pub feedback_max_items: usize,
    /// With PostgreSQL: how long feedback waits for another replica's audit row (see the flag).
    pub feedback_card_wait: Duration,
    /// How long start-up waits for a PostgreSQL server that does not answer yet
    /// (`--dependency-wait-ms`; zero in tests that open their database themselves).
    pub dependency_wait: Duration,
}

impl StorageSettings {
    /// Settings for a database URL with every other setting at its default and a given key.
    pub fn new(database_url: impl Into<String>, id_form: IdForm) -> StorageSettings {
        StorageSettings {
            database_url: database_url.into(),
            audit_trail: true,
            audit_queue_capacity: defaults::AUDIT_QUEUE_CAPACITY,
            audit_batch_size: defaults::AUDIT_BATCH_SIZE,
            id_form,
            retention: retention(defaults::RETENTION_DAYS),
            retention_interval: Duration::from_secs(defaults::RETENTION_INTERVAL_SECONDS),
            feedback_max_items: defaults::FEEDBACK_MAX_ITEMS,
            feedback_card_wait: Duration::from_millis(defaults::FEEDBACK_CARD_WAIT_MS),
            dependency_wait: Duration::ZERO,
        }
    }

    /// Reads the id key (creating it beside a SQLite database on first start).
    pub fn from_args(args: &StorageArgs) -> Result<StorageSettings, String> {
        let id_form = if args.audit_plain_ids {
            IdForm::Plain
        } else {
            let path = match (&args.audit_id_key_file, sqlite_file(&args.database_url)) {
                (Some(path), _) => path.clone(),
                (None, Some(file)) => PathBuf::from(format!("{file}.id-key")),
                (None, None) => {
                    return Err(
                        "with PostgreSQL, set --audit-id-key-file (the key for hashing patient and user ids in the \
                                audit trail) or --audit-plain-ids"
                            .into(),
                    );
                }
            };
            IdForm::Keyed(read_or_create_key(&path, args.audit_id_key_file.is_none())?.into())
        };
        if args.feedback_card_wait_ms > defaults::FEEDBACK_CARD_WAIT_MAX_MS {
            return Err(format!(
                "--feedback-card-wait-ms is {}; at most {} (a minute) is accepted",
                args.feedback_card_wait_ms,
                defaults::FEEDBACK_CARD_WAIT_MAX_MS
            ));
        }
        Ok(StorageSettings {
            audit_trail: !args.no_audit_trail,
            audit_queue_capacity: args.audit_queue_capacity.max(1),
            audit_batch_size: args.audit_batch_size.max(1),
            retention: retention(args.retention_days),
            retention_interval: Duration::from_secs(args.retention_interval_seconds.max(1)),
            feedback_card_wait: Duration::from_millis(args.feedback_card_wait_ms),
            ..StorageSettings::new(args.database_url.clone(), id_form)
        })
    }
}

fn retention(days: u32) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(u64::from(days) * 86_400))
}

/// The file of a `sqlite:` URL, without its query string.
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let file = rest.split('?').next().unwrap_or_default();
    (!file.is_empty() && file != ":memory:").then(|| file.to_owned())
}

/// A configured key must exist; the default one beside a SQLite file is created (random, 0600).
fn read_or_create_key(path: &std::path::Path, create: bool) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(key) if key.len() >= 32 => Ok(key),
        Ok(_) => Err(format!("the id key in {} is shorter than 32 bytes", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && create => {
            use rand::RngCore;
            let mut key = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            write_private(path, &key).map_err(|e| format!("cannot create the id key {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "created the key for hashing ids in the audit trail");
            Ok(key)
        }
        Err(error) => Err(format!("cannot read the id key {}: {error}", path.display())),
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use crate::config::{Cli, Command};

    /// The settings file of `serve --config` knows these settings like any other flag.
    #[test]
    fn storage_settings_come_from_the_settings_file() {
        let dir = std::env::temp_dir().join(format!("lbp-cds-storage-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("settings.toml");
        let database = format!("sqlite://{}", dir.join("x.db").display());
        std::fs::write(
            &file,
            format!(
                "database-url = \"{database}\"\nno-audit-trail = true\nretention-days = 30\naudit-plain-ids = true\n"
            ),
        )
        .unwrap();
        let cli = Cli::load_from(["lbp-cds", "serve", "--config", file.to_str().unwrap()].map(OsString::from)).unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let settings = super::StorageSettings::from_args(&args.storage).unwrap();
        assert_eq!(settings.database_url, database);
        assert!(!settings.audit_trail);
        assert_eq!(settings.retention, Some(std::time::Duration::from_secs(30 * 86_400)));
        assert!(matches!(settings.id_form, super::IdForm::Plain));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_feedback_wait_is_bounded() {
        let cli = Cli::load_from(
            ["lbp-cds", "serve", "--audit-plain-ids", "--feedback-card-wait-ms", "18446744073709551615"]
                .map(OsString::from),
        )
        .unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let error = super::StorageSettings::from_args(&args.storage).unwrap_err();
        assert!(error.contains("--feedback-card-wait-ms") && error.contains("at most 60000"), "{error}");
    }

    #[test]
    fn postgres_needs_a_key_or_plain_ids() {
        let cli =
            Cli::load_from(["lbp-cds", "serve", "--database-url", "postgres://u@localhost/db"].map(OsString::from))
                .unwrap();
        let Command::Serve(args) = cli.command else { panic!("serve") };
        let error = super::StorageSettings::from_args(&args.storage).unwrap_err();
        assert!(error.contains("--audit-id-key-file"), "{error}");
    }
}
