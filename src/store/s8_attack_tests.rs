//! Attacks on PostgreSQL schema 8 (no foreign keys on the page import's rows), the
//! optimistic page plan (`plan_page` without the look-up) and `fix_absent`'s single read.
//! Each runs on both backends: the store must behave the same on SQLite and PostgreSQL.

use super::test_db::{on_postgres, TestDb};
use super::tests::{
    at, count, finding, findings, import, other_process, page_outcome, scope, temp_store,
    PageOutcome,
};
use super::*;

/// `check-config` and `test-connection` probe the store: a store this binary made and
/// migrated is its own version, not "written by a newer scansync" (both at 9 now;
/// PostgreSQL had a version of its own, 8, that SQLite skips).
#[test]
fn the_probe_of_a_store_this_binary_migrated_is_not_refused_as_newer() {
    let (db, store) = temp_store();
    drop(store);
    let said = Store::probe(&db.location()).expect("a store of this binary's version");
    assert!(said.starts_with("reachable, schema version"), "{said}");
    assert!(!said.contains("upgrades"), "{said}");
}

/// A PostgreSQL store still at version 7 is reported as one the daemon upgrades, and
/// opening it for writing migrates it to the latest version (8: foreign keys gone; 9: each
/// scan's count of present findings, from its rows) with its rows intact.
#[test]
fn a_version_7_postgresql_store_is_probed_as_older_and_migrated_with_its_rows() {
    if !on_postgres() {
        return; // PostgreSQL's own migration
    }
    let db = TestDb::new();
    {
        let mut store = db.open();
        import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
        import(&mut store, "shop", &[findings(0..8)], RunEnd::Succeeded);
        // Back to what a version-7 store has: the four keys, the cascade, fillfactor unset,
        // no finding count.
        store
            .conn
            .execute_batch(
                "ALTER TABLE scans DROP COLUMN present_count, DROP COLUMN present_checked_at;
                 ALTER TABLE sync_runs DROP COLUMN listed_present;
                 ALTER TABLE findings
                     ADD CONSTRAINT findings_scan_id_fkey FOREIGN KEY (scan_id) REFERENCES scans(id),
                     ADD CONSTRAINT findings_last_run_id_fkey
                         FOREIGN KEY (last_run_id) REFERENCES sync_runs(id),
                     RESET (fillfactor);
                 ALTER TABLE finding_events
                     ADD CONSTRAINT finding_events_finding_id_fkey
                         FOREIGN KEY (finding_id) REFERENCES findings(id) ON DELETE CASCADE,
                     ADD CONSTRAINT finding_events_run_id_fkey
                         FOREIGN KEY (run_id) REFERENCES sync_runs(id);
                 UPDATE scansync_schema SET version = 7",
            )
            .unwrap();
    }
    let said = Store::probe(&db.location()).unwrap();
    let latest = MIGRATIONS_POSTGRES.last().unwrap().0;
    assert!(said.contains(&format!("upgrades it to {latest}")), "{said}");
    let mut store = db.open();
    assert_eq!(
        count(&store, "SELECT max(version) FROM scansync_schema"),
        latest
    );
    assert_eq!(
        count(
            &store,
            "SELECT present_count FROM scans WHERE name = 'shop'"
        ),
        8
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM pg_constraint
             WHERE conrelid IN (CAST('findings' AS regclass), CAST('finding_events' AS regclass))
               AND contype = 'f'"
        ),
        0
    );
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 10);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        2
    );
    import(&mut store, "shop", &[findings(0..9)], RunEnd::Succeeded);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE state = 'reopened'"
        ),
        1
    );
    assert_eq!(super::test_db::foreign_key_violations(&store), 0);
}

