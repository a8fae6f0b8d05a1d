//! `scansync simulator`: the vendor simulator as a process, for the demo, scripts and tests
//! that want a child process. Prints `listening on http://ADDR` as its first stdout line.

use super::Global;
use crate::sim::{Fault, SimOptions, Simulator};
use anyhow::Context;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on; loopback only
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The bearer token both vendors accept
    #[arg(long, default_value = "sim-token")]
    pub token: String,
    /// The CodeThreat organization accepted in x-ct-organization
    #[arg(long, default_value = "sim-org")]
    pub organization: String,
    /// Projects / assets, named project-1 … project-N
    #[arg(long, default_value_t = 3)]
    pub projects: u32,
    /// Findings in each project
    #[arg(long, default_value_t = 100)]
    pub findings_per_project: u32,
    /// Seed for all generated data and fault coin flips
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long a CodeThreat scan takes to reach "end"
    #[arg(long, default_value_t = 2.0)]
    pub scan_seconds: f64,
    /// Percent of a project's findings that change between consecutive scans
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Percent of a project's findings whose vendor status word changes between consecutive
    /// scans (CodeThreat Fixed / False Positive / Accepted / ReCheck / Open, Salt Security
    /// Resolved / False Positive / Ignored / Open); 0 keeps every finding Open
    #[arg(long, default_value_t = 0.0)]
    pub status_churn: f64,
    /// Delay added to every vendor response, in milliseconds
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Inject a fault: KIND[:RATE]. Transport kinds, on any vendor request: 429, 500,
    /// timeout, html; truncated (a listing cut in half). Deceptive kinds, 200 with valid JSON
    /// from a pager that lies: empty_page (a further findings page with no items; for Salt
    /// Security an early end), short_page (a further CodeThreat page loses half its issues),
    /// repeat_page (a further page serves the previous page again), no_pager (the first
    /// CodeThreat page without x-ct-pager), endless_pager (a pager that never ends and
    /// starts the data over), stuck_offset (Salt Security endOffset = the offset asked for).
    /// RATE a probability (0.1), a percent (10%), xN (first N matching requests only) or @N
    /// (the Nth matching request only; `KIND@N` works too); a deceptive kind counts only the
    /// findings pages it can hit. Repeatable.
    #[arg(long = "fault", value_name = "KIND[:RATE]")]
    pub faults: Vec<Fault>,
    /// Write a scansync config pointing at this simulator to PATH (store in a fresh temp folder)
    #[arg(long, value_name = "PATH")]
    pub write_config: Option<PathBuf>,
}

pub async fn run(_global: &Global, args: Args) -> anyhow::Result<u8> {
    let sim = Simulator::start(SimOptions {
        listen: args.listen,
        token: args.token,
        organization: args.organization,
        projects: args.projects,
        findings_per_project: args.findings_per_project,
        seed: args.seed,
        scan_seconds: args.scan_seconds,
        churn: args.churn,
        status_churn: args.status_churn,
        latency_ms: args.latency_ms,
        faults: args.faults,
    })
    .await
    .context("cannot start the simulator")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{}", sim.addr())?;
    out.flush()?;
    if let Some(path) = &args.write_config {
        let store_dir = fresh_temp_dir().context("cannot create a folder for the store")?;
        sim.write_config(path, &store_dir.join("scansync.db"))
            .with_context(|| format!("cannot write the config to {}", path.display()))?;
        writeln!(out, "config written to {}", path.display())?;
        out.flush()?;
    }
    drop(out);
    wait_for_signal().await?;
    sim.shutdown().await;
    Ok(0)
}

/// A new folder under the system temp dir, named so concurrent simulators never share one.
fn fresh_temp_dir() -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("scansync-sim-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = terminate.recv() => Ok(()),
    }
}
