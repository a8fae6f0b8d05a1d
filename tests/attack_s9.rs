//! Attack on the s9 change (issue #15): daemons start their due scans in an order of their
//! own, and a read (`Store::due_run_taken`) spares a due run the write lock when another
//! node served or holds it. Promises checked: a single daemon still runs every enabled
//! start-up scan once (the new order skips none and doubles none), and daemons starting
//! together on one PostgreSQL store run each start-up due time once across all of them.
//!
//! The PostgreSQL tests need `SCANSYNC_TEST_POSTGRES` (a url whose user may create
//! databases); without it they say SKIPPED, or fail under CI (`tests/common`).

mod common;

use common::pg::{sim_config, Database, Node};

use rusqlite::{Connection, OpenFlags};
use scansync::sim::{SimOptions, Simulator};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest a wait may take before the test gives up (a loaded machine).
const PATIENCE: Duration = Duration::from_secs(90);

async fn sim(projects: u32) -> Simulator {
    Simulator::start(SimOptions {
        projects,
        findings_per_project: 5,
        scan_seconds: 0.3,
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

/// A CodeThreat scan `name` of the simulator's `project-{project}` on `schedule`.
fn ct_scan(name: &str, project: usize, schedule: &str, enabled: bool) -> String {
    format!(
        "[[scans]]\nname = \"{name}\"\ninstance = \"sim-codethreat\"\n\
         bind_to = \"project-{project}\"\nbranch = \"main\"\nschedule = {schedule}\n\
         enabled = {enabled}\n\n"
    )
}

/// The start-up scans: `now`, an `at` instant that passed, and `every` an hour (never ran),
/// each due once at start-up, and two disabled scans that must not run. Names in an order
/// no hash keeps.
fn start_up_scans() -> (String, Vec<String>, Vec<String>) {
    let past = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    let kinds = [
        "\"now\"".to_owned(),
        format!("{{ at = \"{past}\" }}"),
        "{ every = \"1h\" }".to_owned(),
    ];
    let mut text = String::new();
    let (mut enabled, mut disabled) = (Vec::new(), Vec::new());
    for i in 0..12 {
        let name = format!("scan-{:02}", (i * 7) % 12);
        let on = i % 6 != 5;
        text.push_str(&ct_scan(&name, i + 1, &kinds[i % 3], on));
        if on {
            enabled.push(name);
        } else {
            disabled.push(name);
        }
    }
    (text, enabled, disabled)
}

/// `(scan, state)` of every run in a SQLite store, oldest first (empty while it does not
/// exist yet).
fn sqlite_runs(store: &Path) -> Vec<(String, String)> {
    let Ok(c) = Connection::open_with_flags(store, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return Vec::new();
    };
    let _ = c.busy_timeout(Duration::from_secs(5));
    let Ok(mut stmt) = c.prepare("SELECT scan, state FROM sync_runs ORDER BY id") else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

fn by_scan(runs: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (scan, state) in runs {
        out.entry(scan.clone()).or_default().push(state.clone());
    }
    out
}

fn scan_starts(sim: &Simulator) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/api/scan/start"))
        .count()
}

/// One daemon, several start-up scans of each kind: each enabled one runs once at start-up
/// and succeeds, whatever order the process picked; the disabled ones never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_daemon_runs_each_enabled_start_up_scan_once_whatever_its_order() {
    let sim = sim(12).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("scansync.db");
    let path = dir.path().join("base.toml");
    sim.write_config(&path, &store).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let head = &text[..text.find("[[scans]]").expect("generated config has scans")];
    let (scans, enabled, disabled) = start_up_scans();
    let node = Node::start(dir.path(), "solo", &format!("{head}{scans}"), "", None);
    let start = Instant::now();
    loop {
        let runs = by_scan(&sqlite_runs(&store));
        let done = enabled.iter().all(|s| {
            runs.get(s)
                .is_some_and(|states| states.iter().any(|st| st == "succeeded"))
        });
        if done {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "not every start-up scan ran: {runs:?}\n{}",
            node.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = node.log();
    node.stop().await;
    let runs = by_scan(&sqlite_runs(&store));
    for scan in &enabled {
        assert_eq!(
            runs.get(scan).map(Vec::as_slice),
            Some(&["succeeded".to_owned()][..]),
            "{scan}: one run at start-up: {runs:?}\n{log}"
        );
    }
    for scan in &disabled {
        assert!(!runs.contains_key(scan), "{scan} is disabled: {runs:?}");
    }
    assert_eq!(runs.len(), enabled.len(), "{runs:?}");
    assert_eq!(scan_starts(&sim), enabled.len(), "one vendor scan each");
    sim.shutdown().await;
}

/// Three daemons on one PostgreSQL store start together with the same start-up scans
/// (`now`, a passed `at`, `every` that never ran): each scan's start-up due time runs once
/// across the three (the others read that it is held, then that it is served), one vendor
/// scan each, and nothing is left running or failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_starting_together_run_each_start_up_due_time_once() {
    let Some(db) = Database::fresh("scansync_s9_start") else {
        return;
    };
    let sim = sim(12).await;
    let dir = tempfile::tempdir().unwrap();
    let (scans, enabled, disabled) = start_up_scans();
    let base = sim_config(&sim, dir.path(), &db.url, &scans);
    let nodes: Vec<Node> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| Node::start(dir.path(), n, &base, &db.password, None))
        .collect();
    let start = Instant::now();
    let runs = |db: &Database| -> Vec<(String, String)> {
        db.rows("SELECT scan, state FROM sync_runs ORDER BY id")
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
            .collect()
    };
    loop {
        let now = by_scan(&runs(&db));
        let done = enabled.iter().all(|s| {
            now.get(s)
                .is_some_and(|states| states.iter().any(|st| st == "succeeded"))
        });
        if done {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "not every start-up scan ran: {now:?}\n{}",
            nodes.iter().map(Node::log_tail).collect::<String>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs: Vec<(String, String)> = nodes.iter().map(|n| (n.name.clone(), n.log())).collect();
    for node in nodes {
        node.stop().await;
    }
    let all = by_scan(&runs(&db));
    let all_logs = || {
        logs.iter()
            .map(|(n, l)| format!("--- {n}\n{l}"))
            .collect::<String>()
    };
    for scan in &enabled {
        assert_eq!(
            all.get(scan).map(Vec::as_slice),
            Some(&["succeeded".to_owned()][..]),
            "{scan}: its start-up due time ran once across the nodes: {all:?}\n{}",
            all_logs()
        );
    }
    for scan in &disabled {
        assert!(!all.contains_key(scan), "{scan} is disabled: {all:?}");
    }
    assert_eq!(scan_starts(&sim), enabled.len(), "one vendor scan each");
    assert_eq!(
        db.count("SELECT count(*) FROM findings WHERE state = 'fixed' OR state = 'missing'"),
        0
    );
    assert_eq!(
        db.count("SELECT count(*) FROM findings"),
        5 * enabled.len() as i64
    );
    sim.shutdown().await;
}