/// The optimistic plan meets everything that makes an upsert a no-op or moves a finding to
/// a later occurrence: a page whose first finding repeats a sighting the run stored on an
/// earlier page while the next one is a second finding of that identity; a stale run
/// adopted late whose pages meet rows a newer run decided; suppress rules; a run whose page
/// failed half way (lease lost) and a second store that carries on. Batched and one by one
/// end the same.
#[test]
fn optimistic_pages_end_as_one_statement_per_finding_does_in_tricky_orders() {
    use super::ingest::{FELL_BACK, ONE_BY_ONE};
    let rule = super::tests::rule("fixtures", "Problem 6");
    let outcome = |one_by_one: bool| -> PageOutcome {
        ONE_BY_ONE.with(|o| o.set(one_by_one));
        let (db, mut first) = temp_store();
        first.set_suppress_rules(vec![rule.clone()]);
        let mut second = other_process(&db);
        second.set_suppress_rules(vec![rule.clone()]);
        let mut counts = Vec::new();
        counts.push(
            import(
                &mut first,
                "shop",
                &[
                    vec![at(1, 10, None), finding(2), at(3, 5, Some("v-a"))],
                    // The first repeats a sighting of the last page (a no-op); the second is a
                    // second finding of that identity (a new row at occurrence 1); the third
                    // repeats the second.
                    vec![
                        at(1, 10, None),
                        at(1, 20, None),
                        at(1, 20, None),
                        finding(6),
                    ],
                    // Swapped: the second finding first.
                    vec![at(3, 9, Some("v-b")), at(3, 5, Some("v-a")), finding(7)],
                ],
                RunEnd::Succeeded,
            )
            .counts,
        );
        // An old run begins and stores a page, then its process goes.
        let old = first.begin_run(&scope("shop")).unwrap();
        first.set_vendor_scan_id(old, "vs-old").unwrap();
        counts.push(
            first
                .upsert_page(old, &[at(1, 20, None), finding(8), at(3, 9, Some("v-b"))])
                .unwrap(),
        );
        first.detach_run(old).unwrap();
        first.release_owner().unwrap();
        // A newer complete run decides the scan.
        counts.push(
            import(
                &mut second,
                "shop",
                &[
                    vec![at(1, 10, None), finding(2), finding(9)],
                    vec![at(3, 5, Some("v-a")), at(1, 10, None), finding(6)],
                ],
                RunEnd::Succeeded,
            )
            .counts,
        );
        // The old run, adopted late by the other store, lists what the newer run decided,
        // what only it had stored, and again what its own first page stored.
        second.adopt_run(old).unwrap().unwrap().unwrap();
        for page in [
            vec![at(1, 10, None), finding(10), at(1, 20, None), finding(8)],
            vec![
                finding(2),
                at(3, 9, Some("v-b")),
                at(3, 5, Some("v-a")),
                finding(11),
            ],
            vec![finding(10), finding(6), at(1, 30, None)],
        ] {
            counts.push(second.upsert_page(old, &page).unwrap());
        }
        counts.push(second.finish_run(old, RunEnd::Succeeded).unwrap().counts);
        counts.push(
            import(
                &mut second,
                "shop",
                &[vec![finding(8), at(1, 20, None)], vec![at(1, 20, None)]],
                RunEnd::Succeeded,
            )
            .counts,
        );
        ONE_BY_ONE.with(|o| o.set(false));
        assert_eq!(super::test_db::foreign_key_violations(&second), 0);
        page_outcome(&second, counts)
    };
    let batched = outcome(false);
    assert_eq!(FELL_BACK.with(|n| n.get()), 0, "no page fell back");
    if on_postgres() {
        // The optimistic plan was wrong on some page and was undone, not stored.
        assert!(super::ingest::LOOKED_UP_AGAIN.with(|n| n.get()) > 0);
    }
    let single = outcome(true);
    assert_eq!(batched.0, single.0, "run counts");
    assert_eq!(batched.1, single.1, "rows");
    assert_eq!(batched.2, single.2, "events");
    assert_eq!(batched.3, single.3, "row order");
}

/// Random runs of pages over a few identities (one sighting repeated, several sightings of
/// one identity, vendor ids, verdicts, pages sent again, findings listed on two pages):
/// the optimistic batched import ends exactly as one statement per finding does.
#[test]
fn random_pages_end_the_same_batched_and_one_by_one() {
    use super::ingest::{FELL_BACK, ONE_BY_ONE};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    if !on_postgres() {
        return; // SQLite has only the one-by-one import
    }
    let sighting = (0usize..4, 1u32..4, prop::option::of(0u8..3), any::<bool>()).prop_map(
        |(n, line, vid, resolved)| {
            let mut f = at(n, line, vid.map(|v| format!("v-{v}")).as_deref());
            if resolved && n == 3 {
                f.verdict = Some(crate::finding::Verdict::Resolved);
            }
            f
        },
    );
    let page = prop::collection::vec(sighting, 0..6);
    let run = (prop::collection::vec(page, 1..4), any::<bool>());
    let runs = prop::collection::vec(run, 1..4);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&runs, |runs| {
            let outcome = |one_by_one: bool| -> PageOutcome {
                ONE_BY_ONE.with(|o| o.set(one_by_one));
                let (_db, mut store) = temp_store();
                let mut counts = Vec::new();
                for (pages, repeat_first) in &runs {
                    let run = store.begin_run(&scope("shop")).unwrap();
                    for page in pages {
                        counts.push(store.upsert_page(run, page).unwrap());
                    }
                    if *repeat_first {
                        counts.push(store.upsert_page(run, &pages[0]).unwrap());
                    }
                    counts.push(store.finish_run(run, RunEnd::Succeeded).unwrap().counts);
                }
                ONE_BY_ONE.with(|o| o.set(false));
                page_outcome(&store, counts)
            };
            let batched = outcome(false);
            let single = outcome(true);
            prop_assert_eq!(batched, single);
            Ok(())
        })
        .unwrap();
    assert_eq!(FELL_BACK.with(|n| n.get()), 0, "no page fell back");
}
