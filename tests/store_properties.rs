//! The store through its public API only (`scansync::store::Store`), with plain SQL on the
//! file where a test must build or read what the API does not show:
//!
//! - a property test: any sequence of overlapping pages, whose copies of one finding differ
//!   in severity and vendor status, leaves one row per finding, counted once per run and
//!   holding the first copy the run saw (the store's documented rule: a repeat within a run
//!   changes nothing); a second run updates what it saw, marks exactly the rest fixed;
//! - the migration test: rows seeded in a version-1 file survive `Store::open`, and the
//!   migrated schema is the schema of a fresh store (compared with a fresh store, not with a
//!   hard-coded schema, so it holds as migrations are added).

use proptest::prelude::*;
use rusqlite::Connection;
use scansync::finding::{Finding, Location, Severity};
use scansync::store::{FindingFilter, FindingState, RunEnd, RunScope, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const VENDOR: &str = "codethreat";
const BIND_TO: &str = "shop-web";
/// Distinct findings the pages draw from: few, so pages overlap a lot.
const UNIVERSE: usize = 12;
const STATUSES: [&str; 3] = ["Open", "Confirmed", "In Progress"];

fn scope() -> RunScope {
    RunScope {
        scan: "shop".into(),
        instance: "ct-main".into(),
        vendor: VENDOR.into(),
        bind_to: BIND_TO.into(),
        branch: Some("main".into()),
        trigger: "cli".into(),
        // The mass-fix guard is pinned elsewhere (store tests, tests/lifecycle.rs); here every
        // absence is a fix, so the property is about overlapping pages alone.
        fix_guard: 1.0,
        ..RunScope::default()
    }
}

/// Finding `n` in one of its versions: the identity (rule, file, title) comes from `n`, the
/// severity and vendor status from the version.
fn finding(n: usize, severity: usize, status: usize) -> Finding {
    Finding {
        vendor_id: Some(format!("issue-{n}")),
        title: format!("Problem {n}"),
        severity: Severity::ALL[severity % Severity::ALL.len()],
        vendor_status: Some(STATUSES[status % STATUSES.len()].into()),
        cwe: Some("CWE-89".into()),
        owasp: None,
        rule_id: Some(format!("rule-{n}")),
        location: if n.is_multiple_of(3) {
            Location::Api {
                method: "GET".into(),
                path: format!("/v1/items/{n}"),
                host: "api.example.com".into(),
            }
        } else {
            Location::Code {
                path: format!("src/file{n}.rs"),
                start_line: Some(n as u32 + 1),
                end_line: None,
            }
        },
        description: None,
        remediation: None,
        vendor_url: None,
        vendor_first_seen: None,
        vendor_last_seen: None,
        raw: format!("{{\"id\":{n},\"severity\":{severity},\"status\":{status}}}"),
        verdict: None,
    }
}

type Page = Vec<(usize, usize, usize)>;

fn pages_strategy() -> impl Strategy<Value = Vec<Page>> {
    let entry = (0..UNIVERSE, 0..5usize, 0..STATUSES.len());
    prop::collection::vec(prop::collection::vec(entry, 1..8), 1..7)
}

/// Imports `pages` as one run that succeeds; returns the run's counts.
fn import(store: &mut Store, pages: &[Page]) -> scansync::store::RunCounts {
    let run = store.begin_run(&scope()).unwrap();
    for page in pages {
        let page: Vec<Finding> = page.iter().map(|&(n, s, st)| finding(n, s, st)).collect();
        store.upsert_page(run, &page).unwrap();
    }
    store.finish_run(run, RunEnd::Succeeded).unwrap().counts
}

/// What one run over `pages` must leave: per finding, the first copy the run saw
/// (severity, status).
fn first_copies(pages: &[Page]) -> BTreeMap<usize, (usize, usize)> {
    let mut first = BTreeMap::new();
    for page in pages {
        for &(n, s, st) in page {
            first.entry(n).or_insert((s, st));
        }
    }
    first
}

fn fingerprint(n: usize) -> String {
    finding(n, 0, 0).fingerprint(0)
}

fn event_count(path: &Path, kind: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM finding_events WHERE kind = ?1",
            [kind],
            |r| r.get(0),
        )
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn overlapping_pages_keep_one_row_per_finding_with_the_runs_first_copy(
        first in pages_strategy(),
        second in pages_strategy(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scansync.db");
        let mut store = Store::open(&path).unwrap();

        // The fingerprint ignores severity and status: one identity per n.
        prop_assert_eq!(finding(1, 0, 0).fingerprint(0),
                        finding(1, 4, 2).fingerprint(0));

        let want = first_copies(&first);
        let counts = import(&mut store, &first);
        prop_assert_eq!(counts.seen, want.len() as u64);
        prop_assert_eq!(counts.new, want.len() as u64);
        prop_assert_eq!(counts.pages, first.len() as u64);
        let rows = store.findings(&FindingFilter::default()).unwrap();
        prop_assert_eq!(rows.len(), want.len());
        let by_fp: BTreeMap<String, usize> =
            want.keys().map(|&n| (fingerprint(n), n)).collect();
        for row in &rows {
            let n = by_fp[&row.fingerprint];
            let (s, st) = want[&n];
            prop_assert_eq!(row.state, FindingState::New);
            prop_assert_eq!(row.times_seen, 1);
            prop_assert_eq!(row.finding.severity, Severity::ALL[s]);
            prop_assert_eq!(row.finding.vendor_status.as_deref(), Some(STATUSES[st]));
            prop_assert_eq!(&row.finding.raw, &finding(n, s, st).raw);
        }
        prop_assert_eq!(event_count(&path, "created"), want.len() as i64);

        // A second complete run: what it saw is open again, the rest fixed.
        let again = first_copies(&second);
        let counts = import(&mut store, &second);
        let before: BTreeSet<usize> = want.keys().copied().collect();
        let now: BTreeSet<usize> = again.keys().copied().collect();
        prop_assert_eq!(counts.seen, now.len() as u64);
        prop_assert_eq!(counts.new, now.difference(&before).count() as u64);
        prop_assert_eq!(counts.open, now.intersection(&before).count() as u64);
        prop_assert_eq!(counts.fixed, before.difference(&now).count() as u64);
        let rows = store.findings(&FindingFilter::default()).unwrap();
        prop_assert_eq!(rows.len(), before.union(&now).count());
        for row in &rows {
            let n = by_fp.get(&row.fingerprint).copied()
                .unwrap_or_else(|| *now.iter().find(|&&n| fingerprint(n) == row.fingerprint).unwrap());
            let expected_state = match (before.contains(&n), now.contains(&n)) {
                (true, true) => FindingState::Open,
                (true, false) => FindingState::Fixed,
                (false, true) => FindingState::New,
                (false, false) => unreachable!(),
            };
            prop_assert_eq!(row.state, expected_state, "finding {}", n);
            let times = u64::from(before.contains(&n)) + u64::from(now.contains(&n));
            prop_assert_eq!(row.times_seen, times, "finding {}", n);
            if let Some(&(s, st)) = again.get(&n) {
                prop_assert_eq!(row.finding.severity, Severity::ALL[s]);
                prop_assert_eq!(row.finding.vendor_status.as_deref(), Some(STATUSES[st]));
            }
        }
    }
}

/// `sqlite_master` as `(type, name, sql)` with the SQL's whitespace collapsed, sorted; the
/// `PRAGMA user_version` with it.
fn schema(path: &Path) -> (Vec<(String, String, String)>, i64) {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            let sql: String = r.get(2)?;
            Ok((
                r.get(0)?,
                r.get(1)?,
                sql.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let version = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    (rows, version)
}

#[test]
fn rows_of_a_version_1_store_survive_migration_to_the_schema_of_a_fresh_store() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("v1.db");
    {
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch(include_str!("../src/store/migrations/sqlite/0001_init.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO instances (id, name, vendor, created_at)
                 VALUES (1, 'ct-main', 'codethreat', '2026-01-01T00:00:00Z');
             INSERT INTO scans (id, name, instance_id, bind_to, branch, created_at)
                 VALUES (1, 'shop', 1, 'shop-web', 'main', '2026-01-01T00:00:00Z');
             INSERT INTO sync_runs (id, scan_id, scan, instance, vendor, bind_to, branch, trigger,
                                    state, vendor_scan_id, started_at, finished_at,
                                    seen, new, open, reopened, fixed, pages, error)
                 VALUES (1, 1, 'shop', 'ct-main', 'codethreat', 'shop-web', 'main', 'cli',
                         'succeeded', 'vs-1', '2026-01-01T00:00:00Z', '2026-01-01T00:01:00Z',
                         2, 2, 0, 0, 0, 1, NULL),
                        (2, 1, 'shop', 'ct-main', 'codethreat', 'shop-web', 'main', 'schedule',
                         'failed', 'vs-2', '2026-01-02T00:00:00Z', '2026-01-02T00:01:00Z',
                         0, 0, 0, 0, 0, 0, 'HTTP 503 from the vendor');
             INSERT INTO findings (id, scan_id, fingerprint, state, title, severity, vendor_status,
                                   cwe, owasp, rule_id, location_kind, file_path, start_line,
                                   end_line, http_method, api_path, api_host, description,
                                   remediation, vendor_url, vendor_id, vendor_first_seen,
                                   vendor_last_seen, raw, first_seen, last_seen, times_seen,
                                   last_run_id)
                 VALUES (1, 1, 'fp-one', 'new', 'SQL Injection', 'critical', 'Open', 'CWE-89',
                         'A03:2021', 'js/sqli', 'code', 'src/db.js', 10, 12, NULL, NULL, NULL,
                         'desc', 'fix it', 'https://ct.example/1', 'iss-1', NULL, NULL,
                         '{\"_id\":\"iss-1\"}', '2026-01-01T00:00:30Z', '2026-01-01T00:00:30Z',
                         1, 1),
                        (2, 1, 'fp-two', 'accepted', 'Open Redirect', 'low', 'Open', 'CWE-601',
                         NULL, NULL, 'api', NULL, NULL, NULL, 'GET', '/v1/go', 'api.example.com',
                         NULL, NULL, NULL, 'iss-2', NULL, NULL, '{}', '2026-01-01T00:00:30Z',
                         '2026-01-01T00:00:30Z', 3, 1);",
        )
        .unwrap();
    }

    let store = Store::open(&old).expect("a version-1 store opens and migrates");
    let runs = store.runs(Some("shop"), 10).unwrap();
    let mut ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(ids, [1, 2], "{runs:?}");
    let failed = runs.iter().find(|r| r.id == 2).unwrap();
    assert_eq!(failed.error.as_deref(), Some("HTTP 503 from the vendor"));
    assert_eq!(failed.vendor_scan_id.as_deref(), Some("vs-2"));
    let ok = runs.iter().find(|r| r.id == 1).unwrap();
    assert_eq!((ok.counts.seen, ok.counts.new, ok.counts.pages), (2, 2, 1));

    let findings = store.findings(&FindingFilter::default()).unwrap();
    assert_eq!(findings.len(), 2);
    // Re-keyed in place to fingerprint recipe 2 (the same rows, found by their vendor ids).
    let one = findings
        .iter()
        .find(|f| f.finding.vendor_id.as_deref() == Some("iss-1"))
        .unwrap();
    assert_eq!(one.fingerprint, one.finding.fingerprint(0));
    assert_eq!(one.state, FindingState::New);
    assert_eq!(one.finding.title, "SQL Injection");
    assert_eq!(one.finding.severity, Severity::Critical);
    assert_eq!(
        one.finding.location,
        Location::Code {
            path: "src/db.js".into(),
            start_line: Some(10),
            end_line: Some(12)
        }
    );
    assert_eq!(one.finding.raw, "{\"_id\":\"iss-1\"}");
    let two = findings
        .iter()
        .find(|f| f.finding.vendor_id.as_deref() == Some("iss-2"))
        .unwrap();
    assert_eq!(two.fingerprint, two.finding.fingerprint(0));
    assert_eq!(two.state, FindingState::Accepted);
    assert_eq!(two.times_seen, 3);
    assert_eq!(two.scan, "shop");
    assert_eq!(two.instance, "ct-main");
    drop(store);
    // Schema 9 counted the scan's present findings (what lets a run that listed them all
    // skip its pass).
    let counted: i64 = Connection::open(&old)
        .unwrap()
        .query_row(
            "SELECT present_count FROM scans WHERE name = 'shop'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(counted, 2);

    let fresh = dir.path().join("fresh.db");
    drop(Store::open(&fresh).unwrap());
    let (migrated, migrated_version) = schema(&old);
    let (expected, fresh_version) = schema(&fresh);
    assert_eq!(migrated_version, fresh_version);
    assert!(fresh_version > 1, "a fresh store is past version 1");
    assert_eq!(
        migrated.iter().map(|r| &r.1).collect::<Vec<_>>(),
        expected.iter().map(|r| &r.1).collect::<Vec<_>>(),
        "the same tables, indexes and triggers"
    );
    for (got, want) in migrated.iter().zip(&expected) {
        assert_eq!(got, want, "{} {} differs", want.0, want.1);
    }
}
