//! Dedup and lifecycle rules, pinned against a real store file in a temp folder.

use super::test_db::{on_postgres, TestDb};
use super::*;
use proptest::prelude::*;
use rusqlite::Connection;

/// The id of `f` (the first of its identity) in scan "shop".
pub(super) fn id_of(store: &Store, f: &Finding) -> i64 {
    store
        .resolve_finding(&f.fingerprint(0), Some("shop"))
        .unwrap()
}

/// A person's acceptance, ending on `until` when given.
pub(super) fn accept(until: Option<&str>) -> TriageRequest {
    TriageRequest {
        state: FindingState::Accepted,
        reason: Some("behind the VPN".into()),
        by: Some("dana".into()),
        until: until.map(|u| u.parse().unwrap()),
        reopen_on_severity_increase: false,
    }
}

/// A rule of scan "shop" marking findings whose title holds `title` false positives.
pub(super) fn rule(name: &str, title: &str) -> crate::config::SuppressRule {
    crate::config::SuppressRule {
        name: name.into(),
        scans: vec!["shop".into()],
        rule: None,
        path: None,
        title: Some(title.into()),
        state: crate::config::SuppressState::FalsePositive,
        reason: "test fixtures".into(),
        until: None,
    }
}

pub(super) fn temp_store() -> (TestDb, Store) {
    let db = TestDb::new();
    let store = db.open();
    (db, store)
}

pub(super) fn scope(scan: &str) -> RunScope {
    RunScope {
        scan: scan.into(),
        instance: "ct-main".into(),
        vendor: "codethreat".into(),
        bind_to: format!("{scan}-project"),
        branch: Some("main".into()),
        trigger: "cli".into(),
        ..RunScope::default()
    }
}

/// A code finding; `n` picks the rule and file, so different `n` are different findings.
pub(super) fn finding(n: usize) -> Finding {
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

/// A finding `n` at `line`, with vendor id `vid`: one identity, several sightings.
pub(super) fn at(n: usize, line: u32, vid: Option<&str>) -> Finding {
    let mut f = finding(n);
    f.location = Location::Code {
        path: format!("src/file{n}.rs"),
        start_line: Some(line),
        end_line: Some(line),
    };
    f.vendor_id = vid.map(Into::into);
    f
}

pub(super) fn findings(range: std::ops::Range<usize>) -> Vec<Finding> {
    range.map(finding).collect()
}

/// One whole run over `pages`, ended with `end`.
pub(super) fn import(store: &mut Store, scan: &str, pages: &[Vec<Finding>], end: RunEnd) -> RunRow {
    let run = store.begin_run(&scope(scan)).unwrap();
    for page in pages {
        store.upsert_page(run, page).unwrap();
    }
    store.finish_run(run, end).unwrap()
}

fn fp(f: &Finding, _scan: &str) -> String {
    f.fingerprint(0)
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

pub(super) fn count(store: &Store, sql: &str) -> i64 {
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

/// How often a run's end has read its scan's rows for absent findings (`fix_absent`).
pub(super) fn fix_passes() -> usize {
    ingest::FIX_PASSES.with(|n| n.get())
}

pub(super) fn present_count(store: &Store, scan: &str) -> i64 {
    store
        .conn
        .query_row(
            "SELECT present_count FROM scans WHERE name = ?1",
            params![scan],
            |r| r.get(0),
        )
        .unwrap()
}

/// A complete run that listed every present finding of its scan has nothing to fix, and
/// its end does not read the scan's rows, fixed findings or not; a run that lacks one reads
/// them and fixes it, even when it sent a page twice or listed a sighting twice (each row
/// counts once per run), when it listed as many rows as the scan had present before it (it
/// created some), or when it listed a fixed finding with the vendor's "resolved" word.
#[test]
fn a_run_that_listed_every_present_finding_ends_without_the_pass_and_one_lacking_one_fixes_it() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    assert_eq!(present_count(&store, "shop"), 10);
    let before = fix_passes();
    let run = import(
        &mut store,
        "shop",
        &[findings(0..5), findings(5..10)],
        RunEnd::Succeeded,
    );
    assert_eq!((run.counts.seen, run.counts.fixed), (10, 0));
    assert_eq!(
        fix_passes(),
        before,
        "every present finding listed: no pass"
    );

    // Row 9 lacking; the rest sent twice, and row 0 twice on one page.
    let mut twice = findings(0..9);
    twice.push(finding(0));
    let run = import(
        &mut store,
        "shop",
        &[twice, findings(0..9)],
        RunEnd::Succeeded,
    );
    assert_eq!(fix_passes(), before + 1);
    assert_eq!((run.counts.seen, run.counts.fixed), (9, 1));
    assert_eq!(row(&store, "shop", &finding(9)).state, FindingState::Fixed);
    assert_eq!(present_count(&store, "shop"), 9);

    // The scan has a fixed finding now; a run listing every present one still skips.
    let run = import(&mut store, "shop", &[findings(0..9)], RunEnd::Succeeded);
    assert_eq!(run.counts.fixed, 0);
    assert_eq!(fix_passes(), before + 1, "the fixed row is not awaited");

    // Row 8 lacking, rows 10 and 11 new: as many listed as the scan had present before.
    let mut listing = findings(0..8);
    listing.extend(findings(10..12));
    let run = import(&mut store, "shop", &[listing], RunEnd::Succeeded);
    assert_eq!(run.counts.seen, 10);
    assert_eq!(fix_passes(), before + 2);
    assert_eq!(run.counts.fixed, 1);
    assert_eq!(row(&store, "shop", &finding(8)).state, FindingState::Fixed);
    assert_eq!(present_count(&store, "shop"), 10);

    // Rows 8 and 9 listed resolved (a fixed row listed stays fixed and is no present one),
    // row 7 lacking: the pass runs and fixes it.
    let mut listing = findings(0..7);
    listing.extend(findings(10..12));
    for n in [8, 9] {
        let mut resolved = finding(n);
        resolved.verdict = Some(crate::finding::Verdict::Resolved);
        listing.push(resolved);
    }
    let run = import(&mut store, "shop", &[listing], RunEnd::Succeeded);
    assert_eq!(run.counts.seen, 11);
    assert_eq!(fix_passes(), before + 3);
    assert_eq!(run.counts.fixed, 1);
    assert_eq!(row(&store, "shop", &finding(7)).state, FindingState::Fixed);
    assert_eq!(present_count(&store, "shop"), 9);

    // All twelve again (three reopened): nothing absent, no pass.
    let run = import(&mut store, "shop", &[findings(0..12)], RunEnd::Succeeded);
    assert_eq!((run.counts.reopened, run.counts.fixed), (3, 0));
    assert_eq!(fix_passes(), before + 3);
    assert_eq!(present_count(&store, "shop"), 12);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        0
    );
}

/// A count of present findings that rows written behind the store's back made wrong: too
/// high, or lower than what the run listed, the pass runs and counts again. Lower by just
/// the findings a run lacks, it holds their fix up for a day at most: once the count is a
/// day old, the pass runs whatever it says.
#[test]
fn a_present_count_set_wrong_by_hand_is_counted_again_within_a_day() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    let set = |store: &Store, sql: &str| {
        store.conn.execute(sql, []).unwrap();
    };
    for wrong in [15, 3, 0] {
        set(
            &store,
            &format!("UPDATE scans SET present_count = {wrong} WHERE name = 'shop'"),
        );
        let before = fix_passes();
        let run = import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
        assert_eq!(run.counts.fixed, 0);
        assert_eq!(fix_passes(), before + 1, "count {wrong}: the pass ran");
        assert_eq!(
            present_count(&store, "shop"),
            10,
            "count {wrong}: counted again"
        );
    }
    // One short, and a run lacking one: taken at its word while the count is recent.
    set(
        &store,
        "UPDATE scans SET present_count = 9 WHERE name = 'shop'",
    );
    let run = import(&mut store, "shop", &[findings(0..9)], RunEnd::Succeeded);
    assert_eq!(run.counts.fixed, 0);
    assert_eq!(row(&store, "shop", &finding(9)).state, FindingState::Open);
    // A day later the same listing reads the rows, and fixes it.
    super::test_db::age(&store, 2, &[("scans", &["present_checked_at"])]);
    let before = fix_passes();
    let run = import(&mut store, "shop", &[findings(0..9)], RunEnd::Succeeded);
    assert_eq!(fix_passes(), before + 1);
    assert_eq!(run.counts.fixed, 1);
    assert_eq!(row(&store, "shop", &finding(9)).state, FindingState::Fixed);
    assert_eq!(present_count(&store, "shop"), 9);
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
    // An empty listing trips the guard (every finding absent): missing first, then fixed.
    import(&mut store, "shop", &[], RunEnd::Succeeded);
    assert_eq!(row(&store, "shop", &f).state, FindingState::Missing);
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
    assert_eq!(
        kinds(&store, "shop", &f),
        ["created", "missing", "fixed", "reopened"]
    );
}

