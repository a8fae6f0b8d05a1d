//! Attacks on the s9 change: a page's or a run end's context in one query at the start of
//! the write transaction (`running_context`), the read that spares a due run the write lock
//! (`Store::due_run_taken`), the lease holder read with its run's state (`held_by_other`),
//! a claim that registers the owner once, and the page plan's fast path. Each runs on both
//! backends: the store must behave the same on SQLite and PostgreSQL.

use super::test_db::{on_postgres, TestDb};
use super::tests::{at, temp_store, PageOutcome};
use super::tests::{count, finding, findings, import, other_process, page_outcome, scope};
use super::*;
use crate::schedule::SCHEDULED_TRIGGERS;

/// `scope(scan)` as the daemon's schedule begins it.
fn scheduled(scan: &str) -> RunScope {
    RunScope {
        trigger: crate::schedule::TRIGGER_SCHEDULE.into(),
        ..scope(scan)
    }
}

/// Makes `owner`'s heartbeat and leases expired, as if its process had died, written
/// through `via` (another process's connection).
pub(super) fn expire(via: &Store, owner: &str) {
    for table in ["owners", "scan_leases"] {
        via.conn
            .execute(
                &format!(
                    "UPDATE {table} SET expires_at = '2000-01-01T00:00:00.000Z' WHERE owner = ?1"
                ),
                params![owner],
            )
            .unwrap();
    }
}

/// What a due run of "shop" meets, as the hint ([`Store::due_run_taken`]) and as the
/// confirmation under the write lock ([`Store::begin_due_run`]) each say it.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    /// Nothing in the way: the run begins.
    Free,
    Served(RunId),
    Held(Option<RunId>, String),
}

/// A set-up of the store (`me` is the process that is about to serve a due time, `other`
/// another process on the same store) and the `since` of the due time.
type Setup = fn(&mut Store, &mut Store) -> chrono::DateTime<chrono::Utc>;

/// What a set-up should lead to, given the two processes.
type Expect = Box<dyn Fn(&Store, &Store) -> Due>;
/// What the hint and the begin say when `holder`'s last run of "shop" holds the lease,
/// named by the owner's label, or by its id when its owner row is gone (`by_label` false).
fn held_by(holder: &Store, by_label: bool) -> Due {
    let owner = holder.owner();
    Due::Held(
        Some(holder.last_run("shop").unwrap().unwrap().id),
        if by_label { &owner.label } else { &owner.id }.clone(),
    )
}

fn an_hour_ago() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::hours(1)
}

