//! The daemon end to end against the in-process simulator: each schedule kind runs as often
//! as it should, a killed process resumes its vendor scan, SIGTERM and SIGHUP behave, and
//! the `scan` and `demo` commands do what their help says. Runs are counted in the store;
//! nothing here asserts how fast anything is.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use scansync::daemon::{self, DaemonEvent, DaemonHandle};
use scansync::sim::{SimOptions, Simulator};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scansync");
/// The longest any wait here may take before the test fails: generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(30);

async fn sim(scan_seconds: f64) -> Simulator {
    Simulator::start(SimOptions {
        projects: 2,
        findings_per_project: 20,
        scan_seconds,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

/// A config pointing at `sim` with the simulator's instances and the given `[[scans]]`.
fn write_config(sim: &Simulator, dir: &Path, scans: &str) -> (PathBuf, PathBuf) {
    let config = dir.join("config.toml");
    let store = dir.join("scansync.db");
    sim.write_config(&config, &store).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let head = &text[..text.find("[[scans]]").expect("generated config has scans")];
    std::fs::write(&config, format!("{head}{scans}")).unwrap();
    (config, store)
}

fn salt_scan(name: &str, project: &str, schedule: &str) -> String {
    format!(
        "[[scans]]\nname = \"{name}\"\ninstance = \"sim-salt\"\nbind_to = \"{project}\"\n\
         schedule = {schedule}\n\n"
    )
}

fn ct_scan(name: &str, schedule: &str) -> String {
    format!(
        "[[scans]]\nname = \"{name}\"\ninstance = \"sim-codethreat\"\nbind_to = \"project-1\"\n\
         branch = \"main\"\nschedule = {schedule}\n\n"
    )
}

fn db(store: &Path) -> Option<Connection> {
    if !store.exists() {
        return None;
    }
    let c = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    Some(c)
}

/// Finished runs of `scan` (any end state), 0 while the store does not exist yet.
fn finished_runs(store: &Path, scan: &str) -> u64 {
    db(store)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*) FROM sync_runs WHERE scan = ?1 AND state != 'running'",
                [scan],
                |r| r.get::<_, u64>(0),
            )
            .ok()
        })
        .unwrap_or(0)
}

/// `(id, state, vendor_scan_id)` of every run of `scan`, oldest first.
fn runs(store: &Path, scan: &str) -> Vec<(i64, String, Option<String>)> {
    let Some(c) = db(store) else {
        return Vec::new();
    };
    let Ok(mut stmt) =
        c.prepare("SELECT id, state, vendor_scan_id FROM sync_runs WHERE scan = ?1 ORDER BY id")
    else {
        return Vec::new();
    };
    stmt.query_map([scan], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Polls `cond` until it holds; panics with `what` after [`WAIT`].
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The daemon in process, as `scansync run` runs it.
struct InProcess {
    handle: DaemonHandle,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    events: tokio::sync::broadcast::Receiver<DaemonEvent>,
}

fn start_in_process(config: &Path) -> InProcess {
    let (handle, control) = daemon::channel();
    let events = handle.subscribe();
    let path = config.to_path_buf();
    let task = tokio::spawn(async move { daemon::run(&path, control).await });
    InProcess {
        handle,
        task,
        events,
    }
}

impl InProcess {
    /// Waits for the first event `pick` accepts.
    async fn event<T>(&mut self, what: &str, mut pick: impl FnMut(DaemonEvent) -> Option<T>) -> T {
        loop {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Ok(event)) => {
                    if let Some(found) = pick(event) {
                        return found;
                    }
                }
                other => panic!("no {what} event: {other:?}"),
            }
        }
    }

    async fn ready(&mut self) {
        self.event("Ready", |e| matches!(e, DaemonEvent::Ready).then_some(()))
            .await
    }

    /// As SIGHUP does; returns once the reload (and the look for runs to take over that
    /// comes with it) is done.
    async fn reload(&mut self) {
        self.handle.reload();
        let applied = self
            .event("Reloaded", |e| match e {
                DaemonEvent::Reloaded(applied) => Some(applied),
                _ => None,
            })
            .await;
        assert!(applied, "the unchanged config reloads");
    }

    async fn stop(self) {
        self.handle.stop();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("daemon stops")
            .expect("daemon task does not panic")
            .expect("daemon ends cleanly");
    }
}

