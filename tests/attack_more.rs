//! Adversarial end-to-end tests (branches `attack3` and `attack4`, the second and third
//! review rounds): each shows a way the promise of issue #12 ("a finding is `fixed` only when the vendor no longer reports it; no lost
//! notification, under overlap, lies and stops") still breaks, with the real `scansync`
//! binary (or the daemon in process) against the simulator. A loopback proxy in front of the
//! simulator tells the lies the simulator's own faults cannot. Each test FAILS on the code
//! it was written against; the assertion message says what should have happened.

mod common;

use common::{no_rewrite, proxy, Answer, Rewrite};
use rusqlite::{Connection, OpenFlags};
use scansync::daemon::{self, DaemonEvent, DaemonHandle};
use scansync::sim::{SimOptions, Simulator};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest any wait here may take before the test fails: generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(90);

fn db(store: &Path) -> Connection {
    let c = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn scalar(store: &Path, sql: &str) -> i64 {
    db(store).query_row(sql, [], |r| r.get(0)).unwrap()
}

fn db_rw(store: &Path) -> Connection {
    let c = Connection::open(store).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

/// `(state, error, fixed, missing, seen, new)` of run `id`.
fn run_row(store: &Path, id: i64) -> (String, Option<String>, i64, i64, i64, i64) {
    db(store)
        .query_row(
            "SELECT state, error, fixed, missing, seen, new FROM sync_runs WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .unwrap()
}

/// Waits (on the store, not on a clock) until run `id` is no longer `running`.
async fn wait_run_ended(store: &Path, id: i64) {
    let start = Instant::now();
    loop {
        let state: Option<String> = store
            .exists()
            .then(|| {
                db(store)
                    .query_row("SELECT state FROM sync_runs WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .ok()
            })
            .flatten();
        if state.as_deref().is_some_and(|s| s != "running") {
            return;
        }
        assert!(start.elapsed() < WAIT, "run {id} did not end");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn command(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_scansync"));
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("RUST_LOG");
    cmd
}

/// `scansync ARGS` with `config`, off the async workers; `(exit code, stdout, stderr)`.
async fn scansync(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(WAIT, command(config, args).output())
        .await
        .expect("scansync ends")
        .expect("scansync runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The simulator's generated config with its scans replaced by `scans` and `daemon_extra`
/// added to `[daemon]`; returns (config, store).
fn write_config(
    sim: &Simulator,
    dir: &Path,
    file: &str,
    store: &Path,
    daemon_extra: &str,
    scans: &str,
) -> PathBuf {
    let config = dir.join(file);
    sim.write_config(&config, store).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let head = &text[..text.find("[[scans]]").expect("generated config has scans")];
    let head = head.replace("[daemon]\n", &format!("[daemon]\n{daemon_extra}"));
    std::fs::write(&config, format!("{head}{scans}")).unwrap();
    config
}

fn sim_url_to(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(config, text.replace(from, to)).unwrap();
}

// ---------------------------------------------------------------------------------------
// 1. A webhook push's run row is begun before the run waits for its permits. Meanwhile
//    `scansync sync` of the same scan (another process) begins a run with a higher id, runs
//    it and succeeds. The push's run then reads the vendor (a vendor scan started after the
//    CLI's), i.e. the newest listing, but the store judges staleness by run id: it stores
//    what it finds new as `fixed` (findings the vendor reports right now) and fixes nothing.

struct Daemon {
    handle: DaemonHandle,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// The listener's address, when the config has a `[server]`.
    addr: Option<SocketAddr>,
}

/// The daemon in process, once it is `Ready` (start-up adoption has been dispatched).
async fn start_daemon(config: &Path) -> Daemon {
    let (handle, control) = daemon::channel();
    let mut events = handle.subscribe();
    let path = config.to_path_buf();
    let task = tokio::spawn(async move { daemon::run(&path, control).await });
    let mut addr = None;
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Ok(DaemonEvent::Listening(a))) => addr = Some(a),
            Ok(Ok(DaemonEvent::Ready)) => break,
            Ok(Ok(_)) => continue,
            other => panic!("no Ready event: {other:?}"),
        }
    }
    Daemon { handle, task, addr }
}

impl Daemon {
    async fn stop(self) {
        self.handle.stop();
        let _ = tokio::time::timeout(WAIT, self.task).await;
    }
}

const GITHUB_SECRET: &str = "gh-secret-attack3-5d0b8f1e2a7c";

fn github_push(branch: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hooks/github_push.json"),
    )
    .unwrap();
    let from = "\"ref\": \"refs/heads/main\"";
    assert!(text.contains(from));
    text.replace(from, &format!("\"ref\": \"refs/heads/{branch}\""))
}

async fn post_github(url: &str, delivery: &str, body: &str) -> serde_json::Value {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("X-GitHub-Event", "push")
        .header("X-GitHub-Delivery", delivery)
        .header("X-Hub-Signature-256", format!("sha256={sig}"))
        .header("User-Agent", "GitHub-Hookshot/8c9b3e1")
        .body(body.to_string())
        .send()
        .await
        .expect("the listener answers");
    let status = resp.status().as_u16();
    let json: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{json}");
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_run_queued_behind_a_cli_sync_reads_the_newest_listing_and_stores_it_as_such() {
    // 40 findings, 30 % churn per vendor scan: the second vendor scan of project-1 has
    // findings the first lacked, and lacks some it had.
    let sim = Simulator::start(SimOptions {
        projects: 2,
        findings_per_project: 40,
        churn: 30.0,
        scan_seconds: 0.0,
        seed: 11,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    std::fs::write(dir.path().join("gh-secret"), format!("{GITHUB_SECRET}\n")).unwrap();
    let gh = "[[scans]]\nname = \"gh\"\ninstance = \"sim-codethreat\"\nbind_to = \"project-1\"\n\
              branch = \"main\"\nschedule = { at = \"2099-01-01T00:00:00Z\" }\n\
              webhook = { platform = \"github\", secret_file = \"gh-secret\", branches = [\"main\"] }\n\n";
    // The daemon: one run per instance at a time, and a scan that holds the CodeThreat
    // instance (its vendor scan is held at the proxy) from start-up.
    let blocker = "[[scans]]\nname = \"blocker\"\ninstance = \"sim-codethreat\"\n\
                   bind_to = \"project-2\"\nschedule = \"now\"\n\n";
    let daemon_config = write_config(
        &sim,
        dir.path(),
        "daemon.toml",
        &store,
        "per_instance_concurrency = 1\n",
        &format!("{gh}{blocker}"),
    );
    let text = std::fs::read_to_string(&daemon_config).unwrap();
    std::fs::write(
        &daemon_config,
        text.replacen(
            "[daemon]",
            "[server]\nlisten = \"127.0.0.1:0\"\n\n[daemon]",
            1,
        ),
    )
    .unwrap();
    let (proxy_base, gate, status_requests) =
        proxy(&sim, Some("/api/scan/status/"), no_rewrite()).await;
    sim_url_to(
        &daemon_config,
        &sim.codethreat_url(),
        &format!("{proxy_base}/codethreat"),
    );
    // The CLI talks to the simulator directly (nothing held), on the same store.
    let cli_config = write_config(&sim, dir.path(), "cli.toml", &store, "", gh);

    let d = start_daemon(&daemon_config).await;
    // The blocker's vendor scan is being polled (held): the instance's one permit is taken.
    wait_for("the blocker's status poll", || {
        status_requests.load(Ordering::SeqCst) >= 1
    })
    .await;
    let reply = post_github(
        &format!("http://{}/hooks/gh", d.addr.expect("a listener")),
        "attack3-1",
        &github_push("main"),
    )
    .await;
    let pushed = reply["run_id"].as_i64().expect("a run id");
    // `scansync sync --scan gh` in another process: nothing holds the scan's lease (the
    // pushed run waits for a permit), so it runs now, to its end.
    let (code, out, err) = scansync(&cli_config, &["sync", "--scan", "gh"]).await;
    assert_eq!(code, 0, "sync: {out}\n{err}");
    let by_cli = scalar(
        &store,
        "SELECT max(id) FROM sync_runs WHERE scan = 'gh' AND trigger = 'cli'",
    );
    assert!(
        by_cli > pushed,
        "the CLI's run {by_cli} began after {pushed}"
    );
    assert_eq!(run_row(&store, by_cli).0, "succeeded");
    // Let the blocker end; the pushed run gets its permit and reads the vendor now.
    gate.send(true).unwrap();
    wait_run_ended(&store, pushed).await;
    // Its turn came after the CLI's run began: it goes on as a newer run (run ids order
    // listings), and its own row says which.
    let (state, error, ..) = run_row(&store, pushed);
    assert_eq!(state, "interrupted", "{error:?}");
    let next: i64 = error
        .as_deref()
        .and_then(|e| e.split("went on as run ").nth(1))
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the row names the run it went on as: {error:?}"));
    assert!(next > by_cli, "run {next} is newer than the CLI's {by_cli}");
    wait_run_ended(&store, next).await;
    let pushed = next;
    let vendor_scans = sim.codethreat_scans();
    let (state, error, fixed, missing, seen, _) = run_row(&store, pushed);
    assert_eq!(state, "succeeded", "{error:?}");
    // What the pushed run read is the newest listing of project-1 (its vendor scan was
    // started after the CLI's): every finding it stored is listed `Open` right now.
    let falsely_fixed = scalar(
        &store,
        &format!(
            "SELECT count(*) FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = 'gh' AND f.last_run_id = {pushed} AND f.state = 'fixed'"
        ),
    );
    // The simulator's own data: what project-1's second vendor scan (generation 1, the
    // pushed run's) lists, every finding `Open`.
    let newest: std::collections::BTreeSet<String> =
        scansync::sim::data::project_findings(11, 1, 40, 30.0, 1)
            .map(|f| f.id)
            .collect();
    let fixed_ids: Vec<String> = {
        let c = db(&store);
        let mut stmt = c
            .prepare(
                "SELECT f.vendor_id FROM findings f JOIN scans s ON s.id = f.scan_id
                 WHERE s.name = 'gh' AND f.state = 'fixed'",
            )
            .unwrap();
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        ids
    };
    let listed_now_but_fixed: Vec<&String> =
        fixed_ids.iter().filter(|id| newest.contains(*id)).collect();
    assert!(
        listed_now_but_fixed.is_empty(),
        "the vendor's newest listing reports {listed_now_but_fixed:?} open, the store has \
         them fixed"
    );
    assert_eq!(
        falsely_fixed,
        0,
        "run {pushed} (seen {seen}, fixed {fixed}, missing {missing}) read the newest listing \
         (vendor scans in start order: {:?}) yet stored {falsely_fixed} findings it lists as \
         open as `fixed`",
        vendor_scans
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
    );
    d.stop().await;
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 2. CodeThreat: a first issues page that is short (here half of the 500 asked for) while
//    `x-ct-pager` announces further pages is "a short page before the last announced page".
//    `IssueListing::first` takes the short first page's size as the server's page size, so
//    the full further pages never look wrong: the run succeeds and the issues the first
//    page dropped are fixed (250 of 1,200 is under the guard).

const FINDINGS: u32 = 1_200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codethreat_short_first_page_under_a_pager_fails_the_run_and_fixes_nothing() {
    let sim = Simulator::start(SimOptions {
        projects: 1,
        findings_per_project: FINDINGS,
        scan_seconds: 0.0,
        seed: 7,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let lie = Arc::new(AtomicBool::new(false));
    let rewrite: Rewrite = {
        let lie = lie.clone();
        Arc::new(move |path: &str, a: &mut Answer| {
            let first_issues_page = path.contains("/api/scanlog/issues") && !path.contains("pid=");
            if !(first_issues_page && lie.load(Ordering::SeqCst)) {
                return;
            }
            let mut items: Vec<serde_json::Value> = serde_json::from_slice(&a.body).unwrap();
            assert_eq!(items.len(), 500, "the honest first page is full");
            assert!(a.headers.iter().any(|(n, _)| n == "x-ct-pager"));
            items.truncate(250);
            a.body = serde_json::to_vec(&items).unwrap();
        })
    };
    let (proxy_base, _gate, _) = proxy(&sim, None, rewrite).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    let config = write_config(
        &sim,
        dir.path(),
        "config.toml",
        &store,
        "",
        "[[scans]]\nname = \"ct\"\ninstance = \"sim-codethreat\"\nbind_to = \"project-1\"\n\
         schedule = \"now\"\n",
    );
    sim_url_to(
        &config,
        &sim.codethreat_url(),
        &format!("{proxy_base}/codethreat"),
    );
    let (code, out, err) = scansync(&config, &["sync"]).await;
    assert_eq!(code, 0, "honest sync: {out}\n{err}");
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM findings WHERE state != 'fixed'"
        ),
        FINDINGS as i64
    );
    lie.store(true, Ordering::SeqCst);
    let (_code, out, err) = scansync(&config, &["sync"]).await;
    let last = scalar(&store, "SELECT max(id) FROM sync_runs");
    let (state, error, fixed, missing, seen, _) = run_row(&store, last);
    assert_eq!(
        (state.as_str(), fixed),
        ("failed", 0),
        "a first page of 250 of the 500 asked for, with 2 further pages announced, is an \
         incomplete listing; run {last}: seen {seen}, fixed {fixed}, missing {missing}, \
         error {error:?}\n{out}\n{err}"
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        0,
        "nothing the vendor still lists may be fixed"
    );
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// 3. Salt Security: a gaps page that holds fewer items than `endOffset` moves on by (100
//    asked, 50 served, endOffset = offset + 100) skips gaps no page ever showed, exactly
//    like an `endOffset` past `offset + limit`, which the connector does refuse. The run
//    succeeds and the 50 skipped gaps are fixed (50 of 1,200 is under the guard).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salt_page_shorter_than_its_end_offset_advance_fails_the_run_and_fixes_nothing() {
    let sim = Simulator::start(SimOptions {
        projects: 1,
        findings_per_project: FINDINGS,
        scan_seconds: 0.0,
        seed: 7,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let lie = Arc::new(AtomicBool::new(false));
    let rewrite: Rewrite = {
        let lie = lie.clone();
        Arc::new(move |path: &str, a: &mut Answer| {
            let third_page = path.contains("/posture/gaps") && path.contains("offset=200");
            if !(third_page && lie.load(Ordering::SeqCst)) {
                return;
            }
            let mut env: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
            let items = env["response"].as_array_mut().unwrap();
            assert_eq!(items.len(), 100, "the honest page is full");
            items.truncate(50);
            assert_eq!(env["endOffset"].as_u64(), Some(300), "{env}");
            a.body = serde_json::to_vec(&env).unwrap();
        })
    };
    let (proxy_base, _gate, _) = proxy(&sim, None, rewrite).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    let config = write_config(
        &sim,
        dir.path(),
        "config.toml",
        &store,
        "",
        "[[scans]]\nname = \"salt\"\ninstance = \"sim-salt\"\nbind_to = \"project-1\"\n\
         schedule = \"now\"\n",
    );
    sim_url_to(&config, &sim.salt_url(), &format!("{proxy_base}/salt"));
    let (code, out, err) = scansync(&config, &["sync"]).await;
    assert_eq!(code, 0, "honest sync: {out}\n{err}");
    let honest = scalar(
        &store,
        "SELECT count(*) FROM findings WHERE state != 'fixed'",
    );
    assert!(honest > 300, "{honest} gaps stored");
    lie.store(true, Ordering::SeqCst);
    let (_code, out, err) = scansync(&config, &["sync"]).await;
    let last = scalar(&store, "SELECT max(id) FROM sync_runs");
    let (state, error, fixed, missing, seen, _) = run_row(&store, last);
    assert_eq!(
        (state.as_str(), fixed),
        ("failed", 0),
        "the page at offset 200 served 50 gaps but endOffset moved on by 100: 50 gaps were \
         never served; run {last}: seen {seen}, fixed {fixed}, missing {missing}, error \
         {error:?}\n{out}\n{err}"
    );
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Round 3, 1. A run of a scan on another branch is stored as `name@branch`, and a configured scan's
//    name may itself contain `@`. A configured scan `web@dev` (project-2) and `scansync scan
//    -b dev` of the scan `web` (project-1) are then one store scan: one lifecycle fed two
//    different projects' listings. Each complete listing of one project finds the other
//    project's findings absent: the guard holds them `missing` once (every finding absent),
//    but the next run of the other project finds only half absent and fixes them, although
//    the vendor reports every one of them.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_scan_named_like_a_branch_run_does_not_share_its_lifecycle() {
    let sim = Simulator::start(SimOptions {
        projects: 2,
        findings_per_project: 30,
        scan_seconds: 0.0,
        seed: 41,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    let scans = "[[scans]]\nname = \"web\"\ninstance = \"sim-codethreat\"\n\
                 bind_to = \"project-1\"\nbranch = \"main\"\n\
                 schedule = { at = \"2099-01-01T00:00:00Z\" }\n\n\
                 [[scans]]\nname = \"web@dev\"\ninstance = \"sim-codethreat\"\n\
                 bind_to = \"project-2\"\nschedule = { at = \"2099-01-01T00:00:00Z\" }\n";
    let config = write_config(&sim, dir.path(), "scansync.toml", &store, "", scans);

    // A configured name with an @ could be another scan's branch scope (`web` on branch
    // `dev` is stored as `web@dev`): refused, before any run could mix the two.
    let (code, out, err) = scansync(&config, &["sync", "--scan", "web@dev"]).await;
    assert_eq!(code, 78, "sync web@dev: {out}\n{err}");
    assert!(err.contains("scans[1].name: \"web@dev\" has an @"), "{err}");
    assert!(!store.exists() || scalar(&store, "SELECT count(*) FROM sync_runs") == 0);
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Round 3, 2. A run of a passive vendor (Salt Security: no vendor scan, the listing is read as it is
//    now) killed mid-listing is left `running`. `scansync sync` of the scan runs meanwhile
//    (a newer run id) and succeeds. A daemon then adopts the old run: the adopted run reads
//    Salt's listing NOW, the newest there is, but keeps its old run id, so the store takes
//    it for an older listing ("a newer run succeeded first") and stores every finding that
//    is new in it as already `fixed`, although the vendor reports it right now.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_salt_run_reads_the_listing_of_now_and_stores_it_as_such() {
    let sim = Simulator::start(SimOptions {
        projects: 1,
        findings_per_project: 40,
        churn: 60.0,
        seed: 43,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    let scans = "[[scans]]\nname = \"salt\"\ninstance = \"sim-salt\"\nbind_to = \"project-1\"\n\
                 schedule = { at = \"2099-01-01T00:00:00Z\" }\n";
    let config = write_config(&sim, dir.path(), "scansync.toml", &store, "", scans);
    // The first process reads Salt through a proxy that never answers the gaps listing.
    // (`_gate` stays closed while the test runs: held requests are never answered.)
    let (proxy_base, _gate, held) = proxy(&sim, Some("posture"), no_rewrite()).await;
    let held_config = dir.path().join("held.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&sim.salt_url()));
    std::fs::write(
        &held_config,
        text.replace(&sim.salt_url(), &format!("{proxy_base}/salt")),
    )
    .unwrap();

    let mut first = command(&held_config, &["sync", "--scan", "salt"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for("the first run's gaps request", || {
        held.load(Ordering::SeqCst) >= 1
    })
    .await;
    let left = scalar(&store, "SELECT max(id) FROM sync_runs WHERE scan = 'salt'");
    // kill -9; its heartbeat and lease are then as good as expired (written so, rather than
    // waited for).
    first.kill().await.unwrap();
    {
        let c = db_rw(&store);
        c.execute(
            "UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
        c.execute(
            "UPDATE scan_leases SET expires_at = '2000-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
    }
    assert_eq!(run_row(&store, left).0, "running");

    // `scansync sync` of the scan (another process, straight to the simulator): generation 1.
    sim.advance();
    let (code, out, err) = scansync(&config, &["sync", "--scan", "salt"]).await;
    assert_eq!(code, 0, "sync: {out}\n{err}");
    let by_cli = scalar(&store, "SELECT max(id) FROM sync_runs WHERE scan = 'salt'");
    assert!(by_cli > left);
    assert_eq!(run_row(&store, by_cli).0, "succeeded");

    // Salt's data moves on (60 % churn), then a daemon starts and adopts the left run.
    sim.advance();
    let d = start_daemon(&config).await;
    wait_run_ended(&store, left).await;
    let (state, error, fixed, missing, seen, new) = run_row(&store, left);
    d.stop().await;
    // Nothing to poll (Salt has no vendor scan): the row ends, its pages kept; the listing
    // of now is read by a new run, never under the old id.
    assert_eq!(state, "interrupted", "{error:?}");
    assert!(
        error
            .as_deref()
            .unwrap_or("")
            .contains("no vendor scan to poll"),
        "{error:?}"
    );
    let created_fixed = scalar(
        &store,
        &format!(
            "SELECT count(*) FROM finding_events
             WHERE run_id = {left} AND kind = 'created' AND new_value = 'fixed'"
        ),
    );
    let open_listed_fixed = scalar(
        &store,
        &format!(
            "SELECT count(*) FROM findings
             WHERE last_run_id = {left} AND state = 'fixed' AND vendor_verdict IS NOT 'resolved'"
        ),
    );
    assert_eq!(
        (created_fixed, open_listed_fixed),
        (0, 0),
        "adopted run {left} read Salt's listing of now (generation {}, seen {seen}, new {new}, \
         fixed {fixed}, missing {missing}), newer than run {by_cli}'s ({:?}), yet stored \
         {created_fixed} findings the vendor reports right now as already `fixed` (and \
         {open_listed_fixed} listed findings are `fixed`)",
        sim.salt_generation(),
        run_row(&store, by_cli)
    );
    sim.shutdown().await;
}
