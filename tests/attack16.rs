//! Adversarial tests for issue #16 (packaging, monitoring). Each test here names a promise of
//! the issue that an operator would rely on and showed it broken when written (2026-12-01).
//! All fixed since: the package synopsis, the offline tarball's warning for untracked files,
//! the dashboard's variables on a fresh daemon, the stale / outbox / runs-failing alerts, a
//! cron scan's interval, and the unit's credentials.

use std::path::PathBuf;
use std::process::Command;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The alert rules fire for the conditions their names promise
/// (tests/fixtures/attack16/rules-attack.test.yml says which and why).
#[test]
fn attack16_alerts_fire_for_a_never_successful_scan_a_slowly_growing_outbox_and_a_first_failure() {
    let rules = repo("contrib/prometheus/scansync-rules.yml");
    let text = std::fs::read_to_string(repo("tests/fixtures/attack16/rules-attack.test.yml"))
        .unwrap()
        .replace("[RULES]", &format!("[{}]", rules.display()));
    let file =
        std::env::temp_dir().join(format!("scansync-attack16-{}.test.yml", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let out = Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output();
    let _ = std::fs::remove_file(&file);
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            // As tests/common/mod.rs tool_missing: a failure under CI, a visible skip elsewhere.
            let required = std::env::var("CI").is_ok_and(|v| v == "true")
                || std::env::var("SCANSYNC_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "promtool test rules (attack16): cannot run promtool ({e})"
            );
            eprintln!("SKIPPED promtool test rules (attack16): cannot run promtool ({e})");
            return;
        }
    };
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// "`systemctl enable --now scansync` after the config is written" starts it: with the
/// packaged minimal config (one CodeThreat instance) the unit loaded
/// /etc/scansync/credentials/saltsecurity too, and systemd refuses to start a unit whose
/// LoadCredential= source is missing (243/CREDENTIALS), unless a SetCredential= of the same id
/// gives a default (systemd.exec(5)). Every LoadCredential= of the shipped unit must therefore
/// have that default or name something the packaged config's steps create, i.e. no per-vendor
/// file for a vendor the config does not use; and every credential the config names must be
/// one the unit hands over: `ID`, or `ID_FILE` from a directory DIR whose DIR/FILE the config
/// tells the operator to write.
#[test]
fn attack16_the_unit_does_not_require_a_token_file_for_an_unused_vendor() {
    let unit = std::fs::read_to_string(repo("systemd/scansync.service")).unwrap();
    let conf = std::fs::read_to_string(repo("debian/config.toml")).unwrap();
    let settings = |key: &'static str| {
        unit.lines()
            .filter_map(move |l| l.strip_prefix(key))
            .map(|v| v.split_once(':').unwrap_or((v, v)))
    };
    let defaults: Vec<&str> = settings("SetCredential=").map(|(id, _)| id).collect();
    let loaded: Vec<(&str, &str)> = settings("LoadCredential=").collect();
    for (id, path) in &loaded {
        assert!(
            defaults.contains(id) || conf.contains(&format!("credential = \"{id}\"")),
            "the unit requires credential {id} (LoadCredential={id}:{path}), which the packaged \
             minimal config never uses: `systemctl enable --now scansync` fails with \
             243/CREDENTIALS unless the operator creates a token file for a vendor they do not \
             use or edits the unit (systemctl edit --full, which then shadows every later \
             packaged unit)"
        );
    }
    let named = conf
        .split("credential = \"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()]);
    let mut count = 0;
    for name in named {
        count += 1;
        assert!(
            loaded.iter().any(|(id, dir)| name == *id
                || name
                    .strip_prefix(&format!("{id}_"))
                    .is_some_and(|file| conf.contains(&format!("{dir}/{file}")))),
            "the packaged config names credential {name}, which no LoadCredential= of the unit \
             provides where the config says to put the token ({loaded:?})"
        );
    }
    assert!(count > 0, "the packaged config names no credential");
}

/// `/metrics` of `scansync run` with one CodeThreat scan on `schedule` (a TOML inline table)
/// and a listener, read as soon as the interval gauge is served (the daemon just started: no
/// run has ended yet).
fn fresh_daemon_metrics(schedule: &str) -> String {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!(
        "scansync-attack16-{}-{}",
        std::process::id(),
        schedule.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "{store}"
[instances.ct]
vendor = "codethreat"
url = "http://127.0.0.1:9"
organization = "acme"
token = "x"
[[scans]]
name = "office"
instance = "ct"
bind_to = "payments"
schedule = {schedule}
[server]
listen = "127.0.0.1:{port}"
"#,
            store = dir.join("s.db").display()
        ),
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_scansync"))
        .arg("--config")
        .arg(&config)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut metrics = String::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            continue;
        };
        let _ = conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut text = String::new();
        let _ = conn.read_to_string(&mut text);
        if text.contains("scansync_scan_interval_seconds{") {
            metrics = text;
            break;
        }
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&dir);
    metrics
}

