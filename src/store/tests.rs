//! Dedup and lifecycle rules, pinned against a real store file in a temp folder.

use super::*;
use proptest::prelude::*;
use tempfile::TempDir;

fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state/scansync.db")).unwrap();
    (dir, store)
}

fn scope(scan: &str) -> RunScope {
    RunScope {
        scan: scan.into(),
        instance: "ct-main".into(),
        vendor: "codethreat".into(),
        bind_to: format!("{scan}-project"),
        branch: Some("main".into()),
        trigger: "cli".into(),
    }
}

/// A code finding; `n` picks the rule and file, so different `n` are different findings.
fn finding(n: usize) -> Finding {
    Finding {
        vendor_id: None,
        title: format!("Problem {n}"),
        severity: Severity::ALL[n % 5],
        vendor_status: Some("Open".into()),
        cwe: Some("CWE-89".into()),
        owasp: Some("A03:2021".into()),
        rule_id: Some(format!("rule-{}", n % 7)),
        location: Location::Code {
            path: format!("src/file{n}.rs"),
            start_line: Some(10),
            end_line: Some(12),
        },
        description: Some("desc".into()),
        remediation: None,
        vendor_url: Some(format!("https://ct.example/f/{n}")),
        vendor_first_seen: None,
        vendor_last_seen: None,
        raw: format!("{{\"id\":{n}}}"),
        verdict: None,
    }
}

fn findings(range: std::ops::Range<usize>) -> Vec<Finding> {
    range.map(finding).collect()
}

/// One whole run over `pages`, ended with `end`.
fn import(store: &mut Store, scan: &str, pages: &[Vec<Finding>], end: RunEnd) -> RunRow {
    let run = store.begin_run(&scope(scan)).unwrap();
    for page in pages {
        store.upsert_page(run, page).unwrap();
    }
    store.finish_run(run, end).unwrap()
}

fn fp(f: &Finding, scan: &str) -> String {
    let s = scope(scan);
    f.fingerprint(&s.vendor, &s.bind_to)
}

fn row(store: &Store, scan: &str, f: &Finding) -> FindingRow {
    let fingerprint = fp(f, scan);
    store
        .findings(&FindingFilter {
            scans: vec![scan.into()],
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .find(|r| r.fingerprint == fingerprint)
        .expect("finding is stored")
}

fn count(store: &Store, sql: &str) -> i64 {
    store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn kinds(store: &Store, scan: &str, f: &Finding) -> Vec<String> {
    store
        .events(scan, &fp(f, scan))
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn same_page_twice_adds_no_rows_counts_or_events() {
    let (_dir, mut store) = temp_store();
    let page = findings(0..10);
    let run = store.begin_run(&scope("shop")).unwrap();
    let first = store.upsert_page(run, &page).unwrap();
    assert_eq!((first.seen, first.new, first.pages), (10, 10, 1));
    let rows_before = count(&store, "SELECT count(*) FROM findings");
    let events_before = count(&store, "SELECT count(*) FROM finding_events");
    let again = store.upsert_page(run, &page).unwrap();
    assert_eq!(
        again,
        RunCounts {
            pages: 1,
            ..RunCounts::default()
        }
    );
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), rows_before);
    assert_eq!(
        count(&store, "SELECT count(*) FROM finding_events"),
        events_before
    );
    let done = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!(
        (done.counts.seen, done.counts.new, done.counts.pages),
        (10, 10, 2)
    );
    assert_eq!(row(&store, "shop", &page[0]).times_seen, 1);
    assert_eq!(row(&store, "shop", &page[0]).state, FindingState::New);
}

#[test]
fn same_page_in_the_next_run_opens_without_new_rows_and_counts_the_run() {
    let (_dir, mut store) = temp_store();
    let page = findings(0..10);
    import(
        &mut store,
        "shop",
        std::slice::from_ref(&page),
        RunEnd::Succeeded,
    );
    let second = import(
        &mut store,
        "shop",
        std::slice::from_ref(&page),
        RunEnd::Succeeded,
    );
    assert_eq!(
        (
            second.counts.seen,
            second.counts.new,
            second.counts.open,
            second.counts.fixed
        ),
        (10, 0, 10, 0)
    );
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 10);
    let r = row(&store, "shop", &page[3]);
    assert_eq!((r.state, r.times_seen), (FindingState::Open, 2));
    assert_eq!(kinds(&store, "shop", &page[3]), ["created"]);
}

#[test]
fn finding_that_moved_lines_is_the_same_finding_with_the_latest_location() {
    let (_dir, mut store) = temp_store();
    let before = finding(1);
    let mut after = before.clone();
    after.location = Location::Code {
        path: "src/file1.rs".into(),
        start_line: Some(40),
        end_line: Some(42),
    };
    after.raw = "{\"id\":1,\"line\":40}".into();
    import(&mut store, "shop", &[vec![before]], RunEnd::Succeeded);
    let run = import(
        &mut store,
        "shop",
        &[vec![after.clone()]],
        RunEnd::Succeeded,
    );
    assert_eq!(
        (run.counts.new, run.counts.open, run.counts.fixed),
        (0, 1, 0)
    );
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 1);
    let r = row(&store, "shop", &after);
    assert_eq!(r.finding.location, after.location);
    assert_eq!(r.finding.raw, after.raw);
    assert_eq!(r.state, FindingState::Open);
}

