//! Attacks on the s10 change (schema 9): each scan's `present_count` (its findings in any
//! state but `fixed`), kept by the page import (created present, reopened, returned from
//! `fixed`, fixed by the vendor's word), by the pass and by a branch scope's prune; each
//! run's `listed_present`; and `fix_absent` skipping its pass over the scan's rows when the
//! two agree and the count was checked within a day. The promise under attack: a complete,
//! current run that lacks a present finding fixes it (or marks it `missing` under the
//! guard), and nothing it listed is fixed. Each test runs on both backends, and checks the
//! count against the rows right after the writes that move it (`TestDb`'s drop checks once
//! more at its end; a pass would otherwise hide a page's miscount by counting again).

use super::ingest::{LOOKED_UP_AGAIN, ONE_BY_ONE};
use super::s9_attack_tests::expire;
use super::test_db::{age, on_postgres, present_count_drift, TestDb, RUN_TIMES};
use super::tests::{accept, at, count, finding, findings, id_of, import, other_process, rule};
use super::tests::{fix_passes, present_count, scope, temp_store};
use super::*;
use crate::config::Retention;
use crate::finding::Verdict;

/// The rows of `scan` in any state but `fixed`.
fn present_rows(store: &Store, scan: &str) -> i64 {
    store
        .conn
        .query_row(
            "SELECT count(*) FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = ?1 AND f.state <> 'fixed'",
            params![scan],
            |r| r.get(0),
        )
        .unwrap()
}

/// All the rows of `scan`.
fn rows_of(store: &Store, scan: &str) -> i64 {
    store
        .conn
        .query_row(
            "SELECT count(*) FROM findings f JOIN scans s ON s.id = f.scan_id WHERE s.name = ?1",
            params![scan],
            |r| r.get(0),
        )
        .unwrap()
}

/// `sync_runs.listed_present` of `run`.
pub(super) fn listed_present(store: &Store, run: RunId) -> i64 {
    store
        .conn
        .query_row(
            "SELECT listed_present FROM sync_runs WHERE id = ?1",
            params![run],
            |r| r.get(0),
        )
        .unwrap()
}

/// Asserts every scan's count is its present rows, naming the moment.
#[track_caller]
pub(super) fn no_drift(store: &Store, when: &str) {
    assert_eq!(present_count_drift(store), vec![], "{when}");
}

/// The state of the row of `scan` stored under `fingerprint`, or `None` when there is none.
pub(super) fn state_of(store: &Store, scan: &str, fingerprint: &str) -> Option<String> {
    store
        .conn
        .query_row(
            "SELECT f.state FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = ?1 AND f.fingerprint = ?2",
            params![scan, fingerprint],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
}

/// The state of finding `n` (the first of its identity) in `scan`.
#[track_caller]
fn state(store: &Store, scan: &str, n: usize) -> String {
    state_of(store, scan, &finding(n).fingerprint(0)).expect("the finding is stored")
}

/// The states of findings `range` in `scan`, one word each.
fn states(store: &Store, scan: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| state(store, scan, n)).collect()
}

/// `n` words `word`.
fn all(word: &str, n: usize) -> Vec<String> {
    vec![word.to_string(); n]
}

/// Finding `n` with the vendor's verdict `verdict`.
fn with_verdict(n: usize, verdict: Verdict) -> Finding {
    let mut f = finding(n);
    f.verdict = Some(verdict);
    f
}

/// Finding `n`, resolved at the vendor.
fn resolved(n: usize) -> Finding {
    with_verdict(n, Verdict::Resolved)
}

/// Moves every stored time (runs, events, scans' creation, findings' first and last seen)
/// back by `days`, as if all of it had happened that long ago. Not the scans'
/// `present_checked_at`: those tests are about the count itself, not its age.
fn age_all(store: &Store, days: i64) {
    age(store, days, RUN_TIMES);
    age(store, days, &[("findings", &["first_seen", "last_seen"])]);
}

/// Sets every scan's `present_checked_at` to `t`, or NULL.
fn checked_at(store: &Store, t: Option<chrono::DateTime<chrono::Utc>>) {
    store
        .conn
        .execute(
            "UPDATE scans SET present_checked_at = ?1",
            params![t.map(stamp)],
        )
        .unwrap();
}

/// Sets `scan`'s `present_count` by hand.
fn set_count(store: &Store, scan: &str, n: i64) {
    store
        .conn
        .execute(
            "UPDATE scans SET present_count = ?2 WHERE name = ?1",
            params![scan, n],
        )
        .unwrap();
}

/// Everything older than a day may go.
fn a_day() -> Retention {
    let day = std::time::Duration::from_secs(24 * 3600);
    Retention {
        runs: day,
        events: day,
        notifications: day,
        webhook_deliveries: day,
        branch_scopes: day,
    }
}

/// `scope(scan)` with the mass-fix guard at `guard` (1.0: off).
fn guarded(scan: &str, guard: f64) -> RunScope {
    RunScope {
        fix_guard: guard,
        ..scope(scan)
    }
}

/// A run of `scan` begun by `store`, with `page` stored, then left running by a process
/// that went away (detached, its owner row gone), for another process to adopt.
fn left_running(store: &mut Store, scan: &str, page: &[Finding]) -> RunId {
    let run = store.begin_run(&scope(scan)).unwrap();
    store.upsert_page(run, page).unwrap();
    store.detach_run(run).unwrap();
    store.release_owner().unwrap();
    run
}

/// A run's `fixed` so far (its pages' resolved verdicts), before its end adds to it.
fn fixed_so_far(store: &Store, run: RunId) -> u64 {
    store.run(run).unwrap().unwrap().counts.fixed
}

/// The kinds of the events of finding `n` of `scan`, oldest first.
pub(super) fn kinds(store: &Store, scan: &str, n: usize) -> Vec<String> {
    store
        .events(scan, &finding(n).fingerprint(0))
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// The id of finding `n` of `scan`.
fn id_in(store: &Store, scan: &str, n: usize) -> i64 {
    store
        .resolve_finding(&finding(n).fingerprint(0), Some(scan))
        .unwrap()
}

/// `(seen, new, reopened, fixed, missing)` of a run.
fn tally(run: &RunRow) -> (u64, u64, u64, u64, u64) {
    let c = &run.counts;
    (c.seen, c.new, c.reopened, c.fixed, c.missing)
}

// ---- The scenarios of the first attack (finding_count), for present_count ----

/// A run lists finding 0 with the vendor's "resolved" (its row becomes `fixed`: not
/// present, not in the run's `listed_present`) and findings 1..9, but not 9; the store's
/// times are moved 400 days back and another process prunes with one-day retention, which
/// now deletes row 0 under the running run (a prune deletes only fixed rows). Neither the
/// count nor `listed_present` moves, and the end runs the pass for finding 9.
#[test]
fn a_listed_row_pruned_mid_run_cannot_make_the_end_skip_an_unlisted_row() {
    let (db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let run = store.begin_run(&scope("shop")).unwrap();
    let mut page = vec![resolved(0)];
    page.extend(findings(1..9));
    let counts = store.upsert_page(run, &page).unwrap();
    assert_eq!((counts.seen, counts.fixed), (9, 1));
    assert_eq!(
        (present_count(&store, "shop"), listed_present(&store, run)),
        (9, 8)
    );
    age_all(&store, 400);

    let mut other = other_process(&db);
    let report = other.prune(&a_day()).unwrap();
    assert_eq!(
        report.fixed_findings, 1,
        "row 0, fixed by the page: {report:?}"
    );
    assert_eq!(state_of(&store, "shop", &finding(0).fingerprint(0)), None);
    no_drift(&store, "after the prune");

    let before = fix_passes();
    let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!(end.state, RunState::Succeeded);
    assert_eq!(state(&store, "shop", 9), "fixed", "the listing lacked it");
    assert_eq!(fix_passes(), before + 1, "one row unlisted: the pass runs");
    assert_eq!((end.counts.seen, end.counts.fixed), (9, 2));
    assert_eq!(states(&store, "shop", 1..9), all("open", 8));
    assert_eq!(
        (present_count(&store, "shop"), rows_of(&store, "shop")),
        (8, 9)
    );
}

/// An idle branch scope with a running run (begun long ago, as an adopted run can be) is
/// not dropped under it; the run's end fixes the one finding it lacked. Ended and aged, the
/// scope goes, its rows with it.
#[test]
fn an_idle_branch_scope_with_a_running_run_is_not_dropped_under_it() {
    let (db, mut store) = temp_store();
    import(
        &mut store,
        "shop@feat",
        &[findings(0..10)],
        RunEnd::Succeeded,
    );
    let run = store.begin_run(&scope("shop@feat")).unwrap();
    store.upsert_page(run, &findings(0..5)).unwrap();
    age_all(&store, 400);

    let mut other = other_process(&db);
    let report = other.prune(&a_day()).unwrap();
    assert_eq!(
        (
            report.branch_scopes,
            report.branch_findings,
            report.fixed_findings
        ),
        (0, 0, 0),
        "{report:?}"
    );
    store.upsert_page(run, &findings(5..9)).unwrap();
    let before = fix_passes();
    let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!((end.counts.seen, end.counts.fixed), (9, 1));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&store, "shop@feat", 9), "fixed");
    assert_eq!(present_count(&store, "shop@feat"), 9);

    age_all(&store, 400);
    let report = other.prune(&a_day()).unwrap();
    assert_eq!(
        (
            report.branch_scopes,
            report.fixed_findings,
            report.branch_findings
        ),
        (1, 1, 9),
        "finding 9 as an old fixed one, the rest with the scope"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM scans"), 0);
}

/// Rows the vendor calls resolved are created `fixed` and are no present rows: a run that
/// lists one of them and every open row but one has listed as many rows as the scan has
/// present, yet `listed_present` (the rows it left present) is one short, so its end fixes
/// that one. A run listing every present row skips the pass whatever fixed rows it lists
/// too, and so does one lacking only a fixed row.
#[test]
fn rows_a_vendor_resolved_are_not_present_and_never_stand_in_for_an_unlisted_open_row() {
    let (_db, mut store) = temp_store();
    let first = [findings(0..10), vec![resolved(10), resolved(11)]].concat();
    let run = import(&mut store, "shop", &[first], RunEnd::Succeeded);
    assert_eq!((run.counts.seen, run.counts.new), (12, 10));
    assert_eq!(present_count(&store, "shop"), 10);
    assert_eq!(states(&store, "shop", 10..12), all("fixed", 2));

    // As many rows as the scan has present (10), one of them a fixed one.
    let before = fix_passes();
    let run = import(
        &mut store,
        "shop",
        &[findings(0..9), vec![resolved(10)]],
        RunEnd::Succeeded,
    );
    assert_eq!((run.counts.seen, run.counts.fixed), (10, 1));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&store, "shop", 9), "fixed");
    assert_eq!(present_count(&store, "shop"), 9);

    // Every row: no pass, nothing fixed by the end.
    let run = import(
        &mut store,
        "shop",
        &[findings(0..10), vec![resolved(10), resolved(11)]],
        RunEnd::Succeeded,
    );
    assert_eq!(tally(&run), (12, 0, 1, 0, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&store, "shop", 9), "reopened");
    assert_eq!(present_count(&store, "shop"), 10);

    // Every row, finding 0 resolved now and 10, 11 active again: the page fixes 0.
    let mut listing = vec![resolved(0)];
    listing.extend(findings(1..12));
    let run = import(&mut store, "shop", &[listing], RunEnd::Succeeded);
    assert_eq!(tally(&run), (12, 0, 2, 1, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&store, "shop", 0), "fixed");
    assert_eq!(present_count(&store, "shop"), 11);

    // Lacking only the fixed row: nothing present is absent, no pass.
    let run = import(&mut store, "shop", &[findings(1..12)], RunEnd::Succeeded);
    assert_eq!((run.counts.seen, run.counts.fixed), (11, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&store, "shop", 0), "fixed");
    assert_eq!(present_count(&store, "shop"), 11);
}