/// "a scan without success for twice its interval" for a cron scan: an office-hours cron
/// (every 5 minutes, 09:00-17:55 on weekdays) waits 15 hours every night and 63 hours every
/// weekend, yet `scansync_scan_interval_seconds` looked at only its next 40 fire times (200
/// minutes) and said 300 s, so ScansyncScanStale (`> 2 * interval`, `for: 10m`) fired every
/// evening and all weekend on a healthy daemon.
#[test]
fn attack16_an_office_hours_cron_scan_is_not_stale_every_night() {
    let metrics = fresh_daemon_metrics(r#"{ cron = "0 */5 9-17 * * Mon-Fri" }"#);
    let value: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("scansync_scan_interval_seconds{"))
        .find_map(|l| l.split_once(",scan=\"office\"} ").map(|(_, v)| v))
        .unwrap_or_else(|| panic!("no interval for scan office in /metrics:\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        value >= 15.0 * 3600.0,
        "scansync_scan_interval_seconds{{scan=\"office\"}} is {value}: ScansyncScanStale fires \
         {}s after each evening's last run although the next run is only due at 09:00",
        2.0 * value + 600.0
    );
}

/// The dashboard "drops in": its `job` variable (and through it every panel, `up` and the
/// outbox included) comes from `label_values(scansync_findings, job)`, but a daemon whose
/// scans have not finished a run yet serves no `scansync_findings` series at all, so a fresh
/// install whose scans are cron (nightly, weekly) shows an empty dashboard (no job to pick)
/// until the first run ends, while the daemon is up. (An `every` scan runs at start-up, which
/// hides this.)
#[test]
fn attack16_a_fresh_daemon_serves_the_metric_the_dashboard_variables_come_from() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("contrib/grafana/scansync.json")).unwrap(),
    )
    .unwrap();
    let metrics = fresh_daemon_metrics(r#"{ cron = "0 0 3 1 1 *" }"#);
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(query) = var["definition"]
            .as_str()
            .or(var["query"]["query"].as_str())
            .or(var["query"].as_str())
        else {
            continue;
        };
        let Some(rest) = query.strip_prefix("label_values(") else {
            continue;
        };
        // `metric{…}`, or `{__name__=~"a|b", …}`: the variable has values when any is served.
        let names: Vec<String> = match rest.strip_prefix("{__name__=~\"") {
            Some(alternatives) => alternatives
                .split('"')
                .next()
                .unwrap()
                .split('|')
                .map(str::to_string)
                .collect(),
            None => vec![rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()],
        };
        assert!(
            names.iter().all(|n| !n.is_empty()),
            "dashboard variable {} = {query}: no metric name found in it",
            var["name"]
        );
        assert!(
            metrics.lines().any(|l| names.iter().any(|metric| {
                l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} "))
            })),
            "dashboard variable {} = {query}: a freshly started daemon serves no {} \
             series, so the variable is empty and so is every panel; /metrics:\n{metrics}",
            var["name"],
            names.join(" or ")
        );
    }
}

/// The .deb's synopsis (`apt show`, `dpkg -l`): cargo-deb takes Cargo.toml's `description`
/// and wraps it at 80 columns, so a longer one is cut ("... pulled from") and its tail
/// (" scanner vendors") becomes the first line of the extended description
/// (`dpkg-deb -f scansync_*.deb Description`).
#[test]
fn attack16_the_package_synopsis_fits_one_control_line() {
    let manifest = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
    let description = manifest
        .lines()
        .find_map(|l| l.strip_prefix("description = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("a description = \"...\" line in Cargo.toml");
    assert!(
        "Description: ".len() + description.len() <= 80,
        "the synopsis is {} characters; cargo-deb wraps it: {description:?}",
        description.len()
    );
}

/// scripts/offline-tarball holds HEAD and warns about uncommitted changes, but only tracked
/// ones (`git status --untracked-files=no`): a new file not yet `git add`ed (a migration that
/// an include_str! names, a new module) is left out without a word, and the tarball then fails
/// to build on the machine without network, where it is hardest to fix.
#[test]
fn attack16_the_offline_tarball_warns_about_an_untracked_source_file() {
    let dir = std::env::temp_dir().join(format!("scansync-attack16-tar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let clone = dir.join("src");
    let status = Command::new("git")
        .arg("clone")
        .arg("-q")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .arg(&clone)
        .status()
        .expect("git");
    assert!(status.success(), "git clone failed");
    std::fs::write(
        clone.join("src/store/migrations/sqlite/0099_not_added_yet.sql"),
        "-- new\n",
    )
    .unwrap();
    let out = Command::new(clone.join("scripts/offline-tarball"))
        .arg(dir.join("t.tar.gz"))
        .current_dir(&clone)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "offline-tarball failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("0099_not_added_yet.sql") || stderr.contains("untracked"),
        "src/store/migrations/sqlite/0099_not_added_yet.sql is not in the tarball and \
         scripts/offline-tarball said nothing about it; stderr:\n{stderr}"
    );
}
