//! The command line: one file per subcommand, each a thin shell over library functions the
//! daemon uses too.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub mod check_config;
pub mod demo;
pub mod export;
pub mod findings;
pub mod projects;
pub mod run;
pub mod runs;
pub mod scan;
pub mod simulator;
pub mod sync;
mod table;
pub mod test_connection;
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
    /// warn for `demo`, whose own report is the point]
    #[arg(long, global = true)]
    pub log_level: Option<String>,
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
}

/// Parses arguments, sets up logging and the runtime, runs the subcommand, maps the outcome
/// to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Demo(_) => "warn",
        _ => "info",
    };
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
            Command::Runs(a) => runs::run(&cli.global, a).await,
            Command::Demo(a) => demo::run(&cli.global, a).await,
            Command::Export(a) => export::run(&cli.global, a).await,
            Command::Projects(a) => projects::run(&cli.global, a).await,
            Command::Webhook(a) => webhook::run(&cli.global, a).await,
            Command::WebhookSecret(a) => webhook_secret::run(&cli.global, a).await,
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
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(global: &Global, default_level: &str) {
    let level = global.log_level.as_deref().unwrap_or(default_level);
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
            eprintln!("waiting for run {run} of {scan} ({owner}) to end");
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
