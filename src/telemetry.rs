//! Logging set-up. Logs go to stderr; the filter comes from `LBP_CDS_LOG` (default `info`).
//! Nothing here logs request bodies, tokens or (unless configured) patient ids.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("LBP_CDS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
