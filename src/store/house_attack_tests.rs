//! Adversarial tests for issue #14 ("nothing grows forever"): each one attacks a promise of
//! `[store] retention` and the prune, at the store level. The tests that FAIL show a break.

use super::test_db::{age, RUN_TIMES};
use super::tests::{count, finding, findings, import, temp_store};
use super::*;
use crate::config::Retention;

/// Moves every stored time of the store (runs, events, scans, findings' first and last
/// seen) back by `days`, as if all of it had happened that long ago.
fn age_all(store: &Store, days: i64) {
    age(store, days, RUN_TIMES);
    age(store, days, &[("findings", &["first_seen", "last_seen"])]);
}

fn state_of(store: &Store, scan: &str, f: &Finding) -> Option<FindingState> {
    let fp = f.fingerprint(0);
    store
        .findings(&FindingFilter {
            scans: vec![scan.into()],
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .find(|r| r.fingerprint == fp)
        .map(|r| r.state)
}

/// Attacks "runs older than the setting go, but not what the schedules and the staleness
/// signals read": a scan whose project is clean (its runs see no finding) succeeded 200 days
/// ago and has failed since. A prune with the default retention deletes that succeeded run
/// (OLD_RUNS keeps only the newest run of a scan, here the failed one), so
/// `last_successful_syncs` — `/metrics`' last-success gauge and `/readyz`'s
/// `last_success_age_seconds` — forgets the scan exactly when it has been failing longest:
/// an alert on "last success too old" goes silent instead of firing.
#[test]
fn a_prune_keeps_the_last_successful_run_of_a_scan_that_has_failed_since() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[], RunEnd::Succeeded);
    age_all(&store, 200);
    import(
        &mut store,
        "shop",
        &[],
        RunEnd::Failed("vendor down".into()),
    );
    let before = store.last_successful_syncs().unwrap();
    assert!(before.contains_key("shop"), "{before:?}");

    store.prune(&Retention::default()).unwrap();

    let after = store.last_successful_syncs().unwrap();
    assert_eq!(
        after.get("shop"),
        before.get("shop"),
        "the last success of a scan that fails since must survive a prune: {after:?}"
    );
}

/// Attacks "events younger than `[store] retention.events` stay": findings last seen 200
/// days ago (the scan could not run since) are fixed by today's run. A prune with the
/// default retention (events 180 days) deletes those findings at once, because
/// OLD_FIXED_FINDINGS is keyed on `last_seen`, not on when the finding became fixed; their
/// `fixed` events of today go with them (ON DELETE CASCADE), and the run that fixed them
/// names findings that no longer exist.
#[test]
fn a_prune_keeps_the_events_of_findings_fixed_by_todays_run() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    age_all(&store, 200);
    let today = import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    assert_eq!(today.counts.fixed, 5, "{:?}", today.counts);
    let recent = &format!(
        "SELECT count(*) FROM finding_events WHERE kind = 'fixed' AND at > '{}'",
        stamp(chrono::Utc::now() - chrono::Duration::days(1))
    );
    assert_eq!(count(&store, recent), 5);

    let report = store.prune(&Retention::default()).unwrap();

    assert_eq!(
        count(&store, recent),
        5,
        "today's fixed events are younger than every retention; the prune took them: {report:?}"
    );
    assert_eq!(
        state_of(&store, "shop", &finding(7)),
        Some(FindingState::Fixed)
    );
}

/// Attacks the lifecycle rule "nothing false may reach the store or a webhook" through the
/// prune: a person marked a finding a false positive; the vendor stopped reporting it (it is
/// `fixed`, and keeps its triage "so that it returns to it"). After 200 days a prune deletes
/// the fixed finding with its triage (OLD_FIXED_FINDINGS), so when the vendor reports it
/// again it comes back `new` — a "new finding" for something a person already judged false.
#[test]
fn a_false_positive_verdict_survives_a_prune_and_the_finding_returns_triaged() {
    let (_dir, mut store) = temp_store();
    let (f, g) = (finding(3), finding(4));
    import(
        &mut store,
        "shop",
        &[vec![f.clone(), g.clone()]],
        RunEnd::Succeeded,
    );
    store
        .set_local_state("shop", &f.fingerprint(0), FindingState::FalsePositive)
        .unwrap();
    // Gone at the vendor: fixed (with its verdict kept for its return).
    import(&mut store, "shop", &[vec![g.clone()]], RunEnd::Succeeded);
    import(&mut store, "shop", &[vec![g.clone()]], RunEnd::Succeeded);
    assert_eq!(state_of(&store, "shop", &f), Some(FindingState::Fixed));
    age_all(&store, 200);
    import(&mut store, "shop", &[vec![g.clone()]], RunEnd::Succeeded);

    store.prune(&Retention::default()).unwrap();
    import(
        &mut store,
        "shop",
        &[vec![f.clone(), g.clone()]],
        RunEnd::Succeeded,
    );

    assert_eq!(
        state_of(&store, "shop", &f),
        Some(FindingState::FalsePositive),
        "a person's false-positive verdict was forgotten by the prune"
    );
}