/// The hint must never be stricter than the confirmation: a `Served` the begin would not
/// confirm skips a due run for good (nobody ran it), a `Held` it would not confirm makes
/// the run wait for nothing, and a hint of `Free` where the confirmation says otherwise is
/// harmless only because the begin says so itself. Here each set-up is read by both, on a
/// store of its own, and both must say the same.
#[test]
fn the_due_run_hint_says_what_the_begin_under_the_write_lock_says() {
    let setups: Vec<(&str, Setup, Expect)> = vec![
        (
            "an empty store",
            |_, _| an_hour_ago(),
            Box::new(|_, _| Due::Free),
        ),
        (
            "another process's scheduled run succeeded since",
            |_, other| {
                import(other, "shop", &[findings(0..3)], RunEnd::Succeeded);
                let run = other.begin_run(&scheduled("shop")).unwrap();
                other.finish_run(run, RunEnd::Succeeded).unwrap();
                an_hour_ago()
            },
            Box::new(|_, other| Due::Served(other.last_run("shop").unwrap().unwrap().id)),
        ),
        (
            "this process's own scheduled run succeeded since",
            |me, _| {
                let run = me.begin_run(&scheduled("shop")).unwrap();
                me.finish_run(run, RunEnd::Succeeded).unwrap();
                an_hour_ago()
            },
            Box::new(|_, _| Due::Free),
        ),
        (
            "another process's run of another trigger (cli) succeeded since",
            |_, other| {
                import(other, "shop", &[findings(0..3)], RunEnd::Succeeded);
                an_hour_ago()
            },
            Box::new(|_, _| Due::Free),
        ),
        (
            "another process's scheduled run succeeded, but before the due time",
            |_, other| {
                let run = other.begin_run(&scheduled("shop")).unwrap();
                other.finish_run(run, RunEnd::Succeeded).unwrap();
                chrono::Utc::now() + chrono::Duration::seconds(5)
            },
            Box::new(|_, _| Due::Free),
        ),
        (
            "another process's scheduled run failed since",
            |_, other| {
                let run = other.begin_run(&scheduled("shop")).unwrap();
                other
                    .finish_run(run, RunEnd::Failed("vendor down".into()))
                    .unwrap();
                an_hour_ago()
            },
            Box::new(|_, _| Due::Free),
        ),
        (
            "another process's run holds the lease",
            |_, other| {
                other.begin_run(&scheduled("shop")).unwrap();
                an_hour_ago()
            },
            Box::new(|_, other| held_by(other, true)),
        ),
        (
            "another process's run of another trigger (cli) holds the lease",
            |_, other| {
                other.begin_run(&scope("shop")).unwrap();
                an_hour_ago()
            },
            Box::new(|_, other| held_by(other, true)),
        ),
        (
            "another process's lease holds, its owner row is gone",
            |_, other| {
                other.begin_run(&scheduled("shop")).unwrap();
                let id = other.owner().id.clone();
                other
                    .conn
                    .execute("DELETE FROM owners WHERE owner = ?1", params![id])
                    .unwrap();
                an_hour_ago()
            },
            Box::new(|_, other| held_by(other, false)),
        ),
        (
            "another process's lease expired (its process died)",
            |me, other| {
                other.begin_run(&scheduled("shop")).unwrap();
                expire(me, &other.owner().id.clone());
                an_hour_ago()
            },
            Box::new(|_, _| Due::Free),
        ),
        (
            "a lease left by a run that ended",
            |_, other| {
                let run = other.begin_run(&scheduled("shop")).unwrap();
                other
                    .conn
                    .execute(
                        "UPDATE sync_runs SET state = 'failed' WHERE id = ?1",
                        params![run],
                    )
                    .unwrap();
                an_hour_ago()
            },
            Box::new(|_, _| Due::Free),
        ),
        (
            "a lease naming a run the store no longer has",
            |_, other| {
                other.begin_run(&scheduled("shop")).unwrap();
                other
                    .conn
                    .execute("UPDATE scan_leases SET run_id = 999999", [])
                    .unwrap();
                an_hour_ago()
            },
            Box::new(|_, _| Due::Free),
        ),
        (
            "another run of this process holds the lease",
            |me, _| {
                me.begin_run(&scope("shop")).unwrap();
                an_hour_ago()
            },
            Box::new(|me, _| held_by(me, true)),
        ),
        (
            "another process served the due time and runs the scan again",
            |_, other| {
                let run = other.begin_run(&scheduled("shop")).unwrap();
                other.finish_run(run, RunEnd::Succeeded).unwrap();
                other.begin_run(&scope("shop")).unwrap();
                an_hour_ago()
            },
            Box::new(|_, other| Due::Served(other.runs(Some("shop"), 2).unwrap()[1].id)),
        ),
        (
            "another process let go of its run (scan --async) and said goodbye",
            |_, other| {
                let run = other.begin_run(&scheduled("shop")).unwrap();
                other.set_vendor_scan_id(run, "vs-1").unwrap();
                other.detach_run(run).unwrap();
                other.release_owner().unwrap();
                an_hour_ago()
            },
            Box::new(|_, _| Due::Free),
        ),
        (
            "another process's run waits for its turn (queued, no lease)",
            |_, other| {
                other.begin_queued_run(&scope("shop")).unwrap();
                an_hour_ago()
            },
            Box::new(|_, _| Due::Free),
        ),
        (
            "another process's queued run took its turn",
            |_, other| {
                let run = other.begin_queued_run(&scope("shop")).unwrap();
                other.claim_queued_run("shop", run).unwrap();
                an_hour_ago()
            },
            Box::new(|_, other| held_by(other, true)),
        ),
        (
            "another process's run of another scan holds that scan",
            |_, other| {
                other.begin_run(&scheduled("billing")).unwrap();
                an_hour_ago()
            },
            Box::new(|_, _| Due::Free),
        ),
    ];
    for (what, setup, expected) in setups {
        let db = TestDb::new();
        let mut me = db.open();
        let mut other = other_process(&db);
        let since = setup(&mut me, &mut other);
        let want = expected(&me, &other);
        let hint = match me.due_run_taken("shop", since, SCHEDULED_TRIGGERS).unwrap() {
            None => Due::Free,
            Some(DueRunTaken::Served(run)) => Due::Served(run),
            Some(DueRunTaken::Held {
                run_id,
                owner_label,
            }) => Due::Held(run_id, owner_label),
        };
        let runs_before = count(&me, "SELECT count(*) FROM sync_runs");
        let begun = match me.begin_due_run(&scheduled("shop"), since, SCHEDULED_TRIGGERS) {
            Ok(Ok(run)) => {
                assert_eq!(
                    me.last_run("shop").unwrap().unwrap().id,
                    run,
                    "{what}: the run begun is the scan's newest"
                );
                Due::Free
            }
            Ok(Err(served)) => Due::Served(served),
            Err(StoreError::ScanBusy { run_id, owner, .. }) => Due::Held(run_id, owner),
            Err(e) => panic!("{what}: {e}"),
        };
        assert_eq!(hint, want, "{what}: the hint (due_run_taken)");
        assert_eq!(begun, want, "{what}: the begin under the write lock");
        if want != Due::Free {
            assert_eq!(
                count(&me, "SELECT count(*) FROM sync_runs"),
                runs_before,
                "{what}: nothing begun"
            );
        }
    }
}