/// A run adopted after a newer run of its scan succeeded is stale: its pages create rows
/// already `fixed` (not present: the count does not move) and its end runs no pass. The
/// next complete run lists those rows (reopened: counted) and every open row but one: that
/// one is fixed. A run listing all rows afterwards skips the pass.
#[test]
fn a_stale_run_adopted_late_creates_fixed_rows_the_count_leaves_out() {
    let (db, mut first) = temp_store();
    let mut second = other_process(&db);
    import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let old = left_running(&mut first, "shop", &findings(0..3));
    import(&mut second, "shop", &[findings(0..10)], RunEnd::Succeeded);

    second.adopt_run(old).unwrap().unwrap().unwrap();
    let counts = second.upsert_page(old, &findings(8..12)).unwrap();
    assert_eq!(
        (counts.seen, counts.new),
        (2, 0),
        "8, 9 are the newer run's"
    );
    assert_eq!(
        listed_present(&second, old),
        3,
        "0..3; 10, 11 came in fixed"
    );
    no_drift(&second, "after the stale page");
    let before = fix_passes();
    let end = second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(end.state, RunState::Succeeded);
    assert_eq!((end.counts.fixed, end.counts.missing), (0, 0));
    assert_eq!(fix_passes(), before, "a stale run has no pass");
    assert_eq!(states(&second, "shop", 10..12), all("fixed", 2));
    assert_eq!(present_count(&second, "shop"), 10);

    let run = import(
        &mut second,
        "shop",
        &[findings(0..9), findings(10..12)],
        RunEnd::Succeeded,
    );
    assert_eq!(tally(&run), (11, 0, 2, 1, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&second, "shop", 9), "fixed");
    assert_eq!(states(&second, "shop", 10..12), all("reopened", 2));
    assert_eq!(present_count(&second, "shop"), 11);

    let run = import(&mut second, "shop", &[findings(0..12)], RunEnd::Succeeded);
    assert_eq!((run.counts.seen, run.counts.fixed), (12, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(present_count(&second, "shop"), 12);
}

/// An older run adopted after a newer run that stored a page failed: its listing is no
/// longer the scan's newest word (where two findings share an identity, a row the newer run
/// stored could stand in for a row of the older listing, see `RunContext::overtaken_by`), so it
/// stores no more pages, its end fixes nothing and runs no pass; the next complete run
/// fixes what it lacks.
#[test]
fn an_older_run_adopted_after_a_newer_run_failed_fixes_nothing_and_the_next_run_does() {
    let (db, mut first) = temp_store();
    let mut second = other_process(&db);
    import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let old = left_running(&mut first, "shop", &findings(0..3));
    let newer = second.begin_run(&scope("shop")).unwrap();
    second
        .upsert_page(newer, &[findings(3..8), vec![finding(10)]].concat())
        .unwrap();
    second
        .finish_run(newer, RunEnd::Failed("vendor down".into()))
        .unwrap();
    assert_eq!(present_count(&second, "shop"), 11);

    second.adopt_run(old).unwrap().unwrap().unwrap();
    let counts = second.upsert_page(old, &findings(3..9)).unwrap();
    assert_eq!(counts, RunCounts::default(), "overtaken: nothing stored");
    assert_eq!(listed_present(&second, old), 3);
    let before = fix_passes();
    let end = second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(end.state, RunState::Interrupted, "overtaken");
    assert_eq!(tally(&end), (3, 0, 0, 0, 0));
    assert_eq!(fix_passes(), before, "no pass");
    assert_eq!(states(&second, "shop", 0..8), all("open", 8));
    assert_eq!(states(&second, "shop", 8..11), all("new", 3));
    assert_eq!(present_count(&second, "shop"), 11);

    // The next complete run lacks 9 (as the old one did) and the failed run's 10: fixed.
    let run = import(&mut second, "shop", &[findings(0..9)], RunEnd::Succeeded);
    assert_eq!(tally(&run), (9, 0, 0, 2, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(states(&second, "shop", 9..11), all("fixed", 2));
    assert_eq!(present_count(&second, "shop"), 9);
}

/// A run whose process died after a page is adopted by another process, which sends that
/// page again (on PostgreSQL its plan, which knows nothing of the run's rows, misses: the
/// whole page's transaction is rolled back and written again, looked up) and the rest. Each
/// row counts once in `listed_present`, written by the two processes: a listing lacking one
/// row runs the pass and fixes it, one lacking none skips it. Batched and one finding at a
/// time on PostgreSQL.
#[test]
fn pages_sent_again_by_the_process_that_adopted_the_run_count_each_row_once() {
    for one_by_one in [false, true] {
        ONE_BY_ONE.with(|o| o.set(one_by_one));
        let (db, mut first) = temp_store();
        let mut second = other_process(&db);
        import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
        for (last, fixed, count_after) in [(9, 1, 9), (10, 0, 10)] {
            let run = first.begin_run(&scope("shop")).unwrap();
            first.upsert_page(run, &findings(0..5)).unwrap();
            expire(&second, &first.owner().id);
            second.adopt_run(run).unwrap().unwrap().unwrap();
            let looked_up = LOOKED_UP_AGAIN.with(|n| n.get());
            assert_eq!(second.upsert_page(run, &findings(0..5)).unwrap().seen, 0);
            if on_postgres() && !one_by_one {
                assert_eq!(LOOKED_UP_AGAIN.with(|n| n.get()), looked_up + 1);
            }
            assert_eq!(listed_present(&second, run), 5);
            assert!(matches!(
                first.upsert_page(run, &findings(5..10)),
                Err(StoreError::LeaseLost(_))
            ));
            second.upsert_page(run, &findings(5..last)).unwrap();
            assert_eq!(listed_present(&second, run), last as i64);
            no_drift(&second, "after the pages");
            let before = fix_passes();
            let end = second.finish_run(run, RunEnd::Succeeded).unwrap();
            assert_eq!(
                (end.counts.seen, end.counts.fixed),
                (last as u64, fixed),
                "one by one: {one_by_one}"
            );
            assert_eq!(fix_passes(), before + fixed as usize);
            assert_eq!(present_count(&second, "shop"), count_after);
        }
        // The second round reopened 9.
        assert_eq!(state(&second, "shop", 9), "reopened");
        ONE_BY_ONE.with(|o| o.set(false));
    }
}

/// Several sightings of one identity are several rows (occurrences), whichever order a run
/// lists them in; a sighting listed twice counts once. A run listing some sightings of two
/// identities, one of them twice, lacks the others: they are fixed. Listing them all again
/// lists every present row: no pass.
#[test]
fn every_sighting_of_one_identity_is_a_row_the_run_must_list() {
    let (_db, mut store) = temp_store();
    let everything = vec![
        at(1, 10, None),
        at(1, 20, None),
        at(1, 30, None),
        at(4, 10, Some("v-a")),
        at(4, 10, Some("v-b")),
        finding(2),
    ];
    import(
        &mut store,
        "shop",
        std::slice::from_ref(&everything),
        RunEnd::Succeeded,
    );
    assert_eq!(present_count(&store, "shop"), 6);
    let before = fix_passes();
    let run = import(
        &mut store,
        "shop",
        &[
            vec![at(1, 30, None), at(4, 10, Some("v-b")), finding(2)],
            vec![at(1, 20, None), at(1, 30, None), at(4, 10, Some("v-b"))],
        ],
        RunEnd::Succeeded,
    );
    assert_eq!((run.counts.seen, run.counts.fixed), (4, 2));
    assert_eq!(fix_passes(), before + 1);
    let fixed: Vec<Option<String>> = [at(1, 0, None).fingerprint(2), finding(4).fingerprint(1)]
        .iter()
        .map(|fp| state_of(&store, "shop", fp))
        .collect();
    assert_eq!(fixed, vec![Some("fixed".to_string()); 2]);
    assert_eq!(present_count(&store, "shop"), 4);

    let run = import(&mut store, "shop", &[everything], RunEnd::Succeeded);
    assert_eq!(tally(&run), (6, 0, 2, 0, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(present_count(&store, "shop"), 6);
}

/// Rows a suppression rule or a vendor verdict triaged at creation are present like any
/// other: a run lacking one of them runs the pass and fixes it; listed again, each returns
/// to its triage (a `returned` event from `fixed`, which the page's count takes in), so a
/// run listing all of them again skips the pass.
#[test]
fn suppressed_and_vendor_triaged_rows_are_fixed_when_unlisted_and_counted_when_they_return() {
    let (_db, mut store) = temp_store();
    store.set_suppress_rules(vec![rule("fixtures", "Problem 3")]);
    let listing = |without: usize| -> Vec<Finding> {
        (0..6)
            .filter(|n| *n != without)
            .map(|n| match n {
                4 => with_verdict(4, Verdict::Accepted),
                n => finding(n),
            })
            .collect()
    };
    import(&mut store, "shop", &[listing(99)], RunEnd::Succeeded);
    assert_eq!(present_count(&store, "shop"), 6);
    assert_eq!(
        (state(&store, "shop", 3), state(&store, "shop", 4)),
        ("false_positive".into(), "accepted".into())
    );
    let before = fix_passes();
    for (without, passes) in [(3, 1), (4, 2)] {
        let run = store.begin_run(&scope("shop")).unwrap();
        store.upsert_page(run, &listing(without)).unwrap();
        no_drift(&store, &format!("after the page without {without}"));
        let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
        assert_eq!(
            (end.counts.seen, end.counts.fixed),
            (5, 1),
            "without {without}"
        );
        assert_eq!(fix_passes(), before + passes);
        assert_eq!(state(&store, "shop", without), "fixed");
        assert_eq!(present_count(&store, "shop"), 5);
    }
    assert_eq!(kinds(&store, "shop", 3).last().unwrap(), "returned");
    let run = store.begin_run(&scope("shop")).unwrap();
    store.upsert_page(run, &listing(99)).unwrap();
    no_drift(&store, "after 4 returned");
    let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!((end.counts.seen, end.counts.fixed), (6, 0));
    assert_eq!(fix_passes(), before + 2);
    assert_eq!(
        (state(&store, "shop", 3), state(&store, "shop", 4)),
        ("false_positive".into(), "accepted".into())
    );
    assert_eq!(kinds(&store, "shop", 4).last().unwrap(), "returned");
    assert_eq!(present_count(&store, "shop"), 6);
}

/// A branch scope (`shop@feat`) and another scan (`other`) hold rows with the same
/// fingerprints as `shop`'s: each scan counts only its own. A branch row inherits the
/// scan's triage at creation (counted present) and is still fixed when the branch's
/// complete run lacks it; a run of `shop` listing every present row of `shop` skips its
/// pass whatever the others hold, and one listing rows only the others had creates them
/// and fixes the one it lacked.
#[test]
fn a_branch_scope_and_another_scan_with_the_same_findings_count_only_their_own_rows() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    let id = id_of(&store, &finding(0));
    store.triage(id, &accept(None)).unwrap();
    import(&mut store, "other", &[findings(0..8)], RunEnd::Succeeded);
    import(
        &mut store,
        "shop@feat",
        &[findings(0..6)],
        RunEnd::Succeeded,
    );
    assert_eq!(state(&store, "shop@feat", 0), "accepted", "inherited");
    let counts = |store: &Store| -> Vec<i64> {
        ["shop", "other", "shop@feat"]
            .iter()
            .map(|s| present_count(store, s))
            .collect()
    };
    assert_eq!(counts(&store), [5, 8, 6]);

    let before = fix_passes();
    let run = import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    assert_eq!((run.counts.seen, run.counts.fixed), (5, 0));
    assert_eq!(fix_passes(), before);

    let run = import(
        &mut store,
        "shop@feat",
        &[findings(1..6)],
        RunEnd::Succeeded,
    );
    assert_eq!((run.counts.seen, run.counts.fixed), (5, 1));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&store, "shop@feat", 0), "fixed");
    assert_eq!(state(&store, "shop", 0), "accepted");

    let run = import(
        &mut store,
        "shop",
        &[findings(0..4), findings(5..8)],
        RunEnd::Succeeded,
    );
    assert_eq!(tally(&run), (7, 3, 0, 1, 0));
    assert_eq!(fix_passes(), before + 2);
    assert_eq!(state(&store, "shop", 4), "fixed");
    assert_eq!(state(&store, "other", 4), "new");
    assert_eq!(counts(&store), [7, 8, 5]);
}

/// The mass-fix guard: rows it holds as `missing` are present. A run listing all rows
/// brings them back (`returned` from `missing`: no change to the count) and skips the
/// pass; a run lacking them twice fixes them on the second absence (the pass runs both
/// times).
#[test]
fn the_guards_missing_rows_are_present_until_a_run_lists_or_fixes_them() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let before = fix_passes();
    let run = import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    assert_eq!((run.counts.fixed, run.counts.missing), (0, 25));
    assert_eq!(states(&store, "shop", 5..30), all("missing", 25));
    assert_eq!(present_count(&store, "shop"), 30);

    let run = import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    assert_eq!(tally(&run), (30, 0, 0, 0, 0));
    assert_eq!(fix_passes(), before + 1, "every row listed: no pass");
    assert_eq!(states(&store, "shop", 5..30), all("open", 25));

    for (fixed, missing, word, left) in [(0, 25, "missing", 30), (25, 0, "fixed", 5)] {
        let run = import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
        assert_eq!((run.counts.fixed, run.counts.missing), (fixed, missing));
        assert_eq!(states(&store, "shop", 5..30), all(word, 25));
        assert_eq!(present_count(&store, "shop"), left);
    }
    assert_eq!(fix_passes(), before + 3);
    let run = import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    assert_eq!((run.counts.reopened, run.counts.fixed), (25, 0));
    assert_eq!(fix_passes(), before + 3);
    assert_eq!(present_count(&store, "shop"), 30);
}

/// A run whose lease expired and the run that took the scan over: the latter runs the pass
/// for the one row it lacks and fixes it; the former stores and fixes nothing more (its
/// end is `interrupted`, no pass).
#[test]
fn a_run_that_lost_its_lease_fixes_nothing_and_the_one_that_took_over_fixes_right() {
    let (db, mut first) = temp_store();
    let mut second = other_process(&db);
    import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let lost = first.begin_run(&scope("shop")).unwrap();
    first.upsert_page(lost, &findings(0..5)).unwrap();
    expire(&second, &first.owner().id);

    let before = fix_passes();
    let run = import(&mut second, "shop", &[findings(0..9)], RunEnd::Succeeded);
    assert_eq!((run.counts.seen, run.counts.fixed), (9, 1));
    assert_eq!(fix_passes(), before + 1);
    assert!(matches!(
        first.upsert_page(lost, &findings(5..10)),
        Err(StoreError::LeaseLost(_))
    ));
    let end = first.finish_run(lost, RunEnd::Succeeded).unwrap();
    assert_eq!((end.state, end.counts.fixed), (RunState::Interrupted, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&first, "shop", 9), "fixed");
    assert_eq!(present_count(&first, "shop"), 9);
}

/// A queued run whose turn comes after a newer run goes on as a new run: that run's
/// `listed_present` starts from nothing, and lacking one row it runs the pass and fixes it.
#[test]
fn a_queued_run_that_was_overtaken_goes_on_as_a_run_that_counts_from_zero() {
    let (db, mut first) = temp_store();
    let mut second = other_process(&db);
    import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let queued = first.begin_queued_run(&scope("shop")).unwrap();
    import(&mut second, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let (claim, next) = first.claim_queued_run("shop", queued).unwrap();
    assert_eq!(claim, ScanClaim::Claimed);
    assert_ne!(next, queued);
    first.upsert_page(next, &findings(0..9)).unwrap();
    assert_eq!(listed_present(&first, next), 9);
    let before = fix_passes();
    let end = first.finish_run(next, RunEnd::Succeeded).unwrap();
    assert_eq!((end.counts.seen, end.counts.fixed), (9, 1));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&first, "shop", 9), "fixed");
    assert_eq!(
        first.run(queued).unwrap().unwrap().state,
        RunState::Interrupted
    );
    assert_eq!(present_count(&first, "shop"), 9);
}

/// A page rolled back half way (the process died before its commit) leaves neither its
/// rows, nor the count, nor the run's `seen` and `listed_present`: the retry and the rest
/// of the listing, lacking one row, reach neither and the end fixes it.
#[test]
fn a_page_rolled_back_half_way_leaves_the_count_and_listed_present_as_they_were() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let run = store.begin_run(&scope("shop")).unwrap();
    store.upsert_page(run, &findings(0..5)).unwrap();
    {
        let owner = store.owner.clone();
        let tx = store.conn.write_transaction().unwrap();
        let ctx = running_context(&tx, &owner, run).unwrap();
        let counts = upsert_page_in(
            &tx,
            &ctx,
            run,
            &findings(5..15),
            &[],
            &mut Default::default(),
        )
        .unwrap()
        .expect("a page of distinct findings is written as planned");
        assert_eq!((counts.seen, counts.new), (10, 5));
        // Dropped here, uncommitted.
    }
    assert_eq!(
        (present_count(&store, "shop"), rows_of(&store, "shop")),
        (10, 10)
    );
    assert_eq!(store.run(run).unwrap().unwrap().counts.seen, 5);
    assert_eq!(listed_present(&store, run), 5);
    store.upsert_page(run, &findings(5..9)).unwrap();
    let before = fix_passes();
    let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!((end.counts.seen, end.counts.fixed), (9, 1));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&store, "shop", 9), "fixed");
    assert_eq!(present_count(&store, "shop"), 9);
}