#[test]
fn finding_absent_after_a_complete_run_is_fixed() {
    let (_dir, mut store) = temp_store();
    let all = findings(0..5);
    import(
        &mut store,
        "shop",
        std::slice::from_ref(&all),
        RunEnd::Succeeded,
    );
    let run = import(&mut store, "shop", &[all[..3].to_vec()], RunEnd::Succeeded);
    assert_eq!(run.counts.fixed, 2);
    assert_eq!(row(&store, "shop", &all[4]).state, FindingState::Fixed);
    assert_eq!(row(&store, "shop", &all[0]).state, FindingState::Open);
    let events = store.events("shop", &fp(&all[4], "shop")).unwrap();
    let fixed = events.last().unwrap();
    assert_eq!(fixed.kind, "fixed");
    assert_eq!(fixed.run_id, Some(run.id));
}

#[test]
fn finding_absent_after_a_failed_interrupted_or_timed_out_run_stays_open() {
    let (_dir, mut store) = temp_store();
    let all = findings(0..5);
    import(
        &mut store,
        "shop",
        std::slice::from_ref(&all),
        RunEnd::Succeeded,
    );
    for end in [
        RunEnd::Failed("HTTP 500 from CodeThreat".into()),
        RunEnd::Interrupted("stopping".into()),
        RunEnd::TimedOut("scan did not finish in 1h".into()),
    ] {
        let run = import(&mut store, "shop", &[all[..1].to_vec()], end);
        assert_eq!(run.counts.fixed, 0);
        assert!(run.error.is_some());
        assert!(run.finished_at.is_some());
    }
    assert_eq!(row(&store, "shop", &all[4]).state, FindingState::New);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        0
    );
    let last = store.last_run("shop").unwrap().unwrap();
    assert_eq!(last.state, RunState::TimedOut);
    assert_eq!(last.error.as_deref(), Some("scan did not finish in 1h"));
}

#[test]
fn fixed_finding_seen_again_is_reopened_with_an_event_then_open() {
    let (_dir, mut store) = temp_store();
    let f = finding(2);
    import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    import(&mut store, "shop", &[], RunEnd::Succeeded);
    assert_eq!(row(&store, "shop", &f).state, FindingState::Fixed);
    let back = import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    assert_eq!((back.counts.reopened, back.counts.new), (1, 0));
    assert_eq!(row(&store, "shop", &f).state, FindingState::Reopened);
    let events = store.events("shop", &fp(&f, "shop")).unwrap();
    let reopened = events.last().unwrap();
    assert_eq!(
        (
            reopened.kind.as_str(),
            reopened.run_id,
            reopened.old_value.as_deref()
        ),
        ("reopened", Some(back.id), Some("fixed"))
    );
    import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    assert_eq!(row(&store, "shop", &f).state, FindingState::Open);
    assert_eq!(kinds(&store, "shop", &f), ["created", "fixed", "reopened"]);
}

#[test]
fn local_false_positive_survives_reimport_and_is_never_fixed() {
    let (_dir, mut store) = temp_store();
    let f = finding(3);
    import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    store
        .set_local_state("shop", &fp(&f, "shop"), FindingState::FalsePositive)
        .unwrap();
    let again = import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    assert_eq!((again.counts.seen, again.counts.open), (1, 1));
    assert_eq!(row(&store, "shop", &f).state, FindingState::FalsePositive);
    let gone = import(&mut store, "shop", &[], RunEnd::Succeeded);
    assert_eq!(gone.counts.fixed, 0);
    assert_eq!(row(&store, "shop", &f).state, FindingState::FalsePositive);
    let events = store.events("shop", &fp(&f, "shop")).unwrap();
    assert_eq!(events[1].kind, "state_set");
    assert_eq!(events[1].run_id, None);
    assert_eq!(events[1].new_value.as_deref(), Some("false_positive"));
}

#[test]
fn open_clears_a_local_state_and_the_next_complete_run_can_fix_it() {
    let (_dir, mut store) = temp_store();
    let f = finding(4);
    let key = fp(&f, "shop");
    import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    store
        .set_local_state("shop", &key, FindingState::Accepted)
        .unwrap();
    store
        .set_local_state("shop", &key, FindingState::Open)
        .unwrap();
    assert_eq!(row(&store, "shop", &f).state, FindingState::Open);
    // Open on a finding without a verdict changes nothing and records nothing.
    store
        .set_local_state("shop", &key, FindingState::Open)
        .unwrap();
    assert_eq!(
        kinds(&store, "shop", &f),
        ["created", "state_set", "state_set"]
    );
    import(&mut store, "shop", &[], RunEnd::Succeeded);
    assert_eq!(row(&store, "shop", &f).state, FindingState::Fixed);
}

