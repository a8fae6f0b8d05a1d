//! `scansync demo`: the daemon at work against the built-in simulator, on loopback, with
//! nothing to set up. The same [`crate::daemon::run`] loop as `scansync run`; only the
//! config is generated.

use super::Global;
use crate::daemon::{self, DaemonEvent};
use crate::sim::{SimOptions, Simulator};
use crate::sync::RunSummary;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// How many sync cycles to show
    #[arg(long, default_value_t = 3)]
    pub cycles: u32,
    /// Seconds between cycles (the scans' `every`)
    #[arg(long, default_value_t = 3)]
    pub every: u64,
    /// Keep the demo's config and SQLite file in this folder [default: a new temporary folder]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// What [`demo`] needs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub cycles: u32,
    pub every: Duration,
    /// Where the config and the store go; kept afterwards so the store can be looked at.
    pub dir: PathBuf,
    /// Give up when no run ends for this long (a stuck demo should say so, not hang).
    pub idle_limit: Duration,
}

/// One cycle: a run of each demo scan, and what it changed.
#[derive(Debug, Clone)]
pub struct DemoCycle {
    pub number: u32,
    pub runs: Vec<RunSummary>,
}

/// What the demo did: its cycles and where the store is.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub cycles: Vec<DemoCycle>,
    pub store_path: PathBuf,
    pub config_path: PathBuf,
    /// True when the demo was stopped (Ctrl-C) before all cycles ran.
    pub stopped_early: bool,
}

pub async fn run(_global: &Global, args: Args) -> anyhow::Result<u8> {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "scansync-demo-{}-{}",
            std::process::id(),
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        )),
    };
    let opts = DemoOptions {
        cycles: args.cycles.max(1),
        every: Duration::from_secs(args.every.max(1)),
        dir,
        idle_limit: Duration::from_secs(120),
    };
    let mut out = std::io::stdout();
    demo(&opts, &mut out, true).await?;
    Ok(0)
}

