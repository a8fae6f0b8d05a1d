//! Crash safety of the store: a run cut off between (or inside) pages keeps every committed
//! page whole, is marked interrupted on the next start, and a retry adds no duplicates.
//!
//! The writer is a real child process — this test binary re-run with `--ignored --exact
//! crash_child_writer` and an env var naming the store file — so a SIGKILL is a real crash,
//! not a simulated one.

use scansync::finding::{Finding, Location, Severity};
use scansync::store::{RunEnd, RunScope, RunState, Store};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD_DB_ENV: &str = "SCANSYNC_CRASH_CHILD_DB";
const CHILD_MODE_ENV: &str = "SCANSYNC_CRASH_CHILD_MODE";
const PAGE_SIZE: usize = 50;
const PAGES: usize = 200;
const MARK: &str = "CRASH-CHILD committed";

fn scope() -> RunScope {
    RunScope {
        scan: "shop".into(),
        instance: "ct-main".into(),
        vendor: "codethreat".into(),
        bind_to: "shop-project".into(),
        branch: None,
        trigger: "schedule".into(),
        ..RunScope::default()
    }
}

/// The child's lease and heartbeat last this long without renewal; the child renews them
/// with every page, so once it is dead the parent waits this long for them to expire.
const CHILD_LEASE_TTL_MS: u64 = 300;

fn page(p: usize) -> Vec<Finding> {
    (p * PAGE_SIZE..(p + 1) * PAGE_SIZE)
        .map(|n| Finding {
            vendor_id: None,
            title: format!("Problem {n}"),
            severity: Severity::ALL[n % 5],
            vendor_status: Some("Open".into()),
            cwe: Some("CWE-79".into()),
            owasp: None,
            rule_id: Some("xss".into()),
            location: Location::Code {
                path: format!("src/file{n}.rs"),
                start_line: Some(3),
                end_line: None,
            },
            description: Some("A long enough description to make pages take a moment.".repeat(8)),
            remediation: None,
            vendor_url: None,
            vendor_first_seen: None,
            vendor_last_seen: None,
            raw: format!("{{\"id\":{n},\"pad\":\"{}\"}}", "x".repeat(400)),
            verdict: None,
        })
        .collect()
}

/// The child side: writes pages and announces each commit on stdout. In `kill` mode it keeps
/// writing until the parent kills it; in `exit` mode it stops after three pages and exits
/// without finishing the run (the store is simply dropped).
#[test]
#[ignore = "child process of the crash tests; does nothing when run by hand"]
fn crash_child_writer() {
    let Ok(db) = std::env::var(CHILD_DB_ENV) else {
        return;
    };
    let mode = std::env::var(CHILD_MODE_ENV).unwrap_or_default();
    let mut store = Store::open(Path::new(&db)).unwrap();
    let run = store.begin_run(&scope()).unwrap();
    store.set_vendor_scan_id(run, "vs-crash").unwrap();
    let mut out = std::io::stdout();
    for p in 0..PAGES {
        store.heartbeat().unwrap();
        store.upsert_page(run, &page(p)).unwrap();
        writeln!(out, "{MARK} {}", p + 1).unwrap();
        out.flush().unwrap();
        if mode == "exit" && p + 1 == 3 {
            return;
        }
    }
    // Every page written before the kill arrived: wait for it rather than finish the run.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Starts the child writer and returns once it has committed `pages` pages (leaving it
/// running) or ended.
fn spawn_writer(db: &Path, mode: &str, pages: usize) -> std::process::Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_writer",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, db)
        .env(CHILD_MODE_ENV, mode)
        .env("SCANSYNC_LEASE_TTL_MS", CHILD_LEASE_TTL_MS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let wanted = format!("{MARK} {pages}");
    let mut lines = BufReader::new(stdout).lines();
    let reached = lines.any(|line| line.unwrap() == wanted);
    assert!(
        reached,
        "the child writer ended before committing {pages} pages"
    );
    // Keep draining so the child never blocks on a full pipe before it is killed.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

fn scalar<T: rusqlite::types::FromSql>(db: &Path, sql: &str) -> T {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// After the writer died: once its heartbeat expired its run is abandoned, is ended as
/// interrupted with whole pages only, and a retry of the full import stores every finding
/// exactly once.
fn assert_recovered_and_retry_is_clean(db: &Path, at_least_pages: u64) {
    let mut store = Store::open(db).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(CHILD_LEASE_TTL_MS + 200));
    let abandoned = store.abandoned_runs().unwrap();
    assert_eq!(abandoned.len(), 1, "the dead writer's run is abandoned");
    let run = store
        .end_abandoned_run(abandoned[0].id, "interrupted: its writer died")
        .unwrap()
        .expect("ended once");
    let run = &run;
    assert_eq!(run.state, RunState::Interrupted);
    assert_eq!(run.vendor_scan_id.as_deref(), Some("vs-crash"));
    assert!(run.counts.pages >= at_least_pages);

    // Whole pages only: the rows match the page counter committed with them.
    let kept: i64 = scalar(db, "SELECT count(*) FROM findings");
    assert_eq!(kept as u64, run.counts.pages * PAGE_SIZE as u64);
    assert_eq!(run.counts.new, kept as u64);
    let created: i64 = scalar(
        db,
        "SELECT count(*) FROM finding_events WHERE kind = 'created'",
    );
    assert_eq!(created, kept);
    // An interrupted run fixes nothing.
    let fixed: i64 = scalar(db, "SELECT count(*) FROM findings WHERE state = 'fixed'");
    assert_eq!(fixed, 0);

    let retry = store.begin_run(&scope()).unwrap();
    for p in 0..PAGES {
        store.upsert_page(retry, &page(p)).unwrap();
    }
    let done = store.finish_run(retry, RunEnd::Succeeded).unwrap();
    let total = (PAGES * PAGE_SIZE) as u64;
    assert_eq!(done.counts.seen, total);
    assert_eq!(done.counts.new, total - kept as u64);
    assert_eq!(done.counts.open, kept as u64);
    assert_eq!(done.counts.fixed, 0);

    let rows: i64 = scalar(db, "SELECT count(*) FROM findings");
    assert_eq!(rows as u64, total);
    let duplicates: i64 = scalar(
        db,
        "SELECT count(*) FROM (SELECT scan_id, fingerprint FROM findings \
         GROUP BY scan_id, fingerprint HAVING count(*) > 1)",
    );
    assert_eq!(duplicates, 0);
    let integrity: String = scalar(db, "PRAGMA integrity_check");
    assert_eq!(integrity, "ok");
    assert!(store.abandoned_runs().unwrap().is_empty());
}

#[test]
fn writer_killed_mid_run_keeps_whole_earlier_pages_and_retry_adds_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scansync.db");
    let mut child = spawn_writer(&db, "kill", 3);
    child.kill().unwrap(); // SIGKILL: no destructor, no rollback, possibly mid-page.
    child.wait().unwrap();
    assert_recovered_and_retry_is_clean(&db, 3);
}

#[test]
fn writer_that_exits_without_finishing_its_run_is_recovered_with_its_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scansync.db");
    let mut child = spawn_writer(&db, "exit", 3);
    let status = child.wait().unwrap();
    assert!(status.success());
    let pages: i64 = scalar(&db, "SELECT pages FROM sync_runs");
    assert_eq!(pages, 3);
    assert_recovered_and_retry_is_clean(&db, 3);
}
