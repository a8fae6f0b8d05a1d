//! Adversarial tests for issue #16 ("Ready for an air-gapped server"), second round, after the
//! first round's eight breaks were fixed (tests/attack16.rs). Each test names a promise of the
//! issue an operator relies on. Nine showed it broken when written (2026-12-01) and have been
//! fixed since; the other three held. All stay as guards.
//!
//! Rule fixtures: tests/fixtures/attack16/rules-round2-*.test.yml (`[RULES]` is replaced by
//! the real contrib/prometheus/scansync-rules.yml).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scansync");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Alert rules, through `promtool test rules`.

/// `promtool test rules` on a fixture of tests/fixtures/attack16 with `[RULES]` pointing at
/// the real rules file. Without promtool: a visible skip (a failure under CI).
fn promtool_test_rules(fixture: &str) {
    let rules = repo("contrib/prometheus/scansync-rules.yml");
    let text = read(&format!("tests/fixtures/attack16/{fixture}"))
        .replace("[RULES]", &format!("[{}]", rules.display()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(fixture);
    std::fs::write(&file, text).unwrap();
    let out = match Command::new("promtool")
        .args(["test", "rules"])
        .arg(&file)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            common::tool_missing(
                &format!("promtool test rules {fixture}"),
                &format!("cannot run promtool ({e})"),
            );
            return;
        }
    };
    assert!(
        out.status.success(),
        "promtool test rules {fixture}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// "alerts: runs failing": a daily scan whose latest run failed stops alerting 6 hours after
/// that failure, with no run since (a RESOLVED for a scan that is still broken), and nothing
/// fires again until ScansyncScanStale 17 hours later.
#[test]
fn attack16r2_runs_failing_keeps_firing_while_the_latest_run_is_a_failure() {
    promtool_test_rules("rules-round2-runs-failing.test.yml");
}

/// ScansyncWebhookGaveUp: the `gave_up` series is created at its first increment, so the
/// first give-up of a process (a 410 Gone receiver gives up at once) is never counted by
/// increase() and the notification is lost without an alert.
#[test]
fn attack16r2_webhook_gave_up_fires_for_the_first_give_up() {
    promtool_test_rules("rules-round2-gave-up.test.yml");
}

/// Held: a branch scope's successes (`name@branch`) neither hide the configured scan's
/// staleness nor make the branch scope stale; a one-shot scan is never stale; a failure
/// followed by a success is not "runs failing".
#[test]
fn attack16r2_stale_and_failing_alerts_hold_for_branch_scopes_and_one_shot_scans() {
    promtool_test_rules("rules-round2-holds.test.yml");
}

// ---------------------------------------------------------------------------------------
// A daemon on loopback.

/// `scansync run` with `config` (its `[server] listen` is `127.0.0.1:{port}`), killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// `scans` and `extra` (TOML) around one CodeThreat instance that refuses connections.
    fn start(scans: &str, extra: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"{store}\"\n{extra}\n\
                 [instances.ct]\nvendor = \"codethreat\"\nurl = \"http://127.0.0.1:9\"\n\
                 organization = \"acme\"\ntoken = \"x\"\n{scans}\n\
                 [server]\nlisten = \"127.0.0.1:{port}\"\n",
                store = dir.path().join("s.db").display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        Daemon { child, port, dir }
    }

    /// (status, body) of `GET path`, or None while nothing listens. The `node` label every
    /// /metrics series carries (several daemons on one store) is taken out, so the series
    /// below are written as one daemon's.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        conn.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
        let mut text = String::new();
        conn.read_to_string(&mut text).ok()?;
        let status = text.split(' ').nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        Some((status, without_node(&body)))
    }

    /// Polls `GET path` until `done` holds (10 s at most); the last answer.
    fn wait_for(&self, path: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
        let start = Instant::now();
        let mut last = (0, String::new());
        while start.elapsed() < Duration::from_secs(10) {
            if let Some((status, body)) = self.get(path) {
                if done(status, &body) {
                    return (status, body);
                }
                last = (status, body);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "GET {path} never got there; last answer {}:\n{}",
            last.0, last.1
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `metrics` with the `node="…"` label left out of every series.
fn without_node(metrics: &str) -> String {
    let mut out = String::with_capacity(metrics.len());
    let mut rest = metrics;
    while let Some(i) = rest.find("{node=\"") {
        let value = &rest[i + "{node=\"".len()..];
        let Some(end) = value.find('"') else { break };
        out.push_str(&rest[..i]);
        let after = &value[end + 1..];
        rest = match after.strip_prefix(',') {
            Some(more) => {
                out.push('{');
                more
            }
            None => after.strip_prefix('}').unwrap_or(after),
        };
    }
    out.push_str(rest);
    out
}

/// The value of the series `metric{labels}` (labels written as in the text) in `metrics`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// "alerts: a daemon not ready": /readyz answers 503 when the store takes no writes (its
/// heartbeat is stale: disk full, a read-only remount, a lock held by another process), but
/// /metrics only reads and answers 200, so `up` stays 1 and ScansyncNotReady (`up == 0`)
/// never fires; no series says "not ready" either.
#[test]
fn attack16r2_the_not_ready_alert_sees_a_daemon_whose_readyz_fails() {
    let daemon = Daemon::start(
        "[[scans]]\nname = \"nightly\"\ninstance = \"ct\"\nbind_to = \"p\"\n\
         schedule = { cron = \"0 0 2 * * *\" }\n",
        "",
        &[("SCANSYNC_LEASE_TTL_MS", "600")],
    );
    daemon.wait_for("/readyz", |status, _| status == 200);
    // Another process holds the store's write lock (as `sqlite3` with BEGIN EXCLUSIVE would).
    let lock = rusqlite::Connection::open(daemon.dir.path().join("s.db")).unwrap();
    lock.busy_timeout(Duration::from_secs(5)).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (_, readyz) = daemon.wait_for("/readyz", |status, _| status == 503);
    let (status, metrics) = daemon.get("/metrics").expect("/metrics answers");
    let _ = lock.execute_batch("ROLLBACK");
    let rules = read("contrib/prometheus/scansync-rules.yml");
    let not_ready = rules
        .split("- alert: ScansyncNotReady")
        .nth(1)
        .and_then(|r| r.split("- alert:").next())
        .expect("a ScansyncNotReady rule");
    let series_used: Vec<&str> = not_ready
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("scansync_") && metrics.contains(&format!("\n{w}")))
        .collect();
    assert!(
        status != 200 || !series_used.is_empty(),
        "/readyz says not ready ({readyz}) but /metrics answers {status}, so `up` is 1 and \
         ScansyncNotReady (`up == 0`) stays silent, and no scansync_* series it reads says \
         so:\n{not_ready}"
    );
}

/// "dashboard: findings by severity and state per scan": the `scan` variable comes from
/// `scansync_scan_interval_seconds`, which only enabled periodic scans have, and has no
/// custom all value, so "All" is the regex of those names: a `now` or `at` scan (and a branch
/// scope `name@branch`, a disabled or removed scan) has findings in /metrics that no panel
/// with `scan=~"$scan"` shows, and it cannot be picked.
#[test]
fn attack16r2_the_dashboard_shows_the_findings_of_a_one_shot_scan() {
    let daemon = Daemon::start(
        "[[scans]]\nname = \"once\"\ninstance = \"ct\"\nbind_to = \"p\"\nschedule = \"now\"\n\
         [[scans]]\nname = \"nightly\"\ninstance = \"ct\"\nbind_to = \"p\"\n\
         schedule = { cron = \"0 0 2 * * *\" }\n",
        "",
        &[],
    );
    let (_, metrics) = daemon.wait_for("/metrics", |_, body| {
        body.contains("scansync_findings{scan=\"once\"")
    });
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("contrib/grafana/scansync.json")).unwrap();
    let var = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "scan")
        .expect("a scan variable");
    let all_value = var["allValue"].as_str().unwrap_or("");
    let catch_all = matches!(all_value, ".*" | ".+");
    let query = var["definition"]
        .as_str()
        .or(var["query"]["query"].as_str())
        .unwrap_or("");
    let metric: String = query
        .trim_start_matches("label_values(")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let offered = metrics
        .lines()
        .any(|l| l.starts_with(&format!("{metric}{{")) && l.contains("scan=\"once\""));
    assert!(
        catch_all || offered,
        "the dashboard's scan variable ({query}, allValue {all_value:?}) cannot offer the \
         `now` scan `once`, whose findings /metrics serves: \"All\" expands to the names it \
         offers, so every per-scan panel leaves it out"
    );
}

/// A cron or every scan's runs start up to `[daemon] jitter` after their time, so the gap
/// between two runs is up to interval + jitter; `scansync_scan_interval_seconds` ("the
/// longest time between two scheduled runs") leaves the jitter out, and ScansyncScanStale
/// (> 2 x interval) fires for a healthy `every = "1h"` scan under `jitter = "2h"`.
#[test]
fn attack16r2_the_interval_gauge_counts_the_jitter() {
    let daemon = Daemon::start(
        "[[scans]]\nname = \"hourly\"\ninstance = \"ct\"\nbind_to = \"p\"\n\
         schedule = { every = \"1h\" }\n",
        "[daemon]\njitter = \"2h\"\n",
        &[],
    );
    let (_, metrics) = daemon.wait_for("/metrics", |_, body| {
        body.contains("scansync_scan_interval_seconds{scan=\"hourly\"}")
    });
    let interval = sample(&metrics, "scansync_scan_interval_seconds{scan=\"hourly\"}").unwrap();
    assert!(
        interval >= 3.0 * 3600.0,
        "scansync_scan_interval_seconds{{scan=\"hourly\"}} is {interval}: with jitter = 2h two \
         runs can be 3h apart, and ScansyncScanStale fires after 2h10m without a success"
    );
}

/// Held: the schedule families follow a reload (SIGHUP): a changed cron gets its new longest
/// gap, a disabled scan loses both series (no stale alert for it), and a scan enabled again
/// dates from its first run in the store, not from the reload.
#[test]
fn attack16r2_the_schedule_gauges_follow_a_reload() {
    let scans = |b_enabled: bool| {
        format!(
            "[[scans]]\nname = \"a\"\ninstance = \"ct\"\nbind_to = \"p\"\n\
             schedule = {{ cron = \"{cron}\" }}\n\
             [[scans]]\nname = \"b\"\ninstance = \"ct\"\nbind_to = \"p\"\n\
             schedule = {{ every = \"1h\" }}\nenabled = {b_enabled}\n",
            cron = if b_enabled {
                "0 0 2 * * *"
            } else {
                "0 0 2 * * Mon-Fri"
            },
        )
    };
    let daemon = Daemon::start(&scans(true), "", &[]);
    let config = daemon.dir.path().join("config.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    let (_, before) = daemon.wait_for("/metrics", |_, body| {
        body.contains("scansync_scan_created_timestamp_seconds{scan=\"b\"}")
            && body.contains("scansync_findings{scan=\"b\"")
    });
    let created_b = sample(
        &before,
        "scansync_scan_created_timestamp_seconds{scan=\"b\"}",
    )
    .unwrap();
    assert_eq!(
        sample(&before, "scansync_scan_interval_seconds{scan=\"a\"}"),
        Some(86400.0)
    );
    let reload = |text: String| {
        std::fs::write(&config, text).unwrap();
        let ok = Command::new("kill")
            .args(["-HUP", &daemon.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    reload(original.replace(&scans(true), &scans(false)));
    let (_, off) = daemon.wait_for("/metrics", |_, body| {
        !body.contains("scansync_scan_interval_seconds{scan=\"b\"}")
    });
    assert!(
        !off.contains("scansync_scan_created_timestamp_seconds{scan=\"b\"}"),
        "{off}"
    );
    // Friday 02:00 to Monday 02:00.
    assert_eq!(
        sample(&off, "scansync_scan_interval_seconds{scan=\"a\"}"),
        Some(3.0 * 86400.0),
        "{off}"
    );
    std::thread::sleep(Duration::from_millis(600));
    reload(original);
    let (_, on) = daemon.wait_for("/metrics", |_, body| {
        body.contains("scansync_scan_created_timestamp_seconds{scan=\"b\"}")
    });
    let again = sample(&on, "scansync_scan_created_timestamp_seconds{scan=\"b\"}").unwrap();
    assert!(
        again - created_b < 0.5,
        "b enabled again dates from {again}, not from its first run ({created_b})"
    );
}

// ---------------------------------------------------------------------------------------
// Credentials: the packaged unit, the docs and the commands the alerts suggest.

/// Held: the unit's SetCredential= default has the same id as its directory LoadCredential=
/// (systemd.exec(5): "If a credential of the same ID is listed in both LoadCredential= and
/// SetCredential=, the latter will act as default"), and that source is an absolute path (only
/// an absolute path is opened as a directory whose files become ID_FILE).
#[test]
fn attack16r2_the_unit_credential_default_covers_its_directory() {
    let unit = read("systemd/scansync.service");
    let value = |key: &str| -> Vec<(String, String)> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(|v| {
                let (id, rest) = v.split_once(':').unwrap_or((v, ""));
                (id.to_string(), rest.to_string())
            })
            .collect()
    };
    let loads = value("LoadCredential=");
    let sets = value("SetCredential=");
    assert!(!loads.is_empty(), "the unit loads no credential");
    for (id, path) in &loads {
        assert!(
            path.starts_with('/'),
            "LoadCredential={id}:{path} is not an absolute path"
        );
        assert!(
            sets.iter().any(|(s, _)| s == id),
            "LoadCredential={id}:{path} has no SetCredential={id}: default; a missing {path} \
             fails the unit (243/CREDENTIALS)"
        );
    }
}

/// The credential names in the annotated example the package installs
/// (/usr/share/doc/scansync/examples, "An annotated example" of the packaged config) and the
/// other shipped docs: the packaged unit provides `scansync` (its default) and `scansync_FILE`
/// for each file of /etc/scansync/credentials, nothing else. config.example.toml's
/// `metrics_token_file = "%d/metrics-token"` (required once /metrics listens beyond
/// loopback, as it must for a Prometheus on another host), `token_file = "%d/ct-token"` and
/// `secret_file = "%d/webhook-siem"` name credentials the unit never has: the daemon refuses
/// to start ("cannot read …/metrics-token") with the file in /etc/scansync/credentials.
#[test]
fn attack16r2_the_shipped_examples_name_only_credentials_the_unit_provides() {
    let mut wrong = Vec::new();
    for file in [
        "config.example.toml",
        "debian/config.toml",
        "README.md",
        "systemd/README.md",
        "docs/metrics.md",
    ] {
        let text = read(file);
        for (n, line) in text.lines().enumerate() {
            let mut names: Vec<&str> = Vec::new();
            for part in line.split("%d/").skip(1) {
                names.push(
                    part.split(|c: char| c == '"' || c.is_whitespace())
                        .next()
                        .unwrap(),
                );
            }
            if let Some(rest) = line.split("credential = \"").nth(1) {
                names.push(rest.split('"').next().unwrap());
            }
            for name in names {
                let placeholder = name.is_empty() || name.chars().all(|c| c.is_ascii_uppercase());
                if !placeholder && name != "scansync" && !name.starts_with("scansync_") {
                    wrong.push(format!("{file}:{}: {name}  ({})", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "credential names the packaged unit does not provide (it has scansync_<file> for each \
         file of /etc/scansync/credentials):\n{}",
        wrong.join("\n")
    );
}

/// ScansyncVendorErrors (and the README) send the operator to `scansync test-connection
/// INSTANCE`. On the packaged layout (`credential = "scansync_ct"`, the token in
/// /etc/scansync/credentials/ct) it exits 78 at once outside the unit, and its hint,
/// `LoadCredential=scansync_ct:/path/to/token`, contradicts the unit's directory; nothing says
/// how to run it with the unit's credentials (`systemd-run -p LoadCredential=…`, or reading
/// /etc/scansync/credentials).
#[test]
fn attack16r2_test_connection_runs_or_says_how_with_the_packaged_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n[instances.ct]\nvendor = \"codethreat\"\n\
             url = \"http://127.0.0.1:9\"\norganization = \"acme\"\ncredential = \"scansync_ct\"\n",
            dir.path().join("s.db").display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["test-connection", "ct"])
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let helps = stderr.contains("/etc/scansync/credentials") || stderr.contains("systemd-run");
    assert!(
        out.status.code() != Some(78) || (helps && !stderr.contains("LoadCredential=scansync_ct:")),
        "test-connection on the packaged credential layout: exit {:?}, and no way that works \
         with the packaged unit:\n{stderr}",
        out.status.code()
    );
}

/// systemd copies the credentials when the service starts (systemd.exec(5): "read and copied
/// into separate, read-only copies for the unit"); `systemctl reload` (SIGHUP) re-reads the
/// config but sees the same copies. systemd/README.md says a reload rebuilds connectors "with
/// new tokens": a token rotated in /etc/scansync/credentials keeps the old one in use, and an
/// instance added with a new token file is rejected ("cannot read credential …"). The reload
/// section must say that token files need a restart.
#[test]
fn attack16r2_the_reload_docs_say_token_files_need_a_restart() {
    let readme = read("systemd/README.md");
    let section = readme
        .split("## Reload and stop")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a \"Reload and stop\" section");
    let says = section.split("\n\n").any(|para| {
        let p = para.to_lowercase();
        p.contains("credential") && p.contains("restart")
    });
    assert!(
        says,
        "systemd/README.md's reload section does not say that a changed or added token file \
         under /etc/scansync/credentials needs `systemctl restart scansync`:\n{section}"
    );
}

// ---------------------------------------------------------------------------------------
// The offline build.

/// `1.85` and `1.85.0` alike, for comparison.
fn version(v: &str) -> [u64; 3] {
    let mut out = [0; 3];
    for (slot, part) in out.iter_mut().zip(v.split('.')) {
        *slot = part.parse().unwrap_or(0);
    }
    out
}

/// "README: how to build it with no network": `(Rust 1.85 or newer)`, as Cargo.toml's
/// `rust-version`; the tarball ships Cargo.lock and builds with `--frozen`, so its versions
/// are final. Cargo refuses a package whose own `rust-version` is newer than the compiler
/// (uuid 1.29 wants 1.89, the icu crates under url 1.88), so an air-gapped server with Rust
/// 1.85 (Debian 13's rustc) cannot build the tarball.
#[test]
fn attack16r2_the_locked_dependencies_build_with_the_rust_version_the_readme_names() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let host = String::from_utf8(Command::new(&rustc).arg("-vV").output().unwrap().stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = meta["resolve"]["root"].as_str().unwrap().to_string();
    let packages: std::collections::BTreeMap<&str, &serde_json::Value> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let ours = packages[root.as_str()]["rust_version"]
        .as_str()
        .expect("Cargo.toml has a rust-version")
        .to_string();
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("Rust {ours} or newer")),
        "README does not say \"Rust {ours} or newer\""
    );
    // What the binary is built from: normal and build dependencies, not dev ones.
    let nodes: std::collections::BTreeMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![root.as_str()];
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let built = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if built {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let newer: Vec<String> = seen
        .iter()
        .filter_map(|id| {
            let p = packages[id];
            let needs = p["rust_version"].as_str()?;
            (version(needs) > version(&ours)).then(|| {
                format!(
                    "{} {} needs rustc {needs}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                )
            })
        })
        .collect();
    assert!(
        newer.is_empty(),
        "README and Cargo.toml promise Rust {ours}, but the locked dependencies the offline \
         tarball builds (--frozen) need a newer rustc, which cargo refuses:\n{}",
        newer.join("\n")
    );
}
