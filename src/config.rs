//! Configuration, in layers: safe defaults (the `defaults` module, written once), then an optional
//! settings file (`--config FILE`, TOML, keys are the flags' long names), then environment
//! variables, then command-line flags. Clap reads the last three; [`Cli::load`] adds the file by
//! passing its values as flags wherever neither the command line nor the environment set them.

use std::ffi::OsString;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use time::Date;

use crate::content::{CardDetail, Content, ContentError};
use crate::evaluate::Options;
use crate::outbound::UrlScope;

/// Every default of the service's settings, written once: the flags and `Settings::default()`
/// both read them.
pub mod defaults {
    pub const BODY_LIMIT_BYTES: usize = 10 * 1024 * 1024;
    pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
    pub const HEADER_LIMIT_BYTES: usize = 16 * 1024;
    pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
    pub const MAX_CONNECTIONS: usize = 1_024;
    pub const MAX_CONCURRENT_REQUESTS: usize = 256;
    pub const SHUTDOWN_GRACE_MS: u64 = 10_000;
    pub const SHUTDOWN_DELAY_MS: u64 = 0;
    pub const DEPENDENCY_WAIT_MS: u64 = 30_000;
    pub const CONTENT_POLL_MS: u64 = 5_000;
    pub const FHIR_BUDGET_MS: u64 = 2_500;
    pub const FHIR_MAX_PAGES: usize = 10;
    pub const FHIR_MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;
    pub const FHIR_MAX_CALL_BYTES: usize = 32 * 1024 * 1024;
    pub const MAX_CALL_RESOURCES: usize = crate::record::DEFAULT_RESOURCE_LIMIT;
    pub const CONSOLE_SESSION_MINUTES: u64 = 480;
    pub const CARD_DETAIL: &str = "brief";
}

#[derive(Debug, Parser)]
#[command(name = "lbp-cds", version, about = "CDS Hooks service for adult low back pain")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the CDS Hooks service.
    Serve(Box<ServeArgs>),
    /// Print the cards for a stored hook request, offline.
    Evaluate(EvaluateArgs),
    /// Validate a content directory and exit.
    CheckContent(ContentArgs),
    /// Acceptance report from the database: per card type and suggestion over a date range.
    Report(ReportArgs),
    /// Development keys and signed test tokens, to call a protected server.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run the services over a folder of patient Bundles: the alert burden and coding gaps.
    Cohort(crate::cohort::CohortArgs),
    /// Print a stored request with its dates moved to the clinical date (`| curl --data @-`).
    Fixture(crate::console::FixtureArgs),
    /// Clinical content tools: refresh value set expansions from a terminology server.
    #[command(subcommand)]
    Content(crate::terminology::ContentCommand),
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

impl Cli {
    /// Parses the command line, layering `serve --config FILE` under the environment and flags.
    pub fn load() -> Result<Cli, LoadError> {
        Cli::load_from(std::env::args_os())
    }

    pub fn load_from(args: impl IntoIterator<Item = OsString>) -> Result<Cli, LoadError> {
        use clap::{CommandFactory, FromArgMatches};
        let args: Vec<OsString> = args.into_iter().collect();
        let matches = Cli::command().try_get_matches_from(&args)?;
        let Some(("serve", serve)) = matches.subcommand() else {
            return Ok(Cli::from_arg_matches(&matches)?);
        };
        let Some(file) = serve.get_one::<PathBuf>("config") else {
            return Ok(Cli::from_arg_matches(&matches)?);
        };
        let shown = file.display();
        let text = std::fs::read_to_string(file).map_err(|e| LoadError::File(format!("cannot read {shown}: {e}")))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| LoadError::File(format!("{shown}: {}", e.message())))?;
        let known: Vec<String> = Cli::command()
            .find_subcommand("serve")
            .map(|c| c.get_arguments().filter_map(|a| a.get_long().map(str::to_owned)).collect())
            .unwrap_or_default();
        // File values go in front of the user's arguments, and only for settings that neither
        // the command line nor the environment gave: those keep precedence.
        let mut layered: Vec<OsString> = args[..2.min(args.len())].to_vec();
        for (key, value) in &table {
            if key == "config" || !known.contains(key) {
                return Err(LoadError::File(format!(
                    "{shown}: unknown setting `{key}` (settings are the long names of `lbp-cds serve --help`)"
                )));
            }
            let id = key.replace('-', "_");
            let given = matches!(
                serve.value_source(&id),
                Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
            );
            if given {
                continue;
            }
            // Switches take no value: `true` sets the flag, `false` leaves its default (off).
            if let toml::Value::Boolean(on) = value {
                if *on {
                    layered.push(format!("--{key}").into());
                }
                continue;
            }
            let values: Vec<String> = match value {
                toml::Value::Array(items) => items.iter().map(toml_scalar).collect::<Result<_, _>>(),
                scalar => toml_scalar(scalar).map(|one| vec![one]),
            }
            .map_err(|e| LoadError::File(format!("{shown}: setting `{key}` {e}")))?;
            for value in values {
                layered.push(format!("--{key}={value}").into());
            }
        }
        layered.extend(args.iter().skip(2).cloned());
        Ok(Cli::try_parse_from(layered)?)
    }
}