/// The prune of old fixed findings takes a batch across scans (ids interleaved: `shop`,
/// then `other`, then `shop` again), a scan with a running run included (the rule that
/// kept those is gone): fixed rows are no present ones, so no scan's count moves. The
/// running run then lists rows the prune took (created again, counted) and the present
/// ones: nothing present is absent, no pass.
#[test]
fn a_prune_batch_across_scans_leaves_every_count_as_it_was() {
    let (db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..300)], RunEnd::Succeeded);
    import(&mut store, "other", &[findings(0..300)], RunEnd::Succeeded);
    import(&mut store, "shop", &[findings(0..400)], RunEnd::Succeeded);
    import(&mut store, "busy", &[findings(0..50)], RunEnd::Succeeded);
    for (scan, kept) in [("shop", 50), ("other", 30), ("busy", 10)] {
        let run = store.begin_run(&guarded(scan, 1.0)).unwrap();
        store.upsert_page(run, &findings(0..kept)).unwrap();
        let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
        assert_eq!(
            end.counts.fixed as i64,
            rows_of(&store, scan) - kept as i64,
            "{scan}"
        );
    }
    let counts = |store: &Store| -> Vec<i64> {
        ["shop", "other", "busy"]
            .iter()
            .map(|s| present_count(store, s))
            .collect()
    };
    assert_eq!(counts(&store), [50, 30, 10]);
    age_all(&store, 400);
    let busy = store.begin_run(&scope("busy")).unwrap();

    let mut other = other_process(&db);
    let step = other.prune_step(&a_day()).unwrap();
    assert_eq!(step.fixed_findings, super::retention::BATCH as u64);
    no_drift(&store, "after the first step");
    loop {
        let step = other.prune_step(&a_day()).unwrap();
        no_drift(&store, "after a step");
        if step.is_empty() {
            break;
        }
    }
    assert_eq!(counts(&store), [50, 30, 10]);
    assert_eq!(
        ["shop", "other", "busy"].map(|s| rows_of(&store, s)),
        [50, 30, 10]
    );

    let counts_page = store.upsert_page(busy, &findings(0..25)).unwrap();
    assert_eq!((counts_page.new, counts_page.reopened), (15, 0));
    let before = fix_passes();
    let end = store.finish_run(busy, RunEnd::Succeeded).unwrap();
    assert_eq!((end.counts.seen, end.counts.fixed), (25, 0));
    assert_eq!(fix_passes(), before);
    assert_eq!(present_count(&store, "busy"), 25);
}

