//! Where the store's tests keep their store: a SQLite file in a temporary folder, or, when
//! the suite runs on PostgreSQL (`SCANSYNC_TEST_STORE=postgres`, with the server in
//! `SCANSYNC_TEST_POSTGRES`), a schema of its own in that database, dropped afterwards. The
//! same tests run on both; [`the_store_suite_runs_on_postgresql`] runs them there.

use super::{PgTarget, Store, StoreLocation};
use std::sync::atomic::{AtomicUsize, Ordering};
use tempfile::TempDir;

/// The variable naming the PostgreSQL server the suite may use (a url with a user who can
/// create schemas in its database).
pub const POSTGRES_URL_VAR: &str = "SCANSYNC_TEST_POSTGRES";

/// True in the run of the suite on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("SCANSYNC_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// The tables and time columns [`age`] moves: runs, events, scans.
pub const RUN_TIMES: &[(&str, &[&str])] = &[
    ("sync_runs", &["started_at", "finished_at", "notified_at"]),
    ("finding_events", &["at"]),
    ("scans", &["created_at"]),
];

/// Moves the given stored times back by `days`, as if that had happened that long ago.
pub fn age(store: &Store, days: i64, tables: &[(&str, &[&str])]) {
    for (table, columns) in tables {
        let set: Vec<String> = columns
            .iter()
            .map(|c| days_earlier(store, c, days))
            .collect();
        store
            .conn
            .execute_batch(&format!("UPDATE {table} SET {}", set.join(", ")))
            .unwrap();
    }
}

/// SQL that sets `col` (a store time) `days` earlier, in the store's own format.
fn days_earlier(store: &Store, col: &str, days: i64) -> String {
    match store.conn.backend() {
        super::db::Backend::Sqlite => {
            format!("{col} = strftime('%Y-%m-%dT%H:%M:%fZ', {col}, '-{days} days')")
        }
        super::db::Backend::Postgres => format!(
            "{col} = to_char((CAST({col} AS timestamptz) - interval '{days} days') \
             AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        ),
    }
}

/// One test's store location.
pub struct TestDb {
    dir: TempDir,
    pg: Option<PgTarget>,
    drift_allowed: bool,
}

impl TestDb {
    pub fn new() -> TestDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::tempdir().unwrap();
        let pg = on_postgres().then(|| {
            let url = std::env::var(POSTGRES_URL_VAR)
                .unwrap_or_else(|_| panic!("{POSTGRES_URL_VAR} is not set"));
            let schema = format!(
                "t{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let target = PgTarget {
                url,
                password: None,
                ca_file: None,
                schema: None,
            };
            let mut admin = super::postgres::connect(&target).unwrap();
            admin
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                ))
                .unwrap();
            PgTarget {
                schema: Some(schema),
                ..target
            }
        });
        TestDb {
            dir,
            pg,
            drift_allowed: false,
        }
    }

    /// A SQLite store, whichever backend the suite runs on.
    pub fn sqlite() -> TestDb {
        TestDb {
            dir: tempfile::tempdir().unwrap(),
            pg: None,
            drift_allowed: false,
        }
    }

    /// A store handle: on the same database each time, as another process would open it.
    pub fn open(&self) -> Store {
        Store::open_at(&self.location()).unwrap()
    }

    /// Where the store is, as the config would say.
    pub fn location(&self) -> StoreLocation {
        match &self.pg {
            Some(target) => StoreLocation::Postgres(target.clone()),
            None => StoreLocation::Sqlite(self.dir.path().join("state/scansync.db")),
        }
    }
}

