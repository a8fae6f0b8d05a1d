//! The one concurrency limiter, as every caller of `run_scan` meets it (the CLI, the
//! daemon's schedules, webhook-triggered and resumed runs all go through it): a run waits for
//! its instance's permit, and a stop that comes while it waits starts nothing at the vendor;
//! a run row begun up front (as the listener begins one to answer the push) ends
//! `interrupted`. Public API against the in-process simulator; the order of runs is read
//! from the store's timestamps, nothing here measures time.

use scansync::config::{Config, ScanConfig};
use scansync::sim::{SimOptions, Simulator};
use scansync::store::RunState;
use scansync::sync::{begin_run, run_scan, RunOptions, SyncContext, SyncError};
use std::path::PathBuf;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

struct Setup {
    sim: Simulator,
    _dir: tempfile::TempDir,
    store: PathBuf,
    config: Config,
    ctx: SyncContext,
    stop: tokio::sync::watch::Sender<bool>,
}

/// CodeThreat scans `a` (project-1), `b` and `c` (project-2), one run per instance at a time.
async fn setup(scan_seconds: f64) -> Setup {
    let sim = Simulator::start(SimOptions {
        projects: 2,
        findings_per_project: 10,
        scan_seconds,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let store = dir.path().join("scansync.db");
    sim.write_config(&path, &store).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let head = &text[..text.find("[[scans]]").expect("generated config has scans")];
    let head = head.replace(
        "poll_interval = \"1s\"\n",
        "poll_interval = \"1s\"\nconcurrency = 4\nper_instance_concurrency = 1\n",
    );
    let scan = |name: &str, project: &str| {
        format!(
            "[[scans]]\nname = \"{name}\"\ninstance = \"sim-codethreat\"\nbind_to = \"{project}\"\n\
             branch = \"main\"\nschedule = {{ every = \"24h\" }}\n\n"
        )
    };
    std::fs::write(
        &path,
        format!(
            "{head}{}{}{}",
            scan("a", "project-1"),
            scan("b", "project-2"),
            scan("c", "project-2")
        ),
    )
    .unwrap();
    let config = Config::load(&path, scansync::vendors::REGISTRY).expect("valid config");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let ctx = SyncContext::new(&config, stop_rx).expect("store opens");
    Setup {
        sim,
        _dir: dir,
        store,
        config,
        ctx,
        stop,
    }
}

impl Setup {
    fn scan(&self, name: &str) -> ScanConfig {
        self.config
            .scans
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .expect("configured scan")
    }

    /// `(started_at, finished_at, state)` of the one run of `scan`.
    fn run_times(&self, scan: &str) -> (String, String, String) {
        let db = rusqlite::Connection::open(&self.store).unwrap();
        db.query_row(
            "SELECT started_at, finished_at, state FROM sync_runs WHERE scan = ?1",
            [scan],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }
}

fn opts(trigger: &str) -> RunOptions {
    RunOptions {
        trigger: trigger.into(),
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_run_on_a_busy_instance_starts_after_the_first_ended() {
    let s = setup(1.0).await;
    let mut runs = tokio::task::JoinSet::new();
    for name in ["a", "b"] {
        let (ctx, scan) = (s.ctx.clone(), s.scan(name));
        runs.spawn(async move { run_scan(&ctx, &scan, opts("cli")).await });
    }
    while let Some(done) = runs.join_next().await {
        let summary = done.unwrap().expect("recorded");
        assert_eq!(summary.state, RunState::Succeeded, "{:?}", summary.error);
    }
    let (a, b) = (s.run_times("a"), s.run_times("b"));
    // A run's row is begun once it holds its permits; times are RFC 3339 in milliseconds.
    let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
    assert!(
        second.0 >= first.1,
        "the second run began before the first ended: {first:?} {second:?}"
    );
    assert_eq!(s.sim.codethreat_scans().len(), 2);
    s.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_while_waiting_for_a_permit_starts_nothing_and_ends_a_begun_run_interrupted() {
    let s = setup(60.0).await;
    let running = {
        let (ctx, scan) = (s.ctx.clone(), s.scan("b"));
        tokio::spawn(async move { run_scan(&ctx, &scan, opts("schedule")).await })
    };
    let start = std::time::Instant::now();
    while s.sim.codethreat_scans().is_empty() {
        assert!(
            start.elapsed() < WAIT,
            "the first run never started its scan"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // `b` holds sim-codethreat's only permit. A webhook-style run with its row begun up
    // front, and a plain one, wait behind it.
    let scan_c = s.scan("c");
    let begun = begin_run(&s.ctx, &scan_c, &opts("webhook"))
        .await
        .expect("row begun");
    let waiting_begun = {
        let (ctx, scan) = (s.ctx.clone(), scan_c.clone());
        let opts = RunOptions {
            run_id: Some(begun),
            ..opts("webhook")
        };
        tokio::spawn(async move { run_scan(&ctx, &scan, opts).await })
    };
    let waiting_plain = {
        let (ctx, scan) = (s.ctx.clone(), s.scan("a"));
        tokio::spawn(async move { run_scan(&ctx, &scan, opts("schedule")).await })
    };
    s.stop.send(true).unwrap();

    let first = tokio::time::timeout(WAIT, running)
        .await
        .unwrap()
        .unwrap()
        .expect("recorded");
    // Its vendor scan is running: the run is left for adoption, not thrown away.
    assert_eq!(first.state, RunState::Running);
    assert!(first.vendor_scan_id.is_some(), "{first:?}");
    let closed = tokio::time::timeout(WAIT, waiting_begun)
        .await
        .unwrap()
        .unwrap()
        .expect("the begun row is closed");
    assert_eq!(closed.run_id, begun);
    assert_eq!(closed.state, RunState::Interrupted);
    assert!(
        closed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("before the run could start")),
        "{closed:?}"
    );
    assert_eq!(closed.vendor_scan_id, None);
    let plain = tokio::time::timeout(WAIT, waiting_plain)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&plain, Err(SyncError::StoppedBeforeStart(scan)) if scan == "a"),
        "{plain:?}"
    );
    assert_eq!(
        s.sim.codethreat_scans().len(),
        1,
        "only the run holding the permit started a vendor scan"
    );
    assert_eq!(s.run_times("c").2, "interrupted");
    let db = rusqlite::Connection::open(&s.store).unwrap();
    let rows_of_a: u64 = db
        .query_row("SELECT count(*) FROM sync_runs WHERE scan = 'a'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(rows_of_a, 0, "the plain run recorded nothing");
    s.sim.shutdown().await;
}