/// A run row as these tests read it: `(state, started_at, finished_at)`.
type RunTimes = (String, DateTime<Utc>, Option<DateTime<Utc>>);

/// Every run of `scan` with its times, oldest first.
fn run_times(store: &Path, scan: &str) -> Vec<RunTimes> {
    let Some(c) = db(store) else {
        return Vec::new();
    };
    let Ok(mut stmt) = c.prepare(
        "SELECT state, started_at, finished_at FROM sync_runs WHERE scan = ?1 ORDER BY id",
    ) else {
        return Vec::new();
    };
    let time = |s: String| {
        DateTime::parse_from_rfc3339(&s)
            .unwrap_or_else(|e| panic!("started_at {s:?}: {e}"))
            .with_timezone(&Utc)
    };
    stmt.query_map([scan], |r| {
        Ok((
            r.get::<_, String>(0)?,
            time(r.get(1)?),
            r.get::<_, Option<String>>(2)?.map(time),
        ))
    })
    .map(|rows| rows.filter_map(Result::ok).collect())
    .unwrap_or_default()
}

/// The witness: a Salt scan every second beside the scan under test. "It ran exactly once"
/// is proven by the witness running again and again after that run ended (the scheduler
/// went on firing jobs) while the scan under test did not: an event count, not a sleep that
/// a loaded machine could outlast.
const WITNESS: &str = "witness";
/// Witness runs to see after the last run of the scan under test.
const WITNESS_RUNS: usize = 3;

/// Waits until the witness has started [`WITNESS_RUNS`] runs after `after`.
async fn witness_runs_after(store: &Path, after: DateTime<Utc>) {
    wait_for(
        &format!("{WITNESS_RUNS} witness runs after {after}"),
        || {
            run_times(store, WITNESS)
                .iter()
                .filter(|r| r.1 > after)
                .count()
                >= WITNESS_RUNS
        },
    )
    .await;
}

/// `scans` and the witness (a Salt scan every second).
fn with_witness(scans: &str) -> String {
    format!(
        "{scans}{}",
        salt_scan(WITNESS, "project-2", "{ every = \"1s\" }")
    )
}

/// Waits until the witness ran [`WITNESS_RUNS`] times after `scan`'s last successful run
/// ended: a second run or vendor scan of `scan`, if the daemon were to start one, would have
/// had its chance by then.
async fn witness_after_success(store: &Path, scan: &str) {
    let ended = run_times(store, scan)
        .iter()
        .filter(|r| r.0 == "succeeded")
        .filter_map(|r| r.2)
        .max()
        .expect("a successful run");
    witness_runs_after(store, ended).await;
}

/// Runs the daemon with scan "s" on `schedule` (and the witness) until `want` runs of "s"
/// finished and, with `witness`, until the witness ran [`WITNESS_RUNS`] times after the last
/// of them ended; returns every run of "s" (at least `want` of them succeeded).
async fn runs_of_schedule(schedule: &str, want: usize, witness: bool) -> Vec<RunTimes> {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = format!(
        "{}{}",
        salt_scan("s", "project-1", schedule),
        salt_scan(WITNESS, "project-2", "{ every = \"1s\" }")
    );
    let (config, store) = write_config(&sim, dir.path(), &scans);
    let d = start_in_process(&config);
    wait_for(&format!("{want} run(s) of {schedule}"), || {
        finished_runs(&store, "s") >= want as u64
    })
    .await;
    if witness {
        let ended = run_times(&store, "s")
            .iter()
            .filter_map(|r| r.2)
            .max()
            .expect("a finished run has finished_at");
        witness_runs_after(&store, ended).await;
    }
    d.stop().await;
    let all = run_times(&store, "s");
    // Stopping may interrupt a run in flight; every other run must have succeeded.
    let succeeded = all.iter().filter(|r| r.0 == "succeeded").count();
    assert!(succeeded >= want, "{all:?}");
    sim.shutdown().await;
    all
}

