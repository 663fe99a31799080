//! The console at `/console`, for the people who tune the rules: card preview through the real
//! hook path, the content browser, and charts of acceptance, override reasons and alert burden.
//! Server-rendered HTML with a little plain JavaScript; CSS and JavaScript are compiled in.
//!
//! - `routes`: the handlers (preview, feedback, content, charts, assets);
//! - `pages`: HTML building with escaping, one function per page;
//! - `charts`: server-rendered SVG;
//! - `auth`: sessions, the console login, CSRF and Origin checks;
//! - `catalogue`: the one adapter over `content`;
//! - `markdown`: card detail rendered safely;
//! - `shift`: fixture dates moved to the clinical date (also `lbp-cds fixture`).

mod auth;
pub mod catalogue;
mod charts;
pub mod markdown;
mod pages;
mod routes;
pub mod shift;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use clap::Args;

use crate::config::defaults;
use crate::http::AppState;

/// `lbp-cds serve` flags for the console.
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Serve no console at `/console`.
    #[arg(long, env = "LBP_CDS_NO_CONSOLE", default_value_t = false)]
    pub no_console: bool,
    /// File holding the console token (at least 16 characters; surrounding white space is
    /// ignored). With authentication on, the console asks for it at login; without it the
    /// console stays closed. Never logged.
    #[arg(long, env = "LBP_CDS_CONSOLE_TOKEN_FILE")]
    pub console_token_file: Option<PathBuf>,
    /// Folder of stored hook requests offered in the preview. Default: `fixtures/requests/` as
    /// built into the binary.
    #[arg(long, env = "LBP_CDS_CONSOLE_FIXTURES")]
    pub console_fixtures: Option<PathBuf>,
    /// `cohort.json` of the last `lbp-cds cohort` run, for the alert-burden chart (read on each
    /// visit, so a new run shows without a restart).
    #[arg(long, env = "LBP_CDS_COHORT_REPORT")]
    pub cohort_report: Option<PathBuf>,
    /// A console session ends after this many minutes without a request.
    #[arg(long, env = "LBP_CDS_CONSOLE_SESSION_MINUTES", default_value_t = defaults::CONSOLE_SESSION_MINUTES)]
    pub console_session_minutes: u64,
}

/// The console's settings, built at start-up (the token file is read then).
#[derive(Clone, Default)]
pub struct ConsoleSettings {
    pub enabled: bool,
    pub token: Option<ConsoleToken>,
    pub fixtures_dir: Option<PathBuf>,
    pub cohort_report: Option<PathBuf>,
    pub session_minutes: u64,
}

impl std::fmt::Debug for ConsoleSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSettings")
            .field("enabled", &self.enabled)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("fixtures_dir", &self.fixtures_dir)
            .field("cohort_report", &self.cohort_report)
            .field("session_minutes", &self.session_minutes)
            .finish()
    }
}

/// The console token. No `Debug` or `Display` that shows it: it cannot reach a log by accident.
#[derive(Clone)]
pub struct ConsoleToken(Arc<str>);

impl ConsoleToken {
    pub const MIN_LEN: usize = 16;

    pub fn new(token: &str) -> Result<ConsoleToken, String> {
        let token = token.trim();
        if token.chars().count() < ConsoleToken::MIN_LEN {
            return Err(format!("the console token must be at least {} characters", ConsoleToken::MIN_LEN));
        }
        Ok(ConsoleToken(token.into()))
    }

    /// Compares in time independent of where the first difference is (SHA-256 of both sides).
    pub fn matches(&self, offered: &str) -> bool {
        use sha2::{Digest, Sha256};
        let expected = Sha256::digest(self.0.as_bytes());
        let offered = Sha256::digest(offered.trim().as_bytes());
        expected.iter().zip(offered.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl ConsoleSettings {
    pub fn defaults() -> ConsoleSettings {
        ConsoleSettings {
            enabled: true,
            session_minutes: defaults::CONSOLE_SESSION_MINUTES,
            ..ConsoleSettings::default()
        }
    }

    pub fn from_args(args: &ConsoleArgs) -> Result<ConsoleSettings, String> {
        let token = match &args.console_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the console token file {}: {e}", path.display()))?;
                Some(ConsoleToken::new(&text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            None => None,
        };
        Ok(ConsoleSettings {
            enabled: !args.no_console,
            token,
            fixtures_dir: args.console_fixtures.clone(),
            cohort_report: args.cohort_report.clone(),
            session_minutes: args.console_session_minutes.max(1),
        })
    }
}

/// The console's routes, or none when it is turned off.
pub fn router(state: &AppState) -> Router<AppState> {
    if !state.settings.console.enabled {
        return Router::new();
    }
    routes::router(state)
}

/// The stored requests built into the binary (`fixtures/requests/`).
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_fixtures.rs"));
}

/// A stored request offered in the preview.
pub struct Fixture {
    pub name: String,
    pub text: String,
}

/// The stored requests: from `--console-fixtures DIR`, else those built into the binary.
pub fn fixtures(dir: Option<&Path>) -> Vec<Fixture> {
    let Some(dir) = dir else {
        return embedded::FIXTURES
            .iter()
            .map(|(name, text)| Fixture { name: name.trim_end_matches(".json").to_owned(), text: (*text).to_owned() })
            .collect();
    };
    let mut found: Vec<Fixture> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let stem = name.strip_suffix(".json")?.to_owned();
                    let text = std::fs::read_to_string(entry.path()).ok()?;
                    Some(Fixture { name: stem, text })
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// `lbp-cds fixture FILE`: a stored request with its dates moved to the clinical date.
#[derive(Debug, Clone, Args)]
pub struct FixtureArgs {
    /// A stored hook request (JSON), for example `fixtures/requests/order-select-mri-acute-lbp.json`;
    /// `-` reads standard input.
    pub file: PathBuf,
    /// The clinical date the request was written for.
    #[arg(long, value_parser = parse_day, default_value = "2026-03-02")]
    pub written_for: time::Date,
    #[command(flatten)]
    pub clock: crate::config::ClockArgs,
}

fn parse_day(value: &str) -> Result<time::Date, String> {
    time::Date::parse(value, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("expected YYYY-MM-DD: {e}"))
}

/// Prints the shifted request on standard output (for `curl --data @-`).
pub fn fixture_command(args: &FixtureArgs) -> ExitCode {
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        std::fs::read_to_string(&args.file)
    };
    let text = match text {
        Ok(text) => text,
        Err(error) => return fail(&format!("cannot read {}: {error}", args.file.display())),
    };
    let mut request: serde_json::Value = match serde_json::from_str(&text) {
        Ok(request) => request,
        Err(error) => return fail(&format!("{} is not JSON: {error}", args.file.display())),
    };
    let today = args.clock.clinical_date();
    let days = (today - args.written_for).whole_days();
    let moved = shift::shift_request(&mut request, days);
    eprintln!("lbp-cds: {moved} dates moved by {days} days ({} -> {today})", args.written_for);
    println!("{}", serde_json::to_string_pretty(&request).unwrap_or_default());
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("lbp-cds: {message}");
    ExitCode::from(2)
}
