//! `scansync scan`: one scan now, with the flags of `kdt scan`, so a CI step that runs
//! `kdt scan -p X -t codethreat -b main` switches by changing the binary name.

use super::Global;
use crate::config::{Config, ScanConfig};
use crate::finding::Severity;
use crate::store::RunState;
use crate::sync::{run_scan, RunOptions, RunSummary, SyncContext};
use std::collections::BTreeMap;
use std::time::Duration;

/// Exit code: the run did not succeed (failed, timed out, interrupted).
pub const EXIT_RUN_FAILED: u8 = 3;
/// Exit code: the run succeeded but a `--threshold-*` was exceeded.
pub const EXIT_THRESHOLD: u8 = 10;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Thresholds count open findings at a severity *or worse*: --threshold-high 0 fails when there is
any high or critical finding; --threshold-med 5 fails when there are more than 5 findings that
are medium, high or critical.

--timeout MINUTES bounds the wait for the vendor scan (fractions allowed: 0.5 is 30 seconds).
Past it, scan prints the run id and exits 0 without checking thresholds; the vendor scan goes
on, the run stays \"running\" with its vendor scan id, and a running daemon takes it over
within a minute (at once on SIGHUP; a stopped one at its next start), as after --async. It
does not apply to vendors whose findings are read without a scan (Salt Security). It also
bounds the wait for another run of the same scan: still waiting when it passes, scan exits
75 with nothing started.

-m/--meta KEY=VALUE (repeatable) is sent in the scan request's metadata, over the scan's
configured metadata for the same key.

Exit codes: 0 success (thresholds kept, or still running past --timeout), 1 error
(connection, store), 2 bad flags, 3 the run did not succeed (failed, timed out, interrupted,
or stopped by a signal while its vendor scan runs: the run is left for a daemon), 10 a threshold was exceeded, 75 another run of the scan is going and --no-wait was given,
78 config error.

When another run of the same scan is going (a daemon's schedule, another CI job), scan waits
for it and says \"waiting for run N of SCAN\" on stderr; --no-wait exits 75 instead.")]
pub struct Args {
    /// The vendor project (CodeThreat) or API asset (Salt Security): a configured scan's bind_to
    #[arg(short = 'p', long)]
    pub project: String,
    /// The vendor: codethreat, saltsecurity
    #[arg(short = 't', long)]
    pub tool: String,
    /// Branch to scan (overrides the configured branch)
    #[arg(short = 'b', long)]
    pub branch: Option<String>,
    /// Fail (exit 10) when more than N critical findings are open
    #[arg(long = "threshold-crit", value_name = "N")]
    pub threshold_crit: Option<u64>,
    /// Fail (exit 10) when more than N high-or-critical findings are open
    #[arg(long = "threshold-high", value_name = "N")]
    pub threshold_high: Option<u64>,
    /// Fail (exit 10) when more than N medium-or-worse findings are open
    #[arg(long = "threshold-med", value_name = "N")]
    pub threshold_med: Option<u64>,
    /// Fail (exit 10) when more than N low-or-worse findings are open
    #[arg(long = "threshold-low", value_name = "N")]
    pub threshold_low: Option<u64>,
    /// Return once the vendor scan is started; no waiting, no thresholds
    #[arg(long = "async")]
    pub start_only: bool,
    /// Metadata for the vendor scan, KEY=VALUE (repeatable; overrides the scan's configured
    /// metadata for the same key)
    #[arg(short = 'm', long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub meta: Vec<(String, String)>,
    /// Wait at most this many minutes (fractions allowed) for the vendor scan; past it, print
    /// the run id, exit 0 and leave the scan to the daemon
    #[arg(long, value_name = "MINUTES", value_parser = parse_minutes, conflicts_with = "start_only")]
    pub timeout: Option<Duration>,
    /// When another run of this scan is going (the daemon, another CI job), exit 75 instead
    /// of waiting for it
    #[arg(long)]
    pub no_wait: bool,
}

/// `KEY=VALUE` → (KEY, VALUE); the value may be empty or hold `=`, the key may not be empty.
fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got \"{text}\"")),
    }
}