/// Consecutive runs started at least `gap` apart (a schedule, not a burst).
fn assert_spaced(runs: &[RunTimes], gap: chrono::Duration) {
    for pair in runs.windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= gap,
            "runs started {} and {}: closer than {gap}",
            pair[0].1,
            pair[1].1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_now_runs_exactly_once() {
    let runs = runs_of_schedule("\"now\"", 1, true).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_at_in_the_past_runs_exactly_once() {
    let at = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let schedule = format!("{{ at = \"{at}\" }}");
    let runs = runs_of_schedule(&schedule, 1, true).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_at_in_the_near_future_runs_exactly_once_and_not_before_its_time() {
    // Computed before start-up: room enough that start-up on a loaded machine does not eat
    // it (and if it did, the run would still start after `at`, which is what is checked).
    let at = Utc::now() + chrono::Duration::seconds(5);
    let schedule = format!("{{ at = \"{}\" }}", at.to_rfc3339());
    let runs = runs_of_schedule(&schedule, 1, true).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    // started_at has millisecond precision; `at` is compared at the same.
    use chrono::SubsecRound;
    assert!(
        runs[0].1 >= at.trunc_subsecs(3),
        "started {} before its time {at}",
        runs[0].1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_every_second_runs_repeatedly_a_second_apart() {
    let runs = runs_of_schedule("{ every = \"1s\" }", 3, false).await;
    assert!(runs.len() >= 3, "every 1s ran {} time(s)", runs.len());
    // The scheduler fires repeated jobs on a half-second tick, so the first repeat can come
    // as little as half a second after the start-up run (which itself may begin a little
    // late, the store being opened): a burst would be milliseconds apart.
    assert_spaced(&runs, chrono::Duration::milliseconds(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_seconds_cron_runs_repeatedly_a_second_apart() {
    let runs = runs_of_schedule("{ cron = \"*/1 * * * * *\" }", 3, false).await;
    assert!(
        runs.len() >= 3,
        "cron every second ran {} time(s)",
        runs.len()
    );
    // Each occurrence may fire up to the scheduler's half-second tick late (see above).
    assert_spaced(&runs, chrono::Duration::milliseconds(250));
}

/// The real binary as a daemon, stderr to a file.
fn spawn_daemon(config: &Path, stderr: &Path) -> Child {
    spawn_daemon_with(config, stderr, &[])
}

/// [`spawn_daemon`] with more global flags (`--log-format json`).
fn spawn_daemon_with(config: &Path, stderr: &Path, flags: &[&str]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr)
        .unwrap();
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(flags)
        .arg("run")
        // A killed daemon's heartbeat expires in 3 s (not 45): the restart adopts its runs
        // within the test's patience.
        .env("SCANSYNC_LEASE_TTL_MS", "3000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("scansync starts")
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{sig} failed");
}

async fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > WAIT {
            let _ = child.kill();
            panic!("scansync did not exit");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn scan_starts(sim: &Simulator) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/api/scan/start"))
        .count()
}

fn status_polls(sim: &Simulator, sid: &str) -> usize {
    let suffix = format!("/api/scan/status/{sid}");
    sim.requests()
        .iter()
        .filter(|r| r.path.ends_with(&suffix))
        .count()
}

/// Waits for the single run of `scan` to have its vendor scan id, and returns it.
async fn wait_vendor_scan_id(store: &Path, scan: &str) -> String {
    let mut sid = None;
    wait_for("the run's vendor scan id", || {
        sid = runs(store, scan).into_iter().find_map(|r| r.2);
        sid.is_some()
    })
    .await;
    sid.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_daemon_resumes_the_same_vendor_scan_after_restart() {
    // Long enough that the first daemon is killed while the vendor scan runs (if it were
    // not, the second daemon would still resume the run: it polls the finished scan).
    let sim = sim(4.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = format!(
        "{}{}",
        ct_scan("ct", "\"now\""),
        salt_scan(WITNESS, "project-2", "{ every = \"1s\" }")
    );
    let (config, store) = write_config(&sim, dir.path(), &scans);
    let log = dir.path().join("stderr.log");
    let mut first = spawn_daemon(&config, &log);
    let sid = wait_vendor_scan_id(&store, "ct").await;
    first.kill().unwrap();
    first.wait().unwrap();
    let polls_before = status_polls(&sim, &sid);

    let mut second = spawn_daemon(&config, &log);
    wait_for("the restarted daemon to poll the same scan", || {
        status_polls(&sim, &sid) > polls_before
    })
    .await;
    // The resumed run ends; then the witness runs on while no second vendor scan starts.
    let mut ended = None;
    wait_for("the resumed run to end", || {
        ended = run_times(&store, "ct")
            .iter()
            .filter(|r| r.0 == "succeeded")
            .filter_map(|r| r.2)
            .max();
        ended.is_some()
    })
    .await;
    witness_runs_after(&store, ended.unwrap()).await;
    signal(&second, "TERM");
    let status = wait_exit(&mut second).await;
    assert!(status.success(), "second daemon exited {status}");
    assert_eq!(scan_starts(&sim), 1, "exactly one vendor scan was started");
    assert_eq!(sim.codethreat_scans().len(), 1, "the simulator's own count");
    let all = runs(&store, "ct");
    assert!(
        all.iter().all(|r| r.2.as_deref() == Some(sid.as_str())),
        "every run of the scan tracks vendor scan {sid}: {all:?}"
    );
    assert!(
        all.iter().any(|r| r.1 == "succeeded"),
        "the resumed run finished: {all:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_a_vendor_scan_runs_leaves_it_resumable_and_the_restart_finishes_it() {
    let sim = sim(4.0).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = write_config(&sim, dir.path(), &with_witness(&ct_scan("ct", "\"now\"")));
    let log = dir.path().join("stderr.log");
    let mut child = spawn_daemon(&config, &log);
    let sid = wait_vendor_scan_id(&store, "ct").await;
    signal(&child, "TERM");
    let status = wait_exit(&mut child).await;
    assert!(status.success(), "scansync exited {status}");
    let all = runs(&store, "ct");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].1, "running",
        "the run waits for the next start, its vendor scan kept"
    );
    let check: String = db(&store)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");

    // The next start polls the same vendor scan and finishes the same run.
    let mut again = spawn_daemon(&config, &log);
    wait_for("the restart to finish the run", || {
        runs(&store, "ct").iter().all(|r| r.1 == "succeeded")
    })
    .await;
    witness_after_success(&store, "ct").await;
    signal(&again, "TERM");
    assert!(wait_exit(&mut again).await.success());
    assert_eq!(scan_starts(&sim), 1, "no second vendor scan was started");
    let done = runs(&store, "ct");
    assert_eq!(
        done,
        vec![(all[0].0, "succeeded".to_string(), Some(sid.clone()))],
        "one run, adopted under its own id"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_new_scan_runs_it() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let first = salt_scan("one", "project-1", "\"now\"");
    let (config, store) = write_config(&sim, dir.path(), &first);
    let mut child = spawn_daemon(&config, &dir.path().join("stderr.log"));
    wait_for("the first scan's run", || finished_runs(&store, "one") >= 1).await;
    let (config2, _) = write_config(
        &sim,
        dir.path(),
        &format!("{first}{}", salt_scan("two", "project-2", "\"now\"")),
    );
    assert_eq!(config, config2);
    signal(&child, "HUP");
    wait_for("the added scan's run", || finished_runs(&store, "two") >= 1).await;
    signal(&child, "TERM");
    assert!(wait_exit(&mut child).await.success());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_config_keeps_the_old_scans_running() {
    let sim = sim(0.0).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = write_config(
        &sim,
        dir.path(),
        &salt_scan("tick", "project-1", "{ every = \"1s\" }"),
    );
    let log = dir.path().join("stderr.log");
    let mut child = spawn_daemon(&config, &log);
    wait_for("a first run", || finished_runs(&store, "tick") >= 1).await;
    write_config(
        &sim,
        dir.path(),
        &salt_scan("tick", "project-1", "{ every = \"soon\" }"),
    );
    signal(&child, "HUP");
    wait_for("the rejected reload in the log", || {
        std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("config reload rejected") && t.contains("\"soon\""))
    })
    .await;
    let after_reload = finished_runs(&store, "tick");
    wait_for("runs after the rejected reload", || {
        finished_runs(&store, "tick") >= after_reload + 2
    })
    .await;
    assert!(child.try_wait().unwrap().is_none(), "daemon still runs");
    signal(&child, "TERM");
    assert!(wait_exit(&mut child).await.success());
    sim.shutdown().await;
}

/// `scansync --config C scan ARGS` to completion: (exit code, stdout, stderr).
async fn scan_cli(config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .arg("scan")
        .args(args)
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("scansync scan returns")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SCAN_ARGS: [&str; 6] = ["-p", "project-1", "-t", "codethreat", "-b", "main"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_command_runs_the_matching_scan_and_prints_a_summary() {
    let sim = sim(0.5).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = write_config(&sim, dir.path(), &ct_scan("ct", "\"now\""));
    let (code, stdout, stderr) = scan_cli(&config, &SCAN_ARGS).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("scan ct: run"), "{stdout}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    let all = runs(&store, "ct");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1, "succeeded");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_command_exits_10_naming_the_exceeded_threshold() {
    let sim = sim(0.5).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = write_config(&sim, dir.path(), &ct_scan("ct", "\"now\""));
    let (code, stdout, stderr) = scan_cli(
        &config,
        &[&SCAN_ARGS[..], &["--threshold-high", "0"]].concat(),
    )
    .await;
    let high: u64 = db(&store)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM findings WHERE severity IN ('high', 'critical')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(high > 0, "the simulator's data has high findings");
    assert_eq!(code, 10, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("--threshold-high 0"), "{stderr}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_command_async_returns_after_start_leaving_the_run_to_the_daemon() {
    let sim = sim(3.0).await;
    let dir = tempfile::tempdir().unwrap();
    // Scheduled far ahead: the daemon's only work is the run `scan --async` left.
    let schedule = "{ at = \"2099-01-01T00:00:00Z\" }";
    let (config, store) = write_config(&sim, dir.path(), &with_witness(&ct_scan("ct", schedule)));
    let (code, stdout, stderr) = scan_cli(&config, &[&SCAN_ARGS[..], &["--async"]].concat()).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("started"), "{stdout}");
    let all = runs(&store, "ct");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].1, "running", "the run is left for the daemon");
    let sid = all[0].2.clone().expect("the run has its vendor scan id");
    assert!(stdout.contains(&sid), "{stdout}");
    assert_eq!(scan_starts(&sim), 1);

    let d = start_in_process(&config);
    wait_for("the daemon to finish the started run", || {
        runs(&store, "ct").iter().any(|r| r.1 == "succeeded")
    })
    .await;
    witness_after_success(&store, "ct").await;
    d.stop().await;
    assert_eq!(scan_starts(&sim), 1, "the daemon started no second scan");
    let done = runs(&store, "ct");
    assert!(
        done.iter()
            .filter(|r| r.1 == "succeeded")
            .all(|r| r.2.as_deref() == Some(sid.as_str())),
        "{done:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_command_past_its_timeout_prints_the_run_and_leaves_it_to_the_daemon() {
    // The vendor scan takes 8 s; `--timeout 0.02` (1.2 s) gives up waiting well before.
    let sim = sim(8.0).await;
    let dir = tempfile::tempdir().unwrap();
    let schedule = "{ at = \"2099-01-01T00:00:00Z\" }";
    let (config, store) = write_config(&sim, dir.path(), &with_witness(&ct_scan("ct", schedule)));
    let (code, stdout, stderr) =
        scan_cli(&config, &[&SCAN_ARGS[..], &["--timeout", "0.02"]].concat()).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let all = runs(&store, "ct");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].1, "running",
        "the run is left for the daemon, as with --async"
    );
    let sid = all[0].2.clone().expect("the run has its vendor scan id");
    assert!(
        stdout.contains(&format!("(run {})", all[0].0)) && stdout.contains(&sid),
        "the run id and vendor scan id are printed: {stdout}"
    );
    assert!(
        stdout.contains("still running after --timeout 0.02"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("open:"),
        "no summary or thresholds: {stdout}"
    );

    let d = start_in_process(&config);
    wait_for("the daemon to finish the run left by --timeout", || {
        runs(&store, "ct").iter().any(|r| r.1 == "succeeded")
    })
    .await;
    witness_after_success(&store, "ct").await;
    d.stop().await;
    assert_eq!(
        scan_starts(&sim),
        1,
        "the daemon resumed, it started no second scan"
    );
    let done = runs(&store, "ct");
    assert!(
        done.iter()
            .filter(|r| r.1 == "succeeded")
            .all(|r| r.2.as_deref() == Some(sid.as_str())),
        "{done:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_takes_over_the_run_scan_async_left_without_a_second_vendor_scan() {
    let sim = sim(3.0).await;
    let dir = tempfile::tempdir().unwrap();
    // Scheduled far ahead: the daemon's only work is the run `scan --async` leaves.
    let schedule = "{ at = \"2099-01-01T00:00:00Z\" }";
    let (config, store) = write_config(&sim, dir.path(), &with_witness(&ct_scan("ct", schedule)));
    let mut d = start_in_process(&config);
    d.ready().await;

    let (code, stdout, stderr) = scan_cli(&config, &[&SCAN_ARGS[..], &["--async"]].concat()).await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    let left = runs(&store, "ct");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, "running");
    let sid = left[0].2.clone().expect("the run has its vendor scan id");
    assert_eq!(scan_starts(&sim), 1);

    // The daemon looks every minute; SIGHUP (here: its in-process twin) makes it look now.
    d.reload().await;
    wait_for("the daemon to finish the run scan --async left", || {
        runs(&store, "ct").iter().any(|r| r.1 == "succeeded")
    })
    .await;
    witness_after_success(&store, "ct").await;
    d.stop().await;
    assert_eq!(scan_starts(&sim), 1, "the daemon started no second scan");
    let done = runs(&store, "ct");
    assert_eq!(
        done,
        vec![(left[0].0, "succeeded".to_string(), Some(sid.clone()))],
        "the daemon finished the left run itself, under its id"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_leaves_the_run_of_a_live_scan_command_alone() {
    // Long enough that the scan command is still waiting when the daemon looks.
    let sim = sim(8.0).await;
    let dir = tempfile::tempdir().unwrap();
    let schedule = "{ at = \"2099-01-01T00:00:00Z\" }";
    let (config, store) = write_config(&sim, dir.path(), &ct_scan("ct", schedule));
    let mut d = start_in_process(&config);
    d.ready().await;

    let mut cli = tokio::process::Command::new(BIN);
    cli.arg("--config")
        .arg(&config)
        .arg("scan")
        .args(SCAN_ARGS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let cli = cli.spawn().expect("scansync scan starts");
    wait_vendor_scan_id(&store, "ct").await;
    d.reload().await;
    let mid = runs(&store, "ct");
    assert_eq!(mid.len(), 1, "{mid:?}");
    assert_eq!(
        mid[0].1, "running",
        "the scan command still owns its run: {mid:?}"
    );

    let out = tokio::time::timeout(WAIT, cli.wait_with_output())
        .await
        .expect("scansync scan returns")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.stop().await;
    let done = runs(&store, "ct");
    assert_eq!(done.len(), 1, "nothing was taken over: {done:?}");
    assert_eq!(done[0].1, "succeeded");
    assert_eq!(scan_starts(&sim), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_command_sends_meta_over_the_configured_metadata_and_waits_within_its_timeout() {
    let sim = sim(0.5).await;
    let dir = tempfile::tempdir().unwrap();
    // The configured metadata, partly overridden on the command line.
    let scan = ct_scan("ct", "\"now\"").replace(
        "branch = \"main\"\n",
        "branch = \"main\"\nmetadata = { team = \"payments\", commit = \"from-config\" }\n",
    );
    let (config, store) = write_config(&sim, dir.path(), &scan);
    let (code, stdout, stderr) = scan_cli(
        &config,
        &[
            &SCAN_ARGS[..],
            &[
                "-m",
                "commit=abc123",
                "--meta",
                "pipeline=ci=42",
                "--timeout",
                "5",
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("succeeded"),
        "finished within --timeout: {stdout}"
    );
    assert_eq!(runs(&store, "ct")[0].1, "succeeded");
    let started = sim.codethreat_scans();
    assert_eq!(started.len(), 1);
    let metadata: std::collections::BTreeMap<&str, &str> = started[0]
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().expect("metadata values are strings")))
        .collect();
    assert_eq!(
        metadata,
        [
            ("commit", "abc123"),
            ("pipeline", "ci=42"),
            ("team", "payments"),
        ]
        .into_iter()
        .collect()
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fills_a_store_with_findings_from_both_vendors() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["demo", "--cycles", "1", "--every", "1", "--dir"])
        .arg(dir.path())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("demo returns")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = dir.path().join("scansync.db");
    assert!(stdout.contains(&store.display().to_string()), "{stdout}");
    let c = db(&store).expect("demo store exists");
    let mut stmt = c
        .prepare(
            "SELECT DISTINCT i.vendor FROM findings f JOIN scans s ON s.id = f.scan_id \
             JOIN instances i ON i.id = s.instance_id ORDER BY i.vendor",
        )
        .unwrap();
    let vendors: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(vendors, ["codethreat", "saltsecurity"]);
}

// ---------------------------------------------------------------------------------------
// A stop, a death and a second daemon never cost a run, pass a CI step that got no answer,
// or start a vendor scan twice.

fn spawn_scan(config: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("scan")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scansync starts")
}

fn read_all(pipe: Option<impl std::io::Read>) -> String {
    let mut text = String::new();
    if let Some(mut p) = pipe {
        p.read_to_string(&mut text).unwrap();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_command_waits_no_longer_than_its_timeout_and_a_stopped_one_fails_its_step() {
    let sim = sim(8.0).await;
    let dir = tempfile::tempdir().unwrap();
    let schedule = "{ at = \"2099-01-01T00:00:00Z\" }";
    let (config, store) = write_config(&sim, dir.path(), &ct_scan("ct", schedule));
    let mut first = spawn_scan(&config, &SCAN_ARGS);
    let sid = wait_vendor_scan_id(&store, "ct").await;

    // A second CI step for the same scan with --timeout 0.02 (1.2 s): it waits for the
    // first, and gives up with 75 when its time is up, having started nothing.
    let (code, stdout, stderr) =
        scan_cli(&config, &[&SCAN_ARGS[..], &["--timeout", "0.02"]].concat()).await;
    assert_eq!(code, 75, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("waiting for run"), "{stderr}");
    assert!(stderr.contains("not waiting for it"), "{stderr}");
    assert_eq!(runs(&store, "ct").len(), 1, "the second step began no run");

    // SIGTERM to the first while its vendor scan runs: the run stays for a daemon, and the
    // step fails (3), since it got no findings to check thresholds against.
    signal(&first, "TERM");
    let status = wait_exit(&mut first).await;
    let stderr = read_all(first.stderr.take());
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("stopped while vendor scan {sid} runs")),
        "{stderr}"
    );
    let all = runs(&store, "ct");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        (all[0].1.as_str(), all[0].2.as_deref()),
        ("running", Some(sid.as_str()))
    );
    assert_eq!(scan_starts(&sim), 1);
    sim.shutdown().await;
}

/// Whether every `owners` row (a process's heartbeat) has expired.
fn heartbeats_expired(store: &Path) -> bool {
    db(store).is_some_and(|c| {
        c.query_row(
            "SELECT count(*) FROM owners
             WHERE expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .is_ok_and(|live| live == 0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_now_scan_killed_before_its_vendor_scan_started_runs_after_the_restart() {
    let sim = sim(0.5).await;
    // The first vendor request (the project lookup before the scan is started) hangs, so
    // the kill lands after the run row is written and before any vendor scan exists.
    sim.set_faults(vec!["timeout@1".parse().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = write_config(&sim, dir.path(), &ct_scan("ct", "\"now\""));
    let log = dir.path().join("stderr.log");
    let mut first = spawn_daemon(&config, &log);
    wait_for("the run row and the hanging vendor request", || {
        runs(&store, "ct").len() == 1 && !sim.requests().is_empty()
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(runs(&store, "ct")[0].2, None, "no vendor scan id yet");
    assert_eq!(scan_starts(&sim), 0);
    // Restarted once the killed process's heartbeat (3 s here) has run out: the row is
    // abandoned, and the `now` scan must still run.
    wait_for("the killed daemon's heartbeat to expire", || {
        heartbeats_expired(&store)
    })
    .await;
    let mut second = spawn_daemon(&config, &log);
    wait_for("the now scan to succeed after the restart", || {
        runs(&store, "ct").iter().any(|r| r.1 == "succeeded")
    })
    .await;
    signal(&second, "TERM");
    assert!(wait_exit(&mut second).await.success());
    let all = runs(&store, "ct");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        (all[0].1.as_str(), all[0].2.as_deref()),
        ("interrupted", None)
    );
    assert_eq!(all[1].1, "succeeded");
    assert_eq!(scan_starts(&sim), 1);
    sim.shutdown().await;
}

/// Whether the daemon whose JSON log is `log` is done with `scan`'s start-up run: it planned
/// none, or the run it dispatched ran to its end or was skipped (read from its log lines,
/// since a run still waiting for the other daemon's is only visible there).
fn settled(log: &str, scan: &str) -> bool {
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let about = |v: &serde_json::Value| {
        v["fields"]["scan"] == scan
            || v["span"]["scan"] == scan
            || v["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["scan"] == scan))
    };
    let said = |what: &str| {
        lines.iter().any(|v| {
            about(v)
                && v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(what))
        })
    };
    said("skipped:")
        || said("not run at start-up")
        || said(&format!("of {scan} ended"))
        || (said("scheduled every") && !said("running it now"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_one_store_run_each_due_scan_once() {
    let sim = sim(2.0).await;
    let dir = tempfile::tempdir().unwrap();
    let scans = format!(
        "{}[[scans]]\nname = \"nightly\"\ninstance = \"sim-codethreat\"\n\
         bind_to = \"project-2\"\nbranch = \"main\"\nschedule = {{ every = \"1h\" }}\n\n{}",
        ct_scan("ct", "\"now\""),
        ct_scan("past", "{ at = \"2020-01-01T00:00:00Z\" }").replace("\"ct\"", "\"past\""),
    );
    let (config, store) = write_config(&sim, dir.path(), &scans);
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    // Started together: each finds the scans due, and whichever comes second must not run
    // them again once the first one's runs succeed.
    let json = ["--log-format", "json"];
    let mut a = spawn_daemon_with(&config, &log_a, &json);
    let mut b = spawn_daemon_with(&config, &log_b, &json);
    let names = ["ct", "nightly", "past"];
    wait_for("both daemons to settle every scan's start-up run", || {
        let (la, lb) = (
            std::fs::read_to_string(&log_a).unwrap_or_default(),
            std::fs::read_to_string(&log_b).unwrap_or_default(),
        );
        names
            .iter()
            .all(|n| runs(&store, n).len() > 1 || (settled(&la, n) && settled(&lb, n)))
    })
    .await;
    signal(&a, "TERM");
    signal(&b, "TERM");
    assert!(wait_exit(&mut a).await.success());
    assert!(wait_exit(&mut b).await.success());
    for name in names {
        let all = runs(&store, name);
        assert_eq!(
            all.len(),
            1,
            "{name}: one run for its due time across both daemons: {all:?}\n{}\n{}",
            std::fs::read_to_string(&log_a).unwrap_or_default(),
            std::fs::read_to_string(&log_b).unwrap_or_default()
        );
        assert_eq!(all[0].1, "succeeded", "{name}: {all:?}");
    }
    assert_eq!(scan_starts(&sim), 3, "one vendor scan per scan");
    sim.shutdown().await;
}