/// Why the command line or the settings file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Clap's own error (also `--help` and `--version`, which it prints and exits for).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error("{0}")]
    File(String),
}

fn toml_scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("must be a string, number, boolean or a list of them".into()),
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Settings file (TOML): any flag below under its long name, for example
    /// `request-timeout-ms = 5000`. Environment variables and flags override it.
    #[arg(long, env = "LBP_CDS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "LBP_CDS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub content: ContentArgs,
    #[command(flatten)]
    pub clock: ClockArgs,
    /// Largest accepted request body, in bytes (413 above it).
    #[arg(long, env = "LBP_CDS_BODY_LIMIT_BYTES", default_value_t = defaults::BODY_LIMIT_BYTES)]
    pub body_limit_bytes: usize,
    /// Time limit for one request, in milliseconds (408 past it): one deadline for reading the
    /// body, authentication, fetching, reading the record and assessing.
    #[arg(long, env = "LBP_CDS_REQUEST_TIMEOUT_MS", default_value_t = defaults::REQUEST_TIMEOUT_MS)]
    pub request_timeout_ms: u64,
    /// Time a connection may take to send a request's head, and may stay idle between requests,
    /// in milliseconds; then it is closed.
    #[arg(long, env = "LBP_CDS_HEADER_READ_TIMEOUT_MS", default_value_t = defaults::HEADER_READ_TIMEOUT_MS)]
    pub header_read_timeout_ms: u64,
    /// Open connections at most; past it, new connections are closed at once (logged, counted).
    #[arg(long, env = "LBP_CDS_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// On SIGTERM or Ctrl-C, time given to calls in flight before every connection is closed, in
    /// milliseconds.
    #[arg(long, env = "LBP_CDS_SHUTDOWN_GRACE_MS", default_value_t = defaults::SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,
    /// On SIGTERM, time spent answering `/ready` with 503 while still serving every call, in
    /// milliseconds, before new connections are refused: a load balancer (a Kubernetes
    /// endpoints controller) needs that long to stop sending traffic. Then the grace period runs.
    #[arg(long, env = "LBP_CDS_SHUTDOWN_DELAY_MS", default_value_t = defaults::SHUTDOWN_DELAY_MS)]
    pub shutdown_delay_ms: u64,
    /// Redis URL (`redis://[:password@]host:port/db`): share the `jti` replay cache and fetched
    /// JWKS key sets with the other replicas. Without it both stay in this process (one machine).
    #[arg(long, env = "LBP_CDS_REDIS_URL")]
    pub redis_url: Option<String>,
    /// At start-up, how long to wait for dependencies (Redis, PostgreSQL) with retries before giving up, in
    /// milliseconds.
    #[arg(long, env = "LBP_CDS_DEPENDENCY_WAIT_MS", default_value_t = defaults::DEPENDENCY_WAIT_MS)]
    pub dependency_wait_ms: u64,
    /// With `--content DIR`: how often to look for changed content files, in milliseconds (0:
    /// never; SIGHUP still reloads). A valid change replaces the content without a restart.
    #[arg(long, env = "LBP_CDS_CONTENT_POLL_MS", default_value_t = defaults::CONTENT_POLL_MS)]
    pub content_poll_ms: u64,
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
    #[command(flatten)]
    pub cards: CardArgs,
    /// Authentication configuration (TOML: trusted issuers, keys, FHIR servers). Without it,
    /// authentication is off and the service only listens on loopback.
    #[arg(long, env = "LBP_CDS_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,
    /// Allow listening on a non-loopback address without authentication. Never in production.
    #[arg(long, env = "LBP_CDS_INSECURE_NO_AUTH", default_value_t = false)]
    pub insecure_no_auth: bool,
    /// With authentication off: FHIR servers that `fhirServer` may name (comma-separated base
    /// URLs; http allowed, since this mode is for local use).
    #[arg(long, env = "LBP_CDS_FHIR_SERVERS", value_delimiter = ',', value_parser = parse_fhir_server)]
    pub fhir_servers: Vec<UrlScope>,
    /// Largest accepted total size of request headers, in bytes (431 above it).
    #[arg(long, env = "LBP_CDS_HEADER_LIMIT_BYTES", default_value_t = defaults::HEADER_LIMIT_BYTES)]
    pub header_limit_bytes: usize,
    /// Hook calls handled at once (after authentication); more are refused with 503 rather than
    /// queued. Discovery, health, readiness and metrics are not counted.
    #[arg(long, env = "LBP_CDS_MAX_CONCURRENT_REQUESTS", default_value_t = defaults::MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Time budget for all FHIR queries of one hook call, in milliseconds.
    #[arg(long, env = "LBP_CDS_FHIR_BUDGET_MS", default_value_t = defaults::FHIR_BUDGET_MS)]
    pub fhir_budget_ms: u64,
    /// Pages followed per FHIR query (`next` links), the first included.
    #[arg(long, env = "LBP_CDS_FHIR_MAX_PAGES", default_value_t = defaults::FHIR_MAX_PAGES)]
    pub fhir_max_pages: usize,
    /// Largest FHIR page read, in bytes.
    #[arg(long, env = "LBP_CDS_FHIR_MAX_PAGE_BYTES", default_value_t = defaults::FHIR_MAX_PAGE_BYTES)]
    pub fhir_max_page_bytes: usize,
    /// Bytes read from the FHIR server for one hook call, all queries and pages together.
    #[arg(long, env = "LBP_CDS_FHIR_MAX_CALL_BYTES", default_value_t = defaults::FHIR_MAX_CALL_BYTES)]
    pub fhir_max_call_bytes: usize,
    /// Resources read for one hook call, prefetch and fetched pages together; past it the data
    /// is reported incomplete.
    #[arg(long, env = "LBP_CDS_MAX_CALL_RESOURCES", default_value_t = defaults::MAX_CALL_RESOURCES)]
    pub max_call_resources: usize,
    /// Database, audit trail and retention.
    #[command(flatten)]
    pub storage: crate::storage::StorageArgs,
    /// The console at `/console`.
    #[command(flatten)]
    pub console: crate::console::ConsoleArgs,
}