/// An idle branch scope is dropped a batch at a time; after each step its count is its
/// present rows (the step takes those it deletes, not the fixed ones among them: rows a
/// person triaged, which the prune of old fixed rows keeps). A run begun once some of its
/// rows are gone (the scope is no longer idle) creates them again, brings the fixed ones
/// back to their triage and, lacking one of those left, fixes it.
#[test]
fn an_idle_branch_scope_dropped_step_by_step_keeps_its_count_and_a_run_begun_half_way_fixes_right()
{
    let (db, mut store) = temp_store();
    import(
        &mut store,
        "shop@feat",
        &[findings(0..600)],
        RunEnd::Succeeded,
    );
    // Findings 0..5 and 595..600 accepted, then fixed: the first batch of the drop takes
    // five fixed rows and 495 present ones; five fixed rows stay among the 100 left.
    for n in (0..5).chain(595..600) {
        let id = id_in(&store, "shop@feat", n);
        store.triage(id, &accept(None)).unwrap();
    }
    let run = store.begin_run(&guarded("shop@feat", 1.0)).unwrap();
    store.upsert_page(run, &findings(5..595)).unwrap();
    let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!(end.counts.fixed, 10);
    assert_eq!(present_count(&store, "shop@feat"), 590);
    age_all(&store, 400);
    let mut other = other_process(&db);
    for _ in 0..10 {
        let step = other.prune_step(&a_day()).unwrap();
        no_drift(&store, "after a prune step");
        assert_eq!(step.fixed_findings, 0, "triaged: kept by that prune");
        if rows_of(&store, "shop@feat") < 600 {
            assert_eq!(step.branch_findings, 500, "{step:?}");
            break;
        }
    }
    assert_eq!(rows_of(&store, "shop@feat"), 100);
    assert_eq!(present_count(&store, "shop@feat"), 95);
    // One of the present findings left.
    let left: Vec<String> = {
        let mut stmt = store
            .conn
            .prepare("SELECT fingerprint FROM findings WHERE state <> 'fixed' ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let lacking = (0..600)
        .find(|n| finding(*n).fingerprint(0) == left[50])
        .unwrap();
    let listing: Vec<Finding> = (0..600).filter(|n| *n != lacking).map(finding).collect();
    let before = fix_passes();
    let run = import(&mut store, "shop@feat", &[listing], RunEnd::Succeeded);
    assert_eq!(tally(&run), (599, 500, 0, 1, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&store, "shop@feat", lacking), "fixed");
    assert_eq!(states(&store, "shop@feat", 595..600), all("accepted", 5));
    assert_eq!(present_count(&store, "shop@feat"), 599);
}

/// `store copy` taken while a run is between pages (its process gone): the copy holds each
/// scan's count, when it was checked, and the run's `listed_present`; the run adopted in
/// the copy, lacking one row, fixes it there, and a run listing every row skips the pass.
/// Both ways between the backends.
#[test]
fn a_copy_taken_mid_run_keeps_the_counts_and_the_run_adopted_in_the_copy_fixes_right() {
    for (from, to) in [
        (TestDb::new(), TestDb::sqlite()),
        (TestDb::sqlite(), TestDb::new()),
    ] {
        let (run, checked) = {
            let mut store = from.open();
            import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
            import(&mut store, "shop", &[findings(0..9)], RunEnd::Succeeded);
            import(&mut store, "api", &[findings(0..4)], RunEnd::Succeeded);
            let run = left_running(&mut store, "shop", &findings(0..5));
            let checked: String = store
                .conn
                .query_row(
                    "SELECT present_checked_at FROM scans WHERE name = 'shop'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            (run, checked)
        };
        super::copy(&from.location(), &to.location()).unwrap();
        let mut copied = to.open();
        assert_eq!(
            (
                present_count(&copied, "shop"),
                present_count(&copied, "api"),
                listed_present(&copied, run)
            ),
            (9, 4, 5)
        );
        let copied_checked: String = copied
            .conn
            .query_row(
                "SELECT present_checked_at FROM scans WHERE name = 'shop'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(copied_checked, checked);
        copied.adopt_run(run).unwrap().unwrap().unwrap();
        copied.upsert_page(run, &findings(5..8)).unwrap();
        let before = fix_passes();
        let end = copied.finish_run(run, RunEnd::Succeeded).unwrap();
        assert_eq!((end.counts.seen, end.counts.fixed), (8, 1));
        assert_eq!(fix_passes(), before + 1);
        assert_eq!(state(&copied, "shop", 8), "fixed");
        let end = import(&mut copied, "shop", &[findings(0..10)], RunEnd::Succeeded);
        assert_eq!(tally(&end), (10, 0, 2, 0, 0));
        assert_eq!(fix_passes(), before + 1);
        assert_eq!(present_count(&copied, "shop"), 10);
    }
}

/// The columns of `table`, sorted.
fn columns_of(conn: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut names: Vec<String> = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names.sort();
    names
}

/// A store at the schema before 9 (SQLite 7, PostgreSQL 8) with present and fixed rows in
/// several scans and a run between pages (its process gone): the migration counts each
/// scan's present rows and stamps the count; the run's `listed_present` starts at 0 (its
/// pages before the migration are not in it), so its end, adopted, runs the pass and fixes
/// exactly what it lacked. A run listing every row then skips the pass.
#[test]
fn a_store_from_before_schema_9_with_a_running_run_migrates_to_counts_that_skip_and_fix_right() {
    let db = TestDb::new();
    let run = {
        let mut store = db.open();
        import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
        import(&mut store, "shop", &[findings(0..8)], RunEnd::Succeeded);
        import(&mut store, "api", &[findings(0..3)], RunEnd::Succeeded);
        let run = left_running(&mut store, "shop", &findings(0..5));
        let back = if on_postgres() {
            "ALTER TABLE scans DROP COLUMN present_count, DROP COLUMN present_checked_at;
             ALTER TABLE sync_runs DROP COLUMN listed_present;
             DELETE FROM scansync_schema;
             INSERT INTO scansync_schema (version) VALUES (8);"
        } else {
            "ALTER TABLE scans DROP COLUMN present_count;
             ALTER TABLE scans DROP COLUMN present_checked_at;
             ALTER TABLE sync_runs DROP COLUMN listed_present;
             PRAGMA user_version = 7;"
        };
        store.conn.execute_batch(back).unwrap();
        run
    };
    if !on_postgres() {
        // The file now has a version-7 store's tables, column for column.
        let dir = tempfile::tempdir().unwrap();
        let v7 = rusqlite::Connection::open(dir.path().join("v7.db")).unwrap();
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= 7) {
            v7.execute_batch(sql).unwrap();
            v7.pragma_update(None, "user_version", version).unwrap();
        }
        let StoreLocation::Sqlite(path) = db.location() else {
            unreachable!("a SQLite store")
        };
        let ours = rusqlite::Connection::open(path).unwrap();
        for table in ["scans", "sync_runs", "findings"] {
            assert_eq!(columns_of(&ours, table), columns_of(&v7, table), "{table}");
        }
    }
    let mut store = db.open();
    assert_eq!(
        (present_count(&store, "shop"), present_count(&store, "api")),
        (8, 3)
    );
    assert_eq!(listed_present(&store, run), 0);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM scans WHERE present_checked_at IS NULL"
        ),
        0
    );
    store.adopt_run(run).unwrap().unwrap().unwrap();
    store.upsert_page(run, &findings(5..7)).unwrap();
    assert_eq!(listed_present(&store, run), 2);
    let before = fix_passes();
    let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!((end.counts.seen, end.counts.fixed), (7, 1));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(state(&store, "shop", 7), "fixed");
    assert_eq!(present_count(&store, "shop"), 7);
    let run = import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    assert_eq!(tally(&run), (10, 0, 3, 0, 0));
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(present_count(&store, "shop"), 10);
    let run = import(&mut store, "api", &[findings(0..2)], RunEnd::Succeeded);
    assert_eq!(run.counts.fixed, 1);
    assert_eq!(fix_passes(), before + 2);
}

/// A page as a node still on schema 8 imports it: the same upserts, `created` events and
/// run counters, but neither the scan's `present_count` nor the run's `listed_present`
/// (that binary knows no such columns). README allows such a node: "one that was already
/// running when another node migrated keeps the schema it read at its start".
fn page_of_a_schema_8_node(store: &mut Store, run: RunId, page: &[Finding]) {
    let owner = store.owner.clone();
    let tx = store.conn.write_transaction().unwrap();
    let ctx = running_context(&tx, &owner, run).unwrap();
    assert!(ctx.holds_lease);
    let at = now();
    let mut seen = 0;
    {
        let mut stmt = tx.prepare_cached(&UPSERT_FINDING_SQL).unwrap();
        for finding in page {
            let up = UpsertContext {
                scan_id: ctx.scan_id,
                run,
                at: &at,
                stale: ctx.newer_success,
                rule: None,
            };
            seen += upsert_finding(&tx, &mut stmt, up, finding)
                .unwrap()
                .is_some() as i64;
        }
    }
    tx.execute(
        "INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
         SELECT id, last_run_id, 'created', NULL, state, first_seen
         FROM findings WHERE id > ?1 ORDER BY id",
        params![ctx.findings_before],
    )
    .unwrap();
    tx.execute(
        "UPDATE sync_runs SET seen = seen + ?2, pages = pages + 1 WHERE id = ?1",
        params![run, seen],
    )
    .unwrap();
    tx.commit().unwrap();
}

/// Several daemons share a store, and one of them, started on the previous release, is
/// still running when another node's start migrates the store to schema 9. Its run
/// creates finding 10 (and, in the second round, reopens fixed finding 9) and fails: the
/// row is present, but `shop`'s count stays one short. The next complete run on an
/// upgraded node lacks one present finding and lists as many as the short count: the
/// count is taken at its word while it is less than a day old (the lacked finding stays
/// open, the README's day at most), and once it is older the same listing reads the rows,
/// fixes the finding and counts again.
#[test]
fn rows_a_node_still_on_schema_8_writes_hold_a_fix_up_until_the_count_is_a_day_old() {
    let (db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let mut old_node = other_process(&db);

    // Round 1: the old node creates 10; the listing lacks 9.
    let run = old_node.begin_run(&scope("shop")).unwrap();
    page_of_a_schema_8_node(&mut old_node, run, &[finding(10)]);
    old_node
        .finish_run(run, RunEnd::Failed("vendor down".into()))
        .unwrap();
    assert_eq!(
        (present_count(&store, "shop"), present_rows(&store, "shop")),
        (10, 11)
    );
    let listing = [findings(0..9), vec![finding(10)]].concat();
    let before = fix_passes();
    let run = import(
        &mut store,
        "shop",
        std::slice::from_ref(&listing),
        RunEnd::Succeeded,
    );
    assert_eq!(
        (state(&store, "shop", 9), run.counts.fixed, fix_passes()),
        ("new".to_string(), 0, before),
        "a count checked less than a day ago is taken at its word"
    );
    age(&store, 2, &[("scans", &["present_checked_at"])]);
    let run = import(&mut store, "shop", &[listing], RunEnd::Succeeded);
    assert_eq!(
        (state(&store, "shop", 9), run.counts.fixed, fix_passes()),
        ("fixed".to_string(), 1, before + 1),
        "a day later the complete listing fixes what it lacked"
    );
    no_drift(&store, "after the pass");
    assert_eq!(present_count(&store, "shop"), 10);

    // Round 2: the old node reopens 9 (fixed); the listing lacks 8.
    let run = old_node.begin_run(&scope("shop")).unwrap();
    page_of_a_schema_8_node(&mut old_node, run, &[finding(9)]);
    old_node
        .finish_run(run, RunEnd::Failed("vendor down".into()))
        .unwrap();
    assert_eq!(state(&store, "shop", 9), "reopened");
    assert_eq!(
        (present_count(&store, "shop"), present_rows(&store, "shop")),
        (10, 11)
    );
    let listing: Vec<Finding> = (0..11).filter(|n| *n != 8).map(finding).collect();
    let run = import(
        &mut store,
        "shop",
        std::slice::from_ref(&listing),
        RunEnd::Succeeded,
    );
    assert_eq!(
        (state(&store, "shop", 8), run.counts.fixed, fix_passes()),
        ("open".to_string(), 0, before + 1)
    );
    age(&store, 2, &[("scans", &["present_checked_at"])]);
    let run = import(&mut store, "shop", &[listing], RunEnd::Succeeded);
    assert_eq!(
        (state(&store, "shop", 8), run.counts.fixed, fix_passes()),
        ("fixed".to_string(), 1, before + 2)
    );
    assert_eq!(present_count(&store, "shop"), 10);
}

/// One run of [`random_runs_never_leave_a_present_row_open_that_a_complete_listing_lacked`].
#[derive(Debug, Clone)]
struct Plan {
    /// `shop@feat` rather than `shop`.
    branch: bool,
    pages: Vec<Vec<Finding>>,
    /// A last page with every sighting the runs of the scan have listed so far (so that
    /// the run often lists every present row, and its end skips the pass), less the one at
    /// this index, if any (so that it often lacks exactly one).
    list_known: Option<Option<usize>>,
    /// The first page sent again at the end.
    resend_first: bool,
    failed: bool,
    /// After the first page the process dies and another adopts the run.
    handover: bool,
    /// After the first page another process moves every time 400 days back and prunes.
    prune_mid: bool,
    /// The mass-fix guard at 0.5 (else off).
    guard: bool,
    /// Begun by a third process, which detaches it after its first page and goes; adopted
    /// and ended after the next run (late: stale when that run of its scan succeeded).
    leave: bool,
}

/// What the random runs went through, over all cases.
#[derive(Default)]
struct Tally {
    /// Complete, current runs whose end skipped the pass.
    skipped: usize,
    /// Complete, current runs that lacked present rows (the pass had to run).
    lacking: usize,
}

/// Ends `run` through `store` and checks the end against the rows as they were just
/// before it: a complete run (not stale) fixes or marks missing exactly the present rows
/// of its scan that it did not list (`last_run_id < run`), and ran the pass if there were
/// any; a failed or stale run fixes nothing and runs no pass. Every count is its present
/// rows afterwards.
fn finish_checked(
    store: &mut Store,
    run: RunId,
    failed: bool,
    tally: &mut Tally,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prelude::*;
    let scan = store.run(run).unwrap().unwrap().scan;
    let stale: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM sync_runs WHERE scan = ?1 AND id > ?2 AND state = 'succeeded'",
            params![scan, run],
            |r| r.get(0),
        )
        .unwrap();
    let unlisted = |store: &Store, states: &str| -> u64 {
        store
            .conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM findings f JOIN scans s ON s.id = f.scan_id
                     WHERE s.name = ?1 AND f.last_run_id < ?2 AND f.state NOT IN ({states})"
                ),
                params![scan, run],
                |r| r.get::<i64>(0),
            )
            .unwrap() as u64
    };
    let absent = unlisted(store, "'fixed'");
    let fixed_before = fixed_so_far(store, run);
    let passes = fix_passes();
    let end = store
        .finish_run(
            run,
            if failed {
                RunEnd::Failed("vendor down".into())
            } else {
                RunEnd::Succeeded
            },
        )
        .unwrap();
    let by_end = (end.counts.fixed - fixed_before, end.counts.missing);
    if failed || stale > 0 {
        prop_assert_eq!(
            by_end,
            (0, 0),
            "run {} failed {} stale {}",
            run,
            failed,
            stale
        );
        prop_assert_eq!(fix_passes(), passes);
    } else {
        prop_assert_eq!(by_end.0 + by_end.1, absent, "run {}: {:?}", run, end.counts);
        prop_assert_eq!(unlisted(store, "'fixed', 'missing'"), 0, "run {}", run);
        if absent > 0 {
            tally.lacking += 1;
            prop_assert_eq!(fix_passes(), passes + 1, "run {} lacked {}", run, absent);
        } else if fix_passes() == passes {
            tally.skipped += 1;
        }
    }
    prop_assert_eq!(present_count_drift(store), vec![], "after run {}", run);
    Ok(())
}

