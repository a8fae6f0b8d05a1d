//! Attacks on the s11 change: on PostgreSQL the batched page statement (`UPSERT_ROWS_SQL`)
//! writes its rows' `created` events itself, in a second CTE, from the rows it returns
//! (ids above `findings_before`), so they get ids before the triggers' events of the rows
//! the same statement updated. The promises under attack: one `created` event per row,
//! first among that row's events, with the row's first run, time and state; the run
//! counters and `present_count` derived from the page's events; the follow-ups that read
//! the page's `created` events (`suppressed`, branch triage inheritance). Each test runs on
//! both backends; on PostgreSQL the batched path is also compared with one finding at a
//! time.

use super::copy::copy;
use super::ingest::{LOOKED_UP_AGAIN, ONE_BY_ONE};
use super::s10_attack_tests::kinds;
use super::test_db::{on_postgres, present_count_drift, TestDb};
use super::tests::{accept, count, finding, findings, id_of, import, other_process, rule};
use super::tests::{page_outcome, scope, temp_store, PageOutcome};
use super::*;
use crate::finding::Verdict;

/// Finding `n`, resolved at the vendor.
fn resolved(n: usize) -> Finding {
    let mut f = finding(n);
    f.verdict = Some(Verdict::Resolved);
    f
}

/// Finding `n` at severity `severity`.
fn at_severity(n: usize, severity: Severity) -> Finding {
    let mut f = finding(n);
    f.severity = severity;
    f
}

/// The state of finding `n` in `scan`.
fn state(store: &Store, scan: &str, n: usize) -> String {
    store
        .conn
        .query_row(
            "SELECT f.state FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = ?1 AND f.fingerprint = ?2",
            params![scan, finding(n).fingerprint(0)],
            |r| r.get(0),
        )
        .unwrap()
}

/// The store-wide promises about `created` events and the counts derived from them.
#[track_caller]
fn check_events(store: &Store, when: &str) {
    let zero = |what: &str, sql: &str| assert_eq!(count(store, sql), 0, "{when}: {what}");
    zero(
        "every row has exactly one created event",
        "SELECT count(*) FROM findings f
         WHERE (SELECT count(*) FROM finding_events e
                WHERE e.finding_id = f.id AND e.kind = 'created') <> 1",
    );
    zero(
        "no event names a missing row",
        "SELECT count(*) FROM finding_events e
         WHERE NOT EXISTS (SELECT 1 FROM findings f WHERE f.id = e.finding_id)",
    );
    zero(
        "the created event is first among its row's events",
        "SELECT count(*) FROM finding_events e JOIN finding_events c
             ON c.finding_id = e.finding_id AND c.kind = 'created'
         WHERE e.id < c.id",
    );
    zero(
        "the created event carries the row's first sighting and a run no newer than its last",
        "SELECT count(*) FROM finding_events c JOIN findings f ON f.id = c.finding_id
         WHERE c.kind = 'created'
           AND (c.at <> f.first_seen OR c.run_id IS NULL OR c.run_id > f.last_run_id
                OR c.old_value IS NOT NULL)",
    );
    zero(
        "each run's `new` is its created events of rows created present",
        "SELECT count(*) FROM sync_runs r
         WHERE r.new <> (SELECT count(*) FROM finding_events e
                         WHERE e.run_id = r.id AND e.kind = 'created'
                           AND e.new_value <> 'fixed')",
    );
    zero(
        "a row created under a rule has its suppressed event right after created",
        "SELECT count(*) FROM finding_events c
         WHERE c.kind = 'created' AND c.new_value = 'false_positive'
           AND NOT EXISTS (SELECT 1 FROM finding_events s
                           WHERE s.finding_id = c.finding_id AND s.kind = 'suppressed'
                             AND s.run_id = c.run_id AND s.id > c.id)",
    );
    assert_eq!(present_count_drift(store), vec![], "{when}: present_count");
}

/// Accepts finding `n` of `scan` locally.
fn triage(store: &mut Store, scan: &str, n: usize) {
    let id = store
        .resolve_finding(&finding(n).fingerprint(0), Some(scan))
        .unwrap();
    store.triage(id, &accept(None)).unwrap();
}