/// Guards "open findings are never pruned" (issue #14 tests): open, new, reopened, missing,
/// accepted and false-positive findings of a scan in use, all last seen 400 days ago, with
/// a retention of one day for everything, are all still there after a prune, and the store
/// has no dangling reference.
#[test]
fn a_prune_with_the_shortest_retention_never_takes_a_finding_the_vendor_still_reports() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    store
        .set_local_state(
            "shop",
            &finding(1).fingerprint(0),
            FindingState::FalsePositive,
        )
        .unwrap();
    store
        .triage(
            store
                .resolve_finding(&finding(2).fingerprint(0), Some("shop"))
                .unwrap(),
            &super::tests::accept(None),
        )
        .unwrap();
    // Then 20 of the 30 vanish at once, beyond the guard's share: missing, not fixed.
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let kept = count(
        &store,
        "SELECT count(*) FROM findings WHERE state != 'fixed'",
    );
    assert!(kept >= 10, "{kept}");
    age_all(&store, 400);
    let day = std::time::Duration::from_secs(24 * 3600);
    let short = Retention {
        runs: day,
        events: day,
        notifications: day,
        webhook_deliveries: day,
        branch_scopes: day,
    };

    store.prune(&short).unwrap();

    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE state != 'fixed'"
        ),
        kept
    );
    assert_eq!(super::test_db::foreign_key_violations(&store), 0);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings f WHERE NOT EXISTS
                 (SELECT 1 FROM sync_runs r WHERE r.id = f.last_run_id)"
        ),
        0,
        "a finding's last_run_id names a pruned run"
    );
}

/// Attacks "pruned by the daemon in small batches" (so a page commit never waits behind a
/// long purge): a branch scope that ran 1200 times (a busy feature branch, each push a run)
/// and then went idle for 40 days goes in one `prune_step` with every one of its runs, in
/// a single transaction (`drop_idle_branch_scope` deletes all the scope's runs, events and
/// notifications at once once its findings are gone), far more than `BATCH` rows.
#[test]
fn one_prune_step_deletes_at_most_a_batch_of_runs_of_an_idle_branch_scope() {
    let (_dir, mut store) = temp_store();
    for _ in 0..1200 {
        import(&mut store, "shop@feature", &[], RunEnd::Succeeded);
    }
    import(&mut store, "shop", &[findings(0..3)], RunEnd::Succeeded);
    age_all(&store, 40);
    let runs = "SELECT count(*) FROM sync_runs";
    let before = count(&store, runs);
    assert_eq!(before, 1201);

    store.prune_step(&Retention::default()).unwrap();

    let gone = before - count(&store, runs);
    assert!(
        gone <= super::retention::BATCH,
        "one step deleted {gone} runs (BATCH = {})",
        super::retention::BATCH
    );
    // And the prune still gets there in the end.
    store.prune(&Retention::default()).unwrap();
    assert_eq!(count(&store, runs), 1);
}

/// Guards "prune racing a page import (two processes on one store)": while a run of this
/// process is between pages, another process prunes with a one-day retention; the run's
/// later pages and its end go through, nothing it listed is lost or marked fixed, and no
/// reference dangles.
#[test]
fn a_prune_from_another_process_between_pages_of_a_run_breaks_nothing() {
    let (dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    import(&mut store, "shop", &[findings(0..8)], RunEnd::Succeeded);
    age_all(&store, 400);
    let run = store.begin_run(&super::tests::scope("shop")).unwrap();
    store.upsert_page(run, &findings(0..5)).unwrap();

    let mut other = super::tests::other_process(&dir);
    let day = std::time::Duration::from_secs(24 * 3600);
    let report = other
        .prune(&Retention {
            runs: day,
            events: day,
            notifications: day,
            webhook_deliveries: day,
            branch_scopes: day,
        })
        .unwrap();
    assert_eq!(report.fixed_findings, 2, "{report:?}");

    store.upsert_page(run, &findings(5..10)).unwrap();
    let end = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!(end.state, RunState::Succeeded);
    assert_eq!(end.counts.fixed, 0, "{:?}", end.counts);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        0
    );
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 10);
    assert_eq!(super::test_db::foreign_key_violations(&store), 0);
}