/// The hint is a read and writes nothing: no owner row, no lease, no run, whatever it says.
#[test]
fn the_due_run_hint_writes_nothing() {
    let (db, me) = temp_store();
    let mut other = other_process(&db);
    let tables = "(SELECT count(*) FROM owners) * 1000000 + (SELECT count(*) FROM scan_leases) \
                  * 1000 + (SELECT count(*) FROM sync_runs)";
    let check = |other: &Store| {
        let before = count(other, &format!("SELECT {tables}"));
        me.due_run_taken("shop", an_hour_ago(), SCHEDULED_TRIGGERS)
            .unwrap();
        assert_eq!(count(other, &format!("SELECT {tables}")), before);
    };
    check(&other);
    let run = other.begin_run(&scheduled("shop")).unwrap();
    check(&other);
    other.finish_run(run, RunEnd::Succeeded).unwrap();
    check(&other);
}

/// A claim registers the owner now (`begin_in` no longer does when it claims): a process
/// whose owner row is gone (expired during a long pause, or deleted) and that begins a run,
/// by any of the ways a run begins, must not leave that run looking abandoned, or another
/// process adopts it while it runs (two processes writing one run).
#[test]
fn a_run_begun_by_a_process_whose_owner_row_was_gone_is_not_abandoned() {
    type Begin = fn(&mut Store) -> RunId;
    let begins: [(&str, Begin); 4] = [
        ("begin_run", |s| s.begin_run(&scope("shop")).unwrap()),
        ("begin_due_run", |s| {
            s.begin_due_run(&scheduled("shop"), an_hour_ago(), SCHEDULED_TRIGGERS)
                .unwrap()
                .unwrap()
        }),
        ("begin_queued_run then claim_queued_run", |s| {
            let run = s.begin_queued_run(&scope("shop")).unwrap();
            let id = s.owner().id.clone();
            s.conn
                .execute("DELETE FROM owners WHERE owner = ?1", params![id])
                .unwrap();
            let (claim, run) = s.claim_queued_run("shop", run).unwrap();
            assert_eq!(claim, ScanClaim::Claimed);
            run
        }),
        ("adopt_run", |s| {
            // A run left by a process that said goodbye, adopted by this one.
            let left = s
                .abandoned_runs()
                .unwrap()
                .into_iter()
                .find(|r| r.scan == "shop")
                .expect("a run to adopt")
                .id;
            s.adopt_run(left).unwrap().unwrap().unwrap().id
        }),
    ];
    for (how, begin) in begins {
        for gone in ["deleted", "expired"] {
            let db = TestDb::new();
            let mut me = db.open();
            let mut other = other_process(&db);
            if how == "adopt_run" {
                let mut cli = other_process(&db);
                let left = cli.begin_run(&scope("shop")).unwrap();
                cli.set_vendor_scan_id(left, "vs-1").unwrap();
                cli.detach_run(left).unwrap();
                cli.release_owner().unwrap();
            }
            // This process registered once (a run of another scan), then its row went.
            let warm = me.begin_run(&scope("warm-up")).unwrap();
            me.finish_run(warm, RunEnd::Failed("warm-up".into()))
                .unwrap();
            let id = me.owner().id.clone();
            match gone {
                "deleted" => other
                    .conn
                    .execute("DELETE FROM owners WHERE owner = ?1", params![id])
                    .unwrap(),
                _ => other
                    .conn
                    .execute(
                        "UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z'
                         WHERE owner = ?1",
                        params![id],
                    )
                    .unwrap(),
            };
            let run = begin(&mut me);
            let abandoned: Vec<RunId> = other
                .abandoned_runs()
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect();
            assert!(
                !abandoned.contains(&run),
                "{how}, owner row {gone}: run {run} looks abandoned while it runs"
            );
            assert!(
                other.adopt_run(run).unwrap().is_none(),
                "{how}, owner row {gone}: another process adopted run {run}"
            );
            me.upsert_page(run, &findings(0..3)).unwrap();
            assert_eq!(
                me.finish_run(run, RunEnd::Succeeded).unwrap().state,
                RunState::Succeeded,
                "{how}, owner row {gone}"
            );
        }
    }
}

