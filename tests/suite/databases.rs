//! Real databases for the tests: a SQLite file in its own temporary directory, or a fresh
//! database in the PostgreSQL cluster named by `LBP_CDS_TEST_POSTGRES_URL` (started by
//! `scripts/test` through `scripts/test-postgres`).
#![allow(dead_code)]

use std::path::PathBuf;

use lbp_cds::storage::StorageSettings;
use lbp_cds::storage::settings::IdForm;

/// The id key of every test (HMAC-SHA256 of patient and user ids).
pub const KEY: &[u8] = b"a test key for the audit trail's keyed hashes of ids";

pub struct Db {
    pub url: String,
    dir: Option<PathBuf>,
}

impl Db {
    pub fn sqlite() -> Db {
        let dir = crate::common::tempdir();
        Db { url: format!("sqlite://{}", dir.join("lbp-cds.db").display()), dir: Some(dir) }
    }

    /// A new, empty database in the test cluster. `None` (the test says it was skipped) when no
    /// cluster is configured; a panic when `LBP_CDS_REQUIRE_POSTGRES=1` says there must be one.
    pub async fn postgres() -> Option<Db> {
        let admin = postgres_admin_url()?;
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("the test PostgreSQL cluster at LBP_CDS_TEST_POSTGRES_URL is not reachable: {e}")
        });
        let name = format!("lbp_cds_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await.expect("test database created");
        connection.close().await.ok();
        let mut url = url::Url::parse(&admin).expect("LBP_CDS_TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        Some(Db { url: url.to_string(), dir: None })
    }

    pub fn storage(&self) -> StorageSettings {
        StorageSettings::new(&self.url, IdForm::Keyed(KEY.into()))
    }
}

/// The test cluster's URL, with the same skip-or-fail rule as [`Db::postgres`] (for tests that
/// start PostgreSQL servers of their own, and run only where the tests' cluster would).
pub fn postgres_admin_url() -> Option<String> {
    let Ok(admin) = std::env::var("LBP_CDS_TEST_POSTGRES_URL") else {
        if std::env::var("LBP_CDS_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("LBP_CDS_REQUIRE_POSTGRES=1 but LBP_CDS_TEST_POSTGRES_URL is not set: PostgreSQL did not start");
        }
        eprintln!("SKIPPED: no PostgreSQL (set LBP_CDS_TEST_POSTGRES_URL, or run ./scripts/test)");
        return None;
    };
    Some(admin)
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