#[test]
fn set_local_state_refuses_import_states_and_unknown_findings() {
    let (_dir, mut store) = temp_store();
    let f = finding(4);
    import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    let err = store
        .set_local_state("shop", &fp(&f, "shop"), FindingState::Fixed)
        .unwrap_err();
    assert!(err.to_string().contains("not fixed"), "{err}");
    let err = store
        .set_local_state("shop", "0000", FindingState::Accepted)
        .unwrap_err();
    assert!(err.to_string().contains("no finding"), "{err}");
}

#[test]
fn changed_severity_and_vendor_status_are_events_with_old_and_new_values() {
    let (_dir, mut store) = temp_store();
    let mut f = finding(0);
    f.severity = Severity::Low;
    import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    f.severity = Severity::Critical;
    f.vendor_status = Some("Confirmed".into());
    let run = import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    let events = store.events("shop", &fp(&f, "shop")).unwrap();
    let pick = |kind: &str| events.iter().find(|e| e.kind == kind).unwrap().clone();
    let sev = pick("severity_changed");
    assert_eq!(
        (
            sev.old_value.as_deref(),
            sev.new_value.as_deref(),
            sev.run_id
        ),
        (Some("low"), Some("critical"), Some(run.id))
    );
    let status = pick("status_changed");
    assert_eq!(
        (status.old_value.as_deref(), status.new_value.as_deref()),
        (Some("Open"), Some("Confirmed"))
    );
    assert_eq!(row(&store, "shop", &f).finding.severity, Severity::Critical);
    // Unchanged values on the next run add no events.
    import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
    assert_eq!(store.events("shop", &fp(&f, "shop")).unwrap().len(), 3);
}

#[test]
fn same_finding_in_two_scans_is_two_rows_and_fixing_stays_within_its_scan() {
    let (_dir, mut store) = temp_store();
    let page = findings(0..3);
    import(
        &mut store,
        "shop",
        std::slice::from_ref(&page),
        RunEnd::Succeeded,
    );
    import(
        &mut store,
        "billing",
        std::slice::from_ref(&page),
        RunEnd::Succeeded,
    );
    import(&mut store, "billing", &[], RunEnd::Succeeded);
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 6);
    assert_eq!(row(&store, "shop", &page[0]).state, FindingState::New);
    assert_eq!(row(&store, "billing", &page[0]).state, FindingState::Fixed);
}

#[test]
fn runs_are_listed_newest_first_by_scan() {
    let (_dir, mut store) = temp_store();
    let a1 = import(&mut store, "shop", &[], RunEnd::Succeeded);
    let b1 = import(&mut store, "billing", &[], RunEnd::Failed("boom".into()));
    let a2 = import(&mut store, "shop", &[], RunEnd::Succeeded);
    let shop: Vec<RunId> = store
        .runs(Some("shop"), 10)
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(shop, [a2.id, a1.id]);
    let all: Vec<RunId> = store.runs(None, 2).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(all, [a2.id, b1.id]);
    assert_eq!(store.last_run("billing").unwrap().unwrap().id, b1.id);
    assert!(store.last_run("nope").unwrap().is_none());
    let run = store.run(a1.id).unwrap().unwrap();
    assert_eq!(
        (
            run.scan.as_str(),
            run.vendor.as_str(),
            run.branch.as_deref(),
            run.trigger.as_str()
        ),
        ("shop", "codethreat", Some("main"), "cli")
    );
    assert!(store.run(9999).unwrap().is_none());
}

#[test]
fn for_each_finding_filters_by_scan_state_and_this_severity_or_worse() {
    let (_dir, mut store) = temp_store();
    // finding(n) has severity ALL[n % 5]: 0 critical, 1 high, 2 medium, 3 low, 4 info.
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    import(&mut store, "billing", &[findings(0..5)], RunEnd::Succeeded);
    import(&mut store, "billing", &[findings(0..2)], RunEnd::Succeeded);

    let all = store.findings(&FindingFilter::default()).unwrap();
    assert_eq!(all.len(), 15);
    let ranks: Vec<Severity> = all.iter().map(|r| r.finding.severity).collect();
    let mut sorted = ranks.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ranks, sorted, "worst severity first");

    let high_or_worse = store
        .findings(&FindingFilter {
            min_severity: Some(Severity::High),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(high_or_worse.len(), 6);
    assert!(high_or_worse
        .iter()
        .all(|r| r.finding.severity >= Severity::High));

    let fixed_billing = store
        .findings(&FindingFilter {
            scans: vec!["billing".into()],
            states: vec![FindingState::Fixed],
            min_severity: None,
        })
        .unwrap();
    assert_eq!(fixed_billing.len(), 3);
    assert!(fixed_billing
        .iter()
        .all(|r| r.scan == "billing" && r.instance == "ct-main" && r.vendor == "codethreat"));

    let mut streamed = 0;
    store
        .for_each_finding(
            &FindingFilter {
                scans: vec!["shop".into(), "billing".into()],
                states: vec![FindingState::New, FindingState::Open],
                min_severity: Some(Severity::Critical),
            },
            |r| {
                assert_eq!(r.finding.severity, Severity::Critical);
                streamed += 1;
                Ok::<_, StoreError>(())
            },
        )
        .unwrap();
    assert_eq!(streamed, 3);
}

#[test]
fn for_each_finding_stops_at_the_callers_error() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let mut calls = 0;
    let result = store.for_each_finding(&FindingFilter::default(), |_| {
        calls += 1;
        Err(StoreError::Invalid("reader gone".into()))
    });
    assert!(result.is_err());
    assert_eq!(calls, 1);
}

