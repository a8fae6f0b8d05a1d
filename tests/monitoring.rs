//! The drop-in monitoring (contrib/grafana/scansync.json, contrib/prometheus/scansync-rules.yml)
//! uses only metrics that exist: every `scansync_*` name in the dashboard's queries and the
//! rules' expressions is found in the `/metrics` text of the real binary running as a daemon
//! against the simulator, with a webhook receiver that refuses (so the delivery families
//! have series). The rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`), and the daemon's whole `/metrics` text passes
//! `promtool check metrics` (Debian package `prometheus`; skipped visibly without it, a
//! failure under CI).

mod common;

use scansync::sim::{Fault, FaultKind, SimOptions, Simulator};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

fn contrib(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(path)
}

/// The `scansync_*` metric names in `text` (a PromQL expression or more).
fn metric_names(text: &str, out: &mut BTreeSet<String>) {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut rest = text;
    while let Some(i) = rest.find("scansync_") {
        let starts_word = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !is_name_char(c));
        let len = rest[i..]
            .find(|c: char| !is_name_char(c))
            .unwrap_or(rest.len() - i);
        if starts_word {
            out.insert(rest[i..i + len].to_string());
        }
        rest = &rest[i + len..];
    }
}

/// The names the dashboard's queries and template variables use.
fn dashboard_names() -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                            metric_names(s, out)
                        }
                        _ => walk(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(contrib("grafana/scansync.json")).unwrap();
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).expect("the dashboard is valid JSON");
    let mut names = BTreeSet::new();
    walk(&dashboard, &mut names);
    names
}

/// The names in the rules file, comments left out (annotations name no metric).
fn rules_names() -> BTreeSet<String> {
    let text = std::fs::read_to_string(contrib("prometheus/scansync-rules.yml")).unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        metric_names(line, &mut names);
    }
    names
}

