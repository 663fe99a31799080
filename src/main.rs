use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use lbp_cds::auth::keys::{client_claims, KeyPair};
use lbp_cds::auth::{AuthConfig, Authenticator};
use lbp_cds::config::{Cli, Command, Settings, TokenCommand};
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
            let auth = match &args.auth_config {
                Some(path) => match AuthConfig::load(path).and_then(|c| Authenticator::new(c, lbp_cds::outbound::client())) {
                    Ok(auth) => Some(Arc::new(auth)),
                    Err(error) => return fail(&error.to_string()),
                },
                None => None,
            };
            if auth.is_none() {
                if !args.listen.ip().is_loopback() && !args.insecure_no_auth {
                    return fail(&format!(
                        "refusing to listen on {} without authentication: configure trusted issuers with --auth-config, \
                         listen on loopback, or (never in production) pass --insecure-no-auth",
                        args.listen
                    ));
                }
                eprintln!("lbp-cds: WARNING: authentication is OFF (no --auth-config): any caller is trusted.");
                tracing::warn!("authentication is off: no trusted issuers are configured");
            }
            let settings = Settings::from_args(&args, auth);
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
        Command::Token(command) => token(command),
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
    } else {
        let zone = settings.time_zone.clone().unwrap_or_else(lbp_cds::clock::host_time_zone);
        tracing::info!(time_zone = zone.iana_name().unwrap_or("(unnamed)"), today = %settings.today(), "clinical date");
    }
    tracing::info!(address = %local, "lbp-cds listening; discovery at http://{local}/cds-services");
    let state = AppState::new(content, settings);
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