/// A run adopted by another process (its owner's heartbeat expired): the old owner's next
/// page and its end are refused with `LeaseLost`, store nothing and fix nothing, whether
/// the adopter already stored pages or not; the adopter's complete end fixes what it did
/// not list.
#[test]
fn an_adopted_runs_old_owner_stores_nothing_and_fixes_nothing() {
    let (db, mut old) = temp_store();
    let mut adopter = other_process(&db);
    import(&mut old, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let run = old.begin_run(&scheduled("shop")).unwrap();
    old.set_vendor_scan_id(run, "vs-1").unwrap();
    old.upsert_page(run, &findings(0..10)).unwrap();
    expire(&adopter, &old.owner().id.clone());
    adopter.adopt_run(run).unwrap().unwrap().unwrap();
    let snapshot = |s: &Store| {
        (
            count(s, "SELECT count(*) FROM findings"),
            count(s, "SELECT count(*) FROM finding_events"),
            count(s, "SELECT count(*) FROM findings WHERE state = 'fixed'"),
            count(
                s,
                "SELECT seen * 1000 + pages FROM sync_runs ORDER BY id DESC LIMIT 1",
            ),
        )
    };
    let before = snapshot(&adopter);
    // The old owner's heartbeat comes back (its owner row renewed): still not its run.
    old.heartbeat().unwrap();
    for page in [findings(10..12), findings(40..45), findings(0..3)] {
        match old.upsert_page(run, &page) {
            Err(StoreError::LeaseLost(r)) => assert_eq!(r, run),
            other => panic!("the old owner's page: {other:?}"),
        }
    }
    match old.finish_run(run, RunEnd::Succeeded) {
        Err(StoreError::LeaseLost(r)) => assert_eq!(r, run),
        other => panic!("the old owner's end: {other:?}"),
    }
    assert!(matches!(old.detach_run(run), Err(StoreError::LeaseLost(_))));
    assert_eq!(snapshot(&adopter), before, "the old owner wrote nothing");
    assert_eq!(adopter.run(run).unwrap().unwrap().state, RunState::Running);
    // The adopter goes on and ends it; its page, then its end, are the run's.
    adopter.upsert_page(run, &findings(10..28)).unwrap();
    match old.upsert_page(run, &findings(0..1)) {
        Err(StoreError::LeaseLost(_)) => {}
        other => panic!("after the adopter's page: {other:?}"),
    }
    let row = adopter.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!(row.state, RunState::Succeeded);
    assert_eq!(row.counts.fixed, 2, "28 and 29, absent from the listing");
    assert!(matches!(
        old.finish_run(run, RunEnd::Succeeded),
        Err(StoreError::Invalid(_))
    ));
}

/// A run whose lease expired while no one took the scan: its page is refused, and a
/// "complete" end fixes nothing (it ends interrupted), though the run is still its own.
#[test]
fn a_run_whose_lease_expired_untaken_stores_no_page_and_its_end_fixes_nothing() {
    let (db, mut first) = temp_store();
    let watcher = other_process(&db);
    import(&mut first, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let run = first.begin_run(&scope("shop")).unwrap();
    first.upsert_page(run, &findings(0..5)).unwrap();
    watcher
        .conn
        .execute(
            "UPDATE scan_leases SET expires_at = '2000-01-01T00:00:00.000Z'",
            [],
        )
        .unwrap();
    assert!(matches!(
        first.upsert_page(run, &findings(5..10)),
        Err(StoreError::LeaseLost(r)) if r == run
    ));
    let row = first.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!(row.state, RunState::Interrupted, "{:?}", row.error);
    assert_eq!((row.counts.fixed, row.counts.missing), (0, 0));
    assert_eq!(
        count(
            &watcher,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        0
    );
    assert_eq!(
        count(&watcher, "SELECT count(*) FROM scan_leases"),
        0,
        "its end let go of the lease"
    );
}

/// Two processes importing different scans at once: each page's context (the largest
/// finding and event ids) is read once the page holds the write lock, so a page counts and
/// writes `created` events for its own rows only, never for rows the other process
/// committed meanwhile.
#[test]
fn pages_of_two_processes_at_once_count_and_record_only_their_own_rows() {
    const RUNS: usize = 4;
    const PAGES: usize = 6;
    const PER_PAGE: usize = 15;
    let db = TestDb::new();
    let stores = [db.open(), db.open()];
    let scans = ["shop", "billing"];
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = stores
        .into_iter()
        .zip(scans)
        .map(|(mut store, scan)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut pages = Vec::new();
                let mut rows = Vec::new();
                for r in 0..RUNS {
                    let run = store.begin_run(&scope(scan)).unwrap();
                    for p in 0..PAGES {
                        // Each run lists everything so far and one new page more.
                        let first = (r * PAGES + p) * PER_PAGE;
                        let mut page = findings(first..first + PER_PAGE);
                        if r > 0 && p == 0 {
                            page.extend(findings(0..r * PAGES * PER_PAGE));
                        }
                        pages.push((page.len(), store.upsert_page(run, &page).unwrap()));
                    }
                    rows.push(store.finish_run(run, RunEnd::Succeeded).unwrap());
                }
                (scan, pages, rows)
            })
        })
        .collect();
    for handle in handles {
        let (scan, pages, rows) = handle.join().unwrap();
        for (i, (len, counts)) in pages.iter().enumerate() {
            let fresh = PER_PAGE as u64;
            let known = *len as u64 - fresh;
            assert_eq!(
                (
                    counts.seen,
                    counts.new,
                    counts.open,
                    counts.reopened,
                    counts.fixed
                ),
                (*len as u64, fresh, known, 0, 0),
                "{scan}, page {i}"
            );
        }
        for row in &rows {
            assert_eq!(row.state, RunState::Succeeded, "{scan}: {:?}", row.error);
            assert_eq!(row.counts.fixed, 0, "{scan}");
        }
    }
    let store = db.open();
    let total = (RUNS * PAGES * PER_PAGE * 2) as i64;
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), total);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM finding_events WHERE kind = 'created'"
        ),
        total,
        "one created event per finding"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings f
             WHERE (SELECT count(*) FROM finding_events e
                    WHERE e.finding_id = f.id AND e.kind = 'created') != 1"
        ),
        0
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM finding_events e JOIN findings f ON f.id = e.finding_id
             WHERE e.kind = 'created' AND e.run_id != f.last_run_id
               AND e.run_id NOT IN (SELECT id FROM sync_runs WHERE scan_id = f.scan_id)"
        ),
        0,
        "each created event names a run of its finding's scan"
    );
    assert_eq!(
        count(&store, "SELECT CAST(sum(new) AS BIGINT) FROM sync_runs"),
        total,
        "the runs' new counts add up to the findings"
    );
}