/// Random runs of two scans (`shop`, `shop@feat`) over a few identities (several sightings,
/// vendor ids, "resolved" and "accepted" verdicts, a suppression rule), with pages sent
/// again, failed runs, the guard, runs handed over to another process mid-run, runs adopted
/// late (stale or not) and prunes of a store aged 400 days mid-run (old fixed rows, idle
/// branch scopes). After every write each scan's count is its present rows, and every
/// run's end does what the pass over the scan's rows would do: the skip never leaves a
/// present row open that a complete, current listing lacked.
#[test]
fn random_runs_never_leave_a_present_row_open_that_a_complete_listing_lacked() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed, TestRunner};
    let sighting = (0usize..7, 1u32..3, prop::option::of(0u8..2), 0u8..8).prop_map(
        |(n, line, vid, verdict)| {
            let mut f = at(n, line, vid.map(|v| format!("v-{v}")).as_deref());
            f.verdict = match verdict {
                0 => Some(Verdict::Resolved),
                1 => Some(Verdict::Accepted),
                _ => None,
            };
            f
        },
    );
    let pages = prop::collection::vec(prop::collection::vec(sighting, 0..6), 0..3);
    let plan = (
        any::<bool>(),
        pages,
        prop::option::of(prop::option::of(0usize..8)),
        any::<bool>(),
        0u8..5,
        0u8..4,
        0u8..5,
        any::<bool>(),
        0u8..4,
    )
        .prop_map(
            |(branch, pages, list_known, resend_first, failed, handover, prune, guard, leave)| {
                Plan {
                    branch,
                    pages,
                    list_known,
                    resend_first,
                    failed: failed == 0,
                    handover: handover == 0,
                    prune_mid: prune == 0,
                    guard,
                    leave: leave == 0,
                }
            },
        );
    let cases = (prop::collection::vec(plan, 1..8), any::<bool>());
    let seed = std::env::var("S10_ATTACK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    });
    let tally = std::cell::RefCell::new(Tally::default());
    runner
        .run(&cases, |(plans, one_by_one)| {
            ONE_BY_ONE.with(|o| o.set(one_by_one));
            let tally = &mut *tally.borrow_mut();
            let (db, mut a) = temp_store();
            let mut b = other_process(&db);
            let mut c = other_process(&db);
            for store in [&mut a, &mut b, &mut c] {
                store.set_suppress_rules(vec![rule("fixtures", "Problem 5")]);
            }
            let mut known: std::collections::HashMap<&str, Vec<Finding>> = Default::default();
            let mut remember = |scan: &'static str, page: &[Finding]| {
                let list = known.entry(scan).or_default();
                for f in page {
                    let same = |k: &Finding| {
                        k.title == f.title && k.lines() == f.lines() && k.vendor_id == f.vendor_id
                    };
                    if !list.iter().any(same) {
                        list.push(f.clone());
                    }
                }
                list.clone()
            };
            let mut left: Option<(RunId, Vec<Vec<Finding>>, bool, &'static str)> = None;
            for plan in plans {
                let scan = if plan.branch { "shop@feat" } else { "shop" };
                let mut pages = plan.pages.clone();
                if let Some(less) = plan.list_known {
                    let mut known = remember(scan, &[]);
                    if let Some(i) = less.filter(|i| *i < known.len()) {
                        known.remove(i);
                    }
                    pages.push(known);
                }
                if plan.resend_first && !pages.is_empty() {
                    pages.push(pages[0].clone());
                }
                let scope = guarded(scan, if plan.guard { 0.5 } else { 1.0 });
                if plan.leave && left.is_none() {
                    let run = c.begin_run(&scope).unwrap();
                    if let Some(first) = pages.first() {
                        c.upsert_page(run, first).unwrap();
                        remember(scan, first);
                    }
                    c.detach_run(run).unwrap();
                    c.release_owner().unwrap();
                    left = Some((run, pages.into_iter().skip(1).collect(), plan.failed, scan));
                    continue;
                }
                let run = a.begin_run(&scope).unwrap();
                let mut on_b = false;
                for (i, page) in pages.iter().enumerate() {
                    let store = if on_b { &mut b } else { &mut a };
                    store.upsert_page(run, page).unwrap();
                    remember(scan, page);
                    prop_assert_eq!(present_count_drift(store), vec![]);
                    if i == 0 && plan.prune_mid {
                        age_all(&b, 400);
                        b.prune(&a_day()).unwrap();
                        prop_assert_eq!(present_count_drift(&b), vec![], "after the prune");
                    }
                    if i == 0 && plan.handover {
                        expire(&b, &a.owner().id);
                        b.adopt_run(run).unwrap().unwrap().unwrap();
                        on_b = true;
                    }
                }
                finish_checked(if on_b { &mut b } else { &mut a }, run, plan.failed, tally)?;
                if let Some((run, pages, failed, scan)) = left.take() {
                    b.adopt_run(run).unwrap().unwrap().unwrap();
                    for page in &pages {
                        b.upsert_page(run, page).unwrap();
                        remember(scan, page);
                        prop_assert_eq!(present_count_drift(&b), vec![]);
                    }
                    finish_checked(&mut b, run, failed, tally)?;
                }
            }
            if let Some((run, pages, failed, _)) = left.take() {
                b.adopt_run(run).unwrap().unwrap().unwrap();
                for page in &pages {
                    b.upsert_page(run, page).unwrap();
                }
                finish_checked(&mut b, run, failed, tally)?;
            }
            ONE_BY_ONE.with(|o| o.set(false));
            Ok(())
        })
        .unwrap();
    let tally = tally.into_inner();
    eprintln!(
        "complete runs that skipped the pass: {}, that lacked rows: {}",
        tally.skipped, tally.lacking
    );
    assert!(tally.skipped > 0, "no run skipped the pass");
    assert!(tally.lacking > 0, "no run lacked a row");
}

