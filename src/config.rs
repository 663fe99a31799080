//! Configuration: command-line flags, each with an environment variable, and safe defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use time::Date;

use crate::content::{Content, ContentError};
use crate::evaluate::Options;

#[derive(Debug, Parser)]
#[command(name = "lbp-cds", version, about = "CDS Hooks service for adult low back pain")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the CDS Hooks service.
    Serve(ServeArgs),
    /// Print the cards for a stored hook request, offline.
    Evaluate(EvaluateArgs),
    /// Validate a content directory and exit.
    CheckContent(ContentArgs),
    /// Development keys and signed test tokens, to call a protected server.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a key pair: a private key (PKCS#8 PEM) and the public JWKS to trust.
    Keygen {
        /// ES384 (default), RS384, ES256 or RS256.
        #[arg(long, default_value = "ES384")]
        alg: String,
        /// Key id, put in the JWKS and in tokens.
        #[arg(long, default_value = "dev-1")]
        kid: String,
        /// Directory for `<kid>.pem` and `jwks.json`.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Sign a CDS client JWT with a private key.
    Sign {
        /// The private key written by `token keygen`.
        #[arg(long)]
        key: PathBuf,
        #[arg(long, default_value = "ES384")]
        alg: String,
        #[arg(long, default_value = "dev-1")]
        kid: String,
        /// Issuer (`iss`): must be a trusted issuer of the server.
        #[arg(long)]
        iss: String,
        /// Audience (`aud`): the exact URL the token will be sent to.
        #[arg(long)]
        aud: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 300)]
        ttl: u64,
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ContentArgs {
    /// Clinical content directory (card texts, value sets, rules). Default: the copy of `cards/`
    /// built into the binary.
    #[arg(long, env = "LBP_CDS_CONTENT")]
    pub content: Option<PathBuf>,
}