/// A newer run succeeds between two pages of an older one (its process died after the first
/// page; another node ran the scan; a third adopted the old run): the older run's later
/// pages are stale (what the newer listing lacked is stored fixed, what it decided stays),
/// and its complete end fixes nothing.
#[test]
fn a_newer_success_between_two_pages_of_an_older_run_makes_the_rest_stale() {
    let (db, mut first) = temp_store();
    let mut second = other_process(&db);
    let mut third = other_process(&db);
    import(&mut first, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let old = first.begin_run(&scheduled("shop")).unwrap();
    first.set_vendor_scan_id(old, "vs-old").unwrap();
    let page1 = first.upsert_page(old, &findings(0..10)).unwrap();
    assert_eq!((page1.new, page1.open), (0, 10));
    expire(&second, &first.owner().id.clone());
    // The newer run (the lease expired) lists 0..29 and 40: 29 fixed, 40 new.
    let mut listing = findings(0..29);
    listing.push(finding(40));
    let newer = import(&mut second, "shop", &[listing], RunEnd::Succeeded);
    assert_eq!((newer.counts.fixed, newer.counts.new), (1, 1));
    third.adopt_run(old).unwrap().unwrap().unwrap();
    // Its second page: 29 (fixed by the newer run), 41 (the newer run lacked it).
    let page2 = third
        .upsert_page(old, &[finding(29), finding(41), finding(12)])
        .unwrap();
    assert_eq!((page2.new, page2.reopened), (0, 0), "{page2:?}");
    let state = |n: usize| {
        let fp = finding(n).fingerprint(0);
        second
            .conn
            .query_row(
                "SELECT state FROM findings WHERE fingerprint = ?1",
                params![fp],
                |r| r.get::<String>(0),
            )
            .unwrap()
    };
    assert_eq!(state(29), "fixed", "what the newer run fixed stays fixed");
    assert_eq!(
        state(41),
        "fixed",
        "what the newer listing lacked is stored fixed"
    );
    let row = third.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(row.state, RunState::Succeeded);
    assert_eq!(row.counts.fixed, 0, "an older listing fixes nothing");
    assert_eq!(state(40), "new", "the newer run's finding stays");
    assert_eq!(state(20), "open");
}

/// A page sent again with new findings behind it: on PostgreSQL the optimistic statement is
/// undone (ROLLBACK TO SAVEPOINT) and the page planned again; the bounds read when the
/// transaction began still mark exactly the rows the page keeps. Batched and one finding at
/// a time end the same, with one `created` event per finding.
#[test]
fn a_page_planned_again_after_its_savepoint_rollback_records_each_row_once() {
    use super::ingest::ONE_BY_ONE;
    let outcome = |one_by_one: bool| -> PageOutcome {
        ONE_BY_ONE.with(|o| o.set(one_by_one));
        let (db, mut store) = temp_store();
        let mut other = other_process(&db);
        let mut counts = Vec::new();
        // Another scan's rows interleave with this one's ids.
        import(&mut other, "billing", &[findings(0..7)], RunEnd::Succeeded);
        let run = store.begin_run(&scope("shop")).unwrap();
        counts.push(store.upsert_page(run, &findings(0..10)).unwrap());
        import(&mut other, "billing", &[findings(0..9)], RunEnd::Succeeded);
        // Sent again, with five new findings after the known ones, then before them.
        let mut again = findings(0..10);
        again.extend(findings(10..15));
        counts.push(store.upsert_page(run, &again).unwrap());
        let mut before = findings(15..20);
        before.extend(findings(0..15));
        counts.push(store.upsert_page(run, &before).unwrap());
        counts.push(store.finish_run(run, RunEnd::Succeeded).unwrap().counts);
        ONE_BY_ONE.with(|o| o.set(false));
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM findings f
                 WHERE (SELECT count(*) FROM finding_events e
                        WHERE e.finding_id = f.id AND e.kind = 'created') != 1"
            ),
            0
        );
        page_outcome(&store, counts)
    };
    let batched = outcome(false);
    assert_eq!(
        batched
            .0
            .iter()
            .map(|c| (c.seen, c.new))
            .collect::<Vec<_>>(),
        vec![(10, 10), (5, 5), (5, 5), (20, 20)]
    );
    if on_postgres() {
        assert_eq!(batched, outcome(true));
    }
}