// ---- Attacks on the new design: what moves a row into or out of `fixed` ----

/// A person's triage of finding `n` to `state` (`accept`'s reason and author).
fn triaged(state: FindingState) -> TriageRequest {
    TriageRequest {
        state,
        ..accept(None)
    }
}

/// Finding `n` at `severity`.
fn at_severity(n: usize, severity: Severity) -> Finding {
    let mut f = finding(n);
    f.severity = severity;
    f
}

/// One run of `scan` over `pages`, with every count checked against the rows after each
/// page (before any pass could count again), ended `Succeeded`; the run and the passes its
/// end ran.
#[track_caller]
fn import_checked(
    store: &mut Store,
    run_scope: &RunScope,
    pages: &[Vec<Finding>],
) -> (RunRow, usize) {
    let run = store.begin_run(run_scope).unwrap();
    for (i, page) in pages.iter().enumerate() {
        store.upsert_page(run, page).unwrap();
        no_drift(store, &format!("after page {i} of run {run}"));
    }
    let before = fix_passes();
    let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
    (end, fix_passes() - before)
}

/// The vendor's "resolved" on a row the guard holds as `missing` fixes it (a `fixed`
/// event from `missing`): a present row leaves the count. The run that lists every other
/// row has listed every present one and skips the pass; the next, lacking one, fixes it.
#[test]
fn the_vendors_resolved_on_a_missing_row_takes_it_out_of_the_count() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let run = import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    assert_eq!(run.counts.missing, 25);
    assert_eq!(present_count(&store, "shop"), 30);

    let listing = |lacking: usize| -> Vec<Finding> {
        let mut page = findings(0..5);
        page.push(resolved(5));
        page.extend((6..30).filter(|n| *n != lacking).map(finding));
        page
    };
    let (run, passes) = import_checked(&mut store, &scope("shop"), &[listing(99)]);
    assert_eq!((tally(&run), passes), ((30, 0, 0, 1, 0), 0));
    assert_eq!(state(&store, "shop", 5), "fixed");
    let last = store.events("shop", &finding(5).fingerprint(0)).unwrap();
    let last = last.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.old_value.as_deref()),
        ("fixed", Some("missing"))
    );
    assert_eq!(states(&store, "shop", 6..30), all("open", 24));
    assert_eq!(present_count(&store, "shop"), 29);

    let (run, passes) = import_checked(&mut store, &scope("shop"), &[listing(6)]);
    assert_eq!((tally(&run), passes), ((29, 0, 0, 1, 0), 1));
    assert_eq!(state(&store, "shop", 6), "fixed");
    assert_eq!(present_count(&store, "shop"), 28);
}

/// The vendor's "resolved" beats a person's triage: the accepted row becomes `fixed` (out
/// of the count); listed again without the word it returns to the triage (`returned` from
/// `fixed`: back in the count), and the run that lists every present row skips the pass.
#[test]
fn the_vendors_resolved_on_a_triaged_row_fixes_it_and_its_return_to_the_triage_counts() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    store
        .triage(id_of(&store, &finding(0)), &accept(None))
        .unwrap();
    store
        .triage(
            id_of(&store, &finding(1)),
            &triaged(FindingState::FalsePositive),
        )
        .unwrap();
    let mut page = vec![resolved(0), resolved(1)];
    page.extend(findings(2..5));
    let (run, passes) = import_checked(&mut store, &scope("shop"), &[page]);
    assert_eq!((tally(&run), passes), ((5, 0, 0, 2, 0), 0));
    assert_eq!(states(&store, "shop", 0..2), all("fixed", 2));
    assert_eq!(present_count(&store, "shop"), 3);

    let (run, passes) = import_checked(&mut store, &scope("shop"), &[findings(0..5)]);
    assert_eq!((tally(&run), passes), ((5, 0, 0, 0, 0), 0));
    assert_eq!(
        states(&store, "shop", 0..2),
        ["accepted".to_string(), "false_positive".to_string()]
    );
    assert_eq!(kinds(&store, "shop", 0).last().unwrap(), "returned");
    assert_eq!(present_count(&store, "shop"), 5);

    let (run, passes) = import_checked(&mut store, &scope("shop"), &[findings(1..5)]);
    assert_eq!((run.counts.fixed, passes), (1, 1));
    assert_eq!(state(&store, "shop", 0), "fixed");
    assert_eq!(present_count(&store, "shop"), 4);
}

