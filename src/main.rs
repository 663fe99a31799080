use std::process::ExitCode;

use lbp_cds::auth::keys::{KeyPair, client_claims};
use lbp_cds::config::{Cli, Command, LoadError, TokenCommand};
use lbp_cds::evaluate::{self, Options};
use lbp_cds::startup::Application;
use lbp_cds::{report, telemetry};

fn main() -> ExitCode {
    let cli = match Cli::load() {
        Ok(cli) => cli,
        Err(LoadError::Clap(error)) => error.exit(),
        Err(LoadError::File(message)) => return fail(&message),
    };
    telemetry::init();
    match cli.command {
        Command::Serve(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => return fail(&format!("cannot start the runtime: {error}")),
            };
            let served = runtime.block_on(async {
                let application = Application::from_args(&args).await.map_err(|e| e.to_string())?;
                if application.state().settings.auth.is_none() {
                    eprintln!("lbp-cds: WARNING: authentication is OFF (no --auth-config): any caller is trusted.");
                }
                application.run_until(shutdown_signal()).await.map_err(|e| e.to_string())
            });
            match served {
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
            #[derive(serde::Deserialize)]
            struct HookName {
                hook: Option<String>,
            }
            let hook = serde_json::from_slice::<HookName>(&body).ok().and_then(|h| h.hook);
            let service = match (&args.service, hook) {
                (Some(id), _) => content.service(id),
                (None, Some(hook)) => content.services.iter().find(|s| s.hook.as_str() == hook),
                (None, None) => None,
            };
            let Some(service) = service else {
                return fail("no service for this request: pass --service ID or a request with a known `hook`");
            };
            let today = args.clock.clinical_date();
            let options = Options {
                mirror_system_actions: args.pama_extension_mirror,
                start_back_app_url: None,
                card_detail: args.cards.card_detail,
                public_url: args.cards.public_url.clone(),
            };
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
        Command::Token(command) => token(command),
        Command::Content(command) => match lbp_cds::terminology::run(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
        Command::Cohort(args) => match lbp_cds::cohort::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        },
        Command::Report(args) => report_command(&args),
        Command::Fixture(args) => lbp_cds::console::fixture_command(&args),
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

/// `lbp-cds report`: the acceptance report from the database, as text, CSV or JSON.
fn report_command(args: &lbp_cds::config::ReportArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the runtime: {error}")),
    };
    let to = args.to.unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    let from = args.from.unwrap_or_else(|| lbp_cds::analytics::default_range(to).0);
    if from > to {
        return fail(&format!("--from ({from}) is after --to ({to})"));
    }
    let built = runtime.block_on(async {
        let store = lbp_cds::storage::Store::open(&args.database_url).await.map_err(|e| e.to_string())?;
        let report = lbp_cds::analytics::build(&store, from, to).await.map_err(|e| e.to_string());
        store.close().await;
        report
    });
    match built {
        Ok(report) if args.csv => print!("{}", report.to_csv()),
        Ok(report) if args.json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        Ok(report) => print!("{}", report.to_text()),
        Err(error) => return fail(&error),
    }
    ExitCode::SUCCESS
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

fn token(command: TokenCommand) -> ExitCode {
    match command {
        TokenCommand::Keygen { alg, kid, out } => {
            let pair = match KeyPair::generate(&alg, &kid) {
                Ok(pair) => pair,
                Err(error) => return fail(&error.to_string()),
            };
            let key_path = out.join(format!("{kid}.pem"));
            let jwks_path = out.join("jwks.json");
            let jwks = serde_json::to_string_pretty(&pair.jwks()).unwrap_or_default();
            if let Err(error) = std::fs::create_dir_all(&out)
                .and_then(|()| write_private(&key_path, &pair.private_pem))
                .and_then(|()| std::fs::write(&jwks_path, jwks))
            {
                return fail(&format!("cannot write keys: {error}"));
            }
            println!("private key: {}", key_path.display());
            println!("public JWKS: {}", jwks_path.display());
            ExitCode::SUCCESS
        }
        TokenCommand::Sign { key, alg, kid, iss, aud, ttl, tenant } => {
            let private_pem = match std::fs::read_to_string(&key) {
                Ok(pem) => pem,
                Err(error) => return fail(&format!("cannot read {}: {error}", key.display())),
            };
            let algorithm = match alg.as_str() {
                "ES384" => jsonwebtoken::Algorithm::ES384,
                "ES256" => jsonwebtoken::Algorithm::ES256,
                "RS384" => jsonwebtoken::Algorithm::RS384,
                "RS256" => jsonwebtoken::Algorithm::RS256,
                other => return fail(&format!("unsupported algorithm {other}")),
            };
            let signed = KeyPair::from_private_pem(algorithm, &kid, private_pem)
                .and_then(|pair| pair.sign(&client_claims(&iss, &aud, ttl, tenant.as_deref())));
            match signed {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(error) => fail(&error.to_string()),
            }
        }
    }
}

/// Private keys are readable by their owner only.
fn write_private(path: &std::path::Path, pem: &str) -> std::io::Result<()> {
    std::fs::write(path, pem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn fail(message: &str) -> ExitCode {
    eprintln!("lbp-cds: {message}");
    ExitCode::from(2)
}