/// Starts the simulator, writes a config with one CodeThreat and one Salt Security scan
/// (both `every`), runs the daemon until each has run `cycles` times, advancing the
/// simulator between cycles, and prints each cycle to `out`. With `signals`, Ctrl-C and
/// SIGTERM end it cleanly (the daemon's own stop path).
pub async fn demo(
    opts: &DemoOptions,
    out: &mut dyn Write,
    signals: bool,
) -> anyhow::Result<DemoReport> {
    std::fs::create_dir_all(&opts.dir).map_err(|e| {
        anyhow::anyhow!("cannot create the demo folder {}: {e}", opts.dir.display())
    })?;
    let store_path = opts.dir.join("scansync.db");
    let config_path = opts.dir.join("config.toml");
    let sim = Simulator::start(SimOptions {
        projects: 2,
        findings_per_project: 300,
        churn: 10.0,
        scan_seconds: 1.0,
        ..SimOptions::default()
    })
    .await?;
    let sim_config = opts.dir.join("simulator.toml");
    sim.write_config(&sim_config, &store_path)?;
    let (config_text, scans) = demo_config(&std::fs::read_to_string(&sim_config)?, opts.every)?;
    std::fs::write(&config_path, config_text)?;
    writeln!(
        out,
        "simulator on loopback ({}); config {}",
        sim.codethreat_url(),
        config_path.display()
    )?;
    writeln!(
        out,
        "scans: {} — every {}s, {} cycle(s)\n",
        scans.join(", "),
        opts.every.as_secs(),
        opts.cycles
    )?;

    let (handle, control) = daemon::channel();
    let mut events = handle.subscribe();
    let signal_handle = if signals {
        Some(daemon::forward_signals(handle.clone())?)
    } else {
        None
    };
    let daemon_path = config_path.clone();
    let mut daemon_task = tokio::spawn(async move { daemon::run(&daemon_path, control).await });

    let mut per_scan: BTreeMap<String, Vec<RunSummary>> =
        scans.iter().map(|s| (s.clone(), Vec::new())).collect();
    let mut cycles = Vec::new();
    let mut stopped_early = false;
    let mut daemon_result = None;
    while (cycles.len() as u32) < opts.cycles {
        let event = tokio::select! {
            r = &mut daemon_task => {
                // The daemon ended on its own: Ctrl-C, or it failed to start.
                daemon_result = Some(r);
                stopped_early = true;
                break;
            }
            e = tokio::time::timeout(opts.idle_limit, events.recv()) => e,
        };
        let summary = match event {
            Err(_) => {
                handle.stop();
                anyhow::bail!(
                    "no run ended within {}s; the demo gives up (see the log above)",
                    opts.idle_limit.as_secs()
                );
            }
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
            Ok(Ok(DaemonEvent::RunFinished(summary))) => summary,
            Ok(Ok(DaemonEvent::RunError { scan, error })) => {
                writeln!(out, "  {scan}: run could not be recorded: {error}")?;
                continue;
            }
            Ok(Ok(_)) => continue,
        };
        if let Some(runs) = per_scan.get_mut(&summary.scan) {
            runs.push(summary);
        }
        let done = per_scan.values().map(Vec::len).min().unwrap_or(0);
        while cycles.len() < done && (cycles.len() as u32) < opts.cycles {
            let number = cycles.len() as u32 + 1;
            let runs: Vec<RunSummary> =
                per_scan.values().map(|r| r[cycles.len()].clone()).collect();
            print_cycle(out, number, &runs)?;
            cycles.push(DemoCycle { number, runs });
            if number < opts.cycles {
                // The vendors' findings change between cycles.
                sim.advance();
            }
        }
    }
    handle.stop();
    let daemon_result = match daemon_result {
        Some(r) => r,
        None => daemon_task.await,
    };
    if let Some(s) = signal_handle {
        s.close();
    }
    daemon_result.map_err(|e| anyhow::anyhow!("the daemon task failed: {e}"))??;
    if stopped_early {
        writeln!(out, "stopped after {} cycle(s)", cycles.len())?;
    }
    writeln!(out, "\nstore: {}", store_path.display())?;
    writeln!(
        out,
        "look at it: sqlite3 {} \"SELECT state, count(*) FROM findings GROUP BY state\"",
        store_path.display()
    )?;
    writeln!(
        out,
        "        or: scansync findings --store {} --state new",
        store_path.display()
    )?;
    Ok(DemoReport {
        cycles,
        store_path,
        config_path,
        stopped_early,
    })
}