/// How cards are written (`serve` and `evaluate`).
#[derive(Debug, Clone, Args)]
pub struct CardArgs {
    /// What a card's `detail` holds: `brief` (the finding and the action in at most three short
    /// bullets, then what was found in the record in plain words; the guideline behind the
    /// card's links) or `full` (the long form: guideline text, FHIR references, rule ids).
    #[arg(long, env = "LBP_CDS_CARD_DETAIL", default_value = defaults::CARD_DETAIL, value_parser = parse_card_detail)]
    pub card_detail: CardDetail,
    /// The service's public base URL, as users reach it (behind a proxy, the proxy's URL): brief
    /// cards link to `{public-url}/console/content/cards/{card-type}`. Default: `public_base_url` of
    /// the authentication configuration; with neither, cards carry no console link.
    #[arg(long, env = "LBP_CDS_PUBLIC_URL", value_parser = parse_absolute_url)]
    pub public_url: Option<String>,
}

fn parse_card_detail(value: &str) -> Result<CardDetail, String> {
    value.parse()
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// The service's database (as `serve --database-url`).
    #[arg(long, env = "LBP_CDS_DATABASE_URL", default_value = crate::storage::settings::defaults::DATABASE_URL)]
    pub database_url: String,
    /// First day (YYYY-MM-DD, UTC), inclusive; default: 29 days before `--to`.
    #[arg(long, value_parser = parse_date)]
    pub from: Option<Date>,
    /// Last day (YYYY-MM-DD, UTC), inclusive; default: today.
    #[arg(long, value_parser = parse_date)]
    pub to: Option<Date>,
    /// CSV instead of text.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// JSON (the same as `GET /analytics`) instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_fhir_server(value: &str) -> Result<UrlScope, String> {
    UrlScope::parse(value, true, false).map_err(|e| format!("the FHIR server URL {e}"))
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
    #[command(flatten)]
    pub cards: CardArgs,
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
    /// Brief (default) or full card `detail`.
    pub card_detail: CardDetail,
    /// Public base URL for the cards' console links; `None`: no console link.
    pub public_url: Option<String>,
    /// `None`: authentication is off.
    pub auth: Option<std::sync::Arc<crate::auth::Authenticator>>,
    /// Serve without authentication on a non-loopback address (never in production).
    pub insecure_no_auth: bool,
    /// With authentication off: FHIR servers `fhirServer` may name.
    pub fhir_servers: Vec<UrlScope>,
    pub header_limit_bytes: usize,
    pub header_read_timeout_ms: u64,
    pub max_connections: usize,
    pub shutdown_grace_ms: u64,
    pub shutdown_delay_ms: u64,
    pub max_concurrent_requests: usize,
    pub fetch_limits: crate::fhir::FetchLimits,
    /// The content directory, reloaded on SIGHUP and when its files change; `None`: the
    /// embedded content, never reloaded.
    pub content_dir: Option<PathBuf>,
    pub content_poll_ms: u64,
    /// `None`: the replay and key-set caches are in process.
    pub shared_cache: Option<crate::shared_cache::SharedCache>,
    /// The console at `/console` (its token is read by `startup`).
    pub console: crate::console::ConsoleSettings,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            fixed_today: None,
            time_zone: None,
            body_limit_bytes: defaults::BODY_LIMIT_BYTES,
            request_timeout_ms: defaults::REQUEST_TIMEOUT_MS,
            log_patient_ids: false,
            pama_extension_mirror: false,
            start_back_app_url: None,
            card_detail: CardDetail::Brief,
            public_url: None,
            auth: None,
            insecure_no_auth: false,
            fhir_servers: Vec::new(),
            header_limit_bytes: defaults::HEADER_LIMIT_BYTES,
            header_read_timeout_ms: defaults::HEADER_READ_TIMEOUT_MS,
            max_connections: defaults::MAX_CONNECTIONS,
            shutdown_grace_ms: defaults::SHUTDOWN_GRACE_MS,
            shutdown_delay_ms: defaults::SHUTDOWN_DELAY_MS,
            max_concurrent_requests: defaults::MAX_CONCURRENT_REQUESTS,
            content_dir: None,
            content_poll_ms: defaults::CONTENT_POLL_MS,
            shared_cache: None,
            console: crate::console::ConsoleSettings::defaults(),
            // Authentication off is for local use, where FHIR servers may be plain http.
            fetch_limits: crate::fhir::FetchLimits { allow_http: true, ..crate::fhir::FetchLimits::default() },
        }
    }
}

