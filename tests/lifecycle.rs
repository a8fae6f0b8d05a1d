//! The lifecycle's promise, tried as an adversary would with real processes: two runners of
//! one scan, a filter raised after a sync, and a campaign of `kill -9` at random instants of
//! multi-page ingests and their run ends. Nothing the vendor still lists is ever `fixed`, the
//! store stays whole, and a receiver is told exactly what changed.

mod harness;

use harness::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scansync");

/// Leases and heartbeats of the processes these tests start and kill expire after this, so
/// the next runner need not wait the production 45 s.
const LEASE_TTL_MS: &str = "1000";

fn command(h: &Harness, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(h.config_path())
        .args(args)
        .env("SCANSYNC_LEASE_TTL_MS", LEASE_TTL_MS)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

fn db(h: &Harness) -> rusqlite::Connection {
    rusqlite::Connection::open(h.store_path()).unwrap()
}

fn scalar(h: &Harness, sql: &str) -> i64 {
    db(h).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The store is whole: SQLite's own check, one row per identity, nothing fixed or held.
fn assert_store_whole_and_nothing_fixed(h: &Harness, when: &str) {
    let check: String = db(h)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{when}");
    assert_eq!(
        scalar(
            h,
            "SELECT count(*) FROM (SELECT 1 FROM findings GROUP BY scan_id, fingerprint \
             HAVING count(*) > 1)"
        ),
        0,
        "{when}: duplicate rows"
    );
    let wrong = scalar(
        h,
        "SELECT count(*) FROM findings WHERE state IN ('fixed', 'missing')",
    );
    assert_eq!(
        wrong,
        0,
        "{when}: the vendor lists every finding, so none may be fixed or missing; runs:\n{}",
        runs_table(h)
    );
    // Nor for a while: a false fix that a later run reopened was announced all the same.
    assert_eq!(
        scalar(
            h,
            "SELECT count(*) FROM finding_events WHERE kind IN ('fixed', 'missing')"
        ),
        0,
        "{when}: a finding the vendor lists was fixed or held at some point:\n{}\nruns:\n{}",
        fixed_findings_history(h),
        runs_table(h)
    );
}

/// Every run, one line each, for a failure message.
fn runs_table(h: &Harness) -> String {
    db(h)
        .prepare(
            "SELECT id, scan, state, trigger, vendor_scan_id, seen, new, fixed, missing, pages, \
             started_at, finished_at, error FROM sync_runs ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| Ok(cells(r, 13)))
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A row's first `n` columns as text, ` | ` between them.
fn cells(r: &rusqlite::Row<'_>, n: usize) -> String {
    use rusqlite::types::ValueRef;
    (0..n)
        .map(|i| match r.get_ref(i).unwrap() {
            ValueRef::Null => "-".to_owned(),
            ValueRef::Integer(v) => v.to_string(),
            ValueRef::Real(v) => v.to_string(),
            ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Every event of each finding that was ever fixed or held missing, one line each, for a
/// failure message.
fn fixed_findings_history(h: &Harness) -> String {
    db(h)
        .prepare(
            "SELECT e.finding_id, f.state, e.id, e.run_id, e.kind, e.old_value, e.new_value, e.at \
             FROM finding_events e JOIN findings f ON f.id = e.finding_id \
             WHERE e.finding_id IN (SELECT finding_id FROM finding_events \
                                    WHERE kind IN ('fixed', 'missing')) \
             ORDER BY e.finding_id, e.id",
        )
        .unwrap()
        .query_map([], |r| Ok(cells(r, 8)))
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A loopback webhook receiver that answers 200 and keeps each message once by its
/// `webhook-id` (a redelivery after a crash carries the same id).
struct Receiver {
    url: String,
    messages: Arc<Mutex<BTreeMap<String, serde_json::Value>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let messages: Arc<Mutex<BTreeMap<String, serde_json::Value>>> = Arc::default();
        let keep = messages.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let (mut length, mut id) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = lower.strip_prefix("webhook-id:") {
                        id = v.trim().to_string();
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                if let Ok(v) = serde_json::from_slice(&body) {
                    keep.lock().unwrap().insert(id, v);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Receiver { url, messages }
    }

    /// How many findings the messages of `event` announced in all (listed plus `more`).
    fn announced(&self, event: &str) -> u64 {
        self.messages
            .lock()
            .unwrap()
            .values()
            .filter(|m| m["type"] == event)
            .map(|m| {
                m["data"]["findings"].as_array().unwrap().len() as u64
                    + m["data"]["more"].as_u64().unwrap()
            })
            .sum()
    }
}

/// The harness's config plus a webhook to `url` for every finding event.
fn add_webhook(h: &Harness, url: &str) {
    let secret = h.dir.path().join("hook-secret");
    std::fs::write(&secret, "a-webhook-secret-of-some-length\n").unwrap();
    let mut text = std::fs::read_to_string(h.config_path()).unwrap();
    text.push_str(&format!(
        "\n[webhooks.rx]\nurl = \"{url}\"\nsecret_file = \"{}\"\n\
         events = [\"findings.new\", \"findings.fixed\", \"findings.reopened\"]\n",
        secret.display()
    ));
    std::fs::write(h.config_path(), text).unwrap();
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn two_syncs_of_one_scan_at_once_both_end_one_waits_and_nothing_is_fixed() {
    let mut opts = options(1, 1_200, 0.0);
    opts.scan_seconds = 1.5;
    let h = Harness::start(opts);
    h.write_config(&[("ct-main", "ct", "project-1")]);
    let out = command(&h, &["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));

    // CI and the daemon, say: two runners of the same scan at the same moment.
    let spawn = || {
        command(&h, &["sync", "--scan", "ct-main"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(a.status.code(), Some(0), "{}", output_text(&a));
    assert_eq!(b.status.code(), Some(0), "{}", output_text(&b));
    let waited: Vec<bool> = [&a, &b]
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stderr).contains("waiting for run "))
        .collect();
    assert_eq!(
        waited.iter().filter(|w| **w).count(),
        1,
        "exactly one waited:\n{}\n{}",
        output_text(&a),
        output_text(&b)
    );
    assert_store_whole_and_nothing_fixed(&h, "after two overlapping syncs");
    // The runs did not overlap: the second began after the first ended.
    let runs: Vec<(String, String, String)> = db(&h)
        .prepare("SELECT state, started_at, finished_at FROM sync_runs ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.iter().all(|r| r.0 == "succeeded"), "{runs:?}");
    assert!(runs[2].1 >= runs[1].2, "{runs:?}");
    assert_eq!(h.sim.codethreat_scans().len(), 3);
}

#[test]
fn no_wait_exits_75_while_another_run_of_the_scan_is_going() {
    let mut opts = options(1, 600, 0.0);
    opts.scan_seconds = 3.0;
    let h = Harness::start(opts);
    h.write_config(&[("ct-main", "ct", "project-1")]);
    let mut first = command(&h, &["sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while scalar_or_zero(&h, "SELECT count(*) FROM scan_leases") == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "no lease taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = command(&h, &["sync", "--no-wait"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is being run by run 1"),
        "{}",
        output_text(&out)
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(scalar(&h, "SELECT count(*) FROM sync_runs"), 1);
}

/// `sql`'s number, or 0 while the store or its table does not exist yet.
fn scalar_or_zero(h: &Harness, sql: &str) -> i64 {
    if !h.store_path().exists() {
        return 0;
    }
    db(h).query_row(sql, [], |r| r.get(0)).unwrap_or(0)
}

#[test]
fn raising_min_severity_after_a_sync_changes_no_lifecycle_state() {
    let h = Harness::start(options(1, 1_200, 0.0));
    h.write_config(&[("ct-main", "ct", "project-1")]);
    let out = command(&h, &["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let rows = scalar(&h, "SELECT count(*) FROM findings");
    let below_high = scalar(
        &h,
        "SELECT count(*) FROM findings WHERE severity IN ('medium', 'low', 'info')",
    );
    assert!(below_high > 0, "the data must have findings below high");

    let text = std::fs::read_to_string(h.config_path()).unwrap();
    let text = text.replace(
        "bind_to = \"project-1\"\n",
        "bind_to = \"project-1\"\nmin_severity = \"high\"\n",
    );
    std::fs::write(h.config_path(), text).unwrap();
    let out = command(&h, &["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    assert_eq!(scalar(&h, "SELECT count(*) FROM findings"), rows);
    assert_store_whole_and_nothing_fixed(&h, "after raising min_severity");
    assert_eq!(
        scalar(
            &h,
            "SELECT count(*) FROM findings WHERE state = 'open' AND severity IN ('medium', 'low', 'info')"
        ),
        below_high,
        "findings below the filter are still seen and open"
    );
}

/// At least 50 `kill -9` at random instants of a multi-page sync of two scans (both vendors)
/// and its run ends. After each: the store is whole and nothing is fixed (the vendor's data
/// does not change: every vendor scan lists the same findings). Then a daemon adopts every
/// run the kills left and a receiver is told of every finding created exactly once, and a
/// clean run finds the store at the vendor's truth. (That an honest run with real changes
/// fixes what went is pinned by `sync_e2e`'s churn test.)
#[test]
fn kill_campaign_never_fixes_what_the_vendor_lists_and_loses_no_notification() {
    const KILLS: usize = 50;
    let mut opts = options(1, 2_000, 0.0);
    opts.scan_seconds = 0.1;
    let h = Harness::start(opts);
    h.write_config(&[
        ("ct-main", "ct", "project-1"),
        ("salt-main", "salt", "project-1"),
    ]);
    let rx = Receiver::start();
    add_webhook(&h, &rx.url);

    // How long one whole sync takes here: the kills land anywhere in it.
    let started = Instant::now();
    let out = command(&h, &["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let whole = started.elapsed();
    assert_store_whole_and_nothing_fixed(&h, "after the first sync");

    let seed = std::env::var("SCANSYNC_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261201u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    for kill in 0..KILLS {
        let mut child: Child = command(&h, &["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Up to the whole sync plus the wait for a killed predecessor's lease.
        let window = whole.as_millis() as u64 + 1_000;
        std::thread::sleep(Duration::from_millis(rng.u64(0..window)));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        assert_store_whole_and_nothing_fixed(
            &h,
            &format!("after kill {kill} (seed {seed}, window {window} ms)"),
        );
    }

    // A daemon adopts what the kills left (polling the same vendor scans) and delivers.
    let mut daemon = command(&h, &["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let running = scalar(&h, "SELECT count(*) FROM sync_runs WHERE state = 'running'");
        let pending = scalar(
            &h,
            "SELECT count(*) FROM webhook_outbox WHERE state = 'pending'",
        );
        if running == 0 && pending == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{running} runs still running, {pending} notifications pending"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status();
    assert!(daemon.wait().unwrap().success());
    assert_store_whole_and_nothing_fixed(&h, "after the daemon adopted the left runs");
    assert_eq!(
        scalar(
            &h,
            "SELECT count(*) FROM sync_runs WHERE notified_at IS NULL"
        ),
        0,
        "every run's notifications were written"
    );
    let rows = scalar(&h, "SELECT count(*) FROM findings") as u64;
    assert_eq!(
        scalar(
            &h,
            "SELECT count(*) FROM finding_events WHERE kind = 'created'"
        ) as u64,
        rows
    );
    assert_eq!(
        rx.announced("findings.new"),
        rows,
        "each new finding announced once"
    );
    assert_eq!(
        rx.announced("findings.fixed"),
        0,
        "events of the findings announced fixed:\n{}\nruns:\n{}",
        fixed_findings_history(&h),
        runs_table(&h)
    );

    // One clean run more: the store holds exactly what the vendor lists, nothing new to say.
    let out = command(&h, &["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    for (scan, vendor) in [("ct-main", "ct"), ("salt-main", "salt")] {
        assert_eq!(h.open_ids(scan), h.expected(vendor, 1, 0), "{scan}");
        assert_eq!(
            h.stored(scan).len(),
            h.identities(vendor, 1, 0).len(),
            "{scan}: one row per identity"
        );
    }
    assert_store_whole_and_nothing_fixed(&h, "after the clean run");
    assert_eq!(rx.announced("findings.new"), rows);
}

#[test]
fn read_only_commands_never_create_or_write_the_store_and_refuse_a_newer_one() {
    let h = Harness::start(options(1, 50, 0.0));
    h.write_config(&[("ct-main", "ct", "project-1")]);
    // No store yet: an error that says so, and still no file.
    for args in [
        &["findings"][..],
        &["runs"],
        &["export", "--format", "jsonl"],
        &["webhook", "pending"],
    ] {
        let out = command(&h, args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            output_text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no store at"),
            "{args:?}: {}",
            output_text(&out)
        );
        assert!(!h.store_path().exists(), "{args:?} created the store");
    }
    let out = command(&h, &["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    // A store from a newer scansync: exit 78 with what to do, file untouched.
    db(&h).pragma_update(None, "user_version", 99).unwrap();
    let before = std::fs::read(h.store_path()).unwrap();
    for args in [&["findings"][..], &["runs"], &["export", "--format", "csv"]] {
        let out = command(&h, args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(78),
            "{args:?}: {}",
            output_text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("upgrade scansync"),
            "{}",
            output_text(&out)
        );
    }
    assert_eq!(std::fs::read(h.store_path()).unwrap(), before);
}

#[test]
fn a_relative_store_path_means_the_same_file_for_every_command_from_any_folder() {
    let h = Harness::start(options(1, 50, 0.0));
    h.write_config(&[("ct-main", "ct", "project-1")]);
    let text = std::fs::read_to_string(h.config_path()).unwrap();
    let absolute = toml::Value::String(h.store_path().to_string_lossy().into_owned()).to_string();
    std::fs::write(
        h.config_path(),
        text.replace(&format!("path = {absolute}"), "path = \"state/rel.db\""),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = command(&h, args)
            .current_dir(elsewhere.path())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            output_text(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["sync"]);
    assert!(h.dir.path().join("state/rel.db").exists());
    assert!(!elsewhere.path().join("state").exists());
    assert_eq!(run(&["findings", "--format", "json"]).lines().count(), 50);
    assert_eq!(run(&["runs", "--format", "json"]).lines().count(), 1);
    assert_eq!(run(&["export", "--format", "jsonl"]).lines().count(), 50);
}
