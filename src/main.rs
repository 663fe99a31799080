use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use lbp_cds::config::{Cli, Command, Settings};
use lbp_cds::content::Content;
use lbp_cds::evaluate::{self, Options};
use lbp_cds::http::{self, AppState};
use lbp_cds::{report, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Serve(args) => {
            let content = match args.content.load() {
                Ok(content) => content,
                Err(error) => return fail(&error.to_string()),
            };
            let settings = Settings::from_args(&args);
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => return fail(&format!("cannot start the runtime: {error}")),
            };
            match runtime.block_on(serve(args.listen, content, settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => fail(&error),
            }
        }
        Command::Evaluate(args) => {
            let content = match args.content.load() {
                Ok(content) => content,
                Err(error) => return fail(&error.to_string()),
            };
            let body = match std::fs::read(&args.file) {
                Ok(body) => body,
                Err(error) => return fail(&format!("cannot read {}: {error}", args.file.display())),
            };
            let hook = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("hook").and_then(|h| h.as_str()).map(str::to_owned));
            let service = match (&args.service, hook) {
                (Some(id), _) => content.service(id),
                (None, Some(hook)) => content.services.iter().find(|s| s.hook.as_str() == hook),
                (None, None) => None,
            };
            let Some(service) = service else {
                return fail("no service for this request: pass --service ID or a request with a known `hook`");
            };
            let today = args.clock.today.unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
            let options = Options { mirror_system_actions: args.pama_extension_mirror, start_back_app_url: None };
            match evaluate::evaluate_body(&content, service, &body, today, &options) {
                Ok(outcome) if args.json => {
                    println!("{}", serde_json::to_string_pretty(&outcome.response).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Ok(outcome) => {
                    let header = format!("{}  service: {}  today: {today}", args.file.display(), service.id);
                    print!("{}", report::readable(&outcome, &header));
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&error.to_string()),
            }
        }
        Command::CheckContent(args) => match args.load() {
            Ok(content) => {
                println!(
                    "content is valid: {} services, {} card types, {} value sets",
                    content.services.len(),
                    content.cards.len(),
                    content.value_sets.len()
                );
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error.to_string()),
        },
    }
}

async fn serve(listen: std::net::SocketAddr, content: Content, settings: Settings) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    if let Some(today) = settings.fixed_today {
        tracing::warn!(%today, "the clinical date is fixed by configuration (LBP_CDS_TODAY / --today)");
    }
    tracing::info!(address = %local, "lbp-cds listening; discovery at http://{local}/cds-services");
    let state = AppState { content: Arc::new(content), settings: Arc::new(settings) };
    http::serve(listener, state, shutdown_signal()).await.map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

fn fail(message: &str) -> ExitCode {
    eprintln!("lbp-cds: {message}");
    ExitCode::from(2)
}