/// Rows a stale run created are `fixed` from the start (out of the count). The vendor's
/// "resolved" on such a row changes nothing (no event); listed plainly by a current run it
/// is reopened (counted), and a run lacking a present row still fixes it.
#[test]
fn rows_a_stale_run_created_fixed_come_into_the_count_only_when_reopened() {
    let (db, mut first) = temp_store();
    let mut second = other_process(&db);
    import(&mut first, "shop", &[findings(0..5)], RunEnd::Succeeded);
    let old = left_running(&mut first, "shop", &findings(0..1));
    import(&mut second, "shop", &[findings(0..5)], RunEnd::Succeeded);
    second.adopt_run(old).unwrap().unwrap().unwrap();
    let counts = second.upsert_page(old, &[finding(5), resolved(6)]).unwrap();
    assert_eq!((counts.seen, counts.new, counts.fixed), (2, 0, 0));
    no_drift(&second, "after the stale page");
    assert_eq!(listed_present(&second, old), 1, "row 0 only");
    second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(states(&second, "shop", 5..7), all("fixed", 2));
    assert_eq!(present_count(&second, "shop"), 5);

    let page = [findings(0..5), vec![resolved(5), finding(6)]].concat();
    let (run, passes) = import_checked(&mut second, &scope("shop"), &[page]);
    assert_eq!((tally(&run), passes), ((7, 0, 1, 0, 0), 0));
    assert_eq!(kinds(&second, "shop", 5), ["created"], "no event");
    assert_eq!(state(&second, "shop", 6), "reopened");
    assert_eq!(present_count(&second, "shop"), 6);

    let page = [findings(0..4), findings(5..7)].concat();
    let (run, passes) = import_checked(&mut second, &scope("shop"), &[page]);
    assert_eq!((tally(&run), passes), ((6, 0, 1, 1, 0), 1));
    assert_eq!(state(&second, "shop", 4), "fixed");
    assert_eq!(present_count(&second, "shop"), 6);
}

/// Suppression rules beginning and ending: a rule that begins on a fixed row brings it
/// back suppressed (`returned` from `fixed`: counted), one that begins on a present row
/// only changes its state among the present ones; a rule that ends on a present row
/// releases it to `open`, on a fixed row lets it be `reopened` (counted).
#[test]
fn suppression_rules_beginning_and_ending_move_rows_in_and_out_of_fixed_with_the_count() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..6)], RunEnd::Succeeded);
    let (_, passes) = import_checked(&mut store, &scope("shop"), &[findings(0..5)]);
    assert_eq!(passes, 1);
    assert_eq!(state(&store, "shop", 5), "fixed");

    store.set_suppress_rules(vec![rule("r5", "Problem 5"), rule("r1", "Problem 1")]);
    let (run, passes) = import_checked(&mut store, &scope("shop"), &[findings(0..6)]);
    assert_eq!((tally(&run), passes), ((6, 0, 0, 0, 0), 0));
    assert_eq!(
        (state(&store, "shop", 1), state(&store, "shop", 5)),
        ("false_positive".into(), "false_positive".into())
    );
    assert_eq!(present_count(&store, "shop"), 6);

    // Lacked while suppressed: fixed; then the rules go.
    let (run, passes) = import_checked(&mut store, &scope("shop"), &[findings(0..5)]);
    assert_eq!((run.counts.fixed, passes), (1, 1));
    store.set_suppress_rules(Vec::new());
    let (run, passes) = import_checked(&mut store, &scope("shop"), &[findings(0..6)]);
    assert_eq!((tally(&run), passes), ((6, 0, 1, 0, 0), 0));
    assert_eq!(
        (state(&store, "shop", 1), state(&store, "shop", 5)),
        ("open".into(), "reopened".into())
    );
    assert_eq!(present_count(&store, "shop"), 6);
    let (run, passes) = import_checked(&mut store, &scope("shop"), &[findings(0..5)]);
    assert_eq!((run.counts.fixed, passes), (1, 1));
    assert_eq!(present_count(&store, "shop"), 5);
}

/// A person's acceptance that ends while its row is `fixed` (its severity rose, with
/// reopen-on-severity-increase; its end date passed): listed again, the row is
/// `reopened`, not returned to the triage, and counted; one that ends on a present row
/// moves it to `open` among the present ones.
#[test]
fn an_acceptance_that_ends_while_its_row_is_fixed_reopens_it_counted() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    let escalating = TriageRequest {
        reopen_on_severity_increase: true,
        ..accept(None)
    };
    for n in [2, 3] {
        store
            .triage(id_of(&store, &finding(n)), &escalating)
            .unwrap();
    }
    store
        .triage(id_of(&store, &finding(4)), &accept(Some("2000-01-01")))
        .unwrap();
    let (run, passes) = import_checked(&mut store, &guarded("shop", 1.0), &[findings(0..3)]);
    assert_eq!((run.counts.fixed, passes), (2, 1));
    assert_eq!(states(&store, "shop", 3..5), all("fixed", 2));
    assert_eq!(present_count(&store, "shop"), 3);

    let page = vec![
        finding(0),
        finding(1),
        at_severity(2, Severity::Critical),
        at_severity(3, Severity::Critical),
        finding(4),
    ];
    let (run, passes) = import_checked(&mut store, &scope("shop"), &[page]);
    assert_eq!((tally(&run), passes), ((5, 0, 2, 0, 0), 0));
    assert_eq!(
        states(&store, "shop", 2..5),
        ["open", "reopened", "reopened"].map(String::from)
    );
    assert!(kinds(&store, "shop", 3).contains(&"escalated".to_string()));
    assert!(kinds(&store, "shop", 4).contains(&"expired".to_string()));
    assert_eq!(present_count(&store, "shop"), 5);
}

/// `scansync triage` (`Store::triage`, `triage_all`) on fixed, missing and present rows:
/// a fixed or missing row keeps its state, a present one changes among the present states:
/// the count never moves, and a run listing every present row afterwards skips the pass
/// while one lacking one fixes it.
#[test]
fn triage_commands_on_fixed_missing_and_present_rows_leave_the_count_right() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..31)], RunEnd::Succeeded);
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let run = import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    assert_eq!(run.counts.missing, 25);
    assert_eq!(state(&store, "shop", 30), "fixed");
    assert_eq!(present_count(&store, "shop"), 30);
    let id = |n: usize| id_of(&store, &finding(n));
    let steps: Vec<(Vec<i64>, TriageRequest, Vec<FindingState>)> = vec![
        (vec![id(30)], accept(None), vec![FindingState::Fixed]),
        (
            vec![id(5)],
            triaged(FindingState::FalsePositive),
            vec![FindingState::Missing],
        ),
        (vec![id(0)], accept(None), vec![FindingState::Accepted]),
        (
            vec![id(0), id(30), id(6)],
            triaged(FindingState::Open),
            vec![
                FindingState::Open,
                FindingState::Fixed,
                FindingState::Missing,
            ],
        ),
        (
            vec![id(1), id(30), id(7)],
            triaged(FindingState::FalsePositive),
            vec![
                FindingState::FalsePositive,
                FindingState::Fixed,
                FindingState::Missing,
            ],
        ),
    ];
    for (ids, req, want) in steps {
        assert_eq!(store.triage_all(&ids, &req).unwrap(), want, "{ids:?}");
        no_drift(&store, &format!("after triage of {ids:?}"));
    }
    assert_eq!(present_count(&store, "shop"), 30);

    let (run, passes) = import_checked(&mut store, &scope("shop"), &[findings(0..30)]);
    assert_eq!((tally(&run), passes), ((30, 0, 0, 0, 0), 0));
    assert_eq!(
        states(&store, "shop", 5..8),
        ["false_positive", "open", "false_positive"].map(String::from)
    );
    let (run, passes) = import_checked(&mut store, &scope("shop"), &[findings(0..31)]);
    assert_eq!((tally(&run), passes), ((31, 0, 0, 0, 0), 0));
    assert_eq!(
        state(&store, "shop", 30),
        "false_positive",
        "back to its triage"
    );
    let (run, passes) = import_checked(&mut store, &scope("shop"), &[findings(1..31)]);
    assert_eq!((run.counts.fixed, passes), (1, 1));
    assert_eq!(present_count(&store, "shop"), 30);
}

/// A branch scope's row inherits the scan's triage only when created present (`new`): the
/// inherited row is counted once; one created already fixed (the vendor's "resolved")
/// inherits nothing and is out of the count until a run reopens it.
#[test]
fn a_branch_row_inheriting_the_scans_triage_is_counted_once_and_one_created_fixed_not_at_all() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..3)], RunEnd::Succeeded);
    for n in [0, 1] {
        store
            .triage(id_of(&store, &finding(n)), &accept(None))
            .unwrap();
    }
    let page = vec![finding(0), resolved(1), finding(2)];
    let (run, passes) = import_checked(&mut store, &scope("shop@feat"), &[page]);
    assert_eq!((tally(&run), passes), ((3, 2, 0, 0, 0), 0));
    assert_eq!(
        states(&store, "shop@feat", 0..3),
        ["accepted", "fixed", "new"].map(String::from)
    );
    assert_eq!(present_count(&store, "shop@feat"), 2);
    assert_eq!(listed_present(&store, run.id), 2);

    let (run, passes) = import_checked(&mut store, &scope("shop@feat"), &[findings(0..3)]);
    assert_eq!((tally(&run), passes), ((3, 0, 1, 0, 0), 0));
    assert_eq!(
        state(&store, "shop@feat", 1),
        "reopened",
        "nothing inherited"
    );
    assert_eq!(present_count(&store, "shop@feat"), 3);
    let (run, passes) = import_checked(&mut store, &scope("shop@feat"), &[findings(1..3)]);
    assert_eq!((run.counts.fixed, passes), (1, 1));
    assert_eq!(state(&store, "shop@feat", 0), "fixed");
    assert_eq!(present_count(&store, "shop@feat"), 2);
}