#[test]
fn local_false_positive_survives_reimport_is_fixed_when_gone_and_returns_triaged() {
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
    assert_eq!((gone.counts.fixed, gone.counts.missing), (0, 1));
    let confirmed = import(&mut store, "shop", &[], RunEnd::Succeeded);
    assert_eq!(confirmed.counts.fixed, 1);
    assert_eq!(row(&store, "shop", &f).state, FindingState::Fixed);
    import(&mut store, "shop", &[vec![f.clone()]], RunEnd::Succeeded);
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
            ..Default::default()
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
                ..Default::default()
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

/// Exports read findings a page at a time (PostgreSQL: a cursor, [`db::Db::for_each_row`]):
/// more rows than a page all arrive once, in order, from the moment the read began though a
/// writer commits meanwhile; a reader that stops part-way leaves the connection usable.
#[test]
fn for_each_finding_streams_one_moment_of_the_store_across_pages() {
    let (db, mut store) = temp_store();
    let pages: Vec<Vec<Finding>> = (0..5).map(|p| findings(p * 500..(p + 1) * 500)).collect();
    import(&mut store, "shop", &pages, RunEnd::Succeeded);
    let all = store.findings(&FindingFilter::default()).unwrap();
    assert_eq!(all.len(), 2500);

    let mut writer = db.open();
    let mut streamed = Vec::new();
    store
        .for_each_finding(&FindingFilter::default(), |r| {
            if streamed.len() == 1 {
                import(
                    &mut writer,
                    "billing",
                    &[findings(0..1500)],
                    RunEnd::Succeeded,
                );
            }
            streamed.push((r.id, r.fingerprint));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let expected: Vec<_> = all.iter().map(|r| (r.id, r.fingerprint.clone())).collect();
    assert_eq!(streamed, expected, "the rows of the moment the read began");
    assert_eq!(
        store.findings(&FindingFilter::default()).unwrap().len(),
        4000
    );

    let mut calls = 0;
    let stopped = store.for_each_finding(&FindingFilter::default(), |_| {
        calls += 1;
        if calls == 1500 {
            return Err(StoreError::Invalid("reader gone".into()));
        }
        Ok(())
    });
    assert!(stopped.is_err());
    assert_eq!(calls, 1500);
    import(&mut store, "shop", &pages, RunEnd::Succeeded);
    assert_eq!(
        store.findings(&FindingFilter::default()).unwrap().len(),
        4000
    );
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

/// A second store handle on the same file: another process as far as leases go (its own
/// owner id), with no heartbeat running.
pub(super) fn other_process(db: &TestDb) -> Store {
    db.open()
}

/// Makes every lease and owner heartbeat of `owner` expired, as if the process had died.
fn expire(store: &Store, owner: &str) {
    store
        .conn
        .execute(
            "UPDATE owners SET expires_at = '2000-01-01T00:00:00.000Z' WHERE owner = ?1",
            params![owner],
        )
        .unwrap();
    store
        .conn
        .execute(
            "UPDATE scan_leases SET expires_at = '2000-01-01T00:00:00.000Z' WHERE owner = ?1",
            params![owner],
        )
        .unwrap();
}

#[test]
fn a_second_process_cannot_begin_a_run_of_a_scan_another_run_holds() {
    let (dir, mut first) = temp_store();
    let mut second = other_process(&dir);
    let run = first.begin_run(&scope("shop")).unwrap();
    match second.begin_run(&scope("shop")) {
        Err(StoreError::ScanBusy { run_id, owner, .. }) => {
            assert_eq!(run_id, Some(run));
            assert_eq!(owner, first.owner().label);
        }
        other => panic!("expected ScanBusy, got {other:?}"),
    }
    assert_eq!(
        count(&second, "SELECT count(*) FROM sync_runs"),
        1,
        "nothing written"
    );
    // Another scan is free; the held one frees when its run ends.
    second.begin_run(&scope("billing")).unwrap();
    first.finish_run(run, RunEnd::Succeeded).unwrap();
    second.begin_run(&scope("shop")).unwrap();
}

#[test]
fn a_run_that_lost_its_lease_stores_nothing_and_fixes_nothing() {
    let (dir, mut first) = temp_store();
    let mut second = other_process(&dir);
    import(&mut first, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let slow = first.begin_run(&scope("shop")).unwrap();
    first.upsert_page(slow, &findings(0..5)).unwrap();
    let first_owner = first.owner().id.clone();
    expire(&first, &first_owner);
    // The heartbeat expired: another process takes the scan and runs it.
    let other = second.begin_run(&scope("shop")).unwrap();
    assert!(matches!(
        first.upsert_page(slow, &findings(5..10)),
        Err(StoreError::LeaseLost(r)) if r == slow
    ));
    let ended = first.finish_run(slow, RunEnd::Succeeded).unwrap();
    assert_eq!(ended.state, RunState::Interrupted, "{:?}", ended.error);
    assert_eq!(ended.counts.fixed, 0);
    assert_eq!(
        count(
            &first,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        0
    );
    second.upsert_page(other, &findings(0..30)).unwrap();
    assert_eq!(
        second.finish_run(other, RunEnd::Succeeded).unwrap().state,
        RunState::Succeeded
    );
}

#[test]
fn runs_of_a_process_that_said_goodbye_are_adopted_once_under_the_same_id() {
    let (dir, mut cli) = temp_store();
    let mut daemon = other_process(&dir);
    let left = cli.begin_run(&scope("shop")).unwrap();
    cli.set_vendor_scan_id(left, "vs-7").unwrap();
    cli.upsert_page(left, &findings(0..4)).unwrap();
    let live = cli.begin_run(&scope("billing")).unwrap();
    assert!(
        daemon.abandoned_runs().unwrap().is_empty(),
        "its owner is alive"
    );
    // `scan --async` exits: it lets go of the run and says goodbye.
    cli.detach_run(left).unwrap();
    cli.release_owner().unwrap();
    let listed = daemon.abandoned_runs().unwrap();
    assert_eq!(
        listed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![left, live]
    );
    assert_eq!(
        listed[0].state,
        RunState::Running,
        "listing changes nothing"
    );

    let adopted = daemon.adopt_run(left).unwrap().unwrap().unwrap();
    assert_eq!(adopted.id, left);
    assert_eq!(adopted.vendor_scan_id.as_deref(), Some("vs-7"));
    assert!(daemon.adopt_run(left).unwrap().is_none(), "only once");
    // The adopter goes on with the same run: its pages, then a complete end.
    daemon.upsert_page(left, &findings(0..6)).unwrap();
    let row = daemon.finish_run(left, RunEnd::Succeeded).unwrap();
    assert_eq!(row.state, RunState::Succeeded);
    assert_eq!(
        (row.counts.seen, row.counts.new, row.counts.pages),
        (6, 6, 2)
    );
    // The old owner can no longer write to it.
    assert!(cli.upsert_page(left, &findings(0..1)).is_err());
}

#[test]
fn a_killed_process_runs_are_abandoned_once_its_heartbeat_expires() {
    let (dir, mut dead) = temp_store();
    let mut daemon = other_process(&dir);
    let run = dead.begin_run(&scope("shop")).unwrap();
    assert!(daemon.abandoned_runs().unwrap().is_empty());
    let owner = dead.owner().id.clone();
    expire(&dead, &owner);
    assert_eq!(daemon.abandoned_runs().unwrap().len(), 1);
    let ended = daemon
        .end_abandoned_run(run, "interrupted: its process is gone")
        .unwrap()
        .unwrap();
    assert_eq!(ended.state, RunState::Interrupted);
    assert!(daemon.end_abandoned_run(run, "again").unwrap().is_none());
}

#[test]
fn a_run_adopted_after_a_newer_run_succeeded_neither_fixes_nor_overrides_it() {
    let (dir, mut first) = temp_store();
    let mut second = other_process(&dir);
    import(&mut first, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let old = first.begin_run(&scope("shop")).unwrap();
    first.set_vendor_scan_id(old, "vs-old").unwrap();
    first.detach_run(old).unwrap();
    first.release_owner().unwrap();
    // A newer run lists 0..28 (two fixed... held? 2 of 30 is under the guard: fixed).
    let newer = second.begin_run(&scope("shop")).unwrap();
    second.upsert_page(newer, &findings(0..28)).unwrap();
    let newer_row = second.finish_run(newer, RunEnd::Succeeded).unwrap();
    assert_eq!(newer_row.counts.fixed, 2);
    // Then the old run is adopted; its (older) vendor scan still lists 0..10 and 28..30.
    second.adopt_run(old).unwrap().unwrap().unwrap();
    let mut stale = findings(0..10);
    stale.extend(findings(28..30));
    second.upsert_page(old, &stale).unwrap();
    let row = second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(row.state, RunState::Succeeded);
    assert_eq!(row.counts.fixed, 0, "an older listing fixes nothing");
    assert_eq!(
        count(
            &second,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        2,
        "what the newer run fixed stays fixed"
    );
    assert_eq!(
        count(
            &second,
            &format!("SELECT count(*) FROM findings WHERE last_run_id = {newer}")
        ),
        28,
        "last_run_id never moves backwards"
    );
}

/// Two findings of one identity (rule, file, title) are told apart by their order in a
/// listing. A newer run that stored the page with the first of them, then died, leaves that
/// row touched by a newer run: an older run adopted after it cannot tell which of its two
/// findings that row is, skips both, and must not take the second one's row for absent.
/// (Seen in the kill campaign: four such pairs fixed, and announced, then reopened.)
#[test]
fn an_older_run_finishing_after_a_newer_run_stored_pages_fixes_nothing() {
    let (dir, mut first) = temp_store();
    let mut second = other_process(&dir);
    let (a, b) = (at(1, 10, Some("v-a")), at(1, 40, Some("v-b")));
    assert_eq!(a.fingerprint(0), b.fingerprint(0), "one identity");
    let pages = [vec![a.clone(), finding(2)], vec![b.clone(), finding(3)]];
    import(&mut first, "shop", &pages, RunEnd::Succeeded);
    // An older run, left while its vendor scan ran.
    let old = first.begin_run(&scope("shop")).unwrap();
    first.set_vendor_scan_id(old, "vs-old").unwrap();
    first.detach_run(old).unwrap();
    first.release_owner().unwrap();
    // A newer run stores the first page and dies.
    let mut third = other_process(&dir);
    let newer = third.begin_run(&scope("shop")).unwrap();
    third.upsert_page(newer, &pages[0]).unwrap();
    third.detach_run(newer).unwrap();
    third.release_owner().unwrap();
    // The older run is adopted and lists everything, as the vendor still does.
    second.adopt_run(old).unwrap().unwrap().unwrap();
    for page in &pages {
        second.upsert_page(old, page).unwrap();
    }
    let row = second.finish_run(old, RunEnd::Succeeded).unwrap();
    assert_eq!(row.state, RunState::Interrupted, "overtaken");
    assert!(row.error.unwrap().contains(&format!("run {newer} ")));
    assert_eq!((row.counts.fixed, row.counts.missing), (0, 0));
    assert_eq!(
        count(
            &second,
            "SELECT count(*) FROM finding_events WHERE kind IN ('fixed', 'missing')"
        ),
        0
    );
    // The newer run, adopted in turn, lists everything: still nothing fixed, four open rows.
    second.adopt_run(newer).unwrap().unwrap().unwrap();
    for page in &pages {
        second.upsert_page(newer, page).unwrap();
    }
    let row = second.finish_run(newer, RunEnd::Succeeded).unwrap();
    assert_eq!((row.counts.fixed, row.counts.missing), (0, 0));
    assert_eq!(
        count(
            &second,
            "SELECT count(*) FROM findings WHERE state IN ('new', 'open')"
        ),
        4
    );
}

#[test]
fn a_listing_that_lacks_most_findings_holds_the_fixes_until_a_second_run_confirms() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..100)], RunEnd::Succeeded);
    // A listing that lost 60 of 100 (a lying page): nothing is fixed, 60 are missing.
    let lie = import(&mut store, "shop", &[findings(0..40)], RunEnd::Succeeded);
    assert_eq!((lie.counts.fixed, lie.counts.missing), (0, 60));
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE state = 'missing'"
        ),
        60
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM finding_events WHERE kind = 'missing'"
        ),
        60
    );
    // An honest run lists them again: open, with a `returned` event; nothing fixed.
    let honest = import(&mut store, "shop", &[findings(0..100)], RunEnd::Succeeded);
    assert_eq!((honest.counts.fixed, honest.counts.missing), (0, 0));
    assert_eq!(
        count(&store, "SELECT count(*) FROM findings WHERE state = 'open'"),
        100
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM finding_events WHERE kind = 'returned'"
        ),
        60
    );
    // A real mass fix: held once, confirmed by the next complete run.
    let first = import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    assert_eq!((first.counts.fixed, first.counts.missing), (0, 90));
    let second = import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    assert_eq!((second.counts.fixed, second.counts.missing), (90, 0));
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE state = 'fixed'"
        ),
        90
    );
}