#[test]
fn open_by_severity_counts_only_open_states() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    import(&mut store, "shop", &[findings(0..6)], RunEnd::Succeeded);
    store
        .set_local_state("shop", &fp(&finding(0), "shop"), FindingState::Accepted)
        .unwrap();
    let open = store.open_by_severity("shop").unwrap();
    assert_eq!(open[&Severity::Critical], 1);
    // Open: 1..6 (0 is accepted, 6..10 fixed); severities cycle critical, high, … info.
    assert_eq!(open[&Severity::High], 1);
    assert_eq!(open[&Severity::Medium], 1);
    assert_eq!(open[&Severity::Low], 1);
    assert_eq!(open[&Severity::Info], 1);
    assert_eq!(store.open_by_severity("nope").unwrap()[&Severity::High], 0);
}

#[test]
fn recover_unfinished_interrupts_a_dead_owners_run_and_keeps_its_vendor_scan_id() {
    let (_dir, mut store) = temp_store();
    let dead = store.begin_run(&scope("shop")).unwrap();
    store.set_vendor_scan_id(dead, "vs-42").unwrap();
    store.upsert_page(dead, &findings(0..4)).unwrap();
    let live = store.begin_run(&scope("billing")).unwrap();
    // Pretend another process began `dead`: same pid, different start time = a recycled pid.
    store
        .conn
        .execute(
            "UPDATE sync_runs SET owner_started = 'not-a-start-time' WHERE id = ?1",
            [dead],
        )
        .unwrap();

    let recovered = store.recover_unfinished().unwrap();
    assert_eq!(recovered.len(), 1);
    let run = &recovered[0];
    assert_eq!(run.id, dead);
    assert_eq!(run.state, RunState::Interrupted);
    assert_eq!(run.vendor_scan_id.as_deref(), Some("vs-42"));
    assert_eq!(run.counts.pages, 1);
    assert!(run.error.as_deref().unwrap().contains("interrupted"));
    assert_eq!(store.run(live).unwrap().unwrap().state, RunState::Running);
    // Nothing was fixed by the interruption, and nothing is recovered twice.
    assert_eq!(
        count(&store, "SELECT count(*) FROM findings WHERE state = 'new'"),
        4
    );
    assert!(store.recover_unfinished().unwrap().is_empty());
}

#[test]
fn abandoned_runs_are_listed_unchanged_and_taken_over_once() {
    let (_dir, mut store) = temp_store();
    let dead = store.begin_run(&scope("shop")).unwrap();
    store.set_vendor_scan_id(dead, "vs-7").unwrap();
    let live = store.begin_run(&scope("billing")).unwrap();
    let ended = store.begin_run(&scope("web")).unwrap();
    store.finish_run(ended, RunEnd::Succeeded).unwrap();
    // Another process began `dead` and is gone: same pid, another start time.
    store
        .conn
        .execute(
            "UPDATE sync_runs SET owner_started = 'not-a-start-time' WHERE id = ?1",
            [dead],
        )
        .unwrap();

    let listed = store.abandoned_runs().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, dead);
    assert_eq!(
        listed[0].state,
        RunState::Running,
        "listing changes nothing"
    );
    assert_eq!(listed[0].vendor_scan_id.as_deref(), Some("vs-7"));
    assert_eq!(store.run(dead).unwrap().unwrap().state, RunState::Running);

    let taken = store
        .interrupt_abandoned_run(dead)
        .unwrap()
        .expect("taken over");
    assert_eq!(taken.state, RunState::Interrupted);
    assert_eq!(taken.vendor_scan_id.as_deref(), Some("vs-7"));
    assert!(taken
        .error
        .as_deref()
        .unwrap()
        .contains("stopped before the run finished"));
    assert!(
        store.interrupt_abandoned_run(dead).unwrap().is_none(),
        "only once"
    );
    assert!(
        store.interrupt_abandoned_run(live).unwrap().is_none(),
        "owner alive"
    );
    assert!(
        store.interrupt_abandoned_run(ended).unwrap().is_none(),
        "already ended"
    );
    assert_eq!(store.run(live).unwrap().unwrap().state, RunState::Running);
    assert_eq!(
        store.run(ended).unwrap().unwrap().state,
        RunState::Succeeded
    );
    assert!(store.abandoned_runs().unwrap().is_empty());
}

#[test]
fn opening_the_store_leaves_a_live_writers_running_run_alone() {
    let (dir, mut writer) = temp_store();
    let run = writer.begin_run(&scope("shop")).unwrap();
    writer.upsert_page(run, &findings(0..3)).unwrap();
    let reader = Store::open(&dir.path().join("state/scansync.db")).unwrap();
    assert_eq!(reader.run(run).unwrap().unwrap().state, RunState::Running);
    assert_eq!(reader.findings(&FindingFilter::default()).unwrap().len(), 3);
}