/// A history that mixes, in single pages, rows the page creates with rows it updates (whose
/// trigger events the batched statement writes after the `created` ones): new rows beside
/// severity changes, vendor-resolved rows created fixed, a rule's rows, a fixed row coming
/// back, a page repeated with new rows (the optimistic plan misses: rolled back, planned
/// again), an empty page, a branch scope inheriting triage in a page that also updates, and
/// a stale adopted run that creates rows already fixed. Returns each run's counts.
fn history(db: &TestDb) -> (Store, Vec<RunCounts>) {
    let mut store = db.open();
    store.set_suppress_rules(vec![rule("fixtures", "Problem 7")]);
    let mut counts = Vec::new();
    // Run 1: created rows (one under the rule, one resolved), then a page that repeats
    // three of them beside three new ones, then an empty page.
    let run = store.begin_run(&scope("shop")).unwrap();
    let mut page = findings(0..7);
    page.push(finding(7));
    page.push(resolved(8));
    let c = store.upsert_page(run, &page).unwrap();
    assert_eq!((c.seen, c.new, c.open, c.fixed), (9, 8, 0, 0), "first page");
    let mut again = findings(0..3);
    again.extend(findings(9..12));
    let c = store.upsert_page(run, &again).unwrap();
    assert_eq!(
        (c.seen, c.new, c.open),
        (3, 3, 0),
        "repeated page with new rows"
    );
    let c = store.upsert_page(run, &[]).unwrap();
    assert_eq!((c.seen, c.new, c.pages), (0, 0, 1), "empty page");
    counts.push(store.finish_run(run, RunEnd::Succeeded).unwrap().counts);
    check_events(&store, "run 1");
    triage(&mut store, "shop", 1);
    triage(&mut store, "shop", 5);
    // Run 2: one page that updates (severity, vendor's resolved word, a fixed row back)
    // and creates (plain, under the rule).
    let run = store.begin_run(&scope("shop")).unwrap();
    let mut page = vec![
        at_severity(0, Severity::Critical),
        finding(1),
        at_severity(2, Severity::Critical),
        resolved(3),
        finding(4),
        finding(5),
        finding(6),
        finding(7),
        finding(8),
    ];
    page.extend(findings(12..15));
    page.push({
        let mut f = finding(15);
        f.title = "Problem 7 again".into();
        f
    });
    let c = store.upsert_page(run, &page).unwrap();
    assert_eq!(
        (c.seen, c.new, c.reopened, c.fixed),
        (13, 4, 1, 1),
        "mixed page"
    );
    counts.push(store.finish_run(run, RunEnd::Succeeded).unwrap().counts);
    check_events(&store, "run 2");
    assert_eq!(state(&store, "shop", 3), "fixed");
    assert_eq!(state(&store, "shop", 8), "reopened");
    // A branch scope: its first run creates (1 inherits), its second updates those and
    // creates more (5 inherits, 7 under the rule) in one statement.
    let run = store.begin_run(&scope("shop@feature")).unwrap();
    let c = store.upsert_page(run, &findings(0..3)).unwrap();
    assert_eq!((c.seen, c.new), (3, 3), "branch page 1");
    counts.push(store.finish_run(run, RunEnd::Succeeded).unwrap().counts);
    let run = store.begin_run(&scope("shop@feature")).unwrap();
    let mut page: Vec<Finding> = (0..3).map(|n| at_severity(n, Severity::Info)).collect();
    page.extend(findings(4..8));
    let c = store.upsert_page(run, &page).unwrap();
    assert_eq!((c.seen, c.new, c.open), (7, 4, 3), "branch run 2");
    counts.push(store.finish_run(run, RunEnd::Succeeded).unwrap().counts);
    check_events(&store, "branch run");
    for n in [1, 5] {
        assert_eq!(state(&store, "shop@feature", n), "accepted", "{n} inherits");
        assert_eq!(
            kinds(&store, "shop@feature", n)[..2],
            ["created".to_string(), "state_set".to_string()],
            "{n}'s events"
        );
    }
    assert_eq!(state(&store, "shop@feature", 7), "false_positive");
    assert_eq!(
        kinds(&store, "shop@feature", 7),
        vec!["created", "suppressed"],
        "7 under the rule on the branch"
    );
    // A stale run: begun, left, adopted after a newer run succeeded; what it creates is
    // created fixed (not new), in a page that also updates rows.
    let old = store.begin_run(&scope("shop")).unwrap();
    store.detach_run(old).unwrap();
    store.release_owner().unwrap();
    let mut second = other_process(db);
    second.set_suppress_rules(vec![rule("fixtures", "Problem 7")]);
    let newer = second.begin_run(&scope("shop")).unwrap();
    let mut page: Vec<Finding> = (0..16).filter(|n| *n != 3).map(finding).collect();
    page[0] = at_severity(0, Severity::Low);
    second.upsert_page(newer, &page).unwrap();
    counts.push(second.finish_run(newer, RunEnd::Succeeded).unwrap().counts);
    second.adopt_run(old).unwrap().unwrap().unwrap();
    let mut stale: Vec<Finding> = (0..6).map(|n| at_severity(n, Severity::High)).collect();
    stale.extend(findings(20..23));
    let c = second.upsert_page(old, &stale).unwrap();
    assert_eq!(
        (c.seen, c.new),
        (4, 0),
        "stale page: its new rows and 3 (fixed, untouched by the newer run), none new"
    );
    counts.push(second.finish_run(old, RunEnd::Succeeded).unwrap().counts);
    check_events(&second, "stale run");
    for n in 20..23 {
        assert_eq!(state(&second, "shop", n), "fixed", "{n} created fixed");
        assert_eq!(kinds(&second, "shop", n), vec!["created"]);
    }
    drop(store);
    (second, counts)
}