#[test]
fn an_empty_listing_holds_every_fix_at_any_size_and_a_guard_of_one_turns_it_off() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "small", &[findings(0..3)], RunEnd::Succeeded);
    let empty = import(&mut store, "small", &[], RunEnd::Succeeded);
    assert_eq!((empty.counts.fixed, empty.counts.missing), (0, 3));
    // Few and not all: no guard below the minimum size.
    import(&mut store, "few", &[findings(0..10)], RunEnd::Succeeded);
    let most = import(&mut store, "few", &[findings(0..2)], RunEnd::Succeeded);
    assert_eq!((most.counts.fixed, most.counts.missing), (8, 0));
    // fix_guard = 1.0: an empty listing fixes everything at once.
    let off = RunScope {
        fix_guard: 1.0,
        ..scope("off")
    };
    let run = store.begin_run(&off).unwrap();
    store.upsert_page(run, &findings(0..50)).unwrap();
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    let run = store.begin_run(&off).unwrap();
    let row = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!((row.counts.fixed, row.counts.missing), (50, 0));
}

#[test]
fn vendor_verdicts_set_the_state_and_a_local_triage_wins() {
    use crate::finding::Verdict;
    let (_dir, mut store) = temp_store();
    let with = |n: usize, v: Option<Verdict>| Finding {
        verdict: v,
        ..finding(n)
    };
    import(&mut store, "shop", &[findings(0..4)], RunEnd::Succeeded);
    store
        .set_local_state("shop", &fp(&finding(3), "shop"), FindingState::Accepted)
        .unwrap();
    let page = vec![
        with(0, Some(Verdict::Resolved)),
        with(1, Some(Verdict::FalsePositive)),
        with(2, Some(Verdict::Active)),
        with(3, Some(Verdict::FalsePositive)),
        with(4, Some(Verdict::Accepted)),
    ];
    let run = import(&mut store, "shop", &[page], RunEnd::Succeeded);
    assert_eq!(run.counts.fixed, 1, "resolved at the vendor");
    let state = |store: &Store, n: usize| row(store, "shop", &finding(n)).state;
    assert_eq!(state(&store, 0), FindingState::Fixed);
    assert_eq!(state(&store, 1), FindingState::FalsePositive);
    assert_eq!(state(&store, 2), FindingState::Open);
    assert_eq!(
        state(&store, 3),
        FindingState::Accepted,
        "local triage wins"
    );
    assert_eq!(
        state(&store, 4),
        FindingState::Accepted,
        "new, accepted at the vendor"
    );
    // The vendor withdraws its false positive: open again. Resolved and listed without the
    // word: reopened.
    let run = import(
        &mut store,
        "shop",
        &[vec![
            with(0, None),
            with(1, Some(Verdict::Active)),
            with(2, None),
            with(3, None),
            with(4, Some(Verdict::Accepted)),
        ]],
        RunEnd::Succeeded,
    );
    assert_eq!(run.counts.reopened, 1);
    assert_eq!(state(&store, 0), FindingState::Reopened);
    assert_eq!(state(&store, 1), FindingState::Open);
    assert_eq!(state(&store, 3), FindingState::Accepted);
    let kinds: Vec<String> = store
        .events("shop", &fp(&finding(1), "shop"))
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["created", "vendor_state", "vendor_state"]);
}