impl Settings {
    pub fn from_args(
        args: &ServeArgs,
        auth: Option<std::sync::Arc<crate::auth::Authenticator>>,
        shared_cache: Option<crate::shared_cache::SharedCache>,
    ) -> Settings {
        // http FHIR servers only where authentication is off (local use) or its configuration allows them.
        let allow_http = auth.as_ref().is_none_or(|auth| auth.config().allow_insecure_http);
        let public_url =
            args.cards.public_url.clone().or_else(|| {
                auth.as_ref().map(|auth| auth.config().public_base_url.clone()).filter(|url| !url.is_empty())
            });
        Settings {
            card_detail: args.cards.card_detail,
            public_url,
            auth,
            insecure_no_auth: args.insecure_no_auth,
            fhir_servers: args.fhir_servers.clone(),
            header_limit_bytes: args.header_limit_bytes,
            header_read_timeout_ms: args.header_read_timeout_ms.max(1),
            max_connections: args.max_connections.max(1),
            shutdown_grace_ms: args.shutdown_grace_ms,
            shutdown_delay_ms: args.shutdown_delay_ms,
            content_dir: args.content.content.clone(),
            content_poll_ms: args.content_poll_ms,
            shared_cache,
            console: crate::console::ConsoleSettings {
                enabled: !args.console.no_console,
                ..crate::console::ConsoleSettings::defaults()
            },
            max_concurrent_requests: args.max_concurrent_requests.max(1),
            fetch_limits: crate::fhir::FetchLimits {
                budget: std::time::Duration::from_millis(args.fhir_budget_ms),
                max_pages: args.fhir_max_pages.max(1),
                max_page_bytes: args.fhir_max_page_bytes.max(1),
                max_call_bytes: args.fhir_max_call_bytes.max(1),
                max_call_resources: args.max_call_resources.max(1),
                allow_http,
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
            card_detail: self.card_detail,
            public_url: self.public_url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(cli: Cli) -> ServeArgs {
        match cli.command {
            Command::Serve(args) => *args,
            other => panic!("not serve: {other:?}"),
        }
    }

    /// Defaults, then the file, then flags: a flag wins over the file, the file over a default.
    #[test]
    fn a_settings_file_sits_between_defaults_and_flags() {
        let file = std::env::temp_dir().join(format!("lbp-cds-settings-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(
            &file,
            "request-timeout-ms = 1234\nbody-limit-bytes = 7\nfhir-servers = [\"http://a.example/r4\", \"https://b.example/fhir\"]\nlog-patient-ids = true\n",
        )
        .unwrap();
        let args = |extra: &[&str]| {
            let mut all = vec!["lbp-cds", "serve", "--config", file.to_str().unwrap()];
            all.extend(extra);
            serve_args(Cli::load_from(all.into_iter().map(OsString::from)).unwrap())
        };
        let from_file = args(&[]);
        assert_eq!(from_file.request_timeout_ms, 1234);
        assert_eq!(from_file.body_limit_bytes, 7);
        assert_eq!(from_file.fhir_servers.len(), 2);
        assert!(from_file.log_patient_ids);
        assert_eq!(from_file.max_connections, defaults::MAX_CONNECTIONS, "unset settings keep their default");
        let flag_wins = args(&["--body-limit-bytes", "99"]);
        assert_eq!(flag_wins.body_limit_bytes, 99);
        assert_eq!(flag_wins.request_timeout_ms, 1234);

        std::fs::write(&file, "request-timeout = 5\n").unwrap();
        let error =
            Cli::load_from(["lbp-cds", "serve", "--config", file.to_str().unwrap()].map(OsString::from)).unwrap_err();
        assert!(error.to_string().contains("unknown setting `request-timeout`"), "{error}");
        std::fs::write(&file, "request-timeout-ms = \"soon\"\n").unwrap();
        let error =
            Cli::load_from(["lbp-cds", "serve", "--config", file.to_str().unwrap()].map(OsString::from)).unwrap_err();
        assert!(error.to_string().contains("request-timeout-ms"), "the bad setting is named: {error}");
        let _ = std::fs::remove_file(&file);
    }

    /// `card-detail` defaults to brief; the settings file or a flag sets it; a wrong value is
    /// refused, naming the values it takes. `public-url` must be absolute.
    #[test]
    fn card_detail_and_public_url_are_settings() {
        let parse = |extra: &[&str]| {
            let mut all = vec!["lbp-cds", "serve"];
            all.extend(extra);
            Cli::load_from(all.into_iter().map(OsString::from))
        };
        let default = serve_args(parse(&[]).unwrap());
        assert_eq!(default.cards.card_detail, CardDetail::Brief);
        assert_eq!(default.cards.public_url, None);
        let file = std::env::temp_dir().join(format!("lbp-cds-cards-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&file, "card-detail = \"full\"\npublic-url = \"https://cds.example.org\"\n").unwrap();
        let from_file = serve_args(parse(&["--config", file.to_str().unwrap()]).unwrap());
        assert_eq!(from_file.cards.card_detail, CardDetail::Full);
        assert_eq!(from_file.cards.public_url.as_deref(), Some("https://cds.example.org"));
        let settings = Settings::from_args(&from_file, None, None);
        assert_eq!(settings.options().card_detail, CardDetail::Full);
        assert_eq!(settings.options().public_url.as_deref(), Some("https://cds.example.org"));
        let _ = std::fs::remove_file(&file);
        let error = parse(&["--card-detail", "short"]).unwrap_err();
        assert!(error.to_string().contains("expected `brief` or `full`"), "{error}");
        assert!(parse(&["--public-url", "/console"]).is_err(), "a relative public URL is refused");
    }
}