#[test]
fn finishing_or_adding_pages_to_an_ended_run_is_refused() {
    let (_dir, mut store) = temp_store();
    let run = store.begin_run(&scope("shop")).unwrap();
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert!(matches!(
        store.finish_run(run, RunEnd::Succeeded),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.upsert_page(run, &findings(0..1)),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.upsert_page(4242, &findings(0..1)),
        Err(StoreError::Invalid(_))
    ));
    assert!(store.set_vendor_scan_id(4242, "x").is_err());
}

#[test]
fn a_newer_schema_version_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scansync.db");
    drop(Store::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    match Store::open(&path) {
        Err(e @ StoreError::SchemaTooNew { found: 99, .. }) => {
            assert!(e.to_string().contains("upgrade scansync"), "{e}")
        }
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a newer schema must be refused"),
    }
}

#[test]
fn reopening_keeps_data_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scansync.db");
    {
        let mut store = Store::open(&path).unwrap();
        import(&mut store, "shop", &[findings(0..3)], RunEnd::Succeeded);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(
        count(&store, "PRAGMA user_version"),
        MIGRATIONS.last().unwrap().0
    );
    assert_eq!(count(&store, "PRAGMA foreign_keys"), 1);
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 3);
}

/// Every row of a table as text, in id order, for before/after comparisons.
fn dump(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {table} ORDER BY id"))
        .unwrap();
    let width = stmt.column_count();
    stmt.query_map([], |r| {
        (0..width)
            .map(|i| Ok(format!("{:?}", r.get_ref(i)?)))
            .collect::<Result<Vec<_>, _>>()
            .map(|cells| cells.join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn version_1_store_is_rebuilt_by_migration_5_with_rows_events_and_cascades_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scansync.db");
    let (findings_v1, events_v1) = {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        conn.execute_batch(MIGRATIONS[0].1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO instances VALUES (1, 'ct-main', 'codethreat', 't0');
             INSERT INTO scans VALUES (1, 'shop', 1, 'shop-project', NULL, 't0');
             INSERT INTO sync_runs (id, scan_id, scan, instance, vendor, bind_to, trigger, state,
                 started_at, finished_at, seen, new, pages)
             VALUES (1, 1, 'shop', 'ct-main', 'codethreat', 'shop-project', 'cli', 'succeeded',
                 't0', 't1', 2, 2, 1);
             INSERT INTO findings (id, scan_id, fingerprint, state, title, severity,
                 vendor_status, location_kind, file_path, start_line, raw, first_seen,
                 last_seen, times_seen, last_run_id)
             VALUES (1, 1, 'fp-a', 'new', 'A', 'high', 'Open', 'code', 'a.rs', 3, '{}', 't0',
                     't0', 1, 1),
                    (2, 1, 'fp-b', 'fixed', 'B', 'high', 'Open', 'unknown', NULL, NULL, '{}', 't0',
                     't0', 1, 1);
             INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
             VALUES (2, 1, 'fixed', 'new', 'fixed', 't1');",
        )
        .unwrap();
        (dump(&conn, "findings"), dump(&conn, "finding_events"))
    };
    assert_eq!(events_v1.len(), 3, "two created events and one fixed");

    let mut store = Store::open(&path).unwrap();
    assert_eq!(
        count(&store, "PRAGMA user_version"),
        MIGRATIONS.last().unwrap().0
    );
    assert_eq!(dump(&store.conn, "findings"), findings_v1);
    assert_eq!(dump(&store.conn, "finding_events"), events_v1);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM sqlite_schema
             WHERE tbl_name IN ('findings', 'finding_events') AND sql LIKE '% IN (%'"
        ),
        0,
        "no CHECK with an IN list is left on the hot tables"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"
        ),
        4
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );
    // The checks still refuse a word outside the vocabulary.
    assert!(store
        .conn
        .execute("UPDATE findings SET state = 'closed' WHERE id = 1", [])
        .is_err());
    assert!(store
        .conn
        .execute("UPDATE findings SET severity = 'severe' WHERE id = 1", [])
        .is_err());

    // Imports go on as before: the fixed finding B comes back reopened (trigger; same
    // severity and status as `finding(1)`, so no other event), a new one is created, and
    // deleting a finding still deletes its history.
    let run = store.begin_run(&scope("shop")).unwrap();
    store
        .conn
        .execute(
            "UPDATE findings SET fingerprint = ?1 WHERE id = 2",
            params![fp(&finding(1), "shop")],
        )
        .unwrap();
    let counts = store.upsert_page(run, &findings(1..3)).unwrap();
    assert_eq!((counts.seen, counts.new, counts.reopened), (2, 1, 1));
    assert_eq!(
        kinds(&store, "shop", &finding(1)),
        ["created", "fixed", "reopened"]
    );
    store
        .conn
        .execute("DELETE FROM findings WHERE id = 2", [])
        .unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM finding_events WHERE finding_id = 2"
        ),
        0
    );
}