/// A wait in minutes as a person writes it: `0.05`, `1.5`, `30`.
fn minutes_text(wait: Duration) -> String {
    let text = format!("{:.2}", wait.as_secs_f64() / 60.0);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Minutes, fractions allowed (`0.05` is 3 seconds), more than zero.
fn parse_minutes(text: &str) -> Result<Duration, String> {
    let minutes: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of minutes, got \"{text}\""))?;
    if !minutes.is_finite() || minutes <= 0.0 {
        return Err(format!(
            "must be more than 0 minutes, got \"{text}\" (use --async not to wait at all)"
        ));
    }
    Duration::try_from_secs_f64(minutes * 60.0).map_err(|_| format!("{text} minutes is too long"))
}

/// A `--threshold-*` limit that was exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// The severity the threshold is about ("at or above" this).
    pub severity: Severity,
    /// Open findings at that severity or worse.
    pub count: u64,
    pub limit: u64,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let flag = match self.severity {
            Severity::Critical => "crit",
            Severity::High => "high",
            Severity::Medium => "med",
            _ => "low",
        };
        let scope = if self.severity == Severity::Critical {
            "critical".to_string()
        } else {
            format!("{} or worse", self.severity)
        };
        write!(
            f,
            "{} open finding(s) {scope}, more than --threshold-{flag} {}",
            self.count, self.limit
        )
    }
}

/// The thresholds exceeded by `open` (open findings per severity), worst severity first.
/// Each threshold counts findings at its severity or worse.
pub fn exceeded_thresholds(
    limits: &[(Severity, Option<u64>)],
    open: &BTreeMap<Severity, u64>,
) -> Vec<Exceeded> {
    let mut out: Vec<Exceeded> = limits
        .iter()
        .filter_map(|&(severity, limit)| {
            let limit = limit?;
            let count = open
                .iter()
                .filter(|(s, _)| **s >= severity)
                .map(|(_, n)| *n)
                .sum();
            (count > limit).then_some(Exceeded {
                severity,
                count,
                limit,
            })
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.severity));
    out
}

/// Why `scan` could not pick a scan to run.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    #[error("no instance with vendor \"{tool}\" in the config; add an [instances.NAME] with vendor = \"{tool}\"")]
    NoInstance { tool: String },
    #[error("no configured scan binds to \"{project}\" on a {tool} instance, and there are several {tool} instances ({instances}); add a [[scans]] entry with bind_to = \"{project}\" naming the instance")]
    Ambiguous {
        tool: String,
        project: String,
        instances: String,
    },
    #[error("no configured scan binds to \"{project}\" on a {tool} instance, and the name an ad hoc scan of it would get, \"{name}\", is a configured scan's (bound to \"{bound}\"): its findings would mix; add a [[scans]] entry with bind_to = \"{project}\"")]
    NameTaken {
        tool: String,
        project: String,
        name: String,
        bound: String,
    },
}

