//! Log output set up once per process, in the shape whoever reads it wants: colours and
//! timestamps for a person at a terminal, bare lines for the journal (which adds its own
//! timestamps and unit name), JSON for log shippers.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Timestamps and ANSI colours: a person at a terminal.
    Human,
    /// No timestamps, no colours: the journal stamps every line itself.
    Journal,
    /// Plain text with timestamps, no colours: redirected to a file or a pipe.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Errors in the logging options given on the command line.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("--log-format \"{0}\" is not known; use text or json")]
    UnknownFormat(String),
}

/// Picks the format from `--log-format` and the environment. `text` means "whatever suits
/// where stderr goes": the journal when systemd connected stderr to it (`JOURNAL_STREAM`),
/// a terminal when stderr is one, plain otherwise.
pub fn choose_format(
    requested: &str,
    journal_stream: bool,
    stderr_is_terminal: bool,
) -> Result<LogFormat, LoggingError> {
    match requested {
        "json" => Ok(LogFormat::Json),
        "text" | "" => Ok(if journal_stream {
            LogFormat::Journal
        } else if stderr_is_terminal {
            LogFormat::Human
        } else {
            LogFormat::Plain
        }),
        other => Err(LoggingError::UnknownFormat(other.to_string())),
    }
}

/// The filter for `--log-level`: a bare level is scansync's own, while dependencies stay at
/// `warn` (their `info` lines, like the scheduler's "Job creator created", mean nothing to
/// an operator). A full directive (`warn,hyper=debug`, `trace,scansync=debug`) is taken as
/// written.
pub fn filter_directives(level: &str) -> String {
    let level = level.trim();
    if level.contains('=') || level.contains(',') {
        return level.to_string();
    }
    match level.to_ascii_lowercase().as_str() {
        // Quieter than warn applies to everything, or errors from dependencies would show.
        "error" | "off" => level.to_string(),
        _ => format!("warn,scansync={level}"),
    }
}

/// Installs the global subscriber. `RUST_LOG` wins over `level` so one module can be
/// turned up without touching the unit file. Calling it twice is harmless (tests, demo).
pub fn init(level: &str, requested_format: &str) -> Result<(), LoggingError> {
    let format = choose_format(
        requested_format,
        std::env::var_os("JOURNAL_STREAM").is_some(),
        std::io::stderr().is_terminal(),
    )?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(filter_directives(level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (a test harness, the demo inside a test) keeps the first one.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Journal => builder.compact().without_time().with_ansi(false).try_init(),
        LogFormat::Plain => builder.with_ansi(false).try_init(),
        LogFormat::Human => builder.with_ansi(true).try_init(),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_wins_over_a_terminal_for_text() {
        assert_eq!(
            choose_format("text", true, true).unwrap(),
            LogFormat::Journal
        );
    }

    #[test]
    fn text_on_a_terminal_is_human() {
        assert_eq!(
            choose_format("text", false, true).unwrap(),
            LogFormat::Human
        );
    }

    #[test]
    fn text_into_a_pipe_is_plain() {
        assert_eq!(
            choose_format("text", false, false).unwrap(),
            LogFormat::Plain
        );
    }

    #[test]
    fn a_bare_level_is_scansyncs_and_dependencies_stay_at_warn() {
        assert_eq!(filter_directives("info"), "warn,scansync=info");
        assert_eq!(filter_directives("debug"), "warn,scansync=debug");
        assert_eq!(filter_directives("error"), "error");
        assert_eq!(filter_directives("warn,hyper=debug"), "warn,hyper=debug");
    }

    #[test]
    fn json_is_json_everywhere() {
        assert_eq!(choose_format("json", true, true).unwrap(), LogFormat::Json);
    }

    #[test]
    fn unknown_format_is_an_error_naming_the_choices() {
        let e = choose_format("xml", false, false).unwrap_err().to_string();
        assert!(e.contains("xml") && e.contains("json"), "{e}");
    }
}