#[test]
fn a_fixed_finding_that_was_triaged_comes_back_triaged_not_reopened() {
    let (_dir, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    let f = fp(&finding(0), "shop");
    store
        .set_local_state("shop", &f, FindingState::FalsePositive)
        .unwrap();
    let gone = import(&mut store, "shop", &[findings(1..30)], RunEnd::Succeeded);
    assert_eq!(gone.counts.fixed, 1);
    assert_eq!(row(&store, "shop", &finding(0)).state, FindingState::Fixed);
    import(&mut store, "shop", &[findings(0..30)], RunEnd::Succeeded);
    assert_eq!(
        row(&store, "shop", &finding(0)).state,
        FindingState::FalsePositive
    );
}

#[test]
fn two_findings_of_one_rule_file_and_title_stay_two_through_line_shifts_and_repeats() {
    let (_dir, mut store) = temp_store();
    let at = |line: u32| Finding {
        location: Location::Code {
            path: "src/db.rs".into(),
            start_line: Some(line),
            end_line: Some(line),
        },
        ..finding(1)
    };
    let first = import(
        &mut store,
        "shop",
        // The second page repeats the first: the same two sightings, nothing more.
        &[vec![at(10), at(50)], vec![at(10), at(50)]],
        RunEnd::Succeeded,
    );
    assert_eq!((first.counts.seen, first.counts.new), (2, 2));
    // Twenty lines added above both: the same two findings.
    let shifted = import(
        &mut store,
        "shop",
        &[vec![at(30), at(70)]],
        RunEnd::Succeeded,
    );
    assert_eq!(
        (
            shifted.counts.seen,
            shifted.counts.new,
            shifted.counts.fixed
        ),
        (2, 0, 0)
    );
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 2);
    // One of them fixed.
    let one = import(&mut store, "shop", &[vec![at(30)]], RunEnd::Succeeded);
    assert_eq!(one.counts.fixed + one.counts.missing, 1);
}