/// The configured scan whose instance is of vendor `tool` and which binds to `project`; else
/// an ad hoc one on the only instance of that vendor, named `<tool>-<project>`.
pub fn pick_scan(config: &Config, tool: &str, project: &str) -> Result<ScanConfig, PickError> {
    let vendor_of = |instance: &str| config.instances.get(instance).map(|i| i.vendor.as_str());
    let matching: Vec<&ScanConfig> = config
        .scans
        .iter()
        .filter(|s| s.bind_to == project && vendor_of(&s.instance) == Some(tool))
        .collect();
    if let Some(scan) = matching
        .iter()
        .find(|s| s.enabled)
        .or_else(|| matching.first())
    {
        return Ok((*scan).clone());
    }
    let instances: Vec<&String> = config
        .instances
        .iter()
        .filter(|(_, i)| i.vendor == tool)
        .map(|(name, _)| name)
        .collect();
    match instances.as_slice() {
        [] => Err(PickError::NoInstance {
            tool: tool.to_string(),
        }),
        [instance] => {
            let scan = ScanConfig::ad_hoc(tool, instance, project);
            match config.scans.iter().find(|s| s.name == scan.name) {
                Some(taken) => Err(PickError::NameTaken {
                    tool: tool.to_string(),
                    project: project.to_string(),
                    name: scan.name,
                    bound: taken.bind_to.clone(),
                }),
                None => Ok(scan),
            }
        }
        several => Err(PickError::Ambiguous {
            tool: tool.to_string(),
            project: project.to_string(),
            instances: several
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

pub async fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    // The deadline counts from the command's start, as a CI step's budget does.
    let detach_at = args.timeout.map(|t| tokio::time::Instant::now() + t);
    let config = Config::load(
        &Config::resolve_path(global.config.as_deref()),
        crate::vendors::REGISTRY,
    )?;
    let mut scan = pick_scan(&config, &args.tool, &args.project)?;
    scan.metadata.extend(args.meta.iter().cloned());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Ctrl-C / SIGTERM: the run commits its current page and ends interrupted.
    let signals = stop_on_signal(stop_tx)?;
    let ctx = SyncContext::new(&config, stop_rx)?;
    let passive = ctx
        .vendors
        .get(&scan.instance)
        .is_some_and(|v| !v.triggers_scans());
    if passive && (!args.meta.is_empty() || args.timeout.is_some()) {
        eprintln!(
            "note: {} starts no scans (its findings are read as they are), so --meta has no \
             effect and --timeout bounds only the wait for another run of the scan",
            args.tool
        );
    }
    let progress = super::status_progress();
    let opts = RunOptions {
        trigger: "cli".into(),
        branch: args.branch.clone(),
        start_only: args.start_only,
        detach_at,
        progress,
        no_wait: args.no_wait,
        wait_until: detach_at,
        on_wait: Some(super::print_wait_notice()),
        ..RunOptions::default()
    };
    let summary = run_scan(&ctx, &scan, opts).await;
    crate::logging::status().finish();
    signals.close();
    if summary.is_err() || args.start_only {
        ctx.release().await;
    }
    let summary = summary?;
    if args.start_only {
        println!(
            "scan {}: vendor scan {} started (run {}); `scansync runs --scan {}` shows it",
            summary.scan,
            crate::display::clean(
                summary
                    .vendor_scan_id
                    .as_deref()
                    .unwrap_or("(none: passive vendor)")
            ),
            summary.run_id,
            summary.scan
        );
        return Ok(if summary.error.is_some() {
            EXIT_RUN_FAILED
        } else {
            0
        });
    }
    if summary.state == RunState::Running && *ctx.stop.borrow() {
        // Stopped (Ctrl-C, SIGTERM) while the vendor scan runs: it is not thrown away, but
        // this step did not get its answer, so it must not pass.
        eprintln!(
            "scan {}: stopped while vendor scan {} runs (run {}); it goes on at the vendor and \
             a daemon (`scansync run`) finishes the run; `scansync runs --scan {}` shows it",
            summary.scan,
            crate::display::clean(summary.vendor_scan_id.as_deref().unwrap_or("(unknown)")),
            summary.run_id,
            summary.scan
        );
        ctx.release().await;
        return Ok(EXIT_RUN_FAILED);
    }
    if summary.state == RunState::Running {
        // Past --timeout: the vendor scan goes on; the run is the daemon's to finish.
        let minutes = minutes_text(args.timeout.unwrap_or_default());
        println!(
            "scan {}: vendor scan {} still running after --timeout {minutes} minute(s) (run {}); \
             it goes on at the vendor and a running daemon (`scansync run`) takes the run over \
             within a minute (a stopped one at its next start); \
             `scansync runs --scan {}` shows it",
            summary.scan,
            crate::display::clean(summary.vendor_scan_id.as_deref().unwrap_or("(unknown)")),
            summary.run_id,
            summary.scan
        );
        ctx.release().await;
        return Ok(0);
    }
    print_summary(&summary);
    // The run's webhook notifications were committed with its end: try them now, for a few
    // seconds at most; what is left stays in the outbox for the daemon.
    crate::webhooks::deliver_before_exit(&ctx.delivery()).await;
    ctx.release().await;
    if summary.state != RunState::Succeeded {
        eprintln!(
            "error: run {} ended {}{}",
            summary.run_id,
            super::runs::run_state_word(summary.state),
            summary
                .error
                .as_deref()
                .map(|e| format!(": {}", crate::display::clean(e)))
                .unwrap_or_default()
        );
        return Ok(EXIT_RUN_FAILED);
    }
    let exceeded = exceeded_thresholds(
        &[
            (Severity::Critical, args.threshold_crit),
            (Severity::High, args.threshold_high),
            (Severity::Medium, args.threshold_med),
            (Severity::Low, args.threshold_low),
        ],
        &summary.open_by_severity,
    );
    if exceeded.is_empty() {
        return Ok(0);
    }
    for e in &exceeded {
        eprintln!("threshold exceeded: {e}");
    }
    Ok(EXIT_THRESHOLD)
}

fn print_summary(s: &RunSummary) {
    println!(
        "scan {}: run {} {}{}",
        s.scan,
        s.run_id,
        super::runs::run_state_word(s.state),
        s.vendor_scan_id
            .as_deref()
            .map(|id| format!(" (vendor scan {})", crate::display::clean(id)))
            .unwrap_or_default()
    );
    let c = s.counts;
    println!(
        "  seen {}, new {}, fixed {}, reopened {}",
        c.seen, c.new, c.fixed, c.reopened
    );
    let open: Vec<String> = Severity::ALL
        .iter()
        .map(|sev| {
            format!(
                "{sev} {}",
                s.open_by_severity.get(sev).copied().unwrap_or(0)
            )
        })
        .collect();
    println!("  open: {}", open.join(", "));
}

fn stop_on_signal(
    stop: tokio::sync::watch::Sender<bool>,
) -> std::io::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            // Through the log, so it is written below no half-drawn status line.
            tracing::warn!("stopping: the run commits its current page and ends interrupted");
            let _ = stop.send(true);
        }
    });
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DaemonConfig, InstanceConfig, Schedule, StoreConfig};

    fn instance(vendor: &str) -> InstanceConfig {
        InstanceConfig {
            vendor: vendor.into(),
            ..Default::default()
        }
    }

    fn config(instances: &[(&str, &str)], scans: &[(&str, &str, &str)]) -> Config {
        Config {
            store: StoreConfig {
                location: crate::config::StoreLocation::Sqlite("/tmp/s.db".into()),
                retention: Default::default(),
            },
            daemon: DaemonConfig::default(),
            instances: instances
                .iter()
                .map(|(name, vendor)| (name.to_string(), instance(vendor)))
                .collect(),
            scans: scans
                .iter()
                .map(|(name, inst, bind_to)| ScanConfig {
                    name: name.to_string(),
                    schedule: Schedule::Every(Duration::from_secs(3600)),
                    ..ScanConfig::ad_hoc("x", inst, bind_to)
                })
                .collect(),
            webhooks: Default::default(),
            server: None,
            suppress: Vec::new(),
        }
    }

    #[test]
    fn meta_takes_key_equals_value_and_keeps_equals_signs_in_the_value() {
        assert_eq!(
            parse_meta("commit=abc"),
            Ok(("commit".to_string(), "abc".to_string()))
        );
        assert_eq!(
            parse_meta("query=a=b"),
            Ok(("query".to_string(), "a=b".to_string()))
        );
        assert_eq!(
            parse_meta("empty="),
            Ok(("empty".to_string(), String::new()))
        );
        assert!(parse_meta("no-equals").is_err());
        assert!(parse_meta("=value").is_err());
    }

    #[test]
    fn timeout_takes_fractional_minutes_above_zero() {
        assert_eq!(parse_minutes("0.05"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_minutes("30"), Ok(Duration::from_secs(1800)));
        assert!(parse_minutes("0").is_err());
        assert!(parse_minutes("-1").is_err());
        assert!(parse_minutes("NaN").is_err());
        assert!(parse_minutes("soon").is_err());
        assert_eq!(minutes_text(Duration::from_secs(3)), "0.05");
        assert_eq!(minutes_text(Duration::from_secs(90)), "1.5");
        assert_eq!(minutes_text(Duration::from_secs(1800)), "30");
    }

    #[test]
    fn configured_scan_on_that_vendor_and_project_is_picked() {
        let c = config(
            &[("ct", "codethreat"), ("salt", "saltsecurity")],
            &[("salt-shop", "salt", "shop"), ("ct-shop", "ct", "shop")],
        );
        let s = pick_scan(&c, "codethreat", "shop").unwrap();
        assert_eq!(s.name, "ct-shop");
        assert_eq!(s.schedule, Schedule::Every(Duration::from_secs(3600)));
    }

    #[test]
    fn unconfigured_project_binds_ad_hoc_on_the_only_instance_of_the_vendor() {
        let c = config(&[("ct", "codethreat"), ("salt", "saltsecurity")], &[]);
        let s = pick_scan(&c, "codethreat", "shop").unwrap();
        assert_eq!(
            (s.name.as_str(), s.instance.as_str(), s.bind_to.as_str()),
            ("codethreat-shop", "ct", "shop")
        );
        assert_eq!(s.schedule, Schedule::Now);
    }

    #[test]
    fn several_instances_of_the_vendor_without_a_configured_scan_is_an_error_naming_them() {
        let c = config(&[("ct-a", "codethreat"), ("ct-b", "codethreat")], &[]);
        let e = pick_scan(&c, "codethreat", "shop").unwrap_err().to_string();
        assert!(
            e.contains("ct-a, ct-b") && e.contains("bind_to = \"shop\""),
            "{e}"
        );
    }

    #[test]
    fn no_instance_of_the_vendor_is_an_error_saying_what_to_add() {
        let c = config(&[("salt", "saltsecurity")], &[]);
        let e = pick_scan(&c, "codethreat", "shop").unwrap_err().to_string();
        assert!(e.contains("vendor = \"codethreat\""), "{e}");
    }

    fn open(c: u64, h: u64, m: u64, l: u64) -> BTreeMap<Severity, u64> {
        BTreeMap::from([
            (Severity::Critical, c),
            (Severity::High, h),
            (Severity::Medium, m),
            (Severity::Low, l),
            (Severity::Info, 100),
        ])
    }

    #[test]
    fn threshold_high_zero_fails_on_a_single_critical_finding() {
        let e = exceeded_thresholds(&[(Severity::High, Some(0))], &open(1, 0, 0, 0));
        assert_eq!(
            e,
            vec![Exceeded {
                severity: Severity::High,
                count: 1,
                limit: 0
            }]
        );
    }

    #[test]
    fn a_count_equal_to_the_threshold_passes() {
        let e = exceeded_thresholds(&[(Severity::Medium, Some(6))], &open(1, 2, 3, 50));
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn every_exceeded_threshold_is_reported_worst_first_and_unset_ones_ignored() {
        let limits = [
            (Severity::Low, Some(10)),
            (Severity::Critical, Some(0)),
            (Severity::High, None),
            (Severity::Medium, Some(100)),
        ];
        let e = exceeded_thresholds(&limits, &open(2, 3, 4, 5));
        let got: Vec<(Severity, u64)> = e.iter().map(|x| (x.severity, x.count)).collect();
        assert_eq!(got, vec![(Severity::Critical, 2), (Severity::Low, 14)]);
    }

    #[test]
    fn missing_severities_count_as_zero() {
        let e = exceeded_thresholds(&[(Severity::Critical, Some(0))], &BTreeMap::new());
        assert!(e.is_empty());
    }

    #[test]
    fn exceeded_message_names_the_flag_the_count_and_the_scope() {
        let e = Exceeded {
            severity: Severity::High,
            count: 5,
            limit: 2,
        };
        assert_eq!(
            e.to_string(),
            "5 open finding(s) high or worse, more than --threshold-high 2"
        );
    }
}
