//! The command line: one file per subcommand, each a thin shell over library functions the
//! daemon uses too.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub mod check_config;
pub mod completions;
pub mod config_reference;
pub mod demo;
pub mod export;
pub mod finding;
pub mod findings;
pub mod man;
pub mod projects;
pub mod run;
pub mod runs;
pub mod scan;
pub mod simulator;
pub mod store;
pub mod sync;
mod table;
pub mod test_connection;
pub mod triage;
pub mod webhook;
pub mod webhook_secret;

/// Exit code for a bad config file (sysexits.h EX_CONFIG), which systemd and scripts know.
pub const EXIT_CONFIG: u8 = 78;
/// Exit code (EX_TEMPFAIL): another run of the scan is going and `--no-wait` was given.
pub const EXIT_BUSY: u8 = 75;

#[derive(Parser, Debug)]
#[command(
    name = "scansync",
    version,
    about = "Keeps a local, deduplicated SQLite record of security findings pulled from scanner vendors"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Config file [default: $SCANSYNC_CONFIG, else /etc/scansync/config.toml]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Log level (overridden by RUST_LOG): error, warn, info, debug, trace [default: info;
    /// warn for `demo`, and for sync, scan, test-connection, projects, findings and export
    /// at a terminal, whose own report is the point]
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// More log lines: -v info, -vv debug, -vvv trace (--log-level wins)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format: text, or json for log shippers
    #[arg(long, global = true, default_value = "text")]
    pub log_format: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate the config file and print a summary (exit 78 on errors)
    CheckConfig(check_config::Args),
    /// Run scans now (default: every enabled scan), print a summary, exit 1 if any failed
    Sync(sync::Args),
    /// Serve both vendors' APIs on loopback with generated findings (for the demo and tests)
    Simulator(simulator::Args),
    /// Test the connection to one instance or all (exit 2 token, 3 organization, 4 URL, 5 TLS, 6 network)
    TestConnection(test_connection::Args),
    /// Run the daemon: schedule every enabled scan, sync findings into the store
    Run(run::Args),
    /// Run one scan now and wait for it (the `kdt scan` flags), failing on thresholds
    Scan(scan::Args),
    /// List findings from the store
    Findings(findings::Args),
    /// Show one finding in full with its history (created, seen, changes, triage)
    Finding(finding::Args),
    /// Mark findings false positive or accepted (optionally until a date), or open again
    Triage(triage::Args),
    /// List recent sync runs from the store
    Runs(runs::Args),
    /// Show scansync at work against the built-in simulator: no network, nothing to set up
    Demo(demo::Args),
    /// Export findings as JSON Lines, CSV or SARIF 2.1.0 (same filters as `findings`)
    Export(export::Args),
    /// List what a scan can bind to on an instance: CodeThreat projects, Salt Security assets
    Projects(projects::Args),
    /// Outgoing webhook notifications: send a test ping, list what is not delivered yet
    Webhook(webhook::Args),
    /// Print a new random secret for a scan's webhook (32 bytes, URL-safe base64)
    WebhookSecret(webhook_secret::Args),
    /// Store upkeep: `store prune` deletes what [store] retention lets go, `store copy` moves
    /// a store (SQLite to PostgreSQL)
    Store(store::Args),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    Completions(completions::Args),
    /// Write the man pages (one per subcommand, and scansync.toml(5)) into a folder
    Man(man::Args),
}