/// The mixed history keeps every promise about `created` events and counts on either
/// backend, and on PostgreSQL the batched statement ends as one finding at a time does
/// (each finding's events in order; only the order between findings may differ).
#[test]
fn a_history_of_pages_that_create_and_update_at_once_keeps_each_rows_created_event() {
    let outcome = |one_by_one: bool| -> PageOutcome {
        ONE_BY_ONE.with(|o| o.set(one_by_one));
        let db = TestDb::new();
        let (store, counts) = history(&db);
        ONE_BY_ONE.with(|o| o.set(false));
        page_outcome(&store, counts)
    };
    LOOKED_UP_AGAIN.with(|n| n.set(0));
    let batched = outcome(false);
    if on_postgres() {
        assert!(
            LOOKED_UP_AGAIN.with(|n| n.get()) > 0,
            "the repeated page missed and was written again"
        );
        let single = outcome(true);
        assert_eq!(batched.0, single.0, "run counts");
        assert_eq!(batched.1, single.1, "rows");
        assert_eq!(batched.2, single.2, "each finding's events");
        assert_eq!(batched.3, single.3, "row order");
    }
}

/// The events of one page, as `(finding id, kind)` in id order.
fn page_events(store: &Store, run: RunId) -> Vec<(i64, String)> {
    let mut stmt = store
        .conn
        .prepare("SELECT finding_id, kind FROM finding_events WHERE run_id = ?1 ORDER BY id")
        .unwrap();
    stmt.query_map(params![run], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// What the change concedes: on PostgreSQL's batched page the `created` events come before
/// the triggers' events of the rows the same statement updated, where SQLite and one
/// finding at a time write them after. Pinned, with each finding's own events in the same
/// order both ways, so that a reader of events across findings in id order would be seen
/// to depend on it (none in `src/` does: `events_of` reads one finding's, the outbox, the
/// counters, the fix pass, `inherit_branch_triage` and retention read sets).
#[test]
fn a_batched_pages_created_events_precede_its_updated_rows_trigger_events() {
    let run_page = |one_by_one: bool| {
        ONE_BY_ONE.with(|o| o.set(one_by_one));
        let (_db, mut store) = temp_store();
        import(&mut store, "shop", &[findings(0..3)], RunEnd::Succeeded);
        let run = store.begin_run(&scope("shop")).unwrap();
        let mut page: Vec<Finding> = (0..3).map(|n| at_severity(n, Severity::Critical)).collect();
        page.extend(findings(3..5));
        let counts = store.upsert_page(run, &page).unwrap();
        store.finish_run(run, RunEnd::Succeeded).unwrap();
        ONE_BY_ONE.with(|o| o.set(false));
        assert_eq!((counts.seen, counts.new, counts.open), (5, 2, 3));
        check_events(&store, "after the page");
        let events = page_events(&store, run);
        let mut per_finding = events.clone();
        per_finding.sort_by_key(|(id, _)| *id); // stable: each finding's in id order
        let kinds: Vec<String> = events.into_iter().map(|(_, k)| k).collect();
        (kinds, per_finding)
    };
    let (batched, batched_per_finding) = run_page(false);
    let (single, single_per_finding) = run_page(true);
    assert_eq!(
        batched_per_finding, single_per_finding,
        "each finding's events"
    );
    let created_first = |kinds: &[String]| kinds.first().map(String::as_str) == Some("created");
    assert!(!created_first(&single), "one at a time: {single:?}");
    assert_eq!(
        created_first(&batched),
        on_postgres(),
        "batched on PostgreSQL only: {batched:?}"
    );
}

/// Two processes importing different scans at once, pages of new rows beside updated ones:
/// the write lock keeps `findings_before` right, so each page's `created` events are its
/// own rows', once each.
#[test]
fn two_processes_importing_at_once_write_each_created_event_once() {
    let db = TestDb::new();
    // Both scans exist before the race, and have rows to update.
    {
        let mut store = db.open();
        import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
        import(&mut store, "billing", &[findings(0..5)], RunEnd::Succeeded);
    }
    std::thread::scope(|s| {
        for scan in ["shop", "billing"] {
            let db = &db;
            s.spawn(move || {
                let mut store = db.open();
                let run = store.begin_run(&scope(scan)).unwrap();
                for p in 0..15usize {
                    let mut page: Vec<Finding> = (0..5)
                        .map(|n| at_severity(n, Severity::ALL[p % 5]))
                        .collect();
                    page.extend(findings(10 + p * 4..14 + p * 4));
                    let c = store.upsert_page(run, &page).unwrap();
                    if p == 0 {
                        assert_eq!((c.seen, c.new), (9, 4), "{scan} page {p}");
                    } else {
                        // The five rows the run already saw are no-ops now.
                        assert_eq!((c.seen, c.new), (4, 4), "{scan} page {p}");
                    }
                }
                let row = store.finish_run(run, RunEnd::Succeeded).unwrap();
                assert_eq!((row.counts.seen, row.counts.new), (65, 60), "{scan}");
            });
        }
    });
    let store = db.open();
    check_events(&store, "after the race");
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 130);
}

/// A store copied (`store copy`, identity sequences set from the copied rows) goes on
/// creating rows with one `created` event each; on PostgreSQL from a SQLite source too.
#[test]
fn a_copied_store_goes_on_writing_one_created_event_per_new_row() {
    let from = TestDb::sqlite();
    {
        let mut store = from.open();
        import(&mut store, "shop", &[findings(0..6)], RunEnd::Succeeded);
        // A retention-like gap at the end of the id range: the largest row goes.
        let last = id_of(&store, &finding(5));
        store
            .conn
            .execute(
                "DELETE FROM finding_events WHERE finding_id = ?1",
                params![last],
            )
            .unwrap();
        store
            .conn
            .execute("DELETE FROM findings WHERE id = ?1", params![last])
            .unwrap();
        store
            .conn
            .execute("UPDATE scans SET present_count = present_count - 1", [])
            .unwrap();
        store
            .conn
            .execute("UPDATE sync_runs SET new = new - 1, seen = seen - 1", [])
            .unwrap();
    }
    let to = TestDb::new();
    copy(&from.location(), &to.location()).unwrap();
    let mut store = to.open();
    let mut page: Vec<Finding> = (0..5).map(|n| at_severity(n, Severity::Critical)).collect();
    page.extend(findings(5..9));
    let run = store.begin_run(&scope("shop")).unwrap();
    let c = store.upsert_page(run, &page).unwrap();
    assert_eq!((c.seen, c.new, c.open), (9, 4, 5));
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    check_events(&store, "after the copy");
    assert_eq!(kinds(&store, "shop", 5), vec!["created"]);
}

/// A page sent again by an adopting process (whose plan knows nothing of the run) with new
/// rows beside the ones already stored: the optimistic statement misses, and its `created`
/// events go with the rolled-back transaction; the page written again has each once.
#[test]
fn a_page_resent_by_an_adopter_after_a_miss_leaves_no_duplicate_created_events() {
    let (db, mut cli) = temp_store();
    let run = cli.begin_run(&scope("shop")).unwrap();
    cli.upsert_page(run, &findings(0..4)).unwrap();
    cli.detach_run(run).unwrap();
    cli.release_owner().unwrap();
    let mut daemon = other_process(&db);
    daemon.adopt_run(run).unwrap().unwrap().unwrap();
    LOOKED_UP_AGAIN.with(|n| n.set(0));
    // New rows first and last, so the statement inserts some before it meets a stored one.
    let mut page = findings(10..12);
    page.extend(findings(0..4));
    page.extend(findings(12..14));
    let c = daemon.upsert_page(run, &page).unwrap();
    assert_eq!((c.seen, c.new, c.open), (4, 4, 0));
    if on_postgres() {
        assert_eq!(LOOKED_UP_AGAIN.with(|n| n.get()), 1, "missed once");
    }
    // And once more, all of it already stored: nothing is created.
    let c = daemon.upsert_page(run, &page).unwrap();
    assert_eq!((c.seen, c.new), (0, 0));
    let row = daemon.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!(
        (row.counts.seen, row.counts.new, row.counts.pages),
        (8, 8, 3)
    );
    check_events(&daemon, "after the resent pages");
    assert_eq!(
        count(
            &daemon,
            "SELECT count(*) FROM finding_events WHERE kind = 'created'"
        ),
        8
    );
}

/// A page listing one identity several times (same sighting twice, a second sighting at
/// other lines) beside updated rows: one row and one `created` event per stored sighting.
#[test]
fn a_page_of_repeated_identities_creates_each_row_once() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..2)], RunEnd::Succeeded);
    let run = store.begin_run(&scope("shop")).unwrap();
    let page = vec![
        at_severity(0, Severity::Critical),
        super::tests::at(3, 10, None),
        super::tests::at(3, 10, None),
        super::tests::at(3, 20, None),
        finding(1),
        super::tests::at(3, 30, None),
    ];
    let c = store.upsert_page(run, &page).unwrap();
    assert_eq!((c.seen, c.new, c.open), (5, 3, 2));
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    check_events(&store, "after the page");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM finding_events WHERE kind = 'created'"
        ),
        5
    );
}