impl ContentArgs {
    pub fn load(&self) -> Result<Content, ContentError> {
        match &self.content {
            Some(dir) => Content::from_dir(dir),
            None => Content::embedded(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ClockArgs {
    /// Evaluate as if today were this date (YYYY-MM-DD): for audits, demos and tests.
    /// Default: the system clock's date in `--time-zone`.
    #[arg(long, env = "LBP_CDS_TODAY", value_parser = parse_date)]
    pub today: Option<Date>,
    /// IANA time zone of the clinic (`America/Chicago`): the clinical date is today there.
    /// Default: the host's time zone.
    #[arg(long, env = "LBP_CDS_TIME_ZONE", value_parser = crate::clock::parse_time_zone)]
    pub time_zone: Option<jiff::tz::TimeZone>,
}

impl ClockArgs {
    /// The clinical date: `--today`, else today in `--time-zone` (the host's by default).
    pub fn clinical_date(&self) -> Date {
        crate::clock::today(self.today, self.time_zone.as_ref())
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "LBP_CDS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub content: ContentArgs,
    #[command(flatten)]
    pub clock: ClockArgs,
    /// Largest accepted request body, in bytes (413 above it).
    #[arg(long, env = "LBP_CDS_BODY_LIMIT_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Time limit for one request, in milliseconds (408 past it).
    #[arg(long, env = "LBP_CDS_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Include patient ids in logs. Off by default: patient ids are PHI.
    #[arg(long, env = "LBP_CDS_LOG_PATIENT_IDS", default_value_t = false)]
    pub log_patient_ids: bool,
    /// Also return the PAMA ratings in `extension.systemActions`, for clients that read them
    /// only there (the public CDS Hooks sandbox).
    #[arg(long, env = "LBP_CDS_PAMA_EXTENSION_MIRROR", default_value_t = false)]
    pub pama_extension_mirror: bool,
    /// SMART launch URL of an app that administers the STarT Back tool; the screening card
    /// links to it (`type: smart`).
    #[arg(long, env = "LBP_CDS_START_BACK_APP_URL", value_parser = parse_absolute_url)]
    pub start_back_app_url: Option<String>,
    /// Authentication configuration (TOML: trusted issuers, keys, FHIR servers). Without it,
    /// authentication is off and the service only listens on loopback.
    #[arg(long, env = "LBP_CDS_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,
    /// Allow listening on a non-loopback address without authentication. Never in production.
    #[arg(long, env = "LBP_CDS_INSECURE_NO_AUTH", default_value_t = false)]
    pub insecure_no_auth: bool,
    /// With authentication off: FHIR servers that `fhirServer` may name (comma-separated).
    #[arg(long, env = "LBP_CDS_FHIR_SERVERS", value_delimiter = ',')]
    pub fhir_servers: Vec<String>,
    /// Largest accepted total size of request headers, in bytes (431 above it).
    #[arg(long, env = "LBP_CDS_HEADER_LIMIT_BYTES", default_value_t = 16 * 1024)]
    pub header_limit_bytes: usize,
    /// Requests handled at once; more are refused with 503 rather than queued.
    #[arg(long, env = "LBP_CDS_MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,
    /// Time budget for all FHIR queries of one hook call, in milliseconds.
    #[arg(long, env = "LBP_CDS_FHIR_BUDGET_MS", default_value_t = 2_500)]
    pub fhir_budget_ms: u64,
    /// Pages followed per FHIR query (`next` links), the first included.
    #[arg(long, env = "LBP_CDS_FHIR_MAX_PAGES", default_value_t = 10)]
    pub fhir_max_pages: usize,
}

#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// A stored hook request (JSON).
    pub file: PathBuf,
    /// Service id; default: the service for the request's hook.
    #[arg(long)]
    pub service: Option<String>,
    /// Print the raw CDS Hooks response instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub content: ContentArgs,
    #[command(flatten)]
    pub clock: ClockArgs,
    #[arg(long, env = "LBP_CDS_PAMA_EXTENSION_MIRROR", default_value_t = false)]
    pub pama_extension_mirror: bool,
}

fn parse_absolute_url(value: &str) -> Result<String, String> {
    if (value.starts_with("https://") || value.starts_with("http://")) && !value.contains(char::is_whitespace) {
        Ok(value.to_owned())
    } else {
        Err("expected an absolute http(s) URL".into())
    }
}

fn parse_date(value: &str) -> Result<Date, String> {
    Date::parse(value, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("expected YYYY-MM-DD: {e}"))
}

/// Settings the running service needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub fixed_today: Option<Date>,
    /// Time zone of the clinical date; `None`: the host's.
    pub time_zone: Option<jiff::tz::TimeZone>,
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
    pub log_patient_ids: bool,
    pub pama_extension_mirror: bool,
    pub start_back_app_url: Option<String>,
    /// `None`: authentication is off.
    pub auth: Option<std::sync::Arc<crate::auth::Authenticator>>,
    /// With authentication off: FHIR servers `fhirServer` may name.
    pub fhir_servers: Vec<String>,
    pub header_limit_bytes: usize,
    pub max_concurrent_requests: usize,
    pub fetch_limits: crate::fhir::FetchLimits,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            fixed_today: None,
            time_zone: None,
            body_limit_bytes: 10 * 1024 * 1024,
            request_timeout_ms: 10_000,
            log_patient_ids: false,
            pama_extension_mirror: false,
            start_back_app_url: None,
            auth: None,
            fhir_servers: Vec::new(),
            header_limit_bytes: 16 * 1024,
            max_concurrent_requests: 256,
            fetch_limits: crate::fhir::FetchLimits::default(),
        }
    }
}

impl Settings {
    pub fn from_args(args: &ServeArgs, auth: Option<std::sync::Arc<crate::auth::Authenticator>>) -> Settings {
        Settings {
            auth,
            fhir_servers: args.fhir_servers.clone(),
            header_limit_bytes: args.header_limit_bytes,
            max_concurrent_requests: args.max_concurrent_requests,
            fetch_limits: crate::fhir::FetchLimits {
                budget: std::time::Duration::from_millis(args.fhir_budget_ms),
                max_pages: args.fhir_max_pages.max(1),
                ..crate::fhir::FetchLimits::default()
            },
            fixed_today: args.clock.today,
            time_zone: args.clock.time_zone.clone(),
            body_limit_bytes: args.body_limit_bytes,
            request_timeout_ms: args.request_timeout_ms,
            log_patient_ids: args.log_patient_ids,
            pama_extension_mirror: args.pama_extension_mirror,
            start_back_app_url: args.start_back_app_url.clone(),
        }
    }

    /// The clinical date: fixed when configured, else today in the configured time zone.
    pub fn today(&self) -> Date {
        crate::clock::today(self.fixed_today, self.time_zone.as_ref())
    }

    pub fn options(&self) -> Options {
        Options {
            mirror_system_actions: self.pama_extension_mirror,
            start_back_app_url: self.start_back_app_url.clone(),
        }
    }
}
