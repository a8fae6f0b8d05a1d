//! `scansync sync [--scan NAME]…`: a one-shot run of scans, right now, then exit.

use super::Global;
use crate::config::Config;
use crate::store::RunState;
use crate::sync::{run_scan, RunOptions, RunSummary, SyncContext};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A scan to run (repeatable); default: every enabled scan
    #[arg(long = "scan", value_name = "NAME")]
    pub scans: Vec<String>,
    /// When another run of a scan is going (the daemon, a CI job), exit 75 instead of
    /// waiting for it
    #[arg(long)]
    pub no_wait: bool,
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let path = Config::resolve_path(global.config.as_deref());
    let config = Config::load(&path, crate::vendors::REGISTRY)?;
    let selected = select_scans(&config, &args.scans)?;
    let stop = super::stop_on_signals()?;
    let ctx = SyncContext::new(&config, stop)?;

    let progress = super::status_progress();
    let mut tasks = tokio::task::JoinSet::new();
    for scan in selected {
        let ctx = ctx.clone();
        let opts = RunOptions {
            trigger: "cli".into(),
            progress: progress.clone(),
            no_wait: args.no_wait,
            on_wait: Some(super::print_wait_notice()),
            ..RunOptions::default()
        };
        tasks.spawn(async move {
            let summary = run_scan(&ctx, &scan, opts).await;
            crate::logging::status().remove(&scan.name);
            summary
        });
    }
    let mut summaries = Vec::new();
    let mut busy = None;
    while let Some(joined) = tasks.join_next().await {
        // The status rows go before any error line, so it starts a line of its own.
        let joined = joined.inspect_err(|_| crate::logging::status().finish())?;
        match joined {
            Ok(summary) => summaries.push(summary),
            Err(e @ crate::sync::SyncError::Busy { .. }) => busy = Some(e),
            Err(e) => {
                crate::logging::status().finish();
                ctx.release().await;
                return Err(e.into());
            }
        }
    }
    crate::logging::status().finish();
    summaries.sort_by(|a, b| a.scan.cmp(&b.scan));
    for s in &summaries {
        println!("{}", summary_line(s));
    }
    // The runs' webhook notifications were committed with their ends: try them now, for a
    // few seconds at most; what is left stays in the outbox for the daemon.
    crate::webhooks::deliver_before_exit(&ctx.delivery()).await;
    ctx.release().await;
    if let Some(busy) = busy {
        return Err(busy.into());
    }
    let all_ok = summaries.iter().all(|s| s.state == RunState::Succeeded);
    Ok(if all_ok { 0 } else { 1 })
}

/// The scans to run: the named ones (each must exist), else every enabled one.
fn select_scans(
    config: &Config,
    names: &[String],
) -> anyhow::Result<Vec<crate::config::ScanConfig>> {
    if names.is_empty() {
        return Ok(config.scans.iter().filter(|s| s.enabled).cloned().collect());
    }
    names
        .iter()
        .map(|n| {
            config
                .scans
                .iter()
                .find(|s| &s.name == n)
                .cloned()
                .ok_or_else(|| {
                    let known: Vec<&str> = config.scans.iter().map(|s| s.name.as_str()).collect();
                    anyhow::anyhow!(
                        "no scan named \"{n}\" in the config (known: {})",
                        known.join(", ")
                    )
                })
        })
        .collect()
}

/// One line per run, the same words `runs` and the daemon's log use.
pub fn summary_line(s: &RunSummary) -> String {
    let state = serde_json::to_value(s.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut line = format!(
        "{}: {state} (run {}): {} new, {} still open, {} fixed, {} reopened",
        s.scan, s.run_id, s.counts.new, s.counts.open, s.counts.fixed, s.counts.reopened
    );
    if s.counts.missing > 0 {
        line.push_str(&format!(
            ", {} missing (fixes held until the next complete run confirms)",
            s.counts.missing
        ));
    }
    if let Some(e) = &s.error {
        line.push_str(&format!("; error: {}", crate::display::clean(e)));
    }
    line
}