fn print_cycle(out: &mut dyn Write, number: u32, runs: &[RunSummary]) -> std::io::Result<()> {
    writeln!(out, "cycle {number}")?;
    let width = runs.iter().map(|r| r.scan.len()).max().unwrap_or(0);
    for r in runs {
        let c = r.counts;
        writeln!(
            out,
            "  {:width$}  {:<11}  seen {:>4}  new {:>4}  fixed {:>4}  reopened {:>4}{}",
            r.scan,
            super::runs::run_state_word(r.state),
            c.seen,
            c.new,
            c.fixed,
            c.reopened,
            r.error
                .as_deref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

/// Why the simulator's config cannot be turned into the demo's.
#[derive(Debug, thiserror::Error)]
pub enum DemoConfigError {
    #[error("the simulator's config is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("the simulator's config has no scan on a {0} instance")]
    MissingVendor(&'static str),
}

/// The simulator's config cut down to the first CodeThreat and the first Salt Security
/// scan, both on `every`, with no jitter and quick polling so cycles are seconds apart.
/// Returns the TOML text and the two scan names.
pub fn demo_config(
    sim_config: &str,
    every: Duration,
) -> Result<(String, Vec<String>), DemoConfigError> {
    use toml::{Table, Value};
    let mut doc: Table = sim_config.parse()?;
    let vendor_of: BTreeMap<String, String> = doc
        .get("instances")
        .and_then(Value::as_table)
        .map(|t| {
            t.iter()
                .filter_map(|(name, i)| {
                    Some((name.clone(), i.get("vendor")?.as_str()?.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let scans = doc
        .get("scans")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut picked = Vec::new();
    let mut names = Vec::new();
    for vendor in ["codethreat", "saltsecurity"] {
        let scan = scans
            .iter()
            .find(|s| {
                s.get("instance")
                    .and_then(Value::as_str)
                    .and_then(|i| vendor_of.get(i))
                    .is_some_and(|v| v == vendor)
            })
            .ok_or(DemoConfigError::MissingVendor(vendor))?;
        let mut scan = scan.as_table().cloned().unwrap_or_default();
        if vendor == "saltsecurity" {
            // The simulator derives both vendors' data from the project number; a different
            // project keeps the two report lines from showing the same counts.
            scan.insert("bind_to".into(), Value::String("project-2".into()));
            scan.insert("name".into(), Value::String("salt-project-2".into()));
        }
        let mut schedule = Table::new();
        schedule.insert(
            "every".into(),
            Value::String(format!("{}s", every.as_secs().max(1))),
        );
        scan.insert("schedule".into(), Value::Table(schedule));
        scan.insert("enabled".into(), Value::Boolean(true));
        if let Some(name) = scan.get("name").and_then(Value::as_str) {
            names.push(name.to_string());
        }
        picked.push(Value::Table(scan));
    }
    doc.insert("scans".into(), Value::Array(picked));
    let mut daemon = Table::new();
    daemon.insert("jitter".into(), Value::String("0s".into()));
    daemon.insert("poll_interval".into(), Value::String("1s".into()));
    daemon.insert("shutdown_timeout".into(), Value::String("10s".into()));
    doc.insert("daemon".into(), Value::Table(daemon));
    let text = toml::to_string(&doc).expect("a TOML table always serializes");
    Ok((text, names))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIM: &str = r#"
[store]
path = "/tmp/x.db"

[daemon]
concurrency = 8

[instances.ct]
vendor = "codethreat"
url = "http://127.0.0.1:1"
organization = "acme"
token = "t"

[instances.salt]
vendor = "saltsecurity"
url = "http://127.0.0.1:2"
token = "t"

[[scans]]
name = "ct-one"
instance = "ct"
bind_to = "p1"
schedule = "now"

[[scans]]
name = "ct-two"
instance = "ct"
bind_to = "p2"
schedule = "now"

[[scans]]
name = "salt-one"
instance = "salt"
bind_to = "api"
schedule = { cron = "0 * * * *", timezone = "UTC" }
"#;

    #[test]
    fn demo_config_keeps_one_scan_per_vendor_on_a_short_every() {
        let (text, names) = demo_config(SIM, Duration::from_secs(3)).unwrap();
        assert_eq!(names, vec!["ct-one", "salt-project-2"]);
        let doc: toml::Table = text.parse().unwrap();
        let scans = doc["scans"].as_array().unwrap();
        assert_eq!(scans.len(), 2);
        for s in scans {
            assert_eq!(s["schedule"]["every"].as_str(), Some("3s"));
        }
        assert_eq!(doc["daemon"]["jitter"].as_str(), Some("0s"));
        assert_eq!(doc["store"]["path"].as_str(), Some("/tmp/x.db"));
        assert_eq!(
            doc["instances"]["ct"]["organization"].as_str(),
            Some("acme")
        );
    }

    #[test]
    fn demo_config_without_a_salt_scan_says_which_vendor_is_missing() {
        let only_ct = SIM.split("[[scans]]\nname = \"salt-one\"").next().unwrap();
        let e = demo_config(only_ct, Duration::from_secs(3)).unwrap_err();
        assert!(e.to_string().contains("saltsecurity"), "{e}");
    }
}
