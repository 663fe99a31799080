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

/// Longest client-controlled string written to a log, in characters.
pub const LOGGED_STRING_MAX: usize = 96;

/// A client-controlled string made safe for a log line: control characters (CR, LF, escape
/// sequences) escaped, quotes and backslashes escaped, and cut to [`LOGGED_STRING_MAX`]
/// characters, so a caller can neither forge log lines nor flood them.
pub fn loggable(value: &str) -> String {
    let mut out = String::new();
    for (count, c) in value.chars().enumerate() {
        if count == LOGGED_STRING_MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        assert_eq!(super::loggable("a\r\nb\u{1b}[31m"), "a\\r\\nb\\u{1b}[31m");
        let long = "x".repeat(500);
        assert_eq!(super::loggable(&long).chars().count(), super::LOGGED_STRING_MAX + 3);
    }
}