/// The series names of a Prometheus text exposition: every sample's name, and for each
/// `# TYPE` the names its samples take (`_bucket`, `_sum`, `_count` of a histogram).
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The listener's base URL, from the daemon's "listening on http://ADDR" log line.
async fn listener_url(log: &Path, daemon: &mut Daemon) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(i) = text.find("listening on http://") {
            let rest = &text[i + "listening on ".len()..];
            return rest[..rest.find(' ').unwrap()].to_string();
        }
        if let Some(status) = daemon.0.try_wait().unwrap() {
            panic!("the daemon exited ({status}) before listening:\n{text}");
        }
        assert!(start.elapsed() < WAIT, "the daemon never listened:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_use_only_metrics_the_daemon_serves() {
    let sim = Simulator::start(SimOptions {
        projects: 1,
        findings_per_project: 12,
        scan_seconds: 0.0,
        // One 500 answer: the client retries, so the retry family has a series.
        faults: vec![Fault::first(FaultKind::Status500, 1)],
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    sim.write_config(&config, &dir.path().join("scansync.db"))
        .unwrap();
    let generated = std::fs::read_to_string(&config).unwrap();
    let head = &generated[..generated.find("[[scans]]").expect("the config has scans")];
    // Periodic scans (every, cron) so the interval family has series, one of them bound to a
    // project the vendor does not have, so the failed-run family has one too; new findings go
    // to a webhook receiver that refuses connections (a closed loopback port), so deliveries
    // are retried and the outbox holds them.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let text = format!(
        "{head}\
         [server]\nlisten = \"127.0.0.1:0\"\n\n\
         [webhooks.sink]\nurl = \"http://127.0.0.1:{closed_port}/hook\"\n\
         secret_env = \"MONITORING_TEST_SECRET\"\n\n\
         [[scans]]\nname = \"ct-hourly\"\ninstance = \"sim-codethreat\"\n\
         bind_to = \"project-1\"\nbranch = \"main\"\nschedule = {{ every = \"1h\" }}\n\n\
         [[scans]]\nname = \"salt-nightly\"\ninstance = \"sim-salt\"\n\
         bind_to = \"project-1\"\nschedule = {{ cron = \"0 0 2 * * *\" }}\n\n\
         [[scans]]\nname = \"ct-missing\"\ninstance = \"sim-codethreat\"\n\
         bind_to = \"no-such-project\"\nschedule = {{ every = \"1h\" }}\n"
    );
    std::fs::write(&config, text).unwrap();

    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_scansync"))
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("MONITORING_TEST_SECRET", "a-webhook-secret-of-32-bytes-xx")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("scansync starts"),
    );
    let base = listener_url(&log, &mut daemon).await;
    let url = format!("{base}/metrics");

    // A push for a scan without a webhook (404) gives the trigger family a series. The
    // hourly scan runs at start-up (it never ran): wait for its success and a retried
    // delivery of its new findings.
    let client = reqwest::Client::new();
    let start = Instant::now();
    loop {
        match client
            .post(format!("{base}/hooks/ct-hourly"))
            .body("{}")
            .send()
            .await
        {
            Ok(resp) if resp.status() == 404 => break,
            Ok(resp) if resp.status() != 503 => panic!("POST /hooks/ct-hourly: {}", resp.status()),
            _ => {
                assert!(start.elapsed() < WAIT, "the listener never answered a push");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let start = Instant::now();
    let metrics = loop {
        let text = match client.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => resp.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        // Every series also carries this daemon's `node` label, first.
        if text.contains(",scan=\"ct-hourly\",outcome=\"succeeded\"} 1")
            && text.contains("scansync_last_failed_sync_timestamp_seconds{node=")
            && text.contains(",scan=\"ct-missing\"}")
            && text.contains(",webhook=\"sink\"")
            && text.contains("scansync_vendor_retries_total{")
        {
            break text;
        }
        assert!(
            start.elapsed() < WAIT,
            "no successful run, failed run and retried delivery in /metrics within {WAIT:?}:\n{text}\n\
             --- daemon log ---\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(daemon);
    common::promtool_check(&metrics);

    let exposed = exposed_names(&metrics);
    assert!(
        metrics.contains("scansync_scan_interval_seconds{node=")
            && metrics.contains(",scan=\"ct-hourly\"} 3600"),
        "{metrics}"
    );
    let dashboard = dashboard_names();
    let rules = rules_names();
    // The panels the issue asks for, so a dashboard that lost them cannot pass.
    for must in [
        "scansync_runs_total",
        "scansync_run_duration_seconds_bucket",
        "scansync_findings",
        "scansync_last_successful_sync_timestamp_seconds",
        "scansync_vendor_requests_total",
        "scansync_vendor_retries_total",
        "scansync_webhook_outbox_depth",
    ] {
        assert!(
            dashboard.contains(must),
            "the dashboard does not use {must}"
        );
    }
    for must in [
        "scansync_scan_interval_seconds",
        "scansync_scan_created_timestamp_seconds",
        "scansync_last_failed_sync_timestamp_seconds",
        "scansync_webhook_outbox_oldest_pending_timestamp_seconds",
    ] {
        assert!(rules.contains(must), "the rules do not use {must}");
    }
    for (file, names) in [
        ("contrib/grafana/scansync.json", &dashboard),
        ("contrib/prometheus/scansync-rules.yml", &rules),
    ] {
        let missing: Vec<_> = names.difference(&exposed).collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics the daemon does not serve: {missing:?}\n/metrics:\n{metrics}"
        );
    }
}

/// `promtool ARGS` in contrib/prometheus; where promtool is missing, [`common::tool_missing`].
fn promtool(args: &[&str]) {
    let out = match Command::new("promtool")
        .args(args)
        .current_dir(contrib("prometheus"))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            common::tool_missing(
                &format!("promtool {}", args.join(" ")),
                &format!("cannot run promtool ({e}); install the Debian package `prometheus`"),
            );
            return;
        }
    };
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "rules", "scansync-rules.yml"]);
    promtool(&["test", "rules", "scansync-rules.test.yml"]);
}