/// A branch scope's new findings inherit the base scan's triage (its `state_set` events
/// written in the findings' id order), counted once, and the inherited events follow the
/// rows' `created` events, whatever order the vendor lists them in.
#[test]
fn a_branch_pages_inherited_triage_is_written_once_in_the_findings_order() {
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..12)], RunEnd::Succeeded);
    let accept = super::tests::accept(None);
    for n in [2, 5, 9, 11] {
        let id = super::tests::id_of(&store, &finding(n));
        store.triage(id, &accept).unwrap();
    }
    let mut backwards = findings(0..12);
    backwards.reverse();
    let run = store.begin_run(&scope("shop@feature")).unwrap();
    let counts = store.upsert_page(run, &backwards[..6]).unwrap();
    assert_eq!(counts.seen, 6);
    let counts2 = store.upsert_page(run, &backwards[6..]).unwrap();
    assert_eq!(counts2.seen, 6);
    let row = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!(row.counts.seen, 12);
    let ids = |sql: &str| -> Vec<i64> {
        let mut stmt = store.conn.prepare(sql).unwrap();
        stmt.query_map(params![run], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let inherited = ids(
        "SELECT finding_id FROM finding_events WHERE run_id = ?1 AND kind = 'state_set'
         ORDER BY id",
    );
    assert_eq!(inherited.len(), 4, "one inherited triage event each");
    let mut sorted = inherited.clone();
    sorted.sort();
    assert_eq!(inherited, sorted, "in the findings' order");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings f JOIN scans s ON s.id = f.scan_id
             WHERE s.name = 'shop@feature' AND f.state = 'accepted'"
        ),
        4
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM finding_events e JOIN finding_events c
                 ON c.finding_id = e.finding_id AND c.kind = 'created'
             WHERE e.kind = 'state_set' AND e.id < c.id"
        ),
        0,
        "each after its row's created event"
    );
}