#[test]
fn a_page_transaction_dropped_without_commit_leaves_no_trace() {
    let (_dir, mut store) = temp_store();
    let run = store.begin_run(&scope("shop")).unwrap();
    store.upsert_page(run, &findings(0..5)).unwrap();
    {
        let tx = store.conn.transaction().unwrap();
        upsert_page_in(&tx, run, &findings(5..10)).unwrap();
        // Dropped here: the crash between writing rows and committing.
    }
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 5);
    assert_eq!(store.run(run).unwrap().unwrap().counts.pages, 1);
    // The retry of that page stores it once.
    store.upsert_page(run, &findings(0..10)).unwrap();
    let done = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!((done.counts.seen, done.counts.new), (10, 10));
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 10);
    let ok: String = store
        .conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

// ---- any order and repetition of pages ends in the same rows ----

const SET_SIZE: usize = 10_000;
const PAGE_SIZE: usize = 500;
const PAGES: usize = SET_SIZE / PAGE_SIZE;

/// A varied 10k set: code and API findings, some with stable vendor ids.
fn varied_finding(n: usize) -> Finding {
    let mut f = finding(n);
    if n % 3 == 0 {
        f.location = Location::Api {
            method: "GET".into(),
            path: format!("/v1/items/{n}"),
            host: "api.example.com".into(),
        };
    }
    if n % 4 == 0 {
        f.vendor_id = Some(format!("gap-{n}"));
    }
    if n % 11 == 0 {
        f.location = Location::Unknown;
    }
    f
}

fn page_set() -> Vec<Vec<Finding>> {
    (0..PAGES)
        .map(|p| {
            (p * PAGE_SIZE..(p + 1) * PAGE_SIZE)
                .map(varied_finding)
                .collect()
        })
        .collect()
}

/// Every row without scansync's timestamps, in a stable order.
fn comparable_rows(store: &Store) -> Vec<String> {
    store
        .findings(&FindingFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| {
            format!(
                "{} {} {} {:?} {}",
                r.scan, r.fingerprint, r.state, r.finding, r.times_seen
            )
        })
        .collect()
}

fn import_in_order(store: &mut Store, pages: &[Vec<Finding>], order: &[usize]) -> RunRow {
    let run = store.begin_run(&scope("shop")).unwrap();
    for &p in order {
        store.upsert_page(run, &pages[p]).unwrap();
    }
    store.finish_run(run, RunEnd::Succeeded).unwrap()
}