/// Parses arguments, sets up logging and the runtime, runs the subcommand, maps the outcome
/// to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    use std::io::IsTerminal;
    let default_level = default_log_level(&cli.command, std::io::stderr().is_terminal());
    init_logging(&cli.global, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::CheckConfig(a) => check_config::run(&cli.global, a).await,
            Command::Sync(a) => sync::run(&cli.global, a).await,
            Command::Simulator(a) => simulator::run(&cli.global, a).await,
            Command::TestConnection(a) => test_connection::run(&cli.global, a).await,
            Command::Run(a) => run::run(&cli.global, a).await,
            Command::Scan(a) => scan::run(&cli.global, a).await,
            Command::Findings(a) => findings::run(&cli.global, a).await,
            Command::Finding(a) => finding::run(&cli.global, a).await,
            Command::Triage(a) => triage::run(&cli.global, a).await,
            Command::Runs(a) => runs::run(&cli.global, a).await,
            Command::Demo(a) => demo::run(&cli.global, a).await,
            Command::Export(a) => export::run(&cli.global, a).await,
            Command::Projects(a) => projects::run(&cli.global, a).await,
            Command::Webhook(a) => webhook::run(&cli.global, a).await,
            Command::WebhookSecret(a) => webhook_secret::run(&cli.global, a).await,
            Command::Store(a) => store::run(&cli.global, a).await,
            Command::Completions(a) => completions::run(&cli.global, a).await,
            Command::Man(a) => man::run(&cli.global, a).await,
        }
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(errors) = e.downcast_ref::<crate::config::ConfigErrors>() {
                for line in &errors.errors {
                    eprintln!("error: {line}");
                }
                return ExitCode::from(EXIT_CONFIG);
            }
            if let Some(err) = e.downcast_ref::<crate::store::StoreError>() {
                if matches!(
                    err,
                    crate::store::StoreError::SchemaTooNew { .. }
                        | crate::store::StoreError::SchemaTooOld { .. }
                ) {
                    eprintln!("error: {err}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            }
            if let Some(busy @ crate::sync::SyncError::Busy { .. }) =
                e.downcast_ref::<crate::sync::SyncError>()
            {
                eprintln!("error: {busy}");
                return ExitCode::from(EXIT_BUSY);
            }
            // The chain may quote a vendor's answer: no control character reaches the terminal.
            eprintln!("error: {}", crate::display::clean(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

/// The log level when neither `--log-level` nor `-v` is given. One-shot commands print a
/// report of their own; at a terminal their `info` lines would only interleave with it, so
/// they log `warn` there (`-v` for more). Into a pipe or the journal they keep `info`, the
/// record of what they did.
fn default_log_level(command: &Command, stderr_is_terminal: bool) -> &'static str {
    match command {
        Command::Demo(_) => "warn",
        Command::Sync(_)
        | Command::Scan(_)
        | Command::TestConnection(_)
        | Command::Projects(_)
        | Command::Findings(_)
        | Command::Finding(_)
        | Command::Triage(_)
        | Command::Export(_)
            if stderr_is_terminal =>
        {
            "warn"
        }
        _ => "info",
    }
}

/// The level `--log-level`, else `-v`, else `default` asks for.
fn chosen_level<'a>(global: &'a Global, default: &'a str) -> &'a str {
    match (global.log_level.as_deref(), global.verbose) {
        (Some(level), _) => level,
        (None, 0) => default,
        (None, 1) => "info",
        (None, 2) => "debug",
        (None, _) => "trace",
    }
}

/// Live status lines for a run's progress at a terminal (one row per scan, below the log;
/// off for a pipe or `TERM=dumb`). Call [`crate::logging::StatusArea::finish`] before
/// printing the report.
pub(crate) fn status_progress() -> Option<crate::sync::Progress> {
    crate::logging::status().enable().then(|| {
        crate::sync::Progress(std::sync::Arc::new(|line: &str| {
            crate::logging::status().set(line)
        }))
    })
}

fn init_logging(global: &Global, default_level: &str) {
    let level = chosen_level(global, default_level);
    if let Err(e) = crate::logging::init(level, &global.log_format) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// The `on_wait` of a one-shot command: says on stderr which run it waits for.
pub fn print_wait_notice() -> crate::sync::WaitNotice {
    crate::sync::WaitNotice(std::sync::Arc::new(
        |scan: &str, run: Option<crate::store::RunId>, owner: &str| {
            let run = run.map_or_else(|| "?".to_string(), |r| r.to_string());
            let line = format!("waiting for run {run} of {scan} ({owner}) to end");
            // On a terminal, the scan's status row says it (a plain line would collide
            // with the rows); elsewhere one line on stderr.
            if crate::logging::status().is_enabled() {
                crate::logging::status().set(&format!("{scan}: {line}"));
            } else {
                eprintln!("{line}");
            }
        },
    ))
}

/// A stop flag flipped by SIGINT/SIGTERM, for one-shot commands: runs in flight commit the
/// page they have and end as interrupted instead of being killed mid-write.
pub fn stop_on_signals() -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut incoming = signals.forever();
            if incoming.next().is_some() {
                tracing::warn!(
                    "stopping: runs in flight commit their current page (again to quit at once)"
                );
                let _ = tx.send(true);
            }
            if incoming.next().is_some() {
                std::process::exit(130);
            }
        })?;
    Ok(rx)
}

/// `--store FILE|URL` ([`crate::config::StoreLocation::from_cli`]), refused with an error
/// that does not repeat the value as clap's own would: a url may hold a password.
#[derive(Clone)]
pub struct StoreArg;

impl clap::builder::TypedValueParser for StoreArg {
    type Value = crate::config::StoreLocation;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let refuse = |kind, why: String| clap::Error::raw(kind, format!("{why}\n")).with_cmd(cmd);
        let text = value.to_str().ok_or_else(|| {
            refuse(
                clap::error::ErrorKind::InvalidUtf8,
                "--store: not valid UTF-8".into(),
            )
        })?;
        crate::config::StoreLocation::from_cli(text)
            .map_err(|why| refuse(clap::error::ErrorKind::ValueValidation, why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("scansync").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn one_shot_commands_log_warn_at_a_terminal_and_info_into_a_pipe() {
        for args in [
            &["sync"][..],
            &["scan", "--tool", "ct", "--project", "p"],
            &["test-connection"],
            &["projects", "ct"],
            &["findings"],
            &["export", "--format", "csv"],
        ] {
            let cli = parse(args);
            assert_eq!(default_log_level(&cli.command, true), "warn", "{args:?}");
            assert_eq!(default_log_level(&cli.command, false), "info", "{args:?}");
        }
        assert_eq!(default_log_level(&parse(&["run"]).command, true), "info");
        assert_eq!(default_log_level(&parse(&["demo"]).command, false), "warn");
    }

    #[test]
    fn verbose_raises_the_level_and_log_level_wins() {
        let level = |args: &[&str]| chosen_level(&parse(args).global, "warn").to_string();
        assert_eq!(level(&["sync"]), "warn");
        assert_eq!(level(&["sync", "-v"]), "info");
        assert_eq!(level(&["-vv", "sync"]), "debug");
        assert_eq!(level(&["sync", "-vvvv"]), "trace");
        assert_eq!(level(&["sync", "-v", "--log-level", "error"]), "error");
    }
}