/// The plan's fast path (a page whose first fingerprints are all distinct goes under them
/// without the walk) meets, on pages of distinct identities, what only the walk handled:
/// second findings of an identity the run stored on an earlier page (by lines, by vendor
/// id), the same sighting again under another vendor id, a page sent twice, and the pages
/// of a run adopted by another process (whose plan knows nothing of the run). Batched and
/// one finding at a time end the same.
#[test]
fn the_plans_fast_path_ends_as_one_statement_per_finding_does() {
    use super::ingest::{FELL_BACK, ONE_BY_ONE};
    let outcome = |one_by_one: bool| -> PageOutcome {
        ONE_BY_ONE.with(|o| o.set(one_by_one));
        let (db, mut first) = temp_store();
        let mut second = other_process(&db);
        let mut counts = Vec::new();
        counts.push(
            import(
                &mut first,
                "shop",
                &[vec![at(1, 10, None), at(2, 5, Some("v-2")), finding(3)]],
                RunEnd::Succeeded,
            )
            .counts,
        );
        let run = first.begin_run(&scope("shop")).unwrap();
        first.set_vendor_scan_id(run, "vs-1").unwrap();
        for page in [
            vec![at(1, 10, None), at(2, 5, Some("v-2")), finding(4)],
            // Each distinct on the page, each a second finding of an identity stored above.
            vec![at(1, 11, None), at(2, 5, Some("v-9")), finding(5)],
            // The same page again.
            vec![at(1, 11, None), at(2, 5, Some("v-9")), finding(5)],
            // The first sightings again, then a third finding of identity 1.
            vec![at(2, 5, Some("v-2")), at(1, 10, None), finding(6)],
            vec![at(1, 12, None), finding(7)],
        ] {
            counts.push(first.upsert_page(run, &page).unwrap());
        }
        first.detach_run(run).unwrap();
        first.release_owner().unwrap();
        second.adopt_run(run).unwrap().unwrap().unwrap();
        for page in [
            // The adopter reads the listing from its start.
            vec![at(1, 10, None), at(2, 5, Some("v-2")), finding(4)],
            vec![at(1, 11, None), at(2, 5, Some("v-9")), finding(5)],
            vec![at(1, 12, None), finding(8)],
            vec![at(1, 13, None), at(2, 6, Some("v-10")), finding(3)],
        ] {
            counts.push(second.upsert_page(run, &page).unwrap());
        }
        counts.push(second.finish_run(run, RunEnd::Succeeded).unwrap().counts);
        ONE_BY_ONE.with(|o| o.set(false));
        page_outcome(&second, counts)
    };
    let batched = outcome(false);
    assert_eq!(FELL_BACK.with(|n| n.get()), 0, "no page fell back");
    let rows = &batched.1;
    assert_eq!(rows.len(), 13, "{rows:#?}");
    if on_postgres() {
        let single = outcome(true);
        assert_eq!(batched.0, single.0, "run counts");
        assert_eq!(batched.1, single.1, "rows");
        assert_eq!(batched.2, single.2, "events");
        assert_eq!(batched.3, single.3, "row order");
    }
}