fn canonical() -> &'static (Vec<String>, RunCounts, i64) {
    static CANONICAL: std::sync::OnceLock<(Vec<String>, RunCounts, i64)> =
        std::sync::OnceLock::new();
    CANONICAL.get_or_init(|| {
        let (_dir, mut store) = temp_store();
        let pages = page_set();
        let order: Vec<usize> = (0..PAGES).collect();
        let run = import_in_order(&mut store, &pages, &order);
        let events = count(&store, "SELECT count(*) FROM finding_events");
        (comparable_rows(&store), run.counts, events)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn any_order_and_repetition_of_pages_gives_the_same_rows(
        order in Just((0..PAGES).collect::<Vec<usize>>())
            .prop_flat_map(|all| {
                prop::collection::vec(0..PAGES, 0..PAGES).prop_flat_map(move |extra| {
                    let mut seq = all.clone();
                    seq.extend(extra);
                    Just(seq).prop_shuffle()
                })
            })
    ) {
        let (rows, counts, events) = canonical();
        let (_dir, mut store) = temp_store();
        let pages = page_set();
        let run = import_in_order(&mut store, &pages, &order);
        prop_assert_eq!(&comparable_rows(&store), rows);
        prop_assert_eq!(run.counts.seen, counts.seen);
        prop_assert_eq!(run.counts.new, counts.new);
        prop_assert_eq!(run.counts.pages, order.len() as u64);
        prop_assert_eq!(count(&store, "SELECT count(*) FROM finding_events"), *events);
    }
}

// ---------------------------------------------------------------------------------------
// The webhook outbox.

use crate::webhooks::{EventType, Route};

fn route(name: &str, events: &[EventType], min: Option<Severity>, scans: &[&str]) -> Route {
    Route {
        name: name.into(),
        events: events.to_vec(),
        min_severity: min,
        scans: scans.iter().map(|s| s.to_string()).collect(),
    }
}

/// `(webhook, event_type, payload)` of every outbox row, oldest first.
fn outbox(store: &Store) -> Vec<(String, String, serde_json::Value)> {
    let mut stmt = store
        .conn
        .prepare("SELECT webhook, event_type, payload FROM webhook_outbox ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })
    .unwrap()
    .map(|r| {
        let (w, e, p) = r.unwrap();
        (w, e, serde_json::from_str(&p).unwrap())
    })
    .collect()
}

fn listed_fingerprints(payload: &serde_json::Value) -> Vec<String> {
    payload["data"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fingerprint"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn without_webhooks_finishing_a_run_writes_no_notification() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..5)], RunEnd::Succeeded);
    assert_eq!(count(&store, "SELECT count(*) FROM webhook_outbox"), 0);
    assert_eq!(store.outbox_depth().unwrap(), 0);
}

#[test]
fn new_findings_notify_each_matching_webhook_once_with_its_severity_filter() {
    let (_dir, mut store) = temp_store();
    store.set_webhook_routes(vec![
        route("all", &[EventType::FindingsNew], None, &[]),
        route(
            "critical-only",
            &[EventType::FindingsNew],
            Some(Severity::Critical),
            &[],
        ),
        route("other-scan", &[EventType::FindingsNew], None, &["api"]),
        route("fixes-only", &[EventType::FindingsFixed], None, &[]),
    ]);
    // Severities cycle critical, high, medium, low, info: 0 and 5 are critical.
    let page = findings(0..10);
    let run = import(
        &mut store,
        "shop",
        std::slice::from_ref(&page),
        RunEnd::Succeeded,
    );
    let rows = outbox(&store);
    assert_eq!(
        rows.iter()
            .map(|(w, e, _)| (w.as_str(), e.as_str()))
            .collect::<Vec<_>>(),
        [("all", "findings.new"), ("critical-only", "findings.new")]
    );
    let all = &rows[0].2;
    assert_eq!(all["type"], "findings.new");
    assert_eq!(all["data"]["scan"], "shop");
    assert_eq!(all["data"]["run_id"], run.id);
    assert_eq!(all["data"]["counts"]["new"], 10);
    assert_eq!(all["data"]["more"], 0);
    assert_eq!(listed_fingerprints(all).len(), 10);
    assert_eq!(all["data"]["findings"][0]["severity"], "critical");
    let critical = &rows[1].2;
    let mut want = vec![fp(&page[0], "shop"), fp(&page[5], "shop")];
    want.sort();
    assert_eq!(listed_fingerprints(critical), want);
    assert_eq!(store.outbox_depth().unwrap(), 2);

    // The next run sees the same findings: nothing is new, nothing is sent.
    import(&mut store, "shop", &[page], RunEnd::Succeeded);
    assert_eq!(outbox(&store).len(), 2);
}

#[test]
fn a_notification_lists_the_worst_100_findings_and_counts_the_rest() {
    let (_dir, mut store) = temp_store();
    store.set_webhook_routes(vec![route("all", &[EventType::FindingsNew], None, &[])]);
    import(&mut store, "shop", &[findings(0..150)], RunEnd::Succeeded);
    let rows = outbox(&store);
    assert_eq!(rows.len(), 1);
    let payload = &rows[0].2;
    assert_eq!(listed_fingerprints(payload).len(), 100);
    assert_eq!(payload["data"]["more"], 50);
    // 30 of each severity: the 100 listed are every critical, high and medium one, plus 10 low.
    let severities: Vec<&str> = payload["data"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["severity"].as_str().unwrap())
        .collect();
    assert_eq!(severities.iter().filter(|s| **s == "critical").count(), 30);
    assert_eq!(severities.iter().filter(|s| **s == "low").count(), 10);
    assert!(!severities.contains(&"info"));
}

#[test]
fn fixed_and_reopened_findings_are_notified_by_the_run_that_changed_them() {
    let (_dir, mut store) = temp_store();
    let all = findings(0..6);
    import(
        &mut store,
        "shop",
        std::slice::from_ref(&all),
        RunEnd::Succeeded,
    );
    store.set_webhook_routes(vec![route(
        "changes",
        &[EventType::FindingsFixed, EventType::FindingsReopened],
        None,
        &[],
    )]);
    let fixing = import(&mut store, "shop", &[all[..4].to_vec()], RunEnd::Succeeded);
    let rows = outbox(&store);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "findings.fixed");
    let mut want = vec![fp(&all[4], "shop"), fp(&all[5], "shop")];
    want.sort();
    let mut got = listed_fingerprints(&rows[0].2);
    got.sort();
    assert_eq!(got, want);
    assert_eq!(rows[0].2["data"]["run_id"], fixing.id);
    assert_eq!(rows[0].2["data"]["counts"]["fixed"], 2);
    assert!(rows[0].2["data"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["state"] == "fixed"));

    import(
        &mut store,
        "shop",
        std::slice::from_ref(&all),
        RunEnd::Succeeded,
    );
    let rows = outbox(&store);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].1, "findings.reopened");
    let mut got = listed_fingerprints(&rows[1].2);
    got.sort();
    assert_eq!(got, want);
}

#[test]
fn run_failed_is_sent_for_failed_and_timed_out_runs_but_not_interrupted_ones() {
    let (_dir, mut store) = temp_store();
    store.set_webhook_routes(vec![route("ops", &[EventType::RunFailed], None, &[])]);
    import(&mut store, "shop", &[findings(0..3)], RunEnd::Succeeded);
    import(
        &mut store,
        "shop",
        &[],
        RunEnd::Failed("HTTP 500 from CodeThreat".into()),
    );
    import(
        &mut store,
        "shop",
        &[],
        RunEnd::Interrupted("stopping".into()),
    );
    import(
        &mut store,
        "shop",
        &[],
        RunEnd::TimedOut("2h passed".into()),
    );
    let rows = outbox(&store);
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|(_, e, p)| (e.as_str(), p["data"]["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("run.failed", "failed"), ("run.failed", "timed_out")]
    );
    assert_eq!(rows[0].2["data"]["error"], "HTTP 500 from CodeThreat");
}

#[test]
fn a_branch_run_notifies_the_webhooks_of_its_configured_scan() {
    let (_dir, mut store) = temp_store();
    store.set_webhook_routes(vec![route(
        "shop-hook",
        &[EventType::FindingsNew],
        None,
        &["shop"],
    )]);
    let mut branch_scope = scope("shop@feature-x");
    branch_scope.branch = Some("feature-x".into());
    let run = store.begin_run(&branch_scope).unwrap();
    store.upsert_page(run, &findings(0..2)).unwrap();
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    let rows = outbox(&store);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2["data"]["scan"], "shop@feature-x");
    assert_eq!(rows[0].2["data"]["branch"], "feature-x");
}