/// What a run of imports left, to compare two ways of importing: the runs' counts, every
/// row, every event (with its finding; each finding's in id order), and the rows' id order
/// (PostgreSQL's ids may have gaps), as text. The order between different findings' events
/// is left out: PostgreSQL's one-statement page writes its `created` events before the
/// triggers' events of the rows it updated, one statement per finding after them.
pub(super) type PageOutcome = (Vec<RunCounts>, Vec<String>, Vec<String>, Vec<String>);

pub(super) fn page_outcome(store: &Store, counts: Vec<RunCounts>) -> PageOutcome {
    let text = |sql: &str| -> Vec<String> {
        let mut stmt = store.conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let rows = text(
        "SELECT fingerprint || ' ' || state || ' ' || severity || ' '
                || coalesce(vendor_status, '-') || ' ' || coalesce(vendor_id, '-') || ' '
                || coalesce(CAST(start_line AS TEXT), '-') || ' '
                || CAST(times_seen AS TEXT) || ' ' || CAST(last_run_id AS TEXT) || ' '
                || CAST(touched_run_id AS TEXT) || ' ' || coalesce(triage, '-') || ' '
                || coalesce(triage_source, '-')
         FROM findings ORDER BY fingerprint, scan_id",
    );
    let events = text(
        "SELECT f.fingerprint || ' ' || e.kind || ' ' || coalesce(e.old_value, '-') || ' '
                || coalesce(e.new_value, '-') || ' ' || coalesce(CAST(e.run_id AS TEXT), '-')
         FROM finding_events e JOIN findings f ON f.id = e.finding_id
         ORDER BY f.fingerprint, f.scan_id, e.id",
    );
    let order = text("SELECT fingerprint FROM findings ORDER BY id");
    (counts, rows, events, order)
}

#[test]
fn the_fixed_events_of_a_run_follow_the_findings_order_whatever_the_vendors_order() {
    // PostgreSQL keeps an updated row's new version after the rows it passed, so a page
    // listing the scan backwards leaves the heap backwards; the fix pass must still write
    // its events in the findings' order, as SQLite and one statement per finding do (a
    // random-pages test once failed on this order in CI).
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..40)], RunEnd::Succeeded);
    let mut backwards = findings(0..40);
    backwards.reverse();
    import(&mut store, "shop", &[backwards], RunEnd::Succeeded);
    if on_postgres() {
        // The plan that reads the heap in its order, which the planner may pick any day.
        store
            .conn
            .execute_batch("SET enable_indexscan = off; SET enable_bitmapscan = off")
            .unwrap();
    }
    import(&mut store, "shop", &[findings(0..25)], RunEnd::Succeeded);
    let fixed_in_event_order: Vec<i64> = {
        let mut stmt = store
            .conn
            .prepare("SELECT finding_id FROM finding_events WHERE kind = 'fixed' ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let ids: Vec<i64> = findings(25..40).iter().map(|f| id_of(&store, f)).collect();
    assert_eq!(fixed_in_event_order, ids);
}

#[test]
fn a_page_imported_in_one_statement_ends_as_one_statement_per_finding_does() {
    // On PostgreSQL a page's upserts go as one statement (`ingest::upsert_rows_batched`);
    // here the same runs, once that way and once one finding at a time, must leave the same
    // rows, events and counts. On SQLite both are the one-at-a-time path.
    use crate::finding::Verdict;
    let at = |n: usize, line: u32, vendor_id: Option<&str>| Finding {
        vendor_id: vendor_id.map(Into::into),
        location: Location::Code {
            path: format!("src/file{n}.rs"),
            start_line: Some(line),
            end_line: Some(line + 1),
        },
        ..finding(n)
    };
    let with = |f: Finding, change: &dyn Fn(&mut Finding)| {
        let mut f = f;
        change(&mut f);
        f
    };
    let runs: Vec<Vec<Vec<Finding>>> = vec![
        vec![
            // One identity three times in a page, one sighting of it repeated, and pages
            // that repeat what an earlier page listed.
            vec![
                finding(0),
                at(1, 10, None),
                at(1, 20, None),
                finding(2),
                at(1, 10, None),
                at(3, 5, Some("v-a")),
                at(3, 9, Some("v-b")),
                with(finding(4), &|f| f.verdict = Some(Verdict::Resolved)),
            ],
            vec![at(1, 30, None), finding(2), at(1, 20, None), finding(5)],
            vec![
                finding(0),
                at(3, 7, Some("v-a")),
                at(3, 1, Some("v-c")),
                finding(6),
            ],
        ],
        vec![
            // Lines shift, one of three goes, a vendor verdict, a new severity and status.
            vec![
                at(1, 40, None),
                at(1, 60, None),
                with(finding(2), &|f| f.severity = Severity::Critical),
                with(finding(5), &|f| f.verdict = Some(Verdict::FalsePositive)),
            ],
            vec![
                at(3, 5, Some("v-b")),
                at(3, 6, Some("v-a")),
                with(finding(6), &|f| f.vendor_status = Some("Confirmed".into())),
            ],
        ],
        vec![
            // What the last run fixed comes back, twice in a page, and a page repeats.
            vec![
                finding(0),
                finding(0),
                at(1, 10, None),
                finding(4),
                finding(2),
            ],
            vec![
                finding(0),
                at(1, 10, None),
                at(1, 11, None),
                at(1, 12, None),
            ],
            vec![at(3, 1, Some("v-c")), at(3, 5, Some("v-a"))],
        ],
    ];
    let outcome = |one_by_one: bool| {
        ONE_BY_ONE.with(|o| o.set(one_by_one));
        let (_dir, mut store) = temp_store();
        let counts: Vec<RunCounts> = runs
            .iter()
            .map(|pages| import(&mut store, "shop", pages, RunEnd::Succeeded).counts)
            .collect();
        ONE_BY_ONE.with(|o| o.set(false));
        page_outcome(&store, counts)
    };
    let batched = outcome(false);
    assert_eq!(
        FELL_BACK.with(|n| n.get()),
        0,
        "no page fell back to one at a time"
    );
    if on_postgres() {
        // The repeated pages met rows their run had stored: planned again with the look-up.
        assert!(LOOKED_UP_AGAIN.with(|n| n.get()) > 0);
    }
    let single = outcome(true);
    assert_eq!(batched.0, single.0, "run counts");
    assert_eq!(batched.1, single.1, "rows");
    assert_eq!(batched.2, single.2, "events");
    assert_eq!(batched.3, single.3, "row order");
    assert_eq!(batched.1.len(), 11, "{:?}", batched.1);
}

#[test]
fn opening_the_store_leaves_a_live_writers_running_run_alone() {
    let (dir, mut writer) = temp_store();
    let run = writer.begin_run(&scope("shop")).unwrap();
    writer.upsert_page(run, &findings(0..3)).unwrap();
    let reader = other_process(&dir);
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
    if on_postgres() {
        return; // a SQLite file's own test
    }
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
    if on_postgres() {
        return; // a SQLite file's own test
    }
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
fn version_1_store_upgraded_keeps_every_findings_id_state_and_history_and_rekeys_them() {
    if on_postgres() {
        return; // a SQLite file's own test
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scansync.db");
    // Two findings of one rule, file and title (lines 40 and 3), one with another rule, one
    // fixed, one accepted locally: keyed by recipe 1 (vendor, project, vendor id).
    let kept = "id, scan_id, state, title, severity, vendor_status, file_path, start_line, \
                first_seen, last_seen, times_seen, last_run_id";
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
                 vendor_status, rule_id, location_kind, file_path, start_line, raw, first_seen,
                 last_seen, times_seen, last_run_id)
             VALUES (1, 1, 'v1-a', 'open', 'SQL injection', 'high', 'Open', 'sqli', 'code', 'a.rs', 40, '{}', 't0',
                     't0', 2, 1),
                    (2, 1, 'v1-b', 'fixed', 'B', 'high', 'Open', 'xss', 'unknown', NULL, NULL, '{}', 't0',
                     't0', 1, 1),
                    (3, 1, 'v1-c', 'new', 'SQL  Injection', 'low', 'Open', 'sqli', 'code', 'a.rs', 3, '{}', 't0',
                     't0', 1, 1),
                    (4, 1, 'v1-d', 'accepted', 'D', 'low', 'Open', 'csrf', 'code', 'd.rs', 1, '{}', 't0',
                     't0', 1, 1);
             INSERT INTO finding_events (finding_id, run_id, kind, old_value, new_value, at)
             VALUES (2, 1, 'fixed', 'new', 'fixed', 't1'),
                    (4, NULL, 'state_set', 'open', 'accepted', 't1');",
        )
        .unwrap();
        let findings = conn
            .prepare(&format!("SELECT {kept} FROM findings ORDER BY id"))
            .unwrap()
            .query_map([], |r| {
                Ok((0..12)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>();
        (findings, dump(&conn, "finding_events"))
    };
    assert_eq!(events_v1.len(), 6, "four created, one fixed, one state_set");

    let mut store = Store::open(&path).unwrap();
    assert_eq!(
        count(&store, "PRAGMA user_version"),
        MIGRATIONS.last().unwrap().0
    );
    let findings_v2: Vec<String> = store
        .conn
        .as_sqlite()
        .unwrap()
        .prepare(&format!("SELECT {kept} FROM findings ORDER BY id"))
        .unwrap()
        .query_map([], |r| {
            Ok((0..12)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(findings_v2, findings_v1, "ids, states and attributes stay");
    // Version 6 added the triage columns (who, why, until, rule), empty on old events.
    let events_now: Vec<String> = dump(store.conn.as_sqlite().unwrap(), "finding_events")
        .into_iter()
        .map(|line| {
            let cells: Vec<&str> = line.split('|').collect();
            assert!(cells[7..].iter().all(|c| *c == "Null"), "{line}");
            cells[..7].join("|")
        })
        .collect();
    assert_eq!(events_now, events_v1, "history stays");
    // Recipe 2 keys: the two SQL injections in a.rs are occurrences 0 (line 3) and 1 (line 40).
    let sqli = Finding {
        rule_id: Some("sqli".into()),
        title: "sql injection".into(),
        location: Location::Code {
            path: "a.rs".into(),
            start_line: None,
            end_line: None,
        },
        ..finding(0)
    };
    let key = |id: i64| -> String {
        store
            .conn
            .query_row(
                "SELECT fingerprint FROM findings WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(key(3), sqli.fingerprint(0));
    assert_eq!(key(1), sqli.fingerprint(1));
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE fingerprint_version = 2"
        ),
        4
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM findings WHERE id = 4 AND triage = 'accepted' AND triage_source = 'local'"
        ),
        1,
        "a local verdict becomes the row's triage"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM sqlite_schema
             WHERE tbl_name IN ('findings', 'finding_events') AND sql LIKE '% IN (%'"
        ),
        0,
        "no CHECK with an IN list is left on the hot tables"
    );
    assert_eq!(super::test_db::foreign_key_violations(&store), 0);
    assert!(store
        .conn
        .execute("UPDATE findings SET state = 'closed' WHERE id = 1", [])
        .is_err());

    // Imports go on: the two SQL injections, shifted by ten lines, are the same two rows; the
    // fixed B is not listed; nothing new.
    let shifted = |line: u32| Finding {
        location: Location::Code {
            path: "a.rs".into(),
            start_line: Some(line),
            end_line: Some(line),
        },
        ..sqli.clone()
    };
    let run = store.begin_run(&scope("shop")).unwrap();
    let counts = store.upsert_page(run, &[shifted(13), shifted(50)]).unwrap();
    assert_eq!((counts.seen, counts.new), (2, 0));
    store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 4);
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
        let owner = store.owner.clone();
        let tx = store.conn.write_transaction().unwrap();
        let ctx = running_context(&tx, &owner, run).unwrap();
        upsert_page_in(
            &tx,
            &ctx,
            run,
            &findings(5..10),
            &[],
            &mut Default::default(),
        )
        .unwrap()
        .expect("a first page of distinct findings is written as planned");
        // Dropped here: the crash between writing rows and committing.
    }
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 5);
    assert_eq!(store.run(run).unwrap().unwrap().counts.pages, 1);
    // The retry of that page stores it once.
    store.upsert_page(run, &findings(0..10)).unwrap();
    let done = store.finish_run(run, RunEnd::Succeeded).unwrap();
    assert_eq!((done.counts.seen, done.counts.new), (10, 10));
    assert_eq!(count(&store, "SELECT count(*) FROM findings"), 10);
    if !on_postgres() {
        let ok: String = store
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
    }
}

// ---- any order and repetition of pages ends in the same rows ----

const SET_SIZE: usize = 10_000;
const PAGE_SIZE: usize = 500;
const PAGES: usize = SET_SIZE / PAGE_SIZE;

/// A varied 10k set: code and API findings, some with stable vendor ids.
fn varied_finding(n: usize) -> Finding {
    let mut f = finding(n);
    if n.is_multiple_of(3) {
        f.location = Location::Api {
            method: "GET".into(),
            path: format!("/v1/items/{n}"),
            host: "api.example.com".into(),
        };
    }
    if n.is_multiple_of(4) {
        f.vendor_id = Some(format!("gap-{n}"));
    }
    if n.is_multiple_of(11) {
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

use crate::config::{EventType, Route};

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
            r.get::<String>(0)?,
            r.get::<String>(1)?,
            r.get::<String>(2)?,
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
    store.set_webhook_routes(
        vec![
            route("all", &[EventType::FindingsNew], None, &[]),
            route(
                "critical-only",
                &[EventType::FindingsNew],
                Some(Severity::Critical),
                &[],
            ),
            route("other-scan", &[EventType::FindingsNew], None, &["api"]),
            route("fixes-only", &[EventType::FindingsFixed], None, &[]),
        ],
        crate::webhooks::payload::body,
    );
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
    store.set_webhook_routes(
        vec![route("all", &[EventType::FindingsNew], None, &[])],
        crate::webhooks::payload::body,
    );
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
    store.set_webhook_routes(
        vec![route(
            "changes",
            &[EventType::FindingsFixed, EventType::FindingsReopened],
            None,
            &[],
        )],
        crate::webhooks::payload::body,
    );
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
    store.set_webhook_routes(
        vec![route("ops", &[EventType::RunFailed], None, &[])],
        crate::webhooks::payload::body,
    );
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
    store.set_webhook_routes(
        vec![route(
            "shop-hook",
            &[EventType::FindingsNew],
            None,
            &["shop"],
        )],
        crate::webhooks::payload::body,
    );
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
    store.set_webhook_routes(
        vec![
            route("a", &[EventType::FindingsNew], None, &[]),
            route("b", &[EventType::FindingsNew], None, &[]),
        ],
        crate::webhooks::payload::body,
    );
    import(&mut store, "shop", &[findings(0..2)], RunEnd::Succeeded);
    let now = chrono::Utc::now();
    let due = store.due_webhook_messages(now, 10).unwrap();
    assert_eq!(due.len(), 2);
    let oldest = store.outbox_oldest_pending().unwrap();
    assert_eq!(
        oldest,
        BTreeMap::from([
            ("a".to_string(), due[0].created_at.clone()),
            ("b".to_string(), due[1].created_at.clone()),
        ])
    );
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
    assert!(store.outbox_oldest_pending().unwrap().is_empty());
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

#[test]
fn last_failed_syncs_take_failures_and_timeouts_and_scans_date_from_their_first_run() {
    let (_dir, mut store) = temp_store();
    let first = import(&mut store, "shop", &[findings(0..2)], RunEnd::Succeeded);
    import(
        &mut store,
        "shop",
        &[],
        RunEnd::Failed("vendor down".into()),
    );
    let late = import(&mut store, "shop", &[], RunEnd::TimedOut("slow".into()));
    import(&mut store, "shop", &[], RunEnd::Interrupted("stop".into()));
    import(&mut store, "fine", &[], RunEnd::Succeeded);
    let failed = store.last_failed_syncs().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(Some(&failed["shop"]), late.finished_at.as_ref());
    let created = store.scans_created().unwrap();
    assert_eq!(created.keys().collect::<Vec<_>>(), ["fine", "shop"]);
    assert_eq!(created["shop"], first.started_at);
}

/// PostgreSQL closes a session (a restart, a failover, an administrator): the call that met
/// it fails, the next ones reconnect, and a transaction that lost its session never reports
/// a commit.
#[test]
fn a_store_on_postgresql_reconnects_after_the_server_closed_its_session() {
    if !on_postgres() {
        return;
    }
    const KILL: &str = "SELECT pg_terminate_backend(pg_backend_pid())";
    let (_db, mut store) = temp_store();
    import(&mut store, "shop", &[findings(0..10)], RunEnd::Succeeded);
    assert!(store.conn.execute(KILL, db::params![]).is_err());
    assert_eq!(store.findings(&FindingFilter::default()).unwrap().len(), 10);
    import(&mut store, "shop", &[findings(0..12)], RunEnd::Succeeded);
    assert_eq!(store.findings(&FindingFilter::default()).unwrap().len(), 12);

    {
        let tx = store.conn.write_transaction().unwrap();
        tx.execute("DELETE FROM findings", db::params![]).unwrap();
        assert!(tx.execute(KILL, db::params![]).is_err());
        assert!(tx.commit().is_err(), "a commit on a closed session");
    }
    assert_eq!(
        store.findings(&FindingFilter::default()).unwrap().len(),
        12,
        "nothing of the lost transaction"
    );
}

/// A writer that goes quiet holding the write lock (a node cut off or frozen mid-page) is
/// cut off by the server after a third of the lease, so every other writer goes on before
/// its own lease could expire; the quiet one's transaction never commits.
#[test]
fn a_writer_that_goes_quiet_holding_the_write_lock_is_cut_off() {
    if !on_postgres() {
        return;
    }
    let (db, mut store) = temp_store();
    let mut quiet = db.open();
    let tx = quiet.conn.write_transaction().unwrap();
    tx.execute("DELETE FROM findings", db::params![]).unwrap();
    let started = std::time::Instant::now();
    import(&mut store, "shop", &[findings(0..3)], RunEnd::Succeeded);
    let waited = started.elapsed();
    assert!(
        waited < lease_ttl() * 2 / 3,
        "the other writer waited {waited:?} (lease {:?})",
        lease_ttl()
    );
    assert!(
        tx.commit().is_err(),
        "the quiet writer's transaction committed"
    );
    assert_eq!(store.findings(&FindingFilter::default()).unwrap().len(), 3);
}

#[test]
fn only_a_migrating_open_makes_or_upgrades_a_store_on_either_backend() {
    let db = TestDb::new();
    let err = Store::open_for_writing(&db.location(), Schema::Existing)
        .err()
        .expect("no store yet");
    assert!(matches!(err, StoreError::Missing(_)), "{err}");
    assert!(err.to_string().contains("no store at"), "{err}");
    // Nothing was made by trying: still no store for a read-only open either.
    let err = Store::open_read_only_at(&db.location())
        .err()
        .expect("no store yet");
    assert!(matches!(err, StoreError::Missing(_)), "{err}");
    drop(db.open());
    let mut store = Store::open_for_writing(&db.location(), Schema::Existing).unwrap();
    import(&mut store, "shop", &[findings(0..2)], RunEnd::Succeeded);
}

#[test]
fn an_older_sqlite_store_is_upgraded_by_the_daemon_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(Store::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 6")
        .unwrap();
    let location = StoreLocation::Sqlite(path.clone());
    let err = Store::open_for_writing(&location, Schema::Existing)
        .err()
        .expect("older");
    assert!(
        matches!(err, StoreError::SchemaTooOld { found: 6, .. }),
        "{err}"
    );
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 6);
}