/// A page whose planned statement misses (on PostgreSQL: the adopting process sends the
/// run's first page again within a page of rows that are created, reopened, returned to
/// their triage and fixed by the vendor's word) is rolled back whole and written again:
/// its changes reach the count, the run's counters and `listed_present` once, as one
/// finding at a time does.
#[test]
fn a_page_written_again_after_its_plan_missed_counts_its_changes_once() {
    let mut outcomes = Vec::new();
    for one_by_one in [false, true] {
        ONE_BY_ONE.with(|o| o.set(one_by_one));
        let (db, mut first) = temp_store();
        let mut second = other_process(&db);
        import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
        first
            .triage(id_of(&first, &finding(7)), &accept(None))
            .unwrap();
        import(&mut first, "shop", &[findings(0..7)], RunEnd::Succeeded);
        assert_eq!(states(&first, "shop", 7..10), all("fixed", 3));
        assert_eq!(present_count(&first, "shop"), 7);

        let run = first.begin_run(&scope("shop")).unwrap();
        first.upsert_page(run, &findings(0..3)).unwrap();
        expire(&second, &first.owner().id);
        second.adopt_run(run).unwrap().unwrap().unwrap();
        let looked_up = LOOKED_UP_AGAIN.with(|n| n.get());
        let mut page = findings(0..3);
        page.extend([
            finding(8),
            finding(7),
            resolved(4),
            finding(10),
            finding(5),
            finding(6),
        ]);
        let counts = second.upsert_page(run, &page).unwrap();
        if on_postgres() && !one_by_one {
            assert_eq!(
                LOOKED_UP_AGAIN.with(|n| n.get()),
                looked_up + 1,
                "rolled back once"
            );
        }
        no_drift(&second, "after the page written again");
        let returned = count(
            &second,
            "SELECT count(*) FROM finding_events WHERE kind = 'returned'",
        );
        let created = count(
            &second,
            "SELECT count(*) FROM finding_events WHERE kind = 'created'",
        );
        let before = fix_passes();
        let end = second.finish_run(run, RunEnd::Succeeded).unwrap();
        outcomes.push((
            (counts.seen, counts.new, counts.reopened, counts.fixed),
            listed_present(&second, run),
            (returned, created),
            (end.counts.fixed, fix_passes() - before),
            state(&second, "shop", 3),
            present_count(&second, "shop"),
        ));
        ONE_BY_ONE.with(|o| o.set(false));
    }
    let want = ((6, 1, 1, 1), 8, (1, 11), (2, 1), "fixed".to_string(), 8);
    assert_eq!(outcomes, [want.clone(), want]);
}

// ---- The count's age ----

/// `present_checked_at` of `scan`.
fn checked(store: &Store, scan: &str) -> Option<String> {
    store
        .conn
        .query_row(
            "SELECT present_checked_at FROM scans WHERE name = ?1",
            params![scan],
            |r| r.get(0),
        )
        .unwrap()
}

/// The edge of the day: a count (set one short by hand) checked a minute less than 24
/// hours ago is taken at its word, and a listing lacking one finding ends without the
/// pass (the count stays short: this test ends with it so).
#[test]
fn a_count_checked_just_under_a_day_ago_is_taken_at_its_word() {
    let mut db = TestDb::new();
    db.allow_present_count_drift();
    let mut store = db.open();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    set_count(&store, "shop", 9);
    let stamped = chrono::Utc::now() - chrono::Duration::hours(24) + chrono::Duration::minutes(1);
    checked_at(&store, Some(stamped));
    let before = fix_passes();
    let run = import(&mut store, "shop", &[findings(0..9)], RunEnd::Succeeded);
    assert_eq!(
        (run.counts.fixed, fix_passes(), state(&store, "shop", 9)),
        (0, before, "new".to_string())
    );
    assert_eq!(
        (present_count(&store, "shop"), checked(&store, "shop")),
        (9, Some(stamp(stamped)))
    );
}

/// The other side of the edge: checked a minute more than 24 hours ago, the same count
/// and listing read the rows, fix the finding and stamp the count with the run's end.
#[test]
fn a_count_checked_just_over_a_day_ago_is_counted_again() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    set_count(&store, "shop", 9);
    let stamped = chrono::Utc::now() - chrono::Duration::hours(24) - chrono::Duration::minutes(1);
    checked_at(&store, Some(stamped));
    let before = fix_passes();
    let run = import(&mut store, "shop", &[findings(0..9)], RunEnd::Succeeded);
    assert_eq!(
        (run.counts.fixed, fix_passes(), state(&store, "shop", 9)),
        (1, before + 1, "fixed".to_string())
    );
    assert_eq!(present_count(&store, "shop"), 9);
    assert_eq!(
        checked(&store, "shop").as_deref(),
        run.finished_at.as_deref(),
        "counted at the run's end"
    );
}

/// A scan whose count was never checked (`present_checked_at` NULL: a scan created by a
/// node still on schema 8, whose insert knows no such column, its rows uncounted): a
/// listing that agrees with the count still reads the rows. An empty complete listing
/// (guard off) of such a scan fixes its rows; a listing of as many rows as a count set
/// short by hand fixes the one it lacks.
#[test]
fn a_scan_whose_count_was_never_checked_is_read_at_its_next_complete_run() {
    let (db, mut store) = temp_store();
    let mut old_node = other_process(&db);
    let run = old_node.begin_run(&scope("api")).unwrap();
    store
        .conn
        .execute(
            "UPDATE scans SET present_checked_at = NULL WHERE name = 'api'",
            [],
        )
        .unwrap();
    page_of_a_schema_8_node(&mut old_node, run, &findings(0..3));
    old_node
        .finish_run(run, RunEnd::Failed("vendor down".into()))
        .unwrap();
    assert_eq!(
        (present_count(&store, "api"), present_rows(&store, "api")),
        (0, 3)
    );
    let before = fix_passes();
    let run = store.begin_run(&guarded("api", 1.0)).unwrap();
    let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!((end.counts.fixed, fix_passes()), (3, before + 1));
    assert_eq!(present_count(&store, "api"), 0);
    assert!(checked(&store, "api").is_some());

    import(&mut store, "shop", &[findings(0..3)], RunEnd::Succeeded);
    set_count(&store, "shop", 2);
    checked_at(&store, None);
    let run = import(&mut store, "shop", &[findings(0..2)], RunEnd::Succeeded);
    assert_eq!((run.counts.fixed, fix_passes()), (1, before + 2));
    assert_eq!(state(&store, "shop", 2), "fixed");
    assert_eq!(present_count(&store, "shop"), 2);
}

// ---- BREAK ----

/// Was a BREAK (session 10). An older run (`old`) listed finding 0 while it was present
/// (its `listed_present` counts it) before its process left it (`scan --async`: detached,
/// owner gone). A newer run of the scan then listed finding 0 with the vendor's "resolved"
/// word (fixed: the scan's count goes down by one) and failed, or was left running. `old` is
/// adopted and completes its listing, lacking finding 9 only. `old`'s `listed_present` (9)
/// still counted row 0, which is no longer present, and equalled the scan's fresh count
/// (9): a skip of the pass on that equality left 9 open for good. Since session 12 a run
/// that a newer run's page overtook stores no more pages and fixes nothing
/// (`RunContext::overtaken_by`): 9 stays as it was after `old`, and the next complete run, which
/// lacks it too, fixes it.
#[test]
fn a_row_the_run_listed_that_a_newer_run_then_fixed_cannot_stand_in_for_an_unlisted_row() {
    let mut got = Vec::new();
    for newer_fails in [true, false] {
        let (db, mut first) = temp_store();
        let mut second = other_process(&db);
        import(&mut first, "shop", &[findings(0..10)], RunEnd::Succeeded);
        let old = left_running(&mut first, "shop", &findings(0..3));

        let newer = second.begin_run(&scope("shop")).unwrap();
        let counts = second.upsert_page(newer, &[resolved(0)]).unwrap();
        assert_eq!((counts.seen, counts.fixed), (1, 1));
        if newer_fails {
            second
                .finish_run(newer, RunEnd::Failed("vendor down".into()))
                .unwrap();
        } else {
            second.detach_run(newer).unwrap();
        }
        assert_eq!(present_count(&second, "shop"), 9);
        no_drift(&second, "after the newer run's page");

        second.adopt_run(old).unwrap().unwrap().unwrap();
        second.upsert_page(old, &findings(3..9)).unwrap();
        assert_eq!(
            listed_present(&second, old),
            3,
            "0..3 before the newer run's page"
        );
        let end = second.finish_run(old, RunEnd::Succeeded).unwrap();
        assert_eq!(end.state, RunState::Interrupted, "overtaken");
        let after_old = (state(&second, "shop", 9), end.counts.fixed);
        let before = fix_passes();
        let next = import(&mut second, "shop", &[findings(1..9)], RunEnd::Succeeded);
        got.push((
            newer_fails,
            after_old,
            state(&second, "shop", 9),
            next.counts.fixed,
            fix_passes() - before,
            present_count(&second, "shop"),
        ));
    }
    // (newer run failed, (state of 9, fixed) after `old`, state of 9, fixed by the next run,
    // passes, count after)
    assert_eq!(
        got,
        [true, false].map(|f| (f, ("new".to_string(), 0), "fixed".to_string(), 1, 1, 8)),
        "the next complete listing lacked finding 9 too"
    );
}