#[test]
fn delivery_bookkeeping_claims_retries_delivers_and_gives_up() {
    let (_dir, mut store) = temp_store();
    store.set_webhook_routes(vec![
        route("a", &[EventType::FindingsNew], None, &[]),
        route("b", &[EventType::FindingsNew], None, &[]),
    ]);
    import(&mut store, "shop", &[findings(0..2)], RunEnd::Succeeded);
    let now = chrono::Utc::now();
    let due = store.due_webhook_messages(now, 10).unwrap();
    assert_eq!(due.len(), 2);
    assert!(due
        .iter()
        .all(|m| m.msg_id.starts_with("msg_") && m.attempts == 0));
    assert_ne!(due[0].msg_id, due[1].msg_id);
    assert!(store.next_webhook_due().unwrap().unwrap() <= now);

    // A claim takes the row out of the due set until its lease ends; a second claim based
    // on the same read loses.
    let lease = now + chrono::Duration::seconds(15);
    assert!(store.claim_webhook_message(&due[0], now, lease).unwrap());
    assert!(!store.claim_webhook_message(&due[0], now, lease).unwrap());
    assert_eq!(store.due_webhook_messages(now, 10).unwrap().len(), 1);

    // A failed attempt: due again later, with the attempt counted and the error kept.
    let later = now + chrono::Duration::seconds(30);
    store
        .webhook_retry(due[0].id, Some(503), "HTTP 503 Service Unavailable", later)
        .unwrap();
    let again = store.due_webhook_messages(later, 10).unwrap();
    let retried = again.iter().find(|m| m.id == due[0].id).unwrap();
    assert_eq!(retried.attempts, 1);
    assert_eq!(
        retried.msg_id, due[0].msg_id,
        "the webhook-id never changes"
    );

    assert!(store.claim_webhook_message(retried, later, later).unwrap());
    store.webhook_delivered(due[0].id, 204, later).unwrap();
    assert!(store.claim_webhook_message(&due[1], now, lease).unwrap());
    store
        .webhook_gave_up(due[1].id, Some(410), "gave up: 410 Gone", later)
        .unwrap();

    assert_eq!(store.outbox_depth().unwrap(), 0);
    assert_eq!(store.next_webhook_due().unwrap(), None);
    let undelivered = store.webhook_outbox(false).unwrap();
    assert_eq!(undelivered.len(), 1);
    assert_eq!(undelivered[0].state, "gave_up");
    assert_eq!(undelivered[0].last_status, Some(410));
    assert_eq!(
        undelivered[0].last_error.as_deref(),
        Some("gave up: 410 Gone")
    );
    let all = store.webhook_outbox(true).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].state, "delivered");
    assert_eq!(all[0].attempts, 2);
    assert!(all[0].delivered_at.is_some());
}

#[test]
fn finding_counts_group_every_scan_by_state_and_severity() {
    let (_dir, mut store) = temp_store();
    // Severity cycles with n: 0..10 is two of each severity.
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    // The second run misses 0..5: those five become fixed, 5..10 open.
    import(&mut store, "shop", &[findings(5..10)], RunEnd::Succeeded);
    import(&mut store, "empty", &[], RunEnd::Succeeded);
    let counts = store.finding_counts().unwrap();
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        vec!["empty", "shop"],
        "a scan without findings is listed too"
    );
    assert!(counts["empty"].is_empty());
    let shop = &counts["shop"];
    let mut expected = BTreeMap::new();
    for n in 0..10 {
        let state = if n < 5 {
            FindingState::Fixed
        } else {
            FindingState::Open
        };
        *expected
            .entry((state, Severity::ALL[n % 5]))
            .or_insert(0u64) += 1;
    }
    assert_eq!(shop, &expected);
    assert_eq!(shop.values().sum::<u64>(), 10);
}

#[test]
fn last_successful_syncs_take_the_latest_success_and_skip_other_ends() {
    let (_dir, mut store) = temp_store();
    let first = import(&mut store, "shop", &[findings(0..2)], RunEnd::Succeeded);
    let second = import(&mut store, "shop", &[findings(0..2)], RunEnd::Succeeded);
    import(
        &mut store,
        "shop",
        &[],
        RunEnd::Failed("vendor down".into()),
    );
    import(&mut store, "never", &[], RunEnd::Failed("no".into()));
    let last = store.last_successful_syncs().unwrap();
    assert_eq!(last.len(), 1, "{last:?}");
    assert!(second.finished_at >= first.finished_at);
    assert_eq!(Some(&last["shop"]), second.finished_at.as_ref());
}