/// The scans whose `present_count` is not their number of present (not `fixed`) rows:
/// `(scan, counted, rows)`. Each test's store is checked when the test ends ([`TestDb`]'s
/// drop): a count lower than the rows would let a run end without fixing what it did not
/// list (`fix_absent`).
pub const PRESENT_COUNT_DRIFT: &str = "SELECT s.name, s.present_count,
        (SELECT count(*) FROM findings f WHERE f.scan_id = s.id AND f.state <> 'fixed')
     FROM scans s
     WHERE s.present_count
           <> (SELECT count(*) FROM findings f WHERE f.scan_id = s.id AND f.state <> 'fixed')
     ORDER BY s.name";

/// [`PRESENT_COUNT_DRIFT`] of `store`.
pub fn present_count_drift(store: &Store) -> Vec<(String, i64, i64)> {
    let mut stmt = store.conn.prepare(PRESENT_COUNT_DRIFT).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

impl TestDb {
    /// For a test that sets a count wrong on purpose: the check at its end is skipped.
    pub fn allow_present_count_drift(&mut self) {
        self.drift_allowed = true;
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.drift_allowed && !std::thread::panicking() {
            // A store this binary can read (none yet, or one a test left at another schema
            // version, is not checked).
            let drift = Store::open_read_only_at(&self.location())
                .map(|store| present_count_drift(&store))
                .unwrap_or_default();
            assert!(
                drift.is_empty(),
                "scans whose present_count is not their present rows (scan, counted, rows): {drift:?}"
            );
        }
        if let Some(target) = &self.pg {
            let schema = target.schema.clone().unwrap_or_default();
            let admin = PgTarget {
                schema: None,
                ..target.clone()
            };
            if let Ok(mut admin) = super::postgres::connect(&admin) {
                let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// The store's tests (every `store::` test) again, on PostgreSQL, in a second run of this
/// test binary. Without a server named in `SCANSYNC_TEST_POSTGRES` it says so and passes,
/// except under CI, where not running them is a failure.
#[test]
fn the_store_suite_runs_on_postgresql() {
    if on_postgres() {
        return;
    }
    let Ok(_url) = std::env::var(POSTGRES_URL_VAR) else {
        // As the external tools of the integration tests (tests/common, tool_missing).
        let required = std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var("SCANSYNC_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "the store's tests did not run on PostgreSQL: CI must set {POSTGRES_URL_VAR}"
        );
        eprintln!(
            "SKIPPED: the store's tests did not run on PostgreSQL; set {POSTGRES_URL_VAR}=\
             postgres://user:password@127.0.0.1:5432/db?sslmode=disable to run them"
        );
        return;
    };
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "store::",
            "--skip",
            "the_store_suite_runs_on_postgresql",
            "--skip",
            "store::db::",
        ])
        .env("SCANSYNC_TEST_STORE", "postgres")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .filter(|l| l.starts_with("test result") || l.contains("FAILED") || l.contains("panicked"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("the store's tests on PostgreSQL: {summary}");
    assert!(
        out.status.success(),
        "the store's tests failed on PostgreSQL:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test result: ok"), "{stdout}");
}

/// Rows whose foreign keys point nowhere. SQLite checks only what it is asked to;
/// PostgreSQL refuses them at every statement, except for the keys its schema version 8
/// dropped (`migrations/postgres/0008_no_hot_path_foreign_keys.sql`), counted here.
pub fn foreign_key_violations(store: &Store) -> i64 {
    let sql = match store.conn.backend() {
        super::db::Backend::Sqlite => "SELECT count(*) FROM pragma_foreign_key_check",
        super::db::Backend::Postgres => {
            "SELECT (SELECT count(*) FROM findings f
                     WHERE NOT EXISTS (SELECT 1 FROM scans s WHERE s.id = f.scan_id)
                        OR NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.id = f.last_run_id))
                  + (SELECT count(*) FROM finding_events e
                     WHERE NOT EXISTS (SELECT 1 FROM findings f WHERE f.id = e.finding_id)
                        OR (e.run_id IS NOT NULL
                            AND NOT EXISTS (SELECT 1 FROM sync_runs r WHERE r.id = e.run_id)))"
        }
    };
    store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}
